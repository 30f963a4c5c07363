/* codegen/llvm_vmath.h: runtime/mc_vmath.h's and mc_ops.h's functions as
 * the bitcode embedded in modelc, linked into LLVM modules. Each function
 * is called in a loop over an array (`y[i] = mc_expf(x[i])`) built with
 * LLVM's IR builder; after linking and LLVM's O2 pipeline no call to it is
 * left and the f32 loops are vectorized with the host's widest vectors;
 * the JIT'd loops give the same bits as the header's functions compiled
 * into this test by the C compiler: for the f32 functions on every 4099th
 * float bit pattern and the special values, for the f64 functions and the
 * op_* operations on a few hundred inputs with the edge cases of their
 * comments. Also: every function of the headers is in the table and the
 * bitcode, the bitcode carries no x86 attributes into a module for
 * AArch64, two modules (and two JITs' contexts) each get their own copy,
 * and misuse is reported, not fatal.
 */
#include <criterion/criterion.h>
#include <elf.h>
#include <float.h>
#include <llvm-c/Core.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llvm_jit.h"
#include "llvm_target.h"
#include "llvm_vmath.h"
#include "mc_ops.h"
#include "mc_vmath.h"

/* the suite's Diag d, dir, ctx (after the headers: d shadows nothing) */
#include "llvm_fixture.h"

static void setup(void) {
  llvm_fixture_setup("test_llvm_vmath");
}
static void teardown(void) {
  llvm_fixture_teardown();
}

TestSuite(llvm_vmath, .init = setup, .fini = teardown);

/* ---- the C side: the headers' functions, called directly ---------------- */

typedef float (*F32Fn)(float);
typedef double (*F64Fn)(double);
typedef float (*F32Fn2)(float, float);
typedef double (*F64Fn2)(double, double);
typedef int32_t (*I32Fn2)(int32_t, int32_t);
typedef int64_t (*I64Fn2)(int64_t, int64_t);

/* by table name; exactly one member is set */
typedef struct CFunction {
  const char *name;
  F32Fn f32;
  F64Fn f64;
  F32Fn2 f32_2;
  F64Fn2 f64_2;
  I32Fn2 i32_2;
  I64Fn2 i64_2;
} CFunction;

static const CFunction c_functions[] = {
    {"mc_expf", .f32 = mc_expf},         {"mc_expm1f", .f32 = mc_expm1f},
    {"mc_logf", .f32 = mc_logf},         {"mc_log1pf", .f32 = mc_log1pf},
    {"mc_tanhf", .f32 = mc_tanhf},       {"mc_sigmoidf", .f32 = mc_sigmoidf},
    {"mc_erff", .f32 = mc_erff},         {"mc_exp", .f64 = mc_exp},
    {"mc_expm1", .f64 = mc_expm1},       {"mc_log", .f64 = mc_log},
    {"mc_log1p", .f64 = mc_log1p},       {"mc_tanh", .f64 = mc_tanh},
    {"mc_erf", .f64 = mc_erf},           {"mc_sigmoid", .f64 = mc_sigmoid},
    {"op_div_i32", .i32_2 = op_div_i32}, {"op_div_i64", .i64_2 = op_div_i64},
    {"op_mod_i32", .i32_2 = op_mod_i32}, {"op_mod_i64", .i64_2 = op_mod_i64},
    {"op_mod_f32", .f32_2 = op_mod_f32}, {"op_mod_f64", .f64_2 = op_mod_f64},
    {"op_max_f32", .f32_2 = op_max_f32}, {"op_max_f64", .f64_2 = op_max_f64},
    {"op_min_f32", .f32_2 = op_min_f32}, {"op_min_f64", .f64_2 = op_min_f64},
};
enum { N_FUNCTIONS = sizeof c_functions / sizeof *c_functions };

static uint32_t f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}
static float f32_of(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}
static uint64_t f64_bits(double f) {
  uint64_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}
