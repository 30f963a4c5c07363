/* The LLVM backend's reductions and softmax, as the C backend's
 * (c_kernels.c kernel_reduce, kernel_arg, kernel_softmax), bit for bit: a
 * float sum or mean accumulates in double in the order of the reduced
 * axes, max/min with the NaN-propagating op_max/op_min (mc_ops.h),
 * logsumexp subtracts the max and sums libm's exp in double, argmax/argmin
 * keep the first index (NaN wins); softmax and log_softmax are the
 * runtime's.
 *
 * sum, mean, max, min and logsumexp are kernels of their own
 * (llvm_reduce_kernel) with the C backend's fusion: an elementwise
 * prologue evaluated at each element read (a layer norm's (x - mean)^2),
 * an elementwise epilogue on each result (its rsqrt(var + eps)), and, when
 * the first axis with more than one element is kept, that axis cut into
 * ranges on the runtime's threads (each result computed by the same code
 * in any range, so the bits do not depend on the thread count).
 */
#include <math.h>
#include <string.h>

#include "llvm_emit_internal.h"

bool llvm_is_reduction(const Op *op) {
  OpKind k = op->kind;
  return k == OP_REDUCE_SUM || k == OP_REDUCE_MEAN || k == OP_REDUCE_MAX ||
         k == OP_REDUCE_MIN || k == OP_LOGSUMEXP;
}

bool llvm_is_reduce(const Op *op) {
  OpKind k = op->kind;
  return k == OP_ARGMAX || k == OP_ARGMIN || k == OP_SOFTMAX ||
         k == OP_LOG_SOFTMAX;
}

/* Loops over the axes of s in `axes` (in order); their variables into
 * pos; returns how many were opened. */
static int open_loops(LlvmK *k, const Shape *s, uint32_t axes, LlvmLoop *lp,
                      LLVMValueRef *pos) {
  int n = 0;
  for (int j = 0; j < s->rank; j++)
    if (axes & (1u << j)) {
      llvm_loop_begin(k->L, &lp[n], NULL, llvm_dim(k->L, s->dims[j], k->sym),
                      cg_loop_vars[j]);
      pos[j] = lp[n++].i;
    }
  return n;
}

static void close_loops(LlvmK *k, LlvmLoop *lp, int n) {
  while (n-- > 0)
    llvm_loop_end(k->L, &lp[n]);
}

static LLVMValueRef call(LlvmK *k, const char *name, LLVMTypeRef t,
                         LLVMValueRef *args, int n) {
  LLVMTypeRef p[2] = {t, t};
  return llvm_call(k->L, name, LLVMFunctionType(t, p, (unsigned)n, 0), args, n);
}

/* ---- argmax, argmin, softmax, log_softmax (llvm_movement_kernel's) ------ */

