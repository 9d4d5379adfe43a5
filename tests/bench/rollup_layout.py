"""The first pass over a saved day, in three layouts of the rollup's tables, to size
the refactor to integer keys before anyone makes it (tests/bench/README.md, "The
integer layout, measured whole").

    DAY_EVENTS=5000000 PHASES=2 DAY_SAVE=/tmp/day5m python3 tests/bench/analytics.py  # once
    python3 tests/bench/rollup_layout.py /tmp/day5m text      # each layout, alternated
    python3 tests/bench/rollup_layout.py /tmp/day5m int
    python3 tests/bench/rollup_layout.py /tmp/day5m int-src

Each run copies the saved day (BENCH_TMPDIR, else /tmp), builds its hours, the day's
analytics_days, day views, visits with their counts, and reach rows in one transaction
with Python's sqlite3 (the host's SQLite version), and prints the seconds of each step
and the four tables' row counts, which must agree between layouts.

- text: the plugin's statements (plugins/analytics/lib/rollup.lua, analytics 1.6.3) for
  a day's first pass: no earlier day, no orders (the saved day has none), so `next`,
  the later days' upkeep, the money keys and the members' touch are left out of all three.
- int: visitors, session sources (the seven columns), visit keys and products as ids in
  dictionary tables: the hour is grouped as today into a scratch table, its new
  visitors, sources and products interned, and its rows written by id.
- int-src: int, with each session's source an id already, as intake could write it;
  the hour groups by (visitor, kind, source id, product).

Before the clock starts, every layout writes the sessions table anew in its key's order
(int-src with the id), so that none reads a better packed table than the others.

It copies the plugin's SQL and can drift from it: a sizing tool, not a test.
TRACK_CACHE=<KiB> sets the attached file's cache (SQLite's default 2 MB otherwise).
"""
import os, shutil, sqlite3, sys, tempfile, time

if len(sys.argv) != 3 or sys.argv[2] not in ("text", "int", "int-src"):
    sys.exit("usage: rollup_layout.py <a DAY_SAVE directory> text|int|int-src")
SAVED, LAYOUT = sys.argv[1], sys.argv[2]
WORK = tempfile.mkdtemp(prefix="tp-layout-", dir=os.environ.get("BENCH_TMPDIR"))
DAY = int(open(os.path.join(SAVED, "day0")).read().split()[0])
STOP = DAY + 86400
for f in ("bench.db", "bench.analytics.db"):
    shutil.copyfile(os.path.join(SAVED, f), os.path.join(WORK, f))
# Untimed, in every layout: the sessions table written anew in its key's order (intake
# wrote it in the order sessions began), with, for int-src, each session's source as an
# id, as intake could write it; so that no layout reads a better packed table.
SRCK = ("coalesce(%(s)ssource, 'direct') || char(31) || coalesce(%(s)sscene, '') || char(31) ||"
        " coalesce(%(s)sstore, '') || char(31) || coalesce(%(s)sguide, '') || char(31) ||"
        " coalesce(%(s)scontent, '') || char(31) || coalesce(%(s)slive, '') || char(31) ||"
        " coalesce(%(s)sreferrer, '')")
a = sqlite3.connect(os.path.join(WORK, "bench.analytics.db"), isolation_level=None)
a.executescript("""
CREATE TABLE analytics_srcs (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE, source TEXT NOT NULL,
  scene INTEGER, store TEXT, guide TEXT, content TEXT, live TEXT, referrer TEXT);
INSERT OR IGNORE INTO analytics_srcs (k, source, scene, store, guide, content, live, referrer)
  SELECT %s, source, scene, store, guide, content, live, referrer FROM analytics_sessions;
CREATE TABLE sessions2 (id TEXT PRIMARY KEY, at INTEGER NOT NULL, device TEXT, member TEXT,
  scene INTEGER NOT NULL, source TEXT NOT NULL, store TEXT, guide TEXT, content TEXT, live TEXT,
  referrer TEXT%s) WITHOUT ROWID;
INSERT INTO sessions2 SELECT s.id, s.at, s.device, s.member, s.scene, s.source, s.store, s.guide,
  s.content, s.live, s.referrer%s FROM analytics_sessions s
  JOIN analytics_srcs z ON z.k = %s ORDER BY s.id;
DROP TABLE analytics_sessions;
ALTER TABLE sessions2 RENAME TO analytics_sessions;
""" % (SRCK % {"s": ""}, ", src INTEGER NOT NULL" if LAYOUT == "int-src" else "",
       ", z.id" if LAYOUT == "int-src" else "", SRCK % {"s": "s."}))
