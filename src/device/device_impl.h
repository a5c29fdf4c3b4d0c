/* Internal: what a device and a buffer are, and the two tables a backend
 * provides: its buffer primitives (rf_backend, one const table per backend)
 * and its ops (rf_op_table, device/op_table.h, filled into each device it
 * opens). Whatever a backend keeps per device or per buffer (an OpenCL
 * context and queue, a cl_mem, a host pointer) hides behind `impl`, which
 * only that backend's folder interprets: nothing here knows a backend's
 * headers. */
#ifndef RF_DEVICE_IMPL_H
#define RF_DEVICE_IMPL_H

#include <stdbool.h>
#include "reformer/device.h"
#include "reformer/tensor.h"
#include "core/core.h"
#include "device/op_table.h"

typedef struct rf_backend {
    rf_status (*alloc)(rf_buffer *buf);                /* buf->dev, buf->bytes set */
    void (*release)(rf_buffer *buf);
    rf_status (*upload)(rf_buffer *dst, size_t off, const void *src, size_t n);
    rf_status (*download)(const rf_buffer *src, size_t off, void *dst, size_t n);
    rf_status (*copy)(rf_buffer *dst, size_t dst_off, const rf_buffer *src, size_t src_off, size_t n);
    rf_status (*fill)(rf_buffer *dst, size_t off, const void *pattern, size_t psize, size_t n);
    rf_status (*sync)(rf_device *dev);
    void (*close)(rf_device *dev);
    /* The host address of a buffer's first byte when its memory is host
     * memory (the cpu), so a front door can read it in place; NULL when it
     * must be downloaded. */
    void *(*host_ptr)(const rf_buffer *buf);
    /* Whether the front doors time this backend's ops by wall clock (the
     * cpu, whose ops finish before they return); otherwise the backend
     * records device time itself (OpenCL events). */
    bool wall_profile;
} rf_backend;

#define RF_MAX_PROFILE_OPS 128

typedef struct rf_profile_slot {
    char op[64];
    uint64_t calls;
    uint64_t total_ns;
} rf_profile_slot;

struct rf_device {
    rf_device_info info;
    const rf_backend *backend;
    rf_op_table ops;            /* filled by the backend's init */
    rf_memory_stats mem;
    rf_program_stats programs;
    rf_profile_slot profile[RF_MAX_PROFILE_OPS];
    int profile_count;
    void *impl;                 /* the backend's per-device state (cpu: its cache of freed buffers) */
};

struct rf_buffer {
    rf_device *dev;
    size_t bytes;
    void *impl;                 /* the backend's handle: host memory on cpu, a cl_mem on OpenCL */
};

/* Backends: each one's init sets info, backend, ops and impl. */
rf_status rf_cpu_device_init(rf_device *dev);
/* OpenCL enumeration: fills up to `cap` infos (ids "cl:P:D"); *count = total.
 * No platform is not an error: *count = 0. */
rf_status rf_cl_enumerate(rf_device_info *infos, int cap, int *count);
/* Why the last enumeration found no OpenCL platform ("clGetPlatformIDs:
 * CL_PLATFORM_NOT_FOUND_KHR (-1001)"), or "" when it found one. */
const char *rf_cl_platform_problem(void);
rf_status rf_cl_device_init(rf_device *dev, int platform, int device);

/* Profiling: add `ns` of device or wall time to `op`'s totals. */
void rf_profile_add(rf_device *dev, const char *op, uint64_t ns);
uint64_t rf_now_ns(void);

#endif
