/* pass_autodiff: reverse-mode differentiation. Replaces every grad(loss,
 * wrt) op by ordinary ops computing d loss / d wrt, so that folding, CSE,
 * DCE, hoisting, fusion and both backends see nothing new. It runs first in
 * every pipeline (before fuse: fused ops have no rule).
 *
 * For the grad ops of one block that share a loss (the frontend's grad(f,
 * ..., wrt=[a, b]) writes one per wrt), one backward sweep (ad_vjp):
 *  1. mark the values that depend on a wrt (float results of ops reading a
 *     marked value; a param wrt marks every read of that weight: reads
 *     inside scan regions are first moved out, before their scan, so that
 *     each is a value the scan rule can accumulate a gradient for);
 *  2. keep the marked ones the loss depends on (the active ops);
 *  3. seed the loss's adjoint with 1 and visit the active ops in reverse
 *     order, adding each rule's contributions (autodiff_rules.c; scans:
 *     autodiff_scan.c) to the operands' adjoints;
 *  4. insert the new ops before the first grad op of the group, replace
 *     each grad op's result by its wrt's adjoint (zeros when the loss does
 *     not depend on it; for a param, the sum over every read) and remove
 *     the grad ops.
 * The forward values are kept, not recomputed: the backward ops read them
 * (memory planning frees what the last reader leaves). Grad ops are
 * expanded in program order, so a grad of a function that itself takes a
 * grad (a gradient penalty) differentiates the inner one's ordinary ops.
 * A grad op inside a scan's region differentiates that region's ops only.
 * An active op without a rule is an error at its model-file line.
 *
 * Example (loss = sum(x * x)):
 *   %1 = mul %x, %x : f32[4]
 *   %2 = reduce_sum %1 {axes = [0]} : f32[]
 *   %3 = grad %2, %x : f32[4]
 * becomes, %3's uses reading %9 (the product rule's two terms):
 *   %4 = const [1] : f32[]
 *   %5 = reshape %4 : f32[1]
 *   %6 = broadcast %5 : f32[4]
 *   %7 = mul %6, %x : f32[4]
 *   %8 = mul %6, %x : f32[4]
 *   %9 = add %7, %8 : f32[4]
 */
#include "autodiff.h"

#include <stdlib.h>
#include <string.h>

typedef struct Sweep {
  AdCtx *c;
  int nvalues; /* ids below this existed before the sweep */
  bool *marked, *needed;
  Value **adj;
  Op *const *ops; /* the ops to differentiate, in order */
  int nops;
  Value *const *wrt;
  int nwrt;
  bool *want; /* per operand of the op being differentiated */
  Value **gx;
} Sweep;

static bool is_wrt_param(const Sweep *s, const Op *op) {
  if (op->kind != OP_PARAM)
    return false;
  for (int g = 0; g < s->nwrt; g++) {
    const Op *w = s->wrt[g]->def;
    if (w && w->kind == OP_PARAM &&
        w->attrs.param.index == op->attrs.param.index)
      return true;
  }
  return false;
}

/* Whether the block (a region) reads a marked value. */
static bool region_reads_marked(const Sweep *s, const Block *b) {
  for (const Op *op = b->first; op; op = op->next) {
    for (int i = 0; i < op->noperands; i++)
      if (op->operands[i]->id < s->nvalues && s->marked[op->operands[i]->id])
        return true;
    for (int r = 0; r < op->nregions; r++)
      if (region_reads_marked(s, op->regions[r]))
        return true;
  }
  return false;
}

static void mark_forward(Sweep *s) {
  for (int g = 0; g < s->nwrt; g++)
    s->marked[s->wrt[g]->id] = true;
  for (int k = 0; k < s->nops; k++) {
    const Op *op = s->ops[k];
    bool reads = is_wrt_param(s, op);
    for (int i = 0; i < op->noperands; i++)
      reads |= s->marked[op->operands[i]->id];
    for (int r = 0; r < op->nregions; r++)
      reads |= region_reads_marked(s, op->regions[r]);
    for (int i = 0; reads && i < op->nresults; i++)
      if (dtype_is_float(op->results[i]->type.dtype))
        s->marked[op->results[i]->id] = true;
  }
}

