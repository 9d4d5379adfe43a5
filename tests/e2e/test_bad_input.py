"""
test_bad_input.py - hostile or broken clients get a clear JSON error (or are
cut off) and the host keeps serving everybody else.
"""
import os
import resource
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Host, RawConn, tenant, expect_error, metric_value, run,  # noqa: E402
                     sanitized_build)

SLOW = 3.0 if sanitized_build() else 1.0      # scale for time bounds
T = tenant("t1", plugins={"catalog": {}, "probe": {}})
LIMITS = {
    "max_body_bytes": 4096,
    "header_timeout_ms": 1000,
    "body_timeout_ms": 1000,
    "max_connections": 3000,
    "idle_timeout_ms": 60000,
}
H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[T], limits=LIMITS, name="badin").start()
    return H


def raw_error(data, status, code, expect_close=True):
    """Sends data on a new connection; checks the JSON error and that the server closes."""
    h = host()
    c = h.raw()
    try:
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass   # the server may stop reading early; the answer must still come
        r = c.read_response()
        assert r.status == status, (r, status)
        body = r.json()
        assert body["error"]["code"] == code, body
        assert body["error"]["request_id"], body
        assert r.headers["content-type"] == "application/json"
        if expect_close:
            assert r.headers.get("connection") == "close", r.headers
            assert c.closed_by_peer(10 * SLOW), "the server kept the connection open"
        return body
    finally:
        c.close()



