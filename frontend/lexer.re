/* The lexer: re2c rules inside plain C functions over a NUL-terminated
 * buffer (the ninja style). See lexer.h for the newline rules.
 *
 * Invariants: lx->cur never passes lx->end; every token's loc is on one line
 * (NEWLINE tokens sit on the '\n' they stand for; the NEWLINE and end-of-input
 * tokens made at the end of the file sit just past the last token).
 */
#include "lexer.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "parser.h"

void lex_init(Lexer *lx, const char *src, size_t len, const char *path,
              Arena *arena, Diag *diag) {
  lx->src = src;
  lx->end = src + len;
  lx->cur = src;
  lx->line_start = src;
  lx->line = 1;
  lx->depth = 0;
  lx->open_loc = (Loc){path, 1, 1, 1, NULL};
  lx->open_char = '(';
  lx->prev = -1;
  lx->prev_end = (Loc){path, 1, 1, 1, NULL};
  lx->path = path;
  lx->arena = arena;
  lx->diag = diag;
}

const char *lex_token_name(int kind) {
  switch (kind) {
  case 0: return "end of file";
  case TK_NEWLINE: return "newline";
  case TK_NAME: return "name";
  case TK_INT: return "integer";
  case TK_FLOAT: return "number";
  case TK_STRING: return "string";
  case TK_SEMI: return "';'";
  case TK_CONST: return "'const'";
  case TK_INPUT: return "'input'";
  case TK_OUTPUT: return "'output'";
  case TK_PARAM: return "'param'";
  case TK_FROM: return "'from'";
  case TK_FN: return "'fn'";
  case TK_ENTRY: return "'entry'";
  case TK_INCLUDE: return "'include'";
  case TK_RETURN: return "'return'";
  case TK_FOR: return "'for'";
  case TK_IN: return "'in'";
  case TK_RANGE: return "'range'";
  case TK_IF: return "'if'";
  case TK_ELSE: return "'else'";
  case TK_AND: return "'and'";
  case TK_OR: return "'or'";
  case TK_NOT: return "'not'";
  case TK_TRUE: return "'true'";
  case TK_FALSE: return "'false'";
  case TK_NONE: return "'None'";
  case TK_LPAREN: return "'('";
  case TK_RPAREN: return "')'";
  case TK_LBRACKET: return "'['";
  case TK_RBRACKET: return "']'";
  case TK_LBRACE: return "'{'";
  case TK_RBRACE: return "'}'";
  case TK_COMMA: return "','";
  case TK_COLON: return "':'";
  case TK_ASSIGN: return "'='";
  case TK_DOT: return "'.'";
  case TK_ELLIPSIS: return "'...'";
  case TK_PLUS: return "'+'";
  case TK_MINUS: return "'-'";
  case TK_STAR: return "'*'";
  case TK_SLASH: return "'/'";
  case TK_PERCENT: return "'%'";
  case TK_AT: return "'@'";
  case TK_CARET: return "'^'";
  case TK_POW: return "'**'";
  case TK_EQ: return "'=='";
  case TK_NE: return "'!='";
  case TK_LT: return "'<'";
  case TK_LE: return "'<='";
  case TK_GT: return "'>'";
  case TK_GE: return "'>='";
  default: return "token";
  }
}

static Loc lex_loc(const Lexer *lx, const char *start, const char *end) {
  Loc l = {lx->path, lx->line, (int)(start - lx->line_start) + 1,
           (int)(end - start), NULL};
  if (l.len <= 0)
    l.len = 1;
  return l;
}

/* A line break after these tokens does not end the statement. */
static bool lex_continues_line(int prev) {
  switch (prev) {
  case -1:
  case TK_NEWLINE:
  case TK_SEMI:
  case TK_LBRACE:
  case TK_COMMA:
  case TK_COLON:
  case TK_ASSIGN:
  case TK_DOT:
  case TK_PLUS:
  case TK_MINUS:
  case TK_STAR:
  case TK_SLASH:
  case TK_PERCENT:
  case TK_AT:
  case TK_CARET:
  case TK_POW:
  case TK_EQ:
  case TK_NE:
  case TK_LT:
  case TK_LE:
  case TK_GT:
  case TK_GE:
  case TK_AND:
  case TK_OR:
  case TK_NOT:
    return true;
  default:
    return false;
  }
}

/* True if the next significant text after p (skipping blanks, line breaks
 * and comments) is `{` or the keyword `else`: such a line continues the
 * statement before it. */
static bool lex_next_line_continues(const char *p) {
  for (;;) {
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' ||
           *p == '\f' || *p == '\v')
      p++;
    if (*p != '#')
      break;
    while (*p && *p != '\n')
      p++;
  }
  if (*p == '{')
    return true;
  return strncmp(p, "else", 4) == 0 && !isalnum((unsigned char)p[4]) &&
         p[4] != '_';
}

