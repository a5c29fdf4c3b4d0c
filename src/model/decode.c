/* Cached incremental decoding (docs/decode.md): the prompt in one forward
 * pass, then one position per sequence per step, with HF's cache semantics
 * (`past_buckets_states`, ReformerModelWithLMHead.prepare_inputs_for_
 * generation). The reversible stack is run forwards only (§8), so each layer
 * needs just its attention's past: an LSH layer keeps every past position's
 * shared query/key and value projections — HF keeps the layer-normed hidden
 * states and re-projects the few a query sees, the same numbers — and their
 * bucket ids and sorted order (§3, §4); a local layer keeps the keys and
 * values of the last two chunks in a ring (§6). The attention of a step is
 * one device op per layer (ops/decode_attention.h); nothing is read back. */
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "core/philox.h"
#include "device/device_impl.h"
#include "model/model_impl.h"
#include "ops/ops_impl.h"
#include "ops/decode_attention.h"

struct rf_decoder {
    rf_model *m;
    int64_t B, len, cap;               /* batch, positions so far, capacity */
    rf_pass one;                       /* one position per sequence: [B, 1] buffers */
    rf_tensor rot[RF_CONFIG_MAX_LAYERS];          /* LSH: this step's rotations */
    rf_lsh_cache lsh[RF_CONFIG_MAX_LAYERS];       /* LSH layers */
    rf_tensor k_ring[RF_CONFIG_MAX_LAYERS], v_ring[RF_CONFIG_MAX_LAYERS]; /* local layers [B, 2m, H·d] */
};

void rf_model_decode_end(rf_decoder *d) {
    if (!d) return;
    for (int i = 0; i < RF_CONFIG_MAX_LAYERS; i++) {
        rf_lsh_cache_free(&d->lsh[i]);
        rf_tensor *ts[] = {&d->rot[i], &d->k_ring[i], &d->v_ring[i]};
        for (size_t j = 0; j < 3; j++)
            if (ts[j]->buf) rf_tensor_free(ts[j]);
    }
    rf_pass_free(&d->one);
    free(d);
}

static size_t tensor_bytes(const rf_tensor *t) { return t->buf ? rf_tensor_numel(t) * rf_dtype_size(t->dtype) : 0; }

rf_status rf_model_decode_bytes(const rf_decoder *d, size_t *bytes) {
    if (!d || !bytes) return rf_error(RF_ERR_INVALID_ARG, "rf_model_decode_bytes: null argument");
    const rf_pass *s = &d->one;
    const rf_tensor *fixed[] = {&s->ids, &s->x1, &s->x2, &s->h, &s->a, &s->b, &s->c, &s->attn, &s->f, &s->ff, &s->joined};
    size_t n = 0;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) n += tensor_bytes(fixed[i]);
    for (int i = 0; i < RF_CONFIG_MAX_LAYERS; i++)
        n += rf_lsh_cache_bytes(&d->lsh[i]) + tensor_bytes(&d->rot[i]) + tensor_bytes(&d->k_ring[i]) +
             tensor_bytes(&d->v_ring[i]);
    *bytes = n;
    return RF_OK;
}

rf_status rf_model_decode_length(const rf_decoder *d, int64_t *length) {
    if (!d || !length) return rf_error(RF_ERR_INVALID_ARG, "rf_model_decode_length: null argument");
    *length = d->len;
    return RF_OK;
}

/* A [rows, w] view of a tensor's first rows·w elements. */
static rf_status flat(rf_tensor *out, const rf_tensor *t, int64_t rows, int64_t w) {
    return rf_rows_view(out, t, 0, rows, w);
}

/* n elements of t from element `at` (same dtype) as a 1-D view. */
static rf_status span(rf_tensor *out, const rf_tensor *t, int64_t at, int64_t n) {
    return rf_tensor_view(out, t->buf, t->offset + (size_t)at, t->dtype, 1, (int64_t[]){n});
}

