/* A generated model's glue, driven by the tables it defines (mc_runtime.h):
 * opening (weights, prepared weights), the McModelInfo adapter that binds
 * the sizes from the input shapes, and the memory plan's run-time placing. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mc_runtime.h"

/* ---- opening ------------------------------------------------------------ */

/* The prepared weights: d->prepare's outputs, packed where the spec says. */
static int model_prepare(McModel *m, McError *e) {
  const McModelDesc *d = m->desc;
  for (int i = 0; i < d->nprepared; i++)
    if (!(m->prepared[i] =
              mc_alloc_zeroed(sizeof(float) * (size_t)d->prepared[i].floats)))
      return mc_fail(e, MC_ERR_NOMEM, "%s_open: out of memory", d->name);
  int rc = d->prepare(m, NULL, NULL, m->prepared, e);
  if (rc != MC_OK)
    return rc;
  for (int i = 0; i < d->nprepared; i++) {
    const McPreparedSpec *p = &d->prepared[i];
    if (p->packed) {
      float *panels =
          mc_alloc_zeroed(sizeof(float) * (size_t)mc_gemm_weight_floats(
                                              p->rows, p->cols, p->transposed));
      if (!panels)
        return mc_fail(e, MC_ERR_NOMEM, "%s_open: out of memory", d->name);
      mc_gemm_pack_weight(p->rows, p->cols, p->transposed, m->prepared[i],
                          panels);
      free(m->prepared[i]);
      m->prepared[i] = panels;
    }
    m->w[p->weight] = m->prepared[i];
  }
  return MC_OK;
}

/* Loads the n weights specs[] (d->weights' which[i]-th, NULL: i-th) and,
 * with `prepare`, computes the prepared ones. */
static McModel *model_load(const McModelDesc *d, const char *weights_path,
                           const McWeightSpec *specs, const int *which, int n,
                           int prepare, McError *e) {
  McModel *m = calloc(1, sizeof *m);
  int nw = d->nweights + d->nprepared;
  if (m) {
    m->desc = d;
    m->w = calloc((size_t)nw + 1, sizeof *m->w);
    m->prepared = calloc((size_t)d->nprepared + 1, sizeof *m->prepared);
  }
  if (!m || !m->w || !m->prepared) {
    mc_fail(e, MC_ERR_NOMEM, "%s_open: out of memory", d->name);
    mc_model_close(m);
    return NULL;
  }
  int rc = MC_OK, mapped = 0;
  if (n > 0) {
    if (!weights_path)
      weights_path = d->default_weights;
    if (!weights_path)
      rc = mc_fail(e, MC_ERR_USAGE, "%s_open: no weights file given", d->name);
    else
      rc = mc_prepared_load(m, weights_path, which, n, prepare, &mapped, e);
    if (rc == MC_OK && !mapped)
      rc = mc_weights_load(weights_path, specs, n, &m->weights, e);
    for (int i = 0; rc == MC_OK && !mapped && i < n; i++)
      m->w[which ? which[i] : i] = mc_weights_data(m->weights, i);
  }
  if (rc == MC_OK && !mapped && prepare && d->nprepared > 0)
    rc = model_prepare(m, e);
  if (rc != MC_OK) {
    mc_model_close(m);
    return NULL;
  }
  return m;
}

McModel *mc_model_open(const McModelDesc *d, const char *weights_path,
                       McError *e) {
  return model_load(d, weights_path, d->weights, NULL, d->nweights, 1, e);
}

struct McArena {
  int key;
  int busy; /* mc_model_workspace handed data to a call not done yet */
  size_t bytes;
  void *data;
  McArena *next;
};

/* Guards every model's list of arenas and their busy flags (held for a
 * few instructions: one lock for all models is enough). */
static atomic_flag arenas_lock = ATOMIC_FLAG_INIT;

static void arenas_take(void) {
  while (atomic_flag_test_and_set_explicit(&arenas_lock, memory_order_acquire))
    continue;
}

static void arenas_give(void) {
  atomic_flag_clear_explicit(&arenas_lock, memory_order_release);
}

/* m's arena of function `key`; when missing, added if `add` (NULL: no
 * memory), else NULL. Under arenas_lock. */
