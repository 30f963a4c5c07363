/* Portable kernels: the f64 GEMM and softmax in f32 and f64 (the f32 GEMM
 * is mc_gemm.c).
 *
 * Invariants: no allocation, no global state; every output element of the
 * f64 GEMM is C (or nothing) plus the products for k = 0, 1, ..., K-1 added
 * in that order, each rounded, whatever the strides, so two calls with
 * transposed layouts give the same bits.
 *
 * The loops are written as macros, instantiated for each precision.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "mc_runtime.h"
#include "mc_softmax.h"
#include "mc_vmath.h"

#include <math.h>

/* The f64 GEMM. Two loop orders, picked by B's layout:
 *  - B rows contiguous (csb == 1): i-k-j, streaming a row of B into a row of
 *    C;
 *  - otherwise (e.g. B transposed, rsb == 1): i-j-k, a dot product per
 *    element.
 * Both add the k terms in increasing k. With accumulate == 0 the first
 * product initializes the sum (so -0 products survive, as in torch). */
#define MC_DEFINE_GEMM(NAME, T)                                                \
  void NAME(int64_t M, int64_t N, int64_t K, const T *A, int64_t rsa,          \
            int64_t csa, const T *B, int64_t rsb, int64_t csb, T *C,           \
            int64_t ldc, int accumulate) {                                     \
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

MC_DEFINE_GEMM(mc_gemm_f64, double)

/* The f32 softmax: rows on the runtime's threads, each row as
 * mc_softmax.h describes (max, exp(x - max) and their sum in double over 8
 * lanes, scale). A contiguous row is mc_softmax_row_f32; a strided one and
 * log_softmax take softmax_row_f32 below, lane by lane the same operations
 * (the same bits), so a row's bits depend on neither its stride nor the
 * thread count. log_softmax: (x - max) - log(sum). Reads of x[j] precede
 * the write of y[j]: y may be x. */
typedef struct SoftmaxJob {
  const float *x;
  float *y;
  int64_t n, inner;
  int logarithmic;
} SoftmaxJob;

static inline __attribute__((always_inline)) void
softmax_row_f32(const float *x, float *y, int64_t n, int64_t s, int log_sm) {
  enum { L = MC_SOFTMAX_LANES };
  float max = mc_softmax_max_f32(x, n, s);
  double sum[L];
  for (int q = 0; q < L; q++)
    sum[q] = 0;
  int64_t body = n / L * L, j;
  for (j = 0; j < body; j += L)
    for (int q = 0; q < L; q++) {
      float v = mc_expf(x[(j + q) * s] - max);
      if (!log_sm)
        y[(j + q) * s] = v;
      sum[q] += v;
    }
  for (int q = 0; j + q < n; q++) {
    float v = mc_expf(x[(j + q) * s] - max);
    if (!log_sm)
      y[(j + q) * s] = v;
    sum[q] += v;
  }
  for (int w = L / 2; w > 0; w /= 2)
    for (int q = 0; q < w; q++)
      sum[q] += sum[q + w];
  if (log_sm) {
    float logsum = (float)log(sum[0]);
    for (j = 0; j < n; j++)
      y[j * s] = (x[j * s] - max) - logsum;
  } else {
    float inv = (float)(1.0 / sum[0]);
    for (j = 0; j < n; j++)
      y[j * s] *= inv;
  }
}

/* gcc's -O2 (the runtime's level) vectorizes only loops that need no
 * epilogue: the row loops ask for its -O3 cost model (clang vectorizes
 * them at -O2 anyway). Before, every exp of a softmax ran in scalar code:
 * 16% of the encoder's time, 10 ns an element. */
#if defined(__GNUC__) && !defined(__clang__)
#define SOFTMAX_VECTORIZE __attribute__((optimize("vect-cost-model=dynamic")))
#else
#define SOFTMAX_VECTORIZE
#endif

/* Rows [begin, end). */
SOFTMAX_VECTORIZE static void softmax_rows_f32(void *ctx, int64_t begin,
                                               int64_t end) {
  const SoftmaxJob *job = ctx;
  int64_t n = job->n, inner = job->inner;
  for (int64_t r = begin; r < end; r++) {
    int64_t at = r / inner * n * inner + r % inner;
    if (inner == 1 && !job->logarithmic)
      mc_softmax_row_f32(job->x + at, job->y + at, n);
    else
      softmax_row_f32(job->x + at, job->y + at, n, inner, job->logarithmic);
  }
}

static void softmax_f32(const float *x, float *y, int64_t outer, int64_t n,
                        int64_t inner, int logarithmic) {
  if (outer <= 0 || n <= 0 || inner <= 0)
    return;
  SoftmaxJob job = {x, y, n, inner, logarithmic};
  mc_parallel_for(outer * inner, 16384 / n + 1, softmax_rows_f32, &job);
}

void mc_softmax_f32(const float *x, float *y, int64_t outer, int64_t n,
                    int64_t inner) {
  softmax_f32(x, y, outer, n, inner, 0);
}

void mc_log_softmax_f32(const float *x, float *y, int64_t outer, int64_t n,
                        int64_t inner) {
  softmax_f32(x, y, outer, n, inner, 1);
}

/* The f64 softmax: one pass for the max, one for the sum of exp(x - max),
 * one to write; libm's exp; otherwise as the f32 one. */
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

MC_DEFINE_SOFTMAX(mc_softmax_f64, double, exp, log, 0)
MC_DEFINE_SOFTMAX(mc_log_softmax_f64, double, exp, log, 1)
