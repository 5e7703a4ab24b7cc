#!/usr/bin/env bash
# The C sources are laid out the way pgindent lays out PostgreSQL's own:
# pg_bsd_indent (Debian package pg-bsd-indent) with pgindent's options and
# a list of the type names in use, taken from the server's headers and
# ours (and zstd's), and pgindent's own touches before and after it
# (dash-protected comments kept, one space before the '*' of a function's
# return type, a tab between run-together comments).  Without arguments it
# checks, printing what differs and failing; with --fix it rewrites the
# files.  Run from anywhere in the project.
#
#   bash test/format.sh [--fix]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v pg_bsd_indent >/dev/null; then
    echo "format: skipped, pg_bsd_indent is not installed (Debian package pg-bsd-indent)"
    exit 0
fi
PG_CONFIG=${PG_CONFIG:-pg_config}
INCLUDES=$("$PG_CONFIG" --includedir-server)
OPTIONS=(-bad -bap -bbb -bc -bl -cli1 -cp33 -cdb -nce -d0 -di12 -nfc1 -i4 -l79 -lp -lpl -nip
         -npro -sac -tpg -ts4)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# typedef_names DIR...: every type name a typedef declares in the C files
# under DIR, one a line (comments removed first: they may hold anything).
typedef_names() {
    find "$@" -name '*.[ch]' -exec sed -e 's|/\*.*\*/||g' {} + | sed -nE \
        -e 's/^\}.*[^A-Za-z0-9_]([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*;.*/\1/p' \
        -e '/\(/!s/^typedef[[:space:]][^;{]*[^A-Za-z0-9_]([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*(\[[^]]*\])?[[:space:]]*;.*/\1/p' \
        -e 's/^typedef[[:space:]].*\([[:space:]]*\*[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*\).*/\1/p'
    printf '%s\n' FILE bool pid_t size_t ssize_t sig_atomic_t va_list
}
ZSTD_HEADER=$(ls /usr/include/zstd.h 2>/dev/null || true)
typedef_names "$INCLUDES" src $ZSTD_HEADER | sort -u > "$WORK/typedefs"

status=0
while read -r file; do
    mkdir -p "$WORK/out/$(dirname "$file")"
    sed -e 's|/\* \+---|/*---X_X|g' "$file" > "$WORK/in"
    if ! pg_bsd_indent "${OPTIONS[@]}" -U"$WORK/typedefs" "$WORK/in" "$WORK/indented" 2>"$WORK/errors"; then
        echo "format: pg_bsd_indent cannot lay out $file: $(head -n 1 "$WORK/errors")"
        status=1
        continue
    fi
    sed -E -e 's|/\*---X_X|/* ---|g' \
        -e 's|^([A-Za-z_][^ \t]*)[ \t]+\*$|\1 *|' \
        -e 's|\*/(/\*.*\*/)$|*/\t\1|' "$WORK/indented" > "$WORK/out/$file"
    if ! cmp -s "$file" "$WORK/out/$file"; then
        if [ "${1:-}" = --fix ]; then
            cp "$WORK/out/$file" "$file"
            echo "format: rewrote $file"
        else
            diff -u "$file" "$WORK/out/$file" | head -n 40 || true
            status=1
        fi
    fi
done < <(find src -name '*.[ch]' | sort)
[ $status -eq 0 ] && [ "${1:-}" != --fix ] && echo "format: every file of src/ is laid out as pgindent would"
[ $status -eq 0 ] || echo "format: run bash test/format.sh --fix"
exit $status
