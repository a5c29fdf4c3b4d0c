/* The device layer: enumeration and selection by name, buffer round trips,
 * allocation failures, memory accounting, the cpu device's reuse of freed
 * buffers and profiling, on cpu and PoCL. */
#include "harness.h"
#include "device/device_impl.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void cpu_and_opencl_devices_are_listed(void **state) {
    int n = 0;
    TH_OK(rf_device_count(&n));
    assert_true(n >= 1);
    rf_device_info info;
    TH_OK(rf_device_info_at(0, &info));
    assert_string_equal(info.id, "cpu");
    assert_int_equal(info.kind, RF_DEVICE_CPU);
    if (n < 2) { /* no OpenCL platform on this machine */
        if (th_opencl_required()) fail_msg("RF_TEST_REQUIRE_OPENCL=1 but only the cpu is listed");
        skip();
    }
    TH_OK(rf_device_info_at(1, &info));
    assert_string_equal(info.id, "cl:0:0");
    assert_int_equal(info.kind, RF_DEVICE_OPENCL);
    assert_true(strlen(info.name) > 0 && strlen(info.driver_version) > 0);
    assert_true(strstr(info.opencl_c_version, "OpenCL C") != NULL);
    assert_true(info.compute_units > 0 && info.global_mem_bytes > 0 && info.local_mem_bytes > 0);
    assert_true(info.max_work_group_size >= 1 && info.max_alloc_bytes > 0);
}

static void devices_open_by_id_substring_env_and_auto(void **state) {
    rf_device *dev;
    rf_device_info info;
    TH_OK(rf_device_open(&dev, "cpu"));
    TH_OK(rf_device_get_info(dev, &info));
    assert_string_equal(info.id, "cpu");
    rf_device_close(dev);

    rf_device *cl;
    TH_CL_OR_SKIP(cl);
    rf_device_info clinfo;
    TH_OK(rf_device_get_info(cl, &clinfo));
    rf_device_close(cl);
    /* A case-insensitive substring of the device name picks that device. */
    char sub[8] = {0};
    for (int i = 0; i < 4 && clinfo.name[i]; i++) sub[i] = (char)toupper((unsigned char)clinfo.name[i]);
    TH_OK(rf_device_open(&dev, sub));
    TH_OK(rf_device_get_info(dev, &info));
    assert_string_equal(info.id, clinfo.id);
    rf_device_close(dev);
    /* auto: the first GPU that is not a simulator; with none, cpu (faster
     * than an OpenCL CPU device). */
    int count = 0;
    const char *first_gpu = "cpu";
    TH_OK(rf_device_count(&count));
    rf_device_info listed[16];
    for (int i = count - 1; i > 0; i--)
        if (i < 16 && rf_device_info_at(i, &listed[i]) == RF_OK && listed[i].is_gpu && !listed[i].is_simulator)
            first_gpu = listed[i].id;
    TH_OK(rf_device_open(&dev, "auto"));
    TH_OK(rf_device_get_info(dev, &info));
    assert_string_equal(info.id, first_gpu);
    assert_false(info.is_simulator);
    rf_device_close(dev);
    /* NULL name: $RF_DEVICE. */
    setenv("RF_DEVICE", "cpu", 1);
    TH_OK(rf_device_open(&dev, NULL));
    TH_OK(rf_device_get_info(dev, &info));
    assert_string_equal(info.id, "cpu");
    rf_device_close(dev);
    unsetenv("RF_DEVICE");
}

static void unknown_device_lists_the_available_ones(void **state) {
    rf_device *dev = (rf_device *)&dev;
    TH_FAILS(rf_device_open(&dev, "no-such-gpu"), RF_ERR_NOT_FOUND, "unknown device 'no-such-gpu'");
    assert_null(dev);
    assert_non_null(strstr(rf_last_error(), "available: cpu"));
    TH_FAILS(rf_device_open(&dev, "cl:7:3"), RF_ERR_NOT_FOUND, "cl:7:3");
    TH_FAILS(rf_device_open(NULL, "cpu"), RF_ERR_INVALID_ARG, "device is NULL");
}

