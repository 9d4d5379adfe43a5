/*
** test_stmtlint.c - statements whose text a plugin builds at every call (stmtlint.h).
*/
#include "cli/stmtlint.h"

#include <stdio.h>
#include <string.h>

#include "tp_test.h"

/* The lines found, as "3,7," */
static char lines[256];

static void note(void *ud, int line) {
  (void)ud;
  size_t n = strlen(lines);
  snprintf(lines + n, sizeof lines - n, "%d,", line);
}

static const char *scan(const char *src) {
  lines[0] = '\0';
  tpst_scan(src, note, NULL);
  return lines;
}

TEST(a_text_of_constants_joined_in_a_call_is_found) {
  ASSERT_STR(scan("local function load(id)\n"
                  "  return tp.db.one(\"SELECT \" .. COLUMNS .. \" FROM x_items WHERE id = ?\", id)\n"
                  "end\n"), "2,");
  ASSERT_STR(scan("x = function() tp.db.query('SELECT ' .. store.COLUMNS .. [[ FROM x_t\n"
                  "  ORDER BY id]]) end\n"), "1,");
  ASSERT_STR(scan("f(function() tp.db.exec(\n  [==[DELETE FROM ]==] .. TABLE_2 .. \" WHERE k = ?\", k) end)"),
             "1,");
  /* the text may end the call, or be followed by the values */
  ASSERT_STR(scan("tp.db.query(\"SELECT \" .. COLS .. \" FROM x_t\")"), "1,");
  ASSERT_EQ(tpst_scan("tp.db.one(A .. B, 1)\ntp.db.one(A .. B, 2)\n", NULL, NULL), 2);
}

TEST(a_text_that_may_change_is_not) {
  ASSERT_STR(scan("tp.db.one(\"SELECT \" .. cols .. \" FROM x_t\", id)"), "");          /* a variable */
  ASSERT_STR(scan("tp.db.one(\"SELECT \" .. M.cols .. \" FROM x_t\", id)"), "");        /* a field in lower case */
  ASSERT_STR(scan("tp.db.one(\"SELECT \" .. Cols .. \" FROM x_t\", id)"), "");          /* not all capitals */
  ASSERT_STR(scan("tp.db.one(\"SELECT \" .. COLS() .. \" FROM x_t\", id)"), "");        /* a call */
  ASSERT_STR(scan("tp.db.one(\"SELECT \" .. T[1] .. \" FROM x_t\", id)"), "");          /* an index */
  ASSERT_STR(scan("tp.db.one((\"SELECT %s FROM x_t\"):format(COLS), id)"), "");         /* not a join */
  ASSERT_STR(scan("tp.db.exec(\"SELECT \" .. A .. \" AND \" .. where, x)"), "");       /* the last operand */
}

TEST(a_text_built_once_is_not) {
  ASSERT_STR(scan("local LOAD = \"SELECT \" .. COLUMNS .. \" FROM x_t WHERE id = ?\"\n"
                  "function m.load(id) return tp.db.one(LOAD, id) end\n"
                  "function m.all() return tp.db.query(\"SELECT id FROM x_t\") end\n"), "");
}

TEST(comments_and_strings_are_not_code) {
  ASSERT_STR(scan("-- tp.db.one(\"SELECT \" .. COLUMNS .. \" FROM x\")\n"
                  "--[[ tp.db.one(\"SELECT \" .. COLUMNS .. \" FROM x\")\n]]\n"
                  "--[==[ ]] tp.db.one(A .. B) ]==]\n"
                  "local s = \"tp.db.one(A .. B)\" .. 'tp.db.one(A .. B)'\n"
                  "local l = [[\ntp.db.one(A .. B)]]\n"
                  "local e = \"\\\" tp.db.one(A .. B)\"\n"
                  "tp.db.one(A .. B)\n"), "9,");
}

TEST(only_tp_db_calls_count) {
  ASSERT_STR(scan("xtp.db.one(A .. B)\nmy.tp.db.one(A .. B)\ntp.db.onex(A .. B)\n"
                  "tp.db.run(A .. B)\ntp.log.info(A .. B)\n"), "");
  ASSERT_STR(scan("tp.db.one (A .. B)\n"), "1,");  /* a space before the parenthesis */
  /* a varargs ... is not a join */
  ASSERT_STR(scan("tp.db.one(A ... B)\n"), "");
  /* a source that ends inside a call, a string or a comment ends the scan */
  ASSERT_STR(scan("tp.db.one(\"SELECT "), "");
  ASSERT_STR(scan("tp.db.one(A .. [==[x"), "");
  ASSERT_STR(scan("--[[ never closed"), "");
}

int main(void) {
  RUN(a_text_of_constants_joined_in_a_call_is_found);
  RUN(a_text_that_may_change_is_not);
  RUN(a_text_built_once_is_not);
  RUN(comments_and_strings_are_not_code);
  RUN(only_tp_db_calls_count);
  return TEST_SUMMARY();
}
