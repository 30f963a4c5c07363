/* The C emitter: a Module becomes <name>.h and <name>.c (see "Generated code
 * contract" in ARCHITECTURE.md).
 *
 * Per Function it decides where each live value lives:
 *   input      the typed run function's pointer parameter (an absent
 *              optional input points at a workspace buffer filled with its
 *              default);
 *   param      a pointer into the weights, taken at open time;
 *   const      a static const array (scalar constants of elementwise ops are
 *              inlined as literals instead);
 *   workspace  a buffer in the function's one arena, which the model
 *              keeps between calls (mc_model_workspace: zeros at first,
 *              then what the last call left, never read before written);
 *              buffers whose lifetimes do not meet share bytes, at offsets
 *              only the <fn>_layout function knows (planned by c_plan.c);
 *   output     the caller's output buffer, for the value an output is (or
 *              is a reshape of), when no other output claimed it first;
 *   alias      a reshape, or a broadcast that only adds leading 1s: the
 *              operand's pointer;
 *   view       a slice/permute/reshape/broadcast chain a matmul reads
 *              through strides (c_views.c): its base's pointer plus an
 *              offset, no kernel.
 * Weights are kept as c_weights.c chooses (transposed, 16 bits).
 * Outputs that could not be written in place are copied at the end.
 * Ops whose results nothing live uses are not emitted.
 *
 * Invariants: the output is a pure function of the Module (no addresses,
 * times or hash orders), and every identifier in it is unique in its scope.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c_emit.h"

/* ---- per-function analysis -------------------------------------------------
 */

ValueInfo *cg_info(FnEmit *fe, const Value *v) {
  return &fe->vi[v->id];
}

const char *cg_where(Emitter *e, Loc loc) {
  if (!loc.file)
    return cg_strf(&e->arena, "%s", e->m->name);
  return cg_strf(&e->arena, "%s:%d:%d", cg_base_name(loc.file), loc.line,
                 loc.col);
}

/* ---- constants --------------------------------------------------------------
 */

/* The static array of a constant, emitted on first use. */
static const char *const_array(FnEmit *fe, const Value *v) {
  ValueInfo *vi = cg_info(fe, v);
  if (vi->cname)
    return vi->cname;
  Emitter *e = fe->e;
  int64_t n = 0;
  shape_const_numel(&v->type.shape, &n);
  vi->cname = cg_names_unique(&e->globals, &e->arena,
                              cg_strf(&e->arena, "%s_c%d", e->name, v->id));
  char ty[256];
  type_print(ty, sizeof ty, &v->type, e->m);
  cg_buf_printf(&e->consts, "/* %s: %s */\nstatic const %s %s[%" PRId64 "] = {",
                cg_where(e, v->def->loc), ty, cg_ctype(v->type.dtype),
                vi->cname, n > 0 ? n : 1);
  for (int64_t i = 0; i < n; i++)
    cg_buf_printf(&e->consts, "%s%s",
                  i == 0  ? ""
                  : i % 8 ? ", "
                          : ",\n    ",
                  cg_literal(&e->arena, v->type.dtype, v->def->attrs.cst.data,
                             (size_t)i));
  cg_buf_printf(&e->consts, "%s};\n\n", n > 0 ? "" : "0");
  return vi->cname;
}

/* The C expression of a value's data pointer inside the run function. */
const char *cg_pointer(FnEmit *fe, const Value *v) {
  ValueInfo *vi = cg_info(fe, v);
  if (vi->storage == ST_CONST)
    return const_array(fe, v);
  if (vi->storage == ST_CARRY)
    return cg_pointer(fe, vi->alias);
  if (vi->storage == ST_VIEW) { /* from the variable of the chain's base */
    const char *base = cg_pointer(fe, vi->view->base);
    int64_t off;
    if (dim_is_const(vi->view->offset, &off) && off == 0)
      return base;
    uint64_t used = 0;
    return cg_strf(
        &fe->e->arena, "%s + %s", base,
        cg_dim(&fe->e->arena, vi->view->offset, fe->e->symnames, &used));
  }
  return vi->cname;
}