/* Upload, download, copy and fill are byte-exact, at offsets and lengths that
 * are not multiples of anything. */
static void round_trips(rf_device *dev) {
    size_t n = 4099;
    unsigned char *src = malloc(n), *back = malloc(n);
    for (size_t i = 0; i < n; i++) src[i] = (unsigned char)(i * 131 + 7);
    rf_buffer *a, *b;
    TH_OK(rf_buffer_alloc(dev, n, &a));
    TH_OK(rf_buffer_alloc(dev, n + 100, &b));
    TH_OK(rf_buffer_upload(a, 0, src, n));
    TH_OK(rf_buffer_download(a, 0, back, n));
    assert_memory_equal(src, back, n);
    TH_OK(rf_buffer_copy(b, 13, a, 5, n - 5));
    memset(back, 0, n);
    TH_OK(rf_buffer_download(b, 13, back, n - 5));
    assert_memory_equal(src + 5, back, n - 5);
    uint32_t pattern = 0xdeadbeef;
    TH_OK(rf_buffer_fill(a, 8, &pattern, 4, 400));
    TH_OK(rf_buffer_download(a, 0, back, n));
    for (size_t i = 0; i < n; i++) {
        unsigned char want = (i >= 8 && i < 408) ? ((unsigned char *)&pattern)[(i - 8) % 4] : src[i];
        assert_int_equal(back[i], want);
    }
    TH_FAILS(rf_buffer_upload(a, n - 3, src, 4), RF_ERR_INVALID_ARG, "outside a buffer of 4099 bytes");
    TH_FAILS(rf_buffer_download(a, SIZE_MAX, back, 2), RF_ERR_INVALID_ARG, "outside");
    TH_FAILS(rf_buffer_fill(a, 0, &pattern, 3, 9), RF_ERR_INVALID_ARG, "pattern size 3");
    rf_buffer_free(a);
    rf_buffer_free(b);
    free(src);
    free(back);
}

static void buffer_round_trips_cpu(void **state) {
    rf_device *dev = th_cpu();
    round_trips(dev);
    rf_device_close(dev);
}

static void buffer_round_trips_opencl(void **state) {
    rf_device *dev;
    TH_CL_OR_SKIP(dev);
    round_trips(dev);
    rf_device_close(dev);
}

/* RF_CL_LIMITS lowers the limits the kernels plan against (a profile, or
 * explicit values), never raises them, and rejects what it cannot read. */
static void cl_limits_override_device_limits(void **state) {
    rf_device *dev;
    TH_CL_OR_SKIP(dev);
    rf_device_info real, info;
    TH_OK(rf_device_get_info(dev, &real));
    rf_device_close(dev);
    const char *name = getenv("RF_TEST_CL_DEVICE");
    name = name && *name ? name : "pocl";
    setenv("RF_CL_LIMITS", "wg:64,local:16384,multiple:32", 1);
    TH_OK(rf_device_open(&dev, name));
    TH_OK(rf_device_get_info(dev, &info));
    assert_int_equal(info.max_work_group_size, real.max_work_group_size < 64 ? real.max_work_group_size : 64);
    assert_int_equal(info.local_mem_bytes, real.local_mem_bytes < 16384 ? real.local_mem_bytes : 16384);
    rf_device_close(dev);
    setenv("RF_CL_LIMITS", "nvidia", 1);
    TH_OK(rf_device_open(&dev, name));
    TH_OK(rf_device_get_info(dev, &info));
    assert_true(info.max_work_group_size <= 1024 && info.local_mem_bytes <= 49152);
    rf_device_close(dev);
    setenv("RF_CL_LIMITS", "wg:1000000000", 1); /* above the device: unchanged */
    TH_OK(rf_device_open(&dev, name));
    TH_OK(rf_device_get_info(dev, &info));
    assert_int_equal(info.max_work_group_size, real.max_work_group_size);
    rf_device_close(dev);
    setenv("RF_CL_LIMITS", "amd,wg:128", 1); /* a profile, then an override */
    TH_OK(rf_device_open(&dev, name));
    TH_OK(rf_device_get_info(dev, &info));
    assert_true(info.max_work_group_size <= 128 && info.local_mem_bytes <= 65536);
    rf_device_close(dev);
    setenv("RF_CL_LIMITS", "geforce", 1);
    TH_FAILS(rf_device_open(&dev, name), RF_ERR_INVALID_ARG, "'geforce' is neither a profile");
    setenv("RF_CL_LIMITS", "wg:256,multiple:48", 1);
    TH_FAILS(rf_device_open(&dev, name), RF_ERR_INVALID_ARG, "multiple 48 is not a power of two");
    setenv("RF_CL_LIMITS", "wg:0", 1);
    TH_FAILS(rf_device_open(&dev, name), RF_ERR_INVALID_ARG, "'wg:0'");
    unsetenv("RF_CL_LIMITS");
}

