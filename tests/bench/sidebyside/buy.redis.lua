-- buy.redis.lua - the flash-sale buy as one Redis script (EVALSHA): the same
-- checks and writes as tidepool's POST /flash-sales/{id}/buy, atomic because
-- Redis runs a script alone. Loaded by tests/bench/sidebyside.sh (SCRIPT LOAD).
--
-- KEYS[1] sale:<id>           hash: status sku price_fen quantity remaining per_user_limit
--                             per_order_limit starts_at ends_at unpaid_timeout_seconds stacks
-- KEYS[2] sale:<id>:buyers    hash: user -> units bought from the sale (the per-user limit)
-- KEYS[3] order:seq           the last order id (INCR)
-- ARGV    user, qty, now (epoch seconds), sale id, max unpaid orders per user
--
-- Writes, when every check passes: buyers[user] += qty, sale.remaining -= qty,
-- sku:<code>.stock -= qty, order:<id> (the order and its one line, as a hash),
-- orders:unpaid:<user> (set of the user's unpaid order ids) and orders:due (zset
-- pay_deadline -> order id: the unpaid-timeout job). Returns
--   {201, id, created_at, pay_deadline, sku, title, product_id, list_price_fen, unit_price_fen}
-- or {status, code, message} for a refusal (nothing written).
local user, qty, now, sale_id = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local max_unpaid = tonumber(ARGV[5])

local s = redis.call('HMGET', KEYS[1], 'status', 'sku', 'price_fen', 'remaining', 'per_user_limit',
  'per_order_limit', 'starts_at', 'ends_at', 'unpaid_timeout_seconds', 'stacks')
if s[1] ~= 'active' then return {404, 'sale_not_found', 'no such flash sale'} end
local sku, price, remaining = s[2], tonumber(s[3]), tonumber(s[4])
local per_user, per_order = tonumber(s[5]), tonumber(s[6])
local starts_at, ends_at, timeout = tonumber(s[7]), tonumber(s[8]), tonumber(s[9])
if remaining == 0 then return {409, 'sold_out', 'this flash sale is sold out'} end
if now < starts_at then return {409, 'not_started', 'this flash sale has not started'} end
if now >= ends_at then return {409, 'ended', 'this flash sale has ended'} end
if qty > per_order then return {409, 'order_limit_exceeded', 'too many per order'} end

-- the per-user limit
local bought = tonumber(redis.call('HGET', KEYS[2], user) or '0')
if bought + qty > per_user then return {409, 'limit_reached', 'per-user limit reached'} end
-- the sale's own quantity
if remaining < qty then return {409, 'sold_out', 'fewer units left than asked for'} end
-- the orders plugin's cap on unpaid orders
local unpaid_key = 'orders:unpaid:' .. user
if redis.call('SCARD', unpaid_key) >= max_unpaid then
  return {409, 'too_many_unpaid_orders', 'pay or cancel an unpaid order first'}
end
-- the catalog's stock, on a product that is on sale
local sku_key = 'sku:' .. sku
local k = redis.call('HMGET', sku_key, 'stock', 'product_id', 'title', 'price_fen', 'product_status')
if not k[1] then return {404, 'sku_not_found', 'no such sku'} end
if k[5] ~= 'on_sale' then return {409, 'not_on_sale', 'sku is not on sale'} end
if tonumber(k[1]) < qty then return {409, 'sold_out', 'the product is out of stock'} end

-- every check passed: the writes
redis.call('HINCRBY', KEYS[2], user, qty)
redis.call('HINCRBY', KEYS[1], 'remaining', -qty)
redis.call('HINCRBY', sku_key, 'stock', -qty)
local id = redis.call('INCR', KEYS[3])
local amount = qty * price
local deadline = now + timeout
redis.call('HSET', 'order:' .. id, 'user', user, 'status', 'pending_payment',
  'items_fen', amount, 'discount_fen', 0, 'total_fen', amount, 'paid_fen', 0,
  'campaign_plugin', 'flash_sale', 'campaign_id', sale_id, 'campaign_stacks', s[10],
  'created_at', now, 'pay_deadline', deadline, 'stock_held', 1,
  'line_sku', sku, 'line_product_id', k[2], 'line_title', k[3], 'line_qty', qty,
  'line_list_price_fen', k[4], 'line_unit_price_fen', price, 'line_amount_fen', amount,
  'line_discount_fen', 0, 'line_paid_fen', amount)
redis.call('SADD', unpaid_key, id)
redis.call('ZADD', 'orders:due', deadline, id)
return {201, id, now, deadline, sku, k[3], tonumber(k[2]), tonumber(k[4]), price}
