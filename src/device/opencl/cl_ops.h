/* Internal: the OpenCL backend's op entries. Arguments are already checked
 * by the op's front door (src/ops/). One file per family, same name as its
 * front door and its cl/ kernel file. */
#ifndef RF_CL_OPS_H
#define RF_CL_OPS_H

#include "reformer/ops.h"

/* gemm.c (CLBlast) */
rf_status rf_cl_gemm(rf_tensor *c, const rf_tensor *a, const rf_tensor *b, const rf_gemm_desc *d);

/* elementwise.c */
rf_status rf_cl_add(rf_tensor *out, const rf_tensor *a, const rf_tensor *b, float alpha);

#endif
