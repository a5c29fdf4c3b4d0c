/* Cached incremental decoding's attention on the cpu: the reference
 * (ops/decode_attention.h; §3–§6), double accumulation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "device/cpu/cpu_backend.h"
#include "device/attention_common.h"
#include "ops/decode_attention.h"

/* §3: the bucket of head h's row x (d values) in round r under rotations
 * [H, d, R, rc]. */
static int hash_row(const float *x, const float *rot, int h, int r, const rf_lsh_cache *c) {
    const int d = c->head_dim, R = c->n_rounds, rc = c->rot_cols;
    float rotated[RF_ATTN_MAX_HEAD_DIM * 4];
    float *big = rc > (int)(sizeof rotated / sizeof rotated[0]) ? malloc((size_t)rc * sizeof *big) : NULL;
    float *y = big ? big : rotated;
    for (int col = 0; col < rc; col++) {
        double acc = 0;
        for (int e = 0; e < d; e++) acc += (double)x[e] * rot[(((size_t)h * d + e) * R + r) * rc + col];
        y[col] = (float)acc;
    }
    int bucket = rf_attn_lsh_bucket(y, c->factors[0], c->factors[1]);
    free(big);
    return bucket;
}

/* Stable order of positions by id, for the sort below. */
typedef struct { int32_t id, pos; } keyed;
static int by_id_then_pos(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    return x->id != y->id ? (x->id > y->id) - (x->id < y->id) : (x->pos > y->pos) - (x->pos < y->pos);
}

static rf_status rf_cpu_lsh_cache_sort(rf_lsh_cache *c, const rf_tensor *rotations) {
    const int64_t B = c->batch, cap = c->capacity, L = c->length, HD = (int64_t)c->n_heads * c->head_dim;
    const int H = c->n_heads, R = c->n_rounds, d = c->head_dim;
    keyed *tmp = malloc((size_t)L * sizeof *tmp);
    if (!tmp) return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_lsh_cache_sort: no host memory");
    for (int64_t b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int r = 0; r < R; r++) {
                size_t row = (((size_t)b * H + h) * R + r) * (size_t)cap;
                int32_t *ids = rf_cpu_i32(&c->buckets) + row, *perm = rf_cpu_i32(&c->perm[c->cur]) + row;
                for (int64_t j = 0; j < L; j++) {
                    if (rotations) {
                        const float *x = rf_cpu_f32(&c->qk) + ((size_t)b * cap + (size_t)j) * HD + (size_t)h * d;
                        ids[j] = hash_row(x, rf_cpu_f32(rotations), h, r, c) + r * c->n_buckets;
                    }
                    tmp[j] = (keyed){ids[j], (int32_t)j};
                }
                qsort(tmp, (size_t)L, sizeof *tmp, by_id_then_pos);
                for (int64_t s = 0; s < L; s++) perm[s] = tmp[s].pos;
            }
    free(tmp);
    return RF_OK;
}

/* o (d values) and its logsumexp for query q over the cached positions
 * pos[0..n) of (b, h): keys normalised (§5.2), the self mask on `self`
 * (§5.4), p = exp(s − lse) as HF (§5.5). */
static double attend_positions(double *o, const float *q, const rf_lsh_cache *c, int64_t b, int h,
                               const int32_t *pos, int64_t n, int64_t self, double *s) {
    const int d = c->head_dim;
    const int64_t HD = (int64_t)c->n_heads * d;
    const float *QK = rf_cpu_f32(&c->qk) + (size_t)b * c->capacity * HD + (size_t)h * d;
    const float *V = rf_cpu_f32(&c->v) + (size_t)b * c->capacity * HD + (size_t)h * d;
    double mx = -INFINITY, sum = 0;
    for (int64_t w = 0; w < n; w++) {
        const float *x = QK + (size_t)pos[w] * HD;
        double dot = 0;
        for (int e = 0; e < d; e++) dot += (double)q[e] * x[e];
        bool masked;
        s[w] = rf_attn_masked_logit(dot * rf_attn_key_scale(x, d), 0, 0, true, false, pos[w] == self, &masked);
        if (s[w] > mx) mx = s[w];
    }
    for (int64_t w = 0; w < n; w++) sum += exp(s[w] - mx);
    double lse = mx + log(sum);
    for (int e = 0; e < d; e++) o[e] = 0;
    for (int64_t w = 0; w < n; w++) {
        double p = exp(s[w] - lse);
        const float *v = V + (size_t)pos[w] * HD;
        for (int e = 0; e < d; e++) o[e] += p * v[e];
    }
    return lse;
}

