/* The f32 GEMM (runtime/mc_gemm.c) against a scalar loop written from its
 * numerical contract, bit for bit, for every kernel this machine runs:
 *
 *   acc = accumulate ? C : -0.0f;
 *   for k = 0..K-1: acc = fma ? fmaf(a_k, b_k, acc) : acc + a_k * b_k;
 *
 * (fma for "avx2" and "avx512", not for "portable"). Blocking, packing,
 * register tiles, edge tiles, the GEMV path and threads must not change a
 * bit.
 *
 * Covered: every size 1..70 on one axis with the others crossing the tiles
 * (4 x 8, 6 x 16, 14 x 32) and GEMV widths, prime sizes, all four transpose
 * layouts of A and B, padded leading dimensions of A, B and C, accumulate,
 * the block edges (K 384, N 512, M 1536), GEMV-sized calls against rows of
 * a big call, 1, 2 and 3 threads, -0 products, non-finite values, M/N/K = 0
 * and the kernel selection (MC_GEMM_KERNEL, mc_gemm_use_kernel).
 */
#include "gemm_contract.h"
#include "mc_runtime.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kernels[] = {"portable", "avx2", "avx512"};
enum { KERNEL_COUNT = 3 };

static uint32_t rng_state = 2024;
static float rnd(void) {
  rng_state = rng_state * 1664525u + 1013904223u;
  return (float)(rng_state >> 8) / (float)(1 << 24) * 2.0f - 1.0f;
}

/* Selects kernel `k`; 0 when this CPU lacks it. */
static int use_kernel(int k) {
  return mc_gemm_use_kernel(kernels[k]) == MC_OK;
}

static float *alloc_floats(int64_t n) {
  float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
  cr_assert_not_null(p);
  return p;
}

static void assert_same_bits(const float *c, const float *ref, int64_t n,
                             int64_t ldc, const char *what) {
  for (int64_t i = 0; i < n; i++)
    if (memcmp(&c[i], &ref[i], sizeof(float)) != 0)
      cr_assert_fail("%s (kernel %s, %d threads): C[%lld][%lld] = %a, "
                     "contract %a",
                     what, mc_gemm_kernel_name(), mc_get_threads(),
                     (long long)(i / ldc), (long long)(i % ldc), (double)c[i],
                     (double)ref[i]);
}

/* C = A B, then C += A B, for layout bits 1 = A given as its transpose,
 * 2 = B given as its transpose; `pad` extra elements per row of A, B and
 * C (the padding of C must stay untouched). With the current kernel and
 * thread count, against the contract. */
static void check_layout(int64_t M, int64_t N, int64_t K, int layout,
                         int64_t pad) {
  int ta = layout & 1, tb = layout >> 1 & 1;
  int fused = strcmp(mc_gemm_kernel_name(), "portable") != 0;
  int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
  int64_t a_n = (ta ? K : M) * lda, b_n = (tb ? N : K) * ldb;
  float *a = alloc_floats(a_n), *b = alloc_floats(b_n);
  float *c = alloc_floats(M * ldc), *ref = alloc_floats(M * ldc);
  for (int64_t i = 0; i < a_n; i++)
    a[i] = rnd();
  for (int64_t i = 0; i < b_n; i++)
    b[i] = rnd();
  int64_t rsa = ta ? 1 : lda, csa = ta ? lda : 1;
  int64_t rsb = tb ? 1 : ldb, csb = tb ? ldb : 1;
  for (int64_t i = 0; i < M * ldc; i++)
    c[i] = ref[i] = rnd();
  for (int accumulate = 0; accumulate < 2; accumulate++) {
    char what[128];
    snprintf(what, sizeof what,
             "M %lld N %lld K %lld layout %d pad %lld acc %d", (long long)M,
             (long long)N, (long long)K, layout, (long long)pad, accumulate);
    gemm_contract(fused, M, N, K, a, rsa, csa, b, rsb, csb, ref, ldc,
                  accumulate);
    mc_gemm_f32(M, N, K, a, rsa, csa, b, rsb, csb, c, ldc, accumulate);
    assert_same_bits(c, ref, M * ldc, ldc, what);
  }
  free(a);
  free(b);
  free(c);
  free(ref);
}

static void check_all_layouts(int64_t M, int64_t N, int64_t K) {
  for (int layout = 0; layout < 4; layout++)
    check_layout(M, N, K, layout, layout == 1 ? 3 : layout == 2 ? 1 : 0);
}

