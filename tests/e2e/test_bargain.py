"""
test_bargain.py - the bargain plugin (砍价) end to end, with catalog, orders
and payments: friends' cuts in whole fen that add up exactly to original -
floor for many sizes (the tight case of one fen per cut included), who may
help (once per bargain, never the initiator, at most K per activity, new users
only), many helpers at the same instant, rules frozen at start, buying before
and at the floor, the pay window and the bargain's own expiry on the test
clock, the order's cancel and late payment, the replay of every cut from its
recorded seed and draw, the events, and the operator's validation.

Every tenant runs on the manual test clock (POST /admin/{t}/clock/advance):
nothing here sleeps to let time pass. The pure arithmetic of lib/cuts.lua and
lib/rng.lua is also checked exhaustively for small sizes by
plugins/bargain/test/cuts_spec.lua (run here with Debian's lua5.4 interpreter).
"""
import http.client
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostrng import HostRandom  # noqa: E402
from harness import (RECORD_DIR, record_answer, Host, SRC, HERE, manual_tenant, clock, advance, expect_error, mint_token,  # noqa: E402
                     add_sku, wait_until, run)

DAY = 86400
PAY_SECRET = "bargain-payment-secret-0123456789abc"
LIST_PRICE = 9900
WATCH_DIR = os.path.join(SRC, "plugins", "bargain", "test", "plugins")


def shop(tid):
    return manual_tenant(tid, {"catalog": {}, "orders": {"max_unpaid_orders": 50},
                               "payments": {"secret": PAY_SECRET}, "bargain": {},
                               "bargainwatch": {}})


T_SUM = shop("bsum")
T_WHO = shop("bwho")
T_RACE = shop("brace")
T_FROZEN = shop("bfrozen")
T_BUY = shop("bbuy")
T_CLOCK = shop("bclock")
T_VALID = shop("bvalid")
T_REPLAY = shop("breplay")

H = None


def new_host(tenants, name):
    return Host(tenants=tenants, name=name,
                extra={"plugin_dirs": [os.path.join(SRC, "plugins"), os.path.join(HERE, "plugins"),
                                       WATCH_DIR]})


def host():
    global H
    if H is None:
        H = new_host([T_SUM, T_WHO, T_RACE, T_FROZEN, T_BUY, T_CLOCK, T_VALID], "bargain").start()
    return H


# ---- a keep-alive client (hundreds of helps per test, under ASan)

class Api:
    def __init__(self, h, t):
        self.h, self.t = h, t
        self.conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=60)
        self.tokens = {}

    def call(self, method, path, body=None, headers=None):
        data = None if body is None else json.dumps(body).encode()
        hdrs = {"Content-Type": "application/json"} if data is not None else {}
        hdrs.update(headers or {})
        self.conn.request(method, path, body=data, headers=hdrs)
        r = self.conn.getresponse()
        raw = r.read()
        parsed = json.loads(raw)
        if RECORD_DIR:   # for test_response_walk.py, like Host.request
            record_answer(self.h, method, path, r.status, parsed)
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), parsed

    def auth(self, user):
        if user not in self.tokens:
            self.tokens[user] = mint_token(self.t, user, ttl=DAY)
        return {"Authorization": "Bearer " + self.tokens[user]}

    def user(self, method, path, user, body=None):
        return self.call(method, "/v1/%s%s" % (self.t["id"], path), body, self.auth(user))

    def admin(self, method, path, body=None):
        return self.call(method, "/admin/%s%s" % (self.t["id"], path), body,
                         {"X-Api-Key": self.t["api_keys"][0]})

    def close(self):
        self.conn.close()


def ok(result, status=200):
    st, _, body = result
    assert st == status, "want %d, got %d %r" % (status, st, body)
    return body


def now(h, t):
    return clock(h, t)["now"]


def new_activity(api, sku, **fields):
    n = now(api.h, api.t)
    body = {"sku": sku, "original_price_fen": LIST_PRICE, "floor_price_fen": 100,
            "helpers_needed": 3, "duration_seconds": DAY, "pay_window_seconds": 1800,
            "starts_at": n - 60, "ends_at": n + 30 * DAY}
    body.update(fields)
    return ok(api.admin("POST", "/bargain/activities", body), 201)


def start(api, activity_id, user):
    b = ok(api.user("POST", "/bargain/activities/%d/start" % activity_id, user, {}), 201)
    assert b["initiator"] == user and b["state"] == "open", b
    return b


def help_(api, bargain_id, user):
    return api.user("POST", "/bargains/%d/help" % bargain_id, user, {})


def help_ok(api, bargain_id, user):
    return ok(help_(api, bargain_id, user), 201)


def refused(result, code, status=409):
    return expect_error(result, status, code)


def buy(api, bargain_id, user):
    return api.user("POST", "/bargains/%d/buy" % bargain_id, user, {})


def public(api, bargain_id):
    return ok(api.call("GET", "/v1/%s/bargains/%d" % (api.t["id"], bargain_id)))


