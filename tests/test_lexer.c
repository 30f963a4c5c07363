/* The lexer: token kinds, values, locations, newline rules and errors. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "lexer.h"
#include "parser.h"

static char *buf;
static size_t buf_len;
static FILE *out;
static Diag d;
static Arena arena;
static char toks[4096];

static void setup(void) {
  out = open_memstream(&buf, &buf_len);
  diag_init(&d, out);
  arena_init(&arena);
}

static void teardown(void) {
  fclose(out);
  free(buf);
  diag_free(&d);
  arena_free(&arena);
}

static const char *errors(void) {
  fflush(out);
  return buf;
}

/* The tokens of src as their source text separated by spaces; NEWLINE is
 * written NL and the end of input EOF. */
static const char *lex_all(const char *src) {
  Lexer lx;
  lex_init(&lx, src, strlen(src), "t.model", &arena, &d);
  diag_add_source(&d, "t.model", src);
  size_t n = 0;
  toks[0] = 0;
  for (int i = 0; i < 200; i++) {
    Token t = lex_next(&lx);
    const char *text = t.kind == 0 ? "EOF" : t.kind == TK_NEWLINE ? "NL" : NULL;
    n += (size_t)snprintf(toks + n, sizeof toks - n, "%s%.*s", n ? " " : "",
                          text ? (int)strlen(text) : t.len,
                          text ? text : t.start);
    if (t.kind == 0)
      break;
  }
  return toks;
}

static Token lex_one(const char *src) {
  static Lexer lx;
  lex_init(&lx, src, strlen(src), "t.model", &arena, &d);
  return lex_next(&lx);
}

TestSuite(lexer, .init = setup, .fini = teardown);

Test(lexer, kinds_and_locations) {
  const char *src = "const n_embd = 768\n  h = wte[tokens] @ w.T\n";
  Lexer lx;
  lex_init(&lx, src, strlen(src), "t.model", &arena, &d);
  struct {
    int kind, line, col, len;
  } want[] = {
      {TK_CONST, 1, 1, 5},    {TK_NAME, 1, 7, 6},      {TK_ASSIGN, 1, 14, 1},
      {TK_INT, 1, 16, 3},     {TK_NEWLINE, 1, 19, 1},  {TK_NAME, 2, 3, 1},
      {TK_ASSIGN, 2, 5, 1},   {TK_NAME, 2, 7, 3},      {TK_LBRACKET, 2, 10, 1},
      {TK_NAME, 2, 11, 6},    {TK_RBRACKET, 2, 17, 1}, {TK_AT, 2, 19, 1},
      {TK_NAME, 2, 21, 1},    {TK_DOT, 2, 22, 1},      {TK_NAME, 2, 23, 1},
      {TK_NEWLINE, 2, 24, 1}, {0, 2, 24, 1},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    Token t = lex_next(&lx);
    cr_assert_eq(t.kind, want[i].kind, "token %zu: kind %s", i,
                 lex_token_name(t.kind));
    cr_assert_eq(t.loc.line, want[i].line, "token %zu line", i);
    cr_assert_eq(t.loc.col, want[i].col, "token %zu col", i);
    cr_assert_eq(t.loc.len, want[i].len, "token %zu len", i);
    cr_assert_str_eq(t.loc.file, "t.model");
  }
  cr_assert_eq(lex_next(&lx).kind, 0, "end of input repeats");
  cr_assert_eq(d.nerrors, 0);
}

Test(lexer, keywords_and_names) {
  const char *kw = "const input output param from fn return for in range if "
                   "else and or not true false None";
  int want[] = {TK_CONST,  TK_INPUT, TK_OUTPUT, TK_PARAM, TK_FROM,  TK_FN,
                TK_RETURN, TK_FOR,   TK_IN,     TK_RANGE, TK_IF,    TK_ELSE,
                TK_AND,    TK_OR,    TK_NOT,    TK_TRUE,  TK_FALSE, TK_NONE};
  Lexer lx;
  lex_init(&lx, kw, strlen(kw), "t.model", &arena, &d);
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    cr_assert_eq(lex_next(&lx).kind, want[i], "keyword %zu", i);
  const char *names = "constant inputs _x fn2 none True x_1";
  lex_init(&lx, names, strlen(names), "t.model", &arena, &d);
  for (int i = 0; i < 7; i++) {
    Token t = lex_next(&lx);
    cr_assert_eq(t.kind, TK_NAME, "name %d", i);
    cr_assert_eq(strlen(t.text), (size_t)t.len);
  }
  cr_assert_str_eq(lex_one("x_1").text, "x_1");
  cr_assert_eq(lex_one("true").ival, 1);
}

