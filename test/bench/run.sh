#!/usr/bin/env bash
# Benchmark of pipeline.run against hand-written SQL and dbt-postgres for the
# same job, side by side in one run on one generated data set.  See README.md.
#
#   bash test/bench/run.sh
#
# As root: installs what is missing, builds and installs the extension, and
# runs everything as an unprivileged user.  As a normal user: uses the
# installed extension.  Either way on a throwaway cluster of its own, removed
# at the end.  Prints the figures and writes them to test/bench/results/.
#
# Environment: BENCH_REPEAT (5) repetitions of each timed step;
# BENCH_BIG_TARGET (10000000) rows of the big target of the incremental
# measurement; BENCH_BUILD (1; 0 skips the build and install as root);
# BENCH_PROFILE (0; 1 also writes EXPLAIN ANALYZE plans of the pipeline's
# batch statement and of the hand-written statement to results/);
# BENCH_PORT (55470).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../common.sh"

REPEAT=${BENCH_REPEAT:-5}
BIG=${BENCH_BIG_TARGET:-10000000}
SMALL=100000
PORT=${BENCH_PORT:-55470}

bench_setup

# The server settings, the same for every contender.
SETTINGS="shared_buffers = '1GB'
work_mem = '256MB'
maintenance_work_mem = '1GB'
max_wal_size = '20GB'
min_wal_size = '1GB'
checkpoint_timeout = '1h'
checkpoint_completion_target = 0.9
autovacuum = off
synchronous_commit = on
jit = off"

start_cluster "$DATA" "$WORK" "$PORT" "shared_preload_libraries = 'pipeline'
log_min_messages = warning
$SETTINGS"

