/* The OpenCL backend: enumeration, one context and in-order profiling queue
 * per device, buffers, and the event log that feeds the profile table. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "device/opencl/cl_backend.h"
#include "device/host_gemm.h"

const char *rf_cl_error_name(cl_int err) {
    switch (err) {
#define E(x) case x: return #x;
    E(CL_SUCCESS) E(CL_DEVICE_NOT_FOUND) E(CL_DEVICE_NOT_AVAILABLE) E(CL_COMPILER_NOT_AVAILABLE)
    E(CL_MEM_OBJECT_ALLOCATION_FAILURE) E(CL_OUT_OF_RESOURCES) E(CL_OUT_OF_HOST_MEMORY)
    E(CL_PROFILING_INFO_NOT_AVAILABLE) E(CL_MEM_COPY_OVERLAP) E(CL_BUILD_PROGRAM_FAILURE)
    E(CL_MAP_FAILURE) E(CL_INVALID_VALUE) E(CL_INVALID_DEVICE_TYPE) E(CL_INVALID_PLATFORM)
    E(CL_INVALID_DEVICE) E(CL_INVALID_CONTEXT) E(CL_INVALID_QUEUE_PROPERTIES)
    E(CL_INVALID_COMMAND_QUEUE) E(CL_INVALID_HOST_PTR) E(CL_INVALID_MEM_OBJECT)
    E(CL_INVALID_BINARY) E(CL_INVALID_BUILD_OPTIONS) E(CL_INVALID_PROGRAM)
    E(CL_INVALID_PROGRAM_EXECUTABLE) E(CL_INVALID_KERNEL_NAME) E(CL_INVALID_KERNEL_DEFINITION)
    E(CL_INVALID_KERNEL) E(CL_INVALID_ARG_INDEX) E(CL_INVALID_ARG_VALUE) E(CL_INVALID_ARG_SIZE)
    E(CL_INVALID_KERNEL_ARGS) E(CL_INVALID_WORK_DIMENSION) E(CL_INVALID_WORK_GROUP_SIZE)
    E(CL_INVALID_WORK_ITEM_SIZE) E(CL_INVALID_GLOBAL_OFFSET) E(CL_INVALID_EVENT_WAIT_LIST)
    E(CL_INVALID_EVENT) E(CL_INVALID_OPERATION) E(CL_INVALID_BUFFER_SIZE)
    E(CL_INVALID_GLOBAL_WORK_SIZE) E(CL_MISALIGNED_SUB_BUFFER_OFFSET)
    E(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
#undef E
    case -1001: return "CL_PLATFORM_NOT_FOUND_KHR";
    default: return "unknown OpenCL error";
    }
}

rf_status rf_cl_fail(cl_int err, const char *what) {
    rf_status s = RF_ERR_DEVICE;
    if (err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_RESOURCES || err == CL_OUT_OF_HOST_MEMORY ||
        err == CL_INVALID_BUFFER_SIZE)
        s = RF_ERR_OUT_OF_MEMORY;
    return rf_error(s, "%s: %s (%d)", what, rf_cl_error_name(err), (int)err);
}

/* ---- enumeration ----------------------------------------------------------- */

#define MAX_PLATFORMS 16
#define MAX_DEVS 16

static void str_info(cl_device_id d, cl_device_info what, char *out, size_t n) {
    out[0] = '\0';
    if (clGetDeviceInfo(d, what, n, out, NULL) != CL_SUCCESS) out[0] = '\0';
    out[n - 1] = '\0';
}

