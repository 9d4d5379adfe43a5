"""
test_events.py - events and calls between plugins: an event exists exactly
when the transaction that emitted it commits and then reaches every
subscriber, each delivery its own transaction, in order per subscriber,
retried with back-off and dead-lettered without holding back the others;
deliveries survive kill -9. tp.call runs a peer's export in the caller's
transaction and rolls back only the callee when it fails.

Plugins: tests/e2e/plugins/evemit (emits from routes and jobs), evsub_a and
evsub_b (subscribers that record what they accept; evsub_b fails on purpose),
evcallee and evcaller (tp.call). Tenants run on a manual clock: advancing it
by 0 seconds runs whatever is due now, so nothing waits.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Host, tenant, manual_tenant, tasks, clock, advance,  # noqa: E402
                     expect_error, run)

DAY = 86400
LIMITS = {"job_max_attempts": 3, "job_retry_base_ms": 1000, "job_retry_max_ms": 60000}
EVENT_PLUGINS = {"evemit": {}, "evsub_a": {}, "evsub_b": {}}


def manual(tid, plugins=None):
    return manual_tenant(tid, plugins if plugins is not None else EVENT_PLUGINS)


T_FAN = manual("fan")
T_DLQ = manual("dlq")
T_CHAIN = manual("chain")
T_CALLS = manual("calls", plugins={"evcaller": {}, "evcallee": {}})

H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[T_FAN, T_DLQ, T_CHAIN, T_CALLS], limits=LIMITS, name="events").start()
    return H


# ---- helpers

def emit(h, t, name, data=None, **extra):
    body = {"name": name, "data": data}
    body.update(extra)
    return h.post("/v1/%s/evemit/emit" % t["id"], body)


def emit_ok(h, t, name, data=None, subscribers=None):
    status, _, body = emit(h, t, name, data)
    assert status == 200, (status, body)
    if subscribers is not None:
        assert body["subscribers"] == subscribers, (name, body)
    return body


def seen(h, t, plugin, name=None):
    status, _, body = h.get("/v1/%s/%s/seen" % (t["id"], plugin))
    assert status == 200, (status, body)
    rows = body["seen"]
    for r in rows:
        r["data"] = json.loads(r["data"])
    return [r for r in rows if name is None or r["name"] == name]


def events(h, t, state="pending"):
    return tasks(h, t, "events", state)


def settle(h, t):
    """Runs every task due at the current (unmoved) test clock."""
    return advance(h, t, seconds=0)


# ---- 1. fan-out after commit, nothing from a failed transaction

def test_a_committed_event_reaches_every_subscriber_and_a_rolled_back_one_none():
    h, t = host(), T_FAN
    c0 = clock(h, t)
    data = {"order": 7, "items": ["tea", "cake"], "total_fen": 990, "note": "茶"}
    emit_ok(h, t, "order.placed", data, subscribers=2)
    settle(h, t)
    for plugin in ("evsub_a", "evsub_b"):
        rows = seen(h, t, plugin)
        assert len(rows) == 1, (plugin, rows)
        r = rows[0]
        assert r["name"] == "order.placed" and r["source"] == "evemit", (plugin, r)
        assert r["data"] == data, (plugin, r)
        assert r["attempt"] == 1, (plugin, r)
        assert r["emitted_at_ms"] == c0["now_ms"] and r["emitted_at"] == c0["now"], (plugin, r, c0)
        assert r["now_ms"] == c0["now_ms"], (plugin, r)   # delivered at once: the clock did not move
    listing = events(h, t)
    assert listing["pending"] == 0 and listing["dead"] == 0 and listing["events"] == [], listing

    # emitted, then the handler fails: the event never existed
    expect_error(emit(h, t, "order.placed", {"order": 8}, then="error"), 500, "internal_error")
    expect_error(emit(h, t, "order.placed", {"order": 9}, then="fail"), 409, "changed_my_mind")
    status, _, body = h.post("/v1/fan/evemit/emit", {"events": [
        {"name": "order.placed", "data": {"order": 10}},
        {"name": "order.doomed", "data": {"n": 1}}], "then": "error"})
    assert status == 500, (status, body)
    for state in ("pending", "dead"):
        listing = events(h, t, state)
        assert listing["pending"] == 0 and listing["dead"] == 0 and listing["events"] == [], listing
    a = advance(h, t, seconds=DAY)
    assert a["tasks_run"] == 0 and a["tasks_failed"] == 0, a
    assert [r["data"]["order"] for r in seen(h, t, "evsub_a")] == [7]
    assert [r["data"]["order"] for r in seen(h, t, "evsub_b")] == [7]
    # an event nobody subscribes to reaches nobody and leaves nothing behind
    emit_ok(h, t, "nobody.listens", {"x": 1}, subscribers=0)
    assert events(h, t)["pending"] == 0
    # the data is encoded only when someone subscribes: nobody's event is not
    # even looked at, a subscribed one is refused if JSON cannot hold it
    status, _, body = h.post("/v1/fan/evemit/emit-function", {"name": "nobody.listens"})
    assert status == 200 and body == {"ok": True, "count": 0}, body
    status, _, body = h.post("/v1/fan/evemit/emit-function", {"name": "order.placed"})
    assert status == 200 and body["ok"] is False and "plain data" in body["error"], body
    assert events(h, t)["pending"] == 0


def test_delivery_ids_are_not_reused_so_subscribers_can_deduplicate():
    """Delivery is at least once, so a subscriber deduplicates by ev.id: two
    different events must never reach it with the same id, even when the
    first was delivered (and its row removed) before the second was emitted."""
    t = manual("dedup")
    with Host(tenants=[t], limits=LIMITS, name="events-ids") as h:
        emit_ok(h, t, "order.placed", {"order": 1}, subscribers=2)
        settle(h, t)
        emit_ok(h, t, "order.placed", {"order": 2}, subscribers=2)
        settle(h, t)
        for plugin in ("evsub_a", "evsub_b"):
            got = [(r["data"]["order"], r["event_id"]) for r in seen(h, t, plugin)]
            assert [o for o, _ in got] == [1, 2], (plugin, got)
            assert got[0][1] != got[1][1], \
                "%s got two different events with the same ev.id: %r" % (plugin, got)


# ---- 2. a failing subscriber is retried and dead-lettered on its own

def test_a_failing_subscriber_is_dead_lettered_in_order_without_blocking_others():
    h, t = host(), T_DLQ
    c0 = clock(h, t)
    T0 = c0["now_ms"]
    for n in (1, 2, 3):
        emit_ok(h, t, "order.doomed", {"n": n}, subscribers=2)
    settle(h, t)
    # A has all three, in order, although B is stuck on the first
    a_rows = seen(h, t, "evsub_a")
    assert [(r["name"], r["data"]["n"], r["attempt"]) for r in a_rows] == \
        [("order.doomed", 1, 1), ("order.doomed", 2, 1), ("order.doomed", 3, 1)], a_rows
    assert seen(h, t, "evsub_b") == []
    listing = events(h, t)
    assert listing["pending"] == 3 and listing["dead"] == 0, listing
    by_n = {e["payload"]["n"]: e for e in listing["events"]}
    assert set(by_n) == {1, 2, 3}, listing
    for n, e in by_n.items():
        assert e["kind"] == "event" and e["plugin"] == "evsub_b" and e["source"] == "evemit", e
        assert e["name"] == "order.doomed" and e["max_attempts"] == 3, e
    assert by_n[1]["attempts"] == 1 and by_n[1]["due_ms"] == T0 + 1000, by_n[1]
    assert "subscriber b refuses event 1" in by_n[1]["last_error"], by_n[1]
    for n in (2, 3):            # held back behind event 1: never tried
        assert by_n[n]["attempts"] == 0 and by_n[n]["last_error"] is None, by_n[n]

    a = advance(h, t, seconds=60)
    assert (a["tasks_run"], a["tasks_failed"]) == (8, 8), a
    listing = events(h, t, "dead")
    assert listing["pending"] == 0 and listing["dead"] == 3, listing
    dead = {e["payload"]["n"]: e for e in listing["events"]}
    assert set(dead) == {1, 2, 3}, listing
    for n, e in dead.items():
        assert e["attempts"] == 3 and e["max_attempts"] == 3, e
        assert e["plugin"] == "evsub_b" and e["source"] == "evemit", e
        assert "subscriber b refuses event %d" % n in e["last_error"], e
    # strictly one after the other: 1 s and 2 s back-off each, the next starts
    # only when the one before is dead
    assert [dead[n]["dead_ms"] for n in (1, 2, 3)] == [T0 + 3000, T0 + 6000, T0 + 9000], dead
    assert seen(h, t, "evsub_b") == []
    assert len(seen(h, t, "evsub_a")) == 3

    # B fails event 1 twice, then accepts it: 2 and 3 wait for it
    T1 = clock(h, t)["now_ms"]
    for n in (1, 2, 3):
        emit_ok(h, t, "order.flaky", {"n": n}, subscribers=1)
    settle(h, t)
    assert seen(h, t, "evsub_b", "order.flaky") == []
    a = advance(h, t, seconds=1)                   # attempt 2 of event 1, fails again
    assert (a["tasks_run"], a["tasks_failed"]) == (1, 1), a
    assert seen(h, t, "evsub_b", "order.flaky") == [], "events after 1 were delivered before it"
    pending = {e["payload"]["n"]: e for e in events(h, t)["events"]}
    assert pending[1]["attempts"] == 2 and pending[1]["due_ms"] == T1 + 1000 + 2000, pending
    assert pending[2]["attempts"] == 0 and pending[3]["attempts"] == 0, pending
    a = advance(h, t, seconds=10)
    assert (a["tasks_run"], a["tasks_failed"]) == (3, 0), a
    rows = seen(h, t, "evsub_b", "order.flaky")
    assert [(r["data"]["n"], r["attempt"]) for r in rows] == [(1, 3), (2, 1), (3, 1)], rows
    assert rows[0]["now_ms"] == T1 + 3000 and rows[1]["now_ms"] == rows[2]["now_ms"] == T1 + 3000, \
        rows
    listing = events(h, t)
    assert listing["pending"] == 0 and listing["dead"] == 3, listing

    # an operator retries a dead delivery (it fails again, from attempt 1) and drops the rest
    status, _, body = h.admin("POST", "/jobs/%d/retry" % dead[1]["id"], t)
    assert status == 200 and body == {"id": dead[1]["id"], "state": "pending"}, (status, body)
    settle(h, t)
    listing = events(h, t)
    assert listing["pending"] == 1 and listing["dead"] == 2, listing
    e = listing["events"][0]
    assert e["id"] == dead[1]["id"] and e["attempts"] == 1, e
    assert "subscriber b refuses event 1" in e["last_error"], e
    for n in (1, 2, 3):
        status, _, body = h.admin("DELETE", "/jobs/%d" % dead[n]["id"], t)
        assert status == 200 and body == {"id": dead[n]["id"], "state": "removed"}, (status, body)
    listing = events(h, t)
    assert listing["pending"] == 0 and listing["dead"] == 0, listing
    a = advance(h, t, seconds=60)
    assert a["tasks_run"] == 0, a
    assert len(seen(h, t, "evsub_a")) == 3 and len(seen(h, t, "evsub_b")) == 3


# ---- 3. events from jobs and from event handlers

def test_events_emitted_by_jobs_and_event_handlers_are_delivered():
    h, t = host(), T_CHAIN
    T0 = clock(h, t)["now_ms"]
    status, _, body = h.post("/v1/chain/evemit/emit-later",
                             {"after": 30, "name": "chain.start", "data": {"n": 1}})
    assert status == 200, body
    a = advance(h, t, seconds=30)
    # the job, A's delivery of chain.start, B's delivery of chain.next (emitted by A)
    assert (a["tasks_run"], a["tasks_failed"]) == (3, 0), a
    a_rows = seen(h, t, "evsub_a")
    assert len(a_rows) == 1, a_rows
    assert a_rows[0]["name"] == "chain.start" and a_rows[0]["source"] == "evemit", a_rows
    assert a_rows[0]["data"] == {"n": 1} and a_rows[0]["emitted_at_ms"] == T0 + 30000, a_rows
    b_rows = seen(h, t, "evsub_b")
    assert len(b_rows) == 1, b_rows
    assert b_rows[0]["name"] == "chain.next" and b_rows[0]["source"] == "evsub_a", b_rows
    assert b_rows[0]["data"] == {"n": 2, "via": "evsub_a", "start_id": a_rows[0]["event_id"]}, \
        (a_rows, b_rows)
    assert b_rows[0]["emitted_at_ms"] == T0 + 30000, b_rows

    # an event handler that emits and then fails: its emission goes with it
    T1 = clock(h, t)["now_ms"]
    emit_ok(h, t, "chain.start", {"n": 10, "fail_first": True}, subscribers=1)
    settle(h, t)
    assert len(seen(h, t, "evsub_b")) == 1, "a failed delivery's emission was delivered"
    listing = events(h, t)
    assert listing["pending"] == 1 and listing["events"][0]["plugin"] == "evsub_a", listing
    assert listing["events"][0]["attempts"] == 1, listing
    a = advance(h, t, seconds=1)
    assert (a["tasks_run"], a["tasks_failed"]) == (2, 0), a
    b_rows = seen(h, t, "evsub_b")
    assert [r["data"]["n"] for r in b_rows] == [2, 11], b_rows
    assert b_rows[1]["emitted_at_ms"] == T1 + 1000, b_rows
    a_rows = seen(h, t, "evsub_a")
    assert [(r["data"]["n"], r["attempt"]) for r in a_rows] == [(1, 1), (10, 2)], a_rows
    assert events(h, t)["pending"] == 0


# ---- 4. tp.call

def call(h, fn, *args, **extra):
    body = {"fn": fn, "args": list(args)}
    body.update(extra)
    return h.post("/v1/calls/evcaller/call", body)


def caught(h, fn, *args, **extra):
    status, _, body = call(h, fn, *args, catch=True, **extra)
    assert status == 200 and body["ok"] is False, (fn, status, body)
    return body["err"]


def rows(h, plugin):
    status, _, body = h.get("/v1/calls/%s/rows" % plugin)
    assert status == 200, body
    return [r["note"] for r in body["rows"]]


def test_tp_call_runs_a_peer_export_and_rolls_back_only_a_failed_callee():
    h = host()
    status, _, body = call(h, "add", "hello", {"nested": [1, 2], "s": "x"})
    assert status == 200, body
    assert body["n"] == 2, body
    first, second = body["results"]
    assert first["note"] == "hello" and first["extra"] == {"nested": [1, 2], "s": "x"}, body
    assert first["list"] == [1, 2, 3] and isinstance(first["id"], int), body
    assert second == "second result", body
    assert rows(h, "evcallee") == ["hello"]

    status, _, body = h.get("/v1/calls/evcaller/copies")
    assert status == 200, body
    assert body == {"same_table": False, "mine_x": 1, "mine_added": False, "mine_nested_y": 2,
                    "back_x": 99, "back_added": True}, body

    # the callee raises; the caller catches it and answers 200: only the callee's write is gone
    err = caught(h, "add_then_raise", "doomed", note="caller kept")
    assert "callee exploded on doomed" in err["text"], err
    assert rows(h, "evcallee") == ["hello"]
    assert rows(h, "evcaller") == ["caller kept"]
    # not caught: the whole request is rolled back
    expect_error(call(h, "add_then_raise", "doomed2", note="caller lost"), 500, "internal_error")
    assert rows(h, "evcallee") == ["hello"] and rows(h, "evcaller") == ["caller kept"]

    # tp.fail in the callee reaches the client with its status and code
    body = expect_error(call(h, "add_then_fail", "tea", note="caller lost too"), 409, "sold_out")
    assert body["error"]["message"] == "no stock left for tea", body
    assert body["error"].get("details") == {"sku": "tea"}, body
    err = caught(h, "add_then_fail", "tea", note="caller kept 2")
    assert err["status"] == 409 and err["code"] == "sold_out", err
    assert err["message"] == "no stock left for tea", err
    assert rows(h, "evcallee") == ["hello"]
    assert rows(h, "evcaller") == ["caller kept", "caller kept 2"]

    # unknown plugin, a plugin of another tenant, unknown export: a clear error
    assert "no plugin 'nope' is enabled" in caught(h, "x", plugin="nope")["text"]
    assert "no plugin 'evemit' is enabled" in caught(h, "emit", plugin="evemit")["text"]
    assert "exports no function 'nosuch'" in caught(h, "nosuch")["text"]
    for fn, plugin, message in (("x", "nope", "no plugin 'nope' is enabled"),
                                ("nosuch", "evcallee", "exports no function 'nosuch'")):
        mark = h.log_mark()
        expect_error(call(h, fn, plugin=plugin), 500, "internal_error")
        e = h.wait_log(lambda e: e.get("msg") == "plugin failed" and e.get("tenant") == "calls",
                       timeout=10, start=mark, what="the failed call's log line")
        assert message in e["error"], (message, e)

    # a cycle is refused: evcaller -> evcallee.ping_back -> evcaller.ping
    err = caught(h, "ping_back", "cycle")
    assert "cannot cycle" in err["text"] and "evcaller" in err["text"], err
    assert rows(h, "evcallee") == ["hello"], "ping_back's write survived its failure"
    expect_error(call(h, "ping_back", "cycle2"), 500, "internal_error")
    # and so is a call to oneself
    err = caught(h, "ping", plugin="evcaller")
    assert "cannot cycle" in err["text"], err
    assert rows(h, "evcallee") == ["hello"]


# ---- 5. at least once across kill -9

def test_a_pending_delivery_survives_kill_9_and_is_delivered_once_after_restart():
    t = manual("crash", plugins={"evemit": {}, "evsub_b": {}})
    with Host(tenants=[t], limits=LIMITS, name="events-crash") as h:
        emit_ok(h, t, "order.once", {"n": 1, "what": "survive"}, subscribers=1)
        settle(h, t)                             # attempt 1 fails (and the clock is saved)
        c0 = clock(h, t)
        before = events(h, t)
        assert before["pending"] == 1, before
        e = before["events"][0]
        assert e["attempts"] == 1 and e["due_ms"] == c0["now_ms"] + 1000, (e, c0)
        assert "subscriber b fails its first attempt" in e["last_error"], e
        assert seen(h, t, "evsub_b") == []

        h.restart()                              # kill -9

        assert clock(h, t)["now_ms"] == c0["now_ms"]
        after = events(h, t)
        assert after["pending"] == 1 and after["events"][0]["id"] == e["id"], after
        assert after["events"][0]["attempts"] == 1, after
        assert seen(h, t, "evsub_b") == []
        a = advance(h, t, seconds=1)
        assert (a["tasks_run"], a["tasks_failed"]) == (1, 0), a
        rows_ = seen(h, t, "evsub_b")
        assert len(rows_) == 1, rows_
        assert rows_[0]["data"] == {"n": 1, "what": "survive"} and rows_[0]["attempt"] == 2, rows_
        assert rows_[0]["now_ms"] == c0["now_ms"] + 1000, rows_
        assert events(h, t)["pending"] == 0

        h.restart()                              # delivered once: not again after a crash
        a = advance(h, t, seconds=60)
        assert a["tasks_run"] == 0, a
        assert len(seen(h, t, "evsub_b")) == 1
        listing = events(h, t)
        assert listing["pending"] == 0 and listing["dead"] == 0, listing


def teardown():
    if H is not None:
        H.stop()


if __name__ == "__main__":
    run(globals())
