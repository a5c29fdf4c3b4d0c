/* Embeddings (§9): word, axial position and plain position. cpu forward
 * against direct indexing, cpu backward against central finite differences
 * (the ops are linear, so the probe is exact up to rounding), OpenCL against
 * the cpu with sentinels, and argument checks (ids out of range, shapes). */
#include "harness.h"
#include <math.h>
#include <stdlib.h>

enum { B = 2, L = 11, D = 13, V = 17, S0 = 3, S1 = 4, D0 = 5, D1 = 8, P = 12 };

static void cpu_forward_matches_direct_indexing(void **state) {
    rf_device *cpu = th_cpu();
    int32_t ids[B * L];
    for (int t = 0; t < B * L; t++) ids[t] = (t * 7 + 3) % V;
    float *table = th_random(V * D, 1, 1.0f), *e0 = th_random(S0 * D0, 2, 1.0f), *e1 = th_random(S1 * D1, 3, 1.0f),
          *pos = th_random(P * D, 4, 1.0f);
    float want[B * L * D], want_ax[B * L * D], want_pos[B * L * D];
    for (int t = 0; t < B * L; t++)
        for (int c = 0; c < D; c++) {
            int p = t % L, i = p / S1, j = p % S1;
            want[t * D + c] = table[ids[t] * D + c];
            /* HF AxialPositionEmbeddings: E0 broadcast over axis 1, E1 over axis 0, concatenated. */
            want_ax[t * D + c] = want[t * D + c] + (c < D0 ? e0[i * D0 + c] : e1[j * D1 + c - D0]);
            want_pos[t * D + c] = want[t * D + c] + pos[p * D + c];
        }
    rf_tensor tids = TH_TENSOR(cpu, RF_I32, ids, B, L), ttab = TH_TENSOR(cpu, RF_F32, table, V, D),
              te0 = TH_TENSOR(cpu, RF_F32, e0, S0, D0), te1 = TH_TENSOR(cpu, RF_F32, e1, S1, D1),
              tpos = TH_TENSOR(cpu, RF_F32, pos, P, D), out = TH_TENSOR(cpu, RF_F32, NULL, B, L, D);
    TH_OK(rf_embedding_forward(&out, &tids, &ttab));
    float *got = th_download_f32(&out);
    th_assert_close(got, want, B * L * D, 0, "word embedding cpu");
    free(got);
    TH_OK(rf_axial_position_forward(&out, &te0, &te1));
    got = th_download_f32(&out);
    th_assert_close(got, want_ax, B * L * D, 1e-6, "axial position cpu");
    free(got);
    TH_OK(rf_embedding_forward(&out, &tids, &ttab));
    TH_OK(rf_position_embedding_forward(&out, &tpos));
    got = th_download_f32(&out);
    th_assert_close(got, want_pos, B * L * D, 1e-6, "plain position cpu");
    free(got), free(table), free(e0), free(e1), free(pos);
    rf_tensor *all[] = {&tids, &ttab, &te0, &te1, &tpos, &out};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) rf_tensor_free(all[i]);
    rf_device_close(cpu);
}

/* Σ probe·(word(ids) + axial) in double, from the parameters. */
static double probe_loss(const double *table, const double *e0, const double *e1, const int32_t *ids,
                         const float *probe) {
    double s = 0;
    for (int t = 0; t < B * L; t++)
        for (int c = 0; c < D; c++) {
            int p = t % L;
            double y = table[ids[t] * D + c] + (c < D0 ? e0[(p / S1) * D0 + c] : e1[(p % S1) * D1 + c - D0]);
            s += probe[t * D + c] * y;
        }
    return s;
}

