/* Memory planning: the intermediates of a function share one arena, and
 * buffers whose lifetimes never meet share bytes.
 *
 * A lifetime is an interval of steps: the live ops numbered in program
 * order, a scan's region inside its loop. A scan takes a step to begin (its
 * carries are copied in), then its region's ops and yield, then a step to
 * end; the function's outputs are copied out in one last step:
 *
 *   1  x = ...        x: [1, 4]   (read in the loop: until the scan ends)
 *   2  scan begins    c: [2, 7]   (the carry, a result of the scan)
 *   3    h = f(c, x)  h: [3, 5]   (read by the yield)
 *   4    g = f(h)     g: [4, 5]
 *   5    yield g, h
 *   6  scan ends
 *   7  (outputs)
 *
 * A buffer lives from the step that writes it (a scan's results: from its
 * begin to at least its end) to the last step that reads it, through
 * aliases (reshapes, updates made in place). A read inside a scan's region
 * of a buffer defined outside that scan counts as a read at the scan's end:
 * every step of the loop reads it. So does the scan's reading of its
 * sequences; its carries' initial values are read at its begin (a carry
 * that lives in its initial value's buffer, c_in_place.c, keeps that
 * buffer to the scan's end). A region's
 * own buffers never outlive a step: the yield copies what the next step
 * needs into the carries, which are the scan results' buffers. Values
 * written straight into the caller's output buffers are not in the arena.
 * An op computed in its reader's kernel (ST_FUSED) is no step of its own:
 * its reads are made at the reader's step. Two scans that run at the same
 * time (cg_scan_partner) share their steps: a buffer live at any step from
 * the first's begin to the second's end lives at all of them; so does a
 * buffer live at any step of a row group's kernels (c_row_group.c), which
 * run one block of rows after the other.
 *
 * <fn>_layout places the buffers in order of first step (then index) by
 * first fit: each goes at the lowest offset where it overlaps none of the
 * buffers placed before it whose lifetimes meet its own. With symbolic
 * sizes the generated code runs that algorithm (mc_plan_place) when called;
 * with constant sizes cg_plan_first_fit runs it here and the offsets are
 * written as numbers. Compiled with -DMC_CHECK_PLAN, the layout checks that
 * no two buffers live at a common step overlap (mc_plan_check), and the run
 * function fills the arena with 0xff bytes, so a buffer read before it is
 * written reads NaNs instead of zeros.
 *
 * A training entry's optimizer states are buffers 0 .. nstates-1, live
 * from step 0 to the last: placed first, they fill the arena's first
 * bytes, the part the model keeps between calls (c_storage.c).
 *
 * Invariants: buffers live at a common step never overlap, so a kernel's
 * result never overlaps its operands (its `restrict` pointers stay true)
 * unless c_in_place.c made the update in place; the plan is a pure
 * function of the Module.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "c_emit.h"

/* ---- lifetimes -------------------------------------------------------- */

typedef struct Steps {
  FnEmit *fe;
  int *buffer_of; /* by value id: its workspace buffer, or -1 */
  int *scan_end;  /* by the id of a scan's first result: its end step */
  int step;
  /* scans that run at the same time (cg_scan_partner): the steps from the
   * first's begin to the second's end, [win[i][0], win[i][1]] */
  const Op *partner;
  int pair_begin, nwin;
  int (*win)[2];
  /* a row group's kernels (c_row_group.c) are one window too: its first
   * step, and how many of its kernels are still to come */
  int group_begin, group_left;
} Steps;

/* Whether op is a step: it is live, and not a GEMM that runs in its
 * reader's kernel (ST_FUSED: that reader's step reads its operands). */
static bool op_is_step(FnEmit *fe, const Op *op) {
  bool live = cg_op_live(fe, op);
  return live && !(op->nresults == 1 &&
                   cg_info(fe, op->results[0])->storage == ST_FUSED);
}

/* First pass: the end step of every live scan. */
static void number_scans(Steps *s, const Block *b) {
  for (const Op *op = b->first; op; op = op->next) {
    if (!op_is_step(s->fe, op))
      continue;
    s->step++;
    if (op->kind != OP_SCAN)
      continue;
    number_scans(s, op->regions[0]);
    s->scan_end[op->results[0]->id] = ++s->step;
  }
}

