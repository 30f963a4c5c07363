/* safetensors files and model weights.
 *
 * Layout: u64 little-endian N, N bytes of JSON header, then the data section.
 * The header is an object mapping tensor names to
 *   {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
 * (offsets relative to the data section), plus an optional "__metadata__".
 *
 * Invariants after mc_st_open succeeds: the header was valid JSON (strict
 * grammar, depth-limited), every tensor has a supported dtype, rank <=
 * MC_MAX_RANK, a shape whose byte size fits size_t and equals end - begin,
 * offsets inside the data section, no two tensors share a name or overlap,
 * and names are NUL-free UTF-8 C strings. Consumers may then trust every
 * McStTensor without checking again.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "mc_runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct McSafetensors {
  void *map;
  size_t map_size;
  int count;
  McStTensor *tensors;
  char **names; /* owns the tensor names (sorted once open) */
  char *format; /* __metadata__'s "format" string, or NULL */
};

/* ---- a strict JSON reader --------------------------------------------- */

#define JSON_MAX_DEPTH 64

typedef struct Json {
  const unsigned char *begin, *p, *end;
  const char *path;
  McError *e;
} Json;

static int json_error(Json *j, const char *what) {
  return mc_fail(j->e, MC_ERR_FORMAT,
                 "%s: bad safetensors header: %s at header byte %ld", j->path,
                 what, (long)(j->p - j->begin));
}

