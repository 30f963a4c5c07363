/* Lowering, part 2: operators and dtype promotion (torch's rules: an int
 * tensor meeting a float becomes f32; bool meeting a number takes its type).
 *
 * Compile-time numbers compute in double at compile time and become a scalar
 * CONST of the tensor's dtype only when they meet a tensor, so `x * 2.0^-140`
 * multiplies by the exact float32 2^-140. Nothing here reassociates or
 * simplifies tensor arithmetic: `x * a * b` is two multiplications. Integer
 * powers 2 and 3 of a tensor are exact products, as torch computes them.
 */
#include "lower_internal.h"

#include <math.h>
#include <string.h>

Value *lower_op(Lowerer *L, OpKind k, Value **ops, int n, const Attrs *a,
                const Type *hint, Loc loc) {
  return ir_build(L->m, L->body, k, ops, n, a, hint, loc, L->d);
}

bool lower_dtype(const char *name, DType *out) {
  if (!dtype_from_name(name, out))
    return false;
  return *out == DT_F32 || *out == DT_F64 || *out == DT_I32 || *out == DT_I64 ||
         *out == DT_BOOL;
}

static Loc op_loc(Lowerer *L, const AstNode *n) {
  return lower_loc(L, n);
}

static bool is_number(LVal v) {
  return v.kind == LV_INT || v.kind == LV_FLOAT || v.kind == LV_BOOL;
}

static bool number_value(LVal v, double *out) {
  int64_t iv;
  if (v.kind == LV_FLOAT) {
    *out = v.f;
    return true;
  }
  if (v.kind == LV_BOOL) {
    *out = v.b;
    return true;
  }
  if (v.kind == LV_INT && dim_is_const(v.dim, &iv)) {
    *out = (double)iv;
    return true;
  }
  return false;
}

Value *lower_to_tensor(Lowerer *L, LVal v, DType like, Loc loc) {
  if (v.kind == LV_TENSOR)
    return v.v;
  double x;
  if (!number_value(v, &x)) {
    diag_error(L->d, loc, "%s cannot be used as a tensor",
               v.kind == LV_INT ? "a symbolic dimension"
                                : lv_kind_name(v.kind));
    return NULL;
  }
  if (dtype_is_int(like) && x != floor(x))
    like = DT_F32;
  return ir_const_scalar(L->m, L->body, like, x, loc);
}

static Value *cast_to(Lowerer *L, Value *v, DType t, Loc loc) {
  if (v->type.dtype == t)
    return v;
  Type hint = v->type;
  hint.dtype = t;
  return lower_op(L, OP_CAST, &v, 1, NULL, &hint, loc);
}

/* torch-like promotion of two tensor dtypes */
static DType promote(DType a, DType b) {
  if (a == b)
    return a;
  if (a == DT_F64 || b == DT_F64)
    return DT_F64;
  if (dtype_is_float(a) || dtype_is_float(b))
    return DT_F32;
  if (a == DT_I64 || b == DT_I64)
    return DT_I64;
  if (a == DT_I32 || b == DT_I32)
    return DT_I32;
  return DT_BOOL;
}

/* The dtype a compile-time number takes when it meets a tensor of dtype t. */
static DType number_dtype(LVal num, DType t) {
  if (num.kind == LV_FLOAT && !dtype_is_float(t))
    return DT_F32;
  if (num.kind == LV_INT && t == DT_BOOL)
    return DT_I32;
  return t;
}

/* Brings two operands (at least one a tensor) to tensors of one dtype. */
static bool unify(Lowerer *L, LVal a, LVal b, Value **va, Value **vb, Loc loc) {
  DType t;
  if (a.kind == LV_TENSOR && b.kind == LV_TENSOR)
    t = promote(a.v->type.dtype, b.v->type.dtype);
  else if (a.kind == LV_TENSOR)
    t = number_dtype(b, a.v->type.dtype);
  else
    t = number_dtype(a, b.v->type.dtype);
  *va = lower_to_tensor(L, a, t, loc);
  *vb = lower_to_tensor(L, b, t, loc);
  if (!*va || !*vb)
    return false;
  *va = cast_to(L, *va, t, loc);
  *vb = cast_to(L, *vb, t, loc);
  return *va && *vb;
}

static Value *to_float(Lowerer *L, Value *v, Loc loc) {
  return dtype_is_float(v->type.dtype) ? v : cast_to(L, v, DT_F32, loc);
}

/* ---- compile-time arithmetic ------------------------------------------------
 */
/* x^y for y >= 0 by squaring; false if it overflows int64. */
static bool int_pow(int64_t x, int64_t y, int64_t *out) {
  int64_t p = 1;
  for (;;) {
    if ((y & 1) && __builtin_mul_overflow(p, x, &p))
      return false;
    y >>= 1;
    if (!y)
      break;
    if (__builtin_mul_overflow(x, x, &x))
      return false;
  }
  *out = p;
  return true;
}

