/* Philox4x32-10 (§2): the Random123 known answers on the host and,
 * through rf_philox_fill, on cpu and OpenCL; OpenCL bit-identical to cpu;
 * the uniform, dropout-threshold and Box–Muller helpers; argument checks. */
#include "harness.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/philox.h"

typedef struct { uint32_t ctr[4], key[2], out[4]; } kat;
static const kat kats[3] = {
    {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};

static void host_known_answers(void **state) {
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        rf_philox4x32_10(kats[i].ctr, kats[i].key, out);
        for (int j = 0; j < 4; j++) assert_int_equal(out[j], kats[i].out[j]);
    }
}

/* The known answer i through the op: counter (block lo, block hi, stream,
 * step), key = seed low word first (§2). */
static void fill_known_answers(rf_device *dev) {
    for (int i = 0; i < 3; i++) {
        const kat *k = &kats[i];
        rf_tensor t = TH_TENSOR(dev, RF_I32, NULL, 4);
        uint64_t seed = k->key[0] | (uint64_t)k->key[1] << 32, blk = k->ctr[0] | (uint64_t)k->ctr[1] << 32;
        TH_OK(rf_philox_fill(&t, seed, k->ctr[2], k->ctr[3], blk));
        int32_t *w = th_download_i32(&t);
        for (int j = 0; j < 4; j++) assert_int_equal((uint32_t)w[j], k->out[j]);
        free(w);
        rf_tensor_free(&t);
    }
}

static void cpu_fill_known_answers(void **state) {
    rf_device *cpu = th_cpu();
    fill_known_answers(cpu);
    rf_device_close(cpu);
}

static void opencl_fill_known_answers(void **state) {
    rf_device *cl;
    TH_CL_OR_SKIP(cl);
    fill_known_answers(cl);
    rf_device_close(cl);
}

/* Words and uniforms, at an odd offset into a buffer and an odd length (tail
 * guards), identical bit for bit on both devices and to the host helpers. */
static void opencl_matches_cpu_bit_for_bit(void **state) {
    rf_device *cl;
    TH_CL_OR_SKIP(cl);
    rf_device *cpu = th_cpu();
    const size_t n = 1037;
    const uint64_t seed = 0x0123456789abcdefull, blk = (1ull << 33) + 5;
    const uint32_t stream = rf_philox_stream(3, RF_PHILOX_DROPOUT_ATTN), step = 77;
    for (int as_float = 0; as_float < 2; as_float++) {
        rf_dtype dt = as_float ? RF_F32 : RF_I32;
        rf_tensor c = TH_TENSOR(cpu, dt, NULL, 1037);
        th_guarded g = th_guarded_alloc(cl, dt, 1, (int64_t[]){1037});
        TH_OK(rf_philox_fill(&c, seed, stream, step, blk));
        TH_OK(rf_philox_fill(&g.t, seed, stream, step, blk));
        uint32_t *a = malloc(n * 4), *b = malloc(n * 4), *host = malloc(n * 4);
        TH_OK(rf_tensor_download(&c, a, n * 4));
        TH_OK(rf_tensor_download(&g.t, b, n * 4));
        rf_philox_words(host, n, seed, stream, step, blk);
        for (size_t i = 0; i < n; i++) {
            uint32_t want = host[i];
            if (as_float) {
                float u = rf_philox_uniform(host[i]);
                memcpy(&want, &u, 4);
                assert_true(u >= 0.0f && u < 1.0f);
            }
            if (a[i] != want || b[i] != want)
                fail_msg("element %zu (%s): cpu %08x, opencl %08x, host %08x", i, as_float ? "uniform" : "word", a[i],
                         b[i], want);
        }
        /* Word 4·blk + i of the stream is what rf_philox_word says. */
        assert_int_equal(host[6], rf_philox_word(seed, stream, step, 4 * blk + 6));
        th_guard_check(&g, "rf_philox_fill opencl");
        free(a), free(b), free(host);
        rf_tensor_free(&c);
        th_guarded_free(&g);
    }
    rf_device_close(cpu);
    rf_device_close(cl);
}

