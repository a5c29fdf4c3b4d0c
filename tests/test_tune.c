/* Tuned kernel parameters (src/device/opencl/cl_tune.c, tools/cmd_tune.c;
 * docs/tuning.md): the table file round-trips, foreign and malformed files
 * are ignored, an override changes the kernel's build options and the
 * results still match the cpu, a value beyond the device's limits is
 * refused when forced and falls back when stored, and `reformer tune`
 * stores a table that another process reads, rejects a candidate whose
 * results are wrong, and skips the GPU shape's keys on a device that runs
 * the CPU shape. Every test works in a private $XDG_CACHE_HOME, with the
 * attention kernels in their GPU shape (RF_CL_ATTN=gpu), whose tiles the
 * keys are. */
#include "harness.h"
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "device/opencl/cl_backend.h"

static char cache_home[512];

static int setup(void **state) {
    th_tmpdir(cache_home, sizeof cache_home);
    setenv("XDG_CACHE_HOME", cache_home, 1);
    setenv("RF_CL_ATTN", "gpu", 1);
    unsetenv("RF_CL_LIMITS");
    return 0;
}

static void write_text(const char *path, const char *text) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/reformer-cl", cache_home);
    mkdir(dir, 0700);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* The table file of the test device, and a valid one's text holding `values`. */
static void table_text(rf_device *dev, const char *device_name, const char *values, char *out, size_t n) {
    const rf_device_info *i = &dev->info;
    json_object *name = json_object_new_string(device_name), *other[4] = {
        json_object_new_string(i->vendor), json_object_new_string(i->driver_version),
        json_object_new_string(i->platform_version), json_object_new_string(i->opencl_c_version)};
    snprintf(out, n,
             "{\"format\": \"reformer-cl tune table 1\", \"device\": %s, \"vendor\": %s, \"driver\": %s, "
             "\"platform_version\": %s, \"opencl_c_version\": %s, \"values\": %s}\n",
             json_object_to_json_string(name), json_object_to_json_string(other[0]),
             json_object_to_json_string(other[1]), json_object_to_json_string(other[2]),
             json_object_to_json_string(other[3]), values);
    json_object_put(name);
    for (int k = 0; k < 4; k++) json_object_put(other[k]);
}

static void table_round_trips(void **state) {
    rf_device *dev;
    TH_CL_OR_SKIP(dev);
    /* Nothing stored: every key reads its default. */
    assert_int_equal(rf_cl_tuned(dev, "attn_forward.qtile", 32), 32);
    TH_OK(rf_cl_tune_set(dev, "attn_forward.qtile", 16));
    TH_OK(rf_cl_tune_set(dev, "attn_backward_dkdv.ktile", 64));
    TH_FAILS(rf_cl_tune_set(dev, "no_such_kernel.tile", 8), RF_ERR_INVALID_ARG, "unknown key");
    char path[4096], want[4096];
    TH_OK(rf_cl_tune_store(dev, path, sizeof path));
    rf_cl_tune_path(dev, want, sizeof want);
    assert_string_equal(path, want);
    assert_non_null(strstr(path, "/reformer-cl/tune-"));
    rf_device_close(dev);
    /* A fresh open reads them back, as stored (not forced) values. */
    dev = th_cl();
    assert_int_equal(rf_cl_tuned(dev, "attn_forward.qtile", 32), 16);
    assert_int_equal(rf_cl_tuned(dev, "attn_backward_dkdv.ktile", 32), 64);
    assert_int_equal(rf_cl_tuned(dev, "attn_backward_dq.qtile", 32), 32);
    assert_int_equal(rf_cl_ctx(dev)->tuning.count, 2);
    assert_false(rf_cl_ctx(dev)->tuning.values[0].forced);
    /* Value 0 removes a key: the default again, and stored so. */
    TH_OK(rf_cl_tune_set(dev, "attn_forward.qtile", 0));
    assert_int_equal(rf_cl_tuned(dev, "attn_forward.qtile", 32), 32);
    TH_OK(rf_cl_tune_store(dev, path, sizeof path));
    rf_device_close(dev);
    dev = th_cl();
    assert_int_equal(rf_cl_tuned(dev, "attn_forward.qtile", 32), 32);
    assert_int_equal(rf_cl_tuned(dev, "attn_backward_dkdv.ktile", 32), 64);
    rf_device_close(dev);
    remove(path);
}

