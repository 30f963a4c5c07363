/* The runtime's thread pool (runtime/mc_threads.c) and the driver's
 * --threads flag: the thread count and its default, the static partition of
 * mc_parallel_for (every index once, contiguous whole grains, the same cut
 * every time, one chunk per thread), mc_parallel_balanced's pieces (taken
 * from a slow thread by the others), nested and concurrent calls, shutdown
 * and restart, and per-thread scratch memory. The sanitizer build runs this
 * with LeakSanitizer: the pool and the scratch must leave nothing behind.
 */
#define _POSIX_C_SOURCE 200809L
#include "mc_runtime.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int online_cores(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : (int)n;
}

Test(threads, count_and_default) {
  mc_set_threads(3);
  cr_assert_eq(mc_get_threads(), 3);
  mc_set_threads(1);
  cr_assert_eq(mc_get_threads(), 1);
  mc_set_threads(0);
  cr_assert_eq(mc_get_threads(), online_cores());
  mc_set_threads(-4);
  cr_assert_eq(mc_get_threads(), online_cores());
}

/* Each test runs in a fresh process: the count is still undecided here. */
Test(threads, default_from_environment) {
  setenv("MC_THREADS", "5", 1);
  cr_assert_eq(mc_get_threads(), 5);
}

Test(threads, default_ignores_a_bad_environment) {
  setenv("MC_THREADS", "two", 1);
  cr_assert_eq(mc_get_threads(), online_cores());
}

enum { MAX_INDEX = 5000, MAX_CHUNKS = 16 };

typedef struct Record {
  atomic_int visits[MAX_INDEX];
  atomic_int nchunks;
  int64_t begin[MAX_CHUNKS], end[MAX_CHUNKS];
  pthread_t thread[MAX_CHUNKS];
} Record;

static void record_chunk(void *ctx, int64_t begin, int64_t end) {
  Record *r = ctx;
  int c = atomic_fetch_add(&r->nchunks, 1);
  cr_assert_lt(c, MAX_CHUNKS);
  r->begin[c] = begin;
  r->end[c] = end;
  r->thread[c] = pthread_self();
  for (int64_t i = begin; i < end; i++)
    atomic_fetch_add(&r->visits[i], 1);
}

static int compare_chunks(const void *x, const void *y) {
  const int64_t *a = x, *b = y;
  return a[0] < b[0] ? -1 : a[0] > b[0];
}

/* The chunks of one run, sorted by begin, as (begin, end) pairs. */
static int run_and_sort(int64_t n, int64_t grain, Record *r, int64_t cut[][2]) {
  memset(r, 0, sizeof *r);
  mc_parallel_for(n, grain, record_chunk, r);
  int nchunks = atomic_load(&r->nchunks);
  for (int c = 0; c < nchunks; c++) {
    cut[c][0] = r->begin[c];
    cut[c][1] = r->end[c];
  }
  qsort(cut, (size_t)nchunks, sizeof cut[0], compare_chunks);
  return nchunks;
}

Test(threads, static_partition) {
  static Record r;
  static const int64_t sizes[] = {1, 2, 3, 7, 64, 100, 1000, 4999};
  static const int64_t grains[] = {1, 3, 16, 64, 10000};
  for (int threads = 1; threads <= 5; threads++) {
    mc_set_threads(threads);
    for (int s = 0; s < 8; s++)
      for (int g = 0; g < 5; g++) {
        int64_t n = sizes[s], grain = grains[g], cut[MAX_CHUNKS][2],
                again[MAX_CHUNKS][2];
        int64_t units = (n + grain - 1) / grain;
        int nchunks = run_and_sort(n, grain, &r, cut);
        cr_assert_eq(nchunks, units < threads ? units : threads,
                     "n %lld grain %lld threads %d: %d chunks", (long long)n,
                     (long long)grain, threads, nchunks);
        for (int64_t i = 0; i < n; i++)
          cr_assert_eq(atomic_load(&r.visits[i]), 1, "index %lld",
                       (long long)i);
        /* contiguous, non-empty, whole grains but the last */
        for (int c = 0; c < nchunks; c++) {
          cr_assert_eq(cut[c][0], c ? cut[c - 1][1] : 0);
          cr_assert_gt(cut[c][1], cut[c][0]);
          cr_assert(cut[c][1] == n || (cut[c][1] - cut[c][0]) % grain == 0);
        }
        cr_assert_eq(cut[nchunks - 1][1], n);
        /* one thread per chunk, and the same cut next time */
        for (int c = 0; c < nchunks; c++)
          for (int d = 0; d < c; d++)
            cr_assert(!pthread_equal(r.thread[c], r.thread[d]));
        cr_assert_eq(run_and_sort(n, grain, &r, again), nchunks);
        cr_assert_eq(memcmp(cut, again, sizeof(int64_t) * 2 * nchunks), 0);
      }
  }
  mc_parallel_for(0, 1, record_chunk, &r); /* nothing to do: no call */
  mc_parallel_for(-3, 1, record_chunk, &r);
}

