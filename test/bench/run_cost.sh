#!/usr/bin/env bash
# The fixed cost of a run, side by side in one run: CALL pipeline.run with
# nothing pending, with OpenLineage events off and on, in a database with
# one pipeline and in one with 1,000; and a run that merges one row against
# the hand-written statement doing the same upsert.  See README.md.
#
#   bash test/bench/run_cost.sh
#   RUN_COST_BUILDS="before=/path/a/pg_config after=/path/b/pg_config" bash test/bench/run_cost.sh
#
# RUN_COST_BUILDS: label=pg_config pairs, each an installation with the
# extension installed; each gets a throwaway cluster of its own, and the
# rounds alternate between them (default: the pg_config on the PATH, built
# and installed first when run as root, as the other benchmarks do).
# Environment: RUN_COST_CALLS (200) timed calls per series; RUN_COST_ROUNDS
# (3) series of each kind per build; RUN_COST_PIPELINES (1000);
# RUN_COST_MERGES (100) one-row merges per series; BENCH_PORT (55480; the
# builds take the ports from there on).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../common.sh"

CALLS=${RUN_COST_CALLS:-200}
ROUNDS=${RUN_COST_ROUNDS:-3}
MANY=${RUN_COST_PIPELINES:-1000}
MERGES=${RUN_COST_MERGES:-100}
PORT0=${BENCH_PORT:-55480}