void llvm_reduce_body(LlvmK *k, const Op *op, LLVMValueRef xp,
                      LLVMValueRef yp) {
  LlvmEmit *L = k->L;
  LLVMBuilderRef b = L->b;
  const Shape *s = &op->operands[0]->type.shape;
  DType t = op->operands[0]->type.dtype;
  LLVMTypeRef xt = llvm_type(L, t);
  bool flt = dtype_is_float(t), f32 = t == DT_F32;
  if (op->kind == OP_SOFTMAX || op->kind == OP_LOG_SOFTMAX) {
    int axis = op->attrs.axis.axis;
    LLVMTypeRef pt = LLVMPointerType(xt, 0);
    LLVMTypeRef params[5] = {pt, pt, L->i64, L->i64, L->i64};
    LLVMValueRef args[5] = {xp, yp, llvm_numel(L, s, 0, axis, k->sym),
                            llvm_dim(L, s->dims[axis], k->sym),
                            llvm_numel(L, s, axis + 1, s->rank, k->sym)};
    llvm_call(L,
              cg_strf(&L->e->arena, "mc_%s_%s",
                      op->kind == OP_SOFTMAX ? "softmax" : "log_softmax",
                      f32 ? "f32" : "f64"),
              LLVMFunctionType(L->vd, params, 5, 0), args, 5);
    return;
  }
  /* argmax, argmin: the first index of the best; NaN wins */
  uint32_t axes = op->attrs.reduce.axes;
  int axis = 0;
  while (!(axes & (1u << axis)))
    axis++;
  axes = 1u << axis;
  uint32_t all = (uint32_t)((1u << s->rank) - 1);
  LLVMValueRef o = LLVMBuildAlloca(b, L->i64, "o");
  LLVMValueRef acc_x = LLVMBuildAlloca(b, xt, "best");
  LLVMValueRef best_i = LLVMBuildAlloca(b, L->i32, "best_index");
  LLVMBuildStore(b, llvm_i64(L, 0), o);
  LlvmLoop outer[MAX_RANK], inner[MAX_RANK];
  LLVMValueRef pos[MAX_RANK] = {0};
  int no = open_loops(k, s, all & ~axes, outer, pos);
  bool mx = op->kind == OP_ARGMAX;
  LLVMBuildStore(b, LLVMConstNull(xt), acc_x);
  LLVMBuildStore(b, LLVMConstInt(L->i32, 0, 0), best_i);
  int ni = open_loops(k, s, axes, inner, pos);
  LLVMValueRef j = inner[0].i;
  LLVMValueRef v = LLVMBuildLoad2(
      b, xt, llvm_gep(L, xt, xp, llvm_index(L, s, pos, k->sym)), "");
  LLVMValueRef best = LLVMBuildLoad2(b, xt, acc_x, "");
  /* v > best, or v NaN where best is not: (v > best or either NaN) and
   * best not NaN, two compares (AVX-512: the second masked by the first)
   * on the chain through best instead of four and two logic ops */
  LLVMValueRef take =
      flt ? LLVMBuildAnd(
                b, LLVMBuildFCmp(b, LLVMRealORD, best, best, ""),
                LLVMBuildFCmp(b, mx ? LLVMRealUGT : LLVMRealULT, v, best, ""),
                "")
          : LLVMBuildICmp(b, mx ? LLVMIntSGT : LLVMIntSLT, v, best, "");
  take = LLVMBuildOr(b, take,
                     LLVMBuildICmp(b, LLVMIntEQ, j, llvm_i64(L, 0), ""), "");
  LLVMBuildStore(b, LLVMBuildSelect(b, take, v, best, ""), acc_x);
  LLVMBuildStore(b,
                 LLVMBuildSelect(b, take, LLVMBuildTrunc(b, j, L->i32, ""),
                                 LLVMBuildLoad2(b, L->i32, best_i, ""), ""),
                 best_i);
  close_loops(k, inner, ni);
  LLVMValueRef oi = LLVMBuildLoad2(b, L->i64, o, "");
  LLVMBuildStore(b, LLVMBuildLoad2(b, L->i32, best_i, ""),
                 LLVMBuildGEP2(b, L->i32, yp, &oi, 1, ""));
  LLVMBuildStore(b, LLVMBuildAdd(b, oi, llvm_i64(L, 1), ""), o);
  close_loops(k, outer, no);
}

/* ---- sum, mean, max, min, logsumexp -------------------------------------- */

/* A reduction's kernel: red, its prologue pro and epilogue ep (or NULL),
 * which of their operands are literals, where each operand's pointer is
 * (NULL: a literal, or the value fused in), and whether the first axis
 * with more than one element (outer) is kept and cut into ranges. */
typedef struct Red {
  const Op *red, *pro, *ep;
  bool plit[LLVM_MAX_OPERANDS], elit[LLVM_MAX_OPERANDS];
  LLVMValueRef pp[LLVM_MAX_OPERANDS], ep_p[LLVM_MAX_OPERANDS], xp, yp;
  int outer;
  bool ranged;
} Red;

/* The value of elementwise op at pos[] (positions on the axes of its
 * result; NULL: 0) from its operands read through ptr[] with broadcasting,
 * literal[] inlined, operand `given` (or -1) being `value`. */
