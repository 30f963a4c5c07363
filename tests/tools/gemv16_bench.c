/* GEMV throughput with f32, f16 and bf16 weights: C[1 x N] = A[1 x K] B,
 * B row-major (the decoding case), as GB/s of weights read and columns of
 * B per second, for K = 768 and N = 50257 (GPT-2's logits; 154 MB of f32,
 * from memory) and N = 3072 (an MLP layer; 9.4 MB of f32, 4.7 MB of 16-bit,
 * which may sit in L3), on 1 and 2 threads. Not a test; build by hand:
 *
 *   gcc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -Iruntime \
 *       tests/tools/gemv16_bench.c runtime/mc_gemm.c runtime/mc_gemm_x86.c \
 *       runtime/mc_half.c runtime/mc_threads.c runtime/mc_runtime.c \
 *       -lm -pthread -o /tmp/gemv16_bench
 *   /tmp/gemv16_bench [seconds per case (0.2)] [kernel] [cols]
 *
 * "cols" measures B given column-major (rsb = 1, csb = K: a transposed
 * nn.Linear weight) instead. Each case runs for the given time; the best
 * call is reported.
 */
#include "mc_runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
  double budget = argc > 1 ? atof(argv[1]) : 0.2;
  if (argc > 2 && mc_gemm_use_kernel(argv[2]) != MC_OK) {
    fprintf(stderr, "no kernel %s here\n", argv[2]);
    return 1;
  }
  int cols = argc > 3 && strcmp(argv[3], "cols") == 0;
  static const int64_t shapes[][2] = {{768, 50257}, {768, 3072}};
  printf("kernel %s, B %s, M = 1\n", mc_gemm_kernel_name(),
         cols ? "column-major" : "row-major");
  printf("%-5s %5s %3s %5s %10s %10s %8s\n", "K", "N", "thr", "B", "GB/s",
         "Gcols/s", "vs f32");
  for (int s = 0; s < 2; s++) {
    int64_t K = shapes[s][0], N = shapes[s][1];
    float *a = malloc(sizeof(float) * (size_t)K);
    float *b = malloc(sizeof(float) * (size_t)(K * N));
    uint16_t *h = malloc(sizeof(uint16_t) * (size_t)(K * N));
    uint16_t *bf = malloc(sizeof(uint16_t) * (size_t)(K * N));
    float *c = malloc(sizeof(float) * (size_t)N);
    if (!a || !b || !h || !bf || !c)
      return 1;
    uint32_t r = 1;
    for (int64_t i = 0; i < K * N; i++) {
      r = r * 1664525u + 1013904223u;
      b[i] = (float)(r >> 8) / (float)(1 << 24) - 0.5f;
    }
    for (int64_t i = 0; i < K; i++)
      a[i] = (float)(i % 7) - 3.0f;
    mc_f32_to_f16_n(b, h, K * N);
    mc_f32_to_bf16_n(b, bf, K * N);
    int64_t rsb = cols ? 1 : N, csb = cols ? K : 1;
    for (int threads = 1; threads <= 2; threads++) {
      mc_set_threads(threads);
      double f32_cols = 0;
      for (int f = 0; f < 3; f++) {
        static const char *const names[] = {"f32", "f16", "bf16"};
        double best = 1e30, start = now();
        int calls = 0;
        while (calls < 3 || now() - start < budget) {
          double t0 = now();
          if (f == 0)
            mc_gemm_f32(1, N, K, a, K, 1, b, rsb, csb, c, N, 0);
          else
            mc_gemm_f32_w16(1, N, K, a, K, 1, f == 1 ? h : bf, rsb, csb,
                            f == 1 ? MC_W16_F16 : MC_W16_BF16, c, N, 0);
          double t = now() - t0;
          best = t < best ? t : best;
          calls++;
        }
        double bytes = (double)(K * N) * (f == 0 ? 4 : 2);
        double gcols = (double)N / best * 1e-9;
        if (f == 0)
          f32_cols = gcols;
        printf("%-5lld %5lld %3d %5s %10.2f %10.4f %7.2fx\n", (long long)K,
               (long long)N, threads, names[f], bytes / best * 1e-9, gcols,
               gcols / f32_cols);
      }
    }
    free(a);
    free(b);
    free(h);
    free(bf);
    free(c);
  }
  return 0;
}
