"""
test_sdk_stubs.py - the SDK's API stubs and reference say exactly what the host
gives plugins.

- sdk/types/tp.lua and sdk/reference.md are what `tidepool api --luals` and
  `tidepool api --markdown` print now: both are generated from the one
  declaration in core/lua/api.c, so a change there without regenerating fails here.
- The host exposes exactly what the stubs declare. The apiwalk plugin
  (tests/e2e/plugins/apiwalk) walks the real tp table at load and in a handler
  (every function and field, recursively) and lists the keys of the req its
  handler gets and of the arguments of a job and an event delivery; those are
  compared with the names parsed from sdk/types/tp.lua (functions and module
  tables of tp, the fields of TpRequest, TpJob and TpEvent). A failure names
  what is missing on either side.
- The manifest fields the host accepts (from the message it gives for an unknown
  one) are the fields of TpManifest.

req.headers, req.query and req.raw_body are built by a metatable on first read,
so pairs() cannot find them: the handler reads every name the stubs declare and
every name core/lua/req.c's req_index answers (read from its source) before it
lists req's keys.
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, HERE, SANITIZER_MARKERS, SRC, Host, advance, manual_tenant, run  # noqa: E402

STUBS = os.path.join(SRC, "sdk", "types", "tp.lua")
REFERENCE = os.path.join(SRC, "sdk", "reference.md")
T = manual_tenant("walk", {"apiwalk": {"greeting": "hi"}})


def tidepool(*args):
    out = subprocess.run([BIN] + list(args), capture_output=True, timeout=60)
    assert out.returncode == 0, (args, out.returncode, out.stderr)
    for marker in SANITIZER_MARKERS:
        assert marker.encode() not in out.stderr, out.stderr
    return out.stdout.decode("utf-8")


def parse_stubs(text):
    """{"api": {"tp.now", "tp.db", "tp.json.null", ...}, "TpRequest": {"id", ...}, ...}"""
    classes = {"api": set()}
    cls = None
    for line in text.splitlines():
        m = re.match(r"^---@class ([\w.]+)", line)
        if m:
            cls = m.group(1)
            classes.setdefault(cls, set())
            continue
        m = re.match(r"^---@field (\w+)\?? ", line)
        if m and cls:
            if cls == "tp" or cls.startswith("tp."):
                classes["api"].add(cls + "." + m.group(1))
            else:
                classes[cls].add(m.group(1))
            continue
        m = re.match(r"^function (tp(?:\.\w+)+)\(", line)
        if m:
            classes["api"].add(m.group(1))
            continue
        m = re.match(r"^(tp\.\w+) = \{\}", line)
        if m:
            classes["api"].add(m.group(1))
    return classes


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def compare(what, host, stubs, hint):
    host, stubs = set(host), set(stubs)
    problems = []
    if host - stubs:
        problems.append("the host gives plugins %s, which sdk/types/tp.lua does not declare"
                        % ", ".join(sorted(host - stubs)))
    if stubs - host:
        problems.append("sdk/types/tp.lua declares %s, which the host does not give plugins"
                        % ", ".join(sorted(stubs - host)))
    assert not problems, "%s: %s (%s)" % (what, "; ".join(problems), hint)


HINT = ("declare it once in core/lua/api.c (tpa_functions or tpa_shapes), then run "
        "`tidepool api --luals > sdk/types/tp.lua && tidepool api --markdown > sdk/reference.md`")

STUB = parse_stubs(read(STUBS))
HOST = Host(tenants=[T], name="sdkstubs")


def test_committed_stubs_are_what_tidepool_api_prints():
    assert read(STUBS) == tidepool("api", "--luals"), (
        "sdk/types/tp.lua is not what the declaration in core/lua/api.c generates: run "
        "`tidepool api --luals > sdk/types/tp.lua`")
    assert tidepool("api") == tidepool("api", "--luals"), "--luals is the default"


def test_committed_reference_is_what_tidepool_api_prints():
    assert read(REFERENCE) == tidepool("api", "--markdown"), (
        "sdk/reference.md is not what the declaration in core/lua/api.c generates: run "
        "`tidepool api --markdown > sdk/reference.md`")


def test_stubs_declare_the_classes_plugins_use():
    for cls in ("tp", "tp.db", "tp.jobs", "tp.events", "tp.json", "tp.crypto", "TpRequest",
                "TpJob", "TpEvent", "TpManifest", "TpRoute"):
        assert cls in STUB, "sdk/types/tp.lua has no class %s" % cls
    assert read(STUBS).startswith("---@meta"), "a LuaLS definition file starts with ---@meta"
    assert "tp.db.exec" in STUB["api"] and "tp.json.null" in STUB["api"], STUB["api"]


def test_reference_documents_every_function_with_its_contexts():
    ref = read(REFERENCE)
    for name in sorted(STUB["api"]):
        if re.search(r"^function %s\(" % re.escape(name), read(STUBS), re.M):
            section = ref.split("\n### %s\n" % name)
            assert len(section) == 2, "sdk/reference.md has no section for %s" % name
            assert "**Allowed in:** " in section[1].split("\n### ")[0], name


def test_api_usage_error():
    out = subprocess.run([BIN, "api", "--yaml"], capture_output=True, timeout=60)
    assert out.returncode == 2 and b"usage: tidepool api" in out.stderr, out


def test_host_tp_table_is_what_the_stubs_declare():
    HOST.start()
    status, _, body = HOST.get("/v1/walk/apiwalk/tp")
    assert status == 200, (status, body)
    compare("the tp table while plugin.lua loads", body["load"], STUB["api"], HINT)
    compare("the tp table in a route handler", body["handler"], STUB["api"], HINT)


def lazy_req_fields():
    """The names req_index in core/lua/req.c builds on first read."""
    src = read(os.path.join(SRC, "core", "lua", "req.c"))
    body = src.split("static int req_index(lua_State *L) {", 1)[1].split("\n}\n", 1)[0]
    names = re.findall(r'strcmp\(key, "(\w+)"\)', body)
    assert names, "cannot find req_index's fields in core/lua/req.c"
    return names


def test_handler_req_is_what_the_stubs_declare():
    probe = sorted(STUB["TpRequest"] | set(lazy_req_fields()))
    status, _, body = HOST.request(
        "POST", "/v1/walk/apiwalk/req/7?a=1&b=2", body={"probe": probe},
        headers=HOST.bearer("walk", "u1"))
    assert status == 200, (status, body)
    compare("the req of a route handler", body["keys"], STUB["TpRequest"], HINT)


def test_job_and_event_arguments_are_what_the_stubs_declare():
    status, _, body = HOST.request("POST", "/v1/walk/apiwalk/start", body={},
                                   headers=HOST.bearer("walk", "u1"))
    assert status == 201, (status, body)
    advance(HOST, T, seconds=60)
    status, _, seen = HOST.get("/v1/walk/apiwalk/seen")
    assert status == 200 and "job" in seen and "event" in seen, (status, seen)
    compare("the job a job handler gets", seen["job"], STUB["TpJob"], HINT)
    compare("the event an event handler gets", seen["event"], STUB["TpEvent"], HINT)
    HOST.stop()


def test_manifest_fields_are_what_the_stubs_declare():
    out = subprocess.run([BIN, "check", os.path.join(HERE, "sdk_fixtures", "badfield")],
                         capture_output=True, timeout=60)
    m = re.search(r"\(known: ([a-z_, ]+)\)", out.stdout.decode())
    assert out.returncode == 1 and m, out
    compare("the manifest fields plugin.c accepts", m.group(1).split(", "), STUB["TpManifest"],
            HINT + "; the host's list is check_manifest_keys in core/lua/plugin.c")


def teardown():
    if HOST.running():
        HOST.stop()


if __name__ == "__main__":
    run(globals())
