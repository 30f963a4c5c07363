/* IR core: shape rules of every op (with their error messages and notes),
 * construction and editing helpers, and the text form (print/read round
 * trip, reader errors, robustness against garbage). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ir.h"
#include "read_file.h"

static Module *m;
static Function *fn;
static Diag d;
static char *dbuf;
static size_t dlen;
static FILE *dout;

static void setup(void) {
  m = ir_module_new("t");
  m->source_file = "m.model";
  ir_symbol(m, "T");
  ir_symbol(m, "B");
  fn = ir_function_new(m, "main", loc_none());
  dout = open_memstream(&dbuf, &dlen);
  diag_init(&d, dout);
}

static void teardown(void) {
  diag_free(&d);
  fclose(dout);
  free(dbuf);
  ir_module_free(m);
}

TestSuite(shape, .init = setup, .fini = teardown);
TestSuite(text, .init = setup, .fini = teardown);

static const char *diag_text(void) {
  fflush(dout);
  return dbuf ? dbuf : "";
}

static Loc L(int line, int col) {
  Loc l = {"m.model", line, col, 0, NULL};
  return l;
}

/* ty(DT_F32, 2, -1, 768): negative dims are symbols -1 = T, -2 = B */
static Type ty(DType t, int rank, ...) {
  Type r;
  memset(&r, 0, sizeof r);
  r.dtype = t;
  r.shape.rank = rank;
  va_list ap;
  va_start(ap, rank);
  for (int i = 0; i < rank; i++) {
    int v = va_arg(ap, int);
    r.shape.dims[i] = v < 0 ? dim_sym(-v - 1) : dim_const(v);
  }
  va_end(ap);
  return r;
}

static Value *input(const char *name, Type t, int line) {
  return ir_add_input(m, fn, name, t, L(line, 7));
}

static Value *op1(OpKind k, Value *a, const Attrs *at, const Type *hint) {
  return ir_build(m, fn->body, k, &a, 1, at, hint, L(20, 5), &d);
}
static Value *op2(OpKind k, Value *a, Value *b, const Attrs *at) {
  Value *ops[2] = {a, b};
  return ir_build(m, fn->body, k, ops, 2, at, NULL, L(20, 5), &d);
}

static const char *tstr(const Value *v) {
  static char buf[4][128];
  static int k;
  char *b = buf[k++ % 4];
  type_print(b, 128, &v->type, m);
  return b;
}

/* ---- elementwise ----------------------------------------------------------
 */

Test(shape, broadcasting) {
  Value *x = input("x", ty(DT_F32, 2, -1, 768), 1);
  Value *b = input("b", ty(DT_F32, 1, 768), 2);
  Value *c = input("c", ty(DT_F32, 2, -1, 1), 3);
  Value *s = input("s", ty(DT_F32, 0), 4);
  cr_assert_str_eq(tstr(op2(OP_ADD, x, b, NULL)), "f32[T, 768]");
  cr_assert_str_eq(tstr(op2(OP_MUL, c, b, NULL)), "f32[T, 768]");
  cr_assert_str_eq(tstr(op2(OP_SUB, s, x, NULL)), "f32[T, 768]");
  cr_assert_str_eq(tstr(op2(OP_LT, x, s, NULL)), "bool[T, 768]");
  cr_assert_str_eq(tstr(op1(OP_TANH, x, NULL, NULL)), "f32[T, 768]");
  cr_assert_eq(d.nerrors, 0);
}

Test(shape, broadcast_error_has_notes) {
  Value *x = input("x", ty(DT_F32, 2, -1, 768), 3);
  Value *w = input("w", ty(DT_F32, 2, -1, 3072), 4);
  Value *h = op1(OP_EXP, w, NULL, NULL); /* defined at 20:5 */
  cr_assert_null(op2(OP_ADD, x, h, NULL));
  const char *t = diag_text();
  cr_assert(strstr(t, "m.model:20:5: error: cannot broadcast shapes "
                      "[T, 768] and [T, 3072]"),
            "%s", t);
  cr_assert(strstr(t, "m.model:3:7: note: [T, 768] comes from here"), "%s", t);
  cr_assert(strstr(t, "m.model:20:5: note: [T, 3072] comes from here"), "%s",
            t);
  cr_assert_eq(d.nerrors, 1);
}

Test(shape, symbolic_dims_do_not_broadcast_with_each_other) {
  Value *x = input("x", ty(DT_F32, 1, -1), 1);
  Value *y = input("y", ty(DT_F32, 1, -2), 2);
  cr_assert_null(op2(OP_ADD, x, y, NULL));
  cr_assert(strstr(diag_text(), "cannot broadcast shapes [T] and [B]"));
}

