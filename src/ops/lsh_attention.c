/* LSH self-attention's front door (§3–§5): the state (resolved
 * geometry and the intermediate results the backward pass reuses), the
 * argument checks, the host-side rotations (§2) and the hashing GEMM
 * (rf_gemm on either device), then the backends' stages. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "ops/ops_impl.h"
#include "core/philox.h"

#define OP "rf_lsh_attention"

void rf_lsh_state_free(rf_lsh_state *st) {
    if (!st) return;
    rf_tensor *ts[] = {&st->rotations, &st->rotated, &st->buckets, &st->perm, &st->undo, &st->o_sorted,
                       &st->lse_sorted};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        if (ts[i]->buf) rf_tensor_free(ts[i]);
    memset(st, 0, sizeof *st);
}

static rf_status check_config(const rf_lsh_config *cfg) {
    if (!cfg) return rf_error(RF_ERR_INVALID_ARG, "%s: cfg is NULL", OP);
    if (cfg->n_heads < 1 || cfg->head_dim < 1 || cfg->n_hashes < 1 || cfg->chunk_len < 1)
        return rf_error(RF_ERR_INVALID_ARG, "%s: n_heads = %d, head_dim = %d, n_hashes = %d, chunk_len = %d must all be ≥ 1",
                        OP, cfg->n_heads, cfg->head_dim, cfg->n_hashes, cfg->chunk_len);
    const int *f = cfg->bucket_factors;
    if (f[0] || f[1]) {
        if (f[0] < 2 || f[1] < 2 || f[0] % 2 || f[1] % 2)
            return rf_error(RF_ERR_INVALID_ARG, "%s: bucket_factors = {%d, %d} must both be even and ≥ 2", OP, f[0], f[1]);
        if (f[0] > (1 << 15) || f[1] > (1 << 15))
            return rf_error(RF_ERR_INVALID_ARG, "%s: bucket_factors = {%d, %d} are too large", OP, f[0], f[1]);
        if (cfg->n_buckets && cfg->n_buckets != f[0] * f[1])
            return rf_error(RF_ERR_INVALID_ARG, "%s: n_buckets = %d disagrees with bucket_factors {%d, %d}", OP,
                            cfg->n_buckets, f[0], f[1]);
    } else if (cfg->n_buckets < 0 || cfg->n_buckets % 2 || cfg->n_buckets > (1 << 30)) {
        return rf_error(RF_ERR_INVALID_ARG, "%s: n_buckets = %d must be even and ≥ 2 (or 0 for automatic)", OP,
                        cfg->n_buckets);
    }
    if (cfg->max_position < 0)
        return rf_error(RF_ERR_INVALID_ARG, "%s: max_position = %lld is negative", OP, (long long)cfg->max_position);
    /* p = 1 (an infinite scale) and NaN are refused, as rf_dropout does. */
    if (!(cfg->dropout >= 0.0f && cfg->dropout < 1.0f))
        return rf_error(RF_ERR_INVALID_ARG, "%s: dropout = %g must lie in [0, 1)", OP, (double)cfg->dropout);
    /* HF's float32 semantics reproduce its inference outputs (§12), where
     * dropout is off; training uses the exact softmax. */
    if (cfg->dropout > 0.0f && cfg->hf_rounding)
        return rf_error(RF_ERR_UNSUPPORTED,
                        "%s: dropout = %g needs the exact softmax; hf_rounding (HF's float32 inference semantics) "
                        "is for dropout = 0 only",
                        OP, (double)cfg->dropout);
    return RF_OK;
}

/* The dropout mask's parameters for the next attend (§2); the scale is
 * computed once, in float, so both backends multiply by the same value. */
static void set_dropout(rf_lsh_state *st, const rf_lsh_config *cfg) {
    st->dropout = cfg->dropout;
    st->dropout_scale = 1.0f / (1.0f - cfg->dropout);
    st->dropout_stream = cfg->dropout_stream;
    st->seed = cfg->seed, st->step = cfg->step;
}

static rf_status alloc(rf_lsh_state *st, rf_tensor *t, rf_dtype dtype, int ndim, const int64_t *shape) {
    rf_status s = rf_tensor_alloc(st->device, t, dtype, ndim, shape);
    if (s != RF_OK) rf_lsh_state_free(st);
    return s;
}

