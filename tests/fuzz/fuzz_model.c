/* Fuzz target: a model file through the lexer, the parser, the lowering and
 * the default passes (-O2). Inputs are capped at 64 KiB; loops and calls are
 * bounded by the lowering's own limits (set lower here so one input stays
 * fast). Includes are left in, but an input holding both "include" and a
 * '/' is skipped so the fuzzer stays off the real file system: with the
 * model at "fuzz-nowhere/fuzz.model" every include it can name fails to
 * open (tests/diagnostics/include_device.model covers devices).
 */
#include "fuzz_util.h"

#include "../../frontend/lower.h"
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
  if (strlen(text) != size || (strstr(text, "include") && strchr(text, '/'))) {
    free(text);
    return 0;
  }
  Diag d;
  diag_init(&d, fuzz_null_sink());
  AstModule *ast = ast_parse_string(text, "fuzz-nowhere/fuzz.model", &d);
  LowerOptions lo;
  memset(&lo, 0, sizeof lo);
  lo.max_unroll = 4096;
  lo.max_call_depth = 64;
  Module *m = ast ? lower_module(ast, &lo, &d) : NULL;
  if (m) {
    pass_run_default(m, 2, &d);
    ir_module_free(m);
  }
  ast_free(ast);
  lower_free_includes(&lo);
  diag_free(&d);
  free(text);
  return 0;
}
