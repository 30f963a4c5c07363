/* modelc: the command-line driver.
 *
 *   modelc compile FILE.model [-D name=value]... [--config BUILD.yaml]
 *                  [--weights W.safetensors] [--emit c|ir|exe|llvm|obj]
 *                  [--backend c|llvm] [-O0|-O1|-O2] [--entry NAME]
 *                  [--weight-dtype f32|f16|bf16] [--cpu native|generic|NAME]
 *                  [--target TRIPLE] [--features +a,-b] [--check-plan]
 *                  -o OUT
 *   modelc run FILE.model [-D name=value]... [-O0|-O1|-O2] [--entry NAME]
 *              [--weight-dtype f32|f16|bf16] [--check-plan]
 *              PROGRAM-ARGUMENTS...
 *   modelc inspect FILE.model [-D name=value]...
 *   modelc opt FILE.ir --passes=a,b,... [--print-after=PASS|all] [-o OUT]
 *
 * Only this file exits; everything below reports into a Diag. Outputs are
 * written to a temporary file and renamed, so a failed run leaves nothing
 * half-written.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../codegen/cg.h"
#include "../codegen/llvm_emit.h"
#include "../ir/read_file.h"
#include "../passes/passes.h"
#include "../runtime/mc_runtime.h"
#include "config.h"
#include "lower.h"

static void usage(FILE *out) {
  fputs(
      "usage: modelc compile FILE.model [-D name=value]... [--config "
      "BUILD.yaml]\n"
      "                      [--weights W.safetensors] "
      "[--prepare-weights P.safetensors]\n"
      "                      [--emit c|ir|exe|llvm|obj] [--backend c|llvm]\n"
      "                      [-O0|-O1|-O2] [--entry NAME]\n"
      "                      [--weight-dtype f32|f16|bf16]\n"
      "                      [--cpu native|generic|NAME]\n"
      "                      [--target TRIPLE] [--features +a,-b] "
      "[--check-plan] -o OUT\n"
      "       modelc run FILE.model [-D name=value]... [-O0|-O1|-O2] "
      "[--entry NAME]\n"
      "                  [--weight-dtype f32|f16|bf16] [--check-plan] "
      "PROGRAM-ARGUMENTS...\n"
      "       modelc inspect FILE.model [-D name=value]...\n"
      "       modelc opt FILE.ir --passes=a,b,... [--print-after=PASS|all] "
      "[-o OUT]\n"
      "\n"
      "compile  --emit exe (default): OUT is a program\n"
      "             PROG [--weights W.safetensors] name=FILE.npy ... -o "
      "OUTDIR\n"
      "         --emit c: OUT is a directory receiving NAME.h, NAME.c and the "
      "runtime\n"
      "         --emit ir: OUT is the IR text after optimization ('-' = "
      "stdout)\n"
      "         --weights checks weight names, dtypes and shapes now, and "
      "becomes\n"
      "         the program's default weights file\n"
      "         --prepare-weights P: also writes the weights as the program\n"
      "         keeps them (16-bit, transposed, packed for the GEMM) and what\n"
      "         depends only on them (computed now) to P, the program's\n"
      "         default weights then: it opens P without converting or\n"
      "         computing anything\n"
      "         --weight-dtype f16|bf16 keeps the matrices the model only\n"
      "         multiplies by or gathers rows from in 16 bits (rounded once\n"
      "         when the program loads them; arithmetic stays f32)\n"
      "         --cpu: the CPU an exe is built for (the C compiler's -march):\n"
      "         native (default) this machine's, generic any of its kind\n"
      "         --emit llvm: OUT is LLVM IR (.ll); --emit obj: an object file\n"
      "         with the entry points of the C backend's NAME.h; both for\n"
      "         --target (default: this machine) with --cpu and --features\n"
      "         --backend llvm: --emit exe through LLVM instead of C\n"
      "         --check-plan: each call checks the memory plan (buffers live\n"
      "         together never overlap) and fills the arena with NaNs first\n"
      "run      compiles the model in memory (LLVM's JIT, no C compiler) and\n"
      "         runs it as its program would: [ENTRY] [--weights W] "
      "name=FILE.npy\n"
      "         ... -o OUTDIR [--threads N]\n"
      "inspect  prints constants, inputs, outputs and weights as YAML\n"
      "opt      runs passes on IR text (see --passes=help)\n",
      out);
}

/* Writes text to path atomically ("-" = stdout). */
static int write_atomic(const char *path, const char *text, Diag *d) {
  if (strcmp(path, "-") == 0) {
    fputs(text, stdout);
    return 0;
  }
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    diag_error(d, loc_none(), "cannot write '%s': %s", path, strerror(errno));
    return -1;
  }
  size_t n = strlen(text);
  int bad = fwrite(text, 1, n, f) != n;
  bad |= fclose(f) != 0;
  if (bad || rename(tmp, path) != 0) {
    diag_error(d, loc_none(), "cannot write '%s': %s", path, strerror(errno));
    remove(tmp);
    return -1;
  }
  return 0;
}

