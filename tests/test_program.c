/* Kernel programs: build and run, build failures carry the compiler log,
 * the on-disk cache is hit by a new context and survives corruption. */
#include "harness.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "device/opencl/cl_backend.h"

static char cache_home[256];

static int setup(void **state) {
    /* A private, empty cache so hits and misses are ours to count. */
    th_tmpdir(cache_home, sizeof cache_home);
    setenv("XDG_CACHE_HOME", cache_home, 1);
    return 0;
}

/* The single cache file, or "" if none. */
static void cache_file(char *out, size_t n) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/reformer-cl", cache_home);
    out[0] = '\0';
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".bin")) snprintf(out, n, "%s/%s", dir, e->d_name);
    closedir(d);
}

/* rf_add runs (so a kernel built, loaded and executed correctly). */
static void run_add(rf_device *dev) {
    float a[5] = {1, 2, 3, 4, 5}, b[5] = {10, 20, 30, 40, 50}, got[5];
    rf_tensor ta = TH_TENSOR(dev, RF_F32, a, 5), tb = TH_TENSOR(dev, RF_F32, b, 5), out = TH_TENSOR(dev, RF_F32, NULL, 5);
    TH_OK(rf_add(&out, &ta, &tb, 0.5f));
    TH_OK(rf_tensor_download(&out, got, sizeof got));
    for (int i = 0; i < 5; i++) assert_float_equal(got[i], a[i] + 0.5f * b[i], 0);
    rf_tensor_free(&ta), rf_tensor_free(&tb), rf_tensor_free(&out);
}

static void build_cache_hit_and_corruption(void **state) {
    rf_device *dev;
    TH_CL_OR_SKIP(dev);
    rf_program_stats st;
    /* First use: built from source, written to the cache. */
    run_add(dev);
    TH_OK(rf_device_program_stats(dev, &st));
    assert_int_equal(st.source_builds, 1);
    assert_int_equal(st.cache_hits, 0);
    assert_int_equal(st.cache_writes, 1);
    /* Same device, same program: built once per device. */
    run_add(dev);
    TH_OK(rf_device_program_stats(dev, &st));
    assert_int_equal(st.source_builds, 1);
    rf_device_close(dev);

    /* A new context loads the binary from disk. */
    TH_CL_OR_SKIP(dev);
    run_add(dev);
    TH_OK(rf_device_program_stats(dev, &st));
    assert_int_equal(st.cache_hits, 1);
    assert_int_equal(st.source_builds, 0);
    rf_device_close(dev);

    /* Corrupt the cached binary: it is rejected, the source is built, the
     * kernel still computes the right answer, and a good file is rewritten. */
    char path[600];
    cache_file(path, sizeof path);
    assert_true(path[0] != '\0');
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 100, SEEK_SET);
    fputs("garbage garbage garbage", f);
    fclose(f);
    TH_CL_OR_SKIP(dev);
    run_add(dev);
    TH_OK(rf_device_program_stats(dev, &st));
    assert_int_equal(st.cache_rejects, 1);
    assert_int_equal(st.source_builds, 1);
    assert_int_equal(st.cache_writes, 1);
    rf_device_close(dev);

    /* A truncated file is rejected the same way. */
    f = fopen(path, "wb");
    fputs("RFCL", f);
    fclose(f);
    TH_CL_OR_SKIP(dev);
    run_add(dev);
    TH_OK(rf_device_program_stats(dev, &st));
    assert_int_equal(st.cache_rejects, 1);
    assert_int_equal(st.source_builds, 1);
    rf_device_close(dev);
}

static void broken_kernel_reports_the_build_log(void **state) {
    rf_device *dev;
    TH_CL_OR_SKIP(dev);
    char dir[256], path[400];
    th_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/broken.cl", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("__kernel void broken(__global float *x) { x[0] = undefined_symbol_xyz; }\n", f);
    fclose(f);
    setenv("RF_KERNEL_DIR", dir, 1);
    cl_kernel k;
    TH_FAILS(rf_cl_kernel(dev, "broken.cl", "", "broken", &k), RF_ERR_BUILD, "undefined_symbol_xyz");
    assert_non_null(strstr(rf_last_error(), "broken.cl"));
    /* A missing source is a clear error too. */
    TH_FAILS(rf_cl_kernel(dev, "missing.cl", "", "k", &k), RF_ERR_NOT_FOUND, "missing.cl");
    unsetenv("RF_KERNEL_DIR");
    TH_FAILS(rf_cl_kernel(dev, "not-embedded.cl", "", "k", &k), RF_ERR_NOT_FOUND, "not embedded");
    /* The device is still usable. */
    run_add(dev);
    rf_device_close(dev);
}

static void kernel_dir_overrides_embedded_sources(void **state) {
    rf_device *dev;
    TH_CL_OR_SKIP(dev);
    char dir[256], path[400];
    th_tmpdir(dir, sizeof dir);
    /* A development copy of elementwise.cl whose axpby subtracts instead. */
    snprintf(path, sizeof path, "%s/elementwise.cl", dir);
    FILE *f = fopen(path, "w");
    fputs("__kernel void axpby(__global float *out, const ulong oo, __global const float *a, const ulong ao,\n"
          "  __global const float *b, const ulong bo, const float alpha, const ulong n) {\n"
          "  size_t i = get_global_id(0); if (i < n) out[oo + i] = a[ao + i] - alpha * b[bo + i]; }\n", f);
    fclose(f);
    setenv("RF_KERNEL_DIR", dir, 1);
    setenv("RF_CL_ATTN", "gpu", 1); /* the shape whose kernel is axpby (elementwise.c) */
    float a[2] = {1, 2}, b[2] = {3, 4}, got[2];
    rf_tensor ta = TH_TENSOR(dev, RF_F32, a, 2), tb = TH_TENSOR(dev, RF_F32, b, 2), out = TH_TENSOR(dev, RF_F32, NULL, 2);
    TH_OK(rf_add(&out, &ta, &tb, 1.0f));
    TH_OK(rf_tensor_download(&out, got, sizeof got));
    assert_float_equal(got[0], -2.0f, 0);
    assert_float_equal(got[1], -2.0f, 0);
    unsetenv("RF_KERNEL_DIR");
    unsetenv("RF_CL_ATTN");
    rf_tensor_free(&ta), rf_tensor_free(&tb), rf_tensor_free(&out);
    rf_device_close(dev);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(build_cache_hit_and_corruption),
        cmocka_unit_test(broken_kernel_reports_the_build_log),
        cmocka_unit_test(kernel_dir_overrides_embedded_sources),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
