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
 * FLOPs are. Each repetition starts all threads at a barrier and lasts from
 * the first thread's start to the last one's end, each read by the thread
 * itself; the result is the best repetition. Prints one line:
 * "peak THREADS GFLOP/s" (1e9).
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef float vec __attribute__((vector_size(64)));
#define LANES ((int)(sizeof(vec) / sizeof(float)))
#define NACC 16
#define ITERS (1L << 22)

static int nthreads, reps;
static pthread_barrier_t start_bar, end_bar;
/* read at run time: the compiler cannot fold the loop */
static volatile float mul = 0.999999f, add = 1e-6f;
static volatile float sink[256];
static double *t_begin, *t_end; /* per thread, of the current repetition */

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *worker(void *arg) {
  size_t id = (size_t)arg;
  vec m, a, acc[NACC];
  for (int l = 0; l < LANES; l++) {
    m[l] = mul;
    a[l] = add;
  }
  for (int k = 0; k < NACC; k++)
    for (int l = 0; l < LANES; l++)
      acc[k][l] = (float)(k + l) * 0.01f;
  for (int r = 0; r < reps + 1; r++) { /* repetition 0 is a warm-up */
    pthread_barrier_wait(&start_bar);
    t_begin[id] = now();
    /* written out: a loop over k leaves gcc -O2 keeping acc in memory */
    for (long i = 0; i < ITERS; i++) {
#define STEP(k) acc[k] = acc[k] * m + a
      STEP(0), STEP(1), STEP(2), STEP(3), STEP(4), STEP(5), STEP(6), STEP(7);
      STEP(8), STEP(9), STEP(10), STEP(11), STEP(12), STEP(13), STEP(14);
      STEP(15);
#undef STEP
    }
    t_end[id] = now();
    pthread_barrier_wait(&end_bar);
  }
  float s = 0.0f;
  for (int k = 0; k < NACC; k++)
    for (int l = 0; l < LANES; l++)
      s += acc[k][l];
  sink[id % 256] = s; /* a volatile store: the loop stays */
  return NULL;
}

int main(int argc, char **argv) {
  nthreads = argc > 1 ? atoi(argv[1]) : 1;
  reps = argc > 2 ? atoi(argv[2]) : 5;
  if (nthreads < 1 || nthreads > 256 || reps < 1) {
    fprintf(stderr, "usage: peak [THREADS [REPS]]\n");
    return 2;
  }
  pthread_barrier_init(&start_bar, NULL, (unsigned)nthreads + 1);
  pthread_barrier_init(&end_bar, NULL, (unsigned)nthreads + 1);
  pthread_t *tid = malloc(sizeof(pthread_t) * (size_t)nthreads);
  t_begin = malloc(sizeof(double) * (size_t)nthreads);
  t_end = malloc(sizeof(double) * (size_t)nthreads);
  if (!tid || !t_begin || !t_end) {
    fprintf(stderr, "peak: out of memory\n");
    return 1;
  }
  for (int t = 0; t < nthreads; t++)
    if (pthread_create(&tid[t], NULL, worker, (void *)(size_t)t) != 0) {
      fprintf(stderr, "peak: cannot start a thread\n");
      return 1;
    }
  double best = 1e30;
  for (int r = 0; r < reps + 1; r++) {
    pthread_barrier_wait(&start_bar);
    pthread_barrier_wait(&end_bar);
    /* from the first thread's start to the last one's end, as the threads
     * see them (this thread may be scheduled late after a barrier) */
    double t0 = t_begin[0], t1 = t_end[0];
    for (int t = 1; t < nthreads; t++) {
      t0 = t_begin[t] < t0 ? t_begin[t] : t0;
      t1 = t_end[t] > t1 ? t_end[t] : t1;
    }
    if (r > 0 && t1 - t0 < best)
      best = t1 - t0;
  }
  for (int t = 0; t < nthreads; t++)
    pthread_join(tid[t], NULL);
  free(tid);
  free(t_begin);
  free(t_end);
  double flops = 2.0 * LANES * NACC * (double)ITERS * nthreads;
  printf("peak %d %.3f\n", nthreads, flops / best * 1e-9);
  return 0;
}
