/* The parser: every construct as an AST dump, precedence, locations, syntax
 * errors with their exact text, and realistic model snippets. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ast.h"

static char *buf;
static size_t buf_len;
static FILE *out;
static Diag d;
static AstModule *mod;
static char *dump_buf;

static void setup(void) {
  out = open_memstream(&buf, &buf_len);
  diag_init(&d, out);
}

static void teardown(void) {
  ast_free(mod);
  mod = NULL;
  fclose(out);
  free(buf);
  free(dump_buf);
  dump_buf = NULL;
  diag_free(&d);
}

static const char *errors(void) {
  fflush(out);
  return buf;
}

static const char *dump(const AstNode *n) {
  free(dump_buf);
  size_t len;
  FILE *f = open_memstream(&dump_buf, &len);
  ast_dump(f, n);
  fclose(f);
  if (len && dump_buf[len - 1] == '\n')
    dump_buf[len - 1] = 0;
  return dump_buf;
}

/* The dump of a whole module (without the final newline); the errors if
 * parsing failed. */
static const char *parse(const char *src) {
  ast_free(mod);
  mod = ast_parse_string(src, "t.model", &d);
  return mod ? dump(mod->root) : errors();
}

/* The dump of one expression, parsed as the right side of `x = ...`. */
static const char *expr(const char *src) {
  char text[1024];
  snprintf(text, sizeof text, "x = %s\n", src);
  ast_free(mod);
  mod = ast_parse_string(text, "t.model", &d);
  if (!mod)
    return errors();
  cr_assert_eq(mod->root->nkids, 1);
  cr_assert_eq(mod->root->kids[0]->kind, AST_ASSIGN);
  return dump(mod->root->kids[0]->kids[1]);
}

/* The first statement. */
static const AstNode *stmt(const char *src) {
  ast_free(mod);
  mod = ast_parse_string(src, "t.model", &d);
  cr_assert(mod, "%s", errors());
  return mod->root->kids[0];
}

TestSuite(parser, .init = setup, .fini = teardown);

/* ---- expressions ---- */

Test(parser, literals) {
  cr_assert_str_eq(expr("42"), "(int 42)");
  cr_assert_str_eq(expr("1e-5"), "(float 1e-5)");
  cr_assert_str_eq(expr(".5"), "(float .5)");
  cr_assert_str_eq(expr("true"), "(bool true)");
  cr_assert_str_eq(expr("false"), "(bool false)");
  cr_assert_str_eq(expr("\"h.{i}.w\""), "(string \"h.{i}.w\")");
  cr_assert_str_eq(expr("\"a\\\"b\""), "(string \"a\\\"b\")");
  cr_assert_str_eq(expr("wte"), "(name wte)");
  cr_assert_str_eq(expr("None"), "(none)");
  cr_assert_str_eq(expr("..."), "(ellipsis)");
  const AstNode *e = stmt("x = 1.5\n")->kids[1];
  cr_assert_float_eq(e->fval, 1.5, 0);
  cr_assert_str_eq(e->text, "1.5");
}

Test(parser, arithmetic_precedence) {
  cr_assert_str_eq(expr("a + b * c"),
                   "(binary + (name a) (binary * (name b) (name c)))");
  cr_assert_str_eq(expr("a - b - c"),
                   "(binary - (binary - (name a) (name b)) (name c))");
  cr_assert_str_eq(expr("a / b % c"),
                   "(binary % (binary / (name a) (name b)) (name c))");
  cr_assert_str_eq(expr("x @ w + b"),
                   "(binary + (binary @ (name x) (name w)) (name b))");
  cr_assert_str_eq(expr("a * b @ c"),
                   "(binary @ (binary * (name a) (name b)) (name c))");
  cr_assert_str_eq(expr("(a + b) * c"),
                   "(binary * (binary + (name a) (name b)) (name c))");
}

