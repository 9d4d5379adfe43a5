"""
test_group_buy.py - the group_buy plugin (拼团) end to end, with catalog,
orders and payments: a group forms when its N-th seat is paid and only then
are its orders released for fulfilment; unpaid orders hold no seat; fifty
users racing for the last seat of a group of 3 never push a group past 3; a
group short at its expiry fails and every paid member is refunded exactly
once, also across a kill -9 in the middle of the refunds; virtual fill
(模拟成团) by threshold; a leader who refunds hands the group to the next
member with the same expiry; the refusals (double join, closed groups,
limits, new users only, window); the 凑团 list.

Every tenant runs on the manual test clock: expiries are reached with
POST /admin/{t}/clock/advance, never by sleeping. Payments are applied with
POST /admin/{t}/payments/simulate; the seat is taken when orders' order.paid
event is delivered, so tests wait for its effect (wait_until), not for time.
A small watcher plugin, written by this test into a temporary plugin dir,
records the group.* events.
"""
import atexit
import http.client
import json
import os
import shutil
import sys
import tempfile
import threading
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (openapi, Host, SRC, HERE, manual_tenant, clock, advance, expect_error,  # noqa: E402
                     mint_token, user_auth, add_sku, sku_stock, wait_until, run, old_plugin, host_with_old, read_db,
                     writes_build_a_btree)

DAY = 86400
HOUR = 3600
PAY_SECRET = "group-buy-payment-secret-0123456789"
PRICE = 9900          # list price of every SKU here, fen
GROUP_PRICE = 5900
LEADER_PRICE = 4900

WATCHER = r'''
-- gbwatch: records the group.* events group_buy emits (test_group_buy.py)
local function record(ev)
  tp.db.exec("INSERT INTO gbwatch_events (name, data) VALUES (?, ?)", ev.name, tp.json.encode(ev.data))
end
local function list()
  return 200, { items = tp.db.query("SELECT id, name, data FROM gbwatch_events ORDER BY id") }
end
return {
  name = "gbwatch", version = "1.0.0",
  migrations = { [[CREATE TABLE gbwatch_events (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
                                               data TEXT NOT NULL)]] },
  subscribe = { ["group.opened"] = record, ["group.formed"] = record, ["group.failed"] = record },
  routes = { { method = "GET", path = "/gbwatch/events", auth = "none", handler = list,
               summary = "group events seen" } },
}
'''

WATCH_DIR = tempfile.mkdtemp(prefix="tidepool-gbwatch-")
os.makedirs(os.path.join(WATCH_DIR, "gbwatch"))
with open(os.path.join(WATCH_DIR, "gbwatch", "plugin.lua"), "w") as f:
    f.write(WATCHER)
atexit.register(shutil.rmtree, WATCH_DIR, True)
PLUGIN_DIRS = {"plugin_dirs": [os.path.join(SRC, "plugins"), os.path.join(HERE, "plugins"), WATCH_DIR]}


def shop(tid, **group_buy_config):
    return manual_tenant(tid, {"catalog": {}, "orders": {"max_unpaid_orders": 5},
                               "payments": {"secret": PAY_SECRET}, "group_buy": group_buy_config,
                               "gbwatch": {}})


T_FORM = shop("form")
T_RACE = shop("race")
T_FAIL = shop("fail")
T_VIRT = shop("virt")
T_LEAD = shop("lead")
T_NO = shop("refuse")
T_LIST = shop("list")
T_LATE = shop("late")
T_VALID = shop("valid")
T_IDEM = shop("idem")

H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[T_FORM, T_RACE, T_FAIL, T_VIRT, T_LEAD, T_NO, T_LIST, T_LATE, T_VALID,
                          T_IDEM],
                 extra=PLUGIN_DIRS, name="group-buy").start()
    return H


# ---- helpers

def now(h, t):
    return clock(h, t)["now"]


def admin_json(h, t, method, path, body=None, want=200):
    status, _, answer = h.admin(method, path, t, body)
    assert status == want, (method, path, status, answer)
    return answer


def activity_fields(h, t, sku, **fields):
    n = now(h, t)
    body = {"sku": sku, "group_size": 3, "price_fen": GROUP_PRICE, "group_ttl_seconds": DAY,
            "unpaid_timeout_seconds": 900, "starts_at": n - 60, "ends_at": n + 30 * DAY,
            "per_user_limit": 1, "per_order_limit": 1}
    body.update(fields)
    return body


def new_activity(h, t, sku, stock=1000, **fields):
    add_sku(h, t, sku, stock, PRICE)
    return admin_json(h, t, "POST", "/group-buys", activity_fields(h, t, sku, **fields), want=201)


