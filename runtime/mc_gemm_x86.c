/* The x86-64 kernels of the f32 GEMM: AVX2+FMA and AVX-512F, written with
 * intrinsics in functions compiled for those instruction sets (the rest of
 * the program keeps the baseline ISA; mc_gemm.c runs these only on a CPU
 * that has them).
 *
 * Every product is fused into its accumulator (vfmadd, one rounding) in
 * increasing k, as mc_gemm.c's contract requires of an fma kernel. The GEMV
 * routines vectorize across columns of C, never across k, and their edges
 * use masked loads and stores rather than scalar code, so every element
 * sees the same operations. Per instruction set (W = 16 or 8 lanes):
 *
 *   tile       AVX-512 14 x 32 (28 of the 32 registers accumulate),
 *              AVX2 6 x 16 (12 of 16)
 *   gemv_rows  row-major B: 2W columns of 4 rows of C stay in registers
 *              while GEMV_KB rows of B stream by, each prefetched ahead
 *   gemv_rows16  the same for a 16-bit B (mc_gemm_f32_w16), converted in
 *              registers (f16: vcvtph2ps, bf16: a shift), and for one row
 *              of C 8W columns of it instead of 4 copies of the row
 *   gemv_cols  B's columns contiguous: W columns by W values of k, loaded
 *              as rows and transposed in registers
 *   pack_a/b   row-major A and transposed B packed through the same W x W
 *              transpose; row-major B copied
 *
 * Code size matters (the whole runtime is meant to stay small): the
 * transpose lives in one function per instruction set, the GEMV routines
 * compute 4 rows (rows past M repeat the last one; on AVX-512, M == 1 has
 * its own loop, which doubles the 16-bit one's speed where it is not bound
 * by memory), AVX-512's gemv_rows and gemv_rows16 are one inline function,
 * and f16 and bf16 share a loop (the format is a predictable branch). The
 * 16-bit routines do whole vectors only; mc_gemm.c does the edge columns.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "mc_gemm_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#define X86_AVX2 __attribute__((target("avx2,fma")))
#define X86_AVX512 __attribute__((target("avx512f,avx2,fma")))
#define X86_AVX2_F16C __attribute__((target("avx2,fma,f16c")))
#define X86_INLINE static inline __attribute__((always_inline))
#define X86_NOINLINE static __attribute__((noinline))

#define GEMV_KB 16  /* rows of B per pass over the columns */
#define GEMV_ROWS 4 /* rows of C the GEMV routines compute (MC_GEMV_MAX_M) */
/* gemv_rows: the hardware prefetchers do not keep up with GEMV_KB rows of
 * B streaming at once; each row is prefetched this many bytes ahead. The
 * rows of a panel (256 bytes or less) follow each other in memory, one
 * stream: there the prefetch runs GEMV_PANEL_AHEAD bytes ahead of the
 * loads (the 16-bit GEMV on 128-column panels: 34 -> 45 GB/s at 2 threads
 * with 4 KB; 8 KB rather than 2 KB (f32) or 4 KB (16-bit): 48 layer GEMVs
 * of GPT-2 3-8% faster at 1 and 2 threads, both alternated in one
 * process; 16 KB no better). */
#define GEMV_PREFETCH 512
#define GEMV_PANEL_AHEAD 8192
#define GEMV_AHEAD(row_bytes)                                                  \
  ((row_bytes) <= 256 ? GEMV_PANEL_AHEAD : GEMV_PREFETCH)

/* Row m of A and C for the GEMV routines; rows past M repeat row M - 1,
 * which computes and stores the same floats again (one code path for
 * every M, at the price of redundant arithmetic in a memory-bound loop). */
static void gemv_rows_of(const McGemmArgs *g, const float *a[GEMV_ROWS],
                         float *c[GEMV_ROWS]) {
  for (int m = 0; m < GEMV_ROWS; m++) {
    int64_t row = m < g->M ? m : g->M - 1;
    a[m] = g->A + row * g->rsa;
    c[m] = g->C + row * g->ldc;
  }
}