rf_status rf_lsh_state_init(rf_lsh_state *st, rf_device *dev, const rf_lsh_config *cfg, int64_t batch,
                            int64_t seq_len) {
    if (!st) return rf_error(RF_ERR_INVALID_ARG, "%s: state is NULL", OP);
    memset(st, 0, sizeof *st);
    if (!dev) return rf_error(RF_ERR_INVALID_ARG, "%s: device is NULL", OP);
    RF_TRY(check_config(cfg));
    if (batch < 1 || seq_len < 1)
        return rf_error(RF_ERR_INVALID_ARG, "%s: batch = %lld and sequence length = %lld must be ≥ 1", OP,
                        (long long)batch, (long long)seq_len);
    const int m = cfg->chunk_len;
    st->full = seq_len <= m;
    if (!st->full && seq_len % m)
        return rf_error(RF_ERR_INVALID_ARG,
                        "%s: the sequence length L = %lld is not a multiple of the chunk length chunk_len = %d (§5.3)",
                        OP, (long long)seq_len, m);
    st->device = dev;
    st->batch = batch, st->seq_len = seq_len;
    st->n_heads = cfg->n_heads, st->head_dim = cfg->head_dim;
    st->causal = cfg->causal;
    st->hf_rounding = cfg->hf_rounding;
    set_dropout(st, cfg);
    if (st->full) {
        /* §5.7: one round, one chunk of L, every item in bucket 0. */
        st->n_rounds = 1, st->chunk_len = (int)seq_len;
        st->n_buckets = 1, st->factors[0] = 1, st->factors[1] = 0, st->rot_cols = 0;
    } else {
        st->n_rounds = cfg->n_hashes, st->chunk_len = m;
        if (cfg->bucket_factors[0]) {
            st->factors[0] = cfg->bucket_factors[0], st->factors[1] = cfg->bucket_factors[1];
        } else if (cfg->n_buckets) {
            st->factors[0] = cfg->n_buckets, st->factors[1] = 0;
        } else {
            RF_TRY(rf_lsh_auto_buckets(st->factors, seq_len, m, cfg->max_position));
        }
        st->n_buckets = st->factors[1] ? st->factors[0] * st->factors[1] : st->factors[0];
        st->rot_cols = (st->factors[0] + st->factors[1]) / 2;
    }
    st->bucket_stride = st->n_buckets;
    /* Kernels index the R·L items of a (batch, head) and the bucket ids
     * (round · (nb + 1) + bucket) with int. */
    const int64_t N = (int64_t)st->n_rounds * seq_len;
    if (N > INT_MAX || (int64_t)st->n_rounds * (st->n_buckets + 1) > INT_MAX)
        return rf_error(RF_ERR_INVALID_ARG, "%s: R·L = %lld items per head exceed the int range", OP, (long long)N);
    if (dev->ops.lsh_plan) /* optional: a backend with limits to check (OpenCL) */
        RF_TRY(dev->ops.lsh_plan(dev, st->head_dim, st->chunk_len, st->n_buckets + 1));
    const int64_t H = st->n_heads, d = st->head_dim, B = batch;
    if (!st->full) {
        RF_TRY(alloc(st, &st->rotations, RF_F32, 4, (int64_t[]){H, d, st->n_rounds, st->rot_cols}));
        RF_TRY(alloc(st, &st->rotated, RF_F32, 3, (int64_t[]){H, B * seq_len, (int64_t)st->n_rounds * st->rot_cols}));
    }
    RF_TRY(alloc(st, &st->buckets, RF_I32, 3, (int64_t[]){B, H, N}));
    RF_TRY(alloc(st, &st->perm, RF_I32, 3, (int64_t[]){B, H, N}));
    RF_TRY(alloc(st, &st->undo, RF_I32, 3, (int64_t[]){B, H, N}));
    RF_TRY(alloc(st, &st->o_sorted, RF_F32, 4, (int64_t[]){B, H, N, d}));
    RF_TRY(alloc(st, &st->lse_sorted, RF_F32, 3, (int64_t[]){B, H, N}));
    return RF_OK;
}

static rf_status check_state(const char *op, const rf_lsh_state *st) {
    if (!st || !st->device || !st->buckets.buf)
        return rf_error(RF_ERR_INVALID_ARG, "%s: the state is NULL or not initialised (rf_lsh_state_init)", op);
    return RF_OK;
}

