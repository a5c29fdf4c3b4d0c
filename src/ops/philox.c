/* rf_philox_fill's front door (§2). */
#include "ops/ops_impl.h"

rf_status rf_philox_fill(rf_tensor *out, uint64_t seed, uint32_t stream, uint32_t step, uint64_t first_block) {
    const char *op = "rf_philox_fill";
    if (!out || !out->buf) return rf_error(RF_ERR_INVALID_ARG, "%s: out is NULL", op);
    if (out->dtype != RF_F32 && out->dtype != RF_I32)
        return rf_error(RF_ERR_INVALID_ARG, "%s: out must be i32 (words) or f32 (uniforms)", op);
    size_t n = rf_tensor_numel(out);
    if (n && first_block > UINT64_MAX - (n - 1) / 4)
        return rf_error(RF_ERR_INVALID_ARG, "%s: first_block = %llu + %zu elements overflows the 64-bit block counter",
                        op, (unsigned long long)first_block, n);
    rf_device *dev = out->buf->dev;
    RF_DISPATCH(dev, philox_fill, "philox_fill", out, seed, stream, step, first_block);
}
