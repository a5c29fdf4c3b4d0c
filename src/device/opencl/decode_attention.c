/* Cached incremental decoding's attention on OpenCL (cl/decode_attention.cl):
 * one work-group per (batch, head), or per (batch, head, round) for the
 * sort; the window arrays are local memory of 2·m keys. */
#include "device/opencl/cl_attention.h"
#include "ops/decode_attention.h"

#define DECODE_GROUP 64

static rf_status kernel(rf_device *dev, int head_dim, const char *name, cl_kernel *k, size_t *local) {
    char options[96];
    rf_cl_attn_options(options, sizeof options, head_dim, 0);
    RF_TRY(rf_cl_kernel(dev, "decode_attention.cl", options, name, k));
    return rf_cl_group_size(dev, *k, DECODE_GROUP, local);
}

static rf_status rf_cl_lsh_cache_sort(rf_lsh_cache *c, const rf_tensor *rotations) {
    rf_device *dev = c->qk.buf->dev;
    cl_kernel k;
    size_t local;
    RF_TRY(kernel(dev, c->head_dim, "lsh_cache_sort", &k, &local));
    size_t global = (size_t)(c->batch * c->n_heads * c->n_rounds) * local;
    rf_cl_attn_optional rot = rf_cl_attn_optional_of(rotations);
    cl_ulong qk_off = c->qk.offset, ids_off = c->buckets.offset, perm_off = c->perm[c->cur].offset;
    cl_int H = c->n_heads, R = c->n_rounds, cap = (cl_int)c->capacity, L = (cl_int)c->length, f1 = c->factors[0],
           f2 = c->factors[1], rc = c->rot_cols, nb = c->n_buckets, rehash = rotations != NULL;
    return RF_CL_LAUNCH(dev, k, "lsh_cache_sort", 1, &global, &local, RF_MEM(&c->qk), RF_ARG(qk_off),
                        RF_MEM(&c->buckets), RF_MEM(&c->perm[c->cur]), RF_ARG(ids_off), RF_ARG(perm_off),
                        RF_ARG(rot.mem), RF_ARG(rot.offset), RF_ARG(H), RF_ARG(R), RF_ARG(cap), RF_ARG(L), RF_ARG(f1),
                        RF_ARG(f2), RF_ARG(rc), RF_ARG(nb), RF_ARG(rehash));
}

static rf_status rf_cl_lsh_cache_attend(rf_tensor *out, rf_lsh_cache *c, const rf_tensor *qk, const rf_tensor *v,
                                        const rf_tensor *rotations) {
    rf_device *dev = c->qk.buf->dev;
    if (2 * c->chunk_len > 512)
        return rf_error(RF_ERR_UNSUPPORTED, "rf_lsh_cache_attend: chunk length %d exceeds the OpenCL kernel's 256",
                        c->chunk_len);
    cl_kernel k;
    size_t local;
    RF_TRY(kernel(dev, c->head_dim, "lsh_cache_attend", &k, &local));
    size_t global = (size_t)(c->batch * c->n_heads) * local;
    rf_cl_attn_optional rot = rf_cl_attn_optional_of(rotations);
    const rf_tensor *from = &c->perm[c->cur], *to = &c->perm[c->cur ^ 1];
    cl_ulong qk_off = c->qk.offset, v_off = c->v.offset, ids_off = c->buckets.offset, from_off = from->offset,
             to_off = to->offset, qn_off = qk->offset, vn_off = v->offset, out_off = out->offset;
    cl_int H = c->n_heads, R = c->n_rounds, cap = (cl_int)c->capacity, P = (cl_int)c->length, m = c->chunk_len,
           f1 = c->factors[0], f2 = c->factors[1], rc = c->rot_cols, stride = c->stride, hashed = c->hashed;
    size_t window = (size_t)(2 * m) + 1, d = (size_t)c->head_dim;
    return RF_CL_LAUNCH(dev, k, "lsh_cache_attend", 1, &global, &local, RF_MEM(&c->qk), RF_MEM(&c->v),
                        RF_ARG(qk_off), RF_ARG(v_off), RF_MEM(&c->buckets), RF_MEM(from), RF_MEM(to), RF_ARG(ids_off),
                        RF_ARG(from_off), RF_ARG(to_off), RF_MEM(qk), RF_MEM(v), RF_MEM(out), RF_ARG(qn_off),
                        RF_ARG(vn_off), RF_ARG(out_off), RF_ARG(rot.mem), RF_ARG(rot.offset), RF_ARG(H), RF_ARG(R),
                        RF_ARG(cap), RF_ARG(P), RF_ARG(m), RF_ARG(f1), RF_ARG(f2), RF_ARG(rc), RF_ARG(stride),
                        RF_ARG(hashed), RF_LOCAL(window * sizeof(float)), RF_LOCAL(window * sizeof(cl_int)),
                        RF_LOCAL(d * sizeof(float)), RF_LOCAL((size_t)R * d * sizeof(float)),
                        RF_LOCAL((size_t)R * sizeof(float)), RF_LOCAL((size_t)(rc > 0 ? rc : 1) * sizeof(float)),
                        RF_LOCAL(2 * sizeof(cl_int)));
}

static rf_status rf_cl_local_cache_attend(rf_tensor *out, rf_tensor *k_ring, rf_tensor *v_ring, const rf_tensor *q,
                                          const rf_tensor *k, const rf_tensor *v, int64_t pos, int chunk_len,
                                          int n_heads) {
    rf_device *dev = out->buf->dev;
    if (pos > INT32_MAX || chunk_len > 4096)
        return rf_error(RF_ERR_UNSUPPORTED, "rf_local_cache_attend: position %lld or chunk %d too large", (long long)pos,
                        chunk_len);
    const int64_t B = out->shape[0], d = out->shape[1] / n_heads;
    cl_kernel kn;
    size_t local;
    RF_TRY(kernel(dev, (int)d, "local_cache_attend", &kn, &local));
    size_t global = (size_t)(B * n_heads) * local;
    cl_ulong out_off = out->offset, kr_off = k_ring->offset, vr_off = v_ring->offset, q_off = q->offset,
             k_off = k->offset, v_off = v->offset;
    cl_int H = n_heads, p = (cl_int)pos, m = chunk_len;
    return RF_CL_LAUNCH(dev, kn, "local_cache_attend", 1, &global, &local, RF_MEM(out), RF_MEM(k_ring), RF_MEM(v_ring),
                        RF_MEM(q), RF_MEM(k), RF_MEM(v), RF_ARG(out_off), RF_ARG(kr_off), RF_ARG(vr_off), RF_ARG(q_off),
                        RF_ARG(k_off), RF_ARG(v_off), RF_ARG(H), RF_ARG(p), RF_ARG(m),
                        RF_LOCAL((size_t)(2 * chunk_len) * sizeof(float)), RF_LOCAL(sizeof(float)));
}

void rf_cl_decode_attention_register(rf_op_table *ops) {
    ops->lsh_cache_sort = rf_cl_lsh_cache_sort;
    ops->lsh_cache_attend = rf_cl_lsh_cache_attend;
    ops->local_cache_attend = rf_cl_local_cache_attend;
}
