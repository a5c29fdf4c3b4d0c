/* The shared half of `reformer bench` (see bench.h; §13). */
#include "bench.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

const char bench_common_help[] =
    "  --device NAME      a device (repeatable; default $RF_DEVICE or auto)\n"
    "  --all              the cpu reference and every OpenCL device, side by side\n"
    "  --runs N           timed runs after one warm-up, median reported (5 to 64; default 5)\n"
    "  --csv FILE         also write the rows as CSV\n"
    "  --json FILE        also write rows, profile and ratios as JSON\n"
    "  --profile          per kernel / op: calls, device time, share, GFLOP/s, GB/s, and\n"
    "                     GFLOP/s over the device's SGEMM rate (rf_gemm at 1024^3)\n"
    "  --profile-csv FILE --profile, and write its tables as CSV\n";

void bench_common_init(bench_common *c) {
    memset(c, 0, sizeof *c);
    c->runs = BENCH_MIN_RUNS;
}

int bench_parse_int(const char *cmd, const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *v) {
    long long x;
    if (!cli_int(cmd, opt, s, lo, hi, &x)) return -1;
    *v = x;
    return 0;
}

int bench_parse_list(const char *cmd, const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out, int cap) {
    long long x[64];
    int n = 0;
    if (cap > 64 || !cli_int_list(cmd, opt, s, lo, hi, x, cap, &n)) return -1;
    for (int i = 0; i < n; i++) out[i] = x[i];
    return n;
}

int bench_usage_error(const char *name, const char *arg) {
    fprintf(stderr, "reformer bench %s: unknown option or missing value '%s' (see --help)\n", name, arg);
    return RF_EXIT_USAGE;
}

int bench_common_arg(bench_common *c, int argc, char **argv, int *i) {
    const char *a = argv[*i], *val = *i + 1 < argc ? argv[*i + 1] : NULL;
    if (!strcmp(a, "--all")) return c->all = true, 1;
    if (!strcmp(a, "--profile")) return c->profile = true, 1;
    static const char *const with_value[] = {"--device", "--runs", "--csv", "--json", "--profile-csv"};
    int k = 0;
    while (k < 5 && strcmp(a, with_value[k])) k++;
    if (k == 5) return 0;
    if (!val) {
        fprintf(stderr, "reformer bench: %s needs a value\n", a);
        return -1;
    }
    (*i)++;
    int64_t v;
    switch (k) {
    case 0:
        if (c->ndevices == BENCH_MAX_DEVICES) {
            fprintf(stderr, "reformer bench: at most %d --device options\n", BENCH_MAX_DEVICES);
            return -1;
        }
        c->devices[c->ndevices++] = val;
        break;
    case 1:
        /* §13: the median of at least 5 runs. */
        if (bench_parse_int("bench", "--runs", val, BENCH_MIN_RUNS, BENCH_MAX_RUNS, &v)) return -1;
        c->runs = (int)v;
        break;
    case 2: c->csv = val; break;
    case 3: c->json = val; break;
    default: c->profile_csv = val, c->profile = true; break;
    }
    return 1;
}

int bench_device_names(const bench_common *c, char ids[][32], const char **names, int *n) {
    *n = 0;
    if (!c->all) {
        for (int i = 0; i < c->ndevices; i++) names[(*n)++] = c->devices[i];
        if (!*n) names[(*n)++] = NULL; /* $RF_DEVICE or auto */
        return RF_EXIT_OK;
    }
    int count = 0;
    rf_status s = rf_device_count(&count);
    if (s) return cli_fail("bench", s);
    for (int i = 0; i < count && *n < BENCH_MAX_DEVICES; i++) { /* index 0 is the cpu reference */
        rf_device_info info;
        if ((s = rf_device_info_at(i, &info))) return cli_fail("bench", s);
        snprintf(ids[*n], 32, "%s", info.id);
        names[*n] = ids[*n];
        (*n)++;
    }
    return RF_EXIT_OK;
}

int bench_each_device(bench_out *out, const bench_common *c, bench_device_fn fn, void *ctx, char done[][32],
                      int *ndone) {
    char ids[BENCH_MAX_DEVICES][32];
    const char *names[BENCH_MAX_DEVICES];
    int n = 0, rc = bench_device_names(c, ids, names, &n);
    *ndone = 0;
    for (int i = 0; i < n && rc == RF_EXIT_OK; i++) {
        rf_device *dev;
        rf_device_info info;
        rf_status s = rf_device_open(&dev, names[i]);
        if (s == RF_OK && (s = rf_device_get_info(dev, &info)) == RF_OK) s = fn(out, dev, &info, ctx);
        if (s == RF_OK) snprintf(done[(*ndone)++], 32, "%s", info.id);
        else rc = cli_fail("bench", s);
        rf_device_close(dev);
    }
    return rc;
}

