"""
test_webhooks.py - the webhooks plugin (issue 19 item 5) against a receiver
this test runs on loopback, which checks what a brand's ERP would:

- an event a destination subscribes to arrives as a POST with the event's JSON,
  X-Tidepool-Event, the Idempotency-Key wh-<delivery> and X-Tidepool-Signature
  v1=hex(HMAC-SHA-256(secret, "<X-Tidepool-Timestamp>.<body>")), which the
  receiver verifies with the secret the brand configured; the delivery reads
  delivered;
- a receiver that keeps answering 503 gets the call up to the destination's
  attempts, then the delivery is dead, listed under state=dead with its error;
  once the receiver is back, the admin's retry delivers it with the same key.
"""
import hashlib
import hmac
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import QuietHandler, serve_loopback, HERE, SRC, Host, api_key, tenant, run  # noqa: E402

SECRET = "whsec-0123456789abcdef"


class Receiver:
    def __init__(self):
        self.seen, self.lock, self.down = [], threading.Lock(), True
        rec = self

        class Handler(QuietHandler):

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with rec.lock:
                    rec.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status = 503 if self.path.endswith("/down") and rec.down else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server, self.port = serve_loopback(Handler)

    def got(self, suffix):
        with self.lock:
            return [s for s in self.seen if s["path"].endswith(suffix)]


REC = Receiver()
T = tenant("wh", plugins={"webhooks": {}, "emitter": {}})
T["http"] = {"erp": {"url": "http://127.0.0.1:%d/hooks" % REC.port, "plugins": ["webhooks"],
                     "secrets": {"key": SECRET}, "sign": "key", "retry_base_ms": 100,
                     "max_attempts": 3, "timeout_ms": 2000}}
H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[T], name="webhooks", extra={"plugin_dirs": [
            os.path.join(SRC, "plugins"), os.path.join(HERE, "plugins"),
            os.path.join(SRC, "plugins", "webhooks", "test", "plugins")]}).start()
    return H


def admin(h, method, path, body=None):
    return h.request(method, "/admin/wh" + path, body=body, headers={"X-Api-Key": api_key(T)})


def wait(pred, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def deliveries(h, state=None):
    status, _, body = admin(h, "GET", "/webhooks/deliveries" + ("?state=" + state if state else ""))
    assert status == 200, body
    return body["items"]


def verify(req):
    """What the brand's receiver does: the signature over timestamp.body, recent."""
    ts = req["headers"]["X-Tidepool-Timestamp"]
    want = hmac.new(SECRET.encode(), ts.encode() + b"." + req["body"], hashlib.sha256).hexdigest()
    assert req["headers"]["X-Tidepool-Signature"] == "v1=" + want, req["headers"]
    assert abs(time.time() - int(ts)) < 300, ts


def test_an_event_arrives_signed_and_the_delivery_reads_delivered():
    h = host()
    status, _, sub = admin(h, "POST", "/webhooks/subscriptions",
                           {"event": "order.paid", "destination": "erp", "path": "/ok"})
    assert status == 201, sub
    status, _, body = h.request("POST", "/v1/wh/emitter/emit",
                                body={"name": "order.paid", "data": {"order_id": 7, "total_fen": 12800}})
    assert status == 201 and body["subscribers"] == 1, body
    req = wait(lambda: REC.got("/hooks/ok"), "the delivery")[0]
    verify(req)
    sent = json.loads(req["body"])
    assert sent["event"] == "order.paid" and sent["data"] == {"order_id": 7, "total_fen": 12800}, sent
    assert req["headers"]["X-Tidepool-Event"] == "order.paid"
    d = wait(lambda: [x for x in deliveries(h, "delivered") if x["event"] == "order.paid"], "delivered")[0]
    assert req["headers"]["Idempotency-Key"] == "wh-%d" % d["id"], req["headers"]
    assert d["attempts"] == 1 and d["status"] == 200, d
    assert SECRET not in "\n".join(h.lines)


def test_a_failing_receiver_makes_a_dead_letter_that_a_retry_delivers():
    h = host()
    status, _, sub = admin(h, "POST", "/webhooks/subscriptions",
                           {"event": "group.formed", "destination": "erp", "path": "/down"})
    assert status == 201, sub
    h.request("POST", "/v1/wh/emitter/emit", body={"name": "group.formed", "data": {"group_id": 3}})
    dead = wait(lambda: deliveries(h, "dead"), "the dead letter")[0]
    assert dead["attempts"] == 3 and dead["status"] == 503 and dead["last_error"] == "status 503", dead
    assert len(REC.got("/hooks/down")) == 3
    REC.down = False
    status, _, body = admin(h, "POST", "/webhooks/deliveries/%d/retry" % dead["id"])
    assert status == 202 and body["state"] == "pending", body
    wait(lambda: [x for x in deliveries(h, "delivered") if x["id"] == dead["id"]], "the retried delivery")
    got = REC.got("/hooks/down")
    assert len(got) == 4 and {g["headers"]["Idempotency-Key"] for g in got} == {"wh-%d" % dead["id"]}, got
    verify(got[-1])
    status, _, body = admin(h, "POST", "/webhooks/deliveries/%d/retry" % dead["id"])
    assert status == 409 and body["error"]["code"] == "delivery_not_dead", body


def teardown():
    if H:
        H.stop()
    REC.server.shutdown()


if __name__ == "__main__":
    run(globals())
