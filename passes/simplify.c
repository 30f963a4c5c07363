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
 *
 * And a permute of a result that only permutes read moves to the op's
 * operands when they are no more bytes: an elementwise op (its operands'
 * elements go through the same arithmetic in another order), a matmul by
 * a matrix that keeps the last axis (each row is the same dot products), a
 * gather along axis 0 that moves only the index axes. A permute of a
 * permute is one permute, or none. The scan over a sequence's axis 1 that
 * a BiLSTM's lowering permutes to axis 0 then permutes its int tokens
 * instead of the f32 [B, T, 4H] input projection. (Permutes also move down
 * past a concat and a matmul that shrinks: move_a_permute_down.)
 *
 *   %1 = gather %emb, %tok {axis = 0} : f32[B, T, 100]
 *   %2 = matmul %1, %w {trans_b} : f32[B, T, 512]
 *   %3 = add %2, %b : f32[B, T, 512]
 *   %4 = permute %3 {perm = [1, 0, 2]} : f32[T, B, 512]
 * becomes
 *   %5 = permute %tok {perm = [1, 0]} : i32[T, B]
 *   %6 = gather %emb, %5 {axis = 0} : f32[T, B, 100]
 *   %7 = matmul %6, %w {trans_b} : f32[T, B, 512]
 *   %4 = add %7, %b : f32[T, B, 512]
 */
#include "passes.h"

#include <string.h>

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

/* ---- permutes move to operands ------------------------------------- */

static bool is_identity(const int *perm, int rank) {
  for (int i = 0; i < rank; i++)
    if (perm[i] != i)
      return false;
  return true;
}

/* Bytes of v, every symbol taken as 64: a size to compare, not to use. */
static double sized(const Value *v) {
  int64_t sixty_four[MAX_SYMBOLS];
  for (int i = 0; i < MAX_SYMBOLS; i++)
    sixty_four[i] = 64;
  const Shape *s = &v->type.shape;
  double n = (double)dtype_size(v->type.dtype);
  for (int i = 0; i < s->rank; i++)
    n *= (double)dim_eval(s->dims[i], sixty_four);
  return n;
}

/* What operand i of def (result rank `rank`, permuted by perm) becomes:
 * *sub set to the permutation to apply to it (*nsub its rank, 0: read as
 * it is); false when the permute cannot move past def there. */
static bool operand_perm(const Op *def, int i, const int *perm, int rank,
                         int sub[MAX_RANK], int *nsub) {
  int r = def->operands[i]->type.shape.rank;
  *nsub = 0;
  if (def->kind == OP_GATHER) {
    if (i == 0)
      return true; /* the table */
    for (int j = r; j < rank; j++)
      if (perm[j] != j)
        return false;
    memcpy(sub, perm, sizeof(int) * (size_t)r);
    *nsub = r;
    return true;
  }
  if (def->kind == OP_MATMUL && i == 1)
    return true; /* the matrix */
  if (r == rank) {
    memcpy(sub, perm, sizeof(int) * (size_t)r);
    *nsub = r;
    return true;
  }
  for (int j = rank - r; j < rank; j++) /* right-aligned: must stay put */
    if (perm[j] != j)
      return false;
  return true;
}

/* Whether a permute by perm of def's result can move to def's operands,
 * and is no more bytes there. */
static bool permute_moves(const Op *def, const int *perm, int rank) {
  unsigned flags = ir_op_info[def->kind].flags;
  if (def->nresults != 1 || def->nregions || def->noperands > 8)
    return false;
  if (def->kind == OP_MATMUL) {
    if (def->attrs.matmul.trans_a || def->operands[1]->type.shape.rank != 2 ||
        def->operands[0]->type.shape.rank != rank || perm[rank - 1] != rank - 1)
      return false;
  } else if (def->kind == OP_GATHER) {
    if (def->attrs.axis.axis != 0)
      return false;
  } else if (!(flags & OPF_ELEMENTWISE) || (flags & OPF_RANDOM)) {
    return false;
  }
  double bytes = 0;
  for (int i = 0; i < def->noperands; i++) {
    int sub[MAX_RANK], nsub;
    if (!operand_perm(def, i, perm, rank, sub, &nsub))
      return false;
    if (nsub && !is_identity(sub, nsub))
      bytes += sized(def->operands[i]);
  }
  return bytes <= sized(def->results[0]);
}

