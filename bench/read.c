/* Read bandwidth of this machine: a sum over a float array much larger than
 * the caches, for bench/bench.py. Decoding streams its weights and writes
 * almost nothing, so the time the weight bytes take at this bandwidth is
 * the floor of a decoding step (the triad, which also writes, is lower).
 *
 *   cc -std=c11 -O2 -march=native -ffp-contract=fast -pthread bench/read.c \
 *      -o read
 *   ./read [THREADS [MIB [REPS]]]
 *
 * THREADS pthreads each sum a contiguous slice (first touched by the thread
 * itself) into 8 independent accumulators of 64-byte vectors, so that the
 * additions never wait for each other; bench/probe.h times the
 * repetitions. Bytes counted: 4 per element. Prints one line: "read THREADS
 * GB/s" (1e9).
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "probe.h"

#include <string.h>

typedef float vec __attribute__((vector_size(64)));
#define LANES ((size_t)(sizeof(vec) / sizeof(float)))
#define NACC 8
#define MAX_THREADS 256

static vec *x;
static size_t nvec;
static int nthreads;
static float sums[MAX_THREADS];

static void slice(size_t id, size_t *lo, size_t *hi) {
  /* whole groups of NACC vectors */
  size_t groups = nvec / NACC;
  *lo = groups * id / (size_t)nthreads * NACC;
  *hi = groups * (id + 1) / (size_t)nthreads * NACC;
}

static void setup(size_t id) {
  size_t lo, hi;
  slice(id, &lo, &hi);
  for (size_t i = lo; i < hi; i++)
    for (size_t l = 0; l < LANES; l++)
      x[i][l] = 1.0f;
}

static void work(size_t id) {
  size_t lo, hi;
  slice(id, &lo, &hi);
  vec acc[NACC];
  memset(acc, 0, sizeof acc);
  for (size_t i = lo; i < hi; i += NACC) {
    acc[0] += x[i];
    acc[1] += x[i + 1];
    acc[2] += x[i + 2];
    acc[3] += x[i + 3];
    acc[4] += x[i + 4];
    acc[5] += x[i + 5];
    acc[6] += x[i + 6];
    acc[7] += x[i + 7];
  }
  float s = 0.0f;
  for (int k = 0; k < NACC; k++)
    for (size_t l = 0; l < LANES; l++)
      s += acc[k][l];
  sums[id] = s;
}

int main(int argc, char **argv) {
  nthreads = argc > 1 ? atoi(argv[1]) : 1;
  size_t mib = argc > 2 ? (size_t)atoll(argv[2]) : 256;
  int reps = argc > 3 ? atoi(argv[3]) : 10;
  /* MIB <= 4096: each accumulator's sum of ones stays exact */
  if (nthreads < 1 || nthreads > MAX_THREADS || mib < 1 || mib > 4096 ||
      reps < 1) {
    fprintf(stderr, "usage: read [THREADS [MIB [REPS]]]\n");
    return 2;
  }
  nvec = mib * (1u << 20) / sizeof(vec) / NACC * NACC;
  x = aligned_alloc(sizeof(vec), nvec * sizeof(vec));
  if (!x) {
    fprintf(stderr, "read: out of memory\n");
    return 1;
  }
  double best = probe_run(nthreads, reps, setup, work);
  /* the sums are used: the loops stay */
  float s = 0.0f;
  for (int t = 0; t < nthreads; t++)
    s += sums[t];
  if (s != (float)(nvec * LANES)) { /* exact: sums of ones below 2^24 */
    fprintf(stderr, "read: wrong sum %g\n", (double)s);
    return 1;
  }
  printf("read %d %.3f\n", nthreads,
         (double)(nvec * sizeof(vec)) / best * 1e-9);
  free(x);
  return 0;
}
