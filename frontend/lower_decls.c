/* Lowering, part 5: declarations and the top level: const, input, output,
 * param (with weight names interpolated from compile-time values), type
 * annotations, -D overrides, and lower_module, which runs the whole file.
 *
 *   input x: f32[B, T, d_model]     B and T become symbols unless -D binds them
 *   param w: f32[d] from "layers.{i}.norm1.weight"
 */
#include "lower_internal.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Expands "h.{i}.ln_1.weight" with compile-time values in scope. */
const char *lower_interpolate(Lowerer *L, Scope *s, const AstNode *str) {
  char buf[1024];
  size_t o = 0;
  const char *p = str->text;
  while (*p) {
    if (*p == '{') {
      const char *end = strchr(p, '}');
      if (!end) {
        diag_error(L->d, str->loc, "unterminated '{' in string \"%s\"",
                   str->text);
        return NULL;
      }
      char name[128];
      size_t len = (size_t)(end - p - 1);
      if (len == 0 || len >= sizeof name) {
        diag_error(L->d, str->loc, "bad '{...}' in string \"%s\"", str->text);
        return NULL;
      }
      memcpy(name, p + 1, len);
      name[len] = 0;
      LVal v;
      if (!lower_lookup(L, s, name, &v)) {
        diag_error(L->d, str->loc, "unknown name '%s' in string \"%s\"", name,
                   str->text);
        return NULL;
      }
      int64_t iv;
      int w;
      if (v.kind == LV_INT && dim_is_const(v.dim, &iv))
        w = snprintf(buf + o, sizeof buf - o, "%lld", (long long)iv);
      else if (v.kind == LV_STRING)
        w = snprintf(buf + o, sizeof buf - o, "%s", v.s);
      else {
        diag_error(L->d, str->loc,
                   "'%s' in string \"%s\" must be a constant integer or "
                   "a string, not %s",
                   name, str->text, lv_kind_name(v.kind));
        return NULL;
      }
      if (w < 0 || (size_t)w >= sizeof buf - o) {
        diag_error(L->d, str->loc, "string too long (limit 1023 bytes)");
        return NULL;
      }
      o += (size_t)w;
      p = end + 1;
    } else {
      if (o + 1 >= sizeof buf) {
        diag_error(L->d, str->loc, "string too long (limit 1023 bytes)");
        return NULL;
      }
      buf[o++] = *p++;
    }
  }
  buf[o] = 0;
  return ir_strdup(L->m, buf);
}

/* Evaluates a type annotation. In input declarations unknown names become
 * symbols (allow_symbols); elsewhere every dimension must be known. */
static bool lower_type(Lowerer *L, Scope *s, const AstNode *t,
                       bool allow_symbols, Type *out) {
  if (!lower_dtype(t->text, &out->dtype)) {
    diag_error(L->d, t->loc,
               "unknown dtype '%s' (expected f32, f64, i32, "
               "i64 or bool)",
               t->text);
    return false;
  }
  if (t->nkids > MAX_RANK) {
    diag_error(L->d, t->loc, "rank %d exceeds the limit of %d", t->nkids,
               MAX_RANK);
    return false;
  }
  out->shape.rank = t->nkids;
  for (int i = 0; i < t->nkids; i++) {
    const AstNode *e = t->kids[i];
    LVal v;
    if (allow_symbols && e->kind == AST_NAME &&
        !lower_lookup(L, s, e->text, &v)) {
      /* a -D for this name binds the symbol to a number */
      for (int k = 0; k < L->opt->ndefines; k++)
        if (strcmp(L->opt->defines[k].name, e->text) == 0) {
          char *end;
          errno = 0;
          long long c = strtoll(L->opt->defines[k].value, &end, 10);
          if (*end || errno || c < 0) {
            diag_error(L->d, L->opt->defines[k].loc,
                       "-D %s=%s: a dimension must be a non-negative integer",
                       e->text, L->opt->defines[k].value);
            return false;
          }
          L->opt->defines[k].used = true;
          v = lv_int(c);
          scope_bind(L, L->globals, e->text, v);
          goto have;
        }
      int sym = ir_symbol(L->m, e->text);
      if (sym < 0) {
        diag_error(L->d, e->loc, "too many symbolic dimensions (limit %d)",
                   MAX_SYMBOLS);
        return false;
      }
      v = lv_dim(dim_sym(sym));
      scope_bind(L, L->globals, e->text, v);
    } else {
      v = lower_expr(L, s, e);
      if (lv_is_error(v))
        return false;
    }
  have:
    if (v.kind != LV_INT) {
      diag_error(L->d, e->loc, "a dimension must be an integer, not %s",
                 lv_kind_name(v.kind));
      return false;
    }
    int64_t c;
    if (dim_is_const(v.dim, &c) && c < 0) {
      diag_error(L->d, e->loc, "negative dimension %lld", (long long)c);
      return false;
    }
    out->shape.dims[i] = v.dim;
  }
  return true;
}

