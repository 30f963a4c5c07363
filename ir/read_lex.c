/* The IR text lexer (see read_lex.h). Invariant: lx->text always holds a
 * NUL-terminated copy of the current token and lx->pos never passes the
 * source's terminating NUL, whatever bytes the input contains. */
#include "read_lex.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_alpha(int c) {
  return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static bool is_digit(int c) {
  return c >= '0' && c <= '9';
}
static bool is_hex(int c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
static bool is_ident_char(int c) {
  return is_alpha(c) || is_digit(c) || c == '.';
}

static int peek(const IrLexer *lx, size_t k) {
  /* Stop at the NUL: never look beyond it. */
  for (size_t i = 0; i < k; i++)
    if (!lx->src[lx->pos + i])
      return 0;
  return (unsigned char)lx->src[lx->pos + k];
}

static void advance(IrLexer *lx) {
  if (!lx->src[lx->pos])
    return;
  if (lx->src[lx->pos] == '\n') {
    lx->line++;
    lx->col = 1;
  } else {
    lx->col++;
  }
  lx->pos++;
}

static void text_push(IrLexer *lx, char c) {
  if (lx->text_len + 2 > lx->text_cap) {
    lx->text_cap = lx->text_cap ? 2 * lx->text_cap : 64;
    lx->text = realloc(lx->text, lx->text_cap);
    if (!lx->text)
      abort();
  }
  lx->text[lx->text_len++] = c;
  lx->text[lx->text_len] = 0;
}

void irlex_error(IrLexer *lx, const char *fmt, ...) {
  if (lx->failed)
    return;
  lx->failed = true;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  Loc loc = {lx->path, lx->tok_line, lx->tok_col, 0, NULL};
  if (lx->d)
    diag_error(lx->d, loc, "%s", msg);
  lx->kind = TK_ERROR;
}

void irlex_init(IrLexer *lx, const char *src, const char *path, Diag *d) {
  memset(lx, 0, sizeof *lx);
  lx->src = src ? src : "";
  lx->path = path;
  lx->line = lx->col = 1;
  lx->d = d;
  text_push(lx, 0);
  lx->text_len = 0;
  irlex_next(lx);
}

void irlex_free(IrLexer *lx) {
  free(lx->text);
  lx->text = NULL;
}

/* String body after the opening quote; decodes escapes into text. */
static void lex_string(IrLexer *lx) {
  for (;;) {
    int c = peek(lx, 0);
    if (c == 0 || c == '\n') {
      irlex_error(lx, "unterminated string");
      return;
    }
    advance(lx);
    if (c == '"')
      return;
    if (c == '\\') {
      int e = peek(lx, 0);
      advance(lx);
      if (e == '"' || e == '\\') {
        c = e;
      } else if (e == 'n') {
        c = '\n';
      } else if (e == 't') {
        c = '\t';
      } else if (e == 'x' && is_hex(peek(lx, 0)) && is_hex(peek(lx, 1))) {
        char hex[3] = {(char)peek(lx, 0), (char)peek(lx, 1), 0};
        advance(lx);
        advance(lx);
        c = (int)strtol(hex, NULL, 16);
      } else {
        irlex_error(lx, "bad escape in string");
        return;
      }
      if (c == 0) {
        irlex_error(lx, "NUL in string");
        return;
      }
    }
    text_push(lx, (char)c);
  }
}

static void lex_number(IrLexer *lx) {
  bool hex = peek(lx, 0) == '0' && (peek(lx, 1) == 'x' || peek(lx, 1) == 'X');
  if (hex) {
    text_push(lx, (char)peek(lx, 0));
    advance(lx);
    text_push(lx, (char)peek(lx, 0));
    advance(lx);
  }
  bool (*digit)(int) = hex ? is_hex : is_digit;
  while (digit(peek(lx, 0)) || peek(lx, 0) == '.') {
    text_push(lx, (char)peek(lx, 0));
    advance(lx);
  }
  int e = peek(lx, 0);
  if (hex ? (e == 'p' || e == 'P') : (e == 'e' || e == 'E')) {
    text_push(lx, (char)e);
    advance(lx);
    if (peek(lx, 0) == '+' || peek(lx, 0) == '-') {
      text_push(lx, (char)peek(lx, 0));
      advance(lx);
    }
    while (is_digit(peek(lx, 0))) {
      text_push(lx, (char)peek(lx, 0));
      advance(lx);
    }
  }
  if (is_ident_char(peek(lx, 0)))
    irlex_error(lx, "malformed number");
}

void irlex_next(IrLexer *lx) {
  if (lx->failed) {
    lx->kind = TK_ERROR;
    return;
  }
  lx->text_len = 0;
  lx->text[0] = 0;
  lx->numeric = false;
  for (;;) { /* whitespace and comments */
    int c = peek(lx, 0);
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      advance(lx);
    } else if (c == '/' && peek(lx, 1) == '/') {
      while (peek(lx, 0) && peek(lx, 0) != '\n')
        advance(lx);
    } else {
      break;
    }
  }
  lx->tok_line = lx->line;
  lx->tok_col = lx->col;
  int c = peek(lx, 0);
  if (c == 0) {
    lx->kind = TK_EOF;
    return;
  }
  if (is_alpha(c)) {
    while (is_ident_char(peek(lx, 0))) {
      text_push(lx, (char)peek(lx, 0));
      advance(lx);
    }
    lx->kind = TK_IDENT;
    return;
  }
  if (is_digit(c)) {
    lx->kind = TK_NUMBER;
    lex_number(lx);
    return;
  }
  advance(lx);
  static const char punct[] = "@()[]{},:=*+-";
  static const IrTokKind kinds[] = {
      TK_AT,     TK_LPAREN, TK_RPAREN, TK_LBRACKET, TK_RBRACKET,
      TK_LBRACE, TK_RBRACE, TK_COMMA,  TK_COLON,    TK_EQUAL,
      TK_STAR,   TK_PLUS,   TK_MINUS};
  const char *p = strchr(punct, c);
  if (p) {
    lx->kind = kinds[p - punct];
    text_push(lx, (char)c);
    return;
  }
  if (c == '"') {
    lx->kind = TK_STRING;
    lex_string(lx);
    return;
  }
  if (c == '%') {
    lx->kind = TK_VALUE;
    if (peek(lx, 0) == '"') {
      advance(lx);
      lex_string(lx);
      return;
    }
    bool digits = true;
    while (is_ident_char(peek(lx, 0))) {
      digits &= is_digit(peek(lx, 0));
      text_push(lx, (char)peek(lx, 0));
      advance(lx);
    }
    lx->numeric = digits;
    if (lx->text_len == 0 || (is_digit(lx->text[0]) && !digits))
      irlex_error(lx, "bad value name after '%%'");
    return;
  }
  if (c >= 0x20 && c < 0x7f)
    irlex_error(lx, "unexpected character '%c'", c);
  else
    irlex_error(lx, "unexpected byte 0x%02x", c);
}

bool irlex_accept(IrLexer *lx, IrTokKind kind) {
  if (lx->kind != kind)
    return false;
  irlex_next(lx);
  return true;
}

bool irlex_is(const IrLexer *lx, const char *word) {
  return lx->kind == TK_IDENT && strcmp(lx->text, word) == 0;
}

bool irlex_expect(IrLexer *lx, IrTokKind kind, const char *what) {
  if (kind != TK_NONE && irlex_accept(lx, kind))
    return true;
  if (lx->kind == TK_EOF)
    irlex_error(lx, "expected %s, found end of input", what);
  else if (lx->kind == TK_STRING)
    irlex_error(lx, "expected %s, found string \"%.40s\"", what, lx->text);
  else if (lx->kind == TK_VALUE)
    irlex_error(lx, "expected %s, found %%%.40s", what, lx->text);
  else
    irlex_error(lx, "expected %s, found '%.40s'", what, lx->text);
  return false;
}
