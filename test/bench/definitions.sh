#!/usr/bin/env bash
# Benchmark of definitions as code at 1,000 pipelines: pipeline.export(),
# pipeline.apply() of a document that changes nothing (what a deployment
# job runs every time), of one that changes one pipeline, and of one that
# makes all 1,000 pipelines on an empty database, against the same
# definitions made by hand (the create_pipeline, add_check and
# add_freshness_check calls a script would run).  See README.md.
#
#   bash test/bench/definitions.sh
#
# Environment: DEFS_PIPELINES (1000); DEFS_ROOTS (250) staging tables (the
# other pipelines read another pipeline's target); DEFS_REPEAT (5);
# BENCH_BUILD, BENCH_PORT (55482).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../common.sh"

PIPELINES=${DEFS_PIPELINES:-1000}
ROOTS=${DEFS_ROOTS:-250}
REPEAT=${DEFS_REPEAT:-5}
PORT=${BENCH_PORT:-55482}
bench_setup
bench_results definitions
start_cluster "$DATA" "$WORK" "$PORT" "shared_preload_libraries = 'pipeline'
log_min_messages = warning
shared_buffers = '512MB'
max_locks_per_transaction = 1024
max_wal_size = '4GB'
jit = off"
as_test_user psql -h "$WORK" -p "$PORT" -U postgres -d postgres -X -q -c 'CREATE DATABASE bench'
bench_clients bench

# ms SQL: the milliseconds the statement took (psql's \timing), with psql
# variable doc holding the exported document.
ms() {
    printf '\\set doc `cat %s`\n\\timing on\n%s\n' "$WORK/document.json" "$1" | sql |
        sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | awk '{s += $1} END {printf "%.1f", s}'
}

# the definitions by hand: ROOTS staging tables, pipeline i reading m.s_i
# (i < ROOTS) or the target of pipeline i - ROOTS; a check on every third,
# a freshness check on every fourth target
BY_HAND="DO \$\$ BEGIN
  FOR i IN 0 .. $PIPELINES - 1 LOOP
    PERFORM pipeline.create_pipeline('p_' || i,
        CASE WHEN i < $ROOTS THEN format('m.s_%s', i) ELSE format('m.t_%s', i - $ROOTS) END::regclass,
        format('m.t_%s', i), key => ARRAY['id'], sequence_by => 'at', batch_size => 1000 + i);
    IF i % 3 = 0 THEN
      PERFORM pipeline.add_check('p_' || i, 'v known', kind => 'not_null', column_name => 'v');
    END IF;
    IF i % 4 = 0 THEN
      PERFORM pipeline.add_freshness_check(format('m.t_%s', i)::regclass, 'at', warn_after => '1 hour');
    END IF;
  END LOOP;
END \$\$;"
# drop_all: every pipeline (the chained ones first), freshness check and target
DROP_ALL="SELECT pipeline.drop_freshness_check(id) FROM pipeline.freshness_checks;
SELECT pipeline.drop_pipeline('p_' || i) FROM generate_series($PIPELINES - 1, 0, -1) i;
DO \$\$ BEGIN FOR i IN 0 .. $PIPELINES - 1 LOOP EXECUTE format('DROP TABLE m.t_%s', i); END LOOP; END \$\$;"

sql -c 'CREATE EXTENSION pipeline' -c 'CREATE SCHEMA m' \
    -c "DO \$\$ BEGIN FOR i IN 0 .. $ROOTS - 1 LOOP
          EXECUTE format('CREATE TABLE m.s_%s (id bigint, v numeric, at timestamptz)', i);
        END LOOP; END \$\$"
say "pipeline definitions-as-code benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo unknown)"
say "$(sql -Atc 'SELECT version()' | cut -d, -f1), $(nproc) cores, load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
say "$PIPELINES pipelines over $ROOTS staging tables, $(( (PIPELINES + 2) / 3 )) checks, $(( (PIPELINES + 3) / 4 )) freshness checks"
say ""

hand_ms= ; apply_ms=
echo '{}' > "$WORK/document.json"
[ "$(id -u)" -eq 0 ] && chown "$TEST_USER" "$WORK/document.json"
for rep in $(seq "$REPEAT"); do
    hand_ms+="$(ms "$BY_HAND") "
    [ "$rep" = 1 ] && sql -Atc 'SELECT pipeline.export()' > "$WORK/document.json"
    sql -c "$DROP_ALL" >/dev/null
    apply_ms+="$(ms "SELECT count(*) FROM pipeline.apply(:'doc', dry_run => false);") "
    same=$(printf '\\set doc `cat %s`\nSELECT pipeline.export() = :'"'doc'"'::jsonb;\n' "$WORK/document.json" | sql -At)
    [ "$same" = t ] || { say "the applied database exports another document"; exit 1; }
    [ "$rep" = "$REPEAT" ] || sql -c "$DROP_ALL" >/dev/null
    echo "repetition $rep done"
done
hm=$(echo "$hand_ms" | median); am=$(echo "$apply_ms" | median)
say "1. making the $PIPELINES pipelines on an empty database, medians of $REPEAT"
say "$(printf '   by hand: the create_pipeline, add_check and add_freshness_check calls   %9.1f ms   (%s)' "$hm" "$hand_ms")"
say "$(printf '   pipeline.apply(document, dry_run => false)                               %9.1f ms   (%s)' "$am" "$apply_ms")"
say "$(printf '   apply / by hand: %.2fx the throughput; the exported document is the one applied' "$(echo "$hm $am" | awk '{print $1 / $2}')")"
say ""

export_ms= ; noop_ms= ; dry_ms= ; one_ms=
for rep in $(seq "$REPEAT"); do
    export_ms+="$(ms 'SELECT length(pipeline.export()::text);') "
    dry_ms+="$(ms "SELECT count(*) FROM pipeline.apply(:'doc');") "
    noop_ms+="$(ms "SELECT count(*) FROM pipeline.apply(:'doc', dry_run => false);") "
    one_ms+="$(ms "SELECT count(*) FROM pipeline.apply(jsonb_set(:'doc', '{pipelines,p_$((ROOTS / 2)),batch_size}', '$((7000 + rep))'), dry_run => false);") "
done
changed=$(sql -Atc "SELECT batch_size FROM pipeline.pipeline_defs WHERE name = 'p_$((ROOTS / 2))'")
say "2. with the $PIPELINES pipelines defined, medians of $REPEAT"
say "$(printf '   pipeline.export()                                   %9.1f ms   (%s): %.2f ms a pipeline' "$(echo "$export_ms" | median)" "$export_ms" "$(echo "$export_ms" | median | awk -v n="$PIPELINES" '{print $1 / n}')")"
say "$(printf '   pipeline.apply(document): the plan, nothing changed  %9.1f ms   (%s)' "$(echo "$dry_ms" | median)" "$dry_ms")"
say "$(printf '   pipeline.apply(document, dry_run => false), the same %9.1f ms   (%s)' "$(echo "$noop_ms" | median)" "$noop_ms")"
say "$(printf '   the same with one pipeline altered (a staging table'"'"'s) %9.1f ms   (%s); its batch_size is now %s' "$(echo "$one_ms" | median)" "$one_ms" "$changed")"
say ""
say "results written to $OUT"
