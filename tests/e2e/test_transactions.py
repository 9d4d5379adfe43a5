"""
test_transactions.py - every request is a transaction: a handler that raises
or calls tp.fail leaves no trace, requests sharing a group commit do not drag
each other down, and the SQL authorizer keeps a plugin to its own tables
without hurting the host.
"""
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Host, tenant, expect_error, http_request_bytes, metric_value, run  # noqa: E402

T = tenant("t1", plugins={"catalog": {}, "probe": {}})
H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[T], name="txn").start()
    return H


def item_count(tid="t1"):
    status, _, body = host().get("/v1/%s/probe/items/count" % tid)
    assert status == 200, body
    return body["count"]


def test_write_then_raise_leaves_no_trace():
    h = host()
    assert h.post("/v1/t1/probe/items", {"note": "kept"})[0] == 201
    before = item_count()
    mark = h.log_mark()
    status, headers, body = h.post("/v1/t1/probe/boom", {}, headers={"X-Request-Id": "boom-1"})
    assert status == 500, body
    assert body["error"]["code"] == "internal_error"
    assert body["error"]["request_id"] == "boom-1" == headers["x-request-id"]
    text = repr(body)
    assert "boom" not in text.replace("boom-1", ""), body       # no error text in the response
    assert "traceback" not in text and "plugin.lua" not in text, body
    assert item_count() == before
    e = h.wait_log(lambda e: e.get("msg") == "plugin failed"
                   and e.get("request_id") == "boom-1", timeout=10, start=mark)
    assert e["level"] == "error" and e["plugin"] == "probe" and e["tenant"] == "t1"
    assert "boom" in e["error"] and "stack traceback" in e["error"], e
    assert "plugin.lua" in e["error"]
    assert e["route"] == "probe POST /v1/{tenant}/probe/boom"
    line = h.wait_log(lambda e: e.get("msg") == "request" and e.get("request_id") == "boom-1",
                      timeout=10, start=mark)
    assert line["status"] == 500 and line["error"] == "internal_error", line


def test_tp_fail_rolls_back_with_details():
    h = host()
    before = item_count()
    status, _, body = h.post("/v1/t1/probe/conflict", {})
    assert status == 409, body
    assert body["error"]["code"] == "conflict_code"
    assert body["error"]["message"] == "msg"
    assert body["error"]["details"] == {"k": 1}
    assert body["error"]["request_id"]
    assert item_count() == before


def test_unsendable_results_roll_back():
    h = host()
    before = item_count()
    for kind in ("string_body", "status_700", "status_100", "function_value", "nan",
                 "mixed_keys", "fail_bad_status", "error_table", "deep"):
        expect_error(h.post("/v1/t1/probe/bad/" + kind), 500, "internal_error")
    assert item_count() == before
    h.assert_serving("t1")


def test_plugin_errors_are_counted():
    h = host()
    n0 = metric_value(h.metrics(), "tidepool_plugin_errors_total")
    h.post("/v1/t1/probe/boom", {})
    h.post("/v1/t1/probe/conflict", {})   # an intended error, not counted
    n1 = metric_value(h.metrics(), "tidepool_plugin_errors_total")
    assert n1 == n0 + 1, (n0, n1)


FORBIDDEN = [
    "other_plugin", "other_plugin_write", "other_plugin_join", "other_plugin_subquery",
    "pragma", "pragma_sync", "pragma_function", "attach", "detach", "begin", "commit",
    "rollback", "savepoint", "release_host", "rollback_host", "migrations", "migrations_write",
    "drop_other", "alter_other", "trigger_other", "index_other", "view_other", "vacuum",
    "two_statements", "two_statements_select",
]


def test_authorizer_refuses_and_host_keeps_serving():
    h = host()
    status, _, p = h.admin("POST", "/catalog/products", T, body={
        "name": "guarded", "skus": [{"code": "guard-1", "title": "t", "price_fen": 1, "stock": 1}]})
    assert status == 201, p
    before = item_count()
    for case in FORBIDDEN:
        status, _, body = h.get("/v1/t1/probe/sql/" + case)
        assert status == 500, (case, status, body)
        assert body["error"]["code"] == "internal_error", (case, body)
        h.assert_serving("t1")
    assert item_count() == before
    # the catalog's data is untouched and the catalog still works
    status, _, got = h.get("/v1/t1/catalog/products/%d" % p["id"])
    assert status == 200 and got["skus"][0]["code"] == "guard-1", got
    status, _, r = h.admin("POST", "/catalog/skus/guard-1/stock", T, body={"delta": 1})
    assert status == 200 and r["stock"] == 2, r


