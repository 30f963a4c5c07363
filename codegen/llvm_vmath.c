/* Links runtime/mc_vmath.h's and mc_ops.h's functions, as the bitcode
 * embedded at build time, into the LLVM backend's modules (see
 * llvm_vmath.h).
 *
 * LLVM reports errors of reading and linking bitcode to the context's
 * diagnostic handler, whose default prints them and ends the process; a
 * handler of ours collects them while cg_llvm_link_vmath runs and puts the
 * context's own back afterwards.
 */
#include <llvm-c/BitReader.h>
#include <llvm-c/Linker.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llvm_vmath.h"

/* <build>/gen/vmath_bitcode.c (codegen/embed_bytes.cmake) */
extern const unsigned char mc_vmath_bitcode[];
extern const size_t mc_vmath_bitcode_size;

const CgLlvmVmathFn cg_llvm_vmath_functions[] = {
    /* mc_vmath.h, f32: branch-free, within a few ulp */
    {"mc_expf", DT_F32, 1},
    {"mc_expm1f", DT_F32, 1},
    {"mc_logf", DT_F32, 1},
    {"mc_log1pf", DT_F32, 1},
    {"mc_tanhf", DT_F32, 1},
    {"mc_sigmoidf", DT_F32, 1},
    {"mc_erff", DT_F32, 1},
    /* mc_vmath.h, f64: libm */
    {"mc_exp", DT_F64, 1},
    {"mc_expm1", DT_F64, 1},
    {"mc_log", DT_F64, 1},
    {"mc_log1p", DT_F64, 1},
    {"mc_tanh", DT_F64, 1},
    {"mc_erf", DT_F64, 1},
    {"mc_sigmoid", DT_F64, 1},
    /* mc_ops.h */
    {"op_div_i32", DT_I32, 2},
    {"op_div_i64", DT_I64, 2},
    {"op_mod_i32", DT_I32, 2},
    {"op_mod_i64", DT_I64, 2},
    {"op_mod_f32", DT_F32, 2},
    {"op_mod_f64", DT_F64, 2},
    {"op_max_f32", DT_F32, 2},
    {"op_max_f64", DT_F64, 2},
    {"op_min_f32", DT_F32, 2},
    {"op_min_f64", DT_F64, 2},
    {NULL, DT_COUNT, 0}};

const CgLlvmVmathFn *cg_llvm_vmath_find(const char *name) {
  for (const CgLlvmVmathFn *f = cg_llvm_vmath_functions; f->name; f++)
    if (!strcmp(f->name, name))
      return f;
  return NULL;
}

static LLVMTypeRef scalar_type(LLVMContextRef c, DType t) {
  switch (t) {
  case DT_F32:
    return LLVMFloatTypeInContext(c);
  case DT_F64:
    return LLVMDoubleTypeInContext(c);
  case DT_I32:
    return LLVMInt32TypeInContext(c);
  case DT_I64:
    return LLVMInt64TypeInContext(c);
  case DT_BOOL:
  case DT_F16:
  case DT_BF16:
  case DT_COUNT:
    break;
  }
  return NULL; /* not in the table */
}

LLVMValueRef cg_llvm_vmath_function(LLVMModuleRef m, const char *name) {
  const CgLlvmVmathFn *f = cg_llvm_vmath_find(name);
  if (!f)
    return NULL;
  LLVMValueRef fn = LLVMGetNamedFunction(m, name);
  if (fn)
    return fn;
  LLVMTypeRef t = scalar_type(LLVMGetModuleContext(m), f->dtype);
  LLVMTypeRef params[2] = {t, t};
  return LLVMAddFunction(
      m, name, LLVMFunctionType(t, params, (unsigned)f->arity, false));
}

LLVMValueRef cg_llvm_vmath_call(LLVMBuilderRef b, const char *name,
                                LLVMValueRef *args, unsigned nargs) {
  const CgLlvmVmathFn *f = cg_llvm_vmath_find(name);
  if (!f || nargs != (unsigned)f->arity)
    return NULL;
  LLVMModuleRef m =
      LLVMGetGlobalParent(LLVMGetBasicBlockParent(LLVMGetInsertBlock(b)));
  LLVMValueRef fn = cg_llvm_vmath_function(m, name);
  return LLVMBuildCall2(b, LLVMGlobalGetValueType(fn), fn, args, nargs, "");
}

/* ---- LLVM's diagnostics ------------------------------------------------ */

typedef struct Collected {
  Diag *d;
  const char *what; /* "reading", "linking" */
  int errors;
} Collected;

static void collect(LLVMDiagnosticInfoRef info, void *ctx) {
  Collected *c = ctx;
  char *text = LLVMGetDiagInfoDescription(info);
  switch (LLVMGetDiagInfoSeverity(info)) {
  case LLVMDSError:
    diag_error(c->d, loc_none(), "%s the vmath bitcode: %s", c->what, text);
    c->errors++;
    break;
  case LLVMDSWarning:
    diag_warning(c->d, loc_none(), "%s the vmath bitcode: %s", c->what, text);
    break;
  case LLVMDSRemark:
  case LLVMDSNote:
    break;
  }
  LLVMDisposeMessage(text);
}

/* ---- preparing the bitcode --------------------------------------------- */

static const char *function_name(LLVMValueRef fn) {
  size_t len;
  return LLVMGetValueName2(fn, &len);
}