static double f64_of(uint64_t u) {
  double f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* ---- building the loops ------------------------------------------------- */

static LLVMTypeRef scalar(LLVMContextRef c, DType t) {
  return t == DT_F32   ? LLVMFloatTypeInContext(c)
         : t == DT_F64 ? LLVMDoubleTypeInContext(c)
         : t == DT_I32 ? LLVMInt32TypeInContext(c)
                       : LLVMInt64TypeInContext(c);
}

static char *map_name(const char *fn) {
  static char name[64];
  snprintf(name, sizeof name, "map_%s", fn);
  return name;
}

/* void map_<f>(const T *noalias x0, [const T *noalias x1,] T *noalias y,
 *              int64 n) { for (i = 0; i < n; i++) y[i] = f(x0[i], x1[i]); }
 * with the call made by cg_llvm_vmath_call */
static void add_map(LLVMModuleRef m, const CgLlvmVmathFn *f) {
  LLVMContextRef c = LLVMGetModuleContext(m);
  LLVMTypeRef t = scalar(c, f->dtype), i64 = LLVMInt64TypeInContext(c);
  LLVMTypeRef ptr = LLVMPointerType(t, 0);
  unsigned nptr = (unsigned)f->arity + 1;
  LLVMTypeRef params[4] = {ptr, ptr, ptr, ptr};
  params[nptr] = i64;
  LLVMValueRef fn = LLVMAddFunction(
      m, map_name(f->name),
      LLVMFunctionType(LLVMVoidTypeInContext(c), params, nptr + 1, 0));
  LLVMAttributeRef noalias = LLVMCreateEnumAttribute(
      c, LLVMGetEnumAttributeKindForName("noalias", 7), 0);
  for (unsigned p = 0; p < nptr; p++)
    LLVMAddAttributeAtIndex(fn, p + 1, noalias); /* parameters from 1 */
  LLVMBuilderRef b = LLVMCreateBuilderInContext(c);
  LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(c, fn, "entry");
  LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(c, fn, "head");
  LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(c, fn, "body");
  LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(c, fn, "exit");
  LLVMPositionBuilderAtEnd(b, entry);
  LLVMBuildBr(b, head);
  LLVMPositionBuilderAtEnd(b, head);
  LLVMValueRef i = LLVMBuildPhi(b, i64, "i");
  LLVMBuildCondBr(b,
                  LLVMBuildICmp(b, LLVMIntSLT, i, LLVMGetParam(fn, nptr), ""),
                  body, exit);
  LLVMPositionBuilderAtEnd(b, body);
  LLVMValueRef args[2];
  for (int a = 0; a < f->arity; a++)
    args[a] = LLVMBuildLoad2(
        b, t,
        LLVMBuildInBoundsGEP2(b, t, LLVMGetParam(fn, (unsigned)a), &i, 1, ""),
        "");
  LLVMValueRef y = cg_llvm_vmath_call(b, f->name, args, (unsigned)f->arity);
  cr_assert(y, "no call of %s", f->name);
  LLVMBuildStore(
      b, y, LLVMBuildInBoundsGEP2(b, t, LLVMGetParam(fn, nptr - 1), &i, 1, ""));
  LLVMValueRef next = LLVMBuildNSWAdd(b, i, LLVMConstInt(i64, 1, 0), "next");
  LLVMBuildBr(b, head);
  LLVMValueRef values[] = {LLVMConstInt(i64, 0, 0), next};
  LLVMBasicBlockRef blocks[] = {entry, body};
  LLVMAddIncoming(i, values, blocks, 2);
  LLVMPositionBuilderAtEnd(b, exit);
  LLVMBuildRetVoid(b);
  LLVMDisposeBuilder(b);
}

/* map_<f> for every table function of dtype t (DT_COUNT: all) */
static void add_maps(LLVMModuleRef m, DType t) {
  for (const CgLlvmVmathFn *f = cg_llvm_vmath_functions; f->name; f++)
    if (t == DT_COUNT || f->dtype == t)
      add_map(m, f);
}

static char *value_text(LLVMValueRef v) {
  char *text = LLVMPrintValueToString(v);
  char *copy = strdup(text);
  LLVMDisposeMessage(text);
  return copy;
}

/* Optimizes a copy of m for t as the JIT will and checks every map_<f>:
 * no call of a vmath function left (inlined), f32 loops of the functions
 * in `vector_ones` vectorized with t's widest vectors, no fast-math, no
 * contraction, no attribute for x86 carried in. */
static void check_optimized(const CgLlvmTarget *t, LLVMModuleRef m,
                            bool all_f32_vectorize) {
  LLVMModuleRef copy = LLVMCloneModule(m);
  cr_assert(cg_llvm_optimize(t, copy, &d), "%s", diag_text());
  bool wide = strstr(t->features, "+avx512f") || strstr(t->features, "+avx2");
  for (LLVMValueRef fn = LLVMGetFirstFunction(copy); fn;
       fn = LLVMGetNextFunction(fn)) {
    size_t len;
    const char *name = LLVMGetValueName2(fn, &len);
    if (LLVMIsDeclaration(fn)) {
      /* only libm's and intrinsics are left to call */
      cr_assert(strncmp(name, "mc_", 3) && strncmp(name, "op_", 3),
                "%s is still declared", name);
      continue;
    }
    cr_assert(!strncmp(name, "map_", 4), "%s is still defined", name);
    const CgLlvmVmathFn *f = cg_llvm_vmath_find(name + 4);
    cr_assert(f);
    char *text = value_text(fn);
    cr_assert_null(strstr(text, "@mc_"), "not inlined:\n%s", text);
    cr_assert_null(strstr(text, "@op_"), "not inlined:\n%s", text);
    cr_assert_null(strstr(text, " fast "), "fast-math:\n%s", text);
    cr_assert_null(strstr(text, "fmuladd"), "contracted:\n%s", text);
    bool vectorizes = f->dtype == DT_F32 && (!strncmp(f->name, "mc_", 3) ||
                                             !strcmp(f->name, "op_max_f32") ||
                                             !strcmp(f->name, "op_min_f32"));
    if (vectorizes && all_f32_vectorize) {
      cr_assert(strstr(text, "vector.body"), "not vectorized:\n%s", text);
      if (wide)
        cr_assert(strstr(text, "<16 x float>") || strstr(text, "<8 x float>"),
                  "%s: no 256- or 512-bit vectors for %s (%s):\n%s", f->name,
                  t->cpu, t->features, text);
    }
    free(text);
  }
  char *text = module_text(copy);
  cr_assert_null(strstr(text, "target-cpu"), "%s", text);
  cr_assert_null(strstr(text, "target-features"), "%s", text);
  cr_assert_null(strstr(text, "tune-cpu"), "%s", text);
  free(text);
  LLVMDisposeModule(copy);
}

/* ---- inputs ------------------------------------------------------------- */

static const float f32_specials[] = {
    0.0f,
    -0.0f,
    INFINITY,
    -INFINITY,
    NAN,
    -NAN,
    1.0f,
    -1.0f,
    0.5f,
    -0.5f,
    2.0f,
    3.0f,
    -3.0f,
    0.1f,
    -7.25f,
    FLT_MIN,
    -FLT_MIN,
    FLT_MAX,
    -FLT_MAX,
    FLT_TRUE_MIN,
    -FLT_TRUE_MIN,
    0x1.fffffcp-127f, /* largest subnormal */
    -0x1.fffffcp-127f,
    0x1p-24f,
    0x1p-63f,
    0x1.62fc48p-2f,
    0x1.46p-140f,
    0x1.94c588p-22f,
    0x1.713746p-12f,
    -0x1.194996p+0f,
    0x1.91b4p-135f,
    88.72283f,
    88.72284f,
    89.0f,
    -87.33655f,
    -103.97208f,
    -104.0f,
    -30.0f,
    -17.32868f,
    17.3287f,
    9.0109f,
    0.625f,
    3.9192f,
    3.9375f,
    1e10f,
    -1e10f,
    1e30f,
    -1e-9f,
};
enum { N_F32_SPECIALS = sizeof f32_specials / sizeof *f32_specials };

/* every 4099th bit pattern of the 2^32 floats, then the specials and
 * NaNs with payloads of both signs */
static float *f32_sweep(size_t *n) {
  size_t cap = (size_t)(UINT64_C(1) << 32) / 4099 + 1 + N_F32_SPECIALS + 4;
  float *x = malloc(cap * sizeof *x);
  cr_assert(x);
  size_t k = 0;
  for (uint64_t u = 0; u < (UINT64_C(1) << 32); u += 4099)
    x[k++] = f32_of((uint32_t)u);
  for (int i = 0; i < N_F32_SPECIALS; i++)
    x[k++] = f32_specials[i];
  x[k++] = f32_of(0x7fa00001u); /* signaling */
  x[k++] = f32_of(0xffc12345u);
  x[k++] = f32_of(0x7f812345u);
  x[k++] = f32_of(0xff800001u);
  cr_assert_leq(k, cap);
  cr_assert_gt(k, 1000000);
  *n = k;
  return x;
}

static uint64_t lcg(uint64_t *state) {
  *state = *state * 6364136223846793005u + 1442695040888963407u;
  return *state >> 11 ^ *state << 7;
}

enum { N_PAIRS = 600 };

static const double f64_specials[] = {
    0.0,     -0.0,     INFINITY,     -INFINITY,     NAN,     -NAN,    1.0,
    -1.0,    0.5,      -0.5,         2.0,           3.0,     -3.0,    7.5,
    -7.5,    0.1,      -0.1,         1e-300,        -1e-300, DBL_MIN, -DBL_MIN,
    DBL_MAX, -DBL_MAX, DBL_TRUE_MIN, -DBL_TRUE_MIN, 709.7,   710.0,   -745.2,
    -746.0,  30.0,     -30.0,        1e300,         -1e300,  0x1p-30, -0x1p-60,
    20.0,    -20.0,    1e-8,         5.5,           -2.5};
enum { N_F64_SPECIALS = sizeof f64_specials / sizeof *f64_specials };

/* N_PAIRS f64 (or f32) pairs: the specials against each other, then
 * random ones, half of them bit patterns */
static void f64_pairs(double *a, double *b) {
  uint64_t s = 42;
  for (int i = 0; i < N_PAIRS; i++) {
    if (i < N_F64_SPECIALS * 8) {
      a[i] = f64_specials[i % N_F64_SPECIALS];
      b[i] = f64_specials[(i / N_F64_SPECIALS * 7 + i) % N_F64_SPECIALS];
    } else if (i % 2) {
      a[i] = f64_of(lcg(&s));
      b[i] = f64_of(lcg(&s));
    } else {
      a[i] = (double)(int64_t)(lcg(&s) % 2001 - 1000) / 8.0;
      b[i] = (double)(int64_t)(lcg(&s) % 41 - 20) / 4.0;
    }
  }
}

static void f32_pairs(float *a, float *b) {
  uint64_t s = 7;
  for (int i = 0; i < N_PAIRS; i++) {
    if (i < N_F32_SPECIALS * 8) {
      a[i] = f32_specials[i % N_F32_SPECIALS];
      b[i] = f32_specials[(i / N_F32_SPECIALS * 5 + i) % N_F32_SPECIALS];
    } else if (i % 2) {
      a[i] = f32_of((uint32_t)lcg(&s));
      b[i] = f32_of((uint32_t)lcg(&s));
    } else {
      a[i] = (float)(int64_t)(lcg(&s) % 2001 - 1000) / 8.0f;
      b[i] = (float)(int64_t)(lcg(&s) % 41 - 20) / 4.0f;
    }
  }
}

static const int64_t int_specials[] = {0,
                                       1,
                                       -1,
                                       2,
                                       -2,
                                       3,
                                       -3,
                                       7,
                                       -7,
                                       10,
                                       -10,
                                       13,
                                       100,
                                       -100,
                                       2147483647,
                                       -2147483647 - 1,
                                       INT64_MAX,
                                       INT64_MIN,
                                       INT64_MIN + 1,
                                       4294967296};
enum { N_INT_SPECIALS = sizeof int_specials / sizeof *int_specials };

/* every pair of the specials, then random ones; i32 inputs are the low
 * 32 bits */
static void int_pairs(int64_t *a, int64_t *b) {
  uint64_t s = 99;
  for (int i = 0; i < N_PAIRS; i++) {
    if (i < N_INT_SPECIALS * N_INT_SPECIALS) {
      a[i] = int_specials[i / N_INT_SPECIALS];
      b[i] = int_specials[i % N_INT_SPECIALS];
    } else if (i % 3 == 0) {
      a[i] = (int64_t)lcg(&s);
      b[i] = (int64_t)lcg(&s);
    } else {
      a[i] = (int64_t)lcg(&s) >> (lcg(&s) % 60);
      b[i] = (int64_t)(lcg(&s) % 201) - 100;
    }
  }
}

/* ---- running and comparing ---------------------------------------------- */

static const CFunction *c_function(const char *name) {
  for (int i = 0; i < N_FUNCTIONS; i++)
    if (!strcmp(c_functions[i].name, name))
      return &c_functions[i];
  cr_assert_fail("no C function %s", name);
  return NULL;
}

static uintptr_t lookup_map(CgLlvmJit *jit, const char *name) {
  uintptr_t p = cg_llvm_jit_lookup(jit, map_name(name), &d);
  cr_assert(p, "%s", diag_text());
  return p;
}

typedef void (*MapF32)(const float *, float *, int64_t);

/* map_<name> over the f32 sweep against the C function, bit for bit */
static void compare_f32_sweep(CgLlvmJit *jit, const char *name, const float *x,
                              size_t n) {
  MapF32 map = (MapF32)lookup_map(jit, name);
  F32Fn fn = c_function(name)->f32;
  float *y = malloc(n * sizeof *y);
  cr_assert(y);
  map(x, y, (int64_t)n);
  for (size_t i = 0; i < n; i++) {
    float want = fn(x[i]);
    cr_assert_eq(f32_bits(y[i]), f32_bits(want),
                 "%s(%a = 0x%08x): LLVM %a (0x%08x), C %a (0x%08x)", name,
                 (double)x[i], f32_bits(x[i]), (double)y[i], f32_bits(y[i]),
                 (double)want, f32_bits(want));
  }
  free(y);
}

/* Every table function but the f32 ones of mc_vmath.h (compare_f32_sweep)
 * on N_PAIRS inputs (pairs for the op_*). */
static void compare_pairs(CgLlvmJit *jit, const CgLlvmVmathFn *f) {
  const CFunction *c = c_function(f->name);
  static double da[N_PAIRS], db[N_PAIRS], dy[N_PAIRS];
  static float fa[N_PAIRS], fb[N_PAIRS], fy[N_PAIRS];
  static int64_t la[N_PAIRS], lb[N_PAIRS], ly[N_PAIRS];
  static int32_t ia[N_PAIRS], ib[N_PAIRS], iy[N_PAIRS];
  f64_pairs(da, db);
  f32_pairs(fa, fb);
  int_pairs(la, lb);
  for (int i = 0; i < N_PAIRS; i++) {
    ia[i] = (int32_t)(uint32_t)(uint64_t)la[i];
    ib[i] = (int32_t)(uint32_t)(uint64_t)lb[i];
  }
  uintptr_t map = lookup_map(jit, f->name);
  if (c->f32) {
    /* the f32 ones of mc_vmath.h on these too */
    ((MapF32)map)(fa, fy, N_PAIRS);
    for (int i = 0; i < N_PAIRS; i++)
      cr_assert_eq(f32_bits(fy[i]), f32_bits(c->f32(fa[i])), "%s(%a)", f->name,
                   (double)fa[i]);
  } else if (c->f64) {
    ((void (*)(const double *, double *, int64_t))map)(da, dy, N_PAIRS);
    for (int i = 0; i < N_PAIRS; i++)
      cr_assert_eq(f64_bits(dy[i]), f64_bits(c->f64(da[i])),
                   "%s(%a): LLVM %a, C %a", f->name, da[i], dy[i],
                   c->f64(da[i]));
  } else if (c->f32_2) {
    ((void (*)(const float *, const float *, float *, int64_t))map)(fa, fb, fy,
                                                                    N_PAIRS);
    for (int i = 0; i < N_PAIRS; i++)
      cr_assert_eq(f32_bits(fy[i]), f32_bits(c->f32_2(fa[i], fb[i])),
                   "%s(%a, %a): LLVM %a, C %a", f->name, (double)fa[i],
                   (double)fb[i], (double)fy[i],
                   (double)c->f32_2(fa[i], fb[i]));
  } else if (c->f64_2) {
    ((void (*)(const double *, const double *, double *, int64_t))map)(
        da, db, dy, N_PAIRS);
    for (int i = 0; i < N_PAIRS; i++)
      cr_assert_eq(f64_bits(dy[i]), f64_bits(c->f64_2(da[i], db[i])),
                   "%s(%a, %a): LLVM %a, C %a", f->name, da[i], db[i], dy[i],
                   c->f64_2(da[i], db[i]));
  } else if (c->i32_2) {
    ((void (*)(const int32_t *, const int32_t *, int32_t *, int64_t))map)(
        ia, ib, iy, N_PAIRS);
    for (int i = 0; i < N_PAIRS; i++)
      cr_assert_eq(iy[i], c->i32_2(ia[i], ib[i]), "%s(%d, %d)", f->name, ia[i],
                   ib[i]);
  } else {
    ((void (*)(const int64_t *, const int64_t *, int64_t *, int64_t))map)(
        la, lb, ly, N_PAIRS);
    for (int i = 0; i < N_PAIRS; i++)
      cr_assert_eq(ly[i], c->i64_2(la[i], lb[i]), "%s(%lld, %lld)", f->name,
                   (long long)la[i], (long long)lb[i]);
  }
}

/* ---- tests -------------------------------------------------------------- */

/* The edge cases the comments of mc_ops.h name are among the inputs. */
Test(llvm_vmath, inputs_have_the_edge_cases) {
  static int64_t a[N_PAIRS], b[N_PAIRS];
  int_pairs(a, b);
  bool zero = false, minus_one = false, int32_min_by_minus_one = false,
       int64_min_by_minus_one = false;
  for (int i = 0; i < N_PAIRS; i++) {
    zero |= b[i] == 0;
    minus_one |= b[i] == -1;
    int32_min_by_minus_one |= a[i] == INT32_MIN && b[i] == -1;
    int64_min_by_minus_one |= a[i] == INT64_MIN && b[i] == -1;
  }
  cr_assert(zero && minus_one && int32_min_by_minus_one &&
            int64_min_by_minus_one);
  static float fa[N_PAIRS], fb[N_PAIRS];
  f32_pairs(fa, fb);
  bool nan_a = false, nan_b = false, by_zero = false, neg_by_pos = false;
  for (int i = 0; i < N_PAIRS; i++) {
    nan_a |= isnan(fa[i]) && !isnan(fb[i]);
    nan_b |= isnan(fb[i]) && !isnan(fa[i]);
    by_zero |= fb[i] == 0 && fa[i] != 0;
    neg_by_pos |= fa[i] < 0 && fb[i] > 0 && isfinite(fa[i]);
  }
  cr_assert(nan_a && nan_b && by_zero && neg_by_pos);
}

Test(llvm_vmath, f32_functions_inline_vectorize_and_match_c) {
  CgLlvmJit *jit = cg_llvm_jit_create(2, &d);
  cr_assert(jit, "%s", diag_text());
  LLVMModuleRef m =
      LLVMModuleCreateWithNameInContext("f32", cg_llvm_jit_context(jit));
  add_maps(m, DT_F32);
  cr_assert(cg_llvm_link_vmath(m, &d), "%s", diag_text());
  cr_assert(cg_llvm_verify(m, &d), "%s", diag_text());
  check_optimized(cg_llvm_jit_target(jit), m, true);
  cr_assert(cg_llvm_jit_add_module(jit, m, &d), "%s", diag_text());

  size_t n;
  float *x = f32_sweep(&n);
  for (const CgLlvmVmathFn *f = cg_llvm_vmath_functions; f->name; f++)
    if (f->dtype == DT_F32 && f->arity == 1)
      compare_f32_sweep(jit, f->name, x, n);
  free(x);
  for (const CgLlvmVmathFn *f = cg_llvm_vmath_functions; f->name; f++)
    if (f->dtype == DT_F32)
      compare_pairs(jit, f);
  cr_assert_eq(d.nerrors, 0, "%s", diag_text());
  cg_llvm_jit_free(jit);
}

Test(llvm_vmath, f64_and_integer_functions_inline_and_match_c) {
  CgLlvmJit *jit = cg_llvm_jit_create(2, &d);
  cr_assert(jit, "%s", diag_text());
  LLVMModuleRef m =
      LLVMModuleCreateWithNameInContext("others", cg_llvm_jit_context(jit));
  add_maps(m, DT_F64);
  add_maps(m, DT_I32);
  add_maps(m, DT_I64);
  cr_assert(cg_llvm_link_vmath(m, &d), "%s", diag_text());
  check_optimized(cg_llvm_jit_target(jit), m, true);
  cr_assert(cg_llvm_jit_add_module(jit, m, &d), "%s", diag_text());
  for (const CgLlvmVmathFn *f = cg_llvm_vmath_functions; f->name; f++)
    if (f->dtype != DT_F32)
      compare_pairs(jit, f);
  cg_llvm_jit_free(jit);
}

/* At -O0 the functions are still inlined (alwaysinline) and give the
 * same bits. */
Test(llvm_vmath, unoptimized_jit_matches_c) {
  CgLlvmJit *jit = cg_llvm_jit_create(0, &d);
  cr_assert(jit, "%s", diag_text());
  LLVMModuleRef m =
      LLVMModuleCreateWithNameInContext("o0", cg_llvm_jit_context(jit));
  add_maps(m, DT_COUNT);
  cr_assert(cg_llvm_link_vmath(m, &d), "%s", diag_text());
  check_optimized(cg_llvm_jit_target(jit), m, false);
  cr_assert(cg_llvm_jit_add_module(jit, m, &d), "%s", diag_text());
  for (const CgLlvmVmathFn *f = cg_llvm_vmath_functions; f->name; f++)
    compare_pairs(jit, f);
  cg_llvm_jit_free(jit);
}

/* What the linked module holds before optimization. */
Test(llvm_vmath, linked_functions_are_internal_and_portable) {
  LLVMModuleRef m = LLVMModuleCreateWithNameInContext("linked", ctx);
  add_maps(m, DT_COUNT);
  cr_assert(cg_llvm_link_vmath(m, &d), "%s", diag_text());
  cr_assert(cg_llvm_verify(m, &d), "%s", diag_text());
  unsigned always = LLVMGetEnumAttributeKindForName("alwaysinline", 12);
  int defined = 0;
  for (LLVMValueRef fn = LLVMGetFirstFunction(m); fn;
       fn = LLVMGetNextFunction(fn)) {
    size_t len;
    const char *name = LLVMGetValueName2(fn, &len);
    if (LLVMIsDeclaration(fn) || !strncmp(name, "map_", 4))
      continue;
    defined++;
    cr_assert_eq(LLVMGetLinkage(fn), LLVMInternalLinkage, "%s", name);
    cr_assert(
        LLVMGetEnumAttributeAtIndex(fn, LLVMAttributeFunctionIndex, always),
        "%s is not alwaysinline", name);
  }
  /* the table's 24 and mc_vmath.h's 6 internal helpers */
  cr_assert_eq(defined, 30);
  for (const CgLlvmVmathFn *f = cg_llvm_vmath_functions; f->name; f++) {
    LLVMValueRef fn = LLVMGetNamedFunction(m, f->name);
    cr_assert(fn && !LLVMIsDeclaration(fn), "%s", f->name);
  }
  char *text = module_text(m);
  static const char *const absent[] = {
      "target-cpu", "target-features", "tune-cpu",   "optnone",
      "noinline",   "PIE Level",       "llvm.ident", "x86"};
  for (size_t i = 0; i < sizeof absent / sizeof *absent; i++)
    cr_assert_null(strstr(text, absent[i]), "'%s' in:\n%s", absent[i], text);
  /* libm stays external */
  static const char *const libm[] = {
      "declare double @exp(double",  "declare double @expm1(double",
      "declare double @log(double",  "declare double @log1p(double",
      "declare double @tanh(double", "declare double @erf(double",
      "declare float @fmodf(float",  "declare double @fmod(double"};
  for (size_t i = 0; i < sizeof libm / sizeof *libm; i++)
    cr_assert(strstr(text, libm[i]), "no '%s' in:\n%s", libm[i], text);
  free(text);
  LLVMDisposeModule(m);
}

/* Every `static inline` function of the two headers is in the bitcode, and
 * every one but mc_vmath.h's internal helpers (mc_vmath_*) in the table. */
static int check_header(const char *file, LLVMModuleRef linked) {
  char path[512];
  snprintf(path, sizeof path, "%s/runtime/%s", MC_SOURCE_DIR, file);
  FILE *f = fopen(path, "r");
  cr_assert(f, "cannot open %s", path);
  char line[512];
  int public = 0;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "static inline ", 14))
      continue;
    /* "static inline <type> <name>(" */
    char *paren = strchr(line, '(');
    cr_assert(paren, "%s", line);
    char *name = paren;
    while (name > line && name[-1] != ' ')
      name--;
    *paren = 0;
    LLVMValueRef fn = LLVMGetNamedFunction(linked, name);
    cr_assert(fn && !LLVMIsDeclaration(fn), "%s: %s is not in the bitcode",
              file, name);
    if (!strncmp(name, "mc_vmath_", 9))
      continue;
    cr_assert(cg_llvm_vmath_find(name), "%s: %s is not in the table", file,
              name);
    public++;
  }
  fclose(f);
  return public;
}

