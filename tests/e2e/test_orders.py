"""
test_orders.py - the orders plugin through HTTP, with the catalog and payments
plugins beside it: an order is created at list price with sums that add up and
its units reserved, every bad request is refused with nothing taken, an
Idempotency-Key makes a retried checkout return the same order (also under 20
concurrent requests), the unpaid cap holds, a cancel (by the user or by the
unpaid timeout on the test clock) gives the units back, a user sees and
touches only their own orders, and the states paid -> completed and the
refund rules (full, partial, too much, not refundable, the refund job once
per refund number) hold.

Every tenant runs on a manual clock: jobs and refunds run when the test
advances it (a refund is due at once, so an advance of 1 s runs it). Payments
arrive as notifies signed in Python (paysign.py), exactly as WeChat Pay would
send them.
"""
import itertools
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, SRC, Host, manual_tenant, tasks, clock, advance, admin_ok,  # noqa: E402
                     add_sku, sku_stock, user_auth, expect_error, run, old_plugin, host_with_old,
                     awaits_unpaid_timeout, unpaid_sweep_due)
import paysign  # noqa: E402

SECRET = "orders-test-payment-secret-0123456789"
ORDERS_CONFIG = {"unpaid_timeout_seconds": 600, "max_unpaid_orders": 2}
TIMEOUT = ORDERS_CONFIG["unpaid_timeout_seconds"]
MAX_ORDER_FEN = 1000000000


def shop(tid):
    return manual_tenant(tid, {"catalog": {}, "orders": dict(ORDERS_CONFIG),
                               "payments": {"secret": SECRET}})


T = shop("shop")          # most tests: each with its own users and SKUs
T_TIME = shop("clock")    # tests that move the clock far (unpaid timeout)
T_REFUND = shop("refund")  # refunds: the clock moves to run their jobs
T_HOLD = manual_tenant("hold", {"catalog": {}, "orders": dict(ORDERS_CONFIG),
                                "payments": {"secret": SECRET}, "holdprobe": {}})

H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[T, T_TIME, T_REFUND, T_HOLD], name="orders").start()
    return H


# ---- helpers

_codes = itertools.count(1)


def new_sku(h, t, price_fen=1280, stock=10):
    """A fresh product with one SKU; returns its code."""
    code = "sku-%d" % next(_codes)
    add_sku(h, t, code, stock, price_fen)
    return code


def auth(h, t, user):
    return user_auth(t, user)


def create(h, t, user, lines, key=None, extra=None):
    headers = auth(h, t, user)
    if key is not None:
        headers["Idempotency-Key"] = key
    body = {"lines": lines}
    body.update(extra or {})
    return h.post("/v1/%s/orders" % t["id"], body, headers=headers)


def create_ok(h, t, user, lines, key=None):
    status, _, body = create(h, t, user, lines, key)
    assert status == 201, (status, body)
    assert body["status"] == "pending_payment" and body["user"] == user, body
    return body


def get_order(h, t, user, oid):
    return h.get("/v1/%s/orders/%d" % (t["id"], oid), headers=auth(h, t, user))


def order_of(h, t, user, oid):
    status, _, body = get_order(h, t, user, oid)
    assert status == 200, (status, body)
    return body


def admin_order(h, t, oid):
    return admin_ok(h, "GET", "/orders/%d" % oid, t)


def my_orders(h, t, user, query=""):
    status, _, body = h.get("/v1/%s/orders%s" % (t["id"], query), headers=auth(h, t, user))
    assert status == 200, (status, body)
    return body


def user_post(h, t, user, path, body=None):
    return h.post("/v1/%s%s" % (t["id"], path), body, headers=auth(h, t, user))


def pay(h, t, o, transaction_id=None):
    """Delivers a correctly signed notify for o's total; returns the answer body."""
    now = clock(h, t)["now"]
    headers, body = paysign.signed_notify(SECRET, now, o["id"], o["total_fen"],
                                          transaction_id or "4200%010d" % o["id"])
    status, _, answer = h.post("/v1/%s/payments/notify" % t["id"], body, headers=headers)
    assert status == 200 and answer["code"] == "SUCCESS", (status, answer)
    return answer


def paid_order(h, t, user, lines):
    o = create_ok(h, t, user, lines)
    assert pay(h, t, o)["outcome"] == "paid"
    o = order_of(h, t, user, o["id"])
    assert o["status"] == "paid" and o["paid_fen"] == o["total_fen"], o
    return o


def refund(h, t, oid, amount_fen=None, reason=None):
    body = {}
    if amount_fen is not None:
        body["amount_fen"] = amount_fen
    if reason is not None:
        body["reason"] = reason
    return h.admin("POST", "/orders/%d/refund" % oid, t, body)


def provider_refunds(h, t):
    return admin_ok(h, "GET", "/payments/refunds", t)["items"]


def pending_jobs(h, t):
    return tasks(h, t, "jobs")


def refund_jobs(h, t):
    """Refund jobs still waiting or dead-lettered (a refund job that keeps failing shows here)."""
    return [j for state in ("pending", "dead") for j in tasks(h, t, "jobs", state)["jobs"]
            if j["name"] == "refund"]


def bad_field(result, field_prefix):
    body = expect_error(result, 400, "invalid_field")
    field = body["error"].get("details", {}).get("field", "")
    assert field.startswith(field_prefix), (field_prefix, body)
    return body


# ---- creating an order