/* An impossible allocation fails cleanly and the device stays usable. */
static void absurd_allocation(rf_device *dev) {
    rf_buffer *b = (rf_buffer *)&b;
    TH_FAILS(rf_buffer_alloc(dev, (size_t)1 << 52, &b), RF_ERR_OUT_OF_MEMORY, "exceeds the largest allocation");
    assert_null(b);
    rf_memory_stats st;
    TH_OK(rf_device_memory(dev, &st));
    assert_int_equal(st.in_use_bytes, 0);
    round_trips(dev);
}

static void absurd_allocation_cpu(void **state) {
    rf_device *dev = th_cpu();
    absurd_allocation(dev);
    rf_device_close(dev);
}

static void absurd_allocation_opencl(void **state) {
    rf_device *dev;
    TH_CL_OR_SKIP(dev);
    absurd_allocation(dev);
    rf_device_close(dev);
}

static void memory_accounting_and_limit(void **state) {
    rf_device *dev = th_cpu();
    rf_buffer *a, *b, *c;
    rf_memory_stats st;
    TH_OK(rf_buffer_alloc(dev, 1000, &a));
    TH_OK(rf_buffer_alloc(dev, 3000, &b));
    rf_buffer_free(a);
    TH_OK(rf_device_memory(dev, &st));
    assert_int_equal(st.in_use_bytes, 3000);
    assert_int_equal(st.peak_bytes, 4000);
    TH_OK(rf_device_reset_peak(dev));
    TH_OK(rf_device_memory(dev, &st));
    assert_int_equal(st.peak_bytes, 3000);
    /* Our own cap: the next allocation over it fails, smaller ones still work. */
    TH_OK(rf_device_set_memory_limit(dev, 5000));
    TH_FAILS(rf_buffer_alloc(dev, 2001, &c), RF_ERR_OUT_OF_MEMORY, "memory limit");
    TH_OK(rf_buffer_alloc(dev, 2000, &c));
    rf_buffer_free(c);
    rf_buffer_free(b);
    TH_OK(rf_device_memory(dev, &st));
    assert_int_equal(st.in_use_bytes, 0);
    TH_FAILS(rf_buffer_alloc(dev, 0, &c), RF_ERR_INVALID_ARG, "size 0");
    rf_device_close(dev);
}

/* The cpu device keeps freed buffers for reuse: a buffer of a freed one's
 * size gets that memory back (no fresh pages to fault in), one of another
 * size does not, and the accounting counts only live buffers. Closing the
 * device frees the cached blocks (ASan and valgrind report no leak). */
static void cpu_reuses_freed_buffers(void **state) {
    rf_device *dev = th_cpu();
    const size_t n = (size_t)1 << 20;
    rf_buffer *a, *b, *c;
    TH_OK(rf_buffer_alloc(dev, n, &a));
    void *mem = a->impl;
    rf_buffer_free(a);
    TH_OK(rf_buffer_alloc(dev, n + 64, &b));
    assert_ptr_not_equal(b->impl, mem);
    TH_OK(rf_buffer_alloc(dev, n, &c));
    assert_ptr_equal(c->impl, mem);
    rf_memory_stats st;
    TH_OK(rf_device_memory(dev, &st));
    assert_int_equal(st.in_use_bytes, 2 * n + 64);
    rf_buffer_free(b);
    rf_buffer_free(c);
    rf_device_close(dev);
}

