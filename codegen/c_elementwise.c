/* Elementwise kernels: one loop over the result's elements for an
 * elementwise op, a broadcast copy, or a fused op (passes/fuse.c), whose
 * region's scalar ops become one local each, in order, inside the loop.
 *
 * Operands broadcast numpy-style: an operand axis of constant extent 1 (or
 * missing on the left) is read with stride 0. When every operand has the
 * result's shape or one element, the loop is a single flat one, which
 * compilers vectorize.
 *
 * Exactness: each IR op is one C operation on float/double locals (with
 * -ffp-contract=off and SSE arithmetic, a local rounds as a store would),
 * so a fused loop gives the bits of the separate kernels.
 */
#include <string.h>

#include "c_emit.h"

/* Elements per chunk of a loop that runs on several threads: enough that a
 * chunk costs more than handing it to a thread. */
#define GRAIN "16384"

/* ---- elementwise ----------------------------------------------------------
 */

bool cg_op_is_elementwise(OpKind kind) {
  return (ir_op_info[kind].flags & OPF_ELEMENTWISE) != 0;
}

bool cg_op_is_alias(const Op *op) {
  if (op->kind == OP_RESHAPE)
    return true;
  if (op->kind != OP_BROADCAST)
    return false;
  const Shape *x = &op->operands[0]->type.shape,
              *y = &op->results[0]->type.shape;
  int lead = y->rank - x->rank;
  for (int i = 0; i < y->rank; i++)
    if (i < lead ? !cg_is_one(y->dims[i])
                 : !dim_eq(y->dims[i], x->dims[i - lead]))
      return false;
  return true;
}

/* name(a) from libm, or for f32 exp, expm1, log, log1p, tanh and erf the
 * runtime's mc_vmath.h version (a few ulp, branch-free: loops over it
 * vectorize). */
static char *fn1(CgKernel *k, DType t, const char *name, const char *a) {
  static const char *const vmath[] = {"exp",   "expm1", "log",
                                      "log1p", "tanh",  "erf"};
  if (t == DT_F32)
    for (size_t i = 0; i < sizeof vmath / sizeof vmath[0]; i++)
      if (!strcmp(name, vmath[i]))
        return cg_strf(k->arena, "mc_%sf(%s)", name, a);
  return cg_strf(k->arena, "%s%s(%s)", name, t == DT_F32 ? "f" : "", a);
}

/* op_<name>_<dtype>(a, b): the operations where C and torch differ, from
 * the runtime's mc_ops.h */
static char *op_call(CgKernel *k, DType t, const char *name, const char *a,
                     const char *b) {
  const char *sfx = t == DT_F32   ? "f32"
                    : t == DT_F64 ? "f64"
                    : t == DT_I32 ? "i32"
                                  : "i64";
  return cg_strf(k->arena, "op_%s_%s(%s, %s)", name, sfx, a, b);
}

/* Integer +, -, * wrap around like torch instead of being undefined. */
static char *wrapping(CgKernel *k, DType t, const char *a, const char *op,
                      const char *b) {
  const char *u = t == DT_I32 ? "uint32_t" : "uint64_t";
  return cg_strf(k->arena, "(%s)((%s)%s %s (%s)%s)", cg_ctype(t), u, a, op, u,
                 b);
}

static char *cast_expr(CgKernel *k, DType from, DType to, const char *a) {
  if (from == to)
    return (char *)a;
  if (to == DT_BOOL)
    return cg_strf(k->arena, "(uint8_t)(%s != 0)", a);
  return cg_strf(k->arena, "(%s)%s", cg_ctype(to), a);
}

/* The C expression of one element of an elementwise op (or the copy of a
 * broadcast), given how each operand element is read. */
