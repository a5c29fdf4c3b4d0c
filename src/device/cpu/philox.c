/* rf_philox_fill on the cpu: the host generator of src/core/philox.c. */
#include "device/cpu/cpu_backend.h"
#include "core/philox.h"

static rf_status rf_cpu_philox_fill(rf_tensor *out, uint64_t seed, uint32_t stream, uint32_t step,
                                    uint64_t first_block) {
    size_t n = rf_tensor_numel(out);
    uint32_t *w = (uint32_t *)rf_cpu_i32(out); /* same storage for f32: the uniforms overwrite in place */
    rf_philox_words(w, n, seed, stream, step, first_block);
    if (out->dtype == RF_F32) {
        float *u = rf_cpu_f32(out);
        for (size_t i = 0; i < n; i++) u[i] = rf_philox_uniform(w[i]);
    }
    return RF_OK;
}

void rf_cpu_philox_register(rf_op_table *ops) {
    ops->philox_fill = rf_cpu_philox_fill;
}
