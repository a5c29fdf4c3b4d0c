/* Windowed attention on the cpu (§6, device/attention_window.h), as dense
 * blocks (device/cpu/block.h): a tile of up to TILE queries of one chunk
 * shares that chunk's window of W keys, so its logits are one [rows × W]
 * product, the masks of §5.4 replace entries of it (device/
 * attention_common.h), each row gets its softmax, and the output is the
 * [rows × W]·[W × d] product with the values. Full attention
 * (full_attention.c) is the same code with one chunk of L keys. The forward
 * runs its tiles in parallel (OpenMP); the backward runs one (batch, head)
 * per thread, since the tiles of a head add into the same keys' gradients.
 * A head's rows of q, k, v and out sit H·d floats apart, so the products
 * read and write a tile's queries and outputs in place, and the window's
 * keys and values too unless the window wraps around or repeats a chunk
 * (then they are gathered into a contiguous block). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "device/cpu/cpu_backend.h"
#include "device/cpu/block.h"
#include "device/attention_common.h"

/* Query rows per block: a chunk of the HF default 64, and a [64 × 128]
 * float score block (32 KiB) for the default window of two chunks — with
 * the block's keys and values it stays in L2. Full attention's one chunk
 * of L is cut into tiles of this many rows. */
enum { TILE = 64 };

/* The first element of (b, pos, head h) in a [B, L, H·d] tensor (§1). */
static size_t row(const rf_attn_window *w, int64_t b, int64_t pos, int64_t h) {
    return (size_t)(((b * w->len + pos) * w->heads + h) * w->head_dim);
}

/* A block: batch row b, head h, queries q0 … q0 + nq − 1 of chunk c. */
typedef struct tile {
    int64_t b, h, c, q0, nq;
} tile;

/* Tile t of n = batch · heads · chunks · tiles-per-chunk, chunk-major
 * within (batch, head). */
static tile tile_at(const rf_attn_window *w, int64_t t) {
    int64_t per_chunk = (w->chunk_len + TILE - 1) / TILE, nc = w->len / w->chunk_len;
    tile x = {.b = t / (w->heads * nc * per_chunk), .h = t / (nc * per_chunk) % w->heads};
    int64_t in_head = t % (nc * per_chunk), first = in_head % per_chunk * TILE; /* first row in the chunk */
    x.c = in_head / per_chunk;
    x.q0 = x.c * w->chunk_len + first;
    x.nq = w->chunk_len - first < TILE ? w->chunk_len - first : TILE;
    return x;
}

static int64_t tile_count(const rf_attn_window *w) {
    return w->batch * w->heads * (w->len / w->chunk_len) * ((w->chunk_len + TILE - 1) / TILE);
}

/* A block of rows for the products: the first row and the floats between
 * rows (H·d in place in a [B, L, H·d] tensor, d when gathered). */
typedef struct rows_view {
    const float *x;
    int64_t ld;
} rows_view;

/* One thread's blocks: the window's key positions, room to gather the
 * window's keys and values [W × d] when they are not read in place, the
 * views the products read (the tile's queries, the window's keys);
 * [TILE × W] probabilities, dropout factors and which logits a mask
 * replaced (those carry no gradient), which window keys are tokens
 * (key_ok); the backward's [TILE × W] dp and the block's [W × d] dk and
 * dv. */
typedef struct scratch {
    int32_t qpos[TILE]; /* the tile's query positions */
    float mx[TILE], inv[TILE]; /* each row's max logit and 1 / its sum of exponentials */
    double sum[TILE];
    int32_t *keys; /* positions: the front door keeps len ≤ INT32_MAX / 2 */
    float *k, *v, *p, *drop, *dp, *dk, *dv;
    rows_view qv, kv;
    unsigned char *masked, *key_ok;
} scratch;

static void scratch_free(scratch *s) {
    free(s->keys), free(s->k), free(s->v), free(s->p), free(s->drop);
    free(s->dp), free(s->dk), free(s->dv), free(s->masked), free(s->key_ok);
}

