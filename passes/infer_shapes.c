/* pass_infer_shapes: recomputes every result type from the operands, in op
 * order, with ir_infer_type; the declared type (e.g. from IR text) serves as
 * the hint for ops whose result the operands do not determine. A declared
 * type that disagrees with the inferred one is an error naming both; after
 * success every result type is the inferred one.
 *
 * Example:
 *   %2 = add %0, %1 : f32[T, 4]   where %0 : f32[T, 4], %1 : f32[4]   ok
 *   %2 = add %0, %1 : f32[4]      error: add result is declared f32[4] but
 *                                        infers as f32[T, 4]
 */
#include "passes.h"

static bool infer_scan(Module *m, Op *op, Diag *d) {
  Type types[64];
  int n = 0;
  if (!ir_scan_infer(m, op, types, 64, &n, d))
    return false;
  if (n != op->nresults) {
    diag_error(d, op->loc, "scan has %d results, its region gives %d",
               op->nresults, n);
    return false;
  }
  for (int i = 0; i < n; i++) {
    if (!type_eq(&types[i], &op->results[i]->type)) {
      char declared[512], inferred[512];
      type_print(declared, sizeof declared, &op->results[i]->type, m);
      type_print(inferred, sizeof inferred, &types[i], m);
      diag_error(d, op->loc, "scan result %d is declared %s but infers as %s",
                 i, declared, inferred);
      return false;
    }
  }
  return true;
}

static int infer_block(Module *m, Block *b, Diag *d) {
  int errors = 0;
  for (Op *op = b->first; op; op = op->next) {
    for (int r = 0; r < op->nregions; r++)
      errors += infer_block(m, op->regions[r], d);
    if (op->kind == OP_YIELD)
      continue; /* checked with its scan */
    if (op->kind == OP_SCAN) {
      errors += !infer_scan(m, op, d);
      continue;
    }
    if (op->nresults != 1)
      continue; /* verify reports */
    Value *res = op->results[0];
    Type t;
    if (!ir_infer_type(m, op->kind, op->operands, op->noperands, &op->attrs,
                       &res->type, &t, op->loc, d)) {
      errors++;
      continue;
    }
    if (!type_eq(&t, &res->type)) {
      char declared[512], inferred[512];
      type_print(declared, sizeof declared, &res->type, m);
      type_print(inferred, sizeof inferred, &t, m);
      diag_error(d, op->loc, "%s result is declared %s but infers as %s",
                 ir_op_info[op->kind].name, declared, inferred);
      errors++;
      continue;
    }
    res->type = t;
  }
  return errors;
}

bool pass_infer_shapes(Module *m, Diag *d) {
  int errors = 0;
  for (Function *f = m->functions; f; f = f->next)
    errors += infer_block(m, f->body, d);
  return errors == 0;
}
