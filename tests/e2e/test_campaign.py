"""
test_campaign.py - campaign scripts (issue 6, item 5) against the real host.

- Every class of mistake an operator can make is reported by
  `tidepool campaign check` as FILE:LINE: message, the line being the one the
  mistake is on (found in the script's text by the test, not hard-coded).
- A campaign starts and ends by the test clock, across a restart: its flash
  sale and coupon template exist from the load, its coupon drop and hooks run
  at their times and only while it runs.
- An edited campaign reloads into the same activities; a removed item is
  withdrawn; a broken edit is refused with its line and the old version serves.
- The preview prints the timeline in the brand's time zone.
"""
import os
import subprocess
import time

from harness import (BIN, Host, add_sku, admin_ok, advance, api_key, clock, error_code,
                     manual_tenant, run, tenant)

ADMIN_KEY = "campaign-test-admin-key-0123456789"
PLUGINS = {"catalog": {}, "orders": {}, "payments": {"secret": "pay-secret-0123456789abcdef"},
           "coupons": {}, "flash_sale": {}}
TZ_OFFSET = 8 * 3600  # Asia/Shanghai


def local(epoch):
    """epoch as the script writes it in Asia/Shanghai."""
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(epoch + TZ_OFFSET))


def hour_floor(epoch):
    return epoch - epoch % 3600