static void foreign_and_malformed_tables_are_ignored(void **state) {
    rf_device *dev;
    TH_CL_OR_SKIP(dev);
    char path[4096], text[8192];
    rf_cl_tune_path(dev, path, sizeof path);
    char good_values[] = "{\"attn_forward.qtile\": 8}";
    char bad[8][8192];
    int nbad = 0;
    snprintf(bad[nbad++], sizeof bad[0], "%s", "");
    snprintf(bad[nbad++], sizeof bad[0], "%s", "{\"format\": \"reformer-cl tune table 1\", \"values\": {");
    snprintf(bad[nbad++], sizeof bad[0], "%s", "[1, 2, 3]");
    table_text(dev, "another device", good_values, bad[nbad++], sizeof bad[0]);
    table_text(dev, dev->info.name, "{\"attn_forward.qtile\": \"eight\"}", bad[nbad++], sizeof bad[0]);
    table_text(dev, dev->info.name, "{\"attn_forward.qtile\": -8}", bad[nbad++], sizeof bad[0]);
    table_text(dev, dev->info.name, "[8]", bad[nbad++], sizeof bad[0]);
    snprintf(bad[nbad++], sizeof bad[0], "\xff\xfe garbage \x01");
    rf_device_close(dev);
    for (int i = 0; i < nbad; i++) {
        write_text(path, bad[i]);
        dev = th_cl(); /* opens: the file costs a warning only */
        if (rf_cl_tuned(dev, "attn_forward.qtile", 32) != 32)
            fail_msg("table %d was not ignored:\n%s", i, bad[i]);
        assert_int_equal(rf_cl_ctx(dev)->tuning.count, 0);
        rf_device_close(dev);
    }
    /* A folder where the file should be is ignored too. */
    remove(path);
    assert_int_equal(mkdir(path, 0700), 0);
    dev = th_cl();
    assert_int_equal(rf_cl_tuned(dev, "attn_forward.qtile", 32), 32);
    rf_device_close(dev);
    rmdir(path);
    /* A valid table with a key this build lacks: the known key is read. */
    dev = th_cl();
    table_text(dev, dev->info.name, "{\"attn_forward.qtile\": 8, \"future_kernel.tile\": 4}", text, sizeof text);
    rf_device_close(dev);
    write_text(path, text);
    dev = th_cl();
    assert_int_equal(rf_cl_tuned(dev, "attn_forward.qtile", 32), 8);
    assert_int_equal(rf_cl_tuned(dev, "future_kernel.tile", 5), 5);
    rf_device_close(dev);
    remove(path);
}

/* Whether dev built `file` with an option string containing `define`. */
static bool built_with(rf_device *dev, const char *file, const char *define) {
    const rf_cl_context *cl = rf_cl_ctx(dev);
    for (int i = 0; i < cl->nprograms; i++)
        if (!strcmp(cl->programs[i].file, file) && strstr(cl->programs[i].options, define)) return true;
    return false;
}

/* Local attention forward and backward on dev and on the cpu: equal within
 * §10 (outputs 1e-4, gradients 1e-3). */
