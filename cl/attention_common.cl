// The attention maths every attention kernel shares (§5.2, §5.4, §2),
// written once: `#include "attention_common.cl"` from lsh_attention.cl,
// local_attention.cl and full_attention.cl. src/device/attention_common.h is
// the same, once, for the cpu backend; keep the two in step.
//
// Built with -DHEAD_DIM=d -DMAX_HEAD_DIM=RF_ATTN_MAX_HEAD_DIM
// (rf_cl_attn_options): kernels keep head rows in private arrays of
// HEAD_DIM floats.
//
// Optional buffers (a padding mask, lse): the host passes an absent one as a
// NULL buffer, offset 0 and has_<name> = 0; kernels test has_<name>, never
// the pointer. The padding mask, [B, L] int with 1 = token, is declared
// MASK_ARGS by every kernel that reads it.
//
// Dropout arguments: every attention kernel declares the same four,
// DROPOUT_ARGS, in this order (rf_cl_attn_dropout on the host):
//   const int dropout        0: no dropout (every factor 1, no words drawn)
//   const uint4 philox       (seed lo, seed hi, stream, step)
//   const uint threshold     keep iff word ≥ threshold (p < 1: never drop_all)
//   const float keep_scale   1/(1 − p), the host's float
// Probability j (of width) of query row `row` (of rows) of (batch, head) bh
// uses word (bh·rows + row)·width + j; the sum and lse stay undropped and a
// backward regenerates the words instead of storing a mask.
#ifndef RF_ATTENTION_COMMON_CL
#define RF_ATTENTION_COMMON_CL

#include "philox.cl"

#if HEAD_DIM > MAX_HEAD_DIM
#error "HEAD_DIM exceeds MAX_HEAD_DIM, the head width attention kernels are written for"
#endif

// §5.4: masks replace logits with large finite negatives, never −INFINITY
// (fast maths miscompiles infinities); running maxima start below them all.
#define MASK_VALUE (-1e9f)      // a padded key, or a later one when causal
#define SELF_MASK_VALUE (-1e5f) // the query's own position (shared QK)
#define RUNNING_MAX_INIT (-1e30f)

#define MASK_ARGS __global const int *mask, const ulong mask_off, const int has_mask
#define DROPOUT_ARGS const int dropout, const uint4 philox, const uint threshold, const float keep_scale

// The CPU shapes' vectors (lsh_attention.cl built with -DCHUNK,
// local_attention.cl with -DCPU_SHAPE): VEC is VW floats, VW the device's
// native float width (-DVW from the host: 16 on AVX-512, whose 512-bit
// registers a float8 leaves half empty; 8 on AVX2); DV of them hold a head
// row padded with zeros. Their kernels take QB owned rows per pass so that
// each staged vector loaded feeds QB rows (one row per pass loads as often
// as it multiplies); QB·DV and QB·4 accumulators stay within 16 registers
// (AVX2 has 16, AVX-512 32). d = 64: QB = 4 with VW = 16, 2 with VW = 8.
#ifdef VW
#if VW != 8 && VW != 16
#error "VW (the CPU shapes' vector width) must be 8 or 16"
#endif
#define VCAT_(a, b) a##b
#define VCAT(a, b) VCAT_(a, b)
#define VEC VCAT(float, VW)
#define VLOAD VCAT(vload, VW)
#define VSTORE VCAT(vstore, VW)
#define DV ((HEAD_DIM + VW - 1) / VW)
#define QB (DV >= 16 ? 1 : 16 / DV > 4 ? 4 : 16 / DV)

// Column k of an 8×8 tile held as 8 row slices a[0 … 8).
#define TILE_COLUMN(a, k) ((float8)(a[0].k, a[1].k, a[2].k, a[3].k, a[4].k, a[5].k, a[6].k, a[7].k))

// Store the 8×8 tile held as 8 row slices a[0 … 8) transposed: its column k
// at t + k·ld. The CPU shapes stage blocks transposed this way: the lane
// moves are register shuffles, where one strided store per element compiled
// to scatters (a quarter of attn_forward's time under perf).
inline void store_tile_transposed(__local float *t, int ld, const float8 *a) {
    vstore8(TILE_COLUMN(a, s0), 0, t);
    vstore8(TILE_COLUMN(a, s1), 0, t + ld);
    vstore8(TILE_COLUMN(a, s2), 0, t + 2 * ld);
    vstore8(TILE_COLUMN(a, s3), 0, t + 3 * ld);
    vstore8(TILE_COLUMN(a, s4), 0, t + 4 * ld);
    vstore8(TILE_COLUMN(a, s5), 0, t + 5 * ld);
    vstore8(TILE_COLUMN(a, s6), 0, t + 6 * ld);
    vstore8(TILE_COLUMN(a, s7), 0, t + 7 * ld);
}
#endif

