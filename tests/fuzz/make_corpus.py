#!/usr/bin/env python3
"""
make_corpus.py - writes the seed corpora of the fuzz targets into
tests/fuzz/corpus/<target>/. Run it again after changing a seed below; the
files are committed, so the fuzzers and the ctest replays start from them.

The HTTP seeds use the tenant, admin key and token secret of fuzz_http.c's
config, with tokens that expire in 2100, so that they reach the handlers.
"""
import base64
import hashlib
import hmac
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
TENANT = "f"
TOKEN_SECRET = "fuzz-token-secret-0123456789abcdef"
ADMIN_KEY = "fuzz-admin-key-0123456789"
EXP = 4102444800


def token(user, secret=TOKEN_SECRET, tenant=TENANT, exp=EXP):
    msg = "v1.%s.%s.%d" % (tenant, user, exp)
    mac = hmac.new(secret.encode(), msg.encode(), hashlib.sha256).digest()
    return msg + "." + base64.urlsafe_b64encode(mac).decode().rstrip("=")


def request(method, path, body=None, headers=None, chunked=False):
    head = ["%s %s HTTP/1.1" % (method, path), "Host: fuzz"]
    for k, v in (headers or {}).items():
        head.append("%s: %s" % (k, v))
    data = b""
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        head.append("Content-Type: application/json")
        if chunked:
            head.append("Transfer-Encoding: chunked")
            data = b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)
        else:
            head.append("Content-Length: %d" % len(data))
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


USER = {"Authorization": "Bearer " + token("fuzz-user")}
ADMIN = {"X-Api-Key": ADMIN_KEY}
PRODUCT = {"name": "tea", "skus": [{"code": "tea-1", "title": "green tea", "price_fen": 1990,
                                    "stock": 50}]}

HTTP = {
    "healthz": request("GET", "/healthz"),
    "metrics": request("GET", "/metrics"),
    "products": request("GET", "/v1/f/catalog/products?limit=5"),
    "sku": request("GET", "/v1/f/catalog/skus/tea-1"),
    "openapi": request("GET", "/v1/f/openapi.json"),
    "admin_product": request("POST", "/admin/f/catalog/products", PRODUCT, ADMIN),
    "order": request("POST", "/v1/f/orders", {"lines": [{"sku": "tea-1", "qty": 2}]},
                     dict(USER, **{"Idempotency-Key": "k-1"})),
    "order_chunked": request("POST", "/v1/f/orders", {"lines": [{"sku": "tea-1", "qty": 1}]},
                             USER, chunked=True),
    "my_orders": request("GET", "/v1/f/orders?status=paid&limit=3", headers=USER),
    "cancel": request("POST", "/v1/f/orders/1/cancel", {}, USER),
    "simulate": request("POST", "/admin/f/payments/simulate", {"order_id": 1}, ADMIN),
    "refund": request("POST", "/admin/f/orders/1/refund", {"amount_fen": 100}, ADMIN),
    "coupon_template": request("POST", "/admin/f/coupons/templates", {
        "name": "10 off", "kind": "fixed", "amount_fen": 1000, "total": 100,
        "per_user_limit": 1}, ADMIN),
    "claim": request("POST", "/v1/f/coupons/templates/1/claim", {}, USER),
    "flash_sales": request("GET", "/v1/f/flash-sales"),
    "flash_buy": request("POST", "/v1/f/flash-sales/1/buy", {"qty": 1}, USER),
    "clock": request("POST", "/admin/f/clock/advance", {"seconds": 60}, ADMIN),
    "pipelined": request("GET", "/healthz") + request("GET", "/v1/f/catalog/products"),
    # a whole purchase on one connection: product, order, payment, refund
    "flow": request("POST", "/admin/f/catalog/products", {"name": "cake", "skus": [
        {"code": "cake-1", "title": "cake", "price_fen": 2500, "stock": 1000}]}, ADMIN)
        + request("POST", "/v1/f/orders", {"lines": [{"sku": "cake-1", "qty": 1}]}, USER)
        + request("GET", "/v1/f/orders?limit=1", headers=USER)
        + request("POST", "/admin/f/payments/simulate", {"order_id": 1}, ADMIN)
        + request("POST", "/admin/f/orders/1/refund", {"reason": "fuzz"}, ADMIN),
    "expired_token": request("GET", "/v1/f/orders", headers={
        "Authorization": "Bearer " + token("u", exp=1000)}),
    "bad_json": request("POST", "/v1/f/orders", b'{"lines": [', USER),
    "notify": request("POST", "/v1/f/payments/notify", {"resource": {"plaintext": "{}"}}, {
        "Wechatpay-Timestamp": "1800000000", "Wechatpay-Nonce": "n",
        "Wechatpay-Signature": "c2ln"}),
}

