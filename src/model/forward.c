/* The model's forward pass (§9; docs/hf-compat.md §3–§7): one pass's buffers,
 * the batch checks and padding, the attention plumbing (LSH and local
 * configurations), the embedding and the head shared by inference and
 * training, and rf_model_forward. The layers themselves: reversible.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "core/philox.h"
#include "device/device_impl.h"
#include "model/model_impl.h"
#include "ops/ops_impl.h"

void rf_pass_free(rf_pass *s) {
    rf_tensor *all[] = {&s->ids, &s->mask, &s->x1, &s->x2, &s->h, &s->a, &s->b, &s->c, &s->attn, &s->f, &s->ff,
                        &s->joined, &s->lse, &s->mean, &s->rstd, &s->ff_pre};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i]->buf) rf_tensor_free(all[i]);
    memset(s, 0, sizeof *s);
}

/* Least common multiple of the chunk lengths of the attention types present. */
static int64_t chunk_lcm(const rf_config *c, int64_t *min_chunk) {
    int64_t l = 1, mn = 0;
    for (int i = 0; i < c->num_layers; i++) {
        int64_t m = c->attn_layers[i] == RF_ATTN_LSH ? c->lsh_attn_chunk_length : c->local_attn_chunk_length;
        int64_t a = l, b = m;
        while (b) {
            int64_t t = a % b;
            a = b;
            b = t;
        }
        l = l / a * m;
        if (!mn || m < mn) mn = m;
    }
    *min_chunk = mn;
    return l;
}

int64_t rf_model_padded_length(const rf_config *c, int64_t L) {
    int64_t min_chunk, lcm = chunk_lcm(c, &min_chunk);
    return L % lcm && L > min_chunk ? (L / lcm + 1) * lcm : L;
}

int64_t rf_model_max_length(const rf_config *c) {
    return c->axial_pos_embds ? (int64_t)c->axial_pos_shape[0] * c->axial_pos_shape[1] : c->max_position_embeddings;
}

rf_status rf_rows_view(rf_tensor *out, const rf_tensor *t, int64_t r0, int64_t n, int64_t w) {
    return rf_tensor_view(out, t->buf, t->offset + (size_t)(r0 * w), RF_F32, 2, (int64_t[]){n, w});
}

rf_status rf_model_check_batch(const rf_model *m, int64_t B, int64_t L, bool training, int64_t *padded) {
    const char *op = training ? "rf_model_backward" : "rf_model_forward";
    const rf_config *c = &m->cfg;
    if (B <= 0 || L <= 0)
        return rf_error(RF_ERR_INVALID_ARG, "%s: batch %lld and length %lld must be positive", op, (long long)B, (long long)L);
    /* Pad to a multiple of the chunk lengths as the HF model does at
     * inference (docs/hf-compat.md §7); training takes whole chunks. */
    int64_t max_len = rf_model_max_length(c), Lp = L <= max_len ? rf_model_padded_length(c, L) : L;
    if (training && Lp != L)
        return rf_error(RF_ERR_INVALID_ARG, "%s: training length %lld is not a multiple of the chunk lengths (%lld would be)",
                        op, (long long)L, (long long)Lp);
    if (Lp > max_len)
        return rf_error(RF_ERR_INVALID_ARG, "%s: length %lld (padded to %lld) exceeds the %lld positions of the model", op,
                        (long long)L, (long long)Lp, (long long)max_len);
    /* B·Lp token ids (and B·Lp·4-byte host copies) must be countable. */
    if (B > INT64_MAX / 8 / Lp)
        return rf_error(RF_ERR_INVALID_ARG, "%s: batch %lld × length %lld overflows", op, (long long)B, (long long)Lp);
    *padded = Lp;
    return RF_OK;
}

/* HF's hidden-state dropout (hidden_dropout_prob) in training, none at
 * inference (§2: the mask is a pure function of seed, stream and step, so
 * the backward pass regenerates it). `first` is the word of element 0. */
bool rf_model_dropout_on(const rf_model *m, const rf_pass *s) {
    return s->training && m->cfg.hidden_dropout_prob > 0;
}

rf_status rf_model_dropout(rf_model *m, const rf_pass *s, rf_tensor *t, int layer_index, int use, uint64_t first,
                           bool backward) {
    float p = (float)m->cfg.hidden_dropout_prob;
    if (!rf_model_dropout_on(m, s)) return RF_OK;
    uint32_t stream = rf_philox_stream((uint32_t)layer_index, (rf_philox_use)use);
    return backward ? rf_dropout_backward(t, t, p, m->seed, stream, m->step, first)
                    : rf_dropout_forward(t, t, p, m->seed, stream, m->step, first);
}

