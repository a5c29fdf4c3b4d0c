/* reformer-cl ops: one front door per op family. Each checks its arguments
 * and shapes once, then runs on the device its tensors live on (cpu or
 * OpenCL). Arguments: outputs first, then inputs, then options (as llm.c).
 * Maths and shapes: docs/maths.md, cited as §N. */
#ifndef REFORMER_OPS_H
#define REFORMER_OPS_H

#include <stdbool.h>
#include "reformer/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- GEMM ---------------------------------------------------------------
 * For each batch item b (row-major, §1):
 *   C[b] = alpha · op(A[b]) · op(B[b]) + beta · C[b]
 * op(A) is m×k: A is stored m×k (lda ≥ k) or, with trans_a, k×m (lda ≥ m);
 * op(B) is k×n likewise; C is m×n (ldc ≥ n). A leading dimension of 0 means
 * "tight". With batch > 1, item b of X starts stride_x elements after item
 * b−1; a stride of 0 reuses one matrix for every item (shared weights).
 * Each tensor's own offset is where its first matrix starts; the front door
 * checks that every element touched lies inside the tensor. */
typedef struct rf_gemm_desc {
    bool trans_a, trans_b;
    int64_t m, n, k;
    float alpha, beta;
    int64_t lda, ldb, ldc;
    int64_t batch;
    int64_t stride_a, stride_b, stride_c;
} rf_gemm_desc;

rf_status rf_gemm(rf_tensor *c, const rf_tensor *a, const rf_tensor *b, const rf_gemm_desc *desc);

/* ---- elementwise ------------------------------------------------------
 * out = a + alpha · b over tensors of equal element count (the residual adds
 * of §8, and with alpha = −1 their inversion). out may alias a or b. */
rf_status rf_add(rf_tensor *out, const rf_tensor *a, const rf_tensor *b, float alpha);
/* The reversible halves (§8, §9): out [..., 2w] = concat(a, b) along the last
 * dimension, a and b [..., w] with the same leading dimensions; split is its
 * backward (and inverse). */
rf_status rf_concat(rf_tensor *out, const rf_tensor *a, const rf_tensor *b);
rf_status rf_split(rf_tensor *a, rf_tensor *b, const rf_tensor *in);

/* ---- LayerNorm (norm.c) -------------------------------------------------
 * Over the last dimension D of x (any rank, rows = numel / D), as
 * torch.nn.LayerNorm (§7, §9): y = (x − mean)·rstd·gamma + beta with the biased
 * variance and rstd = 1/√(var + eps); eps > 0 (the HF config's layer_norm_eps,
 * 1e-12 by default). y has x's shape; gamma, beta are [D]. mean and rstd
 * (f32, `rows` elements each, any shape) are written when non-NULL, for the
 * backward pass. Backward: dx = ∂/∂x (written; may alias dy or x); dgamma,
 * dbeta += (either may be NULL); mean and rstd are the forward's. y may
 * alias x. */
rf_status rf_layer_norm_forward(rf_tensor *y, rf_tensor *mean, rf_tensor *rstd, const rf_tensor *x,
                                const rf_tensor *gamma, const rf_tensor *beta, float eps);
rf_status rf_layer_norm_backward(rf_tensor *dx, rf_tensor *dgamma, rf_tensor *dbeta, const rf_tensor *dy,
                                 const rf_tensor *x, const rf_tensor *gamma, const rf_tensor *mean,
                                 const rf_tensor *rstd);

/* ---- activations (activation.c) ------------------------------------------
 * Elementwise over tensors of equal element count (§7): ReLU, or GELU in its
 * erf form 0.5·x·(1 + erf(x/√2)). Backward: dx = dy · act'(x) (written), with
 * ReLU'(0) = 0 as in PyTorch. Outputs may alias their inputs. */
typedef enum rf_activation { RF_ACT_RELU = 0, RF_ACT_GELU = 1 } rf_activation;
rf_status rf_activation_forward(rf_tensor *y, const rf_tensor *x, rf_activation act);
rf_status rf_activation_backward(rf_tensor *dx, const rf_tensor *dy, const rf_tensor *x, rf_activation act);
/* y = act(x + b), b [n] added to each row of x [..., n]; pre = x + b as well
 * (the input rf_activation_backward takes) unless pre is NULL. One pass over
 * memory instead of the bias's and the activation's two (§7). y and pre may
 * alias x. */
