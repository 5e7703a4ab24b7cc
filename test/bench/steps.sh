#!/usr/bin/env bash
# Benchmark of orchestration steps at 1,000 steps, each after its own
# pipeline: the cost of a step's run -- CALL pipeline.run_step, which
# checks its upstreams, records the run, commits, runs the command as the
# owner and records the result -- against the same command by hand, one
# refresh of a small materialized view and one small cleanup DELETE each;
# defining the 1,000 steps; the DAG view at that size; and the scheduler
# with every step scheduled on_upstream: its CPU while idle, against the
# same steps left manual, and how soon an upstream's new work starts the
# step after it.  See README.md.
#
#   bash test/bench/steps.sh
#
# Environment: STEPS_COUNT (1000); STEPS_REPEAT (5); STEPS_IDLE_SECONDS
# (30) of scheduler CPU sampling each way; STEPS_TRIGGERS (20) upstream
# runs timed; BENCH_BUILD, BENCH_PORT (55483).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../common.sh"

STEPS=${STEPS_COUNT:-1000}
REPEAT=${STEPS_REPEAT:-5}
IDLE=${STEPS_IDLE_SECONDS:-30}
TRIGGERS=${STEPS_TRIGGERS:-20}
PORT=${BENCH_PORT:-55483}
bench_setup
bench_results steps
start_cluster "$DATA" "$WORK" "$PORT" "shared_preload_libraries = 'pipeline'
log_min_messages = warning
shared_buffers = '512MB'
max_locks_per_transaction = 1024
max_wal_size = '4GB'
jit = off"
as_test_user psql -h "$WORK" -p "$PORT" -U postgres -d postgres -X -q -c 'CREATE DATABASE bench'
bench_clients bench

# ms FILE: the milliseconds the statements of FILE took (psql's \timing).
ms() {
    { echo '\timing on'; cat "$1"; } | sql | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' |
        awk '{s += $1} END {printf "%.1f", s}'
}

sql -c 'CREATE EXTENSION pipeline' -c 'CREATE SCHEMA m' -c "DO \$\$ BEGIN
  FOR i IN 0 .. $STEPS - 1 LOOP
    EXECUTE format('CREATE TABLE m.s_%s (id bigint, v numeric)', i);
    EXECUTE format('CREATE TABLE m.t_%s (id bigint PRIMARY KEY, v numeric)', i);
    EXECUTE format('INSERT INTO m.t_%s SELECT g, g FROM generate_series(1, 100) g', i);
    EXECUTE format('CREATE MATERIALIZED VIEW m.mv_%s AS SELECT count(*) AS n, sum(v) AS v FROM m.t_%s', i, i);
    EXECUTE format('CREATE TABLE m.log_%s (at timestamptz)', i);
    PERFORM pipeline.create_pipeline('p_' || i, format('m.s_%s', i), format('m.t_%s', i),
                                     key => ARRAY['id']);
  END LOOP;
