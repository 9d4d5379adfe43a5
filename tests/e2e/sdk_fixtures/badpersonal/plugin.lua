-- expect: personal_jobs[2] must name one of the plugin's jobs
return {
  name = "badpersonal",
  version = "1.0.0",
  jobs = { reply = function() end },
  personal_jobs = { "reply", "replies" }, -- @ERROR@
}
