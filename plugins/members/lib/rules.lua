---@diagnostic disable: undefined-global
-- members/lib/rules.lua: rule tags stay true. A rule tag's rule is a segment
-- rule (lib/segment.lua); the tag is on exactly the active members it matches.
-- Two paths keep it so: refresh(n) re-judges one member after anything that
-- changes its facts (a paid or refunded order, an identify, a merge, a profile
-- change), and the sweep re-judges everyone in slices of SLICE members by
-- number, one job run each, at the brand's rules_hour every night (rules
-- that speak of time, "no order for 90 days", change with the clock alone)
-- and whenever a rule tag is created or its rule changes.

local segment = require("lib.segment")

local rules = {}

local SLICE = 5000

---The tag's rule compiled, or nil when it no longer compiles (a segment it
---names was changed): logged and skipped, so one broken rule never stops an
---order's facts or the other rule tags.
local function compiled(t)
  local ok, s = pcall(segment.compile, tp.json.decode(t.rule), "rule")
  if ok then return s end
  tp.log("warn", "a rule tag's rule does not compile; the tag is left as it is",
    { tag_id = t.id, error = type(s) == "table" and s.message or tostring(s) })
  return nil
end

local function rule_tags(only)
  if only then
    return tp.db.query("SELECT id, rule FROM members_tags WHERE kind = 'rule' AND id = ?", only)
  end
  return tp.db.query("SELECT id, rule FROM members_tags WHERE kind = 'rule' ORDER BY id")
end

---Re-judges member n against every rule tag.
---@param n integer
function rules.refresh(n)
  local now = tp.now()
  for _, t in ipairs(rule_tags()) do
    local s = compiled(t)
    if s and segment.matches(s, n) then
      tp.db.exec([[INSERT INTO members_member_tags (tag_id, n, source, assigned_at)
        VALUES (?, ?, 'rule', ?) ON CONFLICT (tag_id, n) DO NOTHING]], t.id, n, now)
    elseif s then
      tp.db.exec("DELETE FROM members_member_tags WHERE tag_id = ? AND n = ?", t.id, n)
    end
  end
end

---One slice of the sweep: members numbered (lo, lo + SLICE].
---@param tag integer? one rule tag, or all
---@param lo integer
---@return boolean more slices follow
function rules.sweep_slice(tag, lo)
  local hi = lo + SLICE
  local now = tp.now()
  for _, t in ipairs(rule_tags(tag)) do
    local s = compiled(t)
    if not s then goto next_tag end
    local p = s.params
    p.tag, p.lo, p.hi, p.assigned = t.id, lo, hi, now
    local matching = "SELECT m.n FROM members_members m WHERE m.n > :lo AND m.n <= :hi"
      .. " AND m.state = 'active' AND " .. s.where
    tp.db.exec("DELETE FROM members_member_tags WHERE tag_id = :tag AND n > :lo AND n <= :hi"
      .. " AND n NOT IN (" .. matching .. ")", p)
    tp.db.exec("INSERT INTO members_member_tags (tag_id, n, source, assigned_at) SELECT :tag, n, 'rule',"
      .. " :assigned FROM (" .. matching .. ") WHERE true ON CONFLICT (tag_id, n) DO NOTHING", p)
    ::next_tag::
  end
  local top = tp.db.one("SELECT max(n) AS n FROM members_members").n or 0
  return hi < top
end

---Starts a sweep (all rule tags, or one) from the first member.
---@param tag integer?
function rules.start_sweep(tag)
  tp.jobs.schedule("sweep", { tag = tag, lo = 0 },
    { after = 0, key = tag and ("sweep:" .. tag) or "sweep:all" })
end

---Job "sweep" {tag?, lo}: one slice, then the next.
---@param job TpJob
function rules.sweep_job(job)
  local p = job.payload
  if rules.sweep_slice(p.tag, p.lo) then
    tp.jobs.schedule("sweep", { tag = p.tag, lo = p.lo + SLICE },
      { after = 0, key = (p.tag and ("sweep:" .. p.tag) or "sweep:all") .. ":" .. (p.lo + SLICE) })
  end
end

return rules
