"""
test_wechat_login.py - WeChat mini-program login (issue 19 item 3, the
wechat_auth plugin) against a fake code2session on loopback, which checks the
appid, the app secret (put into the query by the host), the code and the grant
type:

- POST /wechat/login answers 202 with a login id; polling it answers 202, then
  200 with the member's token, once; the token enters as that member;
- the same person logging in from another app of the brand (another openid,
  the same unionid) is the same member;
- a code WeChat refuses ends in 401 invalid_code;
- the session_key WeChat returns is in no answer, no log line and no file of
  the brand's data; neither is the app secret.
"""
import glob
import http.server
import json
import os
import socketserver
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Host, tenant, run  # noqa: E402

APPID, APP_SECRET = "wx0123456789abcdef", "app-secret-0123456789abcdef"
SESSION_KEY = "c2Vzc2lvbi1rZXktMTIzNDU2"
USERS = {"code-ann": ("o-ann-mini", "u-ann"), "code-ann-2": ("o-ann-other", "u-ann"),
         "code-bo": ("o-bo-mini", None)}


class FakeWeChat:
    def __init__(self):
        self.seen, self.refused = [], []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                q = urllib.parse.parse_qs(url.query)
                fake.seen.append(url.path)
                one = {k: v[0] for k, v in q.items()}
                if url.path != "/sns/jscode2session" or one.get("appid") != APPID or \
                        one.get("secret") != APP_SECRET or one.get("grant_type") != "authorization_code":
                    fake.refused.append(self.path)
                    out = {"errcode": 40013, "errmsg": "invalid appid or secret"}
                elif one.get("js_code") not in USERS:
                    out = {"errcode": 40029, "errmsg": "invalid code"}
                else:
                    openid, unionid = USERS[one["js_code"]]
                    out = {"openid": openid, "session_key": SESSION_KEY}
                    if unionid:
                        out["unionid"] = unionid
                data = json.dumps(out).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


WX = FakeWeChat()
T = tenant("wx", plugins={"members": {"phone_pepper": "pepper-0123456789"},
                          "wechat_auth": {"appid": APPID}})
T["http"] = {"wechat": {"url": "http://127.0.0.1:%d" % WX.port, "plugins": ["wechat_auth"],
                        "secrets": {"app_secret": APP_SECRET}, "retry_base_ms": 100,
                        "drop": ["session_key"]}}
H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[T], name="wxlogin").start()
    return H


def log_in(h, code):
    status, _, body = h.post("/v1/wx/wechat/login", {"code": code})
    assert status == 202 and len(body["login_id"]) == 32, (status, body)
    path = "/v1/wx/wechat/login/" + body["login_id"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status, _, answer = h.get(path)
        if status != 202:
            return status, answer, path
        assert answer == {"state": "pending"}, answer
        time.sleep(0.05)
    raise AssertionError("the login stayed pending")


def test_a_code_becomes_a_members_token_handed_out_once():
    h = host()
    status, answer, path = log_in(h, "code-ann")
    assert status == 200 and answer["created"] is True and answer["token"], answer
    status, _, me = h.get("/v1/wx/members/me", headers={"Authorization": "Bearer " + answer["token"]})
    assert status == 200 and me["id"] == answer["member"], me
    status, _, again = h.get(path)
    assert status == 404 and again["error"]["code"] == "login_not_found", again
    assert not WX.refused, WX.refused


def test_the_same_person_from_another_app_is_the_same_member():
    h = host()
    _, first, _ = log_in(h, "code-ann")
    status, other, _ = log_in(h, "code-ann-2")
    assert status == 200 and other["member"] == first["member"] and other["created"] is False, (first, other)
    _, bo, _ = log_in(h, "code-bo")
    assert bo["member"] != first["member"], bo


def test_a_refused_code_ends_in_401():
    status, answer, _ = log_in(host(), "code-nobody")
    assert status == 401 and answer["error"]["code"] == "invalid_code", answer


def test_the_session_key_and_the_app_secret_stay_with_the_host():
    h = host()
    log_in(h, "code-bo")
    text = "\n".join(h.lines)
    assert SESSION_KEY not in text and APP_SECRET not in text
    for f in glob.glob(os.path.join(h.data_dir, "*")):
        with open(f, "rb") as fh:
            data = fh.read()
        assert SESSION_KEY.encode() not in data, f
        assert APP_SECRET.encode() not in data, f


def teardown():
    if H:
        H.stop()
    WX.server.shutdown()


if __name__ == "__main__":
    run(globals())