Test(shape, dtype_errors_name_both) {
  Value *x = input("x", ty(DT_F32, 1, 4), 1);
  Value *i = input("i", ty(DT_I32, 1, 4), 2);
  Value *b = input("b", ty(DT_BOOL, 1, 4), 3);
  cr_assert_null(op2(OP_ADD, x, i, NULL));
  cr_assert(strstr(diag_text(), "operands of add have different dtypes f32 "
                                "and i32"));
  cr_assert_null(op1(OP_EXP, i, NULL, NULL));
  cr_assert(strstr(diag_text(), "exp needs float operands, got i32"));
  cr_assert_null(op1(OP_NOT, x, NULL, NULL));
  cr_assert(strstr(diag_text(), "not needs bool operands, got f32"));
  cr_assert_null(op2(OP_ADD, b, b, NULL));
  cr_assert(strstr(diag_text(), "add needs numeric operands, got bool"));
  cr_assert_str_eq(tstr(op2(OP_EQ, b, b, NULL)), "bool[4]");
  cr_assert_str_eq(tstr(op2(OP_AND, b, b, NULL)), "bool[4]");
  cr_assert_str_eq(tstr(op1(OP_NEG, i, NULL, NULL)), "i32[4]");
  cr_assert_null(op2(OP_POW, i, i, NULL));
}

Test(shape, select) {
  Value *c = input("c", ty(DT_BOOL, 2, -1, 1), 1);
  Value *a = input("a", ty(DT_F32, 1, 8), 2);
  Value *b = input("b", ty(DT_F32, 0), 3);
  Value *ops[3] = {c, a, b};
  Value *r = ir_build(m, fn->body, OP_SELECT, ops, 3, NULL, NULL, L(1, 1), &d);
  cr_assert_str_eq(tstr(r), "f32[T, 8]");
  Value *bad[3] = {a, a, b};
  cr_assert_null(
      ir_build(m, fn->body, OP_SELECT, bad, 3, NULL, NULL, L(1, 1), &d));
  cr_assert(strstr(diag_text(), "select condition must be bool, got f32"));
}

Test(shape, cast_and_operand_counts) {
  Value *x = input("x", ty(DT_F32, 1, -1), 1);
  Type h = ty(DT_I32, 1, -1);
  cr_assert_str_eq(tstr(op1(OP_CAST, x, NULL, &h)), "i32[T]");
  cr_assert_null(op1(OP_CAST, x, NULL, NULL));
  Type wrong = ty(DT_I32, 1, 4);
  cr_assert_null(op1(OP_CAST, x, NULL, &wrong));
  Value *ops[1] = {x};
  cr_assert_null(
      ir_build(m, fn->body, OP_ADD, ops, 1, NULL, NULL, L(1, 1), &d));
  cr_assert(strstr(diag_text(), "add takes 2 operands, got 1"));
}

/* ---- matmul ----------------------------------------------------------------
 */

Test(shape, matmul) {
  Value *x = input("x", ty(DT_F32, 2, -1, 768), 1);
  Value *w = input("w", ty(DT_F32, 2, 768, 3072), 2);
  Value *e = input("e", ty(DT_F32, 2, 50257, 768), 3);
  Value *v = input("v", ty(DT_F32, 1, 768), 4);
  Value *q = input("q", ty(DT_F32, 4, -2, 1, -1, 64), 5);
  Value *k = input("k", ty(DT_F32, 3, 12, -1, 64), 6);
  Attrs none = {0}, tb = {0}, ta = {0};
  tb.matmul.trans_b = true;
  ta.matmul.trans_a = true;
  cr_assert_str_eq(tstr(op2(OP_MATMUL, x, w, &none)), "f32[T, 3072]");
  cr_assert_str_eq(tstr(op2(OP_MATMUL, x, e, &tb)), "f32[T, 50257]");
  cr_assert_str_eq(tstr(op2(OP_MATMUL, w, w, &ta)), "f32[3072, 3072]");
  cr_assert_str_eq(tstr(op2(OP_MATMUL, v, w, &none)), "f32[3072]");
  cr_assert_str_eq(tstr(op2(OP_MATMUL, x, v, &none)), "f32[T]");
  cr_assert_str_eq(tstr(op2(OP_MATMUL, v, v, &none)), "f32[]");
  cr_assert_str_eq(tstr(op2(OP_MATMUL, q, k, &tb)), "f32[B, 12, T, T]");
  cr_assert_eq(d.nerrors, 0);
  cr_assert_null(op2(OP_MATMUL, x, e, &none));
  cr_assert(strstr(diag_text(), "matmul contracts 768 (the last dimension of "
                                "the left operand) with 50257 (the first "
                                "dimension of the right operand): "
                                "[T, 768] and [50257, 768]"),
            "%s", diag_text());
  cr_assert_null(op2(OP_MATMUL, v, v, &tb));
  cr_assert(strstr(diag_text(), "rank >= 2"));
}

/* ---- reductions, softmax, gather -------------------------------------------
 */

