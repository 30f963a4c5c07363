/* The C backend: small Modules built by hand are emitted as C, the model's
 * .c is compiled with -Wall -Wextra -Wpedantic -Werror by gcc and clang (when
 * installed), linked with the runtime and a tiny driver main that calls the
 * typed run function (or McModelInfo.run), and its numbers are checked -
 * bit-exactly where the op is exact: elementwise loops, GEMMs with their
 * epilogues, reductions with prologues and epilogues, attention.
 * test_codegen_data.c has the rest. */
static const char *const codegen_fixture_name = "test_codegen";
#include "codegen_fixture.h"

TestSuite(codegen, .init = setup, .fini = teardown);

/* ---- elementwise
 * ------------------------------------------------------------- */

Test(codegen, broadcast_add_and_scalar) {
  Value *x = input("x", ty(DT_F32, 2, -1, 3));
  Value *b = input("b", ty(DT_F32, 1, 3));
  Value *s = op2(OP_ADD, x, b, NULL, 3);
  Value *y = op2(OP_MUL, s, cst(DT_F32, 0.5), NULL, 4);
  Value *c = input("c", ty(DT_F32, 2, -1, 1));
  Value *z = op2(OP_SUB, y, c, NULL, 5);
  output("z", z);
  expect_ok("float x[6] = {1, 2, 3, 4, 5, 6}, b[3] = {10, 20, 30};\n"
            "float c[2] = {1, -1}, z[6];\n"
            "McError e;\n"
            "tm_model *mod = tm_open(NULL, &e);\n"
            "CHECK(mod);\n"
            "CHECK(tm_run(mod, 2, x, b, c, z, &e) == MC_OK);\n"
            "for (int i = 0; i < 6; i++)\n"
            "  CHECK(z[i] == (x[i] + b[i % 3]) * 0.5f - c[i / 3]);\n"
            "tm_close(mod);\nreturn 0;");
}

Test(codegen, fused_chains_run_in_parallel_bit_exact) {
  /* y = tanh((x + b) * 2^-140 * 2^70 * 2^70) - x, b broadcast along rows:
   * one fused loop over rows, on 1 and 3 threads, with the bits of the ops
   * done one at a time */
  Value *x = input("x", ty(DT_F32, 2, -1, 5));
  Value *b = input("b", ty(DT_F32, 1, 5));
  Value *s = op2(OP_ADD, x, b, NULL, 3);
  Value *r = op2(OP_MUL, s, cst(DT_F32, 0x1p-140), NULL, 4);
  r = op2(OP_MUL, r, cst(DT_F32, 0x1p70), NULL, 4);
  r = op2(OP_MUL, r, cst(DT_F32, 0x1p70), NULL, 4);
  Value *t = op1(OP_TANH, r, NULL, NULL, 5);
  output("y", op2(OP_SUB, t, x, NULL, 6));
  cr_assert(pass_run_list(m, "verify,fuse,dce,verify", NULL, NULL, &d), "%s",
            diag_text());
  char *text = emit();
  cr_expect(strstr(text, "_fused_range(void *ctx, int64_t begin"), "%s", text);
  cr_expect(strstr(text, "mc_parallel_for(T, 16384 / (5) + 1, "), "%s", text);
  cr_expect_null(strstr(text, "_L4_mul("), "%s", text);
  free(text);
  expect_ok(
      "enum { T = 20000 };\n"
      "static float x[T * 5], y[T * 5], b[5] = {1, -2, 3e-3f, 0, 9};\n"
      "McError e;\n"
      "for (int i = 0; i < T * 5; i++) x[i] = (float)(i % 977) * 0.37f - 50;\n"
      "tm_model *mod = tm_open(NULL, &e);\n"
      "CHECK(mod);\n"
      "for (int threads = 1; threads <= 3; threads += 2) {\n"
      "  mc_set_threads(threads);\n"
      "  CHECK(tm_run(mod, T, x, b, y, &e) == MC_OK);\n"
      "  for (int i = 0; i < T * 5; i++) {\n"
      "    volatile float v = x[i] + b[i % 5];\n"
      "    v = v * 0x1p-140f;\n"
      "    v = v * 0x1p70f;\n"
      "    v = v * 0x1p70f;\n"
      "    volatile float w = mc_tanhf(v) - x[i];\n"
      "    CHECK(fbits(y[i]) == fbits(w));\n"
      "  }\n"
      "}\n"
      "tm_close(mod);\nreturn 0;");
}

