/* The modelc runtime: what every generated program links, and nothing more
 * than libc + libm + POSIX (mmap, threads: link with -pthread).
 *
 *   mc_runtime.c      errors, dtypes, tensors, half floats, conversions
 *   mc_npy.c          .npy read/write
 *   mc_safetensors.c  safetensors: mmap, a strict JSON reader, validation
 *   mc_weights.c      model weights resolved against specs, as f32
 *   mc_gemm.c         the f32 GEMM (blocking, packing, GEMV, threads)
 *   mc_gemm_x86.c     its AVX2 and AVX-512 kernels
 *   mc_half.c         f16/bf16 <-> f32 arrays (F16C when the CPU has it)
 *   mc_kernels.c      the f64 GEMM and softmax kernels
 *   mc_threads.c      the thread pool and per-thread scratch memory
 *   mc_main.c         the command-line driver of an emitted executable
 * A generated program compiles all of the .c files but mc_main.c is needed
 * only when it is an executable.
 *
 * Invariants:
 *  - every function that can fail returns MC_OK or an MC_ERR_* code and fills
 *    the McError it is given (which may be NULL) with a message; nothing
 *    aborts, exits or prints on bad input;
 *  - files are read as untrusted: every size, offset and count is checked
 *    before use, and all arithmetic on them is overflow-checked;
 *  - multi-byte data on disk is little-endian; the host may be either;
 *  - kernels are deterministic (fixed summation order, whatever the thread
 *    count) and allocate only their cached per-thread scratch.
 */
#ifndef MC_RUNTIME_H
#define MC_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define MC_PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define MC_PRINTF_LIKE(f, a)
#endif

/* ---- dtypes and tensors ------------------------------------------------ */
/* Same order as the IR's DType. */
typedef enum McDType {
  MC_F32,
  MC_F64,
  MC_I32,
  MC_I64,
  MC_BOOL, /* uint8_t holding 0 or 1 */
  MC_F16,  /* uint16_t bits, IEEE binary16 */
  MC_BF16, /* uint16_t bits, the top half of a binary32 */
  MC_DTYPE_COUNT
} McDType;

#define MC_MAX_RANK 8

typedef struct McTensor {
  McDType dtype;
  int rank;
  int64_t shape[MC_MAX_RANK];
  void *data; /* row-major (C order) */
} McTensor;

enum {
  MC_OK = 0,
  MC_ERR_IO,
  MC_ERR_FORMAT,
  MC_ERR_NAME,
  MC_ERR_DTYPE,
  MC_ERR_SHAPE,
  MC_ERR_RANGE,
  MC_ERR_NOMEM,
  MC_ERR_USAGE
};

typedef struct McError {
  int code;
  char msg[512];
} McError;

/* Fills e (which may be NULL) with code and the formatted message; returns
 * code, so a failure reads `return mc_fail(e, MC_ERR_IO, "...", ...);`. */
int mc_fail(McError *e, int code, const char *fmt, ...) MC_PRINTF_LIKE(3, 4);
/* The status of n tasks that ran side by side, task i with its own status
 * rc[i] and error errs[i] (read only where rc[i] is not MC_OK): the first
 * failed task's status, its error copied into e (which may be NULL); MC_OK
 * when none failed. */
int mc_tasks_status(const int *rc, const McError *errs, int n, McError *e);

const char *mc_dtype_name(McDType t); /* "f32", ...; "?" when out of range */
size_t mc_dtype_size(McDType t);      /* bytes per element; 0 when invalid */

/* Product of the dims; -1 when rank or a dim is invalid or it overflows. */
int64_t mc_tensor_numel(const McTensor *t);
/* numel * dtype size in *nbytes, or MC_ERR_SHAPE / MC_ERR_DTYPE. */
int mc_tensor_nbytes(const McTensor *t, size_t *nbytes, McError *e);
/* Sets dtype, rank and shape and mallocs zeroed data (never NULL on success,
 * even for zero elements). shape may be NULL when rank is 0. */
/* n zeroed bytes for free(): from 2 MB on in 2 MB-aligned memory the
 * kernel may back with huge pages (a 64 MB output takes 32 page faults
 * instead of 16384); NULL when out of memory. */
void *mc_alloc_zeroed(size_t n);
int mc_tensor_alloc(McTensor *t, McDType dtype, int rank, const int64_t *shape,
                    McError *e);
void mc_tensor_free(McTensor *t); /* frees data, sets it to NULL */
/* Formats "[2, 5]" into buf (always NUL-terminated); returns buf. */
char *mc_shape_str(int rank, const int64_t *shape, char *buf, size_t size);