/* The ops in b that read v; false unless they are all permutes by perm
 * and are all of v's uses. */
static bool only_permuted(Block *b, const Value *v, const int *perm, Op **users,
                          int cap, int *n) {
  int rank = v->type.shape.rank;
  *n = 0;
  for (Op *op = b->first; op; op = op->next)
    for (int i = 0; i < op->noperands; i++)
      if (op->operands[i] == v) {
        if (op->kind != OP_PERMUTE || *n == cap ||
            memcmp(op->attrs.perm.perm, perm, sizeof(int) * (size_t)rank))
          return false;
        users[(*n)++] = op;
        break;
      }
  return *n == v->nuses;
}

/* permute(x, perm) (perm of x's rank), built in before's block just
 * before it; NULL after a diagnostic. */
static Value *permute_before(Module *m, Value *x, const int *perm, Op *before,
                             Loc loc, Diag *d) {
  Attrs a;
  memset(&a, 0, sizeof a);
  memcpy(a.perm.perm, perm, sizeof(int) * (size_t)x->type.shape.rank);
  Value *y = ir_build(m, before->parent, OP_PERMUTE, &x, 1, &a, NULL, loc, d);
  if (y)
    ir_op_move_before(y->def, before);
  return y;
}

/* Rebuilds def on permuted operands before def; the new result, or NULL. */
static Value *permuted_def(Module *m, Op *def, const int *perm, Loc loc,
                           Diag *d) {
  int rank = def->results[0]->type.shape.rank;
  Value *ops[8]; /* permute_moves: at most 8 */
  for (int i = 0; i < def->noperands; i++) {
    int sub[MAX_RANK], nsub;
    operand_perm(def, i, perm, rank, sub, &nsub);
    ops[i] = def->operands[i];
    if (!nsub || is_identity(sub, nsub))
      continue;
    ops[i] = permute_before(m, ops[i], sub, def, loc, d);
    if (!ops[i])
      return NULL;
  }
  Type t = def->results[0]->type;
  for (int i = 0; i < rank; i++)
    t.shape.dims[i] = def->results[0]->type.shape.dims[perm[i]];
  Op *op = ir_build_typed(m, def->parent, def->kind, ops, def->noperands,
                          &def->attrs, &t, 1, def->loc);
  ir_op_move_before(op, def);
  op->results[0]->name = def->results[0]->name;
  return op->results[0];
}

/* A permute of a permute is one permute (or none): true if p was one. */
static bool compose(Module *m, Op *p) {
  Value *v = p->operands[0];
  int *perm = p->attrs.perm.perm, rank = v->type.shape.rank;
  Op *def = v->def;
  bool nested = def && def->kind == OP_PERMUTE;
  if (!nested && !is_identity(perm, rank))
    return false;
  if (nested) { /* result axis i is v's axis perm[i], x's def_perm[perm[i]] */
    int composed[MAX_RANK];
    for (int i = 0; i < rank; i++)
      composed[i] = def->attrs.perm.perm[perm[i]];
    memcpy(perm, composed, sizeof composed);
    p->operands[0] = def->operands[0];
    def->operands[0]->nuses++;
    if (--v->nuses == 0)
      ir_op_remove(def);
  }
  if (is_identity(perm, rank)) {
    ir_replace_uses(m, p->results[0], p->operands[0]);
    ir_op_remove(p);
  }
  return true;
}

/* One permute moved up in b; false when none can (or an op could not be
 * built: *failed). */
