/* Test helpers: see harness.h. */
#include "harness.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

void th_fails(rf_status got, rf_status want, const char *needle, const char *expr, const char *file, int line) {
    if (got != want)
        fail_msg("%s:%d: %s returned '%s', expected '%s' (message: %s)", file, line, expr, rf_status_str(got),
                 rf_status_str(want), rf_last_error());
    if (needle && !strstr(rf_last_error(), needle))
        fail_msg("%s:%d: %s: message \"%s\" does not mention \"%s\"", file, line, expr, rf_last_error(), needle);
}

rf_device *th_cpu(void) {
    rf_device *dev = NULL;
    TH_OK(rf_device_open(&dev, "cpu"));
    return dev;
}

bool th_opencl_required(void) {
    const char *v = getenv("RF_TEST_REQUIRE_OPENCL");
    return v && !strcmp(v, "1");
}

rf_device *th_cl(void) {
    int n = 0;
    rf_status s = rf_device_count(&n);
    if (s != RF_OK || n < 2) {
        if (th_opencl_required())
            fail_msg("RF_TEST_REQUIRE_OPENCL=1 but %s", s != RF_OK ? rf_last_error() : "no OpenCL device was found");
        return NULL;
    }
    rf_device *dev = NULL;
    /* The device by what it is, not by its index (which follows the ICD
     * vendors folder): PoCL, or RF_TEST_CL_DEVICE (e.g. "oclgrind", a GPU's
     * name, or "cl:P:D"). */
    const char *name = getenv("RF_TEST_CL_DEVICE");
    TH_OK(rf_device_open(&dev, name && *name ? name : "pocl"));
    return dev;
}

void th_fill_uniform(float *x, size_t n, uint64_t seed, float scale) {
    uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        float u = (float)((s >> 40) & 0xffffff) / 16777216.0f;
        x[i] = (2.0f * u - 1.0f) * scale;
    }
}

float *th_random(size_t n, uint64_t seed, float scale) {
    float *x = malloc(n * sizeof *x + 1);
    assert_non_null(x);
    th_fill_uniform(x, n, seed, scale);
    return x;
}

rf_tensor th_tensor(rf_device *dev, rf_dtype dtype, int ndim, const int64_t *shape, const void *data) {
    rf_tensor t;
    TH_OK(rf_tensor_alloc(dev, &t, dtype, ndim, shape));
    if (data) TH_OK(rf_tensor_upload(&t, data, rf_tensor_numel(&t) * rf_dtype_size(dtype)));
    return t;
}

float *th_download_f32(const rf_tensor *t) {
    size_t n = rf_tensor_numel(t);
    float *x = malloc(n * sizeof *x + 1);
    assert_non_null(x);
    TH_OK(rf_tensor_download(t, x, n * sizeof *x));
    return x;
}

int32_t *th_download_i32(const rf_tensor *t) {
    size_t n = rf_tensor_numel(t);
    int32_t *x = malloc(n * sizeof *x + 1);
    assert_non_null(x);
    TH_OK(rf_tensor_download(t, x, n * sizeof *x));
    return x;
}

double th_max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || isnan(d)) m = isnan(d) ? INFINITY : d;
    }
    return m;
}

double th_rms(const float *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return n ? sqrt(s / (double)n) : 0;
}

void th_assert_close_ar(const float *got, const float *ref, size_t n, double atol, double rtol, const char *what) {
    double worst = 0; /* the largest |got − ref| / bound */
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(ref[i])) fail_msg("%s: the reference has %g at element %zu", what, ref[i], i);
        if (!isfinite(got[i])) fail_msg("%s: element %zu is %g (reference %.9g)", what, i, got[i], ref[i]);
        double d = fabs((double)got[i] - (double)ref[i]), bound = atol + rtol * fabs((double)ref[i]);
        double excess = d == 0 ? 0 : bound > 0 ? d / bound : INFINITY;
        if (excess > worst) worst = excess, at = i;
    }
    if (worst > 1)
        fail_msg("%s: element %zu: got %.9g, ref %.9g: |diff| %.3g > %.3g = atol %.3g + rtol %.3g * |ref|", what, at,
                 got[at], ref[at], fabs((double)got[at] - ref[at]), atol + rtol * fabs((double)ref[at]), atol, rtol);
}

