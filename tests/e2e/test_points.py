"""
test_points.py - points (积分) and sign-in (签到) on the real host, over HTTP.

- Checkout with points: an order pays part in points after its coupon-free
  list price, capped by the brand's rate and cap; the order's total and lines
  add up; paying it earns points; a cancel gives the spent points back; a
  refund returns spent points and claws back earned ones.
- 30 concurrent clients spend against one balance (checkouts and mall
  exchanges mixed, released together by a barrier): the balance is never
  overspent, exactly as many succeed as it covers, the rest are refused with
  409 insufficient_points, and the ledger, the lots and the balance agree.
- A points-mall exchange whose SKU has no unit left rolls back whole: the
  points, the item's stock and the catalog are as before.
- Sign-in once per local day, and its event's effect (points) on the ledger.
"""
import os
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Host, manual_tenant, advance, add_sku, sku_stock, user_auth,  # noqa: E402
                     expect_error, read_db, run, lua, tenant, BIN, SRC)

SECRET = "points-e2e-payment-secret-0123456789"
POINTS = {"earn": {"points": 1, "per_fen": 100},
          "redeem": {"points_per_fen": 1, "max_percent": 50}}

T = manual_tenant("pts", {"catalog": {}, "orders": {"max_unpaid_orders": 50}, "payments": {"secret": SECRET},
                          "points": POINTS, "signin": {"daily": 5}})

H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[T], name="points").start()
    return H


def v1(path):
    return "/v1/%s%s" % (T["id"], path)


def give(h, user, n):
    status, _, body = h.admin("POST", "/points/accounts/%s/adjust" % user, T, {"points": n, "reason": "e2e"})
    assert status == 201, (status, body)


def balance(h, user):
    status, _, body = h.get(v1("/points/me"), headers=user_auth(T, user))
    assert status == 200, (status, body)
    return body["balance"]


def ledger_agrees(h, user):
    """The cached balance, the sum of the entries and the open lots agree."""
    (cached,), = read_db(h, T["id"], "SELECT balance FROM points_accounts WHERE user = ?", user)
    (entries,), = read_db(h, T["id"], "SELECT sum(points) FROM points_entries WHERE user = ?", user)
    (lots,), = read_db(h, T["id"], "SELECT coalesce(sum(remaining), 0) FROM points_lots WHERE user = ?", user)
    assert cached == entries == max(lots, 0) or (cached == entries and cached < 0 and lots == 0), \
        (cached, entries, lots)
    return cached


def pay(h, order_id):
    status, _, body = h.admin("POST", "/payments/simulate", T, {"order_id": order_id})
    assert status == 200, (status, body)


def test_checkout_with_points_cancel_and_refund():
    h = host()
    add_sku(h, T, "pts-tea", 10, price_fen=10000)
    give(h, "ann", 8000)
    status, _, o = h.post(v1("/orders"), {"lines": [{"sku": "pts-tea", "qty": 1}], "points": 8000},
                          headers=user_auth(T, "ann"))
    assert status == 201, (status, o)
    # capped at 50 % of the order: 5000 points pay 5000 fen
    assert (o["points"], o["points_fen"], o["discount_fen"], o["total_fen"]) == (5000, 5000, 5000, 5000), o
    assert sum(l["paid_fen"] for l in o["lines"]) == o["total_fen"]
    assert balance(h, "ann") == 3000
    # a cancel gives them back
    status, _, _ = h.post(v1("/orders/%d/cancel" % o["id"]), headers=user_auth(T, "ann"))
    assert status == 200
    assert balance(h, "ann") == 8000
    # again, paid: earns 1 point per ¥1 of the 5000 fen paid
    status, _, o = h.post(v1("/orders"), {"lines": [{"sku": "pts-tea", "qty": 1}], "points": 5000},
                          headers=user_auth(T, "ann"))
    assert status == 201, o
    pay(h, o["id"])
    advance(h, T, seconds=1)
    assert balance(h, "ann") == 3000 + 50
    # a full refund: the 5000 spent come back, the 50 earned go
    status, _, body = h.admin("POST", "/orders/%d/refund" % o["id"], T, {})
    assert status == 202, body
    advance(h, T, seconds=1)
    advance(h, T, seconds=1)
    assert balance(h, "ann") == 8000
    assert ledger_agrees(h, "ann") == 8000


