/* reformer-cl io: safetensors weights (§11).
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON header, then
 * the data section. The header maps tensor names to {"dtype", "shape",
 * "data_offsets": [begin, end]} (offsets relative to the data section) and may
 * hold "__metadata__": {string: string}.
 *
 * The reader validates the whole header against the file size before it reads
 * any tensor data: header length (≤ file size − 8 and ≤ 100 MB), JSON syntax
 * and UTF-8, every dtype, shape (overflow-checked) and offset pair, and that
 * the tensors tile the data section exactly (no overlap, gap or trailing
 * bytes), as the reference `safetensors` library requires. Failures:
 * RF_ERR_FORMAT (malformed), RF_ERR_UNSUPPORTED (a valid dtype we do not
 * handle, e.g. F16), RF_ERR_NOT_FOUND / RF_ERR_IO (file problems); messages
 * name the file, the tensor and the values.
 *
 * The writer produces the same bytes as the Python `safetensors` library for
 * the same tensors and metadata: tensors ordered by dtype (I64, F32, I32) and
 * then by name (bytewise), compact JSON, header padded with spaces to a
 * multiple of 8 bytes; files are written atomically (temporary + fsync +
 * rename). */
#ifndef REFORMER_IO_H
#define REFORMER_IO_H

#include <stddef.h>
#include <stdint.h>
#include "reformer/status.h"
#include "reformer/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The safetensors dtypes this build reads and writes. Others (F16, BF16,
 * F64, U8, BOOL, ...) are refused with RF_ERR_UNSUPPORTED. */
typedef enum rf_st_dtype { RF_ST_F32 = 0, RF_ST_I32 = 1, RF_ST_I64 = 2 } rf_st_dtype;

#define RF_ST_MAX_DIMS 8

/* One tensor of an open file. `name` and `data` stay valid until the file is
 * closed; `data` is aligned to the element size. */
typedef struct rf_st_tensor {
    const char *name;
    rf_st_dtype dtype;
    int ndim;                        /* 0 = a scalar */
    int64_t shape[RF_ST_MAX_DIMS];
    size_t numel;
    size_t bytes;                    /* numel × element size */
    const void *data;
} rf_st_tensor;

typedef struct rf_safetensors rf_safetensors;

/* "F32", "I32", "I64"; its element size in bytes. */
const char *rf_st_dtype_name(rf_st_dtype dtype);
size_t rf_st_dtype_size(rf_st_dtype dtype);

/* Open and validate a file (see above); the tensor data is read into memory. */
rf_status rf_safetensors_open(rf_safetensors **st, const char *path);
/* The same from bytes in memory (copied); `label` names them in messages
 * (NULL: "<memory>"). */
rf_status rf_safetensors_open_memory(rf_safetensors **st, const void *bytes, size_t n,
                                     const char *label);
void rf_safetensors_close(rf_safetensors *st);
/* The path (or label) the file was opened from, for messages. */
const char *rf_safetensors_label(const rf_safetensors *st);

/* Tensors in header order. */
size_t rf_safetensors_count(const rf_safetensors *st);
rf_status rf_safetensors_at(const rf_safetensors *st, size_t index, rf_st_tensor *info);
/* RF_ERR_NOT_FOUND (naming the tensor and the file) when absent. */
rf_status rf_safetensors_find(const rf_safetensors *st, const char *name, rf_st_tensor *info);

/* "__metadata__" entries in header order; get fails with RF_ERR_NOT_FOUND. */
size_t rf_safetensors_metadata_count(const rf_safetensors *st);
rf_status rf_safetensors_metadata_at(const rf_safetensors *st, size_t index, const char **key,
                                     const char **value);
rf_status rf_safetensors_metadata_get(const rf_safetensors *st, const char *key, const char **value);

/* Upload tensor `name` into `t`, whose dtype (F32 or I32) and shape must
 * equal the file's exactly; a mismatch fails with RF_ERR_FORMAT naming the
 * tensor, the file and both shapes. */
rf_status rf_safetensors_load_tensor(const rf_safetensors *st, const char *name, rf_tensor *t);

/* ---- writer ------------------------------------------------------------ */
typedef struct rf_safetensors_writer rf_safetensors_writer;

rf_status rf_safetensors_writer_new(rf_safetensors_writer **w);
void rf_safetensors_writer_free(rf_safetensors_writer *w);
/* Add a tensor; its bytes (numel × element size, host memory) are copied.
 * Names must be unique, UTF-8 and not "__metadata__". */
rf_status rf_safetensors_writer_add(rf_safetensors_writer *w, const char *name, rf_st_dtype dtype,
                                    int ndim, const int64_t *shape, const void *data);
/* Add a device tensor (F32 or I32): downloads it. */
rf_status rf_safetensors_writer_add_tensor(rf_safetensors_writer *w, const char *name,
                                           const rf_tensor *t);
/* Set a "__metadata__" entry (kept in the order first set). */
rf_status rf_safetensors_writer_set_metadata(rf_safetensors_writer *w, const char *key,
                                             const char *value);
/* The file's bytes in a malloc'd buffer (caller frees). */
rf_status rf_safetensors_writer_serialize(const rf_safetensors_writer *w, void **bytes, size_t *n);
/* Serialize and write atomically to `path`. */
rf_status rf_safetensors_write(const rf_safetensors_writer *w, const char *path);

#ifdef __cplusplus
}
#endif
#endif
