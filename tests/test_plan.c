/* Memory planning (codegen/c_plan.c): first fit over lifetimes, the
 * lifetimes the emitter computes (a chain, aliases, buffers read inside a
 * scan's loop, a region's own buffers), the constant plan written as
 * numbers against the run-time mc_plan_place, and a model with a scan and a
 * KV cache updated in place built with -DMC_CHECK_PLAN (every pair of
 * buffers live together checked for overlap, the arena filled with NaNs)
 * by gcc and clang, its results checked. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../frontend/ast.h"
#include "../frontend/lower.h"
#include "c_emit.h"
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
  snprintf(dir, sizeof dir, "/tmp/test_plan-XXXXXX");
  cr_assert(mkdtemp(dir));
}

static void forget_module(void) {
  if (m)
    ir_module_free(m);
  if (ast)
    ast_free(ast);
  m = NULL;
  ast = NULL;
}

static void teardown(void) {
  forget_module();
  diag_free(&d);
  fclose(dout);
  free(dbuf);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "cannot remove %s\n", dir);
}

TestSuite(plan, .init = setup, .fini = teardown);

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

/* Lowers model text (file "t.model"), runs the -O2 passes but fuse (so
 * each op keeps a buffer of its own to plan), emits t.c into dir and
 * returns its text (malloc'd). */
static char *emit_after(const char *text, const char *passes) {
  forget_module();
  ast = ast_parse_string(text, "t.model", &d);
  cr_assert(ast, "%s", diag_text());
  LowerOptions o = {0, NULL, 0, 0, 0, NULL, 0, NULL};
  m = lower_module(ast, &o, &d);
  cr_assert(m, "%s", diag_text());
  cr_assert(pass_run_list(m, passes, NULL, NULL, &d), "%s", diag_text());
  cr_assert(cg_emit_c(m, dir, NULL, &d), "%s", diag_text());
  char path[512];
  snprintf(path, sizeof path, "%s/t.c", dir);
  char *c = slurp(path);
  cr_assert(c);
  return c;
}

static char *emit(const char *text) {
  return emit_after(text,
                    "verify,infer_shapes,fold_constants,simplify,cse,dce");
}

/* The layout comment of the buffer whose name starts with `name`:
 * "  off[3] = 64; /- c_7: f32[16], steps 3-4, reuses a_5 -/" (constant
 * sizes) or "  /- c_7: f32[T], steps 3-4 -/"; its steps in *first, *last. */
static const char *buffer_line(const char *c, const char *name, int *first,
                               int *last) {
  char pat[64];
  snprintf(pat, sizeof pat, "/* %s", name);
  const char *at = strstr(c, "_layout(");
  cr_assert(at, "%s", c);
  at = strstr(at, pat);
  cr_assert(at, "no buffer %s in\n%s", name, c);
  const char *s = strstr(at, "steps ");
  cr_assert(s && s < strchr(at, '\n'), "%s", at);
  cr_assert_eq(sscanf(s, "steps %d-%d", first, last), 2);
  const char *line = at;
  while (line > c && line[-1] != '\n')
    line--;
  return line;
}

static bool line_has(const char *line, const char *what) {
  const char *hit = strstr(line, what);
  return hit && hit < strchr(line, '\n');
}

/* ---- first fit --------------------------------------------------------- */

Test(plan, first_fit_reuses_dead_buffers) {
  /* 0: [1, 2]  1: [2, 3]  2: [3, 5]  3: [4, 5]  4: [6, 6] */
  int start[] = {1, 2, 3, 4, 6}, end[] = {2, 3, 5, 5, 6};
  size_t bytes[] = {64, 128, 64, 64, 256}, off[5];
  size_t arena = cg_plan_first_fit(5, start, end, bytes, off);
  cr_expect_eq(off[0], 0);
  cr_expect_eq(off[1], 64); /* meets 0 */
  cr_expect_eq(off[2], 0);  /* 0 is dead: its bytes again */
  cr_expect_eq(off[3], 64); /* meets only 2; 1 is dead */
  cr_expect_eq(off[4], 0);  /* everything else is dead */
  cr_expect_eq(arena, 256);
}

Test(plan, first_fit_takes_the_lowest_hole_that_fits) {
  /* 0, 1, 2 all live; 1 dies, then 3 (fits 1's hole) and 4 (does not) */
  int start[] = {1, 1, 1, 3, 3}, end[] = {9, 2, 9, 9, 9};
  size_t bytes[] = {64, 128, 64, 128, 192}, off[5];
  size_t arena = cg_plan_first_fit(5, start, end, bytes, off);
  cr_expect_eq(off[1], 64);
  cr_expect_eq(off[2], 192);
  cr_expect_eq(off[3], 64);
  cr_expect_eq(off[4], 256);
  cr_expect_eq(arena, 448);
}

