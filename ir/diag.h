/* Diagnostics: located errors and notes.
 *
 * Every message has the form
 *     file:line:col: error: message
 *         source line
 *         ^~~~
 * The source line is printed when the file's text was registered with
 * diag_add_source (the frontend registers every model file it reads).
 * Errors accumulate; a phase checks diag->nerrors before the next phase
 * starts. Only main() exits.
 */
#ifndef MC_DIAG_H
#define MC_DIAG_H

#include <stdbool.h>
#include <stdio.h>

/* A source span. file may be NULL (no location known); line and col are
 * 1-based; len is the span's length in bytes on that line (0 means 1). */
typedef struct Loc {
  const char *file;
  int line, col, len;
  /* The user function the code was written in (for names of generated
   * kernels), or NULL at top level. */
  const char *scope;
} Loc;

typedef struct DiagSource {
  const char *path;
  const char *text;
  struct DiagSource *next;
} DiagSource;

typedef struct Diag {
  FILE *out;      /* where messages go; stderr by default */
  int nerrors;    /* errors reported so far */
  int max_errors; /* stop printing after this many (0 = 20) */
  DiagSource *sources;
} Diag;

void diag_init(Diag *d, FILE *out);
void diag_free(Diag *d);
/* Registers the text of a file so messages can quote its lines. The text is
 * not copied and must outlive the Diag. */
void diag_add_source(Diag *d, const char *path, const char *text);

void diag_error(Diag *d, Loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void diag_note(Diag *d, Loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void diag_warning(Diag *d, Loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline Loc loc_none(void) {
  Loc l = {0, 0, 0, 0, 0};
  return l;
}

#endif
