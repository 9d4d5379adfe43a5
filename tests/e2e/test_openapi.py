"""
test_openapi.py - GET /v1/{tenant}/openapi.json: an OpenAPI 3.0.3 document,
generated per request from the routes the tenant serves now.

The document parses and holds together (every path template has its path
parameter, every $ref resolves, operationIds are unique, security names a
declared scheme); it lists exactly the routes GET /admin/{t}/plugins reports,
plus the host's built-ins; a plugin's doc fields appear typed and escaped; a
malformed doc field keeps a plugin from loading (and a reload from
succeeding) with a message that names the field; and after a hot reload the
document shows the new routes.

Plugins: tests/e2e/plugins/hostapi (every doc field), catalog, docbad (summary
= 5) and docver, copied into a temporary plugin folder (first in plugin_dirs)
and rewritten there between reloads.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, HERE, SRC, Host, tenant, expect_error, run  # noqa: E402

DOCVER = os.path.join(HERE, "plugins", "docver")
METHODS = ("get", "post", "put", "patch", "delete")

T = tenant("docs", plugins={"catalog": {}, "hostapi": {"webhook_secret": "s"}, "hostmid": {},
                            "hostend": {}, "docver": {}})
T_BAD = tenant("bad", plugins={"catalog": {}, "docbad": {}})


class Plug:
    """A copy of docver in a temporary plugin dir, rewritten by write()."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="tidepool-e2e-docver-")
        self.dir = os.path.join(self.root, "docver")
        shutil.copytree(DOCVER, self.dir)
        self.file = os.path.join(self.dir, "plugin.lua")
        with open(self.file) as f:
            self.original = f.read()

    def plugin_dirs(self):
        return [self.root, os.path.join(SRC, "plugins"), os.path.join(HERE, "plugins")]

    def write(self, version="1.0.0", first=None, routes=()):
        s = self.original
        for old, new in (('"1.0.0", -- @VERSION@', '"%s", -- @VERSION@' % version),
                         ("    -- @ROUTES@\n", "".join("    %s,\n" % r for r in routes))):
            assert old in s, "docver/plugin.lua lost its marker %r" % old
            s = s.replace(old, new)
        if first is not None:
            line = [ln for ln in s.splitlines() if "-- @FIRST@" in ln][0]
            s = s.replace(line, '      summary = %s }, -- @FIRST@' % first)
        with open(self.file, "w") as f:
            f.write(s)


P = None
H = None


def host():
    global H, P
    if H is None:
        P = Plug()
        # the SDK named: beside the first plugin dir (the temporary one) there is none
        H = Host(tenants=[T, T_BAD], extra={"plugin_dirs": P.plugin_dirs(), "sdk_dir": os.path.join(SRC, "sdk")},
                 name="openapi").start()
    return H


def served_documents(h, tid="docs"):
    """The user document (GET /v1/{t}/openapi.json) and the operators' (behind the key)."""
    status, hdrs, v1 = h.get("/v1/%s/openapi.json" % tid)
    assert status == 200, (status, v1)
    assert hdrs["content-type"].startswith("application/json"), hdrs
    assert isinstance(v1, dict), v1   # the harness parsed it as JSON
    t = next(t for t in (T, T_BAD) if t["id"] == tid)
    status, _, admin = h.admin("GET", "/openapi.json", t)
    assert status == 200, (status, admin)
    check_document(v1, tid, admin=False)
    check_document(admin, tid, admin=True)
    return v1, admin


def document(h, tid="docs"):
    """Both documents as one: the user document with the admin paths added."""
    v1, admin = served_documents(h, tid)
    assert not set(v1["paths"]) & set(admin["paths"])
    return {**v1, "paths": {**v1["paths"], **admin["paths"]}}


def plugins(h, t):
    status, _, body = h.admin("GET", "/plugins", t)
    assert status == 200, body
    return {p["name"]: p for p in body["plugins"]}


