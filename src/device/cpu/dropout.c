/* Dropout on the cpu (SPEC §2), the reference: element i of the tensor uses
 * word i of the Philox stream (seed, stream, step), i.e. lane i % 4 of block
 * i / 4, and out[i] = in[i] · (keep ? scale : 0). Forward and backward both
 * call this (the backward applies the same mask to the gradient). */
#include "device/device_impl.h"
#include "device/cpu/cpu_ops.h"

rf_status rf_cpu_dropout(rf_tensor *out, const rf_tensor *in, rf_dropout_threshold keep, float scale, uint64_t seed,
                         uint32_t stream, uint32_t step) {
    enum { CHUNK = 256 }; /* words per rf_philox_words call: a multiple of 4, so chunks start on a block */
    size_t n = rf_tensor_numel(out);
    float *o = rf_cpu_f32(out);
    const float *x = rf_cpu_f32(in);
    uint32_t w[CHUNK];
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t m = n - i < CHUNK ? n - i : CHUNK;
        rf_philox_words(w, m, seed, stream, step, i / 4);
        /* A multiply, not a select, as §2's in · keep / (1 − p) and torch:
         * a dropped NaN or ±Inf stays NaN. out may alias in: element i is
         * read before it is written. */
        for (size_t j = 0; j < m; j++) o[i + j] = x[i + j] * (rf_philox_keep(w[j], keep) ? scale : 0.0f);
    }
    return RF_OK;
}
