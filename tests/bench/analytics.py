#!/usr/bin/env python3
"""
tests/bench/analytics.py - on-demand benchmark of data ops (issue 20).

    python3 tests/bench/analytics.py                       # Release build in build-release
    DAY_EVENTS=5000000 REPORT_EVENTS=50000000 python3 tests/bench/analytics.py

Three figures, each measured once:

1. Intake: POST /v1/{t}/track in batches of 50 events (every event new),
   wrk on its own core, while a second wrk buys in a flash sale on a few
   connections: events/s, and the buy's p50/p99 next to the same buy alone.
2. The rollup of one local day holding DAY_EVENTS raw events (written straight
   into the analytics database, as intake would have, 48 h limit aside):
   POST /admin/{t}/analytics/rollup {"day": ...}, wall time.
3. A 90-day overview by day over REPORT_EVENTS raw events (spread over 90
   days, rolled up day by day first): the report's wall time, median of 5.

BUY_RATE paces the buys of phase 1 (4 connections, each waiting 4000/BUY_RATE ms
between its buys): unpaced, the buys alone take the whole server core, and "the
buy beside intake" then measures how the core is shared rather than whether a
buy waits for intake.

Environment: BUILD (default build-release), INTAKE_SECONDS (10), BUY_RATE (0), DAY_EVENTS
(1000000), REPORT_EVENTS (3000000), VISITORS (200000), PHASES (default 1,2,3:
which of the three to run), BENCH_TMPDIR.
The machine may be shared: the figures say so, and are noisy.
"""
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BUILD", os.path.join(REPO, "build-release"))
BIN = os.path.join(BUILD, "tidepool")
INTAKE_SECONDS = int(os.environ.get("INTAKE_SECONDS", "10"))
DAY_EVENTS = int(os.environ.get("DAY_EVENTS", "1000000"))
REPORT_EVENTS = int(os.environ.get("REPORT_EVENTS", "3000000"))
VISITORS = int(os.environ.get("VISITORS", "200000"))
PHASES = os.environ.get("PHASES", "1,2,3").split(",")
BUY_RATE = int(os.environ.get("BUY_RATE", "0"))  # buys/s to aim at in phase 1; 0: as fast as they go
KEY = "bench-only-admin-key-000000000001"
SECRET = "bench-only-token-secret-0000000001"
TZ = 8 * 3600
DAY = 86400
KINDS = ["page_view"] * 5 + ["product_view"] * 3 + ["add_to_cart", "search", "share"]


def say(*a):
    print(*a, file=sys.stderr, flush=True)


def req(port, method, path, body=None, admin=True):
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data, method=method)
    if admin:
        r.add_header("X-Api-Key", KEY)
    if data:
        r.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(r, timeout=600) as resp:
        return json.loads(resp.read())


def tokens(n):
    import base64
    import hashlib
    import hmac
    exp = int(time.time()) + DAY
    out = []
    for i in range(n):
        msg = "v1.bench.u%d.%d" % (i, exp)
        sig = base64.urlsafe_b64encode(hmac.new(SECRET.encode(), msg.encode(), hashlib.sha256).digest())
        out.append("%s.%s" % (msg, sig.rstrip(b"=").decode()))
    return out


