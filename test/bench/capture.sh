#!/usr/bin/env bash
# Benchmark of capture: what pipeline.capture costs the application writing
# a table.  pgbench writes an OLTP table (an update by primary key and an
# insert per transaction) with the table captured and not, alternating
# rounds, in one run; and the same in replica mode (session_replication_role
# = replica, as a subscription's apply worker writes), where the row-level
# capture triggers log.  See README.md.
#
#   bash test/bench/capture.sh
#
# As root: installs what is missing, builds and installs the extension.
# Environment: CAPTURE_SECONDS (20) per round; CAPTURE_ROUNDS (3);
# BENCH_BUILD, BENCH_PORT (55472).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../common.sh"

SECONDS_PER_ROUND=${CAPTURE_SECONDS:-20}
ROUNDS=${CAPTURE_ROUNDS:-3}
PORT=${BENCH_PORT:-55472}
bench_setup

start_cluster "$DATA" "$WORK" "$PORT" "shared_preload_libraries = 'pipeline'
log_min_messages = warning
shared_buffers = '512MB'
max_wal_size = '4GB'
checkpoint_timeout = '30min'
synchronous_commit = on
jit = off"

bench_clients bench
bench_results capture

as_test_user psql -h "$WORK" -p "$PORT" -U postgres -d postgres -X -q -c 'CREATE DATABASE bench'
sql <<'SQL'
CREATE EXTENSION pipeline;
CREATE TABLE accounts (id bigint PRIMARY KEY, owner text NOT NULL, balance numeric(12,2) NOT NULL,
                       note text, updated_at timestamptz NOT NULL DEFAULT now());
INSERT INTO accounts SELECT g, 'owner ' || g, 100, md5(g::text), now()
  FROM generate_series(1, 100000) g;
CREATE SEQUENCE new_ids START 1000001;
VACUUM ANALYZE accounts;
SQL
cat > "$WORK/oltp.sql" <<'SQL'
\set id random(1, 100000)
BEGIN;
UPDATE accounts SET balance = balance + 1, updated_at = now() WHERE id = :id;
INSERT INTO accounts (id, owner, balance, note) VALUES (nextval('new_ids'), 'new', 0, md5(random()::text));
COMMIT;
SQL
chown "$TEST_USER" "$WORK/oltp.sql" 2>/dev/null || true

say "pipeline capture benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo unknown)"
say "$(sql -Atc 'SELECT version()' | cut -d, -f1), $(nproc) cores, load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
say "pgbench, 8 clients, ${SECONDS_PER_ROUND} s rounds: per transaction one UPDATE by primary key and one INSERT into accounts (100,000 rows)"
say "captured: pipeline.capture('accounts') and a (manual) pipeline reading it (the triggers log every change, read or not)"
say "replica mode: the same, each pgbench session with session_replication_role = replica (row-level capture triggers)"
say ""

declare -A tps
for round in $(seq "$ROUNDS"); do
    for mode in plain captured plain_replica captured_replica; do
        if [ "${mode#captured}" != "$mode" ]; then
            sql -c "SELECT pipeline.capture('accounts')" \
                -c "SELECT pipeline.create_pipeline('accounts_copy', 'accounts', 'accounts_copy', key => ARRAY['id'])" >/dev/null
        else
            sql -c "SELECT pipeline.drop_pipeline('accounts_copy', if_exists => true)" \
                -c "DROP TABLE IF EXISTS accounts_copy" \
                -c "SELECT pipeline.uncapture('accounts', if_exists => true)" >/dev/null
        fi
        role=origin
        [ "${mode%replica}" != "$mode" ] && role=replica
        sql -c 'CHECKPOINT' >/dev/null
        echo "round $round, $mode..."
        PGOPTIONS="-c session_replication_role=$role" \
            pgbench -c 8 -j 2 -T "$SECONDS_PER_ROUND" -f "$WORK/oltp.sql" >"$WORK/pgbench.out" 2>&1 ||
            { cat "$WORK/pgbench.out" >&2; exit 1; }
        t=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$WORK/pgbench.out")
        tps[$mode]+="$t "
    done
done
changes=$(sql -Atc "SELECT count(*) FROM accounts_changes")
for kind in "" _replica; do
    plain=$(echo "${tps[plain$kind]}" | median)
    captured=$(echo "${tps[captured$kind]}" | median)
    [ -n "$kind" ] && say "   in replica mode:"
    say "   not captured:   $(awk "BEGIN {printf \"%8.0f transactions/s\", $plain}")   rounds: ${tps[plain$kind]}"
    say "   captured:       $(awk "BEGIN {printf \"%8.0f transactions/s\", $captured}")   rounds: ${tps[captured$kind]}"
    say "   ratio captured / not captured: $(awk "BEGIN {printf \"%.2f\", $captured / $plain}")"
done
say "   (the last captured round wrote $changes changes into accounts_changes)"
say "results written to $OUT"
