/* `reformer verify`: run every op on each chosen device and on the cpu
 * reference, compare within §10, print a table, exit non-zero on any
 * failure. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "verify.h"

static void help(void) {
    printf("usage: reformer verify [--device NAME | --all] [--grid tiny|quick|full]\n"
           "                       [--limits PROFILE] [--json] [--tolerance-scale X]\n\n"
           "Runs every op on each chosen device and on the cpu reference with the same\n"
           "inputs and compares them with the tolerances of §10, element by element:\n"
           "|device - cpu| <= atol + rtol * |cpu|, with atol = rtol = tol for values\n"
           "(elementwise 1e-5, matrix products and attention 1e-4) and, for gradients,\n"
           "rtol = 1e-3 and atol = 1e-3 * rms(cpu gradient of that tensor); LSH hashing by\n"
           "agreement rate (>= 99.9%%). Device outputs carry sentinel words around them:\n"
           "an out-of-bounds write, or a NaN/Inf on either side, is a FAIL. Last, a whole\n"
           "small Reformer (same Philox weights on both): logits, the loss, and each\n"
           "parameter's gradient (a row per tensor) of a training step with dropout.\n\n"
           "  --device NAME         a device (default $RF_DEVICE or auto); with no OpenCL\n"
           "                        device only an explicit --device cpu checks the cpu\n"
           "                        against itself (otherwise: exit 1)\n"
           "  --all                 every OpenCL device\n"
           "  --grid G              quick: a sample (default); full: the whole shape grid;\n"
           "                        tiny: one small case per op, for simulators (oclgrind)\n"
           "  --limits PROFILE      plan kernels against a GPU's limits: amd, nvidia,\n"
           "                        intel, min, or wg:N,local:BYTES,multiple:N (sets\n"
           "                        $RF_CL_LIMITS; docs/portability.md)\n"
           "  --json                one JSON object per row instead of the table\n"
           "  --tolerance-scale X   multiply every tolerance by X (0: demand bit equality)\n\n"
           "Exit status: 0 all passed, 1 a failure (or nothing to verify), 2 a usage error.\n");
}

static const uint32_t SENTINEL = 0x7fc0beefu;

rf_status vf_out_alloc(rf_device *dev, vf_out *o, int ndim, const int64_t *shape) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    o->pad = 256;
    rf_buffer *buf;
    rf_status s = rf_buffer_alloc(dev, (n + 2 * o->pad) * 4, &buf);
    if (s) return s;
    if ((s = rf_buffer_fill(buf, 0, &SENTINEL, 4, (n + 2 * o->pad) * 4)) ||
        (s = rf_tensor_view(&o->t, buf, o->pad, RF_F32, ndim, shape))) {
        rf_buffer_free(buf);
        return s;
    }
    return RF_OK;
}

void vf_out_free(vf_out *o) {
    if (o->t.buf) rf_buffer_free(o->t.buf);
    memset(o, 0, sizeof *o);
}

void vf_fill(float *x, size_t n, unsigned seed, float scale) {
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        x[i] = ((float)(s >> 40) / 16777216.0f * 2 - 1) * scale;
    }
}

rf_status vf_tensor(rf_device *dev, rf_tensor *t, int ndim, const int64_t *shape, const float *data) {
    rf_status s = rf_tensor_alloc(dev, t, RF_F32, ndim, shape);
    if (s == RF_OK && data) s = rf_tensor_upload(t, data, rf_tensor_numel(t) * 4);
    return s;
}

static void row(vf_ctx *c, const char *op, const char *shape, double abs_err, double rel_err, double tol, int pass,
                const char *note) {
    if (pass) c->passed++;
    else c->failed++;
    if (c->json)
        fprintf(c->out, "{\"device\": \"%s\", \"op\": \"%s\", \"shape\": \"%s\", \"max_abs_err\": %.3e, "
                        "\"max_rel_err\": %.3e, \"tolerance\": %.3e, \"result\": \"%s\", \"note\": \"%s\"}\n",
                c->info.id, op, shape, abs_err, rel_err, tol, pass ? "PASS" : "FAIL", note);
    else
        fprintf(c->out, "%-8s %-24s %-34s %10.3e %10.3e %10.3e  %s %s\n", c->info.id, op, shape, abs_err, rel_err, tol,
                pass ? "PASS" : "FAIL", note);
}

/* §10, element by element: |got − ref| ≤ atol + rtol·|ref|; a NaN/Inf
 * on either side fails. The row shows the largest |got − ref|, the largest
 * relative difference over elements with |ref| > atol, and rtol. */
static void check_rule(vf_ctx *c, const char *op, const char *shape, vf_out *o, const rf_tensor *ref, double tol,
                       int grad) {
    size_t n = rf_tensor_numel(ref), total = n + 2 * o->pad;
    float *want = malloc(n * 4);
    uint32_t *all = malloc(total * 4);
    if (!want || !all || rf_tensor_download(ref, want, n * 4) || rf_buffer_download(o->t.buf, 0, all, total * 4)) {
        row(c, op, shape, NAN, NAN, tol, 0, "download failed");
        free(want), free(all);
        return;
    }
    const char *note = "";
    for (size_t i = 0; i < o->pad; i++)
        if (all[i] != SENTINEL || all[o->pad + n + i] != SENTINEL) note = "out-of-bounds write";
    const float *got = (const float *)(all + o->pad);
    double rtol = tol * c->tol_scale, atol = rtol, sq = 0;
    for (size_t i = 0; i < n; i++) {
        if (!*note && !isfinite(want[i])) note = "NaN/Inf in the cpu reference";
        sq += (double)want[i] * want[i];
    }
    if (grad) atol = rtol * sqrt(sq / (double)(n ? n : 1)); /* all zero (e.g. every target ignored): exact */
    double worst = 0, rel = 0;
    int over = 0;
    for (size_t i = 0; i < n; i++) {
        if (!*note && !isfinite(got[i])) note = "NaN/Inf on the device";
        double d = fabs((double)got[i] - want[i]);
        if (d > worst || isnan(d)) worst = isnan(d) ? INFINITY : d;
        if (!(d <= atol + rtol * fabs((double)want[i]))) over++;
        if (fabs(want[i]) > atol && d / fabs(want[i]) > rel) rel = d / fabs(want[i]);
    }
    char buf[96];
    if (!*note && over) {
        snprintf(buf, sizeof buf, "%d of %zu elements beyond atol %.2e + rtol * |ref|", over, n, atol);
        note = buf;
    }
    row(c, op, shape, worst, rel, rtol, !*note, note);
    free(want), free(all);
}

