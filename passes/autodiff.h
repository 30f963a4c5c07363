/* Internals of the autodiff pass shared by its driver (autodiff.c: which
 * ops to differentiate, adjoints, splicing) and its rules (autodiff_rules.c:
 * the derivative of each op, one switch case per OpKind). */
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

#endif
