"""
test_flash_sale.py - the flash_sale plugin (秒杀) end to end, with catalog,
orders and payments: windows and daily slots read in the tenant's zone,
per-order and per-user limits, units given back by the unpaid timeout and
taken again (or refunded) by a late payment, operator validation, and
Idempotency-Key replays. The heavy concurrent runs are in
test_flash_sale_load.py (it imports the helpers from here).

Every tenant runs on the manual test clock (POST /admin/{t}/clock/advance),
so windows, slots and the unpaid timeout are reached without waiting. After
every step that moves units, check_accounting() holds the books against the
order rows: the sale's sold (quantity - remaining) equals the units of its
orders that hold stock, and the catalog is down by exactly as many.
"""
import http.client
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Host, manual_tenant, clock, advance, expect_error, error_code, mint_token,
                     user_auth, sku_stock, add_sku as harness_add_sku,  # noqa: E402
                     wait_until, run)
import paysign  # noqa: E402

DAY = 86400
PAY_SECRET = "flash-sale-payment-secret-0123456789"
PRICE = 9900        # list price of every SKU here, fen
SALE_PRICE = 1990


def shop_plugins():
    return {"catalog": {}, "orders": {"max_unpaid_orders": 5},
            "payments": {"secret": PAY_SECRET}, "flash_sale": {}}


def shop(tid, timezone="Asia/Shanghai"):
    t = manual_tenant(tid, shop_plugins())
    t["timezone"] = timezone
    return t


T_LATE = shop("late")
T_WIN = shop("win")
T_LIM = shop("lim")
T_VALID = shop("valid")
T_OVER = shop("over")
T_PATCH = shop("patch")
T_IDEM = shop("idem")
T_IDEM2 = shop("idem2")
T_FAIL = shop("fail")
T_PRICE = shop("price")

H = None


def host():
    """One host for the tests that need no special process environment; each
    test has its own tenant (database, clock)."""
    global H
    if H is None:
        H = Host(tenants=[T_LATE, T_WIN, T_LIM, T_VALID, T_OVER, T_PATCH, T_IDEM, T_IDEM2,
                          T_FAIL, T_PRICE],
                 name="flash").start()
    return H


# ---- helpers (test_flash_sale_load.py uses them too)

def token(t, user):
    return mint_token(t, user, ttl=DAY)


def auth(t, user):
    return user_auth(t, user, ttl=DAY)


def now(h, t):
    return clock(h, t)["now"]


def add_sku(h, t, code, stock, price_fen=PRICE):
    return harness_add_sku(h, t, code, stock, price_fen)


def sale_fields(h, t, sku, **fields):
    """A valid sale of sku open for a day from the tenant's now, overridden by fields."""
    n = now(h, t)
    body = {"sku": sku, "price_fen": SALE_PRICE, "quantity": 10, "per_user_limit": 1,
            "per_order_limit": 1, "starts_at": n - 60, "ends_at": n + DAY,
            "unpaid_timeout_seconds": 300}
    body.update(fields)
    return body


def create_sale(h, t, body):
    return h.admin("POST", "/flash-sales", t, body)


def new_sale(h, t, sku, **fields):
    status, _, body = create_sale(h, t, sale_fields(h, t, sku, **fields))
    assert status == 201, (status, body)
    return body


def admin_sale(h, t, sale_id):
    status, _, body = h.admin("GET", "/flash-sales/%d" % sale_id, t)
    assert status == 200, (status, body)
    return body


def public_sale(h, t, sale_id):
    return h.get("/v1/%s/flash-sales/%d" % (t["id"], sale_id))


def buy(h, t, sale_id, user, qty=None, key=None):
    headers = auth(t, user)
    if key is not None:
        headers["Idempotency-Key"] = key
    body = {} if qty is None else {"qty": qty}
    return h.post("/v1/%s/flash-sales/%d/buy" % (t["id"], sale_id), body, headers=headers)


def buy_ok(h, t, sale_id, user, qty=None, key=None):
    status, _, body = buy(h, t, sale_id, user, qty, key)
    assert status == 201, (user, status, body)
    assert body["user"] == user and body["status"] == "pending_payment", body
    assert body["campaign"]["plugin"] == "flash_sale" and body["campaign"]["id"] == str(sale_id), body
    assert body["lines"][0]["unit_price_fen"] == admin_sale(h, t, sale_id)["price_fen"], body
    return body


def refused(h, t, sale_id, user, code, qty=None, key=None, status=409):
    return expect_error(buy(h, t, sale_id, user, qty, key), status, code)


def all_orders(h, t):
    """Every order of the tenant through the admin list (pages of 500), and the totals."""
    items, after, totals = [], None, None
    while True:
        path = "/orders?limit=500" + ("&after=%d" % after if after else "")
        status, _, body = h.admin("GET", path, t)
        assert status == 200, (status, body)
        items += body["items"]
        totals = totals or body["totals"]
        after = body.get("next_after")
        if not after:
            return items, totals


def orders_of_sale(h, t, sale_id):
    items, _ = all_orders(h, t)
    return [o for o in items if o.get("campaign") and o["campaign"]["plugin"] == "flash_sale"
            and o["campaign"]["id"] == str(sale_id)]