static LLVMValueRef element_at(LlvmK *k, const Op *op, LLVMValueRef *ptr,
                               const bool *literal, LLVMValueRef *pos,
                               int given, LLVMValueRef value) {
  LlvmEmit *L = k->L;
  const Shape *rs = &op->results[0]->type.shape;
  LLVMValueRef x[LLVM_MAX_OPERANDS];
  for (int i = 0; i < op->noperands; i++) {
    const Value *v = op->operands[i];
    if (i == given) {
      x[i] = value;
    } else if (literal[i]) {
      x[i] = llvm_const_elem(L, v->type.dtype, v->def->attrs.cst.data, 0);
    } else {
      const Shape *s = &v->type.shape;
      LLVMValueRef at[MAX_RANK] = {0};
      for (int j = 0; j < s->rank; j++)
        if (!cg_is_one(s->dims[j]))
          at[j] = pos[j + rs->rank - s->rank];
      LLVMTypeRef et = llvm_type(L, v->type.dtype);
      x[i] = LLVMBuildLoad2(
          L->b, et, llvm_gep(L, et, ptr[i], llvm_index(L, s, at, k->sym)), "");
    }
  }
  return llvm_element(k, op, x);
}

/* The element of the reduction's operand at pos: read, or the prologue's
 * value there. */
static LLVMValueRef read_at(LlvmK *k, const Red *r, LLVMValueRef *pos) {
  if (r->pro)
    return element_at(k, r->pro, (LLVMValueRef *)r->pp, r->plit, pos, -1, NULL);
  const Shape *s = &r->red->operands[0]->type.shape;
  LLVMTypeRef xt = llvm_type(k->L, r->red->operands[0]->type.dtype);
  return LLVMBuildLoad2(
      k->L->b, xt, llvm_gep(k->L, xt, r->xp, llvm_index(k->L, s, pos, k->sym)),
      "");
}

/* The stack slots of a reduction, in the entry block. */
typedef struct RedSlots {
  LLVMValueRef acc_d, acc_i, acc_x, r;
} RedSlots;

/* The reduction over the reduced axes at the kept axes' positions pos (the
 * reduced ones' are set here); NULL when the prologue cannot be computed. */
