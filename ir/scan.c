/* The scan op: construction and its shape rule.
 *
 *   %h_n, %ys = scan %h0, %xs {ncarry = 1, nseq = 1, length = T}
 *       (%h: f32[B, H], %x: f32[B, E]) {
 *     ...
 *     yield %h2, %y
 *   } : f32[B, H], f32[T, B, H]
 *
 * Invariants (checked by ir_scan_infer, used by pass_verify and
 * pass_infer_shapes):
 *  - operands are ncarry carry inits then nseq sequences of rank >= 1 whose
 *    axis 0 is `length`;
 *  - one region; its arguments are the carries (types of the inits), one
 *    slice per sequence (axis 0 dropped) and, with_index, an i32[] step;
 *  - the region ends in a yield (and has no other) of ncarry new carries of
 *    the carries' types, with `until` a bool[] done flag, then the per-step
 *    outputs;
 *  - results: the final carries, then each output stacked as [length, ...],
 *    then with `until` the number of steps run, i32[].
 * The region reads values defined above it (weights, other tensors).
 */
#include <string.h>

#include "ir.h"

int ir_op_min_operands(OpKind k) {
  int n = ir_op_info[k].noperands;
  if (n >= 0)
    return n;
  return k == OP_SCAN || k == OP_YIELD || k == OP_FUSED ? 0
         : k == OP_DYNAMIC_UPDATE_SLICE                 ? 2
                                                        : 1;
}

Op *ir_scan_yield(const Op *scan) {
  if (scan->nregions != 1 || !scan->regions[0])
    return NULL;
  Op *y = scan->regions[0]->last;
  return y && y->kind == OP_YIELD ? y : NULL;
}

int ir_scan_first_output(const Op *scan) {
  return scan->attrs.scan.ncarry + (scan->attrs.scan.until ? 1 : 0);
}

int ir_scan_noutputs(const Op *scan) {
  return scan->nresults - ir_scan_first_output(scan);
}

static Type slice_type(const Type *t) {
  Type s = *t;
  s.shape.rank = t->shape.rank > 0 ? t->shape.rank - 1 : 0;
  for (int i = 0; i < s.shape.rank; i++)
    s.shape.dims[i] = t->shape.dims[i + 1];
  return s;
}

Op *ir_scan_begin(Module *m, Block *b, Value *const *operands, int noperands,
                  const Attrs *attrs, const char *const *names, Loc loc) {
  Op *op =
      ir_build_typed(m, b, OP_SCAN, operands, noperands, attrs, NULL, 0, loc);
  Block *body = ir_block_new(m);
  body->parent_op = op;
  op->nregions = 1;
  op->regions = arena_alloc(&m->arena, sizeof(Block *));
  op->regions[0] = body;
  int k = 0;
  for (int i = 0; i < noperands; i++, k++) {
    Type t = operands[i]->type;
    if (i >= attrs->scan.ncarry)
      t = slice_type(&t);
    ir_block_add_arg(m, body, t, names ? names[k] : NULL);
  }
  if (attrs->scan.with_index) {
    Type t = {DT_I32, shape_scalar()};
    ir_block_add_arg(m, body, t, names ? names[k] : NULL);
  }
  return op;
}

bool ir_scan_finish(Module *m, Op *scan, Value *const *yields, int nyields,
                    Loc loc, Diag *d) {
  Block *body = scan->regions[0];
  ir_build_typed(m, body, OP_YIELD, yields, nyields, NULL, NULL, 0, loc);
  int cap = nyields + 1;
  Type *types = arena_alloc(&m->arena, (size_t)cap * sizeof(Type));
  int n = 0;
  if (!ir_scan_infer(m, scan, types, cap, &n, d))
    return false;
  scan->results = arena_alloc(&m->arena, (size_t)(n + 1) * sizeof(Value *));
  /* results are made like ir_build_typed's, after the region exists */
  Op *tmp = ir_build_typed(m, NULL, OP_SCAN, NULL, 0, NULL, types, n, loc);
  for (int i = 0; i < n; i++) {
    scan->results[i] = tmp->results[i];
    scan->results[i]->def = scan;
    scan->results[i]->block = scan->parent;
  }
  scan->nresults = n;
  return true;
}

/* ---- the shape rule --------------------------------------------------------
 */

static void note_value(const Module *m, Diag *d, const Value *v,
                       const char *what) {
  char t[512];
  type_print(t, sizeof t, &v->type, m);
  if (v->def && v->def->loc.line > 0)
    diag_note(d, v->def->loc, "%s (%s) is defined here", what, t);
}

