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
  size_t n = (size_t)m->next_value_id + 1;
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