static int parse_define_arg(BuildOptions *o, const char *arg, Diag *d) {
  const char *eq = strchr(arg, '=');
  if (!eq || eq == arg || !eq[1]) {
    diag_error(d, loc_none(), "-D expects name=value, got '%s'", arg);
    return -1;
  }
  char name[256];
  snprintf(name, sizeof name, "%.*s", (int)(eq - arg), arg);
  options_define(o, options_own(o, name), eq + 1, loc_none(), 1);
  return 0;
}

/* Option value: "--flag=value" or "--flag value" */
static const char *opt_value(int argc, char **argv, int *i, const char *flag) {
  size_t n = strlen(flag);
  if (strncmp(argv[*i], flag, n) != 0)
    return NULL;
  if (argv[*i][n] == '=')
    return argv[*i] + n + 1;
  if (argv[*i][n] == 0 && *i + 1 < argc)
    return argv[++*i];
  return NULL;
}

static int parse_args(int argc, char **argv, BuildOptions *o,
                      const char **config, Diag *d) {
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i], *v;
    if (strcmp(a, "-D") == 0 && i + 1 < argc) {
      if (parse_define_arg(o, argv[++i], d))
        return -1;
    } else if (strncmp(a, "-D", 2) == 0 && a[2]) {
      if (parse_define_arg(o, a + 2, d))
        return -1;
    } else if ((v = opt_value(argc, argv, &i, "--config"))) {
      *config = v;
    } else if ((v = opt_value(argc, argv, &i, "--entry"))) {
      o->entry = v;
      o->set_entry = 1;
    } else if ((v = opt_value(argc, argv, &i, "--weight-dtype"))) {
      if (options_parse_weight_dtype(v, &o->weight_dtype)) {
        diag_error(d, loc_none(),
                   "--weight-dtype must be f32, f16 or bf16, not '%s'", v);
        return -1;
      }
      o->set_weight_dtype = 1;
    } else if ((v = opt_value(argc, argv, &i, "--cpu"))) {
      if (!options_valid_cpu(v)) {
        diag_error(d, loc_none(),
                   "--cpu must be native, generic or a CPU name of the C "
                   "compiler's -march, not '%s'",
                   v);
        return -1;
      }
      o->cpu = v;
      o->set_cpu = 1;
    } else if ((v = opt_value(argc, argv, &i, "--backend"))) {
      if (strcmp(v, "c") && strcmp(v, "llvm")) {
        diag_error(d, loc_none(), "--backend must be c or llvm, not '%s'", v);
        return -1;
      }
      o->llvm = strcmp(v, "llvm") == 0;
      o->set_backend = 1;
    } else if ((v = opt_value(argc, argv, &i, "--target"))) {
      o->target = v;
    } else if ((v = opt_value(argc, argv, &i, "--features"))) {
      o->features = v;
    } else if ((v = opt_value(argc, argv, &i, "--weights"))) {
      o->weights = v;
      o->set_weights = 1;
    } else if ((v = opt_value(argc, argv, &i, "--prepare-weights"))) {
      o->prepare_weights = v;
    } else if (strcmp(a, "--check-plan") == 0) {
      o->check_plan = 1;
    } else if ((v = opt_value(argc, argv, &i, "--emit"))) {
      if (options_parse_emit(v, &o->emit)) {
        diag_error(d, loc_none(),
                   "--emit must be c, ir, exe, llvm or obj, not '%s'", v);
        return -1;
      }
      o->set_emit = 1;
    } else if (strcmp(a, "-O0") == 0 || strcmp(a, "-O1") == 0 ||
               strcmp(a, "-O2") == 0) {
      o->opt_level = a[2] - '0';
      o->set_opt = 1;
    } else if (strcmp(a, "-o") == 0 && i + 1 < argc) {
      o->output = argv[++i];
      o->set_output = 1;
    } else if (a[0] == '-' && a[1]) {
      diag_error(d, loc_none(), "unknown option '%s' (see modelc --help)", a);
      return -1;
    } else if (!o->model) {
      o->model = a;
    } else {
      diag_error(d, loc_none(), "more than one input file: '%s' and '%s'",
                 o->model, a);
      return -1;
    }
  }
  if (!o->model) {
    diag_error(d, loc_none(), "no model file given (see modelc --help)");
    return -1;
  }
  return 0;
}

