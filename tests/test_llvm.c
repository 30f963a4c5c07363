/* The LLVM backend's foundation (codegen/llvm_target.h, llvm_jit.h): small
 * functions built with LLVM's IR builder are verified, optimized for this
 * machine or another target, written as .ll and .o files, and run in the
 * JIT, also calling the runtime linked into this program. Checks: the loop
 * vectorizer uses the host's vector width, floating point stays IEEE (no
 * contraction, no folding of x * c / c), names LLVM does not know are
 * errors, and a failed write leaves no file behind.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <elf.h>
#include <llvm-c/Core.h>
#include <llvm-c/IRReader.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "llvm_jit.h"
#include "llvm_target.h"
#include "mc_bpe.h"
#include "mc_runtime.h"

/* the suite's Diag d, dir, ctx (after the headers: d shadows nothing) */
#include "llvm_fixture.h"

static void setup(void) {
  llvm_fixture_setup("test_llvm");
}
static void teardown(void) {
  llvm_fixture_teardown();
}

TestSuite(llvm, .init = setup, .fini = teardown);

static char *path_in_dir(const char *name) {
  static char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return path;
}

/* ---- building functions ------------------------------------------------ */

static LLVMTypeRef f32_type(LLVMContextRef c) {
  return LLVMFloatTypeInContext(c);
}
static LLVMTypeRef i64_type(LLVMContextRef c) {
  return LLVMInt64TypeInContext(c);
}

/* fn's entry block, with the builder at its end */
static LLVMBuilderRef begin_function(LLVMValueRef fn) {
  LLVMContextRef c = LLVMGetTypeContext(LLVMTypeOf(fn));
  LLVMBuilderRef b = LLVMCreateBuilderInContext(c);
  LLVMPositionBuilderAtEnd(b, LLVMAppendBasicBlockInContext(c, fn, "entry"));
  return b;
}

/* float axpy(float a, float x, float y) { return a * x + y; } */
static void add_axpy(LLVMModuleRef m) {
  LLVMContextRef c = LLVMGetModuleContext(m);
  LLVMTypeRef params[] = {f32_type(c), f32_type(c), f32_type(c)};
  LLVMValueRef fn =
      LLVMAddFunction(m, "axpy", LLVMFunctionType(f32_type(c), params, 3, 0));
  LLVMBuilderRef b = begin_function(fn);
  LLVMValueRef ax =
      LLVMBuildFMul(b, LLVMGetParam(fn, 0), LLVMGetParam(fn, 1), "ax");
  LLVMBuildRet(b, LLVMBuildFAdd(b, ax, LLVMGetParam(fn, 2), "axpy"));
  LLVMDisposeBuilder(b);
}

typedef void (*LoopBody)(LLVMBuilderRef b, LLVMValueRef fn, LLVMValueRef i);

/* for (i = begin; i < end; i++) body(i); the builder ends after the loop */
static void build_loop(LLVMBuilderRef b, LLVMValueRef fn, LLVMValueRef begin,
                       LLVMValueRef end, LoopBody body) {
  LLVMContextRef c = LLVMGetTypeContext(LLVMTypeOf(fn));
  LLVMBasicBlockRef entry = LLVMGetInsertBlock(b);
  LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(c, fn, "head");
  LLVMBasicBlockRef loop = LLVMAppendBasicBlockInContext(c, fn, "loop");
  LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(c, fn, "exit");
  LLVMBuildBr(b, head);
  LLVMPositionBuilderAtEnd(b, head);
  LLVMValueRef i = LLVMBuildPhi(b, i64_type(c), "i");
  LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, i, end, ""), loop, exit);
  LLVMPositionBuilderAtEnd(b, loop);
  body(b, fn, i);
  LLVMValueRef next =
      LLVMBuildNSWAdd(b, i, LLVMConstInt(i64_type(c), 1, 0), "next");
  LLVMBuildBr(b, head);
  LLVMValueRef values[] = {begin, next};
  LLVMBasicBlockRef blocks[] = {entry, loop};
  LLVMAddIncoming(i, values, blocks, 2);
  LLVMPositionBuilderAtEnd(b, exit);
}

