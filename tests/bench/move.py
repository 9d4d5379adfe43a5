#!/usr/bin/env python3
"""
tests/bench/move.py - the pause of a brand moving between two nodes (issue 24,
item 2), against the size of its database.

    python3 tests/bench/move.py                  # 10 MB, 100 MB and 1 GB brands
    SIZES_MB=10,100 python3 tests/bench/move.py
    FOLDERS=separate python3 tests/bench/move.py # only between separate data folders

Two nodes of a cluster on one machine share a data folder (README "Shards behind
nginx"). For each size the brand's file is filled to it (rows of 4 KB), then the
brand moves a -> b -> a -> b (three moves) while a client writes to it, and for each
move the script times the two steps that make the pause, by the nodes' own answers:
release (a commits, closes: the checkpoint of what its WAL holds) and adopt (b opens
it: claim, plugins, due jobs). `tidepool cluster move` adds a fixed grace for
nginx's old workers (1 s) when it reloads nginx; no nginx runs here. Also printed:
what a move between machines would add, the copy of the file by SQLite's backup API
(`tidepool backup`). Release build in build-release; a shared machine: noisy.

FOLDERS=separate (the default runs "shared,separate"): the two nodes have data
folders of their own, as on two machines, on loopback. Each move's adopt then pulls
the brand's files from the old node (GET /admin/cluster/transfer, 4 MiB pieces, on a
worker), checks size, SHA-256 and integrity_check, fsyncs and renames them into
place, then opens the brand; after the move the old node sets its copy aside. The
table gives release, adopt (and of it the pull with its checks), and the pause. A
1 GB brand moves once (a -> b: each move leaves a set-aside copy on disk); smaller
ones three times (a -> b -> a -> b), the median shown.
"""
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(os.environ.get("BUILD", os.path.join(REPO, "build-release")), "tidepool")
SIZES = [int(x) for x in os.environ.get("SIZES_MB", "10,100,1000").split(",")]
FOLDERS = os.environ.get("FOLDERS", "shared,separate").split(",")
KEY = "bench-move-admin-key-0123456789"


