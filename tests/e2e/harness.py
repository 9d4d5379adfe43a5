"""
harness.py - end-to-end test support for tidepool.

A Host is one `tidepool serve` process on a temporary config and data dir:

    h = Host(tenants=[tenant("a", plugins={"catalog": {}, "probe": {}})])
    h.start()
    status, headers, body = h.request("GET", "/v1/a/catalog/products")
    h.stop()          # SIGTERM; asserts exit 0 and a clean sanitizer report

Its stderr (JSON log lines) is collected by a thread: h.logs() / h.wait_log().
The runner at the bottom (run()) calls the test_* functions of a module in
order and ends with the line "N passed, N failed".

Environment: TIDEPOOL_BIN (the binary) and TIDEPOOL_SRC (the repository).
With TIDEPOOL_RECORD_DIR set, every JSON answer of Host.request to a /v1 or
/admin route is written to DIR/<test module>.jsonl with the two OpenAPI
documents its tenant served when first met (test_response_walk.py checks the
answers against them).
Python standard library only.
"""
import base64
import contextlib
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("TIDEPOOL_SRC") or os.path.abspath(os.path.join(HERE, "..", ".."))
# today's plugins and the tests' own: where every host of the tests finds them
PLUGIN_DIRS = [os.path.join(SRC, "plugins"), os.path.join(HERE, "plugins")]
BIN = os.environ.get("TIDEPOOL_BIN") or os.path.join(SRC, "build", "tidepool")

# Generous but bounded: the same tests run under AddressSanitizer.
START_TIMEOUT = 60.0
CLIENT_TIMEOUT = 20.0
STOP_TIMEOUT = 40.0

RECORD_DIR = os.environ.get("TIDEPOOL_RECORD_DIR")
_recorder = {"file": None, "docs": set(), "lock": threading.Lock()}


def record_answer(h, method, path, status, body):
    """Records an answer a test's own client got (TIDEPOOL_RECORD_DIR)."""
    _record(h, method, path, status, body)


def _record(h, method, path, status, body):
    """One recorded answer (TIDEPOOL_RECORD_DIR), after its tenant's documents."""
    path = path.split("?", 1)[0]
    parts = path.split("/")
    if len(parts) < 4 or parts[1] not in ("v1", "admin") or path.endswith("/openapi.json"):
        return
    t = next((t for t in h.tenants if t["id"] == parts[2]), None)
    if t is None:
        return
    key = (h.dir, t["id"])
    with _recorder["lock"]:
        first = key not in _recorder["docs"]
        _recorder["docs"].add(key)
    lines = []
    if first:
        try:
            s1, _, v1 = h.request("GET", "/v1/%s/openapi.json" % t["id"], record=False)
            s2, _, admin = h.request("GET", "/admin/%s/openapi.json" % t["id"], record=False,
                                     headers={"X-Api-Key": api_key(t)})
        except (OSError, http.client.HTTPException):
            return
        if s1 != 200 or s2 != 200:
            return
        lines.append({"kind": "docs", "host": h.dir, "tenant": t["id"], "v1": v1, "admin": admin})
    # an error the host's pipeline gives (auth, content, limits) is not the plugin's to declare
    code = body.get("error", {}).get("code") if isinstance(body, dict) and status >= 400 else None
    lines.append({"kind": "response", "host": h.dir, "tenant": t["id"], "method": method,
                  "path": path, "status": status, "body": body,
                  "plugin_error": code is not None and code not in HOST_ERROR_CODES})
    with _recorder["lock"]:
        if _recorder["file"] is None:
            name = os.path.splitext(os.path.basename(sys.argv[0]))[0] or "interactive"
            os.makedirs(RECORD_DIR, exist_ok=True)
            _recorder["file"] = open(os.path.join(RECORD_DIR, name + ".jsonl"), "w")
        for line in lines:
            _recorder["file"].write(json.dumps(line) + "\n")
        _recorder["file"].flush()


