/* Shape and dtype rules: ir_infer_type computes an op's result type from its
 * operands, attributes and (for ops whose result the operands do not
 * determine) a declared hint type, and reports located errors otherwise.
 *
 * Rules (one per op family, stated next to the code):
 *  - elementwise: numpy broadcasting; two dims broadcast when equal
 *    (symbolically) or when one is the constant 1;
 *  - matmul [..., M, K] x [..., K, N] -> [..., M, N], numpy rank-1 rules,
 *    batch dims broadcast, trans flags swap an operand's last two axes;
 *  - reductions drop (or keep as 1) the reduced axes; argmax/argmin -> i32;
 *  - gather: table[:axis] ++ indices ++ table[axis+1:];
 *  - const/iota/cast/reshape/broadcast/slice take the hint and check it;
 *  - decoding ops (dynamic slices, take_along_axis, topk, cumsum,
 *    random_uniform, categorical): see infer_decode below.
 * Errors name shapes with shape_print and add a note at each operand's
 * source location ("[T, 768] comes from here").
 */
#include <stdio.h>
#include <string.h>

#include "ir.h"

typedef struct Ctx {
  const Module *m;
  OpKind kind;
  Value *const *ops;
  int nops;
  Loc loc;
  Diag *d;
} Ctx;

static const char *opname(const Ctx *c) {
  return ir_op_info[c->kind].name;
}

/* The location that best explains where a value came from. */
static bool value_loc(const Module *m, const Value *v, Loc *out) {
  if (v->def) {
    *out = v->def->loc;
    return v->def->loc.line > 0;
  }
  for (const Function *f = m->functions; f; f = f->next) {
    for (int i = 0; i < f->ninputs; i++) {
      if (f->inputs[i].value == v) {
        *out = f->inputs[i].loc;
        return out->line > 0;
      }
    }
  }
  return false;
}

static void note_operand(const Ctx *c, const Value *v) {
  Loc l;
  if (!c->d || !v || !value_loc(c->m, v, &l))
    return;
  char s[256];
  shape_print(s, sizeof s, &v->type.shape, c->m);
  diag_note(c->d, l, "%s comes from here", s);
}

static void note_all(const Ctx *c) {
  for (int i = 0; i < c->nops; i++) {
    bool seen = false; /* one note per distinct operand */
    for (int j = 0; j < i; j++)
      seen |= c->ops[j] == c->ops[i];
    if (!seen)
      note_operand(c, c->ops[i]);
  }
}

#define FAIL(...)                                                              \
  do {                                                                         \
    if (c->d)                                                                  \
      diag_error(c->d, c->loc, __VA_ARGS__);                                   \
    return false;                                                              \
  } while (0)

static bool fail_shapes(const Ctx *c, const char *what, const Shape *a,
                        const Shape *b) {
  char sa[256], sb[256];
  shape_print(sa, sizeof sa, a, c->m);
  shape_print(sb, sizeof sb, b, c->m);
  if (c->d) {
    diag_error(c->d, c->loc, "%s %s and %s", what, sa, sb);
    note_all(c);
  }
  return false;
}

/* Numpy broadcasting of two shapes into out. */
static bool broadcast2(const Shape *a, const Shape *b, Shape *out) {
  Shape r;
  memset(&r, 0, sizeof r);
  r.rank = a->rank > b->rank ? a->rank : b->rank;
  for (int i = 0; i < r.rank; i++) {
    int ia = a->rank - r.rank + i, ib = b->rank - r.rank + i;
    Dim one = dim_const(1);
    Dim da = ia >= 0 ? a->dims[ia] : one;
    Dim db = ib >= 0 ? b->dims[ib] : one;
    if (dim_eq(da, db) || dim_eq(db, one))
      r.dims[i] = da;
    else if (dim_eq(da, one))
      r.dims[i] = db;
    else
      return false;
  }
  *out = r;
  return true;
}

static bool broadcast_all(const Ctx *c, int first, Shape *out) {
  Shape acc = c->ops[first]->type.shape;
  for (int i = first + 1; i < c->nops; i++) {
    Shape next;
    if (!broadcast2(&acc, &c->ops[i]->type.shape, &next))
      return fail_shapes(c, "cannot broadcast shapes", &acc,
                         &c->ops[i]->type.shape);
    acc = next;
  }
  *out = acc;
  return true;
}

