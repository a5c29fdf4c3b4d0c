/* verify cases for the whole model (§8, §9): the same random model —
 * Philox initialisation gives identical weights on every device — run on the
 * cpu reference and on the device: inference logits (matrix-product
 * tolerance) and every parameter's gradient from one training step with
 * dropout on (gradient tolerance), all gradients concatenated in one row.
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

/* Every parameter's gradient, concatenated into `out` (element offsets). */
static rf_status gather_grads(rf_model *m, rf_tensor *out) {
    size_t at = 0;
    for (int i = 0; i < rf_model_param_count(m); i++) {
        const rf_tensor *g = rf_model_grad(m, rf_model_param_name(m, i));
        size_t n = rf_tensor_numel(g);
        rf_status s = rf_buffer_copy(out->buf, (out->offset + at) * 4, g->buf, g->offset * 4, n * 4);
        if (s) return s;
        at += n;
    }
    return RF_OK;
}

static size_t count_params(rf_model *m) {
    size_t n = 0;
    for (int i = 0; i < rf_model_param_count(m); i++) n += rf_tensor_numel(rf_model_param(m, rf_model_param_name(m, i)));
    return n;
}

static void model_case(vf_ctx *c, int layers, int64_t B, int64_t L) {
    char shape[64];
    snprintf(shape, sizeof shape, "layers%d B%lld L%lld D32", layers, (long long)B, (long long)L);
    rf_config cfg = model_config(layers);
    int32_t ids[4 * 64];
    for (int64_t i = 0; i < B * L; i++) ids[i] = (int32_t)((i * 17 + 3) % cfg.vocab_size);
    rf_model *m0 = NULL, *m1 = NULL;
    rf_tensor ref_logits = {0}, ref_grads = {0};
    vf_out logits = {0}, grads = {0};
    float loss;
    rf_status s = rf_model_create(&m0, c->cpu, &cfg, 21);
    if (!s) s = rf_model_create(&m1, c->dev, &cfg, 21);
    int64_t ls[] = {B, L, cfg.vocab_size}, gs[1] = {0};
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
        gs[0] = (int64_t)count_params(m0);
        s = rf_model_backward(m0, ids, NULL, B, L, &loss);
        if (!s) s = rf_model_backward(m1, ids, NULL, B, L, &loss);
        if (!s) s = rf_tensor_alloc(c->cpu, &ref_grads, RF_F32, 1, gs);
        if (!s) s = vf_out_alloc(c->dev, &grads, 1, gs);
        if (!s) s = gather_grads(m0, &ref_grads);
        if (!s) s = gather_grads(m1, &grads.t);
        if (s) vf_error(c, "model gradients", shape, s);
        else vf_check(c, "model gradients", shape, &grads, &ref_grads, 1e-3);
    }
    if (ref_logits.buf) rf_tensor_free(&ref_logits);
    if (ref_grads.buf) rf_tensor_free(&ref_grads);
    vf_out_free(&logits);
    vf_out_free(&grads);
    rf_model_free(m0);
    rf_model_free(m1);
}

void vf_cases_model(vf_ctx *c) {
    model_case(c, 2, 2, 64);
    if (c->full) model_case(c, 6, 4, 64);
}
