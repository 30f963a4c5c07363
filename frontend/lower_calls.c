/* Lowering, part 4: the builtin functions of LANGUAGE.md.
 *
 * Each builtin checks its arguments (count, kinds, axes) and reports misuse
 * at the call with the builtin's signature; shape errors come from the IR's
 * shape rules, located at the call.
 */
#include "lower_internal.h"

#include <math.h>
#include <string.h>

typedef struct Call {
  Lowerer *L;
  const char *name;
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
} Call;

static const struct {
  const char *name;
  OpKind op;
} unary_ops[] = {
    {"exp", OP_EXP},     {"log", OP_LOG},     {"sqrt", OP_SQRT},
    {"tanh", OP_TANH},   {"erf", OP_ERF},     {"sigmoid", OP_SIGMOID},
    {"abs", OP_ABS},     {"sign", OP_SIGN},   {"sin", OP_SIN},
    {"cos", OP_COS},     {"expm1", OP_EXPM1}, {"log1p", OP_LOG1P},
    {"floor", OP_FLOOR}, {"ceil", OP_CEIL},
};

static const struct {
  const char *name;
  OpKind op;
} reduce_ops[] = {
    {"sum", OP_REDUCE_SUM}, {"mean", OP_REDUCE_MEAN},    {"max", OP_REDUCE_MAX},
    {"min", OP_REDUCE_MIN}, {"logsumexp", OP_LOGSUMEXP}, {"argmax", OP_ARGMAX},
    {"argmin", OP_ARGMIN},
};

static const char *const other_builtins[] = {
    "rsqrt",       "relu",     "maximum",      "minimum",
    "where",       "f32",      "f64",          "i32",
    "i64",         "bool",     "var",          "softmax",
    "log_softmax", "reshape",  "transpose",    "permute",
    "concat",      "split",    "broadcast_to", "arange",
    "zeros",       "ones",     "full",         "scan",
    "grad",        "minimize", "assign",       "stop_gradient",
    NULL};

const char *lower_builtin_name(int i) {
  int nunary = (int)(sizeof unary_ops / sizeof unary_ops[0]);
  int nreduce = (int)(sizeof reduce_ops / sizeof reduce_ops[0]);
  if (i < 0)
    return NULL;
  if (i < nunary)
    return unary_ops[i].name;
  i -= nunary;
  if (i < nreduce)
    return reduce_ops[i].name;
  i -= nreduce;
  for (int k = 0; other_builtins[k]; k++)
    if (k == i)
      return other_builtins[k];
  return NULL;
}

bool lower_is_builtin(const char *name) {
  for (size_t i = 0; i < sizeof unary_ops / sizeof unary_ops[0]; i++)
    if (strcmp(name, unary_ops[i].name) == 0)
      return true;
  for (size_t i = 0; i < sizeof reduce_ops / sizeof reduce_ops[0]; i++)
    if (strcmp(name, reduce_ops[i].name) == 0)
      return true;
  for (int i = 0; other_builtins[i]; i++)
    if (strcmp(name, other_builtins[i]) == 0)
      return true;
  return lower_is_decode_builtin(name);
}

/* ---- argument helpers
 * -------------------------------------------------------- */
/* sig is the usage, e.g. "softmax(x, axis=-1)"; a generic one shared by a
 * family ("f(x)", "dtype(x)", "reduction(...)") is shown with the name the
 * call used. */
static bool want_args(Call *c, int lo, int hi, const char *sig) {
  if (c->nargs >= lo && c->nargs <= hi)
    return true;
  const char *paren = strchr(sig, '(');
  const char *rest = paren ? paren : "";
  char count[64];
  if (lo == hi)
    snprintf(count, sizeof count, "%d argument%s", lo, lo == 1 ? "" : "s");
  else
    snprintf(count, sizeof count, "%d to %d arguments", lo, hi);
  diag_error(c->L->d, c->node->loc, "'%s' takes %s, got %d (usage: %s%s)",
             c->name, count, c->nargs, c->name, rest);
  return false;
}