static char *elementwise_expr(CgKernel *k, const Op *op, const char *const *x,
                              Diag *d) {
  DType t = op->operands[op->kind == OP_SELECT ? 1 : 0]->type.dtype;
  DType rt = op->results[0]->type.dtype;
  bool flt = dtype_is_float(t), f32 = t == DT_F32;
  Arena *A = k->arena;
  const char *a = x[0], *b = op->noperands > 1 ? x[1] : NULL;
  switch (op->kind) {
  case OP_NEG:
    return flt ? cg_strf(A, "-%s", a) : wrapping(k, t, "0", "-", a);
  case OP_ABS:
    return flt ? fn1(k, t, "fabs", a)
               : cg_strf(A, "(%s < 0 ? %s : %s)", a,
                         wrapping(k, t, "0", "-", a), a);
  case OP_SIGN:
    return flt ? cg_strf(A, "(%s > 0 ? %s : %s < 0 ? %s : %s)", a,
                         f32 ? "1.0f" : "1.0", a, f32 ? "-1.0f" : "-1.0", a)
               : cg_strf(A, "(%s)((%s > 0) - (%s < 0))", cg_ctype(t), a, a);
  case OP_EXP:
    return fn1(k, t, "exp", a);
  case OP_EXPM1:
    return fn1(k, t, "expm1", a);
  case OP_LOG:
    return fn1(k, t, "log", a);
  case OP_LOG1P:
    return fn1(k, t, "log1p", a);
  case OP_SQRT:
    return fn1(k, t, "sqrt", a);
  case OP_TANH:
    return fn1(k, t, "tanh", a);
  case OP_SIGMOID:
    return f32 ? cg_strf(A, "mc_sigmoidf(%s)", a)
               : cg_strf(A, "1.0 / (1.0 + exp(-%s))", a);
  case OP_ERF:
    return fn1(k, t, "erf", a);
  case OP_SIN:
    return fn1(k, t, "sin", a);
  case OP_COS:
    return fn1(k, t, "cos", a);
  case OP_FLOOR:
    return fn1(k, t, "floor", a);
  case OP_CEIL:
    return fn1(k, t, "ceil", a);
  case OP_NOT:
    return cg_strf(A, "(uint8_t)!%s", a);
  case OP_CAST:
    return cast_expr(k, t, rt, a);
  case OP_BROADCAST:
    return (char *)a;
  case OP_ADD:
    return flt ? cg_strf(A, "%s + %s", a, b) : wrapping(k, t, a, "+", b);
  case OP_SUB:
    return flt ? cg_strf(A, "%s - %s", a, b) : wrapping(k, t, a, "-", b);
  case OP_MUL:
    return flt ? cg_strf(A, "%s * %s", a, b) : wrapping(k, t, a, "*", b);
  case OP_DIV:
    return flt ? cg_strf(A, "%s / %s", a, b) : op_call(k, t, "div", a, b);
  case OP_MOD:
    return op_call(k, t, "mod", a, b);
  case OP_POW:
    return cg_strf(A, "%s(%s, %s)", f32 ? "powf" : "pow", a, b);
  case OP_MAXIMUM:
    return flt ? op_call(k, t, "max", a, b)
               : cg_strf(A, "(%s > %s ? %s : %s)", a, b, a, b);
  case OP_MINIMUM:
    return flt ? op_call(k, t, "min", a, b)
               : cg_strf(A, "(%s < %s ? %s : %s)", a, b, a, b);
  case OP_LT:
    return cg_strf(A, "(uint8_t)(%s < %s)", a, b);
  case OP_LE:
    return cg_strf(A, "(uint8_t)(%s <= %s)", a, b);
  case OP_GT:
    return cg_strf(A, "(uint8_t)(%s > %s)", a, b);
  case OP_GE:
    return cg_strf(A, "(uint8_t)(%s >= %s)", a, b);
  case OP_EQ:
    return cg_strf(A, "(uint8_t)(%s == %s)", a, b);
  case OP_NE:
    return cg_strf(A, "(uint8_t)(%s != %s)", a, b);
  case OP_AND:
    return cg_strf(A, "(uint8_t)(%s && %s)", a, b);
  case OP_OR:
    return cg_strf(A, "(uint8_t)(%s || %s)", a, b);
  case OP_SELECT:
    return cg_strf(A, "%s ? %s : %s", a, b, x[2]);
  case OP_CONST:
  case OP_PARAM:
  case OP_IOTA:
  case OP_MATMUL:
  case OP_REDUCE_SUM:
  case OP_REDUCE_MEAN:
  case OP_REDUCE_MAX:
  case OP_REDUCE_MIN:
  case OP_LOGSUMEXP:
  case OP_ARGMAX:
  case OP_ARGMIN:
  case OP_SOFTMAX:
  case OP_LOG_SOFTMAX:
  case OP_GATHER:
  case OP_SCATTER_ADD:
  case OP_SLICE:
  case OP_CONCAT:
  case OP_RESHAPE:
  case OP_PERMUTE:
  case OP_DYNAMIC_SLICE:
  case OP_DYNAMIC_UPDATE_SLICE:
  case OP_TAKE_ALONG_AXIS:
  case OP_TOPK:
  case OP_CUMSUM:
  case OP_RANDOM_UNIFORM:
  case OP_CATEGORICAL:
  case OP_SCAN:
  case OP_YIELD:
  case OP_FUSED:
  case OP_GRAD:
  case OP_STOP_GRADIENT:
  case OP_COUNT:
    break;
  }
  diag_error(d, op->loc, "internal: %s is not elementwise",
             ir_op_info[op->kind].name);
  return NULL;
}

