// Windowed attention (§6; local attention, and full attention as one
// chunk of L keys): fused, flash-attention style. The logits never reach
// global memory: the forward keeps a running max, sum and weighted value per
// query (online softmax) and stores lse; the backward recomputes the
// probabilities from lse (p = exp(s − lse)).
//
// Layout: q, k, v, out, dq, dk, dv are [B, L, H·HEAD_DIM] (§1); lse and
// delta are [B, H, L]; mask is [B, L] int (1 = token) or absent (has_mask 0).
// Queries are cut into chunks of `chunk` positions; query chunk c attends to
// key chunks (c + s) mod n_chunks for s = −before … after (HF _look_adjacent).
//
// Work decomposition (shaped for GPUs, FlashAttention-2 style). A work-group
// owns ROWS consecutive rows of ONE chunk — queries in the forward and dq
// kernels, keys in the dk/dv kernel — so all its rows share one window and
// each output row has exactly one writer (no atomics). SPLIT work-items serve
// each row: work-item `lid` is row lid / SPLIT, lane lid % SPLIT, so a group
// is GROUP = ROWS·SPLIT items. The group's own rows are staged once into
// local memory; the other side streams through local memory COLS rows at a
// time, read coalesced (consecutive work-items, consecutive floats of a row).
// Per step each item computes whole dot products from local memory for the
// columns j ≡ lane (mod SPLIT) of its row into a [ROWS, COLS] score tile in
// local memory; row maxima and sums are two-stage reductions (one partial per
// lane, then the row's SPLIT partials); then each item adds the tile into
// its slice of the row's accumulator: SLICE = ceil(HEAD_DIM / SPLIT) ≤
// MAX_SLICE consecutive elements whatever d is (the host picks SPLIT so). Global size dim 0 = n_chunks · ceil(chunk / ROWS) · GROUP,
// dim 1 = B·H; local size GROUP.
//
// Defines: HEAD_DIM (d), MAX_HEAD_DIM, ROWS, COLS, SPLIT, MAX_SLICE (the
// host sizes the tiles from the device's limits, local_attention.c). Masks
// (§5.4), the optional mask and lse buffers and the dropout arguments:
// attention_common.cl.
//
// Built with -DCPU_SHAPE (rf_cl_attn_shape: a CPU device such as PoCL) the
// same kernels, with the same arguments and numerics, take the CPU shape
// instead (its section below), built with HEAD_DIM, MAX_HEAD_DIM, ROWS,
// COLS and VW only.
//
// Probability dropout (§2, HF attention dropout): the probability of window
// key j (0 ≤ j < W = (before + 1 + after)·chunk, in window-slot order) of
// query i of (b, h) is query row i of L, probability j of W in
// attention_common.cl's layout.

#include "attention_common.cl"

// A query whose every key is masked has all its logits equal to −1e9, so it
// attends uniformly to its window. Its lse, −1e9 + log(n), is −1e9 in float
// (the spacing there is 64), so the backward cannot recover p from it: below
// this threshold it uses p = 1/n instead (n = the window's key count).
#define FULLY_MASKED (-5e8f)

// Window key j of query qpos of row bh = b·H + h: its dropout factor.
inline float window_drop(uint4 philox, uint threshold, float keep_scale, int bh, int qpos, int L, int chunk,
                         int before, int after, int j) {
    return drop_factor(philox, threshold, keep_scale, (ulong)bh, (ulong)L, (ulong)qpos,
                       (ulong)((before + 1 + after) * chunk), (ulong)j);
}

// This group's chunk c and its first row r0 within it.
inline void group_rows(int chunk, int *c, int *r0) {
    int tiles = (chunk + ROWS - 1) / ROWS;
    *c = (int)get_group_id(0) / tiles;
    *r0 = ((int)get_group_id(0) % tiles) * ROWS;
}

// Chunk c of nc, taken cyclically (HF _look_adjacent): c may be negative.
inline int cyclic(int c, int nc) { return (c % nc + nc) % nc; }

// Causal without a padding mask, every query sees at least its own key, so
// a logit masked as a later key has probability exactly 0 (exp(−1e9 − m))
// and no gradient: a tile whose keys all come after every query of the
// group adds nothing and is skipped (by the whole group: no barrier split).
inline int all_future(int causal, int has_mask, int last_query, int first_key) {
    return causal && !has_mask && first_key > last_query;
}

// The inputs every window kernel reads, in this order (after its outputs):
// q, k, v, the optional padding mask, the window (sequence length, heads,
// chunk, chunks before / after, causal, self mask, logit scale) and the
// dropout arguments.
#define WINDOW_ARGS                                                                                                  \
    __global const float *q, const ulong q_off, __global const float *k, const ulong k_off, __global const float *v, \
        const ulong v_off, MASK_ARGS, const int L, const int H, const int chunk, const int before, const int after,  \
        const int causal, const int self_mask, const float scale, DROPOUT_ARGS

#ifdef CPU_SHAPE
// ---- CPU shape ----------------------------------------------------------------
// On a CPU device (PoCL) a work-group runs on one core as a loop over its
// work-items; every barrier splits that loop and spills the values live
// across it to per-item context arrays, and the loop's vectoriser turns rows
// HEAD_DIM floats apart into gathers. So here a work-group is ONE work-item:
// no barrier, no context array, the kernel is the loop nest a C programmer
// would write with AVX intrinsics. It owns ROWS consecutive rows of one chunk
// (queries in the forward and dq kernels, keys in the dk/dv kernel) with
// their accumulators in local memory, and streams the other side COLS rows
// (a block) at a time. Each block is staged once, transposed ([HEAD_DIM,
// COLS], stage_transposed), so that one row's COLS dot products with it are
// HEAD_DIM broadcast FMAs into COLS/8 float8 lanes (row_dots: no horizontal
// sums, no gathers); masks and softmax then run on those lanes, and the row's
// accumulator takes Σ_j w_j·x_j over the block's rows, read straight from
// global memory (host memory; the block is a few KiB, cache-resident), in
// float8 slices (add_rows). The forward does both for QB query rows per
// pass in VW-float vectors (rows_dots, rows_add_rows; QB, VW:
// attention_common.cl), so that each staged key vector and each value
// slice is loaded once for QB rows instead of once per FMA; the backward
// kernels still take one row per pass. Measured against the other candidate, a group
// of ROWS work-items, one per query row, with barriers around each staged
// block (the row's accumulator in private float8s): the forward at the
// benchmark model's shape took 9.1 ms against 12.4 ms that way on PoCL
// (interleaved runs), the rows' state being spilled to context arrays at
// every barrier. Global size dim 0 = n_chunks · ceil(chunk / ROWS), dim 1 =
// B·H; local size 1. Numerics are the GPU shape's: online softmax per block
// in the forward, p = exp(s − lse) in the backward, masks through
// masked_logit8 (attention_common.cl). When a group owns a whole chunk
// (chunk ≤ ROWS: local attention), the backward is attn_backward_fused and
// attn_backward_sum instead of attn_backward_dq and attn_backward_dkdv.

