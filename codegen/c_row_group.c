/* Row groups: consecutive kernels that each take the rows of the same axis
 * and read only their own rows of what the group writes run as one kernel,
 * one block of rows after the other. A layer norm (mean; variance with its
 * (x - mu)^2 prologue and rsqrt epilogue; normalization) then reads each
 * row from memory once, and its three parallel regions become one:
 *
 *   static void layer_norm_L19_L21_rows_range(void *ctx, int64_t begin,
 *                                             int64_t end) {
 *     layer_norm_L19_L21_rows_args *args = ctx;
 *     for (int64_t r0 = begin; r0 < end; r0 += 8) {
 *       const int64_t r1 = end - r0 < 8 ? end : r0 + 8;
 *       layer_norm_L19_reduce_mean_range(&args->s0, r0, r1);
 *       layer_norm_L20_reduce_mean_L21_range(&args->s1, r0, r1);
 *       layer_norm_L21_fused_range(&args->s2, r0, r1);
 *     }
 *   }
 *
 * A stage is a ranged reduction (its outermost looped axis kept; with its
 * prologue and epilogue) or an elementwise loop, and a group has a
 * reduction (elementwise loops that the fuse pass left apart stay apart:
 * their buffers can share bytes, a group's cannot). The stages of a group
 * loop over shapes of one rank whose first axis of extent other than 1 is
 * the same axis of the same extent, the rows. Each operand an op of a
 * stage reads is either aligned (the same rank, that axis of that extent,
 * 1 before it: row r of it is row r of the op's loop; not a view, whose
 * rows are other rows of its base) or a weight or a constant, which
 * nothing writes. So a stage reads at row r only what the
 * stages before it wrote at row r, and a buffer written in place is read
 * by every stage at the rows being written only: running stage after stage
 * on a block of rows computes what running kernel after kernel on all rows
 * does, the same bits in any blocking and on any number of threads.
 *
 * The memory plan (c_plan.c) keeps every buffer live at some step of a
 * group live at all of its steps: a stage's result never takes the bytes of
 * something an earlier stage reads at later rows.
 */
#include <string.h>

#include "c_emit.h"

/* A stage: the ops of its kernel (prologue, main op, epilogue) and the
 * shape it loops over, with its rows' axis. */
typedef struct Stage {
  const Op *ops[3];
  int nops;
  const Op *main;
  const Shape *shape;
  int axis;
} Stage;

static bool is_reduce(OpKind k) {
  return k == OP_REDUCE_SUM || k == OP_REDUCE_MEAN || k == OP_REDUCE_MAX ||
         k == OP_REDUCE_MIN || k == OP_LOGSUMEXP;
}

/* The first axis of s whose extent is not the constant 1, or -1. */
static int rows_axis(const Shape *s) {
  for (int j = 0; j < s->rank; j++)
    if (!cg_is_one(s->dims[j]))
      return j;
  return -1;
}

/* The storage of the buffer holding v's data. */
static Storage root_storage(FnEmit *fe, const Value *v) {
  const ValueInfo *vi = cg_info(fe, v);
  while ((vi->storage == ST_ALIAS || vi->storage == ST_VIEW) && vi->alias)
    vi = cg_info(fe, vi->alias);
  return vi->storage;
}

/* Whether x, read by an op looping over shape s with rows on `axis` of
 * extent `rows`, is read at the loop's rows only or is never written. */
static bool row_local(FnEmit *fe, const Value *x, const Shape *s, int axis,
                      Dim rows) {
  const Shape *xs = &x->type.shape;
  Storage st = root_storage(fe, x);
  if (st == ST_PARAM || st == ST_CONST)
    return true;
  /* a view's rows are other rows of its base (a slice of rows starts
   * elsewhere): rows of a buffer written in the group only as themselves */
  return cg_info(fe, x)->storage != ST_VIEW && xs->rank == s->rank &&
         rows_axis(xs) == axis && dim_eq(xs->dims[axis], rows);
}

/* Whether the ops of stage st read only row-local operands (the value
 * computed inside the kernel, a prologue's or a reduction's result, is not
 * read from memory). */
static bool stage_row_local(FnEmit *fe, const Stage *st, Dim rows) {
  for (int o = 0; o < st->nops; o++) {
    const Op *op = st->ops[o];
    const Shape *s = op == st->main && is_reduce(op->kind)
                         ? st->shape
                         : &op->results[0]->type.shape;
    int axis = rows_axis(s);
    if (axis < 0 || !dim_eq(s->dims[axis], rows))
      return false;
    for (int i = 0; i < op->noperands; i++) {
      const Value *x = op->operands[i];
      if (cg_info(fe, x)->storage == ST_FUSED ||
          (cg_takes_literals(op) && cg_is_inlinable_const(x)))
        continue;
      if (!row_local(fe, x, s, axis, rows))
        return false;
    }
  }
  return true;
}

