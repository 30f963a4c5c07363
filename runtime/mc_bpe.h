/* GPT-2's byte-level BPE tokenizer: text in, token ids out, and back.
 *
 *   mc_bpe.c             loading encoder.json + vocab.bpe, encode, decode
 *   mc_unicode_tables.c  \p{L} \p{N} \s ranges (runtime/gen_unicode_tables.py)
 *
 * Semantics are those of openai/gpt-2's encoder.py as the npm package
 * gpt-3-encoder runs them:
 *  - text is split by the pre-tokenizer regex
 *      's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+|
 * ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ with JavaScript's classes (\s is ECMAScript
 * white space: it has U+FEFF and lacks U+0085), implemented by hand in
 * mc_bpe_split;
 *  - each piece's UTF-8 bytes are merged pairwise, lowest merge rank first,
 *    every occurrence of the chosen pair left to right, until no adjacent
 *    pair has a rank (rank = line of the pair in vocab.bpe);
 *  - a byte that is not part of valid UTF-8 in the input is a character of
 *    the "other" class on its own, so any byte string encodes and decodes
 *    back to itself.
 *
 * Loading is strict: encoder.json must be one JSON object of distinct tokens
 * to distinct ids 0..N-1 whose characters all belong to GPT-2's 256-character
 * byte alphabet (bytes_to_unicode), with a token for every single byte;
 * vocab.bpe must be a "#version" line then lines "A B" (LF or CRLF, last line
 * ended) naming tokens whose concatenation is a token too, each pair once.
 * Anything else fails with MC_ERR_FORMAT and a message naming the file, line
 * and column; nothing is trusted before it is checked.
 */
#ifndef MC_BPE_H
#define MC_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "mc_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct McBpe McBpe;

/* Reads and validates both files (each at most MC_BPE_MAX_FILE bytes). */
#define MC_BPE_MAX_FILE ((size_t)256 << 20)
int mc_bpe_load(const char *encoder_json, const char *vocab_bpe, McBpe **out,
                McError *e);
void mc_bpe_free(McBpe *bpe); /* NULL is fine */
int32_t mc_bpe_vocab_size(const McBpe *bpe);

/* The ids of text[0..len) (which may hold NULs and invalid UTF-8) in *ids,
 * malloc'd (never NULL on success, also when *n is 0). */
int mc_bpe_encode(const McBpe *bpe, const char *text, size_t len, int32_t **ids,
                  size_t *n, McError *e);
/* The bytes of ids[0..n) in *text, malloc'd and NUL-terminated (the bytes
 * may hold NULs: *len counts them). An id outside [0, vocab size) fails with
 * MC_ERR_RANGE. */
int mc_bpe_decode(const McBpe *bpe, const int32_t *ids, size_t n, char **text,
                  size_t *len, McError *e);

/* The end of the pre-token that starts at text[start] (start < len): the
 * regex's match there. Exposed for tests. */
size_t mc_bpe_split(const char *text, size_t len, size_t start);

/* ---- character classes (mc_unicode_tables.c, generated) ----------------- */
enum {
  MC_UCLASS_OTHER,
  MC_UCLASS_LETTER, /* \p{L} */
  MC_UCLASS_NUMBER, /* \p{N} */
  MC_UCLASS_SPACE,  /* \s */
  MC_UCLASS_COUNT
};
int mc_unicode_class(uint32_t cp); /* OTHER above U+10FFFF too */

#ifdef __cplusplus
}
#endif

#endif /* MC_BPE_H */
