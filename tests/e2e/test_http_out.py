"""
test_http_out.py - calls out (issue 19 item 1: tp.http.request, store/outbox.c,
host/sender.c, net/outbound.c) against a fake upstream this test runs on
loopback:

- a call is made after its transaction commits, with the destination's secret
  put into its header by the host (never in a log), the Idempotency-Key and the
  JSON body, and its answer reaches the plugin's on_reply job with the context;
- a handler that fails after calling calls nobody;
- a destination the brand did not list for the plugin is refused at the call;
- a timeout, then a retry with the same key, then exactly one reply;
- a 503 is retried up to the call's attempts, then given up with ok = false;
- an answer over the destination's cap is a failure, not retried;
- kill -9 while a call is in flight: after the restart it is made again with the
  same key, and the plugin gets exactly one reply;
- 1,000 calls to an upstream that answers after 2 s leave the host's other
  requests as fast as before (p99 within 2x of the idle figure, or 50 ms);
- /metrics counts the attempts per destination;
- a burst of 120 calls from one request goes out over several of the sender's
  passes, each call made and answered once.
"""
import json
import os
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import QuietHandler, serve_loopback, Host, tenant, run  # noqa: E402

SECRET = "s3cret-erp-token-value"
ODD = "a b&c=d/é"   # a secret that a query must carry percent-encoded


class Upstream:
    """An HTTP server on loopback that records what it is sent. Behaviour per
    path prefix: /slow-once sleeps past the caller's timeout the first time,
    /down answers 503, /big answers 100 kB, /hang never answers until
    released, /slow answers after 2 s; anything else answers 200 with JSON."""

    def __init__(self, port=0):
        self.seen = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        up = self

        class Handler(QuietHandler):

            def do_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with up.lock:
                    up.seen.append({"method": self.command, "path": self.path,
                                    "headers": dict(self.headers), "body": body})
                    count = sum(1 for s in up.seen if s["path"] == self.path)
                path = self.path[4:] if self.path.startswith("/api/") else self.path
                if path.startswith("/slow-once"):
                    if count == 1:
                        time.sleep(1.5)
                elif path.startswith("/slow"):
                    time.sleep(2.0)
                if path.startswith("/hang"):
                    up.release.wait(30)
                status, out = 200, json.dumps({"got": self.path, "n": count}).encode()
                if path.startswith("/down"):
                    status, out = 503, b'{"busy":true}'
                if path.startswith("/big"):
                    out = b"x" * 100000
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except OSError:
                    pass

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_any

        self.server, self.port = serve_loopback(Handler, port)

    def requests(self, prefix):
        with self.lock:
            return [s for s in self.seen if s["path"].startswith(prefix)]

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


UP = Upstream()


def brand(tid="out", erp_port=None, **erp):
    t = tenant(tid, plugins={"caller": {}, "catalog": {}})
    dest = {"url": "http://127.0.0.1:%d/api/" % (erp_port or UP.port), "plugins": ["caller"],
            "timeout_ms": 500, "retry_base_ms": 100, "max_attempts": 5,
            "max_response_bytes": 10000, "secrets": {"token": SECRET, "odd": ODD}}
    dest.update(erp)
    t["http"] = {"erp": dest,
                 "crm": {"url": "http://127.0.0.1:%d" % UP.port, "plugins": ["someone_else"]},
                 "slowpoke": {"url": "http://127.0.0.1:%d/api" % UP.port, "plugins": ["caller"],
                              "timeout_ms": 10000, "max_attempts": 1}}
    return t


H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[brand()], name="httpout").start()
    return H


def call(h, tid="out", **body):
    return h.request("POST", "/v1/%s/caller/calls" % tid, body=body)


