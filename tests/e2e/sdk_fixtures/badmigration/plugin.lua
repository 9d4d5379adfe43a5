-- expect: migration 2: no such table: badmigration_missing
return {
  name = "badmigration", version = "1.0.0",
  migrations = {
    [[CREATE TABLE badmigration_items (
        id INTEGER PRIMARY KEY,
        note TEXT)]],
    "INSERT INTO badmigration_missing VALUES (1)", -- @ERROR@
  },
}
