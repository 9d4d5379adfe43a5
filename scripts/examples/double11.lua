-- A Double 11 (双十一) campaign, commented line by line: copy it next to your
-- brand's config, list it there, and change what you need.
--
--   tenants = { { id = "leaf", ..., campaigns = { "campaigns/double11.lua" } } }
--
-- A campaign script is Lua, but it only *states* the campaign: the host reads
-- it, checks it, hands each mechanic its settings, and schedules the rest.
-- The campaign is named after its file (double11), which must be a-z, 0-9 and
-- _ (at most 23 characters); it runs as the plugin campaign_double11.
--
-- Before it goes live, check it against a copy of the brand's data (nothing
-- live is touched); every mistake is reported as file:line: what is wrong:
--
--   tidepool campaign check scripts/examples/double11.lua --config scripts/demo/tidepool.conf.lua --tenant leaf
--   tidepool campaign preview scripts/examples/double11.lua --config scripts/demo/tidepool.conf.lua --tenant leaf
--
-- Then reload it (tidepool reload --plugin campaign_double11, SIGHUP, or
-- POST /admin/{tenant}/reload): the new version replaces the old one only if
-- every mechanic accepts it. Editing and reloading changes the same flash
-- sale, group buy, ... (items are named by their id); an item you delete is
-- withdrawn (it stops selling; its orders stay).
return campaign {
  -- shown to buyers on GET /v1/{tenant}/campaigns/double11
  title = "Leaf Double 11",
  description = "Eleven days of tea: flash sales, group buys and a coupon for our regulars",

  -- The campaign's window, in the brand's time zone (config: timezone). Written
  -- "YYYY-MM-DD HH:MM" (or HH:MM:SS). At starts the campaign is "running": its
  -- hooks below start to run and campaign.started is emitted; at ends it is
  -- "ended". Both are jobs in the brand's database: if the host is down at that
  -- moment, they run as soon as it is back. Every item must fit in the window.
  starts = "2027-11-01 20:00",
  ends = "2027-11-12 02:00",

  -- 秒杀: a flash sale. Settings are those of POST /admin/{t}/flash-sales,
  -- with the window written as starts/ends in local time (default: the
  -- campaign's). Money is integer fen; yuan "9.90" writes 990 exactly.
  flash_sale {
    id = "midnight",            -- names this item across edits (default: flash_sale-1, -2, ...)
    sku = "tea-001",            -- must exist in the catalog; checked at load
    price_fen = yuan "99",      -- at most the SKU's list price
    quantity = 200,             -- units for the sale; the catalog must hold them
    per_user_limit = 1,         -- each buyer, over the whole sale
    per_order_limit = 1,
    starts = "2027-11-11 00:00",
    ends = "2027-11-11 02:00",
    unpaid_timeout_seconds = 300,  -- an unpaid order gives its unit back after 5 minutes
  },

  -- a second wave at 10:00 on the sampler: a different id, another sale
  flash_sale {
    id = "morning",
    sku = "tea-002",
    price_fen = yuan "11.11",
    quantity = 111,
    per_user_limit = 2,
    per_order_limit = 2,
    starts = "2027-11-11 10:00",
    ends = "2027-11-11 12:00",
  },

  -- 拼团: a group buy for the whole campaign. Settings of POST /admin/{t}/group-buys.
  group_buy {
    id = "trio",
    sku = "tea-101",
    group_size = 3,
    price_fen = yuan "69",
    leader_price_fen = yuan "59",      -- the one who opens the group pays less
    group_ttl_seconds = 24 * 3600,     -- a group has a day to fill, or everyone is refunded
    per_user_limit = 2,
    virtual_fill = true,               -- 模拟成团: a group 2/3 paid at expiry is filled
    virtual_fill_min_percent = 67,
  },

  -- 砍价: friends cut the cup set from ¥159 to ¥11.11 in 5 cuts. Settings of
  -- POST /admin/{t}/bargain/activities.
  bargain {
    id = "cups",
    sku = "cup-001",
    original_price_fen = yuan "159",
    floor_price_fen = yuan "11.11",
    helpers_needed = 5,
    duration_seconds = 24 * 3600,
    pay_window_seconds = 1800,
  },

  -- 优惠券 anyone can claim during the campaign (settings of POST
  -- /admin/{t}/coupons/templates; the claim window is the campaign's)
  coupons {
    id = "open-coupon",
    name = "Double 11: ¥20 off ¥199",
    kind = "threshold",
    amount_off_fen = yuan "20",
    min_spend_fen = yuan "199",
    total_quantity = 1000,
    per_user_limit = 1,
    valid_days = 12,
  },

  -- a coupon drop: at `at`, each listed user is issued one coupon of its own
  -- template. Up to 1,000 users; a user listed twice is a mistake. Instead
  -- of users, a drop may name a segment of the members plugin (never both):
  --   segment "sleeping_vips" { all = { { field = "days_since_last_paid", op = "gte", value = 90 },
  --                                     { tag = "vip" } } },   -- saved when the campaign loads
  --   coupon_drop { id = "wake-vips", at = "2027-11-10 09:00", segment = "sleeping_vips", coupon = { ... } },
  -- and every member of it gets one, however many (500 at a time; the
  -- coupons plugin's GET /admin/{tenant}/coupons/drops/{id} shows how far).
  -- The members plugin must be enabled; this demo brand does not have it.
  coupon_drop {
    id = "regulars",
    at = "2027-11-10 20:00",
    users = { "demo-user", "ann", "bob" },
    coupon = { name = "Regulars: ¥50 off ¥299", kind = "threshold", amount_off_fen = yuan "50",
               min_spend_fen = yuan "299", total_quantity = 500, valid_days = 3 },
  },

  -- An agency's plugin takes part the same way if it exports campaign_apply:
  --   mechanic "friend_assist" { ... its settings ... },

  -- Hooks: event name = function(data, campaign). They run while the campaign
  -- is running, each delivery in its own transaction, with the plugin API
  -- (tp.call, tp.db on the campaign's own tables, tp.log, ...). campaign.items
  -- maps each item's id to { kind, plugin, activity_id }. A hook that raises is
  -- retried, then dead-lettered (GET /admin/{t}/events?state=dead).
  on = {
    -- every order during Double 11 over ¥299 earns its buyer a regulars coupon
    ["order.paid"] = function(data, campaign)
      local order = data.order
      if order.total_fen >= yuan "299" then
        tp.call("coupons", "issue", campaign.items.regulars.activity_id, { order.user },
          "campaign:double11")
      end
    end,
    ["group.formed"] = function(data)
      tp.log("info", "Double 11 group formed", { group = data.group.id })
    end,
  },
}
