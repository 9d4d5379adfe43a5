"""
test_lazy.py - brands opened on demand and closed when idle (issue 24, item 3;
core/host/brands.c, open_tenants = {lazy = true, idle_seconds = N}).

- A start opens no brand: its log has no "brand opened", its metrics say 0 of 40
  open, and no brand's database file is held open (claims).
- A request opens its brand (logged with why "request") and only that one; the
  brand closes again after idle_seconds without use, and a request opens it again.
- A job of a closed brand fires on time: its brand opens for it ("task"), also
  after a restart, where the due time comes from the due index without reading the
  brand's file, and after a kill -9, where only the brand that was open is read.
- A call out retried after its brand closed goes when due ("call out"), and its
  reply reaches the plugin.
- A closed brand is not held: another process may take its claim (`tidepool
  restore` succeeds), and an open one is refused.
- A brand that cannot be opened answers 503 tenant_unavailable and the rest serve.
"""
import http.server
import os
import socketserver
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, Host, tenant, free_port, run, wait_until  # noqa: E402

N = 40
TENANTS = [tenant("b%02d" % i, plugins={"autoinc": {}, "schjobs": {}}) for i in range(N)]
T = TENANTS[0]


def lazy_host(name, idle=1):
    h = Host(tenants=TENANTS, name=name)
    h.extra = {"open_tenants": {"lazy": True, "idle_seconds": idle},
               "backup": {"dir": os.path.join(h.dir, "backups"), "every_seconds": 0}}
    h.write_config()
    return h


def opened(h, start=0):
    return [e for e in h.logs()[start:] if e.get("msg") == "brand opened"]


def metric(h, name):
    for line in h.metrics().splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    raise AssertionError("no %s in the metrics" % name)


def test_a_start_opens_nothing_and_a_request_opens_one_brand_until_idle():
    h = lazy_host("lazy-open").start()
    try:
        assert opened(h) == [], opened(h)
        assert metric(h, "tidepool_brands_open") == 0 and metric(h, "tidepool_brands") == N
        line = [e for e in h.logs() if e.get("msg") == "brands closed until needed"]
        assert line[0]["due_times_read_from_their_files"] == N, line   # the first start reads them all
        status, _, body = h.post("/v1/b07/autoinc/rows", {})
        assert status == 201 and body["id"] == 1, (status, body)
        wait_until(lambda: opened(h), timeout=5, what="the brand opened line")
        o = opened(h)
        assert [(e["tenant"], e["why"]) for e in o] == [("b07", "request")], o
        assert metric(h, "tidepool_brands_open") == 1
        wait_until(lambda: any(e.get("msg") == "brand closed" and e.get("tenant") == "b07" for e in h.logs()),
                   timeout=10, what="b07 closed when idle")
        assert metric(h, "tidepool_brands_open") == 0
        status, _, body = h.post("/v1/b07/autoinc/rows", {})   # opens again, its data as it was
        assert status == 201 and body["id"] == 2, (status, body)
        wait_until(lambda: len(opened(h)) == 2, timeout=5, what="the second brand opened line")
    finally:
        h.stop()


def test_a_closed_brands_job_fires_on_time_also_after_a_restart():
    h = lazy_host("lazy-jobs").start()
    try:
        status, _, body = h.post("/v1/b03/schjobs/schedule",
                                 {"name": "record", "payload": {"tag": "soon"}, "when": {"after": 3}})
        assert status == 200, (status, body)
        status, _, body = h.post("/v1/b05/schjobs/schedule",
                                 {"name": "record", "payload": {"tag": "later"}, "when": {"after": 6}})
        assert status == 200, (status, body)
        wait_until(lambda: sum(e.get("msg") == "brand closed" for e in h.logs()) >= 2, timeout=10,
                   what="both brands closed")
        mark = len(h.logs())
        wait_until(lambda: any(e["tenant"] == "b03" and e["why"] == "task" for e in opened(h, mark)),
                   timeout=10, what="b03 opened for its job")
        status, _, runs = h.get("/v1/b03/schjobs/runs")
        assert [r["tag"] for r in runs["runs"]] == ["soon"], runs
        r = runs["runs"][0]
        assert 0 <= r["now_ms"] - r["due_ms"] < 1500, ("late", r)
    finally:
        h.stop()
    # b05's job is still pending: a restart reads its due time without opening b05, and
    # without reading its file either: every brand's due times are in the index
    h.start()
    try:
        assert opened(h) == [], opened(h)
        line = [e for e in h.logs() if e.get("msg") == "brands closed until needed"]
        assert line and line[0]["brands"] == N and line[0]["due_times_read_from_their_files"] == 0, line
        wait_until(lambda: any(e["tenant"] == "b05" and e["why"] == "task" for e in opened(h)),
                   timeout=15, what="b05 opened for its job after the restart")
        status, _, runs = h.get("/v1/b05/schjobs/runs")
        assert [r["tag"] for r in runs["runs"]] == ["later"], runs
        assert runs["runs"][0]["now_ms"] - runs["runs"][0]["due_ms"] < 1500, runs
        assert [e["tenant"] for e in opened(h)][:1] == ["b05"]
    finally:
        h.stop()


