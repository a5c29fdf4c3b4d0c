/* Local (chunked) attention's front door (§6, HF LocalSelfAttention),
 * and the argument checks full attention shares (ops/attention_impl.h). */
#include <math.h>
#include "ops/attention_impl.h"

/* Whether two tensors share any byte of one buffer. */
static bool overlaps(const rf_tensor *a, const rf_tensor *b) {
    if (!a || !b || a->buf != b->buf) return false;
    size_t a0 = a->offset * rf_dtype_size(a->dtype), a1 = a0 + rf_tensor_numel(a) * rf_dtype_size(a->dtype);
    size_t b0 = b->offset * rf_dtype_size(b->dtype), b1 = b0 + rf_tensor_numel(b) * rf_dtype_size(b->dtype);
    return a0 < b1 && b0 < a1;
}

/* cfg, q, k, v and mask; fills *w and *dev. */
static rf_status check_inputs(const char *op, bool full, const rf_tensor *q, const rf_tensor *k, const rf_tensor *v,
                              const rf_tensor *mask, const rf_attention_config *cfg, rf_attn_window *w,
                              rf_device **dev) {
    if (!cfg) return rf_error(RF_ERR_INVALID_ARG, "%s: cfg is NULL", op);
    if (cfg->n_heads <= 0 || cfg->head_dim <= 0)
        return rf_error(RF_ERR_INVALID_ARG, "%s: n_heads = %d and head_dim = %d must be positive", op,
                        cfg->n_heads, cfg->head_dim);
    if (cfg->head_dim > RF_ATTN_MAX_HEAD_DIM)
        return rf_error(RF_ERR_UNSUPPORTED, "%s: head_dim = %d exceeds the supported maximum %d", op, cfg->head_dim,
                        RF_ATTN_MAX_HEAD_DIM);
    /* !(x < 1) also refuses NaN. p = 1 would scale by 1/0 (§2). */
    if (!(cfg->dropout >= 0.0f && cfg->dropout < 1.0f))
        return rf_error(RF_ERR_INVALID_ARG, "%s: dropout = %g must be in [0, 1)", op, (double)cfg->dropout);
    if (!q || !q->buf) return rf_error(RF_ERR_INVALID_ARG, "%s: q is NULL", op);
    int64_t hd = (int64_t)cfg->n_heads * cfg->head_dim;
    RF_CHECK_TENSOR(op, "q", q, RF_F32, 3, -1, -1, hd);
    int64_t b = q->shape[0], len = q->shape[1];
    if (b <= 0 || len <= 0)
        return rf_error(RF_ERR_INVALID_ARG, "%s: q has B = %lld, L = %lld: nothing to attend", op, (long long)b,
                        (long long)len);
    *dev = q->buf->dev;
    bool shared = cfg->shared_qk;
    if (shared && !full)
        return rf_error(RF_ERR_INVALID_ARG,
                        "%s: shared_qk is for full attention only (local attention has its own keys, §6)", op);
    if (shared) {
        if (k && (k->buf != q->buf || k->offset != q->offset))
            return rf_error(RF_ERR_INVALID_ARG, "%s: with shared_qk the keys come from q: k must be NULL or q", op);
    } else {
        RF_CHECK_TENSOR(op, "k", k, RF_F32, 3, b, len, hd);
        RF_TRY(rf_check_device(op, "k", k, *dev));
    }
    RF_CHECK_TENSOR(op, "v", v, RF_F32, 3, b, len, hd);
    RF_TRY(rf_check_device(op, "v", v, *dev));
    if (mask) {
        RF_CHECK_TENSOR(op, "mask", mask, RF_I32, 2, b, len);
        RF_TRY(rf_check_device(op, "mask", mask, *dev));
    }
    if (len > INT32_MAX / 2 || b * cfg->n_heads > INT32_MAX)
        return rf_error(RF_ERR_UNSUPPORTED, "%s: L = %lld or B·H = %lld is too large", op, (long long)len,
                        (long long)(b * cfg->n_heads));
    *w = (rf_attn_window){.batch = b, .len = len, .heads = cfg->n_heads, .head_dim = cfg->head_dim,
                          .chunk_len = len, .causal = cfg->causal, .self_mask = shared,
                          /* §5.2: normalised keys already carry 1/√d; otherwise §6 divides k by √d. */
                          .scale = shared ? 1.0f : (float)(1.0 / sqrt((double)cfg->head_dim)),
                          /* §2: the threshold and the float 1/(1−p), once, for both backends. */
                          .dropout = cfg->dropout > 0.0f, .keep = rf_philox_dropout_threshold(cfg->dropout),
                          .keep_scale = 1.0f / (1.0f - cfg->dropout), .seed = cfg->seed, .stream = cfg->stream,
                          .step = cfg->step};
    if (full) return RF_OK;
    if (cfg->chunk_len <= 0)
        return rf_error(RF_ERR_INVALID_ARG, "%s: chunk_len = %d must be positive", op, cfg->chunk_len);
    if (cfg->chunks_before < 0 || cfg->chunks_after < 0)
        return rf_error(RF_ERR_INVALID_ARG, "%s: chunks_before = %d and chunks_after = %d must not be negative", op,
                        cfg->chunks_before, cfg->chunks_after);
    /* As the HF model: a sequence no longer than one chunk is plain attention. */
    if (len <= cfg->chunk_len) return RF_OK;
    if (len % cfg->chunk_len)
        return rf_error(RF_ERR_INVALID_ARG, "%s: sequence length L = %lld is not a multiple of chunk_len = %d (pad it)",
                        op, (long long)len, cfg->chunk_len);
    /* A window wider than the sequence only repeats chunks; refuse it rather
     * than size scratch by it. */
    int64_t nc = len / cfg->chunk_len;
    if (cfg->chunks_before > nc || cfg->chunks_after > nc)
        return rf_error(RF_ERR_UNSUPPORTED,
                        "%s: chunks_before = %d / chunks_after = %d exceed the %lld chunks of L = %lld", op,
                        cfg->chunks_before, cfg->chunks_after, (long long)nc, (long long)len);
    w->chunk_len = cfg->chunk_len;
    w->before = cfg->chunks_before;
    w->after = cfg->chunks_after;
    return RF_OK;
}