Test(shape, reductions) {
  Value *x = input("x", ty(DT_F32, 3, -2, -1, 768), 1);
  Value *i = input("i", ty(DT_I32, 2, 4, 5), 2);
  Attrs a = {0};
  a.reduce.axes = 1u << 2;
  cr_assert_str_eq(tstr(op1(OP_REDUCE_SUM, x, &a, NULL)), "f32[B, T]");
  a.reduce.keepdims = true;
  cr_assert_str_eq(tstr(op1(OP_REDUCE_MEAN, x, &a, NULL)), "f32[B, T, 1]");
  a.reduce.axes = 3;
  cr_assert_str_eq(tstr(op1(OP_REDUCE_MAX, x, &a, NULL)), "f32[1, 1, 768]");
  a.reduce.keepdims = false;
  cr_assert_str_eq(tstr(op1(OP_LOGSUMEXP, x, &a, NULL)), "f32[768]");
  a.reduce.axes = 7;
  cr_assert_str_eq(tstr(op1(OP_REDUCE_MIN, x, &a, NULL)), "f32[]");
  a.reduce.axes = 1u << 1;
  cr_assert_str_eq(tstr(op1(OP_ARGMAX, x, &a, NULL)), "i32[B, 768]");
  cr_assert_str_eq(tstr(op1(OP_ARGMIN, i, &a, NULL)), "i32[4]");
  cr_assert_str_eq(tstr(op1(OP_REDUCE_SUM, i, &a, NULL)), "i32[4]");
  cr_assert_eq(d.nerrors, 0);
  a.reduce.axes = 3;
  cr_assert_null(op1(OP_ARGMAX, x, &a, NULL));
  cr_assert(strstr(diag_text(), "argmax needs exactly one axis"));
  a.reduce.axes = 1u << 3;
  cr_assert_null(op1(OP_REDUCE_SUM, x, &a, NULL));
  cr_assert(strstr(diag_text(), "reduce_sum axes out of range for rank 3"));
  a.reduce.axes = 1;
  cr_assert_null(op1(OP_REDUCE_MEAN, i, &a, NULL));
}

Test(shape, softmax_and_gather) {
  Value *x = input("x", ty(DT_F32, 2, -1, 768), 1);
  Value *e = input("e", ty(DT_F32, 2, 50257, 768), 2);
  Value *tok = input("tok", ty(DT_I32, 2, -2, -1), 3);
  Value *f = input("f", ty(DT_F32, 1, -1), 4);
  Attrs a = {0};
  a.axis.axis = 1;
  cr_assert_str_eq(tstr(op1(OP_SOFTMAX, x, &a, NULL)), "f32[T, 768]");
  cr_assert_str_eq(tstr(op1(OP_LOG_SOFTMAX, x, &a, NULL)), "f32[T, 768]");
  cr_assert_str_eq(tstr(op2(OP_GATHER, e, tok, &a)), "f32[50257, B, T]");
  a.axis.axis = 0;
  cr_assert_str_eq(tstr(op2(OP_GATHER, e, tok, &a)), "f32[B, T, 768]");
  cr_assert_eq(d.nerrors, 0);
  cr_assert_null(op2(OP_GATHER, e, f, &a));
  cr_assert(strstr(diag_text(), "gather indices must be i32 or i64, got f32"));
  a.axis.axis = 2;
  cr_assert_null(op1(OP_SOFTMAX, x, &a, NULL));
  cr_assert_null(op2(OP_GATHER, e, tok, &a));
}

/* ---- data movement ----------------------------------------------------------
 */

Test(shape, slice) {
  Value *w = input("w", ty(DT_F32, 2, 1024, 768), 1);
  Attrs a = {0};
  a.slice.start[0] = dim_const(0);
  a.slice.step[0] = 1;
  a.slice.step[1] = 1;
  Type h = ty(DT_F32, 2, -1, 768);
  cr_assert_str_eq(tstr(op1(OP_SLICE, w, &a, &h)), "f32[T, 768]");
  a.slice.step[1] = 2;
  Type h2 = ty(DT_F32, 2, 4, 384);
  cr_assert_str_eq(tstr(op1(OP_SLICE, w, &a, &h2)), "f32[4, 384]");
  cr_assert_eq(d.nerrors, 0);
  Type h3 = ty(DT_F32, 2, 4, 385);
  cr_assert_null(op1(OP_SLICE, w, &a, &h3));
  cr_assert(strstr(diag_text(), "slice of axis 1 reads index 768 outside "
                                "[0, 768)"),
            "%s", diag_text());
  a.slice.step[1] = 0;
  cr_assert_null(op1(OP_SLICE, w, &a, &h2));
  a.slice.step[1] = 1;
  Type h4 = ty(DT_F32, 1, 4);
  cr_assert_null(op1(OP_SLICE, w, &a, &h4));
  Type h5 = ty(DT_I32, 2, 4, 4);
  cr_assert_null(op1(OP_SLICE, w, &a, &h5));
  cr_assert(strstr(diag_text(), "slice result dtype i32 differs from operand "
                                "dtype f32"));
}