/* qk or v: [B, L, H·d] f32 on the state's device. */
static rf_status check_input(const char *op, const char *name, const rf_tensor *t, const rf_lsh_state *st) {
    RF_CHECK_TENSOR(op, name, t, RF_F32, 3, st->batch, st->seq_len, (int64_t)st->n_heads * st->head_dim);
    return rf_check_device(op, name, t, st->device);
}

static rf_status check_mask(const char *op, const rf_tensor *mask, const rf_lsh_state *st) {
    if (!mask) return RF_OK;
    RF_CHECK_TENSOR(op, "mask", mask, RF_I32, 2, st->batch, st->seq_len);
    return rf_check_device(op, "mask", mask, st->device);
}

rf_status rf_lsh_rotations_draw(rf_lsh_state *st, uint64_t seed, uint32_t layer, uint32_t step) {
    const char *op = "rf_lsh_rotations_draw";
    RF_TRY(check_state(op, st));
    if (st->full) return RF_OK; /* §5.7: nothing is hashed */
    /* §2: normals on the host, uploaded, so every backend sees the same bits. */
    size_t n = rf_tensor_numel(&st->rotations);
    float *host = malloc(n * sizeof *host);
    if (!host) return rf_error(RF_ERR_OUT_OF_MEMORY, "%s: no host memory for %zu rotations", op, n);
    rf_philox_normals(host, n, seed, rf_philox_stream(layer, RF_PHILOX_ROTATIONS), step);
    rf_status s = rf_tensor_upload(&st->rotations, host, n * sizeof *host);
    free(host);
    return s;
}

rf_status rf_lsh_hash(rf_lsh_state *st, const rf_tensor *qk, const rf_tensor *mask) {
    const char *op = "rf_lsh_hash";
    RF_TRY(check_state(op, st));
    RF_TRY(check_input(op, "qk", qk, st));
    RF_TRY(check_mask(op, mask, st));
    rf_device *dev = st->device;
    if (st->full) {
        const int32_t zero = 0;
        st->bucket_stride = 1;
        return rf_buffer_fill(st->buckets.buf, st->buckets.offset * sizeof zero, &zero, sizeof zero,
                              rf_tensor_numel(&st->buckets) * sizeof zero);
    }
    /* x·R per head (§3): rows b·L + t of head h's slice of qk (ld H·d) times
     * R_h viewed as [d, R·rot_cols], into rotated[h]. */
    const int64_t BL = st->batch * st->seq_len, H = st->n_heads, d = st->head_dim;
    const int64_t cols = (int64_t)st->n_rounds * st->rot_cols;
    for (int64_t h = 0; h < H; h++) {
        rf_tensor a, b, c;
        RF_TRY(rf_tensor_view(&a, qk->buf, qk->offset + (size_t)(h * d), RF_F32, 1, (int64_t[]){BL * H * d - h * d}));
        RF_TRY(rf_tensor_view(&b, st->rotations.buf, st->rotations.offset + (size_t)(h * d * cols), RF_F32, 2,
                              (int64_t[]){d, cols}));
        RF_TRY(rf_tensor_view(&c, st->rotated.buf, st->rotated.offset + (size_t)(h * BL * cols), RF_F32, 2,
                              (int64_t[]){BL, cols}));
        rf_gemm_desc g = {.m = BL, .n = cols, .k = d, .alpha = 1.0f, .beta = 0.0f, .lda = H * d, .batch = 1};
        RF_TRY(rf_gemm(&c, &a, &b, &g));
    }
    st->bucket_stride = mask ? st->n_buckets + 1 : st->n_buckets;
    RF_DISPATCH(dev, lsh_buckets, "lsh_buckets", st, mask);
}

rf_status rf_lsh_sort(rf_lsh_state *st) {
    RF_TRY(check_state("rf_lsh_sort", st));
    rf_device *dev = st->device;
    RF_DISPATCH(dev, lsh_sort, "lsh_sort", st);
}

rf_status rf_lsh_attend(rf_lsh_state *st, const rf_tensor *qk, const rf_tensor *v, const rf_tensor *mask) {
    const char *op = "rf_lsh_attend";
    RF_TRY(check_state(op, st));
    RF_TRY(check_input(op, "qk", qk, st));
    RF_TRY(check_input(op, "v", v, st));
    RF_TRY(check_mask(op, mask, st));
    rf_device *dev = st->device;
    RF_DISPATCH(dev, lsh_attend, "lsh_attend", st, qk, v, mask);
}

