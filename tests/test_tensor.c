/* Tensors that own their buffer and views that do not: freeing a view is
 * refused, and rf_tensor_copy checks dtype, element count, device and
 * overlap before it copies, on cpu and (when present) OpenCL. */
#include "harness.h"
#include <stdlib.h>
#include <string.h>

/* Bytes in use on a device: a refused free must not have released anything. */
static size_t in_use(rf_device *dev) {
    rf_memory_stats ms;
    TH_OK(rf_device_memory(dev, &ms));
    return ms.in_use_bytes;
}

static void freeing_a_view_is_refused(void **state) {
    rf_device *dev = th_cpu();
    rf_tensor owner;
    TH_OK(rf_tensor_alloc(dev, &owner, RF_F32, 2, (int64_t[]){4, 8}));
    assert_true(owner.owns);
    size_t bytes = in_use(dev);
    rf_tensor view;
    TH_OK(rf_tensor_view(&view, owner.buf, 8, RF_F32, 1, (int64_t[]){16}));
    assert_false(view.owns);
    TH_FAILS(rf_tensor_free(&view), RF_ERR_INVALID_ARG, "is a view");
    /* Refused means untouched: the view still points at the live buffer. */
    assert_ptr_equal(view.buf, owner.buf);
    assert_int_equal(in_use(dev), bytes);
    /* NULL and a zeroed tensor are nothing to free. */
    rf_tensor zero = {0};
    TH_OK(rf_tensor_free(NULL));
    TH_OK(rf_tensor_free(&zero));
    TH_OK(rf_tensor_free(&owner));
    assert_null(owner.buf);
    assert_int_equal(in_use(dev), 0);
    /* A freed (zeroed) tensor may be freed again. */
    TH_OK(rf_tensor_free(&owner));
    rf_device_close(dev);
}

static void copy_checks_its_arguments(void **state) {
    rf_device *dev = th_cpu(), *other = th_cpu();
    assert_ptr_not_equal(dev, other);
    rf_tensor a = TH_TENSOR(dev, RF_F32, NULL, 2, 3), b = TH_TENSOR(dev, RF_F32, NULL, 6);
    rf_tensor c = TH_TENSOR(dev, RF_F32, NULL, 7), i = TH_TENSOR(dev, RF_I32, NULL, 6);
    rf_tensor far = TH_TENSOR(other, RF_F32, NULL, 2, 3), empty = {0};
    TH_FAILS(rf_tensor_copy(NULL, &a), RF_ERR_INVALID_ARG, "null argument");
    TH_FAILS(rf_tensor_copy(&a, NULL), RF_ERR_INVALID_ARG, "null argument");
    TH_FAILS(rf_tensor_copy(&a, &empty), RF_ERR_INVALID_ARG, "null argument");
    TH_FAILS(rf_tensor_copy(&a, &i), RF_ERR_INVALID_ARG, "dst is f32, src is i32");
    TH_FAILS(rf_tensor_copy(&c, &a), RF_ERR_INVALID_ARG, "dst [7] and src [2, 3] hold different numbers of elements");
    TH_FAILS(rf_tensor_copy(&a, &far), RF_ERR_INVALID_ARG, "different devices");
    /* Two overlapping views of one buffer. */
    rf_tensor lo, hi;
    TH_OK(rf_tensor_view(&lo, c.buf, 0, RF_F32, 1, (int64_t[]){4}));
    TH_OK(rf_tensor_view(&hi, c.buf, 3, RF_F32, 1, (int64_t[]){4}));
    TH_FAILS(rf_tensor_copy(&hi, &lo), RF_ERR_INVALID_ARG, "overlap");
    TH_FAILS(rf_tensor_copy(&lo, &lo), RF_ERR_INVALID_ARG, "overlap");
    /* The same shape-agnostic count is fine: [2, 3] into [6]. */
    TH_OK(rf_tensor_copy(&b, &a));
    rf_tensor *all[] = {&a, &b, &c, &i, &far};
    for (size_t k = 0; k < sizeof all / sizeof *all; k++) TH_OK(rf_tensor_free(all[k]));
    rf_device_close(other);
    rf_device_close(dev);
}

/* Copy between views at offsets in both directions; nothing outside the
 * destination changes. */
static void copy_moves_exactly_the_elements(rf_device *dev) {
    enum { N = 40 };
    float host[N], back[N];
    for (int k = 0; k < N; k++) host[k] = (float)k + 0.25f;
    rf_tensor src = TH_TENSOR(dev, RF_F32, host, N);
    rf_tensor dst = TH_TENSOR(dev, RF_F32, NULL, N);
    TH_OK(rf_tensor_fill_f32(&dst, -1.0f));
    rf_tensor sv, dv;
    TH_OK(rf_tensor_view(&sv, src.buf, 5, RF_F32, 2, (int64_t[]){3, 4}));
    TH_OK(rf_tensor_view(&dv, dst.buf, 20, RF_F32, 1, (int64_t[]){12}));
    TH_OK(rf_tensor_copy(&dv, &sv));
    TH_OK(rf_tensor_download(&dst, back, sizeof back));
    for (int k = 0; k < N; k++) {
        float want = k >= 20 && k < 32 ? host[k - 15] : -1.0f;
        assert_memory_equal(&back[k], &want, sizeof want);
    }
    /* Integer tensors are copied bit for bit too. */
    int32_t ids[6] = {0, -1, 7, INT32_MAX, INT32_MIN, 42}, ids_back[6];
    rf_tensor is = TH_TENSOR(dev, RF_I32, ids, 2, 3), id = TH_TENSOR(dev, RF_I32, NULL, 6);
    TH_OK(rf_tensor_copy(&id, &is));
    TH_OK(rf_tensor_download(&id, ids_back, sizeof ids_back));
    assert_memory_equal(ids, ids_back, sizeof ids);
    rf_tensor *all[] = {&src, &dst, &is, &id};
    for (size_t k = 0; k < sizeof all / sizeof *all; k++) TH_OK(rf_tensor_free(all[k]));
}

static void copy_cpu(void **state) {
    rf_device *dev = th_cpu();
    copy_moves_exactly_the_elements(dev);
    rf_device_close(dev);
}

static void copy_opencl(void **state) {
    rf_device *dev;
    TH_CL_OR_SKIP(dev);
    copy_moves_exactly_the_elements(dev);
    rf_device_close(dev);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(freeing_a_view_is_refused),
        cmocka_unit_test(copy_checks_its_arguments),
        cmocka_unit_test(copy_cpu),
        cmocka_unit_test(copy_opencl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
