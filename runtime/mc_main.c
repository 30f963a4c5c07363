/* The driver of an emitted executable:
 *
 *   PROG [--weights W.safetensors] [--threads N] [--time R] name=FILE.npy
 *        ... -o OUTDIR|OUT.safetensors
 *
 * reads the inputs, converts them to the model's dtypes (range-checked),
 * opens the weights, runs the model (its kernels on N threads: --threads,
 * else $MC_THREADS, else every core) and writes OUTDIR/<output>.npy for
 * every output, or every output into one file when -o names a
 * .safetensors file (mc_st_write: tensors named after the outputs). --time R
 * runs it R more times and prints the median and the fastest of those runs'
 * wall times to stderr (the model alone: no loading, no files; for benchmarks),
 * then writes the last run's outputs.
 *
 * Invariants: mc_main never exits or aborts (tests call it in-process) and
 * frees everything it allocates; output is all-or-nothing: every output is
 * first written to a temp file inside OUTDIR and only when all are complete
 * are they renamed into place (rename within a directory is atomic; only an
 * OS failure between two renames could leave a subset, and it is reported);
 * a .safetensors file is one rename. On any error nothing new is left in
 * OUTDIR (or at OUT.safetensors) and the exit status is 1.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "mc_io.h"
#include "mc_runtime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

typedef struct MainArgs {
  const char *weights;
  const char *outdir;
  int threads;        /* 0: not given */
  int time_runs;      /* --time R: 0 when not given */
  const char **files; /* per input spec: the .npy path, or NULL */
} MainArgs;

static const char *main_prog_name(int argc, char **argv) {
  const char *p = argc > 0 && argv[0] ? argv[0] : "model";
  const char *slash = strrchr(p, '/');
  return slash ? slash + 1 : p;
}

static void main_usage(FILE *f, const char *prog, const McModelInfo *info) {
  fprintf(f,
          "usage: %s [--weights W.safetensors] [--threads N] name=FILE.npy "
          "... -o OUTDIR|OUT.safetensors\n",
          prog);
  fprintf(f,
          "\nRuns model '%s' and writes OUTDIR/<output>.npy, or every "
          "output into OUT.safetensors.\n",
          info->name ? info->name : prog);
  fprintf(f, "\ninputs:\n");
  for (int i = 0; i < info->ninputs; i++)
    fprintf(f, "  %-16s %s, rank %d%s\n", info->inputs[i].name,
            mc_dtype_name(info->inputs[i].dtype), info->inputs[i].rank,
            info->inputs[i].optional ? " (optional)" : "");
  fprintf(f, "outputs:\n");
  for (int i = 0; i < info->noutputs; i++)
    fprintf(f, "  %-16s %s, rank %d\n", info->outputs[i].name,
            mc_dtype_name(info->outputs[i].dtype), info->outputs[i].rank);
  if (info->nweights > 0)
    fprintf(f, "weights: %d tensors%s%s%s\n", info->nweights,
            info->default_weights ? " (default: " : "",
            info->default_weights ? info->default_weights : "",
            info->default_weights ? ")" : "");
  fprintf(f,
          "options:\n  %-16s run the kernels on N threads (default: "
          "$MC_THREADS, else every core)\n  %-16s run the model R more times "
          "and print their median and fastest\n  %-16s wall time (the model "
          "alone) to stderr\n",
          "--threads N", "--time R", "");
}

/* The value of --threads or --time: a positive integer, at most max. */
#define MAIN_MAX_THREADS 1024
#define MAIN_MAX_TIME_RUNS 100000
int mc_main_parse_count(const char *opt, const char *s, long max, int *out,
                        McError *e) {
  char *end = NULL;
  long n = *s >= '0' && *s <= '9' ? strtol(s, &end, 10) : 0;
  if (n < 1 || n > max || *end != '\0')
    return mc_fail(e, MC_ERR_USAGE,
                   "%s: '%.40s' is not a positive integer up to %ld", opt, s,
                   max);
  *out = (int)n;
  return MC_OK;
}