/* Converts in to dtype `to` into out (fresh malloc'd data; out's old data is
 * not freed). Floats convert among f16/bf16/f32/f64 (narrowing is
 * range-checked: a finite value beyond the target's range is an error; inf
 * and nan pass), integers among i32/i64/bool (range-checked; bool takes only
 * 0 and 1). Float <-> integer is refused (MC_ERR_DTYPE). The message names
 * the value and its flat index. */
int mc_tensor_convert(const McTensor *in, McDType to, McTensor *out,
                      McError *e);

/* Scalar conversions (round to nearest even). */
float mc_f16_to_f32(uint16_t h);
float mc_bf16_to_f32(uint16_t h);
uint16_t mc_f32_to_f16(float f);
uint16_t mc_f32_to_bf16(float f);

/* ---- 16-bit floats in bulk (mc_half.c) ------------------------------------
 * y[i] = x[i] converted, for i < n (the arrays must not overlap).
 *
 * f32 -> f16/bf16: round to nearest even; finite values beyond the largest
 * finite result round to inf (f16: |x| >= 65520; bf16: above the FLT_MAX
 * midpoint); subnormal results are produced, f32 subnormals are converted
 * (to +-0 for f16), NaN gives a quiet NaN with the sign and the top payload
 * bits of the input (f16: sign | 0x7e00 | payload >> 13; bf16: the top 16
 * bits with bit 6 set). f16 -> f32 and bf16 -> f32 are exact, except that a
 * signalling f16 NaN becomes quiet (bit 22 set, as vcvtph2ps does); a bf16
 * NaN is shifted, not quieted (as zero-extending and shifting does).
 *
 * The f16 conversions are the bits of the x86 F16C instructions
 * (vcvtps2ph with round-to-nearest, vcvtph2ps), which they use when the CPU
 * has them, and of portable C otherwise (equal on every f16 and every f32
 * input: tests/test_gemm16.c checks every 13th f32). 16 -> 32 -> 16 gives
 * back every pattern but signalling NaNs, which come back quiet (f16 bit
 * 9, bf16 bit 6 set). f32 -> 16-bit equals the scalar mc_f32_to_f16 and
 * mc_f32_to_bf16 above; the scalar mc_f16_to_f32 does not quiet signalling
 * NaNs. */
void mc_f32_to_f16_n(const float *x, uint16_t *y, int64_t n);
void mc_f32_to_bf16_n(const float *x, uint16_t *y, int64_t n);
void mc_f16_to_f32_n(const uint16_t *x, float *y, int64_t n);
void mc_bf16_to_f32_n(const uint16_t *x, float *y, int64_t n);

/* One value, as the functions above convert it, inline (for generated code:
 * straight-line, so that loops over them vectorize). */
static inline float mc_f16_to_f32_1(uint16_t h) {
  union {
    uint32_t u;
    float f;
  } r;
  uint32_t em = h & 0x7fffu;
  r.f = (float)em * 0x1p-24f; /* zero or subnormal: exact */
  uint32_t sub = r.u;
  uint32_t inf_nan = em << 13 | 0x7f800000u | (em > 0x7c00u) << 22;
  uint32_t normal = (em << 13) + (112u << 23); /* exponent bias 15 -> 127 */
  /* masks, not ?: (a branch would take the multiplication with it) */
  uint32_t is_sub = 0u - (uint32_t)(em < 0x400u);
  uint32_t is_big = 0u - (uint32_t)(em >= 0x7c00u);
  r.u = (sub & is_sub) | (inf_nan & is_big) | (normal & ~(is_sub | is_big));
  r.u |= (uint32_t)(h & 0x8000u) << 16;
  return r.f;
}

static inline float mc_bf16_to_f32_1(uint16_t h) {
  union {
    uint32_t u;
    float f;
  } r;
  r.u = (uint32_t)h << 16;
  return r.f;
}

/* ---- .npy -----------------------------------------------------------------
 */
/* Reads .npy format 1.0/2.0/3.0 with a little-endian dtype among <f2 <f4 <f8
 * <i4 <i8 |b1, C order. Rejects Fortran order, big-endian data, bad magic or
 * header, rank > MC_MAX_RANK, shape overflow, truncated or trailing data and
 * bool bytes other than 0/1. */
int mc_npy_read(const char *path, McTensor *out, McError *e);
/* Writes atomically: to "path.tmp.<pid>", then rename. bf16 is refused. */
int mc_npy_write(const char *path, const McTensor *t, McError *e);
/* Writes path in place (no temp file, no rename); the building block of
 * mc_npy_write and of the driver's all-or-nothing output. */
