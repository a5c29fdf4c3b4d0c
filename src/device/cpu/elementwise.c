/* Elementwise ops on the cpu. */
#include "device/device_impl.h"
#include "device/cpu/cpu_ops.h"

rf_status rf_cpu_add(rf_tensor *out, const rf_tensor *a, const rf_tensor *b, float alpha) {
    size_t n = rf_tensor_numel(out);
    float *o = rf_cpu_f32(out);
    const float *x = rf_cpu_f32(a), *y = rf_cpu_f32(b);
    for (size_t i = 0; i < n; i++) o[i] = x[i] + alpha * y[i];
    return RF_OK;
}
