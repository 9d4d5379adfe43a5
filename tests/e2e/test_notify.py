"""
test_notify.py - subscription messages (issue 19 item 4: plugins/notify, the
destination's token option in host/sender.c) against a fake WeChat API server
this test runs on loopback. The fake checks what WeChat checks:

- POST /cgi-bin/stable_token: JSON grant_type "client_credential", the appid
  and the app secret the brand configured (else 40002/40013/40001); it hands
  out tokens that expire after EXPIRES_IN seconds (short), the same one while
  valid, as stable_token does;
- POST /cgi-bin/message/subscribe/send?access_token=...: an unknown token is
  40001, an expired or revoked one 42001; the touser must be an openid the
  mini-program knows (40003), the template known (40037), each data key one of
  the template's with a value within its type's limit (47003), the page one of
  the app's (41030); each message takes one of the user's acceptances, 43101
  with none left.

Scenarios: a group forms and each subscribed member gets one message (the
unsubscribed one none: skipped), one acceptance consumed per message; a token
WeChat revoked mid-run (42001) is refetched and the message sent within the
same attempt; a token past its expires_in is refetched before use; errcode -1
is retried, 43101 is final and recorded; the app secret and every token are in
no log line and no file of the data directory.
"""
import http.server
import json
import os
import secrets as pysecrets
import socketserver
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (HERE, SRC, Host, add_sku, api_key, clock, manual_tenant,  # noqa: E402
                     user_auth, run, wait_until)

APPID = "wx5e1f0c0ffee12345"
APP_SECRET = "app-secret-0f1e2d3c4b5a69788796a5b4c3d2e1f0"
EXPIRES_IN = 3          # seconds: short, so the host must refetch during the run
PAY_SECRET = "notify-payment-secret-0123456789abcdef"
DAY = 86400

TPL_FORMED = "TPL-group-formed-0001"
TPL_BARGAIN = "TPL-bargain-floor-0002"
TEMPLATES = {  # what the fake knows of each template: its keys
    TPL_FORMED: {"thing1", "amount2", "number3", "phrase4"},
    TPL_BARGAIN: {"thing1", "amount2"},
}
PAGES = ("pages/group/index", "pages/bargain/index")
LIMITS = {"thing": 20, "number": 32, "phrase": 5, "character_string": 32}


