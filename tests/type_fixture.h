/* ty(): an IR type written out in a test, for the fixtures of the IR's
 * tests (ir_fixture.h) and of the backends' (codegen_fixture.h). */
#ifndef MC_TESTS_TYPE_FIXTURE_H
#define MC_TESTS_TYPE_FIXTURE_H

#include <stdarg.h>
#include <string.h>

#include "ir.h"

/* ty(DT_F32, 2, -1, 768): negative dims are symbols -1 = T, -2 = B */
static inline Type ty(DType t, int rank, ...) {
  Type r;
  memset(&r, 0, sizeof r);
  r.dtype = t;
  r.shape.rank = rank;
  va_list ap;
  va_start(ap, rank);
  for (int i = 0; i < rank; i++) {
    int v = va_arg(ap, int);
    r.shape.dims[i] = v < 0 ? dim_sym(-v - 1) : dim_const(v);
  }
  va_end(ap);
  return r;
}

#endif