static LLVMValueRef reduce_value(LlvmK *k, const Red *r, LLVMValueRef *pos,
                                 const RedSlots *sl) {
  LlvmEmit *L = k->L;
  LLVMBuilderRef b = L->b;
  const Op *op = r->red;
  const Shape *s = &op->operands[0]->type.shape;
  uint32_t axes = op->attrs.reduce.axes;
  DType t = op->operands[0]->type.dtype, rt = op->results[0]->type.dtype;
  LLVMTypeRef xt = llvm_type(L, t), yt = llvm_type(L, rt);
  bool flt = dtype_is_float(t), f32 = t == DT_F32;
  const char *sfx = f32 ? "f32" : "f64";
  LlvmLoop inner[MAX_RANK];
  OpKind kind = op->kind;
  LLVMValueRef v;
  if (kind == OP_REDUCE_SUM || kind == OP_REDUCE_MEAN) {
    LLVMBuildStore(b, flt ? LLVMConstReal(L->f64, 0) : llvm_i64(L, 0),
                   flt ? sl->acc_d : sl->acc_i);
    int ni = open_loops(k, s, axes, inner, pos);
    if (!(v = read_at(k, r, pos)))
      return NULL;
    if (flt)
      LLVMBuildStore(b,
                     LLVMBuildFAdd(b, LLVMBuildLoad2(b, L->f64, sl->acc_d, ""),
                                   LLVMBuildFPExt(b, v, L->f64, ""), ""),
                     sl->acc_d);
    else
      LLVMBuildStore(b,
                     LLVMBuildAdd(b, LLVMBuildLoad2(b, L->i64, sl->acc_i, ""),
                                  LLVMBuildIntCast2(b, v, L->i64, 1, ""), ""),
                     sl->acc_i);
    close_loops(k, inner, ni);
    if (!flt)
      return LLVMBuildIntCast2(b, LLVMBuildLoad2(b, L->i64, sl->acc_i, ""), yt,
                               1, "");
    LLVMValueRef a = LLVMBuildLoad2(b, L->f64, sl->acc_d, "");
    if (kind == OP_REDUCE_MEAN) {
      Shape red;
      memset(&red, 0, sizeof red);
      for (int j = 0; j < s->rank; j++)
        if (axes & (1u << j))
          red.dims[red.rank++] = s->dims[j];
      a = LLVMBuildFDiv(
          b, a,
          LLVMBuildSIToFP(b, llvm_numel(L, &red, 0, red.rank, k->sym), L->f64,
                          ""),
          "");
    }
    return LLVMBuildFPCast(b, a, yt, "");
  }
  if (kind == OP_REDUCE_MAX || kind == OP_REDUCE_MIN) {
    bool mx = kind == OP_REDUCE_MAX;
    LLVMValueRef init =
        flt ? LLVMConstReal(xt, mx ? -INFINITY : INFINITY)
            : LLVMConstInt(xt,
                           t == DT_I32 ? (uint64_t)(mx ? INT32_MIN : INT32_MAX)
                                       : (uint64_t)(mx ? INT64_MIN : INT64_MAX),
                           1);
    LLVMBuildStore(b, init, sl->acc_x);
    int ni = open_loops(k, s, axes, inner, pos);
    if (!(v = read_at(k, r, pos)))
      return NULL;
    LLVMValueRef a = LLVMBuildLoad2(b, xt, sl->acc_x, "");
    LLVMValueRef n;
    if (flt)
      n = call(k, cg_strf(&L->e->arena, "op_%s_%s", mx ? "max" : "min", sfx),
               xt, (LLVMValueRef[]){a, v}, 2);
    else
      n = LLVMBuildSelect(
          b, LLVMBuildICmp(b, mx ? LLVMIntSGT : LLVMIntSLT, v, a, ""), v, a,
          "");
    LLVMBuildStore(b, n, sl->acc_x);
    close_loops(k, inner, ni);
    return LLVMBuildLoad2(b, xt, sl->acc_x, "");
  }
  /* logsumexp */
  LLVMBuildStore(b, LLVMConstReal(xt, -INFINITY), sl->acc_x);
  int ni = open_loops(k, s, axes, inner, pos);
  if (!(v = read_at(k, r, pos)))
    return NULL;
  LLVMBuildStore(b,
                 call(k, cg_strf(&L->e->arena, "op_max_%s", sfx), xt,
                      (LLVMValueRef[]){LLVMBuildLoad2(b, xt, sl->acc_x, ""), v},
                      2),
                 sl->acc_x);
  close_loops(k, inner, ni);
  LLVMValueRef mxv = LLVMBuildLoad2(b, xt, sl->acc_x, "mx");
  /* r = mx, or with a finite max mx + log(sum exp(x - mx)) */
  LLVMBuildStore(b, mxv, sl->r);
  LLVMValueRef fabs_mx = call(k, f32 ? "llvm.fabs.f32" : "llvm.fabs.f64", xt,
                              (LLVMValueRef[]){mxv}, 1);
  LLVMValueRef finite =
      LLVMBuildFCmp(b, LLVMRealUNE, fabs_mx, LLVMConstReal(xt, INFINITY), "");
  LLVMBasicBlockRef yes = LLVMAppendBasicBlockInContext(L->ctx, k->fn, "sum");
  LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(L->ctx, k->fn, "lse");
  LLVMBuildCondBr(b, finite, yes, done);
  LLVMPositionBuilderAtEnd(b, yes);
  LLVMBuildStore(b, LLVMConstReal(L->f64, 0), sl->acc_d);
  ni = open_loops(k, s, axes, inner, pos);
  if (!(v = read_at(k, r, pos)))
    return NULL;
  LLVMValueRef ex = call(k, f32 ? "expf" : "exp", xt,
                         (LLVMValueRef[]){LLVMBuildFSub(b, v, mxv, "")}, 1);
  LLVMBuildStore(b,
                 LLVMBuildFAdd(b, LLVMBuildLoad2(b, L->f64, sl->acc_d, ""),
                               LLVMBuildFPExt(b, ex, L->f64, ""), ""),
                 sl->acc_d);
  close_loops(k, inner, ni);
  LLVMValueRef sum =
      LLVMBuildFPCast(b, LLVMBuildLoad2(b, L->f64, sl->acc_d, ""), xt, "");
  LLVMBuildStore(
      b,
      LLVMBuildFAdd(b, mxv,
                    call(k, f32 ? "logf" : "log", xt, (LLVMValueRef[]){sum}, 1),
                    ""),
      sl->r);
  LLVMBuildBr(b, done);
  LLVMPositionBuilderAtEnd(b, done);
  return LLVMBuildLoad2(b, xt, sl->r, "");
}