def order(h, t, order_id):
    status, _, body = h.admin("GET", "/orders/%d" % order_id, t)
    assert status == 200, (status, body)
    return body


def units(o):
    return sum(line["qty"] for line in o["lines"])


def check_accounting(h, t, sale_id, sku, initial_stock):
    """Never oversold, and the books agree with the order rows: the sale's
    sold units are exactly the units of its orders that hold stock, and the
    catalog is down by exactly as many (the SKU is sold only through this sale
    in these tests)."""
    sale = admin_sale(h, t, sale_id)
    held = sum(units(o) for o in orders_of_sale(h, t, sale_id) if o["stock_held"])
    stock = sku_stock(h, t, sku)
    assert 0 <= sale["remaining"] <= sale["quantity"], sale
    assert sale["sold"] == sale["quantity"] - sale["remaining"], sale
    assert sale["sold"] == held, ("sale's sold units != units held by its orders", sale, held)
    assert stock >= 0 and initial_stock - stock == held, \
        ("catalog stock does not match the held units", initial_stock, stock, held)
    return sale


def signed_notify(h, t, o, transaction_id, at=None):
    """POST /v1/{t}/payments/notify as WeChat Pay would (tests/e2e/paysign.py);
    the timestamp is the tenant's clock."""
    headers, body = paysign.signed_notify(PAY_SECRET, at if at is not None else now(h, t),
                                          o["id"], o["total_fen"], transaction_id)
    status, _, answer = h.request("POST", "/v1/%s/payments/notify" % t["id"], body=body,
                                  headers=headers)
    assert status == 200 and answer["code"] == "SUCCESS", (status, answer)
    return answer["outcome"]


def simulate_payment(h, t, order_id):
    status, _, body = h.admin("POST", "/payments/simulate", t, {"order_id": order_id})
    assert status == 200, (status, body)
    return body["result"]["outcome"]


def wait_order_status(h, t, order_id, status, timeout=20):
    wait_until(lambda: order(h, t, order_id)["status"] == status, timeout,
               what="order %d to become %s" % (order_id, status))


# ---- 3. the unpaid timeout gives units back; a late payment takes them again or is refunded

def test_unpaid_orders_cancelled_by_the_clock_return_their_units():
    h, t = host(), T_LATE
    add_sku(h, t, "late-a", stock=20)
    sale = new_sale(h, t, "late-a", quantity=10, per_user_limit=1, unpaid_timeout_seconds=300)
    sid = sale["id"]
    bought = {u: buy_ok(h, t, sid, u) for u in ("u1", "u2", "u3")}
    s = check_accounting(h, t, sid, "late-a", 20)
    assert (s["remaining"], s["sold"]) == (7, 3), s
    assert sku_stock(h, t, "late-a") == 17
    for o in bought.values():
        assert o["pay_deadline"] == o["created_at"] + 300, o

    advance(h, t, seconds=299)                     # not yet
    assert all(order(h, t, o["id"])["status"] == "pending_payment" for o in bought.values())
    assert admin_sale(h, t, sid)["remaining"] == 7

    a = advance(h, t, seconds=2)                   # past the deadline: the expire jobs run
    assert a["tasks_failed"] == 0 and a["tasks_run"] >= 3, a
    for u, o in bought.items():
        c = order(h, t, o["id"])
        assert c["status"] == "cancelled" and c["cancel_reason"] == "timeout", c
        assert c["stock_held"] is False, c
    s = check_accounting(h, t, sid, "late-a", 20)
    assert (s["remaining"], s["sold"]) == (10, 0), s
    assert sku_stock(h, t, "late-a") == 20

    again = buy_ok(h, t, sid, "u1")                # u1's count was released with the units
    assert again["id"] != bought["u1"]["id"]
    s = check_accounting(h, t, sid, "late-a", 20)
    assert (s["remaining"], s["sold"]) == (9, 1), s

    # u2 pays its cancelled order (a signed notify): units remain, so it is paid after all
    assert signed_notify(h, t, bought["u2"], "4200000000000000001") == "paid_after_cancel"
    o2 = order(h, t, bought["u2"]["id"])
    assert o2["status"] == "paid" and o2["late_payment"] is True and o2["stock_held"] is True, o2
    assert o2["transaction_id"] == "4200000000000000001", o2
    s = check_accounting(h, t, sid, "late-a", 20)
    assert (s["remaining"], s["sold"]) == (8, 2), s
    refused(h, t, sid, "u2", "limit_reached")      # u2's count was taken again too
    # the same notify again changes nothing
    assert signed_notify(h, t, bought["u2"], "4200000000000000001") == "duplicate"
    s = check_accounting(h, t, sid, "late-a", 20)
    assert (s["remaining"], s["sold"]) == (8, 2), s

    # u1 pays its first (cancelled) order but already bought again up to its limit:
    # the late payment cannot take a unit for u1, so the money goes back
    assert simulate_payment(h, t, bought["u1"]["id"]) == "refunding"
    wait_order_status(h, t, bought["u1"]["id"], "refunded")
    o1 = order(h, t, bought["u1"]["id"])
    assert o1["late_payment"] is True and o1["stock_held"] is False, o1
    assert o1["refunded_fen"] == o1["paid_fen"] == o1["total_fen"], o1
    assert [r["status"] for r in o1["refunds"]] == ["succeeded"], o1
    s = check_accounting(h, t, sid, "late-a", 20)
    assert (s["remaining"], s["sold"]) == (8, 2), s
    # u3's order stays cancelled; u3 may buy again
    assert order(h, t, bought["u3"]["id"])["status"] == "cancelled"
    o3 = buy_ok(h, t, sid, "u3")
    s = check_accounting(h, t, sid, "late-a", 20)
    assert (s["remaining"], s["sold"]) == (7, 3), s

    # the other ways units go back: the user cancels, the operator refunds in full
    status, _, c3 = h.post("/v1/%s/orders/%d/cancel" % (t["id"], o3["id"]), headers=auth(t, "u3"))
    assert status == 200 and c3["status"] == "cancelled" and c3["cancel_reason"] == "user", c3
    s = check_accounting(h, t, sid, "late-a", 20)
    assert (s["remaining"], s["sold"]) == (8, 2), s
    status, _, r = h.admin("POST", "/orders/%d/refund" % bought["u2"]["id"], t, {})
    assert status == 202 and r["order"]["status"] == "refunding", (status, r)
    wait_order_status(h, t, bought["u2"]["id"], "refunded")
    s = check_accounting(h, t, sid, "late-a", 20)
    assert (s["remaining"], s["sold"]) == (9, 1), s
    buy_ok(h, t, sid, "u2")          # u2's count went back with the refunded unit
    buy_ok(h, t, sid, "u3")
    s = check_accounting(h, t, sid, "late-a", 20)
    assert (s["remaining"], s["sold"]) == (7, 3), s


