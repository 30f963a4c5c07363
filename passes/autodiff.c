/* pass_autodiff: reverse-mode differentiation. Replaces every grad(loss,
 * wrt) op by ordinary ops computing d loss / d wrt, so that folding, CSE,
 * DCE, hoisting, fusion and both backends see nothing new. It runs first in
 * every pipeline (before fuse: fused ops have no rule).
 *
 * For the grad ops of one block that share a loss (the frontend's grad(f,
 * ..., wrt=[a, b]) writes one per wrt), one backward sweep:
 *  1. mark the values that depend on a wrt (float results of ops reading a
 *     marked value; a param wrt marks every read of that weight);
 *  2. keep the marked ones the loss depends on (the active ops);
 *  3. seed the loss's adjoint with 1 and visit the active ops in reverse
 *     order, adding each rule's contributions (autodiff_rules.c) to the
 *     operands' adjoints;
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
  AdCtx c;
  int nvalues; /* ids below this existed before the sweep */
  bool *marked, *needed;
  Value **adj;
  Op **ops; /* the block's ops before the first grad of the group */
  int nops;
  bool *want; /* per operand of the op being differentiated */
  Value **gx;
} Sweep;

static bool is_wrt_param(const Op *const *group, int ngroup, const Op *op) {
  if (op->kind != OP_PARAM)
    return false;
  for (int g = 0; g < ngroup; g++) {
    const Op *w = group[g]->operands[1]->def;
    if (w && w->kind == OP_PARAM &&
        w->attrs.param.index == op->attrs.param.index)
      return true;
  }
  return false;
}

/* Whether the block (a region) reads a marked value, or reads a param that
 * is a wrt (marking those values too). */
static bool region_reads_marked(Sweep *s, const Block *b,
                                const Op *const *group, int ngroup) {
  bool any = false;
  for (const Op *op = b->first; op; op = op->next) {
    if (is_wrt_param(group, ngroup, op))
      s->marked[op->results[0]->id] = any = true;
    for (int i = 0; i < op->noperands; i++)
      any |= op->operands[i]->id < s->nvalues && s->marked[op->operands[i]->id];
    for (int r = 0; r < op->nregions; r++)
      any |= region_reads_marked(s, op->regions[r], group, ngroup);
  }
  return any;
}

