"""
test_keyguard.py - guessing admin keys (issue 25, item 4): ten wrong or missing
keys from one address within a minute lock that address out of every admin
route of every tenant and of the host for a minute (429 too_many_attempts with
Retry-After), even with the right key; a right key before that clears the
count; the log names the address and the tenant, never the key; the public
API keeps answering.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Host, tenant, api_key, expect_error, run  # noqa: E402

A = tenant("guard-a", plugins={"catalog": {}})
B = tenant("guard-b", plugins={"catalog": {}})
WRONG = "a-wrong-key-that-must-never-be-logged-0123"
H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[A, B], name="keyguard", extra={"admin_keys": ["host-admin-key-0123456789abcdef"]}).start()
    return H


def plugins(h, t, key):
    return h.request("GET", "/admin/%s/plugins" % t["id"], headers={"X-Api-Key": key} if key else {})


def test_a_right_key_clears_the_count():
    h = host()
    for _ in range(9):
        expect_error(plugins(h, A, WRONG), 403, "invalid_api_key")
    assert plugins(h, A, api_key(A))[0] == 200          # the tenth try is right: the count starts again
    for _ in range(9):
        expect_error(plugins(h, A, WRONG), 403, "invalid_api_key")
    assert plugins(h, A, api_key(A))[0] == 200


def test_a_thousand_wrong_keys_end_in_lock_out():
    h = host()
    mark = len(h.lines)
    answers = [plugins(h, A, WRONG if i % 2 else None) for i in range(1000)]
    codes = [a[2]["error"]["code"] for a in answers]
    assert codes[:10] == ["api_key_required", "invalid_api_key"] * 5, codes[:12]
    assert set(codes[10:]) == {"too_many_attempts"}, set(codes[10:])
    status, headers, body = answers[10]
    assert status == 429 and 55 <= int(headers["retry-after"]) <= 60, (status, headers, body)
    # locked: the right key of this tenant, another tenant's and the host's are refused too
    expect_error(plugins(h, A, api_key(A)), 429, "too_many_attempts")
    expect_error(plugins(h, B, api_key(B)), 429, "too_many_attempts")
    expect_error(h.request("POST", "/admin/reload", body={},
                           headers={"X-Api-Key": "host-admin-key-0123456789abcdef"}), 429, "too_many_attempts")
    # the public API answers as ever
    assert h.get("/v1/guard-a/catalog/products")[0] == 200
    # the log line is read from the host's stderr by another thread: wait for it
    locked = h.wait_log(lambda e: e.get("msg") == "admin key guessing: address locked out",
                        start=mark, what="the lock-out log line")
    assert locked["peer"] == "127.0.0.1", locked
    text = "\n".join(h.lines[mark:])
    assert WRONG not in text and api_key(A) not in text


P = tenant("guard-p", plugins={"catalog": {}})
HP = None


def proxied_host():
    """A host behind a proxy at 127.0.0.1: X-Forwarded-For names the client."""
    global HP
    if HP is None:
        HP = Host(tenants=[P], name="keyguard-proxied",
                  extra={"trusted_proxies": ["127.0.0.1"],
                         "admin_keys": ["host-admin-key-of-proxied-0123"]}).start()
    return HP


def via(h, client, key):
    return h.request("GET", "/admin/guard-p/plugins",
                     headers={"X-Api-Key": key, "X-Forwarded-For": "198.51.100.9, " + client})


def test_behind_a_trusted_proxy_each_client_counts_alone():
    h = proxied_host()
    for _ in range(10):
        via(h, "203.0.113.7", WRONG)
    expect_error(via(h, "203.0.113.7", api_key(P)), 429, "too_many_attempts")
    assert via(h, "203.0.113.8", api_key(P))[0] == 200     # another client behind the same proxy
    assert any("203.0.113.7" in line for line in h.lines), h.lines[-5:]


def test_metrics_are_for_the_machine_or_the_host_key():
    """GET /metrics names every brand and its traffic: a loopback client (Prometheus
    beside the host) reads it; a client through the proxy finds nothing there,
    unless it has the host's admin key."""
    h = proxied_host()
    status, _, text = h.request("GET", "/metrics")                   # the machine itself
    assert status == 200 and 'tenant="guard-p"' in text, status
    status, _, body = h.request("GET", "/metrics", headers={"X-Forwarded-For": "203.0.113.50"})
    assert status == 404 and body["error"]["code"] == "not_found", (status, body)
    assert "guard-p" not in json.dumps(body)
    status, _, text = h.request("GET", "/metrics", headers={"X-Forwarded-For": "203.0.113.50",
                                                            "X-Api-Key": "host-admin-key-of-proxied-0123"})
    assert status == 200 and 'tenant="guard-p"' in text, status
    status, _, body = h.request("GET", "/metrics", headers={"X-Forwarded-For": "203.0.113.50",
                                                            "X-Api-Key": WRONG})
    assert status == 404, status


def test_an_untrusted_peer_cannot_name_another_address():
    h = host()   # no trusted proxies: X-Forwarded-For is the client's say, and ignored
    # (the first host's address is locked by the test before: a forged header does not help)
    status, _, body = h.request("GET", "/admin/guard-a/plugins",
                                headers={"X-Api-Key": api_key(A), "X-Forwarded-For": "203.0.113.99"})
    assert status == 429 and body["error"]["code"] == "too_many_attempts", (status, body)


def teardown():
    for x in (H, HP):
        if x is not None:
            x.stop()


if __name__ == "__main__":
    run(globals())
