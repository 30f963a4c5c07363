/* pass_fuse: chains of elementwise ops become one `fused` op each (one loop
 * in the generated code instead of one loop and one buffer per op); a
 * matmul or reduction whose only reader is such a loop over its result
 * moves right before it, and a loop whose only reader is a reduction
 * right before that (the C backend makes each pair one kernel:
 * sink_into_readers).
 *
 * Grouping, per block (scan regions too), from the last op backwards: an
 * elementwise op roots a group of its result shape S; a producer P of a
 * group member joins when P is elementwise, in the same block, of result
 * shape S, and either all of P's uses are operands of group members (P then
 * goes: nothing else needs its result in memory) or P is cheap (arithmetic,
 * comparisons, select: computing it again in each loop costs less than
 * writing and reading it; P stays for its other readers; but not when P
 * reads a matmul's product, see reads_product, nor when the loop would read
 * more arrays of shape S, see count_arrays). Operands from
 * outside the group become the fused op's operands (at most
 * FUSE_MAX_OPERANDS: the group stops growing there; and at most
 * FUSE_MAX_MEMBERS ops, which bounds the time grouping takes: it is cubic in
 * a group's size, and a chain of 10,000 elementwise layers would otherwise
 * take hours); a scalar (shape [])
 * constant is copied into the region instead; a single-use `broadcast`
 * operand is read through (the loop broadcasts by itself, so the expanded
 * tensor is never written) when another operand keeps the loop's shape.
 * The fused op takes the root's place: every member precedes the root and
 * every outside operand precedes its member, so all are defined there.
 *
 * Invariant: results are bit-identical. The region holds the members' ops
 * unchanged, in program order, and the C backend evaluates each as one C
 * operation (see codegen/c_elementwise.c): nothing is reassociated or
 * contracted, so e.g. x * 2^-140 * 2^70 * 2^70 still rounds at each step.
 *
 * Example: %2 = mul %0, %1; %3 = tanh %2; with %2 used once becomes
 *   %3 = fused %0, %1 : f32[8] (%a: f32[], %b: f32[]) {
 *     %c = mul %a, %b : f32[]
 *     %d = tanh %c : f32[]
 *     yield %d
 *   }
 */
#include "passes.h"

#include <stdlib.h>
#include <string.h>

#define FUSE_MAX_OPERANDS 16
#define FUSE_MAX_MEMBERS 64

typedef struct Fuser {
  Module *m;
  Op **members; /* of the group being built */
  bool *moves;  /* per member: it leaves the block (else it is copied) */
  int nmembers, cap;
  bool read_through; /* whether outside broadcasts are read through */
} Fuser;

static bool fusable(const Op *op) {
  if (op->kind == OP_CONST || op->nresults != 1 || !ir_fusable_kind(op->kind))
    return false;
  if (op->kind == OP_SELECT && ir_select_is_lazy(op))
    return false; /* its condition stays in memory: ir/lazy.c */
  DType t = op->results[0]->type.dtype;
  return t != DT_F16 && t != DT_BF16;
}

/* Cheap enough to compute again in each loop that reads it, rather than
 * write it to memory once: a producer of several loops joins each. */
static bool cheap(OpKind k) {
  static const OpKind kinds[] = {
      OP_NEG, OP_ABS,     OP_SIGN,    OP_NOT, OP_CAST,  OP_ADD, OP_SUB,
      OP_MUL, OP_MAXIMUM, OP_MINIMUM, OP_LT,  OP_LE,    OP_GT,  OP_GE,
      OP_EQ,  OP_NE,      OP_AND,     OP_OR,  OP_SELECT};
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
    if (kinds[i] == k)
      return true;
  return false;
}

static bool is_scalar_const(const Value *v) {
  return v->def && v->def->kind == OP_CONST && v->type.shape.rank == 0;
}

/* The value the fused loop reads for outside operand x: through a broadcast
 * used only here (when allowed). */
