#!/usr/bin/env bash
# Benchmark of aggregate pipelines, side by side in one run (see README.md):
#   1. after changes to a large table, the pipeline's incremental run against
#      REFRESH MATERIALIZED VIEW of the same query;
#   2. what maintaining the aggregate costs the writers: pgbench writer
#      throughput with the pipeline running continuously against writers
#      under pg_ivm's immediately maintained view of the same query, and
#      both results against the query computed from scratch;
#   3. a continuous aggregate at a steady ingest rate: the latency from a
#      staged row's commit to the commit of the batch that counted it;
#   4. an aggregate joining a dimension table: the incremental run after
#      changes of the source, and after changes of the dimension, against
#      REFRESH MATERIALIZED VIEW of the same join.
#
#   bash test/bench/aggregate.sh
#
# As root: installs what is missing, builds and installs the extension, and,
# given PG_IVM_SOURCE (a pg_ivm 1.15 source tarball or directory), builds
# and installs pg_ivm; without pg_ivm installed, section 2 measures the
# pipeline alone.  Environment: AGG_ROWS (10000000) rows and AGG_GROUPS
# (100000) groups of section 1, AGG_CHANGES (10000) changed rows per
# repetition, AGG_REPEAT (3); AGG_WRITE_ROWS (1000000), AGG_WRITE_SECONDS
# (30) of pgbench per contender, AGG_CLIENTS (8); AGG_RATE (10000) rows/s
# for AGG_RATE_SECONDS (30); AGG_JOIN_ROWS (1000000) orders,
# AGG_JOIN_CUSTOMERS (10000) customers and AGG_JOIN_MOVES (100) customers
# changing segment per repetition of section 4; AGG_SECTIONS ("1 2 3 4")
# the sections to run;
# AGG_PROFILE=1 logs the plans of statements over 100 ms, with actual times
# and buffers, to results/aggregate-<time>-plans.log; BENCH_BUILD,
# BENCH_PORT (55474).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../common.sh"

ROWS=${AGG_ROWS:-10000000}
NGROUPS=${AGG_GROUPS:-100000}
CHANGES=${AGG_CHANGES:-10000}
REPEAT=${AGG_REPEAT:-3}
WRITE_ROWS=${AGG_WRITE_ROWS:-1000000}
WRITE_SECONDS=${AGG_WRITE_SECONDS:-30}
CLIENTS=${AGG_CLIENTS:-8}
RATE=${AGG_RATE:-10000}
RATE_SECONDS=${AGG_RATE_SECONDS:-30}
JOIN_ROWS=${AGG_JOIN_ROWS:-1000000}
JOIN_CUSTOMERS=${AGG_JOIN_CUSTOMERS:-10000}
JOIN_MOVES=${AGG_JOIN_MOVES:-100}
SECTIONS=${AGG_SECTIONS:-1 2 3 4}
PORT=${BENCH_PORT:-55474}
bench_setup
section() { [[ " $SECTIONS " == *" $1 "* ]]; }

# pg_ivm, built from the source given, when we may install it.
install_pg_ivm() {
    local src=${PG_IVM_SOURCE:-} dir
    [ -n "$src" ] || return 0
    [ "$(id -u)" -eq 0 ] || { echo "PG_IVM_SOURCE is given, but installing pg_ivm needs root" >&2; return 0; }
    dir="$WORK/pg_ivm"
    mkdir -p "$dir"
    if [ -d "$src" ]; then cp -r "$src"/. "$dir"; else tar xzf "$src" -C "$dir" --strip-components=1; fi
    make -C "$dir" -s PG_CONFIG="$PG_CONFIG" >/dev/null 2>&1 && make -C "$dir" -s PG_CONFIG="$PG_CONFIG" install >/dev/null 2>&1 ||
        echo "pg_ivm did not build: section 2 measures the pipeline alone" >&2
}
install_pg_ivm
IVM=0
[ -f "$("$PG_CONFIG" --pkglibdir)/pg_ivm.so" ] && IVM=1
PRELOAD="pipeline"
[ $IVM = 1 ] && PRELOAD="pipeline,pg_ivm"
PROFILE=
if [ "${AGG_PROFILE:-0}" = 1 ]; then
    PRELOAD="$PRELOAD,auto_explain"
    PROFILE="auto_explain.log_min_duration = 100
