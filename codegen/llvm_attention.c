/* Attention in the LLVM backend, as the C backend's kernel (c_attention.c,
 * whose comment states the algorithm and why its bits are those of the
 * separate kernels): for each block of up to ATTN_ROWS rows of the scores
 * S = A @ B (with the epilogue ep: scale, mask), on the runtime's threads,
 *
 *   mc_gemm_f32[_ep](rows, nk, K, A's rows, B, sc, ...)   S's block
 *   mc_softmax_f32(sc, sc, rows, nk, 1)                    P's block
 *   mc_gemm_f32(rows, DV, nk, sc, V, Y's rows, ...)        Y's rows
 *
 * in a buffer sc of ATTN_ROWS x N floats per thread, so the T x T matrix
 * never exists; nk is N, or 1 + the last key that a row of the block
 * keeps when ep masks keys with -inf (cg_attention_key_mask).
 *
 *   NAME(syms, a, b, x<i>..., v, y, err) -> status: mallocs s, runs
 *       NAME_range on mc_get_threads() slots, frees s.
 *   NAME_range(args, begin, end): slot by slot, every nt-th block.
 *   NAME_ep: ep on a block of S (llvm_gemm_epilogue_fn).
 */
#include <string.h>

#include "llvm_emit_internal.h"
#include "mc_runtime.h"

#define ATTN_ROWS 64

/* a + b * c, or a when b is NULL (an axis the operand does not have) */
static LLVMValueRef add_mul(LlvmEmit *L, LLVMValueRef a, LLVMValueRef b,
                            LLVMValueRef c) {
  return b ? LLVMBuildAdd(L->b, a, LLVMBuildMul(L->b, b, c, ""), "") : a;
}

/* The offset of an operand's batch (the axes before its last two, aligned
 * to the right of the nb batch axes at vars) through its strides. */
static LLVMValueRef batch_offset(LlvmEmit *L, const Shape *s, int nb,
                                 LLVMValueRef *vars, LLVMValueRef *strides) {
  LLVMValueRef off = llvm_i64(L, 0);
  for (int j = 0; j < s->rank - 2; j++)
    if (!cg_is_one(s->dims[j]))
      off = add_mul(L, off, vars[j + nb - (s->rank - 2)], strides[j]);
  return off;
}

/* nk = 1 + the last key that a row of the block [r0, r0 + rows) keeps
 * (mask xm of shape ms, broadcast to the scores' shape ss), at least 1:
 * c_attention.c's emit_kept_keys; the slot nk is the entry block's. */
static LLVMValueRef kept_keys(LlvmK *k, const Shape *ss, const Shape *ms,
                              LLVMValueRef xm, bool true_masks,
                              LLVMValueRef *vars, LLVMValueRef r0,
                              LLVMValueRef rows, LLVMValueRef N,
                              LLVMValueRef nk) {
  LlvmEmit *L = k->L;
  int lead = ss->rank - ms->rank, row = ms->rank - 2;
  LLVMBuildStore(L->b, llvm_i64(L, 1), nk);
  bool by_row = row >= 0 && !cg_is_one(ms->dims[row]);
  LlvmLoop lq;
  LLVMValueRef pos[MAX_RANK] = {0};
  if (by_row) {
    llvm_loop_begin(L, &lq, NULL, rows, "q");
    pos[row] = LLVMBuildAdd(L->b, r0, lq.i, "");
  }
  for (int a = 0; a < ms->rank - 1; a++)
    if (a != row && !cg_is_one(ms->dims[a]))
      pos[a] = vars[a + lead];
  LLVMValueRef mrow = llvm_gep(L, L->i8, xm, llvm_index(L, ms, pos, k->sym));
  /* while (n > nk && masked(mrow[n - 1])) n--; nk = n; */
  LLVMBasicBlockRef pre = LLVMGetInsertBlock(L->b);
  LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(L->ctx, k->fn, "n");
  LLVMBasicBlockRef test =
      LLVMAppendBasicBlockInContext(L->ctx, k->fn, "n.masked");
  LLVMBasicBlockRef done =
      LLVMAppendBasicBlockInContext(L->ctx, k->fn, "n.done");
  LLVMValueRef nk0 = LLVMBuildLoad2(L->b, L->i64, nk, "");
  LLVMBuildBr(L->b, head);
  LLVMPositionBuilderAtEnd(L->b, head);
  LLVMValueRef n = LLVMBuildPhi(L->b, L->i64, "n");
  LLVMAddIncoming(n, &N, &pre, 1);
  LLVMBuildCondBr(L->b, LLVMBuildICmp(L->b, LLVMIntSGT, n, nk0, ""), test,
                  done);
  LLVMPositionBuilderAtEnd(L->b, test);
  LLVMValueRef prev = LLVMBuildSub(L->b, n, llvm_i64(L, 1), "");
  LLVMValueRef m =
      LLVMBuildLoad2(L->b, L->i8, llvm_gep(L, L->i8, mrow, prev), "");
  LLVMValueRef masked = LLVMBuildICmp(L->b, true_masks ? LLVMIntNE : LLVMIntEQ,
                                      m, LLVMConstInt(L->i8, 0, 0), "");
  LLVMAddIncoming(n, &prev, &test, 1);
  LLVMBuildCondBr(L->b, masked, head, done);
  LLVMPositionBuilderAtEnd(L->b, done);
  LLVMBuildStore(L->b, n, nk);
  if (by_row)
    llvm_loop_end(L, &lq);
  return LLVMBuildLoad2(L->b, L->i64, nk, "nk");
}

