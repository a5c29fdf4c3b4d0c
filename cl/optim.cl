// The optimiser (§9).
//   adam_update: one work-item per element; AdamW as torch.optim.AdamW:
//     g = grad_scale·grad; m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
//     p = p·(1 − lr·wd) − lr·(m/bc1)/(√(v/bc2) + ε), bc = 1 − βᵗ from the host.
//   sum_squares: one work-group; each item sums a strided share with Kahan
//     compensation, then a fixed tree (group_sum): deterministic, and close
//     to the cpu's double sum even for millions of elements.
#include "reduce.cl"

__kernel void adam_update(__global float *p, const ulong p_off, __global float *m, const ulong m_off,
                          __global float *v, const ulong v_off, __global const float *grad, const ulong g_off,
                          const ulong n, const float lr, const float beta1, const float beta2, const float eps,
                          const float weight_decay, const float grad_scale, const float bc1, const float bc2) {
    size_t i = get_global_id(0);
    if (i >= n) return;
    float g = grad_scale * grad[g_off + i];
    float mi = beta1 * m[m_off + i] + (1.0f - beta1) * g;
    float vi = beta2 * v[v_off + i] + (1.0f - beta2) * g * g;
    float pi = p[p_off + i] * (1.0f - lr * weight_decay);
    p[p_off + i] = pi - lr * (mi / bc1) / (sqrt(vi / bc2) + eps);
    m[m_off + i] = mi;
    v[v_off + i] = vi;
}

__kernel void sum_squares(__global float *out, const ulong out_off, __global const float *x, const ulong x_off,
                          const ulong n, __local float *scratch) {
    size_t l = get_local_id(0), gs = get_local_size(0);
    float s = 0.0f, c = 0.0f;
    for (size_t i = l; i < n; i += gs) {
        float y = x[x_off + i] * x[x_off + i] - c;
        float t = s + y;
        c = (t - s) - y;
        s = t;
    }
    s = group_sum(s, scratch);
    if (l == 0) out[out_off] = s;
}
