"""
test_presale.py - presale (预售) through the real host over HTTP, on the test clock.

1. A deposit presale (定金膨胀: ¥50 worth ¥100) from the deposit to the balance:
   windows given as the brand's wall clock, the balance refused before its
   window, taken in it, the order's money exact (deposit + balance = total,
   the lines summing to it), a refund drawn from both payments exactly.
2. A balance never paid: at the window's close the order is cancelled, the
   deposit forfeited (the default rule), the units back in the catalog.
3. Thirty buyers racing over HTTP for the last five units: five deposits, not
   one unit oversold, the catalog down by exactly those.
4. Hostile input to the buy and the admin routes: a clear 4xx each, and
   nothing changes.
5. Upgrading orders from 1.7.0 (the table rebuilt by the 1.8.0 migration):
   every order and its number kept, the next order numbered after them.
"""
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Host, manual_tenant, tenant, advance, clock, add_sku, sku_stock,  # noqa: E402
                     user_auth, expect_error, read_db, run, old_plugin, host_with_old)

SECRET = "presale-e2e-payment-secret-0123456"
T = manual_tenant("pre", {"catalog": {}, "orders": {"max_unpaid_orders": 5},
                          "payments": {"secret": SECRET}, "fulfilment": {}, "presale": {}})
H = None
DAY = 86400
PRICE, DEPOSIT, WORTH = 25900, 5000, 10000
_codes = iter(range(1, 1000))


def host():
    global H
    if H is None:
        H = Host(tenants=[T], name="presale").start()
    return H


def teardown():
    if H is not None:
        H.stop()


def now(h):
    return clock(h, T)["now_ms"] // 1000


def new_sku(h, stock=20, price_fen=29900):
    code = "pre-%d" % next(_codes)
    add_sku(h, T, code, stock, price_fen)
    return code


def local(h, epoch):
    """epoch as 'YYYY-MM-DD HH:MM' in Asia/Shanghai (UTC+8, no DST)."""
    import time
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(epoch + 8 * 3600))


def new_presale(h, sku, **fields):
    t0 = now(h) // 60 * 60
    body = {"sku": sku, "kind": "deposit", "price_fen": PRICE, "deposit_fen": DEPOSIT,
            "deposit_worth_fen": WORTH, "quantity": 5, "per_user_limit": 2, "per_order_limit": 2,
            "starts_local": local(h, t0 - 60), "ends_local": local(h, t0 + DAY),
            "balance_starts_local": local(h, t0 + DAY), "balance_ends_local": local(h, t0 + 2 * DAY)}
    body.update(fields)
    st, _, p = h.admin("POST", "/presales", T, body)
    assert st == 201, (st, p)
    return p


def buy(h, pid, user, qty=1):
    return h.post("/v1/pre/presales/%d/buy" % pid, {"qty": qty}, headers=user_auth(T, user))


def pay(h, oid, **extra):
    body = {"order_id": oid}
    body.update(extra)
    return h.admin("POST", "/payments/simulate", T, body)


def order(h, oid):
    st, _, o = h.admin("GET", "/orders/%d" % oid, T)
    assert st == 200, (st, o)
    return o


