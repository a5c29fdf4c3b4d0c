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
// Work decomposition. A work-group owns G = get_local_size(0) consecutive
// rows of ONE chunk (so all its rows share one window), one work-item per
// row: queries in the forward and dq kernels, keys in the dk/dv kernel —
// each output row has exactly one writer, so no atomics are needed. The
// other side streams through local memory TILE rows at a time. Global size
// dim 0 = n_chunks · ceil(chunk / G) · G, dim 1 = B·H.
//
// Defines: HEAD_DIM (d), MAX_HEAD_DIM, TILE (rows staged per step; the host
// sizes it from the device's local memory). Masks (§5.4), the optional mask
// and lse buffers and the dropout arguments: attention_common.cl.
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

// This work-item's chunk and row within it.
inline void my_row(int chunk, int *c, int *r) {
    int tiles = (chunk + (int)get_local_size(0) - 1) / (int)get_local_size(0);
    *c = (int)get_group_id(0) / tiles;
    *r = ((int)get_group_id(0) % tiles) * (int)get_local_size(0) + (int)get_local_id(0);
}

// Chunk c of nc, taken cyclically (HF _look_adjacent): c may be negative.
inline int cyclic(int c, int nc) { return (c % nc + nc) % nc; }

// Stage rows [first, first + n) of (b, head h) from x and y into two
// [TILE, HEAD_DIM] local blocks. Rows past n are left alone (never read).
inline void stage_rows(__local float *xs, __local float *ys, __global const float *x, ulong x_off,
                       __global const float *y, ulong y_off, int b, int first, int n, int h, int L, int H) {
    int lid = (int)get_local_id(0), g = (int)get_local_size(0);
    for (int idx = lid; idx < n * HEAD_DIM; idx += g) {
        int rr = idx / HEAD_DIM, e = idx % HEAD_DIM;
        ulong at = row_at(b, first + rr, h, L, H) + (ulong)e;
        xs[idx] = x[x_off + at];
        ys[idx] = y[y_off + at];
    }
}

// Stage keys [first, first + n) of (b, head h) for the forward and dq
// kernels: k and v rows and whether each is a token. Every work-item calls it
// (it holds the barriers around the tile).
inline void stage_keys(__local float *ks, __local float *vs, __local int *kok, __global const float *k, ulong k_off,
                       __global const float *v, ulong v_off, MASK_ARGS, int b, int first, int n, int h, int L, int H) {
    barrier(CLK_LOCAL_MEM_FENCE); // the previous tile is consumed
    stage_rows(ks, vs, k, k_off, v, v_off, b, first, n, h, L, H);
    for (int rr = (int)get_local_id(0); rr < n; rr += (int)get_local_size(0))
        kok[rr] = key_is_token(mask, mask_off, has_mask, b, L, first + rr);
    barrier(CLK_LOCAL_MEM_FENCE);
}

// The inputs every window kernel reads, in this order (after its outputs
// and before its local memory): q, k, v, the optional padding mask, the
// window (sequence length, heads, chunk, chunks before / after, causal,
// self mask, logit scale) and the dropout arguments.
#define WINDOW_ARGS                                                                                                  \
    __global const float *q, const ulong q_off, __global const float *k, const ulong k_off, __global const float *v, \
        const ulong v_off, MASK_ARGS, const int L, const int H, const int chunk, const int before, const int after,  \
        const int causal, const int self_mask, const float scale, DROPOUT_ARGS

