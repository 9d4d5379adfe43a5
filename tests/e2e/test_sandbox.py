"""
test_sandbox.py - what a plugin may not do, and what happens when it tries:
runaway loops and allocations are killed (budget_exceeded / memory_exceeded),
the sandbox refuses files, processes, bytecode and finalizers
(sandbox_violation), every write of the failed request is rolled back, and the
host goes straight on serving - the same plugin included. Also: per-plugin
limits, require() from the plugin's folder and the SDK, and a plugin whose
load never ends.
"""
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (HERE, SRC, Host, tenant, expect_error, metric_value, run,  # noqa: E402
                     http_request_bytes)

MEM_CAP = 16 << 20
OK_BUDGET = 100000
# from sending a bad request to the answer of the next, good one
RECOVERY_S = 1.0

T = tenant("t1", plugins={"catalog": {}, "sbxbad": {}, "sbxok": {}, "sbxreq": {}, "sbxmeta": {}})
T["plugin_limits"] = {"sbxbad": {"memory_bytes": MEM_CAP}, "sbxok": {"instructions": OK_BUDGET}}

SDK = tempfile.mkdtemp(prefix="tidepool-e2e-sdk-")
os.makedirs(os.path.join(SDK, "sbxsdk"))
os.makedirs(os.path.join(SDK, "lib"))
with open(os.path.join(SDK, "sbxsdk", "greet.lua"), "w") as f:
    f.write('return { from = "sdk", value = "hello from the sdk" }\n')
with open(os.path.join(SDK, "lib", "shadow.lua"), "w") as f:
    f.write('return { from = "sdk" }\n')
# the SDK's own modules, which catalog (the good neighbour here) requires
shutil.copytree(os.path.join(SRC, "sdk", "tp"), os.path.join(SDK, "tp"))

H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[T], extra={"sdk_dir": SDK}, name="sandbox").start()
        failed = [e for e in H.logs() if e.get("msg") == "plugin not enabled"]
        assert not failed, failed
    return H


def note_count():
    status, _, body = host().get("/v1/t1/sbxbad/count")
    assert status == 200, body
    return body["count"]


def catalog_ok(h):
    status, _, body = h.get("/v1/t1/catalog/products")
    assert status == 200 and "items" in body, (status, body)


def bad_then_good(h, case):
    """Sends the bad request, then at once a catalog request on another
    connection; returns (bad response, seconds from sending the bad request
    to the good answer)."""
    c = h.raw()
    try:
        t0 = time.monotonic()
        c.send(http_request_bytes("POST", "/v1/t1/sbxbad/bad/" + case, b"",
                                  {"X-Request-Id": "sbx-" + case}))
        catalog_ok(h)
        took = time.monotonic() - t0
        r = c.read_response()
    finally:
        c.close()
    return r, took


def check_killed(case, code, words):
    h = host()
    before = note_count()
    mark = h.log_mark()
    r, took = bad_then_good(h, case)
    assert r.status == 500, (case, r)
    body = r.json()
    assert body["error"]["code"] == code, (case, body)
    msg = body["error"]["message"]
    for w in words:
        assert w in msg, (case, w, msg)
    assert body["error"]["request_id"] == "sbx-" + case, body
    assert note_count() == before, "case %s: its write was not rolled back" % case
    assert took < RECOVERY_S, "case %s: the next request was answered %.3fs after the bad one" % (
        case, took)
    e = h.wait_log(lambda e: e.get("msg") == "plugin failed"
                   and e.get("request_id") == "sbx-" + case, timeout=10, start=mark)
    assert e["code"] == code and e["plugin"] == "sbxbad", e
    return took


def test_a_manifest_with_raising_metamethods_loads_and_cannot_abort_the_host():
    h = host()
    user = h.bearer("t1", "meta-user")      # auth was not declared: "user", read raw
    status, _, body = h.get("/v1/t1/sbxmeta/hello", headers=user)
    assert status == 200 and body == {"hello": "world"}, (status, body)
    status, _, body = h.get("/v1/t1/sbxmeta/fail", headers=user)
    assert status == 409 and body["error"]["code"] == "tampered", (status, body)
    assert h.get("/v1/t1/sbxmeta/hello", headers=user)[0] == 200   # still serving


def test_infinite_loop_is_killed():
    took = check_killed("loop", "budget_exceeded", ["sbxbad", "10000000 instructions"])
    print("     loop: next answer after %.3fs" % took)


def test_unbounded_allocation_is_killed():
    took = check_killed("alloc", "memory_exceeded", ["sbxbad", "memory cap of %d bytes" % MEM_CAP])
    print("     alloc: next answer after %.3fs" % took)


def test_pcall_cannot_swallow_the_budget():
    check_killed("pcall_loop", "budget_exceeded", ["sbxbad", "instructions"])