def test_deposit_then_balance_exact_to_the_fen():
    h = host()
    sku = new_sku(h)
    p = new_presale(h, sku)
    assert p["state"] == "deposit_open" and p["balance_fen"] == PRICE - WORTH, p
    assert p["window_local"]["timezone"] == "Asia/Shanghai", p
    st, _, o = buy(h, p["id"], "ann", 2)
    assert st == 201, (st, o)
    assert o["deposit"]["deposit_fen"] == 2 * DEPOSIT and o["deposit"]["balance_fen"] == 2 * (PRICE - WORTH), o
    assert o["total_fen"] == o["deposit"]["deposit_fen"] + o["deposit"]["balance_fen"], o
    assert sum(l["paid_fen"] for l in o["lines"]) == o["total_fen"], o
    assert sku_stock(h, T, sku) == 18
    st, _, r = pay(h, o["id"])
    assert st == 200 and r["result"]["outcome"] == "deposit_paid", (st, r)
    assert order(h, o["id"])["status"] == "awaiting_balance"
    auth = user_auth(T, "ann")
    body = expect_error(h.post("/v1/pre/payments/prepay", {"order_id": o["id"]}, headers=auth), 409, "balance_not_open")
    assert body["error"]["details"]["opens_at"] == p["balance_starts_at"], body
    advance(h, T, to=p["balance_starts_at"])
    st, _, pre = h.post("/v1/pre/payments/prepay", {"order_id": o["id"]}, headers=auth)
    assert st == 200 and pre["stage"] == 2 and pre["total_fen"] == 2 * (PRICE - WORTH), (st, pre)
    assert pre["out_trade_no"] == "tp%08d_2" % o["id"], pre
    st, _, r = pay(h, o["id"])
    assert st == 200 and r["result"]["outcome"] == "paid", (st, r)
    o = order(h, o["id"])
    assert o["status"] == "paid" and o["paid_fen"] == o["total_fen"] == 2 * (PRICE - WORTH + DEPOSIT), o
    # a refund larger than the balance's payment comes from both, one number each
    st, _, rf = h.admin("POST", "/orders/%d/refund" % o["id"], T, {"amount_fen": o["deposit"]["balance_fen"] + 1})
    assert st == 202 and len(rf["refund"]["parts"]) == 2, (st, rf)
    advance(h, T, seconds=1)
    rows = read_db(h, "pre", "SELECT transaction_id, amount_fen FROM payments_refunds WHERE order_id = ? ORDER BY id",
                   o["id"])
    assert rows == [(o["deposit"]["balance_transaction_id"], o["deposit"]["balance_fen"]),
                    (o["transaction_id"], 1)], rows


def test_a_balance_never_paid_forfeits_the_deposit_and_returns_the_units():
    h = host()
    sku = new_sku(h)
    p = new_presale(h, sku)
    st, _, o = buy(h, p["id"], "bo", 1)
    assert st == 201, (st, o)
    pay(h, o["id"])
    assert sku_stock(h, T, sku) == 19
    advance(h, T, to=p["balance_ends_at"])
    o = order(h, o["id"])
    assert (o["status"], o["cancel_reason"], o["forfeited_fen"], o["refunded_fen"]) == \
        ("cancelled", "balance_unpaid", DEPOSIT, 0), o
    assert sku_stock(h, T, sku) == 20
    st, _, got = h.admin("GET", "/presales/%d" % p["id"], T)
    assert got["remaining"] == 5 and got["state"] == "ended", got


def test_thirty_buyers_racing_for_five_units_oversell_nothing():
    h = host()
    sku = new_sku(h, stock=5)
    p = new_presale(h, sku, quantity=5, per_user_limit=1, per_order_limit=1)
    results = [None] * 30
    barrier = threading.Barrier(30)

    def client(i):
        barrier.wait()
        results[i] = buy(h, p["id"], "racer%d" % i)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [r for r in results if r[0] == 201]
    assert len(won) == 5, [r[0] for r in results]
    for r in results:
        if r[0] != 201:
            assert r[0] == 409 and r[2]["error"]["code"] == "sold_out", r
    assert sku_stock(h, T, sku) == 0
    rows = read_db(h, "pre", "SELECT count(*) FROM orders_orders WHERE campaign_plugin = 'presale' AND campaign_id = ?",
                   str(p["id"]))
    assert rows == [(5,)], rows