builds=()
declare -A pgc bindir port data
if [ -n "${RUN_COST_BUILDS:-}" ]; then
    BENCH_BUILD=0
    for b in $RUN_COST_BUILDS; do
        builds+=("${b%%=*}")
        pgc[${b%%=*}]=${b#*=}
    done
    PG_CONFIG=${pgc[${builds[0]}]}
fi
bench_setup
if [ ${#builds[@]} -eq 0 ]; then
    builds=(installed)
    pgc[installed]=$PG_CONFIG
fi

# Every cluster is stopped on exit, not only bench_setup's.
cleanup_all() {
    for b in "${builds[@]}"; do
        [ -n "${data[$b]:-}" ] && BINDIR=${bindir[$b]} as_test_user pg_ctl -D "${data[$b]}" -m immediate stop >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup_all EXIT

SETTINGS="shared_buffers = '256MB'
synchronous_commit = on
jit = off
autovacuum = off
log_min_messages = warning"

# q BUILD DB ARGS...: psql as the unprivileged user; a script comes on stdin.
q() {
    local b=$1 db=$2
    shift 2
    BINDIR=${bindir[$b]} as_test_user env PGOPTIONS='-c client_min_messages=warning' \
        psql -h "$WORK/sock-$b" -p "${port[$b]}" -U postgres -d "$db" -X -q -v ON_ERROR_STOP=1 "$@"
}
median() { sort -n | awk '{a[NR] = $1} END {printf "%.2f\n", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
p90() { sort -n | awk '{a[NR] = $1} END {i = int(NR * 0.9 + 0.5); if (i < 1) i = 1; printf "%.2f\n", a[i]}'; }

bench_results run_cost
i=0
for b in "${builds[@]}"; do
    bindir[$b]=$(${pgc[$b]} --bindir)
    port[$b]=$((PORT0 + i))
    data[$b]=$WORK/data-$b
    mkdir -p "$WORK/sock-$b"
    [ "$(id -u)" -eq 0 ] && chown "$TEST_USER" "$WORK/sock-$b"
    BINDIR=${bindir[$b]} start_cluster "${data[$b]}" "$WORK/sock-$b" "${port[$b]}" "shared_preload_libraries = 'pipeline'
$SETTINGS"
    i=$((i + 1))
done

say "the fixed cost of a run, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
for b in "${builds[@]}"; do say "  build '$b': ${pgc[$b]}"; done
say "series of $CALLS warm calls (one session, after 10 untimed ones), $ROUNDS series per build and kind, builds alternating"
say ""

# The databases: 'one' with one pipeline, 'many' with $MANY, each pipeline
# with a source of its own that has merged one row; plus the hand-written
# statement's table.
for b in "${builds[@]}"; do
    echo "build $b: creating the databases ($MANY pipelines)..."
    q "$b" postgres -c "CREATE DATABASE one" -c "CREATE DATABASE many"
    for db in one many; do
        n=$([ $db = one ] && echo 1 || echo "$MANY")
        q "$b" "$db" -c "CREATE EXTENSION pipeline" -c "CREATE SCHEMA b" \
            -c "CREATE TABLE b.hand (id int PRIMARY KEY, v int)"
        # a hundred pipelines per transaction: each takes locks on its tables
        for from in $(seq 1 100 "$n"); do
            q "$b" "$db" <<SQL
DO \$\$
BEGIN
    FOR i IN $from..least($from + 99, $n) LOOP
        EXECUTE format('CREATE TABLE b.s%s (id int, v int)', i);
        PERFORM pipeline.create_pipeline('p' || i, format('b.s%s', i)::regclass,
                                         format('b.t%s', i), key => ARRAY['id']);
        EXECUTE format('INSERT INTO b.s%s VALUES (0, 0)', i);
    END LOOP;
END \$\$;
SQL
        done
        for j in $(seq "$n"); do echo "CALL pipeline.run('p$j');"; done | q "$b" "$db" >/dev/null
        q "$b" "$db" -c "VACUUM ANALYZE" -c "CHECKPOINT"
    done
done

# empty_series BUILD DB OL: "T <ms>" for each of $CALLS runs with nothing
# pending, then "C <ms>": the CPU time the server process took per run
# (utime + stime of its /proc stat), which other processes on the machine
# disturb far less than the wall-clock times.
empty_series() {
    { echo "SET pipeline.openlineage_outbox = $3;"
      for k in $(seq 10); do echo "CALL pipeline.run('p1');"; done
      echo "SELECT pg_backend_pid() AS pid \\gset"
      echo "\\set t0 \`awk '{print \$14 + \$15}' /proc/:pid/stat\`"
      echo '\timing on'
      for k in $(seq "$CALLS"); do echo "CALL pipeline.run('p1');"; done
      echo '\timing off'
      echo "\\set t1 \`awk '{print \$14 + \$15}' /proc/:pid/stat\`"
      echo "SELECT 'C ' || round((:t1 - :t0) * 1000.0 / $(getconf CLK_TCK) / $CALLS, 3);"; } |
        q "$1" "$2" -At | sed -n 's/^Time: \([0-9.]*\) ms.*/T \1/p; /^C /p'
}
# merge_series BUILD DB OL: for $MERGES rows, "run <ms>" for the run that
# merged it and "hand <ms>" for the hand-written upsert of the same row.
merge_series() {
    { echo "SET pipeline.openlineage_outbox = $3;"
      for k in $(seq "$MERGES"); do
          echo "INSERT INTO b.s1 VALUES ($((k % 50)), $k);"
          echo '\timing on'
          echo '\echo run'
          echo "CALL pipeline.run('p1');"
          echo '\echo hand'
          echo "INSERT INTO b.hand AS t VALUES ($((k % 50)), $k) ON CONFLICT (id) DO UPDATE SET v = excluded.v;"
          echo '\timing off'
      done; } |
        q "$1" "$2" -At | awk '/^(run|hand)$/ {tag = $1} /^Time: / {print tag, $2}'
}

declare -A empty cpu merge
for r in $(seq "$ROUNDS"); do
    order=("${builds[@]}")
    if [ $((r % 2)) -eq 0 ]; then
        order=()
        for ((k = ${#builds[@]} - 1; k >= 0; k--)); do order+=("${builds[$k]}"); done
    fi
    for b in "${order[@]}"; do
        for db in one many; do
            for ol in off on; do
                echo "round $r/$ROUNDS, build $b: empty runs, $db, OpenLineage $ol"
                series=$(empty_series "$b" $db $ol)
                empty[$b,$db,$ol]+=" $(echo "$series" | awk '$1 == "T" {print $2}' | paste -sd' ')"
                cpu[$b,$db,$ol]+=" $(echo "$series" | awk '$1 == "C" {print $2}')"
            done
        done
        for ol in off on; do
            echo "round $r/$ROUNDS, build $b: one-row merges, many, OpenLineage $ol"
            merge[$b,$ol]+="
$(merge_series "$b" many $ol)"
        done
    done
done

stat() { tr ' ' '\n' | grep . | $1; }
# table NAME FORMAT: one line per build, a column per database and OpenLineage
# setting; FORMAT is "median/p90" or "median" of the series in array NAME.
table() {
    local -n series=$1
    printf '   %-12s %-22s %-22s %-22s %-22s\n' "build" "1 pipeline, OL off" "1 pipeline, OL on" "$MANY pipelines, OL off" "$MANY pipelines, OL on" | tee -a "$OUT"
    for b in "${builds[@]}"; do
        line=$(printf '   %-12s' "$b")
        for db in one many; do
            for ol in off on; do
                cell=$(echo "${series[$b,$db,$ol]}" | stat median)
                [ "$2" = median/p90 ] && cell+=" / $(echo "${series[$b,$db,$ol]}" | stat p90)"
                line+=$(printf ' %-22s' "$cell")
            done
        done
        say "$line"
    done
}
say "1. A run with nothing pending (CALL pipeline.run, warm session): median / p90, ms"
table empty median/p90
say ""
say "   CPU time of the server process per run (median of the series' averages), ms"
table cpu median
say ""
say "2. A run that merges one row (an update or an insert of one key), $MANY pipelines, against the"
say "   hand-written INSERT .. ON CONFLICT of the same row: median / p90, ms, and the ratio of medians"
printf '   %-12s %-16s %-16s %-16s %-16s %-10s %-10s\n' "build" "run, OL off" "run, OL on" "hand-written" "" "ratio off" "ratio on" | tee -a "$OUT"
for b in "${builds[@]}"; do
    roff=$(echo "${merge[$b,off]}" | awk '$1 == "run" {print $2}')
    ron=$(echo "${merge[$b,on]}" | awk '$1 == "run" {print $2}')
    hand=$(printf '%s\n%s\n' "${merge[$b,off]}" "${merge[$b,on]}" | awk '$1 == "hand" {print $2}')
    mo=$(echo "$roff" | median) mn=$(echo "$ron" | median) mh=$(echo "$hand" | median)
    say "$(printf '   %-12s %-16s %-16s %-16s %-16s %-10s %-10s' "$b" "$mo / $(echo "$roff" | p90)" \
        "$mn / $(echo "$ron" | p90)" "$mh / $(echo "$hand" | p90)" "" \
        "$(awk "BEGIN {printf \"%.1f\", $mo / $mh}")x" "$(awk "BEGIN {printf \"%.1f\", $mn / $mh}")x")"
done
say ""
say "load average at the end $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores; the figures are clean when it stays well under 1)"
echo "results written to $OUT"
