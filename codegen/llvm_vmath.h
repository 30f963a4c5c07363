/* The generated code's scalar math for the LLVM backend (target mc_llvm):
 * the f32/f64 functions of runtime/mc_vmath.h (mc_expf, ..., mc_exp, ...)
 * and the operations of runtime/mc_ops.h (op_div_i32, op_max_f32, ...),
 * the very functions the C backend's code calls, compiled to LLVM bitcode
 * by clang 14 when modelc is built (CMakeLists.txt, llvm_vmath_src.c) and
 * embedded in modelc. So both backends compute the same bits, the LLVM
 * backend's loops inline and vectorize them like the C compiler does, and
 * the JIT needs no C compiler.
 *
 * Usage: declare and call the functions by name, then link:
 *     LLVMValueRef y = cg_llvm_vmath_call(b, "mc_expf", &x, 1);
 *     ...
 *     if (!cg_llvm_link_vmath(m, &d)) ...
 *     cg_llvm_optimize(t, m, &d); // or cg_llvm_jit_add_module
 */
#ifndef MC_LLVM_VMATH_H
#define MC_LLVM_VMATH_H

#include <llvm-c/Core.h>
#include <stdbool.h>

#include "diag.h"
#include "ir.h"

/* Links the embedded bitcode into m (and m's context): every function of
 * mc_vmath.h and mc_ops.h (also their internal helpers, mc_vmath_bits ...)
 * becomes a definition in m under its own name, so functions m declares
 * (`declare float @mc_expf(float)`) resolve to them. The bitcode is made
 * to fit m first: m's triple and data layout; no "target-cpu",
 * "target-features" or "tune-cpu" attributes, no optnone or noinline, so
 * they inline into code for any CPU. Each defined function is
 * alwaysinline (inlined at every call whatever the inliner's cost model
 * says, so a loop calling it vectorizes) and internal (the pipeline drops
 * those m does not call; no symbol clashes between modules of one JIT).
 * Calls to libm (exp, fmodf, ... of the f64 functions and op_mod_*) stay
 * external declarations. The bitcode is not optimized: m's pipeline does
 * that (cg_llvm_optimize).
 *
 * LLVM's linker replaces m's declarations of these functions by the
 * definitions: LLVMValueRefs to them held from before are invalid after
 * the call (look them up again: LLVMGetNamedFunction). So link once m's
 * code is built, and once per module. Returns false after reporting into
 * d when m already defines one of the functions or declares one with
 * another type (m is then unchanged), or when LLVM cannot read or link the
 * bitcode. */
bool cg_llvm_link_vmath(LLVMModuleRef m, Diag *d);

/* The functions of the two headers, with their types: `dtype` (DT_F32,
 * DT_F64, DT_I32 or DT_I64) is the result's and every operand's. The
 * table ends with a {NULL, DT_COUNT, 0} row.
 * Not every one is what the C backend calls for its op: its f64 sigmoid
 * is `1.0 / (1.0 + exp(-x))` written out (codegen/c_elementwise.c, and so
 * the constant folder), not mc_sigmoid's formula; f32 sqrt, pow, sin,
 * floor, ... are libm's (sqrtf, ...), not here. */
typedef struct CgLlvmVmathFn {
  const char *name; /* "mc_expf", "op_div_i32", ... */
  DType dtype;
  int arity; /* 1 or 2 */
} CgLlvmVmathFn;
extern const CgLlvmVmathFn cg_llvm_vmath_functions[];

/* The table's row for name, or NULL. */
const CgLlvmVmathFn *cg_llvm_vmath_find(const char *name);

/* The function `name` of the table in m, declared with its type when m
 * does not have it yet (m's own function of that name otherwise, whatever
 * its type; cg_llvm_link_vmath checks it). NULL when name is not in the
 * table. */
LLVMValueRef cg_llvm_vmath_function(LLVMModuleRef m, const char *name);

/* A call of `name` (cg_llvm_vmath_function in the module b is building)
 * with args, at b's position. NULL when name is not in the table or nargs
 * is not its arity. */
LLVMValueRef cg_llvm_vmath_call(LLVMBuilderRef b, const char *name,
                                LLVMValueRef *args, unsigned nargs);

#endif
