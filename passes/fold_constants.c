/* pass_fold_constants: replaces an op whose operands are all CONST, and
 * whose result has a constant shape of at most FOLD_MAX_ELEMENTS elements,
 * by a CONST holding exactly the bits the runtime would compute.
 *
 * Invariant: folding never changes a result bit. Arithmetic runs in the
 * op's dtype as the emitted C does: f32 with runtime/mc_vmath.h for exp,
 * expm1, log, log1p, tanh, sigmoid and erf and the <math.h> float functions
 * for the rest (sqrtf, powf, sinf, ...), f64 with the <math.h> double ones,
 * integers with two's-complement wrap. Only all-constant ops fold: no
 * reassociation (x*c1*c2 stays), no identities (x+0 stays: it turns -0 into
 * +0). Where the runtime's result is not pinned down, the op is left alone:
 * float reductions, softmax and matmul (summation order), mod and integer div
 * (rounding convention), maximum/minimum/sign on NaN or signed zeros,
 * out-of-range float->int casts and gather indices. Data movement (reshape,
 * broadcast, slice, permute, concat, gather) of constants folds for every
 * dtype. The decoding ops (dynamic slices, take_along_axis, topk, cumsum,
 * random_uniform, categorical) never fold.
 *
 * Example:
 *   %0 = const [2] : f32[]
 *   %1 = const [0.5, 1] : f32[2]
 *   %2 = mul %0, %1 : f32[2]        ->   %2 = const [1, 2] : f32[2]
 *   %3 = mul %x, %1 : f32[2]        ->   unchanged (x is not constant)
 */
#include "passes.h"

#include "mc_vmath.h" /* the generated code's f32 exp, tanh, ... */

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { FOLD_MAX_ELEMENTS = 4096 };

typedef union Scalar {
  float f;
  double d;
  int64_t i; /* i32 and i64 */
  bool b;
} Scalar;

static Scalar load(DType t, const void *p, size_t i) {
  Scalar s;
  memset(&s, 0, sizeof s);
  switch (t) {
  case DT_F32:
    s.f = ((const float *)p)[i];
    break;
  case DT_F64:
    s.d = ((const double *)p)[i];
    break;
  case DT_I32:
    s.i = ((const int32_t *)p)[i];
    break;
  case DT_I64:
    s.i = ((const int64_t *)p)[i];
    break;
  case DT_BOOL:
    s.b = ((const uint8_t *)p)[i] != 0;
    break;
  case DT_F16:
  case DT_BF16:
  case DT_COUNT:
    break;
  }
  return s;
}

static void store(DType t, void *p, size_t i, Scalar s) {
  switch (t) {
  case DT_F32:
    ((float *)p)[i] = s.f;
    return;
  case DT_F64:
    ((double *)p)[i] = s.d;
    return;
  case DT_I32:
    ((int32_t *)p)[i] = (int32_t)(uint32_t)(uint64_t)s.i; /* wraps */
    return;
  case DT_I64:
    ((int64_t *)p)[i] = s.i;
    return;
  case DT_BOOL:
    ((uint8_t *)p)[i] = s.b;
    return;
  case DT_F16:
  case DT_BF16:
  case DT_COUNT:
    return;
  }
}

/* ---- elementwise arithmetic --------------------------------------------- */

/* C conversions, as the emitted code casts; false where C is undefined. */
static bool cast(DType from, DType to, Scalar x, Scalar *r) {
  bool is_int = from == DT_I32 || from == DT_I64;
  double v = from == DT_F32   ? x.f
             : from == DT_F64 ? x.d
             : is_int         ? (double)x.i
                              : x.b; /* read the member that holds x */
  if (from == DT_F16 || from == DT_BF16 || from == DT_COUNT)
    return false;
  switch (to) {
  case DT_F32:
    r->f = is_int ? (float)x.i : from == DT_F32 ? x.f : (float)v;
    return true;
  case DT_F64:
    r->d = is_int ? (double)x.i : v;
    return true;
  case DT_I32:
  case DT_I64: {
    if (is_int) {
      r->i = x.i; /* store() wraps i64 -> i32 */
      return true;
    }
    double lo = to == DT_I32 ? -2147483649.0 : -9223372036854775808.0;
    double hi = to == DT_I32 ? 2147483648.0 : 9223372036854775808.0;
    if (isnan(v) || v <= lo || v >= hi)
      return false;
    r->i = (int64_t)v;
    return true;
  }
  case DT_BOOL:
    r->b = is_int ? x.i != 0 : v != 0;
    return true;
  case DT_F16:
  case DT_BF16:
  case DT_COUNT:
    return false;
  }
  return false;
}

