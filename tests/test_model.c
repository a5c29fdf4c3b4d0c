/* The language model's forward pass against the Hugging Face Reformer's
 * logits and loss (§12; tests/data/hf_* from tools/hf_golden.py), on
 * cpu and PoCL, plus chunked feed-forward, save/load and error cases. */
#include "harness.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "reformer/io.h"
#include "reformer/model.h"
#include "model/model_impl.h"

/* Each LSH layer's rotations from rotations.bin, in layer order (the blocks
 * follow the config's LSH layers; rotations.json documents the layout). */
static void set_rotations(rf_model *m, const char *model) {
    size_t n;
    float *rot = th_data_file(model, "rotations.bin", &n);
    const rf_config *c = rf_model_config(m);
    int rs = 0;
    size_t off = 0, per;
    for (int i = 0; i < c->num_layers; i++) {
        if (c->attn_layers[i] != RF_ATTN_LSH) continue;
        if (c->num_bucket_factors == 2) rs = (c->num_buckets[0] + c->num_buckets[1]) / 2;
        else if (c->num_bucket_factors == 1) rs = c->num_buckets[0] / 2;
        else rs = -1; /* automatic: the block size tells (all LSH layers share it) */
        size_t nlsh = 0;
        for (int j = 0; j < c->num_layers; j++) nlsh += c->attn_layers[j] == RF_ATTN_LSH;
        per = rs > 0 ? (size_t)c->num_attention_heads * c->attention_head_size * c->num_hashes * rs : n / 4 / nlsh;
        assert_true(off + per <= n / 4);
        TH_OK(rf_model_set_rotations(m, i, rot + off, per));
        off += per;
    }
    assert_int_equal(off, n / 4);
    free(rot);
}

/* meta.json's number under `key` (e.g. "loss": HF's own LM loss, labels =
 * input_ids); fails if the key is missing or null. */
static double meta_number(const char *model, const char *key) {
    size_t n;
    char *text = th_data_file(model, "meta.json", &n), pat[64];
    text[n] = '\0';
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *at = strstr(text, pat);
    if (!at) fail_msg("%s/meta.json has no \"%s\"", model, key);
    char *end;
    double v = strtod(at + strlen(pat), &end);
    if (end == at + strlen(pat)) fail_msg("%s/meta.json: \"%s\" is not a number", model, key);
    free(text);
    return v;
}

/* Load a golden model on `dev`, run the recorded input, compare the logits
 * within §12 (1e-4 relative, per element) and, with `loss_key`, the
 * loss against the one HF computed (meta.json), within 1e-4 too. */
static void golden(rf_device *dev, const char *model, const char *ids_file, const char *logits_file, int64_t B,
                   int64_t L, int with_mask, const char *loss_key) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", getenv("RF_TEST_DATA"), model);
    rf_model *m;
    TH_OK(rf_model_load(&m, dev, dir));
    set_rotations(m, model);
    size_t n;
    int32_t *ids = th_data_file(model, ids_file, &n);
    assert_int_equal(n, (size_t)(B * L) * 4);
    int32_t *mask = with_mask ? th_data_file(model, "attention_mask.bin", &n) : NULL;
    float *want = th_data_file(model, logits_file, &n);
    int64_t V = rf_model_config(m)->vocab_size;
    assert_int_equal(n, (size_t)(B * L * V) * 4);
    rf_tensor logits = TH_TENSOR(dev, RF_F32, NULL, B, L, V);
    float loss = 0;
    TH_OK(rf_model_forward(m, &logits, ids, mask, B, L, &loss));
    float *got = th_download_f32(&logits);
    char what[128];
    snprintf(what, sizeof what, "%s %s logits vs HF", model, ids_file);
    th_assert_close(got, want, (size_t)(B * L * V), 1e-4, what);
    if (loss_key) {
        float hf = (float)meta_number(model, loss_key);
        snprintf(what, sizeof what, "%s %s loss vs HF's %s", model, ids_file, loss_key);
        th_assert_close(&loss, &hf, 1, 1e-4, what);
    }
    free(got), free(want), free(ids), free(mask);
    rf_tensor_free(&logits);
    rf_model_free(m);
}

static void hf_golden_cpu(void **state) {
    rf_device *dev = th_cpu();
    golden(dev, "hf_causal", "input_ids.bin", "logits.bin", 2, 64, 0, "loss");
    golden(dev, "hf_causal", "short_input_ids.bin", "short_logits.bin", 2, 16, 0, "short_loss");
    golden(dev, "hf_noncausal", "input_ids.bin", "logits.bin", 2, 64, 0, NULL); /* an encoder: HF gave no loss */
    golden(dev, "hf_padded", "input_ids.bin", "logits.bin", 2, 50, 1, "loss");
    rf_device_close(dev);
}

