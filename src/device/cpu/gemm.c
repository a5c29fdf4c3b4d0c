/* GEMM on the cpu: OpenBLAS's cblas_sgemm on blocks of rows of c, the
 * blocks on OpenMP threads. OpenBLAS runs single-threaded inside them
 * (rf_cpu_device_init): one pool of threads for the whole backend, since
 * OpenBLAS's own pool, spinning between calls, would fight the attention
 * ops' OpenMP threads for the same cores. */
#include <cblas.h>
#include <omp.h>
#include "device/cpu/cpu_backend.h"

/* Rows of c per block: at least this many, so a thread's sgemm still has
 * room for OpenBLAS's register and cache blocking. */
enum { MIN_ROWS = 64 };

static rf_status rf_cpu_gemm(rf_tensor *c, const rf_tensor *a, const rf_tensor *b, const rf_gemm_desc *d) {
    /* Each batch item cut into `parts` blocks of rows: enough blocks for
     * every thread when the batch alone is not. */
    const int64_t threads = omp_get_max_threads();
    int64_t parts = d->batch >= threads ? 1 : (threads + d->batch - 1) / d->batch;
    if (parts > d->m / MIN_ROWS) parts = d->m / MIN_ROWS > 1 ? d->m / MIN_ROWS : 1;
    const int64_t rows = (d->m + parts - 1) / parts;
    const float *A = rf_cpu_f32(a), *B = rf_cpu_f32(b);
    float *C = rf_cpu_f32(c);
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
    return RF_OK;
}

void rf_cpu_gemm_register(rf_op_table *ops) {
    ops->gemm = rf_cpu_gemm;
}
