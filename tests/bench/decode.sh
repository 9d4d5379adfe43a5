#!/usr/bin/env bash
# What decoding an event costs a plugin's state: the host's exact decoder
# against lua-cjson's, on the same 1.1 KB order.created delivery (decode.c).
# Instructions per decode under callgrind: steady on a noisy VM. On demand:
#
#   bash tests/bench/decode.sh            # N=10000, about ten seconds
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
N=${N:-10000}
BUILD=${BUILD:-$REPO/build-bench}
for tool in cc cmake valgrind callgrind_annotate pkg-config; do
  command -v "$tool" >/dev/null || { echo "decode: $tool is missing (tools/bootstrap.sh --bench)" >&2; exit 1; }
done
cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" --target tpcore -j"$(nproc)" >/dev/null
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tidepool-decode.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
# shellcheck disable=SC2046
cc -std=c11 -O2 -g -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L -I "$REPO/core" \
  $(pkg-config --cflags lua5.4 lua5.4-cjson) "$HERE/decode.c" "$BUILD/libtpcore.a" \
  $(pkg-config --libs lua5.4 lua5.4-cjson libuv sqlite3 libcrypto libcurl zlib) -lm -lpthread \
  -o "$TMP/decode"
cost() {  # exact|cjson: instructions of run(), N decodes and the collector's work
  valgrind --tool=callgrind --callgrind-out-file="$TMP/$1.out" "$TMP/decode" "$1" "$N" >/dev/null 2>&1
  callgrind_annotate --inclusive=yes "$TMP/$1.out" 2>/dev/null |
    awk '/decode.c:run / && !seen++ { gsub(",", "", $1); print $1 }'
}
exact=$(cost exact)
cjson=$(cost cjson)
echo "instructions per decode of a 1.1 KB order.created delivery, the collector's work included"
echo "(callgrind, $N decodes each, commit $(git -C "$REPO" rev-parse --short HEAD)):"
printf '  %-44s %8d\n' "tpj_decode_exact (the host's)" "$((exact / N))" \
  "lua-cjson's decode (the peer)" "$((cjson / N))"
awk -v a="$exact" -v b="$cjson" 'BEGIN { printf "  ratio, the host / cjson: %.2f\n", a / b }'