static LVal *kwarg(Call *c, const char *name) {
  for (int i = 0; i < c->nkw; i++)
    if (strcmp(c->kwnames[i], name) == 0) {
      c->kwused[i] = true;
      return &c->kwargs[i];
    }
  return NULL;
}

static Value *tensor_arg(Call *c, int i) {
  LVal v = c->args[i];
  if (v.kind == LV_TENSOR)
    return v.v;
  if (v.kind == LV_FLOAT || v.kind == LV_BOOL ||
      (v.kind == LV_INT && dim_is_const(v.dim, &(int64_t){0})))
    return lower_to_tensor(c->L, v,
                           v.kind == LV_BOOL  ? DT_BOOL
                           : v.kind == LV_INT ? DT_I32
                                              : DT_F32,
                           c->loc);
  diag_error(c->L->d, c->argnodes[i]->loc,
             "argument %d of '%s' must be a tensor, not %s", i + 1, c->name,
             lv_kind_name(v.kind));
  return NULL;
}

static bool normalize_axis(Call *c, int64_t ax, int rank, const AstNode *at,
                           int *out) {
  if (ax < -rank || ax >= rank || (rank == 0 && ax != 0)) {
    diag_error(c->L->d, at ? at->loc : c->node->loc,
               "axis %lld is out of range for a tensor of rank %d",
               (long long)ax, rank);
    return false;
  }
  *out = (int)(ax < 0 ? ax + rank : ax);
  return true;
}

static bool const_int(Call *c, LVal v, const AstNode *at, int64_t *out) {
  if (v.kind == LV_INT && dim_is_const(v.dim, out))
    return true;
  diag_error(c->L->d, at ? at->loc : c->node->loc,
             "'%s' expects a constant integer here, not %s", c->name,
             lv_kind_name(v.kind));
  return false;
}

/* A list of dims (shape arguments). */
static bool dim_list(Call *c, LVal v, const AstNode *at, Shape *out) {
  if (v.kind != LV_LIST && v.kind != LV_TUPLE) {
    diag_error(c->L->d, at ? at->loc : c->node->loc,
               "'%s' expects a list of dimensions like [T, 64]", c->name);
    return false;
  }
  if (v.nitems > MAX_RANK) {
    diag_error(c->L->d, at ? at->loc : c->node->loc, "rank exceeds %d",
               MAX_RANK);
    return false;
  }
  out->rank = v.nitems;
  for (int i = 0; i < v.nitems; i++) {
    if (v.items[i].kind != LV_INT) {
      diag_error(c->L->d, at ? at->loc : c->node->loc,
                 "dimension %d must be an integer, not %s", i,
                 lv_kind_name(v.items[i].kind));
      return false;
    }
    out->dims[i] = v.items[i].dim;
  }
  return true;
}

static Value *unary(Call *c, OpKind k, Value *x) {
  return lower_op(c->L, k, &x, 1, NULL, NULL, c->loc);
}

static Value *cast(Call *c, Value *x, DType t) {
  if (!x || x->type.dtype == t)
    return x;
  Type h = x->type;
  h.dtype = t;
  return lower_op(c->L, OP_CAST, &x, 1, NULL, &h, c->loc);
}

static Value *binary(Call *c, OpKind k, Value *a, Value *b) {
  Value *ops[2] = {a, b};
  return lower_op(c->L, k, ops, 2, NULL, NULL, c->loc);
}

