/* safetensors reader (§11): validates the header completely against the file
 * size before it reads a byte of tensor data. Also the dtype names and sizes
 * the writer (safetensors_write.c) shares. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "core/core.h"
#include "io/io_util.h"
#include "reformer/io.h"

/* As the reference implementation: a larger header is refused unread. */
#define ST_MAX_HEADER 100000000ull

typedef struct st_entry {
    char *name;
    rf_st_dtype dtype;
    int ndim;
    int64_t shape[RF_ST_MAX_DIMS];
    size_t numel, bytes;
    size_t begin, end;               /* within the data section */
} st_entry;

struct rf_safetensors {
    char *label;                     /* the path, for messages */
    st_entry *entries;               /* header order */
    size_t count;
    st_entry **by_name;              /* sorted by name, for find */
    char **meta_keys, **meta_values;
    size_t meta_count;
    unsigned char *data;             /* the data section (malloc'd: aligned) */
    size_t data_len;
};

const char *rf_st_dtype_name(rf_st_dtype dtype) {
    switch (dtype) {
    case RF_ST_F32: return "F32";
    case RF_ST_I32: return "I32";
    case RF_ST_I64: return "I64";
    }
    return "?";
}

size_t rf_st_dtype_size(rf_st_dtype dtype) {
    switch (dtype) {
    case RF_ST_F32: return 4;
    case RF_ST_I32: return 4;
    case RF_ST_I64: return 8;
    }
    return 0;
}

/* Dtypes of the format that this build does not handle: named as such. */
static const char *const other_dtypes[] = {
    "BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "U32", "U64", "F64", "C64",
    "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2",
};

