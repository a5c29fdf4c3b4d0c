/* Full attention, §6 (and, with shared_qk, LSH attention's oracle,
 * §5.2/§5.4): the cpu op against the naive definition, its backward against
 * central differences (with shared_qk through the normalised keys too), the
 * OpenCL op against the cpu op, causality, O(L) scratch memory, and argument
 * checks. */
#include "attention_ref.h"

#define FULL(B_, L_, H_, d_, causal_, padded_, shared_)                                                   \
    ((attn_case){.B = B_, .L = L_, .local = false, .padded = padded_,                                        \
                 .cfg = {.n_heads = H_, .head_dim = d_, .causal = causal_, .shared_qk = shared_}})

static void cpu_forward_matches_naive(void **state) {
    (void)state;
    rf_device *cpu = th_cpu();
    const attn_case cases[] = {
        FULL(2, 40, 2, 8, false, false, false), FULL(2, 40, 2, 8, true, true, false),
        FULL(1, 33, 1, 16, true, true, false), /* query 0 sees only masked keys: uniform */
        FULL(2, 40, 2, 8, false, true, true),  FULL(1, 33, 2, 8, true, true, true),
    };
    attn_check_naive(cpu, rf_full_attention_forward, cases, sizeof cases / sizeof *cases, "full attention");
    rf_device_close(cpu);
}

/* Probability dropout (§2): window key j is key position j, word
 * ((b·H + h)·L + i)·L + j; the naive definition draws the same words. */
static void cpu_forward_with_dropout_matches_naive(void **state) {
    (void)state;
    rf_device *cpu = th_cpu();
    const attn_case cases[] = {
        attn_dropout(FULL(2, 40, 2, 8, true, true, false), 0.3f, 31, 0),
        attn_dropout(FULL(1, 33, 1, 16, true, true, false), 0.5f, 32, 2), /* query 0 fully masked */
        attn_dropout(FULL(2, 40, 2, 8, false, true, true), 0.2f, 33, 1),
        attn_dropout(FULL(1, 200, 2, 8, false, false, false), 0.25f, 34, 9),
    };
    attn_check_naive(cpu, rf_full_attention_forward, cases, sizeof cases / sizeof *cases,
                     "full attention with dropout");
    rf_device_close(cpu);
}

static void cpu_backward_matches_finite_differences(void **state) {
    (void)state;
    attn_check_fd(rf_full_attention_forward, rf_full_attention_backward, &FULL(2, 7, 2, 4, true, true, false), 41);
    /* shared QK: dq carries the path through the normalised keys (§5.2). */
    attn_check_fd(rf_full_attention_forward, rf_full_attention_backward, &FULL(2, 7, 2, 4, true, true, true), 51);
    attn_check_fd(rf_full_attention_forward, rf_full_attention_backward, &FULL(1, 9, 1, 6, false, false, true), 61);
    /* with dropout (masks fixed by seed, stream and step) */
    attn_case drop1 = attn_dropout(FULL(2, 7, 2, 4, true, true, false), 0.3f, 35, 1);
    attn_check_fd(rf_full_attention_forward, rf_full_attention_backward, &drop1, 43);
    attn_case drop2 = attn_dropout(FULL(2, 7, 2, 4, true, true, true), 0.4f, 36, 2);
    attn_check_fd(rf_full_attention_forward, rf_full_attention_backward, &drop2, 53);
}

static void opencl_matches_cpu(void **state) {
    (void)state;
    rf_device *cl;
    TH_CL_OR_SKIP(cl);
    rf_device *cpu = th_cpu();
    const attn_case cases[] = {
        FULL(1, 32, 1, 16, false, false, false), FULL(2, 128, 2, 64, true, true, false),
        FULL(1, 512, 1, 128, true, false, false), FULL(2, 128, 2, 64, true, true, true),
        FULL(1, 32, 2, 16, false, true, true),   FULL(1, 100, 1, 16, false, true, false), /* ragged tiles */
        /* d not a multiple of the work-items per row, L of ragged row and key tiles, causal without
         * padding (the all-future key tiles skipped), with and without shared QK */
        FULL(1, 150, 2, 100, true, false, false), FULL(1, 150, 1, 72, true, false, true),
        attn_dropout(FULL(1, 150, 1, 100, true, false, false), 0.3f, 43, 1),
        /* probability dropout (§2) */
        attn_dropout(FULL(2, 128, 2, 64, true, true, false), 0.3f, 41, 3),
        attn_dropout(FULL(1, 100, 1, 16, false, true, true), 0.5f, 42, 0),
        /* the CPU shape's edges: d = 6 under one float8 slice, L = 37 of ragged float8 lanes */
        FULL(1, 37, 2, 6, true, true, false), FULL(2, 37, 1, 13, false, false, true),
    };
    for (int sh = 0; sh < 2; sh++) {
        setenv("RF_CL_ATTN", TH_CL_SHAPES[sh], 1);
        for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++)
            attn_check_opencl(cl, cpu, rf_full_attention_forward, rf_full_attention_backward, &cases[ci],
                              200 + 7 * ci);
    }
    unsetenv("RF_CL_ATTN");
    rf_device_close(cpu);
    rf_device_close(cl);
}