/* ---- the typed run function
 * ----------------------------------------------------- */

/* C names of the function's inputs, outputs and live values. */
static void name_function(FnEmit *fe) {
  Emitter *e = fe->e;
  const Function *f = fe->f;
  Arena *a = &e->arena;
  cg_reserve_c_names(&fe->locals, a);
  for (int s = 0; s < e->m->nsymbols; s++)
    cg_names_unique(&fe->locals, a, e->symnames[s]);
  fe->in_names = arena_alloc(a, (size_t)(f->ninputs + 1) * sizeof(char *));
  fe->out_names = arena_alloc(a, (size_t)(f->noutputs + 1) * sizeof(char *));
  for (int i = 0; i < f->ninputs; i++)
    fe->in_names[i] =
        cg_names_unique(&fe->locals, a, cg_c_ident(a, f->inputs[i].name));
  for (int i = 0; i < f->noutputs; i++)
    fe->out_names[i] =
        cg_names_unique(&fe->locals, a, cg_c_ident(a, f->outputs[i].name));
}

static void name_value(FnEmit *fe, const Value *v) {
  Emitter *e = fe->e;
  Arena *a = &e->arena;
  ValueInfo *vi = cg_info(fe, v);
  if (vi->cname || vi->storage == ST_NONE || vi->storage == ST_CONST)
    return;
  const char *base;
  if (vi->storage == ST_PARAM)
    base = cg_c_ident(a, e->m->params[vi->index].name);
  else if (v->name)
    base = cg_strf(a, "%s_%d", cg_c_ident(a, v->name), v->id);
  else
    base = cg_strf(a, "t%d", v->id);
  vi->cname = cg_names_unique(&fe->locals, a, base);
}

/* Names of live values; a scan's carry arguments take the names of its
 * carry results (the loop keeps the state in them), which a carry that
 * starts in its initial value's buffer takes from that buffer; its step
 * index is an int32_t whose address the kernels read. */
static void name_values(FnEmit *fe, const Block *b) {
  for (const Op *op = b->first; op; op = op->next) {
    for (int i = 0; i < op->nresults; i++) {
      ValueInfo *vi = cg_info(fe, op->results[i]);
      if (op->kind == OP_SCAN && vi->storage == ST_ALIAS) /* a carry that */
        vi->cname = cg_pointer(fe, vi->alias);            /* starts in place */
      name_value(fe, op->results[i]);
    }
    if (op->kind != OP_SCAN || cg_info(fe, op->results[0])->uses == 0)
      continue;
    const Block *body = op->regions[0];
    int nc = op->attrs.scan.ncarry, ns = op->attrs.scan.nseq;
    for (int i = 0; i < body->nargs; i++) {
      ValueInfo *vi = cg_info(fe, body->args[i]);
      if (i < nc) {
        vi->cname = cg_info(fe, op->results[i])->cname;
        continue;
      }
      name_value(fe, body->args[i]);
      if (i >= nc + ns) /* the step index */
        vi->cname = cg_strf(&fe->e->arena, "&%s", vi->cname);
    }
    name_values(fe, body);
  }
}

