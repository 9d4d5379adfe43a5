-- A test-only subscriber: records every signin.checked_in it is given.
return {
  name = "checkin_probe",
  version = "1.0.0",
  migrations = { [[CREATE TABLE checkin_probe_events (id INTEGER PRIMARY KEY, data TEXT NOT NULL)]] },
  subscribe = {
    ["signin.checked_in"] = function(ev)
      tp.db.exec("INSERT INTO checkin_probe_events (data) VALUES (?)", tp.json.encode(ev.data))
    end,
  },
}
