/* The LLVM backend's scan, as the C backend's (c_scan.c, whose comment
 * shows the loop): the carries start as their inits in the scan results'
 * buffers, each step points the region's arguments at the carries, at
 * slice t of each sequence and at the step index, runs the region's
 * kernels, copies its outputs into slot t and then the new carries; with
 * `until`, the loop stops after the step whose done flag is set, the rows
 * no step wrote are zeroed and the step count stored.
 */
#include <string.h>

#include "llvm_emit_internal.h"
#include "mc_runtime.h"

static const Value *root_of(FnEmit *fe, const Value *v) {
  while (cg_info(fe, v)->storage == ST_ALIAS ||
         cg_info(fe, v)->storage == ST_CARRY)
    v = cg_info(fe, v)->alias;
  return v;
}

/* Bytes of v's elements after the first axis (a row of a sequence). */
static LLVMValueRef row_bytes(LlvmFn *F, const Value *v) {
  const Shape *s = &v->type.shape;
  return LLVMBuildMul(F->L->b, llvm_numel(F->L, s, 1, s->rank, F->sym),
                      llvm_i64(F->L, (int64_t)dtype_size(v->type.dtype)), "");
}

static LLVMValueRef bytes_of(LlvmFn *F, const Value *v) {
  const Shape *s = &v->type.shape;
  return LLVMBuildMul(F->L->b, llvm_numel(F->L, s, 0, s->rank, F->sym),
                      llvm_i64(F->L, (int64_t)dtype_size(v->type.dtype)), "");
}

static LLVMValueRef at(LlvmEmit *L, LLVMValueRef p, LLVMValueRef off) {
  return LLVMBuildGEP2(L->b, L->i8, p, &off, 1, "");
}

static void copy(LlvmFn *F, LLVMValueRef dst, LLVMValueRef src,
                 LLVMValueRef n) {
  LlvmEmit *L = F->L;
  LLVMTypeRef p[3] = {L->ptr, L->ptr, L->i64};
  LLVMValueRef args[3] = {dst, src, n};
  llvm_call(L, "memcpy", LLVMFunctionType(L->ptr, p, 3, 0), args, 3);
}

/* A stack slot in the run function's entry block (not in a loop). */
static LLVMValueRef entry_slot(LlvmFn *F, LLVMTypeRef t, const char *name) {
  LlvmEmit *L = F->L;
  LLVMBuilderRef b = LLVMCreateBuilderInContext(L->ctx);
  LLVMBasicBlockRef entry = LLVMGetEntryBasicBlock(F->fn);
  LLVMValueRef first = LLVMGetFirstInstruction(entry);
  if (first)
    LLVMPositionBuilderBefore(b, first);
  else
    LLVMPositionBuilderAtEnd(b, entry);
  LLVMValueRef slot = LLVMBuildAlloca(b, t, name);
  LLVMDisposeBuilder(b);
  return slot;
}

