"""
test_stall.py - nothing a plugin or a campaign script runs may stall the host.

Lua counts its own instructions; these cases make C work for a long time with
few of them: backtracking patterns over long subjects, SQL cross joins and
endless recursive queries, rep/concat/sort/format/utf8/upper in loops, JSON and
hashing of large values, and comparisons of long strings (which hide inside
one instruction). Each must end within its plugin's budget (or, where nothing
counts, the deadline) with a JSON 500 and everything rolled back, while
another brand on the same host is answered with p99 < 100 ms all the while.
Also: a killed plugin's Lua state keeps nothing of the killed invocation;
tp.call copies and tp.call_view's views are checked against the receiver's
cap; a view's lookups are charged by the bytes they read; loading, migrations
and campaign scripts are bounded in time too.
"""
import http.client
import json
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Host, tenant, manual_tenant, add_sku, advance,  # noqa: E402
                     metric_value, http_request_bytes, run)

BUDGET = 75000             # the stall plugin's instructions per invocation (its charged cases end
                           # in about a fifth of DEADLINE_MS under ASan, so that two tests at
                           # once on the CI machine do not reach the deadline first)
DEADLINE_MS = 50           # the stall plugin's wall clock per invocation (plugin_limits.deadline_ms)
P99_S = 0.100              # other brands' answers while a case runs
ENDS_S = 1.0               # an offending request's own answer, even under ASan

# The timing host: a brand whose plugin misbehaves, and a brand beside it.
BAD = tenant("bad", plugins={"catalog": {}, "stall": {}, "stallcallee": {}})
BAD["plugin_limits"] = {"stall": {"instructions": BUDGET, "memory_bytes": 16 << 20,
                                  "deadline_ms": DEADLINE_MS}}
GOOD = tenant("good", plugins={"catalog": {}})
# The state host: kills and copies whose point is what survives, not how fast
# (allocating tens of MB is slow under AddressSanitizer).
CAPS = tenant("caps", plugins={"stall": {}, "stallcallee": {}})
CAPS["plugin_limits"] = {"stall": {"memory_bytes": 16 << 20},
                         "stallcallee": {"memory_bytes": 48 << 20}}
CAPS_DEADLINE_MS = 1000   # 300 was passed once by a 20 MB call_big on CI's loaded machine, right
                          # after the plugin's state was loaded afresh (a kill in the test before)

H = None
H_CAPS = None


def host():
    global H
    if H is None:
        H = Host(tenants=[BAD, GOOD], name="stall").start()  # the stall plugin's own deadline
        failed = [e for e in H.logs() if e.get("msg") == "plugin not enabled"]
        assert not failed, failed
    return H


def caps_host():
    global H_CAPS
    if H_CAPS is None:
        H_CAPS = Host(tenants=[CAPS], limits={"invocation_ms": CAPS_DEADLINE_MS, "idle_timeout_ms": 100},
                      name="stall-caps").start()
    return H_CAPS


class Prober:
    """Asks another brand for its catalog over and over while a case runs,
    recording how long each answer took."""

    def __init__(self, h, path="/v1/good/catalog/products"):
        self.h, self.path = h, path
        self.times, self.errors = [], []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self.done.is_set():
            t0 = time.monotonic()
            try:
                status, _, body = self.h.get(self.path, timeout=5)
                if status != 200:
                    self.errors.append((status, body))
            except OSError as e:
                self.errors.append(repr(e))
            self.times.append(time.monotonic() - t0)

    def __enter__(self):
        self.thread.start()
        time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join(10)

    def p99(self):
        t = sorted(self.times)
        return t[min(len(t) - 1, int(len(t) * 0.99))] if t else None


def notes():
    status, _, body = host().get("/v1/bad/stall/notes")
    assert status == 200, body
    return body["count"]


