---@diagnostic disable: undefined-global
-- evcallee: exports for the tp.call end-to-end tests (test_events.py). Each
-- export writes a row to evcallee_rows first, so the tests can see whether
-- the callee's writes were kept or rolled back.

local function add_row(note)
  local _, id = tp.db.exec("INSERT INTO evcallee_rows (note) VALUES (?)", note)
  return id
end

local exports = {}

function exports.add(note, extra)
  local id = add_row(note)
  return { id = id, note = note, extra = extra, list = { 1, 2, 3 } }, "second result"
end

function exports.add_then_raise(note)
  add_row(note)
  error("callee exploded on " .. note)
end

function exports.add_then_fail(note)
  add_row(note)
  tp.fail(409, "sold_out", "no stock left for " .. note, { sku = note })
end

-- changes its argument: the caller's table must not see it
function exports.mutate(t)
  t.x = 99
  t.added = true
  return t
end

-- calls back into evcaller: a cycle the host must refuse
function exports.ping_back(note)
  add_row(note)
  return tp.call("evcaller", "ping")
end

local function rows()
  return 200, { rows = tp.db.query("SELECT id, note FROM evcallee_rows ORDER BY id") }
end

return {
  name = "evcallee",
  version = "1.0.0",
  migrations = {
    "CREATE TABLE evcallee_rows (id INTEGER PRIMARY KEY, note TEXT NOT NULL);",
  },
  exports = exports,
  routes = {
    { method = "GET", path = "/evcallee/rows", auth = "none", handler = rows },
  },
}
