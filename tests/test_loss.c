/* Cross-entropy with ignore index (§9): cpu forward against a naive double
 * computation, cpu backward against central finite differences, OpenCL
 * against the cpu with sentinels, the all-ignored case, argument checks. */
#include "harness.h"
#include <math.h>
#include <stdlib.h>

/* Mean over targets ≥ 0 of logsumexp(row) − row[target], in double. */
static double naive_loss(const double *x, const int32_t *t, int rows, int v) {
    double total = 0;
    int counted = 0;
    for (int r = 0; r < rows; r++) {
        if (t[r] < 0) continue;
        double m = x[r * v], s = 0;
        for (int j = 1; j < v; j++) m = fmax(m, x[r * v + j]);
        for (int j = 0; j < v; j++) s += exp(x[r * v + j] - m);
        total += m + log(s) - x[r * v + t[r]];
        counted++;
    }
    return counted ? total / counted : 0;
}

enum { ROWS = 6, V = 9 };
static const int32_t targets[ROWS] = {3, 0, -1, 8, 8, -1};

static void cpu_forward_matches_naive(void **state) {
    rf_device *cpu = th_cpu();
    float *x = th_random(ROWS * V, 1, 4.0f);
    x[5] = 80.0f; /* a large logit: the max shift keeps exp finite */
    double xd[ROWS * V];
    for (int i = 0; i < ROWS * V; i++) xd[i] = x[i];
    rf_tensor tx = TH_TENSOR(cpu, RF_F32, x, 2, 3, V), tt = TH_TENSOR(cpu, RF_I32, targets, 2, 3),
              loss = TH_TENSOR(cpu, RF_F32, NULL, 1), lse = TH_TENSOR(cpu, RF_F32, NULL, 2, 3);
    TH_OK(rf_cross_entropy_forward(&loss, &lse, &tx, &tt));
    float *got = th_download_f32(&loss), *gl = th_download_f32(&lse);
    float want = (float)naive_loss(xd, targets, ROWS, V);
    th_assert_close(got, &want, 1, 1e-6, "cross-entropy cpu");
    for (int r = 0; r < ROWS; r++) {
        double m = xd[r * V], s = 0;
        for (int j = 1; j < V; j++) m = fmax(m, xd[r * V + j]);
        for (int j = 0; j < V; j++) s += exp(xd[r * V + j] - m);
        float wl = (float)(m + log(s));
        th_assert_close(&gl[r], &wl, 1, 1e-6, "logsumexp cpu");
    }
    /* Bits per token (§9). */
    assert_true(fabs(got[0] * RF_BITS_PER_NAT - got[0] / log(2.0)) < 1e-6);
    free(x), free(got), free(gl);
    rf_tensor_free(&tx), rf_tensor_free(&tt), rf_tensor_free(&loss), rf_tensor_free(&lse);
    rf_device_close(cpu);
}

static void cpu_backward_matches_finite_differences(void **state) {
    rf_device *cpu = th_cpu();
    float *x = th_random(ROWS * V, 2, 3.0f);
    rf_tensor tx = TH_TENSOR(cpu, RF_F32, x, ROWS, V), tt = TH_TENSOR(cpu, RF_I32, targets, ROWS),
              loss = TH_TENSOR(cpu, RF_F32, NULL, 1), lse = TH_TENSOR(cpu, RF_F32, NULL, ROWS),
              dx = TH_TENSOR(cpu, RF_F32, NULL, ROWS, V);
    TH_OK(rf_cross_entropy_forward(&loss, &lse, &tx, &tt));
    float dloss = 2.5f;
    TH_OK(rf_cross_entropy_backward(&dx, &tx, &lse, &tt, dloss));
    float *got = th_download_f32(&dx), fd[ROWS * V];
    double xd[ROWS * V], h = 1e-4;
    for (int i = 0; i < ROWS * V; i++) xd[i] = x[i];
    for (int i = 0; i < ROWS * V; i++) {
        double keep = xd[i];
        xd[i] = keep + h;
        double up = naive_loss(xd, targets, ROWS, V);
        xd[i] = keep - h;
        fd[i] = (float)(dloss * (up - naive_loss(xd, targets, ROWS, V)) / (2 * h));
        xd[i] = keep;
    }
    th_assert_fd(got, fd, ROWS * V, 1e-2, "cross-entropy gradient vs finite differences");
    for (int j = 0; j < V; j++) assert_true(got[2 * V + j] == 0.0f); /* ignored row */
    free(x), free(got);
    rf_tensor_free(&tx), rf_tensor_free(&tt), rf_tensor_free(&loss), rf_tensor_free(&lse), rf_tensor_free(&dx);
    rf_device_close(cpu);
}

