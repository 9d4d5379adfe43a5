"""
test_upgrade.py - the demo brand upgraded from an earlier main keeps every row,
every column, every index and every uniqueness rule of every plugin's tables.

Plugins change a table's CHECK or UNIQUE by rebuilding it (new table, copy,
drop, rename, indexes again: orders 1.9.0, group_buy 1.4.0, payments 1.3.0,
tiers, points, fulfilment and notify 1.1.0, members 1.3.0, bargain 1.4.0,
presale 1.1.0, group_chain 0.3.0). A rebuild that forgot a column in
its copy, an index or a UNIQUE would pass every test that starts from an empty
database. So: the demo brand (scripts/demo, its 19 plugins and campaign) at the
commit BASE is served, seeded (tools/demo_seed.sh) and given a paid order with
its pickup, a sign-in, a group, a bargain and a presale deposit; then today's
plugins are served on the same data. Every table BASE had
keeps its rows, column by column; every named index BASE had is there with the
same definition; every set of columns BASE kept unique is still kept unique (by
a UNIQUE column or a unique index); no AUTOINCREMENT sequence went back.
Skipped without the git history (a tarball).
"""
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import json

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, SRC, DEMO_KEY as KEY, DemoHost, run  # noqa: E402

BASE = "b92cc46"  # main as the ninth session left it: orders 1.8.1, group_buy 1.3.1, payments 1.2.0
# the tables rebuilt since BASE: their rows are compared one by one (the others'
# may move when the host starts: jobs come due); the test fails if a table's
# definition changed and it is not named here
# (notify 1.1.0 and group_chain 0.3.0 rebuilt a table too: the demo brand has neither)
REBUILT = {"orders_orders", "group_buy_groups", "group_buy_orders", "payments_prepays", "tiers_ledger",
           "points_entries", "fulfilment_orders", "members_members", "bargain_bargains", "presale_orders"}


class Served(DemoHost):
    """The demo brand of root (BASE's tree, then today's) on data_dir, with a
    buyer's token and JSON calls of any method."""

    def call(self, method, path, body=None, headers=None):
        req = urllib.request.Request(self.base + path, method=method, headers=dict(headers or {}),
                                     data=None if body is None else json.dumps(body).encode())
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise AssertionError("%s %s: %d %s" % (method, path, e.code, e.read()[:500]))

    def user(self, name):
        token = subprocess.run([BIN, "token", "--config", self.conf, "--tenant", "leaf", "--user", name],
                               capture_output=True, text=True, check=True).stdout.strip()
        return {"Authorization": "Bearer " + token}


def base_commit():
    try:
        subprocess.run(["git", "-C", SRC, "cat-file", "-e", BASE + "^{commit}"], check=True,
                       capture_output=True)
        return True
    except (OSError, subprocess.CalledProcessError):
        return False


def export(commit, into):
    """plugins/, scripts/ and sdk/ of the tree at commit into `into`."""
    archive = subprocess.run(["git", "-C", SRC, "archive", commit, "plugins", "scripts", "sdk"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", into], input=archive, check=True)


def today(into):
    for part in ("plugins", "scripts", "sdk"):
        shutil.rmtree(os.path.join(into, part))
        shutil.copytree(os.path.join(SRC, part), os.path.join(into, part))


def snapshot(path):
    """{table: (columns, rows)}, {index name: sql}, {table: unique column sets}, sequences,
    {table: its CREATE TABLE}."""
    db = sqlite3.connect(path)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_schema WHERE type = 'table' AND "
                                           "name NOT LIKE 'sqlite_%' ORDER BY name")]
        content, unique = {}, {}
        for t in tables:
            cols = [r[1] for r in db.execute('PRAGMA table_info("%s")' % t)]
            content[t] = (cols, db.execute('SELECT * FROM "%s" ORDER BY %s' % (
                t, ", ".join('"%s"' % c for c in cols))).fetchall())
            sets = set()
            for _, name, is_unique, _, _ in db.execute('PRAGMA index_list("%s")' % t):
                if is_unique:
                    sets.add(tuple(r[2] for r in db.execute('PRAGMA index_info("%s")' % name)))
            pk = tuple(r[1] for r in sorted(db.execute('PRAGMA table_info("%s")' % t), key=lambda r: r[5]) if r[5])
            if pk:
                sets.add(pk)
            unique[t] = sets
        indexes = dict(db.execute("SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL"))
        creates = dict(db.execute("SELECT name, sql FROM sqlite_schema WHERE type = 'table'"))
        sequences = dict(db.execute("SELECT name, seq FROM sqlite_sequence")) if any(
            True for _ in db.execute("SELECT 1 FROM sqlite_schema WHERE name = 'sqlite_sequence'")) else {}
        return content, indexes, unique, sequences, creates
    finally:
        db.close()


