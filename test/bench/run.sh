#!/usr/bin/env bash
# Benchmark of pipeline.run against hand-written SQL for the same job,
# measured side by side in one run on one generated data set.
#
#   bash test/bench/run.sh        (as root; builds, installs, starts its own cluster)
#
# Prints a table and writes it to test/bench/results/merge.txt.  See README.md.
set -euo pipefail
source "$(dirname "$0")/../common.sh"

REPEAT=${BENCH_REPEAT:-3}
BIG_TARGET=${BENCH_BIG_TARGET:-10000000}

prepare_machine
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pipeline-bench.XXXXXX")
scratch_copy "$WORK/tree"
[ "$(id -u)" -eq 0 ] && chown "$TEST_USER" "$WORK"
DATA="$WORK/data"
PORT=${PIPELINE_BENCH_PORT:-55433}
trap 'as_test_user pg_ctl -D "$DATA" -m fast stop >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

as_test_user initdb -D "$DATA" -A trust -U postgres >/dev/null
cat >> "$DATA/postgresql.conf" <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$WORK'
shared_preload_libraries = 'pipeline'
shared_buffers = '2GB'
work_mem = '64MB'
maintenance_work_mem = '1GB'
max_wal_size = '20GB'
checkpoint_timeout = '30min'
autovacuum = off
CONF
as_test_user pg_ctl -D "$DATA" -l "$WORK/server.log" -w start >/dev/null

sql() { as_test_user psql -h "$WORK" -p "$PORT" -U postgres -d postgres -X -q -v ON_ERROR_STOP=1 "$@"; }
# timed SQL: prints the milliseconds the statement(s) took (psql \timing, summed)
timed() { sql -c '\timing on' "$@" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | awk '{s += $1} END {printf "%.1f\n", s}'; }
calc() { awk "BEGIN {print $1}"; }
median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

sql -f "$WORK/tree/test/bench/setup.sql"
RESULTS="$(cd "$(dirname "$0")" && pwd)/results"
mkdir -p "$RESULTS"
OUT="$RESULTS/merge.txt"
: > "$OUT"
say() { echo "$*" | tee -a "$OUT"; }

say "pipeline benchmark, $(date -u +%Y-%m-%d), PostgreSQL $(sql -Atc 'SHOW server_version'), $(nproc) cores"
say "settings: shared_buffers 2GB, work_mem 64MB, max_wal_size 20GB, autovacuum off, synchronous_commit on"
say ""

# 1. 500k staged events into a 1M-row target, three ways.
declare -A times
for i in $(seq "$REPEAT"); do
    for job in pipeline pipeline_default_batch handwritten dbt; do
        sql -c "CALL bench.reset('$job')" -c "VACUUM ANALYZE bench.target" \
            -c "VACUUM ANALYZE bench.staging" -c "CHECKPOINT"
        times[$job]+="$(timed -f "$WORK/tree/test/bench/job_$job.sql") "
        sql -Atc "SELECT bench.target_digest()" > "$WORK/digest_$job"
    done
    for job in pipeline_default_batch handwritten dbt; do
        cmp -s "$WORK/digest_pipeline" "$WORK/digest_$job" ||
            { say "MISMATCH: the target after $job differs from the pipeline's"; exit 1; }
    done
done
rows=$(sql -Atc "SELECT count(*) FROM bench.events")
say "1. merge of $rows staged events (half updates, half new keys, ~10% duplicate keys, ~10% out of order) into a 1,000,000-row target, median of $REPEAT (all targets identical)"
printf '%-58s %10s %12s %8s\n' "job" "ms" "rows/s" "ratio" | tee -a "$OUT"
ms_hand=$(echo ${times[handwritten]} | tr ' ' '\n' | median)
for job in pipeline pipeline_default_batch handwritten dbt; do
    ms=$(echo ${times[$job]} | tr ' ' '\n' | median)
    label=$(sql -Atc "SELECT bench.label('$job')")
    printf '%-58s %10.1f %12.0f %8.2f\n' "$label" "$ms" "$(calc "$rows * 1000 / $ms")" \
        "$(calc "$ms_hand / $ms")" | tee -a "$OUT"
done
ms_pipe=$(echo ${times[pipeline]} | tr ' ' '\n' | median)
ms_dbt=$(echo ${times[dbt]} | tr ' ' '\n' | median)
say "pipeline throughput / hand-written: $(printf '%.2f' "$(calc "$ms_hand / $ms_pipe")")x; pipeline vs dbt delete+insert: $(printf '%.2f' "$(calc "$ms_dbt / $ms_pipe")")x faster"
say ""

# 2. Incremental cost: the same 10k staged rows into a 100k and a big target.
sql -c "INSERT INTO bench.inc_small_src SELECT g, g % 1000, timestamptz '2026-01-01' + g * interval '1 second' FROM generate_series(1, 100000) g" \
    -c "INSERT INTO bench.inc_big_src SELECT g, g % 1000, timestamptz '2026-01-01' + g * interval '1 second' FROM generate_series(1, $BIG_TARGET) g"
sql -c "CALL pipeline.run('inc_small')" -c "CALL pipeline.run('inc_big')" >/dev/null
sql -c "VACUUM ANALYZE bench.inc_small_src" -c "VACUUM ANALYZE bench.inc_big_src" \
    -c "VACUUM ANALYZE bench.inc_small" -c "VACUUM ANALYZE bench.inc_big" -c "CHECKPOINT"
small=""; big=""
for i in $(seq "$REPEAT"); do
    sql -c "CALL bench.incremental_stage($i, 100000, $BIG_TARGET)"
    small+="$(timed -c "CALL pipeline.run('inc_small')") "
    big+="$(timed -c "CALL pipeline.run('inc_big')") "
done
ms_small=$(echo $small | tr ' ' '\n' | median)
ms_big=$(echo $big | tr ' ' '\n' | median)
history=$(sql -Atc "SELECT count(*) FROM bench.inc_big_src")
say "2. incremental: 10,000 staged rows (half updates) merged into a 100,000-row and a $(printf "%'d" "$BIG_TARGET")-row target"
say "   (each staging table also holds its consumed history: $history rows for the big one), median of $REPEAT"
say "   100k target: $ms_small ms; big target: $ms_big ms; ratio $(printf '%.2f' "$(calc "$ms_big / $ms_small")")"
say ""

# 3. Overhead of a run with nothing pending.
empty=""
for i in $(seq 10); do empty+="$(timed -c "CALL pipeline.run('inc_small')") "; done
say "3. a run with nothing pending: $(echo $empty | tr ' ' '\n' | median) ms (median of 10)"
echo
echo "results written to $OUT"
