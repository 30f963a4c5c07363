/* The LLVM backend's translation of a Module (llvm_emit.h): the module's
 * tables and glue (llvm_glue.c), per function its layout, workspace size
 * and typed run function (here), and a kernel per op (llvm_kernels.c);
 * the builders they share are in llvm_builders.c.
 * The C backend's analysis decides where every value lives, so the two
 * backends lay out the same buffers at the same offsets and call the same
 * runtime. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "llvm_emit.h"
#include "llvm_emit_internal.h"
#include "llvm_vmath.h"
#include "mc_runtime.h"

/* ---- pointers ------------------------------------------------------------ */

/* A constant's data: a private global with its bytes. */
static LLVMValueRef const_array(LlvmFn *F, const Value *v) {
  LlvmEmit *L = F->L;
  int64_t n = 0;
  shape_const_numel(&v->type.shape, &n);
  size_t bytes = (size_t)n * dtype_size(v->type.dtype);
  LLVMValueRef data = LLVMConstStringInContext(
      L->ctx, bytes ? v->def->attrs.cst.data : "", (unsigned)bytes, 1);
  char name[64];
  snprintf(name, sizeof name, "%s_c%d", F->L->e->name, v->id);
  LLVMValueRef g = LLVMAddGlobal(L->mod, LLVMTypeOf(data), name);
  LLVMSetInitializer(g, data);
  LLVMSetGlobalConstant(g, 1);
  LLVMSetLinkage(g, LLVMPrivateLinkage);
  LLVMSetAlignment(g, 64);
  return LLVMConstBitCast(g, L->ptr);
}

/* ws + off[buffer]: workspace buffer `buffer`'s bytes. */
static LLVMValueRef buffer_pointer(LlvmFn *F, int buffer, const char *name) {
  LlvmEmit *L = F->L;
  LLVMValueRef idx[2] = {LLVMConstInt(L->i64, 0, 0),
                         LLVMConstInt(L->i64, (uint64_t)buffer, 0)};
  LLVMValueRef off =
      LLVMBuildLoad2(L->b, L->i64,
                     LLVMBuildGEP2(L->b, LLVMGetElementType(LLVMTypeOf(F->off)),
                                   F->off, idx, 2, ""),
                     "");
  return LLVMBuildGEP2(L->b, L->i8, F->ws, &off, 1, name);
}

LLVMValueRef llvm_pointer(LlvmFn *F, const Value *v) {
  LlvmEmit *L = F->L;
  ValueInfo *vi = cg_info(F->fe, v);
  switch (vi->storage) {
  case ST_CONST:
    return const_array(F, v);
  case ST_INPUT:
    return F->in[vi->index];
  case ST_OUTPUT:
    return F->out[vi->index];
  case ST_PARAM: { /* ((McModel *)m)->w[index] */
    LLVMValueRef w = LLVMBuildLoad2(
        L->b, L->pptr,
        LLVMBuildBitCast(L->b, F->m, LLVMPointerType(L->pptr, 0), ""), "w");
    LLVMValueRef idx = LLVMConstInt(L->i64, (uint64_t)vi->index, 0);
    return LLVMBuildLoad2(L->b, L->ptr,
                          LLVMBuildGEP2(L->b, L->ptr, w, &idx, 1, ""),
                          vi->cname ? vi->cname : "");
  }
  case ST_WORKSPACE:
    return buffer_pointer(F, vi->index, vi->cname ? vi->cname : "");
  case ST_ALIAS:
  case ST_CARRY:
    return llvm_pointer(F, vi->alias);
  case ST_VIEW: {
    LLVMValueRef base = llvm_pointer(F, vi->view->base);
    LLVMValueRef off =
        LLVMBuildMul(L->b, llvm_dim(L, vi->view->offset, F->sym),
                     LLVMConstInt(L->i64, dtype_size(v->type.dtype), 0), "");
    return LLVMBuildGEP2(L->b, L->i8, base, &off, 1, "");
  }
  case ST_LOCAL:
  case ST_SLOT:
    return F->local[v->id];
  case ST_NONE:
  case ST_FUSED:
    break;
  }
  return LLVMConstNull(L->ptr);
}