static void extend(CgPlan *p, int buffer, int step) {
  if (p->end[buffer] < step)
    p->end[buffer] = step;
}

/* `user` (NULL: the function's outputs) reads v at `step`. */
static void note_read(Steps *s, const Value *v, const Op *user, int step) {
  FnEmit *fe = s->fe;
  while (cg_info(fe, v)->storage == ST_ALIAS ||
         cg_info(fe, v)->storage == ST_VIEW)
    v = cg_info(fe, v)->alias;
  int buffer = s->buffer_of[v->id];
  if (buffer < 0)
    return;
  const Block *home = v->def ? v->def->parent : fe->f->body;
  for (const Op *o = user; o && o->parent != home;) {
    o = o->parent->parent_op; /* a scan the read is inside of */
    if (o && o->parent == home)
      step = s->scan_end[o->results[0]->id];
  }
  extend(&fe->plan, buffer, step);
}

/* note_read, and for a value computed in user's kernel (ST_FUSED) the
 * reads of its op, which run in that kernel. */
static void note_reads(Steps *s, const Value *v, const Op *user, int step) {
  note_read(s, v, user, step);
  if (cg_info(s->fe, v)->storage == ST_FUSED)
    for (int j = 0; j < v->def->noperands; j++)
      note_reads(s, v->def->operands[j], user, step);
}

/* Second pass: the same numbering; writes start buffers, reads extend
 * them. */
static void note_steps(Steps *s, const Block *b) {
  CgPlan *p = &s->fe->plan;
  for (const Op *op = b->first; op; op = op->next) {
    if (!op_is_step(s->fe, op))
      continue;
    int begin = ++s->step, end = begin;
    bool scan = op->kind == OP_SCAN;
    if (scan) {
      note_steps(s, op->regions[0]);
      end = ++s->step;
      if (op == s->partner) {
        s->win[s->nwin][0] = s->pair_begin;
        s->win[s->nwin++][1] = end;
        s->partner = NULL;
      } else if ((s->partner = cg_scan_partner(s->fe, op)) != NULL) {
        s->pair_begin = begin;
      }
    }
    int group = cg_row_group_of(s->fe, op);
    if (group > 0) {
      s->group_begin = begin;
      s->group_left = group;
    }
    if (group != 0 && --s->group_left == 0) {
      s->win[s->nwin][0] = s->group_begin;
      s->win[s->nwin++][1] = end;
    }
    for (int i = 0; i < op->nresults; i++) {
      int buffer = s->buffer_of[op->results[i]->id];
      if (buffer >= 0) {
        p->start[buffer] = begin;
        extend(p, buffer, end);
      } else if (scan) { /* a carry in its initial value's buffer */
        note_read(s, op->results[i], op, end);
      }
    }
    for (int i = 0; i < op->noperands; i++) {
      bool carry = scan && i < op->attrs.scan.ncarry;
      note_reads(s, op->operands[i], op, scan && !carry ? end : begin);
    }
  }
}

/* Byte size of buffer v, when it is a constant. */
static bool constant_bytes(const Value *v, size_t *bytes) {
  int64_t n;
  if (!shape_const_numel(&v->type.shape, &n))
    return false;
  size_t raw = (size_t)n * dtype_size(v->type.dtype);
  *bytes = (raw + 63) & ~(size_t)63;
  return true;
}

/* Placement order: by start, then index (an insertion sort, stable). */
static void sort_by_start(int n, const int *start, int *order) {
  for (int i = 0; i < n; i++) {
    int j = i;
    for (; j > 0 && start[order[j - 1]] > start[i]; j--)
      order[j] = order[j - 1];
    order[j] = i;
  }
}

static bool meets(const int *start, const int *end, int i, int j) {
  return start[i] <= end[j] && start[j] <= end[i];
}

