"""
test_api.py - the happy paths: built-in endpoints, the catalog plugin, the
plugin API as a handler sees it (JSON, randomness, logging, the sandbox), and
a plugin that fails to load.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostrng import HostRandom  # noqa: E402
from harness import Host, tenant, expect_error, metric_value, plugin_version, run  # noqa: E402

T = tenant("t1", plugins={"catalog": {"max_page_size": 50}, "probe": {}, "badload": {}})
SMALL = tenant("small", plugins={"catalog": {"max_page_size": 5}})
H = None


def host():
    global H
    if H is None:
        # listed in sorted order on purpose: see test_auth.py for the unsorted case
        H = Host(tenants=[SMALL, T], name="api").start()
    return H


def create_product(name, skus, status=None, description=None):
    body = {"name": name, "skus": skus}
    if status:
        body["status"] = status
    if description:
        body["description"] = description
    return host().admin("POST", "/catalog/products", T, body=body)


# ---- built-in endpoints

def test_healthz():
    status, headers, body = host().get("/healthz")
    assert status == 200 and body == {"status": "ok"}, (status, body)
    assert headers["content-type"] == "application/json"
    assert len(headers["x-request-id"]) == 16


def test_admin_plugins_lists_loaded_plugins():
    h = host()
    status, _, body = h.admin("GET", "/plugins", T)
    assert status == 200, body
    assert body["tenant"] == "t1"
    by_name = {p["name"]: p for p in body["plugins"]}
    status = {name: p["status"] for name, p in by_name.items()}
    assert status == {"badload": "failed", "catalog": "active", "probe": "active"}, status
    assert "badload exploded while loading" in by_name["badload"]["last_error"]
    assert by_name["badload"]["version"] is None
    declared = plugin_version("catalog")
    assert by_name["catalog"]["version"] == declared, (by_name["catalog"]["version"], declared)
    assert by_name["probe"]["version"] == "0.3.1"
    assert by_name["catalog"]["lua_memory_bytes"] > 0
    assert "catalog GET /v1/{tenant}/catalog/products" in by_name["catalog"]["routes"]
    assert "catalog POST /admin/{tenant}/catalog/products" in by_name["catalog"]["routes"]
    expect_error(h.get("/admin/t1/plugins"), 401, "api_key_required")


def test_badload_is_reported_and_others_serve():
    h = host()
    e = h.wait_log(lambda e: e.get("msg") == "plugin not enabled" and e.get("plugin") == "badload",
                   timeout=1, what="plugin not enabled for badload")
    assert e["level"] == "error" and e["tenant"] == "t1"
    assert "badload exploded while loading" in e["error"], e
    listening = h.wait_log(lambda e: e.get("msg") == "listening", timeout=1)
    assert listening["plugins_failed"] == 1, listening
    assert listening["tenants"] == 2
    expect_error(h.get("/v1/t1/badload/ping"), 404, "route_not_found")
    h.assert_serving("t1")


def test_route_clash_refuses_the_later_plugin_whole():
    """Plugins load in name order: catalog first, then clash, whose
    GET /catalog/products is taken. clash is refused, catalog keeps its routes."""
    t = tenant("t1", plugins={"catalog": {}, "clash": {}, "probe": {}})
    with Host(tenants=[t], name="api-clash") as h2:
        e = h2.wait_log(lambda e: e.get("msg") == "plugin not enabled", timeout=1)
        assert e["plugin"] == "clash" and "/catalog/products" in e["error"], e
        status, _, body = h2.get("/v1/t1/catalog/products")
        assert status == 200 and "items" in body and "hijacked" not in body, body
        expect_error(h2.get("/v1/t1/clash/own"), 404, "route_not_found")
        assert h2.get("/v1/t1/probe/items/count")[0] == 200        # loaded after the clash
        _, _, plugins = h2.admin("GET", "/plugins", t)
        status = {p["name"]: p["status"] for p in plugins["plugins"]}
        assert status == {"catalog": "active", "clash": "failed", "probe": "active"}, plugins
        clash = [p for p in plugins["plugins"] if p["name"] == "clash"][0]
        assert "/catalog/products" in clash["last_error"], clash


def test_metrics():
    h = host()
    h.get("/v1/t1/catalog/products")
    h.post("/v1/t1/probe/items", {"note": "for metrics"})
    status, headers, text = h.get("/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain"), headers
    for family in ("tidepool_requests_total", "tidepool_commit_batch_size",
                   "tidepool_lua_memory_bytes", "tidepool_request_duration_seconds",
                   "tidepool_commits_total", "tidepool_open_connections",
                   "tidepool_plugins_failed", "tidepool_plugin_errors_total"):
        assert "# TYPE %s " % family in text, family
    n = metric_value(text, "tidepool_requests_total",
                     {"route": "catalog GET /v1/{tenant}/catalog/products", "status": "200"})
    assert n is not None and n >= 1, n
    assert metric_value(text, "tidepool_commit_batch_size_count") >= 1
    assert metric_value(text, "tidepool_commits_total", {"result": "ok"}) >= 1
    mem = metric_value(text, "tidepool_lua_memory_bytes", {"tenant": "t1", "plugin": "catalog"})
    assert mem is not None and mem > 1000, mem
    assert metric_value(text, "tidepool_lua_memory_bytes", {"plugin": "probe"}) > 1000
    assert metric_value(text, "tidepool_lua_memory_bytes", {"plugin": "badload"}) is None
    assert metric_value(text, "tidepool_plugins_failed") == 1
    assert metric_value(text, "tidepool_open_connections") >= 1


# ---- the catalog plugin

def test_catalog_create_list_get():
    h = host()
    status, _, p = create_product("Oolong", [
        {"code": "oolong-250", "title": "250 g", "price_fen": 6800, "stock": 10},
        {"code": "oolong-50", "title": "50 g", "price_fen": 990, "stock": 3},
    ], description="Roasted, from Anxi")
    assert status == 201, p
    assert isinstance(p["id"], int) and p["name"] == "Oolong" and p["status"] == "on_sale"
    assert p["description"] == "Roasted, from Anxi"
    assert [s["code"] for s in p["skus"]] == ["oolong-50", "oolong-250"]   # by price
    assert p["skus"][0]["price_fen"] == 990 and p["skus"][0]["stock"] == 3
    assert abs(p["created_at"] - time.time()) < 120

    status, _, got = h.get("/v1/t1/catalog/products/%d" % p["id"])
    assert status == 200 and got == p, (got, p)

    status, _, lst = h.get("/v1/t1/catalog/products")
    assert status == 200
    item = [i for i in lst["items"] if i["id"] == p["id"]]
    assert item == [{"id": p["id"], "name": "Oolong", "min_price_fen": 990,
                     "max_price_fen": 6800, "stock": 13}], item

    status, _, sku = h.get("/v1/t1/catalog/skus/oolong-50")
    assert status == 200 and sku["product_id"] == p["id"] and sku["price_fen"] == 990, sku
    expect_error(h.get("/v1/t1/catalog/skus/nope"), 404, "sku_not_found")
    expect_error(h.get("/v1/t1/catalog/products/999999"), 404, "product_not_found")


def test_catalog_stock_never_below_zero():
    h = host()
    status, _, p = create_product("Pu-erh", [{"code": "puerh-1", "title": "cake", "price_fen": 12000,
                                              "stock": 2}])
    assert status == 201, p
    path = "/catalog/skus/puerh-1/stock"
    status, _, r = h.admin("POST", path, T, body={"delta": -2})
    assert status == 200 and r == {"code": "puerh-1", "stock": 0}, r
    body = expect_error(h.admin("POST", path, T, body={"delta": -1}), 409, "insufficient_stock")
    assert body["error"]["request_id"]
    status, _, r = h.admin("POST", path, T, body={"delta": 5})
    assert status == 200 and r["stock"] == 5, r
    expect_error(h.admin("POST", path, T, body={"delta": -6}), 409, "insufficient_stock")
    status, _, sku = h.get("/v1/t1/catalog/skus/puerh-1")
    assert sku["stock"] == 5, sku
    expect_error(h.admin("POST", path, T, body={"delta": 0}), 400, "invalid_field")
    expect_error(h.admin("POST", path, T, body={"delta": 1.5}), 400, "invalid_field")
    expect_error(h.admin("POST", "/catalog/skus/ghost/stock", T, body={"delta": 1}), 404,
                 "sku_not_found")


def test_catalog_duplicate_sku_rolls_back_the_product():
    h = host()
    _, _, before = h.get("/v1/t1/catalog/products?limit=5")
    status, _, p = create_product("Green", [{"code": "green-1", "title": "a", "price_fen": 1,
                                             "stock": 1}])
    assert status == 201
    count_before = len(all_products())
    body = expect_error(create_product("Green again", [
        {"code": "green-2", "title": "b", "price_fen": 1, "stock": 1},
        {"code": "green-1", "title": "dup", "price_fen": 1, "stock": 1}]), 409, "sku_exists")
    assert body["error"]["details"] == {"code": "green-1"}, body
    after = all_products()
    assert len(after) == count_before, (count_before, after)  # the product row was rolled back
    expect_error(h.get("/v1/t1/catalog/skus/green-2"), 404, "sku_not_found")  # and the first SKU


def all_products():
    h = host()
    items, after = [], 0
    while True:
        status, _, page = h.get("/v1/t1/catalog/products?limit=5&after=%d" % after)
        assert status == 200, page
        items += page["items"]
        if not page.get("next_after"):
            return items
        after = page["next_after"]


def test_catalog_pagination():
    h = host()
    for i in range(7):
        assert create_product("Page %d" % i, [])[0] == 201
    items = all_products()
    ids = [i["id"] for i in items]
    assert ids == sorted(ids) and len(ids) == len(set(ids)) and len(ids) >= 7
    status, _, page = h.get("/v1/t1/catalog/products?limit=2")
    assert len(page["items"]) == 2 and page["next_after"] == page["items"][1]["id"], page
    expect_error(h.get("/v1/t1/catalog/products?limit=0"), 400, "invalid_query")
    expect_error(h.get("/v1/t1/catalog/products?limit=51"), 400, "invalid_query")


def test_catalog_plugin_config_max_page_size():
    h = host()
    # tenant "small" configures catalog with max_page_size = 5
    status, _, page = h.get("/v1/small/catalog/products?limit=5")
    assert status == 200 and page["items"] == [], page
    body = expect_error(h.get("/v1/small/catalog/products?limit=6"), 400, "invalid_query")
    assert "1-5" in body["error"]["message"], body


def test_catalog_default_page_respects_max_page_size():
    # PLUGIN BUG (plugins/catalog/plugin.lua, list_products): without ?limit the
    # page size defaults to 20 even when the tenant's max_page_size is smaller,
    # so every plain list request of such a tenant fails with 400 invalid_query.
    status, _, page = host().get("/v1/small/catalog/products")
    assert status == 200, (status, page)


def test_catalog_update_and_put_sku():
    h = host()
    status, _, p = create_product("White", [])
    pid = p["id"]
    status, _, r = h.admin("PUT", "/catalog/skus/white-1", T,
                           body={"product_id": pid, "title": "100 g", "price_fen": 4500, "stock": 7})
    assert status == 200 and r == {"code": "white-1", "product_id": pid, "title": "100 g",
                                   "price_fen": 4500, "stock": 7}, r
    status, _, r = h.admin("PATCH", "/catalog/products/%d" % pid, T, body={"status": "off_sale"})
    assert status == 200 and r["status"] == "off_sale" and r["name"] == "White", r
    expect_error(h.get("/v1/t1/catalog/products/%d" % pid), 404, "product_not_found")
    assert pid not in [i["id"] for i in all_products()]
    expect_error(h.get("/v1/t1/catalog/skus/white-1"), 404, "sku_not_found")
    expect_error(h.admin("PATCH", "/catalog/products/999999", T, body={"name": "x"}), 404,
                 "product_not_found")
    body = expect_error(h.admin("PUT", "/catalog/skus/white-2", T,
                                body={"product_id": 999999, "title": "t", "price_fen": 1, "stock": 1}),
                        400, "invalid_field")
    assert body["error"]["details"] == {"field": "product_id"}


def test_catalog_validation():
    h = host()
    body = expect_error(create_product("", []), 400, "invalid_field")
    assert body["error"]["details"] == {"field": "name"}
    body = expect_error(create_product("x", [{"code": "bad code!", "title": "t", "price_fen": 1,
                                              "stock": 1}]), 400, "invalid_field")
    assert body["error"]["details"] == {"field": "code"}
    body = expect_error(create_product("x", [{"code": "neg", "title": "t", "price_fen": -1,
                                              "stock": 1}]), 400, "invalid_field")
    assert body["error"]["details"] == {"field": "price_fen"}
    expect_error(create_product("x", [], status="sold_out"), 400, "invalid_field")
    expect_error(h.admin("POST", "/catalog/products", T, body="\"just a string\"",
                         headers={"Content-Type": "application/json"}), 400, "invalid_body")
    expect_error(h.admin("POST", "/catalog/products", T), 400, "invalid_body")


# ---- the plugin API, seen from a handler

def test_json_big_integers_are_exact():
    status, _, body = host().get("/v1/t1/probe/bigints")
    assert status == 200, body
    assert body["above_2_53"] == 9007199254740993, body
    assert body["big"] == 123456789012345678
    assert body["max"] == 9223372036854775807 and body["min"] == -9223372036854775808
    assert body["negative"] == -9007199254740993
    assert body["list"] == [9007199254740993, 1, -1]
    assert body["float"] == 0.5


def test_json_bigint_digits_on_the_wire():
    r = host().raw_exchange(b"GET /v1/t1/probe/bigints HTTP/1.1\r\nHost: x\r\n\r\n")
    text = r.body.decode()
    for digits in ("9007199254740993", "123456789012345678", "9223372036854775807",
                   "-9223372036854775808"):
        assert digits in text, (digits, text)
    assert "e+" not in text and "E+" not in text, text


def test_json_integers_arrive_as_integers():
    status, _, body = host().post("/v1/t1/probe/json", {
        "price_fen": 990, "items": [{"price_fen": 5}], "ratio": 0.25, "nothing": None})
    assert status == 200, body
    assert body["price_fen"] == 990 and body["price_type"] == "integer", body
    assert body["nested_type"] == "integer"
    assert body["float_type"] == "float" and body["ratio"] == 0.25
    assert body["is_null"] is True
    assert body["roundtrip_type"] == "integer" and body["roundtrip"] == {"n": 990, "a": [1, 2.5]}
    assert body["unicode"] == "茶 ✓"


def test_json_arrays_and_objects():
    r = host().raw_exchange(
        b'POST /v1/t1/probe/json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
        b'Content-Length: 16\r\n\r\n{"price_fen": 1}')
    assert r.status == 200, r
    text = r.body.decode()
    body = r.json()
    assert body["empty_array"] == [] and '"empty_array":[]' in text, text
    assert body["empty_object"] == {} and '"empty_object":{}' in text
    assert body["plain_empty"] == {}
    assert body["query_rows"] == [] and '"query_rows":[]' in text   # tp.db.query: always a list
    assert body["array"] == [1, 2, 3]
    assert body["encoded"] == "[]"


def xoshiro_draws(seed, n_ints, lo, hi):
    """What the probe's random route draws: n_ints in [lo, hi], a float, a die."""
    rng = HostRandom(seed)
    ints = [rng.ranged(lo, hi) for _ in range(n_ints)]
    return ints, rng.float(), rng.ranged(1, 6)


