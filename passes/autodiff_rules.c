/* The derivative rule of every op: one case per OpKind in ad_rule's switch
 * (compiled with -Wswitch-enum, so a new row of ops.def must say here what
 * its derivative is, or that it has none yet). Each rule builds the
 * vector-Jacobian product as ordinary ops, written as torch's autograd
 * formulas (tools/autograd/derivatives.yaml) so the results agree with it:
 *
 *   abs       g * sign(x)                        (0 at x = 0)
 *   sqrt      g / (2 * y)
 *   sigmoid   g * ((1 - y) * y)
 *   tanh      g * (1 - y * y)
 *   div       a: g / b;  b: -g * ((a / b) / b)
 *   pow       a: b == 0 ? 0 : g * b * a^(b - 1);
 *             b: (a == 0 and b >= 0) ? 0 : g * (y * log(a))
 *   maximum   ties (a == b) give each operand g / 2, as torch.maximum;
 *   minimum   so relu(x) = maximum(x, 0) gets g / 2 at exactly x = 0
 *             (torch.relu gives 0 there)
 *   max, min  (reductions) the gradient is shared evenly by the elements
 *             equal to the result, as torch.amax/amin: (g / count) * mask
 *   mean      g / n, broadcast
 *   softmax   y * (g - sum(g * y))
 *   log_softmax  g - exp(y) * sum(g)
 *   logsumexp g * exp(x - y)
 *   gather    scatter_add of g into zeros of the table's shape (rows
 *             read several times add up); scatter_add's is a gather
 *   slice     g padded with zeros (step 1 only)
 *   scan      a backward scan, in autodiff_scan.c
 *
 * Broadcasting is undone once for all ops after the switch: a
 * contribution of the result's shape is summed back to its operand's.
 * Integer and bool values carry no gradient; ops whose results are not
 * float (comparisons, argmax, topk, ...) never reach a rule.
 */
#include "autodiff.h"

#include <math.h>
#include <string.h>

static Value *build(AdCtx *c, OpKind k, Value **ops, int n, const Attrs *a,
                    const Type *hint) {
  if (c->failed)
    return NULL;
  for (int i = 0; i < n; i++)
    if (!ops[i])
      return NULL;
  Value *v = ir_build(c->m, c->b, k, ops, n, a, hint, c->loc, c->d);
  if (!v)
    c->failed = true;
  return v;
}

static Value *un(AdCtx *c, OpKind k, Value *x) {
  return build(c, k, &x, 1, NULL, NULL);
}

static Value *bin(AdCtx *c, OpKind k, Value *a, Value *b) {
  Value *ops[2] = {a, b};
  return build(c, k, ops, 2, NULL, NULL);
}

static Value *sel(AdCtx *c, Value *cond, Value *a, Value *b) {
  Value *ops[3] = {cond, a, b};
  return build(c, OP_SELECT, ops, 3, NULL, NULL);
}

/* A scalar constant of x's dtype. */
static Value *num(AdCtx *c, const Value *like, double v) {
  if (c->failed || !like)
    return NULL;
  return ir_const_scalar(c->m, c->b, like->type.dtype, v, c->loc);
}

static Value *reshape_to(AdCtx *c, Value *x, const Shape *s) {
  if (!x || shape_eq(&x->type.shape, s))
    return x;
  Type t = {x->type.dtype, *s};
  return build(c, OP_RESHAPE, &x, 1, NULL, &t);
}

static Value *broadcast_to(AdCtx *c, Value *x, const Shape *s) {
  if (!x || shape_eq(&x->type.shape, s))
    return x;
  Type t = {x->type.dtype, *s};
  return build(c, OP_BROADCAST, &x, 1, NULL, &t);
}

static Value *cast_to(AdCtx *c, Value *x, DType dt) {
  if (!x || x->type.dtype == dt)
    return x;
  Type t = {dt, x->type.shape};
  return build(c, OP_CAST, &x, 1, NULL, &t);
}

static Value *reduce(AdCtx *c, OpKind k, Value *x, uint32_t axes,
                     bool keepdims) {
  Attrs a;
  memset(&a, 0, sizeof a);
  a.reduce.axes = axes;
  a.reduce.keepdims = keepdims;
  return build(c, k, &x, 1, &a, NULL);
}

