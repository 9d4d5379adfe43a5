/*
** scaffold.c - `tidepool new plugin NAME`: a plugin folder that loads, passes
** `tidepool check` and has a passing test, for an agency to grow.
**
** The templates use @NAME@ for the plugin's name. The test uses only the test
** kit's contract (kit.user(..):post/get, expect(..).to_be/to_equal,
** kit.advance).
*/
#include "cli/scaffold.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/buf.h"
#include "config/config.h"

const char tpcmd_usage_new[] =
    "usage: tidepool new plugin NAME [--dir DIR]\n"
    "\n"
    "Creates DIR/NAME/ (DIR: the current directory) with plugin.lua (a manifest with a\n"
    "documented route, a migration and a job the route schedules, annotated for LuaLS:\n"
    "add sdk/types to your editor's Lua library), README.md and test/NAME_test.lua\n"
    "(run it with `tidepool test DIR/NAME`). NAME is a plugin name: [a-z][a-z0-9_]*, at\n"
    "most 32 bytes, not ending in _. Refuses a bad name or an existing folder (exit 2).\n";

static const char plugin_tpl[] =
    "-- @NAME@: counts the visits of each user and thanks a visitor an hour after the\n"
    "-- first visit. A starting point: replace the rules, keep the shape (manifest and\n"
    "-- schema first, then one small function per route or job).\n"
    "--\n"
    "-- Editor support: add tidepool's sdk/types folder to LuaLS (\"workspace.library\");\n"
    "-- tp, req and job then complete and type-check. Reference: sdk/reference.md.\n"
    "-- Check without serving: tidepool check <this folder>. Tests: tidepool test <this folder>.\n"
    "\n"
    "local THANK_AFTER_S = 3600\n"
    "\n"
    "---POST /@NAME@/visits: one more visit of the calling user.\n"
    "---@param req TpRequest\n"
    "local function visit(req)\n"
    "  local row = tp.db.one([[\n"
    "    INSERT INTO @NAME@_visits (user, visits, thanked, last_at) VALUES (?, 1, 0, ?)\n"
    "    ON CONFLICT (user) DO UPDATE SET visits = visits + 1, last_at = excluded.last_at\n"
    "    RETURNING visits]], req.user, tp.now())\n"
    "  if row.visits == 1 then\n"
    "    -- written in this transaction: the job exists only if the visit is saved\n"
    "    tp.jobs.schedule(\"thank\", { user = req.user },\n"
    "                     { after = THANK_AFTER_S, key = \"thank:\" .. req.user })\n"
    "  end\n"
    "  return 201, { user = req.user, visits = row.visits }\n"
    "end\n"
    "\n"
    "---GET /@NAME@/visits/me: the calling user's visits.\n"
    "---@param req TpRequest\n"
    "local function mine(req)\n"
    "  local row = tp.db.one(\"SELECT visits, thanked FROM @NAME@_visits WHERE user = ?\", req.user)\n"
    "  if not row then tp.fail(404, \"no_visits\", \"this user has not visited yet\") end\n"
    "  return 200, { user = req.user, visits = row.visits, thanked = row.thanked == 1 }\n"
    "end\n"
    "\n"
    "---The thank-you job, an hour after a user's first visit.\n"
    "---@param job TpJob\n"
    "local function thank(job)\n"
    "  tp.db.exec(\"UPDATE @NAME@_visits SET thanked = 1 WHERE user = ?\", job.payload.user)\n"
    "end\n"
    "\n"
    "local visit_schema = {\n"
    "  type = \"object\", required = { \"user\", \"visits\" },\n"
    "  properties = { user = { type = \"string\" }, visits = { type = \"integer\" } },\n"
    "}\n"
    "\n"
    "---@type TpManifest\n"
    "return {\n"
    "  name = \"@NAME@\",\n"
    "  version = \"0.1.0\",\n"
    "  description = \"Counts visits and thanks first-time visitors\",\n"
    "\n"
    "  -- applied once each, in order; append new ones, never edit a released one\n"
    "  migrations = {\n"
    "    [[CREATE TABLE @NAME@_visits (\n"
    "        user    TEXT PRIMARY KEY,\n"
    "        visits  INTEGER NOT NULL,\n"
    "        thanked INTEGER NOT NULL DEFAULT 0,\n"
    "        last_at INTEGER NOT NULL)]],\n"
    "  },\n"
    "\n"
    "  routes = {\n"
    "    { method = \"POST\", path = \"/@NAME@/visits\", auth = \"user\", handler = visit,\n"
    "      summary = \"Count a visit of the calling user\",\n"
    "      description = \"The first visit schedules a thank-you an hour later.\",\n"
    "      status = 201, response = visit_schema },\n"
    "    { method = \"GET\", path = \"/@NAME@/visits/me\", auth = \"user\", handler = mine,\n"
    "      summary = \"The calling user's visits\",\n"
    "      response = { type = \"object\", properties = {\n"
    "        user = { type = \"string\" }, visits = { type = \"integer\" },\n"
    "        thanked = { type = \"boolean\" } } } },\n"
    "  },\n"
    "\n"
    "  jobs = { thank = thank },\n"
    "}\n";