def recv_until_closed(sock):
    """Everything the server sends until it closes the connection."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk

def test_malformed_request_line():
    h = host()
    body = raw_error(b"GARBAGE\r\n\r\n", 400, "bad_request")
    assert "malformed" in body["error"]["message"]
    h.assert_serving("t1")
    raw_error(b"GET /healthz HTTP/9.9\r\n\r\n", 400, "bad_request")
    raw_error(b"\x00\x01\x02\x03\r\n\r\n", 400, "bad_request")
    raw_error(b"GET /hea lthz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request")
    raw_error(b"GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n", 400, "bad_request")
    raw_error(b"GET /healthz HTTP/1.1\r\nX: a\x00b\r\n\r\n", 400, "bad_request")
    h.assert_serving("t1")


def test_bad_framing():
    h = host()
    raw_error(b"POST /v1/t1/probe/items HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400,
              "bad_request")
    raw_error(b"POST /v1/t1/probe/items HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
              b"hello!", 400, "bad_request")
    raw_error(b"POST /v1/t1/probe/items HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
              b"Content-Length: 5\r\n\r\n0\r\n\r\n", 400, "bad_request")
    raw_error(b"POST /v1/t1/probe/items HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
              b"Content-Type: application/json\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", 400, "bad_request")
    h.assert_serving("t1")


def test_headers_too_large():
    h = host()
    big = "".join("X-Filler-%03d: %s\r\n" % (i, "v" * 1000) for i in range(100))   # ~100 KB
    raw_error(("GET /healthz HTTP/1.1\r\nHost: x\r\n" + big + "\r\n").encode(), 431,
              "headers_too_large")
    h.assert_serving("t1")
    raw_error(("GET /healthz HTTP/1.1\r\nX-Big: " + "v" * 20000 + "\r\n\r\n").encode(), 431,
              "headers_too_large")
    raw_error(("GET /" + "a" * 20000 + " HTTP/1.1\r\n\r\n").encode(), 431, "headers_too_large")
    h.assert_serving("t1")


def test_too_many_headers():
    h = host()
    many = "".join("X-H%d: 1\r\n" % i for i in range(150))   # max_headers defaults to 100
    raw_error(("GET /healthz HTTP/1.1\r\n" + many + "\r\n").encode(), 431, "too_many_headers")
    h.assert_serving("t1")


def test_uri_too_long():
    h = host()
    r = h.raw_exchange(("GET /v1/t1/" + "a" * 3000 + " HTTP/1.1\r\nHost: x\r\n\r\n").encode())
    assert r.status == 414 and r.json()["error"]["code"] == "uri_too_long", r
    h.assert_serving("t1")


def test_body_too_large_content_length():
    h = host()
    body = b'{"note": "' + b"x" * 5000 + b'"}'
    raw_error(b"POST /v1/t1/probe/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(body) + body, 413, "body_too_large")
    # the answer comes from the headers alone: the body need not be sent at all
    raw_error(b"POST /v1/t1/probe/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 100000000\r\n\r\n", 413, "body_too_large")
    h.assert_serving("t1")
    # exactly the limit is fine
    note = "y" * (4096 - len('{"note": ""}'))
    status, _, r = h.post("/v1/t1/probe/items", body='{"note": "%s"}' % note,
                          headers={"Content-Type": "application/json"})
    assert status == 201, r


def test_body_too_large_chunked():
    h = host()
    chunks = b"".join(b"400\r\n" + b"x" * 1024 + b"\r\n" for _ in range(6)) + b"0\r\n\r\n"
    raw_error(b"POST /v1/t1/probe/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n" + chunks, 413, "body_too_large")
    h.assert_serving("t1")


def test_invalid_json():
    h = host()
    for text in ('{"note":', "{note: 1}", "[1, 2,]", '{"a": NaN}', '{"a": Infinity}', "0x10",
                 '{"a": 1} trailing', "[" * 1000 + "]" * 1000):
        body = expect_error(h.post("/v1/t1/probe/items", body=text,
                                   headers={"Content-Type": "application/json"}), 400,
                            "invalid_json")
        assert body["error"]["request_id"]
    h.assert_serving("t1")


def test_wrong_content_type():
    h = host()
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "application/jsonx",
                  "json", None):
        headers = {"Content-Type": ctype} if ctype else {}
        expect_error(h.post("/v1/t1/probe/items", body='{"note": "x"}', headers=headers), 415,
                     "unsupported_media_type")
    for ctype in ("application/json; charset=utf-8", "Application/JSON"):
        status, _, r = h.post("/v1/t1/probe/items", body='{"note": "x"}',
                              headers={"Content-Type": ctype})
        assert status == 201, (ctype, r)
    h.assert_serving("t1")


def test_invalid_utf8_body():
    h = host()
    for raw in (b'{"note": "\xff\xfe"}', b'{"note": "\xc3"}', b'{"note": "\xed\xa0\x80"}',
                b'{"note": "\xc0\xaf"}'):
        body = expect_error(h.request("POST", "/v1/t1/probe/items", body=raw,
                                      headers={"Content-Type": "application/json"}), 400,
                            "invalid_json")
        assert "UTF-8" in body["error"]["message"], body
    h.assert_serving("t1")


def test_invalid_query_and_params():
    h = host()
    expect_error(h.get("/v1/t1/catalog/products?limit=%ZZ"), 400, "invalid_query")
    expect_error(h.get("/v1/t1/catalog/products?q=%FF"), 400, "invalid_query")
    expect_error(h.get("/v1/t1/catalog/products?q=%00"), 400, "invalid_query")
    expect_error(h.get("/v1/t1/probe/counter/%FF"), 400, "invalid_param")
    expect_error(h.get("/v1/t1/probe/counter/%00"), 400, "invalid_param")
    expect_error(h.get("/v1/t1/probe/counter/%4"), 400, "invalid_param")
    expect_error(h.get("/v1/t1/catalog/products/1234567890123456789"), 400, "invalid_param")
    h.assert_serving("t1")


def slow_client(path=b"/healthz", give_up=6.0):
    """Connects and sends a request one byte a second, in a thread. Returns
    (thread, result) where result gets 'response', 'at', 'closed_at'."""
    h = host()
    c = RawConn(h.port, timeout=30)
    result = {"t0": time.monotonic()}
    req = b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"p" * 40 + b"\r\n\r\n"

    def run_():
        c.sock.settimeout(0.05)
        got = b""
        for i in range(len(req)):
            try:
                c.sock.send(req[i:i + 1])
            except OSError:
                break
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                try:
                    d = c.sock.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    d = b""
                if not d:
                    result["closed_at"] = time.monotonic() - result["t0"]
                    result["response"] = got
                    c.close()
                    return
                if not got:
                    result["at"] = time.monotonic() - result["t0"]
                got += d
            if time.monotonic() - result["t0"] > give_up:
                break
        result["response"] = got
        c.close()

    t = threading.Thread(target=run_, daemon=True)
    t.start()
    return t, result


def check_slow_result(result, bound):
    resp = result.get("response", b"")
    assert resp.startswith(b"HTTP/1.1 408 "), ("no 408 from the server", result)
    assert b'"request_timeout"' in resp and b"Connection: close" in resp, resp
    assert result["at"] < bound, ("408 came after %.1fs" % result["at"], result)
    assert "closed_at" in result and result["closed_at"] < bound + 3 * SLOW, (
        "not disconnected in time", result)


def test_slow_client_gets_408_while_others_are_served():
    h = host()
    t, result = slow_client(give_up=1.0 + 5.0 * SLOW)
    latencies, errors = [], []
    t_end = time.monotonic() + 4 * SLOW
    while time.monotonic() < t_end:
        t0 = time.monotonic()
        try:
            status, _, _ = h.get("/v1/t1/catalog/products", timeout=10)
            assert status == 200
        except Exception as e:
            errors.append(repr(e))
        latencies.append(time.monotonic() - t0)
        time.sleep(0.1)
    t.join(30)
    assert not errors, errors[:3]
    assert max(latencies) < 0.5 * SLOW, max(latencies)
    check_slow_result(result, 1.0 + 2.0 * SLOW)


def test_slow_client_gets_408_on_a_quiet_server():
    """Nobody else talks to the host: the header timeout alone must answer
    408 and disconnect the client."""
    t, result = slow_client()
    t.join(30)
    check_slow_result(result, 1.0 + 2.0 * SLOW)
    host().assert_serving("t1")


def test_body_timeout():
    h = host()
    c = h.raw()
    try:
        c.send(b"POST /v1/t1/probe/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: 50\r\n\r\n{\"note\":")
        time.sleep(1.5)
        h.assert_serving()   # other traffic; see test_slow_client_gets_408_on_a_quiet_server
        r = c.read_response()
        assert r.status == 408 and r.json()["error"]["code"] == "request_timeout", r
        assert "body" in r.json()["error"]["message"]
        assert c.closed_by_peer(5 * SLOW)
    finally:
        c.close()
    h.assert_serving("t1")


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, n)) if hard != resource.RLIM_INFINITY else max(soft, n)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def test_2000_idle_connections():
    h = host()
    limit = raise_nofile(2300)
    assert limit >= 2100, "RLIMIT_NOFILE too low for this test: %d" % limit
    socks = []
    try:
        for _ in range(2000):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(20)
            s.connect(("127.0.0.1", h.port))
            socks.append(s)
        # the host has accepted them all ...
        def open_conns():
            return metric_value(h.metrics(), "tidepool_open_connections")
        deadline = time.monotonic() + 20
        while open_conns() < 2001 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert open_conns() >= 2001, open_conns()
        # ... and a normal request is still served quickly
        for _ in range(5):
            t0 = time.monotonic()
            status, _, body = h.get("/v1/t1/catalog/products", timeout=10)
            took = time.monotonic() - t0
            assert status == 200, body
            assert took < 0.5 * SLOW, took
        status, _, r = h.post("/v1/t1/probe/items", {"note": "among the idle"})
        assert status == 201, r
        # some of the idle ones wake up and are served too
        for s in socks[::400]:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200 ")
    finally:
        for s in socks:
            s.close()
    h.assert_serving("t1")


def test_max_connections():
    t = tenant("t1", plugins={"catalog": {}})
    with Host(tenants=[t], limits={"max_connections": 4}, name="badin-maxconn") as h2:
        idle = [socket.create_connection(("127.0.0.1", h2.port), timeout=10) for _ in range(4)]
        try:
            time.sleep(0.3 * SLOW)
            s = socket.create_connection(("127.0.0.1", h2.port), timeout=10)
            data = recv_until_closed(s)
            s.close()
            head, _, body = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503 "), data
            headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
            assert headers[b"Content-Type"] == b"application/json"
            assert headers[b"Connection"] == b"close"
            # the body is exactly Content-Length bytes of JSON
            assert int(headers[b"Content-Length"]) == len(body), (
                "Content-Length %s but the body has %d bytes: %r"
                % (headers[b"Content-Length"], len(body), body))
            import json
            assert json.loads(body)["error"]["code"] == "too_many_connections"
        finally:
            for s in idle:
                s.close()
        # once the others are gone there is room again
        def served():
            try:
                return h2.get("/healthz", timeout=5)[0] == 200
            except Exception:
                return False
        deadline = time.monotonic() + 10
        while not served():
            assert time.monotonic() < deadline, "not serving after the connections closed"
            time.sleep(0.1)


def test_max_connections_client_that_talks_first_still_gets_503():
    """Real clients send their request right after connecting. The 503 must
    reach them, not a connection reset (closing a socket with unread input
    makes the kernel send RST, which destroys the answer in flight)."""
    t = tenant("t1", plugins={"catalog": {}})
    with Host(tenants=[t], limits={"max_connections": 2}, name="badin-maxconn2") as h2:
        idle = [socket.create_connection(("127.0.0.1", h2.port), timeout=10) for _ in range(2)]
        outcomes = {}
        try:
            time.sleep(0.3 * SLOW)
            for _ in range(20):
                s = socket.create_connection(("127.0.0.1", h2.port), timeout=10)
                try:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    data = recv_until_closed(s)
                    key = data[:12].decode("latin-1")
                except OSError as e:
                    key = type(e).__name__
                finally:
                    s.close()
                outcomes[key] = outcomes.get(key, 0) + 1
        finally:
            for s in idle:
                s.close()
        assert outcomes == {"HTTP/1.1 503": 20}, outcomes


def teardown():
    if H is not None:
        H.stop()


if __name__ == "__main__":
    run(globals())
