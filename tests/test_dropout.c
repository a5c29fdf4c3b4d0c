/* Dropout (§2): the cpu op against the mask written out from
 * rf_philox_word; OpenCL bit-identical to cpu (odd sizes, inputs and outputs
 * at a non-zero offset between sentinels, in place); the kept fraction and
 * the exact scale; the backward as the forward's mask on the gradient and the
 * adjoint identity; masks as a pure function of (seed, stream, step); p = 0;
 * argument checks. */
#include "harness.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/philox.h"

static const uint64_t SEED = 0x0123456789abcdefull;

/* An input tensor at a non-zero offset of its buffer (between sentinels), so
 * a backend that ignores the input's offset reads sentinels. */
static th_guarded guarded_input(rf_device *dev, const float *x, size_t n) {
    th_guarded g = th_guarded_alloc(dev, RF_F32, 1, (int64_t[]){(int64_t)n});
    TH_OK(rf_tensor_upload(&g.t, x, n * sizeof *x));
    return g;
}

/* §2 written out: keep element i iff word i ≥ round(p · 2³²); scale in float. */
static float *direct_dropout(const float *x, size_t n, float p, uint32_t stream, uint32_t step) {
    float *y = malloc(n * sizeof *y);
    uint32_t threshold = (uint32_t)nearbyint((double)p * 4294967296.0);
    float scale = 1.0f / (1.0f - p);
    for (size_t i = 0; i < n; i++)
        y[i] = rf_philox_word(SEED, stream, step, i) >= threshold ? x[i] * scale : x[i] * 0.0f;
    return y;
}

static void assert_bits_equal(const float *got, const float *want, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++) {
        uint32_t a, b;
        memcpy(&a, &got[i], 4), memcpy(&b, &want[i], 4);
        if (a != b)
            fail_msg("%s: element %zu of %zu is %.9g (%08x), expected %.9g (%08x)", what, i, n, got[i], a, want[i],
                     b);
    }
}

static void cpu_matches_direct_mask(void **state) {
    rf_device *cpu = th_cpu();
    const size_t n = 1037;
    const uint32_t stream = rf_philox_stream(2, RF_PHILOX_DROPOUT_HIDDEN), step = 9;
    float *x = th_random(n, 1, 2.0f), *want = direct_dropout(x, n, 0.3f, stream, step);
    th_guarded in = guarded_input(cpu, x, n), out = th_guarded_alloc(cpu, RF_F32, 1, (int64_t[]){1037});
    TH_OK(rf_dropout_forward(&out.t, &in.t, 0.3f, SEED, stream, step, 0));
    float *got = th_download_f32(&out.t);
    assert_bits_equal(got, want, n, "rf_dropout_forward cpu");
    th_guard_check(&out, "rf_dropout_forward cpu");
    free(x), free(want), free(got);
    th_guarded_free(&in), th_guarded_free(&out);
    rf_device_close(cpu);
}

