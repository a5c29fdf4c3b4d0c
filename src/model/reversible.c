/* The reversible layer (§8), both directions side by side:
 *   forward   Y1 = X1 + Attn(LN(X2)),   Y2 = X2 + FF(Y1)
 *   backward  rebuild X2 = Y2 − FF(Y1) and X1 = Y1 − Attn(LN(X2)) while
 *             taking the gradients, so no layer's input is ever stored.
 * Each half (attention, feed-forward) has its forward block followed by its
 * backward; the stack runs the layers bottom-up and top-down. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "core/philox.h"
#include "device/device_impl.h"
#include "model/model_impl.h"
#include "ops/ops_impl.h"

/* ---- attention half: Y1 = X1 + Attn(LN(X2)) ---------------------------------- */

/* The attention block: residual += alpha · drop(W_o · Attn(LN(s->x2)))
 * (§5, §6, §8). Leaves LN's output in s->h (and, training, its mean/rstd),
 * the projections in s->a (qk or q), s->b (v), s->c (k), the attention
 * output in s->attn and, for local layers in training, its lse in s->lse.
 * Without dropout the GEMM adds into the residual itself (beta = 1: no
 * product tensor, no pass to add it); with dropout the product goes
 * through s->f. */
rf_status rf_model_attention_block(rf_model *m, int li, rf_pass *s, rf_tensor *buckets, bool reuse, rf_lsh_state *keep,
                                   rf_tensor *residual, float alpha) {
    const rf_config *c = &m->cfg;
    layer *l = &m->layers[li];
    bool train = s->training;
    RF_TRY(rf_layer_norm_forward(&s->h, train ? &s->mean : NULL, train ? &s->rstd : NULL, &s->x2, l->ln_a_w, l->ln_a_b,
                                 (float)c->layer_norm_eps));
    RF_TRY(rf_linear_forward(&s->b, &s->h, l->v, NULL));
    if (l->type == RF_ATTN_LSH) {
        RF_TRY(rf_linear_forward(&s->a, &s->h, l->qk, NULL));
        RF_TRY(rf_model_lsh(m, li, s, buckets, reuse, keep));
    } else {
        RF_TRY(rf_linear_forward(&s->a, &s->h, l->q, NULL));
        RF_TRY(rf_linear_forward(&s->c, &s->h, l->k, NULL));
        rf_attention_config ac = rf_model_local_config(m, li, s->training);
        RF_TRY(rf_local_attention_forward(&s->attn, train ? &s->lse : NULL, &s->a, &s->c, &s->b,
                                          s->padded ? &s->mask : NULL, &ac));
    }
    if (!rf_model_dropout_on(m, s)) return rf_linear_accumulate(residual, &s->attn, l->o, NULL, alpha);
    RF_TRY(rf_linear_forward(&s->f, &s->attn, l->o, NULL));
    RF_TRY(rf_model_dropout(m, s, &s->f, li, RF_PHILOX_DROPOUT_HIDDEN, 0, false));
    return rf_add(residual, residual, &s->f, alpha);
}

/* A gradient through HF's hidden dropout (backward): `grad` itself when the
 * dropout is off, so no copy is made; else its dropped copy in `scratch`.
 * `grad` stays intact either way (it is also the residual's gradient). */
static rf_status through_dropout(rf_model *m, const rf_pass *s, rf_tensor *scratch, const rf_tensor *grad, int li,
                                 int use, uint64_t first, const rf_tensor **out) {
    *out = grad;
    if (!rf_model_dropout_on(m, s)) return RF_OK;
    RF_TRY(rf_tensor_copy(scratch, grad));
    *out = scratch;
    return rf_model_dropout(m, s, scratch, li, use, first, true);
}

/* dx += dy·W and W's gradient for y = x·Wᵀ (§1): the GEMM accumulates into
 * dx itself (beta = 1), saving a product into scratch and a pass to add it. */
static rf_status linear_backward_accumulate(rf_model *m, rf_tensor *dx, const rf_tensor *dy, const rf_tensor *x,
                                            const rf_tensor *w) {
    RF_TRY(rf_linear_backward(NULL, rf_model_grad_of(m, w), NULL, dy, x, w));
    rf_gemm_desc d = {.m = (int64_t)(rf_tensor_numel(dy) / (size_t)w->shape[0]), .n = w->shape[1],
                      .k = w->shape[0], .alpha = 1.0f, .beta = 1.0f};
    return rf_gemm(dx, dy, w, &d);
}

