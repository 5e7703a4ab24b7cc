#!/usr/bin/env bash
# Benchmark of the run workers under many continuous pipelines: 200 of them
# (s1..s200 -> t1..t200), writers staging 10,000 rows/s in total into
# random ones, for each pipeline.max_workers asked for; the commit-to-target
# latency of every row (commit timestamp of the target row's batch minus
# that of the staged row), how many runs the pipelines made and how many
# worker processes served them.  See README.md.
#
#   bash test/bench/many_continuous.sh
#
# As root: installs what is missing, builds and installs the extension.
# Environment: MANY_PIPELINES (200), MANY_RATE (10000) rows/s,
# MANY_SECONDS (30) of load, MANY_WORKERS ("4 8") settings of
# pipeline.max_workers to compare; BENCH_BUILD, BENCH_PORT (55472).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../common.sh"

PIPELINES=${MANY_PIPELINES:-200}
RATE=${MANY_RATE:-10000}
LOAD_SECONDS=${MANY_SECONDS:-30}
WORKER_SETTINGS=${MANY_WORKERS:-4 8}
PORT=${BENCH_PORT:-55472}
bench_setup
bench_clients bench
bench_results many_continuous

say "pipeline benchmark: $PIPELINES continuous pipelines, $RATE rows/s in total, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo unknown)"
say "$(nproc) cores, load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
say "latency: commit timestamp of the target row's batch minus that of the staged row (track_commit_timestamp)"
say ""

# 100 transactions a second of RATE/100 rows, each into one random source
cat > "$WORK/insert.sql" <<SQL
\\set p random(1, $PIPELINES)
INSERT INTO s:p (id, v) SELECT nextval('ids'), 1 FROM generate_series(1, :n);
SQL
chown "$TEST_USER" "$WORK/insert.sql" 2>/dev/null || true

for workers in $WORKER_SETTINGS; do
    rm -rf "$DATA"
    start_cluster "$DATA" "$WORK" "$PORT" "shared_preload_libraries = 'pipeline'
log_min_messages = warning
shared_buffers = '512MB'
max_wal_size = '4GB'
checkpoint_timeout = '30min'
track_commit_timestamp = on
synchronous_commit = on
jit = off
max_worker_processes = $(( workers + 8 ))
pipeline.max_workers = $workers"
    as_test_user psql -h "$WORK" -p "$PORT" -U postgres -d postgres -X -q -c 'CREATE DATABASE bench'
    echo "max_workers $workers: creating $PIPELINES continuous pipelines..."
    sql <<SQL >/dev/null
CREATE EXTENSION pipeline;
CREATE SEQUENCE ids;
DO \$\$
BEGIN
    FOR i IN 1..$PIPELINES LOOP
        EXECUTE format('CREATE TABLE s%s (id bigint, v int)', i);
        PERFORM pipeline.create_pipeline('p' || i, 's' || i, 't' || i, key => ARRAY['id'],
                                         schedule => 'continuous');
    END LOOP;
END \$\$;
-- every row's latency since a time, over all the pipelines
CREATE FUNCTION latency(since timestamptz, OUT rows bigint, OUT p50 float8, OUT p95 float8,
                        OUT p99 float8, OUT max float8)
LANGUAGE plpgsql AS \$f\$
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS lat (ms float8);
    TRUNCATE lat;
    FOR i IN 1..$PIPELINES LOOP
        EXECUTE format(\$q\$
            INSERT INTO lat
            SELECT extract(epoch FROM pg_xact_commit_timestamp(t.xmin)
                                      - pg_xact_commit_timestamp(s.xmin)) * 1000
              FROM s%1\$s s JOIN t%1\$s t USING (id)
             WHERE pg_xact_commit_timestamp(s.xmin) >= \$1\$q\$, i) USING since;
    END LOOP;
    SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY ms),
           percentile_cont(0.95) WITHIN GROUP (ORDER BY ms),
           percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), max(ms)
      INTO rows, p50, p95, p99, max FROM lat;
END \$f\$;
CREATE FUNCTION caught_up() RETURNS boolean LANGUAGE sql AS \$\$
    SELECT NOT EXISTS (SELECT 1 FROM pipeline.status WHERE pending_rows > 0)
\$\$;
SQL
    sleep 5    # the scheduler hands out the first workers
    since=$(sql -Atc 'SELECT clock_timestamp()')
    echo "max_workers $workers: $RATE rows/s for $LOAD_SECONDS s..."
    pgbench -c 4 -j 2 -T "$LOAD_SECONDS" -R 100 -D n=$(( RATE / 100 )) -f "$WORK/insert.sql" > "$WORK/pgbench.log" 2>&1 || { cat "$WORK/pgbench.log"; tail -40 "$WORK/server.log"; exit 1; }
    stopped=$(date +%s.%N)
    for _ in $(seq 600); do
        [ "$(sql -Atc 'SELECT caught_up()')" = t ] && break
        sleep 0.2
    done
    caught=$(awk "BEGIN {printf \"%.1f\", $(date +%s.%N) - $stopped}")
    sql -Atc "SELECT format('max_workers %-3s %7s rows  p50 %7s ms  p95 %7s ms  p99 %7s ms  max %7s ms', $workers, rows,
                     round(p50::numeric, 1), round(p95::numeric, 1), round(p99::numeric, 1), round(max::numeric, 1))
                FROM latency('$since')" | tee -a "$OUT"
    say "                caught up ${caught} s after the writers stopped; $(sql -Atc "SELECT count(*) || ' runs by ' || count(DISTINCT backend_pid) || ' worker processes, ' || count(*) FILTER (WHERE rows_read = 0) || ' empty, median run ' || round((extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY duration)) * 1000)::numeric, 1) || ' ms' FROM pipeline.runs WHERE started_at >= '$since'")"
    as_test_user pg_ctl -D "$DATA" -m fast stop >/dev/null
done
say "results written to $OUT"