static bool is_active(const Sweep *s, const Op *op) {
  for (int i = 0; i < op->nresults; i++)
    if (s->marked[op->results[i]->id] && s->needed[op->results[i]->id])
      return true;
  return false;
}

/* Values a region reads from above are needed as its op's operands are. */
static void need_region_reads(Sweep *s, const Block *b) {
  for (const Op *op = b->first; op; op = op->next) {
    for (int i = 0; i < op->noperands; i++)
      if (op->operands[i]->id < s->nvalues)
        s->needed[op->operands[i]->id] = true;
    for (int r = 0; r < op->nregions; r++)
      need_region_reads(s, op->regions[r]);
  }
}

static void mark_needed(Sweep *s, Value *const *outs, int nouts) {
  for (int i = 0; i < nouts; i++)
    if (outs[i]->id < s->nvalues)
      s->needed[outs[i]->id] = true;
  for (int k = s->nops - 1; k >= 0; k--) {
    const Op *op = s->ops[k];
    if (!is_active(s, op))
      continue;
    for (int i = 0; i < op->noperands; i++)
      s->needed[op->operands[i]->id] = true;
    for (int r = 0; r < op->nregions; r++)
      need_region_reads(s, op->regions[r]);
  }
}

static void accumulate(Sweep *s, Value *v, Value *g) {
  Value **a = &s->adj[v->id];
  if (!*a) {
    *a = g;
    return;
  }
  Value *ops[2] = {*a, g};
  *a = ir_build(s->c->m, s->c->b, OP_ADD, ops, 2, NULL, NULL, s->c->loc,
                s->c->d);
  if (!*a)
    s->c->failed = true;
}

/* A scan's contributions (autodiff_scan.c): to its operands and to the
 * marked values its region reads from above. */
static AdStatus sweep_scan(Sweep *s, Op *op) {
  Value **gy = calloc((size_t)op->nresults + 1, sizeof(Value *));
  AdScanGrads out;
  memset(&out, 0, sizeof out);
  if (!gy) {
    s->c->failed = true;
    return AD_OK;
  }
  for (int i = 0; i < op->nresults; i++)
    gy[i] = s->adj[op->results[i]->id];
  AdStatus st = ad_scan(s->c, op, gy, s->marked, s->nvalues, &out);
  free(gy);
  for (int i = 0; st == AD_OK && !s->c->failed && i < op->noperands; i++)
    if (out.gx[i] && s->marked[op->operands[i]->id])
      accumulate(s, op->operands[i], out.gx[i]);
  for (int i = 0; st == AD_OK && !s->c->failed && i < out.nclosed; i++)
    if (out.gclosed[i])
      accumulate(s, out.closed[i], out.gclosed[i]);
  return st;
}

/* Step 3: the adjoints of every active op's operands. */
static bool sweep_backward(Sweep *s) {
  AdCtx *c = s->c;
  for (int k = s->nops - 1; k >= 0 && !c->failed; k--) {
    Op *op = s->ops[k];
    if (!is_active(s, op))
      continue;
    c->loc = op->loc;
    AdStatus st = AD_NO_RULE;
    c->why = ir_op_info[op->kind].name;
    Value *gy = op->nresults == 1 ? s->adj[op->results[0]->id] : NULL;
    if (op->kind == OP_SCAN) {
      st = sweep_scan(s, op);
    } else if (op->nresults != 1 || op->nregions != 0) {
      st = AD_NO_RULE;
    } else if (!gy) {
      continue; /* no contribution reached it: its gradient is 0 */
    } else {
      bool *want = s->want;
      Value **gx = s->gx;
      for (int i = 0; i < op->noperands; i++)
        want[i] = s->marked[op->operands[i]->id];
      st = ad_rule(c, op, gy, want, gx);
      for (int i = 0; st == AD_OK && i < op->noperands; i++) {
        if (!gx[i])
          continue;
        if (!type_eq(&gx[i]->type, &op->operands[i]->type)) {
          diag_error(c->d, op->loc,
                     "internal: the derivative rule of %s gives operand %d a "
                     "gradient of another type",
                     ir_op_info[op->kind].name, i);
          return false;
        }
        accumulate(s, op->operands[i], gx[i]);
      }
    }
    if (st == AD_NO_RULE) {
      diag_error(c->d, op->loc,
                 "cannot differentiate %s: there is no derivative rule for "
                 "it yet",
                 c->why);
      return false;
    }
  }
  return !c->failed;
}

