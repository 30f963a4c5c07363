/* The f32 GEMM: C (+)= A B with any strides, blocked and packed in the
 * Goto/BLIS way around a register tile, a GEMV path for a few rows, threads
 * over column panels (or row tiles), and SIMD kernels picked at run time.
 *
 * NUMERICAL CONTRACT. Let fma be the selected kernel's `fma` flag (0 for
 * "portable", 1 for "avx2" and "avx512"). Every element of C is computed as
 *
 *   acc = accumulate ? C[i][j] : -0.0f;
 *   for k = 0, 1, ..., K-1:
 *     acc = fma ? fmaf(A[i][k], B[k][j], acc)       (one rounding)
 *               : acc + A[i][k] * B[k][j];          (two roundings)
 *   C[i][j] = acc;
 *
 * (and K == 0 with accumulate == 0 writes +0, as torch does). So the bits of
 * an element do not depend on M, N, the strides, its place in a tile, the
 * edge path, GEMV against GEMM, the blocking or the thread count: only on
 * its row of A, its column of B, its old value and the kernel. Starting from
 * -0 gives the bits of starting from the first product (-0 + x == x for
 * every x, -0 and +0 included), so the portable kernel equals the naive
 * loop. K blocking resumes from the float stored in C, which is the float
 * the accumulator held. Packing only copies; zero padding only feeds
 * accumulators that are never stored. tests/test_gemm.c checks every kernel
 * the machine has against a scalar loop written from this definition. The
 * portable kernel's two roundings need -ffp-contract=off (how modelc builds
 * programs, and gcc's default with -std=c11) when FMA is in the target ISA;
 * the SIMD kernels use only explicit fma intrinsics.
 *
 * Structure, for the rows [m0, m1) and columns [n0, n1) a thread owns:
 *
 *   for each GEMM_MC rows of C                         (ic)
 *     for each GEMM_KC values of k, in order           (pc)
 *       pack A[ic.., pc..] into mr-row panels, k-major (ap: L3)
 *       for each GEMM_NC columns                       (jc)
 *         pack B[pc.., jc..] into nr-column panels     (bp: L2)
 *         for each mr rows                             (ir: A panel in L1)
 *           for each nr columns                        (jr: B from L2)
 *             tile: C[mr x nr] = (C or -0) + A panel * B panel
 *
 * With few rows and row-major B, B is read in place (packing would cost as
 * much as using it). Partial tiles go through a full one on the side. The
 * pack buffers are the thread's mc_thread_scratch (small blocks on the
 * stack if that fails). The kernel's packers handle the common layouts
 * with SIMD; gemm_pack does the rest.
 *
 * 16-bit B (mc_gemm_f32_w16): the same blocking; B is converted to f32
 * (exactly) while it is packed, never read in place. The GEMV converts a
 * row-major B in registers as it streams it (the kernel's gemv_rows16, for
 * whole vectors), and the rest (edge columns, column-major B, kernels
 * without gemv_rows16) through blocks of B converted into a buffer on the
 * stack for the f32 GEMV routines. Either way every element sees the
 * operations of mc_gemm_f32 on B converted, so the contract above holds
 * with B[k][j] the converted value.
 *
 * Threads: mc_parallel_for over row tiles or column panels. Every thread
 * packs all of the operand along the axis it does not split, so the split
 * goes along the axis that leaves the cheaper one (a row-major B is only
 * copied; A and a column-major B are transposed), given tiles enough for
 * every thread. With at most MC_GEMV_MAX_M rows and B contiguous along
 * one axis, the kernel's GEMV routines stream B once, in column chunks.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "mc_gemm_internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define GEMM_KC 384
#define GEMM_MC 1536     /* rows of packed A (rounded down to mr) */
#define GEMM_NC 512      /* columns of packed B (a multiple of every nr) */
#define GEMM_DIRECT_M 32 /* at most this many rows: row-major B unpacked */
#define GEMM_MAX_MR 16   /* bounds on every kernel's tile */
#define GEMM_MAX_NR 32
#define GEMM_MIN_WORK (1 << 20) /* multiply-adds worth a thread */
/* the same for the GEMV: it streams B from memory (2^17 multiply-adds read
 * 512 KB of f32 B, tens of microseconds), so a thread pays off sooner; a
 * batch-1 decoding step's 768 x 768 products split too */
