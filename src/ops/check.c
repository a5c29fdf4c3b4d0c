/* Shape and device checks shared by every op's front door. */
#include <stdio.h>
#include "ops/ops_impl.h"

rf_status rf_check_tensor(const char *op, const char *name, const rf_tensor *t, rf_dtype dtype, int ndim,
                          const int64_t *shape) {
    if (!t || !t->buf) return rf_error(RF_ERR_INVALID_ARG, "%s: %s is NULL", op, name);
    if (t->dtype != dtype)
        return rf_error(RF_ERR_INVALID_ARG, "%s: %s has dtype %s, expected %s", op, name,
                        t->dtype == RF_F32 ? "f32" : "i32", dtype == RF_F32 ? "f32" : "i32");
    char got[96];
    if (t->ndim != ndim)
        return rf_error(RF_ERR_INVALID_ARG, "%s: %s has shape %s (%d dims), expected %d dims", op, name,
                        rf_tensor_shape_str(t, got, sizeof got), t->ndim, ndim);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] >= 0 && t->shape[i] != shape[i]) {
            char want[96];
            size_t used = (size_t)snprintf(want, sizeof want, "[");
            for (int j = 0; j < ndim && used < sizeof want; j++) {
                if (shape[j] >= 0) used += (size_t)snprintf(want + used, sizeof want - used, "%s%lld", j ? ", " : "", (long long)shape[j]);
                else used += (size_t)snprintf(want + used, sizeof want - used, "%s*", j ? ", " : "");
            }
            if (used < sizeof want) snprintf(want + used, sizeof want - used, "]");
            return rf_error(RF_ERR_INVALID_ARG, "%s: %s has shape %s, expected %s", op, name,
                            rf_tensor_shape_str(t, got, sizeof got), want);
        }
    }
    return RF_OK;
}

rf_status rf_check_device(const char *op, const char *name, const rf_tensor *t, const rf_device *dev) {
    if (!t || !t->buf) return rf_error(RF_ERR_INVALID_ARG, "%s: %s is NULL", op, name);
    if (t->buf->dev != dev)
        return rf_error(RF_ERR_INVALID_ARG, "%s: %s is on %s, the other operands on %s", op, name,
                        t->buf->dev->info.id, dev->info.id);
    return RF_OK;
}
