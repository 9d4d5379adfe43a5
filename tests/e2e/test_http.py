"""
test_http.py - the HTTP/1.1 server: keep-alive, pipelining, chunked bodies,
request ids, routing errors, connection handling.
"""
import http.client
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Host, tenant, api_key, expect_error, http_request_bytes, run,  # noqa: E402
                     sanitized_build)

SLOW = 3.0 if sanitized_build() else 1.0
T = tenant("t1", plugins={"catalog": {}, "probe": {}})
H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[T], limits={"idle_timeout_ms": 1500}, name="http").start()
    return H


def req(method, path, body=None, headers=None, version="HTTP/1.1"):
    return http_request_bytes(method, path, body, headers, version)


def test_keep_alive():
    h = host()
    c = h.raw()
    try:
        ids = set()
        for i in range(5):
            c.send(req("GET", "/v1/t1/catalog/products"))
            r = c.read_response()
            assert r.status == 200, r
            assert "connection" not in r.headers, r.headers
            ids.add(r.headers["x-request-id"])
        c.send(req("POST", "/v1/t1/probe/items", {"note": "keep-alive"}))
        r = c.read_response()
        assert r.status == 201, r
        assert len(ids) == 5
    finally:
        c.close()
    # http.client reuses one connection too
    conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=10)
    try:
        for _ in range(3):
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            assert resp.status == 200 and resp.read() == b'{"status":"ok"}'
    finally:
        conn.close()


def test_pipelining_answers_in_order():
    h = host()
    c = h.raw()
    try:
        c.send(req("GET", "/healthz", headers={"X-Request-Id": "pipe-1"})
               + req("POST", "/v1/t1/probe/json", {"price_fen": 42}, {"X-Request-Id": "pipe-2"})
               + req("GET", "/v1/t1/nope", headers={"X-Request-Id": "pipe-3"}))
        r1, r2, r3 = c.read_response(), c.read_response(), c.read_response()
        assert [r.headers["x-request-id"] for r in (r1, r2, r3)] == ["pipe-1", "pipe-2", "pipe-3"]
        assert r1.status == 200 and r1.json() == {"status": "ok"}
        assert r2.status == 200 and r2.json()["price_fen"] == 42
        assert r3.status == 404 and r3.json()["error"]["code"] == "route_not_found"
        # the connection is still usable
        c.send(req("GET", "/healthz"))
        assert c.read_response().status == 200
    finally:
        c.close()


def test_pipelining_many():
    h = host()
    c = h.raw()
    try:
        n = 50
        c.send(b"".join(req("GET", "/v1/t1/probe/counter/pipe",
                            headers={"X-Request-Id": "many-%d" % i}) for i in range(n)))
        for i in range(n):
            r = c.read_response()
            assert r.status == 200 and r.headers["x-request-id"] == "many-%d" % i, (i, r)
    finally:
        c.close()


def test_pipelined_request_after_close_is_not_answered():
    h = host()
    c = h.raw()
    try:
        c.send(req("GET", "/healthz", headers={"Connection": "close", "X-Request-Id": "last"})
               + req("GET", "/healthz", headers={"X-Request-Id": "ignored"}))
        r = c.read_response()
        assert r.status == 200 and r.headers["connection"] == "close"
        rest, _ = c.read_until_closed()
        assert rest == b"", rest
    finally:
        c.close()