static void cpu_backward_matches_finite_differences(void **state) {
    rf_device *cpu = th_cpu();
    int32_t ids[B * L];
    for (int t = 0; t < B * L; t++) ids[t] = (t * 5) % 6; /* repeated ids: their rows sum */
    float *table = th_random(V * D, 5, 1.0f), *e0 = th_random(S0 * D0, 6, 1.0f), *e1 = th_random(S1 * D1, 7, 1.0f),
          *probe = th_random(B * L * D, 8, 1.0f);
    rf_tensor tids = TH_TENSOR(cpu, RF_I32, ids, B, L), tdo = TH_TENSOR(cpu, RF_F32, probe, B, L, D),
              dtab = TH_TENSOR(cpu, RF_F32, NULL, V, D), de0 = TH_TENSOR(cpu, RF_F32, NULL, S0, D0),
              de1 = TH_TENSOR(cpu, RF_F32, NULL, S1, D1), dpos = TH_TENSOR(cpu, RF_F32, NULL, P, D);
    rf_tensor *grads[] = {&dtab, &de0, &de1, &dpos};
    for (int i = 0; i < 4; i++) TH_OK(rf_tensor_fill_f32(grads[i], 1.0f)); /* gradients accumulate (§1) */
    TH_OK(rf_embedding_backward(&dtab, &tdo, &tids));
    TH_OK(rf_axial_position_backward(&de0, &de1, &tdo));
    TH_OK(rf_position_embedding_backward(&dpos, &tdo));
    static double td[V * D], d0[S0 * D0], d1[S1 * D1];
    static float ft[V * D], f0[S0 * D0], f1[S1 * D1], fp[P * D];
    for (int i = 0; i < V * D; i++) td[i] = table[i];
    for (int i = 0; i < S0 * D0; i++) d0[i] = e0[i];
    for (int i = 0; i < S1 * D1; i++) d1[i] = e1[i];
    double h = 1e-3;
    struct { double *p; float *fd; int n; } groups[] = {{td, ft, V * D}, {d0, f0, S0 * D0}, {d1, f1, S1 * D1}};
    for (int g = 0; g < 3; g++)
        for (int i = 0; i < groups[g].n; i++) {
            double keep = groups[g].p[i];
            groups[g].p[i] = keep + h;
            double up = probe_loss(td, d0, d1, ids, probe);
            groups[g].p[i] = keep - h;
            groups[g].fd[i] = 1.0f + (float)((up - probe_loss(td, d0, d1, ids, probe)) / (2 * h));
            groups[g].p[i] = keep;
        }
    /* Plain positions: ∂/∂pos[p, c] = Σ_b probe[b, p, c]; rows ≥ L get nothing. */
    for (int p = 0; p < P; p++)
        for (int c = 0; c < D; c++) {
            double s = 1.0;
            for (int b = 0; p < L && b < B; b++) s += probe[(b * L + p) * D + c];
            fp[p * D + c] = (float)s;
        }
    float *got[4];
    for (int i = 0; i < 4; i++) got[i] = th_download_f32(grads[i]);
    th_assert_fd(got[0], ft, V * D, 1e-2, "word embedding gradient vs finite differences");
    th_assert_fd(got[1], f0, S0 * D0, 1e-2, "axial E0 gradient vs finite differences");
    th_assert_fd(got[2], f1, S1 * D1, 1e-2, "axial E1 gradient vs finite differences");
    th_assert_close(got[3], fp, P * D, 1e-5, "plain position gradient");
    for (int i = 0; i < 4; i++) free(got[i]);
    free(table), free(e0), free(e1), free(probe);
    rf_tensor_free(&tids), rf_tensor_free(&tdo);
    for (int i = 0; i < 4; i++) rf_tensor_free(grads[i]);
    rf_device_close(cpu);
}

/* Every op on both devices for one shape; outputs guarded. The axial shape
 * (s0, s1) = (8, 40) covers 320 ≥ l positions; the word table has v rows. */