static LLVMValueRef min64(LlvmEmit *L, LLVMValueRef a) {
  LLVMValueRef c = llvm_i64(L, ATTN_ROWS);
  return LLVMBuildSelect(L->b, LLVMBuildICmp(L->b, LLVMIntSLT, a, c, ""), a, c,
                         "");
}

static void call_gemm(LlvmEmit *L, bool with_ep, LLVMValueRef *a) {
  LLVMTypeRef i64 = L->i64, fp = LLVMPointerType(L->f32, 0);
  LLVMTypeRef ps[12] = {i64, i64, i64, fp, i64, i64,
                        fp,  i64, i64, fp, i64, with_ep ? L->ptr : L->i32};
  llvm_call(L, with_ep ? "mc_gemm_f32_ep" : "mc_gemm_f32",
            LLVMFunctionType(L->vd, ps, 12, 0), a, 12);
}

/* The range function's body: k is the range function, with its symbols;
 * p[] its pointers (a, b, ep's pointer operands, v, y), s and nt. */
static void range_body(LlvmK *k, const Op *mm, const Op *ep, const Op *pv,
                       const bool *literal, LLVMValueRef *p, LLVMValueRef s,
                       LLVMValueRef nt, LLVMValueRef begin, LLVMValueRef end,
                       LLVMTypeRef ctx_t, LLVMValueRef ep_fn) {
  LlvmEmit *L = k->L;
  FnEmit *fe = k->F->fe;
  Emitter *e = L->e;
  const Shape *ss = &pv->operands[0]->type.shape;
  const Shape *ys = &pv->results[0]->type.shape;
  int nb = ss->rank - 2;
  const ValueInfo *ai = cg_info(fe, mm->operands[0]),
                  *bi = cg_info(fe, mm->operands[1]);
  bool btrans = bi->storage == ST_PARAM && e->wtrans[bi->index];
  /* the stack slots, once: ep's context and McEpilogue, nk */
  LLVMTypeRef ep_t =
      LLVMStructTypeInContext(L->ctx, (LLVMTypeRef[]){L->ptr, L->ptr}, 2, 0);
  LLVMValueRef ctx = ep ? LLVMBuildAlloca(L->b, ctx_t, "ep_args") : NULL;
  LLVMValueRef epv = ep ? LLVMBuildAlloca(L->b, ep_t, "ep") : NULL;
  bool true_masks = false;
  int mask = cg_attention_key_mask(mm, ep, ss, &true_masks);
  LLVMValueRef nk_slot = mask >= 0 ? LLVMBuildAlloca(L->b, L->i64, "") : NULL;
  LlvmGemm g, h;
  llvm_gemm_layout(k, mm, ai->view, bi->view, btrans, &g);
  llvm_gemm_layout(k, pv, NULL, cg_info(fe, pv->operands[1])->view, false, &h);
  LLVMValueRef M = g.M, N = g.N, block = min64(L, M);
  LLVMValueRef row_blocks =
      LLVMBuildSDiv(L->b, LLVMBuildAdd(L->b, M, llvm_i64(L, ATTN_ROWS - 1), ""),
                    llvm_i64(L, ATTN_ROWS), "row_blocks");
  LLVMValueRef total = LLVMBuildMul(L->b, llvm_numel(L, ss, 0, nb, k->sym),
                                    row_blocks, "blocks");
  LlvmLoop ls, lb;
  llvm_loop_begin(L, &ls, begin, end, "slot");
  LLVMValueRef sc =
      llvm_gep(L, L->f32, s,
               LLVMBuildMul(L->b, ls.i, LLVMBuildMul(L->b, block, N, ""), ""));
  /* blocks slot, slot + nt, ... below total */
  LLVMValueRef count = LLVMBuildSDiv(
      L->b,
      LLVMBuildSub(L->b, LLVMBuildAdd(L->b, total, nt, ""),
                   LLVMBuildAdd(L->b, ls.i, llvm_i64(L, 1), ""), ""),
      nt, "");
  llvm_loop_begin(L, &lb, NULL, count, "it");
  LLVMValueRef blk = add_mul(L, ls.i, lb.i, nt);
  LLVMValueRef r0 = LLVMBuildMul(L->b, LLVMBuildSRem(L->b, blk, row_blocks, ""),
                                 llvm_i64(L, ATTN_ROWS), "r0");
  LLVMValueRef rows = min64(L, LLVMBuildSub(L->b, M, r0, ""));
  LLVMValueRef bidx = LLVMBuildSDiv(L->b, blk, row_blocks, "");
  LLVMValueRef vars[MAX_RANK] = {0};
  for (int j = 0; j < nb; j++)
    if (!cg_is_one(ss->dims[j]))
      vars[j] = LLVMBuildSRem(
          L->b,
          LLVMBuildSDiv(L->b, bidx, llvm_numel(L, ss, j + 1, nb, k->sym), ""),
          llvm_dim(L, ss->dims[j], k->sym), cg_loop_vars[j]);
  LLVMValueRef aoff =
      batch_offset(L, &mm->operands[0]->type.shape, nb, vars, g.sa);
  LLVMValueRef boff =
      batch_offset(L, &mm->operands[1]->type.shape, nb, vars, g.sb);
  LLVMValueRef voff =
      batch_offset(L, &pv->operands[1]->type.shape, nb, vars, h.sb);
  LLVMValueRef yoff = llvm_index(L, ys, vars, k->sym);
  int q = 2; /* p[q]: ep's pointer operands, then v and y */
  LLVMValueRef keys = N;
  if (mask >= 0) { /* the mask's pointer */
    int mp = q;
    for (int i = 0; i < mask; i++)
      mp += ep->operands[i] != mm->results[0] && !literal[i];
    keys = kept_keys(k, ss, &ep->operands[mask]->type.shape, p[mp], true_masks,
                     vars, r0, rows, N, nk_slot);
  }
  if (ep) { /* McEpilogue {NAME_ep, &ctx}: pointers at the block's rows */
    unsigned f = 0;
    for (int i = 0; i < ep->noperands; i++) {
      const Value *v = ep->operands[i];
      if (v == mm->results[0] || literal[i])
        continue;
      const Shape *vs = &v->type.shape;
      LLVMValueRef pos[MAX_RANK] = {0};
      for (int j = 0; j < vs->rank; j++) {
        int axis = j + ss->rank - vs->rank;
        if (cg_is_one(vs->dims[j]))
          continue;
        pos[j] = axis < nb ? vars[axis] : axis == nb ? r0 : NULL;
      }
      LLVMTypeRef et = llvm_type(L, v->type.dtype);
      LLVMBuildStore(L->b,
                     llvm_gep(L, et, p[q++], llvm_index(L, vs, pos, k->sym)),
                     LLVMBuildStructGEP2(L->b, ctx_t, ctx, f++, ""));
    }
    for (int sy = 0; sy < e->m->nsymbols; sy++)
      if (fe->syms & (UINT64_C(1) << sy))
        LLVMBuildStore(L->b, k->sym[sy],
                       LLVMBuildStructGEP2(L->b, ctx_t, ctx, f++, ""));
    LLVMBuildStore(L->b, LLVMBuildBitCast(L->b, ep_fn, L->ptr, ""),
                   LLVMBuildStructGEP2(L->b, ep_t, epv, 0, ""));
    LLVMBuildStore(L->b, LLVMBuildBitCast(L->b, ctx, L->ptr, ""),
                   LLVMBuildStructGEP2(L->b, ep_t, epv, 1, ""));
  } else {
    for (int i = 0; ep && i < ep->noperands; i++)
      q += ep->operands[i] != mm->results[0] && !literal[i];
  }
  LLVMValueRef v = p[q], y = p[q + 1];
  /* S's block, then P's in place, then Y's rows */
  LLVMValueRef s1[12] = {rows,
                         keys,
                         g.K,
                         llvm_gep(L, L->f32, p[0], add_mul(L, aoff, r0, g.rsa)),
                         g.rsa,
                         g.csa,
                         llvm_gep(L, L->f32, p[1], boff),
                         g.rsb,
                         g.csb,
                         sc,
                         keys,
                         ep ? LLVMBuildBitCast(L->b, epv, L->ptr, "")
                            : LLVMConstInt(L->i32, 0, 0)};
  call_gemm(L, ep != NULL, s1);
  LLVMTypeRef fp = LLVMPointerType(L->f32, 0);
  LLVMTypeRef sps[5] = {fp, fp, L->i64, L->i64, L->i64};
  LLVMValueRef sargs[5] = {sc, sc, rows, keys, llvm_i64(L, 1)};
  llvm_call(L, "mc_softmax_f32", LLVMFunctionType(L->vd, sps, 5, 0), sargs, 5);
  LLVMValueRef s3[12] = {rows,
                         h.N,
                         keys,
                         sc,
                         keys,
                         llvm_i64(L, 1),
                         llvm_gep(L, L->f32, v, voff),
                         h.rsb,
                         h.csb,
                         llvm_gep(L, L->f32, y, add_mul(L, yoff, r0, h.N)),
                         h.N,
                         LLVMConstInt(L->i32, 0, 0)};
  call_gemm(L, false, s3);
  llvm_loop_end(L, &lb);
  llvm_loop_end(L, &ls);
}

