"""
test_analytics.py - data ops on the real host: intake, attribution, rollups, reports.

One brand on the test clock (Asia/Shanghai) lives two local days around a
midnight: visitors arrive from a group chat, a QR code, Moments and search;
one is anonymous until she logs in on the same device; a crawler comes by;
orders are made, paid and partly refunded; an event comes in late. Every
report is checked against figures this file computes on its own from the
requests it made (the `Ledger`), never read back from the host.

- intake: a batch is all or nothing with field-level errors; a repeated
  batch is skipped as duplicates; an event more than 48 h old is refused
- attribution: the order records the last touch at its creation (frozen: a
  later session does not change it); members keep first and last touch
- anonymous -> member: the device's events before login count as the member
- local days: 23:58 and 00:05 Shanghai time are one UTC day but two local days
- late events (2 h late) are folded into their own day by the next rollup;
  recomputing a day gives the same numbers
- money: GMV = paid minus refunded, by pay time, equal to the orders' own
"""
import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Host, manual_tenant, add_sku, advance, admin_ok, run  # noqa: E402

PAY_SECRET = "analytics-e2e-payment-secret-0123456789"
T = manual_tenant("shop", {"catalog": {}, "orders": {"attribution_plugin": "referral"},
                           "payments": {"secret": PAY_SECRET}, "flash_sale": {}, "referral": {},
                           "spinner": {},
                           "analytics": {"attribution_window_days": 7}})
TZ = 8 * 3600   # Asia/Shanghai, no daylight saving
DAY = 86400
PRICE = {"tea-001": 12800, "tea-002": 5600}

T_KEEP = manual_tenant("keep", {"catalog": {}, "orders": {}, "analytics": {}})
T_KEEP["track_retention_days"] = 3
H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[T, T_KEEP], name="analytics").start()
        for sku, price in PRICE.items():
            add_sku(H, T, sku, 100, price)
        now = admin_ok(H, "GET", "/clock", T)["now"]
        status, _, sale = H.admin("POST", "/flash-sales", T, {
            "sku": "tea-002", "price_fen": 990, "quantity": 10, "per_user_limit": 1,
            "starts_at": now, "ends_at": now + 10 * DAY})
        assert status == 201, sale
        # a store with a shopping guide: the referral plugin attributes her customers' orders
        status, _, body = H.admin("POST", "/referral/stores", T, {"id": "hz-east", "name": "East store"})
        assert status == 201, body
        status, _, body = H.admin("POST", "/referral/distributors", T,
                                  {"user": "guide-li", "kind": "guide", "store": "hz-east"})
        assert status == 201, body
    return H


def local_midnight(epoch):
    return (epoch + TZ) // DAY * DAY - TZ


def date_of(epoch):
    return time.strftime("%Y-%m-%d", time.gmtime(epoch + TZ))


# the two local days: the day after tomorrow and the one after it
START = local_midnight(int(time.time())) + 2 * DAY
DAY1, DAY2 = date_of(START), date_of(START + DAY)


def at(day, hh, mm):
    """Epoch seconds of local day 1 or 2 at hh:mm."""
    return START + (day - 1) * DAY + hh * 3600 + mm * 60


