/* Dropout on the cpu (§2), the reference: element i of the tensor uses
 * word first + i of the Philox stream (seed, stream, step), i.e. lane
 * (first + i) % 4 of block (first + i) / 4, and out[i] = in[i] · (keep ?
 * scale : 0). Forward and backward both call this (the backward applies the
 * same mask to the gradient). */
#include "device/cpu/cpu_backend.h"

static rf_status rf_cpu_dropout(rf_tensor *out, const rf_tensor *in, rf_dropout_threshold keep, float scale,
                                uint64_t seed,
                                uint32_t stream, uint32_t step, uint64_t first) {
    size_t n = rf_tensor_numel(out);
    float *o = rf_cpu_f32(out);
    const float *x = rf_cpu_f32(in);
    uint32_t w[4];
    uint64_t block = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        uint64_t word = first + i;
        if (word / 4 != block) {
            block = word / 4;
            rf_philox_words(w, 4, seed, stream, step, block);
        }
        /* A multiply, not a select, as §2's in · keep / (1 − p) and torch:
         * a dropped NaN or ±Inf stays NaN. out may alias in: element i is
         * read before it is written. */
        o[i] = x[i] * (rf_philox_keep(w[word % 4], keep) ? scale : 0.0f);
    }
    return RF_OK;
}

void rf_cpu_dropout_register(rf_op_table *ops) {
    ops->dropout = rf_cpu_dropout;
}
