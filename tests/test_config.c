/* config.json with HF ReformerConfig keys (§9, §11): HF files load,
 * save → load → save is byte-exact, the bucket rule of §3 matches what the
 * HF model chose, and bad configs are refused naming the key and value. */
#include "harness.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "reformer/model.h"

static void data_path(char *out, size_t n, const char *rel) {
    const char *d = getenv("RF_TEST_DATA");
    snprintf(out, n, "%s/%s", d ? d : "tests/data", rel);
}

static void defaults_are_hf_defaults_and_valid(void **state) {
    rf_config c;
    TH_OK(rf_config_default(&c));
    TH_OK(rf_config_validate(&c));
    assert_int_equal(c.num_layers, 6);
    assert_int_equal(c.attn_layers[0], RF_ATTN_LOCAL);
    assert_int_equal(c.attn_layers[1], RF_ATTN_LSH);
    assert_int_equal(c.hidden_size, 256);
    assert_int_equal(c.axial_pos_embds_dim[0] + c.axial_pos_embds_dim[1], c.hidden_size);
    assert_int_equal(c.num_bucket_factors, 0);
    assert_true(c.layer_norm_eps == 1e-12);
}

static void loads_hf_configs(void **state) {
    char path[1024];
    rf_config c;
    data_path(path, sizeof path, "hf_causal/config.json");
    if (rf_config_load_json(&c, path) == RF_ERR_NOT_FOUND) skip();
    TH_OK(rf_config_load_json(&c, path));
    assert_int_equal(c.num_layers, 4);
    assert_int_equal(c.attn_layers[0], RF_ATTN_LOCAL);
    assert_int_equal(c.attn_layers[3], RF_ATTN_LSH);
    assert_int_equal(c.hidden_size, 32);
    assert_int_equal(c.num_attention_heads, 2);
    assert_int_equal(c.attention_head_size, 16);
    assert_true(c.is_decoder);
    assert_int_equal(c.num_bucket_factors, 1);
    assert_int_equal(c.num_buckets[0], 8);
    assert_false(c.has_hash_seed);
    assert_int_equal(c.eos_token_id, 2);
    assert_true(c.layer_norm_eps == 1e-12);

    data_path(path, sizeof path, "hf_noncausal/config.json");
    TH_OK(rf_config_load_json(&c, path));
    assert_false(c.is_decoder);
    assert_int_equal(c.num_bucket_factors, 2);
    assert_int_equal(c.num_buckets[0], 2);
    assert_int_equal(c.num_buckets[1], 4);

    /* num_buckets null: the §3 rule gives what the HF model chose ([4, 4]
     * at the padded length 56, meta.json). */
    data_path(path, sizeof path, "hf_padded/config.json");
    TH_OK(rf_config_load_json(&c, path));
    assert_int_equal(c.num_bucket_factors, 0);
    int f[2], nf;
    TH_OK(rf_config_num_buckets(&c, 56, f, &nf));
    assert_int_equal(nf, 2);
    assert_int_equal(f[0], 4);
    assert_int_equal(f[1], 4);
}

static void bucket_rule_matches_hf(void **state) {
    rf_config c;
    TH_OK(rf_config_default(&c));   /* m = 64, max_pos 4096: limit 2·max(8, 64) = 128 */
    int f[2], nf;
    TH_OK(rf_config_num_buckets(&c, 4096, f, &nf));   /* 2·64 = 128 → 128, not above the limit */
    assert_int_equal(nf, 1);
    assert_int_equal(f[0], 128);
    TH_OK(rf_config_num_buckets(&c, 8192, f, &nf));   /* 256 > 128 → [16, 16] */
    assert_int_equal(nf, 2);
    assert_int_equal(f[0], 16);
    assert_int_equal(f[1], 16);
    TH_OK(rf_config_num_buckets(&c, 3 * 64, f, &nf)); /* 2·3 = 6 → 4 */
    assert_int_equal(f[0], 4);
    TH_OK(rf_config_num_buckets(&c, 10, f, &nf));     /* L < m: full attention; 2 */
    assert_int_equal(f[0], 2);
    c.lsh_attn_chunk_length = 4;
    c.max_position_embeddings = 64;                   /* limit 2·max(4, 4) = 8 */
    TH_OK(rf_config_num_buckets(&c, 56, f, &nf));     /* 2·14 = 28 → 16 > 8 → [4, 4] */
    assert_int_equal(nf, 2);
    assert_int_equal(f[0] * f[1], 16);
    TH_FAILS(rf_config_num_buckets(&c, 0, f, &nf), RF_ERR_INVALID_ARG, "seq_len = 0");
}