static Value *read_through(const Fuser *f, Value *x) {
  if (f->read_through && x->def && x->def->kind == OP_BROADCAST &&
      x->nuses == 1)
    return x->def->operands[0];
  return x;
}

static bool is_member(const Fuser *f, const Op *op) {
  for (int i = 0; i < f->nmembers; i++)
    if (f->members[i] == op)
      return true;
  return false;
}

/* Whether every use of v is an operand of a member that leaves the block
 * (so v need not be in memory: its op may leave too). */
static bool only_moving_users(const Fuser *f, const Value *v) {
  int n = 0;
  for (int i = 0; i < f->nmembers; i++)
    for (int j = 0; j < f->members[i]->noperands; j++)
      if (f->members[i]->operands[j] == v) {
        if (!f->moves[i])
          return false;
        n++;
      }
  return n == v->nuses;
}

/* The distinct outside operands the group reads, into out (room for
 * FUSE_MAX_OPERANDS); returns their number, which may exceed the room. */
static int count_outside(const Fuser *f, Value **out) {
  int n = 0;
  for (int i = 0; i < f->nmembers; i++) {
    const Op *op = f->members[i];
    for (int j = 0; j < op->noperands; j++) {
      Value *x = op->operands[j];
      if ((x->def && is_member(f, x->def)) || is_scalar_const(x))
        continue;
      x = read_through(f, x);
      bool seen = false;
      for (int k = 0; k < n && k < FUSE_MAX_OPERANDS && !seen; k++)
        seen = out[k] == x;
      if (!seen) {
        if (n < FUSE_MAX_OPERANDS)
          out[n] = x;
        n++;
      }
    }
  }
  return n;
}

/* The distinct outside operands of the group's shape s: the arrays its
 * loop reads in full. A copied member must not make the loop read more
 * (worth_copying): recomputing x + y instead of reading it would read two
 * arrays instead of one, and copies of copies would rebuild a residual
 * stream from all its terms in every loop that reads it. */
static int count_arrays(const Fuser *f, const Shape *s) {
  Value *outside[FUSE_MAX_OPERANDS];
  int n = count_outside(f, outside), arrays = 0;
  for (int i = 0; i < n && i < FUSE_MAX_OPERANDS; i++)
    arrays += shape_eq(&outside[i]->type.shape, s);
  return arrays;
}

/* Whether every reader of p's result is an elementwise op of shape s (in
 * p's block): each can copy p into its loop, and p then goes. */
static bool only_loop_readers(const Op *p, const Shape *s) {
  const Value *v = p->results[0];
  int found = 0;
  for (const Op *op = p->next; op && found < v->nuses; op = op->next)
    for (int i = 0; i < op->noperands; i++)
      if (op->operands[i] == v) {
        if (!fusable(op) || !shape_eq(&op->results[0]->type.shape, s))
          return false;
        found++; /* a use per operand, as nuses counts them */
      }
  return found == v->nuses;
}

/* Whether copying the member p just added (its result stays for other
 * readers) is worth it: the group reads fewer arrays than the `before` it
 * read without p, or as many and p goes once its other readers copy it
 * too (x - mu in a layer norm's variance and its normalization). */
static bool worth_copying(const Fuser *f, const Op *p, const Shape *s,
                          int before) {
  int after = count_arrays(f, s);
  return after < before || (after == before && only_loop_readers(p, s));
}

static void add_member(Fuser *f, Op *op, bool moves) {
  if (f->nmembers == f->cap) {
    f->cap = f->cap ? 2 * f->cap : 16;
    f->members = realloc(f->members, (size_t)f->cap * sizeof(Op *));
    f->moves = realloc(f->moves, (size_t)f->cap * sizeof(bool));
  }
  f->moves[f->nmembers] = moves;
  f->members[f->nmembers++] = op;
}

/* Members whose every use is by moving members move too (a cheap member
 * copied when it joined may move once its other readers have joined). */
