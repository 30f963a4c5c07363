/* Lowering: evaluates a model's AST into IR.
 *
 * The lowering is an interpreter over the AST that runs at compile time:
 * constants, dimensions, strings and loop counters are compile-time values;
 * tensors are IR values. User functions are inlined at each call, `for` loops
 * unrolled, `if` decided, weight names interpolated, so the IR it produces is
 * one straight-line graph per entry point with every op located at the model
 * line it came from (and the user function it was written in).
 */
#ifndef MC_LOWER_H
#define MC_LOWER_H

#include "../ir/ir.h"
#include "ast.h"

/* A -D name=value (from the command line or a --config file). */
typedef struct LowerDefine {
  const char *name;
  const char *value; /* text of an integer or float */
  Loc loc;           /* where it was given (config file), or none */
  bool used;         /* set by the lowering */
} LowerDefine;

typedef struct LowerOptions {
  int ndefines;
  LowerDefine *defines;
  int max_unroll;     /* limit on total loop iterations; 0 = 100000 */
  int max_call_depth; /* 0 = 256 */
  int max_values;     /* limit on the IR values lowered; 0 = 250000 */
  const char *entry;  /* lower only this entry point, or NULL for all */
  /* out: the files `include` read; they stay alive (diagnostics quote them)
   * until lower_free_includes */
  int nincluded;
  AstModule **included;
} LowerOptions;

void lower_free_includes(LowerOptions *opt);

/* `include "file.model"` (top level only) reads that file, relative to the
 * including file, and lowers its statements in place; a file included
 * twice or including itself is an error.
 * A model file without `entry` blocks has one entry point named after the
 * file; with entries, each `entry NAME { ... }` becomes a Function, and the
 * top-level statements run again before each (DCE drops what an entry does
 * not use), so functions, constants and weights are shared.
 * Returns the module, or NULL after reporting errors to d. */
Module *lower_module(const AstModule *ast, LowerOptions *opt, Diag *d);

#endif