def test_create_prices_at_list_price_and_sums_add_up():
    h, t = host(), T
    a = new_sku(h, t, price_fen=1280, stock=10)
    b = new_sku(h, t, price_fen=333, stock=5)
    o = create_ok(h, t, "c-alice", [{"sku": a, "qty": 2}, {"sku": b, "qty": 3}])
    lines = {l["sku"]: l for l in o["lines"]}
    assert set(lines) == {a, b}, o
    assert lines[a]["qty"] == 2 and lines[a]["unit_price_fen"] == 1280, lines[a]
    assert lines[a]["list_price_fen"] == 1280 and lines[a]["amount_fen"] == 2560, lines[a]
    assert lines[b]["qty"] == 3 and lines[b]["unit_price_fen"] == 333, lines[b]
    assert lines[b]["amount_fen"] == 999, lines[b]
    assert o["items_fen"] == sum(l["amount_fen"] for l in o["lines"]) == 3559, o
    assert o["discount_fen"] == 0 and o["total_fen"] == o["items_fen"] - o["discount_fen"], o
    assert sum(l["paid_fen"] for l in o["lines"]) == o["total_fen"], o
    assert o["paid_fen"] == 0 and o["refunded_fen"] == 0 and o["stock_held"] is True, o
    assert o["pay_deadline"] == o["created_at"] + TIMEOUT, o
    # what the user reads back is what was answered
    again = order_of(h, t, "c-alice", o["id"])
    for k in ("id", "status", "items_fen", "discount_fen", "total_fen", "lines", "pay_deadline"):
        assert again[k] == o[k], (k, again[k], o[k])


def test_create_reserves_stock_in_the_catalog():
    h, t = host(), T
    a = new_sku(h, t, stock=10)
    b = new_sku(h, t, stock=4)
    create_ok(h, t, "r-alice", [{"sku": a, "qty": 3}, {"sku": b, "qty": 4}])
    assert sku_stock(h, t, a) == 7 and sku_stock(h, t, b) == 0
    # the last units are gone: the next order for them is refused, nothing else moves
    expect_error(create(h, t, "r-bob", [{"sku": a, "qty": 1}, {"sku": b, "qty": 1}]),
                 409, "insufficient_stock")
    assert sku_stock(h, t, a) == 7 and sku_stock(h, t, b) == 0


def test_create_refuses_an_order_without_lines_or_with_too_many():
    h, t = host(), T
    a = new_sku(h, t)
    bad_field(create(h, t, "v-alice", []), "lines")
    status, _, body = h.post("/v1/%s/orders" % t["id"], {}, headers=auth(h, t, "v-alice"))
    assert status == 400, (status, body)
    # 21 lines (the default max_lines is 20): refused before any SKU is looked at
    many = [{"sku": "nope-%d" % i, "qty": 1} for i in range(20)] + [{"sku": a, "qty": 1}]
    bad_field(create(h, t, "v-alice", many), "lines")
    assert sku_stock(h, t, a) == 10
    assert my_orders(h, t, "v-alice")["items"] == []


def test_create_refuses_a_quantity_of_zero_or_above_the_maximum():
    h, t = host(), T
    a = new_sku(h, t, stock=500)
    bad_field(create(h, t, "q-alice", [{"sku": a, "qty": 0}]), "lines[1].qty")
    bad_field(create(h, t, "q-alice", [{"sku": a, "qty": -1}]), "lines[1].qty")
    bad_field(create(h, t, "q-alice", [{"sku": a, "qty": 100}]), "lines[1].qty")  # default max 99
    bad_field(create(h, t, "q-alice", [{"sku": a, "qty": 1.5}]), "lines[1].qty")
    assert sku_stock(h, t, a) == 500
    o = create_ok(h, t, "q-alice", [{"sku": a, "qty": 99}])     # the maximum itself is fine
    assert o["lines"][0]["qty"] == 99 and sku_stock(h, t, a) == 401


def test_create_refuses_a_quantity_that_is_not_an_integer_and_a_sku_off_sale():
    h, t = host(), T
    a = new_sku(h, t, stock=10)
    bad_field(create(h, t, "q2-alice", [{"sku": a, "qty": "2"}]), "lines[1].qty")
    bad_field(create(h, t, "q2-alice", [{"sku": a}]), "lines[1].qty")
    bad_field(create(h, t, "q2-alice", [{"qty": 1}]), "lines[1].sku")
    bad_field(create(h, t, "q2-alice", ["%s" % a]), "lines[1]")
    status, _, sku = h.get("/v1/%s/catalog/skus/%s" % (t["id"], a))
    status, _, _ = h.admin("PATCH", "/catalog/products/%d" % sku["product_id"], t, {"status": "off_sale"})
    assert status == 200
    expect_error(create(h, t, "q2-alice", [{"sku": a, "qty": 1}]), 409, "not_on_sale")
    h.admin("PATCH", "/catalog/products/%d" % sku["product_id"], t, {"status": "on_sale"})
    assert sku_stock(h, t, a) == 10
    assert my_orders(h, t, "q2-alice")["items"] == []


def test_create_refuses_the_same_sku_twice():
    h, t = host(), T
    a = new_sku(h, t)
    b = new_sku(h, t)
    bad_field(create(h, t, "d-alice", [{"sku": a, "qty": 1}, {"sku": b, "qty": 1},
                                       {"sku": a, "qty": 2}]), "lines[3].sku")
    assert sku_stock(h, t, a) == 10 and sku_stock(h, t, b) == 10


def test_create_with_an_unknown_sku_is_404_and_takes_nothing():
    h, t = host(), T
    a = new_sku(h, t)
    body = expect_error(create(h, t, "u-alice", [{"sku": a, "qty": 2}, {"sku": "no-such-sku", "qty": 1}]),
                        404, "sku_not_found")
    assert "no-such-sku" in body["error"]["message"], body
    assert sku_stock(h, t, a) == 10, "the first line's units were not given back"
    assert my_orders(h, t, "u-alice")["items"] == []


