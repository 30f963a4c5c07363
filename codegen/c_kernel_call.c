/* A kernel and its call: the kernel of an op, or of a GEMM or reduction
 * with the ops computed in it (ST_FUSED: epilogue, prologue, attention's
 * softmax and second matmul), named after the model-file lines it comes
 * from, with a comment giving those lines and ops, its parameters (the
 * symbols it reads, operand pointers, y) and its call in the run function.
 */
#include <string.h>

#include "c_emit.h"

/* "scope_L12_kind": the op's function or model, line and kind. */
static const char *kernel_base(Emitter *e, const Op *op) {
  const char *scope =
      op->loc.scope ? cg_c_ident(&e->arena, op->loc.scope) : e->name;
  return op->loc.line > 0
             ? cg_strf(&e->arena, "%s_L%d_%s", scope, op->loc.line,
                       ir_op_info[op->kind].name)
             : cg_strf(&e->arena, "%s_%s", scope, ir_op_info[op->kind].name);
}

const char *cg_kernel_name(Emitter *e, const Op *op) {
  return cg_names_unique(&e->globals, &e->arena, kernel_base(e, op));
}

/* The literal of each operand of op that its kernel inlines (a scalar
 * constant of an elementwise op), else NULL. */
static const char **operand_literals(FnEmit *fe, const Op *op) {
  Arena *a = &fe->e->arena;
  const char **lit =
      arena_alloc(a, (size_t)(op->noperands + 1) * sizeof(const char *));
  for (int i = 0; i < op->noperands; i++) {
    const Value *x = op->operands[i];
    if (cg_takes_literals(op) && cg_is_inlinable_const(x))
      lit[i] = cg_literal(a, x->type.dtype, x->def->attrs.cst.data, 0);
  }
  return lit;
}

/* The operand of op computed in op's kernel (ST_FUSED), or -1. */
static int fused_operand(FnEmit *fe, const Op *op) {
  for (int i = 0; i < op->noperands; i++)
    if (cg_info(fe, op->operands[i])->storage == ST_FUSED)
      return i;
  return -1;
}

const Op *cg_kernel_ops(FnEmit *fe, const Op *op, const Op **ep,
                        const Op **pro) {
  int product = fused_operand(fe, op);
  *ep = *pro = NULL;
  if (product >= 0 && op->operands[product]->def->kind != OP_FUSED &&
      !cg_op_is_elementwise(op->operands[product]->def->kind)) {
    *ep = op;
    op = op->operands[product]->def;
  }
  if (fused_operand(fe, op) == 0)
    *pro = op->operands[0]->def;
  return op;
}

/* A GEMM with an epilogue is named after both: conv1d_L28_matmul_gelu_L32,
 * block_L3_matmul_L5 in one function, conv1d_L28_matmul_add on one
 * line. */
static const char *epilogue_base(Emitter *e, const Op *mm, const Op *ep) {
  const char *base = kernel_base(e, mm);
  const char *scope =
      ep->loc.scope ? cg_c_ident(&e->arena, ep->loc.scope) : e->name;
  bool same_scope =
      ep->loc.scope == mm->loc.scope ||
      (ep->loc.scope && mm->loc.scope && !strcmp(ep->loc.scope, mm->loc.scope));
  if (ep->loc.line == mm->loc.line && same_scope)
    return cg_strf(&e->arena, "%s_%s", base, ir_op_info[ep->kind].name);
  if (ep->loc.line > 0 && same_scope)
    return cg_strf(&e->arena, "%s_L%d", base, ep->loc.line);
  if (ep->loc.line > 0)
    return cg_strf(&e->arena, "%s_%s_L%d", base, scope, ep->loc.line);
  return cg_strf(&e->arena, "%s_%s", base, scope);
}

const char *cg_epilogue_kernel_name(Emitter *e, const Op *mm, const Op *ep) {
  return cg_names_unique(&e->globals, &e->arena, epilogue_base(e, mm, ep));
}

static const char *attention_base(Emitter *e, const Op *mm) {
  const char *scope =
      mm->loc.scope ? cg_c_ident(&e->arena, mm->loc.scope) : e->name;
  return mm->loc.line > 0
             ? cg_strf(&e->arena, "%s_L%d_attention", scope, mm->loc.line)
             : cg_strf(&e->arena, "%s_attention", scope);
}

const char *cg_attention_kernel_name(Emitter *e, const Op *mm) {
  return cg_names_unique(&e->globals, &e->arena, attention_base(e, mm));
}

