---@diagnostic disable: undefined-global
-- coupons/lib/merge.lua: merging members (README "Merging members"). The
-- members plugin merges the younger member id `from` into the survivor
-- `into` and calls member_merge inside its transaction; an operator's undo
-- calls member_unmerge.
--
-- coupons keeps three things per person: coupons (coupons_coupons.user), the
-- coupon each order locked (coupons_orders.user), and the segment drops that
-- reached them at per_user_limit (coupons_drop_skips.user). A merge moves every
-- one of from's to into, so into holds what both held and per_user_limit (and the
-- daily limit) counts all of it: a person who took 1 of a limit-1 coupon as
-- `from` cannot take another as `into`. Nothing is lost or voided.
--
-- Collisions. A coupon's numbers are per user: seq (the user's n-th coupon of
-- the template) and day_seq (the n-th of that day) are UNIQUE with the
-- template and user, and a segment drop's coupon is UNIQUE with its drop and
-- user. from's coupons of a template take the numbers after into's, in their
-- own order (into's 1, 2 stay; from's 1 becomes 3). When both were given a
-- coupon of the same segment drop (two members then, one person now), into
-- keeps both coupons; from's no longer counts as the drop's (drop_id cleared)
-- so the drop's one-per-member rule holds for the survivor.
--
-- coupons_merge_moves records every row moved with its numbers under from,
-- so member_unmerge gives back exactly those rows with exactly those numbers.

local tpmerge = require("tp.merge")
local issue = require("lib.issue")

local merge = {}