static LLVMValueRef element(LLVMBuilderRef b, LLVMValueRef base,
                            LLVMValueRef i) {
  LLVMContextRef c = LLVMGetTypeContext(LLVMTypeOf(base));
  return LLVMBuildInBoundsGEP2(b, f32_type(c), base, &i, 1, "");
}

/* y[i] = a * x[i] + y[i] */
static void saxpy_body(LLVMBuilderRef b, LLVMValueRef fn, LLVMValueRef i) {
  LLVMContextRef c = LLVMGetTypeContext(LLVMTypeOf(fn));
  LLVMValueRef xi = element(b, LLVMGetParam(fn, 1), i);
  LLVMValueRef yi = element(b, LLVMGetParam(fn, 2), i);
  LLVMValueRef ax = LLVMBuildFMul(b, LLVMGetParam(fn, 0),
                                  LLVMBuildLoad2(b, f32_type(c), xi, ""), "");
  LLVMBuildStore(
      b, LLVMBuildFAdd(b, ax, LLVMBuildLoad2(b, f32_type(c), yi, ""), ""), yi);
}

/* void saxpy(float a, const float *noalias x, float *noalias y, int64 n) */
static void add_saxpy(LLVMModuleRef m) {
  LLVMContextRef c = LLVMGetModuleContext(m);
  LLVMTypeRef ptr = LLVMPointerType(f32_type(c), 0);
  LLVMTypeRef params[] = {f32_type(c), ptr, ptr, i64_type(c)};
  LLVMValueRef fn = LLVMAddFunction(
      m, "saxpy", LLVMFunctionType(LLVMVoidTypeInContext(c), params, 4, 0));
  LLVMAttributeRef noalias = LLVMCreateEnumAttribute(
      c, LLVMGetEnumAttributeKindForName("noalias", 7), 0);
  LLVMAddAttributeAtIndex(fn, 2, noalias); /* parameters count from 1 */
  LLVMAddAttributeAtIndex(fn, 3, noalias);
  LLVMBuilderRef b = begin_function(fn);
  build_loop(b, fn, LLVMConstInt(i64_type(c), 0, 0), LLVMGetParam(fn, 3),
             saxpy_body);
  LLVMBuildRetVoid(b);
  LLVMDisposeBuilder(b);
}

/* float scale_back(float x) { return x * 0x1p-140f / 0x1p-140f; } */
static void add_scale_back(LLVMModuleRef m) {
  LLVMContextRef c = LLVMGetModuleContext(m);
  LLVMTypeRef param = f32_type(c);
  LLVMValueRef fn = LLVMAddFunction(
      m, "scale_back", LLVMFunctionType(f32_type(c), &param, 1, 0));
  LLVMBuilderRef b = begin_function(fn);
  LLVMValueRef scale = LLVMConstReal(f32_type(c), 0x1p-140);
  LLVMValueRef tiny = LLVMBuildFMul(b, LLVMGetParam(fn, 0), scale, "tiny");
  LLVMBuildRet(b, LLVMBuildFDiv(b, tiny, scale, "back"));
  LLVMDisposeBuilder(b);
}

static uint32_t float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

/* ---- targets ----------------------------------------------------------- */

