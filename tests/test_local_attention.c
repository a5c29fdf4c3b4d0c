/* Local (chunked) attention, §6: the cpu op against the naive
 * definition, its backward against central differences, the OpenCL op
 * against the cpu op over a shape grid, causality, agreement with full
 * attention when one chunk covers the sequence, and argument checks. */
#include "attention_ref.h"

#define LOCAL(B_, L_, H_, d_, chunk_, before_, after_, causal_, padded_)                                   \
    ((attn_case){.B = B_, .L = L_, .local = true, .padded = padded_,                                          \
                 .cfg = {.n_heads = H_, .head_dim = d_, .chunk_len = chunk_, .chunks_before = before_,      \
                         .chunks_after = after_, .causal = causal_}})

static void cpu_forward_matches_naive(void **state) {
    (void)state;
    rf_device *cpu = th_cpu();
    const attn_case cases[] = {
        LOCAL(2, 64, 2, 8, 16, 1, 0, false, false), LOCAL(2, 64, 2, 8, 16, 1, 0, true, true),
        LOCAL(1, 64, 1, 16, 32, 0, 0, false, true), LOCAL(1, 96, 2, 8, 16, 2, 1, true, false),
        LOCAL(2, 32, 1, 8, 16, 1, 1, false, false), /* two chunks: chunk 1−1 and 0+1 are the same chunk, twice */
        LOCAL(2, 24, 2, 8, 64, 1, 0, true, true),   /* L ≤ chunk_len: one chunk, as the HF model */
        LOCAL(1, 64, 2, 8, 16, 1, 0, true, true),   /* query 0 sees only masked keys: uniform over its window */
    };
    attn_check_naive(cpu, rf_local_attention_forward, cases, sizeof cases / sizeof *cases, "local attention");
    rf_device_close(cpu);
}

/* Probability dropout (§2): the cpu op against the naive definition with the
 * same Philox keep decisions per window key. A chunk reached through two
 * window slots draws its keys twice, independently; the 256-query case
 * draws ~10⁵ words, so a wrong keep rate would show in its outputs. */
static void cpu_forward_with_dropout_matches_naive(void **state) {
    (void)state;
    rf_device *cpu = th_cpu();
    const attn_case cases[] = {
        attn_dropout(LOCAL(2, 64, 2, 8, 16, 1, 0, true, true), 0.3f, 7, 0),
        attn_dropout(LOCAL(2, 32, 1, 8, 16, 1, 1, false, false), 0.5f, 8, 3), /* the same chunk twice */
        attn_dropout(LOCAL(2, 24, 2, 8, 64, 1, 0, true, true), 0.1f, 9, 1),   /* one chunk */
        attn_dropout(LOCAL(1, 64, 2, 8, 16, 1, 0, true, true), 0.2f, 10, 2),  /* query 0 fully masked */
        attn_dropout(LOCAL(1, 256, 2, 8, 64, 1, 1, false, false), 0.25f, 11, 5),
    };
    attn_check_naive(cpu, rf_local_attention_forward, cases, sizeof cases / sizeof *cases,
                     "local attention with dropout");
    rf_device_close(cpu);
}

/* Dropout changes out but not lse, and a different step draws another mask. */
static void dropout_changes_out_not_lse(void **state) {
    (void)state;
    rf_device *cpu = th_cpu();
    attn_case c = LOCAL(1, 64, 2, 8, 16, 1, 0, true, false), d = attn_dropout(c, 0.3f, 5, 0), e = d;
    e.cfg.step = 1;
    size_t n = attn_numel(&c), nl = (size_t)c.L * c.cfg.n_heads;
    float *q = th_random(n, 91, 1.5f), *k = th_random(n, 92, 1.5f), *v = th_random(n, 93, 1.0f);
    float *o[3], *l[3];
    const attn_case *cs[3] = {&c, &d, &e};
    for (int i = 0; i < 3; i++) {
        o[i] = malloc(n * sizeof(float)), l[i] = malloc(nl * sizeof(float));
        attn_run_forward(cpu, rf_local_attention_forward, cs[i], q, k, v, NULL, o[i], l[i]);
    }
    assert_memory_equal(l[0], l[1], nl * sizeof(float));
    assert_memory_not_equal(o[0], o[1], n * sizeof(float));
    assert_memory_not_equal(o[1], o[2], n * sizeof(float));
    for (int i = 0; i < 3; i++) free(o[i]), free(l[i]);
    free(q), free(k), free(v);
    rf_device_close(cpu);
}

