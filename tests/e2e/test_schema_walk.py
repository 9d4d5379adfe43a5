"""
test_schema_walk.py - every built-in plugin's declared resource bodies
(tp.schema) against the OpenAPI document the host serves.

One tenant enables every plugin under plugins/ and tests/e2e/plugins/schemawalk,
which collects each plugin's `schemas` export (tp.schema.document: the routes
whose body a schema made, with the fields as declared). For each such route
the request body of GET /v1/{tenant}/openapi.json must have exactly the
declared fields as properties, the declared required list (none for a PATCH; a PATCH leaves out the fields
declared patch = false, a create body those declared create = false),
and each field's type, minimum/maximum, minLength/maxLength, enum, maxItems
and nullable as tp.schema states them. (The host serves two documents, the
users' and the operators'; the walk reads them as one.)

And the other way round: every request body a built-in plugin documents is
either a declared one or listed below in HAND_WRITTEN with the reason it is not
(an action's few arguments, or a resource whose fields are declared another
way), so a new
resource body written by hand fails here until it is declared or listed.
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SRC, Host, tenant, run  # noqa: E402

MAX_EPOCH = 253402300799   # tp.check.MAX_EPOCH
METHODS = ("get", "post", "put", "patch", "delete")

# Plugins that must export `schemas`: those whose resource bodies are declared
# with tp.schema. A plugin dropping the export (or its schema) fails the walk.
DECLARING = {"bargain", "blocklist", "catalog", "coupons", "flash_sale", "friend_assist", "fulfilment", "group_buy",
             "group_chain", "members", "points", "presale", "promotions", "referral", "webhooks"}

# Request bodies still written by hand, by "plugin METHOD path" (the path as
# the document has it, without /admin/{tenant} or /v1/{tenant}): why each is
# not a tp.schema body.
HAND_WRITTEN = {
    # actions: a few arguments of one act, not a resource's fields
    "flash_sale POST /flash-sales/{id}/buy": "action: qty, coupon_id",
    "fulfilment POST /fulfilment/aftersales": "action: lines of an order to refund, a reason, photo URLs",
    "fulfilment POST /fulfilment/aftersales/{id}/return": "action: the return parcel's carrier and tracking number",
    "fulfilment POST /fulfilment/aftersales/{id}/approve": "action: a note",
    "fulfilment POST /fulfilment/aftersales/{id}/reject": "action: a note",
    "fulfilment POST /fulfilment/orders/{id}/delivery": "action: express to an address, or pickup at a store",
    "fulfilment POST /fulfilment/orders/{id}/shipments": "action: carrier, tracking number, the lines it carries",
    "fulfilment POST /fulfilment/orders/{id}/returns": "action: the lines that came back",
    "fulfilment POST /fulfilment/pickups/redeem": "action: a store and a pickup code",
    "fulfilment POST /fulfilment/stores/{id}/staff": "action: the member to make staff",
    "group_buy POST /group-buys/{id}/open": "action: qty, coupon_id",
    "presale POST /presales/{id}/buy": "action: qty",
    "group_buy POST /group-buys/{id}/groups/{gid}/join": "action: qty, coupon_id",
    "catalog POST /catalog/skus/{code}/stock": "action: a stock delta",
    "analytics POST /analytics/rollup": "action: the day to recompute",
    "coupons POST /coupons/templates/{id}/issue": "action: the users to issue to",
    "coupons POST /coupons/templates/{id}/drops": "action: a segment drop",
    "group_chain POST /group_chain/organisers": "action: the user to make an organiser",
    "members POST /members/identify": "action: identities of a login",
    "members POST /members/merges": "action: two members to merge",
    "members POST /members/segments/preview": "action: a rule to preview",
    "members POST /members/tags/{name}/assign": "action: members to tag",
    "members POST /members/{id}/tags": "action: a tag to give",
    "members POST /members/imports/{id}/chunks": "action: a chunk of CSV",
    "members POST /members/imports": "action: open an import (the columns of a CSV)",
    "notify POST /notify/subscriptions": "action: what the user answered wx.requestSubscribeMessage",
    "orders POST /orders/{id}/refund": "action: an amount to refund",
    "signin POST /signin/makeup": "action: the day to make up",
    "orders POST /orders": "action: the lines of an order (priced by the plugins)",
    "orders POST /orders/preview": "action: the lines of an order to price (as POST /orders)",
    "promotions POST /promotions/{id}/codes": "action: a shared code or how many single-use codes to make",
    "payments POST /payments/notify": "the payment provider's notification, its format",
    "payments POST /payments/prepay": "action: the order to pay",
    "payments POST /payments/simulate": "action: the order to mark paid",
    "payments POST /payments/transfers/{no}/simulate": "action: the state WeChat would move a transfer to",
    "referral POST /referral/bind": "action: the code to bind to",
    "referral POST /referral/join": "action: become a distributor (no fields)",
    "referral POST /referral/withdrawals": "action: an amount to withdraw",
    "referral POST /referral/withdrawals/{id}/approve": "action: a reason",
    "referral POST /referral/withdrawals/{id}/reject": "action: a reason",
    "referral POST /referral/withdrawals/{id}/cancel": "action: cancel its transfer (no fields)",
    "tiers POST /tiers/members/{user}/growth": "action: a task's growth (amount, ref, note)",
    # resources whose fields are checked by hand, and why
    "group_chain POST /group_chain/posts/{id}/entries": "lines of the post's items: qty's cap is the item's",
    "group_chain PUT /group_chain/posts/{id}/entries/{seq}": "lines of the post's items: qty's cap is the item's",
    "members PATCH /members/{id}": "profile fields: declared in lib/fields.lua, with the brand's custom ones",
    "members PATCH /members/me": "profile fields: declared in lib/fields.lua, with the brand's custom ones",
}

CONFIG = {"payments": {"secret": "schema-walk-payment-secret-0123"},
          "members": {"phone_pepper": "schema-walk-pepper"}}


def builtin_plugins():
    root = os.path.join(SRC, "plugins")
    return sorted(n for n in os.listdir(root) if os.path.isfile(os.path.join(root, n, "plugin.lua")))


PLUGINS = {name: CONFIG.get(name, {}) for name in builtin_plugins()}
PLUGINS["schemawalk"] = {}
T = tenant("walk", plugins=PLUGINS)
H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[T], name="schemawalk").start()
    return H


def teardown():
    if H is not None:
        H.stop()


def doc_path(route_path, auth):
    """The document's key for a route: its prefix and {name} for {name:int}."""
    prefix = "/admin/walk" if auth == "admin" else "/v1/walk"
    return prefix + re.sub(r"\{(\w+):\w+\}", r"{\1}", route_path)


