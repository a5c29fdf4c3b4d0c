/* The optimiser (§9): AdamW on the cpu against the torch.optim.AdamW
 * formulas over several steps, OpenCL against the cpu with sentinels, the
 * sum of squares (cpu vs double, OpenCL vs cpu, non-finite values show), and
 * argument checks. */
#include "harness.h"
#include <math.h>
#include <stdlib.h>

static const rf_adam_config CFG = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                                   .weight_decay = 0.1f, .grad_scale = 0.5f};

/* torch.optim.AdamW, step t, in double. */
static void naive_adam(double *p, double *m, double *v, const float *g, size_t n, const rf_adam_config *c, int t) {
    for (size_t i = 0; i < n; i++) {
        double gi = c->grad_scale * (double)g[i];
        p[i] *= 1.0 - (double)c->lr * c->weight_decay;
        m[i] = c->beta1 * m[i] + (1 - (double)c->beta1) * gi;
        v[i] = c->beta2 * v[i] + (1 - (double)c->beta2) * gi * gi;
        double mh = m[i] / (1 - pow(c->beta1, t)), vh = v[i] / (1 - pow(c->beta2, t));
        p[i] -= c->lr * mh / (sqrt(vh) + c->eps);
    }
}

static void cpu_adam_matches_formula(void **state) {
    rf_device *cpu = th_cpu();
    enum { N = 50 };
    float *p0 = th_random(N, 1, 1.0f);
    double p[N], m[N] = {0}, v[N] = {0};
    for (int i = 0; i < N; i++) p[i] = p0[i];
    rf_tensor tp = TH_TENSOR(cpu, RF_F32, p0, 5, 10), tm = TH_TENSOR(cpu, RF_F32, NULL, 50),
              tv = TH_TENSOR(cpu, RF_F32, NULL, 50);
    TH_OK(rf_tensor_fill_f32(&tm, 0.0f));
    TH_OK(rf_tensor_fill_f32(&tv, 0.0f));
    for (int t = 1; t <= 3; t++) {
        float *g = th_random(N, 10 + (uint64_t)t, 2.0f);
        rf_tensor tg = TH_TENSOR(cpu, RF_F32, g, 50);
        TH_OK(rf_adam_update(&tp, &tm, &tv, &tg, &CFG, t));
        naive_adam(p, m, v, g, N, &CFG, t);
        free(g);
        rf_tensor_free(&tg);
    }
    float want[N], *got = th_download_f32(&tp);
    for (int i = 0; i < N; i++) want[i] = (float)p[i];
    th_assert_close(got, want, N, 1e-6, "adamw cpu after 3 steps");
    free(got);
    /* Step 1 without decay moves every parameter by lr·sign(g) (m̂/√v̂ = ±1). */
    float one = 1.0f, gv = -3.0f, zero = 0.0f;
    rf_tensor q = TH_TENSOR(cpu, RF_F32, &one, 1), qm = TH_TENSOR(cpu, RF_F32, &zero, 1),
              qv = TH_TENSOR(cpu, RF_F32, &zero, 1), qg = TH_TENSOR(cpu, RF_F32, &gv, 1);
    rf_adam_config plain = {.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .grad_scale = 1.0f};
    TH_OK(rf_adam_update(&q, &qm, &qv, &qg, &plain, 1));
    float *qp = th_download_f32(&q);
    assert_true(fabs(qp[0] - 1.1f) < 1e-6);
    free(qp), free(p0);
    rf_tensor_free(&tp), rf_tensor_free(&tm), rf_tensor_free(&tv);
    rf_tensor_free(&q), rf_tensor_free(&qm), rf_tensor_free(&qv), rf_tensor_free(&qg);
    rf_device_close(cpu);
}

static void opencl_adam_matches_cpu(void **state) {
    rf_device *cl;
    TH_CL_OR_SKIP(cl);
    rf_device *cpu = th_cpu();
    size_t n = 1037;
    float *p = th_random(n, 2, 1.0f), *m = th_random(n, 3, 0.1f), *v = th_random(n, 4, 0.01f);
    for (size_t i = 0; i < n; i++) v[i] = fabsf(v[i]);
    rf_device *devs[2] = {cpu, cl};
    float *res[2][3];
    for (int k = 0; k < 2; k++) {
        rf_device *dev = devs[k];
        th_guarded gp = th_guarded_alloc(dev, RF_F32, 1, (int64_t[]){1037}),
                   gm = th_guarded_alloc(dev, RF_F32, 1, (int64_t[]){1037}),
                   gv = th_guarded_alloc(dev, RF_F32, 1, (int64_t[]){1037});
        TH_OK(rf_tensor_upload(&gp.t, p, n * 4));
        TH_OK(rf_tensor_upload(&gm.t, m, n * 4));
        TH_OK(rf_tensor_upload(&gv.t, v, n * 4));
        for (int t = 1; t <= 3; t++) {
            float *g = th_random(n, 20 + (uint64_t)t, 1.0f);
            rf_tensor tg = TH_TENSOR(dev, RF_F32, g, 1037);
            TH_OK(rf_adam_update(&gp.t, &gm.t, &gv.t, &tg, &CFG, 1000 + t));
            free(g);
            rf_tensor_free(&tg);
        }
        th_guarded *gs[3] = {&gp, &gm, &gv};
        for (int i = 0; i < 3; i++) {
            th_guard_check(gs[i], "adam output");
            res[k][i] = th_download_f32(&gs[i]->t);
            th_guarded_free(gs[i]);
        }
    }
    th_assert_close(res[1][0], res[0][0], n, 1e-5, "adam param opencl vs cpu");
    th_assert_close(res[1][1], res[0][1], n, 1e-5, "adam m opencl vs cpu");
    th_assert_close(res[1][2], res[0][2], n, 1e-5, "adam v opencl vs cpu");
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 3; i++) free(res[k][i]);
    free(p), free(m), free(v);
    rf_device_close(cl);
    rf_device_close(cpu);
}