static void cpu_backward_matches_finite_differences(void **state) {
    (void)state;
    attn_check_fd(rf_local_attention_forward, rf_local_attention_backward, &LOCAL(2, 12, 2, 4, 4, 1, 0, true, true),
                  41);
    /* look-ahead too; query 0 sees only masked keys (uniform attention, §5.4) */
    attn_check_fd(rf_local_attention_forward, rf_local_attention_backward, &LOCAL(1, 12, 1, 6, 4, 1, 1, true, true),
                  51);
    /* with dropout: the masks are fixed by (seed, stream, step), so out is smooth in q, k, v */
    attn_case drop1 = attn_dropout(LOCAL(2, 12, 2, 4, 4, 1, 0, true, true), 0.3f, 12, 4);
    attn_check_fd(rf_local_attention_forward, rf_local_attention_backward, &drop1, 43);
    attn_case drop2 = attn_dropout(LOCAL(1, 12, 1, 6, 4, 1, 1, true, true), 0.5f, 13, 0);
    attn_check_fd(rf_local_attention_forward, rf_local_attention_backward, &drop2, 53);
}

static void opencl_matches_cpu(void **state) {
    (void)state;
    rf_device *cl;
    TH_CL_OR_SKIP(cl);
    rf_device *cpu = th_cpu();
    /* A modest sample of L ∈ {32, 128, 512}, d ∈ {16, 64, 128}, m_loc ∈ {16, 64},
     * H, B ∈ {1, 2}, causal or not, padded or not, and the look-around variants. */
    const attn_case cases[] = {
        LOCAL(1, 32, 1, 16, 16, 1, 0, true, false),  LOCAL(2, 128, 2, 64, 16, 1, 0, false, true),
        LOCAL(1, 512, 2, 128, 64, 1, 0, true, true), LOCAL(2, 128, 1, 128, 64, 1, 0, false, false),
        LOCAL(2, 32, 2, 64, 64, 1, 0, true, true),   LOCAL(1, 128, 2, 16, 16, 0, 0, false, false),
        LOCAL(1, 128, 1, 16, 16, 1, 1, false, true), LOCAL(2, 64, 1, 16, 32, 1, 1, true, false),
        LOCAL(1, 96, 1, 16, 24, 1, 0, false, true), /* chunk not a multiple of any work-group size */
        /* the kernels' tiling edges (cl/local_attention.cl): d = 100 and 72 are not multiples of the
         * work-items per row (16), chunk 24 is shorter than a row tile, chunk 80 is two key tiles and
         * three row tiles with ragged ends; causal without padding skips the all-future key tiles */
        LOCAL(1, 72, 2, 100, 24, 1, 1, true, true), LOCAL(2, 160, 1, 72, 80, 1, 0, true, false),
        LOCAL(1, 50, 1, 40, 64, 1, 0, true, false), /* a single chunk, L < chunk_len */
        /* probability dropout (§2): both backends draw the same words */
        attn_dropout(LOCAL(2, 128, 2, 64, 16, 1, 0, false, true), 0.3f, 21, 2),
        attn_dropout(LOCAL(1, 128, 1, 16, 16, 1, 1, true, true), 0.5f, 22, 7),
        attn_dropout(LOCAL(1, 96, 1, 16, 24, 1, 0, false, true), 0.1f, 23, 1),
        attn_dropout(LOCAL(2, 160, 1, 72, 80, 1, 0, true, false), 0.2f, 24, 4), /* with skipped tiles */
        /* the CPU shape's edges: d = 6 under one float8 slice, d = 13 and chunks of 12 and 5 that
         * leave padding lanes in a block of 8, the benchmark model's layer (d 64, chunk 64, causal);
         * chunks up to 64 take its fused backward, chunk 80 (above) its dq and dk/dv kernels */
        LOCAL(1, 60, 2, 6, 12, 1, 0, true, true), LOCAL(2, 40, 1, 13, 5, 2, 1, false, true),
        attn_dropout(LOCAL(1, 40, 2, 13, 5, 1, 0, true, false), 0.3f, 25, 1),
        LOCAL(1, 256, 2, 64, 64, 1, 0, true, false),
    };
    for (int sh = 0; sh < 2; sh++) {
        setenv("RF_CL_ATTN", TH_CL_SHAPES[sh], 1);
        for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++)
            attn_check_opencl(cl, cpu, rf_local_attention_forward, rf_local_attention_backward, &cases[ci],
                              100 + 7 * ci);
    }
    unsetenv("RF_CL_ATTN");
    rf_device_close(cpu);
    rf_device_close(cl);
}