static char *dup_str(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

void rf_safetensors_close(rf_safetensors *st) {
    if (!st) return;
    for (size_t i = 0; i < st->count; i++) free(st->entries[i].name);
    for (size_t i = 0; i < st->meta_count; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->entries);
    free(st->by_name);
    free(st->meta_keys);
    free(st->meta_values);
    free(st->data);
    free(st->label);
    free(st);
}

/* ---- header validation -------------------------------------------------- */

/* Text from the header, copied: no NUL (json-c decodes "\u0000") and strict
 * UTF-8 (json-c decodes a lone "\ud800"), so the writer can write it back. */
static rf_status copy_text(const rf_safetensors *st, const char *s, size_t n, const char *what, char **out) {
    if (memchr(s, '\0', n) || rf_io_utf8_check(s, n) != n)
        return rf_error(RF_ERR_FORMAT, "safetensors '%s': %s '%.200s' contains NUL or invalid UTF-8", st->label, what, s);
    *out = dup_str(s, n);
    return *out ? RF_OK : rf_error(RF_ERR_OUT_OF_MEMORY, "safetensors '%s': no memory", st->label);
}

static rf_status parse_metadata(rf_safetensors *st, json_object *meta) {
    if (json_object_is_type(meta, json_type_null)) return RF_OK;
    if (!json_object_is_type(meta, json_type_object))
        return rf_error(RF_ERR_FORMAT, "safetensors '%s': __metadata__ is %s, not an object of strings",
                        st->label, rf_json_type_name(meta));
    size_t n = (size_t)json_object_object_length(meta);
    st->meta_keys = calloc(n ? n : 1, sizeof *st->meta_keys);
    st->meta_values = calloc(n ? n : 1, sizeof *st->meta_values);
    if (!st->meta_keys || !st->meta_values)
        return rf_error(RF_ERR_OUT_OF_MEMORY, "safetensors '%s': no memory for metadata", st->label);
    json_object_object_foreach(meta, key, val) {
        if (!json_object_is_type(val, json_type_string))
            return rf_error(RF_ERR_FORMAT, "safetensors '%s': __metadata__ value of '%.200s' is %s, not a string",
                            st->label, key, rf_json_type_name(val));
        size_t i = st->meta_count++;
        RF_TRY(copy_text(st, key, strlen(key), "__metadata__ key", &st->meta_keys[i]));
        RF_TRY(copy_text(st, json_object_get_string(val), (size_t)json_object_get_string_len(val),
                         "__metadata__ value", &st->meta_values[i]));
    }
    return RF_OK;
}

/* A non-negative JSON integer (json-c clamps larger ones to INT64_MAX, which
 * then fails the size checks). */
static rf_status get_index(const rf_safetensors *st, const char *name, const char *what, json_object *v,
                           int64_t *out) {
    if (!json_object_is_type(v, json_type_int))
        return rf_error(RF_ERR_FORMAT, "safetensors '%s': tensor '%.200s': %s is %s, not an integer",
                        st->label, name, what, rf_json_type_name(v));
    *out = json_object_get_int64(v);
    if (*out < 0)
        return rf_error(RF_ERR_FORMAT, "safetensors '%s': tensor '%.200s': %s is %lld, negative",
                        st->label, name, what, (long long)*out);
    return RF_OK;
}

static rf_status parse_entry(rf_safetensors *st, st_entry *e, json_object *v) {
    const char *name = e->name;
    if (!json_object_is_type(v, json_type_object))
        return rf_error(RF_ERR_FORMAT, "safetensors '%s': tensor '%.200s' is %s, not an object",
                        st->label, name, rf_json_type_name(v));
    json_object *dtype, *shape, *offsets;
    if (!json_object_object_get_ex(v, "dtype", &dtype) || !json_object_object_get_ex(v, "shape", &shape) ||
        !json_object_object_get_ex(v, "data_offsets", &offsets))
        return rf_error(RF_ERR_FORMAT, "safetensors '%s': tensor '%.200s' lacks one of dtype, shape, data_offsets",
                        st->label, name);

    if (!json_object_is_type(dtype, json_type_string))
        return rf_error(RF_ERR_FORMAT, "safetensors '%s': tensor '%.200s': dtype is %s, not a string",
                        st->label, name, rf_json_type_name(dtype));
    const char *ds = json_object_get_string(dtype);
    if (strcmp(ds, "F32") == 0) e->dtype = RF_ST_F32;
    else if (strcmp(ds, "I32") == 0) e->dtype = RF_ST_I32;
    else if (strcmp(ds, "I64") == 0) e->dtype = RF_ST_I64;
    else {
        for (size_t i = 0; i < sizeof other_dtypes / sizeof *other_dtypes; i++)
            if (strcmp(ds, other_dtypes[i]) == 0)
                return rf_error(RF_ERR_UNSUPPORTED,
                                "safetensors '%s': tensor '%.200s' has dtype %s; only F32, I32 and I64 are supported",
                                st->label, name, ds);
        return rf_error(RF_ERR_FORMAT, "safetensors '%s': tensor '%.200s' has unknown dtype '%.40s'",
                        st->label, name, ds);
    }

    if (!json_object_is_type(shape, json_type_array))
        return rf_error(RF_ERR_FORMAT, "safetensors '%s': tensor '%.200s': shape is %s, not a list",
                        st->label, name, rf_json_type_name(shape));
    size_t ndim = json_object_array_length(shape);
    if (ndim > RF_ST_MAX_DIMS)
        return rf_error(RF_ERR_UNSUPPORTED, "safetensors '%s': tensor '%.200s' has %zu dimensions; at most %d are supported",
                        st->label, name, ndim, RF_ST_MAX_DIMS);
    e->ndim = (int)ndim;
    size_t numel = 1;
    for (size_t i = 0; i < ndim; i++) {
        RF_TRY(get_index(st, name, "a shape entry", json_object_array_get_idx(shape, i), &e->shape[i]));
        if ((uint64_t)e->shape[i] > SIZE_MAX || !rf_mul_size(numel, (size_t)e->shape[i], &numel))
            return rf_error(RF_ERR_FORMAT, "safetensors '%s': tensor '%.200s': the element count of its shape overflows",
                            st->label, name);
    }
    if (!rf_mul_size(numel, rf_st_dtype_size(e->dtype), &e->bytes))
        return rf_error(RF_ERR_FORMAT, "safetensors '%s': tensor '%.200s': the byte size of its shape overflows",
                        st->label, name);
    e->numel = numel;

    if (!json_object_is_type(offsets, json_type_array) || json_object_array_length(offsets) != 2)
        return rf_error(RF_ERR_FORMAT, "safetensors '%s': tensor '%.200s': data_offsets is not a list of two integers",
                        st->label, name);
    int64_t begin, end;
    RF_TRY(get_index(st, name, "data_offsets[0]", json_object_array_get_idx(offsets, 0), &begin));
    RF_TRY(get_index(st, name, "data_offsets[1]", json_object_array_get_idx(offsets, 1), &end));
    if (end < begin)
        return rf_error(RF_ERR_FORMAT, "safetensors '%s': tensor '%.200s': data_offsets [%lld, %lld] end before they begin",
                        st->label, name, (long long)begin, (long long)end);
    if ((uint64_t)end > st->data_len)
        return rf_error(RF_ERR_FORMAT,
                        "safetensors '%s': tensor '%.200s': data_offsets [%lld, %lld] lie outside the %zu-byte data section",
                        st->label, name, (long long)begin, (long long)end, st->data_len);
    e->begin = (size_t)begin;
    e->end = (size_t)end;
    char sb[160];
    if (e->end - e->begin != e->bytes)
        return rf_error(RF_ERR_FORMAT,
                        "safetensors '%s': tensor '%.200s': shape %s of %s needs %zu bytes but data_offsets [%zu, %zu] hold %zu",
                        st->label, name, rf_io_shape_str(e->ndim, e->shape, sb, sizeof sb), ds, e->bytes, e->begin,
                        e->end, e->end - e->begin);
    /* Aligned data section + aligned begin = a pointer consumers can cast. */
    if (e->begin % rf_st_dtype_size(e->dtype) != 0)
        return rf_error(RF_ERR_UNSUPPORTED,
                        "safetensors '%s': tensor '%.200s' starts at data byte %zu, not a multiple of its %zu-byte element",
                        st->label, name, e->begin, rf_st_dtype_size(e->dtype));
    return RF_OK;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp((*(st_entry *const *)a)->name, (*(st_entry *const *)b)->name);
}

static int cmp_offsets(const void *a, const void *b) {
    const st_entry *x = *(st_entry *const *)a, *y = *(st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Tensors must tile the data section exactly, as the reference reader demands:
 * this catches overlaps (two tensors sharing bytes), gaps and trailing bytes. */
static rf_status check_tiling(rf_safetensors *st) {
    if (st->count == 0) {
        if (st->data_len != 0)
            return rf_error(RF_ERR_FORMAT, "safetensors '%s': no tensors but %zu bytes of data", st->label, st->data_len);
        return RF_OK;
    }
    st_entry **order = malloc(st->count * sizeof *order);
    if (!order) return rf_error(RF_ERR_OUT_OF_MEMORY, "safetensors '%s': no memory", st->label);
    for (size_t i = 0; i < st->count; i++) order[i] = &st->entries[i];
    qsort(order, st->count, sizeof *order, cmp_offsets);
    rf_status s = RF_OK;
    size_t covered = 0;
    const st_entry *last = NULL;     /* the tensor that ends at `covered` */
    for (size_t i = 0; i < st->count && s == RF_OK; i++) {
        const st_entry *e = order[i];
        if (e->begin < covered)
            s = rf_error(RF_ERR_FORMAT, "safetensors '%s': tensors '%.200s' [%zu, %zu] and '%.200s' [%zu, %zu] overlap",
                         st->label, last->name, last->begin, last->end, e->name, e->begin, e->end);
        else if (e->begin > covered)
            s = rf_error(RF_ERR_FORMAT, "safetensors '%s': data bytes [%zu, %zu) before tensor '%.200s' belong to no tensor",
                         st->label, covered, e->begin, e->name);
        else if (e->end > covered || !last) {
            covered = e->end;
            last = e;
        }
    }
    if (s == RF_OK && covered != st->data_len)
        s = rf_error(RF_ERR_FORMAT, "safetensors '%s': the tensors cover %zu bytes of the %zu-byte data section",
                     st->label, covered, st->data_len);
    free(order);
    return s;
}

static rf_status parse_header(rf_safetensors *st, const char *hdr, size_t n) {
    /* The reference reader requires the header to open with '{' (so that a
     * header that parses is an object). */
    if (n == 0 || hdr[0] != '{')
        return rf_error(RF_ERR_FORMAT, "safetensors '%s': the %zu-byte header does not start with '{'", st->label, n);
    char where[300];
    snprintf(where, sizeof where, "safetensors '%s': header", st->label);
    json_object *root;
    RF_TRY(rf_json_parse(hdr, n, where, &root));
    rf_status s = RF_OK;
    size_t total = (size_t)json_object_object_length(root);
    st->entries = calloc(total ? total : 1, sizeof *st->entries);
    st->by_name = calloc(total ? total : 1, sizeof *st->by_name);
    if (!st->entries || !st->by_name)
        s = rf_error(RF_ERR_OUT_OF_MEMORY, "safetensors '%s': no memory for %zu entries", st->label, total);
    json_object_object_foreach(root, key, val) {
        if (s != RF_OK) break;
        if (strcmp(key, "__metadata__") == 0) {
            s = parse_metadata(st, val);
            continue;
        }
        st_entry *e = &st->entries[st->count++];
        s = copy_text(st, key, strlen(key), "tensor name", &e->name);
        if (s == RF_OK) s = parse_entry(st, e, val);
    }
    /* Names are unique: json-c keeps the last of duplicate keys (as the
     * reference reader does), and the bytes of the dropped entry then fail
     * the tiling check. */
    if (s == RF_OK) {
        for (size_t i = 0; i < st->count; i++) st->by_name[i] = &st->entries[i];
        qsort(st->by_name, st->count, sizeof *st->by_name, cmp_name);
        s = check_tiling(st);
    }
    json_object_put(root);
    return s;
}

/* ---- opening -------------------------------------------------------------- */

static rf_status st_new(rf_safetensors **out, const char *label) {
    rf_safetensors *st = calloc(1, sizeof *st);
    if (st) st->label = dup_str(label, strlen(label));
    if (!st || !st->label) {
        free(st);
        return rf_error(RF_ERR_OUT_OF_MEMORY, "safetensors: no memory");
    }
    *out = st;
    return RF_OK;
}

static uint64_t read_le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Check the length field against the size; return the header length. */
static rf_status check_lengths(const rf_safetensors *st, const unsigned char *first8, size_t size, size_t *hlen) {
    if (size < 8)
        return rf_error(RF_ERR_FORMAT, "safetensors '%s': the file is %zu bytes, too short for the 8-byte header length",
                        st->label, size);
    uint64_t n = read_le64(first8);
    if (n > ST_MAX_HEADER)
        return rf_error(RF_ERR_FORMAT, "safetensors '%s': header length %llu exceeds the %llu-byte limit",
                        st->label, (unsigned long long)n, ST_MAX_HEADER);
    if (n > size - 8)
        return rf_error(RF_ERR_FORMAT, "safetensors '%s': header length %llu exceeds the %zu bytes after the length field",
                        st->label, (unsigned long long)n, size - 8);
    *hlen = (size_t)n;
    return RF_OK;
}

/* Room for the data section, allocated only once the header is validated. */
static rf_status alloc_data(rf_safetensors *st, size_t len) {
    st->data_len = len;
    st->data = malloc(len ? len : 1);   /* malloc: aligned for any element type */
    return st->data ? RF_OK : rf_error(RF_ERR_OUT_OF_MEMORY, "safetensors '%s': cannot allocate %zu bytes of tensor data",
                                       st->label, len);
}

rf_status rf_safetensors_open_memory(rf_safetensors **out, const void *bytes, size_t n, const char *label) {
    if (!out || (!bytes && n)) return rf_error(RF_ERR_INVALID_ARG, "rf_safetensors_open_memory: null argument");
    *out = NULL;
    rf_safetensors *st;
    RF_TRY(st_new(&st, label ? label : "<memory>"));
    const unsigned char *p = bytes;
    size_t hlen = 0;
    rf_status s = check_lengths(st, p, n, &hlen);
    if (s == RF_OK) {
        st->data_len = n - 8 - hlen;
        s = parse_header(st, (const char *)p + 8, hlen);
    }
    if (s == RF_OK) s = alloc_data(st, n - 8 - hlen);
    if (s != RF_OK) {
        rf_safetensors_close(st);
        return s;
    }
    if (st->data_len) memcpy(st->data, p + 8 + hlen, st->data_len);
    *out = st;
    return RF_OK;
}

static rf_status read_exact(FILE *f, void *dst, size_t n, const rf_safetensors *st, const char *what) {
    if (n && fread(dst, 1, n, f) != n)
        return rf_error(RF_ERR_IO, "safetensors '%s': cannot read the %s (%zu bytes): %s", st->label, what, n,
                        ferror(f) ? strerror(errno) : "the file is shorter than it was");
    return RF_OK;
}

rf_status rf_safetensors_open(rf_safetensors **out, const char *path) {
    if (!out || !path) return rf_error(RF_ERR_INVALID_ARG, "rf_safetensors_open: null argument");
    *out = NULL;
    RF_TRY(rf_check_regular_file(path)); /* before fopen: a FIFO would block it */
    FILE *f = fopen(path, "rb");
    if (!f) return rf_error(errno == ENOENT ? RF_ERR_NOT_FOUND : RF_ERR_IO, "safetensors '%s': cannot open: %s", path,
                            strerror(errno));
    rf_safetensors *st = NULL;
    char *hdr = NULL;
    struct stat sb;
    rf_status s = st_new(&st, path);
    if (s == RF_OK && (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)))
        s = rf_error(RF_ERR_IO, "safetensors '%s': not a regular file", path);
    unsigned char first8[8] = {0};
    size_t size = s == RF_OK ? (size_t)sb.st_size : 0, hlen = 0;
    if (s == RF_OK && size >= 8) s = read_exact(f, first8, 8, st, "header length");
    if (s == RF_OK) s = check_lengths(st, first8, size, &hlen);
    if (s == RF_OK && !(hdr = malloc(hlen ? hlen : 1))) s = rf_error(RF_ERR_OUT_OF_MEMORY, "safetensors '%s': no memory for the header", path);
    if (s == RF_OK) s = read_exact(f, hdr, hlen, st, "header");
    if (s == RF_OK) {
        st->data_len = size - 8 - hlen;
        s = parse_header(st, hdr, hlen);
    }
    if (s == RF_OK) s = alloc_data(st, size - 8 - hlen);
    if (s == RF_OK) s = read_exact(f, st->data, st->data_len, st, "tensor data");
    free(hdr);
    fclose(f);
    if (s != RF_OK) {
        rf_safetensors_close(st);
        return s;
    }
    *out = st;
    return RF_OK;
}

/* ---- queries -------------------------------------------------------------- */

static void fill_info(const rf_safetensors *st, const st_entry *e, rf_st_tensor *info) {
    memset(info, 0, sizeof *info);
    info->name = e->name;
    info->dtype = e->dtype;
    info->ndim = e->ndim;
    memcpy(info->shape, e->shape, sizeof e->shape);
    info->numel = e->numel;
    info->bytes = e->bytes;
    info->data = st->data + e->begin;
}

const char *rf_safetensors_label(const rf_safetensors *st) { return st ? st->label : ""; }

size_t rf_safetensors_count(const rf_safetensors *st) { return st ? st->count : 0; }

rf_status rf_safetensors_at(const rf_safetensors *st, size_t index, rf_st_tensor *info) {
    if (!st || !info) return rf_error(RF_ERR_INVALID_ARG, "rf_safetensors_at: null argument");
    if (index >= st->count)
        return rf_error(RF_ERR_INVALID_ARG, "rf_safetensors_at: index %zu out of range (the file '%s' has %zu tensors)",
                        index, st->label, st->count);
    fill_info(st, &st->entries[index], info);
    return RF_OK;
}

rf_status rf_safetensors_find(const rf_safetensors *st, const char *name, rf_st_tensor *info) {
    if (!st || !name || !info) return rf_error(RF_ERR_INVALID_ARG, "rf_safetensors_find: null argument");
    st_entry key = {.name = (char *)name}, *kp = &key;
    st_entry **hit = st->count ? bsearch(&kp, st->by_name, st->count, sizeof *st->by_name, cmp_name) : NULL;
    if (!hit) return rf_error(RF_ERR_NOT_FOUND, "safetensors '%s': no tensor '%.200s'", st->label, name);
    fill_info(st, *hit, info);
    return RF_OK;
}

size_t rf_safetensors_metadata_count(const rf_safetensors *st) { return st ? st->meta_count : 0; }

rf_status rf_safetensors_metadata_at(const rf_safetensors *st, size_t index, const char **key, const char **value) {
    if (!st || !key || !value) return rf_error(RF_ERR_INVALID_ARG, "rf_safetensors_metadata_at: null argument");
    if (index >= st->meta_count)
        return rf_error(RF_ERR_INVALID_ARG, "rf_safetensors_metadata_at: index %zu out of range ('%s' has %zu entries)",
                        index, st->label, st->meta_count);
    *key = st->meta_keys[index];
    *value = st->meta_values[index];
    return RF_OK;
}

rf_status rf_safetensors_metadata_get(const rf_safetensors *st, const char *key, const char **value) {
    if (!st || !key || !value) return rf_error(RF_ERR_INVALID_ARG, "rf_safetensors_metadata_get: null argument");
    for (size_t i = 0; i < st->meta_count; i++)
        if (strcmp(st->meta_keys[i], key) == 0) {
            *value = st->meta_values[i];
            return RF_OK;
        }
    return rf_error(RF_ERR_NOT_FOUND, "safetensors '%s': no __metadata__ entry '%.200s'", st->label, key);
}