Test(gemm, every_small_size_on_each_axis) {
  for (int k = 0; k < KERNEL_COUNT; k++) {
    if (!use_kernel(k))
      continue;
    for (int64_t s = 1; s <= 70; s++) {
      check_all_layouts(s, 13, 9);
      check_all_layouts(7, s, 11);
      check_all_layouts(5, 35, s);
      check_all_layouts(s, s, s);
      if (s <= 6) /* the GEMV path with every width */
        check_all_layouts(s, 67, 37);
    }
  }
}

Test(gemm, prime_sizes) {
  static const int64_t primes[] = {2, 3, 5, 7, 11, 13, 31, 37, 61, 67, 97};
  for (int k = 0; k < KERNEL_COUNT; k++) {
    if (!use_kernel(k))
      continue;
    for (int x = 0; x < 11; x++)
      for (int y = 0; y < 11; y += 3)
        check_all_layouts(primes[x], primes[y], primes[(x + y) % 11]);
  }
}

/* Across the K block (384), the N block (512) and the M block (1536), with
 * few rows (row-major B read in place) and many (B packed). */
Test(gemm, block_edges) {
  for (int k = 0; k < KERNEL_COUNT; k++) {
    if (!use_kernel(k))
      continue;
    check_all_layouts(3, 513, 385);
    check_all_layouts(33, 127, 769);
    check_all_layouts(70, 530, 100);
    check_all_layouts(1, 300, 800); /* a row vector: GEMV */
    check_all_layouts(4, 1000, 400);
    check_all_layouts(1537, 20, 9);
  }
}

/* A row of a GEMV-sized call (M <= 4, and M = 5 just past it) gives the bits
 * of the same row in a call with many rows. */
Test(gemm, gemv_rows_equal_rows_of_a_big_call) {
  enum { M = 23, N = 301, K = 211 };
  float *a = alloc_floats(M * K), *b = alloc_floats(K * N);
  float *big = alloc_floats(M * N), *few = alloc_floats(5 * N);
  for (int i = 0; i < M * K; i++)
    a[i] = rnd();
  for (int i = 0; i < K * N; i++)
    b[i] = rnd();
  for (int k = 0; k < KERNEL_COUNT; k++) {
    if (!use_kernel(k))
      continue;
    for (int tb = 0; tb < 2; tb++) {
      int64_t rsb = tb ? 1 : N, csb = tb ? K : 1;
      mc_gemm_f32(M, N, K, a, K, 1, b, rsb, csb, big, N, 0);
      for (int rows = 1; rows <= 5; rows++)
        for (int i = 0; i + rows <= M; i += 3) {
          mc_gemm_f32(rows, N, K, a + i * K, K, 1, b, rsb, csb, few, N, 0);
          cr_assert_eq(memcmp(few, big + i * N, sizeof(float) * rows * N), 0,
                       "kernel %s, B %s: rows %d..%d alone differ", kernels[k],
                       tb ? "transposed" : "row-major", i, i + rows - 1);
        }
    }
  }
  free(a);
  free(b);
  free(big);
  free(few);
}

/* 1, 2 and 3 threads: the bits of the contract, for column panels, row
 * tiles (a tall C) and the GEMV path, each big enough to be split. */
static void check_thread_counts(int64_t M, int64_t N, int64_t K, int tb) {
  int fused = strcmp(mc_gemm_kernel_name(), "portable") != 0;
  float *a = alloc_floats(M * K), *b = alloc_floats(K * N);
  float *c = alloc_floats(M * N), *ref = alloc_floats(M * N);
  for (int64_t i = 0; i < M * K; i++)
    a[i] = rnd();
  for (int64_t i = 0; i < K * N; i++)
    b[i] = rnd();
  int64_t rsb = tb ? 1 : N, csb = tb ? K : 1;
  gemm_contract(fused, M, N, K, a, K, 1, b, rsb, csb, ref, N, 0);
  gemm_contract(fused, M, N, K, a, K, 1, b, rsb, csb, ref, N, 1);
  for (int threads = 1; threads <= 3; threads++) {
    char what[128];
    snprintf(what, sizeof what, "M %lld N %lld K %lld, B %s", (long long)M,
             (long long)N, (long long)K, tb ? "transposed" : "row-major");
    mc_set_threads(threads);
    cr_assert_eq(mc_get_threads(), threads);
    mc_gemm_f32(M, N, K, a, K, 1, b, rsb, csb, c, N, 0);
    mc_gemm_f32(M, N, K, a, K, 1, b, rsb, csb, c, N, 1);
    assert_same_bits(c, ref, M * N, N, what);
  }
  free(a);
  free(b);
  free(c);
  free(ref);
}