def test_a_late_payment_for_a_unit_sold_to_another_user_is_refunded():
    h, t = host(), T_LATE
    add_sku(h, t, "late-b", stock=5)
    sid = new_sale(h, t, "late-b", quantity=1, per_user_limit=1, unpaid_timeout_seconds=300)["id"]
    first = buy_ok(h, t, sid, "ua")
    assert admin_sale(h, t, sid)["remaining"] == 0
    advance(h, t, seconds=301)
    assert order(h, t, first["id"])["cancel_reason"] == "timeout"
    s = check_accounting(h, t, sid, "late-b", 5)
    assert s["remaining"] == 1, s
    second = buy_ok(h, t, sid, "ub")               # the unit goes to another user
    s = check_accounting(h, t, sid, "late-b", 5)
    assert (s["remaining"], s["sold"]) == (0, 1), s

    # ua's payment arrives now: the catalog has units, the sale has none
    assert signed_notify(h, t, first, "4200000000000000002") == "refunding"
    o = order(h, t, first["id"])
    assert o["status"] in ("refunding", "refunded") and o["late_payment"] is True, o
    assert o["stock_held"] is False, o
    wait_order_status(h, t, first["id"], "refunded")
    o = order(h, t, first["id"])
    assert o["refunded_fen"] == o["paid_fen"] == o["total_fen"] == SALE_PRICE, o
    s = check_accounting(h, t, sid, "late-b", 5)
    assert (s["remaining"], s["sold"], s["quantity"]) == (0, 1, 1), s   # never oversold
    assert sku_stock(h, t, "late-b") == 4
    assert order(h, t, second["id"])["status"] == "pending_payment"
    status, _, refunds = h.admin("GET", "/payments/refunds", t)
    assert status == 200, refunds
    mine = [r for r in refunds["items"] if r["order_id"] == first["id"]]
    assert len(mine) == 1 and mine[0]["amount_fen"] == SALE_PRICE, refunds
    refused(h, t, sid, "ua", "sold_out")

    # the same when the sale has units but the catalog has none left: all or nothing
    add_sku(h, t, "late-c", stock=2)
    sid_c = new_sale(h, t, "late-c", quantity=2, per_user_limit=1)["id"]
    c = buy_ok(h, t, sid_c, "uc")
    advance(h, t, seconds=301)
    assert order(h, t, c["id"])["status"] == "cancelled"
    assert sku_stock(h, t, "late-c") == 2
    status, _, body = h.admin("POST", "/catalog/skus/late-c/stock", t, {"delta": -2})
    assert status == 200 and body["stock"] == 0, body
    assert simulate_payment(h, t, c["id"]) == "refunding"
    wait_order_status(h, t, c["id"], "refunded")
    s = admin_sale(h, t, sid_c)
    assert (s["remaining"], s["sold"]) == (2, 0), s
    assert sku_stock(h, t, "late-c") == 0
    assert order(h, t, c["id"])["stock_held"] is False


# ---- 4. windows and daily slots