static void uniform_and_dropout_threshold(void **state) {
    assert_true(rf_philox_uniform(0) == 0.0f);
    assert_true(rf_philox_uniform(0xffffffffu) == 16777215.0f / 16777216.0f);
    assert_true(rf_philox_uniform(0x80000000u) == 0.5f);
    /* keep iff w ≥ round(p · 2³²) */
    rf_dropout_threshold t = rf_philox_dropout_threshold(0.25f);
    assert_int_equal(t.threshold, 0x40000000u);
    assert_false(rf_philox_keep(0x3fffffffu, t));
    assert_true(rf_philox_keep(0x40000000u, t));
    t = rf_philox_dropout_threshold(0.0f);
    assert_true(rf_philox_keep(0, t));
    t = rf_philox_dropout_threshold(1.0f);
    assert_false(rf_philox_keep(0xffffffffu, t));
    /* Over many words the kept fraction is 1 − p. */
    size_t kept = 0, n = 100000;
    t = rf_philox_dropout_threshold(0.1f);
    for (size_t i = 0; i < n; i++) kept += rf_philox_keep(rf_philox_word(9, 1, 2, i), t);
    assert_true(fabs((double)kept / n - 0.9) < 0.005);
}

static void normals_are_standard_and_deterministic(void **state) {
    const size_t n = 200001; /* odd: the last pair's sine is dropped */
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    rf_philox_normals(x, n, 42, rf_philox_stream(0, RF_PHILOX_ROTATIONS), 0);
    rf_philox_normals(y, n, 42, rf_philox_stream(0, RF_PHILOX_ROTATIONS), 0);
    assert_memory_equal(x, y, n * sizeof *x);
    double mean = 0, var = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(isfinite(x[i]));
        mean += x[i];
    }
    mean /= n;
    for (size_t i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= n;
    assert_true(fabs(mean) < 0.01);
    assert_true(fabs(var - 1.0) < 0.02);
    /* The first pair from its words by the formula of philox.h. */
    double u1 = 1.0 - rf_philox_uniform(rf_philox_word(42, 0, 0, 0)), u2 = rf_philox_uniform(rf_philox_word(42, 0, 0, 1));
    assert_true(x[0] == (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586476925286766559 * u2)));
    assert_true(x[1] == (float)(sqrt(-2 * log(u1)) * sin(6.283185307179586476925286766559 * u2)));
    /* Another stream, step or seed gives other numbers. */
    rf_philox_normals(y, 64, 42, rf_philox_stream(1, RF_PHILOX_ROTATIONS), 0);
    assert_memory_not_equal(x, y, 64 * sizeof *x);
    rf_philox_normals(y, 64, 42, rf_philox_stream(0, RF_PHILOX_ROTATIONS), 1);
    assert_memory_not_equal(x, y, 64 * sizeof *x);
    rf_philox_normals(y, 64, 43, rf_philox_stream(0, RF_PHILOX_ROTATIONS), 0);
    assert_memory_not_equal(x, y, 64 * sizeof *x);
    assert_int_not_equal(rf_philox_stream(0, RF_PHILOX_DROPOUT_FF), rf_philox_stream(1, RF_PHILOX_ROTATIONS));
    free(x), free(y);
}

static void rejects_bad_arguments(void **state) {
    rf_device *cpu = th_cpu();
    rf_tensor t = TH_TENSOR(cpu, RF_I32, NULL, 8);
    TH_FAILS(rf_philox_fill(NULL, 1, 0, 0, 0), RF_ERR_INVALID_ARG, "out is NULL");
    TH_FAILS(rf_philox_fill(&t, 1, 0, 0, UINT64_MAX), RF_ERR_INVALID_ARG, "overflows");
    TH_OK(rf_philox_fill(&t, 1, 0, 0, UINT64_MAX - 1)); /* 8 words = blocks MAX−1 and MAX */
    rf_tensor_free(&t);
    rf_device_close(cpu);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(host_known_answers),
        cmocka_unit_test(cpu_fill_known_answers),
        cmocka_unit_test(opencl_fill_known_answers),
        cmocka_unit_test(opencl_matches_cpu_bit_for_bit),
        cmocka_unit_test(uniform_and_dropout_threshold),
        cmocka_unit_test(normals_are_standard_and_deterministic),
        cmocka_unit_test(rejects_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
