/* safetensors (§11): writer → reader → writer is byte-exact, the layout
 * matches the Python library's bytes, an HF-written file round-trips exactly,
 * and every malformed file fails with a clear message (no crash). */
#include "harness.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "reformer/io.h"

/* A writer holding one tensor of each dtype, a scalar, an empty tensor and a
 * name that needs JSON escaping. */
static rf_safetensors_writer *sample_writer(void) {
    static const float b[3] = {0, 1, 2};
    static const int32_t a[2] = {0, 1};
    static const int64_t c[2] = {0, 1};
    static const float s = 1.5f;
    rf_safetensors_writer *w;
    TH_OK(rf_safetensors_writer_new(&w));
    TH_OK(rf_safetensors_writer_add(w, "b", RF_ST_F32, 1, (int64_t[]){3}, b));
    TH_OK(rf_safetensors_writer_add(w, "a", RF_ST_I32, 1, (int64_t[]){2}, a));
    TH_OK(rf_safetensors_writer_add(w, "c", RF_ST_I64, 1, (int64_t[]){2}, c));
    TH_OK(rf_safetensors_writer_add(w, "z", RF_ST_F32, 2, (int64_t[]){0, 3}, NULL));
    TH_OK(rf_safetensors_writer_add(w, "s\"/\n\xc3\xa9\x01", RF_ST_F32, 0, NULL, &s));
    return w;
}

/* The header the Python library (safetensors 0.8.0, numpy) writes for the
 * same tensors: dtype order I64, F32, I32, then names; serde_json escapes;
 * space padding to a multiple of 8. */
static const char python_header[] =
    "{\"c\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]},"
    "\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[16,28]},"
    "\"s\\\"/\\n\xc3\xa9\\u0001\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[28,32]},"
    "\"z\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[32,32]},"
    "\"a\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[32,40]}}       ";

static void writer_matches_python_layout(void **state) {
    rf_safetensors_writer *w = sample_writer();
    void *bytes;
    size_t n;
    TH_OK(rf_safetensors_writer_serialize(w, &bytes, &n));
    size_t hlen = sizeof python_header - 1;
    assert_int_equal(hlen % 8, 0);
    assert_int_equal(n, 8 + hlen + 40);
    const unsigned char *p = bytes;
    assert_int_equal(p[0], hlen & 0xff);
    assert_int_equal(p[1], hlen >> 8);
    for (int i = 2; i < 8; i++) assert_int_equal(p[i], 0);
    assert_memory_equal(p + 8, python_header, hlen);
    free(bytes);
    rf_safetensors_writer_free(w);
}

/* Copy every tensor and metadata entry of `st` into a new writer. */
static rf_safetensors_writer *writer_from(const rf_safetensors *st) {
    rf_safetensors_writer *w;
    TH_OK(rf_safetensors_writer_new(&w));
    for (size_t i = 0; i < rf_safetensors_metadata_count(st); i++) {
        const char *k, *v;
        TH_OK(rf_safetensors_metadata_at(st, i, &k, &v));
        TH_OK(rf_safetensors_writer_set_metadata(w, k, v));
    }
    for (size_t i = 0; i < rf_safetensors_count(st); i++) {
        rf_st_tensor t;
        TH_OK(rf_safetensors_at(st, i, &t));
        TH_OK(rf_safetensors_writer_add(w, t.name, t.dtype, t.ndim, t.shape, t.data));
    }
    return w;
}

