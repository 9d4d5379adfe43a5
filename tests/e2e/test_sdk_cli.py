"""
test_sdk_cli.py - `tidepool new plugin` and `tidepool check`.

- `new plugin NAME --dir DIR` writes DIR/NAME/plugin.lua, README.md and
  test/NAME_test.lua; refuses a name the host would not load and an existing
  folder with exit 2, writing nothing.
- `check` on the scaffold is clean (exit 0), and the scaffold's own test passes
  under `tidepool test`.
- `check` on each fixture in tests/e2e/sdk_fixtures prints exactly one problem
  as `file:line: message`, at the line marked `-- @ERROR@`, with the message of
  its `-- expect:` comment, and exits 1: a syntax error, an unknown manifest
  field, a wrong manifest name, a bad route doc field, a failing migration, a
  route clash, a bad route path and an API called where it is not allowed at
  load.
- `check` warns (exit 0) of a table whose CHECK has an IN list of three or more
  values, at its CREATE TABLE line, and of no other table.
- Usage errors exit 2.
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, HERE, SANITIZER_MARKERS, SRC, Host, run, tenant  # noqa: E402

FIXTURES = os.path.join(HERE, "sdk_fixtures")
WORK = tempfile.mkdtemp(prefix="tidepool-e2e-sdkcli-")


def tidepool(*args, cwd=None):
    out = subprocess.run([BIN] + list(args), capture_output=True, timeout=120, cwd=cwd)
    err = out.stderr.decode("utf-8")
    for marker in SANITIZER_MARKERS:
        assert marker not in err, "sanitizer report from tidepool %s:\n%s" % (args, err)
    return out.returncode, out.stdout.decode("utf-8"), err


def test_config_finds_the_sdk_beside_any_plugin_dir_and_loads_every_plugin():
    """The GUIDE's pattern, the brand's own folder first: the SDK is still found
    (beside plugins/), so coupons loads; `config` says where and that it does."""
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "mine"))
        conf = os.path.join(d, "c.lua")
        with open(conf, "w") as f:
            f.write('return { plugin_dirs = { "%s/mine", "%s/plugins" }, tenants = { { id = "t",'
                    ' token_secret = "0123456789abcdef0123", plugins = { catalog = {},'
                    ' coupons = {} } } } }' % (d, SRC))
        code, out, _ = tidepool("config", "--config", conf)
        assert code == 0, out
        assert "sdk_dir: %s/plugins/../sdk\n" % SRC in out, out
        assert "plugin t/coupons: ok (version " in out, out


def test_config_says_which_plugin_would_not_serve_and_why():
    with tempfile.TemporaryDirectory() as d:
        conf = os.path.join(d, "c.lua")
        with open(conf, "w") as f:
            f.write('return { plugin_dirs = { "%s/plugins", "%s/plugins" }, sdk_dir = "%s/nosdk",'
                    ' tenants = { { id = "t", token_secret = "0123456789abcdef0123", plugins = {'
                    ' probe = {}, coupons = {} } } } }' % (SRC, HERE, d))
        code, out, _ = tidepool("config", "--config", conf)
        assert code == 1, out
        assert "sdk_dir: %s/nosdk  (not a folder" % d in out, out
        assert "plugin t/probe: ok" in out, out   # it needs no SDK
        assert "plugin t/coupons: FAILED: " in out and "module 'tp." in out, out
        assert "1 plugin would not serve" in out, out


def test_serve_names_each_plugin_that_is_not_serving():
    h = Host(tenants=[tenant("t1", {"probe": {}, "coupons": {}})],
             extra={"sdk_dir": os.path.join(WORK, "nosdk")}, name="sdktrap")
    try:
        h.start()
        line = h.wait_log(lambda l: l.get("msg") == "plugin not serving", what="plugin not serving")
        assert line["tenant"] == "t1" and line["plugin"] == "coupons", line
        assert "module 'tp." in line["error"], line
        listening = [l for l in h.logs() if l.get("msg") == "listening"]
        assert listening and listening[0]["plugins_failed"] == 1, listening
    finally:
        h.stop()


def test_new_plugin_writes_the_scaffold():
    rc, out, err = tidepool("new", "plugin", "lucky_draw", "--dir", WORK)
    assert rc == 0, (rc, out, err)
    root = os.path.join(WORK, "lucky_draw")
    for rel in ("plugin.lua", "README.md", os.path.join("test", "lucky_draw_test.lua")):
        path = os.path.join(root, rel)
        assert os.path.isfile(path), "missing %s" % path
        assert ("created " + path) in out, out
    with open(os.path.join(root, "plugin.lua")) as f:
        src = f.read()
    for needle in ('name = "lucky_draw"', "migrations = {", "CREATE TABLE lucky_draw_visits",
                   "summary = ", "tp.jobs.schedule(\"thank\"", "jobs = { thank = thank }",
                   "---@type TpManifest", "---@param req TpRequest", "---@param job TpJob"):
        assert needle in src, "plugin.lua lacks %r" % needle
    with open(os.path.join(root, "README.md")) as f:
        readme = f.read()
    for section in ("## Enable it", "## Config", "## Routes", "## Errors", "## Jobs and events",
                    "## Data", "## Develop", "## Changelog"):
        assert section in readme, "README.md lacks %s" % section
    with open(os.path.join(root, "test", "lucky_draw_test.lua")) as f:
        test = f.read()
    assert "kit.user(" in test and "kit.advance(" in test and ".to_equal(" in test, test


def test_new_plugin_defaults_to_the_current_directory():
    rc, out, err = tidepool("new", "plugin", "here", cwd=WORK)
    assert rc == 0 and os.path.isfile(os.path.join(WORK, "here", "plugin.lua")), (rc, out, err)


def test_new_plugin_refuses_bad_names():
    for name in ("Lucky", "9lives", "lucky-draw", "lucky_", "_x", "a" * 33, "", "x/y"):
        rc, out, err = tidepool("new", "plugin", name, "--dir", WORK)
        assert rc == 2, (name, rc, out, err)
        assert "is not a plugin name" in err, (name, err)
        assert not os.path.exists(os.path.join(WORK, name)) or name in ("",), name
    rc, out, err = tidepool("new", "plugin", "a" * 32, "--dir", WORK)
    assert rc == 0, (rc, out, err)


def test_new_plugin_refuses_an_existing_folder():
    os.makedirs(os.path.join(WORK, "taken"))
    rc, out, err = tidepool("new", "plugin", "taken", "--dir", WORK)
    assert rc == 2 and "already exists" in err, (rc, out, err)
    assert os.listdir(os.path.join(WORK, "taken")) == []
    rc, out, err = tidepool("new", "plugin", "lucky_draw", "--dir", WORK)  # made above
    assert rc == 2 and "already exists" in err, (rc, out, err)


def test_new_usage_errors():
    for args in ((), ("plugin",), ("widget", "x"), ("plugin", "x", "--bogus"),
                 ("plugin", "x", "--dir", os.path.join(WORK, "nowhere"))):
        rc, out, err = tidepool("new", *args)
        assert rc == 2, (args, rc, out, err)


def test_check_passes_the_scaffold():
    rc, out, err = tidepool("check", os.path.join(WORK, "lucky_draw"))
    assert rc == 0, (rc, out, err)
    assert out.strip() == "%s: ok (lucky_draw 0.1.0, 2 routes)" % os.path.join(WORK, "lucky_draw"), out


def test_scaffold_test_passes_under_tidepool_test():
    rc, out, err = tidepool("test", os.path.join(WORK, "lucky_draw"))
    assert rc == 0, (rc, out, err)
    lines = out.splitlines()
    summary = lines.index("3 passed, 0 failed")  # then the budget table: its job and routes
    assert [ln.split()[:4] for ln in lines[summary + 3:]] == [
        ["lucky_draw", "job", "thank", "peak"],
        ["lucky_draw", "route", "GET", "/lucky_draw/visits/me"],
        ["lucky_draw", "route", "POST", "/lucky_draw/visits"]], out


def expected(fixture):
    """(line of the -- @ERROR@ marker, message of the -- expect: comment)."""
    with open(os.path.join(FIXTURES, fixture, "plugin.lua")) as f:
        lines = f.read().splitlines()
    assert lines[0].startswith("-- expect: "), fixture
    marked = [i + 1 for i, ln in enumerate(lines) if "-- @ERROR@" in ln]
    assert len(marked) == 1, fixture
    return marked[0], lines[0][len("-- expect: "):]


def check_fixture(fixture):
    line, message = expected(fixture)
    rel = os.path.join("sdk_fixtures", fixture)
    rc, out, err = tidepool("check", rel, cwd=HERE)
    assert rc == 1, (fixture, rc, out, err)
    lines = out.strip().splitlines()
    assert len(lines) == 1, (fixture, out)
    prefix = "%s/plugin.lua:%d: " % (rel, line)
    assert lines[0].startswith(prefix + message), (
        "%s: want %r, got %r" % (fixture, prefix + message, lines[0]))


def check_warnings(fixture):
    """A fixture that loads with warnings: (its folder as given, the marked line,
    the expected message, the lines check printed)."""
    line, message = expected(fixture)
    rel = os.path.join("sdk_fixtures", fixture)
    rc, out, err = tidepool("check", rel, cwd=HERE)
    assert rc == 0, (rc, out, err)
    return rel, line, message, out.strip().splitlines()


def test_check_warns_of_a_table_slow_to_write_and_still_passes():
    rel, line, message, lines = check_warnings("slowcheck")
    assert len(lines) == 2, lines
    assert lines[0].startswith("%s/plugin.lua:%d: %s" % (rel, line, message)), lines[0]
    assert "write it as ORs" in lines[0], lines[0]
    assert lines[1] == "%s: ok (slowcheck 1.0.0, 0 routes, 1 warning)" % rel, lines[1]


def test_check_warns_of_a_statement_built_at_every_call_and_still_passes():
    rel, line, message, lines = check_warnings("rebuiltsql")
    # the calls that join constants, in plugin.lua and in a module of lib/; not
    # the text built once, nor the one that ends with a value of the request
    assert len(lines) == 3, lines
    assert lines[0].startswith("%s/lib/items.lua:6: %s" % (rel, message)), lines[0]
    assert lines[1].startswith("%s/plugin.lua:%d: %s" % (rel, line, message)), lines[1]
    assert "build it once at the top of the module" in lines[1], lines[1]
    assert lines[2] == "%s: ok (rebuiltsql 1.0.0, 4 routes, 2 warnings)" % rel, lines[2]


def test_no_shipped_plugin_builds_a_statement_at_every_call():
    top = os.path.join(SRC, "plugins")
    for name in sorted(os.listdir(top)):
        if not os.path.isfile(os.path.join(top, name, "plugin.lua")):
            continue
        rc, out, err = tidepool("check", os.path.join(top, name))
        assert "built at every call" not in out, out


def test_check_reports_a_syntax_error():
    check_fixture("syntax")


def test_check_reports_an_unknown_manifest_field():
    check_fixture("badfield")


def test_check_suggests_the_manifest_field_a_typo_meant():
    check_fixture("typo")


def test_check_reports_a_manifest_name_that_is_not_the_folder():
    check_fixture("misnamed")


def test_check_reports_a_bad_route_doc_field():
    check_fixture("badsummary")


def test_check_reports_a_bad_json_schema_in_a_route_doc():
    check_fixture("badschema")


def test_check_suggests_the_route_field_a_typo_meant():
    check_fixture("routetypo")


def test_check_reports_a_failing_migration():
    check_fixture("badmigration")


def test_check_reports_a_route_clash():
    check_fixture("clash")


def test_check_reports_a_bad_route_path():
    check_fixture("badpath")


def test_check_reports_an_api_called_at_load_where_it_is_not_allowed():
    check_fixture("loadapi")


def test_check_reports_a_personal_job_that_is_not_a_job():
    check_fixture("badpersonal")


def test_check_reports_every_fixture():
    fixtures = sorted(d for d in os.listdir(FIXTURES) if os.path.isdir(os.path.join(FIXTURES, d)))
    tested = {"syntax", "badfield", "misnamed", "badsummary", "badmigration", "clash", "badpath",
              "loadapi", "typo", "badschema", "routetypo", "badpersonal", "slowcheck", "rebuiltsql"}
    assert set(fixtures) == tested, "untested fixtures: %s" % (set(fixtures) - tested)


def test_check_a_folder_whose_name_is_not_a_plugin_name():
    bad = os.path.join(WORK, "Not-A-Name")
    shutil.copytree(os.path.join(WORK, "here"), bad)
    rc, out, err = tidepool("check", bad)
    assert rc == 1 and "is not a plugin name" in out, (rc, out, err)


SHELF = """local check = require("tp.check")
local per_page = check.integer(tp.config().per_page, "config.per_page", 1, 100)
return {
  name = "shelf", version = "1.0.0",
  routes = {
    { method = "GET", path = "/shelf/items", auth = "none",
      handler = function() return { per_page = per_page } end },%s
  },
}
"""


def brand(per_page, clash=False, tenant="brand"):
    """A brand's config: catalog, coupons and our shelf, whose per_page its config sets."""
    d = tempfile.mkdtemp(dir=WORK)
    os.makedirs(os.path.join(d, "mine", "shelf"))
    with open(os.path.join(d, "mine", "shelf", "plugin.lua"), "w") as f:
        f.write(SHELF % ('\n    { method = "GET", path = "/coupons/mine", auth = "user",'
                         ' handler = function() return {} end },' if clash else ""))
    conf = os.path.join(d, "tidepool.conf.lua")
    with open(conf, "w") as f:
        f.write('return { data_dir = "%s/data", plugin_dirs = { "%s/mine", "%s/plugins" },'
                ' sdk_dir = "%s/sdk", tenants = { { id = "%s", token_secret = "0123456789abcdef0123",'
                ' plugins = { catalog = {}, coupons = {}, shelf = { per_page = %s } } } } }'
                % (d, d, SRC, SRC, tenant, per_page))
    return os.path.join(d, "mine", "shelf"), conf, d