static void local_attention_matches_cpu(rf_device *dev, int64_t d) {
    const int64_t B = 1, L = 128, H = 2, D = H * d, n = B * L * D;
    rf_attention_config cfg = {.n_heads = (int)H, .head_dim = (int)d, .chunk_len = 32, .chunks_before = 1,
                               .causal = true};
    float *q = th_random((size_t)n, 1, 1), *k = th_random((size_t)n, 2, 1), *v = th_random((size_t)n, 3, 1);
    float *g = th_random((size_t)n, 4, 1);
    rf_device *devs[2] = {dev, th_cpu()};
    float *res[2][5];
    for (int i = 0; i < 2; i++) {
        rf_tensor tq = TH_TENSOR(devs[i], RF_F32, q, B, L, D), tk = TH_TENSOR(devs[i], RF_F32, k, B, L, D);
        rf_tensor tv = TH_TENSOR(devs[i], RF_F32, v, B, L, D), tg = TH_TENSOR(devs[i], RF_F32, g, B, L, D);
        rf_tensor out = TH_TENSOR(devs[i], RF_F32, NULL, B, L, D), lse = TH_TENSOR(devs[i], RF_F32, NULL, B, H, L);
        rf_tensor dq = TH_TENSOR(devs[i], RF_F32, NULL, B, L, D), dk = TH_TENSOR(devs[i], RF_F32, NULL, B, L, D);
        rf_tensor dv = TH_TENSOR(devs[i], RF_F32, NULL, B, L, D);
        TH_OK(rf_local_attention_forward(&out, &lse, &tq, &tk, &tv, NULL, &cfg));
        TH_OK(rf_local_attention_backward(&dq, &dk, &dv, &tg, &out, &lse, &tq, &tk, &tv, NULL, &cfg));
        res[i][0] = th_download_f32(&out), res[i][1] = th_download_f32(&lse);
        res[i][2] = th_download_f32(&dq), res[i][3] = th_download_f32(&dk), res[i][4] = th_download_f32(&dv);
        rf_tensor *all[] = {&tq, &tk, &tv, &tg, &out, &lse, &dq, &dk, &dv};
        for (size_t j = 0; j < sizeof all / sizeof all[0]; j++) rf_tensor_free(all[j]);
    }
    th_assert_close(res[0][0], res[1][0], (size_t)n, 1e-4, "out");
    th_assert_close(res[0][1], res[1][1], (size_t)(B * H * L), 1e-4, "lse");
    th_assert_close_grad(res[0][2], res[1][2], (size_t)n, 1e-3, "dq");
    th_assert_close_grad(res[0][3], res[1][3], (size_t)n, 1e-3, "dk");
    th_assert_close_grad(res[0][4], res[1][4], (size_t)n, 1e-3, "dv");
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 5; j++) free(res[i][j]);
    free(q), free(k), free(v), free(g);
    rf_device_close(devs[1]);
}

static void override_changes_build_options_and_matches_cpu(void **state) {
    rf_device *dev;
    TH_CL_OR_SKIP(dev);
    local_attention_matches_cpu(dev, 32);
    assert_true(built_with(dev, "local_attention.cl", "-DROWS=32 -DCOLS=64")); /* the documented defaults */
    assert_false(built_with(dev, "local_attention.cl", "-DROWS=8 "));
    TH_OK(rf_cl_tune_set(dev, "attn_forward.qtile", 8));
    TH_OK(rf_cl_tune_set(dev, "attn_backward_dq.ktile", 16));
    TH_OK(rf_cl_tune_set(dev, "attn_backward_dkdv.split", 2));
    local_attention_matches_cpu(dev, 32);
    assert_true(built_with(dev, "local_attention.cl", "-DROWS=8 -DCOLS=64"));
    assert_true(built_with(dev, "local_attention.cl", "-DROWS=32 -DCOLS=16"));
    assert_true(built_with(dev, "local_attention.cl", "-DSPLIT=2 "));
    rf_device_close(dev);
}