def wait(pred, timeout=30.0, what="it", h=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    host_ = h or H
    lines = [ln for ln in host_.lines if '"msg":"request"' not in ln][-30:] if host_ else []
    raise AssertionError("timed out waiting for %s\n%s" % (what, "\n".join(lines)))


def replies(h, call_id, tid="out"):
    status, _, body = h.get("/v1/%s/caller/replies" % tid)
    assert status == 200, body
    return [r for r in body["items"] if r["call_id"] == call_id]


def outbox_rows(h, tid="out"):
    db = sqlite3.connect("file:%s/%s.db?mode=ro" % (h.data_dir, tid), uri=True)
    try:
        return db.execute("SELECT id, attempts, dead_ms FROM _tp_outbox").fetchall()
    finally:
        db.close()


def test_a_call_is_made_after_commit_and_answered_to_its_job():
    h = host()
    status, _, body = call(h, to="erp", path="/orders?src=test", json={"order": 7},
                           headers={"Authorization": "Bearer {{secret:token}}"}, context={"order": 7})
    assert status == 201, body
    cid = body["id"]
    got = wait(lambda: UP.requests("/api/orders"), what="the call")
    r = got[0]
    assert r["method"] == "POST" and r["path"] == "/api/orders?src=test", r
    assert r["headers"]["Authorization"] == "Bearer " + SECRET, r["headers"]
    assert r["headers"]["Idempotency-Key"] == "tp-out-%d" % cid, r["headers"]
    assert r["headers"]["Content-Type"] == "application/json", r["headers"]
    assert json.loads(r["body"]) == {"order": 7}, r["body"]
    reply = wait(lambda: replies(h, cid), what="the reply")
    assert len(reply) == 1, reply
    reply = reply[0]
    assert reply["ok"] is True and reply["status"] == 200 and reply["attempts"] == 1, reply
    assert json.loads(reply["body"]) == {"got": "/api/orders?src=test", "n": 1}, reply
    assert reply["context"] == {"order": 7} and reply["to"] == "erp", reply
    assert wait(lambda: not outbox_rows(h), what="an empty outbox")
    text = "\n".join(h.lines)
    assert SECRET not in text, "the secret reached the log"
    assert "call out" in text


def test_a_secret_in_the_query_is_put_in_percent_encoded_by_the_host():
    h = host()
    status, _, body = call(h, to="erp", path="/code2session?appid=wx1&secret={{secret:odd}}&x=1")
    assert status == 201, body
    got = wait(lambda: UP.requests("/api/code2session"), what="the call")[0]
    assert got["path"] == "/api/code2session?appid=wx1&secret=a%20b%26c%3Dd%2F%C3%A9&x=1", got["path"]
    import urllib.parse
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(got["path"]).query)["secret"] == [ODD]
    assert "%20b%26c" not in "\n".join(h.lines) and ODD not in "\n".join(h.lines)
    status, _, body = call(h, to="erp", path="/x?s={{secret:nope}}")
    assert status == 500, body   # an unknown secret in the path is refused at the call


def test_a_handler_that_fails_after_calling_calls_nobody():
    h = host()
    before = len(UP.requests("/api/rolled"))
    status, _, body = call(h, to="erp", path="/rolled", json={}, fail_after=True)
    assert status == 409 and body["error"]["code"] == "rolled_back", body
    time.sleep(1.0)
    assert len(UP.requests("/api/rolled")) == before
    assert not outbox_rows(h)


def test_a_destination_not_listed_for_the_plugin_is_refused():
    h = host()
    for to in ("crm", "nowhere"):
        status, _, body = call(h, to=to, path="/x")
        assert status == 500 and body["error"]["code"] == "internal_error", body
    assert h.wait_log(lambda e: "destination 'crm' is not one this plugin may call" in e.get("error", ""),
                      what="the refusal in the log")
    status, _, body = call(h, to="erp", path="/x", headers={"X-Token": "{{secret:nope}}"})
    assert status == 500, body
    assert h.wait_log(lambda e: "destination 'erp' has no secret 'nope'" in e.get("error", ""),
                      what="the unknown secret in the log")


def test_a_timeout_then_a_retry_with_the_same_key_then_one_reply():
    h = host()
    status, _, body = call(h, to="erp", path="/slow-once", json={"n": 1})
    cid = body["id"]
    reply = wait(lambda: replies(h, cid), what="the reply")
    got = UP.requests("/api/slow-once")
    assert len(got) == 2, got
    assert got[0]["headers"]["Idempotency-Key"] == got[1]["headers"]["Idempotency-Key"] == "tp-out-%d" % cid
    time.sleep(0.5)
    reply = replies(h, cid)
    assert len(reply) == 1 and reply[0]["ok"] and reply[0]["attempts"] == 2, reply


def test_a_503_is_retried_up_to_its_attempts_then_given_up():
    h = host()
    status, _, body = call(h, to="erp", path="/down", json={}, attempts=3, key="order-9-notify")
    cid = body["id"]
    reply = wait(lambda: replies(h, cid), what="the reply")[0]
    assert reply["ok"] is False and reply["status"] == 503 and reply["attempts"] == 3, reply
    got = UP.requests("/api/down")
    assert len(got) == 3 and {g["headers"]["Idempotency-Key"] for g in got} == {"order-9-notify"}, got


def test_an_answer_over_the_cap_is_a_failure_not_retried():
    h = host()
    status, _, body = call(h, to="erp", path="/big")
    cid = body["id"]
    reply = wait(lambda: replies(h, cid), what="the reply")[0]
    assert reply["ok"] is False and reply["error"] == "response_too_large" and reply["attempts"] == 1, reply
    assert "body" not in reply


def test_kill_9_while_a_call_is_in_flight_sends_it_again_once():
    hang = Upstream()
    h = Host(tenants=[brand("crash", erp_port=hang.port, timeout_ms=20000)], name="httpout-crash").start()
    try:
        status, _, body = call(h, "crash", to="erp", path="/hang", json={"pay": 1})
        cid = body["id"]
        wait(lambda: hang.requests("/api/hang"), what="the call in flight")
        h.kill9()
        hang.release.set()   # the next attempt is answered at once
        h.start()
        reply = wait(lambda: replies(h, cid, "crash"), what="the reply after the restart")
        got = hang.requests("/api/hang")
        assert len(got) == 2, got
        assert got[0]["headers"]["Idempotency-Key"] == got[1]["headers"]["Idempotency-Key"]
        time.sleep(0.5)
        reply = replies(h, cid, "crash")
        assert len(reply) == 1 and reply[0]["ok"] and reply[0]["attempts"] == 2, reply
    finally:
        h.stop()
        hang.stop()