def test_random_is_replayable_from_logged_seed():
    h = host()
    for rid in ("replay-1", "replay-2"):
        status, _, body = h.get("/v1/t1/probe/random", headers={"X-Request-Id": rid})
        assert status == 200, body
        line = h.wait_log(lambda e: e.get("msg") == "request" and e.get("request_id") == rid,
                          timeout=10, what="the request line of " + rid)
        assert "seed" in line, line
        assert line["seed"] == body["seed"], (line, body)
        ints, f, d6 = xoshiro_draws(line["seed"], 5, 1, 1000000)
        assert body["ints"] == ints, (body["ints"], ints)
        assert body["float"] == f, (body["float"], f)
        assert body["n6"] == d6
    # two invocations do not share a sequence
    _, _, a = h.get("/v1/t1/probe/random")
    _, _, b = h.get("/v1/t1/probe/random")
    assert a["seed"] != b["seed"] and a["ints"] != b["ints"]


def test_tp_log_goes_to_the_log_tagged():
    h = host()
    status, _, body = h.get("/v1/t1/probe/log", headers={"X-Request-Id": "log-probe-1"})
    assert status == 200
    e = h.wait_log(lambda e: e.get("msg") == "probe says hello", timeout=10)
    assert e["level"] == "warn" and e["tenant"] == "t1" and e["plugin"] == "probe", e
    assert e["request_id"] == "log-probe-1"
    assert e["fields"] == {"k": 1, "who": "probe"}, e
    # print() logs at debug level, below this host's info level
    assert not [x for x in h.logs() if "printed" in x.get("msg", "")]