static void a_value_beyond_the_limits_is_refused_when_forced_and_falls_back_when_stored(void **state) {
    /* 16 KiB of local memory: at d = 32 the forward's 16-row tile with its
     * default 64-row key tile needs 23,872 bytes (local_attention.c,
     * plan_bytes); the default falls back to 32 rows by 16 keys. */
    setenv("RF_CL_LIMITS", "local:16384", 1);
    rf_device *dev;
    TH_CL_OR_SKIP(dev);
    const int64_t B = 1, L = 64, H = 1, d = 32, n = B * L * H * d;
    rf_attention_config cfg = {.n_heads = (int)H, .head_dim = (int)d, .chunk_len = 32, .chunks_before = 1};
    float *x = th_random((size_t)n, 5, 1);
    rf_tensor t = TH_TENSOR(dev, RF_F32, x, B, L, H * d), out = TH_TENSOR(dev, RF_F32, NULL, B, L, H * d);
    TH_OK(rf_cl_tune_set(dev, "attn_forward.qtile", 16));
    TH_FAILS(rf_local_attention_forward(&out, NULL, &t, &t, &t, NULL, &cfg), RF_ERR_UNSUPPORTED, "does not fit");
    char path[4096];
    TH_OK(rf_cl_tune_store(dev, path, sizeof path));
    rf_tensor_free(&t), rf_tensor_free(&out);
    rf_device_close(dev);
    dev = th_cl(); /* the stored 16 is not forced: the default, halved to what fits */
    assert_int_equal(rf_cl_tuned(dev, "attn_forward.qtile", 32), 16);
    t = TH_TENSOR(dev, RF_F32, x, B, L, H * d), out = TH_TENSOR(dev, RF_F32, NULL, B, L, H * d);
    TH_OK(rf_local_attention_forward(&out, NULL, &t, &t, &t, NULL, &cfg));
    assert_true(built_with(dev, "local_attention.cl", "-DROWS=32 -DCOLS=16"));
    rf_tensor_free(&t), rf_tensor_free(&out);
    rf_device_close(dev);
    free(x);
    remove(path);
    unsetenv("RF_CL_LIMITS");
}

static char out[1 << 16];

static void cli_tune_stores_a_table_another_process_reads(void **state) {
    rf_device *dev;
    TH_CL_OR_SKIP(dev);
    char path[4096], env[1024];
    rf_cl_tune_path(dev, path, sizeof path);
    rf_device_close(dev);
    /* --dry-run measures but stores nothing; under 16 KiB of local memory
     * the 64-row key tiles are skipped with a note. */
    snprintf(env, sizeof env, "XDG_CACHE_HOME='%s' RF_CL_LIMITS=local:16384", cache_home);
    int rc = th_run_cli(env, "tune --device pocl --shapes small --runs 1 --dry-run", out, sizeof out);
    if (rc != 0) fail_msg("reformer tune --dry-run: exit %d\n%s", rc, out);
    assert_non_null(strstr(out, "--dry-run: nothing stored"));
    assert_non_null(strstr(out, "attn_forward.ktile           = 64    skipped:"));
    assert_null(strstr(out, "REJECTED"));
    /* The GPU shape's LSH tiles are timed (the CPU shape's skip: the last test). */
    char lsh_timed[128];
    snprintf(lsh_timed, sizeof lsh_timed, "%-28s default", "lsh_attend.qtile");
    assert_non_null(strstr(out, lsh_timed));
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0);
    /* A real run stores the table; this process then reads it on open. */
    snprintf(env, sizeof env, "XDG_CACHE_HOME='%s'", cache_home);
    rc = th_run_cli(env, "tune --device pocl --shapes small --runs 1", out, sizeof out);
    if (rc != 0) fail_msg("reformer tune: exit %d\n%s", rc, out);
    assert_non_null(strstr(out, "key                          default ms   best    best ms  speedup"));
    assert_non_null(strstr(out, path));
    json_object *root = json_object_from_file(path), *values;
    assert_non_null(root);
    assert_true(json_object_object_get_ex(root, "values", &values));
    dev = th_cl();
    int n = 0;
    json_object_object_foreach(values, key, val) {
        assert_int_equal(rf_cl_tuned(dev, key, -1), json_object_get_int(val));
        n++;
    }
    assert_int_equal(rf_cl_ctx(dev)->tuning.count, n);
    json_object_put(root);
    rf_device_close(dev);
    /* The cpu has nothing to tune: a usage error that says so. */
    assert_int_equal(th_run_cli(env, "tune --device cpu --shapes small", out, sizeof out), 2);
    assert_non_null(strstr(out, "only OpenCL devices have tunable kernels"));
    remove(path);
}

/* A development copy of the kernels (RF_KERNEL_DIR) in which an 8-row tile
 * scales every exp() by 1.1, so local attention's lse is off by log 1.1:
 * the tuner must reject that candidate loudly and exit 1. */
