"""
test_reload.py - hot reload of plugin code: under load nothing is dropped and
the new version serves from the moment the reload call returns; a broken new
version (syntax, migration, route clash) leaves the old one serving and says
why; new migrations and routes arrive with the new version; SIGHUP, the
`tidepool reload` command and `serve --watch` trigger it; jobs follow the
current generation.

The plugin is tests/e2e/plugins/rlver, copied into a temporary plugin folder
(first in plugin_dirs) and rewritten there: the repository is never touched.
"""
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, HERE, SRC, Host, tenant, api_key, expect_error, free_port,  # noqa: E402
                     metric_value, read_db, run, wait_until, http_request_bytes)

ADMIN_KEY = "host-admin-key-for-reload-tests-0123"
RLVER = os.path.join(HERE, "plugins", "rlver")
RELOAD_TIMES = []   # ms, as reported by the reload responses under load


class Plug:
    """A copy of rlver in a temporary plugin dir, rewritten by write()."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="tidepool-e2e-rlver-")
        self.dir = os.path.join(self.root, "rlver")
        shutil.copytree(RLVER, self.dir)
        self.file = os.path.join(self.dir, "plugin.lua")
        with open(self.file) as f:
            self.original = f.read()
        _plugs.append(self)

    def plugin_dirs(self):
        return [self.root, os.path.join(SRC, "plugins"), os.path.join(HERE, "plugins")]

    @staticmethod
    def _sub(text, old, new):
        assert old in text, "rlver/plugin.lua lost its marker %r" % old
        return text.replace(old, new)

    def source(self, version=1, migrations=(), routes=(), gone=True, broken=False):
        s = self.original
        s = self._sub(s, "local VERSION = 1 -- @VERSION@",
                      "local VERSION = %s%d -- @VERSION@" % ("= " if broken else "", version))
        s = self._sub(s, "    -- @MIGRATIONS@\n", "".join("    %s,\n" % m for m in migrations))
        s = self._sub(s, "    -- @ROUTES@\n", "".join("    %s,\n" % r for r in routes))
        if not gone:
            s = self._sub(s, "    gone = note, -- @GONE@\n", "")
        return s

    def write(self, **kw):
        text = self.source(**kw)
        with open(self.file, "w") as f:
            f.write(text)


_plugs = []


def rl_tenant(tid="t1", manual=False):
    t = tenant(tid, plugins={"catalog": {}, "rlver": {}})
    if manual:
        t["clock"] = "manual"
    return t


def rl_host(plug, tenants, name, **kw):
    extra = {"plugin_dirs": plug.plugin_dirs(), "admin_keys": [ADMIN_KEY], "sdk_dir": os.path.join(SRC, "sdk")}
    extra.update(kw.pop("extra", {}))
    return Host(tenants=tenants, extra=extra, name=name, **kw)


# the shared host: wall-clock tests run on it too, its tenant's clock is manual
T = rl_tenant(manual=True)
P = None
H = None


def host():
    global H, P
    if H is None:
        P = Plug()
        H = rl_host(P, [T], "reload").start()
        assert not [e for e in H.logs() if e.get("msg") == "plugin not enabled"], H.tail()
    return H


def reload(h, t, plugin="rlver"):
    return h.admin("POST", "/reload", t, body={"plugin": plugin})


def plugin_state(h, t, name="rlver"):
    status, _, body = h.admin("GET", "/plugins", t)
    assert status == 200, body
    return [p for p in body["plugins"] if p["name"] == name][0]


def version_of(h, tid="t1"):
    status, _, body = h.get("/v1/%s/rlver/version" % tid)
    assert status == 200, body
    return body["version"]


def reset(h=None, plug=None, t=None):
    """v1 serving, status active; returns its generation."""
    h, plug, t = h or host(), plug or P, t or T
    plug.write(version=1)
    status, _, body = reload(h, t)
    assert status == 200, body
    assert version_of(h, t["id"]) == 1
    return body["reloaded"][0]["generation"]


def tables(h, tid="t1"):
    names = {r[0] for r in read_db(h, tid, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    rows = read_db(h, tid, "SELECT version FROM _tp_migrations WHERE plugin = 'rlver'")
    return names, rows[0][0] if rows else None


# ---- 1. under load

WRK_SCRIPT = r"""
wrk.method = "POST"
wrk.body = "{}"
wrk.headers["Content-Type"] = "application/json"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0; v1 = 0; v2 = 0; other = 0 end
function response(status, headers, body)
  if status ~= 200 then bad = bad + 1
  elseif body:find('"version":1', 1, true) then v1 = v1 + 1
  elseif body:find('"version":2', 1, true) then v2 = v2 + 1
  else other = other + 1 end
