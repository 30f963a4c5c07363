/* The LLVM backend's model glue: the same tables as the C backend's
 * (c_api.c) as LLVM constants, which the runtime's mc_model.c reads, and
 * the small functions around them (<n>_open, <n>_close, each entry's
 * McRunFn, McModelInfo open/close/run). The struct types mirror
 * mc_runtime.h field by field with every pointer as i8*; llvm_abi_check
 * compares their sizes with C's. */
#include <inttypes.h>
#include <string.h>

#include "llvm_emit.h"
#include "llvm_emit_internal.h"
#include "mc_runtime.h"

/* ---- the struct types ------------------------------------------------------
 */

typedef enum GlueType {
  T_DIM_TERM,
  T_DIM,
  T_IO_SPEC,
  T_WEIGHT_SPEC,
  T_PREPARED_SPEC,
  T_MODEL_DESC,
  T_ENTRY,
  T_MODEL_INFO,
  T_UPDATE,
  T_COUNT
} GlueType;

static LLVMTypeRef glue_type(LlvmEmit *L, GlueType t) {
  static const char *const names[T_COUNT] = {
      "McDimTerm",   "McDim",   "McIOSpec",    "McWeightSpec", "McPreparedSpec",
      "McModelDesc", "McEntry", "McModelInfo", "McUpdate"};
  LLVMTypeRef ty = LLVMGetTypeByName2(L->ctx, names[t]);
  if (ty && LLVMIsOpaqueStruct(ty) == 0)
    return ty;
  LLVMTypeRef p = L->ptr, i32 = L->i32, i64 = L->i64;
  LLVMTypeRef f[16];
  unsigned n = 0;
  switch (t) {
  case T_DIM_TERM: /* coef, nfactors, sym[3] */
    f[n++] = i64, f[n++] = i32, f[n++] = LLVMArrayType(i32, 3);
    break;
  case T_DIM: /* text, nterms, terms[4] */
    f[n++] = p, f[n++] = i32,
    f[n++] = LLVMArrayType(glue_type(L, T_DIM_TERM), 4);
    break;
  case T_IO_SPEC: /* name, dtype, rank, optional, dims */
    f[n++] = p, f[n++] = i32, f[n++] = i32, f[n++] = i32, f[n++] = p;
    break;
  case T_WEIGHT_SPEC: /* name, rank, shape[8], store, transposed, packed */
    f[n++] = p, f[n++] = i32, f[n++] = LLVMArrayType(i64, MC_MAX_RANK),
    f[n++] = i32, f[n++] = i32, f[n++] = i32;
    break;
  case T_PREPARED_SPEC: /* weight, floats, packed, rows, cols, transposed */
    f[n++] = i32, f[n++] = i64, f[n++] = i32, f[n++] = i64, f[n++] = i64,
    f[n++] = i32;
    break;
  case T_MODEL_DESC: /* name, default_weights, nsymbols, symbols, nweights,
                        weights, nprepared, prepared, prepare */
    f[n++] = p, f[n++] = p, f[n++] = i32, f[n++] = p, f[n++] = i32, f[n++] = p,
    f[n++] = i32, f[n++] = p, f[n++] = p;
    break;
  case T_ENTRY: /* model, ninputs, inputs, noutputs, outputs, nweights,
                   weights, which, prepare, syms, run, nupdates, updates,
                   step_input */
    f[n++] = p, f[n++] = i32, f[n++] = p, f[n++] = i32, f[n++] = p,
    f[n++] = i32, f[n++] = p, f[n++] = p, f[n++] = i32, f[n++] = i64,
    f[n++] = p, f[n++] = i32, f[n++] = p, f[n++] = i32;
    break;
  case T_MODEL_INFO: /* name, default_weights, ninputs, inputs, noutputs,
                        outputs, nweights, weights, open, close, run, entry,
                        train */
    f[n++] = p, f[n++] = p, f[n++] = i32, f[n++] = p, f[n++] = i32, f[n++] = p,
    f[n++] = i32, f[n++] = p, f[n++] = p, f[n++] = p, f[n++] = p, f[n++] = p,
    f[n++] = p;
    break;
  case T_UPDATE: /* output, weight */
    f[n++] = i32, f[n++] = i32;
    break;
  case T_COUNT:
    break;
  }
  ty = LLVMStructCreateNamed(L->ctx, names[t]);
  LLVMStructSetBody(ty, f, n, 0);
  return ty;
}

