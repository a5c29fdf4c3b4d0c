// rf_buffer_fill for word-aligned ranges: dst[i] = pattern[i % period] for
// n 32-bit words, period 1, 2 or 4 (a 1..16-byte pattern repeated). A kernel
// rather than clEnqueueFillBuffer: every implementation runs it the same way,
// and oclgrind's uninitialised-value checker sees its stores (it does not see
// clEnqueueFillBuffer's; docs/oclgrind.md).
__kernel void fill_words(__global uint *dst, const ulong off, const ulong n, const uint4 pattern,
                         const uint period) {
    size_t i = get_global_id(0);
    if (i >= n) return;
    uint k = (uint)(i & (period - 1));
    dst[off + i] = k == 0 ? pattern.x : k == 1 ? pattern.y : k == 2 ? pattern.z : pattern.w;
}