/* The pointer variables of op's results: weights, buffers and aliases. */
void cg_declare_pointers(FnEmit *fe, const Op *op, CgBuf *out, bool *uses_m) {
  for (int i = 0; i < op->nresults; i++) {
    const Value *v = op->results[i];
    ValueInfo *vi = cg_info(fe, v);
    const char *ct = cg_ctype(v->type.dtype);
    if (vi->storage == ST_PARAM) {
      DType t = fe->e->wstore[vi->index];
      bool tr = fe->e->wtrans[vi->index];
      const char *as =
          t != DT_F32 ? cg_strf(&fe->e->arena, "as %s, ", dtype_name(t)) : "";
      const char *how =
          fe->e->wpacked[vi->index]
              ? cg_strf(&fe->e->arena, " /* kept %sin GEMM panels of %s */", as,
                        tr ? "its transpose" : "itself")
          : t != DT_F32 ? cg_strf(&fe->e->arena, " /* kept as %s%s */",
                                  dtype_name(t), tr ? ", transposed" : "")
          : tr          ? " /* kept transposed */"
                        : "";
      cg_buf_printf(out, "  const %s *%s = m->base.w[%d];%s\n", cg_ctype(t),
                    vi->cname, vi->index, how);
      *uses_m = true;
    } else if (vi->storage == ST_WORKSPACE) {
      cg_buf_printf(out, "  %s *%s = (%s *)(ws + off[%d]);\n", ct, vi->cname,
                    ct, vi->index);
    } else if (vi->storage == ST_ALIAS && vi->referenced &&
               op->kind != OP_SCAN) { /* a scan's: named as its buffer */
      cg_buf_printf(out, "  const %s *%s = %s; /* %s of %s */\n", ct, vi->cname,
                    cg_pointer(fe, vi->alias), ir_op_info[op->kind].name,
                    cg_value_text(fe, op->operands[0]));
    }
  }
}

bool cg_op_live(FnEmit *fe, const Op *op) {
  bool live = op->kind == OP_YIELD;
  for (int i = 0; i < op->nresults; i++)
    live |= cg_info(fe, op->results[i])->uses > 0;
  return live;
}

bool cg_op_emits_kernel(FnEmit *fe, const Op *op) {
  if (op->kind == OP_SCAN || op->kind == OP_YIELD || op->nresults == 0)
    return false;
  const ValueInfo *vi = cg_info(fe, op->results[0]);
  /* ST_FUSED: in its reader's kernel; ST_ALIAS: in place, unless a view */
  return vi->storage == ST_WORKSPACE || vi->storage == ST_OUTPUT ||
         vi->storage == ST_CARRY || vi->storage == ST_SLOT ||
         (vi->storage == ST_ALIAS && !cg_op_is_alias(op));
}

/* The code of a live op in the run function (or a scan's loop). */
static bool emit_op_code(FnEmit *fe, const Op *op, CgBuf *run) {
  if (op->kind == OP_SCAN)
    return cg_info(fe, op->results[0])->uses == 0 || cg_emit_scan(fe, op, run);
  return !cg_op_emits_kernel(fe, op) || cg_emit_kernel(fe, op, run);
}

/* ... under `if` when a lazy select may not need it (ValueInfo.guard):
 * its code indented one step more. */
bool cg_emit_op(FnEmit *fe, const Op *op, CgBuf *run) {
  int group = cg_row_group_of(fe, op);
  if (group != 0) /* the group's kernel, at its first op */
    return group < 0 || cg_emit_row_group(fe, op, run);
  const ValueInfo *vi = op->nresults > 0 ? cg_info(fe, op->results[0]) : NULL;
  if (!vi || !vi->guard)
    return emit_op_code(fe, op, run);
  CgBuf code = {0};
  bool ok = emit_op_code(fe, op, &code);
  const char *text = cg_buf_str(&code);
  if (ok && *text) {
    cg_buf_printf(
        run, "  if (%s%s[0]) { /* the select at %s needs it only then */\n",
        vi->guard_when ? "" : "!", cg_pointer(fe, vi->guard),
        cg_where(fe->e, vi->guard_sel->loc));
    cg_buf_indented(run, text, 2);
    cg_buf_puts(run, "  }\n");
  }
  cg_buf_free(&code);
  return ok;
}

