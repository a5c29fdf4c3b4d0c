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

/* Rows per block of the CPU shape's bias_grad_rows: its part of the sums
 * (n floats) stays in the core's L1 while the block's rows stream past;
 * B·L = 4,096 rows give 64 blocks for two cores' worth of groups. */
#define BIAS_BLOCK_ROWS 64
/* Work-items per group of the CPU shape (a group runs as a loop on one core):
 * 1 and 16 gave 3.1–3.7 ms per training run of the benchmark model, 4 gave
 * 3.6–3.8 in other runs: within the machine's noise. */
#define BIAS_ROWS_GROUP 4

/* The CPU shape (cl/linear.cl bias_grad_rows, then bias_grad_final). */
static rf_status bias_grad_rows(rf_device *dev, rf_tensor *db, const rf_tensor *dy) {
    cl_kernel kr, kf;
    RF_TRY(rf_cl_kernel(dev, "linear.cl", "", "bias_grad_rows", &kr));
    RF_TRY(rf_cl_kernel(dev, "linear.cl", "", "bias_grad_final", &kf));
    cl_ulong dbo = db->offset, dyo = dy->offset, n = (cl_ulong)db->shape[0], rows = rf_tensor_numel(dy) / n;
    cl_ulong block_rows = BIAS_BLOCK_ROWS, blocks = (rows + block_rows - 1) / block_rows;
    rf_tensor part = {0};
    RF_TRY(rf_tensor_alloc(dev, &part, RF_F32, 2, (int64_t[]){(int64_t)blocks, (int64_t)n}));
    cl_mem pm = rf_cl_mem(part.buf);
    size_t lr, gr = (size_t)blocks, lf, gf = (size_t)n;
    rf_status s = rf_cl_group_size(dev, kr, BIAS_ROWS_GROUP, &lr);
    if (s == RF_OK)
        s = RF_CL_LAUNCH(dev, kr, "bias_grad", 1, &gr, &lr, RF_ARG(pm), RF_MEM(dy), RF_ARG(dyo), RF_ARG(n),
                         RF_ARG(rows), RF_ARG(block_rows));
    if (s == RF_OK) s = rf_cl_group_size(dev, kf, RF_CL_GROUP, &lf);
    if (s == RF_OK)
        s = RF_CL_LAUNCH(dev, kf, "bias_grad", 1, &gf, &lf, RF_MEM(db), RF_ARG(dbo), RF_ARG(pm), RF_ARG(n),
                         RF_ARG(blocks));
    /* Freed with the launches queued: OpenCL keeps a buffer a queued kernel
     * uses alive until it finishes. */
    rf_tensor_free(&part);
    return s;
}

/* bias_grad's groups: C = "bias_grad.columns" (default 32: a warp reads 32
 * neighbouring words of a row), no wider than the columns' power of two;
 * S = "bias_grad.group" / C slices (default 256 items), as the kernel's and
 * device's limits allow. */
static rf_status rf_cl_bias_grad(rf_tensor *db, const rf_tensor *dy) {
    rf_device *dev = db->buf->dev;
    rf_cl_shape shape;
    RF_TRY(rf_cl_attn_shape(dev, &shape));
    if (shape == RF_CL_SHAPE_CPU) return bias_grad_rows(dev, db, dy);
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
