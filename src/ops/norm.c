/* LayerNorm's front door (§7, §9): forward and backward over the last
 * dimension of a tensor of any rank. */
#include <math.h>
#include "ops/ops_impl.h"

/* x is rows × D with D its last extent; gamma is [D]. */
static rf_status check_rows(const char *op, const rf_tensor *x, const rf_tensor *gamma, int64_t *d, size_t *rows) {
    if (!x || !x->buf) return rf_error(RF_ERR_INVALID_ARG, "%s: x is NULL", op);
    if (x->dtype != RF_F32 || x->ndim < 1) return rf_error(RF_ERR_INVALID_ARG, "%s: x must be f32 with at least 1 dim", op);
    *d = x->shape[x->ndim - 1];
    if (*d <= 0) return rf_error(RF_ERR_INVALID_ARG, "%s: x's last dimension is %lld", op, (long long)*d);
    *rows = rf_tensor_numel(x) / (size_t)*d;
    RF_CHECK_TENSOR(op, "gamma", gamma, RF_F32, 1, *d);
    return RF_OK;
}

rf_status rf_layer_norm_forward(rf_tensor *y, rf_tensor *mean, rf_tensor *rstd, const rf_tensor *x,
                                const rf_tensor *gamma, const rf_tensor *beta, float eps) {
    const char *op = "rf_layer_norm_forward";
    int64_t d;
    size_t rows;
    RF_TRY(check_rows(op, x, gamma, &d, &rows));
    RF_CHECK_TENSOR(op, "beta", beta, RF_F32, 1, d);
    RF_TRY(rf_check_tensor(op, "y", y, RF_F32, x->ndim, x->shape));
    if (mean) RF_TRY(rf_check_numel(op, "mean", mean, RF_F32, rows));
    if (rstd) RF_TRY(rf_check_numel(op, "rstd", rstd, RF_F32, rows));
    if (!(eps > 0.0f) || !isfinite(eps))
        return rf_error(RF_ERR_INVALID_ARG, "%s: eps = %g must be positive and finite", op, (double)eps);
    rf_device *dev = y->buf->dev;
    RF_TRY(rf_check_device(op, "x", x, dev));
    RF_TRY(rf_check_device(op, "gamma", gamma, dev));
    RF_TRY(rf_check_device(op, "beta", beta, dev));
    if (mean) RF_TRY(rf_check_device(op, "mean", mean, dev));
    if (rstd) RF_TRY(rf_check_device(op, "rstd", rstd, dev));
    RF_DISPATCH(dev, layer_norm_forward, "layer_norm", y, mean, rstd, x, gamma, beta, eps);
}

rf_status rf_layer_norm_backward(rf_tensor *dx, rf_tensor *dgamma, rf_tensor *dbeta, const rf_tensor *dy,
                                 const rf_tensor *x, const rf_tensor *gamma, const rf_tensor *mean,
                                 const rf_tensor *rstd) {
    const char *op = "rf_layer_norm_backward";
    int64_t d;
    size_t rows;
    RF_TRY(check_rows(op, x, gamma, &d, &rows));
    RF_TRY(rf_check_tensor(op, "dx", dx, RF_F32, x->ndim, x->shape));
    RF_TRY(rf_check_tensor(op, "dy", dy, RF_F32, x->ndim, x->shape));
    if (dgamma) RF_CHECK_TENSOR(op, "dgamma", dgamma, RF_F32, 1, d);
    if (dbeta) RF_CHECK_TENSOR(op, "dbeta", dbeta, RF_F32, 1, d);
    RF_TRY(rf_check_numel(op, "mean", mean, RF_F32, rows));
    RF_TRY(rf_check_numel(op, "rstd", rstd, RF_F32, rows));
    rf_device *dev = dx->buf->dev;
    const struct { const char *name; const rf_tensor *t; } all[] = {
        {"dy", dy}, {"x", x}, {"gamma", gamma}, {"mean", mean}, {"rstd", rstd}, {"dgamma", dgamma}, {"dbeta", dbeta}};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i].t) RF_TRY(rf_check_device(op, all[i].name, all[i].t, dev));
    RF_DISPATCH(dev, layer_norm_backward, "layer_norm_backward", dx, dgamma, dbeta, dy, x, gamma, mean, rstd);
}
