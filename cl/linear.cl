// The bias half of a linear layer (§1; the products are CLBlast GEMMs).
//   bias_add:  y[r, j] += alpha·b[j], work-item (j, r) (rf_cl_grid2).
//   bias_grad: db[j] += Σ_r dy[r, j] in 2-D groups of C columns × S slices:
//              item (j, s) sums rows s, s + S, ... of column j (neighbouring
//              items read neighbouring columns: coalesced), then slice 0
//              adds the S partials in slice order (no atomics,
//              deterministic). S slices put S times more items to work than
//              one per column (n = 256 columns fill no GPU).
//   The CPU shape of bias_grad (linear.c, rf_cl_attn_shape): item b adds
//              the rows of its block of R rows, whole rows 8 lanes at a time
//              (read in order, no barrier), into part[b·n + j]; then
//              bias_grad_final adds the blocks in block order per column.

__kernel void bias_add(__global float *y, const ulong y_off, __global const float *b, const ulong b_off,
                       const ulong n, const ulong rows, const float alpha) {
    const size_t j = get_global_id(0), r = get_global_id(1);
    if (j < n && r < rows) y[y_off + r * n + j] += alpha * b[b_off + j];
}

// scratch: C·S floats.
__kernel void bias_grad(__global float *db, const ulong db_off, __global const float *dy, const ulong dy_off,
                        const ulong n, const ulong rows, __local float *scratch) {
    const size_t j = get_global_id(0), c = get_local_id(0), C = get_local_size(0);
    const size_t s = get_local_id(1), S = get_local_size(1);
    float sum = 0.0f;
    if (j < n)
        for (size_t r = s; r < rows; r += S) sum += dy[dy_off + r * n + j];
    scratch[s * C + c] = sum;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (s == 0 && j < n) {
        float t = 0.0f;
        for (size_t k = 0; k < S; k++) t += scratch[k * C + c];
        db[db_off + j] += t;
    }
}

__kernel void bias_grad_rows(__global float *part, __global const float *dy, const ulong dy_off, const ulong n,
                             const ulong rows, const ulong block_rows) {
    const size_t b = get_global_id(0), n8 = n & ~(ulong)7, r0 = b * block_rows;
    if (r0 >= rows) return;
    const size_t r1 = min(r0 + (size_t)block_rows, (size_t)rows);
    __global float *p = part + b * n;
    __global const float *row = dy + dy_off + r0 * n;
    for (size_t j = 0; j < n8; j += 8) vstore8(vload8(0, row + j), 0, p + j);
    for (size_t j = n8; j < n; j++) p[j] = row[j];
    for (size_t r = r0 + 1; r < r1; r++) {
        row = dy + dy_off + r * n;
        for (size_t j = 0; j < n8; j += 8) vstore8(vload8(0, p + j) + vload8(0, row + j), 0, p + j);
        for (size_t j = n8; j < n; j++) p[j] += row[j];
    }
}

__kernel void bias_grad_final(__global float *db, const ulong db_off, __global const float *part, const ulong n,
                              const ulong blocks) {
    const size_t j = get_global_id(0);
    if (j >= n) return;
    float t = 0.0f;
    for (size_t b = 0; b < blocks; b++) t += part[b * n + j];
    db[db_off + j] += t;
}