/* ---- AVX-512 ------------------------------------------------------------- */
#define A512_MR 14
#define A512_NR 32

/* The register tile for `rows` (a constant once inlined) of A512_MR rows:
 * the full tile, and the short ones a GEMM's last rows take (M = 32 is two
 * full tiles and 4 rows, which a full tile would compute 14 of). */
X86_INLINE X86_AVX512 void tile_rows_avx512(int rows, int64_t kc,
                                            const float *restrict ap,
                                            const float *restrict bp,
                                            int64_t ldb, float *restrict c,
                                            int64_t ldc, int load_c) {
  __m512 c0[A512_MR], c1[A512_MR];
  if (load_c) {
#pragma GCC unroll 14
    for (int i = 0; i < rows; i++) {
      c0[i] = _mm512_loadu_ps(c + i * ldc);
      c1[i] = _mm512_loadu_ps(c + i * ldc + 16);
    }
  } else {
#pragma GCC unroll 14
    for (int i = 0; i < rows; i++)
      c0[i] = c1[i] = _mm512_set1_ps(-0.0f);
  }
  for (int64_t k = 0; k < kc; k++) {
    __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16);
    /* B comes from L2 (packed) or memory (read in place): 8 rows ahead */
    _mm_prefetch((const char *)(bp + 8 * ldb), _MM_HINT_T0);
    _mm_prefetch((const char *)(bp + 8 * ldb + 16), _MM_HINT_T0);
#pragma GCC unroll 14
    for (int i = 0; i < rows; i++) {
      __m512 a = _mm512_set1_ps(ap[i]);
      c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
    }
    ap += A512_MR;
    bp += ldb;
  }
#pragma GCC unroll 14
  for (int i = 0; i < rows; i++) {
    _mm512_storeu_ps(c + i * ldc, c0[i]);
    _mm512_storeu_ps(c + i * ldc + 16, c1[i]);
  }
}

X86_AVX512 static void tile_avx512(int64_t kc, const float *restrict ap,
                                   const float *restrict bp, int64_t ldb,
                                   float *restrict c, int64_t ldc, int load_c) {
  tile_rows_avx512(A512_MR, kc, ap, bp, ldb, c, ldc, load_c);
}

X86_AVX512 static int tile_short_avx512(int rows, int64_t kc,
                                        const float *restrict ap,
                                        const float *restrict bp, int64_t ldb,
                                        float *restrict c, int64_t ldc,
                                        int load_c) {
  if (rows <= 4)
    tile_rows_avx512(4, kc, ap, bp, ldb, c, ldc, load_c);
  else if (rows <= 8)
    tile_rows_avx512(8, kc, ap, bp, ldb, c, ldc, load_c);
  else
    return 0;
  return 1;
}

/* The first n lanes. */
X86_INLINE X86_AVX512 __mmask16 mask16(int64_t n) {
  return n >= 16  ? (__mmask16)0xFFFF
         : n <= 0 ? (__mmask16)0
                  : (__mmask16)((1u << n) - 1);
}

/* dst[q * ldd + i] = src[i * lds + q] for q < cols, i < 16, where rows
 * i >= `rows` read as zero (and are not touched); of each destination row
 * only the `lanes` lanes are stored. */
