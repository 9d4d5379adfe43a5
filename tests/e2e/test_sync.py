"""
test_sync.py - commits made durable by the host's syncer thread (store/walsync.h): what
waits for the disk and what does not.

The host runs with a slow disk for its threads but the loop's (the LD_PRELOAD
shim tests/e2e/shim/slowsync.c: every fdatasync or fsync off the loop's
thread sleeps DELAY first), so a commit's sync takes DELAY while the loop
keeps its speed. Then, with a write's sync in flight:
  - the write's own answer comes only after its sync;
  - a read of another plugin's tables is answered at once;
  - a read of the written plugin's tables waits for the sync;
  - a call out the write made leaves only after the sync;
  - a sync the disk refuses refuses the answers that waited for it;
  - a stop while a sync runs still sends the answer that waited for it;
  - a sync does not wait behind libuv's pool (4 threads, password checks in them);
  - an answer held past the idle timeout still goes;
  - an answer keeps the fate of its own commit, whatever commit fails later;
  - a sync started while a batch is open does not free that batch's calls out;
  - a sync that cannot start refuses its answers instead of leaving them waiting;
  - a batch of events (intake's own file, committed with the iteration's batch)
    is acknowledged, and counted, only once its commit is made: a failed one
    refuses them all.
That an answered write survives kill -9 with the sync on that thread is
test_durability.py's and test_crash.py's to show (they run with it).
"""
import http.client
import json
import os
import socket
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import QuietHandler, serve_loopback, Host, metric_value, tenant, run  # noqa: E402

DELAY = 1.0   # seconds each sync off the loop takes
FAST = 0.5    # an answer that did not wait for a sync comes well within this


class Upstream:
    """Records when each call out arrives."""

    def __init__(self):
        self.seen = []
        up = self

        class Handler(QuietHandler):

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                up.seen.append((time.monotonic(), self.path))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST

        self.server, self.port = serve_loopback(Handler)


UP = Upstream()


def brand():
    t = tenant("t1", plugins={"probe": {}, "catalog": {}, "caller": {}})
    t["http"] = {"erp": {"url": "http://127.0.0.1:%d" % UP.port, "plugins": ["caller"],
                         "timeout_ms": 5000, "max_attempts": 1}}
    # room for a long handler (test_a_sync_started_mid_batch_...)
    t["plugin_limits"] = {"caller": {"instructions": 4000000000, "deadline_ms": 30000}}
    return t


