/* LayerNorm on the cpu (§7, §9). Row statistics are summed in double
 * (`omp simd` reductions, so they vectorise); the per-element formulas then
 * run in float, which is all the output keeps. The backward's parameter
 * gradients are column sums over rows: each thread sums its rows in double,
 * and the threads' sums are added at the end. */
#include <math.h>
#include <stdlib.h>
#include "device/cpu/cpu_backend.h"

static rf_status rf_cpu_layer_norm_forward(rf_tensor *y, rf_tensor *mean, rf_tensor *rstd, const rf_tensor *x,
                                           const rf_tensor *gamma, const rf_tensor *beta, float eps) {
    const size_t d = (size_t)x->shape[x->ndim - 1], rows = rf_tensor_numel(x) / d;
    const float *g = rf_cpu_f32(gamma), *b = rf_cpu_f32(beta);
#pragma omp parallel for schedule(static) /* rows are independent */
    for (size_t r = 0; r < rows; r++) {
        const float *xr = rf_cpu_f32(x) + r * d;
        float *yr = rf_cpu_f32(y) + r * d; /* may be xr: each element is read before it is written */
        double sum = 0, var = 0;
#pragma omp simd reduction(+ : sum)
        for (size_t i = 0; i < d; i++) sum += xr[i];
        const double mu = sum / (double)d;
#pragma omp simd reduction(+ : var)
        for (size_t i = 0; i < d; i++) var += ((double)xr[i] - mu) * ((double)xr[i] - mu);
        const double rs = 1.0 / sqrt(var / (double)d + (double)eps); /* biased variance, as torch.nn.LayerNorm */
        const float muf = (float)mu, rsf = (float)rs;
#pragma omp simd
        for (size_t i = 0; i < d; i++) yr[i] = (xr[i] - muf) * rsf * g[i] + b[i];
        if (mean) rf_cpu_f32(mean)[r] = muf;
        if (rstd) rf_cpu_f32(rstd)[r] = rsf;
    }
    return RF_OK;
}

/* With x̂ = (x − mean)·rstd and g = dy·gamma:
 *   dx = rstd · (g − mean(g) − x̂ · mean(g·x̂)),  dgamma += Σ dy·x̂,  dbeta += Σ dy. */
static rf_status rf_cpu_layer_norm_backward(rf_tensor *dx, rf_tensor *dgamma, rf_tensor *dbeta, const rf_tensor *dy,
                                            const rf_tensor *x, const rf_tensor *gamma, const rf_tensor *mean,
                                            const rf_tensor *rstd) {
    const size_t d = (size_t)x->shape[x->ndim - 1], rows = rf_tensor_numel(x) / d;
    const float *g = rf_cpu_f32(gamma);
    double *total = calloc(2 * d, sizeof *total); /* Σ dy·x̂ and Σ dy per column, over all threads */
    if (!total) return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_layer_norm_backward: no host memory for %zu columns", d);
    bool oom = false;
#pragma omp parallel reduction(|| : oom)
    {
        double *sg = calloc(2 * d, sizeof *sg); /* this thread's rows' sums */
        oom = !sg;
#pragma omp for schedule(static)
        for (size_t r = 0; r < rows; r++) {
            if (oom) continue;
            const float *xr = rf_cpu_f32(x) + r * d, *dyr = rf_cpu_f32(dy) + r * d;
            float *dxr = rf_cpu_f32(dx) + r * d; /* may be dyr: read before written, element by element */
            const float mu = rf_cpu_f32(mean)[r], rs = rf_cpu_f32(rstd)[r];
            double mg = 0, mgx = 0;
#pragma omp simd reduction(+ : mg, mgx)
            for (size_t i = 0; i < d; i++) {
                const double xh = (xr[i] - mu) * rs, gi = dyr[i] * g[i];
                mg += gi;
                mgx += gi * xh;
                sg[i] += dyr[i] * xh;
                sg[d + i] += dyr[i];
            }
            const float mgf = (float)(mg / (double)d), mgxf = (float)(mgx / (double)d);
#pragma omp simd
            for (size_t i = 0; i < d; i++) dxr[i] = rs * (dyr[i] * g[i] - mgf - (xr[i] - mu) * rs * mgxf);
        }
        if (!oom) {
#pragma omp critical(rf_cpu_layer_norm_sums)
            for (size_t i = 0; i < 2 * d; i++) total[i] += sg[i];
        }
        free(sg);
    }
    if (oom) {
        free(total);
        return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_layer_norm_backward: no host memory for %zu columns", d);
    }
    for (size_t i = 0; i < d; i++) {
        if (dgamma) rf_cpu_f32(dgamma)[i] += (float)total[i];
        if (dbeta) rf_cpu_f32(dbeta)[i] += (float)total[d + i];
    }
    free(total);
    return RF_OK;
}

void rf_cpu_norm_register(rf_op_table *ops) {
    ops->layer_norm_forward = rf_cpu_layer_norm_forward;
    ops->layer_norm_backward = rf_cpu_layer_norm_backward;
}
