-- The unpaid timeout: an order still pending_payment at its pay_deadline is
-- cancelled and its units go back (lifecycle.cancel, "timeout").
--
-- Why one sweep and not a job per order: a job row cost every checkout about
-- 30k instructions (the row, its AUTOINCREMENT, the scheduler's due and key
-- indexes, the API) and every payment the job's cancel, for the few orders
-- that do expire: in a flash sale most are paid. The pending orders are
-- already in an index of their own (orders_orders_unpaid, on pay_deadline
-- where status = 'pending_payment'), so one job, sweep_unpaid, is kept due at
-- the earliest deadline not yet swept; it is what the Redis peer in
-- tests/bench/sidebyside does with its sorted set of deadlines.
--
-- The sweep turns each order it finds due into the per-order job
-- expire_unpaid, due at once: one order whose cancel fails is retried and
-- dead-lettered alone, as before, and never holds up the others. Then it
-- moves its watermark past them and schedules itself at the next deadline.
--
-- orders_sweep (one row) holds:
--   due          when sweep_unpaid is scheduled (NULL: not scheduled)
--   (swept_deadline, swept_id)  the watermark: every pending order at or
--                below it, in (pay_deadline, id) order, has its job
-- A checkout reads `due` in the statement that counts the user's unpaid
-- orders and writes only when its deadline comes first, nothing is
-- scheduled, or the sweep is overdue by OVERDUE seconds (it died, or its row
-- was lost): the checkout then schedules it now, so the sweep heals itself.
-- A new order is above the watermark: its id is the largest and its deadline
-- is at least now, which the watermark never passes, unless the wall clock
-- stepped back by more than the timeout; such an order gets its own job.

local unpaid = {}

local BATCH = 500     -- orders turned into jobs per sweep run (the rest: the next run, at once)
local OVERDUE = 60    -- seconds past due after which a checkout reschedules the sweep
local KEY = "sweep_unpaid"

---Keeps the sweep due no later than a new order's deadline.
---@param id integer the new order
---@param deadline integer its pay_deadline
---@param sweep {due: integer?, swept_deadline: integer} orders_sweep, as the checkout read it
function unpaid.watch(id, deadline, sweep)
  if deadline < sweep.swept_deadline then  -- below the watermark: the sweep would pass it by
    tp.jobs.schedule("expire_unpaid", { order_id = id }, { at = deadline, key = "unpaid:" .. id })
    return
  end
  local now, due = tp.now(), sweep.due
  if due and due <= deadline and due >= now - OVERDUE then return end
  local at = (due and due < now - OVERDUE) and now or deadline
  tp.jobs.schedule("sweep_unpaid", {}, { at = at, key = KEY })
  tp.db.exec("UPDATE orders_sweep SET due = ? WHERE id = 1", at)
end

---The job sweep_unpaid: every pending order due by now (up to BATCH) gets its
---expire_unpaid job; the sweep is scheduled again at the next deadline.
function unpaid.sweep()
  local now = tp.now()
  local mark = tp.db.one("SELECT swept_deadline AS deadline, swept_id AS id FROM orders_sweep WHERE id = 1")
  local due = tp.db.query([[SELECT id, pay_deadline FROM orders_orders INDEXED BY orders_orders_unpaid
    WHERE status = 'pending_payment' AND (pay_deadline, id) > (?1, ?2) AND pay_deadline <= ?3
    ORDER BY pay_deadline, id LIMIT ?4]], mark.deadline, mark.id, now, BATCH)
  for _, o in ipairs(due) do
    tp.jobs.schedule("expire_unpaid", { order_id = o.id }, { at = o.pay_deadline, key = "unpaid:" .. o.id })
    mark.deadline, mark.id = o.pay_deadline, o.id
  end
  local next = now
  if #due < BATCH then
    local o = tp.db.one([[SELECT pay_deadline FROM orders_orders INDEXED BY orders_orders_unpaid
      WHERE status = 'pending_payment' AND (pay_deadline, id) > (?1, ?2)
      ORDER BY pay_deadline, id LIMIT 1]], mark.deadline, mark.id)
    next = o and o.pay_deadline
  end
  if next then tp.jobs.schedule("sweep_unpaid", {}, { at = next, key = KEY }) end
  tp.db.exec("UPDATE orders_sweep SET due = ?, swept_deadline = ?, swept_id = ? WHERE id = 1",
    next, mark.deadline, mark.id)
end

return unpaid
