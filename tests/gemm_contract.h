/* The f32 GEMM's contract (runtime/mc_runtime.h, mc_gemm_f32) as a scalar
 * reference, for tests/test_gemm.c and tests/test_gemm16.c. */
#ifndef MC_TEST_GEMM_CONTRACT_H
#define MC_TEST_GEMM_CONTRACT_H

#include <math.h>
#include <stdint.h>

/* The contract, one element at a time; volatile keeps the compiler from
 * fusing or reordering the portable kernel's two roundings. */
static inline void gemm_contract(int fused, int64_t M, int64_t N, int64_t K,
                                 const float *A, int64_t rsa, int64_t csa,
                                 const float *B, int64_t rsb, int64_t csb,
                                 float *C, int64_t ldc, int accumulate) {
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      if (K == 0) {
        if (!accumulate)
          C[i * ldc + j] = 0.0f;
        continue;
      }
      volatile float acc = accumulate ? C[i * ldc + j] : -0.0f;
      for (int64_t k = 0; k < K; k++) {
        float a = A[i * rsa + k * csa], b = B[k * rsb + j * csb];
        if (fused) {
          acc = fmaf(a, b, acc);
        } else {
          volatile float p = a * b;
          acc = acc + p;
        }
      }
      C[i * ldc + j] = acc;
    }
}

#endif
