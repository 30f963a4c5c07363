/* Views: data movement a matmul reads through instead of a copy, and
 * one that an elementwise loop reads as an array of its own.
 *
 * mc_gemm_* take any row and column strides, so an operand that is a
 * chain of slices, permutes, reshapes and broadcasts of some value needs no
 * buffer of its own: the matmul reads the value's buffer at an offset with
 * the strides the chain composes. Typical chains are attention's heads
 * (reshape then permute of a slice of the fused QKV projection) and a KV
 * cache's values (reshape and permute of values[l]), which would otherwise
 * copy the whole cache per layer and token.
 *
 * A chain is followed back from a float matmul's operand through values
 * with that single use; the longest tail of it whose view exists becomes
 * views of the value it starts from (ST_VIEW: no kernel, no buffer; the
 * root's lifetime extends to the matmul through the alias). An elementwise
 * loop's operand is a view only when the chain makes it dense (a slice of
 * whole rows, u[2:5]): the loop reads it at the base's pointer plus the
 * offset as it reads any array. A reshape has a view only where it splits
 * or merges axes that are contiguous relative to each other (numpy's
 * rule); a chain of nothing but reshapes is an alias already and is left
 * alone. Negative slice steps are not viewed, nor a slice whose bounds
 * need a check at run time (wpe[0:T] with T a symbol: its kernel checks
 * T <= n_ctx).
 */
#include "c_emit.h"

/* Strides of a dense row-major array of shape s, in elements. */
static bool dense_strides(const Shape *s, Dim *stride) {
  Dim st = dim_const(1);
  for (int j = s->rank - 1; j >= 0; j--) {
    stride[j] = st;
    if (j > 0 && !dim_mul(st, s->dims[j], &st))
      return false;
  }
  return true;
}

/* The strides of x reshaped to y: axes of x and y grouped into runs of
 * equal products; within a run the axes of x (other than those of extent
 * 1) must be contiguous relative to each other. */
static bool reshape_view(const Shape *x, const Dim *xs, const Shape *y,
                         Dim *ys) {
  int i = 0, o = 0;
  for (;;) {
    while (i < x->rank && cg_is_one(x->dims[i]))
      i++;
    while (o < y->rank && cg_is_one(y->dims[o]))
      ys[o++] = dim_const(0);
    if (i == x->rank || o == y->rank)
      return i == x->rank && o == y->rank;
    int i0 = i, o0 = o;
    Dim px = x->dims[i], py = y->dims[o], q;
    while (!dim_eq(px, py)) {
      if (dim_div_exact(px, py, &q) && o + 1 < y->rank) {
        if (!dim_mul(py, y->dims[++o], &py))
          return false;
      } else if (dim_div_exact(py, px, &q) && i + 1 < x->rank) {
        if (!dim_mul(px, x->dims[++i], &px))
          return false;
      } else {
        return false;
      }
    }
    /* x's axes i0..i contiguous (skipping extents of 1) */
    Dim inner = xs[i], need = xs[i];
    for (int j = i; j > i0; j--) {
      if (!cg_is_one(x->dims[j]) && !dim_mul(need, x->dims[j], &need))
        return false;
      if (!cg_is_one(x->dims[j - 1])) {
        if (!dim_eq(xs[j - 1], need))
          return false;
        need = xs[j - 1];
      }
    }
    /* y's axes o0..o from the innermost stride outwards */
    Dim st = inner;
    for (int j = o; j >= o0; j--) {
      ys[j] = cg_is_one(y->dims[j]) ? dim_const(0) : st;
      if (j > o0 && !cg_is_one(y->dims[j]) && !dim_mul(st, y->dims[j], &st))
        return false;
    }
    i++;
    o++;
  }
}

/* Applies view op `op` to the view (offset, stride) of its operand;
 * false when op's result is no view of it. */
