/* Per-op kernel emission: one static C function per IR op.
 *
 * A kernel reads its operands through `const T *restrict` parameters (or
 * inlined literals for scalar constants of elementwise ops), writes its
 * result through `T *restrict y`, and takes as int64_t parameters exactly the
 * symbols its sizes mention. Every buffer is dense row-major, so indexes are
 * sums of loop variables times products of later dimensions; an axis of
 * constant extent 1 gets no loop. Kernels that can fail at run time (gather's
 * index check, slices with symbolic bounds) return MC_OK or an MC_ERR_* code
 * through mc_fail, naming the model-file location.
 *
 * Semantics chosen where C and torch differ (documented in the runtime's
 * mc_ops.h too, whose op_* functions the kernels call):
 *  - integer +, -, *, neg wrap (computed in unsigned); x / 0 and x % 0 give 0;
 *  - integer / truncates like C; % is Python's/torch's remainder (the result
 *    takes the sign of the divisor), for floats too;
 *  - maximum/minimum, reduce_max/min and argmax/argmin propagate NaN (NaN
 *    wins; argmax returns the first NaN's index);
 *  - float -> int casts truncate toward zero (C; NaN/out of range undefined);
 *  - f32 sums (reduce_sum, reduce_mean, logsumexp) accumulate in double.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c_emit.h"

/* ---- matmul -----------------------------------------------------------------
 */

/* The strides of a matmul operand of shape s as C: its view's, or those of
 * a dense array. */
static void matmul_strides(CgKernel *k, const Shape *s, const CgView *view,
                           const char **out) {
  for (int j = 0; j < s->rank; j++)
    out[j] =
        view ? cg_kdim(k, view->stride[j]) : cg_kproduct(k, s, j + 1, s->rank);
}

/* sum of pos[j] * stride[j] over the n batch axes ("0" when none). */
const char *cg_batch_offset(CgKernel *k, const char *const *stride, int n,
                            const char *const *pos) {
  CgBuf b = {0};
  for (int j = 0; j < n; j++) {
    if (!pos[j] || cg_is_lit(stride[j], "0"))
      continue;
    cg_buf_printf(&b, "%s%s", b.len ? " + " : "", pos[j]);
    if (!cg_is_lit(stride[j], "1"))
      cg_buf_printf(&b, " * %s", stride[j]);
  }
  const char *r = cg_strf(k->arena, "%s", b.len ? cg_buf_str(&b) : "0");
  cg_buf_free(&b);
  return r;
}

void cg_gemm_layout(CgKernel *k, const Op *mm, const CgView *va,
                    const CgView *vb, bool b_kept_transposed, CgGemm *g) {
  const Shape *as = &mm->operands[0]->type.shape;
  const Shape *bs = &mm->operands[1]->type.shape;
  bool ta = mm->attrs.matmul.trans_a, tb = mm->attrs.matmul.trans_b;
  int ar = as->rank, br = bs->rank;
  g->ar = ar;
  g->br = br;
  matmul_strides(k, as, va, g->sa);
  matmul_strides(k, bs, vb, g->sb);
  if (b_kept_transposed) { /* a [N, K] weight kept as W.T */
    g->sb[0] = "1";
    g->sb[1] = cg_kdim(k, bs->dims[0]);
  }
  if (ar == 1) {
    g->M = "1";
    g->K = cg_kdim(k, as->dims[0]);
    g->rsa = g->K;
    g->csa = g->sa[0];
  } else {
    g->M = cg_kdim(k, as->dims[ar - 1 - !ta]);
    g->K = cg_kdim(k, as->dims[ar - 1 - ta]);
    g->rsa = g->sa[ar - 1 - !ta];
    g->csa = g->sa[ar - 1 - ta];
  }
  if (br == 1) {
    g->N = "1";
    g->rsb = g->sb[0];
    g->csb = "1";
  } else {
    g->N = cg_kdim(k, bs->dims[br - 1 - tb]);
    g->rsb = g->sb[br - 1 - !tb];
    g->csb = g->sb[br - 1 - tb];
  }
}

/* How s (an operand's shape, right-aligned to y) covers the axes 0..last
 * of y whose extent is not 1: *whole when it has every one of them, not
 * when it has none (the same for every row); false when it has some. */
