/* The loss's front door (§9): cross-entropy with an ignore index (−1) over
 * targets the caller has already shifted. The targets are checked on the
 * host, which also counts the positions the mean is over. */
#include <math.h>
#include "ops/ops_impl.h"

/* logits [..., V]; targets (i32) and lse (f32) one element per row; every
 * tensor on logits' device. */
static rf_status check_rows(const char *op, const rf_tensor *logits, const rf_tensor *lse, const rf_tensor *targets,
                            size_t *rows) {
    if (!logits || !logits->buf) return rf_error(RF_ERR_INVALID_ARG, "%s: logits is NULL", op);
    if (logits->dtype != RF_F32 || logits->ndim < 1 || logits->shape[logits->ndim - 1] <= 0)
        return rf_error(RF_ERR_INVALID_ARG, "%s: logits must be f32 [..., V] with V > 0", op);
    *rows = rf_tensor_numel(logits) / (size_t)logits->shape[logits->ndim - 1];
    RF_TRY(rf_check_numel(op, "targets", targets, RF_I32, *rows));
    RF_TRY(rf_check_numel(op, "lse", lse, RF_F32, *rows));
    rf_device *dev = logits->buf->dev;
    RF_TRY(rf_check_device(op, "targets", targets, dev));
    RF_TRY(rf_check_device(op, "lse", lse, dev));
    return RF_OK;
}

rf_status rf_cross_entropy_forward(rf_tensor *loss, rf_tensor *lse, const rf_tensor *logits,
                                   const rf_tensor *targets) {
    const char *op = "rf_cross_entropy_forward";
    size_t rows;
    RF_TRY(check_rows(op, logits, lse, targets, &rows));
    RF_TRY(rf_check_numel(op, "loss", loss, RF_F32, 1));
    rf_device *dev = logits->buf->dev;
    RF_TRY(rf_check_device(op, "loss", loss, dev));
    int64_t counted;
    RF_TRY(rf_check_ids(op, "targets", targets, logits->shape[logits->ndim - 1], 1, &counted));
    RF_DISPATCH(dev, cross_entropy_forward, "cross_entropy", loss, lse, logits, targets, counted);
}

rf_status rf_cross_entropy_backward(rf_tensor *dlogits, const rf_tensor *logits, const rf_tensor *lse,
                                    const rf_tensor *targets, float dloss) {
    const char *op = "rf_cross_entropy_backward";
    size_t rows;
    RF_TRY(check_rows(op, logits, lse, targets, &rows));
    RF_TRY(rf_check_tensor(op, "dlogits", dlogits, RF_F32, logits->ndim, logits->shape));
    rf_device *dev = logits->buf->dev;
    RF_TRY(rf_check_device(op, "dlogits", dlogits, dev));
    if (!isfinite(dloss)) return rf_error(RF_ERR_INVALID_ARG, "%s: dloss = %g is not finite", op, (double)dloss);
    int64_t counted;
    RF_TRY(rf_check_ids(op, "targets", targets, logits->shape[logits->ndim - 1], 1, &counted));
    /* The loss is a mean over counted positions: each one carries 1/counted. */
    float scale = counted ? dloss / (float)counted : 0.0f;
    RF_DISPATCH(dev, cross_entropy_backward, "cross_entropy_backward", dlogits, logits, lse, targets, scale);
}
