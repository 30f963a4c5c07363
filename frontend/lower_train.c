/* Lowering: the `minimize` builtin, one optimizer step of a training entry.
 *
 *   loss = minimize(adam, gan_d_loss, real, z, params=["disc."],
 *                   max_norm=1.0, lr=2e-4, beta1=0.5)
 *
 * calls the loss function on the arguments (a float scalar), takes its
 * gradient with respect to the weights it reads (those whose names equal
 * or start with an item of `params`; all of them by default), optionally
 * scales the gradients as torch.nn.utils.clip_grad_norm_(max_norm) does,
 * and applies the optimizer function to each weight in the convention of
 * models/lib/optim.model:
 *
 *   opt(p, g, state_1, ..., state_k, step, hyper...) -> (p', state_1', ...)
 *
 * its parameters before the one named `step` being p, g and the k states;
 * minimize's other keyword arguments are the hyperparameters. The value is
 * the loss (before the update).
 *
 * The entry becomes a training entry: it gets an input `step` (f32[], the
 * 1-based step number), an input per optimizer state ("<weight>:<state>",
 * zeros before the first step), and outputs holding each updated weight
 * (named as the weight) and each state's new value, marked with what they
 * update (FuncOutput.updates_param / updates_input). The backends keep the
 * states in the entry's arena from call to call (codegen/c_storage.c); the
 * program feeds the weights back before the next step. Statements run in
 * order: after a minimize, reads of an updated weight (`param` declarations,
 * top-level names bound to it, grad's weight names) see its new value,
 * through a stop_gradient, so a later minimize does not differentiate this
 * update (as torch's optimizer.step runs under no_grad).
 */
#include "lower_internal.h"

#include <stdio.h>
#include <string.h>

static const char *const minimize_sig =
    "minimize(optimizer, loss_fn, args..., params=[\"name\" or \"prefix\", "
    "...], max_norm=..., hyperparameter=...)";

struct LowerTrain {
  int cap;        /* of now and assigned */
  Value **now;    /* by param index: the weight's value after its last update */
  bool *assigned; /* by param index: a buffer set by assign(), not trained */
  Value *step;
  int nstates, cap_states;
  int *state_input; /* the input of each optimizer state */
  Value **state_now;
};

static LowerTrain *train_state(Lowerer *L) {
  if (!L->train)
    L->train = arena_alloc(&L->m->arena, sizeof *L->train);
  LowerTrain *t = L->train;
  if (t->cap < L->m->nparams) {
    int cap = L->m->nparams * 2 + 8;
    t->now = arena_grow(&L->m->arena, t->now, sizeof(Value *) * (size_t)t->cap,
                        sizeof(Value *) * (size_t)cap);
    t->assigned =
        arena_grow(&L->m->arena, t->assigned, (size_t)t->cap, (size_t)cap);
    t->cap = cap;
  }
  return t;
}

Value *lower_weight_read(Lowerer *L, int p, const Type *t, Loc loc) {
  if (L->train && p < L->train->cap && L->train->now[p])
    return L->train->now[p];
  Attrs a;
  memset(&a, 0, sizeof a);
  a.param.index = p;
  return lower_op(L, OP_PARAM, NULL, 0, &a, t, loc);
}

/* Marks in `reads` the params the value depends on: read directly, or
 * through the value of an earlier update. */
static void mark_reads(Lowerer *L, const Value *v, bool *seen, bool *reads) {
  if (seen[v->id])
    return;
  seen[v->id] = true;
  for (int p = 0; L->train && p < L->train->cap && p < L->m->nparams; p++)
    if (L->train->now[p] == v) {
      reads[p] = true;
      return;
    }
  const Op *op = v->def;
  if (!op)
    return;
  if (op->kind == OP_PARAM)
    reads[op->attrs.param.index] = true;
  for (int i = 0; i < op->noperands; i++)
    mark_reads(L, op->operands[i], seen, reads);
  for (int r = 0; r < op->nregions; r++)
    for (const Op *in = op->regions[r]->first; in; in = in->next)
      for (int k = 0; k < in->nresults; k++)
        mark_reads(L, in->results[k], seen, reads);
}