/* dY2 += ∂Attn(LN(X2))/∂X2 · dY1 and attention parameter gradients,
 * recomputing the block with the stored buckets, which rebuilds X1 = Y1 − f
 * on the way (§8: nothing below reads Y1). */
static rf_status attention_backward(rf_model *m, int li, rf_pass *s, grads *g) {
    layer *l = &m->layers[li];
    const rf_tensor *mask = s->padded ? &s->mask : NULL;
    rf_lsh_state st;
    bool lsh = l->type == RF_ATTN_LSH;
    RF_TRY(rf_model_attention_block(m, li, s, lsh ? &g->buckets[li] : NULL, true, lsh ? &st : NULL, &s->x1, -1.0f));
    /* dY1 stays for dX1; the attention block sees it through the dropout. */
    const rf_tensor *dy1;
    rf_status r = through_dropout(m, s, &g->dh2, &g->dy1, li, RF_PHILOX_DROPOUT_HIDDEN, 0, &dy1);
    if (r == RF_OK) r = rf_linear_backward(&g->dattn, rf_model_grad_of(m, l->o), NULL, dy1, &s->attn, l->o);
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
    RF_TRY(rf_linear_backward(&g->dh, rf_model_grad_of(m, l->v), NULL, &g->dv, &s->h, l->v));
    RF_TRY(linear_backward_accumulate(m, &g->dh, &g->dq, &s->h, lsh ? l->qk : l->q));
    if (!lsh) RF_TRY(linear_backward_accumulate(m, &g->dh, &g->dk, &s->h, l->k));
    RF_TRY(rf_layer_norm_backward(&g->dh, rf_model_grad_of(m, l->ln_a_w), rf_model_grad_of(m, l->ln_a_b), &g->dh, &s->x2, l->ln_a_w,
                                  &s->mean, &s->rstd));
    return rf_add(&g->dy2, &g->dy2, &g->dh, 1.0f);
}

/* ---- feed-forward half: Y2 = X2 + FF(Y1) ------------------------------------- */

/* One feed-forward chunk (§7), rows r0.. of the pass: residual += alpha ·
 * drop(W2·act(drop(W1·LN(x) + b1)) + b2) (the dropouts as HF's, training
 * only), with `h`, `pre` (the dropped W1·LN(x) + b1, training only) and `ff`
 * (the activation) as scratch views of the chunk's rows, and `g` the
 * product's when dropout is on. Without dropout the bias and activation are
 * one pass and the second GEMM adds into the residual itself (as in the
 * attention block). mean/rstd: NULL or the chunk's rows. */
rf_status rf_model_ff_chunk(rf_model *m, const rf_pass *s, int li, int64_t r0, rf_tensor *residual, float alpha,
                            rf_tensor *g, rf_tensor *h, rf_tensor *pre, rf_tensor *ff, const rf_tensor *x,
                            rf_tensor *mean, rf_tensor *rstd) {
    const rf_config *c = &m->cfg;
    layer *l = &m->layers[li];
    RF_TRY(rf_layer_norm_forward(h, mean, rstd, x, l->ln_f_w, l->ln_f_b, (float)c->layer_norm_eps));
    rf_tensor *a = pre ? pre : ff;
    if (!rf_model_dropout_on(m, s)) {
        RF_TRY(rf_linear_forward(a, h, l->w1, NULL));
        RF_TRY(rf_bias_activation_forward(ff, pre, a, l->b1, c->hidden_act));
        return rf_linear_accumulate(residual, ff, l->w2, l->b2, alpha);
    }
    RF_TRY(rf_linear_forward(a, h, l->w1, l->b1));
    RF_TRY(rf_model_dropout(m, s, a, li, RF_PHILOX_DROPOUT_FF, (uint64_t)r0 * (uint64_t)c->feed_forward_size, false));
    RF_TRY(rf_activation_forward(ff, a, c->hidden_act));
    RF_TRY(rf_linear_forward(g, ff, l->w2, l->b2));
    RF_TRY(rf_model_dropout(m, s, g, li, RF_PHILOX_DROPOUT_FF_OUT, (uint64_t)r0 * (uint64_t)c->hidden_size, false));
    return rf_add(residual, residual, g, alpha);
}

