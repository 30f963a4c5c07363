/* Kernels of the decoding ops: dynamic_slice, dynamic_update_slice,
 * take_along_axis, topk, cumsum, random_uniform and categorical.
 *
 * Run-time starts and indices are range-checked: a start outside
 * [0, dim - size] or an index outside [0, dim) returns MC_ERR_RANGE naming
 * the model line (no clamping: a decoding loop that runs past its cache is
 * a bug to report, not to hide). dynamic_update_slice copies its operand
 * and then writes the block, or, when the emitter proved the operand dead
 * afterwards (k->in_place, see cg_update_in_place), writes only the block
 * into the operand's buffer. topk, random_uniform and categorical call the
 * runtime (runtime/mc_decode.c, where the generator is defined).
 */
#include <string.h>

#include "c_emit.h"

/* "const int64_t start0 = s0[0], ...;" and the range check of each start
 * against dims of x for a block of extents `block`. */
static void emit_starts(CgKernel *k, int first, const Shape *x,
                        const Shape *block, const char *what) {
  const Op *op = k->op;
  k->can_fail = true;
  for (int i = 0; i < x->rank; i++) {
    const char *n = cg_kdim(k, x->dims[i]), *e = cg_kdim(k, block->dims[i]);
    cg_line(k, 1, "const int64_t start%d = %s[0];", i,
            cg_operand_name(op, first + i));
    cg_line(k, 1, "if (start%d < 0 || start%d > %s - %s)", i, i, n, e);
    cg_line(k, 2,
            "return mc_fail(err, MC_ERR_RANGE, \"%s start %%lld of axis %d "
            "is outside [0, %%lld] at %s\", (long long)start%d, (long "
            "long)(%s - %s));",
            what, i, k->where, i, n, e);
  }
}

/* Positions start_i + var_i along every axis of x (vars over the block). */
static char *block_index(CgKernel *k, const Shape *x, const char **vars) {
  const char *pos[MAX_RANK];
  for (int i = 0; i < x->rank; i++)
    pos[i] = vars[i] ? cg_strf(k->arena, "(start%d + %s)", i, vars[i])
                     : cg_strf(k->arena, "start%d", i);
  return cg_strided_index(k, x, pos);
}

static bool kernel_dynamic_slice(CgKernel *k) {
  const Shape *x = &k->op->operands[0]->type.shape;
  const Shape *y = &k->op->results[0]->type.shape;
  emit_starts(k, 1, x, y, "dynamic_slice");
  const char *vars[MAX_RANK];
  cg_line(k, 1, "int64_t o = 0;");
  int depth = cg_open_loops(k, 1, y, 0, vars, false);
  cg_line(k, depth, "y[o++] = x[%s];", block_index(k, x, vars));
  cg_line(k, 1, "return MC_OK;");
  return true;
}

static bool kernel_dynamic_update_slice(CgKernel *k) {
  const Op *op = k->op;
  const Shape *x = &op->operands[0]->type.shape;
  const Shape *u = &op->operands[1]->type.shape;
  emit_starts(k, 2, x, u, "dynamic_update_slice");
  if (!k->in_place)
    cg_line(k, 1, "memcpy(y, x, (size_t)%s * sizeof *y);",
            cg_kproduct(k, x, 0, x->rank));
  const char *vars[MAX_RANK];
  cg_line(k, 1, "int64_t o = 0;");
  int depth = cg_open_loops(k, 1, u, 0, vars, false);
  cg_line(k, depth, "y[%s] = update[o++];", block_index(k, x, vars));
  cg_line(k, 1, "return MC_OK;");
  return true;
}

/* y[.., j, ..] = x[.., index[.., j, ..], ..]: loops over the indices. */
static bool kernel_take_along_axis(CgKernel *k) {
  const Op *op = k->op;
  const Shape *x = &op->operands[0]->type.shape;
  const Shape *y = &op->results[0]->type.shape;
  int axis = op->attrs.axis.axis;
  const char *n = cg_kdim(k, x->dims[axis]);
  k->can_fail = true;
  const char *vars[MAX_RANK], *pos[MAX_RANK];
  cg_line(k, 1, "int64_t o = 0;");
  int depth = cg_open_loops(k, 1, y, 0, vars, true);
  cg_line(k, depth, "const int64_t j = index[o];");
  cg_line(k, depth, "if (j < 0 || j >= %s)", n);
  cg_line(k, depth + 1,
          "return mc_fail(err, MC_ERR_RANGE, \"take_along_axis index %%lld "
          "out of range [0, %%lld) at %s\", (long long)j, (long long)%s);",
          k->where, n);
  for (int i = 0; i < x->rank; i++)
    pos[i] = i == axis ? "j" : vars[i];
  cg_line(k, depth, "y[o++] = x[%s];", cg_strided_index(k, x, pos));
  cg_close_block(k, depth);
  cg_line(k, 1, "return MC_OK;");
  return true;
}

