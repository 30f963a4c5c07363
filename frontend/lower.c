/* Lowering, part 1: scopes, statements, expressions and user functions.
 *
 * Invariants: every IR op built here carries the location of the AST node it
 * came from and the name of the user function being inlined (Loc.scope);
 * compile-time values never become IR unless they meet a tensor; errors are
 * reported once, at the innermost node, and propagate as lv_error().
 *
 *   fn gelu(x) = 0.5 * x * (1 + tanh(...))      h = gelu(h @ w)
 * becomes, at the call site, the ops of gelu's body applied to the value of
 * `h @ w`, each located at gelu's line with scope "gelu".
 */
#include "../runtime/mc_runtime.h"
#include "lower_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- values ------------------------------------------------------------ */
LVal lv_void(void) {
  LVal v;
  memset(&v, 0, sizeof v);
  v.kind = LV_VOID;
  return v;
}
LVal lv_dim(Dim d) {
  LVal v = lv_void();
  v.kind = LV_INT;
  v.dim = d;
  return v;
}
LVal lv_int(int64_t i) {
  return lv_dim(dim_const(i));
}
LVal lv_float(double f) {
  LVal v = lv_void();
  v.kind = LV_FLOAT;
  v.f = f;
  return v;
}
LVal lv_bool(bool b) {
  LVal v = lv_void();
  v.kind = LV_BOOL;
  v.b = b;
  return v;
}
LVal lv_tensor(Value *t) {
  LVal v = lv_void();
  if (!t)
    return lv_error();
  v.kind = LV_TENSOR;
  v.v = t;
  return v;
}
static const char error_marker[] = "error";
LVal lv_error(void) {
  LVal v = lv_void();
  v.s = error_marker;
  return v;
}
bool lv_is_error(LVal v) {
  return v.kind == LV_VOID && v.s == error_marker;
}

const char *lv_kind_name(LKind k) {
  switch (k) {
  case LV_VOID:
    return "nothing";
  case LV_INT:
    return "an integer";
  case LV_FLOAT:
    return "a number";
  case LV_BOOL:
    return "a bool";
  case LV_STRING:
    return "a string";
  case LV_TENSOR:
    return "a tensor";
  case LV_LIST:
    return "a list";
  case LV_TUPLE:
    return "a tuple";
  case LV_FUNC:
    return "a function";
  case LV_BUILTIN:
    return "a builtin";
  case LV_NONE:
    return "None";
  case LV_ELLIPSIS:
    return "...";
  case LV_SLICE:
    return "a slice";
  }
  return "a value";
}

Loc lower_loc(Lowerer *L, const AstNode *n) {
  Loc l = n ? n->loc : loc_none();
  l.scope = L->scope;
  return l;
}

/* ---- scopes -------------------------------------------------------------- */
void scope_bind(Lowerer *L, Scope *s, const char *name, LVal v) {
  for (Binding *b = s->bindings; b; b = b->next)
    if (strcmp(b->name, name) == 0) {
      b->val = v;
      return;
    }
  Binding *b = arena_alloc(&L->m->arena, sizeof *b);
  b->name = ir_strdup(L->m, name);
  b->val = v;
  b->next = s->bindings;
  s->bindings = b;
}

bool scope_find(Scope *s, const char *name, LVal *out) {
  for (; s; s = s->parent)
    for (Binding *b = s->bindings; b; b = b->next)
      if (strcmp(b->name, name) == 0) {
        *out = b->val;
        return true;
      }
  return false;
}

bool lower_lookup(Lowerer *L, Scope *s, const char *name, LVal *out) {
  (void)L;
  if (scope_find(s, name, out))
    return true;
  if (lower_is_builtin(name)) {
    *out = lv_void();
    out->kind = LV_BUILTIN;
    out->s = name;
    return true;
  }
  return false;
}

