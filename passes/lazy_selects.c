/* pass_lazy_selects: the scalar condition of a lazy select (ir/lazy.c: a
 * side with costly work only it needs) is computed before that work, so
 * the backends can run the work only when its side is picked. The ops
 * computing the condition move up, each right before the first op of the
 * select's lazy cones, after what they read. A pure reordering: no op
 * changes, and every op still follows what it reads. A condition computed
 * with ops that have regions stays where it is (what a region reads is
 * not among the op's operands); the backends then guard only the ops that
 * follow it.
 *
 * Example (a sampling step that a greedy one skips):
 *   %o = topk %logits
 *   %p = categorical ...
 *   %n = gather %o, %p
 *   %g = argmax %logits
 *   %c = gt %temperature, 0
 *   %t = select %c, %n, %g
 * becomes
 *   %c = gt %temperature, 0
 *   %o = topk %logits
 *   ...
 */
#include "passes.h"

/* Whether v can be computed before `first`: defined outside b, or by an op
 * without regions whose operands can (the ops to move). */
static bool movable(const Block *b, const Value *v, const Op *first) {
  const Op *d = v->def;
  if (!d || d->parent != b)
    return true;
  bool before = false;
  for (const Op *op = b->first; op != first && !before; op = op->next)
    before = op == d;
  if (before)
    return true;
  if (d->nregions > 0)
    return false;
  for (int i = 0; i < d->noperands; i++)
    if (!movable(b, d->operands[i], first))
      return false;
  return true;
}

/* Moves v's definition (and its own, first) right before `first`. */
static void move_up(Block *b, Value *v, Op *first) {
  Op *d = v->def;
  if (!d || d->parent != b)
    return;
  for (const Op *op = b->first; op != first; op = op->next)
    if (op == d)
      return;
  for (int i = 0; i < d->noperands; i++)
    move_up(b, d->operands[i], first);
  ir_op_move_before(d, first);
}

static void lazy_block(Block *b) {
  for (Op *op = b->first; op; op = op->next) {
    if (op->kind == OP_SCAN) /* a fused op's region has nothing to skip */
      lazy_block(op->regions[0]);
    if (op->kind != OP_SELECT)
      continue;
    Op *first = (Op *)ir_lazy_first_op(op);
    Value *c = op->operands[0];
    if (first && movable(b, c, first))
      move_up(b, c, first);
  }
}

bool pass_lazy_selects(Module *m, Diag *d) {
  (void)d;
  for (Function *fn = m->functions; fn; fn = fn->next)
    lazy_block(fn->body);
  return true;
}
