/* Text for the C backend: a growable buffer, and the C spelling of IR things
 * (types, bit-exact literals, symbolic dimensions, string literals). Every
 * char * returned lives in the caller's arena. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c_emit.h"

/* ---- text buffer -----------------------------------------------------------
 */

void cg_buf_vprintf(CgBuf *b, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0)
    return;
  if (b->len + (size_t)n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + (size_t)n + 1)
      cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
      fputs("modelc: out of memory\n", stderr);
      abort();
    }
    b->data = p;
    b->cap = cap;
  }
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
}

void cg_buf_printf(CgBuf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  cg_buf_vprintf(b, fmt, ap);
  va_end(ap);
}

void cg_buf_puts(CgBuf *b, const char *s) {
  cg_buf_printf(b, "%s", s);
}

void cg_buf_indented(CgBuf *b, const char *text, int extra) {
  while (*text) {
    const char *nl = strchr(text, '\n');
    size_t len = nl ? (size_t)(nl - text + 1) : strlen(text);
    cg_buf_printf(b, "%*s%.*s", extra, "", (int)len, text);
    text += len;
  }
}

const char *cg_buf_str(const CgBuf *b) {
  return b->data ? b->data : "";
}

void cg_buf_free(CgBuf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

char *cg_strf(Arena *a, const char *fmt, ...) {
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  char *s = arena_alloc(a, (size_t)(n < 0 ? 0 : n) + 1);
  if (n > 0)
    vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

/* ---- C spelling ---------------------------------------------------------- */

const char *cg_ctype(DType t) {
  switch (t) {
  case DT_F32:
    return "float";
  case DT_F64:
    return "double";
  case DT_I32:
    return "int32_t";
  case DT_I64:
    return "int64_t";
  case DT_BOOL:
    return "uint8_t";
  case DT_F16:
  case DT_BF16:
    return "uint16_t";
  case DT_COUNT:
    break;
  }
  return "void";
}

const char *cg_mc_dtype(DType t) {
  switch (t) {
  case DT_F32:
    return "MC_F32";
  case DT_F64:
    return "MC_F64";
  case DT_I32:
    return "MC_I32";
  case DT_I64:
    return "MC_I64";
  case DT_BOOL:
    return "MC_BOOL";
  case DT_F16:
    return "MC_F16";
  case DT_BF16:
    return "MC_BF16";
  case DT_COUNT:
    break;
  }
  return "MC_DTYPE_COUNT";
}

char *cg_literal(Arena *a, DType t, const void *data, size_t i) {
  switch (t) {
  case DT_F32: {
    float f = ((const float *)data)[i];
    if (isnan(f))
      return cg_strf(a, "NAN");
    if (isinf(f))
      return cg_strf(a, f > 0 ? "INFINITY" : "(-INFINITY)");
    return cg_strf(a, signbit(f) ? "(%af)" : "%af", (double)f);
  }
  case DT_F64: {
    double f = ((const double *)data)[i];
    if (isnan(f))
      return cg_strf(a, "(double)NAN");
    if (isinf(f))
      return cg_strf(a, f > 0 ? "HUGE_VAL" : "(-HUGE_VAL)");
    return cg_strf(a, signbit(f) ? "(%a)" : "%a", f);
  }
  case DT_I32: {
    int32_t v = ((const int32_t *)data)[i];
    if (v == INT32_MIN)
      return cg_strf(a, "INT32_MIN");
    return cg_strf(a, v < 0 ? "(%" PRId32 ")" : "%" PRId32, v);
  }
  case DT_I64: {
    int64_t v = ((const int64_t *)data)[i];
    if (v == INT64_MIN)
      return cg_strf(a, "INT64_MIN");
    return cg_strf(a, v < 0 ? "(INT64_C(%" PRId64 "))" : "INT64_C(%" PRId64 ")",
                   v);
  }
  case DT_BOOL:
    return cg_strf(a, "%d", ((const uint8_t *)data)[i] != 0);
  case DT_F16:
  case DT_BF16:
    return cg_strf(a, "%u", (unsigned)((const uint16_t *)data)[i]);
  case DT_COUNT:
    break;
  }
  return cg_strf(a, "0");
}

char *cg_dim(Arena *a, Dim d, const char *const *symnames, uint64_t *used) {
  if (d.nterms == 0)
    return cg_strf(a, "0");
  CgBuf b = {0};
  int64_t konst = 0;
  bool first = true;
  /* terms with symbols first, the constant last: "2 * T + 1" */
  for (int t = 0; t < d.nterms; t++) {
    const DimTerm *term = &d.terms[t];
    if (term->nfactors == 0) {
      konst += term->coef;
      continue;
    }
    int64_t c = term->coef;
    if (!first)
      cg_buf_puts(&b, c < 0 ? " - " : " + ");
    else if (c < 0)
      cg_buf_puts(&b, "-");
    if (c < 0)
      c = -c;
    if (c != 1)
      cg_buf_printf(&b, "%" PRId64 " * ", c);
    for (int f = 0; f < term->nfactors; f++) {
      cg_buf_printf(&b, "%s%s", f ? " * " : "", symnames[term->sym[f]]);
      *used |= UINT64_C(1) << term->sym[f];
    }
    first = false;
  }
  if (first)
    cg_buf_printf(&b, "%" PRId64, konst);
  else if (konst != 0)
    cg_buf_printf(&b, " %c %" PRId64, konst < 0 ? '-' : '+',
                  konst < 0 ? -konst : konst);
  const char *s = cg_buf_str(&b);
  bool compound = d.nterms > 1 || s[0] == '-';
  char *r = cg_strf(a, compound ? "(%s)" : "%s", s);
  cg_buf_free(&b);
  return r;
}

char *cg_dims_product(Arena *a, const Dim *dims, int from, int to,
                      const char *const *symnames, uint64_t *used) {
  int64_t konst = 1;
  CgBuf b = {0};
  for (int i = from; i < to; i++) {
    int64_t c;
    if (dim_is_const(dims[i], &c) && c >= 0 &&
        (c == 0 || konst <= INT64_MAX / c)) {
      konst *= c;
      continue;
    }
    cg_buf_printf(&b, "%s%s", b.len ? " * " : "",
                  cg_dim(a, dims[i], symnames, used));
  }
  char *s;
  if (konst == 0)
    s = cg_strf(a, "0");
  else if (b.len == 0)
    s = cg_strf(a, "%" PRId64, konst);
  else if (konst == 1)
    s = cg_strf(a, "%s", cg_buf_str(&b));
  else
    s = cg_strf(a, "%s * %" PRId64, cg_buf_str(&b), konst);
  cg_buf_free(&b);
  return s;
}

char *cg_c_string(Arena *a, const char *s, bool format) {
  CgBuf b = {0};
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      cg_buf_printf(&b, "\\%c", *p);
    else if (*p == '?')
      cg_buf_puts(&b, "\\?"); /* no trigraphs */
    else if (*p == '%' && format)
      cg_buf_puts(&b, "%%");
    else if (*p < 32 || *p >= 127)
      cg_buf_printf(&b, "\\%03o", *p);
    else
      cg_buf_printf(&b, "%c", *p);
  }
  char *r = cg_strf(a, "%s", cg_buf_str(&b));
  cg_buf_free(&b);
  return r;
}
