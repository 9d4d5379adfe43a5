/*
** apidoc.c - LuaLS stubs and the Markdown reference from api.c's declaration.
**
** Nothing here knows a function or a field by name: every line comes from
** tpa_functions (the functions, their contexts, signature, types and doc) and
** tpa_shapes (the tables plugins are handed or hand back). Adding an entry
** there changes `tidepool api`'s output, and tests/e2e/test_sdk_stubs.py then
** fails until sdk/types/tp.lua and sdk/reference.md are regenerated.
*/
#include "cli/apidoc.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "lua/api.h"

#define WRAP 92  /* columns of a doc comment line in the stubs */

const char tpcmd_usage_api[] =
    "usage: tidepool api [--luals | --markdown]\n"
    "\n"
    "Prints the Lua API the host gives plugins, generated from its one declaration\n"
    "(core/lua/api.c): --luals (the default) the LuaLS `---@meta` stubs committed as\n"
    "sdk/types/tp.lua, --markdown the reference committed as sdk/reference.md.\n"
    "Regenerate both after changing the declaration:\n"
    "  tidepool api --luals > sdk/types/tp.lua && tidepool api --markdown > sdk/reference.md\n";

/* ---- small helpers */

/* Appends text as "---" comment lines of at most WRAP columns. */
static void add_comment(tp_buf *out, const char *text) {
  const char *s = text;
  while (*s) {
    size_t room = WRAP - 3, n = strlen(s);
    if (n > room) {
      n = room;
      while (n > 0 && s[n] != ' ') n--;
      if (n == 0) n = strcspn(s, " ");  /* one word longer than a line */
    }
    tp_buf_adds(out, "---");
    tp_buf_add(out, s, n);
    tp_buf_addc(out, '\n');
    s += n;
    while (*s == ' ') s++;
  }
}

/* "tp", "tp.db", ...: the table a function of module lives in. */
static void qualified(char *dst, size_t cap, const tpa_fn *f) {
  if (f->module) snprintf(dst, cap, "tp.%s.%s", f->module, f->name);
  else snprintf(dst, cap, "tp.%s", f->name);
}

static bool in_class(const tpa_fn *f, const char *cls) {
  if (!f->module) return strcmp(cls, "tp") == 0;
  return strncmp(cls, "tp.", 3) == 0 && strcmp(cls + 3, f->module) == 0;
}

static bool api_class(const char *cls) { return strcmp(cls, "tp") == 0 || strncmp(cls, "tp.", 3) == 0; }

static void contexts(tp_buf *out, int ctx) {
  bool first = true;
  for (int i = 0; i < TP_CTX_COUNT; i++)
    if (ctx & (1 << i)) {
      if (!first) tp_buf_adds(out, ", ");
      tp_buf_adds(out, tpa_context_names[i]);
      first = false;
    }
}

/* One "@param"/"@return" line of a types string, split into words. */
typedef struct {
  bool param;
  char name[48];   /* param: "epoch?"; return: "" or a name */
  char type[160];
  char desc[256];
} type_line;

/* Reads the line at *s and advances past it; false at the end. */
static bool next_type_line(const char **s, type_line *tl) {
  const char *p = *s;
  if (!p || !*p) return false;
  size_t n = strcspn(p, "\n");
  char line[512];
  snprintf(line, sizeof line, "%.*s", (int)n, p);
  *s = p[n] ? p + n + 1 : p + n;
  memset(tl, 0, sizeof *tl);
  char *rest;
  tl->param = strncmp(line, "@param ", 7) == 0;
  rest = line + (tl->param ? 7 : strncmp(line, "@return ", 8) == 0 ? 8 : 0);
  char *w1 = strtok_r(rest, " ", &rest);
  if (!w1) return true;
  if (tl->param) {
    tp_copy_str(tl->name, sizeof tl->name, w1);
    char *w2 = strtok_r(NULL, " ", &rest);
    tp_copy_str(tl->type, sizeof tl->type, w2 ? w2 : "any");
    tp_copy_str(tl->desc, sizeof tl->desc, rest ? rest : "");
  } else {
    tp_copy_str(tl->type, sizeof tl->type, w1);
    while (rest && *rest == ' ') rest++;
    if (rest && *rest && *rest != '#') {
      char *w2 = strtok_r(NULL, " ", &rest);
      tp_copy_str(tl->name, sizeof tl->name, w2);
      while (rest && *rest == ' ') rest++;
    }
    if (rest && *rest == '#') rest++;
    while (rest && *rest == ' ') rest++;
    tp_copy_str(tl->desc, sizeof tl->desc, rest ? rest : "");
  }
  return true;
}