rf_status rf_bias_activation_forward(rf_tensor *y, rf_tensor *pre, const rf_tensor *x, const rf_tensor *b,
                                     rf_activation act);

/* ---- linear layers (linear.c) --------------------------------------------
 * y = x·Wᵀ + b (§1): x is [..., in] (rows = numel / in), W [out, in], b [out]
 * or NULL, y [..., out] with x's leading dimensions. The products go through
 * rf_gemm. Backward: dx = dy·W (written; NULL to skip), dW += dyᵀ·x and
 * db += Σ_rows dy (either may be NULL). */
rf_status rf_linear_forward(rf_tensor *y, const rf_tensor *x, const rf_tensor *w, const rf_tensor *b);
/* y += alpha·(x·Wᵀ + b): a residual connection taken in the GEMM (beta 1),
 * with no product tensor and no pass to add it (§8). */
rf_status rf_linear_accumulate(rf_tensor *y, const rf_tensor *x, const rf_tensor *w, const rf_tensor *b, float alpha);
rf_status rf_linear_backward(rf_tensor *dx, rf_tensor *dw, rf_tensor *db, const rf_tensor *dy,
                             const rf_tensor *x, const rf_tensor *w);

/* ---- embeddings (embedding.c) --------------------------------------------
 * Word embedding (§9): out [B, L, D] = table[ids] with ids [B, L] i32 in
 * [0, V) (checked: a bad id is an error naming it and V) and table [V, D].
 * Backward: dtable += the rows of dout gathered back, summed per id in
 * position order (deterministic, no atomics).
 * Axial position embedding (§9, HF AxialPositionEmbeddings): E0 [s0, d0],
 * E1 [s1, d1], d0 + d1 = D, s0·s1 ≥ L; position p = i·s1 + j gets
 * concat(E0[i], E1[j]), ADDED to out [B, L, D] (after the word embedding).
 * The HF weights [s0, 1, d0] and [1, s1, d1] are these as 2-D views.
 * Backward: dE0, dE1 += the sums of dout over the batch and the other axis.
 * Plain position embedding: table [max_pos, D], max_pos ≥ L; out[b, p] +=
 * table[p]; backward dtable[p] += Σ_b dout[b, p]. */
rf_status rf_embedding_forward(rf_tensor *out, const rf_tensor *ids, const rf_tensor *table);
rf_status rf_embedding_backward(rf_tensor *dtable, const rf_tensor *dout, const rf_tensor *ids);
rf_status rf_axial_position_forward(rf_tensor *out, const rf_tensor *e0, const rf_tensor *e1);
rf_status rf_axial_position_backward(rf_tensor *de0, rf_tensor *de1, const rf_tensor *dout);
rf_status rf_position_embedding_forward(rf_tensor *out, const rf_tensor *table);
rf_status rf_position_embedding_backward(rf_tensor *dtable, const rf_tensor *dout);

/* ---- loss (loss.c) -------------------------------------------------------
 * Cross-entropy with an ignore index (§9): logits [..., V] (rows = numel / V),
 * targets i32 with `rows` elements, each in [0, V) or −1 (ignored; other
 * values are an error naming the target and V). The caller shifts: target[t]
 * = id[t+1] and the last position −1. loss (1 element) = the mean over
 * counted positions of lse − logit[target] (0 when none counts); lse (f32,
 * `rows` elements) = logsumexp of each row, kept for the backward pass.
 * Backward: dlogits = dloss · (softmax − onehot(target)) / counted for counted
 * rows, 0 for ignored ones (written; may alias logits, saving a [B, L, V]
 * buffer). Bits per token = loss · RF_BITS_PER_NAT. */
#define RF_BITS_PER_NAT 1.4426950408889634 /* 1 / ln 2 */
rf_status rf_cross_entropy_forward(rf_tensor *loss, rf_tensor *lse, const rf_tensor *logits,
                                   const rf_tensor *targets);
