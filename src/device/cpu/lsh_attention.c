/* LSH self-attention on the cpu: the reference (§3–§5). Attention is
 * computed a sorted chunk at a time as dense blocks (device/cpu/block.h),
 * in float with double softmax sums and position sums; the forward runs
 * its chunks in parallel, the backward one (batch, head) per thread. The front door
 * (src/ops/lsh_attention.c) has checked every argument and computed the
 * hashing product x·R into st->rotated with rf_gemm. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#include "device/cpu/cpu_backend.h"
#include "device/cpu/block.h"
#include "device/attention_common.h"
#include "core/philox.h"

static rf_status rf_cpu_lsh_buckets(rf_lsh_state *st, const rf_tensor *mask) {
    const int64_t B = st->batch, L = st->seq_len;
    const int H = st->n_heads, R = st->n_rounds, rc = st->rot_cols, f1 = st->factors[0], f2 = st->factors[1];
    const float *rot = rf_cpu_f32(&st->rotated);
    const int32_t *pad = mask ? rf_cpu_i32(mask) : NULL;
    int32_t *bk = rf_cpu_i32(&st->buckets);
#pragma omp parallel for collapse(3) schedule(static)
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

/* Rows in sorted order (§4): for sorted slots of a (batch, head)'s
 * N = R·L items, the position, the query (the qk row), the key
 * k = qk·a(qk) (§5.2) and the value, so that a chunk's rows are contiguous
 * blocks the products read in place. The backward gathers a whole
 * (batch, head) at once; the forward a chunk at a time into its window. */
typedef struct sorted_rows {
    int32_t *pos;
    float *q, *k, *v;
} sorted_rows;

/* Bytes of one (batch, head)'s sorted rows. */
static size_t sorted_bytes(int64_t N, int d) { return (size_t)N * (sizeof(int32_t) + 3 * (size_t)d * sizeof(float)); }

/* The sorted rows of (batch, head) bh laid out in `mem` (sorted_bytes). */
static sorted_rows sorted_at(void *mem, int64_t N, int d) {
    sorted_rows r = {.q = mem};
    r.k = r.q + (size_t)N * d, r.v = r.k + (size_t)N * d;
    r.pos = (int32_t *)(r.v + (size_t)N * d);
    return r;
}

/* Slots [i0, i1) of (batch b, head h) into rows 0 … i1 − i0 of r:
 * position, query, key, value. */
static void sort_rows(const rf_lsh_state *st, const float *QK, const float *V, const int32_t *perm, int64_t b, int h,
                      int64_t i0, int64_t i1, const sorted_rows *r) {
    const int64_t L = st->seq_len;
    const int d = st->head_dim;
    const size_t row = (size_t)st->n_heads * d; /* elements between positions in qk and v */
    for (int64_t i = i0; i < i1; i++) {
        const int32_t pos = perm[i] % (int32_t)L;
        const float *x = QK + (size_t)(b * L + pos) * row + (size_t)h * d;
        const float a = (float)rf_attn_key_scale(x, d);
        const size_t at = (size_t)(i - i0);
        float *q = r->q + at * d, *k = r->k + at * d;
        r->pos[at] = pos;
        memcpy(q, x, (size_t)d * 4);
#pragma omp simd
        for (int e = 0; e < d; e++) k[e] = x[e] * a;
        memcpy(r->v + at * d, V + (size_t)(b * L + pos) * row + (size_t)h * d, (size_t)d * 4);
    }
}

/* One thread's blocks for one sorted chunk (device/cpu/block.h): its m
 * queries against its window of nkeys keys — m = 64 and 2m = 128 keys by
 * default, a [64 × 128] float score block of 32 KiB that stays in cache
 * with the rows. q, qpos, k, v, kpos point at the chunk's rows: in the
 * forward its window gathered into qbuf, kbuf, vbuf, kposbuf
 * (window_gather); in the backward into the sorted rows, but for the one
 * window that wraps around, copied into kbuf, vbuf, kposbuf
 * (window_in_rows). Probabilities and dropout
 * factors [m × nkeys], which logits a mask replaced and which keys are
 * tokens (key_ok); the backward's round-weighted output gradients [m × d],
 * dp [m × nkeys] and the block's gradients for queries [m × d], keys and
 * values [nkeys × d]. */
