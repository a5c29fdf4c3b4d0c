/* LSH self-attention on the cpu: the reference (§3–§5), a direct
 * reading of the maths with double accumulation. The front door
 * (src/ops/lsh_attention.c) has checked every argument and computed the
 * hashing product x·R into st->rotated with rf_gemm. */
#include <math.h>
#include <stdlib.h>
#include "device/cpu/cpu_backend.h"
#include "device/attention_common.h"
#include "core/philox.h"

static rf_status rf_cpu_lsh_buckets(rf_lsh_state *st, const rf_tensor *mask) {
    const int64_t B = st->batch, L = st->seq_len;
    const int H = st->n_heads, R = st->n_rounds, rc = st->rot_cols, f1 = st->factors[0], f2 = st->factors[1];
    const float *rot = rf_cpu_f32(&st->rotated);
    const int32_t *pad = mask ? rf_cpu_i32(mask) : NULL;
    int32_t *bk = rf_cpu_i32(&st->buckets);
    for (int64_t b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int r = 0; r < R; r++)
                for (int64_t t = 0; t < L; t++) {
                    /* rotated[h, b·L + t, r·rc + j] = (x·R_h)[round r, column j] */
                    const float *x = rot + ((size_t)h * B * L + (size_t)(b * L + t)) * R * rc + (size_t)r * rc;
                    int bucket = rf_attn_lsh_bucket(x, f1, f2);
                    if (pad && pad[b * L + t] == 0) bucket = st->n_buckets; /* §3: the extra bucket */
                    bk[((size_t)(b * H + h) * R + r) * L + t] = bucket + r * st->bucket_stride;
                }
    return RF_OK;
}

static rf_status rf_cpu_lsh_sort(rf_lsh_state *st) {
    /* §4: a stable counting sort of each (batch, head)'s R·L items by their
     * bucket id (which already carries the round): equal ids keep position
     * order, so the order is (round, bucket, position). */
    const size_t N = (size_t)st->n_rounds * st->seq_len, K = (size_t)st->n_rounds * st->bucket_stride;
    size_t *start = calloc(K + 1, sizeof *start);
    if (!start) return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_lsh_sort: no memory for %zu counters", K + 1);
    for (int64_t bh = 0; bh < st->batch * st->n_heads; bh++) {
        const int32_t *bk = rf_cpu_i32(&st->buckets) + bh * N;
        int32_t *perm = rf_cpu_i32(&st->perm) + bh * N, *undo = rf_cpu_i32(&st->undo) + bh * N;
        for (size_t k = 0; k <= K; k++) start[k] = 0;
        for (size_t i = 0; i < N; i++) start[bk[i] + 1]++;
        for (size_t k = 0; k < K; k++) start[k + 1] += start[k];
        for (size_t i = 0; i < N; i++) {
            size_t slot = start[bk[i]]++;
            perm[slot] = (int32_t)i;
            undo[i] = (int32_t)slot;
        }
    }
    free(start);
    return RF_OK;
}

/* §5.3: the sorted slot of key j (of 2m, or m with one chunk) in chunk c's
 * window: chunk c−1 (cyclic) then chunk c; a single chunk (the full path,
 * §5.7) sees only itself. */
static int64_t key_slot(int64_t c, int j, int m, int64_t nc) {
    return nc > 1 ? (j < m ? ((c + nc - 1) % nc) * m + j : c * m + j - m) : c * m + j;
}

/* §5.2: chunk c's window keys, k_j = x_j·rf_attn_key_scale(x_j) in double,
 * and their positions. */
static void window_keys(double *k, int64_t *kpos, const rf_lsh_state *st, const float *QK, const int32_t *perm,
                        int64_t b, int h, int64_t c, int nkeys) {
    const int64_t L = st->seq_len, nc = (int64_t)st->n_rounds * L / st->chunk_len;
    const int d = st->head_dim;
    for (int j = 0; j < nkeys; j++) {
        kpos[j] = perm[key_slot(c, j, st->chunk_len, nc)] % L;
        const float *x = QK + (size_t)(b * L + kpos[j]) * st->n_heads * d + (size_t)h * d;
        double scale = rf_attn_key_scale(x, d);
        for (int e = 0; e < d; e++) k[(size_t)j * d + e] = x[e] * scale;
    }
}