/* Two or three operands to one dtype, numbers taking the tensor's dtype. */
static bool operands_like(Call *c, int first, int n, Value **out) {
  DType t = DT_BOOL;
  bool have = false;
  for (int i = first; i < first + n; i++)
    if (c->args[i].kind == LV_TENSOR) {
      DType d = c->args[i].v->type.dtype;
      if (!have || (dtype_is_float(d) && !dtype_is_float(t)) || (d == DT_F64) ||
          (d == DT_I64 && t == DT_I32) || (t == DT_BOOL && d != DT_BOOL))
        t = d;
      have = true;
    }
  for (int i = first; i < first + n; i++)
    if (c->args[i].kind == LV_FLOAT && !dtype_is_float(t))
      t = DT_F32;
  for (int i = 0; i < n; i++) {
    LVal v = c->args[first + i];
    if (v.kind == LV_TENSOR)
      out[i] = cast(c, v.v, t);
    else
      out[i] = lower_to_tensor(c->L, v, t, c->loc);
    if (!out[i])
      return false;
  }
  return true;
}

static double number_of(LVal v, bool *ok) {
  int64_t iv;
  *ok = true;
  if (v.kind == LV_FLOAT)
    return v.f;
  if (v.kind == LV_BOOL)
    return v.b;
  if (v.kind == LV_INT && dim_is_const(v.dim, &iv))
    return (double)iv;
  *ok = false;
  return 0;
}

/* ---- reductions -------------------------------------------------------------
 */
static LVal reduce(Call *c, OpKind k) {
  if (!want_args(c, 1, 2, "reduction(x, axis=None, keepdims=false)"))
    return lv_error();
  Value *x = tensor_arg(c, 0);
  if (!x)
    return lv_error();
  if (k != OP_ARGMAX && k != OP_ARGMIN && k != OP_REDUCE_SUM &&
      k != OP_REDUCE_MAX && k != OP_REDUCE_MIN)
    x = cast(c, x, dtype_is_float(x->type.dtype) ? x->type.dtype : DT_F32);
  int rank = x->type.shape.rank;
  LVal *axv = c->nargs > 1 ? &c->args[1] : kwarg(c, "axis");
  const AstNode *axnode = c->nargs > 1 ? c->argnodes[1] : c->node;
  LVal *kd = kwarg(c, "keepdims");
  Attrs a;
  memset(&a, 0, sizeof a);
  a.reduce.keepdims =
      kd && ((kd->kind == LV_BOOL && kd->b) ||
             (kd->kind == LV_INT && !dim_eq(kd->dim, dim_const(0))));
  if (!axv || axv->kind == LV_NONE) {
    a.reduce.axes = rank >= 32 ? 0xffffffffu : (1u << rank) - 1u;
  } else if (axv->kind == LV_LIST || axv->kind == LV_TUPLE) {
    for (int i = 0; i < axv->nitems; i++) {
      int64_t ax;
      int norm;
      if (!const_int(c, axv->items[i], axnode, &ax) ||
          !normalize_axis(c, ax, rank, axnode, &norm))
        return lv_error();
      a.reduce.axes |= 1u << norm;
    }
  } else {
    int64_t ax;
    int norm;
    if (!const_int(c, *axv, axnode, &ax) ||
        !normalize_axis(c, ax, rank, axnode, &norm))
      return lv_error();
    a.reduce.axes = 1u << norm;
  }
  if ((k == OP_ARGMAX || k == OP_ARGMIN) &&
      (a.reduce.axes & (a.reduce.axes - 1)) != 0) {
    if (rank == 1) {
      a.reduce.axes = 1;
    } else {
      diag_error(c->L->d, c->node->loc,
                 "'%s' needs one axis for a tensor of rank %d", c->name, rank);
      return lv_error();
    }
  }
  return lv_tensor(lower_op(c->L, k, &x, 1, &a, NULL, c->loc));
}

static LVal variance(Call *c) {
  /* var(x) = mean((x - mean(x))^2), biased, over the same axes */
  LVal m = reduce(c, OP_REDUCE_MEAN);
  if (lv_is_error(m))
    return m;
  Attrs a = m.v->def->attrs;
  Value *x = m.v->def->operands[0];
  Value *mk = m.v;
  if (!a.reduce.keepdims) {
    Attrs k = a;
    k.reduce.keepdims = true;
    mk = lower_op(c->L, OP_REDUCE_MEAN, &x, 1, &k, NULL, c->loc);
  }
  Value *dlt = mk ? binary(c, OP_SUB, x, mk) : NULL;
  Value *sq = dlt ? binary(c, OP_MUL, dlt, dlt) : NULL;
  if (!sq)
    return lv_error();
  return lv_tensor(lower_op(c->L, OP_REDUCE_MEAN, &sq, 1, &a, NULL, c->loc));
}

