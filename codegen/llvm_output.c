/* The LLVM backend's outputs (llvm_emit.h): a module for a target written
 * as .ll or .o, a program (the object linked with the runtime, as the C
 * backend links its own), and the JIT run of modelc run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llvm_emit.h"
#include "llvm_jit.h"
#include "mc_runtime.h"

/* The module for t, optimized: NULL after reporting. */
static LLVMModuleRef build_for(const Module *m, const CgOptions *o,
                               const CgLlvmTarget *t, LLVMContextRef ctx,
                               const char *main_name, Diag *d) {
  LLVMModuleRef mod = cg_llvm_build(m, o, ctx, main_name, d);
  if (!mod)
    return NULL;
  LLVMTargetDataRef td = LLVMCreateTargetDataLayout(t->machine);
  unsigned pointer = LLVMPointerSize(td);
  LLVMDisposeTargetData(td);
  if (pointer != 8) {
    diag_error(d, loc_none(),
               "the LLVM backend needs a 64-bit target, not '%s'", t->triple);
    LLVMDisposeModule(mod);
    return NULL;
  }
  if (!cg_llvm_optimize(t, mod, d)) {
    LLVMDisposeModule(mod);
    return NULL;
  }
  return mod;
}

bool cg_emit_llvm(const Module *m, const char *path, bool object,
                  const CgOptions *o, const CgLlvmTargetOptions *to, Diag *d) {
  CgLlvmTargetOptions opts = {NULL, NULL, NULL, 2};
  if (to)
    opts = *to;
  opts.opt_level = o ? o->opt_level : 2;
  CgLlvmTarget *t = cg_llvm_target_create(&opts, d);
  if (!t)
    return false;
  LLVMContextRef ctx = LLVMContextCreate();
  LLVMModuleRef mod = build_for(m, o, t, ctx, NULL, d);
  bool ok = mod && (object ? cg_llvm_write_object(t, mod, path, d)
                           : cg_llvm_write_ir(mod, path, d));
  if (mod)
    LLVMDisposeModule(mod);
  LLVMContextDispose(ctx);
  cg_llvm_target_free(t);
  return ok;
}

typedef struct EmitObj {
  const Module *m;
  const CgOptions *o;
} EmitObj;

/* The program's object (with main) and the runtime's sources into dir. */
static bool emit_obj(const char *dir, void *ctx_, Diag *d) {
  const EmitObj *x = ctx_;
  const char *cpu = x->o && x->o->cpu ? x->o->cpu : "native";
  CgLlvmTargetOptions opts = {NULL, cpu, NULL, x->o ? x->o->opt_level : 2};
  CgLlvmTarget *t = cg_llvm_target_create(&opts, d);
  if (!t)
    return false;
  LLVMContextRef ctx = LLVMContextCreate();
  LLVMModuleRef mod = build_for(x->m, x->o, t, ctx, "main", d);
  char path[4200];
  snprintf(path, sizeof path, "%s/model.o", dir);
  bool ok =
      mod && cg_llvm_write_object(t, mod, path, d) && cg_write_runtime(dir, d);
  if (mod)
    LLVMDisposeModule(mod);
  LLVMContextDispose(ctx);
  cg_llvm_target_free(t);
  return ok;
}

bool cg_build_exe_llvm(const Module *m, const char *out_path,
                       const CgOptions *o, Diag *d) {
  EmitObj x = {m, o};
  return cg_build_exe_with(o, out_path, emit_obj, &x, d);
}

int cg_llvm_run(const Module *m, const CgOptions *o, int argc, char **argv,
                Diag *d) {
  CgLlvmJit *jit = cg_llvm_jit_create(o ? o->opt_level : 2, d);
  if (!jit)
    return -1;
  LLVMModuleRef mod =
      cg_llvm_build(m, o, cg_llvm_jit_context(jit), "modelc_run_main", d);
  int status = -1;
  if (mod && cg_llvm_jit_add_module(jit, mod, d)) {
    uintptr_t addr = cg_llvm_jit_lookup(jit, "modelc_run_main", d);
    if (addr) {
      int (*run)(int, char **) = (int (*)(int, char **))addr;
      status = run(argc, argv);
    }
  }
  cg_llvm_jit_free(jit);
  return status;
}

bool cg_llvm_prepare_weights(const Module *m, const CgOptions *o,
                             const char *weights, const char *out, Diag *d) {
  CgLlvmJit *jit = cg_llvm_jit_create(o ? o->opt_level : 2, d);
  if (!jit)
    return false;
  LLVMModuleRef mod = cg_llvm_build(m, o, cg_llvm_jit_context(jit), NULL, d);
  bool ok = false;
  char open_name[256] = "", close_name[256] = "";
  if (mod) {
    size_t len;
    const char *name = LLVMGetModuleIdentifier(mod, &len);
    snprintf(open_name, sizeof open_name, "%.*s_open", (int)len, name);
    snprintf(close_name, sizeof close_name, "%.*s_close", (int)len, name);
  }
  if (mod && cg_llvm_jit_add_module(jit, mod, d)) {
    uintptr_t open_addr = cg_llvm_jit_lookup(jit, open_name, d);
    uintptr_t close_addr =
        open_addr ? cg_llvm_jit_lookup(jit, close_name, d) : 0;
    if (open_addr && close_addr) {
      McModel *(*open_fn)(const char *, McError *) =
          (McModel * (*)(const char *, McError *)) open_addr;
      void (*close_fn)(McModel *) = (void (*)(McModel *))close_addr;
      McError e;
      McModel *model = open_fn(weights, &e);
      if (!model)
        diag_error(d, loc_none(), "--prepare-weights: %s", e.msg);
      else if (mc_model_save(model, out, &e) != MC_OK)
        diag_error(d, loc_none(), "--prepare-weights: %s", e.msg);
      else
        ok = true;
      if (model)
        close_fn(model);
    }
  }
  cg_llvm_jit_free(jit);
  return ok;
}
