/* The device layer's front door: enumeration, selection by name, buffers
 * with byte accounting, and the per-op profile table. Backend-specific work
 * goes through dev->backend. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "device/device_impl.h"

#define RF_MAX_DEVICES 64

uint64_t rf_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The device list: "cpu" then every OpenCL device (none in a build without
 * the OpenCL backend, RF_OPENCL=OFF). Enumerated on each call (cheap) so a
 * test can change OCL_ICD_VENDORS between calls. */
static rf_status list_devices(rf_device_info *infos, int *count) {
    rf_device cpu;
    memset(&cpu, 0, sizeof cpu);
    RF_TRY(rf_cpu_device_init(&cpu));
    infos[0] = cpu.info;
    int ncl = 0;
#ifdef RF_HAVE_OPENCL
    RF_TRY(rf_cl_enumerate(infos + 1, RF_MAX_DEVICES - 1, &ncl));
#endif
    *count = 1 + (ncl < RF_MAX_DEVICES - 1 ? ncl : RF_MAX_DEVICES - 1);
    return RF_OK;
}

/* Open a listed device other than the cpu: an OpenCL device "cl:P:D". */
static rf_status open_listed(rf_device *dev, const rf_device_info *info) {
#ifdef RF_HAVE_OPENCL
    int p = 0, d = 0;
    sscanf(info->id, "cl:%d:%d", &p, &d);
    return rf_cl_device_init(dev, p, d);
#else
    return rf_error(RF_ERR_NOT_FOUND, "device %s: this build has no OpenCL backend", info->id);
#endif
}

rf_status rf_device_count(int *count) {
    if (!count) return rf_error(RF_ERR_INVALID_ARG, "rf_device_count: count is NULL");
    rf_device_info infos[RF_MAX_DEVICES];
    return list_devices(infos, count);
}

rf_status rf_device_info_at(int index, rf_device_info *info) {
    if (!info) return rf_error(RF_ERR_INVALID_ARG, "rf_device_info_at: info is NULL");
    rf_device_info infos[RF_MAX_DEVICES];
    int n = 0;
    RF_TRY(list_devices(infos, &n));
    if (index < 0 || index >= n)
        return rf_error(RF_ERR_NOT_FOUND, "rf_device_info_at: index %d out of range [0, %d)", index, n);
    *info = infos[index];
    return RF_OK;
}

static int contains_nocase(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i])) i++;
        if (i == n) return 1;
    }
    return n == 0;
}

/* Pick the list index `name` refers to, or -1. */
static int resolve_name(const rf_device_info *infos, int n, const char *name) {
    if (!strcmp(name, "auto")) {
        /* The first GPU that is not a simulator; with none, the cpu backend:
         * measured faster than an OpenCL CPU device (PoCL) on the same cores at
         * training and inference of the benchmark model (README "Speed"). */
        for (int i = 1; i < n; i++) if (infos[i].is_gpu && !infos[i].is_simulator) return i;
        return 0;
    }
    for (int i = 0; i < n; i++) if (!strcmp(name, infos[i].id)) return i;
    if (!strncmp(name, "cl:", 3)) return -1; /* an explicit index that does not exist */
    for (int i = 0; i < n; i++)
        if (contains_nocase(infos[i].name, name) || contains_nocase(infos[i].platform, name) ||
            contains_nocase(infos[i].platform_version, name)) /* "OpenCL 3.0 PoCL 3.1 ..." */
            return i;
    return -1;
}

/* Why OpenCL found no platform ("" when it did); a cpu-only build has none. */
static const char *platform_problem(void) {
#ifdef RF_HAVE_OPENCL
    return rf_cl_platform_problem();
#else
    return "";
#endif
}

rf_status rf_device_open(rf_device **device, const char *name) {
    if (!device) return rf_error(RF_ERR_INVALID_ARG, "rf_device_open: device is NULL");
    *device = NULL;
    if (!name || !*name) name = getenv("RF_DEVICE");
    if (!name || !*name) name = "auto";
    rf_device_info infos[RF_MAX_DEVICES];
    int n = 0;
    RF_TRY(list_devices(infos, &n));
    int idx = resolve_name(infos, n, name);
    if (idx < 0) {
        char list[2048] = "";
        for (int i = 0; i < n; i++) {
            size_t used = strlen(list);
            snprintf(list + used, sizeof list - used, "%s%s (%s)", i ? ", " : "", infos[i].id, infos[i].name);
        }
#ifndef RF_HAVE_OPENCL
        if (strcmp(name, "auto"))
            return rf_error(RF_ERR_NOT_FOUND,
                            "unknown device '%s': this build has no OpenCL backend (RF_OPENCL=OFF); available: %s", name,
                            list);
#endif
        const char *why = platform_problem();
        if (*why) /* name the cause: OpenCL is missing, not the device */
            return rf_error(RF_ERR_NOT_FOUND,
                            "unknown device '%s': OpenCL found no device (%s; check the ICD and that the driver's cache "
                            "folder, $XDG_CACHE_HOME or ~/.cache, is a writable folder); available: %s",
                            name, why, list);
        return rf_error(RF_ERR_NOT_FOUND, "unknown device '%s'; available: %s", name, list);
    }
    if (idx == 0 && strcmp(name, "cpu") && *platform_problem())
        rf_log(RF_LOG_INFO, "device '%s' is the cpu reference: OpenCL found no device (%s)", name, platform_problem());
    rf_device *dev = calloc(1, sizeof *dev);
    if (!dev) return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_device_open: no host memory");
    rf_status s;
    if (idx == 0) {
        s = rf_cpu_device_init(dev);
    } else {
        s = open_listed(dev, &infos[idx]);
        if (s != RF_OK && !strcmp(name, "auto")) {
            /* Only "auto" may quietly fall back; an explicit device must fail. */
            rf_log(RF_LOG_WARN, "OpenCL device %s unusable (%s); falling back to cpu", infos[idx].id, rf_last_error());
            memset(dev, 0, sizeof *dev);
            s = rf_cpu_device_init(dev);
        }
    }
    if (s == RF_OK) {
        rf_log(RF_LOG_INFO, "opened device %s: %s", dev->info.id, dev->info.name);
        *device = dev;
    } else {
        free(dev);
    }
    return s;
}

