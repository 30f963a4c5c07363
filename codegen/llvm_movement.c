/* The LLVM backend's data-movement kernels, as the C backend's
 * (c_kernels.c): iota, permute, slice, concat, gather and scatter_add. Each is
 * loops over the result writing it in order; slice checks symbolic bounds and
 * gather its indices at run time, returning MC_ERR_RANGE with a message
 * that names the model-file line (then the run function stops).
 */
#include <string.h>

#include "llvm_emit_internal.h"
#include "mc_runtime.h"

/* The loops over ys (a loop per axis, its variable in vars[]). */
static void open_loops(LlvmK *k, const Shape *ys, LlvmLoop *loops,
                       LLVMValueRef *vars) {
  for (int j = 0; j < ys->rank; j++) {
    llvm_loop_begin(k->L, &loops[j], NULL, llvm_dim(k->L, ys->dims[j], k->sym),
                    cg_loop_vars[j]);
    vars[j] = loops[j].i;
  }
}

static void close_loops(LlvmK *k, const Shape *ys, LlvmLoop *loops) {
  for (int j = ys->rank - 1; j >= 0; j--)
    llvm_loop_end(k->L, &loops[j]);
}

/* v, an element of a weight kept in `store`, as f32 (v itself for f32) */
static LLVMValueRef widen(LlvmEmit *L, LLVMValueRef v, DType store) {
  if (store == DT_F16) /* exact widening, as mc_f16_to_f32_1 */
    return LLVMBuildFPExt(
        L->b, LLVMBuildBitCast(L->b, v, LLVMHalfTypeInContext(L->ctx), ""),
        L->f32, "");
  if (store == DT_BF16) /* the top half of a binary32 */
    return LLVMBuildBitCast(L->b,
                            LLVMBuildShl(L->b,
                                         LLVMBuildZExt(L->b, v, L->i32, ""),
                                         LLVMConstInt(L->i32, 16, 0), ""),
                            L->f32, "");
  return v;
}

