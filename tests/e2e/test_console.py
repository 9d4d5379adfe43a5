"""
test_console.py - the web console over HTTP (issue 23), no browser: the host
serves /console/ and Debian's Vue and Chart.js with their types, ETags and
gzip, and nothing outside its folders whatever the path; console users sign
in (the password hash runs off the loop), get an HttpOnly SameSite=Strict
cookie and a CSRF token that every write must carry, are locked out after
wrong passwords and signed out; roles hold for sessions and for keys alike,
from one table, and a store manager sees its own store only.
(tests/e2e/test_console_ui.py drives the same pages in Chromium.)
"""
import gzip
import http.client
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, Host, add_sku, api_key, expect_error, run, tenant  # noqa: E402

OWNER_KEY = "console-owner-key-0123456789"
SM_KEY = "console-store-key-hz-west-0123"
FIN_KEY = "console-finance-key-0123456789"
DEV_KEY = "console-developer-key-01234567"
PEPPER = "console-test-phone-pepper-0123"

T = tenant("leaf", plugins={
    "catalog": {}, "orders": {"attribution_plugin": "referral"},
    "payments": {"secret": "console-payment-secret-0123456789"},
    "flash_sale": {}, "referral": {}, "analytics": {}, "members": {"phone_pepper": PEPPER}})
T["api_keys"] = [OWNER_KEY, {"key": SM_KEY, "role": "store_manager", "store": "hz-west"},
                 {"key": FIN_KEY, "role": "finance"}, {"key": DEV_KEY, "role": "developer"}]
OTHER = tenant("other", plugins={"catalog": {}})
PASSWORD = "a-long-console-password"
H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[T, OTHER], name="console",
                 extra={"console": {"password_iterations": 1000, "sign_in_failures": 3}}).start()
        for name, role, store in (("olive", "owner", None), ("mei", "store_manager", "hz-west"),
                                  ("fay", "finance", None), ("dev", "developer", None)):
            body = {"name": name, "password": PASSWORD, "role": role}
            if store:
                body["store"] = store
            status, _, answer = H.admin("POST", "/console/users", T, body)
            assert status == 201, (status, answer)
    return H


def key(k):
    return {"X-Api-Key": k}


def sign_in(h, user, password=PASSWORD, tid="leaf"):
    """(status, cookie value or None, body)."""
    status, headers, body = h.request("POST", "/console/api/%s/session" % tid,
                                      body={"user": user, "password": password})
    cookie = None
    for part in headers.get("set-cookie", "").split(";"):
        if part.strip().startswith("tp_console="):
            cookie = part.strip()[len("tp_console="):]
    return status, cookie, body


def with_session(cookie, csrf=None):
    h = {"Cookie": "tp_console=" + cookie}
    if csrf:
        h["X-CSRF-Token"] = csrf
    return h


def fetch(h, path, headers=None):
    """(status, headers, raw bytes) without decoding anything."""
    conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=20)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


# ---- the files

def test_the_console_and_debians_libraries_are_served_with_types_etags_and_gzip():
    h = host()
    status, headers, body = fetch(h, "/console/")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8", (status, headers)
    assert b"vendor/vue.js" in body and "frame-ancestors 'none'" in headers["content-security-policy"]
    assert fetch(h, "/console")[0] == 301
    for path, size in (("/console/vendor/vue.js", 90000), ("/console/vendor/chart.js", 190000)):
        status, headers, raw = fetch(h, path)
        assert status == 200 and headers["content-type"] == "application/javascript; charset=utf-8"
        assert len(raw) > size and headers["cache-control"] == "public, max-age=86400", headers
        status, zheaders, zipped = fetch(h, path, {"Accept-Encoding": "gzip, deflate"})
        assert zheaders["content-encoding"] == "gzip" and gzip.decompress(zipped) == raw
        assert len(zipped) < len(raw) / 2, (path, len(zipped), len(raw))
        assert fetch(h, path, {"If-None-Match": headers["etag"]})[0] == 304
        assert fetch(h, path, {"Accept-Encoding": "gzip;q=0"})[1].get("content-encoding") is None
    status, headers, _ = fetch(h, "/console/app.js")
    assert status == 200 and headers["cache-control"] == "no-cache" and headers["etag"]
    assert fetch(h, "/console/app.css")[1]["content-type"] == "text/css; charset=utf-8"


