/* Attention as one kernel: softmax(S) @ V with S = A @ B (Q @ K.T), then
 * optionally an elementwise loop on S (the GEMM's epilogue: scale, mask),
 * computed for a block of ATTN_ROWS rows of S at a time, so the T x T
 * matrix never exists: a block of S lives in the calling thread's part of
 * one buffer of threads x ATTN_ROWS x T floats, is turned into its softmax
 * in place and multiplied by V into its rows of the result.
 *
 *   static void NAME_range(void *ctx, int64_t begin, int64_t end) {
 *     ...
 *     for (int64_t slot = begin; slot < end; slot++) {   (one per thread)
 *       float *restrict sc = s + slot * BLOCK * N;  (BLOCK: ATTN_ROWS or M)
 *       for (int64_t blk = slot; blk < batches * row_blocks; blk += nt) {
 *         S rows r0 .. r0+rows of batch blk / row_blocks into sc (with ep)
 *         for (r = 0; r < rows; r++) mc_softmax_row_f32(sc + r * N, ...);
 *         mc_gemm_f32(rows, DV, N, sc, N, 1, v + ..., y + ... + r0 * DV, ...);
 *       }
 *     }
 *   }
 *   static int NAME(...) {   malloc s; mc_parallel_for(nt, 1, NAME_range);
 *
 * Exactness: an element of a GEMM depends only on its row and column of
 * the operands (mc_gemm_f32's contract), a softmax row only on that row,
 * and the epilogue only on the element, so the result is bit for bit that
 * of the three separate kernels, for any block size and thread count.
 *
 * Masked keys: when the epilogue is where(mask, ..., -inf) (or the mask's
 * negation) with a mask that has the key axis, a block leaves out of all
 * three steps the keys after the last one that any of its rows keeps:
 * nk = 1 + that key's index (1 if none).
 * Their scores are -inf whatever Q and K hold, so the softmax row's max is
 * unchanged and each exp is +0, which leaves its lanes' sums (and so every
 * p) unchanged; in P @ V each would add p * v = 0 * v, exact unless v is
 * inf or nan there (then the three kernels give nan where this one does
 * not) or the sum so far is -0 (then they give +0 for -0). Decoding at
 * position pos reads pos + 1 keys and values instead of the whole cache;
 * a causal prompt's block of rows r0 .. r0 + 63, r0 + 64 keys instead of
 * T; a padded batch element, its own length.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "c_emit.h"

#define ATTN_ROWS "64"

/* The positions of an operand's batch axes (aligned to the right of the
 * result's nb batch axes, whose variables are vars); rank-2 tail skipped. */
static void batch_pos(const Shape *s, int nb, const char *const *vars,
                      const char **pos) {
  int n = s->rank - 2;
  for (int j = 0; j < n; j++)
    pos[j] = cg_is_one(s->dims[j]) ? NULL : vars[j + nb - n];
}

/* The rows of a block (and of a thread's part of the buffer): ATTN_ROWS,
 * or all M when fewer (one row when decoding: 1 x T floats per thread, not
 * 64 x T, allocated on each call). */
static const char *block_rows(CgKernel *k, const char *M) {
  char *end;
  long long m = strtoll(M, &end, 10);
  if (*M && !*end)
    return m < atoll(ATTN_ROWS) ? M : ATTN_ROWS;
  return cg_strf(k->arena, "(%s < %s ? %s : %s)", M, ATTN_ROWS, M, ATTN_ROWS);
}

int cg_attention_key_mask(const Op *mm, const Op *ep, const Shape *ss,
                          bool *true_masks) {
  if (!ep || ep->nregions != 1)
    return -1;
  const Op *y = ep->regions[0]->last;
  if (!y || y->kind != OP_YIELD || y->noperands != 1)
    return -1;
  const Op *sel = y->operands[0]->def;
  if (!sel || sel->kind != OP_SELECT || sel->operands[0]->def)
    return -1;
  int inf_at = 0;
  for (int o = 1; o <= 2; o++) {
    const Op *c = sel->operands[o]->def;
    if (c && c->kind == OP_CONST && c->results[0]->type.dtype == DT_F32 &&
        c->results[0]->type.shape.rank == 0 &&
        ir_const_load(DT_F32, c->attrs.cst.data, 0) == -INFINITY)
      inf_at = o;
  }
  if (!inf_at)
    return -1;
  *true_masks = inf_at == 1;
  int i = sel->operands[0]->def_index; /* the block argument's operand */
  if (i >= ep->noperands || ep->operands[i] == mm->results[0] ||
      (cg_takes_literals(ep) && cg_is_inlinable_const(ep->operands[i])))
    return -1;
  const Shape *ms = &ep->operands[i]->type.shape;
  if (ms->rank == 0 || ms->rank > ss->rank ||
      !dim_eq(ms->dims[ms->rank - 1], ss->dims[ss->rank - 1]))
    return -1;
  return i;
}