auto_explain.log_analyze = on
auto_explain.log_buffers = on
auto_explain.log_nested_statements = on"
fi

start_cluster "$DATA" "$WORK" "$PORT" "shared_preload_libraries = '$PRELOAD'
log_min_messages = warning
shared_buffers = '1GB'
work_mem = '256MB'
maintenance_work_mem = '1GB'
max_wal_size = '20GB'
checkpoint_timeout = '1h'
autovacuum = off
synchronous_commit = on
track_commit_timestamp = on
max_worker_processes = 16
jit = off
$PROFILE"

bench_clients bench
bench_results aggregate
as_test_user psql -h "$WORK" -p "$PORT" -U postgres -d postgres -X -q -c 'CREATE DATABASE bench'

# timed SQL...: the milliseconds psql's \timing reports for the statements.
timed() {
    sql -c 'CHECKPOINT' >/dev/null
    sql -c '\timing on' "$@" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | awk '{s += $1} END {printf "%.1f", s}'
}
# differences A B: rows in one query's result and not in the other's.
differences() {
    sql -Atc "SELECT count(*) FROM (($1 EXCEPT ALL $2) UNION ALL ($2 EXCEPT ALL $1)) d"
}

# run_against_refresh PIPELINE VIEW CHANGES TABLES TARGET_QUERY VIEW_QUERY:
# REPEAT times, the changes (an SQL file), a vacuum of TABLES, then the
# pipeline's run and the view's refresh, in turn first; the target must
# equal the view every time.  Sets run_ms and refresh_ms (each time) and
# run and refresh (their medians).
run_against_refresh() {
    local pipeline=$1 view=$2 changes=$3 tables=$4 target_q=$5 view_q=$6 rep diff
    run_ms= ; refresh_ms=
    for rep in $(seq "$REPEAT"); do
        sql -f "$changes" >/dev/null
        sql -c "VACUUM ANALYZE $tables" >/dev/null
        if [ $(( rep % 2 )) = 1 ]; then
            run_ms+="$(timed -c "CALL pipeline.run('$pipeline')") "
            refresh_ms+="$(timed -c "REFRESH MATERIALIZED VIEW $view") "
        else
            refresh_ms+="$(timed -c "REFRESH MATERIALIZED VIEW $view") "
            run_ms+="$(timed -c "CALL pipeline.run('$pipeline')") "
        fi
        diff=$(differences "$target_q" "$view_q")
        [ "$diff" = 0 ] || { say "the pipeline's target and the materialized view differ in $diff rows"; exit 1; }
        echo "repetition $rep done"
    done
    run=$(echo "$run_ms" | median); refresh=$(echo "$refresh_ms" | median)
}

QUERY_COLUMNS="count(*) AS n, sum(amount) AS total, avg(amount) AS mean, max(amount) AS top"
PIPELINE_COLUMNS='{"n": "count(*)", "total": "sum(amount)", "mean": "avg(amount)", "top": "max(amount)"}'

say "pipeline aggregate benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo unknown)"
say "$(sql -Atc 'SELECT version()' | cut -d, -f1), $(nproc) cores, load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
say "query: SELECT grp, $QUERY_COLUMNS FROM sales GROUP BY grp"
say ""

sql -c 'CREATE EXTENSION pipeline' >/dev/null

# ------------------------------------------------------------------ 1.
if section 1; then
say "1. $ROWS rows in $NGROUPS groups, then $CHANGES changed rows (40% inserts, 40% updates,"
say "   half of them moving the row to another group, 20% deletes), medians of $REPEAT"
sql <<SQL
CREATE TABLE sales (id bigint PRIMARY KEY, grp int NOT NULL, amount numeric(12,2) NOT NULL);
INSERT INTO sales SELECT g, g % $NGROUPS, abs(hashint8(g)) % 100000 / 100.0 FROM generate_series(1, $ROWS) g;
CREATE SEQUENCE sales_ids START $(( ROWS + 1 ));
VACUUM ANALYZE sales;
SQL
echo "building the materialized view and the pipeline's first run over $ROWS rows..."
mv_build=$(timed -c "CREATE MATERIALIZED VIEW sales_mv AS SELECT grp, $QUERY_COLUMNS FROM sales GROUP BY grp")
sql -c "SELECT pipeline.capture('sales')" \
    -c "SELECT pipeline.create_pipeline('gold', 'sales', 'sales_gold', strategy => 'aggregate',
            key => ARRAY['grp'], batch_size => 1000000, columns => '$PIPELINE_COLUMNS')" >/dev/null