def test_a_coroutine_cannot_swallow_the_budget():
    # the coroutine's error is caught by its resumer, which then returns 200
    check_killed("coroutine_wrap", "budget_exceeded", ["sbxbad", "instructions"])
    check_killed("coroutine_resume", "budget_exceeded", ["sbxbad", "instructions"])


def test_pcall_cannot_swallow_the_memory_cap():
    """sandbox.h: either limit ends the invocation with a rollback. A handler
    that catches the memory error and returns 200 must not commit."""
    check_killed("pcall_alloc", "memory_exceeded", ["sbxbad", "memory cap of %d bytes" % MEM_CAP])


SANDBOX_CASES = {
    "io_open": ["io.open", "not available"],
    "os_execute": ["os.execute", "not available"],
    "os_time": ["os.time", "not available"],
    "string_dump": ["string.dump", "not available"],
    "load_bytecode": ["load", "bytecode"],
    "load_binary_mode": ["load", "mode"],
    "load_no_env": ["load", "environment"],
    "dofile": ["dofile", "not available"],
    "gc_metatable": ["__gc"],
}


def test_sandbox_violations():
    failures = []
    for case, words in SANDBOX_CASES.items():
        try:
            check_killed(case, "sandbox_violation", words)
        except AssertionError as e:
            failures.append("%s: %s" % (case, e))
    assert not failures, "\n".join(failures)


def test_bytecode_from_a_reader_function_does_not_load():
    status, _, body = host().get("/v1/t1/sbxbad/load-reader")
    assert status == 200 and body["loaded"] is False, body
    assert "binary" in body["err"], body


def test_the_same_plugin_serves_after_a_kill():
    h = host()
    for case in ("loop", "alloc", "pcall_loop", "coroutine_wrap", "alloc", "loop"):
        before = note_count()
        status, _, body = h.post("/v1/t1/sbxbad/bad/" + case)
        assert status == 500 and body["error"]["code"] in ("budget_exceeded",
                                                            "memory_exceeded"), (case, body)
        status, _, body = h.post("/v1/t1/sbxbad/add")
        assert status == 201 and body == {"count": before + 1, "kb": 100}, (case, body)
        status, _, body = h.get("/v1/t1/sbxbad/million")
        assert status == 200 and body["sum"] == 500000500000, (case, body)
    # the state's memory went back down after the allocation was killed
    status, _, body = h.admin("GET", "/plugins", T)
    assert status == 200, body
    p = [p for p in body["plugins"] if p["name"] == "sbxbad"][0]
    assert p["status"] == "active" and p["memory_cap_bytes"] == MEM_CAP, p
    assert p["lua_memory_bytes"] < MEM_CAP // 2, p


def test_kills_are_counted_and_logged():
    h = host()
    n0 = metric_value(h.metrics(), "tidepool_plugin_errors_total")
    mark = h.log_mark()
    expect_error(h.post("/v1/t1/sbxbad/bad/loop", headers={"X-Request-Id": "count-loop"}),
                 500, "budget_exceeded")
    expect_error(h.post("/v1/t1/sbxbad/bad/alloc", headers={"X-Request-Id": "count-alloc"}),
                 500, "memory_exceeded")
    n1 = metric_value(h.metrics(), "tidepool_plugin_errors_total")
    assert n1 == n0 + 2, (n0, n1)
    for rid, code in (("count-loop", "budget_exceeded"), ("count-alloc", "memory_exceeded")):
        e = h.wait_log(lambda e: e.get("msg") == "plugin failed" and e.get("request_id") == rid,
                       timeout=10, start=mark)
        assert e["level"] == "error" and e["code"] == code and e["tenant"] == "t1", e
        assert e["route"] == "sbxbad POST /v1/{tenant}/sbxbad/bad/{case}", e
        line = h.wait_log(lambda e: e.get("msg") == "request" and e.get("request_id") == rid,
                          timeout=10, start=mark)
        assert line["status"] == 500 and line["error"] == code, line


def test_per_plugin_instruction_budget():
    h = host()
    status, _, body = h.admin("GET", "/plugins", T)
    budgets = {p["name"]: p["instruction_budget"] for p in body["plugins"]}
    assert budgets["sbxok"] == OK_BUDGET and budgets["sbxbad"] == 10000000, budgets
    _, _, r0 = h.get("/v1/t1/sbxok/runs")
    # a small loop fits in 100000 instructions
    status, _, body = h.post("/v1/t1/sbxok/loop/1000")
    assert status == 200 and body["sum"] == 500500, body
    # ~1e6 iterations do not
    body = expect_error(h.post("/v1/t1/sbxok/loop/1000000"), 500, "budget_exceeded")
    assert "sbxok" in body["error"]["message"] and "100000 instructions" in \
        body["error"]["message"], body
    _, _, r1 = h.get("/v1/t1/sbxok/runs")
    assert r1["count"] == r0["count"] + 1, (r0, r1)     # the failed run's write is gone
    # the plugin on the default budget runs the same loop
    status, _, body = h.get("/v1/t1/sbxbad/million")
    assert status == 200 and body["sum"] == 500000500000, body
    # and sbxok still serves small loops
    status, _, body = h.post("/v1/t1/sbxok/loop/10")
    assert status == 200 and body["sum"] == 55, body


