/* Symbolic dimensions: canonical forms, arithmetic, exact division, printing.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "ir.h"

static Module *m;
static int T, B;

static void setup(void) {
  m = ir_module_new("t");
  T = ir_symbol(m, "T");
  B = ir_symbol(m, "B");
}
static void teardown(void) {
  ir_module_free(m);
}

TestSuite(dim, .init = setup, .fini = teardown);

static const char *p(Dim d) {
  static char buf[8][128];
  static int k;
  char *b = buf[k++ % 8];
  dim_print(b, 128, d, m);
  return b;
}

static Dim add(Dim a, Dim b) {
  Dim r;
  cr_assert(dim_add(a, b, &r));
  return r;
}
static Dim mul(Dim a, Dim b) {
  Dim r;
  cr_assert(dim_mul(a, b, &r));
  return r;
}

Test(dim, constants_and_symbols) {
  int64_t v;
  cr_assert(dim_is_const(dim_const(768), &v));
  cr_assert_eq(v, 768);
  cr_assert(dim_is_const(dim_const(0), &v));
  cr_assert_eq(v, 0);
  cr_assert_eq(dim_const(0).nterms, 0);
  cr_assert(!dim_is_const(dim_sym(T), NULL));
  cr_assert(dim_has_sym(dim_sym(T), T));
  cr_assert(!dim_has_sym(dim_sym(T), B));
  cr_assert_str_eq(p(dim_const(768)), "768");
  cr_assert_str_eq(p(dim_const(0)), "0");
  cr_assert_str_eq(p(dim_const(-3)), "-3");
  cr_assert_str_eq(p(dim_sym(T)), "T");
}

Test(dim, canonical_order_is_independent_of_construction) {
  Dim a = add(add(dim_sym(T), dim_const(1)), dim_sym(B));
  Dim b = add(dim_const(1), add(dim_sym(B), dim_sym(T)));
  cr_assert(dim_eq(a, b));
  cr_assert_str_eq(p(a), "T + B + 1");
  Dim bt = mul(dim_sym(B), dim_sym(T));
  Dim tb = mul(dim_sym(T), dim_sym(B));
  cr_assert(dim_eq(bt, tb));
  cr_assert_str_eq(p(bt), "T*B");
}

Test(dim, merging_and_cancellation) {
  Dim t2 = add(dim_sym(T), dim_sym(T));
  cr_assert_str_eq(p(t2), "2*T");
  Dim zero;
  cr_assert(dim_sub(dim_sym(T), dim_sym(T), &zero));
  cr_assert(dim_eq(zero, dim_const(0)));
  Dim sq = mul(add(dim_sym(T), dim_const(1)), add(dim_sym(T), dim_const(1)));
  cr_assert_str_eq(p(sq), "T*T + 2*T + 1");
  Dim neg;
  cr_assert(dim_sub(dim_const(1), dim_sym(T), &neg));
  cr_assert_str_eq(p(neg), "-T + 1");
  cr_assert(dim_sub(add(dim_sym(T), dim_const(0)), dim_const(1), &neg));
  cr_assert_str_eq(p(neg), "T - 1");
}

Test(dim, limits_are_reported) {
  Dim t3 = mul(mul(dim_sym(T), dim_sym(T)), dim_sym(T));
  Dim r;
  cr_assert(!dim_mul(t3, dim_sym(B), &r)); /* 4 factors */
  Dim big = dim_const(INT64_MAX);
  cr_assert(!dim_add(big, dim_const(1), &r));
  cr_assert(!dim_mul(big, dim_const(2), &r));
  int s[5];
  for (int i = 0; i < 5; i++) {
    char name[16];
    snprintf(name, sizeof name, "S%d", i);
    s[i] = ir_symbol(m, name);
  }
  Dim acc = dim_const(0);
  for (int i = 0; i < 4; i++)
    acc = add(acc, dim_sym(s[i]));
  cr_assert(!dim_add(acc, dim_sym(s[4]), &r)); /* 5 terms */
}

Test(dim, exact_division) {
  Dim q;
  cr_assert(dim_div_exact(mul(dim_const(6), dim_sym(T)), dim_const(3), &q));
  cr_assert_str_eq(p(q), "2*T");
  cr_assert(dim_div_exact(mul(dim_sym(B), dim_sym(T)), dim_sym(T), &q));
  cr_assert_str_eq(p(q), "B");
  cr_assert(dim_div_exact(dim_const(12), dim_const(4), &q));
  cr_assert_str_eq(p(q), "3");
  cr_assert(!dim_div_exact(dim_const(12), dim_const(5), &q));
  cr_assert(!dim_div_exact(dim_sym(T), dim_const(2), &q));
  cr_assert(!dim_div_exact(dim_sym(T), dim_sym(B), &q));
  cr_assert(!dim_div_exact(dim_sym(T), dim_const(0), &q));
  Dim t1 = add(dim_sym(T), dim_const(1));
  cr_assert(dim_div_exact(mul(t1, t1), t1, &q));
  cr_assert(dim_eq(q, t1));
  cr_assert(dim_div_exact(mul(t1, dim_const(2)), t1, &q));
  cr_assert_str_eq(p(q), "2");
  cr_assert(
      !dim_div_exact(add(mul(dim_sym(T), dim_sym(T)), dim_const(1)), t1, &q));
  cr_assert(dim_div_exact(dim_const(0), dim_sym(T), &q));
  cr_assert(dim_eq(q, dim_const(0)));
}

