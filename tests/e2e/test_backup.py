"""
test_backup.py - backups of a brand while it serves, and restores (issue 24,
item 4; core/store/backup.h, core/host/backup.c, core/cli/backup.c).

- Scheduled backups every second while eight clients write: each backup file is
  whole (integrity_check) and holds the rows 1..n with no hole (one commit's
  view), n never falls from one backup to the next, and only `keep` stay.
- POST /admin/{t}/backups answers 202 and the list shows the copy; without a
  backup folder in the config it is 409 backups_not_configured.
- One process per brand: a second host on the same data refuses to start and
  says which pid serves it; `tidepool restore` refuses while a host serves.
- `tidepool restore --check` restores the newest backup into a scratch file and
  opens it (CI restores one here); `tidepool restore` puts a backup back, after
  keeping what was there as a backup of its own, and a restart serves the
  restored rows; restoring that kept backup undoes the restore.
- kill -9 while copies and writes go on: the host starts again and every listed
  backup is whole.
"""
import http.client
import os
import sqlite3
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, Host, tenant, api_key, run, wait_until  # noqa: E402

T = tenant("bk", plugins={"autoinc": {}})


def backup_host(name, every=1, keep=3, dir_name="backups"):
    h = Host(tenants=[T], name=name)
    h.extra = {"backup": {"dir": os.path.join(h.dir, dir_name), "every_seconds": every, "keep": keep}}
    h.write_config()
    return h


def listing(h):
    status, _, body = h.admin("GET", "/backups", T)
    assert status == 200, (status, body)
    return body


def rows_of(path):
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", path
        n, lo, hi = db.execute("SELECT count(*), min(id), max(id) FROM autoinc_rows").fetchone()
        return n, lo, hi
    finally:
        db.close()


def backup_path(h, name):
    return os.path.join(h.dir, "backups", "bk", name)