void rf_device_close(rf_device *device) {
    if (!device) return;
    if (device->mem.in_use_bytes)
        rf_log(RF_LOG_WARN, "device %s closed with %zu bytes still allocated", device->info.id, device->mem.in_use_bytes);
    device->backend->close(device);
    free(device);
}

rf_status rf_device_get_info(const rf_device *device, rf_device_info *info) {
    if (!device || !info) return rf_error(RF_ERR_INVALID_ARG, "rf_device_get_info: null argument");
    *info = device->info;
    return RF_OK;
}

rf_status rf_device_sync(rf_device *device) {
    if (!device) return rf_error(RF_ERR_INVALID_ARG, "rf_device_sync: device is NULL");
    return device->backend->sync(device);
}

rf_status rf_device_memory(const rf_device *device, rf_memory_stats *stats) {
    if (!device || !stats) return rf_error(RF_ERR_INVALID_ARG, "rf_device_memory: null argument");
    *stats = device->mem;
    return RF_OK;
}

rf_status rf_device_reset_peak(rf_device *device) {
    if (!device) return rf_error(RF_ERR_INVALID_ARG, "rf_device_reset_peak: device is NULL");
    device->mem.peak_bytes = device->mem.in_use_bytes;
    return RF_OK;
}

rf_status rf_device_set_memory_limit(rf_device *device, size_t limit_bytes) {
    if (!device) return rf_error(RF_ERR_INVALID_ARG, "rf_device_set_memory_limit: device is NULL");
    device->mem.limit_bytes = limit_bytes;
    return RF_OK;
}

rf_status rf_device_program_stats(const rf_device *device, rf_program_stats *stats) {
    if (!device || !stats) return rf_error(RF_ERR_INVALID_ARG, "rf_device_program_stats: null argument");
    *stats = device->programs;
    return RF_OK;
}

/* ---- profile table -------------------------------------------------------- */

void rf_profile_add(rf_device *dev, const char *op, uint64_t ns) {
    for (int i = 0; i < dev->profile_count; i++) {
        if (!strcmp(dev->profile[i].op, op)) {
            dev->profile[i].calls++;
            dev->profile[i].total_ns += ns;
            return;
        }
    }
    if (dev->profile_count == RF_MAX_PROFILE_OPS) return; /* table full: drop, never fail an op */
    rf_profile_slot *s = &dev->profile[dev->profile_count++];
    snprintf(s->op, sizeof s->op, "%s", op);
    s->calls = 1;
    s->total_ns = ns;
}

static int by_total_desc(const void *a, const void *b) {
    const rf_profile_entry *x = a, *y = b;
    return (x->total_ms < y->total_ms) - (x->total_ms > y->total_ms);
}

rf_status rf_device_profile(rf_device *device, rf_profile_entry *entries, int cap, int *count) {
    if (!device || !count || (cap > 0 && !entries))
        return rf_error(RF_ERR_INVALID_ARG, "rf_device_profile: null argument");
    RF_TRY(rf_device_sync(device)); /* resolves pending OpenCL events */
    int n = device->profile_count;
    rf_profile_entry all[RF_MAX_PROFILE_OPS];
    for (int i = 0; i < n; i++) {
        const rf_profile_slot *s = &device->profile[i];
        snprintf(all[i].op, sizeof all[i].op, "%s", s->op);
        all[i].calls = s->calls;
        all[i].total_ms = (double)s->total_ns / 1e6;
        all[i].mean_ms = s->calls ? all[i].total_ms / (double)s->calls : 0.0;
    }
    qsort(all, (size_t)n, sizeof all[0], by_total_desc);
    for (int i = 0; i < n && i < cap; i++) entries[i] = all[i];
    *count = n;
    return RF_OK;
}

rf_status rf_device_profile_reset(rf_device *device) {
    if (!device) return rf_error(RF_ERR_INVALID_ARG, "rf_device_profile_reset: device is NULL");
    RF_TRY(rf_device_sync(device));
    device->profile_count = 0;
    return RF_OK;
}