/* Marks in reads[] every weight an op of b (or of a region in it) reads. */
static void mark_weight_reads(const Block *b, bool *reads) {
  for (const Op *op = b->first; op; op = op->next) {
    if (op->kind == OP_PARAM)
      reads[op->attrs.param.index] = true;
    for (int r = 0; r < op->nregions; r++)
      mark_weight_reads(op->regions[r], reads);
  }
}

/* A warning at each declared weight that no function reads or writes once dead
 * code is gone (called with every entry point compiled: one chosen by --entry
 * leaves the others' weights unread). */
static void warn_unread_weights(const Module *m, Diag *d) {
  int n = ir_file_params(m); /* then the prepared ones, read too */
  bool *reads = calloc((size_t)m->nparams + 1, sizeof *reads);
  if (!reads)
    return;
  for (const Function *f = m->functions; f; f = f->next)
    mark_weight_reads(f->body, reads);
  for (int i = 0; i < n; i++)
    if (!reads[i] && !ir_param_trained(m, i)) /* written: an assign's */
      diag_warning(d, m->params[i].loc,
                   "weight '%s' is declared but no entry point reads it",
                   m->params[i].name);
  free(reads);
}

/* One warning naming the tensors of the weights file st that no weight of
 * m is read from (a Hugging Face checkpoint carries buffers and heads a
 * model may not use); at most 5 named. */
static void warn_unused_tensors(const Module *m, const McSafetensors *st,
                                const char *path, Diag *d) {
  int n = mc_st_count(st), unused = 0;
  bool *used = calloc((size_t)n + 1, sizeof *used);
  if (!used)
    return;
  for (int i = 0; i < ir_file_params(m); i++) {
    const McStTensor *t = mc_st_find(st, m->params[i].name, NULL);
    for (int k = 0; t && k < n; k++)
      if (mc_st_get(st, k) == t)
        used[k] = true;
  }
  char names[400] = "";
  size_t len = 0;
  for (int k = 0; k < n; k++) {
    if (used[k])
      continue;
    if (++unused <= 5 && len < sizeof names)
      len += (size_t)snprintf(names + len, sizeof names - len, "%s'%s'",
                              unused > 1 ? ", " : "", mc_st_get(st, k)->name);
  }
  if (unused > 5)
    snprintf(names + len, len < sizeof names ? sizeof names - len : 0,
             " and %d more", unused - 5);
  if (unused)
    diag_warning(d, loc_none(),
                 "%s: %d of its %d tensors %s not read by the model: %s", path,
                 unused, n, unused > 1 ? "are" : "is", names);
  free(used);
}