static void report_unknown_name(Lowerer *L, Scope *s, const AstNode *n) {
  const char *best = NULL;
  size_t best_d = 3;
  for (Scope *sc = s; sc; sc = sc->parent)
    for (Binding *b = sc->bindings; b; b = b->next) {
      size_t dist = mc_edit_distance(n->text, b->name);
      if (dist < best_d) {
        best_d = dist;
        best = b->name;
      }
    }
  /* builtins too, when the name is long enough for a typo to be likely */
  const char *name;
  for (int i = 0; (name = lower_builtin_name(i)) != NULL; i++) {
    size_t dist = mc_edit_distance(n->text, name);
    if (dist < best_d && 3 * dist <= strlen(n->text)) {
      best_d = dist;
      best = name;
    }
  }
  if (best)
    diag_error(L->d, n->loc, "unknown name '%s'; did you mean '%s'?", n->text,
               best);
  else
    diag_error(L->d, n->loc, "unknown name '%s'", n->text);
}

bool lower_const_int(Lowerer *L, Scope *s, const AstNode *n, int64_t *out) {
  LVal v = lower_expr(L, s, n);
  if (lv_is_error(v))
    return false;
  if (v.kind == LV_INT && dim_is_const(v.dim, out))
    return true;
  diag_error(L->d, n->loc, "expected a constant integer, got %s",
             v.kind == LV_INT ? "a symbolic dimension" : lv_kind_name(v.kind));
  return false;
}

/* ---- expressions -----------------------------------------------------------
 */
static LVal lower_call(Lowerer *L, Scope *s, const AstNode *n);

static LVal lower_list(Lowerer *L, Scope *s, const AstNode *n, LKind kind) {
  LVal v = lv_void();
  v.kind = kind;
  v.nitems = n->nkids;
  v.items = arena_alloc(&L->m->arena, sizeof(LVal) * (size_t)(n->nkids + 1));
  for (int i = 0; i < n->nkids; i++) {
    v.items[i] = lower_expr(L, s, n->kids[i]);
    if (lv_is_error(v.items[i]))
      return lv_error();
  }
  return v;
}

static LVal lower_expr_kind(Lowerer *L, Scope *s, const AstNode *n);

/* Lowering recurses on the AST and through user functions' bodies: the
 * parser bounds one expression's height (AST_MAX_DEPTH), this the nesting
 * of expressions and statements counted through every call, so that no
 * valid model runs the C stack out; and the number of values made, so that
 * loops and calls cannot make a model that takes minutes and gigabytes. */
static bool lower_enter(Lowerer *L, const AstNode *n) {
  int max_values =
      L->opt->max_values > 0 ? L->opt->max_values : LOWER_MAX_VALUES;
  if (L->m->next_value_id > max_values) {
    if (!L->nesting_reported)
      diag_error(L->d, n->loc,
                 "limit exceeded: the model lowers to more than %d values",
                 max_values);
    L->nesting_reported = true;
    return false;
  }
  if (L->nesting >= LOWER_MAX_NESTING) {
    if (!L->nesting_reported)
      diag_error(L->d, n->loc,
                 "limit exceeded: expressions and statements nested deeper "
                 "than %d, counting through calls",
                 LOWER_MAX_NESTING);
    L->nesting_reported = true;
    return false;
  }
  L->nesting++;
  return true;
}

LVal lower_expr(Lowerer *L, Scope *s, const AstNode *n) {
  if (!lower_enter(L, n))
    return lv_error();
  LVal v = lower_expr_kind(L, s, n);
  L->nesting--;
  return v;
}