def open_group(h, t, aid, user, qty=None, key=None):
    headers = user_auth(t, user, DAY)
    if key:
        headers["Idempotency-Key"] = key
    return h.post("/v1/%s/group-buys/%d/open" % (t["id"], aid), {} if qty is None else {"qty": qty},
                  headers=headers)


def join(h, t, aid, gid, user, qty=None, key=None):
    headers = user_auth(t, user, DAY)
    if key:
        headers["Idempotency-Key"] = key
    return h.post("/v1/%s/group-buys/%d/groups/%d/join" % (t["id"], aid, gid),
                  {} if qty is None else {"qty": qty}, headers=headers)


def created(result):
    status, _, body = result
    assert status == 201, (status, body)
    assert body["order"]["status"] == "pending_payment", body
    return body


def pay(h, t, order_id):
    answer = admin_json(h, t, "POST", "/payments/simulate", {"order_id": order_id})
    return answer["result"]["outcome"]


def group(h, t, aid, gid):
    return admin_json(h, t, "GET", "/group-buys/%d/groups/%d" % (aid, gid))


def groups_of(h, t, aid, state=None):
    items, after = [], None
    while True:
        path = "/group-buys/%d/groups?limit=500" % aid + ("&state=" + state if state else "") \
            + ("&after=%d" % after if after else "")
        body = admin_json(h, t, "GET", path)
        items += body["items"]
        after = body.get("next_after")
        if not after:
            return items


def order(h, t, oid):
    return admin_json(h, t, "GET", "/orders/%d" % oid)


def my_group_order(h, t, user, oid):
    status, _, body = h.get("/v1/%s/group-buys/orders/%d" % (t["id"], oid), headers=user_auth(t, user, DAY))
    assert status == 200, (status, body)
    return body


def seated(h, t, aid, gid):
    return [m for m in group(h, t, aid, gid)["members"] if m["state"] == "seated"]


def wait_paid(h, t, aid, gid, n, state=None):
    def ok():
        g = group(h, t, aid, gid)
        return g["paid"] == n and (state is None or g["state"] == state)
    wait_until(ok, 30, what="group %d to have %d paid seats (%s)" % (gid, n, state))
    return group(h, t, aid, gid)


def wait_member_state(h, t, user, oid, state):
    wait_until(lambda: my_group_order(h, t, user, oid)["state"] == state, 30,
               what="order %d to be %s" % (oid, state))
    return my_group_order(h, t, user, oid)


def events(h, t, name=None):
    status, _, body = h.get("/v1/%s/gbwatch/events" % t["id"])
    assert status == 200, (status, body)
    out = [(e["name"], json.loads(e["data"])) for e in body["items"]]
    return [e for e in out if name is None or e[0] == name]


def advance_ok(h, t, **how):
    """advance(), and every task that fell due succeeded (else: the jobs' last errors)."""
    answer = advance(h, t, **how)
    if answer["tasks_failed"]:
        pending = admin_json(h, t, "GET", "/jobs?state=pending")
        raise AssertionError("%d tasks failed: %s" % (answer["tasks_failed"], json.dumps(pending)[:1500]))
    return answer


def refunds_by_order(h, t):
    body = admin_json(h, t, "GET", "/payments/refunds?limit=500")
    return Counter(r["order_id"] for r in body["items"])


def opened_and_paid(h, t, aid, user):
    """A group opened by user and paid: returns (group id, order)."""
    body = created(open_group(h, t, aid, user))
    gid = body["group"]["id"]
    assert body["group"]["state"] == "pending", body
    assert pay(h, t, body["order"]["id"]) == "paid"
    wait_paid(h, t, aid, gid, 1, "open")
    return gid, body["order"]


def joined_and_paid(h, t, aid, gid, user):
    body = created(join(h, t, aid, gid, user))
    assert pay(h, t, body["order"]["id"]) == "paid"
    return body["order"]


def complete(h, t, oid):
    return h.admin("POST", "/orders/%d/complete" % oid, t)


# ---- 1. a group forms when its last seat is paid; until then its orders are held

