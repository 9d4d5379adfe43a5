/*
** Config loading: defaults, every validation error names its key, env().
*/
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>

#include "config/config.h"
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "tp_test.h"

static tpc_config cfg;
static char err[1024];

#define TENANT "{ id = 'leaf', token_secret = 'sixteen-bytes-ok!', api_keys = { 'admin-key-0000001' }"

static int load(const char *text) {
  return tpc_load_string(text, "=test.conf", "/etc/tp", &cfg, err, sizeof err);
}

TEST(minimal_config_gets_defaults) {
  ASSERT_EQ(load("return { tenants = { " TENANT " } } }"), 0);
  ASSERT_STR(cfg.listen_host, "127.0.0.1");
  ASSERT_EQ(cfg.listen_port, 8080);
  ASSERT_STR(cfg.data_dir, "/etc/tp/data");
  ASSERT_STR(cfg.plugin_dirs[0], "/etc/tp/plugins");
  ASSERT_EQ(cfg.synchronous, TPC_SYNC_FULL);
  ASSERT_EQ(cfg.limits.max_body_bytes, 1 << 20);
  ASSERT_EQ(cfg.ntenants, 1);
  ASSERT_STR(cfg.tenants[0].timezone, "Asia/Shanghai");
  ASSERT_EQ(cfg.tenants[0].track_retention_days, 90);
  ASSERT_EQ(cfg.tenants[0].napi_keys, 1);
  ASSERT_EQ(cfg.tenants[0].nplugins, 0);
  tpc_free(&cfg);
}

TEST(full_config_is_read) {
  ASSERT_EQ(load("return { listen = '[::1]:0', data_dir = '/var/tp', synchronous = 'normal',"
                 " plugin_dirs = { 'p1', '/abs/p2' }, log_level = 'warn',"
                 " limits = { max_connections = 50, header_timeout_ms = 500 },"
                 " tenants = { " TENANT ", timezone = 'UTC',"
                 "   plugins = { orders = { timeout_s = 900 }, catalog = true, coupons = false } } } }"),
            0);
  ASSERT_STR(cfg.listen_host, "::1");
  ASSERT_EQ(cfg.listen_port, 0);
  ASSERT_STR(cfg.data_dir, "/var/tp");
  ASSERT_STR(cfg.plugin_dirs[0], "/etc/tp/p1");
  ASSERT_STR(cfg.plugin_dirs[1], "/abs/p2");
  ASSERT_EQ(cfg.synchronous, TPC_SYNC_NORMAL);
  ASSERT_EQ(cfg.limits.max_connections, 50);
  ASSERT_EQ(cfg.limits.header_timeout_ms, 500);
  ASSERT_EQ(cfg.limits.idle_timeout_ms, 60000);
  ASSERT_EQ(cfg.tenants[0].nplugins, 2);  /* coupons = false is disabled */
  ASSERT_STR(cfg.tenants[0].plugins[0].name, "catalog");  /* sorted */
  ASSERT_STR(cfg.tenants[0].plugins[1].name, "orders");
  lua_State *L = luaL_newstate();
  ASSERT_EQ(tpc_push_plugin_config(&cfg, &cfg.tenants[0].plugins[1], L, err, sizeof err), 0);
  lua_getfield(L, -1, "timeout_s");
  ASSERT_EQ(lua_tointeger(L, -1), 900);
  lua_close(L);
  tpc_free(&cfg);
}

TEST(unknown_keys_name_their_path) {
  ASSERT_EQ(load("return { tenants = { " TENANT ", token_secet = 'x' } } }"), -1);
  ASSERT_CONTAINS(err, "tenants[1]");
  ASSERT_CONTAINS(err, "unknown key 'token_secet' (did you mean 'token_secret'?)");
  ASSERT_EQ(load("return { limits = { max_conections = 1 }, tenants = { " TENANT " } } }"), -1);
  ASSERT_CONTAINS(err, "limits: unknown key 'max_conections' (did you mean 'max_connections'?)");
}