bool llvm_attention_kernel(LlvmFn *F, const Op *mm, const Op *ep, const Op *pv,
                           Diag *d) {
  LlvmEmit *L = F->L;
  FnEmit *fe = F->fe;
  Emitter *e = L->e;
  if (!llvm_epilogue_fits(ep, d))
    return false;
  const Shape *ss = &pv->operands[0]->type.shape;
  /* parameters: the symbols; a, b, ep's pointer operands, v, y; err */
  LLVMTypeRef params[MAX_SYMBOLS + LLVM_MAX_OPERANDS + 5];
  LLVMValueRef args[MAX_SYMBOLS + LLVM_MAX_OPERANDS + 5];
  int np = llvm_symbol_params(F, params, args);
  int first_ptr = np;
  const Value *ptrs[LLVM_MAX_OPERANDS + 4];
  int nptr = 0;
  ptrs[nptr++] = mm->operands[0];
  ptrs[nptr++] = mm->operands[1];
  bool literal[LLVM_MAX_OPERANDS] = {0};
  for (int i = 0; ep && i < ep->noperands; i++) {
    const Value *v = ep->operands[i];
    literal[i] = cg_is_inlinable_const(v);
    if (v != mm->results[0] && !literal[i])
      ptrs[nptr++] = v;
  }
  ptrs[nptr++] = pv->operands[1];
  ptrs[nptr++] = pv->results[0];
  for (int i = 0; i < nptr; i++) {
    params[np] = LLVMPointerType(llvm_type(L, ptrs[i]->type.dtype), 0);
    args[np] = LLVMBuildBitCast(L->b, llvm_pointer(F, ptrs[i]), params[np], "");
    np++;
  }
  params[np] = L->ptr;
  args[np++] = F->err;
  const char *name = cg_attention_kernel_name(e, mm);
  LLVMBasicBlockRef caller = LLVMGetInsertBlock(L->b);
  LlvmK k = llvm_kernel(F, mm, d);
  /* NAME_ep and its context: ep's pointers, the symbols */
  LLVMTypeRef ctx_fields[MAX_SYMBOLS + LLVM_MAX_OPERANDS];
  unsigned nctx = 0;
  for (int i = 2; i < nptr - 2; i++)
    ctx_fields[nctx++] = params[first_ptr + i];
  for (int s = 0; s < e->m->nsymbols; s++)
    if (fe->syms & (UINT64_C(1) << s))
      ctx_fields[nctx++] = L->i64;
  LLVMTypeRef ctx_t = LLVMStructTypeInContext(L->ctx, ctx_fields, nctx, 0);
  LLVMValueRef ep_fn = NULL;
  if (ep) {
    ep_fn = llvm_gemm_epilogue_fn(&k, mm, ep, cg_strf(&e->arena, "%s_ep", name),
                                  ctx_t, literal, ss->rank - 2, ss->rank - 1);
    if (!ep_fn) {
      diag_error(d, ep->loc,
                 "the LLVM backend does not compile this epilogue yet");
      LLVMPositionBuilderAtEnd(L->b, caller);
      return false;
    }
  }
  /* NAME_range(args, begin, end); args: the parameters but err, s, nt */
  LLVMTypeRef fp = LLVMPointerType(L->f32, 0);
  LLVMTypeRef fields[MAX_SYMBOLS + LLVM_MAX_OPERANDS + 6];
  memcpy(fields, params, sizeof(LLVMTypeRef) * (size_t)(np - 1));
  fields[np - 1] = fp;
  fields[np] = L->i64;
  LLVMTypeRef argt =
      LLVMStructTypeInContext(L->ctx, fields, (unsigned)np + 1, 0);
  LLVMTypeRef rparams[3] = {L->ptr, L->i64, L->i64};
  LLVMValueRef range =
      LLVMAddFunction(L->mod, cg_strf(&e->arena, "%s_range", name),
                      LLVMFunctionType(L->vd, rparams, 3, 0));
  LLVMSetLinkage(range, LLVMInternalLinkage);
  LLVMPositionBuilderAtEnd(
      L->b, LLVMAppendBasicBlockInContext(L->ctx, range, "entry"));
  LLVMValueRef ctx = LLVMBuildBitCast(L->b, LLVMGetParam(range, 0),
                                      LLVMPointerType(argt, 0), "args");
  LLVMValueRef field[MAX_SYMBOLS + LLVM_MAX_OPERANDS + 6];
  for (int i = 0; i <= np; i++)
    field[i] = LLVMBuildLoad2(
        L->b, fields[i], LLVMBuildStructGEP2(L->b, argt, ctx, (unsigned)i, ""),
        "");
  k.fn = range;
  int p = 0;
  for (int s = 0; s < e->m->nsymbols; s++)
    if (fe->syms & (UINT64_C(1) << s)) {
      k.sym[s] = field[p++];
      LLVMSetValueName2(k.sym[s], e->symnames[s], strlen(e->symnames[s]));
    }
  const char *pn[LLVM_MAX_OPERANDS + 4];
  for (int i = 0; i < nptr; i++) {
    pn[i] = i == 0          ? "a"
            : i == 1        ? "b"
            : i == nptr - 2 ? "v"
            : i == nptr - 1 ? "y"
                            : "x";
    LLVMSetValueName2(field[first_ptr + i], pn[i], strlen(pn[i]));
  }
  LLVMSetValueName2(field[np - 1], "s", 1);
  LLVMSetValueName2(field[np], "nt", 2);
  LLVMValueRef begin = LLVMGetParam(range, 1), end = LLVMGetParam(range, 2);
  LLVMSetValueName2(begin, "begin", 5);
  LLVMSetValueName2(end, "end", 3);
  range_body(&k, mm, ep, pv, literal, field + first_ptr, field[np - 1],
             field[np], begin, end, ctx_t, ep_fn);
  LLVMBuildRetVoid(L->b);
  /* the kernel: the scores' buffer, the threads, the error */
  k.fn = LLVMAddFunction(L->mod, name,
                         LLVMFunctionType(L->i32, params, (unsigned)np, 0));
  LLVMSetLinkage(k.fn, LLVMInternalLinkage);
  llvm_noinline(L, k.fn);
  LLVMPositionBuilderAtEnd(
      L->b, LLVMAppendBasicBlockInContext(L->ctx, k.fn, "entry"));
  p = 0;
  for (int s = 0; s < e->m->nsymbols; s++)
    if (fe->syms & (UINT64_C(1) << s)) {
      k.sym[s] = LLVMGetParam(k.fn, (unsigned)p++);
      LLVMSetValueName2(k.sym[s], e->symnames[s], strlen(e->symnames[s]));
    }
  for (int i = 0; i < nptr; i++)
    LLVMSetValueName2(LLVMGetParam(k.fn, (unsigned)(first_ptr + i)), pn[i],
                      strlen(pn[i]));
  LLVMValueRef err = LLVMGetParam(k.fn, (unsigned)np - 1);
  LLVMSetValueName2(err, "err", 3);
  LLVMValueRef args_slot = LLVMBuildAlloca(L->b, argt, "args");
  for (int i = 0; i < np - 1; i++)
    LLVMBuildStore(L->b, LLVMGetParam(k.fn, (unsigned)i),
                   LLVMBuildStructGEP2(L->b, argt, args_slot, (unsigned)i, ""));
  LLVMValueRef nt =
      LLVMBuildSExt(L->b,
                    llvm_call(L, "mc_get_threads",
                              LLVMFunctionType(L->i32, NULL, 0, 0), NULL, 0),
                    L->i64, "nt");
  LLVMValueRef bytes = LLVMBuildMul(
      L->b, LLVMBuildMul(L->b, llvm_i64(L, sizeof(float)), nt, ""),
      LLVMBuildMul(L->b, min64(L, llvm_dim(L, ss->dims[ss->rank - 2], k.sym)),
                   llvm_dim(L, ss->dims[ss->rank - 1], k.sym), ""),
      "");
  LLVMTypeRef i64 = L->i64;
  LLVMValueRef sbuf = LLVMBuildBitCast(
      L->b,
      llvm_call(L, "malloc", LLVMFunctionType(L->ptr, &i64, 1, 0), &bytes, 1),
      fp, "s");
  llvm_fail_if(L, k.fn, err, LLVMBuildIsNull(L->b, sbuf, ""), MC_ERR_NOMEM,
               cg_strf(&e->arena,
                       "out of memory for a block of attention scores at %s",
                       llvm_where_format(e, mm)),
               NULL, NULL);
  LLVMBuildStore(
      L->b, sbuf,
      LLVMBuildStructGEP2(L->b, argt, args_slot, (unsigned)np - 1, ""));
  LLVMBuildStore(L->b, nt,
                 LLVMBuildStructGEP2(L->b, argt, args_slot, (unsigned)np, ""));
  LLVMTypeRef pf_params[4] = {L->i64, L->i64, L->ptr, L->ptr};
  LLVMValueRef pf_args[4] = {nt, llvm_i64(L, 1),
                             LLVMBuildBitCast(L->b, range, L->ptr, ""),
                             LLVMBuildBitCast(L->b, args_slot, L->ptr, "")};
  llvm_call(L, "mc_parallel_for", LLVMFunctionType(L->vd, pf_params, 4, 0),
            pf_args, 4);
  LLVMValueRef raw = LLVMBuildBitCast(L->b, sbuf, L->ptr, "");
  llvm_call(L, "free", LLVMFunctionType(L->vd, &L->ptr, 1, 0), &raw, 1);
  LLVMBuildRet(L->b, LLVMConstInt(L->i32, MC_OK, 0));
  LLVMPositionBuilderAtEnd(L->b, caller);
  llvm_check_status(F, LLVMBuildCall2(L->b, LLVMGlobalGetValueType(k.fn), k.fn,
                                      args, (unsigned)np, ""));
  return true;
}