Test(codegen, fused_vmath_calls_run_in_stages_bit_exact) {
  /* y = where(x > 0, x, tanh(sigmoid(x) * x) * x): two mc_vmath.h calls,
   * so a loop per stage over tiles (cg_fused_stages), the comparison (a
   * bool) and sigmoid's value passed on in tile arrays; 40001 elements (no
   * whole number of tiles) on 1 and 3 threads, with the bits of the ops
   * done one at a time */
  Value *x = input("x", ty(DT_F32, 1, -1));
  Value *c = op2(OP_GT, x, cst(DT_F32, 0), NULL, 3);
  Value *p = op2(OP_MUL, op1(OP_SIGMOID, x, NULL, NULL, 4), x, NULL, 4);
  Value *ops[3] = {c, x,
                   op2(OP_MUL, op1(OP_TANH, p, NULL, NULL, 5), x, NULL, 5)};
  Value *y = ir_build(m, fn->body, OP_SELECT, ops, 3, NULL, NULL, L(6, 5), &d);
  cr_assert(y, "%s", diag_text());
  output("y", y);
  cr_assert(pass_run_list(m, "verify,fuse,dce,verify", NULL, NULL, &d), "%s",
            diag_text());
  char *text = emit();
  cr_expect(strstr(text, "uint8_t t0_tile[256];"), "%s", text);
  cr_expect(strstr(text, "const float t1 = mc_sigmoidf(x0[i]);\n"
                         "      t1_tile[i - i0] = t1;"),
            "%s", text);
  free(text);
  expect_ok(
      "enum { T = 40001 };\n"
      "static float x[T], y[T];\n"
      "McError e;\n"
      "for (int i = 0; i < T; i++) x[i] = (float)(i % 977) * 0.037f - 30;\n"
      "tm_model *mod = tm_open(NULL, &e);\n"
      "CHECK(mod);\n"
      "for (int threads = 1; threads <= 3; threads += 2) {\n"
      "  mc_set_threads(threads);\n"
      "  CHECK(tm_run(mod, T, x, y, &e) == MC_OK);\n"
      "  for (int i = 0; i < T; i++) {\n"
      "    volatile float p = mc_sigmoidf(x[i]) * x[i];\n"
      "    volatile float w = mc_tanhf(p) * x[i];\n"
      "    CHECK(fbits(y[i]) == fbits(x[i] > 0 ? x[i] : w));\n"
      "  }\n"
      "}\n"
      "tm_close(mod);\nreturn 0;");
}

Test(codegen, float_rounding_chain_is_bit_exact) {
  /* x * 2^-140 lands in the subnormals and loses bits; the later * 2^100
   * and * 2^40 (2^140 itself overflows f32) must stay separate ops, never
   * folded into * 1. */
  Value *x = input("x", ty(DT_F32, 1, -1));
  Value *a = op2(OP_MUL, x, cst(DT_F32, 0x1p-140), NULL, 3);
  Value *b = op2(OP_MUL, a, cst(DT_F32, 0x1p100), NULL, 4);
  Value *y = op2(OP_MUL, b, cst(DT_F32, 0x1p40), NULL, 5);
  output("y", y);
  char *text = emit();
  cr_expect(strstr(text, "y[i] = a[i] * 0x1p-140f;"), "%s", text);
  cr_expect(strstr(text, "y[i] = a[i] * 0x1p+100f;"), "%s", text);
  cr_expect(strstr(text, "y[i] = a[i] * 0x1p+40f;"), "%s", text);
  free(text);
  expect_ok("float x[4] = {1.2345678f, 3.0f, -7.77e-3f, 1e30f}, y[4];\n"
            "McError e;\n"
            "tm_model *mod = tm_open(NULL, &e);\n"
            "CHECK(tm_run(mod, 4, x, y, &e) == MC_OK);\n"
            "for (int i = 0; i < 4; i++) {\n"
            "  volatile float t = x[i] * 0x1p-140f;\n"
            "  volatile float r = t * 0x1p100f;\n"
            "  r = r * 0x1p40f;\n"
            "  CHECK(fbits(y[i]) == fbits(r));\n"
            "  CHECK(i % 2 == 1 || y[i] != x[i]); /* subnormal: bits lost */\n"
            "}\n"
            "tm_close(mod);\nreturn 0;");
}

Test(codegen, integer_div_mod_and_optional_input) {
  Value *a = input("a", ty(DT_I32, 1, -1));
  Value *b = input("b", ty(DT_I32, 1, -1));
  fn->inputs[1].has_default = true;
  fn->inputs[1].default_value = 3;
  output("q", op2(OP_DIV, a, b, NULL, 3));
  output("r", op2(OP_MOD, a, b, NULL, 4));
  expect_ok("int32_t a[4] = {7, -7, 7, -7}, b[4] = {2, 2, -2, -2};\n"
            "int32_t q[4], r[4];\n"
            "McError e;\n"
            "tm_model *mod = tm_open(NULL, &e);\n"
            "CHECK(tm_run(mod, 4, a, b, q, r, &e) == MC_OK);\n"
            "CHECK(q[0] == 3 && q[1] == -3 && q[2] == -3 && q[3] == 3);\n"
            "CHECK(r[0] == 1 && r[1] == 1 && r[2] == -1 && r[3] == -1);\n"
            "CHECK(tm_run(mod, 4, a, NULL, q, r, &e) == MC_OK);\n"
            "CHECK(q[0] == 2 && q[1] == -2 && r[0] == 1 && r[1] == 2);\n"
            "tm_close(mod);\nreturn 0;");
}

/* ---- matmul
 * ------------------------------------------------------------------- */

Test(codegen, matmul_trans_b_and_batch_broadcast) {
  Value *a = input("a", ty(DT_F32, 3, 2, -1, 3));
  Value *b = input("b", ty(DT_F32, 2, 4, 3));
  Attrs at;
  memset(&at, 0, sizeof at);
  at.matmul.trans_b = true;
  output("y", op2(OP_MATMUL, a, b, &at, 3));
  Value *v = input("v", ty(DT_F32, 1, 3));
  output("u", op2(OP_MATMUL, a, v, NULL, 4)); /* rank-1 b: [2, T] */
  expect_ok("float a[2 * 2 * 3], b[4 * 3], v[3] = {1, -2, 0.5f};\n"
            "float y[2 * 2 * 4], u[2 * 2];\n"
            "for (int i = 0; i < 12; i++) { a[i] = (float)i - 5; b[i] = "
            "(float)(i * i % 7); }\n"
            "McError e;\n"
            "tm_model *mod = tm_open(NULL, &e);\n"
            "CHECK(tm_run(mod, 2, a, b, v, y, u, &e) == MC_OK);\n"
            "for (int p = 0; p < 2; p++)\n"
            " for (int i = 0; i < 2; i++) {\n"
            "  float uu = 0;\n"
            "  for (int k = 0; k < 3; k++) uu += a[(p * 2 + i) * 3 + k] * "
            "v[k];\n"
            "  CHECK(u[p * 2 + i] == uu);\n"
            "  for (int j = 0; j < 4; j++) {\n"
            "   float s = 0;\n"
            "   for (int k = 0; k < 3; k++) s += a[(p * 2 + i) * 3 + k] * "
            "b[j * 3 + k];\n"
            "   CHECK(y[(p * 2 + i) * 4 + j] == s);\n"
            "  }\n"
            " }\n"
            "tm_close(mod);\nreturn 0;");
}