class FakeWeChat:
    """WeChat's server API on loopback: stable_token and subscribe/send."""

    def __init__(self):
        self.lock = threading.Lock()
        self.token_requests = []     # the JSON bodies of stable_token calls
        self.sends = []              # {token, body, answer}
        self.tokens = {}             # token -> expiry (monotonic); revoked: 0
        self.current = None
        self.quota = {}              # (openid, template_id) -> acceptances left
        self.busy_once = set()       # openids answered -1 once
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def answer(self, obj):
                out = json.dumps(obj).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                url = urllib.parse.urlsplit(self.path)
                try:
                    body = json.loads(raw)
                except ValueError:
                    return self.answer({"errcode": 47001, "errmsg": "data format error"})
                with fake.lock:
                    if url.path == "/cgi-bin/stable_token":
                        self.answer(fake.stable_token(body))
                    elif url.path == "/cgi-bin/message/subscribe/send":
                        query = urllib.parse.parse_qs(url.query)
                        self.answer(fake.send(query.get("access_token", [""])[0], body))
                    else:
                        self.answer({"errcode": 404, "errmsg": "no such api"})

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stable_token(self, body):
        self.token_requests.append(body)
        if body.get("grant_type") != "client_credential":
            return {"errcode": 40002, "errmsg": "invalid grant_type"}
        if body.get("appid") != APPID:
            return {"errcode": 40013, "errmsg": "invalid appid"}
        if body.get("secret") != APP_SECRET:
            return {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"}
        now = time.monotonic()
        if self.current is None or self.tokens.get(self.current, 0) <= now:
            self.current = "ACCESS_TOKEN_" + pysecrets.token_hex(24)
            self.tokens[self.current] = now + EXPIRES_IN
        return {"access_token": self.current, "expires_in": int(round(self.tokens[self.current] - now))}

    def send(self, token, body):
        entry = {"token": token, "body": body}
        self.sends.append(entry)
        entry["answer"] = answer = self._send(token, body)
        return answer

    def _send(self, token, body):
        if token not in self.tokens:
            return {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"}
        if self.tokens[token] <= time.monotonic():
            return {"errcode": 42001, "errmsg": "access_token expired"}
        touser, tpl = body.get("touser"), body.get("template_id")
        if not isinstance(touser, str) or not touser.startswith("o-"):
            return {"errcode": 40003, "errmsg": "invalid openid"}
        if tpl not in TEMPLATES:
            return {"errcode": 40037, "errmsg": "invalid template_id"}
        data = body.get("data") or {}
        for key, v in data.items():
            kind = key.rstrip("0123456789")
            value = v.get("value") if isinstance(v, dict) else None
            if key not in TEMPLATES[tpl] or not isinstance(value, str) or \
                    len(value) > LIMITS.get(kind, 64):
                return {"errcode": 47003, "errmsg": "argument invalid! data.%s.value invalid" % key}
        if "page" in body and not body["page"].startswith(PAGES):
            return {"errcode": 41030, "errmsg": "invalid page"}
        if touser in self.busy_once:
            self.busy_once.discard(touser)
            return {"errcode": -1, "errmsg": "system error"}
        if self.quota.get((touser, tpl), 0) <= 0:
            return {"errcode": 43101, "errmsg": "user refuse to accept the msg"}
        self.quota[(touser, tpl)] -= 1
        return {"errcode": 0, "errmsg": "ok"}

    def revoke(self):
        """WeChat invalidates the current token before its expiry (another server refreshed)."""
        with self.lock:
            self.tokens[self.current] = 0

    def accepted(self, openid, tpl):
        """The user tapped "accept" in wx.requestSubscribeMessage: WeChat's side of it."""
        with self.lock:
            self.quota[(openid, tpl)] = self.quota.get((openid, tpl), 0) + 1

    def sent_to(self, openid, ok_only=True):
        with self.lock:
            return [s for s in self.sends if s["body"].get("touser") == openid and
                    (not ok_only or s["answer"]["errcode"] == 0)]

    def all_tokens(self):
        with self.lock:
            return list(self.tokens)


WX = FakeWeChat()

NOTIFY = {
    "templates": {
        "group_formed": {
            "event": "group.formed", "template_id": TPL_FORMED,
            "page": "pages/group/index?id={group.id}",
            "to": {"orders": "order_ids"},
            "data": {"thing1": "order.lines.1.title", "amount2": "order.total_fen",
                     "number3": "group.group_size", "phrase4": {"value": "拼团成功"}},
        },
        "bargain_floor": {
            "event": "bargain.floor_reached", "template_id": TPL_BARGAIN,
            "page": "pages/bargain/index?id={bargain.id}",
            "to": {"user": "bargain.initiator"},
            "data": {"thing1": "bargain.title", "amount2": "bargain.price_fen"},
        },
    },
}
T = manual_tenant("ntf", {"catalog": {}, "orders": {"max_unpaid_orders": 5},
                          "payments": {"secret": PAY_SECRET}, "group_buy": {}, "notify": NOTIFY,
                          "emitter": {}})
T["http"] = {"wechat": {"url": "http://127.0.0.1:%d" % WX.port, "plugins": ["notify"],
                        "secrets": {"app_secret": APP_SECRET},
                        "token": {"path": "/cgi-bin/stable_token", "appid": APPID, "secret": "app_secret"},
                        "retry_base_ms": 100, "max_attempts": 4, "timeout_ms": 3000}}
H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[T], name="notify", extra={"plugin_dirs": [
            os.path.join(SRC, "plugins"), os.path.join(HERE, "plugins"),
            os.path.join(SRC, "plugins", "notify", "test", "plugins")]}).start()
    return H


def admin(h, method, path, body=None, want=200):
    status, _, answer = h.request(method, "/admin/ntf" + path, body=body, headers={"X-Api-Key": api_key(T)})
    assert status == want, (method, path, status, answer)
    return answer


def subscribe(h, user, tpl, openid=None):
    """The mini-program reports an acceptance; WeChat counts it too."""
    openid = openid or "o-" + user
    status, _, body = h.post("/v1/ntf/notify/subscriptions",
                             {"template_ids": [tpl], "accepted": [tpl], "openid": openid},
                             headers=user_auth(T, user, DAY))
    assert status == 200, body
    WX.accepted(openid, tpl)
    return body["items"][0]["remaining"]


def remaining(h, user):
    status, _, body = h.request("GET", "/v1/ntf/notify/subscriptions", headers=user_auth(T, user, DAY))
    assert status == 200, body
    return {i["template_id"]: i["remaining"] for i in body["items"]}


def deliveries(h, user=None, state=None):
    q = "&".join(x for x in ("user=" + user if user else "", "state=" + state if state else "") if x)
    return admin(h, "GET", "/notify/deliveries" + ("?" + q if q else ""))["items"]


def settled(h, user):
    """The user's deliveries, once none is still sending."""
    out = []

    def done():
        out[:] = deliveries(h, user)
        return out and all(d["state"] != "sending" for d in out)
    wait_until(done, 20, what="%s's deliveries to settle" % user)
    return out


# ---- a group, the way group_buy forms one

def order_for(h, path, user):
    status, _, body = h.post(path, {}, headers=user_auth(T, user, DAY))
    assert status == 201, (status, body)
    pay = admin(h, "POST", "/payments/simulate", {"order_id": body["order"]["id"]})
    assert pay["result"]["outcome"] == "paid", pay
    return body


def form_group(h, users):
    now = clock(h, T)["now"]
    add_sku(h, T, "tea-set", 100, 9900)
    a = admin(h, "POST", "/group-buys", {"sku": "tea-set", "group_size": len(users), "price_fen": 5900,
                                         "group_ttl_seconds": DAY, "unpaid_timeout_seconds": 900,
                                         "starts_at": now - 60, "ends_at": now + 30 * DAY,
                                         "per_user_limit": 1, "per_order_limit": 1}, want=201)
    first = order_for(h, "/v1/ntf/group-buys/%d/open" % a["id"], users[0])
    gid = first["group"]["id"]
    wait_until(lambda: admin(h, "GET", "/group-buys/%d/groups/%d" % (a["id"], gid))["state"] == "open", 10,
               what="the group to open")
    for u in users[1:]:
        order_for(h, "/v1/ntf/group-buys/%d/groups/%d/join" % (a["id"], gid), u)
    wait_until(lambda: admin(h, "GET", "/group-buys/%d/groups/%d" % (a["id"], gid))["state"] == "formed", 10,
               what="the group to form")
    return gid


def floor_reached(h, user, bid):
    status, _, body = h.post("/v1/ntf/emitter/emit", {"name": "bargain.floor_reached", "data": {
        "bargain": {"id": bid, "initiator": user, "title": "手工粗陶茶具", "price_fen": 1990}}})
    assert status == 201 and body["subscribers"] >= 1, body


# ---- the scenarios

def test_a_group_forms_and_each_subscribed_member_gets_one_message():
    h = host()
    assert subscribe(h, "gu1", TPL_FORMED) == 1
    assert subscribe(h, "gu1", TPL_FORMED) == 2          # two acceptances: one stays after
    assert subscribe(h, "gu2", TPL_FORMED) == 1
    gid = form_group(h, ["gu1", "gu2", "gu3"])            # gu3 never accepted
    for user in ("gu1", "gu2"):
        d = settled(h, user)
        assert len(d) == 1 and d[0]["state"] == "sent" and d[0]["errcode"] == 0, d
        assert d[0]["errmsg"] == "ok" and d[0]["template"] == "group_formed", d
        got = WX.sent_to("o-" + user)
        assert len(got) == 1, got
        body = got[0]["body"]
        assert body["template_id"] == TPL_FORMED and body["touser"] == "o-" + user, body
        assert body["page"] == "pages/group/index?id=%d" % gid, body
        assert body["data"] == {"thing1": {"value": "title tea-set"}, "amount2": {"value": "¥59.00"},
                                "number3": {"value": "3"}, "phrase4": {"value": "拼团成功"}}, body
    d = settled(h, "gu3")
    assert len(d) == 1 and d[0]["state"] == "skipped" and d[0]["reason"] == "no_subscription", d
    assert WX.sent_to("o-gu3", ok_only=False) == []
    assert remaining(h, "gu1") == {TPL_FORMED: 1} and remaining(h, "gu2") == {TPL_FORMED: 0}
    assert WX.quota[("o-gu1", TPL_FORMED)] == 1 and WX.quota[("o-gu2", TPL_FORMED)] == 0
    # the stable_token call carried what WeChat checks
    first = WX.token_requests[0]
    assert first == {"grant_type": "client_credential", "appid": APPID, "secret": APP_SECRET,
                     "force_refresh": False}, first


def test_a_token_revoked_mid_run_is_refetched_and_the_message_sent_in_the_same_attempt():
    h = host()
    subscribe(h, "bu1", TPL_BARGAIN)
    subscribe(h, "bu0", TPL_BARGAIN)
    floor_reached(h, "bu0", 2)
    wait_until(lambda: WX.sent_to("o-bu0"), 15, what="bu0's message")
    # a valid token is in the host's hands; WeChat drops it
    fetches = len(WX.token_requests)
    WX.revoke()
    floor_reached(h, "bu1", 3)
    d = settled(h, "bu1")
    assert d[0]["state"] == "sent" and d[0]["attempts"] == 1, d
    tries = WX.sent_to("o-bu1", ok_only=False)
    assert [t["answer"]["errcode"] for t in tries] == [42001, 0], tries
    assert tries[0]["token"] != tries[1]["token"]
    assert len(WX.token_requests) == fetches + 1, WX.token_requests[fetches:]


def test_a_token_past_its_expires_in_is_refetched_before_use():
    h = host()
    subscribe(h, "eu1", TPL_BARGAIN)
    subscribe(h, "eu2", TPL_BARGAIN)
    floor_reached(h, "eu1", 10)
    settled(h, "eu1")
    time.sleep(EXPIRES_IN + 0.5)                          # the token WeChat gave has expired
    floor_reached(h, "eu2", 11)
    d = settled(h, "eu2")
    assert d[0]["state"] == "sent", d
    tries = WX.sent_to("o-eu2", ok_only=False)
    assert [t["answer"]["errcode"] for t in tries] == [0], tries   # never sent with the stale one


def test_system_busy_is_retried_and_no_quota_is_final_and_recorded():
    h = host()
    subscribe(h, "ru1", TPL_BARGAIN)
    WX.busy_once.add("o-ru1")
    floor_reached(h, "ru1", 20)
    d = settled(h, "ru1")
    assert d[0]["state"] == "sent" and d[0]["attempts"] == 2, d
    # the plugin thinks ru2 accepted, but WeChat has no acceptance of hers
    status, _, body = h.post("/v1/ntf/notify/subscriptions",
                             {"template_ids": [TPL_BARGAIN], "accepted": [TPL_BARGAIN], "openid": "o-ru2"},
                             headers=user_auth(T, "ru2", DAY))
    assert status == 200, body
    floor_reached(h, "ru2", 21)
    d = settled(h, "ru2")
    assert d[0]["state"] == "failed" and d[0]["errcode"] == 43101 and d[0]["reason"] == "wechat", d
    assert d[0]["errmsg"] == "user refuse to accept the msg" and d[0]["attempts"] == 1, d
    assert len(WX.sent_to("o-ru2", ok_only=False)) == 1
    assert remaining(h, "ru2") == {TPL_BARGAIN: 0}
    failed = deliveries(h, state="failed")
    assert [x["user"] for x in failed] == ["ru2"], failed


def test_the_app_secret_and_the_tokens_are_in_no_log_and_no_file():
    h = host()
    tokens = WX.all_tokens()
    assert len(tokens) >= 3, tokens                        # initial, after the revoke, after expiry
    log = "\n".join(h.lines)
    assert "access token" in log and "call out" in log
    for needle in [APP_SECRET] + tokens:
        assert needle not in log, needle[:12]
    for root, _, files in os.walk(h.data_dir):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                data = f.read()
            for needle in [APP_SECRET] + tokens:
                assert needle.encode() not in data, (name, needle[:12])


def teardown():
    if H:
        H.stop()
    WX.server.shutdown()


if __name__ == "__main__":
    run(globals())
