/* runtime/mc_vmath.h against libm's double functions rounded to float.
 *
 * Each function is checked on every 97th float bit pattern (every 997th in a
 * sanitizer build) and on every float in windows around its thresholds and
 * the switches between its approximations; the distance to the reference
 * must stay within the bound the header documents (MC_VMATH_*_ULP, measured
 * over all 2^32 inputs by tests/tools/vmath_exhaustive.c). NaN must give
 * NaN and nothing else may; a zero result must have the reference's sign.
 * Special values are also checked one by one, bit for bit.
 */
#include "mc_vmath.h"

#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define SWEEP_STRIDE 997u
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SWEEP_STRIDE 997u
#endif
#endif
#ifndef SWEEP_STRIDE
#define SWEEP_STRIDE 97u
#endif

#define BLOCK 65536u

/* The loop generated code uses; the vectorizer may turn it into SIMD code. */
#define DEFINE_LOOP(fn)                                                        \
  static void loop_##fn(const float *restrict x, float *restrict y,            \
                        size_t n) {                                            \
    for (size_t i = 0; i < n; i++)                                             \
      y[i] = fn(x[i]);                                                         \
  }
DEFINE_LOOP(mc_expf)
DEFINE_LOOP(mc_expm1f)
DEFINE_LOOP(mc_logf)
DEFINE_LOOP(mc_log1pf)
DEFINE_LOOP(mc_tanhf)
DEFINE_LOOP(mc_sigmoidf)
DEFINE_LOOP(mc_erff)

static double sigmoid_ref(double x) {
  double e = exp(-fabs(x));
  return (x < 0.0 ? e : 1.0) / (1.0 + e);
}

typedef struct Function {
  const char *name;
  void (*loop)(const float *restrict, float *restrict, size_t);
  double (*ref)(double);
  int64_t max_ulp;
} Function;

static const Function fn_expf = {"mc_expf", loop_mc_expf, exp,
                                 MC_VMATH_EXPF_ULP};
static const Function fn_expm1f = {"mc_expm1f", loop_mc_expm1f, expm1,
                                   MC_VMATH_EXPM1F_ULP};
static const Function fn_logf = {"mc_logf", loop_mc_logf, log,
                                 MC_VMATH_LOGF_ULP};
static const Function fn_log1pf = {"mc_log1pf", loop_mc_log1pf, log1p,
                                   MC_VMATH_LOG1PF_ULP};
static const Function fn_tanhf = {"mc_tanhf", loop_mc_tanhf, tanh,
                                  MC_VMATH_TANHF_ULP};
static const Function fn_sigmoidf = {"mc_sigmoidf", loop_mc_sigmoidf,
                                     sigmoid_ref, MC_VMATH_SIGMOIDF_ULP};
static const Function fn_erff = {"mc_erff", loop_mc_erff, erf,
                                 MC_VMATH_ERFF_ULP};

static uint32_t bits_of(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  return u;
}

static float float_of(uint32_t u) {
  float x;
  memcpy(&x, &u, sizeof x);
  return x;
}

/* Position on the number line: consecutive floats differ by 1, +0 == -0 and
 * inf is one past FLT_MAX. */
static int64_t ordinal(float x) {
  uint32_t u = bits_of(x);
  return u >> 31 ? -(int64_t)(u & 0x7fffffffu) : (int64_t)u;
}

static float from_ordinal(int64_t o) {
  return o < 0 ? float_of(0x80000000u | (uint32_t)-o) : float_of((uint32_t)o);
}

static float *in, *out;

static void setup_buffers(void) {
  in = malloc(BLOCK * sizeof *in);
  out = malloc(BLOCK * sizeof *out);
  cr_assert(in && out);
}

static void free_buffers(void) {
  free(in);
  free(out);
}

/* Runs f on in[0..n) and checks every result; stops at the first failure. */
static void check_block(const Function *f, size_t n) {
  f->loop(in, out, n);
  for (size_t i = 0; i < n; i++) {
    float x = in[i], y = out[i], ref = (float)f->ref((double)x);
    if (isnan(ref) || isnan(y))
      cr_assert(isnan(ref) && isnan(y), "%s(%a) = %a, want %a", f->name,
                (double)x, (double)y, (double)ref);
    else if (y == 0.0f && ref == 0.0f)
      cr_assert(signbit(y) == signbit(ref), "%s(%a) = %a, want %a", f->name,
                (double)x, (double)y, (double)ref);
    else
      cr_assert(llabs(ordinal(y) - ordinal(ref)) <= f->max_ulp,
                "%s(%a) = %a, want %a: %lld ulp, bound %lld", f->name,
                (double)x, (double)y, (double)ref,
                (long long)llabs(ordinal(y) - ordinal(ref)),
                (long long)f->max_ulp);
  }
}