static void update_moves(Fuser *f) {
  for (bool changed = true; changed;) {
    changed = false;
    for (int i = 1; i < f->nmembers; i++)
      if (!f->moves[i] && only_moving_users(f, f->members[i]->results[0]))
        changed = f->moves[i] = true;
  }
}

/* Whether op reads a matmul's product. Such an op is not copied into a
 * group: it stays for its other readers anyway, and as the only reader of
 * the product it can be the GEMM's epilogue (the group then reads its
 * result instead of the product: no more memory traffic). */
static bool reads_product(const Op *op) {
  for (int i = 0; i < op->noperands; i++)
    if (op->operands[i]->def && op->operands[i]->def->kind == OP_MATMUL)
      return true;
  return false;
}

/* Grows the group rooted at root until no producer can join; returns its
 * size. A producer that would take the operand count past the limit is
 * rejected for good. */
static int grow(Fuser *f, Op *root) {
  const Shape *s = &root->results[0]->type.shape;
  Value *outside[FUSE_MAX_OPERANDS];
  Op *rejected[64];
  int nrejected = 0;
  f->nmembers = 0;
  f->read_through = true;
  add_member(f, root, true);
  for (bool grew = true; grew;) {
    grew = false;
    update_moves(f);
    for (int i = 0; i < f->nmembers; i++) {
      Op *op = f->members[i];
      for (int j = 0; j < op->noperands; j++) {
        Value *x = op->operands[j];
        Op *p = x->def;
        bool seen = false;
        for (int r = 0; r < nrejected && !seen; r++)
          seen = rejected[r] == p;
        if (seen || !p || p->parent != root->parent || !fusable(p) ||
            is_member(f, p) || !shape_eq(&x->type.shape, s))
          continue;
        if (f->nmembers == FUSE_MAX_MEMBERS)
          return f->nmembers;
        bool moves = only_moving_users(f, x);
        if (!moves && (!cheap(p->kind) || reads_product(p)))
          continue;
        int arrays = moves ? 0 : count_arrays(f, s);
        add_member(f, p, moves);
        if (!moves && !worth_copying(f, p, s, arrays)) {
          f->nmembers--; /* for now: it may join once its readers have */
        } else if (count_outside(f, outside) > FUSE_MAX_OPERANDS) {
          f->nmembers--; /* it stays a kernel of its own */
          if (nrejected == 64)
            return f->nmembers;
          rejected[nrejected++] = p;
        } else {
          grew = true;
        }
      }
    }
  }
  return f->nmembers;
}

/* Replaces the group (f->members) by a fused op before the root; returns
 * the fused op. */
