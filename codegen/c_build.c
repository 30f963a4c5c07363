/* Files and the C compiler: atomic file writes, and cg_build_exe, which
 * emits a model (with its main()) into a fresh temporary directory, compiles
 * everything with the user's C compiler and renames the program into place. The
 * temporary directory is always removed; a failed build leaves no output file
 * behind. The runtime's objects come from a cache when it has them
 * (c_cache.c).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "c_emit.h"

bool cg_make_dirs(const char *path, Diag *d) {
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1;; p++) {
    if (*p != '/' && *p != 0)
      continue;
    char c = *p;
    *p = 0;
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
      diag_error(d, loc_none(), "cannot create directory '%s': %s", buf,
                 strerror(errno));
      return false;
    }
    *p = c;
    if (!c)
      return true;
  }
}

/* Writes len bytes of text (NULL: none) to path; false with errno set. */
static bool write_all(const char *path, const char *text, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f)
    return false;
  bool ok = fwrite(text ? text : "", 1, len, f) == len;
  return (fclose(f) == 0) && ok;
}

bool cg_write_file(const char *path, const char *text, size_t len, Diag *d) {
  size_t n = strlen(path) + 32;
  char *tmp = malloc(n);
  if (!tmp) {
    diag_error(d, loc_none(), "out of memory");
    return false;
  }
  snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
  bool ok = write_all(tmp, text, len);
  if (ok)
    ok = rename(tmp, path) == 0;
  if (!ok) {
    diag_error(d, loc_none(), "cannot write '%s': %s", path, strerror(errno));
    remove(tmp);
  }
  free(tmp);
  return ok;
}

bool cg_files_stage(CgFiles *fs, const char *path, const char *text, size_t len,
                    Diag *d) {
  if (fs->failed)
    return false;
  if (fs->n == fs->cap) {
    int cap = fs->cap ? 2 * fs->cap : 16;
    char **paths = realloc(fs->paths, (size_t)cap * sizeof *paths);
    if (paths)
      fs->paths = paths;
    char **tmps = paths ? realloc(fs->tmps, (size_t)cap * sizeof *tmps) : NULL;
    if (tmps)
      fs->tmps = tmps;
    if (!paths || !tmps) {
      diag_error(d, loc_none(), "out of memory");
      return !(fs->failed = true);
    }
    fs->cap = cap;
  }
  size_t n = strlen(path) + 32;
  char *own = malloc(n), *tmp = malloc(n);
  if (!own || !tmp) {
    free(own);
    free(tmp);
    diag_error(d, loc_none(), "out of memory");
    return !(fs->failed = true);
  }
  snprintf(own, n, "%s", path);
  snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
  bool ok = write_all(tmp, text, len);
  if (!ok) {
    diag_error(d, loc_none(), "cannot write '%s': %s", path, strerror(errno));
    remove(tmp);
    free(own);
    free(tmp);
    return !(fs->failed = true);
  }
  fs->paths[fs->n] = own;
  fs->tmps[fs->n++] = tmp;
  return true;
}

bool cg_files_commit(CgFiles *fs, Diag *d) {
  int renamed = 0;
  bool ok = !fs->failed;
  /* a directory in a file's place is the one failure rename would meet
   * half-way (the temporary files are in the same directories): refuse it
   * before renaming anything */
  for (int i = 0; ok && i < fs->n; i++) {
    struct stat st;
    if (stat(fs->paths[i], &st) == 0 && S_ISDIR(st.st_mode)) {
      diag_error(d, loc_none(), "cannot write '%s': %s", fs->paths[i],
                 strerror(EISDIR));
      ok = false;
    }
  }
  while (ok && renamed < fs->n) {
    if (rename(fs->tmps[renamed], fs->paths[renamed]) != 0) {
      diag_error(d, loc_none(), "cannot write '%s': %s%s", fs->paths[renamed],
                 strerror(errno),
                 renamed ? " (earlier files were already renamed)" : "");
      ok = false;
    } else {
      renamed++;
    }
  }
  for (int i = 0; i < fs->n; i++) {
    if (i >= renamed)
      remove(fs->tmps[i]);
    free(fs->paths[i]);
    free(fs->tmps[i]);
  }
  free(fs->paths);
  free(fs->tmps);
  memset(fs, 0, sizeof *fs);
  return ok;
}

