/* safetensors writer (§11): reproduces the Python `safetensors` library's
 * bytes (its tensor order, its JSON, its padding), written atomically. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "io/io_util.h"
#include "io/json_emit.h"
#include "reformer/io.h"

/* The Python library orders tensors by dtype, larger enum value first (its
 * Rust enum lists ... I32, U32, F32, C64, F64, I64, U64), then by name. */
static int dtype_rank(rf_st_dtype dtype) {
    return dtype == RF_ST_I64 ? 2 : dtype == RF_ST_F32 ? 1 : 0;
}

typedef struct wr_entry {
    char *name;
    rf_st_dtype dtype;
    int ndim;
    int64_t shape[RF_ST_MAX_DIMS];
    size_t bytes;
    void *data;                      /* owned copy */
} wr_entry;

struct rf_safetensors_writer {
    wr_entry *entries;
    size_t count, cap;
    char **meta_keys, **meta_values;
    size_t meta_count, meta_cap;
};

rf_status rf_safetensors_writer_new(rf_safetensors_writer **w) {
    if (!w) return rf_error(RF_ERR_INVALID_ARG, "rf_safetensors_writer_new: null argument");
    *w = calloc(1, sizeof **w);
    return *w ? RF_OK : rf_error(RF_ERR_OUT_OF_MEMORY, "rf_safetensors_writer_new: no memory");
}

void rf_safetensors_writer_free(rf_safetensors_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->count; i++) {
        free(w->entries[i].name);
        free(w->entries[i].data);
    }
    for (size_t i = 0; i < w->meta_count; i++) {
        free(w->meta_keys[i]);
        free(w->meta_values[i]);
    }
    free(w->entries);
    free(w->meta_keys);
    free(w->meta_values);
    free(w);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 1;
    size_t n = *cap ? *cap * 2 : 16;
    void *q = realloc(*p, n * elem);
    if (!q) return 0;
    *p = q;
    *cap = n;
    return 1;
}

rf_status rf_safetensors_writer_add(rf_safetensors_writer *w, const char *name, rf_st_dtype dtype, int ndim,
                                    const int64_t *shape, const void *data) {
    const char *fn = "rf_safetensors_writer_add";
    if (!w || !name || (ndim > 0 && !shape)) return rf_error(RF_ERR_INVALID_ARG, "%s: null argument", fn);
    if (strcmp(name, "__metadata__") == 0 || rf_io_utf8_check(name, strlen(name)) != strlen(name))
        return rf_error(RF_ERR_INVALID_ARG, "%s: '%.200s' is not a usable tensor name (reserved or not UTF-8)", fn, name);
    if (rf_st_dtype_size(dtype) == 0) return rf_error(RF_ERR_INVALID_ARG, "%s: tensor '%.200s': unknown dtype %d", fn, name, (int)dtype);
    if (ndim < 0 || ndim > RF_ST_MAX_DIMS)
        return rf_error(RF_ERR_INVALID_ARG, "%s: tensor '%.200s': ndim %d not in [0, %d]", fn, name, ndim, RF_ST_MAX_DIMS);
    size_t bytes = rf_st_dtype_size(dtype);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || !rf_mul_size(bytes, (size_t)shape[i], &bytes))
            return rf_error(RF_ERR_INVALID_ARG, "%s: tensor '%.200s': shape[%d] = %lld is negative or overflows", fn, name, i,
                            (long long)shape[i]);
    }
    if (!data && bytes) return rf_error(RF_ERR_INVALID_ARG, "%s: tensor '%.200s': data is NULL", fn, name);
    for (size_t i = 0; i < w->count; i++)
        if (strcmp(w->entries[i].name, name) == 0)
            return rf_error(RF_ERR_INVALID_ARG, "%s: tensor '%.200s' was already added", fn, name);
    char *nm = strdup(name);
    void *copy = malloc(bytes ? bytes : 1);
    if (!nm || !copy || !grow((void **)&w->entries, &w->cap, w->count + 1, sizeof *w->entries)) {
        free(nm);
        free(copy);
        return rf_error(RF_ERR_OUT_OF_MEMORY, "%s: no memory for %zu bytes of tensor '%.200s'", fn, bytes, name);
    }
    if (bytes) memcpy(copy, data, bytes);
    wr_entry *e = &w->entries[w->count++];
    memset(e, 0, sizeof *e);
    e->name = nm;
    e->dtype = dtype;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    e->bytes = bytes;
    e->data = copy;
    return RF_OK;
}

