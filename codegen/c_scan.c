/* The C backend's scan: a loop over the steps in the run function.
 *
 *   /- rnn.model:14:11: scan over T steps, reversed -/
 *   memcpy(h_n_7, h0_3, ...);                 carries start as their inits
 *   for (int64_t step = 0; step < T; step++) {
 *     const int64_t t = T - 1 - step;         (t = step when forward)
 *     const float *x_t_9 = t4 + t * (B * 8);  slice t of each sequence
 *     const int32_t i_10 = (int32_t)t;        the step index, if asked for
 *     float *t12 = (float *)(ws + off[5]);    the region's buffers
 *     rnn_step_L8_matmul(B, x_t_9, w, t12);   its kernels, as usual
 *     ...
 *     memcpy(t6 + t * (B * 16), h2_14, ...);  output t into slot t
 *     memcpy(h_n_7, h2_14, ...);              the new carries
 *   }
 *
 * With `until` (an early exit) the loop also counts the steps run and
 * stops after the step whose done flag is set (read before the carries
 * change); the rows of the outputs no step wrote are then zeroed and the
 * count stored in the last result:
 *     const uint8_t stop = done_20[0];
 *     ...outputs, carries...
 *     steps = step + 1;
 *     if (stop) break;
 *   }
 *   memset(t6 + steps * (B * 16), 0, ...);    rows steps .. length-1
 *   steps_8[0] = (int32_t)steps;
 *
 * A carry that a dynamic_update_slice changed in place (c_emit.c's
 * cg_update_in_place) or an elementwise loop computed into its buffer
 * (cg_carry_update_in_place, ST_CARRY) is already there: like an unchanged
 * carry it needs no copy.
 *
 * Invariants: a carry lives in its scan result's buffer for the whole loop
 * (the region's carry argument is that pointer), so the final carries need
 * no copy; per-step outputs are copied before the carries change, so an
 * output that is an old carry reads the old value. The region's buffers
 * are workspace buffers like any other (<fn>_layout includes them); a
 * region's ops are emitted as kernels named after their lines.
 */
#include <inttypes.h>
#include <string.h>

#include "c_emit.h"

static const Value *root_of(FnEmit *fe, const Value *v) {
  while (cg_info(fe, v)->storage == ST_ALIAS ||
         cg_info(fe, v)->storage == ST_CARRY)
    v = cg_info(fe, v)->alias;
  return v;
}

/* The elements of one row of v (after its first axis), in parentheses when
 * a sum or product: "(B * 16)". */
static const char *row_elems(FnEmit *fe, const Value *v, uint64_t *used) {
  Emitter *e = fe->e;
  const Shape *s = &v->type.shape;
  const char *n =
      cg_dims_product(&e->arena, s->dims, 1, s->rank, e->symnames, used);
  return strchr(n, ' ') ? cg_strf(&e->arena, "(%s)", n) : n;
}

/* Row t of v: "t6 + t * (B * 16)". */
static const char *row_at(FnEmit *fe, const Value *v, const char *t,
                          uint64_t *used) {
  return cg_strf(&fe->e->arena, "%s + %s * %s", cg_pointer(fe, v), t,
                 row_elems(fe, v, used));
}

