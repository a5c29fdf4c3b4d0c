// LayerNorm (§7, §9), as torch.nn.LayerNorm: per row of d,
//   y = (x − mean)·rstd·gamma + beta,  rstd = 1/√(var + eps), var biased.
//
// Forward and the backward's dx: 2-D work-groups of G rows × W lanes
// (reduce.cl's row reductions; global id 1 is the row). Lane l reads
// elements l, l + W, l + 2W, ... of its row, so the W lanes read
// neighbouring words (coalesced on a GPU). Rows past the last one (the grid
// is whole groups) have no elements but still reach the barriers.
// Two passes (mean, then the centred variance) avoid the cancellation of
// E[x²] − E[x]²; the forward has two barriers, the backward one.
//
// Backward's dgamma/dbeta: column sums in two stages (blocks of rows, then
// the blocks in order; no atomics; deterministic).
//
// The CPU shape (*_rows kernels, on devices of CPU type: norm.c) takes the
// same passes a work-item per row, 8 lanes at a time (reduce.cl hsum8), with
// no barrier; the backward's work-item takes a block of rows and adds their
// dgamma/dbeta terms to its block's part of the column sums as it goes.

#include "reduce.cl"

// scratch: 2·W·G floats (the two sums of each row).
__kernel void layer_norm_forward(__global float *y, const ulong y_off,
                                 __global float *mean, const ulong mean_off, const int has_mean,
                                 __global float *rstd, const ulong rstd_off, const int has_rstd,
                                 __global const float *x, const ulong x_off,
                                 __global const float *gamma, const ulong g_off,
                                 __global const float *beta, const ulong b_off,
                                 const ulong rows, const ulong d, const float eps, __local float *scratch) {
    const size_t lane = get_local_id(0), W = get_local_size(0), g = get_local_id(1), G = get_local_size(1);
    const size_t r = get_global_id(1), n = r < rows ? d : 0;
    __global const float *xr = x + x_off + r * d;
    __global float *yr = y + y_off + r * d;
    float s = 0.0f;
    for (size_t i = lane; i < n; i += W) s += xr[i];
    const float mu = row_sum(s, scratch + g * W, lane, W) / (float)d;
    float v = 0.0f;
    for (size_t i = lane; i < n; i += W) {
        const float c = xr[i] - mu;
        v += c * c;
    }
    const float rs = 1.0f / sqrt(row_sum(v, scratch + (G + g) * W, lane, W) / (float)d + eps);
    for (size_t i = lane; i < n; i += W) yr[i] = (xr[i] - mu) * rs * gamma[g_off + i] + beta[b_off + i];
    if (lane == 0 && r < rows && has_mean) mean[mean_off + r] = mu;
    if (lane == 0 && r < rows && has_rstd) rstd[rstd_off + r] = rs;
}

// dx = rstd · (g − mean(g) − x̂·mean(g·x̂)) with g = dy·gamma, x̂ = (x − mean)·rstd.
// Groups as the forward's; scratch: 2·W·G floats.
__kernel void layer_norm_backward_dx(__global float *dx, const ulong dx_off,
                                     __global const float *dy, const ulong dy_off,
                                     __global const float *x, const ulong x_off,
                                     __global const float *gamma, const ulong g_off,
                                     __global const float *mean, const ulong mean_off,
                                     __global const float *rstd, const ulong rstd_off,
                                     const ulong rows, const ulong d, __local float *scratch) {
    const size_t lane = get_local_id(0), W = get_local_size(0), g = get_local_id(1), G = get_local_size(1);
    const size_t r = get_global_id(1), n = r < rows ? d : 0;
    __global const float *xr = x + x_off + r * d, *dyr = dy + dy_off + r * d;
    const float mu = n ? mean[mean_off + r] : 0.0f, rs = n ? rstd[rstd_off + r] : 0.0f;
    float sg = 0.0f, sgx = 0.0f;
    for (size_t i = lane; i < n; i += W) {
        const float gi = dyr[i] * gamma[g_off + i];
        sg += gi;
        sgx += gi * (xr[i] - mu) * rs;
    }
    const float2 m = row_sum2(sg, sgx, scratch + g * W, scratch + (G + g) * W, lane, W) / (float)d;
    const float mg = m.x, mgx = m.y;
    for (size_t i = lane; i < n; i += W) {
        const float xh = (xr[i] - mu) * rs;
        dx[dx_off + r * d + i] = rs * (dyr[i] * gamma[g_off + i] - mg - xh * mgx);
    }
}