def operations(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield path, method, op


def op(doc, path, method):
    assert path in doc["paths"], (path, sorted(doc["paths"]))
    assert method in doc["paths"][path], (path, method, doc["paths"][path].keys())
    return doc["paths"][path][method]


def params(o, where):
    return {p["name"]: p for p in o.get("parameters", []) if p["in"] == where}


def resolve(doc, ref):
    assert ref.startswith("#/"), ref
    node = doc
    for part in ref[2:].split("/"):
        assert isinstance(node, dict) and part in node, "unresolved $ref %s" % ref
        node = node[part]
    return node


def check_refs(doc, node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                resolve(doc, v)
            else:
                check_refs(doc, v)
    elif isinstance(node, list):
        for v in node:
            check_refs(doc, v)


def check_document(doc, tid, admin=False):
    """What OpenAPI 3.0.3 requires of the parts the host writes."""
    assert doc["openapi"] == "3.0.3", doc.get("openapi")
    assert doc["info"]["title"] == "tidepool %sAPI for tenant %s" % ("admin " if admin else "", tid), \
        doc["info"]
    assert doc["servers"] == [{"url": "/", "description": doc["servers"][0]["description"]}], doc
    prefix = "/admin/%s/" % tid if admin else "/v1/%s/" % tid
    assert isinstance(doc["info"]["version"], str) and doc["info"]["version"], doc["info"]
    schemes = doc["components"]["securitySchemes"]
    assert schemes["userToken"] == {**schemes["userToken"], "type": "http", "scheme": "bearer"}
    assert schemes["adminKey"] == {**schemes["adminKey"], "type": "apiKey", "in": "header",
                                   "name": "X-Api-Key"}
    err = doc["components"]["schemas"]["Error"]
    assert err["properties"]["error"]["required"] == ["code", "message"], err
    tags = {t["name"] for t in doc["tags"]}
    ids = []
    for path, method, o in operations(doc):
        assert path.startswith(prefix), (admin, path)
        assert method in METHODS, (path, method)
        assert len(o["tags"]) == 1 and o["tags"][0] in tags, (path, method, o["tags"])
        ids.append(o["operationId"])
        assert re.fullmatch(r"[a-z0-9_]+", o["operationId"]), o["operationId"]
        template = set(re.findall(r"\{([^}]*)\}", path))
        path_params = params(o, "path")
        assert set(path_params) == template, (path, path_params)
        assert all(p["required"] is True for p in path_params.values()), path_params
        for p in o.get("parameters", []):
            assert p["in"] in ("path", "query", "header") and p["name"], p
            assert p["schema"]["type"] in ("string", "integer", "boolean"), p
        names = [(p["in"], p["name"]) for p in o.get("parameters", [])]
        assert len(names) == len(set(names)), names
        responses = o["responses"]
        success = [c for c in responses if c != "default" and int(c) < 300]
        if len(success) >= 2:     # the other statuses (a retry's 200) and the usual one
            first = [c for c in success if responses[c]["description"] == "Success"]
            assert len(first) == 1 and all(responses[c]["content"] == responses[first[0]]["content"]
                                           for c in success), responses
            success = first
        assert len(success) == 1 and 200 <= int(success[0]) <= 299, responses
        assert all(r["description"] for r in responses.values()), responses
        assert responses["default"]["content"]["application/json"]["schema"] == \
            {"$ref": "#/components/schemas/Error"}, responses
        for c, r in responses.items():       # declared errors: the Error with its codes
            if c != "default" and int(c) >= 300:
                assert 400 <= int(c) <= 599, (path, method, c)
                one_of = r["content"]["application/json"]["schema"]["allOf"]
                assert one_of[0] == {"$ref": "#/components/schemas/Error"}, r
                code = one_of[1]["properties"]["error"]["properties"]["code"]
                codes = code.get("enum") or [c for a in code["anyOf"] for c in a.get("enum", [])]
                codes += [a["pattern"][1:] + "*" for a in code.get("anyOf", []) if "pattern" in a]
                assert codes and r["description"] == ", ".join(sorted(codes, key=r["description"].index)), r
        for requirement in o["security"]:
            assert set(requirement) <= set(schemes), o["security"]
        if "requestBody" in o:
            assert "schema" in o["requestBody"]["content"]["application/json"], o
    assert len(ids) == len(set(ids)), "operationIds are not unique: %r" % ids
    check_refs(doc, doc)


def served_routes(h, t):
    """(plugin, METHOD, path) of every route /admin/{t}/plugins reports."""
    out = set()
    for name, p in plugins(h, t).items():
        for label in p.get("routes", []):
            plugin, method, path = label.split(" ", 2)
            assert plugin == name, label
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", path.replace("{tenant}", t["id"]))
            out.add((plugin, method, path))
    return out


def documented_routes(doc):
    return {(o["tags"][0], m.upper(), path) for path, m, o in operations(doc)
            if o["tags"][0] != "host"}


# ---- the document

def test_the_document_is_openapi_3_0_3_with_the_hosts_version_and_the_plugins():
    h = host()
    doc = document(h)
    out = subprocess.run([BIN, "version"], capture_output=True, timeout=60)
    assert out.returncode == 0, out
    assert out.stdout.decode().split() == ["tidepool", doc["info"]["version"]], out.stdout
    description = doc["info"]["description"]
    for name, p in plugins(h, T).items():
        assert p["status"] == "active", p
        assert "%s %s" % (name, p["version"]) in description, (name, description)
    assert "hostapi 2.3.4" in description, description
    assert [t["name"] for t in doc["tags"]] == ["catalog", "docver", "hostapi", "hostend",
                                                "hostmid", "host"], doc["tags"]


def test_every_served_route_is_documented_and_nothing_else():
    h = host()
    doc = document(h)
    served = served_routes(h, T)
    assert ("catalog", "GET", "/v1/docs/catalog/products/{id}") in served, served
    assert documented_routes(doc) == served
    assert op(doc, "/v1/docs/catalog/products/{id}", "get")["operationId"] == \
        "catalog_get_catalog_products_id"
    # the catalog documents every route; its writes say what they take
    for plugin, method, path in served:
        if plugin == "catalog":
            o = op(doc, path, method.lower())
            assert o.get("summary"), (method, path)
            if method != "GET":
                assert o["requestBody"]["content"]["application/json"]["schema"]["type"] == \
                    "object", (method, path)
    assert "201" in op(doc, "/admin/docs/catalog/products", "post")["responses"]


def test_the_doc_fields_of_a_route_appear_typed_and_escaped():
    doc = document(host())
    o = op(doc, "/v1/docs/hostapi/items/{id}/notes/{tag}", "get")
    assert o["tags"] == ["hostapi"] and o["operationId"] == "hostapi_get_hostapi_items_id_notes_tag"
    assert o["summary"] == 'Notes of an item "quoted", back\\slash, 茶', o["summary"]
    assert o["description"] == "Line one.\nLine two with <html> & a tab\there.", o["description"]
    path = params(o, "path")
    assert path["id"]["schema"]["type"] == "integer" and path["tag"]["schema"] == {"type": "string"}
    query = params(o, "query")
    assert query == {
        "limit": {"name": "limit", "in": "query", "required": False, "description": "page size",
                  "schema": {"type": "integer"}},
        "q": {"name": "q", "in": "query", "required": True, "description": "search text",
              "schema": {"type": "string"}},
        "verbose": {"name": "verbose", "in": "query", "required": False,
                    "schema": {"type": "boolean"}},
    }, query
    assert params(o, "header") == {"X-Trace-Id": {
        "name": "X-Trace-Id", "in": "header", "required": True, "description": "a trace id",
        "schema": {"type": "string"}}}, o["parameters"]
    assert "requestBody" not in o, o
    assert o["responses"]["200"]["content"]["application/json"]["schema"] == \
        {"type": "object", "properties": {"params": {"type": "object"}}}, o["responses"]
    assert o["security"] == [{}, {"userToken": []}], o["security"]        # auth = "optional"

    o = op(doc, "/v1/docs/hostapi/notes", "post")
    assert o["security"] == [{"userToken": []}], o["security"]            # auth = "user"
    assert o["requestBody"] == {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["text"],
        "properties": {"text": {"type": "string", "minLength": 1}}}}}}, o["requestBody"]
    assert set(o["responses"]) == {"201", "400", "403", "409", "default"}, o["responses"]
    assert o["responses"]["403"]["description"] == "members_only, risk_*", o["responses"]["403"]
    assert o["responses"]["403"]["content"]["application/json"]["schema"]["allOf"][1]["properties"][
        "error"]["properties"]["code"] == {"type": "string", "anyOf": [
            {"enum": ["members_only"]}, {"pattern": "^risk_"}]}, o["responses"]["403"]
    assert o["responses"]["409"] == {"description": "note_exists, too_many_notes", "content": {
        "application/json": {"schema": {"allOf": [
            {"$ref": "#/components/schemas/Error"},
            {"type": "object", "properties": {"error": {"type": "object", "properties": {
                "code": {"type": "string", "enum": ["note_exists", "too_many_notes"]}}}}}]}}}}, o
    assert list(o["responses"]) == ["201", "400", "403", "409", "default"], "statuses in order"
    note = o["responses"]["201"]["content"]["application/json"]["schema"]
    assert note["required"] == ["id", "text"] and note["properties"]["price"]["minimum"] == 0.5
    assert note["properties"]["tags"] == {"type": "array", "items": {"type": "string"}}, note

    o = op(doc, "/admin/docs/hostapi/notes/{id}", "delete")                # auth = "admin"
    assert o["security"] == [{"adminKey": []}] and o["summary"] == "Delete a note", o
    assert o["requestBody"]["required"] is False, o    # its schema requires no field
    o = op(doc, "/v1/docs/hostapi/config", "get")                          # auth = "none"
    assert o["security"] == [] and "parameters" not in o, o
    o = op(doc, "/v1/docs/hostapi/schedule", "post")                       # status = 201
    assert set(o["responses"]) == {"201", "default"}, o["responses"]
    assert "schema" not in o["responses"]["201"]["content"]["application/json"], o
    o = op(doc, "/v1/docs/hostapi/raw", "post")
    assert set(params(o, "header")) == {"X-Signature"} and "summary" in o, o
    assert "summary" not in op(doc, "/v1/docs/hostapi/raw", "get")         # declared none


