"""
test_scheduler.py - durable jobs: a job exists exactly when the transaction
that scheduled it commits, survives kill -9, fires in due order with the
clock at its due time, repeats, is retried with back-off and dead-lettered,
and can be retried or removed by an operator. Most tests run on tenants with
a manual clock, moved by POST /admin/{t}/clock/advance, so nothing waits.

The plugin is tests/e2e/plugins/schjobs: every job that succeeds writes one
row to schjobs_runs (name, payload tag, tp.now() inside the job, job.due...).
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Host, tenant, manual_tenant, tasks, clock, advance, expect_error,  # noqa: E402
                     metric_value, sanitized_build,
                     run)

HOUR = 3600
DAY = 24 * HOUR
SLOW = 3 if sanitized_build() else 1


def manual(tid, plugins=None):
    return manual_tenant(tid, plugins if plugins is not None else {"schjobs": {}})


T_ORDER = manual("order")
T_ROLLBACK = manual("rollback")
T_REPEAT = manual("repeat")
T_RETRY = manual("retry")
T_AUTHZ = manual("authz", plugins={"schjobs": {}, "probe": {}})
T_VALID = manual("valid")
T_WALL = tenant("wall", plugins={"schjobs": {}})   # the root clock is "wall" by default

H = None


def host():
    """One host for every test but the restart one: each test has its own tenant
    (its own database and clock). Retries are fast and give up after 3 attempts."""
    global H
    if H is None:
        H = Host(tenants=[T_ORDER, T_ROLLBACK, T_REPEAT, T_RETRY, T_AUTHZ, T_VALID, T_WALL],
                 limits={"job_max_attempts": 3, "job_retry_base_ms": 1000,
                         "job_retry_max_ms": 60000},
                 log_level="debug", name="sched").start()
    return H


# ---- helpers

def schedule(h, t, name, payload=None, when=None, **extra):
    body = {"name": name, "payload": payload if payload is not None else {}, "when": when}
    body.update(extra)
    return h.post("/v1/%s/schjobs/schedule" % t["id"], body)


def schedule_ok(h, t, name, payload=None, when=None):
    status, _, body = schedule(h, t, name, payload, when)
    assert status == 200, (status, body)
    return body


def runs(h, t):
    status, _, body = h.get("/v1/%s/schjobs/runs" % t["id"])
    assert status == 200, (status, body)
    return body["runs"]


def jobs(h, t, state="pending"):
    return tasks(h, t, "jobs", state)


def set_flag(h, t, name, value):
    status, _, body = h.post("/v1/%s/schjobs/flag/%s/%d" % (t["id"], name, value))
    assert status == 200, (status, body)


def cancel(h, t, **what):
    status, _, body = h.post("/v1/%s/schjobs/cancel" % t["id"], what)
    assert status == 200, (status, body)
    return body["cancelled"]


def plugin_failure(h, mark, tid, what):
    """The "plugin failed" log line of the request that just failed."""
    return h.wait_log(lambda e: e.get("msg") == "plugin failed" and e.get("tenant") == tid,
                      timeout=10, start=mark, what=what)


# ---- 1. durable across kill -9

def test_a_delayed_job_survives_kill_9_and_fires_once_after_restart():
    t = manual("dur")
    with Host(tenants=[t], name="sched-dur") as h:
        c0 = clock(h, t)
        assert c0["clock"] == "manual", c0
        s = schedule_ok(h, t, "record", {"tag": "survivor"}, {"after": HOUR})
        assert s["now_ms"] == c0["now_ms"], (s, c0)      # tp.now_ms() is the tenant's clock
        due_ms = c0["now_ms"] + HOUR * 1000
        before = jobs(h, t)
        assert before["pending"] == 1 and before["dead"] == 0, before
        assert before["jobs"][0]["id"] == s["id"] and before["jobs"][0]["due_ms"] == due_ms, before

        h.restart()                                        # kill -9, same data dir

        after = jobs(h, t)
        assert after["pending"] == 1 and after["dead"] == 0, after
        job = after["jobs"][0]
        assert job["id"] == s["id"] and job["name"] == "record" and job["plugin"] == "schjobs", job
        assert job["due_ms"] == due_ms and job["payload"] == {"tag": "survivor"}, job
        assert job["attempts"] == 0 and job["kind"] == "job", job
        assert runs(h, t) == [], "the job ran before its time"
        # (nothing is due yet whatever the clock did across the restart)
        a = advance(h, t, to=due_ms // 1000 + 1)
        assert a["tasks_run"] == 1 and a["tasks_failed"] == 0, a
        rows = runs(h, t)
        assert len(rows) == 1, rows
        r = rows[0]
        assert (r["job_id"], r["name"], r["tag"], r["attempt"]) == (s["id"], "record", "survivor", 1), r
        assert r["now_ms"] == due_ms and r["due_ms"] == due_ms, (r, due_ms)
        assert r["now"] == due_ms // 1000 == r["due"], r
        assert jobs(h, t)["pending"] == 0

        a = advance(h, t, seconds=2 * HOUR)
        assert a["tasks_run"] == 0 and a["tasks_failed"] == 0, a
        assert runs(h, t) == rows

        h.restart()                                        # and not again after a crash
        a = advance(h, t, seconds=HOUR)
        assert a["tasks_run"] == 0, a
        assert runs(h, t) == rows
        assert jobs(h, t)["pending"] == 0


def test_the_manual_clock_is_saved_and_survives_kill_9():
    """The spec: a manual clock starts at wall time on first start and is saved;
    it survives restarts. Checked both before and after any advance."""
    t = manual("clk")
    with Host(tenants=[t], name="sched-clock") as h:
        c0 = clock(h, t)
        time.sleep(0.05)
        h.restart()
        c1 = clock(h, t)
        assert c1["now_ms"] == c0["now_ms"], \
            "the manual clock moved across a restart without being advanced: %r -> %r" % (c0, c1)
        a = advance(h, t, seconds=DAY)
        assert a["now_ms"] == c1["now_ms"] + DAY * 1000, a
        h.restart()
        c2 = clock(h, t)
        assert c2["now_ms"] == a["now_ms"], (a, c2)


# ---- 2. a job scheduled by a failed transaction never exists

def test_a_job_scheduled_by_a_failing_handler_never_exists():
    h, t = host(), T_ROLLBACK
    expect_error(schedule(h, t, "record", {"tag": "raised"}, {"after": 60}, then="error"),
                 500, "internal_error")
    body = expect_error(schedule(h, t, "record", {"tag": "failed"}, {"after": 60}, then="fail"),
                        409, "changed_my_mind")
    assert body["error"]["message"] == "the handler fails after scheduling", body
    status, _, body = h.post("/v1/rollback/schjobs/schedule", {
        "jobs": [{"name": "record", "payload": {"tag": "many-%d" % i}, "when": {"after": 10 * i}}
                 for i in range(1, 4)] + [{"name": "tick", "payload": {"tag": "every"},
                                            "when": {"every": 60, "key": "k"}}],
        "then": "error"})
    assert status == 500, (status, body)
    for state in ("pending", "dead"):
        listing = jobs(h, t, state)
        assert listing["pending"] == 0 and listing["dead"] == 0 and listing["jobs"] == [], listing
    a = advance(h, t, seconds=3 * DAY)
    assert a["tasks_run"] == 0 and a["tasks_failed"] == 0, a
    assert runs(h, t) == []
    # the control: the same request without the failure does schedule
    s = schedule_ok(h, t, "record", {"tag": "kept"}, {"after": 60})
    assert [j["id"] for j in jobs(h, t)["jobs"]] == [s["id"]]
    a = advance(h, t, seconds=60)
    assert a["tasks_run"] == 1, a
    assert [r["tag"] for r in runs(h, t)] == ["kept"]


# ---- 3. advancing the test clock fires due jobs in order, at their due time

def test_advancing_the_clock_runs_due_jobs_in_due_order_at_their_due_time():
    h, t = host(), T_ORDER
    delays = {"d12h": 12 * HOUR, "d1s": 1, "d25h": 25 * HOUR, "d24h": DAY, "d30m": 1800,
              "d5h": 5 * HOUR, "d23h": 23 * HOUR}
    shuffled = ["d12h", "d1s", "d25h", "d24h", "d30m", "d5h", "d23h"]
    c0 = clock(h, t)
    status, _, s = h.post("/v1/order/schjobs/schedule", {
        "jobs": [{"name": "record", "payload": {"tag": n}, "when": {"after": delays[n]}}
                 for n in shuffled]})
    assert status == 200, s
    assert s["now_ms"] == c0["now_ms"] and s["now"] == c0["now"], (s, c0)
    assert len(set(s["ids"])) == 7, s
    assert jobs(h, t)["pending"] == 7

    a = advance(h, t, seconds=DAY)
    assert a["tasks_run"] == 6 and a["tasks_failed"] == 0, a
    assert a["now_ms"] == c0["now_ms"] + DAY * 1000, (a, c0)
    assert a["now"] == c0["now"] + DAY, (a, c0)
    c1 = clock(h, t)
    assert c1["now_ms"] == c0["now_ms"] + DAY * 1000, (c0, c1)

    want = sorted((n for n in shuffled if delays[n] <= DAY), key=lambda n: delays[n])
    rows = runs(h, t)
    assert [r["tag"] for r in rows] == want, rows
    for r in rows:
        d = delays[r["tag"]]
        assert r["now"] == s["now"] + d, (r, d)            # tp.now() is the due second
        assert r["now_ms"] == s["now_ms"] + d * 1000 == r["due_ms"], (r, d)
        assert r["due"] == s["now"] + d, r
        assert r["attempt"] == 1, r
    left = jobs(h, t)
    assert left["pending"] == 1, left
    j = left["jobs"][0]
    assert j["payload"] == {"tag": "d25h"}, j
    assert j["due_ms"] == s["now_ms"] + 25 * HOUR * 1000 and j["attempts"] == 0, j


# ---- 4. repeating jobs, cancel, keys

def test_a_repeating_job_runs_every_period_until_cancelled_and_keys_replace():
    h, t = host(), T_REPEAT
    s = schedule_ok(h, t, "tick", {"tag": "hourly"}, {"every": HOUR, "key": "hourly"})
    j = jobs(h, t)["jobs"]
    assert len(j) == 1 and j[0]["id"] == s["id"] and j[0]["every_s"] == HOUR, j
    assert j[0]["key"] == "hourly" and j[0]["due_ms"] == s["now_ms"] + HOUR * 1000, j

    a = advance(h, t, seconds=5 * HOUR)
    assert a["tasks_run"] == 5 and a["tasks_failed"] == 0, a
    rows = runs(h, t)
    assert [r["now"] for r in rows] == [s["now"] + HOUR * k for k in range(1, 6)], rows
    assert all(r["job_id"] == s["id"] and r["key"] == "hourly" and r["name"] == "tick"
               and r["attempt"] == 1 for r in rows), rows
    j = jobs(h, t)["jobs"]
    assert len(j) == 1 and j[0]["id"] == s["id"], j
    assert j[0]["due_ms"] == s["now_ms"] + 6 * HOUR * 1000, j

    assert cancel(h, t, key="hourly") is True
    assert jobs(h, t)["pending"] == 0
    assert cancel(h, t, key="hourly") is False
    a = advance(h, t, seconds=5 * HOUR)
    assert a["tasks_run"] == 0, a
    assert len(runs(h, t)) == 5

    # the same key twice: the second replaces the first
    first = schedule_ok(h, t, "record", {"tag": "first"}, {"after": 100, "key": "once"})
    second = schedule_ok(h, t, "record", {"tag": "second"}, {"after": 200, "key": "once"})
    j = jobs(h, t)["jobs"]
    assert len(j) == 1, j
    assert j[0]["id"] == second["id"], (j, first, second)
    assert j[0]["payload"] == {"tag": "second"} and j[0]["due_ms"] == second["now_ms"] + 200000, j
    # cancel by id; a plain number as `when` means seconds from now
    byid = schedule_ok(h, t, "record", {"tag": "byid"}, 50)
    j = {x["id"]: x for x in jobs(h, t)["jobs"]}
    assert set(j) == {second["id"], byid["id"]}, j
    assert j[byid["id"]]["due_ms"] == byid["now_ms"] + 50000, j
    assert cancel(h, t, id=byid["id"]) is True
    assert cancel(h, t, id=byid["id"]) is False
    a = advance(h, t, seconds=300)
    assert a["tasks_run"] == 1, a
    rows = runs(h, t)
    assert [r["tag"] for r in rows[5:]] == ["second"], rows
    assert rows[5]["key"] == "once" and rows[5]["now"] == second["now"] + 200, rows[5]
    assert jobs(h, t)["pending"] == 0


def test_job_ids_are_not_reused_so_a_stale_id_cancels_nothing():
    """A plugin may keep the id tp.jobs.schedule returned and cancel by it later.
    Once that job is gone (replaced by key, or run), its id must not name
    another job: cancelling by the stale id must leave the new job alone."""
    t = manual("ids")
    with Host(tenants=[t], name="sched-ids") as h:
        first = schedule_ok(h, t, "record", {"tag": "first"}, {"after": 100, "key": "once"})
        second = schedule_ok(h, t, "record", {"tag": "second"}, {"after": 200, "key": "once"})
        assert second["id"] != first["id"], \
            "the replacing job got the replaced job's id %d" % first["id"]
        assert cancel(h, t, id=first["id"]) is False, "the stale id cancelled the new job"
        assert [x["id"] for x in jobs(h, t)["jobs"]] == [second["id"]]
        a = advance(h, t, seconds=200)
        assert a["tasks_run"] == 1, a
        # the job ran and is gone; the next one must not take its id either
        third = schedule_ok(h, t, "record", {"tag": "third"}, {"after": 100})
        assert third["id"] not in (first["id"], second["id"]), (first, second, third)
        assert cancel(h, t, id=second["id"]) is False, "the id of a job that ran cancelled another"
        assert [x["id"] for x in jobs(h, t)["jobs"]] == [third["id"]]


# ---- 5. retries with back-off, dead letters, operator retry and delete

def test_a_failing_job_backs_off_is_dead_lettered_and_can_be_retried_or_deleted():
    h, t = host(), T_RETRY
    dead0 = metric_value(h.metrics(), "tidepool_tasks_total", {"kind": "job", "result": "dead"})
    set_flag(h, t, "flaky", 1)
    s = schedule_ok(h, t, "flaky", {"tag": "f1"}, {"after": 10})
    n0 = s["now_ms"]

    a = advance(h, t, seconds=10)                       # attempt 1 at +10 s
    assert (a["tasks_run"], a["tasks_failed"]) == (1, 1), a
    j = jobs(h, t)["jobs"]
    assert len(j) == 1 and j[0]["attempts"] == 1, j
    assert "flaky job says no to f1" in j[0]["last_error"], j
    assert j[0]["due_ms"] == n0 + 10000 + 1000, (j, n0)  # retry after base (1 s)
    a = advance(h, t, ms=999)
    assert a["tasks_run"] == 0, a
    a = advance(h, t, ms=1)                              # attempt 2 at +11 s
    assert (a["tasks_run"], a["tasks_failed"]) == (1, 1), a
    j = jobs(h, t)["jobs"]
    assert j[0]["attempts"] == 2 and j[0]["due_ms"] == n0 + 11000 + 2000, (j, n0)  # 2 s
    a = advance(h, t, seconds=2)                         # attempt 3 at +13 s: the last
    assert (a["tasks_run"], a["tasks_failed"]) == (1, 1), a

    pending, dead = jobs(h, t), jobs(h, t, "dead")
    assert pending["pending"] == 0 and pending["dead"] == 1 and pending["jobs"] == [], pending
    assert len(dead["jobs"]) == 1, dead
    d = dead["jobs"][0]
    assert d["id"] == s["id"] and d["name"] == "flaky" and d["plugin"] == "schjobs", d
    assert d["attempts"] == 3 and d["max_attempts"] == 3, d
    assert "flaky job says no to f1" in d["last_error"], d
    assert d["dead_ms"] == n0 + 13000, (d, n0)
    assert runs(h, t) == []
    dead1 = metric_value(h.metrics(), "tidepool_tasks_total", {"kind": "job", "result": "dead"})
    assert dead1 == dead0 + 1, (dead0, dead1)
    h.wait_log(lambda e: e.get("msg") == "task failed" and e.get("tenant") == "retry"
               and e.get("outcome") == "dead-lettered" and e.get("id") == s["id"],
               timeout=10, what="the dead-letter log line")

    a = advance(h, t, seconds=DAY)                       # a dead job stays dead
    assert a["tasks_run"] == 0, a
    assert jobs(h, t, "dead")["dead"] == 1

    expect_error(h.admin("POST", "/jobs/%d/retry" % (s["id"] + 1000), t), 404,
                 "dead_letter_not_found")
    set_flag(h, t, "flaky", 0)                           # the cause is fixed
    status, _, body = h.admin("POST", "/jobs/%d/retry" % s["id"], t)
    assert status == 200 and body == {"id": s["id"], "state": "pending"}, (status, body)
    advance(h, t, seconds=0)                             # runs what is due now (if not yet run)
    rows = runs(h, t)
    assert len(rows) == 1, rows
    assert (rows[0]["job_id"], rows[0]["tag"], rows[0]["attempt"]) == (s["id"], "f1", 1), rows
    listing = jobs(h, t)
    assert listing["pending"] == 0 and listing["dead"] == 0, listing
    expect_error(h.admin("POST", "/jobs/%d/retry" % s["id"], t), 404, "dead_letter_not_found")

    # DELETE a pending job: it never runs
    doomed = schedule_ok(h, t, "record", {"tag": "doomed"}, {"after": 60})
    status, _, body = h.admin("DELETE", "/jobs/%d" % doomed["id"], t)
    assert status == 200 and body == {"id": doomed["id"], "state": "removed"}, (status, body)
    assert jobs(h, t)["pending"] == 0
    expect_error(h.admin("DELETE", "/jobs/%d" % doomed["id"], t), 404, "job_not_found")
    a = advance(h, t, seconds=120)
    assert a["tasks_run"] == 0, a
    # DELETE a dead job (max_attempts = 1: dead at the first failure)
    set_flag(h, t, "flaky", 1)
    once = schedule_ok(h, t, "flaky", {"tag": "f2"}, {"after": 1, "max_attempts": 1})
    a = advance(h, t, seconds=1)
    assert (a["tasks_run"], a["tasks_failed"]) == (1, 1), a
    d = jobs(h, t, "dead")["jobs"]
    assert [x["id"] for x in d] == [once["id"]] and d[0]["attempts"] == 1, d
    assert d[0]["max_attempts"] == 1, d
    status, _, body = h.admin("DELETE", "/jobs/%d" % once["id"], t)
    assert status == 200, (status, body)
    listing = jobs(h, t, "dead")
    assert listing["dead"] == 0 and listing["pending"] == 0, listing
    expect_error(h.admin("POST", "/jobs/%d/retry" % once["id"], t), 404, "dead_letter_not_found")
    assert [r["tag"] for r in runs(h, t)] == ["f1"]


# ---- 6. the wall clock: a job fires by itself

def test_a_job_on_a_wall_clock_tenant_fires_by_itself():
    h, t = host(), T_WALL
    mark = h.log_mark()
    t0 = time.monotonic()
    s = schedule_ok(h, t, "record", {"tag": "wall"}, {"after": 1})
    # no request until the job has run: the host's own timer must fire it
    line = h.wait_log(lambda e: e.get("msg") == "task done" and e.get("tenant") == "wall"
                      and e.get("id") == s["id"], timeout=2.5 * SLOW, start=mark,
                      what="the wall-clock job to run")
    waited = time.monotonic() - t0
    rows = runs(h, t)
    assert len(rows) == 1 and rows[0]["tag"] == "wall", rows
    r = rows[0]
    assert r["due_ms"] == s["now_ms"] + 1000, (r, s)
    assert r["now_ms"] >= r["due_ms"], "the job ran %d ms early" % (r["due_ms"] - r["now_ms"])
    text = h.metrics()
    count = metric_value(text, "tidepool_task_lateness_seconds_count", {"kind": "job"})
    total = metric_value(text, "tidepool_task_lateness_seconds_sum", {"kind": "job"})
    print("     wall-clock job: ran %.3fs after scheduling; lateness %d ms (job), log late_ms "
          "%s; metric sum %.6fs over %d" % (waited, r["now_ms"] - r["due_ms"],
                                           line.get("late_ms"), total or 0, count or 0))
    # only wall-clock tenants observe lateness, and this is the only one
    assert count == 1, text
    assert 0 <= total < 1.5 * SLOW, total
    assert jobs(h, t)["pending"] == 0


# ---- 7. the SQL authorizer holds in handlers and jobs

def test_a_plugin_cannot_touch_another_plugins_tables():
    h, t = host(), T_AUTHZ
    assert h.post("/v1/authz/probe/items", {"note": "probe's own"})[0] == 201
    status, _, body = h.get("/v1/authz/schjobs/peek-other")
    assert status == 200 and body["ok"] is False, body
    assert "plugin 'schjobs' may only use its own tables" in body["err"], body
    mark = h.log_mark()
    expect_error(h.get("/v1/authz/schjobs/peek-other-raw"), 500, "internal_error")
    e = plugin_failure(h, mark, "authz", "the refused query's log line")
    assert e["plugin"] == "schjobs" and "may only use its own tables" in e["error"], e
    # a job has the same rights as its plugin's handlers
    s = schedule_ok(h, t, "peek", {}, {"after": 1})
    a = advance(h, t, seconds=1)
    assert a["tasks_run"] == 1 and a["tasks_failed"] == 0, a
    rows = runs(h, t)
    assert [r["job_id"] for r in rows] == [s["id"]], rows
    assert "plugin 'schjobs' may only use its own tables" in rows[0]["tag"], rows


# ---- 8. validation

def test_invalid_schedules_fail_the_request_and_schedule_nothing():
    h, t = host(), T_VALID
    now = clock(h, t)["now"]
    cases = [
        ("nosuch", {"after": 10}, "has no job 'nosuch'"),
        ("record", {"at": now + 10, "after": 10}, "give when.at or when.after, not both"),
        ("record", {"after": -5}, "when.after must be a number of seconds >= 0"),
        ("record", {"every": 0}, "when.every must be a number of seconds >= 1"),
        ("record", {"key": "k"}, "when needs at (epoch seconds), after (seconds) or every"),
    ]
    wrong_messages = []
    for name, when, message in cases:
        mark = h.log_mark()
        expect_error(schedule(h, t, name, {"tag": "bad"}, when), 500, "internal_error")
        e = plugin_failure(h, mark, "valid", "the failure of %s %r" % (name, when))
        if message not in e["error"]:
            wrong_messages.append((name, when, message, e["error"].split("\n")[0]))
        assert jobs(h, t)["pending"] == 0, (name, when)
    # a valid job scheduled before an invalid one in the same request is rolled back
    status, _, body = h.post("/v1/valid/schjobs/schedule", {"jobs": [
        {"name": "record", "payload": {"tag": "good"}, "when": {"after": 10}},
        {"name": "nosuch", "payload": {}, "when": {"after": 10}}]})
    assert status == 500, (status, body)
    listing = jobs(h, t)
    assert listing["pending"] == 0 and listing["dead"] == 0 and listing["jobs"] == [], listing
    a = advance(h, t, seconds=DAY)
    assert a["tasks_run"] == 0, a
    assert runs(h, t) == []
    assert not wrong_messages, "errors without the expected message: %r" % (wrong_messages,)


def test_clock_advance_and_listing_reject_bad_requests():
    h = host()
    body = expect_error(h.admin("POST", "/clock/advance", T_WALL, {"seconds": 10}), 409,
                        "clock_not_manual")
    assert clock(h, T_WALL)["clock"] == "wall", body
    t = T_VALID
    c0 = clock(h, t)
    expect_error(h.admin("POST", "/clock/advance", t, "not json"), 400, "invalid_json")
    for bad in ({}, {"seconds": -1}, {"seconds": 1.5}, {"seconds": "10"}, {"ms": -1},
                {"seconds": 1, "ms": 1}, {"to": "tomorrow"}, {"minutes": 5}, {"seconds": None},
                {"seconds": True}):
        st, _, b = h.admin("POST", "/clock/advance", t, bad)
        assert st == 400, (bad, st, b)
        assert b["error"]["code"] == "invalid_field", (bad, b)
    for bad in ([], [10], "10"):
        st, _, b = h.admin("POST", "/clock/advance", t, bad if bad != "10" else b"10",
                           headers={"Content-Type": "application/json"})
        assert st == 400, (bad, st, b)
    expect_error(h.admin("POST", "/clock/advance", t, {"to": 0}), 409, "clock_backwards")
    expect_error(h.admin("POST", "/clock/advance", t, {"to": c0["now"] - 1}), 409,
                 "clock_backwards")
    assert clock(h, t)["now_ms"] == c0["now_ms"], "a refused advance moved the clock"
    expect_error(h.request("POST", "/admin/valid/clock/advance", {"seconds": 1}), 401,
                 "api_key_required")
    expect_error(h.request("POST", "/admin/valid/clock/advance", {"seconds": 1},
                           headers={"X-Api-Key": "apikey-for-wall-0123456789"}), 403,
                 "invalid_api_key")
    assert clock(h, t)["now_ms"] == c0["now_ms"]
    expect_error(h.admin("GET", "/jobs?state=bogus", t), 400, "invalid_query")
    expect_error(h.admin("GET", "/jobs?limit=0", t), 400, "invalid_query")
    expect_error(h.admin("GET", "/events?state=later", t), 400, "invalid_query")


def teardown():
    if H is not None:
        H.stop()


if __name__ == "__main__":
    run(globals())