/* The stage of the kernel op emits, if it is one. */
static bool stage_of(FnEmit *fe, const Op *op, Stage *st) {
  memset(st, 0, sizeof *st);
  if (op->nresults != 1 || cg_info(fe, op->results[0])->guard)
    return false;
  const Op *ep, *pro, *main = cg_kernel_ops(fe, op, &ep, &pro);
  if (ep && !is_reduce(main->kind))
    return false; /* a GEMM's epilogue */
  if (is_reduce(main->kind)) {
    st->shape = &main->operands[0]->type.shape;
  } else if ((cg_op_is_elementwise(main->kind) || main->kind == OP_FUSED) &&
             !pro) {
    st->shape = &main->results[0]->type.shape;
  } else {
    return false;
  }
  st->axis = rows_axis(st->shape);
  if (st->axis < 0 ||
      (is_reduce(main->kind) && (main->attrs.reduce.axes >> st->axis) & 1u))
    return false; /* no loop, or one over the reduced rows: not ranged */
  if (pro)
    st->ops[st->nops++] = pro;
  st->ops[st->nops++] = main;
  if (ep)
    st->ops[st->nops++] = ep;
  st->main = main;
  return true;
}

/* Whether stage b can follow stage a in a group. */
static bool same_rows(const Stage *a, const Stage *b) {
  return a->shape->rank == b->shape->rank && a->axis == b->axis &&
         dim_eq(a->shape->dims[a->axis], b->shape->dims[b->axis]);
}

/* Marks the groups of block b (and of its scans' regions): at a group's
 * first stage its number of stages, at the others -1. Ops without code of
 * their own (a reshape, an op computed in its reader's kernel) do not
 * break a group; any other kernel, a scan or a yield does. */
static void find_in_block(FnEmit *fe, const Block *b) {
  const Op *first = NULL; /* of the group being grown */
  Stage head = {0};
  int n = 0;
  bool reduces = false; /* a stage of the group is a reduction */
  for (const Op *op = b->first;; op = op->next) {
    if (op && op->kind == OP_SCAN)
      find_in_block(fe, op->regions[0]);
    if (op && !cg_op_emits_kernel(fe, op) && op->kind != OP_SCAN &&
        op->kind != OP_YIELD)
      continue;
    Stage st = {0};
    bool stage = op && stage_of(fe, op, &st) &&
                 stage_row_local(fe, &st, st.shape->dims[st.axis]);
    if (first && stage && same_rows(&head, &st)) {
      fe->row_group[op->results[0]->id] = -1;
      n++;
      reduces |= is_reduce(st.main->kind);
      continue;
    }
    if (first && n >= 2 && reduces) {
      fe->row_group[first->results[0]->id] = n;
    } else if (first) { /* no group: elementwise loops that could not be
                         * fused stay apart (their buffers can share bytes) */
      for (const Op *o = first->next; o != op; o = o->next)
        if (o->nresults > 0)
          fe->row_group[o->results[0]->id] = 0;
    }
    if (!op)
      break;
    first = stage ? op : NULL;
    head = st;
    n = 1;
    reduces = stage && is_reduce(st.main->kind);
  }
}

void cg_find_row_groups(FnEmit *fe) {
  fe->row_group = arena_alloc(
      &fe->e->arena, ((size_t)fe->e->m->next_value_id + 1) * sizeof(int));
  memset(fe->row_group, 0, ((size_t)fe->e->m->next_value_id + 1) * sizeof(int));
  find_in_block(fe, fe->f->body);
}

int cg_row_group_of(const FnEmit *fe, const Op *op) {
  return fe->row_group && op->nresults > 0 ? fe->row_group[op->results[0]->id]
                                           : 0;
}

const Op *cg_row_group_last(FnEmit *fe, const Op *first) {
  int n = cg_row_group_of(fe, first);
  const Op *last = first;
  for (const Op *op = first; op && n > 0; op = op->next)
    if (op == first || cg_row_group_of(fe, op) < 0) {
      last = op;
      n--;
    }
  return last;
}

/* ---- emission ------------------------------------------------------------ */

/* "layer_norm_L19_L21_rows": the first stage's scope and line, the last
 * one's line. */