bool llvm_emit_scan(LlvmFn *F, const Op *op, Diag *d) {
  LlvmEmit *L = F->L;
  FnEmit *fe = F->fe;
  LLVMBuilderRef b = L->b;
  const Block *body = op->regions[0];
  const Op *y = ir_scan_yield(op);
  int nc = op->attrs.scan.ncarry, ns = op->attrs.scan.nseq;
  int first = ir_scan_first_output(op);
  bool until = op->attrs.scan.until;
  int nout = ir_scan_noutputs(op);
  for (int i = 0; i < nc; i++) {
    const Value *r = root_of(fe, y->operands[i]);
    for (int j = 0; j < nc; j++)
      if (j != i && r == body->args[j]) {
        diag_error(d, y->loc,
                   "the LLVM backend does not support a scan carry that "
                   "takes another carry's old value yet (carry %d from "
                   "carry %d)",
                   i, j);
        return false;
      }
  }
  LLVMValueRef len = llvm_dim(L, op->attrs.scan.length, F->sym);
  for (int i = 0; i < nc; i++)
    if (root_of(fe, op->operands[i]) != root_of(fe, op->results[i]))
      copy(F, llvm_pointer(F, op->results[i]), llvm_pointer(F, op->operands[i]),
           bytes_of(F, op->results[i]));
  LLVMValueRef index_slot = entry_slot(F, L->i32, "t");
  LLVMValueRef steps = until ? entry_slot(F, L->i64, "steps") : NULL;
  if (until)
    LLVMBuildStore(b, llvm_i64(L, 0), steps);
  LlvmLoop lp;
  llvm_loop_begin(L, &lp, NULL, len, "step");
  LLVMValueRef t =
      op->attrs.scan.reverse
          ? LLVMBuildSub(b, LLVMBuildSub(b, len, llvm_i64(L, 1), ""), lp.i, "t")
          : lp.i;
  for (int i = 0; i < body->nargs; i++) {
    const Value *arg = body->args[i];
    if (i < nc) {
      F->local[arg->id] = llvm_pointer(F, op->results[i]);
    } else if (i < nc + ns) {
      const Value *seq = op->operands[i];
      F->local[arg->id] = at(L, llvm_pointer(F, seq),
                             LLVMBuildMul(b, t, row_bytes(F, seq), ""));
    } else { /* the step index: an i32 the kernels read */
      LLVMBuildStore(b, LLVMBuildTrunc(b, t, L->i32, ""), index_slot);
      F->local[arg->id] = LLVMBuildBitCast(b, index_slot, L->ptr, "");
    }
  }
  for (int j = 0; j < nout; j++) { /* outputs computed in their rows */
    const Value *v = y->operands[first + j], *r = op->results[nc + j];
    if (cg_info(fe, v)->storage == ST_SLOT)
      F->local[v->id] =
          at(L, llvm_pointer(F, r), LLVMBuildMul(b, t, row_bytes(F, r), ""));
  }
  bool ok = true;
  for (const Op *o = body->first; ok && o; o = o->next) {
    bool live = cg_op_live(fe, o);
    if (live)
      ok = llvm_emit_op(F, o, d);
  }
  if (!ok)
    return false;
  LLVMValueRef stop = NULL;
  if (until) /* the done flag, before any carry changes */
    stop = LLVMBuildICmp(
        b, LLVMIntNE,
        LLVMBuildLoad2(b, L->i8, llvm_pointer(F, y->operands[nc]), ""),
        LLVMConstInt(L->i8, 0, 0), "stop");
  for (int j = 0; j < nout; j++) {
    const Value *v = y->operands[first + j], *r = op->results[nc + j];
    if (cg_info(fe, v)->storage == ST_SLOT)
      continue;
    copy(F, at(L, llvm_pointer(F, r), LLVMBuildMul(b, t, row_bytes(F, r), "")),
         llvm_pointer(F, v), bytes_of(F, v));
  }
  for (int i = 0; i < nc; i++) {
    const Value *v = y->operands[i];
    if (root_of(fe, v) != body->args[i]) /* else in place already */
      copy(F, llvm_pointer(F, op->results[i]), llvm_pointer(F, v),
           bytes_of(F, v));
  }
  if (until) {
    LLVMBuildStore(b, LLVMBuildAdd(b, lp.i, llvm_i64(L, 1), ""), steps);
    LLVMBasicBlockRef cont =
        LLVMAppendBasicBlockInContext(L->ctx, F->fn, "step.next");
    LLVMBuildCondBr(b, stop, lp.exit, cont);
    LLVMPositionBuilderAtEnd(b, cont);
  }
  llvm_loop_end(L, &lp);
  if (until) { /* rows no step wrote are zeros; the step count */
    LLVMValueRef n = LLVMBuildLoad2(b, L->i64, steps, "");
    LLVMTypeRef p[3] = {L->ptr, L->i32, L->i64};
    for (int j = 0; j < nout; j++) {
      const Value *r = op->results[nc + j];
      LLVMValueRef row = row_bytes(F, r);
      LLVMValueRef start =
          op->attrs.scan.reverse
              ? llvm_pointer(F, r)
              : at(L, llvm_pointer(F, r), LLVMBuildMul(b, n, row, ""));
      LLVMValueRef args[3] = {
          start, LLVMConstInt(L->i32, 0, 0),
          LLVMBuildMul(b, LLVMBuildSub(b, len, n, ""), row, "")};
      llvm_call(L, "memset", LLVMFunctionType(L->ptr, p, 3, 0), args, 3);
    }
    LLVMBuildStore(
        b, LLVMBuildTrunc(b, n, L->i32, ""),
        LLVMBuildBitCast(b, llvm_pointer(F, op->results[op->nresults - 1]),
                         LLVMPointerType(L->i32, 0), ""));
  }
  return true;
}

/* The run function's values a task reads, as fields of X: the model,
 * err, the workspace, the symbols, inputs and outputs. */
