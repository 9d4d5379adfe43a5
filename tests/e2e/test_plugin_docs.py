"""
test_plugin_docs.py - every built-in plugin has its README, and every export
another plugin, the SDK or a campaign script calls by name is in its
plugin's README (issue 18: catalog, whose sku export every commerce plugin
calls, had none). No host: the files only.
"""
import os
import re

from harness import SRC, run

PLUGINS = os.path.join(SRC, "plugins")
CALL = re.compile(r"""tp\.call\(\s*["']([a-z_]+)["']\s*,\s*["']([a-z_]+)["']""")


def plugin_names():
    return sorted(n for n in os.listdir(PLUGINS) if os.path.isfile(os.path.join(PLUGINS, n, "plugin.lua")))


def lua_files():
    for top in ("plugins", "sdk", "scripts"):
        for root, _, files in os.walk(os.path.join(SRC, top)):
            for f in files:
                if f.endswith(".lua"):
                    yield os.path.join(root, f)


def test_every_plugin_has_a_readme_titled_with_its_name():
    for name in plugin_names():
        path = os.path.join(PLUGINS, name, "README.md")
        assert os.path.isfile(path), "plugins/%s has no README.md" % name
        with open(path) as f:
            first = f.readline()
        assert first.startswith("# %s" % name), (name, first)


def test_every_export_called_by_name_is_in_its_readme():
    called = {}
    for path in lua_files():
        with open(path) as f:
            for plugin, export in CALL.findall(f.read()):
                called.setdefault((plugin, export), os.path.relpath(path, SRC))
    names = set(plugin_names())
    missing = []
    for (plugin, export), where in sorted(called.items()):
        if plugin not in names:
            continue  # a test's helper plugin, or a campaign's
        with open(os.path.join(PLUGINS, plugin, "README.md")) as f:
            if "`%s" % export not in f.read():
                missing.append("%s.%s (called in %s)" % (plugin, export, where))
    assert not missing, "exports called but not in their README: " + "; ".join(missing)


if __name__ == "__main__":
    run(globals())
