/* pass_dce: removes ops none of whose results is used by another op or a
 * function output. All ops are pure today, so this never changes results:
 * even a random draw (OPF_RANDOM) is a function of its explicit state
 * operand, so dropping an unused one changes no other draw.
 * A scan none of whose results is used goes with its region; inside a
 * region dead ops go, but the yield (the region's terminator) stays.
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

/* The uses a removed region held on values defined above it. */
static void drop_region_uses(Block *b) {
  for (Op *op = b->first; op; op = op->next) {
    for (int i = 0; i < op->noperands; i++)
      if (op->operands[i])
        op->operands[i]->nuses--;
    for (int r = 0; r < op->nregions; r++)
      drop_region_uses(op->regions[r]);
  }
}

static void dce_block(Block *b) {
  Op *op = b->last;
  while (op) {
    Op *prev = op->prev;
    bool used = op->kind == OP_YIELD;
    for (int i = 0; i < op->nresults; i++)
      used |= op->results[i]->nuses > 0;
    if (!used) {
      for (int r = 0; r < op->nregions; r++)
        drop_region_uses(op->regions[r]);
      ir_op_remove(op);
    } else {
      for (int r = 0; r < op->nregions; r++)
        dce_block(op->regions[r]);
    }
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