def test_a_sale_is_not_started_before_starts_at_and_ended_from_ends_at():
    h, t = host(), T_WIN
    add_sku(h, t, "win-1", stock=10)
    n = now(h, t)
    starts, ends = n + 3600, n + 7200
    sid = new_sale(h, t, "win-1", quantity=5, starts_at=starts, ends_at=ends)["id"]
    body = refused(h, t, sid, "w1", "not_started")
    assert body["error"]["details"]["opens_at"] == starts, body
    status, _, pub = public_sale(h, t, sid)
    assert status == 200 and pub["state"] == "not_started" and pub["opens_at"] == starts, pub
    advance(h, t, to=starts - 1)
    body = refused(h, t, sid, "w1", "not_started")
    assert body["error"]["details"]["opens_at"] == starts, body
    advance(h, t, to=starts)
    buy_ok(h, t, sid, "w1")
    status, _, pub = public_sale(h, t, sid)
    assert pub["state"] == "open" and pub.get("opens_at") is None and pub["remaining"] == 4, pub
    advance(h, t, to=ends - 1)
    buy_ok(h, t, sid, "w2")
    advance(h, t, to=ends)
    body = refused(h, t, sid, "w3", "ended")
    assert not (body["error"].get("details") or {}).get("opens_at"), body
    status, _, pub = public_sale(h, t, sid)
    assert status == 200 and pub["state"] == "ended", pub
    status, _, listing = h.get("/v1/%s/flash-sales" % t["id"])
    assert status == 200 and sid not in [s["id"] for s in listing["items"]], listing
    check_accounting(h, t, sid, "win-1", 10)


class UtcHost(Host):
    """A host whose process runs with TZ=UTC in its environment (harness.Host
    passes its own environment on; nothing to edit there)."""

    def start(self):
        saved = os.environ.get("TZ")
        os.environ["TZ"] = "UTC"
        try:
            return super().start()
        finally:
            if saved is None:
                del os.environ["TZ"]
            else:
                os.environ["TZ"] = saved


def utc(day_start, hh, mm=0, ss=0):
    return day_start + hh * 3600 + mm * 60 + ss


