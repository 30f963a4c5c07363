/* Data movement kernels: gather (and its gradient, scatter_add), slice,
 * concat, permute and iota. Each copies elements from dense row-major
 * operands to a dense result; gather, scatter_add and a slice whose bounds
 * are not known at compile time check their indexes at run time and fail
 * with MC_ERR_RANGE, naming the model-file location. (A slice or permute
 * that a matmul or loop reads in place has no kernel: c_views.c.)
 */
#include <inttypes.h>
#include <string.h>

#include "c_emit.h"

/* ---- gather -----------------------------------------------------------------
 */

/* The axes of gather and scatter_add over a table of shape ts (the result
 * of scatter_add) along `axis` with indices of shape is: the extents before
 * the axis (outer), of it (n) and after it (inner), and the indices' count,
 * as C expressions. */
typedef struct TableAxes {
  const char *outer, *n, *inner, *nidx;
  bool has_outer, has_inner;
} TableAxes;

static TableAxes table_axes(CgKernel *k, const Shape *ts, const Shape *is,
                            int axis) {
  TableAxes t = {cg_kproduct(k, ts, 0, axis),
                 cg_kdim(k, ts->dims[axis]),
                 cg_kproduct(k, ts, axis + 1, ts->rank),
                 cg_kproduct(k, is, 0, is->rank),
                 false,
                 false};
  t.has_outer = !cg_is_lit(t.outer, "1");
  t.has_inner = !cg_is_lit(t.inner, "1");
  k->can_fail = true;
  return t;
}

/* if (i < 0 || i >= n) return mc_fail(...) for index expression i. */
static void check_index(CgKernel *k, int depth, const char *i, const char *n) {
  cg_line(k, depth, "if (%s < 0 || %s >= %s)", i, i, n);
  cg_line(k, depth + 1,
          "return mc_fail(err, MC_ERR_RANGE, \"index %%lld out of range [0, "
          "%%lld) at %s\", (long long)%s, (long long)%s);",
          k->where, i, n);
}

/* The function that widens one element of a weight kept in `store` (""
 * for f32). */
static const char *widen_fn(DType store) {
  return store == DT_F16    ? "mc_f16_to_f32_1"
         : store == DT_BF16 ? "mc_bf16_to_f32_1"
                            : "";
}

/* y[o, j, i] = table[o, index[j], i] with o over table[:axis], j over the
 * indices and i over table[axis+1:]; each index is range-checked. */
static bool kernel_gather(CgKernel *k) {
  const Op *op = k->op;
  TableAxes t = table_axes(k, &op->operands[0]->type.shape,
                           &op->operands[1]->type.shape, op->attrs.axis.axis);
  const char *n = t.n, *inner = t.inner, *nidx = t.nidx;
  bool has_outer = t.has_outer, has_inner = t.has_inner;
  Arena *A = k->arena;
  int depth = 1;
  if (has_outer)
    cg_line(k, depth++, "for (int64_t o = 0; o < %s; o++)", t.outer);
  cg_line(k, depth++, "for (int64_t j = 0; j < %s; j++) {", nidx);
  cg_line(k, depth, "const int64_t i = index[j];");
  check_index(k, depth, "i", n);
  const char *yrow = has_outer ? cg_strf(A, "(o * %s + j)", nidx) : "j";
  const char *trow = has_outer ? cg_strf(A, "(o * %s + i)", n) : "i";
  /* a weight kept transposed ([inner, n]: column i), perhaps in the GEMM's
   * panels of W.T (mc_runtime.h: column i in panel i / PANEL), or in 16
   * bits */
  bool tr = k->transposed && k->transposed[0] && !has_outer;
  bool packed = tr && k->packed && k->packed[0];
  DType store = k->store ? k->store[0] : DT_F32;
  const char *widen = widen_fn(store);
  const char *pw = store == DT_F32 ? "MC_GEMM_PANEL" : "MC_GEMM_PANEL16";
  const char *at = !has_inner ? trow
                   : packed
                       ? cg_strf(A, "%s / %s * (%s * %s) + c * %s + %s %% %s",
                                 trow, pw, inner, pw, pw, trow, pw)
                   : tr ? cg_strf(A, "c * %s + %s", n, trow)
                        : cg_strf(A, "%s * %s + c", trow, inner);
  const char *value = *widen ? cg_strf(A, "%s(table[%s])", widen, at)
                             : cg_strf(A, "table[%s]", at);
  if (has_inner) {
    cg_line(k, depth, "for (int64_t c = 0; c < %s; c++)", inner);
    cg_line(k, depth + 1, "y[%s * %s + c] = %s;", yrow, inner, value);
  } else {
    cg_line(k, depth, "y[%s] = %s;", yrow, value);
  }
  cg_line(k, depth - 1, "}");
  cg_line(k, 1, "return MC_OK;");
  return true;
}

