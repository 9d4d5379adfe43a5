"""
test_crash.py - the host killed with SIGKILL at random moments loses nothing
it acknowledged and sells nothing twice.

1. A flash sale under load from many concurrent clients, each buy carrying its
   own Idempotency-Key. Ten times the host is killed at a random moment and
   restarted; a buy whose answer was lost in a kill is sent again, with the
   same key, after the restart. Afterwards every order a client saw
   acknowledged exists, once, for its user; no key made two orders; no user
   is over the limit; sold + remaining = the sale's quantity and the catalog
   is down by exactly the units sold.
2. A kill during a hot reload that brings a new migration: after the restart
   the new version serves and every migration ran exactly once.
3. A kill during a burst of due jobs (hundreds of unpaid orders timing out at
   once): after the restart and the rest of the burst, every order was
   cancelled once and every unit is back, in the sale and in the catalog.

The figures (acknowledged vs present orders per round, restart times) are
printed; CRASH_ROUNDS, CRASH_CLIENTS and CRASH_USERS make the run larger on
demand.
"""
import http.client
import json
import os
import queue
import random
import shutil
import statistics
import sys
import threading
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Host, advance, read_db, sku_stock, run  # noqa: E402
from test_flash_sale import (shop, token, add_sku, new_sale, admin_sale, all_orders,  # noqa: E402
                             orders_of_sale, check_accounting, buy_ok)
from test_reload import Plug, rl_host, rl_tenant, reload, tables, version_of  # noqa: E402

ROUNDS = int(os.environ.get("CRASH_ROUNDS", "10"))
CLIENTS = int(os.environ.get("CRASH_CLIENTS", "24"))
USERS = int(os.environ.get("CRASH_USERS", "600"))
ATTEMPTS_PER_USER = 3      # one more than the limit: the limit is tried under fire
PER_USER_LIMIT = 2
QUANTITY = USERS * 5 // 3  # fewer than USERS * PER_USER_LIMIT: the sale sells out at the end
STOCK = QUANTITY + 50
SEED = int(os.environ.get("CRASH_SEED", str(int(time.time()))))

RESTART_TIMES = []         # seconds from exec to listening, every restart of this module
PLUGS = []


def restart(h):
    """kill -9 (if running) and start again, timing the start."""
    if h.running():
        h.kill9()
    t0 = time.monotonic()
    h.start()
    RESTART_TIMES.append(time.monotonic() - t0)
    return h


class Attempt:
    """One buy a client wants to make: its key survives the kills."""
    __slots__ = ("user", "key", "order_id", "status", "code")

    def __init__(self, user, key):
        self.user, self.key = user, key
        self.order_id = self.status = self.code = None


def buy_once(conn, t, sale_id, tokens, a):
    headers = {"Authorization": "Bearer " + tokens[a.user], "Content-Type": "application/json",
               "Idempotency-Key": a.key}
    conn.request("POST", "/v1/%s/flash-sales/%d/buy" % (t["id"], sale_id), body=b"{}",
                 headers=headers)
    r = conn.getresponse()
    body = json.loads(r.read())
    a.status = r.status
    if r.status in (200, 201):
        a.order_id = body["id"]
        assert body["user"] == a.user, (a.user, body)
    else:
        a.code = body["error"]["code"]


