/* Diagnostics: see diag.h.
 *
 * A message is one line `file:line:col: severity: text`; when the file's text
 * was registered, the source line follows and a caret line marks the span
 * (`^` under its first byte, `~` under the rest, clipped to the line). Tabs in
 * the source line are kept in the caret line so the caret stays aligned.
 * Once more than max_errors errors have been reported, one final
 * "too many errors" line is printed and every later message is dropped (the
 * errors are still counted).
 */
#include "diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum { DIAG_DEFAULT_MAX_ERRORS = 20 };

void diag_init(Diag *d, FILE *out) {
  d->out = out ? out : stderr;
  d->nerrors = 0;
  d->max_errors = 0;
  d->sources = NULL;
}

void diag_free(Diag *d) {
  DiagSource *s = d->sources;
  while (s) {
    DiagSource *next = s->next;
    free(s);
    s = next;
  }
  d->sources = NULL;
}

void diag_add_source(Diag *d, const char *path, const char *text) {
  /* The path is copied next to the entry: a stale entry (its module freed)
   * is then only a problem if a message names its file. */
  size_t n = strlen(path) + 1;
  DiagSource *s = malloc(sizeof *s + n);
  if (!s) {
    fprintf(stderr, "modelc: out of memory\n");
    abort();
  }
  s->path = memcpy((char *)(s + 1), path, n);
  s->text = text;
  s->next = d->sources;
  d->sources = s;
}

static int diag_cap(const Diag *d) {
  return d->max_errors > 0 ? d->max_errors : DIAG_DEFAULT_MAX_ERRORS;
}

static const char *diag_find_source(const Diag *d, const char *path) {
  for (const DiagSource *s = d->sources; s; s = s->next)
    if (s->path && strcmp(s->path, path) == 0)
      return s->text;
  return NULL;
}

/* Start of line `line` (1-based) in text, or NULL past the end. */
static const char *diag_find_line(const char *text, int line) {
  const char *p = text;
  for (int i = 1; i < line; i++) {
    p = strchr(p, '\n');
    if (!p)
      return NULL;
    p++;
  }
  return p;
}

static void diag_print_source(Diag *d, Loc loc) {
  if (loc.line <= 0)
    return;
  const char *text = diag_find_source(d, loc.file);
  if (!text)
    return;
  const char *line = diag_find_line(text, loc.line);
  if (!line)
    return;
  int n = 0;
  while (line[n] && line[n] != '\n')
    n++;
  if (n > 0 && line[n - 1] == '\r')
    n--;
  fprintf(d->out, "%.*s\n", n, line);

  int col = loc.col > 0 ? loc.col - 1 : 0;
  int len = loc.len > 0 ? loc.len : 1;
  if (col > n)
    col = n; /* a position just past the end of the line (end of file) */
  if (col + len > n)
    len = col < n ? n - col : 1;
  for (int i = 0; i < col; i++)
    fputc(line[i] == '\t' ? '\t' : ' ', d->out);
  fputc('^', d->out);
  for (int i = 1; i < len; i++)
    fputc('~', d->out);
  fputc('\n', d->out);
}

static void diag_vreport(Diag *d, Loc loc, const char *severity,
                         const char *fmt, va_list ap) {
  if (!d->out)
    d->out = stderr;
  if (!loc.file)
    fprintf(d->out, "modelc: %s: ", severity);
  else if (loc.line <= 0)
    fprintf(d->out, "%s: %s: ", loc.file, severity);
  else
    fprintf(d->out, "%s:%d:%d: %s: ", loc.file, loc.line,
            loc.col > 0 ? loc.col : 1, severity);
  vfprintf(d->out, fmt, ap);
  fputc('\n', d->out);
  if (loc.file)
    diag_print_source(d, loc);
}

void diag_error(Diag *d, Loc loc, const char *fmt, ...) {
  int cap = diag_cap(d);
  d->nerrors++;
  if (d->nerrors > cap) {
    if (d->nerrors == cap + 1)
      fprintf(d->out ? d->out : stderr,
              "modelc: error: too many errors (%d), stopping\n", cap);
    return;
  }
  va_list ap;
  va_start(ap, fmt);
  diag_vreport(d, loc, "error", fmt, ap);
  va_end(ap);
}

/* Notes belong to the message before them: dropped once errors are capped. */
void diag_note(Diag *d, Loc loc, const char *fmt, ...) {
  if (d->nerrors > diag_cap(d))
    return;
  va_list ap;
  va_start(ap, fmt);
  diag_vreport(d, loc, "note", fmt, ap);
  va_end(ap);
}

void diag_warning(Diag *d, Loc loc, const char *fmt, ...) {
  if (d->nerrors > diag_cap(d))
    return;
  va_list ap;
  va_start(ap, fmt);
  diag_vreport(d, loc, "warning", fmt, ap);
  va_end(ap);
}
