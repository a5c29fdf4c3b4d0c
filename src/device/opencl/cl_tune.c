/* Tunable kernel parameters (cl_tune.h): the table of keys and candidates,
 * the values a device holds, and their table file in the kernel cache's
 * folder (docs/tuning.md). Until `reformer tune` stores values for a
 * device, every key reads its documented default. */
#include <json.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "device/opencl/cl_backend.h"

const rf_cl_tunable rf_cl_tunables[] = {
    /* local / full attention (local_attention.c): rows a group owns, rows
     * it streams per step, work-items per row */
    {"attn_forward.qtile", 4, {4, 8, 16, 32}},
    {"attn_forward.ktile", 4, {8, 16, 32, 64}},
    {"attn_forward.split", 5, {2, 4, 8, 16, 32}},
    {"attn_backward_dq.qtile", 4, {4, 8, 16, 32}},
    {"attn_backward_dq.ktile", 4, {8, 16, 32, 64}},
    {"attn_backward_dq.split", 5, {2, 4, 8, 16, 32}},
    {"attn_backward_dkdv.ktile", 4, {4, 8, 16, 32}},
    {"attn_backward_dkdv.qtile", 4, {8, 16, 32, 64}},
    {"attn_backward_dkdv.split", 5, {2, 4, 8, 16, 32}},
    /* LSH chunk attention (lsh_attention.c, tiles_of): queries per tile,
     * keys per tile, work-items per row (the head dimension split). */
    {"lsh_attend.qtile", 4, {8, 16, 32, 64}},
    {"lsh_attend.ktile", 5, {8, 16, 32, 64, 128}},
    {"lsh_attend.split", 5, {1, 2, 4, 8, 16}},
    {"lsh_backward_query.qtile", 4, {8, 16, 32, 64}},
    {"lsh_backward_query.ktile", 5, {8, 16, 32, 64, 128}},
    {"lsh_backward_query.split", 5, {1, 2, 4, 8, 16}},
    {"lsh_backward_key.qtile", 5, {8, 16, 32, 64, 128}},
    {"lsh_backward_key.ktile", 4, {8, 16, 32, 64}},
    {"lsh_backward_key.split", 5, {1, 2, 4, 8, 16}},
    /* Row and column kernels (cl_program.c, rf_cl_row_groups; norm.c, loss.c,
     * linear.c): lanes per row or columns per group, work-items per group. */
    {"layer_norm.lanes", 7, {1, 2, 4, 8, 16, 32, 64}},
    {"layer_norm.group", 5, {64, 128, 256, 512, 1024}},
    {"cross_entropy.lanes", 7, {1, 2, 4, 8, 16, 32, 64}},
    {"cross_entropy.group", 5, {64, 128, 256, 512, 1024}},
    {"bias_grad.columns", 6, {1, 4, 8, 16, 32, 64}},
    {"bias_grad.group", 5, {64, 128, 256, 512, 1024}},
};
const int rf_cl_ntunables = (int)(sizeof rf_cl_tunables / sizeof *rf_cl_tunables);

/* The kernels whose tiles, split, lanes and groups belong to their GPU
 * shape: a device that runs the CPU shape (rf_cl_attn_shape) never builds or
 * plans them with these keys' values (lsh_attention.c tiled_kernel,
 * local_attention.c plan_window; the row kernels: norm.c, loss.c, linear.c);
 * the CPU shape has no tunables. */
static const char *const gpu_shape_kernels[] = {"lsh_attend.", "lsh_backward_query.", "lsh_backward_key.", "attn_",
                                                "layer_norm.", "bias_grad.", "cross_entropy."};

const char *rf_cl_tune_idle(rf_device *dev, const char *key) {
    rf_cl_shape shape;
    if (rf_cl_attn_shape(dev, &shape) != RF_OK) {
        rf_clear_error();
        return NULL; /* a bad RF_CL_ATTN: the op itself reports it */
    }
    for (size_t i = 0; i < sizeof gpu_shape_kernels / sizeof *gpu_shape_kernels; i++)
        if (shape == RF_CL_SHAPE_CPU && !strncmp(key, gpu_shape_kernels[i], strlen(gpu_shape_kernels[i])))
            return "device runs the CPU shape; RF_CL_ATTN=gpu to tune the GPU shape";
    return NULL;
}

/* Bump when the file's layout changes: older files are then ignored. */
static const char TABLE_FORMAT[] = "reformer-cl tune table 1";
/* Values are tile and group sizes: anything larger is not one. */
#define MAX_VALUE (1 << 20)

const rf_cl_tunable *rf_cl_tunable_find(const char *key) {
    for (int i = 0; i < rf_cl_ntunables; i++)
        if (!strcmp(rf_cl_tunables[i].key, key)) return &rf_cl_tunables[i];
    return NULL;
}

