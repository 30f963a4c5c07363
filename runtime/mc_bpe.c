/* GPT-2's byte-level BPE at run time: the pre-tokenizer, the merges and
 * decoding (loading is mc_bpe_load.c; semantics in mc_bpe.h).
 *
 * Merging a pre-token is the reference algorithm (merge every occurrence of
 * the lowest-ranked adjacent pair, left to right, until no pair has a rank)
 * in O(n log n) instead of O(n^2): the symbols form a linked list, the
 * adjacent pairs that have a rank sit in a min-heap ordered by (rank,
 * position), and a round pops every entry of the lowest rank (all the same
 * pair, ranks being distinct) in position order before it pushes the pairs
 * its merges created. An entry whose symbols changed since it was pushed is
 * stale and dropped when popped.
 */
#include "mc_bpe_internal.h"

#include <stdlib.h>
#include <string.h>

#define NO_SYMBOL SIZE_MAX

/* ---- the pre-tokenizer -------------------------------------------------- */
/* The class of the character at s[i] (i < len) in *cls; returns its length.
 * A byte that does not start valid UTF-8 is a character of class OTHER. */
static size_t next_char(const unsigned char *s, size_t len, size_t i,
                        int *cls) {
  unsigned c = s[i];
  if (c < 0x80) {
    *cls = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ? MC_UCLASS_LETTER
           : c >= '0' && c <= '9'                           ? MC_UCLASS_NUMBER
           : c == ' ' || (c >= 0x09 && c <= 0x0D)           ? MC_UCLASS_SPACE
                                                            : MC_UCLASS_OTHER;
    return 1;
  }
  size_t n = c >= 0xC2 && c <= 0xDF   ? 2
             : c >= 0xE0 && c <= 0xEF ? 3
             : c >= 0xF0 && c <= 0xF4 ? 4
                                      : 0;
  uint32_t cp = c & (0x7F >> n);
  if (n == 0 || len - i < n) {
    *cls = MC_UCLASS_OTHER;
    return 1;
  }
  for (size_t k = 1; k < n; k++) {
    if ((s[i + k] & 0xC0) != 0x80) {
      *cls = MC_UCLASS_OTHER;
      return 1;
    }
    cp = cp << 6 | (s[i + k] & 0x3F);
  }
  static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    *cls = MC_UCLASS_OTHER;
    return 1;
  }
  *cls = mc_unicode_class(cp);
  return n;
}

/* The regex, alternative by alternative:
 *   's|'t|'re|'ve|'m|'ll|'d    contractions, lower case only
 *   ' ?\p{L}+' ' ?\p{N}+' ' ?[^\s\p{L}\p{N}]+'
 *                              a run of one class, with one U+0020 before it
 *   \s+(?!\S)                  white space up to the last character before
 *                              a non-space (or to the end of the text)
 *   \s+                        else all of it (one character) */
size_t mc_bpe_split(const char *text, size_t len, size_t start) {
  const unsigned char *s = (const unsigned char *)text;
  size_t i = start;
  if (i >= len)
    return len;
  if (s[i] == '\'' && len - i >= 2) {
    unsigned c1 = s[i + 1], c2 = len - i >= 3 ? s[i + 2] : 0;
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd')
      return i + 2;
    if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') ||
        (c1 == 'l' && c2 == 'l'))
      return i + 3;
  }
  int cls, cls2;
  size_t p = i + next_char(s, len, i, &cls);
  if (s[i] == ' ' && p < len) {
    size_t n2 = next_char(s, len, p, &cls2);
    if (cls2 != MC_UCLASS_SPACE) {
      cls = cls2;
      p += n2;
    }
  }
  if (cls != MC_UCLASS_SPACE) {
    while (p < len) {
      size_t n = next_char(s, len, p, &cls2);
      if (cls2 != cls)
        break;
      p += n;
    }
    return p;
  }
  size_t last = i; /* start of the last white space character */
  while (p < len) {
    size_t n = next_char(s, len, p, &cls2);
    if (cls2 != MC_UCLASS_SPACE)
      break;
    last = p;
    p += n;
  }
  return p == len || last == i ? p : last;
}