/* ---- LuaLS */

static void luals_function(tp_buf *out, const tpa_fn *f) {
  char name[96];
  qualified(name, sizeof name, f);
  tp_buf_addc(out, '\n');
  add_comment(out, f->doc);
  tp_buf_adds(out, "---\n---Allowed in: ");
  contexts(out, f->contexts);
  tp_buf_adds(out, ".\n");
  for (const char *s = f->types; *s;) {
    size_t n = strcspn(s, "\n");
    tp_buf_adds(out, "---");
    tp_buf_add(out, s, n);
    tp_buf_addc(out, '\n');
    s += s[n] ? n + 1 : n;
  }
  tp_buf_printf(out, "function %s(", name);
  type_line tl;
  bool first = true;
  for (const char *s = f->types; next_type_line(&s, &tl);) {
    if (!tl.param) continue;
    size_t k = strcspn(tl.name, "?");
    tp_buf_printf(out, "%s%.*s", first ? "" : ", ", (int)k, tl.name);
    first = false;
  }
  tp_buf_adds(out, ") end\n");
}

void tpd_luals(tp_buf *out) {
  tp_buf_adds(out,
              "---@meta tp\n"
              "-- The Lua API tidepool gives plugins, for LuaLS (lua-language-server): add sdk/types\n"
              "-- to workspace.library, and annotate handlers (---@param req TpRequest) and the\n"
              "-- manifest (---@type TpManifest).\n"
              "--\n"
              "-- Generated by `tidepool api --luals` from core/lua/api.c (tpa_functions, tpa_shapes);\n"
              "-- do not edit. After changing the declaration:\n"
              "--   tidepool api --luals > sdk/types/tp.lua\n");
  for (int c = 0; tpa_shapes[c].cls; c++) {
    const tpa_field *cls = &tpa_shapes[c];
    if (cls->name) continue;  /* a field: written under its class */
    tp_buf_addc(out, '\n');
    add_comment(out, cls->doc);
    tp_buf_printf(out, "---@class %s\n", cls->cls);
    for (int i = c + 1; tpa_shapes[i].cls && tpa_shapes[i].name; i++) {
      const tpa_field *f = &tpa_shapes[i];
      tp_buf_printf(out, "---@field %s %s", f->name, f->type);
      if (f->doc[0]) tp_buf_printf(out, " %s", f->doc);
      tp_buf_addc(out, '\n');
    }
    if (!api_class(cls->cls)) continue;
    tp_buf_printf(out, "%s = {}\n", cls->cls);
    for (int i = 0; tpa_functions[i].name; i++)
      if (in_class(&tpa_functions[i], cls->cls)) luals_function(out, &tpa_functions[i]);
  }
}

/* ---- Markdown */

/* Appends s with the characters a Markdown table cell cannot hold escaped. */
static void md_cell(tp_buf *out, const char *s) {
  for (; *s; s++) {
    if (*s == '|') tp_buf_addc(out, '\\');
    tp_buf_addc(out, *s);
  }
}

static void md_code_cell(tp_buf *out, const char *s) {
  tp_buf_addc(out, '`');
  md_cell(out, s);
  tp_buf_addc(out, '`');
}

static void md_function(tp_buf *out, const tpa_fn *f) {
  char name[96];
  qualified(name, sizeof name, f);
  tp_buf_printf(out, "\n### %s\n\n```lua\n%s\n```\n\n%s\n\n**Allowed in:** ", name, f->signature,
                f->doc);
  contexts(out, f->contexts);
  tp_buf_adds(out, "\n");
  type_line tl;
  bool any = false;
  for (const char *s = f->types; next_type_line(&s, &tl);) {
    if (!tl.param) continue;
    if (!any) tp_buf_adds(out, "\n| Parameter | Type | Description |\n|---|---|---|\n");
    any = true;
    tp_buf_adds(out, "| ");
    md_code_cell(out, tl.name);
    tp_buf_adds(out, " | ");
    md_code_cell(out, tl.type);
    tp_buf_adds(out, " | ");
    md_cell(out, tl.desc);
    tp_buf_adds(out, " |\n");
  }
  any = false;
  for (const char *s = f->types; next_type_line(&s, &tl);) {
    if (tl.param) continue;
    if (!any) tp_buf_adds(out, "\n| Returns | Type | Description |\n|---|---|---|\n");
    any = true;
    tp_buf_adds(out, "| ");
    md_cell(out, tl.name[0] ? tl.name : "");
    tp_buf_adds(out, " | ");
    md_code_cell(out, tl.type);
    tp_buf_adds(out, " | ");
    md_cell(out, tl.desc);
    tp_buf_adds(out, " |\n");
  }
}