def test_create_with_insufficient_stock_is_409_and_stock_unchanged():
    h, t = host(), T
    a = new_sku(h, t, stock=10)
    b = new_sku(h, t, stock=2)
    expect_error(create(h, t, "s-alice", [{"sku": a, "qty": 5}, {"sku": b, "qty": 3}]),
                 409, "insufficient_stock")
    assert sku_stock(h, t, a) == 10 and sku_stock(h, t, b) == 2
    expect_error(create(h, t, "s-alice", [{"sku": b, "qty": 3}]), 409, "insufficient_stock")
    assert sku_stock(h, t, b) == 2
    assert my_orders(h, t, "s-alice")["items"] == []


def test_a_coupon_on_a_brand_without_the_coupons_plugin_is_409_and_takes_nothing():
    h, t = host(), T
    a = new_sku(h, t, stock=4)
    expect_error(create(h, t, "nc-alice", [{"sku": a, "qty": 2}], extra={"coupon_id": 1}),
                 409, "coupons_unavailable")
    assert sku_stock(h, t, a) == 4
    assert my_orders(h, t, "nc-alice")["items"] == []


def test_a_user_cannot_set_the_unit_price():
    h, t = host(), T
    a = new_sku(h, t, price_fen=1280)
    bad_field(create(h, t, "p-alice", [{"sku": a, "qty": 1, "unit_price_fen": 1}]),
              "lines[1].unit_price_fen")
    assert sku_stock(h, t, a) == 10
    # nor declare a campaign of their own
    status, _, body = create(h, t, "p-alice", [{"sku": a, "qty": 1}],
                             extra={"campaign": {"id": "x"}})
    assert status == 201 and "campaign" not in body and body["total_fen"] == 1280, (status, body)


def test_an_order_above_10_to_the_9_fen_is_refused_and_stock_unchanged():
    h, t = host(), T
    a = new_sku(h, t, price_fen=600000000, stock=5)
    body = expect_error(create(h, t, "big-alice", [{"sku": a, "qty": 2}]), 400, "order_too_large")
    assert str(MAX_ORDER_FEN) in body["error"]["message"], body
    assert sku_stock(h, t, a) == 5
    b = new_sku(h, t, price_fen=MAX_ORDER_FEN, stock=1)   # exactly the cap is allowed
    o = create_ok(h, t, "big-alice", [{"sku": b, "qty": 1}])
    assert o["total_fen"] == MAX_ORDER_FEN, o


# ---- Idempotency-Key

def test_the_same_idempotency_key_twice_gives_one_order():
    h, t = host(), T
    a = new_sku(h, t, stock=10)
    lines = [{"sku": a, "qty": 2}]
    first = create_ok(h, t, "k-alice", lines, key="checkout-1")
    assert not first.get("replayed"), first
    status, _, second = create(h, t, "k-alice", lines, key="checkout-1")
    assert status == 200, (status, second)
    assert second["replayed"] is True and second["id"] == first["id"], second
    assert second["total_fen"] == first["total_fen"] and second["lines"] == first["lines"], second
    assert sku_stock(h, t, a) == 8, "stock was taken twice"
    assert [o["id"] for o in my_orders(h, t, "k-alice")["items"]] == [first["id"]]


def test_the_same_idempotency_key_with_another_body_is_409():
    h, t = host(), T
    a = new_sku(h, t, stock=10)
    first = create_ok(h, t, "k2-alice", [{"sku": a, "qty": 2}], key="checkout-x")
    body = expect_error(create(h, t, "k2-alice", [{"sku": a, "qty": 3}], key="checkout-x"),
                        409, "idempotency_key_reused")
    assert "details" not in body["error"], body   # the host's 409 names no first answer
    assert my_orders(h, t, "k2-alice")["items"][0]["id"] == first["id"]
    assert sku_stock(h, t, a) == 8
    assert len(my_orders(h, t, "k2-alice")["items"]) == 1


def test_different_users_may_use_the_same_idempotency_key():
    h, t = host(), T
    a = new_sku(h, t, stock=10)
    oa = create_ok(h, t, "k3-alice", [{"sku": a, "qty": 1}], key="same-key")
    ob = create_ok(h, t, "k3-bob", [{"sku": a, "qty": 2}], key="same-key")
    assert oa["id"] != ob["id"] and ob["user"] == "k3-bob", (oa, ob)
    assert sku_stock(h, t, a) == 7


def test_a_refused_request_does_not_use_up_its_idempotency_key_and_bad_keys_are_400():
    h, t = host(), T
    a = new_sku(h, t, stock=1)
    lines = [{"sku": a, "qty": 2}]
    expect_error(create(h, t, "k5-alice", lines, key="retry-me"), 409, "insufficient_stock")
    status, _, _ = h.admin("POST", "/catalog/skus/%s/stock" % a, t, {"delta": 1})
    assert status == 200
    o = create_ok(h, t, "k5-alice", lines, key="retry-me")       # the key was still free
    assert sku_stock(h, t, a) == 0
    for bad in ("x" * 129, "has space", "\u00e9t\u00e9"):
        body = expect_error(create(h, t, "k5-alice", [{"sku": a, "qty": 1}], key=bad),
                            400, "invalid_idempotency_key")
        assert body["error"]["code"] == "invalid_idempotency_key"
    create_ok(h, t, "k5-bob", [{"sku": new_sku(h, t), "qty": 1}], key="k" * 128)  # 128 is fine
    assert [x["id"] for x in my_orders(h, t, "k5-alice")["items"]] == [o["id"]]


def test_twenty_concurrent_requests_with_one_key_create_exactly_one_order():
    h, t = host(), T
    a = new_sku(h, t, stock=100)
    lines = [{"sku": a, "qty": 3}]
    headers = auth(h, t, "k4-alice")
    headers["Idempotency-Key"] = "tap-tap-tap"
    n = 20
    barrier = threading.Barrier(n)
    results = [None] * n

    def worker(i):
        barrier.wait()
        try:
            results[i] = h.post("/v1/%s/orders" % t["id"], {"lines": lines}, headers=headers)
        except Exception as e:  # reported below
            results[i] = e

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    statuses = sorted(r[0] if isinstance(r, tuple) else repr(r) for r in results)
    assert statuses == [200] * (n - 1) + [201], statuses
    ids = {r[2]["id"] for r in results}
    assert len(ids) == 1, ids
    assert sum(1 for r in results if r[2].get("replayed")) == n - 1
    assert sku_stock(h, t, a) == 97
    assert [o["id"] for o in my_orders(h, t, "k4-alice")["items"]] == list(ids)