static bool same_dtypes(const Ctx *c, int first) {
  for (int i = first + 1; i < c->nops; i++) {
    DType a = c->ops[first]->type.dtype, b = c->ops[i]->type.dtype;
    if (a != b) {
      if (c->d) {
        diag_error(c->d, c->loc,
                   "operands of %s have different dtypes %s and %s", opname(c),
                   dtype_name(a), dtype_name(b));
        note_all(c);
      }
      return false;
    }
  }
  return true;
}

/* The dtype class the op's flags require of its operands. */
static bool check_dtype_class(const Ctx *c, DType t) {
  unsigned f = ir_op_info[c->kind].flags;
  if ((f & OPF_FLOAT) && !dtype_is_float(t))
    FAIL("%s needs float operands, got %s", opname(c), dtype_name(t));
  if ((f & OPF_LOGICAL) && t != DT_BOOL)
    FAIL("%s needs bool operands, got %s", opname(c), dtype_name(t));
  bool eq = c->kind == OP_EQ || c->kind == OP_NE; /* bool == bool is fine */
  if ((f & (OPF_NUMERIC | OPF_COMPARE)) && t == DT_BOOL && !eq)
    FAIL("%s needs numeric operands, got %s", opname(c), dtype_name(t));
  return true;
}

static bool need_hint(const Ctx *c, const Type *hint) {
  if (!hint)
    FAIL("%s needs a declared result type", opname(c));
  if (hint->shape.rank < 0 || hint->shape.rank > MAX_RANK ||
      (unsigned)hint->dtype >= DT_COUNT)
    FAIL("%s has an invalid result type", opname(c));
  return true;
}

static bool infer_matmul(const Ctx *c, const Attrs *at, Type *out) {
  const Shape *a = &c->ops[0]->type.shape, *b = &c->ops[1]->type.shape;
  if (a->rank < 1 || b->rank < 1)
    FAIL("matmul needs operands of rank >= 1, got rank %d and %d", a->rank,
         b->rank);
  if ((at->matmul.trans_a && a->rank < 2) ||
      (at->matmul.trans_b && b->rank < 2))
    FAIL("matmul transposes need operands of rank >= 2");
  /* Normalize to [..., M, K] x [..., K, N] with 1-sized stand-ins. */
  Shape sa = *a, sb = *b;
  if (sa.rank == 1) {
    sa.rank = 2;
    sa.dims[1] = a->dims[0];
    sa.dims[0] = dim_const(1);
  } else if (at->matmul.trans_a) {
    sa.dims[sa.rank - 1] = a->dims[a->rank - 2];
    sa.dims[sa.rank - 2] = a->dims[a->rank - 1];
  }
  if (sb.rank == 1) {
    sb.rank = 2;
    sb.dims[0] = b->dims[0];
    sb.dims[1] = dim_const(1);
  } else if (at->matmul.trans_b) {
    sb.dims[sb.rank - 1] = b->dims[b->rank - 2];
    sb.dims[sb.rank - 2] = b->dims[b->rank - 1];
  }
  if (!dim_eq(sa.dims[sa.rank - 1], sb.dims[sb.rank - 2])) {
    char da[64], db[64], what[320];
    dim_print(da, sizeof da, sa.dims[sa.rank - 1], c->m);
    dim_print(db, sizeof db, sb.dims[sb.rank - 2], c->m);
    snprintf(what, sizeof what,
             "matmul contracts %s (the last dimension of the left operand) "
             "with %s (the %s dimension of the right operand):",
             da, db, sb.rank == 2 ? "first" : "second-to-last");
    return fail_shapes(c, what, &sa, &sb);
  }
  Shape ba = sa, bb = sb, batch;
  ba.rank -= 2;
  bb.rank -= 2;
  if (!broadcast2(&ba, &bb, &batch))
    return fail_shapes(c, "cannot broadcast matmul batch shapes", &ba, &bb);
  Shape r = batch;
  if (a->rank >= 2)
    r.dims[r.rank++] = sa.dims[sa.rank - 2];
  if (b->rank >= 2) {
    if (r.rank >= MAX_RANK)
      FAIL("matmul result rank exceeds %d", MAX_RANK);
    r.dims[r.rank++] = sb.dims[sb.rank - 1];
  }
  out->shape = r;
  return true;
}

