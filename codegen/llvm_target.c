/* Target machines, verification, LLVM's optimization pipeline and output
 * files through LLVM 14's C API (see llvm_target.h).
 *
 * LLVM 14's C API has no way to ask whether a CPU or feature name is known
 * to a target: LLVMCreateTargetMachine accepts any, and LLVM writes
 *     'foo' is not a recognized processor for this target (ignoring processor)
 * to stderr (its errs(), file descriptor 2, unbuffered) and compiles for a
 * generic CPU. cg_llvm_target_create therefore points descriptor 2 at a
 * temporary file while it makes the machine, reports such lines as errors
 * and passes anything else LLVM wrote on to stderr. Output other threads
 * write to stderr during that call is delayed, not lost.
 */
#include <llvm-c/Analysis.h>
#include <llvm-c/Target.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cg.h"
#include "llvm_target.h"

/* ---- initialization ---------------------------------------------------- */

static pthread_once_t native_once = PTHREAD_ONCE_INIT;
static pthread_once_t all_once = PTHREAD_ONCE_INIT;

static void initialize_native(void) {
  /* Both return nonzero only when libLLVM has no target for this machine;
   * target creation then reports the host triple as unknown. */
  (void)LLVMInitializeNativeTarget();
  (void)LLVMInitializeNativeAsmPrinter();
}

/* The LLVMInitializeAll* are static inline functions in llvm-c/Target.h
 * calling LLVMInitialize<Target>TargetInfo etc. for every target of LLVM's
 * build (llvm/Config/Targets.def), all exported by libLLVM-14.so. */
static void initialize_all(void) {
  LLVMInitializeAllTargetInfos();
  LLVMInitializeAllTargets();
  LLVMInitializeAllTargetMCs();
  LLVMInitializeAllAsmPrinters();
}

void cg_llvm_initialize(bool all_targets) {
  pthread_once(&native_once, initialize_native);
  if (all_targets)
    pthread_once(&all_once, initialize_all);
}

/* ---- stderr capture ---------------------------------------------------- */

typedef struct StderrCapture {
  FILE *file; /* where descriptor 2 points meanwhile */
  int saved;  /* the real stderr */
} StderrCapture;

/* Returns false (and captures nothing) when no temporary file or
 * descriptor is available: the machine is then made unchecked. */
static bool capture_begin(StderrCapture *c) {
  fflush(stderr);
  c->file = tmpfile();
  c->saved = c->file ? dup(STDERR_FILENO) : -1;
  if (c->saved >= 0 && dup2(fileno(c->file), STDERR_FILENO) >= 0)
    return true;
  if (c->saved >= 0)
    close(c->saved);
  if (c->file)
    fclose(c->file);
  return false;
}

/* Restores stderr and returns what was written meanwhile (malloc'd,
 * NUL-terminated; NULL when it cannot be read). */
static char *capture_end(StderrCapture *c) {
  fflush(stderr);
  dup2(c->saved, STDERR_FILENO);
  close(c->saved);
  char *text = NULL;
  long size = -1;
  if (fseek(c->file, 0, SEEK_END) == 0)
    size = ftell(c->file);
  if (size >= 0 && (text = malloc((size_t)size + 1)) != NULL) {
    rewind(c->file);
    size_t n = fread(text, 1, (size_t)size, c->file);
    text[n] = 0;
  }
  fclose(c->file);
  return text;
}

/* Reports each line of LLVM's output that rejects a name (once: LLVM
 * checks the CPU name twice, as the CPU and as the CPU to tune for) and
 * passes the others on to stderr.
 * Returns the number of errors. */
static int report_unrecognized(const char *text, const char *triple, Diag *d) {
  static const char marker[] = " is not a recognized ";
  int errors = 0;
  const char *prev = NULL;
  size_t prev_len = 0;
  for (const char *line = text; *line;) {
    size_t len = strcspn(line, "\n");
    const char *m = strstr(line, marker);
    if (m && m < line + len) {
      /* "'foo' is not a recognized processor for this target" without
       * LLVM's "(ignoring processor)": here it is not ignored */
      const char *end = strstr(line, " (ignoring");
      size_t shown = end && end < line + len ? (size_t)(end - line) : len;
      if (!prev || prev_len != shown || memcmp(prev, line, shown) != 0) {
        diag_error(d, loc_none(), "target %s: %.*s", triple, (int)shown, line);
        errors++;
      }
      prev = line;
      prev_len = shown;
    } else {
      fprintf(stderr, "%.*s\n", (int)len, line);
    }
    line += len + (line[len] == '\n');
  }
  return errors;
}