static void compare_shape(rf_device *cpu, rf_device *cl, int64_t b, int64_t l, int64_t v, int all_ignored,
                          uint64_t seed) {
    size_t rows = (size_t)(b * l), n = rows * (size_t)v;
    float *x = th_random(n, seed, 6.0f);
    int32_t *t = malloc(rows * sizeof *t);
    for (size_t r = 0; r < rows; r++) t[r] = all_ignored || r % 5 == 4 ? -1 : (int32_t)((r * 31 + 7) % (size_t)v);
    rf_device *devs[2] = {cpu, cl};
    float *res[2][3];
    for (int k = 0; k < 2; k++) {
        rf_device *dev = devs[k];
        rf_tensor tx = TH_TENSOR(dev, RF_F32, x, b, l, v), tt = TH_TENSOR(dev, RF_I32, t, b, l);
        th_guarded loss = th_guarded_alloc(dev, RF_F32, 1, (int64_t[]){1}),
                   lse = th_guarded_alloc(dev, RF_F32, 2, (int64_t[]){b, l}),
                   dx = th_guarded_alloc(dev, RF_F32, 3, (int64_t[]){b, l, v});
        TH_OK(rf_cross_entropy_forward(&loss.t, &lse.t, &tx, &tt));
        TH_OK(rf_cross_entropy_backward(&dx.t, &tx, &lse.t, &tt, 1.0f));
        /* In place (dlogits aliases logits) gives the same gradient. */
        TH_OK(rf_cross_entropy_backward(&tx, &tx, &lse.t, &tt, 1.0f));
        float *inplace = th_download_f32(&tx), *sep = th_download_f32(&dx.t);
        th_assert_close(inplace, sep, n, 0, "cross-entropy backward in place");
        free(inplace), free(sep);
        th_guarded *gs[3] = {&loss, &lse, &dx};
        for (int i = 0; i < 3; i++) {
            th_guard_check(gs[i], "cross-entropy output");
            res[k][i] = th_download_f32(&gs[i]->t);
            th_guarded_free(gs[i]);
        }
        rf_tensor_free(&tx), rf_tensor_free(&tt);
    }
    th_assert_close(res[1][0], res[0][0], 1, 1e-5, "loss opencl vs cpu");
    th_assert_close(res[1][1], res[0][1], rows, 1e-5, "logsumexp opencl vs cpu");
    if (!all_ignored) th_assert_close_grad(res[1][2], res[0][2], n, 1e-3, "dlogits opencl vs cpu");
    if (all_ignored) { /* every gradient exactly zero on both */
        assert_true(res[1][0][0] == 0.0f);
        for (size_t i = 0; i < n; i++) assert_true(res[1][2][i] == 0.0f && res[0][2][i] == 0.0f);
    }
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 3; i++) free(res[k][i]);
    free(x), free(t);
}

static void opencl_matches_cpu(void **state) {
    rf_device *cl;
    TH_CL_OR_SKIP(cl);
    rf_device *cpu = th_cpu();
    for (int sh = 0; sh < 2; sh++) { /* both kernel shapes (loss.c) */
        setenv("RF_CL_ATTN", TH_CL_SHAPES[sh], 1);
        compare_shape(cpu, cl, 2, 37, 300, 0, 11); /* V above and not a multiple of the group size, nor of 8 */
        compare_shape(cpu, cl, 1, 1, 3, 0, 21);    /* one row, under 8 logits: the CPU shape's tail only */
        compare_shape(cpu, cl, 1, 4, 5, 1, 31);    /* nothing counted: loss 0, gradient 0 */
        compare_shape(cpu, cl, 3, 333, 7, 0, 41);  /* many rows, not a multiple of the rows per group */
        compare_shape(cpu, cl, 2, 64, 320, 0, 51); /* 8-lane steps only */
    }
    unsetenv("RF_CL_ATTN");
    rf_device_close(cl);
    rf_device_close(cpu);
}

static void rejects_bad_arguments(void **state) {
    rf_device *cpu = th_cpu();
    int32_t bad[4] = {0, 1, 7, 2}, neg[4] = {0, -3, 1, 1};
    rf_tensor x = TH_TENSOR(cpu, RF_F32, NULL, 1, 4, 7), tb = TH_TENSOR(cpu, RF_I32, bad, 1, 4),
              tn = TH_TENSOR(cpu, RF_I32, neg, 1, 4), loss = TH_TENSOR(cpu, RF_F32, NULL, 1),
              loss2 = TH_TENSOR(cpu, RF_F32, NULL, 2), lse = TH_TENSOR(cpu, RF_F32, NULL, 4),
              lse3 = TH_TENSOR(cpu, RF_F32, NULL, 3), dx = TH_TENSOR(cpu, RF_F32, NULL, 1, 4, 6);
    TH_OK(rf_tensor_fill_f32(&x, 0.0f));
    TH_FAILS(rf_cross_entropy_forward(&loss, &lse, &x, &tb), RF_ERR_INVALID_ARG, "targets[2] = 7 is outside [0, 7)");
    TH_FAILS(rf_cross_entropy_forward(&loss, &lse, &x, &tn), RF_ERR_INVALID_ARG, "targets[1] = -3 is outside [0, 7) and is not -1");
    TH_FAILS(rf_cross_entropy_forward(&loss2, &lse, &x, &tn), RF_ERR_INVALID_ARG, "loss has shape [2] (2 elements), expected 1");
    TH_FAILS(rf_cross_entropy_forward(&loss, &lse3, &x, &tn), RF_ERR_INVALID_ARG, "lse has shape [3]");
    TH_FAILS(rf_cross_entropy_forward(&loss, &lse, NULL, &tn), RF_ERR_INVALID_ARG, "logits is NULL");
    TH_FAILS(rf_cross_entropy_backward(&dx, &x, &lse, &tb, 1.0f), RF_ERR_INVALID_ARG, "dlogits has shape [1, 4, 6]");
    TH_FAILS(rf_cross_entropy_backward(&x, &x, &lse, &tb, NAN), RF_ERR_INVALID_ARG, "dloss = nan is not finite");
    rf_tensor *all[] = {&x, &tb, &tn, &loss, &loss2, &lse, &lse3, &dx};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) rf_tensor_free(all[i]);
    rf_device_close(cpu);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cpu_forward_matches_naive),
        cmocka_unit_test(cpu_backward_matches_finite_differences),
        cmocka_unit_test(opencl_matches_cpu),
        cmocka_unit_test(rejects_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