# sql ARGS...: psql as the unprivileged user; a script comes on stdin.
sql() { as_test_user env PGOPTIONS='-c client_min_messages=warning' psql -h "$WORK" -p "$PORT" -U postgres -d postgres -X -q -v ON_ERROR_STOP=1 "$@"; }
# timed_file FILE: runs a script in one session; prints the milliseconds its
# statements took (psql's \timing, summed: connection set-up excluded).
timed_file() {
    local t0 o0 s0 ms
    t0=$(cpu_busy) o0=$(cpu_ours) s0=$(date +%s%N)
    ms=$({ echo '\timing on'; cat "$1"; } | sql | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' |
        awk '{s += $1} END {printf "%.1f\n", s}')
    echo "$(( ($(cpu_busy) - t0) - ($(cpu_ours) - o0) )) $(( ($(date +%s%N) - s0) / 1000000 ))" >> "$WORK/others"
    echo "$ms"
}
# CPU time (clock ticks) used by the whole machine, and by our cluster
# (postmaster, its live children, and the children it has reaped): their
# difference over a timed step is what other processes took meanwhile.
cpu_busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
cpu_ours() {
    local pm
    pm=$(head -1 "$DATA/postmaster.pid")
    cat "/proc/$pm/stat" $(pgrep -P "$pm" | sed 's|.*|/proc/&/stat|') 2>/dev/null |
        awk -v pm="$pm" '{sub(/^.*\) /, ""); t += $12 + $13; if (NR == 1) t += $14 + $15} END {print t}'
}
timed_sql() { echo "$1" > "$WORK/stmt.sql"; timed_file "$WORK/stmt.sql"; }
th() { echo "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }   # 1234567 -> 1,234,567
calc() { awk "BEGIN {printf \"$1\n\", $2}"; }
# prepare TABLES...: VACUUM ANALYZE, then a checkpoint, before a timed step.
prepare() {
    local args=()
    for t in "$@"; do args+=(-c "VACUUM ANALYZE $t"); done
    sql "${args[@]}" -c "CHECKPOINT"
}

mkdir -p "$HERE/results"
STAMP=$(date -u +%Y%m%d-%H%M%S)
OUT="$HERE/results/bench-$STAMP.txt"
RAW="$HERE/results/bench-$STAMP.csv"
: > "$OUT"
echo "section,contender,repetition,ms" > "$RAW"
say() { echo "$*" | tee -a "$OUT"; }
raw() { echo "$1,$2,$3,$4" >> "$RAW"; }
failures=0
mismatch() {
    say ""
    say "!!!!!!!! MISMATCH: $* !!!!!!!!"
    say ""
    failures=$((failures + 1))
}

commit=$(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git -C "$HERE/../.." diff --quiet HEAD -- src sql Makefile 2>/dev/null; then
    commit="$commit + uncommitted changes to src/, sql/ or Makefile"
fi
say "pipeline benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit"
say "$(sql -Atc 'SELECT version()' | cut -d, -f1), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB RAM", $2 / 1048576}' /proc/meminfo), load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
say "settings (every contender): $(echo "$SETTINGS" | sed "s/ = /=/; s/'//g" | paste -sd, | sed 's/,/, /g')"
say "each timed step: fresh tables, VACUUM ANALYZE, CHECKPOINT, then timed; figures are medians of $REPEAT"
say ""

echo "generating the data..."
sql < "$HERE/setup.sql"

# ------------------------------------------------------------------ 1. merge
contenders=(pipeline pipeline_default handwritten dbt)
declare -A job=([pipeline]=job_pipeline.sql [pipeline_default]=job_pipeline.sql
                [handwritten]=job_handwritten.sql [dbt]=job_dbt.sql)
declare -A label=(
    [pipeline]="a. CALL pipeline.run, batch_size 1000000 (one batch)"
    [pipeline_default]="a. CALL pipeline.run, batch_size 100000 (default; 5 commits)"
    [handwritten]="b. hand-written INSERT..ON CONFLICT + watermark, one txn"
    [dbt]="c. dbt-postgres delete+insert (temp table) + watermark")
declare -A times
reference=""
run_counts=""
for r in $(seq "$REPEAT"); do
    # each repetition starts with another contender, so that none is always first
    order=("${contenders[@]:$(( (r - 1) % 4 ))}" "${contenders[@]:0:$(( (r - 1) % 4 ))}")
    for c in "${order[@]}"; do
        echo "merge: repetition $r/$REPEAT, $c"
        sql -c "CALL bench.reset('$c')"
        prepare bench.target bench.staging
        sql -Atc "SELECT bench.prewarm('bench.target') + bench.prewarm('bench.staging')" >/dev/null
        ms=$(timed_file "$HERE/${job[$c]}")
        times[$c]+="$ms "
        raw merge "$c" "$r" "$ms"
        digest=$(sql -Atc "SELECT bench.digest('bench.target')")
        if [ -z "$reference" ]; then
            reference=$digest
            reference_from=$c
        elif [ "$digest" != "$reference" ]; then
            mismatch "repetition $r: the target after '$c' ($digest) differs from the target after '$reference_from' ($reference)"
        fi
        if [ "$c" = pipeline ] && [ -z "$run_counts" ]; then
            run_counts=$(sql -Atc "SELECT format('rows_read %s, inserted %s, updated %s, stale %s, quarantined %s, batches %s',
                rows_read, rows_inserted, rows_updated, rows_stale, rows_quarantined, batches)
                FROM pipeline.runs WHERE pipeline = 'bench' ORDER BY run_id DESC LIMIT 1")
        fi
    done
done
staged=$(sql -Atc "SELECT count(*) FROM bench.events")
keys=$(sql -Atc "SELECT count(DISTINCT order_id) FROM bench.events")
say "1. Merge of $(th $staged) staged events ($(th $keys) distinct keys: half updates of existing keys, half new"
say "   keys; 10% duplicate events per key; stale and out-of-order events) into a 1,000,000-row target"
printf '   %-62s %10s %10s   %s\n' "contender" "median ms" "rows/s" "all runs (ms)" | tee -a "$OUT"
declare -A med
for c in "${contenders[@]}"; do
    med[$c]=$(echo "${times[$c]}" | median)
    printf '   %-62s %10.1f %10.0f   %s\n' "${label[$c]}" "${med[$c]}" "$(calc %f "$staged * 1000 / ${med[$c]}")" \
        "${times[$c]}" | tee -a "$OUT"
done
say "   pipeline run (one batch): $run_counts"
say "   target after each contender: $([ $failures -eq 0 ] && echo "identical in every repetition ($reference)" || echo "MISMATCH, see above")"
say "   throughput ratio pipeline / hand-written: $(calc %.2f "${med[handwritten]} / ${med[pipeline]}") (one batch), $(calc %.2f "${med[handwritten]} / ${med[pipeline_default]}") (default batch_size)"
say "   throughput ratio pipeline / dbt delete+insert: $(calc %.2f "${med[dbt]} / ${med[pipeline]}") (one batch), $(calc %.2f "${med[dbt]} / ${med[pipeline_default]}") (default batch_size)"
say ""

# Optional: where the time of a batch goes (plans with actual times).
if [ "${BENCH_PROFILE:-0}" = 1 ]; then
    echo "profile: EXPLAIN ANALYZE of the pipeline's batch statement and of the hand-written statement"
    for c in pipeline handwritten; do
        sql -c "CALL bench.reset('$c')"
        prepare bench.target bench.staging
        sql -Atc "SELECT bench.prewarm('bench.target') + bench.prewarm('bench.staging')" >/dev/null
        : > "$WORK/server.log"
        { echo "LOAD 'auto_explain';"
          echo "SET auto_explain.log_min_duration = 0; SET auto_explain.log_analyze = on;"
          echo "SET auto_explain.log_buffers = on; SET auto_explain.log_nested_statements = on;"
          echo "SET client_min_messages = warning; SET log_min_messages = log;"
          cat "$HERE/${job[$c]}"; } | sql >/dev/null
        cp "$WORK/server.log" "$HERE/results/profile-$STAMP-$c.log"
    done
    say "   plans written to results/profile-$STAMP-{pipeline,handwritten}.log"
    say ""
fi
sql -c "SELECT pipeline.drop_pipeline('bench', if_exists => true)" \
    -c "DROP TABLE IF EXISTS bench.target, bench.staging, bench.watermark" >/dev/null

# ------------------------------------------------------- 2. incremental cost
echo "incremental: generating a $SMALL-row and a $BIG-row target and their staging history..."
setup_start=$(date +%s.%N)
for t in "small $SMALL" "big $BIG"; do
    set -- $t
    sql -c "CREATE TABLE bench.inc_$1 AS SELECT * FROM bench.orders(1, $2)" \
        -c "ALTER TABLE bench.inc_$1 ADD PRIMARY KEY (order_id)" \
        -c "SELECT pipeline.create_pipeline('inc_$1', 'bench.inc_$1_src', 'bench.inc_$1',
                key => ARRAY['order_id'], sequence_by => 'updated_at', filter => 'false',
                batch_size => 100000000)" \
        -c "INSERT INTO bench.inc_$1_src (order_id, customer_id, amount, status, updated_at, payload)
                SELECT * FROM bench.orders(1, $2)" >/dev/null
    # The history is consumed by a run of its own (filter 'false': the target
    # already holds these rows, so that run leaves it as generated).
    history_run=$(sql -Atc "CALL pipeline.run('inc_$1')" | cut -d'|' -f2,3,8 | tr '|' ' ')
    echo "  inc_$1: history consumed: $history_run"
    sql -c "SELECT pipeline.alter_pipeline('inc_$1', filter => '', batch_size => 100000)" >/dev/null
    # the same target again, for the hand-written statement
    sql -c "CREATE TABLE bench.inc_$1_hand AS SELECT * FROM bench.inc_$1" \
        -c "ALTER TABLE bench.inc_$1_hand ADD PRIMARY KEY (order_id)" \
        -c "CREATE TABLE bench.inc_$1_round AS SELECT * FROM bench.incremental_round(0, 1, false) WITH NO DATA" >/dev/null