static void compare_shape(rf_device *cpu, rf_device *cl, int64_t b, int64_t l, int64_t d, int64_t v, uint64_t seed) {
    int64_t s0 = 8, s1 = 40, d0 = d / 3, d1 = d - d / 3;
    size_t n = (size_t)(b * l * d);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(b * l));
    for (int64_t t = 0; t < b * l; t++) ids[t] = (int32_t)((t * t + 7 * t) % v);
    float *table = th_random((size_t)(v * d), seed, 1.0f), *e0 = th_random((size_t)(s0 * d0), seed + 1, 1.0f),
          *e1 = th_random((size_t)(s1 * d1), seed + 2, 1.0f), *pos = th_random((size_t)(l * d), seed + 3, 1.0f),
          *dout = th_random(n, seed + 4, 1.0f);
    rf_device *devs[2] = {cpu, cl};
    float *res[2][6];
    for (int k = 0; k < 2; k++) {
        rf_device *dev = devs[k];
        rf_tensor tids = TH_TENSOR(dev, RF_I32, ids, b, l), ttab = TH_TENSOR(dev, RF_F32, table, v, d),
                  te0 = TH_TENSOR(dev, RF_F32, e0, s0, d0), te1 = TH_TENSOR(dev, RF_F32, e1, s1, d1),
                  tpos = TH_TENSOR(dev, RF_F32, pos, l, d), tdo = TH_TENSOR(dev, RF_F32, dout, b, l, d);
        th_guarded out = th_guarded_alloc(dev, RF_F32, 3, (int64_t[]){b, l, d}),
                   out2 = th_guarded_alloc(dev, RF_F32, 3, (int64_t[]){b, l, d}),
                   dtab = th_guarded_alloc(dev, RF_F32, 2, (int64_t[]){v, d}),
                   de0 = th_guarded_alloc(dev, RF_F32, 2, (int64_t[]){s0, d0}),
                   de1 = th_guarded_alloc(dev, RF_F32, 2, (int64_t[]){s1, d1}),
                   dpos = th_guarded_alloc(dev, RF_F32, 2, (int64_t[]){l, d});
        th_guarded *gs[6] = {&out, &out2, &dtab, &de0, &de1, &dpos};
        for (int i = 2; i < 6; i++) TH_OK(rf_tensor_fill_f32(&gs[i]->t, 0.5f));
        TH_OK(rf_embedding_forward(&out.t, &tids, &ttab));
        TH_OK(rf_axial_position_forward(&out.t, &te0, &te1));
        TH_OK(rf_embedding_forward(&out2.t, &tids, &ttab));
        TH_OK(rf_position_embedding_forward(&out2.t, &tpos));
        TH_OK(rf_embedding_backward(&dtab.t, &tdo, &tids));
        TH_OK(rf_axial_position_backward(&de0.t, &de1.t, &tdo));
        TH_OK(rf_position_embedding_backward(&dpos.t, &tdo));
        for (int i = 0; i < 6; i++) {
            th_guard_check(gs[i], "embedding output");
            res[k][i] = th_download_f32(&gs[i]->t);
            th_guarded_free(gs[i]);
        }
        rf_tensor *all[] = {&tids, &ttab, &te0, &te1, &tpos, &tdo};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) rf_tensor_free(all[i]);
    }
    th_assert_close(res[1][0], res[0][0], n, 1e-5, "word + axial opencl vs cpu");
    th_assert_close(res[1][1], res[0][1], n, 1e-5, "word + plain position opencl vs cpu");
    th_assert_close_grad(res[1][2], res[0][2], (size_t)(v * d), 1e-3, "word gradient opencl vs cpu");
    th_assert_close_grad(res[1][3], res[0][3], (size_t)(s0 * d0), 1e-3, "axial E0 gradient opencl vs cpu");
    th_assert_close_grad(res[1][4], res[0][4], (size_t)(s1 * d1), 1e-3, "axial E1 gradient opencl vs cpu");
    th_assert_close_grad(res[1][5], res[0][5], (size_t)(l * d), 1e-3, "plain position gradient opencl vs cpu");
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 6; i++) free(res[k][i]);
    free(ids), free(table), free(e0), free(e1), free(pos), free(dout);
}

static void opencl_matches_cpu(void **state) {
    rf_device *cl;
    TH_CL_OR_SKIP(cl);
    rf_device *cpu = th_cpu();
    compare_shape(cpu, cl, 3, 301, 37, 50, 11); /* l < s0·s1, odd widths */
    compare_shape(cpu, cl, 1, 1, 5, 3, 21);     /* one token */
    rf_device_close(cl);
    rf_device_close(cpu);
}