/* Inside the loop over blocks: nk = 1 + the last key that a row of the
 * block keeps (mask operand x<mask>, dense, broadcast to the scores' shape
 * ss), at least 1. */
static void emit_kept_keys(CgKernel *k, const Shape *ss, const char **vars,
                           int mask, bool true_masks, const char *N) {
  const Shape *ms = &k->epilogue->operands[mask]->type.shape;
  int lead = ss->rank - ms->rank, row = ms->rank - 2;
  const char *pos[MAX_RANK] = {0};
  for (int a = 0; a < ms->rank - 1; a++)
    if (!cg_is_one(ms->dims[a]))
      pos[a] = a == row ? "(r0 + q)" : vars[a + lead];
  bool by_row = row >= 0 && pos[row];
  cg_line(k, 3, "int64_t nk = 1; /* 1 + the last key a row keeps */");
  int d = 3;
  if (by_row)
    cg_line(k, d++, "for (int64_t q = 0; q < rows; q++) {");
  cg_line(k, d, "const uint8_t *mrow = x%d + %s;", mask,
          cg_strided_index(k, ms, pos));
  cg_line(k, d, "int64_t n = %s;", N);
  cg_line(k, d, "while (n > nk && %smrow[n - 1])", true_masks ? "" : "!");
  cg_line(k, d + 1, "n--;");
  cg_line(k, d, "nk = n;");
  if (by_row)
    cg_line(k, 3, "}");
}