static void fill_info(rf_device_info *in, cl_platform_id p, cl_device_id d, int pi, int di) {
    memset(in, 0, sizeof *in);
    snprintf(in->id, sizeof in->id, "cl:%d:%d", pi, di);
    in->kind = RF_DEVICE_OPENCL;
    str_info(d, CL_DEVICE_NAME, in->name, sizeof in->name);
    str_info(d, CL_DEVICE_VENDOR, in->vendor, sizeof in->vendor);
    str_info(d, CL_DRIVER_VERSION, in->driver_version, sizeof in->driver_version);
    str_info(d, CL_DEVICE_OPENCL_C_VERSION, in->opencl_c_version, sizeof in->opencl_c_version);
    clGetPlatformInfo(p, CL_PLATFORM_NAME, sizeof in->platform, in->platform, NULL);
    clGetPlatformInfo(p, CL_PLATFORM_VERSION, sizeof in->platform_version, in->platform_version, NULL);
    in->platform[sizeof in->platform - 1] = in->platform_version[sizeof in->platform_version - 1] = '\0';
    cl_device_type type = 0;
    clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    in->is_gpu = (type & CL_DEVICE_TYPE_GPU) != 0;
    /* oclgrind reports itself as a GPU but runs kernels one instruction at a
     * time: named only, never "auto" (docs/oclgrind.md). */
    in->is_simulator = strstr(in->platform, "Oclgrind") != NULL || strstr(in->name, "Oclgrind") != NULL;
    cl_uint cu = 0;
    clGetDeviceInfo(d, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL);
    in->compute_units = cu;
    cl_ulong v = 0;
    clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof v, &v, NULL);
    in->global_mem_bytes = v;
    clGetDeviceInfo(d, CL_DEVICE_LOCAL_MEM_SIZE, sizeof v, &v, NULL);
    in->local_mem_bytes = v;
    clGetDeviceInfo(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof v, &v, NULL);
    in->max_alloc_bytes = v;
    size_t wg = 0;
    clGetDeviceInfo(d, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
    in->max_work_group_size = wg;
    char ext[8192];
    str_info(d, CL_DEVICE_EXTENSIONS, ext, sizeof ext);
    in->fp16 = strstr(ext, "cl_khr_fp16") != NULL;
    in->fp64 = strstr(ext, "cl_khr_fp64") != NULL;
}

static char platform_problem[160];

const char *rf_cl_platform_problem(void) { return platform_problem; }

/* Walk every platform and device; call `visit` for each until it returns 1. */
static int walk(int (*visit)(void *ctx, cl_platform_id, cl_device_id, int, int), void *ctx) {
    cl_platform_id plats[MAX_PLATFORMS];
    cl_uint np = 0;
    /* No ICD or no platform (-1001) means no OpenCL device; keep the
     * platform's error to say why (a named device then reports it). */
    cl_int err = clGetPlatformIDs(MAX_PLATFORMS, plats, &np);
    if (err != CL_SUCCESS || np == 0) {
        static int logged;
        snprintf(platform_problem, sizeof platform_problem, "clGetPlatformIDs: %s (%d)", rf_cl_error_name(err),
                 (int)err);
        if (!logged++)
            rf_log(RF_LOG_INFO, "no OpenCL platform: %s; check the ICD (OCL_ICD_VENDORS) and that the driver's "
                   "cache folder ($XDG_CACHE_HOME or ~/.cache, used by PoCL) can be created and written",
                   platform_problem);
        return 0;
    }
    platform_problem[0] = '\0';
    int found = 0;
    for (cl_uint p = 0; p < np && p < MAX_PLATFORMS; p++) {
        cl_device_id devs[MAX_DEVS];
        cl_uint nd = 0;
        err = clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, MAX_DEVS, devs, &nd);
        if (err != CL_SUCCESS) {
            /* A platform without devices (PoCL without a writable cache). */
            char name[128] = "";
            clGetPlatformInfo(plats[p], CL_PLATFORM_NAME, sizeof name, name, NULL);
            name[sizeof name - 1] = '\0';
            snprintf(platform_problem, sizeof platform_problem, "platform %u (%s): clGetDeviceIDs: %s (%d)", p, name,
                     rf_cl_error_name(err), (int)err);
            rf_log(RF_LOG_INFO, "OpenCL %s", platform_problem);
            continue;
        }
        found += nd > 0;
        for (cl_uint d = 0; d < nd && d < MAX_DEVS; d++)
            if (visit(ctx, plats[p], devs[d], (int)p, (int)d)) return 1;
    }
    if (found) platform_problem[0] = '\0'; /* some platform works: nothing to explain */
    return 0;
}

