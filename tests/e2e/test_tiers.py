"""
test_tiers.py - member value through HTTP against the real host: a gold
member's member price at checkout (and a member without a tier at list
price), the orders paid, an RFM run started on demand, and a campaign script
whose coupon drop targets one RFM layer (segment "..." { rfm = "重要发展" }):
only the members of that layer get the coupon.
"""
import os
import time

from harness import Host, read_db, run, tenant, user_auth, wait_until

ADMIN_KEY = "tiers-e2e-host-admin-key-0123456789"
TZ_OFFSET = 8 * 3600  # Asia/Shanghai

PLUGINS = {
    "catalog": {}, "coupons": {},
    "members": {"phone_pepper": "tiers-e2e-pepper"},
    "orders": {"member_price_plugin": "tiers"},
    "payments": {"secret": "tiers-e2e-payment-secret-0123"},
    "tiers": {"levels": [{"id": "regular", "name": "会员", "growth": 0},
                         {"id": "gold", "name": "金卡", "growth": 5000, "discount_percent": 95}]},
    "rfm": {"r": {"days": 30}, "f": {"orders": 2}, "m": {"fen": 15000}},
}

SCRIPT = """\
-- a coupon to every buyer in the RFM layer 重要发展 (recent, one order, big spend)
return campaign {{
  title = "Grow the big new buyers",
  starts = "{start}",
  ends = "{end}",
  segment "big_new" {{ rfm = "重要发展" }},
  coupon_drop {{
    id = "grow", at = "{drop_at}", segment = "big_new",
    coupon = {{ name = "come again: 20 off", kind = "fixed", amount_off_fen = yuan "20",
               total_quantity = 100, valid_days = 14 }},
  }},
}}
"""


def local(epoch):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch + TZ_OFFSET))


def test_member_price_at_checkout_and_a_campaign_targeting_an_rfm_layer():
    t = tenant("shop", plugins=PLUGINS)
    t["campaigns"] = ["campaigns/grow.lua"]
    h = Host(tenants=[t], extra={"admin_keys": [ADMIN_KEY]}, name="tiers")
    path = os.path.join(h.dir, "campaigns", "grow.lua")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("return campaign { title = 'not yet' }\n")   # written for real after the run
    h.start()
    try:
        status, _, p = h.admin("POST", "/catalog/products", t, {"name": "tea", "skus": [
            {"code": "tea-1", "title": "tea", "price_fen": 10000, "stock": 100}]})
        assert status == 201, (status, p)

        # ann is gold (a task's growth); bob has no tier
        status, _, g = h.admin("POST", "/tiers/members/ann/growth", t, {"amount": 5000, "ref": "welcome"})
        assert status == 201 and g["standing"]["tier"] == "gold", (status, g)
        status, _, me = h.get("/v1/shop/tiers/me", headers=user_auth(t, "ann"))
        assert status == 200 and me["benefits"]["discount_percent"] == 95, me

        # member price at checkout: 95 % of 10000 for ann, list price for bob
        status, _, a = h.post("/v1/shop/orders", {"lines": [{"sku": "tea-1", "qty": 1}]},
                              headers=user_auth(t, "ann"))
        assert status == 201, (status, a)
        assert a["lines"][0]["list_price_fen"] == 10000 and a["lines"][0]["unit_price_fen"] == 9500, a
        assert a["total_fen"] == 9500, a
        status, _, b = h.post("/v1/shop/orders", {"lines": [{"sku": "tea-1", "qty": 2}]},
                              headers=user_auth(t, "bob"))
        assert status == 201 and b["total_fen"] == 20000 and b["lines"][0]["unit_price_fen"] == 10000, b
        status, _, bad = h.post("/v1/shop/orders", {"lines": [{"sku": "tea-1", "qty": "2"}]},
                                headers=user_auth(t, "ann"))
        assert status == 400 and bad["error"]["code"] == "invalid_field", bad
        for o in (a, b):
            status, _, paid = h.admin("POST", "/payments/simulate", t, {"order_id": o["id"]})
            assert status == 200, (status, paid)

        def seen_by_members():
            return read_db(h, "shop", "SELECT count(*) FROM members_orders")[0][0] == 2
        wait_until(seen_by_members, timeout=20, what="members to record both payments")

        # the RFM run, on demand: ann 9500 fen is 一般发展, bob 20000 fen is 重要发展
        status, _, r = h.admin("POST", "/rfm/runs", t)
        assert status == 202 and r["state"] == "collecting", (status, r)

        def run_done():
            _, _, got = h.admin("GET", "/rfm/runs/%d" % r["id"], t)
            return got["state"] == "done"
        wait_until(run_done, timeout=20, what="the RFM run to finish")
        status, _, layers = h.admin("GET", "/rfm/layers", t)
        counts = {l["layer"]: l["members"] for l in layers["layers"]}
        assert counts["重要发展"] == 1 and counts["一般发展"] == 1 and sum(counts.values()) == 2, layers
        status, _, m = h.admin("GET", "/rfm/members/bob", t)
        assert status == 200 and m["layer"] == "重要发展" and m["net_fen"] == 20000, m

        # the campaign, targeting the layer; its drop two seconds on
        now = int(time.time())
        with open(path, "w") as f:
            f.write(SCRIPT.format(start=local(now - 60), end=local(now + 3600), drop_at=local(now + 2)))
        status, _, rl = h.post("/admin/reload", {"tenant": "shop", "plugin": "campaign_grow"},
                               headers={"X-Api-Key": ADMIN_KEY})
        assert status == 200 and not rl["failed"], rl
        status, _, seg = h.admin("GET", "/members/segments/big_new", t)
        assert status == 200 and seg["count"] == 1, seg

        def dropped():
            return read_db(h, "shop", "SELECT count(*) FROM coupons_coupons WHERE drop_id IS NOT NULL")[0][0] >= 1
        wait_until(dropped, timeout=30, what="the campaign's drop")
        time.sleep(0.5)
        holders = read_db(h, "shop", "SELECT user FROM coupons_coupons WHERE drop_id IS NOT NULL")
        assert holders == [("bob",)], holders
        status, _, mine = h.get("/v1/shop/coupons/mine", headers=user_auth(t, "ann"))
        assert status == 200 and mine["items"] == [], mine
    finally:
        h.stop()


if __name__ == "__main__":
    run(globals())
