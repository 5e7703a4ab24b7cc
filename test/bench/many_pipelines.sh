#!/usr/bin/env bash
# Benchmark of one database with 1,000 pipelines: what the operator's view,
# the metrics scrape and lineage cost, and what the scheduler costs while
# every scheduled pipeline is idle.  See README.md.
#
#   bash test/bench/many_pipelines.sh
#
# As root: installs what is missing, builds and installs the extension, and
# runs everything as an unprivileged user; as a normal user it uses the
# installed extension.  Either way on a throwaway cluster of its own.
#
# MANY_COMPARE_PG_CONFIG=/path/to/pg_config also measures the extension
# installed there (an older build, say) the same way in the same run, on a
# cluster of its own, and prints both side by side: "this" is PG_CONFIG's
# installation, "other" that one.
#
# Environment: MANY_PIPELINES (1000); MANY_ROOTS (250) staging tables (the
# other pipelines read another pipeline's target); MANY_REPEAT (15) timed
# calls of each statement; MANY_IDLE_SECONDS (60) of scheduler CPU
# sampling, after MANY_SETTLE_SECONDS (60); BENCH_BUILD, BENCH_PORT (55476; the compared cluster uses the
# next port).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../common.sh"

PIPELINES=${MANY_PIPELINES:-1000}
ROOTS=${MANY_ROOTS:-250}
REPEAT=${MANY_REPEAT:-15}
IDLE=${MANY_IDLE_SECONDS:-60}
SETTLE=${MANY_SETTLE_SECONDS:-60}
PORT0=${BENCH_PORT:-55476}
bench_setup
bench_results many
THIS_PG_CONFIG=$PG_CONFIG
HZ=$(getconf CLK_TCK)

busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }

# use_installation PG_CONFIG DIR PORT: the cluster of that installation in
# DIR (data in DIR/data), and sql to reach it.
use_installation() {
    BINDIR=$("$1" --bindir)
    CDIR=$2 PORT=$3
    mkdir -p "$CDIR"
    [ "$(id -u)" -eq 0 ] && chown "$TEST_USER" "$CDIR"
    sql() { as_test_user env PGOPTIONS='-c client_min_messages=warning' psql -h "$CDIR" -p "$PORT" -U postgres -d bench -X -q -v ON_ERROR_STOP=1 "$@"; }
}