def offend(case, code, query="", times=2, words=()):
    """Sends the case `times` times while the prober runs; each must end with
    a JSON 500 of code within ENDS_S and roll back its write. Returns the
    slowest answer and the prober's p99."""
    h = host()
    before = notes()
    slowest = 0
    with Prober(h) as p:
        for _ in range(times):
            t0 = time.monotonic()
            status, _, body = h.post("/v1/bad/stall/run/%s%s" % (case, query), timeout=30)
            took = time.monotonic() - t0
            slowest = max(slowest, took)
            assert status == 500 and isinstance(body, dict), (case, query, status, body)
            assert body["error"]["code"] == code, (case, query, body)
            for w in words:
                assert w in body["error"]["message"], (case, w, body)
            assert took < ENDS_S, "%s%s took %.3fs" % (case, query, took)
            time.sleep(0.01)  # one offender at a time: the next waits its turn like anyone
    assert notes() == before, "%s: its write was not rolled back" % case
    assert not p.errors, (case, p.errors[:3])
    assert len(p.times) >= 3, (case, p.times)
    assert p.p99() < P99_S, "%s%s: the other brand's p99 was %.1f ms (%d answers, max %.1f ms)" % (
        case, query, p.p99() * 1000, len(p.times), max(p.times) * 1000)
    return slowest, p.p99()


def test_ordinary_patterns_still_match():
    h = host()
    status, _, body = h.post("/v1/bad/stall/run/pattern?n=40&k=2")
    assert status == 200 and body == {"r": "nil"}, body
    status, _, body = h.post("/v1/bad/stall/run/pattern?n=50&k=1&fn=gsub")
    assert status == 200 and body == {"r": 0}, body


def test_patterns_with_one_two_and_three_variable_items_are_bounded():
    """The matcher charges every step: over 10 KB to 4 MB of subject, with
    one, two or three variable-length items, each function ends at the budget."""
    worst = (0, 0)
    for n in (10000, 100000, 1 << 20, 4 << 20):
        for k in (1, 2, 3):
            for fn in ("find", "match", "gmatch", "gsub"):
                took, p99 = offend("pattern", "budget_exceeded", "?n=%d&k=%d&fn=%s" % (n, k, fn),
                                   times=1, words=("stall", "%d instructions" % BUDGET))
                worst = max(worst, (took, p99))
    print("     patterns: slowest kill %.1f ms, the other brand's worst p99 %.1f ms"
          % (worst[0] * 1000, worst[1] * 1000))


def test_a_pcall_cannot_catch_a_counted_pattern_or_query():
    offend("pcall_pattern", "budget_exceeded")
    offend("pcall_join", "budget_exceeded")


def test_sql_is_charged_and_interrupted():
    for case in ("join", "cte"):
        took, p99 = offend(case, "budget_exceeded", words=("stall",))
        print("     %s: killed in %.1f ms, the other brand's p99 %.1f ms" % (case, took * 1000,
                                                                          p99 * 1000))


def test_a_write_over_budget_ends_its_plugin_and_spares_its_batch():
    """A write that runs past the budget finishes and its plugin ends after it:
    interrupting it would make SQLite roll back the whole transaction, the
    batch of every request of the loop iteration. Two pipelined requests land
    in one iteration: the ordinary one keeps its answer and its write."""
    h = caps_host()
    before = h.get("/v1/caps/stall/notes")[2]["count"]
    data = (http_request_bytes("POST", "/v1/caps/stall/run/ok", body=b"{}",
                               headers={"Content-Type": "application/json"}) +
            http_request_bytes("POST", "/v1/caps/stall/run/write_over", body=b"{}",
                               headers={"Content-Type": "application/json"}))
    conn = h.raw()
    conn.send(data)
    first, second = conn.read_response(), conn.read_response()
    conn.close()
    assert first.status == 200, (first.status, first.body)
    assert second.status == 500 and second.json()["error"]["code"] == "budget_exceeded", \
        (second.status, second.body)
    assert h.get("/v1/caps/stall/notes")[2]["count"] == before + 1   # ok's note, not write_over's


def test_sql_functions_that_compare_n_by_m_are_charged():
    """like, glob, instr, replace and trim over a 1 MB subject and a 10 KB
    pattern compare 10^10 times inside one SQLite step, where neither the
    progress handler nor sqlite3_interrupt reaches: charged before they run."""
    for fn in ("like", "glob", "instr", "replace", "trim"):
        took, p99 = offend("sql_fn", "budget_exceeded", "?fn=" + fn, times=1)
        print("     %-7s refused in %.1f ms" % (fn, took * 1000))
    status, _, body = host().post("/v1/bad/stall/run/sql_ok")
    assert status == 200, body
    assert {k: body[k] for k in ("l", "g", "e", "i", "r", "t", "lt", "rt")} == {
        "l": 1, "g": 1, "e": 1, "i": 7, "r": "black tea", "t": "tea", "lt": "tea",
        "rt": "tea"}, body
    assert "ESCAPE expression must be a single character" in body["escape_error"], body