Test(gemm, thread_counts_give_the_same_bits) {
  static const int64_t shapes[][3] = {
      {130, 260, 140}, {600, 40, 150}, {1, 9000, 300}, {3, 6000, 200}};
  for (int k = 0; k < KERNEL_COUNT; k++) {
    if (!use_kernel(k))
      continue;
    for (int s = 0; s < 4; s++)
      for (int tb = 0; tb < 2; tb++)
        check_thread_counts(shapes[s][0], shapes[s][1], shapes[s][2], tb);
  }
}

typedef struct NestedGemm {
  const float *a, *b;
  float *c;
  int64_t M, N, K;
} NestedGemm;

static void nested_gemm(void *ctx, int64_t begin, int64_t end) {
  const NestedGemm *g = ctx;
  for (int64_t i = begin; i < end; i++) /* one call per row */
    mc_gemm_f32(1, g->N, g->K, g->a + i * g->K, g->K, 1, g->b, g->N, 1,
                g->c + i * g->N, g->N, 0);
}

/* A GEMM inside a parallel region runs serially and gives the same bits. */
Test(gemm, inside_a_parallel_region) {
  enum { M = 9, N = 5000, K = 300 };
  float *a = alloc_floats(M * K), *b = alloc_floats(K * N);
  float *c = alloc_floats(M * N), *ref = alloc_floats(M * N);
  for (int i = 0; i < M * K; i++)
    a[i] = rnd();
  for (int i = 0; i < K * N; i++)
    b[i] = rnd();
  mc_set_threads(3);
  mc_gemm_f32(M, N, K, a, K, 1, b, N, 1, ref, N, 0);
  NestedGemm g = {a, b, c, M, N, K};
  mc_parallel_for(M, 1, nested_gemm, &g);
  cr_assert_eq(memcmp(c, ref, sizeof(float) * M * N), 0);
  free(a);
  free(b);
  free(c);
  free(ref);
}

/* Products of -0 must leave -0 where the contract does, and inf/nan must
 * propagate exactly where they do there. */
Test(gemm, signed_zeros_and_non_finite_values) {
  enum { M = 9, N = 19, K = 31 };
  float a[M * K], b[K * N], bt[N * K], c[M * N], ref[M * N];
  for (int i = 0; i < M * K; i++)
    a[i] = i % 3 == 0 ? -0.0f : (float)(i % 5) - 2.0f;
  for (int i = 0; i < K * N; i++)
    b[i] = i % 4 == 0 ? 0.0f : -(float)(i % 7);
  a[5] = INFINITY;
  b[40] = NAN;
  for (int i = 0; i < M; i++) /* rows of -0 products only */
    a[i * K + 1] = a[i * K + 2] = 0.0f;
  for (int k = 0; k < K; k++)
    for (int j = 0; j < N; j++)
      bt[j * K + k] = b[k * N + j];
  float z[4 * 64], neg[64 * 16], out[4 * 16];
  for (int i = 0; i < 64 * 16; i++)
    neg[i] = -1.0f - (float)i;
  for (int i = 0; i < 4 * 64; i++)
    z[i] = i >= 64 && i % 3 == 0 ? -0.0f : 0.0f;
  for (int k = 0; k < KERNEL_COUNT; k++) {
    if (!use_kernel(k))
      continue;
    int fused = k > 0;
    for (int accumulate = 0; accumulate < 2; accumulate++)
      for (int rows = 1; rows <= M; rows += M - 1) /* GEMV and GEMM */
        for (int tb = 0; tb < 2; tb++) {
          const float *bb = tb ? bt : b;
          int64_t rsb = tb ? 1 : N, csb = tb ? K : 1;
          for (int i = 0; i < M * N; i++)
            c[i] = ref[i] = i % 2 ? -0.0f : 0.0f;
          gemm_contract(fused, rows, N, K, a, K, 1, bb, rsb, csb, ref, N,
                        accumulate);
          mc_gemm_f32(rows, N, K, a, K, 1, bb, rsb, csb, c, N, accumulate);
          cr_assert_eq(memcmp(c, ref, sizeof c), 0,
                       "kernel %s, rows %d, B transposed %d, accumulate %d",
                       kernels[k], rows, tb, accumulate);
        }
    /* +0 times negative values: every product and sum is -0 in row 0;
     * rows with some -0 factors mix -0 and +0 products, which sum to +0 */
    mc_gemm_f32(4, 16, 64, z, 64, 1, neg, 16, 1, out, 16, 0);
    for (int i = 0; i < 4 * 16; i++) {
      float expect = 0;
      gemm_contract(fused, 1, 1, 64, z + i / 16 * 64, 64, 1, neg + i % 16, 16,
                    1, &expect, 1, 0);
      cr_assert_eq(signbit(out[i]), signbit(expect), "element %d", i);
      cr_assert(i >= 16 || signbit(out[i]), "element %d", i);
    }
  }
}