typedef struct chunk_scratch {
    const int32_t *qpos, *kpos;
    const float *q, *k, *v;
    int32_t *kposbuf;
    float *qbuf, *kbuf, *vbuf, *p, *drop, *g, *dp, *dq, *dk, *dv;
    unsigned char *masked, *key_ok;
    float *mx, *rescale; /* per query row: its max logit, its probabilities' factor */
    double *sum;         /* and its sum of exponentials */
} chunk_scratch;

static void chunk_scratch_free(chunk_scratch *s) {
    free(s->kposbuf), free(s->qbuf), free(s->kbuf), free(s->vbuf), free(s->p), free(s->drop);
    free(s->g), free(s->dp), free(s->dq), free(s->dk), free(s->dv), free(s->masked), free(s->key_ok);
    free(s->mx), free(s->rescale), free(s->sum);
}

/* Returns false when out of memory (s is then freed). */
static bool chunk_scratch_alloc(chunk_scratch *s, int m, int nkeys, int d, bool backward) {
    const size_t f = sizeof(float), md = (size_t)m * d, kd = (size_t)nkeys * d, mk = (size_t)m * nkeys;
    *s = (chunk_scratch){.kposbuf = malloc(nkeys * sizeof *s->kposbuf), .kbuf = malloc(kd * f),
                         .vbuf = malloc(kd * f), .p = malloc(mk * f), .drop = malloc(mk * f), .masked = malloc(mk),
                         .key_ok = malloc(nkeys)};
    bool ok = s->kposbuf && s->kbuf && s->vbuf && s->p && s->drop && s->masked && s->key_ok;
    if (backward) {
        s->g = malloc(md * f), s->dp = malloc(mk * f), s->dq = malloc(md * f), s->dk = malloc(kd * f);
        s->dv = malloc(kd * f);
        ok = ok && s->g && s->dp && s->dq && s->dk && s->dv;
    } else { /* the forward gathers its queries and keeps per-row softmax factors */
        s->qbuf = malloc(md * f), s->mx = malloc(m * f), s->rescale = malloc(m * f), s->sum = malloc(m * sizeof *s->sum);
        ok = ok && s->qbuf && s->mx && s->rescale && s->sum;
    }
    if (!ok) chunk_scratch_free(s);
    return ok;
}

/* Sorted chunk c's queries and window (§5.3: chunk c−1, cyclic, then
 * chunk c; a single chunk, the full path of §5.7, sees only itself) in a
 * (batch, head)'s sorted rows r: pointers into r, but for the one window
 * that wraps around (chunk 0's, whose first half is the last chunk),
 * copied into s->kbuf, s->vbuf, s->kposbuf. */
static void window_in_rows(const rf_lsh_state *st, const sorted_rows *r, int64_t c, chunk_scratch *s) {
    const int64_t nc = (int64_t)st->n_rounds * st->seq_len / st->chunk_len;
    const int d = st->head_dim, m = st->chunk_len;
    const size_t md = (size_t)m * d;
    s->q = r->q + c * md, s->qpos = r->pos + c * m;
    const int64_t first = nc > 1 ? c - 1 : c; /* the window's first chunk, unless it wraps */
    if (first >= 0) {
        s->k = r->k + first * md, s->v = r->v + first * md, s->kpos = r->pos + first * m;
    } else { /* chunk 0: the last chunk, then chunk 0 */
        const int64_t last = nc - 1;
        memcpy(s->kbuf, r->k + last * md, md * 4), memcpy(s->kbuf + md, r->k, md * 4);
        memcpy(s->vbuf, r->v + last * md, md * 4), memcpy(s->vbuf + md, r->v, md * 4);
        memcpy(s->kposbuf, r->pos + last * m, (size_t)m * 4), memcpy(s->kposbuf + m, r->pos, (size_t)m * 4);
        s->k = s->kbuf, s->v = s->vbuf, s->kpos = s->kposbuf;
    }
}

/* Chunk c's window gathered into s->qbuf, s->kbuf, s->vbuf, s->kposbuf
 * (the forward: each chunk's rows are gathered once, by the thread that
 * takes the chunk, and stay in its cache). A thread takes consecutive
 * chunks, so the rows of chunk c−1 are usually the second half of its
 * last window: moved to the first half, not gathered again. */