def test_the_hosts_built_in_routes_are_documented():
    doc = document(host())
    admin = {
        ("/admin/docs/plugins", "get"), ("/admin/docs/reload", "post"),
        ("/admin/docs/jobs", "get"), ("/admin/docs/events", "get"),
        ("/admin/docs/jobs/{id}/retry", "post"), ("/admin/docs/jobs/{id}", "delete"),
        ("/admin/docs/clock", "get"), ("/admin/docs/clock/advance", "post"),
        ("/admin/docs/runs", "get"), ("/admin/docs/runs/{id}", "get"),
        ("/admin/docs/runs/record", "post"),
        ("/admin/docs/backups", "get"), ("/admin/docs/backups", "post"),
        ("/admin/docs/campaigns/{name}/check", "post"), ("/admin/docs/campaigns/{name}/preview", "post"),
        ("/admin/docs/console/users", "get"), ("/admin/docs/console/users", "post"),
        ("/admin/docs/console/users/{name}", "delete"), ("/admin/docs/plugins/{name}/source", "get"),
    }
    host_ops = {(p, m) for p, m, o in operations(doc) if o["tags"] == ["host"]}
    assert host_ops == admin | {("/v1/docs/openapi.json", "get"), ("/v1/docs/track", "post"),
                                ("/admin/docs/openapi.json", "get")}, host_ops
    for path, method in admin:
        o = op(doc, path, method)
        assert o["summary"] and o["security"] == [{"adminKey": []}], (path, o)
    assert params(op(doc, "/admin/docs/jobs/{id}/retry", "post"), "path")["id"]["schema"]["type"] \
        == "integer"
    assert set(params(op(doc, "/admin/docs/jobs", "get"), "query")) == {"state", "limit"}
    assert "plugin" in op(doc, "/admin/docs/reload", "post")["requestBody"]["content"][
        "application/json"]["schema"]["properties"]
    assert op(doc, "/v1/docs/openapi.json", "get")["security"] == []
    assert op(doc, "/admin/docs/openapi.json", "get")["security"] == [{"adminKey": []}]


