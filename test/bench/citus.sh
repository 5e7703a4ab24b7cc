#!/usr/bin/env bash
# Benchmark of pipelines on a Citus cluster: a coordinator and two workers
# on this machine, staging on the coordinator, targets distributed.
#   1. A 500,000-event merge into a 1,000,000-row target: distributed by
#      its key (32 shards) against a plain table on one server (the same
#      coordinator), side by side; the ratio.
#   2. A run's cost as the shard count grows: 1,000 events merged into a
#      100,000-row target of 8, 32 and 128 shards.
#   3. A sharded pipeline (the staging table distributed too, co-located):
#      the same 500,000 events into the same 1,000,000 rows, against SQL by
#      hand on the cluster, side by side: the fastest (a pushed-down INSERT
#      ... SELECT DISTINCT ON ... ON CONFLICT, then TRUNCATE of the staging
#      table, in one transaction: no writer can run beside it), and the
#      same with writers going on (each shard's rows deleted and upserted
#      by one statement on its worker); the ratios.
#   4. A sharded run's cost as the shard count grows (8, 32, 128 shards).
#   5. A blocked shard: one target row locked by another session while a
#      sharded run with statement_timeout 2s merges 10,000 events over 32
#      shards: how many events the other shards merged, and when.
#   6. The exactly-once invariant under concurrent writers: two sessions
#      staging through the coordinator (and into a ledger, in the same
#      transaction) while a session runs a sharded pipeline back to back;
#      the target must hold each key's latest ledger event, every event
#      read once.
#   7. What data quality checks cost a sharded pipeline: the merge of 3
#      with four checks every row passes (judged in each shard's batch)
#      against the same pipeline without them, side by side.
#   8. A sharded append into a table on the coordinator (each batch routed
#      there, one distributed transaction): CITUS_APPEND_EVENTS events
#      against the same by hand (a DELETE ... RETURNING of every shard's
#      rows feeding an INSERT, in one statement), side by side.
#   9. The coordinator's view at CITUS_MANY sharded pipelines (2 shards
#      each, one row staged in every tenth): pipeline.status and
#      pipeline.metrics(), each a query over the shards of every pipeline.
#  10. A sharded scd2 pipeline: CITUS_EVENTS events, a new version each,
#      into a history of CITUS_ROWS keys (32 shards), against the same scd2
#      pipeline on one server (on the coordinator), side by side.
# On one machine a cluster cannot be faster than one server: these figures
# say what routing a batch through Citus costs, not what more machines
# would give.  Needs Citus (test/install_citus.sh builds it from its
# source when at hand).  See README.md.
#
#   bash test/bench/citus.sh
#
# Environment: CITUS_ROWS (1000000), CITUS_EVENTS (500000), CITUS_APPEND_EVENTS (200000), CITUS_MANY (1000), CITUS_REPEAT (3),
# CITUS_RUN_REPEAT (5), CITUS_WRITE_SECONDS (20); BENCH_BUILD; BENCH_PORT (55480: the coordinator,
# then the next two for the workers).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../common.sh"

ROWS=${CITUS_ROWS:-1000000}
EVENTS=${CITUS_EVENTS:-500000}
REPEAT=${CITUS_REPEAT:-3}
RUN_REPEAT=${CITUS_RUN_REPEAT:-5}
WRITE_SECONDS=${CITUS_WRITE_SECONDS:-20}
APPEND_EVENTS=${CITUS_APPEND_EVENTS:-200000}
MANY=${CITUS_MANY:-1000}
PORT=${BENCH_PORT:-55480}
bench_setup
PG_CONFIG="$PG_CONFIG" bash "$HERE/../install_citus.sh"
[ -f "$("$PG_CONFIG" --pkglibdir)/citus.so" ] || { echo "Citus is not installed: nothing to measure" >&2; exit 1; }

