/* GEMM on the cpu: OpenBLAS's cblas_sgemm, one call per batch item. */
#include <cblas.h>
#include "device/cpu/cpu_backend.h"

static rf_status rf_cpu_gemm(rf_tensor *c, const rf_tensor *a, const rf_tensor *b, const rf_gemm_desc *d) {
    for (int64_t i = 0; i < d->batch; i++) {
        cblas_sgemm(CblasRowMajor, d->trans_a ? CblasTrans : CblasNoTrans, d->trans_b ? CblasTrans : CblasNoTrans,
                    (blasint)d->m, (blasint)d->n, (blasint)d->k, d->alpha,
                    rf_cpu_f32(a) + i * d->stride_a, (blasint)d->lda,
                    rf_cpu_f32(b) + i * d->stride_b, (blasint)d->ldb, d->beta,
                    rf_cpu_f32(c) + i * d->stride_c, (blasint)d->ldc);
    }
    return RF_OK;
}

void rf_cpu_gemm_register(rf_op_table *ops) {
    ops->gemm = rf_cpu_gemm;
}