Test(parser, power_and_unary) {
  /* power is right-associative and binds tighter than unary minus */
  cr_assert_str_eq(expr("-x^2"), "(unary - (binary ^ (name x) (int 2)))");
  cr_assert_str_eq(expr("-x**2"), "(unary - (binary ^ (name x) (int 2)))");
  cr_assert_str_eq(expr("a^b^c"),
                   "(binary ^ (name a) (binary ^ (name b) (name c)))");
  cr_assert_str_eq(expr("a**b**c"),
                   "(binary ^ (name a) (binary ^ (name b) (name c)))");
  cr_assert_str_eq(expr("2^-1"), "(binary ^ (int 2) (unary - (int 1)))");
  cr_assert_str_eq(expr("-a * b"), "(binary * (unary - (name a)) (name b))");
  cr_assert_str_eq(expr("+a - -b"),
                   "(binary - (unary + (name a)) (unary - (name b)))");
  cr_assert_str_eq(expr("-x[0]"), "(unary - (index (name x) (int 0)))");
  cr_assert_str_eq(expr("x.T^2"), "(binary ^ (attr T (name x)) (int 2))");
}

Test(parser, logic_and_comparison) {
  cr_assert_str_eq(expr("a or b and c"),
                   "(binary or (name a) (binary and (name b) (name c)))");
  cr_assert_str_eq(expr("not a == b"),
                   "(unary not (binary == (name a) (name b)))");
  cr_assert_str_eq(expr("not a and b"),
                   "(binary and (unary not (name a)) (name b))");
  cr_assert_str_eq(expr("a + 1 < b * 2"),
                   "(binary < (binary + (name a) (int 1)) "
                   "(binary * (name b) (int 2)))");
  cr_assert_str_eq(expr("a != b or c >= d"),
                   "(binary or (binary != (name a) (name b)) "
                   "(binary >= (name c) (name d)))");
  cr_assert_str_eq(expr("a <= b"), "(binary <= (name a) (name b))");
  cr_assert_str_eq(expr("a > b"), "(binary > (name a) (name b))");
}

Test(parser, comparisons_do_not_chain) {
  cr_assert_str_eq(expr("a < b < c"), "t.model:1:11: error: unexpected '<'\n"
                                      "x = a < b < c\n"
                                      "          ^\n");
}

Test(parser, calls_and_kwargs) {
  cr_assert_str_eq(expr("f()"), "(call (name f))");
  cr_assert_str_eq(expr("mean(x, axis=-1, keepdims=true)"),
                   "(call (name mean) (name x) (kwarg axis (unary - (int 1))) "
                   "(kwarg keepdims (bool true)))");
  cr_assert_str_eq(expr("f(a, b,)"), "(call (name f) (name a) (name b))");
  cr_assert_str_eq(expr("f32(x) + g(h(1))"),
                   "(binary + (call (name f32) (name x)) "
                   "(call (name g) (call (name h) (int 1))))");
}

Test(parser, index_and_slices) {
  cr_assert_str_eq(expr("wte[tokens]"), "(index (name wte) (name tokens))");
  cr_assert_str_eq(expr("x[a:b]"),
                   "(index (name x) (slice (name a) (name b) _))");
  cr_assert_str_eq(expr("x[a:b:c]"),
                   "(index (name x) (slice (name a) (name b) (name c)))");
  cr_assert_str_eq(expr("x[:]"), "(index (name x) (slice _ _ _))");
  cr_assert_str_eq(expr("x[::2]"), "(index (name x) (slice _ _ (int 2)))");
  cr_assert_str_eq(expr("x[:b]"), "(index (name x) (slice _ (name b) _))");
  cr_assert_str_eq(expr("x[a:]"), "(index (name x) (slice (name a) _ _))");
  cr_assert_str_eq(expr("x[a::]"), "(index (name x) (slice (name a) _ _))");
  cr_assert_str_eq(expr("x[0, 1:-1, None, ...]"),
                   "(index (name x) (int 0) (slice (int 1) (unary - (int 1)) "
                   "_) (none) (ellipsis))");
  cr_assert_str_eq(expr("x.shape[0]"), "(index (attr shape (name x)) (int 0))");
  cr_assert_str_eq(expr("x[i][j]"),
                   "(index (index (name x) (name i)) (name j))");
  cr_assert_str_eq(expr("x[0,]"), "(index (name x) (int 0))");
}