X86_NOINLINE X86_AVX512 void transpose16(const float *src, int64_t lds,
                                         int64_t rows, int64_t cols, float *dst,
                                         int64_t ldd, __mmask16 lanes) {
  __mmask16 cmask = mask16(cols);
  __m512 r[16], t[16], u[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; i++)
    r[i] = _mm512_maskz_loadu_ps(i < rows ? cmask : 0,
                                 src + (i < rows ? i : 0) * lds);
#pragma GCC unroll 8
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  /* u[4p + q]: in each 128-bit lane L, rows 4p..4p+3 of column 4L + q */
#pragma GCC unroll 4
  for (int p = 0; p < 4; p++) {
    u[4 * p + 0] = _mm512_shuffle_ps(t[4 * p], t[4 * p + 2], 0x44);
    u[4 * p + 1] = _mm512_shuffle_ps(t[4 * p], t[4 * p + 2], 0xEE);
    u[4 * p + 2] = _mm512_shuffle_ps(t[4 * p + 1], t[4 * p + 3], 0x44);
    u[4 * p + 3] = _mm512_shuffle_ps(t[4 * p + 1], t[4 * p + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (int q = 0; q < 4; q++) {
    __m512 v0 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0x88);
    __m512 v1 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0xDD);
    __m512 v2 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0x88);
    __m512 v3 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0xDD);
    r[q] = _mm512_shuffle_f32x4(v0, v2, 0x88);
    r[q + 8] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
    r[q + 4] = _mm512_shuffle_f32x4(v1, v3, 0x88);
    r[q + 12] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
  }
#pragma GCC unroll 16
  for (int q = 0; q < 16; q++)
    if (q < cols)
      _mm512_mask_storeu_ps(dst + q * ldd, lanes, r[q]);
}

/* 16 values of a row of B at p, as floats: f32 (w16 == 0; the lanes in
 * mask) or 16-bit of format fmt converted in registers (all 16; f16 by
 * vcvtph2ps, bf16 zero extended and shifted into the top half). */