/* Returns false when out of memory (s is then freed). */
static bool scratch_alloc(const rf_attn_window *w, scratch *s, bool backward) {
    size_t W = (size_t)rf_attn_window_width(w), d = (size_t)w->head_dim, f = sizeof(float);
    *s = (scratch){.keys = malloc(W * sizeof *s->keys), .k = malloc(W * d * f), .v = malloc(W * d * f),
                   .p = malloc(TILE * W * f), .drop = malloc(TILE * W * f), .masked = malloc(TILE * W),
                   .key_ok = malloc(W)};
    bool ok = s->keys && s->k && s->v && s->p && s->drop && s->masked && s->key_ok;
    if (backward) {
        s->dp = malloc(TILE * W * f), s->dk = malloc(W * d * f), s->dv = malloc(W * d * f);
        ok = ok && s->dp && s->dk && s->dv;
    }
    if (!ok) scratch_free(s);
    return ok;
}

/* The key positions of chunk c's window, in the HF model's order: window
 * slot s = −before … after holds chunk (c + s) mod n_chunks, cyclically. */
static void window_keys(const rf_attn_window *w, int64_t c, int32_t *keys) {
    int64_t nc = w->len / w->chunk_len, n = 0;
    for (int s = -w->before; s <= w->after; s++) {
        int64_t kc = ((c + s) % nc + nc) % nc;
        for (int64_t j = 0; j < w->chunk_len; j++) keys[n++] = (int32_t)(kc * w->chunk_len + j);
    }
}

/* The tile's own rows of x [B, L, H·d] (its queries, or their dout), in
 * place. */
static rows_view tile_rows(const rf_attn_window *w, const tile *x, const float *X) {
    return (rows_view){X + row(w, x->b, x->q0, x->h), w->heads * w->head_dim};
}

/* The window's rows of x [B, L, H·d] for head h of batch b (keys at
 * positions pos[0 … W−1]): in place when they are W consecutive positions
 * (the window neither wraps around nor repeats a chunk), else gathered
 * into dst as a contiguous [W × d] block. */
static rows_view window_rows(float *dst, const float *x, const rf_attn_window *w, int64_t b, int64_t h,
                             const int32_t *pos, int64_t W) {
    if (pos[W - 1] - pos[0] == W - 1) return (rows_view){x + row(w, b, pos[0], h), w->heads * w->head_dim};
    for (int64_t i = 0; i < W; i++) memcpy(dst + i * w->head_dim, x + row(w, b, pos[i], h), (size_t)w->head_dim * 4);
    return (rows_view){dst, w->head_dim};
}

/* The tile's softmax probabilities s->p (undropped), s->masked, and each
 * row's lse when lse is not NULL (§6, §5.4). Leaves the window's positions
 * in s->keys and the views of the tile's queries and the window's keys in
 * s->qv, s->kv. */
static void tile_probs(const rf_attn_window *w, const tile *x, const float *Q, const float *K, const int32_t *mask,
                       scratch *s, float *lse) {
    const int64_t W = rf_attn_window_width(w), d = w->head_dim;
    window_keys(w, x->c, s->keys);
    for (int64_t i = 0; i < x->nq; i++) s->qpos[i] = (int32_t)(x->q0 + i);
    s->qv = tile_rows(w, x, Q);
    s->kv = window_rows(s->k, K, w, x->b, x->h, s->keys, W);
    /* q·k for every pair of the block */
    rf_cpu_block_mm_ld(s->p, W, s->qv.x, s->qv.ld, false, s->kv.x, s->kv.ld, true, x->nq, W, d);
    for (int64_t j = 0; j < W; j++) s->key_ok[j] = rf_attn_key_is_token(mask, x->b, w->len, s->keys[j]);
    rf_cpu_block_mask(s->p, s->masked, x->nq, W, w->scale, s->qpos, s->keys, s->key_ok, w->causal, w->self_mask);
    rf_cpu_block_exp_rows(s->p, x->nq, W, s->mx, s->sum);
    for (int64_t i = 0; i < x->nq; i++) {
        s->inv[i] = (float)(1.0 / s->sum[i]);
        if (lse) lse[(x->b * w->heads + x->h) * w->len + x->q0 + i] = (float)(s->mx[i] + log(s->sum[i]));
    }
    rf_cpu_block_scale_rows(s->p, x->nq, W, s->inv);
}

