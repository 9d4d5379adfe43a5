-- fails while loading, every time
error("flaky exploded while loading")
