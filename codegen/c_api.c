/* The public surface of a generated model: its header's documentation and
 * declarations, and the tables the runtime's glue (runtime/mc_model.c)
 * reads: the weights, the prepared weights, the model (McModelDesc), each
 * entry's inputs and outputs with their dimensions (McEntry), and the
 * McModelInfo that hands them to mc_entry_open / mc_entry_run.
 *
 * A symbol no input dimension c*S + k gives is an emit-time error; the
 * runtime binds the others from the input shapes at each call.
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
    if (!cg_input_in_abi(fe, i))
      continue;
    type_print(ty, sizeof ty, &in->value->type, e->m);
    cg_buf_printf(h, " *   input  %s: %s", fe->in_names[i], ty);
    if (in->has_default)
      cg_buf_printf(h, " (optional: NULL means every element is %g)",
                    in->default_value);
    cg_buf_puts(h, "\n");
  }
  for (int i = 0; i < f->noutputs; i++) {
    if (!cg_output_in_abi(fe, i))
      continue;
    type_print(ty, sizeof ty, &f->outputs[i].value->type, e->m);
    cg_buf_printf(h, " *   output %s: %s\n", fe->out_names[i], ty);
  }
  cg_buf_printf(h, " * %d weights (listed in %s_info.weights).",
                ir_file_params(e->m), fe->prefix);
  if (fe->nstates > 0)
    cg_buf_printf(h,
                  "\n * Its %d optimizer states (%zu bytes, zeros before the "
                  "first call) live at\n * the start of its arena, kept by "
                  "the model between calls (so calls\n * on one model must "
                  "not overlap), with its %d intermediates:\n * %s bytes. "
                  "*/\n",
                  fe->nstates, fe->state_bytes, fe->nbuffers - fe->nstates,
                  cg_plan_arena_text(fe));
  else if (fe->nbuffers > 0)
    cg_buf_printf(h,
                  "\n * Its %d intermediates (sharing bytes by lifetime) live "
                  "in\n * one arena of %s bytes,\n * kept by the model between "
                  "calls (a call made while another one\n * uses it gets one "
                  "of its own). */\n",
                  fe->nbuffers, cg_plan_arena_text(fe));
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

/* ---- the entry's tables and its McModelInfo
 * ------------------------------------------------------------ */

/* Whether d is c*S + k with c > 0: mc_entry_run can solve it for S. */
static bool dim_linear(Dim d, int *sym) {
  int nsym = 0;
  for (int t = 0; t < d.nterms; t++) {
    const DimTerm *term = &d.terms[t];
    if (term->nfactors == 1 && term->coef > 0) {
      *sym = term->sym[0];
      nsym++;
    } else if (term->nfactors != 0) {
      return false;
    }
  }
  return nsym == 1;
}

