/* Cached incremental decoding (docs/decode.md): the HF generate(...,
 * use_cache=True) goldens of tests/data/hf_decode (tools/hf_golden.py) on
 * cpu and PoCL — tokens exactly, logits within §12's 1e-4 — the cached path
 * against the recomputing forward pass where they must agree (local-only
 * models), the state's bytes against the documented formula, and the
 * decode attention ops on PoCL against the cpu. */
#include "harness.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "reformer/model.h"
#include "ops/decode_attention.h"

/* Set the rotations HF drew at forward call `step` (rot_index rows (step,
 * layer, positions hashed), blocks of `per` floats in call order). */
static void set_step_rotations(rf_model *m, const int32_t *index, size_t calls, const float *rot, size_t per, int step) {
    for (size_t i = 0; i < calls; i++)
        if (index[3 * i] == step) TH_OK(rf_model_set_rotations(m, index[3 * i + 1], rot + i * per, per));
}

static int argmax(const float *x, int64_t n) {
    int best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = (int)i;
    return best;
}

/* Greedy generation from the case's prompt with HF's rotations, checked
 * step by step against HF's logits and tokens. */
static void hf_case(rf_device *dev, const char *name, const char *where) {
    char dir[1024], f[64];
    snprintf(dir, sizeof dir, "%s/hf_causal", getenv("RF_TEST_DATA"));
    rf_model *m;
    TH_OK(rf_model_load(&m, dev, dir));
    const rf_config *c = rf_model_config(m);
    const int64_t B = 2, V = c->vocab_size;
    size_t n, nt, nl, ni, nr;
    snprintf(f, sizeof f, "%s_prompt.bin", name);
    int32_t *prompt = th_data_file("hf_decode", f, &n);
    snprintf(f, sizeof f, "%s_tokens.bin", name);
    int32_t *tokens = th_data_file("hf_decode", f, &nt);
    snprintf(f, sizeof f, "%s_logits.bin", name);
    float *want = th_data_file("hf_decode", f, &nl);
    snprintf(f, sizeof f, "%s_rot_index.bin", name);
    int32_t *index = th_data_file("hf_decode", f, &ni);
    snprintf(f, sizeof f, "%s_rotations.bin", name);
    float *rot = th_data_file("hf_decode", f, &nr);
    const int64_t L0 = (int64_t)(n / 4 / B), N = (int64_t)(nt / 4 / B);
    assert_int_equal(nl, (size_t)(N * B * V) * 4);
    const size_t calls = ni / 12, per = (size_t)c->num_attention_heads * c->attention_head_size * c->num_hashes *
                                           (c->num_buckets[0] / 2);
    assert_int_equal(nr, calls * per * 4);
    rf_tensor logits = TH_TENSOR(dev, RF_F32, NULL, B, V);
    rf_decoder *d;
    set_step_rotations(m, index, calls, rot, per, 0);
    TH_OK(rf_model_decode_begin(&d, m, prompt, B, L0, L0 + N, &logits));
    for (int64_t s = 0; s < N; s++) {
        if (s > 0) {
            int32_t prev[2] = {tokens[0 * N + s - 1], tokens[1 * N + s - 1]};
            set_step_rotations(m, index, calls, rot, per, (int)s);
            TH_OK(rf_model_decode_step(d, prev, &logits));
        }
        float *got = th_download_f32(&logits);
        char what[128];
        snprintf(what, sizeof what, "hf_decode %s step %lld logits (%s)", name, (long long)s, where);
        th_assert_close(got, want + s * B * V, (size_t)(B * V), 1e-4, what);
        for (int64_t b = 0; b < B; b++) assert_int_equal(argmax(got + b * V, V), tokens[b * N + s]);
        free(got);
    }
    int64_t len;
    TH_OK(rf_model_decode_length(d, &len));
    assert_int_equal(len, L0 + N - 1);
    rf_model_decode_end(d);
    rf_tensor_free(&logits);
    rf_model_free(m);
    free(prompt), free(tokens), free(want), free(index), free(rot);
}

