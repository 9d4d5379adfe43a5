-- What a post shows: the organiser's summary (totals per item, every entry in
-- sequence order, a CSV rendering) and the public page (items, the live chain
-- with masked member ids, seconds to the cut-off).

local entries = require("lib.entries")
local posts = require("lib.posts")

local summary = {}

-- ---- masking

---A member id as the public page shows it: first and last character, the
---rest starred ("alice" -> "a***e"; ids of 1-2 characters keep only the first).
---@param user string
---@return string
function summary.mask(user)
  local n = utf8.len(user) or #user
  if n <= 2 then return user:sub(1, 1) .. "*" end
  local first = user:sub(1, utf8.offset(user, 2) - 1)
  local last = user:sub(utf8.offset(user, n))
  return first .. string.rep("*", math.min(n - 2, 6)) .. last
end

-- ---- totals

---Totals per item over the live (not cancelled) entries, in the post's item order.
---@param post ChainPost
---@return table[]
local function item_totals(post)
  local rows = tp.db.query([[SELECT l.sku, count(*) AS entries, sum(l.qty) AS units,
      sum(CASE WHEN e.status = 'paid' THEN l.qty ELSE 0 END) AS paid_units,
      sum(l.qty * l.unit_price_fen) AS amount_fen,
      sum(CASE WHEN e.status = 'paid' THEN l.qty * l.unit_price_fen ELSE 0 END) AS paid_amount_fen
    FROM group_chain_entry_lines l JOIN group_chain_entries e ON e.id = l.entry_id
    WHERE l.post_id = ? AND e.status != 'cancelled' GROUP BY l.sku]], post.id)
  local by_sku = {}
  for _, row in ipairs(rows) do by_sku[row.sku] = row end
  local out = tp.json.array()
  for i, item in ipairs(post.items) do
    local t = by_sku[item.sku] or {}
    out[i] = { sku = item.sku, title = item.title, chain_price_fen = item.chain_price_fen,
               entries = t.entries or 0, units = t.units or 0, paid_units = t.paid_units or 0,
               unpaid_units = (t.units or 0) - (t.paid_units or 0),
               amount_fen = t.amount_fen or 0, paid_amount_fen = t.paid_amount_fen or 0 }
  end
  return out
end

---Totals of the whole post from its entries.
---@param list ChainEntry[]
local function post_totals(list)
  local t = { entries = 0, paid_entries = 0, unpaid_entries = 0, cancelled_entries = 0,
              amount_fen = 0, paid_amount_fen = 0 }
  for _, e in ipairs(list) do
    t[e.status .. "_entries"] = t[e.status .. "_entries"] + 1
    if e.status ~= "cancelled" then
      t.entries = t.entries + 1
      t.amount_fen = t.amount_fen + e.total_fen
      if e.status == "paid" then t.paid_amount_fen = t.paid_amount_fen + e.total_fen end
    end
  end
  return t
end

-- ---- CSV

local function csv_field(v)
  v = v == nil and "" or tostring(v)
  if v:find('[,"\r\n]') then v = '"' .. v:gsub('"', '""') .. '"' end
  return v
end

local CSV_HEADER = "seq,member,status,sku,title,qty,unit_price_fen,amount_fen,note,pickup"

---One line per entry line, in sequence order: what a leader pastes into a sheet.
---@param post ChainPost
---@param list ChainEntry[]
---@return string
function summary.csv(post, list)
  local titles = {}
  for _, item in ipairs(post.items) do titles[item.sku] = item.title end
  local out = { CSV_HEADER }
  for _, e in ipairs(list) do
    for _, l in ipairs(e.lines) do
      -- note and pickup may be nil: fill by index, ipairs would stop at the first hole
      local cells = { e.seq, e.user, e.status, l.sku, titles[l.sku], l.qty, l.unit_price_fen,
                      l.amount_fen, e.note, post.pickup }
      for i = 1, 10 do cells[i] = csv_field(cells[i]) end
      out[#out + 1] = table.concat(cells, ",")
    end
  end
  return table.concat(out, "\n") .. "\n"
end

-- ---- the two views

---The post's header fields as every view shows them.
local function header(post)
  return { id = post.id, title = post.title, pickup = post.pickup, cutoff_at = post.cutoff_at,
           status = posts.is_open(post) and "open" or "closed", closed_at = post.closed_at,
           seconds_to_cutoff = math.max(0, post.cutoff_at - tp.now()) }
end

---The organiser's summary. with_csv adds the CSV text as field csv.
---@param post ChainPost
---@param with_csv boolean?
---@return table
function summary.build(post, with_csv)
  local list = entries.of_post(post.id)
  local view = header(post)
  view.organiser = post.organiser
  view.items = item_totals(post)
  view.totals = post_totals(list)
  view.entries = list
  if with_csv then view.csv = summary.csv(post, list) end
  return view
end

---The public page: items with units taken, the live chain with masked ids.
---@param post ChainPost
---@return table
function summary.public(post)
  local view = header(post)
  view.organiser = summary.mask(post.organiser)
  local totals = {}
  for _, t in ipairs(item_totals(post)) do totals[t.sku] = t.units end
  view.items = tp.json.array()
  for i, item in ipairs(post.items) do
    view.items[i] = { sku = item.sku, title = item.title, list_price_fen = item.list_price_fen,
                      chain_price_fen = item.chain_price_fen, per_member_limit = item.per_member_limit,
                      units = totals[item.sku] }
  end
  view.chain = tp.json.array()
  for _, e in ipairs(entries.of_post(post.id)) do
    if e.status ~= "cancelled" then
      local lines = tp.json.array()
      for i, l in ipairs(e.lines) do lines[i] = { sku = l.sku, qty = l.qty } end
      view.chain[#view.chain + 1] = { seq = e.seq, member = summary.mask(e.user), lines = lines }
    end
  end
  return view
end

return summary