a.close()
db = sqlite3.connect(os.path.join(WORK, "bench.db"), isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA cache_size=-65536")
db.execute("ATTACH ? AS track", ("file:%s?mode=ro" % os.path.join(WORK, "bench.analytics.db"),))
if os.environ.get("TRACK_CACHE"): db.execute("PRAGMA track.cache_size=-%s" % os.environ["TRACK_CACHE"])
steps = {}

def t(step, sql, *a):
    t0 = time.time()
    c = db.execute(sql, a)
    c.fetchall()
    steps[step] = steps.get(step, 0) + time.time() - t0

JOIN = """FROM track.analytics_events e
          LEFT JOIN track.analytics_sessions s ON s.id = e.session
          LEFT JOIN track.analytics_devices dv ON dv.device = e.device
          WHERE e.at >= ?2 AND e.at < ?3"""
WHO = "coalesce(e.member, dv.member, s.member, 'device:' || e.device, 'session:' || e.session)"
# an hour's rows as the plugin's hour statement selects them (rollup.lua HOUR_ROWS),
# before its GROUP BY: the visitor, kind, the session's source, product, count
HOUR_ROWS = """coalesce(mg.into_user, x.who), x.kind, x.source, x.scene, x.store, x.guide,
           x.content, x.live, x.referrer, x.product, count(*)
    FROM (SELECT """ + WHO + """ AS who,
                 e.kind AS kind, coalesce(s.source, 'direct') AS source, s.scene AS scene,
                 s.store AS store, s.guide AS guide, s.content AS content, s.live AS live,
                 s.referrer AS referrer, coalesce(e.product, '') AS product
          """ + JOIN + """) AS x
    LEFT JOIN analytics_merges mg ON mg.from_user = x.who
    WHERE x.source <> 'crawler'"""
ROW_KEYS = ["''", "source", "'scene:' || coalesce(scene, '')", "'store:' || coalesce(store, '')",
            "'guide:' || coalesce(guide, '')", "'content:' || coalesce(content, '')",
            "'live:' || coalesce(live, '')", "'referrer:' || coalesce(referrer, '')"]
SLOTS = 13
MASK_ALL = " | ".join("max(mask & (1 << %d))" % s for s in range(SLOTS))
XS = ", ".join("x%d" % s for s in range(SLOTS))
X_NEW = ",\n".join("CASE WHEN n.mask & (1 << %d) THEN 0 WHEN p.day IS NULL OR p.x%d >= 32767 THEN 32767 "
                   "ELSE min(32767, p.x%d + (?1 - p.day + 43200) / 86400) END" % (s, s, s) for s in range(SLOTS))


def reach_rows(prefix, anywhere):
    """The day's reach rows from <prefix>reach_new (each source's masks): the overall
    rows (source `anywhere`), then every row from the visitor's previous one (none
    here: a first pass), as rollup.reach and redo_reach write them."""
    t("reach", "INSERT INTO %sreach_new (source, visitor, mask) SELECT %s, visitor, %s "
      "FROM %sreach_new GROUP BY visitor" % (prefix, anywhere, MASK_ALL, prefix))
    t("reach", """INSERT INTO {p}reach (source, visitor, day, next, mask, {xs})
      SELECT n.source, n.visitor, ?1, ?2, n.mask, {x_new}
      FROM {p}reach_new n LEFT JOIN {p}reach p ON p.source = n.source AND p.visitor = n.visitor
        AND p.day = (SELECT max(q.day) FROM {p}reach q WHERE q.source = n.source
                     AND q.visitor = n.visitor AND q.day < ?1)""".format(p=prefix, xs=XS, x_new=X_NEW),
      DAY, 1 << 46)

db.execute("BEGIN")
if LAYOUT == "text":
    HOUR = """INSERT INTO analytics_hits (hour, visitor, kind, source, scene, store, guide, content,
      live, referrer, product, n)
    SELECT ?1, """ + HOUR_ROWS + " GROUP BY 2, 3, 4, 5, 6, 7, 8, 9, 10, 11"
    for h in range(DAY, STOP, 3600):
        t("hours", HOUR, h, h * 1000, (h + 3600) * 1000)
    t("days", """INSERT INTO analytics_days (day, visitor, source, store, guide, scene, content, live, referrer)
      SELECT DISTINCT ?1, visitor, source, store, guide, scene, content, live, referrer FROM analytics_hits
      WHERE hour >= ?1 AND hour < ?2""", DAY, STOP)
    t("views", """INSERT INTO analytics_day_views (day, product, views) SELECT ?1, product, sum(n) FROM analytics_hits
      WHERE hour >= ?1 AND hour < ?2 AND kind = 'product_view' AND product <> '' GROUP BY product""", DAY, STOP)
    keys = "\n UNION ".join("SELECT %s AS source, visitor FROM analytics_days WHERE day = ?1" % k for k in ROW_KEYS)
    keys += """ UNION SELECT (CASE kind WHEN 'product_view' THEN 'view:' ELSE 'cart:' END) || product, visitor
      FROM analytics_hits WHERE hour >= ?1 AND hour < ?2 AND kind IN ('product_view', 'add_to_cart') AND product <> ''"""
    t("visits", """INSERT INTO analytics_visits (source, day, visitor, prev)
      SELECT x.source, ?1, x.visitor, coalesce((SELECT max(p.day) FROM analytics_visits p
        WHERE p.source = x.source AND p.visitor = x.visitor AND p.day < ?1), 0) FROM (""" + keys + ") AS x",
      DAY, STOP)
    t("visits", """INSERT INTO analytics_day_uv (day, source, n)
      SELECT ?1, v.source, count(*) FROM analytics_visits v WHERE v.day = ?1 GROUP BY v.source""", DAY)
    t("reach", "DELETE FROM analytics_reach_new")
    t("reach", """INSERT INTO analytics_reach_new (source, visitor, mask)
      SELECT h.source, h.visitor, sum(DISTINCT 1 << coalesce(k.slot, 0)) | 1
      FROM analytics_hits h LEFT JOIN analytics_kinds k ON k.kind = h.kind
      WHERE h.hour >= ?1 AND h.hour < ?2 GROUP BY h.source, h.visitor""", DAY, STOP)
    reach_rows("analytics_", "''")
    TABLES = ("analytics_hits", "analytics_days", "analytics_visits", "analytics_reach")
else:
    db.executescript("""
    CREATE TABLE i_vids (id INTEGER PRIMARY KEY, visitor TEXT NOT NULL UNIQUE);
    CREATE TABLE i_srcs (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE, source TEXT NOT NULL, scene INTEGER,
      store TEXT, guide TEXT, content TEXT, live TEXT, referrer TEXT);
    CREATE TABLE i_keys (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE);
    CREATE TABLE i_src_keys (src INTEGER NOT NULL, key INTEGER NOT NULL, PRIMARY KEY (src, key)) WITHOUT ROWID;
    CREATE TABLE i_prods (id INTEGER PRIMARY KEY, product TEXT NOT NULL UNIQUE, view_key INTEGER, cart_key INTEGER);
    CREATE TABLE i_hits (hour INTEGER NOT NULL, visitor INTEGER NOT NULL, kind TEXT NOT NULL, src INTEGER NOT NULL,
      product INTEGER NOT NULL, n INTEGER NOT NULL);
    CREATE INDEX i_hits_hour ON i_hits(hour, visitor);
    CREATE TABLE i_days (day INTEGER NOT NULL, visitor INTEGER NOT NULL, src INTEGER NOT NULL);
    CREATE INDEX i_days_day ON i_days(day, visitor);
    CREATE TABLE i_day_views (day INTEGER NOT NULL, product TEXT NOT NULL, views INTEGER NOT NULL,
      PRIMARY KEY (day, product)) WITHOUT ROWID;
    CREATE TABLE i_visits (key INTEGER NOT NULL, day INTEGER NOT NULL, visitor INTEGER NOT NULL, prev INTEGER NOT NULL,
      PRIMARY KEY (key, visitor, day)) WITHOUT ROWID;
    CREATE INDEX i_visits_by_day ON i_visits(day, key, prev);
    CREATE TABLE i_day_prev (key INTEGER NOT NULL, day INTEGER NOT NULL, prev INTEGER NOT NULL, n INTEGER NOT NULL,
      PRIMARY KEY (key, day, prev)) WITHOUT ROWID;
    CREATE TRIGGER i_visits_added AFTER INSERT ON i_visits BEGIN
      INSERT INTO i_day_prev (key, day, prev, n) VALUES (new.key, new.day, new.prev, 1)
        ON CONFLICT (key, day, prev) DO UPDATE SET n = n + 1;
    END;
    CREATE TABLE i_day_uv (day INTEGER NOT NULL, key INTEGER NOT NULL, n INTEGER NOT NULL,
      PRIMARY KEY (day, key)) WITHOUT ROWID;
    CREATE TABLE i_sources (id INTEGER PRIMARY KEY, source TEXT NOT NULL UNIQUE);
    CREATE TABLE i_reach_new (source INTEGER NOT NULL, visitor INTEGER NOT NULL, mask INTEGER,
      PRIMARY KEY (source, visitor)) WITHOUT ROWID;
    CREATE TABLE i_reach (source INTEGER NOT NULL, visitor INTEGER NOT NULL, day INTEGER NOT NULL,
      next INTEGER NOT NULL, mask INTEGER NOT NULL, %s, PRIMARY KEY (source, visitor, day)) WITHOUT ROWID;
    CREATE INDEX i_reach_last ON i_reach(day, source, next, %s);
    INSERT INTO i_sources (id, source) VALUES (0, '');
    """ % (", ".join("x%d INTEGER NOT NULL" % s for s in range(SLOTS)), XS))
    db.execute("BEGIN")
    if LAYOUT == "int-src":
        db.execute("INSERT INTO i_srcs SELECT * FROM track.analytics_srcs")
    # an hour: its rows grouped as the text layout groups them (into a scratch
    # table), its new visitors, sources and products interned, then its rows by id
    ROWS = "SELECT " + HOUR_ROWS + " GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10"
    db.execute("""CREATE TEMP TABLE hour_rows (who TEXT, kind TEXT, source TEXT, scene INTEGER, store TEXT,
      guide TEXT, content TEXT, live TEXT, referrer TEXT, product TEXT, n INTEGER)""")
    RSRCK = SRCK % {"s": "r."}
    SROWS = """SELECT coalesce(mg.into_user, x.who), x.kind, x.src, x.product, count(*)
    FROM (SELECT """ + WHO + """ AS who, e.kind AS kind, s.src AS src, s.source AS source,
                 coalesce(e.product, '') AS product """ + JOIN + """) AS x
    LEFT JOIN analytics_merges mg ON mg.from_user = x.who
    WHERE x.source <> 'crawler' GROUP BY 1, 2, 3, 4"""
    db.execute("CREATE TEMP TABLE src_rows (who TEXT, kind TEXT, src INTEGER, product TEXT, n INTEGER)")
    for h in range(DAY, STOP, 3600) if LAYOUT == "int-src" else ():
        t("h.rows", "DELETE FROM temp.src_rows")
        t("h.rows", "INSERT INTO temp.src_rows " + SROWS, h, h * 1000, (h + 3600) * 1000)
        t("h.intern", "INSERT OR IGNORE INTO i_vids (visitor) SELECT who FROM temp.src_rows")
        t("h.intern", "INSERT OR IGNORE INTO i_prods (product) SELECT DISTINCT product FROM temp.src_rows")
        t("h.hits", """INSERT INTO i_hits (hour, visitor, kind, src, product, n)
          SELECT ?1, v.id, r.kind, r.src, p.id, r.n FROM temp.src_rows r JOIN i_vids v ON v.visitor = r.who
          JOIN i_prods p ON p.product = r.product""", h)
    for h in range(DAY, STOP, 3600) if LAYOUT == "int" else ():
        t("h.rows", "DELETE FROM temp.hour_rows")
        t("h.rows", "INSERT INTO temp.hour_rows " + ROWS, h, h * 1000, (h + 3600) * 1000)
        t("h.intern", "INSERT OR IGNORE INTO i_vids (visitor) SELECT who FROM temp.hour_rows")
        t("h.intern", "INSERT OR IGNORE INTO i_prods (product) SELECT DISTINCT product FROM temp.hour_rows")
        t("h.intern", """INSERT OR IGNORE INTO i_srcs (k, source, scene, store, guide, content, live, referrer)
          SELECT DISTINCT """ + RSRCK + """, source, scene, store, guide, content, live, referrer
          FROM temp.hour_rows r""")
        t("h.hits", """INSERT INTO i_hits (hour, visitor, kind, src, product, n)
          SELECT ?1, v.id, r.kind, z.id, p.id, r.n FROM temp.hour_rows r JOIN i_vids v ON v.visitor = r.who
          JOIN i_srcs z ON z.k = """ + RSRCK + """ JOIN i_prods p ON p.product = r.product""", h)
    # the sources' keys and the products' (new ones: a few rows a day)
    for k in ROW_KEYS:
        t("keys", "INSERT OR IGNORE INTO i_keys (key) SELECT DISTINCT %s FROM i_srcs" % k)
        t("keys", "INSERT OR IGNORE INTO i_src_keys (src, key) SELECT s.id, k.id FROM i_srcs s JOIN i_keys k ON k.key = %s"
          % k.replace("coalesce(", "coalesce(s.").replace("source", "s.source") if k != "''" else
          "INSERT OR IGNORE INTO i_src_keys (src, key) SELECT s.id, k.id FROM i_srcs s JOIN i_keys k ON k.key = ''")
    t("keys", "INSERT OR IGNORE INTO i_keys (key) SELECT 'view:' || product FROM i_prods WHERE product <> '' "
      "UNION SELECT 'cart:' || product FROM i_prods WHERE product <> ''")
    t("keys", """UPDATE i_prods SET view_key = (SELECT id FROM i_keys WHERE key = 'view:' || i_prods.product),
      cart_key = (SELECT id FROM i_keys WHERE key = 'cart:' || i_prods.product) WHERE product <> ''""")
    t("keys", "INSERT OR IGNORE INTO i_sources (source) SELECT DISTINCT source FROM i_srcs")
    t("days", """INSERT INTO i_days (day, visitor, src) SELECT DISTINCT ?1, visitor, src FROM i_hits
      WHERE hour >= ?1 AND hour < ?2""", DAY, STOP)
    t("views", """INSERT INTO i_day_views (day, product, views) SELECT ?1, p.product, x.v FROM (
      SELECT product, sum(n) AS v FROM i_hits WHERE hour >= ?1 AND hour < ?2 AND kind = 'product_view'
      GROUP BY product) x JOIN i_prods p ON p.id = x.product WHERE p.product <> ''""", DAY, STOP)
    keys = """SELECT k.key AS key, d.visitor AS visitor FROM i_days d JOIN i_src_keys k ON k.src = d.src WHERE d.day = ?1
      UNION SELECT CASE h.kind WHEN 'product_view' THEN p.view_key ELSE p.cart_key END, h.visitor
      FROM i_hits h JOIN i_prods p ON p.id = h.product
      WHERE h.hour >= ?1 AND h.hour < ?2 AND h.kind IN ('product_view', 'add_to_cart') AND p.product <> ''"""
    t("visits", """INSERT INTO i_visits (key, day, visitor, prev)
      SELECT x.key, ?1, x.visitor, coalesce((SELECT max(p.day) FROM i_visits p
        WHERE p.key = x.key AND p.visitor = x.visitor AND p.day < ?1), 0) FROM (""" + keys + ") AS x", DAY, STOP)
    t("visits", """INSERT INTO i_day_uv (day, key, n)
      SELECT ?1, v.key, count(*) FROM i_visits v WHERE v.day = ?1 GROUP BY v.key""", DAY)
    t("reach", """INSERT INTO i_reach_new (source, visitor, mask)
      SELECT so.id, h.visitor, sum(DISTINCT 1 << coalesce(k.slot, 0)) | 1
      FROM i_hits h JOIN i_srcs s ON s.id = h.src JOIN i_sources so ON so.source = s.source
      LEFT JOIN analytics_kinds k ON k.kind = h.kind
      WHERE h.hour >= ?1 AND h.hour < ?2 GROUP BY so.id, h.visitor""", DAY, STOP)
    reach_rows("i_", "0")
    TABLES = ("i_hits", "i_days", "i_visits", "i_reach")
counts = [db.execute("SELECT count(*) FROM " + x).fetchone()[0] for x in TABLES]
t0 = time.time()
db.execute("COMMIT")
steps["commit"] = time.time() - t0
print("%-5s %s  total %.1f s  (hits %d, days %d, visits %d, reach %d)" % (
    LAYOUT, "  ".join("%s %.1f" % kv for kv in steps.items()), sum(steps.values()), *counts), flush=True)
db.close()
shutil.rmtree(WORK, ignore_errors=True)
