/* Kernels of decoding: top-k selection, the counter-based random number
 * generator and sampling by inverse CDF.
 *
 * The random numbers are defined exactly, so that any implementation (the
 * tests reimplement it in Python) gives the same bits on every build:
 *
 *   GOLDEN = 0x9E3779B97F4A7C15, all arithmetic modulo 2^64
 *   mix(z):  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
 *            z = (z ^ (z >> 27)) * 0x94D049BB133111EB
 *            return z ^ (z >> 31)                     (SplitMix64's finalizer)
 *   a draw of n numbers from state s (an i64 read as unsigned):
 *            key = mix(s)
 *            z_i = mix(key + (i + 1) * GOLDEN)          for i = 0 .. n-1
 *            f32: u_i = (z_i >> 40) * 2^-24    f64: u_i = (z_i >> 11) * 2^-53
 *   the next state is s + GOLDEN (the language's uniform() adds it).
 * So the keys of successive draws are SplitMix64's outputs for seed s, and
 * each draw is a SplitMix64 stream seeded by its key. Every u is in [0, 1),
 * a multiple of 2^-24 (2^-53), computed with integer operations and one
 * exact conversion: no rounding mode or optimization level can change it.
 *
 * Invariants: no global state; the only memory is topk's, the calling
 * thread's mc_thread_scratch (cached, so decoding allocates once), and
 * without it topk still gives the same result, more slowly.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "mc_runtime.h"

#include <string.h>

#define MC_GOLDEN UINT64_C(0x9E3779B97F4A7C15)

uint64_t mc_splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

void mc_random_uniform_f32(int64_t state, float *y, int64_t n) {
  uint64_t key = mc_splitmix64_mix((uint64_t)state);
  for (int64_t i = 0; i < n; i++) {
    uint64_t z = mc_splitmix64_mix(key + (uint64_t)(i + 1) * MC_GOLDEN);
    y[i] = (float)(z >> 40) * 0x1p-24f;
  }
}

void mc_random_uniform_f64(int64_t state, double *y, int64_t n) {
  uint64_t key = mc_splitmix64_mix((uint64_t)state);
  for (int64_t i = 0; i < n; i++) {
    uint64_t z = mc_splitmix64_mix(key + (uint64_t)(i + 1) * MC_GOLDEN);
    y[i] = (double)(z >> 11) * 0x1p-53;
  }
}

/* ---- top-k --------------------------------------------------------------
 * Each element gets an unsigned key whose ascending order is the required
 * order: NaN (every NaN alike) is key 0, then descending values, -0 equal
 * to +0; ties go to the lower index. f32 and i32 have 32-bit keys, f64 and
 * i64 64-bit keys (an i64 is keyed by its value as a double, the order the
 * op has always had: beyond 2^53 it compares by its rounded value). Per row:
 *  - k > n/2: a stable LSD radix sort (11-bit digits, a digit that is the
 *    same in every key skipped) of (key, index) items made in index order,
 *    so equal keys stay by index: O(n) per digit;
 *  - 16 < k <= n/2: radix selection: two passes over the row count the
 *    top digits, then take the keys of the buckets below the one that
 *    holds the k-th key and keep that bucket's as candidates; the next
 *    digit splits the candidates alike, ...; a last tie is cut by index.
 *    Then a stable sort of the k. O(n) + O(candidates) per further digit;
 *  - k <= 16, n <= 64, or no scratch memory: a heap of k indices in the
 *    output row, worst at the root, then heap-sorted: O(n log k).
 * The items and histograms live in the thread's mc_thread_scratch (kept
 * between calls, so decoding allocates once); all paths give the same
 * indices, the first k of the sorted (key, index) pairs. */
#define TOPK_DIGIT_BITS 11
#define TOPK_RADIX (1 << TOPK_DIGIT_BITS)
#define TOPK_HEAP_MAX_K 16
#define TOPK_HEAP_MAX_N 64
#define TOPK_INSERTION_MAX 32