/* Fills args from argv; returns -1 for --help, 0 when parsed, else an error. */
static int main_parse(int argc, char **argv, const McModelInfo *info,
                      MainArgs *args, McError *e) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *eq = strchr(a, '=');
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
      return -1;
    if (strcmp(a, "--weights") == 0 || strcmp(a, "-o") == 0) {
      if (i + 1 >= argc)
        return mc_fail(e, MC_ERR_USAGE, "%s needs an argument", a);
      *(a[1] == 'o' ? &args->outdir : &args->weights) = argv[++i];
    } else if (strncmp(a, "--weights=", 10) == 0) {
      args->weights = a + 10;
    } else if (strncmp(a, "--threads", 9) == 0 &&
               (a[9] == '\0' || a[9] == '=')) {
      if (a[9] == '\0' && i + 1 >= argc)
        return mc_fail(e, MC_ERR_USAGE, "--threads needs an argument");
      int rc = mc_main_parse_count("--threads", a[9] ? a + 10 : argv[++i],
                                   MAIN_MAX_THREADS, &args->threads, e);
      if (rc)
        return rc;
    } else if (strncmp(a, "--time", 6) == 0 && (a[6] == '\0' || a[6] == '=')) {
      if (a[6] == '\0' && i + 1 >= argc)
        return mc_fail(e, MC_ERR_USAGE, "--time needs an argument");
      int rc = mc_main_parse_count("--time", a[6] ? a + 7 : argv[++i],
                                   MAIN_MAX_TIME_RUNS, &args->time_runs, e);
      if (rc)
        return rc;
    } else if (a[0] != '-' && eq && eq != a) {
      int k = 0;
      size_t len = (size_t)(eq - a);
      while (k < info->ninputs && !(strlen(info->inputs[k].name) == len &&
                                    memcmp(info->inputs[k].name, a, len) == 0))
        k++;
      if (k == info->ninputs)
        return mc_fail(e, MC_ERR_NAME, "unknown input '%.*s' (see --help)",
                       (int)len, a);
      if (args->files[k])
        return mc_fail(e, MC_ERR_USAGE, "input '%s' given twice",
                       info->inputs[k].name);
      if (eq[1] == '\0')
        return mc_fail(e, MC_ERR_USAGE, "input '%s': missing file name",
                       info->inputs[k].name);
      args->files[k] = eq + 1;
    } else {
      return mc_fail(e, MC_ERR_USAGE,
                     "unexpected argument '%s' (expected name=FILE.npy, "
                     "--weights FILE, --threads N, --time R or -o OUTDIR; "
                     "see --help)",
                     a);
    }
  }
  if (!args->outdir || !args->outdir[0])
    return mc_fail(e, MC_ERR_USAGE, "no output directory: pass -o OUTDIR");
  for (int k = 0; k < info->ninputs; k++)
    if (!args->files[k] && !info->inputs[k].optional)
      return mc_fail(e, MC_ERR_USAGE,
                     "missing input '%s' (%s, rank %d): pass %s=FILE.npy",
                     info->inputs[k].name, mc_dtype_name(info->inputs[k].dtype),
                     info->inputs[k].rank, info->inputs[k].name);
  return MC_OK;
}

/* Prefixes the message already in e: "input 'x': <message>". */
static int main_wrap(McError *e, int rc, const char *what, const char *name) {
  char inner[sizeof e->msg];
  memcpy(inner, e->msg, sizeof inner);
  inner[sizeof inner - 1] = '\0';
  return mc_fail(e, rc, "%s '%.100s': %s", what, name, inner);
}

static int main_dtype_class(McDType t) {
  return t == MC_F32 || t == MC_F64 || t == MC_F16 || t == MC_BF16 ? 1
         : t == MC_I32 || t == MC_I64                              ? 2
                                                                   : 3;
}