static rf_status rf_cpu_lsh_attend(rf_lsh_state *st, const rf_tensor *qk, const rf_tensor *v, const rf_tensor *mask) {
    const int64_t B = st->batch, L = st->seq_len;
    const int H = st->n_heads, d = st->head_dim, m = st->chunk_len;
    const int64_t N = (int64_t)st->n_rounds * L, nc = N / m;
    const size_t row = (size_t)H * d; /* elements between positions in qk and v */
    const float *QK = rf_cpu_f32(qk), *V = rf_cpu_f32(v);
    const int32_t *pad = mask ? rf_cpu_i32(mask) : NULL;
    /* Chunk c attends to chunk c−1 (cyclic) and itself; a single chunk (the
     * full path, §5.7) only to itself. */
    const int nkeys = nc > 1 ? 2 * m : m;
    const rf_attn_dropout drop = rf_attn_lsh_dropout(st);
    double *k = malloc((size_t)nkeys * d * sizeof *k), *s = malloc((size_t)nkeys * sizeof *s);
    int64_t *kpos = malloc((size_t)nkeys * sizeof *kpos);
    if (!k || !s || !kpos) {
        free(k), free(s), free(kpos);
        return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_lsh_attend: no memory for a chunk's keys");
    }
    for (int64_t bh = 0; bh < B * H; bh++) {
        const int64_t b = bh / H;
        const int h = (int)(bh % H);
        const int32_t *perm = rf_cpu_i32(&st->perm) + bh * N;
        float *O = rf_cpu_f32(&st->o_sorted) + bh * N * d, *LSE = rf_cpu_f32(&st->lse_sorted) + bh * N;
        for (int64_t c = 0; c < nc; c++) {
            window_keys(k, kpos, st, QK, perm, b, h, c, nkeys); /* the normalised queries, in sorted order */
            for (int i = 0; i < m; i++) {
                int64_t qslot = c * m + i, qpos = perm[qslot] % L;
                const float *q = QK + (size_t)(b * L + qpos) * row + (size_t)h * d;
                double mx = -INFINITY;
                for (int j = 0; j < nkeys; j++) {
                    double dot = 0;
                    for (int e = 0; e < d; e++) dot += q[e] * k[(size_t)j * d + e];
                    bool masked;
                    s[j] = rf_attn_masked_logit(dot, qpos, kpos[j], rf_attn_key_is_token(pad, b, L, kpos[j]),
                                                st->causal, true, &masked);
                    if (s[j] > mx) mx = s[j];
                }
                double sum = 0;
                for (int j = 0; j < nkeys; j++) sum += exp(s[j] - mx);
                /* §5.5. With hf_rounding, as the HF model: lse is a float32 value and
                 * p = exp(s − lse) is not renormalised, so a query that sees only copies
                 * of itself (−1e5, where float32 steps are 2⁻⁷) gets weights summing to
                 * slightly less than 1 (docs/hf-compat.md §8). */
                float lse = (float)(mx + log(sum));
                double norm = st->hf_rounding ? (double)lse : mx + log(sum);
                /* now the probabilities, dropped out (lse is not) */
                for (int j = 0; j < nkeys; j++)
                    s[j] = exp(s[j] - norm) * rf_attn_dropout_factor(&drop, bh, N, qslot, nkeys, j);
                float *o = O + qslot * d;
                for (int e = 0; e < d; e++) {
                    double acc = 0;
                    for (int j = 0; j < nkeys; j++) acc += s[j] * V[(size_t)(b * L + kpos[j]) * row + (size_t)h * d + e];
                    o[e] = (float)acc;
                }
                LSE[qslot] = lse;
            }
        }
    }
    free(k), free(s), free(kpos);
    return RF_OK;
}

