/* Float math that the compiler vectorizes: exp, expm1, log, log1p, tanh,
 * sigmoid and erf for f32 as `static inline` straight-line code, so that
 *
 *   for (i = 0; i < n; i++) y[i] = mc_expf(x[i]);
 *
 * compiles to SIMD code under gcc >= 12 and clang >= 14 at -O3 (or -O2
 * -ftree-vectorize; gcc's plain -O2 vectorizes no loop of unknown length)
 * with IEEE semantics kept: no -ffast-math (it would break the NaN, inf and
 * rounding tricks below). Nothing relies on fused multiply-adds: with
 * -ffp-contract=off every operation is rounded once as written, so results
 * are the same bits for every vector width, compiler and -O level (the
 * constant folder can call these functions and match the generated code);
 * with contraction to FMA they differ in the last bit here and there and the
 * bounds below still hold (on a 1/61 sample of the inputs).
 *
 * Invariants, for every function:
 *  - no branches, calls, tables or data-dependent loops: special cases are
 *    computed on every lane and chosen with mc_vmath_select, a bit mask
 *    (with ?: gcc sinks the computation of an arm into a branch, and then
 *    cannot if-convert it back because float operations may trap);
 *  - bit manipulation on uint32_t only, via memcpy: no signed overflow and no
 *    float-to-int conversion of an unbounded value, so NaN and inf inputs go
 *    through the arithmetic without undefined behaviour;
 *  - at most 4 ulp from the correctly rounded result over all 2^32 inputs
 *    (the measured maxima are listed per function; ulps counted as the
 *    distance between the bit patterns, ordered, +0 == -0, inf one past
 *    FLT_MAX), with subnormal results produced, not flushed;
 *  - NaN in gives NaN out; +-0, +-inf as listed per function.
 *
 * The polynomials are minimax fits with float coefficients, produced by
 * tests/tools/vmath_fit.py; tests/tools/vmath_exhaustive.c measures the
 * error over all inputs against libm's double functions rounded to float,
 * and tests/test_vmath.c checks a strided sweep and the special cases.
 *
 * Measured over all 2^32 inputs (vmath_exhaustive, gcc 12 -O3, x86-64;
 * identical results, bit for bit, from gcc and clang for SSE2, AVX2,
 * AVX-512 and -O0):
 *
 *   function     max ulp (at x)              results 1 ulp off   2 ulp off
 *   mc_expf      1 (0x1p-24)                        18,161,548           0
 *   mc_expm1f    2 (0x1.62fc48p-2)                  15,730,321       4,428
 *   mc_logf      1 (0x1.46p-140)                    13,551,561           0
 *   mc_log1pf    1 (0x1.94c588p-22)                 12,244,718           0
 *   mc_tanhf     1 (0x1.713746p-12)                  7,341,916           0
 *   mc_sigmoidf  2 (-0x1.194996p+0)                144,303,411     245,991
 *   mc_erff      1 (0x1.91b4p-135)                 128,560,750           0
 *
 * (mc_erff's 1-ulp results are mostly |x| < 2^-13, where x + x p(x^2)
 * rounds twice.) A subnormal operand or result costs a microcode assist per
 * operation on x86, about 10x the time: subnormal results (exp for
 * -104 < x < -87.3, sigmoid below -87.3) and inputs below 2^-63 in
 * magnitude (x * x underflows; log: subnormal x). Other inputs, -inf and
 * huge ones included, take the normal time.
 *
 * The f64 functions at the end are libm (or a stable formula over it): the
 * same names, so that generated code can pick the function by dtype.
 *
 * The LLVM backend links these very functions, compiled to bitcode by
 * clang 14 when modelc is built (codegen/llvm_vmath.h): a function the
 * generated code calls goes into the table of codegen/llvm_vmath.c too
 * (test_llvm_vmath checks that every one is there).
 */
#ifndef MC_VMATH_H
#define MC_VMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Max error in ulps over all 2^32 inputs, as measured by
 * tests/tools/vmath_exhaustive.c (the same on every instruction set: each
 * operation is a single IEEE operation, rounded once, whatever the vector
 * width) and asserted on a sweep by tests/test_vmath.c. */