def test_the_document_needs_no_key_and_knows_only_real_tenants():
    h = host()
    status, _, doc = h.get("/v1/docs/openapi.json", headers={})
    assert status == 200 and doc["openapi"] == "3.0.3", status
    expect_error(h.get("/v1/nobody/openapi.json"), 404, "tenant_not_found")
    expect_error(h.post("/v1/docs/openapi.json", {}), 405, "method_not_allowed")


def test_user_and_admin_routes_are_two_documents_the_admin_one_behind_the_key():
    h = host()
    v1, admin = served_documents(h)
    assert v1["paths"] and all(p.startswith("/v1/docs/") for p in v1["paths"]), sorted(v1["paths"])
    assert admin["paths"] and all(p.startswith("/admin/docs/") for p in admin["paths"])
    assert "/admin/docs/openapi.json" in v1["info"]["description"], v1["info"]
    assert "/v1/docs/openapi.json" in admin["info"]["description"], admin["info"]
    expect_error(h.get("/admin/docs/openapi.json"), 401, "api_key_required")
    expect_error(h.get("/admin/docs/openapi.json", headers={"X-Api-Key": "wrong-key-0123456789"}),
                 403, "invalid_api_key")


VALIDATOR = os.path.join(SRC, "tools", "openapi", "check.mjs")


