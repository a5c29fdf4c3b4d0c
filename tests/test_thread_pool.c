/* The host GEMM's thread pool (device/thread_pool.h): every task runs
 * exactly once for any task and thread count, the workers do take their
 * share, jobs back to back hand over cleanly, and a pool of one thread runs
 * everything on the caller. Leaks (workers not joined) show under ASan and
 * valgrind, which run this test too. */
#include "harness.h"
#include <pthread.h>
#include <stdatomic.h>
#include "device/thread_pool.h"

enum { MAX_TASKS = 64 };

typedef struct {
    atomic_int hits[MAX_TASKS];
    pthread_t ran_on[MAX_TASKS];
} job;

static void count_task(const void *arg, int64_t t) {
    job *j = (job *)arg;
    atomic_fetch_add(&j->hits[t], 1);
    j->ran_on[t] = pthread_self();
}

static void run_and_check(rf_thread_pool *p, int64_t count) {
    job j = {0};
    rf_thread_pool_run(p, count, count_task, &j);
    for (int64_t t = 0; t < MAX_TASKS; t++) assert_int_equal(atomic_load(&j.hits[t]), t < count ? 1 : 0);
}

static void every_task_runs_once(void **state) {
    for (int threads = 1; threads <= 4; threads++) {
        rf_thread_pool *p = NULL;
        TH_OK(rf_thread_pool_new(threads, &p));
        assert_int_equal(rf_thread_pool_threads(p), threads);
        for (int64_t count = 0; count <= 17; count++) run_and_check(p, count);
        run_and_check(p, MAX_TASKS);
        rf_thread_pool_free(p);
    }
}

static void workers_take_their_share(void **state) {
    rf_thread_pool *p = NULL;
    TH_OK(rf_thread_pool_new(2, &p));
    job j = {0};
    rf_thread_pool_run(p, 4, count_task, &j);
    /* Task t runs on thread t mod 2: the even ones here, the odd ones on the worker. */
    assert_true(pthread_equal(j.ran_on[0], pthread_self()));
    assert_false(pthread_equal(j.ran_on[1], pthread_self()));
    rf_thread_pool_free(p);
}

static void many_jobs_back_to_back(void **state) {
    rf_thread_pool *p = NULL;
    TH_OK(rf_thread_pool_new(3, &p));
    for (int i = 0; i < 2000; i++) run_and_check(p, 2 + i % 7);
    rf_thread_pool_free(p);
}

static void one_thread_runs_on_the_caller(void **state) {
    rf_thread_pool *p = NULL;
    TH_OK(rf_thread_pool_new(1, &p));
    job j = {0};
    rf_thread_pool_run(p, 5, count_task, &j);
    for (int t = 0; t < 5; t++) assert_true(pthread_equal(j.ran_on[t], pthread_self()));
    rf_thread_pool_free(p);
    rf_thread_pool_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_task_runs_once),
        cmocka_unit_test(workers_take_their_share),
        cmocka_unit_test(many_jobs_back_to_back),
        cmocka_unit_test(one_thread_runs_on_the_caller),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