def slow_host(name, delay=DELAY, limits=None, wal_open_fails=False):
    shim = os.environ.get("TIDEPOOL_SLOWSYNC")
    assert shim and os.path.exists(shim), "the slow-disk shim is not built (TIDEPOOL_SLOWSYNC=%r)" % shim
    h = Host(tenants=[brand()], synchronous="full", name=name, limits=limits)
    h.fail_flag = os.path.join(h.dir, "fail-syncs")
    h.write_fail_flag = os.path.join(h.dir, "fail-writes")
    h.wal_open_fail_flag = os.path.join(h.dir, "fail-wal-open")
    if wal_open_fails:  # from the start: the first sync's open of the WAL fails
        open(h.wal_open_fail_flag, "w").close()
    keys = ("LD_PRELOAD", "TP_TEST_SYNC_DELAY_MS", "TP_TEST_SYNC_FAIL_FLAG", "TP_TEST_WRITE_FAIL_FLAG",
            "TP_TEST_WALOPEN_FAIL_FLAG", "ASAN_OPTIONS")
    old = {k: os.environ.get(k) for k in keys}
    os.environ["LD_PRELOAD"] = shim
    os.environ["TP_TEST_SYNC_DELAY_MS"] = str(int(delay * 1000))
    os.environ["TP_TEST_SYNC_FAIL_FLAG"] = h.fail_flag
    os.environ["TP_TEST_WRITE_FAIL_FLAG"] = h.write_fail_flag
    os.environ["TP_TEST_WALOPEN_FAIL_FLAG"] = h.wal_open_fail_flag
    # the shim comes before the sanitizers' runtime in the list of libraries
    os.environ["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0:verify_asan_link_order=0"
    try:
        h.start()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return h if wal_open_fails else warm(h)


def warm(h):
    """A first commit and its sync out of the way (the WAL's folder is synced
    once): the brand has one probe item."""
    assert timed(h, "POST", "/v1/t1/probe/items", {"note": "warm"})[0] == 201
    return h


def timed(h, method, path, body=None, out=None, key=None, headers=None):
    """The request's status and body, and how long its answer took (s);
    into out[key] when given (for a thread)."""
    start = time.monotonic()
    status, _, b = h.request(method, path, body=body, headers=headers)
    r = (status, b, time.monotonic() - start, start)
    if out is not None:
        out[key] = r
    return r


def in_thread(h, method, path, body=None):
    out = {}
    th = threading.Thread(target=timed, args=(h, method, path, body, out, "r"))
    th.start()
    return th, out


def test_a_write_waits_for_its_sync_and_reads_of_other_plugins_do_not():
    h = slow_host("sync")
    try:
        status, body, took, _ = timed(h, "GET", "/v1/t1/catalog/products")
        assert status == 200 and took < FAST, (status, body, took)

        th, out = in_thread(h, "POST", "/v1/t1/probe/items", {"note": "slow"})
        time.sleep(0.2)  # the write is committed; its sync runs
        status, body, took, _ = timed(h, "GET", "/v1/t1/catalog/products")
        assert status == 200, body
        assert took < FAST, "a read of another plugin waited %.2fs for the write's sync" % took
        status, body, took_probe, _ = timed(h, "GET", "/v1/t1/probe/items/count")
        th.join(10)
        w_status, w_body, w_took, _ = out["r"]
        assert w_status == 201, w_body
        assert w_took >= DELAY * 0.9, "the write was answered after %.2fs, before its sync" % w_took
        assert status == 200 and body["count"] == 2, body
        # the read started 0.2 s into the sync: it waited for the rest
        assert took_probe >= DELAY * 0.6, \
            "a read of the written plugin was answered after %.2fs, before the sync" % took_probe
    finally:
        h.stop()


def test_a_held_answer_outlasts_the_idle_timeout():
    """A connection whose answer waits for a sync is not idle: a disk slower
    than idle_timeout_ms (or a handler longer than it) must not make the
    server close it with the answer unsent."""
    h = slow_host("syncidle", limits={"idle_timeout_ms": 100})
    try:
        c = http.client.HTTPConnection("127.0.0.1", h.port, timeout=10)
        start = time.monotonic()
        c.request("POST", "/v1/t1/probe/items", body=json.dumps({"note": "held"}),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        body = r.read()
        assert r.status == 201, (r.status, body)
        assert time.monotonic() - start >= DELAY * 0.9, "answered before its sync"
        # once its answer is out, the connection is idle and closed as before
        time.sleep(0.6)
        assert c.sock.recv(1) == b"", "the idle connection was not closed"
        c.close()
    finally:
        h.stop()


def test_a_call_out_leaves_only_once_its_commit_is_synced():
    h = slow_host("synccall")
    try:
        sent_at = time.monotonic()
        status, body, took, _ = timed(h, "POST", "/v1/t1/caller/calls",
                                      {"to": "erp", "path": "/order", "no_reply": True})
        assert status == 201 and took >= DELAY * 0.9, (status, body, took)
        deadline = time.monotonic() + 10
        while not UP.seen and time.monotonic() < deadline:
            time.sleep(0.02)
        assert UP.seen, "the call never left"
        arrived, path = UP.seen[0]
        assert path == "/order", path
        assert arrived - sent_at >= DELAY * 0.9, \
            "the call left %.2fs after its POST, before the commit's sync" % (arrived - sent_at)
    finally:
        h.stop()


def test_a_sync_the_disk_refuses_refuses_the_answers_that_waited_for_it():
    h = slow_host("syncfail", delay=0.05)
    try:
        open(h.fail_flag, "w").close()
        status, body, _, _ = timed(h, "POST", "/v1/t1/probe/items", {"note": "lost?"})
        assert status == 503 and body["error"]["code"] == "commit_failed", (status, body)
        h.wait_log(lambda e: e.get("msg", "").startswith("the disk did not sync"), timeout=5,
                   what="the sync's failure logged")
        # a read of that plugin rests on the commit the disk refused: it is refused too
        status, body, _, _ = timed(h, "GET", "/v1/t1/probe/items/count")
        assert status == 503, (status, body)
        # a read of another plugin rests on nothing the disk refused
        status, body, _, _ = timed(h, "GET", "/v1/t1/catalog/products")
        assert status == 200, (status, body)
        os.unlink(h.fail_flag)
        # the disk is back: the next sync covers the refused commit too
        status, body, _, _ = timed(h, "POST", "/v1/t1/probe/items", {"note": "after"})
        assert status == 201, (status, body)
        status, body, _, _ = timed(h, "GET", "/v1/t1/probe/items/count")
        assert status == 200 and body["count"] == 3, (status, body)
        # /metrics counts the syncs and what they took
        _, _, text = h.request("GET", "/metrics")
        assert metric_value(text, "tidepool_syncs_total", {"result": "failed"}) >= 1, text
        assert metric_value(text, "tidepool_syncs_total", {"result": "ok"}) >= 2, text
        assert metric_value(text, "tidepool_sync_duration_seconds_count") >= 3, text
    finally:
        if os.path.exists(h.fail_flag):
            os.unlink(h.fail_flag)
        h.stop()


def raw_post(path, body):
    """The bytes of a JSON POST, to pipeline on a raw socket."""
    data = json.dumps(body).encode()
    return ("POST %s HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\n\r\n" % (path, len(data))).encode() + data


def read_answers(sock, n):
    """The statuses of the next n answers on sock."""
    buf, statuses = b"", []
    while len(statuses) < n:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            more = sock.recv(65536)
            assert more, "the connection closed after %d answers: %r" % (len(statuses), statuses)
            buf += more
            continue
        head = buf[:end].decode("iso-8859-1").split("\r\n")
        length = next(int(line.split(":", 1)[1]) for line in head if line.lower().startswith("content-length:"))
        while len(buf) < end + 4 + length:
            buf += sock.recv(65536)
        statuses.append(int(head[0].split()[1]))
        buf = buf[end + 4 + length:]
    return statuses


def test_an_answer_keeps_the_fate_of_its_own_commit():
    """An answer held for its sync goes iterations after its commit; the
    store's flag of a failed commit then speaks of other commits. A saved
    write is not refused because a later commit failed, and a write whose
    commit failed is not acknowledged because the answer before it on its
    connection was held past the failure."""
    h = slow_host("syncfate")
    try:
        # A commits and waits 1 s for its sync; then every COMMIT fails (the
        # WAL cannot be written) while writes keep coming on other connections
        sock = socket.create_connection(("127.0.0.1", h.port), timeout=10)
        sock.sendall(raw_post("/v1/t1/probe/items", {"note": "A"}))
        time.sleep(0.2)
        open(h.write_fail_flag, "w").close()
        # B, pipelined behind A on its connection: its commit fails while A waits
        sock.sendall(raw_post("/v1/t1/probe/items", {"note": "B"}))
        refused = []
        stop = time.monotonic() + DELAY + 0.3
        while time.monotonic() < stop:  # failing commits in the iterations around A's release
            status, _, _ = h.request("POST", "/v1/t1/probe/items", body={"note": "C"})
            refused.append(status)
        assert refused and all(st == 503 for st in refused), refused
        got = read_answers(sock, 2)
        assert got == [201, 503], "A (saved) and B (rolled back) were answered %r" % got
        sock.close()
        os.unlink(h.write_fail_flag)
        status, _, body = h.request("GET", "/v1/t1/probe/items/count")
        assert status == 200 and body["count"] == 2, body   # warm's and A's
    finally:
        if os.path.exists(h.write_fail_flag):
            os.unlink(h.write_fail_flag)
        h.stop()


def test_a_sync_started_mid_batch_does_not_free_the_batchs_calls():
    """A sync that starts while a batch is open (the loop hears of the one
    before it finished after a long handler, and starts the next for the
    commits made meanwhile) covers the commits made before it, not that
    batch: a call out the batch made leaves only with the sync after the
    batch's commit, when its request is answered too."""
    h = slow_host("syncmid", limits={"invocation_ms": 30000})
    try:
        UP.seen.clear()
        w1, o1 = in_thread(h, "POST", "/v1/t1/probe/items", {"note": "w1"})  # its sync: 1 s
        time.sleep(0.1)
        w2, o2 = in_thread(h, "POST", "/v1/t1/probe/items", {"note": "w2"})  # committed, owed
        time.sleep(0.1)
        # the call, then 2-6 s of SQL: w1's sync ends while this batch is open
        c, oc = in_thread(h, "POST", "/v1/t1/caller/calls",
                          {"to": "erp", "path": "/mid", "no_reply": True, "spin": 20000000})
        for th in (w1, w2, c):
            th.join(30)
        status, body, took, started = oc["r"]
        assert status == 201, (status, body)
        answered = started + took
        deadline = time.monotonic() + 10
        while not UP.seen and time.monotonic() < deadline:
            time.sleep(0.02)
        assert UP.seen, "the call never left"
        arrived = UP.seen[0][0]
        # the call leaves with the sync that makes its commit durable, which
        # also releases the answer: not a whole sync (1 s) before it
        assert arrived >= answered - DELAY / 2, \
            "the call left %.2fs before its request's commit was synced" % (answered - arrived)
    finally:
        h.stop()


def test_a_sync_that_cannot_start_refuses_its_answers():
    """The host's first sync of a brand opens its WAL; when that fails (out of
    file descriptors), the answers that wait for it are refused at once, not
    left waiting for a commit that may never come, and the next commit tries
    again."""
    h = slow_host("synckick", delay=0.05, wal_open_fails=True)
    try:
        status, body, _, _ = timed(h, "POST", "/v1/t1/probe/items", {"note": "unsynced"})
        assert status == 503 and body["error"]["code"] == "commit_failed", (status, body)
        h.wait_log(lambda e: e.get("msg", "").startswith("cannot sync the brand's commits"), timeout=5,
                   what="the failure logged")
        os.unlink(h.wal_open_fail_flag)
        status, body, _, _ = timed(h, "POST", "/v1/t1/probe/items", {"note": "synced"})
        assert status == 201, (status, body)
        status, _, body = h.request("GET", "/v1/t1/probe/items/count")
        assert status == 200 and body["count"] == 2, body  # the refused one was saved after all
        _, _, text = h.request("GET", "/metrics")
        assert metric_value(text, "tidepool_syncs_total", {"result": "failed"}) >= 1, text
    finally:
        if os.path.exists(h.wal_open_fail_flag):
            os.unlink(h.wal_open_fail_flag)
        h.stop()


def test_a_signed_in_read_does_not_wait_for_the_hosts_other_tables():
    h = slow_host("syncauth")
    try:
        auth = {"Authorization": "Bearer " + h.token("t1", "ann")}
        # a call out: the caller's table and the host's outbox, synced for DELAY
        th, out = in_thread(h, "POST", "/v1/t1/caller/calls", {"to": "erp", "path": "/x", "no_reply": True})
        time.sleep(0.2)
        # the token's alias is read from the host's _tp_aliases, which nothing wrote
        status, body, took, _ = timed(h, "GET", "/v1/t1/probe/echo/hi/1", headers=auth)
        assert status == 200 and body["user"] == "ann", body
        assert took < FAST, "a signed-in read waited %.2fs for the outbox's sync" % took
        th.join(10)
        assert out["r"][0] == 201 and out["r"][2] >= DELAY * 0.9, out["r"]
    finally:
        h.stop()


def test_a_stop_while_a_sync_runs_answers_the_write_and_keeps_it():
    h = slow_host("syncstop")
    try:
        th, out = in_thread(h, "POST", "/v1/t1/probe/items", {"note": "at the stop"})
        time.sleep(0.2)  # committed; its sync runs
        h.stop()         # SIGTERM: the answer held for the sync still goes
        th.join(10)
        status, body, took, _ = out["r"]
        assert status == 201 and took >= DELAY * 0.9, (status, body, took)
        for k in ("LD_PRELOAD", "TP_TEST_SYNC_DELAY_MS", "TP_TEST_WRITE_FAIL_FLAG", "TP_TEST_WALOPEN_FAIL_FLAG"):
            assert k not in os.environ
        h.start()        # a normal disk
        status, _, body = h.request("GET", "/v1/t1/probe/items/count")
        assert status == 200 and body["count"] == 2, body
    finally:
        h.stop()


def test_a_sync_does_not_wait_behind_libuvs_pool():
    """libuv's pool has 4 threads; console password checks (and backups, and
    moves) can fill it for seconds. The syncs have a thread of their own."""
    h = warm(Host(tenants=[brand()], synchronous="full", name="syncpool",
                  extra={"console": {"password_iterations": 3000000, "sign_in_failures": 100}}).start())
    try:
        start = time.monotonic()
        checks = [in_thread(h, "POST", "/console/api/t1/session", {"user": "nobody%d" % i, "password": "x"})
                  for i in range(6)]
        time.sleep(0.3)  # the pool's threads are hashing
        status, body, took, _ = timed(h, "POST", "/v1/t1/probe/items", {"note": "beside"})
        assert status == 201, body
        for th, out in checks:
            th.join(60)
        slowest = max(out["r"][2] for _, out in checks)
        assert slowest > 1.0, "the password checks took %.2fs: too fast to fill the pool" % slowest
        assert took < 0.5, ("a write waited %.2fs for its sync behind the pool's password checks "
                            "(they ran %.2fs)" % (took, time.monotonic() - start))
    finally:
        h.stop()


def test_an_acknowledged_batch_of_events_is_never_lost_to_a_failed_commit():
    """Intake's batches of an iteration share one commit of the analytics file
    (core/store/track.h), made before their answers go: while the loop's writes
    fail, every batch is refused 503 commit_failed (its savepoint was kept, the
    commit lost it) and none is acknowledged; sent again, each is taken whole,
    and every batch ever answered 200 is in the file."""
    BATCHES = 1200
    h = slow_host("synctrack")
    try:
        clock = int(time.time() * 1000)
        acked, refused, wrong, lock = [], [], [], threading.Lock()
        window = [float("inf"), float("inf")]  # sent after the first, answered before the second: failed

        def post(w):
            for b in range(w, BATCHES, 6):
                events = [{"id": "e-%d-%d" % (b, i), "kind": "page_view", "at": clock,
                           "session": "s-%d" % b} for i in range(20)]
                while True:
                    sent = time.monotonic()
                    status, _, body = h.request("POST", "/v1/t1/track", body={"device": "d-%d" % b, "events": events})
                    answered = time.monotonic()
                    if status == 503:
                        with lock:
                            refused.append((body or {}).get("error", {}).get("code"))
                        time.sleep(0.01)
                        continue
                    with lock:
                        if status != 200 or body["accepted"] + body["duplicates"] != 20:
                            wrong.append((b, status, body))
                        elif sent > window[0] and answered < window[1]:
                            wrong.append((b, "acknowledged while every commit fails", body))
                        acked.append((b, body["accepted"]))
                    break

        workers = [threading.Thread(target=post, args=(w,)) for w in range(6)]
        for w in workers:
            w.start()
        deadline = time.monotonic() + 30
        while len(acked) < BATCHES // 10 and time.monotonic() < deadline:  # the flood is on
            time.sleep(0.01)
        assert len(acked) >= BATCHES // 10, "the flood did not start: %d batches in 30 s" % len(acked)
        open(h.write_fail_flag, "w").close()
        window[0] = time.monotonic() + 0.02
        time.sleep(0.4)
        window[1] = time.monotonic()
        os.unlink(h.write_fail_flag)
        assert not wrong, wrong[:5]
        assert "commit_failed" in refused, "no batch met a failed commit: %r" % sorted(set(refused))
        assert len(acked) < BATCHES, "the flood outlasts the failing commits: it is not over yet"
        for w in workers:
            w.join()
        assert sorted(b for b, _ in acked) == list(range(BATCHES)), "every batch is answered 200 once"
        # each batch was taken whole exactly once: refused ones were not kept in part
        assert sum(n for _, n in acked) == BATCHES * 20, acked
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(h.data_dir, "t1.analytics.db"), uri=True)
        kept = db.execute("SELECT count(*), count(DISTINCT session) FROM analytics_events").fetchone()
        db.close()
        assert kept == (BATCHES * 20, BATCHES), kept
        _, _, text = h.request("GET", "/metrics")  # the lost batches are not counted as taken in
        assert metric_value(text, "tidepool_track_events_total", {"result": "accepted"}) == BATCHES * 20, text
    finally:
        if os.path.exists(h.write_fail_flag):
            os.unlink(h.write_fail_flag)
        h.stop()


if __name__ == "__main__":
    run(globals())
