// Activations (§7), one work-item per element; ACT is RF_ACT_RELU (0)
// or RF_ACT_GELU (1), fixed when the program is built (-DACT=...).
//   ReLU: y = max(x, 0), dx = dy·[x > 0] (0 at 0, as PyTorch).
//   GELU (erf form, as HF "gelu"): y = 0.5·x·(1 + erf(x/√2)),
//         dx = dy·(Φ(x) + x·φ(x)), φ the standard normal density.
// The CPU shape (*_vec, bias_activation_rows; activation.c picks it by
// rf_cl_attn_shape): a work-item takes 8 elements (or a row) with 8-lane
// loads and act8/dact8, the same formulas on float8, and the scalar act/dact
// on a tail shorter than 8. One item per element left PoCL a loop of scalar
// loads and stores.

// The activation and GELU's derivative as expressions, the same for float
// and float8 (act, act8, dact, dact8 below).
#if ACT == 0
#define ACT_OF(v) fmax(v, 0.0f)
#else
#define ACT_OF(v) (0.5f * (v) * (1.0f + erf((v) * M_SQRT1_2_F)))
#define DGELU_OF(v) \
    (0.5f * (1.0f + erf((v) * M_SQRT1_2_F)) + (v) * exp(-0.5f * (v) * (v)) * (M_2_SQRTPI_F * M_SQRT1_2_F * 0.5f))
#endif

float act(float v) { return ACT_OF(v); }
float8 act8(float8 v) { return ACT_OF(v); }

float dact(float v) {
#if ACT == 0
    return v > 0.0f ? 1.0f : 0.0f;
#else
    return DGELU_OF(v);
#endif
}

float8 dact8(float8 v) {
#if ACT == 0
    return select((float8)0.0f, (float8)1.0f, v > 0.0f);
#else
    return DGELU_OF(v);
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
    dx[dx_off + i] = dy[dy_off + i] * dact(x[x_off + i]);
}

// CPU shape: item i takes elements [8i, 8i + 8), the last one fewer.
__kernel void activation_forward_vec(__global float *y, const ulong y_off,
                                     __global const float *x, const ulong x_off, const ulong n) {
    const size_t i = get_global_id(0) * 8;
    if (i + 8 <= n)
        vstore8(act8(vload8(0, x + x_off + i)), 0, y + y_off + i);
    else
        for (size_t k = i; k < n; k++) y[y_off + k] = act(x[x_off + k]);
}

__kernel void activation_backward_vec(__global float *dx, const ulong dx_off,
                                      __global const float *dy, const ulong dy_off,
                                      __global const float *x, const ulong x_off, const ulong n) {
    const size_t i = get_global_id(0) * 8;
    if (i + 8 <= n)
        vstore8(vload8(0, dy + dy_off + i) * dact8(vload8(0, x + x_off + i)), 0, dx + dx_off + i);
    else
        for (size_t k = i; k < n; k++) dx[dx_off + k] = dy[dy_off + k] * dact(x[x_off + k]);
}

// CPU shape of bias_activation: item r takes row r. y, pre and x may be one
// buffer: each element is read before it is written.
__kernel void bias_activation_rows(__global float *y, const ulong y_off, __global float *pre, const ulong pre_off,
                                   const int has_pre, __global const float *x, const ulong x_off,
                                   __global const float *b, const ulong b_off, const ulong n, const ulong rows) {
    const size_t r = get_global_id(0), n8 = n & ~(ulong)7;
    if (r >= rows) return;
    __global const float *xr = x + x_off + r * n, *br = b + b_off;
    __global float *yr = y + y_off + r * n, *pr = pre + pre_off + r * n;
    for (size_t j = 0; j < n8; j += 8) {
        const float8 v = vload8(0, xr + j) + vload8(0, br + j);
        if (has_pre) vstore8(v, 0, pr + j);
        vstore8(act8(v), 0, yr + j);
    }
    for (size_t j = n8; j < n; j++) {
        const float v = xr[j] + br[j];
        if (has_pre) pr[j] = v;
        yr[j] = act(v);
    }
}
