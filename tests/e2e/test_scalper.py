"""
test_scalper.py - scalper defence for the mechanics (issue 25, item 3): a sale
that requires reservations (预约) refuses the unreserved and sells to the
reserved; a risk rule (sdk/tp/risk.lua) refusing buys among many concurrent
ones rolls back only the refused requests, and every refusal is counted in
/metrics; a blocklisted member and device are refused a buy and a coupon
claim, and buy again once lifted.
"""
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Host, manual_tenant, expect_error, user_auth, add_sku, run  # noqa: E402

DAY = 86400


def shop(tid, **extra):
    plugins = {"catalog": {}, "orders": {"max_unpaid_orders": 5},
               "payments": {"secret": "scalper-payment-secret-0123456"}, "flash_sale": {}}
    plugins.update(extra)
    return manual_tenant(tid, plugins)


T_RES = shop("res")
T_RISK = shop("risk", riskprobe={})
T_BLOCK = shop("block", blocklist={}, coupons={})
H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[T_RES, T_RISK, T_BLOCK], name="scalper").start()
    return H


def now(h, t):
    return h.admin("GET", "/clock", t)[2]["now"]


def new_sale(h, t, sku, quantity=50, **fields):
    add_sku(h, t, sku, 1000)
    n = now(h, t)
    body = {"sku": sku, "price_fen": 990, "quantity": quantity, "per_user_limit": 1,
            "per_order_limit": 1, "starts_at": n - 60, "ends_at": n + DAY}
    body.update(fields)
    status, _, sale = h.admin("POST", "/flash-sales", t, body)
    assert status == 201, (status, sale)
    return sale


def buy(h, t, sale, user, device=None):
    headers = user_auth(t, user)
    if device:
        headers["X-Device-Id"] = device
    return h.post("/v1/%s/flash-sales/%d/buy" % (t["id"], sale["id"]), {}, headers=headers)


def admin_sale(h, t, sale):
    status, _, body = h.admin("GET", "/flash-sales/%d" % sale["id"], t)
    assert status == 200, body
    return body


def orders_of(h, t):
    status, _, body = h.admin("GET", "/orders?limit=500", t)
    assert status == 200, body
    return body["items"]


def refusals(h, code):
    status, _, text = h.get("/metrics")
    assert status == 200, status
    for line in text.splitlines():
        if line.startswith('tidepool_refusals_total{code="%s"}' % code):
            return int(line.split()[-1])
    return 0


def test_a_sale_that_requires_reservations_refuses_the_unreserved():
    h, t = host(), T_RES
    n = now(h, t)
    sale = new_sale(h, t, "res-tea", starts_at=n + 3600, ends_at=n + DAY, requires_reservation=True)
    reserve = "/v1/res/flash-sales/%d/reserve" % sale["id"]
    status, _, first = h.post(reserve, {}, headers=user_auth(t, "planner"))
    assert status == 201 and first["user"] == "planner", (status, first)
    status, _, again = h.post(reserve, {}, headers=user_auth(t, "planner"))
    assert status == 200 and again == first, (status, again)           # idempotent
    h.admin("POST", "/clock/advance", t, {"seconds": 3600})
    expect_error(h.post(reserve, {}, headers=user_auth(t, "latecomer")), 409, "reservation_closed")
    expect_error(buy(h, t, sale, "latecomer"), 403, "reservation_required")
    expect_error(buy(h, t, sale, "fresh-account-1"), 403, "reservation_required")
    status, _, order = buy(h, t, sale, "planner")
    assert status == 201 and order["user"] == "planner", (status, order)
    assert admin_sale(h, t, sale)["remaining"] == 49
    assert [o["user"] for o in orders_of(h, t)] == ["planner"]


def test_a_risk_rule_refusing_buys_rolls_back_only_those_and_is_counted():
    h, t = host(), T_RISK
    sale = new_sale(h, t, "risk-tea", quantity=100)
    before = refusals(h, "risk_captcha_required")
    users = ["bot-%d" % i if i % 3 == 0 else "human-%d" % i for i in range(30)]
    results = {}
    start = threading.Barrier(len(users))

    def go(user):
        start.wait()
        results[user] = buy(h, t, sale, user)
    threads = [threading.Thread(target=go, args=(u,)) for u in users]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    bots = [u for u in users if u.startswith("bot-")]
    humans = [u for u in users if not u.startswith("bot-")]
    for u in bots:
        body = expect_error(results[u], 403, "risk_captcha_required")
        assert body["error"]["details"] == {"action": "buy", "by": "riskprobe"}, body
        assert body["error"]["message"] == "solve the captcha first", body
    for u in humans:
        assert results[u][0] == 201, (u, results[u])
    # the humans' orders and units are all there; nothing of the bots' is
    sale_now = admin_sale(h, t, sale)
    assert sale_now["sold"] == len(humans), sale_now
    assert sorted(o["user"] for o in orders_of(h, t)) == sorted(humans)
    status, _, checks = h.admin("GET", "/riskprobe/checks", t)
    assert status == 200
    assert sorted(c["user"] for c in checks["items"]) == sorted(humans), checks  # a refusal's own writes went too
    assert all(c["action"] == "buy" and c["plugin"] == "flash_sale" for c in checks["items"]), checks
    assert refusals(h, "risk_captcha_required") - before == len(bots)


def test_a_blocklisted_member_and_device_are_refused_until_lifted():
    h, t = host(), T_BLOCK
    sale = new_sale(h, t, "block-tea")
    status, _, entry = h.admin("PUT", "/blocklist/members/scalper-9", t, {"reason": "300 accounts, one address"})
    assert status == 200 and entry["kind"] == "member", (status, entry)
    assert h.admin("PUT", "/blocklist/devices/farm-phone-3", t, {})[0] == 200
    before = refusals(h, "risk_blocked")
    expect_error(buy(h, t, sale, "scalper-9"), 403, "risk_blocked")
    expect_error(buy(h, t, sale, "new-account-77", device="farm-phone-3"), 403, "risk_blocked")
    # a coupon claim is refused too
    status, _, tpl = h.admin("POST", "/coupons/templates", t, {
        "name": "10 off", "kind": "fixed", "amount_off_fen": 1000, "valid_days": 30, "total_quantity": 1000})
    assert status == 201, (status, tpl)
    claim = "/v1/block/coupons/templates/%d/claim" % tpl["id"]
    expect_error(h.post(claim, {}, headers=user_auth(t, "scalper-9")), 403, "risk_blocked")
    assert h.post(claim, {}, headers=user_auth(t, "new-account-78"))[0] == 201
    assert buy(h, t, sale, "new-account-78", device="own-phone")[0] == 201
    assert admin_sale(h, t, sale)["sold"] == 1
    assert refusals(h, "risk_blocked") - before == 3
    assert h.admin("DELETE", "/blocklist/members/scalper-9", t)[2] == {"removed": True}
    assert buy(h, t, sale, "scalper-9")[0] == 201


def teardown():
    if H is not None:
        H.stop()


if __name__ == "__main__":
    run(globals())
