/* `reformer bench gemm`: rf_gemm — CLBlast or host BLAS on OpenCL devices
 * (src/device/opencl/gemm.c), OpenBLAS on the cpu reference — in GFLOP/s
 * over a few shapes (§13). Every matrix multiply of the model goes through
 * rf_gemm, so this is the ceiling the other ops are measured against. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"

#define MAX_SHAPES 16

typedef struct {
    bench_common c;
    int64_t shapes[MAX_SHAPES][3]; /* m, n, k */
    int nshapes;
} gemm_opts;

static void help(void) {
    printf("usage: reformer bench gemm [--device NAME]... [--all] [--runs N] [--csv FILE] [--json FILE]\n"
           "                           [--profile] [--profile-csv FILE] [--sizes S1,S2,...]\n\n"
           "C = A·B in f32, row-major, through rf_gemm: on OpenCL devices CLBlast, or OpenBLAS\n"
           "on the mapped buffers for devices of CPU type (RF_CL_GEMM=clblast|host forces\n"
           "one); OpenBLAS on cpu. --sizes takes N (square) or MxNxK items (default\n"
           "256,512,1024).\n"
           "GFLOP/s counts 2·m·n·k; tokens/s counts the m rows of A as tokens (as in a\n"
           "linear layer). The first CLBlast call of a process compiles its kernels (on\n"
           "PoCL 13-36 s), inside the warm-up.\n\n%s",
           bench_common_help);
}

/* "N" or "MxNxK" items separated by commas; 0 on success. */
static int parse_shapes(const char *s, gemm_opts *o) {
    o->nshapes = 0;
    while (*s) {
        int64_t dims[3];
        int nd = 0;
        for (;;) {
            char *end;
            if (!isdigit((unsigned char)*s)) return -1; /* no sign, blank or "0x" */
            errno = 0;
            long long v = strtoll(s, &end, 10);
            if (end == s || errno || v <= 0 || v > 65536 || nd == 3) return -1;
            dims[nd++] = v;
            s = end;
            if (*s != 'x') break;
            s++;
        }
        if ((nd != 1 && nd != 3) || o->nshapes == MAX_SHAPES || (*s && *s != ',')) return -1;
        for (int i = 0; i < 3; i++) o->shapes[o->nshapes][i] = dims[nd == 1 ? 0 : i];
        o->nshapes++;
        if (*s && !*++s) return -1; /* a trailing comma */
    }
    return o->nshapes ? 0 : -1;
}

typedef struct {
    rf_tensor a, b, c;
    rf_gemm_desc d;
} gemm_case;

static rf_status run_gemm(void *p) {
    gemm_case *g = p;
    return rf_gemm(&g->c, &g->a, &g->b, &g->d);
}


rf_status bench_sgemm_rate(rf_device *dev, double *gflops) {
    const int64_t n = 1024;
    gemm_case g = {.d = {.m = n, .n = n, .k = n, .alpha = 1.0f, .beta = 0.0f, .batch = 1}};
    bench_result r;
    rf_status s;
    if (!(s = rf_tensor_alloc(dev, &g.a, RF_F32, 2, (int64_t[]){n, n})) &&
        !(s = rf_tensor_alloc(dev, &g.b, RF_F32, 2, (int64_t[]){n, n})) &&
        !(s = rf_tensor_alloc(dev, &g.c, RF_F32, 2, (int64_t[]){n, n})) && !(s = bench_upload_random(&g.a, 0x1234567ull)) &&
        !(s = bench_upload_random(&g.b, 0x89abcdefull)) && !(s = bench_measure(dev, BENCH_MIN_RUNS, run_gemm, &g, &r)))
        *gflops = 2.0 * (double)(n * n * n) / (r.ms / 1e3) / 1e9;
    rf_tensor_free(&g.a), rf_tensor_free(&g.b), rf_tensor_free(&g.c);
    return s;
}

static rf_status gemm_device(bench_out *out, rf_device *dev, const rf_device_info *info, void *ctx) {
    const gemm_opts *o = ctx;
    rf_status s = RF_OK;
    for (int i = 0; i < o->nshapes && s == RF_OK; i++) {
        const int64_t m = o->shapes[i][0], n = o->shapes[i][1], k = o->shapes[i][2];
        gemm_case g = {.d = {.m = m, .n = n, .k = k, .alpha = 1.0f, .beta = 0.0f, .batch = 1}};
        if (!(s = rf_tensor_alloc(dev, &g.a, RF_F32, 2, (int64_t[]){m, k})) &&
            !(s = rf_tensor_alloc(dev, &g.b, RF_F32, 2, (int64_t[]){k, n})) &&
            !(s = rf_tensor_alloc(dev, &g.c, RF_F32, 2, (int64_t[]){m, n})) && !(s = bench_upload_random(&g.a, 0x1234567ull)) &&
            !(s = bench_upload_random(&g.b, 0x89abcdefull))) {
            bench_result r;
            if (!(s = bench_measure(dev, o->c.runs, run_gemm, &g, &r))) {
                const double flops = 2.0 * (double)m * (double)n * (double)k;
                const double bytes = 4.0 * ((double)m * k + (double)k * n + (double)m * n);
                const bench_work work[] = {{"gemm", flops, bytes, false}};
                bench_row row = {.batch = 1, .length = m, .flops = flops};
                snprintf(row.op, sizeof row.op, "gemm");
                snprintf(row.shape, sizeof row.shape, "m=%lld n=%lld k=%lld", (long long)m, (long long)n, (long long)k);
                s = bench_report(out, dev, info, &row, &r, work, 1);
            }
        }
        rf_tensor_free(&g.a), rf_tensor_free(&g.b), rf_tensor_free(&g.c);
    }
    return s;
}

int bench_gemm(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        help();
        return RF_EXIT_OK;
    }
    gemm_opts o;
    bench_common_init(&o.c);
    parse_shapes("256,512,1024", &o);
    for (int i = 1; i < argc; i++) {
        int taken = bench_common_arg(&o.c, argc, argv, &i);
        if (taken < 0) return RF_EXIT_USAGE;
        if (taken) continue;
        if (strcmp(argv[i], "--sizes")) return bench_usage_error("gemm", argv[i]);
        if (i + 1 == argc) {
            fprintf(stderr, "reformer bench gemm: --sizes: needs a value\n");
            return RF_EXIT_USAGE;
        }
        if (parse_shapes(argv[++i], &o)) {
            fprintf(stderr, "reformer bench gemm: --sizes: '%.80s' is not a list of N or MxNxK items, each in [1, 65536], "
                            "at most %d\n", argv[i], MAX_SHAPES);
            return RF_EXIT_USAGE;
        }
    }
    if (cli_dry_run) return RF_EXIT_OK;
    bench_out *out;
    char done[BENCH_MAX_DEVICES][32];
    int ndone = 0, rc = bench_out_open(&out, &o.c, "gemm");
    if (rc) return rc;
    rc = bench_each_device(out, &o.c, gemm_device, &o, done, &ndone);
    if (rc == RF_EXIT_OK) bench_device_ratios(out);
    return bench_out_close(out, rc);
}
