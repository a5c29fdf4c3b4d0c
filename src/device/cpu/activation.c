/* Activations on the cpu (§7): ReLU in float (exact either way), GELU in
 * its erf form in double; element-wise, split over the OpenMP threads. */
#include <math.h>
#include "device/cpu/cpu_backend.h"

/* GELU in its erf form, in double, rounded once to float. */
static float gelu(float x) {
    double v = x;
    return (float)(0.5 * v * (1.0 + erf(v / sqrt(2.0))));
}

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
    for (size_t i = 0; i < n; i++) yv[i] = gelu(xv[i]);
    return RF_OK;
}

/* y = act(x + b) row by row, pre = x + b when asked; x, y and pre may be
 * one tensor, so each element is read before it is written. */
static rf_status rf_cpu_bias_activation(rf_tensor *y, rf_tensor *pre, const rf_tensor *x, const rf_tensor *b,
                                        rf_activation act) {
    const size_t n = (size_t)b->shape[0], rows = rf_tensor_numel(x) / n;
    const float *bv = rf_cpu_f32(b);
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        const float *xr = rf_cpu_f32(x) + r * n;
        float *yr = rf_cpu_f32(y) + r * n, *pr = pre ? rf_cpu_f32(pre) + r * n : NULL;
        if (act == RF_ACT_RELU && pr) {
#pragma omp simd
            for (size_t j = 0; j < n; j++) {
                const float v = xr[j] + bv[j];
                pr[j] = v;
                yr[j] = v > 0 ? v : 0;
            }
        } else if (act == RF_ACT_RELU) {
#pragma omp simd
            for (size_t j = 0; j < n; j++) {
                const float v = xr[j] + bv[j];
                yr[j] = v > 0 ? v : 0;
            }
        } else {
            for (size_t j = 0; j < n; j++) {
                const float v = xr[j] + bv[j];
                if (pr) pr[j] = v;
                yr[j] = gelu(v);
            }
        }
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
    ops->bias_activation = rf_cpu_bias_activation;
}
