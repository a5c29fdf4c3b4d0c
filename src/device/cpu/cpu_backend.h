/* Internal: what the cpu backend's files share: the registration of each op
 * family (device/op_table.h) and typed access to a tensor's host memory. */
#ifndef RF_CPU_BACKEND_H
#define RF_CPU_BACKEND_H

#include "device/device_impl.h"

#define RF_CPU_DECLARE_REGISTER(family) void rf_cpu_##family##_register(rf_op_table *ops);
RF_OP_FAMILIES(RF_CPU_DECLARE_REGISTER)
#undef RF_CPU_DECLARE_REGISTER

/* A cpu buffer's impl is its host memory: the tensor's first element. */
static inline float *rf_cpu_f32(const rf_tensor *t) { return (float *)t->buf->impl + t->offset; }
static inline int32_t *rf_cpu_i32(const rf_tensor *t) { return (int32_t *)t->buf->impl + t->offset; }

#endif