/* ---- shapes -----------------------------------------------------------------
 */
static LVal reshape(Call *c) {
  if (!want_args(c, 2, 2, "reshape(x, [dims])"))
    return lv_error();
  Value *x = tensor_arg(c, 0);
  Type t;
  if (!x || !dim_list(c, c->args[1], c->argnodes[1], &t.shape))
    return lv_error();
  t.dtype = x->type.dtype;
  int infer = -1;
  Dim known = dim_const(1);
  for (int i = 0; i < t.shape.rank; i++) {
    int64_t v;
    if (dim_is_const(t.shape.dims[i], &v) && v == -1) {
      if (infer >= 0) {
        diag_error(c->L->d, c->argnodes[1]->loc,
                   "only one dimension of a reshape can be -1");
        return lv_error();
      }
      infer = i;
    } else if (!dim_mul(known, t.shape.dims[i], &known)) {
      diag_error(c->L->d, c->argnodes[1]->loc, "shape expression too complex");
      return lv_error();
    }
  }
  if (infer >= 0) {
    Dim total = shape_numel(&x->type.shape);
    if (!dim_div_exact(total, known, &t.shape.dims[infer])) {
      char a[256], b[128];
      shape_print(a, sizeof a, &x->type.shape, c->L->m);
      dim_print(b, sizeof b, known, c->L->m);
      diag_error(c->L->d, c->argnodes[1]->loc,
                 "cannot reshape %s: its size is not a multiple of %s", a, b);
      return lv_error();
    }
  }
  return lv_tensor(lower_op(c->L, OP_RESHAPE, &x, 1, NULL, &t, c->loc));
}

static LVal permute_axes(Call *c, Value *x, const int *perm) {
  Attrs a;
  memset(&a, 0, sizeof a);
  memcpy(a.perm.perm, perm, sizeof(int) * MAX_RANK);
  return lv_tensor(lower_op(c->L, OP_PERMUTE, &x, 1, &a, NULL, c->loc));
}

static LVal transpose(Call *c) {
  if (!want_args(c, 1, 3, "transpose(x, axis0, axis1)"))
    return lv_error();
  Value *x = tensor_arg(c, 0);
  if (!x)
    return lv_error();
  int rank = x->type.shape.rank;
  int64_t a0 = -2, a1 = -1;
  if (c->nargs == 2) {
    diag_error(c->L->d, c->node->loc, "transpose takes two axes or none");
    return lv_error();
  }
  if (c->nargs == 3 && (!const_int(c, c->args[1], c->argnodes[1], &a0) ||
                        !const_int(c, c->args[2], c->argnodes[2], &a1)))
    return lv_error();
  int n0, n1;
  if (!normalize_axis(c, a0, rank, c->nargs > 1 ? c->argnodes[1] : NULL, &n0) ||
      !normalize_axis(c, a1, rank, c->nargs > 2 ? c->argnodes[2] : NULL, &n1))
    return lv_error();
  int perm[MAX_RANK] = {0};
  for (int i = 0; i < rank; i++)
    perm[i] = i;
  perm[n0] = n1;
  perm[n1] = n0;
  return permute_axes(c, x, perm);
}