def test_c_library_work_is_charged():
    for case in ("concat", "rep", "sort", "format", "utf8", "upper", "json", "crypto",
                 "view_index", "view_len", "view_pairs", "view_tostring", "view_decode"):
        took, p99 = offend(case, "budget_exceeded")
        print("     %-13s killed in %.1f ms, the other brand's p99 %.1f ms" % (case, took * 1000,
                                                                              p99 * 1000))


def test_the_deadline_ends_what_nothing_counts():
    """a == b over two 4 MiB strings compares inside one instruction: only the
    watchdog can stop it, in the plugin's main thread or in a coroutine. So
    with the JSON of a table shared 2^40 times over, written by one C call (as
    the answer, an error's details or tp.json.encode's text): it ran to the
    encoder's 32 MiB, 1.3 s under ASan, before the deadline stopped it."""
    for case in ("compare", "compare_coroutine", "shared_answer", "shared_details", "shared_encode"):
        took, p99 = offend(case, "deadline_exceeded",
                           words=("stall", "deadline of %d ms" % DEADLINE_MS))
        print("     %s: ended in %.1f ms, the other brand's p99 %.1f ms" % (case, took * 1000,
                                                                         p99 * 1000))
    text = host().metrics()
    # the answer's and the details' JSON is written after the handler returned:
    # nothing of the plugin's state is killed there, so only 3 cases x 2 count
    assert metric_value(text, "tidepool_limit_kills_total", {"limit": "deadline_exceeded"}) >= 6


def test_a_long_answer_leaves_its_keep_alive_connection_open():
    """The idle timeout (100 ms here) starts when the answer is out, not when
    the loop last polled: after a handler that ran 300 ms, the client's next
    request on the same connection is answered, and only then, once idle,
    is the connection closed."""
    h = caps_host()
    c = http.client.HTTPConnection("127.0.0.1", h.port, timeout=10)
    c.request("POST", "/v1/caps/stall/run/compare")
    r = c.getresponse()
    body = json.loads(r.read())
    assert r.status == 500 and body["error"]["code"] == "deadline_exceeded", (r.status, body)
    c.request("POST", "/v1/caps/stall/run/ok")
    r = c.getresponse()
    assert r.status == 200, (r.status, r.read())
    r.read()
    time.sleep(0.5)
    assert c.sock.recv(1) == b"", "the idle connection was not closed"
    c.close()


def leak(kill=None):
    status, _, body = caps_host().post("/v1/caps/stall/leak" + ("?kill=" + kill if kill else ""))
    return status, body


def test_a_killed_invocation_leaves_nothing_in_the_state():
    h = caps_host()
    status, body = leak()
    assert status == 200, body
    status, body = leak()
    assert status == 200 and body["leaked"] >= 2, body
    for kill, code in (("budget", "budget_exceeded"), ("memory", "memory_exceeded"),
                       ("deadline", "deadline_exceeded")):
        status, body = leak(kill)
        assert status == 500 and body["error"]["code"] == code, (kill, body)
        assert "loaded afresh" in body["error"]["message"], body
        # the module's counter and hoard start again from a fresh load
        status, body = leak()
        assert status == 200 and body == {"leaked": 1, "hoard": 0}, (kill, body)
    e = h.wait_log(lambda e: e.get("msg") == "plugin state reset after a limit"
                   and e.get("plugin") == "stall", timeout=5)
    assert e["tenant"] == "caps", e
    text = h.metrics()
    assert metric_value(text, "tidepool_plugin_resets_total", {"result": "ok"}) >= 3, text


