"""
test_commerce.py - orders, coupons, flash sales and payments together, against
the real binary: the price order of plugins/orders/lib/pricing.lua (campaign
price, which lines take a coupon, the discount, its split), a coupon's life
through an order (locked by one order only, used on payment, back on cancel and
taken again by a late payment), and money that always sums.

The tenant runs on the manual clock; payments go through the simulated payer
(POST /admin/{t}/payments/simulate), which signs and applies a notify exactly
as /payments/notify would.
"""
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (openapi, Host, manual_tenant, advance, clock, expect_error, sku_stock, user_auth,
                     run)  # noqa: E402

PLUGINS = {"catalog": {}, "coupons": {}, "flash_sale": {},
           "orders": {"unpaid_timeout_seconds": 600, "max_unpaid_orders": 50},
           "payments": {"secret": "commerce-test-payment-secret-01"}}
T = manual_tenant("shop", PLUGINS)
H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[T], name="commerce").start()
        seed(H)
    return H


def bearer(user):
    return user_auth(T, user)


def admin(method, path, body=None, status=200):
    st, _, answer = host().admin(method, path, T, body)
    assert st == status, (method, path, st, answer)
    return answer


def user_post(user, path, body=None):
    """(status, headers, body) of a user's POST."""
    return host().post("/v1/shop" + path, body=body, headers=bearer(user))


def user_get(user, path):
    st, _, answer = host().get("/v1/shop" + path, headers=bearer(user))
    assert st == 200, (path, st, answer)
    return answer


def seed(h):
    st, _, _ = h.admin("POST", "/catalog/products", T, {"name": "Tea", "skus": [
        {"code": "tea-a", "title": "A", "price_fen": 12800, "stock": 1000},
        {"code": "tea-b", "title": "B", "price_fen": 9900, "stock": 1000},
        {"code": "tea-c", "title": "C", "price_fen": 333, "stock": 1000}]})
    assert st == 201


def now():
    return clock(host(), T)["now"]


def stock(sku):
    return sku_stock(host(), T, sku)


THRESHOLD = {"kind": "threshold", "amount_off_fen": 2000, "min_spend_fen": 19900}


def coupon_template(kind=THRESHOLD, per_user_limit=5):
    body = {"name": "c", "valid_days": 30, "total_quantity": 1000, "per_user_limit": per_user_limit}
    body.update(kind)
    return admin("POST", "/coupons/templates", body, status=201)["id"]


def claim(user, template_id):
    st, _, c = user_post(user, "/coupons/templates/%d/claim" % template_id)
    assert st == 201, c
    return c["id"]


def coupon_state(user, coupon_id):
    for c in user_get(user, "/coupons/mine")["items"]:
        if c["id"] == coupon_id:
            return c["state"]
    raise AssertionError("coupon %d not in %s's list" % (coupon_id, user))


def order(user, lines, coupon_id=None, status=201):
    body = {"lines": [{"sku": s, "qty": q} for s, q in lines]}
    if coupon_id is not None:
        body["coupon_id"] = coupon_id
    st, _, o = user_post(user, "/orders", body)
    assert st == status, (st, o)
    return o


def pay(order_id):
    return admin("POST", "/payments/simulate", {"order_id": order_id})["result"]


def assert_money_sums(o):
    assert o["items_fen"] == sum(l["amount_fen"] for l in o["lines"]), o
    assert o["discount_fen"] == sum(l["discount_fen"] for l in o["lines"]), o
    assert o["total_fen"] == o["items_fen"] - o["discount_fen"] == sum(l["paid_fen"] for l in o["lines"]), o
    for l in o["lines"]:
        assert l["amount_fen"] == l["qty"] * l["unit_price_fen"], l
        assert 0 <= l["discount_fen"] <= l["amount_fen"], l
        assert l["paid_fen"] == l["amount_fen"] - l["discount_fen"], l
    assert o["total_fen"] >= 1


# ---- a coupon through an order's life

def test_a_coupon_serves_one_order_and_is_used_when_it_is_paid():
    tid = coupon_template()
    cid = claim("ann", tid)
    first = order("ann", [("tea-a", 1), ("tea-b", 1)], cid)
    assert first["discount_fen"] == 2000 and first["total_fen"] == 22700 - 2000, first
    assert_money_sums(first)
    assert coupon_state("ann", cid) == "locked"
    res = user_post("ann", "/orders", {"lines": [{"sku": "tea-a", "qty": 2}], "coupon_id": cid})
    body = expect_error(res, 409, "coupon_not_usable")
    assert body["error"]["details"]["reason"] == "locked", body
    assert pay(first["id"])["outcome"] == "paid"
    assert coupon_state("ann", cid) == "used"
    res = user_post("ann", "/orders", {"lines": [{"sku": "tea-a", "qty": 2}], "coupon_id": cid})
    body = expect_error(res, 409, "coupon_not_usable")


def test_another_users_coupon_is_not_found_and_a_failed_order_takes_nothing():
    tid = coupon_template()
    cid = claim("bob", tid)
    before = stock("tea-a")
    res = user_post("cat", "/orders", {"lines": [{"sku": "tea-a", "qty": 2}], "coupon_id": cid})
    body = expect_error(res, 404, "coupon_not_found")
    res = user_post("bob", "/orders", {"lines": [{"sku": "tea-c", "qty": 1}], "coupon_id": cid})
    body = expect_error(res, 409, "coupon_not_usable")    # 333 fen is below the threshold
    assert body["error"]["details"]["reason"] == "below_threshold", body
    assert stock("tea-a") == before and coupon_state("bob", cid) == "unused"