Test(llvm, host_target) {
  CgLlvmTarget *t = cg_llvm_target_create(NULL, &d);
  cr_assert(t, "%s", diag_text());
  cr_assert_eq(t->opt_level, 2);
  cr_assert(strlen(t->triple) > 0);
  /* t->cpu is "" where LLVM 14 does not know this CPU (it says
   * "generic"); the features are this machine's either way */
#if defined(__x86_64__)
  cr_assert(strstr(t->features, "+sse2"), "features: %s", t->features);
#endif
  LLVMModuleRef m = LLVMModuleCreateWithNameInContext("layout", ctx);
  cg_llvm_target_setup_module(t, m);
  cr_assert_str_eq(LLVMGetTarget(m), t->triple);
  cr_assert(strlen(LLVMGetDataLayoutStr(m)) > 0);
  LLVMDisposeModule(m);
  cg_llvm_target_free(t);
}

Test(llvm, unknown_triple) {
  CgLlvmTargetOptions o = {"nonsense-unknown-none", NULL, NULL, 2};
  cr_assert_null(cg_llvm_target_create(&o, &d));
  assert_diag("unknown target 'nonsense-unknown-none'");
  assert_diag("No available targets are compatible");
}

Test(llvm, unknown_cpu_and_feature) {
  CgLlvmTargetOptions o = {"x86_64-linux-gnu", "notacpu", NULL, 2};
  cr_assert_null(cg_llvm_target_create(&o, &d));
  assert_diag("target x86_64-unknown-linux-gnu: 'notacpu' is not a "
              "recognized processor for this target\n");
  CgLlvmTargetOptions f = {"aarch64-linux-gnu", NULL, "+notafeature", 2};
  cr_assert_null(cg_llvm_target_create(&f, &d));
  assert_diag("'+notafeature' is not a recognized feature");
  cr_assert_eq(d.nerrors, 2, "%s", diag_text());
  CgLlvmTargetOptions bad_level = {NULL, NULL, NULL, 4};
  cr_assert_null(cg_llvm_target_create(&bad_level, &d));
  assert_diag("LLVM optimization level 4 is not 0 to 3");
  /* known names make a machine, and nothing is reported */
  CgLlvmTargetOptions good = {"x86_64-linux-gnu", "skylake-avx512", "-avx512f",
                              3};
  CgLlvmTarget *t = cg_llvm_target_create(&good, &d);
  cr_assert(t, "%s", diag_text());
  cr_assert_str_eq(t->cpu, "skylake-avx512");
  cr_assert_eq(d.nerrors, 3);
  cg_llvm_target_free(t);
}

/* ---- verify, optimize ---------------------------------------------------- */

Test(llvm, invalid_module_is_reported) {
  LLVMModuleRef m = LLVMModuleCreateWithNameInContext("broken", ctx);
  LLVMValueRef fn = LLVMAddFunction(
      m, "f", LLVMFunctionType(LLVMVoidTypeInContext(ctx), NULL, 0, 0));
  LLVMAppendBasicBlockInContext(ctx, fn, "entry"); /* no terminator */
  cr_assert_not(cg_llvm_verify(m, &d));
  assert_diag("LLVM module 'broken' is invalid: Basic Block in function 'f' "
              "does not have terminator!");
  /* optimizing or compiling it reports the same instead of crashing */
  CgLlvmTarget *t = cg_llvm_target_create(NULL, &d);
  cr_assert(t);
  cr_assert_not(cg_llvm_optimize(t, m, &d));
  cr_assert_not(cg_llvm_write_object(t, m, path_in_dir("broken.o"), &d));
  cr_assert_eq(d.nerrors, 3);
  struct stat st;
  cr_assert_neq(stat(path_in_dir("broken.o"), &st), 0);
  cg_llvm_target_free(t);
  LLVMDisposeModule(m);
}

