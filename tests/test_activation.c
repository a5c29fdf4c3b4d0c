/* ReLU and GELU (§7): cpu forward against the formulas, cpu backward against
 * central finite differences, OpenCL against the cpu with sentinels, checks. */
#include "harness.h"
#include <math.h>
#include <stdlib.h>

static double act_ref(double x, rf_activation act) {
    return act == RF_ACT_RELU ? (x > 0 ? x : 0) : 0.5 * x * (1 + erf(x / sqrt(2.0)));
}

static void cpu_forward_matches_formula(void **state) {
    rf_device *cpu = th_cpu();
    size_t n = 301;
    float *x = th_random(n, 1, 4.0f), *want = malloc(n * sizeof *want);
    x[0] = 0.0f;
    for (int a = 0; a < 2; a++) {
        rf_activation act = a ? RF_ACT_GELU : RF_ACT_RELU;
        for (size_t i = 0; i < n; i++) want[i] = (float)act_ref(x[i], act);
        rf_tensor tx = TH_TENSOR(cpu, RF_F32, x, 7, 43), ty = TH_TENSOR(cpu, RF_F32, NULL, 301);
        TH_OK(rf_activation_forward(&ty, &tx, act));
        float *y = th_download_f32(&ty);
        th_assert_close(y, want, n, 1e-6, a ? "gelu cpu" : "relu cpu");
        /* In place (y aliases x). */
        TH_OK(rf_activation_forward(&tx, &tx, act));
        float *y2 = th_download_f32(&tx);
        th_assert_close(y2, want, n, 1e-6, "in place");
        free(y), free(y2);
        rf_tensor_free(&tx), rf_tensor_free(&ty);
    }
    free(x), free(want);
    rf_device_close(cpu);
}

static void cpu_backward_matches_finite_differences(void **state) {
    rf_device *cpu = th_cpu();
    size_t n = 200;
    float *x = th_random(n, 2, 3.0f), *dy = th_random(n, 3, 1.0f), *want = malloc(n * sizeof *want);
    for (size_t i = 0; i < n; i++)
        if (fabs(x[i]) < 1e-3) x[i] = 0.5f; /* keep ReLU's kink out of the differences' reach */
    for (int a = 0; a < 2; a++) {
        rf_activation act = a ? RF_ACT_GELU : RF_ACT_RELU;
        double h = 1e-4;
        for (size_t i = 0; i < n; i++)
            want[i] = (float)(dy[i] * (act_ref(x[i] + h, act) - act_ref(x[i] - h, act)) / (2 * h));
        rf_tensor tx = TH_TENSOR(cpu, RF_F32, x, 200), tdy = TH_TENSOR(cpu, RF_F32, dy, 200),
                  tdx = TH_TENSOR(cpu, RF_F32, NULL, 200);
        TH_OK(rf_activation_backward(&tdx, &tdy, &tx, act));
        float *dx = th_download_f32(&tdx);
        th_assert_fd(dx, want, n, 1e-2, a ? "gelu backward vs finite differences" : "relu backward vs finite differences");
        free(dx);
        rf_tensor_free(&tx), rf_tensor_free(&tdy), rf_tensor_free(&tdx);
    }
    /* ReLU'(0) = 0, as PyTorch. */
    float zero = 0.0f, one = 1.0f;
    rf_tensor tz = TH_TENSOR(cpu, RF_F32, &zero, 1), t1 = TH_TENSOR(cpu, RF_F32, &one, 1),
              td = TH_TENSOR(cpu, RF_F32, NULL, 1);
    TH_OK(rf_activation_backward(&td, &t1, &tz, RF_ACT_RELU));
    float *d0 = th_download_f32(&td);
    assert_true(d0[0] == 0.0f);
    free(d0), free(x), free(dy), free(want);
    rf_tensor_free(&tz), rf_tensor_free(&t1), rf_tensor_free(&td);
    rf_device_close(cpu);
}

