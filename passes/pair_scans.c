/* pass_pair_scans: two scans of a function body over the same number of
 * steps, the second not depending on the first, become neighbours, so that
 * the C backend can run them at the same time, one per thread (a BiLSTM's
 * two directions: c_emit.c's run function, c_plan.c's lifetimes). The ops
 * between them that do not depend on the first scan move above it, in
 * their order; those that do stay after the second. A pure reordering: no
 * op changes, only when it runs, and every op still follows what it reads.
 *
 * "Depends" follows operands and the values a scan's region reads from
 * above it. Only the next scan after each scan is considered, and a scan
 * pairs at most once.
 *
 * Example (the reverse direction's input projection moves up):
 *   %1 = scan(...) over T         (forward)
 *   %2 = permute %1
 *   %3 = matmul %x, %w_rev
 *   %4 = scan(%3, ...) over T     (reverse)
 * becomes
 *   %3 = matmul %x, %w_rev
 *   %1 = scan(...) over T
 *   %4 = scan(%3, ...) over T
 *   %2 = permute %1
 */
#include "passes.h"

#include <stdlib.h>

static bool is_marked(const Value *v, const void *after) {
  return ((const bool *)after)[v->id];
}

/* Whether op or an op of its regions reads a value marked in `after`. */
static bool reads_marked(const Op *op, const bool *after) {
  return ir_op_reads_any(op, is_marked, after);
}

static void mark_results(const Op *op, bool *after) {
  for (int i = 0; i < op->nresults; i++)
    after[op->results[i]->id] = true;
}

/* Pairs `first` with the next scan of its block, if it can; returns the
 * op to continue from. `after`: scratch marks, all false on entry and
 * exit. */
static Op *pair(Op *first, bool *after) {
  Op *second = first->next;
  while (second && second->kind != OP_SCAN)
    second = second->next;
  if (!second || !dim_eq(first->attrs.scan.length, second->attrs.scan.length))
    return first->next;
  mark_results(first, after);
  for (Op *o = first->next; o != second; o = o->next)
    if (reads_marked(o, after))
      mark_results(o, after);
  bool independent = !reads_marked(second, after);
  Op *o = first->next;
  while (o != second) {
    Op *next = o->next;
    bool dependent = false;
    for (int i = 0; i < o->nresults; i++)
      dependent |= after[o->results[i]->id];
    if (independent && !dependent)
      ir_op_move_before(o, first);
    o = next;
  }
  for (o = first; o != second; o = o->next)
    for (int i = 0; i < o->nresults; i++)
      after[o->results[i]->id] = false;
  if (!independent)
    return first->next;
  if (first->next != second)
    ir_op_move_before(second, first->next);
  return second->next;
}

bool pass_pair_scans(Module *m, Diag *d) {
  (void)d;
  bool *after = calloc((size_t)m->next_value_id + 1, sizeof *after);
  if (!after)
    return false;
  for (Function *f = m->functions; f; f = f->next)
    for (Op *op = f->body->first; op;)
      op = op->kind == OP_SCAN ? pair(op, after) : op->next;
  free(after);
  return true;
}
