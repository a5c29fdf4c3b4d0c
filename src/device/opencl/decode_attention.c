/* Cached incremental decoding's attention on OpenCL (cl/decode_attention.cl). */
#include "device/opencl/cl_backend.h"
#include "ops/decode_attention.h"

void rf_cl_decode_attention_register(rf_op_table *ops) {
    (void)ops;
}
