/* f16 and bf16 <-> f32 for arrays (declared in mc_runtime.h), and the 2-D
 * form the GEMM uses to convert 16-bit weights (mc_gemm_internal.h).
 *
 * The portable C is straight-line per element (selects, no branches), so
 * that gcc and clang vectorize it at -O3. On x86-64 the f16 conversions use
 * F16C (vcvtph2ps, vcvtps2ph with round-to-nearest-even in the immediate,
 * so MXCSR's rounding mode does not matter) when the CPU has it, checked
 * once at run time. The two give the same bits on every input: all 65536
 * f16 and all 2^32 f32 patterns (checked by hand with the portable C built
 * by gcc 12 -O2 and -O3 and clang 14 -O3; tests/test_gemm16.c checks every
 * f16 and every 13th f32). Partial vectors at the ends go through a
 * zero-padded copy, so every element is converted by the same instruction
 * whatever the length and alignment. bf16 -> f32 is a shift (AVX2 when the
 * CPU has it, else SSE2 on x86-64); f32 -> bf16 is integer arithmetic only:
 * AVX512-BF16's vcvtneps2bf16 is not used because it flushes f32 subnormals to
 * zero.
 *
 * The portable C depends on the floating-point environment in one place:
 * f32 -> f16 of values below 2^-14 adds 0.5f and lets the FPU round, which
 * is to nearest even in the default mode (under another fesetround mode
 * these few values would round that way, unlike F16C); DAZ changes
 * nothing (f32 subnormals give +-0 either way), nor does FTZ.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "mc_gemm_internal.h"
#include "mc_vmath.h"

#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HALF_X86 1
#include <cpuid.h>
#include <immintrin.h>
#define HALF_F16C __attribute__((target("avx,f16c")))
#define HALF_AVX2 __attribute__((target("avx2")))
#else
#define HALF_X86 0
#endif

/* rows x cols: y[r * ldy + c] = x[r * ldx + c] converted */
typedef void (*HalfToF32)(int64_t rows, int64_t cols, const uint16_t *x,
                          int64_t ldx, float *y, int64_t ldy);

/* ---- portable C ---------------------------------------------------------- */
static inline uint16_t half_from_f32(float f) {
  uint32_t x = mc_vmath_bits(f), a = x & 0x7fffffffu;
  /* a normal f16: rebias 127 -> 15 and round the 13 dropped bits to
   * nearest even; a carry runs into the exponent, up to inf (65520) */
  uint32_t normal = (a - (112u << 23) + 0xfffu + (a >> 13 & 1u)) >> 13;
  /* below 2^-14: 0.5 + |f| has units of 2^-24 in its low bits, rounded by
   * the addition; 0x400 (2^-14, the smallest normal) comes out right */
  uint32_t sub = mc_vmath_bits(mc_vmath_float(a) + 0.5f) - 0x3f000000u;
  uint32_t nan = 0u - (uint32_t)(a > 0x7f800000u);
  uint32_t big = 0x7c00u | (nan & (0x200u | (a >> 13 & 0x3ffu)));
  /* masks, not ?: (a branch would take the addition with it) */
  uint32_t is_sub = 0u - (uint32_t)(a < 0x38800000u);
  uint32_t is_big = 0u - (uint32_t)(a >= 0x47800000u);
  uint32_t h = (sub & is_sub) | (big & is_big) | (normal & ~(is_sub | is_big));
  return (uint16_t)(h | (x >> 16 & 0x8000u));
}

static inline uint16_t bf16_from_f32(float f) {
  uint32_t x = mc_vmath_bits(f);
  uint32_t rounded = (x + 0x7fffu + (x >> 16 & 1u)) >> 16;
  return (uint16_t)((x & 0x7fffffffu) > 0x7f800000u ? (x >> 16 | 0x40u)
                                                    : rounded);
}

static void f16_to_f32_c(int64_t rows, int64_t cols, const uint16_t *x,
                         int64_t ldx, float *y, int64_t ldy) {
  for (int64_t r = 0; r < rows; r++, x += ldx, y += ldy)
    for (int64_t i = 0; i < cols; i++)
      y[i] = mc_f16_to_f32_1(x[i]);
}

/* With SSE2 (the x86-64 baseline) 8 at a time, zeros interleaved below
 * each value: gcc vectorizes the plain loop only from -O3 on. */
static void bf16_to_f32_c(int64_t rows, int64_t cols, const uint16_t *x,
                          int64_t ldx, float *y, int64_t ldy) {
  for (int64_t r = 0; r < rows; r++, x += ldx, y += ldy) {
    int64_t i = 0;
#if HALF_X86
    for (; i + 8 <= cols; i += 8) {
      __m128i h = _mm_loadu_si128((const __m128i *)(x + i));
      _mm_storeu_si128((__m128i *)(y + i),
                       _mm_unpacklo_epi16(_mm_setzero_si128(), h));
      _mm_storeu_si128((__m128i *)(y + i + 4),
                       _mm_unpackhi_epi16(_mm_setzero_si128(), h));
    }
#endif
    for (; i < cols; i++)
      y[i] = mc_bf16_to_f32_1(x[i]);
  }
}