/* ---- lifetimes ---------------------------------------------------------- */

Test(plan, a_chain_shares_alternate_buffers) {
  char *c = emit("input x: f32[16]\na = exp(x)\nb = exp(a)\nc = exp(b)\n"
                 "output y = exp(c)\n");
  int f, l;
  const char *a = buffer_line(c, "a_", &f, &l);
  cr_expect(f == 1 && l == 2, "%d-%d", f, l);
  cr_expect(line_has(a, "off[0] = 0;"), "%s", c);
  const char *b = buffer_line(c, "b_", &f, &l);
  cr_expect(f == 2 && l == 3, "%d-%d", f, l);
  cr_expect(line_has(b, "= 64;"), "%s", c);
  const char *cc = buffer_line(c, "c_", &f, &l);
  cr_expect(f == 3 && l == 4, "%d-%d", f, l);
  cr_expect(line_has(cc, "= 0;") && line_has(cc, "reuses a_"), "%s", c);
  cr_expect(strstr(c, "Arena: 128 bytes; the most bytes live at one step: "
                      "128."),
            "%s", c);
  char path[512];
  snprintf(path, sizeof path, "%s/t.h", dir);
  char *h = slurp(path);
  cr_expect(strstr(h, "one arena of 128 (t_workspace_size()) bytes"), "%s", h);
  free(h);
  free(c);
}

Test(plan, an_alias_keeps_its_buffer_alive) {
  /* r is a reshape of a: a lives until r's last read */
  char *c = emit("input x: f32[16]\na = exp(x)\nr = reshape(a, [4, 4])\n"
                 "b = exp(a)\nc = exp(b)\nd = exp(c)\n"
                 "output y = d + r[0, 0]\n");
  int af, al, cf, cl, df, dl;
  buffer_line(c, "a_", &af, &al);
  const char *cc = buffer_line(c, "c_", &cf, &cl);
  const char *dd = buffer_line(c, "d_", &df, &dl);
  /* without r, a would die when b is written */
  cr_expect(al > df, "a %d-%d, d %d-%d\n%s", af, al, df, dl, c);
  cr_expect_not(line_has(cc, "reuses a_"), "%s", c);
  cr_expect_not(line_has(dd, "reuses a_"), "%s", c);
  free(c);
}

Test(plan, buffers_read_in_a_loop_live_through_it) {
  char *c = emit("input x: f32[5, 4]\n"
                 "early = exp(x)\n"
                 "w = exp(early)\n"
                 "fn step(c, x_t) {\n  d = x_t * 2\n  e = exp(d)\n"
                 "  return c + e, c\n}\n"
                 "c, ys = scan(step, zeros([4]), w)\n"
                 "output c = c\noutput ys = ys\n");
  int wf, wl, df, dl, ef, el, ef0, el0;
  buffer_line(c, "early_", &ef0, &el0);
  buffer_line(c, "w_", &wf, &wl);
  const char *dline = buffer_line(c, "d_", &df, &dl);
  buffer_line(c, "e_", &ef, &el);
  /* steps: early 1, w 2, scan 3 .. 10 (zeros, the constant 2, d 6, e 7,
   * c + e 8, yield 9, end 10) */
  cr_expect(wf == 2 && wl == 10, "w %d-%d\n%s", wf, wl, c);
  cr_expect(df == 6 && dl == 7 && ef == 7 && el == 8, "d %d-%d e %d-%d\n%s", df,
            dl, ef, el, c);
  cr_expect(strstr(c, "steps 8-9"), "the yield reads c + e\n%s", c);
  /* `early` is dead before the loop: a region buffer takes its bytes */
  cr_expect(ef0 == 1 && el0 == 2, "%s", c);
  cr_expect(line_has(dline, "reuses early_"), "%s", c);
  free(c);
}

/* ---- built and run ------------------------------------------------------- */

static bool have(const char *cc) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", cc);
  return system(cmd) == 0;
}

/* Builds t.c with -DMC_CHECK_PLAN (warning-free under -Werror) with `body`
 * as main() by every compiler found; each must exit 0 and print the same.
 * Returns that output (malloc'd). */
