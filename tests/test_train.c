/* Training: whole-model gradients against finite differences (every
 * parameter tensor: random directions and random elements), cpu against
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

static rf_config tiny_config(int layers) {
    rf_config c;
    TH_OK(rf_config_default(&c));
    c.num_layers = layers;
    for (int i = 0; i < layers; i++) c.attn_layers[i] = i % 2 ? RF_ATTN_LSH : RF_ATTN_LOCAL;
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

/* The training forward pass at forward call 0 (the backward's own blocks:
 * embeddings, the stack, the head; the same dropout masks), with the loss
 * computed here in double from the logits — float32 rounding of a summed
 * loss would swamp small steps — and every LSH layer's buckets concatenated
 * (malloc'd, *nb ints): a step whose either side hashes differently from the
 * unperturbed model crosses a hash boundary, where the loss jumps. */
static double eval_model(rf_model *m, int32_t **buckets, size_t *nb) {
    const rf_config *c = &m->cfg;
    const int64_t V = c->vocab_size, H = c->num_attention_heads;
    rf_pass s;
    m->step = 0;
    TH_OK(rf_pass_init(&s, m, ids, NULL, B, L, true));
    rf_tensor bk[RF_CONFIG_MAX_LAYERS], *keep[RF_CONFIG_MAX_LAYERS];
    size_t per = (size_t)B * H * (L <= c->lsh_attn_chunk_length ? 1 : c->num_hashes) * L, total = 0;
    for (int i = 0; i < c->num_layers; i++) {
        keep[i] = NULL;
        if (c->attn_layers[i] != RF_ATTN_LSH) continue;
        bk[i] = TH_TENSOR(m->dev, RF_I32, NULL, B, H, (int64_t)(per / B / H));
        keep[i] = &bk[i];
        total += per;
    }
    rf_tensor logits = TH_TENSOR(m->dev, RF_F32, NULL, B, L, V);
    rf_tensor mean = TH_TENSOR(m->dev, RF_F32, NULL, B * L), rstd = TH_TENSOR(m->dev, RF_F32, NULL, B * L);
    TH_OK(rf_model_embed(m, &s));
    TH_OK(rf_model_stack(m, &s, 0, c->num_layers, keep, NULL));
    TH_OK(rf_model_head(m, &s, &logits, &mean, &rstd));
    float *lg = th_download_f32(&logits);
    double loss = 0;
    int counted = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t + 1 < L; t++) { /* §9: logits at t against token t+1 */
            const float *row = lg + ((size_t)b * L + t) * V;
            double mx = row[0], sum = 0;
            for (int64_t v = 1; v < V; v++) mx = fmax(mx, row[v]);
            for (int64_t v = 0; v < V; v++) sum += exp(row[v] - mx);
            loss += mx + log(sum) - row[ids[b * L + t + 1]];
            counted++;
        }
    int32_t *all = malloc((total + 1) * sizeof *all);
    assert_non_null(all);
    size_t at = 0;
    for (int i = 0; i < c->num_layers; i++) {
        if (!keep[i]) continue;
        TH_OK(rf_tensor_download(keep[i], all + at, per * sizeof *all));
        at += per;
        rf_tensor_free(keep[i]);
    }
    free(lg);
    rf_tensor_free(&logits), rf_tensor_free(&mean), rf_tensor_free(&rstd);
    rf_pass_free(&s);
    if (buckets) *buckets = all, *nb = total;
    else free(all);
    return loss / counted;
}

/* The central difference of the loss along `dir` (w ± h·dir) with step h,
 * uploading into `t` (n elements, weights w). Returns false if either side
 * hashes differently from `base` (the unperturbed buckets, nb ints). */
static bool directional(rf_model *m, rf_tensor *t, const float *w, const float *dir, size_t n, double h,
                        const int32_t *base, size_t nb, double *out) {
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    double side[2], step[2];
    bool same = true;
    for (int k = 0; k < 2; k++) {
        double sgn = k ? -1.0 : 1.0;
        for (size_t i = 0; i < n; i++) x[i] = (float)(w[i] + sgn * h * dir[i]);
        /* the step actually taken, after rounding to float (dir is ±1 or 0) */
        step[k] = 0;
        for (size_t i = 0; i < n && !step[k]; i++)
            if (dir[i]) step[k] = ((double)x[i] - w[i]) / dir[i];
        TH_OK(rf_tensor_upload(t, x, n * 4));
        int32_t *bk;
        size_t nb2;
        side[k] = eval_model(m, &bk, &nb2);
        assert_int_equal(nb2, nb);
        if (nb && memcmp(bk, base, nb * sizeof *bk)) same = false;
        free(bk);
    }
    TH_OK(rf_tensor_upload(t, w, n * 4));
    free(x);
    *out = (side[0] - side[1]) / (step[0] - step[1]);
    return same;
}

