"""
test_referral.py - the referral plugin (分销) end to end, with catalog, orders
(attribution_plugin = "referral") and payments: a two-level chain earns the
configured commission on payment (exact fen), gives it back on refund (also
after settlement and withdrawal: the balance goes negative), settles after the
refund window on the test clock, and a third level earns nothing; per-SKU
overrides; self-purchase rebate on and off; the daily cap in the tenant's
day; the binding modes, binding expiry and cycles; rebinding never moves a
placed order; withdrawals (minimum, never above the settled balance,
approval, rejection); store performance sums its guides; the leaderboard's
order; joining by application and by designation; and config that asks for a
third level or a fee keeps the plugin from loading.

Every tenant runs on the manual clock. Events reach the referral plugin
asynchronously after commit, so every effect of an event is awaited with
wait_until (never a fixed sleep); time-based effects (refund jobs, the settle
job, binding expiry, the next local day) happen when the test advances the clock.
"""
import itertools
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (openapi, Host, manual_tenant, clock, advance, admin_ok, add_sku, tasks,  # noqa: E402
                     user_auth, expect_error, wait_until, run)

DAY = 86400
WINDOW = 7 * DAY            # settle_after_seconds of the main tenant
PAY_SECRET = "referral-test-payment-secret-0123456789"
RATES = {"level1_rate_bp": 1000, "level2_rate_bp": 500}   # 10 % and 5 %
EVENT_WAIT = 20.0


def shop(tid, referral, extra=None):
    plugins = {"catalog": {}, "orders": {"attribution_plugin": "referral", "max_unpaid_orders": 5},
               "payments": {"secret": PAY_SECRET}, "referral": referral}
    plugins.update(extra or {})
    return manual_tenant(tid, plugins)


# evemit (tests/e2e/plugins) re-emits order events: a second delivery of each
T = shop("ref", dict(RATES, settle_after_seconds=WINDOW, min_withdrawal_fen=100), {"evemit": {}})
T_SELF = shop("selfbuy", dict(RATES, self_purchase_rebate=True, daily_cap_fen=1500))
T_NEW = shop("newusers", dict(RATES, binding_mode="new_users", binding_days=1, join_mode="designated"))
T_LAST = shop("lasttouch", dict(RATES, binding_mode="last_touch", binding_seconds=3600,
                                join_mode="application"))
T_STORE = shop("stores", dict(RATES))
BAD = [
    (manual_tenant("bad-level3", {"catalog": {}, "referral": dict(RATES, level3_rate_bp=100)}),
     "level3_rate_bp", "at most two levels"),
    (manual_tenant("bad-fee", {"catalog": {}, "referral": {"join_fee_fen": 9900}}),
     "join_fee_fen", "earning rights cannot be bought"),
    (manual_tenant("bad-spend", {"catalog": {}, "referral": {"min_spend_to_join_fen": 100}}),
     "min_spend_to_join_fen", "earning rights cannot be bought"),
    (manual_tenant("bad-key", {"catalog": {}, "referral": {"colour": "red"}}),
     "colour", "is not a known key"),
    (manual_tenant("bad-rates", {"catalog": {}, "referral": {"level1_rate_bp": 8000, "level2_rate_bp": 3000}}),
     "level2_rate_bp", "cannot exceed 10000"),
]

H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[T, T_SELF, T_NEW, T_LAST, T_STORE] + [b[0] for b in BAD],
                 name="referral").start()
    return H


# ---- helpers

_codes = itertools.count(1)


def new_sku(t, price_fen):
    code = "rsku-%d" % next(_codes)
    add_sku(host(), t, code, 100, price_fen)
    return code


def user_call(t, user, method, path, body=None):
    return host().request(method, "/v1/%s%s" % (t["id"], path), body=body, headers=user_auth(t, user))


def user_ok(t, user, method, path, body=None, want=200):
    status, _, answer = user_call(t, user, method, path, body)
    assert status == want, (method, path, user, status, answer)
    return answer


def join(t, user):
    """user becomes a promoter (join_mode everyone); returns her referral code."""
    d = user_ok(t, user, "POST", "/referral/join", {}, want=201)
    assert d["status"] == "active" and d["kind"] == "promoter", d
    return d["code"]


def code_of(t, user):
    return admin_ok(host(), "GET", "/referral/distributors/%s" % user, t)["code"]


def bind(t, user, referrer):
    b = user_ok(t, user, "POST", "/referral/bind", {"code": code_of(t, referrer)}, want=201)
    assert b["referrer"] == referrer and b["changed"] is True, b
    return b


