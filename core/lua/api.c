/*
** api.c - the host API for plugins, declared once: the tp table's rows
** (what tplib.c implements, where it may be called, its documentation and
** LuaLS types), the shapes of the tables plugins exchange with the host, and
** opening it all in a plugin's state.
*/
#include "lua/api.h"

#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/json.h"
#include "lua/jsonview.h"
#include "base/crypto.h"
#include "base/rng.h"
#include "lua/tplib.h"
#include "lua/sandbox.h"

void tpa_seed(tp_invocation *inv, uint64_t seed) {
  inv->seed = seed;
  tp_rng_seed(inv->rng, seed);
}

/* ---- the declaration */

const tpa_fn tpa_functions[] = {
  {NULL, "now", tplib_now, TP_CTX_ANY, "tp.now() -> integer",
   "The host's clock as UTC epoch seconds, fixed for the whole invocation.",
   "@return integer # UTC epoch seconds"},
  {NULL, "now_ms", tplib_now_ms, TP_CTX_ANY, "tp.now_ms() -> integer",
   "The host's clock as UTC epoch milliseconds, fixed for the whole invocation.",
   "@return integer # UTC epoch milliseconds"},
  {NULL, "localtime", tplib_localtime, TP_CTX_ANY, "tp.localtime([epoch]) -> table",
   "Breaks an epoch (default now) down in the tenant's time zone: year, month, day, "
   "hour, min, sec, wday (1 = Monday), yday, utc_offset (seconds).",
   "@param epoch? integer UTC epoch seconds (default: now)\n"
   "@return TpLocaltime"},
  {NULL, "timezone", tplib_timezone, TP_CTX_ANY, "tp.timezone() -> string",
   "The tenant's time zone name, e.g. Asia/Shanghai.",
   "@return string"},
  {NULL, "random", tplib_random, TP_CTX_TXN, "tp.random([m [, n]]) -> number",
   "Like math.random, from a generator the host seeds per invocation and logs, so "
   "every draw can be replayed. math.random is the same function.",
   "@param m? integer alone: the upper bound of 1..m; with n: the lower bound\n"
   "@param n? integer the upper bound of m..n\n"
   "@return number # a float in [0,1) without arguments, else an integer"},
  {NULL, "seed", tplib_seed, TP_CTX_TXN, "tp.seed() -> integer",
   "The seed of this invocation's random generator.",
   "@return integer"},
  {NULL, "fail", tplib_fail, TP_CTX_ANY, "tp.fail(status, code, message [, details])",
   "Ends the handler: everything it wrote is rolled back and the client gets "
   "{\"error\":{\"code\",\"message\",\"details\"}} with status (400-599). While the "
   "plugin loads (checking its config with tp.check, say) the plugin does not load, "
   "and the load error is \"code: message\".",
   "@param status integer 400-599\n"
   "@param code string a stable error code of 1-39 bytes, e.g. sold_out\n"
   "@param message string for people\n"
   "@param details? any plain data, sent as error.details"},
  {NULL, "log", tplib_log, TP_CTX_ANY, "tp.log(level, message [, fields])",
   "Writes a JSON log line (level: debug, info, warn, error) tagged with tenant, "
   "plugin and request id; fields is a table added as is.",
   "@param level \"debug\"|\"info\"|\"warn\"|\"error\"\n"
   "@param message string\n"
   "@param fields? table plain data, logged under \"fields\""},
  {"db", "exec", tplib_db_exec, TP_CTX_TXN, "tp.db.exec(sql, ...) -> changes, last_insert_id",
   "Runs one statement with bound values (positional ?, or one table for :names). "
   "Raises on any SQL error, which rolls the request back.",
   "@param sql string one SQL statement on the plugin's own tables\n"
   "@param ... any values bound to ?, or one table for :names\n"
   "@return integer changes # rows changed\n"
   "@return integer last_insert_id"},
  {"db", "query", tplib_db_query, TP_CTX_TXN, "tp.db.query(sql, ...) -> rows",
   "Runs one statement and returns every row as a table of column = value "
   "(NULL columns are absent); the list encodes as a JSON array even when empty.",
   "@param sql string one SQL statement on the plugin's own tables\n"
   "@param ... any values bound to ?, or one table for :names\n"
   "@return table[] rows"},
  {"db", "one", tplib_db_one, TP_CTX_TXN, "tp.db.one(sql, ...) -> row | nil",
   "Runs one statement and returns its first row, or nil. RETURNING works.",
   "@param sql string one SQL statement on the plugin's own tables\n"
   "@param ... any values bound to ?, or one table for :names\n"
   "@return table? row"},
  {"jobs", "schedule", tplib_jobs_schedule, TP_CTX_TXN,
   "tp.jobs.schedule(name, payload, when) -> id",
   "Schedules the manifest's job name with payload (plain data) inside this transaction: it "
   "exists only if the transaction commits. when is seconds from now, or {at = epoch seconds "
   "| after = seconds [, every = seconds] [, key = string] [, max_attempts = n]}. A key is "
   "unique among the plugin's pending jobs: scheduling it again replaces that job. A job that "
   "raises is retried with exponential back-off, then dead-lettered.",
   "@param name string a job declared in the manifest's jobs table\n"
   "@param payload table? plain data, handed to the job as job.payload (nil: {})\n"
   "@param when number|TpJobWhen seconds from now, or when and how often\n"
   "@return integer id"},
  {"jobs", "cancel", tplib_jobs_cancel, TP_CTX_TXN, "tp.jobs.cancel(id | key) -> boolean",
   "Cancels one of the plugin's pending jobs (inside this transaction); false if none matched.",
   "@param id_or_key integer|string the id tp.jobs.schedule returned, or the job's key\n"
   "@return boolean # true if a pending job was cancelled"},
  {"events", "emit", tplib_events_emit, TP_CTX_TXN, "tp.events.emit(name, data) -> integer",
   "Writes event name with data to the outbox inside this transaction. After commit it is "
   "delivered to every subscribing plugin of the tenant, each delivery its own transaction, "
   "at least once and in order; returns the number of subscribers. The data is encoded to "
   "JSON once, and only when a plugin subscribes: an event nobody subscribes to costs "
   "nothing, and its data is not checked (then 0 is returned).",
   "@param name string 1-64 characters of a-z 0-9 _ . -\n"
   "@param data table? plain data, handed to subscribers as ev.data (nil: {})\n"
   "@return integer # the number of subscribers it will reach"},
  {NULL, "call", tplib_call, TP_CTX_TXN, "tp.call(plugin, name, ...) -> ...",
   "Calls a function that another plugin of the tenant exports, synchronously and inside "
   "this transaction. Arguments and results are copied as plain data. An error in the callee "
   "rolls back what it did and is raised in the caller (a tp.fail keeps its status and code).",
   "@param plugin string the name of an enabled plugin\n"
   "@param name string a function in that plugin's exports\n"
   "@param ... any plain data\n"
   "@return any ... # the export's results, copied"},
  {NULL, "call_view", tplib_call_view, TP_CTX_TXN, "tp.call_view(plugin, name, ...) -> ...",
   "tp.call, for a caller that passes a result on more than it reads it: each table the export "
   "returns arrives as a JSON view, its JSON encoded once in the callee, instead of a copy. "
   "v.key and v[i] read a member (a scalar as tp.json.decode gives it, a view of an object or "
   "array, or nil), #v counts an array, pairs(v) iterates it decoded, tostring(v) is its text; "
   "assigning raises (tp.json.decode(v) gives tables to change). A lookup reads the text up to "
   "its member: to walk a long array, decode it once (pairs or tp.json.decode), not v[i] by i. "
   "An answer, tp.json.encode and "
   "a job's or event's data write its text as it is; another plugin receives it, as an "
   "argument or result, as tables. type(v) is \"userdata\".",
   "@param plugin string the name of an enabled plugin\n"
   "@param name string a function in that plugin's exports\n"
   "@param ... any plain data\n"
   "@return any ... # the export's results: tables as views (TpJsonView), the rest copied"},
  {"http", "request", tplib_http_request, TP_CTX_TXN, "tp.http.request(call) -> integer",
   "Calls out over HTTP(S) to a destination the brand's config lists for this plugin (tenants[i]."
   "http): the call is written to the outbox in this transaction and made once it commits, so "
   "a rolled-back handler calls nobody. It is retried with back-off on a timeout, a failed "
   "connection, a 429 or a 5xx, up to its attempts, each with the same Idempotency-Key. The "
   "answer (or the final failure) goes to the plugin's job on_reply, in a transaction of its "
   "own (TpHttpReply in job.payload). Header values may name the destination's secrets as "
   "{{secret:NAME}}: the host puts them in as it sends, so they are never in plugin code, "
   "logs or recorded runs. Returns the call's id.",
   "@param call TpHttpCall\n"
   "@return integer # the call's id (reply.call_id)"},
  {"http", "allowed", tplib_http_allowed, TP_CTX_TXN, "tp.http.allowed(to) -> boolean",
   "Whether to is a destination of the brand's config that lists this plugin: check a name "
   "an operator gives (a webhook's destination, say) before storing it.",
   "@param to string a destination's name\n"
   "@return boolean"},
  {NULL, "config", tplib_config, TP_CTX_ANY, "tp.config() -> table",
   "The plugin's config table from the tenant's config (the same table a handler gets as "
   "req.config), in every context: jobs, event handlers and exports have no req.",
   "@return table"},
  {NULL, "caller", tplib_caller, TP_CTX_ANY, "tp.caller() -> string | nil",
   "Inside a function another plugin invoked with tp.call, that plugin's name (the immediate "
   "caller when calls nest); nil in a route handler, job or event handler the host invoked.",
   "@return string?"},
  {NULL, "exporters", tplib_exporters, TP_CTX_TXN, "tp.exporters(name) -> string[]",
   "The plugins serving this tenant (the caller included) that export a function called name, "
   "in name order: whom to tp.call for a hook such as member_merge.",
   "@param name string\n"
   "@return string[]"},
  {NULL, "exports", tplib_exports, TP_CTX_TXN, "tp.exports(plugin, name) -> boolean",
   "True when plugin serves this tenant and exports a function called name: whether a "
   "tp.call to an optional peer (catalog, members, coupons) can be made at all.",
   "@param plugin string\n"
   "@param name string\n"
   "@return boolean"},
  {"auth", "token", tplib_auth_token, TP_CTX_TXN, "tp.auth.token(user [, seconds]) -> string",
   "Mints a user token of this tenant for user, valid for seconds (default 7 days, 60 s to 90 "
   "days) of wall time, like the tokens the host verifies. Identity plugin (members) only.",
   "@param user string a member id\n"
   "@param seconds? integer lifetime, default 604800\n"
   "@return string"},
  {"auth", "alias", tplib_auth_alias, TP_CTX_TXN, "tp.auth.alias(from, into)",
   "From the end of this transaction on, tokens of from enter as into (a merge), and ids merged "
   "into from follow it. into must not itself be merged or erased. Identity plugin only.",
   "@param from string the merged member id\n"
   "@param into string the survivor"},
  {"auth", "unalias", tplib_auth_unalias, TP_CTX_TXN, "tp.auth.unalias(from) -> boolean",
   "Undoes tp.auth.alias for from (its tokens name it again); true if it was an alias. Ids "
   "that were merged into from stay with the survivor. Identity plugin only.",
   "@param from string\n"
   "@return boolean"},
  {"auth", "erase", tplib_auth_erase, TP_CTX_TXN, "tp.auth.erase(user)",
   "Refuses every token of user (and of ids merged into it) from the end of this transaction "
   "on: 401 member_erased. For a deletion request. Identity plugin only.",
   "@param user string"},
  {"auth", "resolve", tplib_auth_resolve, TP_CTX_TXN, "tp.auth.resolve(user) -> string | nil",
   "The member id user names now: its survivor if it was merged, itself if not, nil if it was "
   "erased. For user ids that arrive in bodies (an operator's list) rather than in a token.",
   "@param user string\n"
   "@return string? member # nil when erased"},
  {"crypto", "sha256", tpx_l_sha256, TP_CTX_ANY, "tp.crypto.sha256(data [, encoding]) -> string",
   "The SHA-256 digest of the string data; encoding is \"hex\" (default, lowercase), "
   "\"base64\" (standard alphabet, padded) or \"raw\" (32 bytes).",
   "@param data string\n"
   "@param encoding? \"hex\"|\"base64\"|\"raw\" default \"hex\"\n"
   "@return string"},
  {"crypto", "hmac_sha256", tpx_l_hmac_sha256, TP_CTX_ANY,
   "tp.crypto.hmac_sha256(key, data [, encoding]) -> string",
   "The HMAC-SHA-256 of data keyed with key (both strings), encoded like tp.crypto.sha256. "
   "To verify a signed callback, compute it over req.raw_body and compare with "
   "tp.crypto.equal.",
   "@param key string\n"
   "@param data string\n"
   "@param encoding? \"hex\"|\"base64\"|\"raw\" default \"hex\"\n"
   "@return string"},
  {"crypto", "equal", tpx_l_equal, TP_CTX_ANY, "tp.crypto.equal(a, b) -> boolean",
   "True if the strings a and b are equal, compared in constant time (no early exit on the "
   "first differing byte); strings of different lengths are never equal.",
   "@param a string\n"
   "@param b string\n"
   "@return boolean"},
  {"crypto", "rsa_verify", tpx_l_rsa_verify, TP_CTX_ANY,
   "tp.crypto.rsa_verify(public_key, data, signature) -> boolean",
   "Whether signature (base64) is an RSASSA-PKCS1-v1_5 SHA-256 signature (SHA256withRSA, as "
   "WeChat Pay signs) of the string data under public_key, a PEM PUBLIC KEY or CERTIFICATE. "
   "A key that does not parse raises; a signature that is not base64 is false. Verify over "
   "the exact bytes received (req.raw_body), never re-encoded JSON.",
   "@param public_key string PEM\n"
   "@param data string\n"
   "@param signature string base64\n"
   "@return boolean"},
  {"crypto", "rsa_sign", tplib_crypto_rsa_sign, TP_CTX_TXN,
   "tp.crypto.rsa_sign(to, secret, data) -> string",
   "Signs data with SHA256withRSA (RSASSA-PKCS1-v1_5, SHA-256) using the RSA private key (PEM) "
   "that is secret secret of destination to, and returns the signature in base64 (WeChat "
   "Pay's paySign). The key stays in the host: a plugin names it, never reads it, and may name "
   "only secrets of destinations that list it. An unknown destination or secret, or a secret "
   "that is no RSA private key, raises.",
   "@param to string a destination of the brand's config that lists this plugin\n"
   "@param secret string the name of one of its secrets\n"
   "@param data string\n"
   "@return string # base64"},
  {"crypto", "aes_gcm_decrypt", tplib_crypto_aes_gcm_decrypt, TP_CTX_TXN,
   "tp.crypto.aes_gcm_decrypt(to, secret, nonce, aad, ciphertext) -> string | nil, err",
   "Opens AES-256-GCM as WeChat Pay APIv3 seals a notify's resource: the key is secret secret "
   "of destination to (32 bytes, the APIv3 key; a plugin names it, never reads it), nonce is "
   "used as the IV as is, aad is the associated data (may be \"\"), ciphertext the base64 of "
   "the encrypted bytes followed by the 16-byte tag. Returns the plaintext, or nil and a "
   "message when it does not open (a wrong tag: tampered or forged). A destination or secret "
   "this plugin may not use raises.",
   "@param to string a destination of the brand's config that lists this plugin\n"
   "@param secret string the name of one of its secrets (32 bytes)\n"
   "@param nonce string\n"
   "@param aad string\n"
   "@param ciphertext string base64 of ciphertext and tag\n"
   "@return string? plaintext\n"
   "@return string? err"},
  {"json", "encode", tpj_l_encode, TP_CTX_ANY, "tp.json.encode(value) -> string",
   "Encodes plain data as JSON; integers exactly, tables marked by tp.json.array as arrays, "
   "a JSON view (TpJsonView) as its text.",
   "@param value any plain data (raises if it is not)\n"
   "@return string"},
  {"json", "decode", tpj_l_decode, TP_CTX_ANY, "tp.json.decode(text) -> value | nil, err",
   "Decodes JSON; integral numbers become integers; null becomes tp.json.null. A JSON view "
   "(TpJsonView) decodes to tables of the caller's own.",
   "@param text string|TpJsonView\n"
   "@return any value # nil when text is not JSON\n"
   "@return string? err"},
  {"json", "view", tpjv_l_view, TP_CTX_ANY, "tp.json.view(t) -> TpJsonView",
   "Encodes t once and returns it as a JSON view (as tp.call_view returns them): for a value "
   "the plugin both answers and hands on, an event's data or an export's result, which then "
   "costs one encoding instead of one per use. A view is returned as it is.",
   "@param t table|TpJsonView plain data\n"
   "@return TpJsonView"},
  {"json", "array", tpj_l_array, TP_CTX_ANY, "tp.json.array([t]) -> t",
   "Marks t (or a new table) to encode as a JSON array, even when empty.",
   "@param t? table\n"
   "@return table"},
  {"json", "object", tpj_l_object, TP_CTX_ANY, "tp.json.object([t]) -> t",
   "Marks t (or a new table) to encode as a JSON object, even when empty.",
   "@param t? table\n"
   "@return table"},
  {NULL, NULL, NULL, 0, NULL, NULL, NULL},
};