static char *run_checked(const char *body) {
  char path[512], cmd[4096];
  snprintf(path, sizeof path, "%s/driver.c", dir);
  FILE *f = fopen(path, "w");
  cr_assert(f);
  fprintf(f,
          "#include \"t.h\"\n#include <math.h>\n#include <stdio.h>\n"
          "#include <string.h>\nint main(void) {\n  McError e;\n"
          "  t_model *mod = t_open(NULL, &e);\n  if (!mod) return 2;\n"
          "%s\n  t_close(mod);\n  return 0;\n}\n",
          body);
  fclose(f);
  /* each compiler's runtime library, built once by tests/CMakeLists.txt */
  const char *ccs[] = {"gcc", "clang"};
  const char *rts[] = {MC_RUNTIME_GCC, MC_RUNTIME_CLANG};
  char *first = NULL;
  int ran = 0;
  for (int i = 0; i < 2; i++) {
    if (!*rts[i] || !have(ccs[i]))
      continue;
    snprintf(cmd, sizeof cmd,
             "%s -std=c11 -DMC_CHECK_PLAN -Wall -Wextra -Wpedantic -Wshadow "
             "-Werror -fsyntax-only %s/t.c > %s/warn.txt 2>&1",
             ccs[i], dir, dir);
    if (system(cmd) != 0) {
      snprintf(path, sizeof path, "%s/warn.txt", dir);
      cr_assert_fail("%s warns on the generated code:\n%s", ccs[i],
                     slurp(path));
    }
    snprintf(cmd, sizeof cmd,
             "%s -std=c11 -O1 -DMC_CHECK_PLAN -ffp-contract=off "
             "-fno-fast-math -I%s %s/driver.c %s/t.c %s -lm -pthread -o "
             "%s/prog > %s/cc.txt 2>&1",
             ccs[i], dir, dir, dir, rts[i], dir, dir);
    if (system(cmd) != 0) {
      snprintf(path, sizeof path, "%s/cc.txt", dir);
      cr_assert_fail("%s cannot build the driver:\n%s", ccs[i], slurp(path));
    }
    snprintf(cmd, sizeof cmd, "%s/prog > %s/out.txt 2>&1", dir, dir);
    int st = system(cmd);
    snprintf(path, sizeof path, "%s/out.txt", dir);
    char *out = slurp(path);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: driver failed: %s",
              ccs[i], out);
    if (first) {
      cr_assert_str_eq(out, first, "%s prints differently", ccs[i]);
      free(out);
    } else {
      first = out;
    }
    ran++;
  }
  cr_assert(ran > 0, "no C compiler found");
  return first;
}

/* run_checked(driver) prints "T=n ok" for T = 1, 5 and 9. */
static void expect_t_1_5_9_ok(const char *driver) {
  char *out = run_checked(driver);
  cr_expect(strstr(out, "T=1 ok") && strstr(out, "T=5 ok") &&
                strstr(out, "T=9 ok"),
            "%s", out);
  free(out);
}

/* A decoding loop: a KV cache carried in the arena (not an output) and
 * updated in place, region buffers, buffers read through the loop. */
static const char *kv_model =
    "input cache0: f32[2, T, 4]\ninput rows: f32[T, 4]\n"
    "fn step(cache, row_t, t) {\n"
    "  c2 = dynamic_update_slice(cache, row_t[None, None, :] * 2, [1, t, 0])\n"
    "  got = dynamic_slice(c2, [1, t, 0], [1, 1, 4])\n"
    "  e = exp(got * 0.5)\n"
    "  return c2, sum(e) + sum(c2)\n"
    "}\n"
    "cache, sums = scan(step, cache0 + 1, rows * 1, index=true)\n"
    "output s = sums * 3\noutput total = sum(cache)\n";

/* The same in plain C, for T = n, compared within 1e-5 relative. */
static const char *kv_driver =
    "  for (int n = 1; n <= 9; n += 4) {\n"
    "    float cache0[2 * 9 * 4], rows[9 * 4], s[9], total;\n"
    "    for (int i = 0; i < 2 * n * 4; i++) cache0[i] = (float)(i % 7) - 3;\n"
    "    for (int i = 0; i < n * 4; i++) rows[i] = 0.25f * (float)(i % 5);\n"
    "    if (t_run(mod, n, cache0, rows, s, &total, &e) != MC_OK) {\n"
    "      printf(\"%s\\n\", e.msg); return 1; }\n"
    "    double cache[2 * 9 * 4], want = 0;\n"
    "    for (int i = 0; i < 2 * n * 4; i++) cache[i] = cache0[i] + 1.0;\n"
    "    for (int t = 0; t < n; t++) {\n"
    "      double se = 0, sc = 0;\n"
    "      for (int j = 0; j < 4; j++) cache[(n + t) * 4 + j] = rows[t * 4 + "
    "j] * 2.0;\n"
    "      for (int j = 0; j < 4; j++) se += exp(cache[(n + t) * 4 + j] * "
    "0.5);\n"
    "      for (int i = 0; i < 2 * n * 4; i++) sc += cache[i];\n"
    "      double w = (se + sc) * 3;\n"
    "      if (fabs(s[t] - w) > 1e-5 * (1 + fabs(w))) {\n"
    "        printf(\"T=%d s[%d] = %g, want %g\\n\", n, t, s[t], w); return "
    "1; }\n"
    "    }\n"
    "    for (int i = 0; i < 2 * n * 4; i++) want += cache[i];\n"
    "    if (fabs(total - want) > 1e-5 * (1 + fabs(want))) {\n"
    "      printf(\"T=%d total %g, want %g\\n\", n, total, want); return 1; "
    "}\n"
    "    printf(\"T=%d ok, arena %zu\\n\", n, t_workspace_size(n));\n"
    "  }";