#define GEMV_MIN_WORK (1 << 17)

/* ---- the portable kernel ------------------------------------------------
 * 4 x 8 tiles of named scalars, c<row><column>, listed by X-macros:
 * compilers keep scalars in registers and pack them into vectors (SLP), a
 * local array indexed in loops stays in memory. With SSE2 (the x86-64
 * baseline) that is 8 of the 16 vector registers as accumulators. */
#define PORT_MR 4
#define PORT_NR 8
#define PORT_ROW(X, i)                                                         \
  X(i, 0) X(i, 1) X(i, 2) X(i, 3) X(i, 4) X(i, 5) X(i, 6) X(i, 7)
#define PORT_TILE(X) PORT_ROW(X, 0) PORT_ROW(X, 1) PORT_ROW(X, 2) PORT_ROW(X, 3)
#define PORT_DECLARE(i, j) float c##i##j;
#define PORT_LOAD(i, j) c##i##j = c[i * ldc + j];
#define PORT_ZERO(i, j) c##i##j = -0.0f;
#define PORT_UPDATE(i, j) c##i##j += a[i] * b[j];
#define PORT_STORE(i, j) c[i * ldc + j] = c##i##j;

static void port_tile(int64_t kc, const float *restrict ap,
                      const float *restrict bp, int64_t ldb, float *restrict c,
                      int64_t ldc, int load_c) {
  PORT_TILE(PORT_DECLARE)
  if (load_c) {
    PORT_TILE(PORT_LOAD)
  } else {
    PORT_TILE(PORT_ZERO)
  }
  for (int64_t k = 0; k < kc; k++) {
    const float *a = ap + k * PORT_MR, *b = bp + k * ldb;
    PORT_TILE(PORT_UPDATE)
  }
  PORT_TILE(PORT_STORE)
}

/* y[j] = y[j] + a * b[j]: one row of B into one row of C; groups of 8
 * that the compiler turns into vector code (SLP) at -O2. */
static void port_axpy(int64_t n, float a, const float *restrict b,
                      float *restrict y) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int q = 0; q < 8; q++)
      y[j + q] = y[j + q] + a * b[j + q];
  for (; j < n; j++)
    y[j] = y[j] + a * b[j];
}

/* Row-major B: 16 rows of B at a time stream into 256 columns of C (1 KB
 * per row of C, in L1). */
static void port_gemv_rows(const McGemmArgs *g, int64_t j0, int64_t j1) {
  for (int64_t m = 0; m < g->M && !g->accumulate; m++)
    for (int64_t j = j0; j < j1; j++)
      g->C[m * g->ldc + j] = -0.0f;
  for (int64_t kb = 0; kb < g->K; kb += 16)
    for (int64_t j = j0; j < j1; j += 256)
      for (int64_t k = kb; k < g->K && k < kb + 16; k++)
        for (int64_t m = 0; m < g->M; m++)
          port_axpy(j1 - j < 256 ? j1 - j : 256, g->A[m * g->rsa + k * g->csa],
                    g->B + k * g->rsb + j, g->C + m * g->ldc + j);
}

/* Contiguous columns of B: a dot product per element, in k order. */
static void port_gemv_cols(const McGemmArgs *g, int64_t j0, int64_t j1) {
  for (int64_t m = 0; m < g->M; m++)
    for (int64_t j = j0; j < j1; j++) {
      const float *a = g->A + m * g->rsa, *b = g->B + j * g->csb;
      float *c = g->C + m * g->ldc + j;
      float s = g->accumulate ? *c : -0.0f;
      for (int64_t k = 0; k < g->K; k++)
        s = s + a[k * g->csa] * b[k];
      *c = s;
    }
}

static const McGemmKernel gemm_portable = {.name = "portable",
                                           .fma = 0,
                                           .mr = PORT_MR,
                                           .nr = PORT_NR,
                                           .tile = port_tile,
                                           .gemv_rows = port_gemv_rows,
                                           .gemv_cols = port_gemv_cols,
                                           .gemv_rows16 = NULL,
                                           .pack_a = NULL,
                                           .pack_b = NULL};