static bool infer_reduce(const Ctx *c, const Attrs *at, Type *out) {
  const Shape *s = &c->ops[0]->type.shape;
  uint32_t axes = at->reduce.axes;
  if (s->rank < 32 && (axes >> s->rank) != 0)
    FAIL("%s axes out of range for rank %d", opname(c), s->rank);
  if ((c->kind == OP_ARGMAX || c->kind == OP_ARGMIN) &&
      (axes == 0 || (axes & (axes - 1)) != 0))
    FAIL("%s needs exactly one axis", opname(c));
  Shape r;
  memset(&r, 0, sizeof r);
  for (int i = 0; i < s->rank; i++) {
    if (axes & (1u << i)) {
      if (at->reduce.keepdims)
        r.dims[r.rank++] = dim_const(1);
    } else {
      r.dims[r.rank++] = s->dims[i];
    }
  }
  out->shape = r;
  if (c->kind == OP_ARGMAX || c->kind == OP_ARGMIN)
    out->dtype = DT_I32;
  return true;
}

static bool infer_gather(const Ctx *c, int axis, Type *out) {
  const Shape *t = &c->ops[0]->type.shape, *ix = &c->ops[1]->type.shape;
  if (!dtype_is_int(c->ops[1]->type.dtype))
    FAIL("gather indices must be i32 or i64, got %s",
         dtype_name(c->ops[1]->type.dtype));
  if (axis < 0 || axis >= t->rank)
    FAIL("gather axis %d out of range for rank %d", axis, t->rank);
  if (t->rank - 1 + ix->rank > MAX_RANK)
    FAIL("gather result rank exceeds %d", MAX_RANK);
  Shape r;
  memset(&r, 0, sizeof r);
  for (int i = 0; i < axis; i++)
    r.dims[r.rank++] = t->dims[i];
  for (int i = 0; i < ix->rank; i++)
    r.dims[r.rank++] = ix->dims[i];
  for (int i = axis + 1; i < t->rank; i++)
    r.dims[r.rank++] = t->dims[i];
  out->dtype = c->ops[0]->type.dtype;
  out->shape = r;
  return true;
}

/* scatter_add(updates, indices): the declared table type, whose gather of
 * the indices has the updates' type */
static bool infer_scatter_add(const Ctx *c, int axis, const Type *hint,
                              Type *out) {
  const Shape *t = &hint->shape, *ix = &c->ops[1]->type.shape;
  if (!dtype_is_float(c->ops[0]->type.dtype) ||
      hint->dtype != c->ops[0]->type.dtype)
    FAIL("scatter_add adds float updates into a table of their dtype, got "
         "%s into %s",
         dtype_name(c->ops[0]->type.dtype), dtype_name(hint->dtype));
  if (!dtype_is_int(c->ops[1]->type.dtype))
    FAIL("scatter_add indices must be i32 or i64, got %s",
         dtype_name(c->ops[1]->type.dtype));
  if (axis < 0 || axis >= t->rank)
    FAIL("scatter_add axis %d out of range for rank %d", axis, t->rank);
  if (t->rank - 1 + ix->rank > MAX_RANK)
    FAIL("scatter_add updates rank exceeds %d", MAX_RANK);
  Shape u;
  memset(&u, 0, sizeof u);
  for (int i = 0; i < axis; i++)
    u.dims[u.rank++] = t->dims[i];
  for (int i = 0; i < ix->rank; i++)
    u.dims[u.rank++] = ix->dims[i];
  for (int i = axis + 1; i < t->rank; i++)
    u.dims[u.rank++] = t->dims[i];
  if (!shape_eq(&u, &c->ops[0]->type.shape))
    return fail_shapes(c,
                       "scatter_add updates must have the shape of the "
                       "gather they undo:",
                       &c->ops[0]->type.shape, &u);
  *out = *hint;
  return true;
}

static bool infer_concat(const Ctx *c, int axis, Type *out) {
  if (c->nops < 1)
    FAIL("concat needs at least one operand");
  if (!same_dtypes(c, 0))
    return false;
  const Shape *s0 = &c->ops[0]->type.shape;
  if (axis < 0 || axis >= s0->rank)
    FAIL("concat axis %d out of range for rank %d", axis, s0->rank);
  Shape r = *s0;
  for (int k = 1; k < c->nops; k++) {
    const Shape *s = &c->ops[k]->type.shape;
    bool ok = s->rank == s0->rank;
    for (int i = 0; ok && i < s->rank; i++)
      ok = i == axis || dim_eq(s->dims[i], s0->dims[i]);
    if (!ok)
      return fail_shapes(c, "cannot concatenate shapes", s0, s);
    if (!dim_add(r.dims[axis], s->dims[axis], &r.dims[axis]))
      FAIL("concat dimension too complex");
  }
  out->shape = r;
  return true;
}