/* Forward, backward and in place on OpenCL equal the cpu's bit for bit. */
static void opencl_bit_identical_to_cpu(void **state) {
    rf_device *cl;
    TH_CL_OR_SKIP(cl);
    rf_device *cpu = th_cpu();
    const size_t sizes[] = {1, 1037, 100003};
    const float ps[] = {0.1f, 0.5f, 0.9f};
    for (int k = 0; k < 3; k++) {
        size_t n = sizes[k];
        float p = ps[k];
        const int64_t shape[] = {(int64_t)n};
        const uint32_t stream = rf_philox_stream((uint32_t)k, RF_PHILOX_DROPOUT_ATTN), step = 1000 + (uint32_t)k;
        float *x = th_random(n, 10 + (uint64_t)k, 3.0f);
        float *want = direct_dropout(x, n, p, stream, step);
        th_guarded cin = guarded_input(cpu, x, n), cout = th_guarded_alloc(cpu, RF_F32, 1, shape);
        th_guarded gin = guarded_input(cl, x, n), gout = th_guarded_alloc(cl, RF_F32, 1, shape);
        TH_OK(rf_dropout_forward(&cout.t, &cin.t, p, SEED, stream, step, 0));
        TH_OK(rf_dropout_forward(&gout.t, &gin.t, p, SEED, stream, step, 0));
        float *c = th_download_f32(&cout.t), *g = th_download_f32(&gout.t);
        assert_bits_equal(c, want, n, "forward cpu");
        assert_bits_equal(g, c, n, "forward opencl vs cpu");
        th_guard_check(&gout, "rf_dropout_forward opencl");
        free(c), free(g);
        TH_OK(rf_dropout_backward(&cout.t, &cin.t, p, SEED, stream, step, 0));
        TH_OK(rf_dropout_backward(&gout.t, &gin.t, p, SEED, stream, step, 0));
        c = th_download_f32(&cout.t), g = th_download_f32(&gout.t);
        assert_bits_equal(g, c, n, "backward opencl vs cpu");
        assert_bits_equal(c, want, n, "backward cpu");
        th_guard_check(&gout, "rf_dropout_backward opencl");
        free(c), free(g);
        /* out aliasing in */
        TH_OK(rf_dropout_forward(&gin.t, &gin.t, p, SEED, stream, step, 0));
        g = th_download_f32(&gin.t);
        assert_bits_equal(g, want, n, "forward opencl in place");
        th_guard_check(&gin, "rf_dropout_forward opencl in place");
        free(g), free(x), free(want);
        th_guarded_free(&cin), th_guarded_free(&cout), th_guarded_free(&gin), th_guarded_free(&gout);
    }
    rf_device_close(cpu);
    rf_device_close(cl);
}

/* On ones: the kept fraction is 1 − p within 4σ of the binomial, every kept
 * value is exactly the float 1/(1 − p) and every dropped one 0. */
static void kept_fraction_and_scale(void **state) {
    rf_device *cpu = th_cpu();
    const size_t n = 100003;
    float *ones = malloc(n * sizeof *ones);
    for (size_t i = 0; i < n; i++) ones[i] = 1.0f;
    rf_tensor x = TH_TENSOR(cpu, RF_F32, ones, 100003), y = TH_TENSOR(cpu, RF_F32, NULL, 100003);
    const float ps[] = {0.1f, 0.5f, 0.9f};
    for (int k = 0; k < 3; k++) {
        float p = ps[k], scale = 1.0f / (1.0f - p);
        TH_OK(rf_dropout_forward(&y, &x, p, SEED, rf_philox_stream(0, RF_PHILOX_DROPOUT_FF), 3, 0));
        float *got = th_download_f32(&y);
        size_t kept = 0;
        for (size_t i = 0; i < n; i++) {
            if (got[i] != 0.0f && got[i] != scale)
                fail_msg("p = %g: element %zu is %.9g, not 0 or %.9g", p, i, got[i], scale);
            kept += got[i] == scale;
        }
        double mean = (double)n * (1.0 - p), sigma = sqrt((double)n * p * (1.0 - p));
        if (fabs((double)kept - mean) > 4 * sigma)
            fail_msg("p = %g: kept %zu of %zu, expected %.0f ± 4·%.1f", p, kept, n, mean, sigma);
        free(got);
    }
    free(ones);
    rf_tensor_free(&x), rf_tensor_free(&y);
    rf_device_close(cpu);
}

/* din = dout · mask/(1 − p) elementwise, the mask being forward(ones); and
 * dropout is linear, so ⟨backward(dy), x⟩ = ⟨dy, forward(x)⟩. */