Test(parser, attributes_lists_parens) {
  cr_assert_str_eq(expr("h @ wte.T"),
                   "(binary @ (name h) (attr T (name wte)))");
  cr_assert_str_eq(expr("[]"), "(list)");
  cr_assert_str_eq(expr("[T, n_head, -1]"),
                   "(list (name T) (name n_head) (unary - (int 1)))");
  cr_assert_str_eq(expr("[a, [b],]"), "(list (name a) (list (name b)))");
  cr_assert_str_eq(expr("((a))"), "(name a)");
  cr_assert_str_eq(expr("f(x).T"), "(attr T (call (name f) (name x)))");
}

Test(parser, multiline_expressions) {
  cr_assert_str_eq(expr("f(a,\n  b)"), "(call (name f) (name a) (name b))");
  cr_assert_str_eq(expr("a +\n  b"), "(binary + (name a) (name b))");
  cr_assert_str_eq(expr("reshape(\n  x,\n  [T, -1],\n)"),
                   "(call (name reshape) (name x) (list (name T) "
                   "(unary - (int 1))))");
}

/* ---- statements ---- */

Test(parser, const_input_output_param) {
  cr_assert_str_eq(
      parse("const n_embd = 768\n"
            "input tokens: i32[T]\n"
            "input pad: bool[B, T] = false\n"
            "input scale: f32\n"
            "param wte: f32[n_vocab, n_embd]\n"
            "param g: f32[n_embd] from \"h.{i}.ln_1.weight\"\n"
            "param s: f32[]\n"
            "output logits: f32[T, n_vocab] = h @ wte.T\n"
            "output y = h\n"),
      "(module\n"
      "  (const n_embd (int 768))\n"
      "  (input tokens (type i32 [(name T)]))\n"
      "  (input pad (type bool [(name B) (name T)]) (bool false))\n"
      "  (input scale (type f32))\n"
      "  (param wte (type f32 [(name n_vocab) (name n_embd)]))\n"
      "  (param g (type f32 [(name n_embd)]) "
      "(string \"h.{i}.ln_1.weight\"))\n"
      "  (param s (type f32 []))\n"
      "  (output logits (binary @ (name h) (attr T (name wte))) "
      "(type f32 [(name T) (name n_vocab)]))\n"
      "  (output y (name h) _))");
}

Test(parser, type_layout) {
  const AstNode *s = stmt("input x: f32[B, T, d_model]\n");
  cr_assert_eq(s->kind, AST_INPUT);
  cr_assert_str_eq(s->text, "x");
  cr_assert_eq(s->nkids, 1);
  cr_assert_null(s->kids[1], "absent optional kid reads as NULL");
  const AstNode *t = s->kids[0];
  cr_assert_eq(t->kind, AST_TYPE);
  cr_assert_str_eq(t->text, "f32");
  cr_assert_eq(t->ival, 1);
  cr_assert_eq(t->nkids, 3);
  s = stmt("param w: f32\n");
  cr_assert_eq(s->kids[0]->ival, 0);
  cr_assert_eq(s->kids[0]->nkids, 0);
  cr_assert_null(s->kids[1]);
}

Test(parser, assignments_and_expression_statements) {
  cr_assert_str_eq(parse("h = wte[tokens] + wpe[0:T]\n"
                         "q, k, v = split(x, 3)\n"
                         "a, b = f()\n"
                         "print(x); y = 1; ; z = 2\n"),
                   "(module\n"
                   "  (assign (name h) (binary + (index (name wte) "
                   "(name tokens)) (index (name wpe) (slice (int 0) "
                   "(name T) _))))\n"
                   "  (assign (tuple (name q) (name k) (name v)) "
                   "(call (name split) (name x) (int 3)))\n"
                   "  (assign (tuple (name a) (name b)) (call (name f)))\n"
                   "  (expr (call (name print) (name x)))\n"
                   "  (assign (name y) (int 1))\n"
                   "  (assign (name z) (int 2)))");
}