static LVal permute(Call *c) {
  if (!want_args(c, 2, 2, "permute(x, [axes])"))
    return lv_error();
  Value *x = tensor_arg(c, 0);
  if (!x)
    return lv_error();
  LVal p = c->args[1];
  int rank = x->type.shape.rank;
  if ((p.kind != LV_LIST && p.kind != LV_TUPLE) || p.nitems != rank) {
    diag_error(c->L->d, c->argnodes[1]->loc, "permute needs a list of %d axes",
               rank);
    return lv_error();
  }
  int perm[MAX_RANK] = {0};
  unsigned seen = 0;
  for (int i = 0; i < rank; i++) {
    int64_t ax;
    int nx;
    if (!const_int(c, p.items[i], c->argnodes[1], &ax) ||
        !normalize_axis(c, ax, rank, c->argnodes[1], &nx))
      return lv_error();
    if (seen & (1u << nx)) {
      diag_error(c->L->d, c->argnodes[1]->loc, "axis %d repeats in permute",
                 nx);
      return lv_error();
    }
    seen |= 1u << nx;
    perm[i] = nx;
  }
  return permute_axes(c, x, perm);
}

static LVal concat(Call *c) {
  if (!want_args(c, 1, 2, "concat([a, b, ...], axis=0)"))
    return lv_error();
  LVal l = c->args[0];
  if ((l.kind != LV_LIST && l.kind != LV_TUPLE) || l.nitems == 0) {
    diag_error(c->L->d, c->argnodes[0]->loc,
               "concat needs a non-empty list of tensors");
    return lv_error();
  }
  Value **ops =
      arena_alloc(&c->L->m->arena, sizeof(Value *) * (size_t)l.nitems);
  for (int i = 0; i < l.nitems; i++) {
    if (l.items[i].kind != LV_TENSOR) {
      diag_error(c->L->d, c->argnodes[0]->loc,
                 "item %d of concat is %s, not a tensor", i,
                 lv_kind_name(l.items[i].kind));
      return lv_error();
    }
    ops[i] = l.items[i].v;
  }
  LVal *axv = c->nargs > 1 ? &c->args[1] : kwarg(c, "axis");
  int64_t ax = 0;
  int nx;
  if (axv && !const_int(c, *axv, NULL, &ax))
    return lv_error();
  if (!normalize_axis(c, ax, ops[0]->type.shape.rank, NULL, &nx))
    return lv_error();
  Attrs a;
  memset(&a, 0, sizeof a);
  a.axis.axis = nx;
  return lv_tensor(lower_op(c->L, OP_CONCAT, ops, l.nitems, &a, NULL, c->loc));
}

static LVal split(Call *c) {
  if (!want_args(c, 2, 3, "split(x, parts, axis=-1)"))
    return lv_error();
  Value *x = tensor_arg(c, 0);
  int64_t parts, ax = -1;
  if (!x || !const_int(c, c->args[1], c->argnodes[1], &parts))
    return lv_error();
  LVal *axv = c->nargs > 2 ? &c->args[2] : kwarg(c, "axis");
  int nx;
  if ((axv && !const_int(c, *axv, NULL, &ax)) ||
      !normalize_axis(c, ax, x->type.shape.rank, NULL, &nx))
    return lv_error();
  Dim each;
  if (parts <= 0 ||
      !dim_div_exact(x->type.shape.dims[nx], dim_const(parts), &each)) {
    char b[128];
    dim_print(b, sizeof b, x->type.shape.dims[nx], c->L->m);
    diag_error(c->L->d, c->node->loc,
               "cannot split axis %d of size %s into %lld equal parts", nx, b,
               (long long)parts);
    return lv_error();
  }
  LVal t = lv_void();
  t.kind = LV_TUPLE;
  t.nitems = (int)parts;
  t.items = arena_alloc(&c->L->m->arena, sizeof(LVal) * (size_t)parts);
  for (int64_t p = 0; p < parts; p++) {
    Attrs a;
    memset(&a, 0, sizeof a);
    for (int i = 0; i < x->type.shape.rank; i++) {
      a.slice.start[i] = dim_const(0);
      a.slice.step[i] = 1;
    }
    Dim start;
    if (!dim_mul(each, dim_const(p), &start)) {
      diag_error(c->L->d, c->node->loc, "shape expression too complex");
      return lv_error();
    }
    a.slice.start[nx] = start;
    Type h = x->type;
    h.shape.dims[nx] = each;
    t.items[p] = lv_tensor(lower_op(c->L, OP_SLICE, &x, 1, &a, &h, c->loc));
    if (lv_is_error(t.items[p]))
      return lv_error();
  }
  return t;
}

