#!/usr/bin/env bash
# The packaging: builds the Debian package postgresql-15-pipeline from
# debian/ (pg_buildext, through debhelper's pgxs_loop build system) on a
# copy of the tree, installs the .deb with apt, checks what it installed,
# and smoke-tests the installed package on a throwaway cluster (the library
# preloaded: CREATE EXTENSION, a pipeline run by hand, a continuous one run
# by a background worker); then removes the package and installs the
# source tree's build again.  Also checks META.json (PGXN) against the
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
cleanup() {
    as_test_user pg_ctl -D "$DATA" -m immediate stop >/dev/null 2>&1 || true
    dpkg --purge postgresql-15-pipeline >/dev/null 2>&1 || true
    # the source tree's build, as before
    make -C "$REPO" -s PG_CONFIG="$PG_CONFIG" install >/dev/null 2>&1 || true
    rm -rf "$WORK"
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
libdir=$("$PG_CONFIG" --pkglibdir)
sharedir=$("$PG_CONFIG" --sharedir)
check "the package holds the library" "grep -qx '$libdir/pipeline.so' <<< \"\$files\""
check "the control file" "grep -qx '$sharedir/extension/pipeline.control' <<< \"\$files\""
check "the install script of each version and the upgrade script" \
    "grep -q 'pipeline--0.2.sql' <<< \"\$files\" && grep -q 'pipeline--0.1.sql' <<< \"\$files\" && grep -q 'pipeline--0.1--0.2.sql' <<< \"\$files\""
check "the library links libcurl and libzstd" "ldd '$libdir/pipeline.so' | grep -q libcurl && ldd '$libdir/pipeline.so' | grep -q libzstd"
check "the package depends on PostgreSQL 15" "dpkg -s postgresql-15-pipeline | grep -q '^Depends:.*postgresql-15'"

echo "== package: smoke test of the installed package"
chown "$TEST_USER" "$WORK" 2>/dev/null || { id "$TEST_USER" >/dev/null 2>&1 || useradd --system --create-home "$TEST_USER"; chown "$TEST_USER" "$WORK"; }
start_cluster "$DATA" "$WORK" 55480 "shared_preload_libraries = 'pipeline'"
sql() { as_test_user psql -h "$WORK" -p 55480 -U postgres -d postgres -X -q -At -v ON_ERROR_STOP=1 "$@"; }
sql -c "CREATE EXTENSION pipeline" \
    -c "CREATE TABLE staged (id int, amount int)" \
    -c "SELECT pipeline.create_pipeline('orders', 'staged', 'orders', key => ARRAY['id']) > 0" >/dev/null
sql -c "INSERT INTO staged VALUES (1, 10), (2, 20), (1, 11)" -c "CALL pipeline.run('orders')" >/dev/null
merged=$(sql -c "SELECT string_agg(id || ':' || amount, ',' ORDER BY id) FROM orders")
check "a run merges the staged rows (each key's latest)" '[ "$merged" = "1:11,2:20" ]'
sql -c "SELECT pipeline.alter_pipeline('orders', schedule => 'continuous')" -c "INSERT INTO staged VALUES (3, 30)" >/dev/null
for _ in $(seq 1 100); do
    [ "$(sql -c 'SELECT count(*) FROM orders')" = 3 ] && break
    sleep 0.1
done
rows=$(sql -c "SELECT count(*) FROM orders")
check "a background worker runs a continuous pipeline" '[ "$rows" = 3 ]'
version=$(sql -c "SELECT extversion FROM pg_extension WHERE extname = 'pipeline'")
check "the extension's version is the package's" '[ "$version" = 0.2 ]'
[ $status -eq 0 ] && echo "package: postgresql-15-pipeline built, installed and working" || echo "package: FAILED"
exit $status
