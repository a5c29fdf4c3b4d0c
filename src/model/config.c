/* The model configuration: HF ReformerConfig defaults, validation and the
 * bucket-count rule (§3, §9, §11). JSON reading and writing live in
 * src/io/config_json.c. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "core/core.h"
#include "reformer/model.h"

rf_status rf_config_default(rf_config *c) {
    if (!c) return rf_error(RF_ERR_INVALID_ARG, "rf_config_default: cfg is NULL");
    /* transformers' ReformerConfig() defaults, key for key. */
    memset(c, 0, sizeof *c);
    c->num_layers = 6;
    for (int i = 0; i < c->num_layers; i++) c->attn_layers[i] = i % 2 ? RF_ATTN_LSH : RF_ATTN_LOCAL;
    c->hidden_size = 256;
    c->num_attention_heads = 12;
    c->attention_head_size = 64;
    c->feed_forward_size = 512;
    c->hidden_act = RF_ACT_RELU;
    c->vocab_size = 320;
    c->max_position_embeddings = 4096;
    c->is_decoder = false;
    c->num_hashes = 1;
    c->num_bucket_factors = 0;
    c->lsh_attn_chunk_length = 64;
    c->lsh_num_chunks_before = 1;
    c->lsh_num_chunks_after = 0;
    c->has_hash_seed = false;
    c->local_attn_chunk_length = 64;
    c->local_num_chunks_before = 1;
    c->local_num_chunks_after = 0;
    c->axial_pos_embds = true;
    c->axial_pos_shape[0] = 64;
    c->axial_pos_shape[1] = 64;
    c->axial_pos_embds_dim[0] = 64;
    c->axial_pos_embds_dim[1] = 192;
    c->axial_norm_std = 1.0;
    c->layer_norm_eps = 1e-12;
    c->chunk_size_feed_forward = 0;
    c->chunk_size_lm_head = 0;
    c->hidden_dropout_prob = 0.05;
    c->lsh_attention_probs_dropout_prob = 0.0;
    c->local_attention_probs_dropout_prob = 0.05;
    c->initializer_range = 0.02;
    c->tie_word_embeddings = false;
    c->pad_token_id = 0;
    c->eos_token_id = 2;
    return RF_OK;
}

static rf_status positive(const char *key, int v) {
    return v > 0 ? RF_OK : rf_error(RF_ERR_FORMAT, "config: %s = %d must be positive", key, v);
}

static rf_status probability(const char *key, double p) {
    return isfinite(p) && p >= 0.0 && p < 1.0
               ? RF_OK : rf_error(RF_ERR_FORMAT, "config: %s = %g must lie in [0, 1)", key, p);
}

static rf_status non_negative(const char *key, double v) {
    return isfinite(v) && v >= 0.0 ? RF_OK : rf_error(RF_ERR_FORMAT, "config: %s = %g must be finite and >= 0", key, v);
}

/* §5, §6: a chunk attends to itself and to the chunk before it, nothing else. */
static rf_status neighbours(const char *kind, int before, int after) {
    if (before != 1)
        return rf_error(RF_ERR_UNSUPPORTED, "config: %s_num_chunks_before = %d is not supported (only 1)", kind, before);
    if (after != 0)
        return rf_error(RF_ERR_UNSUPPORTED, "config: %s_num_chunks_after = %d is not supported (only 0)", kind, after);
    return RF_OK;
}