# build_database: the 1,000 pipelines with their history.
build_database() {
    local cron=""
    [ -f "$("$PG_CONFIG_NOW" --pkglibdir)/pg_cron.so" ] && cron=",pg_cron"
    start_cluster "$CDIR/data" "$CDIR" "$PORT" "shared_preload_libraries = 'pipeline$cron'
cron.database_name = 'bench'
log_min_messages = warning
shared_buffers = '512MB'
max_locks_per_transaction = 1024
max_wal_size = '4GB'
checkpoint_timeout = '30min'
jit = off"
    as_test_user psql -h "$CDIR" -p "$PORT" -U postgres -d postgres -X -q -c 'CREATE DATABASE bench'
    sql -c 'CREATE EXTENSION pipeline' -c 'CREATE SCHEMA m'
    [ -n "$cron" ] && sql -c 'CREATE EXTENSION pg_cron'
    FRESHNESS_SCHEDULE=$([ -n "$cron" ] && echo "'0 3 * * *'" || echo NULL)

    # ROOTS staging tables; pipeline i writes m.t_i from m.s_i (i < ROOTS)
    # or from m.t_(i-ROOTS) through its change log, and every other chained
    # pipeline also looks up m.t_(i-ROOTS+1) (fan-in): a DAG of
    # PIPELINES/ROOTS levels.  Strategies: merge, scd2 (an scd2 target is
    # read by a merge), and append in the last level (an append pipeline
    # whose target has a change log fails to prepare its statement at the
    # commit measured).  Everything is defined manual, run, then scheduled.
    sql -c "DO \$\$ BEGIN FOR i IN 0 .. $ROOTS - 1 LOOP
              EXECUTE format('CREATE TABLE m.s_%s (id bigint, v numeric, note text, at timestamptz)', i);
            END LOOP; END \$\$"
    echo "  defining $PIPELINES pipelines..."
    sql >/dev/null <<SQL
CREATE FUNCTION pg_temp.strategy_of(i int) RETURNS text LANGUAGE sql AS \$\$
    SELECT CASE WHEN i >= $ROOTS AND pg_temp.strategy_of(i - $ROOTS) = 'scd2' THEN 'merge'
                WHEN i % 10 IN (8, 9) THEN 'scd2'
                WHEN i % 10 IN (4, 5, 6, 7) AND i >= $PIPELINES - $ROOTS THEN 'append'
                ELSE 'merge' END \$\$;
DO \$\$
DECLARE
    s text;
BEGIN
    FOR i IN 0 .. $PIPELINES - 1 LOOP
        s := pg_temp.strategy_of(i);
        PERFORM pipeline.create_pipeline(
            'p_' || i,
            CASE WHEN i < $ROOTS THEN format('m.s_%s', i) ELSE format('m.t_%s', i - $ROOTS) END::regclass,
            format('m.t_%s', i),
            key => CASE WHEN s <> 'append' THEN ARRAY['id'] END,
            strategy => s,
            sequence_by => CASE WHEN s <> 'append' THEN 'at' END,
            columns => CASE WHEN i >= $ROOTS AND i % 2 = 0
                            THEN jsonb_build_object('w', format(
                                'v * 2 + coalesce((SELECT max(x.v) FROM m.t_%s x WHERE x.id = s.id), 0)',
                                i - $ROOTS + 1))
                            ELSE '{}' END);
        IF i % 7 = 3 THEN
            PERFORM pipeline.add_check('p_' || i, 'v_not_negative', expression => 'v >= 0',
                                       action => 'quarantine');
        ELSIF i % 7 = 5 THEN
            PERFORM pipeline.add_check('p_' || i, 'note_present', kind => 'not_null',
                                       column_name => 'note', action => 'warn');
        END IF;
        IF i % 4 = 0 THEN
            PERFORM pipeline.add_freshness_check(format('m.t_%s', i)::regclass, 'at',
                        warn_after => '1 hour', error_after => '1 day',
                        schedule => CASE WHEN i % 8 = 0 THEN $FRESHNESS_SCHEDULE END);
        END IF;
    END LOOP;
END
\$\$;
SQL
    # Views on every fifth target, and on every fifth of those another one.
    sql -c "DO \$\$ BEGIN FOR i IN 0 .. $PIPELINES - 1 BY 5 LOOP
              EXECUTE format('CREATE VIEW m.v_%s AS SELECT id, v FROM m.t_%s', i, i);
              IF i % 25 = 0 THEN
                  EXECUTE format('CREATE VIEW m.vv_%s AS SELECT id FROM m.v_%s', i, i);
              END IF;
            END LOOP; END \$\$"
    # Three rounds: 200 rows into every staging table (some with a negative
    # v, some without a note), then every pipeline in DAG order.
    for round in 1 2 3; do
        echo "  round $round: staging rows and running the $PIPELINES pipelines..."
        sql -c "DO \$\$ BEGIN FOR i IN 0 .. $ROOTS - 1 LOOP
                  EXECUTE format('INSERT INTO m.s_%s SELECT g, CASE WHEN g %% 40 = 7 THEN -g ELSE g * $round END,
                                  CASE WHEN g %% 30 <> 1 THEN ''n'' END, now() FROM generate_series(1, 200) g', i);
                END LOOP; END \$\$"
        for ((i = 0; i < PIPELINES; i++)); do echo "CALL pipeline.run('p_$i');"; done | sql >/dev/null
        sql -c "SELECT count(*) FROM (SELECT pipeline.check_freshness(id) FROM pipeline.freshness_checks) c" >/dev/null
    done
    # Some pipelines paused, two failing (their source changed, which they
    # refuse).
    sql >/dev/null <<SQL
SELECT pipeline.pause('p_' || i) FROM generate_series(11, $PIPELINES - 1, 100) i;
SELECT pipeline.alter_pipeline('p_' || i, on_schema_change => 'fail') FROM generate_series(0, 1) i;
ALTER TABLE m.s_0 ADD COLUMN extra int;
ALTER TABLE m.s_1 ADD COLUMN extra int;
INSERT INTO m.s_0 (id, v, at, extra) VALUES (1, 1, now(), 1);
INSERT INTO m.s_1 (id, v, at, extra) VALUES (1, 1, now(), 1);
SQL
    for i in 0 1; do sql -c "CALL pipeline.run('p_$i')" >/dev/null 2>&1 || true; done
    # Schedules: a fifth each manual, every minute, every 5 minutes, cron
    # every 10 minutes, cron hourly.
    sql >/dev/null <<SQL
SELECT pipeline.alter_pipeline(name, schedule => (ARRAY['1 minute', '5 minutes', '*/10 * * * *', '0 * * * *'])[id % 5])
  FROM pipeline.pipelines WHERE id % 5 <> 0 AND name NOT IN ('p_0', 'p_1');
VACUUM ANALYZE;
SQL
}

# describe: what the database holds.
describe() {
    sql -At <<'SQL'
SELECT format('%s pipelines (%s), %s staging tables, %s chained through a change log, %s lineage edges (views included);',
              sum(n), string_agg(n || ' ' || strategy, ', ' ORDER BY strategy),
              (SELECT count(DISTINCT source) FROM pipeline.pipeline_defs WHERE source NOT IN
                  (SELECT change_log FROM pipeline.pipeline_defs WHERE change_log IS NOT NULL)),
              (SELECT count(*) FROM pipeline.dependencies), (SELECT count(*) FROM pipeline.lineage))
  FROM (SELECT strategy, count(*) AS n FROM pipeline.pipeline_defs GROUP BY strategy) s;
SELECT format('%s runs, %s checks (%s results), %s rows in quarantine, %s freshness checks (%s results);',
              (SELECT count(*) FROM pipeline.run_log), (SELECT count(*) FROM pipeline.checks),
              (SELECT count(*) FROM pipeline.check_results), (SELECT count(*) FROM pipeline.quarantine),
              (SELECT count(*) FROM pipeline.freshness_checks), (SELECT count(*) FROM pipeline.freshness_results));
SELECT 'schedules: ' || string_agg(n || ' ' || schedule, ', ' ORDER BY n DESC, schedule) || ';'
  FROM (SELECT schedule, count(*) AS n FROM pipeline.pipeline_defs GROUP BY schedule) s;
SELECT 'states: ' || string_agg(n || ' ' || state, ', ' ORDER BY n DESC, state)
  FROM (SELECT state, count(*) AS n FROM pipeline.status GROUP BY state) s;
SQL
}

# timed LABEL SQL: the median of REPEAT calls in one warm session (ms).
timed() {
    { echo "$2"; echo '\timing on'; for _ in $(seq "$REPEAT"); do echo "$2"; done; } |
        sql | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | median | awk '{printf "%.1f", $1}'
}

# cpu_ticks NAME: utime + stime of that cluster's scheduler, in clock ticks.
cpu_ticks() {
    awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/${R[$1,scheduler_pid]}/stat"
}

# build NAME PG_CONFIG PORT: the database on that installation.
declare -A R PGC
build() {
    local name=$1 mid
    PGC[$name]=$2 R[$name,port]=$3
    use "$name"
    echo "$name ($2):"
    build_database
    R[$name,describe]=$(describe)
    mid="m.t_$(( (PIPELINES / ROOTS / 2) * ROOTS + 3 ))"
    [ "$(sql -Atc "SELECT to_regclass('$mid') IS NOT NULL")" = t ] || mid=m.t_3
    R[$name,mid]=$mid
    R[$name,reach]=$(sql -Atc "SELECT format('downstream(%L) reaches %s relations, column_lineage(%L, ''v'') has %s edges',
                                             '$mid', (SELECT count(*) FROM pipeline.downstream('$mid')),
                                             '$mid', (SELECT count(*) FROM pipeline.column_lineage('$mid', 'v')))")
}
# use NAME: sql reaches that cluster.
use() {
    use_installation "${PGC[$1]}" "$WORK/$1" "${R[$1,port]}"
    PG_CONFIG_NOW=${PGC[$1]}
}

# Both clusters stay up to the end: each statement is timed on one, then
# on the other, and both schedulers are sampled over the same seconds.
names=()
bench_cleanup() {
    for n in "${names[@]}"; do as_test_user pg_ctl -D "$WORK/$n/data" -m immediate stop >/dev/null 2>&1 || true; done
    rm -rf "$WORK"
}
names+=(this)
build this "$THIS_PG_CONFIG" "$PORT0"
if [ -n "${MANY_COMPARE_PG_CONFIG:-}" ]; then
    names+=(other)
    build other "$MANY_COMPARE_PG_CONFIG" $((PORT0 + 1))
fi
echo "timing the views ($REPEAT calls each)..."
busy0=$(busy_ticks) s0=$(date +%s%N)
for q in status backlog metrics downstream column_lineage; do
    for n in "${names[@]}"; do
        use "$n"
        case $q in
            status) stmt="SELECT * FROM pipeline.status;" ;;
            backlog) stmt="SELECT * FROM pipeline.pipeline_defs d, LATERAL pipeline.backlog(d.name, quiet => true) b;" ;;
            metrics) stmt="SELECT pipeline.metrics();" ;;
            downstream) stmt="SELECT * FROM pipeline.downstream('${R[$n,mid]}');" ;;
            column_lineage) stmt="SELECT * FROM pipeline.column_lineage('${R[$n,mid]}', 'v');" ;;
        esac
        R[$n,$q]=$(timed "$q" "$stmt")
    done
