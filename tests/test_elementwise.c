/* rf_add: the cpu op against a direct loop, the OpenCL op against the cpu op
 * with sentinels, and its argument checks. */
#include "harness.h"
#include <stdio.h>
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
    size_t n = 1037; /* not a multiple of any work-group size, nor of 8: the tail is guarded */
    float *a = th_random(n, 3, 2.0f), *b = th_random(n, 4, 2.0f);
    for (int sh = 0; sh < 2; sh++) { /* both kernel shapes (elementwise.c) */
        setenv("RF_CL_ATTN", TH_CL_SHAPES[sh], 1);
        rf_tensor ca = TH_TENSOR(cpu, RF_F32, a, 1037), cb = TH_TENSOR(cpu, RF_F32, b, 1037);
        rf_tensor cout = TH_TENSOR(cpu, RF_F32, NULL, 1037);
        rf_tensor ga = TH_TENSOR(cl, RF_F32, a, 1037), gb = TH_TENSOR(cl, RF_F32, b, 1037);
        th_guarded gout = th_guarded_alloc(cl, RF_F32, 1, (int64_t[]){1037});
        TH_OK(rf_add(&cout, &ca, &cb, 1.5f));
        TH_OK(rf_add(&gout.t, &ga, &gb, 1.5f));
        float *want = th_download_f32(&cout), *got = th_download_f32(&gout.t);
        th_assert_close(got, want, n, 1e-5, "rf_add opencl vs cpu");
        th_guard_check(&gout, "rf_add opencl");
        /* In place (out = a), the residual's form: the same sums. */
        TH_OK(rf_add(&ga, &ga, &gb, 1.5f));
        float *inplace = th_download_f32(&ga);
        th_assert_close(inplace, got, n, 0, "rf_add opencl in place");
        free(want), free(got), free(inplace);
        rf_tensor_free(&ca), rf_tensor_free(&cb), rf_tensor_free(&cout), rf_tensor_free(&ga), rf_tensor_free(&gb);
        th_guarded_free(&gout);
    }
    unsetenv("RF_CL_ATTN");
    free(a), free(b);
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

/* concat puts a's row then b's row; split undoes it exactly; both backends.
 * Shapes [B, L, w]: the concat of [B, L, 2w] is checked against a host loop. */
static void concat_and_split(rf_device *dev, int64_t nb, int64_t l, int64_t w) {
    size_t half = (size_t)(nb * l * w), rows = (size_t)(nb * l), ww = (size_t)w;
    float *a = malloc(half * sizeof *a), *b = malloc(half * sizeof *b), *joined = malloc(2 * half * sizeof *joined),
          *a2 = malloc(half * sizeof *a2), *b2 = malloc(half * sizeof *b2);
    th_fill_uniform(a, half, 5, 1), th_fill_uniform(b, half, 6, 1);
    rf_tensor ta = TH_TENSOR(dev, RF_F32, a, nb, l, w), tb = TH_TENSOR(dev, RF_F32, b, nb, l, w);
    th_guarded out = th_guarded_alloc(dev, RF_F32, 3, (int64_t[]){nb, l, 2 * w});
    TH_OK(rf_concat(&out.t, &ta, &tb));
    th_guard_check(&out, "rf_concat");
    TH_OK(rf_tensor_download(&out.t, joined, 2 * half * sizeof *joined));
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < 2 * ww; c++)
            assert_true(joined[r * 2 * ww + c] == (c < ww ? a[r * ww + c] : b[r * ww + c - ww]));
    rf_tensor xa = TH_TENSOR(dev, RF_F32, NULL, nb, l, w), xb = TH_TENSOR(dev, RF_F32, NULL, nb, l, w);
    TH_OK(rf_split(&xa, &xb, &out.t));
    TH_OK(rf_tensor_download(&xa, a2, half * sizeof *a2));
    TH_OK(rf_tensor_download(&xb, b2, half * sizeof *b2));
    assert_memory_equal(a, a2, half * sizeof *a);
    assert_memory_equal(b, b2, half * sizeof *b);
    char want[96];
    snprintf(want, sizeof want, "b has shape [%lld, %lld, %lld], expected [%lld, %lld, %lld]", (long long)nb,
             (long long)l, (long long)(2 * w), (long long)nb, (long long)l, (long long)w);
    TH_FAILS(rf_concat(&out.t, &ta, &out.t), RF_ERR_INVALID_ARG, want);
    rf_tensor_free(&ta), rf_tensor_free(&tb), rf_tensor_free(&xa), rf_tensor_free(&xb);
    th_guarded_free(&out);
    free(a), free(b), free(joined), free(a2), free(b2);
}

static void concat_split_cpu(void **state) {
    rf_device *dev = th_cpu();
    concat_and_split(dev, 2, 3, 5);
    rf_device_close(dev);
}

static void concat_split_opencl(void **state) {
    rf_device *dev;
    TH_CL_OR_SKIP(dev);
    concat_and_split(dev, 2, 3, 5);
    concat_and_split(dev, 3, 333, 37); /* many rows; 2w = 74 not a power of two */
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
