#!/usr/bin/env bash
# Benchmark of lineage: on a generated graph of 1,000 pipelines and 3,000
# relations, downstream() of a root, column_lineage() of a leaf and
# lineage_dot() of the whole graph; and what the provenance column costs a
# merge (the same staged rows merged with it and without it, alternating).
# See README.md.
#
#   bash test/bench/lineage.sh
#
# As root: installs what is missing, builds and installs the extension.
# Environment: LINEAGE_PIPELINES (1000), LINEAGE_ROOTS (100) staging tables;
# LINEAGE_ROWS (300000) staged rows of the merge; LINEAGE_ROUNDS (5);
# BENCH_BUILD, BENCH_PORT (55474).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../common.sh"

PIPELINES=${LINEAGE_PIPELINES:-1000}
ROOTS=${LINEAGE_ROOTS:-100}
ROWS=${LINEAGE_ROWS:-300000}
ROUNDS=${LINEAGE_ROUNDS:-5}
PORT=${BENCH_PORT:-55474}
bench_setup

start_cluster "$DATA" "$WORK" "$PORT" "shared_preload_libraries = 'pipeline'
log_min_messages = warning
shared_buffers = '512MB'
work_mem = '64MB'
max_wal_size = '4GB'
checkpoint_timeout = '30min'
max_locks_per_transaction = 1024
jit = off"

bench_clients bench
bench_results lineage

as_test_user psql -h "$WORK" -p "$PORT" -U postgres -d postgres -X -q -c 'CREATE DATABASE bench'
say "pipeline lineage benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo unknown)"
say "$(sql -Atc 'SELECT version()' | cut -d, -f1), $(nproc) cores, load average at start $(cut -d' ' -f1-3 /proc/loadavg)"

# The graph: ROOTS staging tables s_i; pipeline i writes t_i, reading s_i
# (i < ROOTS) or t_(i-ROOTS) (through its change log), and looks up
# t_(i-ROOTS+1) in a subquery (fan-in); a view v_i on every target.
sql -c 'CREATE EXTENSION pipeline' -c 'CREATE SCHEMA g'
sql <<SQL
DO \$\$
BEGIN
  FOR i IN 0 .. $ROOTS - 1 LOOP
    EXECUTE format('CREATE TABLE g.s_%s (id bigint, v numeric, note text)', i);
  END LOOP;
END
\$\$;
SQL
echo "creating $PIPELINES pipelines..."
start=$(date +%s)
for ((i = 0; i < PIPELINES; i++)); do
    if ((i < ROOTS)); then
        src="g.s_$i"; cols='{}'
    else
        src="g.t_$((i - ROOTS))"
        cols="{\"w\": \"v * 2 + coalesce((SELECT max(x.v) FROM g.t_$((i - ROOTS + 1)) x WHERE x.id = s.id), 0)\"}"
    fi
    echo "SELECT pipeline.create_pipeline('p_$i', '$src', 'g.t_$i', key => '{id}', columns => '$cols');"
    echo "CREATE VIEW g.v_$i AS SELECT id, v FROM g.t_$i;"
done | sql >/dev/null
say "graph: $(sql -Atc "SELECT count(*) FROM pipeline.pipelines") pipelines, $(sql -Atc "SELECT count(*) FROM pg_class WHERE relnamespace = 'g'::regnamespace AND relkind IN ('r', 'v')") relations (staging tables, targets, change logs, views), $(sql -Atc "SELECT count(*) FROM pipeline.lineage") lineage edges; defined in $(( $(date +%s) - start )) s"
sql -c 'VACUUM ANALYZE' >/dev/null

# timed LABEL SQL: runs SQL ROUNDS times, says the median and every time.
timed() {
    local label=$1 query=$2 times="" t
    for _ in $(seq "$ROUNDS"); do
        t=$(sql -c '\timing on' -c "$query" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1)
        times+="$t "
    done
    say "   $(printf '%-48s' "$label") median $(printf '%8.1f' "$(echo "$times" | median)") ms   rounds (ms): $times"
}
leaf="g.t_$((PIPELINES - 1))"
say "   downstream('g.s_0') reaches $(sql -Atc "SELECT count(*) FROM pipeline.downstream('g.s_0')") relations; column_lineage('$leaf', 'w') has $(sql -Atc "SELECT count(*) FROM pipeline.column_lineage('$leaf', 'w')") edges; lineage_dot() is $(sql -Atc "SELECT length(pipeline.lineage_dot())") bytes"
timed "downstream('g.s_0')" "SELECT count(*) FROM pipeline.downstream('g.s_0')"
timed "column_lineage('$leaf', 'w')" "SELECT count(*) FROM pipeline.column_lineage('$leaf', 'w')"
timed "lineage_dot() of the whole graph" "SELECT length(pipeline.lineage_dot())"
timed "lineage_dot(columns => true) of the whole graph" "SELECT length(pipeline.lineage_dot(columns => true))"
say ""

# The merge with the provenance column and without it.
sql >/dev/null <<SQL
CREATE TABLE raw_orders (id bigint, customer_id bigint, status text, amount numeric(12,2),
                         email text, ordered_at timestamptz);
SELECT pipeline.prepare_source('raw_orders');
INSERT INTO raw_orders
SELECT g, 1 + g % 50000, (ARRAY['new', 'paid', 'shipped', 'delivered'])[1 + g % 4],
       (g % 1000) + 0.99, 'user' || g || '@example.com', now() - (g % 10000) * interval '1 minute'
  FROM generate_series(1, $ROWS) g;
VACUUM ANALYZE raw_orders;
SQL
# define NAME on|off: a pipeline from raw_orders to a new table NAME, with
# the provenance column or without; drops the previous one.
define() {
    sql -c "SELECT pipeline.drop_pipeline('$1', if_exists => true)" -c "DROP TABLE IF EXISTS $1" \
        -c "SELECT pipeline.create_pipeline('$1', 'raw_orders', '$1', key => '{id}', batch_size => $ROWS)" >/dev/null
    [ "$2" = on ] && sql -c "SELECT pipeline.enable_provenance('$1')" >/dev/null
    return 0
}
# merge_ms NAME: runs the pipeline (every staged row) and prints its duration.
merge_ms() {
    sql -c 'CHECKPOINT' >/dev/null
    sql -Atc "CALL pipeline.run('$1')" >/dev/null
    sql -Atc "SELECT round(extract(epoch FROM duration) * 1000) FROM pipeline.runs
               WHERE pipeline = '$1' ORDER BY run_id DESC LIMIT 1"
}
say "$ROWS staged orders merged by key into an empty target, one batch, $ROUNDS rounds, provenance column off and on"
declare -A ms
for round in $(seq "$ROUNDS"); do
    for kind in off on; do
        define "m_$kind" $kind
        echo "round $round, provenance $kind..."
        ms[$kind]+="$(merge_ms "m_$kind") "
    done
done
[ "$(sql -Atc "SELECT count(*) FROM m_on WHERE __run_id IS NOT NULL")" = "$ROWS" ] ||
    { echo "m_on lacks provenance" >&2; exit 1; }
off=$(echo "${ms[off]}" | median)
for kind in off on; do
    m=$(echo "${ms[$kind]}" | median)
    say "   provenance $(printf '%-4s' "$kind") median $(printf '%6.0f' "$m") ms   time ratio to off: $(awk "BEGIN {printf \"%.2f\", $m / $off}")   rounds (ms): ${ms[$kind]}"
done
say "results written to $OUT"
