#!/usr/bin/env bash
# Benchmark of full extracts (format => 'snapshot'): a 1M-row extract, of
# which 1% of the rows changed and 0.1% of the keys are gone, against a
# 1M-row target.  Side by side in one run:
#   - SCD type 1: the pipeline (strategy merge) against the best
#     hand-written full compare (an upsert of the rows that differ, then a
#     delete of the keys the extract lacks, in one transaction);
#   - SCD type 2: the pipeline (strategy scd2) against dbt's snapshot SQL
#     (check strategy, check_cols all, hard_deletes invalidate) as
#     dbt-postgres renders it: a staging table of insertions, updates and
#     deletes, then an UPDATE closing versions and an INSERT of new ones.
# Reported: the median time of each, and the ratios.  After every
# repetition each pair of targets must hold the same rows.  See README.md.
#
#   bash test/bench/snapshot.sh
#
# As root: installs what is missing, builds and installs the extension.
# Environment: SNAPSHOT_ROWS (1000000); SNAPSHOT_CHANGED (1) % of rows
# changed and SNAPSHOT_GONE (0.1) % of keys gone per extract;
# SNAPSHOT_REPEAT (3); BENCH_BUILD, BENCH_PORT (55476).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../common.sh"

ROWS=${SNAPSHOT_ROWS:-1000000}
CHANGED=${SNAPSHOT_CHANGED:-1}
GONE=${SNAPSHOT_GONE:-0.1}
REPEAT=${SNAPSHOT_REPEAT:-3}
PORT=${BENCH_PORT:-55476}
bench_setup

start_cluster "$DATA" "$WORK" "$PORT" "shared_preload_libraries = 'pipeline'
log_min_messages = warning
shared_buffers = '1GB'
work_mem = '256MB'
max_wal_size = '20GB'
checkpoint_timeout = '1h'
autovacuum = off
jit = off"

bench_clients bench
bench_results snapshot
as_test_user psql -h "$WORK" -p "$PORT" -U postgres -d postgres -X -q -c 'CREATE DATABASE bench'

# timed SQL...: the milliseconds psql's \timing reports for the statements,
# after a CHECKPOINT.
timed() {
    sql -c 'CHECKPOINT' >/dev/null
    sql -c '\timing on' "$@" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | awk '{s += $1} END {printf "%.1f", s}'
}

say "pipeline snapshot benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo unknown)"
say "$(sql -Atc 'SELECT version()' | cut -d, -f1), $(nproc) cores, load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
say "$ROWS-row target; per repetition a full extract with $CHANGED% of rows changed and $GONE% of keys gone;"
say "medians of $REPEAT"
say ""

# The first extract: the pipelines' targets and their hand-written twins.
sql >/dev/null <<SQL
CREATE EXTENSION pipeline;
CREATE TABLE src (id bigint PRIMARY KEY, name text, amount numeric(12,2), status text);
INSERT INTO src SELECT g, 'name ' || g, (g % 1000) / 10.0, 'open' FROM generate_series(1, $ROWS) g;
CREATE TABLE extracts (id bigint, name text, amount numeric(12,2), status text, version int);
CREATE TABLE accounts (id bigint PRIMARY KEY, name text, amount numeric(12,2), status text);
SELECT pipeline.create_pipeline('accounts', 'extracts', 'accounts', key => ARRAY['id'],
    format => 'snapshot', except_columns => ARRAY['version']);
SELECT pipeline.create_pipeline('history', 'extracts', 'history', key => ARRAY['id'],
    format => 'snapshot', strategy => 'scd2', sequence_by => 'version');
INSERT INTO extracts SELECT *, 1 FROM src;
CALL pipeline.run('accounts');
CALL pipeline.run('history');
CREATE TABLE accounts_hand (LIKE accounts INCLUDING ALL);
INSERT INTO accounts_hand SELECT * FROM accounts;
-- dbt's first run (build_snapshot_table)
CREATE TABLE snap AS SELECT *,
    md5(coalesce(cast(id as varchar), '') || '|' || coalesce(cast(now()::timestamp without time zone as varchar), '')) AS dbt_scd_id,
    now()::timestamp without time zone AS dbt_updated_at,
    now()::timestamp without time zone AS dbt_valid_from,
    coalesce(nullif(now()::timestamp without time zone, now()::timestamp without time zone), null) AS dbt_valid_to
  FROM (SELECT * FROM src) sbq;
TRUNCATE extracts;
VACUUM ANALYZE;
SQL

# The next extract, from src as it is: CHANGED% of rows with a new amount,
# GONE% of keys gone; staged in one transaction for the pipelines, and as
# the new src for the hand-written SQL and dbt.
cat > "$WORK/extract.sql" <<SQL
BEGIN;
CREATE TEMP TABLE nxt ON COMMIT DROP AS
SELECT id, name, CASE WHEN random() * 100 < $CHANGED THEN round((random() * 1000)::numeric, 2) ELSE amount END AS amount,
       status
  FROM src WHERE random() * 100 >= $GONE;
