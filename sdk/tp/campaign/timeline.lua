---@diagnostic disable: undefined-global
-- tp.campaign.timeline: what a campaign will do, and when, as rows for the
-- preview (tidepool campaign preview) and the operators' campaign route.

local when = require("tp.when")

local timeline = {}

---The events the script hooks, sorted.
---@param c table the campaign (script.read)
---@return string[]
function timeline.hook_names(c)
  local names = {}
  for event in pairs(c.hooks) do names[#names + 1] = event end
  table.sort(names)
  return names
end

---The campaign's moments in time order; at equal times, the order below
---(start, drops, openings, closings, end).
---@param c table the campaign (script.read)
---@param rows table[] the applied items (runtime's items table)
---@return table[] {at, what}
function timeline.rows(c, rows)
  local by_ref, out = {}, {}
  for _, row in ipairs(rows) do by_ref[row.ref] = row end
  local function add(at, rank, what) out[#out + 1] = { at = at, rank = rank, what = what, n = #out } end
  local hooks = timeline.hook_names(c)
  add(c.starts_at, 1, ("campaign starts: %s%s"):format(c.title,
    #hooks > 0 and ("; its hooks on %s run until it ends"):format(table.concat(hooks, ", ")) or ""))
  for _, it in ipairs(c.items) do
    local row = by_ref[it.ref]
    if it.at and it.segment then
      add(it.at, 2, ("coupon drop '%s': every member of segment '%s' gets one of %s"):format(it.id,
        it.segment, row.summary))
    elseif it.at then
      add(it.at, 2, ("coupon drop '%s': %d user%s each get one of %s"):format(it.id, #it.users,
        #it.users == 1 and "" or "s", row.summary))
    else
      add(row.opens_at or c.starts_at, 3, ("opens %s '%s': %s"):format(it.kind, it.id, row.summary))
      if row.closes_at then add(row.closes_at, 4, ("closes %s '%s'"):format(it.kind, it.id)) end
    end
  end
  add(c.ends_at, 5, "campaign ends")
  table.sort(out, function(a, b)
    if a.at ~= b.at then return a.at < b.at end
    if a.rank ~= b.rank then return a.rank < b.rank end
    return a.n < b.n
  end)
  return out
end

---Rewrites the campaign's timeline table.
---@param tbl string the table's name
---@param c table
---@param rows table[]
function timeline.write(tbl, c, rows)
  tp.db.exec("DELETE FROM " .. tbl)
  for i, m in ipairs(timeline.rows(c, rows)) do
    tp.db.exec("INSERT INTO " .. tbl .. " (seq, at, local_time, what) VALUES (?, ?, ?, ?)", i, m.at,
      when.format(m.at), m.what)
  end
end

return timeline
