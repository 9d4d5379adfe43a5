---@diagnostic disable: undefined-global
-- viewend: the end of a chain viewer -> viewed -> viewend (tests/e2e/test_jsonview.py).

return {
  name = "viewend",
  version = "1.0.0",
  exports = {
    thing = function() return { x = 1, y = tp.json.array({ 2, 3 }) } end,
  },
}