static bool check_declared(Lowerer *L, const Type *want, Value *v, Loc loc,
                           const char *what, const char *name) {
  if (type_eq(want, &v->type))
    return true;
  char a[256], b[256];
  type_print(a, sizeof a, want, L->m);
  type_print(b, sizeof b, &v->type, L->m);
  diag_error(L->d, loc, "%s '%s' is declared %s but computes %s", what, name, a,
             b);
  if (v->def && v->def->loc.file)
    diag_note(L->d, v->def->loc, "the value %s comes from here", b);
  return false;
}

LStatus lower_param(Lowerer *L, Scope *s, const AstNode *n) {
  Type t;
  if (!lower_type(L, s, n->kids[0], false, &t))
    return LS_ERROR;
  if (t.dtype != DT_F32) {
    diag_error(L->d, n->kids[0]->loc,
               "parameters are f32 (the file may store f16, bf16 or f64)");
    return LS_ERROR;
  }
  if (!shape_is_const(&t.shape)) {
    char buf[256];
    shape_print(buf, sizeof buf, &t.shape, L->m);
    diag_error(L->d, n->kids[0]->loc,
               "parameter shape %s must not depend on symbolic dimensions",
               buf);
    return LS_ERROR;
  }
  const char *wname = n->text;
  if (n->nkids > 1 && n->kids[1]) {
    wname = lower_interpolate(L, s, n->kids[1]);
    if (!wname)
      return LS_ERROR;
  }
  int idx = ir_add_param(L->m, wname, t, n->loc, L->d);
  if (idx < 0)
    return LS_ERROR;
  Value *v = lower_weight_read(L, idx, &t, lower_loc(L, n));
  if (!v)
    return LS_ERROR;
  if (!v->name)
    v->name = ir_strdup(L->m, n->text);
  scope_bind(L, s, n->text, lv_tensor(v));
  return LS_OK;
}

/* ---- top level
 * ----------------------------------------------------------------- */
static bool parse_define(Lowerer *L, LowerDefine *def, const AstNode *n,
                         LVal *out) {
  char *end;
  errno = 0;
  long long iv = strtoll(def->value, &end, 10);
  if (*end == 0 && errno == 0 && end != def->value) {
    *out = lv_int(iv);
    def->used = true;
    return true;
  }
  errno = 0;
  double fv = strtod(def->value, &end);
  if (*end == 0 && errno == 0 && end != def->value) {
    *out = lv_float(fv);
    def->used = true;
    return true;
  }
  diag_error(L->d, def->loc.file ? def->loc : n->loc,
             "-D %s=%s: value is not a number", def->name, def->value);
  return false;
}