pl_build=$(timed -c "CALL pipeline.run('gold')")
# the next run trims the change log of the rows the first one consumed; a
# vacuum then gives the emptied pages back (autovacuum would, in time):
# without it the log keeps the size of the table, its few pending rows
# look spread over all its pages, and the planner reads them by a
# sequential scan of all of it at every run
pl_trim=$(timed -c "CALL pipeline.run('gold')")
log_pages=$(sql -Atc "SELECT pg_relation_size('sales_changes') / 8192")
sql -c 'VACUUM (INDEX_CLEANUP ON) sales_changes' >/dev/null
# and, as after any bulk load, a vacuum of what it wrote: the first runs
# after it would otherwise set the hint bits of every page they touch
sql -c 'VACUUM ANALYZE sales_gold, sales_gold_groups, sales_gold_rows, sales_mv' >/dev/null
say "   first build: CREATE MATERIALIZED VIEW ${mv_build} ms; the pipeline's first run ${pl_build} ms,"
say "   and the next run, which trims the change log of the table's rows, ${pl_trim} ms"
say "   (the change log: $log_pages pages after the trim, $(sql -Atc "SELECT pg_relation_size('sales_changes') / 8192") after its vacuum)"
cat > "$WORK/changes.sql" <<SQL
BEGIN;
INSERT INTO sales SELECT nextval('sales_ids'), (random() * ($NGROUPS - 1))::int, round((random() * 1000)::numeric, 2)
  FROM generate_series(1, $(( CHANGES * 4 / 10 )));
UPDATE sales SET amount = round((random() * 1000)::numeric, 2),
                 grp = CASE WHEN random() < 0.5 THEN (random() * ($NGROUPS - 1))::int ELSE grp END
 WHERE id IN (SELECT 1 + (random() * ($ROWS - 1))::bigint FROM generate_series(1, $(( CHANGES * 4 / 10 ))));