/* Which weights to update: those the loss reads that `params` selects. */
static bool select_weights(Lowerer *L, const AstNode *call, Value *loss,
                           LVal sel, const AstNode *sel_node, bool *chosen) {
  int np = L->m->nparams;
  bool *seen = arena_alloc(&L->m->arena, (size_t)L->m->next_value_id + 1);
  bool *reads = arena_alloc(&L->m->arena, (size_t)np + 1);
  mark_reads(L, loss, seen, reads);
  bool many = sel.kind == LV_LIST || sel.kind == LV_TUPLE;
  int nitems = !sel_node ? 0 : many ? sel.nitems : 1;
  for (int p = 0; p < np; p++) /* buffers (assign) are not trained */
    reads[p] &= !(L->train && p < L->train->cap && L->train->assigned[p]);
  for (int p = 0; p < np; p++)
    chosen[p] = reads[p] && !sel_node;
  for (int i = 0; i < nitems; i++) {
    LVal item = many ? sel.items[i] : sel;
    if (item.kind != LV_STRING || !item.s[0]) {
      diag_error(L->d, sel_node->loc,
                 "params are weight names or prefixes of them: %s",
                 minimize_sig);
      return false;
    }
    bool any = false;
    for (int p = 0; p < np; p++)
      if (reads[p] &&
          strncmp(L->m->params[p].name, item.s, strlen(item.s)) == 0)
        chosen[p] = any = true;
    if (!any) {
      diag_error(L->d, sel_node->loc,
                 "params: the loss reads no weight named '%s' or starting "
                 "with it",
                 item.s);
      return false;
    }
  }
  for (int p = 0; p < np; p++)
    if (chosen[p])
      return true;
  diag_error(L->d, call->loc, "minimize: the loss reads no weight");
  return false;
}

static Value *scalar(Lowerer *L, double v, Loc loc) {
  return lower_to_tensor(L, lv_float(v), DT_F32, loc);
}

static Value *binary(Lowerer *L, OpKind k, Value *a, Value *b, Loc loc) {
  Value *ops[2] = {a, b};
  return lower_op(L, k, ops, 2, NULL, NULL, loc);
}

/* clip_grad_norm_(max_norm): every gradient times min(max_norm / (total +
 * 1e-6), 1), total the 2-norm of the per-weight 2-norms. */
static bool clip(Lowerer *L, Value **g, int n, double max_norm, Loc loc) {
  Value *total = NULL;
  for (int i = 0; i < n; i++) {
    Attrs a;
    memset(&a, 0, sizeof a);
    a.reduce.axes = (1u << g[i]->type.shape.rank) - 1;
    Value *sq = binary(L, OP_MUL, g[i], g[i], loc);
    Value *sum = sq ? lower_op(L, OP_REDUCE_SUM, &sq, 1, &a, NULL, loc) : NULL;
    Value *norm = sum ? lower_op(L, OP_SQRT, &sum, 1, NULL, NULL, loc) : NULL;
    Value *n2 = norm ? binary(L, OP_MUL, norm, norm, loc) : NULL;
    if (!n2)
      return false;
    total = total ? binary(L, OP_ADD, total, n2, loc) : n2;
  }
  total = total ? lower_op(L, OP_SQRT, &total, 1, NULL, NULL, loc) : NULL;
  Value *den =
      total ? binary(L, OP_ADD, total, scalar(L, 1e-6, loc), loc) : NULL;
  Value *f = den ? binary(L, OP_DIV, scalar(L, max_norm, loc), den, loc) : NULL;
  f = f ? binary(L, OP_MINIMUM, f, scalar(L, 1.0, loc), loc) : NULL;
  for (int i = 0; f && i < n; i++)
    if (!(g[i] = binary(L, OP_MUL, g[i], f, loc)))
      return false;
  return f != NULL;
}

/* A new input of the entry, named `name` (made unique). */
static Value *train_input(Lowerer *L, const char *name, Type t, Loc loc) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s", name);
  for (int k = 2;; k++) {
    bool taken = false;
    for (int i = 0; i < L->fn->ninputs && !taken; i++)
      taken = strcmp(L->fn->inputs[i].name, buf) == 0;
    if (!taken)
      break;
    snprintf(buf, sizeof buf, "%s#%d", name, k);
  }
  return ir_add_input(L->m, L->fn, ir_strdup(L->m, buf), t, loc);
}

static void add_state(Lowerer *L, LowerTrain *t, Value *v) {
  if (t->nstates == t->cap_states) {
    int cap = t->cap_states * 2 + 8;
    t->state_input =
        arena_grow(&L->m->arena, t->state_input,
                   sizeof(int) * (size_t)t->nstates, sizeof(int) * (size_t)cap);
    t->state_now = arena_grow(&L->m->arena, t->state_now,
                              sizeof(Value *) * (size_t)t->nstates,
                              sizeof(Value *) * (size_t)cap);
    t->cap_states = cap;
  }
  t->state_input[t->nstates] = L->fn->ninputs - 1;
  t->state_now[t->nstates++] = v;
}

/* Weight p is v (through a stop_gradient) from now on: its reads, and the
 * names bound to its previous value `old` or to a param op of it. */
static bool set_weight(Lowerer *L, int p, Value *old, Value *v, Loc loc) {
  Value *nw = lower_op(L, OP_STOP_GRADIENT, &v, 1, NULL, NULL, loc);
  if (!nw)
    return false;
  for (Scope *s = L->globals; s; s = s->parent)
    for (Binding *b = s->bindings; b; b = b->next)
      if (b->val.kind == LV_TENSOR &&
          (b->val.v == old ||
           (b->val.v->def && b->val.v->def->kind == OP_PARAM &&
            b->val.v->def->attrs.param.index == p)))
        b->val.v = nw;
  train_state(L)->now[p] = nw;
  return true;
}

