/* Diagnostics: exact message text, the quoted source line and the caret. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"

static char *buf;
static size_t buf_len;
static FILE *out;
static Diag d;

static void setup(void) {
  out = open_memstream(&buf, &buf_len);
  diag_init(&d, out);
}

static void teardown(void) {
  fclose(out);
  free(buf);
  diag_free(&d);
}

static const char *output(void) {
  fflush(out);
  return buf;
}

static Loc at(const char *file, int line, int col, int len) {
  Loc l = {file, line, col, len, NULL};
  return l;
}

static const char *src = "const n = 12\n"
                         "y = a + bb\n"
                         "\tz = q\n";

TestSuite(diag, .init = setup, .fini = teardown);

Test(diag, error_quotes_line_with_caret) {
  diag_add_source(&d, "m.model", src);
  diag_error(&d, at("m.model", 2, 5, 6), "bad %s", "sum");
  cr_assert_str_eq(output(), "m.model:2:5: error: bad sum\n"
                             "y = a + bb\n"
                             "    ^~~~~~\n");
  cr_assert_eq(d.nerrors, 1);
}

Test(diag, len_zero_is_one_caret) {
  diag_add_source(&d, "m.model", src);
  diag_error(&d, at("m.model", 1, 7, 0), "x");
  cr_assert_str_eq(output(), "m.model:1:7: error: x\n"
                             "const n = 12\n"
                             "      ^\n");
}

Test(diag, caret_clipped_to_line) {
  diag_add_source(&d, "m.model", src);
  diag_error(&d, at("m.model", 2, 9, 50), "x");
  cr_assert_str_eq(output(), "m.model:2:9: error: x\n"
                             "y = a + bb\n"
                             "        ^~\n");
}

Test(diag, caret_past_end_of_line) {
  diag_add_source(&d, "m.model", src);
  diag_error(&d, at("m.model", 2, 11, 1), "x");
  cr_assert_str_eq(output(), "m.model:2:11: error: x\n"
                             "y = a + bb\n"
                             "          ^\n");
}

Test(diag, tabs_kept_for_alignment) {
  diag_add_source(&d, "m.model", src);
  diag_error(&d, at("m.model", 3, 6, 1), "x");
  cr_assert_str_eq(output(), "m.model:3:6: error: x\n"
                             "\tz = q\n"
                             "\t    ^\n");
}

Test(diag, note_and_warning) {
  diag_add_source(&d, "m.model", src);
  diag_warning(&d, at("m.model", 1, 1, 5), "unused");
  diag_note(&d, at("m.model", 1, 7, 1), "declared here");
  cr_assert_str_eq(output(), "m.model:1:1: warning: unused\n"
                             "const n = 12\n"
                             "^~~~~\n"
                             "m.model:1:7: note: declared here\n"
                             "const n = 12\n"
                             "      ^\n");
  cr_assert_eq(d.nerrors, 0);
}

Test(diag, unregistered_file_prints_first_line_only) {
  diag_error(&d, at("other.model", 4, 2, 3), "no source");
  cr_assert_str_eq(output(), "other.model:4:2: error: no source\n");
}

Test(diag, line_past_end_prints_first_line_only) {
  diag_add_source(&d, "m.model", "a = 1");
  diag_error(&d, at("m.model", 3, 1, 1), "x");
  cr_assert_str_eq(output(), "m.model:3:1: error: x\n");
}

Test(diag, last_line_without_newline_and_crlf) {
  diag_add_source(&d, "m.model", "a = 1\r\nb = 2");
  diag_error(&d, at("m.model", 1, 5, 1), "x");
  diag_error(&d, at("m.model", 2, 1, 1), "y");
  cr_assert_str_eq(output(), "m.model:1:5: error: x\n"
                             "a = 1\n"
                             "    ^\n"
                             "m.model:2:1: error: y\n"
                             "b = 2\n"
                             "^\n");
}

Test(diag, no_location) {
  diag_error(&d, loc_none(), "no input files");
  diag_warning(&d, loc_none(), "w");
  cr_assert_str_eq(output(), "modelc: error: no input files\n"
                             "modelc: warning: w\n");
}

Test(diag, file_without_line) {
  diag_error(&d, at("w.safetensors", 0, 0, 0), "truncated");
  cr_assert_str_eq(output(), "w.safetensors: error: truncated\n");
}

Test(diag, newest_source_wins) {
  diag_add_source(&d, "m.model", "old\n");
  diag_add_source(&d, "m.model", "new\n");
  diag_error(&d, at("m.model", 1, 1, 3), "x");
  cr_assert_str_eq(output(), "m.model:1:1: error: x\n"
                             "new\n"
                             "^~~\n");
}

Test(diag, max_errors_cap) {
  d.max_errors = 2;
  for (int i = 1; i <= 4; i++) {
    diag_error(&d, at("f", i, 1, 1), "e%d", i);
    diag_note(&d, at("f", i, 1, 1), "n%d", i);
  }
  diag_warning(&d, at("f", 9, 1, 1), "late");
  cr_assert_str_eq(output(), "f:1:1: error: e1\n"
                             "f:1:1: note: n1\n"
                             "f:2:1: error: e2\n"
                             "f:2:1: note: n2\n"
                             "modelc: error: too many errors (2), stopping\n");
  cr_assert_eq(d.nerrors, 4);
}

Test(diag, default_cap_is_20) {
  for (int i = 0; i < 25; i++)
    diag_error(&d, loc_none(), "e");
  const char *s = output();
  int lines = 0;
  for (const char *p = s; *p; p++)
    lines += *p == '\n';
  cr_assert_eq(lines, 21);
  cr_assert(strstr(s, "too many errors (20)"));
}