static bool apply(const Op *op, Dim *offset, Dim *stride) {
  const Shape *x = &op->operands[0]->type.shape;
  const Shape *y = &op->results[0]->type.shape;
  Dim in[MAX_RANK];
  for (int j = 0; j < x->rank; j++)
    in[j] = stride[j];
  if (op->kind == OP_SLICE) {
    for (int j = 0; j < x->rank; j++) {
      Dim t;
      int64_t step = op->attrs.slice.step[j];
      if (step < 1 || !cg_slice_axis_checked(op, j) ||
          !dim_mul(op->attrs.slice.start[j], in[j], &t) ||
          !dim_add(*offset, t, offset) ||
          !dim_mul(in[j], dim_const(step), &stride[j]))
        return false;
    }
    return true;
  }
  if (op->kind == OP_PERMUTE) {
    for (int j = 0; j < y->rank; j++)
      stride[j] = in[op->attrs.perm.perm[j]];
    return true;
  }
  if (op->kind == OP_BROADCAST) {
    int lead = y->rank - x->rank;
    for (int j = 0; j < y->rank; j++)
      stride[j] =
          j < lead || (cg_is_one(x->dims[j - lead]) && !cg_is_one(y->dims[j]))
              ? dim_const(0)
              : in[j - lead];
    return true;
  }
  return op->kind == OP_RESHAPE && reshape_view(x, in, y, stride);
}

static bool is_view_op(const Op *op) {
  return op && (op->kind == OP_SLICE || op->kind == OP_PERMUTE ||
                op->kind == OP_BROADCAST || op->kind == OP_RESHAPE);
}

/* The chain ending at matmul operand v: chain[0] = v, chain[i + 1] =
 * operand of chain[i]'s def; values past the first have one use. */
static int collect_chain(FnEmit *fe, const Value *v, const Value **chain) {
  int n = 0;
  chain[n++] = v;
  while (n < 64 && is_view_op(v->def) && cg_info(fe, v)->uses == 1) {
    v = v->def->operands[0];
    chain[n++] = v;
  }
  return n;
}

/* Whether stride holds the dense row-major strides of shape s (axes of
 * extent 1 aside): a view with them is an array of its own at its offset. */
static bool is_dense(const Shape *s, const Dim *stride) {
  Dim want[MAX_RANK];
  if (!dense_strides(s, want))
    return false;
  for (int j = 0; j < s->rank; j++)
    if (!cg_is_one(s->dims[j]) && !dim_eq(stride[j], want[j]))
      return false;
  return true;
}

/* Views for the longest tail of the chain that has them (dense ones only,
 * with `dense`). */
static void view_chain(FnEmit *fe, const Value **chain, int n, bool dense) {
  Arena *a = &fe->e->arena;
  for (int s = n - 1; s >= 1; s--) {
    Dim offset = dim_const(0), stride[MAX_RANK];
    if (!dense_strides(&chain[s]->type.shape, stride))
      continue;
    CgView *views[64];
    bool ok = true, moves = false;
    for (int i = s - 1; i >= 0 && ok; i--) {
      const Op *op = chain[i]->def;
      ok = apply(op, &offset, stride);
      moves |= !cg_op_is_alias(op);
      views[i] = arena_alloc(a, sizeof(CgView));
      views[i]->base = chain[s];
      views[i]->offset = offset;
      for (int j = 0; j < chain[i]->type.shape.rank; j++)
        views[i]->stride[j] = stride[j];
    }
    if (!ok || (dense && !is_dense(&chain[0]->type.shape, views[0]->stride)))
      continue;
    if (moves)
      for (int i = 0; i < s; i++)
        cg_info(fe, chain[i])->view = views[i];
    return;
  }
}

void cg_find_views(FnEmit *fe, const Block *b) {
  for (const Op *op = b->first; op; op = op->next) {
    for (int r = 0; r < op->nregions; r++)
      cg_find_views(fe, op->regions[r]);
    bool mm =
        op->kind == OP_MATMUL && dtype_is_float(op->results[0]->type.dtype);
    bool loop = op->kind == OP_FUSED || cg_op_is_elementwise(op->kind);
    if ((!mm && !loop) || op->nresults != 1 ||
        cg_info(fe, op->results[0])->uses == 0)
      continue;
    for (int i = 0; i < (mm ? 2 : op->noperands); i++) {
      const Value *chain[64];
      const Value *x = op->operands[i];
      if (cg_info(fe, x)->uses != 1 || !is_view_op(x->def))
        continue;
      view_chain(fe, chain, collect_chain(fe, x, chain), !mm);
    }
  }
}