def config(tmp, ports, node=None):
    """The cluster's config; with node, that node's own (its own data folder)."""
    path = os.path.join(tmp, "tidepool%s.conf.lua" % ("-" + node if node else ""))
    data = os.path.join(tmp, "data" + ("-" + node if node else ""))
    with open(path, "w") as f:
        f.write('''return {
  data_dir = "%s", plugin_dirs = { "%s/plugins", "%s/tests/e2e/plugins" }, log_level = "warn",
  admin_keys = { "%s" }, backup = { dir = "%s/backups", every_seconds = 0 },
  cluster = { nodes = { a = "127.0.0.1:%d", b = "127.0.0.1:%d" }, owners = { big = "a" } },
  tenants = { { id = "big", token_secret = "bench-move-secret-0123456789abcdef", api_keys = { "bench-move-key-01234567" },
                plugins = { autoinc = {}, schjobs = {}, catalog = {} } } },
}
''' % (data, REPO, REPO, KEY, tmp, ports["a"], ports["b"]))
    return path


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def serve(conf, node):
    p = subprocess.Popen([BIN, "serve", "--config", conf, "--node", node, "--log-level", "info"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    for raw in p.stderr:
        if b'"listening"' in raw:
            threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
            return p
    raise SystemExit("bench: node %s did not start" % node)


def post(port, path, body, key=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", **({"X-Api-Key": key} if key else {})})
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def fill(db_path, mb):
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA journal_mode=WAL")
    blob = os.urandom(4000)
    rows = mb * 1000 * 1000 // 4096
    db.executemany("INSERT INTO autoinc_rows (v) VALUES (?)", ((blob.hex()[:4000],) for _ in range(rows)))
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def start_writer(ports, owner, stop):
    """A client writing to big on its owner (owner[0]) until stop is set."""
    def writer():
        while not stop.is_set():
            status, _ = post(ports[owner[0]], "/v1/big/autoinc/rows", {})
            if status not in (201, 503, 421):
                raise SystemExit("bench: a write got %d" % status)

    w = threading.Thread(target=writer, daemon=True)
    w.start()
    return w


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def one(mb):
    tmp = tempfile.mkdtemp(prefix="tidepool-move-", dir=os.environ.get("BENCH_TMPDIR"))
    try:
        ports = {"a": free_port(), "b": free_port()}
        conf = config(tmp, ports)
        a = serve(conf, "a")
        post(ports["a"], "/v1/big/autoinc/rows", {})   # its tables
        a.terminate()
        a.wait()
        fill(os.path.join(tmp, "data", "big.db"), mb)
        size = os.path.getsize(os.path.join(tmp, "data", "big.db"))
        nodes = {"a": serve(conf, "a"), "b": serve(conf, "b")}
        stop, owner = threading.Event(), ["a"]
        w = start_writer(ports, owner, stop)
        releases, adopts = [], []
        for src, dst in (("a", "b"), ("b", "a"), ("a", "b")):
            time.sleep(0.5)
            t0 = time.monotonic()
            status, body = post(ports[src], "/admin/cluster/release", {"tenant": "big", "to": dst}, KEY)
            assert status == 200, body
            t1 = time.monotonic()
            status, body = post(ports[dst], "/admin/cluster/adopt", {"tenant": "big"}, KEY)
            assert status == 200, body
            t2 = time.monotonic()
            owner[0] = dst
            post(ports[src], "/admin/cluster/moved", {"tenant": "big"}, KEY)
            releases.append((t1 - t0) * 1000)
            adopts.append((t2 - t1) * 1000)
        stop.set()
        w.join()
        for p in nodes.values():
            p.terminate()
            p.wait()
        t0 = time.monotonic()
        subprocess.run([BIN, "backup", "--config", conf, "--tenant", "big"], check=True, capture_output=True)
        copy = time.monotonic() - t0
        return size, median(releases), median(adopts), copy
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def one_separate(mb):
    """a and b on separate data folders: the file travels with each move."""
    tmp = tempfile.mkdtemp(prefix="tidepool-move-sep-", dir=os.environ.get("BENCH_TMPDIR"))
    try:
        ports = {"a": free_port(), "b": free_port()}
        confs = {n: config(tmp, ports, n) for n in ("a", "b")}
        a = serve(confs["a"], "a")
        post(ports["a"], "/v1/big/autoinc/rows", {})   # its tables
        a.terminate()
        a.wait()
        fill(os.path.join(tmp, "data-a", "big.db"), mb)
        size = os.path.getsize(os.path.join(tmp, "data-a", "big.db"))
        nodes = {"a": serve(confs["a"], "a"), "b": serve(confs["b"], "b")}
        stop, owner = threading.Event(), ["a"]
        w = start_writer(ports, owner, stop)
        releases, adopts, pulls = [], [], []
        for src, dst in (("a", "b"),) if mb >= 1000 else (("a", "b"), ("b", "a"), ("a", "b")):
            time.sleep(0.5)
            t0 = time.monotonic()
            status, rel = post(ports[src], "/admin/cluster/release", {"tenant": "big", "to": dst}, KEY)
            assert status == 200, rel
            t1 = time.monotonic()
            status, body = post(ports[dst], "/admin/cluster/adopt", {"tenant": "big", "from": src,
                                                                     "folder": rel["folder"]}, KEY)
            assert status == 200 and body["transferred_bytes"] >= size, body
            t2 = time.monotonic()
            owner[0] = dst
            status, done = post(ports[src], "/admin/cluster/moved", {"tenant": "big", "node": dst,
                                                                     "folder": body["folder"]}, KEY)
            assert status == 200 and done["set_aside"], done
            releases.append((t1 - t0) * 1000)
            adopts.append((t2 - t1) * 1000)
            pulls.append(body["transfer_ms"])
        stop.set()
        w.join()
        for p in nodes.values():
            p.terminate()
            p.wait()
        return size, median(releases), median(adopts), median(pulls), len(releases)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    print("command: SIZES_MB=%s FOLDERS=%s python3 tests/bench/move.py (%s); a shared 2-core machine: noisy"
          % (",".join(map(str, SIZES)), ",".join(FOLDERS), time.strftime("%Y-%m-%d")))
    if "shared" in FOLDERS:
        print("\nOne data folder (one machine):\n")
        print("| brand file | release (commit, close) | adopt (open) | pause without nginx | + nginx grace | copy between machines (backup API) |")
        print("|---:|---:|---:|---:|---:|---:|")
        for mb in SIZES:
            size, rel, ado, copy = one(mb)
            print("| %.0f MB | %.1f ms | %.1f ms | %.1f ms | %.0f ms | %.2f s |" % (size / 1e6, rel, ado, rel + ado,
                                                                                 rel + ado + 1000, copy), flush=True)
    if "separate" in FOLDERS:
        print("\nSeparate data folders (machines), over loopback:\n")
        print("| brand file | moves | release (commit, close) | adopt | of it: pull, digest, integrity_check, install | pause without nginx | + nginx grace |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for mb in SIZES:
            size, rel, ado, pull, n = one_separate(mb)
            print("| %.0f MB | %d | %.1f ms | %.0f ms | %.0f ms | %.0f ms | %.0f ms |" % (
                size / 1e6, n, rel, ado, pull, rel + ado, rel + ado + 1000), flush=True)


if __name__ == "__main__":
    sys.exit(main())