static void window_gather(const rf_lsh_state *st, const float *QK, const float *V, int64_t bh, int64_t c,
                          bool follows, chunk_scratch *s) {
    const int64_t nc = (int64_t)st->n_rounds * st->seq_len / st->chunk_len, b = bh / st->n_heads;
    const int h = (int)(bh % st->n_heads), d = st->head_dim, m = st->chunk_len;
    const size_t md = (size_t)m * d;
    const int32_t *perm = rf_cpu_i32(&st->perm) + bh * (int64_t)st->n_rounds * st->seq_len;
    const int64_t own = nc > 1 ? m : 0; /* chunk c's first row in the window */
    if (nc > 1 && follows && c > 0) {
        memcpy(s->kbuf, s->kbuf + md, md * 4), memcpy(s->vbuf, s->vbuf + md, md * 4);
        memcpy(s->kposbuf, s->kposbuf + m, (size_t)m * 4);
    } else if (nc > 1) { /* chunk c−1, cyclic (its queries land in qbuf, overwritten next) */
        const int64_t prev = (c + nc - 1) % nc;
        sort_rows(st, QK, V, perm, b, h, prev * m, (prev + 1) * m,
                  &(sorted_rows){.pos = s->kposbuf, .q = s->qbuf, .k = s->kbuf, .v = s->vbuf});
    }
    sort_rows(st, QK, V, perm, b, h, c * m, (c + 1) * m,
              &(sorted_rows){.pos = s->kposbuf + own, .q = s->qbuf, .k = s->kbuf + own * d, .v = s->vbuf + own * d});
    s->q = s->qbuf, s->qpos = s->kposbuf + own, s->k = s->kbuf, s->v = s->vbuf, s->kpos = s->kposbuf;
}

/* The chunk's window (s->q, s->k, s->kpos set): which window keys are
 * tokens, and the masked logits q_i·k_j (§5.4) in s->p. */
static void chunk_logits(const rf_lsh_state *st, const int32_t *pad, int64_t b, int nkeys, chunk_scratch *s) {
    for (int j = 0; j < nkeys; j++) s->key_ok[j] = rf_attn_key_is_token(pad, b, st->seq_len, s->kpos[j]);
    rf_cpu_block_mm(s->p, s->q, false, s->k, true, st->chunk_len, nkeys, st->head_dim);
    rf_cpu_block_mask(s->p, s->masked, st->chunk_len, nkeys, 1.0f, s->qpos, s->kpos, s->key_ok, st->causal, true);
}

/* The forward: one sorted chunk per block, in parallel, each thread taking
 * a run of consecutive chunks (window_gather). */
