/* The threads and the clock of the machine's probes (bench/triad.c,
 * bench/peak.c): each is one header-only function, probe_run.
 *
 * probe_run starts THREADS pthreads; each calls setup(id) once, then for
 * every repetition waits at a barrier and runs work(id). A repetition lasts
 * from the first thread's start to the last one's end, each read by the
 * thread itself: the calling thread, scheduled late after a barrier, would
 * make a repetition look short (2-thread triads up to 1.6x too fast on a
 * 2-core VM). Repetition 0 is a warm-up; the result is the best of the
 * others, in seconds. Without memory or a thread it exits with a message.
 */
#ifndef MC_BENCH_PROBE_H
#define MC_BENCH_PROBE_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef void (*ProbeFn)(size_t id);

static struct {
  ProbeFn setup, work;
  int reps;
  pthread_barrier_t start, end;
  double *t_begin, *t_end; /* per thread, of the current repetition */
} probe;

static double probe_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *probe_worker(void *arg) {
  size_t id = (size_t)arg;
  probe.setup(id);
  for (int r = 0; r < probe.reps + 1; r++) {
    pthread_barrier_wait(&probe.start);
    probe.t_begin[id] = probe_now();
    probe.work(id);
    probe.t_end[id] = probe_now();
    pthread_barrier_wait(&probe.end);
  }
  return NULL;
}

static double probe_run(int nthreads, int reps, ProbeFn setup, ProbeFn work) {
  probe.setup = setup;
  probe.work = work;
  probe.reps = reps;
  pthread_t *tid = malloc(sizeof(pthread_t) * (size_t)nthreads);
  probe.t_begin = malloc(sizeof(double) * (size_t)nthreads);
  probe.t_end = malloc(sizeof(double) * (size_t)nthreads);
  if (!tid || !probe.t_begin || !probe.t_end) {
    fprintf(stderr, "out of memory\n");
    exit(1);
  }
  pthread_barrier_init(&probe.start, NULL, (unsigned)nthreads + 1);
  pthread_barrier_init(&probe.end, NULL, (unsigned)nthreads + 1);
  for (int t = 0; t < nthreads; t++)
    if (pthread_create(&tid[t], NULL, probe_worker, (void *)(size_t)t) != 0) {
      fprintf(stderr, "cannot start a thread\n");
      exit(1);
    }
  double best = 1e30;
  for (int r = 0; r < reps + 1; r++) {
    pthread_barrier_wait(&probe.start);
    pthread_barrier_wait(&probe.end);
    double t0 = probe.t_begin[0], t1 = probe.t_end[0];
    for (int t = 1; t < nthreads; t++) {
      t0 = probe.t_begin[t] < t0 ? probe.t_begin[t] : t0;
      t1 = probe.t_end[t] > t1 ? probe.t_end[t] : t1;
    }
    if (r > 0 && t1 - t0 < best)
      best = t1 - t0;
  }
  for (int t = 0; t < nthreads; t++)
    pthread_join(tid[t], NULL);
  pthread_barrier_destroy(&probe.start);
  pthread_barrier_destroy(&probe.end);
  free(tid);
  free(probe.t_begin);
  free(probe.t_end);
  return best;
}

#endif
