#!/usr/bin/env bash
# The whole test suite: builds and installs the extension, then runs, each on
# a throwaway cluster with pipeline and pg_cron preloaded and as an
# unprivileged user, the pg_regress tests (sql/, expected/), the isolation
# specs (test/specs/, test/expected/) and the TAP tests (test/t/), after the
# static checks of the source (test/layers.sh, test/format.sh); then builds,
# installs and smoke-tests the Debian package (test/package.sh).
#
#   bash test/check.sh          (as root on Debian; installs what is missing)
#
# Ends with "N passed, N failed" and exits non-zero when anything failed.
set -uo pipefail
source "$(dirname "$0")/common.sh"

prepare_machine || exit 1
# Citus for test/t/018_citus.pl and 019_sharded_pipelines.pl, when its
# source is at hand (else they skip)
PG_CONFIG="$PG_CONFIG" bash "$REPO/test/install_citus.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pipeline-check.XXXXXX")
scratch_copy "$WORK/tree"
[ "$(id -u)" -eq 0 ] && chown "$TEST_USER" "$WORK"
cd "$WORK/tree"

passed=0
failed=0

# count_results LOG: adds a pg_regress/isolation log's "... ok" and
# "... FAILED" lines to the totals.
count_results() {
    local ok bad
    ok=$(grep -cE '\.\.\. ok|^ok [0-9]' "$1" || true)
    bad=$(grep -cE '\.\.\. FAILED|^not ok [0-9]' "$1" || true)
    passed=$((passed + ok))
    failed=$((failed + bad))
}

# show_diffs FILE: prints a failing suite's diffs so CI output shows why.
show_diffs() {
    [ -s "$1" ] && { echo "---- $1"; head -n 400 "$1"; }
}

# Static checks of the source: the areas of src/ call each other in one
# direction only (test/layers.sh), and the C code is laid out as pgindent
# lays out PostgreSQL's (test/format.sh).
echo "== static checks"
for check in test/layers.sh test/format.sh; do
    if PG_CONFIG="$PG_CONFIG" bash "$check"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done

# pg_regress: the Makefile's list (every sql/*.sql but the install scripts),
# the one make installcheck runs.
mapfile -t regress < <(make -s --no-print-directory PG_CONFIG="$PG_CONFIG" regress-list)
if [ ${#regress[@]} -gt 0 ]; then
    echo "== pg_regress: ${#regress[@]} tests"
    as_test_user "$PGXS_DIR/test/regress/pg_regress" \
        --temp-instance="$WORK/regress_instance" --temp-config=test/pipeline.conf \
        --bindir="$BINDIR" --inputdir=. --outputdir="$WORK/regress" \
        --load-extension=pg_cron --dbname=contrib_regression "${regress[@]}" \
        2>&1 | tee "$WORK/regress.log"
    count_results "$WORK/regress.log"
    show_diffs "$WORK/regress/regression.diffs"
else
    echo "== pg_regress: no tests"
fi

# Isolation specs, the Makefile's list too.
mapfile -t specs < <(make -s --no-print-directory PG_CONFIG="$PG_CONFIG" isolation-list)
if [ ${#specs[@]} -gt 0 ]; then
    echo "== isolation: ${#specs[@]} specs"
    sed "s/^cron.database_name.*/cron.database_name = 'isolation_regression'/" test/pipeline.conf \
        > "$WORK/isolation.conf"
    as_test_user "$PGXS_DIR/test/isolation/pg_isolation_regress" \
        --temp-instance="$WORK/isolation_instance" --temp-config="$WORK/isolation.conf" \
        --bindir="$BINDIR" --inputdir=test --outputdir="$WORK/isolation" \
        --dbname=isolation_regression "${specs[@]}" \
        2>&1 | tee "$WORK/isolation.log"
    count_results "$WORK/isolation.log"
    show_diffs "$WORK/isolation/regression.diffs"
else
    echo "== isolation: no specs"
fi

# TAP tests, one prove run per file so that each counts once.  The scratch
# copy has no git history: the upgrade test reads a copy of the source
# tree's (the test user may not reach the tree where it lies), and says so
# when there is none.
HISTORY="$WORK/history.git"
git clone --quiet --bare --no-local "$REPO" "$HISTORY" 2>/dev/null || HISTORY=
mapfile -t taps < <(ls test/t/*.pl 2>/dev/null | sort)
if [ ${#taps[@]} -gt 0 ]; then
    echo "== TAP: ${#taps[@]} files"
    mkdir -p "$WORK/tap"
    [ "$(id -u)" -eq 0 ] && chown "$TEST_USER" "$WORK/tap"
    for t in "${taps[@]}"; do
        if as_test_user env TESTDIR="$WORK/tap" PIPELINE_SRC="$WORK/tree" PIPELINE_GIT_DIR="$HISTORY" \
            PG_REGRESS="$PGXS_DIR/test/regress/pg_regress" PG_TEST_PORT_DIR="$WORK/tap" \
            prove -I "$PGXS_DIR/test/perl" -I test/perl "$t"; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
            # the failed assertions first: a log's tail may not reach them
            grep -h -B1 -A8 -E '^not ok|Failed test' "$WORK"/tap/tmp_check/log/regress_log_* || true
            for log in "$WORK"/tap/tmp_check/log/*; do
                [ -f "$log" ] && { echo "---- $log"; tail -n 60 "$log"; }
            done
        fi
    done
else
    echo "== TAP: no tests"
fi

# The Debian package, built from debian/, installed and smoke-tested
# (test/package.sh; skipped, passing, where it cannot install packages).
echo "== package"
if PG_CONFIG="$PG_CONFIG" bash "$REPO/test/package.sh"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
