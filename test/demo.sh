#!/usr/bin/env bash
# The main job: builds and installs pipeline, starts a throwaway cluster with
# pipeline and pg_cron preloaded, runs a demo pipeline end to end on
# generated e-commerce order events (test/demo.sql) and shows its result.
#
#   bash test/demo.sh          (as root on Debian; installs what is missing)
set -euo pipefail
source "$(dirname "$0")/common.sh"

prepare_machine
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pipeline-demo.XXXXXX")
scratch_copy "$WORK/tree"
[ "$(id -u)" -eq 0 ] && chown "$TEST_USER" "$WORK"
DATA="$WORK/data"
PORT=${PIPELINE_DEMO_PORT:-55432}

stop_cluster() {
    as_test_user pg_ctl -D "$DATA" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap stop_cluster EXIT

start_cluster "$DATA" "$WORK" "$PORT" "shared_preload_libraries = 'pipeline,pg_cron'
cron.database_name = 'pipeline_demo'"
as_test_user createdb -h "$WORK" -p "$PORT" -U postgres pipeline_demo
as_test_user psql -h "$WORK" -p "$PORT" -U postgres -d pipeline_demo -X -q \
    -v ON_ERROR_STOP=1 -c 'CREATE EXTENSION pg_cron' -c 'CREATE EXTENSION pipeline'
as_test_user psql -h "$WORK" -p "$PORT" -U postgres -d pipeline_demo -X \
    -v ON_ERROR_STOP=1 --echo-queries -P pager=off -f "$WORK/tree/test/demo.sql"