bool cg_kernel_attention(CgKernel *k, Diag *d) {
  const Op *mm = k->op, *pv = k->pv;
  const Shape *ss = &k->softmax->results[0]->type.shape;
  const Shape *ys = &pv->results[0]->type.shape;
  const Shape *vs = &pv->operands[1]->type.shape;
  int nb = ss->rank - 2;
  CgGemm g, h;
  cg_gemm_layout(k, mm, k->view[0], k->view[1], k->transposed[1], &g);
  cg_gemm_layout(k, pv, NULL, k->pv_view, false, &h);
  /* the range function's body, with the symbols it reads kept apart */
  CgSub outer;
  cg_sub_begin(k, &outer);
  Shape batch = *ss;
  batch.rank = nb;
  const char *batches = cg_kproduct(k, &batch, 0, nb);
  const char *block = block_rows(k, g.M);
  cg_line(k, 1, "const int64_t row_blocks = (%s + %s - 1) / %s;", g.M,
          ATTN_ROWS, ATTN_ROWS);
  bool true_masks = false;
  int mask = cg_attention_key_mask(mm, k->epilogue, ss, &true_masks);
  const char *keys = mask >= 0 ? "nk" : g.N; /* the keys computed */
  cg_line(k, 1, "for (int64_t slot = begin; slot < end; slot++) {");
  cg_line(k, 2, "float *restrict sc = s + slot * %s * %s;", block, g.N);
  cg_line(k, 2, "for (int64_t blk = slot; blk < %s * row_blocks; blk += nt) {",
          batches);
  cg_line(k, 3, "const int64_t r0 = blk %% row_blocks * %s;", ATTN_ROWS);
  cg_line(k, 3, "const int64_t rows = %s - r0 < %s ? %s - r0 : %s;", g.M,
          ATTN_ROWS, g.M, ATTN_ROWS);
  const char *vars[MAX_RANK] = {0};
  for (int j = 0; j < nb; j++) {
    if (cg_is_one(ss->dims[j]))
      continue;
    vars[j] = cg_loop_vars[j];
    const char *inner = cg_kproduct(k, &batch, j + 1, nb);
    cg_line(k, 3, "const int64_t %s = blk / row_blocks%s%s %% %s;", vars[j],
            strcmp(inner, "1") ? " / " : "", strcmp(inner, "1") ? inner : "",
            cg_kdim(k, ss->dims[j]));
  }
  const char *apos[MAX_RANK] = {0}, *bpos[MAX_RANK] = {0},
             *vpos[MAX_RANK] = {0}, *ypos[MAX_RANK] = {0};
  batch_pos(&mm->operands[0]->type.shape, nb, vars, apos);
  batch_pos(&mm->operands[1]->type.shape, nb, vars, bpos);
  batch_pos(vs, nb, vars, vpos);
  for (int j = 0; j < nb; j++)
    ypos[j] = vars[j];
  const char *aoff = cg_batch_offset(k, g.sa, g.ar - 2, apos);
  const char *boff = cg_batch_offset(k, g.sb, g.br - 2, bpos);
  const char *voff = cg_batch_offset(k, h.sb, h.br - 2, vpos);
  const char *yoff = cg_strided_index(k, ys, ypos);
  if (mask >= 0)
    emit_kept_keys(k, ss, vars, mask, true_masks, g.N);
  const char *last = "0";
  if (k->epilogue) {
    if (!cg_gemm_epilogue(k, 3, vars, nb, nb, ss->rank - 1, "r0", d)) {
      CgBuf dropped;
      cg_sub_end(k, &outer, &dropped);
      cg_buf_free(&dropped);
      return false;
    }
    last = "&ep";
  }
  cg_line(k, 3,
          "mc_gemm_f32%s(rows, %s, %s, a + %s + r0 * %s, %s, %s, b + %s, "
          "%s, %s, sc, %s, %s);",
          k->epilogue ? "_ep" : "", keys, g.K, aoff, g.rsa, g.rsa, g.csa, boff,
          g.rsb, g.csb, keys, last);
  cg_line(k, 3, "for (int64_t r = 0; r < rows; r++)");
  cg_line(k, 4, "mc_softmax_row_f32(sc + r * %s, sc + r * %s, %s);", keys, keys,
          keys);
  k->softmax_row = true;
  cg_line(k, 3,
          "mc_gemm_f32(rows, %s, %s, sc, %s, 1, v + %s, %s, %s, y + %s + r0 * "
          "%s, %s, 0);",
          h.N, keys, keys, voff, h.rsb, h.csb, yoff, h.N, h.N);
  cg_line(k, 2, "}");
  cg_line(k, 1, "}");
  CgBuf range;
  uint64_t syms = cg_sub_end(k, &outer, &range);
  /* NAME_args: the symbols and pointers the range reads */
  CgBuf *o = &k->defs, init = {0};
  cg_buf_puts(o, "typedef struct {\n");
  for (int s = 0; s < MAX_SYMBOLS; s++)
    if (syms & (UINT64_C(1) << s)) {
      cg_buf_printf(o, "  int64_t %s;\n", k->symnames[s]);
      cg_buf_printf(&init, "%s, ", k->symnames[s]);
    }
  cg_buf_puts(o, "  const float *a;\n  const float *b;\n");
  cg_buf_puts(&init, "a, b, ");
  const Op *ep = k->epilogue;
  for (int i = 0; ep && i < ep->noperands; i++)
    if (ep->operands[i] != mm->results[0] && !k->ep_literal[i]) {
      cg_buf_printf(o, "  const %s *x%d;\n",
                    cg_ctype(ep->operands[i]->type.dtype), i);
      cg_buf_printf(&init, "x%d, ", i);
    }
  cg_buf_printf(o,
                "  const float *v;\n  float *y;\n  float *s;\n"
                "  int64_t nt;\n} %s_args;\n\n",
                k->name);
  cg_buf_puts(&init, "v, y, s, nt");
  cg_buf_printf(o,
                "static void %s_range(void *ctx, int64_t begin, int64_t end) "
                "{\n  const %s_args *args = ctx;\n",
                k->name, k->name);
  for (int s = 0; s < MAX_SYMBOLS; s++)
    if (syms & (UINT64_C(1) << s))
      cg_buf_printf(o, "  const int64_t %s = args->%s;\n", k->symnames[s],
                    k->symnames[s]);
  cg_buf_puts(o, "  const float *restrict a = args->a;\n"
                 "  const float *restrict b = args->b;\n");
  for (int i = 0; ep && i < ep->noperands; i++)
    if (ep->operands[i] != mm->results[0] && !k->ep_literal[i])
      cg_buf_printf(o, "  const %s *restrict x%d = args->x%d;\n",
                    cg_ctype(ep->operands[i]->type.dtype), i, i);
  cg_buf_puts(o, "  const float *restrict v = args->v;\n"
                 "  float *restrict y = args->y;\n"
                 "  float *restrict s = args->s;\n"
                 "  const int64_t nt = args->nt;\n");
  cg_buf_printf(o, "%s}\n\n", cg_buf_str(&range));
  cg_buf_free(&range);
  /* the kernel: the scores' buffer, the threads, the error */
  k->can_fail = true;
  cg_line(k, 1, "const int64_t nt = mc_get_threads();");
  cg_line(k, 1,
          "float *s = malloc(sizeof(float) * (size_t)nt * %s * (size_t)%s);",
          block_rows(k, g.M), cg_kdim(k, ss->dims[ss->rank - 1]));
  cg_line(k, 1, "if (!s)");
  cg_line(k, 2,
          "return mc_fail(err, MC_ERR_NOMEM, \"out of memory for a block of "
          "attention scores at %s\");",
          k->where);
  cg_line(k, 1, "%s_args args = {%s};", k->name, cg_buf_str(&init));
  cg_line(k, 1, "mc_parallel_for(nt, 1, %s_range, &args);", k->name);
  cg_line(k, 1, "free(s);");
  cg_line(k, 1, "return MC_OK;");
  cg_buf_free(&init);
  return true;
}
