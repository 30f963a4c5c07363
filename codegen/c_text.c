/* Text for the C backend: a growable buffer, the C spelling of IR things
 * (types, bit-exact literals, symbolic dimensions, string literals), C
 * names (unique, never a keyword or a name the generated code uses), and
 * the comments that quote the model file and the IR above each kernel.
 * Every char * returned lives in the caller's (or the emitter's) arena. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c_emit.h"

bool cg_is_lit(const char *s, const char *lit) {
  return !strcmp(s, lit);
}

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

/* ---- names ------------------------------------------------------------------
 */

static bool names_has(const NameSet *s, const char *name) {
  for (int i = 0; i < s->n; i++)
    if (!strcmp(s->names[i], name))
      return true;
  return false;
}

static void names_add(NameSet *s, Arena *a, const char *name) {
  if (s->n == s->cap) {
    int cap = s->cap ? 2 * s->cap : 64;
    s->names = arena_grow(a, s->names, (size_t)s->cap * sizeof(char *),
                          (size_t)cap * sizeof(char *));
    s->cap = cap;
  }
  s->names[s->n++] = name;
}

/* base, or base_2, base_3, ... whichever is still free; then taken. */
const char *cg_names_unique(NameSet *s, Arena *a, const char *base) {
  const char *name = base;
  for (int i = 2; names_has(s, name); i++)
    name = cg_strf(a, "%s_%d", base, i);
  names_add(s, a, name);
  return name;
}

/* Any text as a C identifier: other characters become '_'. */
char *cg_c_ident(Arena *a, const char *s) {
  char *r = cg_strf(a, "%s%s", s[0] >= '0' && s[0] <= '9' ? "v" : "", s);
  for (char *p = r; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
          (*p >= '0' && *p <= '9') || *p == '_'))
      *p = '_';
  return r[0] ? r : cg_strf(a, "v");
}

static const char *const c_reserved[] = {
    "auto",     "break",    "case",     "char",   "const",   "continue",
    "default",  "do",       "double",   "else",   "enum",    "extern",
    "float",    "for",      "goto",     "if",     "inline",  "int",
    "long",     "register", "restrict", "return", "short",   "signed",
    "sizeof",   "static",   "struct",   "switch", "typedef", "union",
    "unsigned", "void",     "volatile", "while",  "NULL",    "INFINITY",
    "NAN",      "HUGE_VAL", "EOF",      "main",   "errno",   "m",
    "err",      "ws",       "off",      "rc",     "size",    "done",
    "in",       "out",      "handle",   "wsize",  "task_rc", "task_err"};

void cg_reserve_c_names(NameSet *s, Arena *a) {
  for (size_t i = 0; i < sizeof c_reserved / sizeof *c_reserved; i++)
    names_add(s, a, c_reserved[i]);
}

/* The C name of a symbol: kept when it cannot clash with the lowercase
 * locals of kernels or with reserved macro names, else "sym_" + name. */
const char *cg_symbol_c_name(Arena *a, const char *name) {
  char *id = cg_c_ident(a, name);
  bool upper = false;
  for (const char *p = id; *p; p++)
    upper |= *p >= 'A' && *p <= 'Z';
  bool reserved = id[0] == '_' || !strncmp(id, "MC_", 3) ||
                  !strncmp(id, "INT", 3) || !strncmp(id, "UINT", 4) ||
                  !strncmp(id, "SIZE", 4) || !strncmp(id, "FLT", 3) ||
                  !strncmp(id, "DBL", 3) || !strncmp(id, "M_", 2) ||
                  (id[0] == 'E' && id[1] >= 'A' && id[1] <= 'Z');
  for (size_t i = 0; i < sizeof c_reserved / sizeof *c_reserved; i++)
    reserved |= !strcmp(id, c_reserved[i]);
  return upper && !reserved ? id : cg_strf(a, "sym_%s", id);
}