/* Every op is recorded by name: device time on OpenCL, wall time on cpu. */
static void profile_records_ops(rf_device *dev) {
    float x[64] = {0};
    rf_tensor a = TH_TENSOR(dev, RF_F32, x, 8, 8), c = TH_TENSOR(dev, RF_F32, x, 8, 8);
    TH_OK(rf_device_profile_reset(dev));
    for (int i = 0; i < 3; i++) TH_OK(rf_add(&c, &a, &a, 1.0f));
    rf_gemm_desc d = {.m = 8, .n = 8, .k = 8, .alpha = 1, .beta = 0};
    TH_OK(rf_gemm(&c, &a, &a, &d));
    rf_profile_entry e[16];
    int n = 0;
    TH_OK(rf_device_profile(dev, e, 16, &n));
    int found_add = 0, found_gemm = 0;
    for (int i = 0; i < n; i++) {
        if (!strcmp(e[i].op, "add")) {
            found_add = 1;
            assert_int_equal(e[i].calls, 3);
            assert_true(e[i].total_ms >= 0 && e[i].mean_ms * 3 <= e[i].total_ms * 1.0001 + 1e-9);
        }
        if (!strncmp(e[i].op, "gemm", 4)) found_gemm = 1;
    }
    assert_true(found_add && found_gemm);
    rf_tensor_free(&a), rf_tensor_free(&c);
}

static void profile_cpu(void **state) {
    rf_device *dev = th_cpu();
    profile_records_ops(dev);
    rf_device_close(dev);
}

static void profile_opencl(void **state) {
    rf_device *dev;
    TH_CL_OR_SKIP(dev);
    profile_records_ops(dev);
    rf_device_close(dev);
}

static void tensor_views_are_checked(void **state) {
    rf_device *dev = th_cpu();
    rf_buffer *b;
    TH_OK(rf_buffer_alloc(dev, 400, &b));
    rf_tensor t;
    TH_OK(rf_tensor_view(&t, b, 40, RF_F32, 2, (int64_t[]){6, 10}));
    TH_FAILS(rf_tensor_view(&t, b, 41, RF_F32, 2, (int64_t[]){6, 10}), RF_ERR_INVALID_ARG, "exceed a buffer of 400 bytes");
    TH_FAILS(rf_tensor_view(&t, b, 0, RF_F32, 2, (int64_t[]){0, 10}), RF_ERR_INVALID_ARG, "shape[0] = 0");
    TH_FAILS(rf_tensor_alloc(dev, &t, RF_F32, 3, (int64_t[]){1ll << 40, 1ll << 40, 1ll << 40}), RF_ERR_INVALID_ARG,
             "overflows");
    TH_FAILS(rf_tensor_alloc(dev, &t, RF_F32, 5, (int64_t[]){1, 1, 1, 1, 1}), RF_ERR_INVALID_ARG, "ndim 5");
    rf_buffer_free(b);
    rf_device_close(dev);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cpu_and_opencl_devices_are_listed),
        cmocka_unit_test(devices_open_by_id_substring_env_and_auto),
        cmocka_unit_test(unknown_device_lists_the_available_ones),
        cmocka_unit_test(buffer_round_trips_cpu),
        cmocka_unit_test(buffer_round_trips_opencl),
        cmocka_unit_test(cl_limits_override_device_limits),
        cmocka_unit_test(absurd_allocation_cpu),
        cmocka_unit_test(absurd_allocation_opencl),
        cmocka_unit_test(memory_accounting_and_limit),
        cmocka_unit_test(cpu_reuses_freed_buffers),
        cmocka_unit_test(profile_cpu),
        cmocka_unit_test(profile_opencl),
        cmocka_unit_test(tensor_views_are_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
