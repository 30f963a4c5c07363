/* pass_verify: checks the structural invariants of ir.h and changes nothing.
 *
 *  - params have a valid dtype and a constant shape;
 *  - a function's inputs are exactly its body's arguments, in order;
 *  - ops are linked consistently (prev/next/parent), results point back to
 *    their op, and every op has one result and no regions, except scan
 *    (one region, results by ir_scan_infer), fused (one region of scalar
 *    ops, ir_fused_check) and yield (no results, only as the last op of a
 *    scan's or fused op's region);
 *  - operand counts match ops.def, and every operand is defined earlier in
 *    the same function, in the same block or one enclosing it (values of a
 *    region are not visible after it; no cross-function values);
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
  int *defined; /* per value id: the scope stamp that defined it */
  int *uses;    /* per value id: counted uses */
  int stamp;    /* last scope stamp handed out */
  int open[64]; /* stamps of the scopes (function body, regions) entered */
  int nopen;
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
  v->defined[x->id] = v->open[v->nopen - 1];
}

/* x is defined in the current scope or one enclosing it */
static bool visible(const Verifier *v, const Value *x) {
  if (!id_ok(v, x))
    return false;
  for (int i = 0; i < v->nopen; i++)
    if (v->defined[x->id] == v->open[i])
      return true;
  return false;
}

static void verify_block_ops(Verifier *v, Block *b, const char *where);

/* The region of op in a scope of its own. */
static void verify_region(Verifier *v, Op *op, const char *what) {
  Block *body = op->regions[0];
  if (body->parent_op != op)
    VERR(v, op->loc, "%s does not point back to its op", what);
  if (v->nopen == (int)(sizeof v->open / sizeof v->open[0])) {
    VERR(v, op->loc, "regions nested too deeply");
    return;
  }
  v->open[v->nopen++] = ++v->stamp;
  for (int i = 0; i < body->nargs; i++) {
    Value *a = body->args[i];
    if (a->def || a->block != body || a->def_index != i)
      VERR(v, op->loc, "%s argument %d is malformed", what, i);
    define_value(v, a, op->loc);
  }
  verify_block_ops(v, body, what);
  v->nopen--;
}

