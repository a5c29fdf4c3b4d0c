/* GEMM on the cpu: the host BLAS on the tensors' memory (device/host_gemm.c
 * threads it over blocks of rows), on the OpenMP threads: their spinning
 * between parallel regions is what makes the cpu backend's back-to-back ops
 * cheap. */
#include "device/cpu/cpu_backend.h"
#include "device/host_gemm.h"

static rf_status rf_cpu_gemm(rf_tensor *c, const rf_tensor *a, const rf_tensor *b, const rf_gemm_desc *d) {
    rf_host_gemm(d, rf_cpu_f32(a), rf_cpu_f32(b), rf_cpu_f32(c), NULL);
    return RF_OK;
}

void rf_cpu_gemm_register(rf_op_table *ops) {
    ops->gemm = rf_cpu_gemm;
}