rf_status rf_cross_entropy_backward(rf_tensor *dlogits, const rf_tensor *logits, const rf_tensor *lse,
                                    const rf_tensor *targets, float dloss);

/* ---- optimiser (optim.c) -------------------------------------------------
 * Adam with decoupled weight decay (AdamW, as torch.optim.AdamW; §9), one
 * parameter tensor per call, step t ≥ 1 (the bias corrections use it):
 *   g = grad_scale·grad;  m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²
 *   p = p·(1 − lr·weight_decay) − lr · (m/(1−β1ᵗ)) / (√(v/(1−β2ᵗ)) + ε)
 * grad_scale carries gradient clipping (min(1, max_norm/‖g‖)); weight_decay 0
 * is plain Adam. Usual values: β1 0.9, β2 0.999, ε 1e-8. param, m, v, grad
 * have equal element counts.
 * rf_sum_squares: out (1 element) = Σ x² accumulated in double on the cpu and
 * in a fixed order on OpenCL; for the global norm and non-finite checks. */
typedef struct rf_adam_config {
    float lr, beta1, beta2, eps, weight_decay, grad_scale;
} rf_adam_config;
rf_status rf_adam_update(rf_tensor *param, rf_tensor *m, rf_tensor *v, const rf_tensor *grad,
                         const rf_adam_config *cfg, int64_t step);
rf_status rf_sum_squares(rf_tensor *out, const rf_tensor *x);

/* ---- local and full attention (local_attention.c, full_attention.c) -----
 * q, k, v and out are [B, L, H·d] f32 — the projections' layout; head h is
 * the slice [h·d, (h+1)·d) of the last dimension (§1, §6). d ≤ 128.
 * Logits s_ij = q_i · k_j / √d (k is divided by √d, q is not; §6). Masks
 * REPLACE logits (§5.4): causal (key position > query position) and padding
 * (mask[b, j] == 0 for key j) → −1e9; with shared_qk then the self mask
 * (key position == query position) → −1e5. Queries of padded positions are
 * computed like any other. o_i = Σ_j softmax_j(s_ij)·v_j; lse [B, H, L]
 * (logsumexp of each query's logits) is written when non-NULL and is needed
 * by the backward pass.
 * Local (HF LocalSelfAttention): positions are cut into chunks of chunk_len
 * (L must be a multiple of it); chunk c attends to the keys of chunks
 * c−chunks_before … c+chunks_after, cyclically (chunk 0 looks back at the
 * last chunk; causal masks those keys anyway). With L ≤ chunk_len there is
 * one chunk and no look-around, as in the HF model. HF defaults: chunks_before
 * 1, chunks_after 0. shared_qk must be false.
 * Full: every query attends to all L keys (chunk_len, chunks_* ignored), in
 * O(L) memory. With shared_qk the keys are the normalised queries of LSH
 * attention (§5.2: k = q·rsqrt(mean(q²) + 1e-6)/√d, not divided again), the
 * self mask applies, k must be NULL or q, and dk must be NULL: dq then
 * includes the path through the keys — full attention is LSH's oracle.
 * mask: NULL or [B, L] i32, 1 = token, 0 = padding.
 * Backward (from the forward's out and lse): dq, dk, dv [B, L, H·d] are
 * written (not accumulated: they are inputs' gradients, §1). */
typedef struct rf_attention_config {
    int n_heads, head_dim;
    int chunk_len;     /* local: m_loc; ignored by full attention */
    int chunks_before; /* local look-back (HF local_num_chunks_before) */
    int chunks_after;  /* local look-ahead (HF local_num_chunks_after) */
    bool causal;       /* decoder mask */
    bool shared_qk;    /* full attention only: the LSH formulation (§5.2, §5.4) */
    /* Attention-probability dropout (HF local_attention_probs_dropout_prob,
     * §2): probs = dropout(softmax), out = probs·v; lse stays the undropped
     * logsumexp. In [0, 1); 0 = none (results identical to no dropout). The
     * probability of key j (0 ≤ j < W, the query's window in the order
     * above: slots −before … after, chunk_len keys each; full: W = L, j = key
     * position) for query i of (b, h) is kept iff word ((b·H + h)·L + i)·W + j
     * of the Philox stream (seed, stream, step) passes the §2 threshold, and
     * kept ones are scaled by 1/(1−dropout); the backward regenerates it. */
    float dropout;
    uint64_t seed;
    uint32_t stream, step;
} rf_attention_config;

