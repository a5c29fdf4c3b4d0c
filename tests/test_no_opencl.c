/* A machine with no OpenCL platform: OCL_ICD_VENDORS points at an empty
 * folder before the first OpenCL call. Everything runs on cpu; "auto" falls
 * back to cpu; OpenCL tests skip (th_cl() returns NULL). */
#include "harness.h"
#include <stdlib.h>

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

int main(void) {
    char empty[256];
    th_tmpdir(empty, sizeof empty);
    setenv("OCL_ICD_VENDORS", empty, 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(only_cpu_is_listed_and_used),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
