/* The cpu backend: buffers in host memory (a buffer's impl is its address),
 * kept for reuse when freed (the cache below), synchronous copies, and the
 * op table filled from every family file. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <unistd.h>
#include "device/host_gemm.h"
#include <sanitizer/asan_interface.h>
/* Memcheck's client requests (no-ops outside valgrind) where its header is
 * installed; without it, nothing to tell. */
#if defined(__has_include) && __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#else
#define VALGRIND_MAKE_MEM_UNDEFINED(addr, bytes) ((void)(addr), (void)(bytes))
#define VALGRIND_MAKE_MEM_NOACCESS(addr, bytes) ((void)(addr), (void)(bytes))
#endif
#include "device/block_cache.h"
#include "device/cpu/cpu_backend.h"

/* Freed buffers kept for reuse (dev->impl, made at the first release;
 * device/block_cache.h says why). A cached block is poisoned for ASan and
 * no-access for valgrind, so a use after rf_buffer_free is still reported;
 * handed back, it is undefined again for valgrind, as fresh memory would be
 * (a read before the first write is still reported). */

/* 64-byte alignment: what SIMD loads and OpenBLAS like best. */
static size_t rounded_size(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

static rf_status cpu_alloc(rf_buffer *buf) {
    size_t rounded = rounded_size(buf->bytes);
    if (rounded < buf->bytes) return rf_error(RF_ERR_OUT_OF_MEMORY, "cpu: %zu bytes overflows", buf->bytes);
    rf_block_cache *c = buf->dev->impl;
    if (c && (buf->impl = rf_block_cache_take(c, rounded))) {
        ASAN_UNPOISON_MEMORY_REGION(buf->impl, rounded);
        VALGRIND_MAKE_MEM_UNDEFINED(buf->impl, rounded);
        return RF_OK;
    }
    buf->impl = aligned_alloc(64, rounded);
    if (!buf->impl) return rf_error(RF_ERR_OUT_OF_MEMORY, "cpu: cannot allocate %zu bytes of host memory", buf->bytes);
    return RF_OK;
}

static void cpu_release(rf_buffer *buf) {
    rf_device *dev = buf->dev;
    size_t rounded = rounded_size(buf->bytes);
    if (!dev->impl) dev->impl = calloc(1, sizeof(rf_block_cache)); /* without it, the block is just freed */
    if (!dev->impl || !rf_block_cache_put(dev->impl, buf->impl, rounded)) {
        free(buf->impl);
        return;
    }
    ASAN_POISON_MEMORY_REGION(buf->impl, rounded);
    VALGRIND_MAKE_MEM_NOACCESS(buf->impl, rounded);
}

static rf_status cpu_upload(rf_buffer *dst, size_t off, const void *src, size_t n) {
    memcpy((char *)dst->impl + off, src, n);
    return RF_OK;
}

static rf_status cpu_download(const rf_buffer *src, size_t off, void *dst, size_t n) {
    memcpy(dst, (const char *)src->impl + off, n);
    return RF_OK;
}

static rf_status cpu_copy(rf_buffer *dst, size_t dst_off, const rf_buffer *src, size_t src_off, size_t n) {
    memmove((char *)dst->impl + dst_off, (const char *)src->impl + src_off, n);
    return RF_OK;
}

static rf_status cpu_fill(rf_buffer *dst, size_t off, const void *pattern, size_t psize, size_t n) {
    char *p = (char *)dst->impl + off;
    for (size_t i = 0; i < n; i += psize) memcpy(p + i, pattern, psize);
    return RF_OK;
}

static rf_status cpu_sync(rf_device *dev) { return RF_OK; }
static void cpu_close(rf_device *dev) {
    rf_block_cache *c = dev->impl;
    for (int i = 0; c && i < c->count; i++) {
        ASAN_UNPOISON_MEMORY_REGION(c->block[i], c->bytes[i]);
        VALGRIND_MAKE_MEM_UNDEFINED(c->block[i], c->bytes[i]);
        free(c->block[i]);
    }
    free(c);
    dev->impl = NULL;
}
static void *cpu_host_ptr(const rf_buffer *buf) { return buf->impl; }

static const rf_backend cpu_backend = {
    .alloc = cpu_alloc,
    .release = cpu_release,
    .upload = cpu_upload,
    .download = cpu_download,
    .copy = cpu_copy,
    .fill = cpu_fill,
    .sync = cpu_sync,
    .close = cpu_close,
    .host_ptr = cpu_host_ptr,
    .wall_profile = true,
};

rf_status rf_cpu_device_init(rf_device *dev) {
    dev->backend = &cpu_backend;
    rf_host_gemm_init();
#define RF_CPU_REGISTER(family) rf_cpu_##family##_register(&dev->ops);
    RF_OP_FAMILIES(RF_CPU_REGISTER)
#undef RF_CPU_REGISTER
    rf_device_info *in = &dev->info;
    snprintf(in->id, sizeof in->id, "cpu");
    in->kind = RF_DEVICE_CPU;
    snprintf(in->name, sizeof in->name, "cpu (reference, C + OpenBLAS, OpenMP)");
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