/* maximum/minimum/sign: only where every implementation agrees. */
static bool no_nan_or_zero(double a, double b) {
  return !isnan(a) && !isnan(b) && !(a == 0 && b == 0);
}

/* Float function of one operand, in the operand's precision. */
#define FN1(ff, fd)                                                            \
  do {                                                                         \
    if (f32)                                                                   \
      r->f = ff(x[0].f);                                                       \
    else if (f64)                                                              \
      r->d = fd(x[0].d);                                                       \
    else                                                                       \
      return false;                                                            \
    return true;                                                               \
  } while (0)
/* + - * on floats; integers wrap in uint64 (store() narrows to i32). */
#define ARITH(op)                                                              \
  do {                                                                         \
    if (f32)                                                                   \
      r->f = x[0].f op x[1].f;                                                 \
    else if (f64)                                                              \
      r->d = x[0].d op x[1].d;                                                 \
    else if (in)                                                               \
      r->i = (int64_t)((uint64_t)x[0].i op(uint64_t) x[1].i);                  \
    else                                                                       \
      return false;                                                            \
    return true;                                                               \
  } while (0)
#define CMP(op)                                                                \
  do {                                                                         \
    if (f32)                                                                   \
      r->b = x[0].f op x[1].f;                                                 \
    else if (f64)                                                              \
      r->b = x[0].d op x[1].d;                                                 \
    else if (in)                                                               \
      r->b = x[0].i op x[1].i;                                                 \
    else                                                                       \
      r->b = x[0].b op x[1].b;                                                 \
    return true;                                                               \
  } while (0)
/* maximum (op >) / minimum (op <) as `a op b ? a : b` */
#define PICK(op)                                                               \
  do {                                                                         \
    if (f32 && no_nan_or_zero(x[0].f, x[1].f))                                 \
      r->f = x[0].f op x[1].f ? x[0].f : x[1].f;                               \
    else if (f64 && no_nan_or_zero(x[0].d, x[1].d))                            \
      r->d = x[0].d op x[1].d ? x[0].d : x[1].d;                               \
    else if (in)                                                               \
      r->i = x[0].i op x[1].i ? x[0].i : x[1].i;                               \
    else                                                                       \
      return false;                                                            \
    return true;                                                               \
  } while (0)

static double sigmoid(double v) {
  return 1.0 / (1.0 + exp(-v));
}

/* One result element of an elementwise op from its operand elements (x has
 * three entries, unused ones zero). False: leave the op to the runtime. */
