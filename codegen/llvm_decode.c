/* The LLVM backend's decoding ops, as the C backend's (c_kernels_decode.c):
 * dynamic_slice and dynamic_update_slice (run-time starts range-checked,
 * the update written into its operand's buffer when the analysis proved
 * that buffer dead afterwards), take_along_axis (indices checked), cumsum
 * (floats summed in double), and the runtime's topk, random_uniform and
 * categorical. Their kernels are made by llvm_movement_kernel.
 */
#include <string.h>

#include "llvm_emit_internal.h"
#include "mc_runtime.h"

bool llvm_is_decode(const Op *op) {
  OpKind k = op->kind;
  return k == OP_DYNAMIC_SLICE || k == OP_DYNAMIC_UPDATE_SLICE ||
         k == OP_TAKE_ALONG_AXIS || k == OP_TOPK || k == OP_CUMSUM ||
         k == OP_RANDOM_UNIFORM || k == OP_CATEGORICAL;
}

bool llvm_decode_can_fail(const Op *op) {
  return op->kind == OP_DYNAMIC_SLICE || op->kind == OP_DYNAMIC_UPDATE_SLICE ||
         op->kind == OP_TAKE_ALONG_AXIS || op->kind == OP_TOPK;
}

/* The starts (operands first..) of a block of shape `block` in x, each
 * checked against [0, dim - size]. */
static void starts(LlvmK *k, LLVMValueRef *xp, int first, const Shape *x,
                   const Shape *block, LLVMValueRef err, const char *what,
                   const char *where, LLVMValueRef *start) {
  LlvmEmit *L = k->L;
  const Op *op = k->op;
  for (int i = 0; i < x->rank; i++) {
    LLVMTypeRef t = llvm_type(L, op->operands[first + i]->type.dtype);
    start[i] = LLVMBuildIntCast2(
        L->b, LLVMBuildLoad2(L->b, t, xp[first + i], ""), L->i64, 1, "");
    LLVMValueRef hi = LLVMBuildSub(L->b, llvm_dim(L, x->dims[i], k->sym),
                                   llvm_dim(L, block->dims[i], k->sym), "");
    LLVMValueRef bad = LLVMBuildOr(
        L->b, LLVMBuildICmp(L->b, LLVMIntSLT, start[i], llvm_i64(L, 0), ""),
        LLVMBuildICmp(L->b, LLVMIntSGT, start[i], hi, ""), "");
    llvm_fail_if(
        k->L, k->fn, err, bad, MC_ERR_RANGE,
        cg_strf(&L->e->arena,
                "%s start %%lld of axis %d is outside [0, %%lld] at %s", what,
                i, where),
        start[i], hi);
  }
}

static void loops(LlvmK *k, const Shape *s, LlvmLoop *lp, LLVMValueRef *vars) {
  for (int j = 0; j < s->rank; j++) {
    llvm_loop_begin(k->L, &lp[j], NULL, llvm_dim(k->L, s->dims[j], k->sym),
                    cg_loop_vars[j]);
    vars[j] = lp[j].i;
  }
}

static void end_loops(LlvmK *k, const Shape *s, LlvmLoop *lp) {
  for (int j = s->rank - 1; j >= 0; j--)
    llvm_loop_end(k->L, &lp[j]);
}

static const char *suffix(DType t) {
  return t == DT_F32   ? "f32"
         : t == DT_F64 ? "f64"
         : t == DT_I32 ? "i32"
                       : "i64";
}