typedef struct { rf_device_info *infos; int cap, count; } enum_ctx;

static int visit_enum(void *vctx, cl_platform_id p, cl_device_id d, int pi, int di) {
    enum_ctx *c = vctx;
    if (c->count < c->cap) fill_info(&c->infos[c->count], p, d, pi, di);
    c->count++;
    return 0;
}

rf_status rf_cl_enumerate(rf_device_info *infos, int cap, int *count) {
    enum_ctx c = {infos, cap, 0};
    walk(visit_enum, &c);
    *count = c.count;
    return RF_OK;
}

typedef struct { int pi, di; cl_platform_id p; cl_device_id d; } find_ctx;

static int visit_find(void *vctx, cl_platform_id p, cl_device_id d, int pi, int di) {
    find_ctx *c = vctx;
    if (pi != c->pi || di != c->di) return 0;
    c->p = p;
    c->d = d;
    return 1;
}

/* ---- buffers ---------------------------------------------------------------- */

static rf_status cl_alloc(rf_buffer *buf) {
    rf_cl_context *cl = rf_cl_ctx(buf->dev);
    if (cl->host_cpu && (buf->impl = rf_block_cache_take(&cl->reuse, buf->bytes))) return RF_OK;
    cl_int err;
    cl_mem mem = clCreateBuffer(rf_cl_ctx(buf->dev)->context, CL_MEM_READ_WRITE, buf->bytes, NULL, &err);
    if (err != CL_SUCCESS) {
        char what[160];
        snprintf(what, sizeof what, "clCreateBuffer(%zu bytes) on %s", buf->bytes, buf->dev->info.id);
        return rf_cl_fail(err, what);
    }
    buf->impl = mem;
    return RF_OK;
}

/* oclgrind's uninitialised-value checker keeps a buffer's shadow by buffer
 * number and does not drop it on release; a later buffer given that number
 * inherits the old shadow, sized for the old buffer (docs/oclgrind.md,
 * artefact 4). On a simulator a released buffer is therefore kept until the
 * device closes, so every buffer has a number of its own; should the list
 * not grow, the buffer is released after all. */
static void release_mem(rf_device *dev, cl_mem mem) {
    rf_cl_context *cl = rf_cl_ctx(dev);
    if (dev->info.is_simulator && cl->nretired == cl->retired_cap) {
        int cap = cl->retired_cap ? 2 * cl->retired_cap : 64;
        cl_mem *grown = realloc(cl->retired, (size_t)cap * sizeof *grown);
        if (grown) cl->retired = grown, cl->retired_cap = cap;
    }
    if (dev->info.is_simulator && cl->nretired < cl->retired_cap) cl->retired[cl->nretired++] = mem;
    else clReleaseMemObject(mem);
}

/* In-order queue: commands still using a released buffer finish before
 * any enqueued for its next owner, so a cached buffer is reused safely. */
static void cl_release(rf_buffer *buf) {
    rf_cl_context *cl = rf_cl_ctx(buf->dev);
    if (!buf->impl || (cl->host_cpu && rf_block_cache_put(&cl->reuse, buf->impl, buf->bytes))) return;
    release_mem(buf->dev, rf_cl_mem(buf));
}

/* oclgrind's uninitialised-value checker forgets a buffer's state on a host
 * write that covers only part of it (docs/oclgrind.md): on a simulator such
 * an upload goes whole into a staging buffer and a kernel copies it in. */
