// Cached incremental decoding's attention (src/ops/decode_attention.h,
// docs/decode.md): one new position per sequence. One work-group per
// (batch, head) — per (batch, head, round) for the sort — walks the cached
// positions; nothing is read back by the host. Built with -DHEAD_DIM=d
// -DMAX_HEAD_DIM (rf_cl_attn_options). Window arrays are __local, sized by
// the host: at most 2·m keys (m ≤ 256).
#include "attention_common.cl"

// §3: argmax over [x, −x] (2·n values, staged in local memory) with ties to
// the lowest index.
inline int argmax_pm_local(__local const float *x, int n) {
    int best = 0;
    float bv = x[0];
    for (int j = 1; j < n; j++)
        if (x[j] > bv) { bv = x[j]; best = j; }
    for (int j = 0; j < n; j++)
        if (-x[j] > bv) { bv = -x[j]; best = n + j; }
    return best;
}

// §3: the bucket of the row x (HEAD_DIM values, global) of head h, round r,
// under rotations [H, d, R, rc]: the rc products into `rot` by the group,
// then the argmax by work-item 0 into *id (+ r·stride). Every work-item of
// the group must call it.
inline void hash_row(__global const float *x, __global const float *rotations, int h, int r, int R, int rc,
                     int f1, int f2, int stride, __local float *rot, __local int *id) {
    const int G = (int)get_local_size(0), lid = (int)get_local_id(0);
    for (int c = lid; c < rc; c += G) {
        float acc = 0.0f;
        for (int e = 0; e < HEAD_DIM; e++) acc += x[e] * rotations[(((size_t)h * HEAD_DIM + e) * R + r) * rc + c];
        rot[c] = acc;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid == 0)
        *id = (f2 ? argmax_pm_local(rot, f1 / 2) + f1 * argmax_pm_local(rot + f1 / 2, f2 / 2)
                  : argmax_pm_local(rot, f1 / 2)) + r * stride;
    barrier(CLK_LOCAL_MEM_FENCE);
}