/* Branch-free (signs of logits do not predict): a non-negative value u
 * becomes ~u without its sign bit, a negative one u - 1, so that -0 meets
 * +0 at 0x7FFFFFFF and -inf is the largest; then NaN becomes 0. */
static uint32_t topk_key_f32(float v) {
  uint32_t u;
  memcpy(&u, &v, sizeof u);
  uint32_t negative = u >> 31;
  uint32_t key = (u ^ ((negative - 1) & 0x7FFFFFFFu)) - negative;
  uint32_t nan = (u & 0x7FFFFFFFu) > 0x7F800000u;
  return key & (nan - 1);
}

static uint64_t topk_key_f64(double v) {
  uint64_t u;
  memcpy(&u, &v, sizeof u);
  const uint64_t magnitude = ~(UINT64_C(1) << 63);
  uint64_t negative = u >> 63;
  uint64_t key = (u ^ ((negative - 1) & magnitude)) - negative;
  uint64_t nan = (u & magnitude) > UINT64_C(0x7FF0000000000000);
  return key & (nan - 1);
}

static uint32_t topk_key_i32(int32_t v) {
  return (uint32_t)v ^ 0x7FFFFFFFu;
}

static uint64_t topk_key_i64(int64_t v) {
  return topk_key_f64((double)v);
}

/* 32-bit keys: an item is key << 32 | index, one 8-byte word. */
typedef uint64_t TopkItem32;
#define TOPK_MAKE32(key, j) ((uint64_t)(key) << 32 | (uint32_t)(j))
#define TOPK_KEY32(it) ((it) >> 32)
#define TOPK_INDEX32(it) ((int32_t)(uint32_t)(it))

typedef struct TopkItem64 {
  uint64_t key;
  int32_t index;
} TopkItem64;
#define TOPK_MAKE64(key, j) ((TopkItem64){(key), (int32_t)(j)})
#define TOPK_KEY64(it) ((it).key)
#define TOPK_INDEX64(it) ((it).index)

/* one count per digit of key (unrolled: the digits' loop is not) */
#define TOPK_DIGIT(key, d) ((key) >> (d)*TOPK_DIGIT_BITS & (TOPK_RADIX - 1))
#define TOPK_COUNT32(hist, key)                                                \
  do {                                                                         \
    uint64_t key_ = (key);                                                     \
    (hist)[TOPK_DIGIT(key_, 0)]++;                                             \
    (hist)[TOPK_RADIX + TOPK_DIGIT(key_, 1)]++;                                \
    (hist)[2 * TOPK_RADIX + TOPK_DIGIT(key_, 2)]++;                            \
  } while (0)
#define TOPK_COUNT64(hist, key)                                                \
  do {                                                                         \
    uint64_t key64_ = (key);                                                   \
    TOPK_COUNT32(hist, key64_);                                                \
    TOPK_COUNT32((hist) + 3 * TOPK_RADIX, key64_ >> 3 * TOPK_DIGIT_BITS);      \
  } while (0)

/* Digit widths from the top: 32 = 11+11+10, 64 = 11*5+9. */
#define TOPK_DIGITS(bits) (((bits) + TOPK_DIGIT_BITS - 1) / TOPK_DIGIT_BITS)
_Static_assert(TOPK_DIGITS(32) == 3 && TOPK_DIGITS(64) == 6,
               "TOPK_COUNT32 and TOPK_COUNT64 count 3 and 6 digits");

/* The bucket of hist holding the need-th (from 1) count; *below = the
 * counts before it. */
static uint64_t topk_split(const uint32_t *hist, int64_t need, int64_t *below) {
  uint64_t b = 0;
  int64_t sum = 0;
  while (sum + hist[b] < need)
    sum += hist[b++];
  *below = sum;
  return b;
}

/* Sorting and selecting items of W-bit keys. Items in index order stay so
 * among equal keys: the sorts are stable and the selection compacts in
 * order (what it appends to out in one round has keys below all later
 * rounds'). hist has room for TOPK_DIGITS(W) * TOPK_RADIX counts. */