/* The tables plugin code is handed (req, job, ev, ...) or hands the host
** (the manifest, its routes). plugin.c builds req (push_request, req_index),
** sched.c builds a job's and an event's argument (TASK_ARG), plugin.c reads
** the manifest (check_manifest_keys, read_route, read_route_doc). */
const tpa_field tpa_shapes[] = {
  {"tp", NULL, NULL,
   "The host's API: the global table every plugin state gets. Each function says where it "
   "may be called: load (while plugin.lua runs), handler (a route handler), job, event (an "
   "event subscriber). Calling one elsewhere raises."},
  {"tp.db", NULL, NULL,
   "The tenant's database, inside the invocation's transaction. A plugin may use only tables "
   "named NAME_... after itself (enforced); PRAGMA, ATTACH and transaction statements are refused."},
  {"tp.jobs", NULL, NULL,
   "Jobs: rows written in the caller's transaction that run later as their own transactions, "
   "retried with back-off and dead-lettered after limits.job_max_attempts runs."},
  {"tp.events", NULL, NULL,
   "Events: written to the outbox in the caller's transaction, delivered after commit to every "
   "subscribing plugin, at least once and in emission order per subscriber."},
  {"tp.json", NULL, NULL, "JSON with exact integers and explicit arrays and objects."},
  {"tp.json", "null", "lightuserdata",
   "The JSON null: decoding null gives this value (not nil); encoding it writes null."},
  {"tp.crypto", NULL, NULL,
   "Digests, signatures and decryption for callbacks and payment providers; secret keys are "
   "named (a destination's secrets), never handed to plugin code."},
  {"tp.http", NULL, NULL,
   "Calls out to the destinations the brand's config lists for the plugin: made after the "
   "transaction commits, retried with the same Idempotency-Key, answered to a job."},
  {"tp.auth", NULL, NULL,
   "Members and their tokens. A merged member's token enters as its survivor, so req.user is "
   "always a survivor; ids in bodies are resolved with tp.auth.resolve."},

  {"TpRequest", NULL, NULL,
   "What a route handler gets as its one argument. headers, query and raw_body are built when "
   "first read, and read as nil once the handler has returned."},
  {"TpRequest", "id", "string", "The request id (also in the log line and the X-Request-Id header)."},
  {"TpRequest", "method", "string", "GET, POST, PUT, PATCH or DELETE."},
  {"TpRequest", "path", "string", "The request path as sent, without the query."},
  {"TpRequest", "route", "string", "The route's path pattern as declared, e.g. /orders/{id:int}."},
  {"TpRequest", "tenant", "string", "The tenant's id."},
  {"TpRequest", "user", "string?",
   "The user id of a verified bearer token; nil on auth = \"none\" routes and anonymous "
   "auth = \"optional\" requests."},
  {"TpRequest", "params", "table<string,string|integer>",
   "Path parameters by name: {name:int} ones are integers, the others decoded strings."},
  {"TpRequest", "query", "table<string,string>",
   "Query parameters, percent-decoded; a repeated key keeps its last value; a key without = is \"\"."},
  {"TpRequest", "headers", "table<string,string>", "Request headers by lowercase name."},
  {"TpRequest", "body", "any", "The JSON body, decoded (integers stay integers); nil without a body."},
  {"TpRequest", "raw_body", "string?",
   "The body's exact bytes, for signatures over them; nil without a body."},
  {"TpRequest", "config", "table", "The plugin's config table (the same as tp.config())."},

  {"TpHttpCall", NULL, NULL, "A call out (tp.http.request)."},
  {"TpHttpCall", "to", "string", "A destination of the brand's config (tenants[i].http) that lists this plugin."},
  {"TpHttpCall", "path", "string", "Appended to the destination's URL: starts with /, may carry a query."},
  {"TpHttpCall", "method", "\"GET\"|\"POST\"|\"PUT\"|\"PATCH\"|\"DELETE\"|nil",
   "Default POST with a body or json, else GET."},
  {"TpHttpCall", "headers", "table<string,string>?",
   "At most 32; a value may hold {{secret:NAME}} of the destination's secrets."},
  {"TpHttpCall", "body", "string?", "The body as is (at most 1 MiB)."},
  {"TpHttpCall", "json", "table?", "Plain data sent as JSON (Content-Type: application/json)."},
  {"TpHttpCall", "key", "string?",
   "The Idempotency-Key of every attempt (default tp-<tenant>-<call id>)."},
  {"TpHttpCall", "on_reply", "string?", "A job of this plugin that gets the reply as job.payload."},
  {"TpHttpCall", "context", "table?", "Plain data handed back in the reply."},
  {"TpHttpCall", "attempts", "integer?", "At most this many attempts (default: the destination's max_attempts)."},
  {"TpHttpReply", NULL, NULL, "What on_reply's job gets as job.payload."},
  {"TpHttpReply", "call_id", "integer", "tp.http.request's id."},
  {"TpHttpReply", "to", "string", "The destination."},
  {"TpHttpReply", "ok", "boolean",
   "An answer with a 2xx status came (and, for a destination with errcode semantics, errcode 0)."},
  {"TpHttpReply", "errcode", "integer?",
   "WeChat's errcode from a 2xx answer's body (0 when absent), for a destination with errcode = true "
   "or token = {...}."},
  {"TpHttpReply", "status", "integer", "The HTTP status; 0 when no answer came."},
  {"TpHttpReply", "body", "string?", "The answer's body (nil when none came, or it is not UTF-8)."},
  {"TpHttpReply", "error", "string?",
   "Why no answer came: timeout, connect_failed, tls_failed, response_too_large, transport_failed, "
   "secret_unknown, destination_unknown, sign_failed, token_failed (no access_token could be had)."},
  {"TpHttpReply", "attempts", "integer", "Attempts made."},
  {"TpHttpReply", "context", "any", "The call's context."},
  {"TpJsonView", NULL, NULL,
   "A JSON view: what tp.call_view hands back for a table, the callee's JSON text read in place. "
   "v.key and v[i] read a member; #v, pairs(v) and tostring(v) work; it cannot change "
   "(tp.json.decode(v) gives tables). type(v) is \"userdata\"."},
  {"TpJsonView", "[string|integer]", "any",
   "A member: a scalar as tp.json.decode gives it, a TpJsonView of an object or an array, or nil."},
  {"TpJob", NULL, NULL, "What a job handler (manifest jobs.NAME) gets as its one argument."},
  {"TpJob", "id", "integer", "The job's id (tp.jobs.schedule returned it)."},
  {"TpJob", "name", "string", "The job's name."},
  {"TpJob", "attempt", "integer", "1 on the first run, 2 on the first retry, and so on."},
  {"TpJob", "due", "integer", "When it was due, epoch seconds."},
  {"TpJob", "due_ms", "integer", "When it was due, epoch milliseconds."},
  {"TpJob", "key", "string|lightuserdata", "Its key, or tp.json.null when it was scheduled without one."},
  {"TpJob", "payload", "any", "The payload given to tp.jobs.schedule, decoded from JSON."},

  {"TpEvent", NULL, NULL,
   "What an event handler (manifest subscribe[\"NAME\"]) gets as its one argument."},
  {"TpEvent", "id", "integer", "The delivery's id."},
  {"TpEvent", "name", "string", "The event's name, e.g. order.paid."},
  {"TpEvent", "source", "string", "The plugin that emitted it."},
  {"TpEvent", "attempt", "integer", "1 on the first delivery, 2 on the first retry, and so on."},
  {"TpEvent", "emitted_at", "integer", "When it was emitted, epoch seconds."},
  {"TpEvent", "emitted_at_ms", "integer", "When it was emitted, epoch milliseconds."},
  {"TpEvent", "data", "any", "The data given to tp.events.emit, decoded from JSON."},

  {"TpJobWhen", NULL, NULL, "When and how often a job runs (tp.jobs.schedule's when)."},
  {"TpJobWhen", "at", "integer?", "Due at this epoch (seconds); not with after."},
  {"TpJobWhen", "after", "number?", "Due this many seconds from now; not with at."},
  {"TpJobWhen", "every", "number?", "Runs again every so many seconds (at least 1) after each run."},
  {"TpJobWhen", "key", "string?",
   "1-128 bytes, unique among the plugin's pending jobs: scheduling it again replaces that "
   "job, and tp.jobs.cancel(key) cancels it."},
  {"TpJobWhen", "max_attempts", "integer?", "Runs before it is dead-lettered, 1-1000 (default limits.job_max_attempts)."},

  {"TpLocaltime", NULL, NULL, "An instant broken down in the tenant's time zone (tp.localtime)."},
  {"TpLocaltime", "year", "integer", "e.g. 2024"},
  {"TpLocaltime", "month", "integer", "1-12"},
  {"TpLocaltime", "day", "integer", "1-31"},
  {"TpLocaltime", "hour", "integer", "0-23"},
  {"TpLocaltime", "min", "integer", "0-59"},
  {"TpLocaltime", "sec", "integer", "0-60"},
  {"TpLocaltime", "wday", "integer", "1 = Monday ... 7 = Sunday"},
  {"TpLocaltime", "yday", "integer", "1-366"},
  {"TpLocaltime", "utc_offset", "integer", "Seconds east of UTC (28800 in Asia/Shanghai)."},

  {"TpFailure", NULL, NULL,
   "The error value tp.fail raises (what pcall catches, and a tp.call to a plugin that "
   "failed raises in its caller)."},
  {"TpFailure", "status", "integer", "400-599"},
  {"TpFailure", "code", "string", "The stable error code."},
  {"TpFailure", "message", "string", "The message for people."},
  {"TpFailure", "details", "any", "The details given to tp.fail, if any."},

  {"TpManifest", NULL, NULL,
   "What plugin.lua returns. Unknown fields are refused, so a typo fails the load."},
  {"TpManifest", "name", "string", "The plugin's name: its folder's name, [a-z][a-z0-9_]* of at most 32 bytes."},
  {"TpManifest", "version", "string", "1-32 bytes, e.g. \"1.0.0\"."},
  {"TpManifest", "description", "string?", "One line for people."},
  {"TpManifest", "migrations", "string[]?",
   "SQL scripts, applied once each, in order, in one transaction when the plugin loads; "
   "append, never edit a released one."},
  {"TpManifest", "routes", "TpRoute[]?", "The HTTP routes the plugin serves."},
  {"TpManifest", "jobs", "table<string,fun(job:TpJob)>?", "Job handlers by name (tp.jobs.schedule)."},
  {"TpManifest", "personal_jobs", "string[]?",
   "Jobs whose payload carries personal data (a reply with a phone number): their recorded runs "
   "keep no input, as a route's personal = true."},
  {"TpManifest", "subscribe", "table<string,fun(ev:TpEvent)>?", "Event handlers by event name."},
  {"TpManifest", "track", "string[]?",
   "Events of its own the mini-program may report to POST /v1/{tenant}/track as kind "
   "\"<plugin>.<name>\" (1-32 names of a-z, 0-9 and _): the analytics plugin's funnel can use "
   "them as steps."},
  {"TpManifest", "exports", "table<string,function>?",
   "Functions other plugins call with tp.call(this plugin, name, ...)."},
  {"TpManifest", "setup", "fun()?",
   "Runs on every load of a generation (start-up and each reload), after the migrations, in a "
   "transaction of its own, before the generation serves: schedule or cancel jobs, reconcile "
   "rows with the code. If it raises, everything it did is rolled back and the load fails (the "
   "old generation keeps serving)."},

  {"TpRoute", NULL, NULL,
   "One route of the manifest: mounted under /v1/{tenant} (or /admin/{tenant} with auth = "
   "\"admin\"). The doc fields (summary ... errors) feed GET /v1/{tenant}/openapi.json (and "
   "/admin/{tenant}/openapi.json for admin routes) and are checked at load (their JSON Schemas "
   "too). Any other key fails the load, as a typo would (did you mean); x_* fields are the "
   "plugin's own notes and are ignored."},
  {"TpRoute", "method", "\"GET\"|\"POST\"|\"PUT\"|\"PATCH\"|\"DELETE\"", "The HTTP method."},
  {"TpRoute", "path", "string",
   "The path pattern, at most 256 bytes: literal segments and {name}, {name:str} or {name:int} parameters."},
  {"TpRoute", "auth", "\"none\"|\"optional\"|\"user\"|\"admin\"|nil",
   "Who may call it (default \"user\": a valid bearer token); \"admin\" needs the tenant's X-Api-Key."},
  {"TpRoute", "handler", "fun(req:TpRequest):integer|table?,table?",
   "Runs inside the request's transaction and returns status, body (a table, encoded as JSON) "
   "or just the body for 200. Raising rolls everything back (500 internal_error, or tp.fail's "
   "status and code)."},
  {"TpRoute", "summary", "string?", "At most 200 bytes."},
  {"TpRoute", "description", "string?", "Longer documentation."},
  {"TpRoute", "query", "table<string,TpQueryParam>?", "Query parameters by name."},
  {"TpRoute", "headers", "table<string,TpHeaderParam>?", "Request headers the route reads, by name."},
  {"TpRoute", "body", "table?",
   "JSON Schema of the request body, written as a Lua table. The document marks the body "
   "required only when the schema lists required fields."},
  {"TpRoute", "response", "table?", "JSON Schema of the success body, written as a Lua table."},
  {"TpRoute", "status", "integer|integer[]|nil",
   "The success status, 200-299 (default 200), or a list of 2-4 different ones, the usual first, "
   "for a route that answers some requests with another ({ 201, 200 }: a repeat of an accepted "
   "request answers 200). A route with status 201 and an Idempotency-Key header lists the "
   "retry's 200 by itself."},
  {"TpRoute", "errors", "table<integer,string[]>?",
   "The errors the route answers on purpose, by status (400-599): { [409] = { \"sold_out\", "
   "\"limit_reached\" }, [404] = { \"not_found\" } }. Each status becomes a response whose "
   "body is the shared Error with error.code one of the codes listed (1-64 bytes of a-z, 0-9, "
   "_; at most 32 per status, 16 statuses). A code ending in * stands for every code it "
   "starts (\"risk_*\": the refusals of tp.risk)."},
  {"TpRoute", "personal", "boolean?",
   "True when its request or answer carries personal data (phones, names, addresses): a "
   "recorded run of it keeps neither body nor query, only that they were redacted."},
  {"TpRoute", "csv", "boolean?",
   "True for a route whose handler may return a string instead of a table: that text is the "
   "answer, as Content-Type text/csv; charset=utf-8 (a report's ?format=csv). The OpenAPI "
   "document lists text/csv beside application/json."},
  {"TpRoute", "idempotent", "boolean?",
   "True for a route that creates something a client may retry (a buy, a checkout): the host "
   "then reads the request's Idempotency-Key header (1-128 visible ASCII characters, else 400 "
   "invalid_idempotency_key). A key the user already sent with the same request is answered "
   "with the stored answer without running the handler (a stored 201 answers 200, an "
   "object gains \"replayed\": true); with "
   "another request (route, path, query or body) it is 409 idempotency_key_reused. The answer "
   "is stored in the request's own transaction, only when it succeeds, for 24 hours. Not on "
   "GET or HEAD."},
  {"TpRoute", "rate_class",
   "\"read\"|\"write\"|\"buy\"|\"join\"|\"help\"|\"claim\"|nil",
   "Which of the brand's rate limits (tenants[i].rate_limits in the host config) count it, "
   "before any Lua runs: default \"read\" for GET and \"write\" for other methods. Declare "
   "\"buy\", \"join\", \"help\" or \"claim\" on the routes a scalper would hammer. Not on "
   "admin routes: they are all of class \"admin\"."},

  {"TpQueryParam", NULL, NULL, "A documented query parameter of a route."},
  {"TpQueryParam", "type", "\"string\"|\"integer\"|\"boolean\"|nil", "Default \"string\"."},
  {"TpQueryParam", "description", "string?", ""},
  {"TpQueryParam", "required", "boolean?", "Default false."},

  {"TpHeaderParam", NULL, NULL, "A documented request header of a route."},
  {"TpHeaderParam", "description", "string?", ""},
  {"TpHeaderParam", "required", "boolean?", "Default false."},
  {NULL, NULL, NULL, NULL},
};

