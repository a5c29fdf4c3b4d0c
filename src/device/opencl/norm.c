/* LayerNorm on OpenCL (cl/norm.cl), in two shapes (rf_cl_attn_shape).
 * GPU: the forward and the backward's dx in 2-D work-groups of rows × lanes
 * (rf_cl_row_groups; a lane strides over its row, one barrier per row sum),
 * column sums in two stages for dgamma/dbeta. CPU: a work-item per row
 * (forward) or per block of rows (backward: dx and its block's part of the
 * column sums in one pass), 8 lanes at a time, no barrier. */
#include "device/opencl/cl_backend.h"

/* Work-items per group of the CPU shape: PoCL runs a group as a loop on one
 * core; 16 items amortise a group's start without leaving a core idle at
 * the model's row counts (LayerNorm per training run of the benchmark
 * model: 7.5–7.7 ms forward at 16, 7.9–9.2 at 1, 8.2–8.4 at 64; the same
 * order for the other row kernels: docs/portability.md). */
#define ROWS_GROUP 16

/* Rows per stage-1 block of the dgamma/dbeta sums: enough blocks to fill a
 * GPU at the model's row counts (B·L ≥ 1,024 gives ≥ 32 blocks per column),
 * few enough that stage 2 is short. The CPU shape's backward takes a block
 * per work-item. */
#define PARAM_BLOCK_ROWS 32

static rf_status forward_rows(rf_device *dev, rf_tensor *y, rf_tensor *mean, rf_tensor *rstd, const rf_tensor *x,
                              const rf_tensor *gamma, const rf_tensor *beta, float eps) {
    cl_kernel k;
    RF_TRY(rf_cl_kernel(dev, "norm.cl", "", "layer_norm_forward_rows", &k));
    cl_ulong d = (cl_ulong)x->shape[x->ndim - 1], rows = rf_tensor_numel(x) / d;
    size_t local, global = (size_t)rows;
    RF_TRY(rf_cl_group_size(dev, k, ROWS_GROUP, &local));
    cl_int has_mean = mean != NULL, has_rstd = rstd != NULL;
    cl_mem mm = rf_cl_mem(mean ? mean->buf : y->buf), rm = rf_cl_mem(rstd ? rstd->buf : y->buf);
    cl_ulong yo = y->offset, mo = mean ? mean->offset : 0, ro = rstd ? rstd->offset : 0;
    cl_ulong xo = x->offset, go = gamma->offset, bo = beta->offset;
    return RF_CL_LAUNCH(dev, k, "layer_norm", 1, &global, &local, RF_MEM(y), RF_ARG(yo), RF_ARG(mm),
                        RF_ARG(mo), RF_ARG(has_mean), RF_ARG(rm), RF_ARG(ro), RF_ARG(has_rstd), RF_MEM(x),
                        RF_ARG(xo), RF_MEM(gamma), RF_ARG(go), RF_MEM(beta), RF_ARG(bo), RF_ARG(rows),
                        RF_ARG(d), RF_ARG(eps));
}

