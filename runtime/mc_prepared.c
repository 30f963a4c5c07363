/* Prepared weights files: a model's weights as it keeps them in memory
 * (16-bit, transposed, in GEMM panels) and its prepared weights (what its
 * prepare function computes from the weights), saved once by
 * mc_model_save (modelc --prepare-weights, at compile time) and mapped by
 * mc_model_open as they are: opening converts, packs and computes nothing.
 *
 * The file is a safetensors file (mc_st_write) whose metadata "format" is
 * "modelc:prepared:<16 hex digits>", a hash of the model's weight tables:
 * every weight's name, shape, store, transposition and packing, every
 * prepared weight's spec, the GEMM's panel width and the host's byte
 * order (the data is little-endian, mapped as it is). A model opens such a
 * file only when the hash is its own; otherwise it says the file was
 * prepared for another build. Tensors: each weight under its name, each
 * prepared weight as "prepared.<i>", all rank 1 (their element count as
 * kept), f32 ones first so that every tensor is aligned.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* strdup */
#endif

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mc_runtime.h"

#define PREPARED_PREFIX "modelc:prepared:"

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    h = (h ^ b[i]) * 0x100000001b3ULL;
  return h;
}

static uint64_t fnv_i64(uint64_t h, int64_t v) {
  unsigned char b[8];
  for (int i = 0; i < 8; i++)
    b[i] = (unsigned char)((uint64_t)v >> (8 * i));
  return fnv(h, b, 8);
}

/* "modelc:prepared:<hash>" of d's tables into buf (40 bytes). */
static void prepared_format(const McModelDesc *d, char *buf, size_t size) {
  uint64_t h = fnv(0xcbf29ce484222325ULL, PREPARED_PREFIX, 16);
  const uint16_t one = 1; /* the data is mapped as it is: little-endian */
  unsigned char little;
  memcpy(&little, &one, 1);
  h = fnv_i64(h, MC_GEMM_PANEL);
  h = fnv_i64(h, MC_GEMM_PANEL16);
  h = fnv_i64(h, little);
  h = fnv_i64(h, d->nweights);
  for (int i = 0; i < d->nweights; i++) {
    const McWeightSpec *w = &d->weights[i];
    h = fnv(h, w->name, strlen(w->name) + 1);
    h = fnv_i64(h, w->rank);
    for (int j = 0; j < w->rank; j++)
      h = fnv_i64(h, w->shape[j]);
    h = fnv_i64(h, w->store);
    h = fnv_i64(h, w->transposed);
    h = fnv_i64(h, w->packed);
  }
  h = fnv_i64(h, d->nprepared);
  for (int i = 0; i < d->nprepared; i++) {
    const McPreparedSpec *p = &d->prepared[i];
    int64_t v[6] = {p->weight, p->floats, p->packed,
                    p->rows,   p->cols,   p->transposed};
    for (int j = 0; j < 6; j++)
      h = fnv_i64(h, v[j]);
  }
  snprintf(buf, size, "%s%016" PRIx64, PREPARED_PREFIX, h);
}

/* How weight i (< nweights) or prepared weight i - nweights is kept: its
 * dtype and element count. */
static void kept(const McModelDesc *d, int i, McDType *dtype, int64_t *n) {
  if (i < d->nweights) {
    const McWeightSpec *w = &d->weights[i];
    *dtype = w->store;
    if (w->packed && w->rank == 2) {
      *n =
          w->store == MC_F32
              ? mc_gemm_weight_floats(w->shape[0], w->shape[1], w->transposed)
              : mc_gemm_weight16_elems(w->shape[0], w->shape[1], w->transposed);
      return;
    }
    *n = 1;
    for (int j = 0; j < w->rank; j++)
      *n *= w->shape[j];
    return;
  }
  const McPreparedSpec *p = &d->prepared[i - d->nweights];
  *dtype = MC_F32;
  *n = p->packed ? mc_gemm_weight_floats(p->rows, p->cols, p->transposed)
                 : p->floats;
}

/* The slot of m->w that weight i (or prepared weight i - nweights) is. */
static int slot(const McModelDesc *d, int i) {
  return i < d->nweights ? i : d->prepared[i - d->nweights].weight;
}

static void prepared_name(const McModelDesc *d, int i, char *buf, size_t size) {
  if (i < d->nweights)
    snprintf(buf, size, "%s", d->weights[i].name);
  else
    snprintf(buf, size, "prepared.%d", i - d->nweights);
}

