/* The in-process JIT (see llvm_jit.h): an ORC LLJIT for the host whose
 * main JITDylib falls back to the process's symbols, one ThreadSafeContext
 * for all its modules, and a host CgLlvmTarget for the optimization
 * pipeline the modules go through before ORC compiles them (LLJIT itself
 * only generates code, at LLVM's default code generation level, which the
 * C API of LLVM 14 cannot change).
 *
 * ORC reports errors that happen while it compiles and links a module
 * (e.g. an undefined symbol) to its ExecutionSession, not to the lookup
 * that triggered the work, which only says "Failed to materialize
 * symbols"; they are kept here and added to that lookup's message.
 */
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llvm_jit.h"

struct CgLlvmJit {
  LLVMOrcLLJITRef lljit;
  LLVMOrcThreadSafeContextRef context;
  CgLlvmTarget *target;
  char *session_errors; /* "; "-separated, since the last lookup; or NULL */
};

/* Reports and consumes err; returns whether there was none. */
static bool check_error(LLVMErrorRef err, const char *what, Diag *d) {
  if (!err)
    return true;
  char *message = LLVMGetErrorMessage(err);
  diag_error(d, loc_none(), "%s: %s", what, message);
  LLVMDisposeErrorMessage(message);
  return false;
}

/* The ExecutionSession's error reporter: appends to jit->session_errors. */
static void keep_session_error(void *ctx, LLVMErrorRef err) {
  CgLlvmJit *jit = ctx;
  char *message = LLVMGetErrorMessage(err);
  size_t old = jit->session_errors ? strlen(jit->session_errors) : 0;
  char *all = realloc(jit->session_errors, old + strlen(message) + 3);
  if (all) {
    snprintf(all + old, strlen(message) + 3, "%s%s", old ? "; " : "", message);
    jit->session_errors = all;
  }
  LLVMDisposeErrorMessage(message);
}

/* The LLJIT for this machine, or NULL after reporting. */
static LLVMOrcLLJITRef create_lljit(Diag *d) {
  LLVMOrcJITTargetMachineBuilderRef machine_builder = NULL;
  if (!check_error(LLVMOrcJITTargetMachineBuilderDetectHost(&machine_builder),
                   "cannot detect the host for the JIT", d))
    return NULL;
  LLVMOrcLLJITBuilderRef builder = LLVMOrcCreateLLJITBuilder();
  /* both take ownership of their argument */
  LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(builder, machine_builder);
  LLVMOrcLLJITRef lljit = NULL;
  if (!check_error(LLVMOrcCreateLLJIT(&lljit, builder), "cannot create the JIT",
                   d))
    return NULL;
  /* Symbols no module defines: the process's, by dlsym (which needs them
   * exported: -rdynamic). Prefix: "_" on Mach-O, none on ELF. */
  LLVMOrcDefinitionGeneratorRef process = NULL;
  if (!check_error(
          LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(
              &process, LLVMOrcLLJITGetGlobalPrefix(lljit), NULL, NULL),
          "cannot make the process's symbols visible to the JIT", d)) {
    LLVMConsumeError(LLVMOrcDisposeLLJIT(lljit));
    return NULL;
  }
  LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(lljit), process);
  return lljit;
}

CgLlvmJit *cg_llvm_jit_create(int opt_level, Diag *d) {
  CgLlvmTargetOptions host = {NULL, NULL, NULL, opt_level};
  CgLlvmTarget *target = cg_llvm_target_create(&host, d);
  if (!target)
    return NULL;
  CgLlvmJit *jit = calloc(1, sizeof *jit);
  if (!jit) {
    diag_error(d, loc_none(), "out of memory");
    cg_llvm_target_free(target);
    return NULL;
  }
  jit->target = target;
  jit->lljit = create_lljit(d);
  if (!jit->lljit) {
    cg_llvm_jit_free(jit);
    return NULL;
  }
  LLVMOrcExecutionSessionSetErrorReporter(
      LLVMOrcLLJITGetExecutionSession(jit->lljit), keep_session_error, jit);
  jit->context = LLVMOrcCreateNewThreadSafeContext();
  return jit;
}

LLVMContextRef cg_llvm_jit_context(CgLlvmJit *jit) {
  return LLVMOrcThreadSafeContextGetContext(jit->context);
}

const CgLlvmTarget *cg_llvm_jit_target(CgLlvmJit *jit) {
  return jit->target;
}

bool cg_llvm_jit_add_module(CgLlvmJit *jit, LLVMModuleRef m, Diag *d) {
  if (LLVMGetModuleContext(m) != cg_llvm_jit_context(jit)) {
    diag_error(d, loc_none(), "LLVM module '%s' is not in the JIT's context",
               LLVMGetModuleIdentifier(m, &(size_t){0}));
    LLVMDisposeModule(m);
    return false;
  }
  if (!cg_llvm_optimize(jit->target, m, d)) {
    LLVMDisposeModule(m);
    return false;
  }
  /* the ThreadSafeModule owns m, the LLJIT the ThreadSafeModule */
  LLVMOrcThreadSafeModuleRef module =
      LLVMOrcCreateNewThreadSafeModule(m, jit->context);
  return check_error(
      LLVMOrcLLJITAddLLVMIRModule(
          jit->lljit, LLVMOrcLLJITGetMainJITDylib(jit->lljit), module),
      "cannot add the module to the JIT", d);
}

uintptr_t cg_llvm_jit_lookup(CgLlvmJit *jit, const char *name, Diag *d) {
  LLVMOrcExecutorAddress address = 0;
  LLVMErrorRef err = LLVMOrcLLJITLookup(jit->lljit, &address, name);
  if (err) {
    char *message = LLVMGetErrorMessage(err);
    diag_error(d, loc_none(), "JIT: cannot find '%s': %s%s%s", name, message,
               jit->session_errors ? ": " : "",
               jit->session_errors ? jit->session_errors : "");
    LLVMDisposeErrorMessage(message);
    address = 0;
  }
  free(jit->session_errors);
  jit->session_errors = NULL;
  return (uintptr_t)address;
}

void cg_llvm_jit_free(CgLlvmJit *jit) {
  if (!jit)
    return;
  /* An error disposing the JIT (a resource that could not be released)
   * leaves nothing to act on. */
  if (jit->lljit)
    LLVMConsumeError(LLVMOrcDisposeLLJIT(jit->lljit));
  /* shared with the JIT's modules, which are gone now */
  if (jit->context)
    LLVMOrcDisposeThreadSafeContext(jit->context);
  cg_llvm_target_free(jit->target);
  free(jit->session_errors);
  free(jit);
}