def write_rows(h, seconds, clients=8):
    """Posts rows from `clients` threads for `seconds`; returns how many were acknowledged."""
    acked = [0] * clients
    stop = time.monotonic() + seconds

    def client(i):
        while time.monotonic() < stop:
            try:
                status, _, body = h.post("/v1/bk/autoinc/rows", {})
            except (OSError, http.client.HTTPException):
                return   # the host was killed
            if status == 201:
                acked[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(acked)


def cli(h, *args):
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    p = subprocess.run([BIN] + list(args) + ["--config", h.config_path], capture_output=True, text=True,
                       env=env, timeout=120)
    return p.returncode, p.stdout, p.stderr


def test_scheduled_backups_while_clients_write_are_each_one_commits_view():
    h = backup_host("backup-sched").start()
    try:
        acked = write_rows(h, 4.5)
        # one a second: five taken, the two oldest pruned (keep 3)
        wait_until(lambda: sum(e.get("msg") == "backup taken" for e in h.logs()) >= 5, timeout=20,
                   what="five backups taken")
        body = listing(h)
        assert body["configured"] and body["every_seconds"] == 1 and body["keep"] == 3, body
        assert body["last_error"] is None, body
        taken = [b["taken_ms"] for b in body["backups"]]
        assert taken == sorted(taken, reverse=True), taken
        counts = []
        for b in reversed(body["backups"]):  # oldest first
            n, lo, hi = rows_of(backup_path(h, b["name"]))
            assert n == 0 or (lo == 1 and hi == n), ("a hole: not one commit's view", b, n, lo, hi)
            assert os.path.getsize(backup_path(h, b["name"])) == b["bytes"], b
            counts.append(n)
        assert counts == sorted(counts), counts
        assert counts[-1] <= acked, (counts, acked)
        # kept three, though more were taken: the log says so
        taken_lines = [e for e in h.logs() if e.get("msg") == "backup taken"]
        assert len(taken_lines) >= 5 and len(body["backups"]) == 3, (len(taken_lines), body["backups"])
        assert any(e.get("pruned", 0) > 0 for e in taken_lines), taken_lines[-3:]
        print("%d rows acknowledged; %d backups taken, kept %s rows" % (acked, len(taken_lines), counts))
    finally:
        h.stop()


def test_a_restart_resumes_the_schedule_from_the_newest_backup_on_disk():
    """Every 30 s: a first start with no backup takes one at once; a restart
    finds it (its first job lists the folder, on the worker, not at start) and
    takes none before it is 30 s old."""
    h = backup_host("backup-resume", every=30)
    h.start()
    try:
        wait_until(lambda: len(listing(h)["backups"]) == 1, timeout=10, what="the first backup")
        h.stop()
        h.start()
        time.sleep(2.5)  # ticks look again every second while jobs are left
        assert len(listing(h)["backups"]) == 1, listing(h)
        status, _, body = h.admin("POST", "/backups", T)   # on request: always
        assert status == 202, body
        wait_until(lambda: len(listing(h)["backups"]) == 2, timeout=10, what="the backup on request")
    finally:
        h.stop()


def test_a_backup_on_request_and_without_a_folder():
    h = backup_host("backup-post", every=0, keep=2).start()
    try:
        write_rows(h, 0.5, clients=2)
        assert listing(h)["backups"] == []  # every_seconds 0: only on request
        status, _, body = h.admin("POST", "/backups", T)
        assert status == 202 and body["running"] is True, (status, body)
        wait_until(lambda: len(listing(h)["backups"]) == 1, timeout=10, what="the requested backup")
        b = listing(h)["backups"][0]
        assert abs(b["taken_ms"] - body["started_ms"]) < 1000, (b, body)
        n, _, hi = rows_of(backup_path(h, b["name"]))
        assert n > 0 and hi == n, (n, hi)
    finally:
        h.stop()
    plain = Host(tenants=[T], name="backup-none").start()
    try:
        status, _, body = plain.admin("POST", "/backups", T)
        assert status == 409 and body["error"]["code"] == "backups_not_configured", (status, body)
        assert listing(plain) == {"configured": False, "every_seconds": 0, "keep": 0, "running": False,
                                  "last_error": None, "backups": []}, listing(plain)
        status, _, body = plain.request("POST", "/admin/bk/backups", headers={"X-Api-Key": "wrong-key-0123456789"})
        assert status == 403 and body["error"]["code"] == "invalid_api_key", (status, body)
    finally:
        plain.stop()


def test_one_process_per_brand_and_no_restore_under_a_host():
    h = backup_host("backup-claim", every=0).start()
    try:
        second = Host(tenants=[T], name="backup-claim2")
        second.data_dir = h.data_dir
        second.write_config()
        env = dict(os.environ)
        p = subprocess.run([BIN, "serve", "--config", second.config_path, "--listen", "127.0.0.1:0"],
                           capture_output=True, text=True, env=env, timeout=60)
        assert p.returncode != 0, p.stderr
        assert "another process (pid %d) serves" % h.proc.pid in p.stderr, p.stderr
        code, out, err = cli(h, "backup")
        assert code == 0 and "bk: " in out, (code, out, err)   # a backup beside a running host
        code, out, err = cli(h, "restore", "--tenant", "bk")
        assert code == 1 and "stop that host first" in err, (code, out, err)
        status, _, body = h.post("/v1/bk/autoinc/rows", {})
        assert status == 201, (status, body)   # the first host serves on
    finally:
        h.stop()


def test_restore_check_then_restore_then_undo():
    h = backup_host("backup-restore", every=0, keep=10).start()
    try:
        write_rows(h, 0.5, clients=2)
        code, out, err = cli(h, "backup", "--tenant", "bk")
        assert code == 0, (code, out, err)
        name = out.split("/")[-1].split(" ")[0]
        n_backup, _, _ = rows_of(backup_path(h, name))
        more = write_rows(h, 0.5, clients=2)
        assert more > 0
    finally:
        h.stop()
    live = os.path.join(h.data_dir, "bk.db")
    n_live = sqlite3.connect(live).execute("SELECT count(*) FROM autoinc_rows").fetchone()[0]
    assert n_live > n_backup, (n_live, n_backup)
    code, out, err = cli(h, "restore", "--tenant", "bk", "--check")
    assert code == 0 and "ok: restored into a scratch file and opened" in out, (code, out, err)
    code, out, err = cli(h, "restore", "--tenant", "bk", "--file", name)
    assert code == 0 and "restored from" in out, (code, out, err)
    kept = out.split("is kept as ")[1].split("\n")[0]
    h.start()
    try:
        status, _, body = h.post("/v1/bk/autoinc/rows", {})
        assert status == 201 and body["id"] == n_backup + 1, (status, body, n_backup)
    finally:
        h.stop()
    code, out, err = cli(h, "restore", "--tenant", "bk", "--file", kept)
    assert code == 0, (code, out, err)
    assert sqlite3.connect(live).execute("SELECT count(*) FROM autoinc_rows").fetchone()[0] == n_live
    # hostile or wrong arguments: clear errors, nothing touched
    code, out, err = cli(h, "restore", "--tenant", "bk", "--file", "bk-20990101T000000.000Z.db")
    assert code == 1 and "has no backup named" in err, (code, err)
    code, out, err = cli(h, "restore", "--tenant", "nobody")
    assert code == 1 and "serves no tenant 'nobody'" in err, (code, err)
    code, out, err = cli(h, "restore")
    assert code == 2 and "restore needs --config and --tenant" in err, (code, err)
    bad = os.path.join(h.dir, "garbage.db")
    with open(bad, "wb") as f:
        f.write(b"SQLite format 3\x00" + b"\x5a" * 8000)
    code, out, err = cli(h, "restore", "--tenant", "bk", "--file", bad)
    assert code == 1 and "restore failed" in err, (code, err)
    assert sqlite3.connect(live).execute("SELECT count(*) FROM autoinc_rows").fetchone()[0] == n_live


def test_kill9_while_copies_and_writes_go_on():
    h = backup_host("backup-kill", every=1, keep=50).start()
    try:
        killer = threading.Timer(2.3, h.kill9)
        killer.start()
        write_rows(h, 3.0)
        killer.join()
        h.start()   # the dead process's claim went with it
        write_rows(h, 1.2, clients=2)
        wait_until(lambda: len(listing(h)["backups"]) >= 3, timeout=10, what="backups after the restart")
        for b in listing(h)["backups"]:
            n, lo, hi = rows_of(backup_path(h, b["name"]))
            assert n == 0 or (lo == 1 and hi == n), (b, n, lo, hi)
    finally:
        h.stop()


if __name__ == "__main__":
    run(globals())
