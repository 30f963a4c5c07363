/* Runtime core: errors, dtypes, tensors, half floats and dtype conversion.
 *
 * Invariants: a function that fails leaves its out-parameters without
 * allocated memory (nothing to free) and says why in the McError; narrowing
 * conversions never invoke undefined behaviour (out-of-range values are
 * detected before the cast).
 */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE /* madvise */
#endif
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "mc_runtime.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* ---- errors and dtypes ----------------------------------------------- */

int mc_fail(McError *e, int code, const char *fmt, ...) {
  if (e) {
    va_list ap;
    va_start(ap, fmt);
    e->code = code;
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}

int mc_tasks_status(const int *rc, const McError *errs, int n, McError *e) {
  for (int i = 0; i < n; i++)
    if (rc[i] != MC_OK) {
      if (e)
        *e = errs[i];
      return rc[i];
    }
  return MC_OK;
}

const char *mc_dtype_name(McDType t) {
  switch (t) {
  case MC_F32:
    return "f32";
  case MC_F64:
    return "f64";
  case MC_I32:
    return "i32";
  case MC_I64:
    return "i64";
  case MC_BOOL:
    return "bool";
  case MC_F16:
    return "f16";
  case MC_BF16:
    return "bf16";
  case MC_DTYPE_COUNT:
    break;
  }
  return "?";
}

size_t mc_dtype_size(McDType t) {
  switch (t) {
  case MC_F32:
    return 4;
  case MC_F64:
    return 8;
  case MC_I32:
    return 4;
  case MC_I64:
    return 8;
  case MC_BOOL:
    return 1;
  case MC_F16:
    return 2;
  case MC_BF16:
    return 2;
  case MC_DTYPE_COUNT:
    break;
  }
  return 0;
}

static int rt_is_float(McDType t) {
  return t == MC_F32 || t == MC_F64 || t == MC_F16 || t == MC_BF16;
}

static int rt_is_int(McDType t) {
  return t == MC_I32 || t == MC_I64 || t == MC_BOOL;
}

/* ---- tensors --------------------------------------------------------- */

int64_t mc_tensor_numel(const McTensor *t) {
  if (!t || t->rank < 0 || t->rank > MC_MAX_RANK)
    return -1;
  int64_t n = 1;
  for (int i = 0; i < t->rank; i++) {
    int64_t d = t->shape[i];
    if (d < 0 || (d > 0 && n > INT64_MAX / d))
      return -1;
    n *= d;
  }
  return n;
}

int mc_tensor_nbytes(const McTensor *t, size_t *nbytes, McError *e) {
  size_t size = t ? mc_dtype_size(t->dtype) : 0;
  if (size == 0)
    return mc_fail(e, MC_ERR_DTYPE, "invalid dtype");
  int64_t n = mc_tensor_numel(t);
  if (n < 0 || (uint64_t)n > SIZE_MAX / size) {
    char buf[256];
    return mc_fail(e, MC_ERR_SHAPE, "invalid or too large shape %s",
                   mc_shape_str(t->rank, t->shape, buf, sizeof buf));
  }
  *nbytes = (size_t)n * size;
  return MC_OK;
}

void *mc_alloc_zeroed(size_t n) {
  enum { HUGE = 2 << 20 };
  if (n < HUGE)
    return calloc(n ? n : 1, 1);
  size_t size = (n + HUGE - 1) / HUGE * HUGE;
  void *p = NULL;
  if (size < n || posix_memalign(&p, HUGE, size) != 0)
    return NULL;
#ifdef MADV_HUGEPAGE
  madvise(p, size, MADV_HUGEPAGE); /* before the first touch */
#endif
  memset(p, 0, n);
  return p;
}

int mc_tensor_alloc(McTensor *t, McDType dtype, int rank, const int64_t *shape,
                    McError *e) {
  McTensor r;
  memset(&r, 0, sizeof r);
  r.dtype = dtype;
  if (rank < 0 || rank > MC_MAX_RANK)
    return mc_fail(e, MC_ERR_SHAPE, "rank %d is not within 0..%d", rank,
                   MC_MAX_RANK);
  r.rank = rank;
  for (int i = 0; i < rank; i++)
    r.shape[i] = shape[i];
  size_t nbytes;
  int rc = mc_tensor_nbytes(&r, &nbytes, e);
  if (rc)
    return rc;
  r.data = mc_alloc_zeroed(nbytes);
  if (!r.data)
    return mc_fail(e, MC_ERR_NOMEM, "out of memory allocating %zu bytes",
                   nbytes);
  *t = r;
  return MC_OK;
}

void mc_tensor_free(McTensor *t) {
  if (t) {
    free(t->data);
    t->data = NULL;
  }
}

char *mc_shape_str(int rank, const int64_t *shape, char *buf, size_t size) {
  char tmp[MC_MAX_RANK * 24 + 8]; /* fits any rank-8 shape */
  size_t len = 1;
  if (size == 0)
    return buf;
  if (rank < 0 || rank > MC_MAX_RANK) {
    snprintf(buf, size, "<rank %d>", rank);
    return buf;
  }
  tmp[0] = '[';
  for (int i = 0; i < rank; i++)
    len += (size_t)snprintf(tmp + len, sizeof tmp - len, "%s%" PRId64,
                            i ? ", " : "", shape[i]);
  snprintf(tmp + len, sizeof tmp - len, "]");
  snprintf(buf, size, "%s", tmp);
  return buf;
}

/* ---- half precision ---------------------------------------------------- */

float mc_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  float f;
  if (exp == 0) { /* zero or subnormal: mant * 2^-24, exact in f32 */
    f = ldexpf((float)mant, -24);
    return sign ? -f : f;
  }
  if (exp == 31)
    bits = sign | 0x7f800000 | (mant << 13);
  else
    bits = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  memcpy(&f, &bits, 4);
  return f;
}