double bench_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

rf_status bench_upload_random(rf_tensor *t, uint64_t seed) {
    size_t n = rf_tensor_numel(t);
    float *x = malloc(n * sizeof *x);
    if (!x) return RF_ERR_OUT_OF_MEMORY;
    for (size_t i = 0; i < n; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        x[i] = (float)(seed >> 40) / 16777216.0f * 2 - 1;
    }
    rf_status s = rf_tensor_upload(t, x, n * sizeof *x);
    free(x);
    return s;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_median(double *x, int n) {
    qsort(x, (size_t)n, sizeof x[0], cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

rf_status bench_measure(rf_device *dev, int runs, bench_fn fn, void *ctx, bench_result *r) {
    double times[BENCH_MAX_RUNS];
    rf_memory_stats m;
    rf_status s;
    if (runs < 1 || runs > BENCH_MAX_RUNS) runs = BENCH_MIN_RUNS;
    /* The warm-up builds kernels (and CLBlast's routines) outside the timing,
     * and makes what a phase keeps between calls (a training step's
     * gradients and moments) part of the base, not of the phase's own peak. */
    if ((s = fn(ctx)) || (s = rf_device_sync(dev)) || (s = rf_device_profile_reset(dev)) ||
        (s = rf_device_reset_peak(dev)) || (s = rf_device_memory(dev, &m)))
        return s;
    r->base_bytes = m.in_use_bytes;
    r->total_ms = 0;
    for (int i = 0; i < runs; i++) {
        double t0 = bench_now_ms();
        if ((s = fn(ctx)) || (s = rf_device_sync(dev))) return s;
        times[i] = bench_now_ms() - t0;
        r->total_ms += times[i];
    }
    r->ms = bench_median(times, runs);
    r->runs = runs;
    if ((s = rf_device_memory(dev, &m))) return s;
    r->peak_bytes = m.peak_bytes;
    return RF_OK;
}

/* ---- output ------------------------------------------------------------ */

typedef struct {
    char device[32], op[32], shape[96], kernel[64];
    double calls, ms, mean_ms, share, gflops, gbps; /* per run; NAN: unknown */
    double of_sgemm;                                /* gflops over the device's SGEMM rate */
} profile_row;

typedef struct {
    char what[160];
    double value;
} ratio_row;

struct bench_out {
    const char *bench;
    FILE *csv, *profile_csv;
    const char *json;
    bench_row *rows;
    profile_row *prof;
    ratio_row *ratios;
    int nrows, nprof, nratios, caprows, capprof, capratios;
    bool profile, failed;
    char sgemm_device[32];  /* the device whose SGEMM rate was measured (once per device) */
    double sgemm_gflops;
};

/* Grow *arr (of *cap elements of `size`) to hold one more; 0 on no memory. */
static int grow(void *arr, int *cap, int n, size_t size) {
    if (n < *cap) return 1;
    int c = *cap ? *cap * 2 : 64;
    void *p = realloc(*(void **)arr, (size_t)c * size);
    if (!p) return 0;
    *(void **)arr = p;
    *cap = c;
    return 1;
}

static FILE *open_out(const char *path) {
    /* Opening a FIFO for writing would wait for a reader; a folder cannot be
     * written: refuse anything but a regular file (or a new one) by name. */
    struct stat st;
    if (!*path || (stat(path, &st) == 0 && !S_ISREG(st.st_mode))) {
        fprintf(stderr, "reformer bench: cannot write '%s': %s\n", path,
                !*path ? "an empty path names no file" : S_ISDIR(st.st_mode) ? "it is a directory" : "it is not a regular file");
        return NULL;
    }
    FILE *f = fopen(path, "w");
    if (!f) fprintf(stderr, "reformer bench: cannot write '%s': %s\n", path, strerror(errno));
    return f;
}

int bench_out_open(bench_out **out, const bench_common *c, const char *bench) {
    bench_out *o = calloc(1, sizeof *o);
    if (!o) return RF_EXIT_FAIL;
    o->bench = bench;
    o->json = c->json;
    o->profile = c->profile;
    if ((c->csv && !(o->csv = open_out(c->csv))) || (c->profile_csv && !(o->profile_csv = open_out(c->profile_csv)))) {
        bench_out_close(o, RF_EXIT_FAIL);
        return RF_EXIT_FAIL;
    }
    if (o->csv)
        fprintf(o->csv, "bench,device,op,shape,batch,length,tokens,time_ms,tokens_per_s,gflops,base_bytes,peak_bytes,"
                        "rss_bytes\n");
    if (o->profile_csv)
        fprintf(o->profile_csv,
                "bench,device,op,shape,kernel,calls_per_run,ms_per_run,mean_ms,share,gflops,gbps,of_sgemm\n");
    printf("%-8s %-10s %-40s %11s %12s %9s %10s %9s\n", "device", "op", "shape", "median ms", "tokens/s", "GFLOP/s",
           "peak MiB", "RSS MiB");
    *out = o;
    return RF_EXIT_OK;
}

static void csv_num(FILE *f, double v, const char *fmt) {
    if (isfinite(v)) fprintf(f, fmt, v);
}

static const bench_work *work_of(const char *kernel, const bench_work *work, int nwork) {
    for (int i = 0; i < nwork; i++) {
        size_t n = strlen(work[i].op);
        if (!strncmp(kernel, work[i].op, n) && (!kernel[n] || !strncmp(kernel + n, " (", 2))) return &work[i];
    }
    return NULL;
}

/* The per-kernel table of the runs just measured, and how much of the wall
 * time it accounts for (the profile counts device time of kernels and
 * transfers on OpenCL, the wall time of each op on cpu; the rest is host
 * work between them and launch or wait latency). */
static rf_status report_profile(bench_out *o, rf_device *dev, const bench_row *row, const bench_result *r,
                                const bench_work *work, int nwork) {
    rf_profile_entry e[128];
    int count = 0;
    rf_status s = rf_device_profile(dev, e, 128, &count);
    if (s) return s;
    if (count > 128) count = 128;
    /* The device's SGEMM rate, measured once per device after its first
     * profiled case (the entries above are already read). */
    if (strcmp(o->sgemm_device, row->device)) {
        o->sgemm_gflops = NAN;
        if (bench_sgemm_rate(dev, &o->sgemm_gflops)) o->sgemm_gflops = NAN;
        snprintf(o->sgemm_device, sizeof o->sgemm_device, "%s", row->device);
    }
    const double wall = r->total_ms / r->runs; /* the mean, so that the shares add up */
    printf("  profile of %s %s %s: %d runs, %.3f ms wall per run (mean); %s SGEMM (m=n=k=1024) %.2f GFLOP/s\n",
           row->device, row->op, row->shape, r->runs, wall, row->device, o->sgemm_gflops);
    printf("    %-32s %8s %11s %11s %7s %9s %8s %9s\n", "kernel / op", "calls", "ms per run", "mean ms", "share",
           "GFLOP/s", "GB/s", "of SGEMM");
    double sum = 0;
    for (int i = 0; i < count; i++) {
        profile_row p = {.calls = (double)e[i].calls / r->runs, .ms = e[i].total_ms / r->runs, .mean_ms = e[i].mean_ms,
                         .gflops = NAN, .gbps = NAN};
        snprintf(p.device, sizeof p.device, "%s", row->device);
        snprintf(p.op, sizeof p.op, "%s", row->op);
        snprintf(p.shape, sizeof p.shape, "%s", row->shape);
        snprintf(p.kernel, sizeof p.kernel, "%s", e[i].op);
        p.share = wall > 0 ? p.ms / wall : NAN;
        const bench_work *w = work_of(e[i].op, work, nwork);
        if (w && p.ms > 0) {
            const double scale = w->per_call ? p.calls : 1;
            if (w->flops > 0) p.gflops = scale * w->flops / (p.ms / 1e3) / 1e9;
            if (w->bytes > 0) p.gbps = scale * w->bytes / (p.ms / 1e3) / 1e9;
        }
        p.of_sgemm = p.gflops / o->sgemm_gflops;
        sum += p.ms;
        char gf[16] = "-", gb[16] = "-", of[16] = "-";
        if (isfinite(p.gflops)) snprintf(gf, sizeof gf, "%.2f", p.gflops);
        if (isfinite(p.gbps)) snprintf(gb, sizeof gb, "%.2f", p.gbps);
        if (isfinite(p.of_sgemm)) snprintf(of, sizeof of, "%.1f%%", 100 * p.of_sgemm);
        printf("    %-32s %8.2f %11.3f %11.4f %6.1f%% %9s %8s %9s\n", p.kernel, p.calls, p.ms, p.mean_ms, 100 * p.share,
               gf, gb, of);
        if (o->profile_csv) {
            fprintf(o->profile_csv, "%s,%s,%s,\"%s\",\"%s\",%.2f,%.5f,%.5f,%.4f,", o->bench, p.device, p.op, p.shape,
                    p.kernel, p.calls, p.ms, p.mean_ms, p.share);
            csv_num(o->profile_csv, p.gflops, "%.3f");
            fputc(',', o->profile_csv);
            csv_num(o->profile_csv, p.gbps, "%.3f");
            fputc(',', o->profile_csv);
            csv_num(o->profile_csv, p.of_sgemm, "%.4f");
            fputc('\n', o->profile_csv);
        }
        if (grow(&o->prof, &o->capprof, o->nprof, sizeof *o->prof)) o->prof[o->nprof++] = p;
        else o->failed = true;
    }
    const double cover = wall > 0 ? sum / wall : 0;
    printf("    %-32s %8s %11.3f %11s %6.1f%% of the wall time%s\n", "sum", "", sum, "", 100 * cover,
           cover >= 0.9 && cover <= 1.1 ? "" : " (outside 90-110%: see the gap below)");
    if (cover < 0.9)
        printf("    gap %.3f ms per run: host work outside the profiled ops (argument checks, host-side\n"
               "    Philox, allocation), launch and synchronisation latency%s\n",
               wall - sum, !strcmp(row->device, "cpu") ? "" : ", CLBlast's helper kernels (only its last event is timed)");
    else if (cover > 1.1)
        printf("    the profile exceeds the wall time by %.3f ms per run: profiled ops overlap or nest\n", sum - wall);
    return RF_OK;
}

rf_status bench_report(bench_out *o, rf_device *dev, const rf_device_info *info, bench_row *row,
                       const bench_result *r, const bench_work *work, int nwork) {
    snprintf(row->device, sizeof row->device, "%s", info->id);
    row->ms = r->ms;
    row->base_bytes = r->base_bytes;
    row->peak_bytes = r->peak_bytes;
    const double tokens = (double)(row->batch * row->length), tok_s = tokens / (r->ms / 1e3);
    const double gflops = row->flops > 0 ? row->flops / (r->ms / 1e3) / 1e9 : NAN;
    char gf[16] = "-";
    if (isfinite(gflops)) snprintf(gf, sizeof gf, "%.2f", gflops);
    char rss[16] = "-";
    if (row->rss_bytes) snprintf(rss, sizeof rss, "%.1f", (double)row->rss_bytes / 1048576.0);
    printf("%-8s %-10s %-40s %11.3f %12.0f %9s %10.2f %9s\n", row->device, row->op, row->shape, r->ms, tok_s, gf,
           (double)r->peak_bytes / 1048576.0, rss);
    if (o->csv) {
        fprintf(o->csv, "%s,%s,%s,\"%s\",%lld,%lld,%.0f,%.5f,%.1f,", o->bench, row->device, row->op, row->shape,
                (long long)row->batch, (long long)row->length, tokens, r->ms, tok_s);
        csv_num(o->csv, gflops, "%.4f");
        fprintf(o->csv, ",%zu,%zu,%zu\n", r->base_bytes, r->peak_bytes, row->rss_bytes);
    }
    if (grow(&o->rows, &o->caprows, o->nrows, sizeof *o->rows)) o->rows[o->nrows++] = *row;
    else o->failed = true;
    rf_status s = o->profile ? report_profile(o, dev, row, r, work, nwork) : RF_OK;
    fflush(stdout);
    return s;
}

const bench_row *bench_find(const bench_out *o, const char *device, const char *op, int64_t length) {
    for (int i = 0; i < o->nrows; i++)
        if (!strcmp(o->rows[i].device, device) && !strcmp(o->rows[i].op, op) && o->rows[i].length == length)
            return &o->rows[i];
    return NULL;
}

void bench_ratio(bench_out *o, const char *what, double value, const char *fmt) {
    printf("  %s: ", what);
    printf(fmt, value);
    printf("\n");
    if (grow(&o->ratios, &o->capratios, o->nratios, sizeof *o->ratios)) {
        snprintf(o->ratios[o->nratios].what, sizeof o->ratios[0].what, "%s", what);
        o->ratios[o->nratios++].value = value;
    } else {
        o->failed = true;
    }
}

void bench_device_ratios(bench_out *o) {
    int printed = 0;
    for (int i = 0; i < o->nrows; i++) {
        const bench_row *d = &o->rows[i];
        if (!strcmp(d->device, "cpu")) continue;
        for (int j = 0; j < o->nrows; j++) {
            const bench_row *c = &o->rows[j];
            if (strcmp(c->device, "cpu") || strcmp(c->op, d->op) || strcmp(c->shape, d->shape)) continue;
            if (!printed++) printf("\nspeed of each device over the cpu reference (cpu time / device time):\n");
            char what[160];
            snprintf(what, sizeof what, "%s %s %s vs cpu", d->device, d->op, d->shape);
            bench_ratio(o, what, c->ms / d->ms, "%.2fx");
        }
    }
}

/* ---- JSON -------------------------------------------------------------- */

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", *s);
        else fputc(*s, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.6g", v);
    else fputs("null", f);
}

static int write_json(const bench_out *o) {
    FILE *f = open_out(o->json);
    if (!f) return 0;
    fprintf(f, "{\"bench\": ");
    json_str(f, o->bench);
    fprintf(f, ",\n \"rows\": [");
    for (int i = 0; i < o->nrows; i++) {
        const bench_row *r = &o->rows[i];
        const double tokens = (double)(r->batch * r->length);
        fprintf(f, "%s\n  {\"device\": ", i ? "," : "");
        json_str(f, r->device);
        fprintf(f, ", \"op\": ");
        json_str(f, r->op);
        fprintf(f, ", \"shape\": ");
        json_str(f, r->shape);
        fprintf(f, ", \"batch\": %lld, \"length\": %lld, \"tokens\": %.0f, \"time_ms\": ", (long long)r->batch,
                (long long)r->length, tokens);
        json_num(f, r->ms);
        fprintf(f, ", \"tokens_per_s\": ");
        json_num(f, tokens / (r->ms / 1e3));
        fprintf(f, ", \"gflops\": ");
        json_num(f, r->flops > 0 ? r->flops / (r->ms / 1e3) / 1e9 : NAN);
        fprintf(f, ", \"base_bytes\": %zu, \"peak_bytes\": %zu, \"rss_bytes\": %zu}", r->base_bytes, r->peak_bytes,
                r->rss_bytes);
    }
    fprintf(f, "],\n \"profile\": [");
    for (int i = 0; i < o->nprof; i++) {
        const profile_row *p = &o->prof[i];
        fprintf(f, "%s\n  {\"device\": ", i ? "," : "");
        json_str(f, p->device);
        fprintf(f, ", \"op\": ");
        json_str(f, p->op);
        fprintf(f, ", \"shape\": ");
        json_str(f, p->shape);
        fprintf(f, ", \"kernel\": ");
        json_str(f, p->kernel);
        const double v[] = {p->calls, p->ms, p->mean_ms, p->share, p->gflops, p->gbps, p->of_sgemm};
        static const char *const k[] = {"calls_per_run", "ms_per_run", "mean_ms", "share", "gflops", "gbps",
                                        "of_sgemm"};
        for (int j = 0; j < 7; j++) {
            fprintf(f, ", \"%s\": ", k[j]);
            json_num(f, v[j]);
        }
        fputc('}', f);
    }
    fprintf(f, "],\n \"ratios\": [");
    for (int i = 0; i < o->nratios; i++) {
        fprintf(f, "%s\n  {\"what\": ", i ? "," : "");
        json_str(f, o->ratios[i].what);
        fprintf(f, ", \"value\": ");
        json_num(f, o->ratios[i].value);
        fputc('}', f);
    }
    fprintf(f, "]}\n");
    return fclose(f) == 0;
}

int bench_out_close(bench_out *o, int rc) {
    if (!o) return rc;
    int ok = !o->failed;
    if (o->json && rc == RF_EXIT_OK) ok &= write_json(o);
    if (o->csv) ok &= fclose(o->csv) == 0;
    if (o->profile_csv) ok &= fclose(o->profile_csv) == 0;
    free(o->rows), free(o->prof), free(o->ratios), free(o);
    if (!ok && rc == RF_EXIT_OK) {
        fprintf(stderr, "reformer bench: writing the output failed\n");
        return RF_EXIT_FAIL;
    }
    return rc;
}