const char *cg_base_name(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

/* ---- comments
 * ----------------------------------------------------------------- */

/* The model-file line at loc, if the Diag has its text. */
const char *cg_source_line(Emitter *e, Loc loc) {
  if (!e->d || !loc.file || loc.line <= 0)
    return NULL;
  for (const DiagSource *s = e->d->sources; s; s = s->next) {
    if (!s->path || strcmp(s->path, loc.file))
      continue;
    const char *p = s->text;
    for (int l = 1; p && l < loc.line; l++) {
      p = strchr(p, '\n');
      if (p)
        p++;
    }
    if (!p)
      return NULL;
    while (*p == ' ' || *p == '\t')
      p++;
    size_t len = strcspn(p, "\r\n");
    char *r = cg_strf(&e->arena, "%.*s", (int)len, p);
    for (char *q = r; *q; q++) /* keep the comment closed */
      if (q[0] == '*' && q[1] == '/')
        q[1] = '|';
    return r;
  }
  return NULL;
}

const char *cg_value_text(FnEmit *fe, const Value *v) {
  ValueInfo *vi = cg_info(fe, v);
  if (vi->cname)
    return vi->cname;
  return cg_strf(&fe->e->arena, "%%%d", v->id);
}

static void append_attrs(FnEmit *fe, CgBuf *b, const Op *op) {
  const Module *m = fe->e->m;
  switch (ir_op_info[op->kind].attr) {
  case ATTR_AXIS:
    cg_buf_printf(b, " axis=%d", op->attrs.axis.axis);
    break;
  case ATTR_MATMUL:
    if (op->attrs.matmul.trans_a)
      cg_buf_puts(b, " trans_a");
    if (op->attrs.matmul.trans_b)
      cg_buf_puts(b, " trans_b");
    break;
  case ATTR_REDUCE:
    cg_buf_puts(b, " axes=[");
    for (int i = 0, n = 0; i < 32; i++)
      if (op->attrs.reduce.axes & (1u << i))
        cg_buf_printf(b, "%s%d", n++ ? ", " : "", i);
    cg_buf_printf(b, "]%s", op->attrs.reduce.keepdims ? " keepdims" : "");
    break;
  case ATTR_SLICE:
    cg_buf_puts(b, " start=[");
    for (int i = 0; i < op->operands[0]->type.shape.rank; i++) {
      char s[128];
      dim_print(s, sizeof s, op->attrs.slice.start[i], m);
      cg_buf_printf(b, "%s%s", i ? ", " : "", s);
    }
    cg_buf_puts(b, "] step=[");
    for (int i = 0; i < op->operands[0]->type.shape.rank; i++)
      cg_buf_printf(b, "%s%" PRId64, i ? ", " : "", op->attrs.slice.step[i]);
    cg_buf_puts(b, "]");
    break;
  case ATTR_PERM:
    cg_buf_puts(b, " perm=[");
    for (int i = 0; i < op->results[0]->type.shape.rank; i++)
      cg_buf_printf(b, "%s%d", i ? ", " : "", op->attrs.perm.perm[i]);
    cg_buf_puts(b, "]");
    break;
  case ATTR_SCAN:
    cg_buf_printf(b, " ncarry=%d nseq=%d%s%s", op->attrs.scan.ncarry,
                  op->attrs.scan.nseq, op->attrs.scan.reverse ? " reverse" : "",
                  op->attrs.scan.with_index ? " index" : "");
    break;
  case ATTR_NONE:
  case ATTR_CONST:
  case ATTR_PARAM:
  case ATTR_COUNT:
    break;
  }
}

/* "h_5: f32[T, 768] = add(x, h_3) axis=..." */
void cg_append_op_text(FnEmit *fe, CgBuf *b, const Op *op,
                       const char **literal) {
  char ty[256];
  type_print(ty, sizeof ty, &op->results[0]->type, fe->e->m);
  cg_buf_printf(b, "%s: %s = %s(", cg_value_text(fe, op->results[0]), ty,
                ir_op_info[op->kind].name);
  for (int i = 0; i < op->noperands; i++)
    cg_buf_printf(b, "%s%s", i ? ", " : "",
                  literal && literal[i] ? literal[i]
                                        : cg_value_text(fe, op->operands[i]));
  cg_buf_puts(b, ")");
  append_attrs(fe, b, op);
}