bool cg_emit_scan(FnEmit *fe, const Op *op, CgBuf *run) {
  Emitter *e = fe->e;
  Arena *a = &e->arena;
  const Block *body = op->regions[0];
  const Op *y = ir_scan_yield(op);
  int nc = op->attrs.scan.ncarry, ns = op->attrs.scan.nseq;
  int first = ir_scan_first_output(op);
  bool until = op->attrs.scan.until;
  int nout = ir_scan_noutputs(op);
  uint64_t used = 0;
  const char *len = cg_dim(a, op->attrs.scan.length, e->symnames, &used);
  const char *step = cg_names_unique(&fe->locals, a, "step");
  const char *t = cg_names_unique(&fe->locals, a, "t");
  const char *src = cg_source_line(e, op->loc);
  cg_buf_printf(run, "  /* %s: scan over %s steps%s%s%s */\n",
                cg_where(e, op->loc), len,
                op->attrs.scan.reverse ? ", reversed" : "", src ? ": " : "",
                src ? src : "");
  /* a carry yielded from another carry's argument would read it after
   * that carry changed */
  for (int i = 0; i < nc; i++) {
    const Value *r = root_of(fe, y->operands[i]);
    for (int j = 0; j < nc; j++)
      if (j != i && r == body->args[j]) {
        diag_error(e->d, y->loc,
                   "the C backend does not support a scan carry that takes "
                   "another carry's old value yet (carry %d from carry %d)",
                   i, j);
        return false;
      }
  }
  for (int i = 0; i < nc; i++)
    if (root_of(fe, op->operands[i]) != root_of(fe, op->results[i]))
      cg_buf_printf(run, "  memcpy(%s, %s, %s);\n",
                    cg_pointer(fe, op->results[i]),
                    cg_pointer(fe, op->operands[i]),
                    cg_buffer_bytes(fe, op->results[i], &used));
    else if (cg_info(fe, op->results[i])->storage == ST_ALIAS)
      cg_buf_printf(run, "  /* carry %d starts in %s */\n", i,
                    cg_pointer(fe, op->results[i]));
  const char *steps = until ? cg_names_unique(&fe->locals, a, "steps") : NULL;
  const char *stop = until ? cg_names_unique(&fe->locals, a, "stop") : NULL;
  if (until)
    cg_buf_printf(run, "  int64_t %s = 0;\n", steps);
  cg_buf_printf(run, "  for (int64_t %s = 0; %s < %s; %s++) {\n", step, step,
                len, step);
  if (op->attrs.scan.reverse)
    cg_buf_printf(run, "    const int64_t %s = %s - 1 - %s;\n", t, len, step);
  else
    cg_buf_printf(run, "    const int64_t %s = %s;\n", t, step);
  CgBuf inner = {0};
  for (int j = 0; j < nout; j++) { /* outputs computed in their rows */
    ValueInfo *vi = cg_info(fe, y->operands[first + j]);
    if (vi->storage == ST_SLOT)
      vi->cname = row_at(fe, vi->alias, t, &used);
  }
  for (int i = nc; i < body->nargs; i++) {
    const Value *arg = body->args[i];
    ValueInfo *vi = cg_info(fe, arg);
    const char *ct = cg_ctype(arg->type.dtype);
    if (vi->uses == 0) /* a slice or index the step does not read */
      continue;
    if (i >= nc + ns) { /* the step index; cname is "&name" */
      cg_buf_printf(&inner, "  const int32_t %s = (int32_t)%s;\n",
                    vi->cname + 1, t);
      continue;
    }
    cg_buf_printf(&inner, "  const %s *%s = %s;\n", ct, vi->cname,
                  row_at(fe, op->operands[i], t, &used));
  }
  bool ok = true;
  const Op *declared = NULL; /* pointers declared up to here */
  for (const Op *o = body->first; ok && o; o = o->next) {
    if (!cg_op_live(fe, o))
      continue;
    if (!declared) {
      /* a row group's kernel, at its first op, takes the pointers of all */
      declared = cg_row_group_of(fe, o) > 0 ? cg_row_group_last(fe, o) : o;
      for (const Op *p = o; p != declared->next; p = p->next)
        if (cg_op_live(fe, p))
          cg_declare_pointers(fe, p, &inner, &fe->uses_m);
    }
    if (declared == o)
      declared = NULL;
    ok = cg_emit_op(fe, o, &inner);
  }
  /* the done flag, before any carry changes; outputs into slot t, then
   * the new carries */
  if (ok && until)
    cg_buf_printf(&inner, "  const uint8_t %s = %s[0];\n", stop,
                  cg_pointer(fe, y->operands[nc]));
  for (int j = 0; ok && j < nout; j++) {
    const Value *v = y->operands[first + j], *r = op->results[nc + j];
    if (cg_info(fe, v)->storage == ST_SLOT)
      continue;
    cg_buf_printf(&inner, "  memcpy(%s, %s, %s);\n", row_at(fe, r, t, &used),
                  cg_pointer(fe, v), cg_buffer_bytes(fe, v, &used));
  }
  for (int i = 0; ok && i < nc; i++) {
    const Value *v = y->operands[i];
    if (root_of(fe, v) == body->args[i]) { /* unchanged, or updated in place */
      if (v != body->args[i] && cg_info(fe, v)->storage == ST_ALIAS)
        cg_buf_printf(&inner, "  (void)%s; /* carry %d is in place */\n",
                      cg_info(fe, v)->cname, i);
      continue;
    }
    cg_buf_printf(&inner, "  memcpy(%s, %s, %s);\n",
                  cg_pointer(fe, op->results[i]), cg_pointer(fe, v),
                  cg_buffer_bytes(fe, v, &used));
  }
  if (ok && until)
    cg_buf_printf(&inner, "  %s = %s + 1;\n  if (%s)\n    break;\n", steps,
                  step, stop);
  if (ok) {
    cg_buf_indented(run, cg_buf_str(&inner), 2);
    cg_buf_puts(run, "  }\n");
  }
  if (ok && until) { /* rows no step wrote are zeros; the step count */
    for (int j = 0; j < nout; j++) {
      const Value *r = op->results[nc + j];
      const char *row = row_elems(fe, r, &used);
      cg_buf_printf(
          run, "  memset(%s%s, 0, (size_t)(%s - %s) * %s * sizeof(%s));\n",
          cg_pointer(fe, r),
          op->attrs.scan.reverse ? "" : cg_strf(a, " + %s * %s", steps, row),
          len, steps, row, cg_ctype(r->type.dtype));
    }
    cg_buf_printf(run, "  %s[0] = (int32_t)%s;\n",
                  cg_pointer(fe, op->results[op->nresults - 1]), steps);
  }
  cg_buf_free(&inner);
  return ok;
}