rf_status rf_lsh_combine(rf_tensor *out, const rf_lsh_state *st) {
    const char *op = "rf_lsh_combine";
    RF_TRY(check_state(op, st));
    RF_TRY(check_input(op, "out", out, st));
    rf_device *dev = st->device;
    RF_DISPATCH(dev, lsh_combine, "lsh_combine", out, st);
}

rf_status rf_lsh_attention_forward(rf_tensor *out, rf_lsh_state *st, const rf_tensor *qk, const rf_tensor *v,
                                   const rf_tensor *mask, const rf_tensor *rotations, const rf_lsh_config *cfg) {
    const char *op = "rf_lsh_attention_forward";
    RF_TRY(check_state(op, st));
    RF_TRY(check_config(cfg));
    if (cfg->n_heads != st->n_heads || cfg->head_dim != st->head_dim || cfg->causal != st->causal ||
        (!st->full && (cfg->n_hashes != st->n_rounds || cfg->chunk_len != st->chunk_len)))
        return rf_error(RF_ERR_INVALID_ARG,
                        "%s: cfg (H %d, d %d, R %d, m %d, causal %d) differs from the state's (H %d, d %d, R %d, m %d, "
                        "causal %d)",
                        op, cfg->n_heads, cfg->head_dim, cfg->n_hashes, cfg->chunk_len, cfg->causal, st->n_heads,
                        st->head_dim, st->n_rounds, st->chunk_len, st->causal);
    if (cfg->dropout > 0.0f && st->hf_rounding)
        return rf_error(RF_ERR_UNSUPPORTED, "%s: dropout = %g with a state made with hf_rounding", op,
                        (double)cfg->dropout);
    if (!out) return rf_error(RF_ERR_INVALID_ARG, "%s: out is NULL", op);
    RF_TRY(check_input(op, "out", out, st));
    RF_TRY(check_input(op, "qk", qk, st));
    RF_TRY(check_input(op, "v", v, st));
    RF_TRY(check_mask(op, mask, st));
    if (rotations && !st->full) {
        RF_CHECK_TENSOR(op, "rotations", rotations, RF_F32, 4, st->n_heads, st->head_dim, st->n_rounds, st->rot_cols);
        RF_TRY(rf_check_device(op, "rotations", rotations, st->device));
        RF_TRY(rf_tensor_copy(&st->rotations, rotations));
    } else {
        RF_TRY(rf_lsh_rotations_draw(st, cfg->seed, cfg->layer, cfg->step));
    }
    set_dropout(st, cfg); /* this call's step: the backward regenerates its mask */
    RF_TRY(rf_lsh_hash(st, qk, mask));
    RF_TRY(rf_lsh_sort(st));
    RF_TRY(rf_lsh_attend(st, qk, v, mask));
    return rf_lsh_combine(out, st);
}

rf_status rf_lsh_attention_backward(rf_tensor *dqk, rf_tensor *dv, const rf_tensor *dout, const rf_lsh_state *st,
                                    const rf_tensor *qk, const rf_tensor *v, const rf_tensor *mask) {
    const char *op = "rf_lsh_attention_backward";
    RF_TRY(check_state(op, st));
    /* HF's float32 semantics (unnormalised weights) exist to reproduce its
     * inference outputs (§12); training differentiates the exact softmax. */
    if (st->hf_rounding)
        return rf_error(RF_ERR_UNSUPPORTED,
                        "%s: the state was made with hf_rounding (HF's float32 inference semantics); the backward "
                        "pass needs the exact softmax (hf_rounding = false)",
                        op);
    RF_TRY(check_input(op, "dqk", dqk, st));
    RF_TRY(check_input(op, "dv", dv, st));
    RF_TRY(check_input(op, "dout", dout, st));
    RF_TRY(check_input(op, "qk", qk, st));
    RF_TRY(check_input(op, "v", v, st));
    RF_TRY(check_mask(op, mask, st));
    rf_device *dev = st->device;
    RF_DISPATCH(dev, lsh_attention_backward, "lsh_attention_backward", dqk, dv, dout, st, qk, v, mask);
}
