/* Symbolic dimensions: polynomials with int64 coefficients over symbols.
 *
 * Canonical form (every function here returns it, dim_eq relies on it):
 *  - factors inside a term are sorted ascending by symbol id;
 *  - terms are sorted by degree, highest first, then by their factor lists
 *    lexicographically (graded lex, a monomial order, which makes the
 *    division in dim_div_exact well defined);
 *  - equal monomials are merged and zero coefficients dropped, so 0 has no
 *    terms and a constant c != 0 is one term without factors (last).
 * Example: (T + 1) * (T + 1) = T*T + 2*T + 1, printed "T*T + 2*T + 1".
 */
#include <stdio.h>
#include <string.h>

#include "ir.h"

/* Monomial order: negative when a comes first in the canonical form. */
static int term_cmp(const DimTerm *a, const DimTerm *b) {
  if (a->nfactors != b->nfactors)
    return a->nfactors > b->nfactors ? -1 : 1;
  for (int i = 0; i < a->nfactors; i++)
    if (a->sym[i] != b->sym[i])
      return a->sym[i] < b->sym[i] ? -1 : 1;
  return 0;
}

/* A scratch polynomial with room for intermediate results. */
enum { POLY_MAX = DIM_MAX_TERMS * DIM_MAX_TERMS + DIM_MAX_TERMS };
typedef struct Poly {
  int n;
  DimTerm t[POLY_MAX];
} Poly;

/* Sorts, merges and drops zeros; false on coefficient overflow. */
static bool poly_canon(Poly *p) {
  for (int i = 1; i < p->n; i++) { /* insertion sort: tiny arrays */
    DimTerm x = p->t[i];
    int j = i - 1;
    while (j >= 0 && term_cmp(&p->t[j], &x) > 0) {
      p->t[j + 1] = p->t[j];
      j--;
    }
    p->t[j + 1] = x;
  }
  int out = 0;
  for (int i = 0; i < p->n; i++) {
    if (out > 0 && term_cmp(&p->t[out - 1], &p->t[i]) == 0) {
      if (__builtin_add_overflow(p->t[out - 1].coef, p->t[i].coef,
                                 &p->t[out - 1].coef))
        return false;
    } else {
      p->t[out++] = p->t[i];
    }
    if (p->t[out - 1].coef == 0)
      out--;
  }
  p->n = out;
  return true;
}

static bool poly_to_dim(const Poly *p, Dim *out) {
  if (p->n > DIM_MAX_TERMS)
    return false;
  Dim d;
  memset(&d, 0, sizeof d);
  d.nterms = (uint8_t)p->n;
  for (int i = 0; i < p->n; i++)
    d.terms[i] = p->t[i];
  *out = d;
  return true;
}

static void poly_from_dim(Poly *p, Dim a) {
  p->n = a.nterms;
  for (int i = 0; i < a.nterms; i++)
    p->t[i] = a.terms[i];
}

Dim dim_const(int64_t c) {
  Dim d;
  memset(&d, 0, sizeof d);
  if (c != 0) {
    d.nterms = 1;
    d.terms[0].coef = c;
  }
  return d;
}

Dim dim_sym(int sym) {
  Dim d;
  memset(&d, 0, sizeof d);
  d.nterms = 1;
  d.terms[0].coef = 1;
  d.terms[0].nfactors = 1;
  d.terms[0].sym[0] = (uint8_t)sym;
  return d;
}

static bool add_scaled(Dim a, Dim b, int64_t scale, Dim *out) {
  Poly p;
  poly_from_dim(&p, a);
  for (int i = 0; i < b.nterms; i++) {
    DimTerm t = b.terms[i];
    if (__builtin_mul_overflow(t.coef, scale, &t.coef))
      return false;
    p.t[p.n++] = t;
  }
  return poly_canon(&p) && poly_to_dim(&p, out);
}

bool dim_add(Dim a, Dim b, Dim *out) {
  return add_scaled(a, b, 1, out);
}
bool dim_sub(Dim a, Dim b, Dim *out) {
  return add_scaled(a, b, -1, out);
}

static bool term_mul(const DimTerm *a, const DimTerm *b, DimTerm *out) {
  if (a->nfactors + b->nfactors > DIM_MAX_FACTORS)
    return false;
  DimTerm t;
  memset(&t, 0, sizeof t);
  if (__builtin_mul_overflow(a->coef, b->coef, &t.coef))
    return false;
  int i = 0, j = 0;
  while (i < a->nfactors || j < b->nfactors) {
    if (j >= b->nfactors || (i < a->nfactors && a->sym[i] <= b->sym[j]))
      t.sym[t.nfactors++] = a->sym[i++];
    else
      t.sym[t.nfactors++] = b->sym[j++];
  }
  *out = t;
  return true;
}