static void mark_forward(Sweep *s, const Op *const *group, int ngroup) {
  for (int g = 0; g < ngroup; g++)
    s->marked[group[g]->operands[1]->id] = true;
  for (int k = 0; k < s->nops; k++) {
    const Op *op = s->ops[k];
    bool reads = is_wrt_param(group, ngroup, op);
    for (int i = 0; i < op->noperands; i++)
      reads |= s->marked[op->operands[i]->id];
    for (int r = 0; r < op->nregions; r++)
      reads |= region_reads_marked(s, op->regions[r], group, ngroup);
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

static void mark_needed(Sweep *s, const Value *loss) {
  s->needed[loss->id] = true;
  for (int k = s->nops - 1; k >= 0; k--) {
    const Op *op = s->ops[k];
    if (!is_active(s, op))
      continue;
    for (int i = 0; i < op->noperands; i++)
      s->needed[op->operands[i]->id] = true;
  }
}

static void accumulate(Sweep *s, Value *v, Value *g) {
  Value **a = &s->adj[v->id];
  if (!*a) {
    *a = g;
    return;
  }
  Value *ops[2] = {*a, g};
  *a = ir_build(s->c.m, s->c.b, OP_ADD, ops, 2, NULL, NULL, s->c.loc, s->c.d);
  if (!*a)
    s->c.failed = true;
}

/* Step 3: the adjoints of every active op's operands. */
static bool sweep_backward(Sweep *s, const Op *grad) {
  for (int k = s->nops - 1; k >= 0 && !s->c.failed; k--) {
    const Op *op = s->ops[k];
    if (!is_active(s, op))
      continue;
    s->c.loc = op->loc;
    AdStatus st = AD_NO_RULE;
    s->c.why = ir_op_info[op->kind].name;
    Value *gy = op->nresults == 1 ? s->adj[op->results[0]->id] : NULL;
    if (op->nresults != 1 || op->nregions != 0) {
      st = AD_NO_RULE;
    } else if (!gy) {
      continue; /* no contribution reached it: its gradient is 0 */
    } else {
      bool *want = s->want;
      Value **gx = s->gx;
      for (int i = 0; i < op->noperands; i++)
        want[i] = s->marked[op->operands[i]->id];
      st = ad_rule(&s->c, op, gy, want, gx);
      for (int i = 0; st == AD_OK && i < op->noperands; i++) {
        if (!gx[i])
          continue;
        if (!type_eq(&gx[i]->type, &op->operands[i]->type)) {
          diag_error(s->c.d, op->loc,
                     "internal: the derivative rule of %s gives operand %d a "
                     "gradient of another type",
                     ir_op_info[op->kind].name, i);
          return false;
        }
        accumulate(s, op->operands[i], gx[i]);
      }
    }
    if (st == AD_NO_RULE) {
      diag_error(s->c.d, op->loc,
                 "cannot differentiate %s: there is no derivative rule for "
                 "it yet",
                 s->c.why);
      diag_note(s->c.d, grad->loc, "the gradient is taken here");
      return false;
    }
  }
  return !s->c.failed;
}

/* The gradient of one grad op of the group: its wrt's adjoint. */
static Value *gradient_of(Sweep *s, const Op *grad) {
  Value *w = grad->operands[1];
  Value *g = NULL;
  s->c.loc = grad->loc;
  if (w->def && w->def->kind == OP_PARAM) { /* every read of the weight */
    int index = w->def->attrs.param.index;
    for (int k = 0; k < s->nops; k++) {
      const Op *op = s->ops[k];
      if (op->kind != OP_PARAM || op->attrs.param.index != index ||
          !s->adj[op->results[0]->id])
        continue;
      Value *a = s->adj[op->results[0]->id];
      if (!g) {
        g = a;
      } else {
        Value *ops[2] = {g, a};
        g = ir_build(s->c.m, s->c.b, OP_ADD, ops, 2, NULL, NULL, grad->loc,
                     s->c.d);
      }
    }
  } else if (w->id < s->nvalues) {
    g = s->adj[w->id];
  }
  return g ? g : ad_zeros(&s->c, &w->type);
}

static bool expand_group(Module *m, Block *b, Op *first, Diag *d) {
  Value *loss = first->operands[0];
  Sweep s;
  memset(&s, 0, sizeof s);
  s.c.m = m;
  s.c.b = b;
  s.c.d = d;
  s.nvalues = m->next_value_id;
  int nblock = 0, ngroup = 0;
  for (Op *op = b->first; op; op = op->next)
    nblock++;
  s.marked = calloc((size_t)s.nvalues, sizeof(bool));
  s.needed = calloc((size_t)s.nvalues, sizeof(bool));
  s.adj = calloc((size_t)s.nvalues, sizeof(Value *));
  s.ops = calloc((size_t)nblock, sizeof(Op *));
  Op **group = calloc((size_t)nblock, sizeof(Op *));
  int maxops = 1;
  for (Op *op = b->first; op; op = op->next)
    maxops = op->noperands > maxops ? op->noperands : maxops;
  s.want = calloc((size_t)maxops, sizeof(bool));
  s.gx = calloc((size_t)maxops, sizeof(Value *));
  bool ok = s.marked && s.needed && s.adj && s.ops && group && s.want && s.gx;
  if (!ok)
    diag_error(d, first->loc, "out of memory");
  for (Op *op = b->first; ok && op; op = op->next) {
    if (op == first ||
        (op->kind == OP_GRAD && ngroup > 0 && op->operands[0] == loss))
      group[ngroup++] = op;
    else if (ngroup == 0)
      s.ops[s.nops++] = op;
  }
  Op *last_before = b->last;
  if (ok) {
    mark_forward(&s, (const Op *const *)group, ngroup);
    mark_needed(&s, loss);
    s.c.loc = first->loc;
    if (s.marked[loss->id])
      s.adj[loss->id] = ir_const_scalar(m, b, loss->type.dtype, 1.0, s.c.loc);
    ok = sweep_backward(&s, first);
  }
  Value **grads = calloc((size_t)ngroup + 1, sizeof(Value *));
  for (int g = 0; ok && g < ngroup; g++) {
    grads[g] = gradient_of(&s, group[g]);
    ok = grads[g] && !s.c.failed;
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
  free(s.gx);
  free(s.want);
  free(group);
  free(s.ops);
  free(s.adj);
  free(s.needed);
  free(s.marked);
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