done
setup_s=$(calc %.0f "$(date +%s.%N) - $setup_start")
prepare bench.inc_small bench.inc_big bench.inc_small_src bench.inc_big_src bench.inc_small_hand bench.inc_big_hand

declare -A inc
round=0
for variant in same spread; do
    for r in $(seq "$REPEAT"); do
        round=$((round + 1))
        echo "incremental: $variant keys, repetition $r/$REPEAT"
        spread=$([ $variant = spread ] && echo true || echo false)
        for t in "small $SMALL" "big $BIG"; do
            set -- $t
            sql -c "TRUNCATE bench.inc_$1_round" \
                -c "INSERT INTO bench.inc_$1_round SELECT * FROM bench.incremental_round($round, $2, $spread)" \
                -c "INSERT INTO bench.inc_$1_src (order_id, customer_id, amount, status, updated_at, payload)
                        SELECT * FROM bench.inc_$1_round"
        done
        prepare bench.inc_small bench.inc_big bench.inc_small_src bench.inc_big_src \
            bench.inc_small_hand bench.inc_big_hand bench.inc_small_round bench.inc_big_round
        sizes=(small big)
        [ $((r % 2)) -eq 0 ] && sizes=(big small)
        for s in "${sizes[@]}"; do
            ms=$(timed_sql "CALL pipeline.run('inc_$s')")
            inc[$variant,pipeline,$s]+="$ms "
            raw "incremental-$variant" "pipeline-$s" "$r" "$ms"
        done
        for s in "${sizes[@]}"; do
            ms=$(timed_sql "INSERT INTO bench.inc_${s}_hand AS t
                SELECT DISTINCT ON (order_id) * FROM bench.inc_${s}_round ORDER BY order_id, updated_at DESC
                ON CONFLICT (order_id) DO UPDATE SET customer_id = excluded.customer_id,
                    amount = excluded.amount, status = excluded.status, updated_at = excluded.updated_at,
                    payload = excluded.payload
                WHERE t.updated_at <= excluded.updated_at")
            inc[$variant,hand,$s]+="$ms "
            raw "incremental-$variant" "handwritten-$s" "$r" "$ms"
        done
    done
done
# Both ways must have produced the same rows (only rows from 2030 on changed).
for s in small big; do
    diff=$(sql -Atc "SELECT count(*) FROM
        (SELECT * FROM bench.inc_$s WHERE updated_at >= '2030-01-01') p
        FULL JOIN (SELECT * FROM bench.inc_${s}_hand WHERE updated_at >= '2030-01-01') h USING (order_id)
        WHERE p IS DISTINCT FROM h")
    counts=$(sql -Atc "SELECT (SELECT count(*) FROM bench.inc_$s) = (SELECT count(*) FROM bench.inc_${s}_hand)")
    [ "$diff" = 0 ] && [ "$counts" = t ] ||
        mismatch "incremental: the $s target merged by the pipeline differs from the hand-written one in $diff rows"
done
history_big=$(sql -Atc "SELECT count(*) FROM bench.inc_big_src")
say "2. Incremental cost: 10,000 staged rows (5,000 updates, 5,000 new keys) merged into a"
say "   $(th $SMALL)-row and into a $(th "$BIG")-row target; each staging table also holds its"
say "   consumed history ($(th "$history_big") rows in the big one by the end), consumed by an earlier run"
say "   (setup: targets generated, primary keys built, history staged and consumed: ${setup_s} s)"
printf '   %-50s %12s %12s %8s\n' "" "100k target" "big target" "ratio" | tee -a "$OUT"
for variant in same spread; do
    for w in pipeline hand; do
        a=$(echo "${inc[$variant,$w,small]}" | median)
        b=$(echo "${inc[$variant,$w,big]}" | median)
        case $variant,$w in
            same,pipeline) l="CALL pipeline.run, the same 10k rows for both" ;;
            same,hand) l="hand-written INSERT..ON CONFLICT, same rows (*)" ;;
            spread,pipeline) l="CALL pipeline.run, updates spread over the target" ;;
            spread,hand) l="hand-written, updates spread over the target (*)" ;;
        esac
        printf '   %-50s %9.1f ms %9.1f ms %8.2f\n' "$l" "$a" "$b" "$(calc %f "$b / $a")" | tee -a "$OUT"
    done