done
load=$(awk -v b=$(( $(busy_ticks) - busy0 )) -v hz="$HZ" -v ns=$(( $(date +%s%N) - s0 )) \
           'BEGIN {printf "%.0f", 100 * b / hz / (ns / 1e9)}')
echo "letting the schedulers settle ($SETTLE s), then sampling them for $IDLE s..."
sleep "$SETTLE"
for n in "${names[@]}"; do
    use "$n"
    R[$n,scheduler_pid]=$(sql -Atc "SELECT pid FROM pg_stat_activity WHERE application_name = 'pipeline scheduler' AND datname = 'bench'")
    R[$n,ticks0]=$(cpu_ticks "$n")
    R[$n,empty0]=$(sql -Atc "SELECT coalesce(sum(empty_ticks), 0) FROM pipeline.schedule_state")
done
busy0=$(busy_ticks)
sleep "$IDLE"
idle_load=$(awk -v b=$(( $(busy_ticks) - busy0 )) -v hz="$HZ" -v s="$IDLE" 'BEGIN {printf "%.0f", 100 * b / hz / s}')
for n in "${names[@]}"; do
    use "$n"
    R[$n,scheduler]=$(awk -v d=$(( $(cpu_ticks "$n") - R[$n,ticks0] )) -v hz="$HZ" -v s="$IDLE" 'BEGIN {printf "%.2f", 100 * d / hz / s}')
    R[$n,empty_ticks]=$(( $(sql -Atc "SELECT coalesce(sum(empty_ticks), 0) FROM pipeline.schedule_state") - R[$n,empty0] ))
    R[$n,runs_while_idle]=$(sql -Atc "SELECT count(*) FROM pipeline.run_log WHERE started_at > now() - interval '$IDLE seconds'")