/* The attributes of a 2-D slice with step 1 from (row, col). */
static Attrs slice_from(Dim row, Dim col) {
  Attrs s;
  memset(&s, 0, sizeof s);
  s.slice.start[0] = row;
  s.slice.step[0] = 1;
  s.slice.start[1] = col;
  s.slice.step[1] = 1;
  return s;
}

/* Slices, reshapes, permutes and broadcasts feeding a matmul are read in
 * place through strides (c_views.c); a reshape that merges axes a permute
 * made non-contiguous is copied first. */
Test(codegen, matmul_reads_views_of_its_operands) {
  Value *x = input("x", ty(DT_F32, 2, -1, 12));
  Value *u = input("u", ty(DT_F32, 2, 6, 4));
  Attrs s = slice_from(dim_const(0), dim_const(4)); /* x[:, 4:12] */
  Type st = ty(DT_F32, 2, -1, 8);
  Value *xs = op1(OP_SLICE, x, &s, &st, 3);
  Type rt = ty(DT_F32, 3, -1, 2, 4);
  Value *xr = op1(OP_RESHAPE, xs, NULL, &rt, 4);
  Attrs p;
  memset(&p, 0, sizeof p);
  p.perm.perm[0] = 1;
  p.perm.perm[1] = 0;
  p.perm.perm[2] = 2;
  Value *a = op1(OP_PERMUTE, xr, &p, NULL, 5); /* [2, T, 4] */
  Attrs s2;
  memset(&s2, 0, sizeof s2);
  s2.slice.start[0] = dim_const(1); /* u[1::2] */
  s2.slice.step[0] = 2;
  s2.slice.start[1] = dim_const(0);
  s2.slice.step[1] = 1;
  Type st2 = ty(DT_F32, 2, 3, 4);
  Value *us = op1(OP_SLICE, u, &s2, &st2, 6);
  Attrs p2;
  memset(&p2, 0, sizeof p2);
  p2.perm.perm[0] = 1;
  p2.perm.perm[1] = 0;
  Value *b = op1(OP_PERMUTE, us, &p2, NULL, 6); /* [4, 3] */
  output("y", op2(OP_MATMUL, a, b, NULL, 7));   /* [2, T, 3] */
  Type rt2 = ty(DT_F32, 3, -1, 3, 4);
  Value *x3 = op1(OP_RESHAPE, x, NULL, &rt2, 8);
  Value *a2 = op1(OP_PERMUTE, x3, &p, NULL, 8); /* [3, T, 4] */
  Type mt = a2->type;
  mt.shape.rank = 2;
  cr_assert(dim_mul(dim_const(3), dim_sym(0), &mt.shape.dims[0]));
  mt.shape.dims[1] = dim_const(4);
  Value *a2m = op1(OP_RESHAPE, a2, NULL, &mt, 8);
  Value *v = input("v", ty(DT_F32, 2, 3, 4));
  Attrs tb;
  memset(&tb, 0, sizeof tb);
  tb.matmul.trans_b = true;
  output("z", op2(OP_MATMUL, a2m, v, &tb, 9)); /* [3 T, 3] */
  char *text = emit();
  cr_expect_null(strstr(text, "tm_L5_permute"), "copied a view:\n%s", text);
  cr_expect_null(strstr(text, "tm_L6_permute"), "copied a view:\n%s", text);
  cr_expect_null(strstr(text, "tm_L3_slice"), "copied a view:\n%s", text);
  cr_expect_not_null(strstr(text, "tm_L8_permute"), "%s", text);
  free(text);
  expect_ok(
      "enum { T = 5 };\n"
      "float x[T * 12], u[6 * 4], v[3 * 4], y[2 * T * 3], z[3 * T * 3];\n"
      "for (int i = 0; i < T * 12; i++) x[i] = (float)(i % 11) - 4;\n"
      "for (int i = 0; i < 24; i++) u[i] = (float)(i % 7) - 2;\n"
      "for (int i = 0; i < 12; i++) v[i] = (float)(i % 5) - 1;\n"
      "McError e;\n"
      "tm_model *mod = tm_open(NULL, &e);\n"
      "CHECK(tm_run(mod, T, x, u, v, y, z, &e) == MC_OK);\n"
      "for (int h = 0; h < 2; h++)\n"
      " for (int t = 0; t < T; t++)\n"
      "  for (int j = 0; j < 3; j++) {\n"
      "   float s = 0;\n"
      "   for (int k = 0; k < 4; k++)\n"
      "    s += x[t * 12 + 4 + h * 4 + k] * u[(1 + 2 * j) * 4 + k];\n"
      "   CHECK(y[(h * T + t) * 3 + j] == s);\n"
      "  }\n"
      "for (int h = 0; h < 3; h++)\n"
      " for (int t = 0; t < T; t++)\n"
      "  for (int j = 0; j < 3; j++) {\n"
      "   float s = 0;\n"
      "   for (int k = 0; k < 4; k++) s += x[t * 12 + h * 4 + k] * v[j * 4 + "
      "k];\n"
      "   CHECK(z[(h * T + t) * 3 + j] == s);\n"
      "  }\n"
      "tm_close(mod);\nreturn 0;");
}

