-- a module of the sbxreq plugin: loaded once, then the same table
local M = { name = "util" }
function M.double(x) return 2 * x end
return M
