/* LayerNorm (§7, §9): cpu forward against a naive double computation, cpu
 * backward against central finite differences, OpenCL forward and backward
 * against the cpu with sentinels (odd widths, d = 1, a single row, many rows),
 * argument checks. */
#include "harness.h"
#include <math.h>
#include <stdlib.h>

/* Naive LayerNorm of one row in double. */
static void naive_row(double *y, double *mu_out, double *rs_out, const double *x, const double *g, const double *b,
                      int d, double eps) {
    double mu = 0, var = 0;
    for (int i = 0; i < d; i++) mu += x[i];
    mu /= d;
    for (int i = 0; i < d; i++) var += (x[i] - mu) * (x[i] - mu);
    double rs = 1.0 / sqrt(var / d + eps);
    for (int i = 0; i < d; i++) y[i] = (x[i] - mu) * rs * g[i] + b[i];
    if (mu_out) *mu_out = mu;
    if (rs_out) *rs_out = rs;
}

/* Σ w·LN(x) over all rows, in double: the scalar the finite differences probe. */
static double probe_loss(const double *x, const double *g, const double *b, const float *w, int rows, int d,
                         double eps) {
    double *y = malloc(sizeof(double) * (size_t)d), s = 0;
    for (int r = 0; r < rows; r++) {
        naive_row(y, NULL, NULL, x + r * d, g, b, d, eps);
        for (int i = 0; i < d; i++) s += w[r * d + i] * y[i];
    }
    free(y);
    return s;
}

static void cpu_forward_matches_naive(void **state) {
    rf_device *cpu = th_cpu();
    int rows = 6, d = 37;
    size_t n = (size_t)rows * d;
    float *x = th_random(n, 1, 3.0f), *g = th_random(d, 2, 1.0f), *b = th_random(d, 3, 1.0f);
    for (size_t i = 0; i < n; i++) x[i] += 5.0f; /* an offset: the centring matters */
    float *want = malloc(n * sizeof *want), want_mu[6], want_rs[6];
    double xd[37], gd[37], bd[37], yd[37];
    for (int i = 0; i < d; i++) gd[i] = g[i], bd[i] = b[i];
    for (int r = 0; r < rows; r++) {
        double mu, rs;
        for (int i = 0; i < d; i++) xd[i] = x[r * d + i];
        naive_row(yd, &mu, &rs, xd, gd, bd, d, 1e-12);
        for (int i = 0; i < d; i++) want[r * d + i] = (float)yd[i];
        want_mu[r] = (float)mu, want_rs[r] = (float)rs;
    }
    rf_tensor tx = TH_TENSOR(cpu, RF_F32, x, 2, 3, 37), tg = TH_TENSOR(cpu, RF_F32, g, 37),
              tb = TH_TENSOR(cpu, RF_F32, b, 37), ty = TH_TENSOR(cpu, RF_F32, NULL, 2, 3, 37),
              tmu = TH_TENSOR(cpu, RF_F32, NULL, 2, 3), trs = TH_TENSOR(cpu, RF_F32, NULL, 6);
    TH_OK(rf_layer_norm_forward(&ty, &tmu, &trs, &tx, &tg, &tb, 1e-12f));
    float *y = th_download_f32(&ty), *mu = th_download_f32(&tmu), *rs = th_download_f32(&trs);
    th_assert_close(y, want, n, 1e-5, "layer norm cpu y");
    th_assert_close(mu, want_mu, 6, 1e-6, "layer norm cpu mean");
    for (int r = 0; r < rows; r++) assert_true(fabs(rs[r] - want_rs[r]) <= 1e-5 * want_rs[r]);
    free(x), free(g), free(b), free(want), free(y), free(mu), free(rs);
    rf_tensor_free(&tx), rf_tensor_free(&tg), rf_tensor_free(&tb), rf_tensor_free(&ty), rf_tensor_free(&tmu),
        rf_tensor_free(&trs);
    rf_device_close(cpu);
}