def test_check_with_the_brands_config_uses_the_tenants_plugin_config():
    shelf, conf, d = brand(20)
    rc, out, err = tidepool("check", shelf, "--config", conf, "--tenant", "brand")
    assert rc == 0 and "ok (shelf 1.0.0, 1 route)" in out, (rc, out, err)
    assert not os.path.exists(os.path.join(d, "data")), "check touched the brand's data"
    rc, out, err = tidepool("check", shelf, "--config", conf)   # one tenant: no --tenant needed
    assert rc == 0, (rc, out, err)
    # without the config the plugin's own config check fails, with the real field error
    rc, out, err = tidepool("check", shelf)
    assert rc == 1 and "invalid_field: config.per_page must be an integer from 1 to 100" in out, (
        rc, out, err)


def test_check_with_the_brands_config_reports_its_config_errors_at_load():
    shelf, conf, _ = brand(0)
    rc, out, err = tidepool("check", shelf, "--config", conf, "--tenant", "brand")
    assert rc == 1 and "invalid_field: config.per_page must be an integer from 1 to 100" in out, (
        rc, out, err)


def test_check_with_the_brands_config_names_the_plugin_a_route_clashes_with():
    shelf, conf, _ = brand(20, clash=True)
    rc, out, err = tidepool("check", shelf, "--config", conf, "--tenant", "brand")
    assert rc == 1, (rc, out, err)
    assert "route GET /coupons/mine of plugin 'shelf'" in out, out
    assert "it clashes with GET /coupons/mine of plugin 'coupons'" in out, out
    assert "plugin.lua:8: " in out, out   # the line of the route that clashes


def test_check_with_the_brands_config_suggests_the_tenant_meant():
    shelf, conf, _ = brand(20, tenant="leaf")
    rc, out, err = tidepool("check", shelf, "--config", conf, "--tenant", "lef")
    assert rc == 1 and "no tenant 'lef' (did you mean 'leaf'?)" in out, (rc, out, err)
    rc, out, err = tidepool("check", shelf, "--tenant", "leaf")
    assert rc == 2 and "--tenant needs --config" in err, (rc, out, err)


def test_check_usage_errors():
    for args in ((), (WORK,), (FIXTURES, "syntax"), ("--bogus",)):
        rc, out, err = tidepool("check", *args)
        assert rc == 2, (args, rc, out, err)


def teardown():
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    run(globals())
