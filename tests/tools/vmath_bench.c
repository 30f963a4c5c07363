/* Speed of runtime/mc_vmath.h against libm, run by hand: each function over
 * 16M floats (or N) in a plain loop (the loop generated code has), best of
 * 7 runs, in ns per element. At 16M the fastest loops are near the memory
 * bandwidth (8 bytes per element); N = 16384 stays in L1 and shows the
 * arithmetic (repeated to the same total work).
 *
 *   cc -std=c11 -O3 -ffp-contract=off [-march=...] -Iruntime \
 *      tests/tools/vmath_bench.c -lm -o vmath_bench && ./vmath_bench [N]
 *
 * Inputs are uniform in a range that matters for each function (|x| <= 10
 * for exp, tanh, sigmoid, erf; (0, 100] for log), fixed seed.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include "mc_vmath.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define TOTAL (16u << 20)
#define RUNS 7

static float libm_sigmoidf(float x) {
  return 1.0f / (1.0f + expf(-x));
}

#define DEFINE_LOOP(fn)                                                        \
  static void loop_##fn(const float *restrict x, float *restrict y,            \
                        size_t n) {                                            \
    for (size_t i = 0; i < n; i++)                                             \
      y[i] = fn(x[i]);                                                         \
  }
DEFINE_LOOP(expf)
DEFINE_LOOP(mc_expf)
DEFINE_LOOP(expm1f)
DEFINE_LOOP(mc_expm1f)
DEFINE_LOOP(logf)
DEFINE_LOOP(mc_logf)
DEFINE_LOOP(log1pf)
DEFINE_LOOP(mc_log1pf)
DEFINE_LOOP(tanhf)
DEFINE_LOOP(mc_tanhf)
DEFINE_LOOP(libm_sigmoidf)
DEFINE_LOOP(mc_sigmoidf)
DEFINE_LOOP(erff)
DEFINE_LOOP(mc_erff)

typedef void (*Loop)(const float *restrict, float *restrict, size_t);

typedef struct Pair {
  const char *name;
  Loop libm, ours;
  float lo, hi; /* input range */
} Pair;

static const Pair pairs[] = {
    {"exp", loop_expf, loop_mc_expf, -10.0f, 10.0f},
    {"expm1", loop_expm1f, loop_mc_expm1f, -10.0f, 10.0f},
    {"log", loop_logf, loop_mc_logf, 0.0f, 100.0f},
    {"log1p", loop_log1pf, loop_mc_log1pf, -0.5f, 100.0f},
    {"tanh", loop_tanhf, loop_mc_tanhf, -10.0f, 10.0f},
    {"sigmoid", loop_libm_sigmoidf, loop_mc_sigmoidf, -10.0f, 10.0f},
    {"erf", loop_erff, loop_mc_erff, -10.0f, 10.0f},
};

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* best time of RUNS, in ns per element; each run does TOTAL elements in
 * passes over the n of the buffer */
static double time_loop(Loop loop, const float *x, float *y, size_t n) {
  double best = 1e30;
  for (int r = 0; r < RUNS; r++) {
    double t0 = now();
    for (size_t done = 0; done < TOTAL; done += n)
      loop(x, y, n);
    double t = now() - t0;
    best = t < best ? t : best;
  }
  return best * 1e9 / (double)((TOTAL + n - 1) / n * n);
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : TOTAL;
  if (n == 0 || n > TOTAL) {
    fprintf(stderr, "usage: %s [N <= %u]\n", argv[0], TOTAL);
    return 2;
  }
  float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
  if (!x || !y)
    return 1;
  uint32_t state = 12345;
  printf("%zu floats\n%-8s %12s %12s %8s\n", n, "function", "libm ns/el",
         "mc ns/el", "speedup");
  for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
    for (size_t i = 0; i < n; i++) {
      state = state * 1664525u + 1013904223u;
      float u = (float)(state >> 8) * 0x1p-24f;
      x[i] = pairs[p].lo + (pairs[p].hi - pairs[p].lo) * u;
    }
    double t_libm = time_loop(pairs[p].libm, x, y, n);
    double t_ours = time_loop(pairs[p].ours, x, y, n);
    printf("%-8s %12.3f %12.3f %7.1fx\n", pairs[p].name, t_libm, t_ours,
           t_libm / t_ours);
  }
  free(x);
  free(y);
  return 0;
}
