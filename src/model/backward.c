/* Training's backward pass (§8, §9): the forward pass keeping only what the
 * reversible stack needs, the loss and head backward, the layers from the top
 * (reversible.c) and the embeddings. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "core/philox.h"
#include "device/device_impl.h"
#include "model/model_impl.h"
#include "ops/ops_impl.h"

/* ---- the backward pass ------------------------------------------------------- */

static void grads_free(grads *g) {
    rf_tensor *all[] = {&g->dy1, &g->dy2, &g->dh, &g->dh2, &g->dattn, &g->dq, &g->dk, &g->dv, &g->dff, &g->logits,
                        &g->lse, &g->targets, &g->loss, &g->dhead, &g->head_mean, &g->head_rstd};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i]->buf) rf_tensor_free(all[i]);
    for (int i = 0; i < RF_CONFIG_MAX_LAYERS; i++)
        if (g->buckets[i].buf) rf_tensor_free(&g->buckets[i]);
    for (int i = 0; i < 2 * RF_CONFIG_MAX_LAYERS; i++)
        if (g->saved[i].buf) rf_tensor_free(&g->saved[i]);
}

static rf_status grads_init(grads *g, rf_model *m, const rf_pass *s) {
    const rf_config *c = &m->cfg;
    int64_t B = s->B, L = s->L, D = c->hidden_size, V = c->vocab_size;
    int64_t HD = (int64_t)c->num_attention_heads * c->attention_head_size;
    rf_device *dev = m->dev;
    rf_tensor *d_wide[] = {&g->dy1, &g->dy2, &g->dh, &g->dh2};
    for (int i = 0; i < 4; i++) RF_TRY(rf_tensor_alloc(dev, d_wide[i], RF_F32, 3, (int64_t[]){B, L, D}));
    rf_tensor *hd_wide[] = {&g->dattn, &g->dq, &g->dk, &g->dv};
    for (int i = 0; i < 4; i++) RF_TRY(rf_tensor_alloc(dev, hd_wide[i], RF_F32, 3, (int64_t[]){B, L, HD}));
    RF_TRY(rf_tensor_alloc(dev, &g->dff, RF_F32, 2, s->ff.shape));
    RF_TRY(rf_tensor_alloc(dev, &g->logits, RF_F32, 3, (int64_t[]){B, L, V}));
    RF_TRY(rf_tensor_alloc(dev, &g->lse, RF_F32, 2, (int64_t[]){B, L}));
    RF_TRY(rf_tensor_alloc(dev, &g->loss, RF_F32, 1, (int64_t[]){1}));
    RF_TRY(rf_tensor_alloc(dev, &g->dhead, RF_F32, 3, (int64_t[]){B, L, 2 * D}));
    RF_TRY(rf_tensor_alloc(dev, &g->head_mean, RF_F32, 1, (int64_t[]){B * L}));
    RF_TRY(rf_tensor_alloc(dev, &g->head_rstd, RF_F32, 1, (int64_t[]){B * L}));
    /* §8: the only per-layer state kept from the forward pass: LSH buckets. */
    for (int i = 0; i < c->num_layers; i++) {
        if (c->attn_layers[i] != RF_ATTN_LSH) continue;
        int64_t rounds = L <= c->lsh_attn_chunk_length ? 1 : c->num_hashes;
        RF_TRY(rf_tensor_alloc(dev, &g->buckets[i], RF_I32, 3, (int64_t[]){B, c->num_attention_heads, rounds * L}));
    }
    for (int i = 0; m->store_activations && i < 2 * c->num_layers; i++)
        RF_TRY(rf_tensor_alloc(dev, &g->saved[i], RF_F32, 3, (int64_t[]){B, L, D}));
    return RF_OK;
}