def test_thirty_users_racing_for_five_units_get_exactly_five_orders():
    h, t = host(), T
    a = new_sku(h, t, stock=5)
    n = 30
    users = ["race-%02d" % i for i in range(n)]
    heads = [auth(h, t, u) for u in users]
    barrier = threading.Barrier(n)
    results = [None] * n

    def worker(i):
        barrier.wait()
        try:
            results[i] = h.post("/v1/%s/orders" % t["id"], {"lines": [{"sku": a, "qty": 1}]},
                                headers=heads[i])
        except Exception as e:
            results[i] = e

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    statuses = sorted(r[0] if isinstance(r, tuple) else repr(r) for r in results)
    assert statuses == [201] * 5 + [409] * (n - 5), statuses
    assert all(r[2]["error"]["code"] == "insufficient_stock" for r in results if r[0] == 409)
    assert sku_stock(h, t, a) == 0


# ---- the unpaid cap

def test_max_unpaid_orders_caps_a_user_and_a_cancel_frees_a_slot():
    h, t = host(), T
    a = new_sku(h, t, stock=10)
    o1 = create_ok(h, t, "cap-alice", [{"sku": a, "qty": 1}])
    o2 = create_ok(h, t, "cap-alice", [{"sku": a, "qty": 1}], key="cap-k2")
    body = expect_error(create(h, t, "cap-alice", [{"sku": a, "qty": 1}]), 409, "too_many_unpaid_orders")
    assert body["error"]["details"]["unpaid"] == 2, body
    # a retried checkout of an order the user already has is answered, not capped
    status, _, replay = create(h, t, "cap-alice", [{"sku": a, "qty": 1}], key="cap-k2")
    assert status == 200 and replay["id"] == o2["id"] and replay["replayed"] is True, (status, replay)
    assert sku_stock(h, t, a) == 8
    create_ok(h, t, "cap-bob", [{"sku": a, "qty": 1}])          # a cap per user
    status, _, c = user_post(h, t, "cap-alice", "/orders/%d/cancel" % o1["id"])
    assert status == 200 and c["status"] == "cancelled", (status, c)
    create_ok(h, t, "cap-alice", [{"sku": a, "qty": 1}])
    expect_error(create(h, t, "cap-alice", [{"sku": a, "qty": 1}]), 409, "too_many_unpaid_orders")
    assert sku_stock(h, t, a) == 7


# ---- cancel and the unpaid timeout

def test_a_user_cancel_returns_stock_and_a_second_cancel_is_409():
    h, t = host(), T
    a = new_sku(h, t, stock=10)
    b = new_sku(h, t, stock=10)
    o = create_ok(h, t, "x-alice", [{"sku": a, "qty": 4}, {"sku": b, "qty": 1}])
    assert sku_stock(h, t, a) == 6 and sku_stock(h, t, b) == 9
    status, _, c = user_post(h, t, "x-alice", "/orders/%d/cancel" % o["id"])
    assert status == 200, (status, c)
    assert c["status"] == "cancelled" and c["cancel_reason"] == "user", c
    assert c["stock_held"] is False and c["cancelled_at"] is not None, c
    assert sku_stock(h, t, a) == 10 and sku_stock(h, t, b) == 10
    body = expect_error(user_post(h, t, "x-alice", "/orders/%d/cancel" % o["id"]), 409, "not_cancellable")
    assert body["error"]["details"]["status"] == "cancelled", body
    assert sku_stock(h, t, a) == 10 and sku_stock(h, t, b) == 10, "the units went back twice"
    # the unpaid timeout no longer waits on it
    assert not awaits_unpaid_timeout(h, t, o["id"])


def test_an_unpaid_order_is_cancelled_by_the_timeout_and_its_stock_returns():
    h, t = host(), T_TIME
    a = new_sku(h, t, stock=5)
    o = create_ok(h, t, "tmo-alice", [{"sku": a, "qty": 2}])
    assert sku_stock(h, t, a) == 3
    assert awaits_unpaid_timeout(h, t, o["id"]) and unpaid_sweep_due(h, t) <= o["pay_deadline"]
    advance(h, t, seconds=TIMEOUT - 1)
    o1 = order_of(h, t, "tmo-alice", o["id"])
    assert o1["status"] == "pending_payment" and sku_stock(h, t, a) == 3, o1
    a2 = advance(h, t, seconds=2)
    assert a2["tasks_run"] >= 1 and a2["tasks_failed"] == 0, a2
    o2 = order_of(h, t, "tmo-alice", o["id"])
    assert o2["status"] == "cancelled" and o2["cancel_reason"] == "timeout", o2
    assert o2["stock_held"] is False, o2
    assert sku_stock(h, t, a) == 5
    # order.cancelled has no subscriber here: nothing waits, nothing is dead
    for kind in ("jobs", "events"):
        for state in ("pending", "dead"):
            listing = tasks(h, t, kind, state)
            assert listing["pending"] == 0 and listing["dead"] == 0 and listing[kind] == [], listing
    # nothing more happens however far the clock goes
    advance(h, t, seconds=86400)
    assert order_of(h, t, "tmo-alice", o["id"])["status"] == "cancelled"
    assert sku_stock(h, t, a) == 5


