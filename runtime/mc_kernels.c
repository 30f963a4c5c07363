/* Portable kernels: GEMM and softmax in f32 and f64; a blocked,
 * register-tiled f32 GEMM.
 *
 * Invariants: no allocation, no global state; every output element of a GEMM
 * is C (or nothing) plus the products for k = 0, 1, ..., K-1 added in that
 * order, whatever the strides, so two calls with transposed layouts give the
 * same bits, and the blocked f32 GEMM gives the bits of the reference loops.
 * Blocked/SIMD kernels must keep that order (or be opt-in behind a fast-math
 * flag).
 *
 * The reference loops are written once as macros and instantiated for float
 * and double, so the two precisions cannot drift apart.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "mc_runtime.h"

#include <math.h>

/* The reference GEMM, and the f64 GEMM. Two loop orders, picked by B's
 * layout:
 *  - B rows contiguous (csb == 1): i-k-j, streaming a row of B into a row of
 *    C;
 *  - otherwise (e.g. B transposed, rsb == 1): i-j-k, a dot product per
 *    element.
 * Both add the k terms in increasing k. With accumulate == 0 the first
 * product initializes the sum (so -0 products survive, as in torch). */
#define MC_DEFINE_GEMM(LINKAGE, NAME, T)                                       \
  LINKAGE void NAME(int64_t M, int64_t N, int64_t K, const T *A, int64_t rsa,  \
                    int64_t csa, const T *B, int64_t rsb, int64_t csb, T *C,   \
                    int64_t ldc, int accumulate) {                             \
    if (M <= 0 || N <= 0)                                                      \
      return;                                                                  \
    if (K <= 0) {                                                              \
      if (!accumulate)                                                         \
        for (int64_t i = 0; i < M; i++)                                        \
          for (int64_t j = 0; j < N; j++)                                      \
            C[i * ldc + j] = 0;                                                \
      return;                                                                  \
    }                                                                          \
    if (csb == 1) {                                                            \
      for (int64_t i = 0; i < M; i++) {                                        \
        T *c = C + i * ldc;                                                    \
        const T *a = A + i * rsa;                                              \
        int64_t k0 = 0;                                                        \
        if (!accumulate) {                                                     \
          const T a0 = a[0], *b = B;                                           \
          for (int64_t j = 0; j < N; j++)                                      \
            c[j] = a0 * b[j];                                                  \
          k0 = 1;                                                              \
        }                                                                      \
        for (int64_t k = k0; k < K; k++) {                                     \
          const T ak = a[k * csa], *b = B + k * rsb;                           \
          for (int64_t j = 0; j < N; j++)                                      \
            c[j] += ak * b[j];                                                 \
        }                                                                      \
      }                                                                        \
    } else {                                                                   \
      for (int64_t i = 0; i < M; i++) {                                        \
        const T *a = A + i * rsa;                                              \
        for (int64_t j = 0; j < N; j++) {                                      \
          const T *b = B + j * csb;                                            \
          T s = accumulate ? C[i * ldc + j] + a[0] * b[0] : a[0] * b[0];       \
          for (int64_t k = 1; k < K; k++)                                      \
            s += a[k * csa] * b[k * rsb];                                      \
          C[i * ldc + j] = s;                                                  \
        }                                                                      \
      }                                                                        \
    }                                                                          \
  }

MC_DEFINE_GEMM(static, gemm_reference_f32, float)
MC_DEFINE_GEMM(, mc_gemm_f64, double)

/* ---- the blocked f32 GEMM ------------------------------------------------
 * Goto/BLIS structure, in plain C that gcc and clang vectorize at -O2:
 *
 *   for each block of GEMM_NC columns of C            (jc)
 *     for each block of GEMM_KC values of k, in order (pc)
 *       pack B[pc.., jc..] into bp: GEMM_NR-wide panels, k-major
 *       for each GEMM_MR rows of C                    (ic)
 *         pack A[ic.., pc..] into ap: GEMM_MR values per k
 *         for each GEMM_NR columns of the block       (jr)
 *           tile: acc[MR][NR] = C (or -0), acc += a[k] * b[k] for k in
 *           the block, in order; C = acc
 *
 * Exactness: every C element receives its products one at a time in
 * increasing k (within a tile the k loop is sequential, and the K blocks are
 * visited in order, each resuming from the float stored in C), each product
 * and sum rounded once, as in the reference loops. Starting from -0 instead
 * of the first product gives the same bits (-0 + x == x for every x,
 * including -0 and +0). Packing only copies, and zero padding only feeds
 * accumulators that are never stored. So the result is bit-identical to the
 * reference whatever the layout and whatever the block and tile sizes.
 *
 * 4 x 8 tiles: with SSE2 (the x86-64 baseline, no -march) that is 8 of the
 * 16 vector registers as accumulators. The packed blocks live on the stack
 * (GEMM_KC * GEMM_NC floats, 128 KB): no allocation. */