static Value *matmul(AdCtx *c, Value *a, Value *b, bool trans_a, bool trans_b) {
  Attrs at;
  memset(&at, 0, sizeof at);
  at.matmul.trans_a = trans_a;
  at.matmul.trans_b = trans_b;
  Value *ops[2] = {a, b};
  return build(c, OP_MATMUL, ops, 2, &at, NULL);
}

Value *ad_zeros(AdCtx *c, const Type *t) {
  if (c->failed)
    return NULL;
  Value *z = ir_const_scalar(c->m, c->b, t->dtype, 0.0, c->loc);
  return broadcast_to(c, z, &t->shape);
}

Value *ad_unbroadcast(AdCtx *c, Value *g, const Shape *to) {
  if (!g || shape_eq(&g->type.shape, to))
    return g;
  const Shape *s = &g->type.shape;
  int pad = s->rank - to->rank;
  uint32_t axes = 0;
  for (int i = 0; i < s->rank; i++)
    if (i < pad || (dim_eq(to->dims[i - pad], dim_const(1)) &&
                    !dim_eq(s->dims[i], dim_const(1))))
      axes |= 1u << i;
  if (axes)
    g = reduce(c, OP_REDUCE_SUM, g, axes, false);
  return reshape_to(c, g, to);
}

/* x's shape with the reduced axes kept as 1 */
static Shape kept_shape(const Shape *x, uint32_t axes) {
  Shape k = *x;
  for (int i = 0; i < k.rank; i++)
    if (axes & (1u << i))
      k.dims[i] = dim_const(1);
  return k;
}

/* d/dx of reduce_sum, reduce_mean, reduce_max/min and logsumexp. */
static Value *rule_reduce(AdCtx *c, const Op *op, Value *gy) {
  Value *x = op->operands[0], *y = op->results[0];
  uint32_t axes = op->attrs.reduce.axes;
  Shape ks = kept_shape(&x->type.shape, axes);
  Value *g = reshape_to(c, gy, &ks);
  if (op->kind == OP_REDUCE_MEAN) { /* g / n, n the elements reduced */
    Shape red = {0};
    for (int i = 0; i < x->type.shape.rank; i++)
      if (axes & (1u << i))
        red.dims[red.rank++] = x->type.shape.dims[i];
    int64_t n;
    Dim nd;
    Value *count;
    if (shape_numel_checked(&red, &nd) && dim_is_const(nd, &n))
      count = num(c, g, (double)n);
    else /* symbolic: count the ones */
      count =
          reduce(c, OP_REDUCE_SUM,
                 broadcast_to(c, num(c, g, 1.0), &x->type.shape), axes, true);
    return broadcast_to(c, bin(c, OP_DIV, g, count), &x->type.shape);
  }
  if (op->kind == OP_REDUCE_MAX || op->kind == OP_REDUCE_MIN) {
    /* shared evenly by the ties, as torch.amax */
    Value *mask =
        cast_to(c, bin(c, OP_EQ, x, reshape_to(c, y, &ks)), x->type.dtype);
    Value *count = reduce(c, OP_REDUCE_SUM, mask, axes, true);
    return bin(c, OP_MUL, bin(c, OP_DIV, g, count), mask);
  }
  if (op->kind == OP_LOGSUMEXP)
    return bin(c, OP_MUL, g,
               un(c, OP_EXP, bin(c, OP_SUB, x, reshape_to(c, y, &ks))));
  return broadcast_to(c, g, &x->type.shape); /* reduce_sum */
}

/* matmul: numpy's rank-1 operands become [1, K] and [K, 1] (the result's
 * gradient gets those axes back), then with A' = trans_a ? A^T : A and B'
 * likewise, dA' = G @ B'^T and dB' = A'^T @ G, written with the transpose
 * flags; batch axes broadcast and are summed back by ad_unbroadcast. */
