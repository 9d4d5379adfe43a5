"""
test_cluster_machines.py - a brand moving between nodes that do NOT share a data
folder (separate machines, simulated by separate data folders on loopback; issue
24, item 2; README "Moving a brand between machines"). The brand's files travel
from the old node to the new one in pieces (GET /admin/cluster/transfer/{t}),
checked (size, SHA-256, integrity) before the new node opens them.

- leaf's flash sale is bought through nginx while leaf moves a -> b -> c, each node
  with its own folder: every acknowledged order exists once in c's file, every
  unpaid timeout fires once, no node answers leaf outside the time it holds it; a
  and b keep their copies set aside (renamed, a tombstone), never served again,
  and every node, restarted, and `cluster nginx` from any node's config agree
  that c serves leaf.
- A failed pull aborts the move and the old owner keeps serving: a node whose key
  the source refuses, a source whose digest does not match, a file that is not a
  database, a piece that comes short. Nothing is left in the new node's folder.
- Every malformed or hostile request to the transfer endpoint gets a JSON error
  (documented in GET /admin/cluster/openapi.json) and changes nothing.
"""
import hashlib
import http.client
import http.server
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, Host, free_port, run, sku_stock, user_auth  # noqa: E402
from test_cluster import (ADMIN, LEAF, TENANTS, Cluster, advance, cluster_config, holding, orders_in,  # noqa: E402
                          sale_while_moving, start_sale)


class Machines(Cluster):
    """Three nodes, each with a data folder of its own (and its own config file,
    as on three machines); the CLI runs with a's config. extra_nodes: more names
    in cluster.nodes, each a port (a fake node, no tidepool)."""

    def __init__(self, keys=None, extra_nodes=None):
        self.ports = {n: free_port() for n in ("a", "b", "c")}
        self.ports.update(extra_nodes or {})
        self.nodes = {}
        for name in ("a", "b", "c"):
            h = Host(tenants=TENANTS, name="machine-" + name)
            h.extra = {"cluster": cluster_config(self.ports), "admin_keys": (keys or {}).get(name, [ADMIN])}
            h.serve_args = ["--node", name]
            h.write_config()
            self.nodes[name] = h
        first = self.nodes["a"]
        self.config = first.config_path
        self.nginx_dir = os.path.join(first.dir, "nginx")
        self.nginx_port = free_port()
        self.nginx = None


def db_of(h, brand="leaf"):
    return os.path.join(h.data_dir, "%s.db" % brand)


def host_post(h, path, body, key=ADMIN):
    return h.request("POST", path, body, headers={"X-Api-Key": key}, record=False)


def get_raw(port, path, key=ADMIN):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path, headers={"X-Api-Key": key} if key else {})
        r = conn.getresponse()
        return r.status, r.getheader("content-type", ""), r.read()
    finally:
        conn.close()


