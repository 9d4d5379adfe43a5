"""
test_ratelimit.py - the host's rate limits (issue 25, item 2; core/base/ratelimit.h):
a burst from one member beyond its buy rate gets 429 rate_limited with
Retry-After, before any Lua runs (the sale is untouched), while another
member's buys pass; the per-address bucket counts the X-Forwarded-For client
when the peer is a trusted proxy and the peer itself when it is not (a forged
header does not help); an admin key has its own bucket; the refusals are
counted in /metrics; a brand without limits is not limited.

The untrusted peer is the same machine on another loopback address
(127.0.0.2): the host trusts only 127.0.0.1.
"""
import http.client
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Host, manual_tenant, tenant, api_key, expect_error, user_auth,  # noqa: E402
                     add_sku, run, BIN)

DAY = 86400


def shop(tid, rate_limits=None):
    t = manual_tenant(tid, {"catalog": {}, "orders": {"max_unpaid_orders": 5},
                            "payments": {"secret": "rate-limit-payment-secret-0123"},
                            "flash_sale": {}})
    if rate_limits is not None:
        t["rate_limits"] = rate_limits
    return t


T = shop("rl", {
    "buy": {"user": {"per_minute": 3},                     # 3 at once, then one every 20 s
            "device": {"per_minute": 2}},                  # X-Device-Id, when the client sends one
    "read": {"address": {"per_minute": 5}},
})
T_KEY = tenant("rlkey", plugins={"catalog": {}})
T_KEY["rate_limits"] = {"admin": {"key": {"per_minute": 4}}}
T_FREE = shop("rlfree")                                    # no limits
T_POOL = manual_tenant("rlpool", {"catalog": {}, "orders": {}, "flash_sale": {},
                                  "payments": {"secret": "rate-limit-payment-secret-0123"},
                                  "members": {"phone_pepper": "rate-limit-pepper-0123"}})
T_POOL["rate_limits"] = {"buy": {"user": {"per_minute": 4}}}
H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[T, T_KEY, T_FREE, T_POOL], name="ratelimit",
                 extra={"trusted_proxies": ["127.0.0.1"]}).start()
    return H


def new_sale(h, t, sku):
    add_sku(h, t, sku, 100)
    now = h.admin("GET", "/clock", t)[2]["now"]
    status, _, sale = h.admin("POST", "/flash-sales", t, {
        "sku": sku, "price_fen": 990, "quantity": 50, "per_user_limit": 1, "per_order_limit": 1,
        "starts_at": now - 60, "ends_at": now + DAY})
    assert status == 201, (status, sale)
    return sale


def buy(h, t, sale, user):
    return h.post("/v1/%s/flash-sales/%d/buy" % (t["id"], sale["id"]), {}, headers=user_auth(t, user))


def remaining(h, t, sale):
    return h.admin("GET", "/flash-sales/%d" % sale["id"], t)[2]["remaining"]


def test_a_burst_from_one_member_gets_429_while_another_member_buys():
    h = host()
    sale = new_sale(h, T, "rl-tea")
    answers = [buy(h, T, sale, "scalper") for _ in range(8)]
    codes = [a[0] if a[0] == 201 else a[2]["error"]["code"] for a in answers]
    # three requests of the burst reach the sale (one buys, the limit of 1 refuses two);
    # the rest never run any Lua
    assert codes == [201, "limit_reached", "limit_reached"] + ["rate_limited"] * 5, codes
    status, headers, body = answers[3]
    assert status == 429 and 1 <= int(headers["retry-after"]) <= 20, (status, headers, body)
    assert "scalper" not in json.dumps(body), body          # the answer does not echo the member
    assert remaining(h, T, sale) == 49
    for user in ("honest-1", "honest-2"):                   # other members: their own buckets
        assert buy(h, T, sale, user)[0] == 201
    assert remaining(h, T, sale) == 47
    # the class read is not the class buy: the scalper still reads the sale
    assert h.get("/v1/rl/flash-sales/%d" % sale["id"], headers={"X-Forwarded-For": "198.51.100.200"})[0] == 200


def test_fresh_accounts_on_one_device_share_its_bucket():
    h = host()
    sale = new_sale(h, T, "rl-dev-tea")
    path = "/v1/rl/flash-sales/%d/buy" % sale["id"]

    def on(user, device):
        headers = user_auth(T, user)
        headers["X-Device-Id"] = device
        return h.post(path, {}, headers=headers)
    assert [on("farm-%d" % i, "farm-phone-1")[0] for i in range(4)] == [201, 201, 429, 429]
    body = expect_error(on("farm-9", "farm-phone-1"), 429, "rate_limited")
    assert "this device" in body["error"]["message"], body
    assert on("farm-10", "own-phone")[0] == 201             # another device
    assert buy(h, T, sale, "farm-11")[0] == 201             # no device sent: no device bucket


def get_from(h, source, path, headers):
    """A GET from the loopback address source (the host trusts only 127.0.0.1)."""
    conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=10, source_address=(source, 0))
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, json.loads(raw.decode())
    finally:
        conn.close()


