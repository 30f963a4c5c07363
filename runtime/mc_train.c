/* The driver of a training entry's program:
 *
 *   PROG ENTRY --weights INIT.safetensors --data name=FILE.npy ...
 *        --steps N [--batch B] [--seed S] [--checkpoint-every K]
 *        [--threads T] -o OUT.safetensors
 *
 * Each --data array holds one row per example (all arrays the same number
 * of rows, R); step k (1 .. N) runs the entry on the next B rows of every
 * array, with its step input = k. B is --batch, else the constant first
 * dimension of a data input. Rows are taken in order; a batch never spans
 * two epochs: when fewer than B rows remain, a new epoch starts at row 0.
 * With --seed S each epoch first shuffles the row order: the generator
 * state starts at S, next() adds 0x9E3779B97F4A7C15 to it and returns
 * mc_splitmix64_mix(state), and the shuffle is Fisher-Yates over the
 * current order: for i = R-1 down to 1, j = next() % (i + 1), swap rows i
 * and j (tests/e2e/test_train.py reproduces it for PyTorch).
 *
 * After each step the entry's updates (McEntry.updates) replace the
 * weights it read: the new weights are written into a second buffer of
 * each and the two swap; the weights the entry trains are the program's
 * own f32 copies (the compiler keeps them in the file's layout). The
 * optimizer states live in the entry's arena, which the model keeps from
 * call to call (mc_model_arena), so a step allocates nothing. Every scalar
 * output is printed per step on stdout ("step 1 loss 2.302585"), and a progress
 * line goes to stderr when it is a terminal.
 *
 * OUT (written every K steps with --checkpoint-every, and at the end;
 * mc_st_write: a temporary file renamed, all or nothing) holds every tensor
 * of INIT under its name there, the trained ones replaced by their f32
 * values, so torch's load_state_dict takes it as INIT. Bad arguments or
 * data (unknown or missing --data names, dtypes, shapes, too few rows)
 * stop the program with a message before any step, writing nothing.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mc_io.h"
#include "mc_runtime.h"

typedef struct Train {
  const McModelInfo *info;
  const McEntry *x;
  const char *weights, *out, **files;
  int steps, batch, every, threads, seeded;
  uint64_t seed;
  McTensor *data, *in, *outs; /* per input: its file; per input and output:
                                 what a step reads and writes */
  void **bufs;                /* per update: the other buffer */
  unsigned char *mem, *omem;
  int64_t rows, *order;
  McSafetensors *st;
} Train;

static int train_arg(Train *t, int argc, char **argv, int *i, McError *e) {
  const char *a = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
  static const char *const opts[] = {"--weights",
                                     "-o",
                                     "--data",
                                     "--steps",
                                     "--batch",
                                     "--seed",
                                     "--checkpoint-every",
                                     "--threads"};
  int k = 0;
  while (k < 8 && strcmp(a, opts[k]))
    k++;
  if (k == 8)
    return mc_fail(e, MC_ERR_USAGE,
                   "unexpected argument '%s' (expected --weights, --data, "
                   "--steps, --batch, --seed, --checkpoint-every, --threads "
                   "or -o; see --help)",
                   a);
  if (!v)
    return mc_fail(e, MC_ERR_USAGE, "%s needs an argument", a);
  ++*i;
  const char *eq = strchr(v, '=');
  int in = 0, *count[] = {&t->steps, &t->batch, NULL, &t->every, &t->threads};
  switch (k) {
  case 0:
    t->weights = v;
    return MC_OK;
  case 1:
    t->out = v;
    return MC_OK;
  case 2:
    while (eq && in < t->x->ninputs &&
           (strncmp(t->x->inputs[in].name, v, (size_t)(eq - v)) ||
            t->x->inputs[in].name[eq - v]))
      in++;
    if (!eq || eq == v || !eq[1] || in == t->x->ninputs)
      return mc_fail(e, MC_ERR_NAME,
                     "--data '%s': expected name=FILE.npy with the name of "
                     "a data input (see --help)",
                     v);
    if (t->files[in])
      return mc_fail(e, MC_ERR_USAGE, "--data %s given twice",
                     t->x->inputs[in].name);
    t->files[in] = eq + 1;
    return MC_OK;
  case 5: {
    char *end = NULL;
    t->seed = strtoull(v, &end, 10);
    t->seeded = 1;
    return *v >= '0' && *v <= '9' && !*end
               ? MC_OK
               : mc_fail(e, MC_ERR_USAGE, "--seed: '%s' is not an integer", v);
  }
  default:
    return mc_main_parse_count(a, v, 1L << 30, count[k - 3], e);
  }
}

