/* IR core: shape rules of every op (with their error messages and notes),
 * construction and editing helpers. The text form: test_ir_text.c. */
#include <criterion/criterion.h>

#include "ir_fixture.h"

TestSuite(shape, .init = setup, .fini = teardown);

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