static bool rows_alike(const Shape *s, const Shape *y, int last, bool *whole) {
  int seen = -1; /* whether the axes so far are s's, -1 before any */
  for (int j = 0; j <= last; j++) {
    if (cg_is_one(y->dims[j]))
      continue;
    int a = j - (y->rank - s->rank);
    int has = a >= 0 && !cg_is_one(s->dims[a]);
    if (seen >= 0 && has != seen)
      return false;
    seen = has;
  }
  *whole = seen == 1;
  return true;
}

int cg_matmul_rows_collapse(const Op *mm, const Op *ep, bool a_is_view) {
  const Shape *as = &mm->operands[0]->type.shape;
  const Shape *bs = &mm->operands[1]->type.shape;
  const Shape *ys = &mm->results[0]->type.shape;
  if (!dtype_is_float(mm->results[0]->type.dtype) || a_is_view ||
      mm->attrs.matmul.trans_a || bs->rank != 2 || as->rank < 3 ||
      as->rank != ys->rank)
    return -1;
  bool whole;
  if (!rows_alike(as, ys, as->rank - 2, &whole) || !whole)
    return -1; /* A broadcast over a batch axis */
  for (int i = 0; ep && i < ep->noperands; i++)
    if (ep->operands[i] != mm->results[0] &&
        !rows_alike(&ep->operands[i]->type.shape, ys, ys->rank - 2, &whole))
      return -1;
  /* a whole operand's row i is at i times the stride of the last axis
   * before the columns whose extent is not 1 */
  int axis = ys->rank - 2;
  while (axis > 0 && cg_is_one(ys->dims[axis]))
    axis--;
  return axis;
}

/* Batch loops around mc_gemm_f32/f64 (strides express the transposes and
 * rank-1 operands), or one GEMM over all rows (cg_matmul_rows_collapse);
 * integer matmul is a plain triple loop. */
