/* 16-bit floats in the runtime: the f16/bf16 <-> f32 array conversions
 * (runtime/mc_half.c) and the GEMM with a 16-bit B (mc_gemm_f32_w16).
 *
 * Conversions: special values one by one (signed zeros, subnormals of both
 * formats, the largest finite values, ties, overflow, quiet and signalling
 * NaNs), all 65536 patterns of each format there and back, and a sweep of
 * f32 bit patterns, against scalar references written here from the IEEE
 * definitions (in double arithmetic). Each check runs on both paths: SIMD
 * (F16C; AVX2 for bf16 -> f32) when the CPU has it and the portable C
 * (mc_half_use_simd(0)); the two are
 * also compared on every 13th f32 bit pattern (every 1021st in a sanitizer
 * build; all 2^32 agree, checked by hand).
 *
 * GEMM: bit for bit the result of mc_gemm_f32 with the same kernel on B
 * converted to f32, for M in {1, 2, 3, 4, 5, 13, 64}, N and K across tile
 * and vector edges and the GEMV's buffer blocks, B row-major and
 * column-major (and neither), A row-major with padding and transposed,
 * C = AB then C += AB, every kernel this CPU runs, 1 and 3 threads, both
 * formats, and with F16C switched off (the GEMV then converts B through a
 * buffer instead of in registers), and the same with B kept in 16-bit
 * panels (mc_gemm_pack_weight16 of B and of B.T, which agree, then
 * mc_gemm_f32_w16_packed). The f32 GEMM itself is checked against
 * its contract by tests/test_gemm.c; small cases are checked against the
 * contract here too, except for the payload of NaN results (which of two
 * NaN operands an addition returns depends on how the compiler ordered
 * them; the scalar loop here and the kernels may differ).
 */
#include "gemm_contract.h"
#include "mc_gemm_internal.h"
#include "mc_runtime.h"

#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define SWEEP_STRIDE 1021u
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SWEEP_STRIDE 1021u
#endif
#endif
#ifndef SWEEP_STRIDE
#define SWEEP_STRIDE 13u
#endif

static const char *const kernels[] = {"portable", "avx2", "avx512"};
enum { KERNEL_COUNT = 3 };

static uint32_t rng_state = 7;
static uint32_t rnd32(void) {
  rng_state = rng_state * 1664525u + 1013904223u;
  uint32_t x = rng_state;
  x ^= x >> 16;
  x *= 0x45d9f3bu;
  return x ^ (x >> 16);
}