/* Resolves the escapes of a string literal body [s, e). */
static char *lex_string_value(Lexer *lx, const char *s, const char *e) {
  char *out = arena_alloc(lx->arena, (size_t)(e - s) + 1);
  char *o = out;
  for (const char *p = s; p < e; p++) {
    if (*p != '\\' || p + 1 >= e) {
      *o++ = *p;
      continue;
    }
    p++;
    if (*p != '"' && *p != '\\')
      diag_error(lx->diag, lex_loc(lx, p - 1, p + 1),
                 "unknown escape sequence '\\%c' (only \\\" and \\\\ are "
                 "allowed)",
                 *p);
    *o++ = *p;
  }
  *o = 0;
  return out;
}

static Token lex_make(Lexer *lx, int kind, const char *s, const char *e) {
  Token t;
  memset(&t, 0, sizeof t);
  t.kind = kind;
  t.start = s;
  t.len = (int)(e - s);
  t.loc = lex_loc(lx, s, e);
  lx->prev = kind;
  lx->prev_end = lex_loc(lx, e, e + 1);
  switch (kind) {
  case TK_LPAREN:
  case TK_LBRACKET:
    if (lx->depth == 0) {
      lx->open_loc = t.loc;
      lx->open_char = *s;
    }
    lx->depth++;
    break;
  case TK_RPAREN:
  case TK_RBRACKET:
    if (lx->depth > 0)
      lx->depth--;
    break;
  case TK_LBRACE:
  case TK_RBRACE:
    lx->depth = 0;
    break;
  case TK_TRUE:
    t.ival = 1;
    break;
  default:
    break;
  }
  return t;
}

/* A token that is not in the source: a NEWLINE or the end of input at the
 * end of the file. */
static Token lex_make_at_end(Lexer *lx, int kind) {
  Token t;
  memset(&t, 0, sizeof t);
  t.kind = kind;
  t.start = lx->end;
  t.loc = lx->prev_end;
  lx->prev = kind;
  return t;
}

static Token lex_number(Lexer *lx, int kind, const char *s, const char *e) {
  Token t = lex_make(lx, kind, s, e);
  t.text = arena_strndup(lx->arena, s, (size_t)(e - s));
  errno = 0;
  if (kind == TK_INT) {
    long long v = strtoll(t.text, NULL, 10);
    if (errno == ERANGE)
      diag_error(lx->diag, t.loc, "integer literal '%s' is too large",
                 t.text);
    t.ival = v;
  } else {
    t.fval = strtod(t.text, NULL);
    if (errno == ERANGE && (t.fval > 1.0 || t.fval < -1.0))
      diag_error(lx->diag, t.loc, "number '%s' is out of range", t.text);
  }
  return t;
}

