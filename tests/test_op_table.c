/* The backend seam (src/device/op_table.h): every backend fills every entry
 * of its op table (lsh_plan is optional), and an entry a backend leaves NULL
 * makes the op's front door fail with RF_ERR_UNSUPPORTED naming the op and
 * the device, before it touches anything. */
#include "harness.h"
#include <string.h>
#include "device/device_impl.h"

/* The entries as an array of pointers: rf_op_table holds only function
 * pointers, all of one size. */
typedef void (*any_fn)(void);
#define N_ENTRIES (sizeof(rf_op_table) / sizeof(any_fn))

static void every_entry_filled(rf_device *dev) {
    any_fn slots[N_ENTRIES];
    memcpy(slots, &dev->ops, sizeof slots);
    const size_t plan = offsetof(rf_op_table, lsh_plan) / sizeof(any_fn); /* optional */
    for (size_t i = 0; i < N_ENTRIES; i++)
        if (!slots[i] && i != plan) fail_msg("%s: op table entry %zu is NULL", dev->info.id, i);
}

static void cpu_table_is_full(void **state) {
    rf_device *dev = th_cpu();
    every_entry_filled(dev);
    assert_null(dev->ops.lsh_plan); /* the cpu has no device limits to check */
    rf_device_close(dev);
}

static void opencl_table_is_full(void **state) {
    rf_device *dev;
    TH_CL_OR_SKIP(dev);
    every_entry_filled(dev);
    assert_non_null(dev->ops.lsh_plan);
    rf_device_close(dev);
}

static void missing_entry_is_unsupported(void **state) {
    rf_device *dev = th_cpu();
    float x[4] = {1, 2, 3, 4}, got[4];
    rf_tensor a = TH_TENSOR(dev, RF_F32, x, 2, 2), c = TH_TENSOR(dev, RF_F32, x, 2, 2);
    rf_gemm_desc d = {.m = 2, .n = 2, .k = 2, .alpha = 1};
    dev->ops.gemm = NULL;
    dev->ops.add = NULL;
    TH_FAILS(rf_gemm(&c, &a, &a, &d), RF_ERR_UNSUPPORTED, "gemm is not implemented on device cpu");
    TH_FAILS(rf_add(&c, &a, &a, 1.0f), RF_ERR_UNSUPPORTED, "add is not implemented on device cpu");
    /* Nothing was written, and nothing was profiled. */
    TH_OK(rf_tensor_download(&c, got, sizeof got));
    assert_memory_equal(got, x, sizeof x);
    rf_profile_entry e[8];
    int n = -1;
    TH_OK(rf_device_profile(dev, e, 8, &n));
    assert_int_equal(n, 0);
    rf_tensor_free(&a), rf_tensor_free(&c);
    rf_device_close(dev);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cpu_table_is_full),
        cmocka_unit_test(opencl_table_is_full),
        cmocka_unit_test(missing_entry_is_unsupported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