static LVal lower_expr_kind(Lowerer *L, Scope *s, const AstNode *n) {
  switch (n->kind) {
  case AST_INT:
    return lv_int(n->ival);
  case AST_FLOAT:
    return lv_float(n->fval);
  case AST_BOOL:
    return lv_bool(n->ival != 0);
  case AST_STRING: {
    LVal v = lv_void();
    v.kind = LV_STRING;
    v.s = lower_interpolate(L, s, n);
    return v.s ? v : lv_error();
  }
  case AST_NONE: {
    LVal v = lv_void();
    v.kind = LV_NONE;
    return v;
  }
  case AST_ELLIPSIS: {
    LVal v = lv_void();
    v.kind = LV_ELLIPSIS;
    return v;
  }
  case AST_NAME: {
    LVal v;
    if (lower_lookup(L, s, n->text, &v))
      return v;
    report_unknown_name(L, s, n);
    return lv_error();
  }
  case AST_UNARY: {
    LVal a = lower_expr(L, s, n->kids[0]);
    if (lv_is_error(a))
      return a;
    return lower_unary(L, n->op, a, n);
  }
  case AST_BINARY: {
    LVal a = lower_expr(L, s, n->kids[0]);
    if (lv_is_error(a))
      return a;
    LVal b = lower_expr(L, s, n->kids[1]);
    if (lv_is_error(b))
      return b;
    return lower_binary(L, n->op, a, b, n);
  }
  case AST_CALL:
    return lower_call(L, s, n);
  case AST_INDEX: {
    LVal base = lower_expr(L, s, n->kids[0]);
    if (lv_is_error(base))
      return base;
    int ni = n->nkids - 1;
    LVal *items = arena_alloc(&L->m->arena, sizeof(LVal) * (size_t)(ni + 1));
    const AstNode **nodes =
        arena_alloc(&L->m->arena, sizeof(AstNode *) * (size_t)(ni + 1));
    for (int i = 0; i < ni; i++) {
      nodes[i] = n->kids[i + 1];
      items[i] = lower_expr(L, s, n->kids[i + 1]);
      if (lv_is_error(items[i]))
        return items[i];
    }
    return lower_index(L, base, items, nodes, ni, n);
  }
  case AST_SLICE: {
    LVal v = lv_void();
    v.kind = LV_SLICE;
    v.nitems = 3;
    v.items = arena_alloc(&L->m->arena, sizeof(LVal) * 3);
    for (int i = 0; i < 3; i++) {
      if (i < n->nkids && n->kids[i]) {
        v.items[i] = lower_expr(L, s, n->kids[i]);
        if (lv_is_error(v.items[i]))
          return v.items[i];
      } else {
        v.items[i] = lv_void();
        v.items[i].kind = LV_NONE;
      }
    }
    return v;
  }
  case AST_ATTR: {
    LVal base = lower_expr(L, s, n->kids[0]);
    if (lv_is_error(base))
      return base;
    return lower_attr(L, base, n->text, n);
  }
  case AST_LIST:
    return lower_list(L, s, n, LV_LIST);
  case AST_TUPLE:
    return lower_list(L, s, n, LV_TUPLE);
  case AST_KWARG:
  case AST_TYPE:
  case AST_CONST:
  case AST_INPUT:
  case AST_OUTPUT:
  case AST_PARAM:
  case AST_ASSIGN:
  case AST_EXPR:
  case AST_FOR:
  case AST_IF:
  case AST_RETURN:
  case AST_BLOCK:
  case AST_FN:
  case AST_PARAMS:
  case AST_ENTRY:
  case AST_INCLUDE:
  case AST_MODULE:
  case AST_COUNT:
    break;
  }
  diag_error(L->d, n->loc, "expected an expression");
  return lv_error();
}

