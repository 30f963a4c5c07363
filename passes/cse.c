/* pass_cse: hash-based value numbering. Two ops are identical when they have
 * the same kind, the same operands (after earlier merges), equal attributes
 * (constant data compared byte by byte) and the same result type; the later
 * one's uses move to the first and it is removed. Operands of commutative
 * ops are ordered canonically only for integer and bool dtypes: for floats
 * a+b and b+a may differ in NaN payloads, and maximum/minimum in NaN
 * handling, so float operand order is kept. Each block is numbered on its
 * own, so no op is ever merged with one from another region (a region's
 * values hash separately from those above it; an op inside a scan is never
 * replaced by an equal one outside, nor the reverse). Scans themselves and
 * yields are never merged, nor random draws (OPF_RANDOM): two draws from
 * the same state are equal by definition of the generator, but a model
 * that writes two draws means two, and the C keeps one kernel per draw.
 *
 * Example:
 *   %0 = exp %x : f32[4]
 *   %1 = exp %x : f32[4]
 *   %2 = add %0, %1 : f32[4]
 * becomes
 *   %0 = exp %x : f32[4]
 *   %2 = add %0, %0 : f32[4]
 */
#include "passes.h"

#include <stdlib.h>
#include <string.h>

typedef struct Cse {
  Module *m;
  Value **repl; /* per value id: its replacement, or NULL */
} Cse;

static uint64_t mix(uint64_t h, uint64_t x) {
  return (h ^ x) * 0x100000001b3ull + (h >> 29);
}

static int op_rank(const Op *op) {
  const Value *v = op->noperands > 0 ? op->operands[0] : op->results[0];
  int r = v->type.shape.rank;
  return r < 0 ? 0 : r > MAX_RANK ? MAX_RANK : r;
}

static uint64_t hash_dim(uint64_t h, Dim d) {
  h = mix(h, d.nterms);
  for (int i = 0; i < d.nterms; i++) {
    h = mix(h, (uint64_t)d.terms[i].coef);
    for (int j = 0; j < d.terms[i].nfactors; j++)
      h = mix(h, d.terms[i].sym[j]);
  }
  return h;
}

static size_t const_bytes(const Op *op) {
  int64_t n;
  const Type *t = &op->results[0]->type;
  if (!op->attrs.cst.data || !shape_const_numel(&t->shape, &n))
    return 0;
  return (size_t)n * dtype_size(t->dtype);
}

static uint64_t hash_op(const Op *op) {
  uint64_t h = mix(0xcbf29ce484222325ull, (uint64_t)op->kind);
  for (int i = 0; i < op->noperands; i++)
    h = mix(h, (uint64_t)op->operands[i]->id);
  const Type *t = &op->results[0]->type;
  h = mix(h, (uint64_t)t->dtype);
  for (int i = 0; i < t->shape.rank; i++)
    h = hash_dim(h, t->shape.dims[i]);
  const Attrs *a = &op->attrs;
  int rank = op_rank(op);
  switch (ir_op_info[op->kind].attr) {
  case ATTR_NONE:
  case ATTR_COUNT:
    break;
  case ATTR_CONST: {
    const unsigned char *p = a->cst.data;
    size_t n = const_bytes(op);
    for (size_t i = 0; i < n; i++)
      h = mix(h, p[i]);
    break;
  }
  case ATTR_PARAM:
    h = mix(h, (uint64_t)a->param.index);
    break;
  case ATTR_AXIS:
    h = mix(h, (uint64_t)a->axis.axis);
    break;
  case ATTR_MATMUL:
    h = mix(h, (uint64_t)a->matmul.trans_a * 2 + a->matmul.trans_b);
    break;
  case ATTR_REDUCE:
    h = mix(h, (uint64_t)a->reduce.axes * 2 + a->reduce.keepdims);
    break;
  case ATTR_SLICE:
    for (int i = 0; i < rank; i++)
      h = mix(hash_dim(h, a->slice.start[i]), (uint64_t)a->slice.step[i]);
    break;
  case ATTR_PERM:
    for (int i = 0; i < rank; i++)
      h = mix(h, (uint64_t)a->perm.perm[i]);
    break;
  case ATTR_SCAN: /* never numbered (it has a region); hashed for safety */
    h = hash_dim(mix(h, (uint64_t)a->scan.ncarry), a->scan.length);
    break;
  }
  return h;
}

