#!/usr/bin/env bash
# Benchmark of the OpenLineage HTTP transport: how fast the shipper takes a
# backlog of SHIPPING_EVENTS events (the START and end of real runs) to a
# local receiver (receiver.js, Node's HTTP server), and what shipping costs
# a merge running meanwhile: the same merge timed with the shipper busy
# with that backlog and with the transport off, alternating.  See README.md.
#
#   bash test/bench/shipping.sh
#
# As root: installs what is missing, builds and installs the extension.
# Environment: SHIPPING_EVENTS (100000); SHIPPING_MERGE_ROWS (200000) staged
# rows of each merge into a target of as many; SHIPPING_ROUNDS (5);
# BENCH_BUILD, BENCH_PORT (55476), SHIPPING_RECEIVER_PORT (55477).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../common.sh"

EVENTS=${SHIPPING_EVENTS:-100000}
ROWS=${SHIPPING_MERGE_ROWS:-200000}
ROUNDS=${SHIPPING_ROUNDS:-5}
PORT=${BENCH_PORT:-55476}
RPORT=${SHIPPING_RECEIVER_PORT:-55477}
bench_setup

start_cluster "$DATA" "$WORK" "$PORT" "shared_preload_libraries = 'pipeline'
log_min_messages = warning
shared_buffers = '512MB'
work_mem = '64MB'
max_wal_size = '4GB'
checkpoint_timeout = '30min'
jit = off"
bench_clients bench
bench_results shipping
cp "$HERE/receiver.js" "$WORK/receiver.js"
as_test_user node "$WORK/receiver.js" "$RPORT" > "$WORK/receiver.log" 2>&1 &
# as_test_user runs it under runuser: stop the node process itself
trap 'pkill -f "$WORK/receiver.js" 2>/dev/null || true; bench_cleanup' EXIT

as_test_user psql -h "$WORK" -p "$PORT" -U postgres -d postgres -X -q -c 'CREATE DATABASE bench'
say "pipeline shipping benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo unknown)"
say "$(sql -Atc 'SELECT version()' | cut -d, -f1), $(nproc) cores, load average at start $(cut -d' ' -f1-3 /proc/loadavg)"

# ten small pipelines make the events; a merge of ROWS staged rows is the
# run that shipping must not slow down
sql -o /dev/null <<SQL
CREATE EXTENSION pipeline;
DO \$\$
BEGIN
  FOR i IN 0 .. 9 LOOP
    EXECUTE format('CREATE TABLE s_%s (id int, v int)', i);
    EXECUTE format('CREATE TABLE t_%s (id int PRIMARY KEY, v int)', i);
    PERFORM pipeline.create_pipeline('p_' || i, 's_' || i, 't_' || i, key => '{id}');
  END LOOP;
END
\$\$;
CREATE TABLE staged_orders (id bigint, amount numeric, note text);
CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric, note text);
INSERT INTO orders SELECT g, g, md5(g::text) FROM generate_series(1, $ROWS) g;
SELECT pipeline.create_pipeline('orders', 'staged_orders', 'orders', key => '{id}', batch_size => 1000000) > 0 AS created;
VACUUM ANALYZE;
SQL

# transport ARGS: sets the transport to the receiver, with ARGS.
transport() {
    sql -Atc "SELECT pipeline.set_openlineage_transport('http://127.0.0.1:$RPORT'${1:+, $1})" > /dev/null
}
# unship: every event pending again, a backlog for the shipper.
unship() { sql -c "UPDATE pipeline.openlineage_run_events SET acknowledged_at = NULL" > /dev/null; }

# ---- 1. the backlog: EVENTS/2 runs, each merging a row, two clients (each
# its own five pipelines: runs of one pipeline never overlap)
echo "making $EVENTS events..."
cat > "$WORK/run.sql" <<'SQL'
\set p :client_id * 5 + random(0, 4)
\set id random(1, 1000000)
INSERT INTO s_:p VALUES (:id, :id);
CALL pipeline.run('p_' || :p);
SQL
transport "enabled => false"
pgbench -c 2 -j 2 -t $((EVENTS / 4)) -f "$WORK/run.sql" > /dev/null
made=$(sql -Atc 'SELECT count(*) FROM pipeline.openlineage_run_events')
say ""
say "1. Shipping a backlog of $(printf "%'d" "$made") events (the START and end of $(printf "%'d" $((made / 2))) runs) to a local receiver"

# ship: enables the transport with batch size $1 and waits until nothing is
# pending; prints the seconds it took
ship() {
    local start end
    unship
    transport "batch_size => $1"
    start=$(date +%s%N)
    until [ "$(sql -Atc 'SELECT pending_events FROM pipeline.openlineage_shipping')" = 0 ]; do sleep 0.1; done
    end=$(date +%s%N)
    transport "enabled => false"
    awk "BEGIN {printf \"%.2f\", ($end - $start) / 1e9}"
}
for batch in 100 1000; do
    s=$(ship $batch)
    say "   batch_size $batch: $s s, $(awk "BEGIN {printf \"%'.0f\", $made / $s}") events/s"
done
[ "$(sql -Atc 'SELECT failures + rejected_events FROM pipeline.openlineage_shipping')" = 0 ] ||
    { say "!!! the shipper failed or gave events up"; exit 1; }

# ---- 2. a merge while the shipper ships the backlog, against the transport off
say ""
say "2. A merge of $(printf "%'d" "$ROWS") staged rows (half updates, half new keys) into $(printf "%'d" "$ROWS") rows,"
say "   with the shipper busy with the backlog above, and with the transport off ($ROUNDS rounds each, alternating)"
merge() {
    # the same state both ways: the backlog pending, vacuumed, checkpointed
    unship
    sql -c "TRUNCATE staged_orders" -c "DELETE FROM orders WHERE id > $ROWS" \
        -c "INSERT INTO staged_orders SELECT g, g + 1, md5(g::text) FROM generate_series($ROWS / 2, $ROWS + $ROWS / 2) g" \
        -c "VACUUM ANALYZE staged_orders, orders, pipeline.openlineage_run_events" -c "CHECKPOINT" > /dev/null
    if [ "$1" = on ]; then
        transport
        # the shipper has started and ships
        until [ "$(sql -Atc 'SELECT shipped_events > 0 FROM pipeline.openlineage_shipping')" = t ]; do sleep 0.05; done
        sql -c "UPDATE pipeline.openlineage_transport SET shipped_events = 0" > /dev/null
    fi
    { echo '\timing on'; echo "CALL pipeline.run('orders');"; } | sql | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p'
    if [ "$1" = on ]; then
        shipped=$(sql -Atc 'SELECT shipped_events FROM pipeline.openlineage_shipping')
        echo "$shipped" >> "$WORK/shipped_during"
        transport "enabled => false"
    fi
}
on=() off=()
for ((r = 1; r <= ROUNDS; r++)); do
    echo "round $r/$ROUNDS"
    if ((r % 2)); then on+=("$(merge on)"); off+=("$(merge off)"); else off+=("$(merge off)"); on+=("$(merge on)"); fi
done
m_on=$(echo "${on[*]}" | median); m_off=$(echo "${off[*]}" | median)
say "   transport off:          $(printf '%8.1f' "$m_off") ms  (${off[*]})"
say "   shipping meanwhile:     $(printf '%8.1f' "$m_on") ms  (${on[*]})"
say "   events shipped during each merge: $(paste -sd' ' "$WORK/shipped_during")"
say "   ratio off / on: $(awk "BEGIN {printf \"%.2f\", $m_off / $m_on}")"
