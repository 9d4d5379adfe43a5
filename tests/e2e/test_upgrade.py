"""
test_upgrade.py - the demo brand upgraded from an earlier main keeps every row,
every column, every index and every uniqueness rule of every plugin's tables.

Plugins change a table's CHECK or UNIQUE by rebuilding it (new table, copy,
drop, rename, indexes again: orders 1.9.0, group_buy 1.4.0, payments 1.3.0,
tiers, points, fulfilment and notify 1.1.0, members 1.3.0, bargain 1.4.0,
presale 1.1.0, group_chain 0.3.0, coupons 1.7.0, friend_assist 0.6.0; the last
two rebuild tables that foreign keys reference, which the host's migrations
allow since they run with the keys off and check them before COMMIT). A rebuild that forgot a column in
its copy, an index or a UNIQUE would pass every test that starts from an empty
database. So: the demo brand (scripts/demo, its 19 plugins and campaign) at the
commit BASE is served, seeded (tools/demo_seed.sh) and given a paid order with
its pickup, a sign-in, a coupon, a group, a bargain and a presale deposit; then today's
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
from harness import (BIN, SRC, DEMO_KEY as KEY, DemoHost, host_with_old, old_plugin, plugin_version,  # noqa: E402
                     tenant, user_auth, run)

BASE = "b92cc46"  # main as the ninth session left it: orders 1.8.1, group_buy 1.3.1, payments 1.2.0
# the tables rebuilt since BASE: their rows are compared one by one (the others'
# may move when the host starts: jobs come due); the test fails if a table's
# definition changed and it is not named here
# (notify 1.1.0 and group_chain 0.3.0 rebuilt a table too: the demo brand has neither)
REBUILT = {"orders_orders", "group_buy_groups", "group_buy_orders", "payments_prepays", "tiers_ledger",
           "points_entries", "fulfilment_orders", "members_members", "bargain_bargains", "presale_orders",
           "coupons_templates", "coupons_coupons", "coupons_drops", "coupons_merge_moves",
           "group_buy_buyers"}
# a column added since BASE (ALTER TABLE ... ADD COLUMN, not a rebuild: no row is copied):
# analytics 1.8.0's coupon on the order facts, 1.8.4's merge count on each hour's watermark.
# Their rows are not compared: the order events, the money job and the rollup still due
# when the host stopped move them once it starts
ALTERED = {"analytics_orders", "analytics_hour_seq"}
# rebuilt, and the demo's scenario writes no row there: a drop runs on Double 12, no member merges
# (test_referenced_tables_... below upgrades coupons and friend_assist with rows in every table)
UNWRITTEN = {"payments_prepays", "coupons_drops", "coupons_merge_moves"}
# indexes dropped since BASE, each for a reason its migration gives (group_buy 1.5.0:
# no query needs the first; the buyers' new key serves the second's queries)
DROPPED = {"group_buy_orders_member", "group_buy_buyers_user"}
# tables dropped since BASE, each for a reason its migration gives (analytics 1.9.0: a run
# folds the steps of queued orders, analytics_steps_queue, not every order of marked days)
GONE = {"analytics_order_days"}
# columns a start rightly changes: the demo's campaign script applies its coupon again
MOVE_ON_START = {"coupons_templates": {"updated_at"}}


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
                    sets.add(frozenset(r[2] for r in db.execute('PRAGMA index_info("%s")' % name)))
            # a set of columns is unique whatever the order of the key that holds it
            pk = frozenset(r[1] for r in db.execute('PRAGMA table_info("%s")' % t) if r[5])
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
            h.call("POST", "/v1/leaf/coupons/templates/1/claim", {}, u)
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
    changed = {t for t in creates0 if creates1.get(t) != creates0[t] and t in content0 and t not in GONE}
    assert changed == REBUILT | ALTERED, "changed since %s: %s; REBUILT and ALTERED say %s" % (
        BASE, sorted(changed), sorted(REBUILT | ALTERED))
    # the demo pays through the simulator, which asks no prepay (test_wechatpay upgrades one)
    empty = [t for t in REBUILT - UNWRITTEN if not content0.get(t, ((), ()))[1]]
    assert not empty, "the scenario wrote no row to test in %s" % empty
    assert GONE <= set(content0) and not GONE & set(content1), (GONE, sorted(content1))
    for t, (cols, rows) in content0.items():
        if t in GONE:
            continue
        assert t in content1, "table %s is gone" % t
        cols1, _ = content1[t]
        assert set(cols) <= set(cols1), (t, set(cols) - set(cols1))
        if t in REBUILT:
            same = [i for i, c in enumerate(cols) if c not in MOVE_ON_START.get(t, ())]
            rows = [tuple(r[i] for i in same) for r in rows]
            db_rows = [tuple(r[cols1.index(cols[i])] for i in same) for r in content1[t][1]]
            assert sorted(db_rows, key=repr) == sorted(rows, key=repr), "%s: rows changed: %s" % (
                t, (set(rows) - set(db_rows), set(db_rows) - set(rows)))
    for name, sql in indexes0.items():
        assert indexes1.get(name) == (None if name in DROPPED else sql), (name, sql, indexes1.get(name))
    for t, sets in unique0.items():
        if t not in GONE:
            assert sets <= unique1[t], (t, sets - unique1[t])
    for name, seq in seq0.items():
        assert seq1.get(name, 0) >= seq, (name, seq, seq1.get(name))


def test_referenced_tables_are_rebuilt_with_their_rows_and_foreign_keys():
    """coupons 1.7.0 and friend_assist 0.6.0 rebuild tables that foreign keys
    reference (templates, coupons, drives), which the host's migrations allow by
    running with foreign keys off and checking them before COMMIT. From their
    previous versions with a row in each table: every row and column is kept, no
    row lost its parent, the children still name the rebuilt tables, and the keys
    are enforced on writes after it."""
    with old_plugin("coupons", "1.6.0") as old_coupons, old_plugin("friend_assist", "0.5.0") as old_assist:
        if old_coupons is None or old_assist is None:
            return
        t = tenant("fk", plugins={"catalog": {}, "orders": {}, "payments": {"secret": "fk-test-secret-0123456789abcdef"},
                                  "coupons": {}, "friend_assist": {}})
        h = host_with_old([t], "upgrade-fk", [old_coupons, old_assist])

        def ok(status_answer, want=(200, 201)):
            status, _, answer = status_answer
            assert status in want, (status, answer)
            return answer

        try:
            tpl = ok(h.admin("POST", "/coupons/templates", t, {
                "name": "10 off", "kind": "fixed", "amount_off_fen": 1000, "valid_days": 7,
                "total_quantity": 100, "per_user_limit": 1}))
            ok(h.post("/v1/fk/coupons/templates/%d/claim" % tpl["id"], {}, headers=user_auth(t, "claimer")))
            camp = ok(h.admin("POST", "/friend_assist/campaigns", t, {
                "name": "Invite 1", "reward": {"kind": "code", "code": "GIFT-1"}, "friends_needed": 1,
                "drive_seconds": 3600, "ends_at": 4102444800}))
            drive = ok(h.post("/v1/fk/friend_assist/campaigns/%d/drives" % camp["id"], {},
                              headers=user_auth(t, "initiator")))
            ok(h.post("/v1/fk/friend_assist/drives/%s/assists" % drive["share_id"], {}, headers=user_auth(t, "friend")))
        finally:
            h.stop()
        path = os.path.join(h.data_dir, "fk.db")
        before = snapshot(path)[0]
        tables = [n for n in before if n.startswith("coupons_") or n.startswith("friend_assist_")]
        for n in ("coupons_templates", "coupons_coupons", "friend_assist_campaigns", "friend_assist_drives",
                  "friend_assist_assists", "friend_assist_rewards"):
            assert before[n][1], "the scenario wrote no row to %s" % n
        h.upgrade()
        try:
            st, _, plugins = h.admin("GET", "/plugins", t)
            assert st == 200, (st, plugins)
            versions = {p["name"]: p["version"] for p in plugins["plugins"]} if isinstance(plugins, dict) else {}
            # today's versions, from 1.7.0 and 0.6.0 (the rebuilds) on
            assert (versions.get("coupons"), versions.get("friend_assist")) == (
                plugin_version("coupons"), plugin_version("friend_assist")), versions
            # the keys hold after it: a second drive and its assist go through, on the rebuilt tables
            drive2 = ok(h.post("/v1/fk/friend_assist/campaigns/%d/drives" % camp["id"], {},
                               headers=user_auth(t, "initiator2")))
            ok(h.post("/v1/fk/friend_assist/drives/%s/assists" % drive2["share_id"], {},
                      headers=user_auth(t, "friend2")))
        finally:
            h.stop()
        after = snapshot(path)[0]
        db = sqlite3.connect(path)
        try:
            assert db.execute("PRAGMA foreign_key_check").fetchall() == []
            assert not db.execute("SELECT name FROM sqlite_schema WHERE sql LIKE '%_v2%'").fetchall()
            refs = {(r[0], r[1]) for name in tables
                    for r in db.execute('SELECT ?, "table" FROM pragma_foreign_key_list(?)', (name, name))}
            assert ("friend_assist_assists", "friend_assist_drives") in refs, refs
            assert ("coupons_coupons", "coupons_templates") in refs and ("coupons_orders", "coupons_coupons") in refs, refs
            # a row whose parent is missing is refused: the keys are on for plugins' writes
            db.execute("PRAGMA foreign_keys=ON")
            try:
                db.execute("INSERT INTO friend_assist_assists (drive_id, campaign_id, friend, day, assisted_at)"
                           " VALUES (999999, 1, 'x', '2026-12-07', 1)")
                raise AssertionError("an orphan assist was written")
            except sqlite3.IntegrityError:
                pass
        finally:
            db.close()
        for n in tables:
            cols, rows = before[n]
            cols1, rows1 = after[n]
            kept = [tuple(r[cols1.index(c)] for c in cols) for r in rows1]
            assert set(rows) <= set(kept), "%s: a row changed or went: %s" % (n, set(rows) - set(kept))


if __name__ == "__main__":
    run(globals())
