"""
test_concurrency.py - many clients at the same instant: handlers never
interleave, so a conditional read-check-write never oversells.
"""
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Host, tenant, run  # noqa: E402

T = tenant("shop", plugins={"catalog": {}})
STOCK = 300
CLIENTS = 40
TRIES_EACH = 15  # 600 attempts for 300 units


def take_units_concurrently(h, code, clients, tries):
    """Every client tries to take one unit, tries times; returns (ok, sold_out, other)."""
    outcomes = {"ok": 0, "sold_out": 0, "other": []}
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def client():
        start.wait()  # all clients fire together
        for _ in range(tries):
            status, _, body = h.admin("POST", "/catalog/skus/%s/stock" % code, T, body={"delta": -1})
            with lock:
                if status == 200:
                    outcomes["ok"] += 1
                elif status == 409 and body["error"]["code"] == "insufficient_stock":
                    outcomes["sold_out"] += 1
                else:
                    outcomes["other"].append((status, body))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return outcomes


def test_stock_is_never_oversold_by_concurrent_clients():
    with Host(tenants=[T], name="conc") as h:
        status, _, _ = h.admin("POST", "/catalog/products", T, body={
            "name": "flash tea", "skus": [{"code": "flash-1", "title": "t", "price_fen": 990,
                                           "stock": STOCK}]})
        assert status == 201
        out = take_units_concurrently(h, "flash-1", CLIENTS, TRIES_EACH)
        assert not out["other"], out["other"][:3]
        assert out["ok"] == STOCK, (out["ok"], out["sold_out"])                    # every unit sold once
        assert out["sold_out"] == CLIENTS * TRIES_EACH - STOCK, (out["ok"], out["sold_out"])
        status, _, sku = h.get("/v1/shop/catalog/skus/flash-1")
        assert status == 200 and sku["stock"] == 0, sku     # never negative
        # the acknowledged sales are durable: after kill -9 the stock is still 0
        h.kill9()
        h.restart()
        assert h.get("/v1/shop/catalog/skus/flash-1")[2]["stock"] == 0


def test_concurrent_batches_share_commits():
    with Host(tenants=[T], name="batch") as h:
        h.admin("POST", "/catalog/products", T, body={
            "name": "p", "skus": [{"code": "b-1", "title": "t", "price_fen": 1, "stock": 10 ** 6}]})
        out = take_units_concurrently(h, "b-1", 32, 10)
        assert out["ok"] == 320 and not out["other"], (out["ok"], out["other"][:3])
        metrics = h.metrics()
        count = sum_metric(metrics, "tidepool_commit_batch_size_count")
        total = sum_metric(metrics, "tidepool_commit_batch_size_sum")
        assert total >= 321, (total, count)                 # every write went through a commit
        assert count < total, (total, count)                # and some commits carried several


def sum_metric(text, name):
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith(name + " ") or line.startswith(name + "{"))


if __name__ == "__main__":
    run(globals())
