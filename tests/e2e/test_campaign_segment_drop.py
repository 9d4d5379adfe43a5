"""
test_campaign_segment_drop.py - a campaign's coupon drop to every member of a
segment, against the real host, killed with SIGKILL in the middle of it.

- `tidepool campaign check` names the line of a drop whose segment does not
  exist and of a segment whose rule the members plugin refuses, and the
  preview says who gets the drop.
- A campaign script declares its segment (segment "sleepers" { rule }) and a
  coupon_drop to it; at the drop's moment the coupons plugin walks the
  segment's 5,000 members 500 at a time, each slice its own transaction. The
  host is killed with SIGKILL while the drop is half done (some members have
  their coupon, others not yet), restarted, and the drop runs on: afterwards
  every member holds exactly one coupon of the drop, nobody else holds one,
  and the template's count and the drop's record agree.

DROP_MEMBERS makes the segment larger on demand.
"""
import http.client
import json
import os
import subprocess
import time

from harness import BIN, Host, api_key, read_db, run, tenant, wait_until

ADMIN_KEY = "segment-drop-admin-key-0123456789"
MEMBERS = int(os.environ.get("DROP_MEMBERS", "5000"))
TZ_OFFSET = 8 * 3600  # Asia/Shanghai
KILLS = 3             # at most, each while the drop is partly done


def local(epoch):
    """epoch as the script writes it in Asia/Shanghai, to the second."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch + TZ_OFFSET))


def write(h, name, text):
    path = os.path.join(h.dir, "campaigns", name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


def line_of(text, marker):
    hits = [i + 1 for i, line in enumerate(text.split("\n")) if marker in line]
    assert len(hits) == 1, (marker, hits)
    return hits[0]


SCRIPT = """\
-- wake the sleepers: one coupon to everyone tagged sleeping
return campaign {{
  title = "Wake the sleepers",
  starts = "{start}",
  ends = "{end}",

  segment "{segment}" {{ all = {{ {{ tag = "sleeping" }}, {{ field = "days_since_joined", op = "gte", value = 0 }} }} }},

  coupon_drop {{
    id = "wake",
    at = "{drop_at}",
    segment = "sleepers",
    coupon = {{ name = "come back: 15 off", kind = "fixed", amount_off_fen = yuan "15",
               total_quantity = {quantity}, valid_days = 14 }},
  }},
}}
"""


def script(t0, segment="sleepers", drop_at=None):
    return SCRIPT.format(start=local(t0 - 60), end=local(t0 + 3600), segment=segment,
                         drop_at=local(drop_at or t0 + 1800), quantity=MEMBERS + 1000)


class Admin:
    """One keep-alive connection for many admin requests (thousands of members)."""

    def __init__(self, h, t):
        self.h, self.t = h, t
        self.conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=60)

    def call(self, method, path, body=None):
        self.conn.request(method, "/admin/%s%s" % (self.t["id"], path),
                          body=json.dumps(body) if body is not None else None,
                          headers={"X-Api-Key": api_key(self.t), "Content-Type": "application/json"})
        r = self.conn.getresponse()
        return r.status, json.loads(r.read() or b"null")

    def close(self):
        self.conn.close()


def make_members(h, t):
    """MEMBERS members through the login backend's identify, all tagged sleeping."""
    a = Admin(h, t)
    try:
        status, body = a.call("POST", "/members/tags", {"name": "sleeping"})
        assert status == 201, (status, body)
        ids = []
        for i in range(MEMBERS):
            status, body = a.call("POST", "/members/identify",
                                  {"identities": [{"channel": "card", "id": "C-%05d" % i}]})
            assert status == 201, (status, body)
            ids.append(body["member"]["id"])
        for k in range(0, len(ids), 10000):
            status, body = a.call("POST", "/members/tags/sleeping/assign", {"members": ids[k:k + 10000]})
            assert status == 200 and body["added"] == len(ids[k:k + 10000]), (status, body)
        # one more member, not tagged: outside the segment
        status, body = a.call("POST", "/members/identify", {"identities": [{"channel": "card", "id": "C-out"}]})
        assert status == 201, (status, body)
        return ids, body["member"]["id"]
    finally:
        a.close()


def check(h, path, mode="check"):
    return subprocess.run([BIN, "campaign", mode, path, "--config", h.config_path, "--tenant", "shop"],
                          capture_output=True, text=True, timeout=120)


def drop_coupons(h):
    return read_db(h, "shop", "SELECT count(*) FROM coupons_coupons WHERE drop_id IS NOT NULL")[0][0]


