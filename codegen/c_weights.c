/* How the model keeps each weight (McWeightSpec.store and .transposed),
 * chosen from how every function uses it; the runtime brings the file's
 * tensors into that form once, when the program loads them.
 *
 *  - transposed: a matrix whose only uses are as the right operand of a
 *    float matmul with trans_b (x @ W.T, as a tied LM head or nn.Linear
 *    computes), and possibly as the table of a gather along axis 0, is kept
 *    as W.T, in the GEMM's panels (packed, below): the matmul reads B in
 *    place and the gather reads a column.
 *  - 16 bits (--weight-dtype f16|bf16): a matrix whose only uses are those
 *    (matmul right operands, either layout, and gather tables) is kept in
 *    16 bits; the matmul widens it in registers (mc_gemm_f32_w16), the
 *    gather element by element (and a permute feeding matmuls: Uses).
 *    Everything else stays f32: vectors, weights that feed elementwise
 *    ops, views, outputs.
 *  - packed: a matrix whose only uses are as the right operand of float
 *    matmuls, all with trans_b (and perhaps as a gather table: a tied LM
 *    head) or all without, is kept as the GEMM's panels of B (of W or W.T;
 *    f32: mc_gemm_pack_b, 16 bits: mc_gemm_pack_weight16's wider panels):
 *    every call reads it in place (mc_gemm_f32_packed,
 *    mc_gemm_f32_w16_packed), none packs it again (a prompt's GEMMs, a
 *    batch of them sharing the weight, a scan's step), and a GEMV streams
 *    each panel from start to end. A gather reads row i of W, column i of
 *    W.T, across the panels (GPT-2's prompt no longer packs the 154 MB of
 *    its LM head at each call).
 * Either way the values the model computes with are the same f32 numbers
 * (16-bit rounding aside), so no other part of the backend changes.
 * Attention's two matmuls (c_attention.c) read their operands as the file
 * has them: a weight used there keeps its layout. A weight a training entry
 * updates stays plain f32 in the file's layout: the training program
 * replaces it by the entry's output after each step.
 */
#include "c_emit.h"

/* A weight's uses. A permute swapping W's two axes whose every use is a
 * matmul's right operand (x @ W.T before passes/simplify.c folds it into
 * the matmul's flag, as at -O0) counts as those matmuls (t_matmul): such a
 * W is kept in 16 bits too, so that --weight-dtype rounds the same
 * matrices at every -O level; the permute widens it as it copies. */
typedef struct Uses {
  int matmul, trans_b, gather, other, permute, t_matmul, t_other;
} Uses;

/* Whether mm is one of attention's matmuls: P @ V, or Q @ K.T with perhaps
 * its epilogue before the softmax (passes/fuse.c made them neighbours). */
static bool attention_matmul(const Op *mm) {
  const Op *a = mm->operands[0]->def;
  if (a && a->kind == OP_SOFTMAX)
    return true;
  const Op *s = ir_is_gemm_epilogue(mm, mm->next) ? mm->next : mm;
  return ir_is_attention_scores(s, s->next);
}

static int param_of(const Value *v) {
  return v->def && v->def->kind == OP_PARAM ? v->def->attrs.param.index : -1;
}

/* The weight a permute swapping a matrix's two axes reads, or -1. */
static int transposed_param(const Value *v) {
  const Op *t = v->def;
  if (!t || t->kind != OP_PERMUTE || t->results[0]->type.shape.rank != 2 ||
      t->attrs.perm.perm[0] != 1)
    return -1;
  return param_of(t->operands[0]);
}

static bool matmul_b(const Op *op, int i) {
  return op->kind == OP_MATMUL && i == 1 &&
         dtype_is_float(op->results[0]->type.dtype) && !attention_matmul(op);
}

static void count_uses(const Block *b, Uses *u) {
  for (const Op *op = b->first; op; op = op->next) {
    for (int i = 0; i < op->noperands; i++) {
      int t = transposed_param(op->operands[i]);
      if (t >= 0) {
        u[t].t_matmul += matmul_b(op, i);
        u[t].t_other += !matmul_b(op, i);
      }
      int p = param_of(op->operands[i]);
      if (p < 0)
        continue;
      if (matmul_b(op, i)) {
        u[p].matmul++;
        u[p].trans_b += op->attrs.matmul.trans_b;
      } else if (op->kind == OP_GATHER && i == 0 && op->attrs.axis.axis == 0) {
        u[p].gather++;
      } else if (op->nresults && transposed_param(op->results[0]) == p) {
        u[p].permute++;
      } else {
        u[p].other++;
      }
    }
    for (int r = 0; r < op->nregions; r++)
      count_uses(op->regions[r], u);
  }
}

void cg_choose_weight_layouts(Emitter *e) {
  const Module *m = e->m;
  int np = m->nparams;
  e->wstore = arena_alloc(&e->arena, (size_t)(np + 1) * sizeof(DType));
  e->wtrans = arena_alloc(&e->arena, (size_t)(np + 1) * sizeof(bool));
  e->wpacked = arena_alloc(&e->arena, (size_t)(np + 1) * sizeof(bool));
  Uses *u = arena_alloc(&e->arena, (size_t)(np + 1) * sizeof(Uses));
  for (const Function *f = m->functions; f; f = f->next) {
    count_uses(f->body, u);
    for (int i = 0; i < f->noutputs; i++) { /* W or W.T as an output */
      int p = param_of(f->outputs[i].value);
      int t = transposed_param(f->outputs[i].value);
      if (p >= 0)
        u[p].other++;
      if (t >= 0)
        u[t].t_other++;
    }
  }
  DType half = e->o->weight_dtype;
  for (int p = 0; p < np; p++) {
    e->wstore[p] = DT_F32;
    const Type *t = &m->params[p].type;
    if (t->dtype != DT_F32 || t->shape.rank != 2 || u[p].other ||
        u[p].t_other || !(u[p].matmul || u[p].t_matmul) ||
        ir_param_trained(m, p))
      continue;
    bool prepared = m->params[p].prepared; /* packed at load, if at all */
    if ((half == DT_F16 || half == DT_BF16) && !prepared)
      e->wstore[p] = half;
    if (u[p].permute) /* the permute reads the file's layout */
      continue;
    e->wtrans[p] = u[p].trans_b == u[p].matmul;
    if (e->wtrans[p] || (!u[p].gather && u[p].trans_b == 0))
      e->wpacked[p] = true;
  }
}

DType cg_weight_store(FnEmit *fe, const Value *v) {
  const ValueInfo *vi = cg_info(fe, v);
  if (vi->view) /* x @ W.T at -O0: the matmul reads W through the permute */
    vi = cg_info(fe, vi->view->base);
  return vi->storage == ST_PARAM ? fe->e->wstore[vi->index] : DT_F32;
}