static bool attrs_equal(const Op *x, const Op *y) {
  const Attrs *a = &x->attrs, *b = &y->attrs;
  int rank = op_rank(x);
  switch (ir_op_info[x->kind].attr) {
  case ATTR_NONE:
  case ATTR_COUNT:
    return true;
  case ATTR_CONST: {
    size_t n = const_bytes(x);
    return a->cst.data && b->cst.data && n == const_bytes(y) &&
           memcmp(a->cst.data, b->cst.data, n) == 0;
  }
  case ATTR_PARAM:
    return a->param.index == b->param.index;
  case ATTR_AXIS:
    return a->axis.axis == b->axis.axis;
  case ATTR_MATMUL:
    return a->matmul.trans_a == b->matmul.trans_a &&
           a->matmul.trans_b == b->matmul.trans_b;
  case ATTR_REDUCE:
    return a->reduce.axes == b->reduce.axes &&
           a->reduce.keepdims == b->reduce.keepdims;
  case ATTR_SLICE:
    for (int i = 0; i < rank; i++)
      if (!dim_eq(a->slice.start[i], b->slice.start[i]) ||
          a->slice.step[i] != b->slice.step[i])
        return false;
    return true;
  case ATTR_PERM:
    for (int i = 0; i < rank; i++)
      if (a->perm.perm[i] != b->perm.perm[i])
        return false;
    return true;
  case ATTR_SCAN: /* ops with regions are never merged */
    return false;
  }
  return false;
}

static bool ops_equal(const Op *x, const Op *y) {
  if (x->kind != y->kind || x->noperands != y->noperands ||
      !type_eq(&x->results[0]->type, &y->results[0]->type))
    return false;
  for (int i = 0; i < x->noperands; i++)
    if (x->operands[i] != y->operands[i])
      return false;
  return attrs_equal(x, y);
}

static void rewrite_operands(Cse *c, Op *op) {
  for (int i = 0; i < op->noperands; i++) {
    Value *v = op->operands[i];
    Value *r = c->repl[v->id];
    if (r) {
      op->operands[i] = r;
      v->nuses--;
      r->nuses++;
    }
  }
  const OpInfo *info = &ir_op_info[op->kind];
  if ((info->flags & OPF_COMMUTATIVE) && op->noperands == 2 &&
      !dtype_is_float(op->operands[0]->type.dtype) &&
      op->operands[0]->id > op->operands[1]->id) {
    Value *t = op->operands[0];
    op->operands[0] = op->operands[1];
    op->operands[1] = t;
  }
}

static void cse_block(Cse *c, Block *b) {
  size_t n = 0;
  for (Op *op = b->first; op; op = op->next)
    n++;
  size_t cap = 16;
  while (cap < 2 * n + 2)
    cap *= 2;
  Op **table = calloc(cap, sizeof(Op *));
  if (!table)
    abort();
  for (Op *op = b->first, *next; op; op = next) {
    next = op->next;
    rewrite_operands(c, op);
    for (int r = 0; r < op->nregions; r++)
      cse_block(c, op->regions[r]);
    if (op->nresults != 1 || op->nregions != 0 ||
        (ir_op_info[op->kind].flags & OPF_RANDOM))
      continue;
    size_t i = hash_op(op) & (cap - 1);
    while (table[i] && !ops_equal(table[i], op))
      i = (i + 1) & (cap - 1);
    if (!table[i]) {
      table[i] = op;
      continue;
    }
    Value *from = op->results[0], *to = table[i]->results[0];
    c->repl[from->id] = to;
    ir_op_remove(op);
  }
  free(table);
}

bool pass_cse(Module *m, Diag *d) {
  (void)d;
  Cse c = {m, NULL};
  c.repl = calloc((size_t)m->next_value_id + 1, sizeof(Value *));
  if (!c.repl)
    abort();
  for (Function *f = m->functions; f; f = f->next) {
    cse_block(&c, f->body);
    for (int i = 0; i < f->noutputs; i++) {
      Value *v = f->outputs[i].value;
      Value *r = v ? c.repl[v->id] : NULL;
      if (r) {
        f->outputs[i].value = r;
        v->nuses--;
        r->nuses++;
      }
    }
  }
  free(c.repl);
  return true;
}