static void backward_is_the_forward_mask(rf_device *dev) {
    const size_t n = 4099;
    const float p = 0.37f;
    const uint32_t stream = rf_philox_stream(5, RF_PHILOX_DROPOUT_ATTN), step = 12;
    float *x = th_random(n, 20, 1.0f), *dy = th_random(n, 21, 1.0f), *ones = malloc(n * sizeof *ones);
    for (size_t i = 0; i < n; i++) ones[i] = 1.0f;
    rf_tensor tx = TH_TENSOR(dev, RF_F32, x, 4099), tdy = TH_TENSOR(dev, RF_F32, dy, 4099);
    rf_tensor tones = TH_TENSOR(dev, RF_F32, ones, 4099), y = TH_TENSOR(dev, RF_F32, NULL, 4099);
    rf_tensor dx = TH_TENSOR(dev, RF_F32, NULL, 4099), mask = TH_TENSOR(dev, RF_F32, NULL, 4099);
    TH_OK(rf_dropout_forward(&mask, &tones, p, SEED, stream, step, 0));
    TH_OK(rf_dropout_forward(&y, &tx, p, SEED, stream, step, 0));
    TH_OK(rf_dropout_backward(&dx, &tdy, p, SEED, stream, step, 0));
    float *m = th_download_f32(&mask), *fy = th_download_f32(&y), *gx = th_download_f32(&dx);
    float *want = malloc(n * sizeof *want);
    for (size_t i = 0; i < n; i++) want[i] = dy[i] * m[i];
    assert_bits_equal(gx, want, n, "din = dout · mask/(1 − p)");
    double lhs = 0, rhs = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        lhs += (double)gx[i] * x[i];
        rhs += (double)dy[i] * fy[i];
        scale += fabs((double)dy[i] * fy[i]);
    }
    if (fabs(lhs - rhs) > 1e-6 * scale) fail_msg("<backward(dy), x> = %.12g, <dy, forward(x)> = %.12g", lhs, rhs);
    free(x), free(dy), free(ones), free(m), free(fy), free(gx), free(want);
    rf_tensor_free(&tx), rf_tensor_free(&tdy), rf_tensor_free(&tones), rf_tensor_free(&y), rf_tensor_free(&dx),
        rf_tensor_free(&mask);
}

static void backward_cpu(void **state) {
    rf_device *dev = th_cpu();
    backward_is_the_forward_mask(dev);
    rf_device_close(dev);
}

static void backward_opencl(void **state) {
    rf_device *dev;
    TH_CL_OR_SKIP(dev);
    backward_is_the_forward_mask(dev);
    rf_device_close(dev);
}

/* The mask of (seed, stream, step) on ones; how many elements two differ in. */
static size_t mask_differences(rf_device *dev, uint64_t s0, uint32_t st0, uint32_t sp0, uint64_t s1, uint32_t st1,
                               uint32_t sp1) {
    const size_t n = 1037;
    float ones[1037];
    for (size_t i = 0; i < n; i++) ones[i] = 1.0f;
    rf_tensor x = TH_TENSOR(dev, RF_F32, ones, 1037), a = TH_TENSOR(dev, RF_F32, NULL, 1037);
    rf_tensor b = TH_TENSOR(dev, RF_F32, NULL, 1037);
    TH_OK(rf_dropout_forward(&a, &x, 0.5f, s0, st0, sp0, 0));
    TH_OK(rf_dropout_forward(&b, &x, 0.5f, s1, st1, sp1, 0));
    float *ma = th_download_f32(&a), *mb = th_download_f32(&b);
    size_t diff = 0;
    for (size_t i = 0; i < n; i++) diff += ma[i] != mb[i];
    free(ma), free(mb);
    rf_tensor_free(&x), rf_tensor_free(&a), rf_tensor_free(&b);
    return diff;
}

/* A mask is a pure function of (seed, stream, step): the same triple twice
 * gives the same mask; changing any one gives an unrelated mask (about half
 * the elements differ at p = 0.5; 400 of 1037 is far below 518 − 4σ = 451). */