rf_status rf_local_attention_forward(rf_tensor *out, rf_tensor *lse, const rf_tensor *q, const rf_tensor *k,
                                     const rf_tensor *v, const rf_tensor *mask, const rf_attention_config *cfg);
rf_status rf_local_attention_backward(rf_tensor *dq, rf_tensor *dk, rf_tensor *dv, const rf_tensor *dout,
                                      const rf_tensor *out, const rf_tensor *lse, const rf_tensor *q,
                                      const rf_tensor *k, const rf_tensor *v, const rf_tensor *mask,
                                      const rf_attention_config *cfg);
rf_status rf_full_attention_forward(rf_tensor *out, rf_tensor *lse, const rf_tensor *q, const rf_tensor *k,
                                    const rf_tensor *v, const rf_tensor *mask, const rf_attention_config *cfg);
rf_status rf_full_attention_backward(rf_tensor *dq, rf_tensor *dk, rf_tensor *dv, const rf_tensor *dout,
                                     const rf_tensor *out, const rf_tensor *lse, const rf_tensor *q,
                                     const rf_tensor *k, const rf_tensor *v, const rf_tensor *mask,
                                     const rf_attention_config *cfg);

/* ---- Philox random words (philox.c) ----------------------------------------
 * §2: out[i] = lane i % 4 of Philox4x32-10 block first_block + i / 4 of
 * (seed, stream, step) — word 4·first_block + i of the stream: the raw
 * 32-bit word into an i32 tensor (bits reinterpreted), the uniform
 * (w >> 8)·2⁻²⁴ ∈ [0, 1) into an f32 tensor. Bit-identical on every device;
 * dropout masks are regenerated from the same words. Stream numbering
 * (which layer and use): src/core/philox.h. */
rf_status rf_philox_fill(rf_tensor *out, uint64_t seed, uint32_t stream, uint32_t step, uint64_t first_block);

/* ---- LSH self-attention, forward and backward (lsh_attention.c; §3–§5) ----
 * Layout: qk, v and out are [B, L, H·d] f32 — the projections' layout; head
 * h is the slice [h·d, (h+1)·d) of the last dimension. mask: NULL or [B, L]
 * i32 (1 = token, 0 = padding, §3). L must be a multiple of chunk_len unless
 * L ≤ chunk_len, which is full shared-QK attention over the sequence (§5.7:
 * one round, no hashing). Nothing L×L is allocated.
 *
 * Stages (each a function, so tests can feed both backends identical
 * buckets, §10; the backward pass reuses buckets/perm and never re-hashes):
 *   hash     buckets[b,h,r·L+t] = argmax([x·R, −x·R]) + r·stride (§3), with
 *            stride = nb, or nb+1 when a mask is given (padded items then go
 *            to bucket nb; with an all-ones mask the order is the same)
 *   sort     perm: sorted slot → item r·L+t, by (round, bucket, position);
 *            undo = perm⁻¹ (§4)
 *   attend   per sorted item: o and lse over its chunk and the previous one
 *            (cyclic), masks causal −1e9 then self −1e5 (§5.3–5.5)
 *   combine  out[b,t,h] = Σ_r softmax_r(lse)·o (§5.6), through undo */
