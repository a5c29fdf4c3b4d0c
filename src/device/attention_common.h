/* Internal: the attention maths every attention op shares (§5.2, §5.4,
 * §2), written once for the cpu backend — cl/attention_common.cl is the
 * same, once, for the kernels. Local, full and LSH attention (both backends)
 * take their mask constants, masked logit, key normalisation and dropout
 * arguments from here, so the two backends and the three ops cannot drift.
 *
 * Optional tensors (a padding mask, lse, dropout): on the cpu an absent
 * tensor is a NULL pointer; on OpenCL a NULL buffer, offset 0 and a has_<x>
 * flag of 0 that the kernel tests (device/opencl/cl_attention.h).
 *
 * No OpenCL here: a cpu-only build compiles this header. */
#ifndef RF_ATTENTION_COMMON_H
#define RF_ATTENTION_COMMON_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include "core/philox.h"
#include "reformer/ops.h" /* rf_lsh_state */

/* Mask replacement values (§5.4): the logit is replaced, not added to.
 * Large finite negatives, never −∞ (OpenCL fast maths miscompiles
 * infinities); a fully masked row then attends uniformly, as HF's does. */
#define RF_ATTN_MASK_VALUE (-1e9f)      /* a padded key, or a later one when causal */
#define RF_ATTN_SELF_MASK_VALUE (-1e5f) /* the query's own position (shared QK) */

/* The largest head width of every attention op: the kernels keep a few head
 * rows per work-item in private memory, sized by it (HEAD_DIM ≤ MAX_HEAD_DIM
 * is checked when a kernel is built). */
#define RF_ATTN_MAX_HEAD_DIM 128

/* Whether key position `pos` of batch row b is a token: mask is NULL (no
 * padding) or [B, len] i32 with 1 = token, 0 = padding. */
static inline bool rf_attn_key_is_token(const int32_t *mask, int64_t b, int64_t len, int64_t pos) {
    return !mask || mask[b * len + pos] != 0;
}

/* §5.4: logit s of the query at qpos for the key at kpos, masks applied in
 * the order HF applies them: a padding key, or with `causal` a later key →
 * −1e9; then with `self_mask` (shared QK) the query's own position → −1e5,
 * so a token that can see only itself still attends to itself. *masked:
 * whether s was replaced (a replaced logit is a constant: no gradient). */
static inline double rf_attn_masked_logit(double s, int64_t qpos, int64_t kpos, bool key_ok, bool causal,
                                          bool self_mask, bool *masked) {
    *masked = false;
    if (!key_ok || (causal && kpos > qpos)) s = RF_ATTN_MASK_VALUE, *masked = true;
    if (self_mask && kpos == qpos) s = RF_ATTN_SELF_MASK_VALUE, *masked = true;
    return s;
}

/* §5.2 (HF _len_and_dim_norm): a shared query/key row x of d values has the
 * key k = x·a with a = rsqrt(mean(x²) + 1e-6)/√d. */
static inline double rf_attn_key_scale(const float *x, int64_t d) {
    double ss = 0;
#pragma omp simd reduction(+ : ss) /* vectorised (in any order): the cpu backend's blocks call it per key */
    for (int64_t e = 0; e < d; e++) ss += (double)x[e] * x[e];
    return 1.0 / sqrt(ss / (double)d + 1e-6) / sqrt((double)d);
}

/* §5.2 backward: given dk = ∂loss/∂k for k = x·a(x), add the gradient that
 * reaches x to dx. ∂a/∂x = −a³·x, so dx_e += a·dk_e − a³·(dk·x)·x_e. */
static inline void rf_attn_key_scale_backward(double *dx, const double *dk, const float *x, int64_t d) {
    double a = rf_attn_key_scale(x, d), dkx = 0;
    for (int64_t e = 0; e < d; e++) dkx += dk[e] * x[e];
    for (int64_t e = 0; e < d; e++) dx[e] = dx[e] + a * dk[e] - a * a * a * dkx * x[e];
}

/* §3: argmax over [r, −r] (length 2·half) with ties to the lowest index. */
static inline int rf_attn_argmax_pm(const float *r, int half) {
    int best = 0;
    float bv = r[0];
    for (int j = 1; j < half; j++)
        if (r[j] > bv) bv = r[j], best = j;
    for (int j = 0; j < half; j++)
        if (-r[j] > bv) bv = -r[j], best = half + j;
    return best;
}

/* §3: the bucket of one rotated row x (f1/2 + f2/2 columns): factorised
 * (f2 > 0) as HF combines the factors, bucket = b1 + f1·b2. */
static inline int rf_attn_lsh_bucket(const float *x, int f1, int f2) {
    return f2 ? rf_attn_argmax_pm(x, f1 / 2) + f1 * rf_attn_argmax_pm(x + f1 / 2, f2 / 2) : rf_attn_argmax_pm(x, f1 / 2);
}

/* Attention-probability dropout (§2, HF's attention dropout), one layout for
 * every attention op and both backends: probability j (0 ≤ j < width) of
 * query row `row` (0 ≤ row < rows) of (batch, head) bh is kept iff word
 * (bh·rows + row)·width + j of the Philox stream (seed, stream, step)
 * passes keep, and a kept one is multiplied by keep_scale = 1/(1 − p), a
 * float computed once on the host so every backend uses the same factor.
 * Local and full attention: rows = L query positions, width = the window;
 * LSH: rows = R·L sorted slots, width = the chunk's keys (2m, or m). The
 * sum and lse stay undropped; a backward regenerates the words. */
typedef struct rf_attn_dropout {
    bool on;                   /* false: every factor is 1 (bit-identical to no dropout) */
    rf_dropout_threshold keep; /* p < 1, so never drop_all */
    float keep_scale;          /* 1/(1 − p) in float */
    uint64_t seed;
    uint32_t stream, step;
} rf_attn_dropout;

/* LSH attention's dropout, from its state (the front door refreshes it on
 * every forward call): rows = the R·L sorted slots, width = a chunk's window
 * of keys. (Local and full attention: rf_attn_window_dropout.) */
static inline rf_attn_dropout rf_attn_lsh_dropout(const rf_lsh_state *st) {
    return (rf_attn_dropout){.on = st->dropout > 0.0f, .keep = rf_philox_dropout_threshold(st->dropout),
                             .keep_scale = st->dropout_scale, .seed = st->seed, .stream = st->dropout_stream,
                             .step = st->step};
}

/* The factor of probability j of query row `row` of (batch, head) bh (the
 * layout above): keep_scale if kept, 0 if dropped, 1 without dropout. */
static inline double rf_attn_dropout_factor(const rf_attn_dropout *d, uint64_t bh, uint64_t rows, uint64_t row,
                                            uint64_t width, uint64_t j) {
    if (!d->on) return 1.0;
    uint64_t word = (bh * rows + row) * width + j;
    return rf_philox_keep(rf_philox_word(d->seed, d->stream, d->step, word), d->keep) ? (double)d->keep_scale : 0.0;
}

#endif
