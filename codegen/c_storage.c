/* Where every value of a function lives (see c_emit.h's Storage):
 * liveness, the values computed inside another op's kernel (ST_FUSED: GEMM
 * and reduction epilogues, reduction prologues, attention), views,
 * aliases and updates made in place, the workspace buffers, which
 * pointer variables the emitted code names and the ops a lazy select may
 * skip; then the memory plan.
 */
#include <stdlib.h>
#include <string.h>

#include "c_emit.h"

bool cg_is_inlinable_const(const Value *v) {
  int64_t n;
  return v->def && v->def->kind == OP_CONST &&
         shape_const_numel(&v->type.shape, &n) && n == 1;
}

bool cg_takes_literals(const Op *op) {
  return cg_op_is_elementwise(op->kind) || op->kind == OP_BROADCAST ||
         op->kind == OP_FUSED;
}

static const Value *alias_root(FnEmit *fe, const Value *v) {
  while (cg_info(fe, v)->storage == ST_ALIAS ||
         cg_info(fe, v)->storage == ST_VIEW)
    v = cg_info(fe, v)->alias;
  return v;
}

static bool check_value_symbols(FnEmit *fe, const Value *v, Loc loc) {
  uint64_t used = 0;
  for (int i = 0; i < v->type.shape.rank; i++)
    cg_dim(&fe->e->arena, v->type.shape.dims[i], fe->e->symnames, &used);
  if (v->def && v->def->kind == OP_SLICE)
    for (int i = 0; i < v->def->operands[0]->type.shape.rank; i++)
      cg_dim(&fe->e->arena, v->def->attrs.slice.start[i], fe->e->symnames,
             &used);
  uint64_t free_syms = used & ~fe->syms;
  if (!free_syms)
    return true;
  int s = 0;
  while (!(free_syms & (UINT64_C(1) << s)))
    s++;
  diag_error(fe->e->d, loc,
             "symbol '%s' is not the size of any input of '%s'; bind it at "
             "compile time (-D %s=...)",
             fe->e->m->symbols[s], fe->f->name, fe->e->m->symbols[s]);
  return false;
}

/* Uses by live ops, backwards; a live scan keeps all its results (its
 * region writes them) and its yield's operands live. A fused op's region is
 * its kernel's loop body: its values are C locals, not buffers. */
static void mark_live(FnEmit *fe, const Block *b) {
  for (const Op *op = b->last; op; op = op->prev) {
    bool live = cg_op_live(fe, op);
    if (!live)
      continue;
    if (op->kind == OP_SCAN) {
      for (int i = 0; i < op->nresults; i++)
        if (cg_info(fe, op->results[i])->uses == 0)
          cg_info(fe, op->results[i])->uses = 1;
      mark_live(fe, op->regions[0]);
    }
    for (int i = 0; i < op->noperands; i++)
      cg_info(fe, op->operands[i])->uses++;
  }
}

/* Whether a weight is kept in 16 bits (a GEMM of it takes another
 * entry point, which attention's kernel does not use). */
static bool stored_16(FnEmit *fe, const Value *v) {
  const ValueInfo *vi = cg_info(fe, v);
  return vi->storage == ST_PARAM && fe->e->wstore[vi->index] != DT_F32;
}

/* Whether the softmax sm, with the op before it (its scores: a matmul or
 * a matmul's epilogue), and the matmul after it form attention for
 * cg_kernel_attention (see ir_is_attention_softmax). */
static bool attention(FnEmit *fe, const Op *sm) {
  if (!sm || !ir_is_attention_softmax(sm, sm->next) ||
      !ir_is_attention_scores(sm->prev, sm) ||
      stored_16(fe, sm->next->operands[1]))
    return false;
  const Op *mm = sm->prev;
  if (mm->kind != OP_MATMUL) { /* an epilogue: of the matmul before it */
    mm = mm->prev;
    if (!ir_is_gemm_epilogue(mm, sm->prev))
      return false;
  }
  return mm->operands[0]->type.shape.rank >= 2 &&
         mm->operands[1]->type.shape.rank >= 2 &&
         !stored_16(fe, mm->operands[0]) && !stored_16(fe, mm->operands[1]);
}

