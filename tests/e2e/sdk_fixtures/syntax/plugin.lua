-- expect: unexpected symbol near '='
return {
  name = "syntax", version = "1.0.0",
  routes = {
    { method = "GET", path = "/syntax", handler = function(req)
        local n = = 1 -- @ERROR@
        return { n = n }
      end },
  },
}
