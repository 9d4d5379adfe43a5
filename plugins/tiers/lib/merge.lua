---@diagnostic disable: undefined-global
-- tiers/lib/merge.lua: merging members (sdk/GUIDE.md "Your plugin and the
-- customer pool"). The members plugin folds the younger id `from` into the
-- survivor `into` and calls member_merge inside its transaction.
--
-- What moves: from's growth entries become into's, except an entry into has
-- for the same cause (a sign-in of the same day, the same task: one person
-- earns it once); the tier held by growth is the higher of the two (with its
-- date), a paid membership the one that runs longer (and the higher tier);
-- from's row goes. tiers_merge_moves records each entry moved and
-- tiers_merge_prior both rows as they were, so member_unmerge puts exactly
-- that back (into keeps what it earned since). The tags follow by a job
-- (retag): the members plugin is mid-merge.

local tpmerge = require("tp.merge")
local standing = require("lib.standing")
local program = require("lib.program")

local merge = {}

local COLS = "user, tier, held, tier_since, paid_tier, paid_until, updated_at"

local ROW_OF_SQL = "SELECT " .. COLS .. " FROM tiers_members WHERE user = ?"

local function row_of(user)
  return tp.db.one(ROW_OF_SQL, user)
end

local function rank(id)
  local l = id and program.get().by_id[id]
  return l and l.rank or 0
end

local PUT_SQL = "INSERT INTO tiers_members (" .. COLS .. ") VALUES (:user, :tier, :held, :tier_since, :paid_tier, "
    .. ":paid_until, :updated_at)"

local function put(r)
  tp.db.exec("DELETE FROM tiers_members WHERE user = ?", r.user)
  tp.db.exec(PUT_SQL, r)
end

local function paid_job(r)
  if r and r.paid_until and r.paid_until > tp.now() then
    tp.jobs.schedule("paid_end", { user = r.user }, { at = r.paid_until, key = "paid:" .. r.user })
  elseif r then
    tp.jobs.cancel("paid:" .. r.user)
  end
end

---@param from string
---@param into string
---@param merge_id integer
---@return {ledger: integer} moved growth entries
function merge.member_merge(from, into, merge_id)
  if not tpmerge.begin("tiers_merges", from, into, merge_id) then return { ledger = 0 } end
  local f, i = row_of(from), row_of(into)
  tp.db.exec("INSERT INTO tiers_merge_prior (merge_id, from_row, into_row) VALUES (?, ?, ?)", merge_id,
    f and tp.json.encode(f) or nil, i and tp.json.encode(i) or nil)
  tp.db.exec([[INSERT INTO tiers_merge_moves (merge_id, kind, row_id)
    SELECT ?1, 'ledger', l.id FROM tiers_ledger l WHERE l.user = ?2 AND NOT EXISTS
      (SELECT 1 FROM tiers_ledger x WHERE x.user = ?3 AND x.kind = l.kind AND x.ref = l.ref)]], merge_id, from, into)
  local moved = tp.db.exec([[UPDATE tiers_ledger SET user = ?2 WHERE id IN
    (SELECT row_id FROM tiers_merge_moves WHERE merge_id = ?1 AND kind = 'ledger')]], merge_id, into)
  tp.db.exec([[INSERT INTO tiers_merge_moves (merge_id, kind, row_id)
    SELECT ?1, 'paid', order_id FROM tiers_paid WHERE user = ?2]], merge_id, from)
  tp.db.exec("UPDATE tiers_paid SET user = ? WHERE user = ?", into, from)
  if f then
    local m = i or { user = into, updated_at = tp.now() }
    m.user = into
    if rank(f.held) > rank(m.held) then m.held, m.tier_since = f.held, f.tier_since end
    if f.paid_until and (m.paid_until == nil or f.paid_until > m.paid_until) then
      m.paid_tier = (m.paid_until and m.paid_until > tp.now() and rank(m.paid_tier) > rank(f.paid_tier))
        and m.paid_tier or f.paid_tier
      m.paid_until = f.paid_until
    end
    put(m)
    tp.db.exec("DELETE FROM tiers_members WHERE user = ?", from)
    tp.jobs.cancel("paid:" .. from)
    paid_job(m)
  end
  standing.settle(into, "merge", false, true)
  return { ledger = moved }
end

---@param from string
---@param into string
---@param merge_id integer
---@return {ledger: integer} entries given back
function merge.member_unmerge(from, into, merge_id)
  if not tpmerge.begin_undo("tiers_merges", from, into, merge_id) then return { ledger = 0 } end
  local back = tp.db.exec([[UPDATE tiers_ledger SET user = ?2 WHERE user = ?3 AND id IN
    (SELECT row_id FROM tiers_merge_moves WHERE merge_id = ?1 AND kind = 'ledger')]], merge_id, from, into)
  tp.db.exec([[UPDATE tiers_paid SET user = ?2 WHERE user = ?3 AND order_id IN
    (SELECT row_id FROM tiers_merge_moves WHERE merge_id = ?1 AND kind = 'paid')]], merge_id, from, into)
  local prior = tp.db.one("SELECT from_row, into_row FROM tiers_merge_prior WHERE merge_id = ?", merge_id)
  if prior and prior.from_row then put(tp.json.decode(prior.from_row)) end
  if prior and prior.into_row then
    put(tp.json.decode(prior.into_row))
  elseif prior and prior.from_row then
    tp.db.exec("DELETE FROM tiers_members WHERE user = ?", into)
  end
  tp.db.exec("DELETE FROM tiers_merge_moves WHERE merge_id = ?", merge_id)
  tp.db.exec("DELETE FROM tiers_merge_prior WHERE merge_id = ?", merge_id)
  paid_job(row_of(from))
  paid_job(row_of(into))
  if row_of(from) then standing.settle(from, "unmerge", false, true) end
  if row_of(into) then standing.settle(into, "unmerge", false, true) end
  return { ledger = back }
end

return merge