const char *cg_run_params(FnEmit *fe, bool comments) {
  Emitter *e = fe->e;
  const Function *f = fe->f;
  CgBuf b = {0};
  cg_buf_printf(&b, "(%s_model *m", e->name);
  for (int s = 0; s < e->m->nsymbols; s++)
    if (fe->syms & (UINT64_C(1) << s))
      cg_buf_printf(&b, ", int64_t %s", e->symnames[s]);
  for (int i = 0; i < f->ninputs; i++) {
    const FuncInput *in = &f->inputs[i];
    if (!cg_input_in_abi(fe, i))
      continue;
    cg_buf_printf(&b, ", const %s *%s", cg_ctype(in->value->type.dtype),
                  fe->in_names[i]);
    if (comments && in->has_default)
      cg_buf_printf(&b, " /* NULL: all %g */", in->default_value);
  }
  for (int i = 0; i < f->noutputs; i++) {
    const Value *v = f->outputs[i].value;
    if (!cg_output_in_abi(fe, i))
      continue;
    cg_buf_printf(&b, ", %s *%s", cg_ctype(v->type.dtype), fe->out_names[i]);
    if (comments) {
      char s[256];
      shape_print(s, sizeof s, &v->type.shape, e->m);
      cg_buf_printf(&b, " /* caller allocates %s */", s);
    }
  }
  cg_buf_puts(&b, ", McError *err)");
  const char *r = cg_strf(&e->arena, "%s", cg_buf_str(&b));
  cg_buf_free(&b);
  return r;
}

/* Byte size of a value's buffer as a C size_t expression. */
const char *cg_buffer_bytes(FnEmit *fe, const Value *v, uint64_t *used) {
  const Shape *s = &v->type.shape;
  const char *n = cg_dims_product(&fe->e->arena, s->dims, 0, s->rank,
                                  fe->e->symnames, used);
  return cg_strf(&fe->e->arena, "(size_t)%s%s%s * sizeof(%s)",
                 strchr(n, ' ') ? "(" : "", n, strchr(n, ' ') ? ")" : "",
                 cg_ctype(v->type.dtype));
}

const char *cg_sym_args(FnEmit *fe, uint64_t syms, bool decl) {
  CgBuf b = {0};
  for (int s = 0; s < fe->e->m->nsymbols; s++)
    if (syms & (UINT64_C(1) << s))
      cg_buf_printf(&b, "%s%s%s", decl ? "int64_t " : "", fe->e->symnames[s],
                    ", ");
  const char *r = cg_strf(&fe->e->arena, "%s", cg_buf_str(&b));
  cg_buf_free(&b);
  return r;
}

static const char *default_literal(FnEmit *fe, const FuncInput *in) {
  unsigned char buf[16] = {0};
  ir_const_store(in->value->type.dtype, buf, 0, in->default_value);
  return cg_literal(&fe->e->arena, in->value->type.dtype, buf, 0);
}

