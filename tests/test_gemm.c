/* The blocked f32 GEMM (runtime/mc_kernels.c) against a naive loop that adds
 * the products in increasing k from the first one (or from C when
 * accumulating), each rounded once. Equality is exact, bit for bit: blocking,
 * packing and register tiles must not change the summation order.
 *
 * Covered: every size 1..67 on one axis with the others at sizes that cross
 * the tile (4 x 8) and block (K 256, N 128) edges, prime sizes, all four
 * transpose layouts of A and B, padded leading dimensions, accumulate, -0
 * products, non-finite values, and M/N/K = 0.
 */
#include "mc_runtime.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint32_t rng_state = 2024;
static float rnd(void) {
  rng_state = rng_state * 1664525u + 1013904223u;
  return (float)(rng_state >> 8) / (float)(1 << 24) * 2.0f - 1.0f;
}

/* The definition: one rounding per product and per sum, k in order. */
static void gemm_naive(int64_t M, int64_t N, int64_t K, const float *A,
                       int64_t rsa, int64_t csa, const float *B, int64_t rsb,
                       int64_t csb, float *C, int64_t ldc, int accumulate) {
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      if (K == 0) {
        if (!accumulate)
          C[i * ldc + j] = 0.0f;
        continue;
      }
      volatile float s = accumulate ? C[i * ldc + j] + A[i * rsa] * B[j * csb]
                                    : A[i * rsa] * B[j * csb];
      for (int64_t k = 1; k < K; k++) {
        volatile float p = A[i * rsa + k * csa] * B[k * rsb + j * csb];
        s = s + p;
      }
      C[i * ldc + j] = s;
    }
}

static float *alloc_floats(int64_t n) {
  float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
  cr_assert_not_null(p);
  return p;
}

/* C = A B (and then C += A B) for layout bits: 1 = A given as its transpose,
 * 2 = B given as its transpose. C has ldc = N + pad; the padding must stay
 * untouched. Compared with the naive loop bit for bit. */
static void check_layout(int64_t M, int64_t N, int64_t K, int layout,
                         int64_t pad) {
  int ta = layout & 1, tb = layout >> 1 & 1;
  int64_t ldc = N + pad;
  float *a = alloc_floats(M * K), *b = alloc_floats(K * N);
  float *c = alloc_floats(M * ldc), *ref = alloc_floats(M * ldc);
  for (int64_t i = 0; i < M * K; i++)
    a[i] = rnd();
  for (int64_t i = 0; i < K * N; i++)
    b[i] = rnd();
  int64_t rsa = ta ? 1 : K, csa = ta ? M : 1;
  int64_t rsb = tb ? 1 : N, csb = tb ? K : 1;
  for (int64_t i = 0; i < M * ldc; i++)
    c[i] = ref[i] = rnd();
  for (int accumulate = 0; accumulate < 2; accumulate++) {
    gemm_naive(M, N, K, a, rsa, csa, b, rsb, csb, ref, ldc, accumulate);
    mc_gemm_f32(M, N, K, a, rsa, csa, b, rsb, csb, c, ldc, accumulate);
    for (int64_t i = 0; i < M * ldc; i++)
      if (memcmp(&c[i], &ref[i], sizeof(float)) != 0)
        cr_assert_fail("M %lld N %lld K %lld layout %d accumulate %d: "
                       "C[%lld][%lld] = %a, naive %a",
                       (long long)M, (long long)N, (long long)K, layout,
                       accumulate, (long long)(i / ldc), (long long)(i % ldc),
                       (double)c[i], (double)ref[i]);
  }
  free(a);
  free(b);
  free(c);
  free(ref);
}

static void check_all_layouts(int64_t M, int64_t N, int64_t K) {
  for (int layout = 0; layout < 4; layout++)
    check_layout(M, N, K, layout, layout == 1 ? 3 : 0);
}

Test(gemm, every_small_size_on_each_axis) {
  for (int64_t s = 1; s <= 67; s++) {
    check_all_layouts(s, 13, 9);
    check_all_layouts(7, s, 11);
    check_all_layouts(5, 17, s);
    check_all_layouts(s, s, s);
  }
}