# The codes the host's pipeline answers before or around a plugin's handler.
HOST_ERROR_CODES = {
    "api_key_required", "auth_required", "invalid_api_key", "invalid_token", "member_erased",
    "invalid_json", "invalid_param", "invalid_query", "unsupported_media_type", "uri_too_long",
    "request_timeout", "rate_limited", "too_many_attempts", "internal_error", "store_error",
    "batch_aborted", "commit_failed", "store_unavailable", "too_many_connections", "unavailable",
    "budget_exceeded", "memory_exceeded", "timeout", "method_not_allowed", "route_not_found",
    "tenant_not_found", "bad_request", "token_expired", "wrong_tenant",
}

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")

_live_hosts = []   # started and not yet stopped: killed when the run ends
_all_hosts = []    # their temp dirs are removed when the run ends (E2E_KEEP=1 keeps them)


def sanitized_build():
    """True when the binary was built with TP_SANITIZE (timing-sensitive tests relax)."""
    try:
        with open(BIN, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


# ---- config: Python values written as a Lua table

def lua(value, indent=""):
    if value is None:
        return "nil"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        out = ['"']
        for ch in value.encode("utf-8"):
            c = chr(ch)
            if c in '"\\':
                out.append("\\" + c)
            elif 32 <= ch < 127:
                out.append(c)
            else:
                out.append("\\%03d" % ch)
        out.append('"')
        return "".join(out)
    inner = indent + "  "
    if isinstance(value, (list, tuple)):
        if not value:
            return "{}"
        return "{\n" + "".join(inner + lua(v, inner) + ",\n" for v in value) + indent + "}"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{\n" + "".join(
            "%s[%s] = %s,\n" % (inner, lua(str(k)), lua(v, inner)) for k, v in value.items()
        ) + indent + "}"
    raise TypeError("cannot write %r as Lua" % (value,))


def tenant(tid, plugins=None, secret=None, api_key=None, timezone="Asia/Shanghai"):
    """A tenant table. Defaults: a 32-byte token secret and one API key per tenant."""
    return {
        "id": tid,
        "token_secret": secret or ("secret-for-%s-0123456789abcdef" % tid),
        "api_keys": [api_key or ("apikey-for-%s-0123456789" % tid)],
        "timezone": timezone,
        "plugins": plugins if plugins is not None else {"catalog": {}, "probe": {}},
    }


def api_key(t):
    return t["api_keys"][0]


def manual_tenant(tid, plugins):
    """A tenant on the test clock (moved only by POST .../clock/advance)."""
    t = tenant(tid, plugins=dict(plugins))
    t["clock"] = "manual"
    return t


# ---- the scheduler's admin endpoints

def admin_ok(h, method, path, t, body=None):
    status, _, answer = h.admin(method, path, t, body)
    assert status == 200, (method, path, status, answer)
    return answer


def tasks(h, t, kind="jobs", state="pending"):
    """GET /admin/{t}/jobs or /events: {"state", "pending", "dead", kind: [...]}."""
    body = admin_ok(h, "GET", "/%s?state=%s" % (kind, state), t)
    assert body["state"] == state, body
    return body


def clock(h, t):
    return admin_ok(h, "GET", "/clock", t)


def advance(h, t, **how):
    """Moves t's manual clock (seconds=, ms= or to=) and runs what falls due."""
    body = admin_ok(h, "POST", "/clock/advance", t, how)
    assert body["clock"] == "manual", body
    return body


# ---- raw HTTP on sockets

class RawResponse:
    def __init__(self, version, status, reason, headers, body):
        self.version, self.status, self.reason = version, status, reason
        self.headers, self.body = headers, body

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<%d %r %r>" % (self.status, self.headers, self.body[:200])


class RawConn:
    """A client socket that reads responses itself (for pipelining, odd input)."""

    def __init__(self, port, timeout=CLIENT_TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed by the server")
        self.buf += chunk

    def read_response(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        version, status, reason = (lines[0].split(" ", 2) + [""])[:3]
        headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return RawResponse(version, int(status), reason, headers, body)

    def read_until_closed(self, limit=None):
        """Reads until EOF; returns (bytes, seconds waited). Raises socket.timeout."""
        t0 = time.monotonic()
        data = self.buf
        self.buf = b""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return data, time.monotonic() - t0
            data += chunk
            if limit and len(data) > limit:
                raise AssertionError("more than %d bytes before close" % limit)

    def closed_by_peer(self, timeout):
        """True if the server closes (EOF or reset) within timeout, with nothing unread."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def http_request_bytes(method, path, body=None, headers=None, version="HTTP/1.1"):
    headers = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        body = body.encode()
    lines = ["%s %s %s" % (method, path, version), "Host: 127.0.0.1"]
    if body is not None and not any(k.lower() in ("content-length", "transfer-encoding")
                                    for k in headers):
        headers["Content-Length"] = str(len(body))
    lines += ["%s: %s" % (k, v) for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


# ---- the host process

def host_tmp(host_dir):
    """The TMPDIR a host process runs with, inside its own folder: SQLite's scratch files (a
    request's savepoint journal past 128 KiB, a large sort) are unlinked as soon as they are
    opened, but a kill -9 between the two leaves one, and it goes with the host's folder."""
    d = os.path.join(host_dir, "tmp")
    os.makedirs(d, exist_ok=True)
    return d


class HostError(Exception):
    pass


class Host:
    def __init__(self, tenants=None, limits=None, log_level="info", synchronous="full",
                 extra=None, name="host"):
        self.tenants = tenants or [tenant("t1")]
        self.limits = limits or {}
        self.log_level = log_level
        self.synchronous = synchronous
        self.extra = extra or {}
        self.dir = tempfile.mkdtemp(prefix="tidepool-e2e-%s-" % name)
        self.data_dir = os.path.join(self.dir, "data")
        self.config_path = os.path.join(self.dir, "tidepool.conf.lua")
        self.proc = None
        self.port = None
        self.lines = []          # every stderr line of every run, raw text
        self.run_start = 0       # index in self.lines where the current run began
        self.cond = threading.Condition()
        self.reader = None
        self.serve_args = ["--listen", "127.0.0.1:0"]   # after --config (a cluster node: --node NAME)
        _all_hosts.append(self)
        self.write_config()

    # -- config

    def config(self):
        cfg = {
            "listen": "127.0.0.1:0",
            "data_dir": self.data_dir,
            "plugin_dirs": list(PLUGIN_DIRS),
            "synchronous": self.synchronous,
            "log_level": self.log_level,
            "limits": self.limits,
            "tenants": self.tenants,
        }
        cfg.update(self.extra)
        if not cfg["limits"]:
            del cfg["limits"]
        return cfg

    def write_config(self):
        with open(self.config_path, "w") as f:
            f.write("-- written by tests/e2e/harness.py\nreturn " + lua(self.config()) + "\n")

    def upgrade(self):
        """A host of host_with_old, stopped: serves the same data on today's plugins."""
        self.extra["plugin_dirs"] = self.today_dirs
        self.write_config()
        return self.start()

    # -- process

    def _read_stderr(self, proc):
        for raw in iter(proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def start(self):
        if not os.path.exists(BIN):
            raise HostError("no binary at %s (set TIDEPOOL_BIN)" % BIN)
        env = dict(os.environ, TMPDIR=host_tmp(self.dir))
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        with self.cond:
            self.run_start = len(self.lines)
        self.proc = subprocess.Popen(
            [BIN, "serve", "--config", self.config_path] + self.serve_args,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=env)
        _live_hosts.append(self)
        self.reader = threading.Thread(target=self._read_stderr, args=(self.proc,), daemon=True)
        self.reader.start()
        line = self.wait_log(lambda e: e.get("msg") == "listening", timeout=START_TIMEOUT,
                             what="the listening line")
        self.port = line["port"]
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _finish(self, expect_clean):
        if self.reader:
            self.reader.join(10)
            if not self.reader.is_alive() and self.proc.stderr:
                self.proc.stderr.close()
        if self in _live_hosts:
            _live_hosts.remove(self)
        if expect_clean:
            self.assert_no_sanitizer_report()

    def stop(self, timeout=STOP_TIMEOUT, expect_code=0, check=True):
        """SIGTERM, wait, assert the exit code and a clean sanitizer report
        (check=False: only stop; the caller checks later, e.g. after reading data)."""
        if not self.running():
            code = self.proc.returncode if self.proc else None
            self._finish(check)
            assert not check or code == expect_code, \
                "host had already exited with %r\n%s" % (code, self.tail())
            return code
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            self._finish(False)
            raise AssertionError("host did not stop within %ss after SIGTERM\n%s"
                                 % (timeout, self.tail()))
        self._finish(check)
        assert not check or code == expect_code, \
            "host exited with %r, want %r\n%s" % (code, expect_code, self.tail())
        return code

    def kill9(self):
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._finish(False)

    def restart(self):
        """kill -9 if still running, then start again on the same config and data dir."""
        if self.running():
            self.kill9()
        return self.start()

    def cleanup(self):
        if self.running():
            self.kill9()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        try:
            if exc[0] is None and self.running():
                self.stop()
        finally:
            self.cleanup()

    # -- logs

    def run_lines(self):
        with self.cond:
            return list(self.lines[self.run_start:])

    def logs(self, all_runs=False):
        """Parsed JSON log lines (of the current run unless all_runs)."""
        out = []
        with self.cond:
            lines = self.lines if all_runs else self.lines[self.run_start:]
            lines = list(lines)
        for line in lines:
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def wait_log(self, pred, timeout=10.0, what="a log line", start=None):
        deadline = time.monotonic() + timeout
        seen = self.run_start if start is None else start
        with self.cond:
            while True:
                while seen < len(self.lines):
                    line = self.lines[seen]
                    seen += 1
                    if line.startswith("{"):
                        try:
                            e = json.loads(line)
                        except ValueError:
                            continue
                        if pred(e):
                            return e
                if self.proc is not None and self.proc.poll() is not None and \
                        (self.reader is None or not self.reader.is_alive()):
                    raise HostError("host exited (%r) before %s\n%s"
                                    % (self.proc.returncode, what, self._tail_locked()))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise HostError("timed out waiting for %s\n%s" % (what, self._tail_locked()))
                self.cond.wait(min(left, 0.2))

    def log_mark(self):
        with self.cond:
            return len(self.lines)

    def _tail_locked(self, n=40):
        return "---- host stderr (last %d lines) ----\n%s" % (n, "\n".join(self.lines[-n:]))

    def tail(self, n=40):
        with self.cond:
            return self._tail_locked(n)

    def assert_no_sanitizer_report(self, all_runs=False):
        with self.cond:
            lines = list(self.lines if all_runs else self.lines[self.run_start:])
        text = "\n".join(lines)
        for marker in SANITIZER_MARKERS:
            assert marker not in text, "sanitizer report in host stderr:\n%s" % text[-6000:]

    # -- clients

    def request(self, method, path, body=None, headers=None, timeout=CLIENT_TIMEOUT, record=True):
        """Returns (status, headers with lowercase names, JSON body or text)."""
        headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json"
        elif isinstance(body, str):
            body = body.encode("utf-8")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            status = resp.status
        finally:
            conn.close()
        ctype = hdrs.get("content-type", "")
        if ctype.startswith("application/json"):
            try:
                parsed = json.loads(raw.decode("utf-8"))
            except ValueError as e:
                raise AssertionError("response is not valid JSON (%s): %r" % (e, raw[:500]))
            if RECORD_DIR and record:
                _record(self, method, path, status, parsed)
            return status, hdrs, parsed
        return status, hdrs, raw.decode("utf-8", "replace")

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def admin(self, method, path, tenant_obj, body=None, headers=None):
        h = {"X-Api-Key": api_key(tenant_obj)}
        h.update(headers or {})
        return self.request(method, "/admin/%s%s" % (tenant_obj["id"], path), body=body, headers=h)

    def token(self, tenant_id, user, ttl=None):
        cmd = [BIN, "token", "--config", self.config_path, "--tenant", tenant_id, "--user", user]
        if ttl is not None:
            cmd += ["--ttl", str(ttl)]
        out = subprocess.run(cmd, capture_output=True, timeout=60)
        assert out.returncode == 0, "tidepool token failed: %r" % (out.stderr,)
        return out.stdout.decode().strip()

    def bearer(self, tenant_id, user, ttl=None):
        return {"Authorization": "Bearer " + self.token(tenant_id, user, ttl)}

    def raw(self, timeout=CLIENT_TIMEOUT):
        return RawConn(self.port, timeout)

    def raw_exchange(self, data, timeout=CLIENT_TIMEOUT):
        """Sends bytes on a new connection and reads one response."""
        c = self.raw(timeout)
        try:
            c.send(data)
            return c.read_response()
        finally:
            c.close()

    def assert_serving(self, tenant_id=None):
        """A normal request still works (after some abuse)."""
        status, _, body = self.get("/healthz")
        assert status == 200 and body == {"status": "ok"}, (status, body)
        if tenant_id:
            status, _, body = self.get("/v1/%s/catalog/products" % tenant_id)
            assert status == 200 and "items" in body, (status, body)

    def metrics(self):
        status, _, text = self.get("/metrics")
        assert status == 200, status
        return text


def metric_value(text, name, labels=None):
    """The value of one sample in Prometheus text; labels is a dict that must match."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        rest = line[len(name):]
        if rest.startswith("{"):
            lab, value = rest[1:].split("} ", 1)
            have = dict(kv.split("=", 1) for kv in _split_labels(lab))
            have = {k: v.strip('"') for k, v in have.items()}
            if labels and any(have.get(k) != v for k, v in labels.items()):
                continue
        elif rest.startswith(" "):
            if labels:
                continue
            value = rest[1:]
        else:
            continue
        return float(value)
    return None


def _split_labels(s):
    out, cur, quoted = [], "", False
    for i, ch in enumerate(s):
        if ch == '"' and (i == 0 or s[i - 1] != "\\"):
            quoted = not quoted
        if ch == "," and not quoted:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        out.append(cur)
    return out


# ---- users and the catalog, for the commerce tests

class QuietHandler(http.server.BaseHTTPRequestHandler):
    """The handler of a fake server the tests start (an ERP, WeChat, a webhook
    receiver): HTTP/1.1 keep-alive, and no access log on the test's stderr."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass


class _LoopbackServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def handle_error(self, request, client_address):
        pass  # a caller that gave up (a timeout, a kill -9, a refused handshake)


def serve_loopback(handler, port=0, ssl_context=None):
    """Serves handler (a QuietHandler) on 127.0.0.1:port (0: a free one) in a
    daemon thread, over TLS with ssl_context: (server, its port)."""
    server = _LoopbackServer(("127.0.0.1", port), handler)
    if ssl_context:
        server.socket = ssl_context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def free_port():
    """A loopback port nobody listens on right now (for a process the test starts itself)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def read_db(h, tid, sql, *args, timeout=5.0):
    """The rows (tuples) of sql run read-only on tenant tid's database file, beside
    the running host (WAL: it sees what is committed)."""
    import sqlite3
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(h.data_dir, tid + ".db"), uri=True,
                         timeout=timeout)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def awaits_unpaid_timeout(h, t, order_id):
    """Whether orders' unpaid timeout still waits on the order: since orders 1.10.0
    one sweep job reads the pending orders by their deadline (orders_orders_unpaid),
    where before each order had a job of its own."""
    return read_db(h, t["id"], "SELECT count(*) FROM orders_orders INDEXED BY orders_orders_unpaid"
                   " WHERE id = ? AND status = 'pending_payment'", order_id) == [(1,)]


def unpaid_sweep_due(h, t):
    """When orders' unpaid sweep job is due (epoch seconds), None if none is pending."""
    due = [j["due"] for j in tasks(h, t, "jobs")["jobs"] if j["name"] == "sweep_unpaid"]
    assert len(due) <= 1, due
    return due[0] if due else None


class DemoHost:
    """The host serving the demo brand's config (scripts/demo/tidepool.conf.lua
    under root, SRC by default) on data_dir (a temp dir's by default, removed at
    stop), as tools/demo.sh serves it; stop() fails on a sanitizer report."""

    def __init__(self, root=None, data_dir=None):
        root = root or SRC
        self.dir = tempfile.mkdtemp(prefix="tidepool-e2e-demo-")
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.conf = os.path.join(root, "scripts/demo/tidepool.conf.lua")
        env = dict(os.environ, TIDEPOOL_LISTEN="127.0.0.1:%d" % self.port,
                   TIDEPOOL_DATA_DIR=data_dir or os.path.join(self.dir, "data"),
                   TIDEPOOL_BACKUP_DIR=os.path.join(self.dir, "backups"), TMPDIR=host_tmp(self.dir))
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        self.log = open(os.path.join(self.dir, "host.log"), "w+")
        self.proc = subprocess.Popen([BIN, "serve", "--config", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.log, env=env)
        wait_until(self.up, timeout=60, what="the demo host to listen")

    def up(self):
        assert self.proc.poll() is None, "the demo host exited"
        try:
            return urllib.request.urlopen(self.base + "/healthz", timeout=2).status == 200
        except OSError:
            return False

    def get(self, path, admin=False):
        req = urllib.request.Request(self.base + path, headers={"X-Api-Key": DEMO_KEY} if admin else {})
        with urllib.request.urlopen(req, timeout=20) as r:
            return json.loads(r.read())

    def stop(self):
        self.proc.terminate()
        assert self.proc.wait(40) == 0, "the demo host did not stop cleanly"
        self.log.seek(0)
        text = self.log.read()
        for marker in SANITIZER_MARKERS:
            assert marker not in text, text[-3000:]
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


DEMO_KEY = "demo-only-leaf-admin-key"


def host_with_old(tenants, name, old_dirs, more_dirs=()):
    """A started Host serving the plugins in old_dirs (old_plugin's) ahead of today's
    (and more_dirs): the data of earlier versions, for an upgrade test. Stop it,
    then h.upgrade() serves the same data on today's plugins."""
    today = PLUGIN_DIRS + list(more_dirs)
    h = Host(tenants=tenants, name=name,
             extra={"plugin_dirs": list(old_dirs) + today, "sdk_dir": os.path.join(SRC, "sdk")})
    h.today_dirs = today
    return h.start()


@contextlib.contextmanager
def old_plugin(plugin, version):
    """A plugin directory holding plugins/<plugin> as it was at `version` (from
    git), for an upgrade test; None without the history (the test then skips)."""
    commit = plugin_commit(plugin, version)
    if commit is None:
        print("  (skipped: no git history with %s %s)" % (plugin, version))
        yield None
        return
    into = tempfile.mkdtemp(prefix="tidepool-e2e-%s-%s-" % (plugin, version))
    try:
        export_plugin(plugin, commit, into)
        yield into
    finally:
        shutil.rmtree(into, ignore_errors=True)


def writes_build_a_btree(h, tid, tables):
    """Per table, whether an INSERT into it opens an ephemeral table (a CHECK's IN
    list of 3+ values, which SQLite builds into a temporary b-tree on every row
    written; `tidepool check` warns of it). Compiled, never run, on a read-write
    connection (a read-only one compiles no CHECK): call it with the host stopped."""
    import sqlite3
    db = sqlite3.connect(os.path.join(h.data_dir, tid + ".db"))
    try:
        return [any(r[1] == "OpenEphemeral" for r in db.execute("EXPLAIN INSERT INTO %s DEFAULT VALUES" % t))
                for t in tables]
    finally:
        db.close()


def sign_token(secret, tenant_id, user, exp):
    """A user token made as core/base/token.h describes: v1.<tenant>.<user>.<exp>.<sig>."""
    msg = "v1.%s.%s.%d" % (tenant_id, user, exp)
    mac = hmac.new(secret.encode(), msg.encode(), hashlib.sha256).digest()
    return msg + "." + base64.urlsafe_b64encode(mac).decode().rstrip("=")


def mint_token(t, user, ttl=3600):
    """A valid token for user of tenant t, made in this process: Host.token runs
    the CLI, a process per user, too slow for thousands of users under ASan.
    Its expiry is checked against the wall clock, even on a manual-clock tenant."""
    return sign_token(t["token_secret"], t["id"], user, int(time.time()) + ttl)


def user_auth(t, user, ttl=3600):
    """The Authorization header of user of tenant t."""
    return {"Authorization": "Bearer " + mint_token(t, user, ttl)}


def openapi(h, t):
    """The tenant's two OpenAPI documents read as one: the users' (GET
    /v1/{t}/openapi.json) with the operators' paths (/admin/{t}/openapi.json) added."""
    status, _, doc = h.get("/v1/%s/openapi.json" % t["id"])
    assert status == 200, (status, doc)
    status, _, admin = h.admin("GET", "/openapi.json", t)
    assert status == 200, (status, admin)
    doc["paths"].update(admin["paths"])
    return doc


def add_sku(h, t, code, stock, price_fen=9900):
    """A product with one SKU, created through the catalog's admin route; returns the product."""
    status, _, body = h.admin("POST", "/catalog/products", t, {
        "name": "product " + code,
        "skus": [{"code": code, "title": "title " + code, "price_fen": price_fen, "stock": stock}]})
    assert status == 201, (status, body)
    return body


def sku_stock(h, t, code):
    """A SKU's stock, read through the catalog's public route."""
    status, _, body = h.get("/v1/%s/catalog/skus/%s" % (t["id"], code))
    assert status == 200, (status, body)
    return body["stock"]


def error_code(body):
    assert isinstance(body, dict) and "error" in body, "not an error body: %r" % (body,)
    return body["error"]["code"]


def expect_error(result, status, code):
    st, hdrs, body = result
    assert st == status, "want %d %s, got %d %r" % (status, code, st, body)
    assert error_code(body) == code, "want code %s, got %r" % (code, body)
    assert hdrs.get("content-type", "").startswith("application/json"), hdrs
    return body


def wait_until(pred, timeout, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


# ---- a plugin as an older version was, from git (the upgrade tests)

def plugin_commit(plugin, version):
    """The newest commit whose plugins/<plugin>/plugin.lua declares `version`, or None
    without the history (a tarball, no git)."""
    path = "plugins/%s/plugin.lua" % plugin
    try:
        log = subprocess.run(["git", "-C", SRC, "log", "--format=%H", "--", path],
                             capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return None
    for commit in log:
        text = subprocess.run(["git", "-C", SRC, "show", "%s:%s" % (commit, path)],
                              capture_output=True, text=True).stdout
        if 'version = "%s"' % version in text:
            return commit
    return None


def plugin_version(plugin):
    """The version plugins/<plugin>/plugin.lua declares in the working tree."""
    with open(os.path.join(SRC, "plugins", plugin, "plugin.lua")) as f:
        m = re.search(r'^\s*version = "([^"]+)"', f.read(), re.M)
    return m and m.group(1)


def export_plugin(plugin, commit, into):
    """Writes plugins/<plugin> as it was at commit into into/<plugin>."""
    files = subprocess.run(["git", "-C", SRC, "ls-tree", "-r", "--name-only", commit, "plugins/" + plugin],
                           capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        dest = os.path.join(into, os.path.relpath(f, "plugins"))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "wb") as out:
            out.write(subprocess.run(["git", "-C", SRC, "show", "%s:%s" % (commit, f)],
                                     capture_output=True, check=True).stdout)


# ---- the runner

def run(module_globals):
    """Runs every test_* function of the module, in definition order."""
    tests = [(name, fn) for name, fn in module_globals.items()
             if name.startswith("test_") and callable(fn)]
    only = os.environ.get("E2E_ONLY")
    if only:
        tests = [(n, f) for n, f in tests if any(o in n for o in only.split(","))]
    passed = failed = 0
    t_all = time.monotonic()
    for name, fn in tests:
        t0 = time.monotonic()
        try:
            fn()
        except Exception:
            failed += 1
            print("FAIL %s (%.2fs)" % (name, time.monotonic() - t0))
            traceback.print_exc(file=sys.stdout)
        else:
            passed += 1
            print("ok   %s (%.2fs)" % (name, time.monotonic() - t0))
        sys.stdout.flush()
    teardown = module_globals.get("teardown")
    if teardown:
        try:
            teardown()
        except Exception:
            failed += 1
            print("FAIL teardown")
            traceback.print_exc(file=sys.stdout)
    for h in list(_live_hosts):
        h.kill9()
    if not os.environ.get("E2E_KEEP"):
        for h in _all_hosts:
            shutil.rmtree(h.dir, ignore_errors=True)
    print("total %.1fs" % (time.monotonic() - t_all))
    print("%d passed, %d failed" % (passed, failed))
    sys.stdout.flush()
    sys.exit(1 if failed else 0)
