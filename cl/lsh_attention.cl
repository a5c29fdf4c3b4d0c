// LSH self-attention, forward (§3–§5): buckets from x·R, a per-round
// stable counting sort, fused in-chunk attention with an online softmax, and
// the combination of the rounds. Built with -DHEAD_DIM=d -DMAX_HEAD_DIM;
// masks, the key normalisation, the optional mask and the dropout arguments
// come from attention_common.cl.
// Layout: qk, v, out [B, L, H·d] (head h = columns [h·d, (h+1)·d)); the
// state's buckets, perm, undo, lse [B, H, R·L], o [B, H, R·L, d]; item
// i = r·L + t of a (batch, head) is position t of round r. Dropout (§2):
// query row = sorted slot i of N = R·L, width W = its window's keys (chunk
// c−1 then c: 2m, or m with one chunk), as src/device/cpu/lsh_attention.c.
#include "attention_common.cl"

// §3: argmax over [r, −r] (2·n values) with ties to the lowest index.
int argmax_pm(__global const float *r, int n) {
    int best = 0;
    float bv = r[0];
    for (int j = 1; j < n; j++)
        if (r[j] > bv) { bv = r[j]; best = j; }
    for (int j = 0; j < n; j++)
        if (-r[j] > bv) { bv = -r[j]; best = n + j; }
    return best;
}

// One work-item per item (b, h, r, t). rotated: [H, B·L, R·rc] (x·R from
// rf_gemm). f2 = 0: one block of f1 = nb buckets; else factorised, HF's
// layout: columns [0, f1/2) then [f1/2, f1/2 + f2/2) of each round.
// Padded items (mask 0) go to bucket nb; round offsets use `stride`.
__kernel void lsh_buckets(__global const float *rotated, __global int *buckets, MASK_ARGS, const int B,
                          const int L, const int H, const int R, const int rc, const int f1, const int f2,
                          const int nb, const int stride) {
    size_t gid = get_global_id(0);
    if (gid >= (size_t)B * H * R * L) return;
    int t = (int)(gid % L);
    int r = (int)(gid / L % R);
    int h = (int)(gid / ((size_t)L * R) % H);
    int b = (int)(gid / ((size_t)L * R * H));
    __global const float *x = rotated + ((size_t)h * B * L + (size_t)b * L + t) * R * rc + (size_t)r * rc;
    int bucket = f2 ? argmax_pm(x, f1 / 2) + f1 * argmax_pm(x + f1 / 2, f2 / 2) : argmax_pm(x, f1 / 2);
    if (!key_is_token(mask, mask_off, has_mask, b, L, t)) bucket = nb;
    buckets[gid] = bucket + r * stride; // gid = ((b·H + h)·R + r)·L + t
}

