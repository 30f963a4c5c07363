/* Golden IR tests, MLIR style: every tests/golden/<pass>/<name>.ir holds
 * cases split by a line `// -----`. A case is IR text plus directives:
 *   // RUN: passes=a,b      passes to run (the first case's RUN is the
 *                           default for the file)
 *   // CHECK: text          a later output line contains text
 *   // CHECK-NEXT: text     the line right after the previous match does
 *   // CHECK-NOT: text      no line between the neighbouring matches does
 *   // ERROR: text          reading or a pass fails, diagnostics contain text
 * The output checked is ir_print after the passes. Case text keeps its line
 * numbers from the file, so located errors can be checked exactly.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "passes.h"

#define MAX_LINES 4096

typedef struct Lines {
  char *text; /* owned, split in place */
  char *line[MAX_LINES];
  int n;
} Lines;

static void split_lines(Lines *l, char *text) {
  l->text = text;
  l->n = 0;
  char *p = text;
  while (*p && l->n < MAX_LINES) {
    l->line[l->n++] = p;
    char *nl = strchr(p, '\n');
    if (!nl)
      break;
    *nl = 0;
    p = nl + 1;
  }
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  size_t got = fread(buf, 1, (size_t)n, f);
  buf[got] = 0;
  fclose(f);
  return buf;
}

static const char *directive(const char *line, const char *name) {
  const char *p = strstr(line, "// ");
  if (!p)
    return NULL;
  p += 3;
  size_t n = strlen(name);
  if (strncmp(p, name, n) != 0 || p[n] != ':')
    return NULL;
  p += n + 1;
  while (*p == ' ')
    p++;
  return p;
}

typedef struct Case {
  const char *file;
  int first, last; /* file line indices [first, last) */
  const char *passes;
} Case;

/* Returns the number of failures (each reported with cr_expect). */
static int check_output(const Case *c, Lines *src, const char *output) {
  char *copy = strdup(output);
  Lines out;
  split_lines(&out, copy);
  int pos = 0, failures = 0, prev = -1;
  const char *pending_not[64];
  int npending = 0, not_from = 0;
  for (int i = c->first; i < c->last; i++) {
    const char *want;
    if ((want = directive(src->line[i], "CHECK-NOT"))) {
      if (npending < 64)
        pending_not[npending++] = want;
      continue;
    }
    bool next = false;
    if ((want = directive(src->line[i], "CHECK-NEXT")))
      next = true;
    else if (!(want = directive(src->line[i], "CHECK")))
      continue;
    int found = -1;
    if (next) {
      if (prev + 1 < out.n && strstr(out.line[prev + 1], want))
        found = prev + 1;
    } else {
      for (int k = pos; k < out.n && found < 0; k++)
        if (strstr(out.line[k], want))
          found = k;
    }
    cr_expect(found >= 0, "%s:%d: %s not found in:\n%s", c->file, i + 1,
              src->line[i], output);
    if (found < 0) {
      failures++;
      break;
    }
    for (int k = 0; k < npending; k++)
      for (int j = not_from; j < found; j++)
        if (strstr(out.line[j], pending_not[k])) {
          cr_expect(0, "%s: CHECK-NOT %s matched output line '%s'", c->file,
                    pending_not[k], out.line[j]);
          failures++;
        }
    npending = 0;
    prev = found;
    pos = found + 1;
    not_from = pos;
  }
  for (int k = 0; k < npending; k++)
    for (int j = not_from; j < out.n; j++)
      if (strstr(out.line[j], pending_not[k])) {
        cr_expect(0, "%s: CHECK-NOT %s matched output line '%s'", c->file,
                  pending_not[k], out.line[j]);
        failures++;
      }
  free(copy);
  return failures;
}