size_t cg_plan_first_fit(int n, const int *start, const int *end,
                         const size_t *bytes, size_t *off) {
  int *order = malloc(((size_t)n + 1) * sizeof *order);
  sort_by_start(n, start, order);
  size_t arena = 0;
  for (int k = 0; k < n; k++) {
    int i = order[k];
    size_t at = 0;
    for (int q = 0; q < k; q++) {
      int j = order[q];
      if (meets(start, end, i, j) && at < off[j] + bytes[j] &&
          off[j] < at + bytes[i]) {
        at = off[j] + bytes[j];
        q = -1; /* moved past j: every placed buffer again */
      }
    }
    off[i] = at;
    if (at + bytes[i] > arena)
      arena = at + bytes[i];
  }
  free(order);
  return arena;
}

/* The ops of b and of its scans' regions: windows (two scans, or a row
 * group) take two ops or more each. */
static int count_ops(const Block *b) {
  int n = 0;
  for (const Op *op = b->first; op; op = op->next) {
    n++;
    if (op->kind == OP_SCAN)
      n += count_ops(op->regions[0]);
  }
  return n;
}

void cg_plan_lifetimes(FnEmit *fe) {
  Arena *a = &fe->e->arena;
  CgPlan *p = &fe->plan;
  int n = fe->nbuffers, nvalues = fe->e->m->next_value_id + 1;
  Steps s = {fe,
             arena_alloc(a, (size_t)nvalues * sizeof(int)),
             arena_alloc(a, (size_t)nvalues * sizeof(int)),
             0,
             NULL,
             0,
             0,
             NULL,
             0,
             0};
  for (int v = 0; v < nvalues; v++)
    s.buffer_of[v] = -1;
  for (int i = 0; i < n; i++)
    s.buffer_of[fe->buffers[i]->id] = i;
  p->start = arena_alloc(a, ((size_t)n + 1) * sizeof(int));
  p->end = arena_alloc(a, ((size_t)n + 1) * sizeof(int));
  p->order = arena_alloc(a, ((size_t)n + 1) * sizeof(int));
  s.win =
      arena_alloc(a, ((size_t)count_ops(fe->f->body) / 2 + 1) * sizeof *s.win);
  number_scans(&s, fe->f->body);
  s.step = 0; /* step 0: defaults of absent inputs are filled */
  note_steps(&s, fe->f->body);
  p->last_step = ++s.step;
  for (int i = 0; i < fe->f->noutputs; i++)
    note_read(&s, fe->f->outputs[i].value, NULL, p->last_step);
  /* two scans at the same time: whatever lives during either lives
   * during both */
  for (int w = 0; w < s.nwin; w++)
    for (int i = 0; i < n; i++)
      if (p->start[i] <= s.win[w][1] && s.win[w][0] <= p->end[i]) {
        if (p->start[i] > s.win[w][0])
          p->start[i] = s.win[w][0];
        extend(p, i, s.win[w][1]);
      }
  for (int i = 0; i < fe->nstates; i++) { /* kept from call to call */
    size_t bytes = 0;
    constant_bytes(fe->buffers[i], &bytes);
    fe->state_bytes += bytes;
    extend(p, i, p->last_step);
  }
  sort_by_start(n, p->start, p->order);
  /* constant sizes: the plan is made here */
  p->bytes = arena_alloc(a, ((size_t)n + 1) * sizeof(size_t));
  p->off = arena_alloc(a, ((size_t)n + 1) * sizeof(size_t));
  p->constant = true;
  for (int i = 0; i < n; i++)
    p->constant = constant_bytes(fe->buffers[i], &p->bytes[i]) && p->constant;
  if (p->constant)
    p->arena = cg_plan_first_fit(n, p->start, p->end, p->bytes, p->off);
  /* the most bytes live at one step: no plan can do better */
  for (int i = 0; p->constant && i < n; i++) {
    size_t live = 0;
    for (int j = 0; j < n; j++)
      if (p->start[j] <= p->start[i] && p->start[i] <= p->end[j])
        live += p->bytes[j];
    if (live > p->lower_bound)
      p->lower_bound = live;
  }
}

/* ---- the emitted layout ------------------------------------------------- */

static const char *buffer_label(FnEmit *fe, const Value *v) {
  if (!v->def)
    return cg_strf(&fe->e->arena, "%s %s",
                   fe->state_update[cg_info(fe, v)->index] >= 0
                       ? "optimizer state"
                       : "default of input",
                   fe->in_names[cg_info(fe, v)->index]);
  return cg_info(fe, v)->cname;
}

