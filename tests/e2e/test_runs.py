"""
test_runs.py - recorded runs ("runs you can replay"): a host records every
failed invocation (route, job, event) and, on demand, the next N of a plugin,
with the input as the plugin saw it minus secrets, the time and seed it read,
the outcome and what it cost; the admin API lists and serves them, at most 200
per tenant; `tidepool test --replay` and kit.replay run one again against the
plugin as it is now, honouring the seed; `tidepool test` ends with the
instruction budget table, and /metrics carries the peaks.

Plugins: tests/e2e/plugins/runprobe (served), tests/e2e/runs_fixtures/dice
(copied to a temporary folder, recorded on a host, then replayed by its kit
tests).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, HERE, SANITIZER_MARKERS, SRC, Host, advance, api_key,  # noqa: E402
                     expect_error, manual_tenant, metric_value, run, user_auth)

RUNPROBE = os.path.join(HERE, "plugins", "runprobe")
DICE = os.path.join(HERE, "runs_fixtures", "dice")
SHOP = manual_tenant("shop", {"runprobe": {}})
_temps = []


def temp_dir():
    d = tempfile.mkdtemp(prefix="tidepool-e2e-runs-")
    _temps.append(d)
    return d


def teardown():
    for d in _temps:
        shutil.rmtree(d, ignore_errors=True)


_host = None


def host():
    global _host
    if _host is None:
        _host = Host(tenants=[SHOP], limits={"job_max_attempts": 1, "lua_instructions": 2000000},
                     name="runs").start()
    return _host


def runs(h, query=""):
    status, _, body = h.admin("GET", "/runs" + query, SHOP)
    assert status == 200, (status, body)
    return body


def get_run(h, run_id):
    status, _, body = h.admin("GET", "/runs/%d" % run_id, SHOP)
    assert status == 200, (status, body)
    return body


def arm(h, body):
    status, _, answer = h.admin("POST", "/runs/record", SHOP, body=body)
    assert status == 200, (status, answer)
    return answer


def post(h, path, body=None, headers=None):
    return h.post("/v1/shop" + path, body=body if body is not None else {}, headers=headers)


def tidepool_test(*args, cwd=None):
    with tempfile.TemporaryDirectory(prefix="tidepool-runs-kit-") as tmp:
        env = dict(os.environ, TMPDIR=tmp)
        p = subprocess.run([BIN, "test", *args], cwd=cwd, env=env, capture_output=True,
                           text=True, timeout=240)
        left = os.listdir(tmp)
    for marker in SANITIZER_MARKERS:
        assert marker not in p.stderr, p.stderr
    assert left == [], "temporary directories left behind: %r" % left
    return p.returncode, p.stdout


# ---- recording on error

def test_a_failed_handler_is_recorded_with_input_seed_now_and_traceback():
    h = host()
    mark = h.log_mark()
    headers = dict(user_auth(SHOP, "u1"), **{"X-Api-Key": "not-for-plugins", "Cookie": "sid=1",
                                              "X-Trace": "t-1"})
    status, hdrs, body = h.post("/v1/shop/runprobe/boom?from=test", body={"why": "disk"},
                                headers=headers)
    expect_error((status, hdrs, body), 500, "internal_error")
    request = h.wait_log(lambda e: e.get("msg") == "request" and e.get("status") == 500,
                         start=mark, what="the request line")
    newest = runs(h, "?plugin=runprobe&kind=route&limit=1")["runs"][0]
    assert newest["name"] == "POST /runprobe/boom", newest
    assert (newest["reason"], newest["outcome"], newest["status"], newest["code"]) == \
        ("error", "failed", 500, "internal_error"), newest
    doc = get_run(h, newest["id"])
    assert doc["id"] == newest["id"] and doc["format"] == "tidepool-run/1", doc
    assert (doc["tenant"], doc["plugin"], doc["version"], doc["generation"], doc["kind"]) == \
        ("shop", "runprobe", "1.0.0", 1, "route"), doc
    assert doc["request_id"] == request["request_id"], (doc, request)
    i = doc["input"]
    assert (i["method"], i["path"], i["route"], i["query"], i["user"], i["body"]) == \
        ("POST", "/v1/shop/runprobe/boom", "/runprobe/boom", "from=test", "u1", {"why": "disk"}), i
    assert json.loads(i["raw_body"]) == {"why": "disk"}, i
    assert i["headers"]["x-trace"] == "t-1", i
    for secret in ("authorization", "x-api-key", "cookie"):
        assert secret not in i["headers"], (secret, i["headers"])
    assert "not-for-plugins" not in json.dumps(doc) and "Bearer" not in json.dumps(doc)
    assert doc["host"]["seed"] == str(request["seed"]), (doc["host"], request)
    status, _, clock = h.admin("GET", "/clock", SHOP)
    assert doc["host"]["now_ms"] == clock["now_ms"], (doc["host"], clock)
    o = doc["outcome"]
    assert (o["ok"], o["status"], o["code"], o["limit"]) == (False, 500, "internal_error", None), o
    assert "boom: disk" in o["error"] and "stack traceback" in o["error"], o
    assert o["body"]["error"]["code"] == "internal_error", o
    assert doc["instructions"]["budget"] == 2000000, doc["instructions"]
    assert doc["memory"]["peak_bytes"] > 0 and doc["duration_ms"] >= 0, doc
    # the handler's insert was rolled back; its record was not
    status, _, rows = h.get("/v1/shop/runprobe/rows")
    assert rows == {"rows": 0}, rows


def test_a_limit_a_failed_job_but_not_a_4xx_are_recorded():
    h = host()
    before = runs(h)["runs"][0]["id"]
    expect_error(h.post("/v1/shop/runprobe/spin"), 500, "budget_exceeded")
    expect_error(h.post("/v1/shop/runprobe/sold-out"), 409, "sold_out")
    status, _, _ = post(h, "/runprobe/later", {"n": 5})
    assert status == 201
    advance(h, SHOP, seconds=1)
    listed = runs(h)["runs"]
    new = [r for r in listed if r["id"] > before]
    assert [(r["kind"], r["name"]) for r in new] == \
        [("job", "flaky"), ("route", "POST /runprobe/spin")], new
    spin = new[1]
    assert spin["code"] == "budget_exceeded" and spin["budget_percent"] >= 100, spin
    assert spin["instructions"] >= spin["budget"] == 2000000, spin
    doc = get_run(h, spin["id"])
    assert doc["outcome"]["limit"] == "budget_exceeded", doc["outcome"]
    job = get_run(h, new[0]["id"])
    assert job["input"]["payload"] == {"n": 5} and job["input"]["name"] == "flaky", job["input"]
    assert job["input"]["attempt"] == 1, job["input"]
    assert job["outcome"]["ok"] is False and "flaky job failed for n=5" in job["outcome"]["error"]
    assert runs(h, "?kind=job")["runs"][0]["id"] == new[0]["id"]


# ---- recording on demand

def test_arming_records_exactly_the_next_n_invocations():
    h = host()
    before = runs(h)["runs"][0]["id"]
    route = "POST /runprobe/roll/{sides:int}"
    answer = arm(h, {"plugin": "runprobe", "route": route, "count": 3})
    assert answer["armed"] == [{"plugin": "runprobe", "route": route, "left": 3}], answer
    for _ in range(2):
        assert h.get("/v1/shop/runprobe/ok")[0] == 200          # another route: not armed
    for n in range(5):
        assert post(h, "/runprobe/roll/6", {"times": n + 1})[0] == 200
    new = [r for r in runs(h)["runs"] if r["id"] > before]
    assert [(r["name"], r["reason"], r["outcome"]) for r in new] == [(route, "armed", "ok")] * 3, new
    assert [get_run(h, r["id"])["host"]["random_draws"] for r in new] == [3, 2, 1], new
    assert runs(h)["armed"] == [], "the arming is used up"
    # the whole plugin: the next two invocations, whatever route
    arm(h, {"plugin": "runprobe", "count": 2})
    expect_error(h.post("/v1/shop/runprobe/sold-out"), 409, "sold_out")
    h.get("/v1/shop/runprobe/ok")
    h.get("/v1/shop/runprobe/ok")
    newer = [r for r in runs(h)["runs"] if r["id"] > new[0]["id"]]
    assert [(r["name"], r["reason"], r["status"]) for r in newer] == \
        [("GET /runprobe/ok", "armed", 200), ("POST /runprobe/sold-out", "armed", 409)], newer
    # count 0 disarms
    arm(h, {"plugin": "runprobe", "count": 5})
    assert arm(h, {"plugin": "runprobe", "count": 0})["armed"] == []


def test_the_admin_calls_refuse_bad_input_with_json_errors():
    h = host()
    cases = [
        (("POST", "/runs/record", {"route": "GET /x"}), 400, "invalid_field"),
        (("POST", "/runs/record", {"plugin": "nope"}), 404, "plugin_not_found"),
        (("POST", "/runs/record", {"plugin": "runprobe", "route": "GET /nowhere"}), 404,
         "route_not_found"),
        (("POST", "/runs/record", {"plugin": "runprobe", "count": 201}), 400, "invalid_field"),
        (("POST", "/runs/record", {"plugin": "runprobe", "count": "3"}), 400, "invalid_field"),
        (("POST", "/runs/record", {"plugin": "runprobe", "every": 3}), 400, "invalid_field"),
        (("GET", "/runs?kind=request", None), 400, "invalid_query"),
        (("GET", "/runs?limit=0", None), 400, "invalid_query"),
        (("GET", "/runs?limit=abc", None), 400, "invalid_query"),
        (("GET", "/runs?after=-1", None), 400, "invalid_query"),
        (("GET", "/runs/999999", None), 404, "run_not_found"),
    ]
    for (method, path, body), status, code in cases:
        expect_error(h.admin(method, path, SHOP, body=body), status, code)
    expect_error(h.get("/admin/shop/runs"), 401, "api_key_required")
    expect_error(h.get("/admin/shop/runs/1", headers={"X-Api-Key": "wrong-key-0123456789"}), 403,
                 "invalid_api_key")


def test_the_routes_are_in_the_openapi_document():
    h = host()
    status, _, doc = h.admin("GET", "/openapi.json", SHOP)
    assert status == 200
    paths = doc["paths"]
    assert "get" in paths["/admin/shop/runs"], sorted(paths)
    assert "get" in paths["/admin/shop/runs/{id}"], sorted(paths)
    assert "post" in paths["/admin/shop/runs/record"], sorted(paths)
    names = [p["name"] for p in paths["/admin/shop/runs"]["get"]["parameters"]]
    assert {"plugin", "kind", "limit", "after"} <= set(names), names


def test_metrics_show_each_routes_peak_against_its_budget():
    text = host().metrics()
    labels = {"tenant": "shop", "plugin": "runprobe", "kind": "route", "name": "POST /runprobe/spin"}
    assert metric_value(text, "tidepool_instructions_peak", labels) >= 2000000, text
    assert metric_value(text, "tidepool_instruction_budget", labels) == 2000000
    labels["name"] = "GET /runprobe/ok"
    assert metric_value(text, "tidepool_instructions_last", labels) is not None


def test_at_most_200_runs_are_kept_and_they_survive_a_restart():
    h = host()
    for _ in range(215):
        expect_error(post(h, "/runprobe/boom", {"why": "flood"}), 500, "internal_error")
    page = runs(h, "?limit=200")
    assert len(page["runs"]) == 200 and page["next"] is None, (len(page["runs"]), page["next"])
    ids = [r["id"] for r in page["runs"]]
    assert ids == list(range(ids[0], ids[0] - 200, -1)), ids[:5]
    expect_error(h.admin("GET", "/runs/%d" % (ids[-1] - 1), SHOP), 404, "run_not_found")
    # pages: limit and after
    first = runs(h, "?limit=150")
    rest = runs(h, "?limit=150&after=%d" % first["next"])
    assert [r["id"] for r in first["runs"] + rest["runs"]] == ids
    h.stop()
    h.start()
    assert [r["id"] for r in runs(h, "?limit=200")["runs"]] == ids


# ---- replay

def download(h, run_id, path):
    with open(path, "w") as f:
        json.dump(get_run(h, run_id), f, indent=1)


def test_tidepool_test_replay_honours_the_seed_and_shows_what_changed():
    h = host()
    work = temp_dir()
    plugin = os.path.join(work, "runprobe")
    shutil.copytree(RUNPROBE, plugin)
    arm(h, {"plugin": "runprobe", "route": "POST /runprobe/roll/{sides:int}", "count": 1})
    status, _, answer = h.post("/v1/shop/runprobe/roll/1000?page=7", body={"times": 6},
                               headers=user_auth(SHOP, "u7"))
    assert status == 200 and len(answer["rolls"]) == 6, answer
    roll_id = runs(h, "?limit=1")["runs"][0]["id"]
    roll = os.path.join(work, "roll.json")
    download(h, roll_id, roll)
    expect_error(post(h, "/runprobe/boom", {"why": "replayed"}), 500, "internal_error")
    boom = os.path.join(work, "boom.json")
    download(h, runs(h, "?limit=1")["runs"][0]["id"], boom)

    rc, out = tidepool_test(plugin, "--replay", roll)
    assert rc == 0, out
    lines = out.splitlines()
    assert lines[0] == "replay of run %d: runprobe route POST /runprobe/roll/{sides:int} " \
                       "(version 1.0.0, recorded because of armed)" % roll_id, out
    assert re.search(r"^  status +200 +200$", out, re.M), out
    assert re.search(r"^  random draws +6 +6$", out, re.M), out
    assert lines[-1] == "same outcome", out
    rc, out = tidepool_test(plugin, "--replay", boom)
    assert rc == 0 and "status        500" in out and out.endswith("same outcome\n"), out

    # the plugin changes: every roll is one more
    source = os.path.join(plugin, "plugin.lua")
    with open(source) as f:
        text = f.read()
    with open(source, "w") as f:
        f.write(text.replace("local ROLL_BONUS = 0", "local ROLL_BONUS = 1"))
    rc, out = tidepool_test(plugin, "--replay", roll)
    assert rc == 1, out
    diffs = out.split("the outcome differs:\n")[1].splitlines()
    assert diffs == ["  body.rolls[%d]: recorded %d, now %d" % (k + 1, v, v + 1)
                     for k, v in enumerate(answer["rolls"])], (diffs, answer)

    # a run of another plugin, and no run at all
    rc, out = tidepool_test(os.path.join(HERE, "plugins", "probe"), "--replay", roll)
    assert rc == 2 and "is of plugin 'runprobe', but the folder holds 'probe'" in out, out
    rc, out = tidepool_test(plugin, "--replay", os.path.join(work, "none.json"))
    assert rc == 2, out


def test_kit_replay_and_the_budget_table():
    dice_host = Host(tenants=[manual_tenant("shop", {"dice": {}})],
                     extra={"plugin_dirs": [os.path.join(HERE, "runs_fixtures"),
                                            os.path.join(SRC, "plugins")]},
                     limits={"job_max_attempts": 1}, name="dice").start()
    t = dice_host.tenants[0]
    work = temp_dir()
    plugin = os.path.join(work, "dice")
    shutil.copytree(DICE, plugin)
    os.makedirs(os.path.join(plugin, "test", "runs"))
    status, _, _ = dice_host.admin("POST", "/runs/record", t,
                                   body={"plugin": "dice", "route": "POST /dice/roll/{sides:int}"})
    assert status == 200
    status, _, answer = dice_host.post("/v1/shop/dice/roll/6", body={"times": 4},
                                       headers=user_auth(t, "u9"))
    assert status == 200, answer
    assert dice_host.post("/v1/shop/dice/tally", body={"n": 5})[0] == 201
    advance(dice_host, t, seconds=1)
    _, _, listed = dice_host.admin("GET", "/runs", t)
    by_kind = {r["kind"]: r["id"] for r in listed["runs"]}
    for kind, name in (("route", "roll"), ("job", "tally")):
        _, _, doc = dice_host.admin("GET", "/runs/%d" % by_kind[kind], t)
        with open(os.path.join(plugin, "test", "runs", name + ".json"), "w") as f:
            json.dump(doc, f)
    dice_host.stop()

    rc, out = tidepool_test("dice", cwd=work)
    lines = out.splitlines()
    summary = lines.index("4 passed, 1 failed")
    assert lines[:summary] == [
        "ok   a recorded roll > replays with its time and seed",
        "ok   a recorded roll > lists what differs",
        "FAIL a recorded roll > fails to_match_run when the outcome changed",
        "     dice/test/dice_test.lua:24: the replay differs from recorded run %d:" % by_kind["route"],
        "       body.rolls[1]: recorded 99, now %d" % answer["rolls"][0],
        "ok   a recorded job > fails again the same way",
        "ok   a file that is no run > is refused",
    ], out
    assert rc == 1, out
    table = lines[summary + 1:]
    assert table[0] == "" and table[1] == "instructions per invocation (peak of the tests' calls):"
    rows = [re.match(r"^  (\S+ \S+ .+?) +peak ([\d,]+) instr  ([\d.]+) % of 10,000,000  "
                     r"\((\d+) calls?\)$", line) for line in table[2:]]
    assert all(rows), table
    assert [(m.group(1), m.group(4)) for m in rows] == [
        ("dice job tally", "1"), ("dice route POST /dice/roll/{sides:int}", "3")], table
    assert all(int(m.group(2).replace(",", "")) > 0 for m in rows), table


if __name__ == "__main__":
    run(globals())