static void hf_golden_cpu(void **state) {
    rf_device *dev = th_cpu();
    const char *where = "cpu";
    hf_case(dev, "long", where);
    hf_case(dev, "short", where);
    hf_case(dev, "padded", where);
    rf_device_close(dev);
}

static void hf_golden_opencl(void **state) {
    rf_device *dev;
    TH_CL_OR_SKIP(dev);
    const char *where = "OpenCL";
    hf_case(dev, "long", where);
    hf_case(dev, "short", where);
    hf_case(dev, "padded", where);
    rf_device_close(dev);
}

/* A small causal model of local layers only: there the cached step sees
 * exactly the keys the full pass's query sees (§6), so the two must agree. */
static rf_config local_config(int layers) {
    rf_config c;
    TH_OK(rf_config_default(&c));
    c.num_layers = layers;
    for (int i = 0; i < layers; i++) c.attn_layers[i] = RF_ATTN_LOCAL;
    c.hidden_size = 32, c.num_attention_heads = 2, c.attention_head_size = 16, c.feed_forward_size = 48;
    c.vocab_size = 50, c.is_decoder = true, c.local_attn_chunk_length = 8, c.lsh_attn_chunk_length = 8;
    c.axial_pos_shape[0] = 8, c.axial_pos_shape[1] = 8, c.axial_pos_embds_dim[0] = 16, c.axial_pos_embds_dim[1] = 16;
    c.max_position_embeddings = 64, c.chunk_size_feed_forward = 0;
    c.hidden_dropout_prob = c.local_attention_probs_dropout_prob = c.lsh_attention_probs_dropout_prob = 0;
    return c;
}

static void cached_vs_recomputed(rf_device *dev, const char *where) {
    rf_config c = local_config(3);
    rf_model *m;
    TH_OK(rf_model_create(&m, dev, &c, 21));
    const int64_t B = 2, L0 = 13, total = 45, V = c.vocab_size;
    int32_t seq[2 * 45];
    for (int64_t i = 0; i < B * total; i++) seq[i] = (int32_t)((i * 7 + 3) % V);
    int32_t prompt[2 * 13], *ids = malloc((size_t)(B * total) * sizeof *ids);
    for (int64_t b = 0; b < B; b++) memcpy(prompt + b * L0, seq + b * total, (size_t)L0 * 4);
    rf_tensor logits = TH_TENSOR(dev, RF_F32, NULL, B, V);
    rf_decoder *d;
    TH_OK(rf_model_decode_begin(&d, m, prompt, B, L0, total, &logits));
    for (int64_t L = L0; L <= total; L++) {
        if (L > L0) TH_OK(rf_model_decode_step(d, (int32_t[]){seq[L - 1], seq[total + L - 1]}, &logits));
        float *got = th_download_f32(&logits);
        /* The recomputing path: the whole prefix, its last position. */
        for (int64_t b = 0; b < B; b++) memcpy(ids + b * L, seq + b * total, (size_t)L * 4);
        rf_tensor full = TH_TENSOR(dev, RF_F32, NULL, B, L, V);
        TH_OK(rf_model_forward(m, &full, ids, NULL, B, L, NULL));
        float *all = th_download_f32(&full), want[2 * 64];
        for (int64_t b = 0; b < B; b++) memcpy(want + b * V, all + (b * L + L - 1) * V, (size_t)V * 4);
        char what[96];
        snprintf(what, sizeof what, "cached vs recomputed at length %lld (%s)", (long long)L, where);
        th_assert_close(got, want, (size_t)(B * V), 1e-4, what);
        free(got), free(all);
        rf_tensor_free(&full);
    }
    TH_FAILS(rf_model_decode_step(d, (int32_t[]){1, 1}, &logits), RF_ERR_INVALID_ARG, "full");
    rf_model_decode_end(d);
    free(ids);
    rf_tensor_free(&logits);
    rf_model_free(m);
}

static void cached_local_cpu(void **state) {
    rf_device *dev = th_cpu();
    cached_vs_recomputed(dev, "cpu");
    rf_device_close(dev);
}

