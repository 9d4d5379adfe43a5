"""
test_coupons.py - the coupons plugin (plugins/coupons) against the real binary.

Templates are set up through the admin routes, users claim through the user
routes, and the exports the orders plugin uses (quote, lock, unlock, consume,
relock) are driven through tests/e2e/plugins/couponprobe, which calls them with
tp.call exactly as another plugin would. Tenants run on the manual clock so
validity windows, claim windows and "a day in Asia/Shanghai" are rehearsed by
moving it; the concurrency tenant runs on the wall clock.

Money is integer fen throughout; no float is ever sent or expected.
"""
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Host, tenant, manual_tenant, clock, advance, user_auth as bearer,  # noqa: E402
                     expect_error, run)

DAY = 86400
SHANGHAI = 8 * 3600          # Asia/Shanghai: UTC+8, no daylight saving
PLUGINS = {"catalog": {}, "coupons": {}, "couponprobe": {}}

T = manual_tenant("cpn", PLUGINS)        # most tests: one tenant, the clock only moves forward
T_DAY = manual_tenant("cpnday", PLUGINS)  # the daily limit test sets the clock to local times
T_RUSH = tenant("rush", plugins=dict(PLUGINS))

H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[T, T_DAY, T_RUSH], name="coupons").start()
    return H


# ---- helpers

def now(h, t):
    return clock(h, t)["now"]


DROP = object()


def tbody(kind_="fixed", **over):
    """A valid template body of kind_, with fields replaced (DROP removes one)."""
    b = {"name": "coupon", "kind": kind_, "valid_days": 30, "total_quantity": 1000}
    if kind_ == "fixed":
        b["amount_off_fen"] = 1000
    elif kind_ == "percent":
        b.update(percent_off=15, max_discount_fen=500)
    else:
        b.update(amount_off_fen=2000, min_spend_fen=19900)
    for k, v in over.items():
        if v is DROP:
            b.pop(k, None)
        else:
            b[k] = v
    return b


def create(h, t, body):
    return h.admin("POST", "/coupons/templates", t, body)


def template(h, t, kind_="fixed", **over):
    status, _, body = create(h, t, tbody(kind_, **over))
    assert status == 201, (status, body)
    return body


def get_template(h, t, tid):
    status, _, body = h.admin("GET", "/coupons/templates/%d" % tid, t)
    assert status == 200, (status, body)
    return body


def claim(h, t, tid, user):
    return h.post("/v1/%s/coupons/templates/%d/claim" % (t["id"], tid), headers=bearer(t, user))


def claim_ok(h, t, tid, user):
    status, _, body = claim(h, t, tid, user)
    assert status == 201, (status, body)
    assert body["template_id"] == tid and body["user"] == user and body["state"] == "unused", body
    return body


def not_claimable(h, t, tid, user, reason):
    body = expect_error(claim(h, t, tid, user), 409, "not_claimable")
    assert body["error"]["details"]["reason"] == reason, body
    return body


def coupon(h, t, user, kind_="fixed", **over):
    """A new template of kind_ and one coupon of it for user: (template, coupon)."""
    tp = template(h, t, kind_, **over)
    return tp, claim_ok(h, t, tp["id"], user)


def mine(h, t, user, state=None):
    path = "/v1/%s/coupons/mine" % t["id"] + ("?state=%s" % state if state else "")
    status, _, body = h.get(path, headers=bearer(t, user))
    assert status == 200, (status, body)
    return body["items"]


def mine_one(h, t, user, cid):
    found = [c for c in mine(h, t, user) if c["id"] == cid]
    assert len(found) == 1, (cid, found)
    return found[0]


def call(h, t, fn, *args, **extra):
    body = {"fn": fn, "args": list(args)}
    body.update(extra)
    return h.post("/v1/%s/couponprobe/call" % t["id"], body)


def result(h, t, fn, *args):
    status, _, body = call(h, t, fn, *args)
    assert status == 200, (fn, args, status, body)
    return body["result"]


def quote(h, t, user, cid, lines):
    return result(h, t, "quote", user, cid, lines)


def unusable(h, t, reason, fn, *args):
    body = expect_error(call(h, t, fn, *args), 409, "coupon_not_usable")
    assert body["error"]["details"]["reason"] == reason, body
    return body["error"]["details"]


def line(sku, product_id, amount_fen, qty=1):
    return {"sku": sku, "product_id": product_id, "qty": qty, "amount_fen": amount_fen}


def one_line(amount_fen):
    return [line("tea-001", 1, amount_fen)]


def discount(h, t, user, cid, amount_fen):
    q = quote(h, t, user, cid, one_line(amount_fen))
    assert q["eligible_fen"] == amount_fen and q["coupon_id"] == cid, q
    assert isinstance(q["discount_fen"], int) and 0 <= q["discount_fen"] <= amount_fen, q
    return q["discount_fen"]


def templates_count(h, t):
    status, _, body = h.admin("GET", "/coupons/templates?limit=200", t)
    assert status == 200, body
    return len(body["items"])


# ---- 1. template validation: one case per rule, and nothing written