def test_a_group_forms_when_its_third_seat_is_paid_and_only_then_are_orders_released():
    h, t = host(), T_FORM
    a = new_activity(h, t, "form-1", stock=50, leader_price_fen=LEADER_PRICE)
    aid = a["id"]
    t0 = now(h, t)
    body = created(open_group(h, t, aid, "leader"))
    lead = body["order"]
    gid = body["group"]["id"]
    assert lead["total_fen"] == LEADER_PRICE and lead["campaign"] == {
        "plugin": "group_buy", "id": str(gid), "stacks_with_coupon": False}, lead
    assert lead["pay_deadline"] == lead["created_at"] + 900, lead
    # nobody joins a group whose leader has not paid
    expect_error(join(h, t, aid, gid, "early"), 409, "group_not_open")

    advance(h, t, seconds=100)
    assert pay(h, t, lead["id"]) == "paid"
    g = wait_paid(h, t, aid, gid, 1, "open")
    assert g["opened_at"] == t0 + 100 and g["expires_at"] == t0 + 100 + DAY, g
    assert g["leader"] == "leader" and g["leader_order_id"] == lead["id"], g
    assert order(h, t, lead["id"])["held"] is True
    expect_error(complete(h, t, lead["id"]), 409, "order_held")

    # an unpaid joiner holds no seat: the group still shows two seats left
    first = created(join(h, t, aid, gid, "amy"))["order"]
    assert first["total_fen"] == GROUP_PRICE, first
    status, _, pub = h.get("/v1/%s/group-buys/%d/groups/%d" % (t["id"], aid, gid))
    assert status == 200 and (pub["paid"], pub["seats_left"]) == (1, 2), pub
    second = joined_and_paid(h, t, aid, gid, "bob")
    wait_paid(h, t, aid, gid, 2, "open")
    assert pay(h, t, first["id"]) == "paid"
    g = wait_paid(h, t, aid, gid, 3, "formed")
    assert g["formed_at"] == t0 + 100 and g["seats_left"] == 0 and g["virtual_seats"] == 0, g
    seats = [(m["user"], m["role"], m["seat_no"]) for m in g["members"]]
    assert seats == [("leader", "leader", 1), ("bob", "member", 2), ("amy", "member", 3)], seats

    for oid in (lead["id"], first["id"], second["id"]):
        assert order(h, t, oid)["held"] is False
    status, _, done = complete(h, t, lead["id"])
    assert status == 200 and done["status"] == "completed", done
    # the expiry job went with the formation: a day later nothing fails
    advance_ok(h, t, seconds=DAY + 10)
    assert group(h, t, aid, gid)["state"] == "formed"
    wait_until(lambda: len(events(h, t, "group.formed")) == 1, 10, what="group.formed")
    (_, opened), = events(h, t, "group.opened")
    assert opened["group"]["id"] == gid and opened["leader_order_id"] == lead["id"], opened
    (_, formed), = events(h, t, "group.formed")
    assert sorted(formed["order_ids"]) == sorted([lead["id"], first["id"], second["id"]]), formed
    assert events(h, t, "group.failed") == []
    assert sku_stock(h, t, "form-1") == 47
    mine = my_group_order(h, t, "amy", first["id"])
    assert mine["state"] == "seated" and mine["group"]["state"] == "formed", mine


# ---- 2. fifty users race for the last seat of a group of 3

RACERS = 50


def test_fifty_users_racing_for_the_last_seat_one_takes_it_the_rest_land_in_other_groups():
    h, t = host(), T_RACE
    aid = new_activity(h, t, "race-1", stock=500)["id"]
    gid, lead = opened_and_paid(h, t, aid, "race-leader")
    second = joined_and_paid(h, t, aid, gid, "race-second")
    wait_paid(h, t, aid, gid, 2, "open")

    users = ["racer-%02d" % i for i in range(RACERS)]
    tokens = {u: mint_token(t, u, DAY) for u in users}
    admin = {"X-Api-Key": t["api_keys"][0], "Content-Type": "application/json"}
    # every racer joins (an unpaid order holds no seat, so all fifty get in), then
    # all pay at once: the seat goes to the payment that lands first
    start, joined_all = threading.Barrier(RACERS), threading.Barrier(RACERS)
    results, errors = {}, []

    def racer(u):
        c = http.client.HTTPConnection("127.0.0.1", h.port, timeout=60)
        try:
            start.wait(60)
            c.request("POST", "/v1/%s/group-buys/%d/groups/%d/join" % (t["id"], aid, gid), body=b"{}",
                      headers={"Authorization": "Bearer " + tokens[u], "Content-Type": "application/json"})
            r = c.getresponse()
            joined = json.loads(r.read())
            assert r.status == 201, (u, r.status, joined)
            oid = joined["order"]["id"]
            joined_all.wait(60)
            c.request("POST", "/admin/%s/payments/simulate" % t["id"],
                      body=json.dumps({"order_id": oid}).encode(), headers=admin)
            r = c.getresponse()
            paid = json.loads(r.read())
            assert r.status == 200 and paid["result"]["outcome"] == "paid", (u, paid)
            results[u] = oid
        except Exception as e:  # reported below
            errors.append("%s: %r" % (u, e))
        finally:
            c.close()

    threads = [threading.Thread(target=racer, args=(u,)) for u in users]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not errors, errors[:5]
    assert len(results) == RACERS

    paid_orders = {lead["id"], second["id"]} | set(results.values())

    def all_seated():
        return sum(g["paid"] for g in groups_of(h, t, aid)) == len(paid_orders)
    wait_until(all_seated, 60, what="every paid order to take a seat")

    everything = groups_of(h, t, aid)
    seats = Counter()
    for g in everything:
        mine = [m for m in g["members"] if m["state"] == "seated"]
        assert len(mine) == g["paid"] <= g["group_size"] == 3, g
        assert len({m["user"] for m in mine}) == len(mine), g
        for m in mine:
            seats[m["order_id"]] += 1
    # every paid order sits in exactly one group
    assert set(seats) == paid_orders and max(seats.values()) == 1, seats
    first = group(h, t, aid, gid)
    assert first["state"] == "formed" and first["paid"] == 3, first
    winners = [m["user"] for m in first["members"] if m["state"] == "seated" and m["user"] in results]
    assert len(winners) == 1, first["members"]
    # the 49 others: sixteen full groups and one with its leader, waiting
    states = Counter((g["state"], g["paid"]) for g in everything if g["id"] != gid)
    assert states == {("formed", 3): 16, ("open", 1): 1}, states
    for g in everything:
        for m in g["members"]:
            assert order(h, t, m["order_id"])["held"] is (g["state"] != "formed"), (g["id"], m)
    assert sku_stock(h, t, "race-1") == 500 - len(paid_orders)


