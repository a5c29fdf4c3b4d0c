// Activations (§7), one work-item per element; ACT is RF_ACT_RELU (0)
// or RF_ACT_GELU (1), fixed when the program is built (-DACT=...).
//   ReLU: y = max(x, 0), dx = dy·[x > 0] (0 at 0, as PyTorch).
//   GELU (erf form, as HF "gelu"): y = 0.5·x·(1 + erf(x/√2)),
//         dx = dy·(Φ(x) + x·φ(x)), φ the standard normal density.

float act(float v) {
#if ACT == 0
    return fmax(v, 0.0f);
#else
    return 0.5f * v * (1.0f + erf(v * M_SQRT1_2_F));
#endif
}

__kernel void activation_forward(__global float *y, const ulong y_off,
                                 __global const float *x, const ulong x_off, const ulong n) {
    size_t i = get_global_id(0);
    if (i >= n) return;
    y[y_off + i] = act(x[x_off + i]);
}

// The bias of the layer before fused in (rf_bias_activation_forward):
// y[r, j] = act(x[r, j] + b[j]) and, when has_pre, pre[r, j] = x[r, j] + b[j];
// work-item (j, r) (rf_cl_grid2). y, pre and x may be one buffer.
__kernel void bias_activation(__global float *y, const ulong y_off, __global float *pre, const ulong pre_off,
                              const int has_pre, __global const float *x, const ulong x_off,
                              __global const float *b, const ulong b_off, const ulong n, const ulong rows) {
    const size_t j = get_global_id(0), r = get_global_id(1);
    if (j >= n || r >= rows) return;
    const float v = x[x_off + r * n + j] + b[b_off + j];
    if (has_pre) pre[pre_off + r * n + j] = v;
    y[y_off + r * n + j] = act(v);
}

__kernel void activation_backward(__global float *dx, const ulong dx_off,
                                  __global const float *dy, const ulong dy_off,
                                  __global const float *x, const ulong x_off, const ulong n) {
    size_t i = get_global_id(0);
    if (i >= n) return;
    float v = x[x_off + i];
#if ACT == 0
    float d = v > 0.0f ? 1.0f : 0.0f;
#else
    float d = 0.5f * (1.0f + erf(v * M_SQRT1_2_F)) + v * exp(-0.5f * v * v) * (M_2_SQRTPI_F * M_SQRT1_2_F * 0.5f);
#endif
    dx[dx_off + i] = dy[dy_off + i] * d;
}
