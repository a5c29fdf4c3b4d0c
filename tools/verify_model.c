/* verify cases for the whole model (§8, §9): the same random model —
 * Philox initialisation gives identical weights on every device — run on the
 * cpu reference and on the device: inference logits (matrix-product
 * tolerance), the loss and every parameter's gradient from one training step
 * with dropout on, a row per parameter tensor (gradient rule).
 * The LSH layers see L ≤ their chunk length, so no hash decision can differ
 * by rounding between devices: the op-level LSH cases feed both devices the
 * same buckets instead. */
#include <stdio.h>
#include <string.h>
#include "verify.h"

static rf_config model_config(int layers) {
    rf_config cfg;
    rf_config_default(&cfg);
    cfg.num_layers = layers;
    for (int i = 0; i < layers; i++) cfg.attn_layers[i] = i % 2 ? RF_ATTN_LSH : RF_ATTN_LOCAL;
    cfg.hidden_size = 32, cfg.num_attention_heads = 2, cfg.attention_head_size = 16, cfg.feed_forward_size = 48;
    cfg.vocab_size = 50, cfg.num_hashes = 2, cfg.num_bucket_factors = 1, cfg.num_buckets[0] = 4;
    cfg.lsh_attn_chunk_length = 64, cfg.local_attn_chunk_length = 16;
    cfg.axial_pos_shape[0] = 8, cfg.axial_pos_shape[1] = 8;
    cfg.axial_pos_embds_dim[0] = 16, cfg.axial_pos_embds_dim[1] = 16;
    cfg.max_position_embeddings = 64;
    cfg.is_decoder = true;
    cfg.hidden_act = RF_ACT_GELU;
    cfg.initializer_range = 0.1;
    cfg.hidden_dropout_prob = 0.1;
    cfg.local_attention_probs_dropout_prob = cfg.lsh_attention_probs_dropout_prob = 0.05;
    return cfg;
}

/* One row per parameter tensor: the device's gradient (copied into a
 * guarded output) against the cpu's, by the gradient rule (rtol 1e-3, atol
 * 1e-3·rms of that tensor's cpu gradient). */
static void check_grads(vf_ctx *c, const char *shape, rf_model *m0, rf_model *m1) {
    for (int i = 0; i < rf_model_param_count(m0); i++) {
        const char *name = rf_model_param_name(m0, i);
        const rf_tensor *ref = rf_model_grad(m0, name), *g = rf_model_grad(m1, name);
        char op[160];
        snprintf(op, sizeof op, "grad %s", name);
        vf_out out = {0};
        rf_status s = vf_out_alloc(c->dev, &out, ref->ndim, ref->shape);
        if (!s) s = rf_buffer_copy(out.t.buf, out.t.offset * 4, g->buf, g->offset * 4, rf_tensor_numel(ref) * 4);
        if (s) vf_error(c, op, shape, s);
        else vf_check_grad(c, op, shape, &out, ref, 1e-3);
        vf_out_free(&out);
    }
}

/* A scalar as a one-element row (§10 elementwise tolerance). */
static void check_scalar(vf_ctx *c, const char *op, const char *shape, float got, float want, double tol) {
    rf_tensor ref = {0};
    vf_out out = {0};
    int64_t one[] = {1};
    rf_status s = vf_tensor(c->cpu, &ref, 1, one, &want);
    if (!s) s = vf_out_alloc(c->dev, &out, 1, one);
    if (!s) s = rf_tensor_upload(&out.t, &got, 4);
    if (s) vf_error(c, op, shape, s);
    else vf_check(c, op, shape, &out, &ref, tol);
    if (ref.buf) rf_tensor_free(&ref);
    vf_out_free(&out);
}

static void model_case(vf_ctx *c, int layers, int64_t B, int64_t L) {
    char shape[64];
    snprintf(shape, sizeof shape, "layers%d B%lld L%lld D32", layers, (long long)B, (long long)L);
    rf_config cfg = model_config(layers);
    int32_t ids[4 * 64];
    for (int64_t i = 0; i < B * L; i++) ids[i] = (int32_t)((i * 17 + 3) % cfg.vocab_size);
    rf_model *m0 = NULL, *m1 = NULL;
    rf_tensor ref_logits = {0};
    vf_out logits = {0};
    float loss0, loss1;
    rf_status s = rf_model_create(&m0, c->cpu, &cfg, 21);
    if (!s) s = rf_model_create(&m1, c->dev, &cfg, 21);
    int64_t ls[] = {B, L, cfg.vocab_size};
    if (!s) s = rf_tensor_alloc(c->cpu, &ref_logits, RF_F32, 3, ls);
    if (!s) s = vf_out_alloc(c->dev, &logits, 3, ls);
    if (!s) s = rf_model_forward(m0, &ref_logits, ids, NULL, B, L, NULL);
    if (!s) s = rf_model_forward(m1, &logits.t, ids, NULL, B, L, NULL);
    if (s) {
        vf_error(c, "model forward", shape, s);
    } else {
        vf_check(c, "model logits", shape, &logits, &ref_logits, 1e-4);
        /* A training step: both models are at forward call 1, so the dropout
         * masks agree. */
        s = rf_model_backward(m0, ids, NULL, B, L, &loss0);
        if (!s) s = rf_model_backward(m1, ids, NULL, B, L, &loss1);
        if (s) {
            vf_error(c, "model gradients", shape, s);
        } else {
            check_scalar(c, "model training loss", shape, loss1, loss0, 1e-4);
            check_grads(c, shape, m0, m1);
        }
    }
    if (ref_logits.buf) rf_tensor_free(&ref_logits);
    vf_out_free(&logits);
    rf_model_free(m0);
    rf_model_free(m1);
}

void vf_cases_model(vf_ctx *c) {
    if (c->tiny) return; /* its kernels are the ops' */
    model_case(c, 2, 2, 64);
    if (c->full) model_case(c, 6, 4, 64);
}
