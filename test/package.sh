#!/usr/bin/env bash
# The packaging: builds the Debian package postgresql-15-pipeline from
# debian/ (pg_buildext, through debhelper's pgxs_loop build system) on a
# copy of the tree, installs the .deb with apt, checks what it installed,
# and smoke-tests the installed package on a throwaway cluster (the library
# preloaded: CREATE EXTENSION, a pipeline run by hand, a continuous one run
# by a background worker, the shipper posting through libcurl); then
# removes the package and puts back the extension as it was installed
# before (saved first).  Also checks META.json (PGXN) against the
# control file.  As root on Debian (it installs packages); otherwise says
# it is skipped.
#
#   bash test/package.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/common.sh"

# ---- META.json: the fields PGXN requires, and the version of the control file
check_meta() {
    python3 - "$REPO" <<'PY'
import json, re, sys
root = sys.argv[1]
meta = json.load(open(f"{root}/META.json"))
control = open(f"{root}/pipeline.control").read()
version = re.search(r"^default_version = '([^']+)'", control, re.M).group(1)
semver = version + ".0" if version.count(".") == 1 else version
missing = [k for k in ("name", "abstract", "version", "maintainer", "license", "provides", "meta-spec")
           if k not in meta]
assert not missing, f"META.json lacks {missing}"
assert meta["meta-spec"]["version"] == "1.0.0", "META.json: meta-spec 1.0.0"
assert meta["version"] == semver, f"META.json version {meta['version']}, control {version}"
assert meta["provides"]["pipeline"]["version"] == semver, "META.json: provides.pipeline.version"
assert meta["provides"]["pipeline"]["file"] == "pipeline.control", "META.json: provides.pipeline.file"
changelog = open(f"{root}/debian/changelog").readline()
assert f"({version})" in changelog, f"debian/changelog's version is not {version}: {changelog}"
print(f"META.json and debian/changelog: version {version}")
PY
}
check_meta

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "package: skipped (building and installing the .deb needs root on Debian)"
    exit 0
fi
PG_CONFIG=$(command -v "$PG_CONFIG")
BINDIR=$("$PG_CONFIG" --bindir)

# the build dependencies are among what the suite needs (install_deps.sh)
bash "$REPO/test/install_deps.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pipeline-package.XXXXXX")
DATA="$WORK/data"
libdir=$("$PG_CONFIG" --pkglibdir)
sharedir=$("$PG_CONFIG" --sharedir)
# What the package will replace: the extension as installed now (by make
# install, or a package installed before, which stays), put back after.
if dpkg-query -W -f='${Status}' postgresql-15-pipeline 2>/dev/null | grep -q "install ok installed"; then
    echo "package: skipped (postgresql-15-pipeline is installed already; this test would replace it)"
    exit 0
fi
SAVED=$(mktemp -d "${TMPDIR:-/tmp}/pipeline-installed.XXXXXX")
cp -a "$libdir"/pipeline.so "$sharedir"/extension/pipeline.control "$sharedir"/extension/pipeline--*.sql \
    "$SAVED"/ 2>/dev/null || true
[ -d "$libdir/bitcode" ] && cp -a "$libdir/bitcode" "$SAVED/bitcode" 2>/dev/null || true
cleanup() {
    local rc=$?
    as_test_user pg_ctl -D "$DATA" -m immediate stop >/dev/null 2>&1 || true
    dpkg --purge postgresql-15-pipeline >/dev/null 2>&1 || true
    # the extension as it was installed before
    if [ -n "$(ls -A "$SAVED")" ]; then
        cp -a "$SAVED"/pipeline.so "$libdir"/ 2>/dev/null
        cp -a "$SAVED"/pipeline.control "$SAVED"/pipeline--*.sql "$sharedir"/extension/ 2>/dev/null
        [ -d "$SAVED/bitcode" ] && cp -a "$SAVED/bitcode/." "$libdir/bitcode/"
        if [ ! -f "$libdir/pipeline.so" ] || [ ! -f "$sharedir/extension/pipeline.control" ]; then
            echo "package: could not put the installed extension back; its files are in $SAVED" >&2
            rm -rf "$WORK"
            exit 1
        fi
    fi
    rm -rf "$WORK" "$SAVED"
    exit $rc
}
trap cleanup EXIT

