/* Linear layers y = x·Wᵀ + b (§1, §7): cpu forward against naive loops, cpu
 * backward against central finite differences, OpenCL against the cpu with
 * sentinels (odd sizes, a single row), the accumulating form on both,
 * argument checks. */
#include "harness.h"
#include <math.h>
#include <stdlib.h>

enum { IN = 37, OUT = 29 };

/* Σ probe·(x·Wᵀ + b) in double. */
static double probe_loss(const double *x, const double *w, const double *b, const float *probe, int rows) {
    double s = 0;
    for (int r = 0; r < rows; r++)
        for (int o = 0; o < OUT; o++) {
            double y = b[o];
            for (int i = 0; i < IN; i++) y += x[r * IN + i] * w[o * IN + i];
            s += probe[r * OUT + o] * y;
        }
    return s;
}

static void cpu_forward_matches_naive(void **state) {
    rf_device *cpu = th_cpu();
    int rows = 6;
    float *x = th_random((size_t)rows * IN, 1, 1.0f), *w = th_random(OUT * IN, 2, 0.5f), *b = th_random(OUT, 3, 1.0f);
    float *want = malloc(sizeof(float) * (size_t)rows * OUT), *want_nb = malloc(sizeof(float) * (size_t)rows * OUT);
    for (int r = 0; r < rows; r++)
        for (int o = 0; o < OUT; o++) {
            double y = 0;
            for (int i = 0; i < IN; i++) y += (double)x[r * IN + i] * w[o * IN + i];
            want_nb[r * OUT + o] = (float)y;
            want[r * OUT + o] = (float)(y + b[o]);
        }
    rf_tensor tx = TH_TENSOR(cpu, RF_F32, x, 2, 3, IN), tw = TH_TENSOR(cpu, RF_F32, w, OUT, IN),
              tb = TH_TENSOR(cpu, RF_F32, b, OUT), ty = TH_TENSOR(cpu, RF_F32, NULL, 2, 3, OUT);
    TH_OK(rf_linear_forward(&ty, &tx, &tw, &tb));
    float *y = th_download_f32(&ty);
    th_assert_close(y, want, (size_t)rows * OUT, 1e-5, "linear cpu with bias");
    free(y);
    TH_OK(rf_linear_forward(&ty, &tx, &tw, NULL));
    y = th_download_f32(&ty);
    th_assert_close(y, want_nb, (size_t)rows * OUT, 1e-5, "linear cpu without bias");
    free(x), free(w), free(b), free(want), free(want_nb), free(y);
    rf_tensor_free(&tx), rf_tensor_free(&tw), rf_tensor_free(&tb), rf_tensor_free(&ty);
    rf_device_close(cpu);
}

static void cpu_backward_matches_finite_differences(void **state) {
    rf_device *cpu = th_cpu();
    enum { ROWS = 4 };
    float *x = th_random(ROWS * IN, 4, 1.0f), *w = th_random(OUT * IN, 5, 0.5f), *b = th_random(OUT, 6, 1.0f),
          *probe = th_random(ROWS * OUT, 7, 1.0f);
    rf_tensor tx = TH_TENSOR(cpu, RF_F32, x, ROWS, IN), tw = TH_TENSOR(cpu, RF_F32, w, OUT, IN),
              tdy = TH_TENSOR(cpu, RF_F32, probe, ROWS, OUT), tdx = TH_TENSOR(cpu, RF_F32, NULL, ROWS, IN),
              tdw = TH_TENSOR(cpu, RF_F32, NULL, OUT, IN), tdb = TH_TENSOR(cpu, RF_F32, NULL, OUT);
    TH_OK(rf_tensor_fill_f32(&tdw, 1.0f)); /* parameter gradients accumulate (§1) */
    TH_OK(rf_tensor_fill_f32(&tdb, 1.0f));
    TH_OK(rf_linear_backward(&tdx, &tdw, &tdb, &tdy, &tx, &tw));
    float *dx = th_download_f32(&tdx), *dw = th_download_f32(&tdw), *db = th_download_f32(&tdb);
    static double xd[ROWS * IN], wd[OUT * IN], bd[OUT];
    static float fx[ROWS * IN], fw[OUT * IN], fb[OUT];
    for (int i = 0; i < ROWS * IN; i++) xd[i] = x[i];
    for (int i = 0; i < OUT * IN; i++) wd[i] = w[i];
    for (int i = 0; i < OUT; i++) bd[i] = b[i];
    double h = 1e-3;
    struct { double *p; float *fd; int n; float base; } groups[] = {
        {xd, fx, ROWS * IN, 0.0f}, {wd, fw, OUT * IN, 1.0f}, {bd, fb, OUT, 1.0f}};
    for (int gi = 0; gi < 3; gi++)
        for (int i = 0; i < groups[gi].n; i++) {
            double keep = groups[gi].p[i];
            groups[gi].p[i] = keep + h;
            double up = probe_loss(xd, wd, bd, probe, ROWS);
            groups[gi].p[i] = keep - h;
            groups[gi].fd[i] = groups[gi].base + (float)((up - probe_loss(xd, wd, bd, probe, ROWS)) / (2 * h));
            groups[gi].p[i] = keep;
        }
    th_assert_fd(dx, fx, ROWS * IN, 1e-2, "linear dx vs finite differences");
    th_assert_fd(dw, fw, OUT * IN, 1e-2, "linear dW vs finite differences");
    th_assert_fd(db, fb, OUT, 1e-2, "linear db vs finite differences");
    free(x), free(w), free(b), free(probe), free(dx), free(dw), free(db);
    rf_tensor *all[] = {&tx, &tw, &tdy, &tdx, &tdw, &tdb};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) rf_tensor_free(all[i]);
    rf_device_close(cpu);
}