static void train_usage(const Train *t, const char *prog) {
  printf("usage: %s --weights INIT.safetensors --data name=FILE.npy ... "
         "--steps N [--batch B]\n       [--seed S] [--checkpoint-every K] "
         "[--threads T] -o OUT.safetensors\n\nTrains with entry '%s' and "
         "writes the weights to OUT.\ndata inputs (one row per example):\n",
         prog, t->info->name);
  for (int i = 0; i < t->x->ninputs; i++)
    if (i != t->x->step_input)
      printf("  %-16s %s, rank %d\n", t->x->inputs[i].name,
             mc_dtype_name(t->x->inputs[i].dtype), t->x->inputs[i].rank);
}

static size_t train_bytes(const McTensor *a) {
  size_t n = 0;
  mc_tensor_nbytes(a, &n, NULL);
  return n;
}

/* Reads the data, fixes B and every input's shape, and allocates the
 * step's inputs in one block. */
static int train_inputs(Train *t, McError *e) {
  const McEntry *x = t->x;
  size_t total = 0;
  int rc = MC_OK;
  t->rows = -1;
  for (int i = 0; !rc && i < x->ninputs; i++) {
    const McIOSpec *s = &x->inputs[i];
    McTensor *in = &t->in[i];
    in->dtype = s->dtype;
    in->rank = s->rank;
    int data = i != x->step_input;
    for (int j = 0; j < s->rank; j++)
      in->shape[j] = s->dims[j].nterms ? s->dims[j].terms[0].coef : 0;
    if (data && !t->files[i])
      return mc_fail(e, MC_ERR_USAGE, "missing --data %s=FILE.npy", s->name);
    if (!data)
      continue;
    if (s->rank == 0)
      return mc_fail(e, MC_ERR_SHAPE, "data input '%s' has no rows", s->name);
    if ((rc = mc_main_read_input(s, t->files[i], &t->data[i], e)))
      return rc;
    if (t->rows >= 0 && t->data[i].shape[0] != t->rows)
      return mc_fail(e, MC_ERR_SHAPE,
                     "--data %s has %lld rows, the other data %lld", s->name,
                     (long long)t->data[i].shape[0], (long long)t->rows);
    t->rows = t->data[i].shape[0];
    if (!t->batch && s->dims[0].nterms == 1 && !s->dims[0].terms[0].nfactors)
      t->batch = (int)s->dims[0].terms[0].coef;
  }
  if (!t->batch)
    return mc_fail(e, MC_ERR_USAGE,
                   "the model does not fix the batch size: pass --batch B");
  if (t->rows < t->batch)
    return mc_fail(e, MC_ERR_SHAPE,
                   "the data has %lld rows, fewer than a batch of %d",
                   (long long)t->rows, t->batch);
  for (int i = 0; i < x->ninputs; i++) {
    if (t->data[i].data)
      memcpy(t->in[i].shape, t->data[i].shape, sizeof t->in[i].shape);
    t->in[i].shape[0] = t->data[i].data ? t->batch : t->in[i].shape[0];
    total += (train_bytes(&t->in[i]) + 63) / 64 * 64;
  }
  t->order = malloc(sizeof *t->order * (size_t)t->rows);
  t->mem = calloc(1, total + 64);
  if (!t->order || !t->mem)
    return mc_fail(e, MC_ERR_NOMEM, "out of memory");
  unsigned char *p = t->mem;
  for (int i = 0; i < x->ninputs; i++) {
    t->in[i].data = p;
    p += (train_bytes(&t->in[i]) + 63) / 64 * 64;
  }
  return MC_OK;
}

