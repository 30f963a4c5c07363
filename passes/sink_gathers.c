/* pass_sink_gathers: a scan's sequence that is rows gathered along axis 0
 * (table[indices], nothing else reading it) is gathered a step at a time
 * inside the scan: the scan slices the indices instead, and its region
 * gathers the rows of its step. An RNN whose input projection became a
 * table (passes/hoist_weights.c: (E @ W + b)[tokens]) then never writes
 * all T steps' projections, T x B rows, to memory and reads them back:
 * each step copies its B rows, which stay in cache for the step's
 * matmul (a BiLSTM-CRF's decoding at batch 32, 50 steps: its arena goes
 * from 8.6 to 3.6 MB).
 *
 * Step t of gather(table, idx) along axis 0 is gather(table, idx[t]): the
 * same rows, copied as they were; no value changes a bit. An index out
 * of range is reported at the step that reads it, with the same message
 * (the gather's location), and the call fails as it did.
 *
 *   %g = gather %table, %idx {axis = 0} : f32[T, B, 512]
 *   %h = scan(%h0, %g) over T { ^(%c, %x: f32[B, 512]) ... }
 * becomes
 *   %h = scan(%h0, %idx) over T {
 *     ^(%c, %i: i32[B])
 *     %x = gather %table, %i {axis = 0} : f32[B, 512]
 *     ...
 *   }
 * and dce removes the outer gather.
 *
 * Runs after autodiff (a gather in a region would make the table's
 * gradient a carry) and hoist_weights (which makes such tables).
 */
#include "passes.h"

/* Sequence j of scan s, when it is a gather that can move into s's region:
 * along axis 0 with indices of rank >= 1 (so axis 0 is the indices'), read
 * only here. */
static const Op *sinkable(const Op *s, int j) {
  const Value *v = s->operands[s->attrs.scan.ncarry + j];
  const Op *g = v->def;
  if (!g || g->kind != OP_GATHER || g->attrs.axis.axis != 0 || v->nuses != 1)
    return NULL;
  return g->operands[1]->type.shape.rank >= 1 ? g : NULL;
}

static void sink(Module *m, Op *s, int j, const Op *g) {
  int k = s->attrs.scan.ncarry + j;
  Block *body = s->regions[0];
  Value *arg = body->args[k];
  Value *idx = g->operands[1];
  Type rows = arg->type;
  s->operands[k] = idx;
  arg->type.dtype = idx->type.dtype;
  arg->type.shape.rank = idx->type.shape.rank - 1;
  for (int i = 1; i < idx->type.shape.rank; i++)
    arg->type.shape.dims[i - 1] = idx->type.shape.dims[i];
  Value *ops[2] = {g->operands[0], arg};
  Op *step =
      ir_build_typed(m, body, OP_GATHER, ops, 2, &g->attrs, &rows, 1, g->loc);
  step->results[0]->name = arg->name;
  arg->name = idx->name;
  ir_op_move_before(step, body->first);
  ir_replace_uses(m, arg, step->results[0]);
  step->operands[1] = arg; /* ir_replace_uses made it its own result */
}

static bool sink_block(Module *m, Block *b) {
  bool changed = false;
  for (Op *op = b->first; op; op = op->next) {
    if (op->kind != OP_SCAN)
      continue;
    for (int j = 0; j < op->attrs.scan.nseq; j++) {
      const Op *g = sinkable(op, j);
      if (g) {
        sink(m, op, j, g);
        changed = true;
      }
    }
    changed |= sink_block(m, op->regions[0]);
  }
  return changed;
}

bool pass_sink_gathers(Module *m, Diag *d) {
  (void)d;
  bool changed = false;
  for (Function *f = m->functions; f; f = f->next)
    changed |= sink_block(m, f->body);
  if (changed)
    ir_recount_uses(m);
  return true;
}