class Ledger:
    """What the test did, from which it computes every expected figure."""

    def __init__(self):
        self.hits = []       # (local date, visitor, kind, source)
        self.products = []   # (local date, visitor, kind, product): product views and carts
        self.orders = {}     # id -> {member, source, created, paid, net}
        self.touch = {}      # member -> [(epoch, source)]

    def hit(self, when, visitor, kind, source, product=None):
        self.hits.append((date_of(when), visitor, kind, source))
        if product:
            self.products.append((date_of(when), visitor, kind, product))

    def product_report(self):
        out = {}

        def row(p):
            return out.setdefault(p, {"views": 0, "viewers": set(), "carts": set(), "buyers": set(),
                                      "units": 0, "gmv_fen": 0})
        for _, v, k, p in self.products:
            if k == "product_view":
                row(p)["views"] += 1
                row(p)["viewers"].add(v)
            else:
                row(p)["carts"].add(v)
        for o in self.orders.values():
            if not o["paid"]:
                continue
            for sku, net in o["lines"]:
                row(sku)["gmv_fen"] += net
                if o["net"] > 0:
                    row(sku)["buyers"].add(o["member"])
                    row(sku)["units"] += 1
        return {p: {k: len(v) if isinstance(v, set) else v for k, v in r.items()} for p, r in out.items()}

    def days(self, d1, d2):
        return [d for d in (DAY1, DAY2) if d1 <= d <= d2]

    def overview(self, day):
        uv = {v for d, v, _, _ in self.hits if d == day}
        paid = [o for o in self.orders.values() if o["paid"] and date_of(o["paid"]) == day]
        gmv = sum(o["net"] for o in paid)
        counted = [o for o in paid if o["net"] > 0]          # refunded in full: no order
        payers = {o["member"] for o in counted}
        return {"uv": len(uv), "payers": len(payers), "orders": len(counted), "gmv_fen": gmv,
                "aov_fen": gmv // len(counted) if counted else None,
                "per_payer_fen": gmv // len(payers) if payers else None}

    def funnel(self, steps, source=None, days=None):
        days = days or (DAY1, DAY2)
        done = {}
        for d, v, k, s in self.hits:
            if d in days and (source is None or s == source):
                done.setdefault(v, set()).add(k)
        for o in self.orders.values():
            if source is not None and o["source"] != source:
                continue
            if o["member"] in done and date_of(o["created"]) in days:
                done[o["member"]].add("order")
            if o["member"] in done and o["paid"] and date_of(o["paid"]) in days:
                done[o["member"]].add("pay")
        return [sum(1 for ks in done.values() if all(s in ks for s in steps[:i + 1]))
                for i in range(len(steps))]

    def campaigns(self):
        out = {}
        for o in self.orders.values():
            r = out.setdefault(o["campaign"], {"participants": set(), "orders": 0, "gmv_fen": 0,
                                               "campaign_fen": 0, "coupon_fen": 0})
            r["participants"].add(o["member"])
            if o["paid"]:
                r["orders"] += o["net"] > 0
                r["gmv_fen"] += o["net"]
                r["campaign_fen"] += o["campaign_fen"]
        for r in out.values():
            r["new_members"] = len(r["participants"] & set(self.touch))   # every touch is in the period
            r["participants"] = len(r["participants"])
        return out

    def sources(self):
        out = {}

        def row(k):
            return out.setdefault(k, {"visitors": set(), "new_members": 0, "orders": 0, "gmv_fen": 0})
        for d, v, _, s in self.hits:
            row(s)["visitors"].add(v)
        for m, touches in self.touch.items():
            row(min(touches)[1])["new_members"] += 1
        for o in self.orders.values():
            if o["paid"]:
                row(o["source"])["orders"] += o["net"] > 0
                row(o["source"])["gmv_fen"] += o["net"]
        return {k: dict(r, visitors=len(r["visitors"])) for k, r in out.items()}


L = Ledger()


def track(events, device=None, user=None, want=200):
    headers = host().bearer(T["id"], user) if user else {}
    body = {"events": events}
    if device:
        body["device"] = device
    status, _, answer = host().post("/v1/shop/track", body, headers=headers)
    assert status == want, (status, answer)
    return answer


def ev(eid, kind, when, session, **kw):
    return dict(kw, id=eid, kind=kind, at=when * 1000, session=session)


def order(user, skus, source, pay=True):
    skus = [skus] if isinstance(skus, str) else skus
    status, _, o = host().post("/v1/shop/orders", {"lines": [{"sku": k, "qty": 1} for k in skus]},
                               headers=host().bearer(T["id"], user))
    assert status == 201, (status, o)
    return book(o, user, source, pay, [(k, PRICE[k]) for k in skus])


def book(o, user, source, pay, lines, campaign="none", campaign_fen=0):
    rec = {"member": user, "source": source, "created": o["created_at"], "paid": None, "net": 0,
           "lines": lines, "campaign": campaign, "campaign_fen": campaign_fen}
    L.orders[o["id"]] = rec
    if pay:
        status, _, sim = host().admin("POST", "/payments/simulate", T, {"order_id": o["id"]})
        assert status == 200 and sim["result"]["outcome"] == "paid", (status, sim)
        rec["paid"] = clock_now()
        rec["net"] = o["total_fen"]
    return o


def clock_now():
    return admin_ok(host(), "GET", "/clock", T)["now"]


def rollup(**body):
    return admin_ok(host(), "POST", "/analytics/rollup", T, body)


def report(name, **q):
    qs = "&".join("%s=%s" % kv for kv in q.items())
    return admin_ok(host(), "GET", "/analytics/%s?%s" % (name, qs), T)


# ---- day 1, late evening

def test_intake_refuses_a_bad_batch_whole_with_field_errors():
    advance(host(), T, to=at(1, 23, 40))
    status, _, answer = host().post("/v1/shop/track", {"device": "dA", "events": [
        ev("ok-1", "enter", at(1, 23, 40), "sA", scene=1008),
        ev("bad-2", "enter", at(1, 23, 40), "sA"),                      # no scene
        ev("bad-3", "product_view", at(1, 23, 40), "sA"),               # no product
        ev("bad-4", "teleport", at(1, 23, 40), "sA"),                   # unknown kind
        ev("bad-5", "page_view", at(1, 23, 40) - 49 * 3600, "sA"),      # > 48 h old
    ]})
    assert status == 400 and answer["error"]["code"] == "invalid_batch", answer
    fields = [e["field"] for e in answer["error"]["details"]["errors"]]
    assert fields == ["events[2].scene", "events[3].product", "events[4].kind", "events[5].at"], fields
    status, _, answer = host().post("/v1/shop/track", {"events": [ev("x", "enter", at(1, 23, 40), "s", scene=1001)]})
    assert status == 400 and answer["error"]["details"]["errors"][0]["field"] == "device", answer
    status, _, answer = host().post("/v1/shop/track", {"device": "d", "events": [{}] * 101})
    assert status == 400 and answer["error"]["details"]["errors"][0]["field"] == "events", answer
    for body, ctype, code in ((b'{"device":"d","events":[', "application/json", "invalid_json"),
                              (b'{"device":"d\xff","events":[]}', "application/json", "invalid_json"),
                              (b'{"events":[]}', "text/plain", "unsupported_media_type")):
        status, _, answer = host().post("/v1/shop/track", body, headers={"Content-Type": ctype})
        assert answer["error"]["code"] == code, (body, answer)
    status, _, answer = host().post("/v1/shop/track", {"events": [ev("x", "enter", at(1, 23, 40), "s", scene=1001)]},
                                    headers={"X-Device-Id": "bad device"})
    assert status == 400 and answer["error"]["details"]["errors"][0]["field"] == "X-Device-Id", answer


def test_an_anonymous_visit_then_login_folds_into_the_member():
    # an earlier launch on the same device, from Moments, never logged in
    advance(host(), T, to=at(1, 23, 45))
    track([ev("a0", "enter", at(1, 23, 45), "sA0", scene=1154), ev("a01", "page_view", at(1, 23, 45), "sA0")],
          device="dA")
    advance(host(), T, to=at(1, 23, 50))
    first = [ev("a1", "enter", at(1, 23, 50), "sA", scene=1008,
                query={"store": "hz-west", "guide": "g1", "ref": "R7", "utm": "x"}),
             ev("a2", "product_view", at(1, 23, 51), "sA", product="tea-001"),
             ev("a3", "add_to_cart", at(1, 23, 52), "sA", product="tea-001")]
    # the ok-1 id of the refused batch was never kept: it is new here
    assert track(first + [ev("ok-1", "page_view", at(1, 23, 52), "sA", page="/home")], device="dA") == \
        {"accepted": 4, "duplicates": 0}
    assert track(first, device="dA") == {"accepted": 0, "duplicates": 3}     # a retried batch
    assert track([ev("a4", "page_view", at(1, 23, 53), "sA", page="/cart")] * 2, device="dA", user="m1") == \
        {"accepted": 1, "duplicates": 1}                                     # twice in one batch
    # a plugin's own events: those its manifest declares (track = {"spin", "win"})
    status, _, bad = host().post("/v1/shop/track", {"device": "dA", "events": [
        ev("sp0", "spinner.jackpot", at(1, 23, 53), "sA"), ev("sp1", "catalog.spin", at(1, 23, 53), "sA")]})
    assert [e["field"] for e in bad["error"]["details"]["errors"]] == ["events[1].kind", "events[2].kind"], bad
    assert track([ev("sp2", "spinner.spin", at(1, 23, 53), "sA")], device="dA", user="m1")["accepted"] == 1
    L.hit(at(1, 23, 53), "m1", "spinner.spin", "group_chat")
    for k in ("enter", "product_view", "add_to_cart", "page_view"):
        L.hit(at(1, 23, 50), "m1", k, "group_chat", "tea-001" if k in ("product_view", "add_to_cart") else None)
    # the login folds both of the device's sessions into m1: her first touch is Moments
    L.hit(at(1, 23, 45), "m1", "enter", "moments")
    L.hit(at(1, 23, 45), "m1", "page_view", "moments")
    L.touch["m1"] = [(at(1, 23, 45), "moments"), (at(1, 23, 50), "group_chat")]
    o = order("m1", "tea-001", "group_chat")
    src = o["attribution"]["source"]
    assert src["source"] == "group_chat" and src["scene"] == 1008 and src["store"] == "hz-west" \
        and src["guide"] == "g1" and src["referrer"] == "R7", o["attribution"]


def test_other_visitors_of_day_one_and_a_crawler():
    advance(host(), T, to=at(1, 23, 58))
    track([ev("b1", "enter", at(1, 23, 58), "sB", scene=1047),
           ev("b2", "product_view", at(1, 23, 58), "sB", product="tea-002")], device="dB")
    L.hit(at(1, 23, 58), "device:dB", "enter", "qr_code")
    L.hit(at(1, 23, 58), "device:dB", "product_view", "qr_code", "tea-002")
    track([ev("c1", "enter", at(1, 23, 58), "sC", scene=1129),
           ev("c2", "product_view", at(1, 23, 58), "sC", product="tea-002")], device="dC")  # not a visitor


# ---- day 2, just after midnight

def test_day_two_a_new_member_from_moments_and_a_returning_one_from_search():
    advance(host(), T, to=at(2, 0, 5))
    # m2 follows guide Li's code: referral names store hz-east and guide-li on her orders
    code = admin_ok(host(), "GET", "/referral/distributors/guide-li", T)["code"]
    status, _, b = host().post("/v1/shop/referral/bind", {"code": code}, headers=host().bearer(T["id"], "m2"))
    assert status == 201, b
    track([ev("d1", "enter", at(2, 0, 5), "sD", scene=1155, query={"content": "post-9"}),
           ev("d2", "product_view", at(2, 0, 5), "sD", product="tea-002"),
           ev("d3", "add_to_cart", at(2, 0, 5), "sD", product="tea-002")], device="dD", user="m2")
    for k in ("enter", "product_view", "add_to_cart"):
        L.hit(at(2, 0, 5), "m2", k, "moments", "tea-002" if k != "enter" else None)
    L.touch["m2"] = [(at(2, 0, 5), "moments")]
    o2 = order("m2", ["tea-002", "tea-001"], "moments")
    track([ev("e1", "enter", at(2, 0, 6), "sE", scene=1053),
           ev("e2", "search", at(2, 0, 6), "sE", keyword="white tea")], device="dA", user="m1")
    L.hit(at(2, 0, 6), "m1", "enter", "search")
    L.hit(at(2, 0, 6), "m1", "search", "search")
    L.touch["m1"].append((at(2, 0, 6), "search"))
    order("m1", "tea-001", "search")
    order("m1", "tea-002", "search", pay=False)          # created, never paid: no money
    # a flash sale: the sampler at 990 instead of 5600
    status, _, fo = host().post("/v1/shop/flash-sales/1/buy", None, headers=host().bearer(T["id"], "m2"))
    assert status == 201, fo
    book(fo, "m2", "moments", True, [("tea-002", 990)], "flash_sale:1", PRICE["tea-002"] - 990)
    order("m3", "tea-001", "direct")                     # never tracked: no source, one purchase
    o4 = order("m4", "tea-002", "direct")                # refunded in full: no money, no order
    status, _, r = host().admin("POST", "/orders/%d/refund" % o4["id"], T, {})
    assert status == 202, r
    # a partial refund of m2's order: GMV is paid minus refunded, by pay time
    status, _, r = host().admin("POST", "/orders/%d/refund" % o2["id"], T, {"amount_fen": 1000})
    assert status == 202, r
    advance(host(), T, seconds=1)
    L.orders[o4["id"]]["net"] = 0
    L.orders[o4["id"]]["lines"] = [("tea-002", 0)]
    L.orders[o2["id"]]["net"] -= 1000
    # the refund split over the lines in proportion to what each paid, by largest remainder
    lines = L.orders[o2["id"]]["lines"]
    total = sum(p for _, p in lines)
    shares = [1000 * p // total for _, p in lines]
    rests = sorted(range(len(lines)), key=lambda i: (-(1000 * lines[i][1] % total), i))
    for i in rests[:1000 - sum(shares)]:
        shares[i] += 1
    L.orders[o2["id"]]["lines"] = [(k, p - s) for (k, p), s in zip(lines, shares)]
    assert admin_ok(host(), "GET", "/orders/%d" % o2["id"], T)["refunded_fen"] == 1000


def test_the_order_keeps_the_source_it_was_created_with():
    first = min(L.orders)
    o = admin_ok(host(), "GET", "/orders/%d" % first, T)
    assert o["attribution"]["source"]["source"] == "group_chat", o    # m1 came back by search since


def test_reports_before_the_late_event():
    rollup()
    got = report("overview", **{"from": DAY1, "to": DAY2})
    b1 = got["buckets"][0]
    assert (b1["label"], b1["uv"]) == (DAY1, L.overview(DAY1)["uv"]) == (DAY1, 2), got


def test_a_late_event_is_folded_into_its_own_day():
    advance(host(), T, to=at(2, 1, 30))
    track([ev("f1", "enter", at(1, 23, 30), "sF", scene=1008),
           ev("f2", "product_view", at(1, 23, 31), "sF", product="tea-001")], device="dF")   # 2 h late
    L.hit(at(1, 23, 30), "device:dF", "enter", "group_chat")
    L.hit(at(1, 23, 31), "device:dF", "product_view", "group_chat", "tea-001")
    assert rollup()["hours"] >= 1


def test_overview_by_local_day_matches_the_ledger():
    got = report("overview", **{"from": DAY1, "to": DAY2})
    assert [b["label"] for b in got["buckets"]] == [DAY1, DAY2]
    for b, day in zip(got["buckets"], (DAY1, DAY2)):
        want = L.overview(day)
        for k, v in want.items():
            assert b.get(k) == v, (day, k, b, want)
        assert abs(b["conversion"] - want["payers"] / want["uv"]) < 1e-9, b
    total = got["total"]
    assert total["gmv_fen"] == sum(o["net"] for o in L.orders.values())
    assert total["uv"] == len({v for _, v, _, _ in L.hits}), total


def test_gmv_reconciles_with_the_orders_own_totals():
    page = admin_ok(host(), "GET", "/orders?limit=100", T)["items"]
    net = sum(o["paid_fen"] - o["refunded_fen"] for o in page if o.get("paid_at"))
    assert report("overview", **{"from": DAY1, "to": DAY2})["total"]["gmv_fen"] == net


def test_overview_change_against_the_previous_period():
    got = report("overview", **{"from": DAY2, "to": DAY2})
    prev, cur = L.overview(DAY1), L.overview(DAY2)
    assert got["previous"]["uv"] == prev["uv"] and got["total"]["uv"] == cur["uv"], got
    assert abs(got["change"]["uv"] - (cur["uv"] - prev["uv"]) / prev["uv"]) < 1e-9, got
    assert abs(got["change"]["gmv_fen"] - (cur["gmv_fen"] - prev["gmv_fen"]) / prev["gmv_fen"]) < 1e-9
    conv = lambda f: f["payers"] / f["uv"]  # noqa: E731
    assert abs(got["change"]["conversion"] - (conv(cur) - conv(prev)) / conv(prev)) < 1e-9


def test_hourly_buckets_split_at_local_midnight():
    got = report("overview", **{"from": DAY1, "to": DAY2, "granularity": "hour"})
    assert len(got["buckets"]) == 48
    assert got["buckets"][23]["label"] == DAY1 + " 23:00" and got["buckets"][24]["label"] == DAY2 + " 00:00"
    assert got["buckets"][23]["uv"] == L.overview(DAY1)["uv"] and got["buckets"][24]["uv"] == 2, got


def test_weeks_start_on_monday_and_months_on_the_first():
    import datetime
    for gran in ("week", "month"):
        got = report("overview", **{"from": DAY1, "to": DAY2, "granularity": gran})
        want = {}
        for day in (DAY1, DAY2):
            d = datetime.date.fromisoformat(day)
            start = d - datetime.timedelta(days=d.weekday()) if gran == "week" else d.replace(day=1)
            want.setdefault(start.isoformat(), []).append(day)
        assert [b["label"] for b in got["buckets"]] == sorted(want), (gran, got["buckets"])
        for b in got["buckets"]:
            days = want[b["label"]]
            uv = {v for d, v, _, _ in L.hits if d in days}
            gmv = sum(o["net"] for o in L.orders.values() if o["paid"] and date_of(o["paid"]) in days)
            assert (b["uv"], b["gmv_fen"]) == (len(uv), gmv), (gran, b)


def test_funnel_overall_and_by_source():
    steps = ["enter", "product_view", "add_to_cart", "order", "pay"]
    got = report("funnel", **{"from": DAY1, "to": DAY2})
    assert [s["visitors"] for s in got["steps"]] == L.funnel(steps), (got["steps"], L.funnel(steps))
    by = {r["source"]: [s["visitors"] for s in r["steps"]] for r in got["by_source"]}
    for source in ("group_chat", "qr_code", "moments", "search"):
        assert by[source] == L.funnel(steps, source), (source, by[source], L.funnel(steps, source))
    assert "crawler" not in by
    two = report("funnel", **{"from": DAY1, "to": DAY2, "steps": "product_view,pay"})
    assert [s["visitors"] for s in two["steps"]] == L.funnel(["product_view", "pay"])
    spin = report("funnel", **{"from": DAY1, "to": DAY2, "steps": "enter,spinner.spin,order"})
    assert [s["visitors"] for s in spin["steps"]] == L.funnel(["enter", "spinner.spin", "order"]) == [4, 1, 1], spin
    status, _, bad = host().admin("GET", "/analytics/funnel?steps=enter", T)
    assert status == 400 and bad["error"]["details"]["field"] == "steps", bad


def test_funnel_counts_steps_on_either_side_of_local_midnight():
    """m1 viewed tea at 23:51 on day 1 and searched at 00:06 on day 2 (Shanghai time): a funnel
    product_view -> search counts her over the two days, and in neither day alone; every
    funnel over one day, the other, both, and a period starting the day before, overall and
    by source, matches the ledger."""
    before = date_of(START - DAY)
    periods = {(DAY1, DAY1): (DAY1,), (DAY2, DAY2): (DAY2,), (DAY1, DAY2): (DAY1, DAY2),
               (before, DAY1): (DAY1,), (before, DAY2): (DAY1, DAY2)}
    for steps in (["product_view", "search"], ["enter", "add_to_cart", "order", "pay"],
                  ["search", "add_to_cart"], ["pay", "enter"], ["enter", "product_view", "add_to_cart", "order", "pay"]):
        for (d1, d2), days in periods.items():
            got = report("funnel", **{"from": d1, "to": d2, "steps": ",".join(steps)})
            want = L.funnel(steps, days=days)
            assert [s["visitors"] for s in got["steps"]] == want, (d1, d2, steps, got["steps"], want)
            for r in got["by_source"]:
                want = L.funnel(steps, r["source"], days=days)
                assert [s["visitors"] for s in r["steps"]] == want, (d1, d2, steps, r, want)
    across = lambda d1, d2: [s["visitors"] for s in report(  # noqa: E731
        "funnel", **{"from": d1, "to": d2, "steps": "product_view,search"})["steps"]]
    assert (across(DAY1, DAY1), across(DAY2, DAY2), across(DAY1, DAY2)) == ([3, 0], [1, 0], [4, 1])


def test_sources_match_the_ledger():
    got = report("sources", **{"from": DAY1, "to": DAY2})
    rows = {r["key"]: r for r in got["items"]}
    want = L.sources()
    assert set(rows) == set(want), (rows, want)
    for k, w in want.items():
        for f, v in w.items():
            assert rows[k][f] == v, (k, f, rows[k], w)
    stores = {r.get("key"): r for r in report("sources", **{"from": DAY1, "to": DAY2, "by": "store"})["items"]}
    assert stores["hz-west"]["visitors"] == 1 and stores["hz-west"]["orders"] == 1, stores
    # visitors per scene, store, guide and content over the two days, and over day 2 alone:
    # m1 from 1154 (23:45) and 1008 with store hz-west and guide g1 (23:50) on day 1, 1053 on
    # day 2; dB 1047; dF 1008 (late); m2 1155 with content post-9 on day 2
    want = {("scene", DAY1): {"1008": 2, "1154": 1, "1047": 1, "1155": 1, "1053": 1},
            ("scene", DAY2): {"1155": 1, "1053": 1},
            ("store", DAY1): {"hz-west": 1, None: 4}, ("store", DAY2): {None: 2},
            ("guide", DAY1): {"g1": 1, None: 4}, ("content", DAY1): {"post-9": 1, None: 3},
            ("content", DAY2): {"post-9": 1, None: 1}, ("live", DAY1): {None: 4}}
    for (by, first), keys in want.items():
        got = report("sources", **{"from": first, "to": DAY2, "by": by})["items"]
        assert {r.get("key"): r["visitors"] for r in got if r["visitors"]} == keys, (by, first, got)


def test_stores_and_guides_agree_with_referral():
    """Orders carry referral's store and guide where it named one: the sources by store and
    by guide give the referral plugin's own performance figures (paid minus refunded)."""
    frm, to = at(1, 0, 0), at(2, 0, 0) + DAY
    perf = admin_ok(host(), "GET", "/referral/stores/hz-east/performance?from=%d&to=%d" % (frm, to), T)
    assert perf["sales_fen"] > 0, perf
    stores = {r.get("key"): r for r in report("sources", **{"from": DAY1, "to": DAY2, "by": "store"})["items"]}
    assert (stores["hz-east"]["gmv_fen"], stores["hz-east"]["orders"]) == (perf["sales_fen"], perf["orders"]), \
        (stores["hz-east"], perf)
    guides = {r.get("key"): r for r in report("sources", **{"from": DAY1, "to": DAY2, "by": "guide"})["items"]}
    li = next(g for g in perf["guides"] if g["guide"] == "guide-li")
    assert (guides["guide-li"]["gmv_fen"], guides["guide-li"]["orders"]) == (li["sales_fen"], li["orders"]), \
        (guides["guide-li"], li)
    m2 = sum(o["net"] for o in L.orders.values() if o["member"] == "m2")
    assert perf["sales_fen"] == m2


def test_filters_narrow_visitors_and_orders():
    got = report("overview", **{"from": DAY1, "to": DAY2, "source": "search"})
    assert got["total"]["uv"] == 1 and got["total"]["orders"] == 1, got
    assert got["total"]["gmv_fen"] == PRICE["tea-001"], got
    got = report("overview", **{"from": DAY1, "to": DAY2, "campaign": "flash_sale:1"})
    assert (got["total"]["orders"], got["total"]["gmv_fen"]) == (1, 990), got["total"]
    got = report("overview", **{"from": DAY1, "to": DAY2, "guide": "g1"})
    g1 = [o for o in L.orders.values() if o["paid"] and o["member"] == "m1" and o["source"] == "group_chat"]
    assert (got["total"]["uv"], got["total"]["orders"]) == (1, len(g1)) == (1, 1), got["total"]
    got = report("overview", **{"from": DAY1, "to": DAY2, "product": "tea-002"})
    viewers = {v for _, v, k, _ in L.hits if k == "product_view"} - {"m1", "device:dF"}
    assert got["total"]["uv"] == len(viewers), (got["total"], viewers)


def test_products_match_the_ledger():
    got = report("products", **{"from": DAY1, "to": DAY2})
    rows = {r["product"]: r for r in got["items"]}
    want = L.product_report()
    assert set(rows) == set(want), (rows, want)
    for p, w in want.items():
        for k, v in w.items():
            assert rows[p][k] == v, (p, k, rows[p], w)
        assert abs(rows[p]["view_to_buy"] - w["buyers"] / w["viewers"]) < 1e-9, rows[p]
    assert sum(r["gmv_fen"] for r in got["items"]) == sum(o["net"] for o in L.orders.values())
    assert got["slow_movers"] == [p for p, w in sorted(want.items(), key=lambda kv: -kv[1]["views"])
                                  if w["units"] == 0]


def test_campaigns_match_the_ledger():
    got = report("campaigns", **{"from": DAY1, "to": DAY2})
    rows = {r["campaign"]: r for r in got["items"]}
    want = L.campaigns()
    assert set(rows) == set(want), (rows, want)
    for c, w in want.items():
        for k, v in w.items():
            assert rows[c][k] == v, (c, k, rows[c], w)
    fs = rows["flash_sale:1"]
    assert abs(fs["roi"] - fs["gmv_fen"] / fs["campaign_fen"]) < 1e-9 and "roi" not in rows["none"], rows


def test_retention_cohorts_match_the_ledger():
    got = report("retention", **{"from": DAY1, "to": DAY2})["cohorts"]
    buys = {}
    for o in L.orders.values():
        if o["paid"] and o["net"] > 0:
            buys.setdefault(o["member"], []).append(o["paid"])
    want = {}
    for m, times in buys.items():
        first = min(times)
        c = want.setdefault(date_of(first)[:7], {"members": 0, "repurchased_30": 0})
        c["members"] += 1
        c["repurchased_30"] += sum(1 for t in times if first <= t <= first + 30 * DAY) >= 2
    assert {c["month"]: {"members": c["members"], "repurchased_30": c["repurchased_30"]} for c in got} == want, got
    assert all(c["open_30"] and abs(c["rate_30"] - c["repurchased_30"] / c["members"]) < 1e-9 for c in got), got
    assert sum(c["repurchased_30"] for c in want.values()) < sum(c["members"] for c in want.values())  # m3


def test_members_keep_first_and_last_touch():
    t = admin_ok(host(), "GET", "/analytics/members/m1", T)
    assert t["first"]["source"] == "moments" and t["first"]["at"] == at(1, 23, 45), t
    assert t["last"]["source"] == "search" and t["last"]["at"] == at(2, 0, 6), t


def test_recomputing_a_day_gives_the_same_numbers():
    before = report("overview", **{"from": DAY1, "to": DAY2, "granularity": "hour"})
    assert rollup(day=DAY1)["hours"] == 24
    assert rollup(day=DAY2)["hours"] == 24
    assert rollup() == {"hours": 0, "more": False}
    assert report("overview", **{"from": DAY1, "to": DAY2, "granularity": "hour"}) == before


def test_reports_as_csv_carry_the_same_figures():
    import csv
    import io
    q = "from=%s&to=%s" % (DAY1, DAY2)
    status, headers, text = host().admin("GET", "/analytics/overview?%s&format=csv" % q, T)
    assert status == 200 and headers["content-type"].startswith("text/csv"), (status, headers)
    rows = list(csv.DictReader(io.StringIO(text)))
    got = report("overview", **{"from": DAY1, "to": DAY2})
    assert [r["label"] for r in rows] == [DAY1, DAY2, DAY1 + ".." + DAY2, "previous"], rows
    for r, b in zip(rows, got["buckets"] + [got["total"], got["previous"]]):
        for k in ("uv", "payers", "orders", "gmv_fen"):
            assert int(r[k]) == b[k], (k, r, b)
    status, _, text = host().admin("GET", "/analytics/sources?%s&format=csv" % q, T)
    rows = {r["key"]: r for r in csv.DictReader(io.StringIO(text))}
    for k, w in L.sources().items():
        assert int(rows[k]["gmv_fen"]) == w["gmv_fen"] and int(rows[k]["visitors"]) == w["visitors"], (k, rows)
    status, _, text = host().admin("GET", "/analytics/funnel?%s&format=csv" % q, T)
    steps = [r for r in csv.DictReader(io.StringIO(text)) if r["source"] == "all"]
    assert [int(r["visitors"]) for r in steps] == L.funnel(["enter", "product_view", "add_to_cart", "order", "pay"])
    status, _, bad = host().admin("GET", "/analytics/sources?format=xml", T)
    assert status == 400 and bad["error"]["details"]["field"] == "format", bad


def test_raw_events_are_kept_for_the_brands_days_and_rollups_for_ever():
    h = host()
    t0 = admin_ok(h, "GET", "/clock", T_KEEP)["now"]
    day = date_of(t0)
    send = lambda i, when: h.post("/v1/keep/track", {"device": "k%d" % i, "events": [  # noqa: E731
        ev("k%d" % i, "enter", when, "ks%d" % i, scene=1011)]})
    assert send(1, t0)[0] == 200
    admin_ok(h, "POST", "/analytics/rollup", T_KEEP, {})
    raw = lambda: sqlite3.connect(os.path.join(h.data_dir, "keep.analytics.db")).execute(  # noqa: E731
        "SELECT count(*) FROM analytics_events").fetchone()[0]
    assert raw() == 1
    advance(h, T_KEEP, seconds=4 * DAY)
    assert send(2, t0 + 4 * DAY)[0] == 200      # the intake purges what is older than 3 days
    assert raw() == 1
    # the hour whose raw events are gone is kept as it was; the 23 empty ones are rebuilt empty
    assert admin_ok(h, "POST", "/analytics/rollup", T_KEEP, {"day": day})["hours"] == 23
    got = admin_ok(h, "GET", "/analytics/overview?from=%s&to=%s" % (day, day), T_KEEP)
    assert got["total"]["uv"] == 1, got


def test_a_late_event_into_an_hour_at_the_edge_of_retention_is_added():
    # with 3 days kept, an event may come 47 h late into an hour that begins less
    # than a day after the purge's cutoff: that hour is never counted again from its
    # raw events (some may be gone), but what comes late is still added to it
    h = host()
    now = admin_ok(h, "GET", "/clock", T_KEEP)["now"]
    advance(h, T_KEEP, seconds=3600 - now % 3600 + 55 * 60 + 4 * DAY)   # minute 55 of an hour
    t0 = admin_ok(h, "GET", "/clock", T_KEEP)["now"]
    day = date_of(t0)
    send = lambda who, when: h.post("/v1/keep/track", {"device": who, "events": [  # noqa: E731
        ev("%s-%d" % (who, when), "enter", when, "s-%s-%d" % (who, when), scene=1011)]})
    assert send("edge-old", t0 - 47 * 3600)[0] == 200    # the purge deletes it, two days on
    assert send("edge-1", t0)[0] == 200
    admin_ok(h, "POST", "/analytics/rollup", T_KEEP, {})
    advance(h, T_KEEP, seconds=2 * 60 + 47 * 3600 + 50 * 60)
    assert send("edge-purge", t0 + 2 * 60 + 47 * 3600 + 50 * 60)[0] == 200   # the intake purges
    cut = sqlite3.connect(os.path.join(h.data_dir, "keep.analytics.db")).execute(
        "SELECT before_ms FROM analytics_purged").fetchone()[0] // 1000
    assert t0 - t0 % 3600 < cut + DAY, (t0, cut)         # the hour is at the edge
    assert send("edge-2", t0 + 2 * 60)[0] == 200          # 47 h 50 min late, into that hour
    admin_ok(h, "POST", "/analytics/rollup", T_KEEP, {})
    got = admin_ok(h, "GET", "/analytics/overview?from=%s&to=%s" % (day, day), T_KEEP)
    assert got["total"]["uv"] == 2, got


def test_a_manifests_track_list_is_checked_at_load():
    import subprocess
    import tempfile
    from harness import BIN
    for track, why in (('"spin"', "must be a list of 1-32 event names"),
                       ('{ "Spin!" }', "track[1] must be an event name")):
        with tempfile.TemporaryDirectory(prefix="tidepool-e2e-track-") as top:
            d = os.path.join(top, "wheel")
            os.makedirs(d)
            with open(os.path.join(d, "plugin.lua"), "w") as f:
                f.write('return { name = "wheel", version = "1.0.0", track = %s }\n' % track)
            out = subprocess.run([BIN, "check", d], capture_output=True, text=True, timeout=60)
        assert out.returncode != 0 and why in out.stdout + out.stderr, (track, out.stdout, out.stderr)


def test_a_brands_settings_are_checked_at_load():
    """A misspelt, out-of-range or mistyped setting fails analytics' load with its name (and
    a "did you mean"); the brand's other plugins serve on."""
    cases = {"typo": ({"rollup_every_second": 60}, ["rollup_every_second", "did you mean 'rollup_every_seconds'"]),
             "range": ({"rollup_every_seconds": 0}, ["rollup_every_seconds", "must be an integer from 10 to 86400"]),
             "type": ({"attribution_window_days": "7"}, ["attribution_window_days", "must be an integer from 1 to 365"])}
    tenants = {name: manual_tenant(name, {"catalog": {}, "orders": {}, "analytics": conf})
               for name, (conf, _) in cases.items()}
    h = Host(tenants=list(tenants.values()), name="analytics-settings").start()
    try:
        for name, (_, words) in cases.items():
            plugins = {p["name"]: p for p in admin_ok(h, "GET", "/plugins", tenants[name])["plugins"]}
            assert plugins["analytics"]["status"] == "failed", (name, plugins["analytics"])
            assert all(w in plugins["analytics"]["last_error"] for w in words), (name, plugins["analytics"])
            assert plugins["catalog"]["status"] == "active", (name, plugins["catalog"])
    finally:
        h.stop()


def test_metrics_count_the_events_taken_in():
    from harness import metric_value
    text = host().metrics()
    assert metric_value(text, "tidepool_track_events_total", {"tenant": "shop", "result": "duplicate"}) == 4
    assert metric_value(text, "tidepool_track_events_total", {"tenant": "shop", "result": "refused"}) >= 5


def test_a_flood_of_batches_yields_to_the_rest_of_the_loop():
    """Intake takes at most 1 ms of a loop iteration: of many batches arriving at once, those
    after the slice are answered 503 busy with Retry-After and keep nothing; sent again they
    are taken."""
    from harness import RawConn, http_request_bytes
    h = host()
    now = admin_ok(h, "GET", "/clock", T_KEEP)["now"]
    batches = {}
    conns = []
    for c in range(40):
        events = [ev("fl-%d-%d" % (c, i), "page_view", now, "fl-s%d" % c, page="/p%d" % i) for i in range(100)]
        batches[c] = events
        conn = RawConn(h.port)
        conn.send(http_request_bytes("POST", "/v1/keep/track", {"device": "fl-%d" % c, "events": events}))
        conns.append(conn)
    busy = []
    for c, conn in enumerate(conns):
        r = conn.read_response()
        conn.close()
        if r.status == 503:
            assert r.json()["error"]["code"] == "busy" and r.headers["retry-after"] == "1", r
            busy.append(c)
        else:
            assert r.status == 200 and r.json() == {"accepted": 100, "duplicates": 0}, r
    assert busy, "no batch was refused busy"
    for c in busy:      # nothing of a busy batch was kept: sent again, all 100 are new
        status, _, answer = h.post("/v1/keep/track", {"device": "fl-%d" % c, "events": batches[c]})
        assert status == 200 and answer == {"accepted": 100, "duplicates": 0}, answer


def test_report_queries_are_checked():
    for q, field in (("from=2026-13-01", "from"), ("granularity=year", "granularity"),
                     ("from=%s&to=%s" % (DAY2, DAY1), "from"), ("by=city", "by")):
        status, _, bad = host().admin("GET", "/analytics/sources?" + q, T)
        assert status == 400 and bad["error"]["details"]["field"] == field, (q, bad)


# top-level fields of a report's answer that later versions added: 1.7.0 says which
# view of the campaigns it gives (by=activity, 1.5.0's only one, or by=script)
ADDED_SINCE_150 = {"campaigns": ("by",)}


def test_an_upgrade_from_1_5_0_rebuilds_every_day_and_answers_as_before():
    """A brand rolled up by analytics 1.5.0 (reports from the hours' rows) moves to the
    per-day tables: the migration marks every day, the job rebuilds them, and every
    report over the two days answers exactly what 1.5.0 answered."""
    import shutil
    import tempfile
    from harness import host_with_old, user_auth, plugin_commit, export_plugin
    commit = plugin_commit("analytics", "1.5.0")
    if commit is None:
        print("  (skipped: no git history with analytics 1.5.0)")
        return
    old = tempfile.mkdtemp(prefix="tidepool-e2e-analytics150-")
    up = manual_tenant("up", {"catalog": {}, "orders": {}, "payments": {"secret": PAY_SECRET}, "analytics": {}})
    try:
        export_plugin("analytics", commit, old)
        h = host_with_old([up], "analytics-upgrade", [old])
        start = local_midnight(admin_ok(h, "GET", "/clock", up)["now"]) + 2 * DAY
        d1, d2 = date_of(start), date_of(start + DAY)
        queries = ["overview?from=%s&to=%s" % (d1, d2), "funnel?from=%s&to=%s" % (d1, d2),
                   "funnel?from=%s&to=%s&steps=product_view,order,pay" % (d1, d1),
                   "products?from=%s&to=%s" % (d1, d2), "campaigns?from=%s&to=%s" % (d1, d2),
                   "retention?from=%s&to=%s" % (d1, d2)] + \
            ["sources?from=%s&to=%s&by=%s" % (d1, d2, by)
             for by in ("source", "scene", "store", "guide", "content", "live", "referrer")]
        try:
            add_sku(h, up, "up-tea", 100, 3000)
            n = 0
            for day, hh, user, scene, query, kinds in (
                    (0, 22, "u1", 1008, {"store": "s1", "guide": "g1"}, ["product_view", "add_to_cart"]),
                    (0, 23, None, 1154, {"content": "c1"}, ["product_view"]),
                    (1, 0, "u1", 1053, {}, ["search"]),
                    (1, 9, "u2", 1047, {"store": "s2"}, ["product_view", "add_to_cart"]),
                    (1, 10, "u3", 1176, {"live": "r1"}, [])):
                advance(h, up, to=start + day * DAY + hh * 3600 + 60)
                at = start + day * DAY + hh * 3600
                n += 1
                events = [ev("up%d" % n, "enter", at, "us%d" % n, scene=scene, query=query)] + \
                    [ev("up%d-%s" % (n, k), k, at + 1, "us%d" % n, product="up-tea") for k in kinds]
                headers = user_auth(up, user) if user else {}
                st, _, body = h.post("/v1/up/track", {"device": "ud%d" % n, "events": events}, headers=headers)
                assert st == 200, (st, body)
                if user in ("u1", "u2"):
                    st, _, o = h.post("/v1/up/orders", {"lines": [{"sku": "up-tea", "qty": 1}]},
                                      headers=user_auth(up, user))
                    assert st == 201, (st, o)
                    assert h.admin("POST", "/payments/simulate", up, {"order_id": o["id"]})[0] == 200
            admin_ok(h, "POST", "/analytics/rollup", up, {})
            before = {q: admin_ok(h, "GET", "/analytics/" + q, up) for q in queries}
        finally:
            h.stop()
        h.upgrade()
        try:
            for _ in range(10):
                if not admin_ok(h, "POST", "/analytics/rollup", up, {})["more"]:
                    break
            assert read_tables(h, "up", "analytics_dirty") == 0
            for q in queries:
                after = admin_ok(h, "GET", "/analytics/" + q, up)
                for field in ADDED_SINCE_150.get(q.split("?")[0], ()):  # 1.5.0 had no such field
                    after.pop(field)
                assert after == before[q], (q, before[q], after)
            assert [s["visitors"] for s in before[queries[1]]["steps"]] == [4, 3, 2, 2, 2] and \
                before[queries[0]]["total"]["orders"] == 3
        finally:
            h.stop()
    finally:
        shutil.rmtree(old, ignore_errors=True)


def read_tables(h, tid, table):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(h.data_dir, tid + ".db"), uri=True)
    try:
        return db.execute("SELECT count(*) FROM %s" % table).fetchone()[0]
    finally:
        db.close()


def teardown():
    if H is not None:
        H.stop()


if __name__ == "__main__":
    run(globals())