Test(shape, reshape_permute_broadcast) {
  Value *x = input("x", ty(DT_F32, 3, -2, -1, 768), 1);
  Type h = ty(DT_F32, 4, -2, -1, 12, 64);
  Value *r = op1(OP_RESHAPE, x, NULL, &h);
  cr_assert_str_eq(tstr(r), "f32[B, T, 12, 64]");
  Type flat = ty(DT_F32, 1, 768);
  flat.shape.dims[0] = shape_numel(&x->type.shape);
  cr_assert_str_eq(tstr(op1(OP_RESHAPE, x, NULL, &flat)), "f32[768*T*B]");
  Attrs p = {0};
  int perm[4] = {0, 2, 1, 3};
  memcpy(p.perm.perm, perm, sizeof perm);
  cr_assert_str_eq(tstr(op1(OP_PERMUTE, r, &p, NULL)), "f32[B, 12, T, 64]");
  Value *v = input("v", ty(DT_F32, 2, 1, 768), 2);
  Type bh = ty(DT_F32, 3, -2, -1, 768);
  cr_assert_str_eq(tstr(op1(OP_BROADCAST, v, NULL, &bh)), "f32[B, T, 768]");
  cr_assert_eq(d.nerrors, 0);
  Type bad = ty(DT_F32, 2, -1, 769);
  cr_assert_null(op1(OP_RESHAPE, x, NULL, &bad));
  cr_assert(strstr(diag_text(), "cannot reshape [B, T, 768] (768*T*B "
                                "elements) to [T, 769] (769*T elements)"),
            "%s", diag_text());
  Type bb = ty(DT_F32, 2, -1, 3);
  cr_assert_null(op1(OP_BROADCAST, v, NULL, &bb));
  cr_assert(strstr(diag_text(), "cannot broadcast shape [1, 768] and [T, 3]"));
  p.perm.perm[1] = 1;
  cr_assert_null(op1(OP_PERMUTE, r, &p, NULL));
  cr_assert(strstr(diag_text(), "not a permutation"));
}

Test(shape, concat) {
  Value *a = input("a", ty(DT_F32, 2, -1, 64), 1);
  Value *b = input("b", ty(DT_F32, 2, 1, 64), 2);
  Value *c = input("c", ty(DT_F32, 2, -1, 32), 3);
  Attrs ax = {0};
  Value *ops[3] = {a, b, a};
  Value *r = ir_build(m, fn->body, OP_CONCAT, ops, 3, &ax, NULL, L(1, 1), &d);
  cr_assert_str_eq(tstr(r), "f32[2*T + 1, 64]");
  ax.axis.axis = 1;
  Value *ops2[2] = {a, c};
  r = ir_build(m, fn->body, OP_CONCAT, ops2, 2, &ax, NULL, L(1, 1), &d);
  cr_assert_str_eq(tstr(r), "f32[T, 96]");
  cr_assert_null(
      ir_build(m, fn->body, OP_CONCAT, ops, 2, &ax, NULL, L(1, 1), &d));
  cr_assert(strstr(diag_text(), "cannot concatenate shapes [T, 64] and "
                                "[1, 64]"));
  cr_assert_null(
      ir_build(m, fn->body, OP_CONCAT, ops, 0, &ax, NULL, L(1, 1), &d));
}

Test(shape, leaves) {
  Type pt = ty(DT_F32, 2, 4, 8);
  int pi = ir_add_param(m, "w", pt, L(2, 1), &d);
  cr_assert_eq(pi, 0);
  cr_assert_eq(ir_add_param(m, "w", pt, L(3, 1), &d), 0);
  Type other = ty(DT_F32, 1, 4);
  cr_assert_eq(ir_add_param(m, "w", other, L(4, 1), &d), -1);
  cr_assert(strstr(diag_text(), "m.model:4:1: error: parameter \"w\" declared "
                                "as f32[4], but earlier as f32[4, 8]"),
            "%s", diag_text());
  cr_assert(strstr(diag_text(), "m.model:2:1: note:"));
  Attrs a = {0};
  a.param.index = 0;
  Value *p = ir_build(m, fn->body, OP_PARAM, NULL, 0, &a, NULL, L(1, 1), &d);
  cr_assert_str_eq(tstr(p), "f32[4, 8]");
  a.param.index = 3;
  cr_assert_null(
      ir_build(m, fn->body, OP_PARAM, NULL, 0, &a, NULL, L(1, 1), &d));
  Type it = ty(DT_I32, 2, -1, -1);
  a.axis.axis = 1;
  Value *io = ir_build(m, fn->body, OP_IOTA, NULL, 0, &a, &it, L(1, 1), &d);
  cr_assert_str_eq(tstr(io), "i32[T, T]");
  Value *c = ir_const_scalar(m, fn->body, DT_F32, 0.5, L(1, 1));
  cr_assert_str_eq(tstr(c), "f32[]");
  cr_assert_eq(*(float *)c->def->attrs.cst.data, 0.5f);
  Type sym = ty(DT_F32, 1, -1);
  a.cst.data = &(float){1};
  cr_assert_null(
      ir_build(m, fn->body, OP_CONST, NULL, 0, &a, &sym, L(1, 1), &d));
  cr_assert(strstr(diag_text(), "const needs a constant shape"));
}

/* ---- editing ---------------------------------------------------------------
 */

