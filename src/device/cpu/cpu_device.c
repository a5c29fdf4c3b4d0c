/* The cpu backend's buffers: host memory, synchronous copies. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <unistd.h>
#include "device/device_impl.h"

static rf_status cpu_alloc(rf_buffer *buf) {
    /* 64-byte alignment: what SIMD loads and OpenBLAS like best. */
    size_t rounded = (buf->bytes + 63) & ~(size_t)63;
    if (rounded < buf->bytes) return rf_error(RF_ERR_OUT_OF_MEMORY, "cpu: %zu bytes overflows", buf->bytes);
    buf->host = aligned_alloc(64, rounded);
    if (!buf->host) return rf_error(RF_ERR_OUT_OF_MEMORY, "cpu: cannot allocate %zu bytes of host memory", buf->bytes);
    return RF_OK;
}

static void cpu_release(rf_buffer *buf) { free(buf->host); }

static rf_status cpu_upload(rf_buffer *dst, size_t off, const void *src, size_t n) {
    memcpy((char *)dst->host + off, src, n);
    return RF_OK;
}

static rf_status cpu_download(const rf_buffer *src, size_t off, void *dst, size_t n) {
    memcpy(dst, (const char *)src->host + off, n);
    return RF_OK;
}

static rf_status cpu_copy(rf_buffer *dst, size_t dst_off, const rf_buffer *src, size_t src_off, size_t n) {
    memmove((char *)dst->host + dst_off, (const char *)src->host + src_off, n);
    return RF_OK;
}

static rf_status cpu_fill(rf_buffer *dst, size_t off, const void *pattern, size_t psize, size_t n) {
    char *p = (char *)dst->host + off;
    for (size_t i = 0; i < n; i += psize) memcpy(p + i, pattern, psize);
    return RF_OK;
}

static rf_status cpu_sync(rf_device *dev) { return RF_OK; }
static void cpu_close(rf_device *dev) {}

const rf_backend rf_cpu_backend = {
    cpu_alloc, cpu_release, cpu_upload, cpu_download, cpu_copy, cpu_fill, cpu_sync, cpu_close,
};

rf_status rf_cpu_device_init(rf_device *dev) {
    dev->kind = RF_DEVICE_CPU;
    dev->backend = &rf_cpu_backend;
    rf_device_info *in = &dev->info;
    snprintf(in->id, sizeof in->id, "cpu");
    in->kind = RF_DEVICE_CPU;
    snprintf(in->name, sizeof in->name, "cpu (reference, C + OpenBLAS)");
    snprintf(in->vendor, sizeof in->vendor, "host");
    snprintf(in->platform, sizeof in->platform, "reformer-cl reference");
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    in->compute_units = cores > 0 ? (unsigned)cores : 1;
    in->global_mem_bytes = (pages > 0 && page > 0) ? (uint64_t)pages * (uint64_t)page : 0;
    in->max_alloc_bytes = in->global_mem_bytes ? in->global_mem_bytes : SIZE_MAX;
    in->max_work_group_size = 1;
    in->fp64 = 1;
    return RF_OK;
}