/* ---- kernel selection ---------------------------------------------------- */
static const McGemmKernel *gemm_available(const char *name) {
  if (strcmp(name, "portable") == 0)
    return &gemm_portable;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (strcmp(name, "avx2") == 0 && mc_gemm_avx2_kernel &&
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return mc_gemm_avx2_kernel;
  if (strcmp(name, "avx512") == 0 && mc_gemm_avx512_kernel &&
      __builtin_cpu_supports("avx512f"))
    return mc_gemm_avx512_kernel;
#endif
  return NULL;
}

/* $MC_GEMM_KERNEL when it names a kernel this machine runs, else the
 * widest one it runs. */
static const McGemmKernel *gemm_default(void) {
  static const char *const best_first[] = {"avx512", "avx2", "portable"};
  const char *forced = getenv("MC_GEMM_KERNEL");
  const McGemmKernel *k = forced ? gemm_available(forced) : NULL;
  for (int i = 0; !k; i++)
    k = gemm_available(best_first[i]);
  return k;
}

static const McGemmKernel *_Atomic gemm_selected;

static const McGemmKernel *gemm_kernel(void) {
  const McGemmKernel *k =
      atomic_load_explicit(&gemm_selected, memory_order_acquire);
  if (!k) {
    k = gemm_default();
    atomic_store_explicit(&gemm_selected, k, memory_order_release);
  }
  return k;
}

int mc_gemm_use_kernel(const char *name) {
  const McGemmKernel *k = name ? gemm_available(name) : gemm_default();
  if (!k)
    return MC_ERR_USAGE;
  atomic_store_explicit(&gemm_selected, k, memory_order_release);
  return MC_OK;
}

const char *mc_gemm_kernel_name(void) {
  return gemm_kernel()->name;
}

/* ---- packing ------------------------------------------------------------- */
/* The portable packing of A and of B, and of any layout the kernel's own
 * packers leave: n lines (rows of A, columns of B) of kc values, line x
 * value k at src[x * sx + k * sk], into ceil(n / w) panels of kc * w floats,
 * dst[(x / w) * kc * w + k * w + x % w], lines past n zero. The inner loop
 * runs along whichever stride is 1. */
static void gemm_pack(int w, int64_t n, int64_t kc, const float *src,
                      int64_t sx, int64_t sk, float *restrict dst) {
  for (int64_t x0 = 0; x0 < n; x0 += w, dst += kc * w) {
    int lines = n - x0 < w ? (int)(n - x0) : w;
    const float *s = src + x0 * sx;
    if (sk == 1) {
      for (int x = 0; x < w; x++)
        for (int64_t k = 0; k < kc; k++)
          dst[k * w + x] = x < lines ? s[x * sx + k] : 0.0f;
    } else {
      for (int64_t k = 0; k < kc; k++)
        for (int x = 0; x < w; x++)
          dst[k * w + x] = x < lines ? s[x * sx + k * sk] : 0.0f;
    }
  }
}

/* Columns jc .. jc + nc - 1, rows pc .. pc + kc - 1 of a 16-bit B into
 * panels as gemm_pack makes them, converted to f32 (exactly). Row-major
 * (16-bit panels are, each nr columns in one of them): converted straight
 * into the panel; otherwise nr columns are converted into wb
 * (kc * nr floats, a column after the other; other strides than 1 are
 * gathered first), which is packed as a column-major B. */
static void gemm_pack_b16(const McGemmKernel *kern, const McGemmArgs *g,
                          int64_t kc, int64_t pc, int64_t nc, int64_t jc,
                          float *bp, float *wb) {
  const int nr = kern->nr, w = MC_GEMM_PANEL16;
  const int64_t rsb = g->panels16 ? w : g->rsb, csb = g->panels16 ? 1 : g->csb;
  uint16_t gather[GEMM_KC];
  for (int64_t j = 0; j < nc; j += nr, bp += kc * nr) {
    int64_t cols = nc - j < nr ? nc - j : nr, c = jc + j;
    /* B(pc, c); in panels, nr divides the width: these columns are in one */
    const uint16_t *B = g->panels16 ? g->B16 + c / w * g->K * w + pc * w + c % w
                                    : g->B16 + pc * rsb + c * csb;
    if (csb == 1) {
      mc_w16_to_f32_2d(g->fmt, kc, cols, B, rsb, bp, nr);
      for (int64_t k = 0; cols < nr && k < kc; k++)
        memset(bp + k * nr + cols, 0, sizeof(float) * (size_t)(nr - cols));
      continue;
    }
    for (int64_t x = 0; x < cols; x++) {
      const uint16_t *b = B + x * csb;
      if (rsb != 1) {
        for (int64_t k = 0; k < kc; k++)
          gather[k] = b[k * rsb];
        b = gather;
      }
      mc_w16_to_f32_2d(g->fmt, 1, kc, b, kc, wb + x * kc, kc);
    }
    if (!kern->pack_b || !kern->pack_b(kc, cols, wb, 1, kc, bp))
      gemm_pack(nr, cols, kc, wb, kc, 1, bp);
  }
}

/* ---- the blocked GEMM ---------------------------------------------------- */
typedef struct GemmJob {
  McGemmArgs g;
  const McGemmKernel *kern;
  int split_rows; /* parallel over row tiles, else over column panels */
} GemmJob;

/* A tile with rows < mr or cols < nr: through a tile on the side, a short
 * one where the kernel has it. */
static void gemm_edge_tile(const McGemmKernel *kern, int64_t kc,
                           const float *ap, const float *b, int64_t ldb,
                           float *c, int64_t ldc, int64_t rows, int64_t cols,
                           int load_c, float *edge) {
  int nr = kern->nr;
  if (cols == nr && rows < 32 && (kern->short_heights >> rows & 1)) {
    kern->tile_short((int)rows, kc, ap, b, ldb, c, ldc, load_c);
    return; /* a short tile of exactly these rows, in place */
  }
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < cols; j++)
      edge[i * nr + j] = load_c ? c[i * ldc + j] : -0.0f;
  if (rows == kern->mr || !kern->tile_short ||
      !kern->tile_short((int)rows, kc, ap, b, ldb, edge, nr, 1))
    kern->tile(kc, ap, b, ldb, edge, nr, 1);
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < cols; j++)
      c[i * ldc + j] = edge[i * nr + j];
}

