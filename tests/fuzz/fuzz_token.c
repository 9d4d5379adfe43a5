/*
** fuzz_token.c - the user-token verifier on any bytes. A token it accepts
** names a valid user; and a user id taken from the input, when valid, survives
** a mint/verify round trip unchanged.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/token.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char secret[] = "fuzz-token-secret-0123456789abcdef";
static const int64_t now = 1800000000;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  return 0;
}

static void round_trip(const uint8_t *data, size_t size) {
  size_t n = size < TPT_MAX_ID ? size : TPT_MAX_ID;
  if (n == 0 || !tpt_valid_user_id((const char *)data, n)) return;
  char user[TPT_MAX_ID + 1], back[TPT_MAX_ID + 1];
  memcpy(user, data, n);
  user[n] = 0;
  tp_buf tok;
  tp_buf_init(&tok);
  tpt_mint(secret, strlen(secret), "leaf", user, now + 60, &tok);
  if (tpt_verify(tok.data, tok.len, "leaf", secret, strlen(secret), now, back) != TPT_OK ||
      strcmp(user, back) != 0)
    abort();
  tp_buf_free(&tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char user[TPT_MAX_ID + 1];
  tpt_result r = tpt_verify((const char *)data, size, "leaf", secret, strlen(secret), now, user);
  if (r == TPT_OK && !tpt_valid_user_id(user, strlen(user))) abort();
  if (tpt_result_code(r) == NULL || tpt_result_message(r) == NULL) abort();
  round_trip(data, size);
  return 0;
}