static rf_status rf_cpu_lsh_attend(rf_lsh_state *st, const rf_tensor *qk, const rf_tensor *v, const rf_tensor *mask) {
    const int64_t B = st->batch, L = st->seq_len;
    const int H = st->n_heads, d = st->head_dim, m = st->chunk_len;
    const int64_t N = (int64_t)st->n_rounds * L, nc = N / m;
    const float *QK = rf_cpu_f32(qk), *V = rf_cpu_f32(v);
    const int32_t *pad = mask ? rf_cpu_i32(mask) : NULL;
    /* Chunk c attends to chunk c−1 (cyclic) and itself; a single chunk (the
     * full path, §5.7) only to itself. */
    const int nkeys = nc > 1 ? 2 * m : m;
    const rf_attn_dropout drop = rf_attn_lsh_dropout(st);
    bool oom = false;
#pragma omp parallel reduction(|| : oom)
    {
        chunk_scratch s;
        oom = !chunk_scratch_alloc(&s, m, nkeys, d, false);
        int64_t last = -1; /* the chunk in this thread's window */
#pragma omp for schedule(static)
        for (int64_t bc = 0; bc < B * H * nc; bc++) {
            if (oom) continue;
            const int64_t bh = bc / nc, c = bc % nc, b = bh / H;
            window_gather(st, QK, V, bh, c, last == bc - 1, &s);
            last = bc;
            chunk_logits(st, pad, b, nkeys, &s);
            float *O = rf_cpu_f32(&st->o_sorted) + bh * N * d, *LSE = rf_cpu_f32(&st->lse_sorted) + bh * N;
            rf_cpu_block_exp_rows(s.p, m, nkeys, s.mx, s.sum);
            for (int i = 0; i < m; i++) {
                const int64_t qslot = c * m + i;
                /* §5.5. With hf_rounding, as the HF model: lse is a float32 value and
                 * p = exp(s − lse) is not renormalised, so a query that sees only copies
                 * of itself (−1e5, where float32 steps are 2⁻⁷) gets weights summing to
                 * slightly less than 1 (docs/hf-compat.md §8). */
                const double mx = s.mx[i], sum = s.sum[i];
                const float lse = (float)(mx + log(sum));
                const double norm = st->hf_rounding ? (double)lse : mx + log(sum);
                /* the probabilities are exp(s − mx)·exp(mx − norm), dropped out (lse is not) */
                s.rescale[i] = (float)exp(mx - norm);
                if (drop.on) {
                    float *si = s.p + (size_t)i * nkeys;
                    for (int j = 0; j < nkeys; j++)
                        si[j] *= (float)rf_attn_dropout_factor(&drop, bh, N, qslot, nkeys, j);
                }
                LSE[qslot] = lse;
            }
            rf_cpu_block_scale_rows(s.p, m, nkeys, s.rescale);
            rf_cpu_block_mm(O + c * m * d, s.p, false, s.v, false, m, d, nkeys); /* the chunk's outputs, in sorted order */
        }
        if (!oom) chunk_scratch_free(&s);
    }
    if (oom) return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_lsh_attend: no memory for a chunk's blocks");
    return RF_OK;
}

