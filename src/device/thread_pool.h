/* Internal: a fixed set of worker threads that sleep (on a condition
 * variable) between jobs, for host work issued by an OpenCL device of CPU
 * type (opencl/gemm.c). OpenMP's threads, the cpu backend's, spin for a
 * while after each parallel region (libgomp's default wait policy), which
 * is what makes back-to-back regions cheap there, but on PoCL that spinning
 * takes the cores from PoCL's own workers running the next kernels
 * (README "Speed"). A pool's threads take no core while they wait. */
#ifndef RF_THREAD_POOL_H
#define RF_THREAD_POOL_H

#include <stdint.h>
#include "reformer/status.h"

typedef struct rf_thread_pool rf_thread_pool;

/* A pool of `threads` threads in all: the caller of rf_thread_pool_run and
 * threads - 1 workers started here. */
rf_status rf_thread_pool_new(int threads, rf_thread_pool **out);

/* The pool's thread count, the caller's included. */
int rf_thread_pool_threads(const rf_thread_pool *p);

/* task(arg, t) for every t in [0, count), spread over the pool's threads;
 * returns when all are done. Called from one thread at a time. */
void rf_thread_pool_run(rf_thread_pool *p, int64_t count, void (*task)(const void *arg, int64_t t), const void *arg);

/* Stop and join the workers, then free the pool (NULL is fine). */
void rf_thread_pool_free(rf_thread_pool *p);

#endif
