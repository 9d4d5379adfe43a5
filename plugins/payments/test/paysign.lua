-- paysign: signs a WeChat Pay-shaped notify as plugins/payments verifies it,
-- in plain Lua 5.4, for the payments kit tests (the test kit has no crypto of
-- its own). Not a test file: payments_test.lua loads it with dofile.
--   Wechatpay-Signature = base64(HMAC-SHA256(secret, ts .. "\n" .. nonce .. "\n" .. body .. "\n"))

local M = {}

local K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

local M32 = 0xffffffff

local function rotr(x, n) return ((x >> n) | (x << (32 - n))) & M32 end

---SHA-256 of s, as 32 raw bytes.
function M.sha256(s)
  local h = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 }
  local padded = s .. "\128" .. string.rep("\0", (55 - #s) % 64) .. string.pack(">I8", #s * 8)
  for block = 1, #padded, 64 do
    local w = {}
    for i = 0, 15 do w[i] = string.unpack(">I4", padded, block + i * 4) end
    for i = 16, 63 do
      local s0 = rotr(w[i - 15], 7) ~ rotr(w[i - 15], 18) ~ (w[i - 15] >> 3)
      local s1 = rotr(w[i - 2], 17) ~ rotr(w[i - 2], 19) ~ (w[i - 2] >> 10)
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) & M32
    end
    local a, b, c, d, e, f, g, hh = table.unpack(h)
    for i = 0, 63 do
      local t1 = (hh + (rotr(e, 6) ~ rotr(e, 11) ~ rotr(e, 25)) + ((e & f) ~ (~e & g)) + K[i + 1] + w[i]) & M32
      local t2 = ((rotr(a, 2) ~ rotr(a, 13) ~ rotr(a, 22)) + ((a & b) ~ (a & c) ~ (b & c))) & M32
      hh, g, f, e, d, c, b, a = g, f, e, (d + t1) & M32, c, b, a, (t1 + t2) & M32
    end
    for i, v in ipairs({ a, b, c, d, e, f, g, hh }) do h[i] = (h[i] + v) & M32 end
  end
  return string.pack(">I4I4I4I4I4I4I4I4", table.unpack(h))
end

function M.hmac_sha256(key, data)
  if #key > 64 then key = M.sha256(key) end
  key = key .. string.rep("\0", 64 - #key)
  local ipad = key:gsub(".", function(c) return string.char(c:byte() ~ 0x36) end)
  local opad = key:gsub(".", function(c) return string.char(c:byte() ~ 0x5c) end)
  return M.sha256(opad .. M.sha256(ipad .. data))
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

function M.base64(raw)
  local out = {}
  for i = 1, #raw, 3 do
    local a, b, c = raw:byte(i, i + 2)
    local n = (a << 16) | ((b or 0) << 8) | (c or 0)
    local chars = math.min(#raw - i + 1, 3) + 1   -- 3 bytes: 4 characters, 2: 3, 1: 2
    for j = 1, 4 do
      local six = (n >> (6 * (4 - j))) & 63
      out[#out + 1] = j <= chars and B64:sub(six + 1, six + 1) or "="
    end
  end
  return table.concat(out)
end

function M.signature(secret, timestamp, nonce, body)
  return M.base64(M.hmac_sha256(secret, timestamp .. "\n" .. nonce .. "\n" .. body .. "\n"))
end

---A notify body (raw JSON) for a transaction; fields override the defaults.
---@param f {out_trade_no: string, transaction_id: string, total: integer, event_type: string?, trade_state: string?}
function M.body(f)
  return ([[{"id":"kit-%s","event_type":"%s","resource_type":"encrypt-resource","resource":{"original_type":"transaction","algorithm":"none","plaintext":{"out_trade_no":"%s","transaction_id":"%s","trade_state":"%s","amount":{"total":%d,"currency":"CNY"}}}}]])
    :format(f.transaction_id, f.event_type or "TRANSACTION.SUCCESS", f.out_trade_no, f.transaction_id,
      f.trade_state or "SUCCESS", f.total)
end

---The headers that sign body at timestamp.
function M.headers(secret, timestamp, body, nonce)
  nonce = nonce or "kitnonce0001"
  return { ["Wechatpay-Timestamp"] = tostring(timestamp), ["Wechatpay-Nonce"] = nonce,
           ["Wechatpay-Signature"] = M.signature(secret, tostring(timestamp), nonce, body) }
end

return M