static rf_status rf_cpu_lsh_combine(rf_tensor *out, const rf_lsh_state *st) {
    /* §5.6: o_t = Σ_r exp(lse_tr − logsumexp_r' lse_tr')·o_tr, each round's
     * result found through undo. */
    const int64_t B = st->batch, L = st->seq_len, N = (int64_t)st->n_rounds * L;
    const int H = st->n_heads, d = st->head_dim, R = st->n_rounds;
    float *OUT = rf_cpu_f32(out);
#pragma omp parallel for schedule(static)
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
            /* Each round's weight once, then its whole row (a few terms per
             * element: float sums are within SPEC §10). */
            float *o = OUT + (size_t)(b * L + t) * H * d + (size_t)h * d;
            for (int r = 0; r < R; r++) {
                const int32_t slot = undo[r * L + t];
                const float wr = (float)exp((double)LSE[slot] - total), *os = O + (size_t)slot * d;
#pragma omp simd
                for (int e = 0; e < d; e++) o[e] = (r ? o[e] : 0.0f) + wr * os[e];
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
    /* Each thread's sums, per (batch, head): the round weight w and
     * c = w·dout·out of each sorted item; per position the three gradients
     * (query path, key path before the normalisation, value), in double —
     * 6 MiB a thread at L = 4,096, d = 64. A device buffer, so the cpu
     * device's cache of freed buffers hands the same memory back next call
     * instead of fresh pages to fault in (cpu_device.c). */
    const size_t per_thread = 2 * (size_t)N + 3 * (size_t)L * d;
    const size_t threads = (size_t)omp_get_max_threads();
    rf_buffer *sums, *rows;
    RF_TRY(rf_buffer_alloc(dqk->buf->dev, threads * per_thread * sizeof(double), &sums));
    rf_status st_rows = rf_buffer_alloc(dqk->buf->dev, threads * sorted_bytes(N, d), &rows);
    if (st_rows != RF_OK) {
        rf_buffer_free(sums);
        return st_rows;
    }
    bool oom = false;
    /* One (batch, head) per thread: its chunks add into the same positions'
     * gradients. */
#pragma omp parallel reduction(|| : oom)
    {
        double *w = (double *)sums->impl + (size_t)omp_get_thread_num() * per_thread, *cw = w + N, *gq = cw + N;
        double *gk = gq + (size_t)L * d, *gv = gk + (size_t)L * d;
        const sorted_rows sr = sorted_at((char *)rows->impl + (size_t)omp_get_thread_num() * sorted_bytes(N, d), N, d);
        chunk_scratch s;
        oom = !chunk_scratch_alloc(&s, m, nkeys, d, true);
#pragma omp for schedule(dynamic)
        for (int64_t bh = 0; bh < B * H; bh++) {
            if (oom) continue;
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
#pragma omp simd reduction(+ : dot)
                    for (int e = 0; e < d; e++) dot += (double)g[e] * O[(size_t)slot * d + e];
                    w[slot] = exp(LSE[slot] - mx) / sum;
                    delta += w[slot] * dot;
                }
                for (int r = 0; r < R; r++) cw[undo[r * L + t]] = w[undo[r * L + t]] * delta;
            }
            for (size_t x = 0; x < (size_t)L * d; x++) gq[x] = gk[x] = gv[x] = 0;
            sort_rows(st, QK, V, perm, b, h, 0, N, &sr);
            for (int64_t c = 0; c < nc; c++) {
                window_in_rows(st, &sr, c, &s);
                chunk_logits(st, pad, b, nkeys, &s); /* as the forward */
                for (int i = 0; i < m; i++) { /* g_i = w_i·dout */
                    const float *g = DOUT + (size_t)(b * L + s.qpos[i]) * row + (size_t)h * d;
#pragma omp simd
                    for (int e = 0; e < d; e++) s.g[(size_t)i * d + e] = (float)(w[c * m + i] * g[e]);
                }
                rf_cpu_block_mm(s.dp, s.g, false, s.v, true, m, nkeys, d); /* g_i·v_j */
                /* The dropout factors D (1 without dropout), then p, D·p and ds (block.h). */
                if (drop.on)
                    for (int i = 0; i < m; i++)
                        for (int j = 0; j < nkeys; j++)
                            s.drop[(size_t)i * nkeys + j] =
                                (float)rf_attn_dropout_factor(&drop, bh, N, c * m + i, nkeys, j);
                else
                    for (size_t ij = 0; ij < (size_t)m * nkeys; ij++) s.drop[ij] = 1.0f;
                rf_cpu_block_lsh_grad(s.dp, s.drop, s.p, s.masked, m, nkeys, LSE + c * m, cw + c * m);
                rf_cpu_block_mm(s.dq, s.dp, false, s.k, false, m, d, nkeys);
                rf_cpu_block_mm(s.dk, s.dp, true, s.q, false, nkeys, d, m);
                rf_cpu_block_mm(s.dv, s.drop, true, s.g, false, nkeys, d, m);
                /* Summed by position: the sort's gradient is the inverse permutation (§4). */
                for (int i = 0; i < m; i++)
#pragma omp simd
                    for (int e = 0; e < d; e++) gq[(size_t)s.qpos[i] * d + e] += s.dq[(size_t)i * d + e];
                for (int j = 0; j < nkeys; j++)
#pragma omp simd
                    for (int e = 0; e < d; e++) {
                        gk[(size_t)s.kpos[j] * d + e] += s.dk[(size_t)j * d + e];
                        gv[(size_t)s.kpos[j] * d + e] += s.dv[(size_t)j * d + e];
                    }
            }
            /* §5.2 backward: the key path gk goes back through k = x·a(x) and
             * joins the query path gq. */
            for (int64_t t = 0; t < L; t++) {
                const size_t at = (size_t)(b * L + t) * row + (size_t)h * d;
                rf_attn_key_scale_backward(gq + t * d, gk + t * d, QK + at, d);
#pragma omp simd
                for (int e = 0; e < d; e++) {
                    DQK[at + e] = (float)gq[t * d + e];
                    DV[at + e] = (float)gv[t * d + e];
                }
            }
        }
        if (!oom) chunk_scratch_free(&s);
    }
    rf_buffer_free(sums);
    rf_buffer_free(rows);
    if (oom) return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_lsh_attention_backward: no memory for a chunk's blocks");
    return RF_OK;
}

void rf_cpu_lsh_attention_register(rf_op_table *ops) {
    ops->lsh_buckets = rf_cpu_lsh_buckets;
    ops->lsh_sort = rf_cpu_lsh_sort;
    ops->lsh_attend = rf_cpu_lsh_attend;
    ops->lsh_combine = rf_cpu_lsh_combine;
    ops->lsh_attention_backward = rf_cpu_lsh_attention_backward;
}