int mc_npy_write_direct(const char *path, const McTensor *t, McError *e);

/* Edit distance for "did you mean" hints (the compiler's and the weights
 * loader's): insertions, deletions, substitutions and swaps of two
 * neighbours ("bais", "sfotmax") count one each; SIZE_MAX past 128 bytes. */
size_t mc_edit_distance(const char *a, const char *b);

/* ---- safetensors -------------------------------------------------------- */
typedef struct McSafetensors McSafetensors;

typedef struct McStTensor {
  const char *name;
  McDType dtype;
  int rank;
  int64_t shape[MC_MAX_RANK];
  const void *data; /* into the mapping: little-endian, maybe unaligned */
  size_t nbytes;
} McStTensor;

/* Maps the file and validates the whole header (see mc_safetensors.c). */
int mc_st_open(const char *path, McSafetensors **out, McError *e);
void mc_st_close(McSafetensors *st); /* NULL is fine */
int mc_st_count(const McSafetensors *st);
/* The "format" string of the header's __metadata__ ("pt" from torch), or
 * NULL. */
const char *mc_st_format(const McSafetensors *st);
const McStTensor *mc_st_get(const McSafetensors *st, int i); /* NULL if OOB */
/* The tensor named exactly `name`, else the unique one whose name ends with
 * "." + name ("transformer.h.0.ln_1.weight" serves "h.0.ln_1.weight").
 * NULL if none; NULL with *ambiguous = 1 (if given) when several match. */
const McStTensor *mc_st_find(const McSafetensors *st, const char *name,
                             int *ambiguous);

/* Writes tensors[i] as names[i] (unique, non-empty) to path as a
 * safetensors file, in order, the data 64-byte aligned, with the metadata
 * "format": format (NULL: torch's "pt"); atomically (path.tmp.<pid>, then
 * rename): on error nothing is left and path keeps what it held. */
int mc_st_write(const char *path, const char *format, const char *const *names,
                const McTensor *tensors, int n, McError *e);

/* ---- model weights ------------------------------------------------------ */
/* A weight the model expects (f32 in the model), and how the model keeps
 * it: store MC_F32 (0, the default), or MC_F16 / MC_BF16 (rounded to
 * nearest even once at load, for a matrix the model only multiplies by or
 * gathers rows from); transposed: a matrix kept as its transpose (for one
 * the model only multiplies by as a transposed right operand, so decoding
 * streams its rows); packed: a matrix the model only multiplies by as a
 * right operand, kept as mc_gemm_pack_b's panels of B (f32) or
 * mc_gemm_pack_weight16's (16-bit), where B is the matrix or, with
 * transposed, its transpose (mc_gemm_f32_packed and mc_gemm_f32_w16_packed
 * then never pack it again). */
typedef struct McWeightSpec {
  const char *name;
  int rank;
  int64_t shape[MC_MAX_RANK];
  McDType store;
  int transposed;
  int packed;
} McWeightSpec;

typedef struct McWeights McWeights;

/* Opens path, resolves every spec with mc_st_find, checks dtypes (F32, F16,
 * BF16, F64) and shapes, and brings each tensor into the spec's store and
 * layout once here. Data already in that form (F32, or the F16/BF16 of the
 * store, not transposed, aligned, little-endian host) is used in place from
 * the mapping; otherwise it is converted into a buffer of its own and the
 * mapping's pages of it are given back. Extra tensors are ignored. */
int mc_weights_load(const char *path, const McWeightSpec *specs, int n,
                    McWeights **out, McError *e);
/* Weight i's data as its spec keeps it; NULL if i is out of range. */
const void *mc_weights_data(const McWeights *w, int i);
/* The same for an f32 weight (store MC_F32). */
const float *mc_weights_get(const McWeights *w, int i);
void mc_weights_free(McWeights *w); /* NULL is fine */
/* n bytes for a weight of the program's own: its whole 2 MB blocks in 2 MB
 * pages where the system gives them (fewer TLB misses when decoding streams
 * the weights), the tail in small pages; free() it. */
void *mc_weights_alloc(size_t n);
/* Gives a file mapping's whole pages inside [p, p + n) back to the system. */
void mc_weights_release(const void *p, size_t n);