/* Whether op is computed in the kernel of the next op, its only reader
 * (see ST_FUSED). A prologue's own operands are never made so: a
 * reduction's kernel nests one loop in it, not a GEMM. */
static bool in_next_kernel(FnEmit *fe, const Op *op) {
  if (ir_is_gemm_epilogue(op, op->next))
    return true;
  if (op->kind == OP_SOFTMAX)
    return attention(fe, op);
  if (op->next && op->next->kind == OP_SOFTMAX &&
      ir_is_attention_scores(op, op->next))
    return attention(fe, op->next);
  if (ir_is_reduce_epilogue(op, op->next))
    return true;
  if (!ir_is_reduce_prologue(op, op->next))
    return false;
  for (int i = 0; i < op->noperands; i++)
    if (cg_info(fe, op->operands[i])->storage == ST_FUSED)
      return false;
  return true;
}

static bool assign_storage(FnEmit *fe, const Block *b) {
  Emitter *e = fe->e;
  bool ok = true;
  for (const Op *op = b->first; op; op = op->next) {
    for (int i = 0; i < op->nresults; i++) {
      const Value *v = op->results[i];
      ValueInfo *vi = cg_info(fe, v);
      if (vi->uses == 0)
        continue;
      if (v->type.dtype == DT_F16 || v->type.dtype == DT_BF16) {
        diag_error(e->d, op->loc, "%s values are storage-only: cast to f32",
                   dtype_name(v->type.dtype));
        ok = false;
      }
      ok = ok && check_value_symbols(fe, v, op->loc);
      if (op->kind == OP_CONST) {
        vi->storage = ST_CONST;
      } else if (op->kind == OP_PARAM) {
        vi->storage = ST_PARAM;
        vi->index = op->attrs.param.index;
      } else if (vi->uses == 1 && in_next_kernel(fe, op)) {
        vi->storage = ST_FUSED;
      } else if (vi->view) {
        vi->storage = ST_VIEW;
        vi->alias = alias_root(fe, vi->view->base);
      } else if (cg_op_is_alias(op) || cg_update_in_place(fe, op)) {
        vi->storage = ST_ALIAS;
        vi->alias = alias_root(fe, op->operands[0]);
      } else if (op->kind == OP_SCAN && i < op->attrs.scan.ncarry &&
                 cg_carry_starts_in_place(fe, op, i)) {
        vi->storage = ST_ALIAS;
        vi->alias = alias_root(fe, op->operands[i]);
      } else {
        vi->storage = ST_WORKSPACE;
      }
    }
    if (op->kind != OP_SCAN || cg_info(fe, op->results[0])->uses == 0)
      continue;
    /* a live scan: its region's arguments are pointers set by the loop */
    const Block *body = op->regions[0];
    for (int i = 0; i < body->nargs; i++)
      cg_info(fe, body->args[i])->storage = ST_LOCAL;
    ok = assign_storage(fe, body) && ok;
  }
  return ok;
}

/* What the live scans in b yield, computed where the scan keeps it:
 *  - a carry's new value in the carry's buffer where legal
 *    (cg_carry_update_in_place): ST_CARRY;
 *  - a per-step output computed by a kernel of the step into a buffer of
 *    its own, which the yield passes on once, in its row t of the stacked
 *    result: ST_SLOT (the row is the step's alone, so any op of the step
 *    may read it there).
 * Either way the step copies nothing for it. */
