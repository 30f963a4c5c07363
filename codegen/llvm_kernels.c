/* The LLVM backend's kernels: one internal function per op, named after its
 * model-file line (as the C backend's, c_kernel_call.c), called from the
 * run function with the symbols it reads and its operands' pointers.
 *
 * Elementwise ops, non-alias broadcasts and fused elementwise chains are
 * one loop over the result (flat when every operand has the result's shape
 * or one element, else a loop per axis with stride 0 on broadcast axes).
 * Each IR op is one LLVM instruction or one call of the C backend's own
 * function (mc_vmath.h, mc_ops.h, libm, linked in by llvm_vmath.c), so the
 * bits are the C backend's: no fast-math flags, no contraction.
 */
#include <stdlib.h>
#include <string.h>

#include "llvm_emit_internal.h"

/* Elements per piece of a loop on several threads (c_elementwise.c's). */
#define GRAIN 16384

/* ---- one element ----------------------------------------------------------
 */

static LLVMValueRef call1(LlvmK *k, const char *name, LLVMTypeRef t,
                          LLVMValueRef a) {
  return llvm_call(k->L, name, LLVMFunctionType(t, &t, 1, 0), &a, 1);
}

static LLVMValueRef call2(LlvmK *k, const char *name, LLVMTypeRef t,
                          LLVMValueRef a, LLVMValueRef b) {
  LLVMTypeRef p[2] = {t, t};
  LLVMValueRef args[2] = {a, b};
  return llvm_call(k->L, name, LLVMFunctionType(t, p, 2, 0), args, 2);
}

/* f32: the runtime's mc_<name>f (mc_vmath.h) where it has one, else libm's
 * <name>f; f64: libm's <name>, as the C backend calls them. */
static LLVMValueRef math1(LlvmK *k, DType t, const char *name, bool vmath,
                          LLVMValueRef a) {
  bool f32 = t == DT_F32;
  const char *fn = cg_strf(&k->L->e->arena, "%s%s%s", vmath && f32 ? "mc_" : "",
                           name, f32 ? "f" : "");
  return call1(k, fn, llvm_type(k->L, t), a);
}

static LLVMValueRef intrinsic1(LlvmK *k, const char *name, LLVMTypeRef t,
                               LLVMValueRef a) {
  const char *full = cg_strf(&k->L->e->arena, "llvm.%s.%s", name,
                             t == k->L->f32 ? "f32" : "f64");
  return call1(k, full, t, a);
}

static LLVMValueRef to_bool(LlvmK *k, LLVMValueRef c) {
  return LLVMBuildZExt(k->L->b, c, k->L->i8, "");
}

static LLVMValueRef is_true(LlvmK *k, LLVMValueRef a) {
  return LLVMBuildICmp(k->L->b, LLVMIntNE, a, LLVMConstInt(k->L->i8, 0, 0), "");
}

static LLVMValueRef cast(LlvmK *k, DType from, DType to, LLVMValueRef a) {
  LLVMBuilderRef b = k->L->b;
  LLVMTypeRef t = llvm_type(k->L, to);
  bool ff = dtype_is_float(from), tf = dtype_is_float(to);
  if (from == to)
    return a;
  if (to == DT_BOOL)
    return to_bool(k,
                   ff ? LLVMBuildFCmp(b, LLVMRealUNE, a,
                                      LLVMConstReal(LLVMTypeOf(a), 0), "")
                      : LLVMBuildICmp(b, LLVMIntNE, a,
                                      LLVMConstInt(LLVMTypeOf(a), 0, 0), ""));
  if (ff && tf)
    return LLVMBuildFPCast(b, a, t, "");
  if (ff)
    return LLVMBuildFPToSI(b, a, t, "");
  if (tf)
    return from == DT_BOOL ? LLVMBuildUIToFP(b, a, t, "")
                           : LLVMBuildSIToFP(b, a, t, "");
  return LLVMBuildIntCast2(b, a, t, from != DT_BOOL, "");
}

