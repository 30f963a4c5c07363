/* The in-process JIT: LLVM modules compiled into this process with ORC's
 * LLJIT (LLVM 14's C API; target mc_llvm), for this machine's CPU and
 * features, and run as ordinary C functions.
 *
 * JIT'd code calls the runtime (mc_gemm_f32, mc_fail, mc_parallel_for, ...)
 * by name: undefined symbols of a module resolve to the process's own
 * symbols with dlsym. So the program must export them and contain them:
 * CMake's mc_link_runtime_for_jit(<target>) links it with -rdynamic and
 * all of mc_runtime (modelc and test_llvm are).
 *
 * Usage:
 *     CgLlvmJit *jit = cg_llvm_jit_create(2, &d);
 *     LLVMModuleRef m = LLVMModuleCreateWithNameInContext(
 *         "model", cg_llvm_jit_context(jit));
 *     ... build functions ...
 *     if (cg_llvm_jit_add_module(jit, m, &d)) {
 *       float (*f)(float) = (float (*)(float))cg_llvm_jit_lookup(jit, "f",
 *                                                                &d);
 *       ...
 *     }
 *     cg_llvm_jit_free(jit); // the JIT'd code goes with it
 */
#ifndef MC_LLVM_JIT_H
#define MC_LLVM_JIT_H

#include <llvm-c/Core.h>
#include <stdbool.h>
#include <stdint.h>

#include "diag.h"
#include "llvm_target.h"

typedef struct CgLlvmJit CgLlvmJit;

/* A JIT for this machine (LLVMOrcJITTargetMachineBuilderDetectHost: its
 * CPU and features, so AVX-512 where there is AVX-512) that optimizes each
 * module with default<O{opt_level}> (cg_llvm_optimize) before compiling
 * it. Returns NULL after reporting into d. */
CgLlvmJit *cg_llvm_jit_create(int opt_level, Diag *d);

/* The LLVM context the JIT's modules must be created in. */
LLVMContextRef cg_llvm_jit_context(CgLlvmJit *jit);

/* The host target the JIT's modules are optimized for. */
const CgLlvmTarget *cg_llvm_jit_target(CgLlvmJit *jit);

/* Verifies and optimizes m (created in cg_llvm_jit_context) and hands it
 * to the JIT, which compiles it on the first lookup of one of its symbols.
 * Takes ownership of m, also on failure. Returns false after reporting
 * into d (an invalid module, a symbol defined twice). */
bool cg_llvm_jit_add_module(CgLlvmJit *jit, LLVMModuleRef m, Diag *d);

/* The address of the function or global `name` (as in the module, without
 * the platform's prefix), compiling what it needs first. Returns 0 after
 * reporting into d when it is not defined or cannot be compiled or linked,
 * e.g. because it calls a function neither the JIT nor the process has. */
uintptr_t cg_llvm_jit_lookup(CgLlvmJit *jit, const char *name, Diag *d);

/* Frees the JIT, its modules and all code compiled by it. */
void cg_llvm_jit_free(CgLlvmJit *jit);

#endif