def invalid_cases(t_now):
    """(body, field) pairs: each body breaks exactly one rule."""
    fixed, pct, thr = "fixed", "percent", "threshold"
    return [
        (tbody(colour="red"), "colour"),                                  # unknown field
        (tbody(name=DROP), "name"),
        (tbody(name=""), "name"),
        (tbody(name="x" * 101), "name"),
        (tbody(name=7), "name"),
        (tbody(kind=DROP), "kind"),
        (tbody(kind="bogo"), "kind"),
        # fixed
        (tbody(fixed, amount_off_fen=DROP), "amount_off_fen"),
        (tbody(fixed, amount_off_fen=0), "amount_off_fen"),
        (tbody(fixed, amount_off_fen=-100), "amount_off_fen"),
        (tbody(fixed, amount_off_fen=9.9), "amount_off_fen"),             # never a float
        (tbody(fixed, amount_off_fen="1000"), "amount_off_fen"),
        (tbody(fixed, min_spend_fen=-1), "min_spend_fen"),
        (tbody(fixed, percent_off=10), "percent_off"),                    # not for this kind
        (tbody(fixed, max_discount_fen=100), "max_discount_fen"),
        # percent
        (tbody(pct, percent_off=DROP), "percent_off"),
        (tbody(pct, percent_off=0), "percent_off"),
        (tbody(pct, percent_off=100), "percent_off"),
        (tbody(pct, percent_off=12.5), "percent_off"),
        (tbody(pct, max_discount_fen=DROP), "max_discount_fen"),
        (tbody(pct, max_discount_fen=0), "max_discount_fen"),
        (tbody(pct, amount_off_fen=100), "amount_off_fen"),
        # threshold
        (tbody(thr, amount_off_fen=DROP), "amount_off_fen"),
        (tbody(thr, min_spend_fen=DROP), "min_spend_fen"),
        (tbody(thr, min_spend_fen=2000), "min_spend_fen"),                # equal to the amount
        (tbody(thr, min_spend_fen=1999), "min_spend_fen"),                # below it
        (tbody(thr, max_discount_fen=100), "max_discount_fen"),
        # claim window
        (tbody(claim_starts_at="soon"), "claim_starts_at"),
        (tbody(claim_ends_at=-1), "claim_ends_at"),
        (tbody(claim_starts_at=t_now + 100, claim_ends_at=t_now + 100), "claim_ends_at"),
        (tbody(claim_starts_at=t_now + 100, claim_ends_at=t_now + 50), "claim_ends_at"),
        # validity: exactly one form
        (tbody(valid_days=DROP), "valid_days"),
        (tbody(valid_from=t_now, valid_until=t_now + DAY), "valid_days"),
        (tbody(valid_days=DROP, valid_until=t_now + DAY), "valid_from"),
        (tbody(valid_days=DROP, valid_from=t_now), "valid_until"),
        (tbody(valid_days=DROP, valid_from=t_now + DAY, valid_until=t_now + DAY), "valid_until"),
        (tbody(valid_days=DROP, valid_from=t_now + DAY, valid_until=t_now + 10), "valid_until"),
        (tbody(valid_days=DROP, valid_from=t_now - 2 * DAY, valid_until=t_now - DAY),
         "valid_until"),                                                   # already over
        (tbody(valid_days=0), "valid_days"),
        (tbody(valid_days=3651), "valid_days"),
        (tbody(valid_days="7"), "valid_days"),
        # quantities
        (tbody(total_quantity=DROP), "total_quantity"),
        (tbody(total_quantity=0), "total_quantity"),
        (tbody(total_quantity=1.5), "total_quantity"),
        (tbody(per_user_limit=0), "per_user_limit"),
        (tbody(per_user_daily_limit=0), "per_user_daily_limit"),
        (tbody(per_user_limit=2, per_user_daily_limit=3), "per_user_daily_limit"),
        # scope
        (tbody(scope="category"), "scope"),
        (tbody(scope="products"), "product_ids"),                         # required
        (tbody(scope="exclude", product_ids=[]), "product_ids"),
        (tbody(scope="products", product_ids=[0]), "product_ids"),
        (tbody(scope="products", product_ids=["1"]), "product_ids"),
        (tbody(scope="products", product_ids=[1, 2, 1]), "product_ids"),
        (tbody(scope="products", product_ids={"a": 1}), "product_ids"),
        (tbody(product_ids=[1]), "product_ids"),                          # scope all takes none
        # status
        (tbody(status="deleted"), "status"),
    ]


def test_template_validation_one_case_per_rule_writes_nothing():
    h, t = host(), T
    before = templates_count(h, t)
    cases = invalid_cases(now(h, t))
    for body, field in cases:
        err = expect_error(create(h, t, body), 400, "invalid_field")["error"]
        assert err["details"]["field"] == field, (body, field, err)
        assert field in err["message"], (field, err)
    expect_error(create(h, t, [tbody()]), 400, "invalid_body")
    expect_error(h.admin("POST", "/coupons/templates", t, "not json",
                         headers={"Content-Type": "application/json"}), 400, "invalid_json")
    assert templates_count(h, t) == before, "a refused template was written"
    # JSON null counts as absent for optional fields; boundaries are accepted
    for body in (tbody(min_spend_fen=None, claim_ends_at=None), tbody("percent", percent_off=1),
                 tbody("percent", percent_off=99), tbody(valid_days=1), tbody(valid_days=3650),
                 tbody("threshold", amount_off_fen=2000, min_spend_fen=2001),
                 tbody(per_user_limit=3, per_user_daily_limit=3)):
        status, _, answer = create(h, t, body)
        assert status == 201, (body, status, answer)
    print("  %d invalid template bodies refused" % len(cases))


def test_created_template_shape_and_admin_reads():
    h, t = host(), T
    t0 = now(h, t)
    body = tbody("threshold", name="满199减20", claim_starts_at=t0 - 10, claim_ends_at=t0 + DAY,
                 valid_days=DROP, valid_from=t0, valid_until=t0 + 7 * DAY, total_quantity=50,
                 per_user_limit=2, per_user_daily_limit=1, scope="exclude", product_ids=[9, 3],
                 status="paused")
    status, _, tp = create(h, t, body)
    assert status == 201, tp
    for k, v in body.items():
        if k != "product_ids":
            assert tp[k] == v, (k, tp)
    assert tp["product_ids"] == [3, 9], tp
    assert tp["issued"] == 0 and tp["remaining"] == 50, tp
    assert tp["counts"] == {"total": 0, "unused": 0, "locked": 0, "used": 0, "expired": 0}, tp
    assert "valid_days" not in tp and "percent_off" not in tp, tp
    assert get_template(h, t, tp["id"]) == tp
    # defaults
    d = template(h, t)
    assert d["scope"] == "all" and d["product_ids"] == [] and d["status"] == "active", d
    assert d["per_user_limit"] == 1 and d["min_spend_fen"] == 0, d
    assert "per_user_daily_limit" not in d and "claim_starts_at" not in d, d

    # the list: pages, status filter, admin only
    status, _, page = h.admin("GET", "/coupons/templates?limit=1&after=%d" % (tp["id"] - 1), t)
    assert status == 200 and [x["id"] for x in page["items"]] == [tp["id"]], page
    assert page["next_after"] == tp["id"], page
    status, _, paused = h.admin("GET", "/coupons/templates?status=paused&limit=200", t)
    assert status == 200 and paused["items"], paused
    assert all(x["status"] == "paused" for x in paused["items"]), paused
    assert tp["id"] in [x["id"] for x in paused["items"]], paused
    for q in ("limit=0", "limit=201", "limit=x", "after=-1", "status=gone"):
        expect_error(h.admin("GET", "/coupons/templates?" + q, t), 400, "invalid_query")
    expect_error(h.admin("GET", "/coupons/templates/999999", t), 404, "template_not_found")
    expect_error(h.get("/admin/cpn/coupons/templates"), 401, "api_key_required")
    expect_error(h.request("POST", "/admin/cpn/coupons/templates", body=tbody(),
                           headers={"X-Api-Key": "wrong-key-wrong-key"}), 403, "invalid_api_key")