/* One element of an elementwise op from its operands' elements x[]. */
static LLVMValueRef element(LlvmK *k, const Op *op, LLVMValueRef *x) {
  LLVMBuilderRef b = k->L->b;
  DType t = op->operands[op->kind == OP_SELECT ? 1 : 0]->type.dtype;
  DType rt = op->results[0]->type.dtype;
  LLVMTypeRef ty = llvm_type(k->L, t);
  bool flt = dtype_is_float(t), f32 = t == DT_F32, i32 = t == DT_I32;
  LLVMValueRef a = x[0], c = op->noperands > 1 ? x[1] : NULL;
  const char *sfx = f32 ? "f32" : t == DT_F64 ? "f64" : i32 ? "i32" : "i64";
  Arena *A = &k->L->e->arena;
  switch (op->kind) {
  case OP_NEG:
    return flt ? LLVMBuildFNeg(b, a, "") : LLVMBuildNeg(b, a, "");
  case OP_ABS:
    return flt ? intrinsic1(k, "fabs", ty, a)
               : LLVMBuildSelect(b,
                                 LLVMBuildICmp(b, LLVMIntSLT, a,
                                               LLVMConstInt(ty, 0, 0), ""),
                                 LLVMBuildNeg(b, a, ""), a, "");
  case OP_SIGN:
    if (flt) {
      LLVMValueRef one = LLVMConstReal(ty, 1), mone = LLVMConstReal(ty, -1),
                   zero = LLVMConstReal(ty, 0);
      return LLVMBuildSelect(
          b, LLVMBuildFCmp(b, LLVMRealOGT, a, zero, ""), one,
          LLVMBuildSelect(b, LLVMBuildFCmp(b, LLVMRealOLT, a, zero, ""), mone,
                          a, ""),
          "");
    }
    return LLVMBuildSub(
        b,
        LLVMBuildZExt(
            b, LLVMBuildICmp(b, LLVMIntSGT, a, LLVMConstInt(ty, 0, 0), ""), ty,
            ""),
        LLVMBuildZExt(
            b, LLVMBuildICmp(b, LLVMIntSLT, a, LLVMConstInt(ty, 0, 0), ""), ty,
            ""),
        "");
  case OP_EXP:
    return math1(k, t, "exp", true, a);
  case OP_EXPM1:
    return math1(k, t, "expm1", true, a);
  case OP_LOG:
    return math1(k, t, "log", true, a);
  case OP_LOG1P:
    return math1(k, t, "log1p", true, a);
  case OP_TANH:
    return math1(k, t, "tanh", true, a);
  case OP_ERF:
    return math1(k, t, "erf", true, a);
  case OP_SIGMOID:
    if (f32)
      return call1(k, "mc_sigmoidf", ty, a);
    return LLVMBuildFDiv(
        b, LLVMConstReal(ty, 1),
        LLVMBuildFAdd(b, LLVMConstReal(ty, 1),
                      call1(k, "exp", ty, LLVMBuildFNeg(b, a, "")), ""),
        "");
  case OP_SQRT:
    return intrinsic1(k, "sqrt", ty, a);
  case OP_FLOOR:
    return intrinsic1(k, "floor", ty, a);
  case OP_CEIL:
    return intrinsic1(k, "ceil", ty, a);
  case OP_SIN:
    return math1(k, t, "sin", false, a);
  case OP_COS:
    return math1(k, t, "cos", false, a);
  case OP_NOT:
    return to_bool(k, LLVMBuildNot(b, is_true(k, a), ""));
  case OP_CAST:
    return cast(k, t, rt, a);
  case OP_BROADCAST:
    return a;
  case OP_ADD:
    return flt ? LLVMBuildFAdd(b, a, c, "") : LLVMBuildAdd(b, a, c, "");
  case OP_SUB:
    return flt ? LLVMBuildFSub(b, a, c, "") : LLVMBuildSub(b, a, c, "");
  case OP_MUL:
    return flt ? LLVMBuildFMul(b, a, c, "") : LLVMBuildMul(b, a, c, "");
  case OP_DIV:
    return flt ? LLVMBuildFDiv(b, a, c, "")
               : call2(k, cg_strf(A, "op_div_%s", sfx), ty, a, c);
  case OP_MOD:
    return call2(k, cg_strf(A, "op_mod_%s", sfx), ty, a, c);
  case OP_POW:
    return call2(k, f32 ? "powf" : "pow", ty, a, c);
  case OP_MAXIMUM:
    return flt ? call2(k, cg_strf(A, "op_max_%s", sfx), ty, a, c)
               : LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSGT, a, c, ""), a,
                                 c, "");
  case OP_MINIMUM:
    return flt ? call2(k, cg_strf(A, "op_min_%s", sfx), ty, a, c)
               : LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSLT, a, c, ""), a,
                                 c, "");
  case OP_LT:
  case OP_LE:
  case OP_GT:
  case OP_GE:
  case OP_EQ:
  case OP_NE: {
    static const LLVMRealPredicate fp[] = {LLVMRealOLT, LLVMRealOLE,
                                           LLVMRealOGT, LLVMRealOGE,
                                           LLVMRealOEQ, LLVMRealUNE};
    static const LLVMIntPredicate ip[] = {LLVMIntSLT, LLVMIntSLE, LLVMIntSGT,
                                          LLVMIntSGE, LLVMIntEQ,  LLVMIntNE};
    static const LLVMIntPredicate up[] = {LLVMIntULT, LLVMIntULE, LLVMIntUGT,
                                          LLVMIntUGE, LLVMIntEQ,  LLVMIntNE};
    int i = op->kind - OP_LT;
    return to_bool(
        k, flt ? LLVMBuildFCmp(b, fp[i], a, c, "")
               : LLVMBuildICmp(b, t == DT_BOOL ? up[i] : ip[i], a, c, ""));
  }
  case OP_AND:
    return to_bool(k, LLVMBuildAnd(b, is_true(k, a), is_true(k, c), ""));
  case OP_OR:
    return to_bool(k, LLVMBuildOr(b, is_true(k, a), is_true(k, c), ""));
  case OP_SELECT:
    return LLVMBuildSelect(b, is_true(k, a), c, x[2], "");
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
  case OP_DYNAMIC_SLICE:
  case OP_DYNAMIC_UPDATE_SLICE:
  case OP_TAKE_ALONG_AXIS:
  case OP_TOPK:
  case OP_CUMSUM:
  case OP_RANDOM_UNIFORM:
  case OP_CATEGORICAL:
  case OP_SCAN:
  case OP_YIELD:
  case OP_FUSED:
  case OP_GRAD:
  case OP_STOP_GRADIENT:
  case OP_COUNT:
    break;
  }
  return NULL;
}

