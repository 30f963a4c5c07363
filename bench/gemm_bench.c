/* GFLOP/s of the runtime's mc_gemm_f32, compiled the way generated programs
 * are (cc -std=c11 -O2 -ffp-contract=off, no -march):
 *
 *   cc -std=c11 -O2 -ffp-contract=off -Iruntime bench/gemm_bench.c \
 *      runtime/mc_kernels.c -lm -o gemm_bench && ./gemm_bench
 *
 * Square sizes with row-major A and B, then the GPT-2 small QKV shape
 * [T, 768] x [768, 2304] with B row-major ("nn") and B given as its transpose
 * ("nt": rsb = 1, csb = K, the layout of x @ W.T for a torch.nn.Linear
 * weight). Each line is the best of several repetitions.
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

static void fill(float *x, int64_t n, unsigned seed) {
  for (int64_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    x[i] = (float)(seed >> 8) / (float)(1 << 24) - 0.5f;
  }
}

/* Best time of enough repetitions to fill about 0.3 s. */
static double gflops(int64_t M, int64_t N, int64_t K, int trans_b) {
  float *a = malloc(sizeof(float) * (size_t)(M * K));
  float *b = malloc(sizeof(float) * (size_t)(K * N));
  float *c = malloc(sizeof(float) * (size_t)(M * N));
  if (!a || !b || !c) {
    fprintf(stderr, "out of memory\n");
    exit(1);
  }
  fill(a, M * K, 1);
  fill(b, K * N, 2);
  int64_t rsb = trans_b ? 1 : N, csb = trans_b ? K : 1;
  double best = 1e30, total = 0;
  for (int rep = 0; rep < 50 && (rep < 3 || total < 0.3); rep++) {
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
  return 2.0 * (double)M * (double)N * (double)K / best * 1e-9;
}

int main(int argc, char **argv) {
  int64_t max_square = argc > 1 ? atoll(argv[1]) : 1024;
  printf("%-28s %10s\n", "shape", "GFLOP/s");
  for (int64_t n = 64; n <= max_square; n *= 2) {
    char name[64];
    snprintf(name, sizeof name, "square %lld", (long long)n);
    printf("%-28s %10.2f\n", name, gflops(n, n, n, 0));
  }
  static const int64_t ts[] = {8, 32, 128};
  for (int t = 0; t < 3; t++)
    for (int trans_b = 0; trans_b < 2; trans_b++) {
      char name[64];
      snprintf(name, sizeof name, "[%lld,768]x[768,2304] %s", (long long)ts[t],
               trans_b ? "nt" : "nn");
      printf("%-28s %10.2f\n", name, gflops(ts[t], 2304, 768, trans_b));
    }
  return 0;
}