# ---- 3. a short group fails at expiry; every paid member is refunded once

def test_a_group_short_at_expiry_fails_and_every_paid_member_is_refunded_exactly_once():
    h, t = host(), T_FAIL
    aid = new_activity(h, t, "fail-1", stock=50, group_size=5, group_ttl_seconds=2 * HOUR)["id"]
    gid, lead = opened_and_paid(h, t, aid, "f-leader")
    members = [joined_and_paid(h, t, aid, gid, "f-%d" % i) for i in range(3)]
    unpaid = created(join(h, t, aid, gid, "f-unpaid"))["order"]
    wait_paid(h, t, aid, gid, 4, "open")
    paid_ids = [lead["id"]] + [o["id"] for o in members]
    # the unpaid joiner's time to pay is cut to what is left of the group
    assert unpaid["pay_deadline"] - unpaid["created_at"] == 900, unpaid

    advance_ok(h, t, seconds=2 * HOUR)
    g = group(h, t, aid, gid)
    assert g["state"] == "failed" and g["fail_reason"] == "expired", g
    for oid in paid_ids:
        wait_until(lambda: order(h, t, oid)["status"] == "refunded", 30, what="refund of %d" % oid)
        o = order(h, t, oid)
        assert [(r["reason"], r["amount_fen"], r["status"]) for r in o["refunds"]] == [
            ("group_failed", o["paid_fen"], "succeeded")], o
    assert order(h, t, unpaid["id"])["status"] == "cancelled"
    assert refunds_by_order(h, t) == Counter({oid: 1 for oid in paid_ids})
    assert sku_stock(h, t, "fail-1") == 50
    (_, failed), = events(h, t, "group.failed")
    assert sorted(failed["order_ids"]) == sorted(paid_ids) and failed["reason"] == "expired", failed
    states = {m["order_id"]: m["state"] for m in group(h, t, aid, gid)["members"]}
    wait_until(lambda: all(m["state"] in ("refunded", "cancelled")
                           for m in group(h, t, aid, gid)["members"]), 20, what="members refunded")
    # the clock moves on: nothing is refunded twice, and joining the failed group is refused
    advance(h, t, seconds=DAY)
    assert refunds_by_order(h, t) == Counter({oid: 1 for oid in paid_ids}), states
    expect_error(join(h, t, aid, gid, "f-late"), 409, "group_failed")
    # the members' per-user counts came back: they may open a group again
    created(open_group(h, t, aid, "f-leader"))


# ---- 4. virtual fill forms a short group when enough seats are paid

def test_virtual_fill_forms_a_short_group_at_the_threshold_and_not_below_it():
    h, t = host(), T_VIRT
    aid = new_activity(h, t, "virt-1", stock=50, group_size=4, group_ttl_seconds=HOUR,
                       virtual_fill=True, virtual_fill_min_percent=50)["id"]
    at_threshold, lead_a = opened_and_paid(h, t, aid, "v-lead-a")       # 2 of 4 paid: 50%
    joiner = joined_and_paid(h, t, aid, at_threshold, "v-a1")
    below, lead_b = opened_and_paid(h, t, aid, "v-lead-b")              # 1 of 4: 25%
    wait_paid(h, t, aid, at_threshold, 2, "open")
    expect_error(complete(h, t, joiner["id"]), 409, "order_held")

    advance_ok(h, t, seconds=HOUR)
    g = group(h, t, aid, at_threshold)
    assert (g["state"], g["paid"], g["virtual_seats"], g["seats_left"]) == ("formed", 2, 2, 0), g
    for oid in (lead_a["id"], joiner["id"]):
        assert order(h, t, oid)["held"] is False
    status, _, done = complete(h, t, joiner["id"])
    assert status == 200 and done["status"] == "completed", done
    g = group(h, t, aid, below)
    assert g["state"] == "failed" and g["virtual_seats"] == 0, g
    wait_until(lambda: order(h, t, lead_b["id"])["status"] == "refunded", 30, what="lead_b refunded")
    assert refunds_by_order(h, t) == Counter({lead_b["id"]: 1})
    formed = [d for _, d in events(h, t, "group.formed")]
    assert [(d["group"]["id"], d["virtual_seats"]) for d in formed] == [(at_threshold, 2)], formed

    # the operator raises the threshold: the same 2 of 4 now fails
    admin_json(h, t, "PATCH", "/group-buys/%d" % aid, {"virtual_fill_min_percent": 75})
    gid, lead_c = opened_and_paid(h, t, aid, "v-lead-c")
    joined_and_paid(h, t, aid, gid, "v-c1")
    wait_paid(h, t, aid, gid, 2, "open")
    advance(h, t, seconds=HOUR)
    assert group(h, t, aid, gid)["state"] == "failed"


