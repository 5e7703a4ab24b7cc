#!/usr/bin/env bash
# Citus for the Citus tests (test/t/018_citus.pl, 019_sharded_pipelines.pl): builds and installs it
# into PG_CONFIG's PostgreSQL when it is not installed there and its source
# is at hand -- a tarball citus-*.tar.gz in CITUS_SOURCE (default: the
# directory shared/citus next to this repository), with the patches (*.patch)
# found beside it.  A user with Citus from the Citus packages needs none of
# this.  Says why when it installs nothing; the tests then skip, saying so.
#
#   bash test/install_citus.sh          (as root: installs its build dependency)
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-pg_config}
SOURCE=${CITUS_SOURCE:-$REPO/../shared/citus}

libdir=$("$PG_CONFIG" --pkglibdir)
if [ -f "$libdir/citus.so" ]; then
    echo "citus: installed in $libdir"
    exit 0
fi
tarball=$(ls "$SOURCE"/citus-*.tar.gz 2>/dev/null | head -n 1)
if [ -z "$tarball" ]; then
    echo "citus: not installed, and no citus-*.tar.gz in $SOURCE: the Citus tests will be skipped"
    exit 0
fi
if [ "$(id -u)" -ne 0 ] && [ ! -w "$libdir" ]; then
    echo "citus: not installed, and installing it needs root: the Citus tests will be skipped"
    exit 0
fi
# the server headers include gssapi.h
if [ ! -f /usr/include/gssapi.h ] && [ ! -f /usr/include/gssapi/gssapi.h ]; then
    if [ "$(id -u)" -eq 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q libkrb5-dev >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null 2>&1 &&
              DEBIAN_FRONTEND=noninteractive apt-get install -y -q libkrb5-dev >/dev/null 2>&1; }
    fi
fi

# build_and_install DIR LOG: unpacks, patches, configures, builds and
# installs Citus in DIR, its output in LOG.
build_and_install() {
    local dir=$1 log=$2 p
    tar -xzf "$tarball" -C "$dir" && cd "$dir"/citus-* || return 1
    for p in "$SOURCE"/*.patch; do
        [ -f "$p" ] || continue
        patch -p1 < "$p" >>"$log" 2>&1 || return 1
    done
    ./configure --without-libcurl --without-lz4 PG_CONFIG="$PG_CONFIG" >>"$log" 2>&1 &&
        make -j"$(nproc)" >>"$log" 2>&1 &&
        make install >>"$log" 2>&1
}

build=$(mktemp -d "${TMPDIR:-/tmp}/citus-build.XXXXXX")
log="$build/build.log"
echo "citus: building $(basename "$tarball") for $("$PG_CONFIG" --version) (a few minutes)"
if build_and_install "$build" "$log"; then
    echo "citus: installed in $libdir"
    rm -rf "$build"
else
    echo "citus: the build failed, the Citus tests will be skipped; the end of $log:"
    tail -n 20 "$log" 2>/dev/null
fi
exit 0