static bool lower_const_decl(Lowerer *L, const AstNode *n) {
  LVal v = lv_void();
  bool overridden = false;
  for (int k = 0; k < L->opt->ndefines; k++)
    if (strcmp(L->opt->defines[k].name, n->text) == 0) {
      if (!parse_define(L, &L->opt->defines[k], n, &v))
        return false;
      overridden = true;
    }
  if (!overridden) {
    v = lower_expr(L, L->globals, n->kids[0]);
    if (lv_is_error(v))
      return false;
  }
  int64_t iv;
  bool known = false;
  for (int i = 0; i < L->m->nconsts; i++)
    known |= strcmp(L->m->consts[i].name, n->text) == 0;
  if (known) {
    /* registered by an earlier entry's run of the top level */
  } else if (v.kind == LV_INT && dim_is_const(v.dim, &iv)) {
    ir_add_const(L->m, n->text, iv);
  } else if (v.kind == LV_FLOAT) {
    ir_add_const_float(L->m, n->text, v.f);
  } else if (v.kind == LV_BOOL) {
    ir_add_const(L->m, n->text, v.b);
  } else if (v.kind != LV_STRING) {
    diag_error(L->d, n->kids[0]->loc,
               "a constant must be a number, a bool or a string, not %s",
               lv_kind_name(v.kind));
    return false;
  }
  scope_bind(L, L->globals, n->text, v);
  return true;
}

static bool lower_input(Lowerer *L, const AstNode *n) {
  Type t;
  if (!lower_type(L, L->globals, n->kids[0], true, &t))
    return false;
  for (int i = 0; i < L->fn->ninputs; i++)
    if (strcmp(L->fn->inputs[i].name, n->text) == 0) {
      diag_error(L->d, n->loc, "input '%s' declared twice", n->text);
      diag_note(L->d, L->fn->inputs[i].loc, "first declared here");
      return false;
    }
  Value *v = ir_add_input(L->m, L->fn, n->text, t, n->loc);
  if (n->nkids > 1 && n->kids[1]) {
    LVal dv = lower_expr(L, L->globals, n->kids[1]);
    if (lv_is_error(dv))
      return false;
    FuncInput *in = &L->fn->inputs[L->fn->ninputs - 1];
    int64_t iv;
    if (dv.kind == LV_BOOL)
      in->default_value = dv.b;
    else if (dv.kind == LV_FLOAT)
      in->default_value = dv.f;
    else if (dv.kind == LV_INT && dim_is_const(dv.dim, &iv))
      in->default_value = (double)iv;
    else {
      diag_error(L->d, n->kids[1]->loc,
                 "the default of an input must be a number or a bool");
      return false;
    }
    in->has_default = true;
  }
  scope_bind(L, L->globals, n->text, lv_tensor(v));
  return true;
}

static bool lower_output(Lowerer *L, const AstNode *n) {
  LVal v = lower_expr(L, L->globals, n->kids[0]);
  if (lv_is_error(v))
    return false;
  Loc loc = lower_loc(L, n);
  Type want;
  bool declared = n->nkids > 1 && n->kids[1];
  if (declared && !lower_type(L, L->globals, n->kids[1], false, &want))
    return false;
  if (v.kind != LV_TENSOR) {
    if (v.kind != LV_INT && v.kind != LV_FLOAT && v.kind != LV_BOOL) {
      diag_error(L->d, n->kids[0]->loc, "output '%s' must be a tensor, not %s",
                 n->text, lv_kind_name(v.kind));
      return false;
    }
    DType dt = declared             ? want.dtype
               : v.kind == LV_FLOAT ? DT_F32
               : v.kind == LV_BOOL  ? DT_BOOL
                                    : DT_I32;
    Value *t = lower_to_tensor(L, v, dt, loc);
    if (!t)
      return false;
    v = lv_tensor(t);
  }
  if (declared &&
      !check_declared(L, &want, v.v, n->kids[0]->loc, "output", n->text))
    return false;
  for (int i = 0; i < L->fn->noutputs; i++)
    if (strcmp(L->fn->outputs[i].name, n->text) == 0) {
      diag_error(L->d, n->loc, "output '%s' declared twice", n->text);
      diag_note(L->d, L->fn->outputs[i].loc, "first declared here");
      return false;
    }
  ir_add_output(L->m, L->fn, n->text, v.v, n->loc);
  return true;
}