/* One finite-difference check of the loss along `dir` against `want` (the
 * computed ⟨g, dir⟩): steps h and h/2, both away from every hash boundary
 * (the same buckets as unperturbed) and agreeing with each other to within
 * a quarter of the bound (the loss is smooth there); then their Richardson
 * combination must lie within rtol·scale of want. On a boundary the step
 * shrinks (down to h/8). Returns false if no step is usable. */
static int boundary_steps; /* steps that moved a bucket (then a smaller step is tried) */

static bool fd_check(rf_model *m, rf_tensor *t, const float *w, const float *dir, size_t n, double h, double want,
                     double scale, double rtol, const int32_t *base, size_t nb, const char *name, const char *what) {
    for (int shrink = 0; shrink < 4; shrink++, h /= 2) {
        double f1, f2;
        bool ok1 = directional(m, t, w, dir, n, h, base, nb, &f1);
        bool ok2 = ok1 && directional(m, t, w, dir, n, h / 2, base, nb, &f2);
        if (!ok1 || !ok2) {
            boundary_steps++;
            continue;
        }
        if (fabs(f1 - f2) > 0.25 * rtol * scale) return false; /* not smooth at this scale: unusable */
        double fd = (4 * f2 - f1) / 3;
        if (fabs(fd - want) > rtol * scale)
            fail_msg("%s, %s: finite difference %.6g, computed gradient %.6g: |diff| %.3g > %.3g (%g of %.3g)", name,
                     what, fd, want, fabs(fd - want), rtol * scale, rtol, scale);
        return true;
    }
    return false;
}

/* §10: the cpu gradients of every parameter tensor against central
 * differences of the loss, so that every element counts:
 * - a tensor whose computed gradient is all zero fails at once;
 * - 3 random directions u (±1 per element, independent of the gradient):
 *   (J(w + h·u) − J(w − h·u))/2h against ⟨g, u⟩, within 1e-2 of ‖g‖₂ (the
 *   typical size of ⟨g, u⟩); a dropped, scaled or misplaced term anywhere in
 *   the tensor moves ⟨g, u⟩;
 * - 3 distinct elements drawn at random (again not by the computed
 *   gradient) against their own differences, within 1e-2 of max|g|.
 * The loss is only piecewise smooth: a step can move an LSH bucket. A step
 * whose either side hashes differently from the unperturbed model (every LSH
 * layer's buckets are compared, exactly) is not used: the step is halved, up
 * to 3 times. A direction or element whose differences with steps h and h/2
 * still disagree (not smooth) is unusable, and another is drawn — at most 2
 * per tensor and kind: each tensor must have 3 usable directions and 3
 * usable elements of its first 5, or the test fails. */