def test_patch_template():
    h, t = host(), T
    t0 = now(h, t)
    tp = template(h, t, total_quantity=3, per_user_limit=1, claim_starts_at=t0 - 100)
    tid = tp["id"]
    for u in ("pa", "pb"):
        claim_ok(h, t, tid, u)
    path = "/coupons/templates/%d" % tid

    status, _, body = h.admin("PATCH", path, t, {"name": "renamed", "total_quantity": 10})
    assert status == 200 and body["name"] == "renamed" and body["total_quantity"] == 10, body
    assert body["remaining"] == 8 and body["kind"] == "fixed", body
    # down to the issued count, not below
    body = expect_error(h.admin("PATCH", path, t, {"total_quantity": 1}), 409, "quantity_below_issued")
    assert body["error"]["details"]["issued"] == 2, body
    assert get_template(h, t, tid)["total_quantity"] == 10, "a refused patch was written"
    status, _, body = h.admin("PATCH", path, t, {"total_quantity": 2})
    assert status == 200 and body["remaining"] == 0, body
    expect_error(claim(h, t, tid, "pc"), 409, "sold_out")
    status, _, body = h.admin("PATCH", path, t, {"total_quantity": 3})
    assert status == 200 and body["remaining"] == 1, body
    claim_ok(h, t, tid, "pc")

    # the claim window's end: set, removed with null, never before its start
    status, _, body = h.admin("PATCH", path, t, {"claim_ends_at": t0 + 50})
    assert status == 200 and body["claim_ends_at"] == t0 + 50, body
    status, _, body = h.admin("PATCH", path, t, {"claim_ends_at": None})
    assert status == 200 and "claim_ends_at" not in body, body
    err = expect_error(h.admin("PATCH", path, t, {"claim_ends_at": t0 - 100}), 400, "invalid_field")
    assert err["error"]["details"]["field"] == "claim_ends_at", err
    # status
    status, _, body = h.admin("PATCH", path, t, {"status": "paused"})
    assert status == 200 and body["status"] == "paused", body
    status, _, body = h.admin("PATCH", path, t, {"status": "active"})
    assert status == 200 and body["status"] == "active", body

    # what cannot change, bad values, nothing at all, no such template
    for patch, field in (({"kind": "percent"}, "kind"), ({"amount_off_fen": 1}, "amount_off_fen"),
                         ({"per_user_limit": 5}, "per_user_limit"), ({"status": "gone"}, "status"),
                         ({"name": ""}, "name"), ({"total_quantity": 0}, "total_quantity"),
                         ({"claim_ends_at": "tomorrow"}, "claim_ends_at"),
                         ({"name": "ok", "valid_days": 3}, "valid_days")):
        err = expect_error(h.admin("PATCH", path, t, patch), 400, "invalid_field")
        assert err["error"]["details"]["field"] == field, (patch, err)
    expect_error(h.admin("PATCH", path, t, {}), 400, "invalid_body")
    expect_error(h.admin("PATCH", "/coupons/templates/999999", t, {"name": "x"}), 404,
                 "template_not_found")
    after = get_template(h, t, tid)
    assert after["name"] == "renamed" and after["status"] == "active", after
    assert after["total_quantity"] == 3 and after["issued"] == 3, after


# ---- 2. arithmetic, through quote

def test_fixed_discount_never_above_eligible_and_min_spend_boundary():
    h, t = host(), T
    _, c = coupon(h, t, "fx", amount_off_fen=1000)
    assert discount(h, t, "fx", c["id"], 5000) == 1000
    assert discount(h, t, "fx", c["id"], 1000) == 1000
    assert discount(h, t, "fx", c["id"], 800) == 800          # never more than the eligible subtotal
    assert discount(h, t, "fx", c["id"], 1) == 1
    _, c = coupon(h, t, "fx", amount_off_fen=500, min_spend_fen=3000)
    assert discount(h, t, "fx", c["id"], 3000) == 500         # exactly the minimum works
    d = unusable(h, t, "below_threshold", "quote", "fx", c["id"], one_line(2999))
    assert d["min_spend_fen"] == 3000 and d["eligible_fen"] == 2999, d


def test_percent_discount_rounds_down_and_is_capped():
    h, t = host(), T
    _, c = coupon(h, t, "pc", "percent", percent_off=15, max_discount_fen=500)
    assert discount(h, t, "pc", c["id"], 1999) == 299         # 299.85 -> 299
    assert discount(h, t, "pc", c["id"], 3333) == 499         # 499.95 -> 499
    assert discount(h, t, "pc", c["id"], 3334) == 500         # 500.10 -> 500, the cap
    assert discount(h, t, "pc", c["id"], 100000) == 500       # 15000 capped at 500
    assert discount(h, t, "pc", c["id"], 6) == 0              # 0.9 -> 0
    _, c = coupon(h, t, "pc", "percent", percent_off=99, max_discount_fen=10 ** 9)
    assert discount(h, t, "pc", c["id"], 101) == 99           # 99.99 -> 99
    assert discount(h, t, "pc", c["id"], 123456789) == 122222221  # 122222221.11
    _, c = coupon(h, t, "pc", "percent", percent_off=1, max_discount_fen=5, min_spend_fen=10000)
    assert discount(h, t, "pc", c["id"], 10000) == 5          # 100 capped at 5
    unusable(h, t, "below_threshold", "quote", "pc", c["id"], one_line(9999))


def test_threshold_discount_and_its_boundary():
    h, t = host(), T
    _, c = coupon(h, t, "th", "threshold", amount_off_fen=2000, min_spend_fen=19900)  # 满199减20
    assert discount(h, t, "th", c["id"], 19900) == 2000
    assert discount(h, t, "th", c["id"], 50000) == 2000
    d = unusable(h, t, "below_threshold", "quote", "th", c["id"], one_line(19899))
    assert d["min_spend_fen"] == 19900, d
    # the threshold is met by the eligible lines only, summed over several
    _, c = coupon(h, t, "th", "threshold", amount_off_fen=2000, min_spend_fen=19900,
                  scope="products", product_ids=[1, 2])
    q = quote(h, t, "th", c["id"], [line("a", 1, 10000), line("b", 2, 9900, qty=3)])
    assert q["discount_fen"] == 2000 and q["eligible_fen"] == 19900, q
    d = unusable(h, t, "below_threshold", "quote", "th", c["id"],
                 [line("a", 1, 10000), line("b", 2, 9899), line("c", 3, 90000)])
    assert d["eligible_fen"] == 19899, d


