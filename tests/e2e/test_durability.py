"""
test_durability.py - an answered write survives kill -9: the group commit
happens before any response of its batch is sent.
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Host, tenant, run  # noqa: E402

T = tenant("t1", plugins={"catalog": {}, "probe": {}})


def test_acknowledged_writes_survive_kill9():
    h = Host(tenants=[T], synchronous="full", name="dur")
    try:
        h.start()
        tok = {"Authorization": "Bearer " + h.token("t1", "durable")}
        items = {}            # id -> note, every acknowledged insert
        counter_acks = []     # values returned by acknowledged increments
        products = {}         # id -> name
        errors = []
        lock = threading.Lock()

        def counter_worker(n):
            try:
                for _ in range(n):
                    status, _, body = h.post("/v1/t1/probe/counter/dur", headers=tok)
                    assert status == 200, body
                    with lock:
                        counter_acks.append(body["value"])
            except Exception as e:
                with lock:
                    errors.append(repr(e))

        def product_worker(w, n):
            try:
                for i in range(n):
                    name = "durable %d-%d" % (w, i)
                    status, _, body = h.admin("POST", "/catalog/products", T, body={
                        "name": name, "skus": [{"code": "dur-%d-%d" % (w, i), "title": "t",
                                                "price_fen": 100 + i, "stock": i}]})
                    assert status == 201, body
                    with lock:
                        products[body["id"]] = name
            except Exception as e:
                with lock:
                    errors.append(repr(e))

        threads = [threading.Thread(target=counter_worker, args=(25,)) for _ in range(4)]
        threads += [threading.Thread(target=product_worker, args=(w, 10)) for w in range(2)]
        for t in threads:
            t.start()
        # 200 sequential inserts from this thread while the others run
        for i in range(200):
            note = "seq-%d" % i
            status, _, body = h.post("/v1/t1/probe/items", {"note": note})
            assert status == 201, body
            items[body["id"]] = note
        for t in threads:
            t.join(120)
        assert not errors, errors[:3]
        # one last write, then kill -9 the moment its answer is in
        status, _, body = h.post("/v1/t1/probe/items", {"note": "the last one"})
        assert status == 201
        h.kill9()
        items[body["id"]] = "the last one"

        h.restart()
        applied = [e for e in h.logs() if e.get("msg") == "migrations applied"]
        assert not applied, applied            # the schema was there already
        loaded = {e["plugin"] for e in h.logs() if e.get("msg") == "plugin loaded"}
        assert loaded == {"catalog", "probe"}, loaded

        assert len(items) == 201
        status, _, body = h.get("/v1/t1/probe/items/count")
        assert body["count"] == 201, body
        for item_id, note in items.items():
            status, _, row = h.get("/v1/t1/probe/items/%d" % item_id)
            assert status == 200 and row == {"id": item_id, "note": note}, (item_id, row)
        assert sorted(counter_acks) == list(range(1, 101))
        assert h.get("/v1/t1/probe/counter/dur")[2]["value"] == 100
        assert len(products) == 20
        for pid, name in products.items():
            status, _, p = h.get("/v1/t1/catalog/products/%d" % pid)
            assert status == 200 and p["name"] == name and len(p["skus"]) == 1, (pid, p)
        h.stop()
    finally:
        h.cleanup()


def test_kill9_in_the_middle_of_a_burst():
    """Clients keep writing while the host is killed: whatever was answered
    is there after the restart; what was not answered may or may not be."""
    h = Host(tenants=[T], synchronous="full", name="dur-burst")
    try:
        h.start()
        tok = {"Authorization": "Bearer " + h.token("t1", "burst")}
        acked_items, acked_values = {}, []
        lock = threading.Lock()
        stop = threading.Event()

        def writer(w):
            i = 0
            while not stop.is_set():
                try:
                    status, _, body = h.post("/v1/t1/probe/items", {"note": "b-%d-%d" % (w, i)},
                                             timeout=5)
                except Exception:
                    return                      # the host is gone
                if status == 201:
                    with lock:
                        acked_items[body["id"]] = "b-%d-%d" % (w, i)
                i += 1

        def incrementer():
            while not stop.is_set():
                try:
                    status, _, body = h.post("/v1/t1/probe/counter/burst", headers=tok, timeout=5)
                except Exception:
                    return
                if status == 200:
                    with lock:
                        acked_values.append(body["value"])

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
        threads.append(threading.Thread(target=incrementer))
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with lock:
                if len(acked_items) >= 150 and len(acked_values) >= 30:
                    break
            time.sleep(0.02)
        h.kill9()
        stop.set()
        for t in threads:
            t.join(30)
        with lock:
            items = dict(acked_items)
            values = list(acked_values)
        assert len(items) >= 50 and values, (len(items), len(values))

        h.restart()
        status, _, body = h.get("/v1/t1/probe/items/count")
        assert body["count"] >= len(items), (body, len(items))
        for item_id, note in items.items():
            status, _, row = h.get("/v1/t1/probe/items/%d" % item_id)
            assert status == 200 and row["note"] == note, (item_id, row)
        final = h.get("/v1/t1/probe/counter/burst")[2]["value"]
        assert final >= max(values), (final, max(values))
        assert sorted(values) == list(range(1, len(values) + 1)), values[:10]
        # and the host works normally after the crash
        status, _, body = h.post("/v1/t1/probe/counter/burst", headers=tok)
        assert status == 200 and body["value"] == final + 1, body
        h.stop()
    finally:
        h.cleanup()


def test_restart_after_clean_stop_keeps_everything():
    h = Host(tenants=[T], name="dur-clean")
    try:
        h.start()
        status, _, p = h.admin("POST", "/catalog/products", T, body={
            "name": "kept", "skus": [{"code": "kept-1", "title": "t", "price_fen": 1, "stock": 9}]})
        assert status == 201
        h.stop()
        assert any(e.get("msg") == "stopped" for e in h.logs())
        h.start()
        status, _, got = h.get("/v1/t1/catalog/products/%d" % p["id"])
        assert status == 200 and got == p, (got, p)
        h.stop()
    finally:
        h.cleanup()


if __name__ == "__main__":
    run(globals())