void llvm_decode_body(LlvmK *k, const Op *op, LLVMValueRef *xp, LLVMValueRef yp,
                      LLVMValueRef err, const char *where, bool in_place) {
  LlvmEmit *L = k->L;
  LLVMBuilderRef b = L->b;
  const Shape *x = &op->operands[0]->type.shape;
  const Shape *y = &op->results[0]->type.shape;
  DType dt = op->results[0]->type.dtype;
  LLVMTypeRef yt = llvm_type(L, dt),
              xt = llvm_type(L, op->operands[0]->type.dtype);
  LlvmLoop lp[MAX_RANK];
  LLVMValueRef vars[MAX_RANK], pos[MAX_RANK], start[MAX_RANK];
  Arena *A = &L->e->arena;
  if (op->kind == OP_DYNAMIC_SLICE || op->kind == OP_DYNAMIC_UPDATE_SLICE) {
    bool update = op->kind == OP_DYNAMIC_UPDATE_SLICE;
    const Shape *block = update ? &op->operands[1]->type.shape : y;
    starts(k, xp, update ? 2 : 1, x, block, err, ir_op_info[op->kind].name,
           where, start);
    if (update && !in_place) {
      LLVMTypeRef p[3] = {L->ptr, L->ptr, L->i64};
      LLVMValueRef args[3] = {
          LLVMBuildBitCast(b, yp, L->ptr, ""),
          LLVMBuildBitCast(b, xp[0], L->ptr, ""),
          LLVMBuildMul(b, llvm_numel(L, x, 0, x->rank, k->sym),
                       llvm_i64(L, (int64_t)dtype_size(dt)), "")};
      llvm_call(L, "memcpy", LLVMFunctionType(L->ptr, p, 3, 0), args, 3);
    }
    loops(k, block, lp, vars);
    for (int i = 0; i < x->rank; i++)
      pos[i] = LLVMBuildAdd(b, start[i], vars[i], "");
    LLVMValueRef in_block = llvm_index(k->L, block, vars, k->sym),
                 in_x = llvm_index(k->L, x, pos, k->sym);
    if (update)
      LLVMBuildStore(
          b, LLVMBuildLoad2(b, yt, llvm_gep(L, yt, xp[1], in_block), ""),
          llvm_gep(L, yt, yp, in_x));
    else
      LLVMBuildStore(b, LLVMBuildLoad2(b, yt, llvm_gep(L, yt, xp[0], in_x), ""),
                     llvm_gep(L, yt, yp, in_block));
    end_loops(k, block, lp);
  } else if (op->kind == OP_TAKE_ALONG_AXIS) {
    int axis = op->attrs.axis.axis;
    LLVMValueRef n = llvm_dim(L, x->dims[axis], k->sym);
    LLVMTypeRef it = llvm_type(L, op->operands[1]->type.dtype);
    loops(k, y, lp, vars);
    LLVMValueRef o = llvm_index(k->L, y, vars, k->sym);
    LLVMValueRef j = LLVMBuildIntCast2(
        b, LLVMBuildLoad2(b, it, llvm_gep(L, it, xp[1], o), ""), L->i64, 1,
        "j");
    llvm_fail_if(
        k->L, k->fn, err,
        LLVMBuildOr(b, LLVMBuildICmp(b, LLVMIntSLT, j, llvm_i64(L, 0), ""),
                    LLVMBuildICmp(b, LLVMIntSGE, j, n, ""), ""),
        MC_ERR_RANGE,
        cg_strf(A, "take_along_axis index %%lld out of range [0, %%lld) at %s",
                where),
        j, n);
    for (int i = 0; i < x->rank; i++)
      pos[i] = i == axis ? j : vars[i];
    LLVMBuildStore(
        b,
        LLVMBuildLoad2(b, yt,
                       llvm_gep(L, yt, xp[0], llvm_index(k->L, x, pos, k->sym)),
                       ""),
        llvm_gep(L, yt, yp, o));
    end_loops(k, y, lp);
  } else if (op->kind == OP_TOPK) {
    int axis = op->attrs.axis.axis;
    LLVMValueRef n = llvm_dim(L, x->dims[axis], k->sym),
                 kk = llvm_dim(L, y->dims[axis], k->sym);
    llvm_fail_if(k->L, k->fn, err, LLVMBuildICmp(b, LLVMIntSGT, kk, n, ""),
                 MC_ERR_SHAPE,
                 cg_strf(A, "topk of %%lld out of %%lld at %s", where), kk, n);
    LLVMTypeRef p[6] = {LLVMPointerType(xt, 0),
                        LLVMPointerType(L->i32, 0),
                        L->i64,
                        L->i64,
                        L->i64,
                        L->i64};
    LLVMValueRef args[6] = {xp[0],
                            yp,
                            llvm_numel(L, x, 0, axis, k->sym),
                            n,
                            llvm_numel(L, x, axis + 1, x->rank, k->sym),
                            kk};
    llvm_call(L, cg_strf(A, "mc_topk_%s", suffix(op->operands[0]->type.dtype)),
              LLVMFunctionType(L->vd, p, 6, 0), args, 6);
  } else if (op->kind == OP_CUMSUM) {
    int axis = op->attrs.axis.axis;
    bool flt = dtype_is_float(dt);
    LLVMValueRef n = llvm_dim(L, x->dims[axis], k->sym);
    LLVMValueRef inner = llvm_numel(L, x, axis + 1, x->rank, k->sym);
    LLVMValueRef acc = LLVMBuildAlloca(b, flt ? L->f64 : L->i64, "acc");
    LlvmLoop lo, li, lj;
    llvm_loop_begin(L, &lo, NULL, llvm_numel(L, x, 0, axis, k->sym), "o");
    llvm_loop_begin(L, &li, NULL, inner, "i");
    LLVMBuildStore(b, flt ? LLVMConstReal(L->f64, 0) : llvm_i64(L, 0), acc);
    llvm_loop_begin(L, &lj, NULL, n, "j");
    LLVMValueRef idx = LLVMBuildAdd(
        b,
        LLVMBuildMul(b, LLVMBuildAdd(b, LLVMBuildMul(b, lo.i, n, ""), lj.i, ""),
                     inner, ""),
        li.i, "");
    LLVMValueRef v = LLVMBuildLoad2(b, xt, llvm_gep(L, xt, xp[0], idx), "");
    LLVMValueRef a =
        flt ? LLVMBuildFAdd(b, LLVMBuildLoad2(b, L->f64, acc, ""),
                            LLVMBuildFPExt(b, v, L->f64, ""), "")
            : LLVMBuildAdd(b, LLVMBuildLoad2(b, L->i64, acc, ""),
                           LLVMBuildIntCast2(b, v, L->i64, 1, ""), "");
    LLVMBuildStore(b, a, acc);
    LLVMBuildStore(b,
                   flt ? LLVMBuildFPCast(b, a, yt, "")
                       : LLVMBuildIntCast2(b, a, yt, 1, ""),
                   llvm_gep(L, yt, yp, idx));
    llvm_loop_end(L, &lj);
    llvm_loop_end(L, &li);
    llvm_loop_end(L, &lo);
  } else if (op->kind == OP_RANDOM_UNIFORM) {
    LLVMTypeRef p[3] = {L->i64, LLVMPointerType(yt, 0), L->i64};
    LLVMValueRef args[3] = {LLVMBuildLoad2(b, L->i64, xp[0], ""), yp,
                            llvm_numel(L, y, 0, y->rank, k->sym)};
    llvm_call(L, cg_strf(A, "mc_random_uniform_%s", suffix(dt)),
              LLVMFunctionType(L->vd, p, 3, 0), args, 3);
  } else if (op->kind == OP_CATEGORICAL) {
    int axis = op->attrs.axis.axis;
    const Shape *p_ = &op->operands[0]->type.shape;
    LLVMTypeRef pt = LLVMPointerType(xt, 0);
    LLVMTypeRef p[6] = {pt,     pt,     LLVMPointerType(L->i32, 0),
                        L->i64, L->i64, L->i64};
    LLVMValueRef args[6] = {xp[0],
                            xp[1],
                            yp,
                            llvm_numel(L, p_, 0, axis, k->sym),
                            llvm_dim(L, p_->dims[axis], k->sym),
                            llvm_numel(L, p_, axis + 1, p_->rank, k->sym)};
    llvm_call(
        L, cg_strf(A, "mc_categorical_%s", suffix(op->operands[0]->type.dtype)),
        LLVMFunctionType(L->vd, p, 6, 0), args, 6);
  }
}