/* ---- kernels ------------------------------------------------------------ */
/* C[m*ldc + n] (+)= sum_k A[m*rsa + k*csa] * B[k*rsb + n*csb] for m < M,
 * n < N. accumulate = 0 overwrites C. Runs on mc_get_threads() threads.
 *
 * The f32 contract (mc_gemm.c): each element is acc = accumulate ? C : -0,
 * then for k = 0..K-1 in order acc = fmaf(a_k, b_k, acc) with the "avx2"
 * and "avx512" kernels, acc = acc + a_k * b_k (two roundings) with
 * "portable"; K == 0 writes +0. So its bits depend only on its row of A,
 * its column of B, its old value and the kernel: not on M, N, strides,
 * tiles, edges, GEMV or threads. The f64 GEMM is the portable loop. */
void mc_gemm_f32(int64_t M, int64_t N, int64_t K, const float *A, int64_t rsa,
                 int64_t csa, const float *B, int64_t rsb, int64_t csb,
                 float *C, int64_t ldc, int accumulate);
/* The 16-bit formats of mc_gemm_f32_w16's B. */
typedef enum McW16Format {
  MC_W16_F16 = 1, /* IEEE binary16 */
  MC_W16_BF16 = 2 /* bfloat16: the top half of a binary32 */
} McW16Format;
/* mc_gemm_f32 with B given as 16-bit floats (fmt: MC_W16_F16 or
 * MC_W16_BF16; any other value writes nothing), for weights stored in half
 * precision. Its bits are those of mc_gemm_f32 with the same kernel and B
 * converted to f32 by mc_f16_to_f32_n / mc_bf16_to_f32_n (exact), for every
 * shape, stride and thread count. With M <= 4 and B row-major (csb == 1),
 * the decoding case, B is converted in registers as it streams by (AVX2
 * with F16C, AVX-512); else blocks of it are converted to f32 on the way
 * (into a buffer for the GEMV, while packing for the GEMM). */
void mc_gemm_f32_w16(int64_t M, int64_t N, int64_t K, const float *A,
                     int64_t rsa, int64_t csa, const uint16_t *B, int64_t rsb,
                     int64_t csb, int fmt, float *C, int64_t ldc,
                     int accumulate);
/* A GEMM's epilogue: fn(ctx, C, ldc, i0, i1, j0, j1) is called once the
 * elements C[i * ldc + j], i0 <= i < i1, j0 <= j < j1, hold their final
 * sums, on the thread that computed them while they are still in its
 * cache; it may rewrite them in place (a bias, an activation, a residual:
 * one pass less over memory). Each element is in exactly one call; calls
 * run on any thread, in any order. */
typedef struct McEpilogue {
  void (*fn)(void *ctx, float *C, int64_t ldc, int64_t i0, int64_t i1,
             int64_t j0, int64_t j1);
  void *ctx;
} McEpilogue;
/* mc_gemm_f32 / mc_gemm_f32_w16 (overwriting C) followed by ep on every
 * element: the bits of the GEMM and then ep's function. */
void mc_gemm_f32_ep(int64_t M, int64_t N, int64_t K, const float *A,
                    int64_t rsa, int64_t csa, const float *B, int64_t rsb,
                    int64_t csb, float *C, int64_t ldc, const McEpilogue *ep);
void mc_gemm_f32_w16_ep(int64_t M, int64_t N, int64_t K, const float *A,
                        int64_t rsa, int64_t csa, const uint16_t *B,
                        int64_t rsb, int64_t csb, int fmt, float *C,
                        int64_t ldc, const McEpilogue *ep);
/* Pre-packed B, for weights: the K x N matrix B[k * rsb + n * csb] in
 * panels of MC_GEMM_PANEL columns, P[(n / MC_GEMM_PANEL) * K * MC_GEMM_PANEL
 * + k * MC_GEMM_PANEL + n % MC_GEMM_PANEL], zero past N. Every kernel reads
 * this layout in place (its tile width divides the panel's), so a matrix
 * packed once at load is never packed again, whatever the kernel, M or
 * thread count. mc_gemm_packed_floats: the floats P holds. */
#define MC_GEMM_PANEL 32
int64_t mc_gemm_packed_floats(int64_t K, int64_t N);
void mc_gemm_pack_b(int64_t K, int64_t N, const float *B, int64_t rsb,
                    int64_t csb, float *P);
/* A row-major weight W [rows, cols] packed as the B of x @ W (K = rows,
 * N = cols) or, transposed, of x @ W.T (K = cols, N = rows), as the
 * loader and a prepare function keep it: mc_gemm_weight_floats floats. */
