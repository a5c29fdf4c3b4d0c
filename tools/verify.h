/* `reformer verify`: each op family contributes cases that run the same
 * inputs on the cpu reference and on a device and report the comparison. */
#ifndef RF_VERIFY_H
#define RF_VERIFY_H

#include <stdio.h>
#include "reformer/reformer.h"

typedef struct vf_ctx {
    rf_device *cpu, *dev;
    rf_device_info info;
    int full;                  /* --grid full */
    int tiny;                  /* --grid tiny: one small case per op (simulators) */
    double tol_scale;          /* --tolerance-scale (0 makes any difference a FAIL) */
    int json;
    int passed, failed;
    FILE *out;
} vf_ctx;

/* A device output with sentinel words around it: an out-of-bounds write
 * by the device shows up as a FAIL. */
typedef struct vf_out { rf_tensor t; size_t pad; } vf_out;
rf_status vf_out_alloc(rf_device *dev, vf_out *o, int ndim, const int64_t *shape);
void vf_out_free(vf_out *o);

/* Compare the device output `dev_out` (guarded) against the cpu's `ref`
 * element by element (§10: |a − r| <= tol + tol·|r|; NaN/Inf on either
 * side fails), print a row and count it. */
void vf_check(vf_ctx *c, const char *op, const char *shape, vf_out *dev_out, const rf_tensor *ref, double tol);
/* The same for a gradient: |a − r| <= tol·rms(ref) + tol·|r| (an all-zero
 * reference demands exact zeros). */
void vf_check_grad(vf_ctx *c, const char *op, const char *shape, vf_out *dev_out, const rf_tensor *ref, double tol);
/* A row for a statistic that is not an elementwise comparison (hash agreement). */
void vf_check_rate(vf_ctx *c, const char *op, const char *shape, double rate, double min_rate);
/* A row for a case that could not run (an error from the library). */
void vf_error(vf_ctx *c, const char *op, const char *shape, rf_status s);

/* Uniform inputs in [-scale, scale) from a seed (same values on every device). */
void vf_fill(float *x, size_t n, unsigned seed, float scale);
/* A tensor on `dev` holding `data`. */
rf_status vf_tensor(rf_device *dev, rf_tensor *t, int ndim, const int64_t *shape, const float *data);

/* The families' case lists. */
void vf_cases_core(vf_ctx *c);
void vf_cases_ops(vf_ctx *c);
void vf_cases_lsh(vf_ctx *c);
void vf_cases_model(vf_ctx *c);

#endif