def test_an_unpaid_sweep_whose_job_was_lost_is_scheduled_again_by_the_next_checkout():
    """orders 1.10.0 keeps one sweep job due at the earliest deadline (lib/unpaid.lua).
    With that job gone (a restore, an operator's mistake), the next checkout finds the
    sweep overdue by more than a minute and schedules it at once."""
    t = shop("heal")
    h = Host(tenants=[t], name="orders-sweep-heal").start()
    try:
        a = new_sku(h, t, stock=10)
        o1 = create_ok(h, t, "heal-a", [{"sku": a, "qty": 1}])
        assert unpaid_sweep_due(h, t) == o1["pay_deadline"]
    finally:
        h.stop()
    db = sqlite3.connect(os.path.join(h.data_dir, "heal.db"))
    assert db.execute("DELETE FROM _tp_jobs WHERE name = 'sweep_unpaid'").rowcount == 1
    db.commit()
    db.close()
    h.start()
    try:
        assert unpaid_sweep_due(h, t) is None
        advance(h, t, seconds=TIMEOUT + 61)
        assert order_of(h, t, "heal-a", o1["id"])["status"] == "pending_payment", "nothing swept it"
        o2 = create_ok(h, t, "heal-b", [{"sku": a, "qty": 1}])
        now = clock(h, t)["now"]  # the checkout scheduled the sweep now: it runs at once
        assert advance(h, t, seconds=0)["tasks_failed"] == 0
        c1 = order_of(h, t, "heal-a", o1["id"])
        assert (c1["status"], c1["cancel_reason"], c1["cancelled_at"]) == ("cancelled", "timeout", now), c1
        assert order_of(h, t, "heal-b", o2["id"])["status"] == "pending_payment"
        assert unpaid_sweep_due(h, t) == o2["pay_deadline"]
        advance(h, t, seconds=TIMEOUT)
        c2 = order_of(h, t, "heal-b", o2["id"])
        assert (c2["status"], c2["cancelled_at"]) == ("cancelled", o2["pay_deadline"]), c2
        assert sku_stock(h, t, a) == 10 and unpaid_sweep_due(h, t) is None
    finally:
        h.stop()


def test_an_order_left_unpaid_under_1_9_0_expires_once_after_the_upgrade():
    """An order of orders 1.9.0 has its own unpaid job; 1.10.0 sweeps the orders it
    creates. Each is cancelled once, at its deadline, and its unit comes back once."""
    with old_plugin("orders", "1.9.0") as old:
        if old is None:
            return
        t = shop("upgrade")
        h = host_with_old([t], "orders-upgrade-unpaid", [old])
        try:
            a = new_sku(h, t, stock=10)
            before = create_ok(h, t, "up-a", [{"sku": a, "qty": 1}])
            keys = [j["key"] for j in pending_jobs(h, t)["jobs"]]
            assert keys == ["unpaid:%d" % before["id"]], keys
            advance(h, t, seconds=300)
        finally:
            h.stop()
        h.upgrade()
        try:
            after = create_ok(h, t, "up-b", [{"sku": a, "qty": 1}])
            assert after["pay_deadline"] == before["pay_deadline"] + 300
            assert unpaid_sweep_due(h, t) == after["pay_deadline"]
            assert sku_stock(h, t, a) == 8
            advance(h, t, seconds=TIMEOUT - 300)
            c1 = order_of(h, t, "up-a", before["id"])
            assert (c1["status"], c1["cancelled_at"]) == ("cancelled", before["pay_deadline"]), c1
            assert order_of(h, t, "up-b", after["id"])["status"] == "pending_payment"
            assert sku_stock(h, t, a) == 9
            advance(h, t, seconds=300)
            c2 = order_of(h, t, "up-b", after["id"])
            assert (c2["status"], c2["cancelled_at"]) == ("cancelled", after["pay_deadline"]), c2
            assert sku_stock(h, t, a) == 10
            for state in ("pending", "dead"):
                listing = tasks(h, t, "jobs", state)
                assert listing["jobs"] == [], listing
        finally:
            h.stop()


def test_a_wrong_orders_config_fails_the_load_with_its_field_error():
    """orders checks its config when it loads: `tidepool check --config` names the
    key and its range, where before a checkout failed with a Lua error."""
    with tempfile.TemporaryDirectory(prefix="tidepool-e2e-orders-config-") as d:
        conf = os.path.join(d, "tidepool.conf.lua")
        cases = [("unpaid_timeout_seconds = 10", "config.unpaid_timeout_seconds must be an integer from 60 to 86400"),
                 ("max_unpaid_orders = 0", "config.max_unpaid_orders must be an integer from 1 to"),
                 ("max_lines = '20'", "config.max_lines must be an integer from 1 to 1000"),
                 ("attribution_plugin = 'no such!'", "config.attribution_plugin must be 1-64 letters"),
                 ("unpaid_timeout_seconds = 600, max_unpaid_orders = 2", None)]
        for setting, message in cases:
            with open(conf, "w") as f:
                f.write('return { data_dir = "%s/data", plugin_dirs = { "%s/plugins" }, sdk_dir = "%s/sdk",'
                        ' tenants = { { id = "brand", token_secret = "0123456789abcdef0123",'
                        ' plugins = { catalog = {}, payments = { secret = "orders-config-secret-0123456789" },'
                        ' orders = { %s } } } } }' % (d, SRC, SRC, setting))
            p = subprocess.run([BIN, "check", os.path.join(SRC, "plugins", "orders"), "--config", conf,
                                "--tenant", "brand"], capture_output=True, text=True, timeout=60)
            if message is None:
                assert p.returncode == 0 and "ok (orders" in p.stdout, (setting, p.returncode, p.stdout, p.stderr)
            else:
                assert p.returncode == 1 and "invalid_field: " + message in p.stdout, (setting, p.stdout, p.stderr)


# ---- one user's orders are invisible to another

