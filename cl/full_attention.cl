// Full attention's shared-QK keys (§5.2): k = q·rsqrt(mean(q²) + 1e-6)/√d
// per head row of d, and its backward. The attention itself is
// local_attention.cl with one chunk of L keys. One work-item per head row;
// rows = B·L·H rows of d contiguous floats (§1).

__kernel void normalise_keys(__global float *kn, __global const float *q, const ulong q_off, const ulong rows,
                             const int d) {
    ulong r = get_global_id(0);
    if (r >= rows) return;
    __global const float *x = q + q_off + r * (ulong)d;
    float ms = 0.0f;
    for (int e = 0; e < d; e++) ms += x[e] * x[e];
    float f = rsqrt(ms / (float)d + 1e-6f) / sqrt((float)d);
    for (int e = 0; e < d; e++) kn[r * (ulong)d + e] = x[e] * f;
}

// dq += ∂kn/∂q · dkn: with ρ = rsqrt(mean(q²) + 1e-6),
// dq_e += ρ/√d · (dkn_e − q_e·ρ²·(Σ_e' dkn_e'·q_e')/d).
__kernel void normalise_keys_backward(__global float *dq, const ulong dq_off, __global const float *dkn,
                                      __global const float *q, const ulong q_off, const ulong rows, const int d) {
    ulong r = get_global_id(0);
    if (r >= rows) return;
    __global const float *x = q + q_off + r * (ulong)d;
    __global const float *g = dkn + r * (ulong)d;
    float ms = 0.0f, gx = 0.0f;
    for (int e = 0; e < d; e++) {
        ms += x[e] * x[e];
        gx += g[e] * x[e];
    }
    float rho = rsqrt(ms / (float)d + 1e-6f), f = rho / sqrt((float)d), c = rho * rho * gx / (float)d;
    __global float *y = dq + dq_off + r * (ulong)d;
    for (int e = 0; e < d; e++) y[e] += f * (g[e] - x[e] * c);
}
