"""
test_hostapi.py - host API functions, end to end through a plugin:
tp.crypto (SHA-256 of "abc", RFC 4231 HMAC-SHA-256 cases 1 and 2, the
constant-time comparison, a bad encoding), tp.config() in a handler, at load,
in a job and in an export, tp.caller() direct, through tp.call and nested,
tp.exports (a served plugin's export, and what is not), and req.raw_body,
the body's exact bytes (what a signed callback is verified
over).

Plugins: tests/e2e/plugins/hostapi (the routes the test calls), hostmid and
hostend (the rest of a call chain hostapi -> hostmid -> hostend). The tenant
runs on a manual clock, so a job runs when the test advances it.
"""
import base64
import hashlib
import hmac
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Host, manual_tenant, advance, tasks, http_request_bytes,  # noqa: E402
                     run)

WEBHOOK_SECRET = "whsec-for-hostapi-0123456789"
T = manual_tenant("api", plugins={
    "hostapi": {"greeting": "nihao", "limits": {"n": 3}, "webhook_secret": WEBHOOK_SECRET},
    "hostmid": {"role": "middle"},
    "hostend": {"level": 3},
})

H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[T], name="hostapi").start()
    return H


def ok(result):
    status, _, body = result
    assert status in (200, 201), (status, body)
    return body


def crypto(fn, *args, hexed=False):
    return ok(host().post("/v1/api/hostapi/crypto", {"fn": fn, "args": list(args), "hex": hexed}))


def crypto_ok(fn, *args, hexed=False):
    body = crypto(fn, *args, hexed=hexed)
    assert body["ok"], body
    return body["result"]


def settle(h):
    """Runs whatever is due at the (unmoved) test clock; nothing may fail."""
    advance(h, T, seconds=0)
    for kind in ("jobs", "events"):
        listing = tasks(h, T, kind)
        assert listing["pending"] == 0 and listing["dead"] == 0, listing