#ifndef VW
#error "the CPU shape needs -DVW (attention_common.cl: VEC, QB)"
#endif
#if COLS % VW != 0
#error "COLS must be a multiple of VW (the VEC lanes of a block's logits)"
#endif
#define VECS (COLS / 8)      // float8 lanes of a block's logits
#define HVECS (HEAD_DIM / 8) // whole float8 slices of a head row
#define TAIL (HEAD_DIM % 8)  // the row's last floats, done one by one
#define IOTA8 ((int8)(0, 1, 2, 3, 4, 5, 6, 7))

inline float hsum8(float8 x) {
    float4 h = x.lo + x.hi;
    return (h.x + h.z) + (h.y + h.w);
}

inline float hmax8(float8 x) {
    float4 h = fmax(x.lo, x.hi);
    return fmax(fmax(h.x, h.z), fmax(h.y, h.w));
}

// Stage rows [first, first + n) of (b, head h) of x transposed: t[e·COLS + j]
// = x_j[e]; columns n … COLS − 1 are zero (callers mask their lanes). By
// 8×8 tiles (store_tile_transposed).
inline void stage_transposed(__local float *t, __global const float *x, ulong x_off, int b, int first, int n, int h,
                             int L, int H) {
    for (int j0 = 0; j0 < COLS; j0 += 8) {
        __global const float *r[8];
#pragma unroll
        for (int u = 0; u < 8; u++) r[u] = x + x_off + row_at(b, first + min(j0 + u, n - 1), h, L, H);
        int e = 0;
        for (; e + 8 <= HEAD_DIM; e += 8) {
            float8 a[8];
#pragma unroll
            for (int u = 0; u < 8; u++) a[u] = j0 + u < n ? vload8(0, r[u] + e) : (float8)(0.0f);
            store_tile_transposed(t + e * COLS + j0, COLS, a);
        }
        for (; e < HEAD_DIM; e++) // the tail of HEAD_DIM mod 8
            for (int u = 0; u < 8; u++) t[e * COLS + j0 + u] = j0 + u < n ? r[u][e] : 0.0f;
    }
}

// y[j] = x·t_j for the COLS columns of the transposed block t, each summed
// in order of e by fma — as attn_delta sums dout·out, so a query with one
// key gets ds = p·(dp − delta) = 0 exactly.
inline void row_dots(float *y, __global const float *x, __local const float *t) {
    float8 acc[VECS];
#pragma unroll
    for (int u = 0; u < VECS; u++) acc[u] = (float8)(0.0f);
    for (int e = 0; e < HEAD_DIM; e++) {
        float8 xe = (float8)(x[e]);
#pragma unroll
        for (int u = 0; u < VECS; u++) acc[u] = fma(xe, vload8(u, t + e * COLS), acc[u]);
    }
#pragma unroll
    for (int u = 0; u < VECS; u++) vstore8(acc[u], u, y);
}

// acc = acc·alpha + Σ_{j0 ≤ j < j1} w[j]·x_j, x_j = x + j·stride (rows of
// consecutive positions of one head): the whole row in registers, one float8
// slice (and the tail's floats) per FMA.
inline void add_rows(__local float *acc, float alpha, const float *w, int j0, int j1, __global const float *x,
                     ulong stride) {
    float8 a[HVECS + 1]; // + 1: HEAD_DIM may be under 8
#pragma unroll
    for (int u = 0; u < HVECS; u++) a[u] = vload8(u, acc) * alpha;
#if TAIL
    float r[TAIL];
    for (int e = 0; e < TAIL; e++) r[e] = acc[8 * HVECS + e] * alpha;
#endif
    for (int j = j0; j < j1; j++) {
        __global const float *xj = x + (ulong)j * stride;
        float8 wj = (float8)(w[j]);
#pragma unroll
        for (int u = 0; u < HVECS; u++) a[u] = fma(wj, vload8(u, xj), a[u]);
#if TAIL
        for (int e = 0; e < TAIL; e++) r[e] = fma(w[j], xj[8 * HVECS + e], r[e]);
#endif
    }
#pragma unroll
    for (int u = 0; u < HVECS; u++) vstore8(a[u], u, acc);
#if TAIL
    for (int e = 0; e < TAIL; e++) acc[8 * HVECS + e] = r[e];
#endif
}

// y[r][j] = x_r·t_j for the QB rows x_r = x + min(r, nrows − 1)·stride
// (consecutive positions of one head; spare rows repeat the last) and the
// COLS columns of the transposed block t, each summed in order of e by fma
// as row_dots; each staged vector is loaded once for the QB rows (row_dots
// loads one per FMA).
inline void rows_dots(float y[QB][COLS], __global const float *x, ulong stride, int nrows, __local const float *t) {
    __global const float *xr[QB];
    VEC acc[QB][COLS / VW];
#pragma unroll
    for (int r = 0; r < QB; r++) {
        xr[r] = x + (ulong)min(r, nrows - 1) * stride;
#pragma unroll
        for (int u = 0; u < COLS / VW; u++) acc[r][u] = (VEC)(0.0f);
    }
    for (int e = 0; e < HEAD_DIM; e++) {
        VEC te[COLS / VW];
#pragma unroll
        for (int u = 0; u < COLS / VW; u++) te[u] = VLOAD(u, t + e * COLS);
#pragma unroll
        for (int r = 0; r < QB; r++) {
            VEC xe = (VEC)(xr[r][e]);
#pragma unroll
            for (int u = 0; u < COLS / VW; u++) acc[r][u] = fma(xe, te[u], acc[r][u]);
        }
    }
#pragma unroll
    for (int r = 0; r < QB; r++)
#pragma unroll
        for (int u = 0; u < COLS / VW; u++) VSTORE(acc[r][u], u, y[r]);
}

#define RVECS (HEAD_DIM / VW) // whole VEC slices of a head row
#define RTAIL (HEAD_DIM % VW) // the row's last floats, done one by one