static rf_status backward(rf_model *m, rf_pass *s, grads *g, const int32_t *ids, const int32_t *targets, float *loss) {
    const rf_config *c = &m->cfg;
    int64_t B = s->B, L = s->L;
    /* Forward, keeping only the final halves and the LSH buckets (§8). */
    rf_tensor *keep[RF_CONFIG_MAX_LAYERS];
    for (int i = 0; i < c->num_layers; i++) keep[i] = g->buckets[i].buf ? &g->buckets[i] : NULL;
    RF_TRY(rf_model_embed(m, s));
    RF_TRY(rf_model_stack(m, s, 0, c->num_layers, keep, m->store_activations ? g->saved : NULL));
    RF_TRY(rf_model_head(m, s, &g->logits, &g->head_mean, &g->head_rstd));
    if (targets) {
        RF_TRY(rf_tensor_alloc(m->dev, &g->targets, RF_I32, 2, (int64_t[]){B, L}));
        RF_TRY(rf_tensor_upload(&g->targets, targets, (size_t)(B * L) * 4));
    } else {
        RF_TRY(rf_model_targets(&g->targets, m->dev, ids, B, L));
    }
    RF_TRY(rf_cross_entropy_forward(&g->loss, &g->lse, &g->logits, &g->targets));
    RF_TRY(rf_tensor_download(&g->loss, loss, sizeof *loss));
    if (!isfinite(*loss))
        return rf_error(RF_ERR_NUMERIC, "rf_model_backward: the loss is %g; no gradient was accumulated", (double)*loss);
    /* Head backward (§9). */
    g->accumulating = true;
    RF_TRY(rf_cross_entropy_backward(&g->logits, &g->logits, &g->lse, &g->targets, 1.0f));
    RF_TRY(rf_linear_backward(&g->dhead, rf_model_grad_of(m, m->head_w), rf_model_grad_of(m, m->head_b), &g->logits, &s->joined, m->head_w));
    RF_TRY(rf_model_dropout(m, s, &g->dhead, 0, RF_PHILOX_DROPOUT_FINAL, 0, true));
    RF_TRY(rf_concat(&s->joined, &s->x1, &s->x2)); /* LayerNorm's input again */
    RF_TRY(rf_layer_norm_backward(&g->dhead, rf_model_grad_of(m, m->ln_w), rf_model_grad_of(m, m->ln_b), &g->dhead, &s->joined, m->ln_w,
                                  &g->head_mean, &g->head_rstd));
    RF_TRY(rf_split(&g->dy1, &g->dy2, &g->dhead));
    /* The layers from the top, rebuilding each layer's input (§8). */
    RF_TRY(rf_model_stack_backward(m, s, g));
    /* Embeddings: both halves started as the embedding. */
    RF_TRY(rf_add(&g->dy1, &g->dy1, &g->dy2, 1.0f));
    RF_TRY(rf_model_dropout(m, s, &g->dy1, 0, RF_PHILOX_DROPOUT_EMBED, 0, true));
    RF_TRY(rf_embedding_backward(rf_model_grad_of(m, m->word), &g->dy1, &s->ids));
    if (m->pos0) {
        const rf_config *cc = &m->cfg;
        rf_tensor d0, d1;
        RF_TRY(rf_tensor_view(&d0, rf_model_grad_of(m, m->pos0)->buf, 0, RF_F32, 2,
                              (int64_t[]){cc->axial_pos_shape[0], cc->axial_pos_embds_dim[0]}));
        RF_TRY(rf_tensor_view(&d1, rf_model_grad_of(m, m->pos1)->buf, 0, RF_F32, 2,
                              (int64_t[]){cc->axial_pos_shape[1], cc->axial_pos_embds_dim[1]}));
        return rf_axial_position_backward(&d0, &d1, &g->dy1);
    }
    return rf_position_embedding_backward(rf_model_grad_of(m, m->pos), &g->dy1);
}

rf_status rf_model_backward(rf_model *m, const int32_t *ids, const int32_t *targets, int64_t B, int64_t L, float *loss) {
    const char *op = "rf_model_backward";
    if (!m || !ids || !loss) return rf_error(RF_ERR_INVALID_ARG, "%s: null argument", op);
    int64_t Lp;
    RF_TRY(rf_model_check_batch(m, B, L, true, &Lp)); /* B·L is countable from here */
    for (int64_t i = 0; targets && i < B * L; i++)
        if (targets[i] < -1 || targets[i] >= m->cfg.vocab_size)
            return rf_error(RF_ERR_INVALID_ARG, "%s: target %d at position %lld is outside [-1, %d)", op, targets[i],
                            (long long)i, m->cfg.vocab_size);
    bool fresh = !m->train;
    RF_TRY(rf_train_state_ensure(m));
    rf_pass s;
    grads g;
    memset(&g, 0, sizeof g);
    rf_status r = rf_pass_init(&s, m, ids, NULL, B, L, true);
    if (r == RF_OK) {
        r = grads_init(&g, m, &s);
        if (r == RF_OK) r = backward(m, &s, &g, ids, targets, loss);
        grads_free(&g);
        rf_pass_free(&s);
        m->step++;
    }
    /* A failure (e.g. out of memory) part-way may have added to some
     * gradients: never leave a partial sum to a later rf_model_step. State
     * made by this call goes; otherwise every gradient is zeroed. */
    if (r != RF_OK && fresh) rf_train_state_free(m);
    else if (r != RF_OK && g.accumulating && rf_model_zero_grad(m) != RF_OK)
        rf_log(RF_LOG_ERROR, "%s: could not zero the gradients after a failure", op);
    return r;
}