def test_a_trusted_proxys_client_address_is_honoured():
    h = host()
    path = "/v1/rl/flash-sales"
    via = lambda client: get_from(h, "127.0.0.1", path, {"X-Forwarded-For": "10.9.9.9, " + client})
    for _ in range(5):
        assert via("203.0.113.10")[0] == 200
    expect_error(via("203.0.113.10"), 429, "rate_limited")
    assert via("203.0.113.11")[0] == 200                    # another client behind the same proxy
    # the part before the proxy's own entry is the client's say: it does not move the bucket
    expect_error(get_from(h, "127.0.0.1", path, {"X-Forwarded-For": "203.0.113.99, 203.0.113.10"}),
                 429, "rate_limited")


def test_an_untrusted_peers_forwarded_for_is_ignored():
    h = host()
    path = "/v1/rl/flash-sales"
    answers = [get_from(h, "127.0.0.2", path, {"X-Forwarded-For": "203.0.113.%d" % (50 + i)})
               for i in range(7)]
    statuses = [a[0] for a in answers]
    assert statuses == [200] * 5 + [429] * 2, statuses     # one address, whatever it claims
    assert answers[5][2]["error"]["code"] == "rate_limited"


def test_an_admin_key_has_a_bucket_of_its_own():
    h = host()
    answers = [h.admin("GET", "/plugins", T_KEY) for _ in range(6)]
    assert [a[0] for a in answers] == [200] * 4 + [429] * 2, [a[0] for a in answers]
    body = expect_error(answers[4], 429, "rate_limited")
    assert api_key(T_KEY) not in json.dumps(body)
    assert "API key" in body["error"]["message"], body
    assert h.get("/v1/rlkey/catalog/products")[0] == 200    # the public API of the brand


def test_a_brand_without_limits_is_not_limited_and_refusals_are_counted():
    h = host()
    sale = new_sale(h, T_FREE, "free-tea")
    codes = [buy(h, T_FREE, sale, "eager")[0] for _ in range(10)]
    assert codes == [201] + [409] * 9, codes
    status, _, text = h.get("/metrics")
    assert status == 200
    line = [x for x in text.splitlines() if x.startswith('tidepool_refusals_total{code="rate_limited"}')]
    assert line and int(line[0].split()[-1]) >= 5 + 1 + 2 + 2, line


def identify(h, t, identities):
    status, _, body = h.admin("POST", "/members/identify", t, {"identities": identities})
    assert status in (200, 201), (status, body)
    return body


def test_one_persons_merged_accounts_share_one_bucket():
    """The host resolves a merged member's token to the survivor before it counts
    (core/alias.c), so a person's accounts together get one member's rate."""
    h, t = host(), T_POOL
    sale = new_sale(h, t, "pool-tea")
    a = identify(h, t, [{"channel": "mp_openid", "id": "rl-oA"}, {"channel": "unionid", "id": "rl-u"}])
    b = identify(h, t, [{"channel": "oa_openid", "id": "rl-oaB"}])
    assert a["member"]["id"] != b["member"]["id"]
    both = identify(h, t, [{"channel": "oa_openid", "id": "rl-oaB"}, {"channel": "unionid", "id": "rl-u"}])
    assert both["merged"] == [b["member"]["id"]], both
    path = "/v1/rlpool/flash-sales/%d/buy" % sale["id"]
    statuses = [h.post(path, {}, headers={"Authorization": "Bearer " + tok})[0]
                for tok in [a["token"], b["token"]] * 3]
    assert statuses == [201, 409, 409, 409, 429, 429], statuses
    other = identify(h, t, [{"channel": "mp_openid", "id": "rl-someone-else"}])
    assert h.post(path, {}, headers={"Authorization": "Bearer " + other["token"]})[0] == 201


def check_route(decl):
    with tempfile.TemporaryDirectory() as d:
        os.mkdir(os.path.join(d, "rc"))
        with open(os.path.join(d, "rc", "plugin.lua"), "w") as f:
            f.write('return { name = "rc", version = "1.0.0", routes = { { %s, '
                    'handler = function() return 200, {} end } } }\n' % decl)
        out = subprocess.run([BIN, "check", os.path.join(d, "rc")], capture_output=True, timeout=60)
        return out.returncode, (out.stdout + out.stderr).decode()


def test_a_route_declares_a_known_class_and_admin_routes_none():
    rc, text = check_route('method = "POST", path = "/enter", rate_class = "join"')
    assert rc == 0, text
    rc, text = check_route('method = "POST", path = "/enter", rate_class = "biy"')
    assert rc != 0 and "routes[1].rate_class must be one of read, write, buy, join, help, claim" in text, text
    rc, text = check_route('method = "GET", path = "/x", auth = "admin", rate_class = "read"')
    assert rc != 0 and "admin routes are all of class admin" in text, text


def teardown():
    if H is not None:
        H.stop()


if __name__ == "__main__":
    run(globals())
