#!/usr/bin/env bash
# Benchmark of the scd2 strategy: what keeping history costs.  The same
# events go, in one run, through an scd2 pipeline, a merge pipeline (the
# current rows only, SCD type 1) and a hand-written SCD2 statement in the
# style of a dbt snapshot (the newest event per key closes the current
# version and opens a new one; no late events), each into its own target.
# See README.md.
#
#   bash test/bench/scd2.sh
#
# As root: installs what is missing, builds and installs the extension.
# Environment: SCD2_KEYS (100000) keys; SCD2_REPEAT (3) repetitions;
# BENCH_BUILD, BENCH_PORT (55473).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../common.sh"

KEYS=${SCD2_KEYS:-100000}
REPEAT=${SCD2_REPEAT:-3}
PORT=${BENCH_PORT:-55473}
bench_setup

start_cluster "$DATA" "$WORK" "$PORT" "shared_preload_libraries = 'pipeline'
log_min_messages = warning
shared_buffers = '512MB'
work_mem = '256MB'
max_wal_size = '4GB'
checkpoint_timeout = '30min'
autovacuum = off
synchronous_commit = on
jit = off"

bench_clients bench
bench_results scd2
as_test_user psql -h "$WORK" -p "$PORT" -U postgres -d postgres -X -q -c 'CREATE DATABASE bench'

# timed FILE: the milliseconds psql's \timing reports for a file's statements.
timed() {
    sql -c 'CHECKPOINT' >/dev/null
    sql -c '\timing on' -f "$1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | awk '{s += $1} END {print s}'
}

# fresh: empty sources and targets, the two pipelines defined anew.
cat > "$WORK/fresh.sql" <<'SQL'
DROP SCHEMA IF EXISTS b CASCADE;
CREATE SCHEMA b;
CREATE EXTENSION IF NOT EXISTS pipeline;
CREATE TABLE b.ev_scd2 (id int, name text, city text, v int);
CREATE TABLE b.ev_merge (LIKE b.ev_scd2);
CREATE TABLE b.ev_hand (LIKE b.ev_scd2);
SELECT pipeline.create_pipeline('b_scd2', 'b.ev_scd2', 'b.dim_scd2', key => ARRAY['id'],
                                strategy => 'scd2', sequence_by => 'v');
SELECT pipeline.create_pipeline('b_merge', 'b.ev_merge', 'b.dim_merge', key => ARRAY['id'],
                                sequence_by => 'v');
CREATE TABLE b.dim_hand (id int, name text, city text, v int, __start_at int NOT NULL, __end_at int,
                         PRIMARY KEY (id, __start_at));
CREATE UNIQUE INDEX ON b.dim_hand (id) WHERE __end_at IS NULL;
SQL
# round R (1: every key new, 2: a new city for every key, 3: a new city for
# half the keys, one event in ten of them late: between rounds 1 and 2).
events() {
    case $1 in
        1) echo "SELECT g, 'name ' || g, 'city ' || (g % 97), 10 FROM generate_series(1, $KEYS) g" ;;
        2) echo "SELECT g, 'name ' || g, 'town ' || (g % 89), 20 FROM generate_series(1, $KEYS) g" ;;
        3) echo "SELECT g, 'name ' || g, 'village ' || (g % 83), CASE WHEN g % 20 = 0 THEN 15 ELSE 30 END
                   FROM generate_series(1, $KEYS, 2) g" ;;
    esac
}
cat > "$WORK/run_scd2.sql" <<'SQL'
CALL pipeline.run('b_scd2');
SQL
cat > "$WORK/run_merge.sql" <<'SQL'
CALL pipeline.run('b_merge');
SQL
cat > "$WORK/run_hand.sql" <<'SQL'
BEGIN;
WITH latest AS (SELECT DISTINCT ON (id) id, name, city, v FROM b.ev_hand ORDER BY id, v DESC),
closed AS (UPDATE b.dim_hand d SET __end_at = l.v FROM latest l
            WHERE d.id = l.id AND d.__end_at IS NULL AND (d.name, d.city) IS DISTINCT FROM (l.name, l.city)
           RETURNING d.id)
INSERT INTO b.dim_hand SELECT l.id, l.name, l.city, l.v, l.v, NULL FROM latest l
 WHERE l.id IN (SELECT id FROM closed) OR NOT EXISTS (SELECT 1 FROM b.dim_hand d WHERE d.id = l.id);
TRUNCATE b.ev_hand;
COMMIT;
SQL
chown "$TEST_USER" "$WORK"/*.sql 2>/dev/null || true

say "pipeline scd2 benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo unknown)"
say "$(sql -Atc 'SELECT version()' | cut -d, -f1), $(nproc) cores, load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
say "$KEYS keys; round 1: every key new; round 2: a new city for every key; round 3: half the keys, 10% of their events late"
say "(the hand-written statement takes no late events: round 3 is scd2 and merge only); medians of $REPEAT"
say ""

declare -A ms
for rep in $(seq "$REPEAT"); do
    sql -f "$WORK/fresh.sql" >/dev/null
    for round in 1 2 3; do
        for t in scd2 merge hand; do
            [ "$round" = 3 ] && [ $t = hand ] && continue
            sql -c "INSERT INTO b.ev_$t $(events "$round")" -c "VACUUM ANALYZE b.ev_$t" >/dev/null
            ms[$round,$t]+="$(timed "$WORK/run_$t.sql") "
            sql -c "VACUUM ANALYZE b.dim_$t" >/dev/null
        done
        if [ "$round" = 2 ]; then
            diff=$(sql -Atc "SELECT count(*) FROM ((TABLE b.dim_scd2 EXCEPT ALL TABLE b.dim_hand)
                                                   UNION ALL (TABLE b.dim_hand EXCEPT ALL TABLE b.dim_scd2)) x")
            [ "$diff" = 0 ] || { say "scd2 and hand-written histories differ in $diff rows"; exit 1; }
        fi
    done
    echo "repetition $rep done"
done

for round in 1 2 3; do
    line="round $round:"
    for t in scd2 merge hand; do
        [ -n "${ms[$round,$t]:-}" ] || continue
        line+="  $t $(echo "${ms[$round,$t]}" | median | awk '{printf "%.0f", $1}') ms"
    done
    say "$line"
done
say "versions in the scd2 target: $(sql -Atc 'SELECT count(*) FROM b.dim_scd2'), current: $(sql -Atc 'SELECT count(*) FROM b.dim_scd2 WHERE __end_at IS NULL')"
say "results written to $OUT"