Test(parser, for_loops) {
  cr_assert_str_eq(parse("for i in range(n_layer) {\n"
                         "  h = block(h, i)\n"
                         "}\n"
                         "for j in range(1, n) { s = s + j }\n"),
                   "(module\n"
                   "  (for i (name n_layer) _ (block\n"
                   "    (assign (name h) (call (name block) (name h) "
                   "(name i)))))\n"
                   "  (for j (int 1) (name n) (block\n"
                   "    (assign (name s) (binary + (name s) (name j))))))");
}

Test(parser, if_else) {
  cr_assert_str_eq(
      parse("if use_bias { y = y + b } else { y = y }\n"
            "if a {\n} else if b {\n  x = 1\n}\nelse {\n  x = 2\n}\n"
            "if c { x = 3 }\n"),
      "(module\n"
      "  (if (name use_bias) (block\n"
      "    (assign (name y) (binary + (name y) (name b)))) "
      "(block\n"
      "    (assign (name y) (name y))))\n"
      "  (if (name a) (block) (block\n"
      "    (if (name b) (block\n"
      "      (assign (name x) (int 1))) (block\n"
      "      (assign (name x) (int 2))))))\n"
      "  (if (name c) (block\n"
      "    (assign (name x) (int 3)))))");
  const AstNode *s = stmt("if c { x = 3 }\n");
  cr_assert_eq(s->nkids, 2);
  cr_assert_null(s->kids[2]);
}

Test(parser, functions) {
  cr_assert_str_eq(parse("fn gelu(x) = 0.5 * x\n"
                         "fn f(x, prefix, eps=1e-5,) {\n"
                         "  param g: f32[n] from \"{prefix}.weight\"\n"
                         "  return x * g\n"
                         "}\n"
                         "fn split_heads(x) { ...; return q, k }\n"
                         "fn none() { }\n"),
                   "(module\n"
                   "  (fn gelu (params (name x)) (binary * (float 0.5) "
                   "(name x)))\n"
                   "  (fn f (params (name x) (name prefix) (kwarg eps "
                   "(float 1e-5))) (block\n"
                   "    (param g (type f32 [(name n)]) "
                   "(string \"{prefix}.weight\"))\n"
                   "    (return (binary * (name x) (name g)))))\n"
                   "  (fn split_heads (params (name x)) (block\n"
                   "    (expr (ellipsis))\n"
                   "    (return (tuple (name q) (name k)))))\n"
                   "  (fn none (params) (block)))");
}

Test(parser, statement_separators) {
  cr_assert_str_eq(parse("\n\n# c\na = 1;;\n\n;b = 2"),
                   "(module\n"
                   "  (assign (name a) (int 1))\n"
                   "  (assign (name b) (int 2)))");
  cr_assert_str_eq(parse(""), "(module)");
  cr_assert_str_eq(parse("fn f(x) { a = 1; b = 2; }\n"),
                   "(module\n"
                   "  (fn f (params (name x)) (block\n"
                   "    (assign (name a) (int 1))\n"
                   "    (assign (name b) (int 2)))))");
}

/* ---- locations ---- */

static void check_loc(const AstNode *n, int line, int col, int len) {
  cr_assert_str_eq(n->loc.file, "t.model");
  cr_assert_eq(n->loc.line, line, "%s: line %d", ast_kind_name(n->kind),
               n->loc.line);
  cr_assert_eq(n->loc.col, col, "%s: col %d", ast_kind_name(n->kind),
               n->loc.col);
  cr_assert_eq(n->loc.len, len, "%s: len %d", ast_kind_name(n->kind),
               n->loc.len);
}