static LVal lower_call(Lowerer *L, Scope *s, const AstNode *n) {
  const AstNode *callee = n->kids[0];
  LVal f = lower_expr(L, s, callee);
  if (lv_is_error(f))
    return f;
  int nargs = 0, nkw = 0, total = n->nkids - 1;
  LVal *args = arena_alloc(&L->m->arena, sizeof(LVal) * (size_t)(total + 1));
  const AstNode **argnodes =
      arena_alloc(&L->m->arena, sizeof(AstNode *) * (size_t)(total + 1));
  LVal *kwargs = arena_alloc(&L->m->arena, sizeof(LVal) * (size_t)(total + 1));
  const AstNode **kwnodes =
      arena_alloc(&L->m->arena, sizeof(AstNode *) * (size_t)(total + 1));
  const char **kwnames =
      arena_alloc(&L->m->arena, sizeof(char *) * (size_t)(total + 1));
  for (int i = 1; i < n->nkids; i++) {
    const AstNode *a = n->kids[i];
    if (a->kind == AST_KWARG) {
      for (int j = 0; j < nkw; j++)
        if (strcmp(kwnames[j], a->text) == 0) {
          diag_error(L->d, a->loc, "argument '%s' given twice", a->text);
          return lv_error();
        }
      kwnames[nkw] = a->text;
      kwnodes[nkw] = a;
      /* dtype=f32: a dtype name is a value here */
      DType dt;
      if (a->kids[0]->kind == AST_NAME && lower_dtype(a->kids[0]->text, &dt)) {
        kwargs[nkw] = lv_void();
        kwargs[nkw].kind = LV_BUILTIN;
        kwargs[nkw].s = a->kids[0]->text;
      } else {
        kwargs[nkw] = lower_expr(L, s, a->kids[0]);
      }
      if (lv_is_error(kwargs[nkw]))
        return kwargs[nkw];
      nkw++;
    } else {
      if (nkw > 0) {
        diag_error(L->d, a->loc, "positional argument after keyword argument");
        return lv_error();
      }
      argnodes[nargs] = a;
      args[nargs] = lower_expr(L, s, a);
      if (lv_is_error(args[nargs]))
        return args[nargs];
      nargs++;
    }
  }
  if (f.kind == LV_FUNC)
    return lower_call_user(L, f.fn, n, args, nargs, kwnames, kwargs, nkw);
  if (f.kind == LV_BUILTIN)
    return lower_call_builtin(L, f.s, n, args, argnodes, nargs, kwnames, kwargs,
                              kwnodes, nkw);
  diag_error(L->d, callee->loc, "%s is not callable", lv_kind_name(f.kind));
  return lv_error();
}

/* ---- statements
 * -------------------------------------------------------------- */
static LStatus lower_stmts(Lowerer *L, Scope *s, const AstNode *block,
                           LVal *ret);

static LStatus lower_assign(Lowerer *L, Scope *s, const AstNode *n) {
  const AstNode *target = n->kids[0];
  LVal v = lower_expr(L, s, n->kids[1]);
  if (lv_is_error(v))
    return LS_ERROR;
  if (target->kind == AST_NAME) {
    if (v.kind == LV_VOID) {
      diag_error(L->d, n->kids[1]->loc, "the expression has no value");
      return LS_ERROR;
    }
    if (v.kind == LV_TENSOR && !v.v->name)
      v.v->name = ir_strdup(L->m, target->text);
    scope_bind(L, s, target->text, v);
    return LS_OK;
  }
  /* a, b = tuple */
  if (v.kind != LV_TUPLE && v.kind != LV_LIST) {
    diag_error(L->d, n->kids[1]->loc, "cannot unpack %s into %d names",
               lv_kind_name(v.kind), target->nkids);
    return LS_ERROR;
  }
  if (v.nitems != target->nkids) {
    diag_error(L->d, n->kids[1]->loc, "cannot unpack %d values into %d names",
               v.nitems, target->nkids);
    return LS_ERROR;
  }
  for (int i = 0; i < target->nkids; i++) {
    const AstNode *t = target->kids[i];
    if (t->kind != AST_NAME) {
      diag_error(L->d, t->loc, "can only assign to names");
      return LS_ERROR;
    }
    LVal item = v.items[i];
    if (item.kind == LV_TENSOR && !item.v->name)
      item.v->name = ir_strdup(L->m, t->text);
    scope_bind(L, s, t->text, item);
  }
  return LS_OK;
}

