/* The LLVM backend's small builders (types, dimensions, calls, constants,
 * loops) and the helpers its kernels share (indices, failures, status
 * checks, the kernel of an op); declared in llvm_emit_internal.h. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "llvm_emit_internal.h"
#include "mc_runtime.h"

/* ---- small builders --------------------------------------------------- */

LLVMTypeRef llvm_type(LlvmEmit *L, DType t) {
  switch (t) {
  case DT_F32:
    return L->f32;
  case DT_F64:
    return L->f64;
  case DT_I32:
    return L->i32;
  case DT_I64:
    return L->i64;
  case DT_BOOL:
    return L->i8;
  case DT_F16:
  case DT_BF16:
    return LLVMInt16TypeInContext(L->ctx);
  case DT_COUNT:
    break;
  }
  return L->i8;
}

LLVMValueRef llvm_dim(LlvmEmit *L, Dim d, const LLVMValueRef *sym) {
  LLVMValueRef sum = LLVMConstInt(L->i64, 0, 0);
  for (int t = 0; t < d.nterms; t++) {
    LLVMValueRef p = LLVMConstInt(L->i64, (uint64_t)d.terms[t].coef, 1);
    for (int f = 0; f < d.terms[t].nfactors; f++)
      p = LLVMBuildMul(L->b, p, sym[d.terms[t].sym[f]], "");
    sum = LLVMBuildAdd(L->b, sum, p, "");
  }
  return sum;
}

LLVMValueRef llvm_numel(LlvmEmit *L, const Shape *s, int from, int to,
                        const LLVMValueRef *sym) {
  LLVMValueRef n = LLVMConstInt(L->i64, 1, 0);
  for (int i = from; i < to; i++)
    n = LLVMBuildMul(L->b, n, llvm_dim(L, s->dims[i], sym), "");
  return n;
}

LLVMValueRef llvm_function(LlvmEmit *L, const char *name, LLVMTypeRef ty) {
  LLVMValueRef f = LLVMGetNamedFunction(L->mod, name);
  return f ? f : LLVMAddFunction(L->mod, name, ty);
}

LLVMValueRef llvm_call(LlvmEmit *L, const char *name, LLVMTypeRef ty,
                       LLVMValueRef *args, int n) {
  return LLVMBuildCall2(L->b, ty, llvm_function(L, name, ty), args, (unsigned)n,
                        "");
}

LLVMValueRef llvm_cstring(LlvmEmit *L, const char *s) {
  LLVMValueRef str =
      LLVMConstStringInContext(L->ctx, s, (unsigned)strlen(s), 0);
  LLVMValueRef g = LLVMAddGlobal(L->mod, LLVMTypeOf(str), ".str");
  LLVMSetInitializer(g, str);
  LLVMSetGlobalConstant(g, 1);
  LLVMSetLinkage(g, LLVMPrivateLinkage);
  LLVMSetUnnamedAddress(g, LLVMGlobalUnnamedAddr);
  return LLVMConstBitCast(g, L->ptr);
}

LLVMValueRef llvm_const_elem(LlvmEmit *L, DType t, const void *data, size_t i) {
  const unsigned char *p = (const unsigned char *)data + i * dtype_size(t);
  uint64_t bits = 0;
  memcpy(&bits, p, dtype_size(t)); /* little-endian host, as the IR's */
  switch (t) {
  case DT_F32:
    return LLVMConstBitCast(LLVMConstInt(L->i32, bits, 0), L->f32);
  case DT_F64:
    return LLVMConstBitCast(LLVMConstInt(L->i64, bits, 0), L->f64);
  case DT_I32:
  case DT_I64:
  case DT_BOOL:
  case DT_F16:
  case DT_BF16:
  case DT_COUNT:
    break;
  }
  return LLVMConstInt(llvm_type(L, t), bits, 0);
}

void llvm_loop_begin(LlvmEmit *L, LlvmLoop *lp, LLVMValueRef from,
                     LLVMValueRef n, const char *name) {
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(L->b);
  LLVMValueRef fn = LLVMGetBasicBlockParent(pre);
  char label[64];
  snprintf(label, sizeof label, "%s.head", name);
  lp->head = LLVMAppendBasicBlockInContext(L->ctx, fn, label);
  snprintf(label, sizeof label, "%s.body", name);
  LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(L->ctx, fn, label);
  snprintf(label, sizeof label, "%s.exit", name);
  lp->exit = LLVMAppendBasicBlockInContext(L->ctx, fn, label);
  LLVMBuildBr(L->b, lp->head);
  LLVMPositionBuilderAtEnd(L->b, lp->head);
  lp->i = LLVMBuildPhi(L->b, L->i64, name);
  LLVMValueRef start = from ? from : LLVMConstInt(L->i64, 0, 0);
  LLVMAddIncoming(lp->i, &start, &pre, 1);
  LLVMBuildCondBr(L->b, LLVMBuildICmp(L->b, LLVMIntSLT, lp->i, n, ""), body,
                  lp->exit);
  LLVMPositionBuilderAtEnd(L->b, body);
}