/* ---- argument lists
 * ---------------------------------------------------------- */

typedef struct Args {
  char **v;
  int n, cap;
} Args;

static void args_push(Args *a, const char *s) {
  if (a->n + 2 > a->cap) {
    int cap = a->cap ? 2 * a->cap : 32;
    char **v = realloc(a->v, (size_t)cap * sizeof(char *));
    if (!v)
      abort();
    a->v = v;
    a->cap = cap;
  }
  a->v[a->n] = strdup(s);
  if (!a->v[a->n])
    abort();
  a->n++;
  a->v[a->n] = NULL;
}

/* Splits on blanks (no quoting: $CC and $MC_CFLAGS are word lists). */
static void args_push_words(Args *a, const char *s) {
  while (s && *s) {
    while (*s == ' ' || *s == '\t')
      s++;
    size_t len = strcspn(s, " \t");
    if (len == 0)
      break;
    char word[1024];
    snprintf(word, sizeof word, "%.*s", (int)len, s);
    args_push(a, word);
    s += len;
  }
}

static void args_free(Args *a) {
  for (int i = 0; i < a->n; i++)
    free(a->v[i]);
  free(a->v);
}

/* ---- the temporary directory
 * ----------------------------------------------------- */

static int compare_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in dir ending in `suffix` (all when NULL), sorted. */
static Args list_dir(const char *dir, const char *suffix) {
  Args r = {0};
  DIR *dp = opendir(dir);
  if (!dp)
    return r;
  struct dirent *de;
  while ((de = readdir(dp))) {
    size_t n = strlen(de->d_name), k = suffix ? strlen(suffix) : 0;
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
      continue;
    if (suffix && (n < k || strcmp(de->d_name + n - k, suffix)))
      continue;
    args_push(&r, de->d_name);
  }
  closedir(dp);
  if (r.n > 1)
    qsort(r.v, (size_t)r.n, sizeof(char *), compare_names);
  return r;
}

static void remove_dir(const char *dir) {
  Args names = list_dir(dir, NULL);
  CgBuf path = {0};
  for (int i = 0; i < names.n; i++) {
    path.len = 0;
    cg_buf_printf(&path, "%s/%s", dir, names.v[i]);
    remove(path.data);
  }
  cg_buf_free(&path);
  args_free(&names);
  rmdir(dir);
}

int cg_run_logged(char **argv, const char *cwd, const char *log_path) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    FILE *log = fopen(log_path, "w");
    if (log) {
      dup2(fileno(log), 1);
      dup2(fileno(log), 2);
    }
    if (cwd && chdir(cwd) != 0) {
      fprintf(stderr, "cannot enter '%s': %s\n", cwd, strerror(errno));
      _exit(127);
    }
    execvp(argv[0], argv);
    fprintf(stderr, "cannot run '%s': %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static char *read_text(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  CgBuf b = {0};
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
    cg_buf_printf(&b, "%.*s", (int)n, chunk);
  fclose(f);
  return b.data;
}

/* Runtime files --emit c writes for the user's own programs (the GPT-2
 * tokenizer) that no generated program calls: not compiled into one. */
static bool is_library_only(const char *file) {
  static const char *const files[] = {"mc_bpe.c", "mc_bpe_load.c",
                                      "mc_unicode_tables.c"};
  for (size_t i = 0; i < sizeof files / sizeof *files; i++)
    if (!strcmp(file, files[i]))
      return true;
  return false;
}

static bool is_runtime(const char *file) {
  return !strncmp(file, "mc_", 3);
}

/* Runtime files that run once per program or per call, never per element:
 * reading and checking files and inputs, the driver, the model glue. They
 * are compiled for size (-Os): a third smaller, no slower where it counts. */