/* An elementwise loop reads a slice of whole rows (wpe[0:T]) in place, at
 * an offset into its base: the slice has no kernel. A slice of columns is
 * copied as before. */
Test(codegen, a_loop_reads_a_slice_of_whole_rows_in_place) {
  Value *x = input("x", ty(DT_F32, 2, 3, 4));
  Value *u = input("u", ty(DT_F32, 2, 6, 4));
  Value *v = input("v", ty(DT_F32, 2, 3, 8));
  Attrs s = slice_from(dim_const(2), dim_const(0)); /* u[2:5] */
  Type st = ty(DT_F32, 2, 3, 4);
  Value *us = op1(OP_SLICE, u, &s, &st, 3);
  output("y", op2(OP_ADD, x, us, NULL, 4));
  s = slice_from(dim_const(0), dim_const(2)); /* v[:, 2:6] */
  Value *vs = op1(OP_SLICE, v, &s, &st, 5);
  output("z", op2(OP_MUL, x, vs, NULL, 6));
  char *text = emit();
  cr_expect_null(strstr(text, "tm_L3_slice"), "copied a view:\n%s", text);
  cr_expect_not_null(strstr(text, "tm_L4_add(x, u + 8, y);"), "%s", text);
  cr_expect_not_null(strstr(text, "tm_L5_slice"), "%s", text);
  free(text);
  expect_ok("float x[12], u[24], v[24], y[12], z[12];\n"
            "for (int i = 0; i < 12; i++) x[i] = (float)(i % 5) - 2;\n"
            "for (int i = 0; i < 24; i++) u[i] = 0.5f * (float)(i % 7);\n"
            "for (int i = 0; i < 24; i++) v[i] = (float)(i % 3) + 1;\n"
            "McError e;\n"
            "tm_model *mod = tm_open(NULL, &e);\n"
            "CHECK(tm_run(mod, x, u, v, y, z, &e) == MC_OK);\n"
            "for (int r = 0; r < 3; r++)\n"
            " for (int j = 0; j < 4; j++) {\n"
            "  CHECK(y[r * 4 + j] == x[r * 4 + j] + u[(r + 2) * 4 + j]);\n"
            "  CHECK(z[r * 4 + j] == x[r * 4 + j] * v[r * 8 + 2 + j]);\n"
            " }\n"
            "tm_close(mod);\nreturn 0;");
}

/* A slice whose bounds depend on a symbol (x[0:T]) keeps its kernel, which
 * checks them at run time, even before a matmul that could read a view. */
Test(codegen, a_slice_checked_at_run_time_is_no_view) {
  Value *x = input("x", ty(DT_F32, 2, 8, 4));
  Value *w = input("w", ty(DT_F32, 2, 4, 3));
  Attrs s = slice_from(dim_const(0), dim_const(0));
  Type st = ty(DT_F32, 2, -1, 4);
  Value *xs = op1(OP_SLICE, x, &s, &st, 3);
  Value *r = input("r", ty(DT_F32, 2, -1, 3)); /* T's size */
  Value *p = op2(OP_MATMUL, xs, w, NULL, 4);
  output("y", op2(OP_ADD, p, r, NULL, 5));
  char *text = emit();
  cr_expect_not_null(strstr(text, "tm_L3_slice("), "%s", text);
  free(text);
  expect_ok(
      "float x[32], w[12], r[9 * 3] = {0}, y[9 * 3];\n"
      "for (int i = 0; i < 32; i++) x[i] = (float)(i % 5) - 2;\n"
      "for (int i = 0; i < 12; i++) w[i] = (float)(i % 3);\n"
      "McError e;\n"
      "tm_model *mod = tm_open(NULL, &e);\n"
      "CHECK(tm_run(mod, 5, x, w, r, y, &e) == MC_OK);\n"
      "for (int i = 0; i < 5; i++)\n"
      " for (int j = 0; j < 3; j++) {\n"
      "  float a = -0.0f;\n"
      "  for (int k = 0; k < 4; k++) a = fmaf(x[i * 4 + k], w[k * 3 + j], "
      "a);\n"
      "  CHECK(fabsf(y[i * 3 + j] - a) <= 1e-5f);\n"
      " }\n"
      "CHECK(tm_run(mod, 9, x, w, r, y, &e) == MC_ERR_RANGE);\n"
      "tm_close(mod);\nreturn 0;");
}

/* A matmul whose only reader is an elementwise loop over its result runs
 * that loop as its GEMM's epilogue (pass_fuse puts them together): one
 * kernel, named after both lines; and with nothing but the product to read
 * (rank-1 operand, no struct). The values are those of the separate ops. */