# ---- 5. a leader who refunds hands the group to the next member, same expiry

def test_the_leader_refunding_promotes_the_earliest_paid_member_and_the_expiry_stays():
    h, t = host(), T_LEAD
    aid = new_activity(h, t, "lead-1", stock=50, group_size=4, group_ttl_seconds=DAY)["id"]
    gid, lead = opened_and_paid(h, t, aid, "l-leader")
    before = group(h, t, aid, gid)
    advance(h, t, seconds=HOUR)
    first = joined_and_paid(h, t, aid, gid, "l-first")
    wait_paid(h, t, aid, gid, 2)
    second = joined_and_paid(h, t, aid, gid, "l-second")
    wait_paid(h, t, aid, gid, 3)

    advance(h, t, seconds=HOUR)
    status, _, answer = h.admin("POST", "/orders/%d/refund" % lead["id"], t, {"reason": "changed mind"})
    assert status == 202, (status, answer)
    g = group(h, t, aid, gid)
    assert (g["state"], g["paid"], g["leader"], g["leader_order_id"]) == (
        "open", 2, "l-first", first["id"]), g
    assert g["expires_at"] == before["expires_at"] and g["opened_at"] == before["opened_at"], (before, g)
    roles = {m["user"]: (m["role"], m["state"]) for m in g["members"]}
    assert roles == {"l-leader": ("leader", "left"), "l-first": ("leader", "seated"),
                     "l-second": ("member", "seated")}, roles
    wait_until(lambda: order(h, t, lead["id"])["status"] == "refunded", 30, what="leader refunded")

    # the freed seat is taken again, and the group forms with its new leader
    joined_and_paid(h, t, aid, gid, "l-third")
    joined_and_paid(h, t, aid, gid, "l-fourth")
    g = wait_paid(h, t, aid, gid, 4, "formed")
    assert g["leader"] == "l-first" and g["expires_at"] == before["expires_at"], g
    assert order(h, t, second["id"])["held"] is False
    assert refunds_by_order(h, t) == Counter({lead["id"]: 1})

    # a group whose only member refunds is empty: it fails, nobody else to refund
    gid2, lone = opened_and_paid(h, t, aid, "l-lone")
    assert h.admin("POST", "/orders/%d/refund" % lone["id"], t, {})[0] == 202
    g2 = group(h, t, aid, gid2)
    assert (g2["state"], g2["fail_reason"], g2["paid"]) == ("failed", "emptied", 0), g2
    wait_until(lambda: order(h, t, lone["id"])["status"] == "refunded", 30, what="lone refunded")
    assert refunds_by_order(h, t) == Counter({lead["id"]: 1, lone["id"]: 1})


# ---- 6. refusals, each with its code, each changing nothing