static bool eval_elem(const Op *op, const Scalar *x, Scalar *r) {
  DType t = op->operands[0]->type.dtype;
  bool f32 = t == DT_F32, f64 = t == DT_F64;
  bool in = t == DT_I32 || t == DT_I64;
  memset(r, 0, sizeof *r);
  switch (op->kind) {
  case OP_NEG:
    if (in) {
      r->i = (int64_t)(0 - (uint64_t)x[0].i);
      return true;
    }
    FN1(-, -);
  case OP_ABS:
    if (in) {
      r->i = x[0].i < 0 ? (int64_t)(0 - (uint64_t)x[0].i) : x[0].i;
      return true;
    }
    FN1(fabsf, fabs);
  case OP_SIGN:
    if (in)
      r->i = (x[0].i > 0) - (x[0].i < 0);
    else if (f32 && no_nan_or_zero(x[0].f, 1))
      r->f = x[0].f > 0 ? 1.0f : -1.0f;
    else if (f64 && no_nan_or_zero(x[0].d, 1))
      r->d = x[0].d > 0 ? 1.0 : -1.0;
    else
      return false;
    return true;
  case OP_EXP:
    FN1(mc_expf, exp);
  case OP_EXPM1:
    FN1(mc_expm1f, expm1);
  case OP_LOG:
    FN1(mc_logf, log);
  case OP_LOG1P:
    FN1(mc_log1pf, log1p);
  case OP_SQRT:
    FN1(sqrtf, sqrt);
  case OP_TANH:
    FN1(mc_tanhf, tanh);
  case OP_SIGMOID:
    FN1(mc_sigmoidf, sigmoid);
  case OP_ERF:
    FN1(mc_erff, erf);
  case OP_SIN:
    FN1(sinf, sin);
  case OP_COS:
    FN1(cosf, cos);
  case OP_FLOOR:
    FN1(floorf, floor);
  case OP_CEIL:
    FN1(ceilf, ceil);
  case OP_NOT:
    r->b = !x[0].b;
    return true;
  case OP_CAST:
    return cast(t, op->results[0]->type.dtype, x[0], r);
  case OP_ADD:
    ARITH(+);
  case OP_SUB:
    ARITH(-);
  case OP_MUL:
    ARITH(*);
  case OP_DIV:
    if (in) /* truncating or flooring: left to the runtime */
      return false;
    ARITH(/);
  case OP_POW:
    if (f32)
      r->f = powf(x[0].f, x[1].f);
    else if (f64)
      r->d = pow(x[0].d, x[1].d);
    else
      return false;
    return true;
  case OP_MAXIMUM:
    PICK(>);
  case OP_MINIMUM:
    PICK(<);
  case OP_LT:
    CMP(<);
  case OP_LE:
    CMP(<=);
  case OP_GT:
    CMP(>);
  case OP_GE:
    CMP(>=);
  case OP_EQ:
    CMP(==);
  case OP_NE:
    CMP(!=);
  case OP_AND:
    r->b = x[0].b && x[1].b;
    return true;
  case OP_OR:
    r->b = x[0].b || x[1].b;
    return true;
  case OP_SELECT:
    *r = x[0].b ? x[1] : x[2];
    return true;
  case OP_MOD: /* C fmod or Python-style: left to the runtime */
  case OP_DYNAMIC_SLICE:
  case OP_DYNAMIC_UPDATE_SLICE:
  case OP_TAKE_ALONG_AXIS:
  case OP_TOPK:
  case OP_CUMSUM:
  case OP_RANDOM_UNIFORM:
  case OP_CATEGORICAL:
  case OP_CONST:
  case OP_PARAM:
  case OP_IOTA:
  case OP_MATMUL:
  case OP_REDUCE_SUM:
  case OP_REDUCE_MEAN:
  case OP_REDUCE_MAX:
  case OP_REDUCE_MIN:
  case OP_LOGSUMEXP:
  case OP_ARGMAX:
  case OP_ARGMIN:
  case OP_SOFTMAX:
  case OP_LOG_SOFTMAX:
  case OP_GATHER:
  case OP_SCATTER_ADD:
  case OP_SLICE:
  case OP_CONCAT:
  case OP_RESHAPE:
  case OP_PERMUTE:
  case OP_BROADCAST:
  case OP_SCAN:
  case OP_YIELD:
  case OP_FUSED:
  case OP_GRAD:
  case OP_STOP_GRADIENT:
  case OP_COUNT:
    return false;
  }
  return false;
}

/* ---- indexing ------------------------------------------------------------ */

typedef struct Dims {
  int rank;
  int64_t d[MAX_RANK];
} Dims;

static bool const_dims(const Shape *s, Dims *out) {
  out->rank = s->rank;
  for (int i = 0; i < s->rank; i++)
    if (!dim_is_const(s->dims[i], &out->d[i]) || out->d[i] < 0)
      return false;
  return true;
}

static void unravel(int64_t lin, const Dims *s, int64_t *idx) {
  for (int i = s->rank - 1; i >= 0; i--) {
    idx[i] = s->d[i] ? lin % s->d[i] : 0;
    lin = s->d[i] ? lin / s->d[i] : 0;
  }
}

