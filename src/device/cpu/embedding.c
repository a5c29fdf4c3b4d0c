/* Embeddings on the cpu (§9): direct gathers and scatter-adds. Position
 * gradients are sums over the batch (and, for axial, the other axis),
 * accumulated in double. */
#include <stdlib.h>
#include <string.h>
#include "device/cpu/cpu_backend.h"

static rf_status rf_cpu_embedding_forward(rf_tensor *out, const rf_tensor *ids, const rf_tensor *table) {
    size_t d = (size_t)table->shape[1], n = rf_tensor_numel(ids);
    const int32_t *id = rf_cpu_i32(ids);
    for (size_t t = 0; t < n; t++) memcpy(rf_cpu_f32(out) + t * d, rf_cpu_f32(table) + (size_t)id[t] * d, d * sizeof(float));
    return RF_OK;
}

/* In position order, as the OpenCL kernel sums each row's positions. */
static rf_status rf_cpu_embedding_backward(rf_tensor *dtable, const rf_tensor *dout, const rf_tensor *ids) {
    size_t d = (size_t)dtable->shape[1], n = rf_tensor_numel(ids);
    const int32_t *id = rf_cpu_i32(ids);
    for (size_t t = 0; t < n; t++) {
        float *row = rf_cpu_f32(dtable) + (size_t)id[t] * d;
        const float *g = rf_cpu_f32(dout) + t * d;
        for (size_t c = 0; c < d; c++) row[c] += g[c];
    }
    return RF_OK;
}

/* Position p = i·s1 + j gets concat(E0[i], E1[j]) (§9). */
static rf_status rf_cpu_axial_position_forward(rf_tensor *out, const rf_tensor *e0, const rf_tensor *e1) {
    size_t b = (size_t)out->shape[0], l = (size_t)out->shape[1], d = (size_t)out->shape[2];
    size_t s1 = (size_t)e1->shape[0], d0 = (size_t)e0->shape[1], d1 = (size_t)e1->shape[1];
    for (size_t bi = 0; bi < b; bi++)
        for (size_t p = 0; p < l; p++) {
            float *o = rf_cpu_f32(out) + (bi * l + p) * d;
            const float *a = rf_cpu_f32(e0) + (p / s1) * d0, *c = rf_cpu_f32(e1) + (p % s1) * d1;
            for (size_t k = 0; k < d0; k++) o[k] += a[k];
            for (size_t k = 0; k < d1; k++) o[d0 + k] += c[k];
        }
    return RF_OK;
}

static rf_status rf_cpu_axial_position_backward(rf_tensor *de0, rf_tensor *de1, const rf_tensor *dout) {
    size_t b = (size_t)dout->shape[0], l = (size_t)dout->shape[1], d = (size_t)dout->shape[2];
    size_t s0 = (size_t)de0->shape[0], d0 = (size_t)de0->shape[1], s1 = (size_t)de1->shape[0],
           d1 = (size_t)de1->shape[1];
    double *a0 = calloc(s0 * d0 + s1 * d1 + 1, sizeof *a0), *a1 = a0 + s0 * d0;
    if (!a0) return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_axial_position_backward: no host memory");
    for (size_t bi = 0; bi < b; bi++)
        for (size_t p = 0; p < l; p++) {
            const float *g = rf_cpu_f32(dout) + (bi * l + p) * d;
            double *r0 = a0 + (p / s1) * d0, *r1 = a1 + (p % s1) * d1;
            for (size_t k = 0; k < d0; k++) r0[k] += g[k];
            for (size_t k = 0; k < d1; k++) r1[k] += g[d0 + k];
        }
    for (size_t k = 0; k < s0 * d0; k++) rf_cpu_f32(de0)[k] += (float)a0[k];
    for (size_t k = 0; k < s1 * d1; k++) rf_cpu_f32(de1)[k] += (float)a1[k];
    free(a0);
    return RF_OK;
}

static rf_status rf_cpu_position_embedding_forward(rf_tensor *out, const rf_tensor *table) {
    size_t b = (size_t)out->shape[0], l = (size_t)out->shape[1], d = (size_t)out->shape[2];
    for (size_t bi = 0; bi < b; bi++)
        for (size_t k = 0; k < l * d; k++) rf_cpu_f32(out)[bi * l * d + k] += rf_cpu_f32(table)[k];
    return RF_OK;
}

static rf_status rf_cpu_position_embedding_backward(rf_tensor *dtable, const rf_tensor *dout) {
    size_t b = (size_t)dout->shape[0], l = (size_t)dout->shape[1], d = (size_t)dout->shape[2];
    for (size_t k = 0; k < l * d; k++) {
        double s = 0;
        for (size_t bi = 0; bi < b; bi++) s += rf_cpu_f32(dout)[bi * l * d + k];
        rf_cpu_f32(dtable)[k] += (float)s;
    }
    return RF_OK;
}

void rf_cpu_embedding_register(rf_op_table *ops) {
    ops->embedding_forward = rf_cpu_embedding_forward;
    ops->embedding_backward = rf_cpu_embedding_backward;
    ops->axial_position_forward = rf_cpu_axial_position_forward;
    ops->axial_position_backward = rf_cpu_axial_position_backward;
    ops->position_embedding_forward = rf_cpu_position_embedding_forward;
    ops->position_embedding_backward = rf_cpu_position_embedding_backward;
}
