/* Full attention on OpenCL (§6): the windowed attention of
 * local_attention.c with one chunk of L keys. With shared_qk, the keys are
 * first normalised from q (cl/full_attention.cl, §5.2) into a scratch tensor
 * of q's size, and the backward adds the gradient through that
 * normalisation to dq. */
#include "device/opencl/cl_backend.h"
#include "device/opencl/cl_attention.h"

/* Kernel `name` of full_attention.cl for head width d. */
static rf_status keys_kernel(rf_device *dev, int64_t d, const char *name, cl_kernel *kernel) {
    char options[96];
    rf_cl_attn_options(options, sizeof options, d, 0);
    return rf_cl_kernel(dev, "full_attention.cl", options, name, kernel);
}

/* Rows (one work-item each) per work-group of the key normalisation. */
#define NORMALISE_GROUP 64

/* The normalised keys of q, into a fresh tensor of q's shape. */
static rf_status normalise_keys(rf_device *dev, rf_tensor *kn, const rf_tensor *q, int64_t d) {
    cl_kernel kernel;
    RF_TRY(keys_kernel(dev, d, "normalise_keys", &kernel));
    size_t g;
    RF_TRY(rf_cl_group_size(dev, kernel, NORMALISE_GROUP, &g));
    RF_TRY(rf_tensor_alloc(dev, kn, RF_F32, q->ndim, q->shape));
    cl_ulong qo = q->offset, rows = rf_tensor_numel(q) / (size_t)d;
    size_t global = (size_t)rows;
    rf_status s = RF_CL_LAUNCH(dev, kernel, "attention_normalise_keys", 1, &global, &g, RF_MEM(kn),
                               RF_MEM(q), RF_ARG(qo), RF_ARG(rows));
    if (s != RF_OK) rf_tensor_free(kn);
    return s;
}

/* Local attention's entries are static to local_attention.c: reached through
 * the device's op table. */
static rf_status rf_cl_full_attention_forward(rf_tensor *out, rf_tensor *lse, const rf_tensor *q, const rf_tensor *k,
                                              const rf_tensor *v, const rf_tensor *mask, const rf_attn_window *w,
                                              bool shared_qk) {
    if (!shared_qk) return out->buf->dev->ops.local_attention_forward(out, lse, q, k, v, mask, w);
    rf_device *dev = out->buf->dev;
    rf_tensor kn;
    RF_TRY(normalise_keys(dev, &kn, q, w->head_dim));
    rf_status s = out->buf->dev->ops.local_attention_forward(out, lse, q, &kn, v, mask, w);
    rf_tensor_free(&kn); /* released now, freed once the queued kernels are done */
    return s;
}

static rf_status rf_cl_full_attention_backward(rf_tensor *dq, rf_tensor *dk, rf_tensor *dv, const rf_tensor *dout,
                                               const rf_tensor *out, const rf_tensor *lse, const rf_tensor *q,
                                               const rf_tensor *k, const rf_tensor *v, const rf_tensor *mask,
                                               const rf_attn_window *w, bool shared_qk) {
    if (!shared_qk) return dq->buf->dev->ops.local_attention_backward(dq, dk, dv, dout, out, lse, q, k, v, mask, w);
    rf_device *dev = dq->buf->dev;
    cl_kernel kernel;
    RF_TRY(keys_kernel(dev, w->head_dim, "normalise_keys_backward", &kernel));
    size_t g;
    RF_TRY(rf_cl_group_size(dev, kernel, NORMALISE_GROUP, &g));
    rf_tensor kn, dkn = {0}; /* dkn is freed on every path */
    RF_TRY(normalise_keys(dev, &kn, q, w->head_dim));
    rf_status s = rf_tensor_alloc(dev, &dkn, RF_F32, q->ndim, q->shape);
    if (s == RF_OK) s = dq->buf->dev->ops.local_attention_backward(dq, &dkn, dv, dout, out, lse, q, &kn, v, mask, w);
    if (s == RF_OK) {
        cl_ulong dqo = dq->offset, qo = q->offset, rows = rf_tensor_numel(q) / (size_t)w->head_dim;
        size_t global = (size_t)rows;
        s = RF_CL_LAUNCH(dev, kernel, "attention_normalise_keys_backward", 1, &global, &g, RF_MEM(dq),
                         RF_ARG(dqo), RF_MEM(&dkn), RF_MEM(q), RF_ARG(qo), RF_ARG(rows));
    }
    rf_tensor_free(&kn);
    rf_tensor_free(&dkn);
    return s;
}

void rf_cl_full_attention_register(rf_op_table *ops) {
    ops->full_attention_forward = rf_cl_full_attention_forward;
    ops->full_attention_backward = rf_cl_full_attention_backward;
}
