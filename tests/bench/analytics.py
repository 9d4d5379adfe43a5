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
   into the analytics database, as intake would have, 48 h limit aside): the
   job's first run over it (POST /admin/{t}/analytics/rollup), the day
   recomputed on demand ({"day": ...}), then, after 1% more events in its last
   hour, the job's next run (it folds them in): wall time and instructions.
3. Every report over 90 days by day (overview, funnel, sources by each key,
   products, campaigns, retention) over REPORT_EVENTS raw events spread over
   90 days and an order for about one member session in six (written straight
   into the databases, then rolled up day by day): median of 5 each.

BUY_RATE paces the buys of phase 1 (4 connections, each waiting 4000/BUY_RATE ms
between its buys): unpaced, the buys alone take the whole server core, and "the
buy beside intake" then measures how the core is shared rather than whether a
buy waits for intake.

Environment: BUILD (default build-release), INTAKE_SECONDS (10), BUY_RATE (0), DAY_EVENTS
(1000000), REPORT_EVENTS (3000000), VISITORS (200000), PHASES (default 1,2,3:
which of the three to run), BENCH_TMPDIR, KEEP_TMP=1 (keep the data),
REUSE=<a kept directory> (time the reports again on its data), PLUGINS (the
plugins directory, e.g. another version exported from git, to compare),
DAY_SAVE=<dir> (phase 2 copies the two databases into dir once the day is written,
before rolling it up), DAY_FROM=<that dir> (phase 2 rolls up the saved day again
instead of writing one: the same events for an A/B of the rollup), FIRST_ONLY=1
(phase 2 stops after the job's first run), FOLDS=n,n,... (phase 2, after the first run:
one job run after each n more events in the day's last hour, instead of {"day"} and the
1% run), MAX_EVENTS (with FOLDS: the brand's rollup_max_events for those runs, so that
n events take several; default: one run takes all), BESIDE=1 (with FOLDS: paced buys in a
flash sale on core 1 meanwhile, BUY_RATE or 200/s for BESIDE_SECONDS or 40 s, the runs a
second apart: the buys' p99 and max), EVENT_ORDER (time or random: below).
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
# EVENT_ORDER=time (default): the events (and sessions) of a day written in the order of
# their time, as intake receives them; random: session by session, in random order of time
# (the figures before 2026-12-07). The 5M-event day's first run took about as long either
# way (61.1 and 62.2 s, one run each, 2026-12-07)
IN_TIME_ORDER = os.environ.get("EVENT_ORDER", "time") == "time"
ALL_EVENTS = 1000000000  # rollup_max_events by default here: one run takes every pending event
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


def write_buy_lua(path, toks, sale_id, rate):
    """A wrk script buying in sale sale_id with the tokens in turn; rate > 0: paced, each of
    4 connections waiting 4000/rate ms between its buys."""
    with open(path, "w") as f:
        f.write("tokens = {%s}\nlocal i = 0\nrequest = function()\n  i = i + 1\n"
                "  return wrk.format('POST', '/v1/bench/flash-sales/%d/buy', "
                "{Authorization = 'Bearer ' .. tokens[i %% #tokens + 1]}, '')\nend\n"
                % (",".join('"%s"' % t for t in toks), sale_id))
        if rate > 0:
            f.write("delay = function() return %d end\n" % max(1, round(4000 / rate)))


def wrk(script, conns, seconds, cpu, port, path):
    # wrk leaves a request slower than its timeout (2 s by default) out of the latencies:
    # 30 s keeps a buy that waited for a long rollup run in them
    cmd = ["taskset", "-c", str(cpu), "wrk", "-t1", "-c%d" % conns, "-d%ds" % seconds, "--latency", "--timeout", "30s",
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
        elif line.strip().startswith("Latency") and len(p) >= 4:
            res["max"] = p[3]
        elif line.startswith("Requests/sec:"):
            res["rps"] = float(p[1])
        elif line.strip().startswith("Socket errors") and "timeout" in line:
            res["timeouts"] = int(p[-1])
        elif "Non-2xx" in line:
            res["non2xx"] = int(p[-1])
        elif "requests in" in line:
            res["n"], res["secs"] = int(p[0]), float(p[3].rstrip("s,"))
    return res


def local_midnight(epoch):
    return (epoch + TZ) // DAY * DAY - TZ


# (scene, source) of the sessions, and the stores, guides, content and live rooms they name
SCENES = [(1008, "group_chat")] * 4 + [(1154, "moments")] * 2 + [(1047, "qr_code"), (1053, "search"),
                                                                    (1035, "official_account"), (1176, "live")]
STORES = [None] * 5 + ["store-%d" % i for i in range(5)]
GUIDES = [None] * 10 + ["guide-%d" % i for i in range(20)]


def fill(db_path, start, days, total, seed, orders_db=None, span=DAY):
    """total events over days local days from start (over the first span seconds of each),
    into the analytics database; with
    orders_db, an order for about one member session in six (five in six of them paid, one
    in twenty of those refunded in part) straight into the order facts of the brand's database."""
    rnd = random.Random(seed)
    db = sqlite3.connect(db_path, timeout=60)
    db.execute("PRAGMA synchronous=OFF")
    odb = sqlite3.connect(orders_db, timeout=60) if orders_db else None
    per_day = total // days
    base = db.execute("SELECT coalesce(max(seq), 0) FROM analytics_events").fetchone()[0]
    oid = odb.execute("SELECT coalesce(max(order_id), 0) FROM analytics_orders").fetchone()[0] if odb else 0
    n = 0
    for d in range(days):
        day0 = start + d * DAY
        sessions, orders, lines = [], [], []
        for s in range(max(1, per_day // 8)):
            v = rnd.randrange(VISITORS)
            sid = "s%d-%d-%d" % (seed, d, s)
            at = (day0 + rnd.randrange(span)) * 1000
            member = "m%d" % v if v % 3 == 0 else None
            scene, source = SCENES[rnd.randrange(len(SCENES))]
            store, guide = STORES[rnd.randrange(len(STORES))], GUIDES[rnd.randrange(len(GUIDES))]
            content = "post-%d" % rnd.randrange(30) if source == "moments" else None
            live = "room-%d" % rnd.randrange(3) if source == "live" else None
            sessions.append((sid, at, "d%d" % v, member, scene, source, store, guide, content, live))
            if odb and member and rnd.randrange(6) == 0:
                oid += 1
                sku, qty = "tea-%d" % rnd.randrange(50), 1 + rnd.randrange(3)
                paid_fen = qty * (990 + 100 * rnd.randrange(100))
                paid = rnd.randrange(6) != 0
                refunded = paid_fen // 2 if paid and rnd.randrange(20) == 0 else 0
                created = at // 1000 + 60
                orders.append((oid, member, created, created + 60 if paid else None, paid_fen, paid_fen if paid else 0,
                               refunded, source, scene, store, guide, content, live,
                               "flash_sale:1" if rnd.randrange(10) == 0 else None, ",%s," % sku,
                               0, 500 * qty if rnd.randrange(10) == 0 else 0))
                lines.append((oid, 1, sku, qty, paid_fen if paid else 0, refunded))
        if IN_TIME_ORDER:   # as intake writes them: a session when it enters, an event when it comes
            sessions.sort(key=lambda r: r[1])
        db.executemany("INSERT OR IGNORE INTO analytics_sessions (id, at, device, member, scene, source, store, guide,"
                       " content, live) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", sessions)
        rows = []
        for i in range(per_day):
            sid, at, dev, m = sessions[i // 8 % len(sessions)][:4]
            kind = "enter" if i % 8 == 0 else KINDS[rnd.randrange(len(KINDS))]
            rows.append([None, kind, at + (i % 8) * 1000, at, sid, dev, m,
                         "tea-%d" % rnd.randrange(50) if kind in ("product_view", "add_to_cart") else None])
        if IN_TIME_ORDER:
            rows.sort(key=lambda r: r[2])
        for r in rows:
            n += 1
            r[0] = "b%d-%d" % (seed, base + n)
        for i in range(0, len(rows), 100000):
            db.executemany("INSERT INTO analytics_events (id, kind, at, received, session, device, member, product)"
                           " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows[i:i + 100000])
        del rows
        db.commit()
        if odb:
            odb.executemany("INSERT INTO analytics_orders (order_id, member, created_at, paid_at, total_fen, paid_fen,"
                            " refunded_fen, source, scene, store, guide, content, live, campaign, products,"
                            " coupon_fen, campaign_fen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            orders)
            odb.executemany("INSERT INTO analytics_lines (order_id, line_no, sku, qty, paid_fen, refunded_fen)"
                            " VALUES (?, ?, ?, ?, ?, ?)", lines)
            odb.commit()
    db.close()
    if odb:
        # what facts.buyer keeps per member as orders come in: first and second purchase
        odb.execute("DELETE FROM analytics_buyers")
        odb.execute("INSERT INTO analytics_buyers (member, first_at, second_at) SELECT member, min(paid_at), NULL"
                    " FROM analytics_orders WHERE paid_at IS NOT NULL AND paid_fen > refunded_fen GROUP BY member")
        odb.execute("UPDATE analytics_buyers SET second_at = (SELECT o.paid_at FROM analytics_orders o"
                    " WHERE o.member = analytics_buyers.member AND o.paid_at IS NOT NULL"
                    " AND o.paid_fen > o.refunded_fen ORDER BY o.paid_at LIMIT 1 OFFSET 1)")
        odb.commit()
        odb.close()
    return n


def main():
    if not os.path.exists(BIN):
        sys.exit("bench: no %s: cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release && cmake --build build-release" % BIN)
    reuse = os.environ.get("REUSE")   # a KEEP_TMP=1 run's directory: time the reports again on its data
    tmp = reuse or tempfile.mkdtemp(prefix="tp-bench-analytics-", dir=os.environ.get("BENCH_TMPDIR"))
    port = 18000 + os.getpid() % 1000
    conf = os.path.join(tmp, "conf.lua")

    def serve(max_events=ALL_EVENTS):
        """Starts the server with the brand's rollup_max_events (default: a run takes all);
        returns it once it answers."""
        with open(conf, "w") as f:
            f.write("""return { listen = "127.0.0.1:%d", data_dir = %r, plugin_dirs = { %r },
  synchronous = "full", log_level = "warn",
  limits = { invocation_ms = 600000 },
  tenants = { { id = "bench", token_secret = %r, api_keys = { %r },
    plugins = { catalog = {}, orders = { max_unpaid_orders = 100000000 },
                payments = { secret = "bench-only-payment-secret-01" }, flash_sale = {},
                analytics = { rollup_every_seconds = 86400, rollup_max_hours = 48,
                              rollup_max_events = %d } },
    plugin_limits = { analytics = { instructions = 4000000000, deadline_ms = 600000 } } } } }
""" % (port, tmp, os.environ.get("PLUGINS", os.path.join(REPO, "plugins")), SECRET, KEY, max_events))
        server = subprocess.Popen(["taskset", "-c", "0", BIN, "serve", "--config", conf],
                                  stderr=open(os.path.join(tmp, "server.log"), "a"))
        for _ in range(100):
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        return server

    def restart(max_events):
        nonlocal server
        server.terminate()
        server.wait()
        server = serve(max_events)

    day_from = os.environ.get("DAY_FROM")
    if day_from and "2" in PHASES:   # a saved day's databases, before the server opens them
        for name in ("bench.db", "bench.analytics.db"):
            shutil.copyfile(os.path.join(day_from, name), os.path.join(tmp, name))
    server = serve()
    try:
        now = int(time.time())
        if reuse:
            report_timings(port, tmp, int(open(os.path.join(tmp, "start")).read()))
            return
        if not day_from:   # a saved day's brand has them
            req(port, "POST", "/admin/bench/catalog/products", {"name": "tea", "skus": [
                {"code": "tea-1", "title": "tea", "price_fen": 19900, "stock": 10000000}]})
            req(port, "POST", "/admin/bench/flash-sales", {"sku": "tea-1", "price_fen": 990,
                "quantity": 10000000, "per_user_limit": 1000, "starts_at": now - 60, "ends_at": now + DAY})
        toks = tokens(20000)
        buy_lua = os.path.join(tmp, "buy.lua")
        write_buy_lua(buy_lua, toks, 1, BUY_RATE)

        def buys_beside(seconds):
            """BESIDE=1: paced buys (BUY_RATE, default 200/s) on core 1 for seconds, in a sale
            of their own, of a SKU of its own (a saved day's sale may have ended, and a SKU is in one
            sale at a time): wrk, running."""
            now, sku = int(time.time()), "tea-beside-%d" % time.monotonic_ns()
            req(port, "POST", "/admin/bench/catalog/products", {"name": "tea", "skus": [
                {"code": sku, "title": "tea", "price_fen": 19900, "stock": 10000000}]})
            sale = req(port, "POST", "/admin/bench/flash-sales", {"sku": sku, "price_fen": 990,
                       "quantity": 10000000, "per_user_limit": 1000, "starts_at": now - 60, "ends_at": now + DAY})
            path = os.path.join(tmp, "buy_beside.lua")
            write_buy_lua(path, toks, sale["id"], BUY_RATE or 200)
            return wrk(path, 4, seconds, 1, port, "/")
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
            rollup_phase(port, adb, now, restart, buys_beside)
        if "3" in PHASES:
            report_phase(port, adb, now, tmp)
        print("command: %s python3 tests/bench/analytics.py; server on CPU 0, wrk on CPU 1; a shared "
              "2-core machine: noisy figures" % " ".join(
                  "%s=%s" % (k, os.environ[k])
                  for k in ("DAY_EVENTS", "REPORT_EVENTS", "PHASES", "BUY_RATE", "DAY_SAVE", "DAY_FROM",
                            "FIRST_ONLY", "EVENT_ORDER", "FOLDS", "MAX_EVENTS", "BESIDE") if k in os.environ))
    finally:
        server.terminate()
        server.wait()
        if os.environ.get("KEEP_TMP") != "1" and not reuse:
            shutil.rmtree(tmp, ignore_errors=True)


def commit_buckets(port):
    """The host's group-commit durations so far, {family: {upper bound in s: count}},
    cumulative: the COMMITs on the loop, and the syncs the host's syncer thread makes of
    them (what an answer waits for). Intake's commits (the analytics file) are not among
    them: only the brand's."""
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=60).read().decode()
    out = {"commit": {}, "sync": {}}
    for line in text.splitlines():
        for key, family in (("commit", "tidepool_commit_duration_seconds"),
                            ("sync", "tidepool_sync_duration_seconds")):
            if line.startswith(family + "_bucket{"):
                le = line.split('le="')[1].split('"')[0]
                out[key][float("inf") if le == "+Inf" else float(le)] = int(float(line.split()[-1]))
    return out


def commit_quantiles(a, b):
    """p50 and p99 of the commits between two snapshots, as the bucket bound each falls in."""
    d = sorted((le, b[le] - a.get(le, 0)) for le in b)
    total = d[-1][1] if d else 0
    def q(p):
        for le, n in d:
            if n >= p * total:
                return "<= %.2f ms" % (le * 1000) if le != float("inf") else "> the last bound"
        return "-"
    return total, q(0.5), q(0.99)


def intake_phase(port, buy_lua, track_lua):
    if True:
        say("bench: 1. the buy alone (4 connections, %d s)" % INTAKE_SECONDS)
        c0 = commit_buckets(port)
        alone = parse_wrk(wrk(buy_lua, 4, INTAKE_SECONDS, 1, port, "/").communicate()[0])
        c1 = commit_buckets(port)
        say("bench: 1. intake in batches of 50 (32 connections) beside the buy")
        before = req(port, "GET", "/admin/bench/plugins")  # warm
        c2 = commit_buckets(port)
        t_in = wrk(track_lua, 32, INTAKE_SECONDS, 1, port, "/")
        t_buy = wrk(buy_lua, 4, INTAKE_SECONDS, 1, port, "/")
        intake = parse_wrk(t_in.communicate()[0])
        beside = parse_wrk(t_buy.communicate()[0])
        c3 = commit_buckets(port)
        del before
        ok = (intake["n"] - intake.get("non2xx", 0)) / intake["secs"]
        print("intake: %.0f events/s accepted (%.0f batches/s of 50; %.0f/s more answered 503 busy: "
              "intake's 1 ms slice of each loop iteration was spent), p50 %s p99 %s" % (
                  ok * 50, ok, intake.get("non2xx", 0) / intake["secs"], intake["p50"], intake["p99"]))
        print("flash-sale buy alone:         %.0f/s p50 %s p99 %s" % (alone["rps"], alone["p50"], alone["p99"]))
        print("flash-sale buy beside intake: %.0f/s p50 %s p99 %s" % (beside["rps"], beside["p50"], beside["p99"]))
        for key, what in (("commit", "group commits (on the loop)"), ("sync", "syncs (the syncer thread's)")):
            print("the brand's %s, the buy alone:    %d, p50 %s, p99 %s"
                  % ((what,) + commit_quantiles(c0[key], c1[key])))
            print("the brand's %s, beside intake:    %d, p50 %s, p99 %s"
                  % ((what,) + commit_quantiles(c2[key], c3[key])))


def server_cpu():
    """The server's user and system CPU seconds so far (/proc; 0, 0 if not found)."""
    for d in os.listdir("/proc"):
        try:
            if d.isdigit() and open("/proc/%s/cmdline" % d, "rb").read().startswith(
                    BIN.encode() + b"\0serve\0"):
                f = open("/proc/%s/stat" % d).read().rsplit(")", 1)[1].split()
                tick = os.sysconf("SC_CLK_TCK")
                return int(f[11]) / tick, int(f[12]) / tick
        except OSError:
            pass
    return 0.0, 0.0


def timed_rollup(port, body=None):
    """POST /analytics/rollup (body None: the job's run over the pending hours): the answer,
    the wall time and the instructions the call took (SQLite steps included); says the
    server's CPU time over the call, user and system (the kernel's: reading pages, faults)."""
    c0 = server_cpu()
    t0 = time.monotonic()
    out = req(port, "POST", "/admin/bench/analytics/rollup", body)
    secs = time.monotonic() - t0
    c1 = server_cpu()
    say("bench: the server's CPU over that call: user %.1f s, system %.1f s" % (c1[0] - c0[0], c1[1] - c0[1]))
    metrics = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=60).read().decode()
    instr = next((line.split()[-1] for line in metrics.splitlines()
                  if line.startswith("tidepool_instructions_last{") and 'plugin="analytics"' in line
                  and "/analytics/rollup" in line), "?")
    return out, secs, instr


def save_day(adb, day0):
    """DAY_SAVE: the brand's and the analytics database as they are before the rollup
    (SQLite's backup API: consistent while the server has them open), and the day."""
    out = os.environ["DAY_SAVE"]
    os.makedirs(out, exist_ok=True)
    for name, path in (("bench.db", os.path.join(os.path.dirname(adb), "bench.db")),
                       ("bench.analytics.db", adb)):
        src, dst = sqlite3.connect(path, timeout=60), sqlite3.connect(os.path.join(out, name))
        src.backup(dst)
        dst.close()
        src.close()
    with open(os.path.join(out, "day0"), "w") as f:
        f.write("%d %d\n" % (day0, DAY_EVENTS))
    say("bench: 2. the day saved in %s (DAY_FROM=%s rolls it up again)" % (out, out))


def rollup_phase(port, adb, now, restart, buys_beside):
    day_from = os.environ.get("DAY_FROM")
    if day_from:
        global DAY_EVENTS
        day0, DAY_EVENTS = (int(x) for x in open(os.path.join(day_from, "day0")).read().split())
        say("bench: 2. the day of %d events saved in %s" % (DAY_EVENTS, day_from))
    else:
        day0 = local_midnight(now) - 100 * DAY
        say("bench: 2. writing %d events into one local day" % DAY_EVENTS)
        fill(adb, day0, 1, DAY_EVENTS, 1)
        if os.environ.get("DAY_SAVE"):
            save_day(adb, day0)
    day_text = time.strftime("%Y-%m-%d", time.gmtime(day0 + TZ))
    # the job's first pass over the day (its hours recomputed, the day built whole)
    out, secs, instr = timed_rollup(port)
    print("rollup of a day with %d events, the job's first run: %.1f s (%d hours, more: %s), %s instructions"
          % (DAY_EVENTS, secs, out["hours"], out["more"], instr))
    if os.environ.get("FIRST_ONLY") == "1":
        return
    if os.environ.get("FOLDS"):
        # runs of the job after n more events in the day's last hour each (FOLDS=100,5000,...):
        # how long one holds the loop against what it folds in (its hour's size grows).
        # MAX_EVENTS: the brand's rollup_max_events from here on (the server restarts), so
        # n events take several runs: the longest is what a run holds the loop for
        if os.environ.get("MAX_EVENTS"):
            restart(int(os.environ["MAX_EVENTS"]))
        # BESIDE=1: paced buys on core 1 meanwhile (BESIDE_SECONDS each, default 40): the
        # runs go a second apart, as the job's do, and the buys' p99 and max say how long
        # a buyer waited for them
        beside = os.environ.get("BESIDE") == "1"
        for i, n in enumerate(int(x) for x in os.environ["FOLDS"].split(",")):
            fill(adb, day0 + 23 * 3600, 1, n, 10 + i, span=3600)
            buys = buys_beside(int(os.environ.get("BESIDE_SECONDS", "40"))) if beside else None
            runs = []
            while True:
                if buys:
                    time.sleep(1)
                out, secs, instr = timed_rollup(port)
                runs.append((secs, instr))
                if not out["more"]:
                    break
            longest = max(runs)
            print("after %d more events in the day's last hour: %d job run(s), the longest %.2f s (%s "
                  "instructions), %.2f s in all" % (n, len(runs), longest[0], longest[1], sum(r[0] for r in runs)))
            if buys:
                b = parse_wrk(buys.communicate()[0])
                print("  the flash-sale buys meanwhile: %d in %.0f s, p50 %s p99 %s max %s, %d not 2xx, %d timed out"
                      % (b["n"], b["secs"], b["p50"], b["p99"], b.get("max", "?"), b.get("non2xx", 0),
                         b.get("timeouts", 0)))
        return
    # the same day recomputed on demand, every hour and the day whole (1.5.0's figure)
    out, secs, instr = timed_rollup(port, {"day": day_text})
    print("rollup of a day with %d events, {\"day\"} (every hour, the day whole): %.1f s (%d hours), "
          "%s instructions (SQLite steps included)" % (DAY_EVENTS, secs, out["hours"], instr))
    # 1% more events in the day's last hour: the job's next run folds them in
    more = DAY_EVENTS // 100
    fill(adb, day0 + 23 * 3600, 1, more, 3, span=3600)
    out, secs, instr = timed_rollup(port)
    print("the next job run after %d more events in the day's last hour: %.2f s (%d hours), %s instructions"
          % (more, secs, out["hours"], instr))


def report_phase(port, adb, now, tmp):
    start = local_midnight(now) - 95 * DAY
    say("bench: 3. writing %d events over 90 days (and orders), rolling each day up" % REPORT_EVENTS)
    t0 = time.monotonic()
    fill(adb, start, 90, REPORT_EVENTS, 2, os.path.join(tmp, "bench.db"))
    gen = time.monotonic() - t0
    t0 = time.monotonic()
    for d in range(90):
        req(port, "POST", "/admin/bench/analytics/rollup",
            {"day": time.strftime("%Y-%m-%d", time.gmtime(start + d * DAY + TZ))})
    roll90 = time.monotonic() - t0
    with open(os.path.join(tmp, "start"), "w") as f:
        f.write(str(start))
    main_db = sqlite3.connect(os.path.join(tmp, "bench.db"))
    count = lambda t: main_db.execute("SELECT count(*) FROM %s" % t).fetchone()[0]  # noqa: E731
    print("90 days: %d raw events and %d orders written in %.0f s, rolled up day by day in %.0f s: "
          "%d hit rows, %d visit rows, %d reach rows" % (REPORT_EVENTS, count("analytics_orders"), gen, roll90,
                                                        count("analytics_hits"), count("analytics_visits"),
                                                        count("analytics_reach")))
    report_timings(port, tmp, start)


def report_timings(port, tmp, start):
    span = "from=%s&to=%s" % (time.strftime("%Y-%m-%d", time.gmtime(start + TZ)),
                              time.strftime("%Y-%m-%d", time.gmtime(start + 89 * DAY + TZ)))

    def timed(path, runs=5):
        times = []
        for _ in range(runs):
            t0 = time.monotonic()
            out = req(port, "GET", path)
            times.append(time.monotonic() - t0)
        return out, sorted(times)[runs // 2] * 1000

    print("90-day reports by day, median of 5 (ms):")
    body, ms = timed("/admin/bench/analytics/overview?%s&granularity=day" % span)
    print("  overview (day buckets)      %6.0f  UV %d, orders %d, GMV %d fen" % (
        ms, body["total"]["uv"], body["total"]["orders"], body["total"]["gmv_fen"]))
    body, ms = timed("/admin/bench/analytics/funnel?" + span)
    print("  funnel (default steps)      %6.0f  %s; by %d sources" % (
        ms, ",".join(str(x["visitors"]) for x in body["steps"]), len(body["by_source"])))
    for by in ("source", "scene", "store", "guide", "content", "live", "referrer"):
        body, ms = timed("/admin/bench/analytics/sources?%s&by=%s" % (span, by))
        print("  sources by=%-16s %6.0f  %d keys, visitors %s" % (
            by, ms, len(body["items"]), ",".join(str(r["visitors"]) for r in body["items"][:4])))
    body, ms = timed("/admin/bench/analytics/products?" + span)
    print("  products                    %6.0f  %d products" % (ms, len(body["items"])))
    body, ms = timed("/admin/bench/analytics/campaigns?" + span)
    print("  campaigns                   %6.0f  %d activities" % (ms, len(body["items"])))
    body, ms = timed("/admin/bench/analytics/retention?" + span)
    print("  retention                   %6.0f  %d cohorts" % (ms, len(body["cohorts"])))
    # the reports that read every hit of their period (analytics README "Not yet"),
    # over the last day only: they cost microseconds per visitor-day, on the loop
    last = time.strftime("%Y-%m-%d", time.gmtime(start + 89 * DAY + TZ))
    day = "from=%s&to=%s" % (last, last)
    uv = req(port, "GET", "/admin/bench/analytics/overview?" + day)["total"]["uv"]
    print("the last day's reports that read every hit (%d visitor-days), median of 3 (ms):" % uv)
    for name, q in (("sources, store filter", "sources?%s&store=store-1"),
                    ("products, source filter", "products?%s&source=group_chat"),
                    ("overview by hour", "overview?%s&granularity=hour"),
                    ("funnel, store filter", "funnel?%s&store=store-1"),
                    ("overview, product filter", "overview?%s&product=tea-1"),
                    ("funnel, campaign filter", "funnel?%s&campaign=flash_sale:1")):
        body, ms = timed("/admin/bench/analytics/" + q % day, runs=3)
        print("  %-26s %6.0f  %.1f us a visitor-day" % (name, ms, ms * 1000 / max(uv, 1)))


if __name__ == "__main__":
    main()
