/* The scalar operations of generated code where C and torch differ, or C
 * leaves the result undefined: integer division and remainder, float
 * remainder, and maximum/minimum with NaN. `static inline`, like
 * mc_vmath.h's functions: the generated C includes this header, and the
 * LLVM backend links the same functions, compiled to bitcode when modelc is
 * built (codegen/llvm_vmath.h), so both backends compute the same bits; a
 * function added here goes into the table of codegen/llvm_vmath.c too
 * (test_llvm_vmath checks that every one is there).
 *
 * Naming: op_<op>_<dtype>, the dtype of the operands and result.
 */
#ifndef MC_OPS_H
#define MC_OPS_H

#include <math.h>
#include <stdint.h>

/* C's truncating division; x / 0 is 0 and INT32_MIN / -1 wraps
 * (both undefined in C). */
static inline int32_t op_div_i32(int32_t a, int32_t b) {
  if (b == 0)
    return 0;
  if (b == -1)
    return (int32_t)(0u - (uint32_t)a);
  return a / b;
}

/* C's truncating division; x / 0 is 0 and INT64_MIN / -1 wraps
 * (both undefined in C). */
static inline int64_t op_div_i64(int64_t a, int64_t b) {
  if (b == 0)
    return 0;
  if (b == -1)
    return (int64_t)(0u - (uint64_t)a);
  return a / b;
}

/* Python/torch remainder: the result takes the divisor's sign;
 * x % 0 is 0. */
static inline int32_t op_mod_i32(int32_t a, int32_t b) {
  if (b == 0 || b == -1)
    return 0;
  int32_t r = a % b;
  return r != 0 && (r < 0) != (b < 0) ? r + b : r;
}

/* Python/torch remainder: the result takes the divisor's sign;
 * x % 0 is 0. */
static inline int64_t op_mod_i64(int64_t a, int64_t b) {
  if (b == 0 || b == -1)
    return 0;
  int64_t r = a % b;
  return r != 0 && (r < 0) != (b < 0) ? r + b : r;
}

/* torch.remainder: fmod, moved to the divisor's sign. */
static inline float op_mod_f32(float a, float b) {
  float r = fmodf(a, b);
  return r != 0 && (r < 0) != (b < 0) ? r + b : r;
}

/* torch.remainder: fmod, moved to the divisor's sign. */
static inline double op_mod_f64(double a, double b) {
  double r = fmod(a, b);
  return r != 0 && (r < 0) != (b < 0) ? r + b : r;
}

/* torch.maximum: NaN propagates. */
static inline float op_max_f32(float a, float b) {
  return a != a || a > b ? a : b;
}

/* torch.maximum: NaN propagates. */
static inline double op_max_f64(double a, double b) {
  return a != a || a > b ? a : b;
}

/* torch.minimum: NaN propagates. */
static inline float op_min_f32(float a, float b) {
  return a != a || a < b ? a : b;
}

/* torch.minimum: NaN propagates. */
static inline double op_min_f64(double a, double b) {
  return a != a || a < b ? a : b;
}

#endif /* MC_OPS_H */