def test_hostile_paths_find_nothing_outside_the_console():
    h = host()
    for path in ["/console/../README.md", "/console/%2e%2e/README.md", "/console/..%2fREADME.md",
                 "/console/.gitignore", "/console/vendor/../../../../etc/passwd",
                 "/console//etc/passwd", "/console/index.html/", "/console/a%00.js",
                 "/console/vendor/vue/vue.js", "/console/vendor/jquery/jquery.js",
                 "/console/%2fetc%2fpasswd", "/console/app.js%00.html", "/console/" + "a/" * 200 + "x.js",
                 "/console/nothing.js", "/console/app.lua", "/console/\\..\\README.md"]:
        conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=20)
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        r = conn.getresponse()
        body = r.read()
        conn.close()
        assert r.status in (400, 404), (path, r.status, body[:200])
        assert json.loads(body)["error"]["code"] in ("not_found", "bad_request"), (path, body)
    expect_error(h.request("POST", "/console/app.js", body={}), 405, "method_not_allowed")


def test_the_first_load_is_under_300_kb_gzipped():
    h = host()
    total = 0
    for path in ["/console/", "/console/app.css", "/console/vendor/vue.js", "/console/vendor/chart.js",
                 "/console/i18n.js", "/console/app.js"]:
        status, headers, raw = fetch(h, path, {"Accept-Encoding": "gzip"})
        assert status == 200, path
        total += len(raw) + sum(len(k) + len(v) + 4 for k, v in headers.items())
    assert total < 300 * 1024, total


# ---- signing in

def test_sign_in_sets_an_httponly_strict_cookie_and_gives_a_csrf_token():
    h = host()
    status, headers, body = h.request("POST", "/console/api/leaf/session",
                                      body={"user": "olive", "password": PASSWORD})
    assert status == 200, body
    cookie = headers["set-cookie"]
    for attr in ("HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"):
        assert attr in cookie, cookie
    assert body["role"] == "owner" and body["store"] is None and len(body["csrf"]) == 64, body
    assert body["timezone"] == "Asia/Shanghai"
    assert "Secure" not in cookie, cookie               # plain HTTP here; behind a TLS proxy:
    tls = h.request("POST", "/console/api/leaf/session", body={"user": "olive", "password": PASSWORD},
                    headers={"X-Forwarded-Proto": "https"})[1]["set-cookie"]
    assert tls.endswith("; Secure"), tls
    value = cookie.split(";")[0].split("=", 1)[1]
    status, _, me = h.get("/console/api/leaf/session", headers=with_session(value))
    assert status == 200 and me["user"] == "olive" and me["csrf"] == body["csrf"], me
    # the session is leaf's: another brand does not know it
    expect_error(h.get("/console/api/other/session", headers=with_session(value)), 401, "session_expired")
    expect_error(h.get("/admin/other/plugins", headers=with_session(value)), 401, "session_expired")
    # reads need no token; the session stands in for a key
    assert h.get("/admin/leaf/plugins", headers=with_session(value))[0] == 200


def test_wrong_passwords_unknown_users_and_bad_bodies_are_refused_alike():
    h = host()
    expect_error(h.request("POST", "/console/api/leaf/session", body={"user": "olive", "password": "nope"}),
                 401, "sign_in_failed")
    expect_error(h.request("POST", "/console/api/leaf/session", body={"user": "nobody", "password": PASSWORD}),
                 401, "sign_in_failed")
    expect_error(h.request("POST", "/console/api/leaf/session", body="user=olive",
                           headers={"Content-Type": "application/x-www-form-urlencoded"}),
                 415, "unsupported_media_type")
    expect_error(h.request("POST", "/console/api/leaf/session", body="{",
                           headers={"Content-Type": "application/json"}), 400, "invalid_json")
    expect_error(h.request("POST", "/console/api/leaf/session", body={"user": 7, "password": "x"}),
                 400, "invalid_field")
    expect_error(h.request("POST", "/console/api/nobody/session", body={"user": "a", "password": "b"}),
                 404, "tenant_not_found")
    assert sign_in(h, "olive")[0] == 200      # a right one clears the count
    # no password or name reaches the log
    text = "\n".join(h.run_lines())
    assert PASSWORD not in text and "nobody" not in text.replace("no tenant 'nobody'", ""), \
        [ln for ln in h.run_lines() if PASSWORD in ln][:3]


