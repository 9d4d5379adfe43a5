"""
test_idempotency.py - the host's one Idempotency-Key mechanism (core/store/idem.h),
on the test plugin idemprobe, whose handler counts its runs in its state
(calls) and its kept effects in a table (rows):

- the same key with the same request answers the stored answer (a 201 as 200,
  an object with "replayed": true), makes no second effect and runs no Lua (calls unchanged, and
  tidepool_idempotent_replays_total counts it);
- the same key with another body, or on another route, is 409
  idempotency_key_reused; a malformed key is 400 invalid_idempotency_key;
- two users with one key are independent; anonymous callers share one scope;
- a request that fails stores nothing: its key is free for the next request;
- an answer over 64 KiB is refused (500) and nothing is done;
- two requests with one key sent at once make one effect and answer alike;
- a key acknowledged before a kill -9 is still answered after the restart;
- an answer lives 24 hours of the tenant's clock, then the key is new again;
- a route that does not declare idempotent = true ignores the header.
"""
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Host, manual_tenant, advance, expect_error, metric_value, user_auth, run  # noqa: E402

T = manual_tenant("idem", {"idemprobe": {}})
H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[T], name="idem").start()
    return H


def post(path, body, user="ann", key=None):
    headers = dict(user_auth(T, user)) if user else {}
    if key is not None:
        headers["Idempotency-Key"] = key
    return host().post("/v1/idem" + path, body, headers=headers)


def count():
    status, _, body = host().get("/v1/idem/idem/count")
    assert status == 200, body
    return body["calls"], body["rows"]


def replays():
    return metric_value(host().metrics(), "tidepool_idempotent_replays_total")


def test_a_retry_answers_the_first_answer_without_running_lua():
    calls, rows = count()
    r0 = replays()
    status, _, first = post("/idem/things", {"note": "a"}, key="k-same")
    assert status == 201, first
    status, _, again = post("/idem/things", {"note": "a"}, key="k-same")
    assert status == 200 and again == dict(first, replayed=True), (status, again, first)
    assert "replayed" not in first
    assert count() == (calls + 1, rows + 1)      # one run, one effect
    assert replays() == r0 + 1


def test_another_request_under_one_key_is_refused():
    status, _, first = post("/idem/things", {"note": "b"}, key="k-other")
    assert status == 201, first
    calls, rows = count()
    expect_error(post("/idem/things", {"note": "c"}, key="k-other"), 409, "idempotency_key_reused")
    # the key is the user's: on another route it is a reuse too
    expect_error(post("/idem/other", {"note": "b"}, key="k-other"), 409, "idempotency_key_reused")
    for bad in ("x" * 129, "has space", "ü"):
        expect_error(post("/idem/things", {"note": "b"}, key=bad), 400, "invalid_idempotency_key")
    assert count() == (calls, rows)


def test_two_users_with_one_key_are_independent():
    _, _, a = post("/idem/things", {"note": "n"}, user="ann", key="k-shared")
    status, _, b = post("/idem/things", {"note": "n"}, user="bob", key="k-shared")
    assert status == 201 and b["id"] != a["id"] and b["user"] == "bob", (a, b)
    # anonymous callers share one scope: the same request is the same answer
    status, _, x = post("/idem/anon", {"note": "n"}, user=None, key="anon-1")
    assert status == 201, x
    status, _, y = post("/idem/anon", {"note": "n"}, user=None, key="anon-1")
    assert status == 200 and y == dict(x, replayed=True)


def test_a_failed_request_stores_nothing():
    calls, rows = count()
    expect_error(post("/idem/things", {"note": "f", "fail": True}, key="k-fail"), 409, "probe_refused")
    expect_error(post("/idem/things", {"note": "f", "fail": True}, key="k-fail"), 409, "probe_refused")
    assert count() == (calls + 2, rows)           # ran twice, kept nothing
    status, _, ok = post("/idem/things", {"note": "g"}, key="k-fail")   # the key is free
    assert status == 201, ok


def test_an_answer_over_the_cap_is_refused_and_undone():
    calls, rows = count()
    expect_error(post("/idem/things", {"big": True}, key="k-big"), 500, "idempotent_answer_too_large")
    assert count() == (calls + 1, rows)
    # without a key the same request is answered: the cap is the key's
    status, _, body = post("/idem/things", {"big": True})
    assert status == 201 and len(body["filler"]) == 70000


def test_one_key_sent_twice_at_once_makes_one_effect():
    calls, rows = count()
    answers = [None, None]

    def send(i):
        answers[i] = post("/idem/things", {"note": "race"}, key="k-race")

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(a[0] for a in answers)
    assert statuses == [200, 201], answers
    assert answers[0][2]["id"] == answers[1][2]["id"], answers
    assert count()[1] == rows + 1


def test_a_key_acknowledged_before_a_kill_survives_it():
    h = host()
    status, _, first = post("/idem/things", {"note": "durable"}, key="k-crash")
    assert status == 201, first
    h.kill9()
    h.start()
    calls, rows = count()                         # calls: a fresh state after the restart
    status, _, again = post("/idem/things", {"note": "durable"}, key="k-crash")
    assert status == 200 and again == dict(first, replayed=True), (status, again)
    assert count() == (calls, rows)


def test_an_answer_lives_a_day_of_the_tenant_clock():
    status, _, first = post("/idem/things", {"note": "day"}, key="k-day")
    assert status == 201, first
    advance(host(), T, seconds=24 * 3600 - 1)
    status, _, again = post("/idem/things", {"note": "day"}, key="k-day")
    assert status == 200 and again["id"] == first["id"]
    advance(host(), T, seconds=1)
    status, _, later = post("/idem/things", {"note": "day"}, key="k-day")
    assert status == 201 and later["id"] != first["id"], later
    # expired, the key may name another request now
    advance(host(), T, seconds=24 * 3600)
    status, _, other = post("/idem/things", {"note": "another"}, key="k-day")
    assert status == 201, other


def test_a_route_not_declared_idempotent_ignores_the_header():
    _, rows = count()
    assert post("/idem/plain", {"note": "p"}, key="k-plain")[0] == 201
    assert post("/idem/plain", {"note": "p"}, key="k-plain")[0] == 201
    assert post("/idem/plain", {"note": "p"}, key="bad key")[0] == 201
    assert count()[1] == rows + 3


def teardown():
    if H:
        H.stop()


if __name__ == "__main__":
    run(globals())
