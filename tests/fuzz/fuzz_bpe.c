/* Fuzz target: mc_bpe_load on the two halves of the input (encoder.json up
 * to the first "\n---\n" separator, vocab.bpe after it; without one, split in
 * the middle), then a short encode and decode with the loaded tables. Inputs
 * are capped at 256 KiB. */
#include "fuzz_util.h"

#include "../../runtime/mc_bpe.h"

enum { MAX_INPUT = 256 * 1024 };

static const uint8_t *find_separator(const uint8_t *data, size_t size) {
  static const char sep[] = "\n---\n";
  for (size_t i = 0; i + 5 <= size; i++)
    if (memcmp(data + i, sep, 5) == 0)
      return data + i;
  return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > MAX_INPUT)
    return 0;
  const uint8_t *sep = find_separator(data, size);
  size_t n1 = sep ? (size_t)(sep - data) : size / 2;
  size_t skip = sep ? 5 : 0;
  const char *enc = fuzz_write_temp("encoder", data, n1);
  const char *voc =
      fuzz_write_temp("vocab", data + n1 + skip, size - n1 - skip);
  McBpe *bpe = NULL;
  McError e;
  if (mc_bpe_load(enc, voc, &bpe, &e) == MC_OK) {
    static const char text[] = "Hello, world! It's 2024 \xc3\xa9t\xc3\xa9.\n";
    int32_t *ids = NULL;
    size_t nids = 0;
    if (mc_bpe_encode(bpe, text, sizeof text - 1, &ids, &nids, &e) == MC_OK) {
      char *back = NULL;
      size_t nback = 0;
      if (mc_bpe_decode(bpe, ids, nids, &back, &nback, &e) == MC_OK)
        free(back);
      free(ids);
    }
    mc_bpe_free(bpe);
  }
  return 0;
}
