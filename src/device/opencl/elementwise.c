/* Elementwise ops on OpenCL (cl/elementwise.cl). */
#include "device/opencl/cl_backend.h"
#include "device/opencl/cl_ops.h"

rf_status rf_cl_add(rf_tensor *out, const rf_tensor *a, const rf_tensor *b, float alpha) {
    rf_device *dev = out->buf->dev;
    cl_kernel k;
    RF_TRY(rf_cl_kernel(dev, "elementwise.cl", "", "axpby", &k));
    size_t local;
    RF_TRY(rf_cl_group_size(dev, k, 256, &local));
    cl_ulong n = rf_tensor_numel(out), oo = out->offset, ao = a->offset, bo = b->offset;
    size_t global = (size_t)n;
    return RF_CL_LAUNCH(dev, k, "add", 1, &global, &local, RF_ARG(out->buf->mem), RF_ARG(oo), RF_ARG(a->buf->mem),
                        RF_ARG(ao), RF_ARG(b->buf->mem), RF_ARG(bo), RF_ARG(alpha), RF_ARG(n));
}