static rf_status rf_cl_layer_norm_forward(rf_tensor *y, rf_tensor *mean, rf_tensor *rstd, const rf_tensor *x,
                                          const rf_tensor *gamma, const rf_tensor *beta, float eps) {
    rf_device *dev = y->buf->dev;
    rf_cl_shape shape;
    RF_TRY(rf_cl_attn_shape(dev, &shape));
    if (shape == RF_CL_SHAPE_CPU) return forward_rows(dev, y, mean, rstd, x, gamma, beta, eps);
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

/* The column sums' stage 2 (layer_norm_params_final) over part's blocks. */
static rf_status params_final(rf_device *dev, rf_tensor *dgamma, rf_tensor *dbeta, cl_mem pm, cl_ulong blocks,
                              cl_ulong d) {
    cl_kernel kf;
    RF_TRY(rf_cl_kernel(dev, "norm.cl", "", "layer_norm_params_final", &kf));
    size_t lf, gf = (size_t)d;
    RF_TRY(rf_cl_group_size(dev, kf, RF_CL_GROUP, &lf));
    cl_int has_dg = dgamma != NULL, has_db = dbeta != NULL;
    /* A missing gradient is handed the other one's buffer and never written. */
    const rf_tensor *dg = dgamma ? dgamma : dbeta, *db = dbeta ? dbeta : dgamma;
    cl_ulong dgo = dg->offset, dbo = db->offset;
    return RF_CL_LAUNCH(dev, kf, "layer_norm_backward_params", 1, &gf, &lf, RF_MEM(dg), RF_ARG(dgo),
                        RF_ARG(has_dg), RF_MEM(db), RF_ARG(dbo), RF_ARG(has_db), RF_ARG(pm), RF_ARG(blocks),
                        RF_ARG(d));
}

static rf_status params_backward(rf_device *dev, rf_tensor *dgamma, rf_tensor *dbeta, const rf_tensor *dy,
                                 const rf_tensor *x, const rf_tensor *mean, const rf_tensor *rstd, cl_ulong rows,
                                 cl_ulong d) {
    cl_kernel kp;
    RF_TRY(rf_cl_kernel(dev, "norm.cl", "", "layer_norm_params_partial", &kp));
    cl_ulong block_rows = PARAM_BLOCK_ROWS, blocks = (rows + block_rows - 1) / block_rows;
    rf_tensor part = {0};
    RF_TRY(rf_tensor_alloc(dev, &part, RF_F32, 3, (int64_t[]){2, (int64_t)blocks, (int64_t)d}));
    cl_mem pm = rf_cl_mem(part.buf);
    rf_status s = RF_OK;
    size_t lp[2] = {1, 1}, gp[2] = {(size_t)d, (size_t)blocks};
    cl_ulong dyo = dy->offset, xo = x->offset, mo = mean->offset, ro = rstd->offset;
    if (s == RF_OK) s = rf_cl_group_size(dev, kp, RF_CL_GROUP, &lp[0]);
    if (s == RF_OK)
        s = RF_CL_LAUNCH(dev, kp, "layer_norm_backward_params", 2, gp, lp, RF_ARG(pm), RF_MEM(dy),
                         RF_ARG(dyo), RF_MEM(x), RF_ARG(xo), RF_MEM(mean), RF_ARG(mo), RF_MEM(rstd), RF_ARG(ro),
                         RF_ARG(rows), RF_ARG(d), RF_ARG(block_rows));
    if (s == RF_OK) s = params_final(dev, dgamma, dbeta, pm, blocks, d);
    /* Freed with the launches queued: OpenCL keeps a buffer a queued kernel
     * uses alive until it finishes. */
    rf_tensor_free(&part);
    return s;
}

/* The CPU shape's backward: layer_norm_backward_rows (dx and the column
 * sums' stage 1), then stage 2 when a parameter gradient is wanted. */
static rf_status backward_rows(rf_device *dev, rf_tensor *dx, rf_tensor *dgamma, rf_tensor *dbeta,
                               const rf_tensor *dy, const rf_tensor *x, const rf_tensor *gamma,
                               const rf_tensor *mean, const rf_tensor *rstd) {
    cl_kernel k;
    RF_TRY(rf_cl_kernel(dev, "norm.cl", "", "layer_norm_backward_rows", &k));
    cl_ulong d = (cl_ulong)x->shape[x->ndim - 1], rows = rf_tensor_numel(x) / d;
    cl_ulong block_rows = PARAM_BLOCK_ROWS, blocks = (rows + block_rows - 1) / block_rows;
    cl_int has_part = dgamma || dbeta;
    rf_tensor part = {0};
    if (has_part) RF_TRY(rf_tensor_alloc(dev, &part, RF_F32, 3, (int64_t[]){2, (int64_t)blocks, (int64_t)d}));
    /* No parameter gradient: the kernel is handed dx's buffer and never writes it. */
    cl_mem pm = rf_cl_mem(has_part ? part.buf : dx->buf);
    cl_ulong dxo = dx->offset, dyo = dy->offset, xo = x->offset, go = gamma->offset, mo = mean->offset,
             ro = rstd->offset;
    size_t local, global = (size_t)blocks;
    rf_status s = rf_cl_group_size(dev, k, ROWS_GROUP, &local);
    if (s == RF_OK)
        s = RF_CL_LAUNCH(dev, k, "layer_norm_backward", 1, &global, &local, RF_MEM(dx), RF_ARG(dxo), RF_ARG(pm),
                         RF_ARG(has_part), RF_MEM(dy), RF_ARG(dyo), RF_MEM(x), RF_ARG(xo), RF_MEM(gamma),
                         RF_ARG(go), RF_MEM(mean), RF_ARG(mo), RF_MEM(rstd), RF_ARG(ro), RF_ARG(rows), RF_ARG(d),
                         RF_ARG(block_rows));
    if (s == RF_OK && has_part) s = params_final(dev, dgamma, dbeta, pm, blocks, d);
    rf_tensor_free(&part);
    return s;
}


/* The parameter sums run first: they read dy and x, which dx may alias. */
static rf_status rf_cl_layer_norm_backward(rf_tensor *dx, rf_tensor *dgamma, rf_tensor *dbeta, const rf_tensor *dy,
                                           const rf_tensor *x, const rf_tensor *gamma, const rf_tensor *mean,
                                           const rf_tensor *rstd) {
    rf_device *dev = dx->buf->dev;
    rf_cl_shape shape;
    RF_TRY(rf_cl_attn_shape(dev, &shape));
    if (shape == RF_CL_SHAPE_CPU) return backward_rows(dev, dx, dgamma, dbeta, dy, x, gamma, mean, rstd);
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