static void masks_depend_on_seed_stream_step(void **state) {
    rf_device *cpu = th_cpu();
    const uint32_t st = rf_philox_stream(1, RF_PHILOX_DROPOUT_HIDDEN);
    assert_int_equal(mask_differences(cpu, SEED, st, 4, SEED, st, 4), 0);
    assert_true(mask_differences(cpu, SEED, st, 4, SEED, st + 1, 4) > 400);
    assert_true(mask_differences(cpu, SEED, st, 4, SEED, st, 5) > 400);
    assert_true(mask_differences(cpu, SEED, st, 4, SEED + 1, st, 4) > 400);
    rf_device_close(cpu);
}

/* p = 0 keeps everything with scale 1: the output is the input bit for bit,
 * also in place. */
static void p_zero_is_identity(rf_device *dev) {
    const size_t n = 1037;
    float *x = th_random(n, 30, 5.0f);
    x[3] = -0.0f;
    rf_tensor tx = TH_TENSOR(dev, RF_F32, x, 1037), y = TH_TENSOR(dev, RF_F32, NULL, 1037);
    TH_OK(rf_dropout_forward(&y, &tx, 0.0f, SEED, 0, 0, 0));
    float *got = th_download_f32(&y);
    assert_bits_equal(got, x, n, "p = 0 forward");
    free(got);
    TH_OK(rf_dropout_backward(&tx, &tx, 0.0f, SEED, 0, 0, 0));
    got = th_download_f32(&tx);
    assert_bits_equal(got, x, n, "p = 0 backward in place");
    free(got), free(x);
    rf_tensor_free(&tx), rf_tensor_free(&y);
}

static void p_zero_cpu(void **state) {
    rf_device *dev = th_cpu();
    p_zero_is_identity(dev);
    rf_device_close(dev);
}

static void p_zero_opencl(void **state) {
    rf_device *dev;
    TH_CL_OR_SKIP(dev);
    p_zero_is_identity(dev);
    rf_device_close(dev);
}

static void rejects_bad_arguments(void **state) {
    rf_device *cpu = th_cpu();
    rf_tensor a = TH_TENSOR(cpu, RF_F32, NULL, 4, 6), b = TH_TENSOR(cpu, RF_F32, NULL, 6, 4);
    rf_tensor c = TH_TENSOR(cpu, RF_F32, NULL, 24), d = TH_TENSOR(cpu, RF_F32, NULL, 4, 5);
    rf_tensor ids = TH_TENSOR(cpu, RF_I32, NULL, 4, 6);
    TH_FAILS(rf_dropout_forward(&a, &a, -0.1f, SEED, 0, 0, 0), RF_ERR_INVALID_ARG, "p = -0.1 must lie in [0, 1)");
    TH_FAILS(rf_dropout_forward(&a, &a, 1.0f, SEED, 0, 0, 0), RF_ERR_INVALID_ARG, "p = 1 must lie in [0, 1)");
    TH_FAILS(rf_dropout_forward(&a, &a, 2.0f, SEED, 0, 0, 0), RF_ERR_INVALID_ARG, "p = 2 must lie in [0, 1)");
    TH_FAILS(rf_dropout_backward(&a, &a, NAN, SEED, 0, 0, 0), RF_ERR_INVALID_ARG, "rf_dropout_backward: p = nan");
    TH_FAILS(rf_dropout_forward(&b, &a, 0.5f, SEED, 0, 0, 0), RF_ERR_INVALID_ARG,
             "out has shape [6, 4], expected [4, 6]");
    TH_FAILS(rf_dropout_forward(&c, &a, 0.5f, SEED, 0, 0, 0), RF_ERR_INVALID_ARG,
             "out has shape [24] (1 dims), expected 2 dims");
    TH_FAILS(rf_dropout_backward(&d, &a, 0.5f, SEED, 0, 0, 0), RF_ERR_INVALID_ARG, "din has shape [4, 5], expected [4, 6]");
    TH_FAILS(rf_dropout_forward(NULL, &a, 0.5f, SEED, 0, 0, 0), RF_ERR_INVALID_ARG, "rf_dropout_forward: out is NULL");
    TH_FAILS(rf_dropout_forward(&a, NULL, 0.5f, SEED, 0, 0, 0), RF_ERR_INVALID_ARG, "rf_dropout_forward: in is NULL");
    TH_FAILS(rf_dropout_backward(NULL, &a, 0.5f, SEED, 0, 0, 0), RF_ERR_INVALID_ARG, "rf_dropout_backward: din is NULL");
    TH_FAILS(rf_dropout_backward(&a, NULL, 0.5f, SEED, 0, 0, 0), RF_ERR_INVALID_ARG, "rf_dropout_backward: dout is NULL");
    TH_FAILS(rf_dropout_forward(&a, &ids, 0.5f, SEED, 0, 0, 0), RF_ERR_INVALID_ARG, "in must be f32");
    TH_FAILS(rf_dropout_forward(&ids, &a, 0.5f, SEED, 0, 0, 0), RF_ERR_INVALID_ARG, "out has dtype i32, expected f32");
    rf_tensor_free(&a), rf_tensor_free(&b), rf_tensor_free(&c), rf_tensor_free(&d), rf_tensor_free(&ids);
    rf_device_close(cpu);
}

