"""
test_promotions.py - the promotions engine through HTTP against the real host:
an operator creates a tiered 满减, a 第二件半价 and a 优惠码 promotion; a
buyer's preview (POST /orders/preview) and the checkout that follows agree to
the fen, line by line, on forty carts drawn at random (seeded) and on a cart
with a coupon; each promotion's shares are on record; the order is paid and
one line's paid_fen refunded exactly; a single-use code serves one order;
malformed and hostile bodies get a JSON error and change nothing.
"""
import random

from harness import Host, read_db, run, tenant, user_auth

PLUGINS = {
    "catalog": {}, "coupons": {},
    "orders": {"promotions_plugin": "promotions", "max_unpaid_orders": 100},
    "payments": {"secret": "promotions-e2e-payment-secret-01"},
    "promotions": {},
}
SKUS = {"tea-a": 12800, "tea-b": 2990, "tea-c": 999, "cup": 15900}


def ok(answer, status, want=200):
    assert status == want, (status, answer)
    return answer


def test_preview_and_checkout_agree_through_http():
    t = tenant("promo", plugins=PLUGINS)
    h = Host(tenants=[t], name="promotions").start()
    try:
        for code, price in SKUS.items():
            status, _, p = h.admin("POST", "/catalog/products", t, {"name": code, "skus": [
                {"code": code, "title": code, "price_fen": price, "stock": 100000}]})
            ok(p, status, 201)
        status, _, clock = h.admin("GET", "/clock", t)
        now = ok(clock, status)["now"]
        window = {"starts_at": now - 60, "ends_at": now + 86400}
        status, _, fr = h.admin("POST", "/promotions", t, dict(window, name="满300减30, 满500减60",
            kind="full_reduction", tiers=[{"min_fen": 30000, "off_fen": 3000}, {"min_fen": 50000, "off_fen": 6000}]))
        ok(fr, status, 201)
        status, _, nth = h.admin("POST", "/promotions", t, dict(window, name="第二件半价", kind="nth_discount",
            skus=["tea-b"], nth=2, percent=50))
        ok(nth, status, 201)
        status, _, coded = h.admin("POST", "/promotions", t, dict(window, name="code: cups at 80 %",
            kind="timed_discount", skus=["cup"], percent=80, requires_code=True))
        ok(coded, status, 201)
        status, _, codes = h.admin("POST", "/promotions/%d/codes" % coded["id"], t, {"count": 3})
        codes = ok(codes, status, 201)["codes"]
        status, _, public = h.get("/v1/promo/promotions")
        assert [p["id"] for p in ok(public, status)["items"]] == [fr["id"], nth["id"]], public

        status, _, c = h.admin("POST", "/promotions/%d/codes" % coded["id"], t, {"code": "shared1"})
        ok(c, status, 201)
        # forty random carts: preview, then the checkout, the same to the fen
        rng = random.Random(22)
        took = {fr["id"]: 0, nth["id"]: 0, coded["id"]: 0}
        for n in range(40):
            auth = user_auth(t, "buyer%d" % n)
            skus = rng.sample(sorted(SKUS), rng.randint(1, 4))
            body = {"lines": [{"sku": s, "qty": rng.randint(1, 5)} for s in skus]}
            if "cup" in skus and n % 2 == 0:
                body["promo_code"] = "SHARED1"
            status, _, pv = h.post("/v1/promo/orders/preview", body, headers=auth)
            pv = ok(pv, status)
            status, _, o = h.post("/v1/promo/orders", body, headers=auth)
            o = ok(o, status, 201)
            assert (o["items_fen"], o["discount_fen"], o["total_fen"]) == \
                (pv["items_fen"], pv["discount_fen"], pv["total_fen"]), (body, pv, o)
            assert [(l["sku"], l["discount_fen"], l["paid_fen"]) for l in o["lines"]] == \
                [(l["sku"], l["discount_fen"], l["paid_fen"]) for l in pv["lines"]], (body, pv, o)
            assert sum(l["paid_fen"] for l in o["lines"]) == o["total_fen"]
            for p in pv["promotions"]:
                assert sum(s["discount_fen"] for s in p["lines"]) == p["discount_fen"], p
            kept = read_db(h, "promo", "SELECT coalesce(sum(discount_fen), 0) FROM orders_promotion_lines "
                           "WHERE order_id = ?", o["id"])[0][0]
            assert kept == pv["promotions_fen"], (kept, pv)
            for p in pv["promotions"]:
                took[p["id"]] += 1
        assert all(n >= 3 for n in took.values()), took   # each kind took part in several carts

        # a cart at the first tier, its hint, a coupon on top; pay it, refund one line exactly
        auth = user_auth(t, "ann")
        status, _, tpl = h.admin("POST", "/coupons/templates", t, {"name": "¥10", "kind": "fixed",
            "amount_off_fen": 1000, "valid_days": 7, "total_quantity": 10})
        ok(tpl, status, 201)
        status, _, cp = h.post("/v1/promo/coupons/templates/%d/claim" % tpl["id"], headers=auth)
        cp = ok(cp, status, 201)
        body = {"lines": [{"sku": "tea-a", "qty": 2}, {"sku": "tea-b", "qty": 2}], "coupon_id": cp["id"]}
        status, _, pv = h.post("/v1/promo/orders/preview", body, headers=auth)
        pv = ok(pv, status)
        # 25600 + 2990 + 1495 (第二件半价) = 30085 -> 满300减30 -> 27085 -> ¥10 coupon -> 26085
        assert (pv["items_fen"], pv["promotions_fen"], pv["coupon_fen"], pv["total_fen"]) == \
            (31580, 4495, 1000, 26085), pv
        assert pv["hints"][0]["add_fen"] == 50000 - 30085 and pv["hints"][0]["off_fen"] == 6000, pv["hints"]
        assert [s["promotion_id"] for s in pv["lines"][1]["promotions"]] == [nth["id"], fr["id"]], pv["lines"]
        status, _, o = h.post("/v1/promo/orders", body, headers=auth)
        o = ok(o, status, 201)
        assert [l["paid_fen"] for l in o["lines"]] == [l["paid_fen"] for l in pv["lines"]], (o, pv)
        status, _, paid = h.admin("POST", "/payments/simulate", t, {"order_id": o["id"]})
        ok(paid, status)
        line = o["lines"][1]
        status, _, r = h.admin("POST", "/orders/%d/refund" % o["id"], t,
                               {"amount_fen": line["paid_fen"], "reason": "the sampler came broken"})
        r = ok(r, status, 202)
        assert r["refund"]["amount_fen"] == line["paid_fen"], r
        assert o["total_fen"] - line["paid_fen"] == o["lines"][0]["paid_fen"]

        # a single-use code: one order, then 409 for the next buyer
        body = {"lines": [{"sku": "cup", "qty": 1}], "promo_code": codes[1].lower()}
        status, _, o = h.post("/v1/promo/orders", body, headers=user_auth(t, "bo"))
        assert ok(o, status, 201)["total_fen"] == 12720, o
        status, _, err = h.post("/v1/promo/orders", body, headers=user_auth(t, "cy"))
        assert status == 409 and err["error"]["code"] == "promo_code_used", err

        # malformed and hostile: a JSON error, nothing written
        before = read_db(h, "promo", "SELECT count(*) FROM orders_orders")[0][0]
        for bad, code in [({"lines": "tea-a"}, "invalid_field"),
                          ({"lines": [{"sku": "tea-a", "qty": 1}], "promo_code": "'; DROP TABLE x"}, "invalid_field"),
                          ({"lines": [{"sku": "tea-a", "qty": 1}], "promo_code": 7}, "invalid_field"),
                          ({"lines": [{"sku": "tea-a", "qty": -1}]}, "invalid_field"),
                          ({"lines": [{"sku": "tea-a", "qty": 1}], "promo_code": "NOSUCHCODE"}, "promo_code_not_found")]:
            for path in ("/v1/promo/orders/preview", "/v1/promo/orders"):
                status, _, err = h.post(path, bad, headers=auth)
                assert status in (400, 404) and err["error"]["code"] == code, (path, bad, status, err)
        status, _, err = h.admin("POST", "/promotions", t, dict(window, name="x", kind="full_reduction",
            tiers=[{"min_fen": 100, "off_fen": 100}]))
        assert status == 400 and err["error"]["details"]["field"] == "tiers[1].off_fen", err
        status, _, err = h.admin("POST", "/promotions", t, [1, 2])
        assert status == 400, err
        assert read_db(h, "promo", "SELECT count(*) FROM orders_orders")[0][0] == before
    finally:
        h.stop()


if __name__ == "__main__":
    run(globals())