static void cached_local_opencl(void **state) {
    rf_device *dev;
    TH_CL_OR_SKIP(dev);
    cached_vs_recomputed(dev, "OpenCL");
    rf_device_close(dev);
}

/* The state's bytes = docs/decode.md's formula, at two capacities (linear). */
static void memory_formula(void **state) {
    rf_device *dev = th_cpu();
    rf_config c = local_config(4);
    c.attn_layers[1] = c.attn_layers[3] = RF_ATTN_LSH;
    c.num_hashes = 2, c.num_bucket_factors = 1, c.num_buckets[0] = 4, c.chunk_size_feed_forward = 1;
    rf_model *m;
    TH_OK(rf_model_create(&m, dev, &c, 3));
    const int64_t B = 3, D = 32, H = 2, d = 16, HD = 32, R = 2, rc = 2, F = 48, V = c.vocab_size, mloc = 8;
    int32_t prompt[3 * 20] = {0};
    rf_tensor logits = TH_TENSOR(dev, RF_F32, NULL, B, V);
    size_t prev = 0;
    for (int64_t cap = 32; cap <= 64; cap += 32) {
        rf_decoder *dec;
        TH_OK(rf_model_decode_begin(&dec, m, prompt, B, 20, cap, &logits));
        size_t bytes;
        TH_OK(rf_model_decode_bytes(dec, &bytes));
        int64_t ff_rows = 1; /* chunk_size_feed_forward 1 */
        int64_t want = 4 * (B * (1 + 6 * D + 4 * HD) + ff_rows * F) + 2 * 4 * (B * cap * (2 * HD + 3 * H * R) + H * d * R * rc) +
                       2 * 16 * B * mloc * HD;
        assert_int_equal((int64_t)bytes, want);
        if (prev) assert_int_equal((int64_t)(bytes - prev), 2 * 4 * B * 32 * (2 * HD + 3 * H * R));
        prev = bytes;
        rf_model_decode_end(dec);
    }
    rf_tensor_free(&logits);
    rf_model_free(m);
    rf_device_close(dev);
}

/* The decode attention ops on PoCL against the cpu: an LSH cache hashed
 * from scratch, then steps with fresh rotations; an un-hashed one; local. */