/* ---- layout and workspace ------------------------------------------------ */

/* A private constant global of n i64s / n {start, end} pairs of i32s. */
static LLVMValueRef sizes_global(LlvmEmit *L, FnEmit *fe) {
  int n = fe->nbuffers;
  LLVMValueRef *v = arena_alloc(&L->e->arena, sizeof(LLVMValueRef) * (size_t)n);
  for (int i = 0; i < n; i++)
    v[i] = LLVMConstInt(L->i64, fe->plan.bytes[i], 0);
  LLVMValueRef init = LLVMConstArray(L->i64, v, (unsigned)n);
  LLVMValueRef g = LLVMAddGlobal(L->mod, LLVMTypeOf(init), "size");
  LLVMSetInitializer(g, init);
  LLVMSetGlobalConstant(g, 1);
  LLVMSetLinkage(g, LLVMPrivateLinkage);
  return LLVMConstBitCast(g, LLVMPointerType(L->i64, 0));
}

/* --check-plan: mc_plan_check(layout's name, n, live, off, size, end), as
 * the C backend's layout compiled with MC_CHECK_PLAN. */
static void check_plan(LlvmEmit *L, FnEmit *fe, LLVMValueRef off,
                       LLVMValueRef size, LLVMValueRef end) {
  int n = fe->nbuffers;
  LLVMTypeRef pair = LLVMArrayType(L->i32, 2);
  LLVMValueRef *v = arena_alloc(&L->e->arena, sizeof(LLVMValueRef) * (size_t)n);
  for (int i = 0; i < n; i++) {
    LLVMValueRef se[2] = {LLVMConstInt(L->i32, (uint64_t)fe->plan.start[i], 0),
                          LLVMConstInt(L->i32, (uint64_t)fe->plan.end[i], 0)};
    v[i] = LLVMConstArray(L->i32, se, 2);
  }
  LLVMValueRef init = LLVMConstArray(pair, v, (unsigned)n);
  LLVMValueRef live = LLVMAddGlobal(L->mod, LLVMTypeOf(init), "live");
  LLVMSetInitializer(live, init);
  LLVMSetGlobalConstant(live, 1);
  LLVMSetLinkage(live, LLVMPrivateLinkage);
  LLVMTypeRef params[6] = {L->ptr, L->i32, L->ptr, L->ptr, L->ptr, L->i64};
  LLVMValueRef args[6] = {llvm_cstring(L, fe->layout),
                          LLVMConstInt(L->i32, (uint64_t)n, 0),
                          LLVMConstBitCast(live, L->ptr),
                          LLVMBuildBitCast(L->b, off, L->ptr, ""),
                          LLVMBuildBitCast(L->b, size, L->ptr, ""),
                          end};
  llvm_call(L, "mc_plan_check", LLVMFunctionType(L->vd, params, 6, 0), args, 6);
}

/* <run>_layout(i64 syms..., i64 *off) -> i64: the workspace's offsets into
 * off[] and its size, as the C backend's layout (c_plan.c). */