static rf_status upload_through_staging(rf_buffer *dst, size_t off, const void *src, size_t n) {
    rf_cl_context *cl = rf_cl_ctx(dst->dev);
    cl_int err;
    cl_mem staging = clCreateBuffer(cl->context, CL_MEM_READ_ONLY, n, NULL, &err);
    if (err != CL_SUCCESS) return rf_cl_fail(err, "clCreateBuffer(staging)");
    cl_kernel k;
    size_t local, global = n / 4;
    cl_ulong woff = off / 4, count = n / 4;
    cl_mem m = rf_cl_mem(dst);
    rf_status s = RF_OK;
    err = clEnqueueWriteBuffer(cl->queue, staging, CL_TRUE, 0, n, src, 0, NULL, NULL);
    if (err != CL_SUCCESS) s = rf_cl_fail(err, "clEnqueueWriteBuffer(staging)");
    if (s == RF_OK) s = rf_cl_kernel(dst->dev, "words.cl", "", "copy_words", &k);
    if (s == RF_OK) s = rf_cl_group_size(dst->dev, k, RF_CL_GROUP, &local);
    if (s == RF_OK)
        s = RF_CL_LAUNCH(dst->dev, k, "upload", 1, &global, &local, RF_ARG(m), RF_ARG(woff), RF_ARG(staging),
                         RF_ARG(count));
    /* The copy must finish before the staging buffer goes. */
    if (s == RF_OK && (err = clFinish(cl->queue)) != CL_SUCCESS) s = rf_cl_fail(err, "clFinish");
    release_mem(dst->dev, staging);
    return s;
}

static rf_status cl_upload(rf_buffer *dst, size_t off, const void *src, size_t n) {
    if (dst->dev->info.is_simulator && (off != 0 || n != dst->bytes) && off % 4 == 0 && n % 4 == 0)
        return upload_through_staging(dst, off, src, n);
    cl_event ev;
    cl_int err = clEnqueueWriteBuffer(rf_cl_ctx(dst->dev)->queue, rf_cl_mem(dst), CL_TRUE, off, n, src, 0, NULL, &ev);
    if (err != CL_SUCCESS) return rf_cl_fail(err, "clEnqueueWriteBuffer");
    return rf_cl_record(dst->dev, ev, "upload");
}

static rf_status cl_download(const rf_buffer *src, size_t off, void *dst, size_t n) {
    cl_event ev;
    cl_int err = clEnqueueReadBuffer(rf_cl_ctx(src->dev)->queue, rf_cl_mem(src), CL_TRUE, off, n, dst, 0, NULL, &ev);
    if (err != CL_SUCCESS) return rf_cl_fail(err, "clEnqueueReadBuffer");
    return rf_cl_record(src->dev, ev, "download");
}

static rf_status cl_copy(rf_buffer *dst, size_t dst_off, const rf_buffer *src, size_t src_off, size_t n) {
    cl_event ev;
    if (rf_cl_mem(dst) == rf_cl_mem(src) && dst_off < src_off + n && src_off < dst_off + n)
        return rf_error(RF_ERR_INVALID_ARG, "rf_buffer_copy: overlapping ranges in one OpenCL buffer");
    cl_int err = clEnqueueCopyBuffer(rf_cl_ctx(dst->dev)->queue, rf_cl_mem(src), rf_cl_mem(dst), src_off, dst_off, n,
                                     0, NULL, &ev);
    if (err != CL_SUCCESS) return rf_cl_fail(err, "clEnqueueCopyBuffer");
    return rf_cl_record(dst->dev, ev, "copy");
}

/* Word-aligned ranges (every fill the library makes) go through words.cl's
 * kernel, the rest through clEnqueueFillBuffer; see cl/words.cl for why. */