def client(port, t, sale_id, tokens, waiting, retry, done, errors):
    """Sends attempts until the queue is empty or the host dies under it; an
    attempt whose answer was lost goes back for the next round."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        while True:
            try:
                a = waiting.get_nowait()
            except queue.Empty:
                return
            try:
                buy_once(conn, t, sale_id, tokens, a)
            except (OSError, http.client.HTTPException):
                retry.put(a)        # killed mid-request: unknown outcome, ask again
                return
            if a.status >= 500:
                errors.append((a.user, a.status, a.code))
            done.append(a)
    finally:
        conn.close()


def drain(q):
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out


def test_kills_during_a_flash_sale_lose_no_acknowledged_order_and_oversell_nothing():
    rng = random.Random(SEED)
    t = shop("crash")
    h = Host(tenants=[t], synchronous="full", name="crash").start()
    sku = "crash-sku"
    add_sku(h, t, sku, STOCK)
    sale = new_sale(h, t, sku, quantity=QUANTITY, per_user_limit=PER_USER_LIMIT,
                    per_order_limit=1)
    users = ["crash-u%04d" % i for i in range(USERS)]
    tokens = {u: token(t, u) for u in users}
    attempts = [Attempt(u, "%s-k%d" % (u, k)) for k in range(ATTEMPTS_PER_USER) for u in users]
    rng.shuffle(attempts)
    pending = attempts
    done, errors, rounds = [], [], []
    for r in range(ROUNDS + 1):
        waiting, retry = queue.Queue(), queue.Queue()
        for a in pending:
            waiting.put(a)
        threads = [threading.Thread(target=client, args=(h.port, t, sale["id"], tokens, waiting,
                                                         retry, done, errors))
                   for _ in range(CLIENTS)]
        for th in threads:
            th.start()
        if r < ROUNDS:           # the last round runs to the end
            # killed after a random number of answers: every round is under load
            kill_after = len(done) + rng.randint(10, 2 * len(attempts) // (3 * ROUNDS))
            while len(done) < kill_after and any(th.is_alive() for th in threads):
                time.sleep(0.001)
            h.kill9()
        for th in threads:
            th.join(120)
        assert not any(th.is_alive() for th in threads), "a client is stuck"
        pending = drain(retry) + drain(waiting)
        restart(h)
        acked = [a for a in done if a.order_id is not None]
        present = {o["id"]: o for o in orders_of_sale(h, t, sale["id"])}
        lost = [a for a in acked if a.order_id not in present]
        rounds.append((r + 1, len(acked), len(present), len(lost), len(pending),
                       RESTART_TIMES[-1]))
        assert not lost, ("acknowledged orders lost in the kill", lost[:5])
        if not pending:
            break
    assert not errors, errors[:5]
    assert not pending, "%d attempts never got an answer" % len(pending)

    print("round  acknowledged  present  lost  unanswered  restart_s")
    for row in rounds:
        print("%5d  %12d  %7d  %4d  %10d  %9.3f" % row)

    orders = orders_of_sale(h, t, sale["id"])
    acked = [a for a in done if a.order_id is not None]
    by_id = {o["id"]: o for o in orders}
    # every acknowledged order is there, for its user; a key never made two orders
    for a in acked:
        assert by_id[a.order_id]["user"] == a.user, (a.user, by_id[a.order_id])
    keys_of = Counter(a.order_id for a in acked)
    assert all(n == 1 for n in keys_of.values()), [k for k, n in keys_of.items() if n > 1][:5]
    # every lost answer was asked again with its key, so every order was acknowledged
    assert set(by_id) == set(keys_of), ("orders without an acknowledgement",
                                        sorted(set(by_id) - set(keys_of))[:5])
    per_user = Counter(o["user"] for o in orders)
    assert max(per_user.values()) <= PER_USER_LIMIT, per_user.most_common(3)
    final = check_accounting(h, t, sale["id"], sku, STOCK)
    assert final["sold"] == len(orders) and final["remaining"] == QUANTITY - len(orders), final
    # the sale sold out, and only refusals the rules allow were given
    refusals = Counter(a.code for a in done if a.order_id is None)
    assert set(refusals) <= {"sold_out", "limit_reached"}, refusals
    assert final["remaining"] == 0, final
    h.stop()


# ---- 2. a kill during a hot reload

BULK = 200000

def test_a_kill_during_a_reload_leaves_every_migration_applied_once():
    rng = random.Random(SEED + 1)
    plug = Plug()
    PLUGS.append(plug)
    t = rl_tenant()
    h = rl_host(plug, [t], "crash-reload").start()
    _, base = tables(h)
    # each version's migration writes BULK rows, so a reload takes long enough to be hit
    migrations = ['"CREATE TABLE rlver_ledger (version INTEGER, n INTEGER, PRIMARY KEY (version, n))"']

    def write(version):
        migrations.append(
            '"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %d) '
            'INSERT INTO rlver_ledger (version, n) SELECT %d, x FROM c"' % (BULK, version))
        plug.write(version=version, migrations=list(migrations))

    write(2)
    t0 = time.monotonic()
    assert reload(h, t)[0] == 200
    took = time.monotonic() - t0       # how long one such reload runs, unhurt
    answered = []
    for version in range(3, 8):
        write(version)
        th = threading.Thread(target=lambda: answered.append(_try_reload(h, t)))
        th.start()
        time.sleep(rng.uniform(0.1, 0.9) * took)
        h.kill9()
        th.join(30)
        restart(h)
        # whether or not the reload finished, the restart loads the files on disk
        assert version_of(h) == version, (version, answered)
        _, applied = tables(h)
        assert applied == base + len(migrations), (applied, base, len(migrations))
        assert _ledger(h) == [(v, BULK) for v in range(2, version + 1)], (version, _ledger(h))
    interrupted = sum(a != 200 for a in answered)
    print("reload: %d of 5 reloads killed before they answered (one takes %.0f ms)" % (
        interrupted, took * 1000))
    assert interrupted >= 1, "no kill landed inside a reload"
    h.stop()


def _try_reload(h, t):
    try:
        return reload(h, t)[0]
    except (OSError, http.client.HTTPException):
        return None


def _ledger(h):
    return read_db(h, "t1", "SELECT version, count(*) FROM rlver_ledger GROUP BY version "
                   "ORDER BY version")


# ---- 3. a kill during a burst of due jobs

BURST = 1000


def test_a_kill_during_a_burst_of_timeouts_cancels_each_order_once():
    rng = random.Random(SEED + 2)
    t = shop("burst")
    t["plugins"]["orders"]["max_unpaid_orders"] = 1
    h = Host(tenants=[t], synchronous="full", name="crash-burst").start()
    sku = "burst-sku"
    add_sku(h, t, sku, BURST + 20)
    sale = new_sale(h, t, sku, quantity=BURST, per_user_limit=1, per_order_limit=1,
                    unpaid_timeout_seconds=300)
    buyers = [threading.Thread(target=lambda k=k: [buy_ok(h, t, sale["id"], "burst-u%04d" % i)
                                                   for i in range(k, BURST, 8)])
              for k in range(8)]
    for th in buyers:
        th.start()
    for th in buyers:
        th.join(120)
    assert admin_sale(h, t, sale["id"])["remaining"] == 0
    th = threading.Thread(target=lambda: _try_advance(h, t, 301))
    th.start()
    # killed once a random share of the burst has committed (jobs commit in batches)
    kill_at = rng.randint(1, BURST // 2)
    while _cancelled(h, t) < kill_at and th.is_alive():
        time.sleep(0.0005)
    h.kill9()
    th.join(60)
    restart(h)
    cancelled_before = _cancelled(h, t)
    assert cancelled_before < BURST, "the kill came after the burst: nothing was interrupted"
    check_accounting(h, t, sale["id"], sku, BURST + 20)
    # the rest of the burst: the clock is moved past every deadline again
    advance(h, t, seconds=301)
    orders = orders_of_sale(h, t, sale["id"])
    print("burst: %d of %d orders cancelled before the kill landed" % (cancelled_before, BURST))
    assert len(orders) == BURST
    assert all(o["status"] == "cancelled" and o["cancel_reason"] == "timeout" for o in orders), \
        Counter(o["status"] for o in orders)
    final = check_accounting(h, t, sale["id"], sku, BURST + 20)
    assert final["remaining"] == BURST and sku_stock(h, t, sku) == BURST + 20, final
    items, _ = all_orders(h, t)
    assert len(items) == BURST
    h.stop()


def _cancelled(h, t):
    return read_db(h, t["id"], "SELECT count(*) FROM orders_orders WHERE status = 'cancelled'")[0][0]


def _try_advance(h, t, seconds):
    try:
        h.admin("POST", "/clock/advance", t, {"seconds": seconds})
    except (OSError, http.client.HTTPException):
        pass


def teardown():
    if RESTART_TIMES:
        print("restart: %d restarts, median %.3f s, max %.3f s" % (
            len(RESTART_TIMES), statistics.median(RESTART_TIMES), max(RESTART_TIMES)))
    print("seed %d (CRASH_SEED reruns it)" % SEED)
    for p in PLUGS:
        shutil.rmtree(p.root, ignore_errors=True)


if __name__ == "__main__":
    run(globals())