/* A fused op's value from its operands' elements: its region's ops in
 * order, each one instruction. */
static LLVMValueRef fused_element(LlvmK *k, const Op *op, LLVMValueRef *x) {
  const Block *r = op->regions[0];
  LLVMValueRef *val =
      calloc((size_t)k->L->e->m->next_value_id + 1, sizeof(LLVMValueRef));
  for (int i = 0; i < r->nargs; i++)
    val[r->args[i]->id] = x[i];
  LLVMValueRef result = NULL;
  for (const Op *o = r->first; o; o = o->next) {
    if (o->kind == OP_YIELD) {
      result = val[o->operands[0]->id];
      break;
    }
    if (o->kind == OP_CONST) {
      val[o->results[0]->id] = llvm_const_elem(k->L, o->results[0]->type.dtype,
                                               o->attrs.cst.data, 0);
      continue;
    }
    LLVMValueRef args[3];
    for (int i = 0; i < o->noperands && i < 3; i++)
      args[i] = val[o->operands[i]->id];
    val[o->results[0]->id] = element(k, o, args);
  }
  free(val);
  return result;
}

LLVMValueRef llvm_element(LlvmK *k, const Op *op, LLVMValueRef *x) {
  return op->kind == OP_FUSED ? fused_element(k, op, x) : element(k, op, x);
}

/* ---- the loop --------------------------------------------------------------
 */