static int64_t ravel(const int64_t *idx, const Dims *s) {
  int64_t lin = 0;
  for (int i = 0; i < s->rank; i++)
    lin = lin * s->d[i] + idx[i];
  return lin;
}

/* Offset in operand `o` (right-aligned, numpy broadcasting) of the result
 * element at multi-index idx of a rank-`rank` result. */
static int64_t bcast_offset(const int64_t *idx, int rank, const Dims *o) {
  int64_t oi[MAX_RANK];
  for (int j = 0; j < o->rank; j++)
    oi[j] = o->d[j] == 1 ? 0 : idx[rank - o->rank + j];
  return ravel(oi, o);
}

/* ---- per-op evaluation ----------------------------------------------------
 */

typedef struct Fold {
  const Op *op;
  Dims out;        /* result dims */
  int64_t n;       /* result elements */
  Dims in[3];      /* dims of the first operands */
  const void *src; /* data of operand 0 */
  void *dst;
  size_t es; /* element size of the result */
} Fold;

static const void *cdata(const Value *v) {
  return v->def->attrs.cst.data;
}

static bool fold_elementwise(Fold *f) {
  const Op *op = f->op;
  if (op->noperands > 3)
    return false;
  for (int k = 0; k < op->noperands; k++) {
    DType t = op->operands[k]->type.dtype;
    if (t == DT_F16 || t == DT_BF16)
      return false;
  }
  DType rt = op->results[0]->type.dtype;
  int64_t idx[MAX_RANK];
  for (int64_t i = 0; i < f->n; i++) {
    unravel(i, &f->out, idx);
    Scalar x[3], r;
    memset(x, 0, sizeof x);
    for (int k = 0; k < op->noperands; k++) {
      const Value *v = op->operands[k];
      x[k] = load(v->type.dtype, cdata(v),
                  (size_t)bcast_offset(idx, f->out.rank, &f->in[k]));
    }
    if (!eval_elem(op, x, &r))
      return false;
    store(rt, f->dst, (size_t)i, r);
  }
  return true;
}

static void copy_elem(Fold *f, const void *src, int64_t from, int64_t to) {
  memcpy((char *)f->dst + to * f->es, (const char *)src + from * f->es, f->es);
}

static bool fold_movement(Fold *f) {
  const Op *op = f->op;
  const Attrs *a = &op->attrs;
  int64_t idx[MAX_RANK], src[MAX_RANK];
  for (int64_t i = 0; i < f->n; i++) {
    unravel(i, &f->out, idx);
    int64_t from = i;
    const void *data = f->src;
    OpKind k = op->kind; /* evaluate() sends only movement ops here */
    if (k == OP_BROADCAST) {
      from = bcast_offset(idx, f->out.rank, &f->in[0]);
    } else if (k == OP_PERMUTE) {
      for (int j = 0; j < f->out.rank; j++)
        src[a->perm.perm[j]] = idx[j];
      from = ravel(src, &f->in[0]);
    } else if (k == OP_SLICE) {
      for (int j = 0; j < f->out.rank; j++) {
        int64_t start;
        if (!dim_is_const(a->slice.start[j], &start))
          return false;
        src[j] = start + idx[j] * a->slice.step[j];
        if (src[j] < 0 || src[j] >= f->in[0].d[j])
          return false;
      }
      from = ravel(src, &f->in[0]);
    } else if (k == OP_CONCAT) {
      int ax = a->axis.axis, j = 0;
      int64_t pos = idx[ax];
      Dims in;
      for (;; j++) {
        if (!const_dims(&op->operands[j]->type.shape, &in))
          return false;
        if (pos < in.d[ax])
          break;
        pos -= in.d[ax];
      }
      memcpy(src, idx, sizeof src);
      src[ax] = pos;
      data = cdata(op->operands[j]);
      from = ravel(src, &in);
    } else if (k == OP_GATHER) {
      /* result = table[:axis] ++ indices ++ table[axis+1:] */
      int ax = a->axis.axis, ir = f->in[1].rank;
      const Value *ixv = op->operands[1];
      int64_t ii = ravel(idx + ax, &f->in[1]);
      int64_t ix = load(ixv->type.dtype, cdata(ixv), (size_t)ii).i;
      if (ix < 0 || ix >= f->in[0].d[ax])
        return false; /* the runtime reports this error */
      for (int j = 0; j < ax; j++)
        src[j] = idx[j];
      src[ax] = ix;
      for (int j = ax + 1; j < f->in[0].rank; j++)
        src[j] = idx[j - 1 + ir];
      from = ravel(src, &f->in[0]);
    } else if (k != OP_RESHAPE) {
      return false;
    }
    copy_elem(f, data, from, i);
  }
  return true;
}

