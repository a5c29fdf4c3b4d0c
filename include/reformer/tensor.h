/* reformer-cl tensors: a typed, shaped window on a device buffer.
 * Dense and row-major (§1); `offset` is in elements of
 * `dtype`. A tensor either owns its buffer (rf_tensor_alloc: freed with
 * rf_tensor_free) or is a view of a buffer someone else owns
 * (rf_tensor_view: never freed through the view). */
#ifndef REFORMER_TENSOR_H
#define REFORMER_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "reformer/device.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RF_MAX_DIMS 4

typedef enum rf_dtype { RF_F32 = 0, RF_I32 = 1 } rf_dtype;

typedef struct rf_tensor {
    rf_buffer *buf;
    size_t offset;               /* in elements */
    rf_dtype dtype;
    int ndim;
    int64_t shape[RF_MAX_DIMS];
    bool owns;                   /* set by rf_tensor_alloc only: a view, or a
                                  * zeroed struct, does not own its buffer */
} rf_tensor;

/* Allocate a tensor that owns a fresh buffer (free with rf_tensor_free). */
rf_status rf_tensor_alloc(rf_device *device, rf_tensor *t, rf_dtype dtype, int ndim,
                          const int64_t *shape);
/* Free an owning tensor's buffer and zero the struct. NULL or a zeroed
 * tensor: nothing to do (RF_OK), so cleanup paths may call it on tensors
 * that were never allocated. A view is refused (RF_ERR_INVALID_ARG) and
 * left as it is: its buffer belongs to another tensor. */
rf_status rf_tensor_free(rf_tensor *t);
/* A view of `buf` starting at element `offset` (checked against its size).
 * The view does not own `buf`: free the owner, not the view. */
rf_status rf_tensor_view(rf_tensor *t, rf_buffer *buf, size_t offset, rf_dtype dtype,
                         int ndim, const int64_t *shape);

size_t rf_tensor_numel(const rf_tensor *t);
size_t rf_dtype_size(rf_dtype dtype);
rf_device *rf_tensor_device(const rf_tensor *t);

/* Whole-tensor transfers; `bytes` must equal numel * dtype size. */
rf_status rf_tensor_upload(rf_tensor *t, const void *src, size_t bytes);
rf_status rf_tensor_download(const rf_tensor *t, void *dst, size_t bytes);
rf_status rf_tensor_fill_f32(rf_tensor *t, float value);
/* dst = src, element for element, on the device: same dtype, same element
 * count (shapes may differ, e.g. [B, L, D] into [B·L, D]), same device.
 * Either may be a view. Overlapping ranges of one buffer are refused. */
rf_status rf_tensor_copy(rf_tensor *dst, const rf_tensor *src);

/* "[2, 64, 32]": for error messages; returns buf. */
const char *rf_tensor_shape_str(const rf_tensor *t, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
