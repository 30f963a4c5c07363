/* Lowering, part 5: the `scan` builtin, a loop in the JAX style.
 *
 *   carries..., ys... = scan(step, [init1, init2], [xs1, xs2], axis=0,
 *                            reverse=false, index=false, length=n)
 *
 * `step` is a user function called as step(c1, c2, x1_t, x2_t[, t]) that
 * returns (new_c1, new_c2, y1, ...): the first values are the new carries,
 * the rest the per-step outputs. The lowering builds a SCAN whose region is
 * the body of `step`, lowered once with the region's arguments as the
 * function's tensor arguments (the interpreter's L->body points at the
 * region meanwhile), and a YIELD of what it returns. `axis` names the time
 * axis of every sequence: it is permuted to the front for the scan and the
 * stacked outputs are permuted back so time is at `axis` again (or last,
 * for outputs of lower rank). A single carry or sequence may be given
 * without brackets; `length` gives the trip count when there is no
 * sequence. The result is the tuple (final carries..., stacked outputs...),
 * or the one value when there is only one. Other keyword arguments go to
 * the step function (`prefix="lstm"` for its param names, or tensors): the
 * language has no closures, and the region may read any value above it.
 *
 * With until=true (a bounded loop with an early exit, for decoding) the
 * step returns (new carries..., done, ys...) with done a bool scalar; the
 * loop stops after the first step whose done is true, and the result is
 * (final carries..., ys..., steps) where rows of ys after the exit are
 * zeros and steps (i32) counts the steps run.
 */
#include "lower_internal.h"

#include <string.h>

static const char *const scan_sig =
    "scan(step, [carries], [sequences], axis=0, reverse=false, index=false, "
    "length=n, until=false, step_kwarg=...)";

/* A list argument (or one tensor) as tensors; false after an error. */
static bool tensor_list(Lowerer *L, LVal v, const AstNode *at, const char *what,
                        Value ***out, int *n) {
  if (v.kind == LV_TENSOR) {
    *out = arena_alloc(&L->m->arena, sizeof(Value *));
    (*out)[0] = v.v;
    *n = 1;
    return true;
  }
  if (v.kind == LV_NONE) {
    *n = 0;
    return true;
  }
  if (v.kind != LV_LIST && v.kind != LV_TUPLE) {
    diag_error(L->d, at->loc,
               "scan %s must be a tensor or a list of "
               "tensors, not %s",
               what, lv_kind_name(v.kind));
    return false;
  }
  *n = v.nitems;
  *out = arena_alloc(&L->m->arena, sizeof(Value *) * (size_t)(v.nitems + 1));
  for (int i = 0; i < v.nitems; i++) {
    if (v.items[i].kind != LV_TENSOR) {
      diag_error(L->d, at->loc, "scan %s %d is %s, not a tensor", what, i,
                 lv_kind_name(v.items[i].kind));
      return false;
    }
    (*out)[i] = v.items[i].v;
  }
  return true;
}

static bool kw_bool(Lowerer *L, LVal v, const AstNode *at, bool *out) {
  if (v.kind == LV_BOOL) {
    *out = v.b;
    return true;
  }
  int64_t i;
  if (v.kind == LV_INT && dim_is_const(v.dim, &i)) {
    *out = i != 0;
    return true;
  }
  diag_error(L->d, at->loc, "expected true or false, not %s",
             lv_kind_name(v.kind));
  return false;
}

/* Moves axis `from` of x to position `to` (the others keep their order). */
static Value *move_axis(Lowerer *L, Value *x, int from, int to, Loc loc) {
  if (from == to)
    return x;
  int rank = x->type.shape.rank, perm[MAX_RANK] = {0}, k = 0;
  for (int i = 0; i < rank; i++) {
    if (i == to)
      continue;
    if (k == from)
      k++;
    perm[i] = k++;
  }
  perm[to] = from;
  Attrs a;
  memset(&a, 0, sizeof a);
  memcpy(a.perm.perm, perm, sizeof perm);
  return lower_op(L, OP_PERMUTE, &x, 1, &a, NULL, loc);
}

