/* Activations' front door (§7): ReLU and GELU (erf form), forward and
 * backward, over tensors of equal element count. */
#include "ops/ops_impl.h"

static rf_status check_act(const char *op, rf_activation act) {
    if (act != RF_ACT_RELU && act != RF_ACT_GELU)
        return rf_error(RF_ERR_INVALID_ARG, "%s: unknown activation %d (RF_ACT_RELU or RF_ACT_GELU)", op, (int)act);
    return RF_OK;
}

rf_status rf_activation_forward(rf_tensor *y, const rf_tensor *x, rf_activation act) {
    const char *op = "rf_activation_forward";
    RF_TRY(check_act(op, act));
    if (!x || !x->buf) return rf_error(RF_ERR_INVALID_ARG, "%s: x is NULL", op);
    size_t n = rf_tensor_numel(x);
    RF_TRY(rf_check_numel(op, "x", x, RF_F32, n));
    RF_TRY(rf_check_numel(op, "y", y, RF_F32, n));
    rf_device *dev = y->buf->dev;
    RF_TRY(rf_check_device(op, "x", x, dev));
    RF_DISPATCH(dev, activation_forward, act == RF_ACT_RELU ? "relu" : "gelu", y, x, act);
}

rf_status rf_bias_activation_forward(rf_tensor *y, rf_tensor *pre, const rf_tensor *x, const rf_tensor *b,
                                     rf_activation act) {
    const char *op = "rf_bias_activation_forward";
    RF_TRY(check_act(op, act));
    if (!x || !x->buf) return rf_error(RF_ERR_INVALID_ARG, "%s: x is NULL", op);
    if (x->ndim < 1) return rf_error(RF_ERR_INVALID_ARG, "%s: x has no dimensions", op);
    RF_CHECK_TENSOR(op, "b", b, RF_F32, 1, x->shape[x->ndim - 1]);
    size_t n = rf_tensor_numel(x);
    RF_TRY(rf_check_numel(op, "x", x, RF_F32, n));
    RF_TRY(rf_check_numel(op, "y", y, RF_F32, n));
    rf_device *dev = y->buf->dev;
    if (pre) {
        RF_TRY(rf_check_numel(op, "pre", pre, RF_F32, n));
        RF_TRY(rf_check_device(op, "pre", pre, dev));
    }
    RF_TRY(rf_check_device(op, "x", x, dev));
    RF_TRY(rf_check_device(op, "b", b, dev));
    RF_DISPATCH(dev, bias_activation, act == RF_ACT_RELU ? "bias_relu" : "bias_gelu", y, pre, x, b, act);
}

rf_status rf_activation_backward(rf_tensor *dx, const rf_tensor *dy, const rf_tensor *x, rf_activation act) {
    const char *op = "rf_activation_backward";
    RF_TRY(check_act(op, act));
    if (!x || !x->buf) return rf_error(RF_ERR_INVALID_ARG, "%s: x is NULL", op);
    size_t n = rf_tensor_numel(x);
    RF_TRY(rf_check_numel(op, "x", x, RF_F32, n));
    RF_TRY(rf_check_numel(op, "dy", dy, RF_F32, n));
    RF_TRY(rf_check_numel(op, "dx", dx, RF_F32, n));
    rf_device *dev = dx->buf->dev;
    RF_TRY(rf_check_device(op, "x", x, dev));
    RF_TRY(rf_check_device(op, "dy", dy, dev));
    RF_DISPATCH(dev, activation_backward, act == RF_ACT_RELU ? "relu_backward" : "gelu_backward", dx, dy, x, act);
}