Test(llvm, loop_vectorizes_for_host) {
  LLVMModuleRef m = LLVMModuleCreateWithNameInContext("saxpy", ctx);
  add_saxpy(m);
  CgLlvmTarget *t = cg_llvm_target_create(NULL, &d);
  cr_assert(t, "%s", diag_text());
  cr_assert(cg_llvm_optimize(t, m, &d), "%s", diag_text());
  char *text = module_text(m);
  cr_assert(strstr(text, "vector.body"), "not vectorized:\n%s", text);
  /* the TargetMachine gives the vectorizer the host's registers */
  if (strstr(t->features, "+avx512f") || strstr(t->features, "+avx2"))
    cr_assert(strstr(text, "<16 x float>") || strstr(text, "<8 x float>"),
              "no 256- or 512-bit vectors for %s (%s):\n%s", t->cpu,
              t->features, text);
  cr_assert_null(strstr(text, "fast"), "fast-math flags:\n%s", text);
  cr_assert_null(strstr(text, "llvm.fmuladd"), "contracted:\n%s", text);
  free(text);
  cg_llvm_target_free(t);
  LLVMDisposeModule(m);
}

/* x * 0x1p-140f is subnormal and loses x's last bits, so dividing again
 * gives 1.0f for x = 1 + 2^-23: folding to x would be wrong */
Test(llvm, ieee_multiply_divide_not_folded) {
  CgLlvmJit *jit = cg_llvm_jit_create(3, &d);
  cr_assert(jit, "%s", diag_text());
  LLVMModuleRef m =
      LLVMModuleCreateWithNameInContext("ieee", cg_llvm_jit_context(jit));
  add_scale_back(m);
  /* the JIT optimizes with the same pipeline: look at its result first */
  LLVMModuleRef copy = LLVMCloneModule(m);
  cr_assert(cg_llvm_optimize(cg_llvm_jit_target(jit), copy, &d));
  char *text = module_text(copy);
  cr_assert(strstr(text, "fmul float") && strstr(text, "fdiv float"),
            "folded:\n%s", text);
  free(text);
  LLVMDisposeModule(copy);

  cr_assert(cg_llvm_jit_add_module(jit, m, &d), "%s", diag_text());
  float (*scale_back)(float) =
      (float (*)(float))cg_llvm_jit_lookup(jit, "scale_back", &d);
  cr_assert(scale_back, "%s", diag_text());
  float x = 0x1.000002p0f;
  volatile float scale = 0x1p-140f;
  float expected = x * scale / scale;
  cr_assert_eq(float_bits(expected), float_bits(1.0f));
  cr_assert_eq(float_bits(scale_back(x)), float_bits(expected));
  cr_assert_eq(float_bits(scale_back(3.0f)), float_bits(3.0f));
  cg_llvm_jit_free(jit);
}

/* ---- files ------------------------------------------------------------- */

Test(llvm, ir_file_round_trip) {
  LLVMModuleRef m = LLVMModuleCreateWithNameInContext("axpy", ctx);
  add_axpy(m);
  add_saxpy(m);
  const char *path = path_in_dir("axpy.ll");
  cr_assert(cg_llvm_write_ir(m, path, &d), "%s", diag_text());

  LLVMMemoryBufferRef buffer = NULL;
  char *message = NULL;
  cr_assert_not(
      LLVMCreateMemoryBufferWithContentsOfFile(path, &buffer, &message));
  LLVMModuleRef back = NULL;
  /* takes the buffer */
  cr_assert_not(LLVMParseIRInContext(ctx, buffer, &back, &message), "%s",
                message);
  cr_assert(cg_llvm_verify(back, &d), "%s", diag_text());
  /* the same module, apart from its first line ("; ModuleID = ...") */
  char *a = module_text(m), *b = module_text(back);
  cr_assert_str_eq(strchr(a, '\n'), strchr(b, '\n'));
  free(a);
  free(b);
  LLVMDisposeModule(back);
  LLVMDisposeModule(m);
}