Test(codegen, gemm_epilogue_applies_the_reader_in_the_store) {
  Value *x = input("x", ty(DT_F32, 3, 2, -1, 4));
  Value *w = input("w", ty(DT_F32, 2, 4, 3));
  Value *bias = input("bias", ty(DT_F32, 1, 3));
  Value *r = input("r", ty(DT_F32, 3, 2, -1, 3));
  Value *v = input("v", ty(DT_F32, 1, 4));
  Value *p = op2(OP_MATMUL, x, w, NULL, 3); /* [2, T, 3] */
  Value *q = op2(OP_ADD, p, bias, NULL, 4);
  Value *s = op2(OP_MUL, q, cst(DT_F32, 0.5), NULL, 4);
  Value *t = op1(OP_TANH, s, NULL, NULL, 5);
  output("y", op2(OP_ADD, t, r, NULL, 5));
  Value *pv = op2(OP_MATMUL, v, w, NULL, 6);    /* [3] */
  Value *other = op1(OP_NEG, x, NULL, NULL, 7); /* between: pv moves down */
  output("o", other);
  output("z", op1(OP_NEG, pv, NULL, NULL, 8));
  cr_assert(pass_fuse(m, &d));
  char *text = emit();
  cr_expect_not_null(strstr(text, "static void tm_L3_matmul_L5_ep("), "%s",
                     text);
  cr_expect_not_null(strstr(text, "mc_gemm_f32_ep("), "%s", text);
  cr_expect_not_null(strstr(text, "tm_L6_matmul_L8_ep, NULL}"), "%s", text);
  cr_expect_null(strstr(text, "mc_gemm_f32("),
                 "a GEMM without its epilogue:\n%s", text);
  free(text);
  expect_ok(
      "enum { T = 37 };\n"
      "static float x[2 * T * 4], w[12], bias[3], r[2 * T * 3], v[4];\n"
      "static float y[2 * T * 3], o[2 * T * 4], z[3];\n"
      "for (int i = 0; i < 2 * T * 4; i++) x[i] = (float)(i % 13) - 6;\n"
      "for (int i = 0; i < 12; i++) w[i] = (float)(i % 5) - 2;\n"
      "for (int i = 0; i < 3; i++) bias[i] = 0.25f * (float)i - 0.3f;\n"
      "for (int i = 0; i < 2 * T * 3; i++) r[i] = 0.1f * (float)(i % 7);\n"
      "for (int i = 0; i < 4; i++) v[i] = (float)i - 1.5f;\n"
      "McError e;\n"
      "tm_model *mod = tm_open(NULL, &e);\n"
      "CHECK(tm_run(mod, T, x, w, bias, r, v, y, o, z, &e) == MC_OK);\n"
      "for (int b = 0; b < 2; b++)\n"
      " for (int t = 0; t < T; t++)\n"
      "  for (int j = 0; j < 3; j++) {\n"
      "   float s = 0;\n"
      "   for (int k = 0; k < 4; k++)\n"
      "    s += x[(b * T + t) * 4 + k] * w[k * 3 + j];\n"
      "   const float q = s + bias[j];\n"
      "   const float h = q * 0.5f;\n"
      "   const float want = mc_tanhf(h) + r[(b * T + t) * 3 + j];\n"
      "   CHECK(fbits(y[(b * T + t) * 3 + j]) == fbits(want));\n"
      "  }\n"
      "for (int j = 0; j < 3; j++) {\n"
      " float s = 0;\n"
      " for (int k = 0; k < 4; k++) s += v[k] * w[k * 3 + j];\n"
      " CHECK(fbits(z[j]) == fbits(-s));\n"
      "}\n"
      "for (int i = 0; i < 2 * T * 4; i++) CHECK(o[i] == -x[i]);\n"
      "tm_close(mod);\nreturn 0;");
}

/* A matmul by a matrix whose epilogue reads each operand whole or the same
 * for every row runs as one GEMM of all its rows ([T, 1, 4]: T rows, the
 * residual's row i at i * 3); one whose epilogue operand is per batch
 * ([2, 1, 3] against [2, T, 3]) keeps its loop over the batch. The bits
 * are those of the separate ops. */
Test(codegen, matmul_rows_run_as_one_gemm) {
  Value *x = input("x", ty(DT_F32, 3, -1, 1, 4));
  Value *w = input("w", ty(DT_F32, 2, 4, 3));
  Value *r = input("r", ty(DT_F32, 3, -1, 1, 3));
  Value *x2 = input("x2", ty(DT_F32, 3, 2, -1, 4));
  Value *s = input("s", ty(DT_F32, 3, 2, 1, 3));
  output("y", op2(OP_ADD, op2(OP_MATMUL, x, w, NULL, 3), r, NULL, 4));
  output("z", op2(OP_ADD, op2(OP_MATMUL, x2, w, NULL, 5), s, NULL, 6));
  cr_assert(pass_fuse(m, &d));
  char *text = emit();
  cr_expect_not_null(
      strstr(text, "mc_gemm_f32_ep(T, 3, 4, a, 4, 1, b, 3, 1, y, 3, &ep);"),
      "%s", text);
  cr_expect_not_null(strstr(text, "x1[i * 3 + j]"), "%s", text);
  cr_expect_not_null(strstr(text, "for (int64_t i0 = 0; i0 < 2; i0++)"), "%s",
                     text);
  free(text);
  expect_ok(
      "enum { T = 41 };\n"
      "static float x[T * 4], w[12], r[T * 3], x2[2 * T * 4], s[6];\n"
      "static float y[T * 3], z[2 * T * 3];\n"
      "for (int i = 0; i < T * 4; i++) x[i] = (float)(i % 11) - 5;\n"
      "for (int i = 0; i < 2 * T * 4; i++) x2[i] = 0.5f * (float)(i % 9);\n"
      "for (int i = 0; i < 12; i++) w[i] = (float)(i % 5) - 2.25f;\n"
      "for (int i = 0; i < T * 3; i++) r[i] = 0.1f * (float)(i % 7);\n"
      "for (int i = 0; i < 6; i++) s[i] = (float)i - 2.5f;\n"
      "McError e;\n"
      "tm_model *mod = tm_open(NULL, &e);\n"
      "CHECK(tm_run(mod, T, x, w, r, x2, s, y, z, &e) == MC_OK);\n"
      "for (int b = 0; b < 2; b++)\n"
      " for (int t = 0; t < T; t++)\n"
      "  for (int j = 0; j < 3; j++) {\n"
      "   float p = 0, q = 0;\n"
      "   for (int k = 0; k < 4; k++) {\n"
      "    p += x2[(b * T + t) * 4 + k] * w[k * 3 + j];\n"
      "    if (b == 0) q += x[t * 4 + k] * w[k * 3 + j];\n"
      "   }\n"
      "   CHECK(fbits(z[(b * T + t) * 3 + j]) == fbits(p + s[b * 3 + j]));\n"
      "   if (b == 0) CHECK(fbits(y[t * 3 + j]) == fbits(q + r[t * 3 + j]));\n"
      "  }\n"
      "tm_close(mod);\nreturn 0;");
}

