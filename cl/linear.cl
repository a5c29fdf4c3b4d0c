// The bias half of a linear layer (§1; the products are CLBlast GEMMs).
//   bias_add:  y[r, j] += alpha·b[j], work-item (j, r) (rf_cl_grid2).
//   bias_grad: db[j] += Σ_r dy[r, j] in 2-D groups of C columns × S slices:
//              item (j, s) sums rows s, s + S, ... of column j (neighbouring
//              items read neighbouring columns: coalesced), then slice 0
//              adds the S partials in slice order (no atomics,
//              deterministic). S slices put S times more items to work than
//              one per column (n = 256 columns fill no GPU).

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
