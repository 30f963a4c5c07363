/* The C backend, continued (see test_codegen.c and codegen_fixture.h):
 * softmax, reductions and argmax, data movement, the McModelInfo adapter
 * and its symbol checks, executables with weights, and golden checks of
 * the emitted text: kernel names, location comments, no folding. */
static const char *const codegen_fixture_name = "test_codegen_data";
#include "codegen_fixture.h"

TestSuite(codegen, .init = setup, .fini = teardown);

/* ---- softmax, reductions, argmax
 * ------------------------------------------------ */

/* softmax over rows of 4 (mc_softmax.h's rows in the kernel) */
Test(codegen, softmax_and_reductions) {
  Value *x = input("x", ty(DT_F32, 3, 2, -1, 4));
  Attrs ax;
  memset(&ax, 0, sizeof ax);
  ax.axis.axis = 2;
  output("sm", op1(OP_SOFTMAX, x, &ax, NULL, 3));
  Attrs r;
  memset(&r, 0, sizeof r);
  r.reduce.axes = 1u << 1;
  r.reduce.keepdims = true;
  output("sum", op1(OP_REDUCE_SUM, x, &r, NULL, 4));
  r.reduce.axes = 1u << 0 | 1u << 2;
  r.reduce.keepdims = false;
  output("mx", op1(OP_REDUCE_MAX, x, &r, NULL, 5));
  output("mean", op1(OP_REDUCE_MEAN, x, &r, NULL, 6));
  r.reduce.axes = 1u << 2;
  output("lse", op1(OP_LOGSUMEXP, x, &r, NULL, 7));
  output("am", op1(OP_ARGMAX, x, &r, NULL, 8));
  expect_ok(
      "enum { T = 3 };\n"
      "float x[2 * T * 4], sm[2 * T * 4], sum[2 * 4], mx[T], mean[T], "
      "lse[2 * T];\n"
      "int32_t am[2 * T];\n"
      "for (int i = 0; i < 24; i++) x[i] = (float)((i * 7) % 11) - 4.5f;\n"
      "x[4] = x[5] = x[6] = x[7] = -INFINITY; /* row 1: all -inf */\n"
      "x[9] = NAN;                          /* row 2: NaN wins */\n"
      "x[12] = x[13] = 9;                   /* row 3: tie -> first */\n"
      "McError e;\n"
      "tm_model *mod = tm_open(NULL, &e);\n"
      "CHECK(tm_run(mod, T, x, sm, sum, mx, mean, lse, am, &e) == MC_OK);\n"
      "for (int r = 0; r < 2 * T; r++) {\n"
      "  if (r == 1 || r == 2) continue;\n"
      "  double m = -INFINITY, s = 0;\n"
      "  for (int j = 0; j < 4; j++) m = fmax(m, x[r * 4 + j]);\n"
      "  for (int j = 0; j < 4; j++) s += exp(x[r * 4 + j] - m);\n"
      "  for (int j = 0; j < 4; j++)\n"
      "    CHECK(fabs(sm[r * 4 + j] - exp(x[r * 4 + j] - m) / s) < 1e-6);\n"
      "  CHECK(fabs(lse[r] - (m + log(s))) < 1e-5);\n"
      "}\n"
      "float ref[2 * T * 4]; /* the rows are mc_softmax.h's: the runtime's "
      "bits */\n"
      "mc_softmax_f32(x, ref, 2 * T, 4, 1);\n"
      "CHECK(memcmp(sm, ref, sizeof ref) == 0);\n"
      "CHECK(lse[1] == -INFINITY && isnan(lse[2]));\n"
      "CHECK(am[2] == 1 && am[3] == 0 && am[1] == 0);\n"
      "for (int p = 0; p < 2; p++)\n"
      "  for (int j = 0; j < 4; j++) {\n"
      "    float s = 0;\n"
      "    for (int t = 0; t < T; t++) s += x[(p * T + t) * 4 + j];\n"
      "    CHECK((isnan(s) && isnan(sum[p * 4 + j])) || s == sum[p * 4 + "
      "j]);\n"
      "  }\n"
      "CHECK(isnan(mx[0]) == 0 && isnan(mx[2]) && mx[0] == 9);\n"
      "CHECK(isnan(mean[2]) && mean[1] == -INFINITY);\n"
      "tm_close(mod);\nreturn 0;");
}