static void ops_cpu_vs_opencl(void **state) {
    rf_device *cl;
    TH_CL_OR_SKIP(cl);
    rf_device *cpu = th_cpu(), *devs[2] = {cpu, cl};
    const int64_t B = 2, H = 2, d = 16, HD = 32, R = 2, cap = 48, L0 = 20, steps = 12;
    rf_lsh_config lc = {.n_heads = 2, .head_dim = 16, .n_hashes = 2, .n_buckets = 8, .chunk_len = 8};
    float *qk0 = th_random((size_t)(B * cap * HD), 1, 1.0f), *v0 = th_random((size_t)(B * cap * HD), 2, 1.0f);
    float *outs[2][2];
    int32_t *perms[2];
    for (int k = 0; k < 2; k++) {
        for (int hashed = 0; hashed < 2; hashed++) {
            rf_lsh_cache c;
            TH_OK(rf_lsh_cache_init(&c, devs[k], &lc, B, cap));
            TH_OK(rf_tensor_upload(&c.qk, qk0, (size_t)(B * cap * HD) * 4));
            TH_OK(rf_tensor_upload(&c.v, v0, (size_t)(B * cap * HD) * 4));
            c.length = hashed ? L0 : 5;
            float *rot = th_random((size_t)(H * d * R * 4), 3, 1.0f);
            rf_tensor rt = TH_TENSOR(devs[k], RF_F32, rot, H, d, R, 4);
            if (hashed) TH_OK(rf_lsh_cache_sort(&c, &rt));
            rf_tensor out = TH_TENSOR(devs[k], RF_F32, NULL, B, HD);
            outs[k][hashed] = malloc((size_t)(steps * B * HD) * 4);
            for (int64_t s = 0; s < steps; s++) {
                float *q = th_random((size_t)(B * HD), 10 + (uint64_t)s, 1.0f), *v = th_random((size_t)(B * HD), 40 + (uint64_t)s, 1.0f);
                float *r2 = th_random((size_t)(H * d * R * 4), 70 + (uint64_t)s, 1.0f);
                rf_tensor tq = TH_TENSOR(devs[k], RF_F32, q, B, HD), tv = TH_TENSOR(devs[k], RF_F32, v, B, HD);
                TH_OK(rf_tensor_upload(&rt, r2, (size_t)(H * d * R * 4) * 4));
                TH_OK(rf_lsh_cache_attend(&out, &c, &tq, &tv, &rt));
                float *o = th_download_f32(&out);
                memcpy(outs[k][hashed] + s * B * HD, o, (size_t)(B * HD) * 4);
                free(o), free(q), free(v), free(r2);
                rf_tensor_free(&tq), rf_tensor_free(&tv);
            }
            if (hashed) perms[k] = th_download_i32(&c.perm[c.cur]);
            free(rot);
            rf_tensor_free(&rt), rf_tensor_free(&out);
            rf_lsh_cache_free(&c);
        }
    }
    th_assert_close(outs[1][1], outs[0][1], (size_t)(steps * B * HD), 1e-4, "LSH cache attend, hashed: OpenCL vs cpu");
    th_assert_close(outs[1][0], outs[0][0], (size_t)(steps * B * HD), 1e-4, "LSH cache attend, un-hashed: OpenCL vs cpu");
    for (int64_t row = 0; row < B * H * R; row++) /* the L0 + steps slots in use */
        assert_memory_equal(perms[0] + row * cap, perms[1] + row * cap, (size_t)(L0 + steps) * 4);
    /* Local: a ring of 2m = 16 rows, positions 0 .. 39. */
    float *lo[2];
    for (int k = 0; k < 2; k++) {
        rf_tensor kr = TH_TENSOR(devs[k], RF_F32, NULL, B, 16, HD), vr = TH_TENSOR(devs[k], RF_F32, NULL, B, 16, HD);
        rf_tensor out = TH_TENSOR(devs[k], RF_F32, NULL, B, HD);
        lo[k] = malloc((size_t)(40 * B * HD) * 4);
        for (int64_t p = 0; p < 40; p++) {
            float *q = th_random((size_t)(B * HD), 100 + (uint64_t)p, 1.0f), *kk = th_random((size_t)(B * HD), 200 + (uint64_t)p, 1.0f),
                  *v = th_random((size_t)(B * HD), 300 + (uint64_t)p, 1.0f);
            rf_tensor tq = TH_TENSOR(devs[k], RF_F32, q, B, HD), tk = TH_TENSOR(devs[k], RF_F32, kk, B, HD),
                      tv = TH_TENSOR(devs[k], RF_F32, v, B, HD);
            TH_OK(rf_local_cache_attend(&out, &kr, &vr, &tq, &tk, &tv, p, 8, 2));
            float *o = th_download_f32(&out);
            memcpy(lo[k] + p * B * HD, o, (size_t)(B * HD) * 4);
            free(o), free(q), free(kk), free(v);
            rf_tensor_free(&tq), rf_tensor_free(&tk), rf_tensor_free(&tv);
        }
        rf_tensor_free(&kr), rf_tensor_free(&vr), rf_tensor_free(&out);
    }
    th_assert_close(lo[1], lo[0], (size_t)(40 * B * HD), 1e-4, "local cache attend: OpenCL vs cpu");
    for (int k = 0; k < 2; k++) free(outs[k][0]), free(outs[k][1]), free(perms[k]), free(lo[k]);
    free(qk0), free(v0);
    rf_device_close(cpu);
    rf_device_close(cl);
}

