/* What the C backend's tests (test_codegen.c, test_codegen_data.c) share:
 * Modules built by hand (symbols T and B, one function "main"), a Diag
 * that collects messages, a temporary directory named after
 * codegen_fixture_name (which each file defines), and run_driver: the
 * model's .c checked warning-free under gcc and clang, built with a tiny
 * driver main against each compiler's runtime library and run. Each file
 * declares TestSuite(codegen, .init = setup, .fini = teardown). */
#ifndef MC_TEST_CODEGEN_FIXTURE_H
#define MC_TEST_CODEGEN_FIXTURE_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cg.h"
#include "ir.h"
#include "mc_runtime.h"
#include "passes.h"
#include "type_fixture.h"

static Module *m;
static Function *fn;
static Diag d;
static char *dbuf;
static size_t dlen;
static FILE *dout;
static char dir[256];

static inline void setup(void) {
  m = ir_module_new("tm");
  m->source_file = "tm.model";
  ir_symbol(m, "T");
  ir_symbol(m, "B");
  fn = ir_function_new(m, "main", loc_none());
  dout = open_memstream(&dbuf, &dlen);
  diag_init(&d, dout);
  snprintf(dir, sizeof dir, "/tmp/%s-XXXXXX", codegen_fixture_name);
  cr_assert(mkdtemp(dir));
}

static inline void teardown(void) {
  diag_free(&d);
  fclose(dout);
  free(dbuf);
  ir_module_free(m);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "cannot remove %s\n", dir);
}

static inline const char *diag_text(void) {
  fflush(dout);
  return dbuf ? dbuf : "";
}

/* ---- building modules ------------------------------------------------------
 */

static inline Loc L(int line, int col) {
  Loc l = {"tm.model", line, col, 0, NULL};
  return l;
}

static inline Value *input(const char *name, Type t) {
  return ir_add_input(m, fn, name, t, L(1, 1));
}

static inline Value *op1(OpKind k, Value *a, const Attrs *at, const Type *hint,
                         int line) {
  Value *v = ir_build(m, fn->body, k, &a, 1, at, hint, L(line, 5), &d);
  cr_assert(v, "%s", diag_text());
  return v;
}

static inline Value *op2(OpKind k, Value *a, Value *b, const Attrs *at,
                         int line) {
  Value *ops[2] = {a, b};
  Value *v = ir_build(m, fn->body, k, ops, 2, at, NULL, L(line, 5), &d);
  cr_assert(v, "%s", diag_text());
  return v;
}

static inline Value *cst(DType t, double v) {
  return ir_const_scalar(m, fn->body, t, v, L(2, 9));
}

static inline void output(const char *name, Value *v) {
  ir_add_output(m, fn, name, v, L(9, 1));
}

/* ---- compiling and running --------------------------------------------------
 */

static inline char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  size_t got = fread(s, 1, (size_t)n, f);
  s[got] = 0;
  fclose(f);
  return s;
}

static inline bool have(const char *cc) {
  char cmd[256];
  snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", cc);
  return system(cmd) == 0;
}

/* Emits m into dir and returns the model's C text (malloc'd). */
static inline char *emit(void) {
  cr_assert(cg_emit_c(m, dir, NULL, &d), "%s", diag_text());
  char path[512];
  snprintf(path, sizeof path, "%s/tm.c", dir);
  char *text = slurp(path);
  cr_assert(text);
  return text;
}

static const char *driver_prelude =
    "#include \"tm.h\"\n#include \"mc_vmath.h\"\n#include <math.h>\n#include "
    "<stdio.h>\n"
    "#include <stdlib.h>\n#include <string.h>\n"
    "#define CHECK(c) do { if (!(c)) { printf(\"FAIL line %d: %s\\n\", "
    "__LINE__, #c); return 1; } } while (0)\n"
    "static unsigned fbits(float f) { unsigned u; memcpy(&u, &f, 4); return "
    "u; }\n";

/* Emits m, checks the model's .c is warning-free under every compiler
 * found, then builds it with `body` as main() and runs it; returns its exit
 * status, with its stdout in *out (malloc'd). */
static inline int run_driver(const char *body, char **out) {
  free(emit());
  char path[512], cmd[4096];
  snprintf(path, sizeof path, "%s/driver.c", dir);
  FILE *f = fopen(path, "w");
  cr_assert(f);
  fprintf(f, "%s\nint main(void) {\n%s\n}\n", driver_prelude, body);
  fclose(f);
  /* each compiler's runtime library, built once by tests/CMakeLists.txt */
  const char *ccs[] = {"gcc", "clang"},
             *rts[] = {MC_RUNTIME_GCC, MC_RUNTIME_CLANG};
  int status = -1, ran = 0;
  for (int i = 0; i < 2; i++) {
    if (!*rts[i] || !have(ccs[i]))
      continue;
    snprintf(cmd, sizeof cmd,
             "%s -std=c11 -Wall -Wextra -Wpedantic -Wshadow -Werror "
             "-fsyntax-only %s/tm.c > %s/warn.txt 2>&1",
             ccs[i], dir, dir);
    if (system(cmd) != 0) {
      snprintf(path, sizeof path, "%s/warn.txt", dir);
      cr_assert_fail("%s warns on the generated code:\n%s", ccs[i],
                     slurp(path));
    }
    snprintf(cmd, sizeof cmd,
             "%s -std=c11 -O1 -ffp-contract=off -fno-fast-math -I%s "
             "-I%s/runtime %s/driver.c %s/tm.c %s -lm -pthread -o %s/prog "
             "> %s/cc.txt 2>&1",
             ccs[i], dir, MC_SOURCE_DIR, dir, dir, rts[i], dir, dir);
    if (system(cmd) != 0) {
      snprintf(path, sizeof path, "%s/cc.txt", dir);
      cr_assert_fail("%s cannot build the driver:\n%s", ccs[i], slurp(path));
    }
    snprintf(cmd, sizeof cmd, "%s/prog > %s/out.txt 2>&1", dir, dir);
    int st = system(cmd);
    st = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    snprintf(path, sizeof path, "%s/out.txt", dir);
    char *text = slurp(path);
    if (ran && (st != status || strcmp(text, *out)))
      cr_assert_fail("gcc and clang builds differ: %s vs %s", *out, text);
    if (ran)
      free(*out);
    *out = text;
    status = st;
    ran++;
  }
  cr_assert(ran > 0, "no C compiler found");
  return status;
}

static inline void expect_ok(const char *body) {
  char *out = NULL;
  int st = run_driver(body, &out);
  cr_expect_eq(st, 0, "driver failed (%d): %s", st, out);
  free(out);
}

#endif