/* Outputs at positions ≤ t must not change when inputs after t do. */
static void causal_outputs_ignore_the_future(void **state) {
    (void)state;
    rf_device *devs[2] = {th_cpu(), th_cl()};
    for (int shared = 0; shared < 2; shared++) {
        attn_case c = FULL(2, 50, 2, 16, true, false, shared);
        for (int di = 0; di < 2 && devs[di]; di++)
            attn_check_causal(devs[di], rf_full_attention_forward, &c, 20,
                              di ? (shared ? "opencl shared-qk" : "opencl") : (shared ? "cpu shared-qk" : "cpu"));
    }
    for (int di = 0; di < 2; di++)
        if (devs[di]) rf_device_close(devs[di]);
}

/* Full attention is O(L²) work but O(L) memory (§5, §6): the scratch of a
 * forward and backward pass stays far below one L×L matrix. */
static void scratch_memory_is_linear_in_length(void **state) {
    (void)state;
    rf_device *devs[2] = {th_cpu(), th_cl()};
    for (int di = 0; di < 2 && devs[di]; di++) {
        rf_device *dev = devs[di];
        const int64_t L = 1024, d = 16;
        rf_attention_config cfg = {.n_heads = 1, .head_dim = (int)d, .causal = true, .shared_qk = true};
        float *x = th_random((size_t)(L * d), 81, 1.0f);
        rf_tensor q = TH_TENSOR(dev, RF_F32, x, 1, L, d), v = TH_TENSOR(dev, RF_F32, x, 1, L, d);
        rf_tensor out = TH_TENSOR(dev, RF_F32, NULL, 1, L, d), lse = TH_TENSOR(dev, RF_F32, NULL, 1, 1, L);
        rf_tensor dq = TH_TENSOR(dev, RF_F32, NULL, 1, L, d), dv = TH_TENSOR(dev, RF_F32, NULL, 1, L, d);
        rf_memory_stats before, after;
        TH_OK(rf_device_reset_peak(dev));
        TH_OK(rf_device_memory(dev, &before));
        TH_OK(rf_full_attention_forward(&out, &lse, &q, NULL, &v, NULL, &cfg));
        TH_OK(rf_full_attention_backward(&dq, NULL, &dv, &out, &out, &lse, &q, NULL, &v, NULL, &cfg));
        TH_OK(rf_device_sync(dev));
        TH_OK(rf_device_memory(dev, &after));
        size_t scratch = after.peak_bytes - before.in_use_bytes, square = (size_t)(L * L) * sizeof(float);
        if (scratch * 16 > square)
            fail_msg("%s: full attention used %zu bytes of scratch for L = %lld (L×L floats = %zu)",
                     di ? "opencl" : "cpu", scratch, (long long)L, square);
        free(x);
        rf_tensor_free(&q), rf_tensor_free(&v), rf_tensor_free(&out), rf_tensor_free(&lse), rf_tensor_free(&dq),
            rf_tensor_free(&dv);
        rf_device_close(dev);
    }
}