static LLVMValueRef emit_layout(LlvmEmit *L, FnEmit *fe) {
  const CgPlan *p = &fe->plan;
  int nsyms = 0;
  LLVMTypeRef params[MAX_SYMBOLS + 1];
  for (int s = 0; s < L->e->m->nsymbols; s++)
    if (fe->syms & (UINT64_C(1) << s))
      params[nsyms++] = L->i64;
  params[nsyms] = LLVMPointerType(L->i64, 0);
  LLVMValueRef fn =
      LLVMAddFunction(L->mod, fe->layout,
                      LLVMFunctionType(L->i64, params, (unsigned)nsyms + 1, 0));
  LLVMSetLinkage(fn, LLVMInternalLinkage);
  LLVMBasicBlockRef saved = LLVMGetInsertBlock(L->b);
  LLVMPositionBuilderAtEnd(L->b,
                           LLVMAppendBasicBlockInContext(L->ctx, fn, "entry"));
  LLVMValueRef sym[MAX_SYMBOLS] = {0};
  for (int s = 0, k = 0; s < L->e->m->nsymbols; s++)
    if (fe->syms & (UINT64_C(1) << s)) {
      sym[s] = LLVMGetParam(fn, (unsigned)k++);
      LLVMSetValueName2(sym[s], L->e->m->symbols[s],
                        strlen(L->e->m->symbols[s]));
    }
  LLVMValueRef off = LLVMGetParam(fn, (unsigned)nsyms);
  LLVMSetValueName2(off, "off", 3);
  LLVMValueRef end, size; /* the arena's size, the buffers' (i64 *) */
  if (p->constant) {
    for (int i = 0; i < fe->nbuffers; i++) {
      LLVMValueRef idx = LLVMConstInt(L->i64, (uint64_t)i, 0);
      LLVMBuildStore(L->b, LLVMConstInt(L->i64, p->off[i], 0),
                     LLVMBuildGEP2(L->b, L->i64, off, &idx, 1, ""));
    }
    end = LLVMConstInt(L->i64, p->arena, 0);
    size = L->e->o->check_plan ? sizes_global(L, fe) : NULL;
  } else {
    /* size[i] = align64(bytes); end = mc_plan_place(i, meets, n, ...) */
    LLVMTypeRef arr = LLVMArrayType(L->i64, (unsigned)fe->nbuffers);
    LLVMValueRef sizes = LLVMBuildAlloca(L->b, arr, "size");
    end = LLVMConstInt(L->i64, 0, 0);
    LLVMTypeRef place_params[6] = {L->i32,
                                   LLVMPointerType(L->i32, 0),
                                   L->i32,
                                   LLVMPointerType(L->i64, 0),
                                   LLVMPointerType(L->i64, 0),
                                   L->i64};
    LLVMTypeRef place = LLVMFunctionType(L->i64, place_params, 6, 0);
    int *meets =
        arena_alloc(&L->e->arena, sizeof(int) * ((size_t)fe->nbuffers + 1));
    for (int k = 0; k < fe->nbuffers; k++) {
      int i = p->order[k];
      const Value *v = fe->buffers[i];
      LLVMValueRef bytes = LLVMBuildMul(
          L->b, llvm_numel(L, &v->type.shape, 0, v->type.shape.rank, sym),
          LLVMConstInt(L->i64, dtype_size(v->type.dtype), 0), "");
      bytes = LLVMBuildAnd(
          L->b, LLVMBuildAdd(L->b, bytes, LLVMConstInt(L->i64, 63, 0), ""),
          LLVMConstInt(L->i64, ~(uint64_t)63, 0), "");
      LLVMValueRef idx[2] = {LLVMConstInt(L->i64, 0, 0),
                             LLVMConstInt(L->i64, (uint64_t)i, 0)};
      LLVMBuildStore(L->b, bytes, LLVMBuildGEP2(L->b, arr, sizes, idx, 2, ""));
      int n = cg_plan_meets(fe, k, meets);
      LLVMValueRef list = LLVMConstNull(LLVMPointerType(L->i32, 0));
      if (n > 0) {
        LLVMValueRef *vals =
            arena_alloc(&L->e->arena, sizeof(LLVMValueRef) * (size_t)n);
        for (int q = 0; q < n; q++)
          vals[q] = LLVMConstInt(L->i32, (uint64_t)meets[q], 0);
        LLVMValueRef init = LLVMConstArray(L->i32, vals, (unsigned)n);
        LLVMValueRef g = LLVMAddGlobal(L->mod, LLVMTypeOf(init), "meets");
        LLVMSetInitializer(g, init);
        LLVMSetGlobalConstant(g, 1);
        LLVMSetLinkage(g, LLVMPrivateLinkage);
        list = LLVMConstBitCast(g, LLVMPointerType(L->i32, 0));
      }
      LLVMValueRef zero = LLVMConstInt(L->i64, 0, 0);
      LLVMValueRef args[6] = {
          LLVMConstInt(L->i32, (uint64_t)i, 0),
          list,
          LLVMConstInt(L->i32, (uint64_t)n, 0),
          off,
          LLVMBuildGEP2(L->b, arr, sizes, (LLVMValueRef[]){zero, zero}, 2, ""),
          end};
      end = llvm_call(L, "mc_plan_place", place, args, 6);
    }
    LLVMValueRef zero = LLVMConstInt(L->i64, 0, 0);
    size = LLVMBuildGEP2(L->b, arr, sizes, (LLVMValueRef[]){zero, zero}, 2, "");
  }
  if (L->e->o->check_plan)
    check_plan(L, fe, off, size, end);
  LLVMBuildRet(L->b, end);
  if (saved)
    LLVMPositionBuilderAtEnd(L->b, saved);
  return fn;
}