TRUNCATE src;
INSERT INTO src SELECT * FROM nxt;
INSERT INTO extracts SELECT *, (SELECT coalesce(max(__start_at), 0) + 1 FROM history) FROM nxt;
COMMIT;
SQL
HAND="BEGIN;
INSERT INTO accounts_hand AS t SELECT s.* FROM src s LEFT JOIN accounts_hand c USING (id)
 WHERE c.id IS NULL OR (c.name, c.amount, c.status) IS DISTINCT FROM (s.name, s.amount, s.status)
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, amount = EXCLUDED.amount, status = EXCLUDED.status;
DELETE FROM accounts_hand t WHERE NOT EXISTS (SELECT 1 FROM src s WHERE s.id = t.id);
COMMIT;"
cp "$HERE/dbt_snapshot.sql" "$WORK/dbt.sql"
chown "$TEST_USER" "$WORK"/*.sql 2>/dev/null || true

scd1_ms= ; hand_ms= ; scd2_ms= ; dbt_ms=
for rep in $(seq "$REPEAT"); do
    sql -f "$WORK/extract.sql" >/dev/null
    sql -c 'VACUUM ANALYZE' >/dev/null
    if [ $(( rep % 2 )) = 1 ]; then
        scd1_ms+="$(timed -c "CALL pipeline.run('accounts')") "
        hand_ms+="$(timed -c "$HAND") "
        scd2_ms+="$(timed -c "CALL pipeline.run('history')") "
        dbt_ms+="$(timed -f "$WORK/dbt.sql") "
    else
        dbt_ms+="$(timed -f "$WORK/dbt.sql") "
        scd2_ms+="$(timed -c "CALL pipeline.run('history')") "
        hand_ms+="$(timed -c "$HAND") "
        scd1_ms+="$(timed -c "CALL pipeline.run('accounts')") "
    fi
    diff=$(sql -Atc "SELECT count(*) FROM ((TABLE accounts EXCEPT TABLE accounts_hand) UNION ALL
                                           (TABLE accounts_hand EXCEPT TABLE accounts)) d")
    [ "$diff" = 0 ] || { say "the pipeline's target and the hand-written one differ in $diff rows"; exit 1; }
    diff=$(sql -Atc "SELECT count(*) FROM (
        (SELECT id, name, amount, status FROM history WHERE __end_at IS NULL
         EXCEPT SELECT id, name, amount, status FROM snap WHERE dbt_valid_to IS NULL) UNION ALL
        (SELECT id, name, amount, status FROM snap WHERE dbt_valid_to IS NULL
         EXCEPT SELECT id, name, amount, status FROM history WHERE __end_at IS NULL)) d")
    [ "$diff" = 0 ] || { say "the current versions of the scd2 pipeline and of dbt differ in $diff rows"; exit 1; }
    versions=$(sql -Atc "SELECT (SELECT count(*) FROM history) = (SELECT count(*) FROM snap)")
    [ "$versions" = t ] || { say "the scd2 pipeline and dbt keep different numbers of versions"; exit 1; }
    echo "repetition $rep done"
done
read -r updated deleted unchanged < <(sql -Atc "SELECT rows_updated, rows_deleted, rows_unchanged FROM pipeline.runs
                                                 WHERE pipeline = 'accounts' ORDER BY run_id DESC LIMIT 1" | tr '|' ' ')
scd1=$(echo "$scd1_ms" | median); hand=$(echo "$hand_ms" | median)
scd2=$(echo "$scd2_ms" | median); dbt=$(echo "$dbt_ms" | median)
say "$(printf '   SCD1: the pipeline run       %9.1f ms   (last run: %s updated, %s deleted, %s unchanged)' "$scd1" "$updated" "$deleted" "$unchanged")"
say "$(printf '   SCD1: hand-written compare   %9.1f ms' "$hand")"
say "$(printf '   SCD1 throughput ratio %.2fx   (runs: %s; hand-written: %s)' \
    "$(echo "$hand $scd1" | awk '{print $1 / $2}')" "$scd1_ms" "$hand_ms")"
say "$(printf '   SCD2: the pipeline run       %9.1f ms' "$scd2")"
say "$(printf '   SCD2: dbt snapshot SQL       %9.1f ms' "$dbt")"
say "$(printf '   SCD2 throughput ratio %.2fx   (runs: %s; dbt: %s)' \
    "$(echo "$dbt $scd2" | awk '{print $1 / $2}')" "$scd2_ms" "$dbt_ms")"
say "   after every repetition the SCD1 targets are equal, and so are the SCD2 targets' current versions and version counts"
say ""
say "results written to $OUT"