static bool kernel_matmul(CgKernel *k, Diag *d) {
  const Op *op = k->op;
  const Shape *as = &op->operands[0]->type.shape;
  const Shape *bs = &op->operands[1]->type.shape;
  const Shape *ys = &op->results[0]->type.shape;
  CgGemm g;
  cg_gemm_layout(k, op, k->view ? k->view[0] : NULL,
                 k->view ? k->view[1] : NULL, k->transposed && k->transposed[1],
                 &g);
  int ar = g.ar, br = g.br;
  const char **sa = g.sa, **sb = g.sb;
  const char *M = g.M, *K = g.K, *N = g.N, *rsa = g.rsa, *csa = g.csa,
             *rsb = g.rsb, *csb = g.csb;
  DType store = k->store ? k->store[1] : DT_F32;
  /* batch axes of the result, and where each operand's batch axes align */
  Shape batch = *ys;
  batch.rank = ys->rank - (ar >= 2) - (br >= 2);
  int row_axis = ar >= 2 ? batch.rank : -1;
  int rows = cg_matmul_rows_collapse(op, k->epilogue, k->view && k->view[0]);
  if (rows >= 0) {
    M = cg_kproduct(k, as, 0, ar - 1);
    batch.rank = 0;
    row_axis = rows;
  }
  const char *vars[MAX_RANK], *apos[MAX_RANK] = {0}, *bpos[MAX_RANK] = {0},
                              *ypos[MAX_RANK] = {0};
  DType t = op->results[0]->type.dtype;
  bool is_float = dtype_is_float(t);
  bool batch_loops = false; /* an epilogue's arguments are per batch */
  for (int j = 0; j < batch.rank; j++)
    batch_loops |= !cg_is_one(batch.dims[j]);
  bool block = !is_float || (k->epilogue && batch_loops);
  int depth = cg_open_loops(k, 1, &batch, 0, vars, block);
  for (int j = 0; j < ar - 2 && batch.rank; j++)
    apos[j] = cg_is_one(as->dims[j]) ? NULL : vars[j + batch.rank - (ar - 2)];
  for (int j = 0; j < br - 2 && batch.rank; j++)
    bpos[j] = cg_is_one(bs->dims[j]) ? NULL : vars[j + batch.rank - (br - 2)];
  for (int j = 0; j < batch.rank; j++)
    ypos[j] = vars[j];
  const char *aoff = cg_batch_offset(k, sa, ar - 2, apos);
  const char *boff = cg_batch_offset(k, sb, br - 2, bpos);
  const char *yoff = cg_strided_index(k, ys, ypos);
  const char *pa =
      cg_is_lit(aoff, "0") ? "a" : cg_strf(k->arena, "a + %s", aoff);
  const char *pb =
      cg_is_lit(boff, "0") ? "b" : cg_strf(k->arena, "b + %s", boff);
  const char *py =
      cg_is_lit(yoff, "0") ? "y" : cg_strf(k->arena, "y + %s", yoff);
  /* with an epilogue: the _ep entry, whose last argument is &ep */
  const char *ep = "", *last = "0";
  if (k->epilogue) {
    if (!cg_gemm_epilogue(k, depth, vars, batch.rank, row_axis,
                          br >= 2 ? ys->rank - 1 : -1, NULL, d))
      return false;
    ep = "_ep";
    last = "&ep";
  }
  const char *fmt = store == DT_F16 ? "MC_W16_F16" : "MC_W16_BF16";
  if (is_float && k->packed && k->packed[1] && store != DT_F32) {
    cg_line(k, depth,
            "mc_gemm_f32_w16_packed%s(%s, %s, %s, %s, %s, %s, b, %s, %s, %s, "
            "%s);",
            ep, M, N, K, pa, rsa, csa, fmt, py, N, last);
  } else if (is_float && k->packed && k->packed[1]) { /* a weight, any batch */
    cg_line(k, depth,
            "mc_gemm_f32_packed%s(%s, %s, %s, %s, %s, %s, b, %s, %s, %s);", ep,
            M, N, K, pa, rsa, csa, py, N, last);
  } else if (is_float && store != DT_F32) {
    cg_line(k, depth,
            "mc_gemm_f32_w16%s(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
            "%s);",
            ep, M, N, K, pa, rsa, csa, pb, rsb, csb, fmt, py, N, last);
  } else if (is_float) {
    cg_line(k, depth,
            "mc_gemm_%s%s(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s);",
            t == DT_F32 ? "f32" : "f64", ep, M, N, K, pa, rsa, csa, pb, rsb,
            csb, py, N, last);
  }
  if (is_float) {
    if (block)
      cg_close_block(k, depth);
    return true;
  }
  const char *ct = cg_ctype(t);
  cg_line(k, depth, "const %s *pa = %s, *pb = %s;", ct, pa, pb);
  cg_line(k, depth, "%s *py = %s;", ct, py);
  cg_line(k, depth, "for (int64_t m = 0; m < %s; m++)", M);
  cg_line(k, depth + 1, "for (int64_t n = 0; n < %s; n++) {", N);
  cg_line(k, depth + 2, "uint64_t acc = 0; /* wraps like torch */");
  cg_line(k, depth + 2, "for (int64_t p = 0; p < %s; p++)", K);
  cg_line(
      k, depth + 3,
      "acc += (uint64_t)pa[m * %s + p * %s] * (uint64_t)pb[p * %s + n * %s];",
      rsa, csa, rsb, csb);
  cg_line(k, depth + 2, "py[m * %s + n] = (%s)acc;", N, ct);
  cg_line(k, depth + 1, "}");
  cg_close_block(k, depth);
  return true;
}

/* ---- reductions -------------------------------------------------------------
 */

/* Rows a ranged sum reduces at once (see kernel_reduce). */
#define REDUCE_ROWS 8

/* Opens the loops over the reduced axes (those of `axes` with extent != 1);
 * returns the element read, x[...] or the prologue's value there (its
 * statements in a block that reduce_end closes), and sets *inner to the
 * depth inside. With `row` (a row block's variable, see kernel_reduce) the
 * innermost loop goes over the block's n rows, r, and sets row to r0 + r. */
static const char *reduce_loops(CgKernel *k, int depth, const Shape *s,
                                uint32_t axes, const char **vars,
                                const char *row, int *inner, Diag *d) {
  int last = -1;
  for (int j = 0; j < s->rank; j++)
    if ((axes & (1u << j)) && !cg_is_one(s->dims[j]))
      last = j;
  for (int j = 0; j <= last; j++) {
    if (!(axes & (1u << j)) || cg_is_one(s->dims[j]))
      continue;
    vars[j] = cg_loop_vars[j];
    cg_line(k, depth++, "for (int64_t %s = 0; %s < %s; %s++)%s", vars[j],
            vars[j], cg_kdim(k, s->dims[j]), vars[j],
            k->prologue && !row && j == last ? " {" : "");
  }
  if (row) {
    cg_line(k, depth++, "for (int64_t r = 0; r < n; r++) {");
    cg_line(k, depth, "const int64_t %s = r0 + r;", row);
  } else if (k->prologue && last < 0) {
    cg_line(k, depth++, "{");
  }
  *inner = depth;
  if (!k->prologue)
    return cg_strf(k->arena, "x[%s]", cg_strided_index(k, s, vars));
  return cg_element_at(k, k->prologue, depth, vars, "p", k->pro_literal, -1,
                       NULL, d);
}

