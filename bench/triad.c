/* Memory bandwidth of this machine, the STREAM "triad" a[i] = b[i] + s*c[i]
 * over float arrays much larger than the caches, for bench/bench.py:
 *
 *   cc -std=c11 -O2 -march=native -pthread bench/triad.c -o triad
 *   ./triad [THREADS [MIB_PER_ARRAY [REPS]]]
 *
 * THREADS pthreads each own a contiguous slice of the three arrays (each
 * thread first touches its own slice, so on a NUMA machine its pages are
 * local). Each repetition starts all threads at a barrier and lasts from
 * the first thread's start to the last one's end, each read by the thread
 * itself; the result is the best repetition. Bytes counted as in
 * STREAM: 3 * 4 bytes per element (read b, read c, write a), not counting
 * the write-allocate read of a. Prints one line: "triad THREADS GB/s" (1e9).
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static float *a, *b, *c;
static size_t n;
static int nthreads, reps;
static pthread_barrier_t start_bar, end_bar;
static volatile float scalar = 3.0f;
static double *t_begin, *t_end; /* per thread, of the current repetition */

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *worker(void *arg) {
  size_t id = (size_t)arg;
  size_t lo = n * id / (size_t)nthreads, hi = n * (id + 1) / (size_t)nthreads;
  for (size_t i = lo; i < hi; i++) {
    a[i] = 0.0f;
    b[i] = 1.0f;
    c[i] = 2.0f;
  }
  float s = scalar;
  for (int r = 0; r < reps + 1; r++) { /* repetition 0 is a warm-up */
    pthread_barrier_wait(&start_bar);
    t_begin[id] = now();
    for (size_t i = lo; i < hi; i++)
      a[i] = b[i] + s * c[i];
    t_end[id] = now();
    pthread_barrier_wait(&end_bar);
  }
  return NULL;
}

int main(int argc, char **argv) {
  nthreads = argc > 1 ? atoi(argv[1]) : 1;
  size_t mib = argc > 2 ? (size_t)atoll(argv[2]) : 256;
  reps = argc > 3 ? atoi(argv[3]) : 10;
  if (nthreads < 1 || nthreads > 256 || mib < 1 || reps < 1) {
    fprintf(stderr, "usage: triad [THREADS [MIB_PER_ARRAY [REPS]]]\n");
    return 2;
  }
  n = mib * (1u << 20) / sizeof(float);
  a = malloc(n * sizeof(float));
  b = malloc(n * sizeof(float));
  c = malloc(n * sizeof(float));
  t_begin = malloc(sizeof(double) * (size_t)nthreads);
  t_end = malloc(sizeof(double) * (size_t)nthreads);
  if (!a || !b || !c || !t_begin || !t_end) {
    fprintf(stderr, "triad: out of memory\n");
    return 1;
  }
  pthread_barrier_init(&start_bar, NULL, (unsigned)nthreads + 1);
  pthread_barrier_init(&end_bar, NULL, (unsigned)nthreads + 1);
  pthread_t *tid = malloc(sizeof(pthread_t) * (size_t)nthreads);
  for (int t = 0; t < nthreads; t++)
    if (pthread_create(&tid[t], NULL, worker, (void *)(size_t)t) != 0) {
      fprintf(stderr, "triad: cannot start a thread\n");
      return 1;
    }
  double best = 1e30;
  for (int r = 0; r < reps + 1; r++) {
    pthread_barrier_wait(&start_bar);
    pthread_barrier_wait(&end_bar);
    /* from the first thread's start to the last one's end, as the threads
     * see them: this thread may be scheduled late after the start barrier,
     * which made a repetition look short (2-thread triads of 100+ GB/s) */
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
  /* check a value so the loop cannot be dropped */
  if (a[n / 2] != 1.0f + scalar * 2.0f) {
    fprintf(stderr, "triad: wrong result %g\n", (double)a[n / 2]);
    return 1;
  }
  printf("triad %d %.3f\n", nthreads,
         3.0 * sizeof(float) * (double)n / best * 1e-9);
  free(tid);
  free(t_begin);
  free(t_end);
  free(a);
  free(b);
  free(c);
  return 0;
}