# ---- tp.crypto

ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
RFC4231_1 = ("\x0b" * 20, "Hi There",
             "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
RFC4231_2 = ("Jefe", "what do ya want for nothing?",
             "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")


def b64(hexdigest):
    return base64.b64encode(bytes.fromhex(hexdigest)).decode()


def test_sha256_of_abc_in_hex_base64_and_raw():
    assert crypto_ok("sha256", "abc") == ABC_SHA256
    assert crypto_ok("sha256", "abc", "hex") == ABC_SHA256
    assert crypto_ok("sha256", "abc", "base64") == b64(ABC_SHA256) == \
        "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
    assert crypto_ok("sha256", "abc", "raw", hexed=True) == ABC_SHA256
    text = "茶 and tea"
    assert crypto_ok("sha256", text) == hashlib.sha256(text.encode()).hexdigest()


def test_hmac_sha256_rfc_4231_cases_1_and_2():
    for key, data, want in (RFC4231_1, RFC4231_2):
        assert crypto_ok("hmac_sha256", key, data) == want, (key, data)
        assert crypto_ok("hmac_sha256", key, data, "base64") == b64(want), (key, data)
        assert crypto_ok("hmac_sha256", key, data, "raw", hexed=True) == want, (key, data)


def test_equal_is_true_only_for_equal_strings():
    sig = b64(RFC4231_2[2])
    assert crypto_ok("equal", sig, sig) is True
    assert crypto_ok("equal", "", "") is True
    assert crypto_ok("equal", sig, sig[:-2] + "A=") is False     # last byte differs
    assert crypto_ok("equal", sig, "X" + sig[1:]) is False       # first byte differs
    assert crypto_ok("equal", sig, sig[:-1]) is False            # a prefix
    assert crypto_ok("equal", sig + "=", sig) is False           # longer
    assert crypto_ok("equal", "", "a") is False


def test_bad_arguments_raise_clear_errors():
    body = crypto("sha256", "abc", "hexa")
    assert not body["ok"] and \
        'tp.crypto.sha256: encoding must be "hex", "base64" or "raw" (got "hexa")' in body["err"], body
    body = crypto("hmac_sha256", "k", "d", "BASE64")
    assert not body["ok"] and "tp.crypto.hmac_sha256: encoding must be" in body["err"], body
    body = crypto("equal", "a")
    assert not body["ok"] and "tp.crypto.equal: b must be a string (got no value)" in body["err"], body


# ---- tp.config()

def test_config_is_the_plugins_config_table_in_a_handler_and_at_load():
    body = ok(host().get("/v1/api/hostapi/config"))
    assert body["config"] == T["plugins"]["hostapi"], body
    assert body["same_as_req"] is True and body["same_as_load"] is True, body
    assert body["caller_at_load"] == "nil", body


def test_config_and_caller_in_a_job_and_an_export_it_calls():
    h = host()
    ok(h.post("/v1/api/hostapi/schedule"))
    settle(h)
    rows = [r for r in ok(h.get("/v1/api/hostapi/seen"))["seen"] if r["kind"] == "job"]
    assert len(rows) == 1, rows
    job = rows[0]
    assert job["greeting"] == "nihao", job          # the job's own config, without a req
    assert job["caller"] == "nil", job              # the host ran the job: no caller
    # the export hostmid.whoami, called from the job: hostmid's config, caller hostapi
    assert json.loads(job["via"]) == {"caller": "hostapi", "role": "middle"}, job


def test_config_and_caller_in_an_event_handler():
    h = host()
    assert ok(h.post("/v1/api/hostapi/emit"))["subscribers"] == 1
    settle(h)
    rows = ok(h.get("/v1/api/hostmid/seen"))["seen"]
    assert rows == [{"kind": "event", "role": "middle", "caller": "nil", "source": "hostapi"}], rows


# ---- tp.caller()

def test_caller_is_nil_direct_the_calling_plugin_in_an_export_and_restored_after():
    h = host()
    body = ok(h.get("/v1/api/hostapi/caller"))
    assert body["direct"] == "nil", body
    assert body["via"] == {"caller": "hostapi", "role": "middle"}, body
    # hostapi -> hostmid -> hostend: each sees its immediate caller, hostmid
    # sees hostapi again once hostend has returned
    assert body["nested"] == {
        "before": "hostapi",
        "inner": {"caller": "hostmid", "config": {"level": 3}},
        "after": "hostapi",
    }, body
    # a callee that raised: the caller's caller is back all the same
    assert body["failed"] == {"callee_failed": True, "after": "hostapi"}, body
    # hostend called straight from hostapi: not the hostmid of the chain before
    assert body["straight"] == {"caller": "hostapi", "config": {"level": 3}}, body
    assert body["after"] == "nil", body
    # the host invokes hostmid's route directly afterwards: nothing left over
    assert ok(h.get("/v1/api/hostmid/caller")) == {"caller": "nil"}


# ---- tp.exports

def test_exports_is_true_only_for_a_served_plugins_export():
    body = ok(host().get("/v1/api/hostapi/exports"))
    assert (body["peer"], body["missing"], body["absent"], body["job"]) == (True, False, False, False), body
    # every plugin tp.exporters names for a function exports it
    assert body["every"] == {"hostend": True, "hostmid": True}, body
    assert "bad argument #2" in body["bad"] and "(string expected, got no value)" in body["bad"], body


# ---- req.raw_body

def test_raw_body_is_the_exact_bytes_sent():
    h = host()
    raw = b'{ "amount_fen" :  990,\n\t"order": "A-1",  "note": "\\u8336 \xe8\x8c\xb6" }  \r\n'
    sig = base64.b64encode(hmac.new(WEBHOOK_SECRET.encode(), raw, hashlib.sha256).digest()).decode()
    status, _, body = h.request("POST", "/v1/api/hostapi/raw", body=raw,
                                headers={"Content-Type": "application/json", "X-Signature": sig})
    assert status == 200, (status, body)
    assert body["is_nil"] is False, body
    assert body["raw"].encode("utf-8") == raw, (body["raw"], raw)
    assert body["length"] == len(raw), body
    assert body["sha256"] == hashlib.sha256(raw).hexdigest(), body
    assert body["decoded"] == json.loads(raw), body     # req.body is still the decoded table
    assert body["verified"] is True, body
    assert body["cached"] is True, body
    # one byte of whitespace more: the same JSON, another signature
    status, _, body = h.request("POST", "/v1/api/hostapi/raw", body=raw + b" ",
                                headers={"Content-Type": "application/json", "X-Signature": sig})
    assert status == 200 and body["verified"] is False and body["length"] == len(raw) + 1, body


def test_raw_body_is_nil_without_a_body():
    h = host()
    body = ok(h.get("/v1/api/hostapi/raw"))
    assert body["is_nil"] is True and "raw" not in body and body["length"] == 0, body
    resp = h.raw_exchange(http_request_bytes("POST", "/v1/api/hostapi/raw", body=b"",
                                             headers={"Content-Type": "application/json"}))
    assert resp.status == 200, resp
    assert resp.json()["is_nil"] is True, resp


def teardown():
    if H is not None:
        H.stop()


if __name__ == "__main__":
    run(globals())
