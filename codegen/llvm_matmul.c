/* The LLVM backend's matmul kernels, as the C backend's (c_kernels.c
 * kernel_matmul): loops over the batch axes (none where all rows run as
 * one GEMM, cg_matmul_rows_collapse) around the runtime's GEMM
 * (mc_gemm_f32/f64, mc_gemm_f32_packed for weights kept in its panels,
 * mc_gemm_f32_w16 for 16-bit weights), the transposes and rank-1 operands
 * as strides; an elementwise epilogue (bias, activation, residual) runs in
 * the GEMM's store as a function of its own (NAME_ep, McEpilogue), each
 * element computed as the separate kernels would. Integer matmul is a
 * plain triple loop with wrapping sums.
 */
#include <string.h>

#include "llvm_emit_internal.h"
#include "mc_runtime.h"

/* Element strides of operand x of shape s: its view's, or dense. */
static void strides(LlvmK *k, const Value *x, const CgView *view,
                    LLVMValueRef *out) {
  const Shape *s = &x->type.shape;
  for (int j = 0; j < s->rank; j++)
    out[j] = view ? llvm_dim(k->L, view->stride[j], k->sym)
                  : llvm_numel(k->L, s, j + 1, s->rank, k->sym);
}

/* ---- the layout (cg_gemm_layout's) ----------------------------------------
 */

void llvm_gemm_layout(LlvmK *k, const Op *mm, const CgView *va,
                      const CgView *vb, bool b_kept_transposed, LlvmGemm *g) {
  LlvmEmit *L = k->L;
  const Value *av = mm->operands[0], *bv = mm->operands[1];
  const Shape *as = &av->type.shape, *bs = &bv->type.shape;
  int ar = as->rank, br = bs->rank;
  strides(k, av, va, g->sa);
  strides(k, bv, vb, g->sb);
  bool ta = mm->attrs.matmul.trans_a, tb = mm->attrs.matmul.trans_b;
  if (b_kept_transposed) { /* a [N, K] weight kept as W.T */
    g->sb[0] = llvm_i64(L, 1);
    g->sb[1] = llvm_dim(L, bs->dims[0], k->sym);
  }
  if (ar == 1) {
    g->M = llvm_i64(L, 1);
    g->K = llvm_dim(L, as->dims[0], k->sym);
    g->rsa = g->K;
    g->csa = g->sa[0];
  } else {
    g->M = llvm_dim(L, as->dims[ar - 1 - !ta], k->sym);
    g->K = llvm_dim(L, as->dims[ar - 1 - ta], k->sym);
    g->rsa = g->sa[ar - 1 - !ta];
    g->csa = g->sa[ar - 1 - ta];
  }
  if (br == 1) {
    g->N = llvm_i64(L, 1);
    g->rsb = g->sb[0];
    g->csb = llvm_i64(L, 1);
  } else {
    g->N = llvm_dim(L, bs->dims[br - 1 - tb], k->sym);
    g->rsb = g->sb[br - 1 - !tb];
    g->csb = g->sb[br - 1 - tb];
  }
}

/* ---- the epilogue ----------------------------------------------------------
 */