def try_require(name):
    from urllib.parse import quote
    status, _, body = host().get("/v1/t1/sbxreq/try?name=" + quote(name, safe=""))
    assert status == 200, (name, status, body)
    return body


def test_require_from_the_plugin_folder_is_cached():
    status, _, body = host().get("/v1/t1/sbxreq/util")
    assert status == 200, body
    assert body == {"same": True, "same_as_at_load": True, "double": 42, "name": "util"}, body


def test_require_from_the_sdk():
    body = try_require("sbxsdk.greet")
    assert body == {"ok": True, "type": "table", "from": "sdk", "value": "hello from the sdk"}, body
    # the plugin's own module of the same name comes first
    body = try_require("lib.shadow")
    assert body["ok"] is True and body["from"] == "plugin", body


def test_require_refuses_bad_names():
    for name in ("lib..util", "../sbxok/plugin", "lib/util", "/etc/passwd", ".lib", "lib.",
                 "", "lib-util", "lib util", "lib.util;x"):
        body = try_require(name)
        assert body["ok"] is False and "not a module name" in body["err"], (name, body)


def test_require_of_a_missing_module_names_both_places():
    body = try_require("lib.nothere")
    assert body["ok"] is False, body
    err = body["err"]
    assert "lib.nothere" in err and "not found" in err, err
    assert os.path.join(HERE, "plugins", "sbxreq") in err, err
    assert SDK in err, err


def test_require_cycle_is_reported():
    body = try_require("lib.cyc_a")
    assert body["ok"] is False and "cycle" in body["err"], body
    assert "lib.cyc_a" in body["err"], body


def test_a_module_that_failed_to_load_is_not_a_cycle_next_time():
    """Like Lua's own require: a module whose chunk raised is not recorded as
    loaded (or as loading), so the next require runs it again and reports its
    own error."""
    first = try_require("lib.flaky")
    assert first["ok"] is False and "flaky exploded" in first["err"], first
    second = try_require("lib.flaky")
    assert second["ok"] is False, second
    assert "flaky exploded" in second["err"] and "cycle" not in second["err"], second


def test_a_plugin_whose_load_never_ends_is_not_enabled():
    t = tenant("t2", plugins={"catalog": {}, "sbxloop": {}})
    t0 = time.monotonic()
    with Host(tenants=[t], name="sandbox-loop") as h:
        print("     start with a looping plugin took %.2fs" % (time.monotonic() - t0))
        e = h.wait_log(lambda e: e.get("msg") == "plugin not enabled"
                       and e.get("plugin") == "sbxloop", timeout=5)
        assert e["tenant"] == "t2", e
        assert "load_instructions" in e["error"] and "100000000" in e["error"], e
        assert "sbxloop" in e["error"], e
        h.assert_serving("t2")
        status, _, body = h.admin("GET", "/plugins", t)
        assert status == 200, body
        st = {p["name"]: p for p in body["plugins"]}
        assert st["sbxloop"]["status"] == "failed" and st["catalog"]["status"] == "active", body
        assert "load_instructions" in st["sbxloop"]["last_error"], body


def test_pattern_backtracking_is_bounded():
    """string.find with a pattern that backtracks exponentially runs in C,
    where the instruction hook never fires. It must still end (a limit hit)
    and must not hold the host: the next request to another plugin is answered
    within RECOVERY_S. Own host: a failure here would leave it stuck."""
    t = tenant("t3", plugins={"catalog": {}, "sbxbad": {}})
    h = Host(tenants=[t], name="sandbox-pattern").start()
    try:
        c = h.raw(timeout=5)
        try:
            t0 = time.monotonic()
            c.send(http_request_bytes("POST", "/v1/t3/sbxbad/bad/pattern", b""))
            try:
                status, _, body = h.get("/v1/t3/catalog/products", timeout=5)
            except OSError as e:
                raise AssertionError("the host did not answer another plugin's request within 5s "
                                     "of a backtracking pattern (%r)" % (e,))
            took = time.monotonic() - t0
            assert status == 200 and "items" in body, (status, body)
            assert took < RECOVERY_S, "the next request was answered after %.3fs" % took
            r = c.read_response()
        finally:
            c.close()
        assert r.status == 500 and r.json()["error"]["code"] == "budget_exceeded", r
        h.stop()
    finally:
        h.kill9()


def teardown():
    if H is not None:
        H.stop()
    shutil.rmtree(SDK, ignore_errors=True)


if __name__ == "__main__":
    run(globals())
