// Cross-entropy with ignore index −1 (§9).
//   cross_entropy_lse:  lse = max + log Σ exp(x − max) per row, in 2-D groups
//                       of rows × lanes (reduce.cl's row_max, row_sum:
//                       deterministic).
//   cross_entropy_mean: one work-group for the whole batch: the mean over
//                       counted rows of lse − x[target] (`counted` from the host).
//   cross_entropy_backward: work-item (j, r) per logit (rf_cl_grid2):
//                       scale·(exp(x − lse) − [j = target]), 0 on ignored rows.
// The CPU shape (loss.c, rf_cl_attn_shape): cross_entropy_lse_rows and
// cross_entropy_backward_rows take a row per work-item, 8 lanes at a time
// (reduce.cl hsum8), no barrier; the mean is the same kernel.
#include "reduce.cl"

// scratch: 2·W·G floats (each row's max, then its sum).
__kernel void cross_entropy_lse(__global float *lse, const ulong lse_off, __global const float *logits,
                                const ulong x_off, const ulong rows, const ulong v, __local float *scratch) {
    const size_t lane = get_local_id(0), W = get_local_size(0), g = get_local_id(1), G = get_local_size(1);
    const size_t r = get_global_id(1), n = r < rows ? v : 0;
    __global const float *x = logits + x_off + r * v;
    float m = -FLT_MAX; // a finite floor, never -INFINITY (OPENCL-NOTES)
    for (size_t j = lane; j < n; j += W) m = fmax(m, x[j]);
    m = row_max(m, scratch + g * W, lane, W);
    float s = 0.0f;
    for (size_t j = lane; j < n; j += W) s += exp(x[j] - m);
    s = row_sum(s, scratch + (G + g) * W, lane, W);
    if (lane == 0 && r < rows) lse[lse_off + r] = m + log(s);
}

__kernel void cross_entropy_mean(__global float *loss, const ulong loss_off, __global const float *lse,
                                 const ulong lse_off, __global const float *logits, const ulong x_off,
                                 __global const int *targets, const ulong t_off, const ulong rows, const ulong v,
                                 const float counted, __local float *scratch) {
    size_t l = get_local_id(0), n = get_local_size(0);
    float s = 0.0f;
    for (size_t r = l; r < rows; r += n) {
        int t = targets[t_off + r];
        if (t >= 0) s += lse[lse_off + r] - logits[x_off + r * v + (size_t)t];
    }
    s = group_sum(s, scratch);
    if (l == 0) loss[loss_off] = counted > 0.0f ? s / counted : 0.0f;
}

__kernel void cross_entropy_backward(__global float *dlogits, const ulong dx_off, __global const float *logits,
                                     const ulong x_off, __global const float *lse, const ulong lse_off,
                                     __global const int *targets, const ulong t_off, const ulong v,
                                     const ulong rows, const float scale) {
    const size_t j = get_global_id(0), r = get_global_id(1), i = r * v + j;
    if (j >= v || r >= rows) return;
    int t = targets[t_off + r];
    float g = 0.0f;
    if (t >= 0) g = scale * (exp(logits[x_off + i] - lse[lse_off + r]) - (j == (size_t)t ? 1.0f : 0.0f));
    dlogits[dx_off + i] = g;
}

__kernel void cross_entropy_lse_rows(__global float *lse, const ulong lse_off, __global const float *logits,
                                     const ulong x_off, const ulong rows, const ulong v) {
    const size_t r = get_global_id(0), v8 = v & ~(ulong)7;
    if (r >= rows) return;
    __global const float *x = logits + x_off + r * v;
    float8 m8 = -FLT_MAX; // a finite floor, never -INFINITY (OPENCL-NOTES)
    float m = -FLT_MAX;
    for (size_t j = 0; j < v8; j += 8) m8 = fmax(m8, vload8(0, x + j));
    for (size_t j = v8; j < v; j++) m = fmax(m, x[j]);
    const float4 h = fmax(m8.lo, m8.hi);
    const float2 q = fmax(h.lo, h.hi);
    m = fmax(m, fmax(q.x, q.y));
    float8 s8 = 0.0f;
    float s = 0.0f;
    for (size_t j = 0; j < v8; j += 8) s8 += exp(vload8(0, x + j) - m);
    for (size_t j = v8; j < v; j++) s += exp(x[j] - m);
    lse[lse_off + r] = m + log(hsum8(s8) + s);
}

__kernel void cross_entropy_backward_rows(__global float *dlogits, const ulong dx_off,
                                          __global const float *logits, const ulong x_off,
                                          __global const float *lse, const ulong lse_off,
                                          __global const int *targets, const ulong t_off, const ulong v,
                                          const ulong rows, const float scale) {
    const size_t r = get_global_id(0), v8 = v & ~(ulong)7;
    if (r >= rows) return;
    __global const float *x = logits + x_off + r * v;
    __global float *dx = dlogits + dx_off + r * v;
    const int t = targets[t_off + r];
    const float l = lse[lse_off + r];
    if (t < 0) { // an ignored row: zeros, whatever its logits hold
        for (size_t j = 0; j < v; j++) dx[j] = 0.0f;
        return;
    }
    const float xt = x[t]; // read first: dlogits may be logits
    for (size_t j = 0; j < v8; j += 8) vstore8(scale * exp(vload8(0, x + j) - l), 0, dx + j);
    for (size_t j = v8; j < v; j++) dx[j] = scale * exp(x[j] - l);
    dx[t] = scale * (exp(xt - l) - 1.0f);
}