static McArena *arena_of(McModel *m, int key, int add) {
  McArena *a = m->arenas;
  while (a && a->key != key)
    a = a->next;
  if (!a && add && (a = calloc(1, sizeof *a))) {
    a->key = key;
    a->next = m->arenas;
    m->arenas = a;
  }
  return a;
}

void *mc_model_workspace(McModel *m, int key, size_t bytes) {
  arenas_take();
  McArena *a = arena_of(m, key, 1);
  int mine = a && !a->busy;
  if (mine)
    a->busy = 1;
  arenas_give();
  if (!mine)
    return mc_alloc_zeroed(bytes);
  if (!a->data || a->bytes < bytes) {
    void *data = mc_alloc_zeroed(bytes);
    if (!data) {
      arenas_take();
      a->busy = 0;
      arenas_give();
      return NULL;
    }
    free(a->data);
    a->data = data;
    a->bytes = bytes;
  }
  return a->data;
}

void mc_model_workspace_done(McModel *m, int key, void *ws) {
  arenas_take();
  McArena *a = arena_of(m, key, 0);
  if (a && a->busy && a->data == ws) {
    a->busy = 0;
    ws = NULL;
  }
  arenas_give();
  free(ws);
}

void *mc_model_arena(McModel *m, int key, size_t bytes, size_t keep) {
  arenas_take();
  McArena *a = arena_of(m, key, 1);
  arenas_give();
  if (!a)
    return NULL;
  if (a->bytes < bytes) {
    void *data = mc_alloc_zeroed(bytes);
    if (!data)
      return NULL;
    if (a->data)
      memcpy(data, a->data, keep);
    free(a->data);
    a->data = data;
    a->bytes = bytes;
  }
  return a->data;
}

void mc_model_close(McModel *m) {
  if (!m)
    return;
  for (McArena *a = m->arenas, *next; a; a = next) {
    next = a->next;
    free(a->data);
    free(a);
  }
  mc_weights_free(m->weights);
  mc_st_close(m->kept);
  for (int i = 0; m->copies && i < m->desc->nweights + m->desc->nprepared; i++)
    free(m->copies[i]);
  free(m->copies);
  for (int i = 0; m->prepared && i < m->desc->nprepared; i++)
    free(m->prepared[i]);
  free(m->prepared);
  free(m->w);
  free(m);
}

int mc_entry_open(const McEntry *x, const char *weights_path, void **handle,
                  McError *e) {
  McModel *m = model_load(x->model, weights_path, x->weights, x->which,
                          x->nweights, x->prepare, e);
  *handle = m;
  return m ? MC_OK : e && e->code ? e->code : MC_ERR_IO;
}

/* ---- binding the sizes -------------------------------------------------- */

typedef struct Binding {
  const McEntry *x;
  const McTensor *in;
  int64_t value[64];
  const char *from[64]; /* the input that gave symbol s; NULL: unbound */
} Binding;

/* Whether d is c*S + k with c > 0: solvable for S. */
static int dim_linear(const McDim *d, int *sym, int64_t *c, int64_t *k) {
  int nsym = 0;
  *k = 0;
  for (int t = 0; t < d->nterms; t++) {
    const McDimTerm *term = &d->terms[t];
    if (term->nfactors == 0) {
      *k = term->coef;
    } else if (term->nfactors == 1 && term->coef > 0) {
      *sym = term->sym[0];
      *c = term->coef;
      nsym++;
    } else {
      return 0;
    }
  }
  return nsym == 1;
}

/* d's value once its symbols are bound (wrapping like the generated code's
 * int64_t arithmetic would not: sizes this large fail the allocation). */
static int64_t dim_value(const McDim *d, const int64_t *value) {
  uint64_t sum = 0;
  for (int t = 0; t < d->nterms; t++) {
    uint64_t p = (uint64_t)d->terms[t].coef;
    for (int f = 0; f < d->terms[t].nfactors; f++)
      p *= (uint64_t)value[d->terms[t].sym[f]];
    sum += p;
  }
  return (int64_t)sum;
}

/* if (v != d) fail, naming where d's symbol came from (s < 0: d is not
 * linear in one symbol). */