static const char *file_stem(Module *m, const char *path) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  char buf[256];
  size_t o = 0;
  for (const char *p = base; *p && *p != '.' && o + 1 < sizeof buf; p++)
    buf[o++] = (char)((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                              (*p >= '0' && *p <= '9')
                          ? *p
                          : '_');
  buf[o] = 0;
  if (o == 0 || (buf[0] >= '0' && buf[0] <= '9'))
    return ir_strdup(m, "model");
  return ir_strdup(m, buf);
}

static void bind_globals(Lowerer *L, const AstNode *root) {
  static const struct {
    const char *name;
    double value;
  } numbers[] = {
      {"pi", 3.14159265358979323846}, {"inf", INFINITY}, {"nan", NAN}};
  for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++)
    scope_bind(L, L->globals, numbers[i].name, lv_float(numbers[i].value));
  /* Functions first, so a model can call a function defined below. */
  for (int i = 0; i < root->nkids; i++) {
    const AstNode *n = root->kids[i];
    if (n->kind != AST_FN)
      continue;
    LVal prev;
    if (scope_find(L->globals, n->text, &prev) && prev.kind == LV_FUNC) {
      diag_error(L->d, n->loc, "function '%s' defined twice", n->text);
      diag_note(L->d, prev.fn->loc, "first defined here");
      continue;
    }
    LVal f = lv_void();
    f.kind = LV_FUNC;
    f.fn = n;
    scope_bind(L, L->globals, n->text, f);
  }
}

/* After a statement failed: binds the names it would have defined to the
 * error value, so later uses fail silently instead of as unknown names or
 * with errors that only echo the first. */
static void poison_names(Lowerer *L, const AstNode *n) {
  LVal old;
  if (n->kind == AST_CONST || n->kind == AST_INPUT || n->kind == AST_PARAM) {
    /* a declaration repeated in error leaves the first one standing */
    if (n->text && !scope_find(L->globals, n->text, &old))
      scope_bind(L, L->globals, n->text, lv_error());
  } else if (n->kind == AST_ASSIGN) {
    const AstNode *target = n->kids[0];
    if (target->kind == AST_NAME)
      scope_bind(L, L->globals, target->text, lv_error());
    else
      for (int i = 0; i < target->nkids; i++)
        if (target->kids[i]->kind == AST_NAME)
          scope_bind(L, L->globals, target->kids[i]->text, lv_error());
  }
}

/* Runs top-level statements (or an entry's) into L->fn. io: whether input
 * and output declarations are allowed here. Recovery: when no error came
 * before, every statement runs even after one fails (the names a failed
 * statement defines are poisoned), so independent errors are all reported;
 * after earlier errors nothing runs, so a later entry's run of the top level
 * does not report them again. */
static void run_statements(Lowerer *L, const AstNode *block, bool io,
                           int errors0) {
  if (L->d->nerrors != errors0)
    return;
  for (int i = 0; i < block->nkids; i++) {
    const AstNode *n = block->kids[i];
    LVal ret = lv_void();
    int before = L->d->nerrors;
    if (n->kind == AST_FN || n->kind == AST_ENTRY)
      continue;
    if ((n->kind == AST_INPUT || n->kind == AST_OUTPUT) && !io) {
      diag_error(L->d, n->loc,
                 "this model has entry points: declare %ss inside an entry",
                 n->kind == AST_INPUT ? "input" : "output");
      continue;
    }
    if (n->kind == AST_CONST)
      lower_const_decl(L, n);
    else if (n->kind == AST_INPUT)
      lower_input(L, n);
    else if (n->kind == AST_OUTPUT)
      lower_output(L, n);
    else
      lower_stmt(L, L->globals, n, &ret);
    if (L->d->nerrors != before)
      poison_names(L, n);
  }
}