static rf_status rf_cpu_lsh_combine(rf_tensor *out, const rf_lsh_state *st) {
    /* §5.6: o_t = Σ_r exp(lse_tr − logsumexp_r' lse_tr')·o_tr, each round's
     * result found through undo. */
    const int64_t B = st->batch, L = st->seq_len, N = (int64_t)st->n_rounds * L;
    const int H = st->n_heads, d = st->head_dim, R = st->n_rounds;
    float *OUT = rf_cpu_f32(out);
    for (int64_t bh = 0; bh < B * H; bh++) {
        const int64_t b = bh / H;
        const int h = (int)(bh % H);
        const int32_t *undo = rf_cpu_i32(&st->undo) + bh * N;
        const float *O = rf_cpu_f32(&st->o_sorted) + bh * N * d, *LSE = rf_cpu_f32(&st->lse_sorted) + bh * N;
        for (int64_t t = 0; t < L; t++) {
            double mx = -INFINITY, sum = 0;
            for (int r = 0; r < R; r++) mx = fmax(mx, LSE[undo[r * L + t]]);
            for (int r = 0; r < R; r++) sum += exp(LSE[undo[r * L + t]] - mx);
            /* The rounds' total; with hf_rounding a float32 value as in HF
             * (docs/hf-compat.md §8). */
            double total = st->hf_rounding ? (double)(float)(mx + log(sum)) : mx + log(sum);
            float *o = OUT + (size_t)(b * L + t) * H * d + (size_t)h * d;
            for (int e = 0; e < d; e++) {
                double acc = 0;
                for (int r = 0; r < R; r++) {
                    int32_t slot = undo[r * L + t];
                    acc += exp((double)LSE[slot] - total) * O[(size_t)slot * d + e];
                }
                o[e] = (float)acc;
            }
        }
    }
    return RF_OK;
}

/* The backward pass (§5.6, §3, §4), from the forward's state. The rounds'
 * combination out_t = Σ_r w_tr·o_tr, w_tr = softmax_r(lse_tr), sends
 * d o_tr = w_tr·dout_t and d lse_tr = w_tr·dout_t·(o_tr − out_t); inside a
 * round, with p_ij = exp(s_ij − lse_i), g_i = d o_i and the dropout factor
 * D_ij = keep_ij/(1 − p) (1 without dropout; o_i = Σ_j D_ij·p_ij·v_j),
 *   dv_j  += D_ij·p_ij·g_i
 *   ds_ij  = p_ij·(D_ij·g_i·v_j − g_i·o_i + d lse_i) = p_ij·(D_ij·g_i·v_j − w_i·dout_t·out_t)
 * for logits that are not mask constants (those carry no gradient). Then
 * s_ij = q_i·k_j sends ds_ij·k_j to the query's qk and ds_ij·q_i to the key,
 * which goes back through k = x·a(x) (§5.2). Everything is summed by
 * position: the sort's gradient is the inverse permutation (§4). */