LVal lower_scan(Lowerer *L, const AstNode *call, LVal *args,
                const AstNode **argnodes, int nargs, const char **kwnames,
                LVal *kwargs, const AstNode **kwnodes, int nkw) {
  Loc loc = lower_loc(L, call);
  if (nargs < 2 || nargs > 3) {
    diag_error(L->d, call->loc, "wrong number of arguments: %s", scan_sig);
    return lv_error();
  }
  if (args[0].kind != LV_FUNC) {
    diag_error(L->d, argnodes[0]->loc,
               "the first argument of scan must be a user function, not %s",
               lv_kind_name(args[0].kind));
    return lv_error();
  }
  Value **carries = NULL, **seqs = NULL;
  int nc = 0, ns = 0;
  if (!tensor_list(L, args[1], argnodes[1], "carry", &carries, &nc) ||
      (nargs > 2 &&
       !tensor_list(L, args[2], argnodes[2], "sequence", &seqs, &ns)))
    return lv_error();
  int64_t axis = 0;
  bool reverse = false, with_index = false, have_length = false;
  bool until = false;
  Dim length = dim_const(0);
  const char **step_kwnames =
      arena_alloc(&L->m->arena, sizeof(char *) * (size_t)(nkw + 1));
  LVal *step_kwargs =
      arena_alloc(&L->m->arena, sizeof(LVal) * (size_t)(nkw + 1));
  int nstep_kw = 0;
  for (int i = 0; i < nkw; i++) {
    const char *k = kwnames[i];
    bool ok = true;
    if (!strcmp(k, "axis")) {
      ok = kwargs[i].kind == LV_INT && dim_is_const(kwargs[i].dim, &axis);
      if (!ok)
        diag_error(L->d, kwnodes[i]->loc, "scan axis must be a constant");
    } else if (!strcmp(k, "reverse")) {
      ok = kw_bool(L, kwargs[i], kwnodes[i], &reverse);
    } else if (!strcmp(k, "index")) {
      ok = kw_bool(L, kwargs[i], kwnodes[i], &with_index);
    } else if (!strcmp(k, "until")) {
      ok = kw_bool(L, kwargs[i], kwnodes[i], &until);
    } else if (!strcmp(k, "length")) {
      ok = have_length = kwargs[i].kind == LV_INT;
      length = kwargs[i].dim;
      if (!ok)
        diag_error(L->d, kwnodes[i]->loc, "scan length must be an integer");
    } else { /* for the step function */
      step_kwnames[nstep_kw] = k;
      step_kwargs[nstep_kw++] = kwargs[i];
    }
    if (!ok)
      return lv_error();
  }
  if (ns == 0 && !have_length) {
    diag_error(L->d, call->loc, "scan without sequences needs length=n");
    return lv_error();
  }
  /* time to the front of every sequence */
  int time_axis = 0;
  for (int i = 0; i < ns; i++) {
    int rank = seqs[i]->type.shape.rank;
    if (axis < -rank || axis >= rank) {
      diag_error(L->d, argnodes[2]->loc,
                 "scan axis %lld is out of range for sequence %d of rank %d",
                 (long long)axis, i, rank);
      return lv_error();
    }
    time_axis = (int)(axis < 0 ? axis + rank : axis);
    seqs[i] = move_axis(L, seqs[i], time_axis, 0, loc);
    if (!seqs[i])
      return lv_error();
  }
  if (ns > 0 && !have_length)
    length = seqs[0]->type.shape.dims[0];
  Value **ops =
      arena_alloc(&L->m->arena, sizeof(Value *) * (size_t)(nc + ns + 1));
  for (int i = 0; i < nc; i++)
    ops[i] = carries[i];
  for (int i = 0; i < ns; i++)
    ops[nc + i] = seqs[i];
  Attrs a;
  memset(&a, 0, sizeof a);
  a.scan.ncarry = nc;
  a.scan.nseq = ns;
  a.scan.length = length;
  a.scan.reverse = reverse;
  a.scan.with_index = with_index;
  a.scan.until = until;
  /* the step function's parameter names name the region's arguments */
  const AstNode *fn = args[0].fn, *params = fn->kids[0];
  int nargs_step = nc + ns + (with_index ? 1 : 0);
  const char **names =
      arena_alloc(&L->m->arena, sizeof(char *) * (size_t)(nargs_step + 1));
  for (int i = 0; i < nargs_step && i < params->nkids; i++)
    names[i] = params->kids[i]->text;
  Op *scan = ir_scan_begin(L->m, L->body, ops, nc + ns, &a, names, loc);
  Block *body = scan->regions[0], *outer = L->body;
  LVal *step_args =
      arena_alloc(&L->m->arena, sizeof(LVal) * (size_t)(nargs_step + 1));
  for (int i = 0; i < nargs_step; i++)
    step_args[i] = lv_tensor(body->args[i]);
  L->body = body;
  LVal ret = lower_call_user(L, fn, call, step_args, nargs_step, step_kwnames,
                             step_kwargs, nstep_kw);
  L->body = outer;
  if (lv_is_error(ret))
    return ret;
  int ny = ret.kind == LV_TUPLE || ret.kind == LV_LIST ? ret.nitems
           : ret.kind == LV_TENSOR                     ? 1
                                                       : 0;
  if (ny < nc + (until ? 1 : 0)) {
    diag_error(L->d, call->loc,
               "the step function '%s' returns %d value%s, but the scan has "
               "%d carr%s%s",
               fn->text, ny, ny == 1 ? "" : "s", nc, nc == 1 ? "y" : "ies",
               until ? " and needs a done flag after them (until=true)" : "");
    return lv_error();
  }
  Value **ys = arena_alloc(&L->m->arena, sizeof(Value *) * (size_t)(ny + 1));
  for (int i = 0; i < ny; i++) {
    LVal v = ret.kind == LV_TENSOR ? ret : ret.items[i];
    if (v.kind != LV_TENSOR) {
      diag_error(L->d, call->loc,
                 "result %d of the step function '%s' is %s, not a tensor", i,
                 fn->text, lv_kind_name(v.kind));
      return lv_error();
    }
    ys[i] = v.v;
  }
  if (until && ys[nc]->type.dtype != DT_BOOL &&
      ys[nc]->type.shape.rank == 0) { /* a number as done: != 0 */
    Type bt = {DT_BOOL, shape_scalar()};
    Block *outer_body = L->body;
    L->body = body;
    ys[nc] = lower_op(L, OP_CAST, &ys[nc], 1, NULL, &bt, loc);
    L->body = outer_body;
    if (!ys[nc])
      return lv_error();
  }
  if (!ir_scan_finish(L->m, scan, ys, ny, loc, L->d)) {
    diag_note(L->d, fn->loc, "the step function '%s' is defined here",
              fn->text);
    return lv_error();
  }
  LVal r = lv_void();
  r.kind = LV_TUPLE;
  r.nitems = ny; /* with until, the done flag's place goes to the count */
  r.items = arena_alloc(&L->m->arena, sizeof(LVal) * (size_t)(ny + 1));
  for (int i = 0; i < ny; i++) {
    Value *v = scan->results[i];
    bool is_count = until && i == ny - 1;
    if (i >= nc && ns > 0 && !is_count) { /* time back to `axis` */
      int rank = v->type.shape.rank;
      v = move_axis(L, v, 0, time_axis < rank ? time_axis : rank - 1, loc);
      if (!v)
        return lv_error();
    }
    r.items[i] = lv_tensor(v);
  }
  return ny == 1 ? r.items[0] : r;
}
