/* reformer-cl device layer: enumeration, selection, buffers, memory
 * accounting and profiling. One interface, two backends: `cpu` (the plain-C
 * reference) and `opencl` (every device of every OpenCL platform).
 *
 * Device names: "cpu"; "cl:P:D" (platform P, device D); a case-insensitive
 * substring of a device or platform name; "auto" = first GPU, else first
 * OpenCL CPU device, else "cpu". A NULL name means $RF_DEVICE, else "auto".
 *
 * A device and its buffers are used by one thread at a time. */
#ifndef REFORMER_DEVICE_H
#define REFORMER_DEVICE_H

#include <stddef.h>
#include <stdint.h>
#include "reformer/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rf_device rf_device;
typedef struct rf_buffer rf_buffer;

typedef enum rf_device_kind { RF_DEVICE_CPU = 0, RF_DEVICE_OPENCL = 1 } rf_device_kind;

typedef struct rf_device_info {
    char id[32];                /* "cpu" or "cl:P:D": a name rf_device_open takes */
    rf_device_kind kind;
    int is_gpu;
    int is_simulator;           /* a checking simulator (oclgrind): never picked by "auto" */
    char name[256];
    char vendor[256];
    char platform[256];
    char platform_version[256];
    char driver_version[128];
    char opencl_c_version[128]; /* "" for cpu */
    unsigned compute_units;
    uint64_t global_mem_bytes;
    uint64_t local_mem_bytes;
    uint64_t max_alloc_bytes;
    size_t max_work_group_size;
    int fp16, fp64;             /* cl_khr_fp16 / cl_khr_fp64 (cpu: 0 / 1) */
} rf_device_info;

/* Enumerate: index 0 is always "cpu", then every OpenCL device in platform
 * order. A machine without an OpenCL platform has just "cpu". */
rf_status rf_device_count(int *count);
rf_status rf_device_info_at(int index, rf_device_info *info);

/* Open a device by name (see above). An unknown name fails with a message
 * that lists the available devices. "auto" falls back to "cpu" when OpenCL is
 * missing; an explicit OpenCL name never falls back. */
rf_status rf_device_open(rf_device **device, const char *name);
void rf_device_close(rf_device *device);
rf_status rf_device_get_info(const rf_device *device, rf_device_info *info);

/* Wait until every queued operation on the device has finished. */
rf_status rf_device_sync(rf_device *device);

/* Memory accounting: bytes in buffers now alive, and the peak since open or
 * the last reset. An optional cap makes larger totals fail with
 * RF_ERR_OUT_OF_MEMORY (0 = no cap beyond the device's own). */
typedef struct rf_memory_stats {
    size_t in_use_bytes;
    size_t peak_bytes;
    size_t limit_bytes;
    uint64_t allocations;       /* buffers allocated since open */
} rf_memory_stats;
rf_status rf_device_memory(const rf_device *device, rf_memory_stats *stats);
rf_status rf_device_reset_peak(rf_device *device);
rf_status rf_device_set_memory_limit(rf_device *device, size_t limit_bytes);

/* Kernel program statistics (OpenCL): builds from source, disk-cache hits. */
typedef struct rf_program_stats {
    uint64_t source_builds;
    uint64_t cache_hits;
    uint64_t cache_writes;
    uint64_t cache_rejects;     /* cache files that failed to load */
} rf_program_stats;
rf_status rf_device_program_stats(const rf_device *device, rf_program_stats *stats);

/* Profiling. OpenCL: device time of every kernel and CLBlast call from
 * events; cpu: wall-clock time of every op. Totals per op name. */
typedef struct rf_profile_entry {
    char op[64];
    uint64_t calls;
    double total_ms;
    double mean_ms;
} rf_profile_entry;
/* Fill up to `cap` entries (largest total first); *count = entries there are. */
rf_status rf_device_profile(rf_device *device, rf_profile_entry *entries, int cap, int *count);
rf_status rf_device_profile_reset(rf_device *device);

/* Buffers: plain bytes on a device. Offsets and sizes are in bytes. */
rf_status rf_buffer_alloc(rf_device *device, size_t bytes, rf_buffer **buffer);
void rf_buffer_free(rf_buffer *buffer);
size_t rf_buffer_size(const rf_buffer *buffer);
rf_device *rf_buffer_device(const rf_buffer *buffer);
rf_status rf_buffer_upload(rf_buffer *dst, size_t offset, const void *src, size_t bytes);
rf_status rf_buffer_download(const rf_buffer *src, size_t offset, void *dst, size_t bytes);
rf_status rf_buffer_copy(rf_buffer *dst, size_t dst_offset, const rf_buffer *src,
                         size_t src_offset, size_t bytes);
/* Repeat `pattern` (1, 2, 4, 8 or 16 bytes) over [offset, offset+bytes). */
rf_status rf_buffer_fill(rf_buffer *dst, size_t offset, const void *pattern,
                         size_t pattern_size, size_t bytes);

#ifdef __cplusplus
}
#endif
#endif
