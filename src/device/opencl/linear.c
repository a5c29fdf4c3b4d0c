/* The bias half of a linear layer on OpenCL (cl/linear.cl); the products go
 * through rf_gemm (CLBlast). */
#include "device/opencl/cl_backend.h"
#include "device/opencl/cl_tune.h"

static rf_status rf_cl_bias_add(rf_tensor *y, const rf_tensor *b, float alpha) {
    rf_device *dev = y->buf->dev;
    cl_kernel k;
    RF_TRY(rf_cl_kernel(dev, "linear.cl", "", "bias_add", &k));
    cl_ulong yo = y->offset, bo = b->offset, n = (cl_ulong)b->shape[0], rows = rf_tensor_numel(y) / n;
    size_t local[2], global[2];
    RF_TRY(rf_cl_grid2(dev, k, (size_t)n, (size_t)rows, local, global));
    return RF_CL_LAUNCH(dev, k, "bias_add", 2, global, local, RF_MEM(y), RF_ARG(yo), RF_MEM(b), RF_ARG(bo),
                        RF_ARG(n), RF_ARG(rows), RF_ARG(alpha));
}

/* bias_grad's groups: C = "bias_grad.columns" (default 32: a warp reads 32
 * neighbouring words of a row), no wider than the columns' power of two;
 * S = "bias_grad.group" / C slices (default 256 items), as the kernel's and
 * device's limits allow. */
static rf_status rf_cl_bias_grad(rf_tensor *db, const rf_tensor *dy) {
    rf_device *dev = db->buf->dev;
    cl_kernel k;
    RF_TRY(rf_cl_kernel(dev, "linear.cl", "", "bias_grad", &k));
    cl_ulong dbo = db->offset, dyo = dy->offset, n = (cl_ulong)db->shape[0], rows = rf_tensor_numel(dy) / n;
    int want_columns = rf_cl_tuned(dev, "bias_grad.columns", 32), want_group = rf_cl_tuned(dev, "bias_grad.group", 256);
    size_t columns = 1, group;
    while ((int)columns * 2 <= want_columns && columns < n) columns *= 2;
    RF_TRY(rf_cl_group_size(dev, k, want_group > (int)columns ? (size_t)want_group : columns, &group));
    size_t local[2] = {columns < group ? columns : group, 0}, global[2] = {(size_t)n, 0};
    local[1] = global[1] = group / local[0];
    return RF_CL_LAUNCH(dev, k, "bias_grad", 2, global, local, RF_MEM(db), RF_ARG(dbo), RF_MEM(dy), RF_ARG(dyo),
                        RF_ARG(n), RF_ARG(rows), RF_LOCAL(group * sizeof(float)));
}

void rf_cl_linear_register(rf_op_table *ops) {
    ops->bias_add = rf_cl_bias_add;
    ops->bias_grad = rf_cl_bias_grad;
}