int64_t mc_gemm_weight_floats(int64_t rows, int64_t cols, int transposed);
void mc_gemm_pack_weight(int64_t rows, int64_t cols, int transposed,
                         const float *W, float *P);
/* mc_gemm_f32 / mc_gemm_f32_ep with B packed by mc_gemm_pack_b: the same
 * bits as with the unpacked B. */
void mc_gemm_f32_packed(int64_t M, int64_t N, int64_t K, const float *A,
                        int64_t rsa, int64_t csa, const float *P, float *C,
                        int64_t ldc, int accumulate);
void mc_gemm_f32_packed_ep(int64_t M, int64_t N, int64_t K, const float *A,
                           int64_t rsa, int64_t csa, const float *P, float *C,
                           int64_t ldc, const McEpilogue *ep);
/* 16-bit weights kept in panels: the K x N matrix in 16 bits (fmt) in
 * panels of MC_GEMM_PANEL16 columns, P[(n / MC_GEMM_PANEL16) * K *
 * MC_GEMM_PANEL16 + k * MC_GEMM_PANEL16 + n % MC_GEMM_PANEL16], zero past
 * N: a GEMV streams each panel from start to end (a row-major B is as many
 * short streams as it has rows, which the hardware prefetchers follow
 * badly), and a GEMM converts columns of a panel as it packs B.
 * mc_gemm_weight16_elems and mc_gemm_pack_weight16 are
 * mc_gemm_weight_floats and mc_gemm_pack_weight for this layout (W in f32,
 * rounded to fmt); mc_gemm_f32_w16_packed(_ep) is mc_gemm_f32_w16(_ep) on
 * such a B: the same bits. */
#define MC_GEMM_PANEL16 128
int64_t mc_gemm_weight16_elems(int64_t rows, int64_t cols, int transposed);
void mc_gemm_pack_weight16(int64_t rows, int64_t cols, int transposed,
                           const float *W, int fmt, uint16_t *P);
void mc_gemm_f32_w16_packed(int64_t M, int64_t N, int64_t K, const float *A,
                            int64_t rsa, int64_t csa, const uint16_t *P,
                            int fmt, float *C, int64_t ldc, int accumulate);
void mc_gemm_f32_w16_packed_ep(int64_t M, int64_t N, int64_t K, const float *A,
                               int64_t rsa, int64_t csa, const uint16_t *P,
                               int fmt, float *C, int64_t ldc,
                               const McEpilogue *ep);
void mc_gemm_f64(int64_t M, int64_t N, int64_t K, const double *A, int64_t rsa,
                 int64_t csa, const double *B, int64_t rsb, int64_t csb,
                 double *C, int64_t ldc, int accumulate);
/* The f32 GEMM's kernel: "portable", "avx2" or "avx512". Chosen once: the
 * one $MC_GEMM_KERNEL names if this CPU runs it, else the widest it runs. */
const char *mc_gemm_kernel_name(void);
/* Selects a kernel by name (NULL: the default above); MC_ERR_USAGE when
 * the name is unknown or the CPU lacks it. For tests and benchmarks. */
int mc_gemm_use_kernel(const char *name);

/* ---- threads (mc_threads.c) ---------------------------------------------- */
/* The kernels' thread count; n <= 0 means one per online core. Unset, it is
 * $MC_THREADS when that is a positive integer, else one per core. */
void mc_set_threads(int n);
int mc_get_threads(void);

typedef void (*McParallelFn)(void *ctx, int64_t begin, int64_t end);
/* Runs fn over [0, n) cut into at most mc_get_threads() contiguous chunks of
 * whole grains (the cut depends only on n, grain and the thread count), one
 * on the caller, the others on a lazily started pool; returns when all are
 * done. Called inside a parallel region, or while another thread runs one,
 * it runs fn(ctx, 0, n) on the calling thread. With $MC_SPLIT_ALL set (not
 * "0"), every grain is 1: a small model's kernels run in pieces on every
 * thread too, for tests that check that the pieces never change a bit. */
void mc_parallel_for(int64_t n, int64_t grain, McParallelFn fn, void *ctx);
/* mc_parallel_for for an fn whose every element is the same whatever range
 * computes it, balanced: each chunk (cut as mc_parallel_for cuts it) runs
 * as pieces of `piece` elements (grain a multiple of it), front to back on
 * its thread, and a thread done with its own takes pieces from the back of
 * the others' chunks. A thread slowed down (by another program, or woken
 * late) then computes less, and no thread waits long for it. piece < 1, or
 * a grain not a multiple of it: mc_parallel_for. */