static rf_cl_tuning *tuning_of(rf_device *dev) {
    return dev && dev->info.kind == RF_DEVICE_OPENCL && dev->impl ? &rf_cl_ctx(dev)->tuning : NULL;
}

static rf_cl_tune_value *find_value(rf_cl_tuning *t, const char *key) {
    for (int i = 0; i < t->count; i++)
        if (!strcmp(t->values[i].key, key)) return &t->values[i];
    return NULL;
}

int rf_cl_tuned(rf_device *dev, const char *key, int fallback) {
    rf_cl_tuning *t = tuning_of(dev);
    rf_cl_tune_value *v = t ? find_value(t, key) : NULL;
    return v ? v->value : fallback;
}

rf_status rf_cl_tuned_unfit(rf_device *dev, const char *key, int value, const char *why) {
    rf_cl_tuning *t = tuning_of(dev);
    rf_cl_tune_value *v = t ? find_value(t, key) : NULL;
    if (!v) return RF_OK; /* the default: the caller's ordinary fallback */
    if (v->forced)
        return rf_error(RF_ERR_UNSUPPORTED, "tuning %s = %d does not fit %s: %s", key, value, dev->info.name, why);
    rf_log(RF_LOG_INFO, "tuned %s = %d does not fit %s (%s); using the default", key, value, dev->info.name, why);
    return RF_OK;
}

rf_status rf_cl_tune_set(rf_device *dev, const char *key, int value) {
    rf_cl_tuning *t = tuning_of(dev);
    if (!t) return rf_error(RF_ERR_UNSUPPORTED, "rf_cl_tune_set: not an OpenCL device");
    if (!key || !rf_cl_tunable_find(key)) return rf_error(RF_ERR_INVALID_ARG, "rf_cl_tune_set: unknown key '%s'", key);
    if (value < 0 || value > MAX_VALUE)
        return rf_error(RF_ERR_INVALID_ARG, "rf_cl_tune_set: %s = %d is out of range [0, %d]", key, value, MAX_VALUE);
    rf_cl_tune_value *v = find_value(t, key);
    if (value == 0) {
        if (v) *v = t->values[--t->count];
        return RF_OK;
    }
    if (!v) {
        if (t->count == RF_CL_TUNE_MAX_VALUES)
            return rf_error(RF_ERR_UNSUPPORTED, "rf_cl_tune_set: more than %d tuned values", RF_CL_TUNE_MAX_VALUES);
        v = &t->values[t->count++];
        snprintf(v->key, sizeof v->key, "%s", key);
    }
    v->value = value;
    v->forced = true;
    return RF_OK;
}

/* ---- the table file ---------------------------------------------------- */

/* The identity a table belongs to, field by field: a file is used only on
 * the device and driver it was measured on. */
typedef struct { const char *field; const char *(*get)(const rf_device_info *); } identity_field;
static const char *id_name(const rf_device_info *i) { return i->name; }
static const char *id_vendor(const rf_device_info *i) { return i->vendor; }
static const char *id_driver(const rf_device_info *i) { return i->driver_version; }
static const char *id_platform(const rf_device_info *i) { return i->platform_version; }
static const char *id_opencl_c(const rf_device_info *i) { return i->opencl_c_version; }
static const identity_field identity[] = {
    {"device", id_name}, {"vendor", id_vendor}, {"driver", id_driver},
    {"platform_version", id_platform}, {"opencl_c_version", id_opencl_c},
};
enum { NIDENTITY = sizeof identity / sizeof identity[0] };

void rf_cl_tune_path(const rf_device *dev, char *out, size_t n) {
    uint64_t h = RF_HASH_INIT;
    h = rf_hash64(h, TABLE_FORMAT, sizeof TABLE_FORMAT);
    for (int i = 0; i < NIDENTITY; i++) {
        const char *s = identity[i].get(&dev->info);
        h = rf_hash64(h, s, strlen(s) + 1);
    }
    char dir[3500];
    rf_cl_cache_dir(dir, sizeof dir);
    snprintf(out, n, "%s/tune-%016llx.json", dir, (unsigned long long)h);
}

/* Why the parsed file cannot be this device's table (NULL: it can), with
 * its values copied into t. */
