/* Cross-entropy on OpenCL (cl/loss.cl): a work-group per row for the
 * logsumexp, one work-group for the mean, one work-item per logit for the
 * gradient. Group sizes from the kernels' and device's limits (≤ 256 floats
 * of local scratch). The CPU shape (rf_cl_attn_shape): a work-item per row
 * for the logsumexp and the gradient (*_rows). */
#include "device/opencl/cl_backend.h"

/* Work-items per group of the CPU shape (a group runs as a loop on one core;
 * the measurements: norm.c). */
#define ROWS_GROUP 16

static rf_status rf_cl_cross_entropy_forward(rf_tensor *loss, rf_tensor *lse, const rf_tensor *logits,
                                             const rf_tensor *targets, int64_t counted) {
    rf_device *dev = logits->buf->dev;
    rf_cl_shape shape;
    RF_TRY(rf_cl_attn_shape(dev, &shape));
    cl_kernel klse, kmean;
    cl_ulong v = (cl_ulong)logits->shape[logits->ndim - 1], rows = rf_tensor_numel(logits) / v;
    cl_ulong lo = lse->offset, xo = logits->offset, to = targets->offset, oo = loss->offset;
    size_t rl[2], rg[2], scratch, local, global;
    if (shape == RF_CL_SHAPE_CPU) {
        RF_TRY(rf_cl_kernel(dev, "loss.cl", "", "cross_entropy_lse_rows", &klse));
        RF_TRY(rf_cl_group_size(dev, klse, ROWS_GROUP, &local));
        global = (size_t)rows;
        RF_TRY(RF_CL_LAUNCH(dev, klse, "cross_entropy", 1, &global, &local, RF_MEM(lse), RF_ARG(lo),
                            RF_MEM(logits), RF_ARG(xo), RF_ARG(rows), RF_ARG(v)));
    } else {
        RF_TRY(rf_cl_kernel(dev, "loss.cl", "", "cross_entropy_lse", &klse));
        RF_TRY(rf_cl_row_groups(dev, klse, "cross_entropy", (size_t)v, (size_t)rows, rl, rg, &scratch));
        RF_TRY(RF_CL_LAUNCH(dev, klse, "cross_entropy", 2, rg, rl, RF_MEM(lse), RF_ARG(lo), RF_MEM(logits),
                            RF_ARG(xo), RF_ARG(rows), RF_ARG(v), RF_LOCAL(scratch)));
    }
    RF_TRY(rf_cl_kernel(dev, "loss.cl", "", "cross_entropy_mean", &kmean));
    RF_TRY(rf_cl_group_size(dev, kmean, RF_CL_GROUP, &local));
    global = local;
    cl_float cnt = (cl_float)counted;
    return RF_CL_LAUNCH(dev, kmean, "cross_entropy", 1, &global, &local, RF_MEM(loss), RF_ARG(oo),
                        RF_MEM(lse), RF_ARG(lo), RF_MEM(logits), RF_ARG(xo),
                        RF_MEM(targets), RF_ARG(to), RF_ARG(rows), RF_ARG(v), RF_ARG(cnt),
                        RF_LOCAL(local * sizeof(float)));
}

static rf_status rf_cl_cross_entropy_backward(rf_tensor *dlogits, const rf_tensor *logits, const rf_tensor *lse,
                                              const rf_tensor *targets, float scale) {
    rf_device *dev = logits->buf->dev;
    rf_cl_shape shape;
    RF_TRY(rf_cl_attn_shape(dev, &shape));
    const bool rows_shape = shape == RF_CL_SHAPE_CPU;
    cl_kernel k;
    RF_TRY(rf_cl_kernel(dev, "loss.cl", "", rows_shape ? "cross_entropy_backward_rows" : "cross_entropy_backward", &k));
    cl_ulong v = (cl_ulong)logits->shape[logits->ndim - 1], rows = rf_tensor_numel(logits) / v;
    cl_ulong dxo = dlogits->offset, xo = logits->offset, lo = lse->offset, to = targets->offset;
    size_t local[2] = {1, 1}, global[2] = {(size_t)rows, 1};
    if (rows_shape)
        RF_TRY(rf_cl_group_size(dev, k, ROWS_GROUP, &local[0]));
    else
        RF_TRY(rf_cl_grid2(dev, k, (size_t)v, (size_t)rows, local, global));
    return RF_CL_LAUNCH(dev, k, "cross_entropy_backward", 2, global, local, RF_MEM(dlogits), RF_ARG(dxo),
                        RF_MEM(logits), RF_ARG(xo), RF_MEM(lse), RF_ARG(lo),
                        RF_MEM(targets), RF_ARG(to), RF_ARG(v), RF_ARG(rows), RF_ARG(scale));
}

void rf_cl_loss_register(rf_op_table *ops) {
    ops->cross_entropy_forward = rf_cl_cross_entropy_forward;
    ops->cross_entropy_backward = rf_cl_cross_entropy_backward;
}
