#!/usr/bin/env bash
# Installs the Debian packages tidepool needs to build, test and benchmark.
# Idempotent: only what is missing is installed. Run as root on Debian 12.
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config liblua5.4-dev libuv1-dev libsqlite3-dev
            node-llhttp lua-cjson-dev libssl-dev libcurl4-openssl-dev zlib1g-dev tzdata
            libjs-vue libjs-chart.js)  # the console's Vue 2 and Chart.js, served by the host
test_pkgs=(python3 python3-cryptography curl lua5.4   # cryptography: the fake WeChat Pay in tests/e2e/test_wechatpay.py
           nginx   # the front of tests/e2e/test_cluster.py (run from a temp dir, not as a service)
           chromium chromium-driver python3-selenium fonts-wqy-microhei)  # the console in a browser (tests/e2e/test_console_ui.py; a CJK font for its screenshots)
# --test also installs CI's OpenAPI validator (tools/openapi: @seriousme/openapi-schema-validator
# and ajv from the npm registry, versions pinned in its package.json and package-lock.json)
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

# node and npm: Debian's nodejs and npm unless a node with npm is there already
if [ "${1:-}" = --test ] && ! command -v npm >/dev/null; then
  want+=(nodejs npm)
fi

openapi_tools() {
  [ "${1:-}" = --test ] || return 0
  local dir; dir="$(cd "$(dirname "$0")" && pwd)/openapi"
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    echo "bootstrap: installing the OpenAPI validator into tools/openapi/node_modules" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
}

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  openapi_tools "${1:-}"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "bootstrap: missing Debian packages: ${missing[*]}; run as root or install them" >&2
  exit 1
fi
echo "bootstrap: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
openapi_tools "${1:-}"