Token lex_next(Lexer *lx) {
  for (;;) {
    const char *s = lx->cur;
    const char *p = s;
    const char *q = s; /* re2c's backtracking marker */
    int kind;
    /*!re2c
      re2c:define:YYCTYPE = "unsigned char";
      re2c:define:YYCURSOR = p;
      re2c:define:YYMARKER = q;
      re2c:yyfill:enable = 0;

      dig = [0-9];
      exp = [eE] [+-]? dig+;
      int = dig+;
      flt = dig+ "." dig+ exp? | "." dig+ exp? | dig+ exp;
      ident = [a-zA-Z_][a-zA-Z_0-9]*;
      badnum = (int | flt) [a-zA-Z_0-9]* [a-zA-Z_] [a-zA-Z_0-9]*;
      strch = [^"\\\n\x00] | "\\" [^\n\x00];

      "\x00" {
        if (s < lx->end) {
          diag_error(lx->diag, lex_loc(lx, s, p), "unexpected NUL byte");
          lx->cur = p;
          continue;
        }
        lx->cur = s;
        /* End the last statement, unless it is unfinished: then the
         * parser reports the end of the file. */
        if (lx->prev != 0 && lx->depth == 0 && !lex_continues_line(lx->prev))
          return lex_make_at_end(lx, TK_NEWLINE);
        return lex_make_at_end(lx, 0);
      }
      [ \t\r\f\v]+ { lx->cur = p; continue; }
      "#" [^\n\x00]* { lx->cur = p; continue; }
      "\n" {
        Loc at = lex_loc(lx, s, p);
        lx->cur = p;
        lx->line++;
        lx->line_start = p;
        if (lx->depth > 0 || lex_continues_line(lx->prev) ||
            lex_next_line_continues(p))
          continue;
        Token t;
        memset(&t, 0, sizeof t);
        t.kind = TK_NEWLINE;
        t.start = s;
        t.len = 1;
        t.loc = at;
        lx->prev = TK_NEWLINE;
        return t;
      }

      "const"  { kind = TK_CONST; goto token; }
      "input"  { kind = TK_INPUT; goto token; }
      "output" { kind = TK_OUTPUT; goto token; }
      "param"  { kind = TK_PARAM; goto token; }
      "from"   { kind = TK_FROM; goto token; }
      "fn"     { kind = TK_FN; goto token; }
      "entry"  { kind = TK_ENTRY; goto token; }
      "include" { kind = TK_INCLUDE; goto token; }
      "return" { kind = TK_RETURN; goto token; }
      "for"    { kind = TK_FOR; goto token; }
      "in"     { kind = TK_IN; goto token; }
      "range"  { kind = TK_RANGE; goto token; }
      "if"     { kind = TK_IF; goto token; }
      "else"   { kind = TK_ELSE; goto token; }
      "and"    { kind = TK_AND; goto token; }
      "or"     { kind = TK_OR; goto token; }
      "not"    { kind = TK_NOT; goto token; }
      "true"   { kind = TK_TRUE; goto token; }
      "false"  { kind = TK_FALSE; goto token; }
      "None"   { kind = TK_NONE; goto token; }
      ident {
        lx->cur = p;
        Token t = lex_make(lx, TK_NAME, s, p);
        t.text = arena_strndup(lx->arena, s, (size_t)(p - s));
        return t;
      }

      int { lx->cur = p; return lex_number(lx, TK_INT, s, p); }
      flt { lx->cur = p; return lex_number(lx, TK_FLOAT, s, p); }
      badnum {
        lx->cur = p;
        diag_error(lx->diag, lex_loc(lx, s, p), "invalid number '%.*s'",
                   (int)(p - s), s);
        Token t = lex_make(lx, TK_INT, s, p);
        t.text = arena_strndup(lx->arena, s, (size_t)(p - s));
        return t;
      }

      "\"" strch* "\"" {
        lx->cur = p;
        Token t = lex_make(lx, TK_STRING, s, p);
        t.text = lex_string_value(lx, s + 1, p - 1);
        return t;
      }
      "\"" strch* "\\"? {
        lx->cur = p;
        diag_error(lx->diag, lex_loc(lx, s, p), "unterminated string");
        Token t = lex_make(lx, TK_STRING, s, p);
        t.text = lex_string_value(lx, s + 1, p);
        return t;
      }

      "("   { kind = TK_LPAREN; goto token; }
      ")"   { kind = TK_RPAREN; goto token; }
      "["   { kind = TK_LBRACKET; goto token; }
      "]"   { kind = TK_RBRACKET; goto token; }
      "{"   { kind = TK_LBRACE; goto token; }
      "}"   { kind = TK_RBRACE; goto token; }
      ","   { kind = TK_COMMA; goto token; }
      ":"   { kind = TK_COLON; goto token; }
      ";"   { kind = TK_SEMI; goto token; }
      "="   { kind = TK_ASSIGN; goto token; }
      "."   { kind = TK_DOT; goto token; }
      "..." { kind = TK_ELLIPSIS; goto token; }
      "+"   { kind = TK_PLUS; goto token; }
      "-"   { kind = TK_MINUS; goto token; }
      "*"   { kind = TK_STAR; goto token; }
      "/"   { kind = TK_SLASH; goto token; }
      "%"   { kind = TK_PERCENT; goto token; }
      "@"   { kind = TK_AT; goto token; }
      "^"   { kind = TK_CARET; goto token; }
      "**"  { kind = TK_POW; goto token; }
      "=="  { kind = TK_EQ; goto token; }
      "!="  { kind = TK_NE; goto token; }
      "<"   { kind = TK_LT; goto token; }
      "<="  { kind = TK_LE; goto token; }
      ">"   { kind = TK_GT; goto token; }
      ">="  { kind = TK_GE; goto token; }

      [\x80-\xff]+ {
        lx->cur = p;
        diag_error(lx->diag, lex_loc(lx, s, p),
                   "unexpected non-ASCII character");
        continue;
      }
      * {
        lx->cur = p;
        unsigned char c = (unsigned char)*s;
        if (isprint(c))
          diag_error(lx->diag, lex_loc(lx, s, p),
                     "unexpected character '%c'", c);
        else
          diag_error(lx->diag, lex_loc(lx, s, p),
                     "unexpected character '\\x%02x'", c);
        continue;
      }
    */
  token:
    lx->cur = p;
    return lex_make(lx, kind, s, p);
  }
}