// For the first nrows of QB accumulator rows acc_r = acc + r·HEAD_DIM:
// acc_r = acc_r·alpha[r] + Σ_{j < j1} w[r][j]·x_j, x_j = x + j·stride — as
// add_rows for each row, each slice of x_j loaded once for the QB rows.
inline void rows_add_rows(__local float *acc, const float *alpha, float w[QB][COLS], int nrows, int j1,
                          __global const float *x, ulong stride) {
    VEC a[QB][RVECS + 1]; // + 1: HEAD_DIM may be under VW
#if RTAIL
    float tl[QB][RTAIL];
#endif
#pragma unroll
    for (int r = 0; r < QB; r++) {
        int rr = min(r, nrows - 1); // spare rows: computed, never stored
#pragma unroll
        for (int u = 0; u < RVECS; u++) a[r][u] = VLOAD(u, acc + rr * HEAD_DIM) * alpha[r];
#if RTAIL
        for (int e = 0; e < RTAIL; e++) tl[r][e] = acc[rr * HEAD_DIM + RVECS * VW + e] * alpha[r];
#endif
    }
    for (int j = 0; j < j1; j++) {
        __global const float *xj = x + (ulong)j * stride;
        VEC xv[RVECS + 1];
#pragma unroll
        for (int u = 0; u < RVECS; u++) xv[u] = VLOAD(u, xj);
#pragma unroll
        for (int r = 0; r < QB; r++) {
            VEC wr = (VEC)(w[r][j]);
#pragma unroll
            for (int u = 0; u < RVECS; u++) a[r][u] = fma(wr, xv[u], a[r][u]);
#if RTAIL
            for (int e = 0; e < RTAIL; e++) tl[r][e] = fma(w[r][j], xj[RVECS * VW + e], tl[r][e]);
#endif
        }
    }
    for (int r = 0; r < nrows; r++) {
#pragma unroll
        for (int u = 0; u < RVECS; u++) VSTORE(a[r][u], u, acc + r * HEAD_DIM);
#if RTAIL
        for (int e = 0; e < RTAIL; e++) acc[r * HEAD_DIM + RVECS * VW + e] = tl[r][e];
#endif
    }
}

// The forward: out, and lse when has_lse. Per block, each query row's logits
// (padding columns at RUNNING_MAX_INIT, probability exactly 0), the block's
// max and undropped sum (§2), then the online-softmax update of the row's
// running max ms, sum ls and weighted values acc. Local memory: the block's
// keys [HEAD_DIM, COLS]; acc [ROWS, HEAD_DIM]; ms, ls [ROWS].
__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void
attn_forward(__global float *out, const ulong out_off, __global float *lse, const ulong lse_off, const int has_lse,
             WINDOW_ARGS) {
    __local float kt[HEAD_DIM * COLS], acc[ROWS * HEAD_DIM], ms[ROWS], ls[ROWS];
    int c, r0;
    group_rows(chunk, &c, &r0);
    int bh = (int)get_global_id(1), b = bh / H, h = bh % H;
    int nc = L / chunk, nq = min(ROWS, chunk - r0), q0 = c * chunk + r0;
    ulong stride = (ulong)H * HEAD_DIM;
    for (int i = 0; i < nq; i++) {
        ms[i] = RUNNING_MAX_INIT;
        ls[i] = 0.0f;
        for (int e = 0; e < HEAD_DIM; e++) acc[i * HEAD_DIM + e] = 0.0f;
    }
    for (int s = -before; s <= after; s++)
        for (int t = 0; t < chunk; t += COLS) {
            int n = min(COLS, chunk - t), first = cyclic(c + s, nc) * chunk + t;
            if (all_future(causal, has_mask, q0 + nq - 1, first)) continue;
            stage_transposed(kt, k, k_off, b, first, n, h, L, H);
            int kok[COLS];
            for (int j = 0; j < COLS; j++) kok[j] = j < n && key_is_token(mask, mask_off, has_mask, b, L, first + j);
            __global const float *vb = v + v_off + row_at(b, first, h, L, H);
            for (int i0 = 0; i0 < nq; i0 += QB) { // QB query rows per pass
                int nr = min(QB, nq - i0);
                if (all_future(causal, has_mask, q0 + i0 + nr - 1, first)) continue;
                float p[QB][COLS], alpha[QB];
                rows_dots(p, q + q_off + row_at(b, q0 + i0, h, L, H), stride, nr, kt);
                int j1 = 0; // the pass's rows take keys [0, j1)
                for (int r = 0; r < QB; r++) {
                    int i = i0 + r, qpos = q0 + i;
                    alpha[r] = 1.0f;
                    if (r >= nr || all_future(causal, has_mask, qpos, first)) {
                        // no key for this row: weights 0 and alpha 1 leave acc as it is
                        for (int j = 0; j < COLS; j++) p[r][j] = 0.0f;
                        continue;
                    }
                    // keys past jn come after qpos: probability exactly 0 (all_future),
                    // so a row that stops before j1 adds exact zeros
                    int jn = causal && !has_mask ? min(n, qpos - first + 1) : n;
                    j1 = max(j1, jn);
                    float8 mx = (float8)(RUNNING_MAX_INIT);
#pragma unroll
                    for (int u = 0; u < VECS; u++) {
                        int8 j = (int8)(8 * u) + IOTA8, masked;
                        float8 x = masked_logit8(vload8(u, p[r]) * scale, (int8)(qpos), (int8)(first) + j,
                                                 vload8(u, kok), causal, self_mask, &masked);
                        x = select(x, (float8)(RUNNING_MAX_INIT), j >= (int8)(n));
                        mx = fmax(mx, x);
                        vstore8(x, u, p[r]);
                    }
                    float mnew = fmax(ms[i], hmax8(mx));
                    float8 sum = (float8)(0.0f);
#pragma unroll
                    for (int u = 0; u < VECS; u++) {
                        float8 e = exp(vload8(u, p[r]) - mnew);
                        sum += e; // the sum stays undropped (§2)
                        vstore8(e, u, p[r]);
                    }
                    if (dropout)
                        for (int j = 0; j < jn; j++)
                            p[r][j] *= window_drop(philox, threshold, keep_scale, bh, qpos, L, chunk, before, after,
                                                   (s + before) * chunk + t + j);
                    alpha[r] = exp(ms[i] - mnew);
                    ls[i] = ls[i] * alpha[r] + hsum8(sum);
                    ms[i] = mnew;
                }
                rows_add_rows(acc + i0 * HEAD_DIM, alpha, p, nr, j1, vb, stride);
            }
        }
    for (int i = 0; i < nq; i++) {
        int qpos = q0 + i;
        __global float *y = out + out_off + row_at(b, qpos, h, L, H);
        float inv = 1.0f / ls[i];
        for (int e = 0; e < HEAD_DIM; e++) y[e] = acc[i * HEAD_DIM + e] * inv;
        if (has_lse) lse[lse_off + (ulong)bh * (ulong)L + (ulong)qpos] = ms[i] + log(ls[i]);
    }
}

