/* Full attention's front door (§6): every query attends to all L keys;
 * with shared_qk, LSH attention's formulation (§5.2, §5.4) — its oracle. The
 * checks are local attention's (ops/attention_impl.h) with one chunk of L. */
#include "ops/attention_impl.h"

rf_status rf_full_attention_forward(rf_tensor *out, rf_tensor *lse, const rf_tensor *q, const rf_tensor *k,
                                    const rf_tensor *v, const rf_tensor *mask, const rf_attention_config *cfg) {
    const char *op = "rf_full_attention_forward";
    rf_attn_window w;
    rf_device *dev;
    RF_TRY(rf_attention_check_inputs(op, true, q, k, v, mask, cfg, &w, &dev));
    RF_TRY(rf_attention_check_tensor(op, "out", out, false, true, &w, dev, q, k, v));
    if (lse) RF_TRY(rf_attention_check_tensor(op, "lse", lse, true, true, &w, dev, q, k, v));
    bool shared = cfg->shared_qk;
    RF_DISPATCH(dev, full_attention_forward, "full_attention_forward", out, lse, q, k, v, mask, &w, shared);
}

rf_status rf_full_attention_backward(rf_tensor *dq, rf_tensor *dk, rf_tensor *dv, const rf_tensor *dout,
                                     const rf_tensor *out, const rf_tensor *lse, const rf_tensor *q,
                                     const rf_tensor *k, const rf_tensor *v, const rf_tensor *mask,
                                     const rf_attention_config *cfg) {
    const char *op = "rf_full_attention_backward";
    rf_attn_window w;
    rf_device *dev;
    RF_TRY(rf_attention_check_inputs(op, true, q, k, v, mask, cfg, &w, &dev));
    bool shared = cfg->shared_qk;
    RF_TRY(rf_attention_check_tensor(op, "dout", dout, false, false, &w, dev, q, k, v));
    RF_TRY(rf_attention_check_tensor(op, "out", out, false, false, &w, dev, q, k, v));
    RF_TRY(rf_attention_check_tensor(op, "lse", lse, true, false, &w, dev, q, k, v));
    RF_TRY(rf_attention_check_tensor(op, "dq", dq, false, true, &w, dev, q, k, v));
    if (shared && dk)
        return rf_error(RF_ERR_INVALID_ARG, "%s: with shared_qk dk must be NULL (the key path is folded into dq)", op);
    if (!shared) RF_TRY(rf_attention_check_tensor(op, "dk", dk, false, true, &w, dev, q, k, v));
    RF_TRY(rf_attention_check_tensor(op, "dv", dv, false, true, &w, dev, q, k, v));
    RF_DISPATCH(dev, full_attention_backward, "full_attention_backward",
                dq, dk, dv, dout, out, lse, q, k, v, mask, &w, shared);
}
