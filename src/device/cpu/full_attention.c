/* Full attention on the cpu (§6): local attention's window code with
 * one chunk of L keys. With shared_qk the keys are the normalised queries of
 * LSH attention (§5.2, rf_attn_key_scale), and the backward adds the
 * gradient through that normalisation to dq. */
#include <stdlib.h>
#include "device/cpu/cpu_backend.h"
#include "device/attention_common.h"

/* §5.2's key normalisation (device/attention_common.h), per head row of d. */
static void normalise_keys(float *kn, const float *q, size_t rows, int64_t d) {
    for (size_t r = 0; r < rows; r++) {
        const float *x = q + r * (size_t)d;
        double a = rf_attn_key_scale(x, d);
        for (int64_t e = 0; e < d; e++) kn[r * (size_t)d + e] = (float)(x[e] * a);
    }
}

/* dq += ∂kn/∂q · dkn, row by row in double. */
static rf_status normalise_keys_backward(float *dq, const float *dkn, const float *q, size_t rows, int64_t d) {
    double *dk = malloc((size_t)d * sizeof *dk), *dx = malloc((size_t)d * sizeof *dx);
    if (!dk || !dx) {
        free(dk), free(dx);
        return rf_error(RF_ERR_OUT_OF_MEMORY, "full attention backward (cpu): no memory for a %lld-wide row",
                        (long long)d);
    }
    for (size_t r = 0; r < rows; r++) {
        for (int64_t e = 0; e < d; e++) dk[e] = dkn[r * (size_t)d + e], dx[e] = 0;
        rf_attn_key_scale_backward(dx, dk, q + r * (size_t)d, d);
        for (int64_t e = 0; e < d; e++) dq[r * (size_t)d + e] += (float)dx[e];
    }
    free(dk), free(dx);
    return RF_OK;
}

/* A cpu tensor of q's shape for the normalised keys or their gradient. */
static rf_status like_q(rf_tensor *t, const rf_tensor *q) {
    return rf_tensor_alloc(q->buf->dev, t, RF_F32, q->ndim, q->shape);
}

/* Local attention's entries are static to local_attention.c: reached through
 * the device's op table. */
static rf_status rf_cpu_full_attention_forward(rf_tensor *out, rf_tensor *lse, const rf_tensor *q, const rf_tensor *k,
                                               const rf_tensor *v, const rf_tensor *mask, const rf_attn_window *w,
                                               bool shared_qk) {
    if (!shared_qk) return out->buf->dev->ops.local_attention_forward(out, lse, q, k, v, mask, w);
    rf_tensor kn;
    RF_TRY(like_q(&kn, q));
    normalise_keys(rf_cpu_f32(&kn), rf_cpu_f32(q), rf_tensor_numel(q) / (size_t)w->head_dim, w->head_dim);
    rf_status s = out->buf->dev->ops.local_attention_forward(out, lse, q, &kn, v, mask, w);
    rf_tensor_free(&kn);
    return s;
}

static rf_status rf_cpu_full_attention_backward(rf_tensor *dq, rf_tensor *dk, rf_tensor *dv, const rf_tensor *dout,
                                                const rf_tensor *out, const rf_tensor *lse, const rf_tensor *q,
                                                const rf_tensor *k, const rf_tensor *v, const rf_tensor *mask,
                                                const rf_attn_window *w, bool shared_qk) {
    if (!shared_qk) return dq->buf->dev->ops.local_attention_backward(dq, dk, dv, dout, out, lse, q, k, v, mask, w);
    size_t rows = rf_tensor_numel(q) / (size_t)w->head_dim;
    rf_tensor kn, dkn = {0}; /* dkn is freed on every path */
    RF_TRY(like_q(&kn, q));
    rf_status s = like_q(&dkn, q);
    if (s == RF_OK) {
        normalise_keys(rf_cpu_f32(&kn), rf_cpu_f32(q), rows, w->head_dim);
        s = dq->buf->dev->ops.local_attention_backward(dq, &dkn, dv, dout, out, lse, q, &kn, v, mask, w);
    }
    if (s == RF_OK) s = normalise_keys_backward(rf_cpu_f32(dq), rf_cpu_f32(&dkn), rf_cpu_f32(q), rows, w->head_dim);
    rf_tensor_free(&kn);
    rf_tensor_free(&dkn);
    return s;
}

void rf_cpu_full_attention_register(rf_op_table *ops) {
    ops->full_attention_forward = rf_cpu_full_attention_forward;
    ops->full_attention_backward = rf_cpu_full_attention_backward;
}
