/* Lowering: the `grad` builtin, reverse-mode gradients.
 *
 *   value, d_x, d_w = grad(f, x, t, wrt=["x", "fc1.weight"], kw=...)
 *
 * calls the user function f (inlined, as any call) on the arguments, which
 * must return a float scalar, and gives the tuple (that value, its gradient
 * with respect to each wrt item, in order). A wrt item is the name of one of
 * f's arguments (a tensor), or a weight's name as in the weights file (the
 * weight may be declared inside f), or a tensor in scope. Other keyword
 * arguments go to f, as scan's go to its step function.
 *
 * It lowers to one `grad(value, wrt)` op per item (a weight: a param op of
 * it, standing for every read); passes/autodiff.c replaces them by the
 * gradient's ops, in program order, so f may itself take a gradient.
 */
#include "lower_internal.h"

#include <string.h>

static const char *const grad_sig =
    "grad(f, args..., wrt=[\"arg\" or \"weight.name\", ...], f_kwarg=...)";

/* The value a wrt item names; NULL after an error. */
static Value *wrt_value(Lowerer *L, const AstNode *fn, LVal item,
                        const AstNode *at, LVal *args, int nargs,
                        const char **kwnames, LVal *kwargs, int nkw, Loc loc) {
  if (item.kind == LV_TENSOR)
    return item.v;
  if (item.kind != LV_STRING) {
    diag_error(L->d, at->loc,
               "a wrt item is an argument's or a weight's name, or a tensor, "
               "not %s",
               lv_kind_name(item.kind));
    return NULL;
  }
  const AstNode *params = fn->kids[0];
  LVal arg = lv_void();
  bool found = false;
  for (int i = 0; i < params->nkids && !found; i++)
    if (!strcmp(params->kids[i]->text, item.s) && i < nargs)
      arg = args[i], found = true;
  for (int k = 0; k < nkw && !found; k++)
    if (!strcmp(kwnames[k], item.s))
      arg = kwargs[k], found = true;
  if (found) {
    if (arg.kind != LV_TENSOR) {
      diag_error(L->d, at->loc,
                 "grad with respect to '%s': the argument is %s, not a tensor",
                 item.s, lv_kind_name(arg.kind));
      return NULL;
    }
    return arg.v;
  }
  for (int p = 0; p < L->m->nparams; p++)
    if (!strcmp(L->m->params[p].name, item.s))
      return lower_weight_read(L, p, NULL, loc);
  diag_error(L->d, at->loc,
             "grad with respect to '%s': '%s' has no argument of that name "
             "and reads no weight of that name",
             item.s, fn->text);
  diag_note(L->d, fn->loc, "'%s' is defined here", fn->text);
  return NULL;
}

LVal lower_grad(Lowerer *L, const AstNode *call, LVal *args,
                const AstNode **argnodes, int nargs, const char **kwnames,
                LVal *kwargs, const AstNode **kwnodes, int nkw) {
  Loc loc = lower_loc(L, call);
  if (nargs < 1 || args[0].kind != LV_FUNC) {
    diag_error(L->d, nargs ? argnodes[0]->loc : call->loc,
               "the first argument of grad must be a user function: %s",
               grad_sig);
    return lv_error();
  }
  const AstNode *fn = args[0].fn;
  const char **fkw =
      arena_alloc(&L->m->arena, sizeof(char *) * (size_t)(nkw + 1));
  LVal *fargs = arena_alloc(&L->m->arena, sizeof(LVal) * (size_t)(nkw + 1));
  int nf = 0, wrt_at = -1;
  for (int i = 0; i < nkw; i++) {
    if (!strcmp(kwnames[i], "wrt")) {
      wrt_at = i;
    } else {
      fkw[nf] = kwnames[i];
      fargs[nf++] = kwargs[i];
    }
  }
  if (wrt_at < 0) {
    diag_error(L->d, call->loc, "grad needs wrt=[...]: %s", grad_sig);
    return lv_error();
  }
  LVal wrt = kwargs[wrt_at];
  const AstNode *wrt_node = kwnodes[wrt_at];
  bool many = wrt.kind == LV_LIST || wrt.kind == LV_TUPLE;
  int nwrt = many ? wrt.nitems : 1;
  if (nwrt == 0) {
    diag_error(L->d, wrt_node->loc, "grad needs at least one wrt item");
    return lv_error();
  }
  LVal value =
      lower_call_user(L, fn, call, args + 1, nargs - 1, fkw, fargs, nf);
  if (lv_is_error(value))
    return value;
  if (value.kind != LV_TENSOR || !dtype_is_float(value.v->type.dtype) ||
      value.v->type.shape.rank != 0) {
    char t[256] = "";
    if (value.kind == LV_TENSOR)
      type_print(t, sizeof t, &value.v->type, L->m);
    diag_error(L->d, call->loc,
               "grad differentiates a function that returns a float scalar; "
               "'%s' returns %s",
               fn->text,
               value.kind == LV_TENSOR ? t : lv_kind_name(value.kind));
    diag_note(L->d, fn->loc, "'%s' is defined here", fn->text);
    return lv_error();
  }
  LVal r = lv_void();
  r.kind = LV_TUPLE;
  r.nitems = nwrt + 1;
  r.items = arena_alloc(&L->m->arena, sizeof(LVal) * (size_t)(nwrt + 1));
  r.items[0] = value;
  for (int i = 0; i < nwrt; i++) {
    Value *w = wrt_value(L, fn, many ? wrt.items[i] : wrt, wrt_node, args + 1,
                         nargs - 1, fkw, fargs, nf, loc);
    if (!w)
      return lv_error();
    Value *ops[2] = {value.v, w};
    Value *g = lower_op(L, OP_GRAD, ops, 2, NULL, NULL, loc);
    if (!g)
      return lv_error();
    r.items[i + 1] = lv_tensor(g);
  }
  return r;
}