Test(llvm, object_file_for_host) {
  /* this machine's: that of this test program */
  int machine = elf_machine_of("/proc/self/exe", -1);
  LLVMModuleRef m = LLVMModuleCreateWithNameInContext("axpy", ctx);
  add_axpy(m);
  add_saxpy(m);
  CgLlvmTarget *t = cg_llvm_target_create(NULL, &d);
  cr_assert(t, "%s", diag_text());
  cr_assert(cg_llvm_optimize(t, m, &d), "%s", diag_text());
  char *before = module_text(m);
  cr_assert(cg_llvm_write_object(t, m, path_in_dir("axpy.o"), &d), "%s",
            diag_text());
  cr_assert_eq(elf_machine(path_in_dir("axpy.o")), machine);
  /* code generation left the module as it was */
  char *after = module_text(m);
  cr_assert_str_eq(before, after);
  free(before);
  free(after);
  cg_llvm_target_free(t);
  LLVMDisposeModule(m);
}

Test(llvm, object_file_for_aarch64) {
  CgLlvmTargetOptions o = {"aarch64-linux-gnu", NULL, NULL, 2};
  CgLlvmTarget *t = cg_llvm_target_create(&o, &d);
  cr_assert(t, "%s", diag_text());
  cr_assert_str_eq(t->triple, "aarch64-unknown-linux-gnu");
  cr_assert_str_eq(t->cpu, ""); /* the target's generic CPU */
  LLVMModuleRef m = LLVMModuleCreateWithNameInContext("saxpy", ctx);
  add_saxpy(m);
  cr_assert(cg_llvm_optimize(t, m, &d), "%s", diag_text());
  char *text = module_text(m);
  cr_assert(strstr(text, "<4 x float>"), "not vectorized for NEON:\n%s", text);
  free(text);
  cr_assert(cg_llvm_write_object(t, m, path_in_dir("saxpy.o"), &d), "%s",
            diag_text());
  cr_assert_str_eq(LLVMGetTarget(m), "aarch64-unknown-linux-gnu");
  cr_assert_eq(elf_machine(path_in_dir("saxpy.o")), EM_AARCH64);
  cg_llvm_target_free(t);
  LLVMDisposeModule(m);
}

/* LLVM 14's RISC-V aborts on the CPU name "generic" itself */
Test(llvm, object_file_for_riscv64_generic) {
  CgLlvmTargetOptions o = {"riscv64-linux-gnu", "generic", NULL, 2};
  CgLlvmTarget *t = cg_llvm_target_create(&o, &d);
  cr_assert(t, "%s", diag_text());
  LLVMModuleRef m = LLVMModuleCreateWithNameInContext("axpy", ctx);
  add_axpy(m);
  cr_assert(cg_llvm_write_object(t, m, path_in_dir("axpy.o"), &d), "%s",
            diag_text());
  cr_assert_eq(elf_machine(path_in_dir("axpy.o")), EM_RISCV);
  cg_llvm_target_free(t);
  LLVMDisposeModule(m);
}

/* the directory's entries other than . and .., joined by spaces */
static char *list_dir(const char *path) {
  static char names[1024];
  names[0] = 0;
  DIR *dp = opendir(path);
  cr_assert(dp);
  for (struct dirent *e; (e = readdir(dp));)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
      snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
               names[0] ? " " : "", e->d_name);
  closedir(dp);
  return names;
}

Test(llvm, failed_write_leaves_no_file) {
  LLVMModuleRef m = LLVMModuleCreateWithNameInContext("axpy", ctx);
  add_axpy(m);
  CgLlvmTarget *t = cg_llvm_target_create(NULL, &d);
  cr_assert(t);
  /* a directory that does not exist */
  cr_assert_not(cg_llvm_write_ir(m, path_in_dir("missing/axpy.ll"), &d));
  assert_diag("missing/axpy.ll': No such file or directory");
  cr_assert_not(cg_llvm_write_object(t, m, path_in_dir("missing/axpy.o"), &d));
  cr_assert_eq(d.nerrors, 2);
  cr_assert_str_eq(list_dir(dir), "");
  /* the rename onto a directory fails after the whole file is written:
   * the temporary file goes too */
  cr_assert_eq(mkdir(path_in_dir("taken"), 0777), 0);
  cr_assert_not(cg_llvm_write_object(t, m, path_in_dir("taken"), &d));
  cr_assert_not(cg_llvm_write_ir(m, path_in_dir("taken"), &d));
  cr_assert_eq(d.nerrors, 4);
  cr_assert_str_eq(list_dir(dir), "taken");
  cr_assert_str_eq(list_dir(path_in_dir("taken")), "");
  cg_llvm_target_free(t);
  LLVMDisposeModule(m);
}