def test_every_write_of_a_session_needs_its_csrf_token():
    h = host()
    _, cookie, me = sign_in(h, "olive")
    expect_error(h.post("/admin/leaf/reload", {}, headers=with_session(cookie)), 403, "csrf_required")
    expect_error(h.post("/admin/leaf/reload", {}, headers=with_session(cookie, "0" * 64)), 403, "csrf_required")
    _, _, other = sign_in(h, "olive")        # another session's token is not this one's
    expect_error(h.post("/admin/leaf/reload", {}, headers=with_session(cookie, other["csrf"])),
                 403, "csrf_required")
    status, _, body = h.post("/admin/leaf/reload", {"plugin": "catalog"}, headers=with_session(cookie, me["csrf"]))
    assert status == 200, body
    # signing out is a write too, then the cookie is worth nothing
    expect_error(h.request("DELETE", "/console/api/leaf/session", headers=with_session(cookie)),
                 403, "csrf_required")
    status, headers, _ = h.request("DELETE", "/console/api/leaf/session", headers=with_session(cookie, me["csrf"]))
    assert status == 200 and "Max-Age=0" in headers["set-cookie"], headers
    expect_error(h.get("/admin/leaf/plugins", headers=with_session(cookie)), 401, "session_expired")


def test_repeated_wrong_passwords_lock_the_user_out():
    h = host()
    for _ in range(3):
        expect_error(h.request("POST", "/console/api/leaf/session", body={"user": "dev", "password": "wrong-guess"}),
                     401, "sign_in_failed")
    status, headers, body = h.request("POST", "/console/api/leaf/session", body={"user": "dev", "password": PASSWORD})
    assert status == 429 and body["error"]["code"] == "account_locked", body
    assert 800 < int(headers["retry-after"]) <= 901, headers
    assert sign_in(h, "olive")[0] == 200      # the others sign in as ever
    status, _, users = h.admin("GET", "/console/users", T)
    locked = {u["name"]: u["locked_until_ms"] for u in users["users"]}
    assert locked["dev"] > 0 and locked["olive"] == 0, locked
    # an owner sets a new password: the lock ends
    status, _, _ = h.admin("POST", "/console/users", T, {"name": "dev", "password": PASSWORD, "role": "developer"})
    assert status == 201 and sign_in(h, "dev")[0] == 200


# ---- roles: one table, for keys and sessions alike

def test_roles_hold_for_keys_and_sessions_alike():
    h = host()
    cases = [  # (method, path, body, {role: allowed})
        ("GET", "/plugins", None, {"owner": 1, "finance": 0, "developer": 1, "store_manager": 0}),
        ("GET", "/jobs?state=dead", None, {"owner": 1, "finance": 0, "developer": 1, "store_manager": 0}),
        ("GET", "/orders?store=hz-west", None, {"owner": 1, "finance": 1, "developer": 0, "store_manager": 1}),
        ("GET", "/flash-sales", None, {"owner": 1, "finance": 0, "developer": 0, "store_manager": 0}),
        ("GET", "/console/users", None, {"owner": 1, "finance": 0, "developer": 0, "store_manager": 0}),
        ("GET", "/members?store=hz-west", None, {"owner": 1, "finance": 0, "developer": 0, "store_manager": 1}),
        ("GET", "/members/segments", None, {"owner": 1, "finance": 0, "developer": 0, "store_manager": 0}),
    ]
    keys = {"owner": OWNER_KEY, "finance": FIN_KEY, "developer": DEV_KEY, "store_manager": SM_KEY}
    users = {"owner": "olive", "finance": "fay", "developer": "dev", "store_manager": "mei"}
    sessions = {role: sign_in(h, name)[1] for role, name in users.items()}
    for method, path, body, allowed in cases:
        for role, ok in allowed.items():
            for how, headers in (("key", key(keys[role])), ("session", with_session(sessions[role]))):
                status, _, answer = h.request(method, "/admin/leaf" + path, body=body, headers=headers)
                if ok:
                    assert status == 200, (role, how, path, status, answer)
                else:
                    assert status == 403 and answer["error"]["code"] == "role_forbidden", (role, how, path, answer)
    # the old plain keys stay owners: nothing existing breaks
    assert h.admin("GET", "/console/users", T)[0] == 200