/* Every SWEEP_STRIDE-th bit pattern, both signs, NaNs and infinities. */
static void check_sweep(const Function *f) {
  uint64_t count = ((1ull << 32) + SWEEP_STRIDE - 1) / SWEEP_STRIDE;
  for (uint64_t base = 0; base < count; base += BLOCK) {
    size_t n = count - base < BLOCK ? (size_t)(count - base) : BLOCK;
    for (size_t i = 0; i < n; i++)
      in[i] = float_of((uint32_t)((base + i) * SWEEP_STRIDE));
    check_block(f, n);
  }
}

/* Every float within `radius` ulps of `center`. */
static void check_window(const Function *f, float center, int64_t radius) {
  int64_t lo = ordinal(center) - radius, hi = ordinal(center) + radius;
  if (lo < -(int64_t)0x7f800000)
    lo = -(int64_t)0x7f800000;
  if (hi > (int64_t)0x7f800000)
    hi = (int64_t)0x7f800000;
  for (int64_t o = lo; o <= hi;) {
    size_t n = 0;
    for (; n < BLOCK && o <= hi; n++, o++)
      in[n] = from_ordinal(o);
    check_block(f, n);
  }
}

static void check_windows(const Function *f, const float *centers,
                          size_t count) {
  for (size_t i = 0; i < count; i++)
    check_window(f, centers[i], 1 << 16);
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Exact results: `want` bit for bit (any NaN for NaN). */
static void expect(const char *name, float (*fn)(float), float x, float want) {
  float y = fn(x);
  if (isnan(want))
    cr_expect(isnan(y), "%s(%a) = %a, want NaN", name, (double)x, (double)y);
  else
    cr_expect(bits_of(y) == bits_of(want), "%s(%a) = %a, want %a", name,
              (double)x, (double)y, (double)want);
}

static float call_expf(float x) {
  return mc_expf(x);
}
static float call_expm1f(float x) {
  return mc_expm1f(x);
}
static float call_logf(float x) {
  return mc_logf(x);
}
static float call_log1pf(float x) {
  return mc_log1pf(x);
}
static float call_tanhf(float x) {
  return mc_tanhf(x);
}
static float call_sigmoidf(float x) {
  return mc_sigmoidf(x);
}
static float call_erff(float x) {
  return mc_erff(x);
}

TestSuite(vmath, .init = setup_buffers, .fini = free_buffers);

/* ---- exp ------------------------------------------------------------------
 */
Test(vmath, expf_sweep) {
  /* overflow, the last normal result, the last nonzero, the split of 2^n */
  static const float centers[] = {
      0x1.62e42ep+6f, -0x1.5d58a0p+6f, -0x1.9fe368p+6f, 0.0f,
      0x1.62e43p-2f,  -0x1.62e43p-2f,  0x1.5d58a0p+6f};
  check_sweep(&fn_expf);
  check_windows(&fn_expf, centers, COUNT(centers));
}

Test(vmath, expf_special_values) {
  expect("mc_expf", call_expf, 0.0f, 1.0f);
  expect("mc_expf", call_expf, -0.0f, 1.0f);
  expect("mc_expf", call_expf, INFINITY, INFINITY);
  expect("mc_expf", call_expf, -INFINITY, 0.0f);
  expect("mc_expf", call_expf, NAN, NAN);
  expect("mc_expf", call_expf, -NAN, NAN);
  expect("mc_expf", call_expf, 0x1.62e42ep+6f, 0x1.ffff08p+127f);
  expect("mc_expf", call_expf, 0x1.62e43p+6f, INFINITY);
  expect("mc_expf", call_expf, FLT_MAX, INFINITY);
  expect("mc_expf", call_expf, -0x1.9fe368p+6f, 0x1p-149f);
  expect("mc_expf", call_expf, -0x1.9fe36ap+6f, 0.0f);
  expect("mc_expf", call_expf, -104.0f, 0.0f);
  expect("mc_expf", call_expf, -FLT_MAX, 0.0f);
  expect("mc_expf", call_expf, 0x1p-149f, 1.0f);
  expect("mc_expf", call_expf, 1.0f, 0x1.5bf0a8p+1f);
  /* subnormal results are not flushed: exp(-100) = 26.55 * 2^-149 */
  expect("mc_expf", call_expf, -100.0f, 0x1.bp-145f);
}

/* ---- expm1 ----------------------------------------------------------------
 */
Test(vmath, expm1f_sweep) {
  static const float centers[] = {
      0.0f,           0x1.62e42ep+6f, -0x1.154246p+4f, 0x1.62e43p-2f,
      -0x1.62e43p-2f, 0x1.0a2b24p+4f, 0x1.62e43p+0f};
  check_sweep(&fn_expm1f);
  check_windows(&fn_expm1f, centers, COUNT(centers));
}

Test(vmath, expm1f_special_values) {
  expect("mc_expm1f", call_expm1f, 0.0f, 0.0f);
  expect("mc_expm1f", call_expm1f, -0.0f, -0.0f);
  expect("mc_expm1f", call_expm1f, 0x1p-149f, 0x1p-149f);
  expect("mc_expm1f", call_expm1f, -0x1p-149f, -0x1p-149f);
  expect("mc_expm1f", call_expm1f, 0x1p-30f, 0x1p-30f);
  expect("mc_expm1f", call_expm1f, INFINITY, INFINITY);
  expect("mc_expm1f", call_expm1f, -INFINITY, -1.0f);
  expect("mc_expm1f", call_expm1f, NAN, NAN);
  expect("mc_expm1f", call_expm1f, 0x1.62e42ep+6f, 0x1.ffff08p+127f);
  expect("mc_expm1f", call_expm1f, 0x1.62e43p+6f, INFINITY);
  expect("mc_expm1f", call_expm1f, FLT_MAX, INFINITY);
  expect("mc_expm1f", call_expm1f, -18.0f, -1.0f);
  expect("mc_expm1f", call_expm1f, -FLT_MAX, -1.0f);
}

/* ---- log ------------------------------------------------------------------
 */
Test(vmath, logf_sweep) {
  /* around 1 on both sides, sqrt(1/2) (where k changes), the subnormals */
  static const float centers[] = {1.0f,      0x1.6a09e6p-1f, 0x1.6a09e6p+0f,
                                  0x1p-126f, 0x1p-149f,      FLT_MAX,
                                  2.0f};
  check_sweep(&fn_logf);
  check_windows(&fn_logf, centers, COUNT(centers));
}

Test(vmath, logf_special_values) {
  expect("mc_logf", call_logf, 1.0f, 0.0f);
  expect("mc_logf", call_logf, 0.0f, -INFINITY);
  expect("mc_logf", call_logf, -0.0f, -INFINITY);
  expect("mc_logf", call_logf, -1.0f, NAN);
  expect("mc_logf", call_logf, -0x1p-149f, NAN);
  expect("mc_logf", call_logf, -INFINITY, NAN);
  expect("mc_logf", call_logf, INFINITY, INFINITY);
  expect("mc_logf", call_logf, NAN, NAN);
  expect("mc_logf", call_logf, 0x1p-149f, -0x1.9d1da0p+6f);
  expect("mc_logf", call_logf, FLT_MAX, 0x1.62e430p+6f);
  expect("mc_logf", call_logf, 2.0f, 0x1.62e430p-1f);
}

/* ---- log1p ----------------------------------------------------------------
 */
Test(vmath, log1pf_sweep) {
  static const float centers[] = {
      0.0f, -1.0f, -0x1.2bec34p-2f, 0x1.a8279ap-2f, 1.0f, 0x1p24f, FLT_MAX};
  check_sweep(&fn_log1pf);
  check_windows(&fn_log1pf, centers, COUNT(centers));
}

Test(vmath, log1pf_special_values) {
  expect("mc_log1pf", call_log1pf, 0.0f, 0.0f);
  expect("mc_log1pf", call_log1pf, -0.0f, -0.0f);
  expect("mc_log1pf", call_log1pf, 0x1p-149f, 0x1p-149f);
  expect("mc_log1pf", call_log1pf, -0x1p-149f, -0x1p-149f);
  expect("mc_log1pf", call_log1pf, -1.0f, -INFINITY);
  expect("mc_log1pf", call_log1pf, -0x1.000002p+0f, NAN);
  expect("mc_log1pf", call_log1pf, -INFINITY, NAN);
  expect("mc_log1pf", call_log1pf, INFINITY, INFINITY);
  expect("mc_log1pf", call_log1pf, NAN, NAN);
  expect("mc_log1pf", call_log1pf, 1.0f, 0x1.62e430p-1f);
  expect("mc_log1pf", call_log1pf, FLT_MAX, 0x1.62e430p+6f);
}

/* ---- tanh -----------------------------------------------------------------
 */
Test(vmath, tanhf_sweep) {
  static const float centers[] = {0.0f, 0.625f, -0.625f, 0x1.205966p+3f,
                                  -0x1.205966p+3f};
  check_sweep(&fn_tanhf);
  check_windows(&fn_tanhf, centers, COUNT(centers));
}

Test(vmath, tanhf_special_values) {
  expect("mc_tanhf", call_tanhf, 0.0f, 0.0f);
  expect("mc_tanhf", call_tanhf, -0.0f, -0.0f);
  expect("mc_tanhf", call_tanhf, 0x1p-149f, 0x1p-149f);
  expect("mc_tanhf", call_tanhf, -0x1p-149f, -0x1p-149f);
  expect("mc_tanhf", call_tanhf, INFINITY, 1.0f);
  expect("mc_tanhf", call_tanhf, -INFINITY, -1.0f);
  expect("mc_tanhf", call_tanhf, FLT_MAX, 1.0f);
  expect("mc_tanhf", call_tanhf, -FLT_MAX, -1.0f);
  expect("mc_tanhf", call_tanhf, 9.1f, 1.0f);
  expect("mc_tanhf", call_tanhf, -44.0f, -1.0f);
  expect("mc_tanhf", call_tanhf, NAN, NAN);
}

/* ---- sigmoid --------------------------------------------------------------
 */
Test(vmath, sigmoidf_sweep) {
  static const float centers[] = {0.0f, 0x1.154246p+4f, -0x1.5d58a0p+6f,
                                  -0x1.9fe368p+6f};
  check_sweep(&fn_sigmoidf);
  check_windows(&fn_sigmoidf, centers, COUNT(centers));
}

Test(vmath, sigmoidf_special_values) {
  expect("mc_sigmoidf", call_sigmoidf, 0.0f, 0.5f);
  expect("mc_sigmoidf", call_sigmoidf, -0.0f, 0.5f);
  expect("mc_sigmoidf", call_sigmoidf, INFINITY, 1.0f);
  expect("mc_sigmoidf", call_sigmoidf, -INFINITY, 0.0f);
  expect("mc_sigmoidf", call_sigmoidf, FLT_MAX, 1.0f);
  expect("mc_sigmoidf", call_sigmoidf, -FLT_MAX, 0.0f);
  expect("mc_sigmoidf", call_sigmoidf, 17.5f, 1.0f);
  expect("mc_sigmoidf", call_sigmoidf, 17.0f, 0x1.fffffep-1f);
  expect("mc_sigmoidf", call_sigmoidf, -0x1.9fe368p+6f, 0x1p-149f);
  expect("mc_sigmoidf", call_sigmoidf, -104.0f, 0.0f);
  expect("mc_sigmoidf", call_sigmoidf, NAN, NAN);
}

/* ---- erf ------------------------------------------------------------------
 */
Test(vmath, erff_sweep) {
  static const float centers[] = {0.0f,    1.0f,           -1.0f,
                                  3.9375f, 0x1.f5a88ap+1f, -0x1.f5a88ap+1f};
  check_sweep(&fn_erff);
  check_windows(&fn_erff, centers, COUNT(centers));
}

Test(vmath, erff_special_values) {
  expect("mc_erff", call_erff, 0.0f, 0.0f);
  expect("mc_erff", call_erff, -0.0f, -0.0f);
  expect("mc_erff", call_erff, INFINITY, 1.0f);
  expect("mc_erff", call_erff, -INFINITY, -1.0f);
  expect("mc_erff", call_erff, FLT_MAX, 1.0f);
  expect("mc_erff", call_erff, -FLT_MAX, -1.0f);
  expect("mc_erff", call_erff, 4.0f, 1.0f);
  expect("mc_erff", call_erff, -3.95f, -1.0f);
  expect("mc_erff", call_erff, NAN, NAN);
}