bool cg_llvm_abi_check(LLVMContextRef ctx, LLVMTargetDataRef td, char *msg,
                       size_t len) {
  LlvmEmit L;
  memset(&L, 0, sizeof L);
  L.ctx = ctx;
  L.i32 = LLVMInt32TypeInContext(ctx);
  L.i64 = LLVMInt64TypeInContext(ctx);
  L.ptr = LLVMPointerType(LLVMInt8TypeInContext(ctx), 0);
  static const size_t c_sizes[T_COUNT] = {
      sizeof(McDimTerm),    sizeof(McDim),          sizeof(McIOSpec),
      sizeof(McWeightSpec), sizeof(McPreparedSpec), sizeof(McModelDesc),
      sizeof(McEntry),      sizeof(McModelInfo),    sizeof(McUpdate)};
  for (int t = 0; t < T_COUNT; t++) {
    unsigned long long got = LLVMABISizeOfType(td, glue_type(&L, (GlueType)t));
    if (got != c_sizes[t]) {
      snprintf(msg, len, "struct %d: %llu bytes in LLVM, %zu in C", t, got,
               c_sizes[t]);
      return false;
    }
  }
  return true;
}

/* ---- constants -------------------------------------------------------------
 */

static LLVMValueRef cint(LlvmEmit *L, int64_t v) {
  return LLVMConstInt(L->i32, (uint64_t)v, 1);
}

static LLVMValueRef cptr(LlvmEmit *L, LLVMValueRef g) {
  return g ? LLVMConstBitCast(g, L->ptr) : LLVMConstNull(L->ptr);
}

/* A private constant global holding init, or NULL for no elements. */
static LLVMValueRef global(LlvmEmit *L, const char *name, LLVMValueRef init,
                           bool private_) {
  LLVMValueRef g = LLVMAddGlobal(L->mod, LLVMTypeOf(init), name);
  LLVMSetInitializer(g, init);
  LLVMSetGlobalConstant(g, 1);
  if (private_)
    LLVMSetLinkage(g, LLVMInternalLinkage);
  return g;
}

static LLVMValueRef array_global(LlvmEmit *L, const char *name, LLVMTypeRef t,
                                 LLVMValueRef *vals, int n) {
  if (n == 0)
    return NULL;
  return global(L, name, LLVMConstArray(t, vals, (unsigned)n), true);
}

static LLVMValueRef dim_value(LlvmEmit *L, Dim d) {
  char text[128];
  dim_print(text, sizeof text, d, L->e->m);
  LLVMValueRef terms[4];
  for (int t = 0; t < 4; t++) {
    const DimTerm *term = t < d.nterms ? &d.terms[t] : NULL;
    LLVMValueRef syms[3];
    for (int f = 0; f < 3; f++)
      syms[f] = cint(L, term && f < term->nfactors ? term->sym[f] : 0);
    LLVMValueRef fields[3] = {
        LLVMConstInt(L->i64, term ? (uint64_t)term->coef : 0, 1),
        cint(L, term ? term->nfactors : 0), LLVMConstArray(L->i32, syms, 3)};
    terms[t] = LLVMConstNamedStruct(glue_type(L, T_DIM_TERM), fields, 3);
  }
  LLVMValueRef fields[3] = {llvm_cstring(L, text), cint(L, d.nterms),
                            LLVMConstArray(glue_type(L, T_DIM_TERM), terms, 4)};
  return LLVMConstNamedStruct(glue_type(L, T_DIM), fields, 3);
}