/* Every symbol the entry takes must be solvable from an input dimension. */
static bool check_symbols_bound(FnEmit *fe) {
  Emitter *e = fe->e;
  const Function *f = fe->f;
  for (int s = 0; s < e->m->nsymbols; s++) {
    if (!(fe->syms & (UINT64_C(1) << s)))
      continue;
    bool found = false;
    for (int i = 0; i < f->ninputs && !found; i++) {
      const Shape *sh = &f->inputs[i].value->type.shape;
      for (int j = 0; j < sh->rank && !found; j++) {
        int s2 = -1;
        found = dim_linear(sh->dims[j], &s2) && s2 == s;
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
  return true;
}

/* The run function in the signature of every entry (McRunFn). */
static void emit_run_v(FnEmit *fe) {
  Emitter *e = fe->e;
  CgBuf *out = &e->funcs;
  cg_buf_printf(out,
                "/* %s in the signature of every entry (McRunFn). */\n"
                "static int %s(void *m, const int64_t *s, void *const *in,\n"
                "    void *const *out, McError *err) {\n",
                fe->run, fe->run_v);
  if (!fe->syms)
    cg_buf_puts(out, "  (void)s;\n");
  CgEntryIO io;
  cg_entry_io(fe, &io);
  int nin = io.nin, nout = io.nout;
  if (nin == 0)
    cg_buf_puts(out, "  (void)in;\n");
  if (nout == 0)
    cg_buf_puts(out, "  (void)out;\n");
  cg_buf_printf(out, "  return %s(m", fe->run);
  for (int s = 0, k = 0; s < e->m->nsymbols; s++)
    if (fe->syms & (UINT64_C(1) << s))
      cg_buf_printf(out, ", s[%d]", k++);
  for (int i = 0; i < nin; i++)
    cg_buf_printf(out, ", in[%d]", i);
  for (int i = 0; i < nout; i++)
    cg_buf_printf(out, ", out[%d]", i);
  cg_buf_puts(out, ", err);\n}\n\n");
}

bool cg_emit_info_run(FnEmit *fe) {
  if (!fe->internal && !check_symbols_bound(fe))
    return false;
  emit_run_v(fe);
  return true;
}

/* {"2*T + 1", 2, {{2, 1, {0}}, {1, 0, {0}}}}: a dimension for the runtime
 * (McDim), symbols by number. */
static void dim_literal(Emitter *e, Dim d, CgBuf *out) {
  char text[128];
  dim_print(text, sizeof text, d, e->m);
  cg_buf_printf(out, "{\"%s\", %d, {", cg_c_string(&e->arena, text, false),
                d.nterms);
  for (int t = 0; t < d.nterms; t++) {
    const DimTerm *term = &d.terms[t];
    cg_buf_printf(out, "%s{%s, %d, {", t ? ", " : "",
                  term->coef == INT64_MIN
                      ? "INT64_MIN"
                      : cg_strf(&e->arena, "%" PRId64, term->coef),
                  term->nfactors);
    for (int f = 0; f < term->nfactors || f == 0; f++)
      cg_buf_printf(out, "%s%d", f ? ", " : "",
                    f < term->nfactors ? term->sym[f] : 0);
    cg_buf_puts(out, "}}");
  }
  cg_buf_puts(out, d.nterms ? "}}" : "{0, 0, {0}}}}");
}

/* <p>_<what> (McIOSpec) and the dims they point into, <p>_<dims>. */
static void io_specs(Emitter *e, const char *prefix, const char *what,
                     const char *dims, int n, const char **names,
                     const Value *const *values, const bool *optional) {
  if (n == 0)
    return;
  int ndims = 0;
  for (int i = 0; i < n; i++)
    ndims += values[i]->type.shape.rank;
  if (ndims > 0) {
    cg_buf_printf(&e->info, "static const McDim %s_%s[%d] = {\n", prefix, dims,
                  ndims);
    for (int i = 0; i < n; i++)
      for (int j = 0; j < values[i]->type.shape.rank; j++) {
        cg_buf_puts(&e->info, "    ");
        dim_literal(e, values[i]->type.shape.dims[j], &e->info);
        cg_buf_printf(&e->info, ", /* %s */\n",
                      cg_c_string(&e->arena, names[i], false));
      }
    cg_buf_puts(&e->info, "};\n");
  }
  cg_buf_printf(&e->info, "static const McIOSpec %s_%s[%d] = {\n", prefix, what,
                n);
  for (int i = 0, k = 0; i < n; i++) {
    int rank = values[i]->type.shape.rank;
    cg_buf_printf(
        &e->info, "    {\"%s\", %s, %d, %d, %s},\n",
        cg_c_string(&e->arena, names[i], false),
        cg_mc_dtype(values[i]->type.dtype), rank, optional ? optional[i] : 0,
        rank ? cg_strf(&e->arena, "%s_%s + %d", prefix, dims, k) : "NULL");
    k += rank;
  }
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

CgPrepared cg_prepared(const Emitter *e, int o) {
  const Module *m = e->m;
  const Value *v = ir_prepare_function(m)->outputs[o].value;
  const char *name = ir_prepare_function(m)->outputs[o].name;
  CgPrepared r;
  memset(&r, 0, sizeof r);
  int64_t d;
  r.floats = 1;
  for (int k = 0; k < v->type.shape.rank; k++)
    r.floats *= dim_is_const(v->type.shape.dims[k], &d) ? d : 0;
  int p = ir_file_params(m);
  while (p < m->nparams && strcmp(m->params[p].name, name))
    p++;
  r.weight = p;
  r.packed = p < m->nparams && e->wpacked[p];
  if (r.packed) {
    dim_is_const(m->params[p].type.shape.dims[0], &r.rows);
    dim_is_const(m->params[p].type.shape.dims[1], &r.cols);
    r.transposed = e->wtrans[p];
  }
  return r;
}

/* <n>_prepared: how the prepare function's outputs become weights. */
static void emit_prepared_specs(Emitter *e) {
  const Module *m = e->m;
  const Function *prep = ir_prepare_function(m);
  CgBuf *out = &e->model;
  cg_buf_printf(out,
                "/* The prepared weights, computed from the file's when the "
                "model is opened\n * (%s_prepare): {weight, floats, packed, "
                "rows, cols, transposed} */\n"
                "static const McPreparedSpec %s_prepared[%d] = {\n",
                e->name, e->name, prep->noutputs);
  for (int o = 0; o < prep->noutputs; o++) {
    CgPrepared p = cg_prepared(e, o);
    cg_buf_printf(out,
                  "    {%d, %" PRId64 ", %d, %" PRId64 ", %" PRId64
                  ", %d}, /* %s */\n",
                  p.weight, p.floats, p.packed, p.rows, p.cols, p.transposed,
                  cg_c_string(&e->arena, prep->outputs[o].name, false));
  }
  cg_buf_puts(out, "};\n\n");
}

bool cg_emit_model_api(Emitter *e) {
  const Module *m = e->m;
  Arena *a = &e->arena;
  const char *n = e->name;
  int np = ir_file_params(m), nprep = m->nparams - np;
  CgBuf *out = &e->model;
  bool ok = true;
  if (m->nsymbols > 0) {
    cg_buf_printf(out, "static const char *const %s_symbols[%d] = {", n,
                  m->nsymbols);
    for (int s = 0; s < m->nsymbols; s++)
      cg_buf_printf(out, "%s\"%s\"", s ? ", " : "",
                    cg_c_string(a, m->symbols[s], false));
    cg_buf_puts(out, "};\n\n");
  }
  if (np > 0) {
    cg_buf_printf(out,
                  "/* {name, rank, shape, kept as, transposed, in GEMM "
                  "panels} */\n"
                  "static const McWeightSpec %s_weights[%d] = {\n",
                  n, np);
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
  if (nprep > 0) {
    emit_prepared_specs(e);
    cg_buf_printf(out,
                  "static int %s_prepare_v(void *m, const int64_t *s, "
                  "void *const *in,\n    void *const *out, McError *err);\n\n",
                  n);
  }
  const char *dw = e->o->default_weights;
  cg_buf_printf(out,
                "static const McModelDesc %s_desc = {\n"
                "    .name = \"%s\",\n"
                "    .default_weights = %s%s%s, /* given at compile time */\n"
                "    .nsymbols = %d,\n    .symbols = %s%s,\n"
                "    .nweights = %d,\n    .weights = %s%s,\n"
                "    .nprepared = %d,\n    .prepared = %s%s,\n"
                "    .prepare = %s%s};\n\n",
                n, n, dw ? "\"" : "", dw ? cg_c_string(a, dw, false) : "NULL",
                dw ? "\"" : "", m->nsymbols, m->nsymbols ? n : "NULL",
                m->nsymbols ? "_symbols" : "", np, np ? n : "NULL",
                np ? "_weights" : "", nprep, nprep ? n : "NULL",
                nprep ? "_prepared" : "", nprep ? n : "NULL",
                nprep ? "_prepare_v" : "");
  cg_buf_printf(out,
                "struct %s_model {\n  McModel base; /* base.w: the weights, "
                "in %s_weights order%s */\n};\n\n"
                "%s_model *%s_open(const char *weights_path, McError *err) {\n"
                "  return (%s_model *)mc_model_open(&%s_desc, weights_path, "
                "err);\n}\n\n"
                "void %s_close(%s_model *m) { mc_model_close(&m->base); }\n\n",
                n, n, nprep ? ", then the prepared ones" : "", n, n, n, n, n,
                n);
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

int cg_entry_weights(FnEmit *fe, int *which, bool *prepare) {
  Emitter *e = fe->e;
  const Module *m = e->m;
  int np = ir_file_params(m);
  bool single = fe->prefix == e->name;
  bool *used = arena_alloc(&e->arena, (size_t)m->nparams + 1);
  mark_params(fe->f->body, used);
  for (int i = 0; i < fe->f->noutputs; i++) /* a training entry's updates */
    if (fe->f->outputs[i].updates_param >= 0)
      used[fe->f->outputs[i].updates_param] = true;
  /* an entry reading a prepared weight runs the prepare function, which
   * reads file weights of its own */
  bool prep = false;
  for (int i = np; i < m->nparams; i++)
    prep |= used[i];
  if (prep)
    mark_params(ir_prepare_function(m)->body, used);
  int k = 0;
  for (int i = 0; i < np; i++)
    if (used[i] || single)
      which[k++] = i;
  *prepare = (single || prep) && m->nparams > np;
  return k;
}

/* The weights the entry reads: their count; their specs' table (the model's
 * own when it reads all of them) in *specs, the table of their indexes
 * (<p>_which, or NULL) in *which; whether it reads prepared weights. */
static bool entry_weights(FnEmit *fe, int *nused, const char **specs,
                          const char **which) {
  Emitter *e = fe->e;
  const char *p = fe->prefix;
  CgBuf *info = &e->info;
  int *list =
      arena_alloc(&e->arena, sizeof(int) * ((size_t)ir_file_params(e->m) + 1));
  bool prepare;
  int k = cg_entry_weights(fe, list, &prepare);
  *nused = k;
  *specs = k == 0 ? "NULL" : cg_strf(&e->arena, "%s_weights", e->name);
  *which = "NULL";
  if (p != e->name && k > 0) {
    CgBuf idx = {0};
    cg_buf_printf(info,
                  "\n/* the weights entry '%s' uses */\n"
                  "static const McWeightSpec %s_weights[%d] = {\n",
                  fe->f->name, p, k);
    for (int i = 0; i < k; i++) {
      spec_literal(e, list[i], info);
      cg_buf_printf(&idx, "%s%d", i ? ", " : "", list[i]);
    }
    cg_buf_printf(info, "};\nstatic const int %s_which[%d] = {%s};\n", p, k,
                  cg_buf_str(&idx));
    cg_buf_free(&idx);
    *specs = cg_strf(&e->arena, "%s_weights", p);
    *which = cg_strf(&e->arena, "%s_which", p);
  }
  return prepare;
}

/* A training entry's <p>_updates (McUpdate): which output replaces which
 * weight; their count. */
static int emit_updates(FnEmit *fe) {
  const Function *f = fe->f;
  int n = 0;
  for (int i = 0; i < f->noutputs; i++)
    n += f->outputs[i].updates_param >= 0;
  if (n == 0)
    return 0;
  CgBuf *info = &fe->e->info;
  cg_buf_printf(info,
                "\n/* {output, weight}: the training step's results that "
                "replace a weight */\n"
                "static const McUpdate %s_updates[%d] = {\n",
                fe->prefix, n);
  for (int i = 0, k = 0; i < f->noutputs; i++) {
    const FuncOutput *o = &f->outputs[i];
    if (o->updates_param >= 0)
      cg_buf_printf(info, "    {%d, %d}, /* %s */\n", k, o->updates_param,
                    cg_c_string(&fe->e->arena, o->name, false));
    k += cg_output_in_abi(fe, i);
  }
  cg_buf_puts(info, "};\n");
  return n;
}

void cg_entry_io(FnEmit *fe, CgEntryIO *io) {
  Arena *a = &fe->e->arena;
  const Function *f = fe->f;
  memset(io, 0, sizeof *io);
  io->step = -1;
  io->in_name = arena_alloc(a, sizeof(const char *) * (size_t)(f->ninputs + 1));
  io->in_value =
      arena_alloc(a, sizeof(const Value *) * (size_t)(f->ninputs + 1));
  io->optional = arena_alloc(a, (size_t)f->ninputs + 1);
  io->out_name =
      arena_alloc(a, sizeof(const char *) * (size_t)(f->noutputs + 1));
  io->out_value =
      arena_alloc(a, sizeof(const Value *) * (size_t)(f->noutputs + 1));
  for (int i = 0; i < f->ninputs; i++) {
    if (!cg_input_in_abi(fe, i))
      continue;
    if (f->inputs[i].step)
      io->step = io->nin;
    io->in_name[io->nin] = f->inputs[i].name;
    io->in_value[io->nin] = f->inputs[i].value;
    io->optional[io->nin++] = f->inputs[i].has_default;
  }
  for (int i = 0; i < f->noutputs; i++)
    if (cg_output_in_abi(fe, i)) {
      io->out_name[io->nout] = f->outputs[i].name;
      io->out_value[io->nout++] = f->outputs[i].value;
    }
}

void cg_emit_entry_info(FnEmit *fe) {
  Emitter *e = fe->e;
  const Module *m = e->m;
  Arena *a = &e->arena;
  const char *n = e->name, *p = fe->prefix;
  const Function *f = fe->f;
  CgEntryIO io;
  cg_entry_io(fe, &io);
  int nin = io.nin, nout = io.nout, step = io.step;
  io_specs(e, p, "inputs", "input_dims", nin, io.in_name, io.in_value,
           io.optional);
  io_specs(e, p, "outputs", "output_dims", nout, io.out_name, io.out_value,
           NULL);
  int nused;
  const char *specs, *which;
  bool prepare = entry_weights(fe, &nused, &specs, &which);
  CgBuf *info = &e->info;
  int nupdates = emit_updates(fe);
  cg_buf_printf(info,
                "\nstatic const McEntry %s_entry = {\n"
                "    .model = &%s_desc,\n"
                "    .ninputs = %d,\n    .inputs = %s%s,\n"
                "    .noutputs = %d,\n    .outputs = %s%s,\n"
                "    .nweights = %d,\n    .weights = %s,\n    .which = %s,\n"
                "    .prepare = %d,\n    .syms = UINT64_C(0x%" PRIx64 "),\n"
                "    .run = %s,\n"
                "    .nupdates = %d,\n    .updates = %s%s,\n"
                "    .step_input = %d};\n\n",
                p, n, nin, nin ? p : "NULL", nin ? "_inputs" : "", nout,
                nout ? p : "NULL", nout ? "_outputs" : "", nused, specs, which,
                prepare, fe->syms, fe->run_v, nupdates, nupdates ? p : "NULL",
                nupdates ? "_updates" : "", step);
  cg_buf_printf(
      info,
      "static int %s_info_open(const char *weights_path, void "
      "**handle,\n    McError *err) {\n"
      "  return mc_entry_open(&%s_entry, weights_path, handle, err);"
      "\n}\n\n"
      "static int %s_info_run(void *handle, const McTensor *in, "
      "McTensor *out,\n    McError *err) {\n"
      "  return mc_entry_run(&%s_entry, handle, in, out, err);\n}\n\n",
      p, p, p, p);
  const char *dw = e->o->default_weights;
  cg_buf_printf(
      info,
      "const McModelInfo %s_info = {\n    \"%s\",\n    %s%s%s,\n"
      "    %d, %s%s,\n    %d, %s%s,\n    %d, %s,\n"
      "    %s_info_open, %s_info_close, %s_info_run, &%s_entry, %s};\n",
      p, cg_c_string(a, p == n ? (m->name ? m->name : n) : f->name, false),
      dw ? "\"" : "", dw ? cg_c_string(a, dw, false) : "NULL", dw ? "\"" : "",
      nin, nin ? p : "NULL", nin ? "_inputs" : "", nout, nout ? p : "NULL",
      nout ? "_outputs" : "", nused, specs, p, n, p, p,
      nupdates ? "mc_train" : "NULL");
}