/* "const float *restrict" -> "const float *" */
static const char *drop_restrict(Arena *a, const char *ctype) {
  const char *r = strstr(ctype, " *restrict");
  return r ? cg_strf(a, "%.*s *", (int)(r - ctype), ctype) : ctype;
}

static size_t code_hash(const char *s) {
  uint64_t h = UINT64_C(1469598103934665603); /* FNV-1a */
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
  return (size_t)h;
}

/* The slot of code in s: where it is, or the free one where it goes. */
static size_t kernel_slot(const KernelSet *s, const char *code) {
  size_t i = code_hash(code) & (s->cap - 1);
  while (s->code[i] && strcmp(s->code[i], code))
    i = (i + 1) & (s->cap - 1);
  return i;
}

/* The name of the kernel emitted before with this code, or NULL. */
static const char *kernel_find(KernelSet *s, const char *code) {
  return s->cap ? s->name[kernel_slot(s, code)] : NULL;
}

const char *cg_kernel_find(Emitter *e, const char *code) {
  return kernel_find(&e->kernel_codes, code);
}

static void kernel_add(KernelSet *s, Arena *a, const char *code,
                       const char *name) {
  if (2 * (s->n + 1) > s->cap) {
    KernelSet g = {0};
    g.cap = s->cap ? 2 * s->cap : 64;
    g.code = arena_alloc(a, g.cap * sizeof *g.code);
    g.name = arena_alloc(a, g.cap * sizeof *g.name);
    for (size_t i = 0; i < s->cap; i++)
      if (s->code[i]) {
        size_t j = kernel_slot(&g, s->code[i]);
        g.code[j] = s->code[i];
        g.name[j] = s->name[i];
      }
    g.n = s->n;
    *s = g;
  }
  size_t i = kernel_slot(s, code);
  s->code[i] = code;
  s->name[i] = name;
  s->n++;
}

/* code with every KERNEL_NAME replaced by name, into out */
static void put_named(CgBuf *out, const char *code, const char *name) {
  for (const char *p; (p = strstr(code, KERNEL_NAME));
       code = p + strlen(KERNEL_NAME))
    cg_buf_printf(out, "%.*s%s", (int)(p - code), code, name);
  cg_buf_puts(out, code);
}

void cg_put_named(CgBuf *out, const char *code, const char *name) {
  put_named(out, code, name);
}

void cg_kernel_remember(Emitter *e, const char *code, const char *name) {
  kernel_add(&e->kernel_codes, &e->arena, code, name);
}

/* The comment of a kernel's op: location, source line, the op. */
static void comment_op(FnEmit *fe, const Op *op, const char **literal,
                       CgBuf *out) {
  Emitter *e = fe->e;
  cg_buf_printf(out, "%s\n", cg_where(e, op->loc));
  const char *src = cg_source_line(e, op->loc);
  if (src)
    cg_buf_printf(out, " *     %s\n", src);
  cg_buf_puts(out, " *   ");
  cg_append_op_text(fe, out, op, literal);
  cg_buf_puts(out, "\n");
}

/* The comment of the kernel of op (with k's prologue, epilogue, and
 * attention's softmax sm and second matmul pv). */
static void comment_kernel(FnEmit *fe, const CgKernel *k, const Op *op,
                           const Op *sm, const Op *pv, CgBuf *out) {
  cg_buf_puts(out, "/* ");
  if (k->prologue) {
    comment_op(fe, k->prologue, k->pro_literal, out);
    cg_buf_puts(out, " * read by ");
  }
  comment_op(fe, op, k->literal, out);
  if (k->epilogue) {
    cg_buf_puts(out, " * with its epilogue, ");
    comment_op(fe, k->epilogue, k->ep_literal, out);
  }
  if (pv) {
    cg_buf_puts(out, " * then by blocks of rows, ");
    comment_op(fe, sm, NULL, out);
    cg_buf_puts(out, " * and ");
    comment_op(fe, pv, NULL, out);
  }
  cg_buf_puts(out, " */\n");
}

