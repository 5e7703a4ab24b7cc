# Shared by test/check.sh, test/demo.sh and the benchmarks: locate the
# tools, build and install the extension, and run commands as an
# unprivileged user (initdb refuses root).

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-pg_config}
TEST_USER=${PIPELINE_TEST_USER:-pipeline_ci}

# prepare_machine: dependencies, build, install (as root when we are root).
prepare_machine() {
    bash "$REPO/test/install_deps.sh"
    PG_CONFIG=$(command -v "$PG_CONFIG")
    BINDIR=$("$PG_CONFIG" --bindir)
    PGXS_DIR=$(dirname "$("$PG_CONFIG" --pgxs)")/..
    make -C "$REPO" -s PG_CONFIG="$PG_CONFIG" ${PG_CFLAGS:+PG_CFLAGS="$PG_CFLAGS"} >/dev/null
    if [ "$(id -u)" -eq 0 ]; then
        make -C "$REPO" -s PG_CONFIG="$PG_CONFIG" install >/dev/null
    else
        make -C "$REPO" -s PG_CONFIG="$PG_CONFIG" install >/dev/null ||
            { echo "make install failed: run as root" >&2; exit 1; }
    fi
}

# scratch_copy DIR: a copy of the tracked tree (plus untracked, unignored
# files) in DIR, owned by the test user when we are root.
scratch_copy() {
    local dir=$1
    rm -rf "$dir"
    mkdir -p "$dir"
    (cd "$REPO" && { git ls-files -co --exclude-standard 2>/dev/null || find . -type f -not -path './.git/*'; } |
        tar -cf - -T - 2>/dev/null) | tar -xf - -C "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        id "$TEST_USER" >/dev/null 2>&1 || useradd --system --create-home --shell /bin/bash "$TEST_USER"
        chown -R "$TEST_USER" "$dir"
    fi
}

# as_test_user CMD...: runs a command as the unprivileged user (or as is).
as_test_user() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u "$TEST_USER" -- env PATH="$BINDIR:$PATH" "$@"
    else
        env PATH="$BINDIR:$PATH" "$@"
    fi
}

# start_cluster DATA SOCKET_DIR PORT SETTINGS: initdb (as the unprivileged
# user) a throwaway cluster reachable only through SOCKET_DIR, with SETTINGS
# (postgresql.conf lines) appended, and start it; the log is SOCKET_DIR/server.log.
start_cluster() {
    as_test_user initdb -D "$1" -A trust -U postgres >/dev/null
    cat >> "$1/postgresql.conf" <<CONF
port = $3
listen_addresses = ''
unix_socket_directories = '$2'
$4
CONF
    as_test_user pg_ctl -D "$1" -l "$2/server.log" -w start >/dev/null
}

# bench_setup: for the benchmarks.  As root (unless BENCH_BUILD=0) installs
# what is missing, builds and installs; otherwise checks that the extension
# is installed.  Then a work directory WORK (cluster data in DATA) owned by
# the test user, removed on exit with its cluster.
bench_setup() {
    if [ "$(id -u)" -eq 0 ] && [ "${BENCH_BUILD:-1}" = 1 ]; then
        prepare_machine
    else
        PG_CONFIG=$(command -v "$PG_CONFIG" || true)
        [ -n "$PG_CONFIG" ] || { echo "pg_config not found: install PostgreSQL 15 and its server headers" >&2; exit 1; }
        BINDIR=$("$PG_CONFIG" --bindir)
        if [ ! -f "$("$PG_CONFIG" --sharedir)/extension/pipeline.control" ] ||
           [ ! -f "$("$PG_CONFIG" --pkglibdir)/pipeline.so" ]; then
            echo "the pipeline extension is not installed: run this as root, or 'make && sudo make install' first" >&2
            exit 1
        fi
        if [ "$(id -u)" -eq 0 ]; then
            id "$TEST_USER" >/dev/null 2>&1 || useradd --system --create-home --shell /bin/bash "$TEST_USER"
        fi
    fi
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/pipeline-bench.XXXXXX")
    [ "$(id -u)" -eq 0 ] && chown "$TEST_USER" "$WORK"
    DATA="$WORK/data"
    trap bench_cleanup EXIT
}

# bench_clients DB: sql and pgbench, run as the test user against database
# DB of the throwaway cluster (socket directory $WORK, port $PORT).
bench_clients() {
    BENCH_DB=$1
    sql() { as_test_user env PGOPTIONS='-c client_min_messages=warning' psql -h "$WORK" -p "$PORT" -U postgres -d "$BENCH_DB" -X -q -v ON_ERROR_STOP=1 "$@"; }
    pgbench() { as_test_user "$BINDIR/pgbench" -h "$WORK" -p "$PORT" -U postgres -n "$@" "$BENCH_DB"; }
}

# bench_results NAME: OUT, results/NAME-<time>.txt next to the script, and
# say, which prints a line and adds it to OUT.
bench_results() {
    mkdir -p "$HERE/results"
    OUT="$HERE/results/$1-$(date -u +%Y%m%d-%H%M%S).txt"
    : > "$OUT"
    say() { echo "$*" | tee -a "$OUT"; }
}

bench_cleanup() {
    as_test_user pg_ctl -D "$DATA" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}

# median: the median of the numbers on standard input (separated by blanks
# or lines), for the benchmarks' repetitions.
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
