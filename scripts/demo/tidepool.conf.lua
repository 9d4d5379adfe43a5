-- The demo brand: a tea shop ("leaf") served by one tidepool host.
-- Paths are relative to this file. Secrets come from the environment when set;
-- the defaults here are for the demo only: never ship them.
-- The brand's mechanics and their settings, for the live tenant and its rehearsal.
local function leaf_plugins()
  return {
    catalog = { max_page_size = 50 },
    -- orders ask referral who brought the buyer (referrer, level-2, store, guide),
    -- tiers for the buyer's member price (会员价) and promotions what its running
    -- promotions (满减, 满折, 第二件半价, N元任选, 限时折扣, 优惠码) take off a checkout
    orders = { unpaid_timeout_seconds = 900, max_unpaid_orders = 3, attribution_plugin = "referral",
               member_price_plugin = "tiers", promotions_plugin = "promotions" },
    -- the brand's stacking: 满减/满折 count what is left after item promotions,
    -- promotions count member prices, and a coupon may follow them
    promotions = { item_with_order = true, with_member_price = true, with_coupon = true },
    -- the payment secret signs and verifies payment notifies (WeChat Pay shape)
    payments = { secret = env("LEAF_PAYMENT_SECRET", "demo-only-leaf-payment-secret-01") },
    coupons = {},
    flash_sale = { unpaid_timeout_seconds = 300 },  -- flash-sale orders: 5 minutes to pay
    group_buy = { group_ttl_seconds = 86400 },      -- a group has a day to fill
    bargain = {},
    -- 10 % to the referrer, 5 % to hers; settled 7 days after the buyer confirms receipt
    referral = { join_mode = "everyone", binding_mode = "unbound", binding_days = 30,
                 level1_rate_bp = 1000, level2_rate_bp = 500, settle_after_seconds = 7 * 86400,
                 min_withdrawal_fen = 100 },
    -- the customer pool: phones are kept as digests keyed with this pepper
    members = { phone_pepper = env("LEAF_PHONE_PEPPER", "demo-only-leaf-phone-pepper-01"),
                fields = { tea = { type = "enum", values = { "green", "white", "oolong" }, editable = true,
                                   doc = "the tea she likes best" } } },
    -- 积分: 1 point per ¥1 paid, 100 points pay ¥1 of at most half an order, points
    -- earned in a year expire at the end of the next (local midnight, Asia/Shanghai)
    points = { earn = { points = 1, per_fen = 100 },
               redeem = { points_per_fen = 1, max_percent = 50 },
               expiry = { kind = "year_end", years = 1 } },
    -- 签到: 5 points a day, 20 more on the 7th day of a weekly streak, two make-ups a month at 50 points
    signin = { daily = 5, streak = { { day = 7, points = 20 } }, cycle = 7,
               makeup = { per_month = 2, cost_points = 50 } },
    -- tiers: ¥1 paid = 1 growth, a sign-in 5; silver from 1,000 (98 %), gold from 5,000
    -- (95 %, the Longjing tin at ¥118, free shipping, a ¥20 coupon on reaching it);
    -- downgrades at the monthly review, not within 30 days of an upgrade; the Leaf
    -- Club SKU (club-30) makes a member gold for 30 days (付费会员)
    tiers = {
      levels = {
        { id = "regular", name = "会员", growth = 0 },
        { id = "silver", name = "银卡", growth = 1000, discount_percent = 98 },
        { id = "gold", name = "金卡", growth = 5000, discount_percent = 95, prices = { ["tea-001"] = 11800 },
          free_shipping = true, upgrade_coupon = 1 },
      },
      growth = { per_100_fen = 1, signin = 5 },
      window_days = 365,
      review = { every = "month", grace_days = 30 },
      member_price = { with_coupon = true, with_campaign = "never" },
      paid = { { sku = "club-30", tier = "gold", days = 30 } },
    },
    -- RFM layers over the last 365 days, nightly at 03:00: recent = within 30 days,
    -- frequent = 2 orders or more, valuable = ¥300 or more
    rfm = { window_days = 365, hour = 3, r = { days = 30 }, f = { orders = 2 }, m = { fen = 30000 } },
    -- data ops: an order's source is the buyer's last visit within 7 days (POST /v1/leaf/track)
    analytics = { attribution_window_days = 7 },
    -- fulfilment: received 10 days after the last parcel, completed 7 days after delivery or
    -- pickup; after-sales requests approved after 2 days of silence; coupons stay used
    fulfilment = { auto_receive_seconds = 10 * 86400, auto_complete_seconds = 7 * 86400,
                   aftersale_auto_approve_seconds = 2 * 86400, return_coupon = "never" },
    -- 预售: a deposit that is never followed by its balance is kept (定金不退, as the malls
    -- do); the buyer is reminded when the balance opens and a day before it closes
    presale = { deposit_refund = "forfeit", balance_reminder_before_close_seconds = 86400 },
  }
end

-- The brand's campaign scripts (scripts/demo/campaigns/): each runs as plugin
-- campaign_<file name>. A campaign naming a SKU the catalog lacks is refused
-- with its file:line and retried by the next reload (tools/demo_seed.sh
-- reloads after it creates the products).
local leaf_campaigns = { "campaigns/double12.lua" }

return {
  listen = env("TIDEPOOL_LISTEN", "127.0.0.1:8080"),
  data_dir = env("TIDEPOOL_DATA_DIR", "../../data/demo"),
  plugin_dirs = { "../../plugins" },
  synchronous = "full",          -- an answered write survives power loss
  log_level = "info",
  -- each brand's database copied online once a day, the newest seven kept
  -- (README "Backups"; `tidepool restore --check` opens the newest)
  backup = { dir = env("TIDEPOOL_BACKUP_DIR", "../../data/demo-backups"), every_seconds = 86400, keep = 7 },
  -- host-wide admin keys: POST /admin/reload and `tidepool reload`
  admin_keys = { env("TIDEPOOL_ADMIN_KEY", "demo-only-host-admin-key") },
  limits = {
    max_connections = 10000,
    max_body_bytes = 1048576,
    header_timeout_ms = 10000,
    idle_timeout_ms = 60000,
    lua_instructions = 10000000,  -- per request, job or event delivery of a plugin
    lua_memory_bytes = 67108864,  -- per plugin state
  },
  tenants = {
    {
      id = "leaf",
      token_secret = env("LEAF_TOKEN_SECRET", "demo-only-leaf-token-secret-0001"),
      api_keys = { env("LEAF_API_KEY", "demo-only-leaf-admin-key") },
      timezone = "Asia/Shanghai",
      plugins = leaf_plugins(),
      campaigns = leaf_campaigns,
    },
    -- the same brand on the test clock (POST /admin/leaf-rehearsal/clock/advance):
    -- operators rehearse a 24-hour group buy or a 7-day commission window in seconds
    {
      id = "leaf-rehearsal",
      token_secret = env("LEAF_TOKEN_SECRET", "demo-only-leaf-token-secret-0001"),
      api_keys = { env("LEAF_API_KEY", "demo-only-leaf-admin-key") },
      timezone = "Asia/Shanghai",
      clock = "manual",
      plugins = leaf_plugins(),
      campaigns = leaf_campaigns,
    },
  },
}
