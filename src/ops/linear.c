/* Linear layers' front door (§1, §7): y = x·Wᵀ + b. The products are rf_gemm
 * calls; only the bias (add, and its gradient's column sums) is a kernel of
 * this family. */
#include <math.h>
#include "ops/ops_impl.h"

/* x [..., in], w [out, in], and `other` (y or dy) [..., out] with x's leading
 * dimensions; *rows = numel(x) / in. */
static rf_status check_shapes(const char *op, const char *other_name, const rf_tensor *other, const rf_tensor *x,
                              const rf_tensor *w, size_t *rows) {
    RF_CHECK_TENSOR(op, "w", w, RF_F32, 2, -1, -1);
    int64_t out = w->shape[0], in = w->shape[1];
    if (!x || !x->buf) return rf_error(RF_ERR_INVALID_ARG, "%s: x is NULL", op);
    if (x->ndim < 1 || x->ndim > RF_MAX_DIMS) return rf_error(RF_ERR_INVALID_ARG, "%s: x has %d dims", op, x->ndim);
    int64_t xs[RF_MAX_DIMS], os[RF_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) xs[i] = os[i] = x->shape[i];
    xs[x->ndim - 1] = in;
    os[x->ndim - 1] = out;
    RF_TRY(rf_check_tensor(op, "x", x, RF_F32, x->ndim, xs));
    RF_TRY(rf_check_tensor(op, other_name, other, RF_F32, x->ndim, os));
    *rows = rf_tensor_numel(x) / (size_t)in;
    if (*rows == 0) return rf_error(RF_ERR_INVALID_ARG, "%s: x has no rows", op);
    rf_device *dev = other->buf->dev;
    RF_TRY(rf_check_device(op, "x", x, dev));
    RF_TRY(rf_check_device(op, "w", w, dev));
    return RF_OK;
}

/* y = beta·y + alpha·(x·Wᵀ + b): the forward (beta 0) and the accumulating
 * form (beta 1), where the GEMM adds into y itself. */
static rf_status linear(const char *op, rf_tensor *y, const rf_tensor *x, const rf_tensor *w, const rf_tensor *b,
                        float alpha, float beta) {
    size_t rows;
    RF_TRY(check_shapes(op, "y", y, x, w, &rows));
    rf_device *dev = y->buf->dev;
    if (b) {
        RF_CHECK_TENSOR(op, "b", b, RF_F32, 1, w->shape[0]);
        RF_TRY(rf_check_device(op, "b", b, dev));
    }
    /* y [rows, out] = alpha · x [rows, in] · Wᵀ + beta · y. */
    rf_gemm_desc d = {.trans_b = true, .m = (int64_t)rows, .n = w->shape[0], .k = w->shape[1], .alpha = alpha,
                      .beta = beta};
    RF_TRY(rf_gemm(y, x, w, &d));
    if (!b) return RF_OK;
    RF_DISPATCH(dev, bias_add, "bias_add", y, b, alpha);
}

rf_status rf_linear_forward(rf_tensor *y, const rf_tensor *x, const rf_tensor *w, const rf_tensor *b) {
    return linear("rf_linear_forward", y, x, w, b, 1.0f, 0.0f);
}

rf_status rf_linear_accumulate(rf_tensor *y, const rf_tensor *x, const rf_tensor *w, const rf_tensor *b, float alpha) {
    if (!isfinite(alpha)) return rf_error(RF_ERR_INVALID_ARG, "rf_linear_accumulate: alpha %g is not finite", (double)alpha);
    return linear("rf_linear_accumulate", y, x, w, b, alpha, 1.0f);
}

rf_status rf_linear_backward(rf_tensor *dx, rf_tensor *dw, rf_tensor *db, const rf_tensor *dy,
                             const rf_tensor *x, const rf_tensor *w) {
    const char *op = "rf_linear_backward";
    size_t rows;
    RF_TRY(check_shapes(op, "dy", dy, x, w, &rows));
    rf_device *dev = dy->buf->dev;
    int64_t out = w->shape[0], in = w->shape[1];
    if (dx) {
        RF_TRY(rf_check_tensor(op, "dx", dx, RF_F32, x->ndim, x->shape));
        RF_TRY(rf_check_device(op, "dx", dx, dev));
    }
    if (dw) {
        RF_CHECK_TENSOR(op, "dw", dw, RF_F32, 2, out, in);
        RF_TRY(rf_check_device(op, "dw", dw, dev));
    }
    if (db) {
        RF_CHECK_TENSOR(op, "db", db, RF_F32, 1, out);
        RF_TRY(rf_check_device(op, "db", db, dev));
    }
    if (dx) { /* dx [rows, in] = dy [rows, out] · W */
        rf_gemm_desc d = {.m = (int64_t)rows, .n = in, .k = out, .alpha = 1.0f};
        RF_TRY(rf_gemm(dx, dy, w, &d));
    }
    if (dw) { /* dW [out, in] += dyᵀ · x */
        rf_gemm_desc d = {.trans_a = true, .m = out, .n = in, .k = (int64_t)rows, .alpha = 1.0f, .beta = 1.0f};
        RF_TRY(rf_gemm(dw, dy, x, &d));
    }
    if (!db) return RF_OK;
    RF_DISPATCH(dev, bias_grad, "bias_grad", db, dy);
}