/* gather's gradient: y = 0, then y[o, index[j], i] += updates[o, j, i], j
 * in order (equal indices add up in that order); each index range-checked
 * before anything is added. */
static bool kernel_scatter_add(CgKernel *k) {
  const Op *op = k->op;
  const Shape *ts = &op->results[0]->type.shape;
  TableAxes t =
      table_axes(k, ts, &op->operands[1]->type.shape, op->attrs.axis.axis);
  const char *n = t.n, *inner = t.inner, *nidx = t.nidx;
  Arena *A = k->arena;
  cg_line(k, 1, "for (int64_t j = 0; j < %s; j++)", nidx);
  check_index(k, 2, "index[j]", n);
  cg_line(k, 1, "for (int64_t e = 0; e < %s; e++)",
          cg_kproduct(k, ts, 0, ts->rank));
  cg_line(k, 2, "y[e] = 0;");
  int depth = 1;
  bool has_outer = t.has_outer, has_inner = t.has_inner;
  if (has_outer)
    cg_line(k, depth++, "for (int64_t o = 0; o < %s; o++)", t.outer);
  cg_line(k, depth++, "for (int64_t j = 0; j < %s; j++) {", nidx);
  cg_line(k, depth, "const int64_t i = index[j];");
  const char *urow = has_outer ? cg_strf(A, "(o * %s + j)", nidx) : "j";
  const char *yrow = has_outer ? cg_strf(A, "(o * %s + i)", n) : "i";
  if (has_inner) {
    cg_line(k, depth, "for (int64_t c = 0; c < %s; c++)", inner);
    cg_line(k, depth + 1, "y[%s * %s + c] += updates[%s * %s + c];", yrow,
            inner, urow, inner);
  } else {
    cg_line(k, depth, "y[%s] += updates[%s];", yrow, urow);
  }
  cg_line(k, depth - 1, "}");
  cg_line(k, 1, "return MC_OK;");
  return true;
}

/* ---- data movement
 * ------------------------------------------------------------ */

/* Element j along axis i of y is x element start[i] + j * step[i]. Bounds
 * are checked at run time where they are not known to hold. */
static bool kernel_slice(CgKernel *k) {
  const Op *op = k->op;
  const Shape *xs = &op->operands[0]->type.shape;
  const Shape *ys = &op->results[0]->type.shape;
  Arena *A = k->arena;
  const char *start[MAX_RANK];
  for (int i = 0; i < xs->rank; i++) {
    start[i] = cg_kdim(k, op->attrs.slice.start[i]);
    if (cg_slice_axis_checked(op, i))
      continue;
    k->can_fail = true;
    const char *e = cg_kdim(k, ys->dims[i]), *n = cg_kdim(k, xs->dims[i]);
    int64_t step = op->attrs.slice.step[i];
    cg_line(k, 1, "if (%s > 0) {", e);
    cg_line(k, 2,
            "const int64_t first = %s, last = %s + (%s - 1) * %" PRId64 ";",
            start[i], start[i], e, step);
    cg_line(k, 2, "if (first < 0 || first >= %s || last < 0 || last >= %s)", n,
            n);
    cg_line(k, 3,
            "return mc_fail(err, MC_ERR_RANGE, \"slice of axis %d reads index "
            "%%lld outside [0, %%lld) at %s\", (long long)(first < 0 || first "
            ">= %s ? first : last), (long long)%s);",
            i, k->where, n, n);
    cg_line(k, 1, "}");
  }
  const char *vars[MAX_RANK], *pos[MAX_RANK];
  cg_line(k, 1, "int64_t o = 0;");
  int depth = cg_open_loops(k, 1, ys, 0, vars, false);
  for (int i = 0; i < xs->rank; i++) {
    int64_t step = op->attrs.slice.step[i];
    bool zero_start = cg_is_lit(start[i], "0");
    if (!vars[i])
      pos[i] = zero_start ? NULL : start[i];
    else if (step == 1)
      pos[i] =
          zero_start ? vars[i] : cg_strf(A, "(%s + %s)", start[i], vars[i]);
    else if (zero_start)
      pos[i] = cg_strf(A, "%s * %" PRId64, vars[i], step);
    else
      pos[i] = cg_strf(A, "(%s + %s * %" PRId64 ")", start[i], vars[i], step);
    /* a negative step needs parentheses in "pos * stride" */
    if (vars[i] && zero_start && step != 1)
      pos[i] = cg_strf(A, "(%s)", pos[i]);
  }
  cg_line(k, depth, "y[o++] = x[%s];", cg_strided_index(k, xs, pos));
  if (k->can_fail)
    cg_line(k, 1, "return MC_OK;");
  return true;
}

