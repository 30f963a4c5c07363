/* In-place updates: when may dynamic_update_slice(x, update, starts) write
 * the block straight into x's buffer instead of copying x first?
 *
 * When x's buffer (its alias root r: x itself, or what a reshape of x
 * aliases) is writable and nothing reads its old contents afterwards:
 *  - r is a workspace buffer or a scan's carry argument (which is the
 *    carry's result buffer), defined in the block of the update, so a
 *    region never changes a value defined above it (the next step would
 *    read it);
 *  - no live op after the update (in its block, regions included) and no
 *    function output reads r's old contents, through x or any other alias;
 *    reads of the update's result (or of aliases of it) are fine;
 *  - for a carry argument of carry i, the yield passes the updated buffer
 *    on only as carry i (c_scan.c copies carries one after another).
 * This is what keeps a KV cache carried through a decoding scan from being
 * copied every step: `cache = dynamic_update_slice(cache, kv, l, t, 0)`
 * writes one row into the carry's buffer, and the carry needs no copy.
 *
 * A training entry's optimizer state s (kept in its arena) is updated in
 * place the same way when its new value r is an elementwise loop's result
 * (a fused op or one elementwise op, at the function's top level) of s's
 * type, reading s only as s itself (not through a view) and nothing from
 * another kernel's tile (no GEMM or reduction epilogue: a GEMM stores into
 * its result before the epilogue reads), and no later op or other output
 * reads s's old contents: each element is then written after the reads of
 * its own index. Otherwise r is copied over s at the end of the call.
 *
 * A scan's carry is updated in place by the same rule: when its new value
 * (yielded as itself) is such an elementwise loop in the step's region,
 * reading the old carry only at its own index, and no later op of the
 * region (the yield's other operands included) reads the old carry, the
 * loop writes the carry's buffer and the step copies nothing (an LSTM's h
 * and c: `where(m, h2, h)`).
 *
 * A scan's carry starts in its initial value's buffer, instead of a copy
 * of it, by the rule of updates: that value is a workspace buffer of the
 * scan's block of the carry's type, and nothing reads its old contents
 * afterwards: no other operand of the scan (but the initial values of
 * carries that start as copies, made before the loop), nothing its region
 * reads from above, no later live op, no function output. A scan that runs
 * beside another (cg_scan_partner) keeps its copies: the two start at
 * once. GPT-2 generation's KV caches then go from their zeros through the
 * prompt's scan into the decoding scan with one copy of 36 MB per call
 * instead of four (both caches start from one value of zeros).
 */
#include "c_emit.h"

typedef enum Version { V_OTHER, V_OLD, V_NEW } Version;

/* Whose contents v shows: r's before the update (old), the update's
 * result (new), or another buffer. Later values are followed through
 * their alias ops (their storage is not assigned yet), earlier ones
 * through their assigned aliases. */
static Version version(FnEmit *fe, const Value *v, const Value *r,
                       const Op *update) {
  for (;;) {
    if (v->def == update)
      return V_NEW;
    if (v == r)
      return V_OLD;
    if (v->def && cg_op_is_alias(v->def)) {
      v = v->def->operands[0];
      continue;
    }
    ValueInfo *vi = cg_info(fe, v);
    if (vi->storage != ST_ALIAS && vi->storage != ST_VIEW)
      return V_OTHER;
    v = vi->alias;
  }
}

static bool is_live(FnEmit *fe, const Op *o) {
  bool live = cg_op_live(fe, o);
  return live;
}

/* Some live op from `o` on reads r's old contents. */
static bool reads_old(FnEmit *fe, const Op *o, const Value *r, const Op *update,
                      int carry) {
  for (; o; o = o->next) {
    if (!is_live(fe, o))
      continue;
    for (int i = 0; i < o->noperands; i++) {
      Version ver = version(fe, o->operands[i], r, update);
      if (ver == V_OLD)
        return true;
      /* the new contents passed on as another carry than r's */
      if (ver == V_NEW && carry >= 0 && o->kind == OP_YIELD &&
          i < o->parent->parent_op->attrs.scan.ncarry && i != carry)
        return true;
    }
    for (int b = 0; b < o->nregions; b++)
      if (reads_old(fe, o->regions[b]->first, r, update, -1))
        return true;
  }
  return false;
}

