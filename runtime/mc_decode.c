/* Kernels of decoding: top-k selection, the counter-based random number
 * generator and sampling by inverse CDF.
 *
 * The random numbers are defined exactly, so that any implementation (the
 * tests reimplement it in Python) gives the same bits on every build:
 *
 *   GOLDEN = 0x9E3779B97F4A7C15, all arithmetic modulo 2^64
 *   mix(z):  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
 *            z = (z ^ (z >> 27)) * 0x94D049BB133111EB
 *            return z ^ (z >> 31)                     (SplitMix64's finalizer)
 *   a draw of n numbers from state s (an i64 read as unsigned):
 *            key = mix(s)
 *            z_i = mix(key + (i + 1) * GOLDEN)          for i = 0 .. n-1
 *            f32: u_i = (z_i >> 40) * 2^-24    f64: u_i = (z_i >> 11) * 2^-53
 *   the next state is s + GOLDEN (the language's uniform() adds it).
 * So the keys of successive draws are SplitMix64's outputs for seed s, and
 * each draw is a SplitMix64 stream seeded by its key. Every u is in [0, 1),
 * a multiple of 2^-24 (2^-53), computed with integer operations and one
 * exact conversion: no rounding mode or optimization level can change it.
 *
 * Invariants: no allocation, no global state.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "mc_runtime.h"

#define MC_GOLDEN UINT64_C(0x9E3779B97F4A7C15)

uint64_t mc_splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

void mc_random_uniform_f32(int64_t state, float *y, int64_t n) {
  uint64_t key = mc_splitmix64_mix((uint64_t)state);
  for (int64_t i = 0; i < n; i++) {
    uint64_t z = mc_splitmix64_mix(key + (uint64_t)(i + 1) * MC_GOLDEN);
    y[i] = (float)(z >> 40) * 0x1p-24f;
  }
}

void mc_random_uniform_f64(int64_t state, double *y, int64_t n) {
  uint64_t key = mc_splitmix64_mix((uint64_t)state);
  for (int64_t i = 0; i < n; i++) {
    uint64_t z = mc_splitmix64_mix(key + (uint64_t)(i + 1) * MC_GOLDEN);
    y[i] = (double)(z >> 11) * 0x1p-53;
  }
}

/* Top-k by a binary heap of k indices kept in the output row (worst at the
 * root), then sorted in place (heap sort): O(n log k) per row. `better` is
 * a strict total order: NaN above everything, then larger values, then
 * lower indices, so the result is exactly the first k of a stable
 * descending sort. */
#define MC_DEFINE_TOPK(NAME, T)                                                \
  void NAME(const T *x, int32_t *y, int64_t outer, int64_t n, int64_t inner,  \
            int64_t k) {                                                       \
    for (int64_t o = 0; o < outer; o++)                                        \
      for (int64_t i = 0; i < inner; i++) {                                    \
        const T *row = x + o * n * inner + i;                                  \
        int32_t *h = y + o * k * inner + i;                                    \
        int64_t size = 0;                                                      \
        for (int64_t j = 0; j < n; j++) {                                      \
          int64_t pos;                                                         \
          if (size < k) {                                                      \
            pos = size++;                                                      \
            h[pos * inner] = (int32_t)j;                                       \
            while (pos > 0) { /* sift up: a better parent moves down */        \
              int64_t up = (pos - 1) / 2;                                      \
              if (!MC_TOPK_BETTER(row, h[up * inner], h[pos * inner], inner))  \
                break;                                                         \
              int32_t t = h[up * inner];                                       \
              h[up * inner] = h[pos * inner];                                  \
              h[pos * inner] = t;                                              \
              pos = up;                                                        \
            }                                                                  \
            continue;                                                          \
          }                                                                    \
          if (k == 0 || !MC_TOPK_BETTER(row, (int32_t)j, h[0], inner))         \
            continue;                                                          \
          h[0] = (int32_t)j;                                                   \
          MC_TOPK_SIFT_DOWN(row, h, 0, size, inner);                           \
        }                                                                      \
        for (int64_t end = size - 1; end > 0; end--) {                         \
          int32_t t = h[0];                                                    \
          h[0] = h[end * inner];                                               \
          h[end * inner] = t;                                                  \
          MC_TOPK_SIFT_DOWN(row, h, 0, end, inner);                            \
        }                                                                      \
      }                                                                        \
  }

/* element a of the row beats element b */
#define MC_TOPK_BETTER(row, a, b, inner)                                       \
  mc_topk_better((double)(row)[(int64_t)(a) * (inner)],                        \
                 (double)(row)[(int64_t)(b) * (inner)], (a), (b))

/* restores the heap below p (size elements): the worse child rises */
#define MC_TOPK_SIFT_DOWN(row, h, p, size, inner)                              \
  do {                                                                         \
    int64_t at = (p);                                                          \
    for (;;) {                                                                 \
      int64_t c = 2 * at + 1;                                                  \
      if (c >= (size))                                                         \
        break;                                                                 \
      if (c + 1 < (size) &&                                                    \
          MC_TOPK_BETTER(row, (h)[c * (inner)], (h)[(c + 1) * (inner)], inner)) \
        c++;                                                                   \
      if (!MC_TOPK_BETTER(row, (h)[at * (inner)], (h)[c * (inner)], inner))    \
        break;                                                                 \
      int32_t swap = (h)[at * (inner)];                                        \
      (h)[at * (inner)] = (h)[c * (inner)];                                    \
      (h)[c * (inner)] = swap;                                                 \
      at = c;                                                                  \
    }                                                                          \
  } while (0)

/* Values compare as double: exact for f32, f64 and i32; i64 beyond 2^53
 * compares by its rounded value (ties then go by index). */
static int mc_topk_better(double va, double vb, int32_t a, int32_t b) {
  int na = va != va, nb = vb != vb;
  if (na != nb)
    return na;
  if (!na && va != vb)
    return va > vb;
  return a < b;
}

MC_DEFINE_TOPK(mc_topk_f32, float)
MC_DEFINE_TOPK(mc_topk_f64, double)
MC_DEFINE_TOPK(mc_topk_i32, int32_t)
MC_DEFINE_TOPK(mc_topk_i64, int64_t)

/* Inverse-CDF sampling; weights that are not > 0 (negatives, NaN) count
 * as 0, sums run in double in index order. */
#define MC_DEFINE_CATEGORICAL(NAME, T)                                         \
  void NAME(const T *p, const T *u, int32_t *y, int64_t outer, int64_t n,     \
            int64_t inner) {                                                   \
    for (int64_t o = 0; o < outer; o++)                                        \
      for (int64_t i = 0; i < inner; i++) {                                    \
        const T *row = p + o * n * inner + i;                                  \
        double total = 0;                                                      \
        for (int64_t j = 0; j < n; j++)                                        \
          if (row[j * inner] > 0)                                              \
            total += (double)row[j * inner];                                   \
        double target = (double)u[o * inner + i] * total, acc = 0;             \
        int64_t pick = -1, last = 0;                                           \
        for (int64_t j = 0; j < n && pick < 0; j++)                            \
          if (row[j * inner] > 0) {                                            \
            acc += (double)row[j * inner];                                     \
            last = j;                                                          \
            if (target < acc)                                                  \
              pick = j;                                                        \
          }                                                                    \
        y[o * inner + i] = (int32_t)(pick >= 0 ? pick : last);                 \
      }                                                                        \
  }

MC_DEFINE_CATEGORICAL(mc_categorical_f32, float)
MC_DEFINE_CATEGORICAL(mc_categorical_f64, double)