/* Reads input k into *t in the model's dtype. */
int mc_main_read_input(const McIOSpec *spec, const char *file, McTensor *t,
                       McError *e) {
  McTensor raw;
  char shape[256];
  int rc = mc_npy_read(file, &raw, e);
  if (rc)
    return main_wrap(e, rc, "input", spec->name);
  if (main_dtype_class(raw.dtype) != main_dtype_class(spec->dtype)) {
    static const char *const accepted[] = {"", "an f32 or f64", "an i32 or i64",
                                           "a bool"};
    rc = mc_fail(e, MC_ERR_DTYPE,
                 "input '%s': expected %s data (%s .npy), found %s in %s",
                 spec->name, mc_dtype_name(spec->dtype),
                 accepted[main_dtype_class(spec->dtype)],
                 mc_dtype_name(raw.dtype), file);
  } else if (raw.rank != spec->rank) {
    rc = mc_fail(e, MC_ERR_SHAPE,
                 "input '%s': expected rank %d (%s), found "
                 "shape %s in %s",
                 spec->name, spec->rank, mc_dtype_name(spec->dtype),
                 mc_shape_str(raw.rank, raw.shape, shape, sizeof shape), file);
  } else if (raw.dtype == spec->dtype) {
    *t = raw;
    return MC_OK;
  } else if ((rc = mc_tensor_convert(&raw, spec->dtype, t, e))) {
    rc = main_wrap(e, rc, "input", spec->name);
  }
  mc_tensor_free(&raw);
  return rc;
}

/* mkdir -p. *created is the length of the prefix of dir that names the
 * first directory this call created (0 if none), for main_remove_dirs. */
static int main_make_dirs(const char *dir, size_t *created, McError *e) {
  struct stat sb;
  size_t len = strlen(dir);
  char *p = malloc(len + 1);
  *created = 0;
  if (!p)
    return mc_fail(e, MC_ERR_NOMEM, "out of memory");
  memcpy(p, dir, len + 1);
  for (size_t i = 1; i <= len; i++) {
    if (p[i] != '/' && p[i] != '\0')
      continue;
    char c = p[i];
    p[i] = '\0';
    if (mkdir(p, 0777) == 0) {
      if (*created == 0)
        *created = i;
    } else if (errno != EEXIST) {
      int rc = mc_fail(e, MC_ERR_IO, "cannot create directory %s: %s", p,
                       strerror(errno));
      free(p);
      return rc;
    }
    p[i] = c;
  }
  free(p);
  if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
    return mc_fail(e, MC_ERR_IO, "%s is not a directory", dir);
  return MC_OK;
}

/* Removes the (by now empty) directories main_make_dirs created. */
static void main_remove_dirs(const char *dir, size_t created) {
  size_t len = strlen(dir);
  char *p = created ? malloc(len + 1) : NULL;
  if (!p)
    return;
  memcpy(p, dir, len + 1);
  for (;;) {
    while (len > created && p[len - 1] == '/')
      p[--len] = '\0';
    if (len < created)
      break;
    rmdir(p);
    while (len > 0 && p[len - 1] != '/')
      len--;
    p[len] = '\0';
  }
  free(p);
}

static char *main_join(const char *dir, const char *prefix, const char *name,
                       const char *suffix) {
  size_t n = strlen(dir) + strlen(prefix) + strlen(name) + strlen(suffix) + 2;
  char *s = malloc(n);
  if (s)
    snprintf(s, n, "%s/%s%s%s", dir, prefix, name, suffix);
  return s;
}

/* Whether -o names a .safetensors file rather than a directory. */
static int main_is_safetensors(const char *out) {
  size_t n = strlen(out), k = strlen(".safetensors");
  return n > k && strcmp(out + n - k, ".safetensors") == 0;
}

/* Writes every output into one safetensors file (all or nothing). */
static int main_write_safetensors(const McModelInfo *info, const McTensor *outs,
                                  const char *path, McError *e) {
  int n = info->noutputs;
  const char **names = calloc((size_t)n + 1, sizeof *names);
  if (!names)
    return mc_fail(e, MC_ERR_NOMEM, "out of memory");
  for (int i = 0; i < n; i++)
    names[i] = info->outputs[i].name;
  int rc = mc_st_write(path, NULL, names, outs, n, e);
  free(names);
  return rc;
}

/* Writes every output to OUTDIR/.<name>.npy.tmp.<pid>, then renames them all
 * to OUTDIR/<name>.npy; on failure removes what it wrote. */
