/* LayerNorm on OpenCL (cl/norm.cl): the forward and the backward's dx in
 * 2-D work-groups of rows × lanes (rf_cl_row_groups; a lane strides over its
 * row, one barrier per row sum), column sums in two stages for
 * dgamma/dbeta. */
#include "device/opencl/cl_backend.h"

static rf_status rf_cl_layer_norm_forward(rf_tensor *y, rf_tensor *mean, rf_tensor *rstd, const rf_tensor *x,
                                          const rf_tensor *gamma, const rf_tensor *beta, float eps) {
    rf_device *dev = y->buf->dev;
    cl_kernel k;
    RF_TRY(rf_cl_kernel(dev, "norm.cl", "", "layer_norm_forward", &k));
    size_t local[2], global[2], scratch;
    cl_ulong d = (cl_ulong)x->shape[x->ndim - 1], rows = rf_tensor_numel(x) / d;
    RF_TRY(rf_cl_row_groups(dev, k, "layer_norm", (size_t)d, (size_t)rows, local, global, &scratch));
    /* A statistic not wanted: the kernel is handed y's buffer and never writes it. */
    cl_int has_mean = mean != NULL, has_rstd = rstd != NULL;
    cl_mem mm = rf_cl_mem(mean ? mean->buf : y->buf), rm = rf_cl_mem(rstd ? rstd->buf : y->buf);
    cl_ulong yo = y->offset, mo = mean ? mean->offset : 0, ro = rstd ? rstd->offset : 0;
    cl_ulong xo = x->offset, go = gamma->offset, bo = beta->offset;
    return RF_CL_LAUNCH(dev, k, "layer_norm", 2, global, local, RF_MEM(y), RF_ARG(yo), RF_ARG(mm),
                        RF_ARG(mo), RF_ARG(has_mean), RF_ARG(rm), RF_ARG(ro), RF_ARG(has_rstd), RF_MEM(x),
                        RF_ARG(xo), RF_MEM(gamma), RF_ARG(go), RF_MEM(beta), RF_ARG(bo), RF_ARG(rows),
                        RF_ARG(d), RF_ARG(eps), RF_LOCAL(scratch));
}

/* Rows per stage-1 block of the dgamma/dbeta sums: enough blocks to fill a
 * GPU at the model's row counts (B·L ≥ 1,024 gives ≥ 32 blocks per column),
 * few enough that stage 2 is short. */
#define PARAM_BLOCK_ROWS 32

static rf_status params_backward(rf_device *dev, rf_tensor *dgamma, rf_tensor *dbeta, const rf_tensor *dy,
                                 const rf_tensor *x, const rf_tensor *mean, const rf_tensor *rstd, cl_ulong rows,
                                 cl_ulong d) {
    cl_kernel kp, kf;
    RF_TRY(rf_cl_kernel(dev, "norm.cl", "", "layer_norm_params_partial", &kp));
    RF_TRY(rf_cl_kernel(dev, "norm.cl", "", "layer_norm_params_final", &kf));
    cl_ulong block_rows = PARAM_BLOCK_ROWS, blocks = (rows + block_rows - 1) / block_rows;
    rf_tensor part = {0};
    RF_TRY(rf_tensor_alloc(dev, &part, RF_F32, 3, (int64_t[]){2, (int64_t)blocks, (int64_t)d}));
    cl_mem pm = rf_cl_mem(part.buf);
    rf_status s = RF_OK;
    size_t lp[2] = {1, 1}, gp[2] = {(size_t)d, (size_t)blocks}, lf, gf = (size_t)d;
    cl_ulong dyo = dy->offset, xo = x->offset, mo = mean->offset, ro = rstd->offset;
    if (s == RF_OK) s = rf_cl_group_size(dev, kp, RF_CL_GROUP, &lp[0]);
    if (s == RF_OK)
        s = RF_CL_LAUNCH(dev, kp, "layer_norm_backward_params", 2, gp, lp, RF_ARG(pm), RF_MEM(dy),
                         RF_ARG(dyo), RF_MEM(x), RF_ARG(xo), RF_MEM(mean), RF_ARG(mo), RF_MEM(rstd), RF_ARG(ro),
                         RF_ARG(rows), RF_ARG(d), RF_ARG(block_rows));
    if (s == RF_OK) s = rf_cl_group_size(dev, kf, RF_CL_GROUP, &lf);
    if (s == RF_OK) {
        cl_int has_dg = dgamma != NULL, has_db = dbeta != NULL;
        /* A missing gradient is handed the other one's buffer and never written. */
        const rf_tensor *dg = dgamma ? dgamma : dbeta, *db = dbeta ? dbeta : dgamma;
        cl_ulong dgo = dg->offset, dbo = db->offset;
        s = RF_CL_LAUNCH(dev, kf, "layer_norm_backward_params", 1, &gf, &lf, RF_MEM(dg), RF_ARG(dgo),
                         RF_ARG(has_dg), RF_MEM(db), RF_ARG(dbo), RF_ARG(has_db), RF_ARG(pm),
                         RF_ARG(blocks), RF_ARG(d));
    }
    /* Freed with the launches queued: OpenCL keeps a buffer a queued kernel
     * uses alive until it finishes. */
    rf_tensor_free(&part);
    return s;
}

/* The parameter sums run first: they read dy and x, which dx may alias. */
static rf_status rf_cl_layer_norm_backward(rf_tensor *dx, rf_tensor *dgamma, rf_tensor *dbeta, const rf_tensor *dy,
                                           const rf_tensor *x, const rf_tensor *gamma, const rf_tensor *mean,
                                           const rf_tensor *rstd) {
    rf_device *dev = dx->buf->dev;
    cl_ulong d = (cl_ulong)x->shape[x->ndim - 1], rows = rf_tensor_numel(x) / d;
    cl_ulong dxo = dx->offset, dyo = dy->offset, xo = x->offset, go = gamma->offset, mo = mean->offset,
             ro = rstd->offset;
    size_t local[2], global[2], scratch;
    if (dgamma || dbeta) RF_TRY(params_backward(dev, dgamma, dbeta, dy, x, mean, rstd, rows, d));
    cl_kernel kdx;
    RF_TRY(rf_cl_kernel(dev, "norm.cl", "", "layer_norm_backward_dx", &kdx));
    RF_TRY(rf_cl_row_groups(dev, kdx, "layer_norm", (size_t)d, (size_t)rows, local, global, &scratch));
    return RF_CL_LAUNCH(dev, kdx, "layer_norm_backward", 2, global, local, RF_MEM(dx), RF_ARG(dxo),
                        RF_MEM(dy), RF_ARG(dyo), RF_MEM(x), RF_ARG(xo),
                        RF_MEM(gamma), RF_ARG(go), RF_MEM(mean), RF_ARG(mo),
                        RF_MEM(rstd), RF_ARG(ro), RF_ARG(rows), RF_ARG(d), RF_LOCAL(scratch));
}

void rf_cl_norm_register(rf_op_table *ops) {
    ops->layer_norm_forward = rf_cl_layer_norm_forward;
    ops->layer_norm_backward = rf_cl_layer_norm_backward;
}
