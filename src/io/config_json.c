/* config.json with the HF ReformerConfig key names (§11): reading with
 * strict type checks, writing in a form transformers reads back. */
#include <limits.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "io/io_util.h"
#include "reformer/model.h"

/* ---- typed getters: each names the key and what was found ---------------- */

static rf_status bad_type(const char *where, const char *key, const json_object *v, const char *want) {
    return rf_error(RF_ERR_FORMAT, "%s: %s is %s, not %s", where, key, rf_json_type_name(v), want);
}

static rf_status as_int(const char *where, const char *key, json_object *v, int *out) {
    if (!json_object_is_type(v, json_type_int)) return bad_type(where, key, v, "an integer");
    int64_t x = json_object_get_int64(v);
    if (x < INT_MIN || x > INT_MAX) return rf_error(RF_ERR_FORMAT, "%s: %s = %lld is out of range", where, key, (long long)x);
    *out = (int)x;
    return RF_OK;
}

static rf_status as_bool(const char *where, const char *key, json_object *v, bool *out) {
    if (!json_object_is_type(v, json_type_boolean)) return bad_type(where, key, v, "true or false");
    *out = json_object_get_boolean(v);
    return RF_OK;
}

static rf_status as_double(const char *where, const char *key, json_object *v, double *out) {
    if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
        return bad_type(where, key, v, "a number");
    *out = json_object_get_double(v);
    if (!isfinite(*out)) return rf_error(RF_ERR_FORMAT, "%s: %s is not a finite number", where, key);
    return RF_OK;
}

/* null → −1 (pad/eos ids). */
static rf_status as_optional_id(const char *where, const char *key, json_object *v, int *out) {
    if (json_object_is_type(v, json_type_null)) {
        *out = -1;
        return RF_OK;
    }
    return as_int(where, key, v, out);
}

/* A list of exactly two ints (axial_pos_shape, axial_pos_embds_dim). */
static rf_status as_pair(const char *where, const char *key, json_object *v, int out[2]) {
    if (!json_object_is_type(v, json_type_array)) return bad_type(where, key, v, "a list of two integers");
    size_t n = json_object_array_length(v);
    if (n != 2)
        return rf_error(RF_ERR_UNSUPPORTED, "%s: %s has %zu entries; only two axes are supported", where, key, n);
    char item[96];
    for (size_t i = 0; i < 2; i++) {
        snprintf(item, sizeof item, "%s[%zu]", key, i);
        RF_TRY(as_int(where, item, json_object_array_get_idx(v, i), &out[i]));
    }
    return RF_OK;
}

static rf_status parse_attn_layers(const char *where, json_object *v, rf_config *c) {
    if (!json_object_is_type(v, json_type_array)) return bad_type(where, "attn_layers", v, "a list of \"lsh\"/\"local\"");
    size_t n = json_object_array_length(v);
    if (n > RF_CONFIG_MAX_LAYERS)
        return rf_error(RF_ERR_UNSUPPORTED, "%s: attn_layers has %zu layers; at most %d are supported", where, n,
                        RF_CONFIG_MAX_LAYERS);
    for (size_t i = 0; i < n; i++) {
        json_object *t = json_object_array_get_idx(v, i);
        char item[32];
        snprintf(item, sizeof item, "attn_layers[%zu]", i);
        if (!json_object_is_type(t, json_type_string)) return bad_type(where, item, t, "a string");
        const char *s = json_object_get_string(t);
        if (strcmp(s, "lsh") == 0) c->attn_layers[i] = RF_ATTN_LSH;
        else if (strcmp(s, "local") == 0) c->attn_layers[i] = RF_ATTN_LOCAL;
        else
            return rf_error(RF_ERR_UNSUPPORTED, "%s: %s = '%.64s' is not a supported attention type (lsh, local)", where,
                            item, s);
    }
    c->num_layers = (int)n;
    return RF_OK;
}

static rf_status parse_num_buckets(const char *where, json_object *v, rf_config *c) {
    if (json_object_is_type(v, json_type_null)) {
        c->num_bucket_factors = 0;
        return RF_OK;
    }
    if (json_object_is_type(v, json_type_int)) {
        c->num_bucket_factors = 1;
        return as_int(where, "num_buckets", v, &c->num_buckets[0]);
    }
    if (!json_object_is_type(v, json_type_array)) return bad_type(where, "num_buckets", v, "null, an integer or a list");
    size_t n = json_object_array_length(v);
    if (n < 1 || n > 2)
        return rf_error(RF_ERR_UNSUPPORTED, "%s: num_buckets has %zu factors; one or two are supported", where, n);
    for (size_t i = 0; i < n; i++) {
        char item[32];
        snprintf(item, sizeof item, "num_buckets[%zu]", i);
        RF_TRY(as_int(where, item, json_object_array_get_idx(v, i), &c->num_buckets[i]));
    }
    c->num_bucket_factors = (int)n;
    return RF_OK;
}

