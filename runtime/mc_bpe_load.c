/* Loading GPT-2's BPE files strictly: encoder.json (a JSON object of token
 * -> id, read by a small JSON reader that knows only that shape) and
 * vocab.bpe (the ranked merges). Every token is mapped back through
 * bytes_to_unicode to the raw bytes it stands for, and every merge to the
 * ids of its halves and of its result (see mc_bpe_internal.h).
 *
 * Nothing in either file is trusted: each character, escape, id and line is
 * checked before use, and a failure names the file, line and column.
 */
#include "mc_bpe_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t hash_bytes(const unsigned char *s, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
  for (size_t i = 0; i < n; i++)
    h = (h ^ s[i]) * 0x100000001b3ULL;
  return mc_bpe_hash(h);
}

/* The smallest power of two >= 2n (and >= 16), or 0 on overflow. */
static size_t table_capacity(size_t n) {
  size_t cap = 16;
  while (cap / 2 < n) {
    if (cap > SIZE_MAX / 4)
      return 0;
    cap *= 2;
  }
  return cap;
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves,
 * the other 68 for U+0100.. in byte order. byte_of[cp] inverts it for
 * cp < ALPHABET_END (-1: not a character of the alphabet). */
#define ALPHABET_END 0x144
static int is_printable_byte(unsigned b) {
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
}

static void byte_alphabet(uint32_t char_of[256], int byte_of[ALPHABET_END]) {
  uint32_t extra = 0x100;
  for (int i = 0; i < ALPHABET_END; i++)
    byte_of[i] = -1;
  for (unsigned b = 0; b < 256; b++) {
    char_of[b] = is_printable_byte(b) ? b : extra++;
    byte_of[char_of[b]] = (int)b;
  }
}

/* One strict UTF-8 code point at s[i] (i < len): its length, or 0 when the
 * bytes there are not valid UTF-8 (bad lead or continuation, overlong form,
 * surrogate, above U+10FFFF, cut short). */
static size_t utf8_decode(const unsigned char *s, size_t len, size_t i,
                          uint32_t *cp) {
  unsigned c = s[i];
  size_t n;
  uint32_t v, min;
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  if (c >= 0xC2 && c <= 0xDF)
    n = 2, v = c & 0x1F, min = 0x80;
  else if (c >= 0xE0 && c <= 0xEF)
    n = 3, v = c & 0x0F, min = 0x800;
  else if (c >= 0xF0 && c <= 0xF4)
    n = 4, v = c & 0x07, min = 0x10000;
  else
    return 0;
  if (len - i < n)
    return 0;
  for (size_t k = 1; k < n; k++) {
    if ((s[i + k] & 0xC0) != 0x80)
      return 0;
    v = v << 6 | (s[i + k] & 0x3F);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
    return 0;
  *cp = v;
  return n;
}

/* A growable byte buffer. */
typedef struct Bytes {
  unsigned char *p;
  size_t n, cap;
} Bytes;

static int bytes_push(Bytes *b, unsigned char c) {
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 256;
    unsigned char *p = cap > b->cap ? realloc(b->p, cap) : NULL;
    if (!p)
      return 0;
    b->p = p;
    b->cap = cap;
  }
  b->p[b->n++] = c;
  return 1;
}

/* "text" for messages: printable ASCII as is, other bytes as \xNN, cut. */
static const char *quote(char buf[80], const unsigned char *s, size_t n) {
  size_t o = 0;
  for (size_t i = 0; i < n && o < 60; i++) {
    if (s[i] >= 0x20 && s[i] < 0x7F && s[i] != '\\')
      buf[o++] = (char)s[i];
    else
      o += (size_t)snprintf(buf + o, 80 - o, "\\x%02X", s[i]);
  }
  if (o >= 60)
    o += (size_t)snprintf(buf + o, 80 - o, "...");
  buf[o] = 0;
  return buf;
}

/* ---- reading the files -------------------------------------------------- */
typedef struct Src {
  const char *path;
  unsigned char *s;
  size_t len;
} Src;

/* Fails with MC_ERR_FORMAT as "PATH:LINE:COL: message" for offset at. */
static int src_fail(McError *e, const Src *src, size_t at, const char *fmt, ...)
    MC_PRINTF_LIKE(4, 5);
static int src_fail(McError *e, const Src *src, size_t at, const char *fmt,
                    ...) {
  size_t line = 1, col = 1;
  for (size_t i = 0; i < at && i < src->len; i++, col++)
    if (src->s[i] == '\n')
      line++, col = 0;
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return mc_fail(e, MC_ERR_FORMAT, "%s:%zu:%zu: %s", src->path, line, col, msg);
}

static int read_file(const char *path, Src *src, McError *e) {
  src->path = path;
  src->s = NULL;
  src->len = 0;
  FILE *f = fopen(path, "rb");
  if (!f)
    return mc_fail(e, MC_ERR_IO, "cannot open '%s'", path);
  Bytes b = {0};
  int rc = MC_OK;
  for (;;) {
    if (b.n == b.cap) {
      size_t cap = b.cap ? b.cap * 2 : 65536;
      unsigned char *p = realloc(b.p, cap);
      if (!p) {
        rc = mc_fail(e, MC_ERR_NOMEM, "out of memory reading '%s'", path);
        break;
      }
      b.p = p;
      b.cap = cap;
    }
    size_t got = fread(b.p + b.n, 1, b.cap - b.n, f);
    b.n += got;
    if (b.n > MC_BPE_MAX_FILE) {
      rc = mc_fail(e, MC_ERR_FORMAT, "'%s' is larger than %zu MiB", path,
                   MC_BPE_MAX_FILE >> 20);
      break;
    }
    if (got == 0) {
      if (ferror(f))
        rc = mc_fail(e, MC_ERR_IO, "cannot read '%s'", path);
      break;
    }
  }
  fclose(f);
  if (rc != MC_OK) {
    free(b.p);
    return rc;
  }
  src->s = b.p;
  src->len = b.n;
  return MC_OK;
}

/* ---- the token table (load time) ---------------------------------------- */
/* Appends the byte that alphabet character cp stands for. */
static int push_char(const Src *src, size_t at, uint32_t cp,
                     const int byte_of[ALPHABET_END], Bytes *out, McError *e) {
  if (cp >= ALPHABET_END || byte_of[cp] < 0)
    return src_fail(e, src, at,
                    "character U+%04X is not in GPT-2's byte alphabet",
                    (unsigned)cp);
  if (!bytes_push(out, (unsigned char)byte_of[cp]))
    return mc_fail(e, MC_ERR_NOMEM, "out of memory");
  return MC_OK;
}

/* Maps the UTF-8 characters of src[from..to) to bytes. */
static int map_token(const Src *src, size_t from, size_t to,
                     const int byte_of[ALPHABET_END], Bytes *out, McError *e) {
  for (size_t i = from; i < to;) {
    uint32_t cp;
    size_t n = utf8_decode(src->s, to, i, &cp);
    if (n == 0)
      return src_fail(e, src, i, "invalid UTF-8");
    int rc = push_char(src, i, cp, byte_of, out, e);
    if (rc != MC_OK)
      return rc;
    i += n;
  }
  return MC_OK;
}

/* Token bytes -> id, by open addressing over ids (-1 empty). */
typedef struct TokenIndex {
  const McBpe *bpe;
  int32_t *slot;
  size_t mask;
} TokenIndex;

static int32_t *index_slot(const TokenIndex *ix, const unsigned char *s,
                           size_t n) {
  for (size_t h = hash_bytes(s, n) & ix->mask;; h = (h + 1) & ix->mask) {
    int32_t id = ix->slot[h];
    if (id < 0 || (ix->bpe->tok_len[id] == n &&
                   memcmp(ix->bpe->pool + ix->bpe->tok_off[id], s, n) == 0))
      return &ix->slot[h];
  }
}

/* ---- encoder.json ------------------------------------------------------- */
typedef struct Entry {
  size_t off, at; /* bytes in the pool; offset of the key in the file */
  uint32_t len;
  int32_t id;
} Entry;

static size_t json_ws(const Src *src, size_t i) {
  while (i < src->len && (src->s[i] == ' ' || src->s[i] == '\t' ||
                          src->s[i] == '\n' || src->s[i] == '\r'))
    i++;
  return i;
}

static int hex4(const Src *src, size_t i, uint32_t *v) {
  *v = 0;
  if (src->len - i < 4)
    return 0;
  for (size_t k = 0; k < 4; k++) {
    unsigned c = src->s[i + k];
    unsigned d = c >= '0' && c <= '9'   ? c - '0'
                 : c >= 'a' && c <= 'f' ? c - 'a' + 10
                 : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                        : 16;
    if (d == 16)
      return 0;
    *v = *v << 4 | d;
  }
  return 1;
}

static const char json_escapes[] = "\"\\/bfnrt";

/* The JSON string at src[*i] == '"', its characters mapped to bytes. */
static int json_string(const Src *src, size_t *i,
                       const int byte_of[ALPHABET_END], Bytes *out,
                       McError *e) {
  size_t p = *i + 1;
  for (;;) {
    if (p >= src->len)
      return src_fail(e, src, *i, "unterminated string");
    unsigned c = src->s[p];
    uint32_t cp;
    size_t at = p;
    if (c == '"')
      break;
    if (c < 0x20)
      return src_fail(e, src, p, "control character 0x%02X in a string", c);
    if (c == '\\') {
      if (p + 1 >= src->len)
        return src_fail(e, src, *i, "unterminated string");
      const char *simple = strchr(json_escapes, src->s[p + 1]);
      if (simple && src->s[p + 1]) {
        cp = (uint32_t) "\"\\/\b\f\n\r\t"[simple - json_escapes];
        p += 2;
      } else if (src->s[p + 1] == 'u') {
        if (!hex4(src, p + 2, &cp))
          return src_fail(e, src, p,
                          src->len - p < 6 ? "truncated: unterminated string"
                                           : "bad \\u escape");
        p += 6;
        if (cp >= 0xDC00 && cp <= 0xDFFF)
          return src_fail(e, src, at, "lone low surrogate \\u%04X",
                          (unsigned)cp);
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          uint32_t lo;
          if (src->len - p < 2 || src->s[p] != '\\' || src->s[p + 1] != 'u' ||
              !hex4(src, p + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
            return src_fail(e, src, at, "lone high surrogate \\u%04X",
                            (unsigned)cp);
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          p += 6;
        }
      } else {
        return src_fail(e, src, p, "bad escape '\\%c'",
                        src->s[p + 1] >= 0x20 && src->s[p + 1] < 0x7F
                            ? src->s[p + 1]
                            : '?');
      }
    } else {
      size_t n = utf8_decode(src->s, src->len, p, &cp);
      if (n == 0)
        return src_fail(e, src, p, "invalid UTF-8");
      p += n;
    }
    int rc = push_char(src, at, cp, byte_of, out, e);
    if (rc != MC_OK)
      return rc;
  }
  *i = p + 1;
  return MC_OK;
}

/* A non-negative JSON integer that fits int32_t. */
static int json_id(const Src *src, size_t *i, int32_t *id, McError *e) {
  size_t p = *i;
  if (p < src->len && src->s[p] == '-')
    return src_fail(e, src, p, "negative token id");
  if (p >= src->len || src->s[p] < '0' || src->s[p] > '9')
    return src_fail(e, src, p, "expected a token id");
  if (src->s[p] == '0' && p + 1 < src->len && src->s[p + 1] >= '0' &&
      src->s[p + 1] <= '9')
    return src_fail(e, src, p, "token id with a leading zero");
  int64_t v = 0;
  for (; p < src->len && src->s[p] >= '0' && src->s[p] <= '9'; p++) {
    v = v * 10 + (src->s[p] - '0');
    if (v > INT32_MAX)
      return src_fail(e, src, *i, "token id too large");
  }
  if (p < src->len &&
      (src->s[p] == '.' || src->s[p] == 'e' || src->s[p] == 'E'))
    return src_fail(e, src, *i, "token id is not an integer");
  *id = (int32_t)v;
  *i = p;
  return MC_OK;
}

/* {"token": id, ...} into entries and their bytes into pool. */
static int parse_encoder(const Src *src, const int byte_of[ALPHABET_END],
                         Bytes *pool, Entry **entries, size_t *count,
                         McError *e) {
  size_t cap = 0, n = 0, i = json_ws(src, 0);
  Entry *v = NULL;
  int rc = MC_OK;
  *entries = NULL;
  *count = 0;
  if (i >= src->len || src->s[i] != '{')
    return src_fail(e, src, i, "expected '{' (a JSON object of token ids)");
  i = json_ws(src, i + 1);
  if (i < src->len && src->s[i] == '}')
    return src_fail(e, src, i, "no tokens");
  for (;;) {
    if (i >= src->len || src->s[i] != '"') {
      rc = src_fail(e, src, i,
                    i >= src->len ? "truncated: expected a token"
                                  : "expected a string key");
      break;
    }
    if (n == cap) {
      cap = cap ? cap * 2 : 1024;
      Entry *w =
          cap <= SIZE_MAX / sizeof *w ? realloc(v, cap * sizeof *w) : NULL;
      if (!w) {
        rc = mc_fail(e, MC_ERR_NOMEM, "out of memory reading '%s'", src->path);
        break;
      }
      v = w;
    }
    Entry *en = &v[n];
    en->at = i;
    en->off = pool->n;
    if ((rc = json_string(src, &i, byte_of, pool, e)) != MC_OK)
      break;
    if (pool->n == en->off) {
      rc = src_fail(e, src, en->at, "empty token");
      break;
    }
    if (pool->n - en->off > UINT32_MAX) {
      rc = src_fail(e, src, en->at, "token too long");
      break;
    }
    en->len = (uint32_t)(pool->n - en->off);
    i = json_ws(src, i);
    if (i >= src->len || src->s[i] != ':') {
      rc = src_fail(e, src, i, "expected ':'");
      break;
    }
    i = json_ws(src, i + 1);
    if ((rc = json_id(src, &i, &en->id, e)) != MC_OK)
      break;
    n++;
    i = json_ws(src, i);
    if (i < src->len && src->s[i] == ',') {
      i = json_ws(src, i + 1);
      continue;
    }
    if (i < src->len && src->s[i] == '}') {
      i = json_ws(src, i + 1);
      if (i < src->len)
        rc = src_fail(e, src, i, "unexpected data after the object");
      break;
    }
    rc = src_fail(e, src, i,
                  i >= src->len ? "truncated: expected ',' or '}'"
                                : "expected ',' or '}'");
    break;
  }
  if (rc != MC_OK) {
    free(v);
    return rc;
  }
  *entries = v;
  *count = n;
  return MC_OK;
}

/* Fills the token table from the entries: ids exactly 0..n-1, distinct
 * tokens, a token per byte. Builds ix (the caller frees ix->slot). */
static int build_tokens(McBpe *bpe, const Src *src, const Entry *v, size_t n,
                        const uint32_t char_of[256], TokenIndex *ix,
                        McError *e) {
  if (n > (size_t)INT32_MAX)
    return src_fail(e, src, 0, "too many tokens (%zu)", n);
  size_t cap = table_capacity(n);
  bpe->ntokens = (int32_t)n;
  bpe->tok_off = malloc(n * sizeof *bpe->tok_off);
  bpe->tok_len = malloc(n * sizeof *bpe->tok_len);
  ix->bpe = bpe;
  ix->slot = cap && cap <= SIZE_MAX / sizeof *ix->slot
                 ? malloc(cap * sizeof *ix->slot)
                 : NULL;
  ix->mask = cap - 1;
  if (!bpe->tok_off || !bpe->tok_len || !ix->slot)
    return mc_fail(e, MC_ERR_NOMEM, "out of memory for %zu tokens", n);
  for (size_t k = 0; k < n; k++)
    bpe->tok_len[k] = UINT32_MAX; /* id not seen yet */
  for (size_t k = 0; k <= ix->mask; k++)
    ix->slot[k] = -1;
  char q[80];
  for (size_t k = 0; k < n; k++) {
    int32_t id = v[k].id;
    if ((size_t)id >= n)
      return src_fail(e, src, v[k].at,
                      "token id %d is not below the token count %zu (ids "
                      "must be 0..N-1)",
                      (int)id, n);
    if (bpe->tok_len[id] != UINT32_MAX)
      return src_fail(e, src, v[k].at, "token id %d is given twice", (int)id);
    bpe->tok_off[id] = v[k].off;
    bpe->tok_len[id] = v[k].len;
    int32_t *slot = index_slot(ix, bpe->pool + v[k].off, v[k].len);
    if (*slot >= 0)
      return src_fail(e, src, v[k].at, "token \"%s\" is given twice",
                      quote(q, bpe->pool + v[k].off, v[k].len));
    *slot = id;
  }
  for (unsigned b = 0; b < 256; b++) {
    unsigned char c = (unsigned char)b;
    int32_t id = *index_slot(ix, &c, 1);
    if (id < 0)
      return mc_fail(e, MC_ERR_FORMAT,
                     "%s: no token for byte 0x%02X (character U+%04X)",
                     src->path, b, (unsigned)char_of[b]);
    bpe->byte_id[b] = id;
  }
  return MC_OK;
}

/* ---- vocab.bpe ---------------------------------------------------------- */
/* The id of the token src[from..to), found through ix. */
static int lookup_token(const Src *src, size_t from, size_t to,
                        const int byte_of[ALPHABET_END], const TokenIndex *ix,
                        Bytes *scratch, int32_t *id, McError *e) {
  scratch->n = 0;
  int rc = map_token(src, from, to, byte_of, scratch, e);
  if (rc != MC_OK)
    return rc;
  *id = *index_slot(ix, scratch->p, scratch->n);
  if (*id < 0)
    return src_fail(e, src, from, "token \"%.*s\" is not in encoder.json",
                    (int)(to - from < 60 ? to - from : 60),
                    (const char *)src->s + from);
  return MC_OK;
}

static int parse_vocab(McBpe *bpe, const Src *src,
                       const int byte_of[ALPHABET_END], const TokenIndex *ix,
                       McError *e) {
  const unsigned char *s = src->s;
  size_t nlines = 0;
  for (const unsigned char *p = s;
       (p = memchr(p, '\n', src->len - (size_t)(p - s))); p++)
    nlines++;
  size_t cap = table_capacity(nlines);
  bpe->merges = cap && cap <= SIZE_MAX / sizeof *bpe->merges
                    ? malloc(cap * sizeof *bpe->merges)
                    : NULL;
  if (!bpe->merges)
    return mc_fail(e, MC_ERR_NOMEM, "out of memory for %zu merges", nlines);
  bpe->merge_mask = cap - 1;
  for (size_t k = 0; k < cap; k++)
    bpe->merges[k].pair = MC_BPE_EMPTY_PAIR;
  if (src->len < 8 || memcmp(s, "#version", 8) != 0)
    return src_fail(e, src, 0, "expected a \"#version\" first line");
  const unsigned char *nl = memchr(s, '\n', src->len);
  if (!nl)
    return src_fail(e, src, src->len, "truncated: the last line has no end");
  Bytes scratch = {0};
  int rc = MC_OK;
  uint32_t rank = 0;
  for (size_t pos = (size_t)(nl - s) + 1; pos < src->len; rank++) {
    nl = memchr(s + pos, '\n', src->len - pos);
    if (!nl) {
      rc = src_fail(e, src, src->len, "truncated: the last line has no end");
      break;
    }
    size_t end = (size_t)(nl - s), next = end + 1;
    if (end > pos && s[end - 1] == '\r')
      end--;
    const unsigned char *sp = memchr(s + pos, ' ', end - pos);
    if (!sp || sp == s + pos || sp + 1 == s + end ||
        memchr(sp + 1, ' ', (size_t)(s + end - sp - 1))) {
      rc = src_fail(e, src, pos, "expected two tokens separated by one space");
      break;
    }
    size_t mid = (size_t)(sp - s);
    int32_t a, b, r;
    if ((rc = lookup_token(src, pos, mid, byte_of, ix, &scratch, &a, e)) ||
        (rc = lookup_token(src, mid + 1, end, byte_of, ix, &scratch, &b, e)))
      break;
    /* The merged token: both halves' bytes, already validated. */
    scratch.n = 0;
    int32_t halves[2] = {a, b};
    for (int h = 0; h < 2 && rc == MC_OK; h++)
      for (uint32_t k = 0; k < bpe->tok_len[halves[h]] && rc == MC_OK; k++)
        if (!bytes_push(&scratch, bpe->pool[bpe->tok_off[halves[h]] + k]))
          rc = mc_fail(e, MC_ERR_NOMEM, "out of memory");
    if (rc != MC_OK)
      break;
    r = *index_slot(ix, scratch.p, scratch.n);
    if (r < 0) {
      rc = src_fail(e, src, pos, "the merge of \"%.*s\" is not in encoder.json",
                    (int)(end - pos < 60 ? end - pos : 60),
                    (const char *)s + pos);
      break;
    }
    McBpeMerge *m = mc_bpe_merge_slot(bpe, (uint64_t)a << 32 | (uint32_t)b);
    if (m->pair != MC_BPE_EMPTY_PAIR) {
      rc = src_fail(e, src, pos, "the pair \"%.*s\" is already on line %lu",
                    (int)(end - pos < 60 ? end - pos : 60),
                    (const char *)s + pos, (unsigned long)m->rank + 2);
      break;
    }
    m->pair = (uint64_t)a << 32 | (uint32_t)b;
    m->rank = rank;
    m->result = r;
    pos = next;
  }
  free(scratch.p);
  return rc;
}

/* ---- loading ------------------------------------------------------------ */
int mc_bpe_load(const char *encoder_json, const char *vocab_bpe, McBpe **out,
                McError *e) {
  *out = NULL;
  uint32_t char_of[256];
  int byte_of[ALPHABET_END];
  byte_alphabet(char_of, byte_of);
  McBpe *bpe = calloc(1, sizeof *bpe);
  if (!bpe)
    return mc_fail(e, MC_ERR_NOMEM, "out of memory");
  Src enc = {0}, voc = {0};
  Bytes pool = {0};
  Entry *entries = NULL;
  size_t n = 0;
  TokenIndex ix = {0};
  int rc = read_file(encoder_json, &enc, e);
  if (rc == MC_OK)
    rc = parse_encoder(&enc, byte_of, &pool, &entries, &n, e);
  bpe->pool = pool.p;
  if (rc == MC_OK)
    rc = build_tokens(bpe, &enc, entries, n, char_of, &ix, e);
  if (rc == MC_OK)
    rc = read_file(vocab_bpe, &voc, e);
  if (rc == MC_OK)
    rc = parse_vocab(bpe, &voc, byte_of, &ix, e);
  free(ix.slot);
  free(entries);
  free(enc.s);
  free(voc.s);
  if (rc != MC_OK) {
    mc_bpe_free(bpe);
    return rc;
  }
  *out = bpe;
  return MC_OK;
}