/* Whether operand x is read at the result's flat index (same shape) or at
 * 0 (one element) in a flat loop. */
static bool flat_operand(const Value *x, const Shape *ys) {
  int64_t n;
  return shape_eq(&x->type.shape, ys) ||
         (shape_const_numel(&x->type.shape, &n) && n == 1);
}

/* Whether op's loop is a flat one over the result's elements. */
static bool is_flat(const Op *op, const bool *literal) {
  const Shape *ys = &op->results[0]->type.shape;
  bool flat = true;
  for (int i = 0; i < op->noperands; i++)
    flat &= literal[i] || flat_operand(op->operands[i], ys);
  return flat;
}

/* Operand i's element at index `at` of a flat loop: the inlined constant,
 * the one element, or the element at `at`. */
static LLVMValueRef flat_element(LlvmK *k, const bool *literal,
                                 LLVMValueRef *xp, int i, LLVMValueRef at) {
  LlvmEmit *L = k->L;
  const Value *v = k->op->operands[i];
  if (literal[i])
    return llvm_const_elem(L, v->type.dtype, v->def->attrs.cst.data, 0);
  if (!shape_eq(&v->type.shape, &k->op->results[0]->type.shape))
    at = LLVMConstInt(L->i64, 0, 0);
  LLVMTypeRef et = llvm_type(L, v->type.dtype);
  return LLVMBuildLoad2(L->b, et, LLVMBuildGEP2(L->b, et, xp[i], &at, 1, ""),
                        "");
}

/* Elements per tile of a staged loop (c_elementwise.c's TILE). */
#define TILE 256

/* The flat loop of a fused op with stages (cg_fused_stages), as the C
 * backend's: over tiles of [begin, end), each stage a loop over the tile;
 * the values a later stage reads go through tile arrays. */
static bool staged(LlvmK *k, const bool *literal, LLVMValueRef *xp,
                   LLVMValueRef yp, LLVMValueRef begin, LLVMValueRef end,
                   const int *stage, const bool *kept, int nstages) {
  LlvmEmit *L = k->L;
  LLVMBuilderRef b = L->b;
  const Block *r = k->op->regions[0];
  size_t nv = (size_t)L->e->m->next_value_id + 1;
  LLVMValueRef *val = calloc(nv, sizeof *val), *tile = calloc(nv, sizeof *tile);
  int j = 0;
  for (const Op *o = r->first; o; o = o->next, j++)
    if (kept[j]) /* in the entry block, where the builder is */
      tile[o->results[0]->id] = LLVMBuildArrayAlloca(
          b, llvm_type(L, o->results[0]->type.dtype), llvm_i64(L, TILE), "");
  LLVMValueRef ntiles =
      LLVMBuildSDiv(b,
                    LLVMBuildAdd(b, LLVMBuildSub(b, end, begin, ""),
                                 llvm_i64(L, TILE - 1), ""),
                    llvm_i64(L, TILE), "");
  LlvmLoop tl;
  llvm_loop_begin(L, &tl, NULL, ntiles, "tile");
  LLVMValueRef i0 = LLVMBuildAdd(
      b, begin, LLVMBuildMul(b, tl.i, llvm_i64(L, TILE), ""), "i0");
  LLVMValueRef full = LLVMBuildAdd(b, i0, llvm_i64(L, TILE), "");
  LLVMValueRef i1 = LLVMBuildSelect(
      b, LLVMBuildICmp(b, LLVMIntSLT, full, end, ""), full, end, "i1");
  bool ok = true;
  for (int s = 0; s < nstages && ok; s++) {
    LlvmLoop lp;
    llvm_loop_begin(L, &lp, i0, i1, "i");
    LLVMValueRef at = LLVMBuildSub(b, lp.i, i0, "");
    for (int a = 0; a < r->nargs; a++)
      val[r->args[a]->id] = flat_element(k, literal, xp, a, lp.i);
    j = 0;
    for (const Op *o = r->first; o && ok; o = o->next, j++) {
      const Value *v = o->kind == OP_YIELD ? o->operands[0] : o->results[0];
      LLVMTypeRef et = llvm_type(L, v->type.dtype);
      if (o->kind == OP_YIELD) {
        if (s == nstages - 1)
          LLVMBuildStore(b, val[v->id], llvm_gep(L, et, yp, lp.i));
      } else if (o->kind == OP_CONST) {
        val[v->id] = llvm_const_elem(L, v->type.dtype, o->attrs.cst.data, 0);
      } else if (stage[j] < s && kept[j]) {
        val[v->id] =
            LLVMBuildLoad2(b, et, llvm_gep(L, et, tile[v->id], at), "");
      } else if (stage[j] == s) {
        LLVMValueRef args[3];
        for (int q = 0; q < o->noperands && q < 3; q++)
          args[q] = val[o->operands[q]->id];
        val[v->id] = element(k, o, args);
        ok = val[v->id] != NULL;
        if (ok && kept[j])
          LLVMBuildStore(b, val[v->id], llvm_gep(L, et, tile[v->id], at));
        if (!ok)
          diag_error(k->d, k->op->loc,
                     "the LLVM backend does not compile '%s' yet",
                     ir_op_info[o->kind].name);
      }
    }
    llvm_loop_end(L, &lp);
  }
  llvm_loop_end(L, &tl);
  free(val);
  free(tile);
  return ok;
}