# three nodes, reachable over TCP on 127.0.0.1 as Citus connects to them
NODES=(coordinator worker1 worker2)
citus_cleanup() {
    for n in "${NODES[@]}"; do as_test_user pg_ctl -D "$WORK/$n" -m immediate stop >/dev/null 2>&1 || true; done
    rm -rf "$WORK"
}
trap citus_cleanup EXIT
for i in 0 1 2; do
    n=${NODES[$i]}
    as_test_user initdb -D "$WORK/$n" -A trust -U postgres >/dev/null
    cat >> "$WORK/$n/postgresql.conf" <<CONF
port = $((PORT + i))
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK'
shared_preload_libraries = 'citus,pipeline'
max_prepared_transactions = 200
log_min_messages = warning
shared_buffers = '512MB'
work_mem = '128MB'
max_wal_size = '20GB'
checkpoint_timeout = '1h'
autovacuum = off
jit = off
CONF
    as_test_user pg_ctl -D "$WORK/$n" -l "$WORK/$n.log" -w start >/dev/null
done
node_sql() { local port=$1; shift; as_test_user env PGOPTIONS='-c client_min_messages=warning' psql -h "$WORK" -p "$port" -U postgres -d postgres -X -q -v ON_ERROR_STOP=1 "$@"; }
sql() { node_sql "$PORT" "$@"; }
for i in 0 1 2; do node_sql $((PORT + i)) -c 'CREATE EXTENSION citus'; done
sql -c "SELECT citus_set_coordinator_host('127.0.0.1', $PORT)" >/dev/null
sql -c "SELECT citus_add_node('127.0.0.1', $((PORT + 1)))" -c "SELECT citus_add_node('127.0.0.1', $((PORT + 2)))" >/dev/null
sql -c 'CREATE EXTENSION pipeline'
bench_results citus

# timed SQL...: milliseconds of the statements (psql's \timing), after a
# CHECKPOINT on every node.
timed() {
    for i in 0 1 2; do node_sql $((PORT + i)) -c 'CHECKPOINT' >/dev/null; done
    sql -c '\timing on' "$@" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | awk '{s += $1} END {printf "%.1f", s}'
}

# new_events: SQL making temp table ev of EVENTS events on distinct keys of
# the ROWS-row targets, each a newer version.
new_events() {
    echo "CREATE TEMP TABLE ev AS
SELECT id, nextval('version') AS v FROM (SELECT DISTINCT (random() * ($ROWS - 1))::bigint + 1 AS id
  FROM generate_series(1, $EVENTS * 11 / 10)) k LIMIT $EVENTS;"
}