static void round_trip_is_byte_exact(void **state) {
    rf_safetensors_writer *w = sample_writer();
    TH_OK(rf_safetensors_writer_set_metadata(w, "format", "pt"));
    TH_OK(rf_safetensors_writer_set_metadata(w, "note", "a/b \"q\""));
    char dir[64], path[128];
    th_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    TH_OK(rf_safetensors_write(w, path));
    void *first;
    size_t n1;
    TH_OK(rf_safetensors_writer_serialize(w, &first, &n1));

    rf_safetensors *st;
    TH_OK(rf_safetensors_open(&st, path));
    assert_int_equal(rf_safetensors_count(st), 5);
    rf_st_tensor t;
    TH_OK(rf_safetensors_find(st, "b", &t));
    assert_int_equal(t.dtype, RF_ST_F32);
    assert_int_equal(t.ndim, 1);
    assert_int_equal(t.shape[0], 3);
    assert_int_equal(t.bytes, 12);
    assert_true(((const float *)t.data)[2] == 2.0f);
    TH_OK(rf_safetensors_find(st, "c", &t));
    assert_int_equal(t.dtype, RF_ST_I64);
    assert_int_equal(((const int64_t *)t.data)[1], 1);
    assert_int_equal((uintptr_t)t.data % 8, 0);
    TH_OK(rf_safetensors_find(st, "z", &t));
    assert_int_equal(t.numel, 0);
    assert_int_equal(t.shape[1], 3);
    TH_OK(rf_safetensors_find(st, "s\"/\n\xc3\xa9\x01", &t));
    assert_int_equal(t.ndim, 0);
    assert_int_equal(t.numel, 1);
    assert_true(*(const float *)t.data == 1.5f);
    const char *v;
    TH_OK(rf_safetensors_metadata_get(st, "note", &v));
    assert_string_equal(v, "a/b \"q\"");

    rf_safetensors_writer *w2 = writer_from(st);
    void *second;
    size_t n2;
    TH_OK(rf_safetensors_writer_serialize(w2, &second, &n2));
    assert_int_equal(n1, n2);
    assert_memory_equal(first, second, n1);
    void *on_disk;
    size_t n3;
    TH_OK(rf_read_file(path, &on_disk, &n3));
    assert_int_equal(n3, n1);
    assert_memory_equal(on_disk, first, n1);
    free(first), free(second), free(on_disk);
    rf_safetensors_close(st);
    rf_safetensors_writer_free(w), rf_safetensors_writer_free(w2);
}

/* A file written by the Python library (tools/hf_golden.py, safetensors.torch)
 * reads, and writing its tensors back gives the same bytes. */
static void hf_file_round_trips(void **state) {
    const char *data = getenv("RF_TEST_DATA");
    char path[1024];
    snprintf(path, sizeof path, "%s/hf_causal/model.safetensors", data ? data : "tests/data");
    void *orig;
    size_t n;
    if (rf_read_file(path, &orig, &n) != RF_OK) skip();
    rf_safetensors *st;
    TH_OK(rf_safetensors_open(&st, path));
    assert_true(rf_safetensors_count(st) > 10);
    rf_st_tensor t;
    TH_OK(rf_safetensors_find(st, "reformer.embeddings.word_embeddings.weight", &t));
    assert_int_equal(t.dtype, RF_ST_F32);
    assert_int_equal(t.ndim, 2);
    const char *fmt;
    TH_OK(rf_safetensors_metadata_get(st, "format", &fmt));
    assert_string_equal(fmt, "pt");
    rf_safetensors_writer *w = writer_from(st);
    void *again;
    size_t n2;
    TH_OK(rf_safetensors_writer_serialize(w, &again, &n2));
    assert_int_equal(n2, n);
    assert_memory_equal(again, orig, n);
    free(orig), free(again);
    rf_safetensors_writer_free(w);
    rf_safetensors_close(st);
}

/* Bytes of a file: the length field (`hlen`, or the header's own length when
 * UINT64_MAX), the header, then `data_len` data bytes. */
static rf_status open_crafted(const char *header, uint64_t hlen, size_t data_len) {
    size_t h = strlen(header), n = 8 + h + data_len;
    if (hlen == UINT64_MAX) hlen = h;
    unsigned char *b = calloc(1, n);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(b + 8, header, h);
    rf_safetensors *st = NULL;
    rf_status s = rf_safetensors_open_memory(&st, b, n, "crafted.safetensors");
    free(b);
    rf_safetensors_close(st);
    return s;
}
#define H UINT64_MAX