/* An output or saved tensor of the window's shape (per_row: lse's). */
static rf_status check_tensor(const char *op, const char *name, const rf_tensor *t, bool per_row, bool written,
                              const rf_attn_window *w, const rf_device *dev, const rf_tensor *q, const rf_tensor *k,
                              const rf_tensor *v) {
    if (per_row) RF_CHECK_TENSOR(op, name, t, RF_F32, 3, w->batch, w->heads, w->len);
    else RF_CHECK_TENSOR(op, name, t, RF_F32, 3, w->batch, w->len, w->heads * w->head_dim);
    RF_TRY(rf_check_device(op, name, t, dev));
    if (written && (overlaps(t, q) || overlaps(t, k) || overlaps(t, v)))
        return rf_error(RF_ERR_INVALID_ARG, "%s: %s overlaps an input (q, k or v): attention cannot run in place", op,
                        name);
    return RF_OK;
}

rf_status rf_attention_check_forward(const char *op, bool full, const rf_tensor *out, const rf_tensor *lse,
                                     const rf_tensor *q, const rf_tensor *k, const rf_tensor *v,
                                     const rf_tensor *mask, const rf_attention_config *cfg, rf_attn_window *w,
                                     rf_device **dev) {
    RF_TRY(check_inputs(op, full, q, k, v, mask, cfg, w, dev));
    RF_TRY(check_tensor(op, "out", out, false, true, w, *dev, q, k, v));
    if (lse) RF_TRY(check_tensor(op, "lse", lse, true, true, w, *dev, q, k, v));
    return RF_OK;
}

rf_status rf_attention_check_backward(const char *op, bool full, const rf_tensor *dq, const rf_tensor *dk,
                                      const rf_tensor *dv, const rf_tensor *dout, const rf_tensor *out,
                                      const rf_tensor *lse, const rf_tensor *q, const rf_tensor *k,
                                      const rf_tensor *v, const rf_tensor *mask, const rf_attention_config *cfg,
                                      rf_attn_window *w, rf_device **dev) {
    RF_TRY(check_inputs(op, full, q, k, v, mask, cfg, w, dev));
    RF_TRY(check_tensor(op, "dout", dout, false, false, w, *dev, q, k, v));
    RF_TRY(check_tensor(op, "out", out, false, false, w, *dev, q, k, v));
    RF_TRY(check_tensor(op, "lse", lse, true, false, w, *dev, q, k, v));
    RF_TRY(check_tensor(op, "dq", dq, false, true, w, *dev, q, k, v));
    if (cfg->shared_qk && dk)
        return rf_error(RF_ERR_INVALID_ARG, "%s: with shared_qk dk must be NULL (the key path is folded into dq)", op);
    if (!cfg->shared_qk) RF_TRY(check_tensor(op, "dk", dk, false, true, w, *dev, q, k, v));
    RF_TRY(check_tensor(op, "dv", dv, false, true, w, *dev, q, k, v));
    return RF_OK;
}

rf_status rf_local_attention_forward(rf_tensor *out, rf_tensor *lse, const rf_tensor *q, const rf_tensor *k,
                                     const rf_tensor *v, const rf_tensor *mask, const rf_attention_config *cfg) {
    rf_attn_window w;
    rf_device *dev;
    RF_TRY(rf_attention_check_forward("rf_local_attention_forward", false, out, lse, q, k, v, mask, cfg, &w, &dev));
    RF_DISPATCH(dev, local_attention_forward, "local_attention_forward", out, lse, q, k, v, mask, &w);
}

rf_status rf_local_attention_backward(rf_tensor *dq, rf_tensor *dk, rf_tensor *dv, const rf_tensor *dout,
                                      const rf_tensor *out, const rf_tensor *lse, const rf_tensor *q,
                                      const rf_tensor *k, const rf_tensor *v, const rf_tensor *mask,
                                      const rf_attention_config *cfg) {
    rf_attn_window w;
    rf_device *dev;
    RF_TRY(rf_attention_check_backward("rf_local_attention_backward", false, dq, dk, dv, dout, out, lse, q, k, v, mask,
                                       cfg, &w, &dev));
    RF_DISPATCH(dev, local_attention_backward, "local_attention_backward",
                dq, dk, dv, dout, out, lse, q, k, v, mask, &w);
}
