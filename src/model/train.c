/* Training: the reversible backward pass (SPEC §8), gradient accumulation,
 * global-norm clipping and AdamW with a learning-rate schedule (§9). */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "core/philox.h"
#include "device/device_impl.h"
#include "model/model_impl.h"
#include "ops/ops_impl.h"

rf_status rf_train_config_default(rf_train_config *tc) {
    if (!tc) return rf_error(RF_ERR_INVALID_ARG, "rf_train_config_default: tc is NULL");
    *tc = (rf_train_config){.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.0f,
                            .clip_norm = 1.0f, .warmup_steps = 100, .schedule = RF_SCHEDULE_INV_SQRT,
                            .total_steps = 0};
    return RF_OK;
}

float rf_train_lr(const rf_train_config *tc, int64_t step) {
    double s = (double)(step < 1 ? 1 : step), w = (double)tc->warmup_steps;
    if (w > 0 && s < w) return (float)(tc->lr * s / w);
    switch (tc->schedule) {
    case RF_SCHEDULE_INV_SQRT: return (float)(tc->lr * (w > 0 ? sqrt(w / s) : 1.0));
    case RF_SCHEDULE_COSINE: {
        double span = (double)tc->total_steps - w, t = span > 0 ? (s - w) / span : 1.0;
        if (t > 1) t = 1;
        return (float)(tc->lr * 0.5 * (1 + cos(3.14159265358979323846 * t)));
    }
    case RF_SCHEDULE_CONSTANT: break;
    }
    return tc->lr;
}

int64_t rf_model_steps(const rf_model *model) { return model && model->train ? model->train->steps : 0; }

int rf_model_param_count(const rf_model *model) { return model ? model->nparams : 0; }

const char *rf_model_param_name(const rf_model *model, int index) {
    return model && index >= 0 && index < model->nparams ? model->params[index].name : NULL;
}

static int param_index(const rf_model *m, const char *name) {
    for (int i = 0; name && i < m->nparams; i++)
        if (!strcmp(m->params[i].name, name)) return i;
    return -1;
}

rf_tensor *rf_model_param(rf_model *model, const char *name) {
    int i = model ? param_index(model, name) : -1;
    return i < 0 ? NULL : &model->params[i].t;
}

const rf_tensor *rf_model_grad(const rf_model *model, const char *name) {
    int i = model && model->train ? param_index(model, name) : -1;
    return i < 0 ? NULL : &model->train->grads[i];
}

/* The gradient buffer of a parameter (the table keeps them in step). */
static rf_tensor *grad_of(rf_model *m, const rf_tensor *p) {
    const param *owner = (const param *)((const char *)p - offsetof(param, t));
    return &m->train->grads[owner - m->params];
}

rf_status rf_train_state_ensure(rf_model *m) {
    if (m->train) return RF_OK;
    m->train = calloc(1, sizeof *m->train);
    if (!m->train) return rf_error(RF_ERR_OUT_OF_MEMORY, "no host memory for the training state");
    rf_status s = RF_OK;
    for (int i = 0; s == RF_OK && i < m->nparams; i++) {
        const rf_tensor *p = &m->params[i].t;
        rf_tensor *all[] = {&m->train->grads[i], &m->train->adam_m[i], &m->train->adam_v[i]};
        for (int k = 0; s == RF_OK && k < 3; k++) {
            s = rf_tensor_alloc(m->dev, all[k], RF_F32, p->ndim, p->shape);
            if (s == RF_OK) s = rf_tensor_fill_f32(all[k], 0.0f);
        }
    }
    if (s != RF_OK) rf_train_state_free(m);
    return s;
}

rf_status rf_model_zero_grad(rf_model *model) {
    if (!model) return rf_error(RF_ERR_INVALID_ARG, "rf_model_zero_grad: model is NULL");
    if (!model->train) return RF_OK;
    for (int i = 0; i < model->nparams; i++) RF_TRY(rf_tensor_fill_f32(&model->train->grads[i], 0.0f));
    return RF_OK;
}

/* ---- the backward pass ------------------------------------------------------- */