def test_a_daily_slot_is_read_in_the_tenant_zone_while_the_host_runs_in_utc():
    t = shop("slot", timezone="Asia/Shanghai")
    tb = shop("slotbr", timezone="America/Sao_Paulo")
    with UtcHost(tenants=[t, tb], name="flash-slot") as h:
        with open("/proc/%d/environ" % h.proc.pid, "rb") as f:
            assert b"TZ=UTC" in f.read().split(b"\0"), "the host process does not run with TZ=UTC"
        add_sku(h, t, "slot-1", stock=10)
        n = now(h, t)
        # D: a UTC midnight at least a day ahead of the tenant's clock
        day = (n // DAY + 2) * DAY
        assert time.gmtime(day)[3:6] == (0, 0, 0)
        sid = new_sale(h, t, "slot-1", quantity=5, starts_at=day - DAY, ends_at=day + 3 * DAY,
                       slots=["10:00-12:00"])["id"]     # 10:00-12:00 in Shanghai = 02:00-04:00 UTC

        advance(h, t, to=utc(day, 1, 59, 59))          # 09:59:59 in Shanghai
        body = refused(h, t, sid, "s1", "not_started")
        assert body["error"]["details"]["opens_at"] == utc(day, 2), \
            ("opens_at should be 02:00:00 UTC of the day", body, utc(day, 2))
        status, _, listing = h.get("/v1/%s/flash-sales" % t["id"])
        assert listing["timezone"] == "Asia/Shanghai", listing
        pub = [s for s in listing["items"] if s["id"] == sid]
        assert pub and pub[0]["state"] == "not_started" and pub[0]["opens_at"] == utc(day, 2), listing

        advance(h, t, to=utc(day, 2))                  # 10:00:00 in Shanghai
        buy_ok(h, t, sid, "s1")
        advance(h, t, to=utc(day, 3, 59, 59))          # 11:59:59 in Shanghai
        buy_ok(h, t, sid, "s2")

        advance(h, t, to=utc(day, 4))                  # 12:00:00 in Shanghai: the slot is over
        body = refused(h, t, sid, "s3", "not_started")
        assert body["error"]["details"]["opens_at"] == utc(day + DAY, 2), \
            ("opens_at should be the next day's 02:00 UTC", body, utc(day + DAY, 2))
        status, _, pub = public_sale(h, t, sid)
        assert pub["state"] == "not_started" and pub["opens_at"] == utc(day + DAY, 2), pub
        advance(h, t, to=utc(day + DAY, 2))
        buy_ok(h, t, sid, "s3")
        # after the last slot that begins before ends_at, the sale has ended
        advance(h, t, to=utc(day + 2 * DAY, 4))
        refused(h, t, sid, "s4", "ended")
        check_accounting(h, t, sid, "slot-1", 10)

        # a zone west of UTC (Sao Paulo, UTC-3 all year): 10:00-12:00 there is 13:00-15:00 UTC
        br = tb
        add_sku(h, br, "slot-2", stock=10)
        sid = new_sale(h, br, "slot-2", quantity=5, starts_at=day - DAY, ends_at=day + 3 * DAY,
                       slots=["10:00-12:00"])["id"]
        advance(h, br, to=utc(day, 1))                 # 22:00 of the day before, local
        body = refused(h, br, sid, "b1", "not_started")
        assert body["error"]["details"]["opens_at"] == utc(day, 13), (body, utc(day, 13))
        advance(h, br, to=utc(day, 12, 59, 59))
        body = refused(h, br, sid, "b1", "not_started")
        assert body["error"]["details"]["opens_at"] == utc(day, 13), (body, utc(day, 13))
        advance(h, br, to=utc(day, 13))
        buy_ok(h, br, sid, "b1")
        advance(h, br, to=utc(day, 15))
        body = refused(h, br, sid, "b2", "not_started")
        assert body["error"]["details"]["opens_at"] == utc(day + DAY, 13), (body, utc(day + DAY, 13))


# ---- 5. limits

def test_per_order_and_per_user_limits_and_sold_out_take_nothing():
    h, t = host(), T_LIM
    add_sku(h, t, "lim-1", stock=50)
    sid = new_sale(h, t, "lim-1", quantity=5, per_user_limit=3, per_order_limit=2)["id"]

    body = refused(h, t, sid, "u1", "order_limit_exceeded", qty=3)
    assert body["error"]["details"]["per_order_limit"] == 2, body
    expect_error(buy(h, t, sid, "u1", qty=0), 400, "invalid_field")
    s = check_accounting(h, t, sid, "lim-1", 50)
    assert s["remaining"] == 5, s

    assert units(buy_ok(h, t, sid, "u1", qty=2)) == 2
    body = refused(h, t, sid, "u1", "limit_reached", qty=2)      # 2 + 2 > 3
    assert body["error"]["details"]["per_user_limit"] == 3, body
    assert units(buy_ok(h, t, sid, "u1", qty=1)) == 1            # 3 in all
    refused(h, t, sid, "u1", "limit_reached", qty=1)
    s = check_accounting(h, t, sid, "lim-1", 50)
    assert s["remaining"] == 2, s

    buy_ok(h, t, sid, "u2", qty=1)
    s = check_accounting(h, t, sid, "lim-1", 50)
    assert s["remaining"] == 1, s
    # more than remain: sold out, and nothing taken (neither units nor u3's count:
    # a second try would be limit_reached if the first had counted 2 of u3's 3)
    n_orders = len(all_orders(h, t)[0])
    refused(h, t, sid, "u3", "sold_out", qty=2)
    refused(h, t, sid, "u3", "sold_out", qty=2)
    s = check_accounting(h, t, sid, "lim-1", 50)
    assert s["remaining"] == 1 and len(all_orders(h, t)[0]) == n_orders, s
    buy_ok(h, t, sid, "u3", qty=1)

    # the cheap path: remaining 0 answers sold_out and writes nothing
    before = check_accounting(h, t, sid, "lim-1", 50)
    assert before["remaining"] == 0 and before["sold"] == 5, before
    stock = sku_stock(h, t, "lim-1")
    advance(h, t, seconds=7)                       # any write would carry a later updated_at
    for u in ("u4", "u5", "u1"):
        refused(h, t, sid, u, "sold_out")
    after = admin_sale(h, t, sid)
    assert (after["remaining"], after["updated_at"]) == (0, before["updated_at"]), (before, after)
    assert sku_stock(h, t, "lim-1") == stock and len(all_orders(h, t)[0]) == n_orders + 1
    check_accounting(h, t, sid, "lim-1", 50)


def test_a_buy_refused_by_orders_or_the_catalog_keeps_its_answer_and_takes_nothing():
    """The order is created by the orders plugin inside the buy: whatever it
    refuses comes back with its own status and code, and the sale's units, the
    user's count and the catalog's stock are as before."""
    h, t = host(), T_FAIL
    add_sku(h, t, "fa-1", stock=40)
    sid = new_sale(h, t, "fa-1", quantity=20, per_user_limit=6)["id"]

    def unchanged():
        return check_accounting(h, t, sid, "fa-1", 40)["remaining"]

    expect_error(buy(h, t, sid, "f1", key="k" * 129), 400, "invalid_idempotency_key")
    assert unchanged() == 20

    # orders.max_unpaid_orders is 5: the sixth unpaid order is refused by orders
    mine = [buy_ok(h, t, sid, "f2") for _ in range(5)]
    expect_error(buy(h, t, sid, "f2"), 409, "too_many_unpaid_orders")
    assert unchanged() == 15
    assert simulate_payment(h, t, mine[0]["id"]) == "paid"
    buy_ok(h, t, sid, "f2")          # the refused buy did not count: 6 of 6, not 7
    refused(h, t, sid, "f2", "limit_reached")
    assert unchanged() == 14

    # the product taken off sale in the catalog
    status, _, product = h.get("/v1/%s/catalog/skus/fa-1" % t["id"])
    pid = product["product_id"]
    assert h.admin("PATCH", "/catalog/products/%d" % pid, t, {"status": "off_sale"})[0] == 200
    expect_error(buy(h, t, sid, "f3"), 409, "not_on_sale")
    assert admin_sale(h, t, sid)["remaining"] == 14
    assert h.admin("PATCH", "/catalog/products/%d" % pid, t, {"status": "on_sale"})[0] == 200
    assert unchanged() == 14     # (the public SKU read needs the product on sale)

    # the catalog runs out while the sale has units: sold out, nothing taken
    left = sku_stock(h, t, "fa-1")
    assert h.admin("POST", "/catalog/skus/fa-1/stock", t, {"delta": -left})[0] == 200
    refused(h, t, sid, "f3", "sold_out")
    s = admin_sale(h, t, sid)
    assert s["remaining"] == 14 and sku_stock(h, t, "fa-1") == 0, s
    assert h.admin("POST", "/catalog/skus/fa-1/stock", t, {"delta": left})[0] == 200
    buy_ok(h, t, sid, "f3")          # f3's count was not taken by the refusals
    assert unchanged() == 13


def test_a_flash_price_is_never_above_the_current_list_price():
    """Creation refuses a sale price above the list price. When the catalog
    lowers the list price below the sale price afterwards, a buy must not
    charge more than the list price (refusing the buy would do too)."""
    h, t = host(), T_PRICE
    product = add_sku(h, t, "pr-1", stock=10, price_fen=PRICE)
    sid = new_sale(h, t, "pr-1", price_fen=SALE_PRICE, quantity=5)["id"]
    status, _, sku = h.admin("PUT", "/catalog/skus/pr-1", t, {
        "product_id": product["id"], "title": "cheaper now", "price_fen": 990, "stock": 10})
    assert status == 200 and sku["price_fen"] == 990, sku
    status, _, body = buy(h, t, sid, "pr")
    if status == 201:
        line = body["lines"][0]
        assert line["unit_price_fen"] <= line["list_price_fen"], \
            ("the flash sale charged more than the list price", line)
    else:
        assert status == 409, (status, body)


def test_patch_cannot_promise_more_units_than_the_catalog_has():
    """Creation refuses a quantity above the catalog's stock (409
    insufficient_stock). A PATCH that raises the quantity must hold to the same
    rule for the units the sale would then have left, not only for the units
    added on top of those already promised."""
    h, t = host(), T_PRICE
    add_sku(h, t, "pr-2", stock=10)
    sid = new_sale(h, t, "pr-2", quantity=10)["id"]
    expect_error(create_sale(h, t, sale_fields(h, t, "pr-2", quantity=20, starts_at=now(h, t) + 2 * DAY,
                                               ends_at=now(h, t) + 3 * DAY)),
                 409, "insufficient_stock")
    status, _, body = h.admin("PATCH", "/flash-sales/%d" % sid, t, {"quantity": 20})
    assert status == 409 and error_code(body) == "insufficient_stock", \
        ("PATCH gave the sale 20 units left on a catalog stock of 10", status, body)


# ---- 6. operators

def test_sale_creation_is_validated_one_rule_at_a_time():
    h, t = host(), T_VALID
    add_sku(h, t, "val-1", stock=100)

    def bad(want, code, field=None, **fields):
        body = expect_error(create_sale(h, t, sale_fields(h, t, "val-1", **fields)), want, code)
        if field:
            assert body["error"]["details"]["field"] == field, (fields, body)
        return body

    n = now(h, t)
    expect_error(create_sale(h, t, sale_fields(h, t, "no-such-sku")), 400, "sku_not_found")
    bad(400, "invalid_field", "price_fen", price_fen=PRICE + 1)
    body = bad(409, "insufficient_stock", quantity=101)
    assert body["error"]["details"]["stock"] == 100, body
    bad(400, "invalid_field", "ends_at", starts_at=n + 100, ends_at=n + 50)
    bad(400, "invalid_field", "ends_at", starts_at=n + 100, ends_at=n + 100)
    bad(400, "invalid_field", "per_order_limit", per_user_limit=2, per_order_limit=3)
    for slot in ("10:00-9:00", "25:00-26:00", "10:60-11:00", "12:00-10:00", "10:00-10:00",
                 "10:00-24:01", "10-12", "", 1000):
        bad(400, "invalid_field", "slots[1]", slots=[slot])
    bad(400, "invalid_field", "slots[2]", slots=["10:00-12:00", "11:59-13:00"])
    bad(400, "invalid_field", "slots[2]", slots=["20:00-21:00", "08:00-22:00"])
    bad(400, "invalid_field", "slots", slots="10:00-12:00")
    bad(400, "invalid_field", "quantity", quantity=0)
    bad(400, "invalid_field", "price_fen", price_fen=0)
    bad(400, "invalid_field", "unpaid_timeout_seconds", unpaid_timeout_seconds=10)
    bad(400, "invalid_field", "status", status="paused")
    status, _, listing = h.admin("GET", "/flash-sales", t)
    assert status == 200 and listing["items"] == [], ("a refused sale was saved", listing)

    # the valid edges pass: adjacent slots, 24:00, price = list price, quantity = stock
    ok = new_sale(h, t, "val-1", price_fen=PRICE, quantity=100, per_user_limit=2,
                  per_order_limit=2, slots=["10:00-12:00", "12:00-13:00", "23:00-24:00"])
    assert ok["slots"] == ["10:00-12:00", "12:00-13:00", "23:00-24:00"], ok
    assert (ok["remaining"], ok["sold"], ok["status"]) == (100, 0, "active"), ok


def test_a_second_sale_of_a_sku_may_not_overlap_in_time():
    h, t = host(), T_OVER
    add_sku(h, t, "ov-1", stock=100)
    add_sku(h, t, "ov-2", stock=100)
    n = now(h, t)
    first = new_sale(h, t, "ov-1", starts_at=n + 1000, ends_at=n + 2000)
    body = expect_error(create_sale(h, t, sale_fields(h, t, "ov-1", starts_at=n + 1999,
                                                      ends_at=n + 3000)), 409, "sale_overlap")
    assert body["error"]["details"]["sale_id"] == first["id"], body
    expect_error(create_sale(h, t, sale_fields(h, t, "ov-1", starts_at=n, ends_at=n + 1001)),
                 409, "sale_overlap")
    expect_error(create_sale(h, t, sale_fields(h, t, "ov-1", starts_at=n + 1200, ends_at=n + 1300)),
                 409, "sale_overlap")
    after = new_sale(h, t, "ov-1", starts_at=n + 2000, ends_at=n + 3000)     # touching, not overlapping
    before = new_sale(h, t, "ov-1", starts_at=n, ends_at=n + 1000)
    other = new_sale(h, t, "ov-2", starts_at=n + 1000, ends_at=n + 2000)     # another SKU
    disabled = new_sale(h, t, "ov-1", starts_at=n + 1500, ends_at=n + 2500, status="disabled")
    assert len({first["id"], after["id"], before["id"], other["id"], disabled["id"]}) == 5
    # moving a sale onto another one is refused too
    expect_error(h.admin("PATCH", "/flash-sales/%d" % after["id"], t, {"starts_at": n + 1500}),
                 409, "sale_overlap")
    expect_error(h.admin("PATCH", "/flash-sales/%d" % disabled["id"], t, {"status": "active"}),
                 409, "sale_overlap")


def test_patch_changes_price_and_quantity_and_disabling_hides_the_sale():
    h, t = host(), T_PATCH
    add_sku(h, t, "pa-1", stock=30)
    sid = new_sale(h, t, "pa-1", quantity=10, per_user_limit=5, per_order_limit=5)["id"]
    assert units(buy_ok(h, t, sid, "p1", qty=4)) == 4

    status, _, s = h.admin("PATCH", "/flash-sales/%d" % sid, t, {"price_fen": 2990})
    assert status == 200 and s["price_fen"] == 2990 and s["remaining"] == 6, (status, s)
    o = buy_ok(h, t, sid, "p2")
    assert o["lines"][0]["unit_price_fen"] == 2990 and o["total_fen"] == 2990, o
    expect_error(h.admin("PATCH", "/flash-sales/%d" % sid, t, {"price_fen": PRICE + 1}),
                 400, "invalid_field")
    expect_error(h.admin("PATCH", "/flash-sales/%d" % sid, t, {"sku": "pa-2"}), 400, "invalid_field")

    # quantity: grows (within the catalog), shrinks down to what is sold, never below
    status, _, s = h.admin("PATCH", "/flash-sales/%d" % sid, t, {"quantity": 20})
    assert status == 200 and (s["quantity"], s["sold"], s["remaining"]) == (20, 5, 15), s
    body = expect_error(h.admin("PATCH", "/flash-sales/%d" % sid, t, {"quantity": 4}),
                        409, "quantity_below_sold")
    assert body["error"]["details"]["sold"] == 5, body
    status, _, s = h.admin("PATCH", "/flash-sales/%d" % sid, t, {"quantity": 5})
    assert status == 200 and (s["quantity"], s["sold"], s["remaining"]) == (5, 5, 0), s
    refused(h, t, sid, "p3", "sold_out")
    status, _, s = h.admin("PATCH", "/flash-sales/%d" % sid, t, {"quantity": 8})
    assert status == 200 and s["remaining"] == 3, s
    check_accounting(h, t, sid, "pa-1", 30)

    # the public view: state, opens_at, remaining; the admin view: sold too
    status, _, pub = public_sale(h, t, sid)
    assert status == 200 and pub["state"] == "open" and pub["remaining"] == 3, pub
    status, _, listing = h.get("/v1/%s/flash-sales" % t["id"])
    mine = [x for x in listing["items"] if x["id"] == sid]
    assert mine and mine[0]["state"] == "open" and mine[0]["remaining"] == 3, listing
    a = admin_sale(h, t, sid)
    assert (a["sold"], a["quantity"], a["status"], a["state"]) == (5, 8, "active", "open"), a
    status, _, admin_list = h.admin("GET", "/flash-sales", t)
    assert [x["sold"] for x in admin_list["items"] if x["id"] == sid] == [5], admin_list

    # later: a future window shows not_started with opens_at
    n = now(h, t)
    status, _, s = h.admin("PATCH", "/flash-sales/%d" % sid, t, {"starts_at": n + 600})
    assert status == 200 and s["state"] == "not_started" and s["opens_at"] == n + 600, s
    status, _, pub = public_sale(h, t, sid)
    assert pub["state"] == "not_started" and pub["opens_at"] == n + 600, pub
    status, _, s = h.admin("PATCH", "/flash-sales/%d" % sid, t, {"starts_at": n - 60})
    assert s["state"] == "open", s

    # disabled: buys and public reads say sale_not_found; the operator still sees it
    status, _, s = h.admin("PATCH", "/flash-sales/%d" % sid, t, {"status": "disabled"})
    assert status == 200 and s["status"] == "disabled" and s["state"] == "disabled", s
    refused(h, t, sid, "p4", "sale_not_found", status=404)
    expect_error(public_sale(h, t, sid), 404, "sale_not_found")
    status, _, listing = h.get("/v1/%s/flash-sales" % t["id"])
    assert sid not in [x["id"] for x in listing["items"]], listing
    assert admin_sale(h, t, sid)["sold"] == 5
    status, _, s = h.admin("PATCH", "/flash-sales/%d" % sid, t, {"status": "active"})
    assert status == 200 and s["state"] == "open", s
    buy_ok(h, t, sid, "p4")
    check_accounting(h, t, sid, "pa-1", 30)
    expect_error(h.admin("PATCH", "/flash-sales/999", t, {"price_fen": 100}), 404, "sale_not_found")
    expect_error(h.admin("GET", "/flash-sales/999", t), 404, "sale_not_found")


# ---- 7. Idempotency-Key

def test_the_same_idempotency_key_replays_the_same_order():
    h, t = host(), T_IDEM
    add_sku(h, t, "id-1", stock=20)
    sid = new_sale(h, t, "id-1", quantity=10, per_user_limit=2, per_order_limit=2)["id"]
    first = buy_ok(h, t, sid, "k1", key="buy-0001")
    status, _, again = buy(h, t, sid, "k1", key="buy-0001")
    assert status == 200, (status, again)
    assert again["id"] == first["id"] and units(again) == 1, again
    s = check_accounting(h, t, sid, "id-1", 20)
    assert s["sold"] == 1 and len(orders_of_sale(h, t, sid)) == 1, s
    # the same key for another sale is not a retry
    add_sku(h, t, "id-1b", stock=5)
    other_sale = new_sale(h, t, "id-1b", quantity=5)["id"]
    expect_error(buy(h, t, other_sale, "k1", key="buy-0001"), 409, "idempotency_key_reused")
    assert admin_sale(h, t, other_sale)["remaining"] == 5
    # the key is the user's: another user with the same key gets an order of its own
    other = buy_ok(h, t, sid, "k2", key="buy-0001")
    assert other["id"] != first["id"]
    # a new key is a new order
    assert buy_ok(h, t, sid, "k1", key="buy-0002")["id"] != first["id"]
    s = check_accounting(h, t, sid, "id-1", 20)
    assert s["sold"] == 3, s


def race_with_one_key(h, t, sid, user, key, n=10):
    """n buys with one Idempotency-Key on n keep-alive connections, released
    together by a barrier; returns [(status, body)]."""
    headers = dict(auth(t, user), **{"Idempotency-Key": key, "Content-Type": "application/json"})
    path = "/v1/%s/flash-sales/%d/buy" % (t["id"], sid)
    results, errors = [], []
    lock = threading.Lock()
    conns = []
    for _ in range(n):
        c = http.client.HTTPConnection("127.0.0.1", h.port, timeout=30)
        c.request("GET", "/healthz")
        c.getresponse().read()                     # connected and kept alive before the start
        conns.append(c)
    start = threading.Barrier(n)

    def client(c):
        try:
            start.wait()
            c.request("POST", path, body=b"{}", headers=headers)
            r = c.getresponse()
            out = (r.status, json.loads(r.read()))
            with lock:
                results.append(out)
        except Exception as e:  # reported below
            with lock:
                errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(c,)) for c in conns]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    for c in conns:
        c.close()
    assert not errors, errors
    return results


