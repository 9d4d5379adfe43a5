---@diagnostic disable: undefined-global
-- skupager: a caller used only by tests (test/exports_test.lua; the kit puts
-- <plugin>/test/plugins on the plugin path). Its route hands its query to
-- the catalog's skus_on_sale export as a bulk reader would and answers what
-- came back, or the export's refusal.

local function page(req)
  local limit = req.query.limit
  if limit ~= nil then limit = math.tointeger(tonumber(limit)) or tonumber(limit) or limit end
  local ok, codes, next_after = pcall(tp.call, "catalog", "skus_on_sale", req.query.after, limit)
  if not ok then return 200, { error = { code = codes.code, message = codes.message } } end
  return 200, { codes = codes, next_after = next_after }
end

return {
  name = "skupager",
  version = "1.0.0",
  routes = {
    { method = "GET", path = "/skupager", auth = "admin", handler = page,
      summary = "A page of the catalog's skus_on_sale, for the catalog's tests" },
  },
}