/* A reduction computes the elementwise loop it reads (its prologue) at
 * each element, and applies the loop that reads its result (its
 * epilogue) before storing: layer norm's variance is one kernel. Values
 * are those of the separate ops, for sum/mean/max/logsumexp, with and
 * without keepdims, integer and float. */
Test(codegen, reductions_take_their_prologue_and_epilogue) {
  Value *x = input("x", ty(DT_F32, 2, -1, 6));
  Value *g = input("g", ty(DT_F32, 1, -1));
  Value *n = input("n", ty(DT_I32, 2, -1, 6));
  Attrs last;
  memset(&last, 0, sizeof last);
  last.reduce.axes = 2u; /* axis 1 */
  Attrs keep = last;
  keep.reduce.keepdims = true;
  /* sqrt(mean((x - 1)^2, keepdims) + eps) */
  Value *c = op2(OP_SUB, x, cst(DT_F32, 1.0), NULL, 3);
  Value *sq = op2(OP_MUL, c, c, NULL, 3);
  Value *var = op1(OP_REDUCE_MEAN, sq, &keep, NULL, 4);
  Value *e = op2(OP_ADD, var, cst(DT_F32, 1e-5), NULL, 5);
  output("s", op1(OP_SQRT, e, NULL, NULL, 5));
  /* logsumexp(2x) * g, over axis 1 without keepdims */
  Value *x2 = op2(OP_MUL, x, cst(DT_F32, 2.0), NULL, 6);
  Value *lse = op1(OP_LOGSUMEXP, x2, &last, NULL, 7);
  output("l", op2(OP_MUL, lse, g, NULL, 8));
  /* max(|n|) and sum(n * 3) on i32 */
  Value *an = op1(OP_ABS, n, NULL, NULL, 9);
  output("m", op1(OP_REDUCE_MAX, an, &last, NULL, 10));
  Value *n3 = op2(OP_MUL, n, cst(DT_I32, 3), NULL, 11);
  output("t", op1(OP_REDUCE_SUM, n3, &last, NULL, 12));
  cr_assert(pass_fuse(m, &d));
  char *text = emit();
  /* the four run by blocks of rows, as one kernel (c_row_group.c) */
  cr_expect_not_null(strstr(text, "static void tm_L4_reduce_mean_L5_range("),
                     "%s", text);
  cr_expect_not_null(strstr(text, "static void tm_L7_logsumexp_L8_range("),
                     "%s", text);
  cr_expect_not_null(strstr(text, "tm_L4_L12_rows(T, x, s, g, l, n, m_2, t);"),
                     "%s", text);
  cr_expect_null(strstr(text, "static void tm_L4_reduce_mean_L5("), "%s", text);
  cr_expect_null(strstr(text, "_L3_fused"), "the prologue's own loop:\n%s",
                 text);
  cr_expect_null(strstr(text, "_L9_abs"), "the prologue's own loop:\n%s", text);
  free(text);
  expect_ok(
      "enum { T = 5 };\n"
      "float x[T * 6], g[T], s[T], l[T];\n"
      "int32_t n[T * 6], mx[T], t[T];\n"
      "for (int i = 0; i < T * 6; i++) {\n"
      "  x[i] = 0.37f * (float)(i % 9) - 1.1f;\n"
      "  n[i] = (i * 7919) % 23 - 11;\n"
      "}\n"
      "for (int i = 0; i < T; i++) g[i] = 0.5f + (float)i;\n"
      "McError e;\n"
      "tm_model *mod = tm_open(NULL, &e);\n"
      "CHECK(tm_run(mod, T, x, g, n, s, l, mx, t, &e) == MC_OK);\n"
      "for (int r = 0; r < T; r++) {\n"
      "  double acc = 0;\n"
      "  for (int j = 0; j < 6; j++) {\n"
      "    const float c = x[r * 6 + j] - 1.0f;\n"
      "    const float q = c * c;\n"
      "    acc += q;\n"
      "  }\n"
      "  const float v = (float)(acc / 6.0) + 1e-5f;\n"
      "  CHECK(fbits(s[r]) == fbits(sqrtf(v)));\n"
      "  float m = -INFINITY;\n"
      "  for (int j = 0; j < 6; j++) m = fmaxf(m, x[r * 6 + j] * 2.0f);\n"
      "  double se = 0;\n"
      "  for (int j = 0; j < 6; j++) se += expf(x[r * 6 + j] * 2.0f - m);\n"
      "  const float want = (m + logf((float)se)) * g[r];\n"
      "  CHECK(fbits(l[r]) == fbits(want));\n"
      "  int32_t big = INT32_MIN, sum = 0;\n"
      "  for (int j = 0; j < 6; j++) {\n"
      "    int32_t a = n[r * 6 + j] < 0 ? -n[r * 6 + j] : n[r * 6 + j];\n"
      "    big = a > big ? a : big;\n"
      "    sum += n[r * 6 + j] * 3;\n"
      "  }\n"
      "  CHECK(mx[r] == big && t[r] == sum);\n"
      "}\n"
      "tm_close(mod);\nreturn 0;");
}

