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

The phone (getPhoneNumber's code, through getuserphonenumber with the access
token the host fetches from stable_token and adds):
- a logged-in member adds the phone; the answer masks it;
- a younger member adding the same phone is merged into the older one, whose
  id and token the answer carries, and the younger token enters as it;
- a refused code is 401 invalid_code, a code of another mini-program 401
  wrong_app, a brand without the API destination 409 phone_not_configured;
- the number is in no answer, log line or recorded run (the reply job is a
  personal job).
"""
import glob
import json
import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import QuietHandler, serve_loopback, Host, tenant, run  # noqa: E402

APPID, APP_SECRET = "wx0123456789abcdef", "app-secret-0123456789abcdef"
SESSION_KEY = "c2Vzc2lvbi1rZXktMTIzNDU2"
USERS = {"code-ann": ("o-ann-mini", "u-ann"), "code-ann-2": ("o-ann-other", "u-ann"),
         "code-bo": ("o-bo-mini", None), "code-cy": ("o-cy-mini", None), "code-di": ("o-di-mini", None)}
PHONE = "13912345678"
PHONES = {"pc-cy": (PHONE, "86", APPID), "pc-di": (PHONE, 86, APPID),  # countryCode as WeChat's example: a number
          "pc-other-app": ("13700001111", "86", "wx-another-app-000")}


class FakeWeChat:
    def __init__(self):
        self.seen, self.refused = [], []
        self.tokens, self.phone_calls = set(), []
        fake = self

        class Handler(QuietHandler):

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

            def do_POST(self):
                url = urllib.parse.urlsplit(self.path)
                q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                fake.seen.append(url.path)
                if url.path == "/cgi-bin/stable_token":
                    if body.get("appid") != APPID or body.get("secret") != APP_SECRET or \
                            body.get("grant_type") != "client_credential":
                        fake.refused.append(self.path)
                        out = {"errcode": 40013, "errmsg": "invalid appid"}
                    else:
                        token = "ACCESS_TOKEN_%d" % (len(fake.tokens) + 1)
                        fake.tokens.add(token)
                        out = {"access_token": token, "expires_in": 7200}
                elif url.path == "/wxa/business/getuserphonenumber":
                    fake.phone_calls.append((q.get("access_token"), body))
                    if q.get("access_token") not in fake.tokens:
                        out = {"errcode": 40001, "errmsg": "invalid credential"}
                    elif set(body) != {"code"} or body["code"] not in PHONES:
                        out = {"errcode": 40029, "errmsg": "invalid code"}
                    else:
                        number, cc, appid = PHONES[body["code"]]
                        out = {"errcode": 0, "errmsg": "ok", "phone_info": {
                            "phoneNumber": number, "purePhoneNumber": number, "countryCode": cc,
                            "watermark": {"timestamp": int(time.time()), "appid": appid}}}
                else:
                    out = {"errcode": 404, "errmsg": "no such api"}
                data = json.dumps(out).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server, self.port = serve_loopback(Handler)


WX = FakeWeChat()
T = tenant("wx", plugins={"members": {"phone_pepper": "pepper-0123456789"},
                          "wechat_auth": {"appid": APPID}})
T["http"] = {"wechat": {"url": "http://127.0.0.1:%d" % WX.port, "plugins": ["wechat_auth"],
                        "secrets": {"app_secret": APP_SECRET}, "retry_base_ms": 100,
                        "drop": ["session_key"]},
             "wechat_api": {"url": "http://127.0.0.1:%d" % WX.port, "plugins": ["wechat_auth"],
                            "secrets": {"app_secret": APP_SECRET}, "retry_base_ms": 100,
                            "token": {"path": "/cgi-bin/stable_token", "appid": APPID, "secret": "app_secret"}}}
BARE = tenant("wxbare", plugins={"members": {"phone_pepper": "pepper-0123456789"},
                                 "wechat_auth": {"appid": APPID}})
BARE["http"] = {"wechat": dict(T["http"]["wechat"])}
H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[T, BARE], name="wxlogin").start()
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


def add_phone(h, token, code, tenant_id="wx"):
    auth = {"Authorization": "Bearer " + token}
    status, _, body = h.post("/v1/%s/wechat/phone" % tenant_id, {"code": code}, headers=auth)
    if status != 202:
        return status, body
    path = "/v1/%s/wechat/phone/%s" % (tenant_id, body["phone_id"])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status, _, answer = h.get(path, headers=auth)
        if status != 202:
            return status, answer
        time.sleep(0.05)
    raise AssertionError("the phone stayed pending")


def me(h, token):
    status, _, body = h.get("/v1/wx/members/me", headers={"Authorization": "Bearer " + token})
    assert status == 200, body
    return body


def test_a_verified_phone_joins_the_member_and_merges_the_younger_one():
    h = host()
    _, cy, _ = log_in(h, "code-cy")
    status, added = add_phone(h, cy["token"], "pc-cy")
    assert status == 200, added
    assert added["member"] == cy["member"] and added["merged"] == [], added
    assert added["phone"] == "139****5678", added
    assert me(h, cy["token"])["phone"] == "139****5678"
    # a younger member verifying the same number is the same person
    _, di, _ = log_in(h, "code-di")
    assert di["member"] != cy["member"]
    status, again = add_phone(h, di["token"], "pc-di")
    assert status == 200, again
    assert again["member"] == cy["member"] and again["merged"] == [di["member"]], again
    assert me(h, again["token"])["id"] == cy["member"]
    assert me(h, di["token"])["id"] == cy["member"], "the younger token enters as the survivor"
    # every call to the phone API carried a token the host fetched
    assert WX.phone_calls and all(t in WX.tokens for t, _ in WX.phone_calls), WX.phone_calls


def test_phone_codes_wechat_refuses_or_another_app_gave_are_401():
    h = host()
    _, bo, _ = log_in(h, "code-bo")
    status, answer = add_phone(h, bo["token"], "pc-forged")
    assert status == 401 and answer["error"]["code"] == "invalid_code", answer
    status, answer = add_phone(h, bo["token"], "pc-other-app")
    assert status == 401 and answer["error"]["code"] == "wrong_app", answer
    assert "phone" not in me(h, bo["token"])


def test_a_brand_without_the_api_destination_says_so():
    h = host()
    token = h.token("wxbare", "m-someone")
    status, answer = add_phone(h, token, "pc-cy", tenant_id="wxbare")
    assert status == 409 and answer["error"]["code"] == "phone_not_configured", answer


def test_the_number_is_in_no_answer_log_or_run():
    h = host()
    status, _, armed = h.admin("POST", "/runs/record", T, body={"plugin": "wechat_auth", "count": 20})
    assert status == 200, armed
    _, cy, _ = log_in(h, "code-cy")
    status, added = add_phone(h, cy["token"], "pc-cy")
    assert status == 200, added
    assert PHONE not in json.dumps(added) and PHONE not in "\n".join(h.lines)
    status, _, listed = h.admin("GET", "/runs?plugin=wechat_auth&kind=job", T)
    assert status == 200, listed
    phone_runs = [r for r in listed["runs"] if r["name"] == "phone"]
    assert phone_runs, listed
    for r in phone_runs:
        status, _, run_ = h.admin("GET", "/runs/%d" % r["id"], T)
        assert status == 200 and PHONE not in json.dumps(run_), run_
        assert "personal data" in json.dumps(run_), run_


def teardown():
    if H:
        H.stop()
    WX.server.shutdown()


if __name__ == "__main__":
    run(globals())