/* Applies the optimizer to weight p with gradient g; false after an error. */
static bool update(Lowerer *L, const AstNode *call, const AstNode *opt,
                   int nstate, int p, Value *g, const char **kw, LVal *kwv,
                   int nkw, Loc loc) {
  LowerTrain *t = train_state(L);
  const Param *w = &L->m->params[p];
  Type wt = w->type;
  LVal *args = arena_alloc(&L->m->arena, sizeof(LVal) * (size_t)(nstate + 3));
  Value *old = lower_weight_read(L, p, &wt, loc);
  if (!old)
    return false;
  args[0] = lv_tensor(old);
  args[1] = lv_tensor(g);
  int first = t->nstates;
  for (int j = 0; j < nstate; j++) {
    char name[512];
    snprintf(name, sizeof name, "%s:%s", w->name,
             opt->kids[0]->kids[j + 2]->text);
    Value *s = train_input(L, name, wt, loc);
    add_state(L, t, s);
    args[j + 2] = lv_tensor(s);
  }
  args[nstate + 2] = lv_tensor(t->step);
  LVal r = lower_call_user(L, opt, call, args, nstate + 3, kw, kwv, nkw);
  if (lv_is_error(r))
    return false;
  int nr = r.kind == LV_TUPLE ? r.nitems : 1;
  for (int j = 0; j < nr && nr == nstate + 1; j++) {
    LVal x = r.kind == LV_TUPLE ? r.items[j] : r;
    if (x.kind != LV_TENSOR || !type_eq(&x.v->type, &wt))
      nr = -1;
  }
  if (nr != nstate + 1) {
    char ty[256];
    type_print(ty, sizeof ty, &wt, L->m);
    diag_error(L->d, call->loc,
               "the optimizer '%s' must return the new weight and its %d "
               "state%s, each %s like weight '%s'",
               opt->text, nstate, nstate == 1 ? "" : "s", ty, w->name);
    diag_note(L->d, opt->loc, "'%s' is defined here", opt->text);
    return false;
  }
  for (int j = 0; j < nstate; j++)
    t->state_now[first + j] = r.items[j + 1].v;
  return set_weight(L, p, old, r.kind == LV_TUPLE ? r.items[0].v : r.v, loc);
}

LVal lower_minimize(Lowerer *L, const AstNode *call, LVal *args,
                    const AstNode **argnodes, int nargs, const char **kwnames,
                    LVal *kwargs, const AstNode **kwnodes, int nkw) {
  Loc loc = lower_loc(L, call);
  if (nargs < 2 || args[0].kind != LV_FUNC || args[1].kind != LV_FUNC) {
    diag_error(L->d, nargs ? argnodes[nargs < 2 ? 0 : 1]->loc : call->loc,
               "minimize takes an optimizer function and a loss function: %s",
               minimize_sig);
    return lv_error();
  }
  if (L->body != L->fn->body) {
    diag_error(L->d, call->loc,
               "minimize updates weights: it runs in an entry, not in a "
               "scan's step");
    return lv_error();
  }
  const AstNode *opt = args[0].fn;
  const AstNode *oparams = opt->kids[0];
  int nstate = -1;
  for (int i = 2; i < oparams->nkids && nstate < 0; i++)
    if (strcmp(oparams->kids[i]->text, "step") == 0)
      nstate = i - 2;
  if (nstate < 0) {
    diag_error(L->d, argnodes[0]->loc,
               "the optimizer '%s' must take (p, g, states..., step, ...) as "
               "lib/optim.model's do",
               opt->text);
    diag_note(L->d, opt->loc, "'%s' is defined here", opt->text);
    return lv_error();
  }
  const char **kw =
      arena_alloc(&L->m->arena, sizeof(char *) * (size_t)(nkw + 1));
  LVal *kwv = arena_alloc(&L->m->arena, sizeof(LVal) * (size_t)(nkw + 1));
  int n = 0;
  LVal sel = lv_void(), max_norm = lv_void();
  const AstNode *sel_node = NULL, *norm_node = NULL;
  for (int i = 0; i < nkw; i++) {
    if (!strcmp(kwnames[i], "params"))
      sel = kwargs[i], sel_node = kwnodes[i];
    else if (!strcmp(kwnames[i], "max_norm"))
      max_norm = kwargs[i], norm_node = kwnodes[i];
    else
      kw[n] = kwnames[i], kwv[n++] = kwargs[i];
  }
  double norm = 0;
  int64_t inorm;
  if (norm_node && max_norm.kind == LV_FLOAT)
    norm = max_norm.f;
  else if (norm_node && max_norm.kind == LV_INT &&
           dim_is_const(max_norm.dim, &inorm))
    norm = (double)inorm;
  else if (norm_node) {
    diag_error(L->d, norm_node->loc, "max_norm must be a number");
    return lv_error();
  }
  const AstNode *fn = args[1].fn;
  LVal loss = lower_call_user(L, fn, call, args + 2, nargs - 2, NULL, NULL, 0);
  if (lv_is_error(loss))
    return loss;
  if (loss.kind != LV_TENSOR || !dtype_is_float(loss.v->type.dtype) ||
      loss.v->type.shape.rank != 0) {
    diag_error(L->d, call->loc,
               "minimize needs a loss function that returns a float scalar");
    diag_note(L->d, fn->loc, "'%s' is defined here", fn->text);
    return lv_error();
  }
  int np = L->m->nparams;
  bool *chosen = arena_alloc(&L->m->arena, (size_t)np + 1);
  if (!select_weights(L, call, loss.v, sel, sel_node, chosen))
    return lv_error();
  LowerTrain *t = train_state(L);
  if (!t->step) {
    Type st = {DT_F32, shape_scalar()};
    t->step = train_input(L, "step", st, loc);
    L->fn->inputs[L->fn->ninputs - 1].step = true;
  }
  Value **g = arena_alloc(&L->m->arena, sizeof(Value *) * (size_t)(np + 1));
  int *which = arena_alloc(&L->m->arena, sizeof(int) * (size_t)(np + 1));
  int k = 0;
  for (int p = 0; p < np; p++) {
    if (!chosen[p])
      continue;
    Type wt = L->m->params[p].type;
    Value *ops[2] = {loss.v, lower_weight_read(L, p, &wt, loc)};
    if (!ops[1] || !(g[k] = lower_op(L, OP_GRAD, ops, 2, NULL, NULL, loc)))
      return lv_error();
    which[k++] = p;
  }
  if (norm_node && !clip(L, g, k, norm, loc))
    return lv_error();
  for (int i = 0; i < k; i++)
    if (!update(L, call, opt, nstate, which[i], g[i], kw, kwv, n, loc))
      return lv_error();
  return loss;
}

