#!/usr/bin/env bash
# Benchmark of redelivery-heavy CDC into a merge: events of which a share
# are identical to the row the target holds (a connector restarting from an
# older offset redelivers them).  The same events go, side by side in one
# run, through a merge pipeline, which writes nothing for an event equal to
# the stored row, and through the hand-written statement that upserts every
# event (INSERT ... ON CONFLICT DO UPDATE of each key's latest event).
# Reported: the time of each, their ratio, and the WAL each wrote
# (pg_current_wal_lsn before and after).  See README.md.
#
#   bash test/bench/redelivery.sh
#
# As root: installs what is missing, builds and installs the extension.
# Environment: REDELIVERY_ROWS (1000000) rows in the target;
# REDELIVERY_EVENTS (100000) events per repetition; REDELIVERY_SAME (30) %
# of them identical to the stored row; REDELIVERY_REPEAT (3); BENCH_BUILD,
# BENCH_PORT (55475).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../common.sh"

ROWS=${REDELIVERY_ROWS:-1000000}
EVENTS=${REDELIVERY_EVENTS:-100000}
SAME=${REDELIVERY_SAME:-30}
REPEAT=${REDELIVERY_REPEAT:-3}
PORT=${BENCH_PORT:-55475}
bench_setup

start_cluster "$DATA" "$WORK" "$PORT" "shared_preload_libraries = 'pipeline'
log_min_messages = warning
shared_buffers = '1GB'
work_mem = '256MB'
max_wal_size = '20GB'
checkpoint_timeout = '1h'
autovacuum = off
synchronous_commit = on
jit = off"

bench_clients bench
bench_results redelivery
as_test_user psql -h "$WORK" -p "$PORT" -U postgres -d postgres -X -q -c 'CREATE DATABASE bench'

# timed SQL...: "<ms> <bytes>": the milliseconds psql's \timing reports for
# the statements, after a CHECKPOINT (each pays the full-page images of
# what it writes), and the WAL they wrote.
timed() {
    local before after ms
    sql -c 'CHECKPOINT' >/dev/null
    before=$(sql -Atc 'SELECT pg_current_wal_lsn()')
    ms=$(sql -c '\timing on' "$@" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | awk '{s += $1} END {printf "%.1f", s}')
    after=$(sql -Atc 'SELECT pg_current_wal_lsn()')
    echo "$ms $(sql -Atc "SELECT pg_wal_lsn_diff('$after', '$before')::bigint")"
}
# measure KIND SQL...: timed, its figures added to KIND_ms and KIND_wal.
measure() {
    local kind=$1 ms wal
    shift
    read -r ms wal < <(timed "$@")
    eval "${kind}_ms+=\"$ms \"; ${kind}_wal+=\"$wal \""
}

say "pipeline redelivery benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo unknown)"
say "$(sql -Atc 'SELECT version()' | cut -d, -f1), $(nproc) cores, load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
say "$ROWS-row target; per repetition $EVENTS change events, $SAME% of them identical to the stored row"
say "(a redelivery: same values, same sequence), the others a newer version; medians of $REPEAT"
say ""

sql >/dev/null <<SQL
CREATE EXTENSION pipeline;
CREATE TABLE cdc (id bigint, name text, amount numeric(12,2), lsn bigint);
CREATE TABLE cdc_hand (LIKE cdc);
SELECT pipeline.create_pipeline('accounts', 'cdc', 'accounts', key => ARRAY['id'],
    sequence_by => 'lsn', batch_size => 1000000);
INSERT INTO cdc SELECT g, 'name ' || g, (g % 1000) / 10.0, 1 FROM generate_series(1, $ROWS) g;
CALL pipeline.run('accounts');
CREATE TABLE accounts_hand (id bigint PRIMARY KEY, name text, amount numeric(12,2), lsn bigint);
INSERT INTO accounts_hand SELECT id, name, amount, lsn FROM accounts;
TRUNCATE cdc_hand;
VACUUM ANALYZE accounts, accounts_hand;
CREATE SEQUENCE lsn START 2;
SQL
# events: ids at random; SAME% repeat the stored row, the rest carry a new
# amount and a newer lsn.  The same events are staged for both.
cat > "$WORK/events.sql" <<SQL
BEGIN;
CREATE TEMP TABLE ev ON COMMIT DROP AS
SELECT a.id, a.name,
       CASE WHEN r.same THEN a.amount ELSE round((random() * 1000)::numeric, 2) END AS amount,
       CASE WHEN r.same THEN a.lsn ELSE nextval('lsn') END AS lsn
  FROM (SELECT DISTINCT 1 + (random() * ($ROWS - 1))::bigint AS id FROM generate_series(1, $EVENTS)) k
  JOIN accounts a ON a.id = k.id,
  LATERAL (SELECT random() * 100 < $SAME + 0 * k.id AS same) r;
INSERT INTO cdc (id, name, amount, lsn) SELECT id, name, amount, lsn FROM ev;
INSERT INTO cdc_hand SELECT id, name, amount, lsn FROM ev;
COMMIT;
SQL
HAND="INSERT INTO accounts_hand AS t (id, name, amount, lsn)
SELECT DISTINCT ON (id) id, name, amount, lsn FROM cdc_hand ORDER BY id, lsn DESC
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, amount = EXCLUDED.amount, lsn = EXCLUDED.lsn
 WHERE t.lsn <= EXCLUDED.lsn"
chown "$TEST_USER" "$WORK"/*.sql 2>/dev/null || true

run_ms= ; hand_ms= ; run_wal= ; hand_wal=
for rep in $(seq "$REPEAT"); do
    sql -f "$WORK/events.sql" >/dev/null
    sql -c 'VACUUM ANALYZE cdc, cdc_hand, accounts, accounts_hand' >/dev/null
    if [ $(( rep % 2 )) = 1 ]; then
        measure run -c "CALL pipeline.run('accounts')"
        measure hand -c "$HAND"
    else
        measure hand -c "$HAND"
        measure run -c "CALL pipeline.run('accounts')"
    fi
    sql -c 'TRUNCATE cdc_hand' >/dev/null
    diff=$(sql -Atc "SELECT count(*) FROM ((TABLE accounts EXCEPT TABLE accounts_hand) UNION ALL
                                           (TABLE accounts_hand EXCEPT TABLE accounts)) d")
    [ "$diff" = 0 ] || { say "the pipeline's target and the hand-written one differ in $diff rows"; exit 1; }
    echo "repetition $rep done"
done
read -r updated unchanged < <(sql -Atc "SELECT rows_updated, rows_unchanged FROM pipeline.runs
                                         WHERE pipeline = 'accounts' ORDER BY run_id DESC LIMIT 1" | tr '|' ' ')
run=$(echo "$run_ms" | median); hand=$(echo "$hand_ms" | median)
rwal=$(echo "$run_wal" | median); hwal=$(echo "$hand_wal" | median)
say "$(printf '   the pipeline run         %9.1f ms   WAL %12.0f bytes   (last run: %s updated, %s unchanged)' "$run" "$rwal" "$updated" "$unchanged")"
say "$(printf '   hand-written upsert     %9.1f ms   WAL %12.0f bytes' "$hand" "$hwal")"
say "$(printf '   throughput ratio %.2fx, WAL ratio %.2f   (runs: %s; hand-written: %s)' \
    "$(echo "$hand $run" | awk '{print $1 / $2}')" "$(echo "$rwal $hwal" | awk '{print $1 / $2}')" "$run_ms" "$hand_ms")"
say "   after every repetition both targets are equal"
say ""
say "results written to $OUT"