def create(t, user, lines):
    return user_ok(t, user, "POST", "/orders", {"lines": lines}, want=201)


def pay(t, order):
    status, _, sim = host().admin("POST", "/payments/simulate", t, {"order_id": order["id"]})
    assert status == 200 and sim["result"]["outcome"] == "paid", (status, sim)


def buy(t, user, lines):
    o = create(t, user, lines)
    pay(t, o)
    return o


def refund(t, order_id, amount_fen=None):
    body = {} if amount_fen is None else {"amount_fen": amount_fen}
    status, _, answer = host().admin("POST", "/orders/%d/refund" % order_id, t, body)
    assert status == 202, (status, answer)
    advance(host(), t, seconds=1)   # the refund job is due at once


def earnings(t, user):
    return user_ok(t, user, "GET", "/referral/earnings")


def balance(t, user):
    e = earnings(t, user)
    return {k: e[k] for k in ("frozen_fen", "settled_fen", "withdrawn_fen", "pending_withdrawal_fen",
                              "available_fen")}


def money(frozen=0, settled=0, withdrawn=0, pending=0):
    return {"frozen_fen": frozen, "settled_fen": settled, "withdrawn_fen": withdrawn,
            "pending_withdrawal_fen": pending, "available_fen": settled - withdrawn - pending}


def wait_balance(t, user, want, what=None):
    """Waits until user's balance is want (an event's effect), then asserts it."""
    try:
        wait_until(lambda: balance(t, user) == want, EVENT_WAIT, what=what or "%s's balance" % user)
    except AssertionError:
        raise AssertionError("%s: want %r, have %r" % (user, want, balance(t, user)))


def commission_entries(t, user, order_id):
    items = earnings(t, user)["entries"]["items"]
    return sorted((e["kind"], e["level"], e["amount_fen"], e["state"]) for e in items
                  if e["order_id"] == order_id)


def order_attribution(t, user, order_id):
    return user_ok(t, user, "GET", "/orders/%d" % order_id)["attribution"]


def my_referral_order(t, user, order_id):
    for o in user_ok(t, user, "GET", "/referral/orders")["items"]:
        if o["order_id"] == order_id:
            return o
    return None


def withdraw(t, user, amount_fen):
    return user_call(t, user, "POST", "/referral/withdrawals", {"amount_fen": amount_fen})


def withdraw_ok(t, user, amount_fen):
    status, _, w = withdraw(t, user, amount_fen)
    assert status == 201 and w["status"] == "pending" and w["amount_fen"] == amount_fen, (status, w)
    return w


def decide(t, w, verb):
    return host().admin("POST", "/referral/withdrawals/%d/%s" % (w["id"], verb), t, {})


def seconds_to_next_local_day(now, utc_offset=8 * 3600):
    return DAY - (now + utc_offset) % DAY


# ---- 1. the two-level chain, refunds, settlement, withdrawals