def test_the_demo_brand_upgraded_from_base_keeps_every_row_index_and_unique_rule():
    if not base_commit():
        print("  (skipped: no git history with %s)" % BASE)
        return
    root = tempfile.mkdtemp(prefix="tidepool-e2e-upgrade-")
    try:
        export(BASE, root)
        data = os.path.join(root, "data")
        h = Served(root, data)
        try:
            subprocess.run(["bash", os.path.join(SRC, "tools/demo_seed.sh"), h.base, KEY], check=True,
                           capture_output=True, timeout=300)
            u = h.user("upgrader")
            order = h.call("POST", "/v1/leaf/orders", {"lines": [{"sku": "tea-002", "qty": 2}]}, u)
            h.call("POST", "/admin/leaf/payments/simulate", {"order_id": order["id"]}, {"X-Api-Key": KEY})
            h.call("POST", "/v1/leaf/signin", {}, u)
            h.call("POST", "/v1/leaf/fulfilment/orders/%d/delivery" % order["id"],
                   {"method": "pickup", "store": "hz-west"}, u)
            activity = [a for a in h.call("GET", "/admin/leaf/group-buys", headers={"X-Api-Key": KEY})["items"]
                        if a["sku"] == "tea-101"][0]  # the seed's; the campaign's starts on Double 12
            h.call("POST", "/v1/leaf/group-buys/%d/open" % activity["id"], {}, h.user("leader"))
            for kind, path in (("bargain/activities", "/v1/leaf/bargain/activities/%d/start"),
                               ("presales", "/v1/leaf/presales/%d/buy")):
                live = [a for a in h.call("GET", "/v1/leaf/" + kind)["items"] if a.get("state") in ("open", "deposit_open")]
                assert live, (kind, "the seed has none running")
                h.call("POST", path % live[0]["id"], {}, u)
        finally:
            h.stop()
        before = snapshot(os.path.join(data, "leaf.db"))
        today(root)
        h = Served(root, data)
        h.stop()
        after = snapshot(os.path.join(data, "leaf.db"))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    content0, indexes0, unique0, seq0, creates0 = before
    content1, indexes1, unique1, seq1, creates1 = after
    changed = {t for t in creates0 if creates1.get(t) != creates0[t] and t in content0}
    assert changed == REBUILT, "rebuilt since %s: %s; REBUILT says %s" % (BASE, sorted(changed), sorted(REBUILT))
    # the demo pays through the simulator, which asks no prepay (test_wechatpay upgrades one)
    empty = [t for t in REBUILT - {"payments_prepays"} if not content0.get(t, ((), ()))[1]]
    assert not empty, "the scenario wrote no row to test in %s" % empty
    for t, (cols, rows) in content0.items():
        assert t in content1, "table %s is gone" % t
        cols1, _ = content1[t]
        assert set(cols) <= set(cols1), (t, set(cols) - set(cols1))
        if t in REBUILT:
            db_rows = [tuple(r[cols1.index(c)] for c in cols) for r in content1[t][1]]
            assert sorted(db_rows, key=repr) == sorted(rows, key=repr), "%s: rows changed" % t
    for name, sql in indexes0.items():
        assert indexes1.get(name) == sql, (name, sql, indexes1.get(name))
    for t, sets in unique0.items():
        assert sets <= unique1[t], (t, sets - unique1[t])
    for name, seq in seq0.items():
        assert seq1.get(name, 0) >= seq, (name, seq, seq1.get(name))


if __name__ == "__main__":
    run(globals())