static void rule_matmul(AdCtx *c, const Op *op, Value *gy, const bool *want,
                        Value **gx) {
  Value *a = op->operands[0], *b = op->operands[1];
  bool ta = op->attrs.matmul.trans_a, tb = op->attrs.matmul.trans_b;
  bool a1 = a->type.shape.rank == 1, b1 = b->type.shape.rank == 1;
  Shape sa = a->type.shape, sb = b->type.shape, sg = gy->type.shape;
  if (a1) {
    sa.rank = 2;
    sa.dims[1] = a->type.shape.dims[0];
    sa.dims[0] = dim_const(1);
    sg.dims[sg.rank++] = dim_const(1); /* M, before N below */
    if (!b1) {
      sg.dims[sg.rank - 1] = sg.dims[sg.rank - 2];
      sg.dims[sg.rank - 2] = dim_const(1);
    }
  }
  if (b1) {
    sb.rank = 2;
    sb.dims[0] = b->type.shape.dims[0];
    sb.dims[1] = dim_const(1);
    sg.dims[sg.rank++] = dim_const(1);
  }
  Value *A = reshape_to(c, a, &sa), *B = reshape_to(c, b, &sb);
  Value *G = reshape_to(c, gy, &sg);
  if (want[0])
    gx[0] = ta ? matmul(c, B, G, tb, true) : matmul(c, G, B, false, !tb);
  if (want[1])
    gx[1] = tb ? matmul(c, G, A, true, ta) : matmul(c, A, G, !ta, false);
  /* batch axes summed back, then a rank-1 operand's stand-in axis dropped */
  gx[0] = reshape_to(c, ad_unbroadcast(c, gx[0], &sa), &a->type.shape);
  gx[1] = reshape_to(c, ad_unbroadcast(c, gx[1], &sb), &b->type.shape);
}

/* gather: the table's gradient adds each row of g back where it was read */
static Value *rule_gather(AdCtx *c, const Op *op, Value *gy) {
  Value *ops[2] = {gy, op->operands[1]};
  return build(c, OP_SCATTER_ADD, ops, 2, &op->attrs, &op->operands[0]->type);
}

/* slice with step 1: g with zeros before and after on every axis */
static AdStatus rule_slice(AdCtx *c, const Op *op, Value *gy, Value **gx) {
  const Shape *xs = &op->operands[0]->type.shape;
  for (int i = 0; i < xs->rank; i++)
    if (op->attrs.slice.step[i] != 1) {
      c->why = "a slice with a step other than 1";
      return AD_NO_RULE;
    }
  Value *g = gy;
  for (int i = 0; i < xs->rank && g; i++) {
    Dim start = op->attrs.slice.start[i], extent = g->type.shape.dims[i];
    Dim end, after;
    if (!dim_add(start, extent, &end) || !dim_sub(xs->dims[i], end, &after)) {
      c->why = "a slice whose bounds do not fit the IR's dimension form";
      return AD_NO_RULE;
    }
    Value *parts[3];
    int n = 0;
    Dim sides[2] = {start, after};
    for (int side = 0; side < 2; side++) {
      if (side == 1)
        parts[n++] = g;
      if (dim_eq(sides[side], dim_const(0)))
        continue;
      Type zt = g->type;
      zt.shape.dims[i] = sides[side];
      parts[n++] = ad_zeros(c, &zt);
    }
    if (n > 1) {
      Attrs a;
      memset(&a, 0, sizeof a);
      a.axis.axis = i;
      g = build(c, OP_CONCAT, parts, n, &a, NULL);
    }
  }
  gx[0] = g;
  return AD_OK;
}

/* concat: operand i's part of g, a slice along the axis */
static void rule_concat(AdCtx *c, const Op *op, Value *gy, const bool *want,
                        Value **gx) {
  int axis = op->attrs.axis.axis;
  Dim offset = dim_const(0);
  for (int i = 0; i < op->noperands; i++) {
    const Type *t = &op->operands[i]->type;
    if (want[i]) {
      Attrs a;
      memset(&a, 0, sizeof a);
      for (int j = 0; j < t->shape.rank; j++) {
        a.slice.start[j] = dim_const(0);
        a.slice.step[j] = 1;
      }
      a.slice.start[axis] = offset;
      gx[i] = build(c, OP_SLICE, &gy, 1, &a, t);
    }
    if (!dim_add(offset, t->shape.dims[axis], &offset)) {
      diag_error(c->d, c->loc, "internal: concat offset out of range");
      c->failed = true;
      return;
    }
  }
}

