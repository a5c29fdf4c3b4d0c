/* Full attention's front door (§6): every query attends to all L keys;
 * with shared_qk, LSH attention's formulation (§5.2, §5.4) — its oracle. The
 * checks are local attention's (ops/attention_impl.h) with one chunk of L. */
#include "ops/attention_impl.h"

rf_status rf_full_attention_forward(rf_tensor *out, rf_tensor *lse, const rf_tensor *q, const rf_tensor *k,
                                    const rf_tensor *v, const rf_tensor *mask, const rf_attention_config *cfg) {
    rf_attn_window w;
    rf_device *dev;
    RF_TRY(rf_attention_check_forward("rf_full_attention_forward", true, out, lse, q, k, v, mask, cfg, &w, &dev));
    RF_DISPATCH(dev, full_attention_forward, "full_attention_forward", out, lse, q, k, v, mask, &w, cfg->shared_qk);
}

rf_status rf_full_attention_backward(rf_tensor *dq, rf_tensor *dk, rf_tensor *dv, const rf_tensor *dout,
                                     const rf_tensor *out, const rf_tensor *lse, const rf_tensor *q,
                                     const rf_tensor *k, const rf_tensor *v, const rf_tensor *mask,
                                     const rf_attention_config *cfg) {
    rf_attn_window w;
    rf_device *dev;
    RF_TRY(rf_attention_check_backward("rf_full_attention_backward", true, dq, dk, dv, dout, out, lse, q, k, v, mask,
                                       cfg, &w, &dev));
    RF_DISPATCH(dev, full_attention_backward, "full_attention_backward",
                dq, dk, dv, dout, out, lse, q, k, v, mask, &w, cfg->shared_qk);
}