/* Outputs at positions ≤ t must not change when inputs after t do (causal),
 * including through the cyclic look-back of chunk 0 — on every backend, and
 * on OpenCL in both kernel shapes. */
static void causal_outputs_ignore_the_future(void **state) {
    (void)state;
    rf_device *devs[2] = {th_cpu(), th_cl()};
    attn_case c = LOCAL(2, 64, 2, 16, 16, 1, 0, true, false);
    attn_check_causal(devs[0], rf_local_attention_forward, &c, 37, "cpu");
    for (int sh = 0; devs[1] && sh < 2; sh++) {
        setenv("RF_CL_ATTN", TH_CL_SHAPES[sh], 1);
        attn_check_causal(devs[1], rf_local_attention_forward, &c, 37, TH_CL_SHAPES[sh]);
    }
    unsetenv("RF_CL_ATTN");
    for (int di = 0; di < 2 && devs[di]; di++) rf_device_close(devs[di]);
}

/* RF_CL_ATTN picks the OpenCL kernels' shape: a value that is neither is
 * refused by the op, naming it. */
static void opencl_rejects_an_unknown_shape(void **state) {
    (void)state;
    rf_device *cl;
    TH_CL_OR_SKIP(cl);
    rf_attention_config cfg = {.n_heads = 1, .head_dim = 8, .chunk_len = 16, .chunks_before = 1};
    float *x = th_random(32 * 8, 5, 1.0f);
    rf_tensor q = TH_TENSOR(cl, RF_F32, x, 1, 32, 8), out = TH_TENSOR(cl, RF_F32, NULL, 1, 32, 8);
    setenv("RF_CL_ATTN", "fpga", 1);
    TH_FAILS(rf_local_attention_forward(&out, NULL, &q, &q, &q, NULL, &cfg), RF_ERR_INVALID_ARG,
             "RF_CL_ATTN='fpga': expected gpu or cpu");
    unsetenv("RF_CL_ATTN");
    TH_OK(rf_local_attention_forward(&out, NULL, &q, &q, &q, NULL, &cfg));
    free(x);
    rf_tensor_free(&q), rf_tensor_free(&out);
    rf_device_close(cl);
}