static int check_dim(Binding *b, const McIOSpec *io, int axis, int64_t v,
                     const McDim *d, int s, McError *e) {
  int64_t want = dim_value(d, b->value);
  if (v == want)
    return MC_OK;
  const char *sym = s >= 0 ? b->x->model->symbols[s] : NULL;
  int plain = sym && strcmp(sym, d->text) == 0;
  if (s < 0)
    return mc_fail(e, MC_ERR_SHAPE,
                   "input '%s': dimension %d is %lld but %s = %lld", io->name,
                   axis, (long long)v, d->text, (long long)want);
  return mc_fail(
      e, MC_ERR_SHAPE,
      "input '%s': dimension %d is %lld but %s = %lld%s%s from input "
      "'%s'%s",
      io->name, axis, (long long)v, d->text, (long long)want, plain ? "" : " (",
      plain ? "" : sym, b->from[s], plain ? "" : ")");
}

/* Pass 1 over a present input: dtype, rank, constant and linear dims. */
static int bind_input(Binding *b, int i, int *deferred, McError *e) {
  const McIOSpec *io = &b->x->inputs[i];
  const McTensor *t = &b->in[i];
  if (t->dtype != io->dtype)
    return mc_fail(e, MC_ERR_DTYPE, "input '%s' has dtype %s, expected %s",
                   io->name, mc_dtype_name(t->dtype), mc_dtype_name(io->dtype));
  if (t->rank != io->rank) {
    char ty[256];
    int len = snprintf(ty, sizeof ty, "%s[", mc_dtype_name(io->dtype));
    for (int j = 0; j < io->rank && len < (int)sizeof ty; j++)
      len += snprintf(ty + len, sizeof ty - (size_t)len, "%s%s", j ? ", " : "",
                      io->dims[j].text);
    if (len < (int)sizeof ty)
      snprintf(ty + len, sizeof ty - (size_t)len, "]");
    return mc_fail(e, MC_ERR_SHAPE, "input '%s' has rank %d, expected %d (%s)",
                   io->name, t->rank, io->rank, ty);
  }
  for (int j = 0; j < io->rank; j++) {
    const McDim *d = &io->dims[j];
    int64_t v = t->shape[j], c, k;
    int s, rc = MC_OK;
    if (d->nterms == 0 || (d->nterms == 1 && d->terms[0].nfactors == 0)) {
      int64_t want = d->nterms ? d->terms[0].coef : 0;
      if (v != want)
        rc = mc_fail(e, MC_ERR_SHAPE,
                     "input '%s': dimension %d is %lld but must be %lld",
                     io->name, j, (long long)v, (long long)want);
    } else if (!dim_linear(d, &s, &c, &k)) {
      *deferred = 1;
    } else if (!b->from[s]) {
      if (v < k || (v - k) % c != 0)
        rc = mc_fail(e, MC_ERR_SHAPE,
                     "input '%s': dimension %d is %lld, not of the form %s",
                     io->name, j, (long long)v, d->text);
      b->value[s] = (v - k) / c;
      b->from[s] = io->name;
    } else {
      rc = check_dim(b, io, j, v, d, s, e);
    }
    if (rc != MC_OK)
      return rc;
  }
  return MC_OK;
}

/* Binds every symbol of the entry from the inputs and checks them. */
static int bind(Binding *b, McError *e) {
  const McEntry *x = b->x;
  int deferred = 0, rc = MC_OK;
  for (int i = 0; rc == MC_OK && i < x->ninputs; i++) {
    if (b->in[i].data)
      rc = bind_input(b, i, &deferred, e);
    else if (!x->inputs[i].optional)
      rc =
          mc_fail(e, MC_ERR_USAGE, "input '%s' is required", x->inputs[i].name);
  }
  for (int s = 0; rc == MC_OK && s < x->model->nsymbols; s++)
    if ((x->syms >> s & 1) && !b->from[s])
      rc = mc_fail(e, MC_ERR_USAGE,
                   "cannot determine %s: the inputs that give it are absent",
                   x->model->symbols[s]);
  for (int i = 0; rc == MC_OK && deferred && i < x->ninputs; i++) {
    const McIOSpec *io = &x->inputs[i];
    int s;
    int64_t c, k;
    for (int j = 0; rc == MC_OK && b->in[i].data && j < io->rank; j++)
      if (io->dims[j].nterms > 1 ||
          (io->dims[j].nterms == 1 && io->dims[j].terms[0].nfactors > 0))
        if (!dim_linear(&io->dims[j], &s, &c, &k))
          rc = check_dim(b, io, j, b->in[i].shape[j], &io->dims[j], -1, e);
  }
  return rc;
}

