/* rf_dropout_forward / rf_dropout_backward's front door (§2). The
 * backward is the forward applied to the gradient: dropout is the linear map
 * x ↦ x · keep / (1 − p) with a mask regenerated from Philox, so both share
 * one check and one backend entry. */
#include <math.h>
#include "ops/ops_impl.h"

static rf_status dropout(const char *op, const char *prof, const char *out_name, const char *in_name, rf_tensor *out,
                         const rf_tensor *in, float p, uint64_t seed, uint32_t stream, uint32_t step, uint64_t first) {
    if (!in || !in->buf) return rf_error(RF_ERR_INVALID_ARG, "%s: %s is NULL", op, in_name);
    if (in->dtype != RF_F32) return rf_error(RF_ERR_INVALID_ARG, "%s: %s must be f32", op, in_name);
    /* out has in's shape exactly (not merely its element count): dropout is
     * elementwise and a reshaping caller passes a view. */
    RF_TRY(rf_check_tensor(op, out_name, out, RF_F32, in->ndim, in->shape));
    rf_device *dev = in->buf->dev;
    RF_TRY(rf_check_device(op, out_name, out, dev));
    /* p = 1 is refused, as the config refuses it (src/model/config.c): its
     * scale 1/(1 − p) is infinite and HF never uses it. NaN fails too. */
    if (!(p >= 0.0f && p < 1.0f)) return rf_error(RF_ERR_INVALID_ARG, "%s: p = %g must lie in [0, 1)", op, (double)p);
    /* Computed once here, in float, so both backends multiply by the same
     * scale and the outputs agree bit for bit. p < 1 never gives drop_all. */
    rf_dropout_threshold keep = rf_philox_dropout_threshold(p);
    float scale = 1.0f / (1.0f - p);
    RF_DISPATCH(dev, dropout, prof, out, in, keep, scale, seed, stream, step, first);
}

rf_status rf_dropout_forward(rf_tensor *out, const rf_tensor *in, float p, uint64_t seed, uint32_t stream,
                             uint32_t step, uint64_t first) {
    return dropout("rf_dropout_forward", "dropout_forward", "out", "in", out, in, p, seed, stream, step, first);
}

rf_status rf_dropout_backward(rf_tensor *din, const rf_tensor *dout, float p, uint64_t seed, uint32_t stream,
                              uint32_t step, uint64_t first) {
    return dropout("rf_dropout_backward", "dropout_backward", "din", "dout", din, dout, p, seed, stream, step, first);
}
