// Philox4x32-10 (§2), bit-identical to src/core/philox.c; include it
// from another kernel file with `#include "philox.cl"` (dropout regenerates
// its mask from (seed, stream, step, index) this way). Counter = (block low,
// block high, stream, step), key = the 64-bit seed, low word first; word
// `index` of a stream is lane index % 4 of block index / 4. Stream numbering:
// src/core/philox.h.
#ifndef RF_PHILOX_CL
#define RF_PHILOX_CL

uint4 philox4x32_10(uint4 c, uint2 k) {
    for (int round = 0; round < 10; round++) {
        uint hi0 = mul_hi(0xD2511F53u, c.x), lo0 = 0xD2511F53u * c.x;
        uint hi1 = mul_hi(0xCD9E8D57u, c.z), lo1 = 0xCD9E8D57u * c.z;
        c = (uint4)(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
        k += (uint2)(0x9E3779B9u, 0xBB67AE85u);
    }
    return c;
}

uint philox_lane(uint4 w, uint lane) { return lane == 0 ? w.x : lane == 1 ? w.y : lane == 2 ? w.z : w.w; }

// Word `index` of (key, stream, step), as rf_philox_word.
uint philox_word(uint2 key, uint stream, uint step, ulong index) {
    ulong blk = index >> 2;
    return philox_lane(philox4x32_10((uint4)((uint)blk, (uint)(blk >> 32), stream, step), key), (uint)(index & 3));
}

// §2: u = (w >> 8) · 2⁻²⁴ in [0, 1), exact in float.
float philox_uniform(uint w) { return (float)(w >> 8) * (1.0f / 16777216.0f); }

// §2 dropout: keep iff w ≥ threshold (= round(p · 2³²), computed on the host;
// drop_all for p = 1, whose threshold does not fit 32 bits).
int philox_keep(uint w, uint threshold, int drop_all) { return !drop_all && w >= threshold; }

// rf_philox_fill: out[i] = lane i % 4 of block first_block + i / 4, as the
// word (as_float = 0) or its uniform (as_float = 1), for i < n. One
// work-item per element.
__kernel void philox_fill(__global uint *out, const ulong out_off, const ulong n, const uint key_lo,
                          const uint key_hi, const uint stream, const uint step, const ulong first_block,
                          const int as_float) {
    size_t i = get_global_id(0);
    if (i >= n) return;
    ulong blk = first_block + i / 4;
    uint4 b = philox4x32_10((uint4)((uint)blk, (uint)(blk >> 32), stream, step), (uint2)(key_lo, key_hi));
    uint w = philox_lane(b, (uint)(i & 3));
    out[out_off + i] = as_float ? as_uint(philox_uniform(w)) : w;
}

#endif