#define MC_VMATH_EXPF_ULP 1
#define MC_VMATH_EXPM1F_ULP 2
#define MC_VMATH_LOGF_ULP 1
#define MC_VMATH_LOG1PF_ULP 1
#define MC_VMATH_TANHF_ULP 1
#define MC_VMATH_SIGMOIDF_ULP 2
#define MC_VMATH_ERFF_ULP 1

/* ---- bits ---------------------------------------------------------------- */
static inline uint32_t mc_vmath_bits(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  return u;
}

static inline float mc_vmath_float(uint32_t u) {
  float x;
  memcpy(&x, &u, sizeof x);
  return x;
}

/* take_a ? a : b, without a branch for the optimizer to sink code into */
static inline float mc_vmath_select(int take_a, float a, float b) {
  uint32_t mask = 0u - (uint32_t)take_a;
  return mc_vmath_float((mc_vmath_bits(a) & mask) | (mc_vmath_bits(b) & ~mask));
}

/* Cody-Waite: ln 2 = MC_VMATH_LN2_HI + MC_VMATH_LN2_LO, where HI has 15
 * significant bits so that n * HI is exact for |n| < 2^9. */
#define MC_VMATH_LN2_HI 0x1.62e4p-1f
#define MC_VMATH_LN2_LO 0x1.7f7d1cp-20f
#define MC_VMATH_LOG2E 0x1.715476p+0f
/* Adding 1.5 * 2^23 rounds a float of magnitude < 2^22 to an integer n (to
 * nearest even, as the FPU rounds) and leaves n in the low mantissa bits:
 * bits(x + MAGIC) == bits(MAGIC) + n. */
#define MC_VMATH_ROUND_MAGIC 0x1.8p23f
#define MC_VMATH_ROUND_MAGIC_BITS 0x4b400000u

/* ---- exp ----------------------------------------------------------------- */
/* exp(x). n = round(x / ln 2), r = x - n ln 2 (Cody-Waite, |r| <= 0.347),
 * exp(r) = 1 + r + r^2 p(r) with p of degree 4, then the result is scaled by
 * 2^n in two factors 2^floor(n/2) * 2^(n - floor(n/2)), each a normal float,
 * so that 2^128 (overflow) and the subnormal range are reached with one
 * rounding. Outside [-104, 89] the result is selected (exp(89) overflows to
 * inf and exp(-104) rounds to +0; between the thresholds and those bounds the
 * arithmetic itself overflows or underflows) and x is replaced by 0 for the
 * arithmetic: garbage there could make subnormal operands, which cost a
 * microcode assist per operation on x86 (masks of -inf or -1e9 are common).
 * Special cases: exp(+inf) = +inf, exp(-inf) = +0, exp(NaN) = NaN (NaN goes
 * through the arithmetic and fails both comparisons), overflow to +inf for
 * x > 88.72283, subnormal results for x < -87.33655, +0 below -103.97208.
 * Max error: MC_VMATH_EXPF_ULP.
 * mc_vmath_exp takes the two comparisons from its caller, which passes 0
 * for one that cannot hold (sigmoid's exp(-|x|) never overflows, tanh's
 * exp(2|x|) never underflows): the same bits without its selections. */
static inline float mc_vmath_exp(float x, int over, int under) {
  float xc = mc_vmath_select(over | under, 0.0f, x);
  float k = xc * MC_VMATH_LOG2E + MC_VMATH_ROUND_MAGIC;
  float n = k - MC_VMATH_ROUND_MAGIC;
  float r = (xc - n * MC_VMATH_LN2_HI) - n * MC_VMATH_LN2_LO;
  float p = 0x1.6a415ep-10f;
  p = p * r + 0x1.1239c6p-7f;
  p = p * r + 0x1.5558bcp-5f;
  p = p * r + 0x1.555492p-3f;
  p = p * r + 0x1.fffffcp-2f;
  p = 1.0f + (r + r * r * p);
  /* 2^n as two normal floats; n and its halves in two's complement */
  uint32_t ni = mc_vmath_bits(k) - MC_VMATH_ROUND_MAGIC_BITS;
  uint32_t n1 = ((ni + 256u) >> 1) - 128u;
  uint32_t n2 = ni - n1;
  float y =
      p * mc_vmath_float((n1 + 127u) << 23) * mc_vmath_float((n2 + 127u) << 23);
  y = mc_vmath_select(over, INFINITY, y);
  return mc_vmath_select(under, 0.0f, y);
}