done
say "   (*) the statement alone over just the 10k new rows: no staging history, no bookkeeping"
say "   same rows: updates of every 20th key of 1..100,000, present in both targets (the figure"
say "   asked for); spread: updates of every (size/5000)th key, so the big target's are all over it"
say "   pipeline targets equal to the hand-written ones: $([ $failures -eq 0 ] && echo yes || echo NO)"
say ""

# --------------------------------------------- 3. overhead of an empty run
echo "empty runs..."
prepare bench.inc_small_src bench.inc_big_src
declare -A empty
for s in small big; do
    # warm: one session, a first call, then 10 timed calls
    empty[$s,warm]=$({ echo "CALL pipeline.run('inc_$s');"; echo '\timing on'
                       for i in $(seq 10); do echo "CALL pipeline.run('inc_$s');"; done; } |
                     sql | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | paste -sd' ')
    # cold: the first call of 10 new sessions
    empty[$s,cold]=""
    for i in $(seq 10); do empty[$s,cold]+="$(timed_sql "CALL pipeline.run('inc_$s')") "; done
    for k in warm cold; do
        for v in ${empty[$s,$k]}; do raw empty "$s-$k" - "$v"; done
    done
done
say "3. Overhead of a run with nothing pending (CALL pipeline.run, median of 10):"
say "   100k-row staging history: $(echo "${empty[small,warm]}" | median) ms (in a session that ran it before), $(echo "${empty[small,cold]}" | median) ms (first call in a new session)"
say "   $(th "$history_big")-row staging history: $(echo "${empty[big,warm]}" | median) ms (in a session that ran it before), $(echo "${empty[big,cold]}" | median) ms (first call in a new session)"
say "   (a run that finds nothing pending is one transaction, whose commit waits for no WAL flush)"
# --------------------------------------------- 4. reading the operator's view
echo "status and metrics..."
sql -c "CREATE SCHEMA ops" -c "
DO \$\$
BEGIN
    FOR i IN 1..100 LOOP
        EXECUTE format('CREATE TABLE ops.s%s (id int, v int)', i);
        PERFORM pipeline.create_pipeline('ops_' || i, format('ops.s%s', i)::regclass,
                                         format('ops.t%s', i), key => ARRAY['id']);
        EXECUTE format('INSERT INTO ops.s%s SELECT g, g FROM generate_series(1, 1000) g', i);
    END LOOP;