def resolve(doc, schema):
    while isinstance(schema, dict) and "$ref" in schema:
        node = doc
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def request_body(doc, path, method):
    op = doc["paths"].get(path, {}).get(method)
    assert op is not None, "the served OpenAPI has no %s %s" % (method.upper(), path)
    body = op.get("requestBody")
    assert body is not None, "%s %s documents no request body" % (method.upper(), path)
    return resolve(doc, body["content"]["application/json"]["schema"])


def expected_property(f):
    """What tp.schema's :body() promises for a declared field (None: custom, its own)."""
    t = f["type"]
    if t in ("ident", "text"):
        p = {"type": "string", "minLength": 1,
             "maxLength": f.get("max") or (64 if t == "ident" else 100)}
    elif t == "integer":
        p = {"type": "integer", "minimum": f.get("min") or 0, "maximum": f.get("max")}
    elif t == "epoch":
        p = {"type": "integer", "minimum": 0, "maximum": MAX_EPOCH}
    elif t == "boolean":
        p = {"type": "boolean"}
    elif t == "enum":
        p = {"type": "string", "enum": f["values"]}
    elif t == "list":
        p = {"type": "array", "maxItems": f.get("max_items")}
    else:
        return None
    p["nullable"] = True if f.get("nullable") else None
    return p