Test(parser, locations_span_one_line) {
  /*               123456789012345678901234567890 */
  const AstNode *s = stmt("y = (a + b) * f(x, 1)[0].T\n");
  check_loc(s, 1, 1, 26);
  const AstNode *e = s->kids[1]; /* binary * */
  check_loc(e, 1, 5, 22);
  check_loc(e->kids[0], 1, 5, 7);                    /* (a + b) */
  check_loc(e->kids[0]->kids[1], 1, 10, 1);          /* b */
  check_loc(e->kids[1], 1, 15, 12);                  /* f(x, 1)[0].T */
  check_loc(e->kids[1]->kids[0], 1, 15, 10);         /* f(x, 1)[0] */
  check_loc(e->kids[1]->kids[0]->kids[0], 1, 15, 7); /* f(x, 1) */
  s = stmt("  z = -x^2\n");
  check_loc(s->kids[1], 1, 7, 4);
  check_loc(s->kids[1]->kids[0], 1, 8, 3);
}

Test(parser, locations_multiline) {
  const AstNode *s = stmt("y = a +\n    b\n");
  check_loc(s->kids[1], 1, 7, 1); /* the operator */
  check_loc(s, 1, 1, 7);          /* up to the operator */
  check_loc(s->kids[1]->kids[1], 2, 5, 1);
  s = stmt("fn f(x) {\n  return x\n}\n");
  check_loc(s, 1, 1, 9); /* `fn f(x) {` */
  check_loc(s->kids[1]->kids[0], 2, 3, 8);
  s = stmt("x = s[0:\n2]\n");
  check_loc(s->kids[1]->kids[1], 1, 7, 1); /* slice: its first token */
}

/* ---- syntax errors ---- */

Test(parser, error_unexpected_token_with_caret) {
  cr_assert_str_eq(parse("x = )\n"),
                   "t.model:1:5: error: unexpected ')', expected expression\n"
                   "x = )\n"
                   "    ^\n");
  cr_assert_null(mod);
}

Test(parser, error_expected_list) {
  cr_assert_str_eq(parse("input x f32\n"),
                   "t.model:1:9: error: unexpected 'f32', expected ':'\n"
                   "input x f32\n"
                   "        ^~~\n");
}

Test(parser, error_missing_separator) {
  cr_assert_str_eq(parse("x = a b\n"),
                   "t.model:1:7: error: unexpected 'b', expected newline or "
                   "';'\n"
                   "x = a b\n"
                   "      ^\n");
}

Test(parser, error_unexpected_newline) {
  cr_assert_str_eq(parse("for i in range(3) x = 1\n"),
                   "t.model:1:19: error: unexpected 'x', expected '{'\n"
                   "for i in range(3) x = 1\n"
                   "                  ^\n");
}

Test(parser, error_unfinished_statement_at_end_of_file) {
  cr_assert_str_eq(parse("const n =\n"),
                   "t.model:1:10: error: unexpected end of file, expected "
                   "expression\n"
                   "const n =\n"
                   "         ^\n");
}

Test(parser, error_unclosed_paren_at_end_of_file) {
  cr_assert_str_eq(parse("y = f(a,\n  b\n"),
                   "t.model:2:4: error: unexpected end of file, expected "
                   "')'\n"
                   "  b\n"
                   "   ^\n"
                   "t.model:1:6: note: this '(' is not closed\n"
                   "y = f(a,\n"
                   "     ^\n");
}

Test(parser, error_unexpected_end_of_file) {
  cr_assert_str_eq(parse("fn f(x) {\n  y = x\n"),
                   "t.model:2:8: error: unexpected end of file, expected '}'\n"
                   "  y = x\n"
                   "       ^\n");
}