static void body(LlvmK *k, const Op *op, LLVMValueRef *xp, LLVMValueRef yp,
                 LLVMValueRef err, const char *where, bool trans, int panel,
                 DType store) {
  LlvmEmit *L = k->L;
  const Shape *ys = &op->results[0]->type.shape;
  LLVMTypeRef yt = llvm_type(L, op->results[0]->type.dtype);
  LlvmLoop loops[MAX_RANK];
  LLVMValueRef vars[MAX_RANK] = {0}, pos[MAX_RANK] = {0};
  if (op->kind == OP_IOTA) {
    open_loops(k, ys, loops, vars);
    int axis = op->attrs.axis.axis;
    LLVMValueRef v = vars[axis] ? vars[axis] : llvm_i64(L, 0);
    v = dtype_is_float(op->results[0]->type.dtype)
            ? LLVMBuildSIToFP(L->b, v, yt, "")
            : LLVMBuildIntCast2(L->b, v, yt, 1, "");
    LLVMBuildStore(L->b, v,
                   llvm_gep(L, yt, yp, llvm_index(k->L, ys, vars, k->sym)));
    close_loops(k, ys, loops);
    return;
  }
  if (op->kind == OP_PERMUTE) { /* a 16-bit weight widened (c_weights.c) */
    const Shape *xs = &op->operands[0]->type.shape;
    LLVMTypeRef xt = store == DT_F32 ? yt : llvm_type(L, store);
    open_loops(k, ys, loops, vars);
    for (int i = 0; i < ys->rank; i++)
      pos[op->attrs.perm.perm[i]] = vars[i];
    LLVMValueRef v = widen(
        L,
        LLVMBuildLoad2(
            L->b, xt, llvm_gep(L, xt, xp[0], llvm_index(k->L, xs, pos, k->sym)),
            ""),
        store);
    LLVMBuildStore(L->b, v,
                   llvm_gep(L, yt, yp, llvm_index(k->L, ys, vars, k->sym)));
    close_loops(k, ys, loops);
    return;
  }
  if (op->kind == OP_SLICE) {
    const Shape *xs = &op->operands[0]->type.shape;
    LLVMValueRef start[MAX_RANK];
    for (int i = 0; i < xs->rank; i++) {
      start[i] = llvm_dim(L, op->attrs.slice.start[i], k->sym);
      int64_t step = op->attrs.slice.step[i];
      if (cg_slice_axis_checked(op, i))
        continue;
      LLVMValueRef e = llvm_dim(L, ys->dims[i], k->sym),
                   n = llvm_dim(L, xs->dims[i], k->sym);
      LLVMValueRef last = LLVMBuildAdd(
          L->b, start[i],
          LLVMBuildMul(L->b, LLVMBuildSub(L->b, e, llvm_i64(L, 1), ""),
                       llvm_i64(L, step), ""),
          "");
      LLVMValueRef out_first = LLVMBuildOr(
          L->b, LLVMBuildICmp(L->b, LLVMIntSLT, start[i], llvm_i64(L, 0), ""),
          LLVMBuildICmp(L->b, LLVMIntSGE, start[i], n, ""), "");
      LLVMValueRef out_last = LLVMBuildOr(
          L->b, LLVMBuildICmp(L->b, LLVMIntSLT, last, llvm_i64(L, 0), ""),
          LLVMBuildICmp(L->b, LLVMIntSGE, last, n, ""), "");
      LLVMValueRef bad = LLVMBuildAnd(
          L->b, LLVMBuildICmp(L->b, LLVMIntSGT, e, llvm_i64(L, 0), ""),
          LLVMBuildOr(L->b, out_first, out_last, ""), "");
      llvm_fail_if(
          k->L, k->fn, err, bad, MC_ERR_RANGE,
          cg_strf(&L->e->arena,
                  "slice of axis %d reads index %%lld outside [0, %%lld) "
                  "at %s",
                  i, where),
          LLVMBuildSelect(L->b, out_first, start[i], last, ""), n);
    }
    open_loops(k, ys, loops, vars);
    for (int i = 0; i < xs->rank; i++)
      pos[i] = LLVMBuildAdd(
          L->b, start[i],
          LLVMBuildMul(L->b, vars[i], llvm_i64(L, op->attrs.slice.step[i]), ""),
          "");
    LLVMValueRef v = LLVMBuildLoad2(
        L->b, yt, llvm_gep(L, yt, xp[0], llvm_index(k->L, xs, pos, k->sym)),
        "");
    LLVMBuildStore(L->b, v,
                   llvm_gep(L, yt, yp, llvm_index(k->L, ys, vars, k->sym)));
    close_loops(k, ys, loops);
    return;
  }
  if (op->kind ==
      OP_CONCAT) { /* per index of the axes before `axis`, each chunk */
    int axis = op->attrs.axis.axis;
    LlvmLoop outer;
    llvm_loop_begin(L, &outer, NULL, llvm_numel(L, ys, 0, axis, k->sym), "i");
    LLVMValueRef o = LLVMBuildMul(
        L->b, outer.i, llvm_numel(L, ys, axis, ys->rank, k->sym), "");
    for (int n = 0; n < op->noperands; n++) {
      const Shape *s = &op->operands[n]->type.shape;
      LLVMValueRef chunk = llvm_numel(L, s, axis, s->rank, k->sym);
      LlvmLoop lj;
      LLVMValueRef base = LLVMBuildMul(L->b, outer.i, chunk, "");
      llvm_loop_begin(L, &lj, NULL, chunk, "j");
      LLVMValueRef v = LLVMBuildLoad2(
          L->b, yt, llvm_gep(L, yt, xp[n], LLVMBuildAdd(L->b, base, lj.i, "")),
          "");
      LLVMBuildStore(L->b, v,
                     llvm_gep(L, yt, yp, LLVMBuildAdd(L->b, o, lj.i, "")));
      llvm_loop_end(L, &lj);
      o = LLVMBuildAdd(L->b, o, chunk, "");
    }
    llvm_loop_end(L, &outer);
    return;
  }
  if (op->kind ==
      OP_GATHER) { /* y[o, j, c] = table[o, index[j], c], index checked */
    const Shape *ts = &op->operands[0]->type.shape;
    const Shape *is = &op->operands[1]->type.shape;
    int axis = op->attrs.axis.axis;
    DType it = op->operands[1]->type.dtype;
    LLVMValueRef n = llvm_dim(L, ts->dims[axis], k->sym);
    LLVMValueRef inner = llvm_numel(L, ts, axis + 1, ts->rank, k->sym);
    LLVMValueRef nidx = llvm_numel(L, is, 0, is->rank, k->sym);
    LlvmLoop lo, lj, lc;
    llvm_loop_begin(L, &lo, NULL, llvm_numel(L, ts, 0, axis, k->sym), "o");
    llvm_loop_begin(L, &lj, NULL, nidx, "j");
    LLVMTypeRef ity = llvm_type(L, it);
    LLVMValueRef i = LLVMBuildIntCast2(
        L->b, LLVMBuildLoad2(L->b, ity, llvm_gep(L, ity, xp[1], lj.i), ""),
        L->i64, 1, "i");
    LLVMValueRef bad = LLVMBuildOr(
        L->b, LLVMBuildICmp(L->b, LLVMIntSLT, i, llvm_i64(L, 0), ""),
        LLVMBuildICmp(L->b, LLVMIntSGE, i, n, ""), "");
    llvm_fail_if(k->L, k->fn, err, bad, MC_ERR_RANGE,
                 cg_strf(&L->e->arena,
                         "index %%lld out of range [0, %%lld) at %s", where),
                 i, n);
    LLVMValueRef yrow =
        LLVMBuildAdd(L->b, LLVMBuildMul(L->b, lo.i, nidx, ""), lj.i, "");
    LLVMValueRef trow =
        LLVMBuildAdd(L->b, LLVMBuildMul(L->b, lo.i, n, ""), i, "");
    llvm_loop_begin(L, &lc, NULL, inner, "c");
    LLVMValueRef at;
    if (panel) { /* the GEMM's panels of W.T, as the C backend's gather */
      LLVMValueRef pw = llvm_i64(L, panel);
      LLVMValueRef base = LLVMBuildMul(L->b, LLVMBuildSDiv(L->b, trow, pw, ""),
                                       LLVMBuildMul(L->b, inner, pw, ""), "");
      at = LLVMBuildAdd(
          L->b, LLVMBuildAdd(L->b, base, LLVMBuildMul(L->b, lc.i, pw, ""), ""),
          LLVMBuildSRem(L->b, trow, pw, ""), "");
    } else if (trans) {
      at = LLVMBuildAdd(L->b, LLVMBuildMul(L->b, lc.i, n, ""), trow, "");
    } else {
      at = LLVMBuildAdd(L->b, LLVMBuildMul(L->b, trow, inner, ""), lc.i, "");
    }
    LLVMTypeRef st =
        llvm_type(L, store == DT_F32 ? op->results[0]->type.dtype : store);
    LLVMValueRef v = widen(
        L, LLVMBuildLoad2(L->b, st, llvm_gep(L, st, xp[0], at), ""), store);
    LLVMBuildStore(
        L->b, v,
        llvm_gep(
            L, yt, yp,
            LLVMBuildAdd(L->b, LLVMBuildMul(L->b, yrow, inner, ""), lc.i, "")));
    llvm_loop_end(L, &lc);
    llvm_loop_end(L, &lj);
    llvm_loop_end(L, &lo);
    return;
  }
}

