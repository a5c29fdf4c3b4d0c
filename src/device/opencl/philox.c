/* rf_philox_fill on OpenCL (cl/philox.cl). */
#include "device/opencl/cl_backend.h"

static rf_status rf_cl_philox_fill(rf_tensor *out, uint64_t seed, uint32_t stream, uint32_t step,
                                   uint64_t first_block) {
    rf_device *dev = out->buf->dev;
    cl_kernel k;
    RF_TRY(rf_cl_kernel(dev, "philox.cl", "", "philox_fill", &k));
    size_t local;
    RF_TRY(rf_cl_group_size(dev, k, RF_CL_GROUP, &local));
    cl_ulong n = rf_tensor_numel(out), off = out->offset, first_ = first_block;
    cl_uint klo = (cl_uint)seed, khi = (cl_uint)(seed >> 32), st = stream, sp = step;
    cl_int as_float = out->dtype == RF_F32;
    size_t global = (size_t)n;
    return RF_CL_LAUNCH(dev, k, "philox_fill", 1, &global, &local, RF_MEM(out), RF_ARG(off), RF_ARG(n),
                        RF_ARG(klo), RF_ARG(khi), RF_ARG(st), RF_ARG(sp), RF_ARG(first_), RF_ARG(as_float));
}

void rf_cl_philox_register(rf_op_table *ops) {
    ops->philox_fill = rf_cl_philox_fill;
}