Test(gemm, empty_dimensions) {
  for (int k = 0; k < KERNEL_COUNT; k++) {
    if (!use_kernel(k))
      continue;
    float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8}, c[4] = {9, 9, 9, 9};
    mc_gemm_f32(0, 2, 2, a, 2, 1, b, 2, 1, c, 2, 0); /* M = 0: nothing */
    mc_gemm_f32(2, 0, 2, a, 2, 1, b, 2, 1, c, 2, 0); /* N = 0: nothing */
    for (int i = 0; i < 4; i++)
      cr_assert_eq(c[i], 9.0f);
    mc_gemm_f32(2, 2, 0, a, 2, 1, b, 2, 1, c, 2, 1); /* K = 0, +=: same */
    for (int i = 0; i < 4; i++)
      cr_assert_eq(c[i], 9.0f);
    mc_gemm_f32(2, 2, 0, a, 2, 1, b, 2, 1, c, 2, 0); /* K = 0: +0 */
    for (int i = 0; i < 4; i++)
      cr_assert(c[i] == 0.0f && !signbit(c[i]));
    float big_c[40 * 40];
    for (int i = 0; i < 40 * 40; i++)
      big_c[i] = 1.0f;
    mc_gemm_f32(40, 40, 0, a, 0, 1, b, 40, 1, big_c, 40, 0);
    for (int i = 0; i < 40 * 40; i++)
      cr_assert_eq(big_c[i], 0.0f);
  }
}

