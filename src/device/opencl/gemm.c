/* GEMM on OpenCL, by one of two paths chosen per device (README "Speed"):
 *
 * - CLBlast (every device; the only path on GPUs). A strided batch is one
 *   CLBlastSgemmStridedBatched call (small matrices are far cheaper batched
 *   than looped); a batch that reuses one operand (stride 0) is looped, as
 *   CLBlast wants distinct items.
 * - host BLAS (OpenCL devices of CPU type, whose buffers are host memory):
 *   rf_host_gemm (OpenBLAS on blocks of rows, as the cpu backend's) on the
 *   mapped buffers, no copy, the blocks on the context's thread pool
 *   (device/thread_pool.h). Not on the OpenMP threads: they spin after each
 *   call (libgomp's default wait policy) against PoCL's workers running the
 *   next kernels, and libgomp reads OMP_WAIT_POLICY only when it loads. The
 *   pool's threads sleep instead: as fast by default as OpenMP was with
 *   OMP_WAIT_POLICY=passive (a training step at L = 4,096 on 2 cores:
 *   577-601 ms, passive 575-589, spinning 669-748; README "Speed"). The cpu
 *   backend stays on OpenMP, whose spinning between its own back-to-back
 *   regions is what makes it fast. Measured on a 2-core EPYC
 *   under PoCL, CLBlast runs 6-10 GFLOP/s where OpenBLAS runs over 100 on
 *   the same cores (`reformer bench gemm --all`).
 *
 * RF_CL_GEMM=clblast|host forces a path (tests run both on PoCL); host is
 * refused on a device that is not of CPU type. */
#include <clblast_c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "device/opencl/cl_backend.h"
#include "device/host_gemm.h"

static rf_status clblast_fail(CLBlastStatusCode code, const char *what) {
    /* CLBlast's codes above -64 are OpenCL's own (see clblast_c.h). */
    if (code > -64) return rf_cl_fail((cl_int)code, what);
    return rf_error(RF_ERR_DEVICE, "%s: CLBlast status %d", what, (int)code);
}

static rf_status gemm_clblast(rf_tensor *c, const rf_tensor *a, const rf_tensor *b, const rf_gemm_desc *d) {
    rf_device *dev = c->buf->dev;
    cl_command_queue queue = rf_cl_ctx(dev)->queue;
    CLBlastTranspose ta = d->trans_a ? CLBlastTransposeYes : CLBlastTransposeNo;
    CLBlastTranspose tb = d->trans_b ? CLBlastTransposeYes : CLBlastTransposeNo;
    int shared = d->batch > 1 && (d->stride_a == 0 || d->stride_b == 0);
    if (d->batch > 1 && !shared) {
        cl_event ev = NULL;
        CLBlastStatusCode st = CLBlastSgemmStridedBatched(
            CLBlastLayoutRowMajor, ta, tb, (size_t)d->m, (size_t)d->n, (size_t)d->k, d->alpha,
            rf_cl_mem(a->buf), a->offset, (size_t)d->lda, (size_t)d->stride_a,
            rf_cl_mem(b->buf), b->offset, (size_t)d->ldb, (size_t)d->stride_b, d->beta,
            rf_cl_mem(c->buf), c->offset, (size_t)d->ldc, (size_t)d->stride_c, (size_t)d->batch, &queue, &ev);
        if (st != CLBlastSuccess) return clblast_fail(st, "CLBlastSgemmStridedBatched");
        return rf_cl_record(dev, ev, "gemm (clblast)");
    }
    for (int64_t i = 0; i < d->batch; i++) {
        cl_event ev = NULL;
        CLBlastStatusCode st = CLBlastSgemm(
            CLBlastLayoutRowMajor, ta, tb, (size_t)d->m, (size_t)d->n, (size_t)d->k, d->alpha,
            rf_cl_mem(a->buf), a->offset + (size_t)(i * d->stride_a), (size_t)d->lda,
            rf_cl_mem(b->buf), b->offset + (size_t)(i * d->stride_b), (size_t)d->ldb, d->beta,
            rf_cl_mem(c->buf), c->offset + (size_t)(i * d->stride_c), (size_t)d->ldc, &queue, &ev);
        if (st != CLBlastSuccess) return clblast_fail(st, "CLBlastSgemm");
        RF_TRY(rf_cl_record(dev, ev, "gemm (clblast)"));
    }
    return RF_OK;
}

