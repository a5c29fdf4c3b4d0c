/* verify cases for the foundation ops: GEMM and elementwise. */
#include <stdlib.h>
#include <stdio.h>
#include "verify.h"

static void gemm_case(vf_ctx *c, int m, int n, int k, int ta, int tb, int batch) {
    char shape[96];
    snprintf(shape, sizeof shape, "m%d n%d k%d%s%s b%d", m, n, k, ta ? " At" : "", tb ? " Bt" : "", batch);
    size_t na = (size_t)m * k * batch, nb = (size_t)k * n * batch, nc = (size_t)m * n * batch;
    float *A = malloc(na * 4), *B = malloc(nb * 4);
    vf_fill(A, na, 1, 1), vf_fill(B, nb, 2, 1);
    rf_gemm_desc d = {.trans_a = ta, .trans_b = tb, .m = m, .n = n, .k = k, .alpha = 1, .beta = 0, .batch = batch,
                      .stride_a = (int64_t)m * k, .stride_b = (int64_t)k * n, .stride_c = (int64_t)m * n};
    rf_tensor a0 = {0}, b0 = {0}, c0 = {0}, a1 = {0}, b1 = {0};
    vf_out c1 = {0};
    rf_status s;
    if ((s = vf_tensor(c->cpu, &a0, 1, (int64_t[]){(int64_t)na}, A)) || (s = vf_tensor(c->cpu, &b0, 1, (int64_t[]){(int64_t)nb}, B)) ||
        (s = vf_tensor(c->cpu, &c0, 1, (int64_t[]){(int64_t)nc}, NULL)) || (s = vf_tensor(c->dev, &a1, 1, (int64_t[]){(int64_t)na}, A)) ||
        (s = vf_tensor(c->dev, &b1, 1, (int64_t[]){(int64_t)nb}, B)) || (s = vf_out_alloc(c->dev, &c1, 1, (int64_t[]){(int64_t)nc})) ||
        (s = rf_gemm(&c0, &a0, &b0, &d)) || (s = rf_gemm(&c1.t, &a1, &b1, &d)))
        vf_error(c, "gemm", shape, s);
    else
        vf_check(c, "gemm", shape, &c1, &c0, 1e-4);
    rf_tensor_free(&a0), rf_tensor_free(&b0), rf_tensor_free(&c0), rf_tensor_free(&a1), rf_tensor_free(&b1);
    vf_out_free(&c1);
    free(A), free(B);
}

static void add_case(vf_ctx *c, int n) {
    char shape[32];
    snprintf(shape, sizeof shape, "n%d", n);
    float *A = malloc((size_t)n * 4), *B = malloc((size_t)n * 4);
    vf_fill(A, (size_t)n, 3, 1), vf_fill(B, (size_t)n, 4, 1);
    rf_tensor a0 = {0}, b0 = {0}, c0 = {0}, a1 = {0}, b1 = {0};
    vf_out c1 = {0};
    rf_status s;
    int64_t sh[] = {n};
    if ((s = vf_tensor(c->cpu, &a0, 1, sh, A)) || (s = vf_tensor(c->cpu, &b0, 1, sh, B)) || (s = vf_tensor(c->cpu, &c0, 1, sh, NULL)) ||
        (s = vf_tensor(c->dev, &a1, 1, sh, A)) || (s = vf_tensor(c->dev, &b1, 1, sh, B)) || (s = vf_out_alloc(c->dev, &c1, 1, sh)) ||
        (s = rf_add(&c0, &a0, &b0, -0.75f)) || (s = rf_add(&c1.t, &a1, &b1, -0.75f)))
        vf_error(c, "add", shape, s);
    else
        vf_check(c, "add", shape, &c1, &c0, 1e-5);
    rf_tensor_free(&a0), rf_tensor_free(&b0), rf_tensor_free(&c0), rf_tensor_free(&a1), rf_tensor_free(&b1);
    vf_out_free(&c1);
    free(A), free(B);
}

void vf_cases_core(vf_ctx *c) {
    add_case(c, 1);
    gemm_case(c, 1, 1, 1, 0, 0, 1);
    if (c->tiny) return;
    add_case(c, 4097);
    gemm_case(c, 33, 17, 65, 0, 1, 1);
    gemm_case(c, 64, 64, 64, 1, 0, 3);
    if (c->full) {
        add_case(c, 1 << 20);
        gemm_case(c, 512, 512, 512, 0, 0, 1);
        gemm_case(c, 1000, 129, 77, 1, 1, 2);
    }
}
