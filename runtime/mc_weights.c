/* Model weights: a safetensors file resolved against the specs a model
 * declares, with every tensor presented as its spec keeps it (f32, or
 * f16/bf16 bits; transposed, packed in GEMM panels or neither).
 *
 * Invariants after mc_weights_load succeeds: every spec resolved to exactly
 * one tensor (exact name, else a unique "." suffix), of a float dtype and of
 * exactly the spec's shape; data[i] is in the spec's store dtype, host byte
 * order and layout, pointing into the mapping (already in that form) or
 * into owned[i]; nothing is converted again after load.
 */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE /* madvise */
#endif
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "mc_runtime.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct McWeights {
  McSafetensors *st;
  int n;
  const void **data; /* into the mapping, or owned[i] */
  void **owned;
};

static uint64_t weights_load_le(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

/* Up to two tensors matching name by "." suffix into m[]; returns how many
 * there are (only called once mc_st_find reported ambiguity). */
static int weights_suffix_matches(const McSafetensors *st, const char *name,
                                  const McStTensor *m[2]) {
  size_t n = strlen(name);
  int count = 0;
  for (int i = 0; i < mc_st_count(st); i++) {
    const char *t = mc_st_get(st, i)->name;
    size_t l = strlen(t);
    if (l > n && t[l - n - 1] == '.' && memcmp(t + l - n, name, n) == 0) {
      if (count < 2)
        m[count] = mc_st_get(st, i);
      count++;
    }
  }
  return count;
}

/* The tensor whose name, or a "."-suffix of it, is closest to name; NULL if
 * nothing is reasonably close. */
static const char *weights_hint(const McSafetensors *st, const char *name) {
  size_t best = strlen(name) / 3 + 1;
  const char *hint = NULL;
  for (int i = 0; i < mc_st_count(st); i++) {
    const char *t = mc_st_get(st, i)->name;
    for (const char *s = t; s; s = strchr(s, '.') ? strchr(s, '.') + 1 : NULL) {
      size_t d = mc_edit_distance(name, s);
      if (d < best) {
        best = d;
        hint = t;
      }
    }
  }
  return hint;
}

static int weights_bad_value(const McWeightSpec *spec, double v, size_t i,
                             McError *e) {
  return mc_fail(e, MC_ERR_RANGE,
                 "weight '%s': value %g at index %zu is out of the f32 "
                 "range",
                 spec->name, v, i);
}

/* f32 data for tensor t: in place when possible, else converted into a new
 * buffer (*owned). */
static int weights_convert(const McWeightSpec *spec, const McStTensor *t,
                           const float **data, float **owned, McError *e) {
  const unsigned char *p = t->data;
  size_t n = t->nbytes / mc_dtype_size(t->dtype);
  const uint16_t one = 1;
  int little = *(const unsigned char *)&one == 1;
  if (t->dtype == MC_F32 && little && (uintptr_t)p % sizeof(float) == 0) {
    *data = (const float *)t->data;
    return MC_OK;
  }
  float *f = malloc(n ? n * sizeof *f : 1);
  if (!f)
    return mc_fail(e, MC_ERR_NOMEM, "weight '%s': out of memory", spec->name);
  for (size_t i = 0; i < n; i++) {
    uint64_t bits;
    switch (t->dtype) {
    case MC_F32: {
      uint32_t b = (uint32_t)weights_load_le(p + 4 * i, 4);
      memcpy(&f[i], &b, 4);
      break;
    }
    case MC_F16:
      f[i] = mc_f16_to_f32((uint16_t)weights_load_le(p + 2 * i, 2));
      break;
    case MC_BF16:
      f[i] = mc_bf16_to_f32((uint16_t)weights_load_le(p + 2 * i, 2));
      break;
    case MC_F64: {
      double d;
      bits = weights_load_le(p + 8 * i, 8);
      memcpy(&d, &bits, 8);
      /* FLT_MAX + half an ulp and beyond round to inf: an error */
      if (isfinite(d) && fabs(d) >= 0x1.ffffffp+127) {
        free(f);
        return weights_bad_value(spec, d, i, e);
      }
      f[i] = fabs(d) > FLT_MAX && isfinite(d) ? (d > 0 ? FLT_MAX : -FLT_MAX)
                                              : (float)d;
      break;
    }
    case MC_I32:
    case MC_I64:
    case MC_BOOL:
    case MC_DTYPE_COUNT:
      free(f);
      return mc_fail(e, MC_ERR_DTYPE, "weight '%s': not a float tensor",
                     spec->name);
    }
  }
  *data = *owned = f;
  return MC_OK;
}

/* Gives the mapping's whole pages inside [p, p + n) back to the system
 * (they are clean: read again from the file if ever touched). */
void mc_weights_release(const void *p, size_t n) {
  long page = sysconf(_SC_PAGESIZE);
  if (page <= 0 || n < (size_t)page)
    return;
  uintptr_t a = ((uintptr_t)p + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
  uintptr_t b = ((uintptr_t)p + n) & ~((uintptr_t)page - 1);
  if (b > a)
    madvise((void *)a, b - a, MADV_DONTNEED);
}

/* n bytes for a converted weight: its whole 2 MB blocks in 2 MB pages
 * where the system gives them on request (a few faults instead of one per
 * 4 KB when it is written, and fewer TLB misses when decoding streams it);
 * the tail in small pages, so no weight holds most of a 2 MB page it does
 * not use (48 such tails were 45 MB of GPT-2 small). */
void *mc_weights_alloc(size_t n) {
  enum { HUGE = 2 << 20 };
  void *p = NULL;
  if (n < HUGE)
    return malloc(n ? n : 1);
  if (posix_memalign(&p, HUGE, n) != 0)
    return NULL;
#ifdef MADV_HUGEPAGE
  madvise(p, n / HUGE * HUGE, MADV_HUGEPAGE);
#endif
  return p;
}

/* Tensor t in the spec's store and layout: f32 as weights_convert gives
 * it, then packed, or transposed and/or rounded to 16 bits, into a buffer
 * of its own;
 * F16/BF16 data of the store itself is used as it is when it can be. */
static int weights_layout(const McWeightSpec *spec, const McStTensor *t,
                          const void **data, void **owned, McError *e) {
  int half = spec->store == MC_F16 || spec->store == MC_BF16;
  int packed = spec->packed && spec->rank == 2;
  int transpose = spec->transposed && spec->rank == 2 && !packed;
  const uint16_t one = 1;
  if (half && !transpose && !packed && t->dtype == spec->store &&
      *(const unsigned char *)&one == 1 && (uintptr_t)t->data % 2 == 0) {
    *data = t->data;
    return MC_OK;
  }
  const float *f = NULL;
  float *f_owned = NULL;
  int rc = weights_convert(spec, t, &f, &f_owned, e);
  if (rc || (!half && !transpose && !packed)) {
    *data = f;
    *owned = f_owned;
    return rc;
  }
  size_t n = t->nbytes / mc_dtype_size(t->dtype);
  if (packed) { /* B = the matrix or its transpose, in GEMM panels */
    int64_t r = spec->shape[0], c = spec->shape[1];
    int tr = spec->transposed;
    void *p =
        half ? mc_weights_alloc(2 * (size_t)mc_gemm_weight16_elems(r, c, tr))
             : mc_weights_alloc(4 * (size_t)mc_gemm_weight_floats(r, c, tr));
    if (p && half)
      mc_gemm_pack_weight16(
          r, c, tr, f, spec->store == MC_F16 ? MC_W16_F16 : MC_W16_BF16, p);
    else if (p)
      mc_gemm_pack_weight(r, c, tr, f, p);
    free(f_owned);
    if (!p)
      return mc_fail(e, MC_ERR_NOMEM, "weight '%s': out of memory", spec->name);
    mc_weights_release(t->data, t->nbytes);
    *data = *owned = p;
    return MC_OK;
  }
  int64_t rows = transpose ? spec->shape[0] : 1;
  int64_t cols = transpose ? spec->shape[1] : (int64_t)n;
  float *tf = NULL;
  if (transpose) { /* [rows, cols] -> [cols, rows], in 32 x 32 blocks */
    tf = mc_weights_alloc(n * sizeof *tf);
    if (tf)
      for (int64_t c0 = 0; c0 < cols; c0 += 32)
        for (int64_t r0 = 0; r0 < rows; r0 += 32) {
          int64_t c1 = c0 + 32 < cols ? c0 + 32 : cols;
          int64_t r1 = r0 + 32 < rows ? r0 + 32 : rows;
          for (int64_t c = c0; c < c1; c++) /* writes along a row of tf */
            for (int64_t r = r0; r < r1; r++)
              tf[c * rows + r] = f[r * cols + c];
        }
  }
  void *out = tf;
  if (half && (!transpose || tf)) {
    uint16_t *h = mc_weights_alloc(n * sizeof *h);
    if (h) {
      if (spec->store == MC_F16)
        mc_f32_to_f16_n(tf ? tf : f, h, (int64_t)n);
      else
        mc_f32_to_bf16_n(tf ? tf : f, h, (int64_t)n);
    }
    free(tf);
    out = h;
  }
  free(f_owned);
  if (!out)
    return mc_fail(e, MC_ERR_NOMEM, "weight '%s': out of memory", spec->name);
  mc_weights_release(t->data, t->nbytes);
  *data = *owned = out;
  return MC_OK;
}

static int weights_resolve(const McSafetensors *st, const char *path,
                           const McWeightSpec *spec, const void **data,
                           void **owned, McError *e) {
  const McStTensor *m[2] = {NULL, NULL};
  char want[256], found[256];
  if (!spec->name || spec->rank < 0 || spec->rank > MC_MAX_RANK)
    return mc_fail(e, MC_ERR_USAGE, "invalid weight spec");
  int ambiguous;
  const McStTensor *t = mc_st_find(st, spec->name, &ambiguous);
  if (ambiguous) {
    int count = weights_suffix_matches(st, spec->name, m);
    return mc_fail(e, MC_ERR_NAME,
                   "weight '%s' is ambiguous in %s: '%s' and '%s' both match%s",
                   spec->name, path, m[0]->name, m[1]->name,
                   count > 2 ? " (and more)" : "");
  }
  if (!t) {
    const char *hint = weights_hint(st, spec->name);
    return mc_fail(e, MC_ERR_NAME, "weight '%s' not found in %s%s%s%s",
                   spec->name, path, hint ? " (did you mean '" : "",
                   hint ? hint : "", hint ? "'?)" : "");
  }
  if (t->dtype != MC_F32 && t->dtype != MC_F16 && t->dtype != MC_BF16 &&
      t->dtype != MC_F64)
    return mc_fail(e, MC_ERR_DTYPE,
                   "weight '%s': found %s data in %s, expected a float tensor "
                   "(F32, F16, BF16 or F64)",
                   spec->name, mc_dtype_name(t->dtype), path);
  int same = t->rank == spec->rank;
  for (int i = 0; same && i < t->rank; i++)
    same = t->shape[i] == spec->shape[i];
  if (!same)
    return mc_fail(e, MC_ERR_SHAPE, "weight '%s': expected shape %s, found %s",
                   spec->name,
                   mc_shape_str(spec->rank, spec->shape, want, sizeof want),
                   mc_shape_str(t->rank, t->shape, found, sizeof found));
  return weights_layout(spec, t, data, owned, e);
}

int mc_weights_load(const char *path, const McWeightSpec *specs, int n,
                    McWeights **out, McError *e) {
  McSafetensors *st;
  if (!path || !out || n < 0 || (n > 0 && !specs))
    return mc_fail(e, MC_ERR_USAGE, "mc_weights_load: bad arguments");
  *out = NULL;
  int rc = mc_st_open(path, &st, e);
  if (rc)
    return rc;
  McWeights *w = calloc(1, sizeof *w);
  if (w) {
    w->st = st;
    w->n = n;
    w->data = calloc((size_t)n + 1, sizeof *w->data);
    w->owned = calloc((size_t)n + 1, sizeof *w->owned);
  }
  if (!w || !w->data || !w->owned) {
    if (!w)
      mc_st_close(st);
    mc_weights_free(w);
    return mc_fail(e, MC_ERR_NOMEM, "out of memory");
  }
  for (int i = 0; i < n; i++)
    if ((rc = weights_resolve(st, path, &specs[i], &w->data[i], &w->owned[i],
                              e))) {
      mc_weights_free(w);
      return rc;
    }
  *out = w;
  return MC_OK;
}

const void *mc_weights_data(const McWeights *w, int i) {
  return w && i >= 0 && i < w->n ? w->data[i] : NULL;
}

const float *mc_weights_get(const McWeights *w, int i) {
  return mc_weights_data(w, i);
}

void mc_weights_free(McWeights *w) {
  if (!w)
    return;
  for (int i = 0; w->owned && i < w->n; i++)
    free(w->owned[i]);
  free(w->owned);
  free(w->data);
  mc_st_close(w->st);
  free(w);
}