def test_thirty_concurrent_spends_never_overspend_one_balance():
    h = host()
    add_sku(h, T, "pts-cup", 1000, price_fen=1000)
    status, _, item = h.admin("POST", "/points/mall/items", T, {
        "kind": "sku", "sku": "pts-cup", "title": "cup", "points_price": 100, "stock": 100})
    assert status == 201, item
    give(h, "bo", 1050)
    n = 30
    barrier = threading.Barrier(n)
    results = [None] * n
    headers = user_auth(T, "bo")

    def worker(i):
        barrier.wait()
        try:
            if i % 3 == 0:   # a mall exchange for 100 points
                results[i] = h.post(v1("/points/mall/items/%d/exchange" % item["id"]), headers=headers)
            else:            # a checkout of 1000 fen paying 100 with points
                results[i] = h.post(v1("/orders"), {"lines": [{"sku": "pts-cup", "qty": 1}], "points": 100},
                                    headers=headers)
        except Exception as e:  # reported below
            results[i] = e

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    statuses = sorted(r[0] if isinstance(r, tuple) else repr(r) for r in results)
    assert statuses == [201] * 10 + [409] * 20, statuses
    for r in results:
        if r[0] == 409:
            assert r[2]["error"]["code"] == "insufficient_points", r
    assert balance(h, "bo") == 50
    assert ledger_agrees(h, "bo") == 50
    spent_orders = sum(r[2]["points"] for r in results if r[0] == 201 and "points" in r[2])
    exchanges = sum(1 for r in results if r[0] == 201 and "exchange" in r[2])
    assert spent_orders + 100 * exchanges == 1000, (spent_orders, exchanges)
    # every unit the refused requests would have taken is still in the catalog
    orders = sum(1 for r in results if r[0] == 201 and "points" in r[2])
    assert sku_stock(h, T, "pts-cup") == 1000 - orders - exchanges


def test_a_mall_exchange_rolls_back_whole_when_the_sku_is_gone():
    h = host()
    add_sku(h, T, "pts-pot", 1, price_fen=30000)
    status, _, item = h.admin("POST", "/points/mall/items", T, {
        "kind": "sku", "sku": "pts-pot", "title": "teapot", "points_price": 500, "stock": 5})
    assert status == 201, item
    give(h, "cy", 2000)
    status, _, body = h.post(v1("/points/mall/items/%d/exchange" % item["id"]), headers=user_auth(T, "cy"))
    assert status == 201, body
    assert sku_stock(h, T, "pts-pot") == 0
    before = (balance(h, "cy"), read_db(h, T["id"], "SELECT stock, exchanged FROM points_items WHERE id = ?",
                                        item["id"]))
    assert before[0] == 1500
    result = h.post(v1("/points/mall/items/%d/exchange" % item["id"]), headers=user_auth(T, "cy"))
    expect_error(result, 409, "out_of_stock")
    after = (balance(h, "cy"), read_db(h, T["id"], "SELECT stock, exchanged FROM points_items WHERE id = ?",
                                       item["id"]))
    assert after == before, (before, after)
    assert sku_stock(h, T, "pts-pot") == 0
    assert ledger_agrees(h, "cy") == 1500


