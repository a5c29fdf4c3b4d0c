// Dropout (§2), forward and backward alike (the backward applies the
// same mask to the gradient): out[i] = in[i] * (keep ? scale : 0), where
// element i uses word first + i of the Philox stream (seed, stream, step) —
// lane (first + i) % 4 of block (first + i) / 4, as src/device/cpu/dropout.c
// — and keep iff the word ≥ threshold = round(p · 2³²) (computed on the host,
// as is scale = 1/(1−p) in float, so the product matches the cpu's bit for
// bit).
#include "philox.cl"

// One work-item per Philox block: item k draws block first/4 + k once and
// applies its 4 words to the elements they belong to (words first .. first
// + n − 1; the first and last blocks may be partial). out may alias in: each
// element is read then written by one work-item.
__kernel void dropout(__global float *out, const ulong out_off, __global const float *in, const ulong in_off,
                      const ulong n, const ulong first, const uint key_lo, const uint key_hi, const uint stream,
                      const uint step, const uint threshold, const int drop_all, const float scale) {
    const ulong blk = first / 4 + get_global_id(0), word0 = blk * 4;
    if (word0 >= first + n) return;
    const uint4 w = philox4x32_10((uint4)((uint)blk, (uint)(blk >> 32), stream, step), (uint2)(key_lo, key_hi));
    for (uint j = 0; j < 4; j++) {
        const ulong word = word0 + j;
        if (word < first || word >= first + n) continue;
        const ulong i = word - first;
        out[out_off + i] = in[in_off + i] * (philox_keep(philox_lane(w, j), threshold, drop_all) ? scale : 0.0f);
    }
}
