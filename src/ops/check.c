/* Shape and device checks shared by every op's front door. */
#include <stdio.h>
#include <stdlib.h>
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

rf_status rf_check_numel(const char *op, const char *name, const rf_tensor *t, rf_dtype dtype, size_t n) {
    if (!t || !t->buf) return rf_error(RF_ERR_INVALID_ARG, "%s: %s is NULL", op, name);
    if (t->dtype != dtype)
        return rf_error(RF_ERR_INVALID_ARG, "%s: %s has dtype %s, expected %s", op, name,
                        t->dtype == RF_F32 ? "f32" : "i32", dtype == RF_F32 ? "f32" : "i32");
    if (rf_tensor_numel(t) != n) {
        char got[96];
        return rf_error(RF_ERR_INVALID_ARG, "%s: %s has shape %s (%zu elements), expected %zu elements", op, name,
                        rf_tensor_shape_str(t, got, sizeof got), rf_tensor_numel(t), n);
    }
    return RF_OK;
}

rf_status rf_check_ids(const char *op, const char *name, const rf_tensor *ids, int64_t bound, int allow_ignore,
                       int64_t *counted) {
    size_t n = rf_tensor_numel(ids);
    const int32_t *v;
    int32_t *copy = NULL;
    const rf_backend *be = ids->buf->dev->backend;
    if (be->host_ptr) {
        v = (const int32_t *)be->host_ptr(ids->buf) + ids->offset;
    } else {
        /* A kernel could only report "some id is bad"; the host copy (small
         * next to the activations it indexes) lets the message name it. */
        copy = malloc(n * sizeof *copy + 1);
        if (!copy) return rf_error(RF_ERR_OUT_OF_MEMORY, "%s: no host memory to check %s", op, name);
        v = copy;
    }
    int64_t count = 0;
    rf_status s = copy ? rf_tensor_download(ids, copy, n * sizeof *copy) : RF_OK;
    for (size_t i = 0; s == RF_OK && i < n; i++) {
        if (v[i] >= 0 && v[i] < bound) {
            count++;
        } else if (!(allow_ignore && v[i] == -1)) {
            s = rf_error(RF_ERR_INVALID_ARG, "%s: %s[%zu] = %d is outside [0, %lld)%s", op, name, i, (int)v[i],
                         (long long)bound, allow_ignore ? " and is not -1 (ignore)" : "");
            break;
        }
    }
    free(copy);
    if (s == RF_OK && counted) *counted = count;
    return s;
}

rf_status rf_op_unsupported(const rf_device *dev, const char *entry) {
    return rf_error(RF_ERR_UNSUPPORTED, "%s is not implemented on device %s (%s)", entry, dev->info.id, dev->info.name);
}
