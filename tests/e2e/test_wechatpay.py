"""
test_wechatpay.py - the payments plugin with provider = "wechatpay" against a
fake WeChat Pay API v3 server this test runs on loopback (issue 19 item 2).

The test makes a merchant key pair (its private half is a secret of the
brand's wechatpay destination, which only the host reads) and a platform key
pair (WeChat Pay's: the fake signs notifies with the private half, the plugin
config holds the public half), and an APIv3 key. The fake refuses any request
whose WECHATPAY2-SHA256-RSA2048 Authorization does not verify per the
published rules (scheme, five params, mchid, merchant serial, timestamp
window, SHA256withRSA over method, path and query, timestamp, nonce, body),
or that lacks Accept or User-Agent, and counts what it refused: every test
checks that count stayed 0.

- prepay: 202 while WeChat is asked, then wx.requestPayment's parameters with
  a paySign that verifies under the merchant public key;
- a notify signed with the platform key and encrypted with the APIv3 key pays
  the order; the same notify again changes nothing;
- forged notifies (another key, a wrong serial, an old timestamp, a body
  changed after signing, a resource sealed with another APIv3 key, a
  signature probe) are refused and change nothing;
- a refund is asked of WeChat (signed), stays PROCESSING, and its notify
  settles it once;
- an order paid at WeChat whose notify never came is paid by the reconcile
  job's query;
- the merchant key and the APIv3 key are in no log line.

The fake also serves 商家转账 (POST /v3/fund-app/mch-transfer/transfer-bills, the
query and the cancel by out_bill_no): it checks the body's fields and types and
the scene's report infos, makes one bill per out_bill_no, and the test drives
its end (finish_transfer); test_wechat_transfer.py uses it.
"""
import base64
import json
import os
import re
import sys
import threading
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.exceptions import InvalidSignature

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (QuietHandler, serve_loopback, Host, tenant, admin_ok, add_sku, user_auth,  # noqa: E402
                     expect_error, run, old_plugin, host_with_old, read_db, writes_build_a_btree)

APPID, MCHID = "wx8888888888888888", "1900000109"
MERCHANT_SERIAL = "3775B6A45ACD588826D15E583A95F5DD12345678"
PLATFORM_SERIAL = "PUB_KEY_ID_0119000001092025010600000000001"
APIV3_KEY = "a3f1c0de9b8e7d6c5b4a39281706f5e4"  # 32 ASCII bytes
NOTIFY_URL = "https://shop.example.com/v1/wx/payments/notify"


def new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem_private(k):
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption()).decode()


