#!/usr/bin/env bash
# tests/bench/rfm.sh - an RFM run at a brand's scale (on demand): builds the
# Release host in build-bench/ and runs tests/bench/rfm.py, which says what it
# measures and prints the figures and the command.
#
#   bash tests/bench/rfm.sh                              # 1M members, 10M orders
#   MEMBERS=100000 ORDERS=1000000 bash tests/bench/rfm.sh  # smaller, quicker
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-$REPO/build-bench}
bash "$REPO/tools/bootstrap.sh" --bench >&2 || echo "bench: bootstrap failed; continuing if the tools are present" >&2
cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" --target tidepool -j"$(nproc)" >/dev/null
BUILD=$BUILD exec python3 "$HERE/rfm.py"