Test(plan, checked_build_of_a_kv_cache_decoding_loop) {
  char *c = emit(kv_model);
  /* the cache is updated in place, in the buffer of cache0 + 1 where it
   * starts, and planned at run time */
  cr_assert(strstr(c, "carry 0 is in place"), "%s", c);
  cr_assert(strstr(c, "carry 0 starts in t3 */"), "%s", c);
  cr_assert(strstr(c, "end = mc_plan_place("), "%s", c);
  cr_assert(strstr(c, "mc_plan_check(\"t_run_layout\""), "%s", c);
  int cf, cl, df, dl;
  buffer_line(c, "t3:", &cf, &cl);
  buffer_line(c, "got_", &df, &dl); /* e is summed where it is computed */
  cr_expect(cf < df && dl < cl, "cache %d-%d, got %d-%d\n%s", cf, cl, df, dl,
            c);
  free(c);
  expect_t_1_5_9_ok(kv_driver);
}

/* An LSTM-like masked recurrence: both carries' new values are where()
 * loops reading the old carry at their own index, computed into the
 * carries' buffers, and the per-step output into its row of ys: the step
 * copies nothing. */
static const char *masked_model =
    "input h0: f32[3, 4]\ninput xs: f32[T, 3, 4]\ninput ms: f32[T, 3]\n"
    "fn step(h, c, x_t, m_t) {\n"
    "  h2 = tanh(x_t + h * 0.5)\n"
    "  c2 = c + h2\n"
    "  m = m_t[:, None] > 0\n"
    "  return where(m, h2, h), where(m, c2, c), where(m, h2, 0)\n"
    "}\n"
    "h, c, ys = scan(step, [h0, h0 * 2], [xs, ms])\n"
    "output hs = ys\noutput hn = h + c\n";

static const char *masked_driver =
    "  for (int n = 1; n <= 9; n += 4) {\n"
    "    float h0[12], xs[9 * 12], ms[9 * 3], hs[9 * 12], hn[12];\n"
    "    double h[12], c[12];\n"
    "    for (int i = 0; i < 12; i++) h0[i] = 0.1f * (float)(i % 5) - 0.2f;\n"
    "    for (int i = 0; i < n * 12; i++) xs[i] = 0.05f * (float)(i % 11) - "
    "0.25f;\n"
    "    for (int i = 0; i < n * 3; i++) ms[i] = i % 4 == 3 ? 0.0f : 1.0f;\n"
    "    if (t_run(mod, n, h0, xs, ms, hs, hn, &e) != MC_OK) {\n"
    "      printf(\"%s\\n\", e.msg); return 1; }\n"
    "    for (int i = 0; i < 12; i++) { h[i] = h0[i]; c[i] = 2.0 * h0[i]; }\n"
    "    for (int t = 0; t < n; t++)\n"
    "      for (int i = 0; i < 12; i++) {\n"
    "        double h2 = tanh(xs[t * 12 + i] + h[i] * 0.5), c2 = c[i] + h2;\n"
    "        int m = ms[t * 3 + i / 4] > 0;\n"
    "        double y = m ? h2 : 0.0;\n"
    "        if (fabs(hs[t * 12 + i] - y) > 1e-5 * (1 + fabs(y))) {\n"
    "          printf(\"T=%d ys[%d] = %g, want %g\\n\", n, t * 12 + i,\n"
    "                 hs[t * 12 + i], y); return 1; }\n"
    "        if (m) { h[i] = h2; c[i] = c2; }\n"
    "      }\n"
    "    for (int i = 0; i < 12; i++)\n"
    "      if (fabs(hn[i] - (h[i] + c[i])) > 1e-5 * (1 + fabs(h[i] + c[i]))) "
    "{\n"
    "        printf(\"T=%d hn[%d] = %g, want %g\\n\", n, i, hn[i], h[i] + "
    "c[i]);\n"
    "        return 1; }\n"
    "    printf(\"T=%d ok\\n\", n);\n"
    "  }";

