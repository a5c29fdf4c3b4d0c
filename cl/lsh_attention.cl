// LSH self-attention, forward (§3–§5): buckets from x·R, a per-round
// stable counting sort, fused in-chunk attention with an online softmax, and
// the combination of the rounds. Built with -DHEAD_DIM=d -DMAX_HEAD_DIM, and
// the tiled chunk kernels with -DQTILE -DKTILE -DSPLIT too (see there);
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

// ---- the tiled chunk kernels (lsh_attend, lsh_backward_query, _key) --------
// Built with -DQTILE=q -DKTILE=k -DSPLIT=s as well (tiles_of in
// src/device/opencl/lsh_attention.c picks them from the device's limits),
// which the other kernels of this file do not need. Shape (issue 13):
//   - one work-group per (batch, head, chunk c) of m sorted items (the
//     rounds are consecutive chunks of the sorted order, so a chunk is one
//     round's); it owns a tile of rows (queries, or keys for
//     lsh_backward_key) and streams the rows they meet through __local
//     memory a tile at a time, gathered through perm with consecutive
//     work-items reading consecutive floats of a row (gather_rows);
//   - staged rows are LROW = d + 1 floats apart (odd: the work-items that
//     read element e of consecutive rows hit different banks on GPUs), so
//     every inner loop runs over consecutive floats (which PoCL vectorises);
//   - the score tile (owned × streamed) is computed by the whole group,
//     consecutive work-items taking consecutive streamed rows (the owned
//     row is the same for the run);
//   - SPLIT work-items per owned row: work-item (row, s) owns the ACC ≤ 32
//     consecutive elements e = s·ACC + k of the row's accumulators
//     and, for the online softmax, the score columns j ≡ s (mod SPLIT); row
//     maxima, sums and dk·x are two-stage reductions through local memory
//     (red);
//   - no private array longer than ACC.
#if defined(SPLIT) || defined(CHUNK)
// A work-group's chunk: chunk c (of nc) of the m-item sorted chunks of
// (batch, head) bh = b·H + h. Its window (§5.3) is chunk c−1 (cyclic) then
// chunk c, nkeys = 2m keys, or chunk c alone (m keys) when there is one
// chunk (§5.7); the queries that see chunk c's keys are, likewise, chunk c's
// then chunk c+1's.
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
#endif // SPLIT || CHUNK

// ---- the CPU shape of the chunk kernels (lsh_attend_rows, ...) -------------
// Built with -DCHUNK=m instead of the tiles (rf_cl_attn_shape: a device of
// CPU type, PoCL, where a work-group runs as a loop on one core and every
// barrier splits the kernel and spills what lives across it). Shape:
//   - one work-group of ONE work-item per (batch, head, chunk c): it stages
//     the chunk's window once in __local memory (ordinary cache-resident
//     memory on a CPU: no padding against banks) and then loops over its
//     owned rows, each whole, as a C programmer would write it: no barrier,
//     nothing for PoCL to spill or to vectorise across work-items (which
//     turns the row reads d floats apart into gathers);
//   - vectors are VEC = VW floats, the device's native width (-DVW;
//     attention_common.cl);
//   - QB owned rows at a time (the forward and the query kernel): their
//     scores against the window come from rows_times_staged: the staged side
//     is transposed (column j of element e at e·KP + j), so the sums run over
//     4·VW keys at once in 4 VEC accumulators per row, broadcasting one
//     element of each owned row per step (no horizontal sums), and each
//     staged vector loaded feeds the QB rows (one row per pass made as many
//     loads as FMAs);
//   - a row's accumulators (p·V, ds·K, ...) are DV VEC in registers,
//     updated with a staged row padded with zeros to DV·VW floats — QB rows
//     at a time again (add_scaled_rows), each staged row loaded once for
//     the QB rows.
// The other candidate, a group of m work-items (one per row) with one
// barrier after a shared staging, was measured too; why this one stays:
// docs/portability.md, "LSH chunk kernels: the CPU shape".
#ifdef CHUNK
#ifndef VW
#error "the CPU shape needs -DVW (attention_common.cl: VEC, DV, QB)"
#endif
#define KP (((2 * CHUNK + 63) / 64) * 64) // staged window rows, a multiple of 64 (so of 4·VW)
#define KW(nkeys) (((nkeys) + 7) / 8 * 8)  // floats per row of the backward's pw and dsw
#if DV * VW > 128
#error "the CPU shape keeps a row's accumulators in at most 128 floats"
#endif
// Keys per pass of lsh_backward_key_rows: each has two accumulator rows
// (dk, dv), so QB / 2 keep the 16 registers of QB rows.
#define KB (QB > 1 ? QB / 2 : 1)

// The sum and the maximum of a float8's lanes.
inline float sum8(float8 a) {
    const float4 h = a.lo + a.hi;
    return (h.x + h.z) + (h.y + h.w);
}
inline float max8(float8 a) {
    const float4 h = fmax(a.lo, a.hi);
    return fmax(fmax(h.x, h.z), fmax(h.y, h.w));
}

// s[r][j] = Σ_e a[r][e]·bT[e·KP + j] for r < QB, j < n rounded up to 4·VW:
// QB private rows against n transposed staged rows (columns past n are
// zeros; callers read s[r][j < n]). Each staged vector is loaded once for
// the QB rows.
inline void rows_times_staged(float a[QB][HEAD_DIM], __local const float *bT, int n, float s[QB][KP]) {
    for (int j0 = 0; j0 < n; j0 += 4 * VW) {
        VEC acc[QB][4];
#pragma unroll
        for (int r = 0; r < QB; r++)
#pragma unroll
            for (int u = 0; u < 4; u++) acc[r][u] = (VEC)(0.0f);
        for (int e = 0; e < HEAD_DIM; e++) {
            __local const float *col = bT + e * KP + j0;
            VEC b[4];
#pragma unroll
            for (int u = 0; u < 4; u++) b[u] = VLOAD(u, col);
#pragma unroll
            for (int r = 0; r < QB; r++) {
                const VEC ar = (VEC)(a[r][e]);
#pragma unroll
                for (int u = 0; u < 4; u++) acc[r][u] = fma(ar, b[u], acc[r][u]);
            }
        }
#pragma unroll
        for (int r = 0; r < QB; r++)
#pragma unroll
            for (int u = 0; u < 4; u++) VSTORE(acc[r][u], u, s[r] + j0);
    }
}

