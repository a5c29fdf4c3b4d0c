/* The optimiser (§9): AdamW's defaults, the learning-rate schedule (linear
 * warm-up, then inverse square root or cosine) and the step: the global
 * gradient norm, clipping, one AdamW update per parameter. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "device/device_impl.h"
#include "model/model_impl.h"
#include "ops/ops_impl.h"

rf_status rf_train_config_default(rf_train_config *tc) {
    if (!tc) return rf_error(RF_ERR_INVALID_ARG, "rf_train_config_default: tc is NULL");
    *tc = (rf_train_config){.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.0f,
                            .clip_norm = 1.0f, .warmup_steps = 100, .schedule = RF_SCHEDULE_INV_SQRT,
                            .total_steps = 0};
    return RF_OK;
}

float rf_train_lr(const rf_train_config *tc, int64_t step) {
    double s = (double)(step < 1 ? 1 : step), w = (double)tc->warmup_steps;
    if (w > 0 && s < w) return (float)(tc->lr * s / w);
    switch (tc->schedule) {
    case RF_SCHEDULE_INV_SQRT: return (float)(tc->lr * (w > 0 ? sqrt(w / s) : 1.0));
    case RF_SCHEDULE_COSINE: {
        double span = (double)tc->total_steps - w, t = span > 0 ? (s - w) / span : 1.0;
        if (t > 1) t = 1;
        return (float)(tc->lr * 0.5 * (1 + cos(3.14159265358979323846 * t)));
    }
    case RF_SCHEDULE_CONSTANT: break;
    }
    return tc->lr;
}

rf_status rf_model_step(rf_model *m, const rf_train_config *tc, int micro_batches, float *grad_norm) {
    const char *op = "rf_model_step";
    if (!m || !tc) return rf_error(RF_ERR_INVALID_ARG, "%s: null argument", op);
    if (!m->train) return rf_error(RF_ERR_INVALID_ARG, "%s: no gradients: call rf_model_backward first", op);
    if (micro_batches < 1) return rf_error(RF_ERR_INVALID_ARG, "%s: micro_batches = %d must be >= 1", op, micro_batches);
    if (!(tc->lr >= 0) || !(tc->clip_norm >= 0))
        return rf_error(RF_ERR_INVALID_ARG, "%s: lr %g and clip_norm %g must be >= 0", op, (double)tc->lr,
                        (double)tc->clip_norm);
    /* The global norm of the averaged gradient (§9). */
    rf_tensor sq;
    RF_TRY(rf_tensor_alloc(m->dev, &sq, RF_F32, 1, (int64_t[]){1}));
    double total = 0;
    rf_status r = RF_OK;
    for (int i = 0; r == RF_OK && i < m->nparams; i++) {
        float part = 0;
        r = rf_sum_squares(&sq, &m->train->grads[i]);
        if (r == RF_OK) r = rf_tensor_download(&sq, &part, sizeof part);
        total += part;
    }
    rf_tensor_free(&sq);
    RF_TRY(r);
    double norm = sqrt(total) / micro_batches;
    if (grad_norm) *grad_norm = (float)norm;
    if (!isfinite(norm)) {
        RF_TRY(rf_model_zero_grad(m));
        return rf_error(RF_ERR_NUMERIC, "%s: the gradient norm is %g at step %lld; the weights were not changed", op,
                        norm, (long long)m->train->steps + 1);
    }
    double scale = 1.0 / micro_batches;
    if (tc->clip_norm > 0 && norm > tc->clip_norm) scale *= tc->clip_norm / norm;
    int64_t step = m->train->steps + 1;
    rf_adam_config ac = {.lr = rf_train_lr(tc, step), .beta1 = tc->beta1, .beta2 = tc->beta2, .eps = tc->eps,
                         .weight_decay = tc->weight_decay, .grad_scale = (float)scale};
    for (int i = 0; i < m->nparams; i++)
        RF_TRY(rf_adam_update(&m->params[i].t, &m->train->adam_m[i], &m->train->adam_v[i], &m->train->grads[i], &ac, step));
    m->train->steps = step;
    return rf_model_zero_grad(m);
}