/* size_t <wsize>(int64_t syms...) */
static void emit_workspace_size(LlvmEmit *L, FnEmit *fe, LLVMValueRef layout) {
  int nsyms = 0;
  LLVMTypeRef params[MAX_SYMBOLS];
  for (int s = 0; s < L->e->m->nsymbols; s++)
    if (fe->syms & (UINT64_C(1) << s))
      params[nsyms++] = L->i64;
  LLVMValueRef fn = LLVMAddFunction(
      L->mod, fe->wsize, LLVMFunctionType(L->i64, params, (unsigned)nsyms, 0));
  LLVMPositionBuilderAtEnd(L->b,
                           LLVMAppendBasicBlockInContext(L->ctx, fn, "entry"));
  if (!layout) {
    LLVMBuildRet(L->b, LLVMConstInt(L->i64, 0, 0));
    return;
  }
  LLVMValueRef args[MAX_SYMBOLS + 1];
  for (int k = 0; k < nsyms; k++)
    args[k] = LLVMGetParam(fn, (unsigned)k);
  args[nsyms] = LLVMBuildArrayAlloca(
      L->b, L->i64, LLVMConstInt(L->i64, (uint64_t)fe->nbuffers, 0), "off");
  LLVMBuildRet(L->b, LLVMBuildCall2(L->b, LLVMGlobalGetValueType(layout),
                                    layout, args, (unsigned)nsyms + 1, ""));
}

/* The optimizer states: buffers 0 .. nstates-1 of the arena, and the
 * destinations of their updates' copies. */
static void state_pointers(LlvmFn *F) {
  FnEmit *fe = F->fe;
  for (int k = 0; k < fe->nstates; k++) {
    int i = cg_info(fe, fe->buffers[k])->index;
    F->in[i] = F->out[fe->state_update[i]] =
        buffer_pointer(F, k, fe->in_names[i]);
  }
}

/* Absent optional inputs read as buffers filled with their default. */
static void fill_defaults(LlvmFn *F) {
  LlvmEmit *L = F->L;
  FnEmit *fe = F->fe;
  const Function *f = fe->f;
  for (int i = 0; i < f->ninputs; i++) {
    const FuncInput *in = &f->inputs[i];
    if (!in->has_default || cg_info(fe, in->value)->uses == 0)
      continue;
    int buf = 0;
    while (fe->buffers[buf] != in->value)
      buf++;
    DType t = in->value->type.dtype;
    unsigned char data[16] = {0};
    ir_const_store(t, data, 0, in->default_value);
    LLVMValueRef fill = buffer_pointer(F, buf, "fill");
    LLVMValueRef absent =
        LLVMBuildICmp(L->b, LLVMIntEQ, F->in[i], LLVMConstNull(L->ptr), "");
    LLVMBasicBlockRef yes =
        LLVMAppendBasicBlockInContext(L->ctx, F->fn, "absent");
    LLVMBasicBlockRef next =
        LLVMAppendBasicBlockInContext(L->ctx, F->fn, "given");
    LLVMBasicBlockRef from = LLVMGetInsertBlock(L->b);
    LLVMBuildCondBr(L->b, absent, yes, next);
    LLVMPositionBuilderAtEnd(L->b, yes);
    LLVMTypeRef et = llvm_type(L, t);
    LLVMValueRef typed =
        LLVMBuildBitCast(L->b, fill, LLVMPointerType(et, 0), "");
    LlvmLoop lp;
    llvm_loop_begin(L, &lp, NULL,
                    llvm_numel(L, &in->value->type.shape, 0,
                               in->value->type.shape.rank, F->sym),
                    "i");
    LLVMBuildStore(L->b, llvm_const_elem(L, t, data, 0),
                   LLVMBuildGEP2(L->b, et, typed, &lp.i, 1, ""));
    llvm_loop_end(L, &lp);
    LLVMBasicBlockRef filled = LLVMGetInsertBlock(L->b);
    LLVMBuildBr(L->b, next);
    LLVMPositionBuilderAtEnd(L->b, next);
    LLVMValueRef phi = LLVMBuildPhi(L->b, L->ptr, "");
    LLVMValueRef vals[2] = {F->in[i], fill};
    LLVMBasicBlockRef blocks[2] = {from, filled};
    LLVMAddIncoming(phi, vals, blocks, 2);
    F->in[i] = phi;
  }
}