/* dynamic_slice(x, starts...): g written into zeros of x's type at the
 * same starts. dynamic_update_slice(x, u, starts...): x's gradient is g
 * with the block zeroed, u's the block of g. */
static void rule_dynamic_slice(AdCtx *c, const Op *op, Value *gy,
                               const bool *want, Value **gx) {
  Value *ops[MAX_RANK + 2];
  const Value *x = op->operands[0];
  int rank = x->type.shape.rank;
  if (op->kind == OP_DYNAMIC_SLICE) {
    ops[0] = ad_zeros(c, &x->type);
    ops[1] = gy;
    for (int i = 0; i < rank; i++)
      ops[2 + i] = op->operands[1 + i];
    gx[0] = build(c, OP_DYNAMIC_UPDATE_SLICE, ops, 2 + rank, NULL, &x->type);
    return;
  }
  const Value *u = op->operands[1];
  for (int i = 0; i < rank; i++)
    ops[2 + i] = op->operands[2 + i];
  if (want[0]) {
    ops[0] = gy;
    ops[1] = ad_zeros(c, &u->type);
    gx[0] = build(c, OP_DYNAMIC_UPDATE_SLICE, ops, 2 + rank, NULL, &x->type);
  }
  if (want[1]) {
    ops[1] = gy;
    gx[1] = build(c, OP_DYNAMIC_SLICE, ops + 1, 1 + rank, NULL, &u->type);
  }
}

/* x reversed along axis (a slice with step -1): its extent constant. */
static Value *reversed(AdCtx *c, Value *x, int axis) {
  Attrs a;
  memset(&a, 0, sizeof a);
  for (int j = 0; j < x->type.shape.rank; j++) {
    a.slice.start[j] = dim_const(0);
    a.slice.step[j] = 1;
  }
  int64_t n = 0;
  dim_is_const(x->type.shape.dims[axis], &n);
  a.slice.start[axis] = dim_const(n - 1);
  a.slice.step[axis] = -1;
  return build(c, OP_SLICE, &x, 1, &a, &x->type);
}

/* cumsum along axis: g summed from the end, as torch computes it
 * (reversed, cumsum, reversed: the same sums in the same order). */
static AdStatus rule_cumsum(AdCtx *c, const Op *op, Value *gy, Value **gx) {
  int axis = op->attrs.axis.axis;
  int64_t n;
  if (!dim_is_const(gy->type.shape.dims[axis], &n)) {
    c->why = "a cumsum along an axis of symbolic extent";
    return AD_NO_RULE;
  }
  Value *r = reversed(c, gy, axis);
  gx[0] = reversed(c, build(c, OP_CUMSUM, &r, 1, &op->attrs, NULL), axis);
  return AD_OK;
}