/* Closes what reduce_loops opened for a prologue or a row block. */
static void reduce_end(CgKernel *k, int inner, const char *row) {
  if (k->prologue || row)
    cg_close_block(k, inner);
}

/* Product of the dims of s selected by axes. */
static char *masked_product(CgKernel *k, const Shape *s, uint32_t axes) {
  Shape r;
  memset(&r, 0, sizeof r);
  for (int j = 0; j < s->rank; j++)
    if (axes & (1u << j))
      r.dims[r.rank++] = s->dims[j];
  return cg_kproduct(k, &r, 0, r.rank);
}

/* Loops over the kept axes (in order, so the result is written with a
 * running index), then the reduced ones.
 *
 * A float sum (a layer norm's mean and variance) takes REDUCE_ROWS rows
 * (of the last kept axis) at once: a sum in double is a chain of
 * dependent additions, each waiting for the last (3-4 cycles), so the
 * block keeps REDUCE_ROWS of them in flight, each still in order (the same
 * bits; 3.2x faster on GPT-2's 128 rows of 768, as fast on one row). The
 * last block of a range may have fewer rows, n. */
static bool kernel_reduce(CgKernel *k, Diag *d) {
  const Op *op = k->op;
  const Shape *s = &op->operands[0]->type.shape;
  uint32_t axes = op->attrs.reduce.axes;
  DType t = op->operands[0]->type.dtype, rt = op->results[0]->type.dtype;
  bool f32 = t == DT_F32, flt = dtype_is_float(t);
  const char *ct = cg_ctype(t), *sfx = f32 ? "f32" : "f64";
  const char *vars[MAX_RANK];
  bool has_outer = false;
  for (int j = 0; j < s->rank; j++)
    has_outer |= !(axes & (1u << j)) && !cg_is_one(s->dims[j]);
  /* the first axis with a loop, when it is kept: the runtime's threads
   * take ranges of it (each result is computed by the same code in any
   * range: the bits do not depend on the thread count) */
  int outer = 0;
  while (outer < s->rank && cg_is_one(s->dims[outer]))
    outer++;
  bool ranged = outer < s->rank && !(axes & (1u << outer));
  bool any_reduced = false; /* a reduced axis with a loop */
  for (int j = 0; j < s->rank; j++)
    any_reduced |= (axes & (1u << j)) && !cg_is_one(s->dims[j]);
  OpKind kind = op->kind;
  const char *row = NULL;     /* the row of a block of REDUCE_ROWS */
  const char *row_end = NULL; /* and the end of the rows' axis */
  int depth = 1;
  if (ranged) {
    const char *inner = cg_kproduct(k, s, outer + 1, s->rank);
    cg_begin_range(k, cg_kdim(k, s->dims[outer]),
                   cg_strf(k->arena, "16384 / (%s) + 1", inner));
    const char *ov = cg_loop_vars[outer];
    int last_kept = outer; /* the last kept axis with a loop */
    for (int j = outer + 1; j < s->rank; j++)
      if (!(axes & (1u << j)) && !cg_is_one(s->dims[j]))
        last_kept = j;
    bool others = last_kept != outer; /* kept axes inside the range's */
    if (flt && any_reduced && (kind == OP_REDUCE_SUM || kind == OP_REDUCE_MEAN))
      row = cg_loop_vars[last_kept];
    if (row && !others)
      cg_line(k, 1, "for (int64_t r0 = begin; r0 < end; r0 += %d) {",
              REDUCE_ROWS);
    else
      cg_line(k, 1, "for (int64_t %s = begin; %s < end; %s++)%s", ov, ov, ov,
              others ? "" : " {");
    row_end = others ? cg_kdim(k, s->dims[last_kept]) : "end";
    if (row && others) {
      depth = cg_open_loops(k, 2, s, axes | (1u << outer) | (1u << last_kept),
                            vars, false);
      cg_line(k, depth++, "for (int64_t r0 = 0; r0 < %s; r0 += %d) {", row_end,
              REDUCE_ROWS);
    } else if (others) {
      depth = cg_open_loops(k, 2, s, axes | (1u << outer), vars, true);
    } else {
      for (int j = 0; j < s->rank; j++)
        vars[j] = NULL;
      depth = 2;
    }
    vars[outer] = ov;
    if (row)
      vars[last_kept] = row;
  } else {
    if (has_outer)
      cg_line(k, 1, "int64_t o = 0;");
    depth = cg_open_loops(k, 1, s, axes, vars, true);
  }
  /* the result's positions: the kept axes' loop variables */
  const char *rpos[MAX_RANK] = {0};
  for (int j = 0, r = 0; j < s->rank; j++)
    if (!(axes & (1u << j)))
      rpos[r++] = vars[j];
    else if (op->attrs.reduce.keepdims)
      r++;
  const char *dst =
      ranged      ? cg_strf(k->arena, "y[%s]",
                            cg_strided_index(k, &op->results[0]->type.shape, rpos))
      : has_outer ? "y[o++]"
                  : "y[0]";
  const char *e, *val;
  int in;
  if (kind == OP_REDUCE_SUM || kind == OP_REDUCE_MEAN) {
    const char *acc = row ? "acc[r]" : "acc";
    if (row) {
      cg_line(k, depth, "const int64_t n = %s - r0 < %d ? %s - r0 : %d;",
              row_end, REDUCE_ROWS, row_end, REDUCE_ROWS);
      cg_line(k, depth, "double acc[%d] = {0};", REDUCE_ROWS);
    } else {
      cg_line(k, depth,
              flt ? "double acc = 0;"
                  : "uint64_t acc = 0; /* wraps like torch */");
    }
    if (!(e = reduce_loops(k, depth, s, axes, vars, row, &in, d)))
      return false;
    cg_line(k, in, flt ? "%s += %s;" : "%s += (uint64_t)%s;", acc, e);
    reduce_end(k, in, row);
    if (row) { /* the block's results */
      cg_line(k, depth, "for (int64_t r = 0; r < n; r++) {");
      cg_line(k, ++depth, "const int64_t %s = r0 + r;", row);
    }
    if (kind == OP_REDUCE_MEAN)
      val = cg_strf(k->arena, "(%s)(%s / (double)%s)", cg_ctype(rt), acc,
                    masked_product(k, s, axes));
    else
      val = cg_strf(k->arena, "(%s)%s", cg_ctype(rt), acc);
  } else if (kind == OP_REDUCE_MAX || kind == OP_REDUCE_MIN) {
    bool mx = kind == OP_REDUCE_MAX;
    if (flt) {
      cg_line(k, depth, "%s acc = %sINFINITY;", ct, mx ? "-" : "");
    } else {
      const char *lim = t == DT_I32 ? (mx ? "INT32_MIN" : "INT32_MAX")
                                    : (mx ? "INT64_MIN" : "INT64_MAX");
      cg_line(k, depth, "%s acc = %s;", ct, lim);
    }
    if (!(e = reduce_loops(k, depth, s, axes, vars, NULL, &in, d)))
      return false;
    if (flt)
      cg_line(k, in, "acc = op_%s_%s(acc, %s);", mx ? "max" : "min", sfx, e);
    else if (k->prologue) /* the value once, in a local */
      cg_line(k, in, "{ const %s v = %s; acc = v %s acc ? v : acc; }", ct, e,
              mx ? ">" : "<");
    else
      cg_line(k, in, "acc = %s %s acc ? %s : acc;", e, mx ? ">" : "<", e);
    reduce_end(k, in, NULL);
    val = "acc";
  } else if (kind == OP_LOGSUMEXP) {
    /* max-subtracted; a slice that is all -inf (or has +inf) gives -inf
     * (+inf) as torch does, a NaN gives NaN */
    const char *fs = f32 ? "f" : "";
    cg_line(k, depth, "%s mx = -INFINITY;", ct);
    if (!(e = reduce_loops(k, depth, s, axes, vars, NULL, &in, d)))
      return false;
    cg_line(k, in, "mx = op_max_%s(mx, %s);", sfx, e);
    reduce_end(k, in, NULL);
    cg_line(k, depth, "%s r = mx;", ct);
    cg_line(k, depth, "if (!isinf(mx)) {");
    cg_line(k, depth + 1, "double acc = 0;");
    if (!(e = reduce_loops(k, depth + 1, s, axes, vars, NULL, &in, d)))
      return false;
    cg_line(k, in, "acc += exp%s(%s - mx);", fs, e);
    reduce_end(k, in, NULL);
    cg_line(k, depth + 1, "r = mx + log%s((%s)acc);", fs, ct);
    cg_line(k, depth, "}");
    val = "r";
  } else {
    return false;
  }
  if (k->epilogue) {
    int product = 0;
    while (k->epilogue->operands[product] != op->results[0])
      product++;
    val = cg_element_at(k, k->epilogue, depth, rpos, "x", k->ep_literal,
                        product, val, d);
    if (!val)
      return false;
  }
  cg_line(k, depth, "%s = %s;", dst, val);
  cg_close_block(k, depth);
  if (row)
    cg_close_block(k, depth - 1);
  if (ranged)
    cg_end_range(k);
  return true;
}

