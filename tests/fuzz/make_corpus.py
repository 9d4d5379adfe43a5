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

# snippets run as a route handler's body by fuzz_sandbox.c (plugin fz, table
# fz_rows of 200 rows, fz_scratch writable; WITH names need the fz_ prefix):
# each must end within the sandbox's limits, whatever it tries
SANDBOX = {
    # what a handler usually does, and what the sandbox refuses
    "rows": b'local rows = tp.db.query("SELECT * FROM fz_rows WHERE n = ? ORDER BY id LIMIT 5", 3)\n'
            b'tp.db.exec("INSERT INTO fz_scratch (k, v) VALUES (?, ?)", "k", tp.json.encode(rows))\n'
            b'return 201, { rows = rows, one = tp.db.one("SELECT count(*) n FROM fz_scratch"), '
            b'r = tp.random(1, 6), now = tp.now() }',
    "fail": b'local ok, e = pcall(tp.fail, 409, "sold_out", "no more")\n'
            b'assert(not ok and e.code == "sold_out")\ntp.fail(409, "sold_out", "none left", { left = 0 })',
    "escapes": b'local ok, e = pcall(tp.fail, 400, "a", "b")\n'
               b'for _, v in ipairs({ e, tp.json.array({}), tp.json.object({}), "" }) do\n'
               b'  local mt = getmetatable(v)\n'
               b'  if type(mt) == "table" then mt.__gc = function() while true do end end end\nend\n'
               b'pcall(setmetatable, {}, { __gc = function() while true do end end })\n'
               b'pcall(string.dump, print)\npcall(load, "\\27Lua", "x", "b", {})\n'
               b'pcall(function() return io.open("/etc/passwd") end)\n'
               b'pcall(tp.db.exec, "DELETE FROM fz_rows")\npcall(tp.db.exec, "DROP TABLE fz_rows")\n'
               b'pcall(tp.db.exec, "ATTACH DATABASE \'/tmp/x\' AS x")\n'
               b'rawset(getmetatable(_ENV).__index, "leak", string.rep("x", 1 << 20))\n'
               b'string.rep = nil\nreturn { collected = collectgarbage("count") > 0 }',
    # pattern matching: backtracking over long subjects with 1, 2, 3 variable items
    "pattern_find_1_item_1mb": b'return { at = string.rep("a", 1 << 20):find(".-b") }',
    "pattern_find_2_items": b'return { at = string.rep("a", 100000):find(".-.-b") }',
    "pattern_match_3_items": b'return { m = string.rep("a", 10000):match("(.-)(.-)(.-)b") }',
    "pattern_anchored_3_items": b'return { at = ("a"):rep(1 << 20):find("^.-.-.-b") }',
    "pattern_gmatch": b'local n = 0\nfor w in string.rep("ab", 50000):gmatch("a.-a.-c") do n = n + 1 end\n'
                      b'return { n = n }',
    "pattern_gsub": b'local s, n = string.rep("a", 100000):gsub(".-.-b", "x")\nreturn { n = n }',
    "pattern_gsub_function": b'local s = ("a"):rep(30000)\n'
                             b'return { n = select(2, s:gsub("(a*)a*b", function(x) return x end)) }',
    "pattern_balance": b'return { at = string.rep("(", 100000):find("%b()") }',
    "pattern_frontier": b'return { at = string.rep("a", 100000):find("%f[%w]a-%f[%W]b") }',
    "pattern_sets": b'return { m = string.rep("ab", 50000):match("[ab]*[%a]*[^c]-c") }',
    "pattern_backreference": b'return { at = string.rep("a", 100000):find("(a*)%1b") }',
    "pattern_in_loop": b'local s = string.rep("a", 3000)\nfor i = 1, 1e6 do s:find(".-b") end',
    # SQL: the progress handler must stop these
    "sql_triple_join": b'return tp.db.one("SELECT count(*) n FROM fz_rows a, fz_rows b, fz_rows c")',
    "sql_endless_cte": b'return tp.db.one("WITH RECURSIVE fz_c(x) AS (SELECT 1 UNION ALL '
                       b'SELECT x + 1 FROM fz_c) SELECT count(*) n FROM fz_c")',
    "sql_query_loop": b'local n = 0\nfor i = 1, 1e9 do\n'
                      b'  n = n + #tp.db.query("SELECT * FROM fz_rows WHERE n = ?", i % 13)\nend',
    "sql_like": b'return tp.db.one("SELECT ? LIKE ? m", string.rep("a", 100000), '
                b'string.rep("%a", 20000) .. "b")',
    "sql_big_values": b'return tp.db.one("SELECT sum(length(hex(zeroblob(8000000 + a.id)))) n '
                      b'FROM fz_rows a, fz_rows b")',
    "sql_sort_big_rows": b'return tp.db.one("SELECT count(*) n FROM (SELECT zeroblob(10000000) || a.s b '
                         b'FROM fz_rows a, fz_rows b ORDER BY b)")',
    "sql_group_concat": b'return tp.db.one("SELECT length(group_concat(hex(zeroblob(100000)))) n '
                        b'FROM fz_rows a, fz_rows b")',
    "sql_writes": b'for i = 1, 1e9 do tp.db.exec("INSERT INTO fz_scratch (k, v) VALUES (?, ?)", '
                  b'"k" .. i, string.rep("v", 1000)) end',
    # the string, table and utf8 libraries, charged by size
    "string_rep_loop": b'local t = {}\nfor i = 1, 1e9 do t[i % 50 + 1] = string.rep("x", 100000) end',
    "string_format_loop": b'local s = string.rep("z", 100000)\n'
                          b'for i = 1, 1e9 do local f = string.format("%s%s%q", s, s, s) end',
    "string_functions_loop": b'local s = string.rep("Ab", 200000)\nfor i = 1, 1e9 do\n'
                             b'  s:upper(); s:lower(); s:reverse(); s:sub(2, -2); s:byte(1, 100)\nend',
    "table_concat_loop": b'local t = {}\nfor i = 1, 1000 do t[i] = string.rep("y", 1000) end\n'
                         b'for i = 1, 1e9 do local s = table.concat(t, ",") end',
    "table_sort_loop": b'local t = {}\nfor i = 1, 5000 do t[i] = (i * 7919) % 5000 end\n'
                       b'for i = 1, 1e9 do table.sort(t); table.sort(t, function(a, b) return a > b end) end',
    "table_unpack_move": b'local t = {}\nfor i = 1, 100000 do t[i] = i end\nfor i = 1, 1e9 do\n'
                         b'  table.move(t, 1, #t, 2); table.insert(t, 1, 0); table.remove(t, 1)\n'
                         b'  local ok = pcall(table.unpack, t)\nend',
    "utf8_loop": b'local s = string.rep("\xe4\xb8\xad", 1000000)\n'
                 b'for i = 1, 1e9 do utf8.len(s); utf8.codepoint(s, 1, 3000); utf8.offset(s, -1) end',
    "concat_loop": b'local s = string.rep("x", 3 << 20)\nfor i = 1, 1e9 do local t = s .. i end',
    "long_string_equality": b'local a = string.rep("a", 2 << 20)\n'
                            b'local b = string.rep("a", (2 << 20) - 1) .. "a"\n'
                            b'for i = 1, 1e9 do if a == b then end end',
    "long_string_less_than": b'local a = string.rep("a", 2 << 20)\n'
                             b'local b = string.rep("a", (2 << 20) - 1) .. "b"\n'
                             b'for i = 1, 1e9 do if a < b then end end',
    # tp.json and tp.crypto, charged by the bytes they read and build
    "json_loop": b'local t = {}\nfor i = 1, 10000 do t[i] = { id = i, s = "x" } end\n'
                 b'for i = 1, 1e9 do t = tp.json.decode(tp.json.encode(t)) end',
    "crypto_loop": b'local s = string.rep("c", 1 << 20)\n'
                   b'for i = 1, 1e9 do tp.crypto.sha256(s); tp.crypto.hmac_sha256(s, s) end',
    # control flow: loops, coroutines, caught errors
    "infinite_loop": b'while true do end',
    "goto_loop": b'::top:: goto top',
    "deep_recursion": b'local function f(n) return f(n + 1) + 1 end\nreturn { n = f(1) }',
    "coroutine_spin": b'local co = coroutine.wrap(function() while true do end end)\nco()',
    "coroutine_ping_pong": b'local co = coroutine.wrap(function() while true do coroutine.yield() end end)\n'
                           b'while true do co() end',
    "coroutine_swallow": b'while true do\n'
                         b'  coroutine.resume(coroutine.create(function() while true do end end))\nend',
    "pcall_swallow": b'while true do pcall(function() while true do end end) end',
    "pcall_swallow_c": b'while true do pcall(string.rep, "x", 1e9) end',
    "close_spin": b'local x <close> = setmetatable({}, { __close = function() while true do end end })\n'
                  b'while true do end',
    "error_object_tostring": b'error(setmetatable({}, { __tostring = function() while true do end end }))',
    # memory
    "memory_tables": b'local t = {}\nwhile true do t[#t + 1] = {} end',
    "memory_doubling": b'local s = "x"\nwhile true do s = s .. s end',
    "memory_rep": b'return { n = #string.rep("x", 1 << 40) }',
    "load_reader_function": b'local s = string.rep(" ", 3 << 20)\n'
                            b'return { f = tostring(load(function() return s end, "x", "t", {})) }',
    "load_big_source": b'local src = "return " .. string.rep("{", 190) .. string.rep("}", 190)\n'
                       b'for i = 1, 1e9 do load(src, "x", "t", {}) end',
}

CORPORA = {"fuzz_http": HTTP, "fuzz_json": JSON, "fuzz_token": TOKENS, "fuzz_config": CONFIGS,
           "fuzz_campaign": CAMPAIGNS, "fuzz_sandbox": SANDBOX}


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
