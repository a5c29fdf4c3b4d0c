/* The optimiser on the cpu (§9): the AdamW formulas of ops.h element by
 * element, and a double-accumulated sum of squares. */
#include <math.h>
#include "device/cpu/cpu_backend.h"

static rf_status rf_cpu_adam_update(rf_tensor *param, rf_tensor *m, rf_tensor *v, const rf_tensor *grad,
                                    const rf_adam_config *cfg, float bc1, float bc2) {
    size_t n = rf_tensor_numel(param);
    float *p = rf_cpu_f32(param), *mv = rf_cpu_f32(m), *vv = rf_cpu_f32(v);
    const float *g = rf_cpu_f32(grad);
    for (size_t i = 0; i < n; i++) {
        double gi = (double)cfg->grad_scale * g[i];
        double mi = cfg->beta1 * (double)mv[i] + (1.0 - cfg->beta1) * gi;
        double vi = cfg->beta2 * (double)vv[i] + (1.0 - cfg->beta2) * gi * gi;
        double pi = (double)p[i] * (1.0 - (double)cfg->lr * cfg->weight_decay); /* decoupled decay, first */
        pi -= (double)cfg->lr * (mi / bc1) / (sqrt(vi / bc2) + cfg->eps);
        mv[i] = (float)mi, vv[i] = (float)vi, p[i] = (float)pi;
    }
    return RF_OK;
}

static rf_status rf_cpu_sum_squares(rf_tensor *out, const rf_tensor *x) {
    size_t n = rf_tensor_numel(x);
    const float *xv = rf_cpu_f32(x);
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)xv[i] * xv[i];
    rf_cpu_f32(out)[0] = (float)s;
    return RF_OK;
}

void rf_cpu_optim_register(rf_op_table *ops) {
    ops->adam_update = rf_cpu_adam_update;
    ops->sum_squares = rf_cpu_sum_squares;
}