def test_a_store_manager_sees_its_own_store_only():
    h = host()
    for store in ("hz-west", "hz-east"):
        status, _, body = h.admin("POST", "/referral/stores", T, {"id": store, "name": "store " + store})
        assert status in (201, 409), body
    _, cookie, _ = sign_in(h, "mei")
    for headers in (key(SM_KEY), with_session(cookie)):
        assert h.get("/admin/leaf/referral/stores/hz-west/performance", headers=headers)[0] == 200
        assert h.get("/admin/leaf/referral/stores/hz-west/orders", headers=headers)[0] == 200
        expect_error(h.get("/admin/leaf/referral/stores/hz-east/orders", headers=headers), 403, "store_forbidden")
        expect_error(h.get("/admin/leaf/referral/stores/hz-east/performance", headers=headers),
                     403, "store_forbidden")
        assert h.get("/admin/leaf/analytics/overview?store=hz-west", headers=headers)[0] == 200
        for q in ("", "?store=hz-east", "?store=hz-west&store=hz-east", "?store=hz-east&store=hz-west",
                  "?store=HZ-WEST", "?store=hz-west%00"):
            status, _, body = h.get("/admin/leaf/analytics/overview" + q, headers=headers)
            assert status in (400, 403), (q, status, body)
        for path in ("/analytics/sources?store=hz-west", "/members/segments",
                     "/referral/stores", "/analytics/members/m1?store=hz-west"):
            expect_error(h.get("/admin/leaf" + path, headers=headers), 403, "role_forbidden")
        # members: those its store first brought, named in the request
        west = h.admin("POST", "/members/identify", T, {"identities": [{"channel": "mp_openid", "id": "o-west"}],
                                                         "source": {"channel": "qr_code", "store": "hz-west"}})[2]
        east = h.admin("POST", "/members/identify", T, {"identities": [{"channel": "mp_openid", "id": "o-east"}],
                                                         "source": {"channel": "qr_code", "store": "hz-east"}})[2]
        ids = [m["id"] for m in h.get("/admin/leaf/members?store=hz-west", headers=headers)[2]["items"]]
        assert west["member"]["id"] in ids and east["member"]["id"] not in ids, ids
        assert h.get("/admin/leaf/members/%s?store=hz-west" % west["member"]["id"], headers=headers)[0] == 200
        expect_error(h.get("/admin/leaf/members/%s?store=hz-west" % east["member"]["id"], headers=headers),
                     404, "member_not_found")
        expect_error(h.get("/admin/leaf/members/lookup?channel=mp_openid&id=o-east&store=hz-west", headers=headers),
                     404, "member_not_found")
        for path in ("/members", "/members?store=hz-east", "/members/%s" % east["member"]["id"]):
            expect_error(h.get("/admin/leaf" + path, headers=headers), 403, "store_forbidden")
        # orders: its own store's only, named in the request
        assert h.get("/admin/leaf/orders?store=hz-west", headers=headers)[0] == 200
        for path in ("/orders", "/orders?store=hz-east", "/orders/1", "/orders/1?store=hz-east"):
            expect_error(h.get("/admin/leaf" + path, headers=headers), 403, "store_forbidden")
        expect_error(h.get("/admin/leaf/orders/999999?store=hz-west", headers=headers), 404, "order_not_found")
    # the owner sees both
    assert h.admin("GET", "/referral/stores/hz-east/performance", T)[0] == 200


# ---- users