rf_status rf_pass_init(rf_pass *s, rf_model *m, const int32_t *ids, const int32_t *attention_mask, int64_t B,
                       int64_t L, bool training) {
    const char *op = training ? "rf_model_backward" : "rf_model_forward";
    const rf_config *c = &m->cfg;
    memset(s, 0, sizeof *s);
    int64_t V = c->vocab_size, D = c->hidden_size, HD = (int64_t)c->num_attention_heads * c->attention_head_size, Lp;
    RF_TRY(rf_model_check_batch(m, B, L, training, &Lp));
    for (int64_t i = 0; i < B * L; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return rf_error(RF_ERR_INVALID_ARG, "%s: token id %d at position %lld is outside the vocabulary [0, %lld)", op,
                            ids[i], (long long)i, (long long)V);
    int has_zero = 0;
    for (int64_t i = 0; attention_mask && i < B * L; i++) has_zero |= attention_mask[i] == 0;
    s->B = B, s->L = L, s->Lp = Lp, s->padded = Lp != L || has_zero, s->training = training;
    int32_t *host_ids = calloc((size_t)(B * Lp), sizeof *host_ids), *host_mask = calloc((size_t)(B * Lp), sizeof *host_mask);
    rf_status r = host_ids && host_mask ? RF_OK : rf_error(RF_ERR_OUT_OF_MEMORY, "%s: no host memory", op);
    int pad_id = c->pad_token_id >= 0 ? c->pad_token_id : 0;
    for (int64_t b = 0; r == RF_OK && b < B; b++)
        for (int64_t t = 0; t < Lp; t++) {
            host_ids[b * Lp + t] = t < L ? ids[b * L + t] : pad_id;
            host_mask[b * Lp + t] = t < L ? (attention_mask ? attention_mask[b * L + t] != 0 : 1) : 0;
        }
    int64_t rows = B * Lp, ff_rows = c->chunk_size_feed_forward > 0 ? c->chunk_size_feed_forward : rows;
    if (ff_rows > rows) ff_rows = rows;
    rf_device *dev = m->dev;
    if (r == RF_OK) r = rf_tensor_alloc(dev, &s->ids, RF_I32, 2, (int64_t[]){B, Lp});
    if (r == RF_OK) r = rf_tensor_upload(&s->ids, host_ids, (size_t)(B * Lp) * 4);
    if (r == RF_OK && s->padded) r = rf_tensor_alloc(dev, &s->mask, RF_I32, 2, (int64_t[]){B, Lp});
    if (r == RF_OK && s->padded) r = rf_tensor_upload(&s->mask, host_mask, (size_t)(B * Lp) * 4);
    rf_tensor *d_wide[] = {&s->x1, &s->x2, &s->h, &s->f};
    for (size_t i = 0; r == RF_OK && i < 4; i++) r = rf_tensor_alloc(dev, d_wide[i], RF_F32, 3, (int64_t[]){B, Lp, D});
    rf_tensor *hd_wide[] = {&s->a, &s->b, &s->c, &s->attn};
    for (size_t i = 0; r == RF_OK && i < 4; i++) r = rf_tensor_alloc(dev, hd_wide[i], RF_F32, 3, (int64_t[]){B, Lp, HD});
    if (r == RF_OK) r = rf_tensor_alloc(dev, &s->ff, RF_F32, 2, (int64_t[]){ff_rows, c->feed_forward_size});
    if (r == RF_OK) r = rf_tensor_alloc(dev, &s->joined, RF_F32, 3, (int64_t[]){B, Lp, 2 * D});
    if (training) {
        /* What the backward pass recomputes and differentiates through. */
        if (r == RF_OK) r = rf_tensor_alloc(dev, &s->ff_pre, RF_F32, 2, (int64_t[]){ff_rows, c->feed_forward_size});
        if (r == RF_OK) r = rf_tensor_alloc(dev, &s->lse, RF_F32, 3, (int64_t[]){B, c->num_attention_heads, Lp});
        if (r == RF_OK) r = rf_tensor_alloc(dev, &s->mean, RF_F32, 1, (int64_t[]){rows});
        if (r == RF_OK) r = rf_tensor_alloc(dev, &s->rstd, RF_F32, 1, (int64_t[]){rows});
    }
    free(host_ids);
    free(host_mask);
    if (r != RF_OK) rf_pass_free(s);
    return r;
}

rf_status rf_model_lsh_config(rf_model *m, int li, int64_t Lp, bool training, rf_lsh_config *lc) {
    const rf_config *c = &m->cfg;
    layer *l = &m->layers[li];
    memset(lc, 0, sizeof *lc);
    lc->n_heads = c->num_attention_heads;
    lc->head_dim = c->attention_head_size;
    lc->n_hashes = c->num_hashes;
    lc->chunk_len = c->lsh_attn_chunk_length;
    lc->causal = c->is_decoder;
    lc->max_position = c->max_position_embeddings;
    lc->seed = m->seed;
    lc->layer = (uint32_t)li;
    lc->step = m->step;
    /* Inference reproduces the HF model's float32 semantics (§12); training
     * differentiates the exact softmax (the backward needs it). */
    lc->hf_rounding = !training;
    /* HF's attention-probability dropout, training only; the backward's
     * recomputation replays the same mask (same seed, stream, forward call). */
    if (training) {
        lc->dropout = (float)c->lsh_attention_probs_dropout_prob;
        lc->dropout_stream = rf_philox_stream((uint32_t)li, RF_PHILOX_DROPOUT_ATTN);
    }
    if (Lp <= c->lsh_attn_chunk_length) return RF_OK; /* §5.7: no hashing */
    /* The bucket count: configured, or HF's automatic rule at the first length
     * this layer hashes, then frozen on the layer (as HF does). */
    if (!l->n_frozen) RF_TRY(rf_config_num_buckets(c, Lp, l->frozen_buckets, &l->n_frozen));
    if (l->n_frozen == 2) {
        lc->bucket_factors[0] = l->frozen_buckets[0];
        lc->bucket_factors[1] = l->frozen_buckets[1];
    } else {
        lc->n_buckets = l->frozen_buckets[0];
    }
    return RF_OK;
}

/* LSH attention of layer li on s->a (qk) and s->b (v) into s->attn. With
 * `buckets` NULL: hash (explicit rotations if the layer has them). With
 * `buckets` and `reuse` false: hash, then keep the buckets there (training).
 * With `reuse`: take those buckets, never re-hash (§3, §8 backward). The
 * state is handed to the caller in *keep (else freed). */
rf_status rf_model_lsh(rf_model *m, int li, rf_pass *s, rf_tensor *buckets, bool reuse, rf_lsh_state *keep) {
    layer *l = &m->layers[li];
    const rf_tensor *mask = s->padded ? &s->mask : NULL;
    rf_lsh_config lc;
    RF_TRY(rf_model_lsh_config(m, li, s->Lp, s->training, &lc));
    rf_lsh_state st;
    RF_TRY(rf_lsh_state_init(&st, m->dev, &lc, s->B, s->Lp));
    rf_status r = RF_OK;
    if (reuse) {
        r = rf_tensor_copy(&st.buckets, buckets);
        if (r == RF_OK) r = rf_lsh_sort(&st);
        if (r == RF_OK) r = rf_lsh_attend(&st, &s->a, &s->b, mask);
        if (r == RF_OK) r = rf_lsh_combine(&s->attn, &st);
    } else {
        rf_tensor rot = {0};
        if (l->rotations && !st.full) {
            size_t want = rf_tensor_numel(&st.rotations);
            if (want != l->rotations_count)
                r = rf_error(RF_ERR_INVALID_ARG, "layer %d: %zu explicit rotations given, the layer needs %zu", li,
                             l->rotations_count, want);
            else
                r = rf_tensor_alloc(m->dev, &rot, RF_F32, st.rotations.ndim, st.rotations.shape);
            if (r == RF_OK) r = rf_tensor_upload(&rot, l->rotations, want * sizeof(float));
        }
        if (r == RF_OK) r = rf_lsh_attention_forward(&s->attn, &st, &s->a, &s->b, mask, rot.buf ? &rot : NULL, &lc);
        if (rot.buf) rf_tensor_free(&rot);
        if (r == RF_OK && buckets)
            r = rf_tensor_copy(buckets, &st.buckets);
    }
    if (r == RF_OK && keep) *keep = st;
    else rf_lsh_state_free(&st);
    return r;
}

rf_attention_config rf_model_local_config(const rf_model *m, int li, bool training) {
    const rf_config *c = &m->cfg;
    rf_attention_config ac = {.n_heads = c->num_attention_heads, .head_dim = c->attention_head_size,
                              .chunk_len = c->local_attn_chunk_length, .chunks_before = c->local_num_chunks_before,
                              .chunks_after = c->local_num_chunks_after, .causal = c->is_decoder};
    /* HF's attention-probability dropout, training only (§2: replayed by
     * the backward from the same seed, stream and forward call). */
    if (training) {
        ac.dropout = (float)c->local_attention_probs_dropout_prob;
        ac.seed = m->seed;
        ac.stream = rf_philox_stream((uint32_t)li, RF_PHILOX_DROPOUT_ATTN);
        ac.step = m->step;
    }
    return ac;
}

rf_status rf_model_embed(rf_model *m, rf_pass *s) {
    RF_TRY(rf_embedding_forward(&s->x1, &s->ids, m->word));
    if (m->pos0) RF_TRY(rf_axial_position_forward(&s->x1, &m->pos0_2d, &m->pos1_2d));
    else RF_TRY(rf_position_embedding_forward(&s->x1, m->pos));
    RF_TRY(rf_model_dropout(m, s, &s->x1, 0, RF_PHILOX_DROPOUT_EMBED, 0, false));
    return rf_tensor_copy(&s->x2, &s->x1);
}

rf_status rf_model_head(rf_model *m, rf_pass *s, rf_tensor *logits, rf_tensor *mean, rf_tensor *rstd) {
    /* §9: LayerNorm over [Y1, Y2] (Y1 first), then the decoder. */
    RF_TRY(rf_concat(&s->joined, &s->x1, &s->x2));
    RF_TRY(rf_layer_norm_forward(&s->joined, mean, rstd, &s->joined, m->ln_w, m->ln_b, (float)m->cfg.layer_norm_eps));
    RF_TRY(rf_model_dropout(m, s, &s->joined, 0, RF_PHILOX_DROPOUT_FINAL, 0, false));
    return rf_linear_forward(logits, &s->joined, m->head_w, m->head_b);
}

rf_status rf_model_targets(rf_tensor *out, rf_device *dev, const int32_t *ids, int64_t B, int64_t L) {
    int32_t *t = malloc((size_t)(B * L) * sizeof *t);
    if (!t) return rf_error(RF_ERR_OUT_OF_MEMORY, "no host memory for targets");
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < L; i++) t[b * L + i] = i + 1 < L ? ids[b * L + i + 1] : -1;
    rf_status s = rf_tensor_alloc(dev, out, RF_I32, 2, (int64_t[]){B, L});
    if (s == RF_OK) s = rf_tensor_upload(out, t, (size_t)(B * L) * sizeof *t);
    free(t);
    return s;
}