/* x2 += FF(x1), in chunks of rows bounding the F-wide intermediate (§7). */
rf_status rf_model_ff_block(rf_model *m, int li, rf_pass *s) {
    int64_t D = m->cfg.hidden_size, F = m->cfg.feed_forward_size, rows = s->B * s->Lp, chunk = s->ff.shape[0];
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        int64_t n = rows - r0 < chunk ? rows - r0 : chunk;
        rf_tensor x1, x2, h, f, ff;
        RF_TRY(rf_rows_view(&x1, &s->x1, r0, n, D));
        RF_TRY(rf_rows_view(&x2, &s->x2, r0, n, D));
        RF_TRY(rf_rows_view(&h, &s->h, r0, n, D));
        RF_TRY(rf_rows_view(&f, &s->f, r0, n, D));
        RF_TRY(rf_rows_view(&ff, &s->ff, 0, n, F));
        RF_TRY(rf_model_ff_chunk(m, s, li, r0, &x2, 1.0f, &f, &h, NULL, &ff, &x1, NULL, NULL));
    }
    return RF_OK;
}

/* dY1 += ∂FF(Y1)/∂Y1 · dY2 and FF parameter gradients, chunk by chunk (§7,
 * §8), recomputing each chunk, which rebuilds X2 = Y2 − FF(Y1) on the way
 * (nothing below reads Y2). */
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
        RF_TRY(rf_model_ff_chunk(m, s, li, r0, &x2, -1.0f, &f, &h, &pre, &ff, &y1, &mean, &rstd));
        /* dY2 stays for dX2; the feed-forward sees it through the dropout. */
        const rf_tensor *dg;
        RF_TRY(through_dropout(m, s, &dh, &dy2, li, RF_PHILOX_DROPOUT_FF_OUT, (uint64_t)r0 * (uint64_t)D, &dg));
        RF_TRY(rf_linear_backward(&dff, rf_model_grad_of(m, l->w2), rf_model_grad_of(m, l->b2), dg, &ff, l->w2));
        RF_TRY(rf_activation_backward(&dff, &dff, &pre, c->hidden_act));
        RF_TRY(rf_model_dropout(m, s, &dff, li, RF_PHILOX_DROPOUT_FF, (uint64_t)r0 * (uint64_t)F, true));
        RF_TRY(rf_linear_backward(&dh, rf_model_grad_of(m, l->w1), rf_model_grad_of(m, l->b1), &dff, &h, l->w1));
        RF_TRY(rf_layer_norm_backward(&dh, rf_model_grad_of(m, l->ln_f_w), rf_model_grad_of(m, l->ln_f_b), &dh, &y1, l->ln_f_w, &mean,
                                      &rstd));
        RF_TRY(rf_add(&dy1, &dy1, &dh, 1.0f));
    }
    return RF_OK;
}

/* ---- the stack of layers ------------------------------------------------------ */

rf_status rf_model_stack(rf_model *m, rf_pass *s, int first, int last, rf_tensor *const *keep_buckets,
                         rf_tensor *saved) {
    if (first < 0 || last > m->cfg.num_layers || first > last)
        return rf_error(RF_ERR_INVALID_ARG, "rf_model_stack: layers [%d, %d) outside [0, %d)", first, last,
                        m->cfg.num_layers);
    for (int i = first; i < last; i++) {
        if (saved) {
            RF_TRY(rf_tensor_copy(&saved[2 * i], &s->x1));
            RF_TRY(rf_tensor_copy(&saved[2 * i + 1], &s->x2));
        }
        /* §8: Y1 = X1 + Attn(LN(X2)); Y2 = X2 + FF(Y1). */
        RF_TRY(rf_model_attention_block(m, i, s, keep_buckets ? keep_buckets[i] : NULL, false, NULL, &s->x1, 1.0f));
        RF_TRY(rf_model_ff_block(m, i, s));
    }
    return RF_OK;
}

/* The layers from the top (§8): from the outputs (Y1, Y2) in s->x1, s->x2
 * and their gradients in g->dy1, g->dy2, each layer's input is rebuilt and
 * its gradients taken; on return s holds the embedding in both halves and g
 * the gradients with respect to it. */
rf_status rf_model_stack_backward(rf_model *m, rf_pass *s, grads *g) {
    for (int i = m->cfg.num_layers - 1; i >= 0; i--) {
        RF_TRY(feed_forward_backward(m, i, s, g));
        if (m->store_activations) RF_TRY(rf_tensor_copy(&s->x2, &g->saved[2 * i + 1]));
        RF_TRY(attention_backward(m, i, s, g));
        if (m->store_activations) RF_TRY(rf_tensor_copy(&s->x1, &g->saved[2 * i]));
    }
    return RF_OK;
}
