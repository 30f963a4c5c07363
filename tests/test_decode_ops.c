/* The decoding ops (dynamic_slice, dynamic_update_slice, take_along_axis,
 * topk, cumsum, random_uniform, categorical) and scan's early exit: IR
 * construction and shape errors, the text round trip, the language
 * builtins, and the emitted C built with gcc and clang at -O0 and -O2 (all
 * four must print the same bytes): the random draws against constants
 * computed by a Python reimplementation, a KV-cache carry updated in place
 * (no copy per step), an update that must copy, the zero rows after an
 * early exit. tests/e2e/test_decode_ops.py compares with PyTorch. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../frontend/ast.h"
#include "../frontend/lower.h"
#include "cg.h"
#include "ir.h"
#include "passes.h"

static Diag d;
static char *dbuf;
static size_t dlen;
static FILE *dout;
static char dir[256];
static AstModule *ast;
static Module *m;

static void setup(void) {
  dout = open_memstream(&dbuf, &dlen);
  diag_init(&d, dout);
  snprintf(dir, sizeof dir, "/tmp/test_decode-XXXXXX");
  cr_assert(mkdtemp(dir));
}

static void teardown(void) {
  if (m)
    ir_module_free(m);
  if (ast)
    ast_free(ast);
  m = NULL;
  ast = NULL;
  diag_free(&d);
  fclose(dout);
  free(dbuf);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "cannot remove %s\n", dir);
}

TestSuite(decode, .init = setup, .fini = teardown);

static const char *diag_text(void) {
  fflush(dout);
  return dbuf ? dbuf : "";
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  size_t got = fread(s, 1, (size_t)n, f);
  s[got] = 0;
  fclose(f);
  return s;
}

/* Lowers model text (file "t.model", so the C is t.h / t.c) and runs the
 * -O2 passes; NULL after errors (in diag_text()). */
static Module *lower(const char *text) {
  ast = ast_parse_string(text, "t.model", &d);
  cr_assert(ast, "%s", diag_text());
  LowerOptions o = {0, NULL, 0, 0, 0, NULL, 0, NULL};
  m = lower_module(ast, &o, &d);
  if (m && !pass_run_default(m, 2, &d)) {
    ir_module_free(m);
    m = NULL;
  }
  return m;
}

static int count_ops(const Block *b, OpKind k) {
  int n = 0;
  for (const Op *op = b->first; op; op = op->next) {
    n += op->kind == k;
    for (int r = 0; r < op->nregions; r++)
      n += count_ops(op->regions[r], k);
  }
  return n;
}

/* Emits m, returns t.c's text (malloc'd). */
static char *emit(void) {
  cr_assert(cg_emit_c(m, dir, NULL, &d), "%s", diag_text());
  char path[512];
  snprintf(path, sizeof path, "%s/t.c", dir);
  char *text = slurp(path);
  cr_assert(text);
  return text;
}

static bool have(const char *cc) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", cc);
  return system(cmd) == 0;
}

/* Builds t.c (warning-free under -Werror) with `body` as main() by every
 * compiler found at -O0 and -O2, runs each; all must exit 0 and print the
 * same. Returns that output (malloc'd). */