/* ---- gather, slice, concat, permute
 * --------------------------------------------- */

Test(codegen, gather_checks_index_range) {
  Value *table = input("table", ty(DT_F32, 2, 5, 3));
  Value *idx = input("idx", ty(DT_I32, 1, -1));
  Attrs ax;
  memset(&ax, 0, sizeof ax);
  ax.axis.axis = 0;
  output("y", op2(OP_GATHER, table, idx, &ax, 34));
  expect_ok("float table[15], y[9];\n"
            "for (int i = 0; i < 15; i++) table[i] = (float)i;\n"
            "int32_t idx[3] = {4, 0, 2};\n"
            "McError e;\n"
            "tm_model *mod = tm_open(NULL, &e);\n"
            "CHECK(tm_run(mod, 3, table, idx, y, &e) == MC_OK);\n"
            "for (int j = 0; j < 3; j++)\n"
            "  for (int c = 0; c < 3; c++) CHECK(y[j * 3 + c] == table[idx[j] "
            "* 3 + c]);\n"
            "idx[1] = 7;\n"
            "CHECK(tm_run(mod, 3, table, idx, y, &e) == MC_ERR_RANGE);\n"
            "CHECK(strcmp(e.msg, \"index 7 out of range [0, 5) at "
            "tm.model:34:5\") == 0);\n"
            "idx[1] = -1;\n"
            "CHECK(tm_run(mod, 3, table, idx, y, &e) == MC_ERR_RANGE);\n"
            "tm_close(mod);\nreturn 0;");
}

Test(codegen, slice_concat_permute) {
  Value *x = input("x", ty(DT_F32, 2, 6, -1));
  Attrs s;
  memset(&s, 0, sizeof s);
  s.slice.start[0] = dim_const(5); /* rows 5, 3, 1 */
  s.slice.step[0] = -2;
  s.slice.start[1] = dim_const(0);
  s.slice.step[1] = 1;
  Type st = ty(DT_F32, 2, 3, -1);
  Value *sl = op1(OP_SLICE, x, &s, &st, 3);
  output("sl", sl);
  Value *c = input("c", ty(DT_F32, 2, 3, 1));
  Value *ops[2] = {c, sl};
  Attrs ax;
  memset(&ax, 0, sizeof ax);
  ax.axis.axis = 1;
  Value *cat = ir_build(m, fn->body, OP_CONCAT, ops, 2, &ax, NULL, L(4, 5), &d);
  cr_assert(cat, "%s", diag_text());
  output("cat", cat); /* [3, T + 1] */
  Attrs p;
  memset(&p, 0, sizeof p);
  p.perm.perm[0] = 1;
  p.perm.perm[1] = 0;
  output("pt", op1(OP_PERMUTE, cat, &p, NULL, 5));
  /* symbolic start: x[1:1+T-?]: rows T-1 .. T of a 6-row table */
  Value *z = input("z", ty(DT_F32, 1, -2));
  Attrs s2;
  memset(&s2, 0, sizeof s2);
  s2.slice.start[0] = dim_sym(1);
  s2.slice.step[0] = 1;
  s2.slice.start[1] = dim_const(0);
  s2.slice.step[1] = 1;
  Type st2 = ty(DT_F32, 2, 2, -1);
  output("win", op1(OP_SLICE, x, &s2, &st2, 6));
  (void)z;
  expect_ok(
      "enum { T = 2 };\n"
      "float x[6 * T], c[3] = {-1, -2, -3}, sl[3 * T], cat[3 * (T + 1)], "
      "pt[(T + 1) * 3], z[4] = {0}, win[2 * T];\n"
      "for (int i = 0; i < 6 * T; i++) x[i] = (float)i;\n"
      "McError e;\n"
      "tm_model *mod = tm_open(NULL, &e);\n"
      "CHECK(tm_run(mod, T, 3, x, c, z, sl, cat, pt, win, &e) == MC_OK);\n"
      "for (int i = 0; i < 3; i++)\n"
      "  for (int t = 0; t < T; t++) {\n"
      "    CHECK(sl[i * T + t] == x[(5 - 2 * i) * T + t]);\n"
      "    CHECK(cat[i * (T + 1) + 1 + t] == sl[i * T + t]);\n"
      "    CHECK(pt[(1 + t) * 3 + i] == sl[i * T + t]);\n"
      "  }\n"
      "for (int i = 0; i < 3; i++) CHECK(cat[i * (T + 1)] == c[i] && pt[i] == "
      "c[i]);\n"
      "for (int i = 0; i < 2 * T; i++) CHECK(win[i] == x[3 * T + i]);\n"
      "CHECK(tm_run(mod, T, 5, x, c, z, sl, cat, pt, win, &e) == "
      "MC_ERR_RANGE);\n"
      "CHECK(strstr(e.msg, \"slice of axis 0 reads index 6 outside [0, 6) at "
      "tm.model:6:5\"));\n"
      "tm_close(mod);\nreturn 0;");
}