float mc_bf16_to_f32(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

uint16_t mc_f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
  uint32_t absx = x & 0x7fffffff, e = absx >> 23, mant = absx & 0x7fffff;
  if (absx >= 0x7f800000) /* inf, or nan kept quiet with its top payload */
    return (uint16_t)(sign | 0x7c00 |
                      (absx > 0x7f800000 ? 0x200 | (mant >> 13) : 0));
  if (e >= 143) /* >= 65536: beyond the largest finite half */
    return (uint16_t)(sign | 0x7c00);
  uint32_t h, rem, half;
  if (e < 113) { /* below 2^-14: subnormal half, units of 2^-24 */
    if (e < 102)
      return sign;
    uint32_t m = mant | 0x800000, shift = 126 - e;
    h = m >> shift;
    rem = m & ((1u << shift) - 1);
    half = 1u << (shift - 1);
  } else {
    h = ((e - 112) << 10) | (mant >> 13);
    rem = mant & 0x1fff;
    half = 0x1000;
  }
  if (rem > half || (rem == half && (h & 1)))
    h++; /* a carry rolls into the exponent, up to inf: still correct */
  return (uint16_t)(sign | h);
}

uint16_t mc_f32_to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000)
    return (uint16_t)((x >> 16) | 0x40);
  x += 0x7fff + ((x >> 16) & 1);
  return (uint16_t)(x >> 16);
}

/* ---- conversion -------------------------------------------------------- */

static double rt_load_float(McDType t, const void *data, size_t i) {
  switch (t) {
  case MC_F32:
    return ((const float *)data)[i];
  case MC_F64:
    return ((const double *)data)[i];
  case MC_F16:
    return mc_f16_to_f32(((const uint16_t *)data)[i]);
  case MC_BF16:
    return mc_bf16_to_f32(((const uint16_t *)data)[i]);
  case MC_I32:
  case MC_I64:
  case MC_BOOL:
  case MC_DTYPE_COUNT:
    break;
  }
  return 0;
}

/* f64 -> f32 without undefined behaviour: values at or beyond FLT_MAX plus
 * half an ulp round to inf under IEEE; those are reported, smaller excess
 * rounds to FLT_MAX. Returns 0 when out of range. */
static int rt_narrow_to_f32(double v, float *out) {
  const double limit = 0x1.ffffffp+127; /* FLT_MAX + 2^103 */
  if (isfinite(v) && fabs(v) >= limit)
    return 0;
  if (isfinite(v) && fabs(v) > FLT_MAX)
    *out = v > 0 ? FLT_MAX : -FLT_MAX;
  else
    *out = (float)v;
  return 1;
}

static int rt_store_float(McDType t, void *data, size_t i, double v) {
  float f;
  if (t == MC_F64) {
    ((double *)data)[i] = v;
    return 1;
  }
  if (!rt_narrow_to_f32(v, &f))
    return 0;
  switch (t) {
  case MC_F32:
    ((float *)data)[i] = f;
    return 1;
  case MC_F16: {
    uint16_t h = mc_f32_to_f16(f);
    ((uint16_t *)data)[i] = h;
    return !(isfinite(f) && (h & 0x7fff) == 0x7c00);
  }
  case MC_BF16: {
    uint16_t h = mc_f32_to_bf16(f);
    ((uint16_t *)data)[i] = h;
    return !(isfinite(f) && (h & 0x7fff) == 0x7f80);
  }
  case MC_F64:
  case MC_I32:
  case MC_I64:
  case MC_BOOL:
  case MC_DTYPE_COUNT:
    break;
  }
  return 0;
}

