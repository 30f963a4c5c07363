/* pass_verify: checks the structural invariants of ir.h and changes nothing.
 *
 *  - params have a valid dtype and a constant shape;
 *  - a function's inputs are exactly its body's arguments, in order;
 *  - ops are linked consistently (prev/next/parent), results point back to
 *    their op, and every op has one result and no regions (scan is future);
 *  - operand counts match ops.def, and every operand is defined earlier in
 *    the same function (defined-before-use, no cross-function values);
 *  - attributes make sense (axes and perms in range, param indices valid,
 *    const data present) and result types equal what ir_infer_type infers;
 *  - outputs name values defined in the function;
 *  - use counts (Value.nuses) match the actual uses.
 *
 * Example: `%1 = exp %0 : f32[4]` where %0 is `i32[4]` fails with
 * "exp needs float operands, got i32".
 */
#include "passes.h"

#include <stdlib.h>
#include <string.h>

typedef struct Verifier {
  Module *m;
  Diag *d;
  int *defined; /* per value id: the function stamp that defined it */
  int *uses;    /* per value id: counted uses */
  int stamp;
  int errors;
} Verifier;

#define VERR(v, loc, ...)                                                      \
  do {                                                                         \
    diag_error((v)->d, loc, __VA_ARGS__);                                      \
    (v)->errors++;                                                             \
  } while (0)

static bool id_ok(const Verifier *v, const Value *x) {
  return x && x->id >= 0 && x->id < v->m->next_value_id;
}

static void define_value(Verifier *v, Value *x, Loc loc) {
  if (!id_ok(v, x)) {
    VERR(v, loc, "value with invalid id");
    return;
  }
  if (v->defined[x->id] != 0)
    VERR(v, loc, "value id %d is defined twice", x->id);
  v->defined[x->id] = v->stamp;
}

static void verify_op(Verifier *v, Block *b, Op *op) {
  const char *name =
      (unsigned)op->kind < OP_COUNT ? ir_op_info[op->kind].name : "<bad op>";
  if ((unsigned)op->kind >= OP_COUNT) {
    VERR(v, op->loc, "invalid op kind %d", (int)op->kind);
    return;
  }
  if (op->parent != b)
    VERR(v, op->loc, "%s: op is linked into another block", name);
  if (op->nregions != 0)
    VERR(v, op->loc, "%s: ops with regions are not supported yet", name);
  if (op->nresults != 1) {
    VERR(v, op->loc, "%s has %d results, expected 1", name, op->nresults);
    return;
  }
  const OpInfo *info = &ir_op_info[op->kind];
  if (info->noperands >= 0 ? op->noperands != info->noperands
                           : op->noperands < 1) {
    VERR(v, op->loc, "%s has %d operands, expected %d", name, op->noperands,
         info->noperands);
    return;
  }
  bool operands_ok = true;
  for (int i = 0; i < op->noperands; i++) {
    Value *x = op->operands[i];
    if (!id_ok(v, x) || v->defined[x->id] != v->stamp) {
      VERR(v, op->loc, "%s operand %d is not defined before its use", name, i);
      operands_ok = false;
      continue;
    }
    v->uses[x->id]++;
  }
  Value *r = op->results[0];
  if (!r || r->def != op || r->def_index != 0 || r->block != b)
    VERR(v, op->loc, "%s: result does not point back to its op", name);
  if (!r)
    return;
  if (r->type.shape.rank < 0 || r->type.shape.rank > MAX_RANK ||
      (unsigned)r->type.dtype >= DT_COUNT) {
    VERR(v, op->loc, "%s: result type is malformed", name);
    return;
  }
  if (operands_ok) {
    Type t;
    if (ir_infer_type(v->m, op->kind, op->operands, op->noperands, &op->attrs,
                      &r->type, &t, op->loc, v->d)) {
      if (!type_eq(&t, &r->type)) {
        char a[512], c[512];
        type_print(a, sizeof a, &r->type, v->m);
        type_print(c, sizeof c, &t, v->m);
        VERR(v, op->loc, "%s result type is %s, but its operands give %s", name,
             a, c);
      }
    } else {
      v->errors++;
    }
  }
  define_value(v, r, op->loc);
}

static void verify_function(Verifier *v, Function *f) {
  Block *b = f->body;
  v->stamp++;
  if (!b) {
    VERR(v, f->loc, "function @%s has no body", f->name);
    return;
  }
  if (f->ninputs != b->nargs)
    VERR(v, f->loc, "function @%s has %d inputs but %d body arguments", f->name,
         f->ninputs, b->nargs);
  for (int i = 0; i < b->nargs; i++) {
    Value *a = b->args[i];
    if (i < f->ninputs && f->inputs[i].value != a)
      VERR(v, f->inputs[i].loc, "input %s is not body argument %d",
           f->inputs[i].name, i);
    if (a->def || a->block != b || a->def_index != i)
      VERR(v, f->loc, "body argument %d of @%s is malformed", i, f->name);
    define_value(v, a, f->loc);
  }
  Op *prev = NULL;
  for (Op *op = b->first; op; prev = op, op = op->next) {
    if (op->prev != prev)
      VERR(v, op->loc, "op list of @%s is broken", f->name);
    verify_op(v, b, op);
  }
  if (b->last != prev)
    VERR(v, f->loc, "op list of @%s is broken at its end", f->name);
  for (int i = 0; i < f->noutputs; i++) {
    Value *x = f->outputs[i].value;
    if (!id_ok(v, x) || v->defined[x->id] != v->stamp)
      VERR(v, f->outputs[i].loc, "output %s is not defined in @%s",
           f->outputs[i].name, f->name);
    else
      v->uses[x->id]++;
  }
}

/* Use counts are checked after all functions: a value is used only in the
 * function that defines it, so the per-function counts are complete. */
static void verify_uses(Verifier *v, Block *b) {
  for (int i = 0; i < b->nargs; i++) {
    Value *a = b->args[i];
    if (id_ok(v, a) && a->nuses != v->uses[a->id])
      VERR(v, loc_none(), "argument %s has nuses %d but %d uses",
           a->name ? a->name : "?", a->nuses, v->uses[a->id]);
  }
  for (Op *op = b->first; op; op = op->next) {
    for (int i = 0; i < op->nresults; i++) {
      Value *r = op->results[i];
      if (id_ok(v, r) && r->nuses != v->uses[r->id])
        VERR(v, op->loc, "%s result has nuses %d but %d uses",
             ir_op_info[op->kind].name, r->nuses, v->uses[r->id]);
    }
  }
}

bool pass_verify(Module *m, Diag *d) {
  Verifier v = {m, d, NULL, NULL, 0, 0};
  size_t n = (size_t)m->next_value_id + 1;
  v.defined = calloc(n, sizeof(int));
  v.uses = calloc(n, sizeof(int));
  if (!v.defined || !v.uses)
    abort();
  for (int i = 0; i < m->nparams; i++) {
    const Param *p = &m->params[i];
    if ((unsigned)p->type.dtype >= DT_COUNT || !shape_is_const(&p->type.shape))
      VERR(&v, p->loc, "param \"%s\" needs a dtype and a constant shape",
           p->name);
  }
  for (Function *f = m->functions; f; f = f->next)
    verify_function(&v, f);
  if (v.errors == 0)
    for (Function *f = m->functions; f; f = f->next)
      verify_uses(&v, f->body);
  free(v.defined);
  free(v.uses);
  return v.errors == 0;
}
