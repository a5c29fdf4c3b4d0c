/* Front doors of cached incremental decoding's attention
 * (ops/decode_attention.h): the LSH cache's allocation and the argument
 * checks, then the backend entries (device/op_table.h). */
#include <limits.h>
#include <string.h>
#include "ops/ops_impl.h"
#include "ops/decode_attention.h"

void rf_lsh_cache_free(rf_lsh_cache *c) {
    if (!c) return;
    rf_tensor *ts[] = {&c->qk, &c->v, &c->buckets, &c->perm[0], &c->perm[1]};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        if (ts[i]->buf) rf_tensor_free(ts[i]);
    memset(c, 0, sizeof *c);
}

size_t rf_lsh_cache_bytes(const rf_lsh_cache *c) {
    const rf_tensor *ts[] = {&c->qk, &c->v, &c->buckets, &c->perm[0], &c->perm[1]};
    size_t n = 0;
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        if (ts[i]->buf) n += rf_tensor_numel(ts[i]) * rf_dtype_size(ts[i]->dtype);
    return n;
}

rf_status rf_lsh_cache_init(rf_lsh_cache *c, rf_device *dev, const rf_lsh_config *cfg, int64_t batch,
                            int64_t capacity) {
    const char *op = "rf_lsh_cache_init";
    if (!c || !dev || !cfg) return rf_error(RF_ERR_INVALID_ARG, "%s: null argument", op);
    memset(c, 0, sizeof *c);
    const int *f = cfg->bucket_factors;
    int f1 = f[0] ? f[0] : cfg->n_buckets, f2 = f[0] ? f[1] : 0;
    if (cfg->n_heads < 1 || cfg->head_dim < 1 || cfg->head_dim > 128 || cfg->n_hashes < 1 || cfg->chunk_len < 1 ||
        f1 < 2 || f1 % 2 || f2 < 0 || f2 % 2 || batch < 1 || capacity < 1)
        return rf_error(RF_ERR_INVALID_ARG,
                        "%s: H = %d, d = %d (≤ 128), R = %d, m = %d, buckets {%d, %d} (even), B = %lld, capacity = %lld",
                        op, cfg->n_heads, cfg->head_dim, cfg->n_hashes, cfg->chunk_len, f1, f2, (long long)batch,
                        (long long)capacity);
    int nb = f2 ? f1 * f2 : f1;
    if (capacity > INT_MAX / 2 || (int64_t)cfg->n_hashes * (nb + 1) > INT_MAX)
        return rf_error(RF_ERR_INVALID_ARG, "%s: capacity %lld or R·(nb + 1) exceeds the int range", op,
                        (long long)capacity);
    c->batch = batch, c->capacity = capacity;
    c->n_heads = cfg->n_heads, c->head_dim = cfg->head_dim, c->n_rounds = cfg->n_hashes, c->chunk_len = cfg->chunk_len;
    c->factors[0] = f1, c->factors[1] = f2, c->n_buckets = nb, c->rot_cols = (f1 + f2) / 2, c->stride = nb;
    const int64_t HD = (int64_t)c->n_heads * c->head_dim, ids[] = {batch, c->n_heads, c->n_rounds, capacity};
    rf_status s = rf_tensor_alloc(dev, &c->qk, RF_F32, 3, (int64_t[]){batch, capacity, HD});
    if (s == RF_OK) s = rf_tensor_alloc(dev, &c->v, RF_F32, 3, (int64_t[]){batch, capacity, HD});
    if (s == RF_OK) s = rf_tensor_alloc(dev, &c->buckets, RF_I32, 4, ids);
    if (s == RF_OK) s = rf_tensor_alloc(dev, &c->perm[0], RF_I32, 4, ids);
    if (s == RF_OK) s = rf_tensor_alloc(dev, &c->perm[1], RF_I32, 4, ids);
    if (s != RF_OK) rf_lsh_cache_free(c);
    return s;
}

static rf_status check_rotations(const char *op, const rf_lsh_cache *c, const rf_tensor *rotations) {
    RF_CHECK_TENSOR(op, "rotations", rotations, RF_F32, 4, c->n_heads, c->head_dim, c->n_rounds, c->rot_cols);
    return rf_check_device(op, "rotations", rotations, c->qk.buf->dev);
}

/* The entries, through RF_DISPATCH (which returns); the callers then
 * update the cache's host-side fields. */
static rf_status dispatch_sort(rf_lsh_cache *c, const rf_tensor *rotations) {
    RF_DISPATCH(c->qk.buf->dev, lsh_cache_sort, "lsh_cache_sort", c, rotations);
}