static void rejects_bad_arguments(void **state) {
    (void)state;
    rf_device *cpu = th_cpu();
    rf_attention_config cfg = {.n_heads = 2, .head_dim = 8, .shared_qk = true};
    rf_tensor q = TH_TENSOR(cpu, RF_F32, NULL, 1, 20, 16), k = TH_TENSOR(cpu, RF_F32, NULL, 1, 20, 16);
    rf_tensor v = TH_TENSOR(cpu, RF_F32, NULL, 1, 20, 16), out = TH_TENSOR(cpu, RF_F32, NULL, 1, 20, 16);
    rf_tensor lse = TH_TENSOR(cpu, RF_F32, NULL, 1, 2, 20), dq = TH_TENSOR(cpu, RF_F32, NULL, 1, 20, 16);
    rf_tensor dk = TH_TENSOR(cpu, RF_F32, NULL, 1, 20, 16), dv = TH_TENSOR(cpu, RF_F32, NULL, 1, 20, 16);
    TH_OK(rf_tensor_fill_f32(&q, 0.5f));
    TH_OK(rf_tensor_fill_f32(&v, 0.5f));
    /* L need not be a multiple of anything; chunk_len is ignored. */
    TH_OK(rf_full_attention_forward(&out, &lse, &q, NULL, &v, NULL, &cfg));
    TH_OK(rf_full_attention_forward(&out, &lse, &q, &q, &v, NULL, &cfg));
    TH_FAILS(rf_full_attention_forward(&out, &lse, &q, &k, &v, NULL, &cfg), RF_ERR_INVALID_ARG,
             "k must be NULL or q");
    TH_OK(rf_full_attention_backward(&dq, NULL, &dv, &out, &out, &lse, &q, NULL, &v, NULL, &cfg));
    TH_FAILS(rf_full_attention_backward(&dq, &dk, &dv, &out, &out, &lse, &q, NULL, &v, NULL, &cfg),
             RF_ERR_INVALID_ARG, "dk must be NULL");
    cfg.shared_qk = false;
    TH_FAILS(rf_full_attention_forward(&out, &lse, &q, NULL, &v, NULL, &cfg), RF_ERR_INVALID_ARG, "k is NULL");
    TH_FAILS(rf_full_attention_backward(&dq, NULL, &dv, &out, &out, &lse, &q, &k, &v, NULL, &cfg),
             RF_ERR_INVALID_ARG, "dk is NULL");
    TH_FAILS(rf_full_attention_forward(&out, &lse, &q, &k, &v, NULL, NULL), RF_ERR_INVALID_ARG, "cfg is NULL");
    TH_FAILS(rf_full_attention_forward(&out, &dq, &q, &k, &v, NULL, &cfg), RF_ERR_INVALID_ARG,
             "lse has shape [1, 20, 16], expected [1, 2, 20]");
    TH_FAILS(rf_full_attention_forward(&v, &lse, &q, &k, &v, NULL, &cfg), RF_ERR_INVALID_ARG, "out overlaps an input");
    cfg.head_dim = 0;
    TH_FAILS(rf_full_attention_forward(&out, &lse, &q, &k, &v, NULL, &cfg), RF_ERR_INVALID_ARG,
             "head_dim = 0 must be positive");
    cfg = (rf_attention_config){.n_heads = 2, .head_dim = 8, .dropout = 1.0f};
    TH_FAILS(rf_full_attention_forward(&out, &lse, &q, &k, &v, NULL, &cfg), RF_ERR_INVALID_ARG,
             "dropout = 1 must be in [0, 1)");
    TH_FAILS(rf_full_attention_backward(&dq, &dk, &dv, &out, &out, &lse, &q, &k, &v, NULL, &cfg), RF_ERR_INVALID_ARG,
             "dropout = 1 must be in [0, 1)");
    cfg = (rf_attention_config){.n_heads = 1, .head_dim = 129};
    TH_FAILS(rf_full_attention_forward(&out, &lse, &q, &k, &v, NULL, &cfg), RF_ERR_UNSUPPORTED,
             "head_dim = 129 exceeds the supported maximum 128");
    rf_tensor *all[] = {&q, &k, &v, &out, &lse, &dq, &dk, &dv};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) rf_tensor_free(all[i]);
    rf_device_close(cpu);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cpu_forward_matches_naive),
        cmocka_unit_test(cpu_forward_with_dropout_matches_naive),
        cmocka_unit_test(cpu_backward_matches_finite_differences),
        cmocka_unit_test(opencl_matches_cpu),
        cmocka_unit_test(causal_outputs_ignore_the_future),
        cmocka_unit_test(scratch_memory_is_linear_in_length),
        cmocka_unit_test(rejects_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