def test_after_a_kill_the_brands_that_were_open_are_read_from_their_files():
    h = lazy_host("lazy-kill", idle=3600).start()
    try:
        h.stop()
        h.start()   # every brand's row is in the index now
        status, _, body = h.post("/v1/b11/schjobs/schedule",
                                 {"name": "record", "payload": {"tag": "after-kill"}, "when": {"after": 3}})
        assert status == 200, (status, body)
        h.kill9()   # b11 open, its job only in its WAL: the index knows nothing of it
        h.start()
        line = [e for e in h.logs() if e.get("msg") == "brands closed until needed"]
        assert line[0]["due_times_read_from_their_files"] == 1, line
        wait_until(lambda: any(e["tenant"] == "b11" and e["why"] == "task" for e in opened(h)),
                   timeout=15, what="b11 opened for its job after the kill")
        status, _, runs = h.get("/v1/b11/schjobs/runs")
        assert [r["tag"] for r in runs["runs"]] == ["after-kill"], runs
    finally:
        h.stop()


def test_a_closed_brands_call_out_goes_when_due():
    """The first attempt finds nobody listening; the retry is due 3 s later, after the
    brand closed; the sender opens the brand for it, the call goes, the reply is kept."""
    port = free_port()
    caller = tenant("callr", plugins={"caller": {}})
    caller["http"] = {"erp": {"url": "http://127.0.0.1:%d/api" % port, "plugins": ["caller"],
                              "timeout_ms": 300, "retry_base_ms": 3000, "max_attempts": 5}}
    h = Host(tenants=[caller, TENANTS[0]], name="lazy-call")
    h.extra = {"open_tenants": {"lazy": True, "idle_seconds": 1}}
    h.write_config()
    h.start()

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "11")
            self.end_headers()
            self.wfile.write(b'{"ok":true}')

        def log_message(self, *args):
            pass

    server = None
    try:
        status, _, body = h.post("/v1/callr/caller/calls", {"to": "erp", "path": "/x", "json": {"n": 1}})
        assert status == 201, (status, body)
        wait_until(lambda: any(e.get("msg") == "brand closed" and e.get("tenant") == "callr" for e in h.logs()),
                   timeout=10, what="the caller's brand closed with its call waiting")
        mark = len(h.logs())
        server = socketserver.TCPServer(("127.0.0.1", port), Answer)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        wait_until(lambda: any(e["tenant"] == "callr" and e["why"] == "call out" for e in opened(h, mark)),
                   timeout=15, what="the brand opened for its due call")
        wait_until(lambda: h.get("/v1/callr/caller/replies")[2]["items"], timeout=15, what="the reply")
        reply = h.get("/v1/callr/caller/replies")[2]["items"][0]
        assert reply["ok"] is True and reply["status"] == 200, reply
    finally:
        h.stop()
        if server:
            server.shutdown()
            server.server_close()


def test_a_closed_brand_is_not_held_and_an_open_one_is():
    h = lazy_host("lazy-claim", idle=3600).start()
    try:
        assert h.post("/v1/b01/autoinc/rows", {})[0] == 201     # b01 open (for an hour); b02 never opened
        for b in ("b01",):   # beside the host: a backup only reads
            code = subprocess.run([BIN, "backup", "--config", h.config_path, "--tenant", b],
                                  capture_output=True, text=True).returncode
            assert code == 0
        p = subprocess.run([BIN, "restore", "--config", h.config_path, "--tenant", "b01"],
                           capture_output=True, text=True)
        assert p.returncode == 1 and "stop that host first" in p.stderr, p.stderr
        # b02 is closed: a restore may take its claim (a backup of b01 stands in for it)
        p = subprocess.run([BIN, "restore", "--config", h.config_path, "--tenant", "b02", "--file",
                            os.path.join(h.dir, "backups", "b01", os.listdir(os.path.join(h.dir, "backups", "b01"))[0])],
                           capture_output=True, text=True)
        assert p.returncode == 0 and "restored from" in p.stderr + p.stdout, p.stderr
        status, _, body = h.post("/v1/b02/autoinc/rows", {})   # b02 opens with b01's row in it
        assert status == 201 and body["id"] == 2, (status, body)
    finally:
        h.stop()


def test_a_brand_that_cannot_open_answers_503_and_the_rest_serve():
    h = lazy_host("lazy-broken").start()
    try:
        os.makedirs(h.data_dir, exist_ok=True)
        with open(os.path.join(h.data_dir, "b09.db"), "wb") as f:
            f.write(b"this is not a database" * 100)
        status, headers, body = h.post("/v1/b09/autoinc/rows", {})
        assert status == 503 and body["error"]["code"] == "tenant_unavailable", (status, body)
        assert headers.get("retry-after") == "5", headers
        wait_until(lambda: any(e.get("msg") == "brand not opened" and e.get("tenant") == "b09" for e in h.logs()),
                   timeout=5, what="the brand not opened line")
        assert h.post("/v1/b10/autoinc/rows", {})[0] == 201
        assert metric(h, "tidepool_brands_open") == 1
    finally:
        h.stop()


if __name__ == "__main__":
    run(globals())