/* Block sizes and where the packed blocks go; wb: for gemm_pack_b16. */
typedef struct GemmBlocks {
  int64_t mc, kc, nc;
  float *ap, *bp, *edge, *wb;
} GemmBlocks;

/* Rows [m0, m1) and columns [n0, n1) of C, in blocks of bl. */
static void gemm_blocked(const GemmJob *job, const GemmBlocks *bl, int64_t m0,
                         int64_t m1, int64_t n0, int64_t n1) {
  const McGemmArgs *g = &job->g;
  const McGemmKernel *kern = job->kern;
  const int mr = kern->mr, nr = kern->nr;
  int direct_b = !g->fmt && !g->P && g->csb == 1 && m1 - m0 <= GEMM_DIRECT_M;
  for (int64_t ic = m0; ic < m1; ic += bl->mc) {
    int64_t mc = m1 - ic < bl->mc ? m1 - ic : bl->mc;
    for (int64_t pc = 0; pc < g->K; pc += bl->kc) {
      int64_t kc = g->K - pc < bl->kc ? g->K - pc : bl->kc;
      int load_c = g->accumulate || pc > 0;
      const float *a_block = g->A + ic * g->rsa + pc * g->csa;
      if (!kern->pack_a ||
          !kern->pack_a(mc, kc, a_block, g->rsa, g->csa, bl->ap))
        gemm_pack(mr, mc, kc, a_block, g->rsa, g->csa, bl->ap);
      for (int64_t jc = n0; jc < n1; jc += bl->nc) {
        int64_t nc = n1 - jc < bl->nc ? n1 - jc : bl->nc;
        int64_t packed_from = direct_b ? nc / nr * nr : 0;
        if (g->P) {
          /* read in place below */
        } else if (g->fmt) {
          gemm_pack_b16(kern, g, kc, pc, nc, jc, bl->bp, bl->wb);
        } else {
          const float *b_block =
              g->B + pc * g->rsb + (jc + packed_from) * g->csb;
          float *bp = bl->bp + packed_from * kc;
          if (!kern->pack_b ||
              !kern->pack_b(kc, nc - packed_from, b_block, g->rsb, g->csb, bp))
            gemm_pack(nr, nc - packed_from, kc, b_block, g->csb, g->rsb, bp);
        }
        for (int64_t ir = 0; ir < mc; ir += mr) {
          int64_t rows = mc - ir < mr ? mc - ir : mr;
          const float *a = bl->ap + ir * kc;
          float *crow = g->C + (ic + ir) * g->ldc + jc;
          for (int64_t jr = 0; jr < nc; jr += nr) {
            int64_t cols = nc - jr < nr ? nc - jr : nr;
            const float *b = bl->bp + jr * kc;
            int64_t ldb = nr;
            if (g->P) {
              int64_t j = jc + jr;
              b = g->P + j / MC_GEMM_PANEL * g->K * MC_GEMM_PANEL +
                  pc * MC_GEMM_PANEL + j % MC_GEMM_PANEL;
              ldb = MC_GEMM_PANEL;
            } else if (jr < packed_from) {
              b = g->B + pc * g->rsb + jc + jr;
              ldb = g->rsb;
            }
            if (rows == mr && cols == nr)
              kern->tile(kc, a, b, ldb, crow + jr, g->ldc, load_c);
            else
              gemm_edge_tile(kern, kc, a, b, ldb, crow + jr, g->ldc, rows, cols,
                             load_c, bl->edge);
          }
          if (g->ep && pc + kc == g->K) /* these rows are final: in cache */
            g->ep->fn(g->ep->ctx, g->C, g->ldc, ic + ir, ic + ir + rows, jc,
                      jc + nc);
        }
      }
    }
  }
}

