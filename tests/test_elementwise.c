/* rf_add: the cpu op against a direct loop, the OpenCL op against the cpu op
 * with sentinels, and its argument checks. */
#include "harness.h"
#include <stdlib.h>

static void cpu_matches_direct_loop(void **state) {
    rf_device *cpu = th_cpu();
    size_t n = 1000;
    float *a = th_random(n, 1, 1.0f), *b = th_random(n, 2, 1.0f), *want = malloc(n * sizeof *want);
    for (size_t i = 0; i < n; i++) want[i] = a[i] - 0.5f * b[i];
    rf_tensor ta = TH_TENSOR(cpu, RF_F32, a, 10, 100), tb = TH_TENSOR(cpu, RF_F32, b, 1000);
    rf_tensor out = TH_TENSOR(cpu, RF_F32, NULL, 10, 100);
    TH_OK(rf_add(&out, &ta, &tb, -0.5f));
    float *got = th_download_f32(&out);
    th_assert_close(got, want, n, 1e-6, "rf_add cpu");
    free(a), free(b), free(want), free(got);
    rf_tensor_free(&ta), rf_tensor_free(&tb), rf_tensor_free(&out);
    rf_device_close(cpu);
}

static void opencl_matches_cpu(void **state) {
    rf_device *cl;
    TH_CL_OR_SKIP(cl);
    rf_device *cpu = th_cpu();
    size_t n = 1037; /* not a multiple of any work-group size: the tail is guarded */
    float *a = th_random(n, 3, 2.0f), *b = th_random(n, 4, 2.0f);
    rf_tensor ca = TH_TENSOR(cpu, RF_F32, a, 1037), cb = TH_TENSOR(cpu, RF_F32, b, 1037);
    rf_tensor cout = TH_TENSOR(cpu, RF_F32, NULL, 1037);
    rf_tensor ga = TH_TENSOR(cl, RF_F32, a, 1037), gb = TH_TENSOR(cl, RF_F32, b, 1037);
    th_guarded gout = th_guarded_alloc(cl, RF_F32, 1, (int64_t[]){1037});
    TH_OK(rf_add(&cout, &ca, &cb, 1.5f));
    TH_OK(rf_add(&gout.t, &ga, &gb, 1.5f));
    float *want = th_download_f32(&cout), *got = th_download_f32(&gout.t);
    th_assert_close(got, want, n, 1e-5, "rf_add opencl vs cpu");
    th_guard_check(&gout, "rf_add opencl");
    free(a), free(b), free(want), free(got);
    rf_tensor_free(&ca), rf_tensor_free(&cb), rf_tensor_free(&cout), rf_tensor_free(&ga), rf_tensor_free(&gb);
    th_guarded_free(&gout);
    rf_device_close(cl);
    rf_device_close(cpu);
}

static void rejects_bad_arguments(void **state) {
    rf_device *cpu = th_cpu();
    rf_tensor a = TH_TENSOR(cpu, RF_F32, NULL, 8), b = TH_TENSOR(cpu, RF_F32, NULL, 9);
    TH_FAILS(rf_add(&a, &a, &b, 1.0f), RF_ERR_INVALID_ARG, "element counts differ");
    TH_FAILS(rf_add(NULL, &a, &a, 1.0f), RF_ERR_INVALID_ARG, "out is NULL");
    TH_FAILS(rf_add(&a, NULL, &a, 1.0f), RF_ERR_INVALID_ARG, "a is NULL");
    rf_tensor_free(&a), rf_tensor_free(&b);
    rf_device_close(cpu);
}

/* concat puts a's row then b's row; split undoes it exactly; both backends. */
static void concat_and_split(rf_device *dev) {
    float a[2 * 3 * 5], b[2 * 3 * 5], joined[2 * 3 * 10], a2[30], b2[30];
    th_fill_uniform(a, 30, 5, 1), th_fill_uniform(b, 30, 6, 1);
    rf_tensor ta = TH_TENSOR(dev, RF_F32, a, 2, 3, 5), tb = TH_TENSOR(dev, RF_F32, b, 2, 3, 5);
    th_guarded out = th_guarded_alloc(dev, RF_F32, 3, (int64_t[]){2, 3, 10});
    TH_OK(rf_concat(&out.t, &ta, &tb));
    th_guard_check(&out, "rf_concat");
    TH_OK(rf_tensor_download(&out.t, joined, sizeof joined));
    for (int r = 0; r < 6; r++)
        for (int c = 0; c < 10; c++) assert_true(joined[r * 10 + c] == (c < 5 ? a[r * 5 + c] : b[r * 5 + c - 5]));
    rf_tensor xa = TH_TENSOR(dev, RF_F32, NULL, 2, 3, 5), xb = TH_TENSOR(dev, RF_F32, NULL, 2, 3, 5);
    TH_OK(rf_split(&xa, &xb, &out.t));
    TH_OK(rf_tensor_download(&xa, a2, sizeof a2));
    TH_OK(rf_tensor_download(&xb, b2, sizeof b2));
    assert_memory_equal(a, a2, sizeof a);
    assert_memory_equal(b, b2, sizeof b);
    TH_FAILS(rf_concat(&out.t, &ta, &out.t), RF_ERR_INVALID_ARG, "b has shape [2, 3, 10], expected [2, 3, 5]");
    rf_tensor_free(&ta), rf_tensor_free(&tb), rf_tensor_free(&xa), rf_tensor_free(&xb);
    th_guarded_free(&out);
}

static void concat_split_cpu(void **state) {
    rf_device *dev = th_cpu();
    concat_and_split(dev);
    rf_device_close(dev);
}

static void concat_split_opencl(void **state) {
    rf_device *dev;
    TH_CL_OR_SKIP(dev);
    concat_and_split(dev);
    rf_device_close(dev);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cpu_matches_direct_loop),
        cmocka_unit_test(opencl_matches_cpu),
        cmocka_unit_test(rejects_bad_arguments),
        cmocka_unit_test(concat_split_cpu),
        cmocka_unit_test(concat_split_opencl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