/* int <run>(model *m, int64_t syms..., inputs..., outputs..., McError *err) */
static bool emit_run(LlvmEmit *L, FnEmit *fe, LLVMValueRef layout) {
  Emitter *e = L->e;
  const Function *f = fe->f;
  int nsyms = 0;
  for (int s = 0; s < e->m->nsymbols; s++)
    nsyms += (fe->syms >> s) & 1;
  int nin = 0, nout = 0;
  for (int i = 0; i < f->ninputs; i++)
    nin += cg_input_in_abi(fe, i);
  for (int i = 0; i < f->noutputs; i++)
    nout += cg_output_in_abi(fe, i);
  int np = 2 + nsyms + nin + nout;
  LLVMTypeRef *params =
      arena_alloc(&e->arena, sizeof(LLVMTypeRef) * (size_t)np);
  for (int i = 0; i < np; i++)
    params[i] = i > 0 && i <= nsyms ? L->i64 : L->ptr;
  LlvmFn F;
  memset(&F, 0, sizeof F);
  F.L = L;
  F.fe = fe;
  F.fn = LLVMAddFunction(L->mod, fe->run,
                         LLVMFunctionType(L->i32, params, (unsigned)np, 0));
  if (fe->internal)
    LLVMSetLinkage(F.fn, LLVMInternalLinkage);
  F.m = LLVMGetParam(F.fn, 0);
  LLVMSetValueName2(F.m, "m", 1);
  F.err = LLVMGetParam(F.fn, (unsigned)np - 1);
  LLVMSetValueName2(F.err, "err", 3);
  int k = 1;
  for (int s = 0; s < e->m->nsymbols; s++)
    if (fe->syms & (UINT64_C(1) << s)) {
      F.sym[s] = LLVMGetParam(F.fn, (unsigned)k++);
      LLVMSetValueName2(F.sym[s], e->symnames[s], strlen(e->symnames[s]));
    }
  F.in =
      arena_alloc(&e->arena, sizeof(LLVMValueRef) * ((size_t)f->ninputs + 1));
  F.out =
      arena_alloc(&e->arena, sizeof(LLVMValueRef) * ((size_t)f->noutputs + 1));
  for (int i = 0; i < f->ninputs; i++)
    if (cg_input_in_abi(fe, i)) {
      F.in[i] = LLVMGetParam(F.fn, (unsigned)k++);
      LLVMSetValueName2(F.in[i], fe->in_names[i], strlen(fe->in_names[i]));
    }
  for (int i = 0; i < f->noutputs; i++)
    if (cg_output_in_abi(fe, i)) {
      F.out[i] = LLVMGetParam(F.fn, (unsigned)k++);
      LLVMSetValueName2(F.out[i], fe->out_names[i], strlen(fe->out_names[i]));
    }
  LLVMPositionBuilderAtEnd(
      L->b, LLVMAppendBasicBlockInContext(L->ctx, F.fn, "entry"));
  for (int s = 0; s < e->m->nsymbols; s++)
    if (fe->syms & (UINT64_C(1) << s))
      llvm_fail_if(L, F.fn, F.err,
                   LLVMBuildICmp(L->b, LLVMIntSLT, F.sym[s],
                                 LLVMConstInt(L->i64, 0, 0), ""),
                   MC_ERR_SHAPE,
                   cg_strf(&e->arena, "%s: %s = %%lld is negative", fe->run,
                           cg_c_string(&e->arena, e->m->symbols[s], true)),
                   F.sym[s], NULL);
  F.rc = LLVMBuildAlloca(L->b, L->i32, "rc");
  LLVMBuildStore(L->b, LLVMConstInt(L->i32, MC_OK, 0), F.rc);
  if (fe->nbuffers > 0) {
    F.off = LLVMBuildAlloca(L->b, LLVMArrayType(L->i64, (unsigned)fe->nbuffers),
                            "off");
    LLVMValueRef args[MAX_SYMBOLS + 1];
    int n = 0;
    for (int s = 0; s < e->m->nsymbols; s++)
      if (fe->syms & (UINT64_C(1) << s))
        args[n++] = F.sym[s];
    LLVMValueRef zero = LLVMConstInt(L->i64, 0, 0);
    args[n++] =
        LLVMBuildGEP2(L->b, LLVMArrayType(L->i64, (unsigned)fe->nbuffers),
                      F.off, (LLVMValueRef[]){zero, zero}, 2, "");
    LLVMValueRef wsize = LLVMBuildCall2(L->b, LLVMGlobalGetValueType(layout),
                                        layout, args, (unsigned)n, "wsize");
    LLVMValueRef ws;
    if (fe->nstates > 0) { /* the model's, kept from call to call */
      LLVMTypeRef arena_p[4] = {L->ptr, L->i32, L->i64, L->i64};
      LLVMValueRef arena_a[4] = {
          F.m, LLVMConstInt(L->i32, (uint64_t)fe->key, 0), wsize,
          LLVMConstInt(L->i64, fe->state_bytes, 0)};
      ws = llvm_call(L, "mc_model_arena",
                     LLVMFunctionType(L->ptr, arena_p, 4, 0), arena_a, 4);
    } else {
      LLVMTypeRef ws_p[3] = {L->ptr, L->i32, L->i64};
      LLVMValueRef ws_a[3] = {F.m, LLVMConstInt(L->i32, (uint64_t)fe->key, 0),
                              wsize};
      ws = llvm_call(L, "mc_model_workspace",
                     LLVMFunctionType(L->ptr, ws_p, 3, 0), ws_a, 3);
    }
    LLVMSetValueName2(ws, "ws", 2);
    F.ws = ws;
    llvm_fail_if(L, F.fn, F.err,
                 LLVMBuildICmp(L->b, LLVMIntEQ, ws, LLVMConstNull(L->ptr), ""),
                 MC_ERR_NOMEM,
                 cg_strf(&e->arena,
                         "%s: cannot allocate %%zu bytes of workspace",
                         fe->run),
                 wsize, NULL);
    if (e->o->check_plan) { /* intermediates read before written: NaN */
      LLVMTypeRef ps[3] = {L->ptr, L->i32, L->i64};
      LLVMValueRef keep = LLVMConstInt(L->i64, fe->state_bytes, 0);
      LLVMValueRef fill[3] = {LLVMBuildGEP2(L->b, L->i8, F.ws, &keep, 1, ""),
                              LLVMConstInt(L->i32, 0xff, 0),
                              LLVMBuildSub(L->b, wsize, keep, "")};
      llvm_call(L, "memset", LLVMFunctionType(L->ptr, ps, 3, 0), fill, 3);
    }
  }
  F.done = LLVMAppendBasicBlockInContext(L->ctx, F.fn, "done");
  state_pointers(&F);
  fill_defaults(&F);
  F.local = arena_alloc(&e->arena, sizeof(LLVMValueRef) *
                                       ((size_t)e->m->next_value_id + 1));
  bool ok = true;
  for (const Op *op = f->body->first; ok && op; op = op->next) {
    const Op *partner = cg_scan_partner(fe, op);
    ok = partner ? llvm_emit_scan_pair(&F, op, partner, e->d)
                 : llvm_emit_op(&F, op, e->d);
    if (partner)
      op = partner;
  }
  if (!ok)
    return false;
  /* outputs not written in place */
  LLVMTypeRef memcpy_params[3] = {L->ptr, L->ptr, L->i64};
  LLVMTypeRef memcpy_t = LLVMFunctionType(L->ptr, memcpy_params, 3, 0);
  for (int i = 0; i < f->noutputs; i++) {
    if (fe->out_direct[i])
      continue;
    const Value *v = f->outputs[i].value;
    LLVMValueRef args[3] = {
        F.out[i], llvm_pointer(&F, v),
        LLVMBuildMul(
            L->b, llvm_numel(L, &v->type.shape, 0, v->type.shape.rank, F.sym),
            LLVMConstInt(L->i64, dtype_size(v->type.dtype), 0), "")};
    llvm_call(L, "memcpy", memcpy_t, args, 3);
  }
  LLVMBuildBr(L->b, F.done);
  LLVMPositionBuilderAtEnd(L->b, F.done);
  if (F.ws && fe->nstates == 0) {
    LLVMTypeRef done_p[3] = {L->ptr, L->i32, L->ptr};
    LLVMValueRef done_a[3] = {F.m, LLVMConstInt(L->i32, (uint64_t)fe->key, 0),
                              F.ws};
    llvm_call(L, "mc_model_workspace_done",
              LLVMFunctionType(L->vd, done_p, 3, 0), done_a, 3);
  }
  LLVMBuildRet(L->b, LLVMBuildLoad2(L->b, L->i32, F.rc, ""));
  llvm_emit_entry_tables(&F);
  return true;
}

