/* Training: whole-model gradients against finite differences, cpu against
 * PoCL, the reversible backward against a stored-activation backward, the
 * optimiser's refusal of non-finite gradients, a smoke run whose loss falls,
 * and checkpoint/resume giving identical losses. */
#include "harness.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model/model_impl.h"
#include "reformer/model.h"

/* A small causal model: local and LSH layers (several chunks, 2 rounds). */
static double hidden_dropout = 0; /* the tests below run with and without */
static int only_local = 0;         /* no LSH layer: a loss without hash boundaries */

static rf_config tiny_config(int layers) {
    rf_config c;
    TH_OK(rf_config_default(&c));
    c.num_layers = layers;
    for (int i = 0; i < layers; i++) c.attn_layers[i] = i % 2 && !only_local ? RF_ATTN_LSH : RF_ATTN_LOCAL;
    c.hidden_size = 16;
    c.num_attention_heads = 2;
    c.attention_head_size = 8;
    c.feed_forward_size = 24;
    c.vocab_size = 11;
    c.max_position_embeddings = 16;
    c.axial_pos_shape[0] = 4, c.axial_pos_shape[1] = 4;
    c.axial_pos_embds_dim[0] = 8, c.axial_pos_embds_dim[1] = 8;
    c.num_hashes = 2;
    c.num_bucket_factors = 1, c.num_buckets[0] = 4;
    c.lsh_attn_chunk_length = 4;
    c.local_attn_chunk_length = 4;
    c.is_decoder = true;
    c.hidden_act = RF_ACT_GELU;
    c.axial_norm_std = 0.5;
    c.initializer_range = 0.3; /* large enough weights that every path carries gradient */
    c.hidden_dropout_prob = hidden_dropout;
    c.lsh_attention_probs_dropout_prob = c.local_attention_probs_dropout_prob = hidden_dropout / 2;
    return c;
}

#define B 2
#define L 16

static const int32_t ids[B * L] = {1, 5, 3, 9, 2, 2, 7, 4, 10, 0, 6, 8, 3, 1, 5, 9,
                                   4, 4, 8, 2, 6, 10, 1, 3, 7, 5, 9, 0, 2, 6, 8, 1};

/* Fixed rotations for every LSH layer, so finite differences see one hashing. */
static rf_model *tiny_model(rf_device *dev, int layers) {
    rf_config c = tiny_config(layers);
    rf_model *m;
    TH_OK(rf_model_create(&m, dev, &c, 11));
    for (int i = 0; i < layers; i++) {
        if (c.attn_layers[i] != RF_ATTN_LSH) continue;
        size_t n = (size_t)c.num_attention_heads * c.attention_head_size * c.num_hashes * (c.num_buckets[0] / 2);
        float *rot = th_random(n, 100 + (uint64_t)i, 1.0f);
        TH_OK(rf_model_set_rotations(m, i, rot, n));
        free(rot);
    }
    return m;
}

/* Every evaluation at forward call 0: the same dropout masks (§2) and, with
 * the fixed rotations, the same hashing. */
static double loss_of(rf_model *m) {
    float loss;
    m->step = 0;
    TH_OK(rf_model_backward(m, ids, NULL, B, L, &loss));
    TH_OK(rf_model_zero_grad(m));
    return loss;
}

/* All gradients of one backward pass, concatenated per parameter. */
static float **gradients(rf_model *m) {
    float loss;
    TH_OK(rf_model_zero_grad(m));
    m->step = 0;
    TH_OK(rf_model_backward(m, ids, NULL, B, L, &loss));
    int n = rf_model_param_count(m);
    float **g = calloc((size_t)n, sizeof *g);
    for (int i = 0; i < n; i++) g[i] = th_download_f32(rf_model_grad(m, rf_model_param_name(m, i)));
    return g;
}

static void free_gradients(float **g, int n) {
    for (int i = 0; i < n; i++) free(g[i]);
    free(g);
}