/* ---- the JIT ----------------------------------------------------------- */

Test(llvm, jit_runs_functions) {
  CgLlvmJit *jit = cg_llvm_jit_create(2, &d);
  cr_assert(jit, "%s", diag_text());
  LLVMModuleRef m =
      LLVMModuleCreateWithNameInContext("kernels", cg_llvm_jit_context(jit));
  add_axpy(m);
  add_saxpy(m);
  cr_assert(cg_llvm_jit_add_module(jit, m, &d), "%s", diag_text());
  float (*axpy)(float, float, float) =
      (float (*)(float, float, float))cg_llvm_jit_lookup(jit, "axpy", &d);
  void (*saxpy)(float, const float *, float *, int64_t) =
      (void (*)(float, const float *, float *, int64_t))cg_llvm_jit_lookup(
          jit, "saxpy", &d);
  cr_assert(axpy && saxpy, "%s", diag_text());
  cr_assert_eq(axpy(2.0f, 3.0f, 1.0f), 7.0f);
  /* (1 + 2^-12)^2 = 1 + 2^-11 + 2^-24 rounds to 1 + 2^-11 (a tie, to
   * even): a fused multiply-add would keep the 2^-24 */
  float a = 1.0f + 0x1p-12f;
  cr_assert_eq(float_bits(axpy(a, a, -(1.0f + 0x1p-11f))), float_bits(0.0f));

  /* an odd length: the vector loop and its scalar remainder */
  enum { N = 1003 };
  static float x[N], y[N], expected[N];
  for (int i = 0; i < N; i++) {
    x[i] = 1.0f + (float)i * 0x1p-12f;
    y[i] = -(1.0f + (float)i * 0x1p-11f);
    volatile float ax = x[i] * a;
    expected[i] = ax + y[i];
  }
  saxpy(a, x, y, N);
  for (int i = 0; i < N; i++)
    cr_assert_eq(float_bits(y[i]), float_bits(expected[i]), "y[%d]", i);

  cr_assert_eq(cg_llvm_jit_lookup(jit, "nothing", &d), 0);
  assert_diag("JIT: cannot find 'nothing': Symbols not found: [ nothing ]");
  /* a second definition of axpy */
  LLVMModuleRef again =
      LLVMModuleCreateWithNameInContext("again", cg_llvm_jit_context(jit));
  add_axpy(again);
  cr_assert_not(cg_llvm_jit_add_module(jit, again, &d));
  assert_diag("Duplicate definition of symbol 'axpy'");
  /* a module of another context is refused (and disposed) */
  LLVMModuleRef other = LLVMModuleCreateWithNameInContext("other", ctx);
  cr_assert_not(cg_llvm_jit_add_module(jit, other, &d));
  assert_diag("LLVM module 'other' is not in the JIT's context");
  cg_llvm_jit_free(jit);
}

/* declares `name` in m */
static LLVMValueRef declare(LLVMModuleRef m, const char *name, LLVMTypeRef ret,
                            LLVMTypeRef *params, unsigned n, bool varargs) {
  return LLVMAddFunction(m, name, LLVMFunctionType(ret, params, n, varargs));
}

