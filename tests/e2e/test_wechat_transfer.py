"""
test_wechat_transfer.py - referral withdrawals paid out by WeChat Pay's 商家转账
(the 2025 API, user-confirm mode: POST /v3/fund-app/mch-transfer/transfer-bills)
against the fake WeChat Pay of test_wechatpay.py, which checks every request's
WECHATPAY2-SHA256-RSA2048 signature, the transfer body's fields and types (the
scene's report infos included) and answers like WeChat (issue 19 item 2).

A member (ann, with a mini-program openid in the customer pool) earns settled
commission from bo's order paid through WeChat Pay; then:

- approval asks for one bill, once: the first create's answer is lost (the fake
  answers after the host's timeout), the host's retry carries the same
  out_bill_no and the fake returns the bill it already made;
- the bill's package_info reaches ann (wx.requestMerchantTransfer's mchId, appId,
  package), and nobody else;
- forged MCHTRANSFER.BILL.FINISHED notifies are refused and change nothing; the
  real SUCCESS pays the withdrawal, and its replay changes nothing;
- FAIL gives the money back with the reason; an operator's cancel asks WeChat
  and the CANCELLED notify gives the money back;
- an approval rolled back after it asked for the transfer sends nothing;
- the reconcile job's query settles a bill whose notify was lost;
- a member without an openid cannot be paid (409, nothing sent); a transfer
  config WeChat would refuse keeps payments from loading, naming the key.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Host, tenant, admin_ok, add_sku, user_auth, expect_error, run  # noqa: E402
from test_wechatpay import (FakeWechatPay, APPID, MCHID, MERCHANT_SERIAL, PLATFORM_SERIAL, APIV3_KEY,  # noqa: E402
                            NOTIFY_URL, MERCHANT, PLATFORM, STRANGER, pem_private, pem_public, notice, signed)

FAKE = FakeWechatPay()
BILLS = FakeWechatPay.BILLS
REPORT = [{"info_type": "岗位类型", "info_content": "分销推广员"},
          {"info_type": "报酬说明", "info_content": "分销佣金提现"}]


def shop(tid, transfer):
    t = tenant(tid, plugins={
        "catalog": {}, "orders": {"attribution_plugin": "referral", "max_unpaid_orders": 50},
        "members": {"phone_pepper": "transfer-test-pepper"},
        "payments": {"provider": "wechatpay", "appid": APPID, "mchid": MCHID, "wechatpay": {
            "platform_serial": PLATFORM_SERIAL, "platform_public_key": pem_public(PLATFORM),
            "notify_url": NOTIFY_URL, "reconcile_every_seconds": 3600, "transfer": transfer}},
        "referral": {"level1_rate_bp": 1000, "level2_rate_bp": 0, "settle_after_seconds": 0,
                     "min_withdrawal_fen": 100, "transfer_remark": "佣金提现"},
        "wdprobe": {}})
    t["http"] = {"wechatpay": {
        "url": "http://127.0.0.1:%d" % FAKE.port, "plugins": ["payments"], "timeout_ms": 1000,
        "retry_base_ms": 100, "max_attempts": 2, "secrets": {"merchant_key": pem_private(MERCHANT), "apiv3_key": APIV3_KEY},
        "sign": {"scheme": "wechatpay2", "key": "merchant_key", "mchid": MCHID, "serial": MERCHANT_SERIAL}}}
    return t


T = shop("wxt", {"scene_id": "1005", "report_infos": REPORT, "query_after_seconds": 0})
BAD = [
    (shop("wxt-bad-infos", {"scene_id": "1000", "report_infos": REPORT}),
     "wechatpay.transfer.report_infos", "活动名称, 奖励说明"),
    (shop("wxt-bad-scene", {"scene_id": 1005, "report_infos": REPORT}), "wechatpay.transfer.scene_id", "digits"),
    (shop("wxt-bad-key", {"scene_id": "1005", "report_infos": REPORT, "scene": "x"}),
     "wechatpay.transfer.scene", "not a known key"),
]
ANN_OPENID = "oAnnTransfer_0123456789abcdef"
H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[T] + [b[0] for b in BAD], name="wechat_transfer").start()
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


def post_notify(h, raw, headers):
    return h.request("POST", "/v1/wxt/payments/notify", body=raw, headers=headers)


def finished(no, state, fail_reason=None):
    """The fake ends the bill and returns the notify it would send, unsent."""
    return notice("MCHTRANSFER.BILL.FINISHED", FAKE.finish_transfer(no, state, fail_reason), "mch_payment",
                  summary="商家转账单据终态通知")


def withdrawal(h, wid):
    items = admin_ok(h, "GET", "/referral/withdrawals?limit=500", T)["items"]
    return next(w for w in items if w["id"] == wid)


def earnings(h, user):
    status, _, body = h.get("/v1/wxt/referral/earnings", headers=user_auth(T, user))
    assert status == 200, body
    return body


def creates(no=None):
    return [r for r in FAKE.requests(BILLS) if r["method"] == "POST" and r["path"] == BILLS
            and (no is None or json.loads(r["body"])["out_bill_no"] == no)]


_state = {}


def earn(h, user, buyer, price_fen):
    """user becomes a promoter and earns 10 % of buyer's order, paid through WeChat Pay and settled."""
    status, _, me = h.post("/v1/wxt/referral/join", {}, headers=user_auth(T, user))
    assert status == 201, me
    status, _, b = h.post("/v1/wxt/referral/bind", {"code": me["code"]}, headers=user_auth(T, buyer))
    assert status == 201, b
    sku = "wxt-%s" % buyer
    add_sku(h, T, sku, 10, price_fen)
    status, _, o = h.post("/v1/wxt/orders", {"lines": [{"sku": sku, "qty": 1}]}, headers=user_auth(T, buyer))
    assert status == 201, o
    pay = lambda: h.post("/v1/wxt/payments/prepay", {"order_id": o["id"], "openid": "o" + buyer},  # noqa: E731
                         headers=user_auth(T, buyer))
    assert pay()[0] == 202
    body = wait(lambda: (lambda r: r[2] if r[0] == 200 else None)(pay()), "the prepay_id")
    raw = notice("TRANSACTION.SUCCESS", dict(FAKE.pay(body["out_trade_no"]), trade_state_desc="支付成功"),
                 "transaction")
    assert post_notify(h, raw, signed(raw))[0] == 200
    assert h.post("/v1/wxt/orders/%d/confirm" % o["id"], {}, headers=user_auth(T, buyer))[0] == 200
    wait(lambda: earnings(h, user)["settled_fen"] == price_fen // 10, "the settled commission")


def ann(h):
    """ann: a member with an openid, a promoter with 10000 fen settled (bo's order of 100000)."""
    if "ann" in _state:
        return _state["ann"]
    status, _, who = h.admin("POST", "/members/identify", T,
                             {"identities": [{"channel": "mp_openid", "id": ANN_OPENID}]})
    assert status == 201, (status, who)
    user = who["member"]["id"]
    earn(h, user, "bo", 100000)
    _state["ann"] = user
    return user


def approved(h, user, amount_fen):
    """A withdrawal of user's, approved, its bill waiting for her at WeChat."""
    status, _, w = h.post("/v1/wxt/referral/withdrawals", {"amount_fen": amount_fen}, headers=user_auth(T, user))
    assert status == 201, w
    status, _, w = h.admin("POST", "/referral/withdrawals/%d/approve" % w["id"], T, {})
    assert status == 200 and w["status"] == "approved", (status, w)
    return wait(lambda: (lambda x: x if x.get("transfer_state") == "WAIT_USER_CONFIRM" else None)(
        withdrawal(h, w["id"])), "the bill's answer")


# ---- tests

def test_approval_asks_for_one_bill_even_when_the_first_answer_is_lost():
    h = host()
    user = ann(h)
    with FAKE.lock:
        FAKE.slow_creates, FAKE.slow_seconds = 1, 1.6   # the first create times out at the host
    w = approved(h, user, 1000)
    no = w["out_bill_no"]
    assert no == "rw%010d" % w["id"], w
    sent = creates(no)
    assert len(sent) == 2, sent          # the host's retry, with the same number and body
    assert sent[0]["body"] == sent[1]["body"]
    with FAKE.lock:                      # WeChat made one bill for her, whatever came twice
        assert [b["out_bill_no"] for b in FAKE.bills.values() if b["openid"] == ANN_OPENID] == [no], FAKE.bills
    body = json.loads(sent[0]["body"])
    assert body == {"appid": APPID, "out_bill_no": no, "transfer_scene_id": "1005", "openid": ANN_OPENID,
                    "transfer_amount": 1000, "transfer_remark": "佣金提现", "notify_url": NOTIFY_URL,
                    "transfer_scene_report_infos": REPORT}, body
    assert w["status"] == "approved" and earnings(h, user)["withdrawn_fen"] == 1000
    assert not FAKE.refused, FAKE.refused
    _state["w1"] = w


def test_the_package_reaches_the_member_and_nobody_else():
    h = host()
    user, w = ann(h), _state["w1"]
    status, _, c = h.get("/v1/wxt/referral/withdrawals/%d/transfer" % w["id"], headers=user_auth(T, user))
    assert status == 200, c
    assert c["request_merchant_transfer"] == {"mchId": MCHID, "appId": APPID,
                                              "package": FAKE.bills[w["out_bill_no"]]["package_info"]}, c
    expect_error(h.get("/v1/wxt/referral/withdrawals/%d/transfer" % w["id"], headers=user_auth(T, "bo")),
                 404, "withdrawal_not_found")


def test_forged_notifies_are_refused_then_success_pays_once():
    h = host()
    user, w = ann(h), _state["w1"]
    raw = finished(w["out_bill_no"], "SUCCESS")
    sealed_wrong = notice("MCHTRANSFER.BILL.FINISHED", json.loads(json.dumps(
        FAKE.finish_transfer(w["out_bill_no"], "SUCCESS"))), "mch_payment", key="0" * 32)
    other_amount = notice("MCHTRANSFER.BILL.FINISHED", dict(FAKE.finish_transfer(w["out_bill_no"], "SUCCESS"),
                                                            transfer_amount=100000), "mch_payment")
    other_mch = notice("MCHTRANSFER.BILL.FINISHED", dict(FAKE.finish_transfer(w["out_bill_no"], "SUCCESS"),
                                                         mch_id="1900000999"), "mch_payment")
    for what, body, headers, status, code in [
            ("another amount, genuinely signed", other_amount, signed(other_amount), 400, "amount_mismatch"),
            ("another merchant, genuinely signed", other_mch, signed(other_mch), 400, "invalid_notify"),
            ("another key", raw, signed(raw, signer=STRANGER), 401, "invalid_signature"),
            ("a wrong serial", raw, signed(raw, serial="PUB_KEY_ID_0000"), 401, "unknown_serial"),
            ("an old timestamp", raw, signed(raw, ts=int(time.time()) - 301), 401, "stale_notify"),
            ("a body changed after signing", raw.replace("单据终态通知", "x"), signed(raw), 401,
             "invalid_signature"),
            ("another APIv3 key", sealed_wrong, signed(sealed_wrong), 400, "undecryptable_notify")]:
        try:
            expect_error(post_notify(h, body, headers), status, code)
        except AssertionError as e:
            raise AssertionError("%s: %s" % (what, e))
    assert withdrawal(h, w["id"])["status"] == "approved"
    status, _, answer = post_notify(h, raw, signed(raw))
    assert status == 200 and answer["code"] == "SUCCESS" and answer["outcome"] == "success", (status, answer)
    paid = withdrawal(h, w["id"])
    assert paid["status"] == "paid" and paid["transfer_state"] == "SUCCESS", paid
    before = earnings(h, user)
    for _ in range(2):
        status, _, answer = post_notify(h, raw, signed(raw))
        assert status == 200 and answer["outcome"] == "duplicate", (status, answer)
    assert withdrawal(h, w["id"]) == paid and earnings(h, user) == before
    assert before["withdrawn_fen"] == 1000 and before["available_fen"] == 9000, before
    expect_error(h.get("/v1/wxt/referral/withdrawals/%d/transfer" % w["id"], headers=user_auth(T, user)),
                 409, "not_waiting_for_confirmation")


def test_a_failed_transfer_gives_the_money_back_with_its_reason():
    h = host()
    user = ann(h)
    w = approved(h, user, 2000)
    assert earnings(h, user)["available_fen"] == 7000
    raw = finished(w["out_bill_no"], "FAIL", "TRANSFER_QUOTA_EXCEED")
    status, _, answer = post_notify(h, raw, signed(raw))
    assert status == 200 and answer["outcome"] == "fail", (status, answer)
    failed = withdrawal(h, w["id"])
    assert (failed["status"], failed["fail_reason"]) == ("failed", "TRANSFER_QUOTA_EXCEED"), failed
    assert earnings(h, user)["available_fen"] == 9000
    assert post_notify(h, raw, signed(raw))[2]["outcome"] == "duplicate"
    assert earnings(h, user)["available_fen"] == 9000


def test_an_operator_cancels_a_bill_still_waiting():
    h = host()
    user = ann(h)
    w = approved(h, user, 500)
    status, _, c = h.admin("POST", "/referral/withdrawals/%d/cancel" % w["id"], T, {})
    assert status == 202 and c["status"] == "approved", (status, c)
    wait(lambda: FAKE.requests("%s/out-bill-no/%s/cancel" % (BILLS, w["out_bill_no"])), "the cancel")
    wait(lambda: withdrawal(h, w["id"])["transfer_state"] == "CANCELING", "the cancel's answer")
    raw = finished(w["out_bill_no"], "CANCELLED", "MERCHANT_CANCELLED")
    assert post_notify(h, raw, signed(raw))[2]["outcome"] == "cancelled"
    done = withdrawal(h, w["id"])
    assert done["status"] == "failed" and done["transfer_state"] == "CANCELLED", done
    assert earnings(h, user)["available_fen"] == 9000
    expect_error(h.admin("POST", "/referral/withdrawals/%d/cancel" % w["id"], T, {}), 409, "not_cancellable")
    assert not FAKE.refused, FAKE.refused


def test_a_rolled_back_approval_sends_nothing():
    h = host()
    user = ann(h)
    status, _, w = h.post("/v1/wxt/referral/withdrawals", {"amount_fen": 300}, headers=user_auth(T, user))
    assert status == 201, w
    expect_error(h.admin("POST", "/wdprobe/approve/%d" % w["id"], T, {"then": "fail"}), 409, "changed_my_mind")
    assert withdrawal(h, w["id"])["status"] == "pending"
    # a later committed approval of the same withdrawal is sent: once it has
    # arrived, nothing else was (the outbox sends in order)
    status, _, ok = h.admin("POST", "/wdprobe/approve/%d" % w["id"], T, {"then": "commit"})
    assert status == 200, ok
    no = "rw%010d" % w["id"]
    wait(lambda: creates(no), "the committed approval's create")
    time.sleep(0.3)
    assert len(creates(no)) == 1, creates(no)


def test_the_query_job_settles_a_bill_whose_notify_was_lost():
    h = host()
    user = ann(h)
    w = approved(h, user, 400)
    FAKE.finish_transfer(w["out_bill_no"], "SUCCESS")     # confirmed at WeChat; the notify is lost
    status, _, r = h.admin("POST", "/payments/reconcile", T)
    assert status == 202, (status, r)
    wait(lambda: withdrawal(h, w["id"])["status"] == "paid", "the reconciled transfer")
    asked = FAKE.requests("%s/out-bill-no/%s" % (BILLS, w["out_bill_no"]))
    assert asked and asked[0]["method"] == "GET", asked
    raw = finished(w["out_bill_no"], "SUCCESS")           # the notify after all: nothing moves
    assert post_notify(h, raw, signed(raw))[2]["outcome"] == "duplicate"
    assert not FAKE.refused, FAKE.refused


def test_a_create_without_an_answer_is_queried_and_asked_again_with_the_same_number():
    h = host()
    user = ann(h)
    with FAKE.lock:
        FAKE.failing_creates = [(500, "SYSTEM_ERROR"), (503, "SERVICE_UNAVAILABLE")]  # every attempt
    status, _, w = h.post("/v1/wxt/referral/withdrawals", {"amount_fen": 600}, headers=user_auth(T, user))
    assert status == 201, w
    assert h.admin("POST", "/referral/withdrawals/%d/approve" % w["id"], T, {})[0] == 200
    no = "rw%010d" % w["id"]
    wait(lambda: withdrawal(h, w["id"])["transfer_state"] == "UNKNOWN", "the create given up")
    assert no not in FAKE.bills and len(creates(no)) == 2  # both attempts failed, no bill was made
    assert h.admin("POST", "/payments/reconcile", T)[0] == 202
    done = wait(lambda: (lambda x: x if x["transfer_state"] == "WAIT_USER_CONFIRM" else None)(
        withdrawal(h, w["id"])), "the bill asked for again")
    assert done["out_bill_no"] == no and done["status"] == "approved", done
    assert FAKE.requests("%s/out-bill-no/%s" % (BILLS, no))[0]["method"] == "GET"  # queried first: 404
    assert len(creates(no)) == 3 and no in FAKE.bills     # once more, the same number
    assert len({r["body"] for r in creates(no)}) == 1
    assert not FAKE.refused, FAKE.refused


def test_a_create_wechat_refused_ends_failed_after_the_query_and_the_money_comes_back():
    h = host()
    user = ann(h)
    before = earnings(h, user)["available_fen"]
    with FAKE.lock:
        FAKE.failing_creates = [(403, "NO_AUTH")]
    status, _, w = h.post("/v1/wxt/referral/withdrawals", {"amount_fen": 700}, headers=user_auth(T, user))
    assert status == 201, w
    assert h.admin("POST", "/referral/withdrawals/%d/approve" % w["id"], T, {})[0] == 200
    wait(lambda: withdrawal(h, w["id"])["transfer_state"] == "UNKNOWN", "the refusal")
    assert earnings(h, user)["available_fen"] == before - 700   # not known yet: held
    assert h.admin("POST", "/payments/reconcile", T)[0] == 202
    failed = wait(lambda: (lambda x: x if x["status"] == "failed" else None)(withdrawal(h, w["id"])),
                  "the failed withdrawal")
    assert (failed["transfer_state"], failed["fail_reason"]) == ("FAIL", "NO_AUTH"), failed
    assert earnings(h, user)["available_fen"] == before
    assert len(creates("rw%010d" % w["id"])) == 1 and not FAKE.refused, FAKE.refused  # never asked again


def test_a_member_without_an_openid_is_not_paid():
    h = host()
    earn(h, "cy", "dee", 5000)      # cy: a promoter the customer pool knows by no openid
    status, _, w = h.post("/v1/wxt/referral/withdrawals", {"amount_fen": 500}, headers=user_auth(T, "cy"))
    assert status == 201, w
    expect_error(h.admin("POST", "/referral/withdrawals/%d/approve" % w["id"], T, {}), 409, "openid_unknown")
    assert withdrawal(h, w["id"])["status"] == "pending" and earnings(h, "cy")["available_fen"] == 0
    time.sleep(0.3)
    assert not creates("rw%010d" % w["id"])


def test_a_transfer_that_needs_a_real_name_is_refused_before_anything_is_sent():
    h = host()
    status, _, who = h.admin("POST", "/members/identify", T,
                             {"identities": [{"channel": "mp_openid", "id": "oEveTransfer"}]})
    assert status == 201, who
    eve = who["member"]["id"]
    earn(h, eve, "fay", 2000000)    # 200000 fen settled: ¥2,000, where WeChat wants the payee's name
    status, _, w = h.post("/v1/wxt/referral/withdrawals", {"amount_fen": 200000}, headers=user_auth(T, eve))
    assert status == 201, w
    err = expect_error(h.admin("POST", "/referral/withdrawals/%d/approve" % w["id"], T, {}), 409,
                       "transfer_too_large")
    assert err["error"]["details"] == {"max_fen": 199999}, err
    assert withdrawal(h, w["id"])["status"] == "pending"
    assert h.admin("POST", "/referral/withdrawals/%d/reject" % w["id"], T, {})[0] == 200
    status, _, w = h.post("/v1/wxt/referral/withdrawals", {"amount_fen": 199999}, headers=user_auth(T, eve))
    assert status == 201, w
    assert h.admin("POST", "/referral/withdrawals/%d/approve" % w["id"], T, {})[0] == 200
    wait(lambda: withdrawal(h, w["id"])["transfer_state"] == "WAIT_USER_CONFIRM", "the bill under ¥2,000")
    assert not [r for r in creates() if json.loads(r["body"])["transfer_amount"] >= 200000]
    assert not FAKE.refused, FAKE.refused


def test_a_transfer_config_wechat_would_refuse_keeps_payments_from_loading():
    h = host()
    for t, key, words in BAD:
        status, _, body = h.admin("GET", "/plugins", t)
        assert status == 200, body
        p = [x for x in body["plugins"] if x["name"] == "payments"][0]
        assert p["status"] == "failed", p
        assert key in p["last_error"] and words in p["last_error"], p


def test_the_keys_are_in_no_log_line():
    h = host()
    text = "\n".join(h.lines)
    assert pem_private(MERCHANT).splitlines()[5] not in text and APIV3_KEY not in text
    assert ANN_OPENID not in text


def teardown():
    if H:
        H.stop()
    FAKE.server.shutdown()
    FAKE.server.server_close()


if __name__ == "__main__":
    run(globals())
