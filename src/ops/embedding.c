/* Embeddings' front door (§9): word embedding, axial position embedding and
 * plain position embedding, each forward and backward. */
#include "ops/ops_impl.h"

/* out (or dout) is [B, L, D]. */
static rf_status check_bld(const char *op, const char *name, const rf_tensor *t) {
    RF_CHECK_TENSOR(op, name, t, RF_F32, 3, -1, -1, -1);
    return RF_OK;
}

rf_status rf_embedding_forward(rf_tensor *out, const rf_tensor *ids, const rf_tensor *table) {
    const char *op = "rf_embedding_forward";
    RF_TRY(check_bld(op, "out", out));
    RF_CHECK_TENSOR(op, "ids", ids, RF_I32, 2, out->shape[0], out->shape[1]);
    RF_CHECK_TENSOR(op, "table", table, RF_F32, 2, -1, out->shape[2]);
    rf_device *dev = out->buf->dev;
    RF_TRY(rf_check_device(op, "ids", ids, dev));
    RF_TRY(rf_check_device(op, "table", table, dev));
    RF_TRY(rf_check_ids(op, "ids", ids, table->shape[0], 0, NULL));
    RF_DISPATCH(dev, embedding_forward, "embedding", out, ids, table);
}

rf_status rf_embedding_backward(rf_tensor *dtable, const rf_tensor *dout, const rf_tensor *ids) {
    const char *op = "rf_embedding_backward";
    RF_TRY(check_bld(op, "dout", dout));
    RF_CHECK_TENSOR(op, "ids", ids, RF_I32, 2, dout->shape[0], dout->shape[1]);
    RF_CHECK_TENSOR(op, "dtable", dtable, RF_F32, 2, -1, dout->shape[2]);
    rf_device *dev = dtable->buf->dev;
    RF_TRY(rf_check_device(op, "ids", ids, dev));
    RF_TRY(rf_check_device(op, "dout", dout, dev));
    RF_TRY(rf_check_ids(op, "ids", ids, dtable->shape[0], 0, NULL));
    RF_DISPATCH(dev, embedding_backward, "embedding_backward", dtable, dout, ids);
}

/* E0 [s0, d0], E1 [s1, d1] against [B, L, D]: d0 + d1 = D, s0·s1 ≥ L (§9). */
static rf_status check_axial(const char *op, const char *n0, const rf_tensor *e0, const char *n1,
                             const rf_tensor *e1, const rf_tensor *bld) {
    RF_CHECK_TENSOR(op, n0, e0, RF_F32, 2, -1, -1);
    RF_CHECK_TENSOR(op, n1, e1, RF_F32, 2, -1, -1);
    int64_t s0 = e0->shape[0], d0 = e0->shape[1], s1 = e1->shape[0], d1 = e1->shape[1];
    /* Kernels index a table, a position and a batch item in 32 bits. */
    if (s0 > INT32_MAX || s1 > INT32_MAX || bld->shape[0] > INT32_MAX || bld->shape[1] > INT32_MAX ||
        bld->shape[2] > INT32_MAX)
        return rf_error(RF_ERR_INVALID_ARG, "%s: a dimension of %s, %s or the [B, L, D] tensor exceeds 2^31 - 1", op,
                        n0, n1);
    if (d0 + d1 != bld->shape[2])
        return rf_error(RF_ERR_INVALID_ARG, "%s: axial widths %lld + %lld must equal the model width D = %lld", op,
                        (long long)d0, (long long)d1, (long long)bld->shape[2]);
    if (s0 * s1 < bld->shape[1])
        return rf_error(RF_ERR_INVALID_ARG,
                        "%s: axial shape (%lld, %lld) covers %lld positions, fewer than the sequence length L = %lld",
                        op, (long long)s0, (long long)s1, (long long)(s0 * s1), (long long)bld->shape[1]);
    rf_device *dev = bld->buf->dev;
    RF_TRY(rf_check_device(op, n0, e0, dev));
    RF_TRY(rf_check_device(op, n1, e1, dev));
    return RF_OK;
}

rf_status rf_axial_position_forward(rf_tensor *out, const rf_tensor *e0, const rf_tensor *e1) {
    const char *op = "rf_axial_position_forward";
    RF_TRY(check_bld(op, "out", out));
    RF_TRY(check_axial(op, "e0", e0, "e1", e1, out));
    rf_device *dev = out->buf->dev;
    RF_DISPATCH(dev, axial_position_forward, "axial_position", out, e0, e1);
}

rf_status rf_axial_position_backward(rf_tensor *de0, rf_tensor *de1, const rf_tensor *dout) {
    const char *op = "rf_axial_position_backward";
    RF_TRY(check_bld(op, "dout", dout));
    RF_TRY(check_axial(op, "de0", de0, "de1", de1, dout));
    rf_device *dev = dout->buf->dev;
    RF_DISPATCH(dev, axial_position_backward, "axial_position_backward", de0, de1, dout);
}

/* table [max_pos, D] against [B, L, D]: max_pos ≥ L. */
static rf_status check_positions(const char *op, const char *name, const rf_tensor *table, const rf_tensor *bld) {
    RF_CHECK_TENSOR(op, name, table, RF_F32, 2, -1, bld->shape[2]);
    if (table->shape[0] < bld->shape[1])
        return rf_error(RF_ERR_INVALID_ARG, "%s: %s has %lld positions, fewer than the sequence length L = %lld", op,
                        name, (long long)table->shape[0], (long long)bld->shape[1]);
    return rf_check_device(op, name, table, bld->buf->dev);
}

rf_status rf_position_embedding_forward(rf_tensor *out, const rf_tensor *table) {
    const char *op = "rf_position_embedding_forward";
    RF_TRY(check_bld(op, "out", out));
    RF_TRY(check_positions(op, "table", table, out));
    rf_device *dev = out->buf->dev;
    RF_DISPATCH(dev, position_embedding_forward, "position_embedding", out, table);
}

rf_status rf_position_embedding_backward(rf_tensor *dtable, const rf_tensor *dout) {
    const char *op = "rf_position_embedding_backward";
    RF_TRY(check_bld(op, "dout", dout));
    RF_TRY(check_positions(op, "dtable", dtable, dout));
    rf_device *dev = dout->buf->dev;
    RF_DISPATCH(dev, position_embedding_backward, "position_embedding_backward", dtable, dout);
}