Test(llvm_vmath, table_has_every_header_function) {
  LLVMModuleRef m = LLVMModuleCreateWithNameInContext("all", ctx);
  /* declared by the table's types first: linking checks they fit */
  int rows = 0;
  for (const CgLlvmVmathFn *f = cg_llvm_vmath_functions; f->name; f++) {
    cr_assert(cg_llvm_vmath_function(m, f->name));
    cr_assert_eq(cg_llvm_vmath_function(m, f->name),
                 LLVMGetNamedFunction(m, f->name));
    rows++;
  }
  cr_assert(cg_llvm_link_vmath(m, &d), "%s", diag_text());
  int public = check_header("mc_vmath.h", m) + check_header("mc_ops.h", m);
  cr_assert_eq(public, rows);
  cr_assert_eq(rows, N_FUNCTIONS);
  LLVMDisposeModule(m);
}

Test(llvm_vmath, two_modules_two_contexts) {
  /* two JITs, each with two modules calling mc_expf: internal copies,
   * no duplicate symbols */
  for (int j = 0; j < 2; j++) {
    CgLlvmJit *jit = cg_llvm_jit_create(2, &d);
    cr_assert(jit, "%s", diag_text());
    const CgLlvmVmathFn *fns[] = {cg_llvm_vmath_find("mc_expf"),
                                  cg_llvm_vmath_find("mc_tanhf")};
    for (int k = 0; k < 2; k++) {
      LLVMModuleRef m = LLVMModuleCreateWithNameInContext(
          k ? "second" : "first", cg_llvm_jit_context(jit));
      add_map(m, fns[k]);
      /* both call mc_expf: mc_tanhf does */
      cr_assert(cg_llvm_link_vmath(m, &d), "%s", diag_text());
      cr_assert(cg_llvm_jit_add_module(jit, m, &d), "%s", diag_text());
    }
    for (int k = 0; k < 2; k++) {
      MapF32 map = (MapF32)lookup_map(jit, fns[k]->name);
      F32Fn fn = c_function(fns[k]->name)->f32;
      float x[N_F32_SPECIALS], y[N_F32_SPECIALS];
      memcpy(x, f32_specials, sizeof x);
      map(x, y, N_F32_SPECIALS);
      for (int i = 0; i < N_F32_SPECIALS; i++)
        cr_assert_eq(f32_bits(y[i]), f32_bits(fn(x[i])), "%s(%a)", fns[k]->name,
                     (double)x[i]);
    }
    cg_llvm_jit_free(jit);
  }
  /* and a module of a plain context */
  LLVMModuleRef m = LLVMModuleCreateWithNameInContext("plain", ctx);
  add_maps(m, DT_F32);
  cr_assert(cg_llvm_link_vmath(m, &d), "%s", diag_text());
  cr_assert(cg_llvm_verify(m, &d), "%s", diag_text());
  LLVMDisposeModule(m);
  cr_assert_eq(d.nerrors, 0);
}

