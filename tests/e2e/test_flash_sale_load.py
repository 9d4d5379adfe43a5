"""
test_flash_sale_load.py - the flash sale under a crowd: thousands of buys at
the same instant never sell a unit twice, never lose an acknowledged order,
never let a user past the per-user limit, and answer sold_out only when the
sale has no units left.

Every client is a thread with its own keep-alive connection (http.client),
opened before the start; all threads wait on one barrier and fire together.
The helpers (tokens, sales, accounting) come from test_flash_sale.py.
"""
import http.client
import json
import os
import sys
import threading
import time
from collections import Counter, defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Host, api_key, advance, metric_value, sku_stock, wait_until, run  # noqa: E402
from test_flash_sale import (shop, token, add_sku, new_sale, admin_sale,  # noqa: E402
                             all_orders, orders_of_sale, order, check_accounting, units,
                             SALE_PRICE)

T_RUSH = shop("rush")
T_LIMIT = shop("limits")
T_RETURN = shop("returns")

H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[T_RUSH, T_LIMIT, T_RETURN], name="flash-load").start()
    return H


class Outcome:
    __slots__ = ("user", "lane", "status", "code", "body", "sent", "received")

    def __init__(self, user, lane, status, body, sent, received):
        self.user, self.lane, self.status, self.body = user, lane, status, body
        self.code = body["error"]["code"] if status >= 300 and isinstance(body, dict) \
            and "error" in body else None
        self.sent, self.received = sent, received

    def __repr__(self):
        return "<%s %d %s>" % (self.user, self.status, self.code or self.body.get("id"))


class Clients:
    """n keep-alive connections, each driven by its own thread in run()."""

    def __init__(self, h, n):
        threading.stack_size(512 * 1024)
        self.h = h
        self.conns = []
        for _ in range(n):
            c = http.client.HTTPConnection("127.0.0.1", h.port, timeout=120)
            c.request("GET", "/healthz")
            r = c.getresponse()
            r.read()
            assert r.status == 200
            self.conns.append(c)
        self.socks = [c.sock for c in self.conns]

    def close(self):
        for c in self.conns:
            c.close()

    def run(self, lanes):
        """lanes[i] is a list of (user, method, path, headers, body bytes), sent
        one after the other on connection i; every lane starts at one barrier.
        Returns the Outcomes, with the monotonic times each was sent and answered."""
        assert len(lanes) <= len(self.conns)
        start = threading.Barrier(len(lanes))
        results = [[] for _ in lanes]
        errors = []

        def lane(i):
            c, out = self.conns[i], results[i]
            try:
                start.wait(120)
                for user, method, path, headers, body in lanes[i]:
                    sent = time.monotonic()
                    c.request(method, path, body=body, headers=headers)
                    r = c.getresponse()
                    raw = r.read()
                    received = time.monotonic()
                    out.append(Outcome(user, i, r.status, json.loads(raw), sent, received))
            except Exception as e:  # reported below
                errors.append("lane %d: %r" % (i, e))

        threads = [threading.Thread(target=lane, args=(i,)) for i in range(len(lanes))]
        for th in threads:
            th.start()
        for th in threads:
            th.join(240)
        assert not any(th.is_alive() for th in threads), "a client thread is stuck"
        assert not errors, errors[:5]
        # the same connections throughout: keep-alive held, nothing reconnected
        assert all(c.sock is s for c, s in zip(self.conns, self.socks)), \
            "a connection was closed and reopened during the run"
        return [o for out in results for o in out]


def buy_request(t, sale_id, user, tokens):
    headers = {"Authorization": "Bearer " + tokens[user], "Content-Type": "application/json"}
    return (user, "POST", "/v1/%s/flash-sales/%d/buy" % (t["id"], sale_id), headers, b"{}")


def max_in_flight(outcomes):
    """The most requests that were sent and not yet answered at one instant."""
    edges = sorted([(o.sent, 1) for o in outcomes] + [(o.received, -1) for o in outcomes],
                   key=lambda e: (e[0], e[1]))
    cur = best = 0
    for _, d in edges:
        cur += d
        best = max(best, cur)
    return best


def commit_batches(h):
    text = h.metrics()
    return (metric_value(text, "tidepool_commit_batch_size_count") or 0,
            metric_value(text, "tidepool_commit_batch_size_sum") or 0)