void llvm_loop_end(LlvmEmit *L, LlvmLoop *lp) {
  LLVMValueRef next =
      LLVMBuildNSWAdd(L->b, lp->i, LLVMConstInt(L->i64, 1, 0), "");
  LLVMBasicBlockRef latch = LLVMGetInsertBlock(L->b);
  LLVMAddIncoming(lp->i, &next, &latch, 1);
  LLVMBuildBr(L->b, lp->head);
  LLVMPositionBuilderAtEnd(L->b, lp->exit);
}

/* ---- helpers of the kernels ---------------------------------------------- */

LLVMValueRef llvm_i64(LlvmEmit *L, int64_t v) {
  return LLVMConstInt(L->i64, (uint64_t)v, 1);
}

LLVMValueRef llvm_gep(LlvmEmit *L, LLVMTypeRef t, LLVMValueRef p,
                      LLVMValueRef off) {
  return LLVMBuildGEP2(L->b, t, p, &off, 1, "");
}

LLVMValueRef llvm_index(LlvmEmit *L, const Shape *s, LLVMValueRef *pos,
                        const LLVMValueRef *sym) {
  LLVMValueRef idx = llvm_i64(L, 0);
  for (int j = 0; j < s->rank; j++)
    if (pos[j])
      idx = LLVMBuildAdd(
          L->b, idx,
          LLVMBuildMul(L->b, pos[j], llvm_numel(L, s, j + 1, s->rank, sym), ""),
          "");
  return idx;
}

void llvm_fail_if(LlvmEmit *L, LLVMValueRef fn, LLVMValueRef err,
                  LLVMValueRef bad, int code, const char *fmt, LLVMValueRef a,
                  LLVMValueRef b) {
  LLVMBasicBlockRef no = LLVMAppendBasicBlockInContext(L->ctx, fn, "fail");
  LLVMBasicBlockRef ok = LLVMAppendBasicBlockInContext(L->ctx, fn, "ok");
  LLVMBuildCondBr(L->b, bad, no, ok);
  LLVMPositionBuilderAtEnd(L->b, no);
  LLVMTypeRef params[3] = {L->ptr, L->i32, L->ptr};
  LLVMValueRef args[5] = {err, LLVMConstInt(L->i32, (uint64_t)code, 0),
                          llvm_cstring(L, fmt), a, b};
  LLVMBuildRet(L->b,
               llvm_call(L, "mc_fail", LLVMFunctionType(L->i32, params, 3, 1),
                         args, a ? b ? 5 : 4 : 3));
  LLVMPositionBuilderAtEnd(L->b, ok);
}

const char *llvm_where_format(Emitter *e, const Op *op) {
  const char *where = cg_where(e, op->loc);
  char *fmt = arena_alloc(&e->arena, 2 * strlen(where) + 1), *w = fmt;
  for (const char *c = where; *c; c++)
    if ((*w++ = *c) == '%')
      *w++ = '%';
  *w = 0;
  return fmt;
}

void llvm_check_status(LlvmFn *F, LLVMValueRef rc) {
  LlvmEmit *L = F->L;
  LLVMBasicBlockRef bad =
      LLVMAppendBasicBlockInContext(L->ctx, F->fn, "failed");
  LLVMBasicBlockRef ok = LLVMAppendBasicBlockInContext(L->ctx, F->fn, "ok");
  LLVMBuildCondBr(
      L->b,
      LLVMBuildICmp(L->b, LLVMIntNE, rc, LLVMConstInt(L->i32, MC_OK, 0), ""),
      bad, ok);
  LLVMPositionBuilderAtEnd(L->b, bad);
  LLVMBuildStore(L->b, rc, F->rc);
  LLVMBuildBr(L->b, F->done);
  LLVMPositionBuilderAtEnd(L->b, ok);
}

LlvmK llvm_kernel(LlvmFn *F, const Op *op, Diag *d) {
  LlvmK k;
  memset(&k, 0, sizeof k);
  k.L = F->L;
  k.F = F;
  k.op = op;
  k.d = d;
  return k;
}

int llvm_symbol_params(LlvmFn *F, LLVMTypeRef *params, LLVMValueRef *args) {
  int np = 0;
  for (int s = 0; s < F->L->e->m->nsymbols; s++)
    if (F->fe->syms & (UINT64_C(1) << s)) {
      params[np] = F->L->i64;
      args[np++] = F->sym[s];
    }
  return np;
}

void llvm_noinline(LlvmEmit *L, LLVMValueRef fn) {
  LLVMAddAttributeAtIndex(
      fn, LLVMAttributeFunctionIndex,
      LLVMCreateEnumAttribute(
          L->ctx, LLVMGetEnumAttributeKindForName("noinline", 8), 0));
}