static rf_status cl_fill(rf_buffer *dst, size_t off, const void *pattern, size_t psize, size_t n) {
    if (off % 4 == 0 && n % 4 == 0) {
        /* Repeat the pattern to whole words: 1 and 2 bytes fill one word. */
        unsigned char bytes[16];
        size_t wsize = psize < 4 ? 4 : psize;
        for (size_t i = 0; i < wsize; i++) bytes[i] = ((const unsigned char *)pattern)[i % psize];
        cl_uint w[4] = {0, 0, 0, 0};
        memcpy(w, bytes, wsize);
        cl_uint period = (cl_uint)(wsize / 4);
        cl_ulong woff = off / 4, count = n / 4;
        cl_kernel k;
        size_t local, global = (size_t)count;
        RF_TRY(rf_cl_kernel(dst->dev, "words.cl", "", "fill_words", &k));
        RF_TRY(rf_cl_group_size(dst->dev, k, RF_CL_GROUP, &local));
        cl_mem m = rf_cl_mem(dst);
        return RF_CL_LAUNCH(dst->dev, k, "fill", 1, &global, &local, RF_ARG(m), RF_ARG(woff), RF_ARG(count),
                            RF_ARG(w[0]), RF_ARG(w[1]), RF_ARG(w[2]), RF_ARG(w[3]), RF_ARG(period));
    }
    cl_event ev;
    cl_int err = clEnqueueFillBuffer(rf_cl_ctx(dst->dev)->queue, rf_cl_mem(dst), pattern, psize, off, n, 0, NULL, &ev);
    if (err != CL_SUCCESS) return rf_cl_fail(err, "clEnqueueFillBuffer");
    return rf_cl_record(dst->dev, ev, "fill");
}

/* ---- events and profiling -------------------------------------------------- */

/* Fold every pending event into the profile table (waits for them). */
static rf_status drain_events(rf_device *dev) {
    rf_cl_context *cl = rf_cl_ctx(dev);
    rf_status status = RF_OK;
    for (int i = 0; i < cl->npending; i++) {
        cl_event ev = cl->pending[i].event;
        cl_int err = clWaitForEvents(1, &ev);
        cl_ulong t0 = 0, t1 = 0;
        if (err == CL_SUCCESS) {
            clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL);
            clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL);
            rf_profile_add(dev, cl->pending[i].op, t1 > t0 ? t1 - t0 : 0);
        } else if (status == RF_OK) {
            status = rf_cl_fail(err, cl->pending[i].op);
        }
        clReleaseEvent(ev);
    }
    cl->npending = 0;
    return status;
}

rf_status rf_cl_record(rf_device *dev, cl_event event, const char *op) {
    rf_cl_context *cl = rf_cl_ctx(dev);
    rf_status s = RF_OK;
    if (cl->npending == RF_CL_MAX_PENDING) s = drain_events(dev);
    cl->pending[cl->npending].event = event;
    snprintf(cl->pending[cl->npending].op, sizeof cl->pending[0].op, "%s", op);
    cl->npending++;
    return s;
}

static rf_status cl_sync(rf_device *dev) {
    cl_int err = clFinish(rf_cl_ctx(dev)->queue);
    if (err != CL_SUCCESS) return rf_cl_fail(err, "clFinish");
    return drain_events(dev);
}

static void cl_close(rf_device *dev) {
    rf_cl_context *cl = rf_cl_ctx(dev);
    if (!cl) return;
    if (cl->queue) {
        clFinish(cl->queue);
        drain_events(dev);
    }
    rf_cl_programs_release(cl);
    for (int i = 0; i < cl->nretired; i++) clReleaseMemObject(cl->retired[i]);
    for (int i = 0; i < cl->reuse.count; i++) clReleaseMemObject((cl_mem)cl->reuse.block[i]);
    free(cl->retired);
    rf_thread_pool_free(cl->gemm_pool);
    if (cl->queue) clReleaseCommandQueue(cl->queue);
    if (cl->context) clReleaseContext(cl->context);
    free(cl);
    dev->impl = NULL;
}

/* No host_ptr (device memory is downloaded) and no wall_profile: every
 * launch and transfer records its event (rf_cl_record). */
static const rf_backend cl_backend = {
    .alloc = cl_alloc,
    .release = cl_release,
    .upload = cl_upload,
    .download = cl_download,
    .copy = cl_copy,
    .fill = cl_fill,
    .sync = cl_sync,
    .close = cl_close,
};

