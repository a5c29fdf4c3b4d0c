/* Elementwise ops on OpenCL (cl/elementwise.cl). */
#include "device/opencl/cl_backend.h"

/* Work-items per group of axpby_vec, the CPU shape (activation.c's). */
#define CPU_GROUP 16

/* A work-item per element, or per 8 in the CPU shape (rf_cl_attn_shape). */
static rf_status rf_cl_add(rf_tensor *out, const rf_tensor *a, const rf_tensor *b, float alpha) {
    rf_device *dev = out->buf->dev;
    rf_cl_shape shape;
    RF_TRY(rf_cl_attn_shape(dev, &shape));
    const bool vec = shape == RF_CL_SHAPE_CPU;
    cl_kernel k;
    RF_TRY(rf_cl_kernel(dev, "elementwise.cl", "", vec ? "axpby_vec" : "axpby", &k));
    size_t local;
    RF_TRY(rf_cl_group_size(dev, k, vec ? CPU_GROUP : RF_CL_GROUP, &local));
    cl_ulong n = rf_tensor_numel(out), oo = out->offset, ao = a->offset, bo = b->offset;
    size_t global = vec ? (size_t)(n + 7) / 8 : (size_t)n;
    return RF_CL_LAUNCH(dev, k, "add", 1, &global, &local, RF_MEM(out), RF_ARG(oo), RF_MEM(a),
                        RF_ARG(ao), RF_MEM(b), RF_ARG(bo), RF_ARG(alpha), RF_ARG(n));
}

/* concat_rows and split_rows share their argument list: (x, y, joined). */
static rf_status halves(rf_device *dev, const char *kernel, const char *op, cl_mem m0, cl_ulong o0, cl_mem m1,
                        cl_ulong o1, cl_mem m2, cl_ulong o2, size_t rows, size_t w) {
    cl_kernel k;
    RF_TRY(rf_cl_kernel(dev, "elementwise.cl", "", kernel, &k));
    size_t local[2], global[2];
    RF_TRY(rf_cl_grid2(dev, k, 2 * w, rows, local, global));
    cl_ulong r = rows, ww = w;
    return RF_CL_LAUNCH(dev, k, op, 2, global, local, RF_ARG(m0), RF_ARG(o0), RF_ARG(m1), RF_ARG(o1), RF_ARG(m2),
                        RF_ARG(o2), RF_ARG(r), RF_ARG(ww));
}

static rf_status rf_cl_concat(rf_tensor *out, const rf_tensor *a, const rf_tensor *b, size_t rows, size_t w) {
    return halves(out->buf->dev, "concat_rows", "concat", rf_cl_mem(out->buf), out->offset, rf_cl_mem(a->buf),
                  a->offset, rf_cl_mem(b->buf), b->offset, rows, w);
}

static rf_status rf_cl_split(rf_tensor *a, rf_tensor *b, const rf_tensor *in, size_t rows, size_t w) {
    return halves(in->buf->dev, "split_rows", "split", rf_cl_mem(a->buf), a->offset, rf_cl_mem(b->buf), b->offset,
                  rf_cl_mem(in->buf), in->offset, rows, w);
}

void rf_cl_elementwise_register(rf_op_table *ops) {
    ops->add = rf_cl_add;
    ops->concat = rf_cl_concat;
    ops->split = rf_cl_split;
}