def test_scope_all_products_exclude_with_mixed_lines():
    h, t = host(), T
    lines = [line("a", 1, 1000), line("b", 2, 500, qty=5), line("c", 3, 7000),
             line("a", 1, 300), line("z", 2, 0)]      # a second line of a; a zero line
    _, c_all = coupon(h, t, "sc", amount_off_fen=100000)
    q = quote(h, t, "sc", c_all["id"], lines)
    assert q == {"coupon_id": c_all["id"], "template_id": c_all["template_id"],
                 "discount_fen": 8800, "eligible_fen": 8800, "eligible_skus": ["a", "b", "c"]}, q
    _, c_in = coupon(h, t, "sc", amount_off_fen=100000, scope="products", product_ids=[1, 2])
    q = quote(h, t, "sc", c_in["id"], lines)
    assert (q["eligible_fen"], q["eligible_skus"], q["discount_fen"]) == (1800, ["a", "b"], 1800), q
    _, c_ex = coupon(h, t, "sc", "percent", percent_off=10, max_discount_fen=10 ** 6,
                     scope="exclude", product_ids=[1, 2])
    q = quote(h, t, "sc", c_ex["id"], lines)
    assert (q["eligible_fen"], q["eligible_skus"], q["discount_fen"]) == (7000, ["c"], 700), q
    # no eligible line: out of scope, only zero-amount lines, or no lines at all
    unusable(h, t, "not_applicable", "quote", "sc", c_in["id"], [line("c", 3, 7000)])
    unusable(h, t, "not_applicable", "quote", "sc", c_ex["id"], [line("a", 1, 1000), line("b", 2, 5)])
    unusable(h, t, "not_applicable", "quote", "sc", c_in["id"], [line("z", 2, 0)])
    unusable(h, t, "not_applicable", "quote", "sc", c_all["id"], [])
    # quoting writes nothing
    assert mine_one(h, t, "sc", c_in["id"])["state"] == "unused"


# ---- 3. every failure reason of quote, and its argument checks

def test_quote_failure_reasons():
    h, t = host(), T
    t0 = now(h, t)
    _, c = coupon(h, t, "qf")
    cid = c["id"]
    lines = one_line(5000)
    # not found, and another user's coupon looks exactly the same
    nf = expect_error(call(h, t, "quote", "qf", 99999999, lines), 404, "coupon_not_found")
    other = expect_error(call(h, t, "quote", "qf-other", cid, lines), 404, "coupon_not_found")
    assert nf["error"]["message"] == other["error"]["message"], (nf, other)
    assert nf["error"]["details"] == {"coupon_id": 99999999}, nf
    assert other["error"]["details"] == {"coupon_id": cid}, other      # only what was asked
    # locked, then used
    assert result(h, t, "lock", "qf", cid, "order-qf-1", lines)["discount_fen"] == 1000
    unusable(h, t, "locked", "quote", "qf", cid, lines)
    assert result(h, t, "consume", "order-qf-1") is True
    unusable(h, t, "used", "quote", "qf", cid, lines)
    # not yet valid, then valid, then expired exactly at valid_until
    _, c = coupon(h, t, "qf", valid_days=DROP, valid_from=t0 + 100, valid_until=t0 + 200)
    d = unusable(h, t, "not_yet_valid", "quote", "qf", c["id"], lines)
    assert d["valid_from"] == t0 + 100, d
    advance(h, t, seconds=100)
    assert discount(h, t, "qf", c["id"], 5000) == 1000
    advance(h, t, seconds=99)
    assert discount(h, t, "qf", c["id"], 5000) == 1000       # the last valid second
    advance(h, t, seconds=1)
    d = unusable(h, t, "expired", "quote", "qf", c["id"], lines)
    assert d["valid_until"] == t0 + 200, d
    unusable(h, t, "expired", "lock", "qf", c["id"], "order-qf-2", lines)
    assert mine_one(h, t, "qf", c["id"])["state"] == "expired"
    # not applicable, below threshold
    _, c = coupon(h, t, "qf", "threshold", scope="products", product_ids=[5])
    unusable(h, t, "not_applicable", "quote", "qf", c["id"], lines)
    unusable(h, t, "below_threshold", "quote", "qf", c["id"], [line("x", 5, 100)])


def test_export_arguments_are_checked():
    h, t = host(), T
    _, c = coupon(h, t, "ax")
    cid, ok_lines = c["id"], one_line(100)
    bad = [
        (("quote", "", cid, ok_lines), "user"),
        (("quote", "a b", cid, ok_lines), "user"),
        (("quote", 42, cid, ok_lines), "user"),
        (("quote", "ax", "1", ok_lines), "coupon_id"),
        (("quote", "ax", 0, ok_lines), "coupon_id"),
        (("quote", "ax", 1.5, ok_lines), "coupon_id"),
        (("quote", "ax", cid, "lines"), "lines"),
        (("quote", "ax", cid, {"sku": "a"}), "lines"),
        (("quote", "ax", cid, [7]), "lines[1]"),
        (("quote", "ax", cid, [line("", 1, 100)]), "lines[1].sku"),
        (("quote", "ax", cid, ok_lines + [line("b", 0, 100)]), "lines[2].product_id"),
        (("quote", "ax", cid, [line("a", 1, 100, qty=0)]), "lines[1].qty"),
        (("quote", "ax", cid, [line("a", 1, 99.5)]), "lines[1].amount_fen"),
        (("quote", "ax", cid, [line("a", 1, -1)]), "lines[1].amount_fen"),
        (("lock", "ax", cid, 0, ok_lines), "order_id"),
        (("lock", "ax", cid, "", ok_lines), "order_id"),
        (("lock", "ax", cid, "has space", ok_lines), "order_id"),
        (("lock", "ax", cid, 1.5, ok_lines), "order_id"),
        (("unlock", None), "order_id"),
        (("consume", {"id": 1}), "order_id"),
        (("relock", -3), "order_id"),
    ]
    for args, arg in bad:
        body = expect_error(call(h, t, *args), 400, "invalid_argument")
        assert body["error"]["details"]["argument"] == arg, (args, body)
    assert mine_one(h, t, "ax", cid)["state"] == "unused"


# ---- 4. claiming

