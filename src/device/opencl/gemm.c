/* GEMM on OpenCL: CLBlast. A strided batch is one CLBlastSgemmStridedBatched
 * call (small matrices are far cheaper batched than looped); a batch that
 * reuses one operand (stride 0) is looped, as CLBlast wants distinct items. */
#include <clblast_c.h>
#include <stdio.h>
#include "device/opencl/cl_backend.h"

static rf_status clblast_fail(CLBlastStatusCode code, const char *what) {
    /* CLBlast's codes above -64 are OpenCL's own (see clblast_c.h). */
    if (code > -64) return rf_cl_fail((cl_int)code, what);
    return rf_error(RF_ERR_DEVICE, "%s: CLBlast status %d", what, (int)code);
}

static rf_status rf_cl_gemm(rf_tensor *c, const rf_tensor *a, const rf_tensor *b, const rf_gemm_desc *d) {
    rf_device *dev = c->buf->dev;
    cl_command_queue queue = rf_cl_ctx(dev)->queue;
    CLBlastTranspose ta = d->trans_a ? CLBlastTransposeYes : CLBlastTransposeNo;
    CLBlastTranspose tb = d->trans_b ? CLBlastTransposeYes : CLBlastTransposeNo;
    int shared = d->batch > 1 && (d->stride_a == 0 || d->stride_b == 0);
    if (d->batch > 1 && !shared) {
        cl_event ev = NULL;
        CLBlastStatusCode st = CLBlastSgemmStridedBatched(
            CLBlastLayoutRowMajor, ta, tb, (size_t)d->m, (size_t)d->n, (size_t)d->k, d->alpha,
            rf_cl_mem(a->buf), a->offset, (size_t)d->lda, (size_t)d->stride_a,
            rf_cl_mem(b->buf), b->offset, (size_t)d->ldb, (size_t)d->stride_b, d->beta,
            rf_cl_mem(c->buf), c->offset, (size_t)d->ldc, (size_t)d->stride_c, (size_t)d->batch, &queue, &ev);
        if (st != CLBlastSuccess) return clblast_fail(st, "CLBlastSgemmStridedBatched");
        return rf_cl_record(dev, ev, "gemm (clblast)");
    }
    for (int64_t i = 0; i < d->batch; i++) {
        cl_event ev = NULL;
        CLBlastStatusCode st = CLBlastSgemm(
            CLBlastLayoutRowMajor, ta, tb, (size_t)d->m, (size_t)d->n, (size_t)d->k, d->alpha,
            rf_cl_mem(a->buf), a->offset + (size_t)(i * d->stride_a), (size_t)d->lda,
            rf_cl_mem(b->buf), b->offset + (size_t)(i * d->stride_b), (size_t)d->ldb, d->beta,
            rf_cl_mem(c->buf), c->offset + (size_t)(i * d->stride_c), (size_t)d->ldc, &queue, &ev);
        if (st != CLBlastSuccess) return clblast_fail(st, "CLBlastSgemm");
        RF_TRY(rf_cl_record(dev, ev, "gemm (clblast)"));
    }
    return RF_OK;
}

void rf_cl_gemm_register(rf_op_table *ops) {
    ops->gemm = rf_cl_gemm;
}