Test(plan, carries_computed_in_their_buffers) {
  char *c = emit(masked_model);
  const char *loop = strstr(c, "for (int64_t step = 0;");
  cr_assert(loop, "%s", c);
  const char *end = strstr(loop, "\n  }\n");
  cr_assert(end, "%s", c);
  const char *copy = strstr(loop, "memcpy(");
  cr_assert(!copy || copy > end, "%s", c);
  const char *row = strstr(loop, ", hs + t * 12);");
  cr_assert(row && row < end, "%s", c);
  /* the carry is an operand and the result, neither restrict */
  cr_assert(strstr(c, "const float *b, float *y)"), "%s", c);
  free(c);
  expect_t_1_5_9_ok(masked_driver);
}

/* The passes up to pair_scans, which makes independent scans neighbours. */
#define PAIRED                                                                 \
  "verify,infer_shapes,fold_constants,simplify,cse,dce,fuse,dce,pair_scans"

/* Two directions of a recurrence (passes/pair_scans.c makes them
 * neighbours; the reverse one's input moves above the forward scan). */
static const char *two_way_model =
    "input h0: f32[3, 4]\ninput xs: f32[T, 3, 4]\ninput w: f32[4, 4]\n"
    "fn fwd(h, x_t) {\n  hf2 = tanh(x_t @ w + h * 0.5)\n"
    "  return hf2, hf2 * 2\n}\n"
    "fn bwd(h, x_t) {\n  hb2 = tanh(x_t @ w - h * 0.25)\n"
    "  return hb2, hb2 + 1\n}\n"
    "hf, ysf = scan(fwd, h0, xs)\n"
    "p = ysf * 3\n"
    "hb, ysb = scan(bwd, h0, xs * 0.5, reverse=true)\n"
    "output y = p + ysb\noutput hn = hf + hb\n";

/* The same in plain C (double), for T = 1 .. 9, called 20 times each. */
static const char *two_way_driver =
    "  for (int n = 1; n <= 9; n += 2)\n"
    "   for (int rep = 0; rep < 20; rep++) {\n"
    "    float h0[12], xs[9 * 12], w[16], y[9 * 12], hn[12];\n"
    "    double hf[12], hb[12], yf[9 * 12], yb[9 * 12];\n"
    "    for (int i = 0; i < 12; i++) h0[i] = 0.1f * (float)(i % 5) - 0.2f;\n"
    "    for (int i = 0; i < 16; i++) w[i] = 0.125f * (float)(i % 7) - 0.3f;\n"
    "    for (int i = 0; i < n * 12; i++) xs[i] = 0.05f * (float)(i % 11) - "
    "0.25f;\n"
    "    if (t_run(mod, n, h0, xs, w, y, hn, &e) != MC_OK) {\n"
    "      printf(\"%s\\n\", e.msg); return 1; }\n"
    "    for (int i = 0; i < 12; i++) hf[i] = hb[i] = h0[i];\n"
    "    for (int s = 0; s < n; s++) {\n"
    "      double a[12], b[12];\n"
    "      int tb = n - 1 - s;\n"
    "      for (int r = 0; r < 3; r++)\n"
    "        for (int j = 0; j < 4; j++) {\n"
    "          a[r * 4 + j] = b[r * 4 + j] = 0;\n"
    "          for (int k = 0; k < 4; k++) {\n"
    "            a[r * 4 + j] += (double)xs[s * 12 + r * 4 + k] * w[k * 4 + "
    "j];\n"
    "            b[r * 4 + j] += 0.5 * xs[tb * 12 + r * 4 + k] * w[k * 4 + "
    "j];\n"
    "          }\n"
    "        }\n"
    "      for (int i = 0; i < 12; i++) {\n"
    "        hf[i] = tanh(a[i] + hf[i] * 0.5);\n"
    "        hb[i] = tanh(b[i] - hb[i] * 0.25);\n"
    "        yf[s * 12 + i] = hf[i] * 2;\n"
    "        yb[tb * 12 + i] = hb[i] + 1;\n"
    "      }\n"
    "    }\n"
    "    for (int i = 0; i < n * 12; i++) {\n"
    "      double want = yf[i] * 3 + yb[i];\n"
    "      if (fabs(y[i] - want) > 1e-5 * (1 + fabs(want))) {\n"
    "        printf(\"T=%d y[%d] = %g, want %g\\n\", n, i, y[i], want);\n"
    "        return 1; }\n"
    "    }\n"
    "    for (int i = 0; i < 12; i++)\n"
    "      if (fabs(hn[i] - (hf[i] + hb[i])) > 1e-5 * (1 + fabs(hf[i] + "
    "hb[i]))) {\n"
    "        printf(\"T=%d hn[%d] = %g\\n\", n, i, hn[i]); return 1; }\n"
    "    if (rep == 0) printf(\"T=%d ok\\n\", n);\n"
    "  }";

