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
#include "device/attention_common.h"

typedef struct rf_attn_window {
    int64_t batch, len, heads, head_dim; /* q, k, v, out: [batch, len, heads·head_dim] */
    int64_t chunk_len;                   /* divides len */
    int before, after;                   /* chunks looked at before / after a query's own */
    bool causal;                         /* key position > query position masked (§6, §5.4) */
    bool self_mask;                      /* key position == query position masked (shared QK, §5.4) */
    float scale;                         /* logit = scale · q·k: 1/√d (§6), 1 for pre-normalised keys */
    /* Probability dropout (§2; include/reformer/ops.h), the fields of
     * rf_attn_dropout (device/attention_common.h; rows = len, width = W =
     * (before + 1 + after)·chunk_len, window keys in window-slot order), as
     * the front door fills them. */
    bool dropout;
    rf_dropout_threshold keep;
    float keep_scale;
    uint64_t seed;
    uint32_t stream, step;
} rf_attn_window;

/* The window's keys per query: W = (before + 1 + after)·chunk_len. */
static inline int64_t rf_attn_window_width(const rf_attn_window *w) {
    return (int64_t)(w->before + 1 + w->after) * w->chunk_len;
}

/* The window's dropout in the layout every attention op shares. */
static inline rf_attn_dropout rf_attn_window_dropout(const rf_attn_window *w) {
    return (rf_attn_dropout){.on = w->dropout, .keep = w->keep, .keep_scale = w->keep_scale, .seed = w->seed,
                             .stream = w->stream, .step = w->step};
}

#endif
