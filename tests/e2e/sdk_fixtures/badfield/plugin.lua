-- expect: unknown manifest field 'bogus' (known: name, version, description, migrations, routes, jobs, personal_jobs, subscribe, exports, setup, track)
return {
  name = "badfield",
  version = "1.0.0",
  bogus = true, -- @ERROR@
  routes = {},
}