def test_sandbox_and_load_context():
    status, _, body = host().get("/v1/t1/probe/env")
    assert status == 200, body
    denied = body["denied"]
    for name in ("io", "os", "debug", "package", "dofile", "loadfile", "string.dump",
                 "load of bytecode", "collectgarbage", "math.randomseed"):
        assert denied[name] is True, (name, denied)
    checks = body["load_checks"]
    assert checks["db_exec"]["ok"] is False
    assert "not available while the plugin loads" in checks["db_exec"]["err"], checks
    assert checks["random"]["ok"] is False
    assert checks["now"]["ok"] is True
    assert body["timezone"] == "Asia/Shanghai"
    assert body["localtime"]["hour"] == 8 and body["localtime"]["utc_offset"] == 28800
    assert body["localtime"]["year"] == 1970 and body["localtime"]["wday"] == 4  # a Thursday
    assert abs(body["now"] - time.time()) < 120
    assert body["now_ms"] // 1000 == body["now"]


def test_request_log_line():
    h = host()
    mark = h.log_mark()
    h.get("/v1/t1/catalog/products", headers={"X-Request-Id": "log-line-check"})
    e = h.wait_log(lambda e: e.get("request_id") == "log-line-check" and e.get("msg") == "request",
                   timeout=10, start=mark)
    assert e["tenant"] == "t1" and e["method"] == "GET" and e["status"] == 200, e
    assert e["route"] == "catalog GET /v1/{tenant}/catalog/products"
    assert isinstance(e["duration_ms"], (int, float))


def teardown():
    if H is not None:
        H.stop()
        assert any(e.get("msg") == "stopped" for e in H.logs())


if __name__ == "__main__":
    run(globals())
