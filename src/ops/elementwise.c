/* Elementwise ops' front door. */
#include "ops/ops_impl.h"

rf_status rf_add(rf_tensor *out, const rf_tensor *a, const rf_tensor *b, float alpha) {
    const char *op = "rf_add";
    if (!out || !out->buf) return rf_error(RF_ERR_INVALID_ARG, "%s: out is NULL", op);
    rf_device *dev = out->buf->dev;
    RF_TRY(rf_check_device(op, "a", a, dev));
    RF_TRY(rf_check_device(op, "b", b, dev));
    if (out->dtype != RF_F32 || a->dtype != RF_F32 || b->dtype != RF_F32)
        return rf_error(RF_ERR_INVALID_ARG, "%s: all operands must be f32", op);
    size_t n = rf_tensor_numel(out);
    if (rf_tensor_numel(a) != n || rf_tensor_numel(b) != n)
        return rf_error(RF_ERR_INVALID_ARG, "%s: element counts differ (out %zu, a %zu, b %zu)", op, n,
                        rf_tensor_numel(a), rf_tensor_numel(b));
    RF_DISPATCH(dev, add, "add", out, a, b, alpha);
}

/* a, b [..., w] and the joined [..., 2w]: same rank, same leading dims. */
static rf_status check_halves(const char *op, const rf_tensor *joined, const rf_tensor *a, const rf_tensor *b,
                              size_t *rows, size_t *w) {
    if (!joined || !joined->buf || !a || !a->buf || !b || !b->buf)
        return rf_error(RF_ERR_INVALID_ARG, "%s: a NULL tensor", op);
    rf_device *dev = joined->buf->dev;
    RF_TRY(rf_check_device(op, "a", a, dev));
    RF_TRY(rf_check_device(op, "b", b, dev));
    int nd = joined->ndim;
    int64_t half = joined->shape[nd - 1] / 2;
    if (joined->shape[nd - 1] % 2) return rf_error(RF_ERR_INVALID_ARG, "%s: the joined width %lld is odd", op, (long long)joined->shape[nd - 1]);
    int64_t want[RF_MAX_DIMS];
    for (int i = 0; i < nd; i++) want[i] = joined->shape[i];
    want[nd - 1] = half;
    RF_TRY(rf_check_tensor(op, "a", a, RF_F32, nd, want));
    RF_TRY(rf_check_tensor(op, "b", b, RF_F32, nd, want));
    if (joined->dtype != RF_F32) return rf_error(RF_ERR_INVALID_ARG, "%s: the joined tensor must be f32", op);
    *w = (size_t)half;
    *rows = rf_tensor_numel(a) / *w;
    return RF_OK;
}

rf_status rf_concat(rf_tensor *out, const rf_tensor *a, const rf_tensor *b) {
    size_t rows, w;
    RF_TRY(check_halves("rf_concat", out, a, b, &rows, &w));
    rf_device *dev = out->buf->dev;
    RF_DISPATCH(dev, concat, "concat", out, a, b, rows, w);
}

rf_status rf_split(rf_tensor *a, rf_tensor *b, const rf_tensor *in) {
    size_t rows, w;
    RF_TRY(check_halves("rf_split", in, a, b, &rows, &w));
    rf_device *dev = in->buf->dev;
    RF_DISPATCH(dev, split, "split", a, b, in, rows, w);
}