// dgamma[c] += Σ_r dy[r,c]·x̂[r,c],  dbeta[c] += Σ_r dy[r,c]  (when has_*),
// in two stages so that rows·d work-items' worth of reading is spread over
// the device rather than d items each walking every row. Stage 1: item
// (c, b) sums rows [b·R, b·R + R) of column c (neighbouring items read
// neighbouring columns: coalesced) into part[b·d + c] (dgamma's) and
// part[(blocks + b)·d + c] (dbeta's). Stage 2: one item per
// column adds the blocks' sums in block order (deterministic; no atomics).
__kernel void layer_norm_params_partial(__global float *part,
                                        __global const float *dy, const ulong dy_off,
                                        __global const float *x, const ulong x_off,
                                        __global const float *mean, const ulong mean_off,
                                        __global const float *rstd, const ulong rstd_off,
                                        const ulong rows, const ulong d, const ulong block_rows) {
    size_t c = get_global_id(0), b = get_global_id(1), blocks = get_global_size(1);
    if (c >= d) return;
    size_t r1 = min((b + 1) * block_rows, (size_t)rows);
    float sg = 0.0f, sb = 0.0f;
    for (size_t r = b * block_rows; r < r1; r++) {
        float g = dy[dy_off + r * d + c];
        sg += g * (x[x_off + r * d + c] - mean[mean_off + r]) * rstd[rstd_off + r];
        sb += g;
    }
    part[b * d + c] = sg;
    part[(blocks + b) * d + c] = sb;
}

__kernel void layer_norm_params_final(__global float *dgamma, const ulong dg_off, const int has_dgamma,
                                      __global float *dbeta, const ulong db_off, const int has_dbeta,
                                      __global const float *part,
                                      const ulong blocks, const ulong d) {
    size_t c = get_global_id(0);
    if (c >= d) return;
    float sg = 0.0f, sb = 0.0f;
    for (size_t b = 0; b < blocks; b++) {
        sg += part[b * d + c];
        sb += part[(blocks + b) * d + c];
    }
    if (has_dgamma) dgamma[dg_off + c] += sg;
    if (has_dbeta) dbeta[db_off + c] += sb;
}

// CPU shape of layer_norm_forward: work-item r normalises row r (two passes
// as above: mean, then the centred variance; then y). y may be x.
__kernel void layer_norm_forward_rows(__global float *y, const ulong y_off,
                                      __global float *mean, const ulong mean_off, const int has_mean,
                                      __global float *rstd, const ulong rstd_off, const int has_rstd,
                                      __global const float *x, const ulong x_off,
                                      __global const float *gamma, const ulong g_off,
                                      __global const float *beta, const ulong b_off,
                                      const ulong rows, const ulong d, const float eps) {
    const size_t r = get_global_id(0), d8 = d & ~(ulong)7;
    if (r >= rows) return;
    __global const float *xr = x + x_off + r * d, *g = gamma + g_off, *b = beta + b_off;
    __global float *yr = y + y_off + r * d;
    float8 s8 = 0.0f;
    float s = 0.0f;
    for (size_t i = 0; i < d8; i += 8) s8 += vload8(0, xr + i);
    for (size_t i = d8; i < d; i++) s += xr[i];
    const float mu = (hsum8(s8) + s) / (float)d;
    float8 v8 = 0.0f;
    float v = 0.0f;
    for (size_t i = 0; i < d8; i += 8) {
        const float8 c = vload8(0, xr + i) - mu;
        v8 += c * c;
    }
    for (size_t i = d8; i < d; i++) v += (xr[i] - mu) * (xr[i] - mu);
    const float rs = 1.0f / sqrt((hsum8(v8) + v) / (float)d + eps);
    for (size_t i = 0; i < d8; i += 8)
        vstore8((vload8(0, xr + i) - mu) * rs * vload8(0, g + i) + vload8(0, b + i), 0, yr + i);
    for (size_t i = d8; i < d; i++) yr[i] = (xr[i] - mu) * rs * g[i] + b[i];
    if (has_mean) mean[mean_off + r] = mu;
    if (has_rstd) rstd[rstd_off + r] = rs;
}