// §4: one work-group per (batch, head, round): the round's L items have ids
// r·stride + [0, stride) and sorted slots r·L + [0, L), so rounds sort
// independently. Histogram (local atomics), exclusive scan, then a stable
// scatter tile by tile: an item's slot is its bucket's running offset plus
// the number of earlier items of its tile in the same bucket. Local memory:
// count[stride], tile[G], part[G] (checked by rf_cl_lsh_plan).
__kernel void lsh_sort(__global const int *buckets, __global int *perm, __global int *undo, const int L,
                       const int R, const int stride, __local int *count, __local int *tile, __local int *part) {
    const int G = (int)get_local_size(0), lid = (int)get_local_id(0);
    const int seg = (int)get_group_id(0), r = seg % R;
    const size_t base = (size_t)(seg / R) * R * L; // this (batch, head)'s items
    __global const int *key = buckets + base + (size_t)r * L;
    const int key0 = r * stride;
    for (int k = lid; k < stride; k += G) count[k] = 0;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int t = lid; t < L; t += G) atomic_inc(&count[key[t] - key0]);
    barrier(CLK_LOCAL_MEM_FENCE);
    // Exclusive scan: each work-item sums a span of counters, work-item 0
    // scans the G partial sums, then each span is rewritten as offsets.
    const int span = (stride + G - 1) / G, k0 = min(stride, lid * span), k1 = min(stride, k0 + span);
    int sum = 0;
    for (int k = k0; k < k1; k++) sum += count[k];
    part[lid] = sum;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid == 0) {
        int run = r * L;
        for (int i = 0; i < G; i++) {
            int c = part[i];
            part[i] = run;
            run += c;
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    int run = part[lid];
    for (int k = k0; k < k1; k++) {
        int c = count[k];
        count[k] = run;
        run += c;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int t0 = 0; t0 < L; t0 += G) {
        const int t = t0 + lid;
        const int k = t < L ? key[t] - key0 : -1;
        tile[lid] = k;
        barrier(CLK_LOCAL_MEM_FENCE);
        int before = 0, after = 0;
        for (int j = 0; j < G; j++) {
            int same = tile[j] == k;
            before += same && j < lid;
            after += same && j > lid;
        }
        int slot = 0;
        if (k >= 0) {
            slot = count[k] + before;
            perm[base + slot] = r * L + t;
            undo[base + (size_t)r * L + t] = slot;
        }
        barrier(CLK_LOCAL_MEM_FENCE); // every offset read before any update
        if (k >= 0 && after == 0) count[k] = slot + 1;
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

// A work-group of lsh_attend and the backward's query and key kernels: chunk
// c (of nc) of the m-item sorted chunks of (batch, head) bh = b·H + h. Its
// window (§5.3) is chunk c−1 (cyclic) then chunk c, nkeys = 2m keys, or
// chunk c alone (m keys) when there is one chunk (§5.7); the queries that
// see chunk c's keys are, likewise, chunk c's then chunk c+1's.
typedef struct lsh_chunk {
    int L, H, N, m; // sequence length, heads, sorted items R·L, chunk length
    int nc, c, bh, b, h, nkeys;
} lsh_chunk;

inline lsh_chunk chunk_of_group(int L, int H, int N, int m) {
    lsh_chunk ch;
    ch.L = L, ch.H = H, ch.N = N, ch.m = m, ch.nc = N / m;
    ch.c = (int)get_group_id(0) % ch.nc, ch.bh = (int)get_group_id(0) / ch.nc;
    ch.b = ch.bh / H, ch.h = ch.bh % H;
    ch.nkeys = ch.nc > 1 ? 2 * m : m;
    return ch;
}

// The sorted slot of the chunk's window key j (chunk c−1, then c).
inline int key_slot(const lsh_chunk *ch, int j) {
    if (ch->nc == 1) return ch->c * ch->m + j;
    return j < ch->m ? (ch->c + ch->nc - 1) % ch->nc * ch->m + j : ch->c * ch->m + j - ch->m;
}

// The sorted slot of query i of those that see the chunk's keys (chunk c's,
// then chunk c+1's).
inline int query_slot(const lsh_chunk *ch, int i) {
    return i < ch->m ? ch->c * ch->m + i : (ch->c + 1) % ch->nc * ch->m + i - ch->m;
}

// Stage window keys [k0, k0 + nt), nt = min(T, nkeys − k0), into local
// memory: each key's position, whether it is a token, raw qk and v rows, and
// its §5.2 scale. Returns nt. Shared by the forward attend and the backward
// query kernels; every work-item of the group calls it (it holds barriers).
int stage_keys(const lsh_chunk *ch, const int k0, const int T, __global const int *P, __global const float *qk,
               const ulong qk_off, __global const float *v, const ulong v_off, MASK_ARGS, __local float *kt,
               __local float *vt, __local float *ks, __local int *kp, __local int *kok) {
    const int G = (int)get_local_size(0), lid = (int)get_local_id(0), nt = min(T, ch->nkeys - k0);
    barrier(CLK_LOCAL_MEM_FENCE); // the previous tile is consumed
    for (int j = lid; j < nt; j += G) {
        kp[j] = P[key_slot(ch, k0 + j)] % ch->L;
        kok[j] = key_is_token(mask, mask_off, has_mask, ch->b, ch->L, kp[j]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int x = lid; x < nt * HEAD_DIM; x += G) {
        int j = x / HEAD_DIM, e = x % HEAD_DIM;
        ulong at = row_at(ch->b, kp[j], ch->h, ch->L, ch->H) + (ulong)e;
        kt[x] = qk[qk_off + at];
        vt[x] = v[v_off + at];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int j = lid; j < nt; j += G) {
        float ss = 0.0f;
        for (int e = 0; e < HEAD_DIM; e++) ss += kt[j * HEAD_DIM + e] * kt[j * HEAD_DIM + e];
        ks[j] = key_scale(ss);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    return nt;
}

// The §5.4-masked logit of private query row q (at qpos) for staged key j:
// q·k_j = (q·raw qk_j)·(its §5.2 scale).
inline float staged_logit(const float *q, int qpos, int j, __local const float *kt, __local const float *ks,
                          __local const int *kp, __local const int *kok, int causal, int *masked) {
    return masked_logit(dot_staged(q, kt + j * HEAD_DIM) * ks[j], qpos, kp[j], kok[j], causal, 1, masked);
}

// §5.2–5.5: one work-group per (batch, head, chunk c) of m sorted items.
// Keys: the chunk's window (lsh_chunk), streamed through local memory T keys
// at a time (raw qk, v, the key's §5.2 scale, position, token flag). Each
// work-item owns a query (looping when m > G) and keeps an online softmax:
// running max, sum and output in private memory; no score matrix is ever
// stored.
__kernel void lsh_attend(__global const float *qk, const ulong qk_off, __global const float *v, const ulong v_off,
                         MASK_ARGS, __global const int *perm, __global float *o, __global float *lse, const int L,
                         const int H, const int N, const int m, const int causal, const int hf, DROPOUT_ARGS,
                         const int T, __local float *kt, __local float *vt, __local float *ks, __local int *kp,
                         __local int *kok) {
    const lsh_chunk ch = chunk_of_group(L, H, N, m);
    __global const int *P = perm + (size_t)ch.bh * N;
    for (int q0 = 0; q0 < m; q0 += (int)get_local_size(0)) {
        const int qi = q0 + (int)get_local_id(0), active = qi < m;
        const int qslot = ch.c * m + qi, qpos = active ? P[qslot] % L : 0;
        float q[HEAD_DIM], acc[HEAD_DIM];
        for (int e = 0; e < HEAD_DIM; e++) {
            q[e] = active ? qk[qk_off + row_at(ch.b, qpos, ch.h, L, H) + (ulong)e] : 0.0f;
            acc[e] = 0.0f;
        }
        float mx = RUNNING_MAX_INIT, l = 0.0f;
        for (int k0 = 0, nt; k0 < ch.nkeys; k0 += nt) { // nt keys staged per step
            nt = stage_keys(&ch, k0, T, P, qk, qk_off, v, v_off, mask, mask_off, has_mask, kt, vt, ks, kp, kok);
            for (int j = 0; active && j < nt; j++) {
                int masked;
                float s = staged_logit(q, qpos, j, kt, ks, kp, kok, causal, &masked);
                if (s > mx) { // rescale what was accumulated under the old maximum
                    float corr = exp(mx - s);
                    l *= corr;
                    for (int e = 0; e < HEAD_DIM; e++) acc[e] *= corr;
                    mx = s;
                }
                float p = exp(s - mx);
                l += p; // lse is undropped; o gets the dropped probabilities
                if (dropout) p *= drop_factor(philox, threshold, keep_scale, ch.bh, N, qslot, ch.nkeys, k0 + j);
                for (int e = 0; e < HEAD_DIM; e++) acc[e] += p * vt[j * HEAD_DIM + e];
            }
        }
        if (active) {
            __global float *out = o + ((size_t)ch.bh * N + qslot) * HEAD_DIM;
            // With hf: the HF model's float32 semantics (docs/hf-compat.md §8),
            // p = exp(s − lse) with lse a float, not renormalised: acc·exp(mx − lse).
            float lse_f = mx + log(l);
            float scale = hf ? exp(mx - lse_f) : 1.0f / l;
            for (int e = 0; e < HEAD_DIM; e++) out[e] = acc[e] * scale;
            lse[(size_t)ch.bh * N + qslot] = lse_f;
        }
    }
}

// §5.6: one work-item per output row (b, t, h): the rounds' weights —
// softmax over their lse, found through undo — computed once for the row's
// d elements (not once per element: R exponentials and lookups per row).
__kernel void lsh_combine(__global float *out, const ulong out_off, __global const float *o,
                          __global const float *lse, __global const int *undo, const int B, const int L,
                          const int H, const int R, const int hf) {
    size_t gid = get_global_id(0);
    if (gid >= (size_t)B * L * H) return;
    int h = (int)(gid % H);
    int t = (int)(gid / H % L);
    int b = (int)(gid / ((size_t)H * L));
    size_t bh = (size_t)b * H + h, N = (size_t)R * L;
    __global const int *U = undo + bh * N;
    __global const float *LSE = lse + bh * N;
    float mx = RUNNING_MAX_INIT;
    for (int r = 0; r < R; r++) mx = fmax(mx, LSE[U[r * L + t]]);
    float sum = 0.0f;
    for (int r = 0; r < R; r++) sum += exp(LSE[U[r * L + t]] - mx);
    float total = mx + log(sum); // with hf a float32 value, as in HF (docs/hf-compat.md §8)
    // gid·d = ((b·L + t)·H + h)·d: the row in the [B, L, H·d] layout.
    __global float *row = out + out_off + gid * HEAD_DIM;
    for (int r = 0; r < R; r++) {
        int slot = U[r * L + t];
        float w = hf ? exp(LSE[slot] - total) : exp(LSE[slot] - mx) / sum;
        __global const float *os = o + (bh * N + slot) * HEAD_DIM;
        for (int e = 0; e < HEAD_DIM; e++) row[e] = (r ? row[e] : 0.0f) + w * os[e];
    }
}

// ---- backward (§5.6, §3, §4) ------------------------------------------------
// From the forward's state, with no float atomics: every output row has one
// writer. The rounds' combination sends d o_tr = w_tr·dout_t and
// d lse_tr = w_tr·dout_t·(o_tr − out_t); inside a round, with p = exp(s − lse)
// (the stored lse, the forward's own normaliser) the logit gradient is
// ds_ij = p_ij·(g_i·v_j − c_i), g_i = w_i·dout_t, c_i = w_i·(dout_t·out_t).
//   lsh_backward_weights  per position: w and c of its R sorted items
//   lsh_backward_query    per sorted query (groups by chunk, as the forward):
//                         its qk's query-path gradient Σ_j ds_ij·k_j → gqk
//   lsh_backward_key      per sorted key (groups by chunk): the queries that
//                         see it — its own chunk's and the next chunk's
//                         (cyclic) — give dv and dk, which goes back through
//                         the §5.2 normalisation and is added to gqk
//   lsh_backward_gather   per output element: the R sorted items of each
//                         position summed through undo (§4: the sort's
//                         gradient is the inverse permutation)
// Scratch: w, c [B, H, R·L]; gqk, gv [B, H, R·L, d].

// One work-item per (b, h, t): w_tr = exp(lse_tr − logsumexp_r lse_tr) and
// c_tr = w_tr·Σ_r' w_tr'·(dout_t·o_tr') (= w_tr·dout_t·out_t).
__kernel void lsh_backward_weights(__global const float *dout, const ulong dout_off, __global const float *o,
                                   __global const float *lse, __global const int *undo, __global float *w,
                                   __global float *cw, const int B, const int L, const int H, const int R) {
    size_t gid = get_global_id(0);
    if (gid >= (size_t)B * H * L) return;
    const int t = (int)(gid % L), bh = (int)(gid / L), h = bh % H, b = bh / H;
    const size_t N = (size_t)R * L;
    __global const int *U = undo + bh * N;
    __global const float *LSE = lse + bh * N;
    __global const float *g = dout + dout_off + ((size_t)b * L + t) * H * HEAD_DIM + (size_t)h * HEAD_DIM;
    float mx = RUNNING_MAX_INIT, sum = 0.0f, delta = 0.0f;
    for (int r = 0; r < R; r++) mx = fmax(mx, LSE[U[r * L + t]]);
    for (int r = 0; r < R; r++) sum += exp(LSE[U[r * L + t]] - mx);
    for (int r = 0; r < R; r++) {
        const int slot = U[r * L + t];
        __global const float *os = o + (bh * N + slot) * HEAD_DIM;
        float dot = 0.0f;
        for (int e = 0; e < HEAD_DIM; e++) dot += g[e] * os[e];
        delta += exp(LSE[slot] - mx) / sum * dot;
    }
    for (int r = 0; r < R; r++) {
        const int slot = U[r * L + t];
        const float wr = exp(LSE[slot] - mx) / sum;
        w[bh * N + slot] = wr;
        cw[bh * N + slot] = wr * delta;
    }
}

// One work-group per (batch, head, chunk c), a work-item per query (looping
// when m > G), keys streamed through local memory exactly as lsh_attend.
__kernel void lsh_backward_query(__global const float *qk, const ulong qk_off, __global const float *v,
                                 const ulong v_off, __global const float *dout, const ulong dout_off, MASK_ARGS,
                                 __global const int *perm, __global const float *lse, __global const float *w,
                                 __global const float *cw, __global float *gqk, const int L, const int H, const int N,
                                 const int m, const int causal, DROPOUT_ARGS, const int T, __local float *kt,
                                 __local float *vt, __local float *ks, __local int *kp, __local int *kok) {
    const lsh_chunk ch = chunk_of_group(L, H, N, m);
    __global const int *P = perm + (size_t)ch.bh * N;
    for (int q0 = 0; q0 < m; q0 += (int)get_local_size(0)) {
        const int qi = q0 + (int)get_local_id(0), active = qi < m;
        const int qslot = ch.c * m + qi, qpos = active ? P[qslot] % L : 0;
        const size_t item = (size_t)ch.bh * N + qslot;
        const float wi = active ? w[item] : 0.0f, ci = active ? cw[item] : 0.0f, lsei = active ? lse[item] : 0.0f;
        const ulong at = row_at(ch.b, qpos, ch.h, L, H);
        float q[HEAD_DIM], g[HEAD_DIM], acc[HEAD_DIM];
        for (int e = 0; e < HEAD_DIM; e++) {
            q[e] = active ? qk[qk_off + at + (ulong)e] : 0.0f;
            g[e] = active ? wi * dout[dout_off + at + (ulong)e] : 0.0f;
            acc[e] = 0.0f;
        }
        for (int k0 = 0, nt; k0 < ch.nkeys; k0 += nt) { // nt keys staged per step
            nt = stage_keys(&ch, k0, T, P, qk, qk_off, v, v_off, mask, mask_off, has_mask, kt, vt, ks, kp, kok);
            for (int j = 0; active && j < nt; j++) {
                int masked;
                float s = staged_logit(q, qpos, j, kt, ks, kp, kok, causal, &masked);
                if (masked) continue;
                float gv = dot_staged(g, vt + j * HEAD_DIM);
                if (dropout) gv *= drop_factor(philox, threshold, keep_scale, ch.bh, N, qslot, ch.nkeys, k0 + j);
                float ds = exp(s - lsei) * (gv - ci) * ks[j]; // times the key's scale: k_j = kt_j·ks_j
                for (int e = 0; e < HEAD_DIM; e++) acc[e] += ds * kt[j * HEAD_DIM + e];
            }
        }
        if (active)
            for (int e = 0; e < HEAD_DIM; e++) gqk[item * HEAD_DIM + e] = acc[e];
    }
}

// One work-group per (batch, head, chunk c), a work-item per key slot of the
// chunk (looping when m > G). The queries that see chunk c's keys
// (lsh_chunk, query_slot) stream through local memory T at a time: raw qk,
// g = w·dout, lse, c, position. Runs after lsh_backward_query, whose gqk row
// of this slot it completes.
__kernel void lsh_backward_key(__global const float *qk, const ulong qk_off, __global const float *v,
                               const ulong v_off, __global const float *dout, const ulong dout_off, MASK_ARGS,
                               __global const int *perm, __global const float *lse, __global const float *w,
                               __global const float *cw, __global float *gqk, __global float *gv, const int L,
                               const int H, const int N, const int m, const int causal, DROPOUT_ARGS, const int T,
                               __local float *qt, __local float *gt, __local float *ql, __local float *qc,
                               __local int *qp) {
    const int G = (int)get_local_size(0), lid = (int)get_local_id(0);
    const lsh_chunk ch = chunk_of_group(L, H, N, m);
    __global const int *P = perm + (size_t)ch.bh * N;
    const size_t items = (size_t)ch.bh * N; // this (batch, head)'s first sorted item
    for (int k0 = 0; k0 < m; k0 += G) {
        const int ki = k0 + lid, active = ki < m;
        const int kslot = ch.c * m + ki, kpos = active ? P[kslot] % L : 0;
        const int key_ok = active && key_is_token(mask, mask_off, has_mask, ch.b, L, kpos);
        const ulong at = row_at(ch.b, kpos, ch.h, L, H);
        float x[HEAD_DIM], vv[HEAD_DIM], dk[HEAD_DIM], dvv[HEAD_DIM], ss = 0.0f;
        for (int e = 0; e < HEAD_DIM; e++) {
            x[e] = active ? qk[qk_off + at + (ulong)e] : 0.0f;
            vv[e] = active ? v[v_off + at + (ulong)e] : 0.0f;
            dk[e] = dvv[e] = 0.0f;
            ss += x[e] * x[e];
        }
        const float a = key_scale(ss); // §5.2: k = x·a
        for (int i0 = 0; i0 < ch.nkeys; i0 += T) {
            const int nt = min(T, ch.nkeys - i0);
            barrier(CLK_LOCAL_MEM_FENCE); // the previous tile is consumed
            for (int i = lid; i < nt; i += G) {
                int slot = query_slot(&ch, i0 + i);
                qp[i] = P[slot] % L;
                ql[i] = lse[items + slot];
                qc[i] = cw[items + slot];
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            for (int y = lid; y < nt * HEAD_DIM; y += G) {
                int i = y / HEAD_DIM, e = y % HEAD_DIM;
                ulong qat = row_at(ch.b, qp[i], ch.h, L, H) + (ulong)e;
                qt[y] = qk[qk_off + qat];
                gt[y] = w[items + query_slot(&ch, i0 + i)] * dout[dout_off + qat];
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            for (int i = 0; active && i < nt; i++) {
                int masked;
                float s = masked_logit(dot_staged(x, qt + i * HEAD_DIM) * a, qp[i], kpos, key_ok, causal, 1, &masked);
                float p = exp(s - ql[i]), pd = p, gdv = 0.0f, f = 1.0f;
                if (dropout) {
                    // This key's index in the query's window: the query's own
                    // chunk (c) comes second when there are several chunks;
                    // for chunk c+1's queries chunk c is the previous one.
                    const int qidx = i0 + i;
                    f = drop_factor(philox, threshold, keep_scale, ch.bh, N, query_slot(&ch, qidx), ch.nkeys,
                                    ch.nc > 1 && qidx < m ? m + ki : ki);
                    pd *= f;
                }
                for (int e = 0; e < HEAD_DIM; e++) {
                    dvv[e] += pd * gt[i * HEAD_DIM + e]; // values are used under masks too
                    gdv += gt[i * HEAD_DIM + e] * vv[e];
                }
                if (masked) continue;
                if (dropout) gdv *= f;
                float ds = p * (gdv - qc[i]);
                for (int e = 0; e < HEAD_DIM; e++) dk[e] += ds * qt[i * HEAD_DIM + e];
            }
        }
        if (active) {
            // §5.2 backward: dk goes back through k = x·a(x) into this slot's gqk.
            float dkx = 0.0f;
            for (int e = 0; e < HEAD_DIM; e++) dkx += dk[e] * x[e];
            __global float *gq = gqk + (items + kslot) * HEAD_DIM;
            __global float *gvo = gv + (items + kslot) * HEAD_DIM;
            for (int e = 0; e < HEAD_DIM; e++) {
                gq[e] += key_scale_grad(dk[e], x[e], a, dkx);
                gvo[e] = dvv[e];
            }
        }
    }
}

// One work-item per output element (b, t, h, e): the position's R sorted
// items summed through undo; written, not accumulated.
__kernel void lsh_backward_gather(__global float *dqk, const ulong dqk_off, __global float *dv, const ulong dv_off,
                                  __global const float *gqk, __global const float *gv, __global const int *undo,
                                  const int B, const int L, const int H, const int R) {
    size_t gid = get_global_id(0);
    if (gid >= (size_t)B * L * H * HEAD_DIM) return;
    int e = (int)(gid % HEAD_DIM);
    int h = (int)(gid / HEAD_DIM % H);
    int t = (int)(gid / ((size_t)HEAD_DIM * H) % L);
    int b = (int)(gid / ((size_t)HEAD_DIM * H * L));
    size_t bh = (size_t)b * H + h, N = (size_t)R * L;
    __global const int *U = undo + bh * N;
    float aq = 0.0f, av = 0.0f;
    for (int r = 0; r < R; r++) {
        size_t at = (bh * N + U[r * L + t]) * HEAD_DIM + e;
        aq += gqk[at];
        av += gv[at];
    }
    dqk[dqk_off + gid] = aq; // gid = ((b·L + t)·H + h)·d + e: the [B, L, H·d] layout
    dv[dv_off + gid] = av;
}