/* ---- the McModelInfo adapter, weights, executables
 * --------------------------------- */

Test(codegen, info_adapter_binds_and_checks_symbols) {
  Value *x = input("x", ty(DT_F32, 2, -2, -1));
  Value *pad = input("pad", ty(DT_BOOL, 2, -2, -1));
  fn->inputs[1].has_default = true;
  Value *zero = cst(DT_F32, 0);
  Value *ops[3] = {pad, zero, x};
  Value *y = ir_build(m, fn->body, OP_SELECT, ops, 3, NULL, NULL, L(3, 5), &d);
  cr_assert(y, "%s", diag_text());
  output("y", y);
  Type rt = ty(DT_F32, 1, 0);
  cr_assert(dim_mul(dim_sym(1), dim_sym(0), &rt.shape.dims[0]));
  output("flat", op1(OP_RESHAPE, y, NULL, &rt, 4));
  expect_ok(
      "float x[2 * 3] = {1, 2, 3, 4, 5, 6};\n"
      "uint8_t pad[2 * 3] = {1, 0, 0, 0, 0, 1};\n"
      "McTensor in[2], out[2];\n"
      "memset(in, 0, sizeof in);\n"
      "memset(out, 0, sizeof out);\n"
      "in[0].dtype = MC_F32; in[0].rank = 2; in[0].shape[0] = 2; "
      "in[0].shape[1] = 3; in[0].data = x;\n"
      "McError e;\n"
      "void *h;\n"
      "CHECK(tm_info.open(NULL, &h, &e) == MC_OK);\n"
      "CHECK(tm_info.ninputs == 2 && tm_info.inputs[1].optional);\n"
      "CHECK(tm_info.run(h, in, out, &e) == MC_OK);\n"
      "CHECK(out[0].rank == 2 && out[0].shape[0] == 2 && out[0].shape[1] == "
      "3);\n"
      "CHECK(out[1].rank == 1 && out[1].shape[0] == 6);\n"
      "for (int i = 0; i < 6; i++) CHECK(((float *)out[0].data)[i] == x[i] && "
      "((float *)out[1].data)[i] == x[i]);\n"
      /* run again: the same shapes are written into the same buffers,
       * another T gets buffers of its shape */
      "void *y0 = out[0].data, *f0 = out[1].data;\n"
      "x[0] = 9;\n"
      "CHECK(tm_info.run(h, in, out, &e) == MC_OK);\n"
      "CHECK(out[0].data == y0 && out[1].data == f0);\n"
      "CHECK(((float *)out[0].data)[0] == 9 && ((float *)out[1].data)[5] == "
      "6);\n"
      "in[0].shape[1] = 2;\n"
      "CHECK(tm_info.run(h, in, out, &e) == MC_OK);\n"
      "CHECK(out[0].shape[1] == 2 && out[1].shape[0] == 4);\n"
      "for (int i = 0; i < 4; i++) CHECK(((float *)out[1].data)[i] == x[i]);\n"
      "in[0].shape[1] = 3; x[0] = 1;\n"
      "in[1].dtype = MC_BOOL; in[1].rank = 2; in[1].shape[0] = 2; "
      "in[1].shape[1] = 3; in[1].data = pad;\n"
      "CHECK(tm_info.run(h, in, out, &e) == MC_OK);\n"
      "CHECK(((float *)out[0].data)[0] == 0 && ((float *)out[0].data)[1] == "
      "2 && ((float *)out[0].data)[5] == 0);\n"
      /* a failing run frees the buffers it was given */
      "in[1].shape[1] = 7;\n"
      "CHECK(tm_info.run(h, in, out, &e) == MC_ERR_SHAPE);\n"
      "printf(\"%s\\n\", e.msg);\n"
      "CHECK(strcmp(e.msg, \"input 'pad': dimension 1 is 7 but T = 3 from "
      "input 'x'\") == 0);\n"
      "CHECK(out[0].data == NULL && out[1].data == NULL);\n"
      "in[1].shape[1] = 3; in[1].dtype = MC_F32;\n"
      "CHECK(tm_info.run(h, in, out, &e) == MC_ERR_DTYPE);\n"
      "tm_info.close(h);\nreturn 0;");
}