static void cpu_backward_matches_finite_differences(void **state) {
    rf_device *cpu = th_cpu();
    enum { ROWS = 3, D = 7 };
    size_t n = ROWS * D;
    double eps = 1e-5; /* a visible eps: its term is in the gradient too */
    float *x = th_random(n, 4, 2.0f), *g = th_random(D, 5, 1.5f), *b = th_random(D, 6, 1.0f),
          *w = th_random(n, 7, 1.0f);
    rf_tensor tx = TH_TENSOR(cpu, RF_F32, x, ROWS, D), tg = TH_TENSOR(cpu, RF_F32, g, D),
              tb = TH_TENSOR(cpu, RF_F32, b, D), ty = TH_TENSOR(cpu, RF_F32, NULL, ROWS, D),
              tmu = TH_TENSOR(cpu, RF_F32, NULL, ROWS), trs = TH_TENSOR(cpu, RF_F32, NULL, ROWS),
              tdy = TH_TENSOR(cpu, RF_F32, w, ROWS, D), tdx = TH_TENSOR(cpu, RF_F32, NULL, ROWS, D),
              tdg = TH_TENSOR(cpu, RF_F32, NULL, D), tdb = TH_TENSOR(cpu, RF_F32, NULL, D);
    TH_OK(rf_tensor_fill_f32(&tdg, 1.0f)); /* parameter gradients accumulate (§1) */
    TH_OK(rf_tensor_fill_f32(&tdb, 1.0f));
    TH_OK(rf_layer_norm_forward(&ty, &tmu, &trs, &tx, &tg, &tb, (float)eps));
    TH_OK(rf_layer_norm_backward(&tdx, &tdg, &tdb, &tdy, &tx, &tg, &tmu, &trs));
    float *dx = th_download_f32(&tdx), *dg = th_download_f32(&tdg), *db = th_download_f32(&tdb);
    double xd[ROWS * D], gd[D], bd[D], h = 1e-4;
    for (size_t i = 0; i < n; i++) xd[i] = x[i];
    for (int i = 0; i < D; i++) gd[i] = g[i], bd[i] = b[i];
    float fx[ROWS * D], fg[D], fb[D];
    for (size_t i = 0; i < n; i++) {
        double keep = xd[i];
        xd[i] = keep + h;
        double up = probe_loss(xd, gd, bd, w, ROWS, D, eps);
        xd[i] = keep - h;
        fx[i] = (float)((up - probe_loss(xd, gd, bd, w, ROWS, D, eps)) / (2 * h));
        xd[i] = keep;
    }
    for (int i = 0; i < D; i++) {
        double keep = gd[i];
        gd[i] = keep + h;
        double up = probe_loss(xd, gd, bd, w, ROWS, D, eps);
        gd[i] = keep - h;
        fg[i] = 1.0f + (float)((up - probe_loss(xd, gd, bd, w, ROWS, D, eps)) / (2 * h));
        gd[i] = keep;
        keep = bd[i];
        bd[i] = keep + h;
        up = probe_loss(xd, gd, bd, w, ROWS, D, eps);
        bd[i] = keep - h;
        fb[i] = 1.0f + (float)((up - probe_loss(xd, gd, bd, w, ROWS, D, eps)) / (2 * h));
        bd[i] = keep;
    }
    th_assert_fd(dx, fx, n, 1e-2, "layer norm dx vs finite differences");
    th_assert_fd(dg, fg, D, 1e-2, "layer norm dgamma vs finite differences");
    th_assert_fd(db, fb, D, 1e-2, "layer norm dbeta vs finite differences");
    free(x), free(g), free(b), free(w), free(dx), free(dg), free(db);
    rf_tensor *all[] = {&tx, &tg, &tb, &ty, &tmu, &trs, &tdy, &tdx, &tdg, &tdb};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) rf_tensor_free(all[i]);
    rf_device_close(cpu);
}

/* One shape on both devices: forward (y, mean, rstd) and backward (dx,
 * dgamma, dbeta) compared with §10 tolerances, every output guarded. */