/* Float sums take 8 rows of the last kept axis at once: sum over the last
 * axis of [3, T, 7] (rows of T inside the range over 3, two blocks at
 * T = 13: 8 and 5) and mean over T (rows of the 7 columns): each result
 * the bits of its own sum in order. */
Test(codegen, float_sums_run_by_blocks_of_rows_in_order) {
  Value *x = input("x", ty(DT_F32, 3, 3, -1, 7));
  Attrs last, mid;
  memset(&last, 0, sizeof last);
  last.reduce.axes = 4u; /* axis 2 */
  mid = last;
  mid.reduce.axes = 2u; /* axis 1 */
  output("s", op1(OP_REDUCE_SUM, x, &last, NULL, 3));
  output("a", op1(OP_REDUCE_MEAN, x, &mid, NULL, 4));
  cr_assert(pass_fuse(m, &d));
  char *text = emit();
  const char *first = strstr(text, "double acc[8] = {0};");
  cr_expect(first && strstr(first + 1, "double acc[8] = {0};"), "%s", text);
  free(text);
  expect_ok(
      "enum { T = 13 };\n"
      "float x[3 * T * 7], s[3 * T], a[3 * 7];\n"
      "for (int i = 0; i < 3 * T * 7; i++)\n"
      "  x[i] = 1.0f / (float)(i % 17 + 1) - 0.3f * (float)(i % 5);\n"
      "McError e;\n"
      "tm_model *mod = tm_open(NULL, &e);\n"
      "CHECK(tm_run(mod, T, x, s, a, &e) == MC_OK);\n"
      "for (int b = 0; b < 3; b++) {\n"
      "  for (int t = 0; t < T; t++) {\n"
      "    double acc = 0;\n"
      "    for (int c = 0; c < 7; c++) acc += x[(b * T + t) * 7 + c];\n"
      "    CHECK(fbits(s[b * T + t]) == fbits((float)acc));\n"
      "  }\n"
      "  for (int c = 0; c < 7; c++) {\n"
      "    double acc = 0;\n"
      "    for (int t = 0; t < T; t++) acc += x[(b * T + t) * 7 + c];\n"
      "    CHECK(fbits(a[b * 7 + c]) == fbits((float)(acc / (double)T)));\n"
      "  }\n"
      "}\n"
      "tm_close(mod);\nreturn 0;");
}

/* softmax(S) V with S = Q K.T * 0.35, or where(mask, S, -inf) with the
 * bool input `mask` of type *mask_t (where(mask, -inf, S) when
 * true_masks), fused and emitted: the text, which has one attention
 * kernel. */
static char *attention_text(const Type *mask_t, bool true_masks) {
  Value *q = input("q", ty(DT_F32, 3, 2, -1, 8));
  Value *kk = input("k", ty(DT_F32, 3, 2, -1, 8));
  Value *v = input("v", ty(DT_F32, 3, 2, -1, 5));
  Value *mask = mask_t ? input("mask", *mask_t) : NULL;
  Attrs tb;
  memset(&tb, 0, sizeof tb);
  tb.matmul.trans_b = true;
  Value *sc = op2(OP_MATMUL, q, kk, &tb, 3);
  Value *scores = op2(OP_MUL, sc, cst(DT_F32, 0.35), NULL, 3);
  if (mask) {
    Value *inf = cst(DT_F32, -INFINITY);
    Value *ops[3] = {mask, true_masks ? inf : scores,
                     true_masks ? scores : inf};
    scores = ir_build(m, fn->body, OP_SELECT, ops, 3, NULL, NULL, L(3, 5), &d);
    cr_assert(scores, "%s", diag_text());
  }
  Attrs ax;
  memset(&ax, 0, sizeof ax);
  ax.axis.axis = 2;
  Value *p = op1(OP_SOFTMAX, scores, &ax, NULL, 4);
  output("y", op2(OP_MATMUL, p, v, NULL, 4));
  cr_assert(pass_fuse(m, &d));
  char *text = emit();
  cr_expect_not_null(strstr(text, "static int tm_L3_attention("), "%s", text);
  return text;
}

/* attention_text with a mask: the text has `wants`; run with the masks
 * `fill` makes (a statement setting mask[i], T x T or T of them, for kind
 * 0 to 3), its output is bit for bit that of the separate kernels over all
 * T keys (masked_at: whether element i of S is masked), nan where kind 3
 * masks every key. */
