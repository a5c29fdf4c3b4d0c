/* rf_gemm: the cpu op against a direct triple loop, each OpenCL GEMM path
 * (CLBlast; host BLAS on mapped buffers) on PoCL against the cpu op over
 * awkward shapes, and the front door's checks. */
#include "harness.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
    int m, n, k;
    bool ta, tb;
    float alpha, beta;
    int pad_a, pad_b, pad_c;   /* extra leading-dimension columns */
    int batch;
    int shared_b;              /* stride_b = 0: one B for every item */
    int offset;                /* elements before the first matrix */
} gemm_case;

/* Sizes of each operand's storage for a case, and its descriptor. */
static rf_gemm_desc describe(const gemm_case *c, size_t *na, size_t *nb, size_t *nc) {
    rf_gemm_desc d = {.trans_a = c->ta, .trans_b = c->tb, .m = c->m, .n = c->n, .k = c->k,
                      .alpha = c->alpha, .beta = c->beta, .batch = c->batch};
    int64_t ar = c->ta ? c->k : c->m, ac = c->ta ? c->m : c->k;
    int64_t br = c->tb ? c->n : c->k, bc = c->tb ? c->k : c->n;
    d.lda = ac + c->pad_a;
    d.ldb = bc + c->pad_b;
    d.ldc = c->n + c->pad_c;
    d.stride_a = ar * d.lda;
    d.stride_b = c->shared_b ? 0 : br * d.ldb;
    d.stride_c = c->m * d.ldc;
    *na = (size_t)(c->offset + d.stride_a * c->batch);
    *nb = (size_t)(c->offset + (c->shared_b ? br * d.ldb : d.stride_b * c->batch));
    *nc = (size_t)(c->offset + d.stride_c * c->batch);
    return d;
}

/* The definition, in double. */
static void naive(float *C, const float *A, const float *B, const rf_gemm_desc *d) {
    for (int64_t b = 0; b < d->batch; b++)
        for (int64_t i = 0; i < d->m; i++)
            for (int64_t j = 0; j < d->n; j++) {
                double s = 0;
                for (int64_t p = 0; p < d->k; p++) {
                    double a = d->trans_a ? A[b * d->stride_a + p * d->lda + i] : A[b * d->stride_a + i * d->lda + p];
                    double x = d->trans_b ? B[b * d->stride_b + j * d->ldb + p] : B[b * d->stride_b + p * d->ldb + j];
                    s += a * x;
                }
                float *c = &C[b * d->stride_c + i * d->ldc + j];
                *c = (float)(d->alpha * s + (d->beta != 0 ? d->beta * (double)*c : 0));
            }
}

static const gemm_case cases[] = {
    {1, 1, 1, false, false, 1, 0, 0, 0, 0, 1, 0, 0},
    {17, 33, 65, false, false, 1, 0, 0, 0, 0, 1, 0, 0},
    {17, 33, 65, true, false, 0.7f, 0.3f, 0, 0, 0, 1, 0, 3},
    {31, 5, 129, false, true, -1.5f, 1, 3, 0, 7, 1, 0, 0},
    {64, 48, 100, true, true, 1, 0.5f, 5, 9, 1, 1, 0, 1},
    {13, 7, 9, false, false, 1, 0, 0, 0, 0, 5, 0, 0},   /* strided batch */
    {13, 7, 9, true, true, 0.5f, 2, 2, 1, 3, 4, 0, 5},  /* strided batch, both transposes, padded */
    {10, 12, 8, false, true, 1, 0, 0, 0, 0, 3, 1, 0},   /* batch sharing one B (weights) */
    {100, 1, 1, false, false, 1, 1, 0, 0, 0, 1, 0, 0},
};