/* First index of the max (min) along one axis; NaN wins, as in torch. */
static bool kernel_arg(CgKernel *k) {
  const Op *op = k->op;
  const Shape *s = &op->operands[0]->type.shape;
  uint32_t axes = op->attrs.reduce.axes;
  int axis = 0;
  while (!(axes & (1u << axis)))
    axis++;
  DType t = op->operands[0]->type.dtype;
  bool mx = op->kind == OP_ARGMAX, flt = dtype_is_float(t);
  const char *vars[MAX_RANK];
  bool has_outer = false;
  for (int j = 0; j < s->rank; j++)
    has_outer |= j != axis && !cg_is_one(s->dims[j]);
  if (has_outer)
    cg_line(k, 1, "int64_t o = 0;");
  int depth = cg_open_loops(k, 1, s, axes, vars, true);
  cg_line(k, depth, "%s best = 0;", cg_ctype(t));
  cg_line(k, depth, "int32_t best_index = 0;");
  vars[axis] = "j";
  cg_line(k, depth, "for (int64_t j = 0; j < %s; j++) {",
          cg_kdim(k, s->dims[axis]));
  cg_line(k, depth + 1, "const %s v = x[%s];", cg_ctype(t),
          cg_strided_index(k, s, vars));
  if (flt)
    cg_line(k, depth + 1,
            "if (j == 0 || v %s best || (v != v && best == best)) {",
            mx ? ">" : "<");
  else
    cg_line(k, depth + 1, "if (j == 0 || v %s best) {", mx ? ">" : "<");
  cg_line(k, depth + 2, "best = v;");
  cg_line(k, depth + 2, "best_index = (int32_t)j;");
  cg_line(k, depth + 1, "}");
  cg_line(k, depth, "}");
  cg_line(k, depth, "%s = best_index;", has_outer ? "y[o++]" : "y[0]");
  cg_close_block(k, depth);
  return true;
}

