-- requires lib.cyc_b, which requires this module again: a cycle
local b = require("lib.cyc_b")
return { b = b }
