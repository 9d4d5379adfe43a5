-- Reports as CSV (?format=csv): the same figures as the JSON, one table each,
-- RFC 4180 quoting, a header row first. Empty cells are absent values.

local csv = {}

local function cell(v)
  if v == nil then return "" end
  if math.type(v) == "float" then v = ("%.6f"):format(v) end
  v = tostring(v)
  if v:find('[,"\r\n]') then v = '"' .. v:gsub('"', '""') .. '"' end
  return v
end

---@param columns string[]
---@param rows table[]
---@return string
function csv.encode(columns, rows)
  local lines = { table.concat(columns, ",") }
  for _, r in ipairs(rows) do
    local cells = {}
    for i, c in ipairs(columns) do cells[i] = cell(r[c]) end
    lines[#lines + 1] = table.concat(cells, ",")
  end
  return table.concat(lines, "\r\n") .. "\r\n"
end

local FIGURES = { "period", "label", "uv", "payers", "orders", "gmv_fen", "conversion", "aov_fen", "per_payer_fen" }

function csv.overview(r)
  local rows = {}
  for _, b in ipairs(r.buckets) do
    local x = {}
    for k, v in pairs(b) do x[k] = v end
    x.period = "bucket"
    rows[#rows + 1] = x
  end
  local t, p = {}, {}
  for k, v in pairs(r.total) do t[k] = v end
  for k, v in pairs(r.previous) do p[k] = v end
  t.period, t.label = "total", r.from .. ".." .. r.to
  p.period, p.label = "previous", "previous"
  rows[#rows + 1] = t
  rows[#rows + 1] = p
  return csv.encode(FIGURES, rows)
end

function csv.funnel(r)
  local rows = {}
  local function add(source, steps)
    for _, s in ipairs(steps) do
      rows[#rows + 1] = { source = source, step = s.step, visitors = s.visitors, conversion = s.conversion }
    end
  end
  add("all", r.steps)
  for _, b in ipairs(r.by_source) do add(b.source, b.steps) end
  return csv.encode({ "source", "step", "visitors", "conversion" }, rows)
end

function csv.sources(r)
  return csv.encode({ "key", "visitors", "new_members", "orders", "gmv_fen" }, r.items)
end

local CAMPAIGN_FIGURES = { "participants", "new_members", "orders", "gmv_fen", "campaign_fen", "coupon_fen", "roi" }

function csv.campaigns(r)
  if r.by ~= "script" then return csv.encode({ "campaign", table.unpack(CAMPAIGN_FIGURES) }, r.items) end
  local rows = {}
  for i, x in ipairs(r.items) do
    local y = {}
    for k, v in pairs(x) do y[k] = v end
    y.activities = table.concat(x.activities, " ")
    rows[i] = y
  end
  return csv.encode({ "campaign", "title", "activities", table.unpack(CAMPAIGN_FIGURES) }, rows)
end

function csv.retention(r)
  return csv.encode({ "month", "members", "repurchased_30", "rate_30", "open_30", "repurchased_60", "rate_60",
                      "open_60", "repurchased_90", "rate_90", "open_90" }, r.cohorts)
end

function csv.products(r)
  return csv.encode({ "product", "views", "viewers", "carts", "buyers", "units", "gmv_fen", "view_to_buy",
                      "add_to_cart_rate" }, r.items)
end

return csv
