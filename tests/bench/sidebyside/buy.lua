-- buy.lua - POST /v1/<tenant>/flash-sales/<id>/buy on nginx + lua-nginx-module,
-- for tests/bench/sidebyside.sh. Per request, like tidepool's buy: verify the
-- bearer token (v1.<tenant>.<user>.<exp>.<sig>, sig = unpadded base64url
-- HMAC-SHA-256 with the tenant's secret; see core/base/token.h), read and decode the
-- JSON body, run the buy as one Redis script (EVALSHA buy.redis.lua, our own
-- RESP client in resp.lua) and answer the order as JSON (201) or an error.
-- HMAC-SHA-256 is OpenSSL's HMAC() through LuaJIT's FFI: nginx links libcrypto,
-- and Debian's lua-nginx-module itself only offers ngx.hmac_sha1.
local ffi = require("ffi")
local cjson = require("cjson.safe")
local b64 = require("ngx.base64")
local resp = require("resp")

pcall(ffi.cdef, [[
typedef struct evp_md_st EVP_MD;
const EVP_MD *EVP_sha256(void);
unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len,
                    const unsigned char *d, size_t n, unsigned char *md, unsigned int *md_len);
int CRYPTO_memcmp(const void *a, const void *b, size_t len);
]])
local C = ffi.C
local md_buf, md_len = ffi.new("unsigned char[64]"), ffi.new("unsigned int[1]")
local sha256 = C.EVP_sha256()

local M = {}
local cfg = { tenant = "bench", secret = "", sha = "", script = "", max_unpaid = 1000000 }

function M.configure(opts)
  for k, v in pairs(opts) do cfg[k] = v end
  if opts.script_file then  -- for EVAL when Redis has lost the script (NOSCRIPT)
    local f = assert(io.open(opts.script_file))
    cfg.script = f:read("*a")
    f:close()
  end
  resp.configure({ port = opts.redis_port })
end

local function fail(status, code, message)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.print(cjson.encode({ error = { code = code, message = message } }))
end

-- the user of a valid token for tenant, or nil, code
local function verify(token, tenant)
  if #token > 512 then return nil, "invalid_token" end
  local v, t, user, exp, sig = token:match("^(v1)%.([%w_-]+)%.([%w_:@-]+)%.(%d+)%.([%w_-]+)$")
  if not v or #t > 64 or #user > 64 or #sig ~= 43 then return nil, "invalid_token" end
  if t ~= tenant then return nil, "wrong_tenant" end
  local signed = #token - 44
  C.HMAC(sha256, cfg.secret, #cfg.secret, token, signed, md_buf, md_len)
  local want = b64.encode_base64url(ffi.string(md_buf, md_len[0]))
  if C.CRYPTO_memcmp(want, sig, 43) ~= 0 then return nil, "invalid_token" end
  if tonumber(exp) <= ngx.time() then return nil, "token_expired" end
  return user
end

function M.handle()
  if ngx.req.get_method() ~= "POST" then return fail(405, "method_not_allowed", "POST only") end
  local tenant, sale_id = ngx.var[1], ngx.var[2]
  if tenant ~= cfg.tenant then return fail(404, "tenant_not_found", "no such tenant") end
  local auth = ngx.var.http_authorization
  local token = auth and auth:match("^Bearer (.+)$")
  if not token then return fail(401, "unauthorized", "a bearer token is required") end
  local user, why = verify(token, tenant)
  if not user then return fail(401, why, "the bearer token does not verify") end

  ngx.req.read_body()
  local raw = ngx.req.get_body_data()
  local body = raw and cjson.decode(raw) or {}
  if type(body) ~= "table" then return fail(400, "invalid_body", "a JSON object is required") end
  local qty = body.qty or 1
  if type(qty) ~= "number" or qty < 1 or qty > 1000 or qty % 1 ~= 0 then
    return fail(400, "invalid_field", "qty must be an integer from 1 to 1000")
  end

  local now = ngx.time()
  local keys = { "sale:" .. sale_id, "sale:" .. sale_id .. ":buyers", "order:seq" }
  local r, err, redis_err = resp.call("EVALSHA", cfg.sha, 3, keys[1], keys[2], keys[3],
    user, qty, now, sale_id, cfg.max_unpaid)
  if r == nil and redis_err and err:find("^NOSCRIPT") then
    r, err = resp.call("EVAL", cfg.script, 3, keys[1], keys[2], keys[3], user, qty, now, sale_id,
      cfg.max_unpaid)
  end
  if type(r) ~= "table" then
    ngx.log(ngx.ERR, "redis: ", tostring(err))
    return fail(500, "store_error", "the buy could not be stored")
  end
  if r[1] ~= 201 then return fail(r[1], r[2], r[3]) end
  local id, created, deadline, sku, title, product_id, list_price, price =
    r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9]
  local amount = qty * price
  ngx.status = 201
  ngx.header["Content-Type"] = "application/json"
  ngx.print(cjson.encode({
    id = id, user = user, status = "pending_payment", items_fen = amount, discount_fen = 0,
    total_fen = amount, paid_fen = 0, refund_requested_fen = 0, refunded_fen = 0,
    attribution = {}, stock_held = true,
    late_payment = false, held = false, created_at = created, pay_deadline = deadline,
    campaign = { plugin = "flash_sale", id = sale_id, stacks_with_coupon = false },
    lines = { { sku = sku, product_id = product_id, title = title, qty = qty,
                list_price_fen = list_price, unit_price_fen = price, amount_fen = amount,
                discount_fen = 0, paid_fen = amount } },
  }))
end

return M