#define GEMM_MR 4
#define GEMM_NR 8
#define GEMM_KC 256
#define GEMM_NC 128
#define GEMM_DIRECT_M 32 /* at most this many rows: row-major B unpacked */

/* The tile's accumulators are named scalars, c<row><column>, listed by these
 * X-macros: compilers keep scalars in registers and pack them into vectors
 * (SLP), whereas a local array indexed in loops is kept in memory. */
#define GEMM_ROW(X, i)                                                         \
  X(i, 0) X(i, 1) X(i, 2) X(i, 3) X(i, 4) X(i, 5) X(i, 6) X(i, 7)
#define GEMM_TILE(X) GEMM_ROW(X, 0) GEMM_ROW(X, 1) GEMM_ROW(X, 2) GEMM_ROW(X, 3)
#define GEMM_DECLARE(i, j) float c##i##j;
#define GEMM_LOAD(i, j) c##i##j = c[i * ldc + j];
#define GEMM_ZERO(i, j) c##i##j = -0.0f;
#define GEMM_UPDATE(i, j) c##i##j += a[i] * b[j];
#define GEMM_STORE(i, j) c[i * ldc + j] = c##i##j;

/* C[MR x NR] = (load_c ? C : -0) + ap * bp over kc values of k, in order. */
static void gemm_tile_f32(int64_t kc, const float *restrict ap,
                          const float *restrict bp, int64_t ldb,
                          float *restrict c, int64_t ldc, int load_c) {
  GEMM_TILE(GEMM_DECLARE)
  if (load_c) {
    GEMM_TILE(GEMM_LOAD)
  } else {
    GEMM_TILE(GEMM_ZERO)
  }
  for (int64_t k = 0; k < kc; k++) {
    const float *a = ap + k * GEMM_MR, *b = bp + k * ldb;
    GEMM_TILE(GEMM_UPDATE)
  }
  GEMM_TILE(GEMM_STORE)
}

/* bp[(j / NR) * kc * NR + k * NR + j % NR] = B[k][j] for k < kc, j < nc,
 * zero beyond nc up to the next multiple of NR. */
static void gemm_pack_b_f32(int64_t kc, int64_t nc, const float *B, int64_t rsb,
                            int64_t csb, float *restrict bp) {
  for (int64_t jr = 0; jr < nc; jr += GEMM_NR) {
    int64_t nr = nc - jr < GEMM_NR ? nc - jr : GEMM_NR;
    float *p = bp + jr * kc;
    if (csb == 1 && nr == GEMM_NR) {
      for (int64_t k = 0; k < kc; k++)
        for (int j = 0; j < GEMM_NR; j++)
          p[k * GEMM_NR + j] = B[k * rsb + jr + j];
    } else {
      for (int64_t j = 0; j < GEMM_NR; j++) {
        const float *b = B + (jr + j) * csb;
        if (j < nr)
          for (int64_t k = 0; k < kc; k++)
            p[k * GEMM_NR + j] = b[k * rsb];
        else
          for (int64_t k = 0; k < kc; k++)
            p[k * GEMM_NR + j] = 0.0f;
      }
    }
  }
}

/* ap[k * MR + i] = A[i][k] for i < mr, k < kc, zero for mr <= i < MR. */
static void gemm_pack_a_f32(int64_t mr, int64_t kc, const float *A, int64_t rsa,
                            int64_t csa, float *restrict ap) {
  for (int64_t i = 0; i < GEMM_MR; i++) {
    const float *a = A + i * rsa;
    if (i < mr)
      for (int64_t k = 0; k < kc; k++)
        ap[k * GEMM_MR + i] = a[k * csa];
    else
      for (int64_t k = 0; k < kc; k++)
        ap[k * GEMM_MR + i] = 0.0f;
  }
}