static bool is_live(FnEmit *fe, const Op *op) {
  for (int i = 0; i < op->nresults; i++)
    if (cg_info(fe, op->results[i])->uses > 0)
      return true;
  return false;
}

static bool is_result_of(const Value *v, const void *scan) {
  return v->def == scan;
}

const Op *cg_scan_partner(FnEmit *fe, const Op *op) {
  if (op->kind != OP_SCAN || op->parent != fe->f->body || !is_live(fe, op))
    return NULL;
  const Op *next = op->next; /* passes/pair_scans.c made them neighbours */
  while (next && !is_live(fe, next))
    next = next->next;
  if (!next || next->kind != OP_SCAN || !is_live(fe, next) ||
      !dim_eq(op->attrs.scan.length, next->attrs.scan.length) ||
      ir_op_reads_any(next, is_result_of, op))
    return NULL;
  return next;
}

/* ---- two scans side by side ------------------------------------------ */

static bool ident_char(char c) {
  return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9');
}

/* Whether identifier name occurs in C text outside comments (a number's
 * letters, as in 0x1p+0f or 1.5e3f, are no identifier). */
static bool mentions(const char *text, const char *name) {
  size_t n = strlen(name);
  for (const char *p = text; *p;) {
    if (p[0] == '/' && p[1] == '*') {
      const char *end = strstr(p + 2, "*/");
      p = end ? end + 2 : p + strlen(p);
    } else if (ident_char(*p)) {
      bool number = *p >= '0' && *p <= '9';
      const char *q = p;
      while (ident_char(*q) || (number && *q == '.'))
        q++;
      if ((size_t)(q - p) == n && memcmp(p, name, n) == 0)
        return true;
      p = q;
    } else {
      p++;
    }
  }
  return false;
}

typedef struct Captured {
  CgBuf fields, unpack, init;
} Captured;

/* A variable of the run function the tasks read: a field of the task's
 * arguments when the loops' text mentions it. */
static void capture(Captured *c, const char *text, const char *type,
                    const char *name) {
  if (!mentions(text, name))
    return;
  cg_buf_printf(&c->fields, "  %s%s%s;\n", type,
                cg_ends_with_star(type) ? "" : " ", name);
  cg_buf_printf(&c->unpack, "  %s%s%s = args->%s;\n", type,
                cg_ends_with_star(type) ? "" : " ", name, name);
  cg_buf_printf(&c->init, "%s%s", c->init.len ? ", " : "", name);
}

static void capture_all(FnEmit *fe, Captured *c, const char *text) {
  Emitter *e = fe->e;
  Arena *a = &e->arena;
  const Function *f = fe->f;
  capture(c, text, cg_strf(a, "%s_model *", e->name), "m");
  capture(c, text, "unsigned char *", "ws");
  capture(c, text, "const size_t *", "off");
  for (int s = 0; s < e->m->nsymbols; s++)
    if (fe->syms & (UINT64_C(1) << s))
      capture(c, text, "int64_t", e->symnames[s]);
  for (int i = 0; i < f->ninputs; i++) {
    const char *ct = cg_ctype(f->inputs[i].value->type.dtype);
    capture(c, text,
            cg_strf(a, "%s%s *", cg_input_in_abi(fe, i) ? "const " : "", ct),
            fe->in_names[i]);
  }
  for (int i = 0; i < f->noutputs; i++)
    if (cg_output_in_abi(fe, i))
      capture(c, text,
              cg_strf(a, "%s *", cg_ctype(f->outputs[i].value->type.dtype)),
              fe->out_names[i]);
  /* the pointers cg_declare_pointers declares at the top */
  for (const Op *op = f->body->first; op; op = op->next)
    for (int i = 0; i < op->nresults; i++) {
      const Value *v = op->results[i];
      ValueInfo *vi = cg_info(fe, v);
      const char *ct = cg_ctype(v->type.dtype);
      if (vi->storage == ST_PARAM)
        capture(c, text,
                cg_strf(a, "const %s *", cg_ctype(e->wstore[vi->index])),
                vi->cname);
      else if (vi->storage == ST_WORKSPACE)
        capture(c, text, cg_strf(a, "%s *", ct), vi->cname);
      else if (vi->storage == ST_ALIAS && vi->referenced)
        capture(c, text, cg_strf(a, "const %s *", ct), vi->cname);
    }
}