static void scan_results_in_place(FnEmit *fe, const Block *b) {
  for (const Op *op = b->first; op; op = op->next) {
    if (op->kind != OP_SCAN || cg_info(fe, op->results[0])->uses == 0)
      continue;
    const Block *body = op->regions[0];
    const Op *y = ir_scan_yield(op);
    scan_results_in_place(fe, body);
    for (int i = 0; i < op->attrs.scan.ncarry; i++)
      if (cg_carry_update_in_place(fe, op, i)) {
        ValueInfo *vi = cg_info(fe, y->operands[i]);
        vi->storage = ST_CARRY;
        vi->alias = body->args[i];
      }
    int first = ir_scan_first_output(op);
    for (int j = 0; j < ir_scan_noutputs(op); j++) {
      const Value *v = y->operands[first + j];
      ValueInfo *vi = cg_info(fe, v);
      int yielded = 0;
      for (int k = 0; k < y->noperands; k++)
        yielded += y->operands[k] == v;
      if (v->def && v->def->parent == body && vi->storage == ST_WORKSPACE &&
          yielded == 1) {
        vi->storage = ST_SLOT;
        vi->alias = op->results[op->attrs.scan.ncarry + j];
      }
    }
  }
}

static int count_results(const Block *b) {
  int n = 0;
  for (const Op *op = b->first; op; op = op->next) {
    n += op->nresults;
    for (int r = 0; r < op->nregions; r++)
      n += count_results(op->regions[r]);
  }
  return n;
}

static void collect_buffers(FnEmit *fe, const Block *b) {
  for (const Op *op = b->first; op; op = op->next) {
    for (int i = 0; i < op->nresults; i++) {
      ValueInfo *vi = cg_info(fe, op->results[i]);
      if (vi->storage == ST_WORKSPACE) {
        vi->index = fe->nbuffers;
        fe->buffers[fe->nbuffers++] = op->results[i];
      }
    }
    for (int r = 0; r < op->nregions; r++)
      collect_buffers(fe, op->regions[r]);
  }
}

/* Which values the emitted code names: the pointer arguments of kernel
 * calls (an update made in place does not take its operand 0; a view's
 * reads are its base's), every operand of a scan and a yield, outputs
 * copied at the end. Ops whose result is an alias or a view emit nothing. */
static void mark_referenced(FnEmit *fe, const Block *b) {
  for (const Op *op = b->first; op; op = op->next) {
    bool live = cg_op_live(fe, op);
    if (!live)
      continue;
    bool kernel = true, in_place = false;
    if (op->kind != OP_SCAN && op->kind != OP_YIELD) {
      const ValueInfo *yi = cg_info(fe, op->results[0]);
      kernel = yi->storage != ST_VIEW &&
               !(yi->storage == ST_ALIAS && cg_op_is_alias(op));
      in_place = yi->storage == ST_ALIAS && !cg_op_is_alias(op);
    }
    for (int i = 0; kernel && i < op->noperands; i++) {
      if (in_place && i == 0)
        continue;
      const ValueInfo *xi = cg_info(fe, op->operands[i]);
      if (xi->storage == ST_FUSED) /* its matmul's operands are marked */
        continue;
      cg_info(fe, xi->storage == ST_VIEW ? xi->view->base : op->operands[i])
          ->referenced = true;
    }
    for (int r = 0; r < op->nregions; r++)
      mark_referenced(fe, op->regions[r]);
  }
}

/* The guards of the ops of b and its scans' regions (ir_lazy_guards),
 * where the condition is a value in memory: the backends run such an op
 * under `if`. A fused op's region is one loop's body: nothing to skip. */
static void find_guards(FnEmit *fe, const Block *b, IrGuard *g) {
  ir_lazy_guards(b, g);
  for (const Op *op = b->first; op; op = op->next) {
    if (op->kind == OP_SCAN)
      find_guards(fe, op->regions[0], g);
    if (op->nresults == 0 || !g[op->results[0]->id].cond)
      continue;
    const IrGuard *x = &g[op->results[0]->id];
    Storage s = cg_info(fe, x->cond)->storage;
    if (s == ST_FUSED || s == ST_NONE)
      continue;
    ValueInfo *vi = cg_info(fe, op->results[0]);
    vi->guard = x->cond;
    vi->guard_sel = x->sel;
    vi->guard_when = x->when;
  }
}