Test(shape, uses_and_editing) {
  Value *x = input("x", ty(DT_F32, 1, 4), 1);
  Value *a = op1(OP_EXP, x, NULL, NULL);
  Value *b = op1(OP_EXP, x, NULL, NULL);
  Value *s = op2(OP_ADD, a, b, NULL);
  ir_add_output(m, fn, "y", s, L(9, 1));
  cr_assert_eq(x->nuses, 2);
  cr_assert_eq(s->nuses, 1);
  ir_replace_uses(m, b, a);
  cr_assert_eq(a->nuses, 2);
  cr_assert_eq(b->nuses, 0);
  ir_op_remove(b->def);
  cr_assert_eq(x->nuses, 1);
  cr_assert_eq(fn->body->first, a->def);
  cr_assert_eq(a->def->next, s->def);
  ir_op_move_before(s->def, a->def);
  cr_assert_eq(fn->body->first, s->def);
  cr_assert_eq(fn->body->last, a->def);
  ir_op_move_before(s->def, fn->body->last);
  ir_op_move_before(a->def, s->def);
  x->nuses = 42;
  ir_recount_uses(m);
  cr_assert_eq(x->nuses, 1);
  cr_assert_eq(s->nuses, 1);
  cr_assert_eq(ir_find_function(m, "main"), fn);
  cr_assert_null(ir_find_function(m, "other"));
}

/* ---- text form ------------------------------------------------------------
 */

static const char sample[] =
    "module @gpt2 file \"models/gpt2.model\"\n"
    "symbols T, B\n"
    "const n_layer = 2\n"
    "const eps = 1e-05 : f64\n"
    "param \"wte.weight\" : f32[16, 8] @3:1\n"
    "func @main(%tokens: i32[T] @12:7, %pad: bool[B, T] = -inf @13:7) "
    "@\"other.model\":1:1 {\n"
    "  %0 = param 0 : f32[16, 8] @20:5\n"
    "  %h = gather %0, %tokens {axis = 0} : f32[T, 8] @20:5 \"block\"\n"
    "  %1 = const [0.5] : f32[]\n"
    "  %c = const [0x1p-140, -0, 0.1, inf, 3.4028235e+38] : f32[5]\n"
    "  %s = const [7] : i64[2, 2]\n"
    "  %2 = matmul %h, %0 {trans_b} : f32[T, 16] @31:10\n"
    "  %3 = reduce_sum %2 {axes = [1], keepdims} : f32[T, 1]\n"
    "  %4 = slice %0 {start = [0, 0], step = [1, 2]} : f32[T, 4]\n"
    "  %5 = mul %h, %1 : f32[T, 8]\n"
    "  %6 = concat %h, %h {axis = 0} : f32[2*T, 8]\n"
    "  %7 = permute %6 {perm = [1, 0]} : f32[8, 2*T]\n"
    "  %8 = iota {axis = 0} : i32[T]\n"
    "  return logits = %2 @31:1, y = %3, \"odd name\" = %5\n"
    "}\n";

Test(text, sample_prints_as_written) {
  Module *r = ir_read(sample, "s.ir", &d);
  cr_assert_not_null(r, "%s", diag_text());
  char *out = ir_print_to_string(r);
  cr_assert_str_eq(out, sample);
  Function *f = r->functions;
  cr_assert(f->inputs[1].has_default);
  cr_assert(f->inputs[1].default_value < -1e300);
  cr_assert_str_eq(f->body->first->next->loc.scope, "block");
  cr_assert_str_eq(f->loc.file, "other.model");
  cr_assert_str_eq(f->body->first->loc.file, "models/gpt2.model");
  cr_assert_eq(f->outputs[0].value->nuses, 2);
  free(out);
  ir_module_free(r);
}

/* Unnamed values print as numbers counted per function, so printing is
 * stable however ids were assigned; duplicate names fall back to numbers. */
Test(text, names_and_numbers) {
  Value *x = input("x", ty(DT_F32, 1, 4), 1);
  Value *a = op1(OP_EXP, x, NULL, NULL);
  a->name = "h";
  Value *b = op1(OP_EXP, a, NULL, NULL);
  b->name = "h";
  Value *c = op1(OP_EXP, b, NULL, NULL);
  c->name = "x"; /* collides with the input */
  Value *e = op1(OP_EXP, c, NULL, NULL);
  e->name = "ok";
  ir_add_output(m, fn, "y", e, loc_none());
  char *out = ir_print_to_string(m);
  cr_assert(strstr(out, "func @main(%x: f32[4] @1:7) {\n"
                        "  %0 = exp %x : f32[4] @20:5\n"
                        "  %1 = exp %0 : f32[4] @20:5\n"
                        "  %2 = exp %1 : f32[4] @20:5\n"
                        "  %ok = exp %2 : f32[4] @20:5\n"
                        "  return y = %ok\n}\n"),
            "%s", out);
  free(out);
}

static void roundtrip(Module *src) {
  char *a = ir_print_to_string(src);
  Module *r = ir_read(a, "rt.ir", &d);
  cr_assert_not_null(r, "%s\n%s", diag_text(), a);
  char *b = ir_print_to_string(r);
  cr_assert_str_eq(a, b);
  free(a);
  free(b);
  ir_module_free(r);
}