Test(plan, independent_scans_side_by_side) {
  char *c = emit_after(two_way_model, PAIRED);
  /* one call runs both loops, one per thread */
  const char *call = strstr(c, "mc_parallel_for(2, 1, t_run_L");
  cr_assert(call, "%s", c);
  cr_assert(strstr(c, "static void t_run_L"), "%s", c);
  /* whatever lives during either scan lives during both: the two steps'
   * new states live from the first scan's begin to the second's end
   * and never share bytes */
  int f0, f1, b0, b1;
  const char *fline = buffer_line(c, "hf2_", &f0, &f1);
  const char *bline = buffer_line(c, "hb2_", &b0, &b1);
  cr_expect(f0 == b0 && f1 == b1 && f1 > f0 + 2, "hf2 %d-%d, hb2 %d-%d\n%s", f0,
            f1, b0, b1, c);
  cr_expect(!line_has(fline, "hb2_") && !line_has(bline, "hf2_"), "%s", c);
  free(c);
  expect_t_1_5_9_ok(two_way_driver);
}

/* Two scans whose steps gather rows (an index check that can fail). */
static const char *gather_scans_model =
    "input table: f32[10, 4]\ninput idx: i32[T, 3]\n"
    "fn st(h, i_t) {\n  return h + table[i_t], h\n}\n"
    "h1, ys1 = scan(st, zeros([3, 4]), idx)\n"
    "h2, ys2 = scan(st, zeros([3, 4]) + 1, idx, reverse=true)\n"
    "output y = h1 + h2\n";

/* y = 2 sum_t table[idx[t]] + 1, then an index of 10 in the last step of
 * the forward scan (the first of the reverse one): the call fails with the
 * gather's message. */
static const char *gather_scans_driver =
    "  for (int n = 1; n <= 9; n += 4) {\n"
    "    float table[40], y[12];\n"
    "    int32_t idx[27];\n"
    "    for (int i = 0; i < 40; i++) table[i] = 0.5f * (float)(i % 9) - 1;\n"
    "    for (int i = 0; i < n * 3; i++) idx[i] = (i * 7) % 10;\n"
    "    if (t_run(mod, n, table, idx, y, &e) != MC_OK) {\n"
    "      printf(\"%s\\n\", e.msg); return 1; }\n"
    "    for (int r = 0; r < 3; r++)\n"
    "      for (int j = 0; j < 4; j++) {\n"
    "        double s = 0;\n"
    "        for (int t = 0; t < n; t++) s += table[idx[t * 3 + r] * 4 + j];\n"
    "        if (fabs(y[r * 4 + j] - (2 * s + 1)) > 1e-5 * (1 + fabs(s))) {\n"
    "          printf(\"T=%d y[%d] = %g\\n\", n, r * 4 + j, y[r * 4 + j]);\n"
    "          return 1; }\n"
    "      }\n"
    "    idx[(n - 1) * 3 + 1] = 10;\n"
    "    e.code = 0;\n"
    "    if (t_run(mod, n, table, idx, y, &e) != MC_ERR_RANGE ||\n"
    "        e.code != MC_ERR_RANGE ||\n"
    "        !strstr(e.msg, \"index 10 out of range [0, 10) at t.model:4:\")) "
    "{\n"
    "      printf(\"T=%d bad index: %d %s\\n\", n, e.code, e.msg); return 1; "
    "}\n"
    "    printf(\"T=%d ok\\n\", n);\n"
    "  }";