// acc[r] = Σ_{j < n} w[r][j]·row_j for r < QB, rows the staged padded rows
// (DV VEC each): each staged vector is loaded once for the QB rows.
inline void add_scaled_rows(VEC acc[QB][DV], float w[QB][KP], __local const VEC *rows, int n) {
#pragma unroll
    for (int r = 0; r < QB; r++)
#pragma unroll
        for (int u = 0; u < DV; u++) acc[r][u] = (VEC)(0.0f);
    for (int j = 0; j < n; j++) {
        VEC x[DV];
#pragma unroll
        for (int u = 0; u < DV; u++) x[u] = rows[j * DV + u];
#pragma unroll
        for (int r = 0; r < QB; r++) {
            const VEC wr = (VEC)(w[r][j]);
#pragma unroll
            for (int u = 0; u < DV; u++) acc[r][u] = fma(wr, x[u], acc[r][u]);
        }
    }
}

// A private row (HEAD_DIM floats) of (b, pos, h) of a [B, L, H·d] tensor,
// times scale; returns its Σx² before scaling (8 lanes, then the tail).
inline float load_row(float *dst, __global const float *src, ulong off, const lsh_chunk *ch, int pos, float scale) {
    __global const float *x = src + off + row_at(ch->b, pos, ch->h, ch->L, ch->H);
    float8 sq8 = (float8)(0.0f);
    int e = 0;
    for (; e + 8 <= HEAD_DIM; e += 8) {
        const float8 xe = vload8(0, x + e);
        vstore8(xe * scale, 0, dst + e);
        sq8 = fma(xe, xe, sq8);
    }
    float sq = sum8(sq8);
    for (; e < HEAD_DIM; e++) {
        dst[e] = x[e] * scale;
        sq += x[e] * x[e];
    }
    return sq;
}

// Transpose the first n padded rows into columns of colT, each row j times
// a[j] (all 1 when a is 0), by 8×8 tiles (store_tile_transposed); columns
// n … n rounded up to 8 get zeros.
inline void stage_columns(__local float *colT, __local const VEC *rows, int n, __local const float *a) {
    for (int j0 = 0; j0 < n; j0 += 8) {
        int e = 0;
        for (; e + 8 <= HEAD_DIM; e += 8) {
            float8 t[8];
#pragma unroll
            for (int u = 0; u < 8; u++) {
                const int j = j0 + u;
                t[u] = j < n ? vload8(0, (__local const float *)(rows + j * DV) + e) * (a ? a[j] : 1.0f)
                             : (float8)(0.0f);
            }
            store_tile_transposed(colT + e * KP + j0, KP, t);
        }
        for (; e < HEAD_DIM; e++) // the tail of HEAD_DIM mod 8
            for (int u = 0; u < 8; u++) {
                const int j = j0 + u;
                colT[e * KP + j] = j < n ? ((__local const float *)(rows + j * DV))[e] * (a ? a[j] : 1.0f) : 0.0f;
            }
    }
}

// Stage a private row as padded row j of DV VEC (zeros past HEAD_DIM).
inline void stage_padded(__local VEC *rows, int j, const float *x) {
    __local float *r = (__local float *)(rows + j * DV);
    for (int e = 0; e < DV * VW; e++) r[e] = e < HEAD_DIM ? x[e] : 0.0f;
}

// Zero columns [n, round64(n)) of a transposed staged block: rows_times_staged
// reads them.
inline void zero_columns(__local float *colT, int n) {
    for (int e = 0; e < HEAD_DIM; e++)
        for (int j = n; j < (n + 63) / 64 * 64; j++) colT[e * KP + j] = 0.0f;
}

// Which of the 8 lanes j0 + [0, 8) lie below n (−1 there, 0 past it).
inline int8 lanes_below(int j0, int n) { return (int8)(0, 1, 2, 3, 4, 5, 6, 7) + j0 < (int8)(n); }

// masked_logit (§5.4) of 8 logits at once, lane by lane the same: queries at
// qpos, keys at kpos with token flags ok; *masked: −1 where replaced. Lanes
// past the window (live = 0) get RUNNING_MAX_INIT: no maximum, no weight.
// One vector select per mask instead of a branch per logit, and the exp()
// after it runs as PoCL's vector exp, 8 at a time.
inline float8 masked_logits8(float8 s, int8 qpos, int8 kpos, int8 ok, int causal, int8 live, int8 *masked) {
    const int8 hidden = (ok == (int8)(0)) | (causal ? kpos > qpos : (int8)(0)), self = kpos == qpos;
    s = select(s, (float8)(MASK_VALUE), hidden);
    s = select(s, (float8)(SELF_MASK_VALUE), self);
    *masked = hidden | self;
    return select((float8)(RUNNING_MAX_INIT), s, live);
}

// Write accumulators times scale as a global row of HEAD_DIM floats.
inline void store_row(__global float *dst, const VEC *acc, float scale) {
    const float *a = (const float *)acc;
    for (int e = 0; e < HEAD_DIM; e++) dst[e] = a[e] * scale;
}
#endif // CHUNK

#ifdef SPLIT

#define ACC ((HEAD_DIM + SPLIT - 1) / SPLIT)
#if ACC > 32
#error "SPLIT leaves more than 32 accumulator floats per work-item"
#endif
#define LROW (HEAD_DIM + 1)