/* Gradient buffers of one backward pass, besides the forward pass's. */
typedef struct grads {
    rf_tensor dy1, dy2;          /* gradients of the halves [B, L, D] */
    rf_tensor dh, dh2;           /* [B, L, D] */
    rf_tensor dattn, dq, dk, dv; /* [B, L, H·d] */
    rf_tensor dff;               /* [chunk rows, F] */
    rf_tensor logits, lse, targets, loss, dhead, head_mean, head_rstd;
    rf_tensor buckets[RF_CONFIG_MAX_LAYERS];
    rf_tensor saved[2 * RF_CONFIG_MAX_LAYERS];   /* store_activations only */
    bool accumulating;           /* gradients of the model have been added to */
} grads;

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

/* dY1 += ∂FF(Y1)/∂Y1 · dY2 and FF parameter gradients, chunk by chunk (§7,
 * §8), recomputing each chunk; then X2 = Y2 − FF(Y1). */
static rf_status feed_forward_backward(rf_model *m, int li, rf_pass *s, grads *g) {
    const rf_config *c = &m->cfg;
    layer *l = &m->layers[li];
    int64_t D = c->hidden_size, F = c->feed_forward_size, rows = s->B * s->Lp, chunk = s->ff.shape[0];
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        int64_t n = rows - r0 < chunk ? rows - r0 : chunk;
        rf_tensor y1, x2, h, f, ff, pre, dff, dy1, dy2, dh, mean, rstd;
        RF_TRY(rf_rows_view(&y1, &s->x1, r0, n, D));
        RF_TRY(rf_rows_view(&x2, &s->x2, r0, n, D));
        RF_TRY(rf_rows_view(&h, &s->h, r0, n, D));
        RF_TRY(rf_rows_view(&f, &s->f, r0, n, D));
        RF_TRY(rf_rows_view(&ff, &s->ff, 0, n, F));
        RF_TRY(rf_rows_view(&pre, &s->ff_pre, 0, n, F));
        RF_TRY(rf_rows_view(&dff, &g->dff, 0, n, F));
        RF_TRY(rf_rows_view(&dy1, &g->dy1, r0, n, D));
        RF_TRY(rf_rows_view(&dy2, &g->dy2, r0, n, D));
        RF_TRY(rf_rows_view(&dh, &g->dh, r0, n, D));
        RF_TRY(rf_tensor_view(&mean, s->mean.buf, (size_t)r0, RF_F32, 1, (int64_t[]){n}));
        RF_TRY(rf_tensor_view(&rstd, s->rstd.buf, (size_t)r0, RF_F32, 1, (int64_t[]){n}));
        RF_TRY(rf_model_ff_chunk(m, s, li, r0, &f, &h, &pre, &ff, &y1, &mean, &rstd));
        /* dY2 stays for dX2; its dropped copy goes through dh. */
        RF_TRY(rf_buffer_copy(dh.buf, dh.offset * 4, dy2.buf, dy2.offset * 4, rf_tensor_numel(&dh) * 4));
        RF_TRY(rf_model_dropout(m, s, &dh, li, RF_PHILOX_DROPOUT_FF_OUT, (uint64_t)r0 * (uint64_t)D, true));
        RF_TRY(rf_linear_backward(&dff, grad_of(m, l->w2), grad_of(m, l->b2), &dh, &ff, l->w2));
        RF_TRY(rf_activation_backward(&dff, &dff, &pre, c->hidden_act));
        RF_TRY(rf_model_dropout(m, s, &dff, li, RF_PHILOX_DROPOUT_FF, (uint64_t)r0 * (uint64_t)F, true));
        RF_TRY(rf_linear_backward(&dh, grad_of(m, l->w1), grad_of(m, l->b1), &dff, &h, l->w1));
        RF_TRY(rf_layer_norm_backward(&dh, grad_of(m, l->ln_f_w), grad_of(m, l->ln_f_b), &dh, &y1, l->ln_f_w, &mean,
                                      &rstd));
        RF_TRY(rf_add(&dy1, &dy1, &dh, 1.0f));
        RF_TRY(rf_add(&x2, &x2, &f, -1.0f)); /* X2 = Y2 − g */
    }
    return RF_OK;
}