TEST(wrong_types_and_ranges_are_errors) {
  ASSERT_EQ(load("return { listen = 8080, tenants = { " TENANT " } } }"), -1);
  ASSERT_CONTAINS(err, ".listen: must be a string");
  ASSERT_EQ(load("return { listen = 'nohost', tenants = { " TENANT " } } }"), -1);
  ASSERT_CONTAINS(err, "host:port");
  ASSERT_EQ(load("return { limits = { max_body_bytes = 1.5 }, tenants = { " TENANT " } } }"), -1);
  ASSERT_CONTAINS(err, "limits.max_body_bytes: must be an integer");
  ASSERT_EQ(load("return { limits = { max_connections = 0 }, tenants = { " TENANT " } } }"), -1);
  ASSERT_CONTAINS(err, "between 1 and");
  ASSERT_EQ(load("return { synchronous = 'sometimes', tenants = { " TENANT " } } }"), -1);
  ASSERT_CONTAINS(err, "synchronous");
}

TEST(tenant_rules_are_enforced) {
  ASSERT_EQ(load("return { }"), -1);
  ASSERT_CONTAINS(err, ".tenants: is required");
  ASSERT_EQ(load("return { tenants = { { id = 'a.b', token_secret = 'sixteen-bytes-ok!' } } }"), -1);
  ASSERT_CONTAINS(err, "id: must be");
  ASSERT_EQ(load("return { tenants = { { id = 'a', token_secret = 'short' } } }"), -1);
  ASSERT_CONTAINS(err, "token_secret: must be at least 16 bytes");
  ASSERT_EQ(load("return { tenants = { " TENANT " }, " TENANT " } } }"), -1);
  ASSERT_CONTAINS(err, "duplicate tenant id 'leaf'");
  ASSERT_EQ(load("return { tenants = { { id = 'a', token_secret = 'sixteen-bytes-ok!', api_keys = { 'short' } } } }"), -1);
  ASSERT_CONTAINS(err, "api_keys[1]");
  ASSERT_EQ(load("return { tenants = { " TENANT ", timezone = 'Mars/Olympus' } } }"), -1);
  ASSERT_CONTAINS(err, "unknown zone");
  ASSERT_EQ(load("return { tenants = { " TENANT ", track_retention_days = 2 } } }"), -1);
  ASSERT_CONTAINS(err, "track_retention_days");
  ASSERT_EQ(load("return { tenants = { " TENANT ", track_retention_days = 30 } } }"), 0);
  ASSERT_EQ(cfg.tenants[0].track_retention_days, 30);
  tpc_free(&cfg);
}

