/*
** fuzz_campaign.c - any text as a campaign script, loaded the way the host
** loads one (config, tpp_load, sdk/tp/campaign/runtime.lua): it loads, or the
** problem is reported against the script itself. An error raised inside the
** campaign runtime (a bug of ours that an odd script reaches) aborts, as does
** a refusal without a message; the sanitizers catch the rest.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "config/config.h"
#include "lua/plugin.h"

#ifndef TP_SOURCE_DIR
#define TP_SOURCE_DIR "."
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[] = "/tmp/tidepool-fuzz-campaign-XXXXXX";
static char script_path[128];
static tpc_config cfg;

static void shut_down(void) {
  tpc_free(&cfg);
  tp_remove_tree(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  if (!mkdtemp(dir)) abort();
  snprintf(script_path, sizeof script_path, "%s/fuzzed.lua", dir);
  char text[1024], err[1024];
  snprintf(text, sizeof text,
           "return { plugin_dirs = { '%s/plugins' }, sdk_dir = '%s/sdk', limits = { "
           "load_instructions = 2000000, lua_memory_bytes = 16777216 }, tenants = { { id = 'f', "
           "token_secret = 'sixteen-bytes-ok!', campaigns = { '%s' } } } }",
           TP_SOURCE_DIR, TP_SOURCE_DIR, script_path);
  if (tpc_load_string(text, "=fuzz_campaign", dir, &cfg, err, sizeof err) != 0) {
    fprintf(stderr, "fuzz_campaign: %s\n", err);
    abort();
  }
  atexit(shut_down);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FILE *f = fopen(script_path, "wb");
  if (!f) abort();
  fwrite(data, 1, size, f);
  fclose(f);
  const tpc_tenant *t = &cfg.tenants[0];
  tp_plugin p;
  char err[2048] = "";
  if (tpp_load(&p, &cfg, t, &t->plugins[0], NULL, err, sizeof err) != 0) {
    if (!err[0]) abort();  /* a refusal always says why */
    if (strncmp(err, TP_SOURCE_DIR "/sdk/tp/", strlen(TP_SOURCE_DIR "/sdk/tp/")) == 0) {
      fprintf(stderr, "the campaign runtime failed instead of the script:\n%s\n", err);
      abort();
    }
  }
  tpp_free(&p);
  return 0;
}