// CPU shape of the backward: work-item b takes rows [b·R, b·R + R): per row,
// dx as layer_norm_backward_dx and, when has_part, the row's dy·x̂ and dy
// added to part[b·d + c] and part[(blocks + b)·d + c], the layout of
// layer_norm_params_partial (layer_norm_params_final adds the blocks in
// order). One read of
// x and dy serves dx and the parameters. dx may be dy: each element of dy is
// read before dx's is written.
__kernel void layer_norm_backward_rows(__global float *dx, const ulong dx_off,
                                       __global float *part, const int has_part,
                                       __global const float *dy, const ulong dy_off,
                                       __global const float *x, const ulong x_off,
                                       __global const float *gamma, const ulong g_off,
                                       __global const float *mean, const ulong mean_off,
                                       __global const float *rstd, const ulong rstd_off,
                                       const ulong rows, const ulong d, const ulong block_rows) {
    const size_t b = get_global_id(0), d8 = d & ~(ulong)7, r0 = b * block_rows;
    if (r0 >= rows) return;
    const size_t r1 = min(r0 + (size_t)block_rows, (size_t)rows);
    __global const float *g = gamma + g_off;
    const size_t blocks = (rows + block_rows - 1) / block_rows;
    __global float *pg = part + b * d, *pb = part + (blocks + b) * d;
    if (has_part)
        for (size_t i = 0; i < d; i++) pg[i] = pb[i] = 0.0f;
    for (size_t r = r0; r < r1; r++) {
        __global const float *xr = x + x_off + r * d, *dyr = dy + dy_off + r * d;
        __global float *dxr = dx + dx_off + r * d;
        const float mu = mean[mean_off + r], rs = rstd[rstd_off + r];
        float8 sg8 = 0.0f, sgx8 = 0.0f;
        float sg = 0.0f, sgx = 0.0f;
        for (size_t i = 0; i < d8; i += 8) {
            const float8 gi = vload8(0, dyr + i) * vload8(0, g + i);
            sg8 += gi;
            sgx8 += gi * (vload8(0, xr + i) - mu) * rs;
        }
        for (size_t i = d8; i < d; i++) {
            const float gi = dyr[i] * g[i];
            sg += gi;
            sgx += gi * (xr[i] - mu) * rs;
        }
        const float mg = (hsum8(sg8) + sg) / (float)d, mgx = (hsum8(sgx8) + sgx) / (float)d;
        for (size_t i = 0; i < d8; i += 8) {
            const float8 dyi = vload8(0, dyr + i), xh = (vload8(0, xr + i) - mu) * rs;
            if (has_part) {
                vstore8(vload8(0, pg + i) + dyi * xh, 0, pg + i);
                vstore8(vload8(0, pb + i) + dyi, 0, pb + i);
            }
            vstore8(rs * (dyi * vload8(0, g + i) - mg - xh * mgx), 0, dxr + i);
        }
        for (size_t i = d8; i < d; i++) {
            const float dyi = dyr[i], xh = (xr[i] - mu) * rs;
            if (has_part) {
                pg[i] += dyi * xh;
                pb[i] += dyi;
            }
            dxr[i] = rs * (dyi * g[i] - mg - xh * mgx);
        }
    }
}