static void lower_entry(Lowerer *L, const AstNode *root, const AstNode *entry,
                        int errors0) {
  Scope globals = {NULL, NULL, NULL};
  L->globals = &globals;
  L->train = NULL;
  for (Function *f = L->m->functions; f; f = f->next)
    if (entry && strcmp(f->name, entry->text) == 0) {
      diag_error(L->d, entry->loc, "entry '%s' defined twice", entry->text);
      diag_note(L->d, f->loc, "first defined here");
      return;
    }
  L->fn = ir_function_new(L->m, entry ? entry->text : L->m->name,
                          entry ? entry->loc : root->loc);
  L->body = L->fn->body;
  bind_globals(L, root);
  run_statements(L, root, entry == NULL, errors0);
  if (entry)
    run_statements(L, entry->kids[0], true, errors0);
  lower_train_outputs(L);
  /* a model without entries: the whole file is at fault, not its line 1 */
  Loc whole_file = {root->loc.file, 0, 0, 0, NULL};
  if (L->d->nerrors == errors0 && L->fn->noutputs == 0)
    diag_error(L->d, entry ? entry->loc : whole_file,
               entry ? "entry '%s' declares no output"
                     : "the model declares no output%s",
               entry ? entry->text : "");
  L->globals = NULL;
}

void lower_free_includes(LowerOptions *opt) {
  for (int i = 0; i < opt->nincluded; i++)
    ast_free(opt->included[i]);
  free(opt->included);
  opt->included = NULL;
  opt->nincluded = 0;
}

enum { MAX_INCLUDE_DEPTH = 16 };

typedef struct Flat {
  int n, cap;
  AstNode **kids;
  const char *stack[MAX_INCLUDE_DEPTH + 1]; /* files being included */
  int depth;
} Flat;

static void flat_push(Lowerer *L, Flat *f, AstNode *n) {
  if (f->n == f->cap) {
    int cap = f->cap ? 2 * f->cap : 64;
    f->kids =
        arena_grow(&L->m->arena, f->kids, sizeof(AstNode *) * (size_t)f->n,
                   sizeof(AstNode *) * (size_t)cap);
    f->cap = cap;
  }
  f->kids[f->n++] = n;
}

/* The top-level statements with every include replaced by the statements of
 * the file it names (recursively). */
static bool flatten(Lowerer *L, const AstNode *root, Flat *f) {
  bool ok = true;
  for (int i = 0; i < root->nkids; i++) {
    AstNode *n = root->kids[i];
    if (n->kind != AST_INCLUDE) {
      flat_push(L, f, n);
      continue;
    }
    /* relative to the including file's directory */
    const char *from = n->loc.file ? n->loc.file : "";
    const char *slash = strrchr(from, '/');
    char path[4096];
    if (n->text[0] == '/' || !slash)
      snprintf(path, sizeof path, "%s", n->text);
    else
      snprintf(path, sizeof path, "%.*s/%s", (int)(slash - from), from,
               n->text);
    if (f->depth >= MAX_INCLUDE_DEPTH) {
      diag_error(L->d, n->loc, "limit exceeded: includes nested deeper than %d",
                 MAX_INCLUDE_DEPTH);
      return false;
    }
    bool seen = false;
    for (int k = 0; k <= f->depth && !seen; k++)
      seen = f->stack[k] && strcmp(f->stack[k], path) == 0;
    for (int k = 0; k < L->opt->nincluded && !seen; k++)
      seen = strcmp(L->opt->included[k]->path, path) == 0;
    if (seen) {
      diag_error(L->d, n->loc, "'%s' is already included", path);
      ok = false;
      continue;
    }
    AstModule *inc = ast_parse_file(ir_strdup(L->m, path), L->d);
    if (!inc) {
      diag_note(L->d, n->loc, "included from here");
      ok = false;
      continue;
    }
    AstModule **list =
        realloc(L->opt->included,
                sizeof(AstModule *) * (size_t)(L->opt->nincluded + 1));
    if (!list) {
      ast_free(inc);
      diag_error(L->d, n->loc, "out of memory");
      return false;
    }
    L->opt->included = list;
    list[L->opt->nincluded++] = inc;
    f->stack[++f->depth] = inc->path;
    ok &= flatten(L, inc->root, f);
    f->depth--;
  }
  return ok;
}