static LVal fold_ints(Lowerer *L, AstOp op, Dim a, Dim b, const AstNode *n) {
  Dim r;
  int64_t x, y;
  bool cx = dim_is_const(a, &x), cy = dim_is_const(b, &y), overflow = false,
       too_complex = false;
  switch (op) {
  case AOP_ADD:
    if (dim_add(a, b, &r))
      return lv_dim(r);
    overflow = cx && cy;
    too_complex = !overflow;
    break;
  case AOP_SUB:
    if (dim_sub(a, b, &r))
      return lv_dim(r);
    overflow = cx && cy;
    too_complex = !overflow;
    break;
  case AOP_MUL:
    if (dim_mul(a, b, &r))
      return lv_dim(r);
    overflow = cx && cy;
    too_complex = !overflow;
    break;
  case AOP_DIV:
    if (cx && cy) {
      if (y == 0) {
        diag_error(L->d, n->loc, "division by zero");
        return lv_error();
      }
      if (x == INT64_MIN && y == -1) {
        overflow = true;
        break;
      }
      if (x % y == 0)
        return lv_int(x / y);
      return lv_float((double)x / (double)y);
    }
    if (dim_div_exact(a, b, &r))
      return lv_dim(r);
    {
      char sa[128], sb[128];
      dim_print(sa, sizeof sa, a, L->m);
      dim_print(sb, sizeof sb, b, L->m);
      diag_error(L->d, n->loc, "%s is not divisible by %s", sa, sb);
      return lv_error();
    }
  case AOP_MOD:
    if (cx && cy && y != 0) {
      /* the sign of y, as in Python; -1 would overflow x % y */
      int64_t m = y == -1 ? 0 : x % y;
      return lv_int(m != 0 && (m < 0) != (y < 0) ? m + y : m);
    }
    break;
  case AOP_POW:
    if (cx && cy && y >= 0) {
      int64_t p;
      if (int_pow(x, y, &p))
        return lv_int(p);
      overflow = true;
      break;
    }
    if (cx && cy)
      return lv_float(pow((double)x, (double)y));
    break;
  case AOP_EQ:
    return lv_bool(dim_eq(a, b));
  case AOP_NE:
    return lv_bool(!dim_eq(a, b));
  case AOP_LT:
  case AOP_LE:
  case AOP_GT:
  case AOP_GE:
    if (cx && cy)
      return lv_bool(op == AOP_LT   ? x < y
                     : op == AOP_LE ? x <= y
                     : op == AOP_GT ? x > y
                                    : x >= y);
    break;
  case AOP_MATMUL:
  case AOP_AND:
  case AOP_OR:
  case AOP_NOT:
  case AOP_NEG:
  case AOP_POS:
  case AOP_COUNT:
    break;
  }
  if (overflow) {
    diag_error(L->d, n->loc,
               "integer overflow: %lld %s %lld is not a 64-bit integer",
               (long long)x, ast_op_text(op), (long long)y);
  } else if (too_complex) {
    char sa[128], sb[128];
    dim_print(sa, sizeof sa, a, L->m);
    dim_print(sb, sizeof sb, b, L->m);
    diag_error(L->d, n->loc,
               "limit exceeded: (%s) %s (%s) is not a dimension (at most %d "
               "terms of at most %d symbols each, 64-bit coefficients)",
               sa, ast_op_text(op), sb, DIM_MAX_TERMS, DIM_MAX_FACTORS);
  } else
    diag_error(L->d, n->loc,
               "cannot compute '%s' of these integers at compile "
               "time",
               ast_op_text(op));
  return lv_error();
}

static LVal fold_numbers(Lowerer *L, AstOp op, double x, double y,
                         const AstNode *n) {
  switch (op) {
  case AOP_ADD:
    return lv_float(x + y);
  case AOP_SUB:
    return lv_float(x - y);
  case AOP_MUL:
    return lv_float(x * y);
  case AOP_DIV:
    return lv_float(x / y);
  case AOP_MOD:
    return lv_float(fmod(x, y));
  case AOP_POW:
    return lv_float(pow(x, y));
  case AOP_EQ:
    return lv_bool(x == y);
  case AOP_NE:
    return lv_bool(x != y);
  case AOP_LT:
    return lv_bool(x < y);
  case AOP_LE:
    return lv_bool(x <= y);
  case AOP_GT:
    return lv_bool(x > y);
  case AOP_GE:
    return lv_bool(x >= y);
  case AOP_AND:
    return lv_bool(x != 0 && y != 0);
  case AOP_OR:
    return lv_bool(x != 0 || y != 0);
  case AOP_MATMUL:
  case AOP_NOT:
  case AOP_NEG:
  case AOP_POS:
  case AOP_COUNT:
    break;
  }
  diag_error(L->d, n->loc, "'%s' needs tensors", ast_op_text(op));
  return lv_error();
}

/* ---- operators
 * ----------------------------------------------------------------- */
static Value *binop(Lowerer *L, OpKind k, Value *a, Value *b, Loc loc) {
  Value *ops[2] = {a, b};
  return lower_op(L, k, ops, 2, NULL, NULL, loc);
}