static void compare_rows(rf_device *cpu, rf_device *cl, int64_t rows, uint64_t seed) {
    size_t nx = (size_t)rows * IN, ny = (size_t)rows * OUT;
    float *x = th_random(nx, seed, 1.0f), *w = th_random(OUT * IN, seed + 1, 0.5f), *b = th_random(OUT, seed + 2, 1.0f),
          *dy = th_random(ny, seed + 3, 1.0f);
    rf_device *devs[2] = {cpu, cl};
    float *out[2][4];
    for (int k = 0; k < 2; k++) {
        rf_device *dev = devs[k];
        rf_tensor tx = TH_TENSOR(dev, RF_F32, x, rows, IN), tw = TH_TENSOR(dev, RF_F32, w, OUT, IN),
                  tb = TH_TENSOR(dev, RF_F32, b, OUT), tdy = TH_TENSOR(dev, RF_F32, dy, rows, OUT);
        th_guarded y = th_guarded_alloc(dev, RF_F32, 2, (int64_t[]){rows, OUT}),
                   dx = th_guarded_alloc(dev, RF_F32, 2, (int64_t[]){rows, IN}),
                   dw = th_guarded_alloc(dev, RF_F32, 2, (int64_t[]){OUT, IN}),
                   db = th_guarded_alloc(dev, RF_F32, 1, (int64_t[]){OUT});
        TH_OK(rf_tensor_fill_f32(&dw.t, 0.25f));
        TH_OK(rf_tensor_fill_f32(&db.t, 0.25f));
        TH_OK(rf_linear_forward(&y.t, &tx, &tw, &tb));
        TH_OK(rf_linear_backward(&dx.t, &dw.t, &db.t, &tdy, &tx, &tw));
        th_guarded *gs[4] = {&y, &dx, &dw, &db};
        for (int i = 0; i < 4; i++) {
            th_guard_check(gs[i], "linear output");
            out[k][i] = th_download_f32(&gs[i]->t);
            th_guarded_free(gs[i]);
        }
        rf_tensor_free(&tx), rf_tensor_free(&tw), rf_tensor_free(&tb), rf_tensor_free(&tdy);
    }
    th_assert_close(out[1][0], out[0][0], ny, 1e-4, "linear y opencl vs cpu");
    th_assert_close_grad(out[1][1], out[0][1], nx, 1e-3, "linear dx opencl vs cpu");
    th_assert_close_grad(out[1][2], out[0][2], OUT * IN, 1e-3, "linear dW opencl vs cpu");
    th_assert_close_grad(out[1][3], out[0][3], OUT, 1e-3, "linear db opencl vs cpu");
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 4; i++) free(out[k][i]);
    free(x), free(w), free(b), free(dy);
}

static void opencl_matches_cpu(void **state) {
    rf_device *cl;
    TH_CL_OR_SKIP(cl);
    rf_device *cpu = th_cpu();
    /* Both kernel shapes of bias_grad (linear.c); OUT = 29 columns: 3 steps of
     * 8 lanes and a scalar tail in the CPU shape. */
    for (int sh = 0; sh < 2; sh++) {
        setenv("RF_CL_ATTN", TH_CL_SHAPES[sh], 1);
        compare_rows(cpu, cl, 300, 11);
        compare_rows(cpu, cl, 1, 21);
        compare_rows(cpu, cl, 4099, 31); /* many rows, not a multiple of bias_grad's row slices or blocks */
    }
    unsetenv("RF_CL_ATTN");
    rf_device_close(cl);
    rf_device_close(cpu);
}

/* rf_linear_accumulate: y += alpha·(x·Wᵀ + b) on each device, against
 * naive loops in double from the same starting y, with and without a bias
 * and for alphas that add, subtract and scale. */