static void rejects_bad_arguments(void **state) {
    rf_device *cpu = th_cpu();
    int32_t ids[6] = {0, 1, 2, 3, 17, 4}, ids_neg[6] = {0, -1, 0, 0, 0, 0};
    rf_tensor tids = TH_TENSOR(cpu, RF_I32, ids, 2, 3), tneg = TH_TENSOR(cpu, RF_I32, ids_neg, 2, 3),
              table = TH_TENSOR(cpu, RF_F32, NULL, V, 4), out = TH_TENSOR(cpu, RF_F32, NULL, 2, 3, 4),
              out5 = TH_TENSOR(cpu, RF_F32, NULL, 2, 3, 5), e0 = TH_TENSOR(cpu, RF_F32, NULL, 2, 1),
              e1 = TH_TENSOR(cpu, RF_F32, NULL, 2, 3), e1w = TH_TENSOR(cpu, RF_F32, NULL, 2, 2),
              e1s = TH_TENSOR(cpu, RF_F32, NULL, 1, 3), pos = TH_TENSOR(cpu, RF_F32, NULL, 2, 4),
              fids = TH_TENSOR(cpu, RF_F32, NULL, 2, 3);
    TH_FAILS(rf_embedding_forward(&out, &tids, &table), RF_ERR_INVALID_ARG, "ids[4] = 17 is outside [0, 17)");
    TH_FAILS(rf_embedding_forward(&out, &tneg, &table), RF_ERR_INVALID_ARG, "ids[1] = -1 is outside [0, 17)");
    TH_FAILS(rf_embedding_backward(&table, &out, &tids), RF_ERR_INVALID_ARG, "= 17 is outside [0, 17)");
    TH_FAILS(rf_embedding_forward(&out5, &tneg, &table), RF_ERR_INVALID_ARG, "table has shape [17, 4], expected [*, 5]");
    TH_FAILS(rf_embedding_forward(&out, &fids, &table), RF_ERR_INVALID_ARG, "ids has dtype f32");
    TH_FAILS(rf_embedding_forward(&out, NULL, &table), RF_ERR_INVALID_ARG, "ids is NULL");
    TH_FAILS(rf_axial_position_forward(&out, &e0, &e1w), RF_ERR_INVALID_ARG, "axial widths 1 + 2 must equal the model width D = 4");
    TH_FAILS(rf_axial_position_forward(&out, &e0, &e1s), RF_ERR_INVALID_ARG, "covers 2 positions, fewer than the sequence length L = 3");
    TH_OK(rf_axial_position_forward(&out, &e0, &e1));
    TH_FAILS(rf_position_embedding_forward(&out, &pos), RF_ERR_INVALID_ARG, "table has 2 positions, fewer than the sequence length L = 3");
    TH_FAILS(rf_position_embedding_backward(&table, &out5), RF_ERR_INVALID_ARG, "dtable has shape [17, 4], expected [*, 5]");
    rf_tensor *all[] = {&tids, &tneg, &table, &out, &out5, &e0, &e1, &e1w, &e1s, &pos, &fids};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) rf_tensor_free(all[i]);
    rf_device_close(cpu);
}

static void opencl_rejects_bad_ids(void **state) {
    rf_device *cl;
    TH_CL_OR_SKIP(cl);
    int32_t ids[4] = {0, 3, 99, 1};
    rf_tensor tids = TH_TENSOR(cl, RF_I32, ids, 1, 4), table = TH_TENSOR(cl, RF_F32, NULL, 4, 2),
              out = TH_TENSOR(cl, RF_F32, NULL, 1, 4, 2);
    TH_FAILS(rf_embedding_forward(&out, &tids, &table), RF_ERR_INVALID_ARG, "ids[2] = 99 is outside [0, 4)");
    TH_FAILS(rf_embedding_backward(&table, &out, &tids), RF_ERR_INVALID_ARG, "ids[2] = 99 is outside [0, 4)");
    rf_tensor_free(&tids), rf_tensor_free(&table), rf_tensor_free(&out);
    rf_device_close(cl);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cpu_forward_matches_direct_indexing),
        cmocka_unit_test(cpu_backward_matches_finite_differences),
        cmocka_unit_test(opencl_matches_cpu),
        cmocka_unit_test(rejects_bad_arguments),
        cmocka_unit_test(opencl_rejects_bad_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