static void malformed_files_fail_cleanly(void **state) {
    TH_OK(open_crafted("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", H, 8));
    TH_OK(open_crafted("{}", H, 0));
    TH_OK(open_crafted("{\"__metadata__\":null}", H, 0));
    rf_safetensors *st;
    TH_FAILS(rf_safetensors_open_memory(&st, "\x10\0\0", 3, "tiny"), RF_ERR_FORMAT, "too short for the 8-byte header length");
    TH_FAILS(open_crafted("{}", 1000, 0), RF_ERR_FORMAT, "header length 1000 exceeds the 2 bytes");
    TH_FAILS(open_crafted("{}", 1ull << 40, 0), RF_ERR_FORMAT, "exceeds the 100000000-byte limit");
    TH_FAILS(open_crafted("{not json}", H, 0), RF_ERR_FORMAT, "not valid JSON");
    TH_FAILS(open_crafted("{\"x\":1} junk", H, 0), RF_ERR_FORMAT, "unexpected text");
    TH_FAILS(open_crafted("{\"x\":{\"dtype\":\"F32\"", H, 0), RF_ERR_FORMAT, "ends early");
    TH_FAILS(open_crafted("[1, 2]", H, 0), RF_ERR_FORMAT, "does not start with '{'");
    TH_FAILS(open_crafted("{\"\xff\":1}", H, 0), RF_ERR_FORMAT, "invalid UTF-8 at byte 2");
    /* Overlong forms too: the writer could not write such a name back. */
    TH_FAILS(open_crafted("{\"\xc0\xbf\":1}", H, 0), RF_ERR_FORMAT, "invalid UTF-8 at byte 2");
    TH_FAILS(open_crafted("{\"__metadata__\":{\"k\":\"a\\u0000b\"}}", H, 0), RF_ERR_FORMAT,
             "__metadata__ value 'a' contains NUL or invalid UTF-8");
    TH_FAILS(open_crafted("{\"x\":3}", H, 0), RF_ERR_FORMAT, "tensor 'x' is an integer, not an object");
    TH_FAILS(open_crafted("{\"x\":{\"dtype\":\"F32\",\"shape\":[2]}}", H, 8), RF_ERR_FORMAT, "lacks one of");
    TH_FAILS(open_crafted("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", H, 12),
             RF_ERR_FORMAT, "'a' [0, 8] and 'b' [4, 12] overlap");
    TH_FAILS(open_crafted("{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", H, 8),
             RF_ERR_FORMAT, "data_offsets [0, 16] lie outside the 8-byte data section");
    TH_FAILS(open_crafted("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", H, 8),
             RF_ERR_FORMAT, "data_offsets [8, 0] end before they begin");
    TH_FAILS(open_crafted("{\"x\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]}}", H, 8),
             RF_ERR_UNSUPPORTED, "tensor 'x' has dtype F16");
    TH_FAILS(open_crafted("{\"x\":{\"dtype\":\"Q7\",\"shape\":[4],\"data_offsets\":[0,8]}}", H, 8),
             RF_ERR_FORMAT, "unknown dtype 'Q7'");
    TH_FAILS(open_crafted("{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", H, 8),
             RF_ERR_FORMAT, "shape [3] of F32 needs 12 bytes but data_offsets [0, 8] hold 8");
    TH_FAILS(open_crafted("{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,8]}}", H, 8),
             RF_ERR_FORMAT, "overflows");
    TH_FAILS(open_crafted("{\"x\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", H, 8),
             RF_ERR_FORMAT, "negative");
    TH_FAILS(open_crafted("{\"x\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", H, 8),
             RF_ERR_FORMAT, "a shape entry is a float, not an integer");
    TH_FAILS(open_crafted("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}", H, 8),
             RF_ERR_FORMAT, "not a list of two integers");
    TH_FAILS(open_crafted("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", H, 8),
             RF_ERR_FORMAT, "data bytes [0, 4) before tensor 'x' belong to no tensor");
    TH_FAILS(open_crafted("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", H, 8),
             RF_ERR_FORMAT, "cover 4 bytes of the 8-byte data section");
    TH_FAILS(open_crafted("{\"x\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[4,12]},"
                          "\"y\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}", H, 12),
             RF_ERR_UNSUPPORTED, "not a multiple of its 8-byte element");
    TH_FAILS(open_crafted("{\"__metadata__\":{\"k\":1}}", H, 0), RF_ERR_FORMAT, "value of 'k' is an integer, not a string");
    TH_FAILS(open_crafted("{}", H, 4), RF_ERR_FORMAT, "no tensors but 4 bytes of data");
}

static void file_problems_fail_cleanly(void **state) {
    char dir[64], path[128];
    th_tmpdir(dir, sizeof dir);
    rf_safetensors *st;
    snprintf(path, sizeof path, "%s/missing.safetensors", dir);
    TH_FAILS(rf_safetensors_open(&st, path), RF_ERR_NOT_FOUND, "missing.safetensors");
    /* A valid file cut short: the header now reaches past the data. */
    rf_safetensors_writer *w = sample_writer();
    void *bytes;
    size_t n;
    TH_OK(rf_safetensors_writer_serialize(w, &bytes, &n));
    snprintf(path, sizeof path, "%s/cut.safetensors", dir);
    TH_OK(rf_write_file_atomic(path, bytes, n - 4));
    TH_FAILS(rf_safetensors_open(&st, path), RF_ERR_FORMAT, "lie outside the 36-byte data section");
    TH_OK(rf_write_file_atomic(path, bytes, 100));
    TH_FAILS(rf_safetensors_open(&st, path), RF_ERR_FORMAT, "cut.safetensors': header length 296 exceeds the 92 bytes");
    TH_OK(rf_write_file_atomic(path, bytes, 5));
    TH_FAILS(rf_safetensors_open(&st, path), RF_ERR_FORMAT, "too short");
    free(bytes);
    rf_safetensors_writer_free(w);
}

