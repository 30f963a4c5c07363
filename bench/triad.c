/* Memory bandwidth of this machine, the STREAM "triad" a[i] = b[i] + s*c[i]
 * over float arrays much larger than the caches, for bench/bench.py:
 *
 *   cc -std=c11 -O2 -march=native -pthread bench/triad.c -o triad
 *   ./triad [THREADS [MIB_PER_ARRAY [REPS]]]
 *
 * THREADS pthreads each own a contiguous slice of the three arrays (each
 * thread first touches its own slice, so on a NUMA machine its pages are
 * local); bench/probe.h times the repetitions. Bytes counted as in STREAM:
 * 3 * 4 bytes per element (read b, read c, write a), not counting the
 * write-allocate read of a. Prints one line: "triad THREADS GB/s" (1e9).
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "probe.h"

static float *a, *b, *c;
static size_t n;
static int nthreads;
static volatile float scalar = 3.0f;

static void slice(size_t id, size_t *lo, size_t *hi) {
  *lo = n * id / (size_t)nthreads;
  *hi = n * (id + 1) / (size_t)nthreads;
}

static void setup(size_t id) {
  size_t lo, hi;
  slice(id, &lo, &hi);
  for (size_t i = lo; i < hi; i++) {
    a[i] = 0.0f;
    b[i] = 1.0f;
    c[i] = 2.0f;
  }
}

static void work(size_t id) {
  size_t lo, hi;
  slice(id, &lo, &hi);
  float s = scalar;
  for (size_t i = lo; i < hi; i++)
    a[i] = b[i] + s * c[i];
}

int main(int argc, char **argv) {
  nthreads = argc > 1 ? atoi(argv[1]) : 1;
  size_t mib = argc > 2 ? (size_t)atoll(argv[2]) : 256;
  int reps = argc > 3 ? atoi(argv[3]) : 10;
  if (nthreads < 1 || nthreads > 256 || mib < 1 || reps < 1) {
    fprintf(stderr, "usage: triad [THREADS [MIB_PER_ARRAY [REPS]]]\n");
    return 2;
  }
  n = mib * (1u << 20) / sizeof(float);
  a = malloc(n * sizeof(float));
  b = malloc(n * sizeof(float));
  c = malloc(n * sizeof(float));
  if (!a || !b || !c) {
    fprintf(stderr, "triad: out of memory\n");
    return 1;
  }
  double best = probe_run(nthreads, reps, setup, work);
  /* check a value so the loop cannot be dropped */
  if (a[n / 2] != 1.0f + scalar * 2.0f) {
    fprintf(stderr, "triad: wrong result %g\n", (double)a[n / 2]);
    return 1;
  }
  printf("triad %d %.3f\n", nthreads,
         3.0 * sizeof(float) * (double)n / best * 1e-9);
  free(a);
  free(b);
  free(c);
  return 0;
}