static void compare_shape(rf_device *cpu, rf_device *cl, int64_t rows, int64_t d, uint64_t seed) {
    size_t n = (size_t)(rows * d);
    float *x = th_random(n, seed, 2.0f), *g = th_random((size_t)d, seed + 1, 1.0f),
          *b = th_random((size_t)d, seed + 2, 1.0f), *dy = th_random(n, seed + 3, 1.0f);
    rf_device *devs[2] = {cpu, cl};
    float *out[2][6];
    for (int k = 0; k < 2; k++) {
        rf_device *dev = devs[k];
        rf_tensor tx = TH_TENSOR(dev, RF_F32, x, rows, d), tg = TH_TENSOR(dev, RF_F32, g, d),
                  tb = TH_TENSOR(dev, RF_F32, b, d), tdy = TH_TENSOR(dev, RF_F32, dy, rows, d);
        th_guarded y = th_guarded_alloc(dev, RF_F32, 2, (int64_t[]){rows, d}),
                   mu = th_guarded_alloc(dev, RF_F32, 1, (int64_t[]){rows}),
                   rs = th_guarded_alloc(dev, RF_F32, 1, (int64_t[]){rows}),
                   dx = th_guarded_alloc(dev, RF_F32, 2, (int64_t[]){rows, d}),
                   dg = th_guarded_alloc(dev, RF_F32, 1, (int64_t[]){d}),
                   db = th_guarded_alloc(dev, RF_F32, 1, (int64_t[]){d});
        TH_OK(rf_tensor_fill_f32(&dg.t, 0.5f));
        TH_OK(rf_tensor_fill_f32(&db.t, -0.5f));
        TH_OK(rf_layer_norm_forward(&y.t, &mu.t, &rs.t, &tx, &tg, &tb, 1e-12f));
        TH_OK(rf_layer_norm_backward(&dx.t, &dg.t, &db.t, &tdy, &tx, &tg, &mu.t, &rs.t));
        /* In place (dx aliases dy): the same dx and parameter gradients. */
        rf_tensor dg2 = TH_TENSOR(dev, RF_F32, NULL, d);
        TH_OK(rf_tensor_fill_f32(&dg2, 0.5f));
        TH_OK(rf_layer_norm_backward(&tdy, &dg2, NULL, &tdy, &tx, &tg, &mu.t, &rs.t));
        float *inplace = th_download_f32(&tdy), *dx_ref = th_download_f32(&dx.t), *dg2v = th_download_f32(&dg2),
              *dg_ref = th_download_f32(&dg.t);
        th_assert_close(inplace, dx_ref, n, 1e-6, "layer norm backward in place: dx");
        th_assert_close(dg2v, dg_ref, (size_t)d, 1e-6, "layer norm backward in place: dgamma");
        free(inplace), free(dx_ref), free(dg2v), free(dg_ref);
        rf_tensor_free(&dg2);
        th_guarded *gs[6] = {&y, &mu, &rs, &dx, &dg, &db};
        for (int i = 0; i < 6; i++) {
            th_guard_check(gs[i], "layer norm output");
            out[k][i] = th_download_f32(&gs[i]->t);
            th_guarded_free(gs[i]);
        }
        rf_tensor_free(&tx), rf_tensor_free(&tg), rf_tensor_free(&tb), rf_tensor_free(&tdy);
    }
    th_assert_close(out[1][0], out[0][0], n, 1e-5, "layer norm y opencl vs cpu");
    th_assert_close(out[1][1], out[0][1], (size_t)rows, 1e-5, "layer norm mean opencl vs cpu");
    /* rstd can be large (1/σ): compare relative to its size. */
    for (int64_t r = 0; r < rows; r++) assert_true(fabs(out[1][2][r] - out[0][2][r]) <= 1e-5 * fabs(out[0][2][r]));
    th_assert_close_grad(out[1][3], out[0][3], n, 1e-3, "layer norm dx opencl vs cpu");
    th_assert_close_grad(out[1][4], out[0][4], (size_t)d, 1e-3, "layer norm dgamma opencl vs cpu");
    th_assert_close_grad(out[1][5], out[0][5], (size_t)d, 1e-3, "layer norm dbeta opencl vs cpu");
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 6; i++) free(out[k][i]);
    free(x), free(g), free(b), free(dy);
}

/* d = 1: each row is its own mean, so y = beta, dx = 0 and dgamma gains
 * nothing; one lane per row, and most of the group's rows lie past the end
 * (their lanes only reach the barriers). */
static void single_column(rf_device *cl) {
    enum { ROWS = 5 };
    float x[ROWS] = {3, -1, 0.5f, 7, -2}, dy[ROWS] = {1, 2, -3, 0.5f, 4}, g = 1.5f, b = -0.25f;
    rf_tensor tx = TH_TENSOR(cl, RF_F32, x, ROWS, 1), tdy = TH_TENSOR(cl, RF_F32, dy, ROWS, 1),
              tg = TH_TENSOR(cl, RF_F32, &g, 1), tb = TH_TENSOR(cl, RF_F32, &b, 1),
              ty = TH_TENSOR(cl, RF_F32, NULL, ROWS, 1), tmu = TH_TENSOR(cl, RF_F32, NULL, ROWS),
              trs = TH_TENSOR(cl, RF_F32, NULL, ROWS), tdx = TH_TENSOR(cl, RF_F32, NULL, ROWS, 1),
              tdg = TH_TENSOR(cl, RF_F32, NULL, 1), tdb = TH_TENSOR(cl, RF_F32, NULL, 1);
    TH_OK(rf_tensor_fill_f32(&tdg, 0.5f));
    TH_OK(rf_tensor_fill_f32(&tdb, 0.5f));
    TH_OK(rf_layer_norm_forward(&ty, &tmu, &trs, &tx, &tg, &tb, 1e-6f));
    TH_OK(rf_layer_norm_backward(&tdx, &tdg, &tdb, &tdy, &tx, &tg, &tmu, &trs));
    float *y = th_download_f32(&ty), *mu = th_download_f32(&tmu), *dx = th_download_f32(&tdx),
          *dg = th_download_f32(&tdg), *db = th_download_f32(&tdb);
    for (int r = 0; r < ROWS; r++) {
        assert_true(y[r] == b);
        assert_true(mu[r] == x[r]);
        assert_true(dx[r] == 0.0f);
    }
    assert_true(dg[0] == 0.5f);
    assert_true(fabsf(db[0] - (0.5f + 4.5f)) <= 1e-6f);
    free(y), free(mu), free(dx), free(dg), free(db);
    rf_tensor *ts[] = {&tx, &tdy, &tg, &tb, &ty, &tmu, &trs, &tdx, &tdg, &tdb};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) rf_tensor_free(ts[i]);
}

