/* The lexer (lexer.re, re2c) and the parser driver (parser.y, lemon).
 *
 * The lexer turns a NUL-terminated buffer into tokens whose kinds are the
 * TK_* codes lemon writes to parser.h (0 is the end of input). It applies the
 * newline rules of LANGUAGE.md, so the grammar only sees NEWLINE tokens that
 * end statements:
 *  - no NEWLINE inside () or [] (a `{` or `}` resets that nesting, so an
 *    unclosed `(` does not swallow the rest of the file);
 *  - no NEWLINE after a binary operator, `not`, a comma, `:`, `=`, `.` or
 *    an opening `{`;
 *  - blank lines and comment lines give no NEWLINE; nor does the start of
 *    the file;
 *  - no NEWLINE before a line starting with `else` or `{`, so
 *    `}\nelse {` and a brace on its own line work;
 *  - at the end of input a NEWLINE is emitted unless the line continues
 *    by the rules above (then the statement is unfinished and the parser
 *    reports the end of the file), so every statement is terminated.
 * Lexing errors (bad character, unterminated string, bad number) are
 * reported to the Diag and lexing continues.
 */
#ifndef MC_LEXER_H
#define MC_LEXER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ast.h"

typedef struct Token {
  int kind;          /* TK_* from parser.h; 0 at the end of input */
  const char *start; /* first byte in the source */
  int len;           /* bytes in the source */
  Loc loc;           /* file, line, col (1-based, bytes) and len */
  /* NAME: the name; STRING: contents with escapes resolved; INT, FLOAT: the
   * literal as written. Arena-allocated; NULL for other tokens. */
  const char *text;
  int64_t ival; /* INT; TRUE is 1 */
  double fval;  /* FLOAT */
} Token;

typedef struct Lexer {
  const char *src;        /* the buffer, src[len] == 0 */
  const char *end;        /* src + len */
  const char *cur;        /* next byte to read */
  const char *line_start; /* first byte of the current line */
  int line;
  int depth;      /* open ( and [ */
  Loc open_loc;   /* the outermost unclosed ( or [ while depth > 0 */
  char open_char; /* '(' or '[' */
  int prev;       /* kind of the last token returned, -1 at start */
  Loc prev_end;   /* position just past the last token returned */
  const char *path;
  Arena *arena;
  Diag *diag;
} Lexer;

/* src must be NUL-terminated at src[len]; path is used in locations and
 * must outlive the tokens; strings are allocated in arena. */
void lex_init(Lexer *lx, const char *src, size_t len, const char *path,
              Arena *arena, Diag *diag);
Token lex_next(Lexer *lx);
/* Name of a token kind for messages: "name", "integer", "newline",
 * "end of file", "'('", "'for'", ... */
const char *lex_token_name(int kind);

/* Parses m->source (path m->path) into m->root (an AST_MODULE, possibly
 * partial after errors). Returns false if errors were reported. */
bool parse_module(AstModule *m, Diag *diag);

#endif