def test_claim_window_pause_and_expiry():
    h, t = host(), T
    t0 = now(h, t)
    later = template(h, t, claim_starts_at=t0 + 60, claim_ends_at=t0 + 120)["id"]
    body = not_claimable(h, t, later, "cw", "not_started")
    assert "started" in body["error"]["message"], body
    advance(h, t, seconds=60)                        # opens exactly at claim_starts_at
    claim_ok(h, t, later, "cw")
    advance(h, t, seconds=59)
    claim_ok(h, t, later, "cw2")                     # the last second of the window
    advance(h, t, seconds=1)
    not_claimable(h, t, later, "cw3", "ended")       # closed exactly at claim_ends_at

    tid = template(h, t, status="paused")["id"]
    not_claimable(h, t, tid, "cw", "paused")
    h.admin("PATCH", "/coupons/templates/%d" % tid, t, {"status": "active"})
    claim_ok(h, t, tid, "cw")

    t1 = now(h, t)
    short = template(h, t, valid_days=DROP, valid_from=t1, valid_until=t1 + 30)["id"]
    advance(h, t, seconds=30)
    not_claimable(h, t, short, "cw", "expired")      # its coupons would be dead on arrival

    expect_error(claim(h, t, 99999999, "cw"), 404, "template_not_found")
    expect_error(h.post("/v1/cpn/coupons/templates/%d/claim" % tid), 401, "auth_required")
    assert get_template(h, t, later)["issued"] == 2


def test_claimable_lists_open_templates_with_quantity():
    h, t = host(), T
    t0 = now(h, t)
    open_ = template(h, t, name="open", per_user_limit=2)["id"]
    windowed = template(h, t, name="windowed", claim_starts_at=t0 - 1, claim_ends_at=t0 + 10)["id"]
    not_yet = template(h, t, name="not yet", claim_starts_at=t0 + 10)["id"]
    ended = template(h, t, name="ended", claim_ends_at=t0 + 5)["id"]
    paused = template(h, t, name="paused", status="paused")["id"]
    sold = template(h, t, name="sold", total_quantity=1)["id"]
    claim_ok(h, t, sold, "someone")
    daily = template(h, t, name="daily", per_user_limit=5, per_user_daily_limit=1)["id"]
    advance(h, t, seconds=5)

    def listed(headers=None):
        status, _, body = h.get("/v1/cpn/coupons/claimable?limit=200", headers=headers)
        assert status == 200, body
        return {x["id"]: x for x in body["items"]}

    anon = listed()
    assert open_ in anon and windowed in anon and daily in anon, anon.keys()
    for tid in (not_yet, ended, paused, sold):
        assert tid not in anon, (tid, anon.keys())
    assert "claimed" not in anon[open_] and anon[open_]["remaining"] == 1000, anon[open_]
    claim_ok(h, t, open_, "lister")
    claim_ok(h, t, daily, "lister")
    mine_ = listed(bearer(t, "lister"))
    assert (mine_[open_]["claimed"], mine_[open_]["can_claim"]) == (1, True), mine_[open_]
    assert (mine_[daily]["claimed"], mine_[daily]["can_claim"]) == (1, False), mine_[daily]
    assert (mine_[windowed]["claimed"], mine_[windowed]["can_claim"]) == (0, True), mine_[windowed]
    advance(h, t, seconds=5)
    assert windowed not in listed()
    for q in ("limit=0", "after=x"):
        expect_error(h.get("/v1/cpn/coupons/claimable?" + q), 400, "invalid_query")


def test_per_user_limit():
    h, t = host(), T
    tid = template(h, t, per_user_limit=2)["id"]
    a = claim_ok(h, t, tid, "lim")
    b = claim_ok(h, t, tid, "lim")
    assert (a["seq"], b["seq"]) == (1, 2), (a, b)
    body = expect_error(claim(h, t, tid, "lim"), 409, "limit_reached")
    assert body["error"]["details"] == {"per_user_limit": 2, "held": 2}, body
    claim_ok(h, t, tid, "lim-other")
    # using a coupon does not give the right to claim another
    result(h, t, "lock", "lim", a["id"], "order-lim", one_line(5000))
    result(h, t, "consume", "order-lim")
    expect_error(claim(h, t, tid, "lim"), 409, "limit_reached")
    tp = get_template(h, t, tid)
    assert tp["issued"] == 3 and tp["counts"]["total"] == 3 and tp["counts"]["used"] == 1, tp


def local_to_epoch(day_start_local, seconds_into_day):
    return day_start_local + seconds_into_day - SHANGHAI


def test_daily_limit_resets_on_the_next_local_day():
    h, t = host(), T_DAY
    c0 = now(h, t)
    local = c0 + SHANGHAI
    day0 = local - local % DAY                       # today's local midnight, in local seconds
    target = day0 + DAY - 60                         # 23:59:00 local, today or tomorrow
    if target <= local:
        target += DAY
    advance(h, t, to=target - SHANGHAI)
    tid = template(h, t, per_user_limit=3, per_user_daily_limit=1)["id"]
    first = claim_ok(h, t, tid, "day")
    body = expect_error(claim(h, t, tid, "day"), 409, "daily_limit_reached")
    det = body["error"]["details"]
    assert det["per_user_daily_limit"] == 1, det
    d = time.gmtime(target)                          # target is local time read as UTC
    assert det["day"] == "%04d-%02d-%02d" % (d.tm_year, d.tm_mon, d.tm_mday), det
    claim_ok(h, t, tid, "day-other")                 # per user
    advance(h, t, seconds=59)                        # 23:59:59: still the same day
    expect_error(claim(h, t, tid, "day"), 409, "daily_limit_reached")
    advance(h, t, seconds=1)                         # 00:00:00 local: a new day
    second = claim_ok(h, t, tid, "day")
    assert second["claimed_at"] - first["claimed_at"] == 60, (first, second)
    expect_error(claim(h, t, tid, "day"), 409, "daily_limit_reached")
    # 08:00 local is midnight UTC: nothing resets then
    advance(h, t, seconds=8 * 3600 - 1)
    expect_error(claim(h, t, tid, "day"), 409, "daily_limit_reached")
    advance(h, t, seconds=1)
    expect_error(claim(h, t, tid, "day"), 409, "daily_limit_reached")
    advance(h, t, seconds=16 * 3600)                 # the next local midnight
    claim_ok(h, t, tid, "day")
    advance(h, t, seconds=DAY)
    body = expect_error(claim(h, t, tid, "day"), 409, "limit_reached")   # 3 in all
    assert body["error"]["details"]["per_user_limit"] == 3, body


