/* The bias half of a linear layer on the cpu (§1): y += b per row, and
 * db += Σ_rows dy accumulated in double. */
#include "device/cpu/cpu_backend.h"

static rf_status rf_cpu_bias_add(rf_tensor *y, const rf_tensor *b) {
    size_t n = (size_t)b->shape[0], rows = rf_tensor_numel(y) / n;
    const float *bv = rf_cpu_f32(b);
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        float *yr = rf_cpu_f32(y) + r * n;
        for (size_t j = 0; j < n; j++) yr[j] += bv[j];
    }
    return RF_OK;
}

/* Columns per thread's block of db: each thread sums its own columns over
 * every row (so the sums' order, and the result, do not depend on the
 * thread count) with the block's accumulators in registers or L1. */
enum { BIAS_COLS = 64 };

static rf_status rf_cpu_bias_grad(rf_tensor *db, const rf_tensor *dy) {
    size_t n = (size_t)db->shape[0], rows = rf_tensor_numel(dy) / n;
    const float *dyv = rf_cpu_f32(dy);
    float *dbv = rf_cpu_f32(db);
#pragma omp parallel for schedule(static)
    for (size_t j0 = 0; j0 < n; j0 += BIAS_COLS) {
        size_t w = n - j0 < BIAS_COLS ? n - j0 : BIAS_COLS;
        double acc[BIAS_COLS] = {0};
        for (size_t r = 0; r < rows; r++) {
            const float *dyr = dyv + r * n + j0;
#pragma omp simd
            for (size_t j = 0; j < w; j++) acc[j] += dyr[j];
        }
        for (size_t j = 0; j < w; j++) dbv[j0 + j] += (float)acc[j];
    }
    return RF_OK;
}

void rf_cpu_linear_register(rf_op_table *ops) {
    ops->bias_add = rf_cpu_bias_add;
    ops->bias_grad = rf_cpu_bias_grad;
}
