// Embeddings (§9). Every kernel has one work-item per output element
// and no atomics: a gradient element is summed by the one item that owns it,
// in a fixed order, so results are deterministic.

// out[t, c] = table[ids[t], c]; ids were range-checked by the front door.
// Item (c, t) (rf_cl_grid2): no division per element.
__kernel void embedding_forward(__global float *out, const ulong out_off, __global const int *ids,
                                const ulong ids_off, __global const float *table, const ulong table_off,
                                const ulong d, const ulong n) {
    const size_t c = get_global_id(0), t = get_global_id(1);
    if (c >= d || t >= n) return;
    out[out_off + t * d + c] = table[table_off + (size_t)ids[ids_off + t] * d + c];
}

// dtable[v, c] += Σ dout[t, c] over the positions t with ids[t] = v, which the
// host lists per row: positions order[start[v] .. start[v+1]) ascending (a
// counting sort of ids). Untouched rows are not written.
__kernel void embedding_backward(__global float *dtable, const ulong dt_off, __global const float *dout,
                                 const ulong dout_off, __global const int *start, __global const int *order,
                                 const ulong d, const ulong total) {
    size_t i = get_global_id(0);
    if (i >= total) return;
    size_t v = i / d, c = i % d;
    int lo = start[v], hi = start[v + 1];
    if (lo == hi) return;
    float s = 0.0f;
    for (int k = lo; k < hi; k++) s += dout[dout_off + (size_t)order[k] * d + c];
    dtable[dt_off + i] += s;
}

// out[b, p, :] += concat(E0[p / s1], E1[p % s1]), p = i·s1 + j. Item (c, p)
// (rf_cl_grid2) reads its table element once and adds it to every batch
// item: one 32-bit division per item, none per element.
__kernel void axial_position_forward(__global float *out, const ulong out_off, __global const float *e0,
                                     const ulong e0_off, __global const float *e1, const ulong e1_off,
                                     const int l, const int s1, const int d0, const int d1, const int nb) {
    const int c = (int)get_global_id(0), p = (int)get_global_id(1), d = d0 + d1;
    if (c >= d || p >= l) return;
    const float e = c < d0 ? e0[e0_off + (size_t)(p / s1) * d0 + c] : e1[e1_off + (size_t)(p % s1) * d1 + (c - d0)];
    for (int b = 0; b < nb; b++) out[out_off + ((size_t)b * l + p) * d + c] += e;
}

// Items [0, s0·d0) own dE0[i, c] = Σ_b Σ_j dout[b, i·s1 + j, c]; the next
// s1·d1 own dE1[j, c] = Σ_b Σ_i dout[b, i·s1 + j, d0 + c]; only p < l counts.
__kernel void axial_position_backward(__global float *de0, const ulong de0_off, __global float *de1,
                                      const ulong de1_off, __global const float *dout, const ulong dout_off,
                                      const ulong nb, const ulong l, const ulong s0, const ulong s1,
                                      const ulong d0, const ulong d1) {
    size_t k = get_global_id(0), d = d0 + d1;
    float s = 0.0f;
    if (k < s0 * d0) {
        size_t i = k / d0, c = k % d0;
        for (size_t b = 0; b < nb; b++)
            for (size_t j = 0; j < s1 && i * s1 + j < l; j++) s += dout[dout_off + (b * l + i * s1 + j) * d + c];
        de0[de0_off + k] += s;
    } else if (k < s0 * d0 + s1 * d1) {
        k -= s0 * d0;
        size_t j = k / d1, c = d0 + k % d1;
        for (size_t b = 0; b < nb; b++)
            for (size_t i = 0; i < s0 && i * s1 + j < l; i++) s += dout[dout_off + (b * l + i * s1 + j) * d + c];
        de1[de1_off + k] += s;
    }
}

// out[b, p, c] += table[p, c]; total = B·L·D, per = L·D.
__kernel void position_embedding_forward(__global float *out, const ulong out_off, __global const float *table,
                                         const ulong table_off, const ulong per, const ulong total) {
    size_t i = get_global_id(0);
    if (i >= total) return;
    out[out_off + i] += table[table_off + i % per];
}

// dtable[p, c] += Σ_b dout[b, p, c].
__kernel void position_embedding_backward(__global float *dtable, const ulong dt_off, __global const float *dout,
                                          const ulong dout_off, const ulong nb, const ulong per) {
    size_t i = get_global_id(0);
    if (i >= per) return;
    float s = 0.0f;
    for (size_t b = 0; b < nb; b++) s += dout[dout_off + b * per + i];
    dtable[dt_off + i] += s;
}