static void json_space(Json *j) {
  while (j->p < j->end &&
         (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
    j->p++;
}

static int json_accept(Json *j, unsigned char c) {
  json_space(j);
  if (j->p < j->end && *j->p == c) {
    j->p++;
    return 1;
  }
  return 0;
}

static int json_hex4(Json *j, uint32_t *out) {
  uint32_t v = 0;
  if (j->end - j->p < 4)
    return 0;
  for (int i = 0; i < 4; i++) {
    unsigned char c = *j->p++;
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : -1;
    if (d < 0)
      return 0;
    v = v << 4 | (uint32_t)d;
  }
  *out = v;
  return 1;
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if invalid. */
static size_t json_utf8_len(const unsigned char *p, size_t n) {
  size_t len = p[0] < 0x80             ? 1
               : (p[0] & 0xe0) == 0xc0 ? 2
               : (p[0] & 0xf0) == 0xe0 ? 3
               : (p[0] & 0xf8) == 0xf0 ? 4
                                       : 0;
  if (len == 0 || len > n)
    return 0;
  uint32_t cp = len == 1 ? p[0] : p[0] & (0x7f >> len);
  for (size_t i = 1; i < len; i++) {
    if ((p[i] & 0xc0) != 0x80)
      return 0;
    cp = cp << 6 | (p[i] & 0x3f);
  }
  static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return len;
}

static size_t json_put_utf8(unsigned char *o, uint32_t cp) {
  if (cp < 0x80) {
    o[0] = (unsigned char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (unsigned char)(0xc0 | cp >> 6);
    o[1] = (unsigned char)(0x80 | (cp & 0x3f));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (unsigned char)(0xe0 | cp >> 12);
    o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
    o[2] = (unsigned char)(0x80 | (cp & 0x3f));
    return 3;
  }
  o[0] = (unsigned char)(0xf0 | cp >> 18);
  o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
  o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
  o[3] = (unsigned char)(0x80 | (cp & 0x3f));
  return 4;
}

/* A string; decoded (escapes resolved) into a malloc'd *out when out is not
 * NULL. A decoded NUL is refused: names must be C strings. */
static int json_string(Json *j, char **out) {
  json_space(j);
  if (j->p >= j->end || *j->p != '"')
    return json_error(j, "expected a string");
  j->p++;
  /* decoding never grows the text: an escape is >= as long as its UTF-8 */
  const unsigned char *start = j->p;
  unsigned char *o = NULL;
  size_t n = 0;
  if (out) {
    const unsigned char *q = start;
    while (q < j->end && *q != '"')
      q += *q == '\\' && q + 1 < j->end ? 2 : 1;
    o = malloc((size_t)(q - start) + 1);
    if (!o)
      return mc_fail(j->e, MC_ERR_NOMEM, "out of memory");
  }
  for (;;) {
    if (j->p >= j->end) {
      free(o);
      return json_error(j, "unterminated string");
    }
    unsigned char c = *j->p;
    if (c == '"')
      break;
    if (c < 0x20) {
      free(o);
      return json_error(j, "control character in a string");
    }
    if (c != '\\') {
      size_t len = json_utf8_len(j->p, (size_t)(j->end - j->p));
      if (len == 0) {
        free(o);
        return json_error(j, "invalid UTF-8 in a string");
      }
      if (o)
        memcpy(o + n, j->p, len);
      n += len;
      j->p += len;
      continue;
    }
    j->p++;
    uint32_t cp = 0;
    unsigned char esc = j->p < j->end ? *j->p++ : 0;
    switch (esc) {
    case '"':
      cp = '"';
      break;
    case '\\':
      cp = '\\';
      break;
    case '/':
      cp = '/';
      break;
    case 'b':
      cp = '\b';
      break;
    case 'f':
      cp = '\f';
      break;
    case 'n':
      cp = '\n';
      break;
    case 'r':
      cp = '\r';
      break;
    case 't':
      cp = '\t';
      break;
    case 'u': {
      uint32_t lo = 0;
      int ok = json_hex4(j, &cp);
      if (ok && cp >= 0xd800 && cp <= 0xdbff) { /* needs a low surrogate */
        ok = j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u';
        if (ok) {
          j->p += 2;
          ok = json_hex4(j, &lo) && lo >= 0xdc00 && lo <= 0xdfff;
        }
      } else if (ok && cp >= 0xdc00 && cp <= 0xdfff)
        ok = 0;
      if (!ok) {
        free(o);
        return json_error(j, "bad \\u escape");
      }
      if (cp >= 0xd800 && cp <= 0xdbff)
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
      break;
    }
    default:
      free(o);
      return json_error(j, "bad escape in a string");
    }
    if (cp == 0 && o) {
      free(o);
      return json_error(j, "NUL character in a name");
    }
    if (o)
      json_put_utf8(o + n, cp);
    n += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  }
  j->p++;
  if (out) {
    o[n] = '\0';
    *out = (char *)o;
  }
  return MC_OK;
}

/* A number. *is_uint says whether it is written as a plain non-negative
 * integer that fits int64 (then *value holds it). */
static int json_number(Json *j, int64_t *value, int *is_uint) {
  json_space(j);
  int neg = 0, frac = 0, overflow = 0;
  int64_t v = 0;
  if (j->p < j->end && *j->p == '-') {
    neg = 1;
    j->p++;
  }
  if (j->p >= j->end || *j->p < '0' || *j->p > '9')
    return json_error(j, "bad number");
  if (*j->p == '0' && j->end - j->p > 1 && j->p[1] >= '0' && j->p[1] <= '9')
    return json_error(j, "number with a leading zero");
  while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
    int d = *j->p++ - '0';
    if (v > (INT64_MAX - d) / 10)
      overflow = 1;
    else
      v = v * 10 + d;
  }
  if (j->p < j->end && *j->p == '.') {
    frac = 1;
    j->p++;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9')
      return json_error(j, "bad number");
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
      j->p++;
  }
  if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
    frac = 1;
    j->p++;
    if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
      j->p++;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9')
      return json_error(j, "bad number");
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
      j->p++;
  }
  *is_uint = !neg && !frac && !overflow;
  *value = v;
  return MC_OK;
}

static int json_word(Json *j, const char *w) {
  size_t n = strlen(w);
  if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0)
    return json_error(j, "unexpected token");
  j->p += n;
  return MC_OK;
}

/* Skips any value, checking its syntax. */
static int json_skip(Json *j, int depth) {
  int64_t v;
  int is_uint, rc;
  if (depth > JSON_MAX_DEPTH)
    return json_error(j, "nesting too deep");
  json_space(j);
  if (j->p >= j->end)
    return json_error(j, "expected a value");
  switch (*j->p) {
  case '"':
    return json_string(j, NULL);
  case 't':
    return json_word(j, "true");
  case 'f':
    return json_word(j, "false");
  case 'n':
    return json_word(j, "null");
  case '[':
    j->p++;
    if (json_accept(j, ']'))
      return MC_OK;
    do
      if ((rc = json_skip(j, depth + 1)))
        return rc;
    while (json_accept(j, ','));
    return json_accept(j, ']') ? MC_OK : json_error(j, "expected , or ]");
  case '{':
    j->p++;
    if (json_accept(j, '}'))
      return MC_OK;
    do {
      if ((rc = json_string(j, NULL)))
        return rc;
      if (!json_accept(j, ':'))
        return json_error(j, "expected :");
      if ((rc = json_skip(j, depth + 1)))
        return rc;
    } while (json_accept(j, ','));
    return json_accept(j, '}') ? MC_OK : json_error(j, "expected , or }");
  default:
    return json_number(j, &v, &is_uint);
  }
}

/* An array of non-negative integers, at most `max` of them. */
static int json_uint_array(Json *j, int64_t *vals, int max, int *count,
                           const char *name, const char *field) {
  *count = 0;
  if (!json_accept(j, '['))
    return mc_fail(j->e, MC_ERR_FORMAT, "%s: tensor '%s': %s is not an array",
                   j->path, name, field);
  if (json_accept(j, ']'))
    return MC_OK;
  do {
    int64_t v;
    int is_uint, rc;
    if ((rc = json_number(j, &v, &is_uint)))
      return rc;
    if (!is_uint)
      return mc_fail(j->e, MC_ERR_FORMAT,
                     "%s: tensor '%s': %s must hold non-negative integers "
                     "(that fit in 64 bits)",
                     j->path, name, field);
    if (*count == max)
      return mc_fail(j->e, max == MC_MAX_RANK ? MC_ERR_SHAPE : MC_ERR_FORMAT,
                     "%s: tensor '%s': %s has more than %d "
                     "entries",
                     j->path, name, field, max);
    vals[(*count)++] = v;
  } while (json_accept(j, ','));
  return json_accept(j, ']') ? MC_OK : json_error(j, "expected , or ]");
}

/* ---- safetensors ------------------------------------------------------- */

static uint64_t st_load_le(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

/* 1 with *t set, 0 for a known dtype we do not support, -1 for unknown. */
static int st_dtype(const char *s, McDType *t) {
  static const struct {
    const char *name;
    McDType dtype;
  } ok[] = {{"F32", MC_F32},   {"F64", MC_F64}, {"F16", MC_F16},
            {"BF16", MC_BF16}, {"I32", MC_I32}, {"I64", MC_I64},
            {"BOOL", MC_BOOL}};
  static const char *const unsupported[] = {
      "U8", "I8", "I16", "U16", "U32", "U64", "F8_E4M3", "F8_E5M2", "C64"};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    if (strcmp(s, ok[i].name) == 0) {
      *t = ok[i].dtype;
      return 1;
    }
  for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
    if (strcmp(s, unsupported[i]) == 0)
      return 0;
  return -1;
}

/* {"dtype": ..., "shape": [...], "data_offsets": [b, e]}; other keys are
 * skipped. Fills t->dtype, rank, shape, nbytes and off. */
static int st_parse_entry(Json *j, const char *name, McStTensor *t,
                          int64_t off[2]) {
  char *dtype = NULL;
  int have_shape = 0, have_off = 0, noff = 0, rc = MC_OK;
  if (!json_accept(j, '{'))
    return mc_fail(j->e, MC_ERR_FORMAT,
                   "%s: tensor '%s': entry is not a JSON object", j->path,
                   name);
  if (!json_accept(j, '}')) {
    do {
      char *key;
      if ((rc = json_string(j, &key)))
        goto out;
      int is_dtype = !strcmp(key, "dtype"), is_shape = !strcmp(key, "shape"),
          is_off = !strcmp(key, "data_offsets");
      if (!json_accept(j, ':'))
        rc = json_error(j, "expected :");
      else if ((is_dtype && dtype) || (is_shape && have_shape) ||
               (is_off && have_off))
        rc = mc_fail(j->e, MC_ERR_FORMAT, "%s: tensor '%s': repeated key '%s'",
                     j->path, name, key);
      else if (is_dtype)
        rc = json_string(j, &dtype);
      else if (is_shape && ++have_shape)
        rc = json_uint_array(j, t->shape, MC_MAX_RANK, &t->rank, name, "shape");
      else if (is_off && ++have_off)
        rc = json_uint_array(j, off, 2, &noff, name, "data_offsets");
      else
        rc = json_skip(j, 2);
      free(key);
      if (rc)
        goto out;
    } while (json_accept(j, ','));
    if (!json_accept(j, '}')) {
      rc = json_error(j, "expected , or }");
      goto out;
    }
  }
  if (!dtype || !have_shape || !have_off) {
    rc = mc_fail(j->e, MC_ERR_FORMAT, "%s: tensor '%s' lacks %s", j->path, name,
                 !dtype        ? "a dtype"
                 : !have_shape ? "a shape"
                               : "data_offsets");
    goto out;
  }
  if (noff != 2) {
    rc = mc_fail(j->e, MC_ERR_FORMAT,
                 "%s: tensor '%s': data_offsets must be [begin, end]", j->path,
                 name);
    goto out;
  }
  int known = st_dtype(dtype, &t->dtype);
  if (known <= 0) {
    rc = mc_fail(j->e, known == 0 ? MC_ERR_DTYPE : MC_ERR_FORMAT,
                 "%s: tensor '%s': %s dtype '%s' (supported: F32 F64 F16 BF16 "
                 "I32 I64 BOOL)",
                 j->path, name, known == 0 ? "unsupported" : "unknown", dtype);
    goto out;
  }
  McTensor shape;
  shape.dtype = t->dtype;
  shape.rank = t->rank;
  memcpy(shape.shape, t->shape, sizeof shape.shape);
  if (mc_tensor_nbytes(&shape, &t->nbytes, NULL)) {
    char buf[256];
    rc = mc_fail(j->e, MC_ERR_SHAPE, "%s: tensor '%s': shape %s is too large",
                 j->path, name,
                 mc_shape_str(t->rank, t->shape, buf, sizeof buf));
  }
out:
  free(dtype);
  return rc;
}

typedef struct StSpan {
  uint64_t begin, end;
  const char *name;
} StSpan;

static int st_cmp_span(const void *a, const void *b) {
  const StSpan *x = a, *y = b;
  if (x->begin != y->begin)
    return x->begin < y->begin ? -1 : 1;
  return x->end < y->end ? -1 : x->end > y->end;
}

static int st_cmp_name(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* __metadata__: an object whose "format" string is kept (torch writes
 * "pt", mc_model_save "modelc:prepared:..."); other members are skipped. */
static int st_parse_metadata(Json *j, McSafetensors *st) {
  int rc;
  json_space(j);
  if (!json_accept(j, '{'))
    return json_error(j, "__metadata__ is not an object");
  if (json_accept(j, '}'))
    return MC_OK;
  do {
    char *key;
    if ((rc = json_string(j, &key)))
      return rc;
    if (!json_accept(j, ':')) {
      free(key);
      return json_error(j, "expected :");
    }
    json_space(j);
    int keep =
        !strcmp(key, "format") && !st->format && j->p < j->end && *j->p == '"';
    free(key);
    if ((rc = keep ? json_string(j, &st->format) : json_skip(j, 2)))
      return rc;
  } while (json_accept(j, ','));
  return json_accept(j, '}') ? MC_OK : json_error(j, "expected , or }");
}

static int st_parse_header(Json *j, McSafetensors *st, StSpan **spans) {
  int cap = 0, rc;
  json_space(j);
  if (!json_accept(j, '{'))
    return mc_fail(j->e, MC_ERR_FORMAT,
                   "%s: bad safetensors header: not a JSON object", j->path);
  if (json_accept(j, '}'))
    goto end;
  do {
    char *name;
    if ((rc = json_string(j, &name)))
      return rc;
    if (!json_accept(j, ':')) {
      free(name);
      return json_error(j, "expected :");
    }
    if (strcmp(name, "__metadata__") == 0) {
      free(name);
      if ((rc = st_parse_metadata(j, st)))
        return rc;
      continue;
    }
    if (st->count == cap) {
      int ncap = cap ? cap * 2 : 16;
      McStTensor *t = realloc(st->tensors, (size_t)ncap * sizeof *t);
      if (t)
        st->tensors = t;
      char **n = t ? realloc(st->names, (size_t)ncap * sizeof *n) : NULL;
      if (n)
        st->names = n;
      StSpan *s = n ? realloc(*spans, (size_t)ncap * sizeof *s) : NULL;
      if (!s) {
        free(name);
        return mc_fail(j->e, MC_ERR_NOMEM, "%s: out of memory", j->path);
      }
      *spans = s;
      cap = ncap;
    }
    McStTensor *t = &st->tensors[st->count];
    int64_t off[2] = {0, 0};
    memset(t, 0, sizeof *t);
    t->name = st->names[st->count] = name;
    st->count++;
    if ((rc = st_parse_entry(j, name, t, off)))
      return rc;
    (*spans)[st->count - 1] =
        (StSpan){(uint64_t)off[0], (uint64_t)off[1], name};
  } while (json_accept(j, ','));
  if (!json_accept(j, '}'))
    return json_error(j, "expected , or }");
end:
  json_space(j);
  return j->p == j->end ? MC_OK : json_error(j, "junk after the object");
}

/* Offsets within the data section, sizes matching shapes, unique names, no
 * overlap. */
static int st_validate(McSafetensors *st, StSpan *spans, const char *path,
                       const unsigned char *data, uint64_t data_size,
                       McError *e) {
  for (int i = 0; i < st->count; i++) {
    McStTensor *t = &st->tensors[i];
    StSpan s = spans[i];
    if (s.begin > s.end || s.end > data_size)
      return mc_fail(e, MC_ERR_FORMAT,
                     "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                     "] are outside the data section (%" PRIu64 " bytes)",
                     path, t->name, s.begin, s.end, data_size);
    if (s.end - s.begin != (uint64_t)t->nbytes) {
      char buf[256];
      return mc_fail(e, MC_ERR_FORMAT,
                     "%s: tensor '%s': data_offsets span %" PRIu64
                     " bytes but %s %s needs %zu",
                     path, t->name, s.end - s.begin, mc_dtype_name(t->dtype),
                     mc_shape_str(t->rank, t->shape, buf, sizeof buf),
                     t->nbytes);
    }
    t->data = data + s.begin;
  }
  if (st->count == 0)
    return MC_OK;
  qsort(st->names, (size_t)st->count, sizeof *st->names, st_cmp_name);
  for (int i = 1; i < st->count; i++)
    if (strcmp(st->names[i - 1], st->names[i]) == 0)
      return mc_fail(e, MC_ERR_FORMAT, "%s: tensor name '%s' appears twice",
                     path, st->names[i]);
  qsort(spans, (size_t)st->count, sizeof *spans, st_cmp_span);
  const StSpan *last = NULL; /* the non-empty span reaching furthest */
  for (int i = 0; i < st->count; i++) {
    if (spans[i].begin == spans[i].end)
      continue;
    if (last && spans[i].begin < last->end)
      return mc_fail(e, MC_ERR_FORMAT,
                     "%s: tensors '%s' and '%s' overlap in the data section",
                     path, last->name, spans[i].name);
    if (!last || spans[i].end > last->end)
      last = &spans[i];
  }
  return MC_OK;
}

int mc_st_open(const char *path, McSafetensors **out, McError *e) {
  struct stat sb;
  StSpan *spans = NULL;
  int rc;
  if (!path || !out)
    return mc_fail(e, MC_ERR_USAGE, "mc_st_open: NULL argument");
  *out = NULL;
  int fd = open(path, O_RDONLY);
  if (fd < 0)
    return mc_fail(e, MC_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    close(fd);
    return mc_fail(e, MC_ERR_IO, "%s: not a readable regular file", path);
  }
  uint64_t size = (uint64_t)sb.st_size;
  if (size < 8 || size > SIZE_MAX) {
    close(fd);
    return mc_fail(e, MC_ERR_FORMAT,
                   "%s: not a safetensors file (%" PRIu64 " bytes)", path,
                   size);
  }
  void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED)
    return mc_fail(e, MC_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
  McSafetensors *st = calloc(1, sizeof *st);
  if (!st) {
    munmap(map, (size_t)size);
    return mc_fail(e, MC_ERR_NOMEM, "out of memory");
  }
  st->map = map;
  st->map_size = (size_t)size;
  const unsigned char *base = map;
  uint64_t hlen = st_load_le(base, 8);
  if (hlen > size - 8) {
    rc = mc_fail(e, MC_ERR_FORMAT,
                 "%s: header length %" PRIu64
                 " runs past the end of the file (%" PRIu64 " bytes)",
                 path, hlen, size);
  } else {
    Json j = {base + 8, base + 8, base + 8 + hlen, path, e};
    rc = st_parse_header(&j, st, &spans);
    if (!rc)
      rc = st_validate(st, spans, path, base + 8 + hlen, size - 8 - hlen, e);
  }
  free(spans);
  if (rc) {
    mc_st_close(st);
    return rc;
  }
  *out = st;
  return MC_OK;
}

void mc_st_close(McSafetensors *st) {
  if (!st)
    return;
  for (int i = 0; i < st->count; i++)
    free(st->names[i]);
  free(st->names);
  free(st->tensors);
  free(st->format);
  if (st->map)
    munmap(st->map, st->map_size);
  free(st);
}

const char *mc_st_format(const McSafetensors *st) {
  return st ? st->format : NULL;
}

int mc_st_count(const McSafetensors *st) {
  return st ? st->count : 0;
}

const McStTensor *mc_st_get(const McSafetensors *st, int i) {
  return st && i >= 0 && i < st->count ? &st->tensors[i] : NULL;
}

/* The exact match (returns 1), else up to two "." + name suffix matches in
 * m[] (returns how many there are). */
static int st_match(const McSafetensors *st, const char *name,
                    const McStTensor *m[2]) {
  size_t n = strlen(name);
  int count = 0;
  for (int i = 0; i < st->count; i++)
    if (strcmp(st->tensors[i].name, name) == 0) {
      m[0] = &st->tensors[i];
      return 1;
    }
  for (int i = 0; i < st->count; i++) {
    const char *t = st->tensors[i].name;
    size_t l = strlen(t);
    if (l > n && t[l - n - 1] == '.' && memcmp(t + l - n, name, n) == 0) {
      if (count < 2)
        m[count] = &st->tensors[i];
      count++;
    }
  }
  return count;
}

const McStTensor *mc_st_find(const McSafetensors *st, const char *name,
                             int *ambiguous) {
  const McStTensor *m[2] = {NULL, NULL};
  if (ambiguous)
    *ambiguous = 0;
  if (!st || !name)
    return NULL;
  int count = st_match(st, name, m);
  if (count > 1 && ambiguous)
    *ambiguous = 1;
  return count == 1 ? m[0] : NULL;
}
