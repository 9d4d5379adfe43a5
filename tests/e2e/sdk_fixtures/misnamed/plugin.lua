-- expect: manifest name 'other' does not match its folder 'misnamed'
return {
  version = "1.0.0",
  name = "other", -- @ERROR@
}
