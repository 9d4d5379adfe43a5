-- caller: a test plugin that calls out with tp.http.request as its route's
-- body says, and keeps every reply its job gets (tests/e2e/test_http_out.py).
return {
  name = "caller",
  version = "1.0.0",
  migrations = {
    "CREATE TABLE caller_replies (id INTEGER PRIMARY KEY, call_id INTEGER NOT NULL, reply TEXT NOT NULL)",
  },
  jobs = {
    replied = function(job)
      tp.db.exec("INSERT INTO caller_replies (call_id, reply) VALUES (?, ?)", job.payload.call_id,
        tp.json.encode(job.payload))
    end,
  },
  routes = {
    { method = "POST", path = "/caller/calls", auth = "none", status = 201,
      handler = function(req)
        local b = req.body or {}
        local ids = {}
        for _ = 1, b.times or 1 do
          ids[#ids + 1] = tp.http.request {
            to = b.to, path = b.path, method = b.method, headers = b.headers, body = b.body, json = b.json,
            key = b.key, on_reply = not b.no_reply and "replied" or nil, context = b.context,
            attempts = b.attempts,
          }
        end
        if b.fail_after then tp.fail(409, "rolled_back", "the handler failed after calling") end
        if b.spin then  -- a long handler (test_sync.py): SQLite counts to b.spin
          tp.db.one([[WITH RECURSIVE caller_c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM caller_c WHERE x < ?)
            SELECT count(*) AS n FROM caller_c]], b.spin)
        end
        return 201, { id = ids[1], ids = ids }
      end },
    { method = "POST", path = "/caller/crypto", auth = "none",
      handler = function(req)
        local b = req.body
        local ok, out, err = pcall(tp.crypto[b.fn], b.to, b.secret, table.unpack(b.args or {}))
        return 200, { ok = ok, out = out, err = ok and err or tostring(out) }
      end },
    { method = "GET", path = "/caller/replies", auth = "none",
      handler = function()
        local rows = tp.db.query("SELECT reply FROM caller_replies ORDER BY id")
        local items = {}
        for i, r in ipairs(rows) do items[i] = tp.json.decode(r.reply) end
        return { items = tp.json.array(items) }
      end },
  },
}