DELETE FROM sales WHERE id IN (SELECT 1 + (random() * ($ROWS - 1))::bigint FROM generate_series(1, $(( CHANGES * 2 / 10 ))));
COMMIT;
SQL
chown "$TEST_USER" "$WORK"/*.sql 2>/dev/null || true
run_against_refresh gold sales_mv "$WORK/changes.sql" 'sales, sales_changes' \
    'SELECT grp, n, total, mean, top FROM sales_gold' 'SELECT grp, n, total, mean, top FROM sales_mv'
say "$(printf '   incremental run %8.1f ms   REFRESH MATERIALIZED VIEW %9.1f ms   ratio %6.1fx   (runs: %s; refreshes: %s)' \
    "$run" "$refresh" "$(echo "$refresh $run" | awk '{print $1 / $2}')" "$run_ms" "$refresh_ms")"
say "   after every repetition the target equals the view"
sql -c "SELECT pipeline.drop_pipeline('gold')" -c "SELECT pipeline.uncapture('sales')" \
    -c 'DROP MATERIALIZED VIEW sales_mv' -c 'DROP TABLE sales, sales_gold' >/dev/null
say ""
fi

# ------------------------------------------------------------------ 2.
if section 2; then
say "2. Writers: $CLIENTS pgbench clients, each transaction updates a random row (half of them to"
say "   another group) and inserts one, on a $WRITE_ROWS-row table with $NGROUPS groups, ${WRITE_SECONDS} s each"
sql >/dev/null <<SQL
CREATE TABLE w_pl (id bigint PRIMARY KEY, grp int NOT NULL, amount numeric(12,2) NOT NULL);
INSERT INTO w_pl SELECT g, g % $NGROUPS, abs(hashint8(g)) % 100000 / 100.0 FROM generate_series(1, $WRITE_ROWS) g;
CREATE TABLE w_ivm (LIKE w_pl INCLUDING ALL);
INSERT INTO w_ivm SELECT * FROM w_pl;
CREATE SEQUENCE w_ids START $(( WRITE_ROWS + 1 ));
SELECT pipeline.capture('w_pl');
SELECT pipeline.create_pipeline('w_gold', 'w_pl', 'w_gold', strategy => 'aggregate',
    key => ARRAY['grp'], columns => '$PIPELINE_COLUMNS') > 0;
-- the table's rows, then the trim of the change log and its vacuum (as in 1.)
CALL pipeline.run('w_gold');
CALL pipeline.run('w_gold');
VACUUM (INDEX_CLEANUP ON) w_pl_changes;
SELECT pipeline.alter_pipeline('w_gold', schedule => 'continuous');
VACUUM ANALYZE w_pl, w_ivm, w_gold, w_gold_groups, w_gold_rows;
SQL
if [ $IVM = 1 ]; then
    sql -c 'CREATE EXTENSION pg_ivm' \
        -c "SELECT pgivm.create_immv('w_immv', 'SELECT grp, count(*) AS n, sum(amount) AS total, avg(amount) AS mean, max(amount) AS top FROM w_ivm GROUP BY grp')" >/dev/null
fi
for t in pl ivm; do
    cat > "$WORK/write_$t.sql" <<SQL
\set id random(1, $WRITE_ROWS)
\set grp random(0, $(( NGROUPS - 1 )))
\set move random(0, 1)
BEGIN;
UPDATE w_$t SET amount = amount + 1, grp = CASE WHEN :move = 1 THEN :grp ELSE grp END WHERE id = :id;
INSERT INTO w_$t VALUES (nextval('w_ids'), :grp, :id % 1000);
COMMIT;
SQL
done
chown "$TEST_USER" "$WORK"/*.sql 2>/dev/null || true
writers() {  # writers TABLE: pgbench's transactions per second
    pgbench -c "$CLIENTS" -j 2 -T "$WRITE_SECONDS" -f "$WORK/write_$1.sql" 2>/dev/null |
        sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | head -1
}
sql -c 'CHECKPOINT' >/dev/null
tps_pl=$(writers pl)
sql -c 'CHECKPOINT' >/dev/null
start=$(date +%s.%N)
for _ in $(seq 600); do
    [ "$(sql -Atc "SELECT pending_rows = 0 AND pending_exact AND state <> 'running' FROM pipeline.status WHERE pipeline = 'w_gold'")" = t ] && break
    sleep 0.5
done
behind=$(echo "$(date +%s.%N) $start" | awk '{printf "%.1f", $1 - $2}')
diff_pl=$(differences 'SELECT grp, n, total, mean, top FROM w_gold' \
    "SELECT grp, $QUERY_COLUMNS FROM w_pl GROUP BY grp")
say "$(printf '   captured table, continuous aggregate pipeline: %9.1f tps; caught up %s s after the writers stopped;' "$tps_pl" "$behind")"
say "     its target against the query from scratch: $diff_pl rows differ"
if [ $IVM = 1 ]; then
    sql -c 'CHECKPOINT' >/dev/null
    tps_ivm=$(writers ivm)
    diff_ivm=$(differences 'SELECT grp, n, total, mean, top FROM w_immv' \
        "SELECT grp, $QUERY_COLUMNS FROM w_ivm GROUP BY grp")
    say "$(printf '   pg_ivm immediately maintained view (IMMV):       %9.1f tps; against the query from scratch: %s rows differ' "$tps_ivm" "$diff_ivm")"
    say "$(printf '   writer throughput, pipeline / pg_ivm: %.2fx' "$(echo "$tps_pl $tps_ivm" | awk '{print $1 / $2}')")"
else
    say "   (pg_ivm is not installed: set PG_IVM_SOURCE and run as root to compare)"
fi
say ""
fi

# ------------------------------------------------------------------ 3.
if section 3; then
say "3. Continuous aggregate at $RATE rows/s for ${RATE_SECONDS} s (4 pgbench clients, 100 transactions/s):"
say "   latency from a staged row's commit to the end of the run that counted it"
sql <<'SQL'
CREATE TABLE events (customer int, amount numeric(12,2));
SELECT pipeline.create_pipeline('per_customer', 'events', 'per_customer', strategy => 'aggregate',
    key => ARRAY['customer'], schedule => 'continuous',
    columns => '{"n": "count(*)", "total": "sum(amount)", "top": "max(amount)"}') > 0;
SQL
cat > "$WORK/ingest.sql" <<'SQL'
INSERT INTO events SELECT (random() * 10000)::int, round((random() * 500)::numeric, 2) FROM generate_series(1, :n);
SQL
chown "$TEST_USER" "$WORK/ingest.sql" 2>/dev/null || true
since=$(sql -Atc 'SELECT clock_timestamp()')
pgbench -c 4 -j 2 -T "$RATE_SECONDS" -R 100 -D n=$(( RATE / 100 )) -f "$WORK/ingest.sql" >/dev/null 2>&1
for _ in $(seq 600); do
    [ "$(sql -Atc "SELECT pending_rows = 0 AND pending_exact AND state <> 'running' FROM pipeline.status WHERE pipeline = 'per_customer'")" = t ] && break
    sleep 0.5
done
# The run that counted a row: the first one (by start) whose cursor after
# it consumed the row's transaction (cursor_rule.c's rule over the run's
# recorded cursor); its end is at most its commit.
sql -Atc "
WITH p AS (SELECT id FROM pipeline.pipeline_defs WHERE name = 'per_customer'),
staged AS (SELECT s._xid, s._seq, pg_xact_commit_timestamp(s.xmin) AS committed
             FROM events s WHERE pg_xact_commit_timestamp(s.xmin) >= '$since'),
lat AS (SELECT extract(epoch FROM r.finished_at - s.committed) * 1000 AS ms
          FROM staged s CROSS JOIN LATERAL (
               SELECT l.finished_at FROM pipeline.run_log l, p
                WHERE l.pipeline_id = p.id AND l.status = 'succeeded'
                  AND l.started_at >= s.committed - interval '1 second'
                  AND ((pg_visible_in_snapshot(s._xid, l.cursor_after) AND s._xid IS DISTINCT FROM l.cursor_after_xid)
                       OR (s._xid = l.cursor_after_xid AND s._seq <= l.cursor_after_seq))
                ORDER BY l.started_at LIMIT 1) r)
SELECT format('   %s rows  p50 %s ms  p95 %s ms  p99 %s ms  max %s ms', count(*),
              round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1),
              round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 1),
              round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1),
              round(max(ms)::numeric, 1)) FROM lat" | tee -a "$OUT"
diff=$(differences 'SELECT customer, n, total, top FROM per_customer' \
    'SELECT customer, count(*), sum(amount), max(amount) FROM events GROUP BY customer')
say "   runs: $(sql -Atc "SELECT count(*) FROM pipeline.runs WHERE pipeline = 'per_customer' AND rows_read > 0") that counted rows;" \
    "target against the query from scratch: $diff rows differ"
say ""
fi
# ------------------------------------------------------------------ 4.
if section 4; then
say "4. Joins: $JOIN_ROWS orders joined to a captured table of $JOIN_CUSTOMERS customers, revenue per"
say "   segment and day; then $CHANGES changed orders, and $JOIN_MOVES customers changing segment"
say "   (each reaching about $(( JOIN_ROWS / JOIN_CUSTOMERS )) orders), medians of $REPEAT"
sql >/dev/null <<SQL
CREATE TABLE customers (id int PRIMARY KEY, segment int NOT NULL, region text NOT NULL);
INSERT INTO customers SELECT g, g % 50, CASE WHEN g % 3 = 0 THEN 'eu' ELSE 'us' END
  FROM generate_series(1, $JOIN_CUSTOMERS) g;
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL, day date NOT NULL,
                     amount numeric(12,2) NOT NULL);
INSERT INTO orders SELECT g, 1 + g % $JOIN_CUSTOMERS, DATE '2026-01-01' + (g % 30)::int,
       abs(hashint8(g)) % 100000 / 100.0 FROM generate_series(1, $JOIN_ROWS) g;
CREATE SEQUENCE order_ids START $(( JOIN_ROWS + 1 ));
VACUUM ANALYZE customers, orders;
SQL
JOIN_QUERY="SELECT c.segment, o.day, count(*) AS n, sum(o.amount) AS total,
       count(*) FILTER (WHERE c.region = 'eu') AS eu
  FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY c.segment, o.day"
mv_build=$(timed -c "CREATE MATERIALIZED VIEW by_segment_mv AS $JOIN_QUERY")
sql -c "SELECT pipeline.capture('orders')" -c "SELECT pipeline.capture('customers')" \
    -c "SELECT pipeline.create_pipeline('by_segment', 'orders', 'by_segment', strategy => 'aggregate',
            key => ARRAY['segment', 'day'], batch_size => 1000000,
            columns => \$\${\"segment\": \"c.segment\", \"n\": \"count(*)\", \"total\": \"sum(amount)\",
                         \"eu\": \"count(*) FILTER (WHERE c.region = 'eu')\"}\$\$,
            joins => '[{\"table\": \"customers\", \"as\": \"c\", \"on\": {\"customer_id\": \"id\"}}]')" >/dev/null
pl_build=$(timed -c "CALL pipeline.run('by_segment')")
sql -c "CALL pipeline.run('by_segment')" >/dev/null
sql -c 'VACUUM (INDEX_CLEANUP ON) orders_changes' \
    -c 'VACUUM ANALYZE by_segment, by_segment_groups, by_segment_rows, by_segment_mv' >/dev/null
say "   first build: CREATE MATERIALIZED VIEW ${mv_build} ms; the pipeline's first run ${pl_build} ms"
cat > "$WORK/order_changes.sql" <<SQL
BEGIN;
INSERT INTO orders SELECT nextval('order_ids'), 1 + (random() * ($JOIN_CUSTOMERS - 1))::int,
       DATE '2026-01-01' + (random() * 29)::int, round((random() * 1000)::numeric, 2)
  FROM generate_series(1, $(( CHANGES * 4 / 10 )));
UPDATE orders SET amount = round((random() * 1000)::numeric, 2),
                  customer_id = CASE WHEN random() < 0.5 THEN 1 + (random() * ($JOIN_CUSTOMERS - 1))::int
                                     ELSE customer_id END
 WHERE id IN (SELECT 1 + (random() * ($JOIN_ROWS - 1))::bigint FROM generate_series(1, $(( CHANGES * 4 / 10 ))));
DELETE FROM orders WHERE id IN (SELECT 1 + (random() * ($JOIN_ROWS - 1))::bigint FROM generate_series(1, $(( CHANGES * 2 / 10 ))));
COMMIT;
SQL
cat > "$WORK/customer_changes.sql" <<SQL
UPDATE customers SET segment = (random() * 49)::int
 WHERE id IN (SELECT 1 + (random() * ($JOIN_CUSTOMERS - 1))::int FROM generate_series(1, $JOIN_MOVES));
SQL
chown "$TEST_USER" "$WORK"/*.sql 2>/dev/null || true
for kind in order customer; do
    run_against_refresh by_segment by_segment_mv "$WORK/${kind}_changes.sql" \
        'orders, customers, orders_changes, customers_changes' \
        'SELECT segment, day, n, total, eu FROM by_segment' 'SELECT segment, day, n, total, eu FROM by_segment_mv'
    read_rows=$(sql -Atc "SELECT rows_read FROM pipeline.runs WHERE pipeline = 'by_segment' ORDER BY run_id DESC LIMIT 1")
    say "$(printf '   %-9s changes: incremental run %8.1f ms (%s rows read)   REFRESH %9.1f ms   ratio %6.1fx' \
        "$kind" "$run" "$read_rows" "$refresh" "$(echo "$refresh $run" | awk '{print $1 / $2}')")"
    say "     (runs: $run_ms; refreshes: $refresh_ms)"
done
say "   after every repetition the target equals the view"
sql -c "SELECT pipeline.drop_pipeline('by_segment')" -c "SELECT pipeline.uncapture('orders')" \
    -c "SELECT pipeline.uncapture('customers')" -c 'DROP MATERIALIZED VIEW by_segment_mv' \
    -c 'DROP TABLE orders, customers, by_segment' >/dev/null
say ""
fi
say "other processes' CPU during the benchmark: load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "$PROFILE" ]; then
    cp "$WORK/server.log" "${OUT%.txt}-plans.log"
    say "plans written to ${OUT%.txt}-plans.log"
fi
say "results written to $OUT"