/* The loop over [begin, end) of the range (flat: the elements; else the
 * first axis, the others inside). */
static bool elementwise(LlvmK *k, const bool *literal, LLVMValueRef *xp,
                        LLVMValueRef yp, LLVMValueRef begin, LLVMValueRef end) {
  LlvmEmit *L = k->L;
  LLVMBuilderRef b = L->b;
  const Op *op = k->op;
  const Shape *ys = &op->results[0]->type.shape;
  int n = op->noperands;
  bool flat = is_flat(op, literal);
  /* strides per operand and result axis (elements; 0: broadcast) */
  LLVMValueRef stride[LLVM_MAX_OPERANDS][MAX_RANK];
  LlvmLoop loops[MAX_RANK];
  LLVMValueRef pos[MAX_RANK];
  int r = flat ? 1 : ys->rank;
  if (flat && op->kind == OP_FUSED) {
    int nops = 0;
    for (const Op *o = op->regions[0]->first; o; o = o->next)
      nops++;
    int *stage = malloc((size_t)nops * sizeof *stage);
    bool *kept = malloc((size_t)nops * sizeof *kept);
    int nstages = cg_fused_stages(op, stage, kept);
    bool ok = nstages < 2 ||
              staged(k, literal, xp, yp, begin, end, stage, kept, nstages);
    free(stage);
    free(kept);
    if (nstages > 1)
      return ok;
  }
  if (flat) {
    llvm_loop_begin(L, &loops[0], begin, end, "i");
    pos[0] = loops[0].i;
  } else {
    for (int i = 0; i < n; i++) {
      const Shape *xs = &op->operands[i]->type.shape;
      int lead = ys->rank - xs->rank;
      LLVMValueRef s = LLVMConstInt(L->i64, 1, 0);
      for (int j = ys->rank - 1; j >= 0; j--) {
        int xj = j - lead;
        if (xj < 0 || cg_is_one(xs->dims[xj])) {
          stride[i][j] = LLVMConstInt(L->i64, 0, 0);
          continue;
        }
        stride[i][j] = s;
        s = LLVMBuildMul(b, s, llvm_dim(L, xs->dims[xj], k->sym), "");
      }
    }
    for (int j = 0; j < r; j++) {
      llvm_loop_begin(L, &loops[j], j ? NULL : begin,
                      j ? llvm_dim(L, ys->dims[j], k->sym) : end,
                      cg_loop_vars[j]);
      pos[j] = loops[j].i;
    }
  }
  LLVMValueRef x[LLVM_MAX_OPERANDS];
  for (int i = 0; i < n; i++) {
    if (flat || literal[i]) {
      x[i] = flat_element(k, literal, xp, i, pos[0]);
      continue;
    }
    const Value *v = op->operands[i];
    LLVMValueRef idx = LLVMConstInt(L->i64, 0, 0);
    for (int j = 0; j < r; j++)
      idx = LLVMBuildAdd(b, idx, LLVMBuildMul(b, pos[j], stride[i][j], ""), "");
    LLVMTypeRef et = llvm_type(L, v->type.dtype);
    x[i] = LLVMBuildLoad2(b, et, LLVMBuildGEP2(b, et, xp[i], &idx, 1, ""), "");
  }
  LLVMValueRef y = llvm_element(k, op, x);
  if (!y) {
    diag_error(k->d, op->loc, "the LLVM backend does not compile '%s' yet",
               ir_op_info[op->kind].name);
    return false;
  }
  LLVMValueRef yidx = pos[0];
  if (!flat) { /* row-major index of the result */
    yidx = LLVMConstInt(L->i64, 0, 0);
    for (int j = 0; j < r; j++)
      yidx = LLVMBuildAdd(
          b, LLVMBuildMul(b, yidx, llvm_dim(L, ys->dims[j], k->sym), ""),
          pos[j], "");
  }
  LLVMTypeRef yt = llvm_type(L, op->results[0]->type.dtype);
  LLVMBuildStore(b, y, LLVMBuildGEP2(b, yt, yp, &yidx, 1, ""));
  for (int j = r - 1; j >= 0; j--)
    llvm_loop_end(L, &loops[j]);
  return true;
}

