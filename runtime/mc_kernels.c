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