static void verify_scan(Verifier *v, Op *op) {
  if (op->nregions != 1 || !op->regions[0]) {
    VERR(v, op->loc, "scan needs exactly one region");
    return;
  }
  verify_region(v, op, "scan region");
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
  bool is_scan = op->kind == OP_SCAN, is_yield = op->kind == OP_YIELD;
  bool is_fused = op->kind == OP_FUSED;
  if (op->nregions != 0 && !is_scan && !is_fused)
    VERR(v, op->loc, "%s: only scan and fused have a region", name);
  if (is_yield &&
      (op->next || !b->parent_op ||
       (b->parent_op->kind != OP_SCAN && b->parent_op->kind != OP_FUSED)))
    VERR(v, op->loc, "yield must be the last op of a scan's or fused region");
  if (!is_scan && op->nresults != (is_yield ? 0 : 1)) {
    VERR(v, op->loc, "%s has %d results, expected %d", name, op->nresults,
         is_yield ? 0 : 1);
    return;
  }
  const OpInfo *info = &ir_op_info[op->kind];
  if (info->noperands >= 0 ? op->noperands != info->noperands
                           : op->noperands < ir_op_min_operands(op->kind)) {
    VERR(v, op->loc, "%s has %d operands, expected %d", name, op->noperands,
         info->noperands);
    return;
  }
  bool operands_ok = true;
  for (int i = 0; i < op->noperands; i++) {
    Value *x = op->operands[i];
    if (!visible(v, x)) {
      VERR(v, op->loc, "%s operand %d is not defined before its use", name, i);
      operands_ok = false;
      continue;
    }
    v->uses[x->id]++;
  }
  if (is_yield)
    return;
  if (is_scan) {
    verify_scan(v, op);
    for (int i = 0; i < op->nresults; i++) {
      Value *r = op->results[i];
      if (!r || r->def != op || r->def_index != i || r->block != b) {
        VERR(v, op->loc, "scan: result %d does not point back to its op", i);
        return;
      }
    }
    Type types[64];
    int n = 0;
    if (operands_ok && v->errors == 0) {
      if (!ir_scan_infer(v->m, op, types, 64, &n, v->d))
        v->errors++;
      else if (n != op->nresults)
        VERR(v, op->loc, "scan has %d results, its region gives %d",
             op->nresults, n);
      else
        for (int i = 0; i < n; i++)
          if (!type_eq(&types[i], &op->results[i]->type)) {
            char a[512], c[512];
            type_print(a, sizeof a, &op->results[i]->type, v->m);
            type_print(c, sizeof c, &types[i], v->m);
            VERR(v, op->loc, "scan result %d is %s, but its region gives %s", i,
                 a, c);
          }
    }
    for (int i = 0; i < op->nresults; i++)
      define_value(v, op->results[i], op->loc);
    return;
  }
  if (is_fused) {
    if (op->nregions != 1 || !op->regions[0]) {
      VERR(v, op->loc, "fused needs exactly one region");
      return;
    }
    verify_region(v, op, "fused region");
    if (v->errors == 0 && !ir_fused_check(v->m, op, v->d))
      v->errors++;
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

/* A training entry: each update has the type of what it replaces; the step
 * input is an f32 scalar. */
static void verify_updates(Verifier *v, const Function *f) {
  for (int i = 0; i < f->noutputs; i++) {
    const FuncOutput *o = &f->outputs[i];
    const Type *want = NULL;
    if (o->updates_param >= v->m->nparams || o->updates_input >= f->ninputs)
      VERR(v, o->loc, "output %s updates nothing that exists", o->name);
    else if (o->updates_param >= 0)
      want = &v->m->params[o->updates_param].type;
    else if (o->updates_input >= 0)
      want = &f->inputs[o->updates_input].value->type;
    if (want && o->value && !type_eq(want, &o->value->type))
      VERR(v, o->loc, "output %s has another type than what it updates",
           o->name);
  }
  for (int i = 0; i < f->ninputs; i++)
    if (f->inputs[i].step && (f->inputs[i].value->type.dtype != DT_F32 ||
                              f->inputs[i].value->type.shape.rank != 0))
      VERR(v, f->inputs[i].loc, "step input %s is not f32[]",
           f->inputs[i].name);
}

static void verify_block_ops(Verifier *v, Block *b, const char *where) {
  Op *prev = NULL;
  for (Op *op = b->first; op; prev = op, op = op->next) {
    if (op->prev != prev)
      VERR(v, op->loc, "op list of %s is broken", where);
    verify_op(v, b, op);
  }
  if (b->last != prev)
    VERR(v, loc_none(), "op list of %s is broken at its end", where);
}

static void verify_function(Verifier *v, Function *f) {
  Block *b = f->body;
  v->nopen = 0;
  v->open[v->nopen++] = ++v->stamp;
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
  verify_block_ops(v, b, f->name);
  for (int i = 0; i < f->noutputs; i++) {
    Value *x = f->outputs[i].value;
    if (!visible(v, x))
      VERR(v, f->outputs[i].loc, "output %s is not defined in @%s",
           f->outputs[i].name, f->name);
    else
      v->uses[x->id]++;
  }
  verify_updates(v, f);
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
    for (int r = 0; r < op->nregions; r++)
      verify_uses(v, op->regions[r]);
  }
}

/* The prepare function and the prepared params: at most one prepare
 * function, without inputs, reading no prepared param; its outputs and the
 * prepared params match one to one by name and type. */
static void verify_prepared(Verifier *v) {
  const Module *m = v->m;
  const Function *prep = NULL;
  for (const Function *f = m->functions; f; f = f->next)
    if (f->prepares) {
      if (prep)
        VERR(v, f->loc, "a second prepare function: @%s after @%s", f->name,
             prep->name);
      prep = f;
      if (f->ninputs)
        VERR(v, f->loc, "prepare function @%s has inputs", f->name);
      for (const Op *op = f->body->first; op; op = op->next)
        if (op->kind == OP_PARAM && op->attrs.param.index >= 0 &&
            op->attrs.param.index < m->nparams &&
            m->params[op->attrs.param.index].prepared)
          VERR(v, op->loc, "prepare function @%s reads prepared param \"%s\"",
               f->name, m->params[op->attrs.param.index].name);
    }
  int prepared = 0;
  for (int i = 0; i < m->nparams; i++) {
    const Param *p = &m->params[i];
    if (!p->prepared) {
      if (prepared)
        VERR(v, p->loc, "param \"%s\" of the weights file after a prepared one",
             p->name);
      continue;
    }
    prepared++;
    int found = 0;
    for (int o = 0; prep && o < prep->noutputs; o++)
      if (!strcmp(prep->outputs[o].name, p->name)) {
        found = 1;
        if (!type_eq(&prep->outputs[o].value->type, &p->type))
          VERR(v, p->loc, "prepared param \"%s\" and its output differ in type",
               p->name);
      }
    if (!found)
      VERR(v, p->loc, "prepared param \"%s\" is no prepare function's output",
           p->name);
  }
  if (prep && prep->noutputs != prepared)
    VERR(v, prep->loc,
         "prepare function @%s has %d outputs for %d prepared params",
         prep->name, prep->noutputs, prepared);
}

bool pass_verify(Module *m, Diag *d) {
  Verifier v;
  memset(&v, 0, sizeof v);
  v.m = m;
  v.d = d;
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
  verify_prepared(&v);
  for (Function *f = m->functions; f; f = f->next)
    verify_function(&v, f);
  if (v.errors == 0)
    for (Function *f = m->functions; f; f = f->next)
      verify_uses(&v, f->body);
  free(v.defined);
  free(v.uses);
  return v.errors == 0;
}
