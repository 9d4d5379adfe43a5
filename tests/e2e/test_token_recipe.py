"""
test_token_recipe.py - the README's production-login section mints user tokens
the host accepts.

The Python and Node reference implementations are read from README.md (the
fenced block after each `<!-- doc-test: token.py -->` / `token.js` marker), run
as they are, and their tokens sent to a real host: accepted as the user they
name, refused (401 token_expired, 403 wrong_tenant, 401 invalid_token) once expired,
for another tenant, or with another secret. Both implementations and the harness's own signer give the
same token for the same inputs, and `tidepool token` gives one of that form.
"""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SRC, Host, expect_error, run, sign_token, tenant  # noqa: E402

T = tenant("tea", plugins={"catalog": {}, "orders": {}})
OTHER = tenant("other", plugins={"catalog": {}, "orders": {}})
H = None


def host():
    global H
    if H is None:
        H = Host(tenants=[T, OTHER], name="recipe").start()
    return H


def snippet(name):
    """The code block after <!-- doc-test: NAME --> in README.md."""
    with open(os.path.join(SRC, "README.md"), encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"<!-- doc-test: %s -->\n```[a-z]+\n(.*?)\n```" % re.escape(name), text, re.S)
    assert m, "README.md has no block marked doc-test: %s" % name
    return m.group(1)


def python_token(secret, tid, user, ttl, now=None):
    ns = {}
    exec(compile(snippet("token.py"), "README.md:token.py", "exec"), ns)  # noqa: S102
    return ns["mint_user_token"](secret, tid, user, ttl, now)


def node_token(secret, tid, user, ttl, now=None):
    with tempfile.NamedTemporaryFile("w", suffix=".js", delete=False) as f:
        f.write(snippet("token.js") + "\nconst [s, t, u, ttl, now] = process.argv.slice(2);\n"
                "console.log(mintUserToken(s, t, u, Number(ttl), now ? Number(now) : undefined));\n")
        path = f.name
    try:
        args = ["node", path, secret, tid, user, str(ttl)] + ([str(now)] if now is not None else [])
        out = subprocess.run(args, capture_output=True, timeout=60)
    finally:
        os.unlink(path)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout.decode().strip()


MINTERS = {"python": python_token, "node": node_token}


def orders_of(token, tid="tea"):
    return host().get("/v1/%s/orders" % tid, headers={"Authorization": "Bearer " + token})


def test_each_reference_token_is_accepted_as_its_user():
    for lang, mint in MINTERS.items():
        user = "wx:o-%s@mall" % lang          # ':' and '@' are allowed in user ids
        status, _, body = orders_of(mint(T["token_secret"], "tea", user, 3600))
        assert status == 200 and body["items"] == [], (lang, status, body)
        # the token names the user: her checkout is hers
        status, _, o = host().post("/v1/tea/orders", {"lines": [{"sku": "none", "qty": 1}]},
                                   headers={"Authorization": "Bearer " + mint(
                                       T["token_secret"], "tea", user, 3600)})
        assert status == 404 and o["error"]["code"] == "sku_not_found", (lang, o)


def test_both_implementations_and_the_hosts_recipe_agree():
    now = 1767225600
    want = sign_token(T["token_secret"], "tea", "u1", now + 600)
    for lang, mint in MINTERS.items():
        assert mint(T["token_secret"], "tea", "u1", 600, now) == want, lang
    cli = host().token("tea", "u1")
    assert re.fullmatch(r"v1\.tea\.u1\.\d+\.[A-Za-z0-9_-]{43}", cli), cli


def test_an_expired_foreign_or_forged_token_is_refused():
    for lang, mint in MINTERS.items():
        expired = mint(T["token_secret"], "tea", "u1", -5)
        expect_error(orders_of(expired), 401, "token_expired")
        other_tenant = mint(OTHER["token_secret"], "other", "u1", 3600)
        expect_error(orders_of(other_tenant), 403, "wrong_tenant")
        forged = mint("not-the-tenants-secret-0123456789", "tea", "u1", 3600)
        expect_error(orders_of(forged), 401, "invalid_token")
        assert orders_of(other_tenant, "other")[0] == 200, lang


def teardown():
    if H is not None:
        H.stop()


if __name__ == "__main__":
    run(globals())