void mc_parallel_balanced(int64_t n, int64_t grain, int64_t piece,
                          McParallelFn fn, void *ctx);
/* Joins the pool's threads and frees the caller's scratch (also done at
 * exit); a later mc_parallel_for starts them again. Not from inside fn. */
void mc_threads_shutdown(void);
/* At least `bytes` of 64-byte-aligned memory owned by the calling thread,
 * kept for its next call (which may move it); NULL when out of memory.
 * Freed when the thread exits, for the main thread at exit. */
void *mc_thread_scratch(size_t bytes);
/* The same for another slot: each slot is a buffer of its own, so a
 * kernel may keep slot 1 across the calls it makes (a GEMM takes slot 0).
 * Slots 0 .. MC_SCRATCH_SLOTS-1; mc_thread_scratch is slot 0. */
enum { MC_SCRATCH_SLOTS = 2 };
void *mc_thread_scratch_slot(int slot, size_t bytes);

/* Softmax along an axis of length n whose elements are
 * x[(o*n + j)*inner + i] for o < outer, i < inner. Max-subtracted like torch:
 * a row that is all -inf gives nan, as torch does. y may equal x. */
void mc_softmax_f32(const float *x, float *y, int64_t outer, int64_t n,
                    int64_t inner);
void mc_softmax_f64(const double *x, double *y, int64_t outer, int64_t n,
                    int64_t inner);
void mc_log_softmax_f32(const float *x, float *y, int64_t outer, int64_t n,
                        int64_t inner);
void mc_log_softmax_f64(const double *x, double *y, int64_t outer, int64_t n,
                        int64_t inner);

/* ---- decoding (mc_decode.c) ---------------------------------------------- */
/* SplitMix64's finalizer; the generator is defined exactly in mc_decode.c. */
uint64_t mc_splitmix64_mix(uint64_t z);
/* y[0..n) = the n uniform numbers in [0, 1) drawn from `state`. */
void mc_random_uniform_f32(int64_t state, float *y, int64_t n);
void mc_random_uniform_f64(int64_t state, double *y, int64_t n);
/* Along an axis of length n (elements x[(o*n + j)*inner + i]): the indices
 * of the k <= n largest into y[(o*k + r)*inner + i], by descending value,
 * equal values by lower index, NaN first (a stable descending sort); i64
 * values compare as doubles. A row is O(n) (radix sort or selection) in
 * the calling thread's mc_thread_scratch (16n bytes for f32/i32, 32n for
 * f64/i64, plus up to 48 KB); for k <= 16, n <= 64, or without that memory
 * it is a heap in y, O(n log k). */
void mc_topk_f32(const float *x, int32_t *y, int64_t outer, int64_t n,
                 int64_t inner, int64_t k);
void mc_topk_f64(const double *x, int32_t *y, int64_t outer, int64_t n,
                 int64_t inner, int64_t k);
void mc_topk_i32(const int32_t *x, int32_t *y, int64_t outer, int64_t n,
                 int64_t inner, int64_t k);
void mc_topk_i64(const int64_t *x, int32_t *y, int64_t outer, int64_t n,
                 int64_t inner, int64_t k);
/* Per row of p along the axis: the first j with u * W < W_j, where W_j is
 * the sum (in double, in index order) of the weights p_0..p_j that are > 0
 * and W the total; the last index of positive weight if none (u rounding
 * up, or u >= 1), 0 for a row without one. y[o*inner + i], u likewise. */
void mc_categorical_f32(const float *p, const float *u, int32_t *y,
                        int64_t outer, int64_t n, int64_t inner);
void mc_categorical_f64(const double *p, const double *u, int32_t *y,
                        int64_t outer, int64_t n, int64_t inner);

/* ---- a generated model, described as data (mc_model.c) -------------------
 * The model's code is its kernels and typed run functions; everything around
 * them (loading and preparing the weights, binding the sizes from the input
 * shapes, checking them, allocating the outputs) is done here from tables the
 * model defines, the same for the C and the LLVM backend. */

/* A dimension: the sum over terms of coef * sym[0] * ... * sym[nfactors-1],
 * the symbols numbered as in McModelDesc.symbols; text is how the model file
 * spells it ("2*T + 1"), for messages. */
typedef struct McDimTerm {
  int64_t coef;
  int nfactors;
  int sym[3];
} McDimTerm;

typedef struct McDim {
  const char *text;
  int nterms;
  McDimTerm terms[4];
} McDim;

/* An input or output of an entry point; dims (rank of them) may be NULL in
 * a McModelInfo made by hand. */