def admin_bargain(api, bargain_id):
    return ok(api.admin("GET", "/bargains/%d" % bargain_id))


def replay(api, bargain_id):
    return ok(api.admin("GET", "/bargains/%d/replay" % bargain_id))


def order(api, order_id):
    return ok(api.admin("GET", "/orders/%d" % order_id))


def pay(api, order_id):
    return ok(api.admin("POST", "/payments/simulate", {"order_id": order_id}))["result"]["outcome"]


def events(api):
    return ok(api.admin("GET", "/bargainwatch/seen"))["items"]


def xoshiro_first_draw(seed, lo, hi):
    """The first draw in [lo, hi] of the host's generator seeded with seed
    (tests/e2e/hostrng.py, written independently of the plugin's lib/rng.lua)."""
    return HostRandom(seed).ranged(lo, hi)


def check_cuts(api, bargain_id, original, floor, cuts_total):
    """The invariants of a finished bargain, read back from the operator's view
    and the replay: exactly cuts_total cuts, each >= 1 fen and within its
    range, summing to original - floor; each draw is the first draw of its
    seed (checked here in Python, independently of the plugin)."""
    b = admin_bargain(api, bargain_id)
    helps = b["helps"]
    assert len(helps) == cuts_total, (len(helps), cuts_total, b)
    assert [x["seq"] for x in helps] == list(range(1, cuts_total + 1)), helps
    remaining, left = original - floor, cuts_total
    for x in helps:
        assert x["cut_fen"] >= 1, x
        assert x["remaining_before_fen"] == remaining and x["cuts_left_before"] == left, (x, remaining, left)
        if left == 1:
            assert x["cut_fen"] == remaining and x.get("draw") is None, x
        else:
            hi = min(remaining - (left - 1), 2 * remaining // left)
            assert 1 <= x["cut_fen"] <= hi and x["draw"] == x["cut_fen"], (x, hi)
            assert xoshiro_first_draw(x["seed"], 1, hi) == x["draw"], ("the seed does not give the draw", x)
        remaining -= x["cut_fen"]
        left -= 1
    assert remaining == 0 and left == 0
    assert sum(x["cut_fen"] for x in helps) == original - floor
    assert b["price_fen"] == floor and b["cuts_left"] == 0 and b["remaining_fen"] == 0, b
    assert b["state"] == "floor_reached", b
    # the share page: the latest 50 cuts, newest first
    shown = [(x["seq"], x["helper"], x["cut_fen"]) for x in public(api, bargain_id)["helps"]]
    assert shown == [(x["seq"], x["helper"], x["cut_fen"]) for x in reversed(helps)][:50], shown
    r = replay(api, bargain_id)
    assert r["match"] is True and r["state_match"] is True, r
    assert all(c["match"] and c["seed_gives_draw"] for c in r["cuts"]), r
    assert r["cut_total_fen"] == original - floor and r["replayed_price_fen"] == floor, r
    return helps


# ---- 1. the arithmetic: exact sums for many sizes and seeds

def test_the_pure_cut_function_holds_its_properties_for_every_small_case():
    lua = shutil.which("lua5.4")
    assert lua, "the lua5.4 interpreter is missing (tools/bootstrap.sh --test installs it)"
    out = subprocess.run([lua, os.path.join(SRC, "plugins", "bargain", "test", "cuts_spec.lua")],
                         capture_output=True, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith(b"ok "), (out.stdout, out.stderr)


SIZES = [1, 2, 3, 7, 25, 100]


def price_pairs(n):
    """(original, floor) pairs for n helpers: the tight case (one fen per cut),
    nearly tight, and roomy ones."""
    return [(n + 1, 1), (n + 51, 50), (2 * n + 3, 2), (LIST_PRICE, 100), (LIST_PRICE, LIST_PRICE - 3 * n)]


def test_cuts_sum_exactly_to_original_minus_floor_for_every_size_and_nobody_cuts_past_it():
    h, t = host(), T_SUM
    api = Api(h, t)
    add_sku(h, t, "sum-1", stock=1000, price_fen=LIST_PRICE)
    total_bargains = 0
    for n in SIZES:
        runs = 3 if n <= 7 else 1
        for original, floor in price_pairs(n):
            for run_no in range(runs):
                a = new_activity(api, "sum-1", original_price_fen=original, floor_price_fen=floor,
                                 helpers_needed=n)
                b = start(api, a["id"], "init-%d-%d-%d-%d" % (n, original, floor, run_no))
                assert (b["price_fen"], b["cuts_left"], b["cuts_total"]) == (original, n, n), b
                price = original
                for i in range(n):
                    answer = help_ok(api, b["id"], "helper-%d" % i)
                    now_price = answer["bargain"]["price_fen"]
                    assert answer["cut_fen"] >= 1 and now_price == price - answer["cut_fen"], answer
                    assert now_price >= floor, ("below the floor", answer)
                    # every cut still to come can take at least a fen
                    assert now_price - floor >= n - i - 1, answer
                    assert answer["bargain"]["cuts_left"] == n - i - 1, answer
                    price = now_price
                assert price == floor
                last = answer["bargain"]
                assert last["state"] == "floor_reached" and last["can_help"] is False, last
                assert last["can_buy"] is True and last["seconds_left"] == 1800, last
                # helpers beyond the last are refused and change nothing
                for extra in ("late-1", "late-2"):
                    refused(help_(api, b["id"], extra), "floor_reached")
                check_cuts(api, b["id"], original, floor, n)
                total_bargains += 1
    stats = ok(api.admin("GET", "/bargain/activities?limit=500"))["items"]
    assert sum(a["stats"]["helps"] for a in stats) == sum(
        n * len(price_pairs(n)) * (3 if n <= 7 else 1) for n in SIZES)
    print("  %d bargains, every cut replayed from its seed" % total_bargains)
    api.close()


# ---- 2. who may help

def paid_customer(api, user, sku):
    """user buys sku at list price and pays: no longer a new user."""
    o = ok(api.user("POST", "/orders", user, {"lines": [{"sku": sku, "qty": 1}]}), 201)
    assert pay(api, o["id"]) == "paid"
    return o


def test_a_user_helps_a_bargain_once_never_their_own_and_at_most_k_times_per_activity():
    h, t = host(), T_WHO
    api = Api(h, t)
    add_sku(h, t, "who-1", stock=100, price_fen=LIST_PRICE)
    a = new_activity(api, "who-1", helpers_needed=5, helps_per_helper=2)
    ba, bb, bc = (start(api, a["id"], u) for u in ("ann", "bob", "cat"))

    first = help_ok(api, ba["id"], "xavier")
    refused(help_(api, ba["id"], "xavier"), "already_helped")
    refused(help_(api, ba["id"], "ann"), "own_bargain")
    after = public(api, ba["id"])
    assert after["cuts_left"] == 4 and after["price_fen"] == LIST_PRICE - first["cut_fen"], after
    assert [(x["helper"], x["cut_fen"]) for x in after["helps"]] == [("xavier", first["cut_fen"])], after

    help_ok(api, bb["id"], "xavier")                      # the 2nd help of xavier in the activity
    body = refused(help_(api, bc["id"], "xavier"), "help_limit_reached")
    assert body["error"]["details"]["helps_per_helper"] == 2, body
    assert public(api, bc["id"])["cuts_left"] == 5          # nothing changed
    # the limit is per activity: another activity takes xavier's help
    other = new_activity(api, "who-1", helpers_needed=2)
    bd = start(api, other["id"], "ann")
    help_ok(api, bd["id"], "xavier")
    # a refused help does not count: ann (refused on her own bargain) still has both
    help_ok(api, bb["id"], "ann")
    help_ok(api, bc["id"], "ann")
    refused(api.user("POST", "/bargains/99999/help", "xavier", {}), "bargain_not_found", status=404)
    status, _, _ = api.call("POST", "/v1/%s/bargains/%d/help" % (t["id"], ba["id"]), {})
    assert status == 401, status
    api.close()


def test_new_users_only_refuses_a_helper_with_a_paid_order():
    h, t = host(), T_WHO
    api = Api(h, t)
    add_sku(h, t, "who-2", stock=100, price_fen=LIST_PRICE)
    add_sku(h, t, "who-other", stock=100, price_fen=500)
    a = new_activity(api, "who-2", helpers_needed=2, new_users_only=True, helps_per_helper=5)
    b = start(api, a["id"], "dana")
    paid_customer(api, "olga", "who-other")
    refused(help_(api, b["id"], "olga"), "new_users_only")
    assert public(api, b["id"])["cuts_left"] == 2
    # an unpaid order does not make a user old
    ok(api.user("POST", "/orders", "nina", {"lines": [{"sku": "who-other", "qty": 1}]}), 201)
    help_ok(api, b["id"], "nina")
    # without the rule the old customer may help
    open_a = new_activity(api, "who-2", helpers_needed=2)
    help_ok(api, start(api, open_a["id"], "dana2")["id"], "olga")
    api.close()


def test_a_first_cut_is_the_initiators_own_and_one_more_than_the_helpers():
    h, t = host(), T_WHO
    api = Api(h, t)
    add_sku(h, t, "who-3", stock=100, price_fen=LIST_PRICE)
    a = new_activity(api, "who-3", helpers_needed=3, first_cut=True, floor_price_fen=1000)
    b = start(api, a["id"], "eve")
    assert b["cuts_total"] == 4 and b["cuts_left"] == 3 and len(b["helps"]) == 1, b
    assert b["helps"][0]["helper"] == "eve" and b["price_fen"] == LIST_PRICE - b["helps"][0]["cut_fen"], b
    refused(help_(api, b["id"], "eve"), "own_bargain")
    for u in ("f1", "f2", "f3"):
        help_ok(api, b["id"], u)
    refused(help_(api, b["id"], "f4"), "floor_reached")
    check_cuts(api, b["id"], LIST_PRICE, 1000, 4)
    # without a first cut the initiator makes no cut at start
    plain = new_activity(api, "who-3", helpers_needed=3)
    pb = start(api, plain["id"], "eve")
    assert pb["helps"] == [] and pb["price_fen"] == LIST_PRICE and pb["cuts_total"] == 3, pb
    api.close()


def test_a_user_starts_one_bargain_at_a_time_and_at_most_the_activitys_number():
    h, t = host(), T_WHO
    api = Api(h, t)
    add_sku(h, t, "who-4", stock=100, price_fen=LIST_PRICE)
    a = new_activity(api, "who-4", helpers_needed=2, starts_per_user=2, duration_seconds=600)
    b1 = start(api, a["id"], "fay")
    body = refused(api.user("POST", "/bargain/activities/%d/start" % a["id"], "fay", {}),
                   "bargain_in_progress")
    assert body["error"]["details"]["bargain_id"] == b1["id"], body
    advance(h, t, seconds=600)                      # b1 expires
    assert public(api, b1["id"])["state"] == "expired"
    b2 = start(api, a["id"], "fay")
    advance(h, t, seconds=600)
    refused(api.user("POST", "/bargain/activities/%d/start" % a["id"], "fay", {}), "start_limit_reached")
    assert b2["id"] != b1["id"]
    refused(api.user("POST", "/bargain/activities/99999/start", "fay", {}), "activity_not_found", 404)
    api.close()


# ---- 3. many helpers at the same instant

def concurrent_helps(h, t, bargain_id, users):
    """Each user on its own connection and thread, all released by one barrier."""
    tokens = {u: mint_token(t, u, ttl=DAY) for u in users}
    conns = []
    for _ in users:
        c = http.client.HTTPConnection("127.0.0.1", h.port, timeout=120)
        c.connect()
        conns.append(c)
    barrier = threading.Barrier(len(users))
    results, errors = [None] * len(users), []

    def go(i):
        try:
            barrier.wait(60)
            conns[i].request("POST", "/v1/%s/bargains/%d/help" % (t["id"], bargain_id), body=b"{}",
                             headers={"Authorization": "Bearer " + tokens[users[i]],
                                      "Content-Type": "application/json"})
            r = conns[i].getresponse()
            results[i] = (users[i], r.status, json.loads(r.read()))
        except Exception as e:  # reported below
            errors.append(repr(e))

    threading.stack_size(512 * 1024)
    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(users))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    for c in conns:
        c.close()
    assert not errors, errors[:5]
    return results


def test_many_helpers_at_the_same_instant_make_exactly_the_cuts_needed():
    h, t = host(), T_RACE
    api = Api(h, t)
    add_sku(h, t, "race-1", stock=100, price_fen=LIST_PRICE)
    for needed, original, floor, crowd in ((40, LIST_PRICE, 100, 160), (25, 126, 101, 100)):
        a = new_activity(api, "race-1", helpers_needed=needed, original_price_fen=original,
                         floor_price_fen=floor)
        b = start(api, a["id"], "racer-%d" % needed)
        results = concurrent_helps(h, t, b["id"], ["crowd-%d-%d" % (needed, i) for i in range(crowd)])
        won = [r for r in results if r[1] == 201]
        lost = [r for r in results if r[1] != 201]
        assert len(won) == needed, (len(won), [r for r in lost if r[2]["error"]["code"] != "floor_reached"][:3])
        assert all(r[1] == 409 and r[2]["error"]["code"] == "floor_reached" for r in lost), lost[:3]
        assert sum(r[2]["cut_fen"] for r in won) == original - floor
        assert sorted(x["helper"] for x in admin_bargain(api, b["id"])["helps"]) == sorted(r[0] for r in won)
        check_cuts(api, b["id"], original, floor, needed)

    # one helper sending the same help twenty times at once cuts once
    a = new_activity(api, "race-1", helpers_needed=5, helps_per_helper=3)
    b = start(api, a["id"], "racer-dup")
    results = concurrent_helps(h, t, b["id"], ["same-helper"] * 20)
    assert sorted(r[1] for r in results) == [201] + [409] * 19, results
    assert {r[2]["error"]["code"] for r in results if r[1] == 409} == {"already_helped"}
    assert public(api, b["id"])["cuts_left"] == 4
    activity = ok(api.admin("GET", "/bargain/activities/%d" % a["id"]))
    assert activity["stats"]["helps"] == 1, activity
    api.close()


# ---- 4. rules frozen at start

def test_an_operators_patch_after_start_does_not_change_a_bargain_in_progress():
    h, t = host(), T_FROZEN
    api = Api(h, t)
    add_sku(h, t, "frz-1", stock=100, price_fen=LIST_PRICE)
    a = new_activity(api, "frz-1", helpers_needed=3, floor_price_fen=100, buy_before_floor=False,
                     pay_window_seconds=1800, helps_per_helper=1)
    old = start(api, a["id"], "gil")
    help_ok(api, old["id"], "p1")
    patched = ok(api.admin("PATCH", "/bargain/activities/%d" % a["id"], {
        "helpers_needed": 5, "floor_price_fen": 500, "buy_before_floor": True,
        "pay_window_seconds": 600, "new_users_only": True, "helps_per_helper": 9,
        "title": "new title"}))
    assert (patched["helpers_needed"], patched["floor_price_fen"], patched["buy_before_floor"]) == (5, 500, True)

    frozen = admin_bargain(api, old["id"])
    assert frozen["rules"]["helpers_needed"] == 3 and frozen["rules"]["floor_price_fen"] == 100, frozen
    assert frozen["rules"]["buy_before_floor"] is False and frozen["rules"]["pay_window_seconds"] == 1800
    assert frozen["title"] != "new title" and frozen["cuts_total"] == 3, frozen
    # the old rules still decide: no early buy, helps_per_helper 1, floor 100 after 3 cuts
    refused(buy(api, old["id"], "gil"), "floor_not_reached")
    newer = start(api, a["id"], "hal")
    assert (newer["cuts_total"], newer["floor_price_fen"], newer["title"]) == (5, 500, "new title"), newer
    # K: the new bargain allows 9 helps per helper, the old one still 1
    help_ok(api, newer["id"], "p1")
    help_ok(api, newer["id"], "p4")
    refused(help_(api, old["id"], "p4"), "help_limit_reached")
    # new users only: on for the new bargain, still off for the old one
    add_sku(h, t, "frz-other", stock=10, price_fen=300)
    o = ok(api.user("POST", "/orders", "buyer", {"lines": [{"sku": "frz-other", "qty": 1}]}), 201)
    assert pay(api, o["id"]) == "paid"
    refused(help_(api, newer["id"], "buyer"), "new_users_only")
    help_ok(api, old["id"], "buyer")
    last = help_ok(api, old["id"], "p3")["bargain"]
    assert last["state"] == "floor_reached" and last["price_fen"] == 100, last
    assert last["pay_deadline"] == now(h, t) + 1800, last
    check_cuts(api, old["id"], LIST_PRICE, 100, 3)
    # the new bargain runs on the new rules: buy early at the current price
    help_ok(api, newer["id"], "q1")
    early = ok(buy(api, newer["id"], "hal"), 201)
    assert early["total_fen"] == public(api, newer["id"])["price_fen"] > 500, early
    api.close()


# ---- 5. buying

def test_buying_at_the_floor_creates_one_order_at_the_floor_price():
    h, t = host(), T_BUY
    api = Api(h, t)
    add_sku(h, t, "buy-1", stock=100, price_fen=LIST_PRICE)
    a = new_activity(api, "buy-1", helpers_needed=2, floor_price_fen=990, pay_window_seconds=1200)
    b = start(api, a["id"], "ivy")
    body = refused(buy(api, b["id"], "ivy"), "floor_not_reached")
    assert body["error"]["details"] == {"price_fen": LIST_PRICE, "cuts_left": 2}, body
    help_ok(api, b["id"], "j1")
    refused(buy(api, b["id"], "ivy"), "floor_not_reached")
    help_ok(api, b["id"], "j2")
    refused(buy(api, b["id"], "j1"), "not_initiator", status=403)
    n = now(h, t)
    o = ok(buy(api, b["id"], "ivy"), 201)
    assert o["user"] == "ivy" and o["total_fen"] == 990 and o["status"] == "pending_payment", o
    assert o["lines"] == [dict(o["lines"][0], sku="buy-1", qty=1, unit_price_fen=990)], o
    assert o["campaign"]["plugin"] == "bargain" and o["campaign"]["id"] == str(b["id"]), o
    assert o["pay_deadline"] == n + 1200, (o, n)       # what is left of the pay window
    again = ok(buy(api, b["id"], "ivy"), 200)          # a second buy: the same order
    assert again["id"] == o["id"], again
    pb = public(api, b["id"])
    assert pb["state"] == "ordered" and pb["order_id"] == o["id"] and pb["can_buy"] is False, pb
    refused(help_(api, b["id"], "j3"), "bargain_bought")
    assert pay(api, o["id"]) == "paid"
    wait_until(lambda: public(api, b["id"])["state"] == "paid", 20, what="the bargain to be paid")
    body = refused(buy(api, b["id"], "ivy"), "already_bought")
    assert body["error"]["details"]["order_id"] == o["id"], body
    orders = ok(api.admin("GET", "/orders?user=ivy"))["items"]
    assert [x["id"] for x in orders] == [o["id"]], orders
    api.close()


def test_buying_before_the_floor_when_allowed_and_a_cancelled_order_reopens_the_bargain():
    h, t = host(), T_BUY
    api = Api(h, t)
    add_sku(h, t, "buy-2", stock=100, price_fen=LIST_PRICE)
    a = new_activity(api, "buy-2", helpers_needed=3, floor_price_fen=100, buy_before_floor=True,
                     pay_window_seconds=900)
    b = start(api, a["id"], "kim")
    cut = help_ok(api, b["id"], "l1")["cut_fen"]
    n = now(h, t)
    early = ok(buy(api, b["id"], "kim"), 201)
    assert early["total_fen"] == LIST_PRICE - cut and early["pay_deadline"] == n + 900, early
    refused(help_(api, b["id"], "l2"), "bargain_bought")        # the price is fixed by the buy
    # kim cancels: the bargain is open again, friends go on cutting
    ok(api.user("POST", "/orders/%d/cancel" % early["id"], "kim"))
    pb = public(api, b["id"])
    assert pb["state"] == "open" and pb.get("order_id") is None and pb["cuts_left"] == 2, pb
    help_ok(api, b["id"], "l2")
    help_ok(api, b["id"], "l3")
    at_floor = ok(buy(api, b["id"], "kim"), 201)
    assert at_floor["total_fen"] == 100 and at_floor["id"] != early["id"], at_floor
    # the early (cancelled) order is paid late: the bargain has another order, so it is refunded
    assert pay(api, early["id"]) == "refunding"
    wait_until(lambda: order(api, early["id"])["status"] == "refunded", 20, what="the refund")
    assert public(api, b["id"])["order_id"] == at_floor["id"]
    assert pay(api, at_floor["id"]) == "paid"
    wait_until(lambda: public(api, b["id"])["state"] == "paid", 20, what="the bargain to be paid")
    api.close()


def test_a_late_payment_takes_the_bargain_back_while_it_still_waits():
    h, t = host(), T_BUY
    api = Api(h, t)
    add_sku(h, t, "buy-3", stock=100, price_fen=LIST_PRICE)
    a = new_activity(api, "buy-3", helpers_needed=1, floor_price_fen=500, pay_window_seconds=3600)
    b = start(api, a["id"], "lea")
    help_ok(api, b["id"], "m1")
    o = ok(buy(api, b["id"], "lea"), 201)
    ok(api.admin("POST", "/orders/%d/cancel" % o["id"]))
    assert public(api, b["id"])["state"] == "floor_reached"       # the window is still open
    assert pay(api, o["id"]) == "paid_after_cancel"
    wait_until(lambda: public(api, b["id"])["state"] == "paid", 20, what="the bargain to be paid")
    assert public(api, b["id"])["order_id"] == o["id"]
    # a full refund of the paid order ends the bargain
    ok(api.admin("POST", "/orders/%d/refund" % o["id"], {}), 202)
    wait_until(lambda: admin_bargain(api, b["id"])["state"] == "closed", 20, what="the bargain to close")
    assert admin_bargain(api, b["id"])["end_reason"] == "refunded"
    refused(buy(api, b["id"], "lea"), "bargain_closed")
    api.close()


# ---- 6. the clock: pay window and expiry

def test_the_pay_window_closes_a_bargain_at_the_floor_bought_or_not():
    h, t = host(), T_CLOCK
    api = Api(h, t)
    add_sku(h, t, "clk-1", stock=100, price_fen=LIST_PRICE)
    a = new_activity(api, "clk-1", helpers_needed=2, floor_price_fen=100, pay_window_seconds=600)
    # not bought: the pay_deadline job closes it
    b = start(api, a["id"], "max")
    help_ok(api, b["id"], "n1")
    reached = help_ok(api, b["id"], "n2")["bargain"]
    deadline = reached["pay_deadline"]
    advance(h, t, seconds=599)
    pb = public(api, b["id"])
    assert pb["state"] == "floor_reached" and pb["seconds_left"] == 1, pb
    advance(h, t, seconds=1)
    ab = admin_bargain(api, b["id"])
    assert ab["stored_state"] == "closed" and ab["end_reason"] == "pay_window_passed", ab
    assert ab["ended_at"] == deadline and ab["seconds_left"] == 0, ab
    refused(buy(api, b["id"], "max"), "bargain_closed")

    # bought and never paid: the order's timeout is the rest of the window; its cancel closes it
    b2 = start(api, a["id"], "ned")
    help_ok(api, b2["id"], "o1")
    help_ok(api, b2["id"], "o2")
    advance(h, t, seconds=200)
    o = ok(buy(api, b2["id"], "ned"), 201)
    assert o["pay_deadline"] == public(api, b2["id"])["pay_deadline"], o
    advance(h, t, seconds=400)
    assert order(api, o["id"])["status"] == "cancelled"
    ab = admin_bargain(api, b2["id"])
    assert ab["stored_state"] == "closed" and ab["end_reason"] == "order_cancelled", ab
    refused(buy(api, b2["id"], "ned"), "bargain_closed")
    assert pay(api, o["id"]) == "refunding"                 # too late: the money goes back
    api.close()


def test_a_bargain_expires_when_its_time_is_up():
    h, t = host(), T_CLOCK
    api = Api(h, t)
    add_sku(h, t, "clk-2", stock=100, price_fen=LIST_PRICE)
    a = new_activity(api, "clk-2", helpers_needed=3, duration_seconds=3600, buy_before_floor=True,
                     pay_window_seconds=3000)
    b = start(api, a["id"], "ola")
    help_ok(api, b["id"], "p1")
    advance(h, t, seconds=1000)
    pb = public(api, b["id"])
    assert pb["seconds_left"] == 2600 and pb["state"] == "open", pb
    advance(h, t, seconds=2599)
    help_ok(api, b["id"], "p2")
    advance(h, t, seconds=1)
    ab = admin_bargain(api, b["id"])
    assert ab["stored_state"] == "expired" and ab["end_reason"] == "time_up", ab
    assert ab["seconds_left"] == 0 and ab["can_help"] is False and ab["can_buy"] is False, ab
    refused(help_(api, b["id"], "p3"), "bargain_expired")
    refused(buy(api, b["id"], "ola"), "bargain_expired")
    # the operator's later change of duration does not revive it, and a new one can start
    start(api, a["id"], "ola2")

    # an early order cancelled after the bargain's time is up ends it as expired
    b2 = start(api, a["id"], "pia")
    help_ok(api, b2["id"], "q1")
    advance(h, t, seconds=1000)
    o = ok(buy(api, b2["id"], "pia"), 201)   # unpaid timeout: the 3000 s pay window, past expiry
    advance(h, t, seconds=2600)
    assert admin_bargain(api, b2["id"])["stored_state"] == "ordered"   # the expire job left it
    advance(h, t, seconds=400)
    assert order(api, o["id"])["status"] == "cancelled"
    ab = admin_bargain(api, b2["id"])
    assert ab["stored_state"] == "expired" and ab["end_reason"] == "order_cancelled", ab

    mine = lambda: [(e["name"], e["bargain_id"], e.get("reason")) for e in events(api)  # noqa: E731
                    if e["bargain_id"] in (b["id"], b2["id"])]
    wait_until(lambda: len(mine()) >= 4, 20, what="the bargain events")
    seen = mine()
    assert seen == [("bargain.started", b["id"], None), ("bargain.expired", b["id"], "time_up"),
                    ("bargain.started", b2["id"], None),
                    ("bargain.expired", b2["id"], "order_cancelled")], seen
    api.close()


def test_events_announce_start_floor_and_close():
    h, t = host(), T_CLOCK
    api = Api(h, t)
    add_sku(h, t, "clk-3", stock=100, price_fen=LIST_PRICE)
    a = new_activity(api, "clk-3", helpers_needed=1, floor_price_fen=300, pay_window_seconds=60)
    b = start(api, a["id"], "quinn")
    help_ok(api, b["id"], "r1")
    advance(h, t, seconds=60)
    wait_until(lambda: len([e for e in events(api) if e["bargain_id"] == b["id"]]) == 3, 20,
               what="three events")
    seen = [(e["name"], e["state"], e["price_fen"]) for e in events(api) if e["bargain_id"] == b["id"]]
    assert seen == [("bargain.started", "open", LIST_PRICE), ("bargain.floor_reached", "floor_reached", 300),
                    ("bargain.closed", "closed", 300)], seen
    api.close()


# ---- 7. the operator's input

def test_invalid_activities_are_refused_and_change_nothing():
    h, t = host(), T_VALID
    api = Api(h, t)
    add_sku(h, t, "val-1", stock=10, price_fen=LIST_PRICE)
    n = now(h, t)
    good = {"sku": "val-1", "original_price_fen": 1000, "floor_price_fen": 100, "helpers_needed": 5,
            "starts_at": n, "ends_at": n + DAY}
    cases = [
        ({"floor_price_fen": 0}, "floor_price_fen"),
        ({"floor_price_fen": 1000}, "floor_price_fen"),
        ({"helpers_needed": 901}, "helpers_needed"),             # 900 fen for 901 cuts
        ({"helpers_needed": 900, "first_cut": True}, "helpers_needed"),
        ({"helpers_needed": 0}, "helpers_needed"),
        ({"original_price_fen": LIST_PRICE + 1}, "original_price_fen"),
        ({"original_price_fen": 10.5}, "original_price_fen"),
        ({"ends_at": n}, "ends_at"),
        ({"pay_window_seconds": 59}, "pay_window_seconds"),
        ({"duration_seconds": 10}, "duration_seconds"),
        ({"helps_per_helper": 0}, "helps_per_helper"),
        ({"first_cut": "yes"}, "first_cut"),
        ({"status": "paused"}, "status"),
        ({"surprise": 1}, "surprise"),
    ]
    for change, field in cases:
        body = dict(good, **change)
        err = refused(api.admin("POST", "/bargain/activities", body), "invalid_field", status=400)
        assert err["error"]["details"]["field"] == field, (change, err)
    refused(api.admin("POST", "/bargain/activities", dict(good, sku="nope")), "sku_not_found", status=400)
    refused(api.admin("POST", "/bargain/activities", [1, 2]), "invalid_body", status=400)
    assert ok(api.admin("GET", "/bargain/activities"))["items"] == []
    # the tight case is valid: one fen per cut, the first cut included
    tight = ok(api.admin("POST", "/bargain/activities", dict(good, helpers_needed=899, first_cut=True)), 201)
    assert tight["original_price_fen"] - tight["floor_price_fen"] == 900
    # the list price is the default start price
    dflt = ok(api.admin("POST", "/bargain/activities", {k: v for k, v in good.items()
                                                        if k != "original_price_fen"}), 201)
    assert dflt["original_price_fen"] == LIST_PRICE and dflt["title"] == "title val-1", dflt
    path = "/bargain/activities/%d" % tight["id"]
    refused(api.admin("PATCH", path, {"sku": "other"}), "invalid_field", status=400)
    refused(api.admin("PATCH", path, {"helpers_needed": 900}), "invalid_field", status=400)
    refused(api.admin("PATCH", "/bargain/activities/9999", {"title": "x"}), "activity_not_found", status=404)
    assert ok(api.admin("GET", path)) == dict(tight, updated_at=tight["updated_at"])
    # a disabled activity starts nothing
    ok(api.admin("PATCH", path, {"status": "disabled"}))
    refused(api.user("POST", path + "/start", "rex", {}), "activity_not_found", status=404)
    # an activity not yet open
    later = ok(api.admin("POST", "/bargain/activities", dict(good, starts_at=n + 100)), 201)
    body = refused(api.user("POST", "/bargain/activities/%d/start" % later["id"], "rex", {}), "not_started")
    assert body["error"]["details"]["opens_at"] == n + 100
    # malformed route parameters are the host's 400, and every route is documented
    refused(api.user("POST", "/bargains/abc/help", "rex", {}), "invalid_param", status=400)
    doc = ok(api.call("GET", "/v1/%s/openapi.json" % t["id"]))
    doc["paths"].update(ok(api.admin("GET", "/openapi.json"))["paths"])
    for path, method in (("/v1/%s/bargains/{id}/help", "post"), ("/v1/%s/bargains/{id}/buy", "post"),
                         ("/v1/%s/bargains/{id}", "get"), ("/admin/%s/bargains/{id}/replay", "get"),
                         ("/admin/%s/bargain/activities/{id}", "patch")):
        assert doc["paths"][path % t["id"]][method]["summary"], (path, method)
    api.close()


# ---- 8. replay

def test_the_replay_route_reproduces_recorded_cuts_and_catches_a_tampered_one():
    t = T_REPLAY
    with new_host([t], "bargain-replay") as h:
        api = Api(h, t)
        add_sku(h, t, "rep-1", stock=10, price_fen=LIST_PRICE)
        a = new_activity(api, "rep-1", helpers_needed=7, first_cut=True, floor_price_fen=1234)
        b = start(api, a["id"], "sam")
        half = start(api, a["id"], "tom")
        for i in range(7):
            help_ok(api, b["id"], "s%d" % i)
        for i in range(3):
            help_ok(api, half["id"], "t%d" % i)
        r = replay(api, b["id"])
        assert r["match"] is True and len(r["cuts"]) == 8, r
        assert [c["replayed_cut_fen"] for c in r["cuts"]] == [c["cut_fen"] for c in r["cuts"]], r
        rh = replay(api, half["id"])        # a bargain in progress replays too
        assert rh["match"] is True and len(rh["cuts"]) == 4, rh
        check_cuts(api, b["id"], LIST_PRICE, 1234, 8)
        api.close()
        h.stop()
        db = sqlite3.connect(os.path.join(h.data_dir, "%s.db" % t["id"]))
        with db:
            # a cut that is not what its draw gives, and a draw its seed does not give
            db.execute("UPDATE bargain_helps SET cut_fen = cut_fen + 1 WHERE bargain_id = ? AND seq = 3",
                       (b["id"],))
            db.execute("UPDATE bargain_helps SET draw = draw + 1, cut_fen = cut_fen + 1 "
                       "WHERE bargain_id = ? AND seq = 2", (half["id"],))
        db.close()
        h.start()
        api = Api(h, t)
        r = replay(api, b["id"])
        assert r["match"] is False, r
        assert [c["match"] for c in r["cuts"]] == [True, True, False, True, True, True, True, True], r
        rh = replay(api, half["id"])
        assert rh["match"] is False and rh["cuts"][1]["seed_gives_draw"] is False, rh
        api.close()


def teardown():
    if H is not None:
        H.stop()


if __name__ == "__main__":
    run(globals())