/* The elementwise binary ops and select. */
static void rule_binary(AdCtx *c, const Op *op, Value *gy, const bool *want,
                        Value **gx) {
  Value *a = op->operands[0], *b = op->operands[op->noperands > 1 ? 1 : 0];
  Value *y = op->results[0];
  OpKind k = op->kind;
  if (k == OP_ADD) {
    gx[0] = gy, gx[1] = gy;
  } else if (k == OP_SUB) {
    gx[0] = gy;
    gx[1] = want[1] ? un(c, OP_NEG, gy) : NULL;
  } else if (k == OP_MUL) {
    gx[0] = want[0] ? bin(c, OP_MUL, gy, b) : NULL;
    gx[1] = want[1] ? bin(c, OP_MUL, gy, a) : NULL;
  } else if (k == OP_DIV) {
    gx[0] = want[0] ? bin(c, OP_DIV, gy, b) : NULL;
    if (want[1])
      gx[1] = un(c, OP_NEG,
                 bin(c, OP_MUL, gy, bin(c, OP_DIV, bin(c, OP_DIV, a, b), b)));
  } else if (k == OP_MOD) { /* a - floor(a / b) * b */
    gx[0] = gy;
    if (want[1])
      gx[1] = un(c, OP_NEG,
                 bin(c, OP_MUL, gy, un(c, OP_FLOOR, bin(c, OP_DIV, a, b))));
  } else if (k == OP_POW) {
    if (want[0])
      gx[0] = sel(c, bin(c, OP_EQ, b, num(c, b, 0)), num(c, gy, 0),
                  bin(c, OP_MUL, bin(c, OP_MUL, gy, b),
                      bin(c, OP_POW, a, bin(c, OP_SUB, b, num(c, b, 1)))));
    if (want[1])
      gx[1] = sel(c,
                  bin(c, OP_AND, bin(c, OP_EQ, a, num(c, a, 0)),
                      bin(c, OP_GE, b, num(c, b, 0))),
                  num(c, gy, 0),
                  bin(c, OP_MUL, gy, bin(c, OP_MUL, y, un(c, OP_LOG, a))));
  } else if (k == OP_MAXIMUM || k == OP_MINIMUM) {
    /* ties split g in halves; a NaN operand gives both g */
    Value *tie = bin(c, OP_EQ, a, b), *half = bin(c, OP_DIV, gy, num(c, gy, 2));
    Value *zero = num(c, gy, 0);
    bool mx = k == OP_MAXIMUM;
    if (want[0])
      gx[0] =
          sel(c, tie, half, sel(c, bin(c, mx ? OP_LT : OP_GT, a, b), zero, gy));
    if (want[1])
      gx[1] =
          sel(c, tie, half, sel(c, bin(c, mx ? OP_GT : OP_LT, a, b), zero, gy));
  } else if (k == OP_SELECT) {
    Value *zero = num(c, gy, 0);
    gx[1] = want[1] ? sel(c, a, gy, zero) : NULL;
    gx[2] = want[2] ? sel(c, a, zero, gy) : NULL;
  }
}

