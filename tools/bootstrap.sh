#!/usr/bin/env bash
# Installs the Debian packages tidepool needs to build, test and benchmark.
# Idempotent: only what is missing is installed. Run as root on Debian 12.
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config liblua5.4-dev libuv1-dev libsqlite3-dev
            node-llhttp lua-cjson-dev libssl-dev libcurl4-openssl-dev tzdata)
test_pkgs=(python3 curl lua5.4)
bench_pkgs=(wrk util-linux)
fuzz_pkgs=(clang libclang-rt-14-dev)
# tests/bench/sidebyside.sh: nginx + lua-nginx-module and redis, run from a temp dir (not as services)
sidebyside_pkgs=(nginx libnginx-mod-http-lua redis-server wrk util-linux curl python3)

want=("${build_pkgs[@]}")
case "${1:-}" in
  --test)  want+=("${test_pkgs[@]}") ;;
  --bench) want+=("${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
  --fuzz)  want+=("${fuzz_pkgs[@]}") ;;
  --sidebyside) want+=("${sidebyside_pkgs[@]}") ;;
  "")      want+=(curl) ;;
  *) echo "usage: tools/bootstrap.sh [--test|--bench|--fuzz|--sidebyside]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "bootstrap: missing Debian packages: ${missing[*]}; run as root or install them" >&2
  exit 1
fi
echo "bootstrap: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