Test(lexer, operators) {
  cr_assert_str_eq(lex_all("a+b-c*d/e%f@g^h**i==j!=k<l<=m>n>=o"),
                   "a + b - c * d / e % f @ g ^ h ** i == j != k < l <= m > "
                   "n >= o NL EOF");
  cr_assert_str_eq(lex_all("x[..., ::2] ; y = (1, 2) {}"),
                   "x [ ... , : : 2 ] ; y = ( 1 , 2 ) { } NL EOF");
}

Test(lexer, numbers) {
  Token t = lex_one("42");
  cr_assert_eq(t.kind, TK_INT);
  cr_assert_eq(t.ival, 42);
  cr_assert_str_eq(t.text, "42");
  t = lex_one("1.5");
  cr_assert_eq(t.kind, TK_FLOAT);
  cr_assert_float_eq(t.fval, 1.5, 0);
  t = lex_one("1e-5");
  cr_assert_eq(t.kind, TK_FLOAT);
  cr_assert_float_eq(t.fval, 1e-5, 0);
  cr_assert_str_eq(t.text, "1e-5");
  t = lex_one(".5");
  cr_assert_eq(t.kind, TK_FLOAT);
  cr_assert_float_eq(t.fval, 0.5, 0);
  t = lex_one("2.5E+3");
  cr_assert_float_eq(t.fval, 2500.0, 0);
  /* `2.` is not a float: an int and a dot. */
  cr_assert_str_eq(lex_all("2."), "2 . EOF");
  cr_assert_str_eq(lex_all("x.5"), "x .5 NL EOF");
  cr_assert_eq(d.nerrors, 0);
}

Test(lexer, bad_numbers) {
  cr_assert_str_eq(lex_all("a = 12abc + 1e"), "a = 12abc + 1e NL EOF");
  cr_assert_str_eq(errors(), "t.model:1:5: error: invalid number '12abc'\n"
                             "a = 12abc + 1e\n"
                             "    ^~~~~\n"
                             "t.model:1:13: error: invalid number '1e'\n"
                             "a = 12abc + 1e\n"
                             "            ^~\n");
}

Test(lexer, int_too_large) {
  Token t = lex_one("99999999999999999999");
  cr_assert_eq(t.kind, TK_INT);
  cr_assert_eq(d.nerrors, 1);
  cr_assert(strstr(errors(), "is too large"));
}

Test(lexer, strings) {
  Token t = lex_one("\"h.{i}.ln_1.weight\"");
  cr_assert_eq(t.kind, TK_STRING);
  cr_assert_str_eq(t.text, "h.{i}.ln_1.weight");
  cr_assert_eq(t.len, 19);
  t = lex_one("\"a\\\"b\\\\c\"");
  cr_assert_str_eq(t.text, "a\"b\\c");
  cr_assert_eq(d.nerrors, 0);
}

Test(lexer, bad_escape) {
  lex_all("s = \"a\\nb\"");
  cr_assert_str_eq(errors(), "t.model:1:7: error: unknown escape sequence "
                             "'\\n' (only \\\" and \\\\ are allowed)\n"
                             "s = \"a\\nb\"\n"
                             "      ^~\n");
}

Test(lexer, unterminated_string) {
  cr_assert_str_eq(lex_all("s = \"abc\nt = 1"), "s = \"abc NL t = 1 NL EOF");
  cr_assert_str_eq(errors(), "t.model:1:5: error: unterminated string\n"
                             "s = \"abc\n"
                             "    ^~~~\n");
}

Test(lexer, bad_characters_continue) {
  cr_assert_str_eq(lex_all("a = $b ? \x01"), "a = b NL EOF");
  cr_assert_str_eq(errors(), "t.model:1:5: error: unexpected character '$'\n"
                             "a = $b ? \x01\n"
                             "    ^\n"
                             "t.model:1:8: error: unexpected character '?'\n"
                             "a = $b ? \x01\n"
                             "       ^\n"
                             "t.model:1:10: error: unexpected character "
                             "'\\x01'\n"
                             "a = $b ? \x01\n"
                             "         ^\n");
  cr_assert_eq(d.nerrors, 3);
}

Test(lexer, non_ascii) {
  cr_assert_str_eq(lex_all("x = \xce\xbc + 1"), "x = + 1 NL EOF");
  cr_assert_eq(d.nerrors, 1);
  cr_assert(strstr(errors(), "t.model:1:5: error: unexpected non-ASCII"));
}

Test(lexer, newline_ends_statement) {
  cr_assert_str_eq(lex_all("a = 1\nb = 2\n"), "a = 1 NL b = 2 NL EOF");
  /* semicolon */
  cr_assert_str_eq(lex_all("a = 1; b = 2"), "a = 1 ; b = 2 NL EOF");
  cr_assert_str_eq(lex_all("a = 1;\nb = 2;"), "a = 1 ; b = 2 ; EOF");
  /* an unfinished statement gets no NEWLINE at the end of the file */
  cr_assert_str_eq(lex_all("a = 1 +"), "a = 1 + EOF");
  cr_assert_str_eq(lex_all("a = f(1"), "a = f ( 1 EOF");
  cr_assert_str_eq(lex_all("fn f() {"), "fn f ( ) { EOF");
}