TEST(sandbox_limits_clocks_and_admin_keys) {
  ASSERT_EQ(load("return { clock = 'manual', admin_keys = { 'host-admin-key-001' },"
                 " limits = { lua_instructions = 50000, job_max_attempts = 3, invocation_ms = 250,"
                 "            load_ms = 3000 },"
                 " tenants = { " TENANT ", plugins = { orders = true, coupons = true },"
                 "   plugin_limits = { orders = { memory_bytes = 2097152, deadline_ms = 40 } } },"
                 " { id = 'wall', token_secret = 'sixteen-bytes-ok!', clock = 'wall' } } }"),
            0);
  ASSERT_EQ(cfg.nadmin_keys, 1);
  ASSERT_STR(cfg.cli_admin_key, "host-admin-key-001");
  ASSERT_EQ(cfg.limits.job_max_attempts, 3);
  ASSERT_EQ(cfg.limits.invocation_ms, 250);
  ASSERT_EQ(cfg.limits.load_ms, 3000);
  ASSERT_EQ(cfg.limits.migration_ms, 60000);   /* the default */
  ASSERT_EQ(cfg.limits.admin_key_failures, 10); /* the default */
  ASSERT_TRUE(cfg.tenants[0].manual_clock);   /* the host's default */
  ASSERT_TRUE(!cfg.tenants[1].manual_clock);  /* overridden */
  const tpc_plugin *coupons = &cfg.tenants[0].plugins[0], *orders = &cfg.tenants[0].plugins[1];
  ASSERT_STR(orders->name, "orders");
  ASSERT_EQ(orders->memory_bytes, 2097152);
  ASSERT_EQ(orders->instructions, 50000);      /* the host's limit */
  ASSERT_EQ(orders->deadline_ms, 40);
  ASSERT_EQ(coupons->deadline_ms, 0);           /* the host's: limits.invocation_ms */
  ASSERT_EQ(coupons->memory_bytes, 64 << 20);
  ASSERT_STR(cfg.sdk_dir, "/etc/tp/plugins/../sdk");
  tpc_free(&cfg);
  ASSERT_EQ(load("return { tenants = { " TENANT ", plugin_limits = { ghost = {} } } } }"), -1);
  ASSERT_CONTAINS(err, "plugin_limits.ghost: is not an enabled plugin");
  ASSERT_EQ(load("return { tenants = { " TENANT ", plugins = { a = true },"
                 " plugin_limits = { a = { memory_bytes = 10 } } } } }"), -1);
  ASSERT_CONTAINS(err, "plugin_limits.a.memory_bytes: must be between");
  ASSERT_EQ(load("return { limits = { invocation_ms = 5 }, tenants = { " TENANT " } } }"), -1);
  ASSERT_CONTAINS(err, "limits.invocation_ms: must be between 10 and 600000");
  ASSERT_EQ(load("return { clock = 'sundial', tenants = { " TENANT " } } }"), -1);
  ASSERT_CONTAINS(err, "clock: must be");
  ASSERT_EQ(load("return { admin_keys = { 'short' }, tenants = { " TENANT " } } }"), -1);
  ASSERT_CONTAINS(err, "admin_keys[1]: must be a string of at least 16 bytes");
  ASSERT_EQ(load("return { tenants = { { id = 'reload', token_secret = 'sixteen-bytes-ok!' } } }"), -1);
  ASSERT_CONTAINS(err, "not \"reload\"");
  ASSERT_EQ(load("return { trusted_proxies = { '127.0.0.1', '::1' }, tenants = { " TENANT " } } }"), 0);
  ASSERT_EQ(cfg.ntrusted_proxies, 2);
  ASSERT_STR(cfg.trusted_proxies[1], "::1");
  tpc_free(&cfg);
  ASSERT_EQ(load("return { limits = { admin_key_failures = 0 }, tenants = { " TENANT " } } }"), -1);
  ASSERT_CONTAINS(err, "limits.admin_key_failures: must be between 1 and 1000000");
  ASSERT_EQ(load("return { trusted_proxies = { 'nginx' }, tenants = { " TENANT " } } }"), -1);
  ASSERT_CONTAINS(err, "trusted_proxies[1]: must be an IPv4 or IPv6 address");
}

TEST(plugin_names_and_prefixes_are_checked) {
  ASSERT_EQ(load("return { tenants = { " TENANT ", plugins = { ['Bad-Name'] = {} } } } }"), -1);
  ASSERT_CONTAINS(err, "plugin names");
  ASSERT_EQ(load("return { tenants = { " TENANT ", plugins = { flash = {}, flash_sale = {} } } } }"), -1);
  ASSERT_CONTAINS(err, "cannot both be enabled");
  ASSERT_EQ(load("return { tenants = { " TENANT ", plugins = { orders = 'yes' } } } }"), -1);
  ASSERT_CONTAINS(err, "plugins.orders");
}