static LLVMValueRef weight_spec(LlvmEmit *L, int i) {
  const Param *p = &L->e->m->params[i];
  LLVMValueRef shape[MC_MAX_RANK];
  for (int j = 0; j < MC_MAX_RANK; j++) {
    int64_t c = 0;
    if (j < p->type.shape.rank)
      dim_is_const(p->type.shape.dims[j], &c);
    shape[j] = LLVMConstInt(L->i64, (uint64_t)c, 1);
  }
  int store = L->e->wstore[i] == DT_F16    ? MC_F16
              : L->e->wstore[i] == DT_BF16 ? MC_BF16
                                           : MC_F32;
  LLVMValueRef f[6] = {llvm_cstring(L, p->name),
                       cint(L, p->type.shape.rank),
                       LLVMConstArray(L->i64, shape, MC_MAX_RANK),
                       cint(L, store),
                       cint(L, L->e->wtrans[i]),
                       cint(L, L->e->wpacked[i])};
  return LLVMConstNamedStruct(glue_type(L, T_WEIGHT_SPEC), f, 6);
}

static int mc_dtype(DType t) {
  switch (t) {
  case DT_F32:
    return MC_F32;
  case DT_F64:
    return MC_F64;
  case DT_I32:
    return MC_I32;
  case DT_I64:
    return MC_I64;
  case DT_BOOL:
    return MC_BOOL;
  case DT_F16:
    return MC_F16;
  case DT_BF16:
    return MC_BF16;
  case DT_COUNT:
    break;
  }
  return MC_DTYPE_COUNT;
}

LLVMTypeRef llvm_run_fn_type(LlvmEmit *L) {
  LLVMTypeRef p[5] = {L->ptr, LLVMPointerType(L->i64, 0), L->pptr, L->pptr,
                      L->ptr};
  return LLVMFunctionType(L->i32, p, 5, 0);
}

/* ---- the model -------------------------------------------------------------
 */

/* i8 *<n>_open(const char *path, McError *err), <n>_close(m) */
static void emit_open_close(LlvmEmit *L, LLVMValueRef desc) {
  const char *n = L->e->name;
  LLVMTypeRef p2[2] = {L->ptr, L->ptr}, p3[3] = {L->ptr, L->ptr, L->ptr};
  LLVMValueRef open =
      LLVMAddFunction(L->mod, cg_strf(&L->e->arena, "%s_open", n),
                      LLVMFunctionType(L->ptr, p2, 2, 0));
  LLVMPositionBuilderAtEnd(
      L->b, LLVMAppendBasicBlockInContext(L->ctx, open, "entry"));
  LLVMValueRef args[3] = {cptr(L, desc), LLVMGetParam(open, 0),
                          LLVMGetParam(open, 1)};
  LLVMBuildRet(L->b, llvm_call(L, "mc_model_open",
                               LLVMFunctionType(L->ptr, p3, 3, 0), args, 3));
  LLVMTypeRef close_t = LLVMFunctionType(L->vd, &L->ptr, 1, 0);
  LLVMValueRef close =
      LLVMAddFunction(L->mod, cg_strf(&L->e->arena, "%s_close", n), close_t);
  LLVMPositionBuilderAtEnd(
      L->b, LLVMAppendBasicBlockInContext(L->ctx, close, "entry"));
  LLVMValueRef m = LLVMGetParam(close, 0);
  llvm_call(L, "mc_model_close", close_t, &m, 1);
  LLVMBuildRetVoid(L->b);
}