/* Large blocks in the thread's scratch; without memory, single tiles and
 * short k blocks on the stack (the same bits, more slowly). */
static void gemm_run_blocks(const GemmJob *job, int64_t m0, int64_t m1,
                            int64_t n0, int64_t n1) {
  const int mr = job->kern->mr, nr = job->kern->nr;
  int64_t mc = GEMM_MC / mr * mr; /* whole tiles but at the end of M */
  mc = m1 - m0 < mc ? m1 - m0 : mc;
  /* K in equal blocks of at most GEMM_KC: no short last block */
  int64_t kblocks = (job->g.K + GEMM_KC - 1) / GEMM_KC;
  int64_t kc = (job->g.K + kblocks - 1) / kblocks;
  int64_t nc = n1 - n0 < GEMM_NC ? n1 - n0 : GEMM_NC;
  /* multiples of 16 floats keep bp and edge 64-byte aligned */
  int64_t a_size = ((mc + mr - 1) / mr * mr * kc + 15) / 16 * 16;
  int64_t b_size = ((nc + nr - 1) / nr * nr * kc + 15) / 16 * 16;
  int64_t e_size = (mr * nr + 15) / 16 * 16;
  int64_t w_size = job->g.fmt ? kc * nr : 0;
  float *p = mc_thread_scratch(sizeof(float) *
                               (size_t)(a_size + b_size + e_size + w_size));
  _Alignas(64) float ap[GEMM_MAX_MR * 64], bp[64 * GEMM_MAX_NR],
      edge[GEMM_MAX_MR * GEMM_MAX_NR], wb[64 * GEMM_MAX_NR];
  GemmBlocks bl = {mr, 64, nr, ap, bp, edge, wb};
  if (p) {
    float *b = p + a_size, *e = b + b_size;
    bl = (GemmBlocks){mc, kc, nc, p, b, e, e + e_size};
  }
  gemm_blocked(job, &bl, m0, m1, n0, n1);
}

static void gemm_run_chunk(void *ctx, int64_t begin, int64_t end) {
  const GemmJob *job = ctx;
  const McGemmArgs *g = &job->g;
  int64_t m0 = 0, m1 = g->M, n0 = 0, n1 = g->N;
  if (job->split_rows) {
    m0 = begin * job->kern->mr;
    m1 = end * job->kern->mr < g->M ? end * job->kern->mr : g->M;
  } else {
    n0 = begin * job->kern->nr;
    n1 = end * job->kern->nr < g->N ? end * job->kern->nr : g->N;
  }
  gemm_run_blocks(job, m0, m1, n0, n1);
}

