/* LayerNorm on the cpu (§7, §9): the direct formulas, statistics and
 * parameter-gradient sums accumulated in double. */
#include <math.h>
#include <stdlib.h>
#include "device/cpu/cpu_backend.h"

static rf_status rf_cpu_layer_norm_forward(rf_tensor *y, rf_tensor *mean, rf_tensor *rstd, const rf_tensor *x,
                                           const rf_tensor *gamma, const rf_tensor *beta, float eps) {
    size_t d = (size_t)x->shape[x->ndim - 1], rows = rf_tensor_numel(x) / d;
    const float *g = rf_cpu_f32(gamma), *b = rf_cpu_f32(beta);
#pragma omp parallel for schedule(static) /* rows are independent */
    for (size_t r = 0; r < rows; r++) {
        const float *xr = rf_cpu_f32(x) + r * d;
        float *yr = rf_cpu_f32(y) + r * d;
        double mu = 0, var = 0;
        for (size_t i = 0; i < d; i++) mu += xr[i];
        mu /= (double)d;
        for (size_t i = 0; i < d; i++) var += ((double)xr[i] - mu) * ((double)xr[i] - mu);
        var /= (double)d; /* biased, as torch.nn.LayerNorm */
        double rs = 1.0 / sqrt(var + (double)eps);
        for (size_t i = 0; i < d; i++) yr[i] = (float)(((double)xr[i] - mu) * rs * g[i] + b[i]);
        if (mean) rf_cpu_f32(mean)[r] = (float)mu;
        if (rstd) rf_cpu_f32(rstd)[r] = (float)rs;
    }
    return RF_OK;
}

/* With x̂ = (x − mean)·rstd and g = dy·gamma:
 *   dx = rstd · (g − mean(g) − x̂ · mean(g·x̂)),  dgamma += Σ dy·x̂,  dbeta += Σ dy. */
static rf_status rf_cpu_layer_norm_backward(rf_tensor *dx, rf_tensor *dgamma, rf_tensor *dbeta, const rf_tensor *dy,
                                            const rf_tensor *x, const rf_tensor *gamma, const rf_tensor *mean,
                                            const rf_tensor *rstd) {
    size_t d = (size_t)x->shape[x->ndim - 1], rows = rf_tensor_numel(x) / d;
    const float *g = rf_cpu_f32(gamma);
    double *sg = calloc(2 * d, sizeof *sg); /* Σ dy·x̂ and Σ dy per column */
    if (!sg) return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_layer_norm_backward: no host memory for %zu columns", d);
    for (size_t r = 0; r < rows; r++) {
        const float *xr = rf_cpu_f32(x) + r * d, *dyr = rf_cpu_f32(dy) + r * d;
        float *dxr = rf_cpu_f32(dx) + r * d;
        double mu = rf_cpu_f32(mean)[r], rs = rf_cpu_f32(rstd)[r];
        double mg = 0, mgx = 0;
        for (size_t i = 0; i < d; i++) {
            double xh = ((double)xr[i] - mu) * rs, gi = (double)dyr[i] * g[i];
            mg += gi;
            mgx += gi * xh;
            sg[i] += (double)dyr[i] * xh;
            sg[d + i] += dyr[i];
        }
        mg /= (double)d;
        mgx /= (double)d;
        for (size_t i = 0; i < d; i++) {
            double xh = ((double)xr[i] - mu) * rs;
            dxr[i] = (float)(rs * ((double)dyr[i] * g[i] - mg - xh * mgx));
        }
    }
    for (size_t i = 0; i < d; i++) {
        if (dgamma) rf_cpu_f32(dgamma)[i] += (float)sg[i];
        if (dbeta) rf_cpu_f32(dbeta)[i] += (float)sg[d + i];
    }
    free(sg);
    return RF_OK;
}

void rf_cpu_norm_register(rf_op_table *ops) {
    ops->layer_norm_forward = rf_cpu_layer_norm_forward;
    ops->layer_norm_backward = rf_cpu_layer_norm_backward;
}