static LStatus lower_for(Lowerer *L, Scope *s, const AstNode *n, LVal *ret) {
  int64_t lo = 0, hi;
  if (n->kids[1]) {
    if (!lower_const_int(L, s, n->kids[0], &lo) ||
        !lower_const_int(L, s, n->kids[1], &hi))
      return LS_ERROR;
  } else if (!lower_const_int(L, s, n->kids[0], &hi)) {
    return LS_ERROR;
  }
  long limit = L->opt->max_unroll > 0 ? L->opt->max_unroll : 100000;
  for (int64_t i = lo; i < hi; i++) {
    if (++L->unrolled > limit) {
      diag_error(L->d, n->loc,
                 "limit exceeded: more than %ld loop iterations unrolled",
                 limit);
      return LS_ERROR;
    }
    scope_bind(L, s, n->text, lv_int(i));
    LStatus st = lower_stmts(L, s, n->kids[2], ret);
    if (st != LS_OK)
      return st;
  }
  return LS_OK;
}

static bool truth(Lowerer *L, LVal c, const AstNode *n, bool *out) {
  int64_t iv;
  if (c.kind == LV_BOOL) {
    *out = c.b;
    return true;
  }
  if (c.kind == LV_INT && dim_is_const(c.dim, &iv)) {
    *out = iv != 0;
    return true;
  }
  diag_error(L->d, n->loc,
             "the condition of 'if' must be known at compile time, not %s",
             lv_kind_name(c.kind));
  return false;
}

static LStatus lower_stmt_kind(Lowerer *L, Scope *s, const AstNode *n,
                               LVal *ret);

LStatus lower_stmt(Lowerer *L, Scope *s, const AstNode *n, LVal *ret) {
  if (!lower_enter(L, n))
    return LS_ERROR;
  LStatus st = lower_stmt_kind(L, s, n, ret);
  L->nesting--;
  return st;
}

static LStatus lower_stmt_kind(Lowerer *L, Scope *s, const AstNode *n,
                               LVal *ret) {
  switch (n->kind) {
  case AST_ASSIGN:
    return lower_assign(L, s, n);
  case AST_PARAM:
    return lower_param(L, s, n);
  case AST_EXPR: {
    LVal v = lower_expr(L, s, n->kids[0]);
    return lv_is_error(v) ? LS_ERROR : LS_OK;
  }
  case AST_FOR:
    return lower_for(L, s, n, ret);
  case AST_IF: {
    LVal c = lower_expr(L, s, n->kids[0]);
    bool t;
    if (lv_is_error(c) || !truth(L, c, n->kids[0], &t))
      return LS_ERROR;
    if (t)
      return lower_stmts(L, s, n->kids[1], ret);
    if (n->nkids > 2 && n->kids[2]) {
      if (n->kids[2]->kind == AST_IF)
        return lower_stmt(L, s, n->kids[2], ret);
      return lower_stmts(L, s, n->kids[2], ret);
    }
    return LS_OK;
  }
  case AST_RETURN:
    if (!s->fn_name) {
      diag_error(L->d, n->loc, "'return' outside a function");
      return LS_ERROR;
    }
    *ret =
        n->nkids > 0 && n->kids[0] ? lower_expr(L, s, n->kids[0]) : lv_void();
    return lv_is_error(*ret) ? LS_ERROR : LS_RETURN;
  case AST_BLOCK:
    return lower_stmts(L, s, n, ret);
  case AST_CONST:
  case AST_INPUT:
  case AST_OUTPUT:
  case AST_FN:
  case AST_ENTRY:
  case AST_INCLUDE:
    diag_error(L->d, n->loc, "'%s' is only allowed at the top level%s",
               n->kind == AST_CONST    ? "const"
               : n->kind == AST_INPUT  ? "input"
               : n->kind == AST_OUTPUT ? "output"
               : n->kind == AST_FN     ? "fn"
               : n->kind == AST_ENTRY  ? "entry"
                                       : "include",
               n->kind == AST_INPUT || n->kind == AST_OUTPUT ? " or in an entry"
                                                             : "");
    return LS_ERROR;
  case AST_INT:
  case AST_FLOAT:
  case AST_BOOL:
  case AST_STRING:
  case AST_NAME:
  case AST_NONE:
  case AST_ELLIPSIS:
  case AST_UNARY:
  case AST_BINARY:
  case AST_CALL:
  case AST_KWARG:
  case AST_INDEX:
  case AST_SLICE:
  case AST_ATTR:
  case AST_LIST:
  case AST_TUPLE:
  case AST_TYPE:
  case AST_PARAMS:
  case AST_MODULE:
  case AST_COUNT:
    break;
  }
  diag_error(L->d, n->loc, "expected a statement");
  return LS_ERROR;
}