typedef struct rf_lsh_config {
    int n_heads;           /* H */
    int head_dim;          /* d (OpenCL: ≤ 128) */
    int n_hashes;          /* R ≥ 1 */
    int n_buckets;         /* nb, even ≥ 2; 0 = automatic as the HF model (§3) */
    int bucket_factors[2]; /* {f1, f2}, both even: factorised nb = f1·f2 with
                              HF's rotation layout; {0, 0} = not factorised */
    int chunk_len;         /* m (OpenCL: ≤ 256) */
    bool causal;           /* decoder mask */
    int64_t max_position;  /* HF max_position_embeddings, for automatic nb; 0 = L */
    uint64_t seed;         /* rotations: Philox key (§2) */
    uint32_t layer;        /* rotations use stream layer·16 + 0 (src/core/philox.h) */
    uint32_t step;         /* forward call / training step: fresh rotations each */
    bool hf_rounding;      /* false: the exact softmax of §5.5–5.6; true: the HF
                              model's float32 semantics (lse rounded to float,
                              p = exp(s − lse) not renormalised; docs/hf-compat.md
                              §8), which §12 compatibility needs */
    float dropout;         /* HF lsh_attention_probs_dropout_prob, in [0, 1): each
                              round's probabilities p = exp(s − lse) are dropped
                              (kept ones scaled by 1/(1 − dropout)) before p·v;
                              lse is not. Query slot i ∈ [0, R·L) of (b, h) and
                              its window key j ∈ [0, W) (W = 2m, or m with one
                              chunk; chunk c−1 then c) use word
                              ((b·H + h)·R·L + i)·W + j of the Philox stream
                              (seed, dropout_stream, step) (§2). 0 = none (then
                              bit-identical to no dropout). Not with hf_rounding. */
    uint32_t dropout_stream; /* e.g. rf_philox_stream(layer, RF_PHILOX_DROPOUT_ATTN) */
} rf_lsh_config;

/* Caller-owned: resolved geometry and every intermediate result, kept for
 * tests and the backward pass. Fields are read-only for callers except the
 * tensors' contents (tests may overwrite buckets or rotations). */
typedef struct rf_lsh_state {
    rf_device *device;
    int64_t batch, seq_len;   /* B, L */
    int n_heads, head_dim;    /* H, d */
    int n_rounds;             /* R, or 1 on the full path */
    int chunk_len;            /* m, or L on the full path */
    bool full;                /* L ≤ m: full attention (§5.7) */
    bool causal;
    bool hf_rounding;         /* see rf_lsh_config */
    float dropout;            /* see rf_lsh_config; with dropout_stream, seed and step */
    float dropout_scale;      /*   refreshed by every rf_lsh_attention_forward (the backward */
    uint32_t dropout_stream;  /*   regenerates that call's mask); dropout_scale = 1/(1 − p) */
    uint64_t seed;            /*   in float, computed once on the host so both backends */
    uint32_t step;            /*   multiply by the same value */
    int n_buckets;            /* nb (= f1·f2 when factorised; 1 on the full path) */
    int factors[2];           /* {f1, f2}, or {nb, 0} when not factorised */
    int rot_cols;             /* last dim of rotations: nb/2 or (f1 + f2)/2 */
    int bucket_stride;        /* round offset of the last hash: nb or nb + 1 */
    rf_tensor rotations;      /* [H, d, R, rot_cols] f32 (HF's layout; not on the full path) */
    rf_tensor rotated;        /* [H, B·L, R·rot_cols] f32 scratch: x·R */
    rf_tensor buckets;        /* [B, H, R·L] i32 */
    rf_tensor perm;           /* [B, H, R·L] i32: sorted slot → item r·L + t */
    rf_tensor undo;           /* [B, H, R·L] i32: item → sorted slot */
    rf_tensor o_sorted;       /* [B, H, R·L, d] f32: per-round output of each sorted item */
    rf_tensor lse_sorted;     /* [B, H, R·L] f32: its logsumexp */
} rf_lsh_state;

/* Resolve nb (§3) and the path, check the configuration against the device
 * (local memory, d, m), and allocate the state for inputs [B, L, H·d]. `st`
 * is overwritten: pass a fresh or freed one. On failure nothing is held. */
rf_status rf_lsh_state_init(rf_lsh_state *st, rf_device *dev, const rf_lsh_config *cfg, int64_t batch,
                            int64_t seq_len);
void rf_lsh_state_free(rf_lsh_state *st);

/* The whole forward pass: rotations = `rotations` ([H, d, R, rot_cols] f32
 * on the same device, copied into the state) or, when NULL, Philox normals of
 * (cfg->seed, stream of cfg->layer, cfg->step) drawn on the host (§2); then
 * hash, sort, attend, combine. cfg must match the state's. */