AdStatus ad_rule(AdCtx *c, const Op *op, Value *gy, const bool *want,
                 Value **gx) {
  Value *x = op->noperands > 0 ? op->operands[0] : NULL;
  Value *y = op->results[0];
  c->why = NULL;
  for (int i = 0; i < op->noperands; i++)
    gx[i] = NULL;
  switch (op->kind) {
  /* leaves, and ops of integer or bool results: no gradient flows */
  case OP_CONST:
  case OP_PARAM:
  case OP_IOTA:
  case OP_STOP_GRADIENT:
  case OP_NOT:
  case OP_LT:
  case OP_LE:
  case OP_GT:
  case OP_GE:
  case OP_EQ:
  case OP_NE:
  case OP_AND:
  case OP_OR:
  case OP_ARGMAX:
  case OP_ARGMIN:
  case OP_TOPK:
  case OP_CATEGORICAL:
  case OP_RANDOM_UNIFORM: /* a function of an integer state */
  /* piecewise constant: zero almost everywhere, as in torch */
  case OP_SIGN:
  case OP_FLOOR:
  case OP_CEIL:
    break;
  case OP_NEG:
    gx[0] = un(c, OP_NEG, gy);
    break;
  case OP_ABS:
    gx[0] = bin(c, OP_MUL, gy, un(c, OP_SIGN, x));
    break;
  case OP_EXP:
    gx[0] = bin(c, OP_MUL, gy, y);
    break;
  case OP_EXPM1:
    gx[0] = bin(c, OP_MUL, gy, bin(c, OP_ADD, y, num(c, y, 1)));
    break;
  case OP_LOG:
    gx[0] = bin(c, OP_DIV, gy, x);
    break;
  case OP_LOG1P:
    gx[0] = bin(c, OP_DIV, gy, bin(c, OP_ADD, x, num(c, x, 1)));
    break;
  case OP_SQRT:
    gx[0] = bin(c, OP_DIV, gy, bin(c, OP_MUL, num(c, y, 2), y));
    break;
  case OP_TANH:
    gx[0] =
        bin(c, OP_MUL, gy, bin(c, OP_SUB, num(c, y, 1), bin(c, OP_MUL, y, y)));
    break;
  case OP_SIGMOID:
    gx[0] =
        bin(c, OP_MUL, gy, bin(c, OP_MUL, bin(c, OP_SUB, num(c, y, 1), y), y));
    break;
  case OP_ERF: /* 2 / sqrt(pi) * exp(-x^2) */
    gx[0] = bin(c, OP_MUL, gy,
                bin(c, OP_MUL, num(c, x, 2.0 / sqrt(3.14159265358979323846)),
                    un(c, OP_EXP, un(c, OP_NEG, bin(c, OP_MUL, x, x)))));
    break;
  case OP_SIN:
    gx[0] = bin(c, OP_MUL, gy, un(c, OP_COS, x));
    break;
  case OP_COS:
    gx[0] = bin(c, OP_MUL, gy, un(c, OP_NEG, un(c, OP_SIN, x)));
    break;
  case OP_CAST: /* float to float: back to the source dtype */
    if (dtype_is_float(x->type.dtype))
      gx[0] = cast_to(c, gy, x->type.dtype);
    break;
  case OP_ADD:
  case OP_SUB:
  case OP_MUL:
  case OP_DIV:
  case OP_MOD:
  case OP_POW:
  case OP_MAXIMUM:
  case OP_MINIMUM:
  case OP_SELECT:
    rule_binary(c, op, gy, want, gx);
    break;
  case OP_MATMUL:
    rule_matmul(c, op, gy, want, gx);
    break;
  case OP_REDUCE_SUM:
  case OP_REDUCE_MEAN:
  case OP_REDUCE_MAX:
  case OP_REDUCE_MIN:
  case OP_LOGSUMEXP:
    gx[0] = rule_reduce(c, op, gy);
    break;
  case OP_SOFTMAX:
  case OP_LOG_SOFTMAX: {
    uint32_t axis = 1u << op->attrs.axis.axis;
    if (op->kind == OP_SOFTMAX) /* y * (g - sum(g * y)) */
      gx[0] =
          bin(c, OP_MUL, y,
              bin(c, OP_SUB, gy,
                  reduce(c, OP_REDUCE_SUM, bin(c, OP_MUL, gy, y), axis, true)));
    else /* g - exp(y) * sum(g) */
      gx[0] = bin(c, OP_SUB, gy,
                  bin(c, OP_MUL, un(c, OP_EXP, y),
                      reduce(c, OP_REDUCE_SUM, gy, axis, true)));
    break;
  }
  case OP_GATHER:
    gx[0] = want[0] ? rule_gather(c, op, gy) : NULL;
    break;
  case OP_SCATTER_ADD: { /* the updates' gradient: g gathered back */
    Value *ops[2] = {gy, op->operands[1]};
    gx[0] = build(c, OP_GATHER, ops, 2, &op->attrs, NULL);
    break;
  }
  case OP_SLICE:
    if (rule_slice(c, op, gy, gx) == AD_NO_RULE)
      return AD_NO_RULE;
    break;
  case OP_CONCAT:
    rule_concat(c, op, gy, want, gx);
    break;
  case OP_RESHAPE:
    gx[0] = reshape_to(c, gy, &x->type.shape);
    break;
  case OP_PERMUTE: {
    Attrs a;
    memset(&a, 0, sizeof a);
    for (int i = 0; i < y->type.shape.rank; i++)
      a.perm.perm[op->attrs.perm.perm[i]] = i;
    gx[0] = build(c, OP_PERMUTE, &gy, 1, &a, NULL);
    break;
  }
  case OP_BROADCAST: /* summed back below */
    gx[0] = gy;
    break;
  case OP_DYNAMIC_SLICE:
  case OP_DYNAMIC_UPDATE_SLICE:
    rule_dynamic_slice(c, op, gy, want, gx);
    break;
  case OP_CUMSUM:
    if (rule_cumsum(c, op, gy, gx) == AD_NO_RULE)
      return AD_NO_RULE;
    break;
  case OP_TAKE_ALONG_AXIS:
  case OP_SCAN:  /* autodiff_scan.c: the driver calls ad_scan instead */
  case OP_YIELD: /* part of its scan */
  case OP_FUSED: /* autodiff runs before fuse */
  case OP_GRAD:  /* expanded before any grad that reads it */
  case OP_COUNT:
    c->why = ir_op_info[op->kind < OP_COUNT ? op->kind : 0].name;
    return AD_NO_RULE;
  }
  for (int i = 0; i < op->noperands; i++)
    if (gx[i] && want[i])
      gx[i] = ad_unbroadcast(c, gx[i], &op->operands[i]->type.shape);
    else
      gx[i] = NULL;
  return AD_OK;
}