def test_refusals_double_join_closed_groups_limits_new_users_and_window():
    h, t = host(), T_NO
    aid = new_activity(h, t, "no-1", stock=100, group_size=2, group_ttl_seconds=HOUR,
                       per_user_limit=3, per_order_limit=2)["id"]
    gid, lead = opened_and_paid(h, t, aid, "n-leader")
    pending = created(join(h, t, aid, gid, "n-twice"))["order"]
    expect_error(join(h, t, aid, gid, "n-twice"), 409, "already_joined")   # unpaid, still in
    expect_error(join(h, t, aid, gid, "n-leader"), 409, "already_joined")  # the leader herself
    expect_error(join(h, t, aid, gid, "n-big", qty=3), 409, "order_limit_exceeded")
    assert pay(h, t, pending["id"]) == "paid"
    wait_paid(h, t, aid, gid, 2, "formed")
    expect_error(join(h, t, aid, gid, "n-twice"), 409, "group_formed")
    expect_error(join(h, t, aid, gid, "n-other"), 409, "group_formed")
    expect_error(join(h, t, aid, 999999, "n-other"), 404, "group_not_found")
    expect_error(join(h, t, 999999, gid, "n-other"), 404, "activity_not_found")

    # per user: 3 units in the activity, counted at order creation
    created(open_group(h, t, aid, "n-many", qty=2))
    expect_error(open_group(h, t, aid, "n-many", qty=2), 409, "limit_reached")
    created(open_group(h, t, aid, "n-many", qty=1))
    expect_error(open_group(h, t, aid, "n-many"), 409, "limit_reached")

    # a group that ran out of time
    gid2, _ = opened_and_paid(h, t, aid, "n-leader2")
    expect_error(join(h, t, aid, gid2, "n-bad", qty=0), 400, "invalid_field")
    status, _, body = h.post("/v1/%s/group-buys/%d/groups/%d/join" % (t["id"], aid, gid2),
                             {"qty": 1, "coupon": 5}, headers=user_auth(t, "n-bad", DAY))
    assert status == 400 and body["error"]["details"]["field"] == "coupon", body
    advance(h, t, seconds=HOUR)
    expect_error(join(h, t, aid, gid2, "n-late"), 409, "group_failed")

    # new users only: anyone who ever paid an order is refused as a joiner
    nid = new_activity(h, t, "no-2", stock=100, new_users_only=True)["id"]
    gid3, _ = opened_and_paid(h, t, nid, "n-leader")       # leaders need not be new
    expect_error(join(h, t, nid, gid3, "n-twice"), 409, "new_users_only")
    created(join(h, t, nid, gid3, "n-fresh"))

    # the activity window
    n = now(h, t)
    later = new_activity(h, t, "no-3", stock=10, starts_at=n + HOUR, ends_at=n + DAY)["id"]
    expect_error(open_group(h, t, later, "n-early"), 409, "not_started")
    over = new_activity(h, t, "no-4", stock=10, starts_at=n - 60, ends_at=n + HOUR)["id"]
    gid4, _ = opened_and_paid(h, t, over, "n-lead4")
    assert group(h, t, over, gid4)["expires_at"] == n + HOUR   # a group never outlives its activity
    advance(h, t, seconds=HOUR)
    expect_error(open_group(h, t, over, "n-after"), 409, "ended")
    expect_error(join(h, t, over, gid4, "n-after"), 409, "ended")
    # a disabled activity is gone for users
    admin_json(h, t, "PATCH", "/group-buys/%d" % later, {"status": "disabled"})
    expect_error(open_group(h, t, later, "n-early"), 404, "activity_not_found")
    # none of the refusals made an order
    status, _, mine = h.get("/v1/%s/orders" % t["id"], headers=user_auth(t, "n-other", DAY))
    assert status == 200 and mine["items"] == [], mine


# ---- 7. the 凑团 list: nearly full first, with the seconds left

def test_the_open_groups_list_shows_nearly_full_groups_first_with_seconds_left():
    h, t = host(), T_LIST
    aid = new_activity(h, t, "list-1", stock=100, group_size=5, group_ttl_seconds=10 * HOUR)["id"]
    t0 = now(h, t)
    g_one, _ = opened_and_paid(h, t, aid, "s-a")                    # 4 left, expires t0+10h
    advance(h, t, seconds=HOUR)
    g_three, _ = opened_and_paid(h, t, aid, "s-b")                  # 2 left, expires t0+11h
    for u in ("s-b1", "s-b2"):
        joined_and_paid(h, t, aid, g_three, u)
    advance(h, t, seconds=HOUR)
    g_three_late, _ = opened_and_paid(h, t, aid, "s-c")            # 2 left, expires t0+12h (later)
    for u in ("s-c1", "s-c2"):
        joined_and_paid(h, t, aid, g_three_late, u)
    g_pending = created(open_group(h, t, aid, "s-d"))["group"]["id"]  # not paid: not listed
    wait_paid(h, t, aid, g_three, 3)
    wait_paid(h, t, aid, g_three_late, 3)
    advance(h, t, seconds=1800)

    status, _, body = h.get("/v1/%s/group-buys/%d/groups" % (t["id"], aid))
    assert status == 200, body
    listed = [(g["id"], g["paid"], g["seats_left"], g["seconds_left"]) for g in body["items"]]
    elapsed = 2 * HOUR + 1800
    assert listed == [(g_three, 3, 2, 11 * HOUR - elapsed), (g_three_late, 3, 2, 12 * HOUR - elapsed),
                      (g_one, 1, 4, 10 * HOUR - elapsed)], listed
    assert g_pending not in [g["id"] for g in body["items"]]
    assert body["items"][0]["leader"] == "s-b***", body["items"][0]
    status, _, body = h.get("/v1/%s/group-buys/%d/groups?limit=1" % (t["id"], aid))
    assert [g["id"] for g in body["items"]] == [g_three], body
    # past its expiry a group leaves the list
    advance(h, t, seconds=10 * HOUR - elapsed)
    status, _, body = h.get("/v1/%s/group-buys/%d/groups" % (t["id"], aid))
    assert [g["id"] for g in body["items"]] == [g_three, g_three_late], body