/* dY2 += ∂Attn(LN(X2))/∂X2 · dY1 and attention parameter gradients,
 * recomputing the block with the stored buckets; then X1 = Y1 − f (§8). */
static rf_status attention_backward(rf_model *m, int li, rf_pass *s, grads *g) {
    layer *l = &m->layers[li];
    const rf_tensor *mask = s->padded ? &s->mask : NULL;
    rf_lsh_state st;
    bool lsh = l->type == RF_ATTN_LSH;
    RF_TRY(rf_model_attention_block(m, li, s, lsh ? &g->buckets[li] : NULL, true, lsh ? &st : NULL));
    /* dY1 stays for dX1; its dropped copy goes through dh2. */
    rf_status r = rf_buffer_copy(g->dh2.buf, 0, g->dy1.buf, 0, rf_tensor_numel(&g->dy1) * 4);
    if (r == RF_OK) r = rf_model_dropout(m, s, &g->dh2, li, RF_PHILOX_DROPOUT_HIDDEN, 0, true);
    if (r == RF_OK) r = rf_linear_backward(&g->dattn, grad_of(m, l->o), NULL, &g->dh2, &s->attn, l->o);
    if (r == RF_OK && lsh) {
        r = rf_lsh_attention_backward(&g->dq, &g->dv, &g->dattn, &st, &s->a, &s->b, mask);
    } else if (r == RF_OK) {
        rf_attention_config ac = rf_model_local_config(m, li, true);
        r = rf_local_attention_backward(&g->dq, &g->dk, &g->dv, &g->dattn, &s->attn, &s->lse, &s->a, &s->c, &s->b,
                                        mask, &ac);
    }
    if (lsh) rf_lsh_state_free(&st);
    RF_TRY(r);
    /* dh = dv·Wv + dq·Wq (+ dk·Wk). */
    RF_TRY(rf_linear_backward(&g->dh, grad_of(m, l->v), NULL, &g->dv, &s->h, l->v));
    RF_TRY(rf_linear_backward(&g->dh2, grad_of(m, lsh ? l->qk : l->q), NULL, &g->dq, &s->h, lsh ? l->qk : l->q));
    RF_TRY(rf_add(&g->dh, &g->dh, &g->dh2, 1.0f));
    if (!lsh) {
        RF_TRY(rf_linear_backward(&g->dh2, grad_of(m, l->k), NULL, &g->dk, &s->h, l->k));
        RF_TRY(rf_add(&g->dh, &g->dh, &g->dh2, 1.0f));
    }
    RF_TRY(rf_layer_norm_backward(&g->dh, grad_of(m, l->ln_a_w), grad_of(m, l->ln_a_b), &g->dh, &s->x2, l->ln_a_w,
                                  &s->mean, &s->rstd));
    RF_TRY(rf_add(&g->dy2, &g->dy2, &g->dh, 1.0f));
    return rf_add(&s->x1, &s->x1, &s->f, -1.0f); /* X1 = Y1 − f */
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
    RF_TRY(rf_linear_backward(&g->dhead, grad_of(m, m->head_w), grad_of(m, m->head_b), &g->logits, &s->joined, m->head_w));
    RF_TRY(rf_model_dropout(m, s, &g->dhead, 0, RF_PHILOX_DROPOUT_FINAL, 0, true));
    RF_TRY(rf_concat(&s->joined, &s->x1, &s->x2)); /* LayerNorm's input again */
    RF_TRY(rf_layer_norm_backward(&g->dhead, grad_of(m, m->ln_w), grad_of(m, m->ln_b), &g->dhead, &s->joined, m->ln_w,
                                  &g->head_mean, &g->head_rstd));
    RF_TRY(rf_split(&g->dy1, &g->dy2, &g->dhead));
    /* The layers from the top, rebuilding each layer's input (§8). */
    size_t bytes = rf_tensor_numel(&s->x1) * 4;
    for (int i = c->num_layers - 1; i >= 0; i--) {
        RF_TRY(feed_forward_backward(m, i, s, g));
        if (m->store_activations) RF_TRY(rf_buffer_copy(s->x2.buf, 0, g->saved[2 * i + 1].buf, 0, bytes));
        RF_TRY(attention_backward(m, i, s, g));
        if (m->store_activations) RF_TRY(rf_buffer_copy(s->x1.buf, 0, g->saved[2 * i].buf, 0, bytes));
    }
    /* Embeddings: both halves started as the embedding. */
    RF_TRY(rf_add(&g->dy1, &g->dy1, &g->dy2, 1.0f));
    RF_TRY(rf_model_dropout(m, s, &g->dy1, 0, RF_PHILOX_DROPOUT_EMBED, 0, true));
    RF_TRY(rf_embedding_backward(grad_of(m, m->word), &g->dy1, &s->ids));
    if (m->pos0) {
        const rf_config *cc = &m->cfg;
        rf_tensor d0, d1;
        RF_TRY(rf_tensor_view(&d0, grad_of(m, m->pos0)->buf, 0, RF_F32, 2,
                              (int64_t[]){cc->axial_pos_shape[0], cc->axial_pos_embds_dim[0]}));
        RF_TRY(rf_tensor_view(&d1, grad_of(m, m->pos1)->buf, 0, RF_F32, 2,
                              (int64_t[]){cc->axial_pos_shape[1], cc->axial_pos_embds_dim[1]}));
        return rf_axial_position_backward(&d0, &d1, &g->dy1);
    }
    return rf_position_embedding_backward(grad_of(m, m->pos), &g->dy1);
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

/* ---- the optimiser -------------------------------------------------------- */

rf_status rf_model_step(rf_model *m, const rf_train_config *tc, int micro_batches, float *grad_norm) {
    const char *op = "rf_model_step";
    if (!m || !tc) return rf_error(RF_ERR_INVALID_ARG, "%s: null argument", op);
    if (!m->train) return rf_error(RF_ERR_INVALID_ARG, "%s: no gradients: call rf_model_backward first", op);
    if (micro_batches < 1) return rf_error(RF_ERR_INVALID_ARG, "%s: micro_batches = %d must be >= 1", op, micro_batches);
    if (!(tc->lr >= 0) || !(tc->clip_norm >= 0))
        return rf_error(RF_ERR_INVALID_ARG, "%s: lr %g and clip_norm %g must be >= 0", op, (double)tc->lr,
                        (double)tc->clip_norm);
    /* The global norm of the averaged gradient (§9). */
    rf_tensor sq;
    RF_TRY(rf_tensor_alloc(m->dev, &sq, RF_F32, 1, (int64_t[]){1}));
    double total = 0;
    rf_status r = RF_OK;
    for (int i = 0; r == RF_OK && i < m->nparams; i++) {
        float part = 0;
        r = rf_sum_squares(&sq, &m->train->grads[i]);
        if (r == RF_OK) r = rf_tensor_download(&sq, &part, sizeof part);
        total += part;
    }
    rf_tensor_free(&sq);
    RF_TRY(r);
    double norm = sqrt(total) / micro_batches;
    if (grad_norm) *grad_norm = (float)norm;
    if (!isfinite(norm)) {
        RF_TRY(rf_model_zero_grad(m));
        return rf_error(RF_ERR_NUMERIC, "%s: the gradient norm is %g at step %lld; the weights were not changed", op,
                        norm, (long long)m->train->steps + 1);
    }
    double scale = 1.0 / micro_batches;
    if (tc->clip_norm > 0 && norm > tc->clip_norm) scale *= tc->clip_norm / norm;
    int64_t step = m->train->steps + 1;
    rf_adam_config ac = {.lr = rf_train_lr(tc, step), .beta1 = tc->beta1, .beta2 = tc->beta2, .eps = tc->eps,
                         .weight_decay = tc->weight_decay, .grad_scale = (float)scale};
    for (int i = 0; i < m->nparams; i++)
        RF_TRY(rf_adam_update(&m->params[i].t, &m->train->adam_m[i], &m->train->adam_v[i], &m->train->grads[i], &ac, step));
    m->train->steps = step;
    return rf_model_zero_grad(m);
}