// The first element of (b, position pos, head h) in a [B, L, H·HEAD_DIM]
// tensor (§1).
inline ulong row_at(int b, int pos, int h, int L, int H) {
    return (((ulong)b * (ulong)L + (ulong)pos) * (ulong)H + (ulong)h) * HEAD_DIM;
}

// Whether key position pos of batch row b is a token (mask: [B, L] int,
// 1 = token; absent when !has_mask).
inline int key_is_token(__global const int *mask, ulong mask_off, int has_mask, int b, int L, int pos) {
    return !has_mask || mask[mask_off + (ulong)b * (ulong)L + (ulong)pos] != 0;
}

// §5.4: logit s of the query at qpos for the key at kpos, masks applied in
// HF's order: a padded key, or with causal a later key → MASK_VALUE; then
// with self_mask (shared QK) the query's own position → SELF_MASK_VALUE.
// *masked: whether s was replaced (a replaced logit carries no gradient).
inline float masked_logit(float s, int qpos, int kpos, int key_ok, int causal, int self_mask, int *masked) {
    *masked = 0;
    if (!key_ok || (causal && kpos > qpos)) { s = MASK_VALUE; *masked = 1; }
    if (self_mask && kpos == qpos) { s = SELF_MASK_VALUE; *masked = 1; }
    return s;
}

// §5.2: a shared query/key row x has the key k = x·a with
// a = rsqrt(mean(x²) + 1e-6)/√d; from Σx² (callers sum their own memory).
inline float key_scale(float sum_sq) {
    return rsqrt(sum_sq / (float)HEAD_DIM + 1e-6f) * rsqrt((float)HEAD_DIM);
}

// §5.2 backward: ∂a/∂x = −a³·x, so element e of x receives
// a·dk_e − a³·(dk·x)·x_e from dk = ∂loss/∂k.
inline float key_scale_grad(float dk_e, float x_e, float a, float dk_x) {
    return a * dk_e - a * a * a * dk_x * x_e;
}

// The dropout factor of probability j of query row `row` (see above):
// keep_scale if kept, else 0. Callers skip it when !dropout.
inline float drop_factor(uint4 philox, uint threshold, float keep_scale, ulong bh, ulong rows, ulong row,
                         ulong width, ulong j) {
    ulong word = (bh * rows + row) * width + j;
    return philox_keep(philox_word(philox.xy, philox.z, philox.w, word), threshold, 0) ? keep_scale : 0.0f;
}

// q·k of a private row and a staged row of HEAD_DIM floats.
inline float dot_staged(const float *q, __local const float *k) {
    float dot = 0.0f;
    for (int e = 0; e < HEAD_DIM; e++) dot += q[e] * k[e];
    return dot;
}

// a·b of two staged rows of HEAD_DIM floats (both in local memory), in
// eight interleaved partial sums: independent chains a GPU overlaps and a
// CPU (PoCL) runs as one vector; any alignment (vload8).
inline float dot_local(__local const float *a, __local const float *b) {
    float8 acc = (float8)(0.0f);
    int e = 0;
    // not unrolled: a GPU compiler would otherwise keep a whole loop-invariant
    // row in registers (the private array this shape avoids)
#pragma unroll 1
    for (; e + 8 <= HEAD_DIM; e += 8) acc += vload8(0, a + e) * vload8(0, b + e);
    float4 h = acc.lo + acc.hi;
    float dot = (h.x + h.z) + (h.y + h.w);
    for (; e < HEAD_DIM; e++) dot += a[e] * b[e];
    return dot;
}

// ---- CPU shape (rf_cl_attn_shape) -------------------------------------------
// Helpers of the kernels' CPU shape: one work-item takes whole rows, eight
// logits at a time in float8 lanes (AVX-wide on PoCL).

// masked_logit on eight (query, key) pairs: lane t is the pair
// (qpos.t, kpos.t), key_ok.t nonzero for a token; *masked lanes are −1
// where the logit was replaced (§5.4, HF's order as above).
inline float8 masked_logit8(float8 s, int8 qpos, int8 kpos, int8 key_ok, int causal, int self_mask, int8 *masked) {
    int8 m = (key_ok == 0) | ((int8)(causal ? -1 : 0) & (kpos > qpos));
    s = select(s, (float8)(MASK_VALUE), m);
    int8 own = (int8)(self_mask ? -1 : 0) & (kpos == qpos);
    *masked = m | own;
    return select(s, (float8)(SELF_MASK_VALUE), own);
}

#endif