/* out[i] = 2 * i for i in [begin, end) */
static void double_index_body(LLVMBuilderRef b, LLVMValueRef fn,
                              LLVMValueRef i) {
  LLVMContextRef c = LLVMGetTypeContext(LLVMTypeOf(fn));
  LLVMValueRef out = LLVMBuildBitCast(b, LLVMGetParam(fn, 0),
                                      LLVMPointerType(f32_type(c), 0), "out");
  LLVMValueRef value = LLVMBuildFMul(b, LLVMBuildSIToFP(b, i, f32_type(c), ""),
                                     LLVMConstReal(f32_type(c), 2.0), "");
  LLVMBuildStore(b, value, element(b, out, i));
}

/* Functions that call the runtime linked into this program:
 *   int32 fail(McError *e) { return mc_fail(e, 7, "jit %d", 42); }
 *   int32 threads(void) { return mc_get_threads(); }
 *   int32 char_class(int32 cp) { return mc_unicode_class(cp); }
 *   void double_index(void *out, int64 begin, int64 end) (an McParallelFn)
 *   void fill(float *out, int64 n) { mc_parallel_for(n, 1, double_index,
 *                                                   out); } */
static void add_runtime_calls(LLVMModuleRef m) {
  LLVMContextRef c = LLVMGetModuleContext(m);
  LLVMTypeRef i32 = LLVMInt32TypeInContext(c), i64 = i64_type(c);
  LLVMTypeRef i8p = LLVMPointerType(LLVMInt8TypeInContext(c), 0);
  LLVMTypeRef void_type = LLVMVoidTypeInContext(c);

  LLVMTypeRef fail_params[] = {i8p, i32, i8p};
  LLVMValueRef mc_fail_fn = declare(m, "mc_fail", i32, fail_params, 3, true);
  LLVMValueRef fn = declare(m, "fail", i32, &i8p, 1, false);
  LLVMBuilderRef b = begin_function(fn);
  LLVMValueRef args[] = {LLVMGetParam(fn, 0), LLVMConstInt(i32, 7, 0),
                         LLVMBuildGlobalStringPtr(b, "jit %d", "format"),
                         LLVMConstInt(i32, 42, 0)};
  LLVMBuildRet(b, LLVMBuildCall2(b, LLVMGlobalGetValueType(mc_fail_fn),
                                 mc_fail_fn, args, 4, ""));
  LLVMDisposeBuilder(b);

  LLVMValueRef get_threads = declare(m, "mc_get_threads", i32, NULL, 0, false);
  fn = declare(m, "threads", i32, NULL, 0, false);
  b = begin_function(fn);
  LLVMBuildRet(b, LLVMBuildCall2(b, LLVMGlobalGetValueType(get_threads),
                                 get_threads, NULL, 0, ""));
  LLVMDisposeBuilder(b);

  LLVMValueRef unicode_class =
      declare(m, "mc_unicode_class", i32, &i32, 1, false);
  fn = declare(m, "char_class", i32, &i32, 1, false);
  b = begin_function(fn);
  LLVMValueRef cp = LLVMGetParam(fn, 0);
  LLVMBuildRet(b, LLVMBuildCall2(b, LLVMGlobalGetValueType(unicode_class),
                                 unicode_class, &cp, 1, ""));
  LLVMDisposeBuilder(b);

  LLVMTypeRef body_params[] = {i8p, i64, i64};
  LLVMValueRef body = declare(m, "double_index", void_type, body_params, 3, 0);
  b = begin_function(body);
  build_loop(b, body, LLVMGetParam(body, 1), LLVMGetParam(body, 2),
             double_index_body);
  LLVMBuildRetVoid(b);
  LLVMDisposeBuilder(b);

  LLVMTypeRef for_params[] = {i64, i64, LLVMTypeOf(body), i8p};
  LLVMValueRef parallel_for =
      declare(m, "mc_parallel_for", void_type, for_params, 4, false);
  LLVMTypeRef fill_params[] = {LLVMPointerType(f32_type(c), 0), i64};
  fn = declare(m, "fill", void_type, fill_params, 2, false);
  b = begin_function(fn);
  LLVMValueRef for_args[] = {LLVMGetParam(fn, 1), LLVMConstInt(i64, 1, 0), body,
                             LLVMBuildBitCast(b, LLVMGetParam(fn, 0), i8p, "")};
  LLVMBuildCall2(b, LLVMGlobalGetValueType(parallel_for), parallel_for,
                 for_args, 4, "");
  LLVMBuildRetVoid(b);
  LLVMDisposeBuilder(b);
}