END \$\$"
# every pipeline ran once: every step is ready
# each: a statement per step, %d the step's number
each() { awk -v n="$STEPS" -v f="$1" 'BEGIN { for (i = 0; i < n; i++) printf f "\n", i, i, i }'; }
each "CALL pipeline.run('p_%d');" > "$WORK/runs.sql"
[ "$(id -u)" -eq 0 ] && chown "$TEST_USER" "$WORK"/*.sql
sql -f "$WORK/runs.sql" >/dev/null

say "pipeline orchestration steps benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo unknown)"
say "$(sql -Atc 'SELECT version()' | cut -d, -f1), $(nproc) cores, load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
say "$STEPS pipelines, each followed by a refresh step and a cleanup step ($((2 * STEPS)) steps)"
say ""

{ each "SELECT pipeline.create_step('refresh %d', 'REFRESH MATERIALIZED VIEW m.mv_%d', after => ARRAY['p_%d']);"
  each "SELECT pipeline.create_step('cleanup %d', \$\$DELETE FROM m.log_%d WHERE at < now() - interval '1 day'\$\$, after => ARRAY['refresh %d']);"
} > "$WORK/define.sql"
[ "$(id -u)" -eq 0 ] && chown "$TEST_USER" "$WORK"/*.sql
define_ms=$(ms "$WORK/define.sql")
say "$(printf '1. defining the %d steps (create_step: parse, check as the owner, upstreams, lineage): %.1f ms, %.2f ms a step' "$((2 * STEPS))" "$define_ms" "$(echo "$define_ms $STEPS" | awk '{print $1 / (2 * $2)}')")"
say ""

each "REFRESH MATERIALIZED VIEW m.mv_%d; DELETE FROM m.log_%d WHERE at < now() - interval '1 day';" > "$WORK/by_hand.sql"
each "CALL pipeline.run_step('refresh %d'); CALL pipeline.run_step('cleanup %d');" > "$WORK/by_step.sql"
[ "$(id -u)" -eq 0 ] && chown "$TEST_USER" "$WORK"/*.sql
hand_ms= ; step_ms=
for rep in $(seq "$REPEAT"); do
    if [ $((rep % 2)) = 1 ]; then
        hand_ms+="$(ms "$WORK/by_hand.sql") "; step_ms+="$(ms "$WORK/by_step.sql") "
    else
        step_ms+="$(ms "$WORK/by_step.sql") "; hand_ms+="$(ms "$WORK/by_hand.sql") "
    fi
    echo "repetition $rep done"
done
runs=$(sql -Atc "SELECT count(*) FILTER (WHERE status = 'succeeded') || ' succeeded, ' || count(*) FILTER (WHERE status <> 'succeeded') || ' not' FROM pipeline.step_runs")
hm=$(echo "$hand_ms" | median); sm=$(echo "$step_ms" | median)
say "2. running each of the $((2 * STEPS)) commands once (a refresh of a 1-row materialized view over 100 rows, a cleanup DELETE), medians of $REPEAT"
say "$(printf '   by hand, each statement autocommitted            %9.1f ms   (%s)' "$hm" "$hand_ms")"
say "$(printf '   CALL pipeline.run_step, each                     %9.1f ms   (%s)' "$sm" "$step_ms")"
say "$(printf '   steps / by hand: %.2fx the throughput; %.3f ms more a step run (the upstreams checked, the run recorded and committed twice); runs recorded: %s' \
    "$(echo "$hm $sm" | awk '{print $1 / $2}')" "$(echo "$hm $sm $STEPS" | awk '{print ($2 - $1) / (2 * $3)}')" "$runs")"
say ""

view_ms=
for rep in $(seq "$REPEAT"); do
    echo "SELECT count(*) FROM pipeline.dependencies;" > "$WORK/view.sql"
    view_ms+="$(ms "$WORK/view.sql") "
done
say "$(printf '3. SELECT count(*) FROM pipeline.dependencies with %d steps: %.1f ms (median of %d: %s)' "$((2 * STEPS))" "$(echo "$view_ms" | median)" "$REPEAT" "$view_ms")"
say ""

# 4. The scheduler.  Every pass reads each scheduled step (its last start,
# its upstreams' last runs and new work: index probes); sampled while idle
# with the steps manual, then with all of them on_upstream (nothing new
# upstream: no run starts), its utime + stime from /proc.
HZ=$(getconf CLK_TCK)
scheduler_pid() { sql -Atc "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pipeline scheduler' AND datname = 'bench'"; }
cpu_ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }
idle_cpu() {
    local pid t0
    sleep 12    # a pass after the change, then only the naptime's
    pid=$(scheduler_pid); t0=$(cpu_ticks "$pid")
    sleep "$IDLE"
    awk -v d=$(( $(cpu_ticks "$pid") - t0 )) -v hz="$HZ" -v s="$IDLE" 'BEGIN {printf "%.3f", 100 * d / hz / s}'
}
manual_cpu=$(idle_cpu)
sql -c "UPDATE pipeline.steps SET schedule = 'on_upstream'" -c "SELECT pipeline.pause_step('refresh 0')" \
    -c "SELECT pipeline.resume_step('refresh 0')" >/dev/null
scheduled_cpu=$(idle_cpu)
say "4. the scheduler, idle, with the $((2 * STEPS)) steps (% of one core over $IDLE s, a pass at least every 10 s)"
say "$(printf '   steps manual                 %6s %%' "$manual_cpu")"
say "$(printf '   steps scheduled on_upstream  %6s %%   (no run started: %s step runs recorded since)' "$scheduled_cpu" \
    "$(sql -Atc "SELECT count(*) FROM pipeline.step_runs WHERE trigger <> 'manual'")")"

# How soon a pipeline's new work starts the refresh after it: its run's
# end to the step run's start, and to the cleanup after the refresh.
lat= ; chain=
for i in $(seq 0 $((TRIGGERS - 1))); do
    sql -c "INSERT INTO m.s_$i VALUES ($i + 1000, 1)" -c "CALL pipeline.run('p_$i')" >/dev/null
    for _ in $(seq 100); do
        [ "$(sql -Atc "SELECT count(*) FROM pipeline.step_runs WHERE step = 'cleanup $i' AND trigger = 'upstream' AND status = 'succeeded'")" = 1 ] && break
        sleep 0.1
    done
    read -r a b < <(sql -Atc "SELECT round(extract(epoch FROM s.started_at - r.finished_at) * 1000, 1),
                                    round(extract(epoch FROM c.started_at - r.finished_at) * 1000, 1)
                               FROM pipeline.runs r, pipeline.step_runs s, pipeline.step_runs c
                              WHERE r.pipeline = 'p_$i' AND s.step = 'refresh $i' AND c.step = 'cleanup $i'
                                AND s.trigger = 'upstream' AND c.trigger = 'upstream'
                              ORDER BY r.run_id DESC LIMIT 1" | tr '|' ' ')
    lat+="$a "; chain+="$b "
done
say "$(printf '   a pipeline run writing a row to the start of its refresh step: %s ms (median of %d: %s)' "$(echo "$lat" | median)" "$TRIGGERS" "$lat")"
say "$(printf '   ... to the start of the cleanup step after the refresh: %s ms (median: %s)' "$(echo "$chain" | median)" "$chain")"
say ""
say "results written to $OUT"