/* dtype from a dtype= keyword (a builtin name like f32) */
static bool dtype_kw(Call *c, DType *out) {
  LVal *v = kwarg(c, "dtype");
  if (!v)
    return true;
  if (v->kind == LV_BUILTIN && lower_dtype(v->s, out))
    return true;
  diag_error(c->L->d, c->node->loc,
             "dtype= must be f32, f64, i32, i64 or bool");
  return false;
}

static LVal fill(Call *c, double value, bool have_value, DType dt) {
  Shape s;
  if (!dim_list(c, c->args[0], c->argnodes[0], &s))
    return lv_error();
  if (!have_value) {
    bool ok;
    value = number_of(c->args[1], &ok);
    if (!ok) {
      diag_error(c->L->d, c->argnodes[1]->loc, "full needs a number");
      return lv_error();
    }
    if (c->args[1].kind == LV_INT && dt == DT_F32 && !kwarg(c, "dtype"))
      dt = DT_F32;
  }
  if (!dtype_kw(c, &dt))
    return lv_error();
  Value *k = ir_const_scalar(c->L->m, c->L->body, dt, value, c->loc);
  Type t = {dt, s};
  if (s.rank == 0)
    return lv_tensor(k);
  Type one = t;
  for (int i = 0; i < one.shape.rank; i++)
    one.shape.dims[i] = dim_const(1);
  Value *r = lower_op(c->L, OP_RESHAPE, &k, 1, NULL, &one, c->loc);
  if (!r)
    return lv_error();
  return lv_tensor(lower_op(c->L, OP_BROADCAST, &r, 1, NULL, &t, c->loc));
}

static LVal arange(Call *c) {
  if (!want_args(c, 1, 1, "arange(n, dtype=i32)"))
    return lv_error();
  if (c->args[0].kind != LV_INT) {
    diag_error(c->L->d, c->argnodes[0]->loc,
               "arange needs an integer length, not %s",
               lv_kind_name(c->args[0].kind));
    return lv_error();
  }
  DType dt = DT_I32;
  if (!dtype_kw(c, &dt))
    return lv_error();
  Type t;
  t.dtype = dt;
  t.shape.rank = 1;
  t.shape.dims[0] = c->args[0].dim;
  Attrs a;
  memset(&a, 0, sizeof a);
  return lv_tensor(lower_op(c->L, OP_IOTA, NULL, 0, &a, &t, c->loc));
}

static LVal compile_time_unary(Call *c, const char *name, double x) {
  static const struct {
    const char *name;
    double (*f)(double);
  } fns[] = {{"exp", exp},     {"log", log},     {"sqrt", sqrt},
             {"tanh", tanh},   {"erf", erf},     {"abs", fabs},
             {"sin", sin},     {"cos", cos},     {"expm1", expm1},
             {"log1p", log1p}, {"floor", floor}, {"ceil", ceil}};
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
    if (strcmp(fns[i].name, name) == 0)
      return lv_float(fns[i].f(x));
  if (strcmp(name, "sigmoid") == 0)
    return lv_float(1.0 / (1.0 + exp(-x)));
  if (strcmp(name, "sign") == 0)
    return lv_float((x > 0) - (x < 0));
  diag_error(c->L->d, c->node->loc, "'%s' needs a tensor", name);
  return lv_error();
}

