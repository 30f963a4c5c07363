/* IR passes: each is `bool pass_name(Module *, Diag *)`, returns false after
 * reporting an error, and is registered in passes.def under its flag name.
 * The pass manager runs them by name, verifies the IR after every pass in
 * debug builds (NDEBUG not defined) and can print the IR after a pass. */
#ifndef MC_PASSES_H
#define MC_PASSES_H

#include <stdbool.h>
#include <stdio.h>

#include "ir.h"

#define PASS(name, fn, summary) bool fn(Module *m, Diag *d);
#include "passes.def"
#undef PASS

typedef struct PassInfo {
  const char *name;
  bool (*run)(Module *m, Diag *d);
  const char *summary;
} PassInfo;

/* The registered passes in passes.def order; *count receives their number. */
const PassInfo *pass_list(int *count);
/* NULL if no pass has this name. */
const PassInfo *pass_find(const char *name);

/* Runs one pass by name; false on an unknown name or a failing pass. */
bool pass_run(Module *m, const char *name, Diag *d);
/* Runs "a,b,c" in order (spaces around names are ignored). print_after is
 * NULL, a pass name or "all": the IR is printed to print_out after each
 * matching pass, headed by "// -----// IR after NAME //----- //". */
bool pass_run_list(Module *m, const char *comma_list, const char *print_after,
                   FILE *print_out, Diag *d);
/* -O0: verify,infer_shapes,autodiff,dce; -O1 and up:
 * verify,infer_shapes,autodiff,fold_constants,simplify,cse,dce,
 * hoist_weights,sink_gathers,dce,lazy_selects,fuse,dce,pair_scans. */
bool pass_run_default(Module *m, int opt_level, Diag *d);

#endif