def test_a_user_cannot_read_list_or_touch_another_users_orders():
    h, t = host(), T
    a = new_sku(h, t, stock=10)
    oa = create_ok(h, t, "own-alice", [{"sku": a, "qty": 1}])
    ob = create_ok(h, t, "own-bob", [{"sku": a, "qty": 1}])
    expect_error(get_order(h, t, "own-bob", oa["id"]), 404, "order_not_found")
    expect_error(get_order(h, t, "own-bob", 99999999), 404, "order_not_found")
    listed = [o["id"] for o in my_orders(h, t, "own-bob")["items"]]
    assert listed == [ob["id"]], listed
    for status_filter in ("pending_payment", "paid", "cancelled"):
        ids = [o["id"] for o in my_orders(h, t, "own-bob", "?status=" + status_filter)["items"]]
        assert oa["id"] not in ids, (status_filter, ids)
    expect_error(user_post(h, t, "own-bob", "/orders/%d/cancel" % oa["id"]), 404, "order_not_found")
    expect_error(user_post(h, t, "own-bob", "/orders/%d/confirm" % oa["id"]), 404, "order_not_found")
    expect_error(user_post(h, t, "own-bob", "/payments/prepay", {"order_id": oa["id"]}),
                 404, "order_not_found")
    assert order_of(h, t, "own-alice", oa["id"])["status"] == "pending_payment"
    assert sku_stock(h, t, a) == 8
    # once paid, still not Bob's to confirm
    pay(h, t, oa)
    expect_error(user_post(h, t, "own-bob", "/orders/%d/confirm" % oa["id"]), 404, "order_not_found")
    assert order_of(h, t, "own-alice", oa["id"])["status"] == "paid"
    listed = [o["id"] for o in my_orders(h, t, "own-bob", "?status=paid")["items"]]
    assert listed == [], listed
    # no token, no orders
    expect_error(h.get("/v1/%s/orders" % t["id"]), 401, "auth_required")


def test_my_orders_paginate_newest_first_and_filter_by_status():
    h, t = host(), T
    a = new_sku(h, t, stock=50)
    user = "page-alice"
    ids = []
    for i in range(5):
        o = create_ok(h, t, user, [{"sku": a, "qty": 1}])
        ids.append(o["id"])
        if i < 4:        # keep under the unpaid cap of 2: pay or cancel as we go
            if i % 2 == 0:
                pay(h, t, o)
            else:
                assert user_post(h, t, user, "/orders/%d/cancel" % o["id"])[0] == 200
    newest_first = sorted(ids, reverse=True)
    p1 = my_orders(h, t, user, "?limit=2")
    assert [o["id"] for o in p1["items"]] == newest_first[:2], p1
    assert p1["next_after"] == newest_first[1], p1
    p2 = my_orders(h, t, user, "?limit=2&after=%d" % p1["next_after"])
    assert [o["id"] for o in p2["items"]] == newest_first[2:4], p2
    p3 = my_orders(h, t, user, "?limit=2&after=%d" % p2["next_after"])
    assert [o["id"] for o in p3["items"]] == newest_first[4:], p3
    assert p3.get("next_after") is None, p3
    everything = my_orders(h, t, user)
    assert [o["id"] for o in everything["items"]] == newest_first and everything.get("next_after") is None
    by_status = {}
    for st in ("pending_payment", "paid", "cancelled", "refunded"):
        got = my_orders(h, t, user, "?status=" + st)["items"]
        assert all(o["status"] == st for o in got), (st, got)
        by_status[st] = [o["id"] for o in got]
    assert by_status == {"pending_payment": [ids[4]], "paid": [ids[2], ids[0]],
                         "cancelled": [ids[3], ids[1]], "refunded": []}, by_status
    paid_page = my_orders(h, t, user, "?status=paid&limit=1")
    assert [o["id"] for o in paid_page["items"]] == [ids[2]], paid_page
    paid_next = my_orders(h, t, user, "?status=paid&limit=1&after=%d" % paid_page["next_after"])
    assert [o["id"] for o in paid_next["items"]] == [ids[0]], paid_next
    headers = auth(h, t, user)
    for bad in ("?status=lost", "?limit=0", "?limit=101", "?limit=x", "?after=x"):
        status, _, body = h.get("/v1/%s/orders%s" % (t["id"], bad), headers=headers)
        assert status == 400, (bad, status, body)


# ---- states: paid, completed, refunds

def test_a_paid_order_can_be_confirmed_and_then_is_completed():
    h, t = host(), T
    a = new_sku(h, t, stock=10)
    o = create_ok(h, t, "st-alice", [{"sku": a, "qty": 1}])
    expect_error(user_post(h, t, "st-alice", "/orders/%d/confirm" % o["id"]), 409, "not_confirmable")
    assert pay(h, t, o)["outcome"] == "paid"
    p = order_of(h, t, "st-alice", o["id"])
    assert p["status"] == "paid" and p["paid_fen"] == o["total_fen"] and p["paid_at"], p
    assert p["transaction_id"] == "4200%010d" % o["id"], p
    # a paid order is no longer cancellable, the unpaid timeout no longer waits on it
    expect_error(user_post(h, t, "st-alice", "/orders/%d/cancel" % o["id"]), 409, "not_cancellable")
    assert not awaits_unpaid_timeout(h, t, o["id"])
    status, _, c = user_post(h, t, "st-alice", "/orders/%d/confirm" % o["id"])
    assert status == 200 and c["status"] == "completed" and c["completed_at"], (status, c)
    expect_error(user_post(h, t, "st-alice", "/orders/%d/confirm" % o["id"]), 409, "not_confirmable")
    assert sku_stock(h, t, a) == 9


