/* GEMM on host memory: OpenBLAS's cblas_sgemm on blocks of rows of c, the
 * blocks on the OpenMP threads (the cpu backend) or on a thread pool whose
 * threads sleep between calls (OpenCL devices of CPU type: thread_pool.h).
 * OpenBLAS runs single-threaded inside them (rf_host_gemm_init): its own
 * pool, spinning between calls, would fight the cpu backend's OpenMP
 * threads (or PoCL's) for the same cores. */
#include <cblas.h>
#include <omp.h>
#include "device/host_gemm.h"

/* Rows of c per block: at least this many, so a thread's sgemm still has
 * room for OpenBLAS's register and cache blocking. */
enum { MIN_ROWS = 64 };

void rf_host_gemm_init(void) { openblas_set_num_threads(1); }

/* A call cut into blocks: each batch item into `parts` blocks of `rows`
 * rows of c, enough blocks for every thread when the batch alone is not. */
typedef struct gemm_blocks {
    const rf_gemm_desc *d;
    const float *A, *B;
    float *C;
    int64_t parts, rows, count;
} gemm_blocks;

static gemm_blocks blocks_of(const rf_gemm_desc *d, const float *A, const float *B, float *C, int64_t threads) {
    int64_t parts = d->batch >= threads ? 1 : (threads + d->batch - 1) / d->batch;
    if (parts > d->m / MIN_ROWS) parts = d->m / MIN_ROWS > 1 ? d->m / MIN_ROWS : 1;
    return (gemm_blocks){d, A, B, C, parts, (d->m + parts - 1) / parts, d->batch * parts};
}

static void run_block(const void *arg, int64_t t) {
    const gemm_blocks *g = arg;
    const rf_gemm_desc *d = g->d;
    const int64_t i = t / g->parts, r0 = t % g->parts * g->rows, m = d->m - r0 < g->rows ? d->m - r0 : g->rows;
    /* Row r0 of op(a): row r0 of a, or column r0 when a is transposed. */
    const float *ai = g->A + i * d->stride_a + (d->trans_a ? r0 : r0 * d->lda);
    if (m > 0)
        cblas_sgemm(CblasRowMajor, d->trans_a ? CblasTrans : CblasNoTrans, d->trans_b ? CblasTrans : CblasNoTrans,
                    (blasint)m, (blasint)d->n, (blasint)d->k, d->alpha, ai, (blasint)d->lda, g->B + i * d->stride_b,
                    (blasint)d->ldb, d->beta, g->C + i * d->stride_c + r0 * d->ldc, (blasint)d->ldc);
}

void rf_host_gemm(const rf_gemm_desc *d, const float *A, const float *B, float *C, rf_thread_pool *pool) {
    const gemm_blocks g = blocks_of(d, A, B, C, pool ? rf_thread_pool_threads(pool) : omp_get_max_threads());
    if (pool) {
        rf_thread_pool_run(pool, g.count, run_block, &g);
        return;
    }
#pragma omp parallel for schedule(static) if (g.count > 1)
    for (int64_t t = 0; t < g.count; t++) run_block(&g, t);
}