Test(text, every_op_round_trips) {
  Value *x = input("x", ty(DT_F32, 2, -1, 8), 1);
  Value *bo = input("mask", ty(DT_BOOL, 2, -1, 8), 2);
  Value *ix = input("ix", ty(DT_I64, 1, 3), 3);
  Value *ix2 = input("ix2", ty(DT_I32, 2, -1, 3), 4);
  Value *seed = input("seed", ty(DT_I64, 0), 5);
  Value *u = input("u", ty(DT_F32, 1, -1), 6);
  Attrs a;
  for (int k = 0; k < OP_COUNT; k++) {
    memset(&a, 0, sizeof a);
    unsigned fl = ir_op_info[k].flags;
    Value *v = (fl & OPF_LOGICAL) ? bo : x, *r = NULL;
    Value *ops[3] = {v, v, v};
    Type h = x->type;
    switch (k) { /* an int: the default covers elementwise ops */
    case OP_CONST:
      r = ir_const_scalar(m, fn->body, DT_I32, -7, L(1, 1));
      break;
    case OP_PARAM:
      ir_add_param(m, "w", ty(DT_F32, 2, 8, 8), L(1, 1), &d);
      r = ir_build(m, fn->body, OP_PARAM, NULL, 0, &a, NULL, L(1, 1), &d);
      break;
    case OP_IOTA:
      h.dtype = DT_I64;
      r = ir_build(m, fn->body, OP_IOTA, NULL, 0, &a, &h, L(1, 1), &d);
      break;
    case OP_SELECT:
      ops[0] = bo;
      r = ir_build(m, fn->body, OP_SELECT, ops, 3, &a, NULL, L(1, 1), &d);
      break;
    case OP_GATHER:
      ops[1] = ix;
      a.axis.axis = 1;
      r = ir_build(m, fn->body, OP_GATHER, ops, 2, &a, NULL, L(1, 1), &d);
      break;
    case OP_SCATTER_ADD: /* the gradient of the gather above */
      ops[1] = ix;
      a.axis.axis = 1;
      ops[0] = ir_build(m, fn->body, OP_GATHER, ops, 2, &a, NULL, L(1, 1), &d);
      r = ir_build(m, fn->body, OP_SCATTER_ADD, ops, 2, &a, &h, L(1, 1), &d);
      break;
    case OP_MATMUL:
      a.matmul.trans_b = true;
      r = ir_build(m, fn->body, OP_MATMUL, ops, 2, &a, NULL, L(1, 1), &d);
      break;
    case OP_GRAD:
      a.reduce.axes = 3;
      ops[0] = op1(OP_REDUCE_SUM, x, &a, NULL);
      r = ir_build(m, fn->body, OP_GRAD, ops, 2, NULL, NULL, L(1, 1), &d);
      break;
    case OP_SLICE:
      a.slice.start[0] = dim_const(0);
      a.slice.start[1] = dim_const(1);
      a.slice.step[0] = 1;
      a.slice.step[1] = 3;
      h.shape.dims[1] = dim_const(3);
      r = op1(OP_SLICE, x, &a, &h);
      break;
    case OP_PERMUTE:
      a.perm.perm[0] = 1;
      r = op1(OP_PERMUTE, x, &a, NULL);
      break;
    case OP_RESHAPE:
      h.shape.rank = 3;
      h.shape.dims[1] = dim_const(2);
      h.shape.dims[2] = dim_const(4);
      r = op1(OP_RESHAPE, x, &a, &h);
      break;
    case OP_BROADCAST:
      h.shape.rank = 3;
      h.shape.dims[0] = dim_sym(1);
      h.shape.dims[1] = dim_sym(0);
      h.shape.dims[2] = dim_const(8);
      r = op1(OP_BROADCAST, x, &a, &h);
      break;
    case OP_CAST:
      h.dtype = DT_F64;
      r = op1(OP_CAST, x, &a, &h);
      break;
    case OP_REDUCE_SUM:
    case OP_REDUCE_MEAN:
    case OP_REDUCE_MAX:
    case OP_REDUCE_MIN:
    case OP_LOGSUMEXP:
    case OP_ARGMAX:
    case OP_ARGMIN:
      a.reduce.axes = 2;
      a.reduce.keepdims = k % 2;
      r = op1((OpKind)k, x, &a, NULL);
      break;
    case OP_CONCAT:
      a.axis.axis = 1;
      r = ir_build(m, fn->body, OP_CONCAT, ops, 3, &a, NULL, L(1, 1), &d);
      break;
    case OP_SOFTMAX:
    case OP_LOG_SOFTMAX:
      a.axis.axis = 1;
      r = op1((OpKind)k, x, &a, NULL);
      break;
    case OP_SCAN: { /* with its yield: cumulative sums over axis 0 of x */
      a.scan.ncarry = 1;
      a.scan.nseq = 1;
      a.scan.length = x->type.shape.dims[0];
      a.scan.reverse = a.scan.with_index = true;
      Value *init = ir_const_scalar(m, fn->body, DT_F32, 0, L(1, 1));
      Value *sops[2] = {init, x};
      Op *s = ir_scan_begin(m, fn->body, sops, 2, &a, NULL, L(1, 1));
      Block *b = s->regions[0];
      Value *bc[2] = {b->args[0], b->args[1]};
      Value *sum = ir_build(m, b, OP_REDUCE_SUM, &bc[1], 1,
                            &(Attrs){.reduce = {1, false}}, NULL, L(1, 1), &d);
      Value *ys[3] = {sum, b->args[1], b->args[2]};
      cr_assert(ir_scan_finish(m, s, ys, 3, L(1, 1), &d), "%s", diag_text());
      r = s->results[1];
      break;
    }
    case OP_FUSED: { /* x * 0.5 + x, one loop */
      Op *f = ir_fused_begin(m, fn->body, (Value *[]){x}, 1, DT_F32, L(1, 1));
      Block *b = f->regions[0];
      Value *half = ir_const_scalar(m, b, DT_F32, 0.5, L(1, 1));
      Value *p = ir_build(m, b, OP_MUL, (Value *[]){b->args[0], half}, 2, NULL,
                          NULL, L(1, 1), &d);
      Value *s = ir_build(m, b, OP_ADD, (Value *[]){p, b->args[0]}, 2, NULL,
                          NULL, L(1, 1), &d);
      ir_fused_finish(m, f, s, L(1, 1));
      f->results[0]->type = x->type;
      r = f->results[0];
      break;
    }
    case OP_DYNAMIC_SLICE:
    case OP_DYNAMIC_UPDATE_SLICE: {
      Value *z = ir_const_scalar(m, fn->body, DT_I32, 0, L(1, 1));
      Value *dops[4] = {x, x, z, z};
      h.shape.dims[0] = dim_const(1);
      h.shape.dims[1] = dim_const(4);
      r = k == OP_DYNAMIC_SLICE
              ? ir_build(m, fn->body, OP_DYNAMIC_SLICE, (Value *[]){x, z, z}, 3,
                         &a, &h, L(1, 1), &d)
              : ir_build(m, fn->body, OP_DYNAMIC_UPDATE_SLICE, dops, 4, &a,
                         NULL, L(1, 1), &d);
      break;
    }
    case OP_TAKE_ALONG_AXIS:
      a.axis.axis = 1;
      r = op2(OP_TAKE_ALONG_AXIS, x, ix2, &a);
      break;
    case OP_TOPK:
      a.axis.axis = 1;
      h.dtype = DT_I32;
      h.shape.dims[1] = dim_const(3);
      r = op1(OP_TOPK, x, &a, &h);
      break;
    case OP_CUMSUM:
      a.axis.axis = 1;
      r = op1(OP_CUMSUM, x, &a, NULL);
      break;
    case OP_RANDOM_UNIFORM:
      r = op1(OP_RANDOM_UNIFORM, seed, &a, &h);
      break;
    case OP_CATEGORICAL:
      a.axis.axis = 1;
      r = op2(OP_CATEGORICAL, x, u, &a);
      break;
    case OP_YIELD: /* built with the scan */
      continue;
    default:
      r = ir_build(m, fn->body, (OpKind)k, ops, ir_op_info[k].noperands, &a,
                   NULL, L(1, 1), &d);
      break;
    }
    cr_assert_not_null(r, "%s: %s", ir_op_info[k].name, diag_text());
    ir_add_output(m, fn, ir_op_info[k].name, r, loc_none());
  }
  roundtrip(m);
}