def test_authorizer_messages():
    h = host()
    for case in ("other_plugin", "pragma", "attach", "begin", "savepoint", "migrations",
                 "release_host"):
        status, _, body = h.get("/v1/t1/probe/sql-message/" + case)
        assert status == 200 and body["ok"] is False, (case, body)
        assert "not authorized" in body["err"] and "probe_" in body["err"], (case, body)
    status, _, body = h.get("/v1/t1/probe/sql-message/two_statements")
    assert body["ok"] is False and "one SQL statement" in body["err"], body


def test_two_statements_in_one_exec_write_nothing():
    h = host()
    before = item_count()
    expect_error(h.get("/v1/t1/probe/sql/two_statements"), 500, "internal_error")
    h.get("/v1/t1/probe/sql-message/two_statements")   # caught by the handler, which returns 200
    assert item_count() == before


def test_failure_in_a_batch_spares_the_others():
    """Three pipelined requests land in one loop iteration and one commit: the
    middle one raises; its savepoint is rolled back, the other two stay."""
    h = host()
    tok = h.token("t1", "batcher")
    req = lambda m, p, rid: ("%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                             "X-Request-Id: %s\r\nContent-Length: 0\r\n\r\n" % (m, p, tok, rid))
    for attempt in range(3):   # the three must arrive in one read; loopback nearly always does
        _, _, c0 = h.get("/v1/t1/probe/counter/batch")
        before = item_count()
        m0 = h.metrics()
        c = h.raw()
        c.send(req("POST", "/v1/t1/probe/counter/batch", "b1")
               + req("POST", "/v1/t1/probe/boom", "b2")
               + req("POST", "/v1/t1/probe/counter/batch", "b3"))
        r1, r2, r3 = c.read_response(), c.read_response(), c.read_response()
        c.close()
        m1 = h.metrics()
        assert (r1.status, r2.status, r3.status) == (200, 500, 200), (r1, r2, r3)
        assert [r.headers["x-request-id"] for r in (r1, r2, r3)] == ["b1", "b2", "b3"]
        assert r1.json()["value"] == c0["value"] + 1 and r3.json()["value"] == c0["value"] + 2
        assert h.get("/v1/t1/probe/counter/batch")[2]["value"] == c0["value"] + 2
        assert item_count() == before
        commits = metric_value(m1, "tidepool_commit_batch_size_count") - \
            metric_value(m0, "tidepool_commit_batch_size_count")
        size = metric_value(m1, "tidepool_commit_batch_size_sum") - \
            metric_value(m0, "tidepool_commit_batch_size_sum")
        assert size == 3, size
        if commits == 1:       # one commit made all three durable
            return
    raise AssertionError("the three pipelined requests never shared one commit")


def test_concurrent_counter_increments_are_serialized():
    h = host()
    threads, per = 8, 25
    tokens = [h.token("t1", "user-%d" % i) for i in range(threads)]
    values, errors = [], []
    lock = threading.Lock()

    def worker(i):
        try:
            for _ in range(per):
                status, _, body = h.post("/v1/t1/probe/counter/shared",
                                         headers={"Authorization": "Bearer " + tokens[i]})
                assert status == 200, body
                assert body["user"] == "user-%d" % i
                with lock:
                    values.append(body["value"])
        except Exception as e:  # reported below
            with lock:
                errors.append(repr(e))

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors, errors[:3]
    assert sorted(values) == list(range(1, threads * per + 1)), sorted(values)[:10]
    assert h.get("/v1/t1/probe/counter/shared")[2]["value"] == threads * per


def test_rollback_with_several_tenants_in_any_order():
    """The same write-then-raise, on a host whose tenants are not listed in
    sorted order in the config (a config lists them as operators like)."""
    b = tenant("zz-brand", plugins={"probe": {}})
    a = tenant("aa-brand", plugins={"probe": {}})
    with Host(tenants=[b, a], name="txn-order") as h2:
        for tid in ("zz-brand", "aa-brand"):
            assert h2.post("/v1/%s/probe/items" % tid, {"note": "x"})[0] == 201
            before = h2.get("/v1/%s/probe/items/count" % tid)[2]["count"]
            expect_error(h2.post("/v1/%s/probe/boom" % tid, {}), 500, "internal_error")
            after = h2.get("/v1/%s/probe/items/count" % tid)[2]["count"]
            assert after == before, "tenant %s: %d rows before the failed request, %d after" % (
                tid, before, after)


def test_autoincrement_tables_work():
    """A plugin whose migration uses AUTOINCREMENT (SQLite then keeps its
    counter in the shared sqlite_sequence table) loads and can insert."""
    t = tenant("auto", plugins={"autoinc": {}})
    with Host(tenants=[t], name="txn-autoinc") as h2:
        failed = [e for e in h2.logs() if e.get("msg") == "plugin not enabled"]
        assert not failed, failed
        status, _, body = h2.post("/v1/auto/autoinc/rows")
        assert status == 201 and body["id"] == 1, body


def test_sqlite_sequence_of_other_plugins_is_off_limits():
    """sqlite_sequence is shared by every plugin of a tenant: a plugin must not
    write rows that belong to another plugin's tables. (The tenant database is
    prepared beforehand with Python's sqlite3, so this holds whether or not
    plugins may create AUTOINCREMENT tables themselves.)"""
    import sqlite3
    t = tenant("auto", plugins={"autoinc": {}, "catalog": {}})
    h2 = Host(tenants=[t], name="txn-seq")
    os.makedirs(h2.data_dir)
    db = sqlite3.connect(os.path.join(h2.data_dir, "auto.db"))
    db.executescript("""
        CREATE TABLE _tp_migrations (plugin TEXT PRIMARY KEY, version INTEGER NOT NULL,
                                     applied_at INTEGER NOT NULL DEFAULT (unixepoch()));
        CREATE TABLE autoinc_rows (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT);
        INSERT INTO _tp_migrations (plugin, version) VALUES ('autoinc', 1);
    """)
    db.commit()
    db.close()
    with h2:
        status, _, body = h2.post("/v1/auto/autoinc/rows")
        assert status == 201, body
        status, _, body = h2.post("/v1/auto/autoinc/tamper")
        assert status == 200, body
        assert body["insert_ok"] is False, body
        assert body["update_ok"] is False, body


def teardown():
    if H is not None:
        H.stop()



def test_a_statement_that_rolls_back_the_transaction_fails_the_whole_batch():
    """INSERT OR ROLLBACK ends the batch's transaction, not just a savepoint:
    every request of that batch is answered 503 and none of them is saved."""
    h = host()
    assert h.post("/v1/t1/probe/or-rollback/taken")[0] == 200
    before = item_count()
    c = h.raw()
    try:
        c.send(http_request_bytes("POST", "/v1/t1/probe/items", {"note": "before the culprit"}) +
               http_request_bytes("POST", "/v1/t1/probe/or-rollback/taken") +
               http_request_bytes("POST", "/v1/t1/probe/items", {"note": "after the culprit"}))
        answers = [c.read_response() for _ in range(3)]
    finally:
        c.close()
    assert [r.status for r in answers] == [503, 503, 503], answers
    assert item_count() == before          # neither item was saved
    status, _, body = h.post("/v1/t1/probe/items", {"note": "the next batch"})
    assert status == 201 and item_count() == before + 1, body


def test_a_tampered_fail_error_still_answers_cleanly():
    status, _, body = host().post("/v1/t1/probe/refail")
    assert status == 500 and body["error"]["code"] == "error", body
    host().assert_serving("t1")


def test_a_json_marker_that_is_not_a_string_is_harmless():
    status, _, body = host().get("/v1/t1/probe/odd-marker")
    assert status == 200 and body == {"odd": {"1": 1, "2": 2}}, body

if __name__ == "__main__":
    run(globals())
