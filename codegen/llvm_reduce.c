/* The LLVM backend's reductions and softmax, as the C backend's
 * (c_kernels.c kernel_reduce, kernel_arg, kernel_softmax), bit for bit: a
 * float sum or mean accumulates in double in the order of the reduced
 * axes, max/min with the NaN-propagating op_max/op_min (mc_ops.h),
 * logsumexp subtracts the max and sums libm's exp in double, argmax/argmin
 * keep the first index (NaN wins); softmax and log_softmax are the
 * runtime's. Without fusion (the LLVM backend's analysis fuses only GEMM
 * epilogues), and on one thread.
 */
#include <math.h>
#include <string.h>

#include "llvm_emit_internal.h"

bool llvm_is_reduce(const Op *op) {
  OpKind k = op->kind;
  return k == OP_REDUCE_SUM || k == OP_REDUCE_MEAN || k == OP_REDUCE_MAX ||
         k == OP_REDUCE_MIN || k == OP_LOGSUMEXP || k == OP_ARGMAX ||
         k == OP_ARGMIN || k == OP_SOFTMAX || k == OP_LOG_SOFTMAX;
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

void llvm_reduce_body(LlvmK *k, const Op *op, LLVMValueRef xp,
                      LLVMValueRef yp) {
  LlvmEmit *L = k->L;
  LLVMBuilderRef b = L->b;
  const Shape *s = &op->operands[0]->type.shape;
  DType t = op->operands[0]->type.dtype, rt = op->results[0]->type.dtype;
  LLVMTypeRef xt = llvm_type(L, t), yt = llvm_type(L, rt);
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
  uint32_t axes = op->attrs.reduce.axes;
  if (op->kind == OP_ARGMAX || op->kind == OP_ARGMIN) {
    int axis = 0;
    while (!(axes & (1u << axis)))
      axis++;
    axes = 1u << axis;
  }
  uint32_t all = s->rank ? (uint32_t)((1u << s->rank) - 1) : 0;
  LLVMValueRef o = LLVMBuildAlloca(b, L->i64, "o");
  LLVMValueRef acc_d = LLVMBuildAlloca(b, L->f64, "acc");
  LLVMValueRef acc_i = LLVMBuildAlloca(b, L->i64, "acc_i");
  LLVMValueRef acc_x = LLVMBuildAlloca(b, xt, "best");
  LLVMValueRef best_i = LLVMBuildAlloca(b, L->i32, "best_index");
  LLVMValueRef r = LLVMBuildAlloca(b, xt, "r");
  LLVMBuildStore(b, llvm_i64(L, 0), o);
  LlvmLoop outer[MAX_RANK], inner[MAX_RANK];
  LLVMValueRef pos[MAX_RANK] = {0};
  int no = open_loops(k, s, all & ~axes, outer, pos);
  LLVMValueRef v, result;
  OpKind kind = op->kind;
  const char *sfx = f32 ? "f32" : "f64";
  if (kind == OP_REDUCE_SUM || kind == OP_REDUCE_MEAN) {
    LLVMBuildStore(b, flt ? LLVMConstReal(L->f64, 0) : llvm_i64(L, 0),
                   flt ? acc_d : acc_i);
    int ni = open_loops(k, s, axes, inner, pos);
    v = LLVMBuildLoad2(b, xt,
                       llvm_gep(L, xt, xp, llvm_index(L, s, pos, k->sym)), "");
    if (flt)
      LLVMBuildStore(b,
                     LLVMBuildFAdd(b, LLVMBuildLoad2(b, L->f64, acc_d, ""),
                                   LLVMBuildFPExt(b, v, L->f64, ""), ""),
                     acc_d);
    else
      LLVMBuildStore(b,
                     LLVMBuildAdd(b, LLVMBuildLoad2(b, L->i64, acc_i, ""),
                                  LLVMBuildIntCast2(b, v, L->i64, 1, ""), ""),
                     acc_i);
    close_loops(k, inner, ni);
    if (!flt) {
      result =
          LLVMBuildIntCast2(b, LLVMBuildLoad2(b, L->i64, acc_i, ""), yt, 1, "");
    } else {
      LLVMValueRef a = LLVMBuildLoad2(b, L->f64, acc_d, "");
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
      result = LLVMBuildFPCast(b, a, yt, "");
    }
  } else if (kind == OP_REDUCE_MAX || kind == OP_REDUCE_MIN) {
    bool mx = kind == OP_REDUCE_MAX;
    LLVMValueRef init =
        flt ? LLVMConstReal(xt, mx ? -INFINITY : INFINITY)
            : LLVMConstInt(xt,
                           t == DT_I32 ? (uint64_t)(mx ? INT32_MIN : INT32_MAX)
                                       : (uint64_t)(mx ? INT64_MIN : INT64_MAX),
                           1);
    LLVMBuildStore(b, init, acc_x);
    int ni = open_loops(k, s, axes, inner, pos);
    v = LLVMBuildLoad2(b, xt,
                       llvm_gep(L, xt, xp, llvm_index(L, s, pos, k->sym)), "");
    LLVMValueRef a = LLVMBuildLoad2(b, xt, acc_x, "");
    LLVMValueRef n;
    if (flt)
      n = call(k, cg_strf(&L->e->arena, "op_%s_%s", mx ? "max" : "min", sfx),
               xt, (LLVMValueRef[]){a, v}, 2);
    else
      n = LLVMBuildSelect(
          b, LLVMBuildICmp(b, mx ? LLVMIntSGT : LLVMIntSLT, v, a, ""), v, a,
          "");
    LLVMBuildStore(b, n, acc_x);
    close_loops(k, inner, ni);
    result = LLVMBuildLoad2(b, xt, acc_x, "");
  } else if (kind == OP_LOGSUMEXP) {
    LLVMBuildStore(b, LLVMConstReal(xt, -INFINITY), acc_x);
    int ni = open_loops(k, s, axes, inner, pos);
    v = LLVMBuildLoad2(b, xt,
                       llvm_gep(L, xt, xp, llvm_index(L, s, pos, k->sym)), "");
    LLVMBuildStore(b,
                   call(k, cg_strf(&L->e->arena, "op_max_%s", sfx), xt,
                        (LLVMValueRef[]){LLVMBuildLoad2(b, xt, acc_x, ""), v},
                        2),
                   acc_x);
    close_loops(k, inner, ni);
    LLVMValueRef mxv = LLVMBuildLoad2(b, xt, acc_x, "mx");
    /* r = mx, or with a finite max mx + log(sum exp(x - mx)) */
    LLVMBuildStore(b, mxv, r);
    LLVMValueRef fabs_mx = call(k, f32 ? "llvm.fabs.f32" : "llvm.fabs.f64", xt,
                                (LLVMValueRef[]){mxv}, 1);
    LLVMValueRef finite =
        LLVMBuildFCmp(b, LLVMRealUNE, fabs_mx, LLVMConstReal(xt, INFINITY), "");
    LLVMBasicBlockRef yes = LLVMAppendBasicBlockInContext(L->ctx, k->fn, "sum");
    LLVMBasicBlockRef done =
        LLVMAppendBasicBlockInContext(L->ctx, k->fn, "lse");
    LLVMBuildCondBr(b, finite, yes, done);
    LLVMPositionBuilderAtEnd(b, yes);
    LLVMBuildStore(b, LLVMConstReal(L->f64, 0), acc_d);
    ni = open_loops(k, s, axes, inner, pos);
    v = LLVMBuildLoad2(b, xt,
                       llvm_gep(L, xt, xp, llvm_index(L, s, pos, k->sym)), "");
    LLVMValueRef ex = call(k, f32 ? "expf" : "exp", xt,
                           (LLVMValueRef[]){LLVMBuildFSub(b, v, mxv, "")}, 1);
    LLVMBuildStore(b,
                   LLVMBuildFAdd(b, LLVMBuildLoad2(b, L->f64, acc_d, ""),
                                 LLVMBuildFPExt(b, ex, L->f64, ""), ""),
                   acc_d);
    close_loops(k, inner, ni);
    LLVMValueRef sum =
        LLVMBuildFPCast(b, LLVMBuildLoad2(b, L->f64, acc_d, ""), xt, "");
    LLVMBuildStore(b,
                   LLVMBuildFAdd(b, mxv,
                                 call(k, f32 ? "logf" : "log", xt,
                                      (LLVMValueRef[]){sum}, 1),
                                 ""),
                   r);
    LLVMBuildBr(b, done);
    LLVMPositionBuilderAtEnd(b, done);
    result = LLVMBuildLoad2(b, xt, r, "");
  } else { /* argmax, argmin: the first index of the best; NaN wins */
    bool mx = kind == OP_ARGMAX;
    LLVMBuildStore(b, LLVMConstNull(xt), acc_x);
    LLVMBuildStore(b, LLVMConstInt(L->i32, 0, 0), best_i);
    int ni = open_loops(k, s, axes, inner, pos);
    LLVMValueRef j = inner[0].i;
    v = LLVMBuildLoad2(b, xt,
                       llvm_gep(L, xt, xp, llvm_index(L, s, pos, k->sym)), "");
    LLVMValueRef best = LLVMBuildLoad2(b, xt, acc_x, "");
    LLVMValueRef take =
        flt ? LLVMBuildOr(
                  b,
                  LLVMBuildFCmp(b, mx ? LLVMRealOGT : LLVMRealOLT, v, best, ""),
                  LLVMBuildAnd(b, LLVMBuildFCmp(b, LLVMRealUNO, v, v, ""),
                               LLVMBuildFCmp(b, LLVMRealORD, best, best, ""),
                               ""),
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
    result = LLVMBuildLoad2(b, L->i32, best_i, "");
  }
  LLVMValueRef oi = LLVMBuildLoad2(b, L->i64, o, "");
  LLVMBuildStore(b, result, LLVMBuildGEP2(b, yt, yp, &oi, 1, ""));
  LLVMBuildStore(b, LLVMBuildAdd(b, oi, llvm_i64(L, 1), ""), o);
  close_loops(k, outer, no);
}