static bool emit_op_code(LlvmFn *F, const Op *op, Diag *d) {
  if (op->kind == OP_YIELD)
    return true;
  ValueInfo *vi = cg_info(F->fe, op->results[0]);
  if (op->kind == OP_SCAN)
    return vi->uses == 0 || llvm_emit_scan(F, op, d);
  if (vi->storage == ST_WORKSPACE || vi->storage == ST_OUTPUT ||
      vi->storage == ST_CARRY || vi->storage == ST_SLOT ||
      (vi->storage == ST_ALIAS && !cg_op_is_alias(op)))
    return llvm_emit_kernel(F, op, d);
  return true;
}

/* An op's code, under a branch when a lazy select may not need it
 * (ValueInfo.guard: it runs only when the condition is guard_when). */
bool llvm_emit_op(LlvmFn *F, const Op *op, Diag *d) {
  const ValueInfo *vi =
      op->nresults > 0 ? cg_info(F->fe, op->results[0]) : NULL;
  if (!vi || !vi->guard)
    return emit_op_code(F, op, d);
  LlvmEmit *L = F->L;
  LLVMValueRef c = LLVMBuildLoad2(L->b, L->i8, llvm_pointer(F, vi->guard), "");
  LLVMBasicBlockRef run = LLVMAppendBasicBlockInContext(L->ctx, F->fn, "lazy"),
                    after = LLVMAppendBasicBlockInContext(L->ctx, F->fn,
                                                          "lazy.end");
  LLVMBuildCondBr(L->b,
                  LLVMBuildICmp(L->b, vi->guard_when ? LLVMIntNE : LLVMIntEQ, c,
                                LLVMConstInt(L->i8, 0, 0), "needed"),
                  run, after);
  LLVMPositionBuilderAtEnd(L->b, run);
  bool ok = emit_op_code(F, op, d);
  LLVMBuildBr(L->b, after);
  LLVMPositionBuilderAtEnd(L->b, after);
  return ok;
}