bool dim_mul(Dim a, Dim b, Dim *out) {
  Poly p;
  p.n = 0;
  for (int i = 0; i < a.nterms; i++)
    for (int j = 0; j < b.nterms; j++)
      if (!term_mul(&a.terms[i], &b.terms[j], &p.t[p.n++]))
        return false;
  return poly_canon(&p) && poly_to_dim(&p, out);
}

/* Divides monomial a by monomial b exactly; false if b does not divide a. */
static bool term_div(const DimTerm *a, const DimTerm *b, DimTerm *out) {
  if (b->coef == 0 || a->coef % b->coef != 0)
    return false;
  if (b->coef == -1 && a->coef == INT64_MIN)
    return false;
  DimTerm t;
  memset(&t, 0, sizeof t);
  t.coef = a->coef / b->coef;
  int j = 0;
  for (int i = 0; i < a->nfactors; i++) {
    if (j < b->nfactors && a->sym[i] == b->sym[j])
      j++;
    else
      t.sym[t.nfactors++] = a->sym[i];
  }
  if (j != b->nfactors)
    return false;
  *out = t;
  return true;
}

/* Multivariate long division by the leading term; exact division in a
 * monomial order always leaves remainder 0 when b divides a. */
bool dim_div_exact(Dim a, Dim b, Dim *out) {
  if (b.nterms == 0)
    return false;
  Dim q = dim_const(0), rem = a;
  for (int guard = 0; rem.nterms > 0; guard++) {
    if (guard > 64)
      return false;
    DimTerm t;
    if (!term_div(&rem.terms[0], &b.terms[0], &t))
      return false;
    Dim td;
    memset(&td, 0, sizeof td);
    td.nterms = 1;
    td.terms[0] = t;
    Dim prod;
    if (!dim_add(q, td, &q) || !dim_mul(td, b, &prod) ||
        !dim_sub(rem, prod, &rem))
      return false;
  }
  *out = q;
  return true;
}

bool dim_eq(Dim a, Dim b) {
  if (a.nterms != b.nterms)
    return false;
  for (int i = 0; i < a.nterms; i++)
    if (a.terms[i].coef != b.terms[i].coef ||
        term_cmp(&a.terms[i], &b.terms[i]) != 0)
      return false;
  return true;
}

bool dim_is_const(Dim a, int64_t *value) {
  if (a.nterms == 0) {
    if (value)
      *value = 0;
    return true;
  }
  if (a.nterms == 1 && a.terms[0].nfactors == 0) {
    if (value)
      *value = a.terms[0].coef;
    return true;
  }
  return false;
}

static bool dim_is_nonneg_const(Dim a) {
  int64_t c;
  return dim_is_const(a, &c) && c >= 0;
}

bool slice_axis_in_bounds(Dim start, int64_t step, Dim extent, Dim size) {
  int64_t n;
  if (dim_is_const(extent, &n) && n <= 0)
    return true; /* reads nothing */
  /* last = start + (extent - 1) * step; with extent >= 1 the indices run
   * from min(start, last) to max(start, last) */
  Dim span, last, room;
  if (!dim_sub(extent, dim_const(1), &span) ||
      !dim_mul(span, dim_const(step), &span) || !dim_add(start, span, &last))
    return false;
  Dim lo = step > 0 ? start : last, hi = step > 0 ? last : start;
  return dim_is_nonneg_const(lo) && dim_sub(size, hi, &room) &&
         dim_sub(room, dim_const(1), &room) && dim_is_nonneg_const(room);
}

bool dim_has_sym(Dim a, int sym) {
  for (int i = 0; i < a.nterms; i++)
    for (int j = 0; j < a.terms[i].nfactors; j++)
      if (a.terms[i].sym[j] == sym)
        return true;
  return false;
}

int64_t dim_eval(Dim a, const int64_t *symvals) {
  uint64_t sum = 0; /* unsigned: wraps instead of undefined overflow */
  for (int i = 0; i < a.nterms; i++) {
    uint64_t t = (uint64_t)a.terms[i].coef;
    for (int j = 0; j < a.terms[i].nfactors; j++)
      t *= (uint64_t)symvals[a.terms[i].sym[j]];
    sum += t;
  }
  return (int64_t)sum;
}