/* Copy n elements of src from element s0 to dst from element d0. */
static rf_status copy_span(rf_tensor *dst, int64_t d0, const rf_tensor *src, int64_t s0, int64_t n) {
    rf_tensor to, from;
    RF_TRY(span(&to, dst, d0, n));
    RF_TRY(span(&from, src, s0, n));
    return rf_tensor_copy(&to, &from);
}

/* Layer li's rotations for this step into d->rot[li]: the explicit ones if
 * set (rf_model_set_rotations), else Philox normals of (seed, layer, forward
 * call) as every forward pass draws them (§2). HF draws fresh rotations at
 * every call that hashes, so a step's query is hashed with new ones. */
static rf_status step_rotations(rf_decoder *d, int li) {
    rf_model *m = d->m;
    layer *l = &m->layers[li];
    size_t n = rf_tensor_numel(&d->rot[li]);
    if (l->rotations) {
        if (l->rotations_count != n)
            return rf_error(RF_ERR_INVALID_ARG, "layer %d: %zu explicit rotations given, the layer needs %zu", li,
                            l->rotations_count, n);
        return rf_tensor_upload(&d->rot[li], l->rotations, n * sizeof(float));
    }
    float *host = malloc(n * sizeof *host);
    if (!host) return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_model_decode: no host memory for rotations");
    rf_philox_normals(host, n, m->seed, rf_philox_stream((uint32_t)li, RF_PHILOX_ROTATIONS), m->step);
    rf_status s = rf_tensor_upload(&d->rot[li], host, n * sizeof *host);
    free(host);
    return s;
}

/* An LSH layer's cache from the prompt's pass: its projections (s->a, s->b)
 * and, when the prompt was hashed, st's bucket ids of the real positions
 * (HF drops the padding's), ordered once. */
static rf_status keep_lsh(rf_decoder *d, int li, const rf_pass *s, const rf_lsh_state *st) {
    rf_lsh_cache *lc = &d->lsh[li];
    const int64_t B = d->B, L0 = s->L, Lp = s->Lp, HD = (int64_t)lc->n_heads * lc->head_dim;
    for (int64_t b = 0; b < B; b++) {
        RF_TRY(copy_span(&lc->qk, b * d->cap * HD, &s->a, b * Lp * HD, L0 * HD));
        RF_TRY(copy_span(&lc->v, b * d->cap * HD, &s->b, b * Lp * HD, L0 * HD));
    }
    lc->length = L0;
    if (st->full) return RF_OK; /* §5.7: not hashed; HF keeps no buckets */
    const int64_t rows = B * lc->n_heads * lc->n_rounds;
    for (int64_t i = 0; i < rows; i++) RF_TRY(copy_span(&lc->buckets, i * d->cap, &st->buckets, i * Lp, L0));
    /* HF's increase_num_buckets: a cached id above R·nb − 1 (a padded
     * prompt's round offsets are nb + 1) makes every later query's round
     * offset nb + 1 too. New ids never raise the maximum past that bound,
     * so this is decided once, here. */
    size_t n = rf_tensor_numel(&st->buckets);
    int32_t *ids = malloc(n * sizeof *ids);
    if (!ids) return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_model_decode_begin: no host memory");
    rf_status r = rf_tensor_download(&st->buckets, ids, n * sizeof *ids);
    int32_t mx = 0;
    for (int64_t i = 0; r == RF_OK && i < rows; i++)
        for (int64_t t = 0; t < L0; t++) mx = ids[i * Lp + t] > mx ? ids[i * Lp + t] : mx;
    free(ids);
    RF_TRY(r);
    lc->stride = mx > lc->n_rounds * lc->n_buckets - 1 ? lc->n_buckets + 1 : lc->n_buckets;
    return rf_lsh_cache_sort(lc, NULL);
}

/* A local layer's ring from the prompt's pass (keys s->c, values s->b): the
 * positions the next query sees, [(⌊L0/m⌋ − 1)·m, L0) (§6). */