static void accumulate_adds_into_y(void **state) {
    rf_device *devs[2] = {th_cpu(), th_cl()};
    enum { ROWS = 67 };
    const float alphas[] = {1.0f, -1.0f, 0.5f};
    float *x = th_random(ROWS * IN, 41, 1.0f), *w = th_random(OUT * IN, 42, 0.5f), *b = th_random(OUT, 43, 1.0f),
          *y0 = th_random(ROWS * OUT, 44, 2.0f), *want = malloc(sizeof(float) * ROWS * OUT);
    for (int k = 0; k < 2 && devs[k]; k++)
        for (int bias = 0; bias < 2; bias++)
            for (size_t a = 0; a < sizeof alphas / sizeof alphas[0]; a++) {
                for (int r = 0; r < ROWS; r++)
                    for (int o = 0; o < OUT; o++) {
                        double p = bias ? b[o] : 0.0;
                        for (int i = 0; i < IN; i++) p += (double)x[r * IN + i] * w[o * IN + i];
                        want[r * OUT + o] = (float)(y0[r * OUT + o] + alphas[a] * p);
                    }
                rf_device *dev = devs[k];
                rf_tensor tx = TH_TENSOR(dev, RF_F32, x, ROWS, IN), tw = TH_TENSOR(dev, RF_F32, w, OUT, IN),
                          tb = TH_TENSOR(dev, RF_F32, b, OUT), ty = TH_TENSOR(dev, RF_F32, y0, ROWS, OUT);
                TH_OK(rf_linear_accumulate(&ty, &tx, &tw, bias ? &tb : NULL, alphas[a]));
                float *y = th_download_f32(&ty);
                th_assert_close(y, want, ROWS * OUT, 1e-5, k ? "linear accumulate opencl" : "linear accumulate cpu");
                free(y);
                rf_tensor_free(&tx), rf_tensor_free(&tw), rf_tensor_free(&tb), rf_tensor_free(&ty);
            }
    free(x), free(w), free(b), free(y0), free(want);
    for (int k = 0; k < 2; k++)
        if (devs[k]) rf_device_close(devs[k]);
}

static void rejects_bad_arguments(void **state) {
    rf_device *cpu = th_cpu();
    rf_tensor x = TH_TENSOR(cpu, RF_F32, NULL, 4, 8), w = TH_TENSOR(cpu, RF_F32, NULL, 5, 8),
              w9 = TH_TENSOR(cpu, RF_F32, NULL, 5, 9), y = TH_TENSOR(cpu, RF_F32, NULL, 4, 5),
              y6 = TH_TENSOR(cpu, RF_F32, NULL, 4, 6), b = TH_TENSOR(cpu, RF_F32, NULL, 5),
              b6 = TH_TENSOR(cpu, RF_F32, NULL, 6);
    TH_FAILS(rf_linear_forward(&y, &x, &w9, &b), RF_ERR_INVALID_ARG, "x has shape [4, 8], expected [4, 9]");
    TH_FAILS(rf_linear_forward(&y6, &x, &w, &b), RF_ERR_INVALID_ARG, "y has shape [4, 6], expected [4, 5]");
    TH_FAILS(rf_linear_forward(&y, &x, &w, &b6), RF_ERR_INVALID_ARG, "b has shape [6], expected [5]");
    TH_FAILS(rf_linear_forward(&y, &x, NULL, &b), RF_ERR_INVALID_ARG, "w is NULL");
    TH_FAILS(rf_linear_forward(&y, NULL, &w, &b), RF_ERR_INVALID_ARG, "x is NULL");
    TH_FAILS(rf_linear_backward(&x, &w9, NULL, &y, &x, &w), RF_ERR_INVALID_ARG, "dw has shape [5, 9], expected [5, 8]");
    TH_FAILS(rf_linear_backward(&y, NULL, NULL, &y, &x, &w), RF_ERR_INVALID_ARG, "dx has shape [4, 5]");
    TH_FAILS(rf_linear_accumulate(&y, &x, &w, &b, NAN), RF_ERR_INVALID_ARG, "alpha nan is not finite");
    TH_FAILS(rf_linear_accumulate(&y6, &x, &w, NULL, 1.0f), RF_ERR_INVALID_ARG, "y has shape [4, 6], expected [4, 5]");
    TH_FAILS(rf_linear_accumulate(&y, &x, &w, &b6, -1.0f), RF_ERR_INVALID_ARG, "b has shape [6], expected [5]");
    rf_tensor *all[] = {&x, &w, &w9, &y, &y6, &b, &b6};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) rf_tensor_free(all[i]);
    rf_device_close(cpu);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cpu_forward_matches_naive),
        cmocka_unit_test(cpu_backward_matches_finite_differences),
        cmocka_unit_test(opencl_matches_cpu),
        cmocka_unit_test(accumulate_adds_into_y),
        cmocka_unit_test(rejects_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