Test(llvm_vmath, module_for_aarch64) {
  CgLlvmTargetOptions o = {"aarch64-linux-gnu", NULL, NULL, 2};
  CgLlvmTarget *t = cg_llvm_target_create(&o, &d);
  cr_assert(t, "%s", diag_text());
  LLVMModuleRef m = LLVMModuleCreateWithNameInContext("arm", ctx);
  cg_llvm_target_setup_module(t, m);
  add_maps(m, DT_COUNT);
  cr_assert(cg_llvm_link_vmath(m, &d), "%s", diag_text());
  cr_assert_str_eq(LLVMGetTarget(m), "aarch64-unknown-linux-gnu");
  cr_assert(cg_llvm_verify(m, &d), "%s", diag_text());
  char *linked = module_text(m);
  cr_assert_null(strstr(linked, "x86"), "%s", linked);
  cr_assert_null(strstr(linked, "sse"), "%s", linked);
  free(linked);
  check_optimized(t, m, true);
  LLVMModuleRef copy = LLVMCloneModule(m);
  cr_assert(cg_llvm_optimize(t, copy, &d), "%s", diag_text());
  char *text = value_text(LLVMGetNamedFunction(copy, "map_mc_erff"));
  cr_assert(strstr(text, "<4 x float>"), "not vectorized for NEON:\n%s", text);
  free(text);
  LLVMDisposeModule(copy);
  char path[512];
  snprintf(path, sizeof path, "%s/vmath.o", dir);
  cr_assert(cg_llvm_write_object(t, m, path, &d), "%s", diag_text());
  cr_assert_eq(elf_machine(path), EM_AARCH64);
  cr_assert_eq(d.nerrors, 0, "%s", diag_text());
  LLVMDisposeModule(m);
  cg_llvm_target_free(t);
}