/* The adjoint of a wrt value; a param's adds that of every other read of
 * the weight among the ops. NULL when no contribution reached it. */
static Value *gradient_of(Sweep *s, const Value *w) {
  Value *g = w->id < s->nvalues ? s->adj[w->id] : NULL;
  if (!w->def || w->def->kind != OP_PARAM)
    return g;
  int index = w->def->attrs.param.index;
  for (int k = 0; k < s->nops; k++) {
    const Op *op = s->ops[k];
    Value *a = op->kind == OP_PARAM && op->attrs.param.index == index &&
                       op->results[0] != w
                   ? s->adj[op->results[0]->id]
                   : NULL;
    if (!a)
      continue;
    if (!g) {
      g = a;
    } else {
      Value *ops[2] = {g, a};
      g = ir_build(s->c->m, s->c->b, OP_ADD, ops, 2, NULL, NULL, s->c->loc,
                   s->c->d);
      s->c->failed |= !g;
    }
  }
  return g;
}

bool ad_vjp(AdCtx *c, Op *const *ops, int nops, Value *const *outs,
            Value *const *seeds, int nouts, Value *const *wrt, int nwrt,
            Value **grads) {
  Sweep s;
  memset(&s, 0, sizeof s);
  s.c = c;
  s.nvalues = c->m->next_value_id;
  s.ops = ops;
  s.nops = nops;
  s.wrt = wrt;
  s.nwrt = nwrt;
  int maxops = 1;
  for (int k = 0; k < nops; k++)
    maxops = ops[k]->noperands > maxops ? ops[k]->noperands : maxops;
  s.marked = calloc((size_t)s.nvalues, sizeof(bool));
  s.needed = calloc((size_t)s.nvalues, sizeof(bool));
  s.adj = calloc((size_t)s.nvalues, sizeof(Value *));
  s.want = calloc((size_t)maxops, sizeof(bool));
  s.gx = calloc((size_t)maxops, sizeof(Value *));
  bool ok = s.marked && s.needed && s.adj && s.want && s.gx;
  if (!ok)
    diag_error(c->d, c->loc, "out of memory");
  if (ok) {
    mark_forward(&s);
    mark_needed(&s, outs, nouts);
    for (int i = 0; i < nouts; i++)
      if (seeds[i] && s.marked[outs[i]->id])
        accumulate(&s, outs[i], seeds[i]);
    ok = sweep_backward(&s);
  }
  for (int i = 0; ok && i < nwrt; i++) {
    grads[i] = gradient_of(&s, wrt[i]);
    ok = !c->failed;
  }
  free(s.gx);
  free(s.want);
  free(s.adj);
  free(s.needed);
  free(s.marked);
  return ok;
}

static bool reads_param(const Op *const *group, int ngroup, const Op *op) {
  for (int g = 0; op->kind == OP_PARAM && g < ngroup; g++) {
    const Op *w = group[g]->operands[1]->def;
    if (w && w->kind == OP_PARAM &&
        w->attrs.param.index == op->attrs.param.index)
      return true;
  }
  return false;
}

/* Moves the reads of a wrt param inside b's regions (at any depth) before
 * `top`, the op of the differentiated block that holds them: a param read
 * has no operands, so it may sit anywhere above its readers. */