#define MC_DEFINE_TOPK_ITEMS(W)                                                \
  /* sorts a[0..n) (tmp: n more); returns where the result is, a or tmp */     \
  static TopkItem##W *topk_sort_##W(TopkItem##W *a, TopkItem##W *tmp,          \
                                    int64_t n, uint32_t *hist) {               \
    const int digits = TOPK_DIGITS(W);                                         \
    memset(hist, 0, sizeof(uint32_t) * TOPK_RADIX * TOPK_DIGITS(W));           \
    for (int64_t j = 0; j < n; j++)                                            \
      TOPK_COUNT##W(hist, TOPK_KEY##W(a[j]));                                  \
    for (int d = 0; d < digits; d++) {                                         \
      uint32_t *h = hist + d * TOPK_RADIX;                                     \
      int shift = d * TOPK_DIGIT_BITS;                                         \
      if (h[TOPK_KEY##W(a[0]) >> shift & (TOPK_RADIX - 1)] == (uint64_t)n)     \
        continue; /* one bucket: the pass would copy */                        \
      uint32_t sum = 0;                                                        \
      for (int b = 0; b < TOPK_RADIX; b++) {                                   \
        uint32_t c = h[b];                                                     \
        h[b] = sum;                                                            \
        sum += c;                                                              \
      }                                                                        \
      for (int64_t j = 0; j < n; j++)                                          \
        tmp[h[TOPK_KEY##W(a[j]) >> shift & (TOPK_RADIX - 1)]++] = a[j];        \
      TopkItem##W *t = a;                                                      \
      a = tmp;                                                                 \
      tmp = t;                                                                 \
    }                                                                          \
    return a;                                                                  \
  }                                                                            \
                                                                               \
  /* The `need` smallest of a[0..n) appended to out, all keys alike above      \
   * bit `shift`: a digit at a time from the top, the bucket holding the       \
   * need-th key kept (compacted in order), those below it taken. */           \
  static void topk_select_##W(TopkItem##W *a, int64_t n, int64_t need,         \
                              TopkItem##W *out, uint32_t *hist, int shift) {   \
    while (shift > 0 && n > need) {                                            \
      int width = shift < TOPK_DIGIT_BITS ? shift : TOPK_DIGIT_BITS;           \
      shift -= width;                                                          \
      const uint64_t mask = (UINT64_C(1) << width) - 1;                        \
      memset(hist, 0, sizeof *hist << width);                                  \
      for (int64_t j = 0; j < n; j++)                                          \
        hist[TOPK_KEY##W(a[j]) >> shift & mask]++;                             \
      int64_t below;                                                           \
      uint64_t b = topk_split(hist, need, &below);                             \
      int64_t kept = 0;                                                        \
      for (int64_t j = 0; j < n; j++) {                                        \
        uint64_t digit = TOPK_KEY##W(a[j]) >> shift & mask;                    \
        if (digit < b)                                                         \
          *out++ = a[j];                                                       \
        else if (digit == b)                                                   \
          a[kept++] = a[j];                                                    \
      }                                                                        \
      need -= below;                                                           \
      n = kept;                                                                \
    }                                                                          \
    /* all of them, or equal keys (every digit used): the lower indices */     \
    for (int64_t j = 0; j < need; j++)                                         \
      *out++ = a[j];                                                           \
  }                                                                            \
                                                                               \
  /* sorts a[0..k) stably; returns where the result is (a or tmp) */           \
  static TopkItem##W *topk_sort_few_##W(TopkItem##W *a, TopkItem##W *tmp,      \
                                        int64_t k, uint32_t *hist) {           \
    if (k > TOPK_INSERTION_MAX)                                                \
      return topk_sort_##W(a, tmp, k, hist);                                   \
    for (int64_t i = 1; i < k; i++) {                                          \
      TopkItem##W item = a[i];                                                 \
      int64_t j = i;                                                           \
      for (; j > 0 && TOPK_KEY##W(a[j - 1]) > TOPK_KEY##W(item); j--)          \
        a[j] = a[j - 1];                                                       \
      a[j] = item;                                                             \
    }                                                                          \
    return a;                                                                  \
  }                                                                            \
                                                                               \
  /* Histograms, then the two item arrays; NULL if n is too large for it */    \
  static uint32_t *topk_scratch_##W(int64_t n) {                               \
    size_t hist = sizeof(uint32_t) * TOPK_RADIX * TOPK_DIGITS(W);              \
    if ((uint64_t)n > (SIZE_MAX - hist) / 2 / sizeof(TopkItem##W))             \
      return NULL;                                                             \
    return mc_thread_scratch(hist + 2 * (size_t)n * sizeof(TopkItem##W));      \
  }

MC_DEFINE_TOPK_ITEMS(32)
MC_DEFINE_TOPK_ITEMS(64)

/* a (key ka, index a) comes after b (key kb, index b) */
#define TOPK_AFTER(ka, a, kb, b) ((ka) > (kb) || ((ka) == (kb) && (a) > (b)))

/* mc_topk_<T>, with its heap (keys read again from the row as needed) */
#define MC_DEFINE_TOPK(NAME, T, W, KEY)                                        \
  static void NAME##_sift_down(const T *row, int32_t *h, int64_t at,           \
                               int64_t size, int64_t inner) {                  \
    for (;;) {                                                                 \
      int64_t c = 2 * at + 1;                                                  \
      if (c >= size)                                                           \
        break;                                                                 \
      int32_t ic = h[c * inner], ia = h[at * inner];                           \
      uint64_t kc = KEY(row[ic * inner]);                                      \
      if (c + 1 < size) { /* the later child rises */                          \
        int32_t id = h[(c + 1) * inner];                                       \
        uint64_t kd = KEY(row[id * inner]);                                    \
        if (TOPK_AFTER(kd, id, kc, ic))                                        \
          c++, ic = id, kc = kd;                                               \
      }                                                                        \
      if (!TOPK_AFTER(kc, ic, KEY(row[ia * inner]), ia))                       \
        break;                                                                 \
      h[at * inner] = ic;                                                      \
      h[c * inner] = ia;                                                       \
      at = c;                                                                  \
    }                                                                          \
  }                                                                            \
                                                                               \
  static void NAME##_heap(const T *row, int32_t *h, int64_t n, int64_t inner,  \
                          int64_t k) {                                         \
    for (int64_t r = 0; r < k; r++)                                            \
      h[r * inner] = (int32_t)r;                                               \
    for (int64_t p = k / 2 - 1; p >= 0; p--)                                   \
      NAME##_sift_down(row, h, p, k, inner);                                   \
    uint64_t worst = KEY(row[h[0] * inner]);                                   \
    for (int64_t j = k; j < n; j++) {                                          \
      /* an equal key loses: its index is above all in the heap */             \
      uint64_t key = KEY(row[j * inner]);                                      \
      if (key >= worst)                                                        \
        continue;                                                              \
      h[0] = (int32_t)j;                                                       \
      NAME##_sift_down(row, h, 0, k, inner);                                   \
      worst = KEY(row[h[0] * inner]);                                          \
    }                                                                          \
    for (int64_t end = k - 1; end > 0; end--) {                                \
      int32_t t = h[0];                                                        \
      h[0] = h[end * inner];                                                   \
      h[end * inner] = t;                                                      \
      NAME##_sift_down(row, h, 0, end, inner);                                 \
    }                                                                          \
  }                                                                            \
                                                                               \
  /* The k best of the row, sorted, in a[0..2n): the first digit is            \
   * counted and split straight from the row, so only its bucket's             \
   * candidates (a[n..]) and the elements taken (a[0..k)) are stored. */       \
  static TopkItem##W *NAME##_select(const T *row, int64_t n, int64_t inner,    \
                                    int64_t k, TopkItem##W *a,                 \
                                    uint32_t *hist) {                          \
    const int shift = W - TOPK_DIGIT_BITS;                                     \
    memset(hist, 0, sizeof(uint32_t) * TOPK_RADIX);                            \
    for (int64_t j = 0; j < n; j++)                                            \
      hist[KEY(row[j * inner]) >> shift]++;                                    \
    int64_t below;                                                             \
    uint64_t b = topk_split(hist, k, &below);                                  \
    TopkItem##W *out = a, *candidates = a + n;                                 \
    int64_t taken = 0, kept = 0;                                               \
    for (int64_t j = 0; j < n; j++) {                                          \
      uint64_t key = KEY(row[j * inner]);                                      \
      if (key >> shift < b)                                                    \
        out[taken++] = TOPK_MAKE##W(key, j);                                   \
      else if (key >> shift == b)                                              \
        candidates[kept++] = TOPK_MAKE##W(key, j);                             \
    }                                                                          \
    topk_select_##W(candidates, kept, k - taken, out + taken, hist, shift);    \
    return topk_sort_few_##W(out, candidates, k, hist);                        \
  }                                                                            \
                                                                               \
  void NAME(const T *x, int32_t *y, int64_t outer, int64_t n, int64_t inner,   \
            int64_t k) {                                                       \
    if (k <= 0)                                                                \
      return;                                                                  \
    uint32_t *hist = NULL;                                                     \
    if (k > TOPK_HEAP_MAX_K && n > TOPK_HEAP_MAX_N)                            \
      hist = topk_scratch_##W(n);                                              \
    TopkItem##W *a =                                                           \
        hist ? (TopkItem##W *)(hist + TOPK_RADIX * TOPK_DIGITS(W)) : NULL;     \
    for (int64_t o = 0; o < outer; o++)                                        \
      for (int64_t i = 0; i < inner; i++) {                                    \
        const T *row = x + o * n * inner + i;                                  \
        int32_t *best = y + o * k * inner + i;                                 \
        if (!hist) {                                                           \
          NAME##_heap(row, best, n, inner, k);                                 \
          continue;                                                            \
        }                                                                      \
        const TopkItem##W *sorted;                                             \
        if (2 * k > n) {                                                       \
          for (int64_t j = 0; j < n; j++)                                      \
            a[j] = TOPK_MAKE##W(KEY(row[j * inner]), j);                       \
          sorted = topk_sort_##W(a, a + n, n, hist);                           \
        } else {                                                               \
          sorted = NAME##_select(row, n, inner, k, a, hist);                   \
        }                                                                      \
        for (int64_t r = 0; r < k; r++)                                        \
          best[r * inner] = TOPK_INDEX##W(sorted[r]);                          \
      }                                                                        \
  }

MC_DEFINE_TOPK(mc_topk_f32, float, 32, topk_key_f32)
MC_DEFINE_TOPK(mc_topk_f64, double, 64, topk_key_f64)
MC_DEFINE_TOPK(mc_topk_i32, int32_t, 32, topk_key_i32)
MC_DEFINE_TOPK(mc_topk_i64, int64_t, 64, topk_key_i64)

/* Inverse-CDF sampling; weights that are not > 0 (negatives, NaN) count
 * as 0, sums run in double in index order. */
#define MC_DEFINE_CATEGORICAL(NAME, T)                                         \
  void NAME(const T *p, const T *u, int32_t *y, int64_t outer, int64_t n,      \
            int64_t inner) {                                                   \
    for (int64_t o = 0; o < outer; o++)                                        \
      for (int64_t i = 0; i < inner; i++) {                                    \
        const T *row = p + o * n * inner + i;                                  \
        double total = 0;                                                      \
        for (int64_t j = 0; j < n; j++)                                        \
          if (row[j * inner] > 0)                                              \
            total += (double)row[j * inner];                                   \
        double target = (double)u[o * inner + i] * total, acc = 0;             \
        int64_t pick = -1, last = 0;                                           \
        for (int64_t j = 0; j < n && pick < 0; j++)                            \
          if (row[j * inner] > 0) {                                            \
            acc += (double)row[j * inner];                                     \
            last = j;                                                          \
            if (target < acc)                                                  \
              pick = j;                                                        \
          }                                                                    \
        y[o * inner + i] = (int32_t)(pick >= 0 ? pick : last);                 \
      }                                                                        \
  }

MC_DEFINE_CATEGORICAL(mc_categorical_f32, float)
MC_DEFINE_CATEGORICAL(mc_categorical_f64, double)
