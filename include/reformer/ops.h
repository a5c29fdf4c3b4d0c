/* reformer-cl ops: one front door per op family. Each checks its arguments
 * and shapes once, then runs on the device its tensors live on (cpu or
 * OpenCL). Arguments: outputs first, then inputs, then options (as llm.c).
 * Maths and shapes: ../shared/SPEC.md, cited as §N. */
#ifndef REFORMER_OPS_H
#define REFORMER_OPS_H

#include <stdbool.h>
#include "reformer/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- GEMM ---------------------------------------------------------------
 * For each batch item b (row-major, §1):
 *   C[b] = alpha · op(A[b]) · op(B[b]) + beta · C[b]
 * op(A) is m×k: A is stored m×k (lda ≥ k) or, with trans_a, k×m (lda ≥ m);
 * op(B) is k×n likewise; C is m×n (ldc ≥ n). A leading dimension of 0 means
 * "tight". With batch > 1, item b of X starts stride_x elements after item
 * b−1; a stride of 0 reuses one matrix for every item (shared weights).
 * Each tensor's own offset is where its first matrix starts; the front door
 * checks that every element touched lies inside the tensor. */
typedef struct rf_gemm_desc {
    bool trans_a, trans_b;
    int64_t m, n, k;
    float alpha, beta;
    int64_t lda, ldb, ldc;
    int64_t batch;
    int64_t stride_a, stride_b, stride_c;
} rf_gemm_desc;

rf_status rf_gemm(rf_tensor *c, const rf_tensor *a, const rf_tensor *b, const rf_gemm_desc *desc);

/* ---- elementwise ------------------------------------------------------
 * out = a + alpha · b over tensors of equal element count (the residual adds
 * of §8, and with alpha = −1 their inversion). out may alias a or b. */
rf_status rf_add(rf_tensor *out, const rf_tensor *a, const rf_tensor *b, float alpha);

#ifdef __cplusplus
}
#endif
#endif