rf_status rf_safetensors_writer_set_metadata(rf_safetensors_writer *w, const char *key, const char *value) {
    if (!w || !key || !value) return rf_error(RF_ERR_INVALID_ARG, "rf_safetensors_writer_set_metadata: null argument");
    if (rf_io_utf8_check(key, strlen(key)) != strlen(key) || rf_io_utf8_check(value, strlen(value)) != strlen(value))
        return rf_error(RF_ERR_INVALID_ARG, "rf_safetensors_writer_set_metadata: '%.200s' is not UTF-8 text", key);
    char *v = strdup(value);
    if (!v) return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_safetensors_writer_set_metadata: no memory");
    for (size_t i = 0; i < w->meta_count; i++)
        if (strcmp(w->meta_keys[i], key) == 0) {
            free(w->meta_values[i]);
            w->meta_values[i] = v;
            return RF_OK;
        }
    char *k = strdup(key);
    size_t cap = w->meta_cap;
    if (!k || !grow((void **)&w->meta_keys, &cap, w->meta_count + 1, sizeof *w->meta_keys) ||
        !grow((void **)&w->meta_values, &w->meta_cap, w->meta_count + 1, sizeof *w->meta_values)) {
        free(k);
        free(v);
        return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_safetensors_writer_set_metadata: no memory");
    }
    w->meta_keys[w->meta_count] = k;
    w->meta_values[w->meta_count++] = v;
    return RF_OK;
}

static int cmp_write_order(const void *a, const void *b) {
    const wr_entry *x = *(wr_entry *const *)a, *y = *(wr_entry *const *)b;
    int rx = dtype_rank(x->dtype), ry = dtype_rank(y->dtype);
    if (rx != ry) return ry - rx;
    return strcmp(x->name, y->name);
}

rf_status rf_safetensors_writer_serialize(const rf_safetensors_writer *w, void **bytes, size_t *n) {
    if (!w || !bytes || !n) return rf_error(RF_ERR_INVALID_ARG, "rf_safetensors_writer_serialize: null argument");
    *bytes = NULL;
    *n = 0;
    wr_entry **order = malloc((w->count ? w->count : 1) * sizeof *order);
    if (!order) return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_safetensors_writer_serialize: no memory");
    for (size_t i = 0; i < w->count; i++) order[i] = &w->entries[i];
    qsort(order, w->count, sizeof *order, cmp_write_order);

    rf_sbuf hb = {0};
    rf_sbuf_puts(&hb, "{");
    if (w->meta_count) {
        rf_sbuf_puts(&hb, "\"__metadata__\":{");
        for (size_t i = 0; i < w->meta_count; i++) {
            if (i) rf_sbuf_puts(&hb, ",");
            rf_sbuf_json_string(&hb, w->meta_keys[i]);
            rf_sbuf_puts(&hb, ":");
            rf_sbuf_json_string(&hb, w->meta_values[i]);
        }
        rf_sbuf_puts(&hb, "}");
    }
    size_t offset = 0;
    rf_status s = RF_OK;
    for (size_t i = 0; i < w->count; i++) {
        const wr_entry *e = order[i];
        char num[64];
        if (i || w->meta_count) rf_sbuf_puts(&hb, ",");
        rf_sbuf_json_string(&hb, e->name);
        rf_sbuf_puts(&hb, ":{\"dtype\":\"");
        rf_sbuf_puts(&hb, rf_st_dtype_name(e->dtype));
        rf_sbuf_puts(&hb, "\",\"shape\":[");
        for (int d = 0; d < e->ndim; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)e->shape[d]);
            rf_sbuf_puts(&hb, num);
        }
        if (offset + e->bytes < offset) {
            s = rf_error(RF_ERR_INVALID_ARG, "rf_safetensors_writer_serialize: total size overflows");
            break;
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%zu,%zu]}", offset, offset + e->bytes);
        rf_sbuf_puts(&hb, num);
        offset += e->bytes;
    }
    rf_sbuf_puts(&hb, "}");
    /* Pad with spaces so the data section starts 8-byte aligned (§11). */
    while (!hb.failed && hb.len % 8) rf_sbuf_puts(&hb, " ");
    size_t total = 0;
    if (s == RF_OK && hb.failed) s = rf_error(RF_ERR_OUT_OF_MEMORY, "rf_safetensors_writer_serialize: no memory for the header");
    if (s == RF_OK && (8 + hb.len + offset < offset || !(*bytes = malloc((total = 8 + hb.len + offset)))))
        s = rf_error(RF_ERR_OUT_OF_MEMORY, "rf_safetensors_writer_serialize: cannot allocate %zu bytes", 8 + hb.len + offset);
    if (s == RF_OK) {
        unsigned char *out = *bytes;
        uint64_t hl = hb.len;
        for (int i = 0; i < 8; i++) out[i] = (unsigned char)(hl >> (8 * i));
        memcpy(out + 8, hb.p, hb.len);
        size_t at = 8 + hb.len;
        for (size_t i = 0; i < w->count; i++) {
            if (order[i]->bytes) memcpy(out + at, order[i]->data, order[i]->bytes);
            at += order[i]->bytes;
        }
        *n = total;
    }
    free(hb.p);
    free(order);
    return s;
}

rf_status rf_safetensors_write(const rf_safetensors_writer *w, const char *path) {
    if (!w || !path) return rf_error(RF_ERR_INVALID_ARG, "rf_safetensors_write: null argument");
    void *bytes;
    size_t n;
    RF_TRY(rf_safetensors_writer_serialize(w, &bytes, &n));
    rf_status s = rf_write_file_atomic(path, bytes, n);
    free(bytes);
    return s;
}