/* Checks every parameter against the weights file: names, shapes, dtypes.
 * A file that cannot be read is one error; otherwise each weight that does
 * not fit is an error of its own at the model line that declares it (each
 * weight is loaded alone, so one bad weight hides no other). When all fit,
 * the tensors of the file that no weight is read from are one warning. */
static int check_weights(const Module *m, const char *path, Diag *d) {
  McError err = {0, {0}};
  McSafetensors *st = NULL;
  if (mc_st_open(path, &st, &err) != MC_OK) {
    diag_error(d, loc_none(), "%s", err.msg);
    return -1;
  }
  int bad = 0;
  for (int i = 0; i < ir_file_params(m); i++) {
    McWeightSpec spec;
    memset(&spec, 0, sizeof spec);
    spec.name = m->params[i].name;
    spec.rank = m->params[i].type.shape.rank;
    for (int k = 0; k < spec.rank; k++)
      dim_is_const(m->params[i].type.shape.dims[k], &spec.shape[k]);
    McWeights *w = NULL;
    if (mc_weights_load(path, &spec, 1, &w, &err) != MC_OK) {
      diag_error(d, m->params[i].loc, "%s", err.msg);
      bad++;
    }
    mc_weights_free(w);
  }
  if (!bad)
    warn_unused_tensors(m, st, path, d);
  mc_st_close(st);
  return bad ? -1 : 0;
}

/* The AST outlives the Module: its source text is registered in d and
 * quoted by messages of later phases. */
static Module *load_model(BuildOptions *o, AstModule **ast, LowerOptions *lo,
                          Diag *d) {
  *ast = ast_parse_file(o->model, d);
  if (!*ast)
    return NULL;
  memset(lo, 0, sizeof *lo);
  lo->ndefines = o->ndefines;
  lo->defines = o->defines;
  lo->entry = o->entry;
  return lower_module(*ast, lo, d);
}

static int cmd_compile(int argc, char **argv, Diag *d) {
  BuildOptions o;
  memset(&o, 0, sizeof o);
  o.emit = EMIT_EXE;
  o.opt_level = 2;
  const char *config = NULL;
  AstModule *ast = NULL;
  LowerOptions lo;
  memset(&lo, 0, sizeof lo);
  Module *m = NULL;
  int rc = 1;
  if (parse_args(argc, argv, &o, &config, d))
    goto done;
  if (config && config_read(config, &o, d))
    goto done;
  if (!o.output) {
    diag_error(d, loc_none(), "no output given: use -o OUT");
    goto done;
  }
  if (o.llvm && o.emit == EMIT_C) {
    diag_error(d, loc_none(),
               "--backend llvm emits no C: use --emit llvm, obj "
               "or exe");
    goto done;
  }
  if ((o.target || o.features) && o.emit != EMIT_LLVM && o.emit != EMIT_OBJ) {
    diag_error(d, loc_none(),
               "--target and --features are for --emit llvm and obj (a "
               "program is built for this machine)");
    goto done;
  }
  if (o.prepare_weights && !o.weights) {
    diag_error(d, loc_none(),
               "--prepare-weights needs the weights to prepare: pass "
               "--weights W.safetensors");
    goto done;
  }
  m = load_model(&o, &ast, &lo, d);
  if (!m)
    goto done;
  if (o.weights && check_weights(m, o.weights, d))
    goto done;
  if (!pass_run_default(m, o.opt_level, d))
    goto done;
  if (!o.entry)
    warn_unread_weights(m, d);
  CgOptions cg;
  memset(&cg, 0, sizeof cg);
  cg.opt_level = o.opt_level;
  cg.default_weights = o.prepare_weights ? o.prepare_weights : o.weights;
  cg.weight_dtype = o.weight_dtype;
  cg.cpu = o.cpu;
  cg.check_plan = o.check_plan;
  /* the weights as the program keeps them, computed now (LLVM's JIT); the
   * file goes again if the program cannot be made */
  if (o.prepare_weights &&
      !cg_llvm_prepare_weights(m, &cg, o.weights, o.prepare_weights, d))
    goto done;
  switch (o.emit) {
  case EMIT_IR: {
    char *text = ir_print_to_string(m);
    rc = write_atomic(o.output, text, d) ? 1 : 0;
    free(text);
    break;
  }
  case EMIT_C:
    rc = cg_emit_c(m, o.output, &cg, d) ? 0 : 1;
    break;
  case EMIT_EXE:
    rc = (o.llvm ? cg_build_exe_llvm(m, o.output, &cg, d)
                 : cg_build_exe(m, o.output, &cg, d))
             ? 0
             : 1;
    break;
  case EMIT_LLVM:
  case EMIT_OBJ: {
    CgLlvmTargetOptions t = {o.target, o.cpu, o.features, o.opt_level};
    rc = cg_emit_llvm(m, o.output, o.emit == EMIT_OBJ, &cg, &t, d) ? 0 : 1;
    break;
  }
  case EMIT_COUNT:
    break;
  }
  if (rc != 0 && o.prepare_weights)
    unlink(o.prepare_weights);
done:
  if (m)
    ir_module_free(m);
  if (ast)
    ast_free(ast);
  lower_free_includes(&lo);
  options_free(&o);
  return rc;
}