static const char readme_tpl[] =
    "# @NAME@\n"
    "\n"
    "One paragraph for the brand: what this plugin does and for whom.\n"
    "\n"
    "## Enable it\n"
    "\n"
    "Copy the folder into a plugin directory of the host and enable it for a tenant:\n"
    "\n"
    "```lua\n"
    "plugins = { @NAME@ = {} }\n"
    "```\n"
    "\n"
    "## Config\n"
    "\n"
    "| Key | Type | Default | Meaning |\n"
    "|---|---|---|---|\n"
    "| (none yet) | | | |\n"
    "\n"
    "## Routes\n"
    "\n"
    "| Method | Path | Auth | What it does |\n"
    "|---|---|---|---|\n"
    "| POST | /v1/{tenant}/@NAME@/visits | user | counts a visit (201) |\n"
    "| GET | /v1/{tenant}/@NAME@/visits/me | user | the caller's visits (404 no_visits) |\n"
    "\n"
    "The OpenAPI document of a tenant (`GET /v1/{tenant}/openapi.json`) lists them with\n"
    "their schemas.\n"
    "\n"
    "## Errors\n"
    "\n"
    "| Status | Code | When |\n"
    "|---|---|---|\n"
    "| 404 | no_visits | the user has not visited yet |\n"
    "\n"
    "## Jobs and events\n"
    "\n"
    "- job `thank`: an hour after a user's first visit, marks them thanked.\n"
    "- emits: none. Subscribes to: none.\n"
    "\n"
    "## Data\n"
    "\n"
    "- `@NAME@_visits`: one row per user (visits, thanked, last_at epoch seconds).\n"
    "\n"
    "Migrations are append-only: add a new one, never edit a released one.\n"
    "\n"
    "## Invariants\n"
    "\n"
    "What always holds (for example: a user is thanked at most once).\n"
    "\n"
    "## Develop\n"
    "\n"
    "```sh\n"
    "tidepool check @NAME@      # loads it without serving: manifest, syntax, migrations, routes\n"
    "tidepool test @NAME@       # runs test/*_test.lua against the real host\n"
    "```\n"
    "\n"
    "## Changelog\n"
    "\n"
    "- 0.1.0: first version.\n";