/* The range function: loops over the kept axes (the outer one over [begin,
 * end) when ranged), the reduction, the epilogue, the store. */
static bool red_body(LlvmK *k, LLVMValueRef *p, LLVMValueRef begin,
                     LLVMValueRef end, void *ctx) {
  Red *r = ctx;
  LlvmEmit *L = k->L;
  const Op *op = r->red;
  const Shape *s = &op->operands[0]->type.shape;
  uint32_t axes = op->attrs.reduce.axes;
  int q = 0;
  if (r->pro) {
    for (int i = 0; i < r->pro->noperands; i++)
      r->pp[i] = r->plit[i] ? NULL : p[q++];
  } else {
    r->xp = p[q++];
  }
  for (int i = 0; r->ep && i < r->ep->noperands; i++)
    r->ep_p[i] =
        r->ep->operands[i] == op->results[0] || r->elit[i] ? NULL : p[q++];
  r->yp = p[q];
  DType t = op->operands[0]->type.dtype;
  RedSlots sl = {LLVMBuildAlloca(L->b, L->f64, "acc"),
                 LLVMBuildAlloca(L->b, L->i64, "acc_i"),
                 LLVMBuildAlloca(L->b, llvm_type(L, t), "best"),
                 LLVMBuildAlloca(L->b, llvm_type(L, t), "r")};
  /* the kept axes with more than one element */
  uint32_t kept = 0;
  for (int j = 0; j < s->rank; j++)
    if (!(axes & (1u << j)) && !cg_is_one(s->dims[j]))
      kept |= 1u << j;
  LlvmLoop ol, loops[MAX_RANK];
  LLVMValueRef pos[MAX_RANK] = {0};
  if (r->ranged) {
    llvm_loop_begin(L, &ol, begin, end, cg_loop_vars[r->outer]);
    pos[r->outer] = ol.i;
    kept &= ~(1u << r->outer);
  }
  int no = open_loops(k, s, kept, loops, pos);
  LLVMValueRef val = reduce_value(k, r, pos, &sl);
  if (!val)
    return false;
  /* the result's positions: the kept axes' */
  const Shape *ys = &op->results[0]->type.shape;
  LLVMValueRef rpos[MAX_RANK] = {0};
  for (int j = 0, n = 0; j < s->rank; j++)
    if (!(axes & (1u << j)))
      rpos[n++] = pos[j];
    else if (op->attrs.reduce.keepdims)
      n++;
  if (r->ep) {
    int product = 0;
    while (r->ep->operands[product] != op->results[0])
      product++;
    val = element_at(k, r->ep, r->ep_p, r->elit, rpos, product, val);
    if (!val)
      return false;
    ys = &r->ep->results[0]->type.shape;
  }
  LLVMTypeRef yt = LLVMTypeOf(val);
  LLVMBuildStore(L->b, val,
                 llvm_gep(L, yt, r->yp, llvm_index(L, ys, rpos, k->sym)));
  close_loops(k, loops, no);
  if (r->ranged)
    llvm_loop_end(L, &ol);
  return true;
}

/* The outer axis in ranges of at least 16384 elements' work (the C
 * backend's grain), or the whole reduction as one piece. */
