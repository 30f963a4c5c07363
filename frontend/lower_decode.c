/* Lowering, part 6: the builtins of decoding (LANGUAGE.md, "Decoding").
 *
 *   dynamic_slice(x, [starts], [sizes])      run-time starts, fixed sizes
 *   dynamic_update_slice(x, update, [starts])
 *   take_along_axis(x, idx, axis=-1)         torch.gather
 *   values, indices = topk(x, k, axis=-1)    stable: ties by lower index
 *   cumsum(x, axis)
 *   u, state2 = uniform(state, [dims], dtype=f32)
 *   categorical(p, u, axis=-1, logits=false) inverse-CDF sampling
 *
 * Starts are scalar integer tensors (a scan's step index, a computed
 * position) or integer constants. uniform() is the one stateful-looking
 * builtin: the state is an explicit i64[] tensor, the draw a pure
 * function of it (random_uniform), and the next state state + GOLDEN
 * (wrapping i64 add), so a scan carries it like any other value.
 */
#include "lower_internal.h"

#include <string.h>

typedef struct DCall {
  Lowerer *L;
  const char *name, *sig;
  const AstNode *node;
  Loc loc;
  LVal *args;
  const AstNode **argnodes;
  int nargs;
  const char **kwnames;
  LVal *kwargs;
  const AstNode **kwnodes;
  int nkw;
  bool *kwused;
} DCall;

static const char *const decode_builtins[][2] = {
    {"dynamic_slice", "dynamic_slice(x, [starts], [sizes])"},
    {"dynamic_update_slice", "dynamic_update_slice(x, update, [starts])"},
    {"take_along_axis", "take_along_axis(x, indices, axis=-1)"},
    {"topk", "topk(x, k, axis=-1)"},
    {"cumsum", "cumsum(x, axis)"},
    {"uniform", "uniform(state, [dims], dtype=f32)"},
    {"categorical", "categorical(p, u, axis=-1, logits=false)"},
};
enum { NDECODE = sizeof decode_builtins / sizeof decode_builtins[0] };

bool lower_is_decode_builtin(const char *name) {
  for (int i = 0; i < NDECODE; i++)
    if (!strcmp(name, decode_builtins[i][0]))
      return true;
  return false;
}

static LVal fail(DCall *c, const AstNode *at, const char *what) {
  diag_error(c->L->d, at ? at->loc : c->node->loc, "%s: %s", what, c->sig);
  return lv_error();
}

/* Positional argument i, or keyword `kw`, or NULL. */
static LVal *arg(DCall *c, int i, const char *kw, const AstNode **at) {
  if (i < c->nargs) {
    *at = c->argnodes[i];
    return &c->args[i];
  }
  for (int j = 0; kw && j < c->nkw; j++)
    if (!strcmp(c->kwnames[j], kw)) {
      c->kwused[j] = true;
      *at = c->kwnodes[j];
      return &c->kwargs[j];
    }
  *at = c->node;
  return NULL;
}

static Value *tensor(DCall *c, int i) {
  if (c->args[i].kind == LV_TENSOR)
    return c->args[i].v;
  diag_error(c->L->d, c->argnodes[i]->loc,
             "argument %d of '%s' must be a tensor, not %s", i + 1, c->name,
             lv_kind_name(c->args[i].kind));
  return NULL;
}

static bool const_int(DCall *c, LVal *v, const AstNode *at, int64_t *out) {
  if (v && v->kind == LV_INT && dim_is_const(v->dim, out))
    return true;
  diag_error(c->L->d, at->loc, "'%s' needs a constant integer here, not %s",
             c->name, v ? lv_kind_name(v->kind) : "nothing");
  return false;
}

static bool axis_arg(DCall *c, int i, int rank, bool required, int *out) {
  const AstNode *at;
  LVal *v = arg(c, i, "axis", &at);
  int64_t ax = -1;
  if (!v && required) {
    fail(c, NULL, "missing axis");
    return false;
  }
  if (v && !const_int(c, v, at, &ax))
    return false;
  if (ax < -rank || ax >= rank) {
    diag_error(c->L->d, at->loc,
               "axis %lld is out of range for a tensor of rank %d",
               (long long)ax, rank);
    return false;
  }
  *out = (int)(ax < 0 ? ax + rank : ax);
  return true;
}

static bool bool_kw(DCall *c, const char *kw, bool *out) {
  const AstNode *at;
  LVal *v = arg(c, 1000, kw, &at);
  int64_t i;
  if (!v)
    return true;
  if (v->kind == LV_BOOL)
    *out = v->b;
  else if (v->kind == LV_INT && dim_is_const(v->dim, &i))
    *out = i != 0;
  else {
    diag_error(c->L->d, at->loc, "%s= must be true or false", kw);
    return false;
  }
  return true;
}