static bool emit_run(FnEmit *fe) {
  Emitter *e = fe->e;
  const Function *f = fe->f;
  Arena *a = &e->arena;
  uint64_t layout_syms = cg_emit_layout(fe);
  CgBuf calls = {0}, tasks = {0};
  for (const Op *op = f->body->first; op; op = op->next) {
    const Op *partner = cg_scan_partner(fe, op);
    if (partner ? !cg_emit_scan_pair(fe, op, partner, &calls, &tasks)
                : !cg_emit_op(fe, op, &calls)) {
      cg_buf_free(&calls);
      cg_buf_free(&tasks);
      return false;
    }
    if (partner)
      op = partner;
  }
  CgBuf *out = &e->funcs;
  cg_buf_puts(out, cg_buf_str(&tasks));
  cg_buf_free(&tasks);
  cg_buf_printf(out, "%sint %s%s {\n", fe->internal ? "static " : "", fe->run,
                cg_run_params(fe, false));
  for (int s = 0; s < e->m->nsymbols; s++)
    if (fe->syms & (UINT64_C(1) << s))
      cg_buf_printf(out,
                    "  if (%s < 0)\n    return mc_fail(err, MC_ERR_SHAPE, "
                    "\"%s: %s = %%lld is negative\", (long long)%s);\n",
                    e->symnames[s], fe->run,
                    cg_c_string(a, e->m->symbols[s], true), e->symnames[s]);
  if (fe->nbuffers > 0) {
    char *upper = cg_strf(a, "%s_NBUFFERS", fe->run);
    for (char *p = upper; *p; p++)
      if (*p >= 'a' && *p <= 'z')
        *p = (char)(*p - 'a' + 'A');
    cg_buf_printf(out, "  size_t off[%s];\n", upper);
    cg_buf_printf(out, "  const size_t wsize = %s(%soff);\n", fe->layout,
                  cg_sym_args(fe, layout_syms, false));
    if (fe->nstates > 0)
      cg_buf_printf(out,
                    "  /* kept from call to call: %d optimizer states in its "
                    "first %zu bytes */\n  unsigned char *ws = "
                    "mc_model_arena(&m->base, %d, wsize, %zu);\n",
                    fe->nstates, fe->state_bytes, fe->key, fe->state_bytes);
    else
      cg_buf_printf(out,
                    "  unsigned char *ws = mc_model_workspace(&m->base, %d, "
                    "wsize);\n",
                    fe->key);
    cg_buf_printf(out,
                  "  if (!ws)\n    return mc_fail(err, MC_ERR_NOMEM, \"%s: "
                  "cannot allocate %%zu bytes of workspace\", wsize);\n",
                  fe->run);
    if (fe->nstates > 0)
      cg_buf_printf(out,
                    "#ifdef MC_CHECK_PLAN\n  memset(ws + %zu, 0xff, wsize - "
                    "%zu); /* the states kept; a buffer read before it is "
                    "written reads NaNs */\n#endif\n",
                    fe->state_bytes, fe->state_bytes);
    else
      cg_buf_puts(out, "#ifdef MC_CHECK_PLAN\n  memset(ws, 0xff, wsize); /* a "
                       "buffer read before it is written reads NaNs */\n"
                       "#endif\n");
  }
  for (int k = 0; k < fe->nstates; k++) {
    const Value *v = fe->buffers[k];
    const char *ct = cg_ctype(v->type.dtype);
    cg_buf_printf(out, "  %s *%s = (%s *)(ws + off[%d]);\n", ct,
                  fe->in_names[cg_info(fe, v)->index], ct, k);
  }
  if (fe->can_fail)
    cg_buf_puts(out, "  int rc = MC_OK;\n");
  /* inputs: unused ones, and defaults of absent optional ones */
  for (int i = 0; i < f->ninputs; i++) {
    const FuncInput *in = &f->inputs[i];
    ValueInfo *vi = cg_info(fe, in->value);
    const char *n = fe->in_names[i];
    if (!cg_input_in_abi(fe, i))
      continue;
    if (vi->uses == 0) {
      cg_buf_printf(out, "  (void)%s; /* unused */\n", n);
      continue;
    }
    if (!in->has_default)
      continue;
    int buf = 0;
    while (fe->buffers[buf] != in->value)
      buf++;
    const char *ct = cg_ctype(in->value->type.dtype);
    uint64_t used = 0;
    const Shape *s = &in->value->type.shape;
    cg_buf_printf(out, "  if (!%s) { /* absent: every element is %g */\n", n,
                  in->default_value);
    cg_buf_printf(out, "    %s *fill = (%s *)(ws + off[%d]);\n", ct, ct, buf);
    cg_buf_printf(out, "    for (int64_t i = 0; i < %s; i++)\n",
                  cg_dims_product(a, s->dims, 0, s->rank, e->symnames, &used));
    cg_buf_printf(out, "      fill[i] = %s;\n    %s = fill;\n  }\n",
                  default_literal(fe, in), n);
  }
  /* pointers of weights, buffers and aliases (a scan's region declares
   * its own inside its loop) */
  bool uses_m = fe->uses_m || fe->nbuffers > 0;
  for (const Op *op = f->body->first; op; op = op->next)
    cg_declare_pointers(fe, op, out, &uses_m);
  if (!uses_m)
    cg_buf_puts(out, "  (void)m;\n");
  if (!fe->can_fail)
    cg_buf_puts(out, "  (void)err;\n");
  cg_buf_puts(out, cg_buf_str(&calls));
  cg_buf_free(&calls);
  /* outputs not written in place; the optimizer states' new values */
  for (int i = 0; i < f->noutputs; i++) {
    if (fe->out_direct[i])
      continue;
    const Value *v = f->outputs[i].value;
    int state = f->outputs[i].updates_input;
    uint64_t used = 0;
    cg_buf_printf(out, "  memcpy(%s, %s, %s);\n",
                  state >= 0 ? fe->in_names[state] : fe->out_names[i],
                  cg_pointer(fe, v), cg_buffer_bytes(fe, v, &used));
  }
  if (fe->can_fail)
    cg_buf_puts(out, "done:\n");
  if (fe->nbuffers > 0 && fe->nstates == 0)
    cg_buf_printf(out, "  mc_model_workspace_done(&m->base, %d, ws);\n",
                  fe->key);
  cg_buf_printf(out, "  return %s;\n}\n\n", fe->can_fail ? "rc" : "MC_OK");
  return true;
}

