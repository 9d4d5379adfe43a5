#!/usr/bin/env bash
# What one row written costs SQLite with each way of writing a column's value
# rule: no CHECK, IN lists of two, three and six values, the same three values as
# ORs, and a UNIQUE column that is NULL on every row; then with an AUTOINCREMENT
# id, beside 0, 6 and 29 other AUTOINCREMENT tables. Instructions per insert
# under callgrind (check_cost.c), against Debian's libsqlite3. On demand:
#
#   bash tests/bench/check_cost.sh            # ROWS=10000, a few seconds
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROWS=${ROWS:-10000}
for tool in cc valgrind callgrind_annotate pkg-config; do
  command -v "$tool" >/dev/null || { echo "check_cost: $tool is missing (tools/bootstrap.sh --bench)" >&2; exit 1; }
done
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tidepool-check-cost.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
# shellcheck disable=SC2046
cc -std=c11 -O2 -g -Wall -Wextra -Werror $(pkg-config --cflags sqlite3) "$HERE/check_cost.c" \
  $(pkg-config --libs sqlite3) -o "$TMP/check_cost"
echo "instructions per row inserted (callgrind, $ROWS rows, sqlite $(pkg-config --modversion sqlite3)):"
while IFS='|' read -r label constraint others; do
  # shellcheck disable=SC2086
  valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out" "$TMP/check_cost" "$TMP/t.db" "$constraint" \
    "$ROWS" $others </dev/null 2>/dev/null
  ir=$(callgrind_annotate --inclusive=yes "$TMP/cg.out" 2>/dev/null |
    awk '/check_cost.c:step_insert / && !seen++ { gsub(",", "", $1); print $1 }')
  printf '  %-48s %8d\n' "$label" "$((ir / ROWS))"
done <<'CASES'
no CHECK|
CHECK (s IN ('a', 'b'))|CHECK (s IN ('a', 'b'))
CHECK (s IN ('a', 'b', 'c'))|CHECK (s IN ('a', 'b', 'c'))
CHECK (s IN ('a', 'b', 'c', 'd', 'e', 'f'))|CHECK (s IN ('a', 'b', 'c', 'd', 'e', 'f'))
CHECK (s = 'a' OR s = 'b' OR s = 'c')|CHECK (s = 'a' OR s = 'b' OR s = 'c')
a UNIQUE column, NULL on every row|, u TEXT UNIQUE
an AUTOINCREMENT id, the only one||0
... beside 6 others (the demo brand: 7 in all)||6
... beside 29 others||29
CASES