def write(h, name, text):
    path = os.path.join(h.dir, "campaigns", name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


def check(h, path, mode="check", tenant_id=None):
    args = [BIN, "campaign", mode, path, "--config", h.config_path]
    if tenant_id:
        args += ["--tenant", tenant_id]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def line_of(text, marker):
    """The 1-based line of the script that holds marker (it must be there once)."""
    hits = [i + 1 for i, line in enumerate(text.split("\n")) if marker in line]
    assert len(hits) == 1, (marker, hits)
    return hits[0]


def reload(h, tid, plugin):
    return h.post("/admin/reload", {"tenant": tid, "plugin": plugin}, headers={"X-Api-Key": ADMIN_KEY})


def campaign_host(name, campaigns=(), plugins=None):
    t = manual_tenant("shop", plugins or PLUGINS)
    t["campaigns"] = list(campaigns)
    return t, Host(tenants=[t], extra={"admin_keys": [ADMIN_KEY]}, name=name)


# A valid campaign around the manual clock's now; {t0} is the start.
GOOD = """\
-- Weekend tea festival
return campaign {{
  title = "Weekend tea festival",
  starts = "{start}",
  ends = "{end}",

  flash_sale {{
    id = "morning",
    sku = "tea-001",
    price_fen = yuan "9.90",
    quantity = 5,
    per_user_limit = 1,
    starts = "{sale_start}",
    ends = "{sale_end}",
  }},

  coupon_drop {{
    id = "vip",
    at = "{drop_at}",
    users = {{ "vip-1", "vip-2" }},
    coupon = {{ name = "20 off 199", kind = "threshold", amount_off_fen = yuan "20",
               min_spend_fen = yuan "199", total_quantity = 100, valid_days = 7 }},
  }},

  on = {{
    -- every buyer of the festival gets one of the VIP coupons too
    ["order.created"] = function(data, c)
      tp.call("coupons", "issue", c.items.vip.activity_id, {{ data.order.user }}, "campaign:hook")
    end,
  }},
}}
"""


def good_script(t0, **over):
    times = {"start": local(t0), "end": local(t0 + 6 * 3600), "sale_start": local(t0 + 3600),
             "sale_end": local(t0 + 2 * 3600), "drop_at": local(t0 + 1800)}
    times.update(over)
    return GOOD.format(**times)


def started_shop(name, campaigns=()):
    t, h = campaign_host(name, campaigns)
    h.start()
    add_sku(h, t, "tea-001", 50, price_fen=3900)
    add_sku(h, t, "tea-002", 50, price_fen=5900)
    return t, h


def coupons_of(h, t, user):
    status, _, body = h.get("/v1/%s/coupons/mine" % t["id"], headers=h.bearer(t["id"], user))
    assert status == 200, (status, body)
    return body["items"]


# ---- every mistake, with its line

def mistakes(t0):
    """(name, script, marker of the line the error must name, words the message must hold)."""
    good = good_script(t0)
    out = [
        ("syntax", good.replace('price_fen = yuan "9.90",', 'price_fen = yuan "9.90"'),
         "quantity = 5,", ["'}' expected"]),
        ("unknown_mechanic", good.replace("flash_sale {", "flashsale {"),
         "flashsale {", ["unknown name 'flashsale'", "did you mean 'flash_sale'"]),
        ("unknown_setting", good.replace("per_user_limit = 1,", "per_user = 1,"),
         "per_user = 1,", ["flash_sale 'morning'", "per_user", "did you mean 'per_user_limit'"]),
        ("impossible_date", good.replace('starts = "%s",' % local(t0 + 3600), 'starts = "2026-02-30 10:00",'),
         '"2026-02-30 10:00"', ["is not a date and time that exists"]),
        ("malformed_time", good.replace('at = "%s",' % local(t0 + 1800), 'at = "tomorrow 10am",'),
         "tomorrow 10am", ["coupon_drop 'vip': at", "YYYY-MM-DD HH:MM"]),
        ("ends_before_starts", good_script(t0, end=local(t0 - 3600)),
         'ends = "%s",' % local(t0 - 3600), ["campaign: ends must be after starts"]),
        ("item_outside_campaign", good_script(t0, sale_end=local(t0 + 7 * 3600)),
         'ends = "%s",' % local(t0 + 7 * 3600), ["flash_sale 'morning'", "outside the campaign's"]),
        ("drop_outside_campaign", good_script(t0, drop_at=local(t0 + 9 * 3600)),
         'at = "%s",' % local(t0 + 9 * 3600), ["coupon_drop 'vip'", "outside the campaign's"]),
        ("bad_money", good.replace('yuan "9.90"', 'yuan "9.999"'),
         'yuan "9.999"', ["yuan \"9.999\"", "at most 2 decimals"]),
        ("unknown_sku", good.replace('"tea-001"', '"tea-404"'),
         '"tea-404"', ["no sku tea-404 in the catalog", "sku_not_found"]),
        ("price_above_list", good.replace('yuan "9.90"', 'yuan "45"'),
         'yuan "45"', ["price_fen", "3900"]),
        ("more_than_stock", good.replace("quantity = 5,", "quantity = 500,"),
         "quantity = 500,", ["insufficient_stock"]),
        ("plugin_not_enabled", good.replace("flash_sale {", "bargain {").replace(
            'id = "morning",', 'id = "haggle",'),
         "bargain {", ["the plugin 'bargain' is not enabled for this tenant"]),
        ("coupon_setting", good.replace('kind = "threshold"', 'kind = "thresold"'),
         "thresold", ["coupon_drop 'vip'", "kind"]),
        ("bad_user", good.replace('"vip-2"', '"vip 2"'),
         '"vip 2"', ["users[2] is not a user id"]),
        ("user_twice", good.replace('"vip-2"', '"vip-1"'),
         'users = { "vip-1", "vip-1" }', ["user vip-1 is listed twice"]),
        # one limit: what coupons' issue takes at once (tp.check.MAX_ISSUE_USERS)
        ("too_many_users", good.replace('users = { "vip-1", "vip-2" }',
                                        "users = { %s }" % ", ".join('"u%d"' % i for i in range(1001))),
         "users = {", ["users must be a list of 1-1000 user ids"]),
        ("public_drop", good.replace('total_quantity = 100,', 'total_quantity = 100, audience = "public",'),
         'audience = "public"', ["a drop's coupon is issue-only"]),
        # a drop goes to a list of users or to every member of a segment, never both or neither
        ("drop_users_and_segment", good.replace('users = { "vip-1", "vip-2" },',
                                                'users = { "vip-1", "vip-2" },\n    segment = "vips",'),
         'segment = "vips",', ["coupon_drop 'vip': give users or segment, not both"]),
        ("drop_to_nobody", good.replace('    users = { "vip-1", "vip-2" },\n', ''),
         "coupon_drop {", ["coupon_drop 'vip': say who gets it", 'segment = "name"']),
        ("drop_segment_without_members", good.replace('users = { "vip-1", "vip-2" },', 'segment = "vips",'),
         'segment = "vips",', ["coupon_drop 'vip': a drop to a segment needs the members plugin"]),
        ("event_typo", good.replace('["order.created"]', '["order.creatd"]'),
         "order.creatd", ["no plugin emits 'order.creatd'", "did you mean 'order.created'"]),
        ("hook_not_function", good.replace('["order.created"] = function(data, c)', '["order.created"] = "issue",\n    x = function(data, c)'),
         '["order.created"] = "issue"', ["must be a function"]),
        ("campaign_key_typo", good.replace('  starts = "%s",' % local(t0), '  strats = "%s",' % local(t0)),
         "strats =", ["campaign: unknown key 'strats'", "did you mean 'starts'"]),
        ("duplicate_id", good.replace('id = "vip",', 'id = "morning",'),
         "coupon_drop {", ["a second item with id 'morning'"]),
        ("window_given_raw", good.replace("per_user_limit = 1,", "per_user_limit = 1,\n    starts_at = 0,"),
         "starts_at = 0,", ["write the window as starts/ends in local time"]),
        ("global_assignment", good.replace("-- Weekend tea festival", "festival = true"),
         "festival = true", ["cannot set the global 'festival'"]),
        ("no_return", good.replace("return campaign {", "local c = campaign {"),
         None, ["must end with: return campaign { ... }"]),
        ("not_a_mechanic", good.replace('  coupon_drop {', '  "oops",\n  coupon_drop {'),
         None, ["entry 2 of the campaign is not a mechanic"]),
    ]
    return out


def test_every_mistake_is_named_by_file_and_line():
    """Each mistake's first line is the script's whole path, its line and the message; the
    script lies deep enough that Lua's own messages would shorten the path to "...<its end>"
    (a chunk name is at most 60 bytes there)."""
    t, h = started_shop("mistakes")
    try:
        t0 = hour_floor(clock(h, t)["now"]) + 86400
        deep = "double-eleven/presales-and-flash-sales-for-the-autumn-teas/festival.lua"
        ok_path = write(h, deep, good_script(t0))
        assert len(ok_path) > 60, ok_path
        out = check(h, ok_path)
        assert out.returncode == 0 and "festival.lua: ok (campaign festival" in out.stdout, out
        for name, text, marker, words in mistakes(t0):
            path = write(h, deep, text)
            out = check(h, path)
            assert out.returncode == 1, (name, out)
            first = out.stdout.strip().split("\n")[0]
            prefix = "%s:%s: " % (path, line_of(text, marker) if marker else "")
            if marker:
                assert first.startswith(prefix), (name, first, prefix)
            else:
                assert first.startswith(path + ":"), (name, first)
            for w in words:
                assert w in first, (name, w, first)
            assert "stack traceback" not in out.stdout, (name, out.stdout)
        # the live database was only read: no campaign tables, no sale
        status, _, body = h.admin("GET", "/flash-sales", t)
        assert status == 200 and body["items"] == [], body
        # usage errors are not problems of the script
        assert check(h, os.path.join(h.dir, "campaigns", "missing.lua")).returncode == 2
        out = subprocess.run([BIN, "campaign", "check", ok_path], capture_output=True, text=True)
        assert out.returncode == 2 and "--config" in out.stderr, out
        out = check(h, ok_path, tenant_id="nobody")
        assert out.returncode == 2 and "no tenant 'nobody'" in out.stderr, out
        bad_name = write(h, "Double-11.lua", good_script(t0))
        out = check(h, bad_name)
        assert out.returncode == 1 and "base name must be" in out.stdout, out
    finally:
        h.stop()


# Five mistakes of both kinds in one script: the script's own (a campaign key,
# a user id, an event name) and the mechanics' refusals (an unknown SKU, more
# units than the catalog has), each of another item.
FIVE = """\
return campaign {{
  title = "Five mistakes",
  descripton = "a typo",
  starts = "{start}",
  ends = "{end}",

  flash_sale {{
    id = "morning",
    sku = "tea-404",
    price_fen = yuan "9.90",
    quantity = 5,
  }},

  flash_sale {{
    id = "noon",
    sku = "tea-002",
    price_fen = yuan "19.90",
    quantity = 500,
  }},

  coupon_drop {{
    id = "vip",
    at = "{start}",
    users = {{ "vip-1", "vip 2" }},
    coupon = {{ name = "20 off", kind = "threshold", amount_off_fen = yuan "20",
               min_spend_fen = yuan "199", total_quantity = 100, valid_days = 7 }},
  }},

  on = {{
    ["order.creatd"] = function(data, c) end,
  }},
}}
"""


def test_five_mistakes_give_five_reports_in_one_run():
    """Issue 18: campaign check stopped at the first mistake (five took five runs)."""
    t, h = started_shop("five")
    try:
        t0 = hour_floor(clock(h, t)["now"]) + 86400
        text = FIVE.format(start=local(t0), end=local(t0 + 6 * 3600))
        path = write(h, "five.lua", text)
        out = check(h, path)
        assert out.returncode == 1, out
        lines = out.stdout.rstrip("\n").split("\n")
        expected = [
            (line_of(text, "descripton ="), ["campaign: unknown key 'descripton'", "did you mean 'description'"]),
            (line_of(text, '"tea-404"'), ["flash_sale 'morning'", "no sku tea-404", "sku_not_found"]),
            (line_of(text, "quantity = 500,"), ["flash_sale 'noon'", "insufficient_stock"]),
            (line_of(text, '"vip 2"'), ["coupon_drop 'vip'", "users[2] is not a user id"]),
            (line_of(text, "order.creatd"), ["no plugin emits 'order.creatd'", "did you mean 'order.created'"]),
        ]
        assert len(lines) == len(expected), lines
        for got, (line, words) in zip(lines, expected):
            assert got.startswith("%s:%d: " % (path, line)), (got, line)
            for w in words:
                assert w in got, (w, got)
        # nothing of it reached the live database
        status, _, body = h.admin("GET", "/flash-sales", t)
        assert status == 200 and body["items"] == [], body
        # a script that runs on past its mistakes: a global, an unknown name
        # and bad money, each reported, and what follows them checked too
        text2 = text.replace('flash_sale {{\n    id = "noon"'.replace("{{", "{"), 'flashsale {\n    id = "noon"').replace(
            'yuan "9.90"', 'yuan "9.999"').replace("return campaign {", "festival = true\nreturn campaign {")
        path = write(h, "five.lua", text2)
        out = check(h, path)
        lines = out.stdout.rstrip("\n").split("\n")
        assert out.returncode == 1 and len(lines) == 6, lines
        assert lines[0].startswith("%s:1: " % path) and "cannot set the global 'festival'" in lines[0], lines
        assert "unknown name 'flashsale'" in out.stdout and 'yuan "9.999"' in out.stdout, lines
        assert "insufficient_stock" not in out.stdout  # the item with the unknown name is not handed over
        assert "no sku tea-404" not in out.stdout      # nor the one with the bad price
    finally:
        h.stop()


OTHER = """\
return campaign {{
  title = "Another campaign",
  starts = "{start}",
  ends = "{end}",

  flash_sale {{
    id = "noon",
    sku = "tea-001",
    price_fen = yuan "19.90",
    quantity = 5,
  }},
}}
"""

BRUNCH = """\
  flash_sale {
    id = "brunch",
    sku = "tea-001",
    price_fen = yuan "12",
    quantity = 5,
    starts = "%s",
    ends = "%s",
  },

  coupon_drop {"""


def test_an_overlap_names_the_other_item_and_its_line():
    """Issue 18: an overlap said "flash sale 1", an id of the check's scratch copy."""
    t, h = campaign_host("overlap", campaigns=["campaigns/early.lua"])
    try:
        write(h, "early.lua", "return campaign { title = 'not yet' }\n")
        h.start()
        add_sku(h, t, "tea-001", 50, price_fen=3900)
        t0 = hour_floor(clock(h, t)["now"]) + 86400
        # two sales of one SKU at once in the same script
        text = good_script(t0).replace("  coupon_drop {", BRUNCH % (local(t0 + 5400), local(t0 + 3 * 3600)))
        path = write(h, "festival.lua", text)
        out = check(h, path)
        assert out.returncode == 1, out
        want = ("%s:%d: flash_sale 'brunch': sku tea-001 is already in flash_sale 'morning' (line %d) "
                "at that time (sale_overlap)") % (path, line_of(text, 'starts = "%s",' % local(t0 + 5400)),
                                                  line_of(text, 'id = "morning",') - 1)
        assert out.stdout.strip() == want, (out.stdout, want)
        # a sale of another campaign file, which the check's copy made: named
        # by that campaign's item and line, never by the copy's sale id
        other_text = OTHER.format(start=local(t0), end=local(t0 + 6 * 3600))
        # (campaign_early loads before campaign_festival, as it would on the host)
        other = write(h, "early.lua", other_text)
        path = write(h, "festival.lua", good_script(t0))
        out = check(h, path)
        assert out.returncode == 1, out
        want = ("%s:%d: flash_sale 'morning': sku tea-001 is already in item 'noon' of campaign early (%s:%d) "
                "at that time (sale_overlap)") % (path, line_of(good_script(t0), 'starts = "%s",' % local(t0 + 3600)),
                                                 other, line_of(other_text, "flash_sale {"))
        assert out.stdout.strip() == want, (out.stdout, want)
        status, _, body = h.admin("GET", "/flash-sales", t)
        assert status == 200 and body["items"] == [], body  # the live database has neither sale
    finally:
        h.stop()


def test_preview_prints_what_happens_when():
    t, h = started_shop("preview")
    try:
        t0 = hour_floor(clock(h, t)["now"]) + 86400
        path = write(h, "festival.lua", good_script(t0))
        out = check(h, path, mode="preview")
        assert out.returncode == 0, out
        lines = out.stdout.rstrip("\n").split("\n")
        assert lines[0].startswith(path + ": ok (campaign festival, version script-"), lines
        assert lines[1:] == [
            "  %s  campaign starts: Weekend tea festival; its hooks on order.created run until it ends" % local(t0),
            "  %s  coupon drop 'vip': 2 users each get one of coupon template #1 \"20 off 199\": 100 coupons"
            % local(t0 + 1800),
            "  %s  opens flash_sale 'morning': flash sale #1: 5 × tea-001 at ¥9.90, 1 per user" % local(t0 + 3600),
            "  %s  closes flash_sale 'morning'" % local(t0 + 2 * 3600),
            "  %s  campaign ends" % local(t0 + 6 * 3600),
        ], lines
    finally:
        h.stop()


# ---- a campaign on the test clock, across a restart

def view(h, t, admin=False):
    if admin:
        return admin_ok(h, "GET", "/campaigns/festival", t)
    status, _, body = h.get("/v1/%s/campaigns/festival" % t["id"])
    assert status == 200, (status, body)
    return body


def buy(h, t, sale_id, user):
    return h.post("/v1/%s/flash-sales/%d/buy" % (t["id"], sale_id), {}, headers=h.bearer(t["id"], user))


def load_campaign(h, t, text):
    write(h, "festival.lua", text)
    status, _, body = reload(h, t["id"], "campaign_festival")
    return status, body


def test_campaign_starts_and_ends_by_the_test_clock_across_a_restart():
    t, h = campaign_host("clock", campaigns=["campaigns/festival.lua"])
    t0 = None
    try:
        write(h, "festival.lua", "return campaign { title = 'not yet' }\n")
        h.start()  # the first script is broken: the host serves all the rest
        h.wait_log(lambda e: e.get("plugin") == "campaign_festival" and e.get("msg") == "plugin not enabled",
                   what="the broken campaign refused")
        add_sku(h, t, "tea-001", 50, price_fen=3900)
        # two hours on: one would put t0 - 1 behind the clock when the test
        # starts in an hour's last second (the clock keeps its milliseconds)
        t0 = hour_floor(clock(h, t)["now"]) + 2 * 3600
        status, body = load_campaign(h, t, good_script(t0))
        assert status == 200 and not body["failed"], body
        v = view(h, t)
        assert v["state"] == "scheduled" and v["starts_at"] == t0 and v["ends_at"] == t0 + 6 * 3600, v
        sale_id = next(i["activity_id"] for i in v["items"] if i["id"] == "morning")
        # the sale exists from the load, announced but not open
        status, _, sale = h.get("/v1/%s/flash-sales/%d" % (t["id"], sale_id))
        assert status == 200 and sale["starts_at"] == t0 + 3600 and sale["price_fen"] == 990, sale
        status, _, body = buy(h, t, sale_id, "early")
        assert status == 409, (status, body)

        advance(h, t, to=t0 - 1)
        assert view(h, t)["state"] == "scheduled"
        advance(h, t, to=t0)
        assert view(h, t)["state"] == "running"
        # the host goes down and comes back: the campaign is still running,
        # and its next steps are still due at their times
        h.stop()
        h.start()
        assert view(h, t)["state"] == "running"
        assert coupons_of(h, t, "vip-1") == []
        advance(h, t, to=t0 + 1800)
        for u in ("vip-1", "vip-2"):
            mine = coupons_of(h, t, u)
            assert len(mine) == 1 and mine[0]["template_id"] == 1, (u, mine)
        # the drop's coupon is for them only: nobody else sees it or can claim it
        status, _, listed = h.get("/v1/shop/coupons/claimable")
        assert status == 200 and all(c["id"] != 1 for c in listed["items"]), listed
        status, _, body = h.post("/v1/shop/coupons/templates/1/claim",
                                 headers=h.bearer("shop", "stranger"))
        assert status == 403 and body["error"]["code"] == "issue_only", (status, body)
        advance(h, t, to=t0 + 3600)
        status, _, order = buy(h, t, sale_id, "ann")
        assert status == 201, (status, order)
        advance(h, t, seconds=1)  # deliver order.created to the hook
        assert len(coupons_of(h, t, "ann")) == 1, h.tail(12)  # the hook ran: the festival is on
        steps = {s["key"]: s for s in view(h, t, admin=True)["steps"]}
        assert steps["drop:vip"]["outcome"] == "issued 2, skipped 0", steps
        h.kill9()
        h.start()
        advance(h, t, to=t0 + 6 * 3600 - 1)
        assert view(h, t)["state"] == "running"
        advance(h, t, to=t0 + 6 * 3600)
        v = view(h, t, admin=True)
        assert v["state"] == "ended", v
        assert [s["key"] for s in v["steps"]] == ["start", "drop:vip", "end"], v["steps"]
        # the hooks stop with the campaign: an order after the end earns nothing
        status, _, body = h.post("/v1/%s/orders" % t["id"], {"lines": [{"sku": "tea-001", "qty": 1}]},
                                 headers=h.bearer(t["id"], "late"))
        assert status == 201, (status, body)
        advance(h, t, seconds=1)
        assert coupons_of(h, t, "late") == []
    finally:
        h.stop()


def test_an_edited_campaign_reloads_into_the_same_activities():
    t, h = campaign_host("edit", campaigns=["campaigns/festival.lua"])
    try:
        write(h, "festival.lua", "return campaign { title = 'not yet' }\n")
        h.start()
        add_sku(h, t, "tea-001", 50, price_fen=3900)
        t0 = hour_floor(clock(h, t)["now"]) + 3600
        status, body = load_campaign(h, t, good_script(t0))
        assert status == 200 and not body["failed"], body
        first = {i["id"]: i["activity_id"] for i in view(h, t)["items"]}
        # a new price and a later start: the same sale, changed; the jobs move
        edited = good_script(t0 + 3600).replace('yuan "9.90"', 'yuan "12.50"')
        status, body = load_campaign(h, t, edited)
        assert status == 200 and not body["failed"], body
        v = view(h, t)
        assert {i["id"]: i["activity_id"] for i in v["items"]} == first, v
        assert v["starts_at"] == t0 + 3600, v
        status, _, sale = h.get("/v1/%s/flash-sales/%d" % (t["id"], first["morning"]))
        assert sale["price_fen"] == 1250 and sale["starts_at"] == t0 + 7200, sale
        advance(h, t, to=t0)
        assert view(h, t)["state"] == "scheduled"  # the start moved with the script
        # a broken edit: refused with its line, the old version keeps serving
        broken = edited.replace("quantity = 5,", "quantity = -5,")
        status, body = load_campaign(h, t, broken)
        assert status == 422 and error_code(body) == "reload_failed", (status, body)
        err = body["error"]["details"]["failed"][0]["error"]
        assert "festival.lua:%d:" % line_of(broken, "quantity = -5,") in err and "quantity" in err, err
        # refused after the sale took its new price: the whole setup is rolled back
        broken = edited.replace('yuan "12.50"', 'yuan "13"').replace('"threshold"', '"thresold"')
        status, body = load_campaign(h, t, broken)
        assert status == 422, (status, body)
        err = body["error"]["details"]["failed"][0]["error"]
        assert "festival.lua:%d:" % line_of(broken, "thresold") in err, err
        status, _, sale = h.get("/v1/%s/flash-sales/%d" % (t["id"], first["morning"]))
        assert status == 200 and sale["price_fen"] == 1250, sale
        # the flash sale leaves the script: it is withdrawn, not deleted
        without_sale = edited.replace(edited[edited.index("  flash_sale {"):edited.index("  coupon_drop {")], "")
        status, body = load_campaign(h, t, without_sale)
        assert status == 200 and not body["failed"], body
        assert [i["id"] for i in view(h, t)["items"]] == ["vip"]
        admin_items = view(h, t, admin=True)["items"]
        assert [(i["id"], i.get("withdrawn")) for i in admin_items] == [("morning", True), ("vip", None)], admin_items
        status, _, body = h.get("/v1/%s/flash-sales/%d" % (t["id"], first["morning"]))
        assert status == 404, (status, body)
        # and comes back: the same sale again
        status, body = load_campaign(h, t, edited)
        assert status == 200 and not body["failed"], body
        assert {i["id"]: i["activity_id"] for i in view(h, t)["items"]} == first
    finally:
        h.stop()


# ---- the campaign's 复盘: analytics per campaign script

TWO_SALES = """\
return campaign {{
  title = "Tea week",
  starts = "{start}",
  ends = "{end}",
  flash_sale {{ id = "morning", sku = "tea-001", price_fen = yuan "9.90", quantity = 5, per_user_limit = 1,
               starts = "{start}", ends = "{end}" }},
  flash_sale {{ id = "evening", sku = "tea-002", price_fen = yuan "19.90", quantity = 20, per_user_limit = 10,
               per_order_limit = 10,
               stacks_with_coupon = true, starts = "{start}", ends = "{end}" }},
  coupon_drop {{ id = "vip", at = "{start}", users = {{ "ann", "dan" }},
                coupon = {{ name = "20 off 199", kind = "threshold", amount_off_fen = yuan "20",
                           min_spend_fen = yuan "199", total_quantity = 100, valid_days = 7 }} }},
}}
"""


def test_analytics_sums_a_campaign_script_and_counts_its_members_once():
    """GET /analytics/campaigns?by=script: a script's activities together, a member who
    took part in two of them one participant, the orders its dropped coupons paid for at
    a plain checkout with their coupon cost, an order of its own sale with its own coupon
    once; an activity of no script is not in it."""
    t, h = campaign_host("byscript", campaigns=["campaigns/festival.lua"],
                         plugins=dict(PLUGINS, analytics={}))
    try:
        h.start()
        for sku, price in (("tea-001", 3900), ("tea-002", 5900), ("tea-003", 2900)):
            add_sku(h, t, sku, 50, price_fen=price)
        t0 = hour_floor(clock(h, t)["now"]) + 2 * 3600
        status, body = load_campaign(h, t, TWO_SALES.format(start=local(t0), end=local(t0 + 7200)))
        assert status == 200 and not body["failed"], body
        sale = {i["id"]: i["activity_id"] for i in view(h, t)["items"]}
        status, _, alone = h.admin("POST", "/flash-sales", t, {
            "sku": "tea-003", "price_fen": 1000, "quantity": 5, "per_user_limit": 1,
            "starts_at": t0, "ends_at": t0 + 7200})
        assert status == 201, alone
        advance(h, t, to=t0 + 60)
        # ann comes from a group chat first: a new member of the period
        status, _, body = h.post("/v1/shop/track", {"events": [
            {"id": "e1", "kind": "enter", "session": "s1", "scene": 1008, "at": (t0 + 60) * 1000}]},
            headers=h.bearer("shop", "ann"))
        assert status == 200, body
        coupon = {}
        for user in ("ann", "dan"):
            mine = coupons_of(h, t, user)
            assert [c["template_id"] for c in mine] == [sale["vip"]], mine
            coupon[user] = mine[0]["id"]

        def paid(status, order):
            assert status == 201, (status, order)
            status, _, body = h.admin("POST", "/payments/simulate", t, {"order_id": order["id"]})
            assert status == 200, body
            return order
        for user, sale_id in (("ann", sale["morning"]), ("bob", sale["morning"]), ("cy", alone["id"])):
            paid(*buy(h, t, sale_id, user)[::2])
        # ann spends the dropped coupon in the evening sale (it stacks): 10 x 19.90 - 20.00
        status, _, order = h.post("/v1/shop/flash-sales/%d/buy" % sale["evening"],
                                  {"qty": 10, "coupon_id": coupon["ann"]}, headers=h.bearer("shop", "ann"))
        assert paid(status, order)["total_fen"] == 10 * 1990 - 2000, order
        # dan spends his at a plain checkout: 7 x 29.00 - 20.00
        status, _, order = h.post("/v1/shop/orders", {"lines": [{"sku": "tea-003", "qty": 7}],
                                                      "coupon_id": coupon["dan"]}, headers=h.bearer("shop", "dan"))
        assert paid(status, order)["total_fen"] == 7 * 2900 - 2000, order
        advance(h, t, seconds=10)  # the order events, then the money job
        # the scheduled rollup may have folded the hours in already (the clock passed its
        # every): this run only has to leave nothing pending
        assert admin_ok(h, "POST", "/analytics/rollup", t)["more"] is False
        day = local(t0)[:10]

        def campaigns(**q):
            path = "/analytics/campaigns?from=%s&to=%s" % (day, day)
            path += "".join("&%s=%s" % kv for kv in q.items())
            status, _, body = h.admin("GET", path, t)
            assert status == 200, (path, status, body, h.tail(6))
            return body

        morning, evening = "flash_sale:%d" % sale["morning"], "flash_sale:%d" % sale["evening"]
        vip, checkout, evening_fen = "coupons:%d" % sale["vip"], 7 * 2900 - 2000, 10 * 1990 - 2000
        per = {r["campaign"]: r for r in campaigns()["items"]}
        assert set(per) == {morning, evening, "flash_sale:%d" % alone["id"], "none"}, per
        assert (per[morning]["participants"], per[evening]["participants"]) == (2, 1), per
        assert (per[evening]["gmv_fen"], per[evening]["coupon_fen"]) == (evening_fen, 2000), per[evening]
        assert (per["none"]["orders"], per["none"]["coupon_fen"]) == (1, 2000), per["none"]
        got = campaigns(by="script")
        assert got["by"] == "script" and len(got["items"]) == 1, got
        row = got["items"][0]
        assert (row["campaign"], row["title"], row["activities"]) == \
            ("festival", "Tea week", [morning, evening, vip]), row
        # ann took part in both sales and used the coupon in one: once here; dan only used it.
        # Her evening order is the sale's and used the script's coupon: counted once
        assert (row["participants"], row["new_members"]) == (3, 1), row
        assert per[morning]["new_members"] + per[evening]["new_members"] == 2, per
        for k in ("campaign_fen", "orders", "gmv_fen", "coupon_fen"):
            dans = {"orders": 1, "gmv_fen": checkout, "coupon_fen": 2000}.get(k, 0)
            assert row[k] == per[morning][k] + per[evening][k] + dans, (k, row, per)
        assert (row["orders"], row["gmv_fen"]) == (4, 990 * 2 + evening_fen + checkout), row
        assert (row["campaign_fen"], row["coupon_fen"]) == ((3900 - 990) * 2 + (5900 - 1990) * 10, 4000), row
        assert row["roi"] == row["gmv_fen"] / (row["campaign_fen"] + row["coupon_fen"]), row
        # a product filter reads the orders holding it: the morning sale's two, per activity too
        got = {r["campaign"]: r for r in campaigns(product="tea-001")["items"]}
        assert set(got) == {morning}, got
        assert [got[morning][k] for k in ("participants", "orders", "gmv_fen", "campaign_fen", "coupon_fen")] == \
            [2, 2, 1980, (3900 - 990) * 2, 0], got
        got = campaigns(by="script", product="tea-001")["items"]
        assert [(r["participants"], r["orders"], r["gmv_fen"], r["new_members"]) for r in got] == [(2, 2, 1980, 1)], got
        got = campaigns(by="script", product="tea-003")["items"]
        assert [(r["participants"], r["orders"], r["gmv_fen"], r["coupon_fen"]) for r in got] == \
            [(1, 1, checkout, 2000)], got
        # a campaign filter keeps its script with that activity alone
        got = campaigns(by="script", campaign=evening)["items"]
        assert [(r["activities"], r["participants"], r["orders"]) for r in got] == [([evening], 1, 1)], got
        # the coupon alone: every order that used it, the evening sale's too
        got = campaigns(by="script", campaign=vip)["items"]
        assert [(r["activities"], r["participants"], r["orders"], r["gmv_fen"], r["coupon_fen"]) for r in got] == \
            [([vip], 2, 2, evening_fen + checkout, 4000)], got
        assert campaigns(by="script", campaign="flash_sale:%d" % alone["id"])["items"] == []
        status, headers, text = h.admin("GET", "/analytics/campaigns?by=script&format=csv&from=%s&to=%s" % (day, day), t)
        assert status == 200, text
        lines = text.split("\r\n") if isinstance(text, str) else text.decode().split("\r\n")
        assert lines[0] == "campaign,title,activities,participants,new_members,orders,gmv_fen,campaign_fen,coupon_fen,roi"
        assert lines[1].startswith("festival,Tea week,%s %s %s,3,1,4,%d," % (
            morning, evening, vip, 1980 + evening_fen + checkout)), lines
        status, _, body = h.admin("GET", "/analytics/campaigns?by=campaign", t)
        assert status == 400 and error_code(body) == "invalid_field", (status, body)
    finally:
        h.stop()


if __name__ == "__main__":
    run(globals())