/* Some output of the function reads r's old contents (op: the update, in
 * the function's body or in a region, which no output reads from). */
static bool output_reads_old(FnEmit *fe, const Value *r, const Op *op) {
  if (op->parent != fe->f->body)
    return false;
  for (int i = 0; i < fe->f->noutputs; i++)
    if (version(fe, fe->f->outputs[i].value, r, op) == V_OLD)
      return true;
  return false;
}

bool cg_update_in_place(FnEmit *fe, const Op *op) {
  if (op->kind != OP_DYNAMIC_UPDATE_SLICE)
    return false;
  const Value *r = op->operands[0];
  while (cg_info(fe, r)->storage == ST_ALIAS)
    r = cg_info(fe, r)->alias;
  const Storage st = cg_info(fe, r)->storage;
  const Block *home = r->def ? r->def->parent : r->block;
  int carry = -1;
  if (st == ST_LOCAL && !r->def && home->parent_op &&
      r->def_index < home->parent_op->attrs.scan.ncarry)
    carry = r->def_index;
  if ((st != ST_WORKSPACE && carry < 0) || home != op->parent)
    return false;
  return !reads_old(fe, op->next, r, op, carry) && !output_reads_old(fe, r, op);
}

/* r, a workspace value of block b, is an elementwise loop's result of s's
 * type that reads s only as s itself, at its own index, and nothing from
 * another kernel's tile; no live op after it reads s's old contents
 * (`carry`: as in reads_old). */
static bool loop_may_overwrite(FnEmit *fe, const Block *b, const Value *s,
                               const Value *r, int carry) {
  const Op *op = r->def;
  if (!op || op->parent != b || op->nresults != 1 ||
      cg_info(fe, r)->storage != ST_WORKSPACE ||
      !(op->kind == OP_FUSED || cg_op_is_elementwise(op->kind)) ||
      !type_eq(&r->type, &s->type))
    return false;
  for (int i = 0; i < op->noperands; i++) {
    const Value *x = op->operands[i];
    if (cg_info(fe, x)->storage == ST_FUSED ||
        (x != s && version(fe, x, s, op) == V_OLD))
      return false;
  }
  return !reads_old(fe, op->next, s, op, carry);
}

bool cg_carry_update_in_place(FnEmit *fe, const Op *scan, int i) {
  const Block *body = scan->regions[0];
  return loop_may_overwrite(fe, body, body->args[i],
                            ir_scan_yield(scan)->operands[i], i);
}

bool cg_state_update_in_place(FnEmit *fe, const Value *s, const Value *r,
                              int o) {
  if (!loop_may_overwrite(fe, fe->f->body, s, r, -1))
    return false;
  for (int i = 0; i < fe->f->noutputs; i++)
    if (i != o && version(fe, fe->f->outputs[i].value, s, r->def) == V_OLD)
      return false;
  return true;
}

/* Whether scan op runs beside another (before or after it). */
static bool paired(FnEmit *fe, const Op *op) {
  if (cg_scan_partner(fe, op))
    return true;
  const Op *prev = op->prev;
  while (prev && !is_live(fe, prev))
    prev = prev->prev;
  return prev && cg_scan_partner(fe, prev) == op;
}

bool cg_carry_starts_in_place(FnEmit *fe, const Op *scan, int i) {
  const Value *r = scan->operands[i];
  while (cg_info(fe, r)->storage == ST_ALIAS)
    r = cg_info(fe, r)->alias;
  if (cg_info(fe, r)->storage != ST_WORKSPACE || !r->def ||
      r->def->parent != scan->parent ||
      !type_eq(&r->type, &scan->results[i]->type) || paired(fe, scan))
    return false;
  /* another carry may start as a copy of r: the copies come first */
  for (int k = 0; k < scan->noperands; k++)
    if (k != i && version(fe, scan->operands[k], r, scan) == V_OLD &&
        (k >= scan->attrs.scan.ncarry ||
         cg_info(fe, scan->results[k])->storage == ST_ALIAS))
      return false;
  return !reads_old(fe, scan->regions[0]->first, r, scan, -1) &&
         !reads_old(fe, scan->next, r, scan, -1) &&
         !output_reads_old(fe, r, scan);
}