static const char test_tpl[] =
    "-- Tests of @NAME@, run by `tidepool test`: a fresh database, tenant \"test\" on a\n"
    "-- test clock, this plugin enabled.\n"
    "\n"
    "describe(\"@NAME@ visits\", function()\n"
    "  it(\"counts a user's visits\", function()\n"
    "    local u = kit.user(\"u1\")\n"
    "    local res = u:post(\"/@NAME@/visits\", { page = \"home\" })\n"
    "    expect(res.status).to_be(201)\n"
    "    expect(res.body).to_equal({ user = \"u1\", visits = 1 })\n"
    "    res = u:post(\"/@NAME@/visits\", { page = \"home\" })\n"
    "    expect(res.body.visits).to_be(2)\n"
    "  end)\n"
    "\n"
    "  it(\"thanks a first-time visitor an hour later\", function()\n"
    "    local u = kit.user(\"u2\")\n"
    "    expect(u:post(\"/@NAME@/visits\", { page = \"home\" }).status).to_be(201)\n"
    "    expect(u:get(\"/@NAME@/visits/me\").body.thanked).to_be(false)\n"
    "    kit.advance(3600)\n"
    "    local res = u:get(\"/@NAME@/visits/me\")\n"
    "    expect(res.status).to_be(200)\n"
    "    expect(res.body).to_equal({ user = \"u2\", visits = 1, thanked = true })\n"
    "  end)\n"
    "\n"
    "  it(\"answers 404 no_visits before the first visit\", function()\n"
    "    local res = kit.user(\"u3\"):get(\"/@NAME@/visits/me\")\n"
    "    expect(res.status).to_be(404)\n"
    "    expect(res.body.error.code).to_be(\"no_visits\")\n"
    "  end)\n"
    "end)\n";

/* Writes tpl with @NAME@ replaced by name to path. 0 or -1 (reported). */
static int write_template(const char *path, const char *tpl, const char *name) {
  tp_buf b;
  tp_buf_init(&b);
  for (const char *s = tpl; *s;) {
    const char *at = strstr(s, "@NAME@");
    size_t n = at ? (size_t)(at - s) : strlen(s);
    tp_buf_add(&b, s, n);
    if (!at) break;
    tp_buf_adds(&b, name);
    s = at + 6;
  }
  FILE *f = fopen(path, "wx");
  int rc = f && fwrite(b.data, 1, b.len, f) == b.len ? 0 : -1;
  if (f && fclose(f) != 0) rc = -1;
  if (rc != 0) fprintf(stderr, "tidepool: cannot write %s: %s\n", path, strerror(errno));
  tp_buf_free(&b);
  return rc;
}

int tpcmd_new(int argc, char **argv) {
  const char *kind = NULL, *name = NULL, *dir = ".";
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(tpcmd_usage_new, stdout);
      return 0;
    }
    if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) dir = argv[++i];
    else if (argv[i][0] == '-' || (kind && name)) {
      fprintf(stderr, "tidepool: unexpected argument '%s'\n\n%s", argv[i], tpcmd_usage_new);
      return 2;
    } else if (!kind) kind = argv[i];
    else name = argv[i];
  }
  if (!kind || strcmp(kind, "plugin") != 0 || !name) {
    fprintf(stderr, "tidepool: new needs 'plugin NAME'\n\n%s", tpcmd_usage_new);
    return 2;
  }
  if (!tpc_valid_plugin_name(name)) {
    fprintf(stderr, "tidepool: '%s' is not a plugin name: lowercase letters, digits and _, "
            "starting with a letter, not ending in _, at most 32 bytes (e.g. lucky_draw)\n", name);
    return 2;
  }
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    fprintf(stderr, "tidepool: %s is not a directory\n", dir);
    return 2;
  }
  char root[1024], test[1100], path[1200];
  snprintf(root, sizeof root, "%s/%s", dir, name);
  if (stat(root, &st) == 0 || errno != ENOENT) {
    fprintf(stderr, "tidepool: %s already exists; nothing was written\n", root);
    return 2;
  }
  snprintf(test, sizeof test, "%s/test", root);
  if (mkdir(root, 0755) != 0 || mkdir(test, 0755) != 0) {
    fprintf(stderr, "tidepool: cannot create %s: %s\n", test, strerror(errno));
    return 2;
  }
  snprintf(path, sizeof path, "%s/plugin.lua", root);
  if (write_template(path, plugin_tpl, name) != 0) return 2;
  printf("created %s\n", path);
  snprintf(path, sizeof path, "%s/README.md", root);
  if (write_template(path, readme_tpl, name) != 0) return 2;
  printf("created %s\n", path);
  snprintf(path, sizeof path, "%s/%s_test.lua", test, name);
  if (write_template(path, test_tpl, name) != 0) return 2;
  printf("created %s\n", path);
  printf("next: tidepool check %s && tidepool test %s\n", root, root);
  return 0;
}