static const char *group_base(Emitter *e, const Op *first, const Op *last) {
  const char *scope =
      first->loc.scope ? cg_c_ident(&e->arena, first->loc.scope) : e->name;
  if (first->loc.line <= 0)
    return cg_strf(&e->arena, "%s_rows", scope);
  if (last->loc.line > 0 && last->loc.line != first->loc.line)
    return cg_strf(&e->arena, "%s_L%d_L%d_rows", scope, first->loc.line,
                   last->loc.line);
  return cg_strf(&e->arena, "%s_L%d_rows", scope, first->loc.line);
}

/* "const float *restrict" -> "float *", or "const float *" when read only. */
static const char *group_ctype(Arena *a, const char *ctype, bool written) {
  const char *r = strstr(ctype, " *restrict");
  const char *t = r ? cg_strf(a, "%.*s *", (int)(r - ctype), ctype) : ctype;
  return written && !strncmp(t, "const ", 6) ? t + 6 : t;
}

/* Rows per block: about 16 KB of the first stage's loop (inner elements
 * per row), a multiple of 8 rows, or 8 rows when that is not a constant. */
static int block_rows(const Shape *s, int axis) {
  int64_t inner = 1;
  for (int j = axis + 1; j < s->rank; j++) {
    int64_t v;
    if (!dim_is_const(s->dims[j], &v))
      return 8;
    inner *= v;
  }
  int64_t rows = 4096 / (inner > 0 ? inner : 1);
  rows = rows < 8 ? 8 : rows > 512 ? 512 : rows;
  return (int)(rows / 8 * 8);
}

/* text as a C comment, its words wrapped before column 80. */
static void put_comment(CgBuf *out, const char *text) {
  cg_buf_puts(out, "/*");
  int col = 2;
  for (const char *w = text; *w;) {
    int len = (int)strcspn(w, " ");
    if (col + 1 + len > 77) {
      cg_buf_puts(out, "\n *");
      col = 2;
    }
    cg_buf_printf(out, " %.*s", len, w);
    col += 1 + len;
    w += len;
    w += *w == ' ';
  }
  cg_buf_puts(out, " */\n");
}