/* Binds the sizes and gives each output its memory; the trained weights
 * become copies the program owns (as their second buffers). */
static int train_outputs(Train *t, McModel *m, int64_t *syms, McError *e) {
  const McEntry *x = t->x;
  int rc = mc_entry_bind(x, t->in, syms, t->outs, e);
  size_t total = 0;
  for (int i = 0; !rc && i < x->noutputs; i++)
    total += (train_bytes(&t->outs[i]) + 63) / 64 * 64 * 2;
  if (!rc && !(t->omem = calloc(1, total + 64)))
    rc = mc_fail(e, MC_ERR_NOMEM, "out of memory");
  unsigned char *p = t->omem;
  for (int i = 0; !rc && i < x->noutputs; i++) {
    size_t n = (train_bytes(&t->outs[i]) + 63) / 64 * 64;
    t->outs[i].data = p;
    p += n;
    for (int u = 0; u < x->nupdates; u++)
      if (x->updates[u].output == i) {
        memcpy(p, m->w[x->updates[u].weight], train_bytes(&t->outs[i]));
        m->w[x->updates[u].weight] = p;
        t->bufs[u] = t->outs[i].data;
        p += n;
      }
  }
  return rc;
}

static uint64_t train_next(Train *t) {
  t->seed += UINT64_C(0x9E3779B97F4A7C15);
  return mc_splitmix64_mix(t->seed);
}

/* Copies the next batch's rows into the data inputs. */
static void train_batch(Train *t, int64_t *pos) {
  if (*pos == 0 || *pos + t->batch > t->rows) {
    *pos = 0;
    for (int64_t i = t->rows - 1; t->seeded && i > 0; i--) {
      int64_t j = (int64_t)(train_next(t) % (uint64_t)(i + 1)), o = t->order[i];
      t->order[i] = t->order[j];
      t->order[j] = o;
    }
  }
  for (int i = 0; i < t->x->ninputs; i++) {
    if (!t->data[i].data)
      continue;
    size_t row = train_bytes(&t->data[i]) / (size_t)t->rows;
    for (int b = 0; b < t->batch; b++)
      memcpy((unsigned char *)t->in[i].data + (size_t)b * row,
             (unsigned char *)t->data[i].data +
                 (size_t)t->order[*pos + b] * row,
             row);
  }
  *pos += t->batch;
}

/* Writes every tensor of INIT to OUT, the trained ones as they are now. */
static int train_save(Train *t, McModel *m, McError *e) {
  int n = mc_st_count(t->st), rc = MC_OK;
  const char **names = calloc((size_t)n + 1, sizeof *names);
  McTensor *ts = calloc((size_t)n + 1, sizeof *ts);
  if (!names || !ts)
    rc = mc_fail(e, MC_ERR_NOMEM, "out of memory");
  for (int i = 0; names && ts && i < n; i++) {
    const McStTensor *s = mc_st_get(t->st, i);
    names[i] = s->name;
    ts[i].dtype = s->dtype;
    ts[i].rank = s->rank;
    memcpy(ts[i].shape, s->shape, sizeof ts[i].shape);
    ts[i].data = (void *)s->data;
    for (int u = 0; u < t->x->nupdates; u++) {
      int w = t->x->updates[u].weight;
      if (mc_st_find(t->st, m->desc->weights[w].name, NULL) == s) {
        ts[i].dtype = MC_F32;
        ts[i].data = (void *)m->w[w];
      }
    }
  }
  if (names && ts)
    rc = mc_st_write(t->out, NULL, names, ts, n, e);
  free(names);
  free(ts);
  return rc;
}

