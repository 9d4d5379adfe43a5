#!/usr/bin/env python3
"""
tests/bench/brands.py - many brands in one process (issue 24, item 3): start,
restart, idle memory and first-request latency, with every brand opened at
start (eager, the default) and with open_tenants = {lazy = true}.

    python3 tests/bench/brands.py                 # 10, 300 and 3000 brands, both ways
    SIZES=10,300 MODES=lazy python3 tests/bench/brands.py

Each brand has the eight plugins of the original demo (catalog, orders,
payments, coupons, flash_sale, group_buy, bargain, referral). For each size
and mode, once: the data folder is made by a first start (migrations run for
every brand: not measured), then

- start:    spawn -> the "listening" line, on the migrated data
- RSS:      the process's resident memory 2 s after listening, before any request
- first:    the first request to one brand (GET its product list), then a second
- restart:  SIGTERM -> exit, plus a new start -> "listening" (every brand down meanwhile)

The server runs on CPU 0 (taskset). The machine may be shared: figures are
noisy; the command and the date are printed with them.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BUILD", os.path.join(REPO, "build-release"))
BIN = os.path.join(BUILD, "tidepool")
SIZES = [int(x) for x in os.environ.get("SIZES", "10,300,3000").split(",")]
MODES = os.environ.get("MODES", "eager,lazy").split(",")
PLUGINS = ["catalog", "orders", "payments", "coupons", "flash_sale", "group_buy", "bargain", "referral"]


def config(tmp, n, lazy, idle=300):
    tenants = ",\n".join(
        '{ id = "b%04d", token_secret = "bench-secret-%04d-0123456789abcdef", api_keys = { "bench-key-%04d-0123456789" },'
        " plugins = { %s } }" % (i, i, i, ", ".join("%s = {}" % p for p in PLUGINS)) for i in range(n))
    path = os.path.join(tmp, "tidepool.conf.lua")
    with open(path, "w") as f:
        f.write('return {\n  listen = "127.0.0.1:0", data_dir = "%s/data", plugin_dirs = { "%s/plugins" },\n'
                '  log_level = "warn", limits = { max_connections = 10000 },\n%s  tenants = {\n%s\n  },\n}\n'
                % (tmp, REPO, '  open_tenants = { lazy = true, idle_seconds = %d },\n' % idle if lazy else "", tenants))
    return path


def start(conf):
    t0 = time.monotonic()
    p = subprocess.Popen(["taskset", "-c", "0", BIN, "serve", "--config", conf, "--log-level", "info"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for raw in p.stderr:
        line = json.loads(raw) if raw.startswith(b"{") else {}
        if line.get("msg") == "listening":
            return p, line["port"], time.monotonic() - t0
        if line.get("level") == "error" and line.get("msg") != "plugin not serving":
            p.kill()
            p.wait()
            raise RuntimeError(line.get("detail") or line.get("error") or raw.decode())
    raise RuntimeError("the host exited (%s)" % p.wait())


def drain(p):
    # the log must be read, or the host blocks on a full pipe
    import threading
    threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0


def get_ms(port, path):
    t0 = time.monotonic()
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=120) as r:
        r.read()
    return (time.monotonic() - t0) * 1000


def stop(p):
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    p.wait(600)
    return time.monotonic() - t0


def one(n, mode, tmp):
    conf = config(tmp, n, mode == "lazy")
    if not os.path.exists(os.path.join(tmp, "data")):   # every brand migrated once: not measured
        p, port, _ = start(config(tmp, n, True, idle=1))   # one at a time: 3000 open need 21,000 files
        drain(p)
        for i in range(n):
            get_ms(port, "/v1/b%04d/catalog/products" % i)
        stop(p)
        conf = config(tmp, n, mode == "lazy")
    p, port, t_start = start(conf)
    drain(p)
    time.sleep(2)
    rss = rss_mb(p.pid)
    brand = "b%04d" % (n // 2)
    first = get_ms(port, "/v1/%s/catalog/products" % brand)
    second = get_ms(port, "/v1/%s/catalog/products" % brand)
    t_stop = stop(p)
    p, port, t_again = start(conf)
    drain(p)
    stop(p)
    return t_start, rss, first, second, t_stop + t_again


def main():
    if not os.path.exists(BIN):
        raise SystemExit("bench: no %s (cmake -B build-release -DCMAKE_BUILD_TYPE=Release && cmake --build build-release)" % BIN)
    print("command: SIZES=%s MODES=%s python3 tests/bench/brands.py (%s); server on CPU 0; a shared 2-core "
          "machine: noisy figures" % (",".join(map(str, SIZES)), ",".join(MODES), time.strftime("%Y-%m-%d")))
    print("| brands | mode | start | idle RSS | first request | second | restart (stop + start) |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for n in SIZES:
        tmp = tempfile.mkdtemp(prefix="tidepool-brands-", dir=os.environ.get("BENCH_TMPDIR"))
        try:
            for mode in MODES:
                try:
                    s, rss, first, second, restart = one(n, mode, tmp)
                except RuntimeError as e:
                    print("| %d | %s | did not start: %s | | | | |" % (n, mode, e), flush=True)
                    continue
                print("| %d | %s | %.2f s | %.0f MB | %.1f ms | %.1f ms | %.2f s |" % (n, mode, s, rss, first, second,
                                                                                 restart), flush=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
