-- A fixture of the test kit's own test: greetings stored per user.
return {
  name = "kit_pass", version = "1.0.0",
  migrations = {
    "CREATE TABLE kit_pass_greetings (id INTEGER PRIMARY KEY, user TEXT NOT NULL, text TEXT NOT NULL)",
  },
  routes = {
    { method = "POST", path = "/greetings", auth = "user", handler = function(req)
        if type(req.body) ~= "table" or type(req.body.text) ~= "string" then
          tp.fail(400, "invalid_body", "text is required")
        end
        local row = tp.db.one("INSERT INTO kit_pass_greetings (user, text) VALUES (?, ?) RETURNING id",
          req.user, (tp.config().prefix or "") .. req.body.text)
        return 201, { id = row.id, user = req.user, text = (tp.config().prefix or "") .. req.body.text }
      end },
    { method = "GET", path = "/greetings/{id:int}", auth = "none", handler = function(req)
        local row = tp.db.one("SELECT id, user, text FROM kit_pass_greetings WHERE id = ?", req.params.id)
        if not row then tp.fail(404, "not_found", "no such greeting") end
        return row
      end },
    { method = "GET", path = "/greetings", auth = "admin", handler = function()
        return { count = tp.db.one("SELECT count(*) AS n FROM kit_pass_greetings").n }
      end },
  },
}
