/* pass_hoist_weights: what depends only on the weights is computed once,
 * when the program loads them, instead of on every call.
 *
 * An op at the top level of a function is weight-only when it is a param
 * (read from the weights file), a constant or an iota of constant shape, or
 * a pure op without a region (no scan, no random draw, one result, a
 * constant shape) all of whose operands are weight-only. Such values that
 * hold arithmetic (anything but reshapes, permutes, slices and broadcasts of
 * their operands: those the backend reads as views, or keeps as weight
 * layouts; a concat counts, it copies), that are f32, and that an op which
 * stays (or a function output) reads, become "prepared" params: one module
 * function flagged `prepares` computes them, from clones of the ops, as its
 * outputs, and the function reads the param in their place. dce then
 * removes the originals. The backend runs the prepare function once after
 * loading the weights file (codegen/c_api.c).
 *
 * First, a matmul of gathered rows of a weight by a weight, such as an
 * RNN's input projection of its embeddings, (E[tokens]) @ W, becomes
 * (E @ W)[tokens]: the product of the whole table is weight-only, so it is
 * computed once, and each call gathers its rows instead of multiplying
 * them. An elementwise op of those rows with a weight vector along their
 * last axis (the bias of x @ W.T + b) follows it into the table:
 * (E @ W + b)[tokens]. Only when the table takes at most
 * GATHER_TABLE_BYTES (it has a row per entry of E, each as wide as W's
 * result): the trade of memory for arithmetic is bounded. The bits are
 * the same, row by row: an element of a GEMM depends only on its row of A
 * and column of B (runtime/mc_gemm.c), and the op after it is applied to
 * the same two numbers.
 *
 * Invariant: no value changes a bit. The prepare function holds the same
 * ops on the same operands, and the backend computes each with the same
 * code as before; only when (once, at load) changes. Examples: spectral
 * normalization of a frozen weight (W / sigma(W) with its power iteration
 * on a stored u), a scale folded into a weight (w * s), exp of CRF
 * transitions, concatenated Q, K and V weights. A weight a training entry
 * updates is no leaf: what is computed from it changes at every step.
 *
 *   func @main(%x: f32[T, 8]) {
 *     %0 = param 0 : f32[4, 8]
 *     %1 = param 1 : f32[]
 *     %2 = div %0, %1 : f32[4, 8]
 *     %3 = matmul %x, %2 {trans_b} : f32[T, 4]
 *     return y = %3
 *   }
 * becomes
 *   param "prepared:main:L3:w" : f32[4, 8] prepared
 *   func @main(%x: f32[T, 8]) {
 *     %0 = param 2 : f32[4, 8]
 *     %1 = matmul %x, %0 {trans_b} : f32[T, 4]
 *     return y = %1
 *   }
 *   func prepare @prepare() {
 *     %0 = param 0 : f32[4, 8]
 *     %1 = param 1 : f32[]
 *     %2 = div %0, %1 : f32[4, 8]
 *     return "prepared:main:L3:w" = %2
 *   }
 */
#include "passes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Hoist {
  Module *m;
  Diag *d;
  size_t n; /* value ids below n: those the pass found (arrays' size) */
  bool *weight_only; /* by value id */
  bool *work;        /* weight-only and holds arithmetic */
  bool *stays_reads; /* read by an op that stays, or an output */
  Value **clone;     /* by value id: its clone in the prepare function */
  Value **param;     /* by param index: its read in the prepare function */
  int nparams;       /* params before the pass */
  bool *trained;     /* by param index: a training entry updates it */
  Function *prep;
} Hoist;

static bool movable(const Op *op) {
  if (op->nregions > 0 || op->nresults != 1 ||
      (ir_op_info[op->kind].flags & OPF_RANDOM) || op->kind == OP_CATEGORICAL)
    return false;
  return shape_is_const(&op->results[0]->type.shape);
}

static bool is_leaf(const Hoist *h, const Op *op) {
  if (op->kind == OP_PARAM) /* a trained weight changes: nothing to hoist */
    return !h->m->params[op->attrs.param.index].prepared &&
           !h->trained[op->attrs.param.index];
  return (op->kind == OP_CONST || op->kind == OP_IOTA) &&
         shape_is_const(&op->results[0]->type.shape);
}

/* Whether v moves into the prepare function. */
static bool hoisted(const Hoist *h, const Value *v) {
  return h->work[v->id] && v->type.dtype == DT_F32;
}

/* Marks the weight-only values of b's top level and their arithmetic. */
static void classify(Hoist *h, const Block *b) {
  for (const Op *op = b->first; op; op = op->next) {
    if (op->nresults != 1)
      continue;
    int id = op->results[0]->id;
    if (is_leaf(h, op)) {
      h->weight_only[id] = true;
      continue;
    }
    if (!movable(op) || op->noperands == 0)
      continue;
    bool all = true, work = !(ir_op_info[op->kind].flags & OPF_MOVEMENT) ||
                            op->kind == OP_CONCAT;
    for (int i = 0; i < op->noperands; i++) {
      all &= h->weight_only[op->operands[i]->id];
      work |= h->work[op->operands[i]->id];
    }
    h->weight_only[id] = all;
    h->work[id] = all && work;
  }
}