/* Whether o calls one of mc_vmath.h's functions: the long chains of
 * dependent operations in a fused loop. */
static bool calls_vmath(const Op *o) {
  static const OpKind vmath[] = {OP_EXP,  OP_EXPM1,   OP_LOG, OP_LOG1P,
                                 OP_TANH, OP_SIGMOID, OP_ERF};
  for (size_t i = 0; i < sizeof vmath / sizeof vmath[0]; i++)
    if (o->kind == vmath[i])
      return o->results[0]->type.dtype == DT_F32;
  return false;
}

int cg_fused_stages(const Op *op, int *stage, bool *kept) {
  int s = 0, n = 0, calls = 0;
  bool first = true, after_call = false;
  for (const Op *o = op->regions[0]->first; o; o = o->next, n++) {
    if (o->kind != OP_CONST && o->kind != OP_YIELD) {
      bool call = calls_vmath(o);
      if ((call || after_call) && !first)
        s++;
      first = false;
      after_call = call;
      calls += call;
    }
    stage[n] = s;
  }
  if (calls < 2)
    memset(stage, 0, (size_t)n * sizeof *stage);
  int j = 0;
  for (const Op *o = op->regions[0]->first; o; o = o->next, j++) {
    kept[j] = false;
    if (o->kind == OP_CONST || o->kind == OP_YIELD)
      continue;
    int i = j + 1;
    for (const Op *r = o->next; r; r = r->next, i++)
      for (int q = 0; q < r->noperands; q++)
        kept[j] |= r->operands[q] == o->results[0] && stage[i] > stage[j];
  }
  return calls < 2 ? 1 : s + 1;
}

/* A fused op's region as C text: its ops in order, and the text of each
 * value (operand reads, literals, locals tN), by position: arguments, then
 * ops. */
typedef struct Region {
  const Op *op;
  const Block *body;
  int nops, nv;
  const Op **ops;
  const Value **vals;
  const char **text;
} Region;