/* Columns [j0, j1) of the GEMV with a 16-bit B through the kernel's f32
 * GEMV routines: blocks of B (rows: 16 rows of 512 columns; columns: 32
 * columns of 256 values) converted into a buffer, each a GEMV of its own
 * that resumes from C after the first block of k. */
static void gemv16_buffered(const McGemmArgs *g, const McGemmKernel *kern,
                            int64_t j0, int64_t j1) {
  enum { BUF = 16 * 512 };
  _Alignas(64) float buf[BUF];
  const int rows = g->csb == 1;
  const int64_t jb = rows ? 512 : 32, kb = BUF / jb;
  for (int64_t j = j0; j < j1; j += jb)
    for (int64_t k = 0; k < g->K; k += kb) {
      int64_t nj = j1 - j < jb ? j1 - j : jb,
              nk = g->K - k < kb ? g->K - k : kb;
      McGemmArgs sub = *g;
      sub.N = nj;
      sub.K = nk;
      sub.A = g->A + k * g->csa;
      sub.B = buf;
      sub.C = g->C + j;
      sub.accumulate = g->accumulate || k > 0;
      sub.fmt = 0;
      sub.B16 = NULL;
      if (rows) {
        mc_w16_to_f32_2d(g->fmt, nk, nj, g->B16 + k * g->rsb + j, g->rsb, buf,
                         nj);
        sub.rsb = nj;
        kern->gemv_rows(&sub, 0, nj);
      } else {
        mc_w16_to_f32_2d(g->fmt, nj, nk, g->B16 + j * g->csb + k, g->csb, buf,
                         nk);
        sub.rsb = 1;
        sub.csb = nk;
        kern->gemv_cols(&sub, 0, nj);
      }
    }
}

/* Columns [j0, j1) of the GEMV with a 16-bit row-major B: converted in
 * registers where the kernel can, through a buffer elsewhere. */
static void gemv16_rows(const McGemmArgs *g, const McGemmKernel *kern,
                        int64_t j0, int64_t j1) {
  if (kern->gemv_rows16 && mc_half_f16c())
    j0 = kern->gemv_rows16(g, j0, j1);
  if (j0 < j1)
    gemv16_buffered(g, kern, j0, j1);
}

/* Columns [j0, j1) of the GEMV with a pre-packed B (f32 or 16-bit panels):
 * each panel is a row-major B of its own, its rows a panel width apart. */
static void gemv_packed(const McGemmArgs *g, const McGemmKernel *kern,
                        int64_t j0, int64_t j1) {
  const int64_t w = g->panels16 ? MC_GEMM_PANEL16 : MC_GEMM_PANEL;
  for (int64_t j = j0; j < j1;) {
    int64_t s = j / w, base = s * w;
    int64_t end = base + w < j1 ? base + w : j1;
    McGemmArgs sub = *g;
    sub.N = end - base;
    sub.rsb = w;
    sub.csb = 1;
    sub.C = g->C + base;
    sub.P = NULL;
    sub.panels16 = 0;
    sub.ep = NULL;
    if (g->panels16) {
      sub.B16 = g->B16 + s * g->K * w;
      gemv16_rows(&sub, kern, j - base, end - base);
    } else {
      sub.B = g->P + s * g->K * w;
      kern->gemv_rows(&sub, j - base, end - base);
    }
    j = end;
  }
}

static void gemm_run_gemv(void *ctx, int64_t begin, int64_t end) {
  const GemmJob *job = ctx;
  const McGemmArgs *g = &job->g;
  const McGemmKernel *kern = job->kern;
  if (g->P || g->panels16)
    gemv_packed(g, kern, begin, end);
  else if (g->fmt && g->csb == 1)
    gemv16_rows(g, kern, begin, end);
  else if (g->fmt)
    gemv16_buffered(g, kern, begin, end);
  else if (g->csb == 1)
    kern->gemv_rows(g, begin, end);
  else
    kern->gemv_cols(g, begin, end);
  if (g->ep)
    g->ep->fn(g->ep->ctx, g->C, g->ldc, 0, g->M, begin, end);
}

/* All the f32 GEMMs: B is f32 if fmt is 0, else B16 holds it; P, when
 * not NULL, is B pre-packed (B and B16 NULL, rsb and csb unused). */