/* Mean cross-entropy of logits at t against ids[t+1] (§9). */
static rf_status lm_loss(rf_model *m, const rf_tensor *logits, const int32_t *ids, int64_t B, int64_t L, float *loss) {
    rf_tensor tt = {0}, lt = {0}, lse = {0};
    rf_status s = rf_model_targets(&tt, m->dev, ids, B, L);
    if (s == RF_OK) s = rf_tensor_alloc(m->dev, &lt, RF_F32, 1, (int64_t[]){1});
    if (s == RF_OK) s = rf_tensor_alloc(m->dev, &lse, RF_F32, 2, (int64_t[]){B, L});
    if (s == RF_OK) s = rf_cross_entropy_forward(&lt, &lse, logits, &tt);
    if (s == RF_OK) s = rf_tensor_download(&lt, loss, sizeof *loss);
    if (tt.buf) rf_tensor_free(&tt);
    if (lt.buf) rf_tensor_free(&lt);
    if (lse.buf) rf_tensor_free(&lse);
    return s;
}

rf_status rf_model_forward(rf_model *m, rf_tensor *logits, const int32_t *ids, const int32_t *attention_mask,
                           int64_t B, int64_t L, float *loss) {
    const char *op = "rf_model_forward";
    if (!m || !logits || !ids) return rf_error(RF_ERR_INVALID_ARG, "%s: null argument", op);
    RF_TRY(rf_check_tensor(op, "logits", logits, RF_F32, 3, (const int64_t[]){B, L, m->cfg.vocab_size}));
    RF_TRY(rf_check_device(op, "logits", logits, m->dev));
    rf_pass s;
    RF_TRY(rf_pass_init(&s, m, ids, attention_mask, B, L, false));
    int64_t V = m->cfg.vocab_size, Lp = s.Lp;
    rf_tensor full = {0};
    rf_status r = RF_OK;
    if (Lp != L) r = rf_tensor_alloc(m->dev, &full, RF_F32, 3, (int64_t[]){B, Lp, V});
    if (r == RF_OK) r = rf_model_embed(m, &s);
    if (r == RF_OK) r = rf_model_stack(m, &s, 0, m->cfg.num_layers, NULL, NULL);
    if (r == RF_OK) r = rf_model_head(m, &s, Lp != L ? &full : logits, NULL, NULL);
    /* Return the first L positions of each sequence. */
    for (int64_t b = 0; r == RF_OK && Lp != L && b < B; b++) {
        rf_tensor to, from;
        r = rf_rows_view(&to, logits, b * L, L, V);
        if (r == RF_OK) r = rf_rows_view(&from, &full, b * Lp, L, V);
        if (r == RF_OK) r = rf_tensor_copy(&to, &from);
    }
    if (full.buf) rf_tensor_free(&full);
    rf_pass_free(&s);
    m->step++;
    if (r == RF_OK && loss) r = lm_loss(m, logits, ids, B, L, loss);
    return r;
}
