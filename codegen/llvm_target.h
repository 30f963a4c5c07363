/* The LLVM backend's foundation: target machines, LLVM's optimization
 * pipeline and output files, through LLVM 14's C API (the shared
 * libLLVM-14.so; target mc_llvm). The IR-to-LLVM translation of a Module
 * builds on this; nothing here knows modelc's IR.
 *
 *   llvm_target.c  targets and target machines, verify, optimize, write
 *                  .ll and .o files
 *   llvm_jit.c     the in-process JIT (llvm_jit.h)
 *   llvm_vmath.c   the runtime's scalar math (mc_vmath.h, mc_ops.h) as
 *                  bitcode built with modelc, linked into modules
 *                  (llvm_vmath.h)
 *
 * Invariants: floating point stays IEEE: no fast-math flag is ever set,
 * the pipeline is LLVM's default<On>, which never reassociates or folds
 * across a rounding without such flags. Bad input (an unknown triple, CPU
 * or feature, a module that does not verify, a file that cannot be
 * written) is reported into a Diag, never a crash or exit. Files are
 * written whole or not at all (cg_write_file). Every LLVM object created
 * here is disposed by its owner's free function.
 */
#ifndef MC_LLVM_TARGET_H
#define MC_LLVM_TARGET_H

#include <llvm-c/Core.h>
#include <llvm-c/TargetMachine.h>
#include <stdbool.h>

#include "diag.h"

/* Registers LLVM's target for this machine (all_targets: also every other
 * target libLLVM-14 provides: AArch64, ARM, RISC-V, ...) with its code
 * generator and assembly printer. Once per process, thread-safe;
 * cg_llvm_target_create and cg_llvm_jit_create call it themselves. */
void cg_llvm_initialize(bool all_targets);

typedef struct CgLlvmTargetOptions {
  /* "aarch64-linux-gnu", "x86_64-pc-linux-gnu", ...; NULL: this machine's */
  const char *triple;
  /* An LLVM CPU name ("skylake-avx512", "neoverse-n1"), or "generic": the
   * target's generic CPU; "native": this machine's; NULL: this machine's
   * when the triple is NULL, else "generic" */
  const char *cpu;
  /* "+avx2,-fma"-style; NULL: this machine's features when the CPU is
   * this machine's, else none beyond the CPU's */
  const char *features;
  int opt_level; /* 0-3: the code generator's level and default<On> */
} CgLlvmTargetOptions;

/* A target machine and what it was made from; read-only for users. The
 * relocation model is PIC (objects go into executables and shared
 * libraries), the code model the target's default. */
typedef struct CgLlvmTarget {
  LLVMTargetMachineRef machine;
  char *triple;   /* normalized: "aarch64-unknown-linux-gnu" */
  char *cpu;      /* as given to LLVM: "" for the generic CPU */
  char *features; /* as given to LLVM */
  int opt_level;
} CgLlvmTarget;

/* A target machine for o (NULL: this machine at -O2). Returns NULL after
 * reporting into d an unknown triple, CPU or feature: LLVM 14 only warns
 * about those on stderr and carries on, so the warning is caught while
 * the machine is made (see llvm_target.c) and becomes the error.
 * Not every bad combination is caught here: LLVM ends the process on a few
 * (report_fatal_error, e.g. a 32-bit RISC-V CPU for riscv64, when code is
 * generated), and its C API has no way to check for them. */
CgLlvmTarget *cg_llvm_target_create(const CgLlvmTargetOptions *o, Diag *d);
void cg_llvm_target_free(CgLlvmTarget *t);

/* Sets m's target triple and data layout to t's. */
void cg_llvm_target_setup_module(const CgLlvmTarget *t, LLVMModuleRef m);

/* LLVMVerifyModule: returns false after reporting LLVM's message into d. */
bool cg_llvm_verify(LLVMModuleRef m, Diag *d);

/* Verifies m, sets it up for t and runs LLVM's new-pass-manager pipeline
 * default<O{t->opt_level}> with t's machine, so the vectorizers use the
 * target's vector width (loop and SLP vectorization from -O2 on, as clang
 * does). Returns false after reporting into d. */
bool cg_llvm_optimize(const CgLlvmTarget *t, LLVMModuleRef m, Diag *d);

/* m as textual IR (a .ll file). Returns false after reporting into d. */
bool cg_llvm_write_ir(LLVMModuleRef m, const char *path, Diag *d);

/* Verifies m, sets it up for t and writes it as an object file for t.
 * Code generation works on a copy of m (LLVM's rewrites the IR it
 * compiles). Returns false after reporting into d. */
bool cg_llvm_write_object(const CgLlvmTarget *t, LLVMModuleRef m,
                          const char *path, Diag *d);

#endif
