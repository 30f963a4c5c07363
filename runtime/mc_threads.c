/* A small thread pool for the kernels, and per-thread scratch memory.
 *
 * mc_parallel_for(n, grain, fn, ctx) cuts [0, n) into at most
 * mc_get_threads() contiguous chunks, each a whole number of grains (the
 * last may be short), and runs chunk 0 on the caller and chunk c on worker
 * c. The cut depends only on n, grain and the thread count, never on
 * timing. mc_parallel_balanced cuts the same chunks into pieces, which a
 * thread done with its own chunk takes from the back of the others' (for
 * kernels whose elements do not depend on the range: a GEMV's columns).
 * Workers are started on first use and sleep on a condition
 * variable between jobs; mc_threads_shutdown (registered with atexit) stops
 * and joins them.
 *
 * Invariants:
 *  - one parallel region at a time: a call made while another thread holds
 *    the pool, or from inside a region (a worker, or the caller's chunk),
 *    runs fn(ctx, 0, n) serially on the calling thread, so nesting never
 *    deadlocks and kernels may call mc_parallel_for unconditionally;
 *  - a worker takes part in a job only if its chunk exists, and the caller
 *    returns only after every chunk has finished;
 *  - mc_thread_scratch memory belongs to one thread: a worker's is freed
 *    when it exits (a pthread key destructor), the main thread's by the
 *    atexit handler, so LeakSanitizer finds nothing.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "mc_runtime.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define THREADS_MAX 256

typedef struct ThreadPool {
  pthread_mutex_t lock;
  pthread_cond_t wake; /* workers wait for a new generation */
  pthread_cond_t done; /* the caller waits for pending == 0 */
  int nworkers;
  int stop;
  atomic_ulong generation;               /* one per job; set under lock */
  unsigned long started_at[THREADS_MAX]; /* generation when worker w began */
  pthread_t workers[THREADS_MAX];
  /* the current job */
  McParallelFn fn;
  void *ctx;
  int64_t n, grain, piece; /* piece > 0: a balanced job */
  int nchunks;
  atomic_int pending; /* chunks the workers have not finished */
} ThreadPool;

/* A balanced job's chunk: the pieces [front, back) not yet taken, front in
 * the low 32 bits. Its owner takes them from the front, a thread done with
 * its own chunk from the back; one cache line each. */
typedef struct ChunkPieces {
  _Alignas(64) atomic_uint_least64_t range;
} ChunkPieces;
static ChunkPieces pieces[THREADS_MAX];

static ThreadPool pool = {.lock = PTHREAD_MUTEX_INITIALIZER,
                          .wake = PTHREAD_COND_INITIALIZER,
                          .done = PTHREAD_COND_INITIALIZER};
/* Held by the thread that runs a parallel region (try-locked). */
static pthread_mutex_t pool_busy = PTHREAD_MUTEX_INITIALIZER;
static atomic_int threads_wanted; /* 0 until decided */
static _Thread_local int in_region;
static pthread_once_t at_exit_once = PTHREAD_ONCE_INIT;

static int threads_cores(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : n > THREADS_MAX ? THREADS_MAX : (int)n;
}

/* MC_THREADS when it is a positive integer, else every core. */
static int threads_default(void) {
  const char *s = getenv("MC_THREADS");
  if (s && *s) {
    char *end;
    long n = strtol(s, &end, 10);
    if (*end == '\0' && n >= 1)
      return n > THREADS_MAX ? THREADS_MAX : (int)n;
  }
  return threads_cores();
}

/* $MC_SPLIT_ALL set and not "0": every grain is 1 (read once). */
static int threads_split_all(void) {
  static atomic_int state; /* 0: not read yet, 1: no, 2: yes */
  int s = atomic_load(&state);
  if (!s) {
    const char *e = getenv("MC_SPLIT_ALL");
    s = e && *e && strcmp(e, "0") != 0 ? 2 : 1;
    atomic_store(&state, s);
  }
  return s == 2;
}

void mc_set_threads(int n) {
  atomic_store(&threads_wanted, n <= 0            ? threads_cores()
                                : n > THREADS_MAX ? THREADS_MAX
                                                  : n);
}

int mc_get_threads(void) {
  int n = atomic_load(&threads_wanted);
  if (n == 0) {
    int expected = 0;
    n = threads_default();
    if (!atomic_compare_exchange_strong(&threads_wanted, &expected, n))
      n = expected;
  }
  return n;
}

/* Before sleeping, a thread waits actively for a while, on both sides:
 * kernels come in quick succession, and waking a sleeping thread costs
 * tens of microseconds, more on a busy machine. For THREADS_PAUSE_NS it
 * only pauses (a decoded token's kernels are apart by a few microseconds;
 * a sched_yield costs 1.5 us in a VM, and a thread inside one sees the
 * next kernel late: GPT-2 f16 decoding at 2 threads lost about 4% to
 * them), then it yields the CPU at each step until THREADS_SPIN_NS, so
 * that a co-scheduled thread it waits for (or another program) can run. */
#define THREADS_PAUSE_NS 50000
#define THREADS_SPIN_NS 200000

