/* Exhaustive accuracy check of runtime/mc_vmath.h, run by hand (not part of
 * the test suite: one function takes about a minute).
 *
 * Every one of the 2^32 float bit patterns goes through each function, in
 * blocks, with the loop the vectorizer turns into SIMD code; the result is
 * compared with libm's double function rounded to float. Reported per
 * function: the maximum distance in ulps (bit patterns ordered, +0 == -0,
 * inf one past FLT_MAX) and its argument, how many results are not the
 * reference, NaN mismatches, and a hash of all results, which must not
 * depend on the instruction set (no FMA: -ffp-contract=off).
 *
 *   cc -std=c11 -O3 -ffp-contract=off [-march=...] -Iruntime \
 *      tests/tools/vmath_exhaustive.c -lm -o vmath_exhaustive
 *   ./vmath_exhaustive [-s STRIDE] [-H] [FUNCTION...]    (default: all)
 *
 * -s STRIDE checks only the bit patterns i * STRIDE, for a quick look; -H
 * only hashes the results (no reference: seconds instead of minutes), to
 * compare builds for different instruction sets or compilers.
 */
#include "mc_vmath.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK (1u << 20)

static double sigmoid_ref(double x) {
  double e = exp(-fabs(x));
  return (x < 0.0 ? e : 1.0) / (1.0 + e);
}

#define DEFINE_LOOP(name, fn)                                                  \
  static void name(const float *restrict x, float *restrict y, size_t n) {     \
    for (size_t i = 0; i < n; i++)                                             \
      y[i] = fn(x[i]);                                                         \
  }
DEFINE_LOOP(loop_expf, mc_expf)
DEFINE_LOOP(loop_expm1f, mc_expm1f)
DEFINE_LOOP(loop_logf, mc_logf)
DEFINE_LOOP(loop_log1pf, mc_log1pf)
DEFINE_LOOP(loop_tanhf, mc_tanhf)
DEFINE_LOOP(loop_sigmoidf, mc_sigmoidf)
DEFINE_LOOP(loop_erff, mc_erff)

typedef struct Function {
  const char *name;
  void (*loop)(const float *restrict, float *restrict, size_t);
  double (*ref)(double);
} Function;

static const Function functions[] = {
    {"expf", loop_expf, exp},    {"expm1f", loop_expm1f, expm1},
    {"logf", loop_logf, log},    {"log1pf", loop_log1pf, log1p},
    {"tanhf", loop_tanhf, tanh}, {"sigmoidf", loop_sigmoidf, sigmoid_ref},
    {"erff", loop_erff, erf},
};

static uint32_t bits_of(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  return u;
}

/* position on the number line: consecutive floats differ by 1 */
static int64_t ordinal(float x) {
  uint32_t u = bits_of(x);
  return u >> 31 ? -(int64_t)(u & 0x7fffffffu) : (int64_t)u;
}

static void check(const Function *f, uint64_t stride, int hash_only) {
  float *x = malloc(BLOCK * sizeof *x), *y = malloc(BLOCK * sizeof *y);
  if (!x || !y) {
    fprintf(stderr, "out of memory\n");
    exit(1);
  }
  int64_t worst = -1;
  float worst_x = 0, worst_y = 0, worst_ref = 0;
  uint64_t counts[4] = {0}; /* 1 ulp, 2, 3, more */
  uint64_t nan_bad = 0, hash = 1469598103934665603u;
  uint64_t total = ((1ull << 32) + stride - 1) / stride;
  for (uint64_t base = 0; base < total; base += BLOCK) {
    uint32_t n = total - base < BLOCK ? (uint32_t)(total - base) : BLOCK;
    for (uint32_t i = 0; i < n; i++) {
      uint32_t u = (uint32_t)((base + i) * stride);
      memcpy(&x[i], &u, sizeof u);
    }
    f->loop(x, y, n);
    for (uint32_t i = 0; i < n; i++) {
      hash = (hash ^ bits_of(y[i])) * 1099511628211u;
      if (hash_only)
        continue;
      float ref = (float)f->ref((double)x[i]);
      if (isnan(ref) || isnan(y[i])) {
        nan_bad += isnan(ref) != isnan(y[i]);
        continue;
      }
      int64_t d = llabs(ordinal(y[i]) - ordinal(ref));
      if (d > 0)
        counts[d > 3 ? 3 : d - 1]++;
      if (d > worst) {
        worst = d;
        worst_x = x[i];
        worst_y = y[i];
        worst_ref = ref;
      }
    }
  }
  if (hash_only) {
    printf("%-9s hash %016llx\n", f->name, (unsigned long long)hash);
    fflush(stdout);
    free(x);
    free(y);
    return;
  }
  printf("%-9s max %lld ulp at x = %a (%.9g): got %a, want %a; results off "
         "by 1 ulp: %llu, 2: %llu, 3: %llu, more: %llu; NaN mismatches: "
         "%llu; hash %016llx\n",
         f->name, (long long)worst, worst_x, worst_x, worst_y, worst_ref,
         (unsigned long long)counts[0], (unsigned long long)counts[1],
         (unsigned long long)counts[2], (unsigned long long)counts[3],
         (unsigned long long)nan_bad, (unsigned long long)hash);
  fflush(stdout);
  free(x);
  free(y);
}

int main(int argc, char **argv) {
  uint64_t stride = 1;
  int first = 1, hash_only = 0;
  for (;;) {
    if (argc > first + 1 && strcmp(argv[first], "-s") == 0) {
      stride = strtoull(argv[first + 1], NULL, 10);
      first += 2;
    } else if (argc > first && strcmp(argv[first], "-H") == 0) {
      hash_only = 1;
      first++;
    } else {
      break;
    }
  }
  if (stride == 0) {
    fprintf(stderr, "usage: %s [-s STRIDE] [-H] [FUNCTION...]\n", argv[0]);
    return 2;
  }
  size_t nf = sizeof functions / sizeof functions[0];
  for (size_t i = 0; i < nf; i++) {
    int wanted = argc == first;
    for (int a = first; a < argc; a++)
      wanted |= strcmp(argv[a], functions[i].name) == 0;
    if (wanted)
      check(&functions[i], stride, hash_only);
  }
  return 0;
}
