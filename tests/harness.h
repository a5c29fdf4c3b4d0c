/* Test helpers shared by every tests/test_*.c: opening devices (OpenCL tests
 * skip when there is none, and fail instead with RF_TEST_REQUIRE_OPENCL=1),
 * moving data, random inputs, §10 comparisons and sentinel-guarded
 * outputs. */
#ifndef RF_TEST_HARNESS_H
#define RF_TEST_HARNESS_H

#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "reformer/reformer.h"

/* Assert that a library call succeeded; on failure print its message. */
#define TH_OK(expr) do {                                                              \
        rf_status th_s_ = (expr);                                                     \
        if (th_s_ != RF_OK) fail_msg("%s -> %s: %s", #expr, rf_status_str(th_s_), rf_last_error()); \
    } while (0)
/* Assert that a call fails with `status` and a message containing `needle`. */
#define TH_FAILS(expr, status, needle) th_fails((expr), (status), (needle), #expr, __FILE__, __LINE__)
void th_fails(rf_status got, rf_status want, const char *needle, const char *expr, const char *file, int line);

rf_device *th_cpu(void);          /* the cpu device (asserts) */
/* The first OpenCL device (or $RF_TEST_CL_DEVICE), or NULL when the machine
 * has none: then the test skips, or, with RF_TEST_REQUIRE_OPENCL=1 in the
 * environment (tools/setup.sh test sets it), fails. */
rf_device *th_cl(void);
bool th_opencl_required(void);
#define TH_CL_OR_SKIP(dev) do { (dev) = th_cl(); if (!(dev)) { skip(); } } while (0)
/* The OpenCL kernels' two shapes (RF_CL_ATTN; rf_cl_attn_shape): tests set
 * RF_CL_ATTN to each in turn, so PoCL runs both. */
static const char *const TH_CL_SHAPES[2] = {"gpu", "cpu"};

/* Deterministic inputs: uniform in [-scale, scale) from a small LCG. */
void th_fill_uniform(float *x, size_t n, uint64_t seed, float scale);
float *th_random(size_t n, uint64_t seed, float scale);   /* malloc'd */

/* Tensors from host data, and back (malloc'd). */
rf_tensor th_tensor(rf_device *dev, rf_dtype dtype, int ndim, const int64_t *shape, const void *data);
#define TH_TENSOR(dev, dtype, data, ...) \
    th_tensor(dev, dtype, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]){__VA_ARGS__}, data)
float *th_download_f32(const rf_tensor *t);
int32_t *th_download_i32(const rf_tensor *t);

/* The suite's one closeness rule (§10 tolerances, applied per element):
 *   |got[i] − ref[i]| ≤ atol + rtol·|ref[i]|   for every i,
 * and a NaN/Inf in ref or in got fails. No element's bound depends on another
 * element (a −1e9 lse does not loosen its neighbours). Prints the worst
 * element (largest excess over its bound) on failure. */
void th_assert_close_ar(const float *got, const float *ref, size_t n, double atol, double rtol, const char *what);
/* Values of order one: atol = rtol = tol (§10's tol · max(1, |ref|), per element). */
void th_assert_close(const float *got, const float *ref, size_t n, double tol, const char *what);
/* Gradients (§10 "relative"): atol = tol · rms(ref), rtol = tol. An all-zero
 * reference fails: there is nothing to be relative to. */
void th_assert_close_grad(const float *got, const float *ref, size_t n, double tol, const char *what);
/* An analytic gradient against central finite differences `fd` (§10: ≤ tol
 * relative to the largest gradient): |an[i] − fd[i]| ≤ tol · max|fd| for
 * every i. Fails if max|fd| is 0 (the check could not fail) or any value is
 * not finite. */
void th_assert_fd(const float *an, const float *fd, size_t n, double tol, const char *what);
double th_max_abs_diff(const float *a, const float *b, size_t n);
double th_rms(const float *x, size_t n);

/* An output tensor with sentinel words before and after it in its buffer:
 * th_guard_check fails if the op wrote outside the tensor. */
typedef struct th_guarded { rf_tensor t; size_t pad; } th_guarded;
th_guarded th_guarded_alloc(rf_device *dev, rf_dtype dtype, int ndim, const int64_t *shape);
void th_guard_check(const th_guarded *g, const char *what);
void th_guarded_free(th_guarded *g);

/* Run the `reformer` command ($RF_CLI) with ARGS after an optional
 * environment/shell prefix; return its exit status and up to n − 1 bytes of
 * its combined stdout and stderr in out. */
int th_run_cli(const char *env, const char *args, char *out, size_t n);

/* A file's bytes (malloc'd, one spare byte for a terminator); *n = its size.
 * th_data_file reads $RF_TEST_DATA/dir/file. */
void *th_read_file(const char *path, size_t *n);
void *th_data_file(const char *dir, const char *file, size_t *n);

/* A fresh empty temporary folder (a static buffer per call site is fine). */
void th_tmpdir(char *out, size_t n);

#endif
