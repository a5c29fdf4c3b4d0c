/* Internal: the op table, the one list of what a backend computes. Each
 * backend (src/device/<backend>/) fills the table of every device it opens;
 * an op's front door (src/ops/) checks its arguments once and calls the
 * entry through RF_DISPATCH (ops/ops_impl.h). An entry left NULL is an op
 * the backend does not implement: its front door fails with
 * RF_ERR_UNSUPPORTED, naming the op and the device.
 *
 * Entries get arguments already checked (shapes, dtypes, one device) and
 * only compute; the device is the tensors' buf->dev. A backend keeps its
 * entries static, one file per family (same name as the family's front door
 * and, on OpenCL, its cl/ kernel file), and each family file exports one
 * rf_<backend>_<family>_register(rf_op_table *) that sets its entries. */
#ifndef RF_OP_TABLE_H
#define RF_OP_TABLE_H

#include <stdbool.h>
#include "reformer/ops.h"
#include "core/philox.h"
#include "device/attention_window.h"

struct rf_lsh_cache; /* ops/decode_attention.h */

typedef struct rf_op_table {
    /* gemm.c: arguments and leading dimensions resolved by the front door. */
    rf_status (*gemm)(rf_tensor *c, const rf_tensor *a, const rf_tensor *b, const rf_gemm_desc *d);

    /* elementwise.c */
    rf_status (*add)(rf_tensor *out, const rf_tensor *a, const rf_tensor *b, float alpha);
    rf_status (*concat)(rf_tensor *out, const rf_tensor *a, const rf_tensor *b, size_t rows, size_t w);
    rf_status (*split)(rf_tensor *a, rf_tensor *b, const rf_tensor *in, size_t rows, size_t w);

    /* norm.c */
    rf_status (*layer_norm_forward)(rf_tensor *y, rf_tensor *mean, rf_tensor *rstd, const rf_tensor *x,
                                    const rf_tensor *gamma, const rf_tensor *beta, float eps);
    rf_status (*layer_norm_backward)(rf_tensor *dx, rf_tensor *dgamma, rf_tensor *dbeta, const rf_tensor *dy,
                                     const rf_tensor *x, const rf_tensor *gamma, const rf_tensor *mean,
                                     const rf_tensor *rstd);

    /* activation.c */
    rf_status (*activation_forward)(rf_tensor *y, const rf_tensor *x, rf_activation act);
    rf_status (*activation_backward)(rf_tensor *dx, const rf_tensor *dy, const rf_tensor *x, rf_activation act);
    /* y = act(x + b) per row (b [n]); pre = x + b unless NULL (may be x). */
    rf_status (*bias_activation)(rf_tensor *y, rf_tensor *pre, const rf_tensor *x, const rf_tensor *b,
                                 rf_activation act);

    /* linear.c: the bias half of rf_linear (the products are rf_gemm).
     * y [rows, n] += alpha·b [n];  db [n] += Σ_rows dy [rows, n]. */
    rf_status (*bias_add)(rf_tensor *y, const rf_tensor *b, float alpha);
    rf_status (*bias_grad)(rf_tensor *db, const rf_tensor *dy);

    /* embedding.c */
    rf_status (*embedding_forward)(rf_tensor *out, const rf_tensor *ids, const rf_tensor *table);
    rf_status (*embedding_backward)(rf_tensor *dtable, const rf_tensor *dout, const rf_tensor *ids);
    rf_status (*axial_position_forward)(rf_tensor *out, const rf_tensor *e0, const rf_tensor *e1);
    rf_status (*axial_position_backward)(rf_tensor *de0, rf_tensor *de1, const rf_tensor *dout);
    rf_status (*position_embedding_forward)(rf_tensor *out, const rf_tensor *table);
    rf_status (*position_embedding_backward)(rf_tensor *dtable, const rf_tensor *dout);

    /* loss.c: `counted` (forward) is the number of targets ≥ 0, counted by
     * the front door; `scale` (backward) = dloss / counted. */
    rf_status (*cross_entropy_forward)(rf_tensor *loss, rf_tensor *lse, const rf_tensor *logits,
                                       const rf_tensor *targets, int64_t counted);
    rf_status (*cross_entropy_backward)(rf_tensor *dlogits, const rf_tensor *logits, const rf_tensor *lse,
                                        const rf_tensor *targets, float scale);

    /* optim.c: bc1 = 1 − β1ᵗ, bc2 = 1 − β2ᵗ, computed once by the front door. */
    rf_status (*adam_update)(rf_tensor *param, rf_tensor *m, rf_tensor *v, const rf_tensor *grad,
                             const rf_adam_config *cfg, float bc1, float bc2);
    rf_status (*sum_squares)(rf_tensor *out, const rf_tensor *x);

    /* local_attention.c: the windowed attention of device/attention_window.h
     * (§6). lse may be NULL in the forward. */
    rf_status (*local_attention_forward)(rf_tensor *out, rf_tensor *lse, const rf_tensor *q, const rf_tensor *k,
                                         const rf_tensor *v, const rf_tensor *mask, const rf_attn_window *w);
    rf_status (*local_attention_backward)(rf_tensor *dq, rf_tensor *dk, rf_tensor *dv, const rf_tensor *dout,
                                          const rf_tensor *out, const rf_tensor *lse, const rf_tensor *q,
                                          const rf_tensor *k, const rf_tensor *v, const rf_tensor *mask,
                                          const rf_attn_window *w);
    /* full_attention.c: w is one chunk of L; with shared_qk, k is unused (the
     * keys are the normalised queries, §5.2) and dk is NULL. */
    rf_status (*full_attention_forward)(rf_tensor *out, rf_tensor *lse, const rf_tensor *q, const rf_tensor *k,
                                        const rf_tensor *v, const rf_tensor *mask, const rf_attn_window *w,
                                        bool shared_qk);
    rf_status (*full_attention_backward)(rf_tensor *dq, rf_tensor *dk, rf_tensor *dv, const rf_tensor *dout,
                                         const rf_tensor *out, const rf_tensor *lse, const rf_tensor *q,
                                         const rf_tensor *k, const rf_tensor *v, const rf_tensor *mask,
                                         const rf_attn_window *w, bool shared_qk);

    /* philox.c (§2) */
    rf_status (*philox_fill)(rf_tensor *out, uint64_t seed, uint32_t stream, uint32_t step, uint64_t first_block);

    /* lsh_attention.c (§3–§5): the stages of rf_lsh_attention_forward.
     * lsh_plan is optional (NULL: the backend has no limits to check): it
     * checks that head_dim d, chunk m and up to `stride` buckets per round
     * fit the device (building its tiled kernels), or fails with
     * RF_ERR_UNSUPPORTED naming the limit. buckets reads st->rotated (x·R,
     * computed by the front door with rf_gemm). */
    rf_status (*lsh_plan)(rf_device *dev, int head_dim, int chunk_len, int stride);
    rf_status (*lsh_buckets)(rf_lsh_state *st, const rf_tensor *mask);
    rf_status (*lsh_sort)(rf_lsh_state *st);
    rf_status (*lsh_attend)(rf_lsh_state *st, const rf_tensor *qk, const rf_tensor *v, const rf_tensor *mask);
    rf_status (*lsh_combine)(rf_tensor *out, const rf_lsh_state *st);
    /* rf_lsh_attention_backward (§5.6, §3, §4), from the forward's state. */
    rf_status (*lsh_attention_backward)(rf_tensor *dqk, rf_tensor *dv, const rf_tensor *dout, const rf_lsh_state *st,
                                        const rf_tensor *qk, const rf_tensor *v, const rf_tensor *mask);

    /* decode_attention.c: cached incremental decoding, one new position per
     * sequence (ops/decode_attention.h; §3–§6); arguments checked. */
    rf_status (*lsh_cache_sort)(struct rf_lsh_cache *c, const rf_tensor *rotations);
    rf_status (*lsh_cache_attend)(rf_tensor *out, struct rf_lsh_cache *c, const rf_tensor *qk, const rf_tensor *v,
                                  const rf_tensor *rotations);
    rf_status (*local_cache_attend)(rf_tensor *out, rf_tensor *k_ring, rf_tensor *v_ring, const rf_tensor *q,
                                    const rf_tensor *k, const rf_tensor *v, int64_t pos, int chunk_len, int n_heads);

    /* dropout.c (§2): forward and backward alike; keep and scale from the
     * front door. */
    rf_status (*dropout)(rf_tensor *out, const rf_tensor *in, rf_dropout_threshold keep, float scale, uint64_t seed,
                         uint32_t stream, uint32_t step, uint64_t first);
} rf_op_table;

/* The op families: the files of a backend folder that register entries.
 * RF_OP_FAMILIES(X) expands X(family) for each, so a backend declares and
 * calls its rf_<backend>_<family>_register functions from this one list
 * (a backend without a family simply has no entries from it: write its own
 * list then). */
#define RF_OP_FAMILIES(X)                                                                                   \
    X(gemm) X(elementwise) X(norm) X(activation) X(linear) X(embedding) X(loss) X(optim) X(local_attention) \
    X(full_attention) X(philox) X(lsh_attention) X(dropout) X(decode_attention)

#endif