Test(parser, error_recovery_reports_each_statement) {
  cr_assert_str_eq(parse("x = )\n"
                         "y = 1\n"
                         "z = * 2\n"
                         "fn f(a) {\n"
                         "  b = a +* 2\n"
                         "  c = ]\n"
                         "}\n"
                         "w = (1 2)\n"
                         "ok = 3\n"),
                   "t.model:1:5: error: unexpected ')', expected expression\n"
                   "x = )\n"
                   "    ^\n"
                   "t.model:3:5: error: unexpected '*', expected expression\n"
                   "z = * 2\n"
                   "    ^\n"
                   "t.model:5:10: error: unexpected '*', expected expression\n"
                   "  b = a +* 2\n"
                   "         ^\n"
                   "t.model:6:7: error: unexpected ']', expected expression\n"
                   "  c = ]\n"
                   "      ^\n"
                   "t.model:8:8: error: unexpected '2'\n"
                   "w = (1 2)\n"
                   "       ^\n");
  cr_assert_eq(d.nerrors, 5);
}

Test(parser, error_in_block_keeps_block_structure) {
  /* After the error the '}' still closes the function, so `y` parses at
   * top level and nothing else is reported. */
  cr_assert_str_eq(parse("fn f(a) { b = ) }\ny = 1\n"),
                   "t.model:1:15: error: unexpected ')', expected expression\n"
                   "fn f(a) { b = ) }\n"
                   "              ^\n");
  cr_assert_eq(d.nerrors, 1);
}

Test(parser, errors_capped_by_max_errors) {
  d.max_errors = 2;
  parse("a = )\nb = )\nc = )\nd = )\n");
  cr_assert_str_eq(errors(),
                   "t.model:1:5: error: unexpected ')', expected expression\n"
                   "a = )\n"
                   "    ^\n"
                   "t.model:2:5: error: unexpected ')', expected expression\n"
                   "b = )\n"
                   "    ^\n"
                   "modelc: error: too many errors (2), stopping\n");
  cr_assert_null(mod);
}

Test(parser, lexer_errors_fail_the_parse) {
  cr_assert_str_eq(parse("x = 1 $\n"),
                   "t.model:1:7: error: unexpected character '$'\n"
                   "x = 1 $\n"
                   "      ^\n");
  cr_assert_null(mod);
}

Test(parser, deep_nesting_is_an_error) {
  char src[8192];
  int n = sprintf(src, "x = ");
  for (int i = 0; i < 2000; i++)
    src[n++] = '(';
  strcpy(src + n, "1\n");
  parse(src);
  cr_assert_null(mod);
  cr_assert_eq(d.nerrors, 1);
  cr_assert(strstr(errors(),
                   "error: limit exceeded: brackets, calls or blocks nested "
                   "too deeply"));
  cr_assert(strncmp(errors(), "t.model:1:", 10) == 0);
}

/* A chain of left-associative operators keeps the parser's stack flat but
 * builds a tree as deep as it is long: refused at the operator that takes
 * it past AST_MAX_DEPTH (lowering recurses on the tree). Just below the
 * limit (with the statement and the module around the chain) it parses. */
Test(parser, long_operator_chain_is_a_limit_error) {
  static char src[8 * AST_MAX_DEPTH];
  int n = sprintf(src, "x = 1");
  for (int i = 0; i < AST_MAX_DEPTH - 3; i++)
    n += sprintf(src + n, "+1");
  strcpy(src + n, "\n");
  parse(src);
  cr_assert_not_null(mod, "%s", errors());
  n = sprintf(src, "x = 1");
  for (int i = 0; i < 3 * AST_MAX_DEPTH; i++)
    n += sprintf(src + n, "+1");
  strcpy(src + n, "\n");
  parse(src);
  cr_assert_null(mod);
  cr_assert_eq(d.nerrors, 1);
  char want[160];
  /* the AST_MAX_DEPTH-th '+' (column 6 is the first) */
  snprintf(want, sizeof want,
           "t.model:1:%d: error: limit exceeded: expression nested deeper "
           "than %d levels\n",
           6 + 2 * AST_MAX_DEPTH, AST_MAX_DEPTH);
  cr_assert(strncmp(errors(), want, strlen(want)) == 0, "%s", errors());
}

