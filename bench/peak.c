/* Peak float arithmetic of this machine, for bench/bench.py: the FLOP/s no
 * program exceeds, against which the table states the lowest time any
 * program could take for a case's FLOPs.
 *
 *   cc -std=c11 -O2 -march=native -ffp-contract=fast -pthread bench/peak.c \
 *      -o peak
 *   ./peak [THREADS [REPS]]
 *
 * Each thread updates 16 independent accumulators, acc = acc * m + a, each a
 * 64-byte vector of floats (GCC vector extensions: one AVX-512 register, or
 * two AVX or four SSE ones), so that the multiply-adds of a loop iteration
 * never wait for each other. -ffp-contract=fast (here only: modelc's code is
 * built without contraction) makes each a fused multiply-add where the CPU
 * has one. Counted as 2 floating-point operations per element, as GEMM
 * FLOPs are; bench/probe.h times the repetitions. Prints one line:
 * "peak THREADS GFLOP/s" (1e9).
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "probe.h"

typedef float vec __attribute__((vector_size(64)));
#define LANES ((int)(sizeof(vec) / sizeof(float)))
#define NACC 16
#define ITERS (1L << 22)
#define MAX_THREADS 256

/* read at run time: the compiler cannot fold the loop */
static volatile float mul = 0.999999f, add = 1e-6f;
static vec acc[MAX_THREADS][NACC];

static void setup(size_t id) {
  for (int k = 0; k < NACC; k++)
    for (int l = 0; l < LANES; l++)
      acc[id][k][l] = (float)(k + l) * 0.01f;
}

static void work(size_t id) {
  vec m, a, x[NACC];
  for (int l = 0; l < LANES; l++) {
    m[l] = mul;
    a[l] = add;
  }
  for (int k = 0; k < NACC; k++)
    x[k] = acc[id][k];
  /* written out: a loop over k leaves gcc -O2 keeping x in memory */
  for (long i = 0; i < ITERS; i++) {
#define STEP(k) x[k] = x[k] * m + a
    STEP(0), STEP(1), STEP(2), STEP(3), STEP(4), STEP(5), STEP(6), STEP(7);
    STEP(8), STEP(9), STEP(10), STEP(11), STEP(12), STEP(13), STEP(14);
    STEP(15);
#undef STEP
  }
  for (int k = 0; k < NACC; k++)
    acc[id][k] = x[k];
}

int main(int argc, char **argv) {
  int nthreads = argc > 1 ? atoi(argv[1]) : 1;
  int reps = argc > 2 ? atoi(argv[2]) : 5;
  if (nthreads < 1 || nthreads > MAX_THREADS || reps < 1) {
    fprintf(stderr, "usage: peak [THREADS [REPS]]\n");
    return 2;
  }
  double best = probe_run(nthreads, reps, setup, work);
  /* the results are used: the loops stay */
  float s = 0.0f;
  for (int t = 0; t < nthreads; t++)
    for (int k = 0; k < NACC; k++)
      for (int l = 0; l < LANES; l++)
        s += acc[t][k][l];
  if (!(s > 0.0f)) {
    fprintf(stderr, "peak: wrong result %g\n", (double)s);
    return 1;
  }
  double flops = 2.0 * LANES * NACC * (double)ITERS * nthreads;
  printf("peak %d %.3f\n", nthreads, flops / best * 1e-9);
  return 0;
}