static LVal dispatch(Call *c) {
  const char *name = c->name;
  for (size_t i = 0; i < sizeof unary_ops / sizeof unary_ops[0]; i++)
    if (strcmp(name, unary_ops[i].name) == 0) {
      if (!want_args(c, 1, 1, "f(x)"))
        return lv_error();
      bool ok;
      double num = number_of(c->args[0], &ok);
      if (ok)
        return compile_time_unary(c, name, num);
      Value *x = tensor_arg(c, 0);
      if (x && (ir_op_info[unary_ops[i].op].flags & OPF_FLOAT))
        x = cast(c, x, dtype_is_float(x->type.dtype) ? x->type.dtype : DT_F32);
      return lv_tensor(x ? unary(c, unary_ops[i].op, x) : NULL);
    }
  for (size_t i = 0; i < sizeof reduce_ops / sizeof reduce_ops[0]; i++)
    if (strcmp(name, reduce_ops[i].name) == 0)
      return reduce(c, reduce_ops[i].op);
  DType dt;
  if (lower_dtype(name, &dt)) {
    if (!want_args(c, 1, 1, "dtype(x)"))
      return lv_error();
    return lv_tensor(cast(c, tensor_arg(c, 0), dt));
  }
  if (strcmp(name, "rsqrt") == 0 || strcmp(name, "relu") == 0) {
    if (!want_args(c, 1, 1, "f(x)"))
      return lv_error();
    Value *x = tensor_arg(c, 0);
    if (!x)
      return lv_error();
    if (name[0] == 'r' && name[1] == 's') {
      x = cast(c, x, dtype_is_float(x->type.dtype) ? x->type.dtype : DT_F32);
      Value *s = x ? unary(c, OP_SQRT, x) : NULL;
      Value *one =
          s ? ir_const_scalar(c->L->m, c->L->body, s->type.dtype, 1.0, c->loc)
            : NULL;
      return lv_tensor(one ? binary(c, OP_DIV, one, s) : NULL);
    }
    Value *zero =
        ir_const_scalar(c->L->m, c->L->body, x->type.dtype, 0.0, c->loc);
    return lv_tensor(binary(c, OP_MAXIMUM, x, zero));
  }
  if (strcmp(name, "maximum") == 0 || strcmp(name, "minimum") == 0) {
    Value *ops[2];
    if (!want_args(c, 2, 2, "maximum(a, b)") || !operands_like(c, 0, 2, ops))
      return lv_error();
    return lv_tensor(
        binary(c, name[1] == 'a' ? OP_MAXIMUM : OP_MINIMUM, ops[0], ops[1]));
  }
  if (strcmp(name, "where") == 0) {
    if (!want_args(c, 3, 3, "where(cond, a, b)"))
      return lv_error();
    Value *cond = tensor_arg(c, 0);
    Value *ops[3];
    if (!cond || !operands_like(c, 1, 2, ops + 1))
      return lv_error();
    ops[0] = cast(c, cond, DT_BOOL);
    return lv_tensor(lower_op(c->L, OP_SELECT, ops, 3, NULL, NULL, c->loc));
  }
  if (strcmp(name, "var") == 0)
    return variance(c);
  if (strcmp(name, "softmax") == 0 || strcmp(name, "log_softmax") == 0) {
    if (!want_args(c, 1, 2, "softmax(x, axis=-1)"))
      return lv_error();
    Value *x = tensor_arg(c, 0);
    if (!x)
      return lv_error();
    x = cast(c, x, dtype_is_float(x->type.dtype) ? x->type.dtype : DT_F32);
    LVal *axv = c->nargs > 1 ? &c->args[1] : kwarg(c, "axis");
    int64_t ax = -1;
    int nx;
    if ((axv && !const_int(c, *axv, NULL, &ax)) ||
        !normalize_axis(c, ax, x->type.shape.rank, NULL, &nx))
      return lv_error();
    Attrs a;
    memset(&a, 0, sizeof a);
    a.axis.axis = nx;
    return lv_tensor(lower_op(c->L,
                              name[0] == 's' ? OP_SOFTMAX : OP_LOG_SOFTMAX, &x,
                              1, &a, NULL, c->loc));
  }
  if (strcmp(name, "reshape") == 0)
    return reshape(c);
  if (strcmp(name, "transpose") == 0)
    return transpose(c);
  if (strcmp(name, "permute") == 0)
    return permute(c);
  if (strcmp(name, "concat") == 0)
    return concat(c);
  if (strcmp(name, "split") == 0)
    return split(c);
  if (strcmp(name, "broadcast_to") == 0) {
    if (!want_args(c, 2, 2, "broadcast_to(x, [dims])"))
      return lv_error();
    Value *x = tensor_arg(c, 0);
    Type t;
    if (!x || !dim_list(c, c->args[1], c->argnodes[1], &t.shape))
      return lv_error();
    t.dtype = x->type.dtype;
    if (t.shape.rank > x->type.shape.rank) {
      /* align trailing axes, numpy style */
      Type r = x->type;
      int pad = t.shape.rank - x->type.shape.rank;
      r.shape.rank = t.shape.rank;
      for (int i = t.shape.rank - 1; i >= 0; i--)
        r.shape.dims[i] = i >= pad ? x->type.shape.dims[i - pad] : dim_const(1);
      x = lower_op(c->L, OP_RESHAPE, &x, 1, NULL, &r, c->loc);
      if (!x)
        return lv_error();
    }
    return lv_tensor(lower_op(c->L, OP_BROADCAST, &x, 1, NULL, &t, c->loc));
  }
  if (strcmp(name, "arange") == 0)
    return arange(c);
  if (strcmp(name, "zeros") == 0 || strcmp(name, "ones") == 0) {
    if (!want_args(c, 1, 1, "zeros([dims], dtype=f32)"))
      return lv_error();
    return fill(c, name[0] == 'o' ? 1.0 : 0.0, true, DT_F32);
  }
  if (strcmp(name, "full") == 0) {
    if (!want_args(c, 2, 2, "full([dims], value, dtype=f32)"))
      return lv_error();
    return fill(c, 0, false, c->args[1].kind == LV_BOOL ? DT_BOOL : DT_F32);
  }
  diag_error(c->L->d, c->node->loc, "unknown builtin '%s'", name);
  return lv_error();
}

