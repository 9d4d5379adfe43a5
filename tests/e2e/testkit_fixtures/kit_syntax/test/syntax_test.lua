describe("broken", function()
  it("never runs", function()
    expect(1).to_be(1)
  end
end)
