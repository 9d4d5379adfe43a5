---@diagnostic disable: undefined-global
-- wdprobe: approves a referral withdrawal through referral's export and then
-- fails on purpose, so test_wechat_transfer.py can show that a rolled-back
-- approval asks WeChat Pay for nothing (the transfer is an outbox entry of the
-- approval's transaction).

-- POST /wdprobe/approve/{id} {then = "fail" | "commit"}
local function approve(req)
  local w = tp.call("referral", "approve_withdrawal", req.params.id, "wdprobe")
  if type(req.body) ~= "table" or req.body["then"] ~= "commit" then
    tp.fail(409, "changed_my_mind", "the approver fails after approving")
  end
  return 200, w
end

return {
  name = "wdprobe",
  version = "1.0.0",
  description = "test helper: an approval that is rolled back after the transfer was asked for",
  routes = {
    { method = "POST", path = "/wdprobe/approve/{id:int}", auth = "admin", handler = approve,
      summary = "Approve a withdrawal through referral, then fail (unless then = commit)",
      body = { type = "object", properties = { ["then"] = { type = "string" } } },
      response = { type = "object" }, errors = { [409] = { "changed_my_mind" } } },
  },
}