/* With chunk_len ≥ L local attention is full attention (§6, HF). */
static void one_chunk_equals_full_attention(void **state) {
    (void)state;
    rf_device *devs[2] = {th_cpu(), th_cl()};
    attn_case loc = LOCAL(2, 48, 2, 16, 64, 1, 0, true, true), full = loc;
    full.local = false;
    size_t n = attn_numel(&loc), nl = (size_t)loc.B * loc.L * loc.cfg.n_heads;
    for (int di = 0; di < 2 && devs[di]; di++) {
        float *q = th_random(n, 71, 1.5f), *k = th_random(n, 72, 1.5f), *v = th_random(n, 73, 1.0f);
        int32_t *mask = attn_mask(&loc);
        float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *la = malloc(nl * 4), *lb = malloc(nl * 4);
        attn_run_forward(devs[di], rf_local_attention_forward, &loc, q, k, v, mask, a, la);
        attn_run_forward(devs[di], rf_full_attention_forward, &full, q, k, v, mask, b, lb);
        th_assert_close(a, b, n, 1e-6, "local (one chunk) vs full: out");
        th_assert_close(la, lb, nl, 1e-6, "local (one chunk) vs full: lse");
        free(q), free(k), free(v), free(mask), free(a), free(b), free(la), free(lb);
        rf_device_close(devs[di]);
    }
}

