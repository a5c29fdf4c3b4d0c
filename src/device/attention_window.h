/* Internal: the windowed attention that local and full attention share
 * (§6). Queries are cut into chunks of chunk_len positions in their own
 * order; chunk c attends to the keys of chunks c−before … c+after, taken
 * cyclically as the HF model's _look_adjacent does (chunk 0 looks back at the
 * last chunk; a chunk reached through two window slots counts twice, as
 * there). Full attention, and local attention with L ≤ chunk_len, are one
 * chunk of L keys with an empty look-around. The front doors (src/ops/
 * local_attention.c, full_attention.c) fill this in once; both backends'
 * local-attention entries compute it. */
#ifndef RF_ATTENTION_WINDOW_H
#define RF_ATTENTION_WINDOW_H

#include <stdbool.h>
#include <stdint.h>
#include "core/philox.h"

typedef struct rf_attn_window {
    int64_t batch, len, heads, head_dim; /* q, k, v, out: [batch, len, heads·head_dim] */
    int64_t chunk_len;                   /* divides len */
    int before, after;                   /* chunks looked at before / after a query's own */
    bool causal;                         /* key position > query position → −1e9 (§6, §5.4) */
    bool self_mask;                      /* key position == query position → −1e5 (shared QK, §5.4) */
    float scale;                         /* logit = scale · q·k: 1/√d (§6), 1 for pre-normalised keys */
    /* Probability dropout (§2; include/reformer/ops.h): when `dropout`, the
     * probability of window key j (0 ≤ j < W = (before + 1 + after)·chunk_len,
     * in window-slot order) of query i of (b, h) is kept iff word
     * ((b·H + h)·L + i)·W + j of (seed, stream, step) is ≥ keep.threshold,
     * and a kept one is multiplied by keep_scale = 1/(1−p), a float computed
     * once on the host so both backends use the same factor. */
    bool dropout;
    rf_dropout_threshold keep;
    float keep_scale;
    uint64_t seed;
    uint32_t stream, step;
} rf_attn_window;

/* Mask replacement values (§5.4): the logit is replaced, not added to. */
#define RF_ATTN_MASK_VALUE (-1e9f)
#define RF_ATTN_SELF_MASK_VALUE (-1e5f)

/* The largest head width the kernels hold in private memory (§6). */
#define RF_ATTN_MAX_HEAD_DIM 128

#endif