/* scatter_add, as c_kernels.c's: every index checked, y zeroed, then
 * y[o, index[j], c] += updates[o, j, c] with j in order. */
static void scatter_add_body(LlvmK *k, const Op *op, LLVMValueRef *xp,
                             LLVMValueRef yp, LLVMValueRef err,
                             const char *where) {
  LlvmEmit *L = k->L;
  const Shape *ts = &op->results[0]->type.shape;
  const Shape *is = &op->operands[1]->type.shape;
  int axis = op->attrs.axis.axis;
  LLVMTypeRef yt = llvm_type(L, op->results[0]->type.dtype);
  LLVMTypeRef ity = llvm_type(L, op->operands[1]->type.dtype);
  LLVMValueRef n = llvm_dim(L, ts->dims[axis], k->sym);
  LLVMValueRef inner = llvm_numel(L, ts, axis + 1, ts->rank, k->sym);
  LLVMValueRef nidx = llvm_numel(L, is, 0, is->rank, k->sym);
  LlvmLoop lj, le, lo, lc;
  llvm_loop_begin(L, &lj, NULL, nidx, "j");
  LLVMValueRef i = LLVMBuildIntCast2(
      L->b, LLVMBuildLoad2(L->b, ity, llvm_gep(L, ity, xp[1], lj.i), ""),
      L->i64, 1, "i");
  LLVMValueRef bad =
      LLVMBuildOr(L->b, LLVMBuildICmp(L->b, LLVMIntSLT, i, llvm_i64(L, 0), ""),
                  LLVMBuildICmp(L->b, LLVMIntSGE, i, n, ""), "");
  llvm_fail_if(
      L, k->fn, err, bad, MC_ERR_RANGE,
      cg_strf(&L->e->arena, "index %%lld out of range [0, %%lld) at %s", where),
      i, n);
  llvm_loop_end(L, &lj);
  llvm_loop_begin(L, &le, NULL, llvm_numel(L, ts, 0, ts->rank, k->sym), "e");
  LLVMBuildStore(L->b, LLVMConstNull(yt), llvm_gep(L, yt, yp, le.i));
  llvm_loop_end(L, &le);
  llvm_loop_begin(L, &lo, NULL, llvm_numel(L, ts, 0, axis, k->sym), "o");
  llvm_loop_begin(L, &lj, NULL, nidx, "j");
  i = LLVMBuildIntCast2(
      L->b, LLVMBuildLoad2(L->b, ity, llvm_gep(L, ity, xp[1], lj.i), ""),
      L->i64, 1, "i");
  LLVMValueRef urow =
      LLVMBuildAdd(L->b, LLVMBuildMul(L->b, lo.i, nidx, ""), lj.i, "");
  LLVMValueRef yrow =
      LLVMBuildAdd(L->b, LLVMBuildMul(L->b, lo.i, n, ""), i, "");
  llvm_loop_begin(L, &lc, NULL, inner, "c");
  LLVMValueRef ua =
      LLVMBuildAdd(L->b, LLVMBuildMul(L->b, urow, inner, ""), lc.i, "");
  LLVMValueRef ya =
      LLVMBuildAdd(L->b, LLVMBuildMul(L->b, yrow, inner, ""), lc.i, "");
  LLVMValueRef yptr = llvm_gep(L, yt, yp, ya);
  LLVMValueRef sum = LLVMBuildFAdd(
      L->b, LLVMBuildLoad2(L->b, yt, yptr, ""),
      LLVMBuildLoad2(L->b, yt, llvm_gep(L, yt, xp[0], ua), ""), "");
  LLVMBuildStore(L->b, sum, yptr);
  llvm_loop_end(L, &lc);
  llvm_loop_end(L, &lj);
  llvm_loop_end(L, &lo);
}