static LStatus lower_stmts(Lowerer *L, Scope *s, const AstNode *block,
                           LVal *ret) {
  if (block->kind != AST_BLOCK)
    return lower_stmt(L, s, block, ret);
  for (int i = 0; i < block->nkids; i++) {
    LStatus st = lower_stmt(L, s, block->kids[i], ret);
    if (st != LS_OK)
      return st;
  }
  return LS_OK;
}

/* ---- user functions
 * ----------------------------------------------------------- */
LVal lower_call_user(Lowerer *L, const AstNode *fn, const AstNode *call,
                     LVal *args, int nargs, const char **kwnames, LVal *kwargs,
                     int nkw) {
  const AstNode *params = fn->kids[0];
  int np = params->nkids;
  int limit = L->opt->max_call_depth > 0 ? L->opt->max_call_depth : 256;
  if (L->depth >= limit) {
    diag_error(L->d, call->loc,
               "limit exceeded: calls nested deeper than %d (recursion?)",
               limit);
    return lv_error();
  }
  if (nargs > np) {
    diag_error(L->d, call->loc, "'%s' takes %d argument%s, got %d", fn->text,
               np, np == 1 ? "" : "s", nargs);
    diag_note(L->d, fn->loc, "'%s' is defined here", fn->text);
    return lv_error();
  }
  Scope scope = {NULL, L->globals, fn->text};
  bool *set = arena_alloc(&L->m->arena, (size_t)np + 1);
  for (int i = 0; i < nargs; i++) {
    const AstNode *p = params->kids[i];
    scope_bind(L, &scope, p->text, args[i]);
    set[i] = true;
  }
  for (int k = 0; k < nkw; k++) {
    int i;
    for (i = 0; i < np; i++)
      if (strcmp(params->kids[i]->text, kwnames[k]) == 0)
        break;
    if (i == np) {
      diag_error(L->d, call->loc, "'%s' has no parameter named '%s'", fn->text,
                 kwnames[k]);
      return lv_error();
    }
    if (set[i]) {
      diag_error(L->d, call->loc, "argument '%s' given twice", kwnames[k]);
      return lv_error();
    }
    scope_bind(L, &scope, kwnames[k], kwargs[k]);
    set[i] = true;
  }
  for (int i = 0; i < np; i++) {
    if (set[i])
      continue;
    const AstNode *p = params->kids[i];
    if (p->kind != AST_KWARG) {
      diag_error(L->d, call->loc, "missing argument '%s' of '%s'", p->text,
                 fn->text);
      diag_note(L->d, fn->loc, "'%s' is defined here", fn->text);
      return lv_error();
    }
    /* defaults are evaluated in the global scope */
    LVal dv = lower_expr(L, L->globals, p->kids[0]);
    if (lv_is_error(dv))
      return dv;
    scope_bind(L, &scope, p->text, dv);
  }
  L->depth++;
  const char *outer_scope = L->scope;
  L->scope = fn->text;
  LVal ret = lv_void();
  LStatus st;
  if (fn->kids[1]->kind == AST_BLOCK) {
    st = lower_stmts(L, &scope, fn->kids[1], &ret);
  } else {
    ret = lower_expr(L, &scope, fn->kids[1]);
    st = lv_is_error(ret) ? LS_ERROR : LS_RETURN;
  }
  L->depth--;
  L->scope = outer_scope;
  if (st == LS_ERROR) {
    if (L->depth < 4)
      diag_note(L->d, call->loc, "in this call of '%s'", fn->text);
    return lv_error();
  }
  return ret;
}