/* Refusals name what is wrong; a refused call leaves nothing allocated. */
static void refusals(void **state) {
    rf_device *dev = th_cpu();
    rf_config c = local_config(2);
    rf_model *m;
    rf_decoder *d = NULL;
    int32_t prompt[4] = {1, 2, 3, 4};
    rf_tensor logits = TH_TENSOR(dev, RF_F32, NULL, 1, c.vocab_size), wrong = TH_TENSOR(dev, RF_F32, NULL, 2, c.vocab_size);
    c.is_decoder = false;
    TH_OK(rf_model_create(&m, dev, &c, 1));
    TH_FAILS(rf_model_decode_begin(&d, m, prompt, 1, 4, 8, &logits), RF_ERR_INVALID_ARG, "not causal");
    rf_model_free(m);
    c.is_decoder = true;
    TH_OK(rf_model_create(&m, dev, &c, 1));
    TH_FAILS(rf_model_decode_begin(&d, m, prompt, 1, 4, 3, &logits), RF_ERR_INVALID_ARG, "capacity");
    TH_FAILS(rf_model_decode_begin(&d, m, prompt, 1, 4, 65, &logits), RF_ERR_INVALID_ARG, "64 positions");
    TH_FAILS(rf_model_decode_begin(&d, m, prompt, 1, 4, 8, &wrong), RF_ERR_INVALID_ARG, "logits");
    assert_null(d);
    TH_OK(rf_model_decode_begin(&d, m, prompt, 1, 4, 8, &logits));
    TH_FAILS(rf_model_decode_step(d, (int32_t[]){50}, &logits), RF_ERR_INVALID_ARG, "outside [0, 50)");
    TH_OK(rf_model_decode_step(d, (int32_t[]){49}, &logits));
    int64_t len;
    TH_OK(rf_model_decode_length(d, &len));
    assert_int_equal(len, 5);
    rf_model_decode_end(d);
    rf_model_free(m);
    rf_tensor_free(&logits), rf_tensor_free(&wrong);
    rf_device_close(dev);
}

/* `reformer sample` on a saved local-only model: the cached decoder and
 * --no-cache print the same greedy text; --batch prints every row; the
 * tokens/s line names the path taken. */
static void sample_cli(void **state) {
    rf_device *dev = th_cpu();
    rf_config c = local_config(2);
    c.eos_token_id = -1; /* never stops early */
    rf_model *m;
    TH_OK(rf_model_create(&m, dev, &c, 8));
    char dir[512], args[1024], cached[4096], recomputed[4096];
    th_tmpdir(dir, sizeof dir);
    TH_OK(rf_model_save(m, dir));
    snprintf(args, sizeof args, "sample --model '%s' --device cpu --prompt '' --length 30", dir);
    assert_int_equal(th_run_cli(NULL, args, cached, sizeof cached), 0);
    assert_non_null(strstr(cached, "30 tokens in"));
    assert_non_null(strstr(cached, "(cached decoding)"));
    snprintf(args, sizeof args, "sample --model '%s' --device cpu --prompt '' --length 30 --no-cache", dir);
    assert_int_equal(th_run_cli(NULL, args, recomputed, sizeof recomputed), 0);
    assert_non_null(strstr(recomputed, "(recomputing)"));
    /* The text: everything before the tokens/s line. */
    *strstr(cached, "30 tokens in") = '\0', *strstr(recomputed, "30 tokens in") = '\0';
    assert_string_equal(cached, recomputed);
    snprintf(args, sizeof args, "sample --model '%s' --device cpu --length 5 --batch 3 --temperature 0.9 --top-p 0.5",
             dir);
    assert_int_equal(th_run_cli(NULL, args, cached, sizeof cached), 0);
    assert_non_null(strstr(cached, "[0] "));
    assert_non_null(strstr(cached, "[2] "));
    assert_non_null(strstr(cached, "15 tokens in"));
    rf_model_free(m);
    rf_device_close(dev);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hf_golden_cpu),       cmocka_unit_test(hf_golden_opencl),
        cmocka_unit_test(cached_local_cpu),    cmocka_unit_test(cached_local_opencl),
        cmocka_unit_test(memory_formula),      cmocka_unit_test(ops_cpu_vs_opencl),
        cmocka_unit_test(sample_cli),          cmocka_unit_test(refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