/* "a, b, c": the earlier-placed buffers sharing bytes with buffer i. */
static const char *shared_with(FnEmit *fe, int k) {
  const CgPlan *p = &fe->plan;
  int i = p->order[k];
  CgBuf b = {0};
  for (int q = 0; q < k; q++) {
    int j = p->order[q];
    if (p->off[i] < p->off[j] + p->bytes[j] &&
        p->off[j] < p->off[i] + p->bytes[i])
      cg_buf_printf(&b, "%s%s", b.len ? ", " : "",
                    buffer_label(fe, fe->buffers[j]));
  }
  const char *r = b.len ? cg_strf(&fe->e->arena, "%s", cg_buf_str(&b)) : NULL;
  cg_buf_free(&b);
  return r;
}

/* The constant sizes as a C initializer list. */
static void emit_constant_sizes(FnEmit *fe, CgBuf *out) {
  for (int i = 0; i < fe->nbuffers; i++)
    cg_buf_printf(out, "%s%zu",
                  i == 0  ? ""
                  : i % 8 ? ", "
                          : ",\n      ",
                  fe->plan.bytes[i]);
}

static void emit_check(FnEmit *fe, CgBuf *out, const char *count) {
  const CgPlan *p = &fe->plan;
  cg_buf_puts(out, "#ifdef MC_CHECK_PLAN\n");
  cg_buf_printf(out, "  static const int live[%s][2] = {", count);
  for (int i = 0; i < fe->nbuffers; i++)
    cg_buf_printf(out, "%s{%d, %d}",
                  i == 0  ? ""
                  : i % 6 ? ", "
                          : ",\n      ",
                  p->start[i], p->end[i]);
  cg_buf_puts(out, "};\n");
  if (p->constant) {
    cg_buf_printf(out, "  static const size_t size[%s] = {", count);
    emit_constant_sizes(fe, out);
    cg_buf_puts(out, "};\n");
  }
  cg_buf_printf(out, "  mc_plan_check(\"%s\", %s, live, off, size, %s);\n",
                fe->layout, count, p->constant ? "arena" : "end");
  cg_buf_puts(out, "#endif\n");
}

/* The layout's statements: one numeric offset per buffer, or mc_plan_place
 * calls in placement order. */
int cg_plan_meets(const FnEmit *fe, int k, int *out) {
  const CgPlan *p = &fe->plan;
  int i = p->order[k], n = 0;
  for (int q = 0; q < k; q++)
    if (meets(p->start, p->end, i, p->order[q]))
      out[n++] = p->order[q];
  return n;
}

static void emit_placements(FnEmit *fe, CgBuf *out, uint64_t *used) {
  const CgPlan *p = &fe->plan;
  Arena *a = &fe->e->arena;
  for (int k = 0; k < fe->nbuffers; k++) {
    int i = p->order[k];
    const Value *v = fe->buffers[i];
    char ty[256];
    type_print(ty, sizeof ty, &v->type, fe->e->m);
    const char *label = buffer_label(fe, v);
    if (p->constant) {
      const char *shared = shared_with(fe, k);
      cg_buf_printf(out, "  off[%d] = %zu; /* %s: %s, steps %d-%d%s%s */\n", i,
                    p->off[i], label, ty, p->start[i], p->end[i],
                    shared ? ", reuses " : "", shared ? shared : "");
      continue;
    }
    CgBuf list = {0};
    int *met = arena_alloc(a, sizeof(int) * ((size_t)k + 1));
    int nmeets = cg_plan_meets(fe, k, met);
    for (int q = 0; q < nmeets; q++)
      cg_buf_printf(&list, "%s%d", q ? ", " : "", met[q]);
    cg_buf_printf(out, "  /* %s: %s, steps %d-%d */\n", label, ty, p->start[i],
                  p->end[i]);
    cg_buf_printf(out, "  size[%d] = align64(%s);\n", i,
                  cg_buffer_bytes(fe, v, used));
    cg_buf_printf(
        out, "  end = mc_plan_place(%d, %s, %d, off, size, end);\n", i,
        nmeets ? cg_strf(a, "(const int[]){%s}", cg_buf_str(&list)) : "NULL",
        nmeets);
    cg_buf_free(&list);
  }
}

