/* LSH self-attention on the cpu: the reference (SPEC §3–§5), a direct
 * reading of the maths with double accumulation. The front door
 * (src/ops/lsh_attention.c) has checked every argument and computed the
 * hashing product x·R into st->rotated with rf_gemm. */
#include <math.h>
#include <stdlib.h>
#include "device/device_impl.h"
#include "device/cpu/cpu_ops.h"

/* §3: argmax over [r, −r] (length 2·half) with ties to the lowest index. */
static int argmax_pm(const float *r, int half) {
    int best = 0;
    float bv = r[0];
    for (int j = 1; j < half; j++)
        if (r[j] > bv) bv = r[j], best = j;
    for (int j = 0; j < half; j++)
        if (-r[j] > bv) bv = -r[j], best = half + j;
    return best;
}

rf_status rf_cpu_lsh_buckets(rf_lsh_state *st, const rf_tensor *mask) {
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
                    int bucket = f2 ? argmax_pm(x, f1 / 2) + f1 * argmax_pm(x + f1 / 2, f2 / 2) : argmax_pm(x, f1 / 2);
                    if (pad && pad[b * L + t] == 0) bucket = st->n_buckets; /* §3: the extra bucket */
                    bk[((size_t)(b * H + h) * R + r) * L + t] = bucket + r * st->bucket_stride;
                }
    return RF_OK;
}

rf_status rf_cpu_lsh_sort(rf_lsh_state *st) {
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

rf_status rf_cpu_lsh_attend(rf_lsh_state *st, const rf_tensor *qk, const rf_tensor *v, const rf_tensor *mask) {
    const int64_t B = st->batch, L = st->seq_len;
    const int H = st->n_heads, d = st->head_dim, m = st->chunk_len;
    const int64_t N = (int64_t)st->n_rounds * L, nc = N / m;
    const size_t row = (size_t)H * d; /* elements between positions in qk and v */
    const float *QK = rf_cpu_f32(qk), *V = rf_cpu_f32(v);
    const int32_t *pad = mask ? rf_cpu_i32(mask) : NULL;
    /* Chunk c attends to chunk c−1 (cyclic) and itself; a single chunk (the
     * full path, §5.7) only to itself. */
    const int nkeys = nc > 1 ? 2 * m : m;
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
            /* §5.2: the keys are the normalised queries, gathered in sorted order. */
            for (int j = 0; j < nkeys; j++) {
                int64_t slot = nc > 1 ? (j < m ? ((c + nc - 1) % nc) * m + j : c * m + j - m) : c * m + j;
                kpos[j] = perm[slot] % L;
                const float *x = QK + (size_t)(b * L + kpos[j]) * row + (size_t)h * d;
                double ss = 0;
                for (int e = 0; e < d; e++) ss += (double)x[e] * x[e];
                double scale = 1.0 / sqrt(ss / d + 1e-6) / sqrt((double)d);
                for (int e = 0; e < d; e++) k[(size_t)j * d + e] = x[e] * scale;
            }
            for (int i = 0; i < m; i++) {
                int64_t qslot = c * m + i, qpos = perm[qslot] % L;
                const float *q = QK + (size_t)(b * L + qpos) * row + (size_t)h * d;
                double mx = -INFINITY;
                for (int j = 0; j < nkeys; j++) {
                    double dot = 0;
                    for (int e = 0; e < d; e++) dot += q[e] * k[(size_t)j * d + e];
                    /* §5.4: masks replace logits, causal/padding first, then self. */
                    if ((st->causal && kpos[j] > qpos) || (pad && pad[b * L + kpos[j]] == 0)) dot = -1e9;
                    if (kpos[j] == qpos) dot = -1e5;
                    s[j] = dot;
                    if (dot > mx) mx = dot;
                }
                double sum = 0;
                for (int j = 0; j < nkeys; j++) sum += exp(s[j] - mx);
                /* §5.5. With hf_rounding, as the HF model: lse is a float32 value and
                 * p = exp(s − lse) is not renormalised, so a query that sees only copies
                 * of itself (−1e5, where float32 steps are 2⁻⁷) gets weights summing to
                 * slightly less than 1 (docs/hf-compat.md §8). */
                float lse = (float)(mx + log(sum));
                double norm = st->hf_rounding ? (double)lse : mx + log(sum);
                for (int j = 0; j < nkeys; j++) s[j] = exp(s[j] - norm); /* now the probabilities */
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

rf_status rf_cpu_lsh_combine(rf_tensor *out, const rf_lsh_state *st) {
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