static inline float mc_expf(float x) {
  return mc_vmath_exp(x, x > 89.0f, x < -104.0f);
}

/* ---- expm1 --------------------------------------------------------------- */
/* exp(x) - 1. The reduction of mc_expf; expm1(r) = r + r^2 (1/2 + r p(r))
 * with p of degree 3, so small results keep their relative accuracy; then
 * expm1(x) = 2^n expm1(r) + (2^n - 1), where 2^n - 1 is exact for
 * -24 <= n <= 24 and negligible or dominant outside. For n = 128 (x near
 * the overflow threshold) 2^127 is used and the result doubled. Outside
 * [-30, 89] the result is selected (expm1(-30) rounds to -1) and x replaced
 * by 0 for the arithmetic, as in mc_expf.
 * Special cases: expm1(+-0) = +-0, expm1(+inf) = +inf, expm1(-inf) = -1,
 * NaN -> NaN, overflow to +inf for x > 88.72283, -1 for x < -17.32868.
 * Max error: MC_VMATH_EXPM1F_ULP. */
static inline float mc_expm1f(float x) {
  int over = x > 89.0f, under = x < -30.0f;
  float xc = mc_vmath_select(over | under, 0.0f, x);
  float k = xc * MC_VMATH_LOG2E + MC_VMATH_ROUND_MAGIC;
  float n = k - MC_VMATH_ROUND_MAGIC;
  float r = (xc - n * MC_VMATH_LN2_HI) - n * MC_VMATH_LN2_LO;
  float p = 0x1.6c544ep-10f;
  p = p * r + 0x1.12245cp-7f;
  p = p * r + 0x1.5555bcp-5f;
  p = p * r + 0x1.5554b6p-3f;
  float u = r + r * r * (0.5f + r * p);
  /* s = 2^(n - d), d = 1 if n == 128 else 0 (n >= -43 here) */
  uint32_t ni = mc_vmath_bits(k) - MC_VMATH_ROUND_MAGIC_BITS;
  uint32_t d = (127u - ni) >> 31;
  float s = mc_vmath_float((ni - d + 127u) << 23);
  float t = (s * u + (s - 1.0f)) * mc_vmath_float((d + 127u) << 23);
  t = mc_vmath_select(over, INFINITY, t);
  t = mc_vmath_select(under, -1.0f, t);
  return mc_vmath_select(x == 0.0f, x, t);
}

/* ---- log ----------------------------------------------------------------- */
/* The polynomial shared by mc_logf and mc_log1pf: log(1 + f) - f + f^2/2 =
 * f^3 p(f) for sqrt(1/2) <= 1 + f < sqrt(2), p of degree 7. Returns
 * k ln 2 + log(1 + f) + corr, summed from the small terms up. */
static inline float mc_vmath_log_kernel(float k, float f, float corr) {
  float f2 = f * f;
  float p = -0x1.38c91p-4f;
  p = p * f + 0x1.055e62p-3f;
  p = p * f - 0x1.0d8232p-3f;
  p = p * f + 0x1.22d936p-3f;
  p = p * f - 0x1.54728cp-3f;
  p = p * f + 0x1.99a01cp-3f;
  p = p * f - 0x1.000226p-2f;
  p = p * f + 0x1.555554p-2f;
  float y = f2 * f * p + (k * MC_VMATH_LN2_LO + corr);
  y = y - 0.5f * f2;
  return (f + y) + k * MC_VMATH_LN2_HI;
}

/* x = 2^k m with sqrt(1/2) <= m < sqrt(2) (x a positive normal float):
 * adding bits(1) - bits(sqrt(1/2)) carries into the exponent exactly when
 * the mantissa is >= sqrt(2)'s. */
#define MC_VMATH_SQRT_HALF_BITS 0x3f3504f3u

/* log(x). Subnormal x is scaled by 2^23 first; x = 2^k m as above, f = m - 1
 * (exact), log(x) = k ln 2 + log(1 + f) by mc_vmath_log_kernel.
 * Special cases: log(+-0) = -inf, log(x < 0) = NaN, log(+inf) = +inf,
 * log(1) = +0, NaN -> NaN. Max error: MC_VMATH_LOGF_ULP. */