void mc_gemm_f32(int64_t M, int64_t N, int64_t K, const float *A, int64_t rsa,
                 int64_t csa, const float *B, int64_t rsb, int64_t csb,
                 float *C, int64_t ldc, int accumulate) {
  /* Packing does not pay for a row vector times a row-major matrix, nor
   * for tiny products; the reference loops give the same bits. */
  if (M <= 0 || N <= 0 || K <= 0 || (M == 1 && csb == 1) ||
      (double)M * (double)N * (double)K < 4096) {
    gemm_reference_f32(M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, accumulate);
    return;
  }
  /* With few rows, packing B costs as much as using it: row-major B is
   * read in place, and only a partial panel at the right edge is packed. */
  int direct_b = csb == 1 && M <= GEMM_DIRECT_M;
  _Alignas(64) float bp[GEMM_KC * GEMM_NC];
  _Alignas(64) float ap[GEMM_MR * GEMM_KC];
  _Alignas(64) float edge[GEMM_MR * GEMM_NR];
  for (int64_t jc = 0; jc < N; jc += GEMM_NC) {
    int64_t nc = N - jc < GEMM_NC ? N - jc : GEMM_NC;
    int64_t packed_from = direct_b ? nc / GEMM_NR * GEMM_NR : 0;
    for (int64_t pc = 0; pc < K; pc += GEMM_KC) {
      int64_t kc = K - pc < GEMM_KC ? K - pc : GEMM_KC;
      int load_c = accumulate || pc > 0;
      gemm_pack_b_f32(kc, nc - packed_from,
                      B + pc * rsb + (jc + packed_from) * csb, rsb, csb,
                      bp + packed_from * kc);
      for (int64_t ic = 0; ic < M; ic += GEMM_MR) {
        int64_t mr = M - ic < GEMM_MR ? M - ic : GEMM_MR;
        gemm_pack_a_f32(mr, kc, A + ic * rsa + pc * csa, rsa, csa, ap);
        for (int64_t jr = 0; jr < nc; jr += GEMM_NR) {
          int64_t nr = nc - jr < GEMM_NR ? nc - jr : GEMM_NR;
          const float *b = bp + jr * kc;
          int64_t ldb = GEMM_NR;
          if (jr < packed_from) {
            b = B + pc * rsb + jc + jr;
            ldb = rsb;
          }
          float *c = C + ic * ldc + jc + jr;
          if (mr == GEMM_MR && nr == GEMM_NR) {
            gemm_tile_f32(kc, ap, b, ldb, c, ldc, load_c);
            continue;
          }
          /* A partial tile goes through a full one on the side. */
          for (int64_t i = 0; i < mr; i++)
            for (int64_t j = 0; j < nr; j++)
              edge[i * GEMM_NR + j] = load_c ? c[i * ldc + j] : -0.0f;
          gemm_tile_f32(kc, ap, b, ldb, edge, GEMM_NR, 1);
          for (int64_t i = 0; i < mr; i++)
            for (int64_t j = 0; j < nr; j++)
              c[i * ldc + j] = edge[i * GEMM_NR + j];
        }
      }
    }
  }
}

/* One pass for the max, one for the sum of exp(x - max), one to write. A row
 * that is all -inf has max -inf, so x - max is nan and the row becomes nan,
 * which is what torch returns. A nan anywhere makes the sum nan, and the row
 * nan, also as torch. Reads of x[j] precede the write of y[j]: y may be x. */
#define MC_DEFINE_SOFTMAX(NAME, T, EXP, LOG, LOGARITHMIC)                      \
  void NAME(const T *x, T *y, int64_t outer, int64_t n, int64_t inner) {       \
    if (outer <= 0 || n <= 0 || inner <= 0)                                    \
      return;                                                                  \
    for (int64_t o = 0; o < outer; o++)                                        \
      for (int64_t i = 0; i < inner; i++) {                                    \
        const T *xr = x + o * n * inner + i;                                   \
        T *yr = y + o * n * inner + i;                                         \
        T max = xr[0];                                                         \
        for (int64_t j = 1; j < n; j++)                                        \
          if (xr[j * inner] > max || xr[j * inner] != xr[j * inner])           \
            max = xr[j * inner];                                               \
        double sum = 0;                                                        \
        if (LOGARITHMIC) {                                                     \
          for (int64_t j = 0; j < n; j++)                                      \
            sum += EXP(xr[j * inner] - max);                                   \
          T logsum = (T)LOG(sum);                                              \
          for (int64_t j = 0; j < n; j++)                                      \
            yr[j * inner] = (xr[j * inner] - max) - logsum;                    \
        } else {                                                               \
          for (int64_t j = 0; j < n; j++) {                                    \
            T v = EXP(xr[j * inner] - max);                                    \
            yr[j * inner] = v;                                                 \
            sum += v;                                                          \
          }                                                                    \
          T inv = (T)(1.0 / sum);                                              \
          for (int64_t j = 0; j < n; j++)                                      \
            yr[j * inner] *= inv;                                              \
        }                                                                      \
      }                                                                        \
  }

MC_DEFINE_SOFTMAX(mc_softmax_f32, float, expf, log, 0)
MC_DEFINE_SOFTMAX(mc_softmax_f64, double, exp, log, 0)
MC_DEFINE_SOFTMAX(mc_log_softmax_f32, float, expf, log, 1)
MC_DEFINE_SOFTMAX(mc_log_softmax_f64, double, exp, log, 1)