Test(gemm, kernel_selection) {
  cr_assert_eq(mc_gemm_use_kernel("portable"), MC_OK);
  cr_assert_str_eq(mc_gemm_kernel_name(), "portable");
  cr_assert_eq(mc_gemm_use_kernel("no-such-kernel"), MC_ERR_USAGE);
  cr_assert_str_eq(mc_gemm_kernel_name(), "portable");
  /* the default is the widest available, unless MC_GEMM_KERNEL names one */
  unsetenv("MC_GEMM_KERNEL");
  cr_assert_eq(mc_gemm_use_kernel(NULL), MC_OK);
  const char *best = mc_gemm_kernel_name();
  for (int k = KERNEL_COUNT - 1; k >= 0; k--)
    if (mc_gemm_use_kernel(kernels[k]) == MC_OK) {
      cr_assert_str_eq(best, kernels[k]);
      break;
    }
  setenv("MC_GEMM_KERNEL", "portable", 1);
  cr_assert_eq(mc_gemm_use_kernel(NULL), MC_OK);
  cr_assert_str_eq(mc_gemm_kernel_name(), "portable");
  setenv("MC_GEMM_KERNEL", "bogus", 1); /* ignored */
  cr_assert_eq(mc_gemm_use_kernel(NULL), MC_OK);
  cr_assert_str_eq(mc_gemm_kernel_name(), best);
  unsetenv("MC_GEMM_KERNEL");
#if defined(__x86_64__)
  __builtin_cpu_init();
  cr_assert_eq(mc_gemm_use_kernel("avx2") == MC_OK,
               __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"));
  cr_assert_eq(mc_gemm_use_kernel("avx512") == MC_OK,
               !!__builtin_cpu_supports("avx512f"));
#endif
}

/* An epilogue that counts its visits per element and maps each value v to
 * 2v + column (so a misplaced or repeated call shows in the bits). */
typedef struct CountingEpilogue {
  int *visits;
  int64_t ldc;
} CountingEpilogue;

static void counting_epilogue(void *ctx, float *C, int64_t ldc, int64_t i0,
                              int64_t i1, int64_t j0, int64_t j1) {
  CountingEpilogue *e = ctx;
  cr_assert_eq(ldc, e->ldc);
  for (int64_t i = i0; i < i1; i++)
    for (int64_t j = j0; j < j1; j++) {
      __atomic_add_fetch(&e->visits[i * ldc + j], 1, __ATOMIC_RELAXED);
      C[i * ldc + j] = 2.0f * C[i * ldc + j] + (float)j;
    }
}

/* mc_gemm_f32_ep: every element once, after its last sum (the GEMM's bits,
 * then the epilogue's), for the blocked GEMM, the GEMV, K = 0, every
 * kernel and 1 to 3 threads; the 16-bit B variant likewise. */
Test(gemm, epilogue_sees_every_final_element_once) {
  static const int64_t shapes[][3] = {{130, 260, 400}, {600, 40, 150},
                                      {1, 9000, 300},  {3, 700, 800},
                                      {7, 5, 0},       {2, 3, 0}};
  for (int k = 0; k < KERNEL_COUNT; k++) {
    if (!use_kernel(k))
      continue;
    for (int s = 0; s < 6; s++) {
      int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
      float *a = alloc_floats(M * K), *b = alloc_floats(K * N);
      float *c = alloc_floats(M * N), *ref = alloc_floats(M * N);
      uint16_t *b16 = malloc(sizeof(uint16_t) * (size_t)(K * N + 1));
      int *visits = calloc((size_t)(M * N), sizeof(int));
      cr_assert(b16 && visits);
      for (int64_t i = 0; i < M * K; i++)
        a[i] = rnd();
      for (int64_t i = 0; i < K * N; i++) {
        b[i] = rnd();
        uint32_t u;
        memcpy(&u, &b[i], 4);
        b16[i] = (uint16_t)(u >> 16); /* bf16 by truncation: exact in f32 */
        u = (uint32_t)b16[i] << 16;
        memcpy(&b[i], &u, 4);
      }
      for (int threads = 1; threads <= 3; threads++) {
        mc_set_threads(threads);
        for (int w16 = 0; w16 < 2; w16++) {
          mc_gemm_f32(M, N, K, a, K, 1, b, N, 1, ref, N, 0);
          for (int64_t i = 0; i < M * N; i++)
            ref[i] = 2.0f * ref[i] + (float)(i % N);
          memset(visits, 0, sizeof(int) * (size_t)(M * N));
          CountingEpilogue ce = {visits, N};
          McEpilogue ep = {counting_epilogue, &ce};
          if (w16)
            mc_gemm_f32_w16_ep(M, N, K, a, K, 1, b16, N, 1, MC_W16_BF16, c, N,
                               &ep);
          else
            mc_gemm_f32_ep(M, N, K, a, K, 1, b, N, 1, c, N, &ep);
          for (int64_t i = 0; i < M * N; i++)
            cr_assert_eq(visits[i], 1, "M %lld N %lld K %lld: C[%lld] seen %d",
                         (long long)M, (long long)N, (long long)K, (long long)i,
                         visits[i]);
          assert_same_bits(c, ref, M * N, N,
                           w16 ? "epilogue, bf16 B" : "epilogue");
        }
      }
      free(a);
      free(b);
      free(b16);
      free(c);
      free(ref);
      free(visits);
    }
  }
}

/* A weight W [rows, cols] packed as x @ W's B or x @ W.T's: the panels
 * of W or of W.T (zero past N), as the loader and prepare keep them. */
Test(gemm, pack_weight_packs_w_or_its_transpose) {
  enum { R = 37, C = 70 };
  float *w = alloc_floats(R * C);
  for (int i = 0; i < R * C; i++)
    w[i] = (float)i;
  for (int t = 0; t < 2; t++) {
    int64_t K = t ? C : R, N = t ? R : C, np = mc_gemm_weight_floats(R, C, t);
    cr_assert_eq(np, mc_gemm_packed_floats(K, N));
    float *p = alloc_floats(np);
    mc_gemm_pack_weight(R, C, t, w, p);
    for (int64_t n = 0;
         n < (N + MC_GEMM_PANEL - 1) / MC_GEMM_PANEL * MC_GEMM_PANEL; n++)
      for (int64_t k = 0; k < K; k++) {
        float want = n >= N ? 0.0f : t ? w[n * C + k] : w[k * C + n];
        cr_assert_eq(p[n / MC_GEMM_PANEL * K * MC_GEMM_PANEL +
                       k * MC_GEMM_PANEL + n % MC_GEMM_PANEL],
                     want, "transposed %d: n %lld k %lld", t, (long long)n,
                     (long long)k);
      }
    free(p);
  }
  free(w);
}

/* mc_gemm_pack_b's layout (panels of MC_GEMM_PANEL columns, zero past N),
 * and mc_gemm_f32_packed(_ep) giving the bits of mc_gemm_f32 on the
 * unpacked B: both B layouts, a padded C, accumulate, the blocked GEMM
 * and the GEMV, every kernel, 1 to 3 threads. */
Test(gemm, packed_b_gives_the_bits_of_b) {
  static const int64_t shapes[][3] = {
      {1, 1, 1},  {1, 33, 7},    {3, 100, 50},   {4, 64, 385},
      {5, 31, 9}, {17, 70, 33},  {100, 65, 400}, {130, 600, 800},
      {2, 7, 0},  {40, 1000, 3}, {1, 2304, 768}, {1, 200, 13}};
  enum { SHAPES = sizeof shapes / sizeof shapes[0], PAD = 3 };
  for (int k = 0; k < KERNEL_COUNT; k++) {
    if (!use_kernel(k))
      continue;
    for (int s = 0; s < SHAPES; s++)
      for (int tb = 0; tb < 2; tb++) {
        int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        int64_t ldc = N + PAD, rsb = tb ? 1 : N, csb = tb ? K : 1;
        int64_t np = mc_gemm_packed_floats(K, N);
        cr_assert_eq(np, (N + 31) / 32 * 32 * K);
        float *a = alloc_floats(M * K), *b = alloc_floats(K * N);
        float *p = alloc_floats(np), *c = alloc_floats(M * ldc),
              *ref = alloc_floats(M * ldc);
        for (int64_t i = 0; i < M * K; i++)
          a[i] = rnd();
        for (int64_t i = 0; i < K * N; i++)
          b[i] = rnd();
        mc_gemm_pack_b(K, N, b, rsb, csb, p);
        for (int64_t j = 0; j < (N + 31) / 32 * 32; j++)
          for (int64_t x = 0; x < K; x++) {
            float want = j < N ? b[x * rsb + j * csb] : 0.0f;
            cr_assert(memcmp(&p[j / 32 * K * 32 + x * 32 + j % 32], &want, 4) ==
                          0,
                      "packed B[%lld][%lld]", (long long)x, (long long)j);
          }
        for (int threads = 1; threads <= 3; threads++) {
          mc_set_threads(threads);
          for (int mode = 0; mode < 3; mode++) { /* =, +=, epilogue */
            char what[96];
            snprintf(what, sizeof what, "packed M %lld N %lld K %lld tb %d %s",
                     (long long)M, (long long)N, (long long)K, tb,
                     mode == 0   ? "="
                     : mode == 1 ? "+="
                                 : "ep");
            for (int64_t i = 0; i < M * ldc; i++)
              c[i] = ref[i] = rnd();
            mc_gemm_f32(M, N, K, a, K, 1, b, rsb, csb, ref, ldc, mode == 1);
            if (mode == 2) {
              int *visits = calloc((size_t)(M * ldc), sizeof(int));
              cr_assert_not_null(visits);
              for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++)
                  ref[i * ldc + j] = 2.0f * ref[i * ldc + j] + (float)j;
              CountingEpilogue ce = {visits, ldc};
              McEpilogue ep = {counting_epilogue, &ce};
              mc_gemm_f32_packed_ep(M, N, K, a, K, 1, p, c, ldc, &ep);
              for (int64_t i = 0; i < M; i++)
                for (int64_t j = 0; j < N; j++)
                  cr_assert_eq(visits[i * ldc + j], 1, "%s: C[%lld][%lld]",
                               what, (long long)i, (long long)j);
              free(visits);
            } else {
              mc_gemm_f32_packed(M, N, K, a, K, 1, p, c, ldc, mode == 1);
            }
            assert_same_bits(c, ref, M * ldc, ldc, what);
          }
        }
        free(a);
        free(b);
        free(p);
        free(c);
        free(ref);
      }
  }
  mc_set_threads(1);
  mc_gemm_use_kernel(NULL);
}