/* Copies, per index of the axes before `axis`, each operand's contiguous
 * chunk in turn. */
static bool kernel_concat(CgKernel *k) {
  const Op *op = k->op;
  const Shape *ys = &op->results[0]->type.shape;
  int axis = op->attrs.axis.axis;
  const char *outer = cg_kproduct(k, ys, 0, axis);
  bool has_outer = !cg_is_lit(outer, "1");
  int depth = 1;
  cg_line(k, depth, "int64_t o = 0;");
  if (has_outer)
    cg_line(k, depth++, "for (int64_t i = 0; i < %s; i++) {", outer);
  for (int n = 0; n < op->noperands; n++) {
    const Shape *s = &op->operands[n]->type.shape;
    const char *chunk = cg_kproduct(k, s, axis, s->rank);
    if (cg_is_lit(chunk, "0"))
      continue;
    cg_line(k, depth, "for (int64_t j = 0; j < %s; j++)", chunk);
    if (has_outer)
      cg_line(k, depth + 1, "y[o++] = %s[i * %s + j];", cg_operand_name(op, n),
              chunk);
    else
      cg_line(k, depth + 1, "y[o++] = %s[j];", cg_operand_name(op, n));
  }
  if (has_outer)
    cg_line(k, 1, "}");
  return true;
}

/* y axis i is x axis perm[i]: loop over y, read x with permuted strides (a
 * weight kept in 16 bits widened: c_weights.c). */
static bool kernel_permute(CgKernel *k) {
  const Op *op = k->op;
  const Shape *xs = &op->operands[0]->type.shape;
  const Shape *ys = &op->results[0]->type.shape;
  const char *vars[MAX_RANK], *pos[MAX_RANK] = {0};
  cg_line(k, 1, "int64_t o = 0;");
  int depth = cg_open_loops(k, 1, ys, 0, vars, false);
  for (int i = 0; i < ys->rank; i++)
    pos[op->attrs.perm.perm[i]] = vars[i];
  const char *x = cg_strf(k->arena, "x[%s]", cg_strided_index(k, xs, pos));
  const char *widen = widen_fn(k->store ? k->store[0] : DT_F32);
  cg_line(k, depth, "y[o++] = %s;",
          *widen ? cg_strf(k->arena, "%s(%s)", widen, x) : x);
  return true;
}

static bool kernel_iota(CgKernel *k) {
  const Op *op = k->op;
  const Shape *ys = &op->results[0]->type.shape;
  int axis = op->attrs.axis.axis;
  const char *vars[MAX_RANK];
  cg_line(k, 1, "int64_t o = 0;");
  int depth = cg_open_loops(k, 1, ys, 0, vars, false);
  cg_line(k, depth, "y[o++] = (%s)%s;", cg_ctype(op->results[0]->type.dtype),
          vars[axis] ? vars[axis] : "0");
  return true;
}

bool cg_kernel_movement(CgKernel *k, Diag *d) {
  const Op *op = k->op;
  if (op->kind == OP_GATHER)
    return kernel_gather(k);
  if (op->kind == OP_SCATTER_ADD)
    return kernel_scatter_add(k);
  if (op->kind == OP_SLICE)
    return kernel_slice(k);
  if (op->kind == OP_PERMUTE)
    return kernel_permute(k);
  if (op->kind == OP_IOTA)
    return kernel_iota(k);
  if (op->kind == OP_CONCAT && op->noperands <= 16)
    return kernel_concat(k);
  if (op->kind == OP_CONCAT)
    diag_error(d, op->loc,
               "concat of more than 16 operands is not supported by the C "
               "backend yet");
  else
    diag_error(d, op->loc, "internal: %s is no data movement",
               ir_op_info[op->kind].name);
  return false;
}