static int64_t rt_load_int(McDType t, const void *data, size_t i) {
  switch (t) {
  case MC_I32:
    return ((const int32_t *)data)[i];
  case MC_I64:
    return ((const int64_t *)data)[i];
  case MC_BOOL:
    return ((const uint8_t *)data)[i];
  case MC_F32:
  case MC_F64:
  case MC_F16:
  case MC_BF16:
  case MC_DTYPE_COUNT:
    break;
  }
  return 0;
}

static int rt_store_int(McDType t, void *data, size_t i, int64_t v) {
  switch (t) {
  case MC_I32:
    if (v < INT32_MIN || v > INT32_MAX)
      return 0;
    ((int32_t *)data)[i] = (int32_t)v;
    return 1;
  case MC_I64:
    ((int64_t *)data)[i] = v;
    return 1;
  case MC_BOOL:
    if (v != 0 && v != 1)
      return 0;
    ((uint8_t *)data)[i] = (uint8_t)v;
    return 1;
  case MC_F32:
  case MC_F64:
  case MC_F16:
  case MC_BF16:
  case MC_DTYPE_COUNT:
    break;
  }
  return 0;
}

int mc_tensor_convert(const McTensor *in, McDType to, McTensor *out,
                      McError *e) {
  McTensor r;
  size_t n, nbytes;
  if (!in || !out)
    return mc_fail(e, MC_ERR_USAGE, "mc_tensor_convert: NULL tensor");
  const char *from_name = mc_dtype_name(in->dtype),
             *to_name = mc_dtype_name(to);
  if (mc_dtype_size(to) == 0 || mc_dtype_size(in->dtype) == 0)
    return mc_fail(e, MC_ERR_DTYPE, "cannot convert %s to %s: invalid dtype",
                   from_name, to_name);
  int floats = rt_is_float(in->dtype) && rt_is_float(to);
  if (!floats && !(rt_is_int(in->dtype) && rt_is_int(to)))
    return mc_fail(e, MC_ERR_DTYPE, "cannot convert %s to %s", from_name,
                   to_name);
  int rc = mc_tensor_nbytes(in, &nbytes, e);
  if (rc)
    return rc;
  if (!in->data && nbytes > 0)
    return mc_fail(e, MC_ERR_USAGE, "cannot convert: tensor has no data");
  if ((rc = mc_tensor_alloc(&r, to, in->rank, in->shape, e)))
    return rc;
  n = nbytes / mc_dtype_size(in->dtype);
  nbytes = n * mc_dtype_size(to);
  if (in->dtype == to) {
    memcpy(r.data, in->data, nbytes);
  } else if (floats) {
    for (size_t i = 0; i < n; i++) {
      double v = rt_load_float(in->dtype, in->data, i);
      if (!rt_store_float(to, r.data, i, v)) {
        mc_tensor_free(&r);
        return mc_fail(e, MC_ERR_RANGE,
                       "value %g at index %zu is out of the %s range", v, i,
                       to_name);
      }
    }
  } else {
    for (size_t i = 0; i < n; i++) {
      int64_t v = rt_load_int(in->dtype, in->data, i);
      if (!rt_store_int(to, r.data, i, v)) {
        mc_tensor_free(&r);
        return mc_fail(e, MC_ERR_RANGE,
                       "value %" PRId64 " at index %zu is out of the %s range",
                       v, i, to_name);
      }
    }
  }
  *out = r;
  return MC_OK;
}

/* Optimal string alignment: rows i - 2 .. i of the table, in turn. */
size_t mc_edit_distance(const char *a, const char *b) {
  enum { MAX = 128 };
  size_t la = strlen(a), lb = strlen(b);
  size_t rows[3][MAX + 1];
  if (la > MAX || lb > MAX)
    return SIZE_MAX;
  for (size_t j = 0; j <= lb; j++)
    rows[0][j] = j;
  for (size_t i = 1; i <= la; i++) {
    size_t *row = rows[i % 3], *up = rows[(i - 1) % 3],
           *up2 = rows[(i + 1) % 3];
    row[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t best = up[j - 1] + (a[i - 1] != b[j - 1]);
      if (up[j] + 1 < best)
        best = up[j] + 1;
      if (row[j - 1] + 1 < best)
        best = row[j - 1] + 1;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
          up2[j - 2] + 1 < best)
        best = up2[j - 2] + 1;
      row[j] = best;
    }
  }
  return rows[la % 3][lb];
}