def test_tp_call_copies_are_checked_against_the_receivers_cap():
    h = caps_host()
    # results of 20 MB for a caller capped at 16 MiB: refused before the copy
    status, _, body = h.post("/v1/caps/stall/run/call_big?n=%d" % (20 << 20))
    assert status == 500 and body["error"]["code"] == "memory_exceeded", body
    assert "stall" in body["error"]["message"], body
    # the callee kept nothing of it: building 20 MB more (40 MB while the
    # buffer doubles) fits under its 48 MiB cap only if the first 20 MB are free
    status, _, body = h.post("/v1/caps/stallcallee/alloc?n=%d" % (20 << 20))
    assert status == 200 and body == {"len": 20 << 20}, body
    # arguments bigger than the callee's cap are refused, and the caller may go on
    status, _, body = h.post("/v1/caps/stall/run/call_send?n=%d" % (64 << 20))
    assert status == 200 and body["ok"] is False, body
    assert "do not fit under plugin 'stallcallee''s memory cap" in body["err"], body
    # a tp.fail's details are copied the same way: the caller cannot catch its way past
    status, _, body = h.post("/v1/caps/stall/run/call_fail_big?n=%d" % (20 << 20))
    assert status == 500 and body["error"]["code"] == "memory_exceeded", body
    status, _, body = h.post("/v1/caps/stallcallee/alloc?n=%d" % (20 << 20))  # nothing left over
    assert status == 200 and body == {"len": 20 << 20}, body
    # small calls work
    status, _, body = h.post("/v1/caps/stall/run/call_big?n=1024")
    assert status == 200 and body == {"len": 1024}, body
    # a JSON view (tp.call_view) is the caller's memory too: 20 MB of it is refused
    status, _, body = h.post("/v1/caps/stall/run/view_big?n=%d" % (20 << 20))
    assert status == 500 and body["error"]["code"] == "memory_exceeded", body
    assert "stall" in body["error"]["message"], body
    status, _, body = h.post("/v1/caps/stall/run/view_big?n=1024")
    assert status == 200 and body == {"len": 1024}, body


def test_a_killed_callee_is_not_called_again_until_it_is_fresh():
    h = caps_host()
    status, _, body = h.post("/v1/caps/stall/run/call_twice")
    assert status == 200, body
    assert "stallcallee" in body["first"] and "budget" in body["first"], body
    assert "stopped by a limit earlier in this request" in body["second"], body
    status, _, body = h.post("/v1/caps/stall/run/call_hello")   # the next request: fresh
    assert status == 200 and body == {"said": "hello"}, body


# ---- loading, migrations and campaigns

SLOW_LOAD = """
-- compares two long strings while loading: nothing counts it, the load deadline ends it
local a = string.rep("a", 4 << 20)
local b = string.rep("a", (4 << 20) - 1) .. "a"
for _ = 1, 1e12 do if a == b then end end
return { name = "slowload", version = "1.0.0" }
"""

MIGRATING = """
return {
  name = "slowmig", version = "%(version)s",
  migrations = {
    "CREATE TABLE slowmig_rows (id INTEGER PRIMARY KEY)",
    [[INSERT INTO slowmig_rows (id) WITH RECURSIVE c(x) AS
        (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000) SELECT x FROM c]],
    %(more)s
  },
  routes = {
    { method = "GET", path = "/slowmig/version", auth = "none",
      handler = function() return 200, { version = "%(version)s" } end },
  },
}
"""

CROSS_JOIN = ('"CREATE TABLE slowmig_big AS SELECT a.id AS x FROM slowmig_rows a, '
              'slowmig_rows b, slowmig_rows c",')


def write_plugin(root, name, text):
    os.makedirs(os.path.join(root, name), exist_ok=True)
    with open(os.path.join(root, name, "plugin.lua"), "w") as f:
        f.write(text)