// ---- backward (CPU shape) -------------------------------------------------------
// delta_i = Σ_e dout_ie · out_ie, summed in order of e by fma (as row_dots
// sums dp_ij = dout_i·v_j). A group takes ROWS rows; global (ceil(L / ROWS), B·H).
__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void
attn_delta(__global float *delta, __global const float *dout, const ulong dout_off, __global const float *out,
           const ulong out_off, const int L, const int H) {
    int first = (int)get_group_id(0) * ROWS, bh = (int)get_global_id(1), b = bh / H, h = bh % H;
    for (int i = 0; i < min(ROWS, L - first); i++) {
        __global const float *g = dout + dout_off + row_at(b, first + i, h, L, H);
        __global const float *o = out + out_off + row_at(b, first + i, h, L, H);
        float dot = 0.0f;
        for (int e = 0; e < HEAD_DIM; e++) dot = fma(g[e], o[e], dot);
        delta[(ulong)bh * (ulong)L + (ulong)(first + i)] = dot;
    }
}

// dq_i = scale · Σ_j ds_ij · k_j, ds as in the GPU shape's attn_backward_dq.
// Query rows are owned as in the forward. Local memory: the block's keys and
// values, transposed [HEAD_DIM, COLS] each; dq's accumulators [ROWS, HEAD_DIM].
__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void
attn_backward_dq(__global float *dq, const ulong dq_off, __global const float *dout, const ulong dout_off,
                 __global const float *lse, const ulong lse_off, __global const float *delta, WINDOW_ARGS) {
    __local float kt[HEAD_DIM * COLS], vt[HEAD_DIM * COLS], acc[ROWS * HEAD_DIM];
    int c, r0;
    group_rows(chunk, &c, &r0);
    int bh = (int)get_global_id(1), b = bh / H, h = bh % H;
    int nc = L / chunk, nq = min(ROWS, chunk - r0), q0 = c * chunk + r0;
    ulong stride = (ulong)H * HEAD_DIM;
    for (int e = 0; e < nq * HEAD_DIM; e++) acc[e] = 0.0f;
    for (int s = -before; s <= after; s++)
        for (int t = 0; t < chunk; t += COLS) {
            int n = min(COLS, chunk - t), first = cyclic(c + s, nc) * chunk + t;
            if (all_future(causal, has_mask, q0 + nq - 1, first)) continue;
            stage_transposed(kt, k, k_off, b, first, n, h, L, H);
            stage_transposed(vt, v, v_off, b, first, n, h, L, H);
            int kok[COLS];
            for (int j = 0; j < COLS; j++) kok[j] = j < n && key_is_token(mask, mask_off, has_mask, b, L, first + j);
            __global const float *kb = k + k_off + row_at(b, first, h, L, H);
            for (int i = 0; i < nq; i++) {
                int qpos = q0 + i;
                if (all_future(causal, has_mask, qpos, first)) continue;
                int jn = causal && !has_mask ? min(n, qpos - first + 1) : n; // later keys: ds = 0
                ulong lrow = (ulong)bh * (ulong)L + (ulong)qpos, at = row_at(b, qpos, h, L, H);
                float li = lse[lse_off + lrow], di = delta[lrow];
                float ds[COLS], dp[COLS];
                row_dots(ds, q + q_off + at, kt);
                row_dots(dp, dout + dout_off + at, vt);
                if (dropout)
                    for (int j = 0; j < jn; j++)
                        dp[j] *= window_drop(philox, threshold, keep_scale, bh, qpos, L, chunk, before, after,
                                             (s + before) * chunk + t + j);
#pragma unroll
                for (int u = 0; u < VECS; u++) {
                    int8 j = (int8)(8 * u) + IOTA8, masked;
                    float8 x = masked_logit8(vload8(u, ds) * scale, (int8)(qpos), (int8)(first) + j, vload8(u, kok),
                                             causal, self_mask, &masked);
                    float8 g = exp(x - li) * (vload8(u, dp) - di);
                    vstore8(select(g, (float8)(0.0f), masked | (j >= (int8)(n))), u, ds);
                }
                add_rows(acc + i * HEAD_DIM, 1.0f, ds, 0, jn, kb, stride);
            }
        }
    for (int i = 0; i < nq; i++) {
        __global float *y = dq + dq_off + row_at(b, q0 + i, h, L, H);
        for (int e = 0; e < HEAD_DIM; e++) y[e] = acc[i * HEAD_DIM + e] * scale;
    }
}