Test(gemm, prime_sizes) {
  static const int64_t primes[] = {2, 3, 5, 7, 11, 13, 31, 37, 61, 67, 97};
  for (int x = 0; x < 11; x++)
    for (int y = 0; y < 11; y += 3)
      check_all_layouts(primes[x], primes[y], primes[(x + y) % 11]);
}

/* Across the K block (256) and N block (128) edges, with few rows (B read in
 * place) and many (B packed). */
Test(gemm, block_edges) {
  check_all_layouts(3, 129, 257);
  check_all_layouts(33, 127, 513);
  check_all_layouts(70, 260, 300);
  check_all_layouts(1, 300, 300); /* a row vector: the reference path */
  check_all_layouts(8, 2304 / 9, 768);
}

/* Products of -0 must leave -0 where the naive loop does, and inf/nan must
 * propagate exactly where they do there. */
Test(gemm, signed_zeros_and_non_finite_values) {
  enum { M = 9, N = 19, K = 31 }; /* big enough for the blocked path */
  float a[M * K], b[K * N], c[M * N], ref[M * N];
  for (int i = 0; i < M * K; i++)
    a[i] = i % 3 == 0 ? -0.0f : (float)(i % 5) - 2.0f;
  for (int i = 0; i < K * N; i++)
    b[i] = i % 4 == 0 ? 0.0f : -(float)(i % 7);
  a[5] = INFINITY;
  b[40] = NAN;
  for (int i = 0; i < M; i++) /* rows of -0 products only */
    a[i * K + 1] = a[i * K + 2] = 0.0f;
  for (int accumulate = 0; accumulate < 2; accumulate++) {
    for (int i = 0; i < M * N; i++)
      c[i] = ref[i] = i % 2 ? -0.0f : 0.0f;
    gemm_naive(M, N, K, a, K, 1, b, N, 1, ref, N, accumulate);
    mc_gemm_f32(M, N, K, a, K, 1, b, N, 1, c, N, accumulate);
    cr_assert_eq(memcmp(c, ref, sizeof c), 0, "accumulate %d", accumulate);
  }
  /* +0 times negative values: every product and sum is -0 in row 0; rows
   * with some -0 factors mix -0 and +0 products, which sum to +0 */
  float z[4 * 64], neg[64 * 16], out[4 * 16];
  for (int i = 0; i < 64 * 16; i++)
    neg[i] = -1.0f - (float)i;
  for (int i = 0; i < 4 * 64; i++)
    z[i] = i >= 64 && i % 3 == 0 ? -0.0f : 0.0f;
  mc_gemm_f32(4, 16, 64, z, 64, 1, neg, 16, 1, out, 16, 0);
  for (int i = 0; i < 4 * 16; i++) {
    float expect = 0;
    gemm_naive(1, 1, 64, z + i / 16 * 64, 64, 1, neg + i % 16, 16, 1, &expect,
               1, 0);
    cr_assert_eq(signbit(out[i]), signbit(expect), "element %d", i);
    cr_assert(i >= 16 || signbit(out[i]), "element %d", i);
  }
}

Test(gemm, empty_dimensions) {
  float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8}, c[4] = {9, 9, 9, 9};
  mc_gemm_f32(0, 2, 2, a, 2, 1, b, 2, 1, c, 2, 0); /* M = 0: nothing */
  mc_gemm_f32(2, 0, 2, a, 2, 1, b, 2, 1, c, 2, 0); /* N = 0: nothing */
  for (int i = 0; i < 4; i++)
    cr_assert_eq(c[i], 9.0f);
  mc_gemm_f32(2, 2, 0, a, 2, 1, b, 2, 1, c, 2, 1); /* K = 0, +=: unchanged */
  for (int i = 0; i < 4; i++)
    cr_assert_eq(c[i], 9.0f);
  mc_gemm_f32(2, 2, 0, a, 2, 1, b, 2, 1, c, 2, 0); /* K = 0: zeros */
  for (int i = 0; i < 4; i++)
    cr_assert_eq(c[i], 0.0f);
  float big_c[40 * 40];
  for (int i = 0; i < 40 * 40; i++)
    big_c[i] = 1.0f;
  mc_gemm_f32(40, 40, 0, a, 0, 1, b, 40, 1, big_c, 40, 0);
  for (int i = 0; i < 40 * 40; i++)
    cr_assert_eq(big_c[i], 0.0f);
}