static Region region_text(CgKernel *k, const Op *op, const char *const *x) {
  Region R = {op, op->regions[0], 0, 0, NULL, NULL, NULL};
  for (const Op *o = R.body->first; o; o = o->next)
    R.nops++;
  int n = R.body->nargs + R.nops;
  R.ops = arena_alloc(k->arena, (size_t)R.nops * sizeof *R.ops);
  R.vals = arena_alloc(k->arena, (size_t)n * sizeof *R.vals);
  R.text = arena_alloc(k->arena, (size_t)n * sizeof *R.text);
  for (int i = 0; i < R.body->nargs; i++) {
    R.vals[R.nv] = R.body->args[i];
    R.text[R.nv++] = x[i];
  }
  int local = 0, j = 0;
  for (const Op *o = R.body->first; o; o = o->next) {
    R.ops[j++] = o;
    if (o->kind == OP_YIELD)
      continue;
    const Value *r = o->results[0];
    R.vals[R.nv] = r;
    R.text[R.nv++] = o->kind == OP_CONST ? cg_literal(k->arena, r->type.dtype,
                                                      o->attrs.cst.data, 0)
                                         : cg_strf(k->arena, "t%d", local++);
  }
  return R;
}

static const char *text_of(const Region *R, const Value *v) {
  for (int i = 0; i < R->nv; i++)
    if (R->vals[i] == v)
      return R->text[i];
  return NULL;
}

/* Whether an op of stage s reads op j's result. */
static bool read_in(const Region *R, int j, const int *stage, int s) {
  for (int i = j + 1; i < R->nops; i++)
    for (int q = 0; q < R->ops[i]->noperands; q++)
      if (R->ops[i]->operands[q] == R->ops[j]->results[0] && stage[i] == s)
        return true;
  return false;
}

/* The statements of the region's ops at `depth`, and the expression of its
 * result. With stages (cg_fused_stages; NULL: one), only the ops of stage
 * s: first the locals of earlier stages that they read, from their tile
 * arrays tN_tile at i - i0, last those that later stages read, into
 * theirs. */
static const char *region_body(CgKernel *k, const Region *R, int depth,
                               const int *stage, const bool *kept, int s,
                               Diag *d) {
  for (int j = 0; stage && j < R->nops; j++)
    if (stage[j] < s && kept[j] && read_in(R, j, stage, s)) {
      const Value *r = R->ops[j]->results[0];
      const char *t = text_of(R, r);
      cg_line(k, depth, "const %s %s = %s_tile[i - i0];",
              cg_ctype(r->type.dtype), t, t);
    }
  const char *result = NULL;
  for (int j = 0; j < R->nops; j++) {
    const Op *o = R->ops[j];
    const char *ox[3] = {NULL, NULL, NULL};
    for (int i = 0; i < o->noperands && i < 3; i++)
      ox[i] = text_of(R, o->operands[i]);
    if (o->kind == OP_YIELD) {
      result = ox[0];
      break;
    }
    if (o->kind == OP_CONST || (stage && stage[j] != s))
      continue;
    const char *e = elementwise_expr(k, o, ox, d);
    if (!e)
      return NULL;
    cg_line(k, depth, "const %s %s = %s;", cg_ctype(o->results[0]->type.dtype),
            text_of(R, o->results[0]), e);
  }
  for (int j = 0; stage && j < R->nops; j++)
    if (stage[j] == s && kept[j]) {
      const char *t = text_of(R, R->ops[j]->results[0]);
      cg_line(k, depth, "%s_tile[i - i0] = %s;", t, t);
    }
  if (!result)
    diag_error(d, R->op->loc, "internal: fused region without a yield");
  return result;
}

/* The statements of one element inside the loop at `depth`, given the
 * operand reads x; returns the expression of the result. A fused op's region
 * ops become `const T tN = ...;` locals (constants inline as literals). */
static const char *element_body(CgKernel *k, const Op *op, int depth,
                                const char *const *x, Diag *d) {
  if (op->kind != OP_FUSED)
    return elementwise_expr(k, op, x, d);
  Region R = region_text(k, op, x);
  return region_body(k, &R, depth, NULL, NULL, 0, d);
}

/* Elements per tile of a staged loop: the locals passed from one stage to
 * the next stay in L1 (a KB each). */
#define TILE "256"