static void save_load_round_trip(void **state) {
    rf_config c;
    TH_OK(rf_config_default(&c));
    c.num_layers = 3;
    c.attn_layers[0] = RF_ATTN_LSH, c.attn_layers[1] = RF_ATTN_LOCAL, c.attn_layers[2] = RF_ATTN_LSH;
    c.hidden_size = 48;
    c.axial_pos_embds_dim[0] = 16, c.axial_pos_embds_dim[1] = 32;
    c.axial_pos_shape[0] = 32, c.axial_pos_shape[1] = 128;
    c.hidden_act = RF_ACT_GELU;
    c.num_bucket_factors = 2, c.num_buckets[0] = 4, c.num_buckets[1] = 8;
    c.has_hash_seed = true, c.hash_seed = 1234567890123ll;
    c.layer_norm_eps = 1e-6;
    c.hidden_dropout_prob = 0.1;
    c.is_decoder = true;
    c.pad_token_id = -1;
    c.chunk_size_feed_forward = 16;
    char dir[64], path[128];
    th_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/config.json", dir);
    TH_OK(rf_config_save_json(&c, path));
    rf_config d;
    TH_OK(rf_config_load_json(&d, path));
    assert_int_equal(d.num_layers, 3);
    assert_int_equal(d.attn_layers[1], RF_ATTN_LOCAL);
    assert_int_equal(d.hidden_size, 48);
    assert_int_equal(d.axial_pos_shape[1], 128);
    assert_int_equal(d.hidden_act, RF_ACT_GELU);
    assert_int_equal(d.num_bucket_factors, 2);
    assert_int_equal(d.num_buckets[1], 8);
    assert_true(d.has_hash_seed);
    assert_true(d.hash_seed == 1234567890123ll);
    assert_true(d.layer_norm_eps == 1e-6);
    assert_true(d.hidden_dropout_prob == 0.1);
    assert_true(d.is_decoder);
    assert_int_equal(d.pad_token_id, -1);
    assert_int_equal(d.chunk_size_feed_forward, 16);
    char *first, *second;
    TH_OK(rf_config_to_json(&c, &first));
    TH_OK(rf_config_to_json(&d, &second));
    assert_string_equal(first, second);
    void *on_disk;
    size_t n;
    TH_OK(rf_read_file(path, &on_disk, &n));
    assert_int_equal(n, strlen(first));
    assert_memory_equal(on_disk, first, n);
    assert_non_null(strstr(first, "\"layer_norm_eps\": 1e-06"));
    assert_non_null(strstr(first, "\"lsh_attention_probs_dropout_prob\": 0.0"));
    assert_non_null(strstr(first, "\"pad_token_id\": null"));
    free(first), free(second), free(on_disk);
}

/* A valid small config; `extra` is spliced in before the closing brace. JSON
 * objects keep the last of repeated keys, so `extra` overrides a value. */
static rf_status parse_with(const char *extra) {
    char text[4096];
    snprintf(text, sizeof text,
             "{\"attn_layers\": [\"local\", \"lsh\"], \"hidden_size\": 32, \"num_attention_heads\": 2,"
             " \"attention_head_size\": 16, \"feed_forward_size\": 64, \"vocab_size\": 64,"
             " \"max_position_embeddings\": 64, \"axial_pos_shape\": [8, 8], \"axial_pos_embds_dim\": [16, 16],"
             " \"architectures\": [\"ReformerModelWithLMHead\"], \"transformers_version\": \"5.0\", \"unknown_key\": {}%s}",
             extra);
    rf_config c;
    return rf_config_parse_json(&c, text, strlen(text));
}

