/* Lazy selects: select(c, a, b) with a scalar condition c picks a whole
 * side, so the work only one side needs can be skipped when the other is
 * picked. A side's own work is its cone: the ops of the select's block
 * whose every result is read only by the select (as that side) or by ops
 * of the cone, through ops nested in regions too. In
 *
 *   v, order = topk(logits, n); ...; pick = categorical(p, u)
 *   next = where(temperature > 0, order[pick], argmax(logits))
 *
 * the sort, the softmax and the draw are the true side's cone: a greedy
 * step (temperature 0) need not compute them.
 *
 * A select is lazy when a side's cone holds work worth a branch (an op
 * that is not a leaf, a movement or a small elementwise op). Then
 * passes/lazy_selects.c computes the condition before the cones, fuse.c
 * keeps the select out of loops (its condition stays a value in memory),
 * and the backends run each op of a cone that follows the condition's
 * definition under `if (c)` (the true side) or `if (!c)`: ir_lazy_guards.
 *
 * Invariant: results are the same bits. An op skipped is read by nothing
 * but the select's unpicked side (and ops skipped with it); its buffer
 * keeps whatever it held, which the select does not read. What changes:
 * a run-time error of the unpicked side (an index out of range) is not
 * reported, as the language documents.
 */
#include "ir.h"

#include <stdlib.h>

/* Elementwise work on fewer elements than this is not worth a branch. */
#define LAZY_MIN_ELEMENTS 1024

typedef struct Use {
  const Op *user; /* the op of the block that reads, or holds the reader */
  int operand;    /* the operand index, -1 for a read inside its regions */
  int next;       /* the value's next use, -1 at the end */
} Use;

/* The uses of the values a block's ops define, by value id. */
typedef struct Uses {
  const Block *b;
  int *first; /* by value id: its first use, -1 if none */
  Use *v;
  int n, cap;
} Uses;

static void add_use(Uses *u, const Value *x, const Op *user, int operand) {
  if (!x->def || x->def->parent != u->b)
    return;
  if (u->n == u->cap) {
    u->cap = u->cap ? 2 * u->cap : 256;
    u->v = realloc(u->v, sizeof(Use) * (size_t)u->cap);
  }
  u->v[u->n] = (Use){user, operand, u->first[x->id]};
  u->first[x->id] = u->n++;
}

/* Reads inside op's regions, as uses by `user` (op's ancestor in b). */
static void add_nested(Uses *u, const Op *op, const Op *user) {
  for (int r = 0; r < op->nregions; r++)
    for (const Op *o = op->regions[r]->first; o; o = o->next) {
      for (int i = 0; i < o->noperands; i++)
        add_use(u, o->operands[i], user, -1);
      add_nested(u, o, user);
    }
}

static int max_id(const Block *b) {
  int m = 0;
  for (int i = 0; i < b->nargs; i++)
    m = b->args[i]->id > m ? b->args[i]->id : m;
  for (const Op *op = b->first; op; op = op->next) {
    for (int i = 0; i < op->nresults; i++)
      m = op->results[i]->id > m ? op->results[i]->id : m;
    for (int r = 0; r < op->nregions; r++) {
      int n = max_id(op->regions[r]);
      m = n > m ? n : m;
    }
  }
  return m;
}

static void uses_build(Uses *u, const Block *b, int ids) {
  *u = (Uses){b, malloc(sizeof(int) * (size_t)ids), NULL, 0, 0};
  for (int i = 0; i < ids; i++)
    u->first[i] = -1;
  for (const Op *op = b->first; op; op = op->next) {
    for (int i = 0; i < op->noperands; i++)
      add_use(u, op->operands[i], op, i);
    add_nested(u, op, op);
  }
}

static void uses_free(Uses *u) {
  free(u->first);
  free(u->v);
}

/* The select's condition, when it is a scalar: NULL otherwise. */
static const Value *scalar_cond(const Op *sel) {
  if (sel->kind != OP_SELECT || sel->operands[0]->type.shape.rank != 0)
    return NULL;
  return sel->operands[0];
}

/* Whether op costs enough to skip: not a leaf, nor a movement (most are
 * views), nor an elementwise op on few elements. */
static bool costly(const Op *op) {
  unsigned f = ir_op_info[op->kind].flags;
  if ((f & (OPF_LEAF | OPF_MOVEMENT)) || op->kind == OP_YIELD)
    return false;
  if (!(f & OPF_ELEMENTWISE) || op->nresults != 1)
    return true;
  int64_t n;
  Dim numel = shape_numel(&op->results[0]->type.shape);
  return !dim_is_const(numel, &n) || n >= LAZY_MIN_ELEMENTS;
}