// dv_j = Σ_i f_ij·p_ij · dout_i and dk_j = scale · Σ_i ds_ij · q_i, as the GPU
// shape's attn_backward_dkdv: key rows owned, the queries that see them
// streamed a block at a time. Local memory: the block's queries and output
// gradients, transposed [HEAD_DIM, COLS] each; dk's and dv's accumulators
// [ROWS, HEAD_DIM] each.
__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void
attn_backward_dkdv(__global float *dk, const ulong dk_off, __global float *dv, const ulong dv_off,
                   __global const float *dout, const ulong dout_off, __global const float *lse, const ulong lse_off,
                   __global const float *delta, WINDOW_ARGS) {
    __local float qt[HEAD_DIM * COLS], gt[HEAD_DIM * COLS], dka[ROWS * HEAD_DIM], dva[ROWS * HEAD_DIM];
    int c, r0;
    group_rows(chunk, &c, &r0);
    int bh = (int)get_global_id(1), b = bh / H, h = bh % H;
    int nc = L / chunk, nk = min(ROWS, chunk - r0), k0 = c * chunk + r0;
    ulong stride = (ulong)H * HEAD_DIM;
    float inv_n = 1.0f / (float)((before + 1 + after) * chunk);
    for (int e = 0; e < nk * HEAD_DIM; e++) dka[e] = dva[e] = 0.0f;
    for (int s = -before; s <= after; s++)
        for (int t = 0; t < chunk; t += COLS) {
            int n = min(COLS, chunk - t), first = cyclic(c - s, nc) * chunk + t;
            if (all_future(causal, has_mask, first + n - 1, k0)) continue;
            stage_transposed(qt, q, q_off, b, first, n, h, L, H);
            stage_transposed(gt, dout, dout_off, b, first, n, h, L, H);
            float lq[COLS], dts[COLS]; // padding columns: 0, their lanes masked
            for (int j = 0; j < COLS; j++) {
                ulong lrow = (ulong)bh * (ulong)L + (ulong)(first + min(j, n - 1));
                lq[j] = j < n ? lse[lse_off + lrow] : 0.0f;
                dts[j] = j < n ? delta[lrow] : 0.0f;
            }
            __global const float *qb = q + q_off + row_at(b, first, h, L, H);
            __global const float *gb = dout + dout_off + row_at(b, first, h, L, H);
            for (int i = 0; i < nk; i++) {
                int kpos = k0 + i;
                if (all_future(causal, has_mask, first + n - 1, kpos)) continue;
                // queries before j0 come before kpos: p = ds = 0 exactly (all_future)
                int j0 = causal && !has_mask ? max(0, kpos - first) : 0;
                int key_ok = key_is_token(mask, mask_off, has_mask, b, L, kpos);
                ulong at = row_at(b, kpos, h, L, H);
                float pd[COLS], ds[COLS], f[COLS];
                row_dots(pd, k + k_off + at, qt);
                row_dots(ds, v + v_off + at, gt);
                if (dropout)
                    for (int j = 0; j < COLS; j++)
                        f[j] = j < j0 || j >= n ? 0.0f
                                                : window_drop(philox, threshold, keep_scale, bh, first + j, L, chunk,
                                                              before, after, (s + before) * chunk + r0 + i);
#pragma unroll
                for (int u = 0; u < VECS; u++) {
                    int8 j = (int8)(8 * u) + IOTA8, masked;
                    float8 x = masked_logit8(vload8(u, pd) * scale, (int8)(first) + j, (int8)(kpos), (int8)(key_ok),
                                             causal, self_mask, &masked);
                    float8 l = vload8(u, lq), dp = vload8(u, ds);
                    float8 p = select(exp(x - l), (float8)(inv_n), l < (float8)(FULLY_MASKED)), fp = p;
                    if (dropout) {
                        float8 fj = vload8(u, f);
                        fp *= fj;
                        dp *= fj;
                    }
                    int8 pad = j >= (int8)(n);
                    vstore8(select(fp, (float8)(0.0f), pad), u, pd);
                    vstore8(select(p * (dp - vload8(u, dts)), (float8)(0.0f), masked | pad), u, ds);
                }
                add_rows(dva + i * HEAD_DIM, 1.0f, pd, j0, n, gb, stride);
                add_rows(dka + i * HEAD_DIM, 1.0f, ds, j0, n, qb, stride);
            }
        }
    for (int i = 0; i < nk; i++) {
        ulong at = row_at(b, k0 + i, h, L, H);
        for (int e = 0; e < HEAD_DIM; e++) {
            dk[dk_off + at + (ulong)e] = dka[i * HEAD_DIM + e] * scale;
            dv[dv_off + at + (ulong)e] = dva[i * HEAD_DIM + e];
        }
    }
}

// ---- backward fused per chunk (CPU shape, chunk ≤ ROWS) -------------------------
// When a group owns a whole query chunk, one kernel computes s and dp once
// per (query, key) pair for all three gradients: dq as attn_backward_dq, and
// per window slot the block's dk and dv contributions from this chunk's
// queries, into that slot's part of `part` ([2·slots, B, L, H·HEAD_DIM]: the
// slot's dk part, then its dv part). A key row of a slot has exactly one
// writer (the chunk that sees it through that slot), so no atomics;
// attn_backward_sum adds the slots up. This saves the dk/dv kernel's second
// pass over s and dp (two of its four row passes per block). Local memory:
// the block's keys and values transposed [HEAD_DIM, COLS] each; dq's
// accumulators [ROWS, HEAD_DIM]; the ds and f·p tiles [ROWS, COLS]; one key
// row's dk and dv [2, HEAD_DIM].
__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void
attn_backward_fused(__global float *dq, const ulong dq_off, __global float *part, __global const float *dout,
                    const ulong dout_off, __global const float *lse, const ulong lse_off, __global const float *delta,
                    WINDOW_ARGS) {
    __local float kt[HEAD_DIM * COLS], vt[HEAD_DIM * COLS], acc[ROWS * HEAD_DIM], dst[ROWS * COLS], pdt[ROWS * COLS];
    __local float kv[2 * HEAD_DIM];
    int c, r0;
    group_rows(chunk, &c, &r0); // r0 = 0: the host runs this kernel only when chunk ≤ ROWS
    int bh = (int)get_global_id(1), b = bh / H, h = bh % H;
    int nc = L / chunk, nq = chunk, q0 = c * chunk;
    ulong stride = (ulong)H * HEAD_DIM, numel = (ulong)get_global_size(1) * (ulong)L * HEAD_DIM;
    float inv_n = 1.0f / (float)((before + 1 + after) * chunk);
    __global const float *qb = q + q_off + row_at(b, q0, h, L, H), *gb = dout + dout_off + row_at(b, q0, h, L, H);
    for (int e = 0; e < nq * HEAD_DIM; e++) acc[e] = 0.0f;
    for (int s = -before; s <= after; s++)
        for (int t = 0; t < chunk; t += COLS) {
            int n = min(COLS, chunk - t), first = cyclic(c + s, nc) * chunk + t;
            __global float *pk = part + (ulong)(2 * (s + before)) * numel, *pv = pk + numel;
            if (all_future(causal, has_mask, q0 + nq - 1, first)) { // no contribution: the parts are zero
                for (int j = 0; j < n; j++)
                    for (int e = 0; e < HEAD_DIM; e++) {
                        ulong at = row_at(b, first + j, h, L, H) + (ulong)e;
                        pk[at] = pv[at] = 0.0f;
                    }
                continue;
            }
            stage_transposed(kt, k, k_off, b, first, n, h, L, H);
            stage_transposed(vt, v, v_off, b, first, n, h, L, H);
            int kok[COLS];
            for (int j = 0; j < COLS; j++) kok[j] = j < n && key_is_token(mask, mask_off, has_mask, b, L, first + j);
            __global const float *kb = k + k_off + row_at(b, first, h, L, H);
            for (int i = 0; i < nq; i++) {
                int qpos = q0 + i;
                __local float *dsi = dst + i * COLS, *pdi = pdt + i * COLS;
                if (all_future(causal, has_mask, qpos, first)) {
                    for (int j = 0; j < COLS; j++) dsi[j] = pdi[j] = 0.0f;
                    continue;
                }
                int jn = causal && !has_mask ? min(n, qpos - first + 1) : n; // later keys: p = ds = 0
                ulong lrow = (ulong)bh * (ulong)L + (ulong)qpos, at = row_at(b, qpos, h, L, H);
                float li = lse[lse_off + lrow], di = delta[lrow];
                float ds[COLS], dp[COLS], f[COLS];
                row_dots(ds, q + q_off + at, kt);
                row_dots(dp, dout + dout_off + at, vt);
                if (dropout)
                    for (int j = 0; j < COLS; j++)
                        f[j] = j < jn ? window_drop(philox, threshold, keep_scale, bh, qpos, L, chunk, before, after,
                                                    (s + before) * chunk + t + j)
                                      : 0.0f;
#pragma unroll
                for (int u = 0; u < VECS; u++) {
                    int8 j = (int8)(8 * u) + IOTA8, masked;
                    float8 x = masked_logit8(vload8(u, ds) * scale, (int8)(qpos), (int8)(first) + j, vload8(u, kok),
                                             causal, self_mask, &masked);
                    float8 p = li < FULLY_MASKED ? (float8)(inv_n) : exp(x - li), fp = p, g = vload8(u, dp);
                    if (dropout) {
                        float8 fj = vload8(u, f);
                        fp *= fj;
                        g *= fj;
                    }
                    int8 pad = j >= (int8)(n);
                    vstore8(select(fp, (float8)(0.0f), pad), u, pdi);
                    float8 d = select(p * (g - di), (float8)(0.0f), masked | pad);
                    vstore8(d, u, ds);
                    vstore8(d, u, dsi);
                }
                add_rows(acc + i * HEAD_DIM, 1.0f, ds, 0, jn, kb, stride);
            }
            // each key of the block: its dk and dv parts from this chunk's queries
            for (int j = 0; j < n; j++) {
                int kpos = first + j;
                int i0 = causal && !has_mask ? max(0, kpos - q0) : 0; // earlier queries: p = ds = 0
                float wd[ROWS], wp[ROWS];
                for (int i = i0; i < nq; i++) {
                    wd[i] = dst[i * COLS + j];
                    wp[i] = pdt[i * COLS + j];
                }
                for (int e = 0; e < 2 * HEAD_DIM; e++) kv[e] = 0.0f;
                add_rows(kv, 1.0f, wd, i0, nq, qb, stride);
                add_rows(kv + HEAD_DIM, 1.0f, wp, i0, nq, gb, stride);
                ulong at = row_at(b, kpos, h, L, H);
                for (int e = 0; e < HEAD_DIM; e++) {
                    pk[at + (ulong)e] = kv[e];
                    pv[at + (ulong)e] = kv[HEAD_DIM + e];
                }
            }
        }
    for (int i = 0; i < nq; i++) {
        __global float *y = dq + dq_off + row_at(b, q0 + i, h, L, H);
        for (int e = 0; e < HEAD_DIM; e++) y[e] = acc[i * HEAD_DIM + e] * scale;
    }
}

