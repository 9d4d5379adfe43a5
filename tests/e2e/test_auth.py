"""
test_auth.py - tenants, user tokens and admin API keys, and tenant isolation.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Host, tenant, api_key, expect_error, read_db, sign_token, run  # noqa: E402

B = tenant("brand-b", plugins={"catalog": {}, "probe": {}})
A = tenant("brand-a", plugins={"catalog": {}, "probe": {}})
A["api_keys"].append("second-key-for-brand-a-rotation")
H = None


def host():
    global H
    if H is None:
        # sorted order here; the tests at the end list tenants the other way round
        # this file sends wrong keys on purpose: more than an address may in a minute
        H = Host(tenants=[A, B], name="auth", limits={"admin_key_failures": 1000}).start()
    return H


def craft(t, user, exp, tenant_id=None, secret=None):
    """A token made the way token.h describes, without the CLI."""
    return sign_token(secret or t["token_secret"], tenant_id or t["id"], user, exp)


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


ECHO = "/v1/brand-a/probe/echo/hello/7"


# ---- tenants

def test_unknown_tenant():
    h = host()
    body = expect_error(h.get("/v1/nobody/catalog/products"), 404, "tenant_not_found")
    assert "nobody" in body["error"]["message"]
    # to a stranger a missing tenant's admin routes look like an existing one's
    expect_error(h.get("/admin/nobody/plugins"), 401, "api_key_required")
    expect_error(h.get("/admin/nobody/plugins", headers={"X-Api-Key": "some-guess-0123456789"}),
                 403, "invalid_api_key")
    expect_error(h.get("/v1/brand/catalog/products"), 404, "tenant_not_found")    # a prefix
    expect_error(h.get("/v1/brand-a-x/catalog/products"), 404, "tenant_not_found")  # longer
    expect_error(h.get("/v1//catalog/products"), 404, "not_found")


# ---- user tokens

def test_cli_token_is_accepted_and_echo_sees_the_request():
    h = host()
    tok = h.token("brand-a", "wx:o6_user@1")
    status, _, body = h.request(
        "POST", ECHO + "?q=tea%20leaf&page=2&flag&plus=a+b",
        body={"x": [1, 2], "price_fen": 990},
        headers={"Authorization": "Bearer " + tok, "X-Foo": "bar baz"})
    assert status == 200, body
    assert body["user"] == "wx:o6_user@1"
    assert body["tenant"] == "brand-a"
    assert body["params"] == {"word": "hello", "n": 7}, body
    assert body["query"] == {"q": "tea leaf", "page": "2", "flag": "", "plus": "a b"}, body
    assert body["x_foo"] == "bar baz"
    assert body["body"] == {"x": [1, 2], "price_fen": 990}
    assert body["method"] == "POST" and body["path"] == "/v1/brand-a/probe/echo/hello/7"
    assert body["route"] == "/probe/echo/{word}/{n:int}"
    # a crafted token with the same secret is the same thing
    status, _, body = h.get(ECHO, headers=bearer(craft(A, "crafted", int(time.time()) + 60)))
    assert status == 200 and body["user"] == "crafted", body
    # "bearer" is case-insensitive
    status, _, body = h.get(ECHO, headers={"Authorization": "bearer " + tok})
    assert status == 200 and body["user"] == "wx:o6_user@1", body


def test_missing_token():
    h = host()
    body = expect_error(h.get(ECHO), 401, "auth_required")
    assert body["error"]["request_id"]
    # the handler did not run: a user route's write did not happen
    _, _, c0 = h.get("/v1/brand-a/probe/counter/auth")
    expect_error(h.post("/v1/brand-a/probe/counter/auth"), 401, "auth_required")
    assert h.get("/v1/brand-a/probe/counter/auth")[2]["value"] == c0["value"]


def test_malformed_tokens():
    h = host()
    good = craft(A, "u1", int(time.time()) + 60)
    for value in ("Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token " + good, "Bearer abc",
                  "Bearer " + good + ".extra", "Bearer v2" + good[2:],
                  "Bearer " + good.replace(".u1.", ".u 1."), "Bearer " + "x" * 600,
                  "Bearer " + good[:-1]):
        expect_error(h.get(ECHO, headers={"Authorization": value}), 401, "invalid_token")


def test_bad_signature():
    h = host()
    good = craft(A, "u1", int(time.time()) + 60)
    sig = good.rsplit(".", 1)[1]
    flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    body = expect_error(h.get(ECHO, headers=bearer(good.rsplit(".", 1)[0] + "." + flipped)), 401,
                        "invalid_token")
    assert "signature" in body["error"]["message"]
    # signed with another tenant's secret, claiming this tenant
    forged = craft(A, "u1", int(time.time()) + 60, secret=B["token_secret"])
    expect_error(h.get(ECHO, headers=bearer(forged)), 401, "invalid_token")
    # a changed user or expiry breaks the signature
    parts = good.split(".")
    expect_error(h.get(ECHO, headers=bearer(".".join(parts[:2] + ["admin"] + parts[3:]))), 401,
                 "invalid_token")
    expect_error(h.get(ECHO, headers=bearer(".".join(parts[:3] + [str(int(parts[3]) + 999)]
                                                     + parts[4:]))), 401, "invalid_token")


def test_expired_token_crafted():
    h = host()
    expect_error(h.get(ECHO, headers=bearer(craft(A, "u1", int(time.time()) - 5))), 401,
                 "token_expired")
    expect_error(h.get(ECHO, headers=bearer(craft(A, "u1", 0))), 401, "token_expired")


def test_expired_token_from_cli():
    h = host()
    tok = h.token("brand-a", "short-lived", ttl=1)
    time.sleep(2.2)
    expect_error(h.get(ECHO, headers=bearer(tok)), 401, "token_expired")


def test_token_of_another_tenant():
    h = host()
    tok_b = h.token("brand-b", "user-b")
    body = expect_error(h.get(ECHO, headers=bearer(tok_b)), 403, "wrong_tenant")
    assert "another tenant" in body["error"]["message"]
    # even for a tenant that does not exist
    expect_error(h.get(ECHO, headers=bearer(craft(A, "u", int(time.time()) + 60,
                                                  tenant_id="ghost"))), 403, "wrong_tenant")
    # and the right tenant's token still works there
    status, _, body = h.get("/v1/brand-b/probe/echo/x/1", headers=bearer(tok_b))
    assert status == 200 and body["user"] == "user-b" and body["tenant"] == "brand-b", body


def test_optional_auth():
    h = host()
    status, _, body = h.get("/v1/brand-a/probe/echo-optional")
    assert status == 200 and "user" not in body, body
    status, _, body = h.get("/v1/brand-a/probe/echo-optional",
                            headers=bearer(h.token("brand-a", "opt")))
    assert status == 200 and body["user"] == "opt", body
    # a token that is sent must be valid, even where it is optional
    expect_error(h.get("/v1/brand-a/probe/echo-optional", headers=bearer("garbage")), 401,
                 "invalid_token")


def test_user_and_tenant_in_request_log():
    h = host()
    mark = h.log_mark()
    h.get(ECHO, headers={"X-Request-Id": "auth-log-1", **bearer(h.token("brand-a", "logged"))})
    e = h.wait_log(lambda e: e.get("request_id") == "auth-log-1", timeout=10, start=mark)
    assert e["user"] == "logged" and e["tenant"] == "brand-a", e
    h.get(ECHO, headers={"X-Request-Id": "auth-log-2", **bearer("nope")})
    e = h.wait_log(lambda e: e.get("request_id") == "auth-log-2", timeout=10, start=mark)
    assert "user" not in e and e["error"] == "invalid_token" and e["status"] == 401, e


# ---- admin API keys

def test_admin_key_required():
    h = host()
    expect_error(h.post("/admin/brand-a/catalog/products", {"name": "x"}), 401, "api_key_required")
    expect_error(h.post("/admin/brand-a/catalog/products", {"name": "x"},
                        headers={"X-Api-Key": ""}), 401, "api_key_required")
    # a user token is not an admin credential
    expect_error(h.post("/admin/brand-a/catalog/products", {"name": "x"},
                        headers=bearer(h.token("brand-a", "u"))), 401, "api_key_required")


def test_admin_wrong_key():
    h = host()
    for key in ("wrong-key-0123456789", api_key(A) + "x", api_key(A)[:-1], api_key(B)):
        expect_error(h.post("/admin/brand-a/catalog/products", {"name": "x"},
                            headers={"X-Api-Key": key}), 403, "invalid_api_key")
    expect_error(h.get("/admin/brand-a/plugins", headers={"X-Api-Key": api_key(B)}), 403,
                 "invalid_api_key")


def test_admin_every_configured_key_works():
    h = host()
    for key in A["api_keys"]:
        status, _, body = h.get("/admin/brand-a/plugins", headers={"X-Api-Key": key})
        assert status == 200 and body["tenant"] == "brand-a", body
    status, _, body = h.get("/admin/brand-a/probe/admin-echo", headers={"X-Api-Key": api_key(A)})
    assert status == 200 and body["tenant"] == "brand-a" and "user" not in body, body


def test_admin_and_public_routes_are_separate():
    h = host()
    # admin routes are not reachable under /v1, public ones not under /admin
    expect_error(h.post("/v1/brand-a/catalog/products", {"name": "x"}), 405, "method_not_allowed")
    expect_error(h.get("/admin/brand-a/catalog/products", headers={"X-Api-Key": api_key(A)}), 405,
                 "method_not_allowed")
    expect_error(h.get("/admin/brand-a/probe/items/count", headers={"X-Api-Key": api_key(A)}), 404,
                 "route_not_found")


# ---- isolation

def test_tenants_never_see_each_other():
    h = host()
    status, _, p = h.admin("POST", "/catalog/products", A, body={
        "name": "A's secret blend", "skus": [{"code": "a-secret", "title": "t", "price_fen": 100,
                                              "stock": 5}]})
    assert status == 201, p
    _, _, a_list = h.get("/v1/brand-a/catalog/products")
    assert [i["name"] for i in a_list["items"]] == ["A's secret blend"], a_list
    _, _, b_list = h.get("/v1/brand-b/catalog/products")
    assert b_list["items"] == [], b_list
    expect_error(h.get("/v1/brand-b/catalog/products/%d" % p["id"]), 404, "product_not_found")
    expect_error(h.get("/v1/brand-b/catalog/skus/a-secret"), 404, "sku_not_found")
    # B's admin key cannot write A's stock, A's key cannot write B's
    expect_error(h.post("/admin/brand-a/catalog/skus/a-secret/stock", {"delta": -5},
                        headers={"X-Api-Key": api_key(B)}), 403, "invalid_api_key")
    expect_error(h.admin("POST", "/catalog/skus/a-secret/stock", B, body={"delta": -5}), 404,
                 "sku_not_found")
    assert h.get("/v1/brand-a/catalog/skus/a-secret")[2]["stock"] == 5
    # B creates its own product: it gets its own id space
    status, _, pb = h.admin("POST", "/catalog/products", B, body={"name": "B's blend", "skus": []})
    assert status == 201
    _, _, a_list = h.get("/v1/brand-a/catalog/products")
    assert "B's blend" not in [i["name"] for i in a_list["items"]], a_list
    # counters too
    tok_a, tok_b = h.token("brand-a", "u"), h.token("brand-b", "u")
    for _ in range(3):
        h.post("/v1/brand-a/probe/counter/iso", headers=bearer(tok_a))
    h.post("/v1/brand-b/probe/counter/iso", headers=bearer(tok_b))
    assert h.get("/v1/brand-a/probe/counter/iso")[2]["value"] == 3
    assert h.get("/v1/brand-b/probe/counter/iso")[2]["value"] == 1


def tenant_db_names(h, tid):
    return [r[0] for r in read_db(h, tid, "SELECT name FROM catalog_products ORDER BY id")]


def test_each_tenant_has_its_own_database_file():
    """What a tenant writes is in its own file (data_dir/<tenant>.db), also
    when the config does not list the tenants in sorted order."""
    for order in (["alpha", "beta"], ["beta", "alpha"]):
        ts = {tid: tenant(tid, plugins={"catalog": {}}) for tid in order}
        h2 = Host(tenants=[ts[tid] for tid in order], name="auth-files")
        try:
            h2.start()
            for tid in order:
                assert h2.admin("POST", "/catalog/products", ts[tid],
                                body={"name": "only in " + tid, "skus": []})[0] == 201
            files = {tid: tenant_db_names(h2, tid) for tid in order}
            code = h2.stop(check=False)
            assert files == {"alpha": ["only in alpha"], "beta": ["only in beta"]}, (
                "config order %s: database contents %s" % (order, files))
            h2.assert_no_sanitizer_report()
            assert code == 0, code
        finally:
            h2.cleanup()


def test_isolation_survives_a_reordered_config():
    """The same tenants, listed in the other order after a restart: each still
    sees exactly its own data through the API."""
    b = tenant("beta", plugins={"catalog": {}})
    a = tenant("alpha", plugins={"catalog": {}})
    h2 = Host(tenants=[b, a], name="auth-order").start()
    try:
        assert h2.admin("POST", "/catalog/products", b, body={"name": "beta only", "skus": []})[0] == 201
        assert h2.admin("POST", "/catalog/products", a, body={"name": "alpha only", "skus": []})[0] == 201
        before = {t: [i["name"] for i in h2.get("/v1/%s/catalog/products" % t)[2]["items"]]
                  for t in ("alpha", "beta")}
        codes = [h2.stop(check=False)]
        h2.tenants = [a, b]
        h2.write_config()
        h2.start()
        after = {t: [i["name"] for i in h2.get("/v1/%s/catalog/products" % t)[2]["items"]]
                 for t in ("alpha", "beta")}
        codes.append(h2.stop(check=False))
        assert before == {"alpha": ["alpha only"], "beta": ["beta only"]}, before
        assert after == before, "after reordering the config: %s" % after
        h2.assert_no_sanitizer_report(all_runs=True)
        assert codes == [0, 0], codes
    finally:
        h2.cleanup()


def test_token_cli_errors():
    import subprocess
    from harness import BIN
    h = host()
    out = subprocess.run([BIN, "token", "--config", h.config_path, "--tenant", "nobody",
                          "--user", "u"], capture_output=True, timeout=60)
    assert out.returncode != 0 and b"nobody" in out.stderr, out
    out = subprocess.run([BIN, "token", "--config", h.config_path, "--tenant", "brand-a",
                          "--user", "bad user"], capture_output=True, timeout=60)
    assert out.returncode != 0, out
    out = subprocess.run([BIN, "token", "--config", h.config_path, "--tenant", "brand-a",
                          "--user", "u", "--ttl", "0"], capture_output=True, timeout=60)
    assert out.returncode != 0, out


def teardown():
    if H is not None:
        H.stop()


if __name__ == "__main__":
    run(globals())