/* A new temporary file holding the n bytes of text; its name in path. */
static void write_temp(char path[], const char *text, size_t n) {
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  FILE *f = fdopen(fd, "w");
  cr_assert_eq(fwrite(text, 1, n, f), n);
  fclose(f);
}

Test(parser, parse_file) {
  char path[] = "/tmp/mc_test_parser_XXXXXX";
  write_temp(path, "const n = 2\ny = n *\n", 20);
  AstModule *m = ast_parse_file(path, &d);
  unlink(path);
  cr_assert_null(m);
  char want[256];
  snprintf(want, sizeof want,
           "%s:2:8: error: unexpected end of file, expected expression\n"
           "y = n *\n"
           "       ^\n",
           path);
  cr_assert_str_eq(errors(), want);
  m = ast_parse_file("/nonexistent/x.model", &d);
  cr_assert_null(m);
  cr_assert(strstr(errors(), "/nonexistent/x.model: error: cannot open: "));
}

/* A file is text: a NUL byte, a directory and a device without end are
 * each one clear error (the device's read stops past the size limit). */
Test(parser, parse_file_refuses_what_is_not_text) {
  char path[] = "/tmp/mc_test_parser_XXXXXX";
  write_temp(path, "const n = 2\0\n", 13);
  cr_assert_null(ast_parse_file(path, &d));
  unlink(path);
  cr_assert(strstr(errors(), ": error: the file contains a NUL byte"), "%s",
            errors());
  cr_assert_null(ast_parse_file("/tmp", &d));
  cr_assert(strstr(errors(), "/tmp: error: cannot read: Is a directory"), "%s",
            errors());
  cr_assert_null(ast_parse_file("/dev/zero", &d));
  cr_assert_eq(d.nerrors, 3);
}

/* ---- realistic snippets ---- */

Test(parser, snippet_gelu) {
  cr_assert_str_eq(
      parse("fn gelu(x) = 0.5 * x * (1 + tanh(sqrt(2 / pi) *\n"
            "                              (x + 0.044715 * x^3)))\n"
            "fn gelu_erf(x) = 0.5 * x * (1 + erf(x / sqrt(2)))\n"),
      "(module\n"
      "  (fn gelu (params (name x)) (binary * (binary * (float 0.5) "
      "(name x)) (binary + (int 1) (call (name tanh) (binary * (call "
      "(name sqrt) (binary / (int 2) (name pi))) (binary + (name x) "
      "(binary * (float 0.044715) (binary ^ (name x) (int 3)))))))))\n"
      "  (fn gelu_erf (params (name x)) (binary * (binary * (float 0.5) "
      "(name x)) (binary + (int 1) (call (name erf) (binary / (name x) "
      "(call (name sqrt) (int 2))))))))");
}

Test(parser, snippet_layer_norm) {
  cr_assert_str_eq(
      parse("fn layer_norm(x, prefix, eps=1e-5) {\n"
            "  param g: f32[n_embd] from \"{prefix}.weight\"\n"
            "  param b: f32[n_embd] from \"{prefix}.bias\"\n"
            "  mu = mean(x, axis=-1, keepdims=true)\n"
            "  var = mean((x - mu)^2, axis=-1, keepdims=true)\n"
            "  return (x - mu) / sqrt(var + eps) * g + b\n"
            "}\n"),
      "(module\n"
      "  (fn layer_norm (params (name x) (name prefix) (kwarg eps "
      "(float 1e-5))) (block\n"
      "    (param g (type f32 [(name n_embd)]) (string \"{prefix}.weight\"))\n"
      "    (param b (type f32 [(name n_embd)]) (string \"{prefix}.bias\"))\n"
      "    (assign (name mu) (call (name mean) (name x) (kwarg axis (unary - "
      "(int 1))) (kwarg keepdims (bool true))))\n"
      "    (assign (name var) (call (name mean) (binary ^ (binary - (name x) "
      "(name mu)) (int 2)) (kwarg axis (unary - (int 1))) (kwarg keepdims "
      "(bool true))))\n"
      "    (return (binary + (binary * (binary / (binary - (name x) "
      "(name mu)) (call (name sqrt) (binary + (name var) (name eps)))) "
      "(name g)) (name b))))))");
}

