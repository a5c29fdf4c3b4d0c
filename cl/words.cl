// Whole 32-bit words, for the buffer entries of cl_device.c.
//
// fill_words: rf_buffer_fill of a word-aligned range, dst[i] = pattern[i %
// period] for n words, period 1, 2 or 4 (a 1..16-byte pattern repeated). A
// kernel rather than clEnqueueFillBuffer: every implementation runs it the
// same way, and oclgrind's uninitialised-value checker sees its stores (it
// does not see clEnqueueFillBuffer's; docs/oclgrind.md).
__kernel void fill_words(__global uint *dst, const ulong off, const ulong n, const uint p0, const uint p1,
                         const uint p2, const uint p3, const uint period) {
    size_t i = get_global_id(0);
    if (i >= n) return;
    uint k = (uint)(i & (period - 1));
    dst[off + i] = k == 0 ? p0 : k == 1 ? p1 : k == 2 ? p2 : p3;
}

// copy_words: dst[off + i] = src[i] for n words. Only on a simulator, to
// finish an upload into part of a buffer (docs/oclgrind.md).
__kernel void copy_words(__global uint *dst, const ulong off, __global const uint *src, const ulong n) {
    size_t i = get_global_id(0);
    if (i >= n) return;
    dst[off + i] = src[i];
}