def pem_public(k):
    return k.public_key().public_bytes(serialization.Encoding.PEM,
                                       serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def sign(k, text):
    return base64.b64encode(k.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def verifies(pub, text, sig_b64):
    try:
        pub.verify(base64.b64decode(sig_b64, validate=True), text.encode(), padding.PKCS1v15(),
                   hashes.SHA256())
        return True
    except (InvalidSignature, ValueError):
        return False


MERCHANT, PLATFORM, STRANGER = new_key(), new_key(), new_key()


class FakeWechatPay:
    """WeChat Pay API v3 as research/wechat.md section 11 says a fake must check."""

    AUTH = re.compile(r'^WECHATPAY2-SHA256-RSA2048 (.*)$')

    def __init__(self):
        self.lock = threading.Lock()
        self.seen, self.refused = [], []
        self.orders, self.refunds = {}, {}
        self.bills = {}             # transfers to users (商家转账) by out_bill_no
        self.slow_creates = 0       # this many transfer creates are answered after slow_seconds
        self.slow_seconds = 0.0
        self.failing_creates = []   # (status, code) answers the next transfer creates get, making no bill
        self.n = 0
        fake = self

        class Handler(QuietHandler):

            def do_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                status, out = fake.handle(self.command, self.path, self.headers, body)
                raw = json.dumps(out).encode() if out is not None else b""
                self.send_response(status)
                if 200 <= status < 300:  # every 2xx answer is signed, as WeChat does
                    ts, nonce = str(int(time.time())), "N" * 32
                    self.send_header("Wechatpay-Timestamp", ts)
                    self.send_header("Wechatpay-Nonce", nonce)
                    self.send_header("Wechatpay-Serial", PLATFORM_SERIAL)
                    self.send_header("Wechatpay-Signature",
                                     sign(PLATFORM, "%s\n%s\n%s\n" % (ts, nonce, raw.decode())))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_any

        self.server, self.port = serve_loopback(Handler)

    # -- checks every request passes

    def refuse(self, status, code, why, method, path):
        with self.lock:
            self.refused.append((method, path, code, why))
        return status, {"code": code, "message": why}

    def check_signature(self, method, path, headers, body):
        if not headers.get("Accept") or not headers.get("User-Agent"):
            return "INVALID_REQUEST", "Http头缺少Accept或User-Agent"
        auth = headers.get_all("Authorization") or []
        m = self.AUTH.match(auth[0]) if len(auth) == 1 else None
        if not m:
            return "SIGN_ERROR", "scheme"
        params = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        parts = m.group(1).split(",")
        if set(params) != {"mchid", "nonce_str", "timestamp", "serial_no", "signature"} or len(parts) != 5:
            return "SIGN_ERROR", "params %r" % sorted(params)
        if params["mchid"] != MCHID:
            return "SIGN_ERROR", "mchid"
        if params["serial_no"].upper() != MERCHANT_SERIAL:
            return "SIGN_ERROR", "serial"
        if not params["timestamp"].isdigit() or abs(int(params["timestamp"]) - time.time()) > 300:
            return "SIGN_ERROR", "timestamp"
        text = "%s\n%s\n%s\n%s\n%s\n" % (method, path, params["timestamp"], params["nonce_str"],
                                         body.decode("utf-8"))
        if not params["nonce_str"] or not verifies(MERCHANT.public_key(), text, params["signature"]):
            return "SIGN_ERROR", "signature"
        return None

    def handle(self, method, path, headers, body):
        bad = self.check_signature(method, path, headers, body)
        if bad:
            return self.refuse(401 if bad[0] == "SIGN_ERROR" else 400, bad[0], bad[1], method, path)
        with self.lock:
            self.seen.append({"method": method, "path": path, "body": body,
                              "key": headers.get("Idempotency-Key")})
        doc = json.loads(body) if body else None
        if method == "POST" and path == "/v3/pay/transactions/jsapi":
            return self.jsapi(doc, method, path)
        m = re.match(r"^/v3/pay/transactions/out-trade-no/([^?]+)\?mchid=(\w+)$", path)
        if method == "GET" and m:
            if m.group(2) != MCHID:
                return self.refuse(400, "PARAM_ERROR", "mchid", method, path)
            o = self.orders.get(m.group(1))
            if not o:
                return 404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}
            return 200, self.transaction(o)
        if method == "POST" and path == "/v3/refund/domestic/refunds":
            return self.refund(doc, method, path)
        if method == "POST" and path == self.BILLS:
            return self.transfer(doc, headers, method, path)
        m = re.match(r"^%s/out-bill-no/([0-9A-Za-z]{1,32})(/cancel)?$" % self.BILLS, path)
        if m and method == "GET" and not m.group(2):
            with self.lock:
                b = self.bills.get(m.group(1))
                if not b:
                    return 404, {"code": "NOT_FOUND", "message": "记录不存在"}
                return 200, self.bill(b)
        if m and method == "POST" and m.group(2) and body == b"":
            with self.lock:
                b = self.bills.get(m.group(1))
                if not b:
                    return 404, {"code": "NOT_FOUND", "message": "记录不存在"}
                if b["state"] in ("SUCCESS", "FAIL", "CANCELLED"):
                    return self.refuse(400, "INVALID_REQUEST", "单据已终态", method, path)
                b["state"] = "CANCELING"
                return 200, {"out_bill_no": b["out_bill_no"], "transfer_bill_no": b["transfer_bill_no"],
                             "state": "CANCELING", "update_time": "2026-12-06T17:20:00+08:00"}
        return self.refuse(404, "NOT_FOUND", "no such API", method, path)

    # -- 商家转账 (the 2025 API, user-confirm mode): research/wechat.md 5.3 and 11

    BILLS = "/v3/fund-app/mch-transfer/transfer-bills"
    SCENES = {"1000": ["活动名称", "奖励说明"], "1005": ["岗位类型", "报酬说明"]}
    TRANSFER_FIELDS = {"appid": str, "out_bill_no": str, "transfer_scene_id": str, "openid": str,
                       "transfer_amount": int, "transfer_remark": str, "notify_url": str,
                       "transfer_scene_report_infos": list, "user_recv_perception": str, "user_name": str}

    def transfer(self, d, headers, method, path):
        def bad(why):
            return self.refuse(400, "PARAM_ERROR", why, method, path)
        with self.lock:
            if self.failing_creates:  # what the test asked for: WeChat down, or refusing
                status, code = self.failing_creates.pop(0)
                return status, {"code": code, "message": "test"}
        if not isinstance(d, dict):
            return bad("body")
        for k, v in d.items():
            want = self.TRANSFER_FIELDS.get(k)
            if want is None or type(v) is not want:  # bool is not int; null is nothing
                return bad("field %s: %r" % (k, v))
        for k in ("appid", "out_bill_no", "transfer_scene_id", "openid", "transfer_amount", "transfer_remark",
                  "transfer_scene_report_infos"):
            if k not in d:
                return bad("missing %s" % k)
        if d["appid"] != APPID:
            return bad("appid not bound to the mchid")
        if not re.match(r"^[0-9A-Za-z]{1,32}$", d["out_bill_no"]):
            return bad("out_bill_no")
        if d["transfer_amount"] <= 0 or not d["openid"] or not 0 < len(d["transfer_remark"]) <= 32:
            return bad("amount, openid or remark")
        if "notify_url" in d and (not d["notify_url"].startswith("https://") or "?" in d["notify_url"]):
            return bad("notify_url")
        want = self.SCENES.get(d["transfer_scene_id"])
        infos = d["transfer_scene_report_infos"]
        if want is None:
            return self.refuse(403, "NO_AUTH", "转账场景未开通", method, path)
        if [i.get("info_type") if isinstance(i, dict) else None for i in infos] != want or not all(
                isinstance(i.get("info_content"), str) and 0 < len(i["info_content"]) <= 32 and len(i) == 2
                for i in infos):
            return bad("需传入转账场景报备信息,请检查")
        if d["transfer_amount"] >= 200000 and ("user_name" not in d or not headers.get("Wechatpay-Serial")):
            return bad("user_name is required from 2000 yuan")
        with self.lock:
            b = self.bills.get(d["out_bill_no"])
            if b:  # the same number again: the bill that exists (no second payment)
                if b["params"] != (d["transfer_amount"], d["openid"]):
                    return self.refuse(400, "INVALID_REQUEST", "商户单号重复", method, path)
            else:
                self.n += 1
                b = self.bills[d["out_bill_no"]] = {
                    "out_bill_no": d["out_bill_no"], "transfer_bill_no": "1330%026d" % self.n,
                    "params": (d["transfer_amount"], d["openid"]), "amount": d["transfer_amount"],
                    "openid": d["openid"], "state": "WAIT_USER_CONFIRM", "request": d,
                    "package_info": "ABBQO+oYAAABAAAAAAAk+pAAAAA%d" % self.n}
            slow = self.slow_creates > 0
            if slow:
                self.slow_creates -= 1
            answer = self.bill(b)
        if slow:  # the bill exists at WeChat, but its answer comes too late: the caller cannot know
            time.sleep(self.slow_seconds)
        return 200, answer

    def bill(self, b):
        out = {"out_bill_no": b["out_bill_no"], "transfer_bill_no": b["transfer_bill_no"],
               "create_time": "2026-12-06T17:03:00+08:00", "state": b["state"]}
        if b["state"] == "WAIT_USER_CONFIRM":
            out["package_info"] = b["package_info"]
        if b["state"] == "FAIL":
            out["fail_reason"] = b.get("fail_reason", "TRANSFER_RISK")
        return out

    def finish_transfer(self, out_bill_no, state, fail_reason=None):
        """The user confirmed (SUCCESS), or the bill failed or was cancelled: the
        resource of the MCHTRANSFER.BILL.FINISHED notify WeChat would send."""
        with self.lock:
            b = self.bills[out_bill_no]
            b["state"] = state
            if fail_reason:
                b["fail_reason"] = fail_reason
            r = {"mch_id": MCHID, "out_bill_no": out_bill_no, "transfer_bill_no": b["transfer_bill_no"],
                 "state": state, "transfer_amount": b["amount"], "openid": b["openid"],
                 "create_time": "2026-12-06T17:03:00+08:00", "update_time": "2026-12-06T17:30:00+08:00"}
            if fail_reason:
                r["fail_reason"] = fail_reason
            return r

    def jsapi(self, d, method, path):
        ok = (d.get("appid") == APPID and d.get("mchid") == MCHID
              and re.match(r"^[0-9A-Za-z_\-|*]{6,32}$", d.get("out_trade_no", ""))
              and 0 < len(d.get("description", "")) <= 127
              and d.get("notify_url", "").startswith("https://") and "?" not in d["notify_url"]
              and isinstance(d.get("amount", {}).get("total"), int) and d["amount"]["total"] > 0
              and d["amount"].get("currency", "CNY") == "CNY"
              and d.get("payer", {}).get("openid"))
        if not ok:
            return self.refuse(400, "PARAM_ERROR", "jsapi fields %r" % d, method, path)
        with self.lock:
            o = self.orders.get(d["out_trade_no"])
            params = (d["amount"]["total"], d["payer"]["openid"], d["description"])
            if o and o["params"] != params:
                return self.refuse(400, "INVALID_REQUEST", "201 商户订单号重复", method, path)
            if not o:
                o = self.orders[d["out_trade_no"]] = {"no": d["out_trade_no"], "params": params,
                                                      "total": d["amount"]["total"], "state": "NOTPAY",
                                                      "openid": d["payer"]["openid"], "refunded": 0}
            self.n += 1
            o["prepay_id"] = "wx%014d%010d" % (int(time.time()), self.n)
            return 200, {"prepay_id": o["prepay_id"]}

    def refund(self, d, method, path):
        with self.lock:
            o = self.orders.get(d.get("out_trade_no")) or next(
                (x for x in self.orders.values() if x.get("transaction_id") == d.get("transaction_id")), None)
            one = ("transaction_id" in d) != ("out_trade_no" in d)
            if not one or not o or o["state"] not in ("SUCCESS", "REFUND"):
                return self.refuse(400, "PARAM_ERROR", "refund target", method, path)
            if not re.match(r"^[0-9A-Za-z_\-|*@]{1,64}$", d.get("out_refund_no", "")):
                return self.refuse(400, "PARAM_ERROR", "out_refund_no", method, path)
            a = d.get("amount", {})
            if a.get("total") != o["total"] or a.get("currency") != "CNY":
                return self.refuse(400, "PARAM_ERROR", "amount.total", method, path)
            r = self.refunds.get(d["out_refund_no"])
            if not r:
                if o["refunded"] + a["refund"] > o["total"]:
                    return self.refuse(400, "PARAM_ERROR", "refund exceeds total", method, path)
                o["refunded"] += a["refund"]
                o["state"] = "REFUND"
                r = self.refunds[d["out_refund_no"]] = {
                    "refund_id": "5030%016d" % len(self.refunds), "out_refund_no": d["out_refund_no"],
                    "out_trade_no": o["no"], "transaction_id": o["transaction_id"], "refund": a["refund"],
                    "total": o["total"]}
            return 200, dict(r, status="PROCESSING", amount={"refund": r["refund"], "total": r["total"]})

    def transaction(self, o):
        t = {"appid": APPID, "mchid": MCHID, "out_trade_no": o["no"], "trade_type": "JSAPI",
             "trade_state": o["state"], "payer": {"openid": o["openid"]},
             "amount": {"total": o["total"], "payer_total": o["total"], "currency": "CNY"}}
        if o.get("transaction_id"):
            t.update(transaction_id=o["transaction_id"], success_time="2026-12-06T17:03:00+08:00")
        return t

    # -- what the test drives

    def pay(self, out_trade_no):
        """The user paid at the cashier: the order is SUCCESS at WeChat."""
        with self.lock:
            o = self.orders[out_trade_no]
            self.n += 1
            o.update(state="SUCCESS", transaction_id="4200%024d" % self.n)
            return self.transaction(o)

    def requests(self, path_prefix):
        with self.lock:
            return [s for s in self.seen if s["path"].startswith(path_prefix)]


def seal(resource, aad, key=APIV3_KEY):
    nonce = os.urandom(6).hex()  # 12 characters, used as the 12-byte IV as they are
    ct = AESGCM(key.encode()).encrypt(nonce.encode(), json.dumps(resource).encode(), aad.encode())
    return {"algorithm": "AEAD_AES_256_GCM", "ciphertext": base64.b64encode(ct).decode(),
            "associated_data": aad, "nonce": nonce, "original_type": aad}


def notice(event, resource, aad, key=APIV3_KEY, summary="支付成功"):
    return json.dumps({"id": "EV-%s" % os.urandom(8).hex(), "create_time": "2026-12-06T17:03:00+08:00",
                       "event_type": event, "resource_type": "encrypt-resource", "summary": summary,
                       "resource": seal(resource, aad, key)}, ensure_ascii=False)


def signed(raw, signer=PLATFORM, serial=PLATFORM_SERIAL, ts=None, sig=None):
    ts = str(int(time.time()) if ts is None else ts)
    nonce = os.urandom(16).hex()
    return {"Content-Type": "application/json", "Wechatpay-Timestamp": ts, "Wechatpay-Nonce": nonce,
            "Wechatpay-Serial": serial, "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
            "Wechatpay-Signature": sig or sign(signer, "%s\n%s\n%s\n" % (ts, nonce, raw))}


FAKE = FakeWechatPay()
T = tenant("wx", plugins={
    "catalog": {}, "orders": {"unpaid_timeout_seconds": 600, "max_unpaid_orders": 50},
    "payments": {"provider": "wechatpay", "appid": APPID, "mchid": MCHID, "wechatpay": {
        "platform_serial": PLATFORM_SERIAL, "platform_public_key": pem_public(PLATFORM),
        "notify_url": NOTIFY_URL, "reconcile_after_seconds": 0, "reconcile_every_seconds": 1}}})
T["http"] = {"wechatpay": {
    "url": "http://127.0.0.1:%d" % FAKE.port, "plugins": ["payments"], "timeout_ms": 2000,
    "retry_base_ms": 100, "secrets": {"merchant_key": pem_private(MERCHANT), "apiv3_key": APIV3_KEY},
    "sign": {"scheme": "wechatpay2", "key": "merchant_key", "mchid": MCHID, "serial": MERCHANT_SERIAL}}}

H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[T], name="wechatpay").start()
    return H