def test_console_users_are_the_owners_to_manage_and_checked():
    h = host()
    bad = [({"name": "x y", "password": PASSWORD, "role": "owner"}, "name"),
           ({"name": "ok", "password": "short", "role": "owner"}, "password"),
           ({"name": "ok", "password": PASSWORD, "role": "king"}, "role"),
           ({"name": "ok", "password": PASSWORD, "role": "store_manager"}, "store"),
           ({"name": "ok", "password": PASSWORD, "role": "owner", "store": "hz-west"}, "store")]
    for body, word in bad:
        status, _, answer = h.admin("POST", "/console/users", T, body)
        assert status == 400 and answer["error"]["code"] == "invalid_field" and word in answer["error"]["message"], \
            (body, answer)
    expect_error(h.request("POST", "/admin/leaf/console/users", body={"name": "z", "password": PASSWORD,
                                                                     "role": "owner"}, headers=key(FIN_KEY)),
                 403, "role_forbidden")
    status, _, users = h.admin("GET", "/console/users", T)
    assert "hash" not in json.dumps(users) and "pbkdf2" not in json.dumps(users), users
    # removing a user ends its sessions
    h.admin("POST", "/console/users", T, {"name": "temp", "password": PASSWORD, "role": "operator"})
    _, cookie, _ = sign_in(h, "temp")
    assert h.get("/admin/leaf/flash-sales", headers=with_session(cookie))[0] == 200
    assert h.admin("DELETE", "/console/users/temp", T)[0] == 200
    expect_error(h.get("/admin/leaf/flash-sales", headers=with_session(cookie)), 401, "session_expired")
    expect_error(h.admin("DELETE", "/console/users/temp", T), 404, "user_not_found")


def test_the_cli_adds_and_lists_users_in_the_brands_file():
    h = host()
    env = dict(os.environ, TIDEPOOL_CONSOLE_PASSWORD=PASSWORD)
    r = subprocess.run([BIN, "console-user", "add", "--config", h.config_path, "--tenant", "leaf",
                        "--user", "cli-op", "--role", "operator"], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 0 and json.loads(r.stdout)["role"] == "operator", (r.stdout, r.stderr)
    r = subprocess.run([BIN, "console-user", "add", "--config", h.config_path, "--tenant", "leaf",
                        "--user", "cli-sm", "--role", "store_manager"], capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 2 and "--store" in r.stderr, r.stderr
    r = subprocess.run([BIN, "console-user", "add", "--config", h.config_path, "--tenant", "leaf",
                        "--user", "cli-short", "--role", "operator"], capture_output=True, text=True,
                       input="short\n", timeout=60)
    assert r.returncode == 2, r.stderr
    r = subprocess.run([BIN, "console-user", "list", "--config", h.config_path, "--tenant", "leaf"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "cli-op" in r.stdout and PASSWORD not in r.stdout, r.stdout
    status, _, body = sign_in(h, "cli-op")[0], None, None
    assert status == 200


# ---- a slow hash runs off the loop, and a session ends on time

def test_the_loop_serves_while_a_password_is_hashed_and_sessions_expire():
    t = tenant("brief", plugins={"catalog": {}})
    slow = Host(tenants=[t], name="console-slow",
                extra={"console": {"session_seconds": 2, "password_iterations": 3000000}}).start()
    try:
        t0 = time.monotonic()
        status, _, _ = slow.admin("POST", "/console/users", t, {"name": "b", "password": PASSWORD, "role": "owner"})
        hash_s = time.monotonic() - t0
        assert status == 201, status
        answers = {}

        def signing_in():
            answers["sign_in"] = sign_in(slow, "b", tid="brief")
            answers["sign_in_done"] = time.monotonic()

        th = threading.Thread(target=signing_in)
        th.start()
        time.sleep(0.05)
        pings = []
        while th.is_alive() and len(pings) < 50:
            p0 = time.monotonic()
            assert slow.get("/healthz")[0] == 200
            pings.append(time.monotonic() - p0)
        th.join()
        status, cookie, body = answers["sign_in"]
        assert status == 200, body
        assert hash_s > 0.2 and pings and max(pings) < hash_s / 2, (hash_s, pings)
        assert slow.get("/admin/brief/plugins", headers=with_session(cookie))[0] == 200
        time.sleep(2.5)
        expect_error(slow.get("/admin/brief/plugins", headers=with_session(cookie)), 401, "session_expired")
        expect_error(slow.get("/console/api/brief/session", headers=with_session(cookie)), 401, "session_expired")
    finally:
        slow.stop()


def test_the_host_stops_cleanly():
    host().stop()


if __name__ == "__main__":
    run(globals())