static void hoist_param_reads(Block *b, Op *top, const Op *const *group,
                              int ngroup) {
  Op *op = b->first;
  while (op) {
    Op *next = op->next;
    if (reads_param(group, ngroup, op))
      ir_op_move_before(op, top);
    for (int r = 0; r < op->nregions; r++)
      hoist_param_reads(op->regions[r], top, group, ngroup);
    op = next;
  }
}

static bool expand_group(Module *m, Block *b, Op *first, Diag *d) {
  Value *loss = first->operands[0];
  int nblock = 0, ngroup = 0;
  for (Op *op = b->first; op; op = op->next)
    nblock++;
  Op **group = calloc((size_t)nblock, sizeof(Op *));
  Op **ops = calloc((size_t)nblock, sizeof(Op *));
  Value **wrt = calloc((size_t)nblock, sizeof(Value *));
  Value **grads = calloc((size_t)nblock, sizeof(Value *));
  bool ok = group && ops && wrt && grads;
  if (!ok)
    diag_error(d, first->loc, "out of memory");
  for (Op *op = b->first; ok && op; op = op->next)
    if (op == first ||
        (op->kind == OP_GRAD && ngroup > 0 && op->operands[0] == loss))
      group[ngroup++] = op;
  for (Op *op = b->first; ok && op != first; op = op->next)
    for (int r = 0; r < op->nregions; r++)
      hoist_param_reads(op->regions[r], op, (const Op *const *)group, ngroup);
  int nops = 0;
  for (Op *op = b->first; ok && op != first; op = op->next)
    ops[nops++] = op;
  for (int g = 0; g < ngroup; g++)
    wrt[g] = group[g]->operands[1];
  Op *last_before = b->last;
  AdCtx c = {m, b, d, first->loc, false, NULL};
  Value *one = NULL;
  if (ok)
    one = ir_const_scalar(m, b, loss->type.dtype, 1.0, first->loc);
  if (ok && !ad_vjp(&c, ops, nops, &loss, &one, 1, wrt, ngroup, grads)) {
    diag_note(d, first->loc, "the gradient is taken here");
    ok = false;
  }
  for (int g = 0; ok && g < ngroup; g++) {
    c.loc = group[g]->loc;
    if (!grads[g])
      grads[g] = ad_zeros(&c, &wrt[g]->type);
    ok = grads[g] && !c.failed;
  }
  if (ok) {
    /* the new ops, appended to the block, move before the first grad */
    Op *op = last_before->next;
    while (op) {
      Op *next = op->next;
      ir_op_move_before(op, first);
      op = next;
    }
    for (int g = 0; g < ngroup; g++) {
      ir_replace_uses(m, group[g]->results[0], grads[g]);
      ir_op_remove(group[g]);
    }
  }
  free(grads);
  free(wrt);
  free(ops);
  free(group);
  return ok;
}

static bool expand_block(Module *m, Block *b, Diag *d) {
  for (Op *op = b->first; op; op = op->next)
    for (int r = 0; r < op->nregions; r++)
      if (!expand_block(m, op->regions[r], d))
        return false;
  for (;;) {
    Op *first = b->first;
    while (first && first->kind != OP_GRAD)
      first = first->next;
    if (!first)
      return true;
    if (!expand_group(m, b, first, d))
      return false;
  }
}

/* Once every grad is expanded, a stop_gradient is its operand. */
static void remove_stop_gradients(Module *m, Block *b) {
  for (Op *op = b->first, *next; op; op = next) {
    next = op->next;
    for (int r = 0; r < op->nregions; r++)
      remove_stop_gradients(m, op->regions[r]);
    if (op->kind == OP_STOP_GRADIENT) {
      ir_replace_uses(m, op->results[0], op->operands[0]);
      ir_op_remove(op);
    }
  }
}

bool pass_autodiff(Module *m, Diag *d) {
  for (Function *f = m->functions; f; f = f->next)
    if (!expand_block(m, f->body, d))
      return false;
  for (Function *f = m->functions; f; f = f->next)
    remove_stop_gradients(m, f->body);
  return true;
}