/* ‖a − b‖ / ‖b‖ over a parameter's elements. */
static double rel_error(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* The central difference of the loss in element `at` of `t` with step h. */
static double central(rf_model *m, rf_tensor *t, float *w, size_t n, size_t at, float h) {
    float keep = w[at];
    w[at] = keep + h;
    TH_OK(rf_tensor_upload(t, w, n * 4));
    double up = loss_of(m);
    w[at] = keep - h;
    TH_OK(rf_tensor_upload(t, w, n * 4));
    double down = loss_of(m);
    w[at] = keep;
    TH_OK(rf_tensor_upload(t, w, n * 4));
    return (up - down) / (2.0 * h);
}

/* §10: the cpu gradients of every parameter group against central
 * differences of the loss, on up to 6 of the elements of each tensor with the
 * largest gradients (where float32 differences are meaningful). The loss is
 * only piecewise smooth: a step can move an LSH bucket. Where the differences
 * with steps h and h/2 disagree (they agree to O(h²) where the loss is
 * smooth), the element sits on such a boundary and is not used; of the 12
 * largest, every tensor must keep at least 3 usable elements. */
static void cpu_gradients_match_finite_differences(void **state) {
    rf_device *dev = th_cpu();
    rf_model *m = tiny_model(dev, 2);
    float **g = gradients(m);
    int np = rf_model_param_count(m);
    for (int p = 0; p < np; p++) {
        const char *name = rf_model_param_name(m, p);
        rf_tensor *t = rf_model_param(m, name);
        size_t n = rf_tensor_numel(t);
        float *w = th_download_f32(t);
        double num = 0, den = 0;
        int used = 0, tried = 0;
        for (; tried < 12 && used < 6; tried++) {
            size_t at = 0; /* the largest |gradient| not yet tried */
            for (size_t i = 1; i < n; i++)
                if (fabsf(g[p][i]) > fabsf(g[p][at])) at = i;
            if (g[p][at] == 0) break;
            float h = 2e-3f * fmaxf(1.0f, fabsf(w[at]));
            double fd = central(m, t, w, n, at, h), fd2 = central(m, t, w, n, at, h / 2);
            if (fabs(fd - fd2) <= 0.05 * fmax(fabs(fd), fabs(fd2)) + 1e-4) {
                num += (fd - g[p][at]) * (fd - g[p][at]);
                den += (double)g[p][at] * g[p][at];
                used++;
            }
            g[p][at] = 0; /* next largest */
        }
        if (used < (tried < 3 ? tried : 3)) fail_msg("%s: only %d of %d elements away from a hash boundary", name, used, tried);
        if (den > 0 && sqrt(num / den) > 1e-2)
            fail_msg("%s: gradient vs central differences: relative error %.3g > 1e-2", name, sqrt(num / den));
        free(w);
    }
    free_gradients(g, np);
    rf_model_free(m);
    rf_device_close(dev);
}

/* §10: device gradients within 1e-3 (relative, per parameter) of cpu. */
static void opencl_gradients_match_cpu(void **state) {
    rf_device *cl;
    TH_CL_OR_SKIP(cl);
    rf_device *cpu = th_cpu();
    rf_model *mc = tiny_model(cpu, 2), *mg = tiny_model(cl, 2);
    float **gc = gradients(mc), **gg = gradients(mg);
    int np = rf_model_param_count(mc);
    for (int p = 0; p < np; p++) {
        const char *name = rf_model_param_name(mc, p);
        double e = rel_error(gg[p], gc[p], rf_tensor_numel(rf_model_param(mc, name)));
        if (e > 1e-3) fail_msg("%s: opencl vs cpu gradient relative error %.3g > 1e-3", name, e);
    }
    free_gradients(gc, np), free_gradients(gg, np);
    rf_model_free(mc), rf_model_free(mg);
    rf_device_close(cpu), rf_device_close(cl);
}

/* §8: rebuilding each layer's input from its output must give the gradients
 * of the plain computation that stores them. float32 reconstruction rounds
 * (X2 = (X2 + g) − g), so the two differ by ~1e-7–1e-5 relative per
 * parameter in this 6-layer model; a wrong reconstruction (a sign, a missing
 * term, a stale buffer) changes gradients by O(1). 1e-3 separates the two. */
static void reversible_backward_matches_stored_activations(void **state) {
    rf_device *dev = th_cpu();
    rf_model *m = tiny_model(dev, 6);
    float **rev = gradients(m);
    m->store_activations = true;
    float **stored = gradients(m);
    int np = rf_model_param_count(m);
    double worst = 0;
    for (int p = 0; p < np; p++) {
        const char *name = rf_model_param_name(m, p);
        double e = rel_error(rev[p], stored[p], rf_tensor_numel(rf_model_param(m, name)));
        if (e > worst) worst = e;
        if (e > 1e-3) fail_msg("%s: reversible vs stored-activation gradients differ by %.3g", name, e);
    }
    print_message("reversible vs stored: worst relative difference %.3g\n", worst);
    free_gradients(rev, np), free_gradients(stored, np);
    rf_model_free(m);
    rf_device_close(dev);
}

/* The same three checks with HF's dropouts on: hidden states (p = 0.2) in
 * every place the HF model applies them, and attention probabilities
 * (p = 0.1, local and LSH): the backward regenerates the masks. The
 * finite differences use local layers only: dropout moves the LSH layer's
 * inputs onto hash boundaries often enough to leave too few usable points,
 * and the hashing path is checked without dropout above. */
static void with_dropout(void (*test)(void **), void **state) {
    hidden_dropout = 0.2;
    test(state);
    hidden_dropout = 0;
}
static void dropout_cpu_gradients_match_finite_differences(void **state) {
    only_local = 1;
    with_dropout(cpu_gradients_match_finite_differences, state);
    only_local = 0;
}
static void dropout_opencl_gradients_match_cpu(void **state) { with_dropout(opencl_gradients_match_cpu, state); }
static void dropout_reversible_matches_stored(void **state) {
    with_dropout(reversible_backward_matches_stored_activations, state);
}

/* A non-finite gradient stops the step and leaves every weight as it was. */
static void non_finite_gradient_leaves_weights(void **state) {
    rf_device *dev = th_cpu();
    rf_model *m = tiny_model(dev, 2);
    float loss;
    TH_OK(rf_model_backward(m, ids, NULL, B, L, &loss));
    const char *name = "reformer.encoder.layer_norm.bias";
    rf_tensor *grad = (rf_tensor *)rf_model_grad(m, name);
    float nan = NAN;
    TH_OK(rf_buffer_upload(grad->buf, grad->offset * 4, &nan, 4));
    float *before = th_download_f32(rf_model_param(m, "lm_head.decoder.weight"));
    rf_train_config tc;
    TH_OK(rf_train_config_default(&tc));
    TH_FAILS(rf_model_step(m, &tc, 1, NULL), RF_ERR_NUMERIC, "weights were not changed");
    float *after = th_download_f32(rf_model_param(m, "lm_head.decoder.weight"));
    assert_memory_equal(before, after, rf_tensor_numel(rf_model_param(m, "lm_head.decoder.weight")) * 4);
    assert_int_equal(rf_model_steps(m), 0);
    free(before), free(after);
    /* Bad arguments. */
    int32_t bad[B * L];
    memcpy(bad, ids, sizeof bad);
    bad[3] = 11;
    TH_FAILS(rf_model_backward(m, bad, NULL, B, L, &loss), RF_ERR_INVALID_ARG, "token id 11 at position 3");
    TH_FAILS(rf_model_backward(m, ids, NULL, 1, 10, &loss), RF_ERR_INVALID_ARG, "not a multiple of the chunk lengths");
    TH_FAILS(rf_model_step(m, &tc, 0, NULL), RF_ERR_INVALID_ARG, "micro_batches = 0");
    rf_model_free(m);
    rf_device_close(dev);
}

/* Train a few dozen steps; return the mean loss of the first and last 5. */
static void train(rf_model *m, int steps, double *first, double *last, float *losses) {
    rf_train_config tc;
    TH_OK(rf_train_config_default(&tc));
    tc.lr = 1e-2f;
    tc.warmup_steps = 5;
    *first = *last = 0;
    for (int s = 0; s < steps; s++) {
        float loss;
        TH_OK(rf_model_backward(m, ids, NULL, B, L, &loss));
        TH_OK(rf_model_step(m, &tc, 1, NULL));
        if (s < 5) *first += loss / 5;
        if (s >= steps - 5) *last += loss / 5;
        if (losses) losses[s] = loss;
    }
}

static void smoke(rf_device *dev) {
    rf_model *m = tiny_model(dev, 2);
    double first, last;
    train(m, 40, &first, &last, NULL);
    print_message("loss %.4f -> %.4f\n", first, last);
    assert_true(last < 0.7 * first);
    rf_model_free(m);
}

static void loss_falls_cpu(void **state) {
    rf_device *dev = th_cpu();
    smoke(dev);
    rf_device_close(dev);
}

static void loss_falls_opencl(void **state) {
    rf_device *dev;
    TH_CL_OR_SKIP(dev);
    smoke(dev);
    rf_device_close(dev);
}

/* Stopping at a checkpoint and resuming gives the losses of never stopping. */
static void resume_gives_identical_losses(void **state) {
    rf_device *dev = th_cpu();
    rf_config c = tiny_config(2);
    float straight[20], resumed[20];
    double f, l;
    rf_model *m;
    TH_OK(rf_model_create(&m, dev, &c, 5)); /* Philox rotations: the step counter matters */
    train(m, 20, &f, &l, straight);
    rf_model_free(m);
    char root[256];
    th_tmpdir(root, sizeof root);
    TH_OK(rf_model_create(&m, dev, &c, 5));
    train(m, 10, &f, &l, resumed);
    TH_OK(rf_checkpoint_save(m, root, 1234));
    rf_model_free(m);
    uint64_t pos = 0;
    TH_OK(rf_checkpoint_load(&m, dev, root, &pos));
    assert_int_equal(pos, 1234);
    assert_int_equal(rf_model_steps(m), 10);
    train(m, 10, &f, &l, resumed + 10);
    for (int i = 0; i < 20; i++)
        if (straight[i] != resumed[i]) fail_msg("step %d: loss %.9g straight, %.9g resumed", i, straight[i], resumed[i]);
    rf_model_free(m);
    TH_FAILS(rf_checkpoint_load(&m, dev, "/nonexistent-root", &pos), RF_ERR_NOT_FOUND, "/nonexistent-root/latest");
    rf_device_close(dev);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cpu_gradients_match_finite_differences),
        cmocka_unit_test(opencl_gradients_match_cpu),
        cmocka_unit_test(reversible_backward_matches_stored_activations),
        cmocka_unit_test(dropout_cpu_gradients_match_finite_differences),
        cmocka_unit_test(dropout_opencl_gradients_match_cpu),
        cmocka_unit_test(dropout_reversible_matches_stored),
        cmocka_unit_test(non_finite_gradient_leaves_weights),
        cmocka_unit_test(loss_falls_cpu),
        cmocka_unit_test(loss_falls_opencl),
        cmocka_unit_test(resume_gives_identical_losses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