static void lookups_and_tensor_loading(void **state) {
    rf_safetensors_writer *w = sample_writer();
    void *bytes;
    size_t n;
    TH_OK(rf_safetensors_writer_serialize(w, &bytes, &n));
    rf_safetensors *st;
    TH_OK(rf_safetensors_open_memory(&st, bytes, n, "mem.safetensors"));
    rf_st_tensor t;
    TH_FAILS(rf_safetensors_find(st, "nope", &t), RF_ERR_NOT_FOUND, "mem.safetensors': no tensor 'nope'");
    const char *v;
    TH_FAILS(rf_safetensors_metadata_get(st, "format", &v), RF_ERR_NOT_FOUND, "no __metadata__ entry 'format'");
    TH_FAILS(rf_safetensors_at(st, 5, &t), RF_ERR_INVALID_ARG, "index 5 out of range");

    rf_device *cpu = th_cpu();
    rf_tensor b = TH_TENSOR(cpu, RF_F32, NULL, 3);
    TH_OK(rf_safetensors_load_tensor(st, "b", &b));
    float *got = th_download_f32(&b);
    assert_true(got[0] == 0.0f && got[1] == 1.0f && got[2] == 2.0f);
    free(got);
    rf_tensor wrong = TH_TENSOR(cpu, RF_F32, NULL, 1, 3);
    TH_FAILS(rf_safetensors_load_tensor(st, "b", &wrong), RF_ERR_FORMAT, "tensor 'b' is F32 [3] but the model expects F32 [1, 3]");
    rf_tensor ints = TH_TENSOR(cpu, RF_I32, NULL, 3);
    TH_FAILS(rf_safetensors_load_tensor(st, "b", &ints), RF_ERR_FORMAT, "expects I32 [3]");

    /* Device tensors go through the writer and come back equal. */
    rf_safetensors_writer *w2;
    TH_OK(rf_safetensors_writer_new(&w2));
    TH_OK(rf_safetensors_writer_add_tensor(w2, "b", &b));
    void *bytes2;
    size_t n2;
    TH_OK(rf_safetensors_writer_serialize(w2, &bytes2, &n2));
    rf_safetensors *st2;
    TH_OK(rf_safetensors_open_memory(&st2, bytes2, n2, NULL));
    TH_OK(rf_safetensors_find(st2, "b", &t));
    assert_true(((const float *)t.data)[1] == 1.0f);
    rf_safetensors_close(st2);
    free(bytes2);
    rf_safetensors_writer_free(w2);

    rf_tensor_free(&b), rf_tensor_free(&wrong), rf_tensor_free(&ints);
    rf_device_close(cpu);
    rf_safetensors_close(st);
    free(bytes);
    rf_safetensors_writer_free(w);
}

static void writer_rejects_bad_tensors(void **state) {
    rf_safetensors_writer *w = sample_writer();
    float x = 0;
    TH_FAILS(rf_safetensors_writer_add(w, "b", RF_ST_F32, 1, (int64_t[]){1}, &x), RF_ERR_INVALID_ARG, "'b' was already added");
    TH_FAILS(rf_safetensors_writer_add(w, "__metadata__", RF_ST_F32, 1, (int64_t[]){1}, &x), RF_ERR_INVALID_ARG,
             "not a usable tensor name");
    TH_FAILS(rf_safetensors_writer_add(w, "bad\xff", RF_ST_F32, 1, (int64_t[]){1}, &x), RF_ERR_INVALID_ARG, "not UTF-8");
    TH_FAILS(rf_safetensors_writer_add(w, "neg", RF_ST_F32, 1, (int64_t[]){-1}, &x), RF_ERR_INVALID_ARG, "shape[0] = -1");
    TH_FAILS(rf_safetensors_writer_add(w, "big", RF_ST_F32, 2, (int64_t[]){1ll << 40, 1ll << 40}, &x), RF_ERR_INVALID_ARG,
             "overflows");
    rf_safetensors_writer_free(w);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(writer_matches_python_layout),
        cmocka_unit_test(round_trip_is_byte_exact),
        cmocka_unit_test(hf_file_round_trips),
        cmocka_unit_test(malformed_files_fail_cleanly),
        cmocka_unit_test(file_problems_fail_cleanly),
        cmocka_unit_test(lookups_and_tensor_loading),
        cmocka_unit_test(writer_rejects_bad_tensors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