// dk = scale · Σ_slots dk parts, dv = Σ_slots dv parts (attn_backward_fused's
// `part`), element-wise over the numel = B·L·H·HEAD_DIM floats, ROWS·HEAD_DIM
// of them per group; global (ceil(numel / (ROWS·HEAD_DIM)), 1).
__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void
attn_backward_sum(__global float *dk, const ulong dk_off, __global float *dv, const ulong dv_off,
                  __global const float *part, const int slots, const ulong numel, const float scale) {
    ulong x0 = (ulong)get_group_id(0) * (ulong)(ROWS * HEAD_DIM), x1 = min(numel, x0 + (ulong)(ROWS * HEAD_DIM));
    for (ulong x = x0; x < x1; x++) {
        float sk = 0.0f, sv = 0.0f;
        for (int s = 0; s < slots; s++) {
            sk += part[(ulong)(2 * s) * numel + x];
            sv += part[(ulong)(2 * s + 1) * numel + x];
        }
        dk[dk_off + x] = sk * scale;
        dv[dv_off + x] = sv;
    }
}

#else // the GPU shape

#define GROUP (ROWS * SPLIT)
#define SLICE ((HEAD_DIM + SPLIT - 1) / SPLIT)
// Staged rows are HEAD_DIM + 1 floats apart, so the SPLIT items of a row,
// each reading a different staged row at the same e, hit different banks.
#define ROW (HEAD_DIM + 1)

#if SLICE > MAX_SLICE
#error "SPLIT leaves more than MAX_SLICE accumulator floats per work-item"
#endif

// Stage rows [first, first + n) of (b, head h) of x into a local block of
// rows ROW floats apart. Rows past n are left alone (never read).
inline void stage_rows(__local float *xs, __global const float *x, ulong x_off, int b, int first, int n, int h, int L,
                       int H) {
    for (int idx = (int)get_local_id(0); idx < n * HEAD_DIM; idx += GROUP) {
        int rr = idx / HEAD_DIM, e = idx % HEAD_DIM;
        xs[rr * ROW + e] = x[x_off + row_at(b, first + rr, h, L, H) + (ulong)e];
    }
}

// Stage keys [first, first + n) of (b, head h) for the forward and dq
// kernels: k and v rows and whether each is a token. Every work-item calls it
// (it holds the barriers around the tile).
inline void stage_keys(__local float *ks, __local float *vs, __local int *kok, __global const float *k, ulong k_off,
                       __global const float *v, ulong v_off, MASK_ARGS, int b, int first, int n, int h, int L, int H) {
    barrier(CLK_LOCAL_MEM_FENCE); // the previous tile is consumed
    stage_rows(ks, k, k_off, b, first, n, h, L, H);
    stage_rows(vs, v, v_off, b, first, n, h, L, H);
    for (int rr = (int)get_local_id(0); rr < n; rr += GROUP)
        kok[rr] = key_is_token(mask, mask_off, has_mask, b, L, first + rr);
    barrier(CLK_LOCAL_MEM_FENCE);
}

// The sum of the SPLIT partials part[0 … SPLIT) of one row (reduction's
// second stage; every item of the row gets the same sum, in the same order).
inline float row_sum(__local const float *part) {
    float s = 0.0f;
    for (int u = 0; u < SPLIT; u++) s += part[u];
    return s;
}

// This item's slice of a row: elements lane·SLICE + k, k < SLICE —
// contiguous, so the inner loops below run over consecutive floats (PoCL
// vectorises them). With d not a multiple of SPLIT the last lanes' slices
// run past d: IN_HEAD skips those elements (always true otherwise).
#if HEAD_DIM % SPLIT == 0
#define IN_HEAD(e) 1
#else
#define IN_HEAD(e) ((e) < HEAD_DIM)
#endif

