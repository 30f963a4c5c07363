/* The derivative rule of scan: reverse-time accumulation, with the forward
 * states kept.
 *
 * The forward scan F (carries c, sequences xs, per-step outputs ys) gets
 * one more per-step output per carry: the carry as it entered the step,
 * stacked, so C_k[t] is carry k before step t (memory: length x the
 * carries). The backward is a scan B over the same steps in the other
 * direction (reverse = !F.reverse, so output t still lands at position t)
 * whose step is the vector-Jacobian product of F's step:
 *
 *   carries  dc_k     cotangent of float carry k, from the final carry's
 *                     adjoint (zeros if none)
 *            acc_v    the gradient of each marked value v that F's region
 *                     reads from above (a weight, a kwargs tensor), summed
 *                     over the steps, from zeros
 *   seqs     C_k, xs_i (F's own), gy_j (the adjoint of each float output
 *            that has one)
 *   step     F's step is recomputed from C_k[t] and xs[t] (its ops cloned
 *            into B's region: within a step only the carries are kept),
 *            then differentiated by the driver's sweep (ad_vjp) with the
 *            new carries seeded by dc and the outputs by gy[t]; it yields
 *            the carries' cotangents before the step, acc_v + the step's
 *            contribution to v, and dx_i[t].
 *   results  the final dc_k are the inits' gradients, the final acc_v
 *            v's, the stacked dx_i the sequences'.
 *
 * Scans nested in F's step are cloned with it and differentiated by this
 * same rule inside B's region; grad ops in a step were expanded before.
 * Reads of a wrt weight in the region were moved above F by the driver, so
 * they are values acc_v collects. A scan with until=true (an early exit)
 * has no rule yet.
 *
 * Example (h2 = tanh(h @ w + x_t), yielded as carry and output):
 *   %hn, %ys, %C = scan %h0, %xs {ncarry = 1, nseq = 1, length = T}
 *       (%h, %x) { ...; yield %h2, %h2, %h }
 *   %dh0, %dw, %dxs = scan %dhn, %zw, %C, %xs, %dys
 *       {ncarry = 2, nseq = 3, length = T, reverse}
 *       (%dh, %aw, %hs, %x, %dy) {
 *     ... h2 = tanh(hs @ w + x) recomputed; d = (dh + dy) * (1 - h2 * h2)
 *     yield d @ w.T, %aw + hs.T @ d, d
 *   }
 */
#include "autodiff.h"

#include <stdlib.h>
#include <string.h>

/* Whether v is defined in op's regions (at any depth). */
static bool defined_inside(const Value *v, const Op *op) {
  for (const Block *b = v->block; b && b->parent_op; b = b->parent_op->parent)
    if (b->parent_op == op)
      return true;
  return false;
}

typedef struct Closed {
  Value **v;
  int n, cap;
} Closed;

/* The marked float values that scan's region reads from above. */
static void collect_closed(Module *m, const Op *scan, const Block *b,
                           const bool *marked, int nmarked, Closed *cl) {
  for (const Op *op = b->first; op; op = op->next) {
    for (int i = 0; i < op->noperands; i++) {
      Value *v = op->operands[i];
      if (v->id >= nmarked || !marked[v->id] || defined_inside(v, scan) ||
          !dtype_is_float(v->type.dtype))
        continue;
      bool seen = false;
      for (int k = 0; k < cl->n && !seen; k++)
        seen = cl->v[k] == v;
      if (seen)
        continue;
      if (cl->n == cl->cap) {
        int cap = cl->cap ? 2 * cl->cap : 8;
        cl->v = arena_grow(&m->arena, cl->v, (size_t)cl->cap * sizeof(Value *),
                           (size_t)cap * sizeof(Value *));
        cl->cap = cap;
      }
      cl->v[cl->n++] = v;
    }
    for (int r = 0; r < op->nregions; r++)
      collect_closed(m, scan, op->regions[r], marked, nmarked, cl);
  }
}

/* ---- cloning a region ---- */

typedef struct Cloner {
  Module *m;
  Value **map; /* by value id (ids below n): the clone of the value */
  int n;
} Cloner;

static Value *mapped(const Cloner *k, Value *v) {
  return v->id < k->n && k->map[v->id] ? k->map[v->id] : v;
}

