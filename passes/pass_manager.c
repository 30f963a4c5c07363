/* Runs passes by name from the passes.def table. Invariant: after a pass
 * reports success the module is valid IR; debug builds check it by running
 * pass_verify after every pass, so a broken pass is caught where it ran. */
#include "passes.h"

#include <string.h>

static const PassInfo passes[] = {
#define PASS(name, fn, summary) {#name, fn, summary},
#include "passes.def"
#undef PASS
};

enum { NPASSES = sizeof passes / sizeof passes[0] };

const PassInfo *pass_list(int *count) {
  *count = NPASSES;
  return passes;
}

const PassInfo *pass_find(const char *name) {
  for (int i = 0; i < NPASSES; i++)
    if (strcmp(passes[i].name, name) == 0)
      return &passes[i];
  return NULL;
}

static bool run_one(Module *m, const PassInfo *p, Diag *d) {
  int before = d->nerrors;
  bool ok = p->run(m, d) && d->nerrors == before;
#ifndef NDEBUG
  if (ok && p->run != pass_verify) {
    ok = pass_verify(m, d) && d->nerrors == before;
    if (!ok)
      diag_note(d, loc_none(), "the IR was invalid after pass '%s'", p->name);
  }
#endif
  return ok;
}

bool pass_run(Module *m, const char *name, Diag *d) {
  const PassInfo *p = pass_find(name);
  if (!p) {
    diag_error(d, loc_none(), "unknown pass '%s'", name);
    return false;
  }
  return run_one(m, p, d);
}

bool pass_run_list(Module *m, const char *comma_list, const char *print_after,
                   FILE *print_out, Diag *d) {
  const char *s = comma_list ? comma_list : "";
  /* Check every name first so a typo fails before any pass runs. */
  for (int check = 1; check >= 0; check--) {
    for (const char *p = s; *p;) {
      while (*p == ' ' || *p == ',')
        p++;
      size_t n = strcspn(p, ",");
      size_t len = n;
      while (len > 0 && p[len - 1] == ' ')
        len--;
      if (len == 0) {
        p += n;
        continue;
      }
      char name[64];
      if (len >= sizeof name)
        len = sizeof name - 1;
      memcpy(name, p, len);
      name[len] = 0;
      p += n;
      const PassInfo *info = pass_find(name);
      if (!info) {
        diag_error(d, loc_none(), "unknown pass '%s'", name);
        return false;
      }
      if (check)
        continue;
      if (!run_one(m, info, d))
        return false;
      if (print_after && print_out &&
          (strcmp(print_after, "all") == 0 || strcmp(print_after, name) == 0)) {
        fprintf(print_out, "// -----// IR after %s //----- //\n", name);
        ir_print(print_out, m);
      }
    }
  }
  return true;
}

bool pass_run_default(Module *m, int opt_level, Diag *d) {
  const char *list =
      opt_level <= 0
          ? "verify,infer_shapes,autodiff,dce"
          : "verify,infer_shapes,autodiff,fold_constants,simplify,cse,dce,"
            "hoist_weights,sink_gathers,dce,lazy_selects,fuse,dce,pair_scans";
  return pass_run_list(m, list, NULL, NULL, d);
}
