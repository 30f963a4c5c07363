/* The IR reader's value table (values by name, with the regions that see
 * them) and its small pieces: names, integers, symbolic dimensions, types,
 * locations and numbers (see the grammar in ir/read.c). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "read_internal.h"

/* ---- value table --------------------------------------------------------- */

static size_t hash_key(const char *s, bool numeric) {
  size_t h = numeric ? 7 : 1469598103934665603u;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211u;
  return h;
}

ValueEntry *rd_value_slot(Reader *r, const char *key, bool numeric) {
  size_t i = hash_key(key, numeric) & (r->vcap - 1);
  while (r->vals[i].key &&
         (r->vals[i].numeric != numeric || strcmp(r->vals[i].key, key) != 0))
    i = (i + 1) & (r->vcap - 1);
  return &r->vals[i];
}

void rd_values_resize(Reader *r, size_t cap, bool keep) {
  ValueEntry *old = r->vals;
  size_t oldcap = keep ? r->vcap : 0;
  r->vcap = cap;
  r->vcount = keep ? r->vcount : 0;
  r->vals = calloc(r->vcap, sizeof(ValueEntry));
  if (!r->vals)
    abort();
  for (size_t i = 0; i < oldcap; i++)
    if (old[i].key)
      *rd_value_slot(r, old[i].key, old[i].numeric) = old[i];
  free(old);
}

bool rd_value_use(Reader *r, Value **out) {
  IrLexer *lx = &r->lx;
  if (lx->kind != TK_VALUE)
    return irlex_expect(lx, TK_VALUE, "a value");
  ValueEntry *e = rd_value_slot(r, lx->text, lx->numeric);
  if (!e->key) {
    irlex_error(lx, "unknown value %%%s", lx->text);
    return false;
  }
  bool seen = e->scope == 0;
  for (int i = 0; i < r->nscopes; i++)
    seen |= r->scopes[i] == e->scope;
  if (!seen) {
    irlex_error(lx, "value %%%s is defined inside a region, not visible here",
                lx->text);
    return false;
  }
  *out = e->value;
  irlex_next(lx);
  return true;
}

/* ---- small pieces -------------------------------------------------------- */

bool rd_parse_name(Reader *r, const char **out) {
  IrLexer *lx = &r->lx;
  if (lx->kind != TK_IDENT && lx->kind != TK_STRING)
    return irlex_expect(lx, TK_IDENT, "a name");
  *out = ir_strdup(r->m, lx->text);
  irlex_next(lx);
  return true;
}

bool rd_parse_int(Reader *r, int64_t lo, int64_t hi, int64_t *out) {
  IrLexer *lx = &r->lx;
  bool neg = irlex_accept(lx, TK_MINUS);
  if (lx->kind != TK_NUMBER)
    return irlex_expect(lx, TK_NUMBER, "an integer");
  errno = 0;
  char *end;
  long long v = strtoll(lx->text, &end, 10); /* no sign in the token */
  int64_t x = neg ? -(int64_t)v : (int64_t)v;
  if (*end || errno == ERANGE || x < lo || x > hi) {
    irlex_error(lx, "integer %s%s out of range or malformed", neg ? "-" : "",
                lx->text);
    return false;
  }
  *out = x;
  irlex_next(lx);
  return true;
}

static bool parse_factor(Reader *r, Dim *out) {
  IrLexer *lx = &r->lx;
  if (lx->kind == TK_NUMBER) {
    int64_t v;
    if (!rd_parse_int(r, 0, INT64_MAX, &v))
      return false;
    *out = dim_const(v);
    return true;
  }
  if (lx->kind == TK_IDENT) {
    int s = ir_symbol(r->m, lx->text);
    if (s < 0) {
      irlex_error(lx, "too many symbols");
      return false;
    }
    *out = dim_sym(s);
    irlex_next(lx);
    return true;
  }
  if (irlex_accept(lx, TK_LPAREN)) {
    if (!rd_parse_dim(r, out))
      return false;
    EXPECT(r, TK_RPAREN, "')'");
    return true;
  }
  return irlex_expect(lx, TK_NUMBER, "a dimension");
}

/* Dim arithmetic result check: the fixed-size form may overflow. */
static bool fits(Reader *r, bool ok) {
  if (!ok)
    irlex_error(&r->lx, "dimension too complex");
  return ok;
}