// acc[k] += Σ_j w[j]·xs[j][lane·SLICE + k] over the n staged rows xs: a
// row's weights times a tile, into this item's slice.
inline void add_weighted(float *acc, __local const float *w, __local const float *xs, int n, int lane) {
    for (int j = 0; j < n; j++) {
        float wj = w[j];
        __local const float *x = xs + j * ROW + lane * SLICE;
        for (int k = 0; k < SLICE; k++)
            if (IN_HEAD(lane * SLICE + k)) acc[k] += wj * x[k];
    }
}

// Store this item's slice of a row, times `scale`, at y[at …].
inline void store_slice(__global float *y, ulong at, const float *acc, float scale, int lane) {
    for (int k = 0; k < SLICE; k++) {
        int e = lane * SLICE + k;
        if (IN_HEAD(e)) y[at + (ulong)e] = acc[k] * scale;
    }
}

// ---- forward: out, and lse when has_lse -----------------------------------
// Local memory: own queries [ROWS, ROW]; keys, values [COLS, ROW]; the score
// tile [ROWS, COLS]; key flags [COLS]; the reductions' partials [2, GROUP].
__kernel __attribute__((reqd_work_group_size(GROUP, 1, 1))) void
attn_forward(__global float *out, const ulong out_off, __global float *lse, const ulong lse_off, const int has_lse,
             WINDOW_ARGS) {
    __local float qs[ROWS * ROW], ks[COLS * ROW], vs[COLS * ROW], ps[ROWS * COLS], red[2 * GROUP];
    __local int kok[COLS];
    int c, r0;
    group_rows(chunk, &c, &r0);
    int lid = (int)get_local_id(0), i = lid / SPLIT, lane = lid % SPLIT;
    int bh = (int)get_global_id(1), b = bh / H, h = bh % H;
    int nc = L / chunk, nq = min(ROWS, chunk - r0), qpos = c * chunk + r0 + i, valid = i < nq;
    stage_rows(qs, q, q_off, b, c * chunk + r0, nq, h, L, H); // read after stage_keys's barriers
    __local const float *qi = qs + i * ROW;
    __local float *pi = ps + i * COLS;
    float acc[SLICE];
    for (int kk = 0; kk < SLICE; kk++) acc[kk] = 0.0f;
    float m = RUNNING_MAX_INIT, l = 0.0f;
    for (int s = -before; s <= after; s++)
        for (int t = 0; t < chunk; t += COLS) {
            int n = min(COLS, chunk - t), first = cyclic(c + s, nc) * chunk + t;
            if (all_future(causal, has_mask, c * chunk + r0 + nq - 1, first)) continue;
            stage_keys(ks, vs, kok, k, k_off, v, v_off, mask, mask_off, has_mask, b, first, n, h, L, H);
            // this item's logits (keys j ≡ lane) and their max
            float tmax = RUNNING_MAX_INIT;
            for (int j = lane; valid && j < n; j += SPLIT) {
                int masked;
                pi[j] = masked_logit(dot_local(qi, ks + j * ROW) * scale, qpos, first + j, kok[j], causal, self_mask,
                                     &masked);
                tmax = fmax(tmax, pi[j]);
            }
            red[lid] = tmax;
            barrier(CLK_LOCAL_MEM_FENCE);
            float mnew = m;
            for (int u = 0; u < SPLIT; u++) mnew = fmax(mnew, red[i * SPLIT + u]);
            float psum = 0.0f;
            for (int j = lane; valid && j < n; j += SPLIT) {
                float p = exp(pi[j] - mnew);
                psum += p; // the sum stays undropped (§2)
                if (dropout)
                    p *= window_drop(philox, threshold, keep_scale, bh, qpos, L, chunk, before, after,
                                     (s + before) * chunk + t + j);
                pi[j] = p;
            }
            red[GROUP + lid] = psum;
            barrier(CLK_LOCAL_MEM_FENCE);
            float alpha = exp(m - mnew);
            l = l * alpha + row_sum(red + GROUP + i * SPLIT);
            for (int kk = 0; kk < SLICE; kk++) acc[kk] *= alpha;
            if (valid) add_weighted(acc, pi, vs, n, lane);
            m = mnew;
        }
    if (!valid) return;
    store_slice(out, out_off + row_at(b, qpos, h, L, H), acc, 1.0f / l, lane);
    if (has_lse && lane == 0) lse[lse_off + (ulong)bh * (ulong)L + (ulong)qpos] = m + log(l);
}

// ---- backward ---------------------------------------------------------------
// delta_i = Σ_e dout_ie · out_ie (= Σ_j p_ij · dout_i·v_j): the group
// stages ROWS rows of dout and out (coalesced), then one item per row sums
// them in order of e — the order dot_local sums dout_i·v_j in, so a query
// with one key gets ds = p·(dp − delta) = 0 exactly. Global
// (ceil(L / ROWS)·GROUP, B·H).
__kernel __attribute__((reqd_work_group_size(GROUP, 1, 1))) void
attn_delta(__global float *delta, __global const float *dout, const ulong dout_off, __global const float *out,
           const ulong out_off, const int L, const int H) {
    __local float gs[ROWS * ROW], os[ROWS * ROW];
    int lid = (int)get_local_id(0), i = lid / SPLIT, first = (int)get_group_id(0) * ROWS;
    int bh = (int)get_global_id(1), b = bh / H, h = bh % H, n = min(ROWS, L - first);
    stage_rows(gs, dout, dout_off, b, first, n, h, L, H);
    stage_rows(os, out, out_off, b, first, n, h, L, H);
    barrier(CLK_LOCAL_MEM_FENCE);
    if (i < n && lid % SPLIT == 0)
        delta[(ulong)bh * (ulong)L + (ulong)(first + i)] = dot_local(gs + i * ROW, os + i * ROW);
}

