kit.plugins { kit_syntax = {}, no_such_plugin = {} }

it("never runs", function()
  expect(1).to_be(1)
end)