static bool is_cold(const char *file) {
  static const char *const files[] = {
      "mc_main.c",     "mc_model.c",   "mc_npy.c",
      "mc_prepared.c", "mc_runtime.c", "mc_safetensors.c",
      "mc_st_write.c", "mc_train.c",   "mc_weights.c"};
  for (size_t i = 0; i < sizeof files / sizeof *files; i++)
    if (!strcmp(file, files[i]))
      return true;
  return false;
}

/* Runs the compiler command argv in dir (logging into dir/cc.log); on
 * failure reports the command and the log. */
static bool run_cc(const Args *argv, const char *dir, Arena *arena, Diag *d) {
  char *log = cg_strf(arena, "%s/cc.log", dir);
  int status = cg_run_logged(argv->v, dir, log);
  if (status == 0)
    return true;
  CgBuf cmd = {0};
  for (int i = 0; i < argv->n; i++)
    cg_buf_printf(&cmd, "%s%s", i ? " " : "", argv->v[i]);
  char *text = read_text(log);
  diag_error(d, loc_none(), "the C compiler failed (exit status %d): %s\n%s",
             status, cg_buf_str(&cmd), text ? text : "");
  free(text);
  cg_buf_free(&cmd);
  return false;
}

/* The compiler's words: the options', else $CC, else cc. */
static const char *cc_name(const CgOptions *o) {
  const char *cc = o->cc ? o->cc : getenv("CC");
  return cc && *cc ? cc : "cc";
}

/* The compiler and the flags of every step: C11, IEEE arithmetic (no
 * contraction, no fast-math), the runtime's thread pool, each function in
 * a section of its own (the link keeps only the runtime code the program
 * calls), for the model's files -march (--cpu), then $MC_CFLAGS or the
 * options' extra flags. */
static void cc_command(Args *argv, const CgOptions *o, const char *opt,
                       bool model) {
  args_push_words(argv, cc_name(o));
  args_push(argv, "-std=c11");
  args_push(argv, o->opt_level == 0 ? "-O0" : opt);
  args_push(argv, "-ffp-contract=off");
  args_push(argv, "-fno-fast-math");
  /* the program never reads the floating-point exception flags: without
   * this gcc keeps every selection a branch (x > 0 ? x : a * x), and no
   * loop holding one vectorizes; values stay IEEE's */
  args_push(argv, "-fno-trapping-math");
  /* the model's loops vectorize for this CPU's vectors (AVX-512: 16 floats
   * an instruction, not SSE2's 4); -ffp-contract=off keeps FMA out of them.
   * Not the runtime's: it picks its SIMD code at run time, and gcc 12's
   * code for its portable loops under -march=skylake-avx512 is slower (a
   * row softmax took twice as long) */
  const char *cpu = o->cpu ? o->cpu : "native";
  if (model && strcmp(cpu, "generic") != 0) {
    char march[160];
    snprintf(march, sizeof march, "-march=%.150s", cpu);
    args_push(argv, march);
  }
  args_push(argv, "-pthread");
  args_push(argv, "-ffunction-sections");
  args_push(argv, "-fdata-sections");
  args_push_words(argv,
                  o->extra_cflags ? o->extra_cflags : getenv("MC_CFLAGS"));
}

/* Compiles the runtime's files of one kind (cold or not) at `opt` into
 * objects in dir, appended to *objects: from the cache when it holds them
 * for this exact command, compiler and runtime text, else compiled here and
 * stored. */
static bool compile_runtime(const char *dir, const Args *sources, bool cold,
                            const char *opt, const CgOptions *o, Args *objects,
                            Arena *arena, Diag *d) {
  Args argv = {0}, mine = {0}, cc = {0};
  cc_command(&argv, o, opt, false);
  args_push(&argv, "-c"); /* objects into dir, the compiler's directory */
  for (int i = 0; i < sources->n; i++) {
    const char *f = sources->v[i];
    if (is_runtime(f) && !is_library_only(f) && is_cold(f) == cold) {
      size_t n = strlen(f);
      args_push(&argv, f);
      args_push(&mine, cg_strf(arena, "%.*s.o", (int)n - 2, f));
    }
  }
  args_push_words(&cc, cc_name(o));
  CgCache cache;
  bool ok = cg_cache_fetch(&cache, argv.v, cc.n, dir, mine.v, mine.n);
  if (!ok) {
    ok = run_cc(&argv, dir, arena, d);
    if (ok)
      cg_cache_store(&cache, argv.v, dir, mine.v, mine.n);
  }
  cg_cache_free(&cache);
  for (int i = 0; i < mine.n; i++)
    args_push(objects, mine.v[i]);
  args_free(&cc);
  args_free(&mine);
  args_free(&argv);
  return ok;
}