static bool infer_slice(const Ctx *c, const Attrs *at, const Type *hint,
                        Type *out) {
  const Shape *s = &c->ops[0]->type.shape;
  if (hint->shape.rank != s->rank)
    FAIL("slice result rank %d differs from operand rank %d", hint->shape.rank,
         s->rank);
  for (int i = 0; i < s->rank; i++) {
    int64_t step = at->slice.step[i], start, n, size;
    if (step == 0)
      FAIL("slice step of axis %d is 0", i);
    if (dim_is_const(at->slice.start[i], &start) &&
        dim_is_const(hint->shape.dims[i], &n) &&
        dim_is_const(s->dims[i], &size) && n > 0) {
      /* int64 arithmetic in double range is fine for a bounds check */
      double last = (double)start + (double)(n - 1) * (double)step;
      if (start < 0 || start >= size || last < 0 || last >= (double)size)
        FAIL("slice of axis %d reads index %.0f outside [0, %lld)", i,
             start < 0 || start >= size ? (double)start : last,
             (long long)size);
    }
  }
  out->shape = hint->shape;
  return true;
}

static bool infer_permute(const Ctx *c, const Attrs *at, Type *out) {
  const Shape *s = &c->ops[0]->type.shape;
  unsigned seen = 0;
  Shape r;
  memset(&r, 0, sizeof r);
  r.rank = s->rank;
  for (int i = 0; i < s->rank; i++) {
    int p = at->perm.perm[i];
    if (p < 0 || p >= s->rank || (seen & (1u << p)))
      FAIL("permute perm is not a permutation of %d axes", s->rank);
    seen |= 1u << p;
    r.dims[i] = s->dims[p];
  }
  out->shape = r;
  return true;
}

static bool check_broadcast_to(const Ctx *c, const Type *hint) {
  const Shape *s = &c->ops[0]->type.shape;
  bool ok = s->rank <= hint->shape.rank;
  for (int i = 0; ok && i < s->rank; i++) {
    Dim d = s->dims[i], h = hint->shape.dims[hint->shape.rank - s->rank + i];
    ok = dim_eq(d, h) || dim_eq(d, dim_const(1));
  }
  if (!ok)
    return fail_shapes(c, "cannot broadcast shape", s, &hint->shape);
  return true;
}

/* ---- decoding ops ---------------------------------------------------------
 */

/* a is provably no larger than b: equal, or both constant with a <= b */
static bool dim_fits(Dim a, Dim b) {
  int64_t x, y;
  if (dim_eq(a, b))
    return true;
  return dim_is_const(a, &x) && dim_is_const(b, &y) && x >= 0 && x <= y;
}

/* a may be no larger than b: not provably larger (both constant with
 * a > b); the kernels check the rest at run time */
static bool dim_may_fit(Dim a, Dim b) {
  int64_t x, y;
  if (dim_is_const(a, &x) && x < 0)
    return false;
  return !(dim_is_const(a, &x) && dim_is_const(b, &y) && x > y);
}

/* Operands first.. are one scalar integer start per axis of x (rank). */
static bool check_starts(const Ctx *c, int first, int rank) {
  if (c->nops - first != rank)
    FAIL("%s needs %d start indices (one per axis), got %d", opname(c), rank,
         c->nops - first);
  for (int i = first; i < c->nops; i++) {
    const Type *t = &c->ops[i]->type;
    if (!dtype_is_int(t->dtype) || t->shape.rank != 0)
      FAIL("start %d of %s must be an i32[] or i64[] scalar, got %s%s",
           i - first, opname(c), dtype_name(t->dtype),
           t->shape.rank ? " with a shape" : "");
  }
  return true;
}

