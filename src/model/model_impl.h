/* Internal: the model's layout, shared by construction (model.c), the
 * forward pass (forward.c), the reversible layers (reversible.c), the backward
 * pass (backward.c), the parameter table (params.c), the optimiser (optim.c)
 * and checkpoints (checkpoint.c). */
#ifndef RF_MODEL_IMPL_H
#define RF_MODEL_IMPL_H

#include "reformer/model.h"

#define MAX_PARAMS (16 * RF_CONFIG_MAX_LAYERS + 16)

typedef enum { INIT_NORMAL, INIT_AXIAL, INIT_ONES, INIT_ZEROS } init_kind;

typedef struct param {
    char name[128];
    rf_tensor t;
    init_kind init;
} param;

/* One layer's parameters (pointers into the model's table; unused ones NULL). */
typedef struct layer {
    rf_attn_type type;
    rf_tensor *ln_a_w, *ln_a_b;     /* attention.layer_norm */
    rf_tensor *qk, *q, *k, *v;      /* self_attention.{query_key | query, key}, value: [H·d, D] */
    rf_tensor *o;                   /* attention.output.dense: [D, H·d] */
    rf_tensor *ln_f_w, *ln_f_b;     /* feed_forward.layer_norm */
    rf_tensor *w1, *b1, *w2, *b2;   /* feed_forward.dense.dense, feed_forward.output.dense */
    float *rotations;               /* explicit rotations (host), or NULL */
    size_t rotations_count;
    int frozen_buckets[2];          /* nb or its factors: configured, or automatic at the */
    int n_frozen;                   /* first hashing call and then fixed (as HF); 0 = not yet */
} layer;

struct rf_model {
    rf_config cfg;
    rf_device *dev;
    int nparams;
    param params[MAX_PARAMS];
    rf_tensor *word, *pos0, *pos1, *pos;   /* pos0/pos1 axial, pos plain */
    rf_tensor pos0_2d, pos1_2d;            /* [s0, d0] and [s1, d1] views of HF's 3-D weights */
    rf_tensor *ln_w, *ln_b, *head_w, *head_b;
    layer layers[RF_CONFIG_MAX_LAYERS];
    uint64_t seed;
    uint32_t step;                         /* forward calls: fresh rotations each (§2) */
    struct rf_train_state *train;          /* gradients and optimiser moments, or NULL */
    /* Verification mode: keep every layer's input halves in the forward pass
     * and use them in the backward instead of rebuilding them (§8): the plain,
     * non-reversible computation the reversible one is checked against. */
    bool store_activations;
};

/* Training state, allocated at the first backward pass. */
typedef struct rf_train_state {
    rf_tensor grads[MAX_PARAMS];     /* same order as params */
    rf_tensor adam_m[MAX_PARAMS], adam_v[MAX_PARAMS];
    int64_t steps;                   /* optimiser steps taken */
} rf_train_state;

/* The model folder `path` names (checkpoint.c): itself when it holds
 * config.json; a training run's folder: its `latest` checkpoint; a `latest`
 * file: the checkpoint it names. Otherwise an error naming what was tried. */
rf_status rf_model_dir_resolve(const char *path, char *out, size_t n);

/* rf_model_check_finite with `where` leading the message (finite.c). */
rf_status rf_model_check_finite_at(const rf_model *m, const char *where);

/* Allocate (zeroed) / free the gradients and AdamW moments. */
rf_status rf_train_state_ensure(rf_model *m);
void rf_train_state_free(rf_model *m);

/* ---- one pass over a batch (forward.c) ------------------------------------
 * Device buffers sized for [B, Lp] and reused by every layer, so memory is
 * the same for 2 layers or 200 (§8). */
typedef struct rf_pass {
    int64_t B, L, Lp;               /* batch, length, padded length */
    bool padded;                    /* a key mask is in use */
    bool training;                  /* keeps what the backward pass needs */
    rf_tensor ids, mask;            /* [B, Lp] i32 (mask only when padded) */
    rf_tensor x1, x2;               /* the reversible halves [B, Lp, D] */
    rf_tensor h;                    /* a LayerNorm's output [B, Lp, D] */
    rf_tensor a, b, c;              /* projections [B, Lp, H·d]: qk or q, v, k */
    rf_tensor attn;                 /* attention output [B, Lp, H·d] */
    rf_tensor f;                    /* [B, Lp, D]: W_o·attn, then FF outputs */
    rf_tensor ff;                   /* FF activation [chunk rows, F] */
    rf_tensor joined;               /* [B, Lp, 2D] */
    /* training only */
    rf_tensor ff_pre;               /* FF pre-activation [chunk rows, F] */
    rf_tensor lse;                  /* local attention lse [B, H, Lp] */
    rf_tensor mean, rstd;           /* a LayerNorm's statistics [B·Lp] */
} rf_pass;