static void sum_squares_matches_double_on_both_devices(void **state) {
    rf_device *cpu = th_cpu(), *cl = th_cl();
    size_t n = 100003;
    float *x = th_random(n, 5, 3.0f);
    double want = 0;
    for (size_t i = 0; i < n; i++) want += (double)x[i] * x[i];
    rf_device *devs[2] = {cpu, cl};
    for (int k = 0; k < 2 && devs[k]; k++) {
        rf_tensor tx = TH_TENSOR(devs[k], RF_F32, x, 100003);
        th_guarded out = th_guarded_alloc(devs[k], RF_F32, 1, (int64_t[]){1});
        TH_OK(rf_sum_squares(&out.t, &tx));
        th_guard_check(&out, "sum of squares");
        float *got = th_download_f32(&out.t);
        if (fabs(got[0] - want) > 1e-5 * want)
            fail_msg("sum of squares on %s: %.9g, double sum %.9g", k ? "opencl" : "cpu", got[0], want);
        free(got);
        /* A non-finite gradient makes the norm non-finite (the training step's check). */
        float bad = NAN;
        TH_OK(rf_buffer_upload(tx.buf, 4 * 777, &bad, 4));
        TH_OK(rf_sum_squares(&out.t, &tx));
        got = th_download_f32(&out.t);
        assert_false(isfinite(got[0]));
        free(got);
        rf_tensor_free(&tx);
        th_guarded_free(&out);
    }
    free(x);
    if (cl) rf_device_close(cl);
    rf_device_close(cpu);
}

static void rejects_bad_arguments(void **state) {
    rf_device *cpu = th_cpu();
    rf_tensor a = TH_TENSOR(cpu, RF_F32, NULL, 8), b = TH_TENSOR(cpu, RF_F32, NULL, 9),
              o2 = TH_TENSOR(cpu, RF_F32, NULL, 2), o1 = TH_TENSOR(cpu, RF_F32, NULL, 1);
    rf_adam_config c = CFG;
    TH_FAILS(rf_adam_update(&a, &a, &b, &a, &c, 1), RF_ERR_INVALID_ARG, "v has shape [9] (9 elements), expected 8");
    TH_FAILS(rf_adam_update(&a, &a, &a, &a, &c, 0), RF_ERR_INVALID_ARG, "step = 0 must be >= 1");
    TH_FAILS(rf_adam_update(&a, &a, &a, &a, NULL, 1), RF_ERR_INVALID_ARG, "cfg is NULL");
    TH_FAILS(rf_adam_update(&a, &a, &a, NULL, &c, 1), RF_ERR_INVALID_ARG, "grad is NULL");
    c.beta1 = 1.0f;
    TH_FAILS(rf_adam_update(&a, &a, &a, &a, &c, 1), RF_ERR_INVALID_ARG, "beta1 = 1 and beta2 = 0.999 must lie in [0, 1)");
    c = CFG, c.eps = 0.0f;
    TH_FAILS(rf_adam_update(&a, &a, &a, &a, &c, 1), RF_ERR_INVALID_ARG, "eps = 0 must be positive");
    c = CFG, c.lr = NAN;
    TH_FAILS(rf_adam_update(&a, &a, &a, &a, &c, 1), RF_ERR_INVALID_ARG, "lr = nan");
    TH_FAILS(rf_sum_squares(&o2, &a), RF_ERR_INVALID_ARG, "out has shape [2] (2 elements), expected 1");
    TH_FAILS(rf_sum_squares(&o1, NULL), RF_ERR_INVALID_ARG, "x is NULL");
    rf_tensor_free(&a), rf_tensor_free(&b), rf_tensor_free(&o2), rf_tensor_free(&o1);
    rf_device_close(cpu);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cpu_adam_matches_formula),
        cmocka_unit_test(opencl_adam_matches_cpu),
        cmocka_unit_test(sum_squares_matches_double_on_both_devices),
        cmocka_unit_test(rejects_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
