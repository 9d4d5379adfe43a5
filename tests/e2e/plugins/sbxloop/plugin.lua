---@diagnostic disable: undefined-global
-- sbxloop: never finishes loading. The host must give up at its load budget
-- (limits.load_instructions), report it, and serve the other plugins.
while true do end
return { name = "sbxloop", version = "1.0.0", routes = {} }