bool cg_kernel_build(FnEmit *fe, const Op *op, CgBuilt *b) {
  Emitter *e = fe->e;
  /* op may be attention's last matmul (P @ V): then the kernel is that of
   * the scores' matmul with the softmax and op inside */
  const Op *sm = NULL, *pv = NULL;
  if (op->kind == OP_MATMUL && fused_operand(fe, op) == 0 &&
      op->operands[0]->def->kind == OP_SOFTMAX) {
    pv = op;
    sm = op->operands[0]->def;
    op = sm->operands[0]->def;
  }
  const Op *ep, *pro;
  op = cg_kernel_ops(fe, op, &ep, &pro);
  CgKernel k = {0};
  k.arena = &e->arena;
  k.m = e->m;
  k.op = op;
  k.epilogue = ep;
  k.symnames = e->symnames;
  k.where = cg_c_string(&e->arena, cg_where(e, op->loc), true);
  k.in_place = cg_info(fe, op->results[0])->storage == ST_ALIAS;
  k.literal = operand_literals(fe, op);
  k.ep_literal = ep ? operand_literals(fe, ep) : NULL;
  k.prologue = pro;
  k.pro_literal = pro ? operand_literals(fe, pro) : NULL;
  k.softmax = sm;
  k.pv = pv;
  k.pv_view = pv ? cg_info(fe, pv->operands[1])->view : NULL;
  k.view = arena_alloc(&e->arena,
                       (size_t)(op->noperands + 1) * sizeof(const CgView *));
  DType *store =
      arena_alloc(&e->arena, (size_t)(op->noperands + 1) * sizeof(DType));
  bool *transposed =
      arena_alloc(&e->arena, (size_t)(op->noperands + 1) * sizeof(bool));
  bool *packed =
      arena_alloc(&e->arena, (size_t)(op->noperands + 1) * sizeof(bool));
  k.store = store;
  k.transposed = transposed;
  k.packed = packed;
  for (int i = 0; i < op->noperands; i++) {
    const ValueInfo *xi = cg_info(fe, op->operands[i]);
    k.view[i] = xi->view;
    store[i] = cg_weight_store(fe, op->operands[i]);
    transposed[i] = xi->storage == ST_PARAM && e->wtrans[xi->index];
    packed[i] = xi->storage == ST_PARAM && e->wpacked[xi->index];
  }
  k.name = KERNEL_NAME;
  if (!cg_kernel_emit(&k, e->d)) {
    cg_buf_free(&k.body);
    cg_buf_free(&k.defs);
    return false;
  }
  e->any_softmax_row |= k.softmax_row;
  const Op *kop = op; /* op, for the comment */
  cg_buf_puts(&b->core, cg_buf_str(&k.defs));
  cg_buf_free(&k.defs);
  /* parameters: symbols, operand pointers (the epilogue's too), y */
  int cap = e->m->nsymbols + op->noperands + (ep ? ep->noperands : 0) +
            (pro ? pro->noperands : 0) + 2,
      np = 0;
  CgParam *ps = arena_alloc(&e->arena, (size_t)cap * sizeof *ps);
  for (int s = 0; s < e->m->nsymbols; s++)
    if (k.syms & (UINT64_C(1) << s))
      ps[np++] = (CgParam){"int64_t", e->symnames[s], e->symnames[s],
                           (k.body_syms >> s) & 1};
  for (int i = 0; pro && i < pro->noperands; i++) {
    if (k.pro_literal[i])
      continue;
    const Value *x = pro->operands[i];
    ps[np++] = (CgParam){
        cg_strf(&e->arena, "const %s *restrict", cg_ctype(x->type.dtype)),
        cg_strf(&e->arena, "p%d", i), cg_pointer(fe, x), true};
  }
  for (int i = 0; i < op->noperands; i++) {
    if (k.literal[i] || (k.in_place && i == 0) || (pro && i == 0))
      continue;
    const Value *x = op->operands[i];
    DType t = store[i] != DT_F32 ? store[i] : x->type.dtype;
    ps[np++] = (CgParam){cg_strf(&e->arena, "const %s *restrict", cg_ctype(t)),
                         cg_operand_name(op, i), cg_pointer(fe, x), true};
  }
  for (int i = 0; ep && i < ep->noperands; i++) {
    if (ep->operands[i] == op->results[0] || k.ep_literal[i])
      continue;
    const Value *x = ep->operands[i];
    ps[np++] = (CgParam){
        cg_strf(&e->arena, "const %s *restrict", cg_ctype(x->type.dtype)),
        cg_strf(&e->arena, "x%d", i), cg_pointer(fe, x), true};
  }
  if (pv)
    ps[np++] = (CgParam){"const float *restrict", "v",
                         cg_pointer(fe, pv->operands[1]), true};
  if (ep)
    op = ep; /* y: the epilogue's result */
  if (pv)
    op = pv; /* or attention's */
  const Value *y = op->results[0];
  ps[np++] = (CgParam){
      cg_strf(&e->arena, "%s *restrict", cg_ctype(y->type.dtype)), "y",
      cg_pointer(fe, k.in_place ? cg_info(fe, y)->alias : y), true};
  /* an optimizer state updated in place (c_in_place.c) is an operand and
   * y: pointers to the same elements, neither of them restrict */
  for (int i = 0; i + 1 < np; i++)
    if (strcmp(ps[i].arg, ps[np - 1].arg) == 0) {
      ps[i].ctype = drop_restrict(&e->arena, ps[i].ctype);
      ps[np - 1].ctype = drop_restrict(&e->arena, ps[np - 1].ctype);
    }
  CgBuf sig = {0};
  cg_buf_printf(&sig, "static %s " KERNEL_NAME "(",
                k.can_fail ? "int" : "void");
  for (int i = 0; i < np; i++)
    cg_buf_printf(&sig, "%s%s%s%s", i ? ", " : "", ps[i].ctype,
                  cg_ends_with_star(ps[i].ctype) ? "" : " ", ps[i].name);
  if (k.can_fail)
    cg_buf_puts(&sig, ", McError *err");
  if (k.range) {
    cg_emit_range_core(&k, KERNEL_NAME, ps, np, &b->core);
    cg_emit_range_wrapper(&k, KERNEL_NAME, ps, np, cg_buf_str(&sig),
                          &b->wrapper);
  } else {
    cg_buf_printf(&b->wrapper, "%s) {\n%s}\n\n", cg_buf_str(&sig),
                  cg_buf_str(&k.body));
  }
  cg_buf_printf(&b->code, "%s%s", cg_buf_str(&b->core),
                cg_buf_str(&b->wrapper));
  cg_buf_free(&sig);
  b->k = k;
  b->kop = kop;
  b->sm = sm;
  b->pv = pv;
  b->ep = ep;
  b->ps = ps;
  b->np = np;
  return true;
}