Dim dim_substitute(Dim a, const bool *bound, const int64_t *value) {
  Dim result = dim_const(0);
  for (int i = 0; i < a.nterms; i++) {
    Dim t = dim_const(a.terms[i].coef);
    for (int j = 0; j < a.terms[i].nfactors; j++) {
      int s = a.terms[i].sym[j];
      Dim f = bound[s] ? dim_const(value[s]) : dim_sym(s);
      if (!dim_mul(t, f, &t))
        return a;
    }
    if (!dim_add(result, t, &result))
      return a;
  }
  return result;
}

/* ---- printing ---------------------------------------------------------- */

typedef struct Buf {
  char *p;
  size_t n;
  int len;
} Buf;

static void buf_put(Buf *b, const char *s) {
  size_t k = strlen(s);
  if (b->n > 0 && (size_t)b->len < b->n - 1) {
    size_t room = b->n - 1 - (size_t)b->len;
    size_t c = k < room ? k : room;
    memcpy(b->p + b->len, s, c);
    b->p[b->len + c] = 0;
  }
  b->len += (int)k;
}

static void buf_sym(Buf *b, int sym, const Module *m) {
  if (m && sym < m->nsymbols && m->symbols[sym]) {
    buf_put(b, m->symbols[sym]);
  } else {
    char tmp[16];
    snprintf(tmp, sizeof tmp, "s%d", sym);
    buf_put(b, tmp);
  }
}

static void buf_dim(Buf *b, Dim a, const Module *m) {
  char tmp[32];
  if (a.nterms == 0) {
    buf_put(b, "0");
    return;
  }
  for (int i = 0; i < a.nterms; i++) {
    const DimTerm *t = &a.terms[i];
    int64_t c = t->coef;
    uint64_t mag = c < 0 ? -(uint64_t)c : (uint64_t)c;
    if (i > 0)
      buf_put(b, c < 0 ? " - " : " + ");
    else if (c < 0)
      buf_put(b, "-");
    if (mag != 1 || t->nfactors == 0) {
      snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)mag);
      buf_put(b, tmp);
      if (t->nfactors > 0)
        buf_put(b, "*");
    }
    for (int j = 0; j < t->nfactors; j++) {
      if (j > 0)
        buf_put(b, "*");
      buf_sym(b, t->sym[j], m);
    }
  }
}

int dim_print(char *buf, size_t n, Dim a, const Module *m) {
  Buf b = {buf, n, 0};
  if (n > 0)
    buf[0] = 0;
  buf_dim(&b, a, m);
  return b.len;
}

Shape shape_scalar(void) {
  Shape s;
  memset(&s, 0, sizeof s);
  return s;
}

bool shape_eq(const Shape *a, const Shape *b) {
  if (a->rank != b->rank)
    return false;
  for (int i = 0; i < a->rank; i++)
    if (!dim_eq(a->dims[i], b->dims[i]))
      return false;
  return true;
}

bool shape_is_const(const Shape *s) {
  for (int i = 0; i < s->rank; i++)
    if (!dim_is_const(s->dims[i], NULL))
      return false;
  return true;
}

bool shape_numel_checked(const Shape *s, Dim *out) {
  Dim n = dim_const(1);
  for (int i = 0; i < s->rank; i++)
    if (!dim_mul(n, s->dims[i], &n))
      return false;
  *out = n;
  return true;
}

Dim shape_numel(const Shape *s) {
  Dim n;
  if (!shape_numel_checked(s, &n))
    return dim_const(-1);
  return n;
}

static void buf_shape(Buf *b, const Shape *s, const Module *m) {
  buf_put(b, "[");
  for (int i = 0; i < s->rank; i++) {
    if (i > 0)
      buf_put(b, ", ");
    buf_dim(b, s->dims[i], m);
  }
  buf_put(b, "]");
}

int shape_print(char *buf, size_t n, const Shape *s, const Module *m) {
  Buf b = {buf, n, 0};
  if (n > 0)
    buf[0] = 0;
  buf_shape(&b, s, m);
  return b.len;
}

int type_print(char *buf, size_t n, const Type *t, const Module *m) {
  Buf b = {buf, n, 0};
  if (n > 0)
    buf[0] = 0;
  buf_put(&b, dtype_name(t->dtype));
  buf_shape(&b, &t->shape, m);
  return b.len;
}

bool type_eq(const Type *a, const Type *b) {
  return a->dtype == b->dtype && shape_eq(&a->shape, &b->shape);
}