bool cg_emit_scan_pair(FnEmit *fe, const Op *s1, const Op *s2, CgBuf *run,
                       CgBuf *tasks) {
  Emitter *e = fe->e;
  Arena *a = &e->arena;
  CgBuf b1 = {0}, b2 = {0};
  if (!cg_emit_scan(fe, s1, &b1) || !cg_emit_scan(fe, s2, &b2)) {
    cg_buf_free(&b1);
    cg_buf_free(&b2);
    return false;
  }
  /* a loop that can fail (an index check) jumps to its task's `done`,
   * which keeps the task's status and error for the run function */
  bool can_fail = strstr(cg_buf_str(&b1), "goto done") ||
                  strstr(cg_buf_str(&b2), "goto done");
  const char *name = cg_names_unique(
      &e->globals, a, cg_strf(a, "%s_L%d_scans", fe->run, s1->loc.line));
  const char *both = cg_strf(a, "%s%s", cg_buf_str(&b1), cg_buf_str(&b2));
  Captured c = {{0}, {0}, {0}};
  capture_all(fe, &c, both);
  if (can_fail) {
    cg_buf_puts(&c.fields, "  int *task_rc;\n  McError *task_err;\n");
    cg_buf_printf(&c.init, "%stask_rc, task_err", c.init.len ? ", " : "");
  }
  const char *w1 = cg_where(e, s1->loc), *w2 = cg_where(e, s2->loc);
  const char *where = strcmp(w1, w2) ? cg_strf(a, "%s and %s", w1, w2)
                                     : cg_strf(a, "%s (twice)", w1);
  cg_buf_printf(tasks,
                "/* %s: two scans over the same steps, neither reading\n"
                " * the other: one per thread (on one thread, in turn). */\n"
                "typedef struct {\n%s} %s_args;\n\n"
                "static void %s(void *ctx, int64_t begin, int64_t end) {\n"
                "  const %s_args *args = ctx;\n%s"
                "  for (int64_t task = begin; task < end; task++) {\n",
                where, cg_buf_str(&c.fields), name, name, name,
                cg_buf_str(&c.unpack));
  if (can_fail)
    cg_buf_puts(tasks, "    McError *err = &args->task_err[task];\n"
                       "    int rc = MC_OK;\n");
  cg_buf_puts(tasks, "    if (task == 0) {\n");
  cg_buf_indented(tasks, cg_buf_str(&b1), 4);
  cg_buf_puts(tasks, "    } else {\n");
  cg_buf_indented(tasks, cg_buf_str(&b2), 4);
  cg_buf_puts(tasks, "    }\n");
  if (can_fail)
    cg_buf_puts(tasks, "  done:\n    args->task_rc[task] = rc;\n");
  cg_buf_puts(tasks, "  }\n}\n\n");
  cg_buf_printf(run, "  { /* the scans of %s, side by side */\n", where);
  if (can_fail)
    cg_buf_puts(run, "    int task_rc[2] = {MC_OK, MC_OK};\n"
                     "    McError task_err[2];\n");
  cg_buf_printf(run,
                "    %s_args args = {%s};\n"
                "    mc_parallel_for(2, 1, %s, &args);\n",
                name, cg_buf_str(&c.init), name);
  if (can_fail)
    cg_buf_puts(run, "    if ((rc = mc_tasks_status(task_rc, task_err, 2, "
                     "err)) != MC_OK)\n      goto done;\n");
  cg_buf_puts(run, "  }\n");
  cg_buf_free(&c.fields);
  cg_buf_free(&c.unpack);
  cg_buf_free(&c.init);
  cg_buf_free(&b1);
  cg_buf_free(&b2);
  return true;
}