/* Builds the program from the C files in dir: the runtime's files to
 * objects at -O2 (hand-vectorized or not hot: -O3 would only grow them;
 * the cold ones at -Os), then the model's at -O3 (gcc 12 vectorizes loops
 * of unknown length, the fused loops and their mc_vmath.h calls, only from
 * -O3 on; IEEE rules stay as at -O2) linked with them. The runtime's
 * objects are the same for every model (see compile_runtime). */
static bool compile(const char *dir, const char *out_path, const CgOptions *o,
                    Diag *d) {
  Arena arena;
  arena_init(&arena);
  Args sources = list_dir(dir, ".c"), given = list_dir(dir, ".o"),
       objects = {0}, argv = {0};
  bool ok =
      compile_runtime(dir, &sources, false, "-O2", o, &objects, &arena, d) &&
      compile_runtime(dir, &sources, true, "-Os", o, &objects, &arena, d);
  /* the link runs in dir: out_path from here */
  char cwd[4096];
  const char *here = out_path[0] == '/' ? NULL : getcwd(cwd, sizeof cwd);
  char *tmp_out = here ? cg_strf(&arena, "%s/%s.tmp", here, out_path)
                       : cg_strf(&arena, "%s.tmp", out_path);
  if (ok) {
    cc_command(&argv, o, "-O3", true);
    for (int i = 0; i < sources.n; i++)
      if (!is_runtime(sources.v[i]))
        args_push(&argv, sources.v[i]);
    for (int i = 0; i < given.n; i++) /* the LLVM backend's model */
      args_push(&argv, given.v[i]);
    for (int i = 0; i < objects.n; i++)
      args_push(&argv, objects.v[i]);
    args_push(&argv, "-Wl,--gc-sections");
    args_push(&argv, "-lm");
    args_push(&argv, "-o");
    args_push(&argv, tmp_out);
    ok = run_cc(&argv, dir, &arena, d);
    args_free(&argv);
    if (!ok)
      remove(tmp_out);
  }
  if (ok && rename(tmp_out, out_path) != 0) {
    diag_error(d, loc_none(), "cannot rename '%s' to '%s': %s", tmp_out,
               out_path, strerror(errno));
    remove(tmp_out);
    ok = false;
  }
  args_free(&sources);
  args_free(&given);
  args_free(&objects);
  arena_free(&arena);
  return ok;
}

bool cg_build_exe_with(const CgOptions *o, const char *out_path,
                       bool (*emit)(const char *dir, void *ctx, Diag *d),
                       void *ctx, Diag *d) {
  static const CgOptions defaults = {2, NULL, NULL, NULL, DT_F32, NULL, false};
  if (!o)
    o = &defaults;
  const char *tmpdir = getenv("TMPDIR");
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/modelc-XXXXXX",
           tmpdir && *tmpdir ? tmpdir : "/tmp");
  if (!mkdtemp(dir)) {
    diag_error(d, loc_none(), "cannot create a temporary directory in '%s': %s",
               tmpdir && *tmpdir ? tmpdir : "/tmp", strerror(errno));
    return false;
  }
  bool ok = emit(dir, ctx, d) && compile(dir, out_path, o, d);
  remove_dir(dir);
  return ok;
}

typedef struct EmitC {
  const Module *m;
  const CgOptions *o;
} EmitC;

static bool emit_c(const char *dir, void *ctx, Diag *d) {
  const EmitC *c = ctx;
  return cg_emit_c(c->m, dir, c->o, d);
}

bool cg_build_exe(const Module *m, const char *out_path, const CgOptions *o,
                  Diag *d) {
  EmitC c = {m, o};
  return cg_build_exe_with(o, out_path, emit_c, &c, d);
}