static void opencl_matches_cpu(void **state) {
    rf_device *cl;
    TH_CL_OR_SKIP(cl);
    rf_device *cpu = th_cpu();
    size_t n = 1037; /* not a multiple of any group size, nor of the CPU shape's 8 lanes */
    float *x = th_random(n, 4, 5.0f), *dy = th_random(n, 5, 1.0f);
    for (int sa = 0; sa < 4; sa++) { /* both kernel shapes (activation.c), each activation */
        setenv("RF_CL_ATTN", TH_CL_SHAPES[sa / 2], 1);
        const int a = sa % 2;
        rf_activation act = a ? RF_ACT_GELU : RF_ACT_RELU;
        rf_tensor cx = TH_TENSOR(cpu, RF_F32, x, 1037), cdy = TH_TENSOR(cpu, RF_F32, dy, 1037),
                  cy = TH_TENSOR(cpu, RF_F32, NULL, 1037), cdx = TH_TENSOR(cpu, RF_F32, NULL, 1037);
        rf_tensor gx = TH_TENSOR(cl, RF_F32, x, 1037), gdy = TH_TENSOR(cl, RF_F32, dy, 1037);
        th_guarded gy = th_guarded_alloc(cl, RF_F32, 1, (int64_t[]){1037}),
                   gdx = th_guarded_alloc(cl, RF_F32, 1, (int64_t[]){1037});
        TH_OK(rf_activation_forward(&cy, &cx, act));
        TH_OK(rf_activation_backward(&cdx, &cdy, &cx, act));
        TH_OK(rf_activation_forward(&gy.t, &gx, act));
        TH_OK(rf_activation_backward(&gdx.t, &gdy, &gx, act));
        th_guard_check(&gy, "activation forward opencl");
        th_guard_check(&gdx, "activation backward opencl");
        float *wy = th_download_f32(&cy), *wdx = th_download_f32(&cdx), *y = th_download_f32(&gy.t),
              *dx = th_download_f32(&gdx.t);
        th_assert_close(y, wy, n, 1e-5, a ? "gelu opencl vs cpu" : "relu opencl vs cpu");
        th_assert_close_grad(dx, wdx, n, 1e-3, a ? "gelu backward opencl vs cpu" : "relu backward opencl vs cpu");
        free(wy), free(wdx), free(y), free(dx);
        rf_tensor_free(&cx), rf_tensor_free(&cdy), rf_tensor_free(&cy), rf_tensor_free(&cdx);
        rf_tensor_free(&gx), rf_tensor_free(&gdy);
        th_guarded_free(&gy), th_guarded_free(&gdx);
    }
    unsetenv("RF_CL_ATTN");
    free(x), free(dy);
    rf_device_close(cl);
    rf_device_close(cpu);
}

/* rf_bias_activation_forward against the bias added in C and the
 * activation op on the cpu: y and pre into their own tensors, and in place
 * (y = x, no pre), on each device; an odd width so rows straddle groups
 * (and end in the CPU shape's scalar tail). */