// ---- forward: out, and lse when has_lse -----------------------------------
__kernel void attn_forward(__global float *out, const ulong out_off, __global float *lse, const ulong lse_off,
                           const int has_lse, WINDOW_ARGS, __local float *ks, __local float *vs, __local int *kok) {
    int c, r;
    my_row(chunk, &c, &r);
    int bh = (int)get_global_id(1), b = bh / H, h = bh % H;
    int nc = L / chunk, qpos = c * chunk + r, valid = r < chunk;
    float qv[HEAD_DIM], acc[HEAD_DIM], sc[TILE];
    for (int e = 0; e < HEAD_DIM; e++) {
        qv[e] = valid ? q[q_off + row_at(b, qpos, h, L, H) + (ulong)e] : 0.0f;
        acc[e] = 0.0f;
    }
    float m = RUNNING_MAX_INIT, l = 0.0f;
    for (int s = -before; s <= after; s++)
        for (int t = 0; t < chunk; t += TILE) {
            int n = min(TILE, chunk - t), first = cyclic(c + s, nc) * chunk + t;
            stage_keys(ks, vs, kok, k, k_off, v, v_off, mask, mask_off, has_mask, b, first, n, h, L, H);
            if (!valid) continue; // (but on to the next tile's barriers)
            float tmax = RUNNING_MAX_INIT;
            for (int j = 0; j < n; j++) {
                int masked;
                sc[j] = masked_logit(dot_staged(qv, ks + j * HEAD_DIM) * scale, qpos, first + j, kok[j], causal,
                                     self_mask, &masked);
                tmax = fmax(tmax, sc[j]);
            }
            float mnew = fmax(m, tmax), alpha = exp(m - mnew);
            l *= alpha;
            for (int e = 0; e < HEAD_DIM; e++) acc[e] *= alpha;
            for (int j = 0; j < n; j++) {
                float p = exp(sc[j] - mnew);
                l += p;
                if (dropout)
                    p *= window_drop(philox, threshold, keep_scale, bh, qpos, L, chunk, before, after,
                                     (s + before) * chunk + t + j);
                for (int e = 0; e < HEAD_DIM; e++) acc[e] += p * vs[j * HEAD_DIM + e];
            }
            m = mnew;
        }
    if (!valid) return;
    float inv = 1.0f / l;
    for (int e = 0; e < HEAD_DIM; e++) out[out_off + row_at(b, qpos, h, L, H) + (ulong)e] = acc[e] * inv;
    if (has_lse) lse[lse_off + (ulong)bh * (ulong)L + (ulong)qpos] = m + log(l);
}

// ---- backward ---------------------------------------------------------------
// delta_i = Σ_e dout_ie · out_ie (= Σ_j p_ij · dout_i·v_j), one work-item per
// (row, head); global (L, B·H).
__kernel void attn_delta(__global float *delta, __global const float *dout, const ulong dout_off,
                         __global const float *out, const ulong out_off, const int L, const int H) {
    int pos = (int)get_global_id(0), bh = (int)get_global_id(1);
    if (pos >= L) return;
    ulong at = row_at(bh / H, pos, bh % H, L, H);
    float s = 0.0f;
    for (int e = 0; e < HEAD_DIM; e++) s += dout[dout_off + at + (ulong)e] * out[out_off + at + (ulong)e];
    delta[(ulong)bh * (ulong)L + (ulong)pos] = s;
}

// dq_i = scale · Σ_j ds_ij · k_j with ds_ij = p_ij·(f_ij·dout_i·v_j − delta_i)
// for unmasked logits (a replaced logit carries no gradient); f_ij is the
// dropout factor (1 without dropout) and delta_i = dout_i·out_i of the
// dropped output. Query rows are owned as in the forward; keys and values
// stream through local memory.
__kernel void attn_backward_dq(__global float *dq, const ulong dq_off, __global const float *dout,
                               const ulong dout_off, __global const float *lse, const ulong lse_off,
                               __global const float *delta, WINDOW_ARGS, __local float *ks, __local float *vs,
                               __local int *kok) {
    int c, r;
    my_row(chunk, &c, &r);
    int bh = (int)get_global_id(1), b = bh / H, h = bh % H;
    int nc = L / chunk, qpos = c * chunk + r, valid = r < chunk;
    float qv[HEAD_DIM], go[HEAD_DIM], acc[HEAD_DIM];
    ulong at = row_at(b, qpos, h, L, H);
    for (int e = 0; e < HEAD_DIM; e++) {
        qv[e] = valid ? q[q_off + at + (ulong)e] : 0.0f;
        go[e] = valid ? dout[dout_off + at + (ulong)e] : 0.0f;
        acc[e] = 0.0f;
    }
    ulong lrow = (ulong)bh * (ulong)L + (ulong)qpos;
    float li = valid ? lse[lse_off + lrow] : 0.0f, di = valid ? delta[lrow] : 0.0f;
    for (int s = -before; s <= after; s++)
        for (int t = 0; t < chunk; t += TILE) {
            int n = min(TILE, chunk - t), first = cyclic(c + s, nc) * chunk + t;
            stage_keys(ks, vs, kok, k, k_off, v, v_off, mask, mask_off, has_mask, b, first, n, h, L, H);
            for (int j = 0; valid && j < n; j++) {
                int masked;
                float sj = masked_logit(dot_staged(qv, ks + j * HEAD_DIM) * scale, qpos, first + j, kok[j], causal,
                                        self_mask, &masked);
                if (masked) continue;
                float dp = dot_staged(go, vs + j * HEAD_DIM);
                if (dropout)
                    dp *= window_drop(philox, threshold, keep_scale, bh, qpos, L, chunk, before, after,
                                      (s + before) * chunk + t + j);
                float ds = exp(sj - li) * (dp - di);
                for (int e = 0; e < HEAD_DIM; e++) acc[e] += ds * ks[j * HEAD_DIM + e];
            }
        }
    if (!valid) return;
    for (int e = 0; e < HEAD_DIM; e++) dq[dq_off + at + (ulong)e] = acc[e] * scale;
}