/* Clang's attributes for the CPU it compiled for, and those that would
 * keep a function from being optimized or inlined. */
static void make_portable(LLVMValueRef fn) {
  static const char *const strings[] = {"target-cpu", "target-features",
                                        "tune-cpu"};
  static const char *const enums[] = {"optnone", "noinline"};
  for (size_t i = 0; i < sizeof strings / sizeof *strings; i++)
    LLVMRemoveStringAttributeAtIndex(fn, LLVMAttributeFunctionIndex, strings[i],
                                     (unsigned)strlen(strings[i]));
  for (size_t i = 0; i < sizeof enums / sizeof *enums; i++)
    LLVMRemoveEnumAttributeAtIndex(
        fn, LLVMAttributeFunctionIndex,
        LLVMGetEnumAttributeKindForName(enums[i], strlen(enums[i])));
}

static void *check_alloc(void *p) {
  if (!p) {
    fputs("modelc: out of memory\n", stderr);
    abort();
  }
  return p;
}

static char *type_text(LLVMTypeRef t) {
  char *text = LLVMPrintTypeToString(t);
  char *copy = check_alloc(strdup(text));
  LLVMDisposeMessage(text);
  return copy;
}

/* Makes src fit m and collects the names of the functions it defines into
 * names (malloc'd, the caller frees each). Returns false after reporting
 * the first function m already defines or declares with another type. */
static bool prepare(LLVMModuleRef src, LLVMModuleRef m, char ***names,
                    int *nnames, Diag *d) {
  LLVMContextRef c = LLVMGetModuleContext(m);
  LLVMSetTarget(src, LLVMGetTarget(m));
  LLVMSetDataLayout(src, LLVMGetDataLayoutStr(m));
  unsigned always = LLVMGetEnumAttributeKindForName("alwaysinline", 12);
  int n = 0, cap = 0;
  bool ok = true;
  size_t len;
  const char *module = LLVMGetModuleIdentifier(m, &len);
  for (LLVMValueRef fn = LLVMGetFirstFunction(src); fn;
       fn = LLVMGetNextFunction(fn)) {
    if (LLVMGetIntrinsicID(fn))
      continue;
    make_portable(fn);
    if (LLVMIsDeclaration(fn))
      continue; /* libm's */
    const char *name = function_name(fn);
    LLVMValueRef mine = LLVMGetNamedFunction(m, name);
    if (ok && mine && !LLVMIsDeclaration(mine)) {
      diag_error(d, loc_none(),
                 "LLVM module '%s' already defines '%s' (linked twice?)",
                 module, name);
      ok = false; /* one error is enough */
    } else if (ok && mine &&
               LLVMGlobalGetValueType(mine) != LLVMGlobalGetValueType(fn)) {
      char *want = type_text(LLVMGlobalGetValueType(fn));
      char *have = type_text(LLVMGlobalGetValueType(mine));
      diag_error(d, loc_none(),
                 "LLVM module '%s' declares '%s' as %s, the runtime's is %s",
                 module, name, have, want);
      free(want);
      free(have);
      ok = false;
    }
    /* external while linking, so m's declarations resolve to it */
    LLVMSetLinkage(fn, LLVMExternalLinkage);
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                            LLVMCreateEnumAttribute(c, always, 0));
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      *names = check_alloc(realloc(*names, (size_t)cap * sizeof **names));
    }
    (*names)[n++] = check_alloc(strdup(name));
  }
  *nnames = n;
  return ok;
}

/* ---- linking ----------------------------------------------------------- */

bool cg_llvm_link_vmath(LLVMModuleRef m, Diag *d) {
  LLVMContextRef c = LLVMGetModuleContext(m);
  LLVMDiagnosticHandler saved_handler = LLVMContextGetDiagnosticHandler(c);
  void *saved_context = LLVMContextGetDiagnosticContext(c);
  Collected collected = {d, "reading", 0};
  LLVMContextSetDiagnosticHandler(c, collect, &collected);

  LLVMMemoryBufferRef buffer = LLVMCreateMemoryBufferWithMemoryRange(
      (const char *)mc_vmath_bitcode, mc_vmath_bitcode_size, "mc_vmath.bc",
      false);
  LLVMModuleRef src = NULL;
  bool ok = !LLVMParseBitcodeInContext2(c, buffer, &src) && src &&
            collected.errors == 0;
  LLVMDisposeMemoryBuffer(buffer); /* the module no longer reads it */
  if (!ok && collected.errors == 0)
    diag_error(d, loc_none(), "cannot read the vmath bitcode");

  char **names = NULL;
  int nnames = 0;
  if (ok)
    ok = prepare(src, m, &names, &nnames, d);
  if (ok) {
    collected.what = "linking";
    /* disposes src, also on failure */
    ok = !LLVMLinkModules2(m, src) && collected.errors == 0;
    src = NULL;
    if (!ok && collected.errors == 0)
      diag_error(d, loc_none(), "cannot link the vmath bitcode");
  }
  if (src)
    LLVMDisposeModule(src);
  for (int i = 0; i < nnames; i++) {
    LLVMValueRef fn = ok ? LLVMGetNamedFunction(m, names[i]) : NULL;
    if (fn && !LLVMIsDeclaration(fn))
      LLVMSetLinkage(fn, LLVMInternalLinkage);
    free(names[i]);
  }
  free(names);
  LLVMContextSetDiagnosticHandler(c, saved_handler, saved_context);
  return ok;
}