/* ---- the module ---------------------------------------------------------- */

static bool emit_function(LlvmEmit *L, const Function *f, FnEmit *fe) {
  if (!cg_function_begin(L->e, f, L->e->single, fe))
    return false;
  LLVMValueRef layout = fe->nbuffers > 0 ? emit_layout(L, fe) : NULL;
  if (!fe->internal)
    emit_workspace_size(L, fe, layout);
  return emit_run(L, fe, layout);
}

/* <n>_entries, the table of a model with several entry points (declared
 * in the C backend's header): NULL for a single one. */
static LLVMValueRef emit_entries(LlvmEmit *L, LLVMValueRef *infos, int n) {
  if (L->e->single)
    return NULL;
  LLVMValueRef *vals =
      arena_alloc(&L->e->arena, sizeof(LLVMValueRef) * ((size_t)n + 1));
  for (int i = 0; i < n; i++)
    vals[i] = LLVMConstBitCast(infos[i], L->ptr);
  LLVMValueRef init = LLVMConstArray(L->ptr, vals, (unsigned)n);
  LLVMValueRef g =
      LLVMAddGlobal(L->mod, LLVMTypeOf(init),
                    cg_strf(&L->e->arena, "%s_entries", L->e->name));
  LLVMSetInitializer(g, init);
  LLVMSetGlobalConstant(g, 1);
  return g;
}

