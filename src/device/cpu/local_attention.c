/* Windowed attention on the cpu (§6, device/attention_window.h): for
 * each query, the logits of the keys in its window, the masks of §5.4
 * replacing them (device/attention_common.h), a softmax and the weighted
 * values — the direct maths, in double, one query row at a time. Full
 * attention (full_attention.c) is the same code with one chunk of L keys. */
#include <math.h>
#include <stdlib.h>
#include "device/cpu/cpu_backend.h"
#include "device/attention_common.h"

/* The first element of (b, pos, head h) in a [B, L, H·d] tensor (§1). */
static size_t row(const rf_attn_window *w, int64_t b, int64_t pos, int64_t h) {
    return (size_t)(((b * w->len + pos) * w->heads + h) * w->head_dim);
}

/* The key positions query `qpos` attends to, in the HF model's order: window
 * slot s = −before … after holds chunk (c + s) mod n_chunks, cyclically.
 * Returns how many (keys has room for (before + 1 + after)·chunk_len). */
static int64_t window_keys(const rf_attn_window *w, int64_t qpos, int64_t *keys) {
    int64_t nc = w->len / w->chunk_len, c = qpos / w->chunk_len, n = 0;
    for (int s = -w->before; s <= w->after; s++) {
        int64_t kc = ((c + s) % nc + nc) % nc;
        for (int64_t j = 0; j < w->chunk_len; j++) keys[n++] = kc * w->chunk_len + j;
    }
    return n;
}

/* Scratch for one query row: its window, logits, probabilities, which
 * logits a mask replaced (those carry no gradient) and each probability's
 * dropout factor (0, or 1/(1−p) when kept; 1 without dropout). */
typedef struct row_scratch {
    int64_t *keys;
    double *p;
    bool *masked;
    double *drop;
} row_scratch;

static rf_status scratch_alloc(const rf_attn_window *w, row_scratch *r) {
    size_t n = (size_t)rf_attn_window_width(w);
    r->keys = malloc(n * sizeof *r->keys);
    r->p = malloc(n * sizeof *r->p);
    r->masked = malloc(n * sizeof *r->masked);
    r->drop = malloc(n * sizeof *r->drop);
    if (r->keys && r->p && r->masked && r->drop) return RF_OK;
    free(r->keys), free(r->p), free(r->masked), free(r->drop);
    return rf_error(RF_ERR_OUT_OF_MEMORY, "local attention (cpu): no memory for a %zu-key window", n);
}

static void scratch_free(row_scratch *r) { free(r->keys), free(r->p), free(r->masked), free(r->drop); }

/* Fill r with query (b, h, qpos)'s window, softmax probabilities and their
 * dropout factors; return the window size and set *lse (undropped). Masks
 * replace logits (§5.4, device/attention_common.h). */
static int64_t row_probs(const rf_attn_window *w, const float *q, const float *k, const int32_t *mask, int64_t b,
                         int64_t h, int64_t qpos, row_scratch *r, double *lse) {
    int64_t n = window_keys(w, qpos, r->keys);
    const float *qi = q + row(w, b, qpos, h);
    double mx = -HUGE_VAL;
    for (int64_t j = 0; j < n; j++) {
        int64_t kpos = r->keys[j];
        const float *kj = k + row(w, b, kpos, h);
        double dot = 0;
        for (int64_t e = 0; e < w->head_dim; e++) dot += (double)qi[e] * kj[e];
        r->p[j] = rf_attn_masked_logit(dot * w->scale, qpos, kpos, rf_attn_key_is_token(mask, b, w->len, kpos),
                                       w->causal, w->self_mask, &r->masked[j]);
        if (r->p[j] > mx) mx = r->p[j];
    }
    double sum = 0;
    for (int64_t j = 0; j < n; j++) sum += exp(r->p[j] - mx);
    *lse = mx + log(sum);
    for (int64_t j = 0; j < n; j++) r->p[j] = exp(r->p[j] - *lse);
    /* Dropout (§2): query row qpos of L, window key j of n. */
    rf_attn_dropout drop = rf_attn_window_dropout(w);
    for (int64_t j = 0; j < n; j++)
        r->drop[j] = rf_attn_dropout_factor(&drop, b * w->heads + h, w->len, qpos, n, j);
    return n;
}