static rf_status dispatch_attend(rf_tensor *out, rf_lsh_cache *c, const rf_tensor *qk, const rf_tensor *v,
                                 const rf_tensor *rotations) {
    RF_DISPATCH(c->qk.buf->dev, lsh_cache_attend, "lsh_cache_attend", out, c, qk, v, rotations);
}

rf_status rf_lsh_cache_sort(rf_lsh_cache *c, const rf_tensor *rotations) {
    const char *op = "rf_lsh_cache_sort";
    if (!c || !c->qk.buf) return rf_error(RF_ERR_INVALID_ARG, "%s: no cache", op);
    if (c->length < 1) return rf_error(RF_ERR_INVALID_ARG, "%s: the cache holds no position", op);
    if (rotations) RF_TRY(check_rotations(op, c, rotations));
    if (rotations) c->stride = c->n_buckets;
    RF_TRY(dispatch_sort(c, rotations));
    c->hashed = true;
    return RF_OK;
}

static rf_status check_rows(const char *op, const char *name, const rf_tensor *t, int64_t B, int64_t HD,
                            const rf_device *dev) {
    RF_CHECK_TENSOR(op, name, t, RF_F32, 2, B, HD);
    return rf_check_device(op, name, t, dev);
}

rf_status rf_lsh_cache_attend(rf_tensor *out, rf_lsh_cache *c, const rf_tensor *qk, const rf_tensor *v,
                              const rf_tensor *rotations) {
    const char *op = "rf_lsh_cache_attend";
    if (!c || !c->qk.buf) return rf_error(RF_ERR_INVALID_ARG, "%s: no cache", op);
    if (c->length >= c->capacity)
        return rf_error(RF_ERR_INVALID_ARG, "%s: the cache is full (%lld positions)", op, (long long)c->capacity);
    rf_device *dev = c->qk.buf->dev;
    const int64_t HD = (int64_t)c->n_heads * c->head_dim;
    RF_TRY(check_rows(op, "out", out, c->batch, HD, dev));
    RF_TRY(check_rows(op, "qk", qk, c->batch, HD, dev));
    RF_TRY(check_rows(op, "v", v, c->batch, HD, dev));
    if (c->hashed) {
        if (!rotations) return rf_error(RF_ERR_INVALID_ARG, "%s: a hashed cache needs this step's rotations", op);
        RF_TRY(check_rotations(op, c, rotations));
    }
    RF_TRY(dispatch_attend(out, c, qk, v, c->hashed ? rotations : NULL));
    if (c->hashed) c->cur ^= 1;
    c->length++;
    return RF_OK;
}

rf_status rf_local_cache_attend(rf_tensor *out, rf_tensor *k_ring, rf_tensor *v_ring, const rf_tensor *q,
                                const rf_tensor *k, const rf_tensor *v, int64_t pos, int chunk_len, int n_heads) {
    const char *op = "rf_local_cache_attend";
    if (!out || !q || n_heads < 1 || chunk_len < 1 || pos < 0)
        return rf_error(RF_ERR_INVALID_ARG, "%s: need out, q, n_heads ≥ 1, chunk_len ≥ 1, pos ≥ 0", op);
    const int64_t B = out->ndim == 2 ? out->shape[0] : -1, HD = out->ndim == 2 ? out->shape[1] : -1;
    rf_device *dev = out->buf ? out->buf->dev : NULL;
    if (B < 1 || HD % n_heads || HD / n_heads > 128 || !dev)
        return rf_error(RF_ERR_INVALID_ARG, "%s: out must be [B, H·d] with H = %d and d ≤ 128", op, n_heads);
    RF_TRY(check_rows(op, "out", out, B, HD, dev));
    RF_TRY(check_rows(op, "q", q, B, HD, dev));
    RF_TRY(check_rows(op, "k", k, B, HD, dev));
    RF_TRY(check_rows(op, "v", v, B, HD, dev));
    RF_CHECK_TENSOR(op, "k_ring", k_ring, RF_F32, 3, B, 2 * (int64_t)chunk_len, HD);
    RF_CHECK_TENSOR(op, "v_ring", v_ring, RF_F32, 3, B, 2 * (int64_t)chunk_len, HD);
    RF_TRY(rf_check_device(op, "k_ring", k_ring, dev));
    RF_TRY(rf_check_device(op, "v_ring", v_ring, dev));
    RF_DISPATCH(dev, local_cache_attend, "local_cache_attend", out, k_ring, v_ring, q, k, v, pos, chunk_len, n_heads);
}
