-- resp.lua - a minimal Redis (RESP2) client on ngx.socket.tcp, written for
-- tests/bench/sidebyside.sh (Debian packages no lua-resty-redis). One command
-- per call; the connection goes back to the cosocket keepalive pool after
-- every reply (setkeepalive), so requests reuse connections to Redis.
local M = {}

local tcp, concat, tostring, tonumber, sub, byte = ngx.socket.tcp, table.concat, tostring, tonumber,
  string.sub, string.byte

local host, port, timeout_ms = "127.0.0.1", 6379, 5000
local pool_size, idle_ms = 1024, 60000

function M.configure(opts)
  host, port = opts.host or host, opts.port or port
  pool_size = opts.pool_size or pool_size
end

-- one RESP value from sock: string | integer | array | nil (null), or nil, err
local function read_reply(sock)
  local line, err = sock:receive("*l")
  if not line then return nil, err end
  local t = byte(line, 1)
  if t == 43 then        -- '+' simple string
    return sub(line, 2)
  elseif t == 45 then    -- '-' error
    return nil, sub(line, 2), true
  elseif t == 58 then    -- ':' integer
    return tonumber(sub(line, 2))
  elseif t == 36 then    -- '$' bulk string
    local n = tonumber(sub(line, 2))
    if n < 0 then return ngx.null end
    local data, e = sock:receive(n + 2)
    if not data then return nil, e end
    return sub(data, 1, n)
  elseif t == 42 then    -- '*' array
    local n = tonumber(sub(line, 2))
    if n < 0 then return ngx.null end
    local out = {}
    for i = 1, n do
      local v, e, is_redis_err = read_reply(sock)
      if v == nil then
        if not is_redis_err then return nil, e end
        v = { err = e }  -- an error inside an array is a value
      end
      out[i] = v
    end
    return out
  end
  return nil, "bad reply: " .. line
end

-- M.call(arg1, arg2, ...) -> reply, or nil, err, is_redis_error
function M.call(...)
  local n = select("#", ...)
  local parts, j = { "*", n, "\r\n" }, 3
  for i = 1, n do
    local a = tostring((select(i, ...)))
    parts[j + 1], parts[j + 2], parts[j + 3], parts[j + 4], parts[j + 5] = "$", #a, "\r\n", a, "\r\n"
    j = j + 5
  end
  local sock = tcp()
  sock:settimeout(timeout_ms)
  local ok, err = sock:connect(host, port)
  if not ok then return nil, "connect: " .. tostring(err) end
  ok, err = sock:send(parts)
  if not ok then sock:close(); return nil, "send: " .. tostring(err) end
  local v, e, is_redis_err = read_reply(sock)
  if v == nil and not is_redis_err then sock:close(); return nil, e end
  sock:setkeepalive(idle_ms, pool_size)
  return v, e, is_redis_err
end

return M