/* ---- softmax ----------------------------------------------------------------
 */

/* Contiguous f32 rows of a constant length (a classifier's, a sampler's)
 * are mc_softmax.h's rows, compiled with the model's instruction set;
 * other softmaxes call the runtime's. */
static bool kernel_softmax(CgKernel *k) {
  const Op *op = k->op;
  const Shape *s = &op->operands[0]->type.shape;
  int axis = op->attrs.axis.axis;
  int64_t len;
  if (op->kind == OP_SOFTMAX && op->results[0]->type.dtype == DT_F32 &&
      cg_is_lit(cg_kproduct(k, s, axis + 1, s->rank), "1") &&
      dim_is_const(s->dims[axis], &len) && len > 0) {
    const char *n = cg_kdim(k, s->dims[axis]);
    const char *rows = cg_kproduct(k, s, 0, axis);
    k->softmax_row = true;
    if (cg_is_lit(rows, "1")) { /* one row (a sampler's): no loop */
      cg_line(k, 1, "mc_softmax_row_f32(x, y, %s);", n);
      return true;
    }
    cg_begin_range(k, rows, cg_strf(k->arena, "16384 / %s + 1", n));
    cg_line(k, 1, "for (int64_t i = begin; i < end; i++)");
    cg_line(k, 2, "mc_softmax_row_f32(x + i * %s, y + i * %s, %s);", n, n, n);
    cg_end_range(k);
    return true;
  }
  cg_line(k, 1, "mc_%s_%s(x, y, %s, %s, %s);",
          op->kind == OP_SOFTMAX ? "softmax" : "log_softmax",
          op->results[0]->type.dtype == DT_F32 ? "f32" : "f64",
          cg_kproduct(k, s, 0, axis), cg_kdim(k, s->dims[axis]),
          cg_kproduct(k, s, axis + 1, s->rank));
  return true;
}