/* ---- buffers ----------------------------------------------------------- */

rf_status rf_buffer_alloc(rf_device *device, size_t bytes, rf_buffer **buffer) {
    if (!device || !buffer) return rf_error(RF_ERR_INVALID_ARG, "rf_buffer_alloc: null argument");
    *buffer = NULL;
    if (bytes == 0) return rf_error(RF_ERR_INVALID_ARG, "rf_buffer_alloc: size 0");
    if (bytes > device->info.max_alloc_bytes)
        return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_buffer_alloc: %zu bytes exceeds the largest allocation of %s (%llu bytes)",
                        bytes, device->info.id, (unsigned long long)device->info.max_alloc_bytes);
    size_t limit = device->mem.limit_bytes;
    if (limit && (bytes > limit || device->mem.in_use_bytes > limit - bytes))
        return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_buffer_alloc: %zu bytes on %s would exceed the memory limit (%zu in use, limit %zu)",
                        bytes, device->info.id, device->mem.in_use_bytes, limit);
    rf_buffer *b = calloc(1, sizeof *b);
    if (!b) return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_buffer_alloc: no host memory for a buffer record");
    b->dev = device;
    b->bytes = bytes;
    rf_status s = device->backend->alloc(b);
    if (s == RF_OK) {
        device->mem.in_use_bytes += bytes;
        device->mem.allocations++;
        if (device->mem.in_use_bytes > device->mem.peak_bytes) device->mem.peak_bytes = device->mem.in_use_bytes;
        *buffer = b;
    } else {
        free(b);
    }
    return s;
}

void rf_buffer_free(rf_buffer *buffer) {
    if (!buffer) return;
    buffer->dev->mem.in_use_bytes -= buffer->bytes;
    buffer->dev->backend->release(buffer);
    free(buffer);
}

size_t rf_buffer_size(const rf_buffer *buffer) { return buffer ? buffer->bytes : 0; }
rf_device *rf_buffer_device(const rf_buffer *buffer) { return buffer ? buffer->dev : NULL; }

static rf_status check_range(const char *fn, const rf_buffer *b, size_t off, size_t n) {
    if (!b) return rf_error(RF_ERR_INVALID_ARG, "%s: buffer is NULL", fn);
    if (off > b->bytes || n > b->bytes - off)
        return rf_error(RF_ERR_INVALID_ARG, "%s: range [%zu, %zu+%zu) outside a buffer of %zu bytes", fn, off, off, n, b->bytes);
    return RF_OK;
}

rf_status rf_buffer_upload(rf_buffer *dst, size_t offset, const void *src, size_t bytes) {
    RF_TRY(check_range("rf_buffer_upload", dst, offset, bytes));
    if (!src && bytes) return rf_error(RF_ERR_INVALID_ARG, "rf_buffer_upload: src is NULL");
    if (!bytes) return RF_OK;
    return dst->dev->backend->upload(dst, offset, src, bytes);
}

rf_status rf_buffer_download(const rf_buffer *src, size_t offset, void *dst, size_t bytes) {
    RF_TRY(check_range("rf_buffer_download", src, offset, bytes));
    if (!dst && bytes) return rf_error(RF_ERR_INVALID_ARG, "rf_buffer_download: dst is NULL");
    if (!bytes) return RF_OK;
    return src->dev->backend->download(src, offset, dst, bytes);
}

rf_status rf_buffer_copy(rf_buffer *dst, size_t dst_offset, const rf_buffer *src, size_t src_offset, size_t bytes) {
    RF_TRY(check_range("rf_buffer_copy (dst)", dst, dst_offset, bytes));
    RF_TRY(check_range("rf_buffer_copy (src)", src, src_offset, bytes));
    if (dst->dev != src->dev)
        return rf_error(RF_ERR_INVALID_ARG, "rf_buffer_copy: buffers on different devices (%s, %s)", dst->dev->info.id, src->dev->info.id);
    if (!bytes) return RF_OK;
    return dst->dev->backend->copy(dst, dst_offset, src, src_offset, bytes);
}

rf_status rf_buffer_fill(rf_buffer *dst, size_t offset, const void *pattern, size_t pattern_size, size_t bytes) {
    RF_TRY(check_range("rf_buffer_fill", dst, offset, bytes));
    if (!pattern) return rf_error(RF_ERR_INVALID_ARG, "rf_buffer_fill: pattern is NULL");
    if (pattern_size != 1 && pattern_size != 2 && pattern_size != 4 && pattern_size != 8 && pattern_size != 16)
        return rf_error(RF_ERR_INVALID_ARG, "rf_buffer_fill: pattern size %zu (want 1, 2, 4, 8 or 16)", pattern_size);
    if (offset % pattern_size || bytes % pattern_size)
        return rf_error(RF_ERR_INVALID_ARG, "rf_buffer_fill: offset %zu and size %zu must be multiples of the pattern size %zu",
                        offset, bytes, pattern_size);
    if (!bytes) return RF_OK;
    return dst->dev->backend->fill(dst, offset, pattern, pattern_size, bytes);
}