static bool move_a_permute(Module *m, Block *b, bool *failed, Diag *d) {
  for (Op *p = b->first; p; p = p->next) {
    if (p->kind != OP_PERMUTE)
      continue;
    if (compose(m, p))
      return true;
    Value *v = p->operands[0];
    Op *def = v->def, *users[16];
    const int *perm = p->attrs.perm.perm;
    int rank = v->type.shape.rank, n;
    if (!def || def->parent != b || !permute_moves(def, perm, rank) ||
        !only_permuted(b, v, perm, users, 16, &n))
      continue;
    Value *nv = permuted_def(m, def, perm, p->loc, d);
    if (!nv) {
      *failed = true;
      return false;
    }
    for (int i = 0; i < n; i++) {
      ir_replace_uses(m, users[i]->results[0], nv);
      ir_op_remove(users[i]);
    }
    ir_op_remove(def);
    return true;
  }
  return false;
}

/* The permute by which u's operand i is computed, if it has no other
 * use; else NULL. */
static Op *sole_permute(const Op *u, int i) {
  Op *p = u->operands[i]->def;
  return p && p->kind == OP_PERMUTE && p->parent == u->parent &&
                 u->operands[i]->nuses == 1
             ? p
             : NULL;
}

/* The other way: a concat of permutes by one perm is a permute of the
 * concat (along the axis the perm moves there), and a matmul of a permute
 * that keeps the last axis is a permute of the matmul when its result is
 * fewer bytes than its operand (the bytes the permute moves). The BiLSTM
 * then concatenates its two directions' outputs as the scans stack them
 * ([T, B, 2H]) and permutes the [B, T, K] emissions instead. (The move up
 * above never undoes these: it moves no permute past a concat, nor past a
 * matmul whose operand is more bytes than its result.) */
static bool move_a_permute_down(Module *m, Block *b, bool *failed, Diag *d) {
  for (Op *u = b->first; u; u = u->next) {
    if ((u->kind != OP_CONCAT && u->kind != OP_MATMUL) || u->nresults != 1)
      continue;
    Op *p = sole_permute(u, 0);
    if (!p)
      continue;
    const int *perm = p->attrs.perm.perm;
    int rank = u->results[0]->type.shape.rank, n = u->noperands;
    Attrs a = u->attrs;
    Value *ops[16];
    if (u->kind == OP_MATMUL) {
      if (a.matmul.trans_a || u->operands[1]->type.shape.rank != 2 ||
          perm[rank - 1] != rank - 1 ||
          !(sized(u->results[0]) < sized(u->operands[0])))
        continue;
      ops[1] = u->operands[1];
      n = 1;
    } else {
      bool all = n <= 16;
      for (int i = 0; i < n && all; i++) {
        Op *q = sole_permute(u, i);
        all =
            q && !memcmp(q->attrs.perm.perm, perm, sizeof(int) * (size_t)rank);
      }
      if (!all)
        continue;
      a.axis.axis = perm[a.axis.axis];
    }
    for (int i = 0; i < n; i++)
      ops[i] = u->operands[i]->def->operands[0];
    Value *inner =
        ir_build(m, b, u->kind, ops, u->noperands, &a, NULL, u->loc, d);
    if (inner)
      ir_op_move_before(inner->def, u);
    Value *outer = inner ? permute_before(m, inner, perm, u, p->loc, d) : NULL;
    if (!outer) {
      *failed = true;
      return false;
    }
    outer->name = u->results[0]->name;
    ir_replace_uses(m, u->results[0], outer);
    Op *gone[16];
    for (int i = 0; i < n; i++)
      gone[i] = u->operands[i]->def;
    ir_op_remove(u);
    for (int i = 0; i < n; i++)
      ir_op_remove(gone[i]);
    return true;
  }
  return false;
}

static bool move_permutes(Module *m, Block *b, Diag *d) {
  for (Op *op = b->first; op; op = op->next)
    for (int r = 0; r < op->nregions; r++)
      if (!move_permutes(m, op->regions[r], d))
        return false;
  bool failed = false;
  while (move_a_permute(m, b, &failed, d) ||
         move_a_permute_down(m, b, &failed, d))
    continue;
  return !failed;
}

bool pass_simplify(Module *m, Diag *d) {
  for (Function *f = m->functions; f; f = f->next) {
    simplify_block(f->body);
    if (!move_permutes(m, f->body, d))
      return false;
  }
  return true;
}
