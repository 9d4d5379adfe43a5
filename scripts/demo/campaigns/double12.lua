-- Leaf's Double 12 (双十二): the demo brand's campaign. Times are Leaf's
-- (Asia/Shanghai). Check it, and see what happens when, before it goes live:
--   build/tidepool campaign preview scripts/demo/campaigns/double12.lua \
--     --config scripts/demo/tidepool.conf.lua --tenant leaf
-- The format is explained line by line in scripts/examples/double11.lua.
return campaign {
  title = "Leaf Double 12",
  starts = "2026-12-11 20:00",
  ends = "2026-12-13 00:00",

  -- 秒杀 at 10:00: the 250 g Longjing tin at ¥88 instead of ¥128
  flash_sale {
    id = "longjing-10am",
    sku = "tea-001",
    price_fen = yuan "88",
    quantity = 50,
    per_user_limit = 1,
    starts = "2026-12-12 10:00",
    ends = "2026-12-12 12:00",
  },

  -- 拼团 all day: three samplers at ¥19.90 each, the leader pays ¥14.90
  group_buy {
    id = "sampler-trio",
    sku = "tea-002",
    group_size = 3,
    price_fen = yuan "19.90",
    leader_price_fen = yuan "14.90",
    group_ttl_seconds = 6 * 3600,
    starts = "2026-12-12 00:00",
    ends = "2026-12-12 23:59",
  },

  -- the brand's regulars: members tagged "regular" (the members plugin)
  segment "regulars" { tag = "regular" },

  -- the evening before: a ¥30-off-¥199 coupon for every regular, and for no one else
  coupon_drop {
    id = "vip-eve",
    at = "2026-12-11 20:00",
    segment = "regulars",
    coupon = { name = "Double 12: ¥30 off ¥199", kind = "threshold", amount_off_fen = yuan "30",
               min_spend_fen = yuan "199", total_quantity = 100, valid_days = 3 },
  },

  on = {
    -- a group that forms during the campaign is worth a line in the log
    ["group.formed"] = function(data)
      tp.log("info", "Double 12 group formed", { group = data.group.id, orders = #data.order_ids })
    end,
  },
}
