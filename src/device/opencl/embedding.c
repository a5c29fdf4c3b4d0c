/* Embeddings on OpenCL (cl/embedding.cl). The word-embedding backward has no
 * float atomics: the host counting-sorts the ids (which it holds anyway, the
 * front door having range-checked them) into per-row position lists, so each
 * table element is summed by one work-item, in position order. Releasing the
 * temporary lists right after the enqueue is safe: OpenCL keeps a buffer
 * alive until the commands using it finish. */
#include <stdlib.h>
#include "device/opencl/cl_backend.h"

/* One element per work-item over `total` items. */
static rf_status elementwise_launch(rf_device *dev, cl_kernel k, const char *op, size_t total, int nargs,
                                    const rf_cl_arg *args) {
    size_t local;
    RF_TRY(rf_cl_group_size(dev, k, RF_CL_GROUP, &local));
    return rf_cl_launch(dev, k, op, 1, &total, &local, nargs, args);
}
#define LAUNCH(dev, k, op, total, ...)                                                              \
    elementwise_launch(dev, k, op, total, (int)(sizeof((rf_cl_arg[]){__VA_ARGS__}) / sizeof(rf_cl_arg)), \
                       (rf_cl_arg[]){__VA_ARGS__})

static rf_status rf_cl_embedding_forward(rf_tensor *out, const rf_tensor *ids, const rf_tensor *table) {
    rf_device *dev = out->buf->dev;
    cl_kernel k;
    RF_TRY(rf_cl_kernel(dev, "embedding.cl", "", "embedding_forward", &k));
    cl_ulong oo = out->offset, io = ids->offset, to = table->offset, d = (cl_ulong)table->shape[1],
             n = rf_tensor_numel(ids);
    size_t local[2], global[2];
    RF_TRY(rf_cl_grid2(dev, k, (size_t)d, (size_t)n, local, global));
    return RF_CL_LAUNCH(dev, k, "embedding", 2, global, local, RF_MEM(out), RF_ARG(oo), RF_MEM(ids), RF_ARG(io),
                        RF_MEM(table), RF_ARG(to), RF_ARG(d), RF_ARG(n));
}

static rf_status rf_cl_embedding_backward(rf_tensor *dtable, const rf_tensor *dout, const rf_tensor *ids) {
    rf_device *dev = dtable->buf->dev;
    cl_kernel k;
    RF_TRY(rf_cl_kernel(dev, "embedding.cl", "", "embedding_backward", &k));
    size_t n = rf_tensor_numel(ids), v = (size_t)dtable->shape[0];
    int32_t *host = malloc((n + v + 1 + n) * sizeof *host);
    if (!host) return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_embedding_backward: no host memory for %zu ids", n);
    int32_t *start = host + n, *order = start + v + 1;
    rf_tensor tstart = {0}, torder = {0};
    rf_status s = rf_tensor_download(ids, host, n * sizeof *host);
    if (s == RF_OK) {
        /* Counting sort: start[r] = number of ids below r; order lists positions per id, ascending. */
        for (size_t r = 0; r <= v; r++) start[r] = 0;
        for (size_t t = 0; t < n; t++) start[host[t] + 1]++;
        for (size_t r = 0; r < v; r++) start[r + 1] += start[r];
        for (size_t t = 0; t < n; t++) order[start[host[t]]++] = (int32_t)t;
        for (size_t r = v; r > 0; r--) start[r] = start[r - 1]; /* the fill advanced each start to the next */
        start[0] = 0;
        s = rf_tensor_alloc(dev, &tstart, RF_I32, 1, (int64_t[]){(int64_t)v + 1});
    }
    if (s == RF_OK) s = rf_tensor_alloc(dev, &torder, RF_I32, 1, (int64_t[]){(int64_t)n});
    if (s == RF_OK) s = rf_tensor_upload(&tstart, start, (v + 1) * sizeof *start);
    if (s == RF_OK) s = rf_tensor_upload(&torder, order, n * sizeof *order);
    if (s == RF_OK) {
        cl_ulong dto = dtable->offset, doo = dout->offset, d = (cl_ulong)dtable->shape[1],
                 total = rf_tensor_numel(dtable);
        s = LAUNCH(dev, k, "embedding_backward", (size_t)total, RF_MEM(dtable), RF_ARG(dto),
                   RF_MEM(dout), RF_ARG(doo), RF_MEM(&tstart), RF_MEM(&torder), RF_ARG(d),
                   RF_ARG(total));
    }
    if (tstart.buf) rf_tensor_free(&tstart);
    if (torder.buf) rf_tensor_free(&torder);
    free(host);
    return s;
}