/* The flat loop of a fused op with stages (cg_fused_stages): over tiles of
 * the range, each stage a loop over the tile. */
static bool staged_loop(CgKernel *k, const Op *op, const char *const *x,
                        const int *stage, const bool *kept, int nstages,
                        Diag *d) {
  const Shape *ys = &op->results[0]->type.shape;
  Region R = region_text(k, op, x);
  cg_begin_range(k, cg_kproduct(k, ys, 0, ys->rank), GRAIN);
  cg_line(k, 1, "for (int64_t i0 = begin; i0 < end; i0 += " TILE ") {");
  cg_line(k, 2,
          "const int64_t i1 = end - i0 < " TILE " ? end : i0 + " TILE ";");
  for (int j = 0; j < R.nops; j++)
    if (kept[j]) {
      const Value *r = R.ops[j]->results[0];
      cg_line(k, 2, "%s %s_tile[" TILE "];", cg_ctype(r->type.dtype),
              text_of(&R, r));
    }
  for (int s = 0; s < nstages; s++) {
    cg_line(k, 2, "for (int64_t i = i0; i < i1; i++) {");
    const char *e = region_body(k, &R, 3, stage, kept, s, d);
    if (!e)
      return false;
    if (s == nstages - 1)
      cg_line(k, 3, "y[i] = %s;", e);
    cg_line(k, 2, "}");
  }
  cg_line(k, 1, "}");
  cg_end_range(k);
  return true;
}

/* y = f(operands) over y's shape with numpy broadcasting: an operand axis of
 * constant extent 1 (or missing on the left) reads with stride 0. When every
 * pointer operand has y's shape or one element, a single flat loop. */
bool cg_kernel_elementwise(CgKernel *k, Diag *d) {
  const Op *op = k->op;
  const Shape *ys = &op->results[0]->type.shape;
  int n = op->noperands;
  bool fused = op->kind == OP_FUSED;
  const char **x = arena_alloc(k->arena, (size_t)(n + 1) * sizeof *x);
  bool flat = true;
  for (int i = 0; i < n; i++) {
    int64_t numel;
    const Shape *s = &op->operands[i]->type.shape;
    if (!k->literal[i] && !(shape_const_numel(s, &numel) && numel == 1) &&
        !shape_eq(s, ys))
      flat = false;
  }
  if (flat) {
    bool scalar = ys->rank == 0;
    const char *idx = scalar ? "0" : "i";
    for (int i = 0; i < n; i++) {
      int64_t numel;
      const Shape *s = &op->operands[i]->type.shape;
      const char *name = cg_operand_name(op, i);
      if (k->literal[i])
        x[i] = k->literal[i];
      else if (shape_const_numel(s, &numel) && numel == 1)
        x[i] = cg_strf(k->arena, "%s[0]", name);
      else
        x[i] = cg_strf(k->arena, "%s[%s]", name, idx);
    }
    if (fused && !scalar) {
      int nops = 0;
      for (const Op *o = op->regions[0]->first; o; o = o->next)
        nops++;
      int *stage = arena_alloc(k->arena, (size_t)nops * sizeof *stage);
      bool *kept = arena_alloc(k->arena, (size_t)nops * sizeof *kept);
      int nstages = cg_fused_stages(op, stage, kept);
      if (nstages > 1)
        return staged_loop(k, op, x, stage, kept, nstages, d);
    }
    int depth = 1;
    if (!scalar) {
      cg_begin_range(k, cg_kproduct(k, ys, 0, ys->rank), GRAIN);
      cg_line(k, 1, "for (int64_t i = begin; i < end; i++)%s",
              fused ? " {" : "");
      depth = 2;
    }
    const char *e = element_body(k, op, depth, x, d);
    if (!e)
      return false;
    cg_line(k, depth, "y[%s] = %s;", idx, e);
    if (!scalar && fused)
      cg_close_block(k, depth);
    if (!scalar)
      cg_end_range(k);
    return true;
  }
  /* the range is the outermost axis with a loop; the grain, rows of at
   * least GRAIN elements */
  int outer = 0;
  while (outer < ys->rank - 1 && cg_is_one(ys->dims[outer]))
    outer++;
  const char *vars[MAX_RANK];
  const char *inner = cg_kproduct(k, ys, outer + 1, ys->rank);
  cg_begin_range(k, cg_kdim(k, ys->dims[outer]),
                 strcmp(inner, "1")
                     ? cg_strf(k->arena, "%s / (%s) + 1", GRAIN, inner)
                     : GRAIN);
  const char *ov = cg_loop_vars[outer];
  cg_line(k, 1, "for (int64_t %s = begin; %s < end; %s++)", ov, ov, ov);
  int depth = cg_open_loops(k, 2, ys, 1u << outer, vars, fused);
  vars[outer] = ov;
  for (int i = 0; i < n; i++) {
    if (k->literal[i]) {
      x[i] = k->literal[i];
      continue;
    }
    const Shape *s = &op->operands[i]->type.shape;
    const char *pos[MAX_RANK];
    for (int j = 0; j < s->rank; j++) {
      int axis = j + ys->rank - s->rank;
      pos[j] = cg_is_one(s->dims[j]) ? NULL : vars[axis];
    }
    x[i] = cg_strf(k->arena, "%s[%s]", cg_operand_name(op, i),
                   cg_strided_index(k, s, pos));
  }
  const char *e = element_body(k, op, depth, x, d);
  if (!e)
    return false;
  cg_line(k, depth, "y[%s] = %s;", cg_strided_index(k, ys, vars), e);
  if (fused)
    cg_close_block(k, depth);
  cg_end_range(k);
  return true;
}

