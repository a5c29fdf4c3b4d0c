/* Internal helpers for the ops' front doors: argument checks that name what
 * was wrong, and cpu wall-clock profiling. */
#ifndef RF_OPS_IMPL_H
#define RF_OPS_IMPL_H

#include "reformer/ops.h"
#include "device/device_impl.h"

/* Check that `t` is non-null, on a buffer, of `dtype`, with rank `ndim` and
 * the given shape (-1 = any extent). `op` and `name` go into the message. */
rf_status rf_check_tensor(const char *op, const char *name, const rf_tensor *t, rf_dtype dtype, int ndim,
                          const int64_t *shape);
#define RF_CHECK_TENSOR(op, name, t, dtype, ndim, ...) \
    RF_TRY(rf_check_tensor(op, name, t, dtype, ndim, (const int64_t[]){__VA_ARGS__}))

/* Check that `t` lives on `dev`. */
rf_status rf_check_device(const char *op, const char *name, const rf_tensor *t, const rf_device *dev);

/* Wall-clock profiling of cpu ops (OpenCL ops are profiled by events). */
static inline uint64_t rf_op_begin(void) { return rf_now_ns(); }
static inline void rf_op_end(rf_device *dev, const char *op, uint64_t t0) {
    if (dev->kind == RF_DEVICE_CPU) rf_profile_add(dev, op, rf_now_ns() - t0);
}

#endif