static int main_write_outputs(const McModelInfo *info, const McTensor *outs,
                              const char *outdir, McError *e) {
  if (main_is_safetensors(outdir))
    return main_write_safetensors(info, outs, outdir, e);
  int n = info->noutputs, rc = MC_OK, written = 0;
  char suffix[48];
  snprintf(suffix, sizeof suffix, ".npy.tmp.%ld", (long)getpid());
  char **tmp = calloc((size_t)n + 1, sizeof *tmp);
  char **dst = calloc((size_t)n + 1, sizeof *dst);
  if (!tmp || !dst)
    rc = mc_fail(e, MC_ERR_NOMEM, "out of memory");
  for (int i = 0; !rc && i < n; i++) {
    const char *name = info->outputs[i].name;
    if (!name[0] || strchr(name, '/') || name[0] == '.')
      rc = mc_fail(e, MC_ERR_NAME, "output name '%s' is not a file name", name);
    for (int k = 0; !rc && k < i; k++)
      if (strcmp(info->outputs[k].name, name) == 0)
        rc = mc_fail(e, MC_ERR_NAME, "output '%s' is declared twice", name);
    if (!rc) {
      tmp[i] = main_join(outdir, ".", name, suffix);
      dst[i] = main_join(outdir, "", name, ".npy");
      if (!tmp[i] || !dst[i])
        rc = mc_fail(e, MC_ERR_NOMEM, "out of memory");
    }
  }
  size_t created = 0;
  if (!rc)
    rc = main_make_dirs(outdir, &created, e);
  while (!rc && written < n) {
    if ((rc = mc_npy_write_direct(tmp[written], &outs[written], e)))
      rc = main_wrap(e, rc, "output", info->outputs[written].name);
    else
      written++;
  }
  int renamed = 0;
  while (!rc && renamed < n) {
    if (rename(tmp[renamed], dst[renamed]) != 0)
      rc = mc_fail(e, MC_ERR_IO, "cannot rename %s to %s: %s%s", tmp[renamed],
                   dst[renamed], strerror(errno),
                   renamed ? " (earlier outputs were already renamed)" : "");
    else
      renamed++;
  }
  for (int i = renamed; rc && i < written; i++)
    unlink(tmp[i]); /* a failed write removes its own file */
  if (rc && renamed == 0)
    main_remove_dirs(outdir, created);
  for (int i = 0; i < n && tmp && dst; i++) {
    free(tmp[i]);
    free(dst[i]);
  }
  free(tmp);
  free(dst);
  return rc;
}

static double main_now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