def test_validity_days_counts_from_claim_time():
    h, t = host(), T
    tid = template(h, t, valid_days=3)["id"]
    t0 = now(h, t)
    a = claim_ok(h, t, tid, "vd-a")
    assert (a["claimed_at"], a["valid_from"], a["valid_until"]) == (t0, t0, t0 + 3 * DAY), a
    advance(h, t, seconds=1000)
    b = claim_ok(h, t, tid, "vd-b")
    assert (b["valid_from"], b["valid_until"]) == (t0 + 1000, t0 + 1000 + 3 * DAY), b
    advance(h, t, seconds=3 * DAY - 1000 - 1)        # a's last second
    assert discount(h, t, "vd-a", a["id"], 5000) == 1000
    assert mine_one(h, t, "vd-a", a["id"])["state"] == "unused"
    advance(h, t, seconds=1)
    unusable(h, t, "expired", "quote", "vd-a", a["id"], one_line(5000))
    got = mine_one(h, t, "vd-a", a["id"])
    assert got["state"] == "expired" and got["usable"] is False, got
    assert [c["id"] for c in mine(h, t, "vd-a", "expired")] == [a["id"]]
    assert mine(h, t, "vd-a", "unused") == []
    assert discount(h, t, "vd-b", b["id"], 5000) == 1000   # b was claimed later


def test_fixed_validity_is_the_templates():
    h, t = host(), T
    t0 = now(h, t)
    tid = template(h, t, valid_days=DROP, valid_from=t0 + 3600, valid_until=t0 + 7200)["id"]
    c = claim_ok(h, t, tid, "fv")                    # claimable before it is valid
    assert (c["valid_from"], c["valid_until"], c["usable"]) == (t0 + 3600, t0 + 7200, False), c
    unusable(h, t, "not_yet_valid", "quote", "fv", c["id"], one_line(5000))
    advance(h, t, seconds=3600)
    assert discount(h, t, "fv", c["id"], 5000) == 1000
    assert mine_one(h, t, "fv", c["id"])["usable"] is True
    advance(h, t, seconds=3600)
    unusable(h, t, "expired", "quote", "fv", c["id"], one_line(5000))
    not_claimable(h, t, tid, "fv2", "expired")


# ---- 5. concurrency

def test_concurrent_claims_never_over_issue():
    h, t = host(), T_RUSH
    tid = template(h, t, total_quantity=100, per_user_limit=1)["id"]
    users = ["rush-%03d" % i for i in range(250)]
    attempts = users * 2                              # 500 claims
    random.Random(7).shuffle(attempts)
    for u in users:
        bearer(t, u)                                  # tokens made before the start
    threads_n = 125                                   # 125 at once, 4 claims each
    chunks = [attempts[i::threads_n] for i in range(threads_n)]
    lock = threading.Lock()
    won, refused, other = [], {}, []
    start = threading.Barrier(threads_n)

    def client(mine_):
        start.wait()
        for u in mine_:
            try:
                status, _, body = claim(h, t, tid, u)
            except Exception as e:                    # noqa: BLE001 - reported below
                with lock:
                    other.append(repr(e))
                continue
            with lock:
                if status == 201:
                    won.append((u, body["id"], body["seq"]))
                elif status == 409 and body["error"]["code"] in ("sold_out", "limit_reached"):
                    code = body["error"]["code"]
                    refused[code] = refused.get(code, 0) + 1
                else:
                    other.append((status, body))

    threads = [threading.Thread(target=client, args=(c,)) for c in chunks]
    for th in threads:
        th.start()
    for th in threads:
        th.join(180)
    assert not other, other[:5]
    assert len(won) == 100, (len(won), refused)
    assert sum(refused.values()) == 400, refused
    winners = [u for u, _, _ in won]
    assert len(set(winners)) == 100, "a user got two coupons"
    assert all(seq == 1 for _, _, seq in won), won
    tp = get_template(h, t, tid)
    assert tp["issued"] == 100 and tp["remaining"] == 0, tp
    assert tp["counts"]["total"] == 100 and tp["counts"]["unused"] == 100, tp
    status, _, rows = h.admin("GET", "/coupons/templates/%d/coupons?limit=1000" % tid, t)
    assert status == 200 and len(rows["items"]) == 100, (status, len(rows.get("items", [])))
    assert sorted(r["user"] for r in rows["items"]) == sorted(winners)
    assert sorted(r["id"] for r in rows["items"]) == sorted(i for _, i, _ in won)
    print("  500 claims: 201 x %d, %r" % (len(won), refused))