def test_loading_and_migrations_are_bounded_in_time():
    root = tempfile.mkdtemp(prefix="tidepool-e2e-stall-plugins-")
    try:
        write_plugin(root, "slowload", SLOW_LOAD)
        write_plugin(root, "slowmig", MIGRATING % {"version": "1.0.0", "more": ""})
        t = tenant("t2", plugins={"catalog": {}, "slowload": {}, "slowmig": {}})
        dirs = [os.path.join(os.environ["TIDEPOOL_SRC"], "plugins"), root]
        t0 = time.monotonic()
        with Host(tenants=[t], limits={"load_ms": 500, "migration_ms": 500},
                  extra={"plugin_dirs": dirs},
                  name="stall-load") as h:
            took = time.monotonic() - t0
            e = h.wait_log(lambda e: e.get("msg") == "plugin not enabled"
                           and e.get("plugin") == "slowload", timeout=10)
            assert "limits.load_ms" in e["error"] and "500 ms" in e["error"], e
            h.assert_serving("t2")
            print("     start with a plugin whose load never ends: %.2fs" % took)
            status, _, body = h.get("/v1/t2/slowmig/version")
            assert status == 200 and body == {"version": "1.0.0"}, body
            # version 2's migration is a cross join of 3000^3 rows: it fails the
            # reload within the load deadline, and version 1 keeps serving
            write_plugin(root, "slowmig", MIGRATING % {"version": "2.0.0", "more": CROSS_JOIN})
            t1 = time.monotonic()
            status, _, body = h.admin("POST", "/reload", t, body={"plugin": "slowmig"})
            took = time.monotonic() - t1
            assert status >= 400 and body["error"]["code"] == "reload_failed", body
            failed = body["error"]["details"]["failed"]
            assert failed[0]["serving_version"] == "1.0.0", failed
            err = failed[0]["error"]
            assert "limits.migration_ms" in err and "none was applied" in err, body
            assert took < 5, took
            status, _, body = h.get("/v1/t2/slowmig/version")
            assert status == 200 and body == {"version": "1.0.0"}, body
            print("     a migration that runs too long failed the reload in %.2fs" % took)
    finally:
        shutil.rmtree(root, ignore_errors=True)


CAMPAIGN = """
return campaign {
  title = "Slow hooks",
  starts = "2020-01-01 00:00",
  ends = "2099-01-01 00:00",
  on = {
    ["order.created"] = function(data, c)
      -- a pattern over the buyer's note would be the same: steps are counted
      local s = string.rep("a", 1 << 20)
      return s:find(".-.-b")
    end,
  },
}
"""

SLOW_CAMPAIGN = """
local a = string.rep("a", 4 << 20)
local b = string.rep("a", (4 << 20) - 1) .. "a"
for _ = 1, 1e12 do if a == b then end end
return campaign { title = "Never", starts = "2020-01-01 00:00", ends = "2099-01-01 00:00" }
"""


def test_campaign_scripts_and_their_hooks_have_the_same_bounds():
    t = manual_tenant("shop", {"catalog": {}, "orders": {}, "coupons": {}})
    h = Host(tenants=[t], limits={"load_ms": 500, "invocation_ms": DEADLINE_MS,
                                  "lua_instructions": 2000000}, name="stall-campaign")
    try:
        cdir = os.path.join(h.dir, "campaigns")
        os.makedirs(cdir, exist_ok=True)
        for name, text in (("hooks.lua", CAMPAIGN), ("slow.lua", SLOW_CAMPAIGN)):
            with open(os.path.join(cdir, name), "w") as f:
                f.write(text)
        t["campaigns"] = [os.path.join(cdir, "hooks.lua"), os.path.join(cdir, "slow.lua")]
        h.write_config()
        h.start()
        e = h.wait_log(lambda e: e.get("msg") == "plugin not enabled"
                       and e.get("plugin") == "campaign_slow", timeout=10)
        assert "limits.load_ms" in e["error"], e
        add_sku(h, t, "tea-001", 10, price_fen=3900)
        status, _, body = h.post("/v1/shop/orders", {"lines": [{"sku": "tea-001", "qty": 1}]},
                                 headers=h.bearer("shop", "ann"))
        assert status == 201, body
        with Prober(h, "/v1/shop/catalog/products") as p:
            advance(h, t, seconds=1)    # delivers order.created to the hook
        e = h.wait_log(lambda e: e.get("msg") == "task failed"
                       and e.get("plugin") == "campaign_hooks", timeout=10)
        # the budget ends it, or on a slow machine the deadline: either way, at once
        assert "instructions" in e["error"] or "deadline" in e["error"], e
        # the prober's one or two answers waited behind the advance call that ran
        # the hook (unbounded, that is forever): under ASan and a parallel ctest,
        # one took 107 ms, so the bound here is the hook's end, not the p99 target
        assert p.p99() is None or p.p99() < 2.5 * P99_S, p.times
        h.assert_serving()
        h.stop()
    finally:
        h.kill9()


def teardown():
    for h in (H, H_CAPS):
        if h is not None:
            h.stop()


if __name__ == "__main__":
    run(globals())