/* ---- dispatch ---------------------------------------------------------------
 */

const char *cg_operand_name(const Op *op, int i) {
  static const char *const many[] = {"x0",  "x1",  "x2",  "x3", "x4",  "x5",
                                     "x6",  "x7",  "x8",  "x9", "x10", "x11",
                                     "x12", "x13", "x14", "x15"};
  if (op->kind == OP_GATHER)
    return i == 0 ? "table" : "index";
  if (op->kind == OP_SCATTER_ADD)
    return i == 0 ? "updates" : "index";
  if (op->kind == OP_SELECT)
    return i == 0 ? "cond" : i == 1 ? "a" : "b";
  if (op->kind == OP_CONCAT || op->kind == OP_FUSED)
    return i < 16 ? many[i] : "x_overflow";
  if (op->kind == OP_DYNAMIC_SLICE || op->kind == OP_DYNAMIC_UPDATE_SLICE) {
    static const char *const starts[] = {"s0", "s1", "s2", "s3",
                                         "s4", "s5", "s6", "s7"};
    int first = op->kind == OP_DYNAMIC_SLICE ? 1 : 2;
    if (i >= first)
      return i - first < 8 ? starts[i - first] : "s_overflow";
    return i == 0 ? "x" : "update";
  }
  if (op->kind == OP_TAKE_ALONG_AXIS)
    return i == 0 ? "x" : "index";
  if (op->kind == OP_CATEGORICAL)
    return i == 0 ? "p" : "u";
  if (op->kind == OP_RANDOM_UNIFORM)
    return "state";
  if (op->noperands == 1)
    return "x";
  return i == 0 ? "a" : i == 1 ? "b" : "c";
}

bool cg_kernel_emit(CgKernel *k, Diag *d) {
  const Op *op = k->op;
  switch (op->kind) {
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
  case OP_CAST:
  case OP_ADD:
  case OP_SUB:
  case OP_MUL:
  case OP_DIV:
  case OP_MOD:
  case OP_POW:
  case OP_MAXIMUM:
  case OP_MINIMUM:
  case OP_LT:
  case OP_LE:
  case OP_GT:
  case OP_GE:
  case OP_EQ:
  case OP_NE:
  case OP_AND:
  case OP_OR:
  case OP_SELECT:
  case OP_BROADCAST: /* one that is not an alias: a copy with stride 0 */
  case OP_FUSED:
    return cg_kernel_elementwise(k, d);
  case OP_MATMUL:
    return k->softmax ? cg_kernel_attention(k, d) : kernel_matmul(k, d);
  case OP_REDUCE_SUM:
  case OP_REDUCE_MEAN:
  case OP_REDUCE_MAX:
  case OP_REDUCE_MIN:
  case OP_LOGSUMEXP:
    return kernel_reduce(k, d);
  case OP_ARGMAX:
  case OP_ARGMIN:
    return kernel_arg(k);
  case OP_SOFTMAX:
  case OP_LOG_SOFTMAX:
    return kernel_softmax(k);
  case OP_GATHER:
  case OP_SCATTER_ADD:
  case OP_SLICE:
  case OP_CONCAT:
  case OP_PERMUTE:
  case OP_IOTA:
    return cg_kernel_movement(k, d);
  case OP_DYNAMIC_SLICE:
  case OP_DYNAMIC_UPDATE_SLICE:
  case OP_TAKE_ALONG_AXIS:
  case OP_TOPK:
  case OP_CUMSUM:
  case OP_RANDOM_UNIFORM:
  case OP_CATEGORICAL:
    return cg_kernel_decode(k, d);
  case OP_CONST:   /* a static array or an inlined literal */
  case OP_PARAM:   /* a pointer into the weights */
  case OP_RESHAPE: /* an alias */
  case OP_SCAN:    /* a loop in the run function: c_scan.c */
  case OP_YIELD:
  case OP_COUNT:
    break;
  case OP_GRAD:
  case OP_STOP_GRADIENT:
    diag_error(d, op->loc,
               "%s must be replaced by the autodiff pass before code "
               "generation",
               ir_op_info[op->kind].name);
    return false;
  }
  diag_error(d, op->loc, "internal: no kernel for %s",
             ir_op_info[op->kind].name);
  return false;
}
