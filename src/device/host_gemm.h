/* Internal: GEMM with the host's BLAS on host memory, for every backend
 * whose buffers are host memory — the cpu backend (cpu/gemm.c) and OpenCL
 * devices of CPU type (opencl/gemm.c, on mapped buffers). */
#ifndef RF_HOST_GEMM_H
#define RF_HOST_GEMM_H

#include "device/thread_pool.h"
#include "reformer/ops.h"

/* Call once when such a device opens: OpenBLAS single-threaded inside our
 * OpenMP threads (see host_gemm.c). */
void rf_host_gemm_init(void);

/* C = alpha·op(A)·op(B) + beta·C for each batch item (rf_gemm_desc), a, b, c
 * pointing at each tensor's first matrix, on `pool`'s threads, or on the
 * OpenMP threads when pool is NULL. */
void rf_host_gemm(const rf_gemm_desc *d, const float *a, const float *b, float *c, rf_thread_pool *pool);

#endif
