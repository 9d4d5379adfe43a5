"""
test_testkit.py - `tidepool test`, the plugin test kit, on the fixture plugins
of tests/e2e/testkit_fixtures:

  kit_pass    passes: hooks in order, the matchers, tokens, admin, kit.query,
              plugin config from kit.plugins, state shared by one file's tests
  kit_fail    one wrong price (a deep-equality path), a runtime error, a string
  kit_syntax  a test file that does not parse, one that enables a missing plugin
  kit_clock   a job fired by kit.advance whose event is delivered, an event
              delivered by kit.drain, a call into the built-in catalog
  kit_trace   a route and a job with a bug: the plugin's error and traceback
              printed under the failing test that met them

Each run's exact stdout and exit status are asserted, and that every file's
temporary directory is gone afterwards.
"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, HERE, SANITIZER_MARKERS, run  # noqa: E402

FIXTURES = os.path.join(HERE, "testkit_fixtures")


def kit(*args, cwd=FIXTURES):
    """Runs `tidepool test ARGS` with a private TMPDIR; returns rc and stdout lines."""
    with tempfile.TemporaryDirectory(prefix="tidepool-kit-e2e-") as tmp:
        env = dict(os.environ, TMPDIR=tmp)
        p = subprocess.run([BIN, "test", *args], cwd=cwd, env=env, capture_output=True,
                           text=True, timeout=240)
        left = os.listdir(tmp)
    for marker in SANITIZER_MARKERS:
        assert marker not in p.stderr, p.stderr
    assert left == [], "temporary directories left behind: %r" % left
    lines = p.stdout.splitlines()
    if "" in lines:  # the budget table after the summary (test_runs.py checks it)
        lines = lines[:lines.index("")]
    return p.returncode, lines, p.stderr


def test_a_passing_plugin_exits_0():
    rc, out, err = kit("kit_pass")
    assert out == [
        "ok   greetings > posting > stores a greeting with the plugin's config",
        "ok   greetings > posting > needs a token, and a valid one",
        "ok   greetings > runs hooks outer first, inner last",
        "ok   greetings > reads what an earlier test of the file wrote",
        "ok   expect > has the matchers of the spec",
        "ok   expect > knows the clock",
        "6 passed, 0 failed",
    ], out
    assert rc == 0, err


FAIL_LINES = [
    "FAIL prices > match the list",
    "     %s:5: res.body.items[2].price_fen: expected 990, got 1990",
    "ok   prices > are two",
    "FAIL prices > raises",
    "     %s:13: attempt to index a nil value (local 't')",
    "FAIL compares strings",
    "     %s:19: word: expected \"world\", got \"hello\"",
    "FAIL answers the wrong error",
    "     %s:23: kit.anon():get(\"/nowhere\"): expected the error 404 \"not_here\", got 404 \"route_not_found\"",
]


def test_a_failed_expectation_names_file_line_and_path():
    rc, out, err = kit("kit_fail")
    path = "kit_fail/test/kit_fail_test.lua"
    assert out == [line.replace("%s", path) for line in FAIL_LINES] + ["1 passed, 4 failed"], out
    assert rc == 1, err


def test_inside_a_plugin_folder_paths_are_relative_to_it():
    rc, out, _ = kit(cwd=os.path.join(FIXTURES, "kit_fail"))
    path = "test/kit_fail_test.lua"
    assert out == [line.replace("%s", path) for line in FAIL_LINES] + ["1 passed, 4 failed"], out
    assert rc == 1


def test_a_file_that_cannot_run_exits_2_with_file_and_line():
    rc, out, err = kit("kit_syntax")
    assert out == [
        "ERROR kit_syntax/test/syntax_test.lua:5: ')' expected (to close '(' at line 2) near 'end'",
        "ERROR kit_syntax/test/unknown_plugin_test.lua: plugin 'no_such_plugin' did not load: "
        "no plugins/no_such_plugin/plugin.lua in any plugin directory",
        "0 passed, 0 failed",
    ], out
    assert rc == 2, err


def test_advance_fires_jobs_and_drain_delivers_events():
    rc, out, err = kit("kit_clock")
    assert out == [
        "ok   the test clock > fires a job when kit.advance reaches it, then delivers its event",
        "ok   events > wait for kit.drain",
        "ok   dependencies > come from the built-in plugins",
        "3 passed, 0 failed",
    ], out
    assert rc == 0, err


def test_a_failed_test_shows_the_plugins_traceback_under_it():
    """Issue 18: a 500 showed `expected 201, got 500`, the traceback elsewhere on stderr."""
    rc, out, err = kit("kit_trace")
    path = "kit_trace/test/kit_trace_test.lua"
    assert out[0] == "FAIL prices an order", out
    assert out[1] == "     %s:3: res.status: expected 201, got 500" % path, out
    assert out[2] == "     POST /orders of plugin kit_trace failed with 500 (recorded run 1):", out
    assert out[3].endswith("kit_trace/plugin.lua:4: attempt to perform arithmetic on a nil value "
                           "(field 'price_fen')"), out
    assert out[4] == "       stack traceback:", out
    assert out[5].endswith("kit_trace/plugin.lua:4: in upvalue 'total'"), out
    # only what failed during the failing test: the passing one shows nothing,
    # and the next failure shows its own (a job, run by kit.advance)
    at = out.index("ok   passes, and shows no run of the test before")
    assert out[at + 1:at + 4] == ["FAIL tallies later",
                                  "     %s:13: failed: expected 0, got 1" % path,
                                  "     job tally of plugin kit_trace failed (recorded run 2):"], out
    assert out[at + 4].endswith("kit_trace/plugin.lua:20: the tally job has no ledger"), out
    assert out[-1] == "1 passed, 2 failed", out
    assert rc == 1, err


def test_a_folder_of_plugins_runs_each_in_name_order():
    rc, out, _ = kit(".")
    assert out[0].startswith("ok   the test clock")
    assert out[3] == "FAIL prices > match the list"
    assert "ok   expect > knows the clock" in out
    assert any(line.startswith("ERROR kit_syntax/test/syntax_test.lua:5:") for line in out), out
    assert out[-1] == "11 passed, 6 failed", out
    assert rc == 2  # a file could not run: that outranks failed tests


def test_usage_errors_exit_2():
    rc, _, err = kit("no/such/folder")
    assert rc == 2 and "is not a folder" in err, err
    with tempfile.TemporaryDirectory() as empty:
        rc, _, err = kit(empty)
    assert rc == 2 and "no test files" in err, err
    rc, _, err = kit("--bogus")
    assert rc == 2, err
    rc, out, _ = kit("--help")
    assert rc == 0 and out[0].startswith("usage: tidepool test"), out


if __name__ == "__main__":
    run(globals())