end
function done(summary, latency, requests)
  local b, a1, a2, o = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    b = b + t:get("bad"); a1 = a1 + t:get("v1"); a2 = a2 + t:get("v2"); o = o + t:get("other")
  end
  local e = summary.errors
  io.write(string.format("RESULT requests=%d bad=%d v1=%d v2=%d other=%d connect=%d read=%d " ..
    "write=%d status=%d timeout=%d\n", summary.requests, b, a1, a2, o, e.connect, e.read,
    e.write, e.status, e.timeout))
end
"""


def test_reload_under_load_drops_nothing():
    wrk = shutil.which("wrk")
    if not wrk:
        print("     SKIPPED: wrk is not installed (needed to drive 64 connections)")
        return
    plug = Plug()
    t = rl_tenant()
    with rl_host(plug, [t], "reload-load") as h:
        script = os.path.join(h.dir, "reload.lua")
        with open(script, "w") as f:
            f.write(WRK_SCRIPT)
        url = "http://127.0.0.1:%d/v1/t1/rlver/hit/wrk" % h.port
        proc = subprocess.Popen([wrk, "-t2", "-c64", "-d7s", "--timeout", "3s", "-s", script, url],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            time.sleep(0.7)
            gen = plugin_state(h, t)["generation"]
            for i in range(10):
                v = 2 if i % 2 == 0 else 1
                plug.write(version=v)
                status, _, body = reload(h, t)
                assert status == 200, body
                r = body["reloaded"]
                assert body["failed"] == [] and body["matched"] == 1 and len(r) == 1, body
                assert r[0]["plugin"] == "rlver" and r[0]["generation"] == gen + 1, body
                assert r[0]["serving_version"] == "%d.0.0" % v, body
                gen += 1
                RELOAD_TIMES.append(r[0]["ms"])
                # the first request after the reload answered sees the new version
                status, _, got = h.post("/v1/t1/rlver/hit/check")
                assert status == 200 and got["version"] == v, (i, got)
                time.sleep(0.45)
            out, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        text = out.decode("utf-8", "replace")
        m = re.search(r"RESULT requests=(\d+) bad=(\d+) v1=(\d+) v2=(\d+) other=(\d+) "
                      r"connect=(\d+) read=(\d+) write=(\d+) status=(\d+) timeout=(\d+)", text)
        assert m, text
        req, bad, v1, v2, other, conn, rd, wr, st, to = map(int, m.groups())
        print("     wrk: %d requests (v1 %d, v2 %d) during 10 reloads" % (req, v1, v2))
        assert proc.returncode == 0, text
        assert (bad, other, conn, rd, wr, st, to) == (0, 0, 0, 0, 0, 0, 0), text
        assert "Non-2xx" not in text, text
        assert v1 > 0 and v2 > 0 and v1 + v2 == req, text
        assert req >= 200, "too little load to mean anything:\n" + text
        # every answered write was kept (a few more may have been in flight when wrk stopped)
        status, _, body = h.get("/v1/t1/rlver/hit/wrk")
        assert status == 200 and req <= body["n"] <= req + 64, (req, body)
        ms = sorted(RELOAD_TIMES)
        print("     reload ms under load: min %.2f median %.2f max %.2f (n=%d)"
              % (ms[0], statistics.median(ms), ms[-1], len(ms)))


# ---- 2. a broken new version leaves the old one serving

def check_failed_reload(h, t, gen, words):
    mark = h.log_mark()
    body = expect_error(reload(h, t), 422, "reload_failed")
    d = body["error"]["details"]
    assert d["reloaded"] == [] and d["matched"] == 1 and len(d["failed"]) == 1, body
    f = d["failed"][0]
    assert f["tenant"] == "t1" and f["plugin"] == "rlver", f
    assert f["serving_version"] == "1.0.0" and f["generation"] == gen, f
    for w in words:
        assert w in f["error"], (w, f)
    # the old version serves, its routes answer as before
    assert version_of(h) == 1
    status, _, hit = h.post("/v1/t1/rlver/hit/old")
    assert status == 200 and hit["version"] == 1, hit
    expect_error(h.get("/v1/t1/rlver/extra"), 404, "route_not_found")
    st = plugin_state(h, t)
    assert st["status"] == "stale" and st["generation"] == gen and st["version"] == "1.0.0", st
    assert st["last_error"] == f["error"], (st, f)
    e = h.wait_log(lambda e: e.get("msg") == "reload failed; the old version keeps serving"
                   and e.get("plugin") == "rlver", timeout=10, start=mark)
    assert e["serving_version"] == "1.0.0" and e["error"] == f["error"], e
    return f["error"]


EXTRA_ROUTE = ('{ method = "GET", path = "/rlver/extra", auth = "none", '
               'handler = function() return 200, { extra = VERSION } end }')


def test_broken_versions_leave_the_old_one_serving():
    h = host()
    gen = reset()
    names0, mig0 = tables(h)
    m0 = h.metrics()
    # a syntax error
    P.write(version=2, broken=True, routes=[EXTRA_ROUTE])
    check_failed_reload(h, T, gen, ["plugin.lua", "unexpected symbol"])
    # a migration of two statements whose second fails
    P.write(version=2, routes=[EXTRA_ROUTE],
            migrations=['"CREATE TABLE rlver_partial (x INTEGER); INSERT INTO rlver_nope VALUES (1)"'])
    check_failed_reload(h, T, gen, ["migration 3", "rlver_nope"])
    # two new migrations whose second fails
    P.write(version=2, routes=[EXTRA_ROUTE],
            migrations=['"CREATE TABLE rlver_partial2 (x INTEGER)"',
                        '"CREATE TABLE rlver_hits (y INTEGER)"'])
    check_failed_reload(h, T, gen, ["migration 4", "rlver_hits", "already exists"])
    names, mig = tables(h)
    assert names == names0 and mig == mig0 == 2, (names0, names, mig0, mig)
    # a route another plugin has
    P.write(version=2, routes=[EXTRA_ROUTE, '{ method = "GET", path = "/catalog/products", '
                                            'auth = "none", handler = version }'])
    check_failed_reload(h, T, gen, ["/catalog/products"])
    h.assert_serving("t1")          # the catalog's route is still the catalog's
    m1 = h.metrics()
    assert metric_value(m1, "tidepool_reloads_total", {"result": "failed"}) == \
        metric_value(m0, "tidepool_reloads_total", {"result": "failed"}) + 4
    # a good version clears it
    P.write(version=2, routes=[EXTRA_ROUTE])
    status, _, body = reload(h, T)
    assert status == 200, body
    assert body["reloaded"][0]["generation"] == gen + 1, body
    st = plugin_state(h, T)
    assert st["status"] == "active" and st["last_error"] is None, st
    assert st["generation"] == gen + 1 and st["version"] == "2.0.0", st
    assert version_of(h) == 2
    status, _, body = h.get("/v1/t1/rlver/extra")
    assert status == 200 and body == {"extra": 2}, body
    reset()


def test_reload_of_an_unknown_plugin():
    h = host()
    expect_error(reload(h, T, plugin="nosuch"), 404, "plugin_not_found")
    status, _, body = h.request("POST", "/admin/t1/reload", body={"plugin": "rlver"})
    assert status == 401, body


def test_reload_of_every_plugin_reports_each():
    h = host()
    gen = reset()
    cat_gen = plugin_state(h, T, "catalog")["generation"]
    P.write(version=2, broken=True)
    body = expect_error(h.admin("POST", "/reload", T, body={}), 422, "reload_failed")
    d = body["error"]["details"]
    assert d["matched"] == 2, body
    assert [(r["plugin"], r["generation"]) for r in d["reloaded"]] == [("catalog", cat_gen + 1)], d
    assert [(f["plugin"], f["generation"]) for f in d["failed"]] == [("rlver", gen)], d
    assert plugin_state(h, T, "catalog")["status"] == "active"
    assert plugin_state(h, T)["status"] == "stale"
    h.assert_serving("t1")
    assert version_of(h) == 1
    reset()


def test_requests_pipelined_around_a_reload():
    """Three requests in one read: the one before the reload is answered by
    the old version and its write is kept, the one after by the new."""
    h = host()
    reset()
    _, _, n0 = h.get("/v1/t1/rlver/hit/pipe")
    P.write(version=2)
    c = h.raw()
    try:
        c.send(http_request_bytes("POST", "/v1/t1/rlver/hit/pipe", {}) +
               http_request_bytes("POST", "/admin/t1/reload", {"plugin": "rlver"},
                                  {"X-Api-Key": api_key(T)}) +
               http_request_bytes("POST", "/v1/t1/rlver/hit/pipe", {}))
        r1, r2, r3 = c.read_response(), c.read_response(), c.read_response()
    finally:
        c.close()
    assert (r1.status, r2.status, r3.status) == (200, 200, 200), (r1, r2, r3)
    assert r1.json() == {"version": 1, "n": n0["n"] + 1}, r1
    assert r2.json()["reloaded"][0]["serving_version"] == "2.0.0", r2
    assert r3.json() == {"version": 2, "n": n0["n"] + 2}, r3
    _, _, n1 = h.get("/v1/t1/rlver/hit/pipe")
    assert n1 == {"version": 2, "n": n0["n"] + 2}, n1
    reset()


def test_a_plugin_that_failed_at_start_can_be_reloaded_in():
    plug = Plug()
    plug.write(version=1, broken=True)
    t = rl_tenant()
    with rl_host(plug, [t], "reload-late") as h:
        st = plugin_state(h, t)
        assert st["status"] == "failed" and st["generation"] == 0, st
        assert "unexpected symbol" in st["last_error"], st
        expect_error(h.get("/v1/t1/rlver/version"), 404, "route_not_found")
        h.assert_serving("t1")
        plug.write(version=1)
        status, _, body = reload(h, t)
        assert status == 200, body
        assert body["reloaded"][0]["generation"] == 1, body
        st = plugin_state(h, t)
        assert st["status"] == "active" and st["last_error"] is None, st
        assert version_of(h) == 1
        status, _, body = h.post("/v1/t1/rlver/hit/late")
        assert status == 200 and body == {"version": 1, "n": 1}, body


# ---- 3. a new version brings a migration and a route

def test_new_migration_and_route_arrive_with_the_new_version():
    plug = Plug()
    t = rl_tenant()
    with rl_host(plug, [t], "reload-migrate") as h:
        expect_error(h.post("/v1/t1/rlver/notes", {"text": "x"}), 404, "route_not_found")
        names, mig = tables(h)
        assert "rlver_notes" not in names and mig == 2, (names, mig)
        mark = h.log_mark()
        plug.write(version=2, migrations=[
            '"CREATE TABLE rlver_notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)"'], routes=[
            '{ method = "POST", path = "/rlver/notes", auth = "none", handler = function(req) '
            'tp.db.exec("INSERT INTO rlver_notes (text) VALUES (?)", req.body.text) '
            'return 201, tp.db.one("SELECT count(*) AS n, max(text) AS last FROM rlver_notes") end }'])
        status, _, body = reload(h, t)
        assert status == 200 and body["reloaded"][0]["serving_version"] == "2.0.0", body
        e = h.wait_log(lambda e: e.get("msg") == "migrations applied" and
                       e.get("plugin") == "rlver", timeout=10, start=mark)
        assert e["count"] == 1, e
        status, _, body = h.post("/v1/t1/rlver/notes", {"text": "first"})
        assert status == 201 and body == {"n": 1, "last": "first"}, body
        names, mig = tables(h)
        assert "rlver_notes" in names and mig == 3, (names, mig)
        # the old code cannot come back over the newer schema
        plug.write(version=1)
        body = expect_error(reload(h, t), 422, "reload_failed")
        assert "downgrade" in body["error"]["details"]["failed"][0]["error"], body
        assert version_of(h) == 2
        status, _, body = h.post("/v1/t1/rlver/notes", {"text": "second"})
        assert status == 201 and body == {"n": 2, "last": "second"}, body


# ---- 4. SIGHUP

def test_sighup_reloads():
    h = host()
    gen = reset()
    P.write(version=2)
    mark = h.log_mark()
    h.proc.send_signal(signal.SIGHUP)
    e = h.wait_log(lambda e: e.get("msg") == "plugin reloaded" and e.get("plugin") == "rlver",
                   timeout=10, start=mark)
    assert e["version"] == "2.0.0" and e["generation"] == gen + 1 and e["tenant"] == "t1", e
    h.wait_log(lambda e: e.get("msg") == "plugin reloaded" and e.get("plugin") == "catalog",
               timeout=10, start=mark)
    assert version_of(h) == 2
    st = plugin_state(h, T)
    assert st["status"] == "active" and st["generation"] == gen + 1, st
    reset()


# ---- 5. the reload command

def cli_reload(h, *args, env=None, port=None):
    e = dict(os.environ)
    e.pop("TIDEPOOL_ADMIN_KEY", None)
    e.update(env or {})
    cmd = [BIN, "reload", "--config", h.config_path,
           "--listen", "127.0.0.1:%d" % (port or h.port)] + list(args)
    return subprocess.run(cmd, capture_output=True, timeout=120, env=e)


def test_reload_command():
    h = host()
    gen = reset()
    P.write(version=2)
    out = cli_reload(h, "--plugin", "rlver")
    assert out.returncode == 0, out
    body = json.loads(out.stdout)
    assert body["failed"] == [] and body["matched"] == 1, body
    r = body["reloaded"][0]
    assert (r["tenant"], r["plugin"], r["serving_version"], r["generation"]) == \
        ("t1", "rlver", "2.0.0", gen + 1), body
    assert version_of(h) == 2
    # a broken version: exit 1, the outcome says why, v2 keeps serving
    P.write(version=3, broken=True)
    out = cli_reload(h, "--tenant", "t1", "--plugin", "rlver")
    assert out.returncode == 1, out
    body = json.loads(out.stdout)
    assert body["error"]["code"] == "reload_failed", body
    f = body["error"]["details"]["failed"][0]
    assert f["plugin"] == "rlver" and "unexpected symbol" in f["error"], body
    assert f["serving_version"] == "2.0.0", body
    assert version_of(h) == 2
    # nobody listening: exit 3
    out = cli_reload(h, "--plugin", "rlver", port=free_port())
    assert out.returncode == 3, out
    assert out.stderr, out
    # a wrong key: exit 2
    out = cli_reload(h, "--plugin", "rlver", env={"TIDEPOOL_ADMIN_KEY": "wrong-key-0123456789abcdef"})
    assert out.returncode == 2, out
    # the endpoint itself
    expect_error(h.post("/admin/reload", {"plugin": "rlver"},
                        headers={"X-Api-Key": "wrong-key-0123456789abcdef"}), 403, "invalid_api_key")
    expect_error(h.post("/admin/reload", {"plugin": "rlver"},
                        headers={"X-Api-Key": api_key(T)}), 403, "invalid_api_key")
    expect_error(h.post("/admin/reload", {"plugin": "rlver"}), 401, "api_key_required")
    assert version_of(h) == 2
    P.write(version=1)
    status, _, body = h.post("/admin/reload", {"tenant": "t1", "plugin": "rlver"},
                             headers={"X-Api-Key": ADMIN_KEY})
    assert status == 200 and body["reloaded"][0]["serving_version"] == "1.0.0", body
    assert version_of(h) == 1
    reset()


# ---- 6. serve --watch

class WatchHost(Host):
    """`tidepool serve --watch`, started here rather than by the harness."""

    def start(self):
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        with self.cond:
            self.run_start = len(self.lines)
        self.proc = subprocess.Popen(
            [BIN, "serve", "--config", self.config_path, "--listen", "127.0.0.1:0", "--watch"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        self.reader = threading.Thread(target=self._read_stderr, args=(self.proc,), daemon=True)
        self.reader.start()
        line = self.wait_log(lambda e: e.get("msg") == "listening", timeout=60,
                             what="the listening line")
        self.port = line["port"]
        return self


def wait_version(h, want, timeout):
    t0 = time.monotonic()
    wait_until(lambda: version_of(h) == want, timeout, interval=0.05,
               what="version %d to be served" % want)
    return time.monotonic() - t0


def test_watch_reloads_on_file_change():
    plug = Plug()
    t = rl_tenant()
    h = WatchHost(tenants=[t], name="reload-watch",
                  extra={"plugin_dirs": plug.plugin_dirs(), "admin_keys": [ADMIN_KEY],
                         "sdk_dir": os.path.join(SRC, "sdk")})
    try:
        h.start()
        h.wait_log(lambda e: e.get("msg") == "watching plugin files", timeout=10)
        assert version_of(h) == 1
        mark = h.log_mark()
        plug.write(version=2)
        took = wait_version(h, 2, 3.0)
        print("     --watch: new version served %.2fs after the edit" % took)
        e = h.wait_log(lambda e: e.get("msg") == "plugin reloaded" and e.get("plugin") == "rlver",
                       timeout=5, start=mark)
        assert e["version"] == "2.0.0", e
        # a broken edit keeps v2; fixing it brings the next version
        mark = h.log_mark()
        plug.write(version=3, broken=True)
        h.wait_log(lambda e: e.get("msg") == "reload failed; the old version keeps serving"
                   and e.get("plugin") == "rlver", timeout=3, start=mark)
        assert version_of(h) == 2
        assert plugin_state(h, t)["status"] == "stale"
        plug.write(version=3)
        wait_version(h, 3, 3.0)
        assert plugin_state(h, t)["status"] == "active"
        # a module in a subfolder of the plugin
        assert h.get("/v1/t1/rlver/word")[2] == {"word": "one", "version": 3}
        with open(os.path.join(plug.dir, "lib", "word.lua"), "w") as f:
            f.write('return { word = "two" }\n')
        wait_until(lambda: h.get("/v1/t1/rlver/word")[2]["word"] == "two", 3.0,
                   what="the edited module to be served")
        assert plugin_state(h, t)["generation"] == 4
        h.stop()
    finally:
        h.cleanup()


# ---- 7. jobs follow the current generation

def test_jobs_run_under_the_current_generation():
    h = host()
    reset()
    _, _, before = h.get("/v1/t1/rlver/log")
    status, _, a = h.post("/v1/t1/rlver/schedule/note/60")
    assert status == 201 and a["version"] == 1, a
    status, _, b = h.post("/v1/t1/rlver/schedule/gone/60")
    assert status == 201, b
    P.write(version=2, gone=False)
    status, _, body = reload(h, T)
    assert status == 200, body
    mark = h.log_mark()
    status, _, adv = h.admin("POST", "/clock/advance", T, body={"seconds": 60})
    assert status == 200 and adv["tasks_run"] == 2 and adv["tasks_failed"] == 1, adv
    _, _, log = h.get("/v1/t1/rlver/log")
    new = log["rows"][len(before["rows"]):]
    assert new == [{"job": "note", "version": 2, "scheduled_by": 1}], log
    # the job without a handler in v2 waits for a retry, with the reason
    status, _, jobs = h.admin("GET", "/jobs?state=pending", T)
    assert status == 200 and jobs["dead"] == 0, jobs
    pend = [j for j in jobs["jobs"] if j["id"] == b["id"]]
    assert len(pend) == 1 and pend[0]["name"] == "gone" and pend[0]["attempts"] == 1, jobs
    assert "has no job handler 'gone'" in pend[0]["last_error"], pend
    assert "2.0.0" in pend[0]["last_error"], pend
    assert not [j for j in jobs["jobs"] if j["id"] == a["id"]], jobs
    e = h.wait_log(lambda e: e.get("msg") == "task failed" and e.get("name") == "gone",
                   timeout=10, start=mark)
    assert "has no job handler" in e["error"] and "outcome" not in e, e
    # with the handler back, the retry runs it
    P.write(version=1)
    status, _, body = reload(h, T)
    assert status == 200, body
    status, _, adv = h.admin("POST", "/clock/advance", T, body={"seconds": 3600})
    assert status == 200 and adv["tasks_run"] == 1 and adv["tasks_failed"] == 0, adv
    _, _, log = h.get("/v1/t1/rlver/log")
    new = log["rows"][len(before["rows"]):]
    assert new == [{"job": "note", "version": 2, "scheduled_by": 1},
                   {"job": "gone", "version": 1, "scheduled_by": 1}], log
    _, _, jobs = h.admin("GET", "/jobs?state=pending", T)
    assert jobs["pending"] == 0 and jobs["dead"] == 0, jobs


def teardown():
    if H is not None:
        H.stop()
    for p in _plugs:
        shutil.rmtree(p.root, ignore_errors=True)
    if RELOAD_TIMES:
        ms = sorted(RELOAD_TIMES)
        print("reload ms under load: min %.2f median %.2f max %.2f (n=%d)"
              % (ms[0], statistics.median(ms), ms[-1], len(ms)))


if __name__ == "__main__":
    run(globals())