const char *cg_element_at(CgKernel *k, const Op *op, int depth,
                          const char *const *pos, const char *prefix,
                          const char *const *literal, int given,
                          const char *given_expr, Diag *d) {
  const Shape *ys = &op->results[0]->type.shape;
  int n = op->noperands;
  const char **x = arena_alloc(k->arena, (size_t)(n + 1) * sizeof *x);
  for (int i = 0; i < n; i++) {
    const Shape *s = &op->operands[i]->type.shape;
    if (i == given) {
      x[i] = given_expr;
    } else if (literal && literal[i]) {
      x[i] = literal[i];
    } else {
      const char *at[MAX_RANK] = {0};
      for (int j = 0; j < s->rank; j++)
        at[j] = cg_is_one(s->dims[j]) ? NULL : pos[j + ys->rank - s->rank];
      x[i] =
          cg_strf(k->arena, "%s%d[%s]", prefix, i, cg_strided_index(k, s, at));
    }
  }
  return element_body(k, op, depth, x, d);
}

/* ---- GEMM epilogues ------------------------------------------------------
 * The elementwise op ep = k->epilogue reads the product of the matmul k->op
 * (operand `product`) and has its shape. The GEMM calls NAME_ep on blocks
 * of its result C once they are final (mc_gemm_f32_ep), and NAME_ep
 * replaces each element by ep's value there: the same C expressions as
 * ep's own loop, so the same bits, without writing and reading the
 * product. ep's other operands are read at the element's position (with
 * broadcasting): their pointers in NAME_ep_args are offset to the batch,
 * rows and columns index them within it. */