static rf_status rf_cl_axial_position_forward(rf_tensor *out, const rf_tensor *e0, const rf_tensor *e1) {
    rf_device *dev = out->buf->dev;
    cl_kernel k;
    RF_TRY(rf_cl_kernel(dev, "embedding.cl", "", "axial_position_forward", &k));
    /* int arguments: the front door keeps every dimension below 2³¹. */
    cl_ulong oo = out->offset, o0 = e0->offset, o1 = e1->offset;
    cl_int l = (cl_int)out->shape[1], s1 = (cl_int)e1->shape[0], d0 = (cl_int)e0->shape[1],
           d1 = (cl_int)e1->shape[1], nb = (cl_int)out->shape[0];
    size_t local[2], global[2];
    RF_TRY(rf_cl_grid2(dev, k, (size_t)(d0 + d1), (size_t)l, local, global));
    return RF_CL_LAUNCH(dev, k, "axial_position", 2, global, local, RF_MEM(out), RF_ARG(oo), RF_MEM(e0),
                        RF_ARG(o0), RF_MEM(e1), RF_ARG(o1), RF_ARG(l), RF_ARG(s1), RF_ARG(d0), RF_ARG(d1),
                        RF_ARG(nb));
}

static rf_status rf_cl_axial_position_backward(rf_tensor *de0, rf_tensor *de1, const rf_tensor *dout) {
    rf_device *dev = dout->buf->dev;
    cl_kernel k;
    RF_TRY(rf_cl_kernel(dev, "embedding.cl", "", "axial_position_backward", &k));
    cl_ulong o0 = de0->offset, o1 = de1->offset, oo = dout->offset, nb = (cl_ulong)dout->shape[0],
             l = (cl_ulong)dout->shape[1], s0 = (cl_ulong)de0->shape[0], s1 = (cl_ulong)de1->shape[0],
             d0 = (cl_ulong)de0->shape[1], d1 = (cl_ulong)de1->shape[1];
    return LAUNCH(dev, k, "axial_position_backward", (size_t)(s0 * d0 + s1 * d1), RF_MEM(de0), RF_ARG(o0),
                  RF_MEM(de1), RF_ARG(o1), RF_MEM(dout), RF_ARG(oo), RF_ARG(nb), RF_ARG(l),
                  RF_ARG(s0), RF_ARG(s1), RF_ARG(d0), RF_ARG(d1));
}

static rf_status rf_cl_position_embedding_forward(rf_tensor *out, const rf_tensor *table) {
    rf_device *dev = out->buf->dev;
    cl_kernel k;
    RF_TRY(rf_cl_kernel(dev, "embedding.cl", "", "position_embedding_forward", &k));
    cl_ulong oo = out->offset, to = table->offset, per = (cl_ulong)(out->shape[1] * out->shape[2]),
             total = rf_tensor_numel(out);
    return LAUNCH(dev, k, "position_embedding", (size_t)total, RF_MEM(out), RF_ARG(oo),
                  RF_MEM(table), RF_ARG(to), RF_ARG(per), RF_ARG(total));
}

static rf_status rf_cl_position_embedding_backward(rf_tensor *dtable, const rf_tensor *dout) {
    rf_device *dev = dout->buf->dev;
    cl_kernel k;
    RF_TRY(rf_cl_kernel(dev, "embedding.cl", "", "position_embedding_backward", &k));
    cl_ulong to = dtable->offset, oo = dout->offset, nb = (cl_ulong)dout->shape[0],
             per = (cl_ulong)(dout->shape[1] * dout->shape[2]);
    return LAUNCH(dev, k, "position_embedding_backward", (size_t)per, RF_MEM(dtable), RF_ARG(to),
                  RF_MEM(dout), RF_ARG(oo), RF_ARG(nb), RF_ARG(per));
}

void rf_cl_embedding_register(rf_op_table *ops) {
    ops->embedding_forward = rf_cl_embedding_forward;
    ops->embedding_backward = rf_cl_embedding_backward;
    ops->axial_position_forward = rf_cl_axial_position_forward;
    ops->axial_position_backward = rf_cl_axial_position_backward;
    ops->position_embedding_forward = rf_cl_position_embedding_forward;
    ops->position_embedding_backward = rf_cl_position_embedding_backward;
}