static rf_status keep_local(rf_decoder *d, int li, const rf_pass *s) {
    const rf_config *c = &d->m->cfg;
    const int64_t m = c->local_attn_chunk_length, W = 2 * m, L0 = s->L, Lp = s->Lp;
    const int64_t HD = (int64_t)c->num_attention_heads * c->attention_head_size;
    const int64_t start = L0 >= m ? (L0 / m - 1) * m : 0;
    for (int64_t b = 0; b < d->B; b++)
        for (int64_t t = start; t < L0; t++) {
            RF_TRY(copy_span(&d->k_ring[li], (b * W + t % W) * HD, &s->c, (b * Lp + t) * HD, HD));
            RF_TRY(copy_span(&d->v_ring[li], (b * W + t % W) * HD, &s->b, (b * Lp + t) * HD, HD));
        }
    return RF_OK;
}

/* The per-layer state and the one-position buffers. */
static rf_status alloc_state(rf_decoder *d, int64_t Lp) {
    rf_model *m = d->m;
    const rf_config *c = &m->cfg;
    const int64_t H = c->num_attention_heads, hd = c->attention_head_size;
    int32_t *zeros = calloc((size_t)d->B, sizeof *zeros);
    if (!zeros) return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_model_decode_begin: no host memory");
    rf_status r = rf_pass_init(&d->one, m, zeros, NULL, d->B, 1, false);
    free(zeros);
    RF_TRY(r);
    for (int li = 0; li < c->num_layers; li++) {
        if (c->attn_layers[li] == RF_ATTN_LOCAL) {
            int64_t shape[] = {d->B, 2 * (int64_t)c->local_attn_chunk_length, H * hd};
            RF_TRY(rf_tensor_alloc(m->dev, &d->k_ring[li], RF_F32, 3, shape));
            RF_TRY(rf_tensor_alloc(m->dev, &d->v_ring[li], RF_F32, 3, shape));
            continue;
        }
        /* The bucket count: the prompt's (frozen at its hashing), or with
         * an automatic count and a prompt ≤ m, the rule at the capacity
         * (HF has no count then and fails when the sequence reaches m). */
        rf_lsh_config lc;
        RF_TRY(rf_model_lsh_config(m, li, Lp > c->lsh_attn_chunk_length ? Lp : d->cap, false, &lc));
        if (!lc.n_buckets && !lc.bucket_factors[0]) lc.n_buckets = 2; /* never hashes: capacity ≤ m */
        RF_TRY(rf_lsh_cache_init(&d->lsh[li], m->dev, &lc, d->B, d->cap));
        RF_TRY(rf_tensor_alloc(m->dev, &d->rot[li], RF_F32, 4,
                               (int64_t[]){H, hd, c->num_hashes, d->lsh[li].rot_cols}));
    }
    return RF_OK;
}

/* The logits of the one-position buffers' halves (§9) into logits [B, V]. */
static rf_status head(rf_decoder *d, rf_tensor *logits) {
    rf_tensor l3;
    RF_TRY(rf_tensor_view(&l3, logits->buf, logits->offset, RF_F32, 3, (int64_t[]){d->B, 1, d->m->cfg.vocab_size}));
    return rf_model_head(d->m, &d->one, &l3, NULL, NULL);
}

static rf_status check_logits(const char *op, const rf_decoder *d, const rf_tensor *logits) {
    RF_TRY(rf_check_tensor(op, "logits", logits, RF_F32, 2, (const int64_t[]){d->B, d->m->cfg.vocab_size}));
    return rf_check_device(op, "logits", logits, d->m->dev);
}

