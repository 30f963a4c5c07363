/* The runtime's f32 GEMM alone, compiled the way generated programs are
 * (cc -std=c11 -O2 -ffp-contract=off -pthread, no -march):
 *
 *   cc -std=c11 -O2 -ffp-contract=off -pthread -Iruntime bench/gemm_bench.c \
 *      runtime/mc_gemm.c runtime/mc_gemm_x86.c runtime/mc_threads.c \
 *      runtime/mc_kernels.c runtime/mc_half.c -lm -o gemm_bench
 *   ./gemm_bench [--max 2048] [--kernels avx512,avx2,portable]
 *                [--threads 1,2] [--gemv-mb 256]
 *
 * For every kernel the machine runs and every thread count: GFLOP/s of
 * square products (row-major A and B) from 256 to --max, and of the GPT-2
 * small QKV shape [T, 768] x [768, 2304] with B row-major ("nn") and B
 * given as its transpose ("nt": rsb = 1, csb = K, x @ W.T for a
 * torch.nn.Linear weight); then GB/s of B for the GEMV path (one row of A
 * times a --gemv-mb MB matrix, larger than the caches, nn and nt), next to
 * the STREAM triad bandwidth of the same threads. Each figure is the best
 * of several repetitions.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "mc_runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *alloc_filled(int64_t n, unsigned seed) {
  float *x = malloc(sizeof(float) * (size_t)n);
  if (!x) {
    fprintf(stderr, "out of memory\n");
    exit(1);
  }
  for (int64_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    x[i] = (float)(seed >> 8) / (float)(1 << 24) - 0.5f;
  }
  return x;
}

/* Best seconds per call over enough repetitions to fill about `budget` s. */
static double best_time(int64_t M, int64_t N, int64_t K, int trans_b,
                        double budget) {
  float *a = alloc_filled(M * K, 1), *b = alloc_filled(K * N, 2);
  float *c = alloc_filled(M * N, 3);
  int64_t rsb = trans_b ? 1 : N, csb = trans_b ? K : 1;
  double best = 1e30, total = 0;
  for (int rep = 0; rep < 200 && (rep < 3 || total < budget); rep++) {
    double t0 = now();
    mc_gemm_f32(M, N, K, a, K, 1, b, rsb, csb, c, N, 0);
    double t = now() - t0;
    total += t;
    if (t < best)
      best = t;
  }
  free(a);
  free(b);
  free(c);
  return best;
}

static double gflops(int64_t M, int64_t N, int64_t K, int trans_b) {
  return 2.0 * (double)M * (double)N * (double)K /
         best_time(M, N, K, trans_b, 0.3) * 1e-9;
}

typedef struct Triad {
  float *a, *b, *c;
} Triad;

static void triad_chunk(void *ctx, int64_t begin, int64_t end) {
  Triad *t = ctx;
  for (int64_t i = begin; i < end; i++)
    t->a[i] = t->b[i] + 3.0f * t->c[i];
}

/* STREAM triad a = b + s c on the pool: GB/s counting 3 arrays. */
static double triad_gbs(int64_t n) {
  Triad t = {alloc_filled(n, 1), alloc_filled(n, 2), alloc_filled(n, 3)};
  double best = 1e30;
  for (int rep = 0; rep < 8; rep++) {
    double t0 = now();
    mc_parallel_for(n, 1 << 16, triad_chunk, &t);
    double dt = now() - t0;
    if (dt < best)
      best = dt;
  }
  free(t.a);
  free(t.b);
  free(t.c);
  return 3.0 * sizeof(float) * (double)n / best * 1e-9;
}

/* "1,2" -> {1, 2}; returns the count. */
static int parse_ints(const char *s, int *out, int max) {
  int n = 0;
  while (*s && n < max) {
    char *end;
    out[n++] = (int)strtol(s, &end, 10);
    s = *end == ',' ? end + 1 : end;
    if (*end && *end != ',')
      break;
  }
  return n;
}

int main(int argc, char **argv) {
  int64_t max_square = 2048, gemv_mb = 256;
  const char *kernels = "avx512,avx2,portable";
  int threads[8] = {1, 2}, nthreads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--max") == 0)
      max_square = atoll(argv[i + 1]);
    else if (strcmp(argv[i], "--kernels") == 0)
      kernels = argv[i + 1];
    else if (strcmp(argv[i], "--threads") == 0)
      nthreads = parse_ints(argv[i + 1], threads, 8);
    else if (strcmp(argv[i], "--gemv-mb") == 0)
      gemv_mb = atoll(argv[i + 1]);
    else {
      fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  printf("%-10s %-28s", "kernel", "shape");
  for (int t = 0; t < nthreads; t++)
    printf("   %2d thr", threads[t]);
  printf("\n");
  char list[256];
  snprintf(list, sizeof list, "%s", kernels);
  for (char *kern = strtok(list, ","); kern; kern = strtok(NULL, ",")) {
    if (mc_gemm_use_kernel(kern) != MC_OK) {
      printf("%-10s (not available on this CPU)\n", kern);
      continue;
    }
    char name[64];
    for (int64_t n = 256; n <= max_square; n *= 2) {
      snprintf(name, sizeof name, "square %lld", (long long)n);
      printf("%-10s %-28s", kern, name);
      for (int t = 0; t < nthreads; t++) {
        mc_set_threads(threads[t]);
        printf(" %8.1f", gflops(n, n, n, 0));
        fflush(stdout);
      }
      printf("  GFLOP/s\n");
    }
    static const int64_t ts[] = {8, 32, 128};
    for (int i = 0; i < 3; i++)
      for (int trans_b = 0; trans_b < 2; trans_b++) {
        snprintf(name, sizeof name, "[%lld,768]x[768,2304] %s",
                 (long long)ts[i], trans_b ? "nt" : "nn");
        printf("%-10s %-28s", kern, name);
        for (int t = 0; t < nthreads; t++) {
          mc_set_threads(threads[t]);
          printf(" %8.1f", gflops(ts[i], 2304, 768, trans_b));
        }
        printf("  GFLOP/s\n");
      }
    /* GEMV: B of gemv_mb MB, K = 4096 rows */
    int64_t K = 4096, N = gemv_mb * 1024 * 1024 / 4 / K;
    for (int trans_b = 0; trans_b < 2; trans_b++) {
      snprintf(name, sizeof name, "gemv [1,%lld]x[%lld,%lld] %s", (long long)K,
               (long long)K, (long long)N, trans_b ? "nt" : "nn");
      printf("%-10s %-28s", kern, name);
      for (int t = 0; t < nthreads; t++) {
        mc_set_threads(threads[t]);
        double s = best_time(1, N, K, trans_b, 1.0);
        printf(" %8.1f", 4.0 * (double)(K * N) / s * 1e-9);
      }
      printf("  GB/s of B\n");
    }
  }
  printf("%-10s %-28s", "", "triad (3 x gemv-mb)");
  for (int t = 0; t < nthreads; t++) {
    mc_set_threads(threads[t]);
    printf(" %8.1f", triad_gbs(gemv_mb * 1024 * 1024 / 4));
  }
  printf("  GB/s\n");
  return 0;
}