static void opencl_single_column(void **state) {
    rf_device *cl;
    TH_CL_OR_SKIP(cl);
    for (int sh = 0; sh < 2; sh++) {
        setenv("RF_CL_ATTN", TH_CL_SHAPES[sh], 1);
        single_column(cl);
    }
    unsetenv("RF_CL_ATTN");
    rf_device_close(cl);
}

static void opencl_matches_cpu(void **state) {
    rf_device *cl;
    TH_CL_OR_SKIP(cl);
    rf_device *cpu = th_cpu();
    for (int sh = 0; sh < 2; sh++) { /* both kernel shapes (norm.c) */
        setenv("RF_CL_ATTN", TH_CL_SHAPES[sh], 1);
        compare_shape(cpu, cl, 10, 300, 11); /* D above and not a multiple of the group size, nor of 8 */
        compare_shape(cpu, cl, 1, 7, 21);    /* a single, narrow row: the CPU shape's scalar tail only */
        compare_shape(cpu, cl, 33, 64, 31);  /* 8-lane steps only; a second block of rows */
        compare_shape(cpu, cl, 3, 3, 45);     /* a lane with no element (lanes round d up to a power of two) */
        compare_shape(cpu, cl, 1000, 24, 51); /* many rows, not a multiple of the rows per group or block */
        compare_shape(cpu, cl, 70, 256, 61);  /* the benchmark model's width */
    }
    unsetenv("RF_CL_ATTN");
    rf_device_close(cl);
    rf_device_close(cpu);
}

static void rejects_bad_arguments(void **state) {
    rf_device *cpu = th_cpu();
    rf_tensor x = TH_TENSOR(cpu, RF_F32, NULL, 4, 8), y = TH_TENSOR(cpu, RF_F32, NULL, 4, 8),
              g = TH_TENSOR(cpu, RF_F32, NULL, 8), g9 = TH_TENSOR(cpu, RF_F32, NULL, 9),
              y2 = TH_TENSOR(cpu, RF_F32, NULL, 8, 4), s3 = TH_TENSOR(cpu, RF_F32, NULL, 3);
    TH_FAILS(rf_layer_norm_forward(&y, NULL, NULL, &x, &g9, &g, 1e-12f), RF_ERR_INVALID_ARG, "gamma has shape [9]");
    TH_FAILS(rf_layer_norm_forward(&y2, NULL, NULL, &x, &g, &g, 1e-12f), RF_ERR_INVALID_ARG, "y has shape [8, 4]");
    TH_FAILS(rf_layer_norm_forward(&y, &s3, NULL, &x, &g, &g, 1e-12f), RF_ERR_INVALID_ARG, "mean has shape [3]");
    TH_FAILS(rf_layer_norm_forward(&y, NULL, NULL, &x, &g, &g, 0.0f), RF_ERR_INVALID_ARG, "eps = 0");
    TH_FAILS(rf_layer_norm_forward(&y, NULL, NULL, &x, &g, &g, -1e-5f), RF_ERR_INVALID_ARG, "must be positive");
    TH_FAILS(rf_layer_norm_forward(&y, NULL, NULL, NULL, &g, &g, 1e-12f), RF_ERR_INVALID_ARG, "x is NULL");
    TH_FAILS(rf_layer_norm_forward(NULL, NULL, NULL, &x, &g, &g, 1e-12f), RF_ERR_INVALID_ARG, "y is NULL");
    TH_FAILS(rf_layer_norm_backward(&y, NULL, NULL, &y, &x, &g, NULL, &s3), RF_ERR_INVALID_ARG, "mean is NULL");
    TH_FAILS(rf_layer_norm_backward(&y, &g9, NULL, &y, &x, &g, &s3, &s3), RF_ERR_INVALID_ARG, "dgamma has shape [9]");
    rf_tensor *all[] = {&x, &y, &g, &g9, &y2, &s3};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) rf_tensor_free(all[i]);
    rf_device_close(cpu);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cpu_forward_matches_naive),
        cmocka_unit_test(cpu_backward_matches_finite_differences),
        cmocka_unit_test(opencl_matches_cpu),
        cmocka_unit_test(opencl_single_column),
        cmocka_unit_test(rejects_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