static void gemm_run(int64_t M, int64_t N, int64_t K, const float *A,
                     int64_t rsa, int64_t csa, const float *B,
                     const uint16_t *B16, int fmt, int64_t rsb, int64_t csb,
                     float *C, int64_t ldc, int accumulate,
                     const McEpilogue *ep, const float *P, int panels16) {
  if (M <= 0 || N <= 0)
    return;
  if (K <= 0) {
    if (!accumulate)
      for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++)
          C[i * ldc + j] = 0.0f;
    if (ep)
      ep->fn(ep->ctx, C, ldc, 0, M, 0, N);
    return;
  }
  const McGemmKernel *kern = gemm_kernel();
  GemmJob job = {{M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, accumulate, fmt,
                  B16, ep, P, panels16},
                 kern,
                 0};
  /* units of parallel work, the multiply-adds in one, grains aligned to
   * (a 16-bit GEMV's: the 128 columns its kernel takes at once, a panel) */
  int64_t units = N, work = M * K, align = fmt || panels16 ? 128 : 64,
          min_work = GEMV_MIN_WORK;
  McParallelFn run = gemm_run_gemv;
  if (P || panels16) { /* packed B: rows of a panel, read in place */
    rsb = P ? MC_GEMM_PANEL : MC_GEMM_PANEL16;
    csb = 1;
  }
  if (M > MC_GEMV_MAX_M || (csb != 1 && rsb != 1)) {
    int64_t row_tiles = (M + kern->mr - 1) / kern->mr;
    int64_t col_panels = (N + kern->nr - 1) / kern->nr;
    /* Each thread packs the whole of the operand along the axis it does
     * not split: split the axis whose other operand packs cheaper
     * (row-major B is copied, A and column-major B are transposed), as
     * long as there are tiles enough for every thread. */
    int64_t few = 2 * mc_get_threads();
    /* a packed B costs nothing to share: split rows when they suffice */
    job.split_rows = col_panels < few  ? row_tiles > col_panels
                     : row_tiles < few ? 0
                     : P               ? 1
                                       : N * (csb == 1 ? 1 : 2) < M * 2;
    units = job.split_rows ? row_tiles : col_panels;
    work = job.split_rows ? kern->mr * N * K : kern->nr * M * K;
    align = 1;
    min_work = GEMM_MIN_WORK;
    run = gemm_run_chunk;
  }
  /* enough grains that a chunk is worth waking a thread for; a GEMV's
   * columns in pieces of `align` that a thread done early takes from the
   * others (a thread of a busy machine's VM ran the same columns 15% slower
   * than the other, which then waited) */
  int64_t grain = align * (min_work / (work * align) + 1);
  if (run == gemm_run_gemv)
    mc_parallel_balanced(units, grain, align, run, &job);
  else
    mc_parallel_for(units, grain, run, &job);
}

void mc_gemm_f32(int64_t M, int64_t N, int64_t K, const float *A, int64_t rsa,
                 int64_t csa, const float *B, int64_t rsb, int64_t csb,
                 float *C, int64_t ldc, int accumulate) {
  gemm_run(M, N, K, A, rsa, csa, B, NULL, 0, rsb, csb, C, ldc, accumulate, NULL,
           NULL, 0);
}

void mc_gemm_f32_ep(int64_t M, int64_t N, int64_t K, const float *A,
                    int64_t rsa, int64_t csa, const float *B, int64_t rsb,
                    int64_t csb, float *C, int64_t ldc, const McEpilogue *ep) {
  gemm_run(M, N, K, A, rsa, csa, B, NULL, 0, rsb, csb, C, ldc, 0, ep, NULL, 0);
}

void mc_gemm_f32_w16(int64_t M, int64_t N, int64_t K, const float *A,
                     int64_t rsa, int64_t csa, const uint16_t *B, int64_t rsb,
                     int64_t csb, int fmt, float *C, int64_t ldc,
                     int accumulate) {
  if (fmt == MC_W16_F16 || fmt == MC_W16_BF16)
    gemm_run(M, N, K, A, rsa, csa, NULL, B, fmt, rsb, csb, C, ldc, accumulate,
             NULL, NULL, 0);
}