static void a_candidate_with_wrong_results_is_rejected(void **state) {
    rf_device *dev;
    TH_CL_OR_SKIP(dev);
    rf_device_close(dev);
    const char *data = getenv("RF_TEST_DATA");
    assert_non_null(data);
    char dir[256], cmd[2048], path[600], env[1024];
    th_tmpdir(dir, sizeof dir);
    snprintf(cmd, sizeof cmd, "cp '%s'/../../cl/*.cl '%s'/", data, dir);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof path, "%s/local_attention.cl", dir);
    size_t n;
    char *src = th_read_file(path, &n);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("#if ROWS == 8\nfloat wrong_exp(float x) { return 1.1f * exp(x); }\n#define exp wrong_exp\n#endif\n", f);
    assert_int_equal(fwrite(src, 1, n, f), n);
    fclose(f);
    free(src);
    snprintf(env, sizeof env, "XDG_CACHE_HOME='%s' RF_KERNEL_DIR='%s'", cache_home, dir);
    int rc = th_run_cli(env, "tune --device pocl --shapes small --runs 1 --dry-run", out, sizeof out);
    if (rc != 1) fail_msg("reformer tune with a wrong 8-row tile: exit %d, expected 1\n%s", rc, out);
    if (!strstr(out, "REJECTED attn_forward.qtile = 8") ||
        !strstr(out, "attn_forward.qtile           = 8     REJECTED: wrong results"))
        fail_msg("the 8-row tile was not rejected:\n%s", out);
    assert_null(strstr(out, "REJECTED attn_forward.qtile = 16"));
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* On the CPU shape the chunk attention kernels (window and LSH) and the row
 * kernels (LayerNorm; bias_grad) have no tiles or groups to tune: `reformer
 * tune` says so for each of their keys instead of timing a kernel that does
 * not run — forced (RF_CL_ATTN=cpu), and as PoCL picks it by itself
 * (RF_CL_ATTN unset, no RF_CL_LIMITS). */
static void cli_tune_skips_the_gpu_shape_keys_on_the_cpu_shape(void **state) {
    rf_device *dev;
    TH_CL_OR_SKIP(dev);
    rf_device_close(dev);
    const char *shapes[] = {"RF_CL_ATTN=cpu", "RF_CL_ATTN="};
    for (int k = 0; k < 2; k++) {
        char env[1024];
        snprintf(env, sizeof env, "XDG_CACHE_HOME='%s' %s", cache_home, shapes[k]);
        int rc = th_run_cli(env, "tune --device pocl --shapes small --runs 1 --budget 0.001 --dry-run", out, sizeof out);
        if (rc != 0) fail_msg("reformer tune on the CPU shape (%s): exit %d\n%s", shapes[k], rc, out);
        const char *keys[] = {"attn_forward.qtile", "attn_backward_dq.split", "attn_backward_dkdv.ktile",
                              "lsh_attend.qtile", "lsh_backward_key.split", "layer_norm.lanes", "layer_norm.group"};
        for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
            char line[160];
            snprintf(line, sizeof line,
                     "%-28s skipped: device runs the CPU shape; RF_CL_ATTN=gpu to tune the GPU shape", keys[i]);
            if (!strstr(out, line)) fail_msg("no '%s' in:\n%s", line, out);
        }
        assert_null(strstr(out, "attn_forward.qtile           default"));
        assert_null(strstr(out, "lsh_attend.qtile             default"));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table_round_trips),
        cmocka_unit_test(foreign_and_malformed_tables_are_ignored),
        cmocka_unit_test(override_changes_build_options_and_matches_cpu),
        cmocka_unit_test(a_value_beyond_the_limits_is_refused_when_forced_and_falls_back_when_stored),
        cmocka_unit_test(cli_tune_stores_a_table_another_process_reads),
        cmocka_unit_test(a_candidate_with_wrong_results_is_rejected),
        cmocka_unit_test(cli_tune_skips_the_gpu_shape_keys_on_the_cpu_shape),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
