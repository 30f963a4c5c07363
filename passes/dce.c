/* pass_dce: removes ops none of whose results is used by another op or a
 * function output. All ops are pure today, so this never changes results.
 * Walking each block backwards removes whole dead chains in one sweep: an
 * op's operands lose a use when it goes, before they are visited.
 *
 * Example:
 *   %0 = exp %x : f32[4]          (unused)
 *   %1 = neg %0 : f32[4]          (unused)
 *   return y = %x
 * becomes
 *   return y = %x
 */
#include "passes.h"

static void dce_block(Block *b) {
  Op *op = b->last;
  while (op) {
    Op *prev = op->prev;
    for (int r = 0; r < op->nregions; r++)
      dce_block(op->regions[r]);
    bool used = false;
    for (int i = 0; i < op->nresults; i++)
      used |= op->results[i]->nuses > 0;
    if (!used)
      ir_op_remove(op);
    op = prev;
  }
}

bool pass_dce(Module *m, Diag *d) {
  (void)d;
  ir_recount_uses(m);
  for (Function *f = m->functions; f; f = f->next)
    dce_block(f->body);
  return true;
}