static inline float mc_logf(float x) {
  int subnormal = x < 0x1p-126f;
  float xs = mc_vmath_select(subnormal, x * 0x1p23f, x);
  float bias = mc_vmath_select(subnormal, 150.0f, 127.0f);
  uint32_t ix = mc_vmath_bits(xs) + (0x3f800000u - MC_VMATH_SQRT_HALF_BITS);
  float k = (float)(int32_t)(ix >> 23) - bias;
  float m = mc_vmath_float((ix & 0x007fffffu) + MC_VMATH_SQRT_HALF_BITS);
  float y = mc_vmath_log_kernel(k, m - 1.0f, 0.0f);
  /* x + x: +inf, or the NaN x quieted */
  float special = mc_vmath_select(x < 0.0f, NAN, x + x);
  special = mc_vmath_select(x == 0.0f, -INFINITY, special);
  return mc_vmath_select((x > 0.0f) & (x < INFINITY), y, special);
}

/* ---- log1p --------------------------------------------------------------- */
/* log(1 + x). u = 1 + x rounded and its error c = (1 + x) - u exactly (Fast2Sum
 * with the larger of 1 and x first); u = 2^k m as in mc_logf and
 * log(1 + x) = k ln 2 + log(m) + c/u. When k = 0, f = x itself (exact) and
 * c is not needed.
 * Special cases: log1p(+-0) = +-0, log1p(-1) = -inf, log1p(x < -1) = NaN,
 * log1p(+inf) = +inf, NaN -> NaN. Max error: MC_VMATH_LOG1PF_ULP. */
static inline float mc_log1pf(float x) {
  float u = 1.0f + x;
  float c_big = 1.0f - (u - x);
  float c_small = x - (u - 1.0f);
  float c = mc_vmath_select(x > 1.0f, c_big, c_small);
  uint32_t iu = mc_vmath_bits(u) + (0x3f800000u - MC_VMATH_SQRT_HALF_BITS);
  float k = (float)(int32_t)(iu >> 23) - 127.0f;
  float m = mc_vmath_float((iu & 0x007fffffu) + MC_VMATH_SQRT_HALF_BITS);
  float m1 = m - 1.0f;
  float cu = c / u;
  float f = mc_vmath_select(k == 0.0f, x, m1);
  float corr = mc_vmath_select(k == 0.0f, 0.0f, cu);
  float y = mc_vmath_log_kernel(k, f, corr);
  float special = mc_vmath_select(x < -1.0f, NAN, x + x);
  special = mc_vmath_select(x == -1.0f, -INFINITY, special);
  float r = mc_vmath_select((x > -1.0f) & (x < INFINITY), y, special);
  return mc_vmath_select(x == 0.0f, x, r);
}

/* ---- tanh ---------------------------------------------------------------- */
/* tanh(a) = a + a^3 p(a^2) for |a| < 0.625, p of degree 4 (odd in a) */
static inline float mc_vmath_tanh_small(float a) {
  float z = a * a;
  float p = -0x1.750ce4p-8f;
  p = p * z + 0x1.51f8cep-6f;
  p = p * z - 0x1.b835a4p-5f;
  p = p * z + 0x1.1106f6p-3f;
  p = p * z - 0x1.555532p-2f;
  return a + a * z * p;
}

/* tanh(x) = sign(x) tanh(a), a = |x|. For a < 0.625: tanh(a) = a + a^3 p(a^2),
 * p of degree 4; above: 1 - 2 / (exp(2a) + 1) with mc_expf, which rounds to
 * 1 from a = 9.0109 on and is 1 when exp(2a) overflows.
 * Special cases: tanh(+-0) = +-0, tanh(+-inf) = +-1, NaN -> NaN.
 * Max error: MC_VMATH_TANHF_ULP. */
static inline float mc_tanhf(float x) {
  uint32_t sign = mc_vmath_bits(x) & 0x80000000u;
  float a = mc_vmath_float(mc_vmath_bits(x) & 0x7fffffffu);
  float small = mc_vmath_tanh_small(a);
  float a2 = 2.0f * a;
  float large = 1.0f - 2.0f / (mc_vmath_exp(a2, a2 > 89.0f, 0) + 1.0f);
  float y = mc_vmath_select(a < 0.625f, small, large);
  return mc_vmath_float(mc_vmath_bits(y) | sign);
}

