/* A machine with no OpenCL platform: OCL_ICD_VENDORS points at an empty
 * folder before the first OpenCL call. Everything runs on cpu; "auto" falls
 * back to cpu; OpenCL tests skip (th_cl() returns NULL) — unless the run
 * demands OpenCL (RF_TEST_REQUIRE_OPENCL=1), where they fail. */
#include "harness.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void only_cpu_is_listed_and_used(void **state) {
    int n = 0;
    TH_OK(rf_device_count(&n));
    assert_int_equal(n, 1);
    rf_device *dev;
    rf_device_info info;
    TH_OK(rf_device_open(&dev, "auto"));
    TH_OK(rf_device_get_info(dev, &info));
    assert_string_equal(info.id, "cpu");
    /* Work still runs. */
    float a[4] = {1, 2, 3, 4}, got[4];
    rf_tensor t = TH_TENSOR(dev, RF_F32, a, 2, 2), c = TH_TENSOR(dev, RF_F32, NULL, 2, 2);
    rf_gemm_desc d = {.m = 2, .n = 2, .k = 2, .alpha = 1};
    TH_OK(rf_gemm(&c, &t, &t, &d));
    TH_OK(rf_tensor_download(&c, got, sizeof got));
    assert_float_equal(got[0], 7, 0);
    assert_float_equal(got[3], 22, 0);
    rf_tensor_free(&t), rf_tensor_free(&c);
    rf_device_close(dev);
    /* An explicit OpenCL device is an error, never a silent fallback. */
    TH_FAILS(rf_device_open(&dev, "cl:0:0"), RF_ERR_NOT_FOUND, "available: cpu");
    assert_null(th_cl());
}

/* `reformer verify` with no OpenCL device says so and fails, rather than
 * comparing the cpu with itself and passing; an explicit --device cpu does
 * check the cpu alone (a row per op, and per parameter tensor for the model's
 * gradients). */
static void verify_without_opencl_fails_unless_cpu_is_asked_for(void **state) {
    static char buf[1 << 16];
    assert_int_equal(th_run_cli(NULL, "verify", buf, sizeof buf), 1);
    assert_non_null(strstr(buf, "no OpenCL device"));
    assert_non_null(strstr(buf, "--device cpu"));
    assert_null(strstr(buf, "PASS"));
    assert_int_equal(th_run_cli(NULL, "verify --all", buf, sizeof buf), 1);
    assert_non_null(strstr(buf, "no OpenCL device"));
    assert_int_equal(th_run_cli(NULL, "verify --device auto", buf, sizeof buf), 1);
    assert_non_null(strstr(buf, "no OpenCL device"));
    assert_int_equal(th_run_cli(NULL, "verify --device cpu", buf, sizeof buf), 0);
    assert_non_null(strstr(buf, "checking the cpu reference against itself"));
    assert_non_null(strstr(buf, "grad reformer.encoder.layers.1.attention.self_attention.query_key.weight"));
    assert_non_null(strstr(buf, "model training loss"));
    assert_null(strstr(buf, "FAIL"));
}

/* With RF_TEST_REQUIRE_OPENCL=1 a missing OpenCL device fails the test that
 * wanted one instead of skipping it (skip() counts as passed). */
static void required_opencl_fails_instead_of_skipping(void **state) {
    setenv("RF_TEST_REQUIRE_OPENCL", "1", 1);
    rf_device *dev = th_cl(); /* must not return: fail_msg jumps back to the runner */
    (void)dev;
}

int main(void) {
    char empty[256];
    th_tmpdir(empty, sizeof empty);
    setenv("OCL_ICD_VENDORS", empty, 1);
    /* This program hides OpenCL on purpose: a run that requires OpenCL
     * (tools/setup.sh test) does not apply to it. */
    unsetenv("RF_TEST_REQUIRE_OPENCL");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(only_cpu_is_listed_and_used),
        cmocka_unit_test(verify_without_opencl_fails_unless_cpu_is_asked_for),
    };
    const struct CMUnitTest must_fail[] = {
        cmocka_unit_test(required_opencl_fails_instead_of_skipping),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    /* The second group must report exactly one failure. */
    print_message("(the next test must FAIL: th_cl() with RF_TEST_REQUIRE_OPENCL=1 and no OpenCL device)\n");
    int expected = cmocka_run_group_tests_name("required OpenCL, none present", must_fail, NULL, NULL);
    unsetenv("RF_TEST_REQUIRE_OPENCL");
    if (expected != 1) {
        fprintf(stderr, "test_no_opencl: th_cl() without a device under RF_TEST_REQUIRE_OPENCL=1 did not fail\n");
        return 1;
    }
    return failed;
}
