/* Worker threads that block between jobs (thread_pool.h says why). A job is
 * numbered: the caller publishes it under the lock and wakes the workers;
 * each runs its share and the last one to finish wakes the caller. */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include "core/core.h"
#include "device/thread_pool.h"

typedef struct worker {
    rf_thread_pool *pool;
    int index; /* 1 .. threads - 1; the caller is 0 */
    pthread_t thread;
} worker;

struct rf_thread_pool {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* a new job, or stop */
    pthread_cond_t done; /* the last worker finished the job */
    uint64_t job;        /* the current job's number */
    int busy;            /* workers still on it */
    bool stop;
    void (*task)(const void *arg, int64_t t);
    const void *arg;
    int64_t count;
    int threads, started;
    worker workers[];
};

/* Thread `index`'s share of the job: every threads-th task from its index. */
static void run_share(const rf_thread_pool *p, int index) {
    for (int64_t t = index; t < p->count; t += p->threads) p->task(p->arg, t);
}

static void *worker_main(void *arg) {
    worker *w = arg;
    rf_thread_pool *p = w->pool;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (p->job == seen && !p->stop) pthread_cond_wait(&p->wake, &p->lock);
        if (p->stop) break;
        seen = p->job;
        /* The job's fields stay as they are until every worker is done. */
        pthread_mutex_unlock(&p->lock);
        run_share(p, w->index);
        pthread_mutex_lock(&p->lock);
        if (--p->busy == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

rf_status rf_thread_pool_new(int threads, rf_thread_pool **out) {
    if (threads < 1) threads = 1;
    rf_thread_pool *p = calloc(1, sizeof *p + (size_t)(threads - 1) * sizeof(worker));
    if (!p) return rf_error(RF_ERR_OUT_OF_MEMORY, "no host memory for a thread pool");
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    p->threads = threads;
    for (; p->started < threads - 1; p->started++) {
        worker *w = &p->workers[p->started];
        w->pool = p, w->index = p->started + 1;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            rf_thread_pool_free(p);
            return rf_error(RF_ERR_OUT_OF_MEMORY, "could not start a thread pool's worker");
        }
    }
    *out = p;
    return RF_OK;
}

int rf_thread_pool_threads(const rf_thread_pool *p) { return p->threads; }

void rf_thread_pool_run(rf_thread_pool *p, int64_t count, void (*task)(const void *arg, int64_t t), const void *arg) {
    /* A single task runs here alone: waking a worker would cost more. */
    if (count < 2 || p->threads < 2) {
        for (int64_t t = 0; t < count; t++) task(arg, t);
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->task = task, p->arg = arg, p->count = count;
    p->busy = p->threads - 1;
    p->job++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    run_share(p, 0);
    pthread_mutex_lock(&p->lock);
    while (p->busy > 0) pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

void rf_thread_pool_free(rf_thread_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->started; i++) pthread_join(p->workers[i].thread, NULL);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