/* The tile's dropout factors in s->drop (§2): query row qpos of L, window
 * key j of W; factors of 1 without dropout. */
static void tile_dropout(const rf_attn_window *w, const tile *x, scratch *s) {
    const int64_t W = rf_attn_window_width(w);
    const rf_attn_dropout drop = rf_attn_window_dropout(w);
    for (int64_t i = 0; i < x->nq; i++) {
        float *di = s->drop + i * W;
        if (drop.on)
            for (int64_t j = 0; j < W; j++)
                di[j] = (float)rf_attn_dropout_factor(&drop, x->b * w->heads + x->h, w->len, x->q0 + i, W, j);
        else
            for (int64_t j = 0; j < W; j++) di[j] = 1.0f;
    }
}

static rf_status rf_cpu_local_attention_forward(rf_tensor *out, rf_tensor *lse, const rf_tensor *q, const rf_tensor *k,
                                                const rf_tensor *v, const rf_tensor *mask, const rf_attn_window *w) {
    const float *qp = rf_cpu_f32(q), *kp = rf_cpu_f32(k), *vp = rf_cpu_f32(v);
    const int32_t *mp = mask ? rf_cpu_i32(mask) : NULL;
    float *op = rf_cpu_f32(out), *lp = lse ? rf_cpu_f32(lse) : NULL;
    const int64_t W = rf_attn_window_width(w), d = w->head_dim, n = tile_count(w);
    bool oom = false;
#pragma omp parallel reduction(|| : oom)
    {
        scratch s;
        oom = !scratch_alloc(w, &s, false);
#pragma omp for schedule(static)
        for (int64_t t = 0; t < n; t++) {
            if (oom) continue;
            tile x = tile_at(w, t);
            tile_probs(w, &x, qp, kp, mp, &s, lp);
            if (w->dropout) {
                tile_dropout(w, &x, &s);
#pragma omp simd
                for (int64_t e = 0; e < x.nq * W; e++) s.p[e] *= s.drop[e];
            }
            const rows_view vv = window_rows(s.v, vp, w, x.b, x.h, s.keys, W);
            rf_cpu_block_mm_ld(op + row(w, x.b, x.q0, x.h), w->heads * d, s.p, W, false, vv.x, vv.ld, false, x.nq, d,
                               W); /* the tile's output, in place */
        }
        if (!oom) scratch_free(&s);
    }
    if (oom) return rf_error(RF_ERR_OUT_OF_MEMORY, "local attention (cpu): no memory for a %lld-key block", (long long)W);
    return RF_OK;
}

/* For each tile, with p the (undropped) probabilities, f_ij the dropout
 * factor and dp_ij = f_ij·(dout_i·v_j): dv_j += f_ij·p_ij·dout_i;
 * ds_ij = p_ij·(dp_ij − Σ_j' p_ij'·dp_ij') for unmasked logits (a replaced
 * logit is a constant); dq_i = scale·Σ_j ds_ij·k_j and dk_j += scale·ds_ij·q_i
 * — five block products. A (batch, head)'s tiles add into the same keys,
 * so one thread takes all of a (batch, head). */