Test(parser, snippet_attention) {
  cr_assert_str_eq(
      parse("fn attention(x, i) {\n"
            "  param w: f32[n_embd, 3 * n_embd] from "
            "\"h.{i}.attn.c_attn.weight\"\n"
            "  q, k, v = split(x @ w, 3, axis=-1)\n"
            "  q = transpose(reshape(q, [T, n_head, -1]), 0, 1)\n"
            "  k = transpose(reshape(k, [T, n_head, -1]), 0, 1)\n"
            "  att = q @ k.T / sqrt(f32(n_embd / n_head))\n"
            "  mask = arange(T)[:, None] >= arange(T)[None, :]\n"
            "  att = softmax(where(mask, att, -inf), axis=-1)\n"
            "  return reshape(transpose(att @ v, 0, 1), [T, n_embd])\n"
            "}\n"),
      "(module\n"
      "  (fn attention (params (name x) (name i)) (block\n"
      "    (param w (type f32 [(name n_embd) (binary * (int 3) "
      "(name n_embd))]) (string \"h.{i}.attn.c_attn.weight\"))\n"
      "    (assign (tuple (name q) (name k) (name v)) (call (name split) "
      "(binary @ (name x) (name w)) (int 3) (kwarg axis (unary - (int 1)))))\n"
      "    (assign (name q) (call (name transpose) (call (name reshape) "
      "(name q) (list (name T) (name n_head) (unary - (int 1)))) (int 0) "
      "(int 1)))\n"
      "    (assign (name k) (call (name transpose) (call (name reshape) "
      "(name k) (list (name T) (name n_head) (unary - (int 1)))) (int 0) "
      "(int 1)))\n"
      "    (assign (name att) (binary / (binary @ (name q) (attr T (name k))) "
      "(call (name sqrt) (call (name f32) (binary / (name n_embd) "
      "(name n_head))))))\n"
      "    (assign (name mask) (binary >= (index (call (name arange) "
      "(name T)) (slice _ _ _) (none)) (index (call (name arange) (name T)) "
      "(none) (slice _ _ _))))\n"
      "    (assign (name att) (call (name softmax) (call (name where) "
      "(name mask) (name att) (unary - (name inf))) (kwarg axis (unary - "
      "(int 1)))))\n"
      "    (return (call (name reshape) (call (name transpose) (binary @ "
      "(name att) (name v)) (int 0) (int 1)) (list (name T) "
      "(name n_embd)))))))");
}

Test(parser, snippet_gpt2_top_level) {
  const char *src = "# GPT-2 small\n"
                    "const n_layer = 12\n"
                    "const n_embd = 768\n"
                    "input tokens: i32[T]\n"
                    "param wte: f32[n_vocab, n_embd]\n"
                    "param wpe: f32[n_ctx, n_embd]\n"
                    "\n"
                    "fn block(x, i) {\n"
                    "  x = x + attention(layer_norm(x, \"h.{i}.ln_1\"), i)\n"
                    "  return x + mlp(layer_norm(x, \"h.{i}.ln_2\"), i)\n"
                    "}\n"
                    "\n"
                    "h = wte[tokens] + wpe[0:T]\n"
                    "for i in range(n_layer) {\n"
                    "  h = block(h, i)\n"
                    "}\n"
                    "h = layer_norm(h, \"ln_f\")\n"
                    "output logits: f32[T, n_vocab] = h @ wte.T\n";
  const char *got = parse(src);
  cr_assert(mod, "%s", got);
  cr_assert_eq(mod->root->nkids, 10);
  cr_assert_eq(mod->root->kids[5]->kind, AST_FN);
  cr_assert_eq(mod->root->kids[7]->kind, AST_FOR);
  cr_assert_eq(mod->root->kids[9]->kind, AST_OUTPUT);
  check_loc(mod->root->kids[9], 18, 1, 42);
}