Test(codegen, unbound_symbol_is_an_emit_error) {
  Value *x = input("x", ty(DT_F32, 1, 4));
  Type t = ty(DT_F32, 2, -1, 4);
  output("y", op1(OP_BROADCAST, x, NULL, &t, 3));
  cr_expect_not(cg_emit_c(m, dir, NULL, &d));
  cr_expect(strstr(diag_text(), "tm.model:3:5: error: symbol 'T' is not the "
                                "size of any input of 'main'"),
            "%s", diag_text());
}

Test(codegen, symbol_only_in_a_product_is_an_emit_error) {
  Type t = ty(DT_F32, 1, 0);
  cr_assert(dim_mul(dim_sym(0), dim_sym(1), &t.shape.dims[0]));
  Value *x = input("x", t);
  output("y", op1(OP_EXP, x, NULL, NULL, 3));
  cr_expect_not(cg_emit_c(m, dir, NULL, &d));
  cr_expect(strstr(diag_text(), "symbol 'T' of 'main' is not an input "
                                "dimension of the form c*T + k"),
            "%s", diag_text());
}

/* A safetensors file with one f32 tensor. */
static void write_safetensors(const char *path, const char *name, int rows,
                              int cols, const float *data) {
  char header[256];
  int n = snprintf(header, sizeof header,
                   "{\"%s\":{\"dtype\":\"F32\",\"shape\":[%d,%d],"
                   "\"data_offsets\":[0,%d]}}",
                   name, rows, cols, rows * cols * 4);
  while (n % 8)
    header[n++] = ' ';
  FILE *f = fopen(path, "wb");
  cr_assert(f);
  uint64_t len = (uint64_t)n;
  unsigned char le[8];
  for (int i = 0; i < 8; i++)
    le[i] = (unsigned char)(len >> (8 * i));
  fwrite(le, 1, 8, f);
  fwrite(header, 1, (size_t)n, f);
  fwrite(data, 4, (size_t)(rows * cols), f);
  fclose(f);
}