bool llvm_emit_model_tables(LlvmEmit *L) {
  Emitter *e = L->e;
  const Module *m = e->m;
  Arena *a = &e->arena;
  const char *n = e->name;
  int np = ir_file_params(m), nprep = m->nparams - np;
  bool ok = true;
  LLVMValueRef *vals = arena_alloc(
      a, sizeof(LLVMValueRef) * (size_t)(m->nparams + m->nsymbols + 1));
  for (int s = 0; s < m->nsymbols; s++)
    vals[s] = llvm_cstring(L, m->symbols[s]);
  LLVMValueRef symbols =
      array_global(L, cg_strf(a, "%s_symbols", n), L->ptr, vals, m->nsymbols);
  for (int i = 0; i < np; i++) {
    const Param *p = &m->params[i];
    if (p->type.dtype != DT_F32) {
      diag_error(e->d, p->loc, "weight '%s' must be f32 in the model, not %s",
                 p->name, dtype_name(p->type.dtype));
      ok = false;
    }
    for (int j = 0; j < p->type.shape.rank; j++)
      if (!dim_is_const(p->type.shape.dims[j], NULL)) {
        diag_error(e->d, p->loc, "weight '%s' has a symbolic shape", p->name);
        ok = false;
      }
    vals[i] = weight_spec(L, i);
  }
  LLVMValueRef weights = array_global(L, cg_strf(a, "%s_weights", n),
                                      glue_type(L, T_WEIGHT_SPEC), vals, np);
  LLVMValueRef prepared = NULL, prepare = NULL;
  if (nprep > 0) {
    const Function *prep = ir_prepare_function(m);
    for (int o = 0; o < prep->noutputs; o++) {
      CgPrepared p = cg_prepared(e, o);
      LLVMValueRef f[6] = {cint(L, p.weight),
                           LLVMConstInt(L->i64, (uint64_t)p.floats, 1),
                           cint(L, p.packed),
                           LLVMConstInt(L->i64, (uint64_t)p.rows, 1),
                           LLVMConstInt(L->i64, (uint64_t)p.cols, 1),
                           cint(L, p.transposed)};
      vals[o] = LLVMConstNamedStruct(glue_type(L, T_PREPARED_SPEC), f, 6);
    }
    prepared =
        array_global(L, cg_strf(a, "%s_prepared", n),
                     glue_type(L, T_PREPARED_SPEC), vals, prep->noutputs);
    prepare =
        llvm_function(L, cg_strf(a, "%s_prepare_v", n), llvm_run_fn_type(L));
  }
  const char *dw = e->o->default_weights;
  LLVMValueRef f[9] = {
      llvm_cstring(L, n),   dw ? llvm_cstring(L, dw) : LLVMConstNull(L->ptr),
      cint(L, m->nsymbols), cptr(L, symbols),
      cint(L, np),          cptr(L, weights),
      cint(L, nprep),       cptr(L, prepared),
      cptr(L, prepare)};
  LLVMValueRef desc =
      global(L, cg_strf(a, "%s_desc", n),
             LLVMConstNamedStruct(glue_type(L, T_MODEL_DESC), f, 9), true);
  emit_open_close(L, desc);
  return ok;
}

/* ---- an entry --------------------------------------------------------------
 */

/* <run>_v: the typed run function as a McRunFn. */
static LLVMValueRef emit_run_v(LlvmFn *F) {
  LlvmEmit *L = F->L;
  FnEmit *fe = F->fe;
  const Function *f = fe->f;
  LLVMValueRef fn = llvm_function(L, fe->run_v, llvm_run_fn_type(L));
  LLVMSetLinkage(fn, LLVMInternalLinkage);
  LLVMPositionBuilderAtEnd(L->b,
                           LLVMAppendBasicBlockInContext(L->ctx, fn, "entry"));
  unsigned np = LLVMCountParams(F->fn);
  LLVMValueRef *args = arena_alloc(&L->e->arena, sizeof(LLVMValueRef) * np);
  unsigned k = 0;
  args[k++] = LLVMGetParam(fn, 0);
  for (int s = 0, j = 0; s < L->e->m->nsymbols; s++)
    if (fe->syms & (UINT64_C(1) << s)) {
      LLVMValueRef idx = LLVMConstInt(L->i64, (uint64_t)j++, 0);
      args[k++] = LLVMBuildLoad2(
          L->b, L->i64,
          LLVMBuildGEP2(L->b, L->i64, LLVMGetParam(fn, 1), &idx, 1, ""), "");
    }
  for (int i = 0, nin = 0, nout = 0; i < f->ninputs + f->noutputs; i++) {
    bool in = i < f->ninputs;
    if (in ? !cg_input_in_abi(fe, i) : !cg_output_in_abi(fe, i - f->ninputs))
      continue;
    LLVMValueRef idx = LLVMConstInt(L->i64, (uint64_t)(in ? nin++ : nout++), 0);
    args[k++] = LLVMBuildLoad2(
        L->b, L->ptr,
        LLVMBuildGEP2(L->b, L->ptr, LLVMGetParam(fn, in ? 2 : 3), &idx, 1, ""),
        "");
  }
  args[k++] = LLVMGetParam(fn, 4);
  LLVMBuildRet(L->b, LLVMBuildCall2(L->b, LLVMGlobalGetValueType(F->fn), F->fn,
                                    args, k, ""));
  return fn;
}