typedef struct ThreadSpin {
  int steps;
  int yielding; /* past THREADS_PAUSE_NS */
  struct timespec start;
} ThreadSpin;

/* One step of waiting; 0 once the time is up. While pausing, the clock is
 * read every 64 steps (a pause takes about 20 ns, the clock 30). */
static int threads_spin(ThreadSpin *s) {
  if (s->yielding || s->steps % 64 == 0) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (s->steps == 0)
      s->start = now;
    long waited = (now.tv_sec - s->start.tv_sec) * 1000000000L +
                  (now.tv_nsec - s->start.tv_nsec);
    if (waited >= THREADS_SPIN_NS)
      return 0;
    s->yielding = waited >= THREADS_PAUSE_NS;
  }
  s->steps++;
  if (s->yielding)
    sched_yield();
#if defined(__x86_64__) || defined(__i386__)
  else
    __builtin_ia32_pause();
#endif
  return 1;
}

/* Chunk c of nchunks: a balanced share of the ceil(n / grain) grains. */
static void threads_chunk(int64_t n, int64_t grain, int nchunks, int c,
                          int64_t *begin, int64_t *end) {
  int64_t units = (n - 1) / grain + 1;
  int64_t share = units / nchunks, extra = units % nchunks;
  int64_t u0 = share * c + (c < extra ? c : extra);
  int64_t u1 = u0 + share + (c < extra);
  *begin = u0 * grain;
  *end = u1 * grain < n ? u1 * grain : n;
}

/* Takes pieces [*k0, *k1) of chunk c: its owner (front) a quarter of
 * those left (few claims, each a contiguous run), another thread one from
 * the back. False when none is left. */
static int threads_take(int c, int front, int64_t *k0, int64_t *k1) {
  uint_least64_t r = atomic_load(&pieces[c].range);
  for (;;) {
    uint_least64_t f = r & 0xffffffffu, b = r >> 32;
    if (f >= b)
      return 0;
    uint_least64_t take = front && b - f >= 8 ? (b - f) / 4 : 1;
    uint_least64_t next = front ? r + take : r - ((uint_least64_t)1 << 32);
    if (atomic_compare_exchange_weak(&pieces[c].range, &r, next)) {
      *k0 = (int64_t)(front ? f : b - 1);
      *k1 = *k0 + (int64_t)take;
      return 1;
    }
  }
}

/* Runs chunk c of the current job: all of it, or for a balanced job its
 * pieces front to back and then the others' from their backs. */
static void threads_run_chunk(int c, McParallelFn fn, void *ctx) {
  int64_t begin, end, k0, k1;
  if (!pool.piece) {
    threads_chunk(pool.n, pool.grain, pool.nchunks, c, &begin, &end);
    fn(ctx, begin, end);
    return;
  }
  const int64_t n = pool.n, piece = pool.piece; /* chunks: pieces[] */
  for (int i = 0; i < pool.nchunks; i++) {
    int v = (c + i) % pool.nchunks;
    while (threads_take(v, i == 0, &k0, &k1))
      fn(ctx, k0 * piece, k1 * piece < n ? k1 * piece : n);
  }
}

static void *threads_worker(void *arg) {
  int chunk = (int)(intptr_t)arg + 1;
  in_region = 1;
  pthread_mutex_lock(&pool.lock);
  unsigned long seen = pool.started_at[chunk - 1];
  pthread_mutex_unlock(&pool.lock);
  for (;;) {
    ThreadSpin spin = {0};
    while (atomic_load(&pool.generation) == seen && threads_spin(&spin))
      continue;
    pthread_mutex_lock(&pool.lock);
    while (!pool.stop && atomic_load(&pool.generation) == seen)
      pthread_cond_wait(&pool.wake, &pool.lock);
    if (pool.stop)
      break;
    /* a generation skipped here had no chunk for us: it could not have
     * finished without it */
    seen = atomic_load(&pool.generation);
    if (chunk >= pool.nchunks) {
      pthread_mutex_unlock(&pool.lock);
      continue;
    }
    McParallelFn fn = pool.fn;
    void *ctx = pool.ctx;
    pthread_mutex_unlock(&pool.lock);
    threads_run_chunk(chunk, fn, ctx);
    if (atomic_fetch_sub(&pool.pending, 1) == 1) {
      pthread_mutex_lock(&pool.lock);
      pthread_cond_signal(&pool.done);
      pthread_mutex_unlock(&pool.lock);
    }
  }
  pthread_mutex_unlock(&pool.lock);
  return NULL;
}

static void threads_at_exit(void) {
  mc_threads_shutdown();
}
static void threads_register_at_exit(void) {
  atexit(threads_at_exit);
}

