-- Merging members (README "Merging members"). The members plugin merges the
-- younger member id `from` into the survivor `into` and calls member_merge
-- inside its transaction. Points are re-posted, never edited: from's balance
-- leaves it as a merge_out entry and arrives at into as a merge_in entry, and
-- from's lots move with their expiry, so into spends them in the same FIFO
-- order. Its orders' points records and mall exchanges move too (the orders
-- plugin moves the orders). points_merge_moves records what moved, so an
-- unmerge moves exactly that back: the lots with what is left of them (what
-- into spent of them stays spent), re-posted the other way.

local tpmerge = require("tp.merge")
local ledger = require("lib.ledger")

local merge = {}

local NONE = { points = 0, rows = 0 }

local function record(merge_id, kind, sql, user)
  tp.db.exec("INSERT INTO points_merge_moves (merge_id, kind, row_id) SELECT ?, ?, id FROM (" .. sql .. ")",
    merge_id, kind, user)
end

function merge.member_merge(from, into, merge_id)
  if not tpmerge.begin("points_merges", from, into, merge_id) then return NONE end
  local b = ledger.balance(from)
  tp.db.exec("UPDATE points_merges SET balance = ? WHERE merge_id = ?", b, merge_id)
  record(merge_id, "lot", "SELECT id FROM points_lots WHERE user = ?3 AND remaining > 0", from)
  record(merge_id, "order", "SELECT order_id AS id FROM points_orders WHERE user = ?3", from)
  record(merge_id, "exchange", "SELECT id FROM points_exchanges WHERE user = ?3", from)
  local rows = tp.db.exec([[UPDATE points_lots SET user = ?2 WHERE id IN
    (SELECT row_id FROM points_merge_moves WHERE merge_id = ?1 AND kind = 'lot')]], merge_id, into)
  rows = rows + tp.db.exec([[UPDATE points_orders SET user = ?2 WHERE order_id IN
    (SELECT row_id FROM points_merge_moves WHERE merge_id = ?1 AND kind = 'order')]], merge_id, into)
  rows = rows + tp.db.exec([[UPDATE points_exchanges SET user = ?2 WHERE id IN
    (SELECT row_id FROM points_merge_moves WHERE merge_id = ?1 AND kind = 'exchange')]], merge_id, into)
  if b ~= 0 then
    local source = "merge:" .. merge_id
    local debt = math.max(-ledger.balance(into), 0)
    ledger.post(from, "merge_out", -b, source, "merged into another member")
    local entry = ledger.post(into, "merge_in", b, source, "a merged member's points")
    -- into owed points: the lots that came pay the debt first (lots hold max(balance, 0))
    if debt > 0 then ledger.take(into, entry, debt) end
  end
  return { points = b, rows = rows }
end

function merge.member_unmerge(from, into, merge_id)
  local m = tp.db.one("SELECT balance FROM points_merges WHERE merge_id = ?", merge_id)
  if not tpmerge.begin_undo("points_merges", from, into, merge_id) then return NONE end
  local left = tp.db.one([[SELECT coalesce(sum(remaining), 0) AS n FROM points_lots WHERE user = ?2 AND id IN
    (SELECT row_id FROM points_merge_moves WHERE merge_id = ?1 AND kind = 'lot')]], merge_id, into).n
  local back = left + math.min(m.balance, 0)  -- a debt that came with the merge goes back with it
  local rows = tp.db.exec([[UPDATE points_lots SET user = ?2 WHERE id IN
    (SELECT row_id FROM points_merge_moves WHERE merge_id = ?1 AND kind = 'lot')]], merge_id, from)
  rows = rows + tp.db.exec([[UPDATE points_orders SET user = ?2 WHERE order_id IN
    (SELECT row_id FROM points_merge_moves WHERE merge_id = ?1 AND kind = 'order')]], merge_id, from)
  rows = rows + tp.db.exec([[UPDATE points_exchanges SET user = ?2 WHERE id IN
    (SELECT row_id FROM points_merge_moves WHERE merge_id = ?1 AND kind = 'exchange')]], merge_id, from)
  tp.db.exec("DELETE FROM points_merge_moves WHERE merge_id = ?", merge_id)
  if back ~= 0 then
    local source = "unmerge:" .. merge_id
    ledger.post(into, "merge_out", -back, source, "a merge undone")
    ledger.post(from, "merge_in", back, source, "a merge undone")
  end
  return { points = back, rows = rows }
end

return merge
