/* Fuzz target: an .npy file through mc_npy_read; an accepted tensor is read
 * in full and written back (inputs capped at 1 MiB). */
#include "fuzz_util.h"

#include "../../runtime/mc_runtime.h"

enum { MAX_INPUT = 1 << 20 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > MAX_INPUT)
    return 0;
  const char *path = fuzz_write_temp("npy", data, size);
  McTensor t;
  memset(&t, 0, sizeof t);
  McError e;
  if (mc_npy_read(path, &t, &e) == MC_OK) {
    size_t nbytes = 0;
    if (mc_tensor_nbytes(&t, &nbytes, &e) != MC_OK)
      abort(); /* an accepted tensor has a valid size */
    unsigned sum = 0;
    for (size_t k = 0; k < nbytes; k++)
      sum += ((const unsigned char *)t.data)[k];
    fuzz_checksum += sum;
    if (t.dtype != MC_BF16)
      mc_npy_write_direct(fuzz_write_temp("npy_out", NULL, 0), &t, &e);
    mc_tensor_free(&t);
  }
  return 0;
}
