/* Activations on the cpu (§7): ReLU in float (exact either way), GELU in
 * its erf form in double; element-wise, split over the OpenMP threads. */
#include <math.h>
#include "device/cpu/cpu_backend.h"

static rf_status rf_cpu_activation_forward(rf_tensor *y, const rf_tensor *x, rf_activation act) {
    size_t n = rf_tensor_numel(x);
    const float *xv = rf_cpu_f32(x);
    float *yv = rf_cpu_f32(y);
    if (act == RF_ACT_RELU) {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) yv[i] = xv[i] > 0 ? xv[i] : 0;
        return RF_OK;
    }
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        double v = xv[i];
        yv[i] = (float)(0.5 * v * (1.0 + erf(v / sqrt(2.0))));
    }
    return RF_OK;
}

/* ReLU'(x) = [x > 0] (0 at 0, as PyTorch); GELU'(x) = Φ(x) + x·φ(x). */
static rf_status rf_cpu_activation_backward(rf_tensor *dx, const rf_tensor *dy, const rf_tensor *x, rf_activation act) {
    size_t n = rf_tensor_numel(x);
    const float *xv = rf_cpu_f32(x), *dyv = rf_cpu_f32(dy);
    float *dxv = rf_cpu_f32(dx);
    if (act == RF_ACT_RELU) {
        /* dy loaded unconditionally: a select, not a branch, so the loop vectorises. */
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) {
            const float g = dyv[i];
            dxv[i] = xv[i] > 0 ? g : 0.0f;
        }
        return RF_OK;
    }
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        double v = xv[i];
        double dv = 0.5 * (1.0 + erf(v / sqrt(2.0))) + v * exp(-0.5 * v * v) * 0.39894228040143267794 /* 1/√(2π) */;
        dxv[i] = (float)(dyv[i] * dv);
    }
    return RF_OK;
}

void rf_cpu_activation_register(rf_op_table *ops) {
    ops->activation_forward = rf_cpu_activation_forward;
    ops->activation_backward = rf_cpu_activation_backward;
}
