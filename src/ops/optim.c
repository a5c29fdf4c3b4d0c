/* The optimiser's front door (§9): an AdamW step for one parameter tensor,
 * and the sum of squares that global-norm clipping and non-finite checks
 * are built from. */
#include <math.h>
#include "ops/ops_impl.h"

static rf_status check_config(const char *op, const rf_adam_config *c, int64_t step) {
    if (!c) return rf_error(RF_ERR_INVALID_ARG, "%s: cfg is NULL", op);
    if (!(c->lr >= 0.0f) || !isfinite(c->lr))
        return rf_error(RF_ERR_INVALID_ARG, "%s: lr = %g must be finite and >= 0", op, (double)c->lr);
    if (!(c->beta1 >= 0.0f && c->beta1 < 1.0f) || !(c->beta2 >= 0.0f && c->beta2 < 1.0f))
        return rf_error(RF_ERR_INVALID_ARG, "%s: beta1 = %g and beta2 = %g must lie in [0, 1)", op, (double)c->beta1,
                        (double)c->beta2);
    if (!(c->eps > 0.0f) || !isfinite(c->eps))
        return rf_error(RF_ERR_INVALID_ARG, "%s: eps = %g must be positive and finite", op, (double)c->eps);
    if (!(c->weight_decay >= 0.0f) || !isfinite(c->weight_decay))
        return rf_error(RF_ERR_INVALID_ARG, "%s: weight_decay = %g must be finite and >= 0", op,
                        (double)c->weight_decay);
    if (!(c->grad_scale >= 0.0f) || !isfinite(c->grad_scale))
        return rf_error(RF_ERR_INVALID_ARG, "%s: grad_scale = %g must be finite and >= 0", op, (double)c->grad_scale);
    if (step < 1) return rf_error(RF_ERR_INVALID_ARG, "%s: step = %lld must be >= 1", op, (long long)step);
    return RF_OK;
}

rf_status rf_adam_update(rf_tensor *param, rf_tensor *m, rf_tensor *v, const rf_tensor *grad,
                         const rf_adam_config *cfg, int64_t step) {
    const char *op = "rf_adam_update";
    RF_TRY(check_config(op, cfg, step));
    if (!param || !param->buf) return rf_error(RF_ERR_INVALID_ARG, "%s: param is NULL", op);
    size_t n = rf_tensor_numel(param);
    RF_TRY(rf_check_numel(op, "param", param, RF_F32, n));
    RF_TRY(rf_check_numel(op, "m", m, RF_F32, n));
    RF_TRY(rf_check_numel(op, "v", v, RF_F32, n));
    RF_TRY(rf_check_numel(op, "grad", grad, RF_F32, n));
    rf_device *dev = param->buf->dev;
    RF_TRY(rf_check_device(op, "m", m, dev));
    RF_TRY(rf_check_device(op, "v", v, dev));
    RF_TRY(rf_check_device(op, "grad", grad, dev));
    /* Bias corrections 1 − βᵗ, in double: β2ᵗ stays near 1 for thousands of steps. */
    float bc1 = (float)(1.0 - pow(cfg->beta1, (double)step)), bc2 = (float)(1.0 - pow(cfg->beta2, (double)step));
    RF_DISPATCH(dev, adam_update, "adam", param, m, v, grad, cfg, bc1, bc2);
}

rf_status rf_sum_squares(rf_tensor *out, const rf_tensor *x) {
    const char *op = "rf_sum_squares";
    RF_TRY(rf_check_numel(op, "out", out, RF_F32, 1));
    if (!x || !x->buf) return rf_error(RF_ERR_INVALID_ARG, "%s: x is NULL", op);
    RF_TRY(rf_check_numel(op, "x", x, RF_F32, rf_tensor_numel(x)));
    rf_device *dev = out->buf->dev;
    RF_TRY(rf_check_device(op, "x", x, dev));
    RF_DISPATCH(dev, sum_squares, "sum_squares", out, x);
}