LLVMValueRef llvm_gemm_epilogue_fn(LlvmK *k, const Op *mm, const Op *ep,
                                   const char *name, LLVMTypeRef ctx_t,
                                   const bool *literal, int rows, int cols) {
  LlvmEmit *L = k->L;
  LLVMTypeRef fp = LLVMPointerType(L->f32, 0);
  LLVMTypeRef params[7] = {L->ptr, fp, L->i64, L->i64, L->i64, L->i64, L->i64};
  LLVMValueRef fn =
      LLVMAddFunction(L->mod, name, LLVMFunctionType(L->vd, params, 7, 0));
  LLVMSetLinkage(fn, LLVMInternalLinkage);
  LLVMPositionBuilderAtEnd(L->b,
                           LLVMAppendBasicBlockInContext(L->ctx, fn, "entry"));
  LLVMValueRef ctx = LLVMBuildBitCast(L->b, LLVMGetParam(fn, 0),
                                      LLVMPointerType(ctx_t, 0), "");
  static const char *const pnames[7] = {"ctx", "c",  "ldc", "i0",
                                        "i1",  "j0", "j1"};
  for (unsigned i = 0; i < 7; i++)
    LLVMSetValueName2(LLVMGetParam(fn, i), pnames[i], strlen(pnames[i]));
  LLVMValueRef c = LLVMGetParam(fn, 1), ldc = LLVMGetParam(fn, 2);
  LlvmK e = *k;
  e.fn = fn;
  const Shape *ys = &ep->results[0]->type.shape;
  LLVMValueRef xp[LLVM_MAX_OPERANDS] = {0};
  unsigned f = 0;
  for (int i = 0; i < ep->noperands; i++)
    if (ep->operands[i] != mm->results[0] && !literal[i]) {
      LLVMTypeRef t =
          LLVMPointerType(llvm_type(L, ep->operands[i]->type.dtype), 0);
      xp[i] = LLVMBuildLoad2(
          L->b, t, LLVMBuildStructGEP2(L->b, ctx_t, ctx, f++, ""), "");
    }
  for (int s = 0; s < L->e->m->nsymbols; s++)
    if (k->F->fe->syms & (UINT64_C(1) << s))
      e.sym[s] = LLVMBuildLoad2(
          L->b, L->i64, LLVMBuildStructGEP2(L->b, ctx_t, ctx, f++, ""), "");
  LlvmLoop li, lj;
  llvm_loop_begin(L, &li, LLVMGetParam(fn, 3), LLVMGetParam(fn, 4), "i");
  llvm_loop_begin(L, &lj, LLVMGetParam(fn, 5), LLVMGetParam(fn, 6), "j");
  LLVMValueRef at =
      LLVMBuildAdd(L->b, LLVMBuildMul(L->b, li.i, ldc, ""), lj.i, "");
  LLVMValueRef x[LLVM_MAX_OPERANDS];
  for (int i = 0; i < ep->noperands; i++) {
    const Value *v = ep->operands[i];
    if (v == mm->results[0]) {
      x[i] = LLVMBuildLoad2(L->b, L->f32, llvm_gep(L, L->f32, c, at), "");
    } else if (literal[i]) {
      x[i] = llvm_const_elem(L, v->type.dtype, v->def->attrs.cst.data, 0);
    } else { /* broadcast over the result: only its row and column axes */
      const Shape *s = &v->type.shape;
      LLVMValueRef off = LLVMConstInt(L->i64, 0, 0);
      for (int j = 0; j < s->rank; j++) {
        int axis = j + ys->rank - s->rank;
        LLVMValueRef pos = axis == rows ? li.i : axis == cols ? lj.i : NULL;
        if (!pos || cg_is_one(s->dims[j]))
          continue;
        off = LLVMBuildAdd(L->b, off,
                           LLVMBuildMul(L->b, pos,
                                        llvm_numel(L, s, j + 1, s->rank, e.sym),
                                        ""),
                           "");
      }
      LLVMTypeRef et = llvm_type(L, v->type.dtype);
      x[i] = LLVMBuildLoad2(L->b, et, llvm_gep(L, et, xp[i], off), "");
    }
  }
  LLVMValueRef y = llvm_element(&e, ep, x);
  if (!y)
    return NULL;
  LLVMBuildStore(L->b, y, llvm_gep(L, L->f32, c, at));
  llvm_loop_end(L, &lj);
  llvm_loop_end(L, &li);
  LLVMBuildRetVoid(L->b);
  return fn;
}

/* ---- the kernel ---------------------------------------------------------- */

bool llvm_epilogue_fits(const Op *ep, Diag *d) {
  if (!ep || ep->noperands <= LLVM_MAX_OPERANDS)
    return true;
  diag_error(d, ep->loc,
             "the LLVM backend does not compile an epilogue of more than %d "
             "operands yet",
             LLVM_MAX_OPERANDS);
  return false;
}

