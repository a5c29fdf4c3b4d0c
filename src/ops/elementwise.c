/* Elementwise ops' front door. */
#include "ops/ops_impl.h"
#include "device/cpu/cpu_ops.h"
#include "device/opencl/cl_ops.h"

rf_status rf_add(rf_tensor *out, const rf_tensor *a, const rf_tensor *b, float alpha) {
    const char *op = "rf_add";
    if (!out || !out->buf) return rf_error(RF_ERR_INVALID_ARG, "%s: out is NULL", op);
    rf_device *dev = out->buf->dev;
    RF_TRY(rf_check_device(op, "a", a, dev));
    RF_TRY(rf_check_device(op, "b", b, dev));
    if (out->dtype != RF_F32 || a->dtype != RF_F32 || b->dtype != RF_F32)
        return rf_error(RF_ERR_INVALID_ARG, "%s: all operands must be f32", op);
    size_t n = rf_tensor_numel(out);
    if (rf_tensor_numel(a) != n || rf_tensor_numel(b) != n)
        return rf_error(RF_ERR_INVALID_ARG, "%s: element counts differ (out %zu, a %zu, b %zu)", op, n,
                        rf_tensor_numel(a), rf_tensor_numel(b));
    uint64_t t0 = rf_op_begin();
    rf_status s = dev->kind == RF_DEVICE_CPU ? rf_cpu_add(out, a, b, alpha) : rf_cl_add(out, a, b, alpha);
    rf_op_end(dev, "add", t0);
    return s;
}