static void bad_configs_are_refused(void **state) {
    TH_OK(parse_with(""));
    TH_OK(parse_with(", \"num_buckets\": null, \"hash_seed\": 7, \"hidden_act\": \"gelu\", \"hidden_dropout_prob\": 0"));
    TH_OK(parse_with(", \"axial_pos_embds\": false, \"axial_pos_shape\": \"ignored when not axial\""));
    TH_FAILS(parse_with(", \"attn_layers\": [\"local\", \"full\"]"), RF_ERR_UNSUPPORTED,
             "attn_layers[1] = 'full' is not a supported attention type");
    TH_FAILS(parse_with(", \"axial_pos_embds_dim\": [16, 8]"), RF_ERR_FORMAT,
             "axial_pos_embds_dim [16, 8] sums to 24, not hidden_size 32");
    TH_FAILS(parse_with(", \"lsh_num_chunks_after\": 1"), RF_ERR_UNSUPPORTED, "lsh_num_chunks_after = 1 is not supported");
    TH_FAILS(parse_with(", \"local_num_chunks_before\": 2"), RF_ERR_UNSUPPORTED, "local_num_chunks_before = 2");
    TH_FAILS(parse_with(", \"hidden_act\": \"gelu_new\""), RF_ERR_UNSUPPORTED, "hidden_act = 'gelu_new' is not supported");
    TH_FAILS(parse_with(", \"hidden_size\": \"32\""), RF_ERR_FORMAT, "hidden_size is a string, not an integer");
    TH_FAILS(parse_with(", \"num_buckets\": 7"), RF_ERR_FORMAT, "num_buckets = 7 must be even");
    TH_FAILS(parse_with(", \"num_buckets\": [2, 4, 8]"), RF_ERR_UNSUPPORTED, "num_buckets has 3 factors");
    TH_FAILS(parse_with(", \"axial_pos_shape\": [4, 4, 4]"), RF_ERR_UNSUPPORTED, "axial_pos_shape has 3 entries");
    TH_FAILS(parse_with(", \"tie_word_embeddings\": true"), RF_ERR_UNSUPPORTED, "tie_word_embeddings = true");
    TH_FAILS(parse_with(", \"num_hidden_layers\": 3"), RF_ERR_FORMAT, "num_hidden_layers = 3 but attn_layers lists 2");
    TH_FAILS(parse_with(", \"model_type\": \"bert\""), RF_ERR_UNSUPPORTED, "model_type = \"bert\"");
    TH_FAILS(parse_with(", \"is_decoder\": 1"), RF_ERR_FORMAT, "is_decoder is an integer, not true or false");
    TH_FAILS(parse_with(", \"layer_norm_eps\": 0"), RF_ERR_FORMAT, "layer_norm_eps = 0 must be finite and > 0");
    TH_FAILS(parse_with(", \"hidden_dropout_prob\": 1.0"), RF_ERR_FORMAT, "hidden_dropout_prob = 1 must lie in [0, 1)");
    TH_FAILS(parse_with(", \"vocab_size\": 0"), RF_ERR_FORMAT, "vocab_size = 0 must be positive");
    TH_FAILS(parse_with(", \"vocab_size\": 4294967296"), RF_ERR_FORMAT, "vocab_size = 4294967296 is out of range");
    TH_FAILS(parse_with(", \"attn_layers\": []"), RF_ERR_FORMAT, "attn_layers is empty");

    rf_config c;
    const char *missing = "{\"attn_layers\": [\"lsh\"], \"num_attention_heads\": 2}";
    TH_FAILS(rf_config_parse_json(&c, missing, strlen(missing)), RF_ERR_FORMAT, "required key 'hidden_size' is missing");
    TH_FAILS(rf_config_parse_json(&c, "{\"attn_layers\": [", 16), RF_ERR_FORMAT, "not valid JSON");
    TH_FAILS(rf_config_parse_json(&c, "[1]", 3), RF_ERR_FORMAT, "the JSON is a list, not an object");
}

static void file_errors_name_the_file(void **state) {
    char dir[64], path[128];
    th_tmpdir(dir, sizeof dir);
    rf_config c;
    snprintf(path, sizeof path, "%s/absent.json", dir);
    TH_FAILS(rf_config_load_json(&c, path), RF_ERR_NOT_FOUND, "absent.json");
    snprintf(path, sizeof path, "%s/notjson.json", dir);
    TH_OK(rf_write_file_atomic(path, "hidden_size = 3\n", 16));
    TH_FAILS(rf_config_load_json(&c, path), RF_ERR_FORMAT, "notjson.json': not valid JSON");
    /* A validation failure carries the file name too. */
    rf_config bad;
    TH_OK(rf_config_default(&bad));
    bad.lsh_num_chunks_after = 2;
    TH_FAILS(rf_config_save_json(&bad, path), RF_ERR_UNSUPPORTED, "config: lsh_num_chunks_after = 2");
    const char *text = "{\"attn_layers\": [\"lsh\"], \"hidden_size\": 8, \"num_attention_heads\": 1,"
                       " \"attention_head_size\": 8, \"feed_forward_size\": 8, \"vocab_size\": 8,"
                       " \"max_position_embeddings\": 8, \"axial_pos_embds\": false, \"lsh_num_chunks_after\": 1}";
    TH_OK(rf_write_file_atomic(path, text, strlen(text)));
    TH_FAILS(rf_config_load_json(&c, path), RF_ERR_UNSUPPORTED, "notjson.json': lsh_num_chunks_after = 1");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_are_hf_defaults_and_valid),
        cmocka_unit_test(loads_hf_configs),
        cmocka_unit_test(bucket_rule_matches_hf),
        cmocka_unit_test(save_load_round_trip),
        cmocka_unit_test(bad_configs_are_refused),
        cmocka_unit_test(file_errors_name_the_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