/* The operands' buffers, each mapped once (two operands may share one
 * buffer: mapping it twice for writing would be undefined). */
typedef struct {
    cl_mem mem[3];
    float *ptr[3];
    int n;
} mapped_set;

static rf_status map_once(mapped_set *m, cl_command_queue q, const rf_buffer *buf, float **out) {
    cl_mem mem = rf_cl_mem(buf);
    for (int i = 0; i < m->n; i++)
        if (m->mem[i] == mem) return *out = m->ptr[i], RF_OK;
    cl_int err;
    /* Not blocking: the caller waits once for all its maps (each wait is a
     * round trip through the driver's scheduler, ~0.1 ms on PoCL). */
    void *p = clEnqueueMapBuffer(q, mem, CL_FALSE, CL_MAP_READ | CL_MAP_WRITE, 0, buf->bytes, 0, NULL, NULL, &err);
    if (err != CL_SUCCESS) return rf_cl_fail(err, "clEnqueueMapBuffer (gemm on the host)");
    m->mem[m->n] = mem, m->ptr[m->n++] = p;
    *out = p;
    return RF_OK;
}

static rf_status gemm_host(rf_tensor *c, const rf_tensor *a, const rf_tensor *b, const rf_gemm_desc *d) {
    rf_device *dev = c->buf->dev;
    cl_command_queue q = rf_cl_ctx(dev)->queue;
    /* Wait for the work already queued first, so that the time below is the
     * GEMM's alone (that work's own events account for it). */
    cl_int err = clFinish(q);
    if (err != CL_SUCCESS) return rf_cl_fail(err, "clFinish (gemm on the host)");
    const uint64_t t0 = rf_now_ns();
    mapped_set m = {.n = 0};
    float *pa = NULL, *pb = NULL, *pc = NULL;
    rf_status s = map_once(&m, q, a->buf, &pa);
    if (s == RF_OK) s = map_once(&m, q, b->buf, &pb);
    if (s == RF_OK) s = map_once(&m, q, c->buf, &pc);
    /* The queue is in order: once the maps are done, so is every kernel
     * enqueued before them, and the pointers are valid. */
    if (s == RF_OK && (err = clFinish(q)) != CL_SUCCESS) s = rf_cl_fail(err, "clFinish (gemm on the host)");
    if (s == RF_OK) rf_host_gemm(d, pa + a->offset, pb + b->offset, pc + c->offset, rf_cl_ctx(dev)->gemm_pool);
    if (s == RF_OK) rf_profile_add(dev, "gemm (host blas)", rf_now_ns() - t0);
    /* Not waited for: anything enqueued later runs after the unmaps. */
    for (int i = 0; i < m.n; i++) {
        err = clEnqueueUnmapMemObject(q, m.mem[i], m.ptr[i], 0, NULL, NULL);
        if (err != CL_SUCCESS && s == RF_OK) s = rf_cl_fail(err, "clEnqueueUnmapMemObject (gemm on the host)");
    }
    return s;
}

/* The path for this device: RF_CL_GEMM if set, else host BLAS on a device
 * whose buffers are host memory (host_cpu: of CPU type, not a simulator),
 * CLBlast elsewhere. A simulator runs CLBlast, the GPUs' path: its checker
 * does not see host writes through a read-write mapping (docs/oclgrind.md,
 * artefact 5). */
static rf_status pick_path(rf_device *dev, int *host) {
    const char *env = getenv("RF_CL_GEMM");
    if (!env || !*env) return *host = rf_cl_ctx(dev)->host_cpu, RF_OK;
    if (!strcmp(env, "clblast")) return *host = 0, RF_OK;
    if (!strcmp(env, "host") && rf_cl_ctx(dev)->host_cpu) return *host = 1, RF_OK;
    if (!strcmp(env, "host"))
        return rf_error(RF_ERR_INVALID_ARG, "RF_CL_GEMM=host: %s is not a CPU-type device", dev->info.id);
    return rf_error(RF_ERR_INVALID_ARG, "RF_CL_GEMM='%s': expected clblast or host", env);
}

static rf_status rf_cl_gemm(rf_tensor *c, const rf_tensor *a, const rf_tensor *b, const rf_gemm_desc *d) {
    int host = 0;
    RF_TRY(pick_path(c->buf->dev, &host));
    return host ? gemm_host(c, a, b, d) : gemm_clblast(c, a, b, d);
}

void rf_cl_gemm_register(rf_op_table *ops) {
    ops->gemm = rf_cl_gemm;
}