static uint32_t bits_of(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

static float float_of(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* ---- scalar references ---------------------------------------------------
 * From the definitions: the value rounded to the nearest multiple of the
 * format's quantum in its binade (nearbyint: ties to even), in double,
 * where every step is exact. */
static uint16_t ref_f32_to_f16(float f) {
  uint32_t x = bits_of(f);
  uint16_t sign = (uint16_t)(x >> 16 & 0x8000u);
  if (isnan(f)) /* quiet, top 10 payload bits */
    return (uint16_t)(sign | 0x7e00u | (x >> 13 & 0x3ffu));
  double a = fabs((double)f);
  if (a >= 65520.0) /* 65504 + half its ulp: ties to even go up */
    return (uint16_t)(sign | 0x7c00u);
  int e;
  frexp(a, &e);                       /* 2^(e-1) <= a < 2^e */
  int q = a < 0x1p-14 ? -24 : e - 11; /* the quantum 2^q */
  double n = nearbyint(ldexp(a, -q));
  if (q == -24) /* subnormal (n = 1024 is the smallest normal, encoded so) */
    return (uint16_t)(sign | (uint16_t)n);
  /* n in [1024, 2048]: 2048 carries into the exponent */
  return (uint16_t)(sign + ((uint32_t)(q + 25) << 10) + (uint32_t)n - 1024u);
}

static uint16_t ref_f32_to_bf16(float f) {
  uint32_t x = bits_of(f);
  if (isnan(f))
    return (uint16_t)(x >> 16 | 0x40u);
  double a = fabs((double)f);
  int e;
  frexp(a, &e);
  int q = a < 0x1p-126 ? -133 : e - 8; /* bf16 has 8 significant bits */
  double v = ldexp(nearbyint(ldexp(a, -q)), q);
  uint32_t mag = v > FLT_MAX ? 0x7f800000u : bits_of((float)v);
  return (uint16_t)((x >> 16 & 0x8000u) | mag >> 16);
}

/* vcvtph2ps: exact, signalling NaNs quieted. */
static uint32_t ref_f16_to_f32_bits(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  int e = h >> 10 & 31, m = h & 1023;
  if (e == 31)
    return sign | 0x7f800000u | (uint32_t)m << 13 | (m ? 0x400000u : 0);
  double v = e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
  return sign | bits_of((float)v);
}

/* ---- conversions --------------------------------------------------------- */
/* Runs fn with the SIMD conversions (F16C, and AVX2 for bf16 -> f32, where
 * the CPU has them) and with the portable C. */
static void on_both_paths(void (*fn)(const char *path)) {
  mc_half_use_simd(1);
  fn(mc_half_f16c() ? "F16C" : "portable (no F16C)");
  mc_half_use_simd(0);
  cr_assert_eq(mc_half_f16c(), 0);
  fn("portable");
  mc_half_use_simd(1);
}

/* f32 -> 16-bit for each of n inputs, through the array functions at an
 * odd offset and length (the partial vectors at both ends), against the
 * references and against the one-element inline conversions back. */
static void check_to_16(const float *x, int64_t n, const char *path) {
  uint16_t *h = malloc(sizeof *h * (size_t)(n + 3));
  uint16_t *b = malloc(sizeof *b * (size_t)(n + 3));
  cr_assert(h && b);
  mc_f32_to_f16_n(x, h + 1, n);
  mc_f32_to_bf16_n(x, b + 1, n);
  for (int64_t i = 0; i < n; i++) {
    cr_assert_eq(h[i + 1], ref_f32_to_f16(x[i]),
                 "%s: f32 %08x -> f16 %04x, expected %04x", path, bits_of(x[i]),
                 h[i + 1], ref_f32_to_f16(x[i]));
    cr_assert_eq(b[i + 1], ref_f32_to_bf16(x[i]),
                 "%s: f32 %08x -> bf16 %04x, expected %04x", path,
                 bits_of(x[i]), b[i + 1], ref_f32_to_bf16(x[i]));
  }
  free(h);
  free(b);
}

/* input bits, f16, bf16 */
static const uint32_t special_cases[][3] = {
    {0x00000000, 0x0000, 0x0000}, /* +0 */
    {0x80000000, 0x8000, 0x8000}, /* -0 */
    {0x3f800000, 0x3c00, 0x3f80}, /* 1 */
    {0xc0000000, 0xc000, 0xc000}, /* -2 */
    {0x33800000, 0x0001, 0x3380}, /* 2^-24: the smallest f16 subnormal */
    {0x387fc000, 0x03ff, 0x3880}, /* the largest f16 subnormal */
    {0x38800000, 0x0400, 0x3880}, /* 2^-14: the smallest f16 normal */
    {0x387fe000, 0x0400, 0x3880}, /* rounds up to it (tie, odd 0x3ff) */
    {0x33000000, 0x0000, 0x3300}, /* 2^-25: tie between 0 and 2^-24 -> 0 */
    {0x33000001, 0x0001, 0x3300}, /* just above the tie */
    {0x33c00000, 0x0002, 0x33c0}, /* 3 * 2^-25: tie -> even 2 * 2^-24 */
    {0xb3c00000, 0x8002, 0xb3c0}, /* negative */
    {0x00000001, 0x0000, 0x0000}, /* the smallest f32 subnormal */
    {0x80400000, 0x8000, 0x8040}, /* f32 subnormals: bf16 subnormals */
    {0x00008000, 0x0000, 0x0000}, /* bf16 subnormal tie -> even 0 */
    {0x00018000, 0x0000, 0x0002}, /* tie -> even 2 */
    {0x007fffff, 0x0000, 0x0080}, /* rounds up to the smallest normal */
    {0x477fe000, 0x7bff, 0x4780}, /* 65504: the largest finite f16 */
    {0x477fefff, 0x7bff, 0x4780}, /* 65519.99: down */
    {0x477ff000, 0x7c00, 0x4780}, /* 65520: tie -> even: inf */
    {0x47800000, 0x7c00, 0x4780}, /* 65536 */
    {0xc7800000, 0xfc00, 0xc780}, /* -65536 */
    {0x7f7fffff, 0x7c00, 0x7f80}, /* FLT_MAX: inf in both */
    {0x7f7f7fff, 0x7c00, 0x7f7f}, /* the largest value that stays finite */
    {0x7f7f8000, 0x7c00, 0x7f80}, /* tie, odd: up to inf */
    {0x3f801000, 0x3c00, 0x3f80}, /* 1 + 2^-11: f16 tie -> even */
    {0x3f803000, 0x3c02, 0x3f80}, /* 1 + 3 * 2^-11: tie -> even up */
    {0x3f808000, 0x3c04, 0x3f80}, /* 1 + 2^-8: bf16 tie -> even */
    {0x3f818000, 0x3c0c, 0x3f82}, /* 1 + 3 * 2^-8: bf16 tie -> up */
    {0x7f800000, 0x7c00, 0x7f80}, /* inf */
    {0xff800000, 0xfc00, 0xff80}, /* -inf */
    {0x7fc00000, 0x7e00, 0x7fc0}, /* quiet NaN */
    {0xffc00001, 0xfe00, 0xffc0}, /* negative, low payload dropped */
    {0x7f800001, 0x7e00, 0x7fc0}, /* signalling NaN: quieted */
    {0xff802000, 0xfe01, 0xffc0}, /* payload kept, quieted */
    {0x7fbfffff, 0x7fff, 0x7fff}, /* payload kept */
};
enum { SPECIAL_COUNT = sizeof special_cases / sizeof special_cases[0] };

static void check_specials(const char *path) {
  float x[SPECIAL_COUNT];
  uint16_t h[SPECIAL_COUNT], b[SPECIAL_COUNT];
  for (int i = 0; i < SPECIAL_COUNT; i++)
    x[i] = float_of(special_cases[i][0]);
  mc_f32_to_f16_n(x, h, SPECIAL_COUNT);
  mc_f32_to_bf16_n(x, b, SPECIAL_COUNT);
  for (int i = 0; i < SPECIAL_COUNT; i++) {
    cr_assert_eq(h[i], special_cases[i][1],
                 "%s: %08x -> f16 %04x, expected %04x", path,
                 special_cases[i][0], h[i], special_cases[i][1]);
    cr_assert_eq(b[i], special_cases[i][2],
                 "%s: %08x -> bf16 %04x, expected %04x", path,
                 special_cases[i][0], b[i], special_cases[i][2]);
    /* the table agrees with the references */
    cr_assert_eq(ref_f32_to_f16(x[i]), special_cases[i][1], "ref f16 %08x",
                 special_cases[i][0]);
    cr_assert_eq(ref_f32_to_bf16(x[i]), special_cases[i][2], "ref bf16 %08x",
                 special_cases[i][0]);
    /* and with the runtime's scalar functions (which the weight loader
     * uses) */
    cr_assert_eq(mc_f32_to_f16(x[i]), special_cases[i][1], "mc_f32_to_f16 %08x",
                 special_cases[i][0]);
    cr_assert_eq(mc_f32_to_bf16(x[i]), special_cases[i][2],
                 "mc_f32_to_bf16 %08x", special_cases[i][0]);
  }
  check_to_16(x, SPECIAL_COUNT, path);
}

Test(half, special_values) {
  on_both_paths(check_specials);
}

/* 16 -> 32 for every pattern: exact (f16: signalling NaNs quieted), the
 * same from the array functions and the inline ones; 16 -> 32 -> 16 gives
 * the pattern back, signalling NaNs quiet. */
static void check_all_patterns(const char *path) {
  enum { N = 65536 };
  uint16_t *h = malloc(sizeof *h * N), *back = malloc(sizeof *back * N);
  float *f = malloc(sizeof *f * (N + 1));
  cr_assert(h && back && f);
  for (int i = 0; i < N; i++)
    h[i] = (uint16_t)i;
  /* f16 */
  mc_f16_to_f32_n(h, f + 1, N); /* f + 1: not vector-aligned */
  for (int i = 0; i < N; i++) {
    cr_assert_eq(bits_of(f[i + 1]), ref_f16_to_f32_bits(h[i]),
                 "%s: f16 %04x -> %08x, expected %08x", path, i,
                 bits_of(f[i + 1]), ref_f16_to_f32_bits(h[i]));
    cr_assert_eq(bits_of(mc_f16_to_f32_1(h[i])), bits_of(f[i + 1]),
                 "mc_f16_to_f32_1(%04x)", i);
    if ((i & 0x7c00) != 0x7c00 || !(i & 0x3ff)) /* not NaN: as before */
      cr_assert_eq(bits_of(mc_f16_to_f32((uint16_t)i)), bits_of(f[i + 1]),
                   "mc_f16_to_f32(%04x)", i);
  }
  mc_f32_to_f16_n(f + 1, back, N);
  for (int i = 0; i < N; i++) {
    int snan = (i & 0x7e00) == 0x7c00 && (i & 0x1ff);
    cr_assert_eq(back[i], snan ? i | 0x200 : i, "%s: f16 %04x -> %04x", path, i,
                 back[i]);
  }
  /* bf16: a shift, NaNs unchanged; back, signalling NaNs quieted */
  mc_bf16_to_f32_n(h, f + 1, N);
  for (int i = 0; i < N; i++) {
    cr_assert_eq(bits_of(f[i + 1]), (uint32_t)i << 16, "%s: bf16 %04x", path,
                 i);
    cr_assert_eq(bits_of(mc_bf16_to_f32_1(h[i])), (uint32_t)i << 16);
  }
  mc_f32_to_bf16_n(f + 1, back, N);
  for (int i = 0; i < N; i++) {
    int snan = (i & 0x7fc0) == 0x7f80 && (i & 0x3f);
    cr_assert_eq(back[i], snan ? i | 0x40 : i, "%s: bf16 %04x -> %04x", path, i,
                 back[i]);
  }
  free(h);
  free(back);
  free(f);
}

Test(half, all_16_bit_patterns_round_trip) {
  on_both_paths(check_all_patterns);
}

/* Random f32 bit patterns, random values near 1 and near the f16
 * subnormal range, against the references. */
static void check_random(const char *path) {
  enum { N = 1 << 20 };
  float *x = malloc(sizeof *x * N);
  cr_assert(x);
  rng_state = 99;
  for (int i = 0; i < N; i++) {
    uint32_t r = rnd32();
    switch (i % 4) {
    case 0: /* any pattern */
      x[i] = float_of(r);
      break;
    case 1: /* [2^-26, 2^-13): across the f16 subnormals */
      x[i] = float_of((r & 0x807fffffu) | (uint32_t)(101 + i / 4 % 13) << 23);
      break;
    case 2: /* [2^15, 2^17): across f16 overflow */
      x[i] = float_of((r & 0x807fffffu) | (uint32_t)(142 + i / 4 % 2) << 23);
      break;
    default: /* the f16 normal range, low bits near ties */
      x[i] = float_of(((r & 0x8fffe000u) | 0x38000000u) +
                      (r >> 29 & 1 ? 0x1000u : 0x0fffu));
      break;
    }
  }
  check_to_16(x, N, path);
  free(x);
}

Test(half, random_floats) {
  on_both_paths(check_random);
}

/* F16C against the portable C on every SWEEP_STRIDE-th f32 pattern and on
 * every f16 pattern (already covered above, if the CPU has F16C). */
Test(half, f16c_equals_portable_on_a_sweep) {
  mc_half_use_simd(1);
  if (!mc_half_f16c())
    cr_skip_test("no F16C on this CPU");
  enum { BLOCK = 65536 };
  float *x = malloc(sizeof *x * BLOCK);
  uint16_t *simd = malloc(sizeof *simd * BLOCK);
  uint16_t *port = malloc(sizeof *port * BLOCK);
  cr_assert(x && simd && port);
  uint64_t total = 1ull << 32;
  for (uint64_t base = 0; base < total;
       base += (uint64_t)BLOCK * SWEEP_STRIDE) {
    int n = 0;
    for (; n < BLOCK && base + (uint64_t)n * SWEEP_STRIDE < total; n++)
      x[n] = float_of((uint32_t)(base + (uint64_t)n * SWEEP_STRIDE));
    mc_half_use_simd(1);
    mc_f32_to_f16_n(x, simd, n);
    mc_half_use_simd(0);
    mc_f32_to_f16_n(x, port, n);
    if (memcmp(simd, port, sizeof *simd * (size_t)n) != 0)
      for (int i = 0; i < n; i++)
        cr_assert_eq(simd[i], port[i], "f32 %08x: F16C %04x, portable %04x",
                     bits_of(x[i]), simd[i], port[i]);
  }
  mc_half_use_simd(1);
  free(x);
  free(simd);
  free(port);
}

Test(half, empty_and_short_arrays) {
  float f[3] = {1.0f, -2.0f, 0.5f};
  uint16_t h[3] = {0xaaaa, 0xaaaa, 0xaaaa};
  mc_f32_to_f16_n(f, h, 0);
  mc_f32_to_bf16_n(f, h, 0);
  cr_assert(h[0] == 0xaaaa && h[1] == 0xaaaa && h[2] == 0xaaaa);
  mc_f32_to_f16_n(f, h, 2);
  cr_assert(h[0] == 0x3c00 && h[1] == 0xc000 && h[2] == 0xaaaa);
  mc_f16_to_f32_n(h, f, 1);
  cr_assert(f[0] == 1.0f && f[1] == -2.0f);
}

/* ---- GEMM ---------------------------------------------------------------- */
static int use_kernel(int k) {
  return mc_gemm_use_kernel(kernels[k]) == MC_OK;
}

/* Buffer `slot`, at least `bytes` large, kept for the next case: fresh
 * pages for every case (megabytes of them) would cost more than the
 * GEMMs. */
enum {
  SLOT_X,
  SLOT_A,
  SLOT_B16,
  SLOT_B32,
  SLOT_C,
  SLOT_REF,
  SLOT_CON,
  SLOT_W,
  SLOT_P16,
  SLOT_P16T,
  SLOT_PC,
  SLOTS
};
static void *slot_buffer(int slot, size_t bytes) {
  static void *buf[SLOTS];
  static size_t size[SLOTS];
  if (bytes > size[slot]) {
    free(buf[slot]);
    buf[slot] = malloc(bytes);
    size[slot] = bytes;
    cr_assert_not_null(buf[slot]);
  }
  return buf[slot];
}

static float rnd_unit(void) {
  return (float)(rnd32() >> 8) / (float)(1 << 24) * 2.0f - 1.0f;
}

/* n 16-bit values of format fmt: random values in [-2, 2], and with
 * `specials` also subnormals, zeros and (rarely) infinities and NaNs. */
static void fill_w16(uint16_t *b, int64_t n, int fmt, int specials) {
  float *x = slot_buffer(SLOT_X, sizeof(float) * (size_t)n);
  for (int64_t i = 0; i < n; i++)
    x[i] = 2.0f * rnd_unit();
  if (fmt == MC_W16_F16)
    mc_f32_to_f16_n(x, b, n);
  else
    mc_f32_to_bf16_n(x, b, n);
  static const uint16_t f16s[] = {0x0000, 0x8000, 0x0001, 0x83ff, 0x0400,
                                  0x7bff, 0x7c00, 0xfc00, 0x7e00, 0x7c01};
  static const uint16_t bf16s[] = {0x0000, 0x8000, 0x0001, 0x807f, 0x0080,
                                   0x7f7f, 0x7f80, 0xff80, 0x7fc0, 0x7f81};
  for (int64_t i = 0; specials && i < n; i++) {
    uint32_t r = rnd32();
    if (r % 16 != 0)
      continue;
    /* infinities and NaNs one time in 40 of these */
    int pick = (int)(r >> 8) % 10;
    if (pick >= 6 && (r >> 16) % 4 != 0)
      pick = (int)(r >> 20) % 6;
    b[i] = fmt == MC_W16_F16 ? f16s[pick] : bf16s[pick];
  }
}

/* Layout bits: 1 = A transposed, 2 = B column-major, 4 = B with neither
 * stride 1 (every other element of a wider array). */
typedef struct Case {
  int64_t M, N, K;
  int layout, fmt, specials;
} Case;

/* B (K x N, strides rsb and csb, f32) packed by mc_gemm_pack_weight16 as a
 * row-major weight W = B and as a transposed one W = B.T, which must give
 * the same panels; returns them. */
static const uint16_t *pack16(int64_t K, int64_t N, const float *b32,
                              int64_t rsb, int64_t csb, int fmt) {
  float *w = slot_buffer(SLOT_W, sizeof(float) * (size_t)(K * N));
  int64_t n = mc_gemm_weight16_elems(K, N, 0);
  cr_assert_eq(n, mc_gemm_weight16_elems(N, K, 1));
  uint16_t *p = slot_buffer(SLOT_P16, sizeof(uint16_t) * (size_t)n);
  uint16_t *pt = slot_buffer(SLOT_P16T, sizeof(uint16_t) * (size_t)n);
  for (int64_t k = 0; k < K; k++)
    for (int64_t j = 0; j < N; j++)
      w[k * N + j] = b32[k * rsb + j * csb];
  mc_gemm_pack_weight16(K, N, 0, w, fmt, p);
  for (int64_t k = 0; k < K; k++)
    for (int64_t j = 0; j < N; j++)
      w[j * K + k] = b32[k * rsb + j * csb];
  mc_gemm_pack_weight16(N, K, 1, w, fmt, pt);
  cr_assert(memcmp(p, pt, sizeof(uint16_t) * (size_t)n) == 0);
  return p;
}

/* C = A B, then C += A B, with mc_gemm_f32_w16 and with mc_gemm_f32 on B
 * converted (and, when small, the contract loop), all bit for bit, and
 * with mc_gemm_f32_w16_packed on B in 16-bit panels (NaN payloads aside: a
 * signalling NaN of B is quiet once packed from f32); the padding of C (3
 * floats per row) stays untouched. */
static void check_case(const Case *t) {
  const int64_t M = t->M, N = t->N, K = t->K, pad = 3;
  int ta = t->layout & 1, tb = t->layout >> 1 & 1, sparse = t->layout >> 2;
  int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + (tb ? 1 : 0);
  int64_t ldc = N + pad, step = sparse ? 2 : 1;
  int64_t a_n = (ta ? K : M) * lda, b_n = (tb ? N : K) * ldb * step;
  int64_t rsa = ta ? 1 : lda, csa = ta ? lda : 1;
  /* sparse: every other element of every other line */
  int64_t rsb = (tb ? 1 : ldb) * step, csb = (tb ? ldb : 1) * step;
  float *a = slot_buffer(SLOT_A, sizeof(float) * (size_t)a_n);
  uint16_t *b16 = slot_buffer(SLOT_B16, sizeof(uint16_t) * (size_t)b_n);
  float *b32 = slot_buffer(SLOT_B32, sizeof(float) * (size_t)b_n);
  float *c = slot_buffer(SLOT_C, sizeof(float) * (size_t)(M * ldc));
  float *ref = slot_buffer(SLOT_REF, sizeof(float) * (size_t)(M * ldc));
  float *con = slot_buffer(SLOT_CON, sizeof(float) * (size_t)(M * ldc));
  for (int64_t i = 0; i < a_n; i++)
    a[i] = rnd_unit();
  fill_w16(b16, b_n, t->fmt, t->specials);
  if (t->fmt == MC_W16_F16)
    mc_f16_to_f32_n(b16, b32, b_n);
  else
    mc_bf16_to_f32_n(b16, b32, b_n);
  for (int64_t i = 0; i < M * ldc; i++)
    c[i] = ref[i] = con[i] = rnd_unit();
  int fused = strcmp(mc_gemm_kernel_name(), "portable") != 0;
  int small = M * N * K <= 200000;
  const uint16_t *p16 = pack16(K, N, b32, rsb, csb, t->fmt);
  float *pc = slot_buffer(SLOT_PC, sizeof(float) * (size_t)(M * ldc));
  memcpy(pc, c, sizeof(float) * (size_t)(M * ldc));
  for (int accumulate = 0; accumulate < 2; accumulate++) {
    mc_gemm_f32_w16(M, N, K, a, rsa, csa, b16, rsb, csb, t->fmt, c, ldc,
                    accumulate);
    mc_gemm_f32_w16_packed(M, N, K, a, rsa, csa, p16, t->fmt, pc, ldc,
                           accumulate);
    mc_gemm_f32(M, N, K, a, rsa, csa, b32, rsb, csb, ref, ldc, accumulate);
    if (small)
      gemm_contract(fused, M, N, K, a, rsa, csa, b32, rsb, csb, con, ldc,
                    accumulate);
    for (int64_t i = 0; i < M * ldc; i++) {
      if (bits_of(pc[i]) != bits_of(ref[i]) && !(isnan(pc[i]) && isnan(ref[i])))
        cr_assert_fail(
            "%s, kernel %s, %d threads, %s: M %lld N %lld K %lld "
            "accumulate %d: packed C[%lld][%lld] = %a, f32 GEMM %a",
            t->fmt == MC_W16_F16 ? "f16" : "bf16", mc_gemm_kernel_name(),
            mc_get_threads(), mc_half_f16c() ? "F16C" : "no F16C", (long long)M,
            (long long)N, (long long)K, accumulate, (long long)(i / ldc),
            (long long)(i % ldc), (double)pc[i], (double)ref[i]);
      if (bits_of(c[i]) != bits_of(ref[i]) ||
          (small && bits_of(c[i]) != bits_of(con[i]) &&
           !(isnan(c[i]) && isnan(con[i]))))
        cr_assert_fail(
            "%s, kernel %s, %d threads, %s: M %lld N %lld K %lld layout %d, "
            "accumulate %d: C[%lld][%lld] = %a (%08x), f32 GEMM %a (%08x), "
            "contract %a",
            t->fmt == MC_W16_F16 ? "f16" : "bf16", mc_gemm_kernel_name(),
            mc_get_threads(), mc_half_f16c() ? "F16C" : "no F16C", (long long)M,
            (long long)N, (long long)K, t->layout, accumulate,
            (long long)(i / ldc), (long long)(i % ldc), (double)c[i],
            bits_of(c[i]), (double)ref[i], bits_of(ref[i]),
            small ? (double)con[i] : 0.0);
    }
  }
}

/* Every kernel, 1 and 3 threads (or only 3), F16C on and off, both
 * formats. */
static void for_every_setup_from(int first_threads, void (*fn)(int fmt)) {
  for (int k = 0; k < KERNEL_COUNT; k++) {
    if (!use_kernel(k))
      continue;
    for (int threads = first_threads; threads <= 3; threads += 2)
      for (int simd = 1; simd >= 0; simd--) {
        mc_set_threads(threads);
        mc_half_use_simd(simd);
        fn(MC_W16_F16);
        fn(MC_W16_BF16);
      }
  }
  mc_half_use_simd(1);
}

static void for_every_setup(void (*fn)(int fmt)) {
  for_every_setup_from(1, fn);
}

static void shapes_sweep(int fmt) {
  static const int64_t ms[] = {1, 2, 3, 4, 5, 13, 64};
  /* N: below, at and past the vector widths (8, 16), the GEMV chunks (16,
   * 32, 64, 128) and the tiles (8, 16, 32); K: GEMV_KB = 16 edges */
  static const int64_t nk[][2] = {{1, 1},    {7, 9},   {31, 16},  {33, 17},
                                  {100, 33}, {129, 5}, {130, 47}, {257, 20}};
  for (int m = 0; m < 7; m++)
    for (int s = 0; s < 8; s++)
      for (int layout = 0; layout < 4; layout++) {
        Case t = {ms[m], nk[s][0], nk[s][1], layout, fmt, 0};
        check_case(&t);
      }
}

Test(gemm16, shapes_layouts_kernels_threads) {
  for_every_setup(shapes_sweep);
}

static void check_cases(const Case *cases, size_t n, int fmt) {
  for (size_t i = 0; i < n; i++) {
    Case t = cases[i];
    t.fmt = fmt;
    check_case(&t);
  }
}

/* Past the GEMV buffer blocks (rows: 16 x 512, columns: 32 x 256), GEMM
 * blocks (K 384, N 512), and B with neither stride 1. */
static void big_and_odd(int fmt) {
  static const Case cases[] = {
      {1, 1100, 40, 0, 0, 0}, {1, 300, 600, 2, 0, 0}, {3, 700, 70, 0, 0, 0},
      {4, 90, 530, 2, 0, 0},  {1, 515, 385, 1, 0, 0}, {2, 515, 385, 3, 0, 0},
      {5, 530, 390, 0, 0, 0}, {64, 77, 390, 2, 0, 0}, {13, 40, 30, 4, 0, 0},
      {2, 37, 19, 6, 0, 0},   {70, 33, 20, 5, 0, 0},  {1, 64, 3, 4, 0, 0},
  };
  check_cases(cases, sizeof cases / sizeof cases[0], fmt);
}

Test(gemm16, big_and_odd_shapes) {
  for_every_setup(big_and_odd);
}

/* Enough work to be split over 3 threads: GEMV column chunks (64 columns
 * apart, so that each thread has a tail past its whole vectors), GEMM row
 * tiles and column panels. */
static void split_over_threads(int fmt) {
  static const Case cases[] = {
      {1, 5000, 600, 0, 0, 0}, {4, 3000, 300, 0, 0, 0}, {1, 3001, 700, 2, 0, 0},
      {64, 77, 390, 1, 0, 0},  {64, 600, 200, 2, 0, 0},
  };
  check_cases(cases, sizeof cases / sizeof cases[0], fmt);
}

Test(gemm16, split_over_threads) {
  for_every_setup_from(3, split_over_threads);
}

/* Subnormals, zeros, infinities and NaNs (quiet and signalling) in B. */
static void special_values(int fmt) {
  static const int64_t ms[] = {1, 3, 4, 5, 13};
  for (int m = 0; m < 5; m++)
    for (int layout = 0; layout < 4; layout++) {
      Case t = {ms[m], 150, 37, layout, fmt, 1};
      check_case(&t);
    }
}

Test(gemm16, special_values_in_b) {
  for_every_setup(special_values);
}

Test(gemm16, empty_dimensions_and_bad_format) {
  for (int k = 0; k < KERNEL_COUNT; k++) {
    if (!use_kernel(k))
      continue;
    float a[4] = {1, 2, 3, 4}, c[4] = {9, 9, 9, 9};
    uint16_t b[4] = {0x3c00, 0x4000, 0x4200, 0x4400};
    mc_gemm_f32_w16(0, 2, 2, a, 2, 1, b, 2, 1, MC_W16_F16, c, 2, 0);
    mc_gemm_f32_w16(2, 0, 2, a, 2, 1, b, 2, 1, MC_W16_F16, c, 2, 0);
    mc_gemm_f32_w16(2, 2, 0, a, 2, 1, b, 2, 1, MC_W16_BF16, c, 2, 1);
    mc_gemm_f32_w16(2, 2, 2, a, 2, 1, b, 2, 1, 0, c, 2, 0); /* no format */
    mc_gemm_f32_w16(2, 2, 2, a, 2, 1, b, 2, 1, 3, c, 2, 0);
    for (int i = 0; i < 4; i++)
      cr_assert_eq(c[i], 9.0f);
    mc_gemm_f32_w16(2, 2, 0, a, 2, 1, b, 2, 1, MC_W16_F16, c, 2, 0);
    for (int i = 0; i < 4; i++)
      cr_assert(c[i] == 0.0f && !signbit(c[i]));
    /* [1 2; 3 4] [1 2; 3 4] (f16 1, 2, 3, 4) */
    mc_gemm_f32_w16(2, 2, 2, a, 2, 1, b, 2, 1, MC_W16_F16, c, 2, 0);
    cr_assert(c[0] == 7 && c[1] == 10 && c[2] == 15 && c[3] == 22);
  }
}
