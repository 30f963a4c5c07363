/* The public surface of a generated model: its header's documentation and
 * declarations, the weights table with open/close, and the McModelInfo whose
 * run adapter turns McTensors into a typed run call.
 *
 * The adapter binds each symbol from the first input dimension that is
 * c*S + k (c > 0) and checks every other dimension against it, so a message
 * names both sides: "input 'pad': dimension 1 is 7 but T = 5 from input 'x'".
 * An absent optional input binds nothing; a symbol only such inputs give is
 * a run-time usage error, one no input shape gives an emit-time error.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "c_emit.h"

/* ---- header
 * ------------------------------------------------------------------- */

void cg_emit_header_function(FnEmit *fe) {
  Emitter *e = fe->e;
  const Function *f = fe->f;
  CgBuf *h = &e->header;
  char ty[256];
  cg_buf_printf(h, "/* %s: function '%s'.\n", fe->run, f->name);
  for (int i = 0; i < f->ninputs; i++) {
    const FuncInput *in = &f->inputs[i];
    type_print(ty, sizeof ty, &in->value->type, e->m);
    cg_buf_printf(h, " *   input  %s: %s", fe->in_names[i], ty);
    if (in->has_default)
      cg_buf_printf(h, " (optional: NULL means every element is %g)",
                    in->default_value);
    cg_buf_puts(h, "\n");
  }
  for (int i = 0; i < f->noutputs; i++) {
    type_print(ty, sizeof ty, &f->outputs[i].value->type, e->m);
    cg_buf_printf(h, " *   output %s: %s\n", fe->out_names[i], ty);
  }
  cg_buf_printf(h, " * %d weights (listed in %s_info.weights).",
                ir_file_params(e->m), fe->prefix);
  if (fe->nbuffers > 0)
    cg_buf_printf(h,
                  "\n * A call callocs one arena of %s bytes\n * for its %d "
                  "intermediates (shared by lifetime) and frees it\n * before "
                  "returning. */\n",
                  cg_plan_arena_text(fe), fe->nbuffers);
  else
    cg_buf_puts(h, " A call needs no workspace. */\n");
  cg_buf_printf(h, "size_t %s(", fe->wsize);
  int n = 0;
  for (int s = 0; s < e->m->nsymbols; s++)
    if (fe->syms & (UINT64_C(1) << s))
      cg_buf_printf(h, "%sint64_t %s", n++ ? ", " : "", e->symnames[s]);
  cg_buf_printf(h, "%s);\n", n ? "" : "void");
  cg_buf_printf(h, "int %s%s;\n", fe->run, cg_run_params(fe, true));
  cg_buf_printf(h, "extern const McModelInfo %s_info;\n\n", fe->prefix);
}

/* ---- McModelInfo.run
 * ------------------------------------------------------------ */

/* Whether d is c*S + k with c > 0: the adapter can solve it for S. */
static bool dim_linear(Dim d, int *sym, int64_t *c, int64_t *k) {
  *k = 0;
  int nsym = 0;
  for (int t = 0; t < d.nterms; t++) {
    const DimTerm *term = &d.terms[t];
    if (term->nfactors == 0) {
      *k = term->coef;
    } else if (term->nfactors == 1 && term->coef > 0) {
      *sym = term->sym[0];
      *c = term->coef;
      nsym++;
    } else {
      return false;
    }
  }
  return nsym == 1;
}

typedef enum BindState { UNBOUND, BOUND_STATIC, BOUND_DYNAMIC } BindState;

typedef struct Binder {
  FnEmit *fe;
  CgBuf body;
  BindState state[MAX_SYMBOLS];
  const char *from[MAX_SYMBOLS]; /* BOUND_STATIC: the input's name */
} Binder;