def no_buy_after_a_sold_out(outcomes):
    """Causality: a buy sent after some sold_out answer had arrived was handled
    after it; if it still got a unit, that sold_out was said while units were left."""
    first_sold_out = min((o.received for o in outcomes if o.code == "sold_out"), default=None)
    if first_sold_out is None:
        return
    late = [o for o in outcomes if o.status == 201 and o.sent > first_sold_out]
    assert not late, ("units were sold after a sold_out answer", late[:5])


# ---- 1. 2,000 users, 250 connections, 100 units

USERS = 2000
CONNECTIONS = 250
QUANTITY = 100
STOCK = 160


def test_two_thousand_users_at_once_buy_exactly_the_hundred_units():
    h, t = host(), T_RUSH
    add_sku(h, t, "rush-1", stock=STOCK)
    sid = new_sale(h, t, "rush-1", quantity=QUANTITY, per_user_limit=1, per_order_limit=1)["id"]
    users = ["wx:rush-%04d" % i for i in range(USERS)]
    tokens = {u: token(t, u) for u in users}
    lanes = [[] for _ in range(CONNECTIONS)]
    for i, u in enumerate(users):                  # 8 users per connection
        lanes[i % CONNECTIONS].append(buy_request(t, sid, u, tokens))
    clients = Clients(h, CONNECTIONS)
    batches0 = commit_batches(h)
    t0 = time.monotonic()
    try:
        outcomes = clients.run(lanes)
    finally:
        clients.close()
    took = time.monotonic() - t0
    batches1 = commit_batches(h)
    assert len(outcomes) == USERS

    # the requests overlapped: many in flight at once, commits carried several
    in_flight = max_in_flight(outcomes)
    assert in_flight >= CONNECTIONS // 2, in_flight
    commits, committed = batches1[0] - batches0[0], batches1[1] - batches0[1]
    assert committed >= QUANTITY and commits < committed, (commits, committed)

    won = [o for o in outcomes if o.status == 201]
    lost = [o for o in outcomes if o.status != 201]
    others = [o for o in lost if (o.status, o.code) != (409, "sold_out")]
    assert not others, ("a refusal that is not 409 sold_out", Counter(
        (o.status, o.code) for o in others), others[:5])
    assert len(won) == QUANTITY, (len(won), Counter((o.status, o.code) for o in outcomes))
    assert len({o.user for o in won}) == QUANTITY, "a user got two units"
    no_buy_after_a_sold_out(outcomes)
    for o in won:
        assert o.body["user"] == o.user and units(o.body) == 1, o.body
        assert o.body["total_fen"] == SALE_PRICE, o.body

    # every acknowledged order is a row, and every row was acknowledged
    rows = orders_of_sale(h, t, sid)
    assert len(rows) == QUANTITY, len(rows)
    per_user = Counter(o["user"] for o in rows)
    assert max(per_user.values()) == 1, per_user.most_common(3)
    answered = {(o.body["id"], o.user) for o in won}
    stored = {(o["id"], o["user"]) for o in rows}
    assert answered == stored, (sorted(answered - stored)[:5], sorted(stored - answered)[:5])
    assert all(o["status"] == "pending_payment" and o["stock_held"] for o in rows)
    _, totals = all_orders(h, t)
    assert totals == [{"status": "pending_payment", "orders": QUANTITY,
                       "total_fen": QUANTITY * SALE_PRICE}], totals

    sale = check_accounting(h, t, sid, "rush-1", STOCK)
    assert (sale["remaining"], sale["sold"]) == (0, QUANTITY), sale
    assert sku_stock(h, t, "rush-1") == STOCK - QUANTITY

    # every acknowledged order was on disk: kill -9, restart, the same books
    h.restart()
    assert {(o["id"], o["user"]) for o in orders_of_sale(h, t, sid)} == answered
    sale = check_accounting(h, t, sid, "rush-1", STOCK)
    assert (sale["remaining"], sale["sold"]) == (0, QUANTITY), sale
    print("  %d buys over %d connections in %.2fs, %d in flight at most, %d commits"
          % (USERS, CONNECTIONS, took, in_flight, commits))


# ---- 2. one user's concurrent requests count once; sold_out only when sold out

BUYERS = 50
EACH = 20


def user_major(t, sale_id, users, tokens):
    """One lane per request: the EACH requests of a user are all in flight together."""
    return [[buy_request(t, sale_id, u, tokens)] for u in users for _ in range(EACH)]