uint64_t cg_emit_layout(FnEmit *fe) {
  Emitter *e = fe->e;
  const CgPlan *p = &fe->plan;
  CgBuf *out = &e->funcs;
  uint64_t used = 0;
  char *count = cg_strf(&e->arena, "%s_NBUFFERS", fe->run);
  for (char *c = count; *c; c++)
    if (*c >= 'a' && *c <= 'z')
      *c = (char)(*c - 'a' + 'A');
  if (fe->nbuffers > 0) {
    CgBuf body = {0};
    emit_placements(fe, &body, &used);
    cg_buf_printf(
        out,
        "/* Workspace of %s: %d buffers in one arena. Buffer i is live from "
        "the\n * step that writes it to the last step that reads it (the "
        "steps number the\n * ops of %s in order; a buffer read inside a "
        "scan's loop lives\n * through the whole loop); buffers live at a "
        "common step never share\n * bytes, others may. In order of their "
        "first step, each goes at the\n * lowest 64-byte aligned offset free "
        "of the buffers it meets (first fit).",
        fe->run, fe->nbuffers, fe->run);
    if (p->constant)
      cg_buf_printf(out,
                    "\n * Arena: %zu bytes; the most bytes live at one step: "
                    "%zu. */\n",
                    p->arena, p->lower_bound);
    else
      cg_buf_puts(out, "\n * The sizes depend on symbols: planned when "
                       "called. */\n");
    cg_buf_printf(out, "enum { %s = %d };\n\n", count, fe->nbuffers);
    cg_buf_printf(out, "static size_t %s(%ssize_t off[%s]) {\n", fe->layout,
                  cg_sym_args(fe, used, true), count);
    if (!p->constant)
      cg_buf_printf(out, "  size_t size[%s], end = 0;\n", count);
    else
      cg_buf_printf(out, "  const size_t arena = %zu;\n", p->arena);
    cg_buf_puts(out, cg_buf_str(&body));
    emit_check(fe, out, count);
    cg_buf_printf(out, "  return %s;\n}\n\n", p->constant ? "arena" : "end");
    cg_buf_free(&body);
    e->any_run_time_plan |= !p->constant;
  }
  if (fe->internal)
    return used;
  cg_buf_printf(out, "size_t %s(%s", fe->wsize, fe->syms ? "" : "void");
  for (int s = 0, n = 0; s < e->m->nsymbols; s++)
    if (fe->syms & (UINT64_C(1) << s))
      cg_buf_printf(out, "%sint64_t %s", n++ ? ", " : "", e->symnames[s]);
  cg_buf_puts(out, ") {\n");
  for (int s = 0; s < e->m->nsymbols; s++)
    if ((fe->syms & ~used) & (UINT64_C(1) << s))
      cg_buf_printf(out, "  (void)%s;\n", e->symnames[s]);
  if (fe->nbuffers > 0)
    cg_buf_printf(out, "  size_t off[%s];\n  return %s(%soff);\n}\n\n", count,
                  fe->layout, cg_sym_args(fe, used, false));
  else
    cg_buf_puts(out, "  return 0;\n}\n\n");
  return used;
}

/* The arena's size for the header: a number, or the size function. */
const char *cg_plan_arena_text(FnEmit *fe) {
  Emitter *e = fe->e;
  if (fe->nbuffers == 0)
    return "no";
  if (fe->plan.constant)
    return cg_strf(&e->arena, "%zu (%s())", fe->plan.arena, fe->wsize);
  CgBuf b = {0};
  for (int s = 0; s < e->m->nsymbols; s++)
    if (fe->syms & (UINT64_C(1) << s))
      cg_buf_printf(&b, "%s%s", b.len ? ", " : "", e->symnames[s]);
  const char *r = cg_strf(&e->arena, "%s(%s)", fe->wsize, cg_buf_str(&b));
  cg_buf_free(&b);
  return r;
}