typedef struct McIOSpec {
  const char *name;
  McDType dtype;
  int rank;
  int optional;
  const McDim *dims;
} McIOSpec;

/* A run function in one signature for every entry: the values of the
 * symbols the entry takes (in the order of their numbers), then the inputs'
 * and the outputs' data (an absent optional input NULL). */
typedef int (*McRunFn)(void *model, const int64_t *syms, void *const *inputs,
                       void *const *outputs, McError *e);

/* A weight the model computes from the file's when it is opened: the
 * prepare function's output `output`, of `floats` floats, kept as weight
 * `weight` (after the file's); with `packed`, in the GEMM's panels of a
 * rows x cols matrix (mc_gemm_pack_weight, of its transpose when
 * `transposed`). */
typedef struct McPreparedSpec {
  int weight;
  int64_t floats;
  int packed;
  int64_t rows, cols;
  int transposed;
} McPreparedSpec;

typedef struct McModelDesc {
  const char *name; /* C name of the model: messages say "<name>_open: ..." */
  const char *default_weights; /* path given at compile time, or NULL */
  int nsymbols;
  const char *const *symbols;
  int nweights; /* read from the weights file */
  const McWeightSpec *weights;
  int nprepared;
  const McPreparedSpec *prepared;
  McRunFn prepare; /* the prepared weights into its outputs; NULL if none */
} McModelDesc;

/* The handle of an open model: w holds the file's weights as their specs
 * keep them, then the prepared ones. Generated code reads w. */
typedef struct McArena McArena;

typedef struct McModel {
  const void **w;
  McWeights *weights;
  void **prepared; /* owned, by McPreparedSpec */
  const McModelDesc *desc;
  McSafetensors *kept; /* a prepared weights file w points into, or NULL */
  void **copies;       /* owned, by slot of w: kept's tensors of 2 MB or more,
                          copied into 2 MB pages (mc_prepared_load) */
  McArena *arenas;     /* owned: the arenas kept between calls */
} McModel;

/* The arena of entry `key` of m, kept between calls (a training entry's:
 * its optimizer states are its first `keep` bytes, zeros before the first
 * call): at least `bytes` long, grown when a call needs more, its first
 * `keep` bytes kept. NULL when out of memory (the arena kept is unchanged).
 * Such an entry's calls on one model must not overlap. */
void *mc_model_arena(McModel *m, int key, size_t bytes, size_t keep);
/* The workspace of one call of function `key` of m (at least `bytes`):
 * the arena m keeps for it between calls (grown when a call needs more),
 * or, while another call of it on m is using that one, a fresh arena of
 * its own. Zeros the first time, else what the last call left: a planned
 * arena never reads a byte the call has not written. Give it back with
 * mc_model_workspace_done (which frees a fresh one). NULL: out of memory.
 * Calls on one model may overlap (each has an arena of its own); m keeps
 * each function's largest arena until it is closed. */
void *mc_model_workspace(McModel *m, int key, size_t bytes);
void mc_model_workspace_done(McModel *m, int key, void *ws);

/* Opens a model: loads every weight and computes the prepared ones (or
 * maps them from a prepared weights file, see mc_prepared.c). NULL (with e
 * filled) on error. */
McModel *mc_model_open(const McModelDesc *d, const char *weights_path,
                       McError *e);
/* Writes the open model's weights as it keeps them and its prepared
 * weights to path, a prepared weights file that mc_model_open maps without
 * converting or computing anything (mc_prepared.c). */
int mc_model_save(const McModel *m, const char *path, McError *e);
/* When path is a prepared weights file: checks it was prepared for m's
 * tables and points m->w at weights which[] (NULL: 0 .. n-1) and, with
 * prepare, at every prepared weight; *used = 1. Another weights file:
 * *used = 0 and nothing done. */
int mc_prepared_load(McModel *m, const char *path, const int *which, int n,
                     int prepare, int *used, McError *e);
void mc_model_close(McModel *m); /* NULL is fine */

/* One entry point of a model. */
/* A training entry's output that replaces a weight for the next step:
 * output `output` is the new value of weight `weight` (an index in
 * model->weights). Its optimizer states are no inputs or outputs: they live
 * in its arena (mc_model_arena). */
typedef struct McUpdate {
  int output, weight;
} McUpdate;