def test_two_level_chain_earns_on_payment_settles_and_loses_it_on_refund():
    h, t = host(), T
    for u in ("z", "a", "b"):
        join(t, "chain-" + u)
    bind(t, "chain-a", "chain-z")
    bind(t, "chain-b", "chain-a")
    bind(t, "chain-c", "chain-b")     # z -> a -> b -> c: c's purchase reaches three levels up
    sku = new_sku(t, 12345)
    o = create(t, "chain-c", [{"sku": sku, "qty": 1}])
    assert o["attribution"] == {"referrer": "chain-b", "referrer2": "chain-a"}, o["attribution"]
    pay(t, o)
    # level 1 = 10 % of 12345 = 1234 (floor), level 2 = 5 % = 617; the third level nothing
    wait_balance(t, "chain-b", money(frozen=1234))
    wait_balance(t, "chain-a", money(frozen=617))
    assert balance(t, "chain-z") == money() and earnings(t, "chain-z")["entries"]["items"] == []
    assert commission_entries(t, "chain-b", o["id"]) == [("commission", 1, 1234, "frozen")]
    assert my_referral_order(t, "chain-a", o["id"])["level"] == 2

    # the team each of them sees
    team = user_ok(t, "chain-a", "GET", "/referral/team")
    assert [m["user"] for m in team["items"]] == ["chain-b"] and team["level2"] == 1, team
    team2 = user_ok(t, "chain-a", "GET", "/referral/team?level=2")
    assert [(m["user"], m["via"]) for m in team2["items"]] == [("chain-c", "chain-b")], team2
    me = user_ok(t, "chain-z", "GET", "/referral/me")
    assert me["team"] == {"level1": 1, "level2": 1} and me["binding"] is None, me

    # a partial refund of 2345: each keeps floor(C * 10000 / 12345)
    refund(t, o["id"], 2345)
    wait_balance(t, "chain-b", money(frozen=999))      # 1234 * 10000 // 12345
    wait_balance(t, "chain-a", money(frozen=499))      # 617 * 10000 // 12345
    assert commission_entries(t, "chain-b", o["id"]) == [("commission", 1, 1234, "frozen"),
                                                         ("reversal", 1, -235, "frozen")]

    # completed: frozen until the refund window closes, settled at the second it does
    user_ok(t, "chain-c", "POST", "/orders/%d/confirm" % o["id"])
    wait_until(lambda: (my_referral_order(t, "chain-b", o["id"]) or {}).get("completed_at") is not None,
               EVENT_WAIT, what="order.completed reached referral")
    advance(h, t, seconds=WINDOW - 1)
    assert balance(t, "chain-b") == money(frozen=999)
    advance(h, t, seconds=1)
    assert balance(t, "chain-b") == money(settled=999)
    assert balance(t, "chain-a") == money(settled=499)
    assert my_referral_order(t, "chain-b", o["id"])["state"] == "settled"

    # withdrawals: a minimum, never above what is settled and not yet held
    expect_error(withdraw(t, "chain-b", 1000), 409, "insufficient_balance")
    expect_error(withdraw(t, "chain-b", 99), 400, "below_minimum")
    expect_error(withdraw(t, "chain-z", 100), 409, "insufficient_balance")
    w1 = withdraw_ok(t, "chain-b", 500)
    assert balance(t, "chain-b") == money(settled=999, pending=500)
    expect_error(withdraw(t, "chain-b", 600), 409, "insufficient_balance")   # pending counts
    w2 = withdraw_ok(t, "chain-b", 499)
    status, _, rejected = decide(t, w2, "reject")
    assert status == 200 and rejected["status"] == "rejected", rejected
    assert balance(t, "chain-b") == money(settled=999, pending=500)
    status, _, approved = decide(t, w1, "approve")
    assert status == 200 and approved["status"] == "approved", approved
    assert balance(t, "chain-b") == money(settled=999, withdrawn=500)
    expect_error(decide(t, w1, "approve"), 409, "not_pending")
    expect_error(decide(t, w2, "approve"), 409, "not_pending")
    w3 = withdraw_ok(t, "chain-b", 499)
    assert decide(t, w3, "approve")[0] == 200
    assert balance(t, "chain-b") == money(settled=999, withdrawn=999)
    pending = admin_ok(h, "GET", "/referral/withdrawals?user=chain-b", t)["items"]
    assert [w["status"] for w in pending] == ["approved", "rejected", "approved"], pending

    # the rest refunded after settlement and withdrawal: a settled negative entry,
    # and the balance goes negative instead of the reversal being capped
    refund(t, o["id"])
    wait_balance(t, "chain-b", money(settled=0, withdrawn=999))
    assert balance(t, "chain-b")["available_fen"] == -999
    wait_balance(t, "chain-a", money(settled=0))
    assert commission_entries(t, "chain-b", o["id"]) == [
        ("commission", 1, 1234, "settled"), ("reversal", 1, -999, "settled"),
        ("reversal", 1, -235, "settled")]
    assert balance(t, "chain-z") == money()

    # a second order refunded in full before completion: back to nothing frozen
    o2 = buy(t, "chain-c", [{"sku": sku, "qty": 1}])
    wait_balance(t, "chain-b", money(frozen=1234, withdrawn=999))
    refund(t, o2["id"])
    wait_balance(t, "chain-b", money(frozen=0, withdrawn=999))
    wait_balance(t, "chain-a", money())
    net = sum(e[2] for e in commission_entries(t, "chain-a", o2["id"]))
    assert net == 0, commission_entries(t, "chain-a", o2["id"])