Test(lexer, blank_lines_and_comments_collapse) {
  cr_assert_str_eq(lex_all("\n\n# header\n  a = 1   # note\n\n\n# c\n  \n"
                           "b = 2\n# end"),
                   "a = 1 NL b = 2 NL EOF");
  cr_assert_str_eq(lex_all(""), "EOF");
  cr_assert_str_eq(lex_all("# only a comment\n\n"), "EOF");
}

Test(lexer, no_newline_inside_parens_and_brackets) {
  cr_assert_str_eq(lex_all("y = f(a,\n  b\n)\nz = x[0\n:2]\n"),
                   "y = f ( a , b ) NL z = x [ 0 : 2 ] NL EOF");
  cr_assert_str_eq(lex_all("y = g([1,\n 2],\n\n c)\n"),
                   "y = g ( [ 1 , 2 ] , c ) NL EOF");
}

Test(lexer, no_newline_after_operator_comma_brace) {
  cr_assert_str_eq(lex_all("y = a +\n  b *\n  c\n"), "y = a + b * c NL EOF");
  cr_assert_str_eq(lex_all("q, k,\n v = s\n"), "q , k , v = s NL EOF");
  cr_assert_str_eq(lex_all("y =\n 1\n"), "y = 1 NL EOF");
  cr_assert_str_eq(lex_all("c = a and\n b or\n not\n d\n"),
                   "c = a and b or not d NL EOF");
  cr_assert_str_eq(lex_all("fn f(x) {\n\n  return x\n}\n"),
                   "fn f ( x ) { return x NL } NL EOF");
}

Test(lexer, else_and_brace_on_next_line) {
  cr_assert_str_eq(lex_all("if c {\n a = 1\n}\n# why\nelse {\n a = 2\n}\n"),
                   "if c { a = 1 NL } else { a = 2 NL } NL EOF");
  cr_assert_str_eq(lex_all("for i in range(3)\n{\n x = i\n}"),
                   "for i in range ( 3 ) { x = i NL } NL EOF");
  cr_assert_str_eq(lex_all("x = 1\nelsewhere = 2"),
                   "x = 1 NL elsewhere = 2 NL EOF");
}

Test(lexer, brace_resets_paren_depth) {
  /* An unclosed '(' does not swallow the newlines of the next block. */
  cr_assert_str_eq(lex_all("y = f(a\nfn g(x) {\n  y = x\n  z = y\n}\n"),
                   "y = f ( a fn g ( x ) { y = x NL z = y NL } NL EOF");
}

Test(lexer, newline_token_location) {
  Lexer lx;
  const char *src = "ab\n\ncd";
  lex_init(&lx, src, strlen(src), "t.model", &arena, &d);
  Token t = lex_next(&lx);
  t = lex_next(&lx);
  cr_assert_eq(t.kind, TK_NEWLINE);
  cr_assert_eq(t.loc.line, 1);
  cr_assert_eq(t.loc.col, 3);
  t = lex_next(&lx);
  cr_assert_eq(t.kind, TK_NAME);
  cr_assert_eq(t.loc.line, 3);
  cr_assert_eq(t.loc.col, 1);
  t = lex_next(&lx); /* made at the end of the file */
  cr_assert_eq(t.kind, TK_NEWLINE);
  cr_assert_eq(t.loc.line, 3);
  cr_assert_eq(t.loc.col, 3);
  t = lex_next(&lx);
  cr_assert_eq(t.kind, 0);
  cr_assert_eq(t.loc.line, 3);
  cr_assert_eq(t.loc.col, 3);
}

Test(lexer, embedded_nul_is_an_error) {
  const char src[] = "a\0b";
  Lexer lx;
  lex_init(&lx, src, 3, "t.model", &arena, &d);
  cr_assert_eq(lex_next(&lx).kind, TK_NAME);
  cr_assert_eq(lex_next(&lx).kind, TK_NAME);
  cr_assert_eq(d.nerrors, 1);
  cr_assert_eq(lex_next(&lx).kind, TK_NEWLINE);
  cr_assert_eq(lex_next(&lx).kind, 0);
}

Test(lexer, token_names) {
  cr_assert_str_eq(lex_token_name(0), "end of file");
  cr_assert_str_eq(lex_token_name(TK_NEWLINE), "newline");
  cr_assert_str_eq(lex_token_name(TK_NAME), "name");
  cr_assert_str_eq(lex_token_name(TK_RPAREN), "')'");
  cr_assert_str_eq(lex_token_name(TK_FOR), "'for'");
  cr_assert_str_eq(lex_token_name(TK_POW), "'**'");
}