/* $MC_SPLIT_ALL: whatever the grain, as many chunks as threads allow. */
Test(threads, split_all_ignores_the_grain) {
  static Record r;
  setenv("MC_SPLIT_ALL", "1", 1);
  mc_set_threads(3);
  int64_t cut[MAX_CHUNKS][2];
  cr_assert_eq(run_and_sort(10, 1000, &r, cut), 3);
  cr_assert(cut[0][0] == 0 && cut[0][1] == 4 && cut[1][1] == 7 &&
            cut[2][1] == 10);
  cr_assert_eq(run_and_sort(2, 1000, &r, cut), 2);
}

/* ---- mc_parallel_balanced ---- */

typedef struct Pieces {
  atomic_int visits[MAX_INDEX];
  pthread_t by[MAX_INDEX]; /* the thread that computed index i */
  pthread_t caller;
  int64_t piece, n;
  int slow_worker; /* a worker's calls sleep 50 ms */
  atomic_int calls;
} Pieces;

static void record_piece(void *ctx, int64_t begin, int64_t end) {
  Pieces *p = ctx;
  atomic_fetch_add(&p->calls, 1);
  cr_assert_eq(begin % p->piece, 0, "begin %lld", (long long)begin);
  cr_assert(end == p->n || end % p->piece == 0, "end %lld", (long long)end);
  cr_assert_lt(begin, end);
  if (p->slow_worker && !pthread_equal(pthread_self(), p->caller))
    nanosleep(&(struct timespec){0, 50000000}, NULL);
  for (int64_t i = begin; i < end; i++) {
    atomic_fetch_add(&p->visits[i], 1);
    p->by[i] = pthread_self();
  }
}

static void run_pieces(Pieces *p, int64_t n, int64_t grain, int64_t piece,
                       int slow) {
  memset(p, 0, sizeof *p);
  p->caller = pthread_self();
  p->piece = grain % piece ? grain : piece; /* the unit of each call */
  p->n = n;
  p->slow_worker = slow;
  mc_parallel_balanced(n, grain, piece, record_piece, p);
  for (int64_t i = 0; i < n; i++)
    cr_assert_eq(atomic_load(&p->visits[i]), 1, "index %lld of %lld",
                 (long long)i, (long long)n);
}

/* Every index once, in calls of whole pieces (the last may be short). */
Test(threads, balanced_runs_every_index_once_in_pieces) {
  static Pieces p;
  static const int64_t sizes[] = {1, 7, 64, 100, 1000, 4999};
  for (int threads = 1; threads <= 4; threads++) {
    mc_set_threads(threads);
    for (int s = 0; s < 6; s++) {
      run_pieces(&p, sizes[s], 64, 64, 0);
      run_pieces(&p, sizes[s], 12, 3, 0);
      run_pieces(&p, sizes[s], 1, 1, 0);
    }
  }
}

/* A slow thread's chunk is finished by the others from its back: here the
 * caller computes the last index, which the worker's chunk holds. */
Test(threads, balanced_takes_pieces_from_a_slow_thread) {
  static Pieces p;
  mc_set_threads(2);
  run_pieces(&p, 64, 1, 1, 1);
  cr_assert(pthread_equal(p.by[63], p.caller));
  cr_assert(pthread_equal(p.by[0], p.caller));
}

/* A grain that is no multiple of the piece: mc_parallel_for's chunks. */
Test(threads, balanced_with_an_odd_grain_cuts_chunks) {
  static Pieces p;
  mc_set_threads(2);
  run_pieces(&p, 100, 10, 3, 0);
  cr_assert_eq(atomic_load(&p.calls), 2);
}

typedef struct Nested {
  atomic_int inner_calls;
  atomic_int sum;
} Nested;

static void inner_chunk(void *ctx, int64_t begin, int64_t end) {
  Nested *s = ctx;
  atomic_fetch_add(&s->inner_calls, 1);
  for (int64_t i = begin; i < end; i++)
    atomic_fetch_add(&s->sum, (int)i);
}

static void outer_chunk(void *ctx, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; i++)
    mc_parallel_for(100, 1, inner_chunk, ctx);
}

/* A call from inside a region (caller or worker) runs serially, whole. */
Test(threads, nested_calls_run_serially) {
  Nested s = {0, 0};
  mc_set_threads(3);
  mc_parallel_for(6, 1, outer_chunk, &s);
  cr_assert_eq(atomic_load(&s.inner_calls), 6);
  cr_assert_eq(atomic_load(&s.sum), 6 * 4950);
}

static void *concurrent_caller(void *arg) {
  Nested *s = arg;
  for (int rep = 0; rep < 200; rep++)
    mc_parallel_for(100, 1, inner_chunk, s);
  return NULL;
}

/* Two threads share the pool (one of them may fall back to serial). */
Test(threads, concurrent_callers) {
  Nested s[2] = {{0, 0}, {0, 0}};
  pthread_t t[2];
  mc_set_threads(2);
  for (int i = 0; i < 2; i++)
    cr_assert_eq(pthread_create(&t[i], NULL, concurrent_caller, &s[i]), 0);
  for (int i = 0; i < 2; i++) {
    pthread_join(t[i], NULL);
    cr_assert_eq(atomic_load(&s[i].sum), 200 * 4950);
  }
}