void th_assert_close(const float *got, const float *ref, size_t n, double tol, const char *what) {
    th_assert_close_ar(got, ref, n, tol, tol, what);
}

void th_assert_close_grad(const float *got, const float *ref, size_t n, double tol, const char *what) {
    double rms = th_rms(ref, n);
    if (!(rms > 0)) fail_msg("%s: the reference gradient is all zero (or not finite): nothing to compare", what);
    th_assert_close_ar(got, ref, n, tol * rms, tol, what);
}

void th_assert_fd(const float *an, const float *fd, size_t n, double tol, const char *what) {
    double big = 0, worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(fd[i]) || !isfinite(an[i]))
            fail_msg("%s: element %zu: gradient %g, finite difference %g", what, i, an[i], fd[i]);
        big = fmax(big, fabs((double)fd[i]));
    }
    if (!(big > 0)) fail_msg("%s: every finite difference is 0: the check could not fail", what);
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)an[i] - fd[i]);
        if (d > worst) worst = d, at = i;
    }
    if (worst > tol * big)
        fail_msg("%s: element %zu: gradient %.6g, finite difference %.6g: |diff| %.3g > %.3g = %g * max|fd| %.3g", what,
                 at, an[at], fd[at], worst, tol * big, tol, big);
}

/* Sentinel: a NaN payload no op computes. */
static const uint32_t SENTINEL = 0x7fc0beefu;

th_guarded th_guarded_alloc(rf_device *dev, rf_dtype dtype, int ndim, const int64_t *shape) {
    th_guarded g;
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    g.pad = 64;
    rf_buffer *buf;
    TH_OK(rf_buffer_alloc(dev, (n + 2 * g.pad) * 4, &buf));
    TH_OK(rf_buffer_fill(buf, 0, &SENTINEL, 4, (n + 2 * g.pad) * 4));
    TH_OK(rf_tensor_view(&g.t, buf, g.pad, dtype, ndim, shape));
    return g;
}

void th_guard_check(const th_guarded *g, const char *what) {
    size_t n = rf_tensor_numel(&g->t);
    size_t total = n + 2 * g->pad;
    uint32_t *all = malloc(total * 4);
    assert_non_null(all);
    TH_OK(rf_buffer_download(g->t.buf, 0, all, total * 4));
    for (size_t i = 0; i < total; i++) {
        if (i == g->pad) i += n;
        if (i < total && all[i] != SENTINEL) {
            long rel = i < g->pad ? (long)i - (long)g->pad : (long)(i - g->pad - n);
            free(all);
            fail_msg("%s: write outside the output tensor (%s by %ld elements)", what, rel < 0 ? "before it" : "after it",
                     rel < 0 ? -rel : rel + 1);
        }
    }
    free(all);
}

void th_guarded_free(th_guarded *g) {
    rf_buffer_free(g->t.buf);
    memset(g, 0, sizeof *g);
}

void *th_read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc((size_t)size + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    *n = (size_t)size;
    return buf;
}

void *th_data_file(const char *dir, const char *file, size_t *n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/%s", getenv("RF_TEST_DATA"), dir, file);
    return th_read_file(path, n);
}

void th_tmpdir(char *out, size_t n) {
    snprintf(out, n, "/tmp/rf-test-XXXXXX");
    assert_non_null(mkdtemp(out));
}

int th_run_cli(const char *env, const char *args, char *out, size_t n) {
    const char *cli = getenv("RF_CLI");
    assert_non_null(cli);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s '%s' %s 2>&1", env ? env : "", cli, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t got = fread(out, 1, n - 1, p);
    out[got] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