/* ---- the module
 * ------------------------------------------------------------------ */

/* One entry point: "<model>_run" when it is the only one, else
 * "<model>_<entry>" with its own "<model>_<entry>_info"; the prepare
 * function: "<model>_prepare", static. */
bool cg_function_begin(Emitter *e, const Function *f, bool single, FnEmit *fe) {
  memset(fe, 0, sizeof *fe);
  fe->e = e;
  fe->f = f;
  fe->internal = f->prepares;
  Arena *a = &e->arena;
  const char *fn = cg_c_ident(a, f->name);
  fe->run = f->prepares
                ? cg_strf(a, "%s_prepare", e->name)
                : cg_names_unique(&e->globals, a,
                                  single ? cg_strf(a, "%s_run", e->name)
                                         : cg_strf(a, "%s_%s", e->name, fn));
  if (f->prepares)
    single = false;
  fe->prefix = single ? e->name : fe->run;
  if (!single)
    for (const char *suffix =
             "info\0inputs\0outputs\0info_run\0info_open\0weights\0which\0"
             "entry\0input_dims\0output_dims\0";
         *suffix; suffix += strlen(suffix) + 1)
      cg_names_unique(&e->globals, a, cg_strf(a, "%s_%s", fe->run, suffix));
  fe->wsize =
      cg_names_unique(&e->globals, a,
                      single ? cg_strf(a, "%s_workspace_size", e->name)
                             : cg_strf(a, "%s_%s_workspace_size", e->name, fn));
  fe->layout =
      cg_names_unique(&e->globals, a, cg_strf(a, "%s_layout", fe->run));
  fe->run_v = f->prepares ? cg_strf(a, "%s_prepare_v", e->name)
                          : cg_names_unique(&e->globals, a,
                                            cg_strf(a, "%s_v", fe->run));
  for (const Function *g = e->m->functions; g && g != f; g = g->next)
    fe->key++;
  name_function(fe);
  if (!cg_analyze(fe))
    return false;
  name_values(fe, f->body);
  return true;
}

static bool emit_function(Emitter *e, const Function *f, bool single,
                          FnEmit *fe) {
  if (!cg_function_begin(e, f, single, fe))
    return false;
  cg_buf_printf(&e->kernels, "/* ---- kernels of %s ---- */\n\n", fe->run);
  cg_buf_printf(&e->funcs, "/* ---- %s ---- */\n\n", fe->run);
  if (!emit_run(fe) || !cg_emit_info_run(fe))
    return false;
  if (!fe->internal)
    cg_emit_header_function(fe);
  return true;
}

