/* Internal: what a device and a buffer are, and the table of buffer
 * primitives each backend provides. Ops do not go through this table: an op's
 * front door (src/ops/) checks its arguments once and calls the backend's entry
 * directly (src/device/cpu/cpu_ops.h, src/device/opencl/cl_ops.h), so the path
 * from an op to its maths is one `switch` a reader can follow. */
#ifndef RF_DEVICE_IMPL_H
#define RF_DEVICE_IMPL_H

#include <CL/cl.h>
#include "reformer/device.h"
#include "reformer/tensor.h"
#include "core/core.h"

typedef struct rf_cl_context rf_cl_context;

typedef struct rf_backend {
    rf_status (*alloc)(rf_buffer *buf);                /* buf->dev, buf->bytes set */
    void (*release)(rf_buffer *buf);
    rf_status (*upload)(rf_buffer *dst, size_t off, const void *src, size_t n);
    rf_status (*download)(const rf_buffer *src, size_t off, void *dst, size_t n);
    rf_status (*copy)(rf_buffer *dst, size_t dst_off, const rf_buffer *src, size_t src_off, size_t n);
    rf_status (*fill)(rf_buffer *dst, size_t off, const void *pattern, size_t psize, size_t n);
    rf_status (*sync)(rf_device *dev);
    void (*close)(rf_device *dev);
} rf_backend;

#define RF_MAX_PROFILE_OPS 128

typedef struct rf_profile_slot {
    char op[64];
    uint64_t calls;
    uint64_t total_ns;
} rf_profile_slot;

struct rf_device {
    rf_device_kind kind;
    rf_device_info info;
    const rf_backend *backend;
    rf_memory_stats mem;
    rf_program_stats programs;
    rf_profile_slot profile[RF_MAX_PROFILE_OPS];
    int profile_count;
    rf_cl_context *cl;          /* NULL on the cpu backend */
};

struct rf_buffer {
    rf_device *dev;
    size_t bytes;
    void *host;                 /* cpu backend */
    cl_mem mem;                 /* opencl backend */
};

/* Backends. */
extern const rf_backend rf_cpu_backend;
extern const rf_backend rf_cl_backend;
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

/* Typed access for the cpu backend: the tensor's first element. */
static inline float *rf_cpu_f32(const rf_tensor *t) { return (float *)t->buf->host + t->offset; }
static inline int32_t *rf_cpu_i32(const rf_tensor *t) { return (int32_t *)t->buf->host + t->offset; }

#endif
