#!/usr/bin/env bash
# tools/layers.sh - holds the core to its layers, from what the compiler built.
#
#   bash tools/layers.sh [BUILD_DIR]     check the host built in BUILD_DIR (default build-dev)
#   bash tools/layers.sh --self-test     show that an upward call and a loop are caught
#
# core/ is in folders, one layer each; a file may use its own folder and the
# folders below it, never one above, and two folders on one floor not each other:
#
#   6 cli      the tidepool command: serve, check, test, campaign, new, api, admin
#   5 host     tenants, the request pipeline, reload, the runner, admin endpoints
#   4 lua      a plugin's state: sandbox, the tp API, loading, invoking
#   3 store    SQLite: transactions, jobs and events, member aliases
#   3 net      HTTP: the server and the router
#   2 config   the host's config file
#   1 base     buffers, JSON, UTF-8, clocks, logs, crypto, tokens, URLs
#
# Two graphs are read. Includes: every `#include "folder/x.h"` in core/. Calls:
# every symbol an object file needs (nm -u) that another core object defines
# (nm --defined-only), so a call through a function pointer the caller was
# handed is no edge: that is how a lower layer calls back up. Inside one
# folder files may call each other, but not in a loop (tsort finds loops).
set -euo pipefail
cd "$(dirname "$0")/.."

rank() {
  case "$1" in
    base) echo 1 ;; config) echo 2 ;; store | net) echo 3 ;; lua) echo 4 ;;
    host) echo 5 ;; cli) echo 6 ;; *) echo 0 ;;
  esac
}

