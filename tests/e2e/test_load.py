"""
test_load.py - the host under many connections and under slow clients.

1. 10,000 concurrent keep-alive connections (the file limit is raised in this
   process, and the host inherits it): each asks twice, 5,000 ms apart, on
   the same connection, and every answer is a 200; meanwhile a normal client's
   latency stays bounded. The host's RSS with 10,000 open connections is
   printed.
2. A slow-client attack beside normal traffic: hundreds of connections that
   trickle their headers or their body one byte at a time. The host closes
   each of them at its header or body deadline (408), and the normal clients'
   latency stays bounded throughout.

The latency bounds are loose on purpose (the same test runs under
AddressSanitizer on a shared 2-core machine); they catch a host that stalls
behind its connections, not a slow one. LOAD_CONNECTIONS changes the count.
"""
import errno
import os
import resource
import selectors
import socket
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Host, tenant, metric_value, run, wait_until  # noqa: E402

CONNECTIONS = int(os.environ.get("LOAD_CONNECTIONS", "10000"))
LATENCY_P99_BOUND = 1.0      # seconds, for a normal client's GET
T = tenant("t1", plugins={"catalog": {}, "probe": {}})


def raise_file_limit(need):
    """Both processes (this one and the host it starts) need a descriptor per connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(need, soft)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft >= need, "the file limit is %d and cannot be raised to %d (run as root " \
        "or raise the hard limit)" % (soft, need)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


GET = b"GET /v1/t1/catalog/products?limit=1 HTTP/1.1\r\nHost: t\r\n\r\n"


class Prober:
    """A normal client in its own thread: one GET every 20 ms on a keep-alive
    connection, its latencies recorded until stop()."""

    def __init__(self, port):
        self.port, self.latencies, self.errors = port, [], []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self):
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            while not self.done.is_set():
                t0 = time.monotonic()
                c.request("GET", "/v1/t1/catalog/products?limit=1")
                r = c.getresponse()
                r.read()
                self.latencies.append(time.monotonic() - t0)
                if r.status != 200:
                    self.errors.append(r.status)
                self.done.wait(0.02)
        except Exception as e:  # reported by stop()
            self.errors.append(repr(e))
        finally:
            c.close()

    def stop(self):
        self.done.set()
        self.thread.join(60)
        assert not self.errors, self.errors[:5]
        assert len(self.latencies) >= 10, len(self.latencies)
        lat = sorted(self.latencies)
        return {"n": len(lat), "p50": lat[len(lat) // 2],
                "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))], "max": lat[-1]}


def open_connections(port, n, batch=500):
    """n connected non-blocking sockets, connected in batches (the listen backlog)."""
    socks = []
    while len(socks) < n:
        fresh = []
        for _ in range(min(batch, n - len(socks))):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            rc = s.connect_ex(("127.0.0.1", port))
            assert rc in (0, errno.EINPROGRESS), os.strerror(rc)
            fresh.append(s)
        sel = selectors.DefaultSelector()
        for s in fresh:
            sel.register(s, selectors.EVENT_WRITE)
        pending, deadline = set(fresh), time.monotonic() + 30
        while pending and time.monotonic() < deadline:
            for key, _ in sel.select(1):
                err = key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                assert err == 0, os.strerror(err)
                sel.unregister(key.fileobj)
                pending.discard(key.fileobj)
        sel.close()
        assert not pending, "%d connections did not complete" % len(pending)
        socks += fresh
    return socks


def ask_all(socks, request, timeout=120):
    """Sends request on every socket and reads one full answer from each
    (bodies are small: the answer ends when Content-Length bytes arrived)."""
    sel = selectors.DefaultSelector()
    got = {}
    for s in socks:
        s.send(request)
        got[s] = b""
        sel.register(s, selectors.EVENT_READ)
    statuses, deadline = {}, time.monotonic() + timeout
    while len(statuses) < len(socks) and time.monotonic() < deadline:
        for key, _ in sel.select(1):
            s = key.fileobj
            chunk = s.recv(65536)
            assert chunk, "the host closed a keep-alive connection"
            got[s] += chunk
            head, sep, body = got[s].partition(b"\r\n\r\n")
            if not sep:
                continue
            length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")][0]
            if len(body) >= length:
                statuses[s] = int(head.split(b" ")[1])
                sel.unregister(s)
    sel.close()
    assert len(statuses) == len(socks), "%d of %d connections unanswered" % (
        len(socks) - len(statuses), len(socks))
    return statuses


def test_ten_thousand_keep_alive_connections():
    raise_file_limit(CONNECTIONS + 1000)
    h = Host(tenants=[T], limits={"max_connections": CONNECTIONS + 500,
                                  "idle_timeout_ms": 600000},
             name="load-10k").start()
    socks = []
    try:
        base_rss, _ = rss_kb(h.proc.pid)
        prober = Prober(h.port)
        t0 = time.monotonic()
        socks = open_connections(h.port, CONNECTIONS)
        statuses = ask_all(socks, GET)
        first = time.monotonic() - t0
        assert set(statuses.values()) == {200}, statuses
        assert metric_value(h.metrics(), "tidepool_open_connections") >= CONNECTIONS
        rss, hwm = rss_kb(h.proc.pid)
        time.sleep(5)                    # every connection idles, none is dropped
        t1 = time.monotonic()
        statuses = ask_all(socks, GET)   # the same sockets: keep-alive held
        second = time.monotonic() - t1
        assert set(statuses.values()) == {200}, statuses
        lat = prober.stop()
        print("%d connections: opened and answered in %.1f s, answered again in %.1f s; "
              "host RSS %.1f MiB (%.1f MiB before, peak %.1f MiB, %.1f KiB per connection); "
              "normal client p50 %.1f ms p99 %.1f ms max %.1f ms over %d requests" % (
                  CONNECTIONS, first, second, rss / 1024, base_rss / 1024, hwm / 1024,
                  (rss - base_rss) / CONNECTIONS, lat["p50"] * 1000, lat["p99"] * 1000,
                  lat["max"] * 1000, lat["n"]))
        assert lat["p99"] < LATENCY_P99_BOUND, lat
    finally:
        for s in socks:
            s.close()
    h.stop()   # and a LeakSanitizer-clean exit after the load


def trickle(socks, payload, interval, until):
    """Sends payload one byte per interval on every socket until the host
    closes it or until passes; returns {socket: seconds until closed}."""
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    start, pos, closed, answers = time.monotonic(), {s: 0 for s in socks}, {}, {}
    next_send = start
    while len(closed) < len(socks) and time.monotonic() < until:
        now = time.monotonic()
        if now >= next_send:
            for s in socks:
                if s in closed or pos[s] >= len(payload):
                    continue
                try:
                    s.send(payload[pos[s]:pos[s] + 1])
                    pos[s] += 1
                except OSError:
                    pass      # the host closed it; the read side sees the end
            next_send = now + interval
        for key, _ in sel.select(max(0.0, min(next_send - time.monotonic(), 0.1))):
            s = key.fileobj
            try:
                chunk = s.recv(4096)
            except OSError:
                chunk = b""
            if chunk:
                answers[s] = answers.get(s, b"") + chunk
            else:
                closed[s] = time.monotonic() - start
                sel.unregister(s)
    sel.close()
    return closed, answers


SLOW_HEADERS = 300
SLOW_BODIES = 200
HEADER_TIMEOUT_MS = 2000
BODY_TIMEOUT_MS = 2000


def test_slow_clients_are_cut_off_and_normal_clients_stay_fast():
    raise_file_limit(2000)
    h = Host(tenants=[T], limits={"header_timeout_ms": HEADER_TIMEOUT_MS,
                                  "body_timeout_ms": BODY_TIMEOUT_MS},
             name="load-slow").start()
    prober = Prober(h.port)
    time.sleep(0.5)
    header_socks = open_connections(h.port, SLOW_HEADERS)
    body_socks = open_connections(h.port, SLOW_BODIES)
    head = b"POST /v1/t1/probe/items HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    for s in body_socks:   # headers complete at once, then the body crawls
        s.send(head + b"Content-Length: 1000\r\n\r\n")
    results = {}

    def run_trickle(name, socks, payload):
        results[name] = trickle(socks, payload, 0.2, time.monotonic() + 15)

    slow_header = head + b"X-Slow: " + b"a" * 400 + b"\r\n\r\n"
    threads = [threading.Thread(target=run_trickle, args=("headers", header_socks, slow_header)),
               threading.Thread(target=run_trickle, args=("body", body_socks, b"{" * 1000))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    lat = prober.stop()
    for name, socks, limit in (("headers", header_socks, HEADER_TIMEOUT_MS),
                               ("body", body_socks, BODY_TIMEOUT_MS)):
        closed, answers = results[name]
        assert len(closed) == len(socks), "%s: %d of %d slow clients still open" % (
            name, len(socks) - len(closed), len(socks))
        worst = max(closed.values())
        assert worst < limit / 1000 + 5, (name, worst)
        statuses = {a.split(b" ")[1] for a in answers.values()}
        assert statuses <= {b"408"}, (name, statuses)
        print("%d slow %s clients: all cut off, the last after %.1f s (deadline %.1f s)" % (
            len(socks), name, worst, limit / 1000))
        for s in socks:
            s.close()
    print("normal client during the attack: p50 %.1f ms, p99 %.1f ms, max %.1f ms over %d "
          "requests" % (lat["p50"] * 1000, lat["p99"] * 1000, lat["max"] * 1000, lat["n"]))
    assert lat["p99"] < LATENCY_P99_BOUND, lat
    wait_until(lambda: metric_value(h.metrics(), "tidepool_open_connections") <= 1, timeout=10,
               what="the slow clients' connections to be gone")
    h.stop()


if __name__ == "__main__":
    run(globals())
