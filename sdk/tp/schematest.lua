-- tp.schematest: proves that a route's documented body and its validation
-- agree, for `tidepool test` files. It reads the body schema the host serves
-- (GET /v1/{tenant}/openapi.json) and, for each property, sends a valid body
-- broken at that property alone: a required one left out, an integer one
-- below its minimum and above its maximum, an enum one off its list, a string
-- over its maxLength, an array over its maxItems, a value of the wrong type.
-- Each must be 400 invalid_field naming that property, and nothing created.
--
--   require("tp.schematest").walk { path = "/admin/test/flash-sales", method = "post",
--     valid = function() return { sku = ..., ... } end,          -- a fresh valid body
--     count = function() return <rows> end }                      -- what must not grow
--   schematest.body(path, method)  .required(path, method)  .names(path, method)  -- what it serves

local schematest = {}

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

---The cases a property's schema implies: { label, value } (nil: left out).
local function cases(name, p, required)
  local out = {}
  if required then out[#out + 1] = { "left out", nil } end
  if p.type == "integer" then
    out[#out + 1] = { "not an integer", "1" }
    if p.minimum then out[#out + 1] = { "below its minimum", p.minimum - 1 } end
    if p.maximum then out[#out + 1] = { "above its maximum", p.maximum + 1 } end
  elseif p.type == "string" then
    out[#out + 1] = { "not a string", 7 }
    if p.enum then out[#out + 1] = { "off its list", "not-" .. tostring(p.enum[1]) } end
    if p.maxLength then out[#out + 1] = { "over its maxLength", ("x"):rep(p.maxLength + 1) } end
  elseif p.type == "boolean" then
    out[#out + 1] = { "not a boolean", "yes" }
  elseif p.type == "array" then
    out[#out + 1] = { "not a list", "x" }
    if p.maxItems then
      local t = {}
      for i = 1, p.maxItems + 1 do t[i] = "x" end
      out[#out + 1] = { "over its maxItems", t }
    end
  end
  return out
end

---The request body's schema the host serves for method ("post") on path
---("/admin/test/flash-sales"), as walk reads it.
---@param path string
---@param method string
---@return table
function schematest.body(path, method)
  local paths = schematest.paths()
  local op = paths[path] and paths[path][method]
  assert(op and op.requestBody, "the served OpenAPI has no body for " .. method .. " " .. path)
  return op.requestBody.content["application/json"].schema
end

---The paths of the tenant's two OpenAPI documents, the users' and the
---operators', as one table.
---@return table
function schematest.paths()
  local paths = {}
  for _, c in ipairs({ kit.anon(), kit.admin() }) do
    for p, item in pairs(c:get("/openapi.json").body.paths) do paths[p] = item end
  end
  return paths
end

---The body's required fields, sorted ({} when none is).
function schematest.required(path, method)
  local out = {}
  for i, name in ipairs(schematest.body(path, method).required or {}) do out[i] = name end
  table.sort(out)
  return out
end

---The body's property names, sorted.
function schematest.names(path, method)
  local out = {}
  for name in pairs(schematest.body(path, method).properties) do out[#out + 1] = name end
  table.sort(out)
  return out
end

---@param spec {path: string, method: string, valid: fun(): table, count: fun(): integer, skip: table<string, boolean>?}
---@return integer checked how many broken bodies were sent
function schematest.walk(spec)
  local prefix, rest = spec.path:match("^/(%w+)/[^/]+(/.*)$")
  local body = schematest.body(spec.path, spec.method)
  local required = {}
  for _, n in ipairs(body.required or {}) do required[n] = true end
  local client = prefix == "admin" and kit.admin() or kit.anon()
  local names = {}
  for name in pairs(body.properties) do names[#names + 1] = name end
  table.sort(names)
  local checked = 0
  for _, name in ipairs(names) do
    if not (spec.skip and spec.skip[name]) then
      for _, case in ipairs(cases(name, body.properties[name], required[name])) do
        local before = spec.count()
        local b = copy(spec.valid())
        b[name] = case[2]
        local res = client:request(spec.method:upper(), rest, b)
        local err = type(res.body) == "table" and res.body.error
        local field = err and type(err.details) == "table" and err.details.field
        expect({ name, case[1], res.status, err and err.code, field })
          .to_equal({ name, case[1], 400, "invalid_field", name })
        expect(spec.count()).to_be(before)
        checked = checked + 1
      end
    end
  end
  return checked
end

return schematest