TEST(campaigns_run_as_plugins_named_after_their_files) {
  ASSERT_EQ(load("return { tenants = { " TENANT ", plugins = { orders = {} },"
                 " campaigns = { 'campaigns/double11.lua', '/srv/c/spring_tea.lua' },"
                 " plugin_limits = { campaign_double11 = { instructions = 20000 } } } } }"), 0);
  const tpc_tenant *t = &cfg.tenants[0];
  ASSERT_EQ(t->nplugins, 3);
  ASSERT_STR(t->plugins[0].name, "campaign_double11");  /* sorted with the plugins */
  ASSERT_STR(t->plugins[0].script, "/etc/tp/campaigns/double11.lua");
  ASSERT_EQ(t->plugins[0].instructions, 20000);
  ASSERT_STR(t->plugins[1].name, "campaign_spring_tea");
  ASSERT_STR(t->plugins[1].script, "/srv/c/spring_tea.lua");
  ASSERT_TRUE(t->plugins[2].script == NULL);
  /* check and preview add a file as given, replacing the one of its name */
  ASSERT_EQ(tpc_add_campaign(&cfg, &cfg.tenants[0], "edited/double11.lua", err, sizeof err), 0);
  ASSERT_EQ(cfg.tenants[0].nplugins, 3);
  ASSERT_STR(cfg.tenants[0].plugins[0].script, "edited/double11.lua");
  ASSERT_EQ(tpc_add_campaign(&cfg, &cfg.tenants[0], "x/orders.lua", err, sizeof err), 0);
  ASSERT_EQ(tpc_add_campaign(&cfg, &cfg.tenants[0], "x/Bad.lua", err, sizeof err), -1);
  ASSERT_CONTAINS(err, "base name must be");
  tpc_free(&cfg);
  static const char *const bad[][2] = {
      {"'c/Double-11.lua'", "campaigns[1]: 'c/Double-11.lua': a campaign is named after its file"},
      {"'c/double11.txt'", "must name a .lua file"},
      {"'c/a_very_long_campaign_name_x.lua'", "at most 23 bytes"},
      {"'a/x.lua', 'b/x.lua'", "campaigns[2]: another campaign is already named 'campaign_x'"},
      {"42", "campaigns[1]: must be a path"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char text[512];
    snprintf(text, sizeof text, "return { tenants = { " TENANT ", campaigns = { %s } } } }", bad[i][0]);
    ASSERT_EQ(load(text), -1);
    ASSERT_CONTAINS(err, bad[i][1]);
  }
  ASSERT_EQ(load("return { tenants = { " TENANT ", plugins = { campaign = {} },"
                 " campaigns = { 'c/x.lua' } } } }"), -1);
  ASSERT_CONTAINS(err, "cannot both be enabled");
}

TEST(plugin_config_must_be_plain_data) {
  ASSERT_EQ(load("return { tenants = { " TENANT ", plugins = { orders = { f = print } } } } }"), 0);
  lua_State *L = luaL_newstate();
  ASSERT_EQ(tpc_push_plugin_config(&cfg, &cfg.tenants[0].plugins[0], L, err, sizeof err), -1);
  ASSERT_CONTAINS(err, "cannot copy a function");
  ASSERT_EQ(lua_gettop(L), 0);  /* nothing left behind */
  lua_close(L);
  tpc_free(&cfg);
}

TEST(syntax_errors_carry_the_line) {
  ASSERT_EQ(load("return {\n  listen = ,\n}"), -1);
  ASSERT_CONTAINS(err, "test.conf:2:");
  ASSERT_EQ(load("error('custom failure')"), -1);
  ASSERT_CONTAINS(err, "custom failure");
  ASSERT_EQ(load("return 42"), -1);
  ASSERT_CONTAINS(err, "must return a table");
}

TEST(config_runs_sandboxed_with_env) {
  setenv("TP_TEST_SECRET", "from-the-environment", 1);
  ASSERT_EQ(load("return { tenants = { { id = 'a', token_secret = env('TP_TEST_SECRET') } } }"), 0);
  ASSERT_STR(cfg.tenants[0].token_secret, "from-the-environment");
  tpc_free(&cfg);
  ASSERT_EQ(load("return { tenants = { { id = 'a', token_secret = env('TP_UNSET_VAR_X', 'default-secret-123') } } }"), 0);
  ASSERT_STR(cfg.tenants[0].token_secret, "default-secret-123");
  tpc_free(&cfg);
  ASSERT_EQ(load("return { tenants = { { id = 'a', token_secret = env('TP_UNSET_VAR_X') } } }"), -1);
  ASSERT_CONTAINS(err, "TP_UNSET_VAR_X is not set");
  ASSERT_EQ(load("io.open('/etc/passwd') return {}"), -1);  /* no io */
  ASSERT_EQ(load("os.exit(1) return {}"), -1);              /* no os */
  ASSERT_EQ(load("dofile('/etc/passwd') return {}"), -1);
}

TEST(missing_file_is_a_clear_error) {
  ASSERT_EQ(tpc_load("/nonexistent/tidepool.conf.lua", &cfg, err, sizeof err), -1);
  ASSERT_CONTAINS(err, "cannot open config file");
}

TEST(listen_addresses_parse) {
  char host[64];
  int port;
  ASSERT_EQ(tpc_parse_listen("0.0.0.0:80", host, sizeof host, &port), 0);
  ASSERT_STR(host, "0.0.0.0");
  ASSERT_EQ(port, 80);
  ASSERT_EQ(tpc_parse_listen("[::]:443", host, sizeof host, &port), 0);
  ASSERT_STR(host, "::");
  ASSERT_EQ(tpc_parse_listen(":80", host, sizeof host, &port), -1);
  ASSERT_EQ(tpc_parse_listen("h:99999", host, sizeof host, &port), -1);
  ASSERT_EQ(tpc_parse_listen("h:", host, sizeof host, &port), -1);
  ASSERT_EQ(tpc_parse_listen("h:8x", host, sizeof host, &port), -1);
}

TEST(a_runaway_config_is_an_error_not_a_hang) {
  ASSERT_EQ(load("while true do end"), -1);
  ASSERT_TRUE(strstr(err, "ran more than") != NULL);
  ASSERT_EQ(load("local t = {} for i = 1, 1e9 do t[i] = ('x'):rep(64) .. i end return t"), -1);
  ASSERT_TRUE(strstr(err, "memory") != NULL || strstr(err, "ran more than") != NULL);
  ASSERT_EQ(load("return ('x'):rep(1 << 40)"), -1);
  ASSERT_TRUE(strstr(err, "memory") != NULL || strstr(err, "too large") != NULL);
  /* an error that is not a string still gives a message */
  ASSERT_EQ(load("error({})"), -1);
  ASSERT_TRUE(err[0] != 0);
  /* the budget is per load: a normal config after all that is fine */
  ASSERT_EQ(load("local n = 0 for i = 1, 100000 do n = n + i end "
                 "return { tenants = { " TENANT " } } }"), 0);
  tpc_free(&cfg);
}

TEST(http_destinations_are_an_allow_list_with_secrets) {
  ASSERT_EQ(load("return { tenants = { " TENANT ", plugins = { webhooks = {} }, http = {"
                 " erp = { url = 'https://erp.example.com/api/', plugins = { 'webhooks' },"
                 " timeout_ms = 2500, ca_file = 'erp-ca.pem', secrets = { token = 's3cret' } },"
                 " crm = { url = 'http://127.0.0.1:9000', plugins = { 'webhooks', 'members' } } } } } }"), 0);
  const tpc_tenant *t = &cfg.tenants[0];
  ASSERT_EQ(t->ndestinations, 2);
  ASSERT_STR(t->destinations[0].name, "crm");      /* sorted */
  const tpc_destination *d = tpc_find_destination(t, "erp");
  ASSERT_TRUE(d != NULL);
  ASSERT_STR(d->url, "https://erp.example.com/api");  /* the trailing slash goes */
  ASSERT_EQ(d->timeout_ms, 2500);
  ASSERT_EQ(d->max_response_bytes, 1 << 20);
  ASSERT_EQ(d->max_attempts, 5);
  ASSERT_STR(d->ca_file, "/etc/tp/erp-ca.pem");
  ASSERT_EQ(d->nsecrets, 1);
  ASSERT_STR(d->secrets[0].value, "s3cret");
  ASSERT_TRUE(tpc_destination_allows(d, "webhooks"));
  ASSERT_TRUE(!tpc_destination_allows(d, "members"));
  ASSERT_TRUE(tpc_find_destination(t, "nowhere") == NULL);
  tpc_free(&cfg);
  ASSERT_EQ(load("return { tenants = { " TENANT ", http = { erp = { url = 'ftp://x', plugins = { 'a' } } } } } }"), -1);
  ASSERT_CONTAINS(err, "tenants[1].http.erp: url: must be http:// or https://");
  ASSERT_EQ(load("return { tenants = { " TENANT ", http = { erp = { url = 'http://x' } } } } }"), -1);
  ASSERT_CONTAINS(err, "http.erp.plugins: must be a list of 1-");
  ASSERT_EQ(load("return { tenants = { " TENANT ", http = { erp = { url = 'http://x', plugins = { 'a' },"
                 " timout_ms = 1 } } } } }"), -1);
  ASSERT_CONTAINS(err, "unknown key 'timout_ms' (did you mean 'timeout_ms'?)");
  ASSERT_EQ(load("return { tenants = { " TENANT ", http = { erp = { url = 'http://x', plugins = { 'a' },"
                 " secrets = { token = 'a\\0b' } } } } } }"), -1);
  ASSERT_CONTAINS(err, "http.erp.secrets.token: must be a non-empty string without NUL bytes");
  /* a secret may hold line breaks (a PEM key), but then it cannot go in a header */
  ASSERT_EQ(load("return { tenants = { " TENANT ", http = { erp = { url = 'http://x', plugins = { 'a' },"
                 " secrets = { token = 'a\\nb' } } } } } }"), 0);
  d = tpc_find_destination(&cfg.tenants[0], "erp");
  size_t len = 0;
  ASSERT_STR(tpc_destination_secret(d, "token", &len), "a\nb");
  ASSERT_EQ(len, 3);
  ASSERT_TRUE(tpc_destination_secret(d, "other", &len) == NULL);
  char why[200];
  const char *header = "Bearer {{secret:token}}";
  ASSERT_EQ(tpc_expand_secrets(d, header, strlen(header), NULL, why, sizeof why), -1);
  ASSERT_CONTAINS(why, "secret 'token' holds a line break and cannot go in a header");
  tpc_free(&cfg);
}

/* sign = {scheme = "wechatpay2", key, mchid, serial}: the key must be an RSA
** private key the load can read, so a bad one fails the load, not a payment. */
TEST(wechatpay2_signing_needs_an_rsa_key_mchid_and_serial) {
  EVP_PKEY *k = EVP_RSA_gen(2048);
  BIO *b = BIO_new(BIO_s_mem());
  ASSERT_EQ(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
  char *pem, text[8192];
  long n = BIO_get_mem_data(b, &pem);
#define WXP(sign) \
  "return { tenants = { " TENANT ", http = { wxpay = { url = 'https://api.mch.weixin.qq.com'," \
  " plugins = { 'payments' }, secrets = { merchant_key = [[%.*s]], apiv3_key = 'k' }, sign = " sign \
  " } } } } }"
  snprintf(text, sizeof text, WXP("{ scheme = 'wechatpay2', key = 'merchant_key', mchid = '1900000109',"
           " serial = '3775B6A45ACD588826D15E583A95F5DD' }"), (int)n, pem);
  ASSERT_EQ(load(text), 0);
  const tpc_destination *d = tpc_find_destination(&cfg.tenants[0], "wxpay");
  ASSERT_EQ(d->sign_scheme, TPC_SIGN_WECHATPAY2);
  ASSERT_STR(d->sign->name, "merchant_key");
  ASSERT_STR(d->sign_mchid, "1900000109");
  ASSERT_STR(d->sign_serial, "3775B6A45ACD588826D15E583A95F5DD");
  tpc_free(&cfg);
  snprintf(text, sizeof text, WXP("{ scheme = 'wechatpay2', key = 'apiv3_key', mchid = '1', serial = 'S' }"),
           (int)n, pem);
  ASSERT_EQ(load(text), -1);
  ASSERT_CONTAINS(err, "http.wxpay.sign: key: secret 'apiv3_key' is not an unencrypted RSA private key");
  snprintf(text, sizeof text, WXP("{ scheme = 'wechatpay3', key = 'merchant_key', mchid = '1', serial = 'S' }"),
           (int)n, pem);
  ASSERT_EQ(load(text), -1);
  ASSERT_CONTAINS(err, "http.wxpay.sign: scheme: must be \"wechatpay2\"");
  snprintf(text, sizeof text, WXP("{ scheme = 'wechatpay2', key = 'nokey', mchid = '1', serial = 'S' }"),
           (int)n, pem);
  ASSERT_EQ(load(text), -1);
  ASSERT_CONTAINS(err, "key: names no secret of this destination ('nokey')");
  snprintf(text, sizeof text, WXP("{ scheme = 'wechatpay2', key = 'merchant_key', mchid = 'a\"b', serial = 'S' }"),
           (int)n, pem);
  ASSERT_EQ(load(text), -1);
  ASSERT_CONTAINS(err, "mchid and serial: must be 1-64 printable characters");
  snprintf(text, sizeof text, WXP("{ scheme = 'wechatpay2', key = 'merchant_key', mchid = '1' }"), (int)n, pem);
  ASSERT_EQ(load(text), -1);
  ASSERT_CONTAINS(err, "serial");
#undef WXP
  BIO_free(b);
  EVP_PKEY_free(k);
}

/* token = {path, appid, secret}: the secret is a name of this destination's
** secrets, the path a path; it makes the destination's errcode semantics on. */
TEST(a_wechat_token_names_its_secret_and_implies_errcode) {
#define WX(extra) \
  "return { tenants = { " TENANT ", http = { wechat = { url = 'https://api.weixin.qq.com'," \
  " plugins = { 'notify' }, secrets = { app_secret = 's3' }, " extra " } } } } }"
  ASSERT_EQ(load(WX("token = { appid = 'wx123', secret = 'app_secret' }")), 0);
  const tpc_destination *d = tpc_find_destination(&cfg.tenants[0], "wechat");
  ASSERT_STR(d->token_path, "/cgi-bin/stable_token");
  ASSERT_STR(d->token_appid, "wx123");
  ASSERT_STR(d->token_secret->name, "app_secret");
  ASSERT_EQ(d->errcode, true);
  tpc_free(&cfg);
  ASSERT_EQ(load(WX("errcode = true")), 0);
  d = tpc_find_destination(&cfg.tenants[0], "wechat");
  ASSERT_EQ(d->errcode, true);
  ASSERT_EQ(d->token_path == NULL, true);
  tpc_free(&cfg);
  ASSERT_EQ(load(WX("errcode = 1")), -1);
  ASSERT_CONTAINS(err, "errcode: must be a boolean");
  ASSERT_EQ(load(WX("token = { appid = 'wx123', secret = 'nope' }")), -1);
  ASSERT_CONTAINS(err, "http.wechat.token: secret: names no secret of this destination ('nope')");
  ASSERT_EQ(load(WX("token = { appid = 'wx123', secret = 'app_secret', path = 'cgi-bin/x?y' }")), -1);
  ASSERT_CONTAINS(err, "path: must start with /");
  ASSERT_EQ(load(WX("token = { secret = 'app_secret' }")), -1);
  ASSERT_CONTAINS(err, "appid");
  ASSERT_EQ(load(WX("token = { appid = 'wx', secret = 'app_secret', grant = 1 }")), -1);
  ASSERT_CONTAINS(err, "grant");
#undef WX
}

TEST(keys_carry_roles_and_the_console_has_defaults) {
  ASSERT_EQ(load("return { tenants = { { id = 'leaf', token_secret = 'sixteen-bytes-ok!', api_keys = {"
                 " 'owner-key-0000001', { key = 'store-key-00000001', role = 'store_manager', store = 'hz-west' },"
                 " { key = 'finance-key-000001', role = 'finance' } } } } }"), 0);
  const tpc_tenant *t = &cfg.tenants[0];
  ASSERT_EQ(t->napi_keys, 3);
  ASSERT_EQ(t->key_roles[0], TPC_ROLE_OWNER);
  ASSERT_EQ(t->key_roles[1], TPC_ROLE_STORE_MANAGER);
  ASSERT_STR(t->key_stores[1], "hz-west");
  ASSERT_EQ(t->key_roles[2], TPC_ROLE_FINANCE);
  ASSERT_STR(t->key_stores[2], "");
  ASSERT_EQ(cfg.session_seconds, 8 * 3600);
  ASSERT_EQ(cfg.sign_in_failures, 5);
  ASSERT_EQ(cfg.password_iterations, 600000);
  ASSERT_STR(cfg.vendor_dir, "/usr/share/javascript");
  ASSERT_CONTAINS(cfg.console_dir, "core/host/console");
  tpc_free(&cfg);
  static const struct { const char *keys, *want; } bad[] = {
    {"{ key = 'store-key-00000001', role = 'store_manager' }", "api_keys[1]: store: a store_manager's key must name its store"},
    {"{ key = 'owner-key-00000001', store = 'hz-west' }", "api_keys[1]: store: only a store_manager's key names a store"},
    {"{ key = 'owner-key-00000001', role = 'king' }", "api_keys[1]: role: must be one of owner"},
    {"{ key = 'short', role = 'finance' }", "api_keys[1]: key: must be a string of at least 16 bytes"},
    {"{ key = 'store-key-00000001', role = 'store_manager', store = 'hz west' }", "api_keys[1]: store: must be 1-32"},
    {"{ key = 'owner-key-00000001', rol = 'owner' }", "api_keys[1]: unknown key 'rol'"},
    {"7", "api_keys[1]: must be a string or {key"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char text[512];
    snprintf(text, sizeof text, "return { tenants = { { id = 'leaf', token_secret = 'sixteen-bytes-ok!', "
             "api_keys = { %s } } } }", bad[i].keys);
    ASSERT_EQ(load(text), -1);
    ASSERT_CONTAINS(err, bad[i].want);
  }
  ASSERT_EQ(load("return { console = { session_seconds = 60, sign_in_failures = 3, password_iterations = 1000,"
                 " dir = 'web', vendor_dir = '/opt/js' }, tenants = { " TENANT " } } }"), 0);
  ASSERT_EQ(cfg.session_seconds, 60);
  ASSERT_STR(cfg.console_dir, "/etc/tp/web");
  ASSERT_STR(cfg.vendor_dir, "/opt/js");
  tpc_free(&cfg);
  ASSERT_EQ(load("return { console = { password_iterations = 10 }, tenants = { " TENANT " } } }"), -1);
  ASSERT_CONTAINS(err, "console.password_iterations");
  ASSERT_EQ(load("return { console = { sesion_seconds = 10 }, tenants = { " TENANT " } } }"), -1);
  ASSERT_CONTAINS(err, "session_seconds");
}

int main(void) {
  RUN(minimal_config_gets_defaults);
  RUN(a_wechat_token_names_its_secret_and_implies_errcode);
  RUN(keys_carry_roles_and_the_console_has_defaults);
  RUN(wechatpay2_signing_needs_an_rsa_key_mchid_and_serial);
  RUN(full_config_is_read);
  RUN(sandbox_limits_clocks_and_admin_keys);
  RUN(unknown_keys_name_their_path);
  RUN(wrong_types_and_ranges_are_errors);
  RUN(tenant_rules_are_enforced);
  RUN(plugin_names_and_prefixes_are_checked);
  RUN(campaigns_run_as_plugins_named_after_their_files);
  RUN(plugin_config_must_be_plain_data);
  RUN(syntax_errors_carry_the_line);
  RUN(a_runaway_config_is_an_error_not_a_hang);
  RUN(config_runs_sandboxed_with_env);
  RUN(missing_file_is_a_clear_error);
  RUN(listen_addresses_parse);
  RUN(http_destinations_are_an_allow_list_with_secrets);
  return TEST_SUMMARY();
}
