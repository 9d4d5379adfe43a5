-- expect: warning: every row written to slowcheck_tickets builds a temporary b-tree
return {
  name = "slowcheck", version = "1.0.0",
  migrations = {
    [[
    CREATE TABLE slowcheck_tickets ( -- @ERROR@
      id INTEGER PRIMARY KEY,
      state TEXT NOT NULL CHECK (state IN ('open', 'won', 'lost')));
    CREATE TABLE slowcheck_draws (
      id INTEGER PRIMARY KEY,
      state TEXT NOT NULL CHECK (state = 'open' OR state = 'drawn' OR state = 'void'),
      kind TEXT NOT NULL CHECK (kind IN ('daily', 'weekly')));
    ]],
  },
}
