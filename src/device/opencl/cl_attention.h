/* Internal: how the OpenCL attention host code (local_attention.c,
 * full_attention.c, lsh_attention.c) passes what cl/attention_common.cl
 * declares, so every attention kernel gets it the same way: the program
 * options, the dropout arguments and absent optional buffers. */
#ifndef RF_CL_ATTENTION_H
#define RF_CL_ATTENTION_H

#include <stdio.h>
#include "device/attention_common.h"
#include "device/opencl/cl_backend.h"

/* Build options of an attention program: HEAD_DIM (the private arrays'
 * size), MAX_HEAD_DIM (the one head-size limit, checked by the kernels too)
 * and, when tile > 0, TILE. */
static inline void rf_cl_attn_options(char *buf, size_t n, int64_t head_dim, int tile) {
    int at = snprintf(buf, n, "-DHEAD_DIM=%lld -DMAX_HEAD_DIM=%d", (long long)head_dim, RF_ATTN_MAX_HEAD_DIM);
    if (tile > 0 && at >= 0 && (size_t)at < n) snprintf(buf + at, n - (size_t)at, " -DTILE=%d", tile);
}

/* The four dropout arguments every attention kernel takes, in this order
 * (cl/attention_common.cl): on, (seed lo, seed hi, stream, step), the keep
 * threshold and the host's float 1/(1 − p). */
typedef struct rf_cl_attn_dropout {
    cl_int on;
    cl_uint4 philox;
    cl_uint threshold;
    cl_float keep_scale;
} rf_cl_attn_dropout;

static inline rf_cl_attn_dropout rf_cl_attn_dropout_args(const rf_attn_dropout *d) {
    return (rf_cl_attn_dropout){.on = d->on,
                                .philox = {{(cl_uint)d->seed, (cl_uint)(d->seed >> 32), d->stream, d->step}},
                                .threshold = d->keep.threshold,
                                .keep_scale = d->keep_scale};
}
#define RF_CL_ATTN_DROPOUT_ARGS(a) RF_ARG((a).on), RF_ARG((a).philox), RF_ARG((a).threshold), RF_ARG((a).keep_scale)

/* An optional tensor as a kernel's (buffer, offset, has) triple: absent is a
 * NULL buffer, offset 0 and has = 0 (kernels test has, never the pointer). */
typedef struct rf_cl_attn_optional {
    cl_mem mem;
    cl_ulong offset;
    cl_int has;
} rf_cl_attn_optional;

static inline rf_cl_attn_optional rf_cl_attn_optional_of(const rf_tensor *t) {
    return t ? (rf_cl_attn_optional){rf_cl_mem(t->buf), t->offset, 1} : (rf_cl_attn_optional){NULL, 0, 0};
}
#define RF_CL_ATTN_OPTIONAL_ARGS(o) RF_ARG((o).mem), RF_ARG((o).offset), RF_ARG((o).has)

#endif
