---@diagnostic disable: undefined-global
-- balancewatch: a subscriber used only by presale's tests. It records each
-- presale.balance_due (the reminder notify turns into a message) and each
-- order.cancelled, to show what was announced and when.

local function record(ev)
  local d = ev.data
  tp.db.exec([[INSERT INTO balancewatch_seen (name, order_id, user, reminder, balance_fen, reason, deposit, at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)]], ev.name, d.order_id or (d.order and d.order.id), d.user or (d.order and d.order.user),
    d.reminder, d.balance_fen, d.reason, d.deposit, tp.now())
end

return {
  name = "balancewatch",
  version = "1.0.0",
  migrations = {
    [[CREATE TABLE balancewatch_seen (id INTEGER PRIMARY KEY, name TEXT, order_id INTEGER, user TEXT, reminder TEXT,
      balance_fen INTEGER, reason TEXT, deposit TEXT, at INTEGER);]],
  },
  routes = {},
  subscribe = { ["presale.balance_due"] = record, ["order.cancelled"] = record, ["order.deposit_paid"] = record },
}