def test_per_sku_override_and_no_self_rebate_when_off():
    h, t = host(), T
    join(t, "sku-p1")
    join(t, "sku-p2")
    bind(t, "sku-p2", "sku-p1")
    bind(t, "sku-buyer", "sku-p2")
    x, y = new_sku(t, 3333), new_sku(t, 1001)
    r = h.admin("PUT", "/referral/sku-rates/%s" % x, t, {"level1_rate_bp": 2000, "level2_rate_bp": 0})
    assert r[0] == 200, r
    expect_error(h.admin("PUT", "/referral/sku-rates/%s" % x, t,
                         {"level1_rate_bp": 100, "level2_rate_bp": 100, "level3_rate_bp": 50}),
                 400, "invalid_field")
    expect_error(h.admin("PUT", "/referral/sku-rates/%s" % x, t,
                         {"level1_rate_bp": 9000, "level2_rate_bp": 1001}), 400, "invalid_field")
    expect_error(h.admin("PUT", "/referral/sku-rates/%s" % x, t,
                         {"level1_rate_bp": 1.5, "level2_rate_bp": 0}), 400, "invalid_field")
    o = buy(t, "sku-buyer", [{"sku": x, "qty": 1}, {"sku": y, "qty": 2}])
    # x: 20 % of 3333 = 666 for level 1, 0 for level 2; y: 10 % / 5 % of 2002 = 200 / 100
    wait_balance(t, "sku-p2", money(frozen=866))
    wait_balance(t, "sku-p1", money(frozen=100))
    assert h.admin("DELETE", "/referral/sku-rates/%s" % x, t)[0] == 200
    o2 = buy(t, "sku-buyer", [{"sku": x, "qty": 1}])
    wait_balance(t, "sku-p2", money(frozen=866 + 333))
    wait_balance(t, "sku-p1", money(frozen=100 + 166))
    assert o["id"] != o2["id"]

    # self-purchase rebate is off here: a distributor's own order earns her nothing,
    # her referrer earns level 1 on it
    o3 = buy(t, "sku-p2", [{"sku": y, "qty": 10}])
    wait_balance(t, "sku-p1", money(frozen=266 + 1001))
    assert commission_entries(t, "sku-p2", o3["id"]) == []
    assert balance(t, "sku-p2") == money(frozen=1199)


def test_self_purchase_rebate_and_daily_cap_in_the_tenants_day():
    h, t = host(), T_SELF
    for u in ("r", "q", "p"):
        join(t, "self-" + u)
    bind(t, "self-q", "self-r")
    bind(t, "self-p", "self-q")
    bind(t, "self-u", "self-p")
    sku = new_sku(t, 10000)
    # day 1 starts a little after local midnight so all of it is one local day
    advance(h, t, seconds=seconds_to_next_local_day(clock(h, t)["now"]) + 60)
    o1 = buy(t, "self-p", [{"sku": sku, "qty": 1}])
    # her own purchase: level 1 for herself, level 2 for her referrer, nothing for r above
    wait_balance(t, "self-p", money(frozen=1000))
    wait_balance(t, "self-q", money(frozen=500))
    assert balance(t, "self-r") == money()
    assert commission_entries(t, "self-p", o1["id"]) == [("commission", 1, 1000, "frozen")]
    # a customer's order: p's 1000 more passes the cap of 1500 a day: 500 is granted
    o2 = buy(t, "self-u", [{"sku": sku, "qty": 1}])
    wait_balance(t, "self-q", money(frozen=1000))
    wait_balance(t, "self-p", money(frozen=1500))
    entry = [e for e in earnings(t, "self-p")["entries"]["items"] if e["order_id"] == o2["id"]][0]
    assert entry["amount_fen"] == 500 and entry["capped_fen"] == 500, entry
    o3 = buy(t, "self-u", [{"sku": sku, "qty": 1}])
    wait_balance(t, "self-q", money(frozen=1500))
    assert balance(t, "self-p") == money(frozen=1500)
    assert commission_entries(t, "self-p", o3["id"]) == [("commission", 1, 0, "frozen")]
    # the next day in Asia/Shanghai the cap starts again
    advance(h, t, seconds=seconds_to_next_local_day(clock(h, t)["now"]) + 1)
    buy(t, "self-u", [{"sku": sku, "qty": 1}])
    wait_balance(t, "self-q", money(frozen=2000))
    wait_balance(t, "self-p", money(frozen=2500))
    assert balance(t, "self-r") == money()


def deliver_again(t, name, data):
    """Emits an order event once more, as an at-least-once delivery would, and
    waits until every delivery of the tenant is done."""
    status, _, answer = host().post("/v1/%s/evemit/emit" % t["id"], {"name": name, "data": data})
    assert status == 200 and answer["subscribers"] >= 1, (status, answer)
    wait_until(lambda: tasks(host(), t, kind="events")["pending"] == 0, EVENT_WAIT,
               what="every delivery done")