/* ---- target machines --------------------------------------------------- */

/* strdup of an LLVM message, which is disposed */
static char *take_message(char *message) {
  char *copy = strdup(message ? message : "");
  LLVMDisposeMessage(message);
  return copy;
}

static LLVMCodeGenOptLevel codegen_level(int opt_level) {
  switch (opt_level) {
  case 0:
    return LLVMCodeGenLevelNone;
  case 1:
    return LLVMCodeGenLevelLess;
  case 2:
    return LLVMCodeGenLevelDefault;
  default:
    return LLVMCodeGenLevelAggressive;
  }
}

/* Makes t->machine from t's names, checking them (see the file comment). */
static bool create_machine(CgLlvmTarget *t, Diag *d) {
  LLVMTargetRef target = NULL;
  char *message = NULL;
  if (LLVMGetTargetFromTriple(t->triple, &target, &message)) {
    diag_error(d, loc_none(), "unknown target '%s': %s", t->triple,
               message ? message : "no target");
    LLVMDisposeMessage(message);
    return false;
  }
  if (!LLVMTargetHasTargetMachine(target)) {
    diag_error(d, loc_none(), "target %s: LLVM has no code generator for it",
               t->triple);
    return false;
  }
  StderrCapture capture;
  bool capturing = capture_begin(&capture);
  t->machine = LLVMCreateTargetMachine(target, t->triple, t->cpu, t->features,
                                       codegen_level(t->opt_level),
                                       LLVMRelocPIC, LLVMCodeModelDefault);
  int errors = 0;
  if (capturing) {
    char *text = capture_end(&capture);
    errors = text ? report_unrecognized(text, t->triple, d) : 0;
    free(text);
  }
  if (!t->machine && !errors)
    diag_error(d, loc_none(), "target %s: cannot create a target machine",
               t->triple);
  return t->machine && !errors;
}

CgLlvmTarget *cg_llvm_target_create(const CgLlvmTargetOptions *o, Diag *d) {
  CgLlvmTargetOptions host = {NULL, NULL, NULL, 2};
  if (!o)
    o = &host;
  if (o->opt_level < 0 || o->opt_level > 3) {
    diag_error(d, loc_none(), "LLVM optimization level %d is not 0 to 3",
               o->opt_level);
    return NULL;
  }
  cg_llvm_initialize(o->triple != NULL);
  CgLlvmTarget *t = calloc(1, sizeof *t);
  if (!t) {
    diag_error(d, loc_none(), "out of memory");
    return NULL;
  }
  t->opt_level = o->opt_level;
  t->triple = take_message(o->triple ? LLVMNormalizeTargetTriple(o->triple)
                                     : LLVMGetDefaultTargetTriple());
  bool host_cpu = o->cpu ? strcmp(o->cpu, "native") == 0 : !o->triple;
  t->cpu = host_cpu ? take_message(LLVMGetHostCPUName())
                    : strdup(o->cpu ? o->cpu : "");
  /* LLVM 14's RISC-V ends the process on the CPU name "generic" ("CPU
   * 'generic' is not supported. Use generic-rv64"); every target reads ""
   * as its generic CPU, so that is what "generic" becomes. This is also
   * the host's name when LLVM does not know the host's CPU. */
  if (t->cpu && strcmp(t->cpu, "generic") == 0)
    t->cpu[0] = 0;
  t->features = o->features ? strdup(o->features)
                : host_cpu  ? take_message(LLVMGetHostCPUFeatures())
                            : strdup("");
  if (!t->triple || !t->cpu || !t->features) {
    diag_error(d, loc_none(), "out of memory");
    cg_llvm_target_free(t);
    return NULL;
  }
  if (!create_machine(t, d)) {
    cg_llvm_target_free(t);
    return NULL;
  }
  return t;
}

void cg_llvm_target_free(CgLlvmTarget *t) {
  if (!t)
    return;
  if (t->machine)
    LLVMDisposeTargetMachine(t->machine);
  free(t->triple);
  free(t->cpu);
  free(t->features);
  free(t);
}