Test(codegen, build_exe_with_weights_and_npy) {
  Type wt = ty(DT_F32, 2, 4, 3);
  int wi = ir_add_param(m, "h.0.w", wt, L(2, 3), &d);
  cr_assert(wi >= 0);
  Attrs pa;
  memset(&pa, 0, sizeof pa);
  pa.param.index = wi;
  Value *w = ir_build(m, fn->body, OP_PARAM, NULL, 0, &pa, NULL, L(2, 3), &d);
  Value *x = input("x", ty(DT_F32, 2, -1, 3));
  Attrs at;
  memset(&at, 0, sizeof at);
  at.matmul.trans_b = true;
  output("y", op2(OP_MATMUL, x, w, &at, 3));
  /* a weight only multiplied by is kept in the GEMM's panels (of W.T) */
  char *text = emit();
  cr_expect(strstr(text, "{\"h.0.w\", 2, {4, 3}, MC_F32, 1, 1},"), "%s", text);
  cr_expect(strstr(text, "mc_gemm_f32_packed("), "%s", text);
  free(text);
  float wdata[12], xdata[6] = {1, 2, 3, -1, 0.5f, 2};
  for (int i = 0; i < 12; i++)
    wdata[i] = (float)i * 0.25f;
  char wpath[300], exe[300], npy[600], outdir[300], cmd[2048];
  snprintf(wpath, sizeof wpath, "%s/w.safetensors", dir);
  snprintf(exe, sizeof exe, "%s/tm", dir);
  snprintf(npy, sizeof npy, "%s/x.npy", dir);
  snprintf(outdir, sizeof outdir, "%s/out", dir);
  write_safetensors(wpath, "h.0.w", 4, 3, wdata);
  CgOptions o = {1, wpath, NULL, NULL, DT_F32, NULL, false};
  cr_assert(cg_build_exe(m, exe, &o, &d), "%s", diag_text());
  McTensor t = {MC_F32, 2, {2, 3}, xdata};
  McError e;
  cr_assert_eq(mc_npy_write(npy, &t, &e), MC_OK, "%s", e.msg);
  snprintf(cmd, sizeof cmd, "%s x=%s -o %s", exe, npy, outdir);
  cr_assert_eq(system(cmd), 0);
  McTensor y;
  snprintf(npy, sizeof npy, "%s/y.npy", outdir);
  cr_assert_eq(mc_npy_read(npy, &y, &e), MC_OK, "%s", e.msg);
  cr_assert(y.rank == 2 && y.shape[0] == 2 && y.shape[1] == 4);
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 4; j++) {
      float s = 0;
      for (int k = 0; k < 3; k++)
        s += xdata[i * 3 + k] * wdata[j * 3 + k];
      cr_expect_eq(((float *)y.data)[i * 4 + j], s);
    }
  mc_tensor_free(&y);
  /* a failing build reports the compiler's output and leaves nothing */
  CgOptions bad = {1,      NULL,      "cc", "-DNOT_C=1 -include /nonexistent.h",
                   DT_F32, "generic", false};
  snprintf(exe, sizeof exe, "%s/bad", dir);
  cr_expect_not(cg_build_exe(m, exe, &bad, &d));
  cr_expect(strstr(diag_text(), "the C compiler failed"), "%s", diag_text());
  cr_expect_neq(access(exe, F_OK), 0);
}

/* ---- golden: the text of the emitted code
 * ------------------------------------------ */

Test(codegen, emitted_text_names_kernels_after_their_source) {
  Value *x = input("x", ty(DT_F32, 2, -1, 4));
  Loc l = L(23, 11);
  l.scope = "block";
  Attrs ax;
  memset(&ax, 0, sizeof ax);
  ax.axis.axis = 1;
  Value *xs[1] = {x};
  Value *sm = ir_build(m, fn->body, OP_SOFTMAX, xs, 1, &ax, NULL, l, &d);
  Value *ys[1] = {sm};
  Value *sm2 = ir_build(m, fn->body, OP_SOFTMAX, ys, 1, &ax, NULL, l, &d);
  Value *dead = op1(OP_EXP, x, NULL, NULL, 30);
  (void)dead;
  output("y", sm2);
  const char *src = "input x: f32[T, 4]\n";
  diag_add_source(&d, "tm.model", src);
  char *text = emit();
  cr_expect(strstr(text, "static void block_L23_softmax(int64_t T, const "
                         "float *restrict x, float *restrict y) {"),
            "%s", text);
  /* the second softmax has the first's code: one kernel, called twice */
  cr_expect_null(strstr(text, "block_L23_softmax_2"), "%s", text);
  cr_expect(strstr(text, "  block_L23_softmax(T, x, t1);\n"
                         "  block_L23_softmax(T, t1, y);\n"),
            "%s", text);
  cr_expect(strstr(text, "/* tm.model:23:11\n"), "%s", text);
  cr_expect(strstr(text, "mc_softmax_row_f32(x + i * 4, y + i * 4, 4);"), "%s",
            text);
  cr_expect_null(strstr(text, "_L30_exp"), "dead op emitted: %s", text);
  cr_expect(strstr(text, "size_t tm_workspace_size(int64_t T)"), "%s", text);
  char path[512];
  snprintf(path, sizeof path, "%s/tm.h", dir);
  char *h = slurp(path);
  cr_expect(strstr(h, "int tm_run(tm_model *m, int64_t T, const float *x, "
                      "float *y /* caller allocates [T, 4] */, McError *err);"),
            "%s", h);
  cr_expect(strstr(h, "extern const McModelInfo tm_info;"), "%s", h);
  /* deterministic */
  char *again = emit();
  cr_expect_str_eq(text, again);
  free(again);
  free(text);
  free(h);
}