def test_every_order_event_delivered_twice_changes_nothing():
    h, t = host(), T
    join(t, "dup-a")
    join(t, "dup-b")
    bind(t, "dup-b", "dup-a")
    bind(t, "dup-buyer", "dup-b")
    sku = new_sku(t, 10000)
    o = buy(t, "dup-buyer", [{"sku": sku, "qty": 1}])
    wait_balance(t, "dup-b", money(frozen=1000))
    wait_balance(t, "dup-a", money(frozen=500))
    refund(t, o["id"], 3000)
    wait_balance(t, "dup-b", money(frozen=700))
    user_ok(t, "dup-buyer", "POST", "/orders/%d/confirm" % o["id"])
    wait_until(lambda: (my_referral_order(t, "dup-b", o["id"]) or {}).get("completed_at") is not None,
               EVENT_WAIT, what="order.completed reached referral")
    entries = (earnings(t, "dup-b")["entries"], earnings(t, "dup-a")["entries"])
    full = admin_ok(h, "GET", "/orders/%d" % o["id"], t)
    refund_no = full["refunds"][0]["refund_no"]
    deliver_again(t, "order.paid", {"order": full, "late": False})
    deliver_again(t, "order.refunded", {"order": full, "refund_no": refund_no, "amount_fen": 3000,
                                        "full": False})
    deliver_again(t, "order.completed", {"order": full})
    assert balance(t, "dup-b") == money(frozen=700) and balance(t, "dup-a") == money(frozen=350)
    assert (earnings(t, "dup-b")["entries"], earnings(t, "dup-a")["entries"]) == entries
    assert my_referral_order(t, "dup-b", o["id"])["refunded_fen"] == 3000
    advance(h, t, seconds=WINDOW)
    assert balance(t, "dup-b") == money(settled=700) and balance(t, "dup-a") == money(settled=350)
    # the settled order delivered again stays settled, and counted once
    deliver_again(t, "order.completed", {"order": full})
    deliver_again(t, "order.paid", {"order": full, "late": False})
    advance(h, t, seconds=WINDOW)
    assert balance(t, "dup-b") == money(settled=700) and balance(t, "dup-a") == money(settled=350)