/* modelc run FILE.model [options] PROGRAM-ARGUMENTS: the compile options
 * that shape the model are modelc's, everything else is the program's. */
static int cmd_run(int argc, char **argv, Diag *d) {
  BuildOptions o;
  memset(&o, 0, sizeof o);
  o.opt_level = 2;
  char **pargv = calloc((size_t)argc + 1, sizeof *pargv);
  int pargc = 0, rc = 1;
  AstModule *ast = NULL;
  LowerOptions lo;
  memset(&lo, 0, sizeof lo);
  Module *m = NULL;
  if (!pargv)
    goto done;
  pargv[pargc++] = argv[0];
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i], *v;
    if (strcmp(a, "-D") == 0 && i + 1 < argc) {
      if (parse_define_arg(&o, argv[++i], d))
        goto done;
    } else if (strncmp(a, "-D", 2) == 0 && a[2]) {
      if (parse_define_arg(&o, a + 2, d))
        goto done;
    } else if ((v = opt_value(argc, argv, &i, "--entry"))) {
      o.entry = v;
    } else if ((v = opt_value(argc, argv, &i, "--weight-dtype"))) {
      if (options_parse_weight_dtype(v, &o.weight_dtype)) {
        diag_error(d, loc_none(),
                   "--weight-dtype must be f32, f16 or bf16, not '%s'", v);
        goto done;
      }
    } else if (strcmp(a, "-O0") == 0 || strcmp(a, "-O1") == 0 ||
               strcmp(a, "-O2") == 0) {
      o.opt_level = a[2] - '0';
    } else if (strcmp(a, "--check-plan") == 0) {
      o.check_plan = 1;
    } else if (!o.model && a[0] != '-') {
      o.model = a;
    } else {
      pargv[pargc++] = argv[i];
    }
  }
  if (!o.model) {
    diag_error(d, loc_none(), "no model file given (see modelc --help)");
    goto done;
  }
  m = load_model(&o, &ast, &lo, d);
  if (!m || !pass_run_default(m, o.opt_level, d))
    goto done;
  warn_unread_weights(m, d);
  CgOptions cg;
  memset(&cg, 0, sizeof cg);
  cg.opt_level = o.opt_level;
  cg.weight_dtype = o.weight_dtype;
  cg.check_plan = o.check_plan;
  pargv[0] = (char *)o.model;
  fflush(stdout);
  rc = cg_llvm_run(m, &cg, pargc, pargv, d);
  if (rc < 0)
    rc = 1;