def test_a_full_refund_goes_refunding_then_refunded_once():
    h, t = host(), T_REFUND
    a = new_sku(h, t, price_fen=2500, stock=10)
    o = paid_order(h, t, "rf-alice", [{"sku": a, "qty": 2}])
    assert sku_stock(h, t, a) == 8
    before = len(provider_refunds(h, t))
    status, _, answer = refund(h, t, o["id"], reason="customer asked")
    assert status == 202, (status, answer)
    assert answer["order"]["status"] == "refunding", answer
    assert answer["order"]["refund_requested_fen"] == o["paid_fen"], answer
    r = answer["refund"]
    assert r["amount_fen"] == 5000 and r["status"] == "pending" and r["kind"] == "order", r
    assert r["reason"] == "customer asked", r
    advance(h, t, seconds=1)
    done = admin_order(h, t, o["id"])
    assert done["status"] == "refunded", done
    assert done["refunded_fen"] == done["paid_fen"] == 5000 and done["refunded_at"], done
    assert [(x["refund_no"], x["status"], x["amount_fen"]) for x in done["refunds"]] == \
        [(r["refund_no"], "succeeded", 5000)], done["refunds"]
    mine = [x for x in provider_refunds(h, t) if x["order_id"] == o["id"]]
    assert len(mine) == 1 and len(provider_refunds(h, t)) == before + 1, mine
    assert mine[0]["refund_no"] == r["refund_no"] and mine[0]["amount_fen"] == 5000, mine
    assert mine[0]["transaction_id"] == o["transaction_id"] and mine[0]["provider_refund_id"], mine
    # the user sees it too
    assert order_of(h, t, "rf-alice", o["id"])["status"] == "refunded"
    # the job never runs again: nothing waits, nothing was dead-lettered
    assert refund_jobs(h, t) == []
    for _ in range(3):
        a = advance(h, t, seconds=3600)
        assert a["tasks_failed"] == 0, a
    mine = [x for x in provider_refunds(h, t) if x["order_id"] == o["id"]]
    assert len(mine) == 1, mine
    assert refund_jobs(h, t) == []
    again = admin_order(h, t, o["id"])
    assert again["refunded_fen"] == 5000 and again["status"] == "refunded", again
    # and a refunded order cannot be refunded again
    expect_error(refund(h, t, o["id"]), 409, "not_refundable")


def test_a_full_refund_of_a_paid_order_returns_its_stock():
    h, t = host(), T_REFUND
    a = new_sku(h, t, stock=6)
    b = new_sku(h, t, stock=6)
    o = paid_order(h, t, "rs-alice", [{"sku": a, "qty": 2}, {"sku": b, "qty": 5}])
    assert sku_stock(h, t, a) == 4 and sku_stock(h, t, b) == 1
    status, _, answer = refund(h, t, o["id"])
    assert status == 202 and answer["order"]["stock_held"] is False, (status, answer)
    assert sku_stock(h, t, a) == 6 and sku_stock(h, t, b) == 6
    advance(h, t, seconds=1)
    assert admin_order(h, t, o["id"])["status"] == "refunded"
    assert sku_stock(h, t, a) == 6 and sku_stock(h, t, b) == 6, "units came back twice"


def test_two_partial_refunds_summing_to_the_total_refund_the_order():
    h, t = host(), T_REFUND
    a = new_sku(h, t, price_fen=1000, stock=10)
    o = paid_order(h, t, "rp-alice", [{"sku": a, "qty": 3}])
    total = o["total_fen"]
    assert total == 3000
    status, _, first = refund(h, t, o["id"], amount_fen=1200)
    assert status == 202, (status, first)
    assert first["order"]["status"] == "paid", first          # a partial refund keeps the status
    assert first["order"]["stock_held"] is True and sku_stock(h, t, a) == 7, first
    advance(h, t, seconds=1)
    mid = admin_order(h, t, o["id"])
    assert mid["status"] == "paid" and mid["refunded_fen"] == 1200, mid
    assert mid["refund_requested_fen"] == 1200, mid
    # more than is left
    body = expect_error(refund(h, t, o["id"], amount_fen=total - 1200 + 1), 409, "refund_exceeds_paid")
    assert body["error"]["details"]["refundable_fen"] == 1800, body
    status, _, second = refund(h, t, o["id"], amount_fen=1800)
    assert status == 202 and second["order"]["status"] == "refunding", (status, second)
    assert first["refund"]["refund_no"] != second["refund"]["refund_no"]
    advance(h, t, seconds=1)
    done = admin_order(h, t, o["id"])
    assert done["status"] == "refunded" and done["refunded_fen"] == total == done["paid_fen"], done
    assert [(x["amount_fen"], x["status"]) for x in done["refunds"]] == \
        [(1200, "succeeded"), (1800, "succeeded")], done["refunds"]
    mine = sorted((x["refund_no"], x["amount_fen"]) for x in provider_refunds(h, t)
                  if x["order_id"] == o["id"])
    assert mine == sorted([(first["refund"]["refund_no"], 1200),
                           (second["refund"]["refund_no"], 1800)]), mine
    assert sku_stock(h, t, a) == 10
    advance(h, t, seconds=7200)
    assert len([x for x in provider_refunds(h, t) if x["order_id"] == o["id"]]) == 2
    assert refund_jobs(h, t) == []
    assert admin_order(h, t, o["id"])["refunded_fen"] == total


def test_a_refund_over_what_is_left_is_409():
    h, t = host(), T_REFUND
    a = new_sku(h, t, price_fen=900, stock=10)
    o = paid_order(h, t, "rx-alice", [{"sku": a, "qty": 1}])
    body = expect_error(refund(h, t, o["id"], amount_fen=901), 409, "refund_exceeds_paid")
    assert body["error"]["details"]["refundable_fen"] == 900, body
    bad_field(refund(h, t, o["id"], amount_fen=0), "amount_fen")
    after = admin_order(h, t, o["id"])
    assert after["status"] == "paid" and after["refund_requested_fen"] == 0, after
    assert after["refunds"] == [] and sku_stock(h, t, a) == 9, after
    advance(h, t, seconds=1)
    assert [x for x in provider_refunds(h, t) if x["order_id"] == o["id"]] == []


