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

/* A GEMM with an epilogue is named after both: conv1d_L28_matmul_gelu_L32,
 * block_L3_matmul_L5 in one function, conv1d_L28_matmul_add on one
 * line. */
const char *cg_epilogue_kernel_name(Emitter *e, const Op *mm, const Op *ep) {
  const char *base = kernel_base(e, mm), *name;
  const char *scope =
      ep->loc.scope ? cg_c_ident(&e->arena, ep->loc.scope) : e->name;
  bool same_scope =
      ep->loc.scope == mm->loc.scope ||
      (ep->loc.scope && mm->loc.scope && !strcmp(ep->loc.scope, mm->loc.scope));
  if (ep->loc.line == mm->loc.line && same_scope)
    name = cg_strf(&e->arena, "%s_%s", base, ir_op_info[ep->kind].name);
  else if (ep->loc.line > 0 && same_scope)
    name = cg_strf(&e->arena, "%s_L%d", base, ep->loc.line);
  else if (ep->loc.line > 0)
    name = cg_strf(&e->arena, "%s_%s_L%d", base, scope, ep->loc.line);
  else
    name = cg_strf(&e->arena, "%s_%s", base, scope);
  return cg_names_unique(&e->globals, &e->arena, name);
}

const char *cg_attention_kernel_name(Emitter *e, const Op *mm) {
  const char *scope =
      mm->loc.scope ? cg_c_ident(&e->arena, mm->loc.scope) : e->name;
  return cg_names_unique(
      &e->globals, &e->arena,
      mm->loc.line > 0
          ? cg_strf(&e->arena, "%s_L%d_attention", scope, mm->loc.line)
          : cg_strf(&e->arena, "%s_attention", scope));
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

/* Emits the kernel of op and its call into `run`; a GEMM's product that op
 * reads (ST_FUSED) is computed by the same kernel, op as its epilogue. */
bool cg_emit_kernel(FnEmit *fe, const Op *op, CgBuf *run) {
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
  /* op may be the epilogue of the kernel of its operand's op (a matmul, a
   * reduction), which may have a prologue (an elementwise loop) */
  int product = fused_operand(fe, op);
  const Op *ep = NULL, *pro = NULL;
  if (product >= 0 && op->operands[product]->def->kind != OP_FUSED &&
      !cg_op_is_elementwise(op->operands[product]->def->kind)) {
    ep = op;
    op = ep->operands[product]->def;
  }
  if (fused_operand(fe, op) == 0)
    pro = op->operands[0]->def;
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
    store[i] = xi->storage == ST_PARAM ? e->wstore[xi->index] : DT_F32;
    transposed[i] = xi->storage == ST_PARAM && e->wtrans[xi->index];
    packed[i] = xi->storage == ST_PARAM && e->wpacked[xi->index];
  }
  k.name = pv   ? cg_attention_kernel_name(e, op)
           : ep ? cg_epilogue_kernel_name(e, op, ep)
                : cg_kernel_name(e, op);
  if (!cg_kernel_emit(&k, e->d)) {
    cg_buf_free(&k.body);
    cg_buf_free(&k.defs);
    return false;
  }
  const char *name = k.name;
  /* comment: location, source line, the op (and its epilogue's) */
  CgBuf *out = &e->kernels;
  cg_buf_puts(out, "/* ");
  if (pro) {
    comment_op(fe, pro, k.pro_literal, out);
    cg_buf_puts(out, " * read by ");
  }
  comment_op(fe, op, k.literal, out);
  if (ep) {
    cg_buf_puts(out, " * with its epilogue, ");
    comment_op(fe, ep, k.ep_literal, out);
  }
  if (pv) {
    cg_buf_puts(out, " * then by blocks of rows, ");
    comment_op(fe, sm, NULL, out);
    cg_buf_puts(out, " * and ");
    comment_op(fe, pv, NULL, out);
  }
  cg_buf_puts(out, " */\n");
  cg_buf_puts(out, cg_buf_str(&k.defs));
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
    if (i == product || k.ep_literal[i])
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
  CgBuf sig = {0}, call = {0};
  cg_buf_printf(&sig, "static %s %s(", k.can_fail ? "int" : "void", name);
  cg_buf_printf(&call, "%s(", name);
  for (int i = 0; i < np; i++) {
    cg_buf_printf(&sig, "%s%s %s", i ? ", " : "", ps[i].ctype, ps[i].name);
    cg_buf_printf(&call, "%s%s", i ? ", " : "", ps[i].arg);
  }
  if (k.can_fail) {
    cg_buf_puts(&sig, ", McError *err");
    cg_buf_puts(&call, ", err");
  }
  if (k.range)
    cg_emit_ranged(&k, name, ps, np, cg_buf_str(&sig), out);
  else
    cg_buf_printf(out, "%s) {\n%s}\n\n", cg_buf_str(&sig), cg_buf_str(&k.body));
  if (k.can_fail) {
    fe->can_fail = true;
    cg_buf_printf(run, "  if ((rc = %s)) != MC_OK)\n    goto done;\n",
                  cg_buf_str(&call));
  } else {
    cg_buf_printf(run, "  %s);\n", cg_buf_str(&call));
  }
  cg_buf_free(&sig);
  cg_buf_free(&call);
  cg_buf_free(&k.body);
  return true;
}