def test_cancel_by_the_clock_returns_units_and_coupon_and_a_late_payment_takes_them_again():
    tid = coupon_template()
    cid = claim("dan", tid)
    before = stock("tea-a")
    o = order("dan", [("tea-a", 2)], cid)
    assert stock("tea-a") == before - 2
    advance(host(), T, seconds=599)
    assert user_get("dan", "/orders/%d" % o["id"])["status"] == "pending_payment"
    advance(host(), T, seconds=2)
    gone = user_get("dan", "/orders/%d" % o["id"])
    assert gone["status"] == "cancelled" and gone["cancel_reason"] == "timeout", gone
    assert stock("tea-a") == before and coupon_state("dan", cid) == "unused"
    result = pay(o["id"])
    assert result["outcome"] == "paid_after_cancel", result
    back = user_get("dan", "/orders/%d" % o["id"])
    assert back["status"] == "paid" and back["late_payment"] is True, back
    assert stock("tea-a") == before - 2 and coupon_state("dan", cid) == "used"


def test_a_late_payment_whose_coupon_went_to_another_order_is_refunded():
    tid = coupon_template()
    cid = claim("eve", tid)
    o = order("eve", [("tea-a", 2)], cid)
    user_post("eve", "/orders/%d/cancel" % o["id"])
    second = order("eve", [("tea-a", 2)], cid)        # the freed coupon serves another order
    assert second["discount_fen"] == 2000
    result = pay(o["id"])
    assert result["outcome"] == "refunding", result
    advance(host(), T, seconds=1)                      # the refund job runs
    late = user_get("eve", "/orders/%d" % o["id"])
    assert late["status"] == "refunded" and late["refunded_fen"] == late["paid_fen"] == late["total_fen"], late
    assert coupon_state("eve", cid) == "locked"        # still the second order's


# ---- campaign prices and coupons: the stacking rule

def flash_sale(sku, price, stacks):
    t0 = now()
    sale = admin("POST", "/flash-sales", {"sku": sku, "price_fen": price, "quantity": 10,
                                          "per_user_limit": 5, "per_order_limit": 5,
                                          "starts_at": t0 - 60, "ends_at": t0 + 86400,
                                          "stacks_with_coupon": stacks}, status=201)
    return sale["id"]


def test_a_campaign_price_takes_a_coupon_only_when_the_campaign_says_it_stacks():
    tid = coupon_template({"kind": "fixed", "amount_off_fen": 500})
    cid = claim("fay", tid)
    plain = flash_sale("tea-b", 5000, stacks=False)
    res = user_post("fay", "/flash-sales/%d/buy" % plain, {"qty": 1, "coupon_id": cid})
    body = expect_error(res, 409, "coupon_not_usable")
    assert body["error"]["details"]["reason"] == "not_applicable", body
    assert coupon_state("fay", cid) == "unused"
    admin("PATCH", "/flash-sales/%d" % plain, {"status": "disabled"})
    stacking = flash_sale("tea-b", 5000, stacks=True)
    st, _, o = user_post("fay", "/flash-sales/%d/buy" % stacking, {"qty": 2, "coupon_id": cid})
    assert st == 201, o
    assert o["items_fen"] == 10000 and o["discount_fen"] == 500 and o["total_fen"] == 9500, o
    assert o["lines"][0]["unit_price_fen"] == 5000 and o["lines"][0]["list_price_fen"] == 9900
    assert o["campaign"]["plugin"] == "flash_sale" and o["campaign"]["stacks_with_coupon"] is True
    assert_money_sums(o)
    admin("PATCH", "/flash-sales/%d" % stacking, {"status": "disabled"})


def test_a_user_cannot_set_a_price():
    res = user_post("gus", "/orders", {"lines": [{"sku": "tea-a", "qty": 1, "unit_price_fen": 1}]})
    body = expect_error(res, 400, "invalid_field")


# ---- money always sums

def test_split_discounts_always_sum_over_many_random_orders():
    rng = random.Random(20261123)
    tid = coupon_template({"kind": "percent", "percent_off": 17, "max_discount_fen": 99999},
                          per_user_limit=100)
    skus = ["tea-a", "tea-b", "tea-c"]
    for i in range(30):
        user = "sum%d" % i
        cid = claim(user, tid)
        lines = [(s, rng.randint(1, 5)) for s in rng.sample(skus, rng.randint(1, 3))]
        o = order(user, lines, cid)
        assert_money_sums(o)
        eligible = sum(l["amount_fen"] for l in o["lines"])
        assert o["discount_fen"] == min(eligible * 17 // 100, eligible - 1), o
        user_post(user, "/orders/%d/cancel" % o["id"])


def test_the_openapi_document_lists_the_commerce_routes():
    doc = openapi(host(), T)
    assert doc["openapi"].startswith("3."), doc
    paths = doc["paths"]
    for path, method in [("/v1/shop/orders", "post"), ("/v1/shop/flash-sales/{id}/buy", "post"),
                         ("/v1/shop/payments/notify", "post"), ("/admin/shop/flash-sales", "post"),
                         ("/v1/shop/coupons/templates/{id}/claim", "post"),
                         ("/admin/shop/orders/{id}/refund", "post")]:
        assert method in paths.get(path, {}), (path, sorted(paths))
    assert paths["/v1/shop/payments/notify"]["post"]["security"] == [], paths["/v1/shop/payments/notify"]


def teardown():
    if H is not None:
        H.stop()


if __name__ == "__main__":
    run(globals())