void mc_gemm_f32_w16_ep(int64_t M, int64_t N, int64_t K, const float *A,
                        int64_t rsa, int64_t csa, const uint16_t *B,
                        int64_t rsb, int64_t csb, int fmt, float *C,
                        int64_t ldc, const McEpilogue *ep) {
  if (fmt == MC_W16_F16 || fmt == MC_W16_BF16)
    gemm_run(M, N, K, A, rsa, csa, NULL, B, fmt, rsb, csb, C, ldc, 0, ep, NULL,
             0);
}

int64_t mc_gemm_packed_floats(int64_t K, int64_t N) {
  return (N + MC_GEMM_PANEL - 1) / MC_GEMM_PANEL * MC_GEMM_PANEL * K;
}

void mc_gemm_pack_b(int64_t K, int64_t N, const float *B, int64_t rsb,
                    int64_t csb, float *P) {
  gemm_pack(MC_GEMM_PANEL, N, K, B, csb, rsb, P);
}

int64_t mc_gemm_weight_floats(int64_t rows, int64_t cols, int transposed) {
  return transposed ? mc_gemm_packed_floats(cols, rows)
                    : mc_gemm_packed_floats(rows, cols);
}

void mc_gemm_pack_weight(int64_t rows, int64_t cols, int transposed,
                         const float *W, float *P) {
  if (transposed)
    mc_gemm_pack_b(cols, rows, W, 1, cols, P);
  else
    mc_gemm_pack_b(rows, cols, W, cols, 1, P);
}

void mc_gemm_f32_packed(int64_t M, int64_t N, int64_t K, const float *A,
                        int64_t rsa, int64_t csa, const float *P, float *C,
                        int64_t ldc, int accumulate) {
  gemm_run(M, N, K, A, rsa, csa, NULL, NULL, 0, 0, 0, C, ldc, accumulate, NULL,
           P, 0);
}

void mc_gemm_f32_packed_ep(int64_t M, int64_t N, int64_t K, const float *A,
                           int64_t rsa, int64_t csa, const float *P, float *C,
                           int64_t ldc, const McEpilogue *ep) {
  gemm_run(M, N, K, A, rsa, csa, NULL, NULL, 0, 0, 0, C, ldc, 0, ep, P, 0);
}

int64_t mc_gemm_weight16_elems(int64_t rows, int64_t cols, int transposed) {
  int64_t K = transposed ? cols : rows, N = transposed ? rows : cols;
  const int64_t w = MC_GEMM_PANEL16;
  return (N + w - 1) / w * w * K;
}

void mc_gemm_pack_weight16(int64_t rows, int64_t cols, int transposed,
                           const float *W, int fmt, uint16_t *P) {
  int64_t K = transposed ? cols : rows, N = transposed ? rows : cols;
  const int64_t w = MC_GEMM_PANEL16;
  float row[MC_GEMM_PANEL16];
  for (int64_t j = 0; j < N; j += w)
    for (int64_t k = 0; k < K; k++, P += w) {
      for (int64_t x = 0; x < w; x++)
        row[x] = j + x >= N   ? 0.0f
                 : transposed ? W[(j + x) * cols + k]
                              : W[k * cols + j + x];
      if (fmt == MC_W16_F16)
        mc_f32_to_f16_n(row, P, w);
      else
        mc_f32_to_bf16_n(row, P, w);
    }
}

void mc_gemm_f32_w16_packed(int64_t M, int64_t N, int64_t K, const float *A,
                            int64_t rsa, int64_t csa, const uint16_t *P,
                            int fmt, float *C, int64_t ldc, int accumulate) {
  if (fmt == MC_W16_F16 || fmt == MC_W16_BF16)
    gemm_run(M, N, K, A, rsa, csa, NULL, P, fmt, 0, 0, C, ldc, accumulate, NULL,
             NULL, 1);
}

void mc_gemm_f32_w16_packed_ep(int64_t M, int64_t N, int64_t K, const float *A,
                               int64_t rsa, int64_t csa, const uint16_t *P,
                               int fmt, float *C, int64_t ldc,
                               const McEpilogue *ep) {
  if (fmt == MC_W16_F16 || fmt == MC_W16_BF16)
    gemm_run(M, N, K, A, rsa, csa, NULL, P, fmt, 0, 0, C, ldc, 0, ep, NULL, 1);
}
