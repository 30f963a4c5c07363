/* Tokens of the IR text form, for ir/read.c. Newlines are whitespace;
 * comments run from // to the end of the line. The lexer reports only the
 * first error (later ones would be consequences) and never reads past the
 * terminating NUL. */
#ifndef MC_READ_LEX_H
#define MC_READ_LEX_H

#include <stdbool.h>
#include <stddef.h>

#include "diag.h"

typedef enum IrTokKind {
  TK_NONE, /* matches no token: irlex_expect(lx, TK_NONE, what) reports */
  TK_EOF,
  TK_ERROR,
  TK_IDENT,  /* [A-Za-z_][A-Za-z0-9_.]* */
  TK_NUMBER, /* 12, 1.5, 1e-05, 0x1.8p-3 (no sign) */
  TK_STRING, /* "..." with \" \\ \n \t \xHH; text is decoded */
  TK_VALUE,  /* %name, %12 (numeric), %"any text" */
  TK_AT,
  TK_LPAREN,
  TK_RPAREN,
  TK_LBRACKET,
  TK_RBRACKET,
  TK_LBRACE,
  TK_RBRACE,
  TK_COMMA,
  TK_COLON,
  TK_EQUAL,
  TK_STAR,
  TK_PLUS,
  TK_MINUS,
  TK_COUNT
} IrTokKind;

typedef struct IrLexer {
  const char *src;
  const char *path;
  size_t pos;
  int line, col;
  IrTokKind kind;
  int tok_line, tok_col;
  char *text; /* current token's text, NUL-terminated (malloc'd) */
  size_t text_len, text_cap;
  bool numeric; /* TK_VALUE: the name is all digits */
  Diag *d;
  bool failed;
} IrLexer;

void irlex_init(IrLexer *lx, const char *src, const char *path, Diag *d);
void irlex_free(IrLexer *lx);
void irlex_next(IrLexer *lx);
/* Consumes the token if it has this kind. */
bool irlex_accept(IrLexer *lx, IrTokKind kind);
/* Consumes the token if it has this kind, else reports
 * "expected <what>, found <token>" and returns false. */
bool irlex_expect(IrLexer *lx, IrTokKind kind, const char *what);
/* True if the current token is the identifier `word`. */
bool irlex_is(const IrLexer *lx, const char *word);
/* Reports an error at the current token (only the first one is kept). */
void irlex_error(IrLexer *lx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