def by_user(outcomes):
    out = defaultdict(Counter)
    for o in outcomes:
        out[o.user][o.code or o.status] += 1
    return out


def test_concurrent_requests_of_a_user_count_once_and_sold_out_only_once_sold_out():
    h, t = host(), T_LIMIT
    clients = Clients(h, BUYERS * EACH)
    try:
        # (a) in rounds, so that the moment of the sell-out is known
        add_sku(h, t, "lim-a", stock=40)
        sid = new_sale(h, t, "lim-a", quantity=10, per_user_limit=1)["id"]
        users = ["a-%02d" % i for i in range(BUYERS)]
        tokens = {u: token(t, u) for u in users}

        first = clients.run(user_major(t, sid, users[:5], tokens))     # 5 users, 100 requests
        counts = Counter(o.code or o.status for o in first)
        # 10 units, 5 users: units were left all along, so every refusal is limit_reached
        assert counts == {201: 5, "limit_reached": 95}, counts
        assert all(c[201] == 1 for c in by_user(first).values()), by_user(first)
        assert admin_sale(h, t, sid)["remaining"] == 5

        second = clients.run(user_major(t, sid, users[5:10], tokens))  # 5 more: the last 5 units
        counts = Counter(o.code or o.status for o in second)
        assert counts[201] == 5 and set(counts) <= {201, "limit_reached", "sold_out"}, counts
        assert all(c[201] == 1 for c in by_user(second).values()), by_user(second)
        no_buy_after_a_sold_out(second)
        assert admin_sale(h, t, sid)["remaining"] == 0

        rest = clients.run(user_major(t, sid, users[10:], tokens))     # 40 users, 800 requests
        counts = Counter(o.code or o.status for o in rest)
        assert counts == {"sold_out": 40 * EACH}, counts

        rows = orders_of_sale(h, t, sid)
        assert sorted(o["user"] for o in rows) == users[:10], rows
        sale = check_accounting(h, t, sid, "lim-a", 40)
        assert (sale["remaining"], sale["sold"]) == (0, 10), sale

        # (b) all 50 users, 20 requests each, 1000 in flight at once, for 10 units
        add_sku(h, t, "lim-b", stock=40)
        sid = new_sale(h, t, "lim-b", quantity=10, per_user_limit=1)["id"]
        users = ["b-%02d" % i for i in range(BUYERS)]
        tokens = {u: token(t, u) for u in users}
        outcomes = clients.run(user_major(t, sid, users, tokens))
        assert len(outcomes) == BUYERS * EACH
        counts = Counter(o.code or o.status for o in outcomes)
        assert counts[201] == 10 and set(counts) <= {201, "limit_reached", "sold_out"}, counts
        rows = orders_of_sale(h, t, sid)
        assert len(rows) == 10 and len({o["user"] for o in rows}) == 10, rows
        assert {(o.body["id"], o.user) for o in outcomes if o.status == 201} == \
            {(o["id"], o["user"]) for o in rows}
        buyers = {o["user"] for o in rows}
        for u, c in by_user(outcomes).items():
            if u in buyers:
                assert c[201] == 1, (u, c)
            else:
                # bought nothing, so never at the limit: every answer was sold_out
                assert c == {"sold_out": EACH}, (u, c)
        no_buy_after_a_sold_out(outcomes)
        sale = check_accounting(h, t, sid, "lim-b", 40)
        assert (sale["remaining"], sale["sold"]) == (0, 10), sale
    finally:
        clients.close()


def test_when_units_outnumber_the_users_nobody_hears_sold_out():
    h, t = host(), T_LIMIT
    add_sku(h, t, "lim-c", stock=80)
    sid = new_sale(h, t, "lim-c", quantity=60, per_user_limit=1)["id"]
    users = ["c-%02d" % i for i in range(BUYERS)]
    tokens = {u: token(t, u) for u in users}
    clients = Clients(h, BUYERS * EACH)
    try:
        outcomes = clients.run(user_major(t, sid, users, tokens))
    finally:
        clients.close()
    counts = Counter(o.code or o.status for o in outcomes)
    assert counts == {201: BUYERS, "limit_reached": BUYERS * (EACH - 1)}, counts
    assert all(c[201] == 1 for c in by_user(outcomes).values())
    rows = orders_of_sale(h, t, sid)
    assert sorted(o["user"] for o in rows) == users, rows
    sale = check_accounting(h, t, sid, "lim-c", 80)
    assert (sale["remaining"], sale["sold"]) == (10, BUYERS), sale