static void threads_run(int64_t n, int64_t grain, int64_t piece,
                        McParallelFn fn, void *ctx) {
  if (n <= 0)
    return;
  if (grain < 1 || threads_split_all())
    grain = 1;
  if (piece > 0 && (grain % piece != 0 || (n - 1) / piece >= 0xffffffff))
    piece = 0; /* chunks of whole pieces only, counted in 32 bits */
  int64_t units = (n - 1) / grain + 1;
  int threads = mc_get_threads();
  int nchunks = units < threads ? (int)units : threads;
  if (nchunks <= 1 || in_region || pthread_mutex_trylock(&pool_busy) != 0) {
    fn(ctx, 0, n);
    return;
  }
  pthread_once(&at_exit_once, threads_register_at_exit);
  pthread_mutex_lock(&pool.lock);
  while (pool.nworkers < nchunks - 1) {
    int w = pool.nworkers;
    pool.started_at[w] = atomic_load(&pool.generation);
    if (pthread_create(&pool.workers[w], NULL, threads_worker,
                       (void *)(intptr_t)w) != 0)
      break;
    pool.nworkers++;
  }
  if (nchunks > pool.nworkers + 1)
    nchunks = pool.nworkers + 1;
  pool.fn = fn;
  pool.ctx = ctx;
  pool.n = n;
  pool.grain = grain;
  pool.piece = piece;
  pool.nchunks = nchunks;
  for (int c = 0; piece && c < nchunks; c++) {
    int64_t begin, end;
    threads_chunk(n, grain, nchunks, c, &begin, &end);
    uint_least64_t f = (uint_least64_t)(begin / piece),
                   b = (uint_least64_t)((end - 1) / piece + 1);
    atomic_store(&pieces[c].range, f | b << 32);
  }
  atomic_store(&pool.pending, nchunks - 1);
  atomic_fetch_add(&pool.generation, 1);
  pthread_cond_broadcast(&pool.wake);
  pthread_mutex_unlock(&pool.lock);

  in_region = 1;
  threads_run_chunk(0, fn, ctx);
  in_region = 0;

  ThreadSpin spin = {0};
  while (atomic_load(&pool.pending) > 0 && threads_spin(&spin))
    continue;
  if (atomic_load(&pool.pending) > 0) {
    pthread_mutex_lock(&pool.lock);
    while (atomic_load(&pool.pending) > 0)
      pthread_cond_wait(&pool.done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
  }
  pthread_mutex_unlock(&pool_busy);
}

void mc_parallel_for(int64_t n, int64_t grain, McParallelFn fn, void *ctx) {
  threads_run(n, grain, 0, fn, ctx);
}

void mc_parallel_balanced(int64_t n, int64_t grain, int64_t piece,
                          McParallelFn fn, void *ctx) {
  threads_run(n, grain, piece, fn, ctx);
}

/* ---- per-thread scratch ------------------------------------------------- */
static _Thread_local void *scratch_data[MC_SCRATCH_SLOTS];
static _Thread_local size_t scratch_size[MC_SCRATCH_SLOTS];
static pthread_key_t scratch_key[MC_SCRATCH_SLOTS];
static int scratch_key_ok[MC_SCRATCH_SLOTS];
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_key_init(void) {
  for (int s = 0; s < MC_SCRATCH_SLOTS; s++)
    scratch_key_ok[s] = pthread_key_create(&scratch_key[s], free) == 0;
}

/* The calling thread's scratch of a slot; only a thread that allocated
 * (and so went through scratch_once) reads scratch_key_ok. */
static void scratch_release(int slot) {
  if (!scratch_data[slot])
    return;
  if (scratch_key_ok[slot])
    pthread_setspecific(scratch_key[slot], NULL);
  free(scratch_data[slot]);
  scratch_data[slot] = NULL;
  scratch_size[slot] = 0;
}

void *mc_thread_scratch_slot(int slot, size_t bytes) {
  if (slot < 0 || slot >= MC_SCRATCH_SLOTS)
    return NULL;
  if (scratch_data[slot] && scratch_size[slot] >= bytes)
    return scratch_data[slot];
  pthread_once(&scratch_once, scratch_key_init);
  pthread_once(&at_exit_once, threads_register_at_exit);
  scratch_release(slot);
  size_t size = (bytes + 4095) / 4096 * 4096;
  void *p = NULL;
  if (size < bytes || posix_memalign(&p, 64, size) != 0)
    return NULL;
  scratch_data[slot] = p;
  scratch_size[slot] = size;
  if (scratch_key_ok[slot])
    pthread_setspecific(scratch_key[slot], p);
  return p;
}

void *mc_thread_scratch(size_t bytes) {
  return mc_thread_scratch_slot(0, bytes);
}

void mc_threads_shutdown(void) {
  pthread_mutex_lock(&pool_busy);
  pthread_mutex_lock(&pool.lock);
  pool.stop = 1;
  pthread_cond_broadcast(&pool.wake);
  pthread_mutex_unlock(&pool.lock);
  for (int w = 0; w < pool.nworkers; w++)
    pthread_join(pool.workers[w], NULL);
  pthread_mutex_lock(&pool.lock);
  pool.nworkers = 0;
  pool.stop = 0;
  pthread_mutex_unlock(&pool.lock);
  pthread_mutex_unlock(&pool_busy);
  for (int slot = 0; slot < MC_SCRATCH_SLOTS; slot++)
    scratch_release(slot);
}