Test(text, floats_are_exact) {
  enum { N = 4000 };
  float *f = malloc(N * sizeof(float));
  double *g = malloc(N * sizeof(double));
  uint64_t s = 88172645463325252ull;
  for (int i = 0; i < N; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    uint32_t bits = (uint32_t)s;
    if (i % 4 == 1)
      bits &= 0x807fffffu; /* subnormals */
    memcpy(&f[i], &bits, 4);
    if (f[i] != f[i])
      f[i] = 0.1f;
    memcpy(&g[i], &s, 8);
    if (g[i] != g[i] || i % 5 == 0)
      g[i] = (double)f[i] / 3;
  }
  f[0] = -0.0f;
  g[0] = 1e-320;
  Type tf = ty(DT_F32, 1, N), tg = ty(DT_F64, 1, N);
  Value *cf = ir_const_tensor(m, fn->body, &tf, f, loc_none());
  Value *cg = ir_const_tensor(m, fn->body, &tg, g, loc_none());
  ir_add_output(m, fn, "f", cf, loc_none());
  ir_add_output(m, fn, "g", cg, loc_none());
  char *text = ir_print_to_string(m);
  Module *r = ir_read(text, "f.ir", &d);
  cr_assert_not_null(r, "%s", diag_text());
  Op *a = r->functions->body->first, *b = a->next;
  cr_assert(memcmp(a->attrs.cst.data, f, N * sizeof(float)) == 0);
  cr_assert(memcmp(b->attrs.cst.data, g, N * sizeof(double)) == 0);
  char buf[64];
  ir_format_f32(buf, sizeof buf, 0x1p-140f);
  cr_assert_str_eq(buf, "0x1p-140");
  ir_format_f32(buf, sizeof buf, 0.1f);
  cr_assert_str_eq(buf, "0.1");
  free(text);
  free(f);
  free(g);
  ir_module_free(r);
}

