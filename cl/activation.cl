// Activations (§7), one work-item per element; ACT is RF_ACT_RELU (0)
// or RF_ACT_GELU (1), fixed when the program is built (-DACT=...).
//   ReLU: y = max(x, 0), dx = dy·[x > 0] (0 at 0, as PyTorch).
//   GELU (erf form, as HF "gelu"): y = 0.5·x·(1 + erf(x/√2)),
//         dx = dy·(Φ(x) + x·φ(x)), φ the standard normal density.

__kernel void activation_forward(__global float *y, const ulong y_off,
                                 __global const float *x, const ulong x_off, const ulong n) {
    size_t i = get_global_id(0);
    if (i >= n) return;
    float v = x[x_off + i];
#if ACT == 0
    y[y_off + i] = fmax(v, 0.0f);
#else
    y[y_off + i] = 0.5f * v * (1.0f + erf(v * M_SQRT1_2_F));
#endif
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
