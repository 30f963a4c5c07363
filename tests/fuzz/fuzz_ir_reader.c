/* Fuzz target: IR text through ir_read and pass_verify (inputs capped at
 * 64 KiB). A module the reader accepts must also print without trouble. */
#include "fuzz_util.h"

#include "../../ir/ir.h"
#include "../../passes/passes.h"

enum { MAX_INPUT = 64 * 1024 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > MAX_INPUT)
    return 0;
  char *text = malloc(size + 1);
  if (!text)
    return 0;
  memcpy(text, data, size);
  text[size] = 0;
  Diag d;
  diag_init(&d, fuzz_null_sink());
  diag_add_source(&d, "fuzz.ir", text);
  Module *m = ir_read(text, "fuzz.ir", &d);
  if (m) {
    if (pass_run(m, "verify", &d))
      free(ir_print_to_string(m));
    ir_module_free(m);
  }
  diag_free(&d);
  free(text);
  return 0;
}