static char *run_everywhere(const char *body) {
  free(emit());
  char path[512], cmd[4096];
  snprintf(path, sizeof path, "%s/driver.c", dir);
  FILE *f = fopen(path, "w");
  cr_assert(f);
  fprintf(f,
          "#include \"t.h\"\n#include <stdio.h>\n#include <string.h>\n"
          "static unsigned fbits(float x) { unsigned u; memcpy(&u, &x, 4); "
          "return u; }\nint main(void) {\n  McError e;\n"
          "  t_model *mod = t_open(NULL, &e);\n  if (!mod) return 2;\n"
          "%s\n  t_close(mod);\n  (void)fbits;\n  return 0;\n}\n",
          body);
  fclose(f);
  /* each compiler's runtime library (-O2), built once by
   * tests/CMakeLists.txt: the levels are the generated code's */
  const char *ccs[] = {"gcc", "clang"}, *opts[] = {"-O0", "-O2"};
  const char *rts[] = {MC_RUNTIME_GCC, MC_RUNTIME_CLANG};
  char *first = NULL;
  int ran = 0;
  for (int c = 0; c < 2; c++) {
    if (!*rts[c] || !have(ccs[c]))
      continue;
    snprintf(cmd, sizeof cmd,
             "%s -std=c11 -Wall -Wextra -Wpedantic -Wshadow -Werror "
             "-fsyntax-only %s/t.c > %s/warn.txt 2>&1",
             ccs[c], dir, dir);
    if (system(cmd) != 0) {
      snprintf(path, sizeof path, "%s/warn.txt", dir);
      cr_assert_fail("%s warns on the generated code:\n%s", ccs[c],
                     slurp(path));
    }
    for (int o = 0; o < 2; o++) {
      snprintf(cmd, sizeof cmd,
               "%s -std=c11 %s -ffp-contract=off -fno-fast-math -I%s "
               "%s/driver.c %s/t.c %s -lm -pthread -o %s/prog > %s/cc.txt "
               "2>&1",
               ccs[c], opts[o], dir, dir, dir, rts[c], dir, dir);
      if (system(cmd) != 0) {
        snprintf(path, sizeof path, "%s/cc.txt", dir);
        cr_assert_fail("%s %s cannot build the driver:\n%s", ccs[c], opts[o],
                       slurp(path));
      }
      snprintf(cmd, sizeof cmd, "%s/prog > %s/out.txt 2>&1", dir, dir);
      int st = system(cmd);
      snprintf(path, sizeof path, "%s/out.txt", dir);
      char *out = slurp(path);
      cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                "%s %s: driver failed: %s", ccs[c], opts[o], out);
      if (first) {
        cr_assert_str_eq(out, first, "%s %s prints differently", ccs[c],
                         opts[o]);
        free(out);
      } else {
        first = out;
      }
      ran++;
    }
  }
  cr_assert(ran > 0, "no C compiler found");
  return first;
}

/* ---- IR ------------------------------------------------------------------ */

Test(decode, ir_shape_rules_and_round_trip) {
  m = ir_module_new("t");
  int T = ir_symbol(m, "T");
  Function *fn = ir_function_new(m, "main", loc_none());
  Type cache_t = {DT_F32, {3, {dim_const(2), dim_sym(T), dim_const(4)}}};
  Type row_t = {DT_F32, {3, {dim_const(1), dim_const(1), dim_const(4)}}};
  Type idx_t = {DT_I32, shape_scalar()};
  Value *cache = ir_add_input(m, fn, "cache", cache_t, loc_none());
  Value *row = ir_add_input(m, fn, "row", row_t, loc_none());
  Value *t = ir_add_input(m, fn, "t", idx_t, loc_none());
  Value *one = ir_const_scalar(m, fn->body, DT_I32, 1, loc_none());
  Value *zero = ir_const_scalar(m, fn->body, DT_I32, 0, loc_none());
  Value *ops[5] = {cache, row, one, t, zero};
  Value *c2 = ir_build(m, fn->body, OP_DYNAMIC_UPDATE_SLICE, ops, 5, NULL, NULL,
                       loc_none(), &d);
  cr_assert(c2, "%s", diag_text());
  cr_assert(type_eq(&c2->type, &cache_t));
  Value *sops[4] = {c2, one, t, zero};
  Value *blk = ir_build(m, fn->body, OP_DYNAMIC_SLICE, sops, 4, NULL, &row_t,
                        loc_none(), &d);
  cr_assert(blk, "%s", diag_text());
  /* three starts for a rank-3 tensor, not two */
  cr_assert_null(ir_build(m, fn->body, OP_DYNAMIC_SLICE, sops, 3, NULL, &row_t,
                          loc_none(), &d));
  cr_assert(strstr(diag_text(), "needs 3 start indices"), "%s", diag_text());
  Attrs a;
  memset(&a, 0, sizeof a);
  a.axis.axis = 2;
  Type k_t = {DT_I32, {3, {dim_const(2), dim_sym(T), dim_const(2)}}};
  Value *top = ir_build(m, fn->body, OP_TOPK, &c2, 1, &a, &k_t, loc_none(), &d);
  cr_assert(top, "%s", diag_text());
  Value *tops[2] = {c2, top};
  Value *vals = ir_build(m, fn->body, OP_TAKE_ALONG_AXIS, tops, 2, &a, NULL,
                         loc_none(), &d);
  cr_assert(vals, "%s", diag_text());
  Value *cs =
      ir_build(m, fn->body, OP_CUMSUM, &vals, 1, &a, NULL, loc_none(), &d);
  cr_assert(cs && cs->type.dtype == DT_F32);
  ir_add_output(m, fn, "blk", blk, loc_none());
  ir_add_output(m, fn, "cs", cs, loc_none());
  cr_assert(pass_verify(m, &d), "%s", diag_text());
  char *text = ir_print_to_string(m);
  Module *r = ir_read(text, "rt.ir", &d);
  cr_assert(r, "%s\n%s", diag_text(), text);
  cr_assert(pass_verify(r, &d) && pass_infer_shapes(r, &d), "%s", diag_text());
  char *again = ir_print_to_string(r);
  cr_assert_str_eq(text, again);
  free(text);
  free(again);
  ir_module_free(r);
}