Test(dim, slice_bounds_proved) {
  Dim t = dim_sym(T), c0 = dim_const(0), c1 = dim_const(1);
  Dim tm1;
  cr_assert(dim_sub(t, c1, &tm1));
  /* x[:T], x[1:] of [T], x[::-1] of [T], constants in bounds */
  cr_assert(slice_axis_in_bounds(c0, 1, t, t));
  cr_assert(slice_axis_in_bounds(c1, 1, tm1, t));
  cr_assert(slice_axis_in_bounds(tm1, -1, t, t));
  cr_assert(slice_axis_in_bounds(dim_const(2), 3, dim_const(3), dim_const(9)));
  /* may read past the end or before the start: checked at run time */
  cr_assert_not(slice_axis_in_bounds(c0, 1, dim_const(1), t)); /* x[:, 0] */
  cr_assert_not(slice_axis_in_bounds(c1, 1, t, t));
  cr_assert_not(slice_axis_in_bounds(c0, 2, t, t));
  cr_assert_not(slice_axis_in_bounds(t, -1, t, t));
  cr_assert_not(slice_axis_in_bounds(c0, 1, dim_sym(B), t));
  cr_assert_not(
      slice_axis_in_bounds(dim_const(7), 3, dim_const(3), dim_const(9)));
}

Test(dim, eval_and_substitute) {
  Dim d = add(mul(dim_sym(B), dim_sym(T)), dim_const(3));
  int64_t vals[2] = {0};
  vals[T] = 5;
  vals[B] = 2;
  cr_assert_eq(dim_eval(d, vals), 13);
  bool bound[MAX_SYMBOLS] = {0};
  int64_t value[MAX_SYMBOLS] = {0};
  bound[T] = true;
  value[T] = 4;
  Dim s = dim_substitute(d, bound, value);
  cr_assert_str_eq(p(s), "4*B + 3");
  bound[B] = true;
  value[B] = 2;
  int64_t c;
  cr_assert(dim_is_const(dim_substitute(d, bound, value), &c));
  cr_assert_eq(c, 11);
}

Test(dim, shapes_and_types) {
  Shape s = shape_scalar();
  cr_assert_eq(s.rank, 0);
  char buf[64];
  shape_print(buf, sizeof buf, &s, m);
  cr_assert_str_eq(buf, "[]");
  s.rank = 2;
  s.dims[0] = dim_sym(T);
  s.dims[1] = dim_const(768);
  shape_print(buf, sizeof buf, &s, m);
  cr_assert_str_eq(buf, "[T, 768]");
  cr_assert(!shape_is_const(&s));
  cr_assert_str_eq(p(shape_numel(&s)), "768*T");
  Type t = {DT_F32, s};
  type_print(buf, sizeof buf, &t, m);
  cr_assert_str_eq(buf, "f32[T, 768]");
  Type u = t;
  cr_assert(type_eq(&t, &u));
  u.dtype = DT_I32;
  cr_assert(!type_eq(&t, &u));
  /* snprintf semantics: the full length is returned when truncated */
  char small[4];
  int n = type_print(small, sizeof small, &t, m);
  cr_assert_eq(n, (int)strlen("f32[T, 768]"));
  cr_assert_str_eq(small, "f32");
  int64_t numel;
  s.dims[0] = dim_const(3);
  cr_assert(shape_const_numel(&s, &numel));
  cr_assert_eq(numel, 3 * 768);
}

Test(dim, dtypes) {
  DType t;
  for (int i = 0; i < DT_COUNT; i++) {
    cr_assert(dtype_from_name(dtype_name((DType)i), &t));
    cr_assert_eq(t, (DType)i);
  }
  cr_assert(!dtype_from_name("f8", &t));
  cr_assert_eq(dtype_size(DT_F32), 4);
  cr_assert_eq(dtype_size(DT_BOOL), 1);
  cr_assert_eq(dtype_size(DT_I64), 8);
  cr_assert(dtype_is_float(DT_F64));
  cr_assert(!dtype_is_float(DT_I32));
  cr_assert(dtype_is_int(DT_I64));
  cr_assert(!dtype_is_int(DT_BOOL));
  OpKind k;
  cr_assert(ir_op_from_name("matmul", &k));
  cr_assert_eq(k, OP_MATMUL);
  cr_assert(!ir_op_from_name("nope", &k));
  cr_assert_str_eq(ir_op_info[OP_REDUCE_SUM].name, "reduce_sum");
  cr_assert_eq(ir_op_info[OP_CONCAT].noperands, -1);
}