static LLVMValueRef red_extent(LlvmK *k, LLVMValueRef *grain, void *ctx) {
  const Red *r = ctx;
  LlvmEmit *L = k->L;
  const Shape *s = &r->red->operands[0]->type.shape;
  if (!r->ranged) {
    *grain = llvm_i64(L, 1);
    return llvm_i64(L, 1);
  }
  *grain = LLVMBuildAdd(
      L->b,
      LLVMBuildSDiv(L->b, llvm_i64(L, 16384),
                    llvm_numel(L, s, r->outer + 1, s->rank, k->sym), ""),
      llvm_i64(L, 1), "");
  return llvm_dim(L, s->dims[r->outer], k->sym);
}

bool llvm_reduce_kernel(LlvmFn *F, const Op *red, const Op *pro, const Op *ep,
                        Diag *d) {
  LlvmEmit *L = F->L;
  Emitter *e = L->e;
  if ((pro && pro->noperands > LLVM_MAX_OPERANDS) ||
      (ep && ep->noperands > LLVM_MAX_OPERANDS)) {
    diag_error(d, red->loc,
               "the LLVM backend does not compile a fused loop of more than "
               "%d operands yet",
               LLVM_MAX_OPERANDS);
    return false;
  }
  Red r;
  memset(&r, 0, sizeof r);
  r.red = red;
  r.pro = pro;
  r.ep = ep;
  const Shape *s = &red->operands[0]->type.shape;
  r.outer = 0;
  while (r.outer < s->rank && cg_is_one(s->dims[r.outer]))
    r.outer++;
  r.ranged = r.outer < s->rank && !(red->attrs.reduce.axes & (1u << r.outer));
  /* parameters: symbols; the prologue's pointer operands (or x); the
   * epilogue's; y */
  LLVMTypeRef params[MAX_SYMBOLS + 2 * LLVM_MAX_OPERANDS + 2];
  LLVMValueRef args[MAX_SYMBOLS + 2 * LLVM_MAX_OPERANDS + 2];
  const char *names[2 * LLVM_MAX_OPERANDS + 2];
  int np = llvm_symbol_params(F, params, args), nptr = 0;
  const Value *ptrs[2 * LLVM_MAX_OPERANDS + 2];
  if (pro) {
    for (int i = 0; i < pro->noperands; i++) {
      r.plit[i] =
          cg_takes_literals(pro) && cg_is_inlinable_const(pro->operands[i]);
      if (!r.plit[i]) {
        names[nptr] = cg_strf(&e->arena, "p%d", i);
        ptrs[nptr++] = pro->operands[i];
      }
    }
  } else {
    names[nptr] = "x";
    ptrs[nptr++] = red->operands[0];
  }
  for (int i = 0; ep && i < ep->noperands; i++) {
    r.elit[i] = cg_takes_literals(ep) && cg_is_inlinable_const(ep->operands[i]);
    if (ep->operands[i] != red->results[0] && !r.elit[i]) {
      names[nptr] = cg_strf(&e->arena, "x%d", i);
      ptrs[nptr++] = ep->operands[i];
    }
  }
  names[nptr] = "y";
  ptrs[nptr++] = (ep ? ep : red)->results[0];
  for (int i = 0; i < nptr; i++) {
    params[np] = LLVMPointerType(llvm_type(L, ptrs[i]->type.dtype), 0);
    args[np] = LLVMBuildBitCast(L->b, llvm_pointer(F, ptrs[i]), params[np], "");
    np++;
  }
  LlvmK k = llvm_kernel(F, red, d);
  LlvmRange range = {red_body, red_extent, &r};
  const char *name =
      ep ? cg_epilogue_kernel_name(e, red, ep) : cg_kernel_name(e, red);
  if (llvm_ranged_kernel(&k, name, params, args, np, names, &range))
    return true;
  diag_error(d,
             (pro  ? pro
              : ep ? ep
                   : red)
                 ->loc,
             "the LLVM backend does not compile this fused loop yet");
  return false;
}