Test(decode, scan_until_builds_with_a_step_count) {
  m = ir_module_new("t");
  int T = ir_symbol(m, "T");
  Function *fn = ir_function_new(m, "main", loc_none());
  Type h_t = {DT_F32, {1, {dim_const(4)}}};
  Type xs_t = {DT_F32, {2, {dim_sym(T), dim_const(4)}}};
  Value *ops[2] = {ir_add_input(m, fn, "h0", h_t, loc_none()),
                   ir_add_input(m, fn, "xs", xs_t, loc_none())};
  Attrs a;
  memset(&a, 0, sizeof a);
  a.scan.ncarry = 1;
  a.scan.nseq = 1;
  a.scan.length = dim_sym(T);
  a.scan.until = true;
  Op *s = ir_scan_begin(m, fn->body, ops, 2, &a, NULL, loc_none());
  Block *b = s->regions[0];
  Value *add_ops[2] = {b->args[0], b->args[1]};
  Value *h2 = ir_build(m, b, OP_ADD, add_ops, 2, NULL, NULL, loc_none(), &d);
  Attrs all;
  memset(&all, 0, sizeof all);
  all.reduce.axes = 1;
  Value *sum =
      ir_build(m, b, OP_REDUCE_SUM, &h2, 1, &all, NULL, loc_none(), &d);
  Value *lim = ir_const_scalar(m, b, DT_F32, 3, loc_none());
  Value *gt_ops[2] = {sum, lim};
  Value *done = ir_build(m, b, OP_GT, gt_ops, 2, NULL, NULL, loc_none(), &d);
  /* the done flag in the wrong place (an f32 output) is an error */
  Value *bad[3] = {h2, sum, done};
  Op *s2 = ir_scan_begin(m, fn->body, ops, 2, &a, NULL, loc_none());
  (void)s2;
  Value *ys[3] = {h2, done, sum};
  cr_assert(ir_scan_finish(m, s, ys, 3, loc_none(), &d), "%s", diag_text());
  cr_assert_eq(s->nresults, 3);
  cr_assert_eq(ir_scan_first_output(s), 2);
  char buf[64];
  type_print(buf, sizeof buf, &s->results[1]->type, m);
  cr_assert_str_eq(buf, "f32[T]");
  type_print(buf, sizeof buf, &s->results[2]->type, m);
  cr_assert_str_eq(buf, "i32[]");
  Block *b2 = s2->regions[0];
  Value *bad2[3] = {b2->args[0], b2->args[0], b2->args[0]};
  (void)bad;
  cr_assert_not(ir_scan_finish(m, s2, bad2, 3, loc_none(), &d));
  cr_assert(strstr(diag_text(), "bool[] done flag after its 1 carry"), "%s",
            diag_text());
}

/* ---- the language ------------------------------------------------------- */