static int train_run(Train *t, McModel *m, McError *e) {
  const McEntry *x = t->x;
  int64_t syms[64], pos = 0;
  int rc = train_outputs(t, m, syms, e), tty = isatty(2);
  void **io = calloc((size_t)(x->ninputs + x->noutputs) + 1, sizeof *io);
  if (!rc && !io)
    rc = mc_fail(e, MC_ERR_NOMEM, "out of memory");
  for (int64_t r = 0; !rc && r < t->rows; r++)
    t->order[r] = r;
  for (int k = 1; !rc && k <= t->steps; k++) {
    train_batch(t, &pos);
    if (x->step_input >= 0)
      *(float *)t->in[x->step_input].data = (float)k;
    for (int i = 0; i < x->ninputs; i++)
      io[i] = t->in[i].data;
    for (int i = 0; i < x->noutputs; i++)
      io[x->ninputs + i] = t->outs[i].data;
    for (int u = 0; u < x->nupdates; u++)
      io[x->ninputs + x->updates[u].output] = t->bufs[u];
    if ((rc = x->run(m, syms, io, io + x->ninputs, e)))
      break;
    printf("step %d", k);
    for (int i = 0; i < x->noutputs; i++)
      if (i < x->updates[0].output && /* the updates come last */
          t->outs[i].rank == 0 && t->outs[i].dtype == MC_F32)
        printf(" %s %.7g", x->outputs[i].name, *(float *)t->outs[i].data);
    printf("\n");
    for (int u = 0; u < x->nupdates; u++) { /* the new weights swap in */
      void *now = (void *)m->w[x->updates[u].weight];
      m->w[x->updates[u].weight] = t->bufs[u];
      t->bufs[u] = now;
    }
    if (tty)
      fprintf(stderr, "\rstep %d/%d", k, t->steps);
    if (t->every && k % t->every == 0 && k < t->steps)
      rc = train_save(t, m, e);
  }
  if (tty)
    fprintf(stderr, "\n");
  free(io);
  fflush(stdout);
  return rc ? rc : train_save(t, m, e);
}

int mc_train(int argc, char **argv, const McModelInfo *info) {
  McError e = {MC_OK, ""};
  Train t;
  memset(&t, 0, sizeof t);
  t.info = info;
  t.x = info->entry;
  int n = t.x->ninputs + t.x->noutputs + 1, rc = MC_OK;
  void *handle = NULL;
  t.files = calloc((size_t)n, sizeof *t.files);
  t.data = calloc((size_t)n, sizeof *t.data);
  t.in = calloc((size_t)n, sizeof *t.in);
  t.outs = calloc((size_t)n, sizeof *t.outs);
  t.bufs = calloc((size_t)n, sizeof *t.bufs);
  if (!t.files || !t.data || !t.in || !t.outs || !t.bufs)
    rc = mc_fail(&e, MC_ERR_NOMEM, "out of memory");
  for (int i = 1; !rc && i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
      rc = -1;
    else
      rc = train_arg(&t, argc, argv, &i, &e);
  if (rc == -1)
    train_usage(&t, argc > 0 ? argv[0] : "model");
  if (!rc && (!t.steps || !t.out || !*t.out))
    rc = mc_fail(&e, MC_ERR_USAGE, "pass --steps N and -o OUT.safetensors");
  if (!rc && !t.weights && !(t.weights = info->default_weights))
    rc = mc_fail(&e, MC_ERR_USAGE, "pass --weights INIT.safetensors");
  if (!rc)
    rc = train_inputs(&t, &e);
  if (!rc && t.threads)
    mc_set_threads(t.threads);
  if (!rc && !(rc = mc_st_open(t.weights, &t.st, &e)) &&
      !(rc = info->open(t.weights, &handle, &e)))
    rc = train_run(&t, handle, &e);
  if (handle)
    info->close(handle);
  mc_st_close(t.st);
  for (int i = 0; t.data && i < t.x->ninputs; i++)
    mc_tensor_free(&t.data[i]);
  free(t.mem);
  free(t.omem);
  free(t.order);
  free(t.files);
  free(t.data);
  free(t.in);
  free(t.outs);
  free(t.bufs);
  if (rc > 0) {
    const char *prog = argc > 0 ? argv[0] : "model";
    fprintf(stderr, "%s: error: %s\n", prog, e.msg[0] ? e.msg : "failed");
  }
  return rc > 0;
}
