---@diagnostic disable: undefined-global
-- viewed: the callee of tests/e2e/test_jsonview.py. Its exports return what
-- viewer reads through tp.call_view (JSON views) and through tp.call (copies).

local exports = {}

-- every kind of value JSON holds, and the keys that need escaping
function exports.order()
  return {
    id = 42, user = "u-1", title = "茶 · 乌龙", note = 'say "hi" \\ \n\t\1 end',
    total_fen = 9900, ratio = 0.25, big = 9007199254740993, neg = -7,
    paid = false, held = true, nothing = tp.json.null,
    lines = { { sku = "tea-1", qty = 2 }, { sku = "tea-2", qty = 1, tags = tp.json.array({}) } },
    empty = tp.json.array({}), obj = {},
    sparse = { [5] = "five", [7] = "seven" },
    ['key with "quote"'] = "q", ["键"] = "值",
  }
end

function exports.several() return 7, { a = 1 }, "s" end

function exports.nonplain() return { f = function() end } end

function exports.fail() tp.fail(409, "not_now", "not now", { retry = 3 }) end

-- a view passed as an argument arrives here as tables
function exports.describe(t)
  return { type = type(t), id = t.id, lines = #t.lines, title = t.title,
           meta = getmetatable(t) == nil }
end

function exports.echo(t) return t end

-- a view this plugin holds, returned: to a tp.call caller it arrives as tables
function exports.relay() return tp.call_view("viewend", "thing") end

return {
  name = "viewed",
  version = "1.0.0",
  exports = exports,
}
