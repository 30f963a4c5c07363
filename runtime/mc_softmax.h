/* The softmax of one contiguous f32 row, inline: the runtime's
 * mc_softmax_f32 (mc_kernels.c) runs it for contiguous rows, and the
 * generated attention and softmax kernels call it directly, so that it is
 * compiled with the model's flags (-O3 -march: AVX-512 where the CPU has
 * it; the runtime keeps the baseline ISA).
 *
 * Three passes over the row, in 8 lanes (element j in lane j % 8):
 *   1. the max, lane by lane, then across the lanes; a NaN anywhere makes
 *      it NaN (and so the whole row, as torch); a row of -inf keeps -inf,
 *      x - max is NaN and so is the row, also as torch;
 *   2. y = exp(x - max) with mc_expf (<= 1 ulp);
 *   3. the sum of y in double, lane by lane and then the lanes pairwise;
 *      y *= (float)(1 / sum).
 * Every operation is one IEEE operation on one element or lane, so the bits
 * depend neither on the vector width nor on the compiler: mc_kernels.c's
 * strided rows (softmax_row_f32) give the same. Reads of x[j] precede the
 * write of y[j]: y may be x.
 *
 * The max and the sum are written with GCC's vector extensions (gcc and
 * clang), which keep the lanes in registers where gcc 12 would otherwise
 * spill the sums and test each element with a branch (2.4 -> 0.7 ns per
 * element on attention's rows); other compilers take the plain loops. */
#ifndef MC_SOFTMAX_H
#define MC_SOFTMAX_H

#include "mc_vmath.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define MC_SOFTMAX_LANES 8

#if defined(__GNUC__)
typedef float mc_v8f __attribute__((vector_size(32)));
typedef int32_t mc_v8i __attribute__((vector_size(32)));
typedef double mc_v8d __attribute__((vector_size(64)));
#endif

/* The max of x[0], x[s], ..., x[(n - 1) s] (n >= 1) as pass 1 above. */
static inline float mc_softmax_max_f32(const float *x, int64_t n, int64_t s) {
  enum { L = MC_SOFTMAX_LANES };
  int64_t j = 0;
  float m[L];
  int32_t nan[L];
  for (int q = 0; q < L; q++) {
    m[q] = x[0];
    nan[q] = 0;
  }
#if defined(__GNUC__)
  if (s == 1) {
    mc_v8f mv;
    mc_v8i nv = {0};
    memcpy(&mv, m, sizeof mv);
    for (; j + L <= n; j += L) {
      mc_v8f v;
      memcpy(&v, x + j, sizeof v);
      mc_v8i gt = v > mv;
      mv = (mc_v8f)(((mc_v8i)v & gt) | ((mc_v8i)mv & ~gt));
      nv |= v != v;
    }
    memcpy(m, &mv, sizeof m);
    memcpy(nan, &nv, sizeof nan);
  }
#endif
  for (; j < n; j++) {
    float v = x[j * s];
    m[j % L] = v > m[j % L] ? v : m[j % L];
    nan[j % L] |= v != v;
  }
  float max = m[0];
  int32_t any = nan[0];
  for (int q = 1; q < L; q++) {
    max = m[q] > max ? m[q] : max;
    any |= nan[q];
  }
  return any ? NAN : max;
}

/* The sum of y[0..n) as pass 3 above. */
static inline double mc_softmax_sum_f32(const float *y, int64_t n) {
  enum { L = MC_SOFTMAX_LANES };
  int64_t body = n / L * L, j = 0;
  double sum[L];
#if defined(__GNUC__)
  mc_v8d acc = {0};
  for (; j < body; j += L) {
    mc_v8f v;
    memcpy(&v, y + j, sizeof v);
    acc += __builtin_convertvector(v, mc_v8d);
  }
  memcpy(sum, &acc, sizeof sum);
#else
  for (int q = 0; q < L; q++)
    sum[q] = 0;
  for (; j < body; j += L)
    for (int q = 0; q < L; q++)
      sum[q] += y[j + q];
#endif
  for (int q = 0; j + q < n; q++)
    sum[q] += y[j + q];
  for (int w = L / 2; w > 0; w /= 2)
    for (int q = 0; q < w; q++)
      sum[q] += sum[q + w];
  return sum[0];
}

/* y = softmax(x) over one contiguous row of n >= 1 elements. */
static inline void mc_softmax_row_f32(const float *x, float *y, int64_t n) {
  float max = mc_softmax_max_f32(x, n, 1);
  for (int64_t j = 0; j < n; j++)
    y[j] = mc_expf(x[j] - max);
  float inv = (float)(1.0 / mc_softmax_sum_f32(y, n));
  for (int64_t j = 0; j < n; j++)
    y[j] *= inv;
}

#endif
