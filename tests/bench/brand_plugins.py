"""Prints the demo brand's plugins table (scripts/demo/tidepool.conf.lua,
leaf_plugins), for a benchmark that runs a buy as a brand with every plugin
installed runs it (flash_sale.sh WITH_BRAND=1). The table is read from the demo
config itself, so the two cannot drift; env() calls stay as they are (the
host's config gives env)."""
import os
import sys

CONF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "demo",
                    "tidepool.conf.lua")
text = open(CONF, encoding="utf-8").read()
head = "local function leaf_plugins()\n  return "
start = text.find(head)
end = text.find("\n  }\nend\n", start)
if start < 0 or end < 0:
    sys.exit("brand_plugins: no leaf_plugins() { return {...} } in %s" % CONF)
print(text[start + len(head):end + len("\n  }")])