/* Check a batch's shape (positive, within the positions, whole chunks in
 * training, B·L countable) and give its padded length. */
rf_status rf_model_check_batch(const rf_model *m, int64_t B, int64_t L, bool training, int64_t *padded);
rf_status rf_pass_init(rf_pass *s, rf_model *m, const int32_t *ids, const int32_t *attention_mask, int64_t B,
                       int64_t L, bool training);
void rf_pass_free(rf_pass *s);
int64_t rf_model_padded_length(const rf_config *c, int64_t L);
int64_t rf_model_max_length(const rf_config *c);
/* Rows [r0, r0 + n) of a [rows, w] tensor. */
rf_status rf_rows_view(rf_tensor *out, const rf_tensor *t, int64_t r0, int64_t n, int64_t w);
rf_status rf_model_lsh_config(rf_model *m, int li, int64_t Lp, bool training, rf_lsh_config *lc);
rf_attention_config rf_model_local_config(const rf_model *m, int li, bool training);
rf_status rf_model_lsh(rf_model *m, int li, rf_pass *s, rf_tensor *buckets, bool reuse, rf_lsh_state *keep);
/* Whether this pass applies HF's hidden-state dropout (training with
 * hidden_dropout_prob > 0); when not, rf_model_dropout is a no-op. */
bool rf_model_dropout_on(const rf_model *m, const rf_pass *s);
/* Hidden-state dropout of `t` in place (training only; `use` a
 * rf_philox_use, `first` the word of element 0), or its backward. */
rf_status rf_model_dropout(rf_model *m, const rf_pass *s, rf_tensor *t, int layer_index, int use, uint64_t first,
                           bool backward);
rf_status rf_model_embed(rf_model *m, rf_pass *s);
rf_status rf_model_head(rf_model *m, rf_pass *s, rf_tensor *logits, rf_tensor *mean, rf_tensor *rstd);
/* targets[b, t] = ids[b, t+1], the last −1 (§9), on `dev`. */
rf_status rf_model_targets(rf_tensor *out, rf_device *dev, const int32_t *ids, int64_t B, int64_t L);

/* ---- the reversible layers (reversible.c) -------------------------------- */
/* The attention half: residual += alpha · W_o·Attn(LN(x2)) (§5, §6, §8). */
rf_status rf_model_attention_block(rf_model *m, int li, rf_pass *s, rf_tensor *buckets, bool reuse, rf_lsh_state *keep,
                                   rf_tensor *residual, float alpha);
/* One row chunk of the feed-forward half: residual += alpha · FF(x) (§7, §8). */
rf_status rf_model_ff_chunk(rf_model *m, const rf_pass *s, int li, int64_t r0, rf_tensor *residual, float alpha,
                            rf_tensor *g, rf_tensor *h, rf_tensor *pre, rf_tensor *ff, const rf_tensor *x,
                            rf_tensor *mean, rf_tensor *rstd);
/* The feed-forward half x2 += FF(x1) over the pass's rows, in chunks (§7, §8). */
rf_status rf_model_ff_block(rf_model *m, int li, rf_pass *s);
/* Layers [first, last) of the reversible stack on the pass's halves;
 * keep_buckets[i] (NULL or per layer) receives LSH layer i's buckets for the
 * backward pass; saved (NULL, or 2 per layer) receives each layer's input
 * halves (the stored-activations check). */
rf_status rf_model_stack(rf_model *m, rf_pass *s, int first, int last, rf_tensor *const *keep_buckets,
                         rf_tensor *saved);

/* ---- one backward pass (backward.c, reversible.c) -------------------------
 * Gradient buffers of one backward pass, besides the forward pass's. */
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

/* The gradient tensor of parameter `p` (one of m->params[].t; params.c). */
rf_tensor *rf_model_grad_of(rf_model *m, const rf_tensor *p);
/* The reversible stack backward from the top (reversible.c). */
rf_status rf_model_stack_backward(rf_model *m, rf_pass *s, grads *g);

#endif