void cg_built_free(CgBuilt *b) {
  cg_buf_free(&b->core);
  cg_buf_free(&b->wrapper);
  cg_buf_free(&b->code);
  cg_buf_free(&b->k.body);
}

/* A stage's core is keyed by its whole code after this line. */
#define CORE_KEY "core\n"

const char *cg_kernel_place(FnEmit *fe, CgBuilt *b, bool core_only) {
  Emitter *e = fe->e;
  const char *code = cg_buf_str(&b->code);
  const char *name = kernel_find(&e->kernel_codes, code);
  if (name)
    return name;
  const char *core_key = cg_strf(&e->arena, CORE_KEY "%s", code);
  name = kernel_find(&e->kernel_codes, core_key);
  if (name && !core_only) { /* a stage's kernel, now alone too */
    put_named(&e->kernels, cg_buf_str(&b->wrapper), name);
    kernel_add(&e->kernel_codes, &e->arena, arena_strdup(&e->arena, code),
               name);
  }
  if (name)
    return name;
  const Op *kop = b->kop;
  name = cg_names_unique(&e->globals, &e->arena,
                         b->pv   ? attention_base(e, kop)
                         : b->ep ? epilogue_base(e, kop, b->ep)
                                 : kernel_base(e, kop));
  kernel_add(&e->kernel_codes, &e->arena,
             core_only ? core_key : arena_strdup(&e->arena, code), name);
  comment_kernel(fe, &b->k, kop, b->sm, b->pv, &e->kernels);
  put_named(&e->kernels, core_only ? cg_buf_str(&b->core) : code, name);
  return name;
}

void cg_kernel_call(FnEmit *fe, const CgBuilt *b, const char *name,
                    CgBuf *run) {
  CgBuf call = {0};
  cg_buf_printf(&call, "%s(", name);
  for (int i = 0; i < b->np; i++)
    cg_buf_printf(&call, "%s%s", i ? ", " : "", b->ps[i].arg);
  if (b->k.can_fail) {
    fe->can_fail = true;
    cg_buf_printf(run, "  if ((rc = %s, err)) != MC_OK)\n    goto done;\n",
                  cg_buf_str(&call));
  } else {
    cg_buf_printf(run, "  %s);\n", cg_buf_str(&call));
  }
  cg_buf_free(&call);
}

bool cg_emit_kernel(FnEmit *fe, const Op *op, CgBuf *run) {
  CgBuilt b = {0};
  if (!cg_kernel_build(fe, op, &b)) {
    cg_built_free(&b);
    return false;
  }
  cg_kernel_call(fe, &b, cg_kernel_place(fe, &b, false), run);
  cg_built_free(&b);
  return true;
}
