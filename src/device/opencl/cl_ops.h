/* Internal: the OpenCL backend's op entries. Arguments are already checked
 * by the op's front door (src/ops/). One file per family, same name as its
 * front door and its cl/ kernel file. */
#ifndef RF_CL_OPS_H
#define RF_CL_OPS_H

#include "reformer/ops.h"

/* gemm.c (CLBlast) */
rf_status rf_cl_gemm(rf_tensor *c, const rf_tensor *a, const rf_tensor *b, const rf_gemm_desc *d);

/* elementwise.c */
rf_status rf_cl_add(rf_tensor *out, const rf_tensor *a, const rf_tensor *b, float alpha);
rf_status rf_cl_concat(rf_tensor *out, const rf_tensor *a, const rf_tensor *b, size_t rows, size_t w);
rf_status rf_cl_split(rf_tensor *a, rf_tensor *b, const rf_tensor *in, size_t rows, size_t w);

/* norm.c */
rf_status rf_cl_layer_norm_forward(rf_tensor *y, rf_tensor *mean, rf_tensor *rstd, const rf_tensor *x,
                                const rf_tensor *gamma, const rf_tensor *beta, float eps);
rf_status rf_cl_layer_norm_backward(rf_tensor *dx, rf_tensor *dgamma, rf_tensor *dbeta, const rf_tensor *dy,
                                 const rf_tensor *x, const rf_tensor *gamma, const rf_tensor *mean,
                                 const rf_tensor *rstd);

/* activation.c */
rf_status rf_cl_activation_forward(rf_tensor *y, const rf_tensor *x, rf_activation act);
rf_status rf_cl_activation_backward(rf_tensor *dx, const rf_tensor *dy, const rf_tensor *x, rf_activation act);

/* linear.c: the bias half of rf_linear (the products are rf_gemm).
 * y [rows, n] += b [n];  db [n] += Σ_rows dy [rows, n]. */
rf_status rf_cl_bias_add(rf_tensor *y, const rf_tensor *b);
rf_status rf_cl_bias_grad(rf_tensor *db, const rf_tensor *dy);

/* embedding.c */
rf_status rf_cl_embedding_forward(rf_tensor *out, const rf_tensor *ids, const rf_tensor *table);
rf_status rf_cl_embedding_backward(rf_tensor *dtable, const rf_tensor *dout, const rf_tensor *ids);
rf_status rf_cl_axial_position_forward(rf_tensor *out, const rf_tensor *e0, const rf_tensor *e1);
rf_status rf_cl_axial_position_backward(rf_tensor *de0, rf_tensor *de1, const rf_tensor *dout);
rf_status rf_cl_position_embedding_forward(rf_tensor *out, const rf_tensor *table);
rf_status rf_cl_position_embedding_backward(rf_tensor *dtable, const rf_tensor *dout);

/* loss.c: `counted` (forward) is the number of targets ≥ 0, counted by the
 * front door; `scale` (backward) = dloss / counted. */
rf_status rf_cl_cross_entropy_forward(rf_tensor *loss, rf_tensor *lse, const rf_tensor *logits,
                                   const rf_tensor *targets, int64_t counted);
rf_status rf_cl_cross_entropy_backward(rf_tensor *dlogits, const rf_tensor *logits, const rf_tensor *lse,
                                    const rf_tensor *targets, float scale);

/* optim.c: bc1 = 1 − β1ᵗ, bc2 = 1 − β2ᵗ, computed once by the front door. */
rf_status rf_cl_adam_update(rf_tensor *param, rf_tensor *m, rf_tensor *v, const rf_tensor *grad,
                         const rf_adam_config *cfg, float bc1, float bc2);
rf_status rf_cl_sum_squares(rf_tensor *out, const rf_tensor *x);

/* local_attention.c: the windowed attention of device/attention_window.h
 * (§6), kernels in cl/local_attention.cl; full_attention.c reuses it. lse
 * may be NULL in the forward. The backward recomputes probabilities from
 * out and lse. */
#include "device/attention_window.h"
rf_status rf_cl_local_attention_forward(rf_tensor *out, rf_tensor *lse, const rf_tensor *q, const rf_tensor *k,
                                        const rf_tensor *v, const rf_tensor *mask, const rf_attn_window *w);
rf_status rf_cl_local_attention_backward(rf_tensor *dq, rf_tensor *dk, rf_tensor *dv, const rf_tensor *dout,
                                         const rf_tensor *out, const rf_tensor *lse, const rf_tensor *q,
                                         const rf_tensor *k, const rf_tensor *v, const rf_tensor *mask,
                                         const rf_attn_window *w);
/* full_attention.c: w is one chunk of L; with shared_qk, k is unused (the
 * keys are the normalised queries, §5.2) and dk is NULL. */
rf_status rf_cl_full_attention_forward(rf_tensor *out, rf_tensor *lse, const rf_tensor *q, const rf_tensor *k,
                                       const rf_tensor *v, const rf_tensor *mask, const rf_attn_window *w,
                                       bool shared_qk);
rf_status rf_cl_full_attention_backward(rf_tensor *dq, rf_tensor *dk, rf_tensor *dv, const rf_tensor *dout,
                                        const rf_tensor *out, const rf_tensor *lse, const rf_tensor *q,
                                        const rf_tensor *k, const rf_tensor *v, const rf_tensor *mask,
                                        const rf_attn_window *w, bool shared_qk);

/* philox.c (§2) */
rf_status rf_cl_philox_fill(rf_tensor *out, uint64_t seed, uint32_t stream, uint32_t step, uint64_t first_block);

/* lsh_attention.c (§3–§5): the stages of rf_lsh_attention_forward. buckets
 * reads st->rotated (x·R, computed by the front door with rf_gemm). */
/* Check that LSH attention with head_dim d, chunk m and up to `stride`
 * buckets per round fits this device (work-group size, local memory) and
 * choose the key tile of the attend kernel; RF_ERR_UNSUPPORTED with a
 * message naming the limit otherwise. */
rf_status rf_cl_lsh_plan(rf_device *dev, int head_dim, int chunk_len, int stride, int *key_tile);
rf_status rf_cl_lsh_buckets(rf_lsh_state *st, const rf_tensor *mask);
rf_status rf_cl_lsh_sort(rf_lsh_state *st);
rf_status rf_cl_lsh_attend(rf_lsh_state *st, const rf_tensor *qk, const rf_tensor *v, const rf_tensor *mask);
rf_status rf_cl_lsh_combine(rf_tensor *out, const rf_lsh_state *st);
/* rf_lsh_attention_backward (§5.6, §3, §4), from the forward's state. */
rf_status rf_cl_lsh_attention_backward(rf_tensor *dqk, rf_tensor *dv, const rf_tensor *dout, const rf_lsh_state *st,
                                       const rf_tensor *qk, const rf_tensor *v, const rf_tensor *mask);

/* dropout.c (§2): forward and backward alike; keep and scale from the front door. */
#include "core/philox.h"
rf_status rf_cl_dropout(rf_tensor *out, const rf_tensor *in, rf_dropout_threshold keep, float scale, uint64_t seed,
                        uint32_t stream, uint32_t step, uint64_t first);

#endif