/* Integer reductions (exact in any order) and argmax/argmin (first index of
 * the extreme value; floats only without NaN). */
static bool fold_reduce(Fold *f) {
  const Op *op = f->op;
  DType t = op->operands[0]->type.dtype;
  bool arg = op->kind == OP_ARGMAX || op->kind == OP_ARGMIN;
  bool is_int = t == DT_I32 || t == DT_I64;
  if (!is_int && !(arg && (t == DT_F32 || t == DT_F64)))
    return false;
  uint32_t axes = op->attrs.reduce.axes;
  Dims in = f->in[0];
  int64_t total = 1;
  for (int k = 0; k < in.rank; k++)
    total *= in.d[k];
  Scalar *best = calloc((size_t)f->n + 1, sizeof(Scalar));
  int64_t *count = calloc((size_t)f->n + 1, sizeof(int64_t));
  int64_t *where = calloc((size_t)f->n + 1, sizeof(int64_t));
  if (!best || !count || !where)
    abort();
  bool ok = true;
  int64_t idx[MAX_RANK], oi[MAX_RANK];
  for (int64_t i = 0; ok && i < total; i++) {
    unravel(i, &in, idx);
    int r = 0, along = 0;
    for (int k = 0; k < in.rank; k++) {
      if (axes & (1u << k)) {
        along = (int)k;
        if (op->attrs.reduce.keepdims)
          oi[r++] = 0;
      } else {
        oi[r++] = idx[k];
      }
    }
    int64_t o = ravel(oi, &f->out);
    Scalar x = load(t, f->src, (size_t)i);
    double xv = t == DT_F32 ? x.f : t == DT_F64 ? x.d : 0;
    if (!is_int && isnan(xv)) {
      ok = false;
      break;
    }
    bool first = count[o]++ == 0, better;
    if (is_int)
      better = op->kind == OP_ARGMAX || op->kind == OP_REDUCE_MAX
                   ? x.i > best[o].i
                   : x.i < best[o].i;
    else
      better = op->kind == OP_ARGMAX ? xv > best[o].d : xv < best[o].d;
    if (op->kind == OP_REDUCE_SUM) {
      best[o].i = (int64_t)((uint64_t)best[o].i + (uint64_t)x.i);
    } else if (first || better) {
      if (is_int)
        best[o].i = x.i;
      else
        best[o].d = xv;
      where[o] = idx[along];
    }
  }
  if (op->kind == OP_REDUCE_MEAN || op->kind == OP_LOGSUMEXP)
    ok = false;
  for (int64_t o = 0; ok && o < f->n; o++) {
    if (count[o] == 0 && op->kind != OP_REDUCE_SUM)
      ok = false; /* empty max/argmax: the runtime decides */
    else if (arg)
      ((int32_t *)f->dst)[o] = (int32_t)where[o];
    else
      store(t, f->dst, (size_t)o, best[o]);
  }
  free(best);
  free(count);
  free(where);
  return ok;
}