const char *const tpa_context_names[TP_CTX_COUNT] = {"load", "handler", "job", "event", "setup"};

/* Every API function is called through here: the context check lives once. */
static int trampoline(lua_State *L) {
  const tpa_fn *f = &tpa_functions[lua_tointeger(L, lua_upvalueindex(1))];
  tp_plugin *p = tpst_owner(L);
  if (!(p->ctx & f->contexts)) {
    char allowed[80] = "";
    for (int i = 0; i < TP_CTX_COUNT; i++)
      if (f->contexts & (1 << i)) {
        if (allowed[0]) strcat(allowed, ", ");
        strcat(allowed, tpa_context_names[i]);
      }
    const char *where = p->ctx == TP_CTX_LOAD ? "while the plugin loads" : "here";
    return luaL_error(L, "tp.%s%s%s is not available %s (allowed in: %s)",
                      f->module ? f->module : "", f->module ? "." : "", f->name, where, allowed);
  }
  /* what it reads and what it builds cost their bytes (JSON, crypto, ...) */
  tpsb_charge_strings(L, lua_gettop(L), TPSB_PARSE_BYTES);
  int n = f->fn(L);
  tpsb_charge_strings(L, n, TPSB_PARSE_BYTES);
  return n;
}

void tpa_open(lua_State *L, tp_plugin *p) {
  tpst_open(L, p);
  tpsb_open(L);
  lua_pushcfunction(L, tplib_print);  /* print() logs at debug level */
  lua_setglobal(L, "print");
  tpj_open(L);
  tpjv_open(L);
  lua_newtable(L);  /* stack: tp */
  for (int i = 0; tpa_functions[i].name; i++) {
    const tpa_fn *f = &tpa_functions[i];
    if (f->module && lua_getfield(L, -1, f->module) != LUA_TTABLE) {
      lua_pop(L, 1);
      lua_newtable(L);
      lua_pushvalue(L, -1);
      lua_setfield(L, -3, f->module);
    }
    /* stack: tp [module] */
    lua_pushinteger(L, i);
    lua_pushcclosure(L, trampoline, 1);
    lua_setfield(L, -2, f->name);
    if (f->module) lua_pop(L, 1);
  }
  lua_getfield(L, -1, "json");
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  lua_pop(L, 1);
  lua_setglobal(L, "tp");
  /* math.random is the host's generator; nobody seeds it but the host */
  lua_getglobal(L, LUA_MATHLIBNAME);
  lua_getglobal(L, "tp");
  lua_getfield(L, -1, "random");
  lua_setfield(L, -3, "random");
  lua_pop(L, 1);
  lua_pushnil(L);
  lua_setfield(L, -2, "randomseed");
  lua_pop(L, 1);
}
