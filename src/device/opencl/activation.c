/* Activations on OpenCL (cl/activation.cl): one work-item per element (GPU
 * shape) or per 8 elements or row (CPU shape: rf_cl_attn_shape), the
 * activation chosen at build time (one program per activation). */
#include <stdio.h>
#include "device/opencl/cl_backend.h"

static rf_status act_kernel(rf_device *dev, rf_activation act, const char *kernel, cl_kernel *k) {
    char defs[32];
    snprintf(defs, sizeof defs, "-DACT=%d", (int)act);
    return rf_cl_kernel(dev, "activation.cl", defs, kernel, k);
}

/* Work-items per group of the CPU shape (a group runs as a loop on one core;
 * norm.c has the measurements: one item per group made relu_backward 3×
 * slower, a group per 8 elements). */
#define CPU_GROUP 16

/* `kernel`, or its CPU shape `kernel`_vec (8 elements per work-item). */
static rf_status launch(rf_tensor *out, const rf_tensor *a, const rf_tensor *b, rf_activation act,
                        const char *kernel, const char *op) {
    rf_device *dev = out->buf->dev;
    rf_cl_shape shape;
    RF_TRY(rf_cl_attn_shape(dev, &shape));
    char name[48];
    snprintf(name, sizeof name, "%s%s", kernel, shape == RF_CL_SHAPE_CPU ? "_vec" : "");
    cl_kernel k;
    RF_TRY(act_kernel(dev, act, name, &k));
    size_t local;
    RF_TRY(rf_cl_group_size(dev, k, shape == RF_CL_SHAPE_CPU ? CPU_GROUP : RF_CL_GROUP, &local));
    cl_ulong n = rf_tensor_numel(out), oo = out->offset, ao = a->offset;
    size_t global = shape == RF_CL_SHAPE_CPU ? (size_t)(n + 7) / 8 : (size_t)n;
    if (!b)
        return RF_CL_LAUNCH(dev, k, op, 1, &global, &local, RF_MEM(out), RF_ARG(oo), RF_MEM(a),
                            RF_ARG(ao), RF_ARG(n));
    cl_ulong bo = b->offset;
    return RF_CL_LAUNCH(dev, k, op, 1, &global, &local, RF_MEM(out), RF_ARG(oo), RF_MEM(a),
                        RF_ARG(ao), RF_MEM(b), RF_ARG(bo), RF_ARG(n));
}

static rf_status rf_cl_activation_forward(rf_tensor *y, const rf_tensor *x, rf_activation act) {
    return launch(y, x, NULL, act, "activation_forward", act == RF_ACT_RELU ? "relu" : "gelu");
}

static rf_status rf_cl_activation_backward(rf_tensor *dx, const rf_tensor *dy, const rf_tensor *x, rf_activation act) {
    return launch(dx, dy, x, act, "activation_backward", act == RF_ACT_RELU ? "relu_backward" : "gelu_backward");
}

/* A 2-D grid of (column, row), as bias_add's: no division per element; in
 * the CPU shape a work-item per row. */
static rf_status rf_cl_bias_activation(rf_tensor *y, rf_tensor *pre, const rf_tensor *x, const rf_tensor *b,
                                       rf_activation act) {
    rf_device *dev = y->buf->dev;
    rf_cl_shape shape;
    RF_TRY(rf_cl_attn_shape(dev, &shape));
    const bool rows_shape = shape == RF_CL_SHAPE_CPU;
    cl_kernel k;
    RF_TRY(act_kernel(dev, act, rows_shape ? "bias_activation_rows" : "bias_activation", &k));
    /* Without pre, y stands in for its buffer (never written: has_pre 0). */
    const rf_tensor *p = pre ? pre : y;
    cl_ulong yo = y->offset, po = p->offset, xo = x->offset, bo = b->offset, n = (cl_ulong)b->shape[0],
             rows = rf_tensor_numel(x) / n;
    cl_int has_pre = pre != NULL;
    size_t local[2] = {1, 1}, global[2] = {(size_t)rows, 1};
    if (rows_shape)
        RF_TRY(rf_cl_group_size(dev, k, CPU_GROUP, &local[0]));
    else
        RF_TRY(rf_cl_grid2(dev, k, (size_t)n, (size_t)rows, local, global));
    return RF_CL_LAUNCH(dev, k, act == RF_ACT_RELU ? "bias_relu" : "bias_gelu", 2, global, local, RF_MEM(y),
                        RF_ARG(yo), RF_MEM(p), RF_ARG(po), RF_ARG(has_pre), RF_MEM(x), RF_ARG(xo), RF_MEM(b),
                        RF_ARG(bo), RF_ARG(n), RF_ARG(rows));
}

void rf_cl_activation_register(rf_op_table *ops) {
    ops->activation_forward = rf_cl_activation_forward;
    ops->activation_backward = rf_cl_activation_backward;
    ops->bias_activation = rf_cl_bias_activation;
}