static void bias_activation_matches_separate_ops(void **state) {
    rf_device *cpu = th_cpu(), *devs[2] = {cpu, th_cl()};
    enum { ROWS = 37, N = 29 };
    float *x = th_random(ROWS * N, 6, 3.0f), *b = th_random(N, 7, 1.0f), *pre = malloc(sizeof(float) * ROWS * N);
    for (int r = 0; r < ROWS; r++)
        for (int j = 0; j < N; j++) pre[r * N + j] = x[r * N + j] + b[j];
    for (int a = 0; a < 2; a++) {
        rf_activation act = a ? RF_ACT_GELU : RF_ACT_RELU;
        rf_tensor tp = TH_TENSOR(cpu, RF_F32, pre, ROWS, N), tw = TH_TENSOR(cpu, RF_F32, NULL, ROWS, N);
        TH_OK(rf_activation_forward(&tw, &tp, act));
        float *want = th_download_f32(&tw);
        for (int k = 0; k < 3 && devs[k > 0]; k++) { /* cpu, then OpenCL in both kernel shapes */
            rf_device *dev = devs[k > 0];
            if (k) setenv("RF_CL_ATTN", TH_CL_SHAPES[k - 1], 1);
            rf_tensor tx = TH_TENSOR(dev, RF_F32, x, ROWS, N), tb = TH_TENSOR(dev, RF_F32, b, N);
            th_guarded y = th_guarded_alloc(dev, RF_F32, 2, (int64_t[]){ROWS, N}),
                       p = th_guarded_alloc(dev, RF_F32, 2, (int64_t[]){ROWS, N});
            TH_OK(rf_bias_activation_forward(&y.t, &p.t, &tx, &tb, act));
            th_guard_check(&y, "bias_activation y"), th_guard_check(&p, "bias_activation pre");
            float *gy = th_download_f32(&y.t), *gp = th_download_f32(&p.t);
            th_assert_close(gy, want, ROWS * N, 1e-5, a ? "bias + gelu" : "bias + relu");
            th_assert_close(gp, pre, ROWS * N, 0, "bias_activation pre = x + b");
            free(gy), free(gp);
            TH_OK(rf_bias_activation_forward(&tx, NULL, &tx, &tb, act)); /* in place, no pre */
            gy = th_download_f32(&tx);
            th_assert_close(gy, want, ROWS * N, 1e-5, a ? "bias + gelu in place" : "bias + relu in place");
            free(gy);
            rf_tensor_free(&tx), rf_tensor_free(&tb);
            th_guarded_free(&y), th_guarded_free(&p);
        }
        free(want);
        rf_tensor_free(&tp), rf_tensor_free(&tw);
    }
    unsetenv("RF_CL_ATTN");
    free(x), free(b), free(pre);
    if (devs[1]) rf_device_close(devs[1]);
    rf_device_close(cpu);
}

static void rejects_bad_arguments(void **state) {
    rf_device *cpu = th_cpu();
    rf_tensor a = TH_TENSOR(cpu, RF_F32, NULL, 8), b = TH_TENSOR(cpu, RF_F32, NULL, 9),
              i = TH_TENSOR(cpu, RF_I32, NULL, 8);
    TH_FAILS(rf_activation_forward(&a, &b, RF_ACT_GELU), RF_ERR_INVALID_ARG, "y has shape [8] (8 elements), expected 9");
    TH_FAILS(rf_activation_forward(&a, &a, (rf_activation)7), RF_ERR_INVALID_ARG, "unknown activation 7");
    TH_FAILS(rf_activation_forward(&a, NULL, RF_ACT_RELU), RF_ERR_INVALID_ARG, "x is NULL");
    TH_FAILS(rf_activation_forward(&a, &i, RF_ACT_RELU), RF_ERR_INVALID_ARG, "x has dtype i32");
    TH_FAILS(rf_activation_backward(&a, &b, &a, RF_ACT_RELU), RF_ERR_INVALID_ARG, "dy has shape [9]");
    TH_FAILS(rf_activation_backward(NULL, &a, &a, RF_ACT_RELU), RF_ERR_INVALID_ARG, "dx is NULL");
    TH_FAILS(rf_bias_activation_forward(&a, NULL, &a, &b, RF_ACT_RELU), RF_ERR_INVALID_ARG, "b has shape [9], expected [8]");
    TH_FAILS(rf_bias_activation_forward(&a, &b, &a, &a, RF_ACT_RELU), RF_ERR_INVALID_ARG, "pre has shape [9]");
    TH_FAILS(rf_bias_activation_forward(&a, NULL, &a, NULL, RF_ACT_GELU), RF_ERR_INVALID_ARG, "b is NULL");
    TH_FAILS(rf_bias_activation_forward(&a, NULL, &a, &a, (rf_activation)3), RF_ERR_INVALID_ARG, "unknown activation 3");
    rf_tensor_free(&a), rf_tensor_free(&b), rf_tensor_free(&i);
    rf_device_close(cpu);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cpu_forward_matches_formula),
        cmocka_unit_test(cpu_backward_matches_finite_differences),
        cmocka_unit_test(opencl_matches_cpu),
        cmocka_unit_test(bias_activation_matches_separate_ops),
        cmocka_unit_test(rejects_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