void vf_check(vf_ctx *c, const char *op, const char *shape, vf_out *o, const rf_tensor *ref, double tol) {
    check_rule(c, op, shape, o, ref, tol, 0);
}

void vf_check_grad(vf_ctx *c, const char *op, const char *shape, vf_out *o, const rf_tensor *ref, double tol) {
    check_rule(c, op, shape, o, ref, tol, 1);
}

void vf_check_rate(vf_ctx *c, const char *op, const char *shape, double rate, double min_rate) {
    char note[64];
    snprintf(note, sizeof note, "agreement %.4f%% (min %.1f%%)", 100 * rate, 100 * min_rate);
    row(c, op, shape, 1 - rate, 1 - rate, 1 - min_rate, rate >= min_rate, note);
}

void vf_error(vf_ctx *c, const char *op, const char *shape, rf_status s) {
    char note[256];
    snprintf(note, sizeof note, "error: %s: %.200s", rf_status_str(s), rf_last_error());
    row(c, op, shape, NAN, NAN, 0, 0, note);
}

static void verify_device(vf_ctx *c) {
    if (!c->json)
        fprintf(c->out, "%-8s %-24s %-34s %10s %10s %10s  %s\n", "device", "op", "shape", "max abs", "max rel", "tol",
                "result");
    vf_cases_core(c);
    vf_cases_ops(c);
    vf_cases_lsh(c);
    vf_cases_model(c);
}

int cmd_verify(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        help();
        return RF_EXIT_OK;
    }
    const char *device = NULL;
    int all = 0;
    vf_ctx c = {.tol_scale = 1.0, .out = stdout};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--device") && i + 1 < argc) device = argv[++i];
        else if (!strcmp(argv[i], "--all")) all = 1;
        /* Read when each OpenCL device opens (src/device/opencl/cl_limits.c). */
        else if (!strcmp(argv[i], "--limits") && i + 1 < argc) setenv("RF_CL_LIMITS", argv[++i], 1);
        else if (!strcmp(argv[i], "--json")) c.json = 1;
        else if (!strcmp(argv[i], "--grid") && i + 1 < argc) {
            const char *g = argv[++i];
            if (!strcmp(g, "full")) c.full = 1;
            else if (!strcmp(g, "tiny")) c.tiny = 1;
            else if (strcmp(g, "quick")) {
                fprintf(stderr, "reformer verify: --grid takes 'tiny', 'quick' or 'full', not '%s'\n", g);
                return RF_EXIT_USAGE;
            }
        } else if (!strcmp(argv[i], "--tolerance-scale")) {
            if (!cli_double("verify", argv[i], i + 1 < argc ? argv[i + 1] : NULL, 0, 1e6, 0, &c.tol_scale))
                return RF_EXIT_USAGE;
            i++;
        } else {
            fprintf(stderr, "reformer verify: unknown option '%s' (see --help)\n", argv[i]);
            return RF_EXIT_USAGE;
        }
    }
    rf_status s = rf_device_open(&c.cpu, "cpu");
    if (s) return cli_fail("verify", s);
    int n = 0;
    if ((s = rf_device_count(&n))) return cli_fail("verify", s);
    int ran = 0;
    for (int i = 0; i < n; i++) {
        rf_device_info info;
        if ((s = rf_device_info_at(i, &info))) return cli_fail("verify", s);
        if (all ? info.kind != RF_DEVICE_OPENCL : i != 0) continue;
        const char *name = all ? info.id : device;
        if ((s = rf_device_open(&c.dev, name))) {
            rf_device_close(c.cpu);
            return cli_fail("verify", s);
        }
        rf_device_get_info(c.dev, &c.info);
        if (c.info.kind == RF_DEVICE_CPU) {
            /* The cpu against itself proves nothing about a device: only on request. */
            if (!device || strcmp(device, "cpu")) {
                fprintf(stderr, "reformer verify: no OpenCL device: the device chosen (%s) is the cpu reference itself; "
                                "pass --device cpu to check the cpu alone\n", name ? name : "auto");
                rf_device_close(c.dev);
                rf_device_close(c.cpu);
                return RF_EXIT_FAIL;
            }
            fprintf(stderr, "reformer verify: note: --device cpu: checking the cpu reference against itself\n");
        }
        verify_device(&c);
        rf_device_close(c.dev);
        ran++;
    }
    rf_device_close(c.cpu);
    if (!ran) {
        fprintf(stderr, "reformer verify: no OpenCL device to verify\n");
        return RF_EXIT_FAIL;
    }
    if (!c.json) printf("\nverify: %d passed, %d failed\n", c.passed, c.failed);
    return c.failed ? RF_EXIT_FAIL : RF_EXIT_OK;
}