/* ---- kernels and their calls ----------------------------------------------
 */

/* An elementwise kernel's range: its literal operands, and those it
 * updates in place (the result's buffer: an LSTM's carry in where(m, h2,
 * h)), which it reads through the result's pointer. LLVM's vectorizer
 * then sees one pointer where two would overlap exactly, and keeps the
 * vector loop instead of falling back to the scalar one. */
typedef struct ElemCtx {
  bool literal[LLVM_MAX_OPERANDS];
  bool in_place[LLVM_MAX_OPERANDS];
} ElemCtx;

static bool elem_body(LlvmK *k, LLVMValueRef *p, LLVMValueRef begin,
                      LLVMValueRef end, void *ctx) {
  const ElemCtx *c = ctx;
  LLVMValueRef xp[LLVM_MAX_OPERANDS] = {0};
  int q = 0;
  for (int i = 0; i < k->op->noperands; i++)
    if (!c->literal[i] && !c->in_place[i])
      xp[i] = p[q++];
  for (int i = 0; i < k->op->noperands; i++)
    if (c->in_place[i])
      xp[i] = p[q];
  return elementwise(k, c->literal, xp, p[q], begin, end);
}

/* the elements, or the first axis (rows of at least GRAIN elements a
 * piece), as the C backend's (c_elementwise.c) */
static LLVMValueRef elem_extent(LlvmK *k, LLVMValueRef *grain, void *ctx) {
  const ElemCtx *c = ctx;
  LlvmEmit *L = k->L;
  const Shape *ys = &k->op->results[0]->type.shape;
  *grain = llvm_i64(L, GRAIN);
  if (is_flat(k->op, c->literal) || ys->rank == 0)
    return llvm_numel(L, ys, 0, ys->rank, k->sym);
  *grain = LLVMBuildAdd(
      L->b,
      LLVMBuildSDiv(L->b, *grain, llvm_numel(L, ys, 1, ys->rank, k->sym), ""),
      llvm_i64(L, 1), "");
  return llvm_dim(L, ys->dims[0], k->sym);
}

static bool supported(const Op *op) {
  return cg_op_is_elementwise(op->kind) || op->kind == OP_BROADCAST ||
         op->kind == OP_FUSED;
}