// Gather n rows of (b, h) — positions pos[0, n) — of a [B, L, H·d] tensor
// into local rows of LROW floats, each times scale[j] when scaled.
// Work-item x reads element x % d of row x / d: a row is one coalesced run.
inline void gather_rows(const lsh_chunk *ch, __global const float *src, ulong off, __local const int *pos, int n,
                        __local const float *scale, int scaled, __local float *dst) {
    for (int x = (int)get_local_id(0); x < n * HEAD_DIM; x += (int)get_local_size(0)) {
        const int j = x / HEAD_DIM, e = x % HEAD_DIM;
        float f = src[off + row_at(ch->b, pos[j], ch->h, ch->L, ch->H) + (ulong)e];
        if (scaled) f *= scale[j];
        dst[j * LROW + e] = f;
    }
}

// q·k of two staged rows.
inline float dot_rows(__local const float *a, __local const float *b) {
    float dot = 0.0f;
    for (int e = 0; e < HEAD_DIM; e++) dot += a[e] * b[e];
    return dot;
}

// Element k of work-item s's accumulator slice: its index in the row, and
// whether it exists (d need not be a multiple of SPLIT; when it is, the
// test is compiled out so the slice loops vectorise).
#define SLICE(s, k) ((s) * ACC + (k))
#if ACC * SPLIT == HEAD_DIM
#define IN_ROW(s, k) 1
#else
#define IN_ROW(s, k) (SLICE(s, k) < HEAD_DIM)
#endif

