/* Internal: the cpu backend's op entries. Arguments are already checked by
 * the op's front door (src/ops/); these only compute. One file per family,
 * same name as its front door. */
#ifndef RF_CPU_OPS_H
#define RF_CPU_OPS_H

#include "reformer/ops.h"

/* gemm.c */
rf_status rf_cpu_gemm(rf_tensor *c, const rf_tensor *a, const rf_tensor *b, const rf_gemm_desc *d);

/* elementwise.c */
rf_status rf_cpu_add(rf_tensor *out, const rf_tensor *a, const rf_tensor *b, float alpha);

#endif