# check ROOT OBJDIR: ROOT holds core/<folder>/*.c; OBJDIR the objects of them
# at the same relative paths (CMake's layout: OBJDIR/core/host/host.c.o).
check() {
  local root=$1 objdir=$2 bad=0
  local tmp
  tmp=$(mktemp -d)
  # folders that are no layer
  for d in "$root"/core/*/; do
    d=$(basename "$d")
    if [ "$(rank "$d")" = 0 ]; then
      echo "layers: core/$d/ is no layer: add it to tools/layers.sh with its floor" >&2
      bad=1
    fi
  done
  # includes
  while IFS=: read -r file _ inc; do
    local from to
    from=$(echo "$file" | cut -d/ -f2)
    to=$(echo "$inc" | sed -n 's|.*#include "\([a-z]*\)/.*|\1|p')
    [ -z "$to" ] && continue
    if ! allowed "$from" "$to"; then
      echo "layers: $file includes $to/: $from (floor $(rank "$from")) may not use $to (floor $(rank "$to"))" >&2
      bad=1
    fi
  done < <(cd "$root" && grep -rn '#include "[a-z]*/' core --include='*.c' --include='*.h' | sed 's/:\([0-9]*\):/:\1:/')
  # calls: symbol -> defining file
  local objs=()
  while IFS= read -r o; do  # an object whose source is gone is a stale one
    local rel=${o#"$objdir"/}
    rel=core/${rel#*core/}
    [ -f "$root/${rel%.o}" ] && objs+=("$o")
  done < <(find "$objdir" -path '*core/*' -name '*.c.o' | sort)
  if [ ${#objs[@]} -eq 0 ]; then
    echo "layers: no objects of core/ under $objdir: build first (cmake --build)" >&2
    rm -rf "$tmp"
    return 2
  fi
  for o in "${objs[@]}"; do
    local src=${o#"$objdir"/}
    src=core/${src#*core/}
    src=${src%.o}
    nm --defined-only -g "$o" | awk -v f="$src" 'NF == 3 {print $3, f}'
  done | sort -u > "$tmp/defs"
  for o in "${objs[@]}"; do
    local src=${o#"$objdir"/}
    src=core/${src#*core/}
    src=${src%.o}
    nm -u "$o" | awk -v f="$src" '{print $2, f}'
  done | sort > "$tmp/uses"
  # from to symbol, for every use of a name another core file defines
  join "$tmp/uses" "$tmp/defs" | awk '$2 != $3 {print $2, $3, $1}' | sort -u > "$tmp/edges"
  while read -r from to sym; do
    local ff tf
    ff=$(echo "$from" | cut -d/ -f2)
    tf=$(echo "$to" | cut -d/ -f2)
    if ! allowed "$ff" "$tf"; then
      echo "layers: $from calls $sym in $to: $ff (floor $(rank "$ff")) may not call $tf (floor $(rank "$tf"))" >&2
      bad=1
    fi
  done < "$tmp/edges"
  # loops between files, inside a folder or across
  awk '{print $1, $2}' "$tmp/edges" | sort -u > "$tmp/pairs"
  if ! tsort "$tmp/pairs" > /dev/null 2> "$tmp/loops"; then
    echo "layers: files that call each other in a loop:" >&2
    grep -v "input contains a loop" "$tmp/loops" | sed 's/^tsort: /  /' >&2
    awk 'NR == FNR {in_loop[$2] = 1; next} ($1 in in_loop) && ($2 in in_loop)' \
      <(grep -v "input contains a loop" "$tmp/loops") "$tmp/edges" | sed 's/^/  edge: /' >&2
    bad=1
  fi
  local nfiles nedges
  nfiles=$(cut -d' ' -f2 "$tmp/defs" | sort -u | wc -l)
  nedges=$(wc -l < "$tmp/pairs")
  if [ $bad = 0 ]; then
    echo "layers: ok: $nfiles files, $nedges calls between files, none up a layer, no loop"
  fi
  rm -rf "$tmp"
  return $bad
}

allowed() {  # allowed FROM TO: may folder FROM use folder TO?
  [ "$1" = "$2" ] && return 0
  [ "$(rank "$2")" -lt "$(rank "$1")" ]
}

self_test() {
  local t
  t=$(mktemp -d)
  trap "rm -rf '$t'" EXIT
  mkdir -p "$t/core/base" "$t/core/host" "$t/obj/core/base" "$t/obj/core/host"
  printf '#include "host/b.h"\nint a_low(void);\nint a_low(void) { return 1; }\n' > "$t/core/base/a.c"
  printf 'int b_high(void);\n' > "$t/core/host/b.h"
  printf 'int a_low(void);\nint b_high(void);\nint b_high(void) { return a_low(); }\n' > "$t/core/host/b.c"
  cc -c -o "$t/obj/core/base/a.c.o" "$t/core/base/a.c" -I"$t/core"
  cc -c -o "$t/obj/core/host/b.c.o" "$t/core/host/b.c"
  echo "self-test 1: a downward call only (must pass)"
  sed -i 's|#include "host/b.h"||' "$t/core/base/a.c"
  check "$t" "$t/obj" || { echo "self-test: a clean tree failed" >&2; return 1; }
  echo "self-test 2: base/a.c includes host/ and calls up into it (must fail)"
  printf '#include "host/b.h"\nint a_low(void);\nint a_low(void) { return b_high(); }\n' > "$t/core/base/a.c"
  cc -c -o "$t/obj/core/base/a.c.o" "$t/core/base/a.c" -I"$t/core"
  if check "$t" "$t/obj" 2> "$t/err"; then
    echo "self-test: an upward call passed" >&2
    return 1
  fi
  grep -q "core/base/a.c calls b_high in core/host/b.c" "$t/err" || { cat "$t/err" >&2; return 1; }
  grep -q "core/base/a.c includes host/" "$t/err" || { cat "$t/err" >&2; return 1; }
  grep -q "loop" "$t/err" || { cat "$t/err" >&2; return 1; }
  sed 's/^/  /' "$t/err"
  echo "self-test: ok (the upward call, the upward include and the loop were each caught)"
}

case "${1:-}" in
  --self-test) self_test ;;
  -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' ;;
  *)
    build=${1:-build-dev}
    check . "$build/CMakeFiles"
    ;;
esac