static void run_case(rf_device *dev, const gemm_case *c, float *out_c) {
    size_t na, nb, nc;
    rf_gemm_desc d = describe(c, &na, &nb, &nc);
    float *A = th_random(na, 1, 1), *B = th_random(nb, 2, 1), *C = th_random(nc, 3, 1);
    rf_tensor ta, tb, tc;
    rf_buffer *ba, *bb, *bc;
    TH_OK(rf_buffer_alloc(dev, na * 4, &ba));
    TH_OK(rf_buffer_alloc(dev, nb * 4, &bb));
    TH_OK(rf_buffer_alloc(dev, nc * 4, &bc));
    TH_OK(rf_buffer_upload(ba, 0, A, na * 4));
    TH_OK(rf_buffer_upload(bb, 0, B, nb * 4));
    TH_OK(rf_buffer_upload(bc, 0, C, nc * 4));
    TH_OK(rf_tensor_view(&ta, ba, (size_t)c->offset, RF_F32, 1, (int64_t[]){(int64_t)na - c->offset}));
    TH_OK(rf_tensor_view(&tb, bb, (size_t)c->offset, RF_F32, 1, (int64_t[]){(int64_t)nb - c->offset}));
    TH_OK(rf_tensor_view(&tc, bc, (size_t)c->offset, RF_F32, 1, (int64_t[]){(int64_t)nc - c->offset}));
    TH_OK(rf_gemm(&tc, &ta, &tb, &d));
    TH_OK(rf_buffer_download(bc, 0, out_c, nc * 4));
    /* Elements outside C's matrices (offset, padding) must be untouched. */
    float *want = malloc(nc * 4);
    for (size_t i = 0; i < nc; i++) want[i] = C[i];
    naive(want + c->offset, A + c->offset, B + c->offset, &d);
    th_assert_close(out_c, want, nc, 1e-4, "gemm vs the definition");
    free(want), free(A), free(B), free(C);
    rf_buffer_free(ba), rf_buffer_free(bb), rf_buffer_free(bc);
}

static void cpu_matches_definition(void **state) {
    rf_device *cpu = th_cpu();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t na, nb, nc;
        describe(&cases[i], &na, &nb, &nc);
        float *out = malloc(nc * 4);
        run_case(cpu, &cases[i], out);
        free(out);
    }
    rf_device_close(cpu);
}

/* Whether the profile of dev names `op` (the GEMM path that ran). */
static bool profiled(rf_device *dev, const char *op) {
    rf_profile_entry e[64];
    int count = 0;
    TH_OK(rf_device_profile(dev, e, 64, &count));
    for (int i = 0; i < count && i < 64; i++)
        if (!strcmp(e[i].op, op)) return true;
    return false;
}

/* §10: matrix products within 1e-4 · max(1, max|ref|) of the cpu, on each
 * OpenCL GEMM path (RF_CL_GEMM forces one; the profile shows which ran). */
static void opencl_matches_cpu(void **state) {
    rf_device *cl;
    TH_CL_OR_SKIP(cl);
    rf_device *cpu = th_cpu();
    rf_device_info info;
    TH_OK(rf_device_get_info(cl, &info));
    static const char *const paths[][2] = {{"clblast", "gemm (clblast)"}, {"host", "gemm (host blas)"}};
    for (int p = 0; p < 2; p++) {
        if (p == 1 && info.is_gpu) break; /* host BLAS is for CPU-type devices only */
        setenv("RF_CL_GEMM", paths[p][0], 1);
        TH_OK(rf_device_profile_reset(cl));
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            size_t na, nb, nc;
            describe(&cases[i], &na, &nb, &nc);
            float *want = malloc(nc * 4), *got = malloc(nc * 4);
            run_case(cpu, &cases[i], want);
            run_case(cl, &cases[i], got);
            th_assert_close(got, want, nc, 1e-4, paths[p][1]);
            free(want), free(got);
        }
        TH_OK(rf_device_sync(cl));
        assert_true(profiled(cl, paths[p][1]));
        assert_false(profiled(cl, paths[1 - p][1]));
    }
    /* A path that does not exist is refused, not ignored. */
    setenv("RF_CL_GEMM", "cublas", 1);
    rf_tensor a = TH_TENSOR(cl, RF_F32, NULL, 2, 2), b = TH_TENSOR(cl, RF_F32, NULL, 2, 2);
    rf_tensor c = TH_TENSOR(cl, RF_F32, NULL, 2, 2);
    rf_gemm_desc d = {.m = 2, .n = 2, .k = 2, .alpha = 1};
    TH_FAILS(rf_gemm(&c, &a, &b, &d), RF_ERR_INVALID_ARG, "expected clblast or host");
    unsetenv("RF_CL_GEMM");
    rf_tensor_free(&a), rf_tensor_free(&b), rf_tensor_free(&c);
    rf_device_close(cpu);
    rf_device_close(cl);
}

/* A and B as two views of one buffer (as Q·Kᵀ of shared-QK attention can
 * be): the host path maps that buffer once; both paths match the cpu. */