def test_an_unpaid_or_cancelled_order_is_not_refundable():
    h, t = host(), T_REFUND
    a = new_sku(h, t, stock=10)
    unpaid = create_ok(h, t, "rn-alice", [{"sku": a, "qty": 1}])
    body = expect_error(refund(h, t, unpaid["id"]), 409, "not_refundable")
    assert body["error"]["details"]["status"] == "pending_payment", body
    expect_error(refund(h, t, unpaid["id"], amount_fen=1), 409, "not_refundable")
    cancelled = create_ok(h, t, "rn-alice", [{"sku": a, "qty": 2}])
    assert user_post(h, t, "rn-alice", "/orders/%d/cancel" % cancelled["id"])[0] == 200
    body = expect_error(refund(h, t, cancelled["id"]), 409, "not_refundable")
    assert body["error"]["details"]["status"] == "cancelled", body
    expect_error(refund(h, t, 99999999), 404, "order_not_found")
    assert admin_order(h, t, unpaid["id"])["status"] == "pending_payment"
    assert admin_order(h, t, cancelled["id"])["refunds"] == []
    assert sku_stock(h, t, a) == 9


# ---- held orders (a campaign's group pending) and what orders knows of a buyer

def campaign_order(h, t, user, sku, hold):
    status, _, o = h.post("/v1/%s/holdprobe/orders" % t["id"], {"sku": sku, "hold": hold},
                          headers=auth(h, t, user))
    assert status == 201, (status, o)
    assert o["campaign"]["plugin"] == "holdprobe" and o["held"] is hold, o
    return o


def release_hold(h, t, oid):
    return h.admin("POST", "/holdprobe/orders/%d/release" % oid, t)


def test_a_held_order_is_paid_but_cannot_be_completed_until_its_campaign_releases_it():
    h, t = host(), T_HOLD
    a = new_sku(h, t, stock=10)
    o = campaign_order(h, t, "hd-alice", a, True)
    assert pay(h, t, o)["outcome"] == "paid"
    p = order_of(h, t, "hd-alice", o["id"])
    assert p["status"] == "paid" and p["held"] is True, p
    expect_error(user_post(h, t, "hd-alice", "/orders/%d/confirm" % o["id"]), 409, "order_held")
    expect_error(h.admin("POST", "/orders/%d/complete" % o["id"], t), 409, "order_held")
    assert order_of(h, t, "hd-alice", o["id"])["status"] == "paid"
    status, _, body = release_hold(h, t, o["id"])
    assert status == 200 and body["released"] is True, (status, body)
    status, _, body = release_hold(h, t, o["id"])
    assert status == 200 and body["released"] is False, (status, body)
    status, _, c = user_post(h, t, "hd-alice", "/orders/%d/confirm" % o["id"])
    assert status == 200 and c["status"] == "completed" and c["held"] is False, (status, c)


def test_an_order_is_not_held_unless_its_campaign_asks_and_a_held_order_can_be_refunded():
    h, t = host(), T_HOLD
    a = new_sku(h, t, stock=10)
    free = campaign_order(h, t, "hd-bob", a, False)
    pay(h, t, free)
    status, _, c = user_post(h, t, "hd-bob", "/orders/%d/confirm" % free["id"])
    assert status == 200 and c["status"] == "completed", (status, c)
    held = campaign_order(h, t, "hd-bob", a, True)
    pay(h, t, held)
    status, _, body = refund(h, t, held["id"], reason="group_failed")
    assert status == 202 and body["order"]["status"] == "refunding", (status, body)
    advance(h, t, seconds=1)
    assert admin_order(h, t, held["id"])["status"] == "refunded"
    assert sku_stock(h, t, a) == 9


def test_only_the_campaign_that_created_an_order_may_release_its_hold():
    h, t = host(), T_HOLD
    a = new_sku(h, t, stock=10)
    o = create_ok(h, t, "hd-carol", [{"sku": a, "qty": 1}])   # the user's own checkout
    expect_error(release_hold(h, t, o["id"]), 403, "hold_forbidden")
    expect_error(release_hold(h, t, 99999999), 404, "order_not_found")


def test_customer_counts_the_orders_a_buyer_ever_paid():
    h, t = host(), T_HOLD
    a = new_sku(h, t, stock=10)

    def customer(user):
        return admin_ok(h, "GET", "/holdprobe/customers/%s" % user, t)

    assert customer("hd-dave") == {"paid_orders": 0}, customer("hd-dave")
    unpaid = create_ok(h, t, "hd-dave", [{"sku": a, "qty": 1}])
    assert user_post(h, t, "hd-dave", "/orders/%d/cancel" % unpaid["id"])[0] == 200
    assert customer("hd-dave")["paid_orders"] == 0
    paid_order(h, t, "hd-dave", [{"sku": a, "qty": 1}])
    first = clock(h, t)["now"]
    advance(h, t, seconds=60)
    later = paid_order(h, t, "hd-dave", [{"sku": a, "qty": 1}])
    refund(h, t, later["id"])
    advance(h, t, seconds=1)
    # a refunded order was still paid once: the buyer is no longer new
    assert customer("hd-dave") == {"paid_orders": 2, "first_paid_at": first}, customer("hd-dave")
    expect_error(h.admin("GET", "/holdprobe/customers/%s" % ("x" * 65), t), 400, "invalid_field")


def test_a_user_id_with_the_characters_tokens_allow_can_order():
    h, t = host(), T
    a = new_sku(h, t, stock=10)
    o = create_ok(h, t, "wx:o6_bmjrPTlm6@brand", [{"sku": a, "qty": 1}])
    assert my_orders(h, t, "wx:o6_bmjrPTlm6@brand")["items"][0]["id"] == o["id"]


def teardown():
    if H is not None and H.running():
        H.stop()


if __name__ == "__main__":
    run(globals())