def test_sign_in_once_a_day_credits_points():
    h = host()
    headers = user_auth(T, "dee")
    status, _, body = h.post(v1("/signin"), headers=headers)
    assert status == 201, body
    assert (body["streak"], body["points"], body["balance"]) == (1, 5, 5), body
    expect_error(h.post(v1("/signin"), headers=headers), 409, "already_signed_in")
    advance(h, T, seconds=86400)
    status, _, body = h.post(v1("/signin"), headers=headers)
    assert (status, body["streak"]) == (201, 2), body
    assert balance(h, "dee") == 10
    status, _, report = h.admin("GET", "/points/report?from=2020-01-01&to=2029-12-31", T)
    assert status == 200, report
    assert report["reconciles"] and report["outstanding"] == report["balances_total"], report


def test_malformed_and_hostile_input_is_a_json_error_that_changes_nothing():
    h = host()
    give(h, "eve", 100)
    ledger = lambda: read_db(h, T["id"], "SELECT count(*), coalesce(sum(points), 0) FROM points_entries")
    before = ledger()
    eve = user_auth(T, "eve")
    cases = [
        (h.post(v1("/orders"), {"lines": [{"sku": "pts-tea", "qty": 1}], "points": "100"}, headers=eve),
         400, "invalid_field"),
        (h.post(v1("/orders"), {"lines": [{"sku": "pts-tea", "qty": 1}], "points": -1}, headers=eve),
         400, "invalid_field"),
        (h.post(v1("/orders"), {"lines": [{"sku": "pts-tea", "qty": 1}], "points": 10 ** 6}, headers=eve),
         409, "insufficient_points"),
        (h.post(v1("/points/mall/items/999999/exchange"), headers=eve), 404, "item_not_found"),
        (h.get(v1("/points/me/entries?limit=abc"), headers=eve), 400, "invalid_query"),
        (h.post(v1("/signin/makeup"), [1, 2], headers=eve), 400, "invalid_body"),
        (h.post(v1("/signin/makeup"), {"day": "2026-13-01"}, headers=eve), 400, "invalid_field"),
        (h.post(v1("/signin/makeup"), {"day": "2026-01-01", "x": 1}, headers=eve), 400, "invalid_field"),
        (h.admin("POST", "/points/accounts/eve/adjust", T, {"points": 10}), 400, "invalid_field"),
        (h.admin("POST", "/points/accounts/eve/adjust", T, {"points": 1.5, "reason": "x"}), 400, "invalid_field"),
        (h.admin("POST", "/points/accounts/eve/adjust", T, {"points": -101, "reason": "x"}), 409,
         "insufficient_points"),
        (h.admin("POST", "/points/accounts/bad%20user/adjust", T, {"points": 1, "reason": "x"}), 400,
         "invalid_field"),
        (h.admin("POST", "/points/mall/items", T, {"kind": "gift", "title": "x", "points_price": 1, "stock": 1}),
         400, "invalid_field"),
        (h.admin("GET", "/points/report?from=2026-02-30&to=2026-03-01", T), 400, "invalid_query"),
    ]
    for result, status, code in cases:
        expect_error(result, status, code)
    assert ledger() == before
    assert balance(h, "eve") == 100


def test_a_config_either_plugin_cannot_honour_stops_its_load_naming_the_key():
    bad = tenant("bad", plugins={"points": {"redeem": {"points_per_fen": 1, "max_percent": 150},
                                            "expiry": {"kind": "year_end"}},
                                 "signin": {"dayly": 5}})
    with tempfile.TemporaryDirectory() as d:
        conf = os.path.join(d, "bad.conf.lua")
        with open(conf, "w") as f:
            f.write("return " + lua({"listen": "127.0.0.1:1", "data_dir": os.path.join(d, "data"),
                                     "plugin_dirs": [os.path.join(SRC, "plugins")], "tenants": [bad]}))
        out = subprocess.run([BIN, "config", "--config", conf], capture_output=True, text=True, timeout=60)
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    assert "points config: redeem.max_percent must be an integer from 1 to 100" in text, text
    assert "signin config: dayly is not a known key; did you mean 'daily'?" in text, text


def teardown():
    if H is not None and H.running():
        H.stop()


if __name__ == "__main__":
    run(globals())