Test(threads, shutdown_and_restart) {
  static Record r;
  int64_t cut[MAX_CHUNKS][2];
  mc_set_threads(4);
  cr_assert_eq(run_and_sort(400, 1, &r, cut), 4);
  mc_threads_shutdown();
  mc_threads_shutdown(); /* twice is fine */
  mc_set_threads(2);
  cr_assert_eq(run_and_sort(400, 1, &r, cut), 2);
  mc_set_threads(3); /* grows the pool */
  cr_assert_eq(run_and_sort(400, 1, &r, cut), 3);
  for (int64_t i = 0; i < 400; i++)
    cr_assert_eq(atomic_load(&r.visits[i]), 1);
}

static void scratch_chunk(void *ctx, int64_t begin, int64_t end) {
  (void)ctx;
  for (int64_t i = begin; i < end; i++) {
    unsigned char *p = mc_thread_scratch((size_t)(i + 1) * 1000);
    cr_assert_not_null(p);
    memset(p, (int)i, (size_t)(i + 1) * 1000);
  }
}

Test(threads, scratch_memory) {
  void *p = mc_thread_scratch(100);
  cr_assert_not_null(p);
  cr_assert_eq((uintptr_t)p % 64, 0);
  cr_assert_eq(mc_thread_scratch(50), p); /* kept */
  void *q = mc_thread_scratch(1 << 20);   /* grows */
  cr_assert_not_null(q);
  cr_assert_eq((uintptr_t)q % 64, 0);
  memset(q, 1, 1 << 20);
  mc_set_threads(3);
  mc_parallel_for(30, 1, scratch_chunk, NULL); /* workers get their own */
}

/* ---- the driver's --threads ---------------------------------------------- */
static const McIOSpec count_outputs[] = {{"threads", MC_I64, 1, 0, NULL}};

static int count_open(const char *weights, void **handle, McError *e) {
  (void)weights;
  (void)e;
  *handle = NULL;
  return MC_OK;
}

/* threads = [mc_get_threads()] */
static int count_run(void *handle, const McTensor *in, McTensor *out,
                     McError *e) {
  (void)handle;
  (void)in;
  int64_t one = 1;
  int rc = mc_tensor_alloc(&out[0], MC_I64, 1, &one, e);
  if (!rc)
    ((int64_t *)out[0].data)[0] = mc_get_threads();
  return rc;
}

static const McModelInfo count_info = {
    "count", NULL,       0,    NULL,      1,    count_outputs, 0,
    NULL,    count_open, NULL, count_run, NULL, NULL};

static char captured[4096];

/* mc_main with argv (NULL-terminated), stdout and stderr into `captured`. */
static int run_main(const char *first, ...) {
  char *argv[16];
  int argc = 0;
  va_list ap;
  va_start(ap, first);
  argv[argc++] = (char *)"count";
  for (const char *a = first; a && argc < 15; a = va_arg(ap, const char *))
    argv[argc++] = (char *)a;
  va_end(ap);
  argv[argc] = NULL;
  char path[] = "/tmp/mc_threads_out_XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  fflush(stdout);
  fflush(stderr);
  int saved_out = dup(1), saved_err = dup(2);
  dup2(fd, 1);
  dup2(fd, 2);
  int rc = mc_main(argc, argv, &count_info);
  fflush(stdout);
  fflush(stderr);
  dup2(saved_out, 1);
  dup2(saved_err, 2);
  close(saved_out);
  close(saved_err);
  ssize_t n = pread(fd, captured, sizeof captured - 1, 0);
  captured[n > 0 ? n : 0] = '\0';
  close(fd);
  unlink(path);
  return rc;
}

Test(threads, driver_flag) {
  char dir[] = "/tmp/mc_threads_dir_XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  mc_set_threads(1);
  cr_assert_eq(run_main("--threads", "3", "-o", dir, NULL), 0, "%s", captured);
  cr_assert_eq(mc_get_threads(), 3);
  cr_assert_eq(run_main("--threads=2", "-o", dir, NULL), 0, "%s", captured);
  cr_assert_eq(mc_get_threads(), 2);
  static const char *const bad[] = {
      "0", "-1", "two", "3x", "", " 4", "99999999999999999999"};
  for (int i = 0; i < 7; i++) {
    cr_assert_eq(run_main("--threads", bad[i], "-o", dir, NULL), 1,
                 "'%s' accepted", bad[i]);
    cr_assert(strstr(captured, "--threads") &&
                  strstr(captured, "positive integer"),
              "%s", captured);
    cr_assert_eq(mc_get_threads(), 2);
  }
  cr_assert_eq(run_main("-o", dir, "--threads", NULL), 1);
  cr_assert(strstr(captured, "--threads needs an argument"), "%s", captured);
  cr_assert_eq(run_main("--help", NULL), 0);
  cr_assert(strstr(captured, "[--threads N]") && strstr(captured, "MC_THREADS"),
            "%s", captured);
  char out[128];
  snprintf(out, sizeof out, "%s/threads.npy", dir);
  unlink(out);
  rmdir(dir);
}