Test(decode, builtins_lower_to_the_ops) {
  cr_assert(lower("input x: f32[3, 5]\ninput s: i64[]\n"
                  "v, i = topk(x, 2)\n"
                  "u, s2 = uniform(s, [3])\n"
                  "output v = v\noutput i = i\noutput c = cumsum(x, axis=0)\n"
                  "output k = categorical(x, u, logits=true)\n"
                  "output s2 = s2\n"
                  "output g = take_along_axis(x, i, axis=-1)\n"),
            "%s", diag_text());
  const Block *b = m->functions->body;
  cr_assert_eq(count_ops(b, OP_TOPK), 1);
  cr_assert_eq(count_ops(b, OP_TAKE_ALONG_AXIS), 1); /* g merged with v */
  cr_assert_eq(count_ops(b, OP_CUMSUM), 1);
  cr_assert_eq(count_ops(b, OP_RANDOM_UNIFORM), 1);
  cr_assert_eq(count_ops(b, OP_CATEGORICAL), 1);
  cr_assert_eq(count_ops(b, OP_SOFTMAX), 1);
}

Test(decode, builtin_misuse_is_located) {
  cr_assert_null(lower("input x: f32[T, 4]\n"
                       "output y = dynamic_slice(x, [T - 1, 0], [1, 4])\n"));
  cr_assert(strstr(diag_text(), "t.model:2:29: error: start 0 of "
                                "'dynamic_slice' must be a scalar integer "
                                "tensor or an integer constant, not a "
                                "symbolic dimension"),
            "%s", diag_text());
}

Test(decode, until_needs_a_done_flag) {
  cr_assert_null(lower("input xs: f32[T, 4]\n"
                       "fn step(h, x) { return h + x }\n"
                       "h, n = scan(step, zeros([4]), xs, until=true)\n"
                       "output h = h\n"));
  cr_assert(strstr(diag_text(), "needs a done flag after them (until=true)"),
            "%s", diag_text());
}

/* ---- the C backend ---------------------------------------------------- */

Test(decode, random_draws_are_the_same_bits_on_every_build) {
  cr_assert(lower("input s: i64[]\n"
                  "u, s2 = uniform(s, [3])\n"
                  "output u = u\noutput s2 = s2\n"),
            "%s", diag_text());
  char *out = run_everywhere(
      "  int64_t seeds[2] = {0, 42}, s2;\n  float u[3];\n"
      "  for (int i = 0; i < 2; i++) {\n"
      "    if (t_run(mod, &seeds[i], u, &s2, &e) != MC_OK) return 1;\n"
      "    printf(\"%x %x %x %lld\\n\", fbits(u[0]), fbits(u[1]), "
      "fbits(u[2]), (long long)s2);\n  }");
  /* from the Python reimplementation in tests/e2e/test_decode_ops.py */
  cr_assert_str_eq(out, "3f6220a8 3edcf13c 3cd88ba0 -7046029254386353131\n"
                        "3f189b3f 3e2436d0 3e2a642c -7046029254386353089\n");
  free(out);
}

static const char *kv_model =
    "input cache0: f32[2, 8, 4]\ninput rows: f32[5, 4]\n"
    "fn step(cache, row_t, t) {\n"
    "  c2 = dynamic_update_slice(cache, row_t[None, None, :], [1, t, 0])\n"
    "  got = dynamic_slice(c2, [1, t, 0], [1, 1, 4])\n"
    "  return c2, t >= 2, sum(got)\n"
    "}\n"
    "cache, sums, steps = scan(step, cache0, rows, index=true, until=true)\n"
    "output cache = cache\noutput sums = sums\noutput steps = steps\n";

static const char *kv_driver =
    "  float cache0[64], rows[20], cache[64], sums[5];\n  int32_t steps;\n"
    "  for (int i = 0; i < 64; i++) cache0[i] = (float)i;\n"
    "  for (int i = 0; i < 20; i++) rows[i] = -(float)i;\n"
    "  if (t_run(mod, cache0, rows, cache, sums, &steps, &e) != MC_OK) {\n"
    "    printf(\"%s\\n\", e.msg); return 1; }\n"
    "  printf(\"steps %d\\n\", (int)steps);\n"
    "  for (int i = 0; i < 5; i++) printf(\"%g \", sums[i]);\n"
    "  for (int i = 0; i < 64; i++) if (cache[i] != (i >= 32 && i < 44 ? "
    "rows[i - 32] : cache0[i])) { printf(\"cache %d\\n\", i); return 1; }\n"
    "  printf(\"\\n\");";