Test(llvm_vmath, misuse_is_reported) {
  cr_assert_null(cg_llvm_vmath_find("exp"));
  LLVMModuleRef m = LLVMModuleCreateWithNameInContext("misuse", ctx);
  cr_assert_null(cg_llvm_vmath_function(m, "mc_vmath_bits")); /* internal */
  cr_assert_null(cg_llvm_vmath_function(m, "expf"));

  /* a call with the wrong number of arguments is refused */
  LLVMTypeRef f32 = LLVMFloatTypeInContext(ctx);
  LLVMValueRef fn =
      LLVMAddFunction(m, "f", LLVMFunctionType(f32, &f32, 1, false));
  LLVMBuilderRef b = LLVMCreateBuilderInContext(ctx);
  LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(ctx, fn, "e"));
  LLVMValueRef args[] = {LLVMGetParam(fn, 0), LLVMGetParam(fn, 0)};
  cr_assert_null(cg_llvm_vmath_call(b, "mc_expf", args, 2));
  cr_assert_null(cg_llvm_vmath_call(b, "op_max_f32", args, 1));
  cr_assert_null(cg_llvm_vmath_call(b, "nothing", args, 1));
  LLVMBuildRet(b, cg_llvm_vmath_call(b, "mc_expf", args, 1));
  LLVMDisposeBuilder(b);

  /* linking twice: the second finds the definitions */
  cr_assert(cg_llvm_link_vmath(m, &d), "%s", diag_text());
  cr_assert_not(cg_llvm_link_vmath(m, &d));
  assert_diag("LLVM module 'misuse' already defines '");
  assert_diag("' (linked twice?)");
  cr_assert(cg_llvm_verify(m, &d), "%s", diag_text());
  /* LLVM's default handler is back (NULL: print, and exit on errors) */
  cr_assert_null(LLVMContextGetDiagnosticHandler(ctx));
  LLVMDisposeModule(m);

  /* a declaration of another type */
  m = LLVMModuleCreateWithNameInContext("wrong_type", ctx);
  LLVMTypeRef f64 = LLVMDoubleTypeInContext(ctx);
  LLVMAddFunction(m, "mc_expf", LLVMFunctionType(f64, &f64, 1, false));
  cr_assert_not(cg_llvm_link_vmath(m, &d));
  assert_diag("LLVM module 'wrong_type' declares 'mc_expf' as double "
              "(double), the runtime's is float (float)");
  cr_assert_null(LLVMGetNamedFunction(m, "mc_logf")); /* unchanged */
  int errors = d.nerrors;
  cr_assert_eq(errors, 2, "%s", diag_text());
  LLVMDisposeModule(m);
}