Test(plan, scans_that_can_fail_run_side_by_side) {
  /* a gather checks its indices: each loop stops its own task, which keeps
   * its status and error; the run function reports the first failed one */
  char *c = emit_after(gather_scans_model, PAIRED);
  cr_expect(strstr(c, "mc_parallel_for(2, 1, t_run_L"), "%s", c);
  cr_expect(strstr(c, "    McError *err = &args->task_err[task];\n"), "%s", c);
  cr_expect(strstr(c, "  done:\n    args->task_rc[task] = rc;\n"), "%s", c);
  cr_expect(strstr(c, "if ((rc = mc_tasks_status(task_rc, task_err, 2, "
                      "err)) != MC_OK)\n      goto done;\n"),
            "%s", c);
  free(c);
  expect_t_1_5_9_ok(gather_scans_driver);
}

/* (x[0] would differ: with T = 6 it is a view, x's first row read in
 * place; with T a symbol, a slice kernel that checks T >= 1.) */
Test(plan, run_time_plan_equals_the_constant_plan) {
  const char *body = "fn step(c, x_t) {\n  d = exp(x_t * 2)\n"
                     "  return c + d, c * d\n}\n"
                     "c, ys = scan(step, exp(sum(x, axis=0)), exp(x))\n"
                     "h = ys @ ys.T\n"
                     "output y = softmax(h, axis=-1) + sum(c)\n";
  char text[1024];
  snprintf(text, sizeof text, "const T = 6\ninput x: f32[T, 3]\n%s", body);
  char *c = emit(text);
  const char *arena = strstr(c, "Arena: ");
  cr_assert(arena, "%s", c);
  size_t constant = 0;
  cr_assert_eq(sscanf(arena, "Arena: %zu bytes", &constant), 1);
  free(c);
  snprintf(text, sizeof text, "input x: f32[T, 3]\n%s", body);
  free(emit(text));
  char *out = run_checked("  printf(\"%zu\", t_workspace_size(6));");
  char want[64];
  snprintf(want, sizeof want, "%zu", constant);
  cr_expect_str_eq(out, want);
  free(out);
}

/* A row group (codegen/c_row_group.c): u is read last by the max, yet
 * lives through the group, as every buffer of it does: each stage runs on
 * a block of rows before the next one does, so no result may take the
 * bytes of something an earlier stage still reads at later rows. */
static const char *group_model =
    "input x: f32[T, 8]\n"
    "u = exp(x * 0.25)\n"
    "a = mean(u, axis=-1, keepdims=true)\n"
    "b = max(u, axis=-1, keepdims=true)\n"
    "v = x * a + b\n"
    "output y = v - sum(v, axis=-1, keepdims=true)\n";

static const char *group_driver =
    "  for (int n = 1; n <= 9; n += 4) {\n"
    "    float x[9 * 8], y[9 * 8];\n"
    "    for (int i = 0; i < n * 8; i++) x[i] = 0.3f * (float)(i % 11) - 1;\n"
    "    if (t_run(mod, n, x, y, &e) != MC_OK) {\n"
    "      printf(\"%s\\n\", e.msg); return 1; }\n"
    "    for (int r = 0; r < n; r++) {\n"
    "      double a = 0, b = -INFINITY, v[8], s = 0;\n"
    "      for (int j = 0; j < 8; j++) {\n"
    "        double u = exp(x[r * 8 + j] * 0.25);\n"
    "        a += u / 8; b = u > b ? u : b; }\n"
    "      for (int j = 0; j < 8; j++) { v[j] = x[r * 8 + j] * a + b; "
    "s += v[j]; }\n"
    "      for (int j = 0; j < 8; j++)\n"
    "        if (fabs(y[r * 8 + j] - (v[j] - s)) > 1e-5 * (1 + fabs(s))) {\n"
    "          printf(\"T=%d y[%d] = %g, want %g\\n\", n, r * 8 + j,\n"
    "                 y[r * 8 + j], v[j] - s); return 1; }\n"
    "    }\n"
    "    printf(\"T=%d ok\\n\", n);\n"
    "  }";

Test(plan, a_row_group_keeps_its_buffers_live_through_it) {
  char *c = emit_after(group_model, PAIRED);
  cr_assert(strstr(c, "t_L2_L6_rows(T, x, "), "%s", c);
  int uf, ul, vf, vl;
  buffer_line(c, "u_", &uf, &ul);
  const char *v = buffer_line(c, "v_", &vf, &vl);
  cr_expect(ul >= vl, "u %d-%d, v %d-%d\n%s", uf, ul, vf, vl, c);
  cr_expect_not(line_has(v, "reuses u_"), "%s", c);
  free(c);
  expect_t_1_5_9_ok(group_driver);
}

/* A reduction's result read across rows (as a row vector, or broadcast
 * along the last axis) keeps its reader out of the row group: each row
 * needs every row's. The two reductions form one. */
