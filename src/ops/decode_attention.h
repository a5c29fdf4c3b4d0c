/* Internal: the attention of cached incremental decoding (model/decode.c),
 * one new position per sequence per call, HF's `past_buckets_states`
 * semantics (docs/decode.md):
 *
 * LSH (§3–§5): each past position keeps its shared query/key projection,
 * its value and, once the sequence has been hashed, its bucket id per round
 * (round offset included) and its slot in the stable (bucket, position)
 * order. A new query is hashed with this call's rotations (round offset
 * r·stride), inserted into that order after every equal id (it is the
 * latest position), and attends to the 2m positions in the sorted slots of
 * its chunk and the one before — slots taken modulo the S = P + 1 positions,
 * as HF's _expand_to_indices_in_relevant_chunk, so a short sequence sees
 * some positions twice — with no causal mask (every cached position is in
 * the past) and the self mask on itself (§5.4); the rounds are combined by
 * their logsumexp (§5.6). Before any bucket exists (a prompt ≤ m) the query
 * attends to all S positions (self mask on itself, no rounds).
 *
 * Local (§6): the keys and values of the last (1 + chunks_before) chunks in a
 * ring; the query at P attends to positions [(⌊P/m⌋ − 1)·m, P] (from 0 when
 * P < m), itself included, unmasked (HF's _retrieve_relevant_hidden_states). */
#ifndef RF_DECODE_ATTENTION_H
#define RF_DECODE_ATTENTION_H

#include "reformer/ops.h"

typedef struct rf_lsh_cache {
    int64_t batch, capacity;   /* B, positions it holds at most */
    int64_t length;            /* positions cached: the next one's index P */
    int n_heads, head_dim;     /* H, d */
    int n_rounds, chunk_len;   /* R, m */
    int factors[2];            /* {nb, 0} or the factorised {f1, f2} */
    int n_buckets, rot_cols;   /* nb; rotations [H, d, R, rot_cols] */
    int stride;                /* round offset of a new query's id: nb, or nb + 1 once a
                                  cached id exceeds R·nb − 1 (HF's increase_num_buckets) */
    bool hashed;               /* bucket ids exist (HF: past_buckets non-empty) */
    int cur;                   /* perm[cur] is the current order */
    rf_tensor qk, v;           /* [B, capacity, H·d] f32 */
    rf_tensor buckets;         /* [B, H, R, capacity] i32 */
    rf_tensor perm[2];         /* [B, H, R, capacity] i32: sorted slot → position */
} rf_lsh_cache;

/* Allocate a cache for B sequences of up to `capacity` positions (length 0,
 * not hashed). cfg gives H, d, R, m and nb (resolved: n_buckets or
 * bucket_factors set). */
rf_status rf_lsh_cache_init(rf_lsh_cache *c, rf_device *dev, const rf_lsh_config *cfg, int64_t batch,
                            int64_t capacity);
void rf_lsh_cache_free(rf_lsh_cache *c);
/* Bytes of device memory the cache holds. */
size_t rf_lsh_cache_bytes(const rf_lsh_cache *c);

/* Order positions [0, length) by (bucket id, position) into perm[cur] and
 * mark the cache hashed. With `rotations` ([H, d, R, rot_cols]) the ids are
 * first recomputed from the cached qk (round offset r·nb: HF re-hashes every
 * cached position when a sequence of un-hashed positions reaches m);
 * without, the ids already in `buckets` (from the prompt's pass) are used. */
rf_status rf_lsh_cache_sort(rf_lsh_cache *c, const rf_tensor *rotations);

/* One new position per sequence: qk, v [B, H·d] are appended at P = length,
 * out [B, H·d] = its attention (above), length + 1. `rotations` is required
 * once the cache is hashed (the query's bucket), ignored before. */
rf_status rf_lsh_cache_attend(rf_tensor *out, rf_lsh_cache *c, const rf_tensor *qk, const rf_tensor *v,
                              const rf_tensor *rotations);

/* Local attention of one new position per sequence at `pos`: k, v [B, H·d]
 * are written into ring row pos mod W of k_ring, v_ring [B, W, H·d]
 * (W = 2·chunk_len), then out [B, H·d] = softmax(q·kᵀ/√d)·v over the
 * positions above. */
rf_status rf_local_cache_attend(rf_tensor *out, rf_tensor *k_ring, rf_tensor *v_ring, const rf_tensor *q,
                                const rf_tensor *k, const rf_tensor *v, int64_t pos, int chunk_len, int n_heads);

#endif
