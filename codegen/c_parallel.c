/* Ranged kernels: a kernel whose body is a loop over [begin, end) of an
 * index range runs on the runtime's threads (mc_parallel_for). It is
 * emitted as three pieces, named after the kernel:
 *
 *   typedef struct { int64_t T; const float *x0; float *y; } NAME_args;
 *   static void NAME_range(void *ctx, int64_t begin, int64_t end) {
 *     const NAME_args *args = ctx;     (the parameters the body reads)
 *     ...body...
 *   }
 *   static void NAME(int64_t T, const float *restrict x0, ...) {
 *     NAME_args args = {T, x0, y};
 *     mc_parallel_for(RANGE, GRAIN, NAME_range, &args);
 *   }
 *
 * `args` cannot clash: operands have fixed names (x, a, b, x0, ...) and
 * symbols without an uppercase letter get a sym_ prefix (c_emit.c).
 *
 * Determinism: every index is computed by the same code whichever chunk it
 * falls in, so the result does not depend on the thread count.
 */
#include <string.h>

#include "c_emit.h"

void cg_begin_range(CgKernel *k, const char *range, const char *grain) {
  k->range = range;
  k->grain = grain;
  k->body_syms = k->syms; /* kept here until cg_end_range */
  k->syms = 0;
}

void cg_end_range(CgKernel *k) {
  uint64_t outside = k->body_syms;
  k->body_syms = k->syms;
  k->syms |= outside;
}

void cg_sub_begin(CgKernel *k, CgSub *saved) {
  saved->body = k->body;
  saved->syms = k->syms;
  k->body = (CgBuf){0};
  k->syms = 0;
}

uint64_t cg_sub_end(CgKernel *k, CgSub *saved, CgBuf *body) {
  uint64_t syms = k->syms;
  *body = k->body;
  k->body = saved->body;
  k->syms = saved->syms | syms;
  return syms;
}

void cg_emit_range_core(const CgKernel *k, const char *name, const CgParam *ps,
                        int np, CgBuf *out) {
  cg_buf_puts(out, "typedef struct {\n");
  for (int i = 0; i < np; i++) {
    /* struct members drop restrict: the range function restores it */
    const char *t = ps[i].ctype;
    int len = 0;
    while (t[len] && !(t[len] == ' ' && t[len + 1] == '*'))
      len++;
    cg_buf_printf(out, "  %.*s%s%s;\n", len, t, t[len] ? " *" : " ",
                  ps[i].name);
  }
  cg_buf_printf(out, "} %s_args;\n\n", name);
  cg_buf_printf(out,
                "static void %s_range(void *ctx, int64_t begin, int64_t end) "
                "{\n  const %s_args *args = ctx;\n",
                name, name);
  for (int i = 0; i < np; i++)
    if (ps[i].in_body)
      cg_buf_printf(out, "  %s%s%s%s = args->%s;\n",
                    strcmp(ps[i].ctype, "int64_t") ? "" : "const ", ps[i].ctype,
                    cg_ends_with_star(ps[i].ctype) ? "" : " ", ps[i].name,
                    ps[i].name);
  cg_buf_printf(out, "%s}\n\n", cg_buf_str(&k->body));
}

void cg_emit_range_wrapper(const CgKernel *k, const char *name,
                           const CgParam *ps, int np, const char *sig,
                           CgBuf *out) {
  cg_buf_printf(out, "%s) {\n  %s_args args = {", sig, name);
  for (int i = 0; i < np; i++)
    cg_buf_printf(out, "%s%s", i ? ", " : "", ps[i].name);
  cg_buf_printf(out, "};\n  mc_parallel_for(%s, %s, %s_range, &args);\n}\n\n",
                k->range, k->grain, name);
}