/* main(argc, argv): mc_main on the model's McModelInfo, or
 * mc_main_entries on its entries. */
static void emit_main(LlvmEmit *L, const char *name, LLVMValueRef info,
                      LLVMValueRef entries, int n) {
  LLVMTypeRef params[2] = {L->i32, L->pptr};
  LLVMValueRef fn =
      LLVMAddFunction(L->mod, name, LLVMFunctionType(L->i32, params, 2, 0));
  LLVMPositionBuilderAtEnd(L->b,
                           LLVMAppendBasicBlockInContext(L->ctx, fn, "entry"));
  LLVMValueRef argc = LLVMGetParam(fn, 0), argv = LLVMGetParam(fn, 1);
  if (!entries) {
    LLVMTypeRef p3[3] = {L->i32, L->pptr, L->ptr};
    LLVMValueRef args[3] = {argc, argv, LLVMConstBitCast(info, L->ptr)};
    LLVMBuildRet(L->b, llvm_call(L, "mc_main",
                                 LLVMFunctionType(L->i32, p3, 3, 0), args, 3));
    return;
  }
  LLVMTypeRef p4[4] = {L->i32, L->pptr, L->i32, L->pptr};
  LLVMValueRef args[4] = {argc, argv, LLVMConstInt(L->i32, (uint64_t)n, 0),
                          LLVMConstBitCast(entries, L->pptr)};
  LLVMBuildRet(L->b, llvm_call(L, "mc_main_entries",
                               LLVMFunctionType(L->i32, p4, 4, 0), args, 4));
}

LLVMModuleRef cg_llvm_build(const Module *m, const CgOptions *o,
                            LLVMContextRef ctx, const char *main_name,
                            Diag *d) {
  Emitter e;
  cg_emitter_init(&e, m, o, d);
  LlvmEmit L;
  memset(&L, 0, sizeof L);
  L.e = &e;
  L.ctx = ctx;
  L.mod = LLVMModuleCreateWithNameInContext(e.name, ctx);
  if (m->source_file)
    LLVMSetSourceFileName(L.mod, m->source_file, strlen(m->source_file));
  L.b = LLVMCreateBuilderInContext(ctx);
  L.i1 = LLVMInt1TypeInContext(ctx);
  L.i8 = LLVMInt8TypeInContext(ctx);
  L.i32 = LLVMInt32TypeInContext(ctx);
  L.i64 = LLVMInt64TypeInContext(ctx);
  L.f32 = LLVMFloatTypeInContext(ctx);
  L.f64 = LLVMDoubleTypeInContext(ctx);
  L.vd = LLVMVoidTypeInContext(ctx);
  L.ptr = LLVMPointerType(L.i8, 0);
  L.pptr = LLVMPointerType(L.ptr, 0);
  bool ok = m->functions != NULL;
  if (!ok)
    diag_error(d, loc_none(), "model '%s' has no function to emit", e.name);
  ok = ok && llvm_emit_model_tables(&L);
  int n = 0;
  LLVMValueRef *infos = arena_alloc(&e.arena, sizeof(LLVMValueRef) * 65);
  for (const Function *f = m->functions; ok && f; f = f->next) {
    FnEmit fe;
    ok = emit_function(&L, f, &fe);
    if (ok && !f->prepares && n < 64)
      infos[n++] =
          LLVMGetNamedGlobal(L.mod, cg_strf(&e.arena, "%s_info", fe.prefix));
  }
  LLVMValueRef entries = ok ? emit_entries(&L, infos, n) : NULL;
  if (ok && main_name)
    emit_main(&L, main_name, infos[0], entries, n);
  ok = ok && cg_llvm_link_vmath(L.mod, d);
  LLVMDisposeBuilder(L.b);
  cg_emitter_free(&e);
  if (!ok) {
    LLVMDisposeModule(L.mod);
    return NULL;
  }
  return L.mod;
}