END \$\$"
for i in $(seq 100); do echo "CALL pipeline.run('ops_$i');"; done | sql >/dev/null
# backlogs of 200 to 20,000 rows: half above what backlog() counts before it estimates
sql -c "DO \$\$ BEGIN FOR i IN 1..100 LOOP
            EXECUTE format('INSERT INTO ops.s%s SELECT g, g FROM generate_series(1, %s) g', i, i * 200);
        END LOOP; END \$\$" -c "ANALYZE"
declare -A view
for q in status metrics; do
    case $q in
        status) stmt="SELECT count(*) FROM pipeline.status;" ;;
        metrics) stmt="SELECT length(pipeline.metrics());" ;;
    esac
    view[$q]=$({ echo "$stmt"; echo '\timing on'; for i in $(seq 15); do echo "$stmt"; done; } |
               sql | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | paste -sd' ')
    for v in ${view[$q]}; do raw view "$q" - "$v"; done
done
n=$(sql -At -c "SELECT count(*) FROM pipeline.pipelines")
say "4. Reading the operator's view with $n pipelines, backlogs of 200 to 20,000 rows (median of 15, warm session):"
say "   SELECT count(*) FROM pipeline.status: $(echo "${view[status]}" | median) ms"
say "   SELECT pipeline.metrics():            $(echo "${view[metrics]}" | median) ms"
say ""
say "$(awk -v hz="$(getconf CLK_TCK)" '{o += $1; w += $2; p = $2 ? 100000 * $1 / hz / $2 : 0; if (p > m) m = p}
    END {printf "CPU taken by other processes during the timed steps: %.0f%% of one core on average, %.0f%% at most in one step", 100000 * o / hz / w, m}' "$WORK/others")"
say "(the benchmark uses one core; the figures are clean when that stays near 0)"
say "raw timings: results/$(basename "$RAW")"
cp "$OUT" "$HERE/results/latest.txt"
echo "results written to $OUT"
if [ $failures -gt 0 ]; then
    echo "$failures MISMATCH(ES): the contenders did not produce the same targets" >&2
    exit 1
fi
