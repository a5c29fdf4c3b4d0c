// Full attention's shared-QK keys (§5.2): k = q·key_scale(q) per head
// row of HEAD_DIM (attention_common.cl), and its backward. The attention
// itself is local_attention.cl with one chunk of L keys. One work-item per
// head row; rows = B·L·H rows of HEAD_DIM contiguous floats (§1).
#include "attention_common.cl"

__kernel void normalise_keys(__global float *kn, __global const float *q, const ulong q_off, const ulong rows) {
    ulong r = get_global_id(0);
    if (r >= rows) return;
    __global const float *x = q + q_off + r * HEAD_DIM;
    float ss = 0.0f;
    for (int e = 0; e < HEAD_DIM; e++) ss += x[e] * x[e];
    float a = key_scale(ss);
    for (int e = 0; e < HEAD_DIM; e++) kn[r * HEAD_DIM + e] = x[e] * a;
}

// dq += ∂kn/∂q · dkn, through key_scale_grad.
__kernel void normalise_keys_backward(__global float *dq, const ulong dq_off, __global const float *dkn,
                                      __global const float *q, const ulong q_off, const ulong rows) {
    ulong r = get_global_id(0);
    if (r >= rows) return;
    __global const float *x = q + q_off + r * HEAD_DIM;
    __global const float *g = dkn + r * HEAD_DIM;
    float ss = 0.0f, gx = 0.0f;
    for (int e = 0; e < HEAD_DIM; e++) {
        ss += x[e] * x[e];
        gx += g[e] * x[e];
    }
    float a = key_scale(ss);
    __global float *y = dq + dq_off + r * HEAD_DIM;
    for (int e = 0; e < HEAD_DIM; e++) y[e] += key_scale_grad(g[e], x[e], a, gx);
}
