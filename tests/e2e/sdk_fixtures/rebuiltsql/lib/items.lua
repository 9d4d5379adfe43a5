local items = {}

local CHEAP = 1000

function items.cheap()
  return 200, { items = tp.db.query("SELECT id FROM rebuiltsql_items WHERE price_fen < "
    .. CHEAP .. " ORDER BY id") }
end

return items
