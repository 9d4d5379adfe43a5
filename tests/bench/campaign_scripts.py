"""A campaign script's row of GET /analytics/campaigns?by=script at a big brand's size:
the plugin's own statements (plugins/analytics/lib/report.lua, report.SCRIPT_STATEMENTS)
on the plugin's own tables (every migration of plugins/analytics/plugin.lua), both read
from the plugin by lua5.4, timed with Python's sqlite3 (the host's SQLite version).

    python3 tests/bench/campaign_scripts.py
    ACTIVITIES=10 PARTICIPATIONS=200000 python3 tests/bench/campaign_scripts.py

The script has ACTIVITIES sales (default 5), each with PARTICIPATIONS member-days of
'part:<activity>' keys (default 100,000) drawn from MEMBERS members (default 300,000)
over DAYS days (default 90), and one coupon template whose coupons paid for
COUPON_ORDERS plain checkouts (default 50,000). Each statement runs ROUNDS times
(default 5) over the whole period; the median is printed with its answer.
"""
import os, random, sqlite3, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
ACTIVITIES = int(os.environ.get("ACTIVITIES", 5))
PARTICIPATIONS = int(os.environ.get("PARTICIPATIONS", 100000))
MEMBERS = int(os.environ.get("MEMBERS", 300000))
DAYS = int(os.environ.get("DAYS", 90))
COUPON_ORDERS = int(os.environ.get("COUPON_ORDERS", 50000))
ROUNDS = int(os.environ.get("ROUNDS", 5))
DAY = 86400
SEP = "\n-- ==== tidepool bench ====\n"

# the plugin's migrations and the report's statements, as the plugin defines them
LUA = r"""
package.path = REPO .. "/sdk/?.lua;" .. REPO .. "/plugins/analytics/?.lua;" .. package.path
local stub
stub = setmetatable({}, { __index = function() return stub end, __call = function() return stub end })
tp = stub  -- nothing runs at load but definitions
local plugin = dofile(REPO .. "/plugins/analytics/plugin.lua")
for _, m in ipairs(plugin.migrations) do io.write(m, SEP) end
io.write(SEP)
local st = require("lib.report").SCRIPT_STATEMENTS
local names = {}
for name in pairs(st) do names[#names + 1] = name end
table.sort(names)
for _, name in ipairs(names) do io.write(name, "\n", st[name], SEP) end
"""


def plugin_sql():
    lua = "local REPO, SEP = ...\n" + LUA
    out = subprocess.run(["lua5.4", "-", REPO, SEP], input=lua, capture_output=True, text=True,
                         cwd=os.path.join(REPO, "plugins", "analytics"))
    if out.returncode != 0:
        sys.exit("lua5.4 could not read the plugin: " + out.stderr)
    migrations, statements = out.stdout.split(SEP + SEP)
    named = {}
    for part in statements.split(SEP):
        if part.strip():
            name, sql = part.split("\n", 1)
            named[name] = sql
    return [m for m in migrations.split(SEP) if m.strip()], named


def main():
    migrations, statements = plugin_sql()
    path = os.path.join(tempfile.mkdtemp(prefix="tidepool-scripts-"), "a.db")
    db = sqlite3.connect(path)
    db.execute("ATTACH ':memory:' AS track")
    for m in migrations:
        db.executescript(m)
    rng = random.Random(1)
    acts = ["flash_sale:%d" % a for a in range(1, ACTIVITIES + 1)]
    t = time.perf_counter()
    db.executemany("INSERT OR IGNORE INTO analytics_visits (source, day, visitor, prev) VALUES (?, ?, ?, 0)",
                   (("part:" + a, rng.randrange(DAYS) * DAY, "m%d" % rng.randrange(MEMBERS))
                    for a in acts for _ in range(PARTICIPATIONS)))
    db.executemany("INSERT INTO analytics_touch (member, first_at, last_at) VALUES (?, ?, ?)",
                   (("m%d" % i, rng.randrange(2 * DAYS * DAY), 0) for i in range(MEMBERS)))
    db.executemany("INSERT INTO analytics_day_orders (key, day, orders, gmv_fen, campaign_fen, coupon_fen) "
                   "VALUES (?, ?, 10, 9900, 2000, 0)", (("camp:" + a, d * DAY) for a in acts for d in range(DAYS)))
    db.executemany("""INSERT INTO analytics_orders (member, created_at, paid_at, total_fen, paid_fen, refunded_fen,
        source, products, coupon_fen, campaign_fen, coupon) VALUES (?, ?, ?, 9900, 9900, 0, 'direct', ',x,', 2000, 0,
        'coupons:1')""", (("m%d" % rng.randrange(MEMBERS), at, at)
                          for at in (rng.randrange(DAYS * DAY) for _ in range(COUPON_ORDERS))))
    db.commit()
    print("campaign script: %d activities x %s member-days, %s members, %s coupon orders, %d days "
          "(built in %.0f s)" % (ACTIVITIES, format(PARTICIPATIONS, ","), format(MEMBERS, ","),
                                 format(COUPON_ORDERS, ","), DAYS, time.perf_counter() - t))
    binds = {"list": ",".join(acts + ["coupons:1"]), "b0": 0, "b1": DAYS * DAY, "source": None, "store": None,
             "guide": None, "campaign": None, "product": None}
    if os.environ.get("PLAN"):  # PLAN=1: how SQLite reads the participants
        for r in db.execute("EXPLAIN QUERY PLAN " + statements["participants_by_day"], binds):
            print("   ", r[3])
    by_day = ("participants_by_day", "sums_by_day", "coupon_sums")
    total = 0.0
    for name in by_day:
        times, row = [], None
        for _ in range(ROUNDS):
            t = time.perf_counter()
            row = db.execute(statements[name], binds).fetchall()
            times.append(time.perf_counter() - t)
        total += statistics.median(times)
        print("  %-22s %7.1f ms median of %d   %s" % (name, statistics.median(times) * 1000, ROUNDS, row))
    print("  the script's row over %d days, no filter: %.1f ms" % (DAYS, total * 1000))
    os.remove(path)


if __name__ == "__main__":
    main()
