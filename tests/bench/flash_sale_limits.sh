#!/usr/bin/env bash
# tests/bench/flash_sale_limits.sh - on-demand (issue 25): the flash-sale buy
# benchmark (tests/bench/flash_sale.sh) with the host's rate limits configured
# but not hit, beside the same run without them, alternating ROUNDS times so
# that drift on a shared machine falls on both. Each request is a different
# user, so the per-user buy bucket never empties; every request comes from
# 127.0.0.1, so the per-address buckets are set far above any rate wrk reaches:
# every buy pays the lookups and the takes, none is refused (the non-2xx
# column says so). Prints each table under the command that produced it.
#
#   bash tests/bench/flash_sale_limits.sh
#   ROUNDS=3 DURATION=30 CONNS="64 256" bash tests/bench/flash_sale_limits.sh
#
# Environment: ROUNDS (default 1), and everything tests/bench/mechanic.sh reads.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROUNDS=${ROUNDS:-1}
LIMITS='rate_limits = {
        buy = { user = { per_second = 5, burst = 10 }, address = { per_second = 1000000, burst = 1000000 } },
        read = { address = { per_second = 1000000, burst = 1000000 } },
        admin = { key = { per_second = 100000 } } }'

for round in $(seq "$ROUNDS"); do
  echo
  echo "==== round $round/$ROUNDS: without rate limits"
  echo "\$ DURATION=${DURATION:-10} CONNS=\"${CONNS:-64 256}\" bash tests/bench/flash_sale.sh"
  env -u TENANT_EXTRA bash "$HERE/flash_sale.sh"
  echo
  echo "==== round $round/$ROUNDS: with rate limits configured, not hit"
  echo "\$ TENANT_EXTRA='$LIMITS' DURATION=${DURATION:-10} CONNS=\"${CONNS:-64 256}\" bash tests/bench/flash_sale.sh"
  TENANT_EXTRA="$LIMITS" bash "$HERE/flash_sale.sh"
done
