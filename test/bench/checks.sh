#!/usr/bin/env bash
# Benchmark of data quality checks: what five row checks cost a merge.  The
# same staged rows are merged by a pipeline without checks and by pipelines
# with five checks, alternating, in one run; each merge starts from an empty
# target and a new cursor.  See README.md.
#
#   bash test/bench/checks.sh
#
# As root: installs what is missing, builds and installs the extension.
# Environment: CHECKS_ROWS (300000) staged rows; CHECKS_ROUNDS (5);
# BENCH_BUILD, BENCH_PORT (55473).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../common.sh"

ROWS=${CHECKS_ROWS:-300000}
ROUNDS=${CHECKS_ROUNDS:-5}
PORT=${BENCH_PORT:-55473}
bench_setup

start_cluster "$DATA" "$WORK" "$PORT" "shared_preload_libraries = 'pipeline'
log_min_messages = warning
shared_buffers = '512MB'
work_mem = '64MB'
max_wal_size = '4GB'
checkpoint_timeout = '30min'
jit = off"

bench_clients bench
bench_results checks

as_test_user psql -h "$WORK" -p "$PORT" -U postgres -d postgres -X -q -c 'CREATE DATABASE bench'
sql <<SQL
CREATE EXTENSION pipeline;
CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL);
INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 50000) g;
CREATE TABLE raw_orders (id bigint, customer_id bigint, status text, amount numeric(12,2),
                         email text, ordered_at timestamptz);
SELECT pipeline.prepare_source('raw_orders');
INSERT INTO raw_orders
SELECT g, 1 + g % 50000, (ARRAY['new', 'paid', 'shipped', 'delivered'])[1 + g % 4],
       (g % 1000) + 0.99, 'user' || g || '@example.com', now() - (g % 10000) * interval '1 minute'
  FROM generate_series(1, $ROWS) g;
VACUUM ANALYZE raw_orders, customers;
SQL

# define NAME CHECKS: a pipeline from raw_orders to a new table NAME with
# CHECKS (none, five, five_lookup); drops the previous one.
define() {
    local name=$1 checks=$2
    sql -c "SELECT pipeline.drop_pipeline('$name', if_exists => true)" -c "DROP TABLE IF EXISTS $name" \
        -c "SELECT pipeline.create_pipeline('$name', 'raw_orders', '$name', key => '{id}')" >/dev/null
    case $checks in
        five|five_lookup)
            sql <<SQL >/dev/null
SELECT pipeline.add_check('$name', 'has_customer', kind => 'not_null', column_name => 'customer_id');
SELECT pipeline.add_check('$name', 'known_status', kind => 'accepted_values', column_name => 'status',
                          accepted_values => '{new,paid,shipped,delivered,cancelled}');
SELECT pipeline.add_check('$name', 'amount_range', kind => 'range', column_name => 'amount',
                          min_value => '0', max_value => '100000');
SELECT pipeline.add_check('$name', 'email_format', kind => 'regex', column_name => 'email',
                          pattern => '^[^@]+@[^@]+\.[a-z]+\$');
SQL
            if [ "$checks" = five ]; then
                sql -c "SELECT pipeline.add_check('$name', 'not_in_future', 'ordered_at <= now()')" >/dev/null
            else
                sql -c "SELECT pipeline.add_check('$name', 'customer_exists', kind => 'relationships',
                          column_name => 'customer_id', ref_table => 'customers', ref_column => 'id')" >/dev/null
            fi ;;
    esac
}

# merge_ms NAME: runs the pipeline (every staged row) and prints its duration.
merge_ms() {
    sql -c 'CHECKPOINT' >/dev/null
    sql -Atc "CALL pipeline.run('$1')" >/dev/null
    sql -Atc "SELECT round(extract(epoch FROM duration) * 1000) FROM pipeline.runs
               WHERE pipeline = '$1' ORDER BY run_id DESC LIMIT 1"
}

say "pipeline checks benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo unknown)"
say "$(sql -Atc 'SELECT version()' | cut -d, -f1), $(nproc) cores, load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
say "$ROWS staged orders (every row passes) merged by key into an empty target, one batch, $ROUNDS rounds"
say "five: not_null, accepted_values, range, regex, and an expression (ordered_at <= now())"
say "five_lookup: the same with the expression replaced by relationships (an index lookup in customers)"
say ""

declare -A ms
for round in $(seq "$ROUNDS"); do
    for kind in none five five_lookup; do
        define "t_$kind" $kind
        sql -c "SELECT pipeline.alter_pipeline('t_$kind', batch_size => $ROWS)" >/dev/null
        echo "round $round, $kind..."
        ms[$kind]+="$(merge_ms "t_$kind") "
    done
done
for kind in five five_lookup; do
    rows=$(sql -Atc "SELECT count(*) FROM t_$kind")
    [ "$rows" = "$ROWS" ] || { echo "t_$kind has $rows rows, expected $ROWS" >&2; exit 1; }
done
none=$(echo "${ms[none]}" | median)
for kind in none five five_lookup; do
    m=$(echo "${ms[$kind]}" | median)
    say "   $(printf '%-12s' "$kind") median $(printf '%6.0f' "$m") ms   throughput ratio to none: $(awk "BEGIN {printf \"%.2f\", $none / $m}")   rounds (ms): ${ms[$kind]}"
done
say "results written to $OUT"