static bool emit_files(Emitter *e, const char *outdir) {
  const Module *m = e->m;
  Arena *a = &e->arena;
  const char *src = m->source_file ? cg_base_name(m->source_file) : e->name;
  CgBuf c = {0}, h = {0};
  char *guard = cg_strf(a, "%s_H", e->name);
  for (char *p = guard; *p; p++)
    if (*p >= 'a' && *p <= 'z')
      *p = (char)(*p - 'a' + 'A');
  cg_buf_printf(&h,
                "/* %s.h: generated by modelc from %s. Do not edit.\n *\n"
                " * Every function returns MC_OK, or an MC_ERR_* code with err "
                "filled (err\n * may be NULL). Buffers are dense row-major "
                "arrays; bool is uint8_t.\n */\n"
                "#ifndef %s\n#define %s\n\n#include \"mc_runtime.h\"\n\n"
                "typedef struct %s_model %s_model;\n\n"
                "/* Loads the weights; NULL uses the path given at compile "
                "time. NULL on\n * error. */\n"
                "%s_model *%s_open(const char *weights_path, McError *err);\n"
                "void %s_close(%s_model *m);\n\n%s#endif\n",
                e->name, src, guard, guard, e->name, e->name, e->name, e->name,
                e->name, e->name, cg_buf_str(&e->header));
  cg_buf_printf(&c,
                "/* %s.c: generated by modelc from %s. Do not edit.\n"
                " * The entry points are documented in %s.h. */\n%s"
                "#include \"%s.h\"\n#include \"mc_ops.h\"\n%s"
                "#include \"mc_vmath.h\"\n\n"
                "#include <math.h>\n#include <stdint.h>\n"
                "#include <stdlib.h>\n#include <string.h>\n\n",
                e->name, src, e->name,
                e->o->check_plan ? "#ifndef MC_CHECK_PLAN /* --check-plan */\n"
                                   "#define MC_CHECK_PLAN 1\n#endif\n"
                                 : "",
                e->name,
                e->any_softmax_row ? "#include \"mc_softmax.h\"\n" : "");
  if (e->any_run_time_plan)
    cg_buf_puts(&c, "static size_t align64(size_t n) { return (n + 63) & "
                    "~(size_t)63; }\n\n");
  cg_buf_puts(&c, cg_buf_str(&e->consts));
  cg_buf_puts(&c, cg_buf_str(&e->model));
  cg_buf_puts(&c, cg_buf_str(&e->kernels));
  cg_buf_puts(&c, cg_buf_str(&e->funcs));
  cg_buf_puts(&c, cg_buf_str(&e->info));
  char *main_c =
      cg_strf(a,
              "/* main() of the %s program: leave this file out to link the "
              "model\n * into another program. */\n#include \"%s.h\"\n\n"
              "int main(int argc, char **argv) {\n",
              e->name, e->name);
  if (!e->single)
    main_c = cg_strf(a,
                     "%s  return mc_main_entries(argc, argv,\n"
                     "      (int)(sizeof %s_entries / sizeof *%s_entries), "
                     "%s_entries);\n}\n",
                     main_c, e->name, e->name, e->name);
  else
    main_c = cg_strf(a, "%s  return mc_main(argc, argv, &%s_info);\n}\n",
                     main_c, e->name);
  /* every file or none: a failure leaves the directory as it was */
  CgFiles fs = {0};
  bool ok = cg_make_dirs(outdir, e->d) &&
            cg_files_stage(&fs, cg_strf(a, "%s/%s.h", outdir, e->name), h.data,
                           h.len, e->d) &&
            cg_files_stage(&fs, cg_strf(a, "%s/%s.c", outdir, e->name), c.data,
                           c.len, e->d) &&
            cg_files_stage(&fs, cg_strf(a, "%s/%s_main.c", outdir, e->name),
                           main_c, strlen(main_c), e->d) &&
            cg_stage_runtime(&fs, outdir, e->d);
  cg_buf_free(&c);
  cg_buf_free(&h);
  fs.failed |= !ok;
  return cg_files_commit(&fs, e->d) && ok;
}