// Stage window keys [k0, k0 + nt), nt = min(KTILE, nkeys − k0): each key's
// position, whether it is a token, raw qk and v rows, and its §5.2 scale.
// Returns nt. Every work-item of the group calls it (it holds barriers).
int stage_keys(const lsh_chunk *ch, const int k0, __global const int *P, __global const float *qk,
               const ulong qk_off, __global const float *v, const ulong v_off, MASK_ARGS, __local float *kt,
               __local float *vt, __local float *ks, __local int *kp, __local int *kok) {
    const int G = (int)get_local_size(0), lid = (int)get_local_id(0), nt = min(KTILE, ch->nkeys - k0);
    barrier(CLK_LOCAL_MEM_FENCE); // the previous tile is consumed
    for (int j = lid; j < nt; j += G) {
        kp[j] = P[key_slot(ch, k0 + j)] % ch->L;
        kok[j] = key_is_token(mask, mask_off, has_mask, ch->b, ch->L, kp[j]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    gather_rows(ch, qk, qk_off, kp, nt, ks, 0, kt);
    gather_rows(ch, v, v_off, kp, nt, ks, 0, vt);
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int j = lid; j < nt; j += G) ks[j] = key_scale(dot_rows(kt + j * LROW, kt + j * LROW));
    barrier(CLK_LOCAL_MEM_FENCE);
    return nt;
}

// Stage the positions of the chunk's owned rows [r0, r0 + n) (sorted slots
// c·m + r0 + [0, n)) and publish them.
inline void stage_own_positions(const lsh_chunk *ch, __global const int *P, int r0, int n, __local int *pos) {
    barrier(CLK_LOCAL_MEM_FENCE); // the previous tile is consumed
    for (int x = (int)get_local_id(0); x < n; x += (int)get_local_size(0)) pos[x] = P[ch->c * ch->m + r0 + x] % ch->L;
    barrier(CLK_LOCAL_MEM_FENCE);
}

// The sum over the SPLIT work-items of row `row` of their `part`: a
// two-stage reduction through red[QTILE or KTILE · SPLIT] (every work-item
// of the group calls it: it holds barriers).
inline float row_sum(__local float *red, int row, float part) {
    red[get_local_id(0)] = part;
    barrier(CLK_LOCAL_MEM_FENCE);
    float sum = 0.0f;
    for (int t = 0; t < SPLIT; t++) sum += red[row * SPLIT + t];
    barrier(CLK_LOCAL_MEM_FENCE); // every partial read before red is reused
    return sum;
}

// The same with a maximum.
inline float row_max(__local float *red, int row, float part) {
    red[get_local_id(0)] = part;
    barrier(CLK_LOCAL_MEM_FENCE);
    float mx = part;
    for (int t = 0; t < SPLIT; t++) mx = fmax(mx, red[row * SPLIT + t]);
    barrier(CLK_LOCAL_MEM_FENCE);
    return mx;
}

// §5.2–5.5: a work-group of QTILE·SPLIT work-items per (batch, head, chunk
// c), QTILE queries of the chunk at a time. Per tile of KTILE window keys:
// the masked logits into the score tile st (the whole group), the rows'
// running max (online softmax, as the cpu's), then p = exp(s − max) into
// st, the sums, and each work-item's slice of p·V. With hf: the HF model's
// float32 semantics (docs/hf-compat.md §8), p = exp(s − lse) with lse a
// float, not renormalised: acc·exp(mx − lse).
__kernel __attribute__((reqd_work_group_size(QTILE * SPLIT, 1, 1))) void
lsh_attend(__global const float *qk, const ulong qk_off, __global const float *v, const ulong v_off, MASK_ARGS,
           __global const int *perm, __global float *o, __global float *lse, const int L, const int H, const int N,
           const int m, const int causal, const int hf, DROPOUT_ARGS) {
    __local float qt[QTILE * LROW], kt[KTILE * LROW], vt[KTILE * LROW], st[QTILE * KTILE], ks[KTILE],
        red[QTILE * SPLIT];
    __local int qp[QTILE], kp[KTILE], kok[KTILE];
    const int lid = (int)get_local_id(0), i = lid / SPLIT, s = lid % SPLIT;
    const lsh_chunk ch = chunk_of_group(L, H, N, m);
    __global const int *P = perm + (size_t)ch.bh * N;
    for (int q0 = 0; q0 < m; q0 += QTILE) {
        const int nq = min(QTILE, m - q0), active = i < nq, qslot = ch.c * m + q0 + i;
        stage_own_positions(&ch, P, q0, nq, qp);
        gather_rows(&ch, qk, qk_off, qp, nq, ks, 0, qt);
        barrier(CLK_LOCAL_MEM_FENCE); // publish qt (see lsh_backward_key)
        float acc[ACC];
        for (int k = 0; k < ACC; k++) acc[k] = 0.0f;
        float mx = RUNNING_MAX_INIT, l = 0.0f;
        for (int k0 = 0, nt; k0 < ch.nkeys; k0 += nt) { // nt keys staged per step
            nt = stage_keys(&ch, k0, P, qk, qk_off, v, v_off, mask, mask_off, has_mask, kt, vt, ks, kp, kok);
            for (int x = lid; x < QTILE * KTILE; x += QTILE * SPLIT) {
                const int r = x / KTILE, j = x % KTILE;
                int masked;
                if (r < nq && j < nt)
                    st[x] = masked_logit(dot_rows(qt + r * LROW, kt + j * LROW) * ks[j], qp[r], kp[j], kok[j], causal,
                                         1, &masked);
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            float part = RUNNING_MAX_INIT;
            for (int j = s; active && j < nt; j += SPLIT) part = fmax(part, st[i * KTILE + j]);
            const float mnew = row_max(red, i, fmax(mx, part));
            part = 0.0f;
            for (int j = s; active && j < nt; j += SPLIT) {
                float p = exp(st[i * KTILE + j] - mnew);
                part += p; // lse is undropped; o gets the dropped probabilities
                if (dropout) p *= drop_factor(philox, threshold, keep_scale, ch.bh, N, qslot, ch.nkeys, k0 + j);
                st[i * KTILE + j] = p;
            }
            const float corr = exp(mx - mnew); // rescale what was accumulated under the old maximum
            l = l * corr + row_sum(red, i, part);
            mx = mnew;
            for (int k = 0; k < ACC; k++) acc[k] *= corr;
            for (int j = 0; active && j < nt; j++) {
                const float p = st[i * KTILE + j];
                for (int k = 0; k < ACC; k++)
                    if (IN_ROW(s, k)) acc[k] += p * vt[j * LROW + SLICE(s, k)];
            }
        }
        if (active) {
            __global float *out = o + ((size_t)ch.bh * N + qslot) * HEAD_DIM;
            const float lse_f = mx + log(l);
            const float scale = hf ? exp(mx - lse_f) : 1.0f / l;
            for (int k = 0; k < ACC; k++)
                if (IN_ROW(s, k)) out[SLICE(s, k)] = acc[k] * scale;
            if (s == 0) lse[(size_t)ch.bh * N + qslot] = lse_f;
        }
    }
}

#endif // SPLIT

#ifdef CHUNK
// The CPU shape of lsh_attend (see "the CPU shape" above): one work-item
// per (batch, head, chunk c). It stages the window's normalised keys
// (§5.2) transposed and its values as padded rows, then per QB queries of
// the chunk: their logits, and per query the masked logits (§5.4), the
// softmax in two passes over them (max, then p = exp(s − max) and their
// sum, as the cpu's); then the QB rows of dropped probabilities times V, and
// lse (§5.5). With hf: as lsh_attend. When QB does not divide m, the last
// pass repeats row m − 1 in its spare rows and stores nothing for them.
__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void
lsh_attend_rows(__global const float *qk, const ulong qk_off, __global const float *v, const ulong v_off, MASK_ARGS,
                __global const int *perm, __global float *o, __global float *lse, const int L, const int H,
                const int N, const int m, const int causal, const int hf, DROPOUT_ARGS) {
    __local float kT[HEAD_DIM * KP], ka[KP];
    __local VEC vr[KP * DV], kr[KP * DV];
    __local int kp[KP], kok[KP];
    const lsh_chunk ch = chunk_of_group(L, H, N, m);
    __global const int *P = perm + (size_t)ch.bh * N;
    float x[QB][HEAD_DIM], s[QB][KP];
    for (int j = 0; j < ch.nkeys; j++) {
        kp[j] = P[key_slot(&ch, j)] % L;
        kok[j] = key_is_token(mask, mask_off, has_mask, ch.b, L, kp[j]);
    }
    // The window's rows are scattered over the sequence (sorted by bucket):
    // this loop only copies them, so the loads of several rows are in
    // flight at once (fused with the transposition below they were a
    // quarter of the kernel's time, waiting on memory).
    for (int j = 0; j < ch.nkeys; j++) {
        load_row(x[0], v, v_off, &ch, kp[j], 1.0f);
        stage_padded(vr, j, x[0]);
        ka[j] = key_scale(load_row(x[0], qk, qk_off, &ch, kp[j], 1.0f));
        stage_padded(kr, j, x[0]);
    }
    stage_columns(kT, kr, ch.nkeys, ka);
    zero_columns(kT, ch.nkeys);
    for (int j = ch.nkeys; j < KP; j++) kp[j] = -1, kok[j] = 0; // read by the 8-lane steps
    // Query i of the chunk is window key (nc > 1 ? m : 0) + i: its raw row is staged.
    __local const VEC *qr = kr + (ch.nc > 1 ? m : 0) * DV;
    for (int i0 = 0; i0 < m; i0 += QB) {
        for (int r = 0; r < QB; r++)
            for (int e = 0; e < HEAD_DIM; e++) x[r][e] = ((__local const float *)(qr + min(i0 + r, m - 1) * DV))[e];
        rows_times_staged(x, kT, ch.nkeys, s);
        float mx[QB], l[QB];
        for (int r = 0; r < QB; r++) {
            const int qslot = ch.c * m + min(i0 + r, m - 1), qpos = P[qslot] % L;
            float8 mx8 = (float8)(RUNNING_MAX_INIT), l8 = (float8)(0.0f);
            for (int j0 = 0; j0 < ch.nkeys; j0 += 8) {
                int8 masked;
                const float8 sc = masked_logits8(vload8(0, s[r] + j0), (int8)(qpos), vload8(0, kp + j0),
                                                 vload8(0, kok + j0), causal, lanes_below(j0, ch.nkeys), &masked);
                vstore8(sc, 0, s[r] + j0);
                mx8 = fmax(mx8, sc);
            }
            mx[r] = max8(mx8);
            for (int j0 = 0; j0 < ch.nkeys; j0 += 8) {
                const float8 p = exp(vload8(0, s[r] + j0) - mx[r]);
                vstore8(p, 0, s[r] + j0);
                l8 += p; // lse is undropped; o gets the dropped probabilities
            }
            l[r] = sum8(l8);
            if (dropout)
                for (int j = 0; j < ch.nkeys; j++)
                    s[r][j] *= drop_factor(philox, threshold, keep_scale, ch.bh, N, qslot, ch.nkeys, j);
        }
        VEC acc[QB][DV];
        add_scaled_rows(acc, s, vr, ch.nkeys);
        for (int r = 0; r < QB && i0 + r < m; r++) {
            const size_t item = (size_t)ch.bh * N + ch.c * m + i0 + r;
            const float lse_f = mx[r] + log(l[r]);
            store_row(o + item * HEAD_DIM, acc[r], hf ? exp(mx[r] - lse_f) : 1.0f / l[r]);
            lse[item] = lse_f;
        }
    }
}
#endif // CHUNK

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

#ifdef SPLIT
// Stage the gradient side of queries [r0, r0 + n) of the chunk's window
// order (slot(r0 + x): the owned queries, or query_slot): position, lse, c
// and w of each, then the raw qk rows and g = w·dout rows.
inline void stage_query_grads(const lsh_chunk *ch, __global const int *P, int r0, int n, int own,
                              __global const float *qk, ulong qk_off, __global const float *dout, ulong dout_off,
                              __global const float *lse, __global const float *w, __global const float *cw,
                              __local int *qp, __local float *ql, __local float *qc, __local float *qw,
                              __local float *qt, __local float *gt) {
    const size_t items = (size_t)ch->bh * ch->N; // this (batch, head)'s first sorted item
    barrier(CLK_LOCAL_MEM_FENCE);                // the previous tile is consumed
    for (int x = (int)get_local_id(0); x < n; x += (int)get_local_size(0)) {
        const int slot = own ? ch->c * ch->m + r0 + x : query_slot(ch, r0 + x);
        qp[x] = P[slot] % ch->L;
        ql[x] = lse[items + slot];
        qc[x] = cw[items + slot];
        qw[x] = w[items + slot];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    gather_rows(ch, qk, qk_off, qp, n, qw, 0, qt);
    gather_rows(ch, dout, dout_off, qp, n, qw, 1, gt);
    barrier(CLK_LOCAL_MEM_FENCE);
}

// The query path, per sorted query: a work-group of QTILE·SPLIT work-items
// per (batch, head, chunk c), QTILE queries at a time, window keys streamed
// KTILE at a time as lsh_attend. The tile of logit gradients
// ds_ij = p_ij·(g_i·v_j − c_i)·(key j's §5.2 scale) goes through local
// memory; each work-item keeps its slice of Σ_j ds_ij·kt_j → gqk.
__kernel __attribute__((reqd_work_group_size(QTILE * SPLIT, 1, 1))) void
lsh_backward_query(__global const float *qk, const ulong qk_off, __global const float *v, const ulong v_off,
                   __global const float *dout, const ulong dout_off, MASK_ARGS, __global const int *perm,
                   __global const float *lse, __global const float *w, __global const float *cw, __global float *gqk,
                   const int L, const int H, const int N, const int m, const int causal, DROPOUT_ARGS) {
    __local float qt[QTILE * LROW], gt[QTILE * LROW], kt[KTILE * LROW], vt[KTILE * LROW], dst[QTILE * KTILE],
        ks[KTILE], ql[QTILE], qc[QTILE], qw[QTILE];
    __local int qp[QTILE], kp[KTILE], kok[KTILE];
    const int lid = (int)get_local_id(0), i = lid / SPLIT, s = lid % SPLIT;
    const lsh_chunk ch = chunk_of_group(L, H, N, m);
    __global const int *P = perm + (size_t)ch.bh * N;
    for (int q0 = 0; q0 < m; q0 += QTILE) {
        const int nq = min(QTILE, m - q0), active = i < nq, qslot = ch.c * m + q0 + i;
        stage_query_grads(&ch, P, q0, nq, 1, qk, qk_off, dout, dout_off, lse, w, cw, qp, ql, qc, qw, qt, gt);
        float acc[ACC];
        for (int k = 0; k < ACC; k++) acc[k] = 0.0f;
        for (int k0 = 0, nt; k0 < ch.nkeys; k0 += nt) { // nt keys staged per step
            nt = stage_keys(&ch, k0, P, qk, qk_off, v, v_off, mask, mask_off, has_mask, kt, vt, ks, kp, kok);
            for (int x = lid; x < QTILE * KTILE; x += QTILE * SPLIT) {
                const int r = x / KTILE, j = x % KTILE;
                if (r >= nq || j >= nt) continue;
                int masked;
                const float sc = masked_logit(dot_rows(qt + r * LROW, kt + j * LROW) * ks[j], qp[r], kp[j], kok[j],
                                              causal, 1, &masked);
                float ds = 0.0f;
                if (!masked) {
                    float gv = dot_rows(gt + r * LROW, vt + j * LROW);
                    if (dropout)
                        gv *= drop_factor(philox, threshold, keep_scale, ch.bh, N, ch.c * m + q0 + r, ch.nkeys, k0 + j);
                    ds = exp(sc - ql[r]) * (gv - qc[r]) * ks[j]; // times the key's scale: k_j = kt_j·ks_j
                }
                dst[x] = ds;
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            for (int j = 0; active && j < nt; j++) {
                const float ds = dst[i * KTILE + j];
                for (int k = 0; k < ACC; k++)
                    if (IN_ROW(s, k)) acc[k] += ds * kt[j * LROW + SLICE(s, k)];
            }
        }
        if (active) {
            __global float *gq = gqk + ((size_t)ch.bh * N + qslot) * HEAD_DIM;
            for (int k = 0; k < ACC; k++)
                if (IN_ROW(s, k)) gq[SLICE(s, k)] = acc[k];
        }
    }
}

// The key and value paths, per sorted key: a work-group of KTILE·SPLIT
// work-items per (batch, head, chunk c), KTILE of the chunk's keys at a
// time; the queries that see them (lsh_chunk, query_slot) stream through
// local memory QTILE at a time. Per query tile the dropped probabilities and
// the logit gradients go through local memory (pt, dt); each work-item keeps
// its slices of dv and dk, and dk goes back through the §5.2 normalisation
// (dk·x a two-stage reduction) into this slot's gqk row, which
// lsh_backward_query wrote.
__kernel __attribute__((reqd_work_group_size(KTILE * SPLIT, 1, 1))) void
lsh_backward_key(__global const float *qk, const ulong qk_off, __global const float *v, const ulong v_off,
                 __global const float *dout, const ulong dout_off, MASK_ARGS, __global const int *perm,
                 __global const float *lse, __global const float *w, __global const float *cw, __global float *gqk,
                 __global float *gv, const int L, const int H, const int N, const int m, const int causal,
                 DROPOUT_ARGS) {
    __local float xt[KTILE * LROW], vk[KTILE * LROW], qt[QTILE * LROW], gt[QTILE * LROW], pt[KTILE * QTILE],
        dt[KTILE * QTILE], ka[KTILE], ql[QTILE], qc[QTILE], qw[QTILE], red[KTILE * SPLIT];
    __local int kp[KTILE], kok[KTILE], qp[QTILE];
    const int lid = (int)get_local_id(0), j = lid / SPLIT, s = lid % SPLIT;
    const lsh_chunk ch = chunk_of_group(L, H, N, m);
    __global const int *P = perm + (size_t)ch.bh * N;
    for (int k0 = 0; k0 < m; k0 += KTILE) {
        const int nk = min(KTILE, m - k0), active = j < nk, ki = k0 + j;
        stage_own_positions(&ch, P, k0, nk, kp);
        for (int x = lid; x < nk; x += KTILE * SPLIT) kok[x] = key_is_token(mask, mask_off, has_mask, ch.b, L, kp[x]);
        gather_rows(&ch, qk, qk_off, kp, nk, ka, 0, xt);
        gather_rows(&ch, v, v_off, kp, nk, ka, 0, vk);
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int x = lid; x < nk; x += KTILE * SPLIT) ka[x] = key_scale(dot_rows(xt + x * LROW, xt + x * LROW)); // §5.2: k = x·a
        // Published here, not by the query loop's first barrier: relying on
        // that one, PoCL 3.1 gave wrong dk and dv (oclgrind was right).
        barrier(CLK_LOCAL_MEM_FENCE);
        float dk[ACC], dv[ACC];
        for (int k = 0; k < ACC; k++) dk[k] = dv[k] = 0.0f;
        for (int i0 = 0; i0 < ch.nkeys; i0 += QTILE) {
            const int nq = min(QTILE, ch.nkeys - i0);
            stage_query_grads(&ch, P, i0, nq, 0, qk, qk_off, dout, dout_off, lse, w, cw, qp, ql, qc, qw, qt, gt);
            for (int x = lid; x < KTILE * QTILE; x += KTILE * SPLIT) {
                const int r = x / QTILE, i = x % QTILE; // key r of the tile, query i
                if (r >= nk || i >= nq) continue;
                int masked;
                const float sc = masked_logit(dot_rows(xt + r * LROW, qt + i * LROW) * ka[r], qp[i], kp[r], kok[r],
                                              causal, 1, &masked);
                const float p = exp(sc - ql[i]);
                float f = 1.0f;
                if (dropout) {
                    // This key's index in the query's window: the query's own
                    // chunk (c) comes second when there are several chunks;
                    // for chunk c+1's queries chunk c is the previous one.
                    const int qidx = i0 + i;
                    f = drop_factor(philox, threshold, keep_scale, ch.bh, N, query_slot(&ch, qidx), ch.nkeys,
                                    ch.nc > 1 && qidx < m ? m + k0 + r : k0 + r);
                }
                pt[x] = p * f; // values are used under masks too
                dt[x] = masked ? 0.0f : p * (dot_rows(gt + i * LROW, vk + r * LROW) * f - qc[i]);
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            for (int i = 0; active && i < nq; i++) {
                const float pd = pt[j * QTILE + i], ds = dt[j * QTILE + i];
                for (int k = 0; k < ACC; k++)
                    if (IN_ROW(s, k)) {
                        dv[k] += pd * gt[i * LROW + SLICE(s, k)];
                        dk[k] += ds * qt[i * LROW + SLICE(s, k)];
                    }
            }
        }
        // §5.2 backward: dk goes back through k = x·a(x) into this slot's gqk.
        float part = 0.0f;
        for (int k = 0; active && k < ACC; k++)
            if (IN_ROW(s, k)) part += dk[k] * xt[j * LROW + SLICE(s, k)];
        const float dkx = row_sum(red, j, part);
        if (active) {
            const size_t item = (size_t)ch.bh * N + ch.c * m + ki;
            __global float *gq = gqk + item * HEAD_DIM;
            __global float *gvo = gv + item * HEAD_DIM;
            for (int k = 0; k < ACC; k++)
                if (IN_ROW(s, k)) {
                    const int e = SLICE(s, k);
                    gq[e] += key_scale_grad(dk[k], xt[j * LROW + e], ka[j], dkx);
                    gvo[e] = dv[k];
                }
        }
    }
}
#endif // SPLIT

#ifdef CHUNK
// The CPU shape of lsh_backward_query (see "the CPU shape" above): one
// work-item per (batch, head, chunk c). It stages the window's normalised
// keys (§5.2) transposed and as padded rows and its values transposed; then
// per QB queries of the chunk (spare rows as in lsh_attend_rows): the logits
// and g·v_j (g = w·dout) against the window, ds_ij = p_ij·(D_ij·g·v_j − c_i)
// for logits no mask replaced, Σ_j ds_ij·k_j → its gqk row, and its rows of
// D·p and ds → pw and dsw ([B, H, R·L, KW(nkeys)]) for
// lsh_backward_key_rows.
__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void
lsh_backward_query_rows(__global const float *qk, const ulong qk_off, __global const float *v, const ulong v_off,
                        __global const float *dout, const ulong dout_off, MASK_ARGS, __global const int *perm,
                        __global const float *lse, __global const float *w, __global const float *cw,
                        __global float *gqk, __global float *pw, __global float *dsw, const int L, const int H,
                        const int N, const int m, const int causal, DROPOUT_ARGS) {
    __local float kT[HEAD_DIM * KP], vT[HEAD_DIM * KP], ka[KP];
    __local VEC kr[KP * DV];
    __local int kp[KP], kok[KP];
    const lsh_chunk ch = chunk_of_group(L, H, N, m);
    __global const int *P = perm + (size_t)ch.bh * N;
    const size_t items = (size_t)ch.bh * N; // this (batch, head)'s first sorted item
    float x[QB][HEAD_DIM], s[QB][KP], ds[QB][KP], f[KP]; // f: dropout factors
    for (int j = 0; j < ch.nkeys; j++) {
        kp[j] = P[key_slot(&ch, j)] % L;
        kok[j] = key_is_token(mask, mask_off, has_mask, ch.b, L, kp[j]);
    }
    // As in lsh_attend_rows, the scattered rows are first only copied (kr
    // holds the raw values, then the raw keys), then transposed.
    for (int j = 0; j < ch.nkeys; j++) {
        load_row(x[0], v, v_off, &ch, kp[j], 1.0f);
        stage_padded(kr, j, x[0]);
    }
    stage_columns(vT, kr, ch.nkeys, 0);
    for (int j = 0; j < ch.nkeys; j++) {
        ka[j] = key_scale(load_row(x[0], qk, qk_off, &ch, kp[j], 1.0f));
        stage_padded(kr, j, x[0]);
    }
    stage_columns(kT, kr, ch.nkeys, ka);
    for (int j = 0; j < ch.nkeys; j++) { // the keys as padded rows (§5.2: k = x·a)
        __local float *kj = (__local float *)(kr + j * DV);
        for (int e = 0; e < HEAD_DIM; e++) kj[e] *= ka[j];
    }
    zero_columns(kT, ch.nkeys);
    zero_columns(vT, ch.nkeys);
    for (int j = ch.nkeys; j < KP; j++) kp[j] = -1, kok[j] = 0; // read by the 8-lane steps
    for (int i0 = 0; i0 < m; i0 += QB) {
        for (int r = 0; r < QB; r++) load_row(x[r], qk, qk_off, &ch, P[ch.c * m + min(i0 + r, m - 1)] % L, 1.0f);
        rows_times_staged(x, kT, ch.nkeys, s);
        for (int r = 0; r < QB; r++) {
            const int qslot = ch.c * m + min(i0 + r, m - 1);
            load_row(x[r], dout, dout_off, &ch, P[qslot] % L, w[items + qslot]);
        }
        rows_times_staged(x, vT, ch.nkeys, ds); // g·v_j, then ds_ij in place
        for (int r = 0; r < QB; r++) {
            const int qslot = ch.c * m + min(i0 + r, m - 1), qpos = P[qslot] % L;
            const float lse_i = lse[items + qslot], c_i = cw[items + qslot];
            if (dropout)
                for (int j = 0; j < ch.nkeys; j++)
                    f[j] = drop_factor(philox, threshold, keep_scale, ch.bh, N, qslot, ch.nkeys, j);
            // The item's rows of D·p and ds for lsh_backward_key_rows (a spare
            // row rewrites row m − 1's with the same values).
            __global float *pwi = pw + (items + qslot) * KW(ch.nkeys), *dsi = dsw + (items + qslot) * KW(ch.nkeys);
            for (int j0 = 0; j0 < ch.nkeys; j0 += 8) {
                int8 masked;
                const float8 sc = masked_logits8(vload8(0, s[r] + j0), (int8)(qpos), vload8(0, kp + j0),
                                                 vload8(0, kok + j0), causal, lanes_below(j0, ch.nkeys), &masked);
                const float8 p = exp(sc - lse_i), fj = dropout ? vload8(0, f + j0) : (float8)(1.0f);
                const float8 dsj = select(p * (vload8(0, ds[r] + j0) * fj - c_i), (float8)(0.0f), masked);
                vstore8(dsj, 0, ds[r] + j0);
                vstore8(dsj, 0, dsi + j0);
                vstore8(p * fj, 0, pwi + j0); // values are used under masks too
            }
        }
        VEC acc[QB][DV];
        add_scaled_rows(acc, ds, kr, ch.nkeys);
        for (int r = 0; r < QB && i0 + r < m; r++) store_row(gqk + (items + ch.c * m + i0 + r) * HEAD_DIM, acc[r], 1.0f);
    }
}

// The CPU shape of lsh_backward_key (see "the CPU shape" above): one
// work-item per (batch, head, chunk c). The queries that see the chunk's
// keys (chunk c's, then chunk c+1's: query_slot) left their rows of D·p and
// ds against their windows in pw and dsw (lsh_backward_query_rows), so no
// logit is computed twice: it stages those queries' raw qk rows and
// g = w·dout rows, then per key of the chunk reads its column of D·p and ds
// (its index in query i's window: the query's own chunk c comes second when
// there are several chunks; for chunk c+1's queries chunk c is the previous
// one) into dv = Σ_i D_ij·p_ij·g_i and dk = Σ_i ds_ij·q_i; dk goes back
// through the §5.2 normalisation, added to this slot's gqk row (which the
// query kernel wrote), and dv is written.
__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void
lsh_backward_key_rows(__global const float *qk, const ulong qk_off, __global const float *dout, const ulong dout_off,
                      __global const int *perm, __global const float *w, __global const float *pw,
                      __global const float *dsw, __global float *gqk, __global float *gv, const int L, const int H,
                      const int N, const int m) {
    __local VEC qr[KP * DV], gr[KP * DV];
    __local ulong qrow[KP];
    const lsh_chunk ch = chunk_of_group(L, H, N, m);
    __global const int *P = perm + (size_t)ch.bh * N;
    const size_t items = (size_t)ch.bh * N; // this (batch, head)'s first sorted item
    const int nq = ch.nkeys;                 // the queries that see the chunk's keys
    float x[HEAD_DIM];
    for (int i = 0; i < nq; i++) {
        const int slot = query_slot(&ch, i), qpos = P[slot] % L;
        qrow[i] = (items + slot) * KW(ch.nkeys) + (ch.nc > 1 && i < m ? m : 0); // + j: key j's entry
        load_row(x, qk, qk_off, &ch, qpos, 1.0f);
        stage_padded(qr, i, x);
        load_row(x, dout, dout_off, &ch, qpos, w[items + slot]);
        stage_padded(gr, i, x);
    }
    for (int j0 = 0; j0 < m; j0 += KB) { // KB keys per pass (spare keys repeat key m − 1, unstored)
        VEC dk[KB][DV], dv[KB][DV];
#pragma unroll
        for (int r = 0; r < KB; r++)
#pragma unroll
            for (int u = 0; u < DV; u++) dk[r][u] = dv[r][u] = (VEC)(0.0f);
        for (int i = 0; i < nq; i++) {
            VEC g[DV], q[DV]; // query i's rows, loaded once for the KB keys
#pragma unroll
            for (int u = 0; u < DV; u++) g[u] = gr[i * DV + u], q[u] = qr[i * DV + u];
#pragma unroll
            for (int r = 0; r < KB; r++) {
                const int j = min(j0 + r, m - 1);
                const VEC pd = (VEC)(pw[qrow[i] + j]), d = (VEC)(dsw[qrow[i] + j]);
#pragma unroll
                for (int u = 0; u < DV; u++) {
                    dv[r][u] = fma(pd, g[u], dv[r][u]);
                    dk[r][u] = fma(d, q[u], dk[r][u]);
                }
            }
        }
        for (int r = 0; r < KB && j0 + r < m; r++) {
            const int kslot = ch.c * m + j0 + r;
            const float a = key_scale(load_row(x, qk, qk_off, &ch, P[kslot] % L, 1.0f)); // §5.2: k = x·a
            // §5.2 backward: dk goes back through k = x·a(x) into this slot's gqk.
            const float *dke = (const float *)dk[r];
            float dkx = 0.0f;
            for (int e = 0; e < HEAD_DIM; e++) dkx += dke[e] * x[e];
            __global float *gq = gqk + (items + kslot) * HEAD_DIM;
            for (int e = 0; e < HEAD_DIM; e++) gq[e] += key_scale_grad(dke[e], x[e], a, dkx);
            store_row(gv + (items + kslot) * HEAD_DIM, dv[r], 1.0f);
        }
    }
}

// The CPU shape of lsh_backward_gather: one work-item per row (b, t, h) of
// the outputs, as lsh_combine, its d elements in vectorisable loops (one
// item per element spends its time on the index divisions).
__kernel void lsh_backward_gather_rows(__global float *dqk, const ulong dqk_off, __global float *dv,
                                       const ulong dv_off, __global const float *gqk, __global const float *gv,
                                       __global const int *undo, const int B, const int L, const int H, const int R) {
    size_t gid = get_global_id(0);
    if (gid >= (size_t)B * L * H) return;
    const int h = (int)(gid % H), t = (int)(gid / H % L), b = (int)(gid / ((size_t)H * L));
    const size_t bh = (size_t)b * H + h, N = (size_t)R * L;
    __global const int *U = undo + bh * N;
    float aq[HEAD_DIM], av[HEAD_DIM];
    for (int e = 0; e < HEAD_DIM; e++) aq[e] = av[e] = 0.0f;
    for (int r = 0; r < R; r++) {
        const size_t at = (bh * N + U[r * L + t]) * HEAD_DIM;
        for (int e = 0; e < HEAD_DIM; e++) {
            aq[e] += gqk[at + e];
            av[e] += gv[at + e];
        }
    }
    // gid·d = ((b·L + t)·H + h)·d: the row in the [B, L, H·d] layout.
    for (int e = 0; e < HEAD_DIM; e++) {
        dqk[dqk_off + gid * HEAD_DIM + e] = aq[e];
        dv[dv_off + gid * HEAD_DIM + e] = av[e];
    }
}
#endif // CHUNK

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