static bool evaluate(Fold *f) {
  switch (f->op->kind) {
  case OP_NEG:
  case OP_ABS:
  case OP_SIGN:
  case OP_EXP:
  case OP_EXPM1:
  case OP_LOG:
  case OP_LOG1P:
  case OP_SQRT:
  case OP_TANH:
  case OP_SIGMOID:
  case OP_ERF:
  case OP_SIN:
  case OP_COS:
  case OP_FLOOR:
  case OP_CEIL:
  case OP_NOT:
  case OP_CAST:
  case OP_ADD:
  case OP_SUB:
  case OP_MUL:
  case OP_DIV:
  case OP_MOD:
  case OP_POW:
  case OP_MAXIMUM:
  case OP_MINIMUM:
  case OP_LT:
  case OP_LE:
  case OP_GT:
  case OP_GE:
  case OP_EQ:
  case OP_NE:
  case OP_AND:
  case OP_OR:
  case OP_SELECT:
    return fold_elementwise(f);
  case OP_RESHAPE:
  case OP_BROADCAST:
  case OP_PERMUTE:
  case OP_SLICE:
  case OP_CONCAT:
  case OP_GATHER:
    return fold_movement(f);
  case OP_REDUCE_SUM:
  case OP_REDUCE_MAX:
  case OP_REDUCE_MIN:
  case OP_ARGMAX:
  case OP_ARGMIN:
  case OP_REDUCE_MEAN:
  case OP_LOGSUMEXP:
    return fold_reduce(f);
  case OP_CONST: /* leaves stay as they are */
  case OP_PARAM:
  case OP_IOTA:
  case OP_MATMUL: /* float summation order is the runtime's */
  case OP_SCATTER_ADD:
  case OP_SOFTMAX:
  case OP_LOG_SOFTMAX:
  /* decoding ops: their operands are run-time values in every real use
   * (loop indices, draws), and a random draw is never evaluated here */
  case OP_DYNAMIC_SLICE:
  case OP_DYNAMIC_UPDATE_SLICE:
  case OP_TAKE_ALONG_AXIS:
  case OP_TOPK:
  case OP_CUMSUM:
  case OP_RANDOM_UNIFORM:
  case OP_CATEGORICAL:
  case OP_SCAN: /* a loop: never folded */
  case OP_YIELD:
  case OP_FUSED: /* made after folding; its region's ops fold alone */
  case OP_GRAD:  /* replaced by autodiff before folding runs */
  case OP_STOP_GRADIENT:
  case OP_COUNT:
    return false;
  }
  return false;
}

/* Folds op if it qualifies; returns the new CONST result or NULL. */
static Value *try_fold(Module *m, Op *op) {
  if (op->nresults != 1 || op->nregions != 0 || op->noperands == 0)
    return NULL;
  Fold f;
  memset(&f, 0, sizeof f);
  f.op = op;
  const Type *rt = &op->results[0]->type;
  if (!const_dims(&rt->shape, &f.out) || !shape_const_numel(&rt->shape, &f.n) ||
      f.n > FOLD_MAX_ELEMENTS)
    return NULL;
  for (int k = 0; k < op->noperands; k++) {
    const Value *v = op->operands[k];
    if (!v->def || v->def->kind != OP_CONST || !v->def->attrs.cst.data)
      return NULL;
    if (k < 3 && !const_dims(&v->type.shape, &f.in[k]))
      return NULL;
  }
  f.src = cdata(op->operands[0]);
  f.es = dtype_size(rt->dtype);
  f.dst = arena_alloc(&m->arena, (size_t)f.n * f.es + 1);
  if (!evaluate(&f))
    return NULL;
  Value *c = ir_const_tensor(m, op->parent, rt, f.dst, op->loc);
  ir_op_move_before(c->def, op);
  c->name = op->results[0]->name;
  return c;
}

static void fold_block(Module *m, Block *b) {
  for (Op *op = b->first, *next; op; op = next) {
    next = op->next;
    for (int r = 0; r < op->nregions; r++)
      fold_block(m, op->regions[r]);
    Value *c = try_fold(m, op);
    if (!c)
      continue;
    ir_replace_uses(m, op->results[0], c);
    ir_op_remove(op);
  }
}

bool pass_fold_constants(Module *m, Diag *d) {
  (void)d;
  for (Function *f = m->functions; f; f = f->next)
    fold_block(m, f->body);
  return true;
}