bool ir_scan_infer(const Module *m, const Op *scan, Type *out, int cap,
                   int *nout, Diag *d) {
  const Attrs *a = &scan->attrs;
  Loc loc = scan->loc;
  int nc = a->scan.ncarry, ns = a->scan.nseq;
  char s1[512], s2[512];
  if (nc < 0 || ns < 0 || nc + ns != scan->noperands) {
    diag_error(d, loc, "scan has %d operands but ncarry = %d and nseq = %d",
               scan->noperands, nc, ns);
    return false;
  }
  if (scan->nregions != 1 || !scan->regions[0]) {
    diag_error(d, loc, "scan needs exactly one region");
    return false;
  }
  const Block *body = scan->regions[0];
  int nargs = nc + ns + (a->scan.with_index ? 1 : 0);
  if (body->nargs != nargs) {
    diag_error(d, loc, "scan region has %d arguments, expected %d", body->nargs,
               nargs);
    return false;
  }
  for (int i = 0; i < nc + ns; i++) {
    const Value *x = scan->operands[i];
    Type want = x->type;
    if (i >= nc) {
      if (x->type.shape.rank < 1) {
        diag_error(d, loc,
                   "scan sequence %d is a scalar: it needs an axis "
                   "to scan over",
                   i - nc);
        return false;
      }
      if (!dim_eq(x->type.shape.dims[0], a->scan.length)) {
        dim_print(s1, sizeof s1, x->type.shape.dims[0], m);
        dim_print(s2, sizeof s2, a->scan.length, m);
        diag_error(d, loc,
                   "scan sequence %d has %s steps, but the scan has length "
                   "%s (all sequences must have equal length)",
                   i - nc, s1, s2);
        note_value(m, d, x, "the sequence");
        return false;
      }
      want = slice_type(&x->type);
    }
    if (!type_eq(&want, &body->args[i]->type)) {
      type_print(s1, sizeof s1, &body->args[i]->type, m);
      type_print(s2, sizeof s2, &want, m);
      diag_error(d, loc, "scan region argument %d is %s, expected %s", i, s1,
                 s2);
      return false;
    }
  }
  if (a->scan.with_index) {
    const Type *t = &body->args[nc + ns]->type;
    if (t->dtype != DT_I32 || t->shape.rank != 0) {
      diag_error(d, loc, "the step index of a scan region must be i32[]");
      return false;
    }
  }
  const Op *y = ir_scan_yield(scan);
  if (!y) {
    diag_error(d, loc, "scan region must end with a yield");
    return false;
  }
  if (y->noperands < nc) {
    diag_error(d, y->loc, "yield has %d values, but the scan has %d carries",
               y->noperands, nc);
    return false;
  }
  int n = y->noperands, first = ir_scan_first_output(scan);
  if (a->scan.until) {
    const Value *done = y->noperands > nc ? y->operands[nc] : NULL;
    if (!done || done->type.dtype != DT_BOOL || done->type.shape.rank != 0) {
      char t[512] = "nothing";
      if (done)
        type_print(t, sizeof t, &done->type, m);
      diag_error(d, y->loc,
                 "a scan with until yields a bool[] done flag after its %d "
                 "carr%s, not %s",
                 nc, nc == 1 ? "y" : "ies", t);
      return false;
    }
  }
  if (n > cap) {
    diag_error(d, loc, "scan has too many results");
    return false;
  }
  for (int i = 0; i < nc; i++) {
    const Value *init = scan->operands[i], *next = y->operands[i];
    if (!init || !next) {
      diag_error(d, loc, "scan carry %d is missing", i);
      return false;
    }
    if (!type_eq(&init->type, &next->type)) {
      type_print(s1, sizeof s1, &init->type, m);
      type_print(s2, sizeof s2, &next->type, m);
      diag_error(d, loc,
                 "scan carry %d is %s, but the step yields %s for it (a "
                 "carry keeps its type)",
                 i, s1, s2);
      note_value(m, d, init, "the initial carry");
      note_value(m, d, next, "the new carry");
      return false;
    }
    out[i] = init->type;
  }
  for (int i = first; i < n; i++) {
    const Value *v = y->operands[i];
    if (!v) {
      diag_error(d, y->loc, "yield operand %d is missing", i);
      return false;
    }
    if (v->type.shape.rank >= MAX_RANK) {
      diag_error(d, y->loc, "scan output %d would exceed rank %d", i - first,
                 MAX_RANK);
      return false;
    }
    Type t = v->type;
    t.shape.rank = v->type.shape.rank + 1;
    t.shape.dims[0] = a->scan.length;
    for (int j = 0; j < v->type.shape.rank; j++)
      t.shape.dims[j + 1] = v->type.shape.dims[j];
    out[i - first + nc] = t;
  }
  if (a->scan.until) { /* the step count replaces the done flag */
    Type steps = {DT_I32, shape_scalar()};
    out[n - 1] = steps;
  }
  *nout = n;
  return true;
}

bool ir_op_reads_any(const Op *op,
                     bool (*reads)(const Value *v, const void *ctx),
                     const void *ctx) {
  for (int i = 0; i < op->noperands; i++)
    if (op->operands[i] && reads(op->operands[i], ctx))
      return true;
  for (int r = 0; r < op->nregions; r++)
    for (const Op *o = op->regions[r]->first; o; o = o->next)
      if (ir_op_reads_any(o, reads, ctx))
        return true;
  return false;
}