static const char *suffix(DType t) {
  return t == DT_F32   ? "f32"
         : t == DT_F64 ? "f64"
         : t == DT_I32 ? "i32"
                       : "i64";
}

static bool kernel_topk(CgKernel *k) {
  const Op *op = k->op;
  const Shape *x = &op->operands[0]->type.shape;
  const Shape *y = &op->results[0]->type.shape;
  int axis = op->attrs.axis.axis;
  const char *n = cg_kdim(k, x->dims[axis]), *kk = cg_kdim(k, y->dims[axis]);
  int64_t a, b;
  if (!(dim_is_const(x->dims[axis], &a) && dim_is_const(y->dims[axis], &b))) {
    k->can_fail = true;
    cg_line(k, 1, "if (%s > %s)", kk, n);
    cg_line(k, 2,
            "return mc_fail(err, MC_ERR_SHAPE, \"topk of %%lld out of %%lld "
            "at %s\", (long long)%s, (long long)%s);",
            k->where, kk, n);
  }
  cg_line(k, 1, "mc_topk_%s(x, y, %s, %s, %s, %s);",
          suffix(op->operands[0]->type.dtype), cg_kproduct(k, x, 0, axis), n,
          cg_kproduct(k, x, axis + 1, x->rank), kk);
  if (k->can_fail)
    cg_line(k, 1, "return MC_OK;");
  return true;
}

/* Running sums along the axis: floats in a double accumulator, each sum
 * rounded to the dtype (torch's CPU cumsum); integers wrap. */
static bool kernel_cumsum(CgKernel *k) {
  const Op *op = k->op;
  const Shape *x = &op->operands[0]->type.shape;
  int axis = op->attrs.axis.axis;
  DType t = op->results[0]->type.dtype;
  const char *outer = cg_kproduct(k, x, 0, axis);
  const char *n = cg_kdim(k, x->dims[axis]);
  const char *inner = cg_kproduct(k, x, axis + 1, x->rank);
  bool flt = dtype_is_float(t);
  cg_line(k, 1, "for (int64_t o = 0; o < %s; o++)", outer);
  cg_line(k, 2, "for (int64_t i = 0; i < %s; i++) {", inner);
  cg_line(k, 3, "%s acc = 0;%s", flt ? "double" : "uint64_t",
          flt ? "" : " /* wraps like torch */");
  cg_line(k, 3, "for (int64_t j = 0; j < %s; j++) {", n);
  cg_line(k, 4, "const int64_t at = (o * %s + j) * %s + i;", n, inner);
  cg_line(k, 4, "acc += (%s)x[at];", flt ? "double" : "uint64_t");
  cg_line(k, 4, "y[at] = (%s)acc;", cg_ctype(t));
  cg_line(k, 3, "}");
  cg_line(k, 2, "}");
  return true;
}

static bool kernel_random_uniform(CgKernel *k) {
  const Shape *y = &k->op->results[0]->type.shape;
  cg_line(k, 1, "mc_random_uniform_%s(state[0], y, %s);",
          suffix(k->op->results[0]->type.dtype), cg_kproduct(k, y, 0, y->rank));
  return true;
}

static bool kernel_categorical(CgKernel *k) {
  const Op *op = k->op;
  const Shape *p = &op->operands[0]->type.shape;
  int axis = op->attrs.axis.axis;
  cg_line(k, 1, "mc_categorical_%s(p, u, y, %s, %s, %s);",
          suffix(op->operands[0]->type.dtype), cg_kproduct(k, p, 0, axis),
          cg_kdim(k, p->dims[axis]), cg_kproduct(k, p, axis + 1, p->rank));
  return true;
}

bool cg_kernel_decode(CgKernel *k, Diag *d) {
  const Op *op = k->op;
  if (op->noperands > 10) {
    diag_error(d, op->loc, "%s of rank above 8 is not supported",
               ir_op_info[op->kind].name);
    return false;
  }
  if (k->in_place && op->kind != OP_DYNAMIC_UPDATE_SLICE) {
    diag_error(d, op->loc, "internal: only dynamic_update_slice is in place");
    return false;
  }
  if (op->kind == OP_DYNAMIC_SLICE)
    return kernel_dynamic_slice(k);
  if (op->kind == OP_DYNAMIC_UPDATE_SLICE)
    return kernel_dynamic_update_slice(k);
  if (op->kind == OP_TAKE_ALONG_AXIS)
    return kernel_take_along_axis(k);
  if (op->kind == OP_TOPK)
    return kernel_topk(k);
  if (op->kind == OP_CUMSUM)
    return kernel_cumsum(k);
  if (op->kind == OP_RANDOM_UNIFORM)
    return kernel_random_uniform(k);
  if (op->kind == OP_CATEGORICAL)
    return kernel_categorical(k);
  diag_error(d, op->loc, "internal: %s is not a decoding op",
             ir_op_info[op->kind].name);
  return false;
}
