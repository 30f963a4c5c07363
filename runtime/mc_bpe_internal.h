/* What mc_bpe_load.c builds and mc_bpe.c uses; not part of the API.
 *
 * Invariants of a loaded McBpe:
 *  - every token is kept as the raw bytes it stands for (its characters
 *    mapped back through bytes_to_unicode), so encoding never builds
 *    strings: symbols are token ids and a merge is (left id, right id) ->
 *    (rank, result id);
 *  - ids are exactly 0..ntokens-1, each naming one distinct token;
 *  - every single byte has a token (byte_id) and every merge's halves and
 *    result are tokens, so encoding cannot meet an unknown symbol;
 *  - ranks are distinct (a pair appears once in vocab.bpe).
 */
#ifndef MC_BPE_INTERNAL_H
#define MC_BPE_INTERNAL_H

#include "mc_bpe.h"

#define MC_BPE_EMPTY_PAIR UINT64_MAX /* ids are < 2^31: no pair is all ones */

typedef struct McBpeMerge {
  uint64_t pair; /* left id << 32 | right id, or MC_BPE_EMPTY_PAIR */
  uint32_t rank; /* line of the pair in vocab.bpe, from 0 */
  int32_t result;
} McBpeMerge;

struct McBpe {
  int32_t ntokens;
  size_t *tok_off; /* token id -> its bytes in pool */
  uint32_t *tok_len;
  unsigned char *pool;
  int32_t byte_id[256];
  McBpeMerge *merges; /* open addressing, linear probing, never full */
  size_t merge_mask;  /* capacity - 1, capacity a power of two */
};

static inline size_t mc_bpe_hash(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return (size_t)x;
}

/* The slot of pair: the merge, or the empty slot where it would go. */
static inline McBpeMerge *mc_bpe_merge_slot(const McBpe *bpe, uint64_t pair) {
  for (size_t h = mc_bpe_hash(pair) & bpe->merge_mask;;
       h = (h + 1) & bpe->merge_mask) {
    McBpeMerge *m = &bpe->merges[h];
    if (m->pair == pair || m->pair == MC_BPE_EMPTY_PAIR)
      return m;
  }
}

#endif /* MC_BPE_INTERNAL_H */