static Op *build(Fuser *f, Op *root) {
  Module *m = f->m;
  Block *b = root->parent;
  const Type *rt = &root->results[0]->type;
  Value *outside[FUSE_MAX_OPERANDS];
  int n = count_outside(f, outside);
  /* reading through broadcasts must keep the loop's shape: one operand
   * must have it already */
  bool full = false;
  for (int i = 0; i < n; i++)
    full |= shape_eq(&outside[i]->type.shape, &rt->shape);
  if (!full) {
    f->read_through = false;
    n = count_outside(f, outside);
  }
  Op *fused = ir_fused_begin(m, b, outside, n, rt->dtype, root->loc);
  ir_op_move_before(fused, root);
  Block *body = fused->regions[0];
  /* the region value standing for each value id the members read */
  Value **map = calloc((size_t)m->next_value_id, sizeof(Value *));
  for (int i = 0; i < n; i++)
    map[outside[i]->id] = body->args[i];
  /* the members in program order: all precede the root, so a walk back
   * from it finds them without visiting the rest of the block */
  Op **order = malloc((size_t)f->nmembers * sizeof(Op *));
  int found = 0;
  for (Op *op = root; op && found < f->nmembers; op = op->prev)
    if (is_member(f, op))
      order[f->nmembers - 1 - found++] = op;
  Value *last = NULL;
  Op *through[FUSE_MAX_OPERANDS];
  int nthrough = 0;
  for (int i = 0; i < f->nmembers; i++) {
    Op *op = order[i];
    Value *xs[3] = {NULL, NULL, NULL};
    for (int j = 0; j < op->noperands && j < 3; j++) {
      Value *x = op->operands[j];
      if (!map[x->id] && is_scalar_const(x))
        map[x->id] = ir_build_typed(m, body, OP_CONST, NULL, 0, &x->def->attrs,
                                    &x->type, 1, x->def->loc)
                         ->results[0];
      if (!map[x->id] && nthrough < FUSE_MAX_OPERANDS &&
          read_through(f, x) != x)
        through[nthrough++] = x->def;
      xs[j] = map[x->id] ? map[x->id] : map[read_through(f, x)->id];
    }
    Type t = {op->results[0]->type.dtype, shape_scalar()};
    Op *copy = ir_build_typed(m, body, op->kind, xs, op->noperands, &op->attrs,
                              &t, 1, op->loc);
    copy->results[0]->name = op->results[0]->name;
    map[op->results[0]->id] = last = copy->results[0];
  }
  free(map);
  ir_fused_finish(m, fused, last, root->loc);
  fused->results[0]->type = *rt;
  fused->results[0]->name = root->results[0]->name;
  ir_replace_uses(m, root->results[0], fused->results[0]);
  /* members go last to first, each unused by then (but cheap ones that
   * other ops read, which stay); then the broadcasts read through, unused
   * now */
  for (int i = f->nmembers - 1; i >= 0; i--)
    if (order[i]->results[0]->nuses == 0)
      ir_op_remove(order[i]);
  free(order);
  for (int i = 0; i < nthrough; i++)
    if (through[i]->results[0]->nuses == 0)
      ir_op_remove(through[i]);
  return fused;
}

static bool reads(const Op *op, const Value *v) {
  for (int i = 0; i < op->noperands; i++)
    if (op->operands[i] == v)
      return true;
  return false;
}

/* The op that reads op's result and may take it inside its kernel, or
 * NULL: a GEMM's or a reduction's epilogue, a reduction reading an
 * elementwise loop, the steps of attention (ir_is_gemm_epilogue,
 * ir_is_reduce_*, ir_is_attention_*). */
static Op *kernel_partner(Op *op) {
  if (op->nresults != 1 || op->results[0]->nuses != 1)
    return NULL;
  Op *reader = op->next;
  while (reader && !reads(reader, op->results[0]))
    reader = reader->next;
  if (ir_is_gemm_epilogue(op, reader) || ir_is_reduce_epilogue(op, reader) ||
      ir_is_reduce_prologue(op, reader) ||
      ir_is_attention_softmax(op, reader) || ir_is_attention_scores(op, reader))
    return reader;
  return NULL;
}

/* Such an op moves down to right before its reader, last ones first (so a
 * reduction's prologue follows it to its epilogue): its operands are
 * defined before it and nothing else reads its result, so no value
 * changes; the C backend then makes them one kernel. */
static void sink_into_readers(Block *b) {
  for (Op *op = b->last; op;) {
    Op *prev = op->prev, *reader = kernel_partner(op);
    if (reader && reader != op->next)
      ir_op_move_before(op, reader);
    op = prev;
  }
}

static void fuse_block(Fuser *f, Block *b) {
  for (Op *op = b->first; op; op = op->next)
    if (op->kind == OP_SCAN)
      fuse_block(f, op->regions[0]);
  for (Op *op = b->last; op;) {
    if (fusable(op) && grow(f, op) >= 2)
      op = build(f, op);
    op = op->prev;
  }
  sink_into_readers(b);
}

bool pass_fuse(Module *m, Diag *d) {
  (void)d;
  Fuser f = {0};
  f.m = m;
  for (Function *fn = m->functions; fn; fn = fn->next)
    fuse_block(&f, fn->body);
  free(f.members);
  free(f.moves);
  return true;
}