# in_turn REP VAR SQL VAR SQL ...: times each SQL, appending its milliseconds
# to the variable named before it; in repetition REP, forwards when odd and
# backwards when even, so that no contender always goes first.
in_turn() {
    local rep=$1 i; shift
    local -a pairs=("$@") order=()
    for ((i = 0; i < ${#pairs[@]}; i += 2)); do order+=("$i"); done
    [ $(( rep % 2 )) = 1 ] || order=($(printf '%s\n' "${order[@]}" | tac))
    for i in "${order[@]}"; do
        printf -v "${pairs[i]}" '%s%s ' "${!pairs[i]}" "$(timed -c "${pairs[i + 1]}")"
    done
}

# differing A B: how many rows of tables A and B are not in the other.
differing() {
    sql -Atc "SELECT count(*) FROM ((TABLE $1 EXCEPT TABLE $2) UNION ALL (TABLE $2 EXCEPT TABLE $1)) d"
}

# two_runs STAGE A_VAR A_PIPELINE A_TARGET B_VAR B_PIPELINE B_TARGET: REPEAT
# times, new events (temp table ev) staged by the SQL STAGE, then the runs
# of the two pipelines in turn, their milliseconds appended to A_VAR and
# B_VAR; the two targets must then be equal.
two_runs() {
    local stage=$1 rep diff
    for rep in $(seq "$REPEAT"); do
        sql <<SQL
$(new_events)
$stage
SQL
        in_turn "$rep" "$2" "CALL pipeline.run('$3')" "$5" "CALL pipeline.run('$6')"
        diff=$(differing "$4" "$7")
        [ "$diff" = 0 ] || { say "$4 and $7 differ in $diff rows"; exit 1; }
        echo "repetition $rep done"
    done
}

# small_runs PIPELINE STAGING SHARDS: RUN_REPEAT runs of PIPELINE, each of
# 1,000 new events staged into STAGING (keys of a 100,000-row target); says
# their median for SHARDS shards.
small_runs() {
    local ms= rep
    for rep in $(seq "$RUN_REPEAT"); do
        sql -c "INSERT INTO $2 (id, v) SELECT (random() * 99999)::bigint + 1, nextval('version') FROM generate_series(1, 1000)"
        ms+="$(timed -c "CALL pipeline.run('$1')") "
    done
    say "$(printf '   %3d shards   %8.1f ms   (%s)' "$3" "$(echo "$ms" | median)" "$ms")"
}
say "pipeline Citus benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo unknown)"
say "$(sql -Atc 'SELECT version()' | cut -d, -f1), Citus $(sql -Atc "SELECT extversion FROM pg_extension WHERE extname = 'citus'"), $(nproc) cores, load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
say "a coordinator and two workers on this machine; staging on the coordinator"
say ""

# ---- 1. a 500,000-event merge: distributed target against a plain one
sql <<SQL
CREATE TABLE events_local (id bigint, v bigint);
CREATE TABLE events_dist (id bigint, v bigint);
CREATE TABLE accounts_local (id bigint PRIMARY KEY, v bigint);
CREATE TABLE accounts_dist (id bigint PRIMARY KEY, v bigint);
SET citus.shard_count = 32;
SELECT create_distributed_table('accounts_dist', 'id');
INSERT INTO accounts_local SELECT g, 0 FROM generate_series(1, $ROWS) g;
INSERT INTO accounts_dist SELECT g, 0 FROM generate_series(1, $ROWS) g;
SELECT pipeline.create_pipeline('local', 'events_local', 'accounts_local', key => ARRAY['id'], sequence_by => 'v',
    batch_size => $EVENTS);
SELECT pipeline.create_pipeline('dist', 'events_dist', 'accounts_dist', key => ARRAY['id'], sequence_by => 'v',
    batch_size => $EVENTS);
CREATE SEQUENCE version;
SQL
local_ms= ; dist_ms=
two_runs "INSERT INTO events_local SELECT * FROM ev; INSERT INTO events_dist SELECT * FROM ev;
VACUUM ANALYZE events_local, events_dist, accounts_local, accounts_dist;" \
    local_ms local accounts_local dist_ms dist accounts_dist
loc=$(echo "$local_ms" | median); dis=$(echo "$dist_ms" | median)
say "1. $EVENTS events merged into a $ROWS-row target, medians of $REPEAT"
say "$(printf '   plain target on one server      %9.1f ms   (%s)' "$loc" "$local_ms")"
say "$(printf '   distributed target, 32 shards   %9.1f ms   (%s)' "$dis" "$dist_ms")"
say "$(printf '   distributed / one server: %.2fx the throughput' "$(echo "$loc $dis" | awk '{print $1 / $2}')")"
say "   after every repetition both targets are equal"
say ""

# ---- 2. a small run's cost as the shard count grows
say "2. a run of 1,000 events into a 100,000-row distributed target, medians of $RUN_REPEAT"
for shards in 8 32 128; do
    sql <<SQL
CREATE TABLE ev_$shards (id bigint, v bigint);
CREATE TABLE t_$shards (id bigint PRIMARY KEY, v bigint);
SET citus.shard_count = $shards;
SELECT create_distributed_table('t_$shards', 'id');
INSERT INTO t_$shards SELECT g, 0 FROM generate_series(1, 100000) g;
SELECT pipeline.create_pipeline('shards_$shards', 'ev_$shards', 't_$shards', key => ARRAY['id'], sequence_by => 'v');
SQL
    small_runs "shards_$shards" "ev_$shards" "$shards"
done
say ""
# ---- 3. a sharded pipeline against hand-written SQL on the cluster
sql <<SQL
SET citus.shard_count = 32;
CREATE TABLE events_sh (id bigint, v bigint);
SELECT create_distributed_table('events_sh', 'id');
CREATE TABLE accounts_sh (id bigint PRIMARY KEY, v bigint);
SELECT create_distributed_table('accounts_sh', 'id', colocate_with => 'events_sh');
SELECT pipeline.create_pipeline('sharded', 'events_sh', 'accounts_sh', key => ARRAY['id'], sequence_by => 'v');
CREATE TABLE events_hand (id bigint, v bigint);
SELECT create_distributed_table('events_hand', 'id', colocate_with => 'events_sh');
CREATE TABLE accounts_hand (id bigint PRIMARY KEY, v bigint);
SELECT create_distributed_table('accounts_hand', 'id', colocate_with => 'events_sh');
CREATE TABLE events_claim (id bigint, v bigint);
SELECT create_distributed_table('events_claim', 'id', colocate_with => 'events_sh');
CREATE TABLE accounts_claim (id bigint PRIMARY KEY, v bigint);
SELECT create_distributed_table('accounts_claim', 'id', colocate_with => 'events_sh');
INSERT INTO accounts_sh SELECT g, 0 FROM generate_series(1, $ROWS) g;
INSERT INTO accounts_hand SELECT g, 0 FROM generate_series(1, $ROWS) g;
INSERT INTO accounts_claim SELECT g, 0 FROM generate_series(1, $ROWS) g;
SQL
sharded_ms= ; hand_ms= ; claim_ms=
# the fastest by hand: a pushed-down upsert, then TRUNCATE (which waits for
# and shuts out every writer: no ingest can run beside it)
HAND="BEGIN; INSERT INTO accounts_hand AS t SELECT DISTINCT ON (id) id, v FROM events_hand ORDER BY id, v DESC
  ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v WHERE t.v <= EXCLUDED.v; TRUNCATE events_hand; COMMIT;"
# the same by hand with writers going on: each shard's rows claimed and
# upserted by one statement on its worker, as a sharded pipeline does
CLAIM="SELECT count(*) FROM run_command_on_colocated_placements('events_claim', 'accounts_claim',
  'WITH d AS (DELETE FROM %1\$s RETURNING id, v) INSERT INTO %2\$s AS t SELECT DISTINCT ON (id) id, v FROM d
  ORDER BY id, v DESC ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v WHERE t.v <= EXCLUDED.v') WHERE success"
for rep in $(seq "$REPEAT"); do
    sql <<SQL
$(new_events)
INSERT INTO events_sh (id, v) SELECT * FROM ev;
INSERT INTO events_hand SELECT * FROM ev;
INSERT INTO events_claim SELECT * FROM ev;
VACUUM ANALYZE events_sh, events_hand, events_claim, accounts_sh, accounts_hand, accounts_claim;
SQL
    in_turn "$rep" sharded_ms "CALL pipeline.run('sharded')" hand_ms "$HAND" claim_ms "$CLAIM"
    for other in accounts_hand accounts_claim; do
        diff=$(differing accounts_sh "$other")
        [ "$diff" = 0 ] || { say "the sharded target and $other differ in $diff rows"; exit 1; }
    done
    echo "repetition $rep done"
done
shm=$(echo "$sharded_ms" | median); hnd=$(echo "$hand_ms" | median); clm=$(echo "$claim_ms" | median)
say "3. sharded pipeline: $EVENTS events in a distributed staging table merged into a $ROWS-row co-located target (32 shards), medians of $REPEAT"
say "$(printf '   by hand: upsert, then TRUNCATE (no writer beside it)    %9.1f ms   (%s)' "$hnd" "$hand_ms")"
say "$(printf '   by hand: each shard claimed and upserted on its worker  %9.1f ms   (%s)' "$clm" "$claim_ms")"
say "$(printf '   sharded pipeline run                                    %9.1f ms   (%s)' "$shm" "$sharded_ms")"
say "$(printf '   pipeline / by hand: %.2fx the throughput of the TRUNCATE one, %.2fx of the per-shard claim' \
    "$(echo "$hnd $shm" | awk '{print $1 / $2}')" "$(echo "$clm $shm" | awk '{print $1 / $2}')")"
say "$(printf '   against the plain-staging pipeline of 1: %.2fx' "$(echo "$dis $shm" | awk '{print $1 / $2}')")"
say "   after every repetition the three targets are equal"
say ""
# ---- 4. a sharded run's cost as the shard count grows
say "4. a sharded run of 1,000 events into a 100,000-row target, medians of $RUN_REPEAT"
for shards in 8 32 128; do
    sql <<SQL
SET citus.shard_count = $shards;
CREATE TABLE sev_$shards (id bigint, v bigint);
SELECT create_distributed_table('sev_$shards', 'id');
CREATE TABLE st_$shards (id bigint PRIMARY KEY, v bigint);
SELECT create_distributed_table('st_$shards', 'id', colocate_with => 'sev_$shards');
INSERT INTO st_$shards SELECT g, 0 FROM generate_series(1, 100000) g;
SELECT pipeline.create_pipeline('sharded_$shards', 'sev_$shards', 'st_$shards', key => ARRAY['id'], sequence_by => 'v');
SQL
    small_runs "sharded_$shards" "sev_$shards" "$shards"
done
say ""
# ---- 5. a blocked shard does not hold the others
sql -c "SELECT pipeline.alter_pipeline('sharded_32', statement_timeout => '2 seconds')" >/dev/null
sql -c "INSERT INTO sev_32 (id, v) SELECT g, nextval('version') FROM generate_series(1, 10000) g"
sql -c "BEGIN; SELECT 1 FROM st_32 WHERE id = 1 FOR UPDATE; SELECT pg_sleep(8); COMMIT;" >/dev/null &
locker=$!
sleep 1
start=$(date +%s%N)
# (the run fails, naming the blocked shard, once the others have merged)
sql -c "CALL pipeline.run('sharded_32')" >/dev/null 2>&1 || true
took=$(( ($(date +%s%N) - start) / 1000000 ))
merged=$(sql -Atc "SELECT rows_inserted + rows_updated FROM pipeline.runs WHERE pipeline = 'sharded_32' ORDER BY run_id DESC LIMIT 1")
blocked=$(sql -Atc "SELECT count(*) FROM sev_32")
wait $locker
sql -c "CALL pipeline.run('sharded_32')" >/dev/null
left=$(sql -Atc "SELECT count(*) FROM sev_32")
say "5. one of 32 shards blocked (a target row locked), statement_timeout 2 s, 10,000 events"
say "   the run returned after $took ms: $merged events merged by the other 31 shards, $blocked left staged in the blocked one"
say "   the lock gone, the next run left $left staged"
say ""
# ---- 6. exactly once under concurrent writers
sql <<SQL
SET citus.shard_count = 32;
CREATE TABLE w_events (id bigint, v bigint);
SELECT create_distributed_table('w_events', 'id');
CREATE TABLE w_accounts (id bigint PRIMARY KEY, v bigint);
SELECT create_distributed_table('w_accounts', 'id', colocate_with => 'w_events');
CREATE TABLE w_ledger (id bigint, v bigint);
SELECT pipeline.create_pipeline('writers', 'w_events', 'w_accounts', key => ARRAY['id'], sequence_by => 'v');
SQL
# (a fixed deadline: now() moves on with each COMMIT of the loop)
until=$(sql -Atc "SELECT clock_timestamp() + interval '$WRITE_SECONDS seconds'")
WRITE="DO \$\$ BEGIN WHILE clock_timestamp() < '$until'::timestamptz LOOP
  WITH r AS (INSERT INTO w_ledger SELECT (random() * 9999)::bigint + 1, nextval('version')
             FROM generate_series(1, 10) RETURNING id, v)
  INSERT INTO w_events (id, v) SELECT id, v FROM r;
  COMMIT; END LOOP; END \$\$"
start=$(date +%s%N)
sql -c "$WRITE" & w1=$!
sql -c "$WRITE" & w2=$!
runs=0
while kill -0 $w1 2>/dev/null || kill -0 $w2 2>/dev/null; do
    sql -c "CALL pipeline.run('writers')" >/dev/null; runs=$((runs + 1))
done
wait $w1 $w2
sql -c "CALL pipeline.run('writers')" >/dev/null; runs=$((runs + 1))
took=$(( ($(date +%s%N) - start) / 1000000 ))
written=$(sql -Atc "SELECT count(*) FROM w_ledger")
read=$(sql -Atc "SELECT sum(rows_read) FROM pipeline.runs WHERE pipeline = 'writers'")
diff=$(sql -Atc "SELECT count(*) FROM (((SELECT id, max(v) FROM w_ledger GROUP BY id) EXCEPT TABLE w_accounts)
                                       UNION ALL (TABLE w_accounts EXCEPT (SELECT id, max(v) FROM w_ledger GROUP BY id))) d")
left=$(sql -Atc "SELECT count(*) FROM w_events")
say "6. exactly once under concurrent writers: two sessions staging 10 events a transaction through the coordinator for $WRITE_SECONDS s (each also written to a ledger on the coordinator, in the same transaction) while a session runs the pipeline back to back (32 shards)"
say "   $written events written, $read read by $runs runs in $took ms ($(( written * 1000 / took )) events/s), $left left staged"
say "   target against each key's latest event in the ledger: $diff rows differ"
[ "$diff" = 0 ] && [ "$left" = 0 ] && [ "$written" = "$read" ] || { say "the invariant does not hold"; exit 1; }
say ""
# ---- 7. data quality checks on a sharded pipeline
sql <<SQL
CREATE TABLE events_ck (id bigint, v bigint);
SELECT create_distributed_table('events_ck', 'id', colocate_with => 'events_sh');
CREATE TABLE accounts_ck (id bigint PRIMARY KEY, v bigint);
SELECT create_distributed_table('accounts_ck', 'id', colocate_with => 'events_sh');
INSERT INTO accounts_ck TABLE accounts_sh;
SELECT pipeline.create_pipeline('checked', 'events_ck', 'accounts_ck', key => ARRAY['id'], sequence_by => 'v');
SELECT pipeline.add_check('checked', 'v known', kind => 'not_null', column_name => 'v');
SELECT pipeline.add_check('checked', 'v positive', kind => 'range', column_name => 'v', min_value => '0');
SELECT pipeline.add_check('checked', 'id in range', 'id BETWEEN 1 AND $ROWS', error_if => '> 1%');
SELECT pipeline.add_check('checked', 'one event a key', kind => 'unique', column_name => 'id', action => 'warn');
SQL
checked_ms= ; unchecked_ms=
two_runs "INSERT INTO events_sh (id, v) SELECT * FROM ev; INSERT INTO events_ck (id, v) SELECT * FROM ev;
VACUUM ANALYZE events_sh, events_ck, accounts_sh, accounts_ck;" \
    checked_ms checked accounts_ck unchecked_ms sharded accounts_sh
ckm=$(echo "$checked_ms" | median); unm=$(echo "$unchecked_ms" | median)
say "7. data quality checks on a sharded pipeline: $EVENTS events into $ROWS rows (32 shards), four checks every row passes (not_null, range, an expression with error_if, unique on the distribution column), medians of $REPEAT"
say "$(printf '   without checks   %9.1f ms   (%s)' "$unm" "$unchecked_ms")"
say "$(printf '   with the checks  %9.1f ms   (%s)' "$ckm" "$checked_ms")"
say "$(printf '   with / without: %.2fx the throughput; the check results recorded: %s' \
    "$(echo "$unm $ckm" | awk '{print $1 / $2}')" \
    "$(sql -Atc "SELECT count(*) FROM pipeline.check_results c JOIN pipeline.runs r USING (run_id) WHERE r.pipeline = 'checked'")")"
say ""
# ---- 8. a sharded append into a table on the coordinator, routed
sql <<SQL
SET citus.shard_count = 32;
CREATE TABLE clicks_r (id bigint, v bigint);
SELECT create_distributed_table('clicks_r', 'id');
CREATE TABLE clicks_r_log (id bigint, v bigint);
SELECT pipeline.create_pipeline('routed', 'clicks_r', 'clicks_r_log', strategy => 'append', batch_size => $APPEND_EVENTS);
CREATE TABLE clicks_h (id bigint, v bigint);
SELECT create_distributed_table('clicks_h', 'id', colocate_with => 'clicks_r');
CREATE TABLE clicks_h_log (id bigint, v bigint);
SQL
APPEND_HAND="WITH d AS (DELETE FROM clicks_h RETURNING id, v) INSERT INTO clicks_h_log SELECT id, v FROM d"
routed_ms= ; ahand_ms=
for rep in $(seq "$REPEAT"); do
    sql <<SQL
INSERT INTO clicks_r (id, v) SELECT (random() * 99999)::bigint, nextval('version') FROM generate_series(1, $APPEND_EVENTS);
INSERT INTO clicks_h (id, v) SELECT (random() * 99999)::bigint, nextval('version') FROM generate_series(1, $APPEND_EVENTS);
VACUUM ANALYZE clicks_r, clicks_h;
SQL
    in_turn "$rep" routed_ms "CALL pipeline.run('routed')" ahand_ms "$APPEND_HAND"
    echo "repetition $rep done"
done
left=$(sql -Atc "SELECT (SELECT count(*) FROM clicks_r) + (SELECT count(*) FROM clicks_h)")
logged=$(sql -Atc "SELECT (SELECT count(*) FROM clicks_r_log) || ' and ' || (SELECT count(*) FROM clicks_h_log)")
[ "$left" = 0 ] || { say "$left events left staged"; exit 1; }
rtm=$(echo "$routed_ms" | median); ahm=$(echo "$ahand_ms" | median)
say "8. a sharded append into a plain table on the coordinator (routed): $APPEND_EVENTS events a run from 32 shards, medians of $REPEAT"
say "$(printf '   by hand: DELETE ... RETURNING feeding an INSERT   %9.1f ms   (%s)' "$ahm" "$ahand_ms")"
say "$(printf '   pipeline run (a batch, then one finding none left) %9.1f ms   (%s)' "$rtm" "$routed_ms")"
say "$(printf '   pipeline / by hand: %.2fx the throughput; rows appended: %s' \
    "$(echo "$ahm $rtm" | awk '{print $1 / $2}')" "$logged")"
say ""
# ---- 9. the coordinator's view of many sharded pipelines
start=$(date +%s%N)
sql <<SQL
DO \$\$ BEGIN
  FOR i IN 1..$MANY LOOP
    EXECUTE format('CREATE TABLE many_s%s (id bigint, v bigint)', i);
    PERFORM create_distributed_table(format('many_s%s', i), 'id', shard_count => 2);
    EXECUTE format('CREATE TABLE many_t%s (id bigint PRIMARY KEY, v bigint)', i);
    PERFORM create_distributed_table(format('many_t%s', i), 'id', colocate_with => format('many_s%s', i));
    PERFORM pipeline.create_pipeline(format('many%s', i), format('many_s%s', i), format('many_t%s', i),
                                     key => ARRAY['id']);
    IF i % 10 = 0 THEN EXECUTE format('INSERT INTO many_s%s (id, v) VALUES (1, 1)', i); END IF;
  END LOOP;
END \$\$;
SQL
defined=$(( ($(date +%s%N) - start) / 1000000 ))
status_ms= ; metrics_ms=
for rep in $(seq "$REPEAT"); do
    status_ms+="$(timed -c "SELECT count(*) FROM pipeline.status WHERE pending_rows IS NOT NULL") "
    metrics_ms+="$(timed -c "SELECT length(pipeline.metrics())") "
done
pending=$(sql -Atc "SELECT sum(pending_rows) FROM pipeline.status WHERE pipeline LIKE 'many%'")
stm=$(echo "$status_ms" | median); mtm=$(echo "$metrics_ms" | median)
say "9. $MANY sharded pipelines of 2 shards each (defined in $defined ms), one row staged in every tenth, medians of $REPEAT"
say "$(printf '   pipeline.status (every pipeline of the database)   %9.1f ms   (%s): %.2f ms a pipeline' "$stm" "$status_ms" "$(echo "$stm $MANY" | awk '{print $1 / $2}')")"
say "$(printf '   pipeline.metrics()                                 %9.1f ms   (%s)' "$mtm" "$metrics_ms")"
say "   rows pending over the $MANY pipelines, as status counts them: $pending"
say ""
# ---- 10. a sharded scd2 against the same scd2 on one server
sql <<SQL
SET citus.shard_count = 32;
CREATE TABLE hist_ev_sh (id bigint, v bigint, amount bigint);
SELECT create_distributed_table('hist_ev_sh', 'id');
CREATE TABLE hist_sh (id bigint NOT NULL, v bigint NOT NULL, amount bigint, __start_at bigint NOT NULL, __end_at bigint,
    PRIMARY KEY (id, __start_at));
CREATE UNIQUE INDEX ON hist_sh (id) WHERE __end_at IS NULL;
CREATE TABLE hist_ev_one (id bigint, v bigint, amount bigint);
CREATE TABLE hist_one (LIKE hist_sh INCLUDING ALL);
INSERT INTO hist_one SELECT g, 0, 0, 0, NULL FROM generate_series(1, $ROWS) g;
INSERT INTO hist_sh TABLE hist_one;
SELECT create_distributed_table('hist_sh', 'id', colocate_with => 'hist_ev_sh');
SELECT pipeline.create_pipeline('hist_sh', 'hist_ev_sh', 'hist_sh', strategy => 'scd2', key => ARRAY['id'],
    sequence_by => 'v', batch_size => $EVENTS);
SELECT pipeline.create_pipeline('hist_one', 'hist_ev_one', 'hist_one', strategy => 'scd2', key => ARRAY['id'],
    sequence_by => 'v', batch_size => $EVENTS);
SQL
hist_sh_ms= ; hist_one_ms=
two_runs "INSERT INTO hist_ev_sh (id, v, amount) SELECT id, v, v % 1000 FROM ev;
INSERT INTO hist_ev_one (id, v, amount) SELECT id, v, v % 1000 FROM ev;
VACUUM ANALYZE hist_ev_sh, hist_ev_one, hist_sh, hist_one;" \
    hist_sh_ms hist_sh hist_sh hist_one_ms hist_one hist_one
hsm=$(echo "$hist_sh_ms" | median); hom=$(echo "$hist_one_ms" | median)
say "10. a sharded scd2: $EVENTS events (a new version each) into a history of $ROWS keys, 32 shards, against the same scd2 pipeline on one server (staging and target on the coordinator), medians of $REPEAT"
say "$(printf '   scd2 on one server   %9.1f ms   (%s)' "$hom" "$hist_one_ms")"
say "$(printf '   sharded scd2         %9.1f ms   (%s)' "$hsm" "$hist_sh_ms")"
say "$(printf '   sharded / one server: %.2fx the throughput; versions: %s' \
    "$(echo "$hom $hsm" | awk '{print $1 / $2}')" "$(sql -Atc 'SELECT count(*) FROM hist_sh')")"
say "   after every repetition both histories are equal"
say ""
say "results written to $OUT"