/* Appends clones of src's ops (its yield only if `yield`) to dst, reading
 * the clones of what they read; nested regions are cloned whole. */
static void clone_ops(Cloner *k, const Block *src, Block *dst, bool yield) {
  for (const Op *op = src->first; op; op = op->next) {
    if (op->kind == OP_YIELD && !yield)
      continue;
    Value **ops = arena_alloc(&k->m->arena,
                              sizeof(Value *) * (size_t)(op->noperands + 1));
    Type *types =
        arena_alloc(&k->m->arena, sizeof(Type) * (size_t)(op->nresults + 1));
    for (int i = 0; i < op->noperands; i++)
      ops[i] = mapped(k, op->operands[i]);
    for (int i = 0; i < op->nresults; i++)
      types[i] = op->results[i]->type;
    Op *c = ir_build_typed(k->m, dst, op->kind, ops, op->noperands, &op->attrs,
                           types, op->nresults, op->loc);
    for (int i = 0; i < op->nresults; i++) {
      c->results[i]->name = op->results[i]->name;
      k->map[op->results[i]->id] = c->results[i];
    }
    if (op->nregions == 0)
      continue;
    c->nregions = op->nregions;
    c->regions =
        arena_alloc(&k->m->arena, sizeof(Block *) * (size_t)c->nregions);
    for (int r = 0; r < op->nregions; r++) {
      const Block *from = op->regions[r];
      Block *to = ir_block_new(k->m);
      to->parent_op = c;
      for (int a = 0; a < from->nargs; a++)
        k->map[from->args[a]->id] = ir_block_add_arg(
            k->m, to, from->args[a]->type, from->args[a]->name);
      clone_ops(k, from, to, true);
      c->regions[r] = to;
    }
  }
}

/* ---- the forward scan keeps its carries ---- */

/* Adds carry k's value on entering each step as a per-step output of
 * scan; the stacked carries are its last ncarry results. */
static bool keep_carries(AdCtx *c, Op *scan) {
  Module *m = c->m;
  Block *body = scan->regions[0];
  Op *y = ir_scan_yield(scan);
  int nc = scan->attrs.scan.ncarry, n = y->noperands;
  Value **yields = arena_alloc(&m->arena, sizeof(Value *) * (size_t)(n + nc));
  for (int i = 0; i < n; i++)
    yields[i] = y->operands[i];
  for (int i = 0; i < nc; i++)
    yields[n + i] = body->args[i];
  ir_op_remove(y);
  ir_build_typed(m, body, OP_YIELD, yields, n + nc, NULL, NULL, 0, y->loc);
  int cap = scan->nresults + nc + 1, nout = 0;
  Type *types = arena_alloc(&m->arena, sizeof(Type) * (size_t)cap);
  if (!ir_scan_infer(m, scan, types, cap, &nout, c->d))
    return false;
  Op *tmp = ir_build_typed(m, NULL, OP_SCAN, NULL, 0, NULL,
                           types + scan->nresults, nc, scan->loc);
  Value **results =
      arena_alloc(&m->arena, sizeof(Value *) * (size_t)(scan->nresults + nc));
  for (int i = 0; i < scan->nresults; i++)
    results[i] = scan->results[i];
  for (int i = 0; i < nc; i++) {
    results[scan->nresults + i] = tmp->results[i];
    tmp->results[i]->def = scan;
    tmp->results[i]->def_index = scan->nresults + i;
    tmp->results[i]->block = scan->parent;
  }
  scan->results = results;
  scan->nresults += nc;
  return true;
}

/* ---- the rule ---- */

typedef struct Backward {
  AdCtx *c;
  Op *fwd;
  int nc, ns, ny, first; /* F's carries, sequences, outputs; yield index */
  int *fc, nfc;          /* F's float carries */
  int *fx, nfx;          /* F's float sequences */
  int *gys, ngy;         /* F's outputs that have an adjoint */
  Closed cl;
} Backward;

static Value *zeros_like(AdCtx *c, const Value *v) {
  return ad_zeros(c, &v->type);
}