def differences(plugin, route, doc):
    """Lines naming each way the document's body differs from the declaration."""
    method, path = route["method"].lower(), doc_path(route["path"], route["auth"])
    where = "%s %s %s" % (plugin, route["method"], route["path"])
    body = request_body(doc, path, method)
    props = body.get("properties") or {}
    fields = [f for f in route["fields"] if f["patch" if route["patch"] else "create"]]
    out = []
    declared = {f["name"] for f in fields}
    for name in sorted(set(props) - declared):
        out.append("%s: documents %s, which the schema does not declare" % (where, name))
    for name in sorted(declared - set(props)):
        out.append("%s: declares %s, which the document leaves out" % (where, name))
    want_required = [] if route["patch"] else sorted(f["name"] for f in fields if f.get("required"))
    got_required = sorted(body.get("required") or [])
    if got_required != want_required:
        out.append("%s: required is %s, the schema says %s" % (where, got_required, want_required))
    for f in fields:
        p = props.get(f["name"])
        want = expected_property(f)
        if p is None or want is None:
            continue
        for key, value in sorted(want.items()):
            if p.get(key) != value:
                out.append("%s: %s.%s is %r, the schema says %r" % (where, f["name"], key, p.get(key), value))
    return out


def served():
    h = host()
    status, _, doc = h.get("/v1/walk/openapi.json")
    assert status == 200, (status, doc)
    status, _, admin = h.admin("GET", "/openapi.json", T)
    assert status == 200, (status, admin)
    doc["paths"].update(admin["paths"])
    status, _, schemas = h.admin("GET", "/schemawalk", T)
    assert status == 200, (status, schemas)
    return doc, schemas


def test_every_declaring_plugin_exports_its_schemas():
    _, schemas = served()
    assert set(schemas) == DECLARING, ("plugins exporting schemas", sorted(schemas), sorted(DECLARING))
    for plugin, routes in sorted(schemas.items()):
        assert routes, "%s exports schemas but no route takes a declared body" % plugin
        assert any(r["method"] in ("POST", "PUT") and not r["patch"] for r in routes), (plugin, routes)


def test_every_built_in_route_declares_its_answer():
    """Issue 18: a mall is built from the document, so no built-in route (the
    plugins' or the host's own) may leave its success answer untyped (tests/e2e/test_response_walk.py checks
    the real answers against these schemas)."""
    doc, _ = served()
    untyped = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            owner = (op.get("tags") or ["?"])[0]
            if owner == "schemawalk":   # this test's own helper
                continue
            if not any(code.startswith("2") and "schema" in r.get("content", {}).get("application/json", {})
                       for code, r in op["responses"].items()):
                untyped.append("%s %s %s" % (owner, method.upper(), path))
    assert not untyped, "routes without an answer schema:\n" + "\n".join(sorted(untyped))


def test_documented_bodies_agree_with_the_declared_schemas():
    doc, schemas = served()
    problems, walked = [], 0
    for plugin, routes in sorted(schemas.items()):
        for route in routes:
            problems += differences(plugin, route, doc)
            walked += len(route["fields"])
    assert not problems, "\n".join(problems)
    assert walked >= 60, walked


def owner(op):
    """The plugin of an operation: operationIds are <plugin>_<method>_<path>."""
    op_id = op.get("operationId", "")
    return max((p for p in PLUGINS if op_id.startswith(p + "_")), key=len, default=None)


def test_every_other_documented_body_is_listed_with_its_reason():
    doc, schemas = served()
    declared = {(plugin, r["method"].lower(), doc_path(r["path"], r["auth"]))
                for plugin, routes in schemas.items() for r in routes}
    listed = {}
    for key in HAND_WRITTEN:
        plugin, method, path = key.split(" ")
        listed[(plugin, method.lower(), path)] = key
    unlisted, seen = [], set()
    for path, item in sorted(doc["paths"].items()):
        for method in METHODS:
            op = item.get(method)
            plugin = op and owner(op)
            if not plugin or plugin == "schemawalk" or "requestBody" not in op:
                continue
            if (plugin, method, path) in declared:
                continue
            key = (plugin, method, re.sub(r"^/(admin|v1)/walk", "", path))
            if key in listed:
                seen.add(listed[key])
                continue
            unlisted.append("%s %s %s" % (plugin, method.upper(), path))
    assert not unlisted, "request bodies neither declared with tp.schema nor in HAND_WRITTEN:\n" + \
        "\n".join(unlisted)
    stale = sorted(set(HAND_WRITTEN) - seen)
    assert not stale, "HAND_WRITTEN lists bodies the document does not have: %s" % stale


if __name__ == "__main__":
    run(globals())