def test_one_user_hammering_gets_exactly_the_limit():
    h, t = host(), T_RUSH
    tid = template(h, t, total_quantity=1000, per_user_limit=3)["id"]
    n = 60
    codes = []
    lock = threading.Lock()
    start = threading.Barrier(n)
    bearer(t, "hammer")

    def client():
        start.wait()
        status, _, body = claim(h, t, tid, "hammer")
        with lock:
            codes.append(status if status == 201 else body["error"]["code"])

    threads = [threading.Thread(target=client) for _ in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert codes.count(201) == 3 and codes.count("limit_reached") == n - 3, codes
    tp = get_template(h, t, tid)
    assert tp["issued"] == 3 and tp["counts"]["total"] == 3, tp
    assert sorted(c["seq"] for c in mine(h, t, "hammer")) == [1, 2, 3]


# ---- 6. lock, unlock, consume, relock

def test_lock_unlock_consume_relock():
    h, t = host(), T
    _, c = coupon(h, t, "lk", amount_off_fen=700)
    cid, lines = c["id"], one_line(5000)
    q = result(h, t, "lock", "lk", cid, 1001, lines)
    assert q == {"coupon_id": cid, "template_id": c["template_id"], "discount_fen": 700,
                 "eligible_fen": 5000, "eligible_skus": ["tea-001"]}, q
    got = mine_one(h, t, "lk", cid)
    assert got["state"] == "locked" and got["order_id"] == 1001 and got["usable"] is False, got
    # a coupon locked by one order can never be locked by another
    unusable(h, t, "locked", "lock", "lk", cid, 1002, lines)
    unusable(h, t, "locked", "lock", "lk", cid, 1001, lines)
    assert mine(h, t, "lk", "locked")[0]["id"] == cid
    assert result(h, t, "unlock", 1002) is False     # order 1002 holds nothing
    assert result(h, t, "consume", 1002) is False
    # unlock returns it; a second unlock moves nothing
    assert result(h, t, "unlock", 1001) is True
    assert result(h, t, "unlock", 1001) is False
    got = mine_one(h, t, "lk", cid)
    assert got["state"] == "unused" and "order_id" not in got, got
    assert result(h, t, "consume", 1001) is False    # nothing locked to consume
    # relock after unlock works
    assert result(h, t, "relock", 1001) is True
    assert result(h, t, "relock", 1001) is False     # already locked: nothing moved
    assert mine_one(h, t, "lk", cid)["order_id"] == 1001
    # consume makes it used, once
    assert result(h, t, "consume", 1001) is True
    assert result(h, t, "consume", 1001) is False
    got = mine_one(h, t, "lk", cid)
    assert got["state"] == "used" and got["order_id"] == 1001 and got["used_at"], got
    assert result(h, t, "unlock", 1001) is False     # a used coupon stays used
    assert result(h, t, "relock", 1001) is False
    unusable(h, t, "used", "lock", "lk", cid, 1003, lines)
    assert [x["id"] for x in mine(h, t, "lk", "used")] == [cid]

    # relock after another order locked the coupon does not work
    _, c2 = coupon(h, t, "lk")
    assert result(h, t, "lock", "lk", c2["id"], "ord-a", lines)["discount_fen"] == 1000
    assert result(h, t, "unlock", "ord-a") is True
    result(h, t, "lock", "lk", c2["id"], "ord-b", lines)
    assert result(h, t, "relock", "ord-a") is False
    assert mine_one(h, t, "lk", c2["id"])["order_id"] == "ord-b"
    assert result(h, t, "consume", "ord-b") is True
    assert result(h, t, "relock", "ord-a") is False
    # an order locks one coupon only, once
    _, c3 = coupon(h, t, "lk")
    body = expect_error(call(h, t, "lock", "lk", c3["id"], "ord-b", lines), 409, "order_has_coupon")
    assert body["error"]["details"]["coupon_id"] == c2["id"], body
    expect_error(call(h, t, "lock", "lk", c3["id"], "ord-a", lines), 409, "order_has_coupon")
    # an order id is taken as given: 1001 and "1001" are two orders
    assert result(h, t, "unlock", "1001") is False
    assert result(h, t, "relock", "never-locked") is False
    assert mine_one(h, t, "lk", c3["id"])["state"] == "unused"


def test_relock_needs_a_still_valid_coupon_and_lock_rolls_back_with_its_caller():
    h, t = host(), T
    t0 = now(h, t)
    _, c = coupon(h, t, "rl", valid_days=DROP, valid_from=t0, valid_until=t0 + 600)
    lines = one_line(5000)
    result(h, t, "lock", "rl", c["id"], "ord-late", lines)
    assert result(h, t, "unlock", "ord-late") is True
    advance(h, t, seconds=600)                       # the payment arrives after expiry
    assert result(h, t, "relock", "ord-late") is False
    assert mine_one(h, t, "rl", c["id"])["state"] == "expired"
    # a locked coupon can still be consumed after its validity: it was valid at order time
    _, c = coupon(h, t, "rl", valid_days=DROP, valid_from=now(h, t), valid_until=now(h, t) + 600)
    result(h, t, "lock", "rl", c["id"], "ord-slow", lines)
    advance(h, t, seconds=900)
    assert result(h, t, "consume", "ord-slow") is True
    # the caller fails after locking: the lock is undone with it
    _, c = coupon(h, t, "rl")
    expect_error(call(h, t, "lock", "rl", c["id"], "ord-doomed", lines, then_fail=True), 409,
                 "probe_failed_on_purpose")
    assert mine_one(h, t, "rl", c["id"])["state"] == "unused"
    assert result(h, t, "relock", "ord-doomed") is False   # no trace of that order either
    assert result(h, t, "lock", "rl", c["id"], "ord-doomed", lines)["discount_fen"] == 1000
    # a refused lock leaves nothing behind
    _, c = coupon(h, t, "rl", min_spend_fen=9000)
    unusable(h, t, "below_threshold", "lock", "rl", c["id"], "ord-cheap", lines)
    assert result(h, t, "relock", "ord-cheap") is False
    assert mine_one(h, t, "rl", c["id"])["state"] == "unused"


# ---- 7. targeted issue

def issue(h, t, tid, users):
    return h.admin("POST", "/coupons/templates/%d/issue" % tid, t, {"users": users})


def issue_ok(h, t, tid, users):
    status, _, body = issue(h, t, tid, users)
    assert status == 200, (status, body)
    return body


def test_targeted_issue_all_or_nothing_with_skips_and_duplicates():
    h, t = host(), T
    tid = template(h, t, total_quantity=5, per_user_limit=1)["id"]
    body = issue_ok(h, t, tid, ["ia", "ib", "ia", "ic", "ib"])     # duplicates count once
    assert body["issued"] == 3 and body["skipped"] == [], body
    assert [c["user"] for c in body["coupons"]] == ["ia", "ib", "ic"], body
    got = mine(h, t, "ia")
    assert len(got) == 1 and got[0]["source"] == "issue" and got[0]["id"] == body["coupons"][0]["coupon_id"]
    # 3 eligible users, 2 left: refused as a whole, nothing issued
    body = expect_error(issue(h, t, tid, ["ia", "id", "ie", "if"]), 409, "insufficient_quantity")
    det = body["error"]["details"]
    assert (det["remaining"], det["needed"], det["skipped"]) == (2, 3, 1), det
    assert mine(h, t, "id") == [] and mine(h, t, "ie") == []
    assert get_template(h, t, tid)["issued"] == 3
    # users at their limit are skipped and reported; the rest fit
    body = issue_ok(h, t, tid, ["ia", "id", "ie"])
    assert body["issued"] == 2, body
    assert body["skipped"] == [{"user": "ia", "reason": "limit_reached"}], body
    # nothing left, but nobody needs one: not an error
    body = issue_ok(h, t, tid, ["ib", "ic"])
    assert body["issued"] == 0 and len(body["skipped"]) == 2 and body["coupons"] == [], body
    expect_error(issue(h, t, tid, ["ig"]), 409, "insufficient_quantity")
    tp = get_template(h, t, tid)
    assert tp["issued"] == 5 and tp["counts"]["total"] == 5, tp

    # per_user_limit 2: a user may be issued twice, then is skipped
    tid2 = template(h, t, total_quantity=100, per_user_limit=2)["id"]
    claim_ok(h, t, tid2, "ih")
    assert issue_ok(h, t, tid2, ["ih"])["issued"] == 1
    body = issue_ok(h, t, tid2, ["ih", "ii"])
    assert body["issued"] == 1 and body["skipped"] == [{"user": "ih", "reason": "limit_reached"}]
    assert sorted(c["seq"] for c in mine(h, t, "ih")) == [1, 2]


def test_targeted_issue_ignores_the_claim_window_but_not_pause_or_expiry():
    h, t = host(), T
    t0 = now(h, t)
    closed = template(h, t, claim_starts_at=t0 + DAY)["id"]
    not_claimable(h, t, closed, "iw", "not_started")
    assert issue_ok(h, t, closed, ["iw"])["issued"] == 1
    ended = template(h, t, claim_ends_at=t0 + 1)["id"]
    advance(h, t, seconds=1)
    assert issue_ok(h, t, ended, ["iw"])["issued"] == 1
    # the daily limit governs claims only; issued coupons count towards it
    daily = template(h, t, per_user_limit=3, per_user_daily_limit=1)["id"]
    assert issue_ok(h, t, daily, ["iw", "iw2"])["issued"] == 2
    assert issue_ok(h, t, daily, ["iw"])["issued"] == 1
    expect_error(claim(h, t, daily, "iw2"), 409, "daily_limit_reached")

    paused = template(h, t, status="paused")["id"]
    body = expect_error(issue(h, t, paused, ["iw"]), 409, "not_issuable")
    assert body["error"]["details"]["reason"] == "paused", body
    t1 = now(h, t)
    short = template(h, t, valid_days=DROP, valid_from=t1, valid_until=t1 + 10)["id"]
    advance(h, t, seconds=10)
    body = expect_error(issue(h, t, short, ["iw"]), 409, "not_issuable")
    assert body["error"]["details"]["reason"] == "expired", body
    assert get_template(h, t, paused)["issued"] == 0 and get_template(h, t, short)["issued"] == 0


def test_targeted_issue_validation():
    h, t = host(), T
    tid = template(h, t, total_quantity=5000)["id"]
    for users in (None, [], "ua", {"a": "ua"}, ["ua", 7], ["ua", ""], ["a b"], ["x" * 65],
                  ["ok"] * 1000 + ["one-too-many"], ["ua", None]):
        body = {"users": users} if users is not None else {}
        err = expect_error(h.admin("POST", "/coupons/templates/%d/issue" % tid, t, body), 400,
                           "invalid_field")
        assert err["error"]["details"]["field"] == "users", (users, err)
    err = expect_error(h.admin("POST", "/coupons/templates/%d/issue" % tid, t,
                               {"users": ["ua"], "note": "x"}), 400, "invalid_field")
    assert err["error"]["details"]["field"] == "note", err
    expect_error(issue(h, t, 99999999, ["ua"]), 404, "template_not_found")
    assert get_template(h, t, tid)["issued"] == 0
    # 1000 distinct users at once is the most, and it works
    many = ["bulk-%04d" % i for i in range(1000)]
    body = issue_ok(h, t, tid, many)
    assert body["issued"] == 1000 and len(body["coupons"]) == 1000, body["issued"]
    assert get_template(h, t, tid)["counts"]["total"] == 1000


# ---- 8. users see and use only their own coupons

def test_users_cannot_see_or_use_others_coupons():
    h, t = host(), T
    _, c = coupon(h, t, "owner")
    cid, lines = c["id"], one_line(5000)
    assert cid in [x["id"] for x in mine(h, t, "owner")]
    assert cid not in [x["id"] for x in mine(h, t, "intruder")]
    assert all(x["user"] == "intruder" for x in mine(h, t, "intruder"))
    for fn, args in (("quote", ("intruder", cid, lines)),
                     ("lock", ("intruder", cid, "ord-steal", lines))):
        body = expect_error(call(h, t, fn, *args), 404, "coupon_not_found")
        assert body["error"]["details"] == {"coupon_id": cid}, body
    assert mine_one(h, t, "owner", cid)["state"] == "unused"
    # the intruder cannot unlock the owner's locked coupon by naming another order
    result(h, t, "lock", "owner", cid, "ord-owner", lines)
    assert result(h, t, "unlock", "ord-steal") is False
    assert mine_one(h, t, "owner", cid)["state"] == "locked"
    expect_error(h.get("/v1/cpn/coupons/mine"), 401, "auth_required")
    for q in ("state=gone", "limit=0", "limit=201", "after=-5"):
        expect_error(h.get("/v1/cpn/coupons/mine?" + q, headers=bearer(t, "owner")), 400,
                     "invalid_query")


def test_admin_lists_a_templates_coupons_by_state():
    h, t = host(), T
    tid = template(h, t, total_quantity=10, valid_days=1)["id"]
    ids = [claim_ok(h, t, tid, "al-%d" % i)["id"] for i in range(4)]
    lines = one_line(5000)
    result(h, t, "lock", "al-1", ids[1], "ord-al-1", lines)
    result(h, t, "lock", "al-2", ids[2], "ord-al-2", lines)
    result(h, t, "consume", "ord-al-2")
    path = "/coupons/templates/%d/coupons" % tid

    def listed(q=""):
        status, _, body = h.admin("GET", path + q, t)
        assert status == 200, (q, status, body)
        return body

    assert [c["id"] for c in listed()["items"]] == ids
    assert [c["id"] for c in listed("?state=locked")["items"]] == [ids[1]]
    assert [c["id"] for c in listed("?state=used")["items"]] == [ids[2]]
    assert [c["id"] for c in listed("?state=unused")["items"]] == [ids[0], ids[3]]
    page = listed("?limit=2")
    assert [c["id"] for c in page["items"]] == ids[:2] and page["next_after"] == ids[1], page
    page = listed("?limit=2&after=%d" % page["next_after"])
    assert [c["id"] for c in page["items"]] == ids[2:], page
    advance(h, t, seconds=DAY)
    assert [c["id"] for c in listed("?state=expired")["items"]] == [ids[0], ids[3]]
    assert listed("?state=unused")["items"] == []
    locked = listed("?state=locked")["items"][0]
    assert locked["state"] == "locked" and locked["order_id"] == "ord-al-1", locked
    counts = get_template(h, t, tid)["counts"]
    assert counts == {"total": 4, "unused": 0, "locked": 1, "used": 1, "expired": 2}, counts
    for q in ("?state=lost", "?limit=1001", "?after=x"):
        expect_error(h.admin("GET", path + q, t), 400, "invalid_query")
    expect_error(h.admin("GET", "/coupons/templates/99999999/coupons", t), 404, "template_not_found")


def teardown():
    if H is not None:
        H.stop()


if __name__ == "__main__":
    run(globals())
