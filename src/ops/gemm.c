/* GEMM's front door: checks every dimension, leading dimension, stride and
 * extent once, then runs OpenBLAS (cpu) or CLBlast (OpenCL). */
#include "ops/ops_impl.h"

/* The extent (elements from the tensor's offset) of `batch` r×c matrices
 * with leading dimension ld, `stride` apart; 0 if it overflows. */
static int extent(int64_t batch, int64_t stride, int64_t rows, int64_t cols, int64_t ld, size_t *out) {
    size_t last, span;
    if (!rf_mul_size((size_t)(batch - 1), (size_t)stride, &last)) return 0;
    if (!rf_mul_size((size_t)(rows - 1), (size_t)ld, &span)) return 0;
    if (last > SIZE_MAX - span || last + span > SIZE_MAX - (size_t)cols) return 0;
    *out = last + span + (size_t)cols;
    return 1;
}

static rf_status check_operand(const char *name, const rf_tensor *t, int64_t rows, int64_t cols, int64_t ld,
                               int64_t batch, int64_t stride) {
    if (!t || !t->buf) return rf_error(RF_ERR_INVALID_ARG, "rf_gemm: %s is NULL", name);
    if (t->dtype != RF_F32) return rf_error(RF_ERR_INVALID_ARG, "rf_gemm: %s must be f32", name);
    if (ld < cols)
        return rf_error(RF_ERR_INVALID_ARG, "rf_gemm: ld%s = %lld is smaller than the %lld columns it stores",
                        name, (long long)ld, (long long)cols);
    if (batch > 1 && stride < 0)
        return rf_error(RF_ERR_INVALID_ARG, "rf_gemm: stride_%s = %lld is negative", name, (long long)stride);
    size_t need;
    if (!extent(batch, batch > 1 ? stride : 0, rows, cols, ld, &need))
        return rf_error(RF_ERR_INVALID_ARG, "rf_gemm: the extent of %s overflows", name);
    size_t have = rf_tensor_numel(t);
    if (need > have)
        return rf_error(RF_ERR_INVALID_ARG,
                        "rf_gemm: %s needs %zu elements (%lld×%lld, ld %lld, batch %lld, stride %lld) but the tensor has %zu",
                        name, need, (long long)rows, (long long)cols, (long long)ld, (long long)batch,
                        (long long)stride, have);
    return RF_OK;
}

rf_status rf_gemm(rf_tensor *c, const rf_tensor *a, const rf_tensor *b, const rf_gemm_desc *desc) {
    if (!desc) return rf_error(RF_ERR_INVALID_ARG, "rf_gemm: desc is NULL");
    rf_gemm_desc d = *desc;
    if (d.m <= 0 || d.n <= 0 || d.k <= 0)
        return rf_error(RF_ERR_INVALID_ARG, "rf_gemm: m, n, k = %lld, %lld, %lld must be positive",
                        (long long)d.m, (long long)d.n, (long long)d.k);
    if (d.batch <= 0) d.batch = 1;
    /* Stored shapes of A and B (rows × cols) before the optional transpose. */
    int64_t ar = d.trans_a ? d.k : d.m, ac = d.trans_a ? d.m : d.k;
    int64_t br = d.trans_b ? d.n : d.k, bc = d.trans_b ? d.k : d.n;
    if (d.lda == 0) d.lda = ac;
    if (d.ldb == 0) d.ldb = bc;
    if (d.ldc == 0) d.ldc = d.n;
    RF_TRY(check_operand("a", a, ar, ac, d.lda, d.batch, d.stride_a));
    RF_TRY(check_operand("b", b, br, bc, d.ldb, d.batch, d.stride_b));
    RF_TRY(check_operand("c", c, d.m, d.n, d.ldc, d.batch, d.stride_c));
    rf_device *dev = c->buf->dev;
    RF_TRY(rf_check_device("rf_gemm", "a", a, dev));
    RF_TRY(rf_check_device("rf_gemm", "b", b, dev));
    if (d.batch > 1 && d.stride_c == 0)
        return rf_error(RF_ERR_INVALID_ARG, "rf_gemm: stride_c = 0 with batch %lld would write one matrix twice",
                        (long long)d.batch);
    RF_DISPATCH(dev, gemm, "gemm", c, a, b, &d);
}
