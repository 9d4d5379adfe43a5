"""
test_group_buy_load.py - group_buy refunds survive kill -9: two groups of 100
with 80 paid seats each expire at the same instant; the host is killed while
the advance is running their 160 refunds (the runner commits every 256 tasks,
so the kill lands between two commits: some money moved, some not), then
restarted. Every paid member ends with exactly one refund, in orders and at
the payment provider, and every seat's units are back in the catalog.

The moment of the kill is read from the tenant's database file (a read-only
sqlite3 connection polls the payments' refund rows); the test clock moves
only when advanced.
"""
import http.client
import json
import os
import sqlite3
import sys
import threading
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Host, clock, advance, mint_token, read_db, sku_stock, wait_until, run  # noqa: E402
from test_group_buy import (shop, new_activity, created, open_group, pay, group, order,  # noqa: E402
                            wait_paid, refunds_by_order, PLUGIN_DIRS, DAY, HOUR)

T_CRASH = shop("crash")
SIZE, PAID_PER_GROUP, GROUPS = 100, 80, 2
H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[T_CRASH], extra=PLUGIN_DIRS, name="group-buy-crash").start()
    return H


def join_and_pay_all(h, t, aid, gid, users, lanes=8):
    """users join gid and pay, on `lanes` keep-alive connections; returns their order ids."""
    tokens = {u: mint_token(t, u, DAY) for u in users}
    admin = {"X-Api-Key": t["api_keys"][0], "Content-Type": "application/json"}
    out, errors = [], []

    def lane(mine):
        c = http.client.HTTPConnection("127.0.0.1", h.port, timeout=60)
        try:
            for u in mine:
                c.request("POST", "/v1/%s/group-buys/%d/groups/%d/join" % (t["id"], aid, gid), body=b"{}",
                          headers={"Authorization": "Bearer " + tokens[u],
                                   "Content-Type": "application/json"})
                r = c.getresponse()
                body = json.loads(r.read())
                assert r.status == 201, (u, r.status, body)
                oid = body["order"]["id"]
                c.request("POST", "/admin/%s/payments/simulate" % t["id"],
                          body=json.dumps({"order_id": oid}).encode(), headers=admin)
                r = c.getresponse()
                paid = json.loads(r.read())
                assert r.status == 200 and paid["result"]["outcome"] == "paid", (u, paid)
                out.append(oid)
        except Exception as e:  # reported below
            errors.append(repr(e))
        finally:
            c.close()

    threads = [threading.Thread(target=lane, args=(users[i::lanes],)) for i in range(lanes)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not errors, errors[:3]
    assert len(out) == len(users)
    return out


def money_moved(h, t):
    """Refunds the payment provider has paid out, committed in the tenant's file."""
    try:
        return read_db(h, t["id"], "SELECT count(*) FROM payments_refunds", timeout=0.05)[0][0]
    except sqlite3.OperationalError:
        return -1  # busy or mid-checkpoint: ask again


def test_every_member_of_two_failed_groups_is_refunded_once_across_a_kill_in_the_middle():
    h, t = host(), T_CRASH
    aid = new_activity(h, t, "crash-1", stock=1000, group_size=SIZE, group_ttl_seconds=HOUR)["id"]
    paid = []
    for g in range(GROUPS):
        opened = created(open_group(h, t, aid, "leader-%d" % g))
        gid = opened["group"]["id"]
        assert pay(h, t, opened["order"]["id"]) == "paid"
        wait_paid(h, t, aid, gid, 1, "open")
        users = ["m%d-%02d" % (g, i) for i in range(PAID_PER_GROUP - 1)]
        paid += [opened["order"]["id"]] + join_and_pay_all(h, t, aid, gid, users)
        wait_paid(h, t, aid, gid, PAID_PER_GROUP, "open")
    assert len(paid) == GROUPS * PAID_PER_GROUP
    assert sku_stock(h, t, "crash-1") == 1000 - len(paid)
    target = clock(h, t)["now"] + HOUR

    # the advance runs both expiries and the 160 refunds; kill the host in the middle
    done = threading.Event()

    def advance_in_background():
        try:
            c = http.client.HTTPConnection("127.0.0.1", h.port, timeout=120)
            c.request("POST", "/admin/%s/clock/advance" % t["id"], body=json.dumps({"to": target}),
                      headers={"X-Api-Key": t["api_keys"][0], "Content-Type": "application/json"})
            c.getresponse().read()
        except Exception:
            pass  # killed under it
        finally:
            done.set()

    runner = threading.Thread(target=advance_in_background)
    runner.start()
    moved = 0
    while not done.is_set():
        moved = money_moved(h, t)
        if 0 < moved < len(paid):
            break
    h.kill9()
    runner.join(30)
    print("  killed with %d of %d refunds paid out" % (moved, len(paid)))
    assert 0 < moved < len(paid), "the kill did not land in the middle of the refunds (%d)" % moved

    h.restart()
    now = clock(h, t)["now"]
    advance(h, t, to=max(now + 1, target + 1))   # whatever the kill left due runs now
    wait_until(lambda: all(order(h, t, oid)["status"] == "refunded" for oid in paid), 60,
               what="every paid member refunded")
    assert refunds_by_order(h, t) == Counter({oid: 1 for oid in paid})
    for oid in paid:
        o = order(h, t, oid)
        assert [(r["reason"], r["status"]) for r in o["refunds"]] == [("group_failed", "succeeded")], o
    for g in (1, 2):
        assert group(h, t, aid, g)["state"] == "failed"
    assert sku_stock(h, t, "crash-1") == 1000
    # and nothing more happens later
    advance(h, t, seconds=DAY)
    assert refunds_by_order(h, t) == Counter({oid: 1 for oid in paid})


def teardown():
    if H is not None and H.running():
        H.stop()


if __name__ == "__main__":
    run(globals())