/* The McIOSpec table of an entry's inputs or outputs. */
static LLVMValueRef io_specs(LlvmFn *F, const char *what, int n,
                             const char *const *names, const Value *const *vals,
                             const bool *optional) {
  LlvmEmit *L = F->L;
  Arena *a = &L->e->arena;
  if (n == 0)
    return NULL;
  LLVMValueRef *specs = arena_alloc(a, sizeof(LLVMValueRef) * (size_t)n);
  for (int i = 0; i < n; i++) {
    const Shape *s = &vals[i]->type.shape;
    LLVMValueRef dims[MAX_RANK];
    for (int j = 0; j < s->rank; j++)
      dims[j] = dim_value(L, s->dims[j]);
    LLVMValueRef g =
        array_global(L, cg_strf(a, "%s_%s_dims", F->fe->prefix, what),
                     glue_type(L, T_DIM), dims, s->rank);
    LLVMValueRef f[5] = {
        llvm_cstring(L, names[i]), cint(L, mc_dtype(vals[i]->type.dtype)),
        cint(L, s->rank), cint(L, optional && optional[i]), cptr(L, g)};
    specs[i] = LLVMConstNamedStruct(glue_type(L, T_IO_SPEC), f, 5);
  }
  return array_global(L, cg_strf(a, "%s_%s", F->fe->prefix, what),
                      glue_type(L, T_IO_SPEC), specs, n);
}

/* A function `name` of type ty forwarding its parameters to `callee`
 * with `first` in front. */
static void forward(LlvmEmit *L, const char *name, LLVMTypeRef ty,
                    const char *callee, LLVMValueRef first) {
  LLVMValueRef fn = LLVMAddFunction(L->mod, name, ty);
  LLVMSetLinkage(fn, LLVMInternalLinkage);
  LLVMPositionBuilderAtEnd(L->b,
                           LLVMAppendBasicBlockInContext(L->ctx, fn, "entry"));
  unsigned n = LLVMCountParams(fn);
  LLVMValueRef args[8];
  LLVMTypeRef types[8];
  args[0] = first;
  types[0] = L->ptr;
  for (unsigned i = 0; i < n; i++) {
    args[i + 1] = LLVMGetParam(fn, i);
    types[i + 1] = LLVMTypeOf(args[i + 1]);
  }
  LLVMTypeRef ret = LLVMGetReturnType(ty);
  LLVMValueRef r = llvm_call(L, callee, LLVMFunctionType(ret, types, n + 1, 0),
                             args, (int)n + 1);
  if (LLVMGetTypeKind(ret) == LLVMVoidTypeKind)
    LLVMBuildRetVoid(L->b);
  else
    LLVMBuildRet(L->b, r);
}

/* The runtime's mc_train, declared: a training entry's McModelInfo.train. */
static LLVMValueRef train_fn(LlvmEmit *L) {
  LLVMValueRef fn = LLVMGetNamedFunction(L->mod, "mc_train");
  LLVMTypeRef params[3] = {L->i32, L->pptr, L->ptr};
  return fn ? fn
            : LLVMAddFunction(L->mod, "mc_train",
                              LLVMFunctionType(L->i32, params, 3, 0));
}

