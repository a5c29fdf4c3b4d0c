/* Tensors: typed, shaped views of buffers. */
#include <stdio.h>
#include <string.h>
#include "device/device_impl.h"

size_t rf_dtype_size(rf_dtype dtype) { return dtype == RF_F32 || dtype == RF_I32 ? 4 : 0; }

size_t rf_tensor_numel(const rf_tensor *t) {
    if (!t || t->ndim <= 0) return 0;
    size_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
    return n;
}

rf_device *rf_tensor_device(const rf_tensor *t) { return t && t->buf ? t->buf->dev : NULL; }

/* Validate dtype, rank and shape; compute the element count with overflow checks. */
static rf_status check_shape(const char *fn, rf_dtype dtype, int ndim, const int64_t *shape, size_t *numel) {
    if (rf_dtype_size(dtype) == 0) return rf_error(RF_ERR_INVALID_ARG, "%s: unknown dtype %d", fn, (int)dtype);
    if (ndim < 1 || ndim > RF_MAX_DIMS) return rf_error(RF_ERR_INVALID_ARG, "%s: ndim %d not in [1, %d]", fn, ndim, RF_MAX_DIMS);
    if (!shape) return rf_error(RF_ERR_INVALID_ARG, "%s: shape is NULL", fn);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0) return rf_error(RF_ERR_INVALID_ARG, "%s: shape[%d] = %lld must be positive", fn, i, (long long)shape[i]);
        if (!rf_mul_size(n, (size_t)shape[i], &n))
            return rf_error(RF_ERR_INVALID_ARG, "%s: element count overflows size_t", fn);
    }
    if (!rf_mul_size(n, rf_dtype_size(dtype), numel))
        return rf_error(RF_ERR_INVALID_ARG, "%s: byte count overflows size_t", fn);
    *numel = n;
    return RF_OK;
}

static void set_header(rf_tensor *t, rf_buffer *buf, size_t offset, rf_dtype dtype, int ndim, const int64_t *shape) {
    memset(t, 0, sizeof *t);
    t->buf = buf;
    t->offset = offset;
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
}

rf_status rf_tensor_alloc(rf_device *device, rf_tensor *t, rf_dtype dtype, int ndim, const int64_t *shape) {
    if (!device || !t) return rf_error(RF_ERR_INVALID_ARG, "rf_tensor_alloc: null argument");
    size_t n;
    RF_TRY(check_shape("rf_tensor_alloc", dtype, ndim, shape, &n));
    rf_buffer *buf;
    RF_TRY(rf_buffer_alloc(device, n * rf_dtype_size(dtype), &buf));
    set_header(t, buf, 0, dtype, ndim, shape);
    t->owns = true;
    return RF_OK;
}

rf_status rf_tensor_free(rf_tensor *t) {
    if (!t || !t->buf) return RF_OK;
    /* Freeing through a view would pull the buffer from under its owner
     * (and the owner's own free would then be a double free). */
    if (!t->owns) return rf_error(RF_ERR_INVALID_ARG, "rf_tensor_free: the tensor is a view; free the tensor that owns its buffer");
    rf_buffer_free(t->buf);
    memset(t, 0, sizeof *t);
    return RF_OK;
}

rf_status rf_tensor_view(rf_tensor *t, rf_buffer *buf, size_t offset, rf_dtype dtype, int ndim, const int64_t *shape) {
    if (!t || !buf) return rf_error(RF_ERR_INVALID_ARG, "rf_tensor_view: null argument");
    size_t n, end;
    RF_TRY(check_shape("rf_tensor_view", dtype, ndim, shape, &n));
    size_t es = rf_dtype_size(dtype);
    if (offset > SIZE_MAX / es || n > SIZE_MAX / es - offset || (end = (offset + n) * es) > buf->bytes)
        return rf_error(RF_ERR_INVALID_ARG, "rf_tensor_view: %zu elements at offset %zu exceed a buffer of %zu bytes",
                        n, offset, buf->bytes);
    set_header(t, buf, offset, dtype, ndim, shape);
    return RF_OK;
}

static rf_status check_transfer(const char *fn, const rf_tensor *t, const void *p, size_t bytes) {
    if (!t || !t->buf || !p) return rf_error(RF_ERR_INVALID_ARG, "%s: null argument", fn);
    size_t want = rf_tensor_numel(t) * rf_dtype_size(t->dtype);
    if (bytes != want) return rf_error(RF_ERR_INVALID_ARG, "%s: %zu bytes given, the tensor holds %zu", fn, bytes, want);
    return RF_OK;
}

rf_status rf_tensor_upload(rf_tensor *t, const void *src, size_t bytes) {
    RF_TRY(check_transfer("rf_tensor_upload", t, src, bytes));
    return rf_buffer_upload(t->buf, t->offset * rf_dtype_size(t->dtype), src, bytes);
}

rf_status rf_tensor_download(const rf_tensor *t, void *dst, size_t bytes) {
    RF_TRY(check_transfer("rf_tensor_download", t, dst, bytes));
    return rf_buffer_download(t->buf, t->offset * rf_dtype_size(t->dtype), dst, bytes);
}

rf_status rf_tensor_fill_f32(rf_tensor *t, float value) {
    if (!t || !t->buf) return rf_error(RF_ERR_INVALID_ARG, "rf_tensor_fill_f32: null tensor");
    if (t->dtype != RF_F32) return rf_error(RF_ERR_INVALID_ARG, "rf_tensor_fill_f32: tensor is not f32");
    return rf_buffer_fill(t->buf, t->offset * 4, &value, 4, rf_tensor_numel(t) * 4);
}

static const char *dtype_name(rf_dtype dtype) { return dtype == RF_F32 ? "f32" : dtype == RF_I32 ? "i32" : "?"; }

rf_status rf_tensor_copy(rf_tensor *dst, const rf_tensor *src) {
    const char *fn = "rf_tensor_copy";
    if (!dst || !src || !dst->buf || !src->buf) return rf_error(RF_ERR_INVALID_ARG, "%s: null argument", fn);
    char ds[64], ss[64];
    if (dst->dtype != src->dtype)
        return rf_error(RF_ERR_INVALID_ARG, "%s: dst is %s, src is %s", fn, dtype_name(dst->dtype), dtype_name(src->dtype));
    size_t n = rf_tensor_numel(src), es = rf_dtype_size(src->dtype);
    if (rf_tensor_numel(dst) != n)
        return rf_error(RF_ERR_INVALID_ARG, "%s: dst %s and src %s hold different numbers of elements", fn,
                        rf_tensor_shape_str(dst, ds, sizeof ds), rf_tensor_shape_str(src, ss, sizeof ss));
    if (rf_tensor_device(dst) != rf_tensor_device(src))
        return rf_error(RF_ERR_INVALID_ARG, "%s: dst and src are on different devices", fn);
    /* A device copy between overlapping ranges is undefined in OpenCL. */
    if (dst->buf == src->buf && dst->offset < src->offset + n && src->offset < dst->offset + n)
        return rf_error(RF_ERR_INVALID_ARG, "%s: dst and src overlap in one buffer", fn);
    return rf_buffer_copy(dst->buf, dst->offset * es, src->buf, src->offset * es, n * es);
}

const char *rf_tensor_shape_str(const rf_tensor *t, char *buf, size_t n) {
    size_t used = 0;
    if (n == 0) return buf;
    buf[0] = '\0';
    if (!t) {
        snprintf(buf, n, "(null)");
        return buf;
    }
    used += (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < t->ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (used < n) snprintf(buf + used, n - used, "]");
    return buf;
}