def test_a_flash_sale_moves_between_machines_under_load():
    """test_cluster's sale under moves (sale_while_moving), each node with a folder of
    its own: the orders and their timers travel in leaf's file, a -> b -> c."""
    c = Machines().start()
    try:
        front = c.front()
        acked, buy_path, (out1, out2) = sale_while_moving(c)
        assert "copied between data folders" in out1 and "copied between data folders" in out2, (out1, out2)
        assert sku_stock(front, LEAF, "hot") == 100000, "a unit not back: an unpaid order not cancelled"
        # b's and c's adopts were answered (after their pulls)
        for name in ("b", "c"):
            adopted = [e for e in c.nodes[name].logs() if e.get("msg") == "request" and
                       e.get("route") == "admin POST /admin/cluster/adopt"]
            assert adopted and adopted[-1]["status"] == 200, adopted
        # no node answered for leaf while it did not hold it
        for name, h in c.nodes.items():
            spans, reqs = holding(h, "leaf")
            if name != "a":
                spans = [sp for sp in spans if sp[0] > 0]   # b and c held it only once adopted
            assert spans, name
            for began, status in reqs:
                if status < 400:
                    assert any(lo - 1 <= began <= hi + 1 for lo, hi in spans), \
                        ("node %s answered %d for leaf at %d, outside %s" % (name, status, began, spans))
        # a's and b's copies are set aside, with a tombstone: never served again
        for name in ("a", "b"):
            d = c.nodes[name].data_dir
            assert not os.path.exists(db_of(c.nodes[name])), "node %s still has leaf.db" % name
            aside = [f for f in os.listdir(d) if f.startswith("leaf.db.moved-")]
            assert aside, os.listdir(d)
            with open(os.path.join(d, "leaf.moved")) as f:
                assert f.read().startswith("moved to node "), name
        assert not [f for f in os.listdir(c.nodes["c"].data_dir) if "incoming" in f or ".moved" in f], \
        os.listdir(c.nodes["c"].data_dir)
        # every node's config, rendered, sends leaf to c; restarted, a and b answer 421 naming c
        for name, h in c.nodes.items():
            p = subprocess.run([BIN, "cluster", "nginx", "--config", h.config_path], capture_output=True, text=True)
            assert p.returncode == 0 and "leaf tidepool_c;" in p.stdout, (name, p.stdout)
        for name in ("a", "b"):
            h = c.nodes[name]
            h.stop()
            h.start()
            status, _, body = h.request("POST", buy_path, {}, headers=user_auth(LEAF, "late"))
            assert status == 421 and "node c (" in body["error"]["message"], (name, status, body)
        # a CLI that died after the adopt runs the move again: c answers as before, a nothing to resume
        status, _, body = host_post(c.nodes["c"], "/admin/cluster/adopt", {"tenant": "leaf", "from": "b",
                                                                          "folder": "F" * 32})
        assert status == 200 and body["node"] == "c", (status, body)
        status, _, body = host_post(c.nodes["b"], "/admin/cluster/resume", {"tenant": "leaf"})
        assert status == 409 and body["error"]["code"] == "not_released", (status, body)
        c.nodes["c"].stop()
        c.nodes["c"].start()
        status, _, body = c.nodes["c"].request("GET", "/v1/leaf/openapi.json")
        assert status == 200, (status, body)
    finally:
        c.stop()
    orders, jobs = orders_in(db_of(c.nodes["c"]))
    assert {o[0]: o[1] for o in orders} == acked, "an acknowledged order lost, or one nobody was told of"
    assert all(o[2] == "cancelled" for o in orders), [o for o in orders if o[2] != "cancelled"][:5]
    assert jobs == 0, "%d of orders' jobs left (pending or dead)" % jobs