def test_ten_concurrent_buys_with_one_key_make_one_order():
    h, t = host(), T_IDEM
    for sku, quantity in (("id-2", 10), ("id-2b", 1)):     # plenty of units, and the last one
        add_sku(h, t, sku, stock=20)
        sid = new_sale(h, t, sku, quantity=quantity, per_user_limit=1)["id"]
        results = race_with_one_key(h, t, sid, "racer-%d" % quantity, "race-key-%d" % quantity)
        statuses = sorted(st for st, _ in results)
        assert statuses == [200] * 9 + [201], (quantity, results)
        assert len({b["id"] for _, b in results}) == 1, results
        orders = orders_of_sale(h, t, sid)
        assert [o["id"] for o in orders] == [results[0][1]["id"]], orders
        s = check_accounting(h, t, sid, sku, 20)
        assert (s["sold"], s["remaining"]) == (1, quantity - 1), s


def test_a_replay_after_the_buy_took_the_last_unit_returns_the_order():
    """A client that lost the 201 of the buy that took the last unit retries with
    the same key: it must get its order back (200), not sold_out."""
    h, t = host(), T_IDEM2
    add_sku(h, t, "id-3", stock=5)
    sid = new_sale(h, t, "id-3", quantity=1, per_user_limit=1)["id"]
    first = buy_ok(h, t, sid, "last", key="last-unit-1")
    status, _, again = buy(h, t, sid, "last", key="last-unit-1")
    assert status == 200 and again.get("id") == first["id"], \
        ("the retried buy with the same Idempotency-Key did not return the order", status, again)


def test_a_key_reused_for_a_different_quantity_is_refused():
    """orders refuses a reused key with a different request (the fingerprint):
    a flash-sale buy with the same key but another qty is not a retry."""
    h, t = host(), T_IDEM2
    add_sku(h, t, "id-4", stock=20)
    sid = new_sale(h, t, "id-4", quantity=10, per_user_limit=3, per_order_limit=3)["id"]
    first = buy_ok(h, t, sid, "fp", qty=1, key="fp-key-1")
    status, _, again = buy(h, t, sid, "fp", qty=3, key="fp-key-1")
    assert status == 409 and error_code(again) == "idempotency_key_reused", \
        ("a different qty under the same key was answered with the old order",
         status, again, first["id"])


def teardown():
    if H is not None:
        H.stop()


if __name__ == "__main__":
    run(globals())