# ---- 8. a payment whose group closed meanwhile sits elsewhere, or is refunded

def test_a_payment_after_its_group_closed_lands_in_another_group_or_is_refunded():
    h, t = host(), T_LATE
    n = now(h, t)
    aid = new_activity(h, t, "late-1", stock=100, group_size=3, group_ttl_seconds=HOUR,
                       unpaid_timeout_seconds=3000, ends_at=n + 5 * HOUR)["id"]
    gid, _ = opened_and_paid(h, t, aid, "t-leader")
    other, _ = opened_and_paid(h, t, aid, "t-other")
    advance(h, t, seconds=HOUR - 1000)
    slow = created(join(h, t, aid, gid, "t-slow"))["order"]
    # its time to pay (3000 s) is cut to what the group has left
    assert slow["pay_deadline"] == n + HOUR, slow
    advance(h, t, seconds=1000)           # both groups expire short and fail
    assert group(h, t, aid, gid)["state"] == "failed"
    # the slow joiner's order was cancelled at the deadline; a late payment reclaims it
    assert order(h, t, slow["id"])["status"] == "cancelled"
    fresh, _ = opened_and_paid(h, t, aid, "t-fresh")
    assert pay(h, t, slow["id"]) == "paid_after_cancel"
    mine = wait_member_state(h, t, "t-slow", slow["id"], "seated")
    assert mine["group"]["id"] == fresh and mine["role"] == "member", mine

    # a joiner whose group filled up while she paid, with no other group open: a new group, hers
    lonely = created(join(h, t, aid, fresh, "t-lonely"))["order"]
    joined_and_paid(h, t, aid, fresh, "t-third")
    wait_paid(h, t, aid, fresh, 3, "formed")
    assert pay(h, t, lonely["id"]) == "paid"
    mine = wait_member_state(h, t, "t-lonely", lonely["id"], "seated")
    assert mine["role"] == "leader" and mine["group"]["state"] == "open", mine
    assert mine["group"]["id"] not in (gid, other, fresh), mine

    # a payment that lands after the activity ended finds no group and is refunded
    end = n + 5 * HOUR
    advance(h, t, to=end - 100)
    final, _ = opened_and_paid(h, t, aid, "t-final")
    assert group(h, t, aid, final)["expires_at"] == end     # a group never outlives its activity
    advance(h, t, seconds=70)
    last = created(join(h, t, aid, final, "t-last"))["order"]
    assert last["pay_deadline"] == end + 30, last           # 30 s left, but never under 60 s to pay
    advance_ok(h, t, seconds=40)
    assert group(h, t, aid, final)["state"] == "failed"
    assert pay(h, t, last["id"]) == "paid"
    wait_until(lambda: order(h, t, last["id"])["status"] == "refunded", 30, what="last refunded")
    assert [r["reason"] for r in order(h, t, last["id"])["refunds"]] == ["group_unavailable"]
    assert my_group_order(h, t, "t-last", last["id"])["state"] == "refunded"


# ---- 9. the operator's input

def test_activities_are_validated_and_patched():
    h, t = host(), T_VALID
    add_sku(h, t, "valid-1", 10, PRICE)
    good = activity_fields(h, t, "valid-1")
    for field, value in [("group_size", 1), ("group_size", 101), ("price_fen", 0),
                         ("leader_price_fen", 0), ("group_ttl_seconds", 10),
                         ("unpaid_timeout_seconds", 30), ("per_user_limit", 0),
                         ("virtual_fill_min_percent", 0), ("virtual_fill", "yes"),
                         ("new_users_only", 1), ("status", "paused"), ("ends_at", good["starts_at"]),
                         ("per_order_limit", 5), ("price_fen", PRICE + 1), ("leader_price_fen", PRICE + 1),
                         ("bogus", 1)]:
        body = dict(good, **{field: value})
        status, _, answer = h.admin("POST", "/group-buys", t, body)
        assert status == 400 and answer["error"]["details"]["field"] == field, (field, status, answer)
    expect_error(h.admin("POST", "/group-buys", t, dict(good, sku="nope")), 400, "sku_not_found")
    a = admin_json(h, t, "POST", "/group-buys", dict(good, leader_price_fen=4000), want=201)
    assert (a["title"], a["leader_price_fen"], a["phase"], a["groups"]) == ("title valid-1", 4000, "running", {}), a
    a = admin_json(h, t, "PATCH", "/group-buys/%d" % a["id"], {"leader_price_fen": None, "group_size": 5})
    assert "leader_price_fen" not in a and a["group_size"] == 5, a
    expect_error(h.admin("PATCH", "/group-buys/%d" % a["id"], t, {"sku": "other"}), 400, "invalid_field")
    expect_error(h.admin("PATCH", "/group-buys/%d" % a["id"], t, {"price_fen": None}), 400, "invalid_field")
    expect_error(h.admin("PATCH", "/group-buys/9999", t, {}), 404, "activity_not_found")
    listed = admin_json(h, t, "GET", "/group-buys")["items"]
    assert [x["id"] for x in listed] == [a["id"]], listed
    status, _, pub = h.get("/v1/%s/group-buys" % t["id"])
    assert status == 200 and [x["id"] for x in pub["items"]] == [a["id"]], pub
    # the API description lists the plugin's routes
    spec = openapi(h, t)
    joins = [p for p in spec["paths"] if p.endswith("/group-buys/{id}/groups/{gid}/join")]
    assert len(joins) == 1 and "post" in spec["paths"][joins[0]], sorted(spec["paths"])[:40]