static bool infer_decode(const Ctx *c, const Attrs *at, const Type *hint,
                         Type *r) {
  const Type *x = &c->ops[0]->type;
  int rank = x->shape.rank, axis = at->axis.axis;
  if (c->kind == OP_DYNAMIC_SLICE) {
    if (!need_hint(c, hint) || !check_starts(c, 1, rank))
      return false;
    if (hint->shape.rank != rank || hint->dtype != x->dtype)
      FAIL("dynamic_slice result must be %s of rank %d", dtype_name(x->dtype),
           rank);
    for (int i = 0; i < rank; i++)
      if (!dim_may_fit(hint->shape.dims[i], x->shape.dims[i]))
        return fail_shapes(c, "dynamic_slice block does not fit:", &hint->shape,
                           &x->shape);
    *r = *hint;
    return true;
  }
  if (c->kind == OP_DYNAMIC_UPDATE_SLICE) {
    const Type *u = &c->ops[1]->type;
    if (!check_starts(c, 2, rank))
      return false;
    if (u->dtype != x->dtype)
      FAIL("dynamic_update_slice update is %s, but the tensor is %s",
           dtype_name(u->dtype), dtype_name(x->dtype));
    bool ok = u->shape.rank == rank;
    for (int i = 0; ok && i < rank; i++)
      ok = dim_may_fit(u->shape.dims[i], x->shape.dims[i]);
    if (!ok)
      return fail_shapes(
          c, "dynamic_update_slice update does not fit:", &u->shape, &x->shape);
    *r = *x;
    return true;
  }
  if (c->kind == OP_TAKE_ALONG_AXIS) {
    const Type *ix = &c->ops[1]->type;
    if (!dtype_is_int(ix->dtype))
      FAIL("take_along_axis indices must be i32 or i64, got %s",
           dtype_name(ix->dtype));
    if (axis < 0 || axis >= rank)
      FAIL("take_along_axis axis %d out of range for rank %d", axis, rank);
    bool ok = ix->shape.rank == rank;
    for (int i = 0; ok && i < rank; i++)
      ok = i == axis || dim_fits(ix->shape.dims[i], x->shape.dims[i]);
    if (!ok)
      return fail_shapes(c,
                         "take_along_axis indices must have the tensor's rank "
                         "and fit it off the axis:",
                         &ix->shape, &x->shape);
    r->dtype = x->dtype;
    r->shape = ix->shape;
    return true;
  }
  if (c->kind == OP_TOPK) {
    if (!need_hint(c, hint))
      return false;
    if (axis < 0 || axis >= rank)
      FAIL("topk axis %d out of range for rank %d", axis, rank);
    if (hint->dtype != DT_I32 || hint->shape.rank != rank)
      FAIL("topk gives i32 indices of the operand's rank %d", rank);
    for (int i = 0; i < rank; i++)
      if (i == axis ? !dim_may_fit(hint->shape.dims[i], x->shape.dims[i])
                    : !dim_eq(hint->shape.dims[i], x->shape.dims[i]))
        return fail_shapes(c, "topk result does not match its operand:",
                           &hint->shape, &x->shape);
    *r = *hint;
    return true;
  }
  if (c->kind == OP_CUMSUM) {
    if (axis < 0 || axis >= rank)
      FAIL("cumsum axis %d out of range for rank %d", axis, rank);
    *r = *x;
    return true;
  }
  if (c->kind == OP_RANDOM_UNIFORM) {
    if (x->dtype != DT_I64 || rank != 0)
      FAIL("random_uniform needs an i64[] state, got %s%s",
           dtype_name(x->dtype), rank ? " with a shape" : "");
    if (!need_hint(c, hint))
      return false;
    if (hint->dtype != DT_F32 && hint->dtype != DT_F64)
      FAIL("random_uniform gives f32 or f64, not %s", dtype_name(hint->dtype));
    *r = *hint;
    return true;
  }
  if (c->kind == OP_CATEGORICAL) {
    const Type *u = &c->ops[1]->type;
    if (x->dtype != DT_F32 && x->dtype != DT_F64)
      FAIL("categorical needs f32 or f64 probabilities, got %s",
           dtype_name(x->dtype));
    if (u->dtype != x->dtype)
      FAIL("categorical draws are %s, but the probabilities are %s",
           dtype_name(u->dtype), dtype_name(x->dtype));
    if (axis < 0 || axis >= rank)
      FAIL("categorical axis %d out of range for rank %d", axis, rank);
    Shape want;
    memset(&want, 0, sizeof want);
    for (int i = 0; i < rank; i++)
      if (i != axis)
        want.dims[want.rank++] = x->shape.dims[i];
    if (!shape_eq(&want, &u->shape))
      return fail_shapes(c,
                         "categorical needs one draw per row: the draws' "
                         "shape must be",
                         &want, &u->shape);
    r->dtype = DT_I32;
    r->shape = want;
    return true;
  }
  FAIL("%s is not a decoding op", opname(c));
}