LLVMValueRef llvm_emit_entry_tables(LlvmFn *F) {
  LlvmEmit *L = F->L;
  FnEmit *fe = F->fe;
  Emitter *e = L->e;
  const Module *m = e->m;
  const Function *f = fe->f;
  Arena *a = &e->arena;
  LLVMValueRef run_v = emit_run_v(F);
  if (fe->internal)
    return NULL;
  CgEntryIO io;
  cg_entry_io(fe, &io);
  int nin = io.nin, nout = io.nout, step = io.step;
  LLVMValueRef inputs =
      io_specs(F, "inputs", nin, io.in_name, io.in_value, io.optional);
  LLVMValueRef outputs =
      io_specs(F, "outputs", nout, io.out_name, io.out_value, NULL);
  /* the weights the entry reads, as the C backend's tables list them */
  int np = ir_file_params(m);
  bool single = fe->prefix == e->name, prepare;
  int *list = arena_alloc(a, sizeof(int) * ((size_t)np + 1));
  int k = cg_entry_weights(fe, list, &prepare);
  LLVMValueRef *specs = arena_alloc(a, sizeof(LLVMValueRef) * ((size_t)k + 1));
  LLVMValueRef *which = arena_alloc(a, sizeof(LLVMValueRef) * ((size_t)k + 1));
  for (int i = 0; i < k; i++) {
    specs[i] = weight_spec(L, list[i]);
    which[i] = cint(L, list[i]);
  }
  LLVMValueRef wtable =
      k == 0   ? NULL
      : single ? LLVMGetNamedGlobal(L->mod, cg_strf(a, "%s_weights", e->name))
               : array_global(L, cg_strf(a, "%s_weights", fe->prefix),
                              glue_type(L, T_WEIGHT_SPEC), specs, k);
  LLVMValueRef wwhich =
      single || k == 0 ? NULL
                       : array_global(L, cg_strf(a, "%s_which", fe->prefix),
                                      L->i32, which, k);
  LLVMValueRef desc =
      LLVMGetNamedGlobal(L->mod, cg_strf(a, "%s_desc", e->name));
  /* a training entry's updates, as c_api.c's <p>_updates */
  LLVMValueRef *ups =
      arena_alloc(a, sizeof(LLVMValueRef) * ((size_t)f->noutputs + 1));
  int nup = 0;
  for (int i = 0, o = 0; i < f->noutputs; i++) {
    if (f->outputs[i].updates_param >= 0) {
      LLVMValueRef u[2] = {cint(L, o), cint(L, f->outputs[i].updates_param)};
      ups[nup++] = LLVMConstNamedStruct(glue_type(L, T_UPDATE), u, 2);
    }
    o += cg_output_in_abi(fe, i);
  }
  LLVMValueRef updates = array_global(L, cg_strf(a, "%s_updates", fe->prefix),
                                      glue_type(L, T_UPDATE), ups, nup);
  LLVMValueRef ef[14] = {cptr(L, desc),    cint(L, nin),
                         cptr(L, inputs),  cint(L, nout),
                         cptr(L, outputs), cint(L, k),
                         cptr(L, wtable),  cptr(L, wwhich),
                         cint(L, prepare), LLVMConstInt(L->i64, fe->syms, 0),
                         cptr(L, run_v),   cint(L, nup),
                         cptr(L, updates), cint(L, step)};
  LLVMValueRef entry =
      global(L, cg_strf(a, "%s_entry", fe->prefix),
             LLVMConstNamedStruct(glue_type(L, T_ENTRY), ef, 14), true);
  LLVMTypeRef p3[3] = {L->ptr, L->pptr, L->ptr};
  const char *open = cg_strf(a, "%s_info_open", fe->prefix);
  forward(L, open, LLVMFunctionType(L->i32, p3, 3, 0), "mc_entry_open",
          cptr(L, entry));
  LLVMTypeRef p4[4] = {L->ptr, L->ptr, L->ptr, L->ptr};
  const char *run = cg_strf(a, "%s_info_run", fe->prefix);
  forward(L, run, LLVMFunctionType(L->i32, p4, 4, 0), "mc_entry_run",
          cptr(L, entry));
  LLVMValueRef close =
      LLVMGetNamedFunction(L->mod, cg_strf(a, "%s_close", e->name));
  const char *dw = e->o->default_weights;
  LLVMValueRef inf[13] = {
      llvm_cstring(L, single ? (m->name ? m->name : e->name) : f->name),
      dw ? llvm_cstring(L, dw) : LLVMConstNull(L->ptr),
      cint(L, nin),
      cptr(L, inputs),
      cint(L, nout),
      cptr(L, outputs),
      cint(L, k),
      cptr(L, wtable),
      cptr(L, LLVMGetNamedFunction(L->mod, open)),
      cptr(L, close),
      cptr(L, LLVMGetNamedFunction(L->mod, run)),
      cptr(L, entry),
      cptr(L, nup ? train_fn(L) : NULL)};
  return global(L, cg_strf(a, "%s_info", fe->prefix),
                LLVMConstNamedStruct(glue_type(L, T_MODEL_INFO), inf, 13),
                false);
}
