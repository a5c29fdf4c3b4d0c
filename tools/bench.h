/* What every `reformer bench` case shares (§13): the common options,
 * the device list, warm-up + median timing, one row format written to the
 * terminal, CSV and JSON, the per-kernel profile table with its check
 * against the wall time, and ratios measured within one run. */
#ifndef RF_BENCH_H
#define RF_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include "cli.h"

enum { BENCH_MIN_RUNS = 5, BENCH_MAX_RUNS = 64, BENCH_MAX_DEVICES = 16 };

/* Options every benchmark takes. */
typedef struct bench_common {
    const char *devices[BENCH_MAX_DEVICES]; /* --device (repeatable); none: $RF_DEVICE or auto */
    int ndevices;
    bool all;                               /* --all: cpu and every OpenCL device */
    int runs;                               /* timed runs after the warm-up */
    bool profile;                           /* print the per-kernel table of every case */
    const char *csv, *json, *profile_csv;   /* output files, or NULL */
} bench_common;

/* The help lines for the common options. */
extern const char bench_common_help[];

void bench_common_init(bench_common *c);
/* Take argv[*i] if it is a common option (advancing *i past its value):
 * 1 taken, 0 not a common option, -1 a bad or missing value (printed). */
int bench_common_arg(bench_common *c, int argc, char **argv, int *i);
/* Integers in [lo, hi] through the strict parser (cli.h): "a,b,c" into out
 * (at most cap <= 64; the count), or one; -1 after printing
 * "reformer CMD: OPT: ...". */
int bench_parse_list(const char *cmd, const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out, int cap);
int bench_parse_int(const char *cmd, const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *v);
/* Print "reformer bench NAME: unknown option ..." and return RF_EXIT_USAGE. */
int bench_usage_error(const char *name, const char *arg);

/* Warm-up, then the median of `runs` runs of fn(ctx), device synchronised.
 * The profile and the peak are reset before the timed runs, so afterwards
 * the device profile holds exactly these runs. */
typedef rf_status (*bench_fn)(void *ctx);
typedef struct bench_result {
    double ms;          /* median wall time of one run */
    double total_ms;    /* wall time of all timed runs */
    int runs;
    size_t base_bytes;  /* device bytes alive before the case ran (inputs, weights) */
    size_t peak_bytes;  /* peak device bytes during the timed runs */
} bench_result;
rf_status bench_measure(rf_device *dev, int runs, bench_fn fn, void *ctx, bench_result *r);
/* Fill an f32 tensor with uniform values in [-1, 1) from a xorshift of
 * `seed` (not 0). */
rf_status bench_upload_random(rf_tensor *t, uint64_t seed);
/* The median of x[0..n), n ≥ 1 (sorts x). */
double bench_median(double *x, int n);
/* A monotonic clock in milliseconds. */
double bench_now_ms(void);

/* The work one run of a case does in one profiled op: flops and the bytes
 * it must move (each input read once, each output written once); 0 when
 * not modelled. `op` matches a profile name exactly or up to " (", so
 * "gemm" covers the cpu's "gemm" and OpenCL's "gemm (clblast)". */
typedef struct bench_work {
    const char *op;
    double flops, bytes;
    bool per_call;      /* flops and bytes are per call of the op, not per run */
} bench_work;

/* The device's SGEMM rate in GFLOP/s: rf_gemm at m = n = k = 1024, median
 * of 5 after a warm-up (bench_gemm.c). The profile prints every kernel's
 * rate as a fraction of it. Resets the device profile. */
rf_status bench_sgemm_rate(rf_device *dev, double *gflops);

/* One row: a case on a device. */
typedef struct bench_row {
    char device[32];
    char op[32];        /* "lsh R=4", "full", "gemm", "forward" (a phase of the model) ... */
    char shape[96];
    int64_t batch, length;  /* tokens = batch·length (gemm: the m rows) */
    double ms, flops;       /* flops 0: unknown */
    size_t base_bytes, peak_bytes;
    size_t rss_bytes;       /* the case's process's peak RSS (bench model --config); 0: not measured */
} bench_row;

typedef struct bench_out bench_out;
/* Opens the CSV/JSON/profile files of c and prints the table header. */
int bench_out_open(bench_out **o, const bench_common *c, const char *bench);
/* Print and record a row (row->device is set from info), and, when
 * profiling, the per-kernel table of the runs just measured on dev. */
rf_status bench_report(bench_out *o, rf_device *dev, const rf_device_info *info, bench_row *row,
                       const bench_result *r, const bench_work *work, int nwork);
/* The recorded row of (device, op, length), or NULL. */
const bench_row *bench_find(const bench_out *o, const char *device, const char *op, int64_t length);
/* Print "  what: value" (fmt of the value, e.g. "%.2fx") and keep it for JSON. */
void bench_ratio(bench_out *o, const char *what, double value, const char *fmt);
/* Every row on another device over the same case on cpu: cpu time / time. */
void bench_device_ratios(bench_out *o);
/* Write the JSON (rows, profile, ratios), close the files; the exit status
 * `rc` or a failure to write. Frees o. */
int bench_out_close(bench_out *o, int rc);

/* Open every device of c in turn (--all: cpu and every OpenCL device;
 * else each --device, or the default) and run fn on it; the ids of the
 * devices that finished go to done (BENCH_MAX_DEVICES). An exit status. */
/* The devices of c as names for rf_device_open (NULL: $RF_DEVICE or
 * auto); ids holds the storage of --all's names. An exit status. */
int bench_device_names(const bench_common *c, char ids[][32], const char **names, int *n);
typedef rf_status (*bench_device_fn)(bench_out *out, rf_device *dev, const rf_device_info *info, void *ctx);
int bench_each_device(bench_out *out, const bench_common *c, bench_device_fn fn, void *ctx, char done[][32],
                      int *ndone);

/* The benchmarks (cmd_bench.c, bench_gemm.c, bench_model.c, bench_dist.c, bench_config.c,
 * bench_decode.c). */
int bench_attention(int argc, char **argv);
int bench_gemm(int argc, char **argv);
int bench_model(int argc, char **argv);
int bench_dp(int argc, char **argv);
int bench_decode(int argc, char **argv);
/* bench model --config FILE (bench_config.c). */
int bench_model_config(int argc, char **argv);

#endif