Test(llvm, jit_calls_the_runtime) {
  CgLlvmJit *jit = cg_llvm_jit_create(2, &d);
  cr_assert(jit, "%s", diag_text());
  LLVMModuleRef m =
      LLVMModuleCreateWithNameInContext("runtime", cg_llvm_jit_context(jit));
  add_runtime_calls(m);
  cr_assert(cg_llvm_jit_add_module(jit, m, &d), "%s", diag_text());

  int32_t (*fail)(McError *) =
      (int32_t(*)(McError *))cg_llvm_jit_lookup(jit, "fail", &d);
  int32_t (*threads)(void) =
      (int32_t(*)(void))cg_llvm_jit_lookup(jit, "threads", &d);
  int32_t (*char_class)(int32_t) =
      (int32_t(*)(int32_t))cg_llvm_jit_lookup(jit, "char_class", &d);
  void (*fill)(float *, int64_t) =
      (void (*)(float *, int64_t))cg_llvm_jit_lookup(jit, "fill", &d);
  cr_assert(fail && threads && char_class && fill, "%s", diag_text());

  McError e = {0, ""};
  cr_assert_eq(fail(&e), 7);
  cr_assert_eq(e.code, 7);
  cr_assert_str_eq(e.msg, "jit 42");
  mc_set_threads(3);
  cr_assert_eq(threads(), 3);
  /* mc_unicode_class is in an object of mc_runtime nothing in this
   * program calls: there only because the whole archive is linked */
  cr_assert_eq(char_class('A'), MC_UCLASS_LETTER);
  cr_assert_eq(char_class(0xE9), MC_UCLASS_LETTER); /* e acute */
  cr_assert_eq(char_class('7'), MC_UCLASS_NUMBER);
  cr_assert_eq(char_class(' '), MC_UCLASS_SPACE);
  /* JIT'd code run by the runtime's threads, one grain per index */
  enum { N = 1000 };
  static float out[N];
  fill(out, N);
  for (int i = 0; i < N; i++)
    cr_assert_eq(out[i], 2.0f * (float)i, "out[%d]", i);
  mc_threads_shutdown();
  cg_llvm_jit_free(jit);
}

Test(llvm, jit_reports_undefined_symbols) {
  CgLlvmJit *jit = cg_llvm_jit_create(0, &d);
  cr_assert(jit, "%s", diag_text());
  LLVMModuleRef m =
      LLVMModuleCreateWithNameInContext("undefined", cg_llvm_jit_context(jit));
  LLVMTypeRef i32 = LLVMInt32TypeInContext(cg_llvm_jit_context(jit));
  LLVMValueRef missing = declare(m, "mc_no_such_function", i32, NULL, 0, 0);
  LLVMValueRef fn = declare(m, "calls_missing", i32, NULL, 0, false);
  LLVMBuilderRef b = begin_function(fn);
  LLVMBuildRet(b, LLVMBuildCall2(b, LLVMGlobalGetValueType(missing), missing,
                                 NULL, 0, ""));
  LLVMDisposeBuilder(b);
  cr_assert(cg_llvm_jit_add_module(jit, m, &d), "%s", diag_text());
  cr_assert_eq(cg_llvm_jit_lookup(jit, "calls_missing", &d), 0);
  assert_diag("JIT: cannot find 'calls_missing'");
  assert_diag("mc_no_such_function");
  cg_llvm_jit_free(jit);
}