static void hf_golden_opencl(void **state) {
    rf_device *dev;
    TH_CL_OR_SKIP(dev);
    golden(dev, "hf_causal", "input_ids.bin", "logits.bin", 2, 64, 0, "loss");
    golden(dev, "hf_causal", "short_input_ids.bin", "short_logits.bin", 2, 16, 0, "short_loss");
    golden(dev, "hf_noncausal", "input_ids.bin", "logits.bin", 2, 64, 0, NULL); /* an encoder: HF gave no loss */
    golden(dev, "hf_padded", "input_ids.bin", "logits.bin", 2, 50, 1, "loss");
    rf_device_close(dev);
}

/* A small random model config. */
static rf_config small_config(void) {
    rf_config c;
    TH_OK(rf_config_default(&c));
    c.num_layers = 2;
    c.attn_layers[0] = RF_ATTN_LOCAL;
    c.attn_layers[1] = RF_ATTN_LSH;
    c.hidden_size = 32;
    c.num_attention_heads = 2;
    c.attention_head_size = 16;
    c.feed_forward_size = 48;
    c.vocab_size = 40;
    c.max_position_embeddings = 64;
    c.axial_pos_shape[0] = 8, c.axial_pos_shape[1] = 8;
    c.axial_pos_embds_dim[0] = 16, c.axial_pos_embds_dim[1] = 16;
    c.num_hashes = 2;
    c.num_bucket_factors = 1, c.num_buckets[0] = 4;
    c.lsh_attn_chunk_length = 8;
    c.local_attn_chunk_length = 8;
    c.is_decoder = true;
    c.hidden_dropout_prob = c.lsh_attention_probs_dropout_prob = c.local_attention_probs_dropout_prob = 0;
    return c;
}

static float *run_model(rf_device *dev, const rf_config *c, const int32_t *ids, int64_t B, int64_t L) {
    rf_model *m;
    TH_OK(rf_model_create(&m, dev, c, 7));
    rf_tensor logits = TH_TENSOR(dev, RF_F32, NULL, B, L, c->vocab_size);
    TH_OK(rf_model_forward(m, &logits, ids, NULL, B, L, NULL));
    float *out = th_download_f32(&logits);
    rf_tensor_free(&logits);
    rf_model_free(m);
    return out;
}

/* §7: chunking the feed-forward along positions does not change results. */
static void chunked_feed_forward_is_invisible(void **state) {
    rf_device *dev = th_cpu();
    int64_t B = 2, L = 32;
    int32_t ids[64];
    for (int i = 0; i < 64; i++) ids[i] = (i * 7 + 3) % 40;
    rf_config c = small_config();
    c.chunk_size_feed_forward = 0;
    float *ref = run_model(dev, &c, ids, B, L);
    int chunks[] = {1, 7, 32, 64};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        c.chunk_size_feed_forward = chunks[i];
        float *got = run_model(dev, &c, ids, B, L);
        th_assert_close(got, ref, (size_t)(B * L * c.vocab_size), 1e-6, "chunked feed-forward");
        free(got);
    }
    free(ref);
    rf_device_close(dev);
}

/* A saved model loads back with identical weights (same logits) and the
 * safetensors file round-trips byte-exact. */
static void save_and_load_round_trip(void **state) {
    rf_device *dev = th_cpu();
    rf_config c = small_config();
    rf_model *m, *m2;
    TH_OK(rf_model_create(&m, dev, &c, 3));
    char dir[256], dir2[300];
    th_tmpdir(dir, sizeof dir);
    TH_OK(rf_model_save(m, dir));
    TH_OK(rf_model_load(&m2, dev, dir));
    snprintf(dir2, sizeof dir2, "%s/again", dir);
    TH_OK(rf_model_save(m2, dir2));
    size_t n1, n2;
    char p1[400], p2[400];
    snprintf(p1, sizeof p1, "%s/model.safetensors", dir);
    snprintf(p2, sizeof p2, "%s/model.safetensors", dir2);
    FILE *f1 = fopen(p1, "rb"), *f2 = fopen(p2, "rb");
    assert_non_null(f1);
    assert_non_null(f2);
    static char b1[1 << 20], b2[1 << 20];
    n1 = fread(b1, 1, sizeof b1, f1), n2 = fread(b2, 1, sizeof b2, f2);
    fclose(f1), fclose(f2);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    rf_model_free(m), rf_model_free(m2);
    rf_device_close(dev);
}