# ---- 3 under load: a hundred orders time out, their units sell again while late payments race for them

def test_timed_out_units_are_raced_for_by_new_buyers_and_late_payments():
    h, t = host(), T_RETURN
    add_sku(h, t, "ret-1", stock=150)
    sid = new_sale(h, t, "ret-1", quantity=100, per_user_limit=1, unpaid_timeout_seconds=300)["id"]
    first_users = ["r1-%03d" % i for i in range(300)]
    tokens = {u: token(t, u) for u in first_users}
    clients = Clients(h, 250)
    try:
        lanes = [[] for _ in range(100)]
        for i, u in enumerate(first_users):
            lanes[i % 100].append(buy_request(t, sid, u, tokens))
        outcomes = clients.run(lanes)
        won = [o for o in outcomes if o.status == 201]
        assert len(won) == 100, Counter(o.code or o.status for o in outcomes)
        check_accounting(h, t, sid, "ret-1", 150)

        a = advance(h, t, seconds=301)             # all hundred are past their deadline
        assert a["tasks_failed"] == 0 and a["tasks_run"] >= 100, a
        rows = orders_of_sale(h, t, sid)
        assert len(rows) == 100 and all(o["status"] == "cancelled" and o["cancel_reason"] == "timeout"
                                        for o in rows), Counter(o["status"] for o in rows)
        sale = check_accounting(h, t, sid, "ret-1", 150)
        assert (sale["remaining"], sale["sold"]) == (100, 0), sale
        assert sku_stock(h, t, "ret-1") == 150

        # 200 new buyers and 50 late payments for cancelled orders, all at once, for 100 units
        second_users = ["r2-%03d" % i for i in range(200)]
        tokens.update({u: token(t, u) for u in second_users})
        late = [o.body["id"] for o in won[:50]]
        admin = {"X-Api-Key": api_key(t), "Content-Type": "application/json"}
        lanes = [[buy_request(t, sid, u, tokens)] for u in second_users]
        lanes += [[("pay:%d" % oid, "POST", "/admin/%s/payments/simulate" % t["id"], admin,
                    json.dumps({"order_id": oid}).encode())] for oid in late]
        outcomes = clients.run(lanes)
    finally:
        clients.close()
    buys = [o for o in outcomes if not o.user.startswith("pay:")]
    pays = [o for o in outcomes if o.user.startswith("pay:")]
    assert all(o.status == 200 for o in pays), [o.body for o in pays if o.status != 200][:3]
    pay_outcomes = Counter(o.body["result"]["outcome"] for o in pays)
    assert set(pay_outcomes) <= {"paid_after_cancel", "refunding"}, pay_outcomes
    buy_outcomes = Counter(o.code or o.status for o in buys)
    assert set(buy_outcomes) <= {201, "sold_out"}, buy_outcomes
    # demand (250) exceeds the 100 units: every unit went, to a buyer or a late payer, once
    assert buy_outcomes[201] + pay_outcomes["paid_after_cancel"] == 100, (buy_outcomes, pay_outcomes)

    for o in pays:
        oid = int(o.user.split(":")[1])
        want = "paid" if o.body["result"]["outcome"] == "paid_after_cancel" else "refunded"
        wait_until(lambda: order(h, t, oid)["status"] == want, 30,
                   what="order %d to become %s" % (oid, want))
    sale = check_accounting(h, t, sid, "ret-1", 150)
    assert (sale["remaining"], sale["sold"]) == (0, 100), sale
    rows = orders_of_sale(h, t, sid)
    holders = Counter(o["user"] for o in rows if o["stock_held"])
    assert sum(holders.values()) == 100 and max(holders.values()) == 1, holders
    status, _, refunds = h.admin("GET", "/payments/refunds?limit=500", t)
    assert len(refunds["items"]) == pay_outcomes["refunding"], refunds
    print("  second race: %d new buyers won, %d late payments kept their unit, %d refunded"
          % (buy_outcomes[201], pay_outcomes["paid_after_cancel"], pay_outcomes["refunding"]))


def teardown():
    if H is not None:
        H.stop()


if __name__ == "__main__":
    run(globals())