/* ---- SIMD (x86-64): F16C, and AVX2 for bf16 -> f32 --------------------- */
#if HALF_X86
/* With AVX2 8 at a time, each zero-extended and shifted into the top half:
 * one store of 8 floats, where SSE2 takes two (the bf16 weights of a
 * prompt's GEMMs are converted as they are packed, at every call). */
HALF_AVX2 static void bf16_to_f32_avx2(int64_t rows, int64_t cols,
                                       const uint16_t *x, int64_t ldx, float *y,
                                       int64_t ldy) {
  for (int64_t r = 0; r < rows; r++, x += ldx, y += ldy) {
    int64_t i = 0;
    for (; i + 8 <= cols; i += 8) {
      __m256i w =
          _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(x + i)));
      _mm256_storeu_si256((__m256i *)(y + i), _mm256_slli_epi32(w, 16));
    }
    for (; i < cols; i++)
      y[i] = mc_bf16_to_f32_1(x[i]);
  }
}

HALF_F16C static void f16_to_f32_f16c(int64_t rows, int64_t cols,
                                      const uint16_t *x, int64_t ldx, float *y,
                                      int64_t ldy) {
  for (int64_t r = 0; r < rows; r++, x += ldx, y += ldy) {
    int64_t i = 0;
    for (; i + 8 <= cols; i += 8)
      _mm256_storeu_ps(
          y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    if (i < cols) {
      uint16_t t[8] = {0};
      float u[8];
      memcpy(t, x + i, sizeof *t * (size_t)(cols - i));
      _mm256_storeu_ps(u, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)t)));
      memcpy(y + i, u, sizeof *u * (size_t)(cols - i));
    }
  }
}

HALF_F16C static void f32_to_f16_f16c(const float *x, uint16_t *y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(
        (__m128i *)(y + i),
        _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  if (i < n) {
    float t[8] = {0};
    uint16_t u[8];
    memcpy(t, x + i, sizeof *t * (size_t)(n - i));
    _mm_storeu_si128((__m128i *)u, _mm256_cvtps_ph(_mm256_loadu_ps(t),
                                                   _MM_FROUND_TO_NEAREST_INT));
    memcpy(y + i, u, sizeof *u * (size_t)(n - i));
  }
}

#endif

/* ---- which path ---------------------------------------------------------- */
enum { HALF_F16C_BIT = 1, HALF_AVX2_BIT = 2 };
static atomic_int half_simd_off;

/* The CPU features this file uses, read once: F16C (with AVX, which checks
 * that the OS saves YMM state, and the F16C bit of CPUID 1: clang 14 has no
 * __builtin_cpu_supports("f16c")) and AVX2. */
static int half_cpu(void) {
  static atomic_int have = -1;
  int h = atomic_load_explicit(&have, memory_order_relaxed);
  if (h < 0) {
    h = 0;
#if HALF_X86
    unsigned eax, ebx, ecx, edx;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx") &&
        __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C))
      h |= HALF_F16C_BIT;
    if (__builtin_cpu_supports("avx2"))
      h |= HALF_AVX2_BIT;
#endif
    atomic_store_explicit(&have, h, memory_order_relaxed);
  }
  return h;
}

/* half_cpu's features, none after mc_half_use_simd(0) */
static int half_simd(void) {
  return atomic_load_explicit(&half_simd_off, memory_order_relaxed)
             ? 0
             : half_cpu();
}

int mc_half_f16c(void) {
  return (half_simd() & HALF_F16C_BIT) != 0;
}

void mc_half_use_simd(int on) {
  atomic_store_explicit(&half_simd_off, !on, memory_order_relaxed);
}

static HalfToF32 half_to_f32_fn(int fmt) {
  int simd = half_simd();
#if HALF_X86
  if (fmt == MC_W16_BF16 && (simd & HALF_AVX2_BIT))
    return bf16_to_f32_avx2;
  if (fmt == MC_W16_F16 && (simd & HALF_F16C_BIT))
    return f16_to_f32_f16c;
#endif
  (void)simd;
  return fmt == MC_W16_BF16 ? bf16_to_f32_c : f16_to_f32_c;
}

/* ---- the API ------------------------------------------------------------- */
void mc_f32_to_f16_n(const float *x, uint16_t *y, int64_t n) {
#if HALF_X86
  if (mc_half_f16c()) {
    f32_to_f16_f16c(x, y, n);
    return;
  }
#endif
  for (int64_t i = 0; i < n; i++)
    y[i] = half_from_f32(x[i]);
}

void mc_f32_to_bf16_n(const float *x, uint16_t *y, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    y[i] = bf16_from_f32(x[i]);
}

void mc_f16_to_f32_n(const uint16_t *x, float *y, int64_t n) {
  half_to_f32_fn(MC_W16_F16)(1, n, x, n, y, n);
}

void mc_bf16_to_f32_n(const uint16_t *x, float *y, int64_t n) {
  half_to_f32_fn(MC_W16_BF16)(1, n, x, n, y, n);
}

void mc_w16_to_f32_2d(int fmt, int64_t rows, int64_t cols, const uint16_t *src,
                      int64_t lds, float *dst, int64_t ldd) {
  half_to_f32_fn(fmt)(rows, cols, src, lds, dst, ldd);
}