def test_chunked_request_body():
    h = host()
    body = b'{"price_fen": 990, "items": [{"price_fen": 1}], "pad": "' + b"z" * 3000 + b'"}'
    chunks, i = b"", 0
    for size in (1, 7, 100, 1000, len(body)):
        part = body[i:i + size]
        i += len(part)
        if part:
            chunks += b"%x\r\n" % len(part) + part + b"\r\n"
    assert i == len(body)
    chunks += b"0\r\n\r\n"
    c = h.raw()
    try:
        c.send(b"POST /v1/t1/probe/json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n" + chunks)
        r = c.read_response()
        assert r.status == 200, r
        assert r.json()["price_fen"] == 990 and r.json()["price_type"] == "integer"
        # chunk extensions and trailers are accepted too
        c.send(b"POST /v1/t1/probe/json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n"
               b"5;ext=1\r\n{\"pri\r\n9\r\nce_fen\": \r\n2\r\n7}\r\n0\r\nX-Trailer: t\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.json()["price_fen"] == 7, r
    finally:
        c.close()


def test_request_id():
    h = host()
    status, headers, _ = h.get("/healthz", headers={"X-Request-Id": "my-id_1.2:3"})
    assert headers["x-request-id"] == "my-id_1.2:3"
    body = expect_error(h.get("/v1/t1/nope", headers={"X-Request-Id": "err-id"}), 404,
                        "route_not_found")
    assert body["error"]["request_id"] == "err-id"
    seen = set()
    for bad in (None, "has space", "x" * 65, "semi;colon", "", "é"):
        hdrs = {"X-Request-Id": bad} if bad is not None else {}
        if bad and not bad.isascii():
            r = h.raw_exchange(b"GET /healthz HTTP/1.1\r\nX-Request-Id: \xc3\xa9\r\n\r\n")
            rid = r.headers["x-request-id"]
        else:
            rid = h.get("/healthz", headers=hdrs)[1]["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{16}", rid), (bad, rid)
        seen.add(rid)
    assert len(seen) == 6
    status, headers, _ = h.get("/healthz", headers={"X-Request-Id": "x" * 64})
    assert headers["x-request-id"] == "x" * 64
    for _ in range(50):
        seen.add(h.get("/healthz")[1]["x-request-id"])
    assert len(seen) == 56


def test_not_found():
    h = host()
    for path in ("/", "/foo", "/v1", "/v2/t1/catalog/products", "/healthz/x", "/metricsx"):
        expect_error(h.get(path), 404, "not_found")
    for path in ("/v1/t1/nope", "/v1/t1/catalog", "/v1/t1/catalog/products/1/extra",
                 "/v1/t1/catalog/products/", "/v1/t1"):
        body = expect_error(h.get(path), 404, "route_not_found")
        assert body["error"]["request_id"]


def test_method_not_allowed():
    h = host()
    status, headers, body = h.request("DELETE", "/v1/t1/catalog/products")
    assert status == 405 and body["error"]["code"] == "method_not_allowed", body
    assert headers["allow"] == "GET", headers
    status, headers, body = h.request("PUT", "/v1/t1/probe/echo/a/1")
    assert status == 405 and headers["allow"] == "GET, POST", headers
    status, headers, body = h.request("DELETE", "/admin/t1/catalog/products/1",
                                      headers={"X-Api-Key": api_key(T)})
    assert status == 405 and headers["allow"] == "PATCH", (headers, body)
    status, headers, body = h.request("OPTIONS", "/v1/t1/catalog/products")
    assert status == 405 and headers["allow"] == "GET", (status, headers, body)


def test_invalid_param():
    h = host()
    body = expect_error(h.get("/v1/t1/catalog/products/abc"), 400, "invalid_param")
    assert "id" in body["error"]["message"]
    expect_error(h.get("/v1/t1/catalog/products/-1"), 400, "invalid_param")
    expect_error(h.get("/v1/t1/catalog/products/1.5"), 400, "invalid_param")
    status, _, body = h.get("/v1/t1/catalog/products/000")
    assert status == 404 and body["error"]["code"] == "product_not_found", body


def test_path_params_are_decoded():
    h = host()
    tok = h.token("t1", "u")
    status, _, body = h.get("/v1/t1/probe/echo/caf%C3%A9%20au%2Flait/0042",
                            headers={"Authorization": "Bearer " + tok, "X-FOO": "Upper"})
    assert status == 200, body
    assert body["params"] == {"word": "café au/lait", "n": 42}, body
    assert body["x_foo"] == "Upper"


def test_http10_gets_connection_close():
    h = host()
    c = h.raw()
    try:
        c.send(b"GET /healthz HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.headers.get("connection") == "close", r
        assert c.closed_by_peer(5 * SLOW)
    finally:
        c.close()


def test_connection_close_header():
    h = host()
    c = h.raw()
    try:
        c.send(req("GET", "/healthz", headers={"Connection": "close"}))
        r = c.read_response()
        assert r.status == 200 and r.headers.get("connection") == "close"
        assert c.closed_by_peer(5 * SLOW)
    finally:
        c.close()


def test_expect_100_continue():
    h = host()
    c = h.raw()
    try:
        body = b'{"note": "after continue"}'
        c.send(b"POST /v1/t1/probe/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
        r = c.read_response()
        assert r.status == 100, r
        c.send(body)
        r = c.read_response()
        assert r.status == 201, r
    finally:
        c.close()


def test_half_closed_client_gets_its_answer():
    h = host()
    c = h.raw()
    try:
        c.send(req("POST", "/v1/t1/probe/items", {"note": "half-close"}))
        c.sock.shutdown(socket.SHUT_WR)
        r = c.read_response()
        assert r.status == 201, r
        assert c.closed_by_peer(5 * SLOW)
    finally:
        c.close()


def test_idle_keep_alive_connection_is_closed():
    h = host()
    c = h.raw()
    try:
        c.send(req("GET", "/healthz"))
        assert c.read_response().status == 200
        t0 = time.monotonic()
        assert c.closed_by_peer(10 * SLOW), "idle connection not closed"
        took = time.monotonic() - t0
        assert 1.0 < took < 1.5 + 2 * SLOW, took      # idle_timeout_ms = 1500
    finally:
        c.close()
    # a connection that never sends anything is closed the same way
    c = h.raw()
    try:
        assert c.closed_by_peer(10 * SLOW)
    finally:
        c.close()


def test_head_response_has_no_body():
    """A response to HEAD carries no body (RFC 9110 9.3.2): a client reads the
    head only, so body bytes would be taken for the start of the next response."""
    h = host()
    c = h.raw()
    try:
        c.send(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        deadline = time.monotonic() + 10
        while data.count(b"HTTP/1.1 ") < 2 and time.monotonic() < deadline:
            c.sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                d = c.sock.recv(65536)
            except socket.timeout:
                break
            if not d:
                break
            data += d
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), data
        assert rest.startswith(b"HTTP/1.1 200 "), (
            "bytes after the HEAD response's header: %r" % rest[:80])
    finally:
        c.close()


def test_large_response():
    h = host()
    status, headers, body = h.get("/v1/t1/probe/big?kb=2048", timeout=30)
    assert status == 200 and len(body["data"]) == 2048 * 1024, (status, len(body.get("data", "")))
    assert int(headers["content-length"]) > 2048 * 1024


def teardown():
    if H is not None:
        H.stop()



def test_trailer_fields_are_not_headers():
    """A chunked trailer cannot carry credentials a proxy never saw."""
    h = host()
    c = h.raw()
    try:
        c.send(b"POST /admin/t1/catalog/products HTTP/1.1\r\nHost: x\r\n"
               b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"2\r\n{}\r\n0\r\nX-Api-Key: " + api_key(T).encode() + b"\r\n\r\n")
        r = c.read_response()
    finally:
        c.close()
    assert r.status == 401 and r.json()["error"]["code"] == "api_key_required", r


def test_a_pipelining_client_that_never_reads_does_not_starve_others():
    """Answers are produced only as fast as the client reads them."""
    import socket
    import time
    h = host()
    flood = socket.create_connection(("127.0.0.1", h.port), timeout=10)
    try:
        flood.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        one = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
        flood.setblocking(False)
        sent = 0
        deadline = time.time() + 3
        while time.time() < deadline and sent < 4 << 20:
            try:
                sent += flood.send(one * 512)
            except BlockingIOError:
                time.sleep(0.01)
        started = time.time()
        for _ in range(20):
            assert h.get("/healthz")[0] == 200
        per_request = (time.time() - started) / 20
        assert per_request < 0.5, per_request
        metrics = h.metrics()
        # the host paused the flood instead of answering all of it into memory
        answered = sum(float(l.split()[-1]) for l in metrics.splitlines()
                       if l.startswith('tidepool_requests_total{route="metrics"'))
        assert answered < sent / len(one), (answered, sent / len(one))
    finally:
        flood.close()
    h.assert_serving("t1")

if __name__ == "__main__":
    run(globals())