/* ---- gathered rows of a product ------------------------------------------
 */

#define GATHER_TABLE_BYTES (64u << 20)

static bool is_table_op(OpKind k) {
  return k == OP_ADD || k == OP_SUB || k == OP_MUL || k == OP_DIV ||
         k == OP_MAXIMUM || k == OP_MINIMUM;
}

/* The gather along axis 0 of a weight-only f32 matrix that x is, or NULL. */
static const Op *gathered_rows(const Hoist *h, const Value *x) {
  const Op *g = x->def;
  if (!g || g->kind != OP_GATHER || g->attrs.axis.axis != 0 ||
      x->type.dtype != DT_F32)
    return NULL;
  const Value *t = g->operands[0];
  return (size_t)t->id < h->n && h->weight_only[t->id] &&
                 t->type.shape.rank == 2 && shape_is_const(&t->type.shape)
             ? g
             : NULL;
}

/* Whether w, a weight-only vector along the last axis (f32[N] or
 * f32[1, N]), applies to every row of a table of width n alike. */
static bool row_vector(const Hoist *h, const Value *w, Dim n) {
  const Shape *s = &w->type.shape;
  return (size_t)w->id < h->n && h->weight_only[w->id] &&
         w->type.dtype == DT_F32 && s->rank >= 1 && s->rank <= 2 &&
         dim_eq(s->dims[s->rank - 1], n) &&
         (s->rank == 1 || dim_eq(s->dims[0], dim_const(1)));
}

/* op (a matmul of gathered rows, or an elementwise op of such rows and a
 * row vector) as the gather of `table op w` over the table's rows; returns
 * the new gather, or NULL when op is no such op. */
static Op *gather_first(Hoist *h, Op *op) {
  Module *m = h->m;
  int x = -1; /* the operand that is gathered rows */
  const Op *g = NULL;
  if (op->kind == OP_MATMUL && !op->attrs.matmul.trans_a &&
      (size_t)op->operands[1]->id < h->n &&
      h->weight_only[op->operands[1]->id] &&
      op->operands[1]->type.shape.rank == 2 &&
      (g = gathered_rows(h, op->operands[0])) != NULL)
    x = 0;
  for (int i = 0; x < 0 && is_table_op(op->kind) && i < 2; i++)
    if ((g = gathered_rows(h, op->operands[i])) != NULL &&
        row_vector(h, op->operands[1 - i], g->operands[0]->type.shape.dims[1]))
      x = i;
  if (x < 0 || op->results[0]->type.dtype != DT_F32 ||
      (op->kind != OP_MATMUL &&
       !shape_eq(&op->results[0]->type.shape, &op->operands[x]->type.shape)))
    return NULL;
  const Shape *ys = &op->results[0]->type.shape;
  int64_t rows, width;
  if (!dim_is_const(g->operands[0]->type.shape.dims[0], &rows) ||
      !dim_is_const(ys->dims[ys->rank - 1], &width) ||
      (uint64_t)rows * (uint64_t)width * 4u > GATHER_TABLE_BYTES)
    return NULL;
  /* table = op(E, w), the gathered rows' place taken by E */
  Value *operands[2] = {op->operands[0],
                        op->noperands > 1 ? op->operands[1] : NULL};
  operands[x] = g->operands[0];
  Type tt = {DT_F32, shape_scalar()};
  tt.shape.rank = 2;
  tt.shape.dims[0] = g->operands[0]->type.shape.dims[0];
  tt.shape.dims[1] = ys->dims[ys->rank - 1];
  Op *table = ir_build_typed(m, op->parent, op->kind, operands, op->noperands,
                             &op->attrs, &tt, 1, op->loc);
  ir_op_move_before(table, op);
  if ((size_t)table->results[0]->id < h->n) /* an op after it may follow it */
    h->weight_only[table->results[0]->id] = true;
  Value *gops[2] = {table->results[0], g->operands[1]};
  Op *rows_op = ir_build_typed(m, op->parent, OP_GATHER, gops, 2, &g->attrs,
                               &op->results[0]->type, 1, op->loc);
  ir_op_move_before(rows_op, op);
  rows_op->results[0]->name = op->results[0]->name;
  ir_replace_uses(m, op->results[0], rows_op->results[0]);
  ir_op_remove(op);
  if (g->results[0]->nuses == 0) /* rows that a table took in */
    ir_op_remove((Op *)g);
  return rows_op;
}

/* Rewrites the matmuls of gathered weight rows (and the ops that follow
 * them into the table) of f's top level. The new tables are weight-only:
 * the hoisting that follows (with fresh marks) moves them. */
static void gathers_first(Hoist *h, Function *f) {
  memset(h->weight_only, 0, h->n);
  memset(h->work, 0, h->n);
  classify(h, f->body);
  for (Op *op = f->body->first; op; op = op->next) {
    Op *rows = gather_first(h, op);
    if (rows)
      op = rows;
  }
}

