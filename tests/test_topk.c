/* mc_topk_*: every path (heap, radix selection, radix sort) against an
 * obvious reference, a qsort of the indices by the op's order compared as
 * double, as the kernels always have: NaN first, then larger values, then
 * lower indices. The inputs are full of ties: few distinct values, +0 and
 * -0, NaNs of both signs and any payload, infinities, subnormals, the
 * extremes of each dtype, and i64 values beyond 2^53 that round alike. */
#include <criterion/criterion.h>

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mc_runtime.h"

typedef enum TopkType { TOPK_F32, TOPK_F64, TOPK_I32, TOPK_I64 } TopkType;

static uint64_t rng_state = UINT64_C(0x2545F4914F6CDD1D);

static uint64_t rng_next(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static int64_t rng_below(int64_t n) {
  return (int64_t)(rng_next() % n);
}

static float f32_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

static double f64_bits(uint64_t u) {
  double f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* One element: with `distinct` > 0 a value from a pool of that many small
 * integers, sometimes a special value; with 0 any bit pattern. */
static void random_value(TopkType t, void *x, int64_t at, int distinct) {
  int64_t pick = rng_below(24);
  int64_t small = distinct > 0 ? rng_below(distinct) - distinct / 2 : 0;
  uint64_t bits = rng_next();
  switch (t) {
  case TOPK_F32: {
    const float special[] = {NAN,
                             -NAN,
                             f32_bits(0x7FC00123u),
                             f32_bits(0xFF800001u),
                             INFINITY,
                             -INFINITY,
                             0.0f,
                             -0.0f,
                             FLT_TRUE_MIN,
                             -FLT_TRUE_MIN,
                             FLT_MAX,
                             -FLT_MAX};
    ((float *)x)[at] = pick < 12      ? special[pick]
                       : distinct > 0 ? (float)small * 0.5f
                                      : f32_bits((uint32_t)bits);
    break;
  }
  case TOPK_F64: {
    const double special[] = {NAN,
                              -NAN,
                              f64_bits(UINT64_C(0x7FF8000000000123)),
                              f64_bits(UINT64_C(0xFFF0000000000001)),
                              INFINITY,
                              -INFINITY,
                              0.0,
                              -0.0,
                              DBL_TRUE_MIN,
                              -DBL_TRUE_MIN,
                              DBL_MAX,
                              -DBL_MAX};
    ((double *)x)[at] = pick < 12      ? special[pick]
                        : distinct > 0 ? (double)small * 0.5
                                       : f64_bits(bits);
    break;
  }
  case TOPK_I32: {
    const int32_t special[] = {INT32_MIN, INT32_MAX,     0,
                               -1,        INT32_MIN + 1, INT32_MAX - 1};
    ((int32_t *)x)[at] = pick < 6       ? special[pick]
                         : distinct > 0 ? (int32_t)small
                                        : (int32_t)(uint32_t)bits;
    break;
  }
  case TOPK_I64: {
    /* 2^60 + 1 .. + 3 round to 2^60 as doubles, so they tie */
    const int64_t big = INT64_C(1) << 60;
    const int64_t special[] = {INT64_MIN, INT64_MAX, 0,
                               -1,        big,       big + 1,
                               big + 3,   -big - 1,  INT64_MAX - 1};
    ((int64_t *)x)[at] = pick < 9       ? special[pick]
                         : distinct > 0 ? small
                                        : (int64_t)bits;
    break;
  }
  }
}

static size_t type_size(TopkType t) {
  return t == TOPK_F32 ? 4 : t == TOPK_F64 ? 8 : t == TOPK_I32 ? 4 : 8;
}

static double value_at(TopkType t, const void *x, int64_t at) {
  switch (t) {
  case TOPK_F32:
    return ((const float *)x)[at];
  case TOPK_F64:
    return ((const double *)x)[at];
  case TOPK_I32:
    return ((const int32_t *)x)[at];
  case TOPK_I64:
    return (double)((const int64_t *)x)[at];
  }
  return 0;
}

static const double *ref_values; /* qsort has no context argument */

static int ref_compare(const void *pa, const void *pb) {
  int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
  double va = ref_values[a], vb = ref_values[b];
  if (isnan(va) != isnan(vb))
    return isnan(va) ? -1 : 1;
  if (!isnan(va) && va != vb)
    return va > vb ? -1 : 1;
  return a < b ? -1 : a > b;
}

static void topk_reference(TopkType t, const void *x, int32_t *y, int64_t outer,
                           int64_t n, int64_t inner, int64_t k) {
  double *values = malloc((size_t)n * sizeof *values);
  int32_t *order = malloc((size_t)n * sizeof *order);
  cr_assert(values && order);
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      for (int64_t j = 0; j < n; j++) {
        values[j] = value_at(t, x, (o * n + j) * inner + i);
        order[j] = (int32_t)j;
      }
      ref_values = values;
      qsort(order, (size_t)n, sizeof *order, ref_compare);
      for (int64_t r = 0; r < k; r++)
        y[(o * k + r) * inner + i] = order[r];
    }
  free(values);
  free(order);
}

static void topk_run(TopkType t, const void *x, int32_t *y, int64_t outer,
                     int64_t n, int64_t inner, int64_t k) {
  switch (t) {
  case TOPK_F32:
    mc_topk_f32(x, y, outer, n, inner, k);
    break;
  case TOPK_F64:
    mc_topk_f64(x, y, outer, n, inner, k);
    break;
  case TOPK_I32:
    mc_topk_i32(x, y, outer, n, inner, k);
    break;
  case TOPK_I64:
    mc_topk_i64(x, y, outer, n, inner, k);
    break;
  }
}

/* One random input of the shape, kernel against reference. */
static void check_case(TopkType t, int64_t outer, int64_t n, int64_t inner,
                       int64_t k, int distinct) {
  int64_t total = outer * n * inner, out = outer * k * inner;
  void *x = malloc((size_t)total * type_size(t));
  int32_t *got = malloc((size_t)out * sizeof *got);
  int32_t *want = malloc((size_t)out * sizeof *want);
  cr_assert(x && got && want);
  for (int64_t e = 0; e < total; e++)
    random_value(t, x, e, distinct);
  for (int64_t e = 0; e < out; e++)
    got[e] = -7; /* every slot must be written */
  topk_reference(t, x, want, outer, n, inner, k);
  topk_run(t, x, got, outer, n, inner, k);
  for (int64_t e = 0; e < out; e++)
    if (got[e] != want[e])
      cr_assert_fail("type %d outer %lld n %lld inner %lld k %lld distinct %d: "
                     "y[%lld] = %d, want %d",
                     (int)t, (long long)outer, (long long)n, (long long)inner,
                     (long long)k, distinct, (long long)e, got[e], want[e]);
  free(x);
  free(got);
  free(want);
}

/* Few values (ties everywhere), a wider pool, or any bits. */
static int random_distinct(void) {
  const int pools[] = {1, 2, 3, 7, 50, 1000, 0};
  return pools[rng_below(7)];
}

static void check_type(TopkType t) {
  /* every k of the small rows (the heap) and of a few larger ones */
  const int64_t all_k[] = {1, 2, 3, 5, 16, 17, 33, 64, 65, 66, 100, 257};
  for (size_t c = 0; c < sizeof all_k / sizeof *all_k; c++)
    for (int64_t n = all_k[c], k = 1; k <= n; k++)
      check_case(t, 1, n, 1, k, random_distinct());
  /* n over 1..2000, the k at each path's edges and random ones, with outer
   * and inner strides */
  for (int trial = 0; trial < 200; trial++) {
    int64_t n = trial < 40 ? 1 + trial : 1 + rng_below(2000);
    int64_t outer = 1 + rng_below(3), inner = 1 + rng_below(3);
    const int64_t edges[] = {1,
                             2,
                             16,
                             17,
                             32,
                             33,
                             n / 2 - 1,
                             n / 2,
                             n / 2 + 1,
                             n - 1,
                             n,
                             1 + rng_below(n),
                             1 + rng_below(n),
                             1 + rng_below(1 + n / 8)};
    for (size_t e = 0; e < sizeof edges / sizeof *edges; e++)
      if (edges[e] >= 1 && edges[e] <= n)
        check_case(t, outer, n, inner, edges[e], random_distinct());
  }
  /* GPT-2's vocabulary: the full sort and a top-40 */
  const int distinct[] = {0, 3, 5000};
  for (int d = 0; d < 3; d++) {
    check_case(t, 1, 50257, 1, 50257, distinct[d]);
    check_case(t, 1, 50257, 1, 40, distinct[d]);
  }
  check_case(t, 2, 50257, 1, 1, 0);
}

Test(topk, f32_matches_reference) {
  check_type(TOPK_F32);
}
Test(topk, f64_matches_reference) {
  check_type(TOPK_F64);
}
Test(topk, i32_matches_reference) {
  check_type(TOPK_I32);
}
Test(topk, i64_matches_reference) {
  check_type(TOPK_I64);
}

/* The order spelled out: NaNs first by index, -0 ties +0, -inf last. */
Test(topk, order_of_specials) {
  enum { N = 100 };
  float x[N];
  for (int j = 0; j < N; j++)
    x[j] = -1000.0f - (float)j; /* filler below everything else */
  x[3] = 1.0f;
  x[7] = NAN;
  x[10] = 3.0f;
  x[11] = 3.0f;
  x[20] = -0.0f;
  x[21] = 0.0f;
  x[30] = -INFINITY;
  x[40] = -NAN;
  x[50] = INFINITY;
  const int32_t want[9] = {7, 40, 50, 10, 11, 3, 20, 21, 0};
  int32_t y[N];
  for (int64_t k = 1; k <= N; k++) {
    mc_topk_f32(x, y, 1, N, 1, k);
    for (int64_t r = 0; r < k && r < 9; r++)
      cr_assert_eq(y[r], want[r], "k %lld: y[%lld] = %d", (long long)k,
                   (long long)r, y[r]);
    if (k == N)
      cr_assert_eq(y[N - 1], 30);
  }
}

/* k = 0 writes nothing */
Test(topk, zero_k_writes_nothing) {
  const double x[3] = {1, 2, 3};
  int32_t y[1] = {-7};
  mc_topk_f64(x, y, 1, 3, 1, 0);
  cr_assert_eq(y[0], -7);
}
