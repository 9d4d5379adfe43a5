# tests/bench/callgrind.sh - reading a callgrind profile per request; sourced by
# profile.sh and, with PROFILE=1, by mechanic.sh (flash_sale.sh, group_buy.sh,
# bargain.sh).
#
#   cg_begin PID                 zero the counters, note the bytes written so far
#   cg_end PID OUT N REPORT      dump, and write REPORT: instructions and bytes
#                                written per request (N requests), then the top
#                                functions by inclusive and by self cost
#   cg_top LISTING N REQUESTS TOTAL [SELF]
#
# Callgrind counts instructions (Ir), not time, so its figures do not move with
# the machine's noise. Bytes written are /proc/PID/io's write_bytes: what the
# process caused to reach the block layer (the WAL, checkpoints), not sockets.

cg_written() { awk '$1 == "write_bytes:" { print $2 }' "/proc/$1/io"; }

cg_begin() {
  callgrind_control -z "$1" >/dev/null
  CG_WRITTEN0=$(cg_written "$1")
}

# cg_top FILE N REQUESTS TOTAL [SELF]: "Ir  %  Ir/request  function" for the
# first N functions of a listing. Zeroing the counters mid-run leaves the frames
# that were live then (main, uv_run) with the whole total as "self" cost: SELF=1
# drops them.
cg_top() {
  awk -v r="$3" -v top="$2" -v repo="$REPO/" -v total="$4" -v self="${5:-0}" '
    match($0, /^ *[0-9,]+ +\( *[0-9.]+%\) +/) && !/PROGRAM TOTALS|events annotated/ {
      head = substr($0, 1, RLENGTH); fn = substr($0, RLENGTH + 1)
      obj = fn; sub(/^.* \[/, "", obj); sub(/\]$/, "", obj); sub(/^.*\//, "", obj)
      sub(/ \[[^]]*\]$/, "", fn)
      if (fn ~ /^\?\?\?:/) fn = fn " [" obj "]"  # unnamed: say which library
      if (index(fn, repo) == 1) fn = substr(fn, length(repo) + 1)
      if (fn in seen || n >= top) next
      seen[fn] = 1; n++
      irs = head; sub(/^ */, "", irs); sub(/ .*/, "", irs)
      pct = head; sub(/^[^(]*\( */, "", pct); sub(/\).*/, "", pct)
      ir = irs; gsub(",", "", ir); ir += 0
      if (self && ir >= 0.999 * total) { delete seen[fn]; n--; next }  # zeroing artefact: main, uv_run
      printf "%14s %7s %9.0f  %s\n", irs, pct, ir / r, fn }' "$1"
}

cg_end() {  # pid out requests report
  local pid=$1 out=$2 n=$3 report=$4 written total file
  written=$(( $(cg_written "$pid") - CG_WRITTEN0 ))
  callgrind_control -d "$pid" >/dev/null
  for _ in $(seq 1 100); do [ -s "$out.1" ] && break; sleep 0.1; done
  file=$out.1
  [ "$n" -gt 0 ] || { echo "callgrind: no successful requests in the run" >"$report"; return; }
  callgrind_annotate --auto=no --inclusive=yes "$file" >"$file.inclusive.txt" 2>/dev/null
  callgrind_annotate --auto=no --threshold=100 "$file" >"$file.self.txt" 2>/dev/null
  total=$(awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }' "$file.inclusive.txt")
  {
    echo
    echo "callgrind: $n successes, $total instructions: $(awk -v t="$total" -v r="$n" 'BEGIN { printf "%.0f", t / r }') per success;" \
      "$written bytes written: $(awk -v w="$written" -v r="$n" 'BEGIN { printf "%.0f", w / r }') per success"
    echo
    echo "inclusive (the function and everything it calls), top ${TOP:-45}:"
    printf '%14s %7s %9s  %s\n' Ir "" Ir/req function
    cg_top "$file.inclusive.txt" "${TOP:-45}" "$n" "$total"
    echo
    echo "self (instructions in the function itself), top 25:"
    printf '%14s %7s %9s  %s\n' Ir "" Ir/req function
    cg_top "$file.self.txt" 25 "$n" "$total" 1
    echo
    echo "profile: $file (callgrind_annotate --inclusive=yes --tree=calling $file)"
  } >"$report"
}
