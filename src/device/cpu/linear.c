/* The bias half of a linear layer on the cpu (§1): y += alpha·b per row, and
 * db += Σ_rows dy accumulated in double. */
#include <stdlib.h>
#include "device/cpu/cpu_backend.h"

static rf_status rf_cpu_bias_add(rf_tensor *y, const rf_tensor *b, float alpha) {
    size_t n = (size_t)b->shape[0], rows = rf_tensor_numel(y) / n;
    const float *bv = rf_cpu_f32(b);
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        float *yr = rf_cpu_f32(y) + r * n;
        for (size_t j = 0; j < n; j++) yr[j] += alpha * bv[j];
    }
    return RF_OK;
}

/* Each thread sums its rows' columns in double, then the threads' sums are
 * added (as LayerNorm's parameter gradients, norm.c). */
static rf_status rf_cpu_bias_grad(rf_tensor *db, const rf_tensor *dy) {
    size_t n = (size_t)db->shape[0], rows = rf_tensor_numel(dy) / n;
    double *acc = calloc(n, sizeof *acc);
    if (!acc) return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_linear_backward: no host memory for %zu columns", n);
    bool oom = false;
#pragma omp parallel reduction(|| : oom)
    {
        double *mine = calloc(n, sizeof *mine);
        oom = !mine;
#pragma omp for schedule(static)
        for (size_t r = 0; r < rows; r++) {
            if (oom) continue;
            const float *dyr = rf_cpu_f32(dy) + r * n;
#pragma omp simd
            for (size_t j = 0; j < n; j++) mine[j] += dyr[j];
        }
        if (!oom) {
#pragma omp critical(rf_cpu_bias_grad_sums)
            for (size_t j = 0; j < n; j++) acc[j] += mine[j];
        }
        free(mine);
    }
    if (oom) {
        free(acc);
        return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_linear_backward: no host memory for %zu columns", n);
    }
    float *dbv = rf_cpu_f32(db);
    for (size_t j = 0; j < n; j++) dbv[j] += (float)acc[j];
    free(acc);
    return RF_OK;
}

void rf_cpu_linear_register(rf_op_table *ops) {
    ops->bias_add = rf_cpu_bias_add;
    ops->bias_grad = rf_cpu_bias_grad;
}