static int task_fields(LlvmFn *X, LLVMValueRef **out) {
  const FnEmit *fe = X->fe;
  const Function *f = fe->f;
  int n = 0;
  out[n++] = &X->m;
  out[n++] = &X->err;
  if (X->ws) {
    out[n++] = &X->ws;
    out[n++] = &X->off;
  }
  for (int s = 0; s < fe->e->m->nsymbols; s++)
    if (fe->syms & (UINT64_C(1) << s))
      out[n++] = &X->sym[s];
  for (int i = 0; i < f->ninputs; i++)
    if (X->in[i])
      out[n++] = &X->in[i];
  for (int i = 0; i < f->noutputs; i++)
    if (X->out[i])
      out[n++] = &X->out[i];
  return n;
}

/* Where a task whose loop failed keeps its status: task's slot of the
 * status array (the context's last field), then it returns. */
static LLVMBasicBlockRef task_failed(LlvmFn *T, LLVMTypeRef ctx_t,
                                     LLVMValueRef ctx, int nfields, int task) {
  LlvmEmit *L = T->L;
  LLVMBasicBlockRef bb = LLVMAppendBasicBlockInContext(L->ctx, T->fn, "failed");
  LLVMBasicBlockRef at = LLVMGetInsertBlock(L->b);
  LLVMPositionBuilderAtEnd(L->b, bb);
  LLVMValueRef rcs = LLVMBuildBitCast(
      L->b,
      LLVMBuildLoad2(
          L->b, L->ptr,
          LLVMBuildStructGEP2(L->b, ctx_t, ctx, (unsigned)nfields, ""), ""),
      LLVMPointerType(L->i32, 0), "");
  LLVMValueRef idx = llvm_i64(L, task);
  LLVMBuildStore(L->b, LLVMBuildLoad2(L->b, L->i32, T->rc, ""),
                 LLVMBuildGEP2(L->b, L->i32, rcs, &idx, 1, ""));
  LLVMBuildRetVoid(L->b);
  LLVMPositionBuilderAtEnd(L->b, at);
  return bb;
}

/* The two loops run as the two tasks of a function that mc_parallel_for
 * calls, reading the run function's values from a context struct (the
 * fields of task_fields, then the tasks' status array). When a loop can
 * fail, each task has its own McError (the context's err points at an
 * array of two) and status, and the run function reports the first
 * failed task's (mc_tasks_status), as the C backend does. */