int mc_entry_bind(const McEntry *x, const McTensor *inputs, int64_t *syms,
                  McTensor *outputs, McError *e) {
  Binding b;
  memset(&b, 0, sizeof b);
  b.x = x;
  b.in = inputs;
  int rc = bind(&b, e), nsyms = 0;
  for (int s = 0; s < x->model->nsymbols; s++)
    if (x->syms >> s & 1)
      syms[nsyms++] = b.value[s];
  for (int i = 0; rc == MC_OK && i < x->noutputs; i++) {
    const McIOSpec *io = &x->outputs[i];
    outputs[i].dtype = io->dtype;
    outputs[i].rank = io->rank;
    for (int j = 0; j < io->rank; j++)
      outputs[i].shape[j] = dim_value(&io->dims[j], b.value);
  }
  return rc;
}

/* Whether an output's buffer from an earlier run holds what this run gives:
 * the same dtype, rank and shape as `now` (bound, data not yet set). */
static int same_output(const McTensor *before, const McTensor *now) {
  if (!before->data || before->dtype != now->dtype || before->rank != now->rank)
    return 0;
  for (int j = 0; j < now->rank; j++)
    if (before->shape[j] != now->shape[j])
      return 0;
  return 1;
}

int mc_entry_run(const McEntry *x, void *handle, const McTensor *inputs,
                 McTensor *outputs, McError *e) {
  int64_t syms[64];
  McTensor *before = malloc(sizeof *before * (size_t)(x->noutputs + 1));
  if (before)
    memcpy(before, outputs, sizeof *outputs * (size_t)x->noutputs);
  int rc = mc_entry_bind(x, inputs, syms, outputs, e);
  void **in = malloc(sizeof(void *) * (size_t)(x->ninputs + x->noutputs + 1));
  void **out = in + x->ninputs;
  if (rc == MC_OK && (!in || !before))
    rc = mc_fail(e, MC_ERR_NOMEM, "out of memory");
  for (int i = 0; rc == MC_OK && i < x->ninputs; i++)
    in[i] = inputs[i].data;
  for (int i = 0; rc == MC_OK && i < x->noutputs; i++) {
    if (same_output(&before[i], &outputs[i])) {
      outputs[i].data = before[i].data; /* run again into its buffer */
    } else {
      free(before[i].data);
      outputs[i].data = NULL;
      rc = mc_tensor_alloc(&outputs[i], outputs[i].dtype, outputs[i].rank,
                           outputs[i].shape, e);
    }
    out[i] = outputs[i].data;
  }
  if (rc == MC_OK)
    rc = x->run(handle, syms, in, out, e);
  if (rc != MC_OK)
    for (int i = 0; i < x->noutputs; i++)
      mc_tensor_free(&outputs[i]);
  free(before);
  free(in);
  return rc;
}

/* ---- the memory plan ---------------------------------------------------- */

size_t mc_plan_place(int i, const int *meets, int n, size_t *off,
                     const size_t *size, size_t end) {
  size_t at = 0;
  for (int k = 0; k < n; k++) {
    size_t lo = off[meets[k]], hi = lo + size[meets[k]];
    if (at < hi && lo < at + size[i]) {
      at = hi;
      k = -1; /* moved past it: every placed buffer again */
    }
  }
  off[i] = at;
  return at + size[i] > end ? at + size[i] : end;
}

void mc_plan_check(const char *fn, int n, const int (*live)[2],
                   const size_t *off, const size_t *size, size_t arena) {
  for (int i = 0; i < n; i++) {
    if (off[i] + size[i] > arena) {
      fprintf(stderr, "%s: buffer %d ends past the arena\n", fn, i);
      abort();
    }
    for (int j = i + 1; j < n; j++)
      if (live[i][0] <= live[j][1] && live[j][0] <= live[i][1] && size[i] &&
          size[j] && off[i] < off[j] + size[j] && off[j] < off[i] + size[i]) {
        fprintf(stderr, "%s: buffers %d and %d are live together and overlap\n",
                fn, i, j);
        abort();
      }
  }
}