Test(text, reader_errors_are_located) {
  static const struct {
    const char *text, *error;
  } cases[] = {
      {"module\nfunc @f() {\n  %0 = frob : f32[]\n  return\n}",
       "e.ir:3:8: error: unknown op 'frob'"},
      {"module\nfunc @f() {\n  %0 = exp %x : f32[]\n  return\n}",
       "e.ir:3:12: error: unknown value %x"},
      {"module\nfunc @f(%x: f33[2]) {\n  return\n}",
       "e.ir:2:13: error: expected a type such as f32[T, 768], found 'f33'"},
      {"module\nfunc @f(%x: f32[2]) {\n  %0 = add %x : f32[2]\n  return\n}",
       "e.ir:3:8: error: add takes 2 operands, got 1"},
      {"module\nfunc @f(%x: f32[2]) {\n  %x = neg %x : f32[2]\n  return\n}",
       "e.ir:3:3: error: value %x is defined twice"},
      {"module\nfunc @f() {\n  %0 = param 0 : f32[2]\n  return\n}",
       "error: param index 0 out of range (0 params)"},
      {"module\nfunc @f() {\n  %0 = const [1, 2] : f32[3]\n  return\n}",
       "error: const has 2 elements, its type needs 3"},
      {"module\nfunc @f() {\n  %0 = const [1.5] : i32[]\n  return\n}",
       "error: bad i32 constant '1.5'"},
      {"module @\"abc", "e.ir:1:9: error: unterminated string"},
      {"module\n$", "e.ir:2:1: error: unexpected character '$'"},
      {"modle", "e.ir:1:1: error: expected 'module', found 'modle'"},
      {"module\nfunc @f() {\n  %0 = neg : f32[2] {axis = 1}\n",
       "error: neg takes 1 operands, got 0"},
      {"module\nfunc @f(%x: f32[2]) {\n  %0 = reduce_sum %x {axis = 0} : "
       "f32[]\n  return\n}",
       "error: unknown attribute 'axis' for reduce_sum"},
      {"module\nfunc @f() {\n  return y = %0\n}", "unknown value %0"},
      {"module\nfunc @f() {\n", "expected an op or 'return', found end"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    fflush(dout);
    size_t before = dlen;
    Module *r = ir_read(cases[i].text, "e.ir", &d);
    cr_assert_null(r, "case %zu parsed", i);
    fflush(dout);
    cr_assert(strstr(dbuf + before, cases[i].error), "case %zu: got %s", i,
              dbuf + before);
  }
}

/* Random mutations of valid text must never crash the reader or the
 * printer (run under ASan in the sanitizer build). */
Test(text, garbage_never_crashes) {
  size_t n = strlen(sample);
  char *buf = malloc(n + 64);
  uint64_t s = 12345;
  static const char alphabet[] = "%@[]{}(),:=*+-\"0123456789.pxTf32 \n/";
  for (int iter = 0; iter < 3000; iter++) {
    memcpy(buf, sample, n + 1);
    size_t len = n;
    for (int k = 0; k < 1 + iter % 4; k++) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      size_t pos = (size_t)(s >> 8) % len;
      switch ((s >> 40) % 4) {
      case 0:
        buf[pos] = alphabet[(s >> 20) % (sizeof alphabet - 1)];
        break;
      case 1:
        memmove(buf + pos, buf + pos + 1, len - pos);
        len--;
        break;
      case 2:
        buf[pos] = 0;
        len = pos;
        break;
      default:
        buf[pos] = (char)(s >> 48);
        break;
      }
      if (len == 0)
        break;
    }
    buf[len] = 0;
    Module *r = ir_read(buf, "g.ir", &d);
    if (r) {
      char *out = ir_print_to_string(r);
      free(out);
      ir_module_free(r);
    }
  }
  free(buf);
}

/* ---- whole files ---- */

Test(read_file, reads_everything_up_to_the_limit) {
  char path[] = "/tmp/mc_test_read_XXXXXX";
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  FILE *f = fdopen(fd, "w");
  for (int i = 0; i < 5000; i++) /* past the first buffer */
    fputc('a' + i % 26, f);
  fclose(f);
  size_t len = 0;
  char *text = read_path(path, SIZE_MAX, &len);
  cr_assert_not_null(text);
  cr_assert_eq(len, 5000);
  cr_assert_eq(text[4999], 'a' + 4999 % 26);
  cr_assert_eq(text[5000], 0);
  free(text);
  text = read_path(path, 100, &len); /* stops early, says so */
  cr_assert_not_null(text);
  cr_assert(len > 100 && len <= 5000);
  free(text);
  f = fopen(path, "w");
  fclose(f);
  text = read_path(path, SIZE_MAX, &len);
  cr_assert_not_null(text);
  cr_assert_eq(len, 0);
  cr_assert_str_eq(text, "");
  free(text);
  unlink(path);
  errno = 0;
  cr_assert_null(read_path(path, SIZE_MAX, &len));
  cr_assert_eq(errno, ENOENT);
  errno = 0;
  cr_assert_null(read_path("/tmp", SIZE_MAX, &len));
  cr_assert_eq(errno, EISDIR);
}