LVal lower_binary(Lowerer *L, AstOp op, LVal a, LVal b, const AstNode *n) {
  Loc loc = op_loc(L, n);
  if (a.kind != LV_TENSOR && b.kind != LV_TENSOR) {
    if (a.kind == LV_INT && b.kind == LV_INT)
      return fold_ints(L, op, a.dim, b.dim, n);
    if (a.kind == LV_STRING && b.kind == LV_STRING &&
        (op == AOP_EQ || op == AOP_NE))
      return lv_bool((strcmp(a.s, b.s) == 0) == (op == AOP_EQ));
    double x, y;
    if (number_value(a, &x) && number_value(b, &y))
      return fold_numbers(L, op, x, y, n);
    diag_error(L->d, n->loc, "'%s' is not defined for %s and %s",
               ast_op_text(op), lv_kind_name(a.kind), lv_kind_name(b.kind));
    return lv_error();
  }
  if ((a.kind != LV_TENSOR && !is_number(a)) ||
      (b.kind != LV_TENSOR && !is_number(b))) {
    LVal bad = a.kind != LV_TENSOR ? a : b;
    diag_error(L->d, n->loc, "'%s' is not defined for a tensor and %s",
               ast_op_text(op),
               bad.kind == LV_INT ? "a symbolic dimension"
                                  : lv_kind_name(bad.kind));
    return lv_error();
  }
  /* x ^ 2 and x ^ 3 are exact products, as torch computes them */
  if (op == AOP_POW && a.kind == LV_TENSOR && b.kind != LV_TENSOR) {
    double e = 0;
    number_value(b, &e);
    if (e == 1.0)
      return a;
    if (e == 2.0 || e == 3.0) {
      Value *x = to_float(L, a.v, loc);
      Value *sq = x ? binop(L, OP_MUL, x, x, loc) : NULL;
      if (sq && e == 3.0)
        sq = binop(L, OP_MUL, sq, x, loc);
      return lv_tensor(sq);
    }
  }
  Value *va, *vb;
  if (!unify(L, a, b, &va, &vb, loc))
    return lv_error();
  OpKind k;
  switch (op) {
  case AOP_ADD:
    k = OP_ADD;
    break;
  case AOP_SUB:
    k = OP_SUB;
    break;
  case AOP_MUL:
    k = OP_MUL;
    break;
  case AOP_DIV:
    /* true division, as in torch */
    va = to_float(L, va, loc);
    vb = to_float(L, vb, loc);
    k = OP_DIV;
    break;
  case AOP_MOD:
    k = OP_MOD;
    break;
  case AOP_POW:
    va = to_float(L, va, loc);
    vb = to_float(L, vb, loc);
    k = OP_POW;
    break;
  case AOP_MATMUL:
    k = OP_MATMUL;
    break;
  case AOP_EQ:
    k = OP_EQ;
    break;
  case AOP_NE:
    k = OP_NE;
    break;
  case AOP_LT:
    k = OP_LT;
    break;
  case AOP_LE:
    k = OP_LE;
    break;
  case AOP_GT:
    k = OP_GT;
    break;
  case AOP_GE:
    k = OP_GE;
    break;
  case AOP_AND:
    k = OP_AND;
    break;
  case AOP_OR:
    k = OP_OR;
    break;
  case AOP_NOT:
  case AOP_NEG:
  case AOP_POS:
  case AOP_COUNT:
  default:
    diag_error(L->d, n->loc, "bad binary operator");
    return lv_error();
  }
  if (!va || !vb)
    return lv_error();
  if (k == OP_MATMUL) {
    Value *ops[2] = {va, vb};
    Attrs at;
    memset(&at, 0, sizeof at);
    return lv_tensor(lower_op(L, OP_MATMUL, ops, 2, &at, NULL, loc));
  }
  return lv_tensor(binop(L, k, va, vb, loc));
}

LVal lower_unary(Lowerer *L, AstOp op, LVal a, const AstNode *n) {
  Loc loc = op_loc(L, n);
  if (a.kind == LV_TENSOR) {
    Value *v = a.v;
    if (op == AOP_POS)
      return a;
    if (op == AOP_NOT)
      return lv_tensor(lower_op(L, OP_NOT, &v, 1, NULL, NULL, loc));
    return lv_tensor(lower_op(L, OP_NEG, &v, 1, NULL, NULL, loc));
  }
  if (op == AOP_NOT) {
    if (a.kind == LV_BOOL)
      return lv_bool(!a.b);
  } else if (a.kind == LV_INT) {
    Dim r;
    if (op == AOP_POS)
      return a;
    if (dim_sub(dim_const(0), a.dim, &r))
      return lv_dim(r);
  } else if (a.kind == LV_FLOAT) {
    return op == AOP_POS ? a : lv_float(-a.f);
  }
  diag_error(L->d, n->loc, "'%s' is not defined for %s", ast_op_text(op),
             lv_kind_name(a.kind));
  return lv_error();
}