bool llvm_emit_scan_pair(LlvmFn *F, const Op *s1, const Op *s2, Diag *d) {
  LlvmEmit *L = F->L;
  Emitter *e = L->e;
  Arena *a = &e->arena;
  const Function *f = F->fe->f;
  size_t cap =
      5 + (size_t)e->m->nsymbols + (size_t)f->ninputs + (size_t)f->noutputs;
  LLVMValueRef **from = arena_alloc(a, cap * sizeof *from);
  LLVMValueRef **to = arena_alloc(a, cap * sizeof *to);
  LLVMTypeRef *types = arena_alloc(a, cap * sizeof *types);
  int n = task_fields(F, from);
  for (int i = 0; i < n; i++)
    types[i] = LLVMTypeOf(*from[i]);
  types[n] = L->ptr; /* the tasks' status array, when a loop can fail */
  LLVMTypeRef ctx_t =
      LLVMStructTypeInContext(L->ctx, types, (unsigned)n + 1, 0);
  /* the task: both loops, each where its index is in [begin, end) */
  LLVMTypeRef tp[3] = {L->ptr, L->i64, L->i64};
  LLVMValueRef task = LLVMAddFunction(
      L->mod,
      cg_names_unique(&e->globals, a,
                      cg_strf(a, "%s_L%d_scans", F->fe->run, s1->loc.line)),
      LLVMFunctionType(L->vd, tp, 3, 0));
  LLVMSetLinkage(task, LLVMInternalLinkage);
  LLVMBasicBlockRef caller = LLVMGetInsertBlock(L->b);
  LlvmFn T = *F;
  T.fn = task;
  T.in = arena_alloc(a, ((size_t)f->ninputs + 1) * sizeof *T.in);
  T.out = arena_alloc(a, ((size_t)f->noutputs + 1) * sizeof *T.out);
  memcpy(T.in, F->in, (size_t)f->ninputs * sizeof *T.in);
  memcpy(T.out, F->out, (size_t)f->noutputs * sizeof *T.out);
  task_fields(&T, to);
  LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(L->ctx, task, "");
  LLVMPositionBuilderAtEnd(L->b, entry);
  LLVMValueRef ctx = LLVMBuildBitCast(L->b, LLVMGetParam(task, 0),
                                      LLVMPointerType(ctx_t, 0), "");
  for (int i = 0; i < n; i++)
    *to[i] = LLVMBuildLoad2(
        L->b, types[i], LLVMBuildStructGEP2(L->b, ctx_t, ctx, (unsigned)i, ""),
        "");
  LLVMValueRef errs = T.err;
  T.rc = LLVMBuildAlloca(L->b, L->i32, "rc");
  LLVMBasicBlockRef first = LLVMAppendBasicBlockInContext(L->ctx, task, "");
  LLVMBasicBlockRef ask = LLVMAppendBasicBlockInContext(L->ctx, task, "");
  LLVMBasicBlockRef second = LLVMAppendBasicBlockInContext(L->ctx, task, "");
  LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(L->ctx, task, "");
  LLVMBuildCondBr(L->b,
                  LLVMBuildICmp(L->b, LLVMIntSLE, LLVMGetParam(task, 1),
                                llvm_i64(L, 0), ""),
                  first, ask);
  LLVMPositionBuilderAtEnd(L->b, first);
  T.done = task_failed(&T, ctx_t, ctx, n, 0);
  bool ok = llvm_emit_scan(&T, s1, d);
  bool can_fail = LLVMGetFirstUse(LLVMBasicBlockAsValue(T.done)) != NULL;
  LLVMBuildBr(L->b, ask);
  LLVMPositionBuilderAtEnd(L->b, ask);
  LLVMBuildCondBr(L->b,
                  LLVMBuildICmp(L->b, LLVMIntSGE, LLVMGetParam(task, 2),
                                llvm_i64(L, 2), ""),
                  second, exit);
  LLVMPositionBuilderAtEnd(L->b, second);
  LLVMValueRef one = llvm_i64(L, (int64_t)sizeof(McError));
  T.err = LLVMBuildGEP2(L->b, L->i8, errs, &one, 1, "err1");
  T.done = task_failed(&T, ctx_t, ctx, n, 1);
  ok = ok && llvm_emit_scan(&T, s2, d);
  can_fail |= LLVMGetFirstUse(LLVMBasicBlockAsValue(T.done)) != NULL;
  LLVMBuildBr(L->b, exit);
  LLVMPositionBuilderAtEnd(L->b, exit);
  LLVMBuildRetVoid(L->b);
  LLVMPositionBuilderAtEnd(L->b, caller);
  if (!ok)
    return false;
  LLVMValueRef slot = entry_slot(F, ctx_t, "scans");
  LLVMValueRef rcs = LLVMConstPointerNull(L->ptr);
  if (can_fail) {
    LLVMTypeRef rcs_t = LLVMArrayType(L->i32, 2);
    rcs = entry_slot(F, rcs_t, "task_rc");
    LLVMValueRef okv = LLVMConstInt(L->i32, MC_OK, 0);
    LLVMValueRef both[2] = {okv, okv};
    LLVMBuildStore(L->b, LLVMConstArray(L->i32, both, 2), rcs);
    rcs = LLVMBuildBitCast(L->b, rcs, L->ptr, "");
    errs = entry_slot(F, LLVMArrayType(L->i8, 2 * sizeof(McError)), "task_err");
    LLVMSetAlignment(errs, 8);
    errs = LLVMBuildBitCast(L->b, errs, L->ptr, "");
  }
  for (int i = 0; i < n; i++)
    LLVMBuildStore(L->b, from[i] == &F->err && can_fail ? errs : *from[i],
                   LLVMBuildStructGEP2(L->b, ctx_t, slot, (unsigned)i, ""));
  LLVMBuildStore(L->b, rcs,
                 LLVMBuildStructGEP2(L->b, ctx_t, slot, (unsigned)n, ""));
  LLVMTypeRef pf[4] = {L->i64, L->i64, L->ptr, L->ptr};
  LLVMValueRef args[4] = {llvm_i64(L, 2), llvm_i64(L, 1),
                          LLVMBuildBitCast(L->b, task, L->ptr, ""),
                          LLVMBuildBitCast(L->b, slot, L->ptr, "")};
  llvm_call(L, "mc_parallel_for", LLVMFunctionType(L->vd, pf, 4, 0), args, 4);
  if (can_fail) {
    LLVMTypeRef sp[4] = {L->ptr, L->ptr, L->i32, L->ptr};
    LLVMValueRef sa[4] = {rcs, errs, LLVMConstInt(L->i32, 2, 0), F->err};
    llvm_check_status(F, llvm_call(L, "mc_tasks_status",
                                   LLVMFunctionType(L->i32, sp, 4, 0), sa, 4));
  }
  return true;
}