bool cg_gemm_epilogue(CgKernel *k, int depth, const char *const *vars,
                      int nbatch, int rows, int cols, const char *row0,
                      Diag *d) {
  const Op *ep = k->epilogue;
  const Shape *ys = &ep->results[0]->type.shape;
  int n = ep->noperands;
  /* the function's body, with the symbols it reads kept apart */
  CgSub outer;
  cg_sub_begin(k, &outer);
  const char *pos[MAX_RANK] = {0};
  if (rows >= 0)
    pos[rows] = "i";
  if (cols >= 0)
    pos[cols] = "j";
  int product = 0;
  while (ep->operands[product] != k->op->results[0])
    product++;
  cg_line(k, 1, "for (int64_t i = i0; i < i1; i++)");
  cg_line(k, 2, "for (int64_t j = j0; j < j1; j++) {");
  const char *e = cg_element_at(k, ep, 3, pos, "x", k->ep_literal, product,
                                "c[i * ldc + j]", d);
  if (e) {
    cg_line(k, 3, "c[i * ldc + j] = %s;", e);
    cg_line(k, 2, "}");
  }
  CgBuf body;
  uint64_t syms = cg_sub_end(k, &outer, &body);
  if (!e) {
    cg_buf_free(&body);
    return false;
  }
  /* NAME_ep_args: ep's pointer operands, then the symbols NAME_ep reads */
  CgBuf *o = &k->defs, init = {0};
  size_t start = o->len;
  cg_buf_puts(o, "typedef struct {\n");
  for (int i = 0; i < n; i++) {
    const Value *v = ep->operands[i];
    if (v == k->op->results[0] || k->ep_literal[i])
      continue;
    cg_buf_printf(o, "  const %s *x%d;\n", cg_ctype(v->type.dtype), i);
    const Shape *s = &v->type.shape;
    const char *at[MAX_RANK] = {0};
    for (int j = 0; j < s->rank; j++) {
      int axis = j + ys->rank - s->rank;
      if (axis < nbatch && !cg_is_one(s->dims[j]))
        at[j] = vars[axis];
      else if (axis == rows && row0 && !cg_is_one(s->dims[j]))
        at[j] = row0;
    }
    const char *off = cg_strided_index(k, s, at);
    cg_buf_printf(&init, "%sx%d%s%s", init.len ? ", " : "", i,
                  strcmp(off, "0") ? " + " : "", strcmp(off, "0") ? off : "");
  }
  for (int s = 0; s < MAX_SYMBOLS; s++)
    if (syms & (UINT64_C(1) << s)) {
      cg_buf_printf(o, "  int64_t %s;\n", k->symnames[s]);
      cg_buf_printf(&init, "%s%s", init.len ? ", " : "", k->symnames[s]);
    }
  bool any = init.len > 0; /* else no struct: C has no empty ones */
  if (any)
    cg_buf_printf(o, "} %s_ep_args;\n\n", k->name);
  else
    o->len = start; /* drop the struct's opening */
  cg_buf_printf(o,
                "static void %s_ep(void *ctx, float *c, int64_t ldc, int64_t "
                "i0, int64_t i1, int64_t j0, int64_t j1) {\n",
                k->name);
  if (any)
    cg_buf_printf(o, "  const %s_ep_args *args = ctx;\n", k->name);
  else
    cg_buf_puts(o, "  (void)ctx;\n");
  for (int i = 0; i < n; i++) {
    const Value *v = ep->operands[i];
    if (v != k->op->results[0] && !k->ep_literal[i])
      cg_buf_printf(o, "  const %s *restrict x%d = args->x%d;\n",
                    cg_ctype(v->type.dtype), i, i);
  }
  for (int s = 0; s < MAX_SYMBOLS; s++)
    if (syms & (UINT64_C(1) << s))
      cg_buf_printf(o, "  const int64_t %s = args->%s;\n", k->symnames[s],
                    k->symnames[s]);
  cg_buf_printf(o, "%s}\n\n", cg_buf_str(&body));
  cg_buf_free(&body);
  if (any) {
    cg_line(k, depth, "%s_ep_args ep_args = {%s};", k->name, cg_buf_str(&init));
    cg_line(k, depth, "const McEpilogue ep = {%s_ep, &ep_args};", k->name);
  } else {
    cg_line(k, depth, "const McEpilogue ep = {%s_ep, NULL};", k->name);
  }
  cg_buf_free(&init);
  return true;
}
