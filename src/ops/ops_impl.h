/* Internal helpers for the ops' front doors: argument checks that name what
 * was wrong, and the one dispatch to a backend's op table. */
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

/* RF_ERR_UNSUPPORTED: `dev`'s backend has no entry `entry` (op_table.h). */
rf_status rf_op_unsupported(const rf_device *dev, const char *entry);

/* The one way a front door runs an op, once its arguments are checked: call
 * entry `entry` of dev's op table with the remaining arguments and return
 * its status from the calling function (RF_ERR_UNSUPPORTED if the backend
 * has no such entry). A backend that finishes its ops before returning
 * (wall_profile: the cpu) has the call's wall time added to the profile
 * under `prof`; the others record device time themselves (OpenCL events). */
#define RF_DISPATCH(dev, entry, prof, ...)                                           \
    do {                                                                             \
        rf_device *rf_dev_ = (dev);                                                  \
        if (!rf_dev_->ops.entry) return rf_op_unsupported(rf_dev_, #entry);          \
        bool rf_wall_ = rf_dev_->backend->wall_profile;                              \
        uint64_t rf_t0_ = rf_wall_ ? rf_now_ns() : 0;                                \
        rf_status rf_s_ = rf_dev_->ops.entry(__VA_ARGS__);                           \
        if (rf_wall_) rf_profile_add(rf_dev_, (prof), rf_now_ns() - rf_t0_);         \
        return rf_s_;                                                                \
    } while (0)

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