X86_INLINE X86_AVX512 __m512 load_b_avx512(const char *p, __mmask16 mask,
                                           int w16, int fmt) {
  if (!w16)
    return _mm512_maskz_loadu_ps(mask, p);
  __m256i h = _mm256_loadu_si256((const __m256i *)p);
  if (fmt == MC_W16_F16)
    return _mm512_cvtph_ps(h);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* gemv_rows, for w16, rows and nv constants: w16 == 0 is an f32 B (g->B,
 * masked loads at the edge), else a 16-bit one (g->B16 in format g->fmt,
 * whole chunks only: j1 - j0 a multiple of the chunk). rows is GEMV_ROWS,
 * or 1 for M == 1; nv vectors of columns per pass: 2 (32 columns, an f32
 * panel's), or 8 for one row of a 16-bit B (its 128-column panels). One
 * row of f32 no longer repeats the row 4 times: 5-9% faster where memory
 * bound (48 layer GEMVs of GPT-2, one thread, the same process). */
X86_INLINE X86_AVX512 void gemv_rows_fmt_avx512(const McGemmArgs *g, int64_t j0,
                                                int64_t j1, int w16, int rows,
                                                int nv) {
  enum { ACC = 2 * GEMV_ROWS };
  const int width = 16 * nv; /* columns per row */
  const float *a[GEMV_ROWS];
  float *c[GEMV_ROWS];
  gemv_rows_of(g, a, c);
  const int64_t size = w16 ? 2 : 4; /* bytes per value of B */
  const char *B = w16 ? (const char *)g->B16 : (const char *)g->B;
  const int fmt = g->fmt;
  const int64_t ahead = GEMV_AHEAD(g->rsb * size);
  for (int64_t kb = 0; kb < g->K; kb += GEMV_KB) {
    int64_t ke = g->K - kb < GEMV_KB ? g->K : kb + GEMV_KB;
    int fresh = kb == 0 && !g->accumulate;
    for (int64_t j = j0; j < j1; j += width) {
      __mmask16 mask[ACC];
      __m512 acc[ACC], b[ACC];
#pragma GCC unroll 8
      for (int v = 0; v < nv; v++)
        mask[v] = mask16(j1 - j - 16 * v);
#pragma GCC unroll 8
      for (int x = 0; x < rows * nv; x++)
        acc[x] = fresh ? _mm512_set1_ps(-0.0f)
                       : _mm512_maskz_loadu_ps(mask[x % nv],
                                               c[x / nv] + j + x % nv * 16);
      for (int64_t k = kb; k < ke; k++) {
        const char *bk = B + (k * g->rsb + j) * size;
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++) {
          b[v] = load_b_avx512(bk + 16 * v * size, mask[v], w16, fmt);
          if (16 * v * size % 64 == 0) /* a line of B, a chunk or two on */
            _mm_prefetch(bk + 16 * v * size + ahead, _MM_HINT_T0);
        }
#pragma GCC unroll 4
        for (int m = 0; m < rows; m++) {
          __m512 am = _mm512_set1_ps(a[m][k * g->csa]);
#pragma GCC unroll 8
          for (int v = 0; v < nv; v++)
            acc[m * nv + v] = _mm512_fmadd_ps(am, b[v], acc[m * nv + v]);
        }
      }
#pragma GCC unroll 8
      for (int x = 0; x < rows * nv; x++)
        _mm512_mask_storeu_ps(c[x / nv] + j + x % nv * 16, mask[x % nv],
                              acc[x]);
    }
  }
}

X86_AVX512 static void gemv_rows_avx512(const McGemmArgs *g, int64_t j0,
                                        int64_t j1) {
  if (g->M == 1) /* 32 columns, a panel's, of the one row */
    gemv_rows_fmt_avx512(g, j0, j1, 0, 1, 2);
  else
    gemv_rows_fmt_avx512(g, j0, j1, 0, GEMV_ROWS, 2);
}

/* Whole chunks: 128 columns for one row, else 32. */
X86_AVX512 static int64_t gemv_rows16_avx512(const McGemmArgs *g, int64_t j0,
                                             int64_t j1) {
  int one = g->M == 1;
  int64_t end = j0 + (j1 - j0) / (one ? 128 : 32) * (one ? 128 : 32);
  if (one)
    gemv_rows_fmt_avx512(g, j0, end, 1, 1, 8);
  else
    gemv_rows_fmt_avx512(g, j0, end, 1, GEMV_ROWS, 2);
  return end;
}

X86_AVX512 static void gemv_cols_avx512(const McGemmArgs *g, int64_t j0,
                                        int64_t j1) {
  const float *a[GEMV_ROWS];
  float *c[GEMV_ROWS];
  _Alignas(64) float t[16 * 16];
  gemv_rows_of(g, a, c);
  for (int64_t j = j0; j < j1; j += 16) {
    int64_t nj = j1 - j < 16 ? j1 - j : 16;
    __mmask16 jmask = mask16(nj);
    __m512 acc[GEMV_ROWS];
#pragma GCC unroll 4
    for (int m = 0; m < GEMV_ROWS; m++)
      acc[m] = g->accumulate ? _mm512_maskz_loadu_ps(jmask, c[m] + j)
                             : _mm512_set1_ps(-0.0f);
    for (int64_t k = 0; k < g->K; k += 16) {
      int64_t kt = g->K - k < 16 ? g->K - k : 16;
      transpose16(g->B + j * g->csb + k, g->csb, nj, kt, t, 16, 0xFFFF);
      for (int64_t kk = 0; kk < kt; kk++) {
        __m512 bk = _mm512_load_ps(t + 16 * kk);
#pragma GCC unroll 4
        for (int m = 0; m < GEMV_ROWS; m++)
          acc[m] = _mm512_fmadd_ps(_mm512_set1_ps(a[m][(k + kk) * g->csa]), bk,
                                   acc[m]);
      }
    }
#pragma GCC unroll 4
    for (int m = 0; m < GEMV_ROWS; m++)
      _mm512_mask_storeu_ps(c[m] + j, jmask, acc[m]);
  }
}

/* Row-major A: 16 k values of each of 14 rows at a time, transposed. */
X86_AVX512 static int pack_a_avx512(int64_t mc, int64_t kc, const float *A,
                                    int64_t rsa, int64_t csa, float *ap) {
  if (csa != 1)
    return 0;
  for (int64_t i = 0; i < mc; i += A512_MR, ap += kc * A512_MR)
    for (int64_t k = 0; k < kc; k += 16)
      transpose16(A + i * rsa + k, rsa, mc - i < A512_MR ? mc - i : A512_MR,
                  kc - k < 16 ? kc - k : 16, ap + k * A512_MR, A512_MR,
                  mask16(A512_MR));
  return 1;
}

/* Row-major B: copies; B's columns contiguous: transposed 16 x 16 blocks,
 * up to whole panels (the columns past nc read as zeros). */
X86_AVX512 static int pack_b_avx512(int64_t kc, int64_t nc, const float *B,
                                    int64_t rsb, int64_t csb, float *bp) {
  if (csb == 1) {
    for (int64_t j = 0; j < nc; j += A512_NR, bp += kc * A512_NR) {
      __mmask16 m0 = mask16(nc - j), m1 = mask16(nc - j - 16);
      for (int64_t k = 0; k < kc; k++) {
        const float *b = B + k * rsb + j;
        _mm512_storeu_ps(bp + k * A512_NR, _mm512_maskz_loadu_ps(m0, b));
        _mm512_storeu_ps(bp + k * A512_NR + 16,
                         _mm512_maskz_loadu_ps(m1, b + 16));
      }
    }
    return 1;
  }
  if (rsb != 1)
    return 0;
  for (int64_t j = 0; j < (nc + A512_NR - 1) / A512_NR * A512_NR; j += 16) {
    int64_t cols = nc - j < 0 ? 0 : nc - j < 16 ? nc - j : 16;
    float *panel = bp + j / A512_NR * kc * A512_NR + j % A512_NR;
    for (int64_t k = 0; k < kc; k += 16)
      transpose16(B + (cols ? j : 0) * csb + k, csb, cols,
                  kc - k < 16 ? kc - k : 16, panel + k * A512_NR, A512_NR,
                  0xFFFF);
  }
  return 1;
}

static const McGemmKernel avx512_kernel = {.name = "avx512",
                                           .fma = 1,
                                           .mr = A512_MR,
                                           .nr = A512_NR,
                                           .tile = tile_avx512,
                                           .tile_short = tile_short_avx512,
                                           .short_heights = 1u << 4 | 1u << 8,
                                           .gemv_rows = gemv_rows_avx512,
                                           .gemv_cols = gemv_cols_avx512,
                                           .gemv_rows16 = gemv_rows16_avx512,
                                           .pack_a = pack_a_avx512,
                                           .pack_b = pack_b_avx512};

/* ---- AVX2 ---------------------------------------------------------------- */
#define A256_MR 6
#define A256_NR 16

X86_AVX2 static void tile_avx2(int64_t kc, const float *restrict ap,
                               const float *restrict bp, int64_t ldb,
                               float *restrict c, int64_t ldc, int load_c) {
  __m256 c0[A256_MR], c1[A256_MR];
  if (load_c) {
#pragma GCC unroll 6
    for (int i = 0; i < A256_MR; i++) {
      c0[i] = _mm256_loadu_ps(c + i * ldc);
      c1[i] = _mm256_loadu_ps(c + i * ldc + 8);
    }
  } else {
#pragma GCC unroll 6
    for (int i = 0; i < A256_MR; i++)
      c0[i] = c1[i] = _mm256_set1_ps(-0.0f);
  }
  for (int64_t k = 0; k < kc; k++) {
    __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
    _mm_prefetch((const char *)(bp + 8 * ldb), _MM_HINT_T0);
#pragma GCC unroll 6
    for (int i = 0; i < A256_MR; i++) {
      __m256 a = _mm256_broadcast_ss(ap + i);
      c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);
    }
    ap += A256_MR;
    bp += ldb;
  }
#pragma GCC unroll 6
  for (int i = 0; i < A256_MR; i++) {
    _mm256_storeu_ps(c + i * ldc, c0[i]);
    _mm256_storeu_ps(c + i * ldc + 8, c1[i]);
  }
}