/* The operands of B, in order: dc, acc (carries), then C, xs, gy. */
static Value **backward_operands(Backward *w, Value *const *gy, int nsaved) {
  AdCtx *c = w->c;
  Op *f = w->fwd;
  int n = w->nfc + w->cl.n + w->nc + w->ns + w->ngy, k = 0;
  Value **ops = arena_alloc(&c->m->arena, sizeof(Value *) * (size_t)(n + 1));
  for (int i = 0; i < w->nfc; i++)
    ops[k++] =
        gy[w->fc[i]] ? gy[w->fc[i]] : zeros_like(c, f->operands[w->fc[i]]);
  for (int i = 0; i < w->cl.n; i++)
    ops[k++] = zeros_like(c, w->cl.v[i]);
  for (int i = 0; i < w->nc; i++)
    ops[k++] = f->results[nsaved + i];
  for (int i = 0; i < w->ns; i++)
    ops[k++] = f->operands[w->nc + i];
  for (int i = 0; i < w->ngy; i++)
    ops[k++] = gy[w->nc + w->gys[i]];
  return c->failed ? NULL : ops;
}

/* B's step: F's ops cloned, their VJP, the yield. */
static bool backward_step(Backward *w, Op *bwd) {
  AdCtx *c = w->c;
  Module *m = c->m;
  Op *f = w->fwd;
  const Block *fb = f->regions[0];
  Block *bb = bwd->regions[0];
  const Op *fy = ir_scan_yield(f);
  int ncar = w->nfc + w->cl.n;
  /* B's arguments: dc, acc, C, xs, gy[, t] */
  Value *const *dc = bb->args, *const *acc = bb->args + w->nfc;
  Value *const *saved = bb->args + ncar, *const *xs = saved + w->nc;
  Value *const *gyt = xs + w->ns;
  Cloner k = {m, calloc((size_t)m->next_value_id, sizeof(Value *)),
              m->next_value_id};
  if (!k.map) {
    diag_error(c->d, f->loc, "out of memory");
    return false;
  }
  for (int i = 0; i < w->nc + w->ns; i++)
    k.map[fb->args[i]->id] = bb->args[ncar + i];
  if (f->attrs.scan.with_index)
    k.map[fb->args[w->nc + w->ns]->id] = bb->args[bb->nargs - 1];
  Op *last = bb->last;
  clone_ops(&k, fb, bb, false);
  int nops = 0;
  for (Op *op = last ? last->next : bb->first; op; op = op->next)
    nops++;
  /* outs: F's new carries (seeded by dc), its outputs (by gy[t]); wrt: the
   * step's carries and float sequence slices, then the closed values */
  int nouts = w->nfc + w->ngy, nwrt = w->nfc + w->nfx + w->cl.n;
  Op **ops = calloc((size_t)nops + 1, sizeof(Op *));
  Value **outs = calloc((size_t)nouts + 1, sizeof(Value *));
  Value **seeds = calloc((size_t)nouts + 1, sizeof(Value *));
  Value **wrt = calloc((size_t)nwrt + 1, sizeof(Value *));
  Value **grads = calloc((size_t)nwrt + 1, sizeof(Value *));
  bool ok = ops && outs && seeds && wrt && grads;
  if (!ok)
    diag_error(c->d, f->loc, "out of memory");
  nops = 0;
  for (Op *op = last ? last->next : bb->first; ok && op; op = op->next)
    ops[nops++] = op;
  for (int i = 0; ok && i < w->nfc; i++) {
    outs[i] = mapped(&k, fy->operands[w->fc[i]]);
    seeds[i] = dc[i];
    wrt[i] = saved[w->fc[i]];
  }
  for (int i = 0; ok && i < w->ngy; i++) {
    outs[w->nfc + i] = mapped(&k, fy->operands[w->first + w->gys[i]]);
    seeds[w->nfc + i] = gyt[i];
  }
  for (int i = 0; ok && i < w->nfx; i++)
    wrt[w->nfc + i] = xs[w->fx[i]];
  for (int i = 0; ok && i < w->cl.n; i++)
    wrt[w->nfc + w->nfx + i] = w->cl.v[i];
  AdCtx sub = *c;
  sub.b = bb;
  ok = ok && ad_vjp(&sub, ops, nops, outs, seeds, nouts, wrt, nwrt, grads);
  c->failed |= sub.failed;
  /* the yield: dc before the step, acc + this step's part, dx[t] */
  int nyield = ncar + w->nfx;
  Value **yields = calloc((size_t)nyield + 1, sizeof(Value *));
  ok = ok && yields;
  for (int i = 0; ok && i < w->nfc; i++)
    yields[i] = grads[i] ? grads[i] : ad_zeros(&sub, &dc[i]->type);
  for (int i = 0; ok && i < w->cl.n; i++) {
    Value *g = grads[w->nfc + w->nfx + i], *sum[2] = {acc[i], g};
    yields[w->nfc + i] =
        g ? ir_build(m, bb, OP_ADD, sum, 2, NULL, NULL, c->loc, c->d) : acc[i];
  }
  for (int i = 0; ok && i < w->nfx; i++) {
    Value *g = grads[w->nfc + i];
    yields[ncar + i] = g ? g : ad_zeros(&sub, &xs[w->fx[i]]->type);
  }
  for (int i = 0; ok && i < nyield; i++)
    ok = yields[i] != NULL;
  ok =
      ok && !sub.failed && ir_scan_finish(m, bwd, yields, nyield, c->loc, c->d);
  free(yields);
  free(grads);
  free(wrt);
  free(seeds);
  free(outs);
  free(ops);
  free(k.map);
  return ok;
}

