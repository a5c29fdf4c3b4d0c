/* Elementwise ops on the cpu, split over the OpenMP threads. */
#include <string.h>
#include "device/cpu/cpu_backend.h"

static rf_status rf_cpu_add(rf_tensor *out, const rf_tensor *a, const rf_tensor *b, float alpha) {
    size_t n = rf_tensor_numel(out);
    float *o = rf_cpu_f32(out);
    const float *x = rf_cpu_f32(a), *y = rf_cpu_f32(b);
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) o[i] = x[i] + alpha * y[i];
    return RF_OK;
}

static rf_status rf_cpu_concat(rf_tensor *out, const rf_tensor *a, const rf_tensor *b, size_t rows, size_t w) {
    float *o = rf_cpu_f32(out);
    const float *x = rf_cpu_f32(a), *y = rf_cpu_f32(b);
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        memcpy(o + r * 2 * w, x + r * w, w * sizeof *o);
        memcpy(o + r * 2 * w + w, y + r * w, w * sizeof *o);
    }
    return RF_OK;
}

static rf_status rf_cpu_split(rf_tensor *a, rf_tensor *b, const rf_tensor *in, size_t rows, size_t w) {
    const float *i = rf_cpu_f32(in);
    float *x = rf_cpu_f32(a), *y = rf_cpu_f32(b);
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        memcpy(x + r * w, i + r * 2 * w, w * sizeof *x);
        memcpy(y + r * w, i + r * 2 * w + w, w * sizeof *y);
    }
    return RF_OK;
}

void rf_cpu_elementwise_register(rf_op_table *ops) {
    ops->add = rf_cpu_add;
    ops->concat = rf_cpu_concat;
    ops->split = rf_cpu_split;
}