/* ---- keys ----------------------------------------------------------------- */

typedef enum { K_INT, K_BOOL, K_DOUBLE, K_ID } key_kind;

/* Scalar keys: where each lands in rf_config. */
typedef struct scalar_key {
    const char *key;
    key_kind kind;
    size_t offset;
    bool required;
} scalar_key;

#define SK(name, kind, req) {#name, kind, offsetof(rf_config, name), req}
static const scalar_key scalar_keys[] = {
    SK(hidden_size, K_INT, true),
    SK(num_attention_heads, K_INT, true),
    SK(attention_head_size, K_INT, true),
    SK(feed_forward_size, K_INT, true),
    SK(vocab_size, K_INT, true),
    SK(max_position_embeddings, K_INT, true),
    SK(is_decoder, K_BOOL, false),
    SK(num_hashes, K_INT, false),
    SK(lsh_attn_chunk_length, K_INT, false),
    SK(lsh_num_chunks_before, K_INT, false),
    SK(lsh_num_chunks_after, K_INT, false),
    SK(local_attn_chunk_length, K_INT, false),
    SK(local_num_chunks_before, K_INT, false),
    SK(local_num_chunks_after, K_INT, false),
    SK(axial_pos_embds, K_BOOL, false),
    SK(axial_norm_std, K_DOUBLE, false),
    SK(layer_norm_eps, K_DOUBLE, false),
    SK(chunk_size_feed_forward, K_INT, false),
    SK(chunk_size_lm_head, K_INT, false),
    SK(hidden_dropout_prob, K_DOUBLE, false),
    SK(lsh_attention_probs_dropout_prob, K_DOUBLE, false),
    SK(local_attention_probs_dropout_prob, K_DOUBLE, false),
    SK(initializer_range, K_DOUBLE, false),
    SK(tie_word_embeddings, K_BOOL, false),
    SK(pad_token_id, K_ID, false),
    SK(eos_token_id, K_ID, false),
};
#undef SK

static rf_status parse_scalar(const char *where, const scalar_key *k, json_object *v, rf_config *c) {
    void *field = (char *)c + k->offset;
    switch (k->kind) {
    case K_INT: return as_int(where, k->key, v, field);
    case K_BOOL: return as_bool(where, k->key, v, field);
    case K_DOUBLE: return as_double(where, k->key, v, field);
    case K_ID: return as_optional_id(where, k->key, v, field);
    }
    return RF_OK;
}

/* Generic HF keys that would change the model if set: refuse those values. */
static rf_status check_hf_generic(const char *where, json_object *root, const rf_config *c) {
    json_object *v;
    if (json_object_object_get_ex(root, "model_type", &v) &&
        (!json_object_is_type(v, json_type_string) || strcmp(json_object_get_string(v), "reformer") != 0))
        return rf_error(RF_ERR_UNSUPPORTED, "%s: model_type = %.64s is not \"reformer\"", where,
                        json_object_to_json_string(v));
    static const char *const must_be_false[] = {"is_encoder_decoder", "add_cross_attention"};
    for (size_t i = 0; i < sizeof must_be_false / sizeof *must_be_false; i++)
        if (json_object_object_get_ex(root, must_be_false[i], &v) && json_object_is_type(v, json_type_boolean) &&
            json_object_get_boolean(v))
            return rf_error(RF_ERR_UNSUPPORTED, "%s: %s = true is not supported", where, must_be_false[i]);
    if (json_object_object_get_ex(root, "pruned_heads", &v) && json_object_is_type(v, json_type_object) &&
        json_object_object_length(v) > 0)
        return rf_error(RF_ERR_UNSUPPORTED, "%s: pruned_heads is not supported (%.64s)", where,
                        json_object_to_json_string(v));
    /* HF derives num_hidden_layers from attn_layers; a different value is a
     * contradiction, not a choice. */
    if (json_object_object_get_ex(root, "num_hidden_layers", &v)) {
        int n;
        RF_TRY(as_int(where, "num_hidden_layers", v, &n));
        if (n != c->num_layers)
            return rf_error(RF_ERR_FORMAT, "%s: num_hidden_layers = %d but attn_layers lists %d layers", where, n,
                            c->num_layers);
    }
    return RF_OK;
}

static rf_status required(const char *where, json_object *root, const char *key, json_object **v) {
    if (!json_object_object_get_ex(root, key, v))
        return rf_error(RF_ERR_FORMAT, "%s: required key '%s' is missing", where, key);
    return RF_OK;
}

