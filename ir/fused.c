/* The fused op: one elementwise loop whose body is a region of scalar ops
 * (see its row in ops.def). passes/fuse.c makes them; the C backend emits
 * one loop per fused op, evaluating the region's ops in order on locals.
 *
 * Invariants (ir_fused_check): the region has one argument per operand, of
 * the operand's dtype and shape []; its ops are elementwise ops and
 * constants whose results have shape [], and they read only the region's
 * arguments and earlier region results; it ends with a yield of one value
 * whose dtype is the fused op's.
 */
#include "ir.h"

bool ir_fusable_kind(OpKind k) {
  if (k == OP_CONST)
    return true;
  unsigned f = ir_op_info[k].flags;
  return (f & OPF_ELEMENTWISE) && !(f & OPF_RANDOM);
}

/* An elementwise loop: a fused op or one elementwise op. */
static bool is_loop(const Op *op) {
  return op->kind == OP_FUSED ||
         (ir_fusable_kind(op->kind) && op->kind != OP_CONST);
}

/* Whether reader is an elementwise loop over the shape of producer's
 * result, its only reader, that reads it once. */
static bool only_reader_loop(const Op *producer, const Op *reader) {
  if (!producer || !reader || producer->nresults != 1 ||
      reader->nresults != 1 || reader->parent != producer->parent ||
      !is_loop(reader))
    return false;
  const Value *p = producer->results[0], *y = reader->results[0];
  if (p->nuses != 1 || !shape_eq(&p->type.shape, &y->type.shape))
    return false;
  int reads = 0;
  for (int i = 0; i < reader->noperands; i++)
    reads += reader->operands[i] == p;
  return reads == 1;
}

static bool is_reduction(const Op *op) {
  return op->kind == OP_REDUCE_SUM || op->kind == OP_REDUCE_MEAN ||
         op->kind == OP_REDUCE_MAX || op->kind == OP_REDUCE_MIN ||
         op->kind == OP_LOGSUMEXP;
}

bool ir_is_gemm_epilogue(const Op *mm, const Op *reader) {
  return mm && mm->kind == OP_MATMUL && only_reader_loop(mm, reader) &&
         mm->results[0]->type.dtype == DT_F32 &&
         reader->results[0]->type.dtype == DT_F32;
}

bool ir_is_reduce_epilogue(const Op *red, const Op *reader) {
  return red && is_reduction(red) && only_reader_loop(red, reader);
}

bool ir_is_reduce_prologue(const Op *producer, const Op *red) {
  return producer && red && is_loop(producer) && is_reduction(red) &&
         producer->nresults == 1 && red->parent == producer->parent &&
         producer->results[0]->nuses == 1 &&
         red->operands[0] == producer->results[0];
}

bool ir_is_attention_softmax(const Op *sm, const Op *mm) {
  if (!sm || !mm || sm->kind != OP_SOFTMAX || mm->kind != OP_MATMUL ||
      sm->parent != mm->parent || sm->results[0]->nuses != 1 ||
      mm->operands[0] != sm->results[0] || mm->operands[1] == sm->results[0] ||
      mm->attrs.matmul.trans_a)
    return false;
  const Shape *s = &sm->results[0]->type.shape,
              *y = &mm->results[0]->type.shape,
              *v = &mm->operands[1]->type.shape;
  if (sm->results[0]->type.dtype != DT_F32 ||
      mm->results[0]->type.dtype != DT_F32 || s->rank < 2 || v->rank < 2 ||
      sm->attrs.axis.axis != s->rank - 1 || y->rank != s->rank)
    return false;
  for (int i = 0; i < s->rank - 1; i++)
    if (!dim_eq(s->dims[i], y->dims[i]))
      return false;
  return true;
}

bool ir_is_attention_scores(const Op *scores, const Op *sm) {
  if (!scores || !sm || sm->kind != OP_SOFTMAX || scores->nresults != 1 ||
      scores->parent != sm->parent || scores->results[0]->nuses != 1 ||
      sm->operands[0] != scores->results[0] ||
      scores->results[0]->type.dtype != DT_F32)
    return false;
  if (scores->kind == OP_MATMUL)
    return scores->operands[0]->type.shape.rank >= 2 &&
           scores->operands[1]->type.shape.rank >= 2;
  return is_loop(scores);
}

Op *ir_fused_begin(Module *m, Block *b, Value *const *operands, int noperands,
                   DType result, Loc loc) {
  Type t = {result, shape_scalar()};
  Op *op =
      ir_build_typed(m, b, OP_FUSED, operands, noperands, NULL, &t, 1, loc);
  Block *body = ir_block_new(m);
  body->parent_op = op;
  op->nregions = 1;
  op->regions = arena_alloc(&m->arena, sizeof(Block *));
  op->regions[0] = body;
  for (int i = 0; i < noperands; i++) {
    Type a = {operands[i]->type.dtype, shape_scalar()};
    ir_block_add_arg(m, body, a, operands[i]->name);
  }
  return op;
}

void ir_fused_finish(Module *m, Op *fused, Value *yield, Loc loc) {
  ir_build_typed(m, fused->regions[0], OP_YIELD, &yield, 1, NULL, NULL, 0, loc);
}

/* Whether v is an argument of body or the result of an op before `op` in
 * it. */
static bool defined_before(const Block *body, const Op *op, const Value *v) {
  if (!v->def)
    return v->block == body;
  if (v->def->parent != body)
    return false;
  for (const Op *o = body->first; o && o != op; o = o->next)
    if (o == v->def)
      return true;
  return false;
}

bool ir_fused_check(const Module *m, const Op *fused, Diag *d) {
  (void)m;
  Loc loc = fused->loc;
  if (fused->nregions != 1 || !fused->regions[0]) {
    diag_error(d, loc, "fused needs exactly one region");
    return false;
  }
  const Block *body = fused->regions[0];
  if (body->nargs != fused->noperands) {
    diag_error(d, loc, "fused region has %d arguments for %d operands",
               body->nargs, fused->noperands);
    return false;
  }
  for (int i = 0; i < body->nargs; i++) {
    const Type *t = &body->args[i]->type;
    if (t->shape.rank != 0 || t->dtype != fused->operands[i]->type.dtype) {
      diag_error(d, loc,
                 "fused region argument %d must be a %s scalar (its operand's "
                 "dtype)",
                 i, dtype_name(fused->operands[i]->type.dtype));
      return false;
    }
  }
  const Op *last = body->last;
  if (!last || last->kind != OP_YIELD || last->noperands != 1) {
    diag_error(d, loc, "fused region must end with a yield of one value");
    return false;
  }
  for (const Op *op = body->first; op != last; op = op->next) {
    const char *name = ir_op_info[op->kind].name;
    if (!ir_fusable_kind(op->kind) || op->nresults != 1 ||
        op->results[0]->type.shape.rank != 0) {
      diag_error(d, op->loc,
                 "fused region holds %s; only elementwise ops and constants "
                 "on scalars may",
                 name);
      return false;
    }
    for (int i = 0; i < op->noperands; i++)
      if (!defined_before(body, op, op->operands[i])) {
        diag_error(d, op->loc,
                   "%s in a fused region reads a value from outside it", name);
        return false;
      }
  }
  const Value *y = last->operands[0];
  if (!defined_before(body, last, y) || y->type.shape.rank != 0 ||
      y->type.dtype != fused->results[0]->type.dtype) {
    diag_error(d, loc, "fused region must yield one %s scalar of its own",
               dtype_name(fused->results[0]->type.dtype));
    return false;
  }
  return true;
}
