"""
test_demo.py - the README's tour, run literally against the demo brand: the
host serves scripts/demo/tidepool.conf.lua, tools/demo_seed.sh seeds it as
tools/demo.sh does, and the shell block under "A five-minute tour" in
README.md runs in bash (its host and its `./build/tidepool` pointed at this
test's). Then the state the tour describes is checked through the API: a flash
sale order paid and refunded, a group formed with its orders released, a
bargain at its floor bought at the floor price with a replay that matches, a
sign-in and an order paid partly with points, a pickup redeemed by the store's
clerk, an express order shipped in two parcels with one unit returned and
refunded once, and a commission earned, settled
on the test clock and partly withdrawn (approved, paid out by a simulated
transfer the member confirmed), and a presale's deposit and balance paid on the
test clock while another buyer's deposit was forfeited when her balance never came.
"""
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, SRC, DemoHost, run, wait_until  # noqa: E402

KEY = "demo-only-leaf-admin-key"


def tour_block():
    with open(os.path.join(SRC, "README.md")) as f:
        text = f.read()
    section = text.split("## A five-minute tour", 1)[1]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


def test_the_readme_tour_runs_as_written_on_the_demo_brand():
    demo = DemoHost()
    try:
        subprocess.run(["bash", os.path.join(SRC, "tools/demo_seed.sh"), demo.base, KEY],
                       check=True, timeout=120)
        # the console's demo sign-in, as tools/demo.sh prints it, works
        with open(os.path.join(SRC, "tools/demo.sh")) as f:
            printed = f.read()
        assert "/console/?tenant=leaf" in printed and "demo-owner / demo-only-console-pw" in printed
        for user, role in (("demo-owner", "owner"), ("demo-store", "store_manager")):
            req = urllib.request.Request(demo.base + "/console/api/leaf/session", method="POST",
                                         data=json.dumps({"user": user, "password": "demo-only-console-pw"}).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as r:
                assert json.loads(r.read())["role"] == role
        script = tour_block()
        assert "B=localhost:8080" in script and "./build/tidepool" in script, script[:300]
        script = script.replace("B=localhost:8080", "B=127.0.0.1:%d" % demo.port)
        script = script.replace("./build/tidepool", BIN)
        out = subprocess.run(["bash", "-c", script], cwd=SRC, capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        answers = out.stdout
        assert '"code":"internal' not in answers, answers[-2000:]

        # the flash sale order: bought once, paid, refunded by the operator
        o = demo.get("/admin/leaf/orders/1", admin=True)
        assert o["campaign"]["plugin"] == "flash_sale" and o["total_fen"] == 990, o
        wait_until(lambda: demo.get("/admin/leaf/orders/1", admin=True)["status"] == "refunded",
                   timeout=20, what="the refund job")
        # the group: three paid members, formed, their orders no longer held
        group = demo.get("/v1/leaf/group-buys/1/groups/1")
        assert group["state"] == "formed" and group["paid"] == 3, group
        for oid, fen in ((3, 5900), (4, 6900), (5, 6900)):
            o = demo.get("/admin/leaf/orders/%d" % oid, admin=True)
            assert o["status"] == "paid" and not o["held"] and o["total_fen"] == fen, o
        # the bargain: five cuts to exactly the floor, bought at the floor, replayable
        b = demo.get("/v1/leaf/bargains/1")
        assert b["price_fen"] == 990 and b["cuts_left"] == 0, b
        assert sum(h["cut_fen"] for h in b["helps"]) == 15900 - 990, b["helps"]
        assert '"code":"floor_reached"' in answers
        assert demo.get("/admin/leaf/orders/6", admin=True)["total_fen"] == 990
        assert demo.get("/admin/leaf/bargains/1/replay", admin=True)["match"] is True
        # the customer pool: a new member from a group chat, masked, with her paid order
        assert '"id":"m7"' in answers and '"phone":"138****1234"' in answers, answers[-3000:]
        assert "13800001234" not in answers
        regulars = demo.get("/admin/leaf/members/segments/regulars/members", admin=True)
        assert [m["id"] for m in regulars["items"]] == ["m1", "m2", "m3"], regulars
        assert re.search(r'"count":1,"sample":\["m7"\]|"sample":\["m7"\],"count":1', answers), answers[-3000:]
        drops = demo.get("/admin/leaf/coupons/drops?template_id=1", admin=True)["items"]
        wait_until(lambda: demo.get("/admin/leaf/coupons/drops/%d" % drops[0]["id"], admin=True)["state"]
                   == "done", timeout=20, what="the segment drop")
        assert demo.get("/admin/leaf/coupons/drops/%d" % drops[0]["id"], admin=True)["issued"] == 3
        m7 = demo.get("/admin/leaf/members/m7", admin=True)
        assert (m7["first_source"], m7["store"], m7["guide"]) == ("group_chat", "hz-west", "guide-mei"), m7
        wait_until(lambda: demo.get("/admin/leaf/members/m7", admin=True)["facts"]["paid_fen"] == 990 + 1990,
                   timeout=20, what="the paid orders' facts (the flash sale, then the Leaf Club)")
        # points and sign-in: u1 signed in, then paid part of order 8 with 60 points
        assert '"streak":1' in answers and '"points":5' in answers, answers[-3000:]
        o = demo.get("/admin/leaf/orders/8", admin=True)
        assert (o["points"], o["points_fen"], o["total_fen"]) == (60, 60, 2930), o
        acct = demo.get("/admin/leaf/points/accounts/u1", admin=True)
        assert acct["balance"] == 4 and acct["expiring"][0]["points"] == 4, acct
        assert '"reconciles":true' in answers, answers[-3000:]
        assert len(demo.get("/v1/leaf/points/mall/items")["items"]) == 2
        # tiers: the Leaf Club made m7 gold; her Longjing at gold's own price
        assert demo.get("/admin/leaf/tiers/members/m7", admin=True)["paid_tier"] == "gold"
        o = demo.get("/admin/leaf/orders/10", admin=True)
        assert o["user"] == "m7" and o["lines"][0]["unit_price_fen"] == 11800 and o["total_fen"] == 11800, o
        wait_until(lambda: demo.get("/admin/leaf/rfm/layers", admin=True)["run"] is not None,
                   timeout=20, what="the RFM run")
        layers = demo.get("/admin/leaf/rfm/layers", admin=True)["layers"]
        assert sum(l["members"] for l in layers) >= 4, layers   # the tour's buyers (u1-u3, m7 ...)
        # data ops: u1's visit froze on her order; the reports are not empty (README)
        o = demo.get("/admin/leaf/orders/1", admin=True)
        assert o["attribution"]["source"]["source"] == "group_chat", o["attribution"]
        assert o["attribution"]["source"]["guide"] == "guide-mei", o["attribution"]
        ov = demo.get("/admin/leaf/analytics/overview", admin=True)["total"]
        assert ov["uv"] == 7 and ov["payers"] >= 1 and ov["orders"] >= 1, ov
        funnel = demo.get("/admin/leaf/analytics/funnel", admin=True)["steps"]
        assert [s["visitors"] for s in funnel] == [7, 7, 2, 1, 1], funnel
        sources = demo.get("/admin/leaf/analytics/sources", admin=True)["items"]
        assert {r.get("key") for r in sources} >= {"group_chat", "moments", "qr_code"}, sources
        # 促销: u9's checkout (order 11) took the first 满减 tier, split over her lines as previewed
        o = demo.get("/admin/leaf/orders/11", admin=True)
        assert (o["items_fen"], o["discount_fen"], o["total_fen"]) == (31580, 3000, 28580), o
        assert [l["discount_fen"] for l in o["lines"]] == [2432, 568], o["lines"]
        # 自提: u9's order 12 handed over at hz-west by clerk Lan (the buyer herself was refused)
        o = demo.get("/admin/leaf/orders/12", admin=True)
        assert (o["user"], o["status"], o["fulfilment"]) == ("u9", "paid", "picked_up"), o
        d = demo.get("/admin/leaf/fulfilment/orders/12", admin=True)
        assert d["method"] == "pickup" and d["store"]["id"] == "hz-west", d
        # express in two parcels, then one unit returned: restocked and refunded once
        d = demo.get("/admin/leaf/fulfilment/orders/13", admin=True)
        assert [s["tracking_no"] for s in d["shipments"]] == ["SF1001", "SF1002"], d
        a = demo.get("/admin/leaf/fulfilment/aftersales/1", admin=True)
        assert (a["status"], a["refund_no"], a["restocked"], a["amount_fen"]) == ("refunded", "R13-1", True, 9900), a
        wait_until(lambda: demo.get("/admin/leaf/orders/13", admin=True)["refunded_fen"] == 9900,
                   timeout=20, what="the after-sales refund")
        o = demo.get("/admin/leaf/orders/13", admin=True)
        assert (o["status"], o["fulfilment"], len(o["refunds"])) == ("paid", "shipped", 1), o
        # the commission: earned by ann (10 %) and Mei (5 %), settled after the window
        o = demo.get("/admin/leaf-rehearsal/orders/1", admin=True)
        assert o["attribution"] == {"referrer": "ann", "referrer2": "guide-mei",
                                    "guide": "guide-mei", "store": "hz-west"}, o
        ann = demo.get("/admin/leaf-rehearsal/referral/distributors/ann", admin=True)
        assert ann["earnings"]["settled_fen"] == 1280, ann
        # withdrawn: approved, its simulated transfer (商家转账) confirmed
        assert ann["earnings"]["pending_withdrawal_fen"] == 0, ann
        assert ann["earnings"]["withdrawn_fen"] == 1000, ann
        w = demo.get("/admin/leaf-rehearsal/referral/withdrawals?user=ann", admin=True)["items"][0]
        assert (w["status"], w["transfer_state"], w["out_bill_no"]) == ("paid", "SUCCESS", "rw0000000001"), w
        mei = demo.get("/admin/leaf-rehearsal/referral/distributors/guide-mei", admin=True)
        assert mei["earnings"]["settled_fen"] == 640, mei
        perf = demo.get("/admin/leaf-rehearsal/referral/stores/hz-west/performance", admin=True)
        assert perf["sales_fen"] == 12800 and perf["commission_fen"] == 1920, perf
        # 预售 on leaf-rehearsal: u9 paid the deposit, then the balance in its window (order 2);
        # u8 never paid hers (order 3): called off at the close, the deposit kept, the unit back
        assert '"code":"balance_not_open"' in answers, answers[-3000:]
        o = demo.get("/admin/leaf-rehearsal/orders/2", admin=True)
        assert (o["user"], o["status"], o["items_fen"], o["discount_fen"], o["total_fen"], o["paid_fen"]) == \
            ("u9", "paid", 25900, 5000, 20900, 20900), o
        assert (o["deposit"]["deposit_fen"], o["deposit"]["balance_fen"]) == (5000, 15900), o
        assert o["campaign"]["plugin"] == "presale", o
        o = demo.get("/admin/leaf-rehearsal/orders/3", admin=True)
        assert (o["user"], o["status"], o["cancel_reason"], o["forfeited_fen"], o["refunds"]) == \
            ("u8", "cancelled", "balance_unpaid", 5000, []), o
        p = demo.get("/admin/leaf-rehearsal/presales/1", admin=True)
        assert (p["sold"], p["remaining"], p["state"]) == (1, 99, "ended"), p
        assert demo.get("/v1/leaf/presales")["items"][0]["state"] == "deposit_open"
    finally:
        demo.stop()


def campaign_cli(demo, mode, script):
    env = dict(os.environ, TIDEPOOL_DATA_DIR=os.path.join(demo.dir, "data"),
               TIDEPOOL_BACKUP_DIR=os.path.join(demo.dir, "backups"))
    return subprocess.run([BIN, "campaign", mode, script, "--config", "scripts/demo/tidepool.conf.lua",
                           "--tenant", "leaf"], cwd=SRC, capture_output=True, text=True, env=env,
                          timeout=60)


def test_the_demo_campaign_and_the_double11_example_are_valid():
    demo = DemoHost()
    try:
        subprocess.run(["bash", os.path.join(SRC, "tools/demo_seed.sh"), demo.base, KEY],
                       check=True, timeout=120)
        # the demo brand's Double 12, loaded by the seed's reload, in both tenants
        for tid in ("leaf", "leaf-rehearsal"):
            c = demo.get("/admin/%s/campaigns/double12" % tid, admin=True)
            assert c["title"] == "Leaf Double 12" and len(c["items"]) == 3, c
            assert [i["id"] for i in c["items"]] == ["longjing-10am", "sampler-trio", "vip-eve"], c
        out = campaign_cli(demo, "preview", "scripts/demo/campaigns/double12.lua")
        assert out.returncode == 0, out
        assert "2026-12-12 10:00  opens flash_sale 'longjing-10am': flash sale #2: 50 × tea-001 at ¥88.00" \
            in out.stdout, out.stdout
        # the commented Double 11 example checks clean against the demo brand's data
        out = campaign_cli(demo, "check", "scripts/examples/double11.lua")
        assert out.returncode == 0 and "double11.lua: ok (campaign double11" in out.stdout, out
    finally:
        demo.stop()


if __name__ == "__main__":
    run(globals())