# ---- 10. retries, a leader who never pays, a member who leaves a formed group

def test_retries_replay_an_unpaid_leader_abandons_and_a_formed_group_survives_a_refund():
    h, t = host(), T_IDEM
    aid = new_activity(h, t, "idem-1", stock=20, group_size=2)["id"]
    first = created(open_group(h, t, aid, "i-a", key="open-1"))
    status, _, again = open_group(h, t, aid, "i-a", key="open-1")
    assert status == 200 and (again["order"]["id"], again["group"]["id"]) == (
        first["order"]["id"], first["group"]["id"]), again
    expect_error(join(h, t, aid, first["group"]["id"], "i-a", key="open-1"), 409, "idempotency_key_reused")
    assert len(groups_of(h, t, aid)) == 1

    # the leader never pays: the order times out and the group never opens
    advance(h, t, seconds=900)
    assert order(h, t, first["order"]["id"])["status"] == "cancelled"
    g = group(h, t, aid, first["group"]["id"])
    assert (g["state"], g["paid"]) == ("abandoned", 0), g
    assert sku_stock(h, t, "idem-1") == 20
    created(open_group(h, t, aid, "i-a"))      # her count came back with the cancel

    # a member refunded after the group formed: the group stays formed and says so
    gid, lead = opened_and_paid(h, t, aid, "i-b")
    member = joined_and_paid(h, t, aid, gid, "i-c")
    wait_paid(h, t, aid, gid, 2, "formed")
    assert h.admin("POST", "/orders/%d/refund" % member["id"], t, {})[0] == 202
    g = group(h, t, aid, gid)
    assert (g["state"], g["members_left"]) == ("formed", 1), g
    assert {m["user"]: m["state"] for m in g["members"]} == {"i-b": "seated", "i-c": "left"}, g
    assert order(h, t, lead["id"])["held"] is False


def teardown():
    if H is not None and H.running():
        H.stop()


def test_upgrade_from_1_3_1_keeps_every_group_and_seat_and_checks_states_without_in_lists():
    """group_buy 1.4.0 rebuilds its groups and orders tables so that their state
    CHECKs are ORs (an IN list of 3+ values costs SQLite a temporary b-tree on
    every row written): every row survives, group numbers go on, and no insert
    into either table opens an ephemeral table any more."""
    with old_plugin("group_buy", "1.3.1") as old:
        if old is None:
            return
        t = shop("gbup")
        h = host_with_old([t], "group-buy-upgrade", [old], more_dirs=[WATCH_DIR])
        tables = ("group_buy_groups", "group_buy_orders")

        def rows():
            return {name: read_db(h, "gbup", "SELECT * FROM %s ORDER BY 1" % name) for name in tables}

        try:
            a = new_activity(h, t, "gbup-1")
            gid, _ = opened_and_paid(h, t, a["id"], "lead")
            created(join(h, t, a["id"], gid, "m1"))  # unpaid: a second state
            created(open_group(h, t, a["id"], "lead2"))  # pending
            before = rows()
        finally:
            h.stop()
        assert writes_build_a_btree(h, "gbup", tables) == [True, True], "1.3.1's IN lists were expected to cost"
        h.upgrade()
        try:
            assert rows() == before, (before, rows())
            body = created(open_group(h, t, a["id"], "lead3"))
            assert body["group"]["id"] == max(r[0] for r in before["group_buy_groups"]) + 1, body
            joined_and_paid(h, t, a["id"], gid, "m2")
            wait_paid(h, t, a["id"], gid, 2, "open")
        finally:
            h.stop()
        assert writes_build_a_btree(h, "gbup", tables) == [False, False]

if __name__ == "__main__":
    run(globals())