// dq_i = scale · Σ_j ds_ij · k_j with ds_ij = p_ij·(f_ij·dout_i·v_j − delta_i)
// for unmasked logits (a replaced logit carries no gradient); f_ij is the
// dropout factor (1 without dropout) and delta_i = dout_i·out_i of the
// dropped output. Query rows are owned as in the forward; keys and values
// stream through local memory. Local memory: own q, dout [ROWS, ROW]; k, v
// [COLS, ROW]; the ds tile [ROWS, COLS]; key flags [COLS].
__kernel __attribute__((reqd_work_group_size(GROUP, 1, 1))) void
attn_backward_dq(__global float *dq, const ulong dq_off, __global const float *dout, const ulong dout_off,
                 __global const float *lse, const ulong lse_off, __global const float *delta, WINDOW_ARGS) {
    __local float qs[ROWS * ROW], gs[ROWS * ROW], ks[COLS * ROW], vs[COLS * ROW], dss[ROWS * COLS];
    __local int kok[COLS];
    int c, r0;
    group_rows(chunk, &c, &r0);
    int lid = (int)get_local_id(0), i = lid / SPLIT, lane = lid % SPLIT;
    int bh = (int)get_global_id(1), b = bh / H, h = bh % H;
    int nc = L / chunk, nq = min(ROWS, chunk - r0), qpos = c * chunk + r0 + i, valid = i < nq;
    stage_rows(qs, q, q_off, b, c * chunk + r0, nq, h, L, H); // read after stage_keys's barriers
    stage_rows(gs, dout, dout_off, b, c * chunk + r0, nq, h, L, H);
    __local const float *qi = qs + i * ROW, *gi = gs + i * ROW;
    __local float *di_s = dss + i * COLS;
    ulong lrow = (ulong)bh * (ulong)L + (ulong)qpos;
    float li = valid ? lse[lse_off + lrow] : 0.0f, di = valid ? delta[lrow] : 0.0f;
    float acc[SLICE];
    for (int kk = 0; kk < SLICE; kk++) acc[kk] = 0.0f;
    for (int s = -before; s <= after; s++)
        for (int t = 0; t < chunk; t += COLS) {
            int n = min(COLS, chunk - t), first = cyclic(c + s, nc) * chunk + t;
            if (all_future(causal, has_mask, c * chunk + r0 + nq - 1, first)) continue;
            stage_keys(ks, vs, kok, k, k_off, v, v_off, mask, mask_off, has_mask, b, first, n, h, L, H);
            for (int j = lane; valid && j < n; j += SPLIT) {
                int masked;
                float sj = masked_logit(dot_local(qi, ks + j * ROW) * scale, qpos, first + j, kok[j], causal,
                                        self_mask, &masked);
                float ds = 0.0f;
                if (!masked) {
                    float dp = dot_local(gi, vs + j * ROW);
                    if (dropout)
                        dp *= window_drop(philox, threshold, keep_scale, bh, qpos, L, chunk, before, after,
                                          (s + before) * chunk + t + j);
                    ds = exp(sj - li) * (dp - di);
                }
                di_s[j] = ds;
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            if (valid) add_weighted(acc, di_s, ks, n, lane);
        }
    if (valid) store_slice(dq, dq_off + row_at(b, qpos, h, L, H), acc, scale, lane);
}

// dv_j = Σ_i f_ij·p_ij · dout_i and dk_j = scale · Σ_i ds_ij · q_i (f, ds as
// in attn_backward_dq; key j is window key (s + before)·chunk + r of the
// queries that see it through slot s, r its row in its chunk). A work-group
// owns ROWS key rows of one key chunk kc; the queries that see them are those
// of chunks (kc − s) mod n_chunks for each window slot s (a chunk reached
// through two slots contributes twice, as in the forward). Their q, dout, lse
// and delta stream through local memory COLS rows at a time. Local memory:
// own k, v [ROWS, ROW]; q, dout [COLS, ROW]; lse, delta [COLS]; the f·p and
// ds tiles [ROWS, COLS].
__kernel __attribute__((reqd_work_group_size(GROUP, 1, 1))) void
attn_backward_dkdv(__global float *dk, const ulong dk_off, __global float *dv, const ulong dv_off,
                   __global const float *dout, const ulong dout_off, __global const float *lse, const ulong lse_off,
                   __global const float *delta, WINDOW_ARGS) {
    __local float ks[ROWS * ROW], vs[ROWS * ROW], qs[COLS * ROW], gs[COLS * ROW], ls[COLS], dts[COLS];
    __local float pds[ROWS * COLS], dss[ROWS * COLS];
    int c, r0;
    group_rows(chunk, &c, &r0);
    int lid = (int)get_local_id(0), i = lid / SPLIT, lane = lid % SPLIT, r = r0 + i;
    int bh = (int)get_global_id(1), b = bh / H, h = bh % H;
    int nc = L / chunk, nk = min(ROWS, chunk - r0), kpos = c * chunk + r, valid = i < nk;
    stage_rows(ks, k, k_off, b, c * chunk + r0, nk, h, L, H); // read after the first tile's barriers
    stage_rows(vs, v, v_off, b, c * chunk + r0, nk, h, L, H);
    __local const float *ki = ks + i * ROW, *vi = vs + i * ROW;
    __local float *pd_i = pds + i * COLS, *ds_i = dss + i * COLS;
    int key_ok = valid && key_is_token(mask, mask_off, has_mask, b, L, kpos);
    float inv_n = 1.0f / (float)((before + 1 + after) * chunk);
    float dka[SLICE], dva[SLICE];
    for (int kk = 0; kk < SLICE; kk++) dka[kk] = dva[kk] = 0.0f;
    for (int s = -before; s <= after; s++)
        for (int t = 0; t < chunk; t += COLS) {
            int n = min(COLS, chunk - t), first = cyclic(c - s, nc) * chunk + t;
            if (all_future(causal, has_mask, first + n - 1, c * chunk + r0)) continue;
            barrier(CLK_LOCAL_MEM_FENCE); // the previous tile is consumed
            stage_rows(qs, q, q_off, b, first, n, h, L, H);
            stage_rows(gs, dout, dout_off, b, first, n, h, L, H);
            for (int u = lid; u < n; u += GROUP) {
                ulong lrow = (ulong)bh * (ulong)L + (ulong)(first + u);
                ls[u] = lse[lse_off + lrow];
                dts[u] = delta[lrow];
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            for (int j = lane; valid && j < n; j += SPLIT) { // query j of the tile
                int masked;
                float sij = masked_logit(dot_local(ki, qs + j * ROW) * scale, first + j, kpos, key_ok, causal,
                                         self_mask, &masked);
                float dp = dot_local(vi, gs + j * ROW);
                float p = ls[j] < FULLY_MASKED ? inv_n : exp(sij - ls[j]), pd = p;
                if (dropout) {
                    float f = window_drop(philox, threshold, keep_scale, bh, first + j, L, chunk, before, after,
                                          (s + before) * chunk + r);
                    pd *= f;
                    dp *= f;
                }
                pd_i[j] = pd;
                ds_i[j] = masked ? 0.0f : p * (dp - dts[j]);
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            if (valid) {
                add_weighted(dva, pd_i, gs, n, lane);
                add_weighted(dka, ds_i, qs, n, lane);
            }
        }
    if (!valid) return;
    ulong at = row_at(b, kpos, h, L, H);
    store_slice(dk, dk_off + at, dka, scale, lane);
    store_slice(dv, dv_off + at, dva, 1.0f, lane);
}

#endif // CPU_SHAPE