static int run_case(const Case *c, Lines *src) {
  /* Keep line numbers: earlier lines become empty. */
  size_t size = 1;
  for (int i = 0; i < c->last; i++)
    size += (i >= c->first ? strlen(src->line[i]) : 0) + 1;
  char *text = malloc(size), *p = text;
  for (int i = 0; i < c->last; i++) {
    if (i >= c->first) {
      strcpy(p, src->line[i]);
      p += strlen(src->line[i]);
    }
    *p++ = '\n';
  }
  *p = 0;
  const char *want_error = NULL;
  for (int i = c->first; i < c->last; i++) {
    const char *e = directive(src->line[i], "ERROR");
    if (e)
      want_error = e;
  }
  char *dbuf = NULL;
  size_t dlen = 0;
  FILE *dout = open_memstream(&dbuf, &dlen);
  Diag d;
  diag_init(&d, dout);
  Module *m = ir_read(text, c->file, &d);
  bool ok = m && pass_run_list(m, c->passes, NULL, NULL, &d);
  fflush(dout);
  int failures = 0;
  if (want_error) {
    cr_expect(!ok && strstr(dbuf, want_error),
              "%s:%d: expected error '%s', got:\n%s", c->file, c->first + 1,
              want_error, dbuf);
    failures += ok || !strstr(dbuf, want_error);
  } else if (!ok) {
    cr_expect(0, "%s:%d: case failed:\n%s", c->file, c->first + 1, dbuf);
    failures++;
  } else {
    char *out = ir_print_to_string(m);
    failures += check_output(c, src, out);
    free(out);
  }
  ir_module_free(m);
  diag_free(&d);
  fclose(dout);
  free(dbuf);
  free(text);
  return failures;
}

static int run_file(const char *path, const char *display, int *ncases) {
  char *text = read_file(path);
  cr_assert_not_null(text, "cannot read %s", path);
  Lines src;
  split_lines(&src, text);
  int failures = 0;
  const char *default_passes = "";
  Case c = {display, 0, 0, ""};
  for (int i = 0; i <= src.n; i++) {
    bool end = i == src.n || strncmp(src.line[i], "// -----", 8) == 0;
    if (!end)
      continue;
    c.last = i;
    c.passes = NULL;
    for (int k = c.first; k < c.last; k++) {
      const char *r = directive(src.line[k], "RUN");
      if (r && strncmp(r, "passes=", 7) == 0)
        c.passes = r + 7;
    }
    if (c.first == 0 && c.passes)
      default_passes = c.passes;
    if (!c.passes)
      c.passes = default_passes;
    failures += run_case(&c, &src);
    (*ncases)++;
    c.first = i + 1;
  }
  free(text);
  return failures;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

Test(golden, all_files) {
  const char *root = MC_SOURCE_DIR "/tests/golden";
  DIR *dir = opendir(root);
  cr_assert_not_null(dir, "no %s", root);
  char *subdirs[64];
  int nsub = 0;
  struct dirent *e;
  while ((e = readdir(dir)) && nsub < 64)
    if (e->d_name[0] != '.')
      subdirs[nsub++] = strdup(e->d_name);
  closedir(dir);
  qsort(subdirs, (size_t)nsub, sizeof(char *), cmp_str);
  int ncases = 0, nfiles = 0;
  for (int s = 0; s < nsub; s++) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, subdirs[s]);
    DIR *sd = opendir(path);
    if (!sd)
      continue;
    char *files[256];
    int nf = 0;
    while ((e = readdir(sd)) && nf < 256) {
      size_t n = strlen(e->d_name);
      if (n > 3 && strcmp(e->d_name + n - 3, ".ir") == 0)
        files[nf++] = strdup(e->d_name);
    }
    closedir(sd);
    qsort(files, (size_t)nf, sizeof(char *), cmp_str);
    for (int f = 0; f < nf; f++) {
      char full[2048], display[512];
      snprintf(full, sizeof full, "%s/%s", path, files[f]);
      snprintf(display, sizeof display, "%s/%s", subdirs[s], files[f]);
      run_file(full, display, &ncases);
      nfiles++;
      free(files[f]);
    }
    free(subdirs[s]);
  }
  cr_log_info("%d golden cases in %d files", ncases, nfiles);
  cr_assert_gt(ncases, 0);
}