/* ---- merging ------------------------------------------------------------ */
typedef struct HeapEntry {
  uint32_t rank;
  int32_t left, right, result; /* the pair's ids when pushed, and its merge */
  size_t pos;                  /* the left symbol */
} HeapEntry;

/* Per-call scratch, grown for the longest pre-token. */
typedef struct Work {
  size_t cap;  /* symbols */
  int32_t *id; /* -1: merged into its left neighbour */
  size_t *next, *prev, *merged;
  HeapEntry *heap; /* 3 * cap: m-1 initial pairs + 2 per merge */
  size_t nheap;
} Work;

static int work_reserve(Work *w, size_t m) {
  if (m <= w->cap)
    return 1;
  if (m > SIZE_MAX / 3 / sizeof(HeapEntry))
    return 0;
  size_t cap = m < 64 ? 64 : m;
  int32_t *id = realloc(w->id, cap * sizeof *id);
  if (id)
    w->id = id;
  size_t *next = realloc(w->next, cap * sizeof *next);
  if (next)
    w->next = next;
  size_t *prev = realloc(w->prev, cap * sizeof *prev);
  if (prev)
    w->prev = prev;
  size_t *merged = realloc(w->merged, cap * sizeof *merged);
  if (merged)
    w->merged = merged;
  HeapEntry *heap = realloc(w->heap, 3 * cap * sizeof *heap);
  if (heap)
    w->heap = heap;
  if (!id || !next || !prev || !merged || !heap)
    return 0;
  w->cap = cap;
  return 1;
}

static void work_free(Work *w) {
  free(w->id);
  free(w->next);
  free(w->prev);
  free(w->merged);
  free(w->heap);
}

static int heap_less(const HeapEntry *a, const HeapEntry *b) {
  return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(Work *w, HeapEntry x) {
  size_t i = w->nheap++;
  while (i > 0 && heap_less(&x, &w->heap[(i - 1) / 2])) {
    w->heap[i] = w->heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  w->heap[i] = x;
}

static HeapEntry heap_pop(Work *w) {
  HeapEntry top = w->heap[0], x = w->heap[--w->nheap];
  size_t i = 0, n = w->nheap;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n)
      break;
    if (c + 1 < n && heap_less(&w->heap[c + 1], &w->heap[c]))
      c++;
    if (!heap_less(&w->heap[c], &x))
      break;
    w->heap[i] = w->heap[c];
    i = c;
  }
  w->heap[i] = x;
  return top;
}

/* Pushes the pair at symbol p and its right neighbour if it has a rank. */
static void push_pair(const McBpe *bpe, Work *w, size_t p) {
  size_t q = w->next[p];
  if (q == NO_SYMBOL)
    return;
  int32_t a = w->id[p], b = w->id[q];
  const McBpeMerge *m = mc_bpe_merge_slot(bpe, (uint64_t)a << 32 | (uint32_t)b);
  if (m->pair != MC_BPE_EMPTY_PAIR)
    heap_push(w, (HeapEntry){m->rank, a, b, m->result, p});
}

/* Merges the entry's pair if its symbols are still what they were. */
static int apply(Work *w, const HeapEntry *x) {
  size_t p = x->pos, q = w->next[p];
  if (w->id[p] != x->left || q == NO_SYMBOL || w->id[q] != x->right)
    return 0;
  w->id[p] = x->result;
  w->id[q] = -1;
  w->next[p] = w->next[q];
  if (w->next[q] != NO_SYMBOL)
    w->prev[w->next[q]] = p;
  return 1;
}

