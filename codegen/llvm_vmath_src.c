/* Not part of modelc's own code: CMake compiles this file with clang 14
 * into LLVM bitcode (<build>/gen/mc_vmath.bc), with the C backend's IEEE
 * flags, and embeds the bitcode in modelc; cg_llvm_link_vmath
 * (llvm_vmath.h) links it into the LLVM backend's modules. So both
 * backends run the same functions, from the same source, and modelc needs
 * no C compiler to JIT a model.
 *
 * The functions are `static inline`, which a compiler emits only where
 * they are called: clang's -femit-all-decls emits every one of them
 * anyway, as an internal function under its own name (mc_expf, op_max_f32,
 * ...), and -Xclang -disable-llvm-passes keeps them (clang's -O2 pipeline
 * would delete unused internal functions). The module they are linked
 * into optimizes the ones it uses with its own pipeline.
 */
#include "mc_ops.h"
#include "mc_vmath.h"
