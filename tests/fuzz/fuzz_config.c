/*
** fuzz_config.c - the config loader on any text: it loads or says why, within
** its instruction and memory budget, and never crashes or leaks.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;
  tpc_config cfg;
  char err[1024] = "";
  if (tpc_load_string(text, "=fuzz.conf", "/nonexistent", &cfg, err, sizeof err) == 0) {
    tpc_free(&cfg);
  } else if (err[0] == 0) {
    abort();  /* a refusal always says why */
  }
  free(text);
  return 0;
}
