/* GEMM on host memory: OpenBLAS's cblas_sgemm on blocks of rows of c, the
 * blocks on OpenMP threads. OpenBLAS runs single-threaded inside them
 * (rf_host_gemm_init): one pool of threads for the whole process, since
 * OpenBLAS's own pool, spinning between calls, would fight the cpu
 * backend's OpenMP threads (or PoCL's) for the same cores. */
#include <cblas.h>
#include <omp.h>
#include "device/host_gemm.h"

/* Rows of c per block: at least this many, so a thread's sgemm still has
 * room for OpenBLAS's register and cache blocking. */
enum { MIN_ROWS = 64 };

void rf_host_gemm_init(void) { openblas_set_num_threads(1); }

void rf_host_gemm(const rf_gemm_desc *d, const float *A, const float *B, float *C) {
    /* Each batch item cut into `parts` blocks of rows: enough blocks for
     * every thread when the batch alone is not. */
    const int64_t threads = omp_get_max_threads();
    int64_t parts = d->batch >= threads ? 1 : (threads + d->batch - 1) / d->batch;
    if (parts > d->m / MIN_ROWS) parts = d->m / MIN_ROWS > 1 ? d->m / MIN_ROWS : 1;
    const int64_t rows = (d->m + parts - 1) / parts;
#pragma omp parallel for schedule(static) if (d->batch * parts > 1)
    for (int64_t t = 0; t < d->batch * parts; t++) {
        const int64_t i = t / parts, r0 = t % parts * rows, m = d->m - r0 < rows ? d->m - r0 : rows;
        /* Row r0 of op(a): row r0 of a, or column r0 when a is transposed. */
        const float *ai = A + i * d->stride_a + (d->trans_a ? r0 : r0 * d->lda);
        if (m > 0)
            cblas_sgemm(CblasRowMajor, d->trans_a ? CblasTrans : CblasNoTrans, d->trans_b ? CblasTrans : CblasNoTrans,
                        (blasint)m, (blasint)d->n, (blasint)d->k, d->alpha, ai, (blasint)d->lda,
                        B + i * d->stride_b, (blasint)d->ldb, d->beta, C + i * d->stride_c + r0 * d->ldc,
                        (blasint)d->ldc);
    }
}