Test(decode, kv_cache_carry_is_updated_in_place) {
  cr_assert(lower(kv_model), "%s", diag_text());
  char *c = emit();
  /* the update writes the carry's buffer: no copy of x in the kernel and
   * no copy of the carry per step */
  const char *k = strstr(c, "_dynamic_update_slice(");
  cr_assert(k, "%s", c);
  cr_assert_not(strstr(k, "memcpy(y, x"), "%s", c);
  cr_assert(strstr(c, "carry 0 is in place"), "%s", c);
  const char *loop = strstr(c, "for (int64_t step = 0;");
  cr_assert(loop, "%s", c);
  const char *end = strstr(loop, "steps_");
  cr_assert(end);
  for (const char *p = strstr(loop, "memcpy(cache"); p && p < end;
       p = strstr(p + 1, "memcpy(cache"))
    cr_assert_fail("the cache is copied in the loop:\n%s", c);
  free(c);
  char *out = run_everywhere(kv_driver);
  cr_assert_str_eq(out, "steps 3\n-6 -22 -38 0 0 \n");
  free(out);
}

Test(decode, update_copies_when_the_old_value_is_read_later) {
  /* x / 2 is read twice and is not cheap enough for fusion to compute it
   * again in the add's loop, so the update must leave the old value intact */
  cr_assert(lower("input x: f32[4]\ninput t: i32[]\n"
                  "y = dynamic_update_slice(x / 2, ones([1]), [t])\n"
                  "old = x / 2\n"
                  "output y = y\noutput z = y + old\n"),
            "%s", diag_text());
  char *c = emit();
  cr_assert(strstr(c, "memcpy(y, x, (size_t)4 * sizeof *y);"), "%s", c);
  free(c);
  char *out = run_everywhere(
      "  float x[4] = {1, 2, 3, 4}, y[4], z[4];\n  int32_t t = 2;\n"
      "  if (t_run(mod, x, &t, y, z, &e) != MC_OK) return 1;\n"
      "  for (int i = 0; i < 4; i++) printf(\"%g/%g \", y[i], z[i]);\n"
      "  t = 4;\n"
      "  if (t_run(mod, x, &t, y, z, &e) == MC_OK) return 1;\n"
      "  printf(\"\\n%s\\n\", e.msg);");
  cr_assert_str_eq(out, "0.5/1 1/2 1/2.5 2/4 \ndynamic_update_slice start 4 of "
                        "axis 0 is outside [0, 3] at t.model:3:5\n");
  free(out);
}

Test(decode, topk_ties_and_early_exit_in_reverse) {
  cr_assert(lower("input x: f32[6]\n"
                  "v, i = topk(x, 4)\n"
                  "fn step(c, x_t) { return c + x_t, c + x_t > 5, c }\n"
                  "c, ys, n = scan(step, zeros([]), x, reverse=true, "
                  "until=true)\n"
                  "output i = i\noutput ys = ys\noutput n = n\n"),
            "%s", diag_text());
  char *out = run_everywhere(
      "  float x[6] = {1, 3, 3, 2, 3, 1}, ys[6];\n  int32_t i[4], n;\n"
      "  if (t_run(mod, x, i, ys, &n, &e) != MC_OK) return 1;\n"
      "  printf(\"%d %d %d %d | %d |\", i[0], i[1], i[2], i[3], n);\n"
      "  for (int j = 0; j < 6; j++) printf(\" %g\", ys[j]);");
  /* reversed: t = 5, 4, 3 run (c = 0, 1, 4 before; 1 + 3 + 2 > 5 stops) */
  cr_assert_str_eq(out, "1 2 4 3 | 3 | 0 0 0 4 1 0");
  free(out);
}