/* ---- sigmoid ------------------------------------------------------------- */
/* 1 / (1 + exp(-x)). With e = exp(-|x|) <= 1 and q = e / (1 + e) =
 * sigmoid(-|x|), it is q for x < 0 and 1 - q for x > 0 (1 - q rather than
 * 1 / (1 + e): 1 + e would round e away near x = 17 and reach 1 too early).
 * For |x| < 1 a second path, 1/2 + tanh(x/2) / 2 with mc_tanhf's
 * polynomial, used to round 120 million more results correctly (this
 * formula puts them 1 ulp off), at a quarter of the function's time and
 * with the same maximum error (2 ulp, at |x| > 1).
 * Special cases: sigmoid(+inf) = 1, sigmoid(-inf) = +0, sigmoid(+-0) = 0.5,
 * NaN -> NaN; 1 from x = 17.3287, subnormal below x = -87.33655 and +0 below
 * -103.97208 (as the float rounding of the exact value gives).
 * Max error: MC_VMATH_SIGMOIDF_ULP. */
static inline float mc_sigmoidf(float x) {
  float a = mc_vmath_float(mc_vmath_bits(x) & 0x7fffffffu);
  float e = mc_vmath_exp(-a, 0, a > 104.0f);
  float q = e / (1.0f + e);
  return mc_vmath_select(x < 0.0f, q, 1.0f - q);
}

/* ---- erf ----------------------------------------------------------------- */
/* erf(x) = sign(x) erf(a), a = |x|. For a < 1: erf(a) = a + a p(a^2), p of
 * degree 6; above: erf(a) = 1 - exp(q(a - 1)) with q of degree 6 fitted to
 * log(erfc(a)) on [1, 3.9375]; 1 above (erf rounds to 1 from a = 3.9192),
 * where a is clamped for q so that exp does not make subnormals.
 * Special cases: erf(+-0) = +-0, erf(+-inf) = +-1, NaN -> NaN.
 * Max error: MC_VMATH_ERFF_ULP. */
static inline float mc_erff(float x) {
  uint32_t sign = mc_vmath_bits(x) & 0x80000000u;
  float a = mc_vmath_float(mc_vmath_bits(x) & 0x7fffffffu);
  float z = a * a;
  float p = 0x1.4771fep-14f;
  p = p * z - 0x1.a3515ep-11f;
  p = p * z + 0x1.53f224p-8f;
  p = p * z - 0x1.b7f71ap-6f;
  p = p * z + 0x1.ce2ce6p-4f;
  p = p * z - 0x1.81273ep-2f;
  p = p * z + 0x1.06eba8p-3f;
  float small = a + a * p;
  float s = mc_vmath_select(a > 3.9375f, 3.9375f, a) - 1.0f;
  float q = 0x1.891616p-14f;
  q = q * s - 0x1.879e4cp-10f;
  q = q * s + 0x1.36169ep-7f;
  q = q * s - 0x1.5209bcp-5f;
  q = q * s - 0x1.afb44ap-1f;
  q = q * s - 0x1.51c988p+1f;
  q = q * s - 0x1.d97fcp+0f;
  float large = 1.0f - mc_expf(q);
  float y = mc_vmath_select(a < 1.0f, small, large);
  y = mc_vmath_select(a > 3.9375f, 1.0f, y);
  return mc_vmath_float(mc_vmath_bits(y) | sign);
}

/* ---- f64: libm ----------------------------------------------------------- */
static inline double mc_exp(double x) {
  return exp(x);
}
static inline double mc_expm1(double x) {
  return expm1(x);
}
static inline double mc_log(double x) {
  return log(x);
}
static inline double mc_log1p(double x) {
  return log1p(x);
}
static inline double mc_tanh(double x) {
  return tanh(x);
}
static inline double mc_erf(double x) {
  return erf(x);
}
static inline double mc_sigmoid(double x) {
  double e = exp(-fabs(x));
  return (x < 0.0 ? e : 1.0) / (1.0 + e);
}

#endif /* MC_VMATH_H */