bool llvm_is_movement(const Op *op) {
  return op->kind == OP_IOTA || op->kind == OP_PERMUTE ||
         op->kind == OP_SLICE || op->kind == OP_CONCAT ||
         op->kind == OP_GATHER || op->kind == OP_SCATTER_ADD;
}

bool llvm_movement_kernel(LlvmFn *F, const Op *op, Diag *d) {
  LlvmEmit *L = F->L;
  FnEmit *fe = F->fe;
  Emitter *e = L->e;
  const Value *y = op->results[0];
  /* a gathered weight may be kept transposed ([inner, n]: column i), in
   * the GEMM's panels of W.T (panel: their width) or in 16 bits (widened
   * as it is read, as by a permute of it: c_weights.c) */
  bool trans = false;
  int panel = 0;
  DType store = op->kind == OP_PERMUTE || op->kind == OP_GATHER
                    ? cg_weight_store(fe, op->operands[0])
                    : DT_F32;
  if (op->kind == OP_GATHER) {
    const ValueInfo *ti = cg_info(fe, op->operands[0]);
    trans = ti->storage == ST_PARAM && e->wtrans[ti->index] &&
            op->attrs.axis.axis == 0;
    if (trans && e->wpacked[ti->index])
      panel = store == DT_F32 ? MC_GEMM_PANEL : MC_GEMM_PANEL16;
  }
  bool can_fail = op->kind == OP_GATHER || op->kind == OP_SCATTER_ADD ||
                  llvm_decode_can_fail(op);
  for (int i = 0; op->kind == OP_SLICE && i < op->operands[0]->type.shape.rank;
       i++)
    can_fail |= !cg_slice_axis_checked(op, i); /* as the C backend's */
  bool in_place = op->kind == OP_DYNAMIC_UPDATE_SLICE &&
                  cg_info(fe, y)->storage == ST_ALIAS;
  LLVMTypeRef params[MAX_SYMBOLS + 40];
  LLVMValueRef args[MAX_SYMBOLS + 40];
  int np = llvm_symbol_params(F, params, args);
  int first_ptr = np;
  if (op->noperands > 32) {
    diag_error(d, op->loc,
               "the LLVM backend does not compile a concat of "
               "more than 32 operands yet");
    return false;
  }
  for (int i = 0; i <= op->noperands; i++) {
    const Value *v = i < op->noperands ? op->operands[i] : y;
    params[np] = LLVMPointerType(
        llvm_type(L, i == 0 && store != DT_F32 ? store : v->type.dtype), 0);
    args[np] = LLVMBuildBitCast(L->b, llvm_pointer(F, v), params[np], "");
    np++;
  }
  if (can_fail) {
    params[np] = L->ptr;
    args[np++] = F->err;
  }
  LlvmK k = llvm_kernel(F, op, d);
  k.fn = LLVMAddFunction(
      L->mod, cg_kernel_name(e, op),
      LLVMFunctionType(can_fail ? L->i32 : L->vd, params, (unsigned)np, 0));
  LLVMSetLinkage(k.fn, LLVMInternalLinkage);
  llvm_noinline(L, k.fn);
  int p = 0;
  for (int s = 0; s < e->m->nsymbols; s++)
    if (fe->syms & (UINT64_C(1) << s)) {
      k.sym[s] = LLVMGetParam(k.fn, (unsigned)p++);
      LLVMSetValueName2(k.sym[s], e->symnames[s], strlen(e->symnames[s]));
    }
  LLVMValueRef xp[34];
  for (int i = 0; i < op->noperands; i++) {
    xp[i] = LLVMGetParam(k.fn, (unsigned)(first_ptr + i));
    const char *pn = cg_operand_name(op, i);
    LLVMSetValueName2(xp[i], pn, strlen(pn));
  }
  LLVMValueRef yp = LLVMGetParam(k.fn, (unsigned)(first_ptr + op->noperands));
  LLVMSetValueName2(yp, "y", 1);
  LLVMValueRef err = can_fail ? LLVMGetParam(k.fn, (unsigned)np - 1) : NULL;
  if (err)
    LLVMSetValueName2(err, "err", 3);
  LLVMBasicBlockRef caller = LLVMGetInsertBlock(L->b);
  LLVMPositionBuilderAtEnd(
      L->b, LLVMAppendBasicBlockInContext(L->ctx, k.fn, "entry"));
  const char *fmt_where = llvm_where_format(e, op);
  if (llvm_is_reduce(op))
    llvm_reduce_body(&k, op, xp[0], yp);
  else if (llvm_is_decode(op))
    llvm_decode_body(&k, op, xp, yp, err, fmt_where, in_place);
  else if (op->kind == OP_SCATTER_ADD)
    scatter_add_body(&k, op, xp, yp, err, fmt_where);
  else
    body(&k, op, xp, yp, err, fmt_where, trans, panel, store);
  if (can_fail)
    LLVMBuildRet(L->b, LLVMConstInt(L->i32, MC_OK, 0));
  else
    LLVMBuildRetVoid(L->b);
  LLVMPositionBuilderAtEnd(L->b, caller);
  LLVMValueRef rc = LLVMBuildCall2(L->b, LLVMGlobalGetValueType(k.fn), k.fn,
                                   args, (unsigned)np, "");
  if (can_fail)
    llvm_check_status(F, rc);
  return true;
}