echo "== package: dpkg-buildpackage"
scratch_copy "$WORK/src"
(cd "$WORK/src" && make -s clean >/dev/null 2>&1 || true)
(cd "$WORK/src" && dpkg-buildpackage -us -uc -b > "$WORK/build.log" 2>&1) ||
    { tail -40 "$WORK/build.log"; echo "package: the build failed"; exit 1; }
deb=$(ls "$WORK"/postgresql-15-pipeline_*.deb)
echo "built $(basename "$deb")"

echo "== package: install"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" >/dev/null
status=0
check() { if eval "$2"; then echo "ok - $1"; else echo "not ok - $1"; status=1; fi; }
files=$(dpkg -L postgresql-15-pipeline)
check "the package holds the library" "grep -qx '$libdir/pipeline.so' <<< \"\$files\""
check "the control file" "grep -qx '$sharedir/extension/pipeline.control' <<< \"\$files\""
check "the install script of each version and the upgrade script" \
    "grep -q 'pipeline--0.2.sql' <<< \"\$files\" && grep -q 'pipeline--0.1.sql' <<< \"\$files\" && grep -q 'pipeline--0.1--0.2.sql' <<< \"\$files\""
# (ldd's output read whole: grep -q stopping early would end ldd with
# SIGPIPE, which pipefail counts as a failure)
links=$(ldd "$libdir/pipeline.so")
check "the library links libcurl and libzstd" "grep -q libcurl <<< \"\$links\" && grep -q libzstd <<< \"\$links\""

status_text=$(dpkg -s postgresql-15-pipeline)
check "the package depends on PostgreSQL 15" "grep -q '^Depends:.*postgresql-15' <<< \"\$status_text\""

echo "== package: smoke test of the installed package"
chown "$TEST_USER" "$WORK" 2>/dev/null || { id "$TEST_USER" >/dev/null 2>&1 || useradd --system --create-home "$TEST_USER"; chown "$TEST_USER" "$WORK"; }
PORT=${PACKAGE_TEST_PORT:-55480}
start_cluster "$DATA" "$WORK" "$PORT" "shared_preload_libraries = 'pipeline'"
sql() { as_test_user psql -h "$WORK" -p "$PORT" -U postgres -d postgres -X -q -At -v ON_ERROR_STOP=1 "$@"; }
sql -c "CREATE EXTENSION pipeline" \
    -c "CREATE TABLE staged (id int, amount int)" \
    -c "SELECT pipeline.create_pipeline('orders', 'staged', 'orders', key => ARRAY['id']) > 0" >/dev/null
sql -c "INSERT INTO staged VALUES (1, 10), (2, 20), (1, 11)" -c "CALL pipeline.run('orders')" >/dev/null
merged=$(sql -c "SELECT string_agg(id || ':' || amount, ',' ORDER BY id) FROM orders")
check "a run merges the staged rows (each key's latest)" '[ "$merged" = "1:11,2:20" ]'
sql -c "SELECT pipeline.alter_pipeline('orders', schedule => 'continuous')" -c "INSERT INTO staged VALUES (3, 30)" >/dev/null
for _ in $(seq 1 600); do
    [ "$(sql -c 'SELECT count(*) FROM orders')" = 3 ] && break
    sleep 0.1
done
rows=$(sql -c "SELECT count(*) FROM orders")
check "a background worker runs a continuous pipeline" '[ "$rows" = 3 ]'
version=$(sql -c "SELECT extversion FROM pg_extension WHERE extname = 'pipeline'")
check "the extension's version is the package's" '[ "$version" = 0.2 ]'
# libcurl at work: a transport starts the shipper, which posts (nothing listens)
sql -c "SELECT pipeline.set_openlineage_transport('http://127.0.0.1:9/', retry_base => '100 ms')" >/dev/null
for _ in $(seq 1 300); do
    [ "$(sql -c 'SELECT failures > 0 FROM pipeline.openlineage_shipping')" = t ] && break
    sleep 0.1
done
shipping=$(sql -c "SELECT shipper_pid IS NOT NULL AND failures > 0 AND last_error IS NOT NULL FROM pipeline.openlineage_shipping")
check "the shipper runs and posts through libcurl" '[ "$shipping" = t ]'
[ $status -eq 0 ] && echo "package: postgresql-15-pipeline built, installed and working" || echo "package: FAILED"
exit $status