def test_a_segment_drop_killed_midway_gives_every_member_exactly_one_coupon():
    t = tenant("shop", plugins={"coupons": {}, "members": {"phone_pepper": "drop-test-pepper"}})
    t["campaigns"] = ["campaigns/wake.lua"]
    h = Host(tenants=[t], extra={"admin_keys": [ADMIN_KEY]}, name="segment-drop")
    try:
        write(h, "wake.lua", "return campaign { title = 'not yet' }\n")
        h.start()  # the first script is broken: the host serves the rest
        h.wait_log(lambda e: e.get("plugin") == "campaign_wake" and e.get("msg") == "plugin not enabled",
                   what="the broken campaign refused")
        t_members = time.monotonic()
        ids, outsider = make_members(h, t)
        print("  %d members made in %.1fs" % (len(ids), time.monotonic() - t_members))

        # check and preview, on a copy of the brand's data
        now = int(time.time())
        bad = script(now, segment="sleeper")          # declares sleeper, drops to sleepers
        path = write(h, "wake.lua", bad)
        out = check(h, path)
        assert out.returncode == 1, out
        first = out.stdout.strip().split("\n")[0]
        want = "%s:%d: coupon_drop 'wake': there is no segment 'sleepers'" % (path, line_of(bad, 'segment = "sleepers",'))
        assert first.startswith(want), (first, want)
        bad = script(now).replace('op = "gte"', 'op = "greater"')
        path = write(h, "wake.lua", bad)
        out = check(h, path)
        first = out.stdout.strip().split("\n")[0]
        want = "%s:%d: segment 'sleepers': " % (path, line_of(bad, 'segment "sleepers" {'))
        assert out.returncode == 1 and first.startswith(want) and "invalid_field" in first, (first, want)
        good = script(now)
        path = write(h, "wake.lua", good)
        out = check(h, path, mode="preview")
        assert out.returncode == 0, out
        assert ("coupon drop 'wake': every member of segment 'sleepers' gets one of coupon template #1 "
                "\"come back: 15 off\": %d coupons" % (MEMBERS + 1000)) in out.stdout, out.stdout

        # the campaign for real: its drop a few seconds from now
        drop_at = int(time.time()) + 4
        path = write(h, "wake.lua", script(drop_at, drop_at=drop_at))
        status, _, body = h.post("/admin/reload", {"tenant": "shop", "plugin": "campaign_wake"},
                                 headers={"X-Api-Key": ADMIN_KEY})
        assert status == 200 and not body["failed"], body
        status, _, seg = h.admin("GET", "/members/segments/sleepers", t)
        assert status == 200 and seg["count"] == MEMBERS and seg["description"] == "campaign wake", seg

        # kill -9 while the drop is part way, up to KILLS times
        kills = []
        for _ in range(KILLS):
            last = kills[-1] if kills else 0          # after a restart: once it has moved on
            wait_until(lambda: drop_coupons(h) > last, timeout=60, interval=0.002,
                       what="the drop to go on from %d" % last)
            n = drop_coupons(h)
            if n >= MEMBERS:
                break
            h.kill9()
            kills.append(n)
            after_kill = drop_coupons(h)
            assert after_kill >= n, (n, after_kill)   # what was committed stays
            h.start()
        print("  killed with SIGKILL at %s of %d coupons given" % (kills, MEMBERS))
        assert kills and 0 < kills[0] < MEMBERS, kills

        def done():
            status, _, d = h.admin("GET", "/coupons/drops/1", t)
            return status == 200 and d["state"] != "running"
        wait_until(done, timeout=120, interval=0.1, what="the drop to finish")
        status, _, d = h.admin("GET", "/coupons/drops/1", t)
        assert d["state"] == "done" and d["issued"] == MEMBERS and d["reached"] == MEMBERS, d
        assert d["members_at_start"] == MEMBERS and d["ref"] == "wake/wake" and "stop" not in d, d

        # every member exactly one, nobody else any
        per_user = dict(read_db(h, "shop", """SELECT user, count(*) FROM coupons_coupons
            WHERE template_id = 1 GROUP BY user"""))
        assert len(per_user) == MEMBERS and set(per_user) == set(ids), (len(per_user), MEMBERS)
        assert set(per_user.values()) == {1}, [u for u, n in per_user.items() if n != 1][:10]
        assert outsider not in per_user
        rows = read_db(h, "shop", """SELECT count(*), count(DISTINCT user), min(issued_for), max(issued_for)
            FROM coupons_coupons WHERE drop_id = 1""")
        assert rows == [(MEMBERS, MEMBERS, "wake/wake", "wake/wake")], rows
        issued = read_db(h, "shop", "SELECT issued FROM coupons_templates WHERE id = 1")[0][0]
        assert issued == MEMBERS, issued
        # a member sees it; the campaign's step names the drop
        status, _, mine = h.get("/v1/shop/coupons/mine", headers=h.bearer("shop", ids[-1]))
        assert status == 200 and [c["template_id"] for c in mine["items"]] == [1], mine
        status, _, v = h.admin("GET", "/campaigns/wake", t)
        step = {s["key"]: s for s in v["steps"]}["drop:wake"]
        assert step["outcome"].startswith("segment drop #1 started: every member of 'sleepers' (%d" % MEMBERS), step
        h.stop()
    finally:
        h.cleanup()


if __name__ == "__main__":
    run(globals())