static void check_masked_attention(Type mask_t, bool true_masks,
                                   const char *wants, const char *fill,
                                   const char *masked_at) {
  char *text = attention_text(&mask_t, true_masks);
  cr_expect_not_null(strstr(text, wants), "no '%s' in\n%s", wants, text);
  free(text);
  char body[4096];
  snprintf(
      body, sizeof body,
      "enum { T = 150 };\n"
      "static float q[2 * T * 8], k[2 * T * 8], v[2 * T * 5], y[2 * T * 5];\n"
      "static float s[T * T], want[T * 5];\n"
      "static uint8_t mask[T * T];\n"
      "for (int i = 0; i < 2 * T * 8; i++) {\n"
      "  q[i] = 0.01f * (float)((i * 37) %% 101) - 0.5f;\n"
      "  k[i] = 0.02f * (float)((i * 53) %% 89) - 0.8f;\n"
      "}\n"
      "for (int i = 0; i < 2 * T * 5; i++) v[i] = (float)(i %% 7) - 3.0f;\n"
      "McError e;\n"
      "tm_model *mod = tm_open(NULL, &e);\n"
      "for (int kind = 0; kind < 4; kind++) {\n"
      "  for (int i = 0; i < T * T; i++) {\n"
      "    int r = i / T, c = i %% T;\n"
      "    (void)r;\n"
      "    (void)c;\n"
      "    %s\n"
      "  }\n"
      "  mc_set_threads(kind %% 2 ? 3 : 1);\n"
      "  CHECK(tm_run(mod, T, q, k, v, mask, y, &e) == MC_OK);\n"
      "  for (int b = 0; b < 2; b++) {\n"
      "    mc_gemm_f32(T, T, 8, q + b * T * 8, 8, 1, k + b * T * 8, 1, 8, s, "
      "T, 0);\n"
      "    for (int i = 0; i < T * T; i++)\n"
      "      s[i] = %s ? -INFINITY : s[i] * 0.35f;\n"
      "    mc_softmax_f32(s, s, T, T, 1);\n"
      "    mc_gemm_f32(T, 5, T, s, T, 1, v + b * T * 5, 5, 1, want, 5, 0);\n"
      "    for (int i = 0; i < T * 5; i++) {\n"
      "      float got = y[b * T * 5 + i];\n"
      "      CHECK(kind == 3 ? got != got && want[i] != want[i]\n"
      "                      : fbits(got) == fbits(want[i]));\n"
      "    }\n"
      "  }\n"
      "}\n"
      "tm_close(mod);\nreturn 0;",
      fill, masked_at);
  expect_ok(body);
}

/* A mask along the keys, true where a key is kept: the keys after the last
 * one it keeps are left out (masks that end early, have holes, keep
 * everything or nothing). */
Test(codegen, attention_leaves_out_trailing_masked_keys) {
  check_masked_attention(
      ty(DT_BOOL, 1, -1), false, "while (n > nk && !mrow[n - 1])",
      "mask[i] = i < T && (kind == 0 ? i < 100 : kind == 1 ? i < 120 && "
      "i % 3 != 0 : kind == 2);",
      "!mask[i % T]");
}

/* A [T, T] mask, true where a key is masked: each block of rows leaves out
 * the keys after the last one any of its rows keeps (causal, holes, none,
 * all masked). */
Test(codegen, attention_leaves_out_the_keys_a_row_mask_masks) {
  check_masked_attention(
      ty(DT_BOOL, 2, -1, -1), true, "for (int64_t q = 0; q < rows; q++) {",
      "mask[i] = kind == 0 ? c > r : kind == 1 ? (c * 7 + r) % 5 == 0 || "
      "c > 2 * r : kind == 3;",
      "mask[i]");
}

/* softmax(Q K.T * c) V is one kernel over blocks of 64 rows (no T x T
 * buffer in the plan): bit for bit the separate GEMMs and softmax, with
 * several row blocks, a short last one, batches, and 1 or 3 threads. */
Test(codegen, attention_runs_by_blocks_of_rows) {
  char *text = attention_text(NULL, false);
  cr_expect_null(strstr(text, "_softmax("), "a softmax of its own:\n%s", text);
  cr_expect_null(strstr(text, "T * T"), "a T x T buffer:\n%s", text);
  free(text);
  expect_ok(
      "enum { T = 150 };\n"
      "static float q[2 * T * 8], k[2 * T * 8], v[2 * T * 5], y[2 * T * 5];\n"
      "static float s[T * T], want[T * 5];\n"
      "for (int i = 0; i < 2 * T * 8; i++) {\n"
      "  q[i] = 0.01f * (float)((i * 37) % 101) - 0.5f;\n"
      "  k[i] = 0.02f * (float)((i * 53) % 89) - 0.8f;\n"
      "}\n"
      "for (int i = 0; i < 2 * T * 5; i++) v[i] = (float)(i % 7) - 3.0f;\n"
      "McError e;\n"
      "tm_model *mod = tm_open(NULL, &e);\n"
      "for (int threads = 1; threads <= 3; threads += 2) {\n"
      "  mc_set_threads(threads);\n"
      "  CHECK(tm_run(mod, T, q, k, v, y, &e) == MC_OK);\n"
      "  for (int b = 0; b < 2; b++) {\n"
      "    mc_gemm_f32(T, T, 8, q + b * T * 8, 8, 1, k + b * T * 8, 1, 8, s, "
      "T, 0);\n"
      "    for (int i = 0; i < T * T; i++) s[i] = s[i] * 0.35f;\n"
      "    mc_softmax_f32(s, s, T, T, 1);\n"
      "    mc_gemm_f32(T, 5, T, s, T, 1, v + b * T * 5, 5, 1, want, 5, 0);\n"
      "    for (int i = 0; i < T * 5; i++)\n"
      "      CHECK(fbits(y[b * T * 5 + i]) == fbits(want[i]));\n"
      "  }\n"
      "}\n"
      "tm_close(mod);\nreturn 0;");
}