done:
  if (m)
    ir_module_free(m);
  if (ast)
    ast_free(ast);
  lower_free_includes(&lo);
  options_free(&o);
  free(pargv);
  return rc;
}

static int cmd_inspect(int argc, char **argv, Diag *d) {
  BuildOptions o;
  memset(&o, 0, sizeof o);
  const char *config = NULL;
  AstModule *ast = NULL;
  LowerOptions lo;
  memset(&lo, 0, sizeof lo);
  Module *m = NULL;
  int rc = 1;
  if (parse_args(argc, argv, &o, &config, d) == 0 &&
      (!config || config_read(config, &o, d) == 0) &&
      (m = load_model(&o, &ast, &lo, d)) != NULL)
    rc = inspect_write(stdout, m) ? 1 : 0;
  if (m)
    ir_module_free(m);
  if (ast)
    ast_free(ast);
  lower_free_includes(&lo);
  options_free(&o);
  return rc;
}

static char *slurp(const char *path, Diag *d) {
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
  size_t len;
  char *text = f ? read_stream(f, SIZE_MAX, &len) : NULL;
  if (!text)
    diag_error(d, loc_none(), "cannot read '%s': %s", path, strerror(errno));
  if (f && f != stdin)
    fclose(f);
  return text;
}

static int cmd_opt(int argc, char **argv, Diag *d) {
  const char *input = NULL, *passes = NULL, *print_after = NULL, *out = "-";
  for (int i = 2; i < argc; i++) {
    const char *v;
    if ((v = opt_value(argc, argv, &i, "--passes")))
      passes = v;
    else if ((v = opt_value(argc, argv, &i, "--print-after")))
      print_after = v;
    else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
      out = argv[++i];
    else if (argv[i][0] == '-' && argv[i][1]) {
      diag_error(d, loc_none(), "unknown option '%s'", argv[i]);
      return 1;
    } else
      input = argv[i];
  }
  if (passes && strcmp(passes, "help") == 0) {
    int n;
    const PassInfo *all = pass_list(&n);
    for (int i = 0; i < n; i++)
      printf("  %-16s %s\n", all[i].name, all[i].summary);
    return 0;
  }
  if (!input) {
    diag_error(d, loc_none(), "no IR file given");
    return 1;
  }
  char *text = slurp(input, d);
  if (!text)
    return 1;
  diag_add_source(d, input, text);
  Module *m = ir_read(text, input, d);
  int rc = 1;
  if (m &&
      pass_run_list(m, passes ? passes : "verify", print_after, stdout, d)) {
    char *printed = ir_print_to_string(m);
    rc = write_atomic(out, printed, d) ? 1 : 0;
    free(printed);
  }
  if (m)
    ir_module_free(m);
  free(text);
  return rc;
}

int main(int argc, char **argv) {
  Diag d;
  diag_init(&d, stderr);
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  int rc;
  if (strcmp(cmd, "compile") == 0)
    rc = cmd_compile(argc, argv, &d);
  else if (strcmp(cmd, "run") == 0)
    rc = cmd_run(argc, argv, &d);
  else if (strcmp(cmd, "inspect") == 0)
    rc = cmd_inspect(argc, argv, &d);
  else if (strcmp(cmd, "opt") == 0)
    rc = cmd_opt(argc, argv, &d);
  else if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
           strcmp(cmd, "help") == 0) {
    usage(stdout);
    rc = 0;
  } else if (strcmp(cmd, "--version") == 0) {
    puts("modelc 0.1");
    rc = 0;
  } else {
    diag_error(&d, loc_none(),
               "unknown command '%s' (compile, run, inspect, opt)", cmd);
    usage(stderr);
    rc = 2;
  }
  if (d.nerrors && rc == 0)
    rc = 1;
  diag_free(&d);
  return rc;
}