rf_status rf_config_validate(const rf_config *c) {
    if (!c) return rf_error(RF_ERR_INVALID_ARG, "rf_config_validate: cfg is NULL");
    if (c->num_layers < 1) return rf_error(RF_ERR_FORMAT, "config: attn_layers is empty (num_layers = %d)", c->num_layers);
    if (c->num_layers > RF_CONFIG_MAX_LAYERS)
        return rf_error(RF_ERR_UNSUPPORTED, "config: %d layers in attn_layers; at most %d are supported", c->num_layers,
                        RF_CONFIG_MAX_LAYERS);
    bool any_lsh = false, any_local = false;
    for (int i = 0; i < c->num_layers; i++) {
        if (c->attn_layers[i] == RF_ATTN_LSH) any_lsh = true;
        else if (c->attn_layers[i] == RF_ATTN_LOCAL) any_local = true;
        else return rf_error(RF_ERR_FORMAT, "config: attn_layers[%d] = %d is not lsh or local", i, (int)c->attn_layers[i]);
    }
    RF_TRY(positive("hidden_size", c->hidden_size));
    RF_TRY(positive("num_attention_heads", c->num_attention_heads));
    RF_TRY(positive("attention_head_size", c->attention_head_size));
    RF_TRY(positive("feed_forward_size", c->feed_forward_size));
    RF_TRY(positive("vocab_size", c->vocab_size));
    RF_TRY(positive("max_position_embeddings", c->max_position_embeddings));
    RF_TRY(positive("num_hashes", c->num_hashes));
    RF_TRY(positive("lsh_attn_chunk_length", c->lsh_attn_chunk_length));
    RF_TRY(positive("local_attn_chunk_length", c->local_attn_chunk_length));
    if (c->hidden_act != RF_ACT_RELU && c->hidden_act != RF_ACT_GELU)
        return rf_error(RF_ERR_FORMAT, "config: hidden_act = %d is not relu or gelu", (int)c->hidden_act);

    /* §3: [r, −r] halves need an even count, for each factor too. */
    if (c->num_bucket_factors < 0 || c->num_bucket_factors > 2)
        return rf_error(RF_ERR_UNSUPPORTED, "config: num_buckets with %d factors is not supported (null, an int or two ints)",
                        c->num_bucket_factors);
    for (int i = 0; i < c->num_bucket_factors; i++)
        if (c->num_buckets[i] < 2 || c->num_buckets[i] % 2 || c->num_buckets[i] > (1 << 15))
            return rf_error(RF_ERR_FORMAT, "config: num_buckets%s = %d must be even and in [2, 32768]",
                            c->num_bucket_factors == 2 ? (i ? "[1]" : "[0]") : "", c->num_buckets[i]);
    if (any_lsh) RF_TRY(neighbours("lsh", c->lsh_num_chunks_before, c->lsh_num_chunks_after));
    if (any_local) RF_TRY(neighbours("local", c->local_num_chunks_before, c->local_num_chunks_after));

    /* §9. HF needs s0·s1 ≥ L at inference and s0·s1 = L in training, and
     * L ≤ max_position_embeddings; those are checked against L by the model. */
    if (c->axial_pos_embds) {
        for (int i = 0; i < 2; i++) {
            if (c->axial_pos_shape[i] < 1)
                return rf_error(RF_ERR_FORMAT, "config: axial_pos_shape [%d, %d] must be positive", c->axial_pos_shape[0],
                                c->axial_pos_shape[1]);
            if (c->axial_pos_embds_dim[i] < 1)
                return rf_error(RF_ERR_FORMAT, "config: axial_pos_embds_dim [%d, %d] must be positive",
                                c->axial_pos_embds_dim[0], c->axial_pos_embds_dim[1]);
        }
        if ((int64_t)c->axial_pos_embds_dim[0] + c->axial_pos_embds_dim[1] != c->hidden_size)
            return rf_error(RF_ERR_FORMAT, "config: axial_pos_embds_dim [%d, %d] sums to %lld, not hidden_size %d",
                            c->axial_pos_embds_dim[0], c->axial_pos_embds_dim[1],
                            (long long)c->axial_pos_embds_dim[0] + c->axial_pos_embds_dim[1], c->hidden_size);
        RF_TRY(non_negative("axial_norm_std", c->axial_norm_std));
    }

    if (!(isfinite(c->layer_norm_eps) && c->layer_norm_eps > 0.0))
        return rf_error(RF_ERR_FORMAT, "config: layer_norm_eps = %g must be finite and > 0", c->layer_norm_eps);
    if (c->chunk_size_feed_forward < 0)
        return rf_error(RF_ERR_FORMAT, "config: chunk_size_feed_forward = %d must be >= 0", c->chunk_size_feed_forward);
    if (c->chunk_size_lm_head < 0)
        return rf_error(RF_ERR_FORMAT, "config: chunk_size_lm_head = %d must be >= 0", c->chunk_size_lm_head);
    RF_TRY(probability("hidden_dropout_prob", c->hidden_dropout_prob));
    RF_TRY(probability("lsh_attention_probs_dropout_prob", c->lsh_attention_probs_dropout_prob));
    RF_TRY(probability("local_attention_probs_dropout_prob", c->local_attention_probs_dropout_prob));
    RF_TRY(non_negative("initializer_range", c->initializer_range));
    /* The LM head reads the 2D-wide concat [Y1, Y2] (§9): it cannot share the
     * [V, D] word embedding. */
    if (c->tie_word_embeddings)
        return rf_error(RF_ERR_UNSUPPORTED, "config: tie_word_embeddings = true is not supported (the LM head is [V, 2D])");
    if (c->pad_token_id < -1) return rf_error(RF_ERR_FORMAT, "config: pad_token_id = %d is negative", c->pad_token_id);
    if (c->eos_token_id < -1) return rf_error(RF_ERR_FORMAT, "config: eos_token_id = %d is negative", c->eos_token_id);
    /* A special token must be a token: an id the embedding and the head have. */
    if (c->pad_token_id >= c->vocab_size)
        return rf_error(RF_ERR_FORMAT, "config: pad_token_id = %d is outside the vocabulary [0, %d) (vocab_size)",
                        c->pad_token_id, c->vocab_size);
    if (c->eos_token_id >= c->vocab_size)
        return rf_error(RF_ERR_FORMAT, "config: eos_token_id = %d is outside the vocabulary [0, %d) (vocab_size)",
                        c->eos_token_id, c->vocab_size);
    return RF_OK;
}

rf_status rf_config_num_buckets(const rf_config *c, int64_t seq_len, int factors[2], int *n_factors) {
    if (!c || !factors || !n_factors) return rf_error(RF_ERR_INVALID_ARG, "rf_config_num_buckets: null argument");
    if (seq_len < 1) return rf_error(RF_ERR_INVALID_ARG, "rf_config_num_buckets: seq_len = %lld must be positive", (long long)seq_len);
    if (c->num_bucket_factors > 0) {
        factors[0] = c->num_buckets[0];
        factors[1] = c->num_bucket_factors == 2 ? c->num_buckets[1] : 1;
        *n_factors = c->num_bucket_factors;
        return RF_OK;
    }
    if (c->lsh_attn_chunk_length < 1)
        return rf_error(RF_ERR_FORMAT, "config: lsh_attn_chunk_length = %d must be positive", c->lsh_attn_chunk_length);
    /* §3's rule lives with the op (it needs no configuration beyond these). */
    RF_TRY(rf_lsh_auto_buckets(factors, seq_len, c->lsh_attn_chunk_length, c->max_position_embeddings));
    *n_factors = factors[1] ? 2 : 1;
    if (!factors[1]) factors[1] = 1;
    return RF_OK;
}