void cg_llvm_target_setup_module(const CgLlvmTarget *t, LLVMModuleRef m) {
  LLVMSetTarget(m, t->triple);
  LLVMTargetDataRef layout = LLVMCreateTargetDataLayout(t->machine);
  char *text = LLVMCopyStringRepOfTargetData(layout);
  LLVMSetDataLayout(m, text);
  LLVMDisposeMessage(text);
  LLVMDisposeTargetData(layout);
}

/* ---- verify and optimize ----------------------------------------------- */

static const char *module_name(LLVMModuleRef m) {
  size_t len;
  const char *name = LLVMGetModuleIdentifier(m, &len);
  return name && *name ? name : "<unnamed>";
}

bool cg_llvm_verify(LLVMModuleRef m, Diag *d) {
  char *message = NULL;
  bool broken = LLVMVerifyModule(m, LLVMReturnStatusAction, &message);
  if (broken) {
    size_t len = message ? strlen(message) : 0;
    while (len > 0 && message[len - 1] == '\n')
      len--;
    diag_error(d, loc_none(), "LLVM module '%s' is invalid: %.*s",
               module_name(m), (int)len, message ? message : "");
  }
  LLVMDisposeMessage(message);
  return !broken;
}

/* Reports and consumes err; returns whether there was none. */
static bool check_error(LLVMErrorRef err, const char *what, Diag *d) {
  if (!err)
    return true;
  char *message = LLVMGetErrorMessage(err);
  diag_error(d, loc_none(), "%s: %s", what, message);
  LLVMDisposeErrorMessage(message);
  return false;
}

bool cg_llvm_optimize(const CgLlvmTarget *t, LLVMModuleRef m, Diag *d) {
  if (!cg_llvm_verify(m, d))
    return false;
  cg_llvm_target_setup_module(t, m);
  char pipeline[32];
  snprintf(pipeline, sizeof pipeline, "default<O%d>", t->opt_level);
  /* PipelineTuningOptions as clang sets them: the vectorizers from -O2 on,
   * unrolling from -O1 on */
  bool vectorize = t->opt_level >= 2;
  LLVMPassBuilderOptionsRef options = LLVMCreatePassBuilderOptions();
  LLVMPassBuilderOptionsSetLoopVectorization(options, vectorize);
  LLVMPassBuilderOptionsSetSLPVectorization(options, vectorize);
  LLVMPassBuilderOptionsSetLoopInterleaving(options, vectorize);
  LLVMPassBuilderOptionsSetLoopUnrolling(options, t->opt_level >= 1);
  LLVMErrorRef err = LLVMRunPasses(m, pipeline, t->machine, options);
  LLVMDisposePassBuilderOptions(options);
  char what[300];
  snprintf(what, sizeof what, "optimizing LLVM module '%s' (%s)",
           module_name(m), pipeline);
  return check_error(err, what, d);
}

/* ---- files ------------------------------------------------------------- */

bool cg_llvm_write_ir(LLVMModuleRef m, const char *path, Diag *d) {
  char *text = LLVMPrintModuleToString(m);
  bool ok = cg_write_file(path, text, strlen(text), d);
  LLVMDisposeMessage(text);
  return ok;
}

bool cg_llvm_write_object(const CgLlvmTarget *t, LLVMModuleRef m,
                          const char *path, Diag *d) {
  if (!cg_llvm_verify(m, d))
    return false;
  cg_llvm_target_setup_module(t, m);
  /* Code generation rewrites the IR it compiles (CodeGenPrepare, lowered
   * intrinsics): it gets a copy, so m stays as it was. */
  LLVMModuleRef copy = LLVMCloneModule(m);
  char *message = NULL;
  LLVMMemoryBufferRef object = NULL;
  bool failed = LLVMTargetMachineEmitToMemoryBuffer(
      t->machine, copy, LLVMObjectFile, &message, &object);
  LLVMDisposeModule(copy);
  if (failed) {
    diag_error(d, loc_none(), "cannot compile '%s' for %s: %s", module_name(m),
               t->triple, message ? message : "");
    LLVMDisposeMessage(message);
    return false;
  }
  bool ok = cg_write_file(path, LLVMGetBufferStart(object),
                          LLVMGetBufferSize(object), d);
  LLVMDisposeMemoryBuffer(object);
  return ok;
}