static bool list_arg(DCall *c, int i, const char *what) {
  if (c->args[i].kind == LV_LIST || c->args[i].kind == LV_TUPLE)
    return true;
  diag_error(c->L->d, c->argnodes[i]->loc, "'%s' needs a list of %s", c->name,
             what);
  return false;
}

/* The start operands: scalar integer tensors or integer constants, one per
 * axis of a tensor of the given rank. */
static bool starts_arg(DCall *c, int i, int rank, Value **out) {
  if (!list_arg(c, i, "start indices, one per axis"))
    return false;
  LVal l = c->args[i];
  if (l.nitems != rank) {
    diag_error(c->L->d, c->argnodes[i]->loc,
               "'%s' needs %d start indices (one per axis), got %d", c->name,
               rank, l.nitems);
    return false;
  }
  for (int j = 0; j < rank; j++) {
    LVal s = l.items[j];
    int64_t v;
    if (s.kind == LV_INT && dim_is_const(s.dim, &v)) {
      out[j] = ir_const_scalar(c->L->m, c->L->body, DT_I32, (double)v, c->loc);
      continue;
    }
    if (s.kind == LV_TENSOR && dtype_is_int(s.v->type.dtype) &&
        s.v->type.shape.rank == 0) {
      out[j] = s.v;
      continue;
    }
    diag_error(c->L->d, c->argnodes[i]->loc,
               "start %d of '%s' must be a scalar integer tensor or an "
               "integer constant, not %s",
               j, c->name,
               s.kind == LV_INT ? "a symbolic dimension"
                                : lv_kind_name(s.kind));
    return false;
  }
  return true;
}

static LVal dynamic_slice(DCall *c) {
  Value *x = tensor(c, 0), *ops[MAX_RANK + 1];
  if (!x || !list_arg(c, 2, "sizes, one per axis"))
    return lv_error();
  int rank = x->type.shape.rank;
  if (!starts_arg(c, 1, rank, ops + 1))
    return lv_error();
  LVal sz = c->args[2];
  Type t = x->type;
  if (sz.nitems != rank)
    return fail(c, c->argnodes[2], "one size per axis");
  for (int j = 0; j < rank; j++) {
    if (sz.items[j].kind != LV_INT)
      return fail(c, c->argnodes[2], "sizes must be integers");
    t.shape.dims[j] = sz.items[j].dim;
  }
  ops[0] = x;
  return lv_tensor(
      lower_op(c->L, OP_DYNAMIC_SLICE, ops, rank + 1, NULL, &t, c->loc));
}

static LVal dynamic_update_slice(DCall *c) {
  Value *x = tensor(c, 0), *u = tensor(c, 1), *ops[MAX_RANK + 2];
  if (!x || !u || !starts_arg(c, 2, x->type.shape.rank, ops + 2))
    return lv_error();
  ops[0] = x;
  ops[1] = u;
  return lv_tensor(lower_op(c->L, OP_DYNAMIC_UPDATE_SLICE, ops,
                            x->type.shape.rank + 2, NULL, NULL, c->loc));
}

static LVal take_along_axis(DCall *c) {
  Value *ops[2] = {tensor(c, 0), tensor(c, 1)};
  Attrs a;
  memset(&a, 0, sizeof a);
  if (!ops[0] || !ops[1] ||
      !axis_arg(c, 2, ops[0]->type.shape.rank, false, &a.axis.axis))
    return lv_error();
  return lv_tensor(
      lower_op(c->L, OP_TAKE_ALONG_AXIS, ops, 2, &a, NULL, c->loc));
}

static LVal topk(DCall *c) {
  Value *x = tensor(c, 0);
  const AstNode *at;
  LVal *kv = arg(c, 1, "k", &at);
  Attrs a;
  memset(&a, 0, sizeof a);
  if (!x || !kv || kv->kind != LV_INT)
    return x ? fail(c, at, "k must be an integer") : lv_error();
  if (!axis_arg(c, 2, x->type.shape.rank, false, &a.axis.axis))
    return lv_error();
  Type t = x->type;
  t.dtype = DT_I32;
  t.shape.dims[a.axis.axis] = kv->dim;
  Value *idx = lower_op(c->L, OP_TOPK, &x, 1, &a, &t, c->loc);
  Value *ops[2] = {x, idx};
  Value *vals =
      idx ? lower_op(c->L, OP_TAKE_ALONG_AXIS, ops, 2, &a, NULL, c->loc) : NULL;
  if (!vals)
    return lv_error();
  LVal r = lv_void();
  r.kind = LV_TUPLE;
  r.nitems = 2;
  r.items = arena_alloc(&c->L->m->arena, 2 * sizeof(LVal));
  r.items[0] = lv_tensor(vals);
  r.items[1] = lv_tensor(idx);
  return r;
}