done

say "pipeline: $PIPELINES pipelines in one database, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo unknown)"
say "$("$BINDIR/postgres" --version), $(nproc) cores, load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
for n in "${names[@]}"; do
    say "$n: ${PGC[$n]}"
    say "$(echo "${R[$n,describe]}" | sed 's/^/   /')"
    say "   ${R[$n,reach]}"
done
say ""
say "median of $REPEAT calls in a warm session, ms (the scheduler: % of one core over $IDLE s idle)"
printf '   %-42s %12s %12s\n' "" "${names[@]}" | tee -a "$OUT"
row() {
    local line
    line=$(printf '   %-42s' "$1")
    for n in "${names[@]}"; do line+=$(printf ' %12s' "${R[$n,$2]}"); done
    say "$line"
}
row "SELECT * FROM pipeline.status" status
row "  its backlog() of every pipeline alone" backlog
row "SELECT pipeline.metrics()" metrics
row "pipeline.downstream(middle of the DAG)" downstream
row "pipeline.column_lineage(middle, 'v')" column_lineage
row "scheduler, % of a core while idle" scheduler
row "  its empty ticks meanwhile" empty_ticks
row "  runs started meanwhile" runs_while_idle
say "machine busy while timing the views: $load% of one core; while the schedulers idled: $idle_load%"
say "(the CPU time of every process on the machine over the step; the benchmark itself uses"
say " about one core while timing, the schedulers almost none)"
say "results written to $OUT"
