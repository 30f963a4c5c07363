/* What mc_gemm.c (the f32 GEMM driver) and mc_gemm_x86.c (its SIMD kernels)
 * share; not part of the API.
 *
 * A kernel variant is a register tile and two GEMV routines. All three obey
 * the numerical contract stated in mc_gemm.c: every element of C is one
 * accumulator, started from C (or -0), that takes the products for
 * k = 0, 1, ..., K-1 in that order, fused (fma) when `fma` is set and
 * rounded separately otherwise. A kernel never reorders, splits or widens
 * that sum, so the driver may cut M, N and K into blocks anywhere.
 */
#ifndef MC_GEMM_INTERNAL_H
#define MC_GEMM_INTERNAL_H

#include "mc_runtime.h"

/* At most this many rows of C go to the GEMV routines. */
#define MC_GEMV_MAX_M 4

/* The operands of one mc_gemm_f32 or mc_gemm_f32_w16 call: B is f32 when
 * fmt is 0, else B16 holds it in format fmt (MC_W16_F16, MC_W16_BF16) and
 * B is NULL. */
typedef struct McGemmArgs {
  int64_t M, N, K;
  const float *A;
  int64_t rsa, csa;
  const float *B;
  int64_t rsb, csb;
  float *C;
  int64_t ldc;
  int accumulate;
  int fmt;
  const uint16_t *B16;
  const McEpilogue *ep; /* NULL: none */
  const float *P;       /* B pre-packed (mc_gemm_pack_b), else NULL */
  int panels16;         /* B16 in MC_GEMM_PANEL16 panels (rsb, csb unused) */
} McGemmArgs;

typedef struct McGemmKernel {
  const char *name; /* "portable", "avx2", "avx512" */
  int fma;          /* 1: acc = fma(a, b, acc); 0: acc = acc + a * b */
  int mr, nr;       /* the register tile: mr rows by nr columns of C */
  /* c[i * ldc + j] for i < mr, j < nr: acc = load_c ? c : -0, then
   * acc += ap[k * mr + i] * bp[k * ldb + j] for k = 0 .. kc-1; c = acc. */
  void (*tile)(int64_t kc, const float *ap, const float *bp, int64_t ldb,
               float *c, int64_t ldc, int load_c);
  /* Optional: tile for a GEMM's last rows (rows < mr): the first h rows of
   * the tile, h >= rows one of the kernel's short heights (c must have h
   * rows: the driver's edge buffer of mr rows); 0, having done nothing,
   * when it has no height below mr that covers rows. short_heights: bit h
   * set for each height h (rows that are one need no edge buffer). */
  int (*tile_short)(int rows, int64_t kc, const float *ap, const float *bp,
                    int64_t ldb, float *c, int64_t ldc, int load_c);
  unsigned short_heights;
  /* Columns [j0, j1) of C for g->M <= MC_GEMV_MAX_M rows, B unpacked:
   * gemv_rows when B's rows are contiguous (csb == 1), gemv_cols when its
   * columns are (rsb == 1). K >= 1. */
  void (*gemv_rows)(const McGemmArgs *g, int64_t j0, int64_t j1);
  void (*gemv_cols)(const McGemmArgs *g, int64_t j0, int64_t j1);
  /* Optional: gemv_rows for a 16-bit B (g->B16, csb == 1) that converts it
   * in registers, with the bits of gemv_rows on B converted to f32. It may
   * stop short of j1 (at whole vectors) and returns where it stopped; the
   * driver does the rest, and all of it when this is NULL or
   * mc_half_f16c() is 0 (the AVX2 version uses F16C), through gemv_rows on
   * blocks of B converted into a buffer. */
  int64_t (*gemv_rows16)(const McGemmArgs *g, int64_t j0, int64_t j1);
  /* Optional faster packing for the common layouts; each returns 0, having
   * done nothing, for a layout it does not handle (NULL: never handles),
   * and the driver's portable loops do it. pack_a: mc rows of A into
   * ceil(mc / mr) panels, ap[(i / mr) * kc * mr + k * mr + i % mr], zero
   * rows past mc. pack_b: nc columns of B into ceil(nc / nr) panels,
   * bp[(j / nr) * kc * nr + k * nr + j % nr], zero columns past nc. */
  int (*pack_a)(int64_t mc, int64_t kc, const float *A, int64_t rsa,
                int64_t csa, float *ap);
  int (*pack_b)(int64_t kc, int64_t nc, const float *B, int64_t rsb,
                int64_t csb, float *bp);
} McGemmKernel;

/* NULL on other architectures or compilers. */
extern const McGemmKernel *const mc_gemm_avx2_kernel;
extern const McGemmKernel *const mc_gemm_avx512_kernel;

/* ---- 16-bit floats (mc_half.c) ------------------------------------------
 * dst[r * ldd + c] = src[r * lds + c] converted from fmt (MC_W16_F16,
 * MC_W16_BF16) to f32, for r < rows, c < cols: mc_f16_to_f32_n and
 * mc_bf16_to_f32_n row by row. */
void mc_w16_to_f32_2d(int fmt, int64_t rows, int64_t cols, const uint16_t *src,
                      int64_t lds, float *dst, int64_t ldd);
/* 1 when the f16 conversions use F16C (the CPU has it and it is not
 * switched off). */
int mc_half_f16c(void);
/* For tests: on = 0 makes the conversions use their portable C even on a
 * CPU with F16C (and mc_half_f16c() return 0, so the GEMM's gemv_rows16
 * is not used either), on = 1 lets them use F16C again. Both give the same
 * bits, so it may be called at any time. */
void mc_half_use_simd(int on);

#endif /* MC_GEMM_INTERNAL_H */