static rf_status rf_cpu_lsh_attention_backward(rf_tensor *dqk, rf_tensor *dv, const rf_tensor *dout,
                                               const rf_lsh_state *st,
                                               const rf_tensor *qk, const rf_tensor *v, const rf_tensor *mask) {
    const int64_t B = st->batch, L = st->seq_len;
    const int H = st->n_heads, d = st->head_dim, m = st->chunk_len, R = st->n_rounds;
    const int64_t N = (int64_t)R * L, nc = N / m;
    const int nkeys = nc > 1 ? 2 * m : m;
    const rf_attn_dropout drop = rf_attn_lsh_dropout(st);
    const size_t row = (size_t)H * d;
    const float *QK = rf_cpu_f32(qk), *V = rf_cpu_f32(v), *DOUT = rf_cpu_f32(dout);
    const int32_t *pad = mask ? rf_cpu_i32(mask) : NULL;
    float *DQK = rf_cpu_f32(dqk), *DV = rf_cpu_f32(dv);
    /* per (batch, head): the round weight w and c = w·dout·out of each sorted
     * item; per position: the three gradients (query path, key path before
     * the normalisation, value) */
    double *w = malloc((size_t)N * sizeof *w), *cw = malloc((size_t)N * sizeof *cw);
    double *gq = malloc((size_t)L * d * sizeof *gq), *gk = malloc((size_t)L * d * sizeof *gk);
    double *gv = malloc((size_t)L * d * sizeof *gv), *k = malloc((size_t)nkeys * d * sizeof *k);
    int64_t *kpos = malloc((size_t)nkeys * sizeof *kpos);
    if (!w || !cw || !gq || !gk || !gv || !k || !kpos) {
        free(w), free(cw), free(gq), free(gk), free(gv), free(k), free(kpos);
        return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_lsh_attention_backward: no memory for a head's gradients");
    }
    for (int64_t bh = 0; bh < B * H; bh++) {
        const int64_t b = bh / H;
        const int h = (int)(bh % H);
        const int32_t *perm = rf_cpu_i32(&st->perm) + bh * N, *undo = rf_cpu_i32(&st->undo) + bh * N;
        const float *O = rf_cpu_f32(&st->o_sorted) + bh * N * d, *LSE = rf_cpu_f32(&st->lse_sorted) + bh * N;
        /* §5.6: w_tr and dout_t·out_t = Σ_r w_tr·(dout_t·o_tr). */
        for (int64_t t = 0; t < L; t++) {
            const float *g = DOUT + (size_t)(b * L + t) * row + (size_t)h * d;
            double mx = -INFINITY, sum = 0, delta = 0;
            for (int r = 0; r < R; r++) mx = fmax(mx, LSE[undo[r * L + t]]);
            for (int r = 0; r < R; r++) sum += exp(LSE[undo[r * L + t]] - mx);
            for (int r = 0; r < R; r++) {
                int32_t slot = undo[r * L + t];
                double dot = 0;
                for (int e = 0; e < d; e++) dot += (double)g[e] * O[(size_t)slot * d + e];
                w[slot] = exp(LSE[slot] - mx) / sum;
                delta += w[slot] * dot;
            }
            for (int r = 0; r < R; r++) cw[undo[r * L + t]] = w[undo[r * L + t]] * delta;
        }
        for (size_t x = 0; x < (size_t)L * d; x++) gq[x] = gk[x] = gv[x] = 0;
        for (int64_t c = 0; c < nc; c++) {
            window_keys(k, kpos, st, QK, perm, b, h, c, nkeys); /* as the forward */
            for (int i = 0; i < m; i++) {
                const int64_t qslot = c * m + i, qpos = perm[qslot] % L;
                const float *q = QK + (size_t)(b * L + qpos) * row + (size_t)h * d;
                const float *g = DOUT + (size_t)(b * L + qpos) * row + (size_t)h * d; /* g_i = w_i·g */
                for (int j = 0; j < nkeys; j++) {
                    const float *vj = V + (size_t)(b * L + kpos[j]) * row + (size_t)h * d;
                    double dot = 0;
                    for (int e = 0; e < d; e++) dot += q[e] * k[(size_t)j * d + e];
                    bool masked;
                    double s = rf_attn_masked_logit(dot, qpos, kpos[j], rf_attn_key_is_token(pad, b, L, kpos[j]),
                                                    st->causal, true, &masked);
                    /* §5.5 from the stored lse, the forward's own normaliser. It is a
                     * float: for a query that sees only copies of itself (two at a
                     * round boundary) lse ≈ −1e5, where float steps are 2⁻⁷, so p
                     * there is off by up to 0.4% (as on every device). */
                    double p = exp(s - LSE[qslot]), gvj = 0, D = rf_attn_dropout_factor(&drop, bh, N, qslot, nkeys, j);
                    for (int e = 0; e < d; e++) {
                        gv[kpos[j] * d + e] += D * p * w[qslot] * g[e];
                        gvj += w[qslot] * g[e] * vj[e];
                    }
                    if (masked) continue;
                    double ds = p * (D * gvj - cw[qslot]);
                    for (int e = 0; e < d; e++) {
                        gq[qpos * d + e] += ds * k[(size_t)j * d + e];
                        gk[kpos[j] * d + e] += ds * q[e];
                    }
                }
            }
        }
        /* §5.2 backward: the key path gk goes back through k = x·a(x) and
         * joins the query path gq. */
        for (int64_t t = 0; t < L; t++) {
            const size_t at = (size_t)(b * L + t) * row + (size_t)h * d;
            rf_attn_key_scale_backward(gq + t * d, gk + t * d, QK + at, d);
            for (int e = 0; e < d; e++) {
                DQK[at + e] = (float)gq[t * d + e];
                DV[at + e] = (float)gv[t * d + e];
            }
        }
    }
    free(w), free(cw), free(gq), free(gk), free(gv), free(k), free(kpos);
    return RF_OK;
}

void rf_cpu_lsh_attention_register(rf_op_table *ops) {
    ops->lsh_buckets = rf_cpu_lsh_buckets;
    ops->lsh_sort = rf_cpu_lsh_sort;
    ops->lsh_attend = rf_cpu_lsh_attend;
    ops->lsh_combine = rf_cpu_lsh_combine;
    ops->lsh_attention_backward = rf_cpu_lsh_attention_backward;
}