/* Appends the ids of the pre-token s[0..m) (m >= 1) to out. */
static int encode_piece(const McBpe *bpe, Work *w, const unsigned char *s,
                        size_t m, int32_t *out, size_t *nout) {
  if (m == 1) {
    out[(*nout)++] = bpe->byte_id[s[0]];
    return 1;
  }
  if (!work_reserve(w, m))
    return 0;
  for (size_t p = 0; p < m; p++) {
    w->id[p] = bpe->byte_id[s[p]];
    w->prev[p] = p == 0 ? NO_SYMBOL : p - 1;
    w->next[p] = p + 1 == m ? NO_SYMBOL : p + 1;
  }
  w->nheap = 0;
  for (size_t p = 0; p + 1 < m; p++)
    push_pair(bpe, w, p);
  while (w->nheap > 0) {
    HeapEntry x = heap_pop(w);
    if (!apply(w, &x))
      continue;
    size_t nmerged = 0;
    w->merged[nmerged++] = x.pos;
    while (w->nheap > 0 && w->heap[0].rank == x.rank) {
      HeapEntry y = heap_pop(w);
      if (apply(w, &y))
        w->merged[nmerged++] = y.pos;
    }
    /* A merged symbol is never consumed in its own round: its new id is
     * longer than either half of the round's pair. */
    for (size_t k = 0; k < nmerged; k++) {
      size_t p = w->merged[k];
      if (w->prev[p] != NO_SYMBOL)
        push_pair(bpe, w, w->prev[p]);
      push_pair(bpe, w, p);
    }
  }
  for (size_t p = 0; p != NO_SYMBOL; p = w->next[p])
    out[(*nout)++] = w->id[p];
  return 1;
}

int mc_bpe_encode(const McBpe *bpe, const char *text, size_t len, int32_t **ids,
                  size_t *n, McError *e) {
  *ids = NULL;
  *n = 0;
  /* Every token is at least one byte: len ids are enough. */
  if (len > SIZE_MAX / sizeof **ids)
    return mc_fail(e, MC_ERR_NOMEM, "text too long (%zu bytes)", len);
  int32_t *out = malloc((len ? len : 1) * sizeof *out);
  if (!out)
    return mc_fail(e, MC_ERR_NOMEM, "out of memory encoding %zu bytes", len);
  Work w = {0};
  size_t nout = 0;
  for (size_t i = 0; i < len;) {
    size_t j = mc_bpe_split(text, len, i);
    if (!encode_piece(bpe, &w, (const unsigned char *)text + i, j - i, out,
                      &nout)) {
      work_free(&w);
      free(out);
      return mc_fail(e, MC_ERR_NOMEM,
                     "out of memory encoding a %zu-byte pre-token", j - i);
    }
    i = j;
  }
  work_free(&w);
  int32_t *shrunk = realloc(out, (nout ? nout : 1) * sizeof *out);
  *ids = shrunk ? shrunk : out;
  *n = nout;
  return MC_OK;
}

/* ---- decoding ----------------------------------------------------------- */
int mc_bpe_decode(const McBpe *bpe, const int32_t *ids, size_t n, char **text,
                  size_t *len, McError *e) {
  *text = NULL;
  *len = 0;
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    if (ids[i] < 0 || ids[i] >= bpe->ntokens)
      return mc_fail(e, MC_ERR_RANGE,
                     "token id %ld at index %zu is outside [0, %ld)",
                     (long)ids[i], i, (long)bpe->ntokens);
    if (bpe->tok_len[ids[i]] > SIZE_MAX - 1 - total)
      return mc_fail(e, MC_ERR_NOMEM, "decoded text too long");
    total += bpe->tok_len[ids[i]];
  }
  char *out = malloc(total + 1);
  if (!out)
    return mc_fail(e, MC_ERR_NOMEM, "out of memory decoding %zu bytes", total);
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    memcpy(out + o, bpe->pool + bpe->tok_off[ids[i]], bpe->tok_len[ids[i]]);
    o += bpe->tok_len[ids[i]];
  }
  out[o] = 0;
  *text = out;
  *len = o;
  return MC_OK;
}

void mc_bpe_free(McBpe *bpe) {
  if (!bpe)
    return;
  free(bpe->tok_off);
  free(bpe->tok_len);
  free(bpe->pool);
  free(bpe->merges);
  free(bpe);
}

int32_t mc_bpe_vocab_size(const McBpe *bpe) {
  return bpe->ntokens;
}
