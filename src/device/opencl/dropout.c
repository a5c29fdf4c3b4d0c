/* Dropout on OpenCL (cl/dropout.cl, §2): one work-item per Philox block of
 * four words, covering the blocks that words first .. first + n − 1 touch
 * (a block per element drew each block four times). Forward and backward
 * both call this. */
#include "device/opencl/cl_backend.h"

static rf_status rf_cl_dropout(rf_tensor *out, const rf_tensor *in, rf_dropout_threshold keep, float scale,
                               uint64_t seed,
                               uint32_t stream, uint32_t step, uint64_t first) {
    rf_device *dev = out->buf->dev;
    cl_kernel k;
    RF_TRY(rf_cl_kernel(dev, "dropout.cl", "", "dropout", &k));
    size_t local;
    RF_TRY(rf_cl_group_size(dev, k, RF_CL_GROUP, &local));
    cl_ulong n = rf_tensor_numel(out), oo = out->offset, io = in->offset, fw = first;
    cl_uint klo = (cl_uint)seed, khi = (cl_uint)(seed >> 32), st = stream, sp = step, thr = keep.threshold;
    cl_int drop_all = keep.drop_all;
    size_t global = (size_t)((fw + n + 3) / 4 - fw / 4);
    return RF_CL_LAUNCH(dev, k, "dropout", 1, &global, &local, RF_MEM(out), RF_ARG(oo),
                        RF_MEM(in), RF_ARG(io), RF_ARG(n), RF_ARG(fw), RF_ARG(klo), RF_ARG(khi), RF_ARG(st),
                        RF_ARG(sp), RF_ARG(thr), RF_ARG(drop_all), RF_ARG(scale));
}

void rf_cl_dropout_register(rf_op_table *ops) {
    ops->dropout = rf_cl_dropout;
}