static void md_fields(tp_buf *out, int c) {
  if (!tpa_shapes[c + 1].cls || !tpa_shapes[c + 1].name) return;
  tp_buf_adds(out, "\n| Field | Type | Description |\n|---|---|---|\n");
  for (int i = c + 1; tpa_shapes[i].cls && tpa_shapes[i].name; i++) {
    const tpa_field *f = &tpa_shapes[i];
    tp_buf_adds(out, "| ");
    md_code_cell(out, f->name);
    tp_buf_adds(out, " | ");
    md_code_cell(out, f->type);
    tp_buf_adds(out, " | ");
    md_cell(out, f->doc);
    tp_buf_adds(out, " |\n");
  }
}

void tpd_markdown(tp_buf *out) {
  tp_buf_adds(out,
              "# The tidepool Lua API\n"
              "\n"
              "<!-- Generated by `tidepool api --markdown` from core/lua/api.c (tpa_functions,\n"
              "     tpa_shapes); do not edit: tidepool api --markdown > sdk/reference.md -->\n"
              "\n"
              "Every function and field the host gives plugins, and the tables they receive and\n"
              "return. The same declaration checks calls at run time and generates the LuaLS\n"
              "stubs in `sdk/types/tp.lua`.\n"
              "\n"
              "**Contexts.** `load`: while `plugin.lua` runs (module level); `handler`: a route\n"
              "handler, inside the request's transaction; `job`: a job handler; `event`: an event\n"
              "handler (`subscribe`); `setup`: the manifest's `setup`, in its own transaction after\n"
              "the migrations of each load. Exports run in their caller's context. Calling a function\n"
              "outside its contexts raises `tp.X is not available ... (allowed in: ...)`; at load\n"
              "that fails the plugin, and `tidepool check` reports it.\n"
              "\n"
              "## Contents\n\n");
  for (int c = 0; tpa_shapes[c].cls; c++) {
    if (tpa_shapes[c].name) continue;
    tp_buf_printf(out, "- `%s`", tpa_shapes[c].cls);
    bool first = true;
    for (int i = 0; api_class(tpa_shapes[c].cls) && tpa_functions[i].name; i++)
      if (in_class(&tpa_functions[i], tpa_shapes[c].cls)) {
        tp_buf_printf(out, "%s%s", first ? ": " : ", ", tpa_functions[i].name);
        first = false;
      }
    tp_buf_addc(out, '\n');
  }
  bool shapes_begun = false;
  for (int c = 0; tpa_shapes[c].cls; c++) {
    const tpa_field *cls = &tpa_shapes[c];
    if (cls->name) continue;
    if (!api_class(cls->cls) && !shapes_begun) {
      tp_buf_adds(out, "\n## Tables plugins receive and return\n");
      shapes_begun = true;
    }
    tp_buf_printf(out, "\n%s %s\n\n%s\n", api_class(cls->cls) ? "##" : "###", cls->cls, cls->doc);
    md_fields(out, c);
    for (int i = 0; api_class(cls->cls) && tpa_functions[i].name; i++)
      if (in_class(&tpa_functions[i], cls->cls)) md_function(out, &tpa_functions[i]);
  }
}

/* ---- the command */

int tpcmd_api(int argc, char **argv) {
  bool markdown = false;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(tpcmd_usage_api, stdout);
      return 0;
    }
    if (strcmp(argv[i], "--luals") == 0) markdown = false;
    else if (strcmp(argv[i], "--markdown") == 0) markdown = true;
    else {
      fprintf(stderr, "tidepool: unknown option '%s'\n\n%s", argv[i], tpcmd_usage_api);
      return 2;
    }
  }
  tp_buf out;
  tp_buf_init(&out);
  if (markdown) tpd_markdown(&out);
  else tpd_luals(&out);
  fwrite(out.data, 1, out.len, stdout);
  tp_buf_free(&out);
  return 0;
}
