/* Internal: the argument checks local and full attention's front doors share
 * (src/ops/local_attention.c), turning a public rf_attention_config into the
 * window both backends compute (device/attention_window.h). */
#ifndef RF_ATTENTION_IMPL_H
#define RF_ATTENTION_IMPL_H

#include "ops/ops_impl.h"
#include "device/attention_window.h"

/* Everything a local or full attention call is checked for, once: cfg, q,
 * k, v and mask (k may be NULL or q for full shared-QK), then the outputs and
 * saved tensors — [B, L, H·d], or [B, H, L] for lse; on q's device; outputs
 * not overlapping q, k or v. `full` selects full attention's rules (§6).
 * Fills *w (the window both backends compute) and *dev. */
rf_status rf_attention_check_forward(const char *op, bool full, const rf_tensor *out, const rf_tensor *lse,
                                     const rf_tensor *q, const rf_tensor *k, const rf_tensor *v,
                                     const rf_tensor *mask, const rf_attention_config *cfg, rf_attn_window *w,
                                     rf_device **dev);
/* The backward's: as the forward's, plus dout, out and lse (saved) and dq,
 * dk, dv (written; with shared_qk dk must be NULL: the key path is folded
 * into dq). */
rf_status rf_attention_check_backward(const char *op, bool full, const rf_tensor *dq, const rf_tensor *dk,
                                      const rf_tensor *dv, const rf_tensor *dout, const rf_tensor *out,
                                      const rf_tensor *lse, const rf_tensor *q, const rf_tensor *k,
                                      const rf_tensor *v, const rf_tensor *mask, const rf_attention_config *cfg,
                                      rf_attn_window *w, rf_device **dev);

#endif
