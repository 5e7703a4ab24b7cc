#!/usr/bin/env bash
# Benchmark of the background workers: how long a staged row takes from its
# commit to its visibility in the target, with a continuous pipeline and
# with the best pg_cron can do (a run every minute), side by side in one
# run; what a continuous pipeline costs the writers; and the end-to-end
# latency of a three-stage DAG (raw -> silver -> gold).  See README.md.
#
#   bash test/bench/latency.sh
#
# As root: installs what is missing, builds and installs the extension.
# Environment: LATENCY_SECONDS (30) of load per rate; INGEST_SECONDS (20)
# per ingest round, INGEST_ROUNDS (3) rounds of each kind, alternating;
# BENCH_BUILD, BENCH_PORT (55471).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../common.sh"

SECONDS_PER_RATE=${LATENCY_SECONDS:-30}
INGEST_SECONDS=${INGEST_SECONDS:-20}
INGEST_ROUNDS=${INGEST_ROUNDS:-3}
PORT=${BENCH_PORT:-55471}
bench_setup

# Commit timestamps date both ends of a row's trip: its commit into
# staging, and the commit of the batch that wrote it into the target.
SETTINGS="shared_buffers = '512MB'
max_wal_size = '4GB'
checkpoint_timeout = '30min'
track_commit_timestamp = on
synchronous_commit = on
jit = off
max_worker_processes = 16
cron.database_name = 'bench'
cron.use_background_workers = on"
start_cluster "$DATA" "$WORK" "$PORT" "shared_preload_libraries = 'pipeline,pg_cron'
log_min_messages = warning
$SETTINGS"

bench_clients bench
bench_results latency

as_test_user psql -h "$WORK" -p "$PORT" -U postgres -d postgres -X -q -c 'CREATE DATABASE bench'
sql <<'SQL'
CREATE EXTENSION pipeline;
CREATE EXTENSION pg_cron;
CREATE SEQUENCE event_ids;
CREATE TABLE events (id bigint, customer int, amount numeric(12,2), payload text);
-- the ingest id a hand-written incremental merge needs (section 2)
CREATE INDEX ON events (id);
-- the continuous pipeline, and one run by pg_cron every minute
SELECT pipeline.create_pipeline('live', 'events', 'events_live', key => ARRAY['id'],
                                schedule => 'continuous');
SELECT pipeline.create_pipeline('cron', 'events', 'events_cron', key => ARRAY['id']);
SELECT pipeline.pause('cron');
-- the latency of every row that reached a target during a phase
CREATE FUNCTION latency(target regclass, since timestamptz, OUT rows bigint,
                        OUT p50 float8, OUT p95 float8, OUT p99 float8, OUT max float8)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format($q$
        SELECT count(*),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY ms),
               percentile_cont(0.95) WITHIN GROUP (ORDER BY ms),
               percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), max(ms)
          FROM (SELECT extract(epoch FROM pg_xact_commit_timestamp(t.xmin)
                                          - pg_xact_commit_timestamp(s.xmin)) * 1000 AS ms
                  FROM events s JOIN %s t USING (id)
                 WHERE pg_xact_commit_timestamp(s.xmin) >= $1) l$q$, target)
      INTO rows, p50, p95, p99, max USING since;
END $$;
SQL
# The best hand-written continuous merge of the same rows, for section 2:
# a watermark on the ingest id, moved with the upsert in one transaction,
# looped for as long as the writers write (caveat the pipeline does not
# have: a writer committing after one with higher ids has its rows skipped).
sql <<'SQL'
CREATE TABLE events_hand (id bigint PRIMARY KEY, customer int, amount numeric(12,2), payload text);
CREATE TABLE hand_watermark (last_id bigint NOT NULL);
INSERT INTO hand_watermark VALUES (0);
CREATE PROCEDURE hand_merge(seconds float8) LANGUAGE plpgsql AS $$
DECLARE
    stop timestamptz := clock_timestamp() + make_interval(secs => seconds);
    lo bigint;
    hi bigint;
BEGIN
    WHILE clock_timestamp() < stop LOOP
        SELECT last_id INTO lo FROM hand_watermark;
        SELECT coalesce(max(id), lo) INTO hi FROM events;
        IF hi = lo THEN
            PERFORM pg_sleep(0.01);
            CONTINUE;
        END IF;
        INSERT INTO events_hand AS t
        SELECT DISTINCT ON (id) id, customer, amount, payload FROM events
         WHERE id > lo AND id <= hi ORDER BY id
            ON CONFLICT (id) DO UPDATE
           SET customer = excluded.customer, amount = excluded.amount, payload = excluded.payload;
        UPDATE hand_watermark SET last_id = hi;
        COMMIT;
    END LOOP;
END $$;
SQL
cat > "$WORK/insert.sql" <<'SQL'
INSERT INTO events (id, customer, amount, payload)
SELECT nextval('event_ids'), (random() * 10000)::int, round((random() * 500)::numeric, 2),
       md5(random()::text) FROM generate_series(1, :n);
SQL
chown "$TEST_USER" "$WORK/insert.sql" 2>/dev/null || true

say "pipeline latency benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo unknown)"
say "$(sql -Atc 'SELECT version()' | cut -d, -f1), $(nproc) cores, load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
say "latency: commit timestamp of the target row's batch minus that of the staged row (track_commit_timestamp)"
say ""

# load RATE_ROWS SECONDS: 4 pgbench clients staging RATE_ROWS rows/s, 100
# transactions a second (of 10 rows at 1,000 rows/s, of 100 at 10,000).
load() { pgbench -c 4 -j 2 -T "$2" -R 100 -D n=$(( $1 / 100 )) -f "$WORK/insert.sql" >/dev/null 2>&1; }