def wrk(script, conns, seconds, cpu, port, path):
    cmd = ["taskset", "-c", str(cpu), "wrk", "-t1", "-c%d" % conns, "-d%ds" % seconds, "--latency",
           "-s", script, "http://127.0.0.1:%d%s" % (port, path)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def parse_wrk(out):
    res = {}
    for line in out.splitlines():
        p = line.split()
        if line.strip().startswith("50%"):
            res["p50"] = p[1]
        elif line.strip().startswith("99%"):
            res["p99"] = p[1]
        elif line.startswith("Requests/sec:"):
            res["rps"] = float(p[1])
        elif "Non-2xx" in line:
            res["non2xx"] = int(p[-1])
        elif "requests in" in line:
            res["n"], res["secs"] = int(p[0]), float(p[3].rstrip("s,"))
    return res


def local_midnight(epoch):
    return (epoch + TZ) // DAY * DAY - TZ


def fill(db_path, start, days, total, seed):
    """total events over days local days from start, into the analytics database."""
    rnd = random.Random(seed)
    db = sqlite3.connect(db_path, timeout=60)
    db.execute("PRAGMA synchronous=OFF")
    per_day = total // days
    base = db.execute("SELECT coalesce(max(seq), 0) FROM analytics_events").fetchone()[0]
    n = 0
    for d in range(days):
        day0 = start + d * DAY
        sessions = []
        for s in range(max(1, per_day // 8)):
            v = rnd.randrange(VISITORS)
            sid = "s%d-%d-%d" % (seed, d, s)
            at = (day0 + rnd.randrange(DAY)) * 1000
            member = "m%d" % v if v % 3 == 0 else None
            sessions.append((sid, at, "d%d" % v, member))
        db.executemany("INSERT OR IGNORE INTO analytics_sessions (id, at, device, member, scene, source, store)"
                       " VALUES (?, ?, ?, ?, 1008, 'group_chat', 'hz-west')",
                       [(sid, at, dev, m) for sid, at, dev, m in sessions])
        rows = []
        for i in range(per_day):
            sid, at, dev, m = sessions[i // 8 % len(sessions)]
            n += 1
            kind = "enter" if i % 8 == 0 else KINDS[rnd.randrange(len(KINDS))]
            rows.append(("b%d-%d" % (seed, base + n), kind, at + (i % 8) * 1000, at, sid, dev, m,
                         "tea-%d" % rnd.randrange(50) if kind in ("product_view", "add_to_cart") else None))
            if len(rows) >= 100000:
                db.executemany("INSERT INTO analytics_events (id, kind, at, received, session, device, member, product)"
                               " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
                rows = []
        if rows:
            db.executemany("INSERT INTO analytics_events (id, kind, at, received, session, device, member, product)"
                           " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        db.commit()
    db.close()
    return n


def main():
    if not os.path.exists(BIN):
        sys.exit("bench: no %s: cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release && cmake --build build-release" % BIN)
    tmp = tempfile.mkdtemp(prefix="tp-bench-analytics-", dir=os.environ.get("BENCH_TMPDIR"))
    port = 18000 + os.getpid() % 1000
    conf = os.path.join(tmp, "conf.lua")
    with open(conf, "w") as f:
        f.write("""return { listen = "127.0.0.1:%d", data_dir = %r, plugin_dirs = { %r },
  synchronous = "full", log_level = "warn",
  limits = { invocation_ms = 600000 },
  tenants = { { id = "bench", token_secret = %r, api_keys = { %r },
    plugins = { catalog = {}, orders = { max_unpaid_orders = 100000000 },
                payments = { secret = "bench-only-payment-secret-01" }, flash_sale = {},
                analytics = { rollup_every_seconds = 86400 } },
    plugin_limits = { analytics = { instructions = 2000000000, deadline_ms = 600000 } } } } }
""" % (port, tmp, os.path.join(REPO, "plugins"), SECRET, KEY))
    server = subprocess.Popen(["taskset", "-c", "0", BIN, "serve", "--config", conf],
                              stderr=open(os.path.join(tmp, "server.log"), "w"))
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        now = int(time.time())
        req(port, "POST", "/admin/bench/catalog/products", {"name": "tea", "skus": [
            {"code": "tea-1", "title": "tea", "price_fen": 19900, "stock": 10000000}]})
        req(port, "POST", "/admin/bench/flash-sales", {"sku": "tea-1", "price_fen": 990, "quantity": 10000000,
            "per_user_limit": 1000, "starts_at": now - 60, "ends_at": now + DAY})
        toks = tokens(20000)
        buy_lua = os.path.join(tmp, "buy.lua")
        with open(buy_lua, "w") as f:
            f.write("tokens = {%s}\nlocal i = 0\nrequest = function()\n  i = i + 1\n"
                    "  return wrk.format('POST', '/v1/bench/flash-sales/1/buy', "
                    "{Authorization = 'Bearer ' .. tokens[i %% #tokens + 1]}, '')\nend\n"
                    % ",".join('"%s"' % t for t in toks))
            if BUY_RATE > 0:  # paced: each of the 4 connections waits between its buys
                f.write("delay = function() return %d end\n" % max(1, round(4000 / BUY_RATE)))
        track_lua = os.path.join(tmp, "track.lua")
        with open(track_lua, "w") as f:
            f.write("""local n, at = 0, %d
local tid = tostring(math.random(1, 1000000000))
request = function()
  n = n + 1
  local ev = {}
  for j = 1, 50 do
    ev[j] = '{"id":"' .. tid .. '-' .. n .. '-' .. j .. '","kind":"product_view","at":' .. at ..
      ',"session":"s' .. tid .. '-' .. n .. '","product":"tea-1"}'
  end
  return wrk.format('POST', '/v1/bench/track', {['Content-Type'] = 'application/json'},
    '{"device":"d' .. tid .. '-' .. n .. '","events":[' .. table.concat(ev, ',') .. ']}')
end
""" % (now * 1000))
        if "1" in PHASES:
            intake_phase(port, buy_lua, track_lua)
        adb = os.path.join(tmp, "bench.analytics.db")
        if "2" in PHASES:
            rollup_phase(port, adb, now)
        if "3" in PHASES:
            report_phase(port, adb, now, tmp)
        print("command: %s python3 tests/bench/analytics.py; server on CPU 0, wrk on CPU 1; a shared "
              "2-core machine: noisy figures" % " ".join(
                  "%s=%s" % (k, os.environ[k]) for k in ("DAY_EVENTS", "REPORT_EVENTS", "PHASES", "BUY_RATE")
                  if k in os.environ))
    finally:
        server.terminate()
        server.wait()
        if os.environ.get("KEEP_TMP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)


def intake_phase(port, buy_lua, track_lua):
    if True:
        say("bench: 1. the buy alone (4 connections, %d s)" % INTAKE_SECONDS)
        alone = parse_wrk(wrk(buy_lua, 4, INTAKE_SECONDS, 1, port, "/").communicate()[0])
        say("bench: 1. intake in batches of 50 (32 connections) beside the buy")
        before = req(port, "GET", "/admin/bench/plugins")  # warm
        t_in = wrk(track_lua, 32, INTAKE_SECONDS, 1, port, "/")
        t_buy = wrk(buy_lua, 4, INTAKE_SECONDS, 1, port, "/")
        intake = parse_wrk(t_in.communicate()[0])
        beside = parse_wrk(t_buy.communicate()[0])
        del before
        ok = (intake["n"] - intake.get("non2xx", 0)) / intake["secs"]
        print("intake: %.0f events/s accepted (%.0f batches/s of 50; %.0f/s more answered 503 busy: "
              "intake's 1 ms slice of each loop iteration was spent), p50 %s p99 %s" % (
                  ok * 50, ok, intake.get("non2xx", 0) / intake["secs"], intake["p50"], intake["p99"]))
        print("flash-sale buy alone:         %.0f/s p50 %s p99 %s" % (alone["rps"], alone["p50"], alone["p99"]))
        print("flash-sale buy beside intake: %.0f/s p50 %s p99 %s" % (beside["rps"], beside["p50"], beside["p99"]))


def rollup_phase(port, adb, now):
    if True:
        day0 = local_midnight(now) - 100 * DAY
        say("bench: 2. writing %d events into one local day" % DAY_EVENTS)
        fill(adb, day0, 1, DAY_EVENTS, 1)
        day_text = time.strftime("%Y-%m-%d", time.gmtime(day0 + TZ))
        t0 = time.monotonic()
        out = req(port, "POST", "/admin/bench/analytics/rollup", {"day": day_text})
        secs = time.monotonic() - t0
        metrics = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=60).read().decode()
        instr = next((line.split()[-1] for line in metrics.splitlines()
                      if line.startswith("tidepool_instructions_last{") and 'plugin="analytics"' in line
                      and "/analytics/rollup" in line), "?")
        print("rollup of a day with %d events: %.1f s (%d hours), %s instructions (SQLite steps included)"
              % (DAY_EVENTS, secs, out["hours"], instr))


def report_phase(port, adb, now, tmp):
    if True:
        start = local_midnight(now) - 95 * DAY
        say("bench: 3. writing %d events over 90 days, rolling each day up" % REPORT_EVENTS)
        fill(adb, start, 90, REPORT_EVENTS, 2)
        t0 = time.monotonic()
        for d in range(90):
            req(port, "POST", "/admin/bench/analytics/rollup",
                {"day": time.strftime("%Y-%m-%d", time.gmtime(start + d * DAY + TZ))})
        roll90 = time.monotonic() - t0
        q = "/admin/bench/analytics/overview?from=%s&to=%s&granularity=day" % (
            time.strftime("%Y-%m-%d", time.gmtime(start + TZ)),
            time.strftime("%Y-%m-%d", time.gmtime(start + 89 * DAY + TZ)))
        def timed(path, runs):
            times = []
            for _ in range(runs):
                t0 = time.monotonic()
                out = req(port, "GET", path)
                times.append(time.monotonic() - t0)
            return out, sorted(times)[runs // 2] * 1000

        body, ms = timed(q, 5)
        main_db = sqlite3.connect(os.path.join(tmp, "bench.db"))
        hits = main_db.execute("SELECT count(*) FROM analytics_hits").fetchone()[0]
        try:
            visits = main_db.execute("SELECT count(*) FROM analytics_visits").fetchone()[0]
        except sqlite3.OperationalError:
            visits = 0   # analytics before 1.5.0
        print("90-day overview by day over %d raw events (%d rollup rows, %d visit rows, UV %d): median %.0f ms of 5 "
              "(rolling the 90 days up took %.1f s)" % (REPORT_EVENTS, hits, visits, body["total"]["uv"], ms, roll90))
        span = q.split("?")[1].split("&granularity")[0]
        src, ms = timed("/admin/bench/analytics/sources?" + span, 5)
        print("90-day sources by source: median %.0f ms of 5 (visitors %s)" % (
            ms, ",".join(str(r["visitors"]) for r in src["items"])))
        if os.environ.get("FUNNEL", "1") == "1":
            fun, ms = timed("/admin/bench/analytics/funnel?" + span, 1)
            print("90-day funnel (default steps, by source): %.0f ms, once (steps %s)" % (
                ms, ",".join(str(x["visitors"]) for x in fun["steps"])))


if __name__ == "__main__":
    main()
