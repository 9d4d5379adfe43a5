"""
test_guide.py - sdk/GUIDE.md followed literally: every block fenced as
```guide runs in one bash session, in order (new -> check -> test -> serve ->
reload), with the guide's binary, paths and port pointed at this test's. Then
the outcome the guide promises is checked: the plugin was scaffolded, checked
clean, its tests passed, the host served its route and the reload brought the
new version without losing the visit.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, SRC, free_port, run  # noqa: E402


def guide_blocks():
    with open(os.path.join(SRC, "sdk", "GUIDE.md")) as f:
        return re.findall(r"```guide\n(.*?)```", f.read(), re.S)


def test_the_authoring_guide_works_as_written():
    blocks = guide_blocks()
    assert len(blocks) >= 5, "the guide lost its runnable blocks (```guide)"
    script = "set -e\n" + "\n".join(blocks)
    assert "T=build-test/tidepool" in script
    tmp = tempfile.mkdtemp(prefix="tidepool-e2e-guide-")
    port = free_port()
    try:
        script = script.replace("T=build-test/tidepool", "T=" + BIN)
        script = script.replace("/tmp/guide", os.path.join(tmp, "guide"))
        script = script.replace("18480", str(port))
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        out = subprocess.run(["bash", "-c", script], cwd=SRC, capture_output=True, text=True,
                             timeout=300, env=env)
        assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:])
        text = out.stdout
        plugin = os.path.join(tmp, "guide-plugins", "stamp_card")
        for f in ("plugin.lua", "README.md", os.path.join("test", "stamp_card_test.lua")):
            assert os.path.isfile(os.path.join(plugin, f)), f
        assert re.search(r": ok \(stamp_card 0\.1\.0, \d+ routes\)", text), text
        assert re.search(r"^3 passed, 0 failed$", text, re.M), text
        assert '"user":"u1"' in text, text                           # served
        assert '"serving_version":"0.2.0"' in text, text             # reloaded
        assert '"version":"0.2.0"' in text, text                     # and listed
        assert text.count('"visits":1') == 2, text                   # the visit survived
        with open(os.path.join(tmp, "guide.log")) as f:
            log = f.read()
        for marker in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"):
            assert marker not in log, log[-3000:]
    finally:
        subprocess.run(["pkill", "-f", os.path.join(tmp, "guide.conf.lua")], check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def test_the_guides_quoted_tests_are_in_their_files():
    """A ```lua block that opens with `-- from FILE` quotes FILE verbatim: the
    kit examples (local time, concurrent requests) are lines of tests that run."""
    with open(os.path.join(SRC, "sdk", "GUIDE.md")) as f:
        blocks = re.findall(r"```lua\n-- from (\S+)\n(.*?)```", f.read(), re.S)
    assert len(blocks) >= 2, blocks
    for path, text in blocks:
        with open(os.path.join(SRC, path)) as f:
            assert text in f.read(), (path, text)


if __name__ == "__main__":
    run(globals())