# wait_caught_up TARGET: until every staged row is in the target.
wait_caught_up() {
    for _ in $(seq 600); do
        [ "$(sql -Atc "SELECT (SELECT count(*) FROM events) = (SELECT count(*) FROM $1)")" = t ] && return
        sleep 0.5
    done
    echo "$1 did not catch up" >&2
    exit 1
}

report() {  # report LABEL TARGET SINCE
    sql -Atc "SELECT format('%-52s %7s rows  p50 %8s ms  p95 %8s ms  p99 %8s ms  max %8s ms', \$label\$$1\$label\$, rows,
                     round(p50::numeric, 1), round(p95::numeric, 1), round(p99::numeric, 1), round(max::numeric, 1))
                FROM latency('$2', '$3')" | tee -a "$OUT"
}

say "1. Commit-to-target latency"
for rate in 1000 10000; do
    echo "continuous pipeline at $rate rows/s..."
    since=$(sql -Atc 'SELECT clock_timestamp()')
    load "$rate" "$SECONDS_PER_RATE"
    wait_caught_up events_live
    report "continuous pipeline, $rate rows/s" events_live "$since"
done

echo "pg_cron every minute at 1000 rows/s (two minutes of load)..."
sql -c "SELECT pipeline.resume('cron')" \
    -c "SELECT cron.schedule('cron_run', '* * * * *', \$\$CALL pipeline.run('cron')\$\$)" >/dev/null
sql -c "CALL pipeline.run('cron')" >/dev/null           # catch up with the earlier phases
since=$(sql -Atc 'SELECT clock_timestamp()')
load 1000 120
wait_caught_up events_cron
report "pg_cron '* * * * *' CALL pipeline.run, 1000 rows/s" events_cron "$since"
sql -c "SELECT cron.unschedule('cron_run')" -c "SELECT pipeline.pause('cron')" >/dev/null
say "(pg_cron 1.4 schedules by the minute: a row waits for the next whole minute, 30 s on average)"
say ""

say "2. Ingest cost: staging throughput, 8 pgbench clients, 10-row transactions, no rate limit;"
say "   without a merge, with the continuous pipeline, and with the best hand-written merge looped"
declare -A tps
hand_behind=
for round in $(seq "$INGEST_ROUNDS"); do
    for mode in without with hand; do
        if [ $mode = with ]; then sql -c "SELECT pipeline.resume('live')" >/dev/null
        else sql -c "SELECT pipeline.pause('live')" >/dev/null; fi
        echo "ingest round $round, $mode..."
        hand_pid=
        if [ $mode = hand ]; then
            sql -c "CALL hand_merge($INGEST_SECONDS + 1)" >/dev/null &
            hand_pid=$!
        fi
        t=$(pgbench -c 8 -j 2 -T "$INGEST_SECONDS" -D n=10 -f "$WORK/insert.sql" 2>/dev/null |
            sed -n 's/^tps = \([0-9.]*\).*/\1/p')
        if [ -n "$hand_pid" ]; then
            wait "$hand_pid"
            hand_behind+="$(sql -Atc 'SELECT count(*) FROM events WHERE id > (SELECT last_id FROM hand_watermark)') "
        fi
        tps[$mode]+="$t "
        sql -c "SELECT pipeline.resume('live')" >/dev/null
        wait_caught_up events_live
    done
done
without=$(echo "${tps[without]}" | median)
with=$(echo "${tps[with]}" | median)
hand=$(echo "${tps[hand]}" | median)
say "   without a merge:              $(awk "BEGIN {printf \"%8.0f transactions/s (%.0f rows/s)\", $without, $without * 10}")   rounds: ${tps[without]}"
say "   with a continuous pipeline:   $(awk "BEGIN {printf \"%8.0f transactions/s (%.0f rows/s)\", $with, $with * 10}")   rounds: ${tps[with]}"
say "   with a hand-written merge:    $(awk "BEGIN {printf \"%8.0f transactions/s (%.0f rows/s)\", $hand, $hand * 10}")   rounds: ${tps[hand]}"
say "   rows the hand-written merge had not merged when its writers stopped, by round: $hand_behind"
say "   ratio with the pipeline / without: $(awk "BEGIN {printf \"%.2f\", $with / $without}"); with the hand-written merge / without: $(awk "BEGIN {printf \"%.2f\", $hand / $without}"); pipeline / hand-written: $(awk "BEGIN {printf \"%.2f\", $with / $hand}")"
say ""

say "3. Three-stage DAG: events (raw) -> events_silver -> events_gold, both continuous;"
say "   gold reads silver's change log, published in silver's merge transaction"
sql -c "SELECT pipeline.pause('live')" >/dev/null
sql <<'SQL' >/dev/null
SELECT pipeline.create_pipeline('silver', 'events', 'events_silver', key => ARRAY['id'],
                                schedule => 'continuous');
SELECT pipeline.create_pipeline('gold', 'events_silver', 'events_gold', key => ARRAY['id'],
                                columns => '{"payload": null}', schedule => 'continuous');
SQL
wait_caught_up events_silver
wait_caught_up events_gold
for rate in 1000 10000; do
    echo "DAG at $rate rows/s..."
    since=$(sql -Atc 'SELECT clock_timestamp()')
    load "$rate" "$SECONDS_PER_RATE"
    wait_caught_up events_gold
    report "raw -> silver, $rate rows/s" events_silver "$since"
    report "raw -> silver -> gold (end to end), $rate rows/s" events_gold "$since"
done
say "results written to $OUT"
