local a = require("lib.cyc_a")
return { a = a }