static rf_status prefill(rf_decoder *d, const int32_t *prompt, int64_t L0, rf_tensor *logits) {
    rf_model *m = d->m;
    const rf_config *c = &m->cfg;
    const int64_t D = c->hidden_size;
    rf_pass s;
    RF_TRY(rf_pass_init(&s, m, prompt, NULL, d->B, L0, false));
    rf_status r = alloc_state(d, s.Lp);
    if (r == RF_OK) r = rf_model_embed(m, &s);
    for (int li = 0; r == RF_OK && li < c->num_layers; li++) {
        /* §8: Y1 = X1 + Attn(LN(X2)), keeping what later steps attend to. */
        if (c->attn_layers[li] == RF_ATTN_LSH) {
            rf_lsh_state st;
            r = rf_model_attention_block(m, li, &s, NULL, false, &st, &s.x1, 1.0f);
            if (r != RF_OK) break;
            r = keep_lsh(d, li, &s, &st);
            rf_lsh_state_free(&st);
        } else {
            r = rf_model_attention_block(m, li, &s, NULL, false, NULL, &s.x1, 1.0f);
            if (r == RF_OK) r = keep_local(d, li, &s);
        }
        if (r == RF_OK) r = rf_model_ff_block(m, li, &s); /* Y2 = X2 + FF(Y1) */
    }
    /* The last prompt position of each sequence gives the first logits. */
    for (int64_t b = 0; r == RF_OK && b < d->B; b++) {
        r = copy_span(&d->one.x1, b * D, &s.x1, (b * s.Lp + L0 - 1) * D, D);
        if (r == RF_OK) r = copy_span(&d->one.x2, b * D, &s.x2, (b * s.Lp + L0 - 1) * D, D);
    }
    rf_pass_free(&s);
    if (r == RF_OK) r = head(d, logits);
    d->len = L0;
    m->step++; /* a forward call (§2) */
    return r;
}

rf_status rf_model_decode_begin(rf_decoder **out, rf_model *m, const int32_t *prompt, int64_t batch,
                                int64_t prompt_len, int64_t capacity, rf_tensor *logits) {
    const char *op = "rf_model_decode_begin";
    if (!out || !m || !prompt || !logits) return rf_error(RF_ERR_INVALID_ARG, "%s: null argument", op);
    *out = NULL;
    const rf_config *c = &m->cfg;
    if (!c->is_decoder)
        return rf_error(RF_ERR_INVALID_ARG, "%s: the model is not causal (is_decoder false): nothing to decode", op);
    if (batch < 1 || prompt_len < 1 || capacity < prompt_len || capacity > rf_model_max_length(c))
        return rf_error(RF_ERR_INVALID_ARG,
                        "%s: need batch ≥ 1, 1 ≤ prompt length (%lld) ≤ capacity (%lld) ≤ the model's %lld positions",
                        op, (long long)prompt_len, (long long)capacity, (long long)rf_model_max_length(c));
    if (c->lsh_num_chunks_before != 1 || c->lsh_num_chunks_after || c->local_num_chunks_before != 1 ||
        c->local_num_chunks_after)
        return rf_error(RF_ERR_UNSUPPORTED, "%s: decoding looks back exactly one chunk (num_chunks_before 1, after 0)", op);
    rf_decoder *d = calloc(1, sizeof *d);
    if (!d) return rf_error(RF_ERR_OUT_OF_MEMORY, "%s: no host memory", op);
    d->m = m, d->B = batch, d->cap = capacity;
    rf_status r = check_logits(op, d, logits);
    if (r == RF_OK) r = prefill(d, prompt, prompt_len, logits);
    if (r != RF_OK) {
        rf_model_decode_end(d);
        return r;
    }
    *out = d;
    return RF_OK;
}

/* The embedding of token ids at position P (§9): word + position rows. */
static rf_status embed_one(rf_decoder *d, const int32_t *tokens) {
    rf_model *m = d->m;
    const rf_config *c = &m->cfg;
    const int64_t D = c->hidden_size, P = d->len, V = c->vocab_size;
    for (int64_t b = 0; b < d->B; b++)
        if (tokens[b] < 0 || tokens[b] >= V)
            return rf_error(RF_ERR_INVALID_ARG, "rf_model_decode_step: token %d of sequence %lld is outside [0, %lld)",
                            tokens[b], (long long)b, (long long)V);
    rf_pass *s = &d->one;
    RF_TRY(rf_tensor_upload(&s->ids, tokens, (size_t)d->B * sizeof *tokens));
    RF_TRY(rf_embedding_forward(&s->x1, &s->ids, m->word));
    for (int64_t b = 0; b < d->B; b++) {
        if (m->pos0) { /* axial: position P = i·s1 + j gets [E0[i], E1[j]] */
            int64_t s1 = c->axial_pos_shape[1], d0 = c->axial_pos_embds_dim[0], d1 = c->axial_pos_embds_dim[1];
            RF_TRY(copy_span(&s->h, b * D, &m->pos0_2d, P / s1 * d0, d0));
            RF_TRY(copy_span(&s->h, b * D + d0, &m->pos1_2d, P % s1 * d1, d1));
        } else {
            RF_TRY(copy_span(&s->h, b * D, m->pos, P * D, D));
        }
    }
    RF_TRY(rf_add(&s->x1, &s->x1, &s->h, 1.0f));
    return rf_tensor_copy(&s->x2, &s->x1);
}

