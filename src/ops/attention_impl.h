/* Internal: the argument checks local and full attention's front doors share
 * (src/ops/local_attention.c), turning a public rf_attention_config into the
 * window both backends compute (device/attention_window.h). */
#ifndef RF_ATTENTION_IMPL_H
#define RF_ATTENTION_IMPL_H

#include "ops/ops_impl.h"
#include "device/attention_window.h"

/* Check cfg, q, k, v and mask (k may be NULL or q for full shared-QK) and
 * fill *w and *dev. `full` selects full attention's rules (§6). */
rf_status rf_attention_check_inputs(const char *op, bool full, const rf_tensor *q, const rf_tensor *k,
                                    const rf_tensor *v, const rf_tensor *mask, const rf_attention_config *cfg,
                                    rf_attn_window *w, rf_device **dev);

/* Check an output or saved tensor of the window's shape: [B, L, H·d], or
 * [B, H, L] with `per_row` (lse); on `dev`; for outputs (`written`), not
 * overlapping q, k, v or mask. */
rf_status rf_attention_check_tensor(const char *op, const char *name, const rf_tensor *t, bool per_row,
                                    bool written, const rf_attn_window *w, const rf_device *dev,
                                    const rf_tensor *q, const rf_tensor *k, const rf_tensor *v);

#endif
