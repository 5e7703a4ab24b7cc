#!/usr/bin/env bash
# The areas of src/ call each other in one direction only: a file may
# include the header of its own area and of the areas below it, never of an
# area above it (doc/design.md, "The house").  Since C code cannot call a
# function of another area without its header, this keeps the call graph
# free of cycles.  Run from the project root; prints each violation.
set -euo pipefail
cd "$(dirname "$0")/.."

# Bottom to top.  model.h, compat.h, settings.h and strategy.h are the
# ground every area stands on.
layers=(base shared_memory pipeline_catalog cursor sources batch archive strategies lineage
        definition run steps freshness shipping workers)

rank() {
  local i
  for i in "${!layers[@]}"; do
    [ "${layers[$i]}" = "$1" ] && { echo "$i"; return; }
  done
  echo -1			# not an area of ours: a PostgreSQL header
}

status=0
for dir in src/*/; do
  area=$(basename "$dir")
  own=$(rank "$area")
  for file in "$dir"*.[ch]; do
    while read -r used; do
      if [ "$(rank "$used")" -gt "$own" ]; then
        echo "$file (area $area) includes $used/$used.h, an area above it"
        status=1
      fi
    done < <(sed -n 's|^#include "\([a-z_]*\)/\1\.h"$|\1|p' "$file")
  done
done
[ $status -eq 0 ] && echo "layers: every area includes only its own and lower areas (${#layers[@]} areas)"
exit $status