/* A scalar condition picks a whole side of `where`: the other side's own
 * work runs only when picked (an `if` in the generated code), so an index
 * out of range there is an error only then. */
Test(decode, lazy_select_runs_only_the_side_it_picks) {
  cr_assert(
      lower("input x: f32[8]\ninput t: f32[]\ninput i: i32[]\n"
            "v, order = topk(x, 8)\n"
            "output y = where(t > 0, order[i], i32(argmax(x, axis=0)))\n"),
      "%s", diag_text());
  char *c = emit();
  cr_assert(strstr(c, "  if (t6[0]) { /* the select at t.model:5:12 needs it "
                      "only then */\n    t_L4_topk(x, order_3);\n  }\n"),
            "%s", c);
  cr_assert(strstr(c, "  if (!t6[0]) { /* the select at t.model:5:12 needs "
                      "it only then */\n    t_L5_argmax(x, t8);\n  }\n"),
            "%s", c);
  free(c);
  char *out =
      run_everywhere("  float x[8] = {1, 7, 3, 9, 2, 9, 0, 5}, t = 0;\n"
                     "  int32_t i = 100, y;\n"
                     "  if (t_run(mod, x, &t, &i, &y, &e) != MC_OK) return 1;\n"
                     "  printf(\"%d\", y);\n"
                     "  t = 1;\n  i = 2;\n"
                     "  if (t_run(mod, x, &t, &i, &y, &e) != MC_OK) return 1;\n"
                     "  printf(\" %d\", y);\n"
                     "  i = 100;\n"
                     "  if (t_run(mod, x, &t, &i, &y, &e) == MC_OK) return 1;\n"
                     "  printf(\"\\n%s\\n\", e.msg);");
  /* argmax: the first 9; the third best: 7, at index 1 */
  cr_assert_str_eq(out, "3 1\nindex 100 out of range [0, 8) at t.model:5:31\n");
  free(out);
}

/* A carry starts in its initial value's buffer when nothing reads that
 * value afterwards: x * 2 and the first scan's carry go on into the second
 * scan (and the output) in one buffer, nothing is copied in. */
Test(decode, carry_starts_in_its_initial_buffer) {
  cr_assert(lower("input x: f32[4]\ninput rows: f32[5, 4]\n"
                  "fn step(c, r) { return c + r, c * 3 }\n"
                  "c1, ys1 = scan(step, x * 2, rows)\n"
                  "c2, ys2 = scan(step, c1, rows)\n"
                  "output c = c2\noutput ys = ys1 + ys2\n"),
            "%s", diag_text());
  char *c = emit();
  cr_assert(strstr(c,
                   "  t_L4_mul(x, c);\n  /* t.model:4:11: scan over 5 steps: "
                   "c1, ys1 = scan(step, x * 2, rows) */\n  /* carry 0 "
                   "starts in c */\n"),
            "%s", c);
  cr_assert(strstr(c, "rows) */\n  /* carry 0 starts in c */\n  for"), "%s", c);
  const char *loop = strstr(c, "for (int64_t step = 0;");
  cr_assert(loop, "%s", c);
  for (const char *p = strstr(c, "memcpy(c"); p && p < loop;
       p = strstr(p + 1, "memcpy(c"))
    cr_assert_fail("a carry is copied in:\n%s", c);
  free(c);
  char *out = run_everywhere(
      "  float x[4] = {0, 1, 2, 3}, rows[20], cc[4], ys[20];\n"
      "  for (int i = 0; i < 20; i++) rows[i] = (float)i - 7;\n"
      "  if (t_run(mod, x, rows, cc, ys, &e) != MC_OK) return 1;\n"
      "  for (int i = 0; i < 4; i++) printf(\"%g \", cc[i]);\n"
      "  for (int i = 0; i < 20; i += 7) printf(\" %g\", ys[i]);");
  /* as numpy computes it: c = 2x + twice the rows' column sums; ys, 3 c
   * before each step of either scan, summed */
  cr_assert_str_eq(out, "10 22 34 46  15 72 51");
  free(out);
}
