-- tp.campaigntest: the campaign contract's tests, for `tidepool test` files of
-- a plugin that takes part in campaigns (campaign_apply / campaign_withdraw;
-- sdk/GUIDE.md "Taking part in campaigns"). It uses the kit's globals: the
-- file enables the plugin and campaign_probe (sdk/testplugins), which stands
-- in for a campaign plugin.
--
--   local ct = require("tp.campaigntest").new {
--     plugin = "bargain",                    -- the plugin under test
--     activities = "bargain_activities",     -- its table of activities (counted)
--     items = "bargain_campaign_items",      -- its ref -> activity table
--     item_column = "activity_id",           -- the activity's column there
--   }
--   ct.apply(ref, settings)  ct.withdraw(ref)  ct.count()  ct.item(ref)
--   ct.refuses_unknown_key(ref, settings, key, guess)
--   ct.refuses(ref, { {settings, status, code, field}, ... })
--   ct.unknown_ref_withdraws_nothing(ref)

local campaigntest = {}

---@class CampaignTestSpec
---@field plugin string
---@field activities string
---@field items string
---@field item_column string
---@field as string? the campaign plugin that applies (default campaign_probe)

---@param spec CampaignTestSpec
function campaigntest.new(spec)
  local ct = {}
  local as = spec.as or "campaign_probe"

  ---campaign_apply(ref, settings), as the campaign plugin (or `other`) calls it.
  function ct.apply(ref, settings, other)
    return kit.admin():post("/" .. (other or as) .. "/apply", { plugin = spec.plugin, ref = ref, settings = settings })
  end

  ---campaign_withdraw(ref).
  function ct.withdraw(ref, other)
    return kit.admin():post("/" .. (other or as) .. "/withdraw", { plugin = spec.plugin, ref = ref })
  end

  ---How many activities the plugin has.
  function ct.count()
    return kit.query("SELECT count(*) AS n FROM " .. spec.activities)[1].n
  end

  ---The activity a ref made.
  function ct.item(ref)
    return kit.query("SELECT " .. spec.item_column .. " AS id FROM " .. spec.items .. " WHERE ref = ?", ref)[1].id
  end

  ---An unknown key is refused naming it, with the guess when one is given
  ---("did you mean ..."), and `status` (apply's and withdraw's, never the
  ---script's) is refused too; nothing is created.
  function ct.refuses_unknown_key(ref, settings, key, guess)
    local before = ct.count()
    local s = {}
    for k, v in pairs(settings) do s[k] = v end
    s[key] = 1
    local err = expect(ct.apply(ref, s)).to_be_error(400, "invalid_field")
    expect(err.details).to_equal({ field = key })
    if guess then
      expect(err.message).to_be(("%s is not a known field; did you mean '%s'?"):format(key, guess))
    end
    s[key] = nil
    s.status = "disabled"
    expect(expect(ct.apply(ref, s)).to_be_error(400, "invalid_field").details).to_equal({ field = "status" })
    expect(ct.count()).to_be(before)
    expect(kit.query("SELECT count(*) AS n FROM " .. spec.items .. " WHERE ref = ?", ref)[1].n).to_be(0)
  end

  ---Each case {settings, status, code, field} is refused as the admin routes
  ---refuse it, naming the field; nothing is created.
  function ct.refuses(ref, cases)
    local before = ct.count()
    for _, case in ipairs(cases) do
      local err = expect(ct.apply(ref, case[1])).to_be_error(case[2], case[3])
      expect({ case[3], err.details and err.details.field }).to_equal({ case[3], case[4] })
    end
    expect(ct.count()).to_be(before)
  end

  ---Withdrawing a ref the plugin never saw answers false.
  function ct.unknown_ref_withdraws_nothing(ref)
    expect(ct.withdraw(ref).body).to_equal({ withdrawn = false })
  end

  return ct
end

return campaigntest