def test_concurrent_withdrawals_never_pass_the_settled_balance():
    h, t = host(), T
    join(t, "wd-a")
    bind(t, "wd-buyer", "wd-a")
    sku = new_sku(t, 10000)
    o = buy(t, "wd-buyer", [{"sku": sku, "qty": 1}])
    wait_balance(t, "wd-a", money(frozen=1000))
    user_ok(t, "wd-buyer", "POST", "/orders/%d/confirm" % o["id"])
    wait_until(lambda: (my_referral_order(t, "wd-a", o["id"]) or {}).get("completed_at") is not None,
               EVENT_WAIT, what="order.completed reached referral")
    advance(h, t, seconds=WINDOW)
    assert balance(t, "wd-a") == money(settled=1000)
    # 30 requests of 100 fen at once against 1000 settled: exactly 10 are accepted
    results, go = [], threading.Barrier(30)

    def ask():
        go.wait()
        results.append(withdraw(t, "wd-a", 100)[0])

    threads = [threading.Thread(target=ask) for _ in range(30)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(results) == [201] * 10 + [409] * 20, results
    assert balance(t, "wd-a") == money(settled=1000, pending=1000)
    for w in admin_ok(h, "GET", "/referral/withdrawals?user=wd-a&status=pending", t)["items"]:
        assert decide(t, w, "approve")[0] == 200
    assert balance(t, "wd-a") == money(settled=1000, withdrawn=1000)


# ---- 2. binding

def test_unbound_mode_keeps_the_first_binding_and_refuses_cycles():
    h, t = host(), T
    for u in ("x", "y", "w"):
        join(t, "cyc-" + u)
    bind(t, "cyc-y", "cyc-x")
    bind(t, "cyc-w", "cyc-y")          # x -> y -> w
    # already bound: another code is refused, the same code changes nothing
    body = expect_error(user_call(t, "cyc-w", "POST", "/referral/bind", {"code": code_of(t, "cyc-x")}),
                        409, "already_bound")
    assert body["error"]["details"]["referrer"] == "cyc-y", body
    same = user_ok(t, "cyc-w", "POST", "/referral/bind", {"code": code_of(t, "cyc-y")})
    assert same["referrer"] == "cyc-y" and same["changed"] is False, same
    # x -> w would close x -> y -> w -> x; y -> x the direct one; and nobody binds to herself
    expect_error(user_call(t, "cyc-x", "POST", "/referral/bind", {"code": code_of(t, "cyc-w")}),
                 409, "binding_cycle")
    expect_error(user_call(t, "cyc-x", "POST", "/referral/bind", {"code": code_of(t, "cyc-y")}),
                 409, "binding_cycle")
    expect_error(user_call(t, "cyc-x", "POST", "/referral/bind", {"code": code_of(t, "cyc-x")}),
                 409, "binding_cycle")
    assert user_ok(t, "cyc-x", "GET", "/referral/me")["binding"] is None
    # bad input changes nothing
    expect_error(user_call(t, "cyc-x", "POST", "/referral/bind", {"code": "NOSUCHCODE"}), 404, "code_not_found")
    expect_error(user_call(t, "cyc-x", "POST", "/referral/bind", {"code": 12}), 400, "invalid_field")
    expect_error(user_call(t, "cyc-x", "POST", "/referral/bind", {"code": "A", "level": 3}),
                 400, "invalid_field")
    expect_error(user_call(t, "cyc-x", "POST", "/referral/bind", [1, 2]), 400, "invalid_body")
    assert admin_ok(h, "GET", "/referral/settings", t)["max_levels"] == 2


def test_new_users_mode_and_binding_expiry_with_designated_distributors():
    h, t = host(), T_NEW
    expect_error(user_call(t, "new-ref", "POST", "/referral/join", {}), 403, "join_by_designation_only")
    status, _, d = h.admin("POST", "/referral/distributors", t, {"user": "new-ref"})
    assert status == 201 and d["status"] == "active" and d["kind"] == "promoter", d
    sku = new_sku(t, 5000)
    buy(t, "new-old", [{"sku": sku, "qty": 1}])
    expect_error(user_call(t, "new-old", "POST", "/referral/bind", {"code": d["code"]}), 409, "not_a_new_user")
    b = bind(t, "new-fresh", "new-ref")
    assert b["expires_at"] == b["bound_at"] + DAY, b
    o = buy(t, "new-fresh", [{"sku": sku, "qty": 1}])
    assert o["attribution"] == {"referrer": "new-ref"}, o
    wait_balance(t, "new-ref", money(frozen=500))
    # a day later the binding is over: new orders are nobody's, and she is no longer new
    advance(h, t, seconds=DAY)
    assert user_ok(t, "new-fresh", "GET", "/referral/me")["binding"] is None
    o2 = create(t, "new-fresh", [{"sku": sku, "qty": 1}])
    assert o2["attribution"] == {}, o2
    expect_error(user_call(t, "new-fresh", "POST", "/referral/bind", {"code": d["code"]}),
                 409, "not_a_new_user")
    # a user who never paid may be bound again after her binding ran out
    bind(t, "new-later", "new-ref")
    advance(h, t, seconds=DAY + 1)
    assert user_ok(t, "new-later", "GET", "/referral/me")["binding"] is None
    bind(t, "new-later", "new-ref")


def test_last_touch_rebinds_but_never_moves_a_placed_order():
    h, t = host(), T_LAST
    for u in ("one", "two", "three"):
        d = user_ok(t, "lt-" + u, "POST", "/referral/join", {}, want=202)
        assert d["status"] == "pending", d
    # a pending applicant's code binds nobody
    expect_error(user_call(t, "lt-buyer", "POST", "/referral/bind", {"code": code_of(t, "lt-one")}),
                 404, "code_not_found")
    pending = admin_ok(h, "GET", "/referral/distributors?status=pending", t)["items"]
    assert sorted(p["user"] for p in pending) == ["lt-one", "lt-three", "lt-two"], pending
    assert admin_ok(h, "POST", "/referral/distributors/lt-one/approve", t)["status"] == "active"
    assert admin_ok(h, "POST", "/referral/distributors/lt-two/approve", t)["status"] == "active"
    assert admin_ok(h, "POST", "/referral/distributors/lt-three/reject", t)["status"] == "rejected"
    expect_error(h.admin("POST", "/referral/distributors/lt-three/reject", t), 409, "not_pending")
    assert user_ok(t, "lt-three", "POST", "/referral/join", {}, want=202)["status"] == "pending"

    bind(t, "lt-two", "lt-one")
    # last touch still refuses a cycle
    expect_error(user_call(t, "lt-one", "POST", "/referral/bind", {"code": code_of(t, "lt-two")}),
                 409, "binding_cycle")
    bind(t, "lt-buyer", "lt-one")
    sku = new_sku(t, 8000)
    o1 = create(t, "lt-buyer", [{"sku": sku, "qty": 1}])
    assert o1["attribution"] == {"referrer": "lt-one"}, o1
    b = bind(t, "lt-buyer", "lt-two")          # the last touch wins for what comes next
    assert b["expires_at"] == b["bound_at"] + 3600, b
    o2 = create(t, "lt-buyer", [{"sku": sku, "qty": 1}])
    assert o2["attribution"] == {"referrer": "lt-two", "referrer2": "lt-one"}, o2
    assert order_attribution(t, "lt-buyer", o1["id"]) == {"referrer": "lt-one"}
    pay(t, o1)    # paid after the rebinding: still lt-one's order
    wait_balance(t, "lt-one", money(frozen=800))
    assert balance(t, "lt-two") == money()
    pay(t, o2)
    wait_balance(t, "lt-one", money(frozen=800 + 400))
    wait_balance(t, "lt-two", money(frozen=800))
    advance(h, t, seconds=3600)
    o3 = create(t, "lt-buyer", [{"sku": sku, "qty": 1}])
    assert o3["attribution"] == {}, o3


# ---- 3. stores, guides, the leaderboard

def test_store_performance_sums_its_guides_and_the_leaderboard_order():
    h, t = host(), T_STORE
    for sid, name in (("s1", "Store One"), ("s2", "Store Two")):
        status, _, s = h.admin("POST", "/referral/stores", t, {"id": sid, "name": name})
        assert status == 201 and s["status"] == "open", s
    expect_error(h.admin("POST", "/referral/stores", t, {"id": "s1", "name": "again"}), 409, "store_exists")
    expect_error(h.admin("POST", "/referral/distributors", t, {"user": "st-g9", "kind": "guide"}),
                 400, "invalid_field")
    expect_error(h.admin("POST", "/referral/distributors", t, {"user": "st-g9", "kind": "guide",
                                                              "store": "nowhere"}), 404, "store_not_found")
    for g, s in (("st-guide-1", "s1"), ("st-guide-2", "s1"), ("st-guide-3", "s2")):
        status, _, d = h.admin("POST", "/referral/distributors", t, {"user": g, "kind": "guide", "store": s})
        assert status == 201 and d["store"] == s, d
    join(t, "st-promoter")
    # bindings, in an order that differs from the tie-break order (user id)
    bind(t, "st-u4", "st-guide-3")
    bind(t, "st-u3", "st-promoter")
    bind(t, "st-u2", "st-guide-2")
    bind(t, "st-promoter", "st-guide-1")
    bind(t, "st-u1", "st-guide-1")
    sku = new_sku(t, 1000)
    start = clock(h, t)["now"]

    def order(user, qty):
        return buy(t, user, [{"sku": sku, "qty": qty}])

    o_u1 = order("st-u1", 10)
    o_u2a = order("st-u2", 20)
    o_u2b = order("st-u2", 5)
    o_u3 = order("st-u3", 3)     # promoter -> guide-1: the nearest guide is level 2
    order("st-u4", 7)
    assert o_u1["attribution"] == {"referrer": "st-guide-1", "store": "s1", "guide": "st-guide-1"}
    assert o_u3["attribution"] == {"referrer": "st-promoter", "referrer2": "st-guide-1",
                                   "store": "s1", "guide": "st-guide-1"}, o_u3
    wait_balance(t, "st-guide-3", money(frozen=700))
    wait_balance(t, "st-guide-2", money(frozen=2500))
    wait_balance(t, "st-guide-1", money(frozen=1000 + 150))
    wait_balance(t, "st-promoter", money(frozen=300))

    period = "?from=%d&to=%d" % (start, start + 1)
    s1 = admin_ok(h, "GET", "/referral/stores/s1/performance" + period, t)
    assert (s1["orders"], s1["sales_fen"], s1["commission_fen"]) == (4, 38000, 3950), s1
    assert [(g["guide"], g["orders"], g["sales_fen"], g["commission_fen"]) for g in s1["guides"]] == [
        ("st-guide-2", 2, 25000, 2500), ("st-guide-1", 2, 13000, 1450)], s1
    for k in ("orders", "sales_fen", "commission_fen"):
        assert s1[k] == sum(g[k] for g in s1["guides"]), (k, s1)
    s2 = admin_ok(h, "GET", "/referral/stores/s2/performance" + period, t)
    assert (s2["orders"], s2["sales_fen"], s2["commission_fen"]) == (1, 7000, 700), s2
    every = admin_ok(h, "GET", "/referral/performance" + period, t)["items"]
    assert [(s["store"], s["sales_fen"]) for s in every] == [("s1", 38000), ("s2", 7000)], every
    # outside the period: nothing
    later = admin_ok(h, "GET", "/referral/stores/s1/performance?from=%d&to=%d" % (start + 1, start + 99), t)
    assert (later["orders"], later["sales_fen"], later["commission_fen"]) == (0, 0, 0), later
    expect_error(h.admin("GET", "/referral/stores/s1/performance?from=10&to=5", t), 400, "invalid_query")
    expect_error(h.admin("GET", "/referral/stores/nope/performance", t), 404, "store_not_found")

    board = admin_ok(h, "GET", "/referral/leaderboard" + period + "&by=sales", t)["items"]
    assert [(r["rank"], r["user"], r["value"]) for r in board] == [
        (1, "st-guide-2", 25000), (2, "st-guide-1", 10000), (3, "st-guide-3", 7000),
        (4, "st-promoter", 3000)], board
    members = admin_ok(h, "GET", "/referral/leaderboard" + period + "&by=new_members", t)["items"]
    assert [(r["user"], r["value"]) for r in members] == [
        ("st-guide-1", 2), ("st-guide-2", 1), ("st-guide-3", 1), ("st-promoter", 1)], members
    expect_error(h.admin("GET", "/referral/leaderboard?by=level3", t), 400, "invalid_field")

    # a refunded order leaves the store's and its guide's figures
    refund(t, o_u2b["id"])
    wait_balance(t, "st-guide-2", money(frozen=2000))
    s1 = admin_ok(h, "GET", "/referral/stores/s1/performance" + period, t)
    assert (s1["orders"], s1["sales_fen"], s1["commission_fen"]) == (3, 33000, 3450), s1
    assert s1["guides"][0] == {"guide": "st-guide-2", "orders": 1, "sales_fen": 20000,
                               "commission_fen": 2000}, s1
    board = admin_ok(h, "GET", "/referral/leaderboard" + period, t)["items"]
    assert [(r["user"], r["value"]) for r in board][:2] == [("st-guide-2", 20000), ("st-guide-1", 10000)]
    assert o_u2a["attribution"]["guide"] == "st-guide-2"

    # a closed store's guide can still be disabled; a disabled guide earns nothing,
    # is nobody's guide, and her code binds nobody
    assert admin_ok(h, "PATCH", "/referral/stores/s2", t, {"status": "closed"})["status"] == "closed"
    d = admin_ok(h, "PATCH", "/referral/distributors/st-guide-3", t, {"status": "disabled"})
    assert d["status"] == "disabled" and d["store"] == "s2", d
    o = buy(t, "st-u4", [{"sku": sku, "qty": 1}])
    assert o["attribution"] == {"referrer": "st-guide-3"}, o
    wait_until(lambda: tasks(h, t, kind="events")["pending"] == 0, EVENT_WAIT, what="deliveries done")
    assert balance(t, "st-guide-3") == money(frozen=700)
    expect_error(user_call(t, "st-u5", "POST", "/referral/bind", {"code": d["code"]}), 404, "code_not_found")
    expect_error(h.admin("PATCH", "/referral/distributors/st-guide-3", t, {"store": "s2"}), 409, "store_closed")


# ---- 4. invariants in the config

def test_config_asking_for_a_third_level_or_a_fee_is_refused():
    h = host()
    for t, key, words in BAD:
        status, _, body = h.admin("GET", "/plugins", t)
        assert status == 200, body
        ref = [p for p in body["plugins"] if p["name"] == "referral"][0]
        assert ref["status"] == "failed", ref
        assert key in ref["last_error"] and words in ref["last_error"], ref
        expect_error(h.get("/v1/%s/referral/me" % t["id"], headers=user_auth(t, "someone")),
                     404, "route_not_found")
    h.assert_serving("ref")
    doc = openapi(h, T)
    ours = sorted(p for p in doc["paths"] if "/referral/" in p)
    assert len(ours) >= 15 and all(
        m in ("get", "post", "put", "patch", "delete") and op.get("summary")
        for p in ours for m, op in doc["paths"][p].items()), ours


def teardown():
    if H is not None and H.running():
        H.stop()


if __name__ == "__main__":
    run(globals())