def validate_documents(docs):
    """The OpenAPI validator of CI (tools/openapi/check.mjs, installed by
    tools/bootstrap.sh --test) on each document; returns its output."""
    assert os.path.isdir(os.path.join(SRC, "tools", "openapi", "node_modules")), \
        "the OpenAPI validator is not installed: run tools/bootstrap.sh --test"
    files = []
    with tempfile.TemporaryDirectory(prefix="tidepool-openapi-") as d:
        for i, doc in enumerate(docs):
            files.append(os.path.join(d, "doc%d.json" % i))
            with open(files[-1], "w") as f:
                json.dump(doc, f)
        out = subprocess.run(["node", VALIDATOR, "docs"] + files, capture_output=True, timeout=120)
    return out.returncode, out.stdout.decode() + out.stderr.decode()


def test_every_tenants_documents_pass_the_openapi_validator():
    h = host()
    docs = [d for tid in ("docs", "bad") for d in served_documents(h, tid)]
    code, out = validate_documents(docs)
    assert code == 0, out
    assert '"documents":4,"invalid":0' in out, out


def test_the_validator_refuses_an_invalid_document():
    v1, _ = served_documents(host())
    broken = json.loads(json.dumps(v1))
    first = next(iter(broken["paths"].values()))
    next(iter(first.values()))["responses"] = {"200": {"content": {}}}   # no description
    code, out = validate_documents([broken])
    assert code == 1 and '"invalid":1' in out, out


# ---- malformed doc fields

def test_a_malformed_doc_field_keeps_the_plugin_from_loading_and_names_the_field():
    h = host()
    bad = plugins(h, T_BAD)["docbad"]
    assert bad["status"] == "failed", bad
    assert "routes[2].summary must be a string of at most 200 bytes" in bad["last_error"], bad
    doc = document(h, "bad")
    assert not [p for p in doc["paths"] if "docbad" in p], sorted(doc["paths"])
    assert documented_routes(doc) == served_routes(h, T_BAD)
    assert "Not serving (failed to load): docbad" in doc["info"]["description"], doc["info"]
    assert [t["name"] for t in doc["tags"]] == ["catalog", "host"], doc["tags"]


ROUTE = '{ method = "GET", path = "/docver/x", auth = "none", handler = ok, %s }'
MALFORMED = [
    ('summary = ("s"):rep(201)', "routes[2].summary must be a string of at most 200 bytes"),
    ("summary = true", "routes[2].summary must be a string of at most 200 bytes"),
    ("description = {}", "routes[2].description must be a string"),
    ('query = "limit"', "routes[2].query must be a table of name = {type ="),
    ('query = { limit = "integer" }', "routes[2].query.limit must be a table"),
    ('query = { limit = { type = "number" } }',
     'routes[2].query.limit.type must be "string", "integer" or "boolean"'),
    ("query = { limit = {} }", 'routes[2].query.limit.type must be'),
    ('query = { limit = { type = "integer", requried = true } }',
     "routes[2].query.limit has an unknown field 'requried'"),
    ('query = { limit = { type = "integer", required = "yes" } }',
     "routes[2].query.limit.required must be a boolean"),
    ('query = { [""] = { type = "string" } }', "routes[2].query keys must be parameter names"),
    ('headers = { ["X Bad"] = {} }', "routes[2].headers keys must be header names"),
    ('headers = { ["X-Ok"] = { description = 5 } }',
     "routes[2].headers.X-Ok.description must be a string"),
    ('headers = { ["X-Ok"] = { type = "integer" } }',
     "routes[2].headers.X-Ok has an unknown field 'type'"),
    ('body = "json"', "routes[2].body must be a table (a JSON Schema)"),
    ('body = { type = "object", default = function() end }', "routes[2].body cannot be JSON"),
    ('response = { "a", "b" }', "routes[2].response must be a JSON Schema object, not a list"),
    ("status = 404", "routes[2].status must be an integer from 200 to 299"),
    ("status = 200.5", "routes[2].status must be an integer from 200 to 299"),
    ("status = { 201 }", "routes[2].status must be an integer from 200 to 299, or a list of 2-4"),
    ("status = { 201, 201 }", "routes[2].status must be an integer from 200 to 299, or a list of"),
    ("status = { 201, 200, 201 }", "routes[2].status must be an integer from 200 to 299, or a list"),
    ("status = { 201, 404 }", "routes[2].status must be an integer from 200 to 299, or a list of"),
    ('errors = "sold_out"', "routes[2].errors must be a table of status = { code, ... }"),
    ('errors = { [200] = { "x" } }', "routes[2].errors keys must be statuses from 400 to 599"),
    ('errors = { sold_out = { "x" } }', "routes[2].errors keys must be statuses from 400 to 599"),
    ('errors = { [409] = "sold_out" }', "routes[2].errors[409] must be a list of error codes"),
    ('errors = { [409] = {} }', "routes[2].errors[409] must list 1-32 error codes"),
    ('errors = { [409] = { a = "x" } }', "routes[2].errors[409] must be a list of error codes"),
    ('errors = { [409] = { "Sold-Out" } }', "routes[2].errors[409][1] must be an error code"),
    ('errors = { [409] = { "sold_out", 5 } }', "routes[2].errors[409][2] must be an error code"),
    ('errors = { [409] = { "a", "a" } }', "routes[2].errors[409] lists 'a' twice"),
    ('errors = { [403] = { "*" } }', "routes[2].errors[403][1] must be an error code"),
    ('errors = { [403] = { "risk*_" } }', "routes[2].errors[403][1] must be an error code"),
]