static void bind_line(Binder *b, int depth, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void bind_line(Binder *b, int depth, const char *fmt, ...) {
  for (int i = 0; i < depth; i++)
    cg_buf_puts(&b->body, "  ");
  va_list ap;
  va_start(ap, fmt);
  cg_buf_vprintf(&b->body, fmt, ap);
  va_end(ap);
  cg_buf_puts(&b->body, "\n");
}

/* S = (v - k) / c, checking v has that form. */
static void emit_bind(Binder *b, int depth, const char *name, int axis,
                      const char *v, Dim d, int s, int64_t c, int64_t k) {
  Emitter *e = b->fe->e;
  const char *sn = e->symnames[s];
  if (c == 1 && k == 0) {
    bind_line(b, depth, "%s = %s;", sn, v);
    return;
  }
  char text[128];
  dim_print(text, sizeof text, d, e->m);
  bind_line(b, depth,
            "if (%s < %" PRId64 " || (%s - %" PRId64 ") %% %" PRId64 " != 0)",
            v, k, v, k, c);
  bind_line(b, depth + 1,
            "return mc_fail(err, MC_ERR_SHAPE, \"input '%s': dimension %d is "
            "%%lld, not of the form %s\", (long long)%s);",
            name, axis, cg_c_string(&e->arena, text, true), v);
  bind_line(b, depth, "%s = (%s - %" PRId64 ") / %" PRId64 ";", sn, v, k, c);
}

/* if (v != d) fail, naming where d's symbol came from. */
static void emit_check(Binder *b, int depth, const char *name, int axis,
                       const char *v, Dim d, int s) {
  Emitter *e = b->fe->e;
  Arena *a = &e->arena;
  uint64_t used = 0;
  const char *expr = cg_dim(a, d, e->symnames, &used);
  char text[128];
  dim_print(text, sizeof text, d, e->m);
  const char *ftext = cg_c_string(a, text, true);
  bind_line(b, depth, "if (%s != %s)", v, expr);
  const char *head =
      cg_strf(a,
              "return mc_fail(err, MC_ERR_SHAPE, \"input '%s': dimension %d is "
              "%%lld but %s = %%lld",
              name, axis, ftext);
  bool plain = s >= 0 && dim_eq(d, dim_sym(s));
  const char *lp = plain ? "" : " (", *rp = plain ? "" : ")";
  if (s < 0)
    bind_line(b, depth + 1, "%s\", (long long)%s, (long long)%s);", head, v,
              expr);
  else if (b->state[s] == BOUND_STATIC)
    bind_line(b, depth + 1,
              "%s%s%s from input '%s'%s\", (long long)%s, (long long)%s);",
              head, lp, plain ? "" : e->m->symbols[s], b->from[s], rp, v, expr);
  else
    bind_line(b, depth + 1,
              "%s%s%s from input '%%s'%s\", (long long)%s, (long long)%s, "
              "%s_from);",
              head, lp, plain ? "" : e->m->symbols[s], rp, v, expr,
              e->symnames[s]);
}

/* Pass 1 over one input: dtype, rank, constant and linear dims. */
static void bind_input(Binder *b, int i, bool *deferred) {
  FnEmit *fe = b->fe;
  Emitter *e = fe->e;
  Arena *a = &e->arena;
  const FuncInput *in = &fe->f->inputs[i];
  const Type *t = &in->value->type;
  const char *name = cg_c_string(a, in->name, true);
  int depth = 1;
  if (in->has_default) {
    bind_line(b, 1, "if (in[%d].data) { /* optional */", i);
    depth = 2;
  } else {
    bind_line(b, 1, "if (!in[%d].data)", i);
    bind_line(b, 2,
              "return mc_fail(err, MC_ERR_USAGE, \"input '%s' is required\");",
              name);
  }
  char ty[256];
  type_print(ty, sizeof ty, t, e->m);
  bind_line(b, depth, "if (in[%d].dtype != %s)", i, cg_mc_dtype(t->dtype));
  bind_line(b, depth + 1,
            "return mc_fail(err, MC_ERR_DTYPE, \"input '%s' has dtype %%s, "
            "expected %s\", mc_dtype_name(in[%d].dtype));",
            name, dtype_name(t->dtype), i);
  bind_line(b, depth, "if (in[%d].rank != %d)", i, t->shape.rank);
  bind_line(b, depth + 1,
            "return mc_fail(err, MC_ERR_SHAPE, \"input '%s' has rank %%d, "
            "expected %d (%s)\", in[%d].rank);",
            name, t->shape.rank, cg_c_string(a, ty, true), i);
  for (int j = 0; j < t->shape.rank; j++) {
    Dim d = t->shape.dims[j];
    const char *v = cg_strf(a, "in[%d].shape[%d]", i, j);
    int64_t c, k;
    int s;
    if (dim_is_const(d, &c)) {
      bind_line(b, depth, "if (%s != %" PRId64 ")", v, c);
      bind_line(b, depth + 1,
                "return mc_fail(err, MC_ERR_SHAPE, \"input '%s': dimension %d "
                "is %%lld but must be %" PRId64 "\", (long long)%s);",
                name, j, c, v);
    } else if (!dim_linear(d, &s, &c, &k)) {
      *deferred = true;
    } else if (b->state[s] == UNBOUND) {
      emit_bind(b, depth, name, j, v, d, s, c, k);
      if (in->has_default) {
        bind_line(b, depth, "%s_from = \"%s\";", e->symnames[s], name);
        b->state[s] = BOUND_DYNAMIC;
      } else {
        b->state[s] = BOUND_STATIC;
        b->from[s] = name;
      }
    } else if (b->state[s] == BOUND_STATIC) {
      emit_check(b, depth, name, j, v, d, s);
    } else {
      bind_line(b, depth, "if (!%s_from) {", e->symnames[s]);
      emit_bind(b, depth + 1, name, j, v, d, s, c, k);
      bind_line(b, depth + 1, "%s_from = \"%s\";", e->symnames[s], name);
      bind_line(b, depth, "} else {");
      emit_check(b, depth + 1, name, j, v, d, s);
      bind_line(b, depth, "}");
    }
  }
  if (in->has_default)
    bind_line(b, 1, "}");
}

/* Pass 2: dims that are not linear in one symbol, once all are bound. */
static void check_deferred(Binder *b, int i) {
  FnEmit *fe = b->fe;
  Arena *a = &fe->e->arena;
  const FuncInput *in = &fe->f->inputs[i];
  const Shape *sh = &in->value->type.shape;
  const char *name = cg_c_string(a, in->name, true);
  int depth = in->has_default ? 2 : 1;
  bool open = false;
  for (int j = 0; j < sh->rank; j++) {
    int64_t c, k;
    int s;
    if (dim_is_const(sh->dims[j], &c) || dim_linear(sh->dims[j], &s, &c, &k))
      continue;
    if (in->has_default && !open) {
      bind_line(b, 1, "if (in[%d].data) {", i);
      open = true;
    }
    emit_check(b, depth, name, j, cg_strf(a, "in[%d].shape[%d]", i, j),
               sh->dims[j], -1);
  }
  if (open)
    bind_line(b, 1, "}");
}

bool cg_emit_info_run(FnEmit *fe) {
  Emitter *e = fe->e;
  const Function *f = fe->f;
  Arena *a = &e->arena;
  /* every symbol needs an input dimension c*S + k */
  for (int s = 0; s < e->m->nsymbols; s++) {
    if (!(fe->syms & (UINT64_C(1) << s)))
      continue;
    bool found = false;
    for (int i = 0; i < f->ninputs && !found; i++) {
      const Shape *sh = &f->inputs[i].value->type.shape;
      for (int j = 0; j < sh->rank && !found; j++) {
        int s2 = -1;
        int64_t c, k;
        found = dim_linear(sh->dims[j], &s2, &c, &k) && s2 == s;
      }
    }
    if (!found) {
      diag_error(e->d, f->loc,
                 "symbol '%s' of '%s' is not an input dimension of the form "
                 "c*%s + k, so it cannot be read from the inputs; bind it at "
                 "compile time (-D %s=...)",
                 e->m->symbols[s], f->name, e->m->symbols[s], e->m->symbols[s]);
      return false;
    }
  }
  Binder b;
  memset(&b, 0, sizeof b);
  b.fe = fe;
  bool deferred = false;
  for (int i = 0; i < f->ninputs; i++)
    bind_input(&b, i, &deferred);
  for (int s = 0; s < e->m->nsymbols; s++)
    if (b.state[s] == BOUND_DYNAMIC)
      bind_line(&b, 1,
                "if (!%s_from)\n    return mc_fail(err, MC_ERR_USAGE, "
                "\"cannot determine %s: the inputs that give it are absent\");",
                e->symnames[s], cg_c_string(a, e->m->symbols[s], true));
  for (int i = 0; deferred && i < f->ninputs; i++)
    check_deferred(&b, i);
  CgBuf *out = &e->funcs;
  cg_buf_printf(out,
                "/* McModelInfo.run: reads the sizes from the input shapes, "
                "checks them,\n * allocates the outputs and calls %s. */\n"
                "static int %s_info_run(void *handle, const McTensor *in, "
                "McTensor *out,\n    McError *err) {\n",
                fe->run, fe->prefix);
  if (f->ninputs == 0)
    cg_buf_puts(out, "  (void)in;\n");
  for (int s = 0; s < e->m->nsymbols; s++) {
    if (!(fe->syms & (UINT64_C(1) << s)))
      continue;
    cg_buf_printf(out, "  int64_t %s = 0;\n", e->symnames[s]);
    if (b.state[s] == BOUND_DYNAMIC)
      cg_buf_printf(out, "  const char *%s_from = NULL;\n", e->symnames[s]);
  }
  cg_buf_puts(out, cg_buf_str(&b.body));
  cg_buf_free(&b.body);
  for (int i = 0; i < f->noutputs; i++) {
    const Type *t = &f->outputs[i].value->type;
    if (t->shape.rank == 0)
      continue;
    uint64_t used = 0;
    CgBuf sb = {0};
    for (int j = 0; j < t->shape.rank; j++)
      cg_buf_printf(&sb, "%s%s", j ? ", " : "",
                    cg_dim(a, t->shape.dims[j], e->symnames, &used));
    cg_buf_printf(out, "  const int64_t shape%d[%d] = {%s};\n", i,
                  t->shape.rank, cg_buf_str(&sb));
    cg_buf_free(&sb);
  }
  if (f->noutputs == 0)
    cg_buf_puts(out, "  int rc = MC_OK;\n");
  for (int i = 0; i < f->noutputs; i++) {
    const Type *t = &f->outputs[i].value->type;
    const char *shape = t->shape.rank > 0 ? cg_strf(a, "shape%d", i) : "NULL";
    cg_buf_printf(out, "%s", i ? "  if (rc == MC_OK)\n    " : "  int ");
    cg_buf_printf(out, "rc = mc_tensor_alloc(&out[%d], %s, %d, %s, err);\n", i,
                  cg_mc_dtype(t->dtype), t->shape.rank, shape);
  }
  cg_buf_printf(out, "  if (rc == MC_OK)\n    rc = %s(handle", fe->run);
  for (int s = 0; s < e->m->nsymbols; s++)
    if (fe->syms & (UINT64_C(1) << s))
      cg_buf_printf(out, ", %s", e->symnames[s]);
  for (int i = 0; i < f->ninputs; i++)
    cg_buf_printf(out, ", (const %s *)in[%d].data",
                  cg_ctype(f->inputs[i].value->type.dtype), i);
  for (int i = 0; i < f->noutputs; i++)
    cg_buf_printf(out, ", (%s *)out[%d].data",
                  cg_ctype(f->outputs[i].value->type.dtype), i);
  cg_buf_puts(out, ", err);\n");
  if (f->noutputs > 0) {
    cg_buf_puts(out, "  if (rc != MC_OK) {\n");
    for (int i = 0; i < f->noutputs; i++)
      cg_buf_printf(out, "    mc_tensor_free(&out[%d]);\n", i);
    cg_buf_puts(out, "  }\n");
  } else {
    cg_buf_puts(out, "  (void)out;\n");
  }
  cg_buf_puts(out, "  return rc;\n}\n\n");
  return true;
}

/* ---- weights, open/close, McModelInfo
 * ------------------------------------------ */

static void io_specs(Emitter *e, const char *prefix, const char *what, int n,
                     const char **names, const Value *const *values,
                     const bool *optional) {
  if (n == 0)
    return;
  cg_buf_printf(&e->info, "static const McIOSpec %s_%s[%d] = {\n", prefix, what,
                n);
  for (int i = 0; i < n; i++)
    cg_buf_printf(&e->info, "    {\"%s\", %s, %d, %d},\n",
                  cg_c_string(&e->arena, names[i], false),
                  cg_mc_dtype(values[i]->type.dtype),
                  values[i]->type.shape.rank, optional ? optional[i] : 0);
  cg_buf_puts(&e->info, "};\n");
}

/* One McWeightSpec initializer line: {"name", rank, {dims}, store,
 * transposed, packed}, */
static bool spec_literal(Emitter *e, int i, CgBuf *out) {
  const Param *p = &e->m->params[i];
  bool ok = true;
  cg_buf_printf(out, "    {\"%s\", %d, {",
                cg_c_string(&e->arena, p->name, false), p->type.shape.rank);
  for (int j = 0; j < p->type.shape.rank; j++) {
    int64_t c = 0;
    if (!dim_is_const(p->type.shape.dims[j], &c)) {
      diag_error(e->d, p->loc, "weight '%s' has a symbolic shape", p->name);
      ok = false;
    }
    cg_buf_printf(out, "%s%" PRId64, j ? ", " : "", c);
  }
  cg_buf_printf(out, "}, %s, %d, %d},\n", cg_mc_dtype(e->wstore[i]),
                e->wtrans[i], e->wpacked[i]);
  return ok;
}

/* <n>_prepare_weights: the prepared params (passes/hoist_weights.c) into
 * buffers of their own, once, after the file's weights are loaded: the
 * prepare function's outputs, then packed for the GEMM where c_weights.c
 * says so. */
static void emit_prepare_weights(Emitter *e) {
  const Module *m = e->m;
  const Function *prep = ir_prepare_function(m);
  const char *n = e->name;
  int nfile = ir_file_params(m);
  CgBuf *out = &e->info;
  cg_buf_printf(out,
                "\n/* The prepared weights, computed once from the file's "
                "(%s_prepare). */\n"
                "static int %s_prepare_weights(%s_model *m, McError *err) {\n",
                n, n, n);
  for (int o = 0; o < prep->noutputs; o++) {
    const Value *v = prep->outputs[o].value;
    int64_t numel = 1, d;
    for (int k = 0; k < v->type.shape.rank; k++)
      numel *= dim_is_const(v->type.shape.dims[k], &d) ? d : 0;
    cg_buf_printf(out,
                  "  if (!(m->prepared[%d] = mc_alloc_zeroed(sizeof(float) * "
                  "%" PRId64 ")))\n    return mc_fail(err, MC_ERR_NOMEM, "
                  "\"%s_open: out of memory\");\n",
                  o, numel, n);
  }
  cg_buf_printf(out, "  int rc = %s_prepare(m", n);
  for (int o = 0; o < prep->noutputs; o++)
    cg_buf_printf(out, ", m->prepared[%d]", o);
  cg_buf_puts(out, ", err);\n  if (rc != MC_OK)\n    return rc;\n");
  for (int o = 0; o < prep->noutputs; o++) {
    int p = nfile;
    while (p < m->nparams && strcmp(m->params[p].name, prep->outputs[o].name))
      p++;
    if (p < m->nparams && e->wpacked[p]) {
      const Shape *s = &m->params[p].type.shape;
      int64_t r = 0, c = 0;
      dim_is_const(s->dims[0], &r);
      dim_is_const(s->dims[1], &c);
      int t = e->wtrans[p];
      cg_buf_printf(
          out,
          "  { /* \"%s\": in GEMM panels of %s */\n"
          "    float *p = mc_alloc_zeroed(sizeof(float) *\n"
          "        (size_t)mc_gemm_weight_floats(%" PRId64 ", %" PRId64
          ", %d));\n"
          "    if (!p)\n      return mc_fail(err, MC_ERR_NOMEM, \"%s_open: "
          "out of memory\");\n"
          "    mc_gemm_pack_weight(%" PRId64 ", %" PRId64
          ", %d, m->prepared[%d], p);\n"
          "    free(m->prepared[%d]);\n    m->prepared[%d] = p;\n  }\n",
          cg_c_string(&e->arena, m->params[p].name, false),
          t ? "its transpose" : "itself", r, c, t, n, r, c, t, o, o, o);
    }
    cg_buf_printf(out, "  m->w[%d] = m->prepared[%d];\n", p, o);
  }
  cg_buf_puts(out, "  return MC_OK;\n}\n");
}

bool cg_emit_model_api(Emitter *e) {
  const Module *m = e->m;
  Arena *a = &e->arena;
  const char *n = e->name;
  int np = ir_file_params(m), nall = m->nparams, nprep = nall - np;
  CgBuf *out = &e->model;
  bool ok = true;
  if (np > 0) {
    cg_buf_printf(out, "static const McWeightSpec %s_weights[%d] = {\n", n, np);
    for (int i = 0; i < np; i++) {
      const Param *p = &m->params[i];
      if (p->type.dtype != DT_F32) {
        diag_error(e->d, p->loc, "weight '%s' must be f32 in the model, not %s",
                   p->name, dtype_name(p->type.dtype));
        ok = false;
      }
      ok &= spec_literal(e, i, out);
    }
    cg_buf_puts(out, "};\n\n");
  }
  const char *dw = e->o->default_weights;
  if (np > 0)
    cg_buf_printf(out,
                  "/* the weights file given at compile time, or NULL */\n"
                  "static const char *const %s_default_weights = %s%s%s;\n\n",
                  n, dw ? "\"" : "", dw ? cg_c_string(a, dw, false) : "NULL",
                  dw ? "\"" : "");
  cg_buf_printf(out, "struct %s_model {\n  McWeights *weights;%s\n", n,
                np ? "" : " /* NULL: the model has no weights */");
  if (nall > 0)
    cg_buf_printf(out,
                  "  const void *w[%d]; /* weight i, in %s_weights order, "
                  "kept as the spec says%s */\n",
                  nall, n, nprep ? "; then the prepared ones" : "");
  if (nprep > 0)
    cg_buf_printf(out,
                  "  void *prepared[%d]; /* %s_prepare's outputs, owned */\n",
                  nprep, n);
  cg_buf_puts(out, "};\n\n");
  if (nprep > 0) {
    cg_buf_printf(out,
                  "static int %s_prepare_weights(%s_model *m, McError *err);"
                  "\n\n",
                  n, n);
    emit_prepare_weights(e);
  }
  /* <n>_load: loads the weights an entry uses (which[i] = index in
   * <n>_weights of specs[i]) and, if asked, computes the prepared ones;
   * <n>_open does all of it. */
  if (nall > 0) {
    cg_buf_printf(out,
                  "static %s_model *%s_load(const char *weights_path,\n"
                  "    const McWeightSpec *specs, const int *which, int n,%s "
                  "McError *err) {\n"
                  "  %s_model *m = calloc(1, sizeof *m);\n  if (!m) {\n"
                  "    mc_fail(err, MC_ERR_NOMEM, \"%s_open: out of "
                  "memory\");\n    return NULL;\n  }\n",
                  n, n, nprep ? " int prepare," : "", n, n);
    if (np > 0)
      cg_buf_printf(
          out,
          "  if (n > 0) {\n"
          "    if (!weights_path)\n      weights_path = %s_default_weights;\n"
          "    if (!weights_path) {\n      mc_fail(err, MC_ERR_USAGE, "
          "\"%s_open: no weights file given\");\n      free(m);\n"
          "      return NULL;\n    }\n"
          "    if (mc_weights_load(weights_path, specs, n, &m->weights, err) "
          "!= MC_OK) {\n      free(m);\n      return NULL;\n    }\n"
          "    for (int i = 0; i < n; i++)\n"
          "      m->w[which ? which[i] : i] = mc_weights_data(m->weights, i);\n"
          "  }\n",
          n, n);
    else
      cg_buf_puts(out, "  (void)weights_path;\n  (void)specs;\n  (void)which;"
                       "\n  (void)n;\n");
    if (nprep > 0)
      cg_buf_printf(out,
                    "  if (prepare && %s_prepare_weights(m, err) != MC_OK) {\n"
                    "    %s_close(m);\n    return NULL;\n  }\n",
                    n, n);
    cg_buf_printf(out,
                  "  return m;\n}\n\n"
                  "%s_model *%s_open(const char *weights_path, McError *err) "
                  "{\n  return %s_load(weights_path, %s%s, NULL, %d,%s err);\n"
                  "}\n\n",
                  n, n, n, np ? n : "NULL", np ? "_weights" : "", np,
                  nprep ? " 1," : "");
  } else {
    cg_buf_printf(out,
                  "%s_model *%s_open(const char *weights_path, McError *err) "
                  "{\n  (void)weights_path;\n"
                  "  %s_model *m = calloc(1, sizeof *m);\n  if (!m)\n"
                  "    mc_fail(err, MC_ERR_NOMEM, \"%s_open: out of "
                  "memory\");\n  return m;\n}\n\n",
                  n, n, n, n);
  }
  cg_buf_printf(out,
                "void %s_close(%s_model *m) {\n  if (!m)\n"
                "    return;\n  mc_weights_free(m->weights);\n%s  free(m);\n}"
                "\n\n",
                n, n,
                nprep ? cg_strf(a,
                                "  for (int j = 0; j < %d; j++)\n"
                                "    free(m->prepared[j]);\n",
                                nprep)
                      : "");

  cg_buf_printf(&e->info,
                "\nstatic void %s_info_close(void *handle) { "
                "%s_close(handle); }\n",
                n, n);
  return ok;
}

static void mark_params(const Block *b, bool *used) {
  for (const Op *op = b->first; op; op = op->next) {
    if (op->kind == OP_PARAM)
      used[op->attrs.param.index] = true;
    for (int r = 0; r < op->nregions; r++)
      mark_params(op->regions[r], used);
  }
}

/* The entry's McModelInfo.open: loads only the weights the entry uses, so a
 * program's entry that needs no weights runs without a weights file. Sets
 * *nused and the prefix of the spec table its McModelInfo lists. */
static void emit_entry_open(FnEmit *fe, int *nused, const char **specs) {
  Emitter *e = fe->e;
  const Module *m = e->m;
  const char *n = e->name, *p = fe->prefix;
  CgBuf *info = &e->info;
  int np = ir_file_params(m), nprep = m->nparams - np;
  bool single = p == n;
  bool *used = arena_alloc(&e->arena, (size_t)m->nparams + 1);
  mark_params(fe->f->body, used);
  /* an entry reading a prepared weight runs the prepare function, which
   * reads file weights of its own */
  bool prepare = false;
  for (int i = np; i < m->nparams; i++)
    prepare |= used[i];
  if (prepare)
    mark_params(ir_prepare_function(m)->body, used);
  const char *prep_arg = !nprep ? "" : prepare ? " 1," : " 0,";
  int k = 0;
  CgBuf which = {0};
  for (int i = 0; i < np; i++)
    if (used[i] || single)
      cg_buf_printf(&which, "%s%d", k++ ? ", " : "", i);
  *nused = k;
  *specs = single || k == 0 ? n : p;
  if (!single && k > 0) {
    cg_buf_printf(info,
                  "\n/* the weights entry '%s' uses */\n"
                  "static const McWeightSpec %s_weights[%d] = {\n",
                  fe->f->name, p, k);
    for (int i = 0; i < np; i++)
      if (used[i])
        spec_literal(e, i, info);
    cg_buf_printf(info, "};\nstatic const int %s_which[%d] = {%s};\n", p, k,
                  cg_buf_str(&which));
  }
  cg_buf_free(&which);
  cg_buf_printf(info,
                "\nstatic int %s_info_open(const char *weights_path, void "
                "**handle,\n    McError *err) {\n",
                p);
  if (single || m->nparams == 0)
    cg_buf_printf(info, "  %s_model *m = %s_open(weights_path, err);\n", n, n);
  else if (k == 0)
    cg_buf_printf(info,
                  "  %s_model *m = %s_load(weights_path, NULL, NULL, 0,%s "
                  "err);\n",
                  n, n, prep_arg);
  else
    cg_buf_printf(info,
                  "  %s_model *m =\n      %s_load(weights_path, %s_weights, "
                  "%s_which, %d,%s err);\n",
                  n, n, p, p, k, prep_arg);
  cg_buf_puts(info, "  *handle = m;\n  return m ? MC_OK : err && err->code "
                    "? err->code : MC_ERR_IO;\n}\n\n");
}

void cg_emit_entry_info(FnEmit *fe) {
  Emitter *e = fe->e;
  const Module *m = e->m;
  Arena *a = &e->arena;
  const char *n = e->name, *p = fe->prefix;
  const Function *f = fe->f;
  const Value **vals = arena_alloc(a, (size_t)(f->ninputs + f->noutputs + 1) *
                                          sizeof(const Value *));
  const char **names = arena_alloc(a, (size_t)(f->ninputs + f->noutputs + 1) *
                                          sizeof(const char *));
  bool *optional = arena_alloc(a, (size_t)f->ninputs + 1);
  for (int i = 0; i < f->ninputs; i++) {
    vals[i] = f->inputs[i].value;
    names[i] = f->inputs[i].name;
    optional[i] = f->inputs[i].has_default;
  }
  io_specs(e, p, "inputs", f->ninputs, names, vals, optional);
  for (int i = 0; i < f->noutputs; i++) {
    vals[i] = f->outputs[i].value;
    names[i] = f->outputs[i].name;
  }
  io_specs(e, p, "outputs", f->noutputs, names, vals, NULL);
  int nused;
  const char *specs;
  emit_entry_open(fe, &nused, &specs);
  CgBuf *info = &e->info;
  const char *dw = e->o->default_weights;
  cg_buf_printf(
      info,
      "const McModelInfo %s_info = {\n    \"%s\",\n    %s%s%s,\n"
      "    %d, %s%s,\n    %d, %s%s,\n    %d, %s%s,\n"
      "    %s_info_open, %s_info_close, %s_info_run};\n",
      p, cg_c_string(a, p == n ? (m->name ? m->name : n) : f->name, false),
      dw ? "\"" : "", dw ? cg_c_string(a, dw, false) : "NULL", dw ? "\"" : "",
      f->ninputs, f->ninputs ? p : "NULL", f->ninputs ? "_inputs" : "",
      f->noutputs, f->noutputs ? p : "NULL", f->noutputs ? "_outputs" : "",
      nused, nused ? specs : "NULL", nused ? "_weights" : "", p, n, p);
}
