// The bias half of a linear layer (§1; the products are CLBlast GEMMs).
//   bias_add:  y[r, j] += b[j], one work-item per element.
//   bias_grad: db[j] += Σ_r dy[r, j], one work-item per column summing rows
//              in order (no atomics, deterministic).

__kernel void bias_add(__global float *y, const ulong y_off, __global const float *b, const ulong b_off,
                       const ulong n, const ulong total) {
    size_t i = get_global_id(0);
    if (i >= total) return;
    y[y_off + i] += b[b_off + i % n];
}

__kernel void bias_grad(__global float *db, const ulong db_off, __global const float *dy, const ulong dy_off,
                        const ulong n, const ulong rows) {
    size_t j = get_global_id(0);
    if (j >= n) return;
    float s = 0.0f;
    for (size_t r = 0; r < rows; r++) s += dy[dy_off + r * n + j];
    db[db_off + j] += s;
}