def test_a_burst_goes_out_in_passes_and_each_call_is_made_and_answered_once():
    """A POST that makes 120 calls: the sender starts a few per pass and writes
    the answers between the passes' polls (sender.c), yet every call is made
    once, with its own key, and answered to its job once; a restart after
    sends none of them again."""
    h = Host(tenants=[brand("burst")], name="httpout-burst").start()
    try:
        status, _, body = call(h, "burst", to="erp", path="/burst", json={})
        assert status == 201, body
        status, _, body = call(h, "burst", to="erp", path="/burst", times=120, json={})
        assert status == 201, body
        ids = body["ids"]
        wait(lambda: len([r for r in h.get("/v1/burst/caller/replies")[2]["items"]
                          if r["call_id"] in ids]) >= 120, what="the burst's replies", h=h)
        h.stop()
        h.start()
        time.sleep(1.0)
        got = UP.requests("/api/burst")
        keys = [r["headers"]["Idempotency-Key"] for r in got]
        assert len(got) == 121 and len(set(keys)) == 121, (len(got), len(set(keys)))
        status, _, out = h.get("/v1/burst/caller/replies")
        mine = [r for r in out["items"] if r["call_id"] in ids]
        assert sorted(r["call_id"] for r in mine) == sorted(ids), len(mine)
        assert all(r["ok"] and r["attempts"] == 1 for r in mine), mine[:3]
        assert not outbox_rows(h, "burst")
    finally:
        h.stop()


def p99(h, n=200):
    times = []
    for _ in range(n):
        t0 = time.monotonic()
        status, _, _ = h.get("/v1/out/catalog/products")
        times.append(time.monotonic() - t0)
        assert status == 200
    times.sort()
    return times[int(len(times) * 0.99) - 1]


def test_a_slow_upstream_does_not_slow_other_requests():
    h = host()
    idle = p99(h)
    status, _, body = call(h, to="slowpoke", path="/slow", times=1000, no_reply=True, json={})
    assert status == 201, body
    wait(lambda: len(UP.requests("/api/slow")) >= 900, what="the slow calls in flight")
    busy = p99(h)
    assert busy <= max(2 * idle, 0.05), (idle, busy)
    wait(lambda: not outbox_rows(h), timeout=30, what="the slow calls answered")


def test_metrics_count_the_attempts_per_destination():
    h = host()
    status, _, text = h.request("GET", "/metrics")
    assert status == 200
    text = text if isinstance(text, str) else json.dumps(text)
    assert 'tidepool_calls_out_total{tenant="out",to="erp",result="ok"}' in text, text[-3000:]
    assert 'tidepool_calls_out_total{tenant="out",to="erp",result="failed"}' in text
    assert 'tidepool_call_out_seconds_count{tenant="out",to="erp"}' in text


def test_the_kit_writes_calls_to_the_outbox_with_its_destinations():
    import subprocess
    from harness import BIN, HERE
    out = subprocess.run([BIN, "test", os.path.join(HERE, "plugins", "caller")], capture_output=True,
                         timeout=120)
    text = out.stdout.decode()
    assert out.returncode == 0 and "1 passed, 0 failed" in text, (out.returncode, text, out.stderr.decode())


def test_a_plugin_uses_a_secret_only_by_name_and_only_of_its_destinations():
    """tp.crypto.rsa_sign and aes_gcm_decrypt take a secret by name: never of a
    destination that does not list the plugin, never one that is not there,
    and a secret of the wrong kind is refused without showing it."""
    h = host()

    def crypto(**b):
        status, _, body = h.post("/v1/out/caller/crypto", b)
        assert status == 200, (status, body)
        return body
    for to in ("crm", "nowhere"):
        r = crypto(fn="rsa_sign", to=to, secret="token", args=["x"])
        assert r["ok"] is False and "is not one this plugin may use" in r["err"], r
    r = crypto(fn="rsa_sign", to="erp", secret="nope", args=["x"])
    assert r["ok"] is False and "destination 'erp' has no secret 'nope'" in r["err"], r
    r = crypto(fn="rsa_sign", to="erp", secret="token", args=["x"])
    assert r["ok"] is False and "is not an unencrypted RSA private key" in r["err"], r
    r = crypto(fn="aes_gcm_decrypt", to="erp", secret="token", args=["n" * 12, "", "AAAA"])
    assert r["ok"] is False and "must be 32 bytes" in r["err"], r
    assert SECRET not in json.dumps(r) and SECRET not in "\n".join(h.lines)


def teardown():
    if H:
        H.stop()
    UP.stop()


if __name__ == "__main__":
    run(globals())