// §5.5: the logsumexp of the group's n logits s (written by the group
// before the call), through *lse_l; every work-item of the group calls it.
inline float window_lse(__local const float *s, int n, __local float *lse_l) {
    barrier(CLK_LOCAL_MEM_FENCE);
    if (get_local_id(0) == 0) {
        float mx = RUNNING_MAX_INIT, sum = 0.0f;
        for (int w = 0; w < n; w++) mx = fmax(mx, s[w]);
        for (int w = 0; w < n; w++) sum += exp(s[w] - mx);
        *lse_l = mx + log(sum);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    return *lse_l;
}

// §5: o (into o_out, HEAD_DIM values) and the logsumexp (returned) of the
// query q over the cached positions pos[0..n): keys normalised (§5.2), the
// self mask on `self` (§5.4), p = exp(s − lse) as HF (§5.5).
inline float attend_window(__global const float *qk, __global const float *v, size_t row_stride, __local const float *q,
                           __local const int *pos, int n, int self, __local float *s, __local float *o_out,
                           __local float *lse_l) {
    const int G = (int)get_local_size(0), lid = (int)get_local_id(0);
    for (int w = lid; w < n; w += G) {
        __global const float *k = qk + (size_t)pos[w] * row_stride;
        float dot = 0.0f, ss = 0.0f;
        for (int e = 0; e < HEAD_DIM; e++) {
            dot += q[e] * k[e];
            ss += k[e] * k[e];
        }
        int masked;
        s[w] = masked_logit(dot * key_scale(ss), 0, pos[w] == self ? 0 : 1, 1, 0, 1, &masked);
    }
    const float lse = window_lse(s, n, lse_l);
    for (int e = lid; e < HEAD_DIM; e += G) {
        float acc = 0.0f;
        for (int w = 0; w < n; w++) acc += exp(s[w] - lse) * v[(size_t)pos[w] * row_stride + e];
        o_out[e] = acc;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    return lse;
}

// One group per (b, h). qk_c, v_c [B, cap, H·d]; ids, from, to [B, H, R, cap];
// qk, v, out [B, H·d]; rotations [H, d, R, rc] (hashed only). Local: s and
// pos [window], q [d], o [R·d], lse [R], rot [rc], id, at.
__kernel void lsh_cache_attend(__global float *qk_c, __global float *v_c, const ulong qk_off, const ulong v_off,
                               __global int *ids, __global const int *from, __global int *to, const ulong ids_off,
                               const ulong from_off, const ulong to_off, __global const float *qk,
                               __global const float *v, __global float *out, const ulong qn_off, const ulong vn_off,
                               const ulong out_off, __global const float *rotations, const ulong rot_off,
                               const int H, const int R, const int cap, const int P, const int m, const int f1,
                               const int f2, const int rc, const int stride, const int hashed, __local float *s,
                               __local int *pos, __local float *q, __local float *o, __local float *lse,
                               __local float *rot, __local int *scal) {
    const int G = (int)get_local_size(0), lid = (int)get_local_id(0);
    const int b = (int)get_group_id(0) / H, h = (int)get_group_id(0) % H, S = P + 1;
    const size_t HD = (size_t)H * HEAD_DIM, row = (size_t)b * cap * HD + (size_t)h * HEAD_DIM;
    __global float *QK = qk_c + qk_off + row, *V = v_c + v_off + row;
    // Append this head's slice of the new row, and stage the query.
    for (int e = lid; e < HEAD_DIM; e += G) {
        QK[(size_t)P * HD + e] = qk[qn_off + b * HD + (size_t)h * HEAD_DIM + e];
        V[(size_t)P * HD + e] = v[vn_off + b * HD + (size_t)h * HEAD_DIM + e];
        q[e] = qk[qn_off + b * HD + (size_t)h * HEAD_DIM + e];
    }
    barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE);
    __global float *y = out + out_off + b * HD + (size_t)h * HEAD_DIM;
    if (!hashed) { // no buckets yet: every position
        for (int j = lid; j < S; j += G) pos[j] = j;
        barrier(CLK_LOCAL_MEM_FENCE);
        attend_window(QK, V, HD, q, pos, S, P, s, o, lse);
        for (int e = lid; e < HEAD_DIM; e += G) y[e] = o[e];
        return;
    }
    __global const float *rt = rotations + rot_off;
    for (int r = 0; r < R; r++) {
        const size_t seg = ((size_t)(b * H + h) * R + r) * cap;
        __global int *id_r = ids + ids_off + seg, *to_r = to + to_off + seg;
        __global const int *from_r = from + from_off + seg;
        hash_row(QK + (size_t)P * HD, rt, h, r, R, rc, f1, f2, stride, rot, &scal[0]);
        const int id = scal[0];
        // The stable order puts the newest position after every equal id.
        if (lid == 0) scal[1] = 0;
        barrier(CLK_LOCAL_MEM_FENCE);
        int mine = 0;
        for (int j = lid; j < P; j += G) mine += id_r[j] <= id;
        atomic_add(&scal[1], mine);
        barrier(CLK_LOCAL_MEM_FENCE);
        const int at = scal[1];
        for (int t = lid; t < S; t += G) to_r[t] = t < at ? from_r[t] : t == at ? P : from_r[t - 1];
        if (lid == 0) id_r[P] = id;
        barrier(CLK_GLOBAL_MEM_FENCE);
        // Its chunk of sorted slots and the one before, modulo S (§4).
        const int lo = (at / m - 1) * m;
        for (int w = lid; w < 2 * m; w += G) pos[w] = to_r[((lo + w) % S + S) % S];
        barrier(CLK_LOCAL_MEM_FENCE);
        attend_window(QK, V, HD, q, pos, 2 * m, P, s, o + r * HEAD_DIM, lse + r);
    }
    // §5.6: the rounds weighted by the softmax of their lse.
    float mx = RUNNING_MAX_INIT, sum = 0.0f;
    for (int r = 0; r < R; r++) mx = fmax(mx, lse[r]);
    for (int r = 0; r < R; r++) sum += exp(lse[r] - mx);
    for (int e = lid; e < HEAD_DIM; e += G) {
        float acc = 0.0f;
        for (int r = 0; r < R; r++) acc += exp(lse[r] - mx) / sum * o[r * HEAD_DIM + e];
        y[e] = acc;
    }
}

// One group per (b, h, r): with `rehash`, ids of positions [0, L) from the
// cached qk (round offset r·nb); then perm[slot] = position in (id,
// position) order, by counting each position's rank.
__kernel void lsh_cache_sort(__global const float *qk_c, const ulong qk_off, __global int *ids, __global int *perm,
                             const ulong ids_off, const ulong perm_off, __global const float *rotations,
                             const ulong rot_off, const int H, const int R, const int cap, const int L, const int f1,
                             const int f2, const int rc, const int nb, const int rehash) {
    const int G = (int)get_local_size(0), lid = (int)get_local_id(0), g = (int)get_group_id(0);
    const int r = g % R, h = g / R % H, b = g / R / H;
    const size_t HD = (size_t)H * HEAD_DIM, seg = (size_t)g * cap;
    __global int *id = ids + ids_off + seg, *pm = perm + perm_off + seg;
    if (rehash) {
        __global const float *rt = rotations + rot_off;
        for (int j = lid; j < L; j += G) {
            __global const float *x = qk_c + qk_off + ((size_t)b * cap + j) * HD + (size_t)h * HEAD_DIM;
            int bucket = 0, half_off = 0, prod = 1;
            for (int f = 0; f < (f2 ? 2 : 1); f++) {
                const int hn = (f ? f2 : f1) / 2;
                float best = 0.0f, best_neg = 0.0f;
                int bi = 0, bn = 0;
                for (int c = 0; c < hn; c++) {
                    float acc = 0.0f;
                    for (int e = 0; e < HEAD_DIM; e++)
                        acc += x[e] * rt[(((size_t)h * HEAD_DIM + e) * R + r) * rc + half_off + c];
                    if (c == 0 || acc > best) { best = acc; bi = c; }
                    if (c == 0 || -acc > best_neg) { best_neg = -acc; bn = c; }
                }
                // argmax over [x, −x], ties to the lowest index (§3)
                bucket += prod * (best_neg > best ? hn + bn : bi);
                prod *= 2 * hn;
                half_off += hn;
            }
            id[j] = bucket + r * nb;
        }
        barrier(CLK_GLOBAL_MEM_FENCE);
    }
    for (int j = lid; j < L; j += G) {
        const int k = id[j];
        int rank = 0;
        for (int i = 0; i < L; i++) rank += id[i] < k || (id[i] == k && i < j);
        pm[rank] = j;
    }
}

// One group per (b, h): k, v [B, H·d] into ring row pos mod W of
// k_ring, v_ring [B, W, H·d] (W = 2m), then out = softmax(q·kᵀ/√d)·v over
// positions [(⌊pos/m⌋ − 1)·m, pos] (from 0 when pos < m), unmasked (§6).
__kernel void local_cache_attend(__global float *out, __global float *k_ring, __global float *v_ring,
                                 __global const float *q, __global const float *k, __global const float *v,
                                 const ulong out_off, const ulong kr_off, const ulong vr_off, const ulong q_off,
                                 const ulong k_off, const ulong v_off, const int H, const int pos, const int m,
                                 __local float *s, __local float *lse_l) {
    const int G = (int)get_local_size(0), lid = (int)get_local_id(0);
    const int b = (int)get_group_id(0) / H, h = (int)get_group_id(0) % H, W = 2 * m;
    const size_t HD = (size_t)H * HEAD_DIM, hoff = (size_t)h * HEAD_DIM;
    __global float *KR = k_ring + kr_off + (size_t)b * W * HD + hoff, *VR = v_ring + vr_off + (size_t)b * W * HD + hoff;
    __global const float *qh = q + q_off + b * HD + hoff;
    for (int e = lid; e < HEAD_DIM; e += G) {
        KR[(size_t)(pos % W) * HD + e] = k[k_off + b * HD + hoff + e];
        VR[(size_t)(pos % W) * HD + e] = v[v_off + b * HD + hoff + e];
    }
    barrier(CLK_GLOBAL_MEM_FENCE);
    const int start = pos >= m ? (pos / m - 1) * m : 0, n = pos - start + 1;
    const float scale = rsqrt((float)HEAD_DIM);
    for (int w = lid; w < n; w += G) {
        __global const float *kj = KR + (size_t)((start + w) % W) * HD;
        float dot = 0.0f;
        for (int e = 0; e < HEAD_DIM; e++) dot += qh[e] * (kj[e] * scale);
        s[w] = dot;
    }
    const float lse = window_lse(s, n, lse_l);
    for (int e = lid; e < HEAD_DIM; e += G) {
        float acc = 0.0f;
        for (int w = 0; w < n; w++) acc += exp(s[w] - lse) * VR[(size_t)((start + w) % W) * HD + e];
        out[out_off + b * HD + hoff + e] = acc;
    }
}