/* Layer li's attention half for the new positions: s->f = W_o·Attn(LN(x2)). */
static rf_status attend_one(rf_decoder *d, int li) {
    rf_model *m = d->m;
    const rf_config *c = &m->cfg;
    layer *l = &m->layers[li];
    rf_pass *s = &d->one;
    const int64_t B = d->B, HD = (int64_t)c->num_attention_heads * c->attention_head_size;
    rf_tensor q2, k2, v2, o2;
    RF_TRY(flat(&q2, &s->a, B, HD));
    RF_TRY(flat(&v2, &s->b, B, HD));
    RF_TRY(flat(&k2, &s->c, B, HD));
    RF_TRY(flat(&o2, &s->attn, B, HD));
    RF_TRY(rf_layer_norm_forward(&s->h, NULL, NULL, &s->x2, l->ln_a_w, l->ln_a_b, (float)c->layer_norm_eps));
    RF_TRY(rf_linear_forward(&s->b, &s->h, l->v, NULL));
    if (l->type == RF_ATTN_LSH) {
        rf_lsh_cache *lc = &d->lsh[li];
        RF_TRY(rf_linear_forward(&s->a, &s->h, l->qk, NULL));
        if (lc->hashed) RF_TRY(step_rotations(d, li));
        RF_TRY(rf_lsh_cache_attend(&o2, lc, &q2, &v2, lc->hashed ? &d->rot[li] : NULL));
        /* HF hashes every cached position, with fresh rotations, once a
         * sequence that was never hashed reaches the chunk length. */
        if (!lc->hashed && lc->length >= c->lsh_attn_chunk_length) {
            RF_TRY(step_rotations(d, li));
            RF_TRY(rf_lsh_cache_sort(lc, &d->rot[li]));
        }
    } else {
        RF_TRY(rf_linear_forward(&s->a, &s->h, l->q, NULL));
        RF_TRY(rf_linear_forward(&s->c, &s->h, l->k, NULL));
        RF_TRY(rf_local_cache_attend(&o2, &d->k_ring[li], &d->v_ring[li], &q2, &k2, &v2, d->len,
                                     c->local_attn_chunk_length, c->num_attention_heads));
    }
    return rf_linear_forward(&s->f, &s->attn, l->o, NULL);
}

rf_status rf_model_decode_step(rf_decoder *d, const int32_t *tokens, rf_tensor *logits) {
    const char *op = "rf_model_decode_step";
    if (!d || !tokens || !logits) return rf_error(RF_ERR_INVALID_ARG, "%s: null argument", op);
    RF_TRY(check_logits(op, d, logits));
    if (d->len >= d->cap)
        return rf_error(RF_ERR_INVALID_ARG, "%s: the state is full (capacity %lld positions)", op, (long long)d->cap);
    rf_model *m = d->m;
    RF_TRY(embed_one(d, tokens));
    for (int li = 0; li < m->cfg.num_layers; li++) {
        RF_TRY(attend_one(d, li));
        RF_TRY(rf_add(&d->one.x1, &d->one.x1, &d->one.f, 1.0f));
        RF_TRY(rf_model_ff_block(m, li, &d->one));
    }
    RF_TRY(head(d, logits));
    d->len++;
    m->step++;
    return RF_OK;
}