def wait(pred, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s; the fake refused %r\n%s" % (
        what, FAKE.refused, "\n".join(H.lines[-20:])))


_n = [0]


def new_order(h, user="u-1", price_fen=2990):
    _n[0] += 1
    code = "wxsku-%d" % _n[0]
    add_sku(h, T, code, 5, price_fen)
    status, _, body = h.post("/v1/wx/orders", {"lines": [{"sku": code, "qty": 1}]}, headers=user_auth(T, user))
    assert status == 201, (status, body)
    return body


def prepay(h, o, user="u-1"):
    return h.post("/v1/wx/payments/prepay", {"order_id": o["id"], "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
                  headers=user_auth(T, user))


def prepaid(h, o):
    """Asks until the prepay_id is in; the answer with request_payment."""
    status, _, body = prepay(h, o)
    assert status == 202 and body["pending"] is True, (status, body)

    def ready():
        s, _, b = prepay(h, o)
        return b if s == 200 else None
    return wait(ready, "the prepay_id")


def order(h, oid):
    return admin_ok(h, "GET", "/orders/%d" % oid, T)


def post_notify(h, raw, headers):
    return h.request("POST", "/v1/wx/payments/notify", body=raw, headers=headers)


def paid_notice(tx):
    return notice("TRANSACTION.SUCCESS", dict(tx, trade_state_desc="支付成功", bank_type="OTHERS"), "transaction")


# ---- tests

def test_the_fake_refuses_a_request_not_signed_by_the_merchant_key():
    """The fake can fail: a request signed by another key, or with another serial, is 401."""
    import http.client
    for key, serial in ((STRANGER, MERCHANT_SERIAL), (MERCHANT, "0000")):
        ts, nonce, body = str(int(time.time())), "ABC", '{"x":1}'
        sig = sign(key, "POST\n/v3/pay/transactions/jsapi\n%s\n%s\n%s\n" % (ts, nonce, body))
        conn = http.client.HTTPConnection("127.0.0.1", FAKE.port, timeout=5)
        conn.request("POST", "/v3/pay/transactions/jsapi", body=body, headers={
            "Accept": "application/json", "User-Agent": "t", "Content-Type": "application/json",
            "Authorization": 'WECHATPAY2-SHA256-RSA2048 mchid="%s",nonce_str="%s",timestamp="%s",'
                             'serial_no="%s",signature="%s"' % (MCHID, nonce, ts, serial, sig)})
        r = conn.getresponse()
        assert r.status == 401 and json.loads(r.read())["code"] == "SIGN_ERROR"
        conn.close()
    with FAKE.lock:
        assert len(FAKE.refused) == 2, FAKE.refused
        FAKE.refused.clear()


def test_prepay_is_signed_by_the_host_and_pay_sign_verifies():
    h = host()
    o = new_order(h)
    body = prepaid(h, o)
    rp = body["request_payment"]
    asked = FAKE.requests("/v3/pay/transactions/jsapi")
    assert len(asked) == 1, asked  # asking again while pending did not ask WeChat twice
    sent = json.loads(asked[0]["body"])
    assert sent["out_trade_no"] == body["out_trade_no"] and sent["amount"] == {"total": 2990, "currency": "CNY"}
    assert sent["notify_url"] == NOTIFY_URL and sent["payer"]["openid"], sent
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00$", sent["time_expire"]), sent
    assert asked[0]["key"] == "prepay-" + body["out_trade_no"]
    o_fake = FAKE.orders[body["out_trade_no"]]
    assert rp["package"] == "prepay_id=" + o_fake["prepay_id"], rp
    assert rp["signType"] == "RSA" and rp["appId"] == APPID and re.match(r"^\d{10}$", rp["timeStamp"]), rp
    assert 0 < len(rp["nonceStr"]) <= 32
    text = "%s\n%s\n%s\n%s\n" % (APPID, rp["timeStamp"], rp["nonceStr"], rp["package"])
    assert verifies(MERCHANT.public_key(), text, rp["paySign"]), rp
    assert not verifies(MERCHANT.public_key(), text.replace(APPID, "wx0"), rp["paySign"])
    assert not FAKE.refused, FAKE.refused
    assert order(h, o["id"])["status"] == "pending_payment"


def test_a_signed_encrypted_notify_pays_the_order_and_a_replay_changes_nothing():
    h = host()
    o = new_order(h)
    body = prepaid(h, o)
    raw = paid_notice(FAKE.pay(body["out_trade_no"]))
    status, _, answer = post_notify(h, raw, signed(raw))
    assert status == 200 and answer["code"] == "SUCCESS" and answer["outcome"] == "paid", (status, answer)
    after = order(h, o["id"])
    assert after["status"] == "paid" and after["paid_fen"] == 2990, after
    for _ in range(2):  # WeChat delivers again: answered as success, nothing moves
        status, _, answer = post_notify(h, raw, signed(raw))
        assert status == 200 and answer["outcome"] == "duplicate", (status, answer)
    again = order(h, o["id"])
    assert again["paid_fen"] == 2990 and again["status"] == "paid" and again["paid_at"] == after["paid_at"]
    items = admin_ok(h, "GET", "/payments/notifies?limit=500", T)["items"]
    assert len([n for n in items if n["order_id"] == o["id"]]) == 1, items


def test_forged_notifies_are_refused_and_change_nothing():
    h = host()
    o = new_order(h)
    body = prepaid(h, o)
    tx = FAKE.pay(body["out_trade_no"])
    raw = paid_notice(tx)
    cases = [
        ("another key", raw, signed(raw, signer=STRANGER), 401, "invalid_signature"),
        ("a wrong serial", raw, signed(raw, serial="PUB_KEY_ID_0000"), 401, "unknown_serial"),
        ("an old timestamp", raw, signed(raw, ts=int(time.time()) - 301), 401, "stale_notify"),
        ("a body changed after signing", raw.replace('"支付成功"', '"x"'), signed(raw), 401, "invalid_signature"),
        ("a signature probe", raw, signed(raw, sig="WECHATPAY/SIGNTEST/" + "A" * 40), 401, "invalid_signature"),
    ]
    other = paid_notice(dict(tx))
    sealed_wrong = notice("TRANSACTION.SUCCESS", tx, "transaction", key="0" * 32)
    cases.append(("a resource sealed with another APIv3 key", sealed_wrong, signed(sealed_wrong), 400,
                  "undecryptable_notify"))
    tampered = json.loads(other)
    ct = bytearray(base64.b64decode(tampered["resource"]["ciphertext"]))
    ct[0] ^= 1
    tampered["resource"]["ciphertext"] = base64.b64encode(bytes(ct)).decode()
    tampered = json.dumps(tampered, ensure_ascii=False)
    cases.append(("a flipped ciphertext bit, signed", tampered, signed(tampered), 400, "undecryptable_notify"))
    missing = signed(raw)
    del missing["Wechatpay-Serial"]
    cases.append(("no serial", raw, missing, 401, "signature_missing"))
    for what, body_, headers, status, code in cases:
        res = post_notify(h, body_, headers)
        try:
            expect_error(res, status, code)
        except AssertionError as e:
            raise AssertionError("%s: %s" % (what, e))
    assert order(h, o["id"])["status"] == "pending_payment"
    items = admin_ok(h, "GET", "/payments/notifies?limit=500", T)["items"]
    assert not [n for n in items if n["order_id"] == o["id"]], items
    # and the genuine one still pays
    status, _, answer = post_notify(h, raw, signed(raw))
    assert status == 200 and answer["outcome"] == "paid", (status, answer)


def test_a_refund_is_asked_of_wechat_and_settled_once_by_its_notify():
    h = host()
    o = new_order(h, price_fen=5000)
    body = prepaid(h, o)
    raw = paid_notice(FAKE.pay(body["out_trade_no"]))
    assert post_notify(h, raw, signed(raw))[0] == 200
    status, _, r = h.admin("POST", "/orders/%d/refund" % o["id"], T, {"reason": "test"})
    assert status == 202, (status, r)
    refund_no = r["refund"]["refund_no"]
    asked = wait(lambda: FAKE.requests("/v3/refund/domestic/refunds"), "the refund request")
    sent = json.loads(asked[-1]["body"])
    assert sent["out_refund_no"] == refund_no and sent["amount"] == {"refund": 5000, "total": 5000,
                                                                     "currency": "CNY"}, sent

    def booked():
        rows = [x for x in admin_ok(h, "GET", "/payments/refunds", T)["items"] if x["refund_no"] == refund_no]
        return rows and rows[0].get("provider_refund_id") and rows[0]
    row = wait(booked, "the refund's answer")
    assert row["status"] == "PROCESSING", row
    assert order(h, o["id"])["status"] == "refunding"  # accepted is not paid out
    fr = FAKE.refunds[refund_no]
    resource = {"mchid": MCHID, "out_trade_no": fr["out_trade_no"], "transaction_id": fr["transaction_id"],
                "out_refund_no": refund_no, "refund_id": fr["refund_id"], "refund_status": "SUCCESS",
                "success_time": "2026-12-06T17:10:00+08:00", "user_received_account": "支付用户零钱",
                "amount": {"total": 5000, "refund": 5000, "payer_total": 5000, "payer_refund": 5000}}
    raw = notice("REFUND.SUCCESS", resource, "refund", summary="退款成功")
    status, _, answer = post_notify(h, raw, signed(raw))
    assert status == 200 and answer["outcome"] == "refunded", (status, answer)
    done = order(h, o["id"])
    assert done["status"] == "refunded" and done["refunded_fen"] == 5000, done
    status, _, answer = post_notify(h, raw, signed(raw))
    assert status == 200 and answer["outcome"] == "duplicate", (status, answer)
    assert order(h, o["id"])["refunded_fen"] == 5000
    assert len(FAKE.requests("/v3/refund/domestic/refunds")) == 1
    assert not FAKE.refused, FAKE.refused


def test_an_order_whose_notify_never_came_is_reconciled_by_the_query_job():
    h = host()
    o = new_order(h)
    body = prepaid(h, o)
    FAKE.pay(body["out_trade_no"])  # paid at WeChat; the notify is lost
    status, _, r = h.admin("POST", "/payments/reconcile", T)
    assert status == 202, (status, r)
    wait(lambda: order(h, o["id"])["status"] == "paid", "the reconciled payment")
    queried = FAKE.requests("/v3/pay/transactions/out-trade-no/" + body["out_trade_no"])
    assert queried and queried[0]["method"] == "GET" and queried[0]["path"].endswith("?mchid=" + MCHID)
    assert order(h, o["id"])["paid_fen"] == 2990
    # the notify arriving late after all changes nothing
    tx = FAKE.transaction(FAKE.orders[body["out_trade_no"]])
    raw = paid_notice(tx)
    status, _, answer = post_notify(h, raw, signed(raw))
    assert status == 200 and answer["outcome"] == "duplicate", (status, answer)
    assert not FAKE.refused, FAKE.refused


def test_the_keys_are_in_no_log_line():
    h = host()
    text = "\n".join(h.lines)
    body = pem_private(MERCHANT).splitlines()[5]
    assert body not in text and APIV3_KEY not in text
    assert "call out" in text


def teardown():
    if H:
        H.stop()
    FAKE.server.shutdown()
    FAKE.server.server_close()


def test_payments_upgrade_from_1_2_0_keeps_every_prepay_and_its_notify_still_pays():
    """payments 1.3.0 rebuilds payments_prepays with its state CHECK as ORs (an IN
    list of 3+ values costs SQLite a temporary b-tree on each of a payment's
    writes): the prepay asked before the upgrade is kept and its notify pays."""
    with old_plugin("payments", "1.2.0") as old:
        if old is None:
            return
        h = host_with_old([T], "wechatpay-upgrade", [old])
        rows = "SELECT order_id, out_trade_no, total_fen, state, prepay_id FROM payments_prepays ORDER BY order_id"
        try:
            o = new_order(h)
            body = prepaid(h, o)
            before = read_db(h, "wx", rows)
            assert [r[3] for r in before] == ["ready"], before
        finally:
            h.stop()
        assert writes_build_a_btree(h, "wx", ["payments_prepays"]) == [True]
        h.upgrade()
        try:
            assert read_db(h, "wx", rows) == before
            raw = paid_notice(FAKE.pay(body["out_trade_no"]))
            status, _, answer = post_notify(h, raw, signed(raw))
            assert status == 200 and answer["outcome"] == "paid", (status, answer)
            assert read_db(h, "wx", "SELECT state FROM payments_prepays WHERE order_id = ?", o["id"]) == [("paid",)]
        finally:
            h.stop()
        assert writes_build_a_btree(h, "wx", ["payments_prepays"]) == [False]

if __name__ == "__main__":
    run(globals())
