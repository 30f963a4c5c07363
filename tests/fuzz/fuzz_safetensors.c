/* Fuzz target: a safetensors file through mc_st_open (every tensor read in
 * full, lookups by name) and mc_weights_load with a small spec list whose
 * names and shapes match the seed corpus, so conversion paths are reached.
 * Inputs are capped at 1 MiB. */
#include "fuzz_util.h"

#include "../../runtime/mc_runtime.h"

enum { MAX_INPUT = 1 << 20 };

static const McWeightSpec specs[] = {
    {.name = "w", .rank = 2, .shape = {2, 3}, .transposed = 1},
    {.name = "b", .rank = 1, .shape = {3}, .store = MC_F16},
    {.name = "h.0.ln.weight", .rank = 1, .shape = {4}},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > MAX_INPUT)
    return 0;
  const char *path = fuzz_write_temp("st", data, size);
  McError e;
  McSafetensors *st = NULL;
  if (mc_st_open(path, &st, &e) == MC_OK) {
    unsigned sum = 0;
    for (int i = 0; i < mc_st_count(st); i++) {
      const McStTensor *t = mc_st_get(st, i);
      const unsigned char *p = t->data;
      for (size_t k = 0; k < t->nbytes; k++)
        sum += p[k];
      fuzz_checksum += sum;
      int ambiguous = 0;
      if (mc_st_find(st, t->name, &ambiguous) == NULL && !ambiguous)
        abort(); /* a tensor's own name must find it */
    }
    mc_st_close(st);
  }
  McWeights *w = NULL;
  int n = (int)(sizeof specs / sizeof specs[0]);
  for (int count = 1; count <= n; count += n - 1) {
    if (mc_weights_load(path, specs, count, &w, &e) == MC_OK) {
      float sum = 0;
      for (int i = 0; i < count; i++) {
        const void *x = mc_weights_data(w, i);
        int64_t numel = 1;
        for (int k = 0; k < specs[i].rank; k++)
          numel *= specs[i].shape[k];
        for (int64_t k = 0; k < numel; k++) /* every element is readable */
          sum += specs[i].store == MC_F16
                     ? mc_f16_to_f32_1(((const uint16_t *)x)[k])
                     : ((const float *)x)[k];
        fuzz_checksum += sum;
      }
      mc_weights_free(w);
    }
  }
  return 0;
}