bool llvm_emit_kernel(LlvmFn *F, const Op *op, Diag *d) {
  LlvmEmit *L = F->L;
  FnEmit *fe = F->fe;
  Emitter *e = L->e;
  /* op may be attention's last matmul (P @ V): then the kernel is that of
   * the scores' matmul (and its epilogue) with the softmax and op inside */
  if (op->kind == OP_MATMUL &&
      cg_info(fe, op->operands[0])->storage == ST_FUSED &&
      op->operands[0]->def->kind == OP_SOFTMAX) {
    const Op *scores = op->operands[0]->def->operands[0]->def;
    if (scores->kind == OP_MATMUL)
      return llvm_attention_kernel(F, scores, NULL, op, d);
    for (int i = 0; i < scores->noperands; i++)
      if (cg_info(fe, scores->operands[i])->storage == ST_FUSED)
        return llvm_attention_kernel(F, scores->operands[i]->def, scores, op,
                                     d);
  }
  /* op may be the epilogue of the kernel of its operand's op (a matmul, a
   * reduction), which may have a prologue (an elementwise loop), as in
   * c_kernel_call.c */
  const Op *ep, *pro;
  op = cg_kernel_ops(fe, op, &ep, &pro);
  if (llvm_is_reduction(op))
    return llvm_reduce_kernel(F, op, pro, ep, d);
  if (!ep && (llvm_is_movement(op) || llvm_is_reduce(op) || llvm_is_decode(op)))
    return llvm_movement_kernel(F, op, d);
  if (op->kind == OP_MATMUL &&
      cg_info(fe, op->operands[0])->storage != ST_FUSED)
    return llvm_matmul_kernel(F, op, ep, d);
  if (!supported(op) || op->noperands > LLVM_MAX_OPERANDS) {
    diag_error(d, op->loc,
               "the LLVM backend does not compile '%s' yet (use the C "
               "backend)",
               ir_op_info[op->kind].name);
    return false;
  }
  /* parameters: the function's symbols, the operands read through
   * pointers, the result */
  LLVMTypeRef params[MAX_SYMBOLS + LLVM_MAX_OPERANDS + 1];
  LLVMValueRef args[MAX_SYMBOLS + LLVM_MAX_OPERANDS + 1];
  const char *names[LLVM_MAX_OPERANDS + 1];
  int np = llvm_symbol_params(F, params, args), nptr = 0;
  ElemCtx c = {{0}, {0}};
  const Value *y = op->results[0];
  const char *y_buffer = cg_pointer(fe, y);
  for (int i = 0; i < op->noperands; i++) {
    const Value *x = op->operands[i];
    c.literal[i] = cg_takes_literals(op) && cg_is_inlinable_const(x);
    c.in_place[i] = !c.literal[i] && cg_info(fe, x)->storage != ST_CONST &&
                    x->type.dtype == y->type.dtype &&
                    shape_eq(&x->type.shape, &y->type.shape) &&
                    strcmp(cg_pointer(fe, x), y_buffer) == 0;
    if (c.literal[i] || c.in_place[i])
      continue;
    params[np] = LLVMPointerType(llvm_type(L, op->operands[i]->type.dtype), 0);
    args[np] = LLVMBuildBitCast(L->b, llvm_pointer(F, op->operands[i]),
                                params[np], "");
    np++;
    names[nptr++] = cg_operand_name(op, i);
  }
  params[np] = LLVMPointerType(llvm_type(L, y->type.dtype), 0);
  args[np] = LLVMBuildBitCast(L->b, llvm_pointer(F, y), params[np], "");
  np++;
  names[nptr++] = "y";
  LlvmK k = llvm_kernel(F, op, d);
  LlvmRange r = {elem_body, elem_extent, &c};
  return llvm_ranged_kernel(&k, cg_kernel_name(e, op), params, args, np, names,
                            &r);
}

/* ---- kernels on the runtime's threads ---------------------------------------
 */