---Moves every coupon, coupon lock and drop skip of `from` to `into` and records what
---moved. Idempotent: a merge_id already recorded does nothing.
---@param from string   the younger member id, merged away
---@param into string   the survivor
---@param merge_id integer
---@return {coupons: integer, orders: integer, skips: integer} moved
function merge.member_merge(from, into, merge_id)
  if not tpmerge.begin("coupons_merges", from, into, merge_id) then
    return { coupons = 0, orders = 0, skips = 0 }
  end

  -- each coupon of from: its numbers now, and the ones it takes under into
  -- (after into's highest of the template, and of the template that day)
  tp.db.exec([[INSERT INTO coupons_merge_moves (merge_id, kind, row_id, seq, day_seq, drop_id,
      new_seq, new_day_seq, new_drop_id)
    SELECT ?1, 'coupon', f.id, f.seq, f.day_seq, f.drop_id,
      coalesce((SELECT max(i.seq) FROM coupons_coupons i
                WHERE i.template_id = f.template_id AND i.user = ?3), 0)
        + row_number() OVER (PARTITION BY f.template_id ORDER BY f.seq),
      coalesce((SELECT max(i.day_seq) FROM coupons_coupons i
                WHERE i.template_id = f.template_id AND i.user = ?3 AND i.claim_day = f.claim_day), 0)
        + row_number() OVER (PARTITION BY f.template_id, f.claim_day ORDER BY f.day_seq),
      CASE WHEN f.drop_id IS NOT NULL AND EXISTS (SELECT 1 FROM coupons_coupons i
             WHERE i.drop_id = f.drop_id AND i.user = ?3) THEN NULL ELSE f.drop_id END
    FROM coupons_coupons f WHERE f.user = ?2]], merge_id, from, into)
  local coupons = tp.db.exec([[UPDATE coupons_coupons AS c SET user = ?3, seq = m.new_seq,
      day_seq = m.new_day_seq, drop_id = m.new_drop_id
    FROM coupons_merge_moves m
    WHERE m.merge_id = ?1 AND m.kind = 'coupon' AND m.row_id = c.id AND c.user = ?2]],
    merge_id, from, into)

  tp.db.exec([[INSERT INTO coupons_merge_moves (merge_id, kind, row_id)
    SELECT ?1, 'order', order_id FROM coupons_orders WHERE user = ?2]], merge_id, from)
  local orders = tp.db.exec("UPDATE coupons_orders SET user = ? WHERE user = ?", into, from)

  -- a drop that skipped both skipped one person: into's record stays
  tp.db.exec([[INSERT INTO coupons_merge_moves (merge_id, kind, row_id, into_had)
    SELECT ?1, 'skip', s.drop_id, EXISTS (SELECT 1 FROM coupons_drop_skips i
      WHERE i.drop_id = s.drop_id AND i.user = ?3)
    FROM coupons_drop_skips s WHERE s.user = ?2]], merge_id, from, into)
  tp.db.exec([[INSERT INTO coupons_drop_skips (drop_id, user) SELECT drop_id, ?2 FROM coupons_drop_skips
    WHERE user = ?1 ON CONFLICT DO NOTHING]], from, into)
  local skips = tp.db.exec("DELETE FROM coupons_drop_skips WHERE user = ?", from)
  return { coupons = coupons, orders = orders, skips = skips }
end

-- a coupon the merge moved, with its move (m), still into's (c)
local BACK = [[m.merge_id = ?1 AND m.kind = 'coupon' AND m.row_id = c.id AND c.user = ?3
      AND (c.order_id IS NULL OR c.order_id IN
        (SELECT o.row_id FROM coupons_merge_moves o WHERE o.merge_id = ?1 AND o.kind = 'order'))]]
local MOVE_BACK_SQL = [[UPDATE coupons_coupons AS c SET user = ?2, seq = m.seq,
      day_seq = m.day_seq, drop_id = m.drop_id
    FROM coupons_merge_moves m WHERE ]] .. BACK .. [[
      AND NOT EXISTS (SELECT 1 FROM coupons_coupons x WHERE x.template_id = c.template_id AND x.user = ?2
        AND (x.seq = m.seq OR (x.claim_day = c.claim_day AND x.day_seq = m.day_seq)))
      AND (m.drop_id IS NULL OR NOT EXISTS (SELECT 1 FROM coupons_coupons x
        WHERE x.drop_id = m.drop_id AND x.user = ?2))]]
local STILL_MOVED_SQL = [[SELECT c.id, c.template_id, c.claim_day, m.drop_id
      FROM coupons_coupons c JOIN coupons_merge_moves m ON ]] .. BACK

---Undoes merge merge_id: the coupons and locks it moved go back to `from`
---with the numbers they had, then the record is forgotten. What `into` did
---since stays with `into`: its own new coupons, and a moved coupon that an
---order of into's locked or used after the merge (it stays with that order).
---Should from hold a number again meanwhile (an issue naming the old id), the
---coupon takes the next free one. Unknown or undone merge_id: nothing.
---@param from string
---@param into string
---@param merge_id integer
---@return {coupons: integer, orders: integer, skips: integer} moved back to from
function merge.member_unmerge(from, into, merge_id)
  if not tpmerge.begin_undo("coupons_merges", from, into, merge_id) then
    return { coupons = 0, orders = 0, skips = 0 }
  end

  local orders = tp.db.exec([[UPDATE coupons_orders SET user = ?2 WHERE user = ?3 AND order_id IN
      (SELECT row_id FROM coupons_merge_moves WHERE merge_id = ?1 AND kind = 'order')]],
    merge_id, from, into)
  -- which moved coupons go back: still into's, and free or held by a moved order
  local coupons = tp.db.exec(MOVE_BACK_SQL, merge_id, from, into)
  -- the rare rest: from holds their numbers again; they take the next free ones
  for _, r in ipairs(tp.db.query(STILL_MOVED_SQL, merge_id, from, into)) do
    local h = issue.holding(r.template_id, from, r.claim_day, r.drop_id)
    tp.db.exec("UPDATE coupons_coupons SET user = ?, seq = ?, day_seq = ?, drop_id = ? WHERE id = ?",
      from, h.seq, h.day_seq, h.in_drop == 0 and r.drop_id or nil, r.id)
    coupons = coupons + 1
  end
  local skips = tp.db.exec([[INSERT INTO coupons_drop_skips (drop_id, user)
    SELECT row_id, ?2 FROM coupons_merge_moves WHERE merge_id = ?1 AND kind = 'skip'
    ON CONFLICT DO NOTHING]], merge_id, from)
  tp.db.exec([[DELETE FROM coupons_drop_skips WHERE user = ?2 AND drop_id IN
      (SELECT row_id FROM coupons_merge_moves WHERE merge_id = ?1 AND kind = 'skip' AND into_had = 0)]],
    merge_id, into)
  tp.db.exec("DELETE FROM coupons_merge_moves WHERE merge_id = ?", merge_id)
  return { coupons = coupons, orders = orders, skips = skips }
end

return merge
