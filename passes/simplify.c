/* pass_simplify: rewrites that change how a result is computed, never what
 * it is. Only rewrites that are exact in IEEE arithmetic belong here (no
 * reassociation, no x*1 -> x, no x*c/c -> x).
 *
 * Today: a matmul operand that is a permute swapping the last two axes (and
 * keeping the others) reads the permute's operand with the matmul's
 * transpose flag toggled instead. The GEMM sums in k order whatever the
 * strides, so the bits are the same; the copy of the transposed weight goes
 * away (dce removes the permute once unused).
 *
 * Example:
 *   %1 = permute %w {perm = [1, 0]} : f32[16, 64]
 *   %2 = matmul %x, %1 : f32[B, 64]
 * becomes
 *   %2 = matmul %x, %w {trans_b} : f32[B, 64]
 */
#include "passes.h"

/* true if p swaps the last two axes of a rank >= 2 value, keeping others */
static bool swaps_last_two(const Op *p) {
  int rank = p->results[0]->type.shape.rank;
  if (rank < 2)
    return false;
  for (int i = 0; i < rank - 2; i++)
    if (p->attrs.perm.perm[i] != i)
      return false;
  return p->attrs.perm.perm[rank - 2] == rank - 1 &&
         p->attrs.perm.perm[rank - 1] == rank - 2;
}

static void simplify_block(Block *b) {
  for (Op *op = b->first; op; op = op->next) {
    for (int r = 0; r < op->nregions; r++)
      simplify_block(op->regions[r]);
    if (op->kind != OP_MATMUL)
      continue;
    for (int i = 0; i < 2; i++) {
      Value *v = op->operands[i];
      if (!v->def || v->def->kind != OP_PERMUTE || !swaps_last_two(v->def))
        continue;
      Value *src = v->def->operands[0];
      op->operands[i] = src;
      v->nuses--;
      src->nuses++;
      if (i == 0)
        op->attrs.matmul.trans_a = !op->attrs.matmul.trans_a;
      else
        op->attrs.matmul.trans_b = !op->attrs.matmul.trans_b;
    }
  }
}

bool pass_simplify(Module *m, Diag *d) {
  (void)d;
  for (Function *f = m->functions; f; f = f->next)
    simplify_block(f->body);
  return true;
}