AdStatus ad_scan(AdCtx *c, Op *scan, Value *const *gy, const bool *marked,
                 int nmarked, AdScanGrads *out) {
  const Attrs *fa = &scan->attrs;
  if (fa->scan.until) {
    c->why = "a scan with until=true (an early exit)";
    return AD_NO_RULE;
  }
  Module *m = c->m;
  Backward w;
  memset(&w, 0, sizeof w);
  w.c = c;
  w.fwd = scan;
  w.nc = fa->scan.ncarry;
  w.ns = fa->scan.nseq;
  w.ny = scan->nresults - w.nc;
  w.first = ir_scan_first_output(scan);
  w.fc = arena_alloc(&m->arena, sizeof(int) * (size_t)(w.nc + 1));
  w.gys = arena_alloc(&m->arena, sizeof(int) * (size_t)(w.ny + 1));
  out->gx = arena_alloc(&m->arena, sizeof(Value *) * (size_t)(w.nc + w.ns + 1));
  w.fx = arena_alloc(&m->arena, sizeof(int) * (size_t)(w.ns + 1));
  for (int i = 0; i < w.nc; i++)
    if (dtype_is_float(scan->operands[i]->type.dtype))
      w.fc[w.nfc++] = i;
  for (int i = 0; i < w.ns; i++)
    if (dtype_is_float(scan->operands[w.nc + i]->type.dtype))
      w.fx[w.nfx++] = i;
  for (int j = 0; j < w.ny; j++)
    if (gy[w.nc + j])
      w.gys[w.ngy++] = j;
  bool any = w.ngy > 0;
  for (int i = 0; i < w.nfc; i++)
    any |= gy[w.fc[i]] != NULL;
  if (!any)
    return AD_OK; /* no adjoint reached it */
  collect_closed(m, scan, scan->regions[0], marked, nmarked, &w.cl);
  int nsaved = scan->nresults;
  if (!keep_carries(c, scan)) {
    c->failed = true;
    return AD_OK;
  }
  Value **ops = backward_operands(&w, gy, nsaved);
  if (!ops)
    return AD_OK;
  Attrs ba;
  memset(&ba, 0, sizeof ba);
  ba.scan.ncarry = w.nfc + w.cl.n;
  ba.scan.nseq = w.nc + w.ns + w.ngy;
  ba.scan.length = fa->scan.length;
  ba.scan.reverse = !fa->scan.reverse;
  ba.scan.with_index = fa->scan.with_index;
  Op *bwd = ir_scan_begin(m, c->b, ops, ba.scan.ncarry + ba.scan.nseq, &ba,
                          NULL, scan->loc);
  if (!backward_step(&w, bwd)) {
    c->failed = true;
    return AD_OK;
  }
  for (int i = 0; i < w.nfc; i++)
    out->gx[w.fc[i]] = bwd->results[i];
  out->nclosed = w.cl.n;
  out->closed = w.cl.v;
  out->gclosed = arena_alloc(&m->arena, sizeof(Value *) * (size_t)(w.cl.n + 1));
  for (int i = 0; i < w.cl.n; i++)
    out->gclosed[i] = bwd->results[w.nfc + i];
  for (int i = 0; i < w.nfx; i++)
    out->gx[w.nc + w.fx[i]] = bwd->results[ba.scan.ncarry + i];
  return AD_OK;
}