/* Marks the definitions in b of the values op reads (its operands and
 * what ops in its regions read). */
static void mark_inputs(const Block *b, const Op *op, bool *in) {
  for (int i = 0; i < op->noperands; i++) {
    const Op *d = op->operands[i]->def;
    if (d && d->parent == b)
      in[d->results[0]->id] = true;
  }
  for (int r = 0; r < op->nregions; r++)
    for (const Op *o = op->regions[r]->first; o; o = o->next)
      mark_inputs(b, o, in);
}

/* in[id] for the ops of side `side` (1 or 2) of sel's cone, by the first
 * result's id; returns whether the cone holds a costly op. Candidates are
 * the ops sel reads from that side, transitively; a
 * candidate leaves while one of its uses is by neither the side nor a
 * candidate; what remains is the cone. */
static bool cone(const Uses *u, const Op *sel, int side, bool *in) {
  const Block *b = u->b;
  for (const Op *op = b->first; op; op = op->next)
    if (op->nresults > 0)
      in[op->results[0]->id] = false;
  const Op *start = sel->operands[side]->def;
  if (!start || start->parent != b)
    return false;
  /* a value's definition precedes its readers: one walk back */
  in[start->results[0]->id] = true;
  for (const Op *op = sel->prev; op; op = op->prev)
    if (op->nresults > 0 && in[op->results[0]->id])
      mark_inputs(b, op, in);
  for (bool changed = true; changed;) {
    changed = false;
    for (const Op *op = b->first; op != sel; op = op->next) {
      if (op->nresults == 0 || !in[op->results[0]->id])
        continue;
      bool own = true;
      for (int r = 0; r < op->nresults && own; r++) {
        const Value *v = op->results[r];
        int found = 0;
        for (int k = u->first[v->id]; k >= 0 && own; k = u->v[k].next) {
          const Use *x = &u->v[k];
          found++;
          own = x->user == sel
                    ? x->operand == side
                    : x->user->nresults > 0 && in[x->user->results[0]->id];
        }
        own = own && found == v->nuses; /* else a function output reads it */
      }
      if (!own) {
        in[op->results[0]->id] = false;
        changed = true;
      }
    }
  }
  for (const Op *op = b->first; op != sel; op = op->next)
    if (op->nresults > 0 && in[op->results[0]->id] && costly(op))
      return true;
  return false;
}

const Op *ir_lazy_first_op(const Op *sel) {
  if (!scalar_cond(sel))
    return NULL;
  const Block *b = sel->parent;
  int ids = max_id(b) + 1;
  Uses u;
  uses_build(&u, b, ids);
  bool *in = malloc(sizeof(bool) * (size_t)ids);
  const Op *first = NULL;
  for (int side = 1; side <= 2; side++) {
    if (!cone(&u, sel, side, in))
      continue;
    const Op *op = b->first;
    while (op != sel && !(op->nresults > 0 && in[op->results[0]->id]))
      op = op->next;
    /* the earlier of the two sides' first ops */
    const Op *o = op;
    while (first && o && o != first)
      o = o->next;
    if (!first || o == first)
      first = op;
  }
  free(in);
  uses_free(&u);
  return first;
}

bool ir_select_is_lazy(const Op *sel) {
  return ir_lazy_first_op(sel) != NULL;
}

void ir_lazy_guards(const Block *b, IrGuard *guards) {
  int ids = max_id(b) + 1;
  for (const Op *op = b->first; op; op = op->next)
    if (op->nresults > 0)
      guards[op->results[0]->id] = (IrGuard){NULL, NULL, false};
  Uses u;
  uses_build(&u, b, ids);
  bool *in = malloc(sizeof(bool) * (size_t)ids);
  /* last to first: a select inside another's cone (which precedes it)
   * is skipped with it and guards nothing itself, so every guarded op
   * reads only values computed whenever it runs */
  for (const Op *sel = b->last; sel; sel = sel->prev) {
    const Value *c = scalar_cond(sel);
    if (!c || guards[sel->results[0]->id].cond)
      continue;
    for (int side = 1; side <= 2; side++) {
      if (!cone(&u, sel, side, in))
        continue;
      /* ops before the condition's definition run unguarded */
      bool after = !c->def || c->def->parent != b;
      for (const Op *op = b->first; op != sel; op = op->next) {
        after |= op == c->def;
        if (after && op != c->def && op->nresults > 0 && in[op->results[0]->id])
          guards[op->results[0]->id] = (IrGuard){sel, c, side == 1};
      }
    }
  }
  free(in);
  uses_free(&u);
}