def test_hostile_input_changes_nothing():
    h = host()
    sku = new_sku(h)
    p = new_presale(h, sku)
    auth = user_auth(T, "eve")
    bad_buys = [({"qty": 0}, 400), ({"qty": -1}, 400), ({"qty": 10 ** 30}, 400), ({"qty": "1"}, 400),
                ({"qty": 1.5}, 400), ({"qty": None}, 400), ({"qty": 1, "unit_price_fen": 1}, 400), ([1], 400)]
    for body, status in bad_buys:
        st, _, b = h.post("/v1/pre/presales/%d/buy" % p["id"], body, headers=auth)
        assert st == status and "error" in b, (body, st, b)
    st, _, b = h.request("POST", "/v1/pre/presales/%d/buy" % p["id"], b"{not json", headers=dict(auth, **{
        "Content-Type": "application/json"}))
    assert st == 400, (st, b)
    assert h.post("/v1/pre/presales/abc/buy", {}, headers=auth)[0] == 400
    assert h.post("/v1/pre/presales/99999999999999999999/buy", {}, headers=auth)[0] in (400, 404)
    assert h.post("/v1/pre/presales/%d/buy" % p["id"], {})[0] == 401
    bad_admin = [{"kind": "deposit"}, {"sku": sku, "kind": "deposit", "price_fen": 2 ** 62, "quantity": 1},
                 {"sku": "../../etc", "kind": "full", "price_fen": 1, "quantity": 1},
                 {"sku": sku, "kind": "deposit", "price_fen": 100, "deposit_fen": 50, "deposit_worth_fen": 100,
                  "quantity": 1, "starts_at": 1, "ends_at": 2, "balance_starts_at": 2, "balance_ends_at": 3},
                 {"sku": sku, "kind": "full", "price_fen": 100, "quantity": 1, "starts_local": "x" * 5000}]
    for body in bad_admin:
        st, _, b = h.admin("POST", "/presales", T, body)
        assert st == 400 and "error" in b, (body, st, b)
    assert read_db(h, "pre", "SELECT count(*) FROM orders_orders WHERE user = 'eve'") == [(0,)]
    st, _, got = h.admin("GET", "/presales/%d" % p["id"], T)
    assert got["remaining"] == 5, got


def upgrade_orders_from(version):
    """Orders at `version` (from git) with a paid, a cancelled and an unpaid order,
    then today's: every order and its number survive, the next order is numbered
    after them, and the table ends with today's indexes. Returns the indexes, or
    None without the git history."""
    with old_plugin("orders", version) as old:
        if old is None:
            return None
        up = tenant("up", plugins={"catalog": {}, "orders": {}, "payments": {"secret": SECRET}})
        h = host_with_old([up], "orders-upgrade-" + version, [old])
        columns = "id, user, status, total_fen, paid_fen, transaction_id"
        try:
            add_sku(h, up, "up-1", 10, 1000)
            ids = []
            for user in ("a", "b", "c"):
                st, _, o = h.post("/v1/up/orders", {"lines": [{"sku": "up-1", "qty": 1}]}, headers=user_auth(up, user))
                assert st == 201, (st, o)
                ids.append(o["id"])
            assert h.admin("POST", "/payments/simulate", up, {"order_id": ids[0]})[0] == 200
            assert h.admin("POST", "/orders/%d/cancel" % ids[1], up)[0] == 200
            before = read_db(h, "up", "SELECT %s FROM orders_orders ORDER BY id" % columns)
            assert before[0][5], before  # the paid order has its transaction id
        finally:
            h.stop()
        h.upgrade()
        try:
            st, _, plugins = h.admin("GET", "/plugins", up)
            assert st == 200, (st, plugins)
            after = read_db(h, "up", "SELECT %s FROM orders_orders ORDER BY id" % columns)
            assert after == before, (before, after)
            st, _, o = h.post("/v1/up/orders", {"lines": [{"sku": "up-1", "qty": 1}]}, headers=user_auth(up, "d"))
            assert st == 201 and o["id"] == ids[-1] + 1, (st, o)
            return read_db(h, "up", "SELECT name, sql FROM sqlite_schema WHERE type = 'index' "
                                    "AND tbl_name = 'orders_orders' ORDER BY name")
        finally:
            h.stop()

TODAYS_INDEXES = ["orders_orders_balance_transaction", "orders_orders_transaction", "orders_orders_unpaid",
                  "orders_orders_user"]


def test_orders_upgrade_from_1_7_0_keeps_every_order_and_its_number():
    indexes = upgrade_orders_from("1.7.0")
    assert indexes is None or [n for n, _ in indexes] == TODAYS_INDEXES, indexes


def test_orders_upgrade_from_1_8_1_makes_the_transaction_ids_unique_by_partial_indexes():
    """1.9.0: no UNIQUE column (whose autoindex holds every NULL) is left; the
    transaction ids are unique where they are set."""
    indexes = upgrade_orders_from("1.8.1")
    if indexes is None:
        return
    assert [n for n, _ in indexes] == TODAYS_INDEXES, indexes
    for name, sql in indexes[:2]:
        assert "UNIQUE" in sql and "IS NOT NULL" in sql, (name, sql)

if __name__ == "__main__":
    run(globals())