static rf_status rf_cpu_local_attention_backward(rf_tensor *dq, rf_tensor *dk, rf_tensor *dv, const rf_tensor *dout,
                                                 const rf_tensor *out, const rf_tensor *lse, const rf_tensor *q,
                                                 const rf_tensor *k, const rf_tensor *v, const rf_tensor *mask,
                                                 const rf_attn_window *w) {
    (void)out, (void)lse; /* the reference recomputes them */
    const float *qp = rf_cpu_f32(q), *kp = rf_cpu_f32(k), *vp = rf_cpu_f32(v), *gp = rf_cpu_f32(dout);
    const int32_t *mp = mask ? rf_cpu_i32(mask) : NULL;
    float *dqp = rf_cpu_f32(dq), *dkp = rf_cpu_f32(dk), *dvp = rf_cpu_f32(dv);
    const int64_t W = rf_attn_window_width(w), d = w->head_dim, n = tile_count(w), heads = w->batch * w->heads;
    memset(dkp, 0, rf_tensor_numel(dk) * sizeof *dkp);
    memset(dvp, 0, rf_tensor_numel(dv) * sizeof *dvp);
    bool oom = false;
#pragma omp parallel reduction(|| : oom)
    {
        scratch s;
        oom = !scratch_alloc(w, &s, true);
#pragma omp for schedule(dynamic)
        for (int64_t bh = 0; bh < heads; bh++)
            for (int64_t t = bh * (n / heads); t < (bh + 1) * (n / heads) && !oom; t++) {
                tile x = tile_at(w, t);
                tile_probs(w, &x, qp, kp, mp, &s, NULL);
                tile_dropout(w, &x, &s);
                const rows_view vv = window_rows(s.v, vp, w, x.b, x.h, s.keys, W);
                const rows_view gv = tile_rows(w, &x, gp); /* the tile's dout */
                rf_cpu_block_mm_ld(s.dp, W, gv.x, gv.ld, false, vv.x, vv.ld, true, x.nq, W, d); /* dout_i·v_j */
                for (int64_t i = 0; i < x.nq; i++) {
                    float *pi = s.p + i * W, *dpi = s.dp + i * W, *fi = s.drop + i * W;
                    double delta = 0;
#pragma omp simd reduction(+ : delta)
                    for (int64_t j = 0; j < W; j++) dpi[j] *= fi[j], delta += (double)pi[j] * dpi[j];
#pragma omp simd
                    for (int64_t j = 0; j < W; j++) {
                        float ds = s.masked[i * W + j] ? 0.0f : pi[j] * (dpi[j] - (float)delta) * w->scale;
                        fi[j] *= pi[j]; /* now the dropped probability f·p, for dv */
                        dpi[j] = ds;
                    }
                }
                rf_cpu_block_mm_ld(dqp + row(w, x.b, x.q0, x.h), w->heads * d, s.dp, W, false, s.kv.x, s.kv.ld, false,
                                   x.nq, d, W); /* the tile's dq, in place */
                rf_cpu_block_mm_ld(s.dk, d, s.dp, W, true, s.qv.x, s.qv.ld, false, W, d, x.nq);
                rf_cpu_block_mm_ld(s.dv, d, s.drop, W, true, gv.x, gv.ld, false, W, d, x.nq);
                /* scatter-add: a key reached through two window slots gets both */
                for (int64_t j = 0; j < W; j++) {
                    float *dkj = dkp + row(w, x.b, s.keys[j], x.h), *dvj = dvp + row(w, x.b, s.keys[j], x.h);
#pragma omp simd
                    for (int64_t e = 0; e < d; e++) dkj[e] += s.dk[j * d + e], dvj[e] += s.dv[j * d + e];
                }
            }
        if (!oom) scratch_free(&s);
    }
    if (oom)
        return rf_error(RF_ERR_OUT_OF_MEMORY, "local attention backward (cpu): no memory for a %lld-key block",
                        (long long)W);
    return RF_OK;
}

void rf_cpu_local_attention_register(rf_op_table *ops) {
    ops->local_attention_forward = rf_cpu_local_attention_forward;
    ops->local_attention_backward = rf_cpu_local_attention_backward;
}