static float *one_buffer_gemm(rf_device *dev, const float *ab, int m, int n, int k) {
    rf_buffer *buf, *bc;
    rf_tensor a, b, c;
    TH_OK(rf_buffer_alloc(dev, (size_t)(m * k + k * n) * 4, &buf));
    TH_OK(rf_buffer_alloc(dev, (size_t)(m * n) * 4, &bc));
    TH_OK(rf_buffer_upload(buf, 0, ab, (size_t)(m * k + k * n) * 4));
    TH_OK(rf_tensor_view(&a, buf, 0, RF_F32, 2, (int64_t[]){m, k}));
    TH_OK(rf_tensor_view(&b, buf, (size_t)(m * k), RF_F32, 2, (int64_t[]){k, n}));
    TH_OK(rf_tensor_view(&c, bc, 0, RF_F32, 2, (int64_t[]){m, n}));
    rf_gemm_desc d = {.m = m, .n = n, .k = k, .lda = k, .ldb = n, .ldc = n, .alpha = 1, .batch = 1};
    TH_OK(rf_gemm(&c, &a, &b, &d));
    float *out = malloc((size_t)(m * n) * 4);
    TH_OK(rf_buffer_download(bc, 0, out, (size_t)(m * n) * 4));
    rf_buffer_free(buf), rf_buffer_free(bc);
    return out;
}

static void operands_sharing_a_buffer(void **state) {
    rf_device *cl;
    TH_CL_OR_SKIP(cl);
    rf_device *cpu = th_cpu();
    rf_device_info info;
    TH_OK(rf_device_get_info(cl, &info));
    const int m = 9, n = 11, k = 7;
    float *ab = th_random((size_t)(m * k + k * n), 5, 1), *want = one_buffer_gemm(cpu, ab, m, n, k);
    static const char *const paths[] = {"clblast", "host"};
    for (int p = 0; p < (info.is_gpu ? 1 : 2); p++) {
        setenv("RF_CL_GEMM", paths[p], 1);
        float *got = one_buffer_gemm(cl, ab, m, n, k);
        th_assert_close(got, want, (size_t)(m * n), 1e-4, paths[p]);
        free(got);
    }
    unsetenv("RF_CL_GEMM");
    free(ab), free(want);
    rf_device_close(cpu);
    rf_device_close(cl);
}

static void rejects_bad_descriptors(void **state) {
    rf_device *cpu = th_cpu();
    rf_tensor a = TH_TENSOR(cpu, RF_F32, NULL, 6, 4), b = TH_TENSOR(cpu, RF_F32, NULL, 4, 5);
    rf_tensor c = TH_TENSOR(cpu, RF_F32, NULL, 6, 5), ids = TH_TENSOR(cpu, RF_I32, NULL, 6, 5);
    rf_gemm_desc d = {.m = 6, .n = 5, .k = 4, .alpha = 1};
    TH_OK(rf_gemm(&c, &a, &b, &d));
    rf_gemm_desc bad = d;
    bad.k = 0;
    TH_FAILS(rf_gemm(&c, &a, &b, &bad), RF_ERR_INVALID_ARG, "must be positive");
    bad = d;
    bad.lda = 3;
    TH_FAILS(rf_gemm(&c, &a, &b, &bad), RF_ERR_INVALID_ARG, "lda = 3 is smaller than the 4 columns");
    bad = d;
    bad.m = 7;
    TH_FAILS(rf_gemm(&c, &a, &b, &bad), RF_ERR_INVALID_ARG, "a needs 28 elements");
    bad = d;
    bad.batch = 2;
    bad.stride_a = 24, bad.stride_b = 20, bad.stride_c = 30;
    TH_FAILS(rf_gemm(&c, &a, &b, &bad), RF_ERR_INVALID_ARG, "batch 2");
    bad.stride_a = bad.stride_b = 0, bad.stride_c = 0;
    TH_FAILS(rf_gemm(&c, &a, &b, &bad), RF_ERR_INVALID_ARG, "stride_c = 0");
    TH_FAILS(rf_gemm(&ids, &a, &b, &d), RF_ERR_INVALID_ARG, "c must be f32");
    TH_FAILS(rf_gemm(&c, NULL, &b, &d), RF_ERR_INVALID_ARG, "a is NULL");
    TH_FAILS(rf_gemm(&c, &a, &b, NULL), RF_ERR_INVALID_ARG, "desc is NULL");
    rf_device *cl = th_cl();
    if (cl) {
        rf_tensor g = TH_TENSOR(cl, RF_F32, NULL, 6, 4);
        TH_FAILS(rf_gemm(&c, &g, &b, &d), RF_ERR_INVALID_ARG, "a is on cl:0:0");
        rf_tensor_free(&g);
        rf_device_close(cl);
    }
    rf_tensor_free(&a), rf_tensor_free(&b), rf_tensor_free(&c), rf_tensor_free(&ids);
    rf_device_close(cpu);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cpu_matches_definition),
        cmocka_unit_test(opencl_matches_cpu),
        cmocka_unit_test(operands_sharing_a_buffer),
        cmocka_unit_test(rejects_bad_descriptors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