LVal lower_call_builtin(Lowerer *L, const char *name, const AstNode *call,
                        LVal *args, const AstNode **argnodes, int nargs,
                        const char **kwnames, LVal *kwargs,
                        const AstNode **kwnodes, int nkw) {
  Call c = {L,      name,     call,  lower_loc(L, call),
            args,   argnodes, nargs, kwnames,
            kwargs, kwnodes,  nkw,   NULL};
  c.kwused = arena_alloc(&L->m->arena, (size_t)nkw + 1);
  if (strcmp(name, "scan") == 0) /* takes a function: lower_scan.c */
    return lower_scan(L, call, args, argnodes, nargs, kwnames, kwargs, kwnodes,
                      nkw);
  if (strcmp(name, "grad") == 0) /* takes a function: lower_grad.c */
    return lower_grad(L, call, args, argnodes, nargs, kwnames, kwargs, kwnodes,
                      nkw);
  if (strcmp(name, "minimize") == 0) /* lower_train.c */
    return lower_minimize(L, call, args, argnodes, nargs, kwnames, kwargs,
                          kwnodes, nkw);
  if (!strcmp(name, "assign") || !strcmp(name, "stop_gradient"))
    return lower_train_builtin(L, name, call, args, argnodes, nargs, nkw);
  if (lower_is_decode_builtin(name)) /* lower_decode.c */
    return lower_decode_builtin(L, name, call, args, argnodes, nargs, kwnames,
                                kwargs, kwnodes, nkw);
  for (int i = 0; i < nargs; i++)
    if (args[i].kind == LV_TENSOR || args[i].kind == LV_INT ||
        args[i].kind == LV_FLOAT || args[i].kind == LV_BOOL ||
        args[i].kind == LV_LIST || args[i].kind == LV_TUPLE ||
        args[i].kind == LV_BUILTIN)
      continue;
    else {
      diag_error(L->d, argnodes[i]->loc, "'%s' cannot take %s", name,
                 lv_kind_name(args[i].kind));
      return lv_error();
    }
  LVal r = dispatch(&c);
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