rf_status rf_cl_device_init(rf_device *dev, int platform, int device) {
    find_ctx f = {platform, device, NULL, NULL};
    if (!walk(visit_find, &f))
        return rf_error(RF_ERR_NOT_FOUND, "OpenCL device cl:%d:%d not found", platform, device);
    dev->backend = &cl_backend;
#define RF_CL_REGISTER(family) rf_cl_##family##_register(&dev->ops);
    RF_OP_FAMILIES(RF_CL_REGISTER)
#undef RF_CL_REGISTER
    fill_info(&dev->info, f.p, f.d, platform, device);
    RF_TRY(rf_cl_limits_apply(&dev->info));
    rf_cl_context *cl = calloc(1, sizeof *cl);
    if (!cl) return rf_error(RF_ERR_OUT_OF_MEMORY, "no host memory for an OpenCL context");
    dev->impl = cl;
    cl->platform = f.p;
    cl->device = f.d;
    cl_device_type type = 0;
    clGetDeviceInfo(f.d, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    cl->host_cpu = (type & CL_DEVICE_TYPE_CPU) != 0 && !dev->info.is_simulator;
    /* The CPU shapes' vector width (cl/attention_common.cl, VW): the
     * device's native float width, 16 or 8; RF_CL_VECTOR_WIDTH=8|16 forces
     * one (the tests run the other on PoCL too). */
    cl_uint native = 0;
    clGetDeviceInfo(f.d, CL_DEVICE_NATIVE_VECTOR_WIDTH_FLOAT, sizeof native, &native, NULL);
    cl->vector_width = native >= 16 ? 16 : 8;
    const char *vw = getenv("RF_CL_VECTOR_WIDTH");
    if (vw && *vw) {
        if (strcmp(vw, "8") && strcmp(vw, "16")) {
            cl_close(dev);
            return rf_error(RF_ERR_INVALID_ARG, "RF_CL_VECTOR_WIDTH='%s': expected 8 or 16", vw);
        }
        cl->vector_width = atoi(vw);
    }
    cl_int err;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)f.p, 0};
    cl->context = clCreateContext(props, 1, &f.d, NULL, NULL, &err);
    if (err != CL_SUCCESS) {
        cl_close(dev);
        return rf_cl_fail(err, "clCreateContext");
    }
    /* In order (CLBlast takes no wait list) and profiled (the profile table). */
    cl->queue = clCreateCommandQueue(cl->context, f.d, CL_QUEUE_PROFILING_ENABLE, &err);
    if (err != CL_SUCCESS) {
        cl_close(dev);
        return rf_cl_fail(err, "clCreateCommandQueue");
    }
    rf_status s = RF_OK;
    if (cl->host_cpu) {
        rf_host_gemm_init();
        /* As many threads as the cpu backend's OpenMP team (OMP_NUM_THREADS). */
        s = rf_thread_pool_new(omp_get_max_threads(), &cl->gemm_pool);
    }
    /* Tuned tile sizes for this device and driver, if `reformer tune` stored any. */
    if (s == RF_OK) s = rf_cl_tune_load(dev);
    /* On failure nothing is left running: the caller frees only dev. */
    if (s != RF_OK) cl_close(dev);
    return s;
}

rf_status rf_cl_attn_shape(const rf_device *dev, rf_cl_shape *shape) {
    const char *env = getenv("RF_CL_ATTN"), *limits = getenv("RF_CL_LIMITS");
    if (!env || !*env) {
        *shape = rf_cl_ctx(dev)->host_cpu && !(limits && *limits) ? RF_CL_SHAPE_CPU : RF_CL_SHAPE_GPU;
        return RF_OK;
    }
    if (!strcmp(env, "gpu")) return *shape = RF_CL_SHAPE_GPU, RF_OK;
    if (!strcmp(env, "cpu")) return *shape = RF_CL_SHAPE_CPU, RF_OK;
    return rf_error(RF_ERR_INVALID_ARG, "RF_CL_ATTN='%s': expected gpu or cpu", env);
}