bool cg_emit_row_group(FnEmit *fe, const Op *first, CgBuf *run) {
  Emitter *e = fe->e;
  Arena *a = &e->arena;
  int n = cg_row_group_of(fe, first);
  CgBuilt *b = arena_alloc(a, (size_t)n * sizeof *b);
  Stage *st = arena_alloc(a, (size_t)n * sizeof *st);
  const char **mult = arena_alloc(a, (size_t)n * sizeof *mult);
  memset(b, 0, (size_t)n * sizeof *b);
  bool ok = true, whole = true; /* whole: every stage's range is rows */
  int i = 0;
  for (const Op *op = first; ok && i < n; op = op->next) {
    if (op != first && cg_row_group_of(fe, op) >= 0)
      continue;
    stage_of(fe, op, &st[i]);
    ok = cg_kernel_build(fe, op, &b[i]);
    CgKernel *k = &b[i].k;
    const Shape *s = st[i].shape;
    int ax = st[i].axis;
    mult[i] = NULL;
    if (ok && (!k->range || k->can_fail))
      whole = false;
    else if (ok && strcmp(k->range, cg_kdim(k, s->dims[ax])) != 0) {
      /* a flat loop: rows of a constant number of elements (the group's
       * range function has no symbols) */
      mult[i] = cg_kproduct(k, s, ax + 1, s->rank);
      whole = strcmp(k->range, cg_kproduct(k, s, 0, s->rank)) == 0 &&
              strspn(mult[i], "0123456789") == strlen(mult[i]);
    }
    i++;
  }
  if (!ok || !whole) { /* each kernel alone (the plan allows both) */
    for (int j = 0; ok && j < n; j++)
      cg_kernel_call(fe, &b[j], cg_kernel_place(fe, &b[j], false), run);
    for (int j = 0; j < n; j++)
      cg_built_free(&b[j]);
    return ok;
  }
  /* the group's parameters: the stages' ones, each argument once */
  int cap = 0;
  for (int j = 0; j < n; j++)
    cap += b[j].np;
  CgParam *ps = arena_alloc(a, (size_t)cap * sizeof *ps);
  bool *written = arena_alloc(a, (size_t)cap * sizeof *written);
  int np = 0;
  const char **names = arena_alloc(a, (size_t)n * sizeof *names);
  CgBuf code = {0}, init = {0};
  cg_buf_puts(&code, "typedef struct {\n");
  for (int j = 0; j < n; j++) {
    names[j] = cg_kernel_place(fe, &b[j], true);
    cg_buf_printf(&code, "  %s_args s%d;\n", names[j], j);
    cg_buf_printf(&init, "%s{", j ? ", " : "");
    for (int q = 0; q < b[j].np; q++) {
      const CgParam *p = &b[j].ps[q];
      bool y = q == b[j].np - 1 && strcmp(p->ctype, "int64_t") != 0;
      int at = 0;
      while (at < np && strcmp(ps[at].arg, p->arg) != 0)
        at++;
      if (at == np) { /* new: its name, or one not taken; a stage's
                       * result y<j>, the last one's y */
        const char *base = y && j < n - 1 ? cg_strf(a, "y%d", j) : p->name,
                   *name = base;
        for (int r = 0, taken = 1; taken; r++) {
          if (r)
            name = cg_strf(a, "%s_%d", base, r + 1);
          taken = 0;
          for (int c = 0; c < np && !taken; c++)
            taken = strcmp(ps[c].name, name) == 0;
        }
        ps[np] = (CgParam){p->ctype, name, p->arg, true};
        written[np++] = false;
      }
      written[at] |= y;
      cg_buf_printf(&init, "%s%s", q ? ", " : "", ps[at].name);
    }
    cg_buf_puts(&init, "}");
  }
  const Shape *s0 = st[0].shape;
  int ax = st[0].axis;
  int rows = block_rows(s0, ax);
  cg_buf_printf(&code,
                "} " KERNEL_NAME "_args;\n\n"
                "static void " KERNEL_NAME
                "_range(void *ctx, int64_t begin, int64_t end) {\n"
                "  " KERNEL_NAME "_args *args = ctx;\n"
                "  for (int64_t r0 = begin; r0 < end; r0 += %d) {\n"
                "    const int64_t r1 = end - r0 < %d ? end : r0 + %d;\n",
                rows, rows, rows);
  for (int j = 0; j < n; j++)
    if (mult[j])
      cg_buf_printf(&code, "    %s_range(&args->s%d, r0 * %s, r1 * %s);\n",
                    names[j], j, mult[j], mult[j]);
    else
      cg_buf_printf(&code, "    %s_range(&args->s%d, r0, r1);\n", names[j], j);
  cg_buf_puts(&code, "  }\n}\n\nstatic void " KERNEL_NAME "(");
  for (int q = 0; q < np; q++) {
    const char *t = group_ctype(a, ps[q].ctype, written[q]);
    cg_buf_printf(&code, "%s%s%s%s", q ? ", " : "", t,
                  cg_ends_with_star(t) ? "" : " ", ps[q].name);
  }
  CgKernel *k0 = &b[0].k;
  const char *inner = cg_kproduct(k0, s0, ax + 1, s0->rank);
  cg_buf_printf(&code,
                ") {\n  " KERNEL_NAME "_args args = {%s};\n"
                "  mc_parallel_for(%s, %s, " KERNEL_NAME "_range, &args);\n"
                "}\n\n",
                cg_buf_str(&init), cg_kdim(k0, s0->dims[ax]),
                strcmp(inner, "1") ? cg_strf(a, "16384 / (%s) + 1", inner)
                                   : "16384");
  /* the group emitted before with this code, or this one, named */
  CgBuilt g = {0}; /* for its call */
  g.ps = ps;
  g.np = np;
  const char *name = cg_kernel_find(e, cg_buf_str(&code));
  if (!name) {
    const Op *last = st[n - 1].ops[st[n - 1].nops - 1];
    name = cg_names_unique(&e->globals, a, group_base(e, st[0].main, last));
    cg_kernel_remember(e, arena_strdup(a, cg_buf_str(&code)), name);
    CgBuf c = {0};
    cg_buf_printf(&c, "The %d kernels", n);
    for (int j = 0; j < n; j++)
      cg_buf_printf(&c, "%s %s",
                    j == 0       ? ""
                    : j == n - 1 ? " and"
                                 : ",",
                    names[j]);
    cg_buf_printf(&c,
                  ", one block of %d rows after the other: each row is read "
                  "from memory once.",
                  rows);
    put_comment(&e->kernels, cg_buf_str(&c));
    cg_buf_free(&c);
    cg_put_named(&e->kernels, cg_buf_str(&code), name);
  }
  cg_kernel_call(fe, &g, name, run);
  cg_buf_free(&code);
  cg_buf_free(&init);
  for (int j = 0; j < n; j++)
    cg_built_free(&b[j]);
  return true;
}