/* Marks the hoisted values that something staying in the function reads:
 * an op not hoisted (at any depth: a scan's body reads from outside). */
static void mark_reads(Hoist *h, const Block *b) {
  for (const Op *op = b->first; op; op = op->next) {
    bool stays =
        b->parent_op || op->nresults != 1 || !hoisted(h, op->results[0]);
    for (int i = 0; stays && i < op->noperands; i++)
      h->stays_reads[op->operands[i]->id] = true;
    for (int r = 0; r < op->nregions; r++)
      mark_reads(h, op->regions[r]);
  }
}

static Function *prepare_function(Hoist *h) {
  if (h->prep)
    return h->prep;
  for (Function *f = h->m->functions; f; f = f->next)
    if (f->prepares)
      return h->prep = f;
  char name[32] = "prepare";
  for (int k = 2; ir_find_function(h->m, name); k++)
    snprintf(name, sizeof name, "prepare_%d", k);
  h->prep = ir_function_new(h->m, name, loc_none());
  h->prep->prepares = true;
  return h->prep;
}

/* v's clone in the prepare function (cloning what it reads first). */
static Value *clone_value(Hoist *h, Value *v) {
  if (h->clone[v->id])
    return h->clone[v->id];
  const Op *op = v->def;
  if (op->kind == OP_PARAM && op->attrs.param.index < h->nparams &&
      h->param[op->attrs.param.index])
    return h->clone[v->id] = h->param[op->attrs.param.index];
  Value *ops[64];
  if (op->noperands > 64)
    return NULL;
  for (int i = 0; i < op->noperands; i++)
    if (!(ops[i] = clone_value(h, op->operands[i])))
      return NULL;
  Op *c = ir_build_typed(h->m, prepare_function(h)->body, op->kind, ops,
                         op->noperands, &op->attrs, &v->type, 1, op->loc);
  c->results[0]->name = v->name;
  if (op->kind == OP_PARAM && op->attrs.param.index < h->nparams)
    h->param[op->attrs.param.index] = c->results[0];
  return h->clone[v->id] = c->results[0];
}

static bool hoist_function(Hoist *h, Function *f) {
  memset(h->weight_only, 0, h->n);
  memset(h->work, 0, h->n);
  memset(h->stays_reads, 0, h->n);
  classify(h, f->body);
  mark_reads(h, f->body);
  for (int i = 0; i < f->noutputs; i++)
    h->stays_reads[f->outputs[i].value->id] = true;
  int k = 0;
  for (Op *op = f->body->first; op; op = op->next) {
    if (op->nresults != 1)
      continue;
    Value *v = op->results[0];
    if (!hoisted(h, v) || !h->stays_reads[v->id])
      continue;
    Value *c = clone_value(h, v);
    if (!c)
      continue;
    char name[256];
    snprintf(name, sizeof name, "prepared:%s:L%d:%s%s%d", f->name, op->loc.line,
             v->name ? v->name : "", v->name ? "." : "v", k++);
    int p = ir_add_param(h->m, name, v->type, op->loc, h->d);
    if (p < 0)
      return false;
    h->m->params[p].prepared = true;
    ir_add_output(h->m, prepare_function(h), h->m->params[p].name, c, op->loc);
    Attrs a;
    memset(&a, 0, sizeof a);
    a.param.index = p;
    Op *read = ir_build_typed(h->m, f->body, OP_PARAM, NULL, 0, &a, &v->type, 1,
                              op->loc);
    read->results[0]->name = v->name;
    ir_op_move_before(read, op);
    ir_replace_uses(h->m, v, read->results[0]);
  }
  return true;
}

bool pass_hoist_weights(Module *m, Diag *d) {
  /* room for the values gathers_first makes, two per op at most */
  size_t n = 3 * ((size_t)m->next_value_id + 1);
  Hoist h = {m, d, n, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL};
  h.nparams = m->nparams;
  h.param = calloc((size_t)m->nparams + 1, sizeof(Value *));
  h.trained = calloc((size_t)m->nparams + 1, sizeof(bool));
  h.weight_only = calloc(n, 1);
  h.work = calloc(n, 1);
  h.stays_reads = calloc(n, 1);
  h.clone = calloc(n, sizeof(Value *));
  if (!h.weight_only || !h.work || !h.stays_reads || !h.clone || !h.param ||
      !h.trained)
    abort();
  for (int p = 0; p < m->nparams; p++)
    h.trained[p] = ir_param_trained(m, p);
  for (Function *f = m->functions; f; f = f->next)
    if (!f->prepares)
      gathers_first(&h, f);
  bool ok = true;
  for (Function *f = m->functions; ok && f; f = f->next)
    if (!f->prepares)
      ok = hoist_function(&h, f);
  free(h.weight_only);
  free(h.work);
  free(h.stays_reads);
  free(h.clone);
  free(h.param);
  free(h.trained);
  return ok;
}