bool cg_analyze(FnEmit *fe) {
  Emitter *e = fe->e;
  const Function *f = fe->f;
  fe->vi = arena_alloc(&e->arena,
                       (size_t)(e->m->next_value_id + 1) * sizeof(ValueInfo));
  for (int i = 0; i < f->ninputs; i++) {
    const Shape *s = &f->inputs[i].value->type.shape;
    for (int j = 0; j < s->rank; j++)
      cg_dim(&e->arena, s->dims[j], e->symnames, &fe->syms);
    ValueInfo *vi = cg_info(fe, f->inputs[i].value);
    vi->storage = ST_INPUT;
    vi->index = i;
    vi->cname = fe->in_names[i];
  }
  fe->state_update =
      arena_alloc(&e->arena, sizeof(int) * (size_t)(f->ninputs + 1));
  for (int i = 0; i < f->ninputs; i++)
    fe->state_update[i] = -1;
  for (int i = 0; i < f->noutputs; i++) {
    cg_info(fe, f->outputs[i].value)->uses++;
    if (f->outputs[i].updates_input >= 0)
      fe->state_update[f->outputs[i].updates_input] = i;
  }
  mark_live(fe, f->body);
  cg_find_views(fe, f->body);
  if (!assign_storage(fe, f->body))
    return false;
  scan_results_in_place(fe, f->body);
  IrGuard *guards = malloc(sizeof(IrGuard) * (size_t)(e->m->next_value_id + 1));
  find_guards(fe, f->body, guards);
  free(guards);
  fe->out_direct = arena_alloc(&e->arena, (size_t)f->noutputs + 1);
  for (int i = 0; i < f->noutputs; i++) {
    const Value *r = alias_root(fe, f->outputs[i].value);
    int state = f->outputs[i].updates_input;
    if (state >= 0) { /* into the state's buffer, or copied over it */
      const Value *s = f->inputs[state].value;
      if (cg_state_update_in_place(fe, s, r, i)) {
        cg_info(fe, r)->storage = ST_OUTPUT;
        cg_info(fe, r)->index = i;
        cg_info(fe, r)->cname = fe->in_names[state];
      }
      fe->out_direct[i] = r == s || (cg_info(fe, r)->storage == ST_OUTPUT &&
                                     cg_info(fe, r)->index == i);
      continue;
    }
    if (cg_info(fe, r)->storage == ST_WORKSPACE) {
      cg_info(fe, r)->storage = ST_OUTPUT;
      cg_info(fe, r)->index = i;
      cg_info(fe, r)->cname = fe->out_names[i];
      fe->out_direct[i] = true;
    }
  }
  /* workspace buffers: optimizer states, intermediates (those of scan
   * regions too), then defaults of absent inputs */
  int cap = count_results(f->body) + 1;
  fe->buffers = arena_alloc(&e->arena,
                            (size_t)(cap + f->ninputs) * sizeof(const Value *));
  for (int i = 0; i < f->ninputs; i++) {
    int64_t n;
    if (fe->state_update[i] < 0)
      continue;
    if (!shape_const_numel(&f->inputs[i].value->type.shape, &n)) {
      diag_error(e->d, f->inputs[i].loc,
                 "optimizer state '%s' of '%s' has no constant shape",
                 f->inputs[i].name, f->name);
      return false;
    }
    fe->buffers[fe->nbuffers++] = f->inputs[i].value;
    fe->nstates++;
  }
  collect_buffers(fe, f->body);
  for (int i = 0; i < f->ninputs; i++)
    if (f->inputs[i].has_default && cg_info(fe, f->inputs[i].value)->uses > 0)
      fe->buffers[fe->nbuffers++] = f->inputs[i].value;
  e->any_workspace |= fe->nbuffers > 0;
  mark_referenced(fe, f->body);
  for (int i = 0; i < f->noutputs; i++)
    if (!fe->out_direct[i])
      cg_info(fe, f->outputs[i].value)->referenced = true;
  cg_find_row_groups(fe);
  cg_plan_lifetimes(fe);
  return true;
}