static void rejects_bad_arguments(void **state) {
    (void)state;
    rf_device *cpu = th_cpu();
    rf_attention_config cfg = {.n_heads = 2, .head_dim = 8, .chunk_len = 32, .chunks_before = 1};
    float *x = th_random(48 * 16, 3, 1.0f); /* one valid call runs: real inputs */
    rf_tensor q = TH_TENSOR(cpu, RF_F32, x, 1, 48, 16), k = TH_TENSOR(cpu, RF_F32, x, 1, 48, 16);
    rf_tensor v = TH_TENSOR(cpu, RF_F32, x, 1, 48, 16), out = TH_TENSOR(cpu, RF_F32, NULL, 1, 48, 16);
    free(x);
    rf_tensor lse = TH_TENSOR(cpu, RF_F32, NULL, 1, 2, 48), bad = TH_TENSOR(cpu, RF_F32, NULL, 1, 47, 16);
    rf_tensor fmask = TH_TENSOR(cpu, RF_F32, NULL, 1, 48);
    TH_FAILS(rf_local_attention_forward(&out, &lse, &q, &k, &v, NULL, &cfg), RF_ERR_INVALID_ARG,
             "L = 48 is not a multiple of chunk_len = 32");
    cfg.chunk_len = 16;
    TH_OK(rf_local_attention_forward(&out, &lse, &q, &k, &v, NULL, &cfg));
    TH_FAILS(rf_local_attention_forward(&out, &lse, &q, &bad, &v, NULL, &cfg), RF_ERR_INVALID_ARG,
             "k has shape [1, 47, 16], expected [1, 48, 16]");
    TH_FAILS(rf_local_attention_forward(&out, &bad, &q, &k, &v, NULL, &cfg), RF_ERR_INVALID_ARG, "lse has shape");
    TH_FAILS(rf_local_attention_forward(NULL, &lse, &q, &k, &v, NULL, &cfg), RF_ERR_INVALID_ARG, "out is NULL");
    TH_FAILS(rf_local_attention_forward(&out, &lse, NULL, &k, &v, NULL, &cfg), RF_ERR_INVALID_ARG, "q is NULL");
    TH_FAILS(rf_local_attention_forward(&out, &lse, &q, &k, NULL, NULL, &cfg), RF_ERR_INVALID_ARG, "v is NULL");
    TH_FAILS(rf_local_attention_forward(&out, &lse, &q, &k, &v, NULL, NULL), RF_ERR_INVALID_ARG, "cfg is NULL");
    TH_FAILS(rf_local_attention_forward(&out, &lse, &q, &k, &v, &fmask, &cfg), RF_ERR_INVALID_ARG,
             "mask has dtype f32, expected i32");
    TH_FAILS(rf_local_attention_forward(&q, &lse, &q, &k, &v, NULL, &cfg), RF_ERR_INVALID_ARG, "out overlaps an input");
    rf_attention_config wide = cfg;
    wide.n_heads = 4;
    TH_FAILS(rf_local_attention_forward(&out, &lse, &q, &k, &v, NULL, &wide), RF_ERR_INVALID_ARG,
             "q has shape [1, 48, 16], expected [*, *, 32]");
    wide = (rf_attention_config){.n_heads = 1, .head_dim = 256, .chunk_len = 16};
    rf_tensor big = TH_TENSOR(cpu, RF_F32, NULL, 1, 16, 256);
    TH_FAILS(rf_local_attention_forward(&big, NULL, &big, &big, &big, NULL, &wide), RF_ERR_UNSUPPORTED,
             "head_dim = 256 exceeds the supported maximum 128");
    wide = cfg;
    wide.shared_qk = true;
    TH_FAILS(rf_local_attention_forward(&out, &lse, &q, &k, &v, NULL, &wide), RF_ERR_INVALID_ARG,
             "shared_qk is for full attention only");
    wide = cfg;
    wide.chunks_before = -1;
    TH_FAILS(rf_local_attention_forward(&out, &lse, &q, &k, &v, NULL, &wide), RF_ERR_INVALID_ARG,
             "chunks_before = -1");
    wide = cfg;
    wide.chunks_after = 4;
    TH_FAILS(rf_local_attention_forward(&out, &lse, &q, &k, &v, NULL, &wide), RF_ERR_UNSUPPORTED,
             "exceed the 3 chunks of L = 48");
    wide = cfg;
    wide.dropout = 1.0f;
    TH_FAILS(rf_local_attention_forward(&out, &lse, &q, &k, &v, NULL, &wide), RF_ERR_INVALID_ARG,
             "dropout = 1 must be in [0, 1)");
    wide.dropout = -0.1f;
    TH_FAILS(rf_local_attention_forward(&out, &lse, &q, &k, &v, NULL, &wide), RF_ERR_INVALID_ARG,
             "dropout = -0.1 must be in [0, 1)");
    rf_tensor dq = TH_TENSOR(cpu, RF_F32, NULL, 1, 48, 16), dk = TH_TENSOR(cpu, RF_F32, NULL, 1, 48, 16);
    rf_tensor dv = TH_TENSOR(cpu, RF_F32, NULL, 1, 48, 16);
    TH_OK(rf_local_attention_backward(&dq, &dk, &dv, &out, &out, &lse, &q, &k, &v, NULL, &cfg));
    TH_FAILS(rf_local_attention_backward(&dq, NULL, &dv, &out, &out, &lse, &q, &k, &v, NULL, &cfg),
             RF_ERR_INVALID_ARG, "dk is NULL");
    TH_FAILS(rf_local_attention_backward(&dq, &dk, &dv, &out, &out, NULL, &q, &k, &v, NULL, &cfg),
             RF_ERR_INVALID_ARG, "lse is NULL");
    TH_FAILS(rf_local_attention_backward(&dq, &dk, &k, &out, &out, &lse, &q, &k, &v, NULL, &cfg),
             RF_ERR_INVALID_ARG, "dv overlaps an input");
    wide = cfg;
    wide.dropout = 1.0f;
    TH_FAILS(rf_local_attention_backward(&dq, &dk, &dv, &out, &out, &lse, &q, &k, &v, NULL, &wide),
             RF_ERR_INVALID_ARG, "dropout = 1 must be in [0, 1)");
    rf_tensor *all[] = {&q, &k, &v, &out, &lse, &bad, &fmask, &big, &dq, &dk, &dv};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) rf_tensor_free(all[i]);
    rf_device_close(cpu);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cpu_forward_matches_naive),
        cmocka_unit_test(cpu_forward_with_dropout_matches_naive),
        cmocka_unit_test(dropout_changes_out_not_lse),
        cmocka_unit_test(cpu_backward_matches_finite_differences),
        cmocka_unit_test(opencl_matches_cpu),
        cmocka_unit_test(causal_outputs_ignore_the_future),
        cmocka_unit_test(opencl_rejects_an_unknown_shape),
        cmocka_unit_test(one_chunk_equals_full_attention),
        cmocka_unit_test(rejects_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