/* §8: the halves after N layers do not depend on how the layers are run —
 * all at once, or in pieces that carry the pair of halves between calls. */
static void layers_in_pieces_equal_all_at_once(rf_device *dev) {
    rf_config c = small_config();
    c.num_layers = 4;
    c.attn_layers[2] = RF_ATTN_LOCAL, c.attn_layers[3] = RF_ATTN_LSH;
    rf_model *m;
    TH_OK(rf_model_create(&m, dev, &c, 9));
    int32_t ids[64];
    for (int i = 0; i < 64; i++) ids[i] = (i * 11 + 5) % 40;
    rf_pass s;
    TH_OK(rf_pass_init(&s, m, ids, NULL, 2, 32, false));
    float *whole[2], *pieces[2];
    m->step = 0; /* the same rotations both times */
    TH_OK(rf_model_embed(m, &s));
    TH_OK(rf_model_stack(m, &s, 0, 4, NULL, NULL));
    whole[0] = th_download_f32(&s.x1), whole[1] = th_download_f32(&s.x2);
    m->step = 0;
    TH_OK(rf_model_embed(m, &s));
    TH_OK(rf_model_stack(m, &s, 0, 1, NULL, NULL));
    TH_OK(rf_model_stack(m, &s, 1, 3, NULL, NULL));
    TH_OK(rf_model_stack(m, &s, 3, 4, NULL, NULL));
    pieces[0] = th_download_f32(&s.x1), pieces[1] = th_download_f32(&s.x2);
    size_t n = rf_tensor_numel(&s.x1);
    assert_memory_equal(whole[0], pieces[0], n * 4);
    assert_memory_equal(whole[1], pieces[1], n * 4);
    TH_FAILS(rf_model_stack(m, &s, 3, 5, NULL, NULL), RF_ERR_INVALID_ARG, "layers [3, 5) outside [0, 4)");
    for (int i = 0; i < 2; i++) free(whole[i]), free(pieces[i]);
    rf_pass_free(&s);
    rf_model_free(m);
}

static void layers_in_pieces_cpu(void **state) {
    rf_device *dev = th_cpu();
    layers_in_pieces_equal_all_at_once(dev);
    rf_device_close(dev);
}

static void layers_in_pieces_opencl(void **state) {
    rf_device *dev;
    TH_CL_OR_SKIP(dev);
    layers_in_pieces_equal_all_at_once(dev);
    rf_device_close(dev);
}

static void rejects_bad_inputs(void **state) {
    rf_device *dev = th_cpu();
    rf_config c = small_config();
    rf_model *m;
    TH_OK(rf_model_create(&m, dev, &c, 1));
    int32_t ids[16] = {0};
    rf_tensor logits = TH_TENSOR(dev, RF_F32, NULL, 1, 16, 40);
    ids[5] = 40;
    TH_FAILS(rf_model_forward(m, &logits, ids, NULL, 1, 16, NULL), RF_ERR_INVALID_ARG, "token id 40 at position 5");
    ids[5] = 0;
    TH_FAILS(rf_model_forward(m, &logits, ids, NULL, 1, 8, NULL), RF_ERR_INVALID_ARG, "logits has shape");
    rf_tensor big = TH_TENSOR(dev, RF_F32, NULL, 1, 72, 40);
    int32_t many[72] = {0};
    TH_FAILS(rf_model_forward(m, &big, many, NULL, 1, 72, NULL), RF_ERR_INVALID_ARG, "exceeds the 64 positions");
    rf_tensor_free(&big);
    rf_model *m2;
    TH_FAILS(rf_model_load(&m2, dev, "/nonexistent-dir"), RF_ERR_NOT_FOUND, "/nonexistent-dir/config.json");
    float rot4[4] = {0};
    TH_FAILS(rf_model_set_rotations(m, 0, rot4, 4), RF_ERR_INVALID_ARG, "layer 0 is not an LSH layer");
    rf_tensor_free(&logits);
    rf_model_free(m);
    rf_device_close(dev);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hf_golden_cpu),
        cmocka_unit_test(hf_golden_opencl),
        cmocka_unit_test(chunked_feed_forward_is_invisible),
        cmocka_unit_test(save_and_load_round_trip),
        cmocka_unit_test(layers_in_pieces_cpu),
        cmocka_unit_test(layers_in_pieces_opencl),
        cmocka_unit_test(rejects_bad_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
