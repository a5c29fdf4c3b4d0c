// Elementwise ops (§8 residuals): out = a + alpha * b.
// Forward and backward sit together: the backward of out = a + alpha*b is
// da = dout, db = alpha * dout, i.e. this same kernel with a = 0 handled by
// the host as a scale. n is the element count; the tail is guarded because
// global sizes are rounded up to the work-group size.

__kernel void axpby(__global float *out, const ulong out_off,
                    __global const float *a, const ulong a_off,
                    __global const float *b, const ulong b_off,
                    const float alpha, const ulong n) {
    size_t i = get_global_id(0);
    if (i >= n) return;
    out[out_off + i] = a[a_off + i] + alpha * b[b_off + i];
}

// The CPU shape of axpby (elementwise.c, rf_cl_attn_shape): item i takes
// elements [8i, 8i + 8) with 8-lane loads, the last item fewer, as
// activation.cl's *_vec. out may be a or b: each lane is read before written.
__kernel void axpby_vec(__global float *out, const ulong out_off,
                        __global const float *a, const ulong a_off,
                        __global const float *b, const ulong b_off,
                        const float alpha, const ulong n) {
    const size_t i = get_global_id(0) * 8;
    if (i + 8 <= n)
        vstore8(vload8(0, a + a_off + i) + alpha * vload8(0, b + b_off + i), 0, out + out_off + i);
    else
        for (size_t k = i; k < n; k++) out[out_off + k] = a[a_off + k] + alpha * b[b_off + k];
}

// The reversible stack's halves (§8, §9): out[r] = [a[r], b[r]] for
// rows r of width w each, and its backward, the split.
__kernel void concat_rows(__global float *out, const ulong out_off,
                          __global const float *a, const ulong a_off,
                          __global const float *b, const ulong b_off,
                          const ulong rows, const ulong w) {
    const size_t c = get_global_id(0), r = get_global_id(1);
    if (c >= 2 * w || r >= rows) return;
    out[out_off + r * 2 * w + c] = c < w ? a[a_off + r * w + c] : b[b_off + r * w + c - w];
}

__kernel void split_rows(__global float *a, const ulong a_off,
                         __global float *b, const ulong b_off,
                         __global const float *in, const ulong in_off,
                         const ulong rows, const ulong w) {
    const size_t c = get_global_id(0), r = get_global_id(1);
    if (c >= 2 * w || r >= rows) return;
    if (c < w) a[a_off + r * w + c] = in[in_off + r * 2 * w + c];
    else b[b_off + r * w + c - w] = in[in_off + r * 2 * w + c];
}