def reload_docver(h):
    return h.admin("POST", "/reload", T, body={"plugin": "docver"})


def test_malformed_doc_fields_fail_a_reload_and_the_old_routes_stay_documented():
    h = host()
    before = document(h)
    try:
        for fields, message in MALFORMED:
            P.write(routes=[ROUTE % fields])
            body = expect_error(reload_docver(h), 422, "reload_failed")
            errors = [f["error"] for f in body["error"]["details"]["failed"]]
            assert len(errors) == 1 and message in errors[0], (fields, message, errors)
            assert document(h) == before, fields
        # a plugin route on the built-in path clashes like any duplicate
        P.write(routes=['{ method = "GET", path = "/openapi.json", auth = "none", handler = ok }'])
        body = expect_error(reload_docver(h), 422, "reload_failed")
        assert "declared twice" in body["error"]["details"]["failed"][0]["error"], body
    finally:
        P.write()
        status, _, body = reload_docver(h)
        assert status == 200, body
    assert document(h) == before


def test_after_a_hot_reload_the_document_shows_the_new_routes():
    h = host()
    assert "/v1/docs/docver/second/{n}" not in document(h)["paths"]
    try:
        P.write(version="1.1.0", first='"The first route, renamed"', routes=[
            '{ method = "GET", path = "/docver/second/{n:int}", auth = "user", handler = ok, '
            'summary = ("z"):rep(200), query = { page = { type = "integer" } }, '
            'x_note = "unknown keys are accepted" }',
            '{ method = "PUT", path = "/docver/second/{n:int}", auth = "admin", handler = ok, '
            'body = { type = "object" } }',
            # doc fields are read raw: an __index that raises is never called
            'setmetatable({ method = "GET", path = "/docver/meta", auth = "none", handler = ok }, '
            '{ __index = function(_, k) error("no field " .. k) end })',
        ])
        status, _, body = reload_docver(h)
        assert status == 200, body
        doc = document(h)
        assert documented_routes(doc) == served_routes(h, T)
        assert "docver 1.1.0" in doc["info"]["description"], doc["info"]
        assert op(doc, "/v1/docs/docver/first", "get")["summary"] == "The first route, renamed"
        second = op(doc, "/v1/docs/docver/second/{n}", "get")
        assert second["summary"] == "z" * 200 and second["security"] == [{"userToken": []}]
        assert params(second, "query")["page"]["schema"] == {"type": "integer"}, second
        meta = op(doc, "/v1/docs/docver/meta", "get")
        assert "summary" not in meta and "parameters" not in meta, meta
        put = op(doc, "/admin/docs/docver/second/{n}", "put")
        assert put["requestBody"]["content"]["application/json"]["schema"] == {"type": "object"}
        status, _, body = h.get("/v1/docs/docver/first")
        assert status == 200 and body == {"route": "/docver/first"}, body
    finally:
        P.write()
        status, _, body = reload_docver(h)
        assert status == 200, body
    doc = document(h)
    assert "/v1/docs/docver/second/{n}" not in doc["paths"], sorted(doc["paths"])
    assert "docver 1.0.0" in doc["info"]["description"], doc["info"]
    assert documented_routes(doc) == served_routes(h, T)


def teardown():
    if H is not None:
        H.stop()
    if P is not None:
        shutil.rmtree(P.root, ignore_errors=True)


if __name__ == "__main__":
    run(globals())