static rf_status rf_cpu_local_attention_forward(rf_tensor *out, rf_tensor *lse, const rf_tensor *q, const rf_tensor *k,
                                                const rf_tensor *v, const rf_tensor *mask, const rf_attn_window *w) {
    const float *qp = rf_cpu_f32(q), *kp = rf_cpu_f32(k), *vp = rf_cpu_f32(v);
    const int32_t *mp = mask ? rf_cpu_i32(mask) : NULL;
    float *op = rf_cpu_f32(out), *lp = lse ? rf_cpu_f32(lse) : NULL;
    row_scratch r;
    RF_TRY(scratch_alloc(w, &r));
    for (int64_t b = 0; b < w->batch; b++)
        for (int64_t h = 0; h < w->heads; h++)
            for (int64_t i = 0; i < w->len; i++) {
                double l;
                int64_t n = row_probs(w, qp, kp, mp, b, h, i, &r, &l);
                float *oi = op + row(w, b, i, h);
                for (int64_t e = 0; e < w->head_dim; e++) {
                    double acc = 0;
                    for (int64_t j = 0; j < n; j++) acc += r.p[j] * r.drop[j] * vp[row(w, b, r.keys[j], h) + e];
                    oi[e] = (float)acc;
                }
                if (lp) lp[(b * w->heads + h) * w->len + i] = (float)l;
            }
    scratch_free(&r);
    return RF_OK;
}

/* For each query i, with p the (undropped) probabilities, f_ij the dropout
 * factor and dp_ij = f_ij·(dout_i·v_j): dv_j += f_ij·p_ij·dout_i;
 * ds_ij = p_ij·(dp_ij − Σ_j' p_ij'·dp_ij') for unmasked logits (a replaced
 * logit is a constant); dq_i = scale·Σ_j ds_ij·k_j and dk_j += scale·ds_ij·q_i.
 * dk and dv are summed in double over all queries. */
static rf_status rf_cpu_local_attention_backward(rf_tensor *dq, rf_tensor *dk, rf_tensor *dv, const rf_tensor *dout,
                                                 const rf_tensor *out, const rf_tensor *lse, const rf_tensor *q,
                                                 const rf_tensor *k, const rf_tensor *v, const rf_tensor *mask,
                                                 const rf_attn_window *w) {
    (void)out, (void)lse; /* the reference recomputes them in double */
    const float *qp = rf_cpu_f32(q), *kp = rf_cpu_f32(k), *vp = rf_cpu_f32(v), *gp = rf_cpu_f32(dout);
    const int32_t *mp = mask ? rf_cpu_i32(mask) : NULL;
    size_t total = rf_tensor_numel(q);
    int64_t d = w->head_dim;
    row_scratch r;
    RF_TRY(scratch_alloc(w, &r));
    double *dkd = calloc(total, sizeof *dkd), *dvd = calloc(total, sizeof *dvd);
    double *dqi = malloc((size_t)d * sizeof *dqi);
    if (!dkd || !dvd || !dqi) {
        free(dkd), free(dvd), free(dqi), scratch_free(&r);
        return rf_error(RF_ERR_OUT_OF_MEMORY, "local attention backward (cpu): no memory for %zu gradients", total);
    }
    float *dqp = rf_cpu_f32(dq);
    for (int64_t b = 0; b < w->batch; b++)
        for (int64_t h = 0; h < w->heads; h++)
            for (int64_t i = 0; i < w->len; i++) {
                double l;
                int64_t n = row_probs(w, qp, kp, mp, b, h, i, &r, &l);
                size_t ri = row(w, b, i, h);
                const float *gi = gp + ri, *qi = qp + ri;
                double delta = 0;
                for (int64_t j = 0; j < n; j++) {
                    const float *vj = vp + row(w, b, r.keys[j], h);
                    double dp = 0;
                    for (int64_t e = 0; e < d; e++) dp += (double)gi[e] * vj[e];
                    delta += r.p[j] * (r.drop[j] * dp);
                }
                for (int64_t e = 0; e < d; e++) dqi[e] = 0;
                for (int64_t j = 0; j < n; j++) {
                    size_t rj = row(w, b, r.keys[j], h);
                    double dp = 0;
                    for (int64_t e = 0; e < d; e++) dp += (double)gi[e] * vp[rj + e];
                    dp *= r.drop[j];
                    for (int64_t e = 0; e < d; e++) dvd[rj + e] += r.p[j] * r.drop[j] * gi[e];
                    if (r.masked[j]) continue;
                    double ds = r.p[j] * (dp - delta) * w->scale;
                    for (int64_t e = 0; e < d; e++) {
                        dqi[e] += ds * kp[rj + e];
                        dkd[rj + e] += ds * qi[e];
                    }
                }
                for (int64_t e = 0; e < d; e++) dqp[ri + e] = (float)dqi[e];
            }
    float *dkp = rf_cpu_f32(dk), *dvp = rf_cpu_f32(dv);
    for (size_t x = 0; x < total; x++) dkp[x] = (float)dkd[x], dvp[x] = (float)dvd[x];
    free(dkd), free(dvd), free(dqi), scratch_free(&r);
    return RF_OK;
}

void rf_cpu_local_attention_register(rf_op_table *ops) {
    ops->local_attention_forward = rf_cpu_local_attention_forward;
    ops->local_attention_backward = rf_cpu_local_attention_backward;
}