/* Dropping a tensor chunk by chunk, each chunk starting at its word offset
 * (as the chunked feed-forward does), equals dropping it whole, on both
 * backends; offsets that are not multiples of 4 split Philox blocks, and
 * chunks of 1 and 2 words lie inside one block. */
static void chunks_with_offsets_equal_the_whole(rf_device *dev) {
    const size_t n = 1037, cuts[] = {0, 1, 3, 37, n};
    float *x = th_random(n, 9, 1.0f);
    rf_tensor whole = TH_TENSOR(dev, RF_F32, x, 1037), in = TH_TENSOR(dev, RF_F32, x, 1037);
    rf_tensor out = TH_TENSOR(dev, RF_F32, NULL, 1037), part, ipart;
    TH_OK(rf_dropout_forward(&whole, &in, 0.4f, SEED, 5, 2, 0));
    for (int c = 3; c >= 0; c--) { /* last chunk first: order does not matter */
        int64_t len = (int64_t)(cuts[c + 1] - cuts[c]);
        TH_OK(rf_tensor_view(&part, out.buf, cuts[c], RF_F32, 1, &len));
        TH_OK(rf_tensor_view(&ipart, in.buf, cuts[c], RF_F32, 1, &len));
        TH_OK(rf_dropout_forward(&part, &ipart, 0.4f, SEED, 5, 2, cuts[c]));
    }
    float *a = th_download_f32(&whole), *b = th_download_f32(&out);
    assert_bits_equal(b, a, n, "dropout in chunks vs whole");
    free(x), free(a), free(b);
    rf_tensor_free(&whole), rf_tensor_free(&in), rf_tensor_free(&out);
}

static void chunk_offsets_cpu(void **state) {
    rf_device *dev = th_cpu();
    chunks_with_offsets_equal_the_whole(dev);
    rf_device_close(dev);
}

static void chunk_offsets_opencl(void **state) {
    rf_device *dev;
    TH_CL_OR_SKIP(dev);
    chunks_with_offsets_equal_the_whole(dev);
    rf_device_close(dev);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cpu_matches_direct_mask),
        cmocka_unit_test(opencl_bit_identical_to_cpu),
        cmocka_unit_test(kept_fraction_and_scale),
        cmocka_unit_test(backward_cpu),
        cmocka_unit_test(backward_opencl),
        cmocka_unit_test(masks_depend_on_seed_stream_step),
        cmocka_unit_test(p_zero_cpu),
        cmocka_unit_test(p_zero_opencl),
        cmocka_unit_test(rejects_bad_arguments),
        cmocka_unit_test(chunk_offsets_cpu),
        cmocka_unit_test(chunk_offsets_opencl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