rf_status rf_lsh_attention_forward(rf_tensor *out, rf_lsh_state *st, const rf_tensor *qk, const rf_tensor *v,
                                   const rf_tensor *mask, const rf_tensor *rotations, const rf_lsh_config *cfg);

/* The stages. rf_lsh_rotations_draw fills st->rotations from Philox; hash
 * reads st->rotations (on the full path it puts every item in bucket 0). */
rf_status rf_lsh_rotations_draw(rf_lsh_state *st, uint64_t seed, uint32_t layer, uint32_t step);
rf_status rf_lsh_hash(rf_lsh_state *st, const rf_tensor *qk, const rf_tensor *mask);
rf_status rf_lsh_sort(rf_lsh_state *st);
rf_status rf_lsh_attend(rf_lsh_state *st, const rf_tensor *qk, const rf_tensor *v, const rf_tensor *mask);
rf_status rf_lsh_combine(rf_tensor *out, const rf_lsh_state *st);

/* Gradients of out = LSH-attention(qk, v) (§5) with respect to qk and v, from
 * the state a forward pass left (buckets, perm, undo, o_sorted, lse_sorted:
 * it never re-hashes; the backward of a reversible layer refills them by
 * copying stored buckets into st->buckets then rf_lsh_sort + rf_lsh_attend,
 * §8). Gradients flow through the rounds' weights into each round's lse as
 * well as into its o (§5.6), through the key normalisation (§5.2), and back
 * through the sort as its inverse (§4); mask constants and hashes carry
 * none (§3, §5.4). dqk, dv [B, L, H·d] are written (not accumulated). The
 * exact softmax only: a state made with hf_rounding is RF_ERR_UNSUPPORTED. */
rf_status rf_lsh_attention_backward(rf_tensor *dqk, rf_tensor *dv, const rf_tensor *dout, const rf_lsh_state *st,
                                    const rf_tensor *qk, const rf_tensor *v, const rf_tensor *mask);

/* §3's automatic bucket count for length L, chunk m and max_position (0 = L):
 * nb = 2^p, p = ⌊log2(2·⌊L/m⌋)⌋; factorised into {2^⌊p/2⌋, 2^(p−⌊p/2⌋)} when
 * nb > 2·max(⌊√(max_pos/m)⌋, m) (then factors[1] > 0, else factors = {nb, 0}). */
rf_status rf_lsh_auto_buckets(int factors[2], int64_t seq_len, int chunk_len, int64_t max_position);

/* ---- dropout (dropout.c; §2) -------------------------------------------------
 * out = in · keep / (1 − p), elementwise over tensors of the same shape,
 * where element i (0-based over the tensor's numel, whatever its offset)
 * uses word first + i of the Philox stream (seed, stream, step) — lane
 * (first + i) % 4 of block (first + i) / 4, the words rf_philox_fill writes;
 * `first` lets a caller that drops out a tensor chunk by chunk (the chunked
 * feed-forward of §7) give each chunk its own words — and
 * keep = (word ≥ round(p · 2³²)). scale = 1/(1 − p) is computed in float and
 * multiplied in: a dropped element is ±0 (NaN for a non-finite input, as
 * torch's multiply), a kept one in · scale, bit-identical on every device
 * (up to a device that flushes subnormals). p ∈ [0, 1): p = 0 copies; p ≥ 1
 * and NaN are refused (RF_ERR_INVALID_ARG), as the config refuses a dropout
 * probability of 1. No mask is stored: the backward regenerates it from the
 * same (seed, stream, step), din = dout · keep / (1 − p) — the same op
 * applied to the gradient. out may alias in (din may alias dout). Stream
 * numbering: src/core/philox.h (RF_PHILOX_DROPOUT_*). */
rf_status rf_dropout_forward(rf_tensor *out, const rf_tensor *in, float p, uint64_t seed, uint32_t stream,
                             uint32_t step, uint64_t first);
rf_status rf_dropout_backward(rf_tensor *din, const rf_tensor *dout, float p, uint64_t seed, uint32_t stream,
                              uint32_t step, uint64_t first);

#ifdef __cplusplus
}
#endif
#endif