typedef struct McEntry {
  const McModelDesc *model;
  int ninputs;
  const McIOSpec *inputs;
  int noutputs;
  const McIOSpec *outputs;
  int nweights; /* the file weights the entry reads: their specs, and */
  const McWeightSpec *weights;
  const int *which; /* their indexes in model->weights (NULL: 0, 1, ...) */
  int prepare;      /* the entry reads prepared weights */
  uint64_t syms;    /* bit s: run takes symbol s */
  McRunFn run;
  /* a training entry (nupdates > 0): its updates, and the index of its
   * input `step` (f32[], the 1-based step number) */
  int nupdates;
  const McUpdate *updates;
  int step_input;
} McEntry;

/* McModelInfo.open of an entry: loads the weights it reads only, so an
 * entry that reads none runs without a weights file. */
int mc_entry_open(const McEntry *x, const char *weights_path, void **handle,
                  McError *e);
/* McModelInfo.run of an entry. Binds each symbol from the first input
 * dimension of the form c*S + k (c > 0), checks every other dimension
 * against it, naming both sides ("input 'pad': dimension 1 is 7 but T = 5
 * from input 'x'"), allocates the outputs and calls x->run; on failure
 * frees them. An output that holds data (from an earlier run) of the dtype,
 * rank and shape this run gives is written in place; other data is freed.
 * An absent optional input binds nothing. */
int mc_entry_run(const McEntry *x, void *handle, const McTensor *inputs,
                 McTensor *outputs, McError *e);
/* mc_entry_run's first half: binds and checks the symbols from the inputs,
 * giving the values of those the entry takes (syms: room for 64) and each
 * output's dtype, rank and shape (data untouched). */
int mc_entry_bind(const McEntry *x, const McTensor *inputs, int64_t *syms,
                  McTensor *outputs, McError *e);

/* The memory plan's first fit at run time: buffer i goes at the lowest
 * offset where its size[i] bytes overlap none of the n placed buffers in
 * meets[] (those live at a step where it is); returns the arena's new end. */
size_t mc_plan_place(int i, const int *meets, int n, size_t *off,
                     const size_t *size, size_t end);
/* Aborts unless every buffer fits the arena and no two buffers live at a
 * common step (live[i] = {first, last}) overlap (-DMC_CHECK_PLAN builds). */
void mc_plan_check(const char *fn, int n, const int (*live)[2],
                   const size_t *off, const size_t *size, size_t arena);

/* ---- the executable driver ---------------------------------------------- */

typedef struct McModelInfo {
  const char *name;
  const char *default_weights; /* path given at compile time, or NULL */
  int ninputs;
  const McIOSpec *inputs;
  int noutputs;
  const McIOSpec *outputs;
  int nweights;
  const McWeightSpec *weights;
  int (*open)(const char *weights_path, void **handle, McError *e);
  void (*close)(void *handle);
  /* inputs[i] are in the model's dtype (data NULL for an absent optional
   * input). outputs[i] arrive with the spec's dtype and rank and data NULL
   * (mc_entry_run also takes them as its earlier run left them); on success
   * each holds its shape and malloc'd data (mc_tensor_alloc). Whatever
   * output data is non-NULL afterwards is freed by the caller, also on
   * failure. */
  int (*run)(void *handle, const McTensor *inputs, McTensor *outputs,
             McError *e);
  /* the entry's tables (generated programs), NULL in one made by hand */
  const McEntry *entry;
  /* a training entry's driver (mc_train), which mc_main hands the command
   * line; NULL otherwise, so other programs do not link it */
  int (*train)(int argc, char **argv, const struct McModelInfo *info);
} McModelInfo;

/* PROG [--weights W.safetensors] name=FILE.npy ... -o OUTDIR
 * Writes OUTDIR/<output>.npy for every output, all or nothing. Returns the
 * process exit status: 0 on success, 1 with "PROG: error: msg" on stderr. */
int mc_main(int argc, char **argv, const McModelInfo *info);

/* A program with several entry points: PROG ENTRY [--weights W] name=FILE.npy
 * ... -o OUTDIR runs entries[i] whose name is ENTRY (as mc_main does);
 * `PROG --help` lists the entries, `PROG ENTRY --help` one entry's inputs
 * and outputs. */
int mc_main_entries(int argc, char **argv, int nentries,
                    const McModelInfo *const *entries);

/* PROG ENTRY --weights INIT.safetensors --data name=FILE.npy ... --steps N
 * [--batch B] [--seed S] [--checkpoint-every K] [--threads T]
 * -o OUT.safetensors: trains with a training entry (info->entry) and writes
 * its weights (mc_train.c); the process exit status. */
int mc_train(int argc, char **argv, const McModelInfo *info);

#ifdef __cplusplus
}
#endif

#endif /* MC_RUNTIME_H */
