"""
test_track_wal.py - the analytics file's WAL under a flood of events: no commit
on the loop checkpoints it (a checkpoint of thousands of pages held every answer
of its loop iteration); a worker thread does, on a connection of its own, and
the loop starts the WAL over once the worker has copied nearly everything
(core/host/track.c). So the WAL stays bounded while 100,000 events come in,
every event is in the file afterwards, and the host stops cleanly with a
checkpoint possibly in flight. The batches of a loop iteration share one
commit, made before their answers go: a kill -9 in the middle of the flood
loses no batch that was answered, and leaves none in part.
"""
import os
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Host, tenant, admin_ok, run  # noqa: E402

T = tenant("flood", plugins={"catalog": {}})
BATCHES, PER = 3000, 100
WAL_BOUND = 20 << 20    # RESTART_FRAMES (4,000 pages of 4 KiB) and what comes in during one copy


def test_a_flood_of_events_keeps_the_wal_bounded_and_loses_nothing():
    h = Host(tenants=[T], name="trackwal").start()
    try:
        now = admin_ok(h, "GET", "/clock", T)["now"]
        wal = os.path.join(h.data_dir, "flood.analytics.db-wal")
        biggest = [0]
        done = threading.Event()

        def watch():
            while not done.is_set():
                try:
                    biggest[0] = max(biggest[0], os.path.getsize(wal))
                except OSError:
                    pass
                time.sleep(0.005)

        def post(worker, n_workers):
            for b in range(worker, BATCHES, n_workers):
                events = [{"id": "e-%d-%d" % (b, i), "kind": "page_view", "at": now * 1000,
                           "session": "s-%d" % b, "page": "/p/%d" % i} for i in range(PER)]
                while True:
                    status, headers, body = h.post("/v1/flood/track", {"device": "d-%d" % b, "events": events})
                    if status == 503:
                        time.sleep(0.01)
                        continue
                    assert status == 200 and body == {"accepted": PER, "duplicates": 0}, (status, body)
                    break

        watcher = threading.Thread(target=watch)
        watcher.start()
        workers = [threading.Thread(target=post, args=(w, 8)) for w in range(8)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        done.set()
        watcher.join()
    finally:
        h.stop()   # a clean stop, whatever checkpoint was in flight
    total = os.path.getsize(os.path.join(h.data_dir, "flood.analytics.db"))  # all of it, after the stop
    print("the WAL peaked at %d bytes; the file holds %d" % (biggest[0], total))
    assert biggest[0] <= WAL_BOUND, "the WAL grew to %d bytes (the file holds %d)" % (biggest[0], total)
    # unchecked, the WAL would hold at least every page of the file, and more
    assert total > 1.5 * WAL_BOUND, "too few events to tell: the file holds %d bytes" % total
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(h.data_dir, "flood.analytics.db"), uri=True)
    try:
        n = db.execute("SELECT count(*) FROM analytics_events").fetchone()[0]
        assert n == BATCHES * PER, n
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()


def test_a_stop_in_the_middle_of_the_flood_waits_for_the_worker():
    """SIGTERM while events pour in and a worker may be checkpointing: the host
    waits for the worker before closing its connections (it had freed them under
    it: a use after free that ASan caught once), exits cleanly, and every
    acknowledged event is in an intact file."""
    h = Host(tenants=[T], name="trackstop").start()
    now = admin_ok(h, "GET", "/clock", T)["now"]
    acked = [0]
    lock = threading.Lock()
    stop = threading.Event()

    def post(worker):
        b = worker
        while not stop.is_set():
            events = [{"id": "s-%d-%d" % (b, i), "kind": "page_view", "at": now * 1000,
                       "session": "s-%d" % b, "page": "/p/%d" % i} for i in range(PER)]
            try:
                status, _, body = h.post("/v1/flood/track", {"device": "d-%d" % b, "events": events})
            except Exception:
                return      # the host went away
            if status == 200:
                with lock:
                    acked[0] += body["accepted"]
            b += 8

    workers = [threading.Thread(target=post, args=(w,)) for w in range(8)]
    for w in workers:
        w.start()
    wal = os.path.join(h.data_dir, "flood.analytics.db-wal")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:      # until the WAL is past the worker's threshold
        if os.path.exists(wal) and os.path.getsize(wal) > (6 << 20):
            break
        time.sleep(0.01)
    h.stop()       # asserts exit 0 and no sanitizer report
    stop.set()
    for w in workers:
        w.join()
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(h.data_dir, "flood.analytics.db"), uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        n = db.execute("SELECT count(*) FROM analytics_events").fetchone()[0]
        assert n >= acked[0] > 0, (n, acked[0])
    finally:
        db.close()


def test_kill9_in_the_middle_of_the_flood_loses_no_answered_batch():
    h = Host(tenants=[T], name="trackkill").start()
    try:
        now = admin_ok(h, "GET", "/clock", T)["now"]
        acked, lock, stop = [], threading.Lock(), threading.Event()

        def post(worker):
            b = worker
            while not stop.is_set():
                events = [{"id": "k-%d-%d" % (b, i), "kind": "page_view", "at": now * 1000,
                           "session": "k-%d" % b} for i in range(PER)]
                try:
                    status, _, body = h.post("/v1/flood/track", {"device": "d-%d" % b, "events": events},
                                             timeout=5)
                except Exception:
                    return      # the host is gone
                if status == 200:
                    with lock:
                        acked.append((b, body["accepted"]))
                if status != 503:
                    b += 8

        workers = [threading.Thread(target=post, args=(w,)) for w in range(8)]
        for w in workers:
            w.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(acked) < 400:
            time.sleep(0.01)
        h.kill9()
        stop.set()
        for w in workers:
            w.join(30)
        assert len(acked) >= 100 and all(n == PER for _, n in acked), acked[:5]
        h.restart()
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(h.data_dir, "flood.analytics.db"), uri=True)
        try:
            have = dict(db.execute("SELECT session, count(*) FROM analytics_events GROUP BY session"))
        finally:
            db.close()
        lost = [b for b, _ in acked if have.get("k-%d" % b) != PER]
        assert not lost, "answered 200 and gone after kill -9: %r" % lost[:10]
        part = {s: n for s, n in have.items() if n != PER}
        assert not part, "batches kept in part: %r" % part   # all or nothing, answered or not
        status, _, body = h.post("/v1/flood/track", {"device": "d-after", "events": [
            {"id": "after-1", "kind": "page_view", "at": now * 1000, "session": "after"}]})
        assert status == 200 and body == {"accepted": 1, "duplicates": 0}, (status, body)
        h.stop()
    finally:
        h.cleanup()


if __name__ == "__main__":
    run(globals())