bool llvm_matmul_kernel(LlvmFn *F, const Op *mm, const Op *ep, Diag *d) {
  LlvmEmit *L = F->L;
  FnEmit *fe = F->fe;
  Emitter *e = L->e;
  if (!llvm_epilogue_fits(ep, d))
    return false;
  const Value *av = mm->operands[0], *bv = mm->operands[1];
  const ValueInfo *ai = cg_info(fe, av), *bi = cg_info(fe, bv);
  bool bparam = bi->storage == ST_PARAM;
  bool packed = bparam && e->wpacked[bi->index];
  bool trans = bparam && e->wtrans[bi->index];
  DType store = cg_weight_store(fe, bv);
  DType t = mm->results[0]->type.dtype;
  const Value *yv = ep ? ep->results[0] : mm->results[0];
  /* parameters: symbols, a, b, the epilogue's pointer operands, y */
  LLVMTypeRef params[MAX_SYMBOLS + LLVM_MAX_OPERANDS + 3];
  LLVMValueRef args[MAX_SYMBOLS + LLVM_MAX_OPERANDS + 3];
  int np = llvm_symbol_params(F, params, args);
  int first_ptr = np;
  LLVMTypeRef bt = store == DT_F32 ? llvm_type(L, bv->type.dtype)
                                   : LLVMInt16TypeInContext(L->ctx);
  const Value *ptrs[LLVM_MAX_OPERANDS + 3];
  LLVMTypeRef ptr_types[LLVM_MAX_OPERANDS + 3];
  int nptr = 0;
  ptrs[nptr] = av;
  ptr_types[nptr++] = LLVMPointerType(llvm_type(L, av->type.dtype), 0);
  ptrs[nptr] = bv;
  ptr_types[nptr++] = LLVMPointerType(bt, 0);
  bool literal[LLVM_MAX_OPERANDS] = {0};
  for (int i = 0; ep && i < ep->noperands; i++) {
    const Value *v = ep->operands[i];
    literal[i] = cg_is_inlinable_const(v);
    if (v == mm->results[0] || literal[i])
      continue;
    ptrs[nptr] = v;
    ptr_types[nptr++] = LLVMPointerType(llvm_type(L, v->type.dtype), 0);
  }
  ptrs[nptr] = yv;
  ptr_types[nptr++] = LLVMPointerType(llvm_type(L, yv->type.dtype), 0);
  for (int i = 0; i < nptr; i++) {
    params[np] = ptr_types[i];
    args[np++] =
        LLVMBuildBitCast(L->b, llvm_pointer(F, ptrs[i]), ptr_types[i], "");
  }
  LlvmK k = llvm_kernel(F, mm, d);
  const char *name =
      ep ? cg_epilogue_kernel_name(e, mm, ep) : cg_kernel_name(e, mm);
  k.fn = LLVMAddFunction(L->mod, name,
                         LLVMFunctionType(L->vd, params, (unsigned)np, 0));
  LLVMSetLinkage(k.fn, LLVMInternalLinkage);
  llvm_noinline(L, k.fn);
  LLVMBasicBlockRef caller = LLVMGetInsertBlock(L->b);
  int p = 0;
  for (int s = 0; s < e->m->nsymbols; s++)
    if (fe->syms & (UINT64_C(1) << s)) {
      k.sym[s] = LLVMGetParam(k.fn, (unsigned)p++);
      LLVMSetValueName2(k.sym[s], e->symnames[s], strlen(e->symnames[s]));
    }
  LLVMValueRef pv[LLVM_MAX_OPERANDS + 3];
  for (int i = 0; i < nptr; i++) {
    pv[i] = LLVMGetParam(k.fn, (unsigned)(first_ptr + i));
    const char *pn = i == 0 ? "a" : i == 1 ? "b" : i == nptr - 1 ? "y" : "x";
    LLVMSetValueName2(pv[i], pn, strlen(pn));
  }
  /* the epilogue's function and context type: its pointers, the symbols */
  LLVMTypeRef ctx_fields[MAX_SYMBOLS + LLVM_MAX_OPERANDS];
  unsigned nctx = 0;
  for (int i = 2; i < nptr - 1; i++)
    ctx_fields[nctx++] = ptr_types[i];
  for (int s = 0; s < e->m->nsymbols; s++)
    if (fe->syms & (UINT64_C(1) << s))
      ctx_fields[nctx++] = L->i64;
  LLVMTypeRef ctx_t = LLVMStructTypeInContext(L->ctx, ctx_fields, nctx, 0);
  const Shape *as = &av->type.shape, *bs = &bv->type.shape,
              *ys = &mm->results[0]->type.shape;
  int ar = as->rank, br = bs->rank;
  int nbatch = ys->rank - (ar >= 2) - (br >= 2);
  int row_axis = ar >= 2 ? nbatch : -1;
  int rows = cg_matmul_rows_collapse(mm, ep, ai->view != NULL);
  bool collapse = rows >= 0;
  if (collapse) { /* one GEMM of all the rows (as kernel_matmul) */
    nbatch = 0;
    row_axis = rows;
  }
  LLVMValueRef ep_fn = NULL;
  if (ep) {
    ep_fn = llvm_gemm_epilogue_fn(&k, mm, ep, cg_strf(&e->arena, "%s_ep", name),
                                  ctx_t, literal, row_axis,
                                  br >= 2 ? ys->rank - 1 : -1);
    if (!ep_fn) {
      diag_error(d, ep->loc,
                 "the LLVM backend does not compile this epilogue yet");
      LLVMPositionBuilderAtEnd(L->b, caller);
      return false;
    }
  }
  LLVMPositionBuilderAtEnd(
      L->b, LLVMAppendBasicBlockInContext(L->ctx, k.fn, "entry"));
  /* the stack slots, once: the epilogue's context and McEpilogue, an
   * integer sum */
  LLVMTypeRef ep_t =
      LLVMStructTypeInContext(L->ctx, (LLVMTypeRef[]){L->ptr, L->ptr}, 2, 0);
  LLVMValueRef ctx = ep ? LLVMBuildAlloca(L->b, ctx_t, "ep_args") : NULL;
  LLVMValueRef epv = ep ? LLVMBuildAlloca(L->b, ep_t, "ep") : NULL;
  LLVMValueRef acc =
      dtype_is_float(t) ? NULL : LLVMBuildAlloca(L->b, L->i64, "acc");
  LlvmGemm g;
  llvm_gemm_layout(&k, mm, ai->view, bi->view, trans, &g);
  LLVMValueRef *sa = g.sa, *sb = g.sb, M = g.M, K = g.K, N = g.N, rsa = g.rsa,
               csa = g.csa, rsb = g.rsb, csb = g.csb;
  if (collapse)
    M = llvm_numel(L, as, 0, ar - 1, k.sym);
  /* batch loops; each operand's batch axes align to the result's right */
  LlvmLoop loops[MAX_RANK];
  LLVMValueRef pos[MAX_RANK];
  for (int j = 0; j < nbatch; j++) {
    llvm_loop_begin(L, &loops[j], NULL, llvm_dim(L, ys->dims[j], k.sym),
                    cg_loop_vars[j]);
    pos[j] = loops[j].i;
  }
  LLVMValueRef aoff = LLVMConstInt(L->i64, 0, 0), boff = aoff, yoff = aoff;
  for (int j = 0; j < ar - 2 && nbatch; j++)
    if (!cg_is_one(as->dims[j]))
      aoff = LLVMBuildAdd(
          L->b, aoff, LLVMBuildMul(L->b, pos[j + nbatch - (ar - 2)], sa[j], ""),
          "");
  for (int j = 0; j < br - 2 && nbatch; j++)
    if (!cg_is_one(bs->dims[j]))
      boff = LLVMBuildAdd(
          L->b, boff, LLVMBuildMul(L->b, pos[j + nbatch - (br - 2)], sb[j], ""),
          "");
  for (int j = 0; j < nbatch; j++)
    yoff = LLVMBuildAdd(L->b, yoff,
                        LLVMBuildMul(L->b, pos[j],
                                     llvm_numel(L, ys, j + 1, ys->rank, k.sym),
                                     ""),
                        "");
  LLVMTypeRef at_ = llvm_type(L, av->type.dtype), yt = llvm_type(L, t);
  LLVMValueRef pa = llvm_gep(L, at_, pv[0], aoff),
               pb = llvm_gep(L, bt, pv[1], boff);
  LLVMValueRef py = llvm_gep(L, yt, pv[nptr - 1], yoff);
  if (ep) { /* McEpilogue {NAME_ep, &ctx}, the pointers at this batch */
    const Shape *es = &ep->results[0]->type.shape;
    unsigned f = 0;
    int q = 2;
    for (int i = 0; i < ep->noperands; i++) {
      const Value *v = ep->operands[i];
      if (v == mm->results[0] || literal[i])
        continue;
      const Shape *s = &v->type.shape;
      LLVMValueRef off = LLVMConstInt(L->i64, 0, 0);
      for (int j = 0; j < s->rank; j++) {
        int axis = j + es->rank - s->rank;
        if (axis < nbatch && !cg_is_one(s->dims[j]))
          off = LLVMBuildAdd(
              L->b, off,
              LLVMBuildMul(L->b, pos[axis],
                           llvm_numel(L, s, j + 1, s->rank, k.sym), ""),
              "");
      }
      LLVMTypeRef et = llvm_type(L, v->type.dtype);
      LLVMBuildStore(L->b, llvm_gep(L, et, pv[q++], off),
                     LLVMBuildStructGEP2(L->b, ctx_t, ctx, f++, ""));
    }
    for (int s = 0; s < e->m->nsymbols; s++)
      if (fe->syms & (UINT64_C(1) << s))
        LLVMBuildStore(L->b, k.sym[s],
                       LLVMBuildStructGEP2(L->b, ctx_t, ctx, f++, ""));
    LLVMBuildStore(L->b, LLVMBuildBitCast(L->b, ep_fn, L->ptr, ""),
                   LLVMBuildStructGEP2(L->b, ep_t, epv, 0, ""));
    LLVMBuildStore(L->b, LLVMBuildBitCast(L->b, ctx, L->ptr, ""),
                   LLVMBuildStructGEP2(L->b, ep_t, epv, 1, ""));
  }
  LLVMValueRef last =
      ep ? LLVMBuildBitCast(L->b, epv, L->ptr, "") : LLVMConstInt(L->i32, 0, 0);
  LLVMTypeRef last_t = ep ? L->ptr : L->i32;
  LLVMTypeRef i64 = L->i64;
  const char *sfx = ep ? "_ep" : "";
  LLVMValueRef fmt =
      LLVMConstInt(L->i32, store == DT_F16 ? MC_W16_F16 : MC_W16_BF16, 0);
  if (t == DT_F32 && packed) { /* f32 or 16-bit panels: fmt after P */
    bool w16 = store != DT_F32;
    LLVMTypeRef ps[11] = {i64, i64, i64,           LLVMTypeOf(pa),
                          i64, i64, LLVMTypeOf(pb)};
    LLVMValueRef as_[11] = {M, N, K, pa, rsa, csa, pv[1]};
    int n = 7;
    if (w16) {
      ps[n] = L->i32;
      as_[n++] = fmt;
    }
    LLVMTypeRef tail_t[3] = {LLVMTypeOf(py), i64, last_t};
    LLVMValueRef tail[3] = {py, N, last};
    for (int i = 0; i < 3; i++, n++) {
      ps[n] = tail_t[i];
      as_[n] = tail[i];
    }
    llvm_call(
        L, cg_strf(&e->arena, "mc_gemm_f32%s_packed%s", w16 ? "_w16" : "", sfx),
        LLVMFunctionType(L->vd, ps, (unsigned)n, 0), as_, (unsigned)n);
  } else if (t == DT_F32 && store != DT_F32) {
    LLVMTypeRef ps[13] = {
        i64, i64, i64,    LLVMTypeOf(pa), i64, i64,   LLVMTypeOf(pb),
        i64, i64, L->i32, LLVMTypeOf(py), i64, last_t};
    LLVMValueRef as_[13] = {M,   N,   K,   pa, rsa, csa, pb,
                            rsb, csb, fmt, py, N,   last};
    llvm_call(L, cg_strf(&e->arena, "mc_gemm_f32_w16%s", sfx),
              LLVMFunctionType(L->vd, ps, 13, 0), as_, 13);
  } else if (dtype_is_float(t)) {
    LLVMTypeRef ps[12] = {i64,
                          i64,
                          i64,
                          LLVMTypeOf(pa),
                          i64,
                          i64,
                          LLVMTypeOf(pb),
                          i64,
                          i64,
                          LLVMTypeOf(py),
                          i64,
                          last_t};
    LLVMValueRef as_[12] = {M, N, K, pa, rsa, csa, pb, rsb, csb, py, N, last};
    llvm_call(
        L, cg_strf(&e->arena, "mc_gemm_%s%s", t == DT_F32 ? "f32" : "f64", sfx),
        LLVMFunctionType(L->vd, ps, 12, 0), as_, 12);
  } else { /* integers: sum in order, wrapping like torch */
    LlvmLoop lm, ln, lk;
    llvm_loop_begin(L, &lm, NULL, M, "m");
    llvm_loop_begin(L, &ln, NULL, N, "n");
    LLVMBuildStore(L->b, LLVMConstInt(L->i64, 0, 0), acc);
    llvm_loop_begin(L, &lk, NULL, K, "p");
    LLVMValueRef ia = LLVMBuildAdd(L->b, LLVMBuildMul(L->b, lm.i, rsa, ""),
                                   LLVMBuildMul(L->b, lk.i, csa, ""), "");
    LLVMValueRef ib = LLVMBuildAdd(L->b, LLVMBuildMul(L->b, lk.i, rsb, ""),
                                   LLVMBuildMul(L->b, ln.i, csb, ""), "");
    LLVMValueRef va = LLVMBuildIntCast2(
        L->b, LLVMBuildLoad2(L->b, at_, llvm_gep(L, at_, pa, ia), ""), L->i64,
        1, "");
    LLVMValueRef vb = LLVMBuildIntCast2(
        L->b, LLVMBuildLoad2(L->b, bt, llvm_gep(L, bt, pb, ib), ""), L->i64, 1,
        "");
    LLVMBuildStore(L->b,
                   LLVMBuildAdd(L->b, LLVMBuildLoad2(L->b, L->i64, acc, ""),
                                LLVMBuildMul(L->b, va, vb, ""), ""),
                   acc);
    llvm_loop_end(L, &lk);
    LLVMValueRef iy =
        LLVMBuildAdd(L->b, LLVMBuildMul(L->b, lm.i, N, ""), ln.i, "");
    LLVMBuildStore(L->b,
                   LLVMBuildIntCast2(
                       L->b, LLVMBuildLoad2(L->b, L->i64, acc, ""), yt, 1, ""),
                   llvm_gep(L, yt, py, iy));
    llvm_loop_end(L, &ln);
    llvm_loop_end(L, &lm);
  }
  for (int j = nbatch - 1; j >= 0; j--)
    llvm_loop_end(L, &loops[j]);
  LLVMBuildRetVoid(L->b);
  LLVMPositionBuilderAtEnd(L->b, caller);
  LLVMBuildCall2(L->b, LLVMGlobalGetValueType(k.fn), k.fn, args, (unsigned)np,
                 "");
  return true;
}
