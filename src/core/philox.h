/* Internal: Philox4x32-10 (Salmon et al., SC'11), the project's one random
 * number generator (§2). Counter-based: a word is a pure function of
 * (seed, stream, step, index), so the host, the cpu backend and every OpenCL
 * kernel (cl/philox.cl, bit-identical) produce the same numbers, and a
 * backward pass regenerates a dropout mask instead of storing it.
 *
 * Counter and key (§2): key = the 64-bit seed, low word first; counter =
 * (block low, block high, stream, step). Word `index` of a stream is lane
 * index % 4 of block index / 4.
 *
 * Stream numbering (§2: "stream names the use"): stream = layer · 16 + use,
 * with `use` one of rf_philox_use below, so every layer owns 16 streams and
 * no two uses ever share a counter:
 *   RF_PHILOX_ROTATIONS     LSH random rotations of layer i (§3), host
 *                           normals; step = the forward call / training step
 *   RF_PHILOX_DROPOUT_ATTN  attention-probability dropout of layer i
 *   RF_PHILOX_DROPOUT_HIDDEN hidden-state dropout after the attention of layer i
 *   RF_PHILOX_DROPOUT_FF    dropout after the feed-forward's first dense layer
 *   RF_PHILOX_INIT          weight initialisation (host normals); `layer` is
 *                           then the parameter tensor's index, step 0
 *   RF_PHILOX_DROPOUT_FF_OUT dropout after the feed-forward's output layer
 *   RF_PHILOX_DROPOUT_EMBED  (layer 0) dropout after the embeddings
 *   RF_PHILOX_DROPOUT_FINAL  (layer 0) dropout after the final LayerNorm
 * Hidden-state dropouts (HF's hidden_dropout_prob) use step = the model's
 * forward-call counter, so a backward pass regenerates the forward's masks.
 * Uses 8..15 are free for later needs. */
#ifndef RF_PHILOX_H
#define RF_PHILOX_H

#include <stddef.h>
#include <stdint.h>

typedef enum rf_philox_use {
    RF_PHILOX_ROTATIONS = 0,
    RF_PHILOX_DROPOUT_ATTN = 1,
    RF_PHILOX_DROPOUT_HIDDEN = 2,
    RF_PHILOX_DROPOUT_FF = 3,
    RF_PHILOX_INIT = 4,
    RF_PHILOX_DROPOUT_FF_OUT = 5,
    RF_PHILOX_DROPOUT_EMBED = 6,
    RF_PHILOX_DROPOUT_FINAL = 7
} rf_philox_use;

static inline uint32_t rf_philox_stream(uint32_t layer, rf_philox_use use) { return layer * 16u + (uint32_t)use; }

/* One Philox4x32-10 block: out = philox(ctr, key). */
void rf_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* Word `index` of (seed, stream, step). */
uint32_t rf_philox_word(uint64_t seed, uint32_t stream, uint32_t step, uint64_t index);

/* n words from block first_block on: out[i] = lane i % 4 of block
 * first_block + i / 4 of (seed, stream, step). (Blocks, not words, so that
 * every 64-bit block counter, e.g. the known answers', is reachable.) */
void rf_philox_words(uint32_t *out, size_t n, uint64_t seed, uint32_t stream, uint32_t step, uint64_t first_block);

/* §2: u = (w >> 8) · 2⁻²⁴ in [0, 1), exact in float. */
static inline float rf_philox_uniform(uint32_t w) { return (float)(w >> 8) * (1.0f / 16777216.0f); }

/* §2 dropout: keep iff w ≥ threshold = round(p · 2³²). For p = 1 the
 * threshold (2³²) does not fit a word, so drop_all says "keep nothing". */
typedef struct rf_dropout_threshold { uint32_t threshold; int drop_all; } rf_dropout_threshold;
rf_dropout_threshold rf_philox_dropout_threshold(float p);
static inline int rf_philox_keep(uint32_t w, rf_dropout_threshold t) { return !t.drop_all && w >= t.threshold; }

/* n standard normals by Box–Muller (§2, host only): words 2k and 2k+1 of the
 * stream give u1 = 1 − u(w2k) ∈ (0, 1], u2 = u(w2k+1), and
 *   out[2k] = √(−2 ln u1) cos(2π u2),  out[2k+1] = √(−2 ln u1) sin(2π u2)
 * (double precision, rounded to float once); an odd n drops the last sine. */
void rf_philox_normals(float *out, size_t n, uint64_t seed, uint32_t stream, uint32_t step);

#endif
