-- tp.customer: what a mechanic may ask about a buyer. "New users only" rules
-- (a group buy's joiners, a bargain's helpers, a referral binding, a friend's
-- assist) all ask the orders plugin the same question; this is that question,
-- with one answer when orders cannot give it: the rule is never let through
-- silently.

local customer = {}

---True if user has never paid an order in this shop, as the orders plugin
---counts it (`tp.call("orders", "customer", user).paid_orders == 0`). When
---orders cannot answer (not enabled, or it failed), ends the invocation with
---status and code (default 503 new_user_check_unavailable) and message.
---@param user string
---@param status integer?
---@param code string?
---@param message string?
---@return boolean
function customer.is_new(user, status, code, message)
  local ok, answer = pcall(tp.call, "orders", "customer", user)
  if not ok or type(answer) ~= "table" or math.type(answer.paid_orders) ~= "integer" then
    local err = type(answer) == "table" and answer.message or answer
    tp.log("warn", "orders.customer failed", { error = tostring(err) })
    tp.fail(status or 503, code or "new_user_check_unavailable",
      message or "cannot tell whether you are a new user right now; try again later")
  end
  return answer.paid_orders == 0
end

return customer
