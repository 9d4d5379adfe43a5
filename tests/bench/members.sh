#!/usr/bin/env bash
# tests/bench/members.sh - the customer pool at a brand's scale (on demand):
# builds the Release host in build-bench/ and runs tests/bench/members.py,
# which says what it measures and prints the table and the command.
#
#   bash tests/bench/members.sh
#   MEMBERS=200000 IMPORT_LINES=200000 bash tests/bench/members.sh
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-$REPO/build-bench}
bash "$REPO/tools/bootstrap.sh" --bench >&2 || echo "bench: bootstrap failed; continuing if the tools are present" >&2
cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" --target tidepool -j"$(nproc)" >/dev/null
BUILD=$BUILD exec python3 "$HERE/members.py"
