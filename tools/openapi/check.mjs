// check.mjs - the OpenAPI checks of CI, in node (installed by tools/bootstrap.sh --test).
//
//   node tools/openapi/check.mjs docs FILE...     each file an OpenAPI document:
//       validated against the OpenAPI 3.0 schema by @seriousme/openapi-schema-validator
//   node tools/openapi/check.mjs walk FILE...     each file JSON lines recorded by
//       tests/e2e/harness.py (TIDEPOOL_RECORD_DIR): every recorded response checked
//       against the schema its host's document declares for it (ajv, OpenAPI's
//       `nullable` understood)
//
// Prints one line per problem and a JSON summary line last; exits 1 on any problem.
import fs from "node:fs";
import Ajv from "ajv";
import { Validator } from "@seriousme/openapi-schema-validator";

const [mode, ...files] = process.argv.slice(2);

async function checkDocs() {
  let problems = 0;
  for (const file of files) {
    const doc = JSON.parse(fs.readFileSync(file, "utf8"));
    const res = await new Validator().validate(doc);
    if (!res.valid) {
      problems++;
      console.log(`${file}: not valid OpenAPI ${doc.openapi}: ${JSON.stringify(res.errors).slice(0, 2000)}`);
    }
  }
  console.log(JSON.stringify({ documents: files.length, invalid: problems }));
  return problems;
}

// ---- the walk

// Local $refs ("#/components/schemas/Error") replaced by what they point at.
function inline(doc, node, depth = 0) {
  if (depth > 50) throw new Error("$ref cycle");
  if (Array.isArray(node)) return node.map((v) => inline(doc, v, depth + 1));
  if (!node || typeof node !== "object") return node;
  if (typeof node.$ref === "string") {
    let target = doc;
    for (const part of node.$ref.replace(/^#\//, "").split("/"))
      target = target[part.replace(/~1/g, "/").replace(/~0/g, "~")];
    return inline(doc, target, depth + 1);
  }
  const out = {};
  for (const [k, v] of Object.entries(node)) out[k] = inline(doc, v, depth + 1);
  return out;
}

// The operation of a request: the path template that matches it, then the method.
function findOperation(doc, method, path) {
  for (const [template, item] of Object.entries(doc.paths || {})) {
    const re = new RegExp("^" + template.replace(/[.*+?^$()|[\]\\]/g, "\\$&")
      .replace(/\{[^}]+\}/g, "[^/]+") + "$");
    if (re.test(path) && item[method.toLowerCase()]) return { template, op: item[method.toLowerCase()] };
  }
  return null;
}

const ajv = new Ajv({ strict: false, validateFormats: false, allErrors: false });
const compiled = new Map();
function validatorFor(key, schema) {
  if (!compiled.has(key)) compiled.set(key, ajv.compile(schema));
  return compiled.get(key);
}

function checkWalk() {
  const docs = new Map();  // host|tenant -> { v1, admin }
  const records = [];
  for (const file of files) {
    for (const line of fs.readFileSync(file, "utf8").split("\n")) {
      if (!line.trim()) continue;
      const r = JSON.parse(line);
      r.file = file;
      if (r.kind === "docs") docs.set(`${r.host}|${r.tenant}`, { v1: r.v1, admin: r.admin });
      else records.push(r);
    }
  }
  const builtin = new Set(JSON.parse(process.env.TIDEPOOL_BUILTIN_PLUGINS || "[]"));
  // routes whose answer is not declared yet ("plugin METHOD /v1/path"): reported, not failed
  const pending = new Set(JSON.parse(process.env.TIDEPOOL_WALK_PENDING || "[]"));
  const pendingSeen = new Set();
  const hostCodes = new Set(JSON.parse(process.env.TIDEPOOL_HOST_ERROR_CODES || "[]"));
  const declaredCodes = (resp) => {
    const s = resp.content && resp.content["application/json"] && resp.content["application/json"].schema;
    const code = s && s.allOf && s.allOf[1].properties.error.properties.code;
    return (code && (code.enum || (code.anyOf || []).flatMap((a) => a.enum || []))) || [];
  };
  const seen = new Set();
  let checked = 0, unmatched = 0;
  const problems = [];
  for (const r of records) {
    const d = docs.get(`${r.host}|${r.tenant}`);
    const doc = d && (r.path.startsWith("/admin/") ? d.admin : d.v1);
    const found = doc && findOperation(doc, r.method, r.path);
    if (!found) { unmatched++; continue; }  // a route a test mounted and reloaded away
    const { template, op } = found;
    const plugin = (op.tags || [])[0];
    const where = `${r.method} ${template} -> ${r.status} (${r.file.replace(/.*\//, "")})`;
    const declared = op.responses[String(r.status)];
    let schema = declared && declared.content && declared.content["application/json"] &&
      declared.content["application/json"].schema;
    let which = declared ? "declared" : "default";
    if (r.status < 300) {
      if (!declared) {
        if (builtin.has(plugin)) problems.push(`${where}: the document declares no ${r.status} response`);
        continue;
      }
      if (!schema) {
        const key = `${plugin} ${r.method} ${template.replace(/^\/(v1|admin)\/[^/]+/, "/$1")}`;
        if (pending.has(key)) pendingSeen.add(key);
        else if (builtin.has(plugin)) problems.push(`${where}: ${plugin} declares no response schema`);
        continue;
      }
    } else if (declared && hostCodes.has(r.body && r.body.error && r.body.error.code) &&
               !declaredCodes(declared).includes(r.body.error.code)) {
      // the host's own error (a malformed body, query or path) at a status the route also uses
      schema = op.responses.default.content["application/json"].schema;
      which = "default";
    } else if (!declared) {
      // not declared by its status: the host's own errors (default), or a plugin's undeclared one
      const code = r.body && r.body.error && r.body.error.code;
      if (builtin.has(plugin) && r.plugin_error)
        problems.push(`${where}: ${plugin} answers ${r.status} ${code} but declares no ${r.status} in errors`);
      schema = op.responses.default.content["application/json"].schema;
    }
    const validate = validatorFor(`${r.host}|${r.tenant}|${template}|${r.method}|${r.status}|${which}`,
      inline(doc, schema));
    checked++;
    seen.add(`${plugin} ${r.method} ${template.replace(/^\/(v1|admin)\/[^/]+/, "/$1")}`);
    if (!validate(r.body)) {
      const e = validate.errors[0];
      problems.push(`${where}: body${e.instancePath} ${e.message} ${JSON.stringify(e.params)}: ` +
        JSON.stringify(r.body).slice(0, 300));
    }
  }
  for (const p of [...new Set(problems)]) console.log(p);
  console.log(JSON.stringify({ records: records.length, checked, unmatched, operations: [...seen].sort(),
    pending: [...pendingSeen].sort(),
    problems: new Set(problems).size }));
  return problems.length;
}

const problems = mode === "docs" ? await checkDocs() : mode === "walk" ? checkWalk() : -1;
if (problems < 0) {
  console.error("usage: node tools/openapi/check.mjs docs|walk FILE...");
  process.exit(2);
}
process.exit(problems ? 1 : 0);
