/* reformer-cl model. Configuration (§9, §11): the Hugging Face
 * `ReformerConfig` keys, read from and written to config.json. */
#ifndef REFORMER_MODEL_H
#define REFORMER_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "reformer/status.h"
#include "reformer/ops.h" /* rf_activation */

#ifdef __cplusplus
extern "C" {
#endif

/* ---- configuration --------------------------------------------------------
 * Field names are the HF key names. Integers that HF allows to be null use a
 * flag (hash_seed) or −1 (pad/eos token ids). */
#define RF_CONFIG_MAX_LAYERS 64

typedef enum rf_attn_type { RF_ATTN_LSH = 0, RF_ATTN_LOCAL = 1 } rf_attn_type;

typedef struct rf_config {
    int num_layers;                          /* = len(attn_layers) ("num_hidden_layers") */
    rf_attn_type attn_layers[RF_CONFIG_MAX_LAYERS];
    int hidden_size;                         /* D */
    int num_attention_heads;                 /* H */
    int attention_head_size;                 /* d (H·d need not equal D, as in HF) */
    int feed_forward_size;                   /* F */
    rf_activation hidden_act;
    int vocab_size;                          /* V */
    int max_position_embeddings;
    bool is_decoder;                         /* causal masks (§5, §6) */

    /* LSH attention (§3, §5). num_buckets: num_bucket_factors = 0 → chosen
     * from the sequence length (null in JSON), 1 → num_buckets[0] (an int),
     * 2 → factorised [f1, f2] (nb = f1·f2). Every value even. */
    int num_hashes;                          /* R */
    int num_bucket_factors;
    int num_buckets[2];
    int lsh_attn_chunk_length;               /* m */
    int lsh_num_chunks_before, lsh_num_chunks_after;   /* supported: 1, 0 */
    bool has_hash_seed;                      /* false: null in JSON */
    int64_t hash_seed;

    /* Local attention (§6). */
    int local_attn_chunk_length;             /* m_loc */
    int local_num_chunks_before, local_num_chunks_after; /* supported: 1, 0 */

    /* Position embeddings (§9): axial (s0, s1) × (d0, d1), d0 + d1 = D, or plain. */
    bool axial_pos_embds;
    int axial_pos_shape[2];
    int axial_pos_embds_dim[2];
    double axial_norm_std;                   /* init std of the axial weights */

    double layer_norm_eps;
    int chunk_size_feed_forward;             /* 0 = no chunking (§7) */
    int chunk_size_lm_head;
    double hidden_dropout_prob;
    double lsh_attention_probs_dropout_prob;
    double local_attention_probs_dropout_prob;
    double initializer_range;
    bool tie_word_embeddings;                /* must be false: the LM head is [V, 2D] */
    int pad_token_id, eos_token_id;          /* −1 = null */
} rf_config;

/* The HF ReformerConfig() defaults (D 256, 6 layers local/lsh alternating,
 * 12 heads of 64, F 512, V 320, max_pos 4096 = axial 64×64 with widths
 * 64 + 192, chunks of 64, one hash round, buckets chosen from L, relu,
 * eps 1e-12, hidden/local dropout 0.05, lsh dropout 0). Keys missing from a
 * config.json take these values, except the required ones (see load). */
rf_status rf_config_default(rf_config *cfg);

/* Check every value and combination (RF_ERR_FORMAT for values that make no
 * sense, e.g. axial widths not summing to hidden_size; RF_ERR_UNSUPPORTED for
 * valid HF values this build does not implement, e.g. num_chunks_after ≠ 0).
 * The message names the key(s) and value(s). */
rf_status rf_config_validate(const rf_config *cfg);

/* Read a config.json (HF key names) and validate it. Required keys:
 * attn_layers, hidden_size, num_attention_heads, attention_head_size,
 * feed_forward_size, vocab_size, max_position_embeddings and, with axial
 * position embeddings, axial_pos_shape and axial_pos_embds_dim. Other known
 * keys default as HF does; keys that do not change the maths (architectures,
 * transformers_version, use_cache, ...) are ignored. Known keys with values
 * this build cannot honour are refused, naming the key and the value. */
rf_status rf_config_load_json(rf_config *cfg, const char *path);
/* The same from JSON text in memory (`len` bytes, no terminator needed). */
rf_status rf_config_parse_json(rf_config *cfg, const char *text, size_t len);
/* Validate, then write config.json atomically (HF can read it back). */
rf_status rf_config_save_json(const rf_config *cfg, const char *path);
/* The JSON text save writes, malloc'd and NUL-terminated (caller frees). */
rf_status rf_config_to_json(const rf_config *cfg, char **text);

/* The bucket count an LSH layer uses at sequence length `seq_len` (§3): the
 * configured one, or with num_buckets null the HF rule (nb = 2^⌊log2(2·⌊L/m⌋)⌋,
 * factorised when it exceeds 2·max(⌊√(max_pos/m)⌋, m)). Fills factors[0..1]
 * and *n_factors (1 or 2). */
rf_status rf_config_num_buckets(const rf_config *cfg, int64_t seq_len, int factors[2], int *n_factors);

/* ---- the language model (§8, §9) -------------------------------------
 * A Reformer LM on one device: embeddings (word + axial or plain positions),
 * a reversible stack of "lsh" / "local" layers with chunked feed-forward, a
 * LayerNorm over [Y1, Y2] and the LM head. Parameters carry the HF state-dict
 * names, so an HF checkpoint (config.json + model.safetensors) loads as is. */
typedef struct rf_model rf_model;

/* A new model with seeded random weights (§2 Philox normals; HF's init:
 * N(0, initializer_range) for linear and embedding weights, N(0,
 * axial_norm_std) for axial weights, LayerNorm 1/0, biases 0). */
rf_status rf_model_create(rf_model **model, rf_device *dev, const rf_config *cfg, uint64_t seed);
/* Load DIR/config.json and DIR/model.safetensors (every tensor's dtype and
 * shape checked against the config). */
rf_status rf_model_load(rf_model **model, rf_device *dev, const char *dir);
/* Write DIR/config.json and DIR/model.safetensors atomically (DIR is made). */
rf_status rf_model_save(const rf_model *model, const char *dir);
void rf_model_free(rf_model *model);
const rf_config *rf_model_config(const rf_model *model);
rf_device *rf_model_device(const rf_model *model);

/* Explicit rotations for LSH layer `layer` ([H, d, R, rot_cols] f32 host
 * floats, HF's layout; `count` floats), used instead of Philox draws — to
 * reproduce another implementation (§2, §12). NULL clears them. */
rf_status rf_model_set_rotations(rf_model *model, int layer, const float *rotations, size_t count);

/* Change the number of LSH hash rounds (e.g. evaluate with more rounds than
 * the model was trained with, as the paper's Table 2). */
rf_status rf_model_set_num_hashes(rf_model *model, int num_hashes);

/* Inference (§9): logits [B, L, V] (a tensor on the model's device) for
 * host token ids [B·L]. A length that is not a multiple of the chunk lengths
 * is padded and masked as the HF model does; `attention_mask` (host [B·L],
 * 1 = token, 0 = padding; NULL = all tokens) masks keys. With `loss`
 * non-NULL it receives the mean cross-entropy of logits at t against token
 * t+1 (nats; bits = loss / ln 2). Only the current pair of halves and one
 * layer's scratch are alive at a time: memory does not grow with the layers. */
rf_status rf_model_forward(rf_model *model, rf_tensor *logits, const int32_t *ids, const int32_t *attention_mask,
                           int64_t batch, int64_t len, float *loss);

/* ---- cached incremental decoding (docs/decode.md) ---------------------------
 * Generation at one position per step, with the Hugging Face model's cache
 * semantics (`past_buckets_states`, `generate(..., use_cache=True)`):
 * rf_model_decode_begin runs the prompt in one forward pass and keeps, per
 * layer, what later positions attend to; each rf_model_decode_step then runs
 * one new token per sequence through the layers and returns its logits.
 * LSH layers keep every past position's shared query/key and value
 * projections, bucket ids and sorted order; a new query is hashed with fresh
 * rotations (the model's explicit ones, else Philox draws of that forward
 * call, §2) and attends to the past positions of its sorted chunk and the
 * one before (§3–§5). Local layers keep the keys and values of the last two
 * chunks (§6). Memory is linear in the capacity: per LSH layer
 * 4·B·capacity·(2·H·d + 3·H·R) bytes plus fixed buffers (docs/decode.md
 * has the exact formula rf_model_decode_bytes follows). Causal models only.
 * The state uses the model (its forward-call counter draws the rotations):
 * one state per model at a time. After a failed step the state can only be
 * ended. HF's cached step mixes batch rows (every row's keys come from row 0,
 * docs/decode.md); here rows stay apart, and each row matches HF run alone. */
typedef struct rf_decoder rf_decoder;

/* Prompt: host ids [batch · prompt_len] (equal lengths); capacity: the most
 * positions (prompt + generated) the state will hold (≤ the model's
 * positions). logits: [batch, V] on the model's device, receives the logits
 * of each sequence's last prompt position. */
rf_status rf_model_decode_begin(rf_decoder **dec, rf_model *model, const int32_t *prompt, int64_t batch,
                                int64_t prompt_len, int64_t capacity, rf_tensor *logits);
/* One token per sequence (host [batch]) at the next position: its logits
 * [batch, V]. RF_ERR_INVALID_ARG once the state holds `capacity` positions. */
rf_status rf_model_decode_step(rf_decoder *dec, const int32_t *tokens, rf_tensor *logits);
/* Positions held so far (prompt + steps). */
rf_status rf_model_decode_length(const rf_decoder *dec, int64_t *length);
/* Device bytes the state holds (docs/decode.md has the formula). */
rf_status rf_model_decode_bytes(const rf_decoder *dec, size_t *bytes);
void rf_model_decode_end(rf_decoder *dec);

/* ---- training (§8, §9) ------------------------------------------------------ */
typedef enum rf_schedule {
    RF_SCHEDULE_CONSTANT = 0,   /* lr after warm-up */
    RF_SCHEDULE_INV_SQRT = 1,   /* lr · √(warmup / step) after warm-up */
    RF_SCHEDULE_COSINE = 2      /* cosine from lr to 0 over total_steps */
} rf_schedule;

typedef struct rf_train_config {
    float lr, beta1, beta2, eps, weight_decay;  /* AdamW (§9) */
    float clip_norm;                            /* global gradient norm; 0 = no clipping */
    int64_t warmup_steps;                       /* linear warm-up from 0 */
    rf_schedule schedule;
    int64_t total_steps;                        /* for the cosine schedule */
} rf_train_config;

/* lr 1e-3, β 0.9/0.999, ε 1e-8, no weight decay, clip 1.0, 100 warm-up steps, inverse √. */
rf_status rf_train_config_default(rf_train_config *tc);
/* The learning rate of optimiser step `step` (1-based). */
float rf_train_lr(const rf_train_config *tc, int64_t step);

/* Forward and backward of one micro-batch (§8): the reversible stack keeps only
 * the final halves and each LSH layer's buckets, and rebuilds every layer's
 * input on the way down. Gradients ACCUMULATE into the model's gradient
 * buffers (allocated at the first call). targets: host [B·L] token ids or −1
 * (not counted); NULL = next-token prediction (target t = ids[t+1]). L must be
 * a multiple of the chunk lengths. *loss = the mean cross-entropy over the
 * counted targets (nats). A non-finite loss returns RF_ERR_NUMERIC and
 * accumulates nothing. Any other failure part-way (e.g. RF_ERR_OUT_OF_MEMORY)
 * frees what the call allocated and zeroes the gradients (a partial sum is
 * never kept): redo the step's micro-batches. The weights never change here. */
rf_status rf_model_backward(rf_model *model, const int32_t *ids, const int32_t *targets, int64_t batch, int64_t len,
                            float *loss);
rf_status rf_model_zero_grad(rf_model *model);
/* One AdamW step from the gradients accumulated over `micro_batches` calls of
 * rf_model_backward (averaged), clipped to tc->clip_norm by global norm, then
 * the gradients are zeroed. *grad_norm (may be NULL) = the averaged gradient's
 * norm before clipping. A non-finite gradient returns RF_ERR_NUMERIC and
 * leaves every weight unchanged. */
rf_status rf_model_step(rf_model *model, const rf_train_config *tc, int micro_batches, float *grad_norm);
/* RF_ERR_NUMERIC if any weight or AdamW moment is NaN or infinite, naming
 * the tensor and the first bad index. rf_model_load, rf_checkpoint_load and
 * rf_checkpoint_save run it; a training loop runs it after each step. */
rf_status rf_model_check_finite(const rf_model *model);
/* Optimiser steps taken so far. */
int64_t rf_model_steps(const rf_model *model);
/* A gradient buffer (same shape as the parameter), by HF name, for tests and
 * tools; NULL if unknown or before the first backward pass. */
const rf_tensor *rf_model_grad(const rf_model *model, const char *name);
/* ---- gradients for an external collective (data-parallel training) ----
 * Every gradient as ONE contiguous vector of floats, in parameter order (index
 * 0 .. count-1, each tensor row-major): its length, a download into a host
 * buffer and an upload back. A data-parallel step is: each rank runs
 * rf_model_backward on its own micro-batches; downloads; sums the vectors over
 * the ranks in place (MPI_Allreduce, ncclAllReduce after a copy, mpi4py...);
 * uploads; then rf_model_step with micro_batches = the micro-batches of all
 * ranks together — the same AdamW step on every rank, equal (up to the order
 * of the float sums) to one process accumulating them all. The reformer tool's
 * `mpirun ... reformer train` does exactly this (tools/train_dist.c). */
rf_status rf_model_grad_count(const rf_model *model, size_t *count);
/* host[0 .. count) ← the gradients (the state is made, zeroed, if no backward
 * pass has run yet); count must be rf_model_grad_count's. */
rf_status rf_model_grads_download(rf_model *model, float *host, size_t count);
/* The gradients ← host[0 .. count) (replacing what was accumulated). */
rf_status rf_model_grads_upload(rf_model *model, const float *host, size_t count);
/* The forward-call counter: every forward or backward call draws fresh LSH
 * rotations and dropout masks from it (§2) and adds one. Rank r of a
 * data-parallel step sets it to what micro-batch r of one process would see,
 * so that both draw the same; checkpoints keep it. */
uint64_t rf_model_forward_calls(const rf_model *model);
rf_status rf_model_set_forward_calls(rf_model *model, uint64_t calls);
/* A parameter by HF name, or NULL. */
rf_tensor *rf_model_param(rf_model *model, const char *name);
/* The names of the parameters: index 0 .. count-1. */
int rf_model_param_count(const rf_model *model);
const char *rf_model_param_name(const rf_model *model, int index);

/* ---- checkpoints (§11) -------------------------------------------------------
 * ROOT/ckpt-<step>/ holds config.json, model.safetensors (loadable by
 * rf_model_load and by HF) and training_state.safetensors (AdamW moments; the
 * step, seed, forward-call counter and `data_position` as metadata).
 * Each checkpoint is written into a temporary folder, flushed and renamed,
 * then ROOT/latest is replaced atomically: a crash at any moment leaves the
 * previous checkpoint loadable. Older checkpoints beyond the last two are
 * removed. */
rf_status rf_checkpoint_save(const rf_model *model, const char *root, uint64_t data_position);
/* Load ROOT/latest: the model with its optimiser state, and data_position. */
rf_status rf_checkpoint_load(rf_model **model, rf_device *dev, const char *root, uint64_t *data_position);

#ifdef __cplusplus
}
#endif
#endif