static rf_status rf_cpu_lsh_cache_attend(rf_tensor *out, rf_lsh_cache *c, const rf_tensor *qk, const rf_tensor *v,
                                         const rf_tensor *rotations) {
    const int64_t B = c->batch, cap = c->capacity, P = c->length, S = P + 1, HD = (int64_t)c->n_heads * c->head_dim;
    const int H = c->n_heads, R = c->n_rounds, d = c->head_dim, m = c->chunk_len;
    for (int64_t b = 0; b < B; b++) {
        memcpy(rf_cpu_f32(&c->qk) + ((size_t)b * cap + (size_t)P) * HD, rf_cpu_f32(qk) + b * HD, (size_t)HD * 4);
        memcpy(rf_cpu_f32(&c->v) + ((size_t)b * cap + (size_t)P) * HD, rf_cpu_f32(v) + b * HD, (size_t)HD * 4);
    }
    const int64_t W = c->hashed ? 2 * (int64_t)m : S;
    int32_t *pos = malloc((size_t)W * sizeof *pos);
    double *s = malloc((size_t)W * sizeof *s), *o = malloc((size_t)R * d * sizeof *o), *lse = malloc((size_t)R * sizeof *lse);
    rf_status st = pos && s && o && lse ? RF_OK : rf_error(RF_ERR_OUT_OF_MEMORY, "rf_lsh_cache_attend: no host memory");
    for (int64_t b = 0; st == RF_OK && b < B; b++)
        for (int h = 0; h < H; h++) {
            const float *q = rf_cpu_f32(qk) + b * HD + (size_t)h * d;
            float *y = rf_cpu_f32(out) + b * HD + (size_t)h * d;
            if (!c->hashed) { /* no buckets yet: every position */
                for (int64_t j = 0; j < S; j++) pos[j] = (int32_t)j;
                attend_positions(o, q, c, b, h, pos, S, P, s);
                for (int e = 0; e < d; e++) y[e] = (float)o[e];
                continue;
            }
            for (int r = 0; r < R; r++) {
                size_t row = (((size_t)b * H + h) * R + r) * (size_t)cap;
                int32_t *ids = rf_cpu_i32(&c->buckets) + row;
                const int32_t *from = rf_cpu_i32(&c->perm[c->cur]) + row;
                int32_t *to = rf_cpu_i32(&c->perm[c->cur ^ 1]) + row;
                int32_t id = hash_row(q, rf_cpu_f32(rotations), h, r, c) + r * c->stride;
                /* The stable order puts the newest position after every equal id. */
                int64_t at = 0;
                for (int64_t j = 0; j < P; j++) at += ids[j] <= id;
                for (int64_t t = 0; t < S; t++) to[t] = t < at ? from[t] : t == at ? (int32_t)P : from[t - 1];
                ids[P] = id;
                /* Its chunk of sorted slots and the one before, modulo S (§4). */
                int64_t lo = (at / m - 1) * m;
                for (int64_t w = 0; w < W; w++) pos[w] = to[((lo + w) % S + S) % S];
                lse[r] = attend_positions(o + (size_t)r * d, q, c, b, h, pos, W, P, s);
            }
            /* §5.6: the rounds weighted by softmax of their lse. */
            double mx = -INFINITY, sum = 0;
            for (int r = 0; r < R; r++) mx = lse[r] > mx ? lse[r] : mx;
            for (int r = 0; r < R; r++) sum += exp(lse[r] - mx);
            for (int e = 0; e < d; e++) {
                double acc = 0;
                for (int r = 0; r < R; r++) acc += exp(lse[r] - mx) / sum * o[(size_t)r * d + e];
                y[e] = (float)acc;
            }
        }
    free(pos);
    free(s);
    free(o);
    free(lse);
    return st;
}

static rf_status rf_cpu_local_cache_attend(rf_tensor *out, rf_tensor *k_ring, rf_tensor *v_ring, const rf_tensor *q,
                                           const rf_tensor *k, const rf_tensor *v, int64_t pos, int chunk_len,
                                           int n_heads) {
    const int64_t B = out->shape[0], HD = out->shape[1], W = 2 * (int64_t)chunk_len, d = HD / n_heads;
    const int64_t start = pos >= chunk_len ? (pos / chunk_len - 1) * chunk_len : 0;
    double s[2 * 256 + 1], o[RF_ATTN_MAX_HEAD_DIM];
    double *big = W > 512 ? malloc((size_t)W * sizeof *big) : NULL;
    if (W > 512 && !big) return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_local_cache_attend: no host memory");
    double *sc = big ? big : s;
    for (int64_t b = 0; b < B; b++) {
        memcpy(rf_cpu_f32(k_ring) + ((size_t)b * W + (size_t)(pos % W)) * HD, rf_cpu_f32(k) + b * HD, (size_t)HD * 4);
        memcpy(rf_cpu_f32(v_ring) + ((size_t)b * W + (size_t)(pos % W)) * HD, rf_cpu_f32(v) + b * HD, (size_t)HD * 4);
        for (int h = 0; h < n_heads; h++) {
            const float *qh = rf_cpu_f32(q) + b * HD + h * d;
            double mx = -INFINITY, sum = 0;
            for (int64_t j = start; j <= pos; j++) {
                const float *kh = rf_cpu_f32(k_ring) + ((size_t)b * W + (size_t)(j % W)) * HD + h * d;
                double dot = 0;
                for (int64_t e = 0; e < d; e++) dot += (double)qh[e] * kh[e];
                sc[j - start] = dot / sqrt((double)d); /* §6: k/√d */
                if (sc[j - start] > mx) mx = sc[j - start];
            }
            for (int64_t j = start; j <= pos; j++) sum += exp(sc[j - start] - mx);
            for (int64_t e = 0; e < d; e++) o[e] = 0;
            for (int64_t j = start; j <= pos; j++) {
                double p = exp(sc[j - start] - mx) / sum;
                const float *vh = rf_cpu_f32(v_ring) + ((size_t)b * W + (size_t)(j % W)) * HD + h * d;
                for (int64_t e = 0; e < d; e++) o[e] += p * vh[e];
            }
            for (int64_t e = 0; e < d; e++) rf_cpu_f32(out)[b * HD + h * d + e] = (float)o[e];
        }
    }
    free(big);
    return RF_OK;
}

void rf_cpu_decode_attention_register(rf_op_table *ops) {
    ops->lsh_cache_sort = rf_cpu_lsh_cache_sort;
    ops->lsh_cache_attend = rf_cpu_lsh_cache_attend;
    ops->local_cache_attend = rf_cpu_local_cache_attend;
}