bool llvm_ranged_kernel(LlvmK *k, const char *name, LLVMTypeRef *params,
                        LLVMValueRef *args, int np, const char *const *names,
                        const LlvmRange *r) {
  LlvmEmit *L = k->L;
  FnEmit *fe = k->F->fe;
  Emitter *e = L->e;
  /* NAME_range(args, begin, end): the parameters passed in a struct */
  LLVMTypeRef argt = LLVMStructTypeInContext(L->ctx, params, (unsigned)np, 0);
  LLVMTypeRef rparams[3] = {L->ptr, L->i64, L->i64};
  LLVMTypeRef range_t = LLVMFunctionType(L->vd, rparams, 3, 0);
  LLVMValueRef range =
      LLVMAddFunction(L->mod, cg_strf(&e->arena, "%s_range", name), range_t);
  LLVMSetLinkage(range, LLVMInternalLinkage);
  LLVMBasicBlockRef caller = LLVMGetInsertBlock(L->b);
  LLVMPositionBuilderAtEnd(
      L->b, LLVMAppendBasicBlockInContext(L->ctx, range, "entry"));
  LLVMValueRef ctx = LLVMBuildBitCast(L->b, LLVMGetParam(range, 0),
                                      LLVMPointerType(argt, 0), "args");
  LLVMValueRef field[MAX_SYMBOLS + 2 * LLVM_MAX_OPERANDS + 2];
  for (int i = 0; i < np; i++)
    field[i] = LLVMBuildLoad2(
        L->b, params[i], LLVMBuildStructGEP2(L->b, argt, ctx, (unsigned)i, ""),
        "");
  k->fn = range;
  const char *pn[MAX_SYMBOLS + 2 * LLVM_MAX_OPERANDS + 2];
  int p = 0;
  for (int s = 0; s < e->m->nsymbols; s++)
    if (fe->syms & (UINT64_C(1) << s)) {
      pn[p] = e->symnames[s];
      k->sym[s] = field[p++];
    }
  int nsyms = p;
  for (int i = 0; i < np; i++) {
    if (i >= nsyms)
      pn[i] = names[i - nsyms];
    LLVMSetValueName2(field[i], pn[i], strlen(pn[i]));
  }
  LLVMValueRef begin = LLVMGetParam(range, 1), end = LLVMGetParam(range, 2);
  LLVMSetValueName2(begin, "begin", 5);
  LLVMSetValueName2(end, "end", 3);
  bool ok = r->body(k, field + nsyms, begin, end, r->ctx);
  LLVMBuildRetVoid(L->b);
  /* the kernel: a function of its own in the optimized module too (the .ll
   * reads kernel by kernel, as the C backend's file does) */
  k->fn = LLVMAddFunction(L->mod, name,
                          LLVMFunctionType(L->vd, params, (unsigned)np, 0));
  LLVMSetLinkage(k->fn, LLVMInternalLinkage);
  llvm_noinline(L, k->fn);
  LLVMPositionBuilderAtEnd(
      L->b, LLVMAppendBasicBlockInContext(L->ctx, k->fn, "entry"));
  LLVMValueRef args_slot = LLVMBuildAlloca(L->b, argt, "args");
  for (int i = 0; i < np; i++) {
    LLVMValueRef v = LLVMGetParam(k->fn, (unsigned)i);
    LLVMSetValueName2(v, pn[i], strlen(pn[i]));
    LLVMBuildStore(L->b, v,
                   LLVMBuildStructGEP2(L->b, argt, args_slot, (unsigned)i, ""));
  }
  p = 0;
  for (int s = 0; s < e->m->nsymbols; s++)
    if (fe->syms & (UINT64_C(1) << s))
      k->sym[s] = LLVMGetParam(k->fn, (unsigned)p++);
  LLVMValueRef grain;
  LLVMValueRef n = r->extent(k, &grain, r->ctx);
  LLVMTypeRef pf_params[4] = {L->i64, L->i64, L->ptr, L->ptr};
  LLVMValueRef pf_args[4] = {n, grain,
                             LLVMBuildBitCast(L->b, range, L->ptr, ""),
                             LLVMBuildBitCast(L->b, args_slot, L->ptr, "")};
  llvm_call(L, "mc_parallel_for", LLVMFunctionType(L->vd, pf_params, 4, 0),
            pf_args, 4);
  LLVMBuildRetVoid(L->b);
  LLVMPositionBuilderAtEnd(L->b, caller);
  if (ok)
    LLVMBuildCall2(L->b, LLVMGlobalGetValueType(k->fn), k->fn, args,
                   (unsigned)np, "");
  return ok;
}