static bool parse_term(Reader *r, Dim *out) {
  if (!parse_factor(r, out))
    return false;
  while (irlex_accept(&r->lx, TK_STAR)) {
    Dim f;
    if (!parse_factor(r, &f))
      return false;
    if (!fits(r, dim_mul(*out, f, out)))
      return false;
  }
  return true;
}

bool rd_parse_dim(Reader *r, Dim *out) {
  if (++r->depth > 32) {
    irlex_error(&r->lx, "dimension nested too deeply");
    return false;
  }
  bool neg = irlex_accept(&r->lx, TK_MINUS);
  if (!parse_term(r, out))
    return false;
  if (neg && !fits(r, dim_sub(dim_const(0), *out, out)))
    return false;
  for (;;) {
    bool sub = r->lx.kind == TK_MINUS;
    if (!sub && r->lx.kind != TK_PLUS)
      break;
    irlex_next(&r->lx);
    Dim t;
    if (!parse_term(r, &t))
      return false;
    if (!fits(r, sub ? dim_sub(*out, t, out) : dim_add(*out, t, out)))
      return false;
  }
  r->depth--;
  return true;
}

/* '[' dim, ... ']' into dims (at most MAX_RANK) */
bool rd_parse_dim_list(Reader *r, Dim *dims, int *n) {
  EXPECT(r, TK_LBRACKET, "'['");
  *n = 0;
  if (irlex_accept(&r->lx, TK_RBRACKET))
    return true;
  do {
    if (*n >= MAX_RANK) {
      irlex_error(&r->lx, "more than %d dimensions", MAX_RANK);
      return false;
    }
    if (!rd_parse_dim(r, &dims[(*n)++]))
      return false;
  } while (irlex_accept(&r->lx, TK_COMMA));
  EXPECT(r, TK_RBRACKET, "']'");
  return true;
}

bool rd_parse_type(Reader *r, Type *t) {
  IrLexer *lx = &r->lx;
  memset(t, 0, sizeof *t);
  if (lx->kind != TK_IDENT || !dtype_from_name(lx->text, &t->dtype))
    return irlex_expect(lx, TK_NONE, "a type such as f32[T, 768]");
  irlex_next(lx);
  return rd_parse_dim_list(r, t->shape.dims, &t->shape.rank);
}

bool rd_parse_loc(Reader *r, Loc *loc) {
  IrLexer *lx = &r->lx;
  memset(loc, 0, sizeof *loc);
  if (!irlex_accept(lx, TK_AT))
    return true;
  /* Without a `file` header, locations are in the IR text itself. */
  loc->file = r->m->source_file ? r->m->source_file : lx->path;
  if (lx->kind == TK_STRING) {
    loc->file = ir_strdup(r->m, lx->text);
    irlex_next(lx);
    EXPECT(r, TK_COLON, "':'");
  }
  int64_t line = 0, col = 0;
  if (!rd_parse_int(r, 0, 1 << 30, &line))
    return false;
  EXPECT(r, TK_COLON, "':'");
  if (!rd_parse_int(r, 0, 1 << 30, &col))
    return false;
  loc->line = (int)line;
  loc->col = (int)col;
  if (lx->kind == TK_STRING) {
    loc->scope = ir_strdup(r->m, lx->text);
    irlex_next(lx);
  }
  return true;
}

/* A number literal's text with its sign: [-](NUMBER | inf | nan). */
bool rd_number_text(Reader *r, char *buf, size_t n) {
  IrLexer *lx = &r->lx;
  bool neg = irlex_accept(lx, TK_MINUS);
  if (lx->kind != TK_NUMBER && lx->kind != TK_IDENT)
    return irlex_expect(lx, TK_NUMBER, "a number");
  if (strlen(lx->text) + 2 > n) {
    irlex_error(lx, "number too long");
    return false;
  }
  snprintf(buf, n, "%s%s", neg ? "-" : "", lx->text);
  return true; /* the token is consumed by the caller after conversion */
}

bool rd_parse_double(Reader *r, double *out) {
  char buf[128];
  if (!rd_number_text(r, buf, sizeof buf))
    return false;
  char *end;
  *out = strtod(buf, &end);
  if (*end || end == buf) {
    irlex_error(&r->lx, "malformed number %s", buf);
    return false;
  }
  irlex_next(&r->lx);
  return true;
}

/* Converts one constant element given as text into dtype t at data[i]. */
bool rd_convert_elem(Reader *r, DType t, const char *s, void *data, size_t i) {
  if (ir_const_parse(t, s, data, i))
    return true;
  irlex_error(&r->lx, "bad %s constant '%s'", dtype_name(t), s);
  return false;
}