static Module *lower_module_here(const AstModule *ast, LowerOptions *opt,
                                 Diag *d) {
  Module *m = ir_module_new("model");
  m->name = file_stem(m, ast->path);
  m->source_file = ir_strdup(m, ast->path);
  Lowerer L = {.m = m, .d = d, .opt = opt, .ast = ast};
  int errors0 = d->nerrors;
  Flat flat = {0, 0, NULL, {ast->path}, 0};
  if (!flatten(&L, ast->root, &flat)) {
    ir_module_free(m);
    return NULL;
  }
  AstNode top = *ast->root;
  top.nkids = flat.n;
  top.kids = flat.kids;
  const AstNode *root = &top;
  int nentries = 0;
  bool found = opt->entry == NULL;
  for (int i = 0; i < root->nkids && d->nerrors == errors0; i++) {
    const AstNode *n = root->kids[i];
    if (n->kind != AST_ENTRY)
      continue;
    nentries++;
    if (opt->entry && strcmp(opt->entry, n->text) != 0)
      continue;
    found = true;
    lower_entry(&L, root, n, errors0);
  }
  if (nentries == 0 && d->nerrors == errors0) {
    if (opt->entry && strcmp(opt->entry, m->name) == 0)
      found = true;
    lower_entry(&L, root, NULL, errors0);
  }
  if (!found && d->nerrors == errors0)
    diag_error(d, loc_none(),
               "--entry %s: the model has no entry point named "
               "'%s'",
               opt->entry, opt->entry);
  if (d->nerrors == errors0) {
    for (int k = 0; k < opt->ndefines; k++)
      if (!opt->defines[k].used)
        diag_error(d, opt->defines[k].loc,
                   "-D %s: the model has no constant or dimension named '%s'",
                   opt->defines[k].name, opt->defines[k].name);
  }
  if (d->nerrors != errors0) {
    ir_module_free(m);
    return NULL;
  }
  return m;
}

/* Lowering recurses on the AST and through calls, up to LOWER_MAX_NESTING
 * levels; a sanitized build's frames take kilobytes each, more than a
 * default 8 MiB stack holds at that depth. So it runs on a thread of its own
 * with LOWER_STACK_BYTES of stack (reserved, and touched only as deep as the
 * model nests), or on the caller's stack if no such thread can be made. */
#define LOWER_STACK_BYTES ((size_t)256 << 20)

typedef struct LowerJob {
  const AstModule *ast;
  LowerOptions *opt;
  Diag *d;
  Module *m;
} LowerJob;

static void *lower_job(void *arg) {
  LowerJob *job = arg;
  job->m = lower_module_here(job->ast, job->opt, job->d);
  return NULL;
}

Module *lower_module(const AstModule *ast, LowerOptions *opt, Diag *d) {
  LowerJob job = {ast, opt, d, NULL};
  pthread_attr_t attr;
  pthread_t thread;
  if (pthread_attr_init(&attr) == 0) {
    bool started = pthread_attr_setstacksize(&attr, LOWER_STACK_BYTES) == 0 &&
                   pthread_create(&thread, &attr, lower_job, &job) == 0;
    pthread_attr_destroy(&attr);
    if (started) {
      pthread_join(thread, NULL);
      return job.m;
    }
  }
  return lower_module_here(ast, opt, d);
}
