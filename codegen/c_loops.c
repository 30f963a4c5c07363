/* Loop and index emission shared by the kernel emitters (c_kernels.c for
 * the core ops, c_kernels_decode.c for the decoding ops): statements at a
 * depth, a loop per axis of a shape, row-major flat indexes.
 *
 * Invariants: an axis of constant extent 1 gets no loop and contributes
 * nothing to an index; dimension expressions are spelled by cg_dim, which
 * records the symbols a kernel reads in k->syms (its int64_t parameters).
 */
#include <stdarg.h>
#include <string.h>

#include "c_emit.h"

void cg_line(CgKernel *k, int depth, const char *fmt, ...) {
  for (int i = 0; i < depth; i++)
    cg_buf_puts(&k->body, "  ");
  va_list ap;
  va_start(ap, fmt);
  cg_buf_vprintf(&k->body, fmt, ap);
  va_end(ap);
  cg_buf_puts(&k->body, "\n");
}

const char *const cg_loop_vars[MAX_RANK] = {"i0", "i1", "i2", "i3",
                                            "i4", "i5", "i6", "i7"};

char *cg_kdim(CgKernel *k, Dim d) {
  return cg_dim(k->arena, d, k->symnames, &k->syms);
}

char *cg_kproduct(CgKernel *k, const Shape *s, int from, int to) {
  return cg_dims_product(k->arena, s->dims, from, to, k->symnames, &k->syms);
}

bool cg_is_one(Dim d) {
  int64_t c;
  return dim_is_const(d, &c) && c == 1;
}

char *cg_strided_index(CgKernel *k, const Shape *s, const char *const *pos) {
  CgBuf b = {0};
  for (int j = 0; j < s->rank; j++) {
    if (!pos[j])
      continue;
    const char *stride = cg_kproduct(k, s, j + 1, s->rank);
    if (!strcmp(stride, "0"))
      continue;
    if (b.len)
      cg_buf_puts(&b, " + ");
    if (!strcmp(stride, "1"))
      cg_buf_puts(&b, pos[j]);
    else
      cg_buf_printf(&b, "%s * %s", pos[j], stride);
  }
  char *r = cg_strf(k->arena, "%s", b.len ? cg_buf_str(&b) : "0");
  cg_buf_free(&b);
  return r;
}

int cg_open_loops(CgKernel *k, int depth, const Shape *s, uint32_t skip,
                  const char **vars, bool block) {
  int last = -1;
  for (int j = 0; j < s->rank; j++) {
    vars[j] = NULL;
    if (!(skip & (1u << j)) && !cg_is_one(s->dims[j]))
      last = j;
  }
  for (int j = 0; j <= last; j++) {
    if ((skip & (1u << j)) || cg_is_one(s->dims[j]))
      continue;
    vars[j] = cg_loop_vars[j];
    cg_line(k, depth, "for (int64_t %s = 0; %s < %s; %s++)%s", vars[j], vars[j],
            cg_kdim(k, s->dims[j]), vars[j], block && j == last ? " {" : "");
    depth++;
  }
  if (block && last < 0)
    cg_line(k, depth++, "{");
  return depth;
}

void cg_close_block(CgKernel *k, int depth) {
  cg_line(k, depth - 1, "}");
}