/* The first n lanes, as a maskload/maskstore mask. */
X86_INLINE X86_AVX2 __m256i mask8(int64_t n) {
  __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  int clamped = n < 0 ? 0 : n > 8 ? 8 : (int)n;
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(clamped), lane);
}

/* transpose16 for 8 x 8 blocks; `lanes` is a count. */
X86_NOINLINE X86_AVX2 void transpose8(const float *src, int64_t lds,
                                      int64_t rows, int64_t cols, float *dst,
                                      int64_t ldd, int lanes) {
  __m256i cmask = mask8(cols), none = _mm256_setzero_si256();
  __m256i store = mask8(lanes);
  __m256 r[8], t[8], u[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; i++)
    r[i] = _mm256_maskload_ps(src + (i < rows ? i : 0) * lds,
                              i < rows ? cmask : none);
#pragma GCC unroll 4
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
#pragma GCC unroll 2
  for (int p = 0; p < 2; p++) {
    u[4 * p + 0] = _mm256_shuffle_ps(t[4 * p], t[4 * p + 2], 0x44);
    u[4 * p + 1] = _mm256_shuffle_ps(t[4 * p], t[4 * p + 2], 0xEE);
    u[4 * p + 2] = _mm256_shuffle_ps(t[4 * p + 1], t[4 * p + 3], 0x44);
    u[4 * p + 3] = _mm256_shuffle_ps(t[4 * p + 1], t[4 * p + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (int q = 0; q < 4; q++) {
    r[q] = _mm256_permute2f128_ps(u[q], u[4 + q], 0x20);
    r[q + 4] = _mm256_permute2f128_ps(u[q], u[4 + q], 0x31);
  }
#pragma GCC unroll 8
  for (int q = 0; q < 8; q++)
    if (q < cols)
      _mm256_maskstore_ps(dst + q * ldd, store, r[q]);
}

X86_AVX2 static void gemv_rows_avx2(const McGemmArgs *g, int64_t j0,
                                    int64_t j1) {
  const float *a[GEMV_ROWS];
  float *c[GEMV_ROWS];
  const int64_t ahead = GEMV_AHEAD(g->rsb * 4);
  gemv_rows_of(g, a, c);
  for (int64_t kb = 0; kb < g->K; kb += GEMV_KB) {
    int64_t ke = g->K - kb < GEMV_KB ? g->K : kb + GEMV_KB;
    int fresh = kb == 0 && !g->accumulate;
    for (int64_t j = j0; j < j1; j += 16) {
      __m256i mask[2] = {mask8(j1 - j), mask8(j1 - j - 8)};
      __m256 acc[GEMV_ROWS][2];
#pragma GCC unroll 4
      for (int m = 0; m < GEMV_ROWS; m++)
#pragma GCC unroll 2
        for (int v = 0; v < 2; v++)
          acc[m][v] = fresh ? _mm256_set1_ps(-0.0f)
                            : _mm256_maskload_ps(c[m] + j + 8 * v, mask[v]);
      for (int64_t k = kb; k < ke; k++) {
        const float *b = g->B + k * g->rsb + j;
        __m256 b0 = _mm256_maskload_ps(b, mask[0]);
        __m256 b1 = _mm256_maskload_ps(b + 8, mask[1]);
        _mm_prefetch((const char *)b + ahead, _MM_HINT_T0);
#pragma GCC unroll 4
        for (int m = 0; m < GEMV_ROWS; m++) {
          __m256 am = _mm256_broadcast_ss(a[m] + k * g->csa);
          acc[m][0] = _mm256_fmadd_ps(am, b0, acc[m][0]);
          acc[m][1] = _mm256_fmadd_ps(am, b1, acc[m][1]);
        }
      }
#pragma GCC unroll 4
      for (int m = 0; m < GEMV_ROWS; m++)
#pragma GCC unroll 2
        for (int v = 0; v < 2; v++)
          _mm256_maskstore_ps(c[m] + j + 8 * v, mask[v], acc[m][v]);
    }
  }
}

/* gemv_rows_fmt_avx512 for AVX2 and a 16-bit B, 8 floats per vector
 * (whole chunks of 64 columns for one row, else 16). Apart from the f32
 * gemv_rows_avx2 because it needs F16C (so it runs only on CPUs that have
 * it, see mc_half_f16c), which that one must not: an always-inline
 * function compiled for F16C cannot be inlined into one that is not. */
X86_INLINE X86_AVX2_F16C void
gemv_rows16_fmt_avx2(const McGemmArgs *g, int64_t j0, int64_t j1, int rows) {
  enum { ACC = 2 * GEMV_ROWS };
  const int fmt = g->fmt;
  const int nv = ACC / rows, width = 8 * nv;
  const float *a[GEMV_ROWS];
  float *c[GEMV_ROWS];
  const int64_t ahead = GEMV_AHEAD(g->rsb * 2);
  gemv_rows_of(g, a, c);
  for (int64_t kb = 0; kb < g->K; kb += GEMV_KB) {
    int64_t ke = g->K - kb < GEMV_KB ? g->K : kb + GEMV_KB;
    int fresh = kb == 0 && !g->accumulate;
    for (int64_t j = j0; j < j1; j += width) {
      __m256 acc[ACC];
#pragma GCC unroll 8
      for (int x = 0; x < ACC; x++)
        acc[x] = fresh ? _mm256_set1_ps(-0.0f)
                       : _mm256_loadu_ps(c[x / nv] + j + x % nv * 8);
      for (int64_t k = kb; k < ke; k++) {
        const uint16_t *bk = g->B16 + k * g->rsb + j;
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++) {
          __m128i h = _mm_loadu_si128((const __m128i *)(bk + 8 * v));
          __m256 b = fmt == MC_W16_F16 ? _mm256_cvtph_ps(h)
                                       : _mm256_castsi256_ps(_mm256_slli_epi32(
                                             _mm256_cvtepu16_epi32(h), 16));
          if (v % 4 == 0)
            _mm_prefetch((const char *)(bk + 8 * v) + ahead, _MM_HINT_T0);
#pragma GCC unroll 4
          for (int m = 0; m < rows; m++)
            acc[m * nv + v] = _mm256_fmadd_ps(
                _mm256_broadcast_ss(a[m] + k * g->csa), b, acc[m * nv + v]);
        }
      }
#pragma GCC unroll 8
      for (int x = 0; x < ACC; x++)
        _mm256_storeu_ps(c[x / nv] + j + x % nv * 8, acc[x]);
    }
  }
}

X86_AVX2_F16C static int64_t gemv_rows16_avx2(const McGemmArgs *g, int64_t j0,
                                              int64_t j1) {
  int one = g->M == 1;
  int64_t end = j0 + (j1 - j0) / (one ? 64 : 16) * (one ? 64 : 16);
  if (one)
    gemv_rows16_fmt_avx2(g, j0, end, 1);
  else
    gemv_rows16_fmt_avx2(g, j0, end, GEMV_ROWS);
  return end;
}

X86_AVX2 static void gemv_cols_avx2(const McGemmArgs *g, int64_t j0,
                                    int64_t j1) {
  const float *a[GEMV_ROWS];
  float *c[GEMV_ROWS];
  _Alignas(32) float t[8 * 8];
  gemv_rows_of(g, a, c);
  for (int64_t j = j0; j < j1; j += 8) {
    int64_t nj = j1 - j < 8 ? j1 - j : 8;
    __m256i jmask = mask8(nj);
    __m256 acc[GEMV_ROWS];
#pragma GCC unroll 4
    for (int m = 0; m < GEMV_ROWS; m++)
      acc[m] = g->accumulate ? _mm256_maskload_ps(c[m] + j, jmask)
                             : _mm256_set1_ps(-0.0f);
    for (int64_t k = 0; k < g->K; k += 8) {
      int64_t kt = g->K - k < 8 ? g->K - k : 8;
      transpose8(g->B + j * g->csb + k, g->csb, nj, kt, t, 8, 8);
      for (int64_t kk = 0; kk < kt; kk++) {
        __m256 bk = _mm256_load_ps(t + 8 * kk);
#pragma GCC unroll 4
        for (int m = 0; m < GEMV_ROWS; m++)
          acc[m] = _mm256_fmadd_ps(
              _mm256_broadcast_ss(a[m] + (k + kk) * g->csa), bk, acc[m]);
      }
    }
#pragma GCC unroll 4
    for (int m = 0; m < GEMV_ROWS; m++)
      _mm256_maskstore_ps(c[m] + j, jmask, acc[m]);
  }
}

X86_AVX2 static int pack_a_avx2(int64_t mc, int64_t kc, const float *A,
                                int64_t rsa, int64_t csa, float *ap) {
  if (csa != 1)
    return 0;
  for (int64_t i = 0; i < mc; i += A256_MR, ap += kc * A256_MR)
    for (int64_t k = 0; k < kc; k += 8)
      transpose8(A + i * rsa + k, rsa, mc - i < A256_MR ? mc - i : A256_MR,
                 kc - k < 8 ? kc - k : 8, ap + k * A256_MR, A256_MR, A256_MR);
  return 1;
}

X86_AVX2 static int pack_b_avx2(int64_t kc, int64_t nc, const float *B,
                                int64_t rsb, int64_t csb, float *bp) {
  if (csb == 1) {
    for (int64_t j = 0; j < nc; j += A256_NR, bp += kc * A256_NR) {
      __m256i m0 = mask8(nc - j), m1 = mask8(nc - j - 8);
      for (int64_t k = 0; k < kc; k++) {
        const float *b = B + k * rsb + j;
        _mm256_storeu_ps(bp + k * A256_NR, _mm256_maskload_ps(b, m0));
        _mm256_storeu_ps(bp + k * A256_NR + 8, _mm256_maskload_ps(b + 8, m1));
      }
    }
    return 1;
  }
  if (rsb != 1)
    return 0;
  for (int64_t j = 0; j < (nc + A256_NR - 1) / A256_NR * A256_NR; j += 8) {
    int64_t cols = nc - j < 0 ? 0 : nc - j < 8 ? nc - j : 8;
    float *panel = bp + j / A256_NR * kc * A256_NR + j % A256_NR;
    for (int64_t k = 0; k < kc; k += 8)
      transpose8(B + (cols ? j : 0) * csb + k, csb, cols,
                 kc - k < 8 ? kc - k : 8, panel + k * A256_NR, A256_NR, 8);
  }
  return 1;
}

static const McGemmKernel avx2_kernel = {.name = "avx2",
                                         .fma = 1,
                                         .mr = A256_MR,
                                         .nr = A256_NR,
                                         .tile = tile_avx2,
                                         .gemv_rows = gemv_rows_avx2,
                                         .gemv_cols = gemv_cols_avx2,
                                         .gemv_rows16 = gemv_rows16_avx2,
                                         .pack_a = pack_a_avx2,
                                         .pack_b = pack_b_avx2};

const McGemmKernel *const mc_gemm_avx2_kernel = &avx2_kernel;
const McGemmKernel *const mc_gemm_avx512_kernel = &avx512_kernel;

#else

const McGemmKernel *const mc_gemm_avx2_kernel = NULL;
const McGemmKernel *const mc_gemm_avx512_kernel = NULL;

#endif