static rf_status parse_root(const char *where, json_object *root, rf_config *c) {
    if (!json_object_is_type(root, json_type_object))
        return rf_error(RF_ERR_FORMAT, "%s: the JSON is %s, not an object", where, rf_json_type_name(root));
    json_object *v;
    RF_TRY(required(where, root, "attn_layers", &v));
    RF_TRY(parse_attn_layers(where, v, c));
    for (size_t i = 0; i < sizeof scalar_keys / sizeof *scalar_keys; i++) {
        const scalar_key *k = &scalar_keys[i];
        if (json_object_object_get_ex(root, k->key, &v)) RF_TRY(parse_scalar(where, k, v, c));
        else if (k->required) return rf_error(RF_ERR_FORMAT, "%s: required key '%s' is missing", where, k->key);
    }
    if (json_object_object_get_ex(root, "hidden_act", &v)) {
        if (!json_object_is_type(v, json_type_string)) return bad_type(where, "hidden_act", v, "a string");
        const char *s = json_object_get_string(v);
        if (strcmp(s, "relu") == 0) c->hidden_act = RF_ACT_RELU;
        else if (strcmp(s, "gelu") == 0) c->hidden_act = RF_ACT_GELU;
        else return rf_error(RF_ERR_UNSUPPORTED, "%s: hidden_act = '%.64s' is not supported (relu, gelu)", where, s);
    }
    if (json_object_object_get_ex(root, "num_buckets", &v)) RF_TRY(parse_num_buckets(where, v, c));
    if (json_object_object_get_ex(root, "hash_seed", &v)) {
        c->has_hash_seed = !json_object_is_type(v, json_type_null);
        if (c->has_hash_seed) {
            if (!json_object_is_type(v, json_type_int)) return bad_type(where, "hash_seed", v, "null or an integer");
            c->hash_seed = json_object_get_int64(v);
        }
    }
    if (c->axial_pos_embds) {
        RF_TRY(required(where, root, "axial_pos_shape", &v));
        RF_TRY(as_pair(where, "axial_pos_shape", v, c->axial_pos_shape));
        RF_TRY(required(where, root, "axial_pos_embds_dim", &v));
        RF_TRY(as_pair(where, "axial_pos_embds_dim", v, c->axial_pos_embds_dim));
    }
    return check_hf_generic(where, root, c);
}

/* Re-issue the last message with `where` in front of it: validation messages
 * start "config: ...", a file's should name the file. */
static rf_status prefixed(rf_status s, const char *where) {
    char msg[2048];
    const char *last = rf_last_error();
    if (strncmp(last, "config: ", 8) == 0) last += 8;
    snprintf(msg, sizeof msg, "%s", last);
    return rf_error(s, "%s: %s", where, msg);
}

static rf_status parse_text(rf_config *cfg, const char *text, size_t len, const char *where) {
    /* A UTF-8 byte-order mark (Windows editors write one) is not part of the
     * JSON: skip it, as Python's utf-8-sig does. */
    if (text && len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3)) text += 3, len -= 3;
    json_object *root;
    RF_TRY(rf_json_parse(text, len, where, &root));
    rf_config c;
    rf_config_default(&c);
    rf_status s = parse_root(where, root, &c);
    json_object_put(root);
    if (s == RF_OK && (s = rf_config_validate(&c)) != RF_OK) s = prefixed(s, where);
    if (s == RF_OK) *cfg = c;
    return s;
}

rf_status rf_config_parse_json(rf_config *cfg, const char *text, size_t len) {
    if (!cfg || (!text && len)) return rf_error(RF_ERR_INVALID_ARG, "rf_config_parse_json: null argument");
    return parse_text(cfg, text, len, "config");
}

rf_status rf_config_load_json(rf_config *cfg, const char *path) {
    if (!cfg || !path) return rf_error(RF_ERR_INVALID_ARG, "rf_config_load_json: null argument");
    void *text;
    size_t len;
    RF_TRY(rf_read_file(path, &text, &len));
    char where[1200];
    snprintf(where, sizeof where, "config '%s'", path);
    rf_status s = parse_text(cfg, text, len, where);
    free(text);
    return s;
}

/* ---- writing ---------------------------------------------------------------- */

/* json-c keeps insertion order; keys are added sorted, as HF writes them. */
static void put(json_object *o, const char *key, json_object *v) { json_object_object_add(o, key, v); }

static json_object *new_double(double x) {
    char buf[40];
    rf_json_format_double(x, buf, sizeof buf);
    return json_object_new_double_s(x, buf);
}

static json_object *new_pair(const int v[2]) {
    json_object *a = json_object_new_array();
    json_object_array_add(a, json_object_new_int(v[0]));
    json_object_array_add(a, json_object_new_int(v[1]));
    return a;
}