bool ir_infer_type(const Module *m, OpKind kind, Value *const *operands,
                   int noperands, const Attrs *attrs, const Type *hint,
                   Type *out, Loc loc, Diag *d) {
  Ctx ctx = {m, kind, operands, noperands, loc, d}, *c = &ctx;
  if ((unsigned)kind >= OP_COUNT)
    FAIL("unknown op kind %d", (int)kind);
  const OpInfo *info = &ir_op_info[kind];
  if (info->noperands >= 0 ? noperands != info->noperands
                           : noperands < ir_op_min_operands(kind))
    FAIL("%s takes %d operands, got %d", info->name, info->noperands,
         noperands);
  for (int i = 0; i < noperands; i++)
    if (!operands[i])
      FAIL("%s operand %d is missing", info->name, i);
  Attrs none;
  if (!attrs) {
    memset(&none, 0, sizeof none);
    attrs = &none;
  }
  Type r;
  memset(&r, 0, sizeof r);
  if (noperands > 0)
    r = operands[0]->type;
  unsigned f = info->flags;
  if ((f & (OPF_FLOAT | OPF_NUMERIC | OPF_LOGICAL | OPF_COMPARE)) &&
      noperands > 0 && !check_dtype_class(c, operands[0]->type.dtype))
    return false;

  switch (kind) {
  case OP_CONST:
    if (!need_hint(c, hint))
      return false;
    if (!shape_is_const(&hint->shape))
      FAIL("const needs a constant shape");
    if (!attrs->cst.data)
      FAIL("const has no data");
    r = *hint;
    break;
  case OP_PARAM:
    if (attrs->param.index < 0 || attrs->param.index >= m->nparams)
      FAIL("param index %d out of range (%d params)", attrs->param.index,
           m->nparams);
    r = m->params[attrs->param.index].type;
    break;
  case OP_IOTA:
    if (!need_hint(c, hint))
      return false;
    if (hint->dtype == DT_BOOL)
      FAIL("iota needs a numeric result type");
    if (attrs->axis.axis < 0 || attrs->axis.axis >= hint->shape.rank)
      FAIL("iota axis %d out of range for rank %d", attrs->axis.axis,
           hint->shape.rank);
    r = *hint;
    break;
  case OP_NEG:
  case OP_ABS:
  case OP_SIGN:
  case OP_EXP:
  case OP_EXPM1:
  case OP_LOG:
  case OP_LOG1P:
  case OP_SQRT:
  case OP_TANH:
  case OP_SIGMOID:
  case OP_ERF:
  case OP_SIN:
  case OP_COS:
  case OP_FLOOR:
  case OP_CEIL:
  case OP_NOT:
    break;
  case OP_CAST:
    if (!need_hint(c, hint))
      return false;
    if (!shape_eq(&hint->shape, &r.shape))
      return fail_shapes(c, "cast cannot change shape", &r.shape, &hint->shape);
    r.dtype = hint->dtype;
    break;
  case OP_ADD:
  case OP_SUB:
  case OP_MUL:
  case OP_DIV:
  case OP_MOD:
  case OP_POW:
  case OP_MAXIMUM:
  case OP_MINIMUM:
  case OP_AND:
  case OP_OR:
    if (!same_dtypes(c, 0) || !broadcast_all(c, 0, &r.shape))
      return false;
    break;
  case OP_LT:
  case OP_LE:
  case OP_GT:
  case OP_GE:
  case OP_EQ:
  case OP_NE:
    if (!same_dtypes(c, 0) || !broadcast_all(c, 0, &r.shape))
      return false;
    r.dtype = DT_BOOL;
    break;
  case OP_SELECT:
    if (operands[0]->type.dtype != DT_BOOL)
      FAIL("select condition must be bool, got %s",
           dtype_name(operands[0]->type.dtype));
    if (!same_dtypes(c, 1) || !broadcast_all(c, 0, &r.shape))
      return false;
    r.dtype = operands[1]->type.dtype;
    break;
  case OP_MATMUL:
    if (!same_dtypes(c, 0) || !infer_matmul(c, attrs, &r))
      return false;
    break;
  case OP_REDUCE_SUM:
  case OP_REDUCE_MEAN:
  case OP_REDUCE_MAX:
  case OP_REDUCE_MIN:
  case OP_LOGSUMEXP:
  case OP_ARGMAX:
  case OP_ARGMIN:
    if (!infer_reduce(c, attrs, &r))
      return false;
    break;
  case OP_SOFTMAX:
  case OP_LOG_SOFTMAX:
    if (attrs->axis.axis < 0 || attrs->axis.axis >= r.shape.rank)
      FAIL("%s axis %d out of range for rank %d", info->name, attrs->axis.axis,
           r.shape.rank);
    break;
  case OP_GATHER:
    if (!infer_gather(c, attrs->axis.axis, &r))
      return false;
    break;
  case OP_SCATTER_ADD:
    if (!need_hint(c, hint) ||
        !infer_scatter_add(c, attrs->axis.axis, hint, &r))
      return false;
    break;
  case OP_SLICE:
    if (!need_hint(c, hint) || !infer_slice(c, attrs, hint, &r))
      return false;
    break;
  case OP_CONCAT:
    if (!infer_concat(c, attrs->axis.axis, &r))
      return false;
    break;
  case OP_RESHAPE: {
    if (!need_hint(c, hint))
      return false;
    Dim a, b;
    if (!shape_numel_checked(&r.shape, &a) ||
        !shape_numel_checked(&hint->shape, &b))
      return fail_shapes(c, "cannot reshape", &r.shape, &hint->shape);
    if (!dim_eq(a, b)) {
      char sa[256], sb[256], na[64], nb[64];
      shape_print(sa, sizeof sa, &r.shape, c->m);
      shape_print(sb, sizeof sb, &hint->shape, c->m);
      dim_print(na, sizeof na, a, c->m);
      dim_print(nb, sizeof nb, b, c->m);
      if (c->d) {
        diag_error(c->d, c->loc,
                   "cannot reshape %s (%s elements) to %s (%s elements)", sa,
                   na, sb, nb);
        note_all(c);
      }
      return false;
    }
    r.shape = hint->shape;
    break;
  }
  case OP_PERMUTE:
    if (!infer_permute(c, attrs, &r))
      return false;
    break;
  case OP_BROADCAST:
    if (!need_hint(c, hint) || !check_broadcast_to(c, hint))
      return false;
    r.shape = hint->shape;
    break;
  case OP_DYNAMIC_SLICE:
  case OP_DYNAMIC_UPDATE_SLICE:
  case OP_TAKE_ALONG_AXIS:
  case OP_TOPK:
  case OP_CUMSUM:
  case OP_RANDOM_UNIFORM:
  case OP_CATEGORICAL:
    if (!infer_decode(c, attrs, hint, &r))
      return false;
    break;
  case OP_FUSED: /* the region is checked by ir_fused_check */
    if (!need_hint(c, hint))
      return false;
    if (noperands == 0)
      r.shape = shape_scalar();
    else if (!broadcast_all(c, 0, &r.shape))
      return false;
    r.dtype = hint->dtype;
    break;
  case OP_STOP_GRADIENT:
    r = operands[0]->type;
    break;
  case OP_GRAD: /* d loss / d wrt: wrt's type */
    if (!dtype_is_float(operands[0]->type.dtype) ||
        operands[0]->type.shape.rank != 0) {
      char t[256];
      type_print(t, sizeof t, &operands[0]->type, m);
      FAIL("grad differentiates a float scalar, not %s", t);
    }
    if (!dtype_is_float(operands[1]->type.dtype))
      FAIL("grad is taken with respect to float tensors, not %s",
           dtype_name(operands[1]->type.dtype));
    r = operands[1]->type;
    break;
  case OP_SCAN:
  case OP_YIELD: /* several or no results: ir_scan_infer */
    FAIL("%s has no single result type; see ir_scan_infer", info->name);
  case OP_COUNT:
    FAIL("unknown op kind");
  }
  /* Ops that take their dtype from the hint must agree with it. */
  if (hint &&
      (kind == OP_RESHAPE || kind == OP_BROADCAST || kind == OP_SLICE) &&
      hint->dtype != r.dtype)
    FAIL("%s result dtype %s differs from operand dtype %s", info->name,
         dtype_name(hint->dtype), dtype_name(r.dtype));
  *out = r;
  return true;
}
