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

/* Check that `t` is non-null, of `dtype`, and holds exactly `n` elements
 * whatever its shape (per-row statistics, flat parameter views). */
rf_status rf_check_numel(const char *op, const char *name, const rf_tensor *t, rf_dtype dtype, size_t n);

/* Check an i32 index tensor's values on the host (a device tensor is
 * downloaded): each in [0, bound), or −1 when `allow_ignore`. The message
 * names the first bad value, its position and the bound. *counted (may be
 * NULL) = how many values are ≥ 0. */
rf_status rf_check_ids(const char *op, const char *name, const rf_tensor *ids, int64_t bound, int allow_ignore,
                       int64_t *counted);

#endif