Test(plan, a_reduction_read_across_rows_stays_out_of_the_row_group) {
  char *c = emit_after("input x: f32[T, T]\n"
                       "m = mean(x, axis=-1)\n"
                       "s = sum(x, axis=-1, keepdims=true)\n"
                       "output y = (x - m) * reshape(s, [1, T])\n",
                       PAIRED);
  cr_expect(strstr(c, "  t_L2_L3_rows(T, x, m_1, s_2);\n  t_L4_fused(T, "),
            "%s", c);
  free(c);
  expect_t_1_5_9_ok(
      "  for (int n = 1; n <= 9; n += 4) {\n"
      "    float x[81], y[81];\n"
      "    double m[9], s[9];\n"
      "    for (int i = 0; i < n * n; i++) x[i] = 0.5f * (float)(i % 7) - 1;\n"
      "    if (t_run(mod, n, x, y, &e) != MC_OK) {\n"
      "      printf(\"%s\\n\", e.msg); return 1; }\n"
      "    for (int r = 0; r < n; r++) {\n"
      "      m[r] = s[r] = 0;\n"
      "      for (int j = 0; j < n; j++) { m[r] += x[r * n + j] / n; "
      "s[r] += x[r * n + j]; }\n"
      "    }\n"
      "    for (int i = 0; i < n * n; i++) {\n"
      "      double want = (x[i] - m[i % n]) * s[i % n];\n"
      "      if (fabs(y[i] - want) > 1e-5 * (1 + fabs(want))) {\n"
      "        printf(\"T=%d y[%d] = %g, want %g\\n\", n, i, y[i], want);\n"
      "        return 1; }\n"
      "    }\n"
      "    printf(\"T=%d ok\\n\", n);\n"
      "  }");
}

/* A row group inside a scan's step: the pointers of all its kernels are
 * declared before its call; the new carry is computed into the carry's
 * buffer, which the group's first stage reads at the same rows. */
static const char *group_step_model =
    "input h0: f32[3, 8]\ninput xs: f32[T, 3, 8]\n"
    "fn step(h, x_t) {\n"
    "  u = exp(x_t * h * 0.25)\n"
    "  a = sum(u, axis=-1, keepdims=true)\n"
    "  return u / a, a\n"
    "}\n"
    "h, ys = scan(step, h0, xs)\n"
    "output hn = h\noutput s = ys\n";

static const char *group_step_driver =
    "  for (int n = 1; n <= 9; n += 4) {\n"
    "    float h0[24], xs[9 * 24], hn[24], s[9 * 3];\n"
    "    for (int i = 0; i < 24; i++) h0[i] = 0.1f * (float)(i % 7);\n"
    "    for (int i = 0; i < n * 24; i++) xs[i] = 0.5f * (float)(i % 5) - 1;\n"
    "    if (t_run(mod, n, h0, xs, hn, s, &e) != MC_OK) {\n"
    "      printf(\"%s\\n\", e.msg); return 1; }\n"
    "    double h[24];\n"
    "    for (int i = 0; i < 24; i++) h[i] = h0[i];\n"
    "    for (int t = 0; t < n; t++)\n"
    "      for (int r = 0; r < 3; r++) {\n"
    "        double u[8], a = 0;\n"
    "        for (int j = 0; j < 8; j++) {\n"
    "          u[j] = exp(xs[t * 24 + r * 8 + j] * h[r * 8 + j] * 0.25);\n"
    "          a += u[j]; }\n"
    "        if (fabs(s[t * 3 + r] - a) > 1e-5 * a) {\n"
    "          printf(\"T=%d s[%d] = %g, want %g\\n\", n, t * 3 + r,\n"
    "                 s[t * 3 + r], a); return 1; }\n"
    "        for (int j = 0; j < 8; j++) h[r * 8 + j] = u[j] / a;\n"
    "      }\n"
    "    for (int i = 0; i < 24; i++)\n"
    "      if (fabs(hn[i] - h[i]) > 1e-5) {\n"
    "        printf(\"T=%d hn[%d] = %g, want %g\\n\", n, i, hn[i], h[i]);\n"
    "        return 1; }\n"
    "    printf(\"T=%d ok\\n\", n);\n"
    "  }";

Test(plan, a_row_group_in_a_loop) {
  char *c = emit_after(group_step_model, PAIRED);
  const char *loop = strstr(c, "for (int64_t step = 0;");
  cr_assert(loop, "%s", c);
  const char *call = strstr(loop, "_rows(");
  cr_expect(call && call < strstr(loop, "\n  }\n"), "%s", c);
  free(c);
  expect_t_1_5_9_ok(group_step_driver);
}