JSON = {
    "object": b'{"lines":[{"sku":"tea-1","qty":2}],"coupon_id":7}',
    "nested": b'[[[[{"a":[1,2,{"b":null}]}]]]]',
    "numbers": b'[0,-0,1e3,1.5,-9007199254740993,9007199254740992,1E-7,123456789012345678901234]',
    "strings": b'["\\u00e9\\ud83d\\ude00","\\n\\t\\"\\\\","\xe4\xb8\xad"]',
    "empty": b'{}',
    "literals": b'[true,false,null]',
}

TOKENS = {
    "valid": token("fuzz-user", secret="fuzz-token-secret-0123456789abcdef", tenant="leaf",
                   exp=1800000060).encode(),
    "expired": token("u-1", secret="fuzz-token-secret-0123456789abcdef", tenant="leaf",
                     exp=1).encode(),
    "other_tenant": token("u-1", secret="fuzz-token-secret-0123456789abcdef", tenant="bark",
                          exp=1800000060).encode(),
    "user_id": b"user:42@shop-7",
}

CONFIGS = {
    "minimal": b"return { tenants = { { id = 'a', token_secret = 'sixteen-bytes-ok!', "
               b"api_keys = { 'admin-key-0000001' } } } }",
    "full": b"""return {
  listen = '127.0.0.1:8080', data_dir = 'data', synchronous = 'normal', log_level = 'warn',
  plugin_dirs = { 'plugins' }, admin_keys = { 'host-admin-key-000001' },
  limits = { max_connections = 100, header_timeout_ms = 500, lua_instructions = 100000 },
  tenants = {
    { id = 'brand', token_secret = env('NO_SUCH_VAR', 'sixteen-bytes-ok!'),
      api_keys = { 'admin-key-0000001' }, timezone = 'Asia/Shanghai', clock = 'manual',
      plugins = { catalog = {}, orders = { unpaid_timeout_seconds = 900 }, coupons = false },
      plugin_limits = { orders = { instructions = 200000 } } },
  },
}""",
    "computed": b"local t = {} for i = 1, 3 do t[#t + 1] = { id = 't' .. i, "
                b"token_secret = ('s'):rep(16), api_keys = { ('k'):rep(16) } } end "
                b"return { tenants = t }",
}

def script(path):
    with open(os.path.join(HERE, "..", "..", path), "rb") as f:
        return f.read()


# the repository's campaign scripts, and small ones that reach each check
CAMPAIGNS = {
    "double11_example": script("scripts/examples/double11.lua"),
    "double12_demo": script("scripts/demo/campaigns/double12.lua"),
    "minimal": b'return campaign { title = "t", starts = "2030-01-01 00:00", ends = "2030-01-02 00:00" }',
    "items": b"""return campaign { title = "t", starts = "2030-01-01 00:00", ends = "2030-01-02 00:00",
  flash_sale { id = "a", sku = "s", price_fen = yuan "9.90", quantity = 1, starts = "2030-01-01 10:00" },
  coupon_drop { at = "2030-01-01 12:00", users = { "u1", "u:2@x" }, coupon = { name = "c" } },
  mechanic "friend_assist" { id = "fa" },
  on = { ["order.paid"] = function(d, c) return d end } }""",
    "mistakes": b"""local x = yuan "1.234"
return campaign { title = 5, strats = "2030-13-01 00:00", flashsale { } }""",
    "tail_call": b"return campaign(nil)",
}

CORPORA = {"fuzz_http": HTTP, "fuzz_json": JSON, "fuzz_token": TOKENS, "fuzz_config": CONFIGS,
           "fuzz_campaign": CAMPAIGNS}


def main():
    for target, seeds in CORPORA.items():
        d = os.path.join(HERE, "corpus", target)
        os.makedirs(d, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
    print("wrote %d seeds" % sum(len(s) for s in CORPORA.values()))


if __name__ == "__main__":
    main()
