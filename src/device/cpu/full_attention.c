/* Full attention on the cpu (SPEC §6): local attention's window code with
 * one chunk of L keys. With shared_qk the keys are the normalised queries of
 * LSH attention (§5.2): k = q·rsqrt(mean(q²) + 1e-6)/√d per head, and the
 * backward adds the gradient through that normalisation to dq. */
#include <math.h>
#include "device/cpu/cpu_backend.h"

/* §5.2's key normalisation, per head row of d (HF _len_and_dim_norm). */
static void normalise_keys(float *kn, const float *q, size_t rows, int64_t d) {
    for (size_t r = 0; r < rows; r++) {
        const float *x = q + r * (size_t)d;
        double ms = 0;
        for (int64_t e = 0; e < d; e++) ms += (double)x[e] * x[e];
        double f = 1.0 / sqrt(ms / (double)d + 1e-6) / sqrt((double)d);
        for (int64_t e = 0; e < d; e++) kn[r * (size_t)d + e] = (float)(x[e] * f);
    }
}

/* dq += ∂kn/∂q · dkn: with ρ = rsqrt(mean(q²) + 1e-6),
 * dq_e += ρ/√d · (dkn_e − q_e·ρ²·(Σ_e' dkn_e'·q_e')/d). */
static void normalise_keys_backward(float *dq, const float *dkn, const float *q, size_t rows, int64_t d) {
    for (size_t r = 0; r < rows; r++) {
        const float *x = q + r * (size_t)d, *g = dkn + r * (size_t)d;
        double ms = 0, gx = 0;
        for (int64_t e = 0; e < d; e++) ms += (double)x[e] * x[e], gx += (double)g[e] * x[e];
        double rho = 1.0 / sqrt(ms / (double)d + 1e-6), f = rho / sqrt((double)d);
        for (int64_t e = 0; e < d; e++)
            dq[r * (size_t)d + e] += (float)(f * (g[e] - x[e] * rho * rho * gx / (double)d));
    }
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
    if (s == RF_OK) normalise_keys_backward(rf_cpu_f32(dq), rf_cpu_f32(&dkn), rf_cpu_f32(q), rows, w->head_dim);
    rf_tensor_free(&kn);
    rf_tensor_free(&dkn);
    return s;
}

void rf_cpu_full_attention_register(rf_op_table *ops) {
    ops->full_attention_forward = rf_cpu_full_attention_forward;
    ops->full_attention_backward = rf_cpu_full_attention_backward;
}