static int main_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* --time R: R more runs (outs holds the first run's results, which are
 * replaced by each run's), their median and fastest wall time to stderr.
 * A generated program's runs write into the first run's output buffers (as
 * a caller of the model's NAME_run reuses its own): the time is the
 * model's, not the kernel's clearing of fresh pages. */
static int main_time(const McModelInfo *info, void *handle, const McTensor *ins,
                     McTensor *outs, int runs, const char *prog, McError *e) {
  double *ms = malloc(sizeof *ms * (size_t)runs);
  if (!ms)
    return mc_fail(e, MC_ERR_NOMEM, "out of memory");
  int rc = MC_OK;
  for (int r = 0; !rc && r < runs; r++) {
    for (int i = 0; !info->entry && i < info->noutputs; i++) {
      mc_tensor_free(&outs[i]);
      outs[i].dtype = info->outputs[i].dtype;
      outs[i].rank = info->outputs[i].rank;
    }
    double t0 = main_now_ms();
    rc = info->run(handle, ins, outs, e);
    ms[r] = main_now_ms() - t0;
  }
  if (!rc) {
    qsort(ms, (size_t)runs, sizeof *ms, main_cmp_double);
    double median =
        runs % 2 ? ms[runs / 2] : (ms[runs / 2 - 1] + ms[runs / 2]) / 2.0;
    fprintf(stderr, "%s: time: median %.3f ms, fastest %.3f ms, %d runs\n",
            prog, median, ms[0], runs);
  }
  free(ms);
  return rc;
}

static int main_run(int argc, char **argv, const McModelInfo *info,
                    McError *e) {
  MainArgs args = {NULL, NULL, 0, 0, NULL};
  McTensor *ins = NULL, *outs = NULL;
  void *handle = NULL;
  int rc = MC_OK, opened = 0;
  args.files = calloc((size_t)info->ninputs + 1, sizeof *args.files);
  ins = calloc((size_t)info->ninputs + 1, sizeof *ins);
  outs = calloc((size_t)info->noutputs + 1, sizeof *outs);
  if (!args.files || !ins || !outs)
    rc = mc_fail(e, MC_ERR_NOMEM, "out of memory");
  if (!rc)
    rc = main_parse(argc, argv, info, &args, e);
  if (rc == -1) {
    main_usage(stdout, main_prog_name(argc, argv), info);
    rc = MC_OK;
    goto done;
  }
  if (!rc && args.threads > 0)
    mc_set_threads(args.threads);
  for (int k = 0; !rc && k < info->ninputs; k++) {
    ins[k].dtype = info->inputs[k].dtype;
    ins[k].rank = info->inputs[k].rank;
    if (args.files[k])
      rc = mc_main_read_input(&info->inputs[k], args.files[k], &ins[k], e);
  }
  const char *weights = args.weights ? args.weights : info->default_weights;
  if (!rc && !weights && info->nweights > 0)
    rc = mc_fail(e, MC_ERR_USAGE,
                 "model '%s' needs weights: pass --weights FILE.safetensors",
                 info->name ? info->name : "?");
  if (!rc && (rc = info->open(weights, &handle, e)) == MC_OK)
    opened = 1;
  for (int i = 0; !rc && i < info->noutputs; i++) {
    outs[i].dtype = info->outputs[i].dtype;
    outs[i].rank = info->outputs[i].rank;
  }
  if (!rc)
    rc = info->run(handle, ins, outs, e);
  if (!rc && args.time_runs > 0)
    rc = main_time(info, handle, ins, outs, args.time_runs,
                   main_prog_name(argc, argv), e);
  if (!rc)
    rc = main_write_outputs(info, outs, args.outdir, e);
done:
  if (opened && info->close)
    info->close(handle);
  for (int k = 0; ins && k < info->ninputs; k++)
    mc_tensor_free(&ins[k]);
  for (int i = 0; outs && i < info->noutputs; i++)
    mc_tensor_free(&outs[i]);
  free(ins);
  free(outs);
  free(args.files);
  return rc;
}

int mc_main(int argc, char **argv, const McModelInfo *info) {
  McError e = {MC_OK, ""};
  const char *prog = main_prog_name(argc, argv);
  if (!info || !info->open || !info->run || info->ninputs < 0 ||
      info->noutputs < 0) {
    fprintf(stderr, "%s: error: invalid model description\n", prog);
    return 1;
  }
  if (info->train)
    return info->train(argc, argv, info);
  int rc = main_run(argc, argv, info, &e);
  if (rc) {
    fprintf(stderr, "%s: error: %s\n", prog, e.msg[0] ? e.msg : "failed");
    if (rc == MC_ERR_USAGE)
      fprintf(stderr, "run '%s --help' for usage\n", prog);
    return 1;
  }
  return 0;
}

int mc_main_entries(int argc, char **argv, int nentries,
                    const McModelInfo *const *entries) {
  const char *prog = main_prog_name(argc, argv);
  if (nentries <= 0 || !entries) {
    fprintf(stderr, "%s: error: invalid model description\n", prog);
    return 1;
  }
  const char *want = argc > 1 ? argv[1] : NULL;
  if (!want || strcmp(want, "--help") == 0 || strcmp(want, "-h") == 0 ||
      want[0] == '-' || strchr(want, '=')) {
    FILE *f = want && (strcmp(want, "--help") == 0 || strcmp(want, "-h") == 0)
                  ? stdout
                  : stderr;
    fprintf(
        f,
        "usage: %s ENTRY [--weights W.safetensors] [--threads N] [--time R] "
        "name=FILE.npy ... -o OUTDIR|OUT.safetensors\nentries:",
        prog);
    for (int i = 0; i < nentries; i++)
      fprintf(f, " %s", entries[i]->name);
    fprintf(f, "\n'%s ENTRY --help' lists an entry's inputs and outputs\n",
            prog);
    return f == stdout ? 0 : 1;
  }
  for (int i = 0; i < nentries; i++)
    if (entries[i] && strcmp(entries[i]->name, want) == 0) {
      /* "PROG ENTRY" takes the place of the program's name */
      static char both[512];
      snprintf(both, sizeof both, "%s %s", prog, want);
      argv[1] = both;
      return mc_main(argc - 1, argv + 1, entries[i]);
    }
  fprintf(stderr, "%s: error: unknown entry '%s' (entries:", prog, want);
  for (int i = 0; i < nentries; i++)
    fprintf(stderr, " %s", entries[i]->name);
  fprintf(stderr, ")\n");
  return 1;
}