static json_object *new_id(int id) { return id < 0 ? NULL : json_object_new_int(id); }

rf_status rf_config_to_json(const rf_config *c, char **text) {
    if (!c || !text) return rf_error(RF_ERR_INVALID_ARG, "rf_config_to_json: null argument");
    *text = NULL;
    RF_TRY(rf_config_validate(c));
    json_object *o = json_object_new_object();
    if (!o) return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_config_to_json: no memory");
    json_object *arch = json_object_new_array();
    json_object_array_add(arch, json_object_new_string("ReformerModelWithLMHead"));
    put(o, "architectures", arch);
    put(o, "attention_head_size", json_object_new_int(c->attention_head_size));
    json_object *layers = json_object_new_array();
    for (int i = 0; i < c->num_layers; i++)
        json_object_array_add(layers, json_object_new_string(c->attn_layers[i] == RF_ATTN_LSH ? "lsh" : "local"));
    put(o, "attn_layers", layers);
    put(o, "axial_norm_std", new_double(c->axial_norm_std));
    put(o, "axial_pos_embds", json_object_new_boolean(c->axial_pos_embds));
    put(o, "axial_pos_embds_dim", new_pair(c->axial_pos_embds_dim));
    put(o, "axial_pos_shape", new_pair(c->axial_pos_shape));
    put(o, "chunk_size_feed_forward", json_object_new_int(c->chunk_size_feed_forward));
    put(o, "chunk_size_lm_head", json_object_new_int(c->chunk_size_lm_head));
    put(o, "eos_token_id", new_id(c->eos_token_id));
    put(o, "feed_forward_size", json_object_new_int(c->feed_forward_size));
    put(o, "hash_seed", c->has_hash_seed ? json_object_new_int64(c->hash_seed) : NULL);
    put(o, "hidden_act", json_object_new_string(c->hidden_act == RF_ACT_GELU ? "gelu" : "relu"));
    put(o, "hidden_dropout_prob", new_double(c->hidden_dropout_prob));
    put(o, "hidden_size", json_object_new_int(c->hidden_size));
    put(o, "initializer_range", new_double(c->initializer_range));
    put(o, "is_decoder", json_object_new_boolean(c->is_decoder));
    put(o, "layer_norm_eps", new_double(c->layer_norm_eps));
    put(o, "local_attention_probs_dropout_prob", new_double(c->local_attention_probs_dropout_prob));
    put(o, "local_attn_chunk_length", json_object_new_int(c->local_attn_chunk_length));
    put(o, "local_num_chunks_after", json_object_new_int(c->local_num_chunks_after));
    put(o, "local_num_chunks_before", json_object_new_int(c->local_num_chunks_before));
    put(o, "lsh_attention_probs_dropout_prob", new_double(c->lsh_attention_probs_dropout_prob));
    put(o, "lsh_attn_chunk_length", json_object_new_int(c->lsh_attn_chunk_length));
    put(o, "lsh_num_chunks_after", json_object_new_int(c->lsh_num_chunks_after));
    put(o, "lsh_num_chunks_before", json_object_new_int(c->lsh_num_chunks_before));
    put(o, "max_position_embeddings", json_object_new_int(c->max_position_embeddings));
    put(o, "model_type", json_object_new_string("reformer"));
    put(o, "num_attention_heads", json_object_new_int(c->num_attention_heads));
    json_object *nb = NULL;
    if (c->num_bucket_factors == 1) nb = json_object_new_int(c->num_buckets[0]);
    else if (c->num_bucket_factors == 2) nb = new_pair(c->num_buckets);
    put(o, "num_buckets", nb);
    put(o, "num_hashes", json_object_new_int(c->num_hashes));
    put(o, "num_hidden_layers", json_object_new_int(c->num_layers));
    put(o, "pad_token_id", new_id(c->pad_token_id));
    put(o, "tie_word_embeddings", json_object_new_boolean(c->tie_word_embeddings));
    put(o, "vocab_size", json_object_new_int(c->vocab_size));
    size_t len = 0;
    const char *s = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    char *out = s ? malloc(len + 2) : NULL;
    if (out) {
        memcpy(out, s, len);
        memcpy(out + len, "\n", 2);
    }
    json_object_put(o);
    if (!out) return rf_error(RF_ERR_OUT_OF_MEMORY, "rf_config_to_json: no memory");
    *text = out;
    return RF_OK;
}

rf_status rf_config_save_json(const rf_config *cfg, const char *path) {
    if (!cfg || !path) return rf_error(RF_ERR_INVALID_ARG, "rf_config_save_json: null argument");
    char *text;
    RF_TRY(rf_config_to_json(cfg, &text));
    rf_status s = rf_write_file_atomic(path, text, strlen(text));
    free(text);
    return s;
}