def test_a_refused_pull_aborts_the_move_and_the_old_owner_keeps_serving():
    """Node c asks with a key a does not take (its config's first key is its own):
    a refuses the transfer, c's adopt fails, the CLI resumes a, and leaf goes on
    being served by a, its files and timers where they were."""
    c = Machines(keys={"c": ["machine-c-own-key-0123456789", ADMIN]}).start()
    try:
        front = c.front()
        buy_path = start_sale(front)
        status, _, first = front.request("POST", buy_path, {}, headers=user_auth(LEAF, "before"))
        assert status == 201, (status, first)
        p = subprocess.run([BIN, "cluster", "move", "leaf", "--to", "c", "--config", c.config, "--nginx",
                            c.nginx_dir, "--listen", "127.0.0.1:%d" % c.nginx_port],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 1, (p.stdout, p.stderr)
        assert "transfer_failed" in p.stderr and "the move is aborted: node a serves 'leaf' again" in p.stderr, p.stderr
        status, _, second = front.request("POST", buy_path, {}, headers=user_auth(LEAF, "after"))
        assert status == 201, (status, second)
        status, _, body = c.nodes["c"].request("POST", buy_path, {}, headers=user_auth(LEAF, "direct"))
        assert status == 421 and "node a (" in body["error"]["message"], (status, body)
        assert os.listdir(c.nodes["c"].data_dir) and not [
            f for f in os.listdir(c.nodes["c"].data_dir) if f.startswith("leaf.") or f.startswith(".leaf")]
        advance(front, 61)   # both unpaid timeouts fire, on a
        orders, jobs = orders_in(db_of(c.nodes["a"]))
        assert [o[2] for o in orders] == ["cancelled", "cancelled"] and jobs == 0, (orders, jobs)
        # a restarted still serves it (its resume recorded it back)
        c.nodes["a"].stop()
        c.nodes["a"].start()
        status, _, body = c.nodes["a"].request("POST", buy_path, {}, headers=user_auth(LEAF, "restart"))
        assert status == 201, (status, body)
        p = subprocess.run([BIN, "cluster", "nginx", "--config", c.config], capture_output=True, text=True)
        assert "leaf tidepool_a;" in p.stdout, p.stdout
    finally:
        c.stop()
    orders, _ = orders_in(db_of(c.nodes["a"]))
    assert [o[1] for o in orders] == ["before", "after", "restart"], orders


class FakeSource(http.server.BaseHTTPRequestHandler):
    """A node "x" that answers the transfer endpoint as the test says (mode)."""
    mode, payload = "digest", b""

    def do_GET(self):
        if "?" not in self.path:
            digest = hashlib.sha256(self.payload).hexdigest()
            if FakeSource.mode == "digest":
                digest = "0" * 64
            size = len(self.payload) + (1 if FakeSource.mode == "short" else 0)
            body = json.dumps({"tenant": "leaf", "folder": "F" * 32, "chunk_max": 4194304,
                               "files": [{"file": "db", "bytes": size, "sha256": digest}]}).encode()
            ctype = "application/json"
        else:
            body, ctype = self.payload, "application/octet-stream"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_pull_that_does_not_check_out_changes_nothing():
    """b is asked to adopt leaf from a fake node x: a wrong digest, a file that is
    no database, a piece that comes short are each refused (502 transfer_corrupt or
    transfer_failed), and b's folder and ownership are as they were."""
    xport = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", xport), FakeSource)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    c = Machines(extra_nodes={"x": xport}).start()
    try:
        b = c.nodes["b"]
        with open(db_of(c.nodes["a"]), "rb") as f:
            real = f.read()
        cases = [("digest", real, 502, "transfer_corrupt", "digest_mismatch"),
                 ("garbage", b"not a database " * 300, 502, "transfer_corrupt", "integrity_check"),
                 ("short", real, 502, "transfer_failed", "came short")]
        for mode, payload, want_status, want_code, want_text in cases:
            FakeSource.mode, FakeSource.payload = mode, payload
            before = sorted(os.listdir(b.data_dir))
            status, _, body = host_post(b, "/admin/cluster/adopt", {"tenant": "leaf", "from": "x", "folder": "F" * 32})
            assert status == want_status and body["error"]["code"] == want_code, (mode, status, body)
            assert want_text in body["error"]["message"], (mode, body)
            assert sorted(os.listdir(b.data_dir)) == before, (mode, before, os.listdir(b.data_dir))
            status, _, body = b.request("GET", "/v1/leaf/openapi.json")
            assert status == 421, (mode, status, body)
        # each code answered here is one the adopt documents
        status, _, doc = b.request("GET", "/admin/cluster/openapi.json", headers={"X-Api-Key": ADMIN}, record=False)
        documented = json.dumps(doc["paths"]["/admin/cluster/adopt"]["post"]["responses"])
        for code in ("transfer_corrupt", "transfer_failed", "invalid_field", "tenant_not_found"):
            assert '"%s"' % code in documented, code
        # a never released leaf: it serves it still
        status, _, body = c.front().request("GET", "/v1/leaf/openapi.json")
        assert status == 200, (status, body)
    finally:
        c.stop()
        server.shutdown()
        server.server_close()


def test_hostile_requests_to_the_transfer_endpoint_change_nothing():
    c = Machines().start()
    try:
        a, b = c.nodes["a"], c.nodes["b"]
        base = "/admin/cluster/transfer/leaf"
        status, _, doc = a.request("GET", "/admin/cluster/openapi.json", headers={"X-Api-Key": ADMIN}, record=False)
        assert status == 200, (status, doc)
        documented = json.dumps(doc["paths"]["/admin/cluster/transfer/{tenant}"]["get"]["responses"])

        def expect(path, status, code, key=ADMIN, method="GET", node=None):
            node = node or a
            got, _, body = node.request(method, path, headers={"X-Api-Key": key} if key else {}, record=False)
            assert got == status and body["error"]["code"] == code, (path, got, body)
            if method == "GET" and got != 405:
                assert '"%s"' % code in documented, ("undocumented", code)

        # leaf is served by a, not released: nothing of it is handed out
        expect(base, 409, "not_released")
        expect(base + "?file=db&offset=0&length=10", 409, "not_released")
        expect(base, 401, "api_key_required", key=None)
        expect(base, 403, "invalid_api_key", key="wrong-key-0123456789abcdef")
        expect(base, 405, "method_not_allowed", method="POST")
        expect("/admin/cluster/transfer/nobody", 404, "tenant_not_found")
        expect("/admin/cluster/transfer/leaf/../moss", 404, "tenant_not_found")
        status, _, body = host_post(a, "/admin/cluster/release", {"tenant": "leaf", "to": "b"})
        assert status == 200 and len(body["folder"]) == 32, (status, body)
        status, _, again = host_post(a, "/admin/cluster/release", {"tenant": "leaf", "to": "b"})
        assert status == 200 and again["folder"] == body["folder"], (status, again)   # a CLI's retry
        status, _, other = host_post(a, "/admin/cluster/release", {"tenant": "leaf", "to": "c"})
        assert status == 409 and other["error"]["code"] == "not_owner", (status, other)
        for bad, code in [("?file=../leaf.db&offset=0&length=1", "invalid_field"),
                          ("?file=%2Fetc%2Fpasswd&offset=0&length=1", "invalid_field"),
                          ("?file=db.lock&offset=0&length=1", "invalid_field"),
                          ("?file=db&offset=-1&length=1", "invalid_field"),
                          ("?file=db&offset=abc&length=1", "invalid_field"),
                          ("?file=db&offset=0&length=0", "invalid_field"),
                          ("?file=db&offset=0&length=4194305", "invalid_field"),
                          ("?file=db&offset=0&length=99999999999999999999", "invalid_field"),
                          ("?file=db&offset=0", "invalid_field"),
                          ("?file=db&offset=0&length=1&path=/etc/passwd", "invalid_query"),
                          ("?file=%ZZ", "invalid_query")]:
            expect(base + bad, 400, code)
        expect(base + "?file=db&offset=999999999&length=1", 416, "range_not_satisfiable")
        # the manifest and its pieces are the file, byte for byte
        status, ctype, raw = get_raw(a.port, base)
        manifest = json.loads(raw)
        assert status == 200 and manifest["chunk_max"] == 4194304, (status, manifest)
        entry = [f for f in manifest["files"] if f["file"] == "db"][0]
        got, off = b"", 0
        while off < entry["bytes"]:
            status, ctype, piece = get_raw(a.port, base + "?file=db&offset=%d&length=%d" % (off, 1000))
            assert status == 200 and ctype == "application/octet-stream" and 0 < len(piece) <= 1000, (status, ctype)
            got += piece
            off += len(piece)
        assert len(got) == entry["bytes"] and hashlib.sha256(got).hexdigest() == entry["sha256"]
        with open(db_of(a), "rb") as f:
            assert f.read() == got
        # hostile adopt and moved bodies: refused, nothing changes
        for body, code in [({"tenant": "leaf", "from": "b", "folder": "F" * 32}, "invalid_field"),   # itself
                           ({"tenant": "leaf", "from": "a"}, "invalid_field"),                        # no folder
                           ({"tenant": "leaf", "from": "a", "folder": "../../x"}, "invalid_field"),
                           ({"tenant": "leaf", "from": "nobody", "folder": "F" * 32}, "invalid_field"),
                           ({"tenant": "nobody"}, "tenant_not_found")]:
            status, _, got_body = host_post(b, "/admin/cluster/adopt", body)
            assert got_body["error"]["code"] == code, (body, status, got_body)
        status, _, body = host_post(b, "/admin/cluster/adopt", {"tenant": "leaf", "from": "a", "folder": "F" * 32},
                                    key="wrong-key-0123456789abcdef")
        assert status == 403, (status, body)
        assert not os.path.exists(db_of(b))
        status, _, body = host_post(a, "/admin/cluster/moved", {"tenant": "leaf", "node": "zz"})
        assert status == 400 and body["error"]["code"] == "invalid_field", (status, body)
        assert os.path.exists(db_of(a))
        # the move is called off: a resumes, and serves leaf again
        status, _, body = host_post(a, "/admin/cluster/resume", {"tenant": "leaf"})
        assert status == 200, (status, body)
        status, _, body = host_post(a, "/admin/cluster/resume", {"tenant": "leaf"})
        assert status == 409 and body["error"]["code"] == "not_released", (status, body)
        expect(base, 409, "not_released")
        status, _, body = c.front().request("GET", "/v1/leaf/openapi.json")
        assert status == 200, (status, body)
    finally:
        c.stop()


if __name__ == "__main__":
    run(globals())