// dv_j = Σ_i f_ij·p_ij · dout_i and dk_j = scale · Σ_i ds_ij · q_i (f, ds as
// in attn_backward_dq; key j is window key (s + before)·chunk + r of the
// queries that see it through slot s, r its row in its chunk). A work-group
// owns G key rows of one key chunk kc; the queries that see them are those of
// chunks (kc − s) mod n_chunks for each window slot s (a chunk reached through
// two slots contributes twice, as in the forward). Their q, dout, lse and
// delta stream through local memory.
__kernel void attn_backward_dkdv(__global float *dk, const ulong dk_off, __global float *dv, const ulong dv_off,
                                 __global const float *dout, const ulong dout_off, __global const float *lse,
                                 const ulong lse_off, __global const float *delta, WINDOW_ARGS,
                                 __local float *qs, __local float *gs, __local float *ls, __local float *dts) {
    int c, r;
    my_row(chunk, &c, &r);
    int bh = (int)get_global_id(1), b = bh / H, h = bh % H;
    int nc = L / chunk, kpos = c * chunk + r, valid = r < chunk;
    float kv[HEAD_DIM], vv[HEAD_DIM], dka[HEAD_DIM], dva[HEAD_DIM];
    ulong at = row_at(b, kpos, h, L, H);
    for (int e = 0; e < HEAD_DIM; e++) {
        kv[e] = valid ? k[k_off + at + (ulong)e] : 0.0f;
        vv[e] = valid ? v[v_off + at + (ulong)e] : 0.0f;
        dka[e] = 0.0f;
        dva[e] = 0.0f;
    }
    int key_ok = valid && key_is_token(mask, mask_off, has_mask, b, L, kpos);
    int lid = (int)get_local_id(0), g = (int)get_local_size(0);
    float inv_n = 1.0f / (float)((before + 1 + after) * chunk);
    for (int s = -before; s <= after; s++)
        for (int t = 0; t < chunk; t += TILE) {
            int n = min(TILE, chunk - t), first = cyclic(c - s, nc) * chunk + t;
            barrier(CLK_LOCAL_MEM_FENCE); // the previous tile is consumed
            stage_rows(qs, gs, q, q_off, dout, dout_off, b, first, n, h, L, H);
            for (int i = lid; i < n; i += g) {
                ulong lrow = (ulong)bh * (ulong)L + (ulong)(first + i);
                ls[i] = lse[lse_off + lrow];
                dts[i] = delta[lrow];
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            for (int i = 0; valid && i < n; i++) {
                int masked;
                float sij = masked_logit(dot_staged(kv, qs + i * HEAD_DIM) * scale, first + i, kpos, key_ok, causal,
                                         self_mask, &masked);
                float dp = dot_staged(vv, gs + i * HEAD_DIM);
                float p = ls[i] < FULLY_MASKED ? inv_n : exp(sij - ls[i]), pd = p;
                if (dropout) {
                    float f = window_drop(philox, threshold, keep_scale, bh, first + i, L, chunk, before, after,
                                          (s + before) * chunk + r);
                    pd *= f;
                    dp *= f;
                }
                for (int e = 0; e < HEAD_DIM; e++) dva[e] += pd * gs[i * HEAD_DIM + e];
                if (masked) continue;
                float dsij = p * (dp - dts[i]);
                for (int e = 0; e < HEAD_DIM; e++) dka[e] += dsij * qs[i * HEAD_DIM + e];
            }
        }
    if (!valid) return;
    for (int e = 0; e < HEAD_DIM; e++) {
        dk[dk_off + at + (ulong)e] = dka[e] * scale;
        dv[dv_off + at + (ulong)e] = dva[e];
    }
}