static LVal cumsum(DCall *c) {
  Value *x = tensor(c, 0);
  Attrs a;
  memset(&a, 0, sizeof a);
  if (!x || !axis_arg(c, 1, x->type.shape.rank, true, &a.axis.axis))
    return lv_error();
  return lv_tensor(lower_op(c->L, OP_CUMSUM, &x, 1, &a, NULL, c->loc));
}

static LVal uniform(DCall *c) {
  Value *state = tensor(c, 0);
  if (!state || !list_arg(c, 1, "dimensions like [B, 4]"))
    return lv_error();
  LVal l = c->args[1];
  Type t;
  memset(&t, 0, sizeof t);
  t.dtype = DT_F32;
  if (l.nitems > MAX_RANK)
    return fail(c, c->argnodes[1], "rank too large");
  t.shape.rank = l.nitems;
  for (int j = 0; j < l.nitems; j++) {
    if (l.items[j].kind != LV_INT)
      return fail(c, c->argnodes[1], "dimensions must be integers");
    t.shape.dims[j] = l.items[j].dim;
  }
  const AstNode *at;
  LVal *dt = arg(c, 1000, "dtype", &at);
  if (dt && !(dt->kind == LV_BUILTIN && lower_dtype(dt->s, &t.dtype) &&
              dtype_is_float(t.dtype)))
    return fail(c, at, "dtype= must be f32 or f64");
  Value *u = lower_op(c->L, OP_RANDOM_UNIFORM, &state, 1, NULL, &t, c->loc);
  if (!u)
    return lv_error();
  const int64_t golden = (int64_t)UINT64_C(0x9E3779B97F4A7C15);
  Type st = {DT_I64, shape_scalar()};
  Value *ops[2] = {state,
                   ir_const_tensor(c->L->m, c->L->body, &st, &golden, c->loc)};
  Value *next = lower_op(c->L, OP_ADD, ops, 2, NULL, NULL, c->loc);
  if (!next)
    return lv_error();
  LVal r = lv_void();
  r.kind = LV_TUPLE;
  r.nitems = 2;
  r.items = arena_alloc(&c->L->m->arena, 2 * sizeof(LVal));
  r.items[0] = lv_tensor(u);
  r.items[1] = lv_tensor(next);
  return r;
}

static LVal categorical(DCall *c) {
  Value *ops[2] = {tensor(c, 0), tensor(c, 1)};
  Attrs a;
  memset(&a, 0, sizeof a);
  bool logits = false;
  if (!ops[0] || !ops[1] ||
      !axis_arg(c, 2, ops[0]->type.shape.rank, false, &a.axis.axis) ||
      !bool_kw(c, "logits", &logits))
    return lv_error();
  if (logits) {
    ops[0] = lower_op(c->L, OP_SOFTMAX, ops, 1, &a, NULL, c->loc);
    if (!ops[0])
      return lv_error();
  }
  return lv_tensor(lower_op(c->L, OP_CATEGORICAL, ops, 2, &a, NULL, c->loc));
}

LVal lower_decode_builtin(Lowerer *L, const char *name, const AstNode *call,
                          LVal *args, const AstNode **argnodes, int nargs,
                          const char **kwnames, LVal *kwargs,
                          const AstNode **kwnodes, int nkw) {
  static const int counts[NDECODE][2] = {{3, 3}, {3, 3}, {2, 3}, {1, 3},
                                         {1, 2}, {2, 2}, {2, 3}};
  int which = 0;
  while (strcmp(decode_builtins[which][0], name))
    which++;
  DCall c = {L,
             name,
             decode_builtins[which][1],
             call,
             lower_loc(L, call),
             args,
             argnodes,
             nargs,
             kwnames,
             kwargs,
             kwnodes,
             nkw,
             NULL};
  c.kwused = arena_alloc(&L->m->arena, (size_t)nkw + 1);
  if (nargs < counts[which][0] || nargs > counts[which][1])
    return fail(&c, NULL, "wrong number of arguments");
  LVal (*const fns[NDECODE])(DCall *) = {
      dynamic_slice, dynamic_update_slice, take_along_axis, topk, cumsum,
      uniform,       categorical};
  LVal r = fns[which](&c);
  if (lv_is_error(r))
    return r;
  for (int i = 0; i < nkw; i++)
    if (!c.kwused[i]) {
      diag_error(L->d, kwnodes[i]->loc, "'%s' has no argument named '%s'", name,
                 kwnames[i]);
      return lv_error();
    }
  return r;
}