static const char *parse_table(const rf_device *dev, json_object *root, rf_cl_tuning *t) {
    json_object *f, *values;
    if (!json_object_is_type(root, json_type_object)) return "not a JSON object";
    if (!json_object_object_get_ex(root, "format", &f) || !json_object_is_type(f, json_type_string) ||
        strcmp(json_object_get_string(f), TABLE_FORMAT))
        return "not a table of this format";
    for (int i = 0; i < NIDENTITY; i++)
        if (!json_object_object_get_ex(root, identity[i].field, &f) || !json_object_is_type(f, json_type_string) ||
            strcmp(json_object_get_string(f), identity[i].get(&dev->info)))
            return "written for another device or driver";
    if (!json_object_object_get_ex(root, "values", &values) || !json_object_is_type(values, json_type_object))
        return "no \"values\" object";
    t->count = 0;
    json_object_object_foreach(values, key, val) {
        if (!json_object_is_type(val, json_type_int)) return "a value is not an integer";
        int64_t x = json_object_get_int64(val);
        if (x < 1 || x > MAX_VALUE) return "a value is out of range";
        if (strlen(key) >= RF_CL_TUNE_KEY_MAX) return "a key is too long";
        /* A key this build does not have (a newer or older kernel) is kept
         * out: nothing reads it. */
        if (!rf_cl_tunable_find(key)) continue;
        if (t->count == RF_CL_TUNE_MAX_VALUES) return "too many values";
        rf_cl_tune_value *v = &t->values[t->count++];
        snprintf(v->key, sizeof v->key, "%s", key);
        v->value = (int)x;
        v->forced = false;
    }
    return NULL;
}

rf_status rf_cl_tune_load(rf_device *dev) {
    rf_cl_tuning *t = tuning_of(dev);
    if (!t) return RF_OK;
    t->count = 0;
    char path[4096];
    rf_cl_tune_path(dev, path, sizeof path);
    struct stat st;
    if (lstat(path, &st) != 0) return RF_OK; /* not tuned: the defaults */
    const char *why = NULL;
    void *data = NULL;
    size_t n = 0;
    json_object *root = NULL;
    rf_cl_tuning parsed;
    if (!S_ISREG(st.st_mode)) why = "not a regular file";
    else if (rf_read_file(path, &data, &n) != RF_OK) {
        rf_clear_error();
        why = "unreadable";
    } else {
        json_tokener *tok = json_tokener_new();
        if (!tok) why = "no memory to parse it";
        else {
            root = json_tokener_parse_ex(tok, data, (int)(n < (size_t)1 << 30 ? n : (size_t)1 << 30));
            size_t end = json_tokener_get_parse_end(tok);
            while (end < n && strchr(" \t\r\n", ((const char *)data)[end])) end++;
            if (!root || json_tokener_get_error(tok) != json_tokener_success || end != n) why = "not valid JSON";
            json_tokener_free(tok);
        }
    }
    if (!why) why = parse_table(dev, root, &parsed);
    json_object_put(root);
    free(data);
    if (why) {
        rf_log(RF_LOG_WARN, "tuning table %s is ignored (%s); using the defaults", path, why);
        return RF_OK;
    }
    *t = parsed;
    rf_log(RF_LOG_DEBUG, "tuning table %s: %d values", path, t->count);
    return RF_OK;
}

/* obj[key] = a new value `v` (taken by obj); false on no memory. */
static bool add(json_object *obj, const char *key, json_object *v) {
    if (v && !json_object_object_add(obj, key, v)) return true;
    json_object_put(v);
    return false;
}

rf_status rf_cl_tune_store(rf_device *dev, char *path, size_t n) {
    rf_cl_tuning *t = tuning_of(dev);
    if (!t) return rf_error(RF_ERR_UNSUPPORTED, "rf_cl_tune_store: not an OpenCL device");
    json_object *root = json_object_new_object(), *values = json_object_new_object();
    bool ok = root && values && add(root, "format", json_object_new_string(TABLE_FORMAT));
    for (int i = 0; ok && i < NIDENTITY; i++)
        ok = add(root, identity[i].field, json_object_new_string(identity[i].get(&dev->info)));
    for (int i = 0; ok && i < t->count; i++) ok = add(values, t->values[i].key, json_object_new_int(t->values[i].value));
    if (ok) {
        ok = add(root, "values", values);
        values = NULL; /* root owns it, or add() released it */
    }
    rf_status s = ok ? RF_OK : rf_error(RF_ERR_OUT_OF_MEMORY, "no memory for the tuning table");
    rf_cl_tune_path(dev, path, n);
    char dir[3500];
    rf_cl_cache_dir(dir, sizeof dir);
    if (s == RF_OK) s = rf_cl_cache_mkdir(dir);
    if (s == RF_OK) {
        size_t len = 0;
        const char *text = json_object_to_json_string_length(root, JSON_C_TO_STRING_PRETTY, &len);
        s = text ? rf_write_file_atomic(path, text, len) : rf_error(RF_ERR_OUT_OF_MEMORY, "no memory");
    }
    json_object_put(values);
    json_object_put(root);
    return s;
}