bool cg_stage_runtime(CgFiles *fs, const char *dir, Diag *d) {
  bool ok = true;
  for (const EmbeddedFile *f = mc_embedded_files; ok && f->name; f++) {
    size_t n = strlen(dir) + strlen(f->name) + 2;
    char *path = malloc(n);
    if (!path) {
      diag_error(d, loc_none(), "out of memory");
      fs->failed = true;
      return false;
    }
    snprintf(path, n, "%s/%s", dir, f->name);
    ok = cg_files_stage(fs, path, f->text, f->size, d);
    free(path);
  }
  return ok;
}

bool cg_write_runtime(const char *dir, Diag *d) {
  CgFiles fs = {0};
  cg_stage_runtime(&fs, dir, d);
  return cg_files_commit(&fs, d);
}

void cg_emitter_init(Emitter *e, const Module *m, const CgOptions *o, Diag *d) {
  static const CgOptions defaults = {2, NULL, NULL, NULL, DT_F32, NULL, false};
  memset(e, 0, sizeof *e);
  e->m = m;
  e->o = o ? o : &defaults;
  e->d = d;
  arena_init(&e->arena);
  e->name = cg_c_ident(&e->arena, m->name ? m->name : "model");
  cg_reserve_c_names(&e->globals, &e->arena);
  const char *fixed[] = {
      "align64",  "info",     "model",   "open",       "close",
      "weights",  "inputs",   "outputs", "info_open",  "info_close",
      "info_run", "entries",  "prepare", "prepare_v",  "desc",
      "symbols",  "prepared", "entry",   "input_dims", "output_dims"};
  for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
    cg_names_unique(&e->globals, &e->arena,
                    i == 0 ? fixed[0]
                           : cg_strf(&e->arena, "%s_%s", e->name, fixed[i]));
  for (int s = 0; s < m->nsymbols; s++)
    e->symnames[s] = cg_symbol_c_name(&e->arena, m->symbols[s]);
  int nfunctions = 0;
  for (const Function *f = m->functions; f; f = f->next)
    nfunctions += !f->prepares;
  e->single = nfunctions == 1;
  cg_choose_weight_layouts(e);
}

void cg_emitter_free(Emitter *e) {
  cg_buf_free(&e->consts);
  cg_buf_free(&e->model);
  cg_buf_free(&e->info);
  cg_buf_free(&e->kernels);
  cg_buf_free(&e->funcs);
  cg_buf_free(&e->header);
  arena_free(&e->arena);
}

bool cg_emit_c(const Module *m, const char *outdir, const CgOptions *o,
               Diag *d) {
  Emitter e;
  cg_emitter_init(&e, m, o, d);
  bool ok = m->functions != NULL;
  if (!ok)
    diag_error(d, loc_none(), "model '%s' has no function to emit", e.name);
  bool single = e.single;
  ok = ok && cg_emit_model_api(&e);
  int nentries = 0;
  CgBuf table = {0};
  for (const Function *f = m->functions; ok && f; f = f->next) {
    FnEmit fe;
    ok = emit_function(&e, f, single, &fe);
    if (!ok || f->prepares)
      continue;
    cg_emit_entry_info(&fe);
    cg_buf_printf(&table, "%s&%s_info", nentries++ ? ", " : "", fe.prefix);
  }
  if (ok && !single) {
    /* the table mc_main_entries reads: PROG ENTRY ... */
    cg_buf_printf(&e.header,
                  "/* The entry points, for mc_main_entries (PROG ENTRY ...). "
                  "*/\nextern const McModelInfo *const %s_entries[%d];\n\n",
                  e.name, nentries);
    cg_buf_printf(&e.info,
                  "\nconst McModelInfo *const %s_entries[%d] = {%s};\n", e.name,
                  nentries, cg_buf_str(&table));
  }
  cg_buf_free(&table);
  ok = ok && emit_files(&e, outdir);
  cg_emitter_free(&e);
  return ok;
}
