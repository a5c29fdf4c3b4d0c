/* Cross-entropy on the cpu (§9): a max-shifted logsumexp per row and the
 * mean over counted rows. Rows are independent and split over the OpenMP
 * threads; each exponential is a float expf (within an ulp, and its argument
 * is ≤ 0), its row's sum and the mean are in double. */
#include <math.h>
#include "device/cpu/cpu_backend.h"

static rf_status rf_cpu_cross_entropy_forward(rf_tensor *loss, rf_tensor *lse, const rf_tensor *logits,
                                              const rf_tensor *targets, int64_t counted) {
    const size_t v = (size_t)logits->shape[logits->ndim - 1], rows = rf_tensor_numel(logits) / v;
    const int32_t *t = rf_cpu_i32(targets);
    double total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (size_t r = 0; r < rows; r++) {
        const float *x = rf_cpu_f32(logits) + r * v;
        float mx = x[0];
        for (size_t j = 1; j < v; j++) mx = x[j] > mx ? x[j] : mx;
        double s = 0;
        for (size_t j = 0; j < v; j++) s += expf(x[j] - mx);
        const double l = mx + log(s);
        rf_cpu_f32(lse)[r] = (float)l;
        if (t[r] >= 0) total += l - x[t[r]];
    }
    rf_cpu_f32(loss)[0] = counted ? (float)(total / (double)counted) : 0.0f;
    return RF_OK;
}

/* dlogits = scale · (softmax − onehot(target)); 0 on ignored rows. */
static rf_status rf_cpu_cross_entropy_backward(rf_tensor *dlogits, const rf_tensor *logits, const rf_tensor *lse,
                                               const rf_tensor *targets, float scale) {
    const size_t v = (size_t)logits->shape[logits->ndim - 1], rows = rf_tensor_numel(logits) / v;
    const int32_t *t = rf_cpu_i32(targets);
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        const float *x = rf_cpu_f32(logits) + r * v;
        float *dx = rf_cpu_f32(dlogits) + r * v;
        const float l = rf_cpu_f32(lse)[r];
        for (size_t j = 0; j < v; j++) dx[j] = t[r] < 0 ? 0.0f : scale * expf(x[j] - l);
        if (t[r] >= 0) dx[t[r]] -= scale;
    }
    return RF_OK;
}

void rf_cpu_loss_register(rf_op_table *ops) {
    ops->cross_entropy_forward = rf_cpu_cross_entropy_forward;
    ops->cross_entropy_backward = rf_cpu_cross_entropy_backward;
}