LVal lower_train_builtin(Lowerer *L, const char *name, const AstNode *call,
                         LVal *args, const AstNode **argnodes, int nargs,
                         int nkw) {
  Loc loc = lower_loc(L, call);
  bool assign = strcmp(name, "assign") == 0;
  if (nkw > 0 || nargs != 1 + assign || args[assign].kind != LV_TENSOR ||
      (assign && args[0].kind != LV_STRING)) {
    diag_error(L->d, call->loc, "%s",
               assign ? "assign(\"weight.name\", tensor) takes a weight's "
                        "name and its new value"
                      : "stop_gradient(tensor) takes one tensor");
    return lv_error();
  }
  if (!assign) {
    Value *v = lower_op(L, OP_STOP_GRADIENT, &args[0].v, 1, NULL, NULL, loc);
    return v ? lv_tensor(v) : lv_error();
  }
  int p = 0;
  while (p < L->m->nparams && strcmp(L->m->params[p].name, args[0].s))
    p++;
  if (p == L->m->nparams) {
    diag_error(L->d, argnodes[0]->loc,
               "assign: the model declares no weight named '%s'", args[0].s);
    return lv_error();
  }
  if (!type_eq(&L->m->params[p].type, &args[1].v->type) ||
      L->body != L->fn->body) {
    diag_error(L->d, call->loc,
               L->body != L->fn->body
                   ? "assign sets a weight: it runs in an entry, not in a "
                     "scan's step"
                   : "assign: the value's type is not weight '%s''s",
               args[0].s);
    return lv_error();
  }
  Value *old = lower_weight_read(L, p, &args[1].v->type, loc);
  if (!old || !set_weight(L, p, old, args[1].v, loc))
    return lv_error();
  L->train->assigned[p] = true;
  return lv_void();
}

void lower_train_outputs(Lowerer *L) {
  LowerTrain *t = L->train;
  if (!t)
    return;
  for (int p = 0; p < t->cap && p < L->m->nparams; p++) {
    if (!t->now[p])
      continue;
    ir_add_output(L->m, L->fn, L->m->params[p].name, t->now[p],
                  L->m->params[p].loc);
    L->fn->outputs[L->fn->noutputs - 1].updates_param = p;
  }
  for (int i = 0; i < t->nstates; i++) {
    const FuncInput *in = &L->fn->inputs[t->state_input[i]];
    ir_add_output(L->m, L->fn, in->name, t->state_now[i], in->loc);
    L->fn->outputs[L->fn->noutputs - 1].updates_input = t->state_input[i];
  }
  L->train = NULL;
}