static void check_all_gradients(rf_device *dev, int layers, int min_lsh) {
    rf_model *m = tiny_model(dev, layers);
    int nlsh = 0;
    for (int i = 0; i < layers; i++) nlsh += m->cfg.attn_layers[i] == RF_ATTN_LSH;
    assert_true(nlsh >= min_lsh);
    float **g = gradients(m);
    int32_t *base;
    size_t nb;
    /* The function differentiated here is the backward's loss. */
    double J = eval_model(m, &base, &nb), lib = loss_of(m);
    if (fabs(J - lib) > 1e-5 * fmax(1, fabs(J))) fail_msg("loss: %.9g here, %.9g from rf_model_backward", J, lib);
    int np = rf_model_param_count(m), directions = 0, elements = 0, rejected = 0;
    boundary_steps = 0;
    for (int p = 0; p < np; p++) {
        const char *name = rf_model_param_name(m, p);
        rf_tensor *t = rf_model_param(m, name);
        size_t n = rf_tensor_numel(t);
        float *w = th_download_f32(t), *u = malloc(n * sizeof *u);
        assert_non_null(u);
        double norm = 0, gmax = 0, wmax = 0;
        for (size_t i = 0; i < n; i++) {
            norm += (double)g[p][i] * g[p][i];
            gmax = fmax(gmax, fabs(g[p][i]));
            wmax = fmax(wmax, fabs(w[i]));
        }
        norm = sqrt(norm);
        if (!(gmax > 0)) fail_msg("%s: the computed gradient is all zero", name);
        /* Random ±1 directions. */
        int used = 0;
        for (int k = 0; used < 3 && k < 5; k++) {
            th_fill_uniform(u, n, 1000 + 37 * (uint64_t)p + (uint64_t)k, 1.0f);
            double want = 0;
            for (size_t i = 0; i < n; i++) {
                u[i] = u[i] < 0 ? -1.0f : 1.0f;
                want += (double)g[p][i] * u[i];
            }
            char what[64];
            snprintf(what, sizeof what, "random direction %d", k);
            double h = 2e-3 * fmax(1.0, wmax);
            if (fd_check(m, t, w, u, n, h, want, norm, 1e-2, base, nb, name, what)) used++;
            else rejected++;
        }
        if (used < 3) fail_msg("%s: only %d random directions away from hash boundaries", name, used);
        directions += used;
        /* Distinct random elements. */
        used = 0;
        uint64_t r = 77 + (uint64_t)p;
        size_t *idx = malloc(n * sizeof *idx);
        assert_non_null(idx);
        for (size_t i = 0; i < n; i++) idx[i] = i;
        for (size_t k = 0; used < 3 && k < n && k < 5; k++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            size_t j = k + (size_t)((r >> 33) % (n - k)), at = idx[j];
            idx[j] = idx[k], idx[k] = at;
            memset(u, 0, n * sizeof *u);
            u[at] = 1.0f;
            char what[64];
            snprintf(what, sizeof what, "element %zu", at);
            double h = 1e-2 * fmax(1.0, fabs(w[at]));
            if (fd_check(m, t, w, u, n, h, g[p][at], gmax, 1e-2, base, nb, name, what)) used++;
            else rejected++;
        }
        free(idx);
        if (used < 3) fail_msg("%s: only %d random elements away from hash boundaries", name, used);
        elements += used;
        free(w), free(u);
    }
    print_message("%d tensors: %d directions and %d elements checked; %d steps moved a bucket (a smaller step was "
                  "tried), %d directions or elements unusable\n", np, directions, elements, boundary_steps, rejected);
    free(base);
    free_gradients(g, np);
    rf_model_free(m);
}

static void cpu_gradients_match_finite_differences(void **state) {
    rf_device *dev = th_cpu();
    check_all_gradients(dev, 4, 2); /* local, LSH, local, LSH */
    rf_device_close(dev);
}

/* §10: device gradients within 1e-3 of cpu, per element of every
 * parameter (th_assert_close_grad; an all-zero cpu gradient fails). */
static void opencl_gradients_match_cpu(void **state) {
    rf_device *cl;
    TH_CL_OR_SKIP(cl);
    rf_device *cpu = th_cpu();
    rf_model *mc = tiny_model(cpu, 2), *mg = tiny_model(cl, 2);
    float **gc = gradients(mc), **gg = gradients(mg);
    int np = rf_model_param_count(mc);
    for (int p = 0; p < np; p++) {
        const char *name = rf_model_param_name(mc, p);
        char what[200];
        snprintf(what, sizeof what, "%s: opencl vs cpu gradient", name);
        th_assert_close_grad(gg[p], gc[p], rf_tensor_numel(rf_model_param(mc, name)), 1e-3, what);
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
 * (p = 0.1, local and LSH): the backward regenerates the masks. The finite
 * differences use a local and an LSH layer (steps that move a bucket are
 * detected and not used, as above). */
static void with_dropout(void (*test)(void **), void **state) {
    hidden_dropout = 0.2;
    test(state);
    hidden_dropout = 0;
}
static void dropout_cpu_gradients_match_finite_differences(void **state) {
    hidden_dropout = 0.2;
    rf_device *dev = th_cpu();
    check_all_gradients(dev, 2, 1); /* local, LSH */
    rf_device_close(dev);
    hidden_dropout = 0;
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
