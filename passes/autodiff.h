/* Internals of the autodiff pass shared by its driver (autodiff.c: which
 * ops to differentiate, adjoints, splicing) and its rules (autodiff_rules.c:
 * the derivative of each op, one switch case per OpKind; autodiff_scan.c:
 * scan's, which differentiates its region with the driver's sweep). */
#ifndef MC_AUTODIFF_H
#define MC_AUTODIFF_H

#include "passes.h"

typedef struct AdCtx {
  Module *m;
  Block *b; /* the rules append their ops here (the driver moves them) */
  Diag *d;
  Loc loc;         /* the forward op's: backward kernels name its line */
  bool failed;     /* a build reported an error */
  const char *why; /* set with AD_NO_RULE: what has no rule */
} AdCtx;

typedef enum AdStatus { AD_OK, AD_NO_RULE } AdStatus;

/* The vector-Jacobian product of op (one result, adjoint gy of the
 * result's type): gx[i] receives operand i's contribution, of exactly
 * operand i's type, for every i with want[i] (float operands that lead
 * back to a differentiated value), or NULL when it is zero (floor, the
 * branch a select did not take). AD_NO_RULE, with c->why, for ops that
 * have no rule yet; c->failed after an error. */
AdStatus ad_rule(AdCtx *c, const Op *op, Value *gy, const bool *want,
                 Value **gx);

/* g summed over the axes that broadcasting added or stretched, reshaped
 * to `to` (the operand's shape). */
Value *ad_unbroadcast(AdCtx *c, Value *g, const Shape *to);
/* Zeros of type t (a scalar constant broadcast to t's shape). */
Value *ad_zeros(AdCtx *c, const Type *t);

/* The vector-Jacobian product of ops (in order, all in one block or
 * reading only values above it): with outs[i]'s adjoint seeds[i] (NULL:
 * none), grads[i] receives wrt[i]'s adjoint, or NULL when it is zero. A
 * param wrt (a param op) also receives the adjoints of the other reads of
 * its weight among ops. New ops go to c->b. False after an error (an
 * active op without a rule, reported at its line). */
bool ad_vjp(AdCtx *c, Op *const *ops, int nops, Value *const *outs,
            Value *const *seeds, int nouts, Value *const *wrt, int nwrt,
            Value **grads);

/* What a scan's rule gives: gx[i], operand i's gradient (NULL: zero), and
 * gclosed[i], that of closed[i], a marked value its region reads from
 * above (NULL: zero). Arrays in the module's arena. */
typedef struct AdScanGrads {
  Value **gx;
  int nclosed;
  Value **closed, **gclosed;
} AdScanGrads;

/* The rule of scan (autodiff_scan.c): gy[r] is result r's adjoint (NULL:
 * zero); marked[id] (ids below nmarked) tells which values above the scan
 * depend on a wrt. Adds the forward's per-step carries to the scan's
 * results (the states kept for the backward) and appends the backward
 * scan to c->b. AD_NO_RULE (c->why) for until=true. */
AdStatus ad_scan(AdCtx *c, Op *scan, Value *const *gy, const bool *marked,
                 int nmarked, AdScanGrads *out);

#endif
