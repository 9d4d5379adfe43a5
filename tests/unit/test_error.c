/*
** test_error.c - the one error shape (error.h), which the HTTP server, the
** host and plugins' tp.fail all answer with.
*/
#include "base/error.h"

#include <string.h>

#include "tp_test.h"
#include "net/http.h"

TEST(renders_code_message_and_request_id) {
  tp_error e;
  tp_error_set(&e, 409, "sold_out", "only %d left", 0);
  tp_buf b;
  tp_buf_init(&b);
  tp_buf_adds(&b, "whatever was there before");
  tp_error_render(&e, "r-1", &b);
  ASSERT_STR(tp_buf_cstr(&b), "{\"error\":{\"code\":\"sold_out\",\"message\":\"only 0 left\","
                              "\"request_id\":\"r-1\"}}");
  ASSERT_EQ(e.status, 409);
  tp_buf_free(&b);
}

TEST(details_follow_and_an_empty_request_id_is_left_out) {
  tp_error e;
  tp_error_set(&e, 422, "invalid_field", "bad \"price\"\n");
  e.details = "{\"field\":\"price_fen\"}";
  e.details_len = strlen(e.details);
  tp_buf b;
  tp_buf_init(&b);
  tp_error_render(&e, "", &b);
  ASSERT_STR(tp_buf_cstr(&b), "{\"error\":{\"code\":\"invalid_field\",\"message\":"
                              "\"bad \\\"price\\\"\\n\",\"details\":{\"field\":\"price_fen\"}}}");
  tp_buf_free(&b);
}

TEST(a_long_code_is_cut_not_overrun) {
  tp_error e;
  tp_error_set(&e, 400, "a_code_much_longer_than_the_forty_bytes_a_code_may_have", "m");
  ASSERT_EQ(strlen(e.code), sizeof e.code - 1);
}

TEST(the_http_server_answers_in_the_same_shape) {
  tph_response res;
  memset(&res, 0, sizeof res);
  tp_buf_init(&res.body);
  tp_copy_str(res.request_id, sizeof res.request_id, "r-2");
  tph_error(&res, 413, "body_too_large", "the body is over %d bytes", 1024);
  tp_error e;
  tp_error_set(&e, 413, "body_too_large", "the body is over 1024 bytes");
  tp_buf expect;
  tp_buf_init(&expect);
  tp_error_render(&e, "r-2", &expect);
  ASSERT_STR(tp_buf_cstr(&res.body), tp_buf_cstr(&expect));
  ASSERT_STR(res.error_code, "body_too_large");
  ASSERT_EQ(res.status, 413);
  tp_buf_free(&expect);
  tp_buf_free(&res.body);
}

int main(void) {
  RUN(renders_code_message_and_request_id);
  RUN(details_follow_and_an_empty_request_id_is_left_out);
  RUN(a_long_code_is_cut_not_overrun);
  RUN(the_http_server_answers_in_the_same_shape);
  return TEST_SUMMARY();
}
