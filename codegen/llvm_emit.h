/* The LLVM backend: a Module as an LLVM module through the LLVM-C API, with
 * the same entry points, C ABI and tables as the C backend's files (one
 * <model>.h serves both), written as .ll or an object file, linked into a
 * program, or compiled in memory and run (modelc run).
 *
 *   llvm_emit.c     the module: layouts, workspace sizes, run functions
 *   llvm_builders.c the small builders and the kernels' shared helpers
 *   llvm_kernels.c  a kernel per op: elementwise loops
 *   llvm_matmul.c   matmuls on the runtime's GEMM, with their epilogues
 *   llvm_attention.c attention: softmax(QK^T) V by blocks of rows
 *   llvm_movement.c iota, permute, slice, concat, gather
 *   llvm_reduce.c   reductions, argmax/argmin, softmax
 *   llvm_scan.c     scan: a loop over its steps
 *   llvm_decode.c   dynamic slices, take_along_axis, topk, cumsum, sampling
 *   llvm_glue.c     the tables the runtime's mc_model.c reads, open/close
 *   llvm_output.c   .ll, .o, programs and the JIT
 *
 * What it compiles today: elementwise ops, broadcasts and fused
 * elementwise chains (any dtype, on the runtime's threads), matmuls with
 * their epilogues (weights in the GEMM's panels or in 16 bits), iota,
 * permute, slice, concat and gather (checked indices and bounds),
 * reductions and softmax, with the run-time or constant memory plan,
 * optional inputs, with the C backend's fusion: GEMM epilogues, attention
 * (llvm_attention.c), reductions' prologues and epilogues on the runtime's
 * threads (llvm_reduce.c). Scans, with `until`, and the decoding ops
 * (llvm_decode.c). Every op of the IR compiles; the limits
 * that remain (more than 8 operands of an elementwise op, a scan carry
 * taking another carry's old value) are errors naming the line.
 */
#ifndef MC_LLVM_EMIT_H
#define MC_LLVM_EMIT_H

#include <llvm-c/Core.h>
#include <llvm-c/Target.h>

#include "cg.h"
#include "llvm_target.h"

/* m as an LLVM module in ctx, the runtime's vmath and op helpers linked in
 * (llvm_vmath.h); with main_name also a function of that name, int
 * (int argc, char **argv), that runs the model as the C backend's
 * <model>_main.c does. Neither verified nor optimized yet. NULL after
 * reporting into d. */
LLVMModuleRef cg_llvm_build(const Module *m, const CgOptions *o,
                            LLVMContextRef ctx, const char *main_name, Diag *d);

/* --emit llvm (object false: textual IR) or --emit obj: m for target t
 * (NULL: this machine; t's opt_level is o's), optimized with LLVM's
 * default<On> pipeline, written atomically to path. */
bool cg_emit_llvm(const Module *m, const char *path, bool object,
                  const CgOptions *o, const CgLlvmTargetOptions *t, Diag *d);

/* --emit exe --backend llvm: the object for this machine (o->cpu: native,
 * generic or an LLVM CPU name) linked with the runtime as cg_build_exe
 * links the C backend's. */
bool cg_build_exe_llvm(const Module *m, const char *out_path,
                       const CgOptions *o, Diag *d);

/* modelc run: compiles m in memory for this machine (no C compiler) and
 * runs it as its program would run with argv (PROG [ENTRY] [--weights W]
 * name=FILE.npy ... -o OUTDIR). Returns the program's exit status, or -1
 * after reporting into d when m cannot be compiled. */
int cg_llvm_run(const Module *m, const CgOptions *o, int argc, char **argv,
                Diag *d);
/* modelc --prepare-weights: compiles m in memory (LLVM's JIT), opens the
 * model on `weights` (loading, converting, packing and preparing them as
 * its programs do) and saves what it keeps to `out` (mc_model_save), a
 * file the programs of m open without computing anything. */
bool cg_llvm_prepare_weights(const Module *m, const CgOptions *o,
                             const char *weights, const char *out, Diag *d);

/* Whether the struct types of the tables have the sizes of mc_runtime.h's
 * structs under td; msg says which does not. */
bool cg_llvm_abi_check(LLVMContextRef ctx, LLVMTargetDataRef td, char *msg,
                       size_t len);

#endif
