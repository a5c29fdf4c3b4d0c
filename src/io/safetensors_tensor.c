/* Between safetensors files and device tensors: loading with dtype and shape
 * checks (§11: validate against the model before touching data), and
 * saving. Kept apart from safetensors.c so the format code (and its fuzz
 * target) needs no device layer. */
#include <stdlib.h>
#include "core/core.h"
#include "io/io_util.h"
#include "reformer/io.h"

static rf_status st_dtype_of(rf_dtype dtype, rf_st_dtype *out) {
    if (dtype == RF_F32) *out = RF_ST_F32;
    else if (dtype == RF_I32) *out = RF_ST_I32;
    else return rf_error(RF_ERR_INVALID_ARG, "safetensors: tensor dtype %d has no safetensors equivalent", (int)dtype);
    return RF_OK;
}

rf_status rf_safetensors_load_tensor(const rf_safetensors *st, const char *name, rf_tensor *t) {
    if (!st || !name || !t) return rf_error(RF_ERR_INVALID_ARG, "rf_safetensors_load_tensor: null argument");
    rf_st_tensor info;
    RF_TRY(rf_safetensors_find(st, name, &info));
    rf_st_dtype want = RF_ST_F32;
    RF_TRY(st_dtype_of(t->dtype, &want));
    int same = info.dtype == want && info.ndim == t->ndim;
    for (int i = 0; same && i < info.ndim; i++) same = info.shape[i] == t->shape[i];
    if (!same) {
        char a[160], b[160];
        return rf_error(RF_ERR_FORMAT, "safetensors '%s': tensor '%.200s' is %s %s but the model expects %s %s",
                        rf_safetensors_label(st), name, rf_st_dtype_name(info.dtype),
                        rf_io_shape_str(info.ndim, info.shape, a, sizeof a), rf_st_dtype_name(want),
                        rf_io_shape_str(t->ndim, t->shape, b, sizeof b));
    }
    return rf_tensor_upload(t, info.data, info.bytes);
}

rf_status rf_safetensors_writer_add_tensor(rf_safetensors_writer *w, const char *name, const rf_tensor *t) {
    if (!w || !name || !t) return rf_error(RF_ERR_INVALID_ARG, "rf_safetensors_writer_add_tensor: null argument");
    rf_st_dtype dtype = RF_ST_F32;
    RF_TRY(st_dtype_of(t->dtype, &dtype));
    size_t bytes = rf_tensor_numel(t) * rf_dtype_size(t->dtype);
    void *host = malloc(bytes ? bytes : 1);
    if (!host) return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_safetensors_writer_add_tensor: no memory for '%.200s'", name);
    rf_status s = rf_tensor_download(t, host, bytes);
    if (s == RF_OK) s = rf_safetensors_writer_add(w, name, dtype, t->ndim, t->shape, host);
    free(host);
    return s;
}