int mc_model_save(const McModel *m, const char *path, McError *e) {
  const McModelDesc *d = m->desc;
  int n = d->nweights + d->nprepared, rc = MC_OK;
  McTensor *t = calloc((size_t)n + 1, sizeof *t);
  char **names = calloc((size_t)n + 1, sizeof *names);
  const char **order = calloc((size_t)n + 1, sizeof *order);
  int k = 0;
  for (int pass = 0; t && names && order && pass < 2; pass++)
    for (int i = 0; i < n; i++) { /* f32 first, then the 16-bit ones */
      McDType dt;
      int64_t count;
      kept(d, i, &dt, &count);
      if ((dt == MC_F32) != (pass == 0))
        continue;
      char name[512];
      prepared_name(d, i, name, sizeof name);
      if (!(names[k] = strdup(name)))
        break;
      order[k] = names[k];
      t[k] = (McTensor){dt, 1, {count}, (void *)m->w[slot(d, i)]};
      k++;
    }
  if (k < n)
    rc = mc_fail(e, MC_ERR_NOMEM, "out of memory");
  char format[64];
  prepared_format(d, format, sizeof format);
  if (!rc)
    rc = mc_st_write(path, format, order, t, n, e);
  for (int i = 0; names && i < n; i++)
    free(names[i]);
  free(names);
  free(order);
  free(t);
  return rc;
}

/* The tensors of 2 MB or more that m->w points at in the mapping, copied
 * into 2 MB pages and their file pages given back: a memcpy, no conversion,
 * and the TLB of the loader's weights (the mapping's 4 KB pages made
 * GPT-2's prompt 15-25% slower). Without memory a tensor stays mapped. */
static void copy_large(McModel *m, const McSafetensors *st, int total, int n,
                       const int *which) {
  const McModelDesc *d = m->desc;
  for (int k = 0; k < total; k++) {
    int i = k < n ? (which ? which[k] : k) : d->nweights + (k - n);
    char name[512];
    prepared_name(d, i, name, sizeof name);
    const McStTensor *x = mc_st_find(st, name, NULL);
    if (!x || x->nbytes < (2u << 20))
      continue;
    if (!m->copies && !(m->copies = calloc((size_t)(d->nweights + d->nprepared),
                                           sizeof *m->copies)))
      return;
    void *p = mc_weights_alloc(x->nbytes);
    if (!p)
      continue;
    memcpy(p, x->data, x->nbytes);
    mc_weights_release(x->data, x->nbytes);
    m->w[slot(d, i)] = m->copies[slot(d, i)] = p;
  }
}

int mc_prepared_load(McModel *m, const char *path, const int *which, int n,
                     int prepare, int *used, McError *e) {
  const McModelDesc *d = m->desc;
  *used = 0;
  McSafetensors *st;
  int rc = mc_st_open(path, &st, e);
  if (rc)
    return rc;
  const char *format = mc_st_format(st);
  if (!format || strncmp(format, PREPARED_PREFIX, 16) != 0) {
    mc_st_close(st); /* a weights file of the usual kind */
    return MC_OK;
  }
  char mine[64];
  prepared_format(d, mine, sizeof mine);
  if (strcmp(format, mine) != 0) {
    rc = mc_fail(e, MC_ERR_FORMAT,
                 "%s holds weights prepared for another build of a model "
                 "(%s, this one is %s): prepare them again with modelc "
                 "--prepare-weights, or pass the original weights",
                 path, format + 16, mine + 16);
    mc_st_close(st); /* after the message: format is st's */
    return rc;
  }
  /* weights (which[i], or i) then, with prepare, every prepared weight */
  int total = n + (prepare ? d->nprepared : 0);
  for (int k = 0; !rc && k < total; k++) {
    int i = k < n ? (which ? which[k] : k) : d->nweights + (k - n);
    char name[512];
    prepared_name(d, i, name, sizeof name);
    McDType dt;
    int64_t count;
    kept(d, i, &dt, &count);
    const McStTensor *x = mc_st_find(st, name, NULL);
    if (!x || strcmp(x->name, name) != 0)
      rc = mc_fail(e, MC_ERR_NAME, "%s: prepared weight '%s' is missing", path,
                   name);
    else if (x->dtype != dt || x->rank != 1 || x->shape[0] != count ||
             (uintptr_t)x->data % mc_dtype_size(dt) != 0)
      rc = mc_fail(e, MC_ERR_SHAPE,
                   "%s: prepared weight '%s' is not kept as this model keeps "
                   "it (%s[%" PRId64 "], aligned)",
                   path, name, mc_dtype_name(dt), count);
    else
      m->w[slot(d, i)] = x->data;
  }
  if (rc) {
    mc_st_close(st);
    return rc;
  }
  copy_large(m, st, total, n, which);
  m->kept = st;
  *used = 1;
  return MC_OK;
}
