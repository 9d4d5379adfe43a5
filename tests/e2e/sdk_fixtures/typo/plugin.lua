-- expect: unknown manifest field 'rutes' (did you mean 'routes'?)
return {
  name = "typo",
  version = "1.0.0",
  rutes = {}, -- @ERROR@
}
