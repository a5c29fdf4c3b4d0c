/* `reformer bench attention`: LSH self-attention against full attention
 * following the paper's Fig. 5 protocol (SPEC §13): the number of tokens
 * B·L is fixed, L grows, LSH with R = 1, 2, 4, 8 hash rounds, forward only.
 * Each case warms up once, then takes the median of at least 5 runs (wall
 * clock, device synchronised). One row per case: device, op, shape, time,
 * tokens/s, GFLOP/s (estimated), peak device memory; ratios at the end. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli.h"

#define MAX_LIST 32
#define MAX_DEVICES 16
#define MIN_RUNS 5

typedef struct {
    int64_t tokens;
    int64_t lengths[MAX_LIST];
    int nlengths;
    int hashes[MAX_LIST];
    int nhashes;
    int heads, head_dim, chunk, runs;
    int64_t full_max; /* full attention only up to this L (O(L²) time) */
    bool causal;
    bool profile;     /* print each case's per-kernel device times */
    FILE *csv;
} bench_opts;

typedef struct {
    double ms;          /* median */
    size_t peak_bytes;
} bench_result;

static void help(void) {
    printf("usage: reformer bench attention|model ...  ('reformer bench model --help' for the model)\n\n"
           "usage: reformer bench attention [--device NAME]... [--all] [--csv FILE] [--tokens N]\n"
           "                                [--lengths L1,L2,...] [--hashes R1,R2,...] [--heads H]\n"
           "                                [--head-dim D] [--chunk M] [--runs N] [--full-max L]\n"
           "                                [--no-causal] [--profile]\n\n"
           "LSH self-attention (forward) against full attention, as the Reformer paper's\n"
           "Fig. 5: B·L = --tokens is fixed (default 65536) while L grows (default 1024 ...\n"
           "65536, powers of two up to --tokens); LSH with --hashes rounds (default\n"
           "1,2,4,8), chunk M (default 64), automatic bucket count; full shared-QK\n"
           "attention up to --full-max (default 16384; its time grows as L²). H heads of\n"
           "width D (defaults 1 and 64), causal unless --no-causal. Each case: one\n"
           "warm-up, then the median of --runs (default and minimum 5) runs.\n\n"
           "  --device NAME   a device (repeatable; default $RF_DEVICE or auto)\n"
           "  --all           every OpenCL device\n"
           "  --csv FILE      also write the rows as CSV\n"
           "  --profile       print each case's time per kernel / op (device profile)\n\n"
           "Prints one row per case (device, op, B, L, time, tokens/s, GFLOP/s, peak device\n"
           "memory), then per device the LSH time per token at the longest L over the\n"
           "shortest, and full attention's time over LSH's (R = 4) at each L with both.\n");
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int parse_list(const char *s, int64_t *out, int cap) {
    int n = 0;
    while (*s) {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (end == s || errno || v <= 0 || n == cap) return -1;
        out[n++] = v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return n;
}

static int parse_int(const char *s, int64_t *v) {
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (end == s || *end || errno || x <= 0) return -1;
    *v = x;
    return 0;
}

/* Warm-up, then the median of o->runs runs of fn(ctx). */
typedef rf_status (*bench_fn)(void *ctx);
static rf_status measure(rf_device *dev, const bench_opts *o, bench_fn fn, void *ctx, bench_result *res) {
    double times[64];
    rf_status s;
    if ((s = rf_device_reset_peak(dev)) || (s = fn(ctx)) || (s = rf_device_sync(dev)) ||
        (s = rf_device_profile_reset(dev)))
        return s;
    for (int i = 0; i < o->runs; i++) {
        double t0 = now_ms();
        if ((s = fn(ctx)) || (s = rf_device_sync(dev))) return s;
        times[i] = now_ms() - t0;
    }
    qsort(times, (size_t)o->runs, sizeof times[0], cmp_double);
    res->ms = o->runs % 2 ? times[o->runs / 2] : 0.5 * (times[o->runs / 2 - 1] + times[o->runs / 2]);
    rf_memory_stats m;
    if ((s = rf_device_memory(dev, &m))) return s;
    res->peak_bytes = m.peak_bytes;
    if (o->profile) {
        rf_profile_entry e[16];
        int count = 0;
        if ((s = rf_device_profile(dev, e, 16, &count))) return s;
        for (int i = 0; i < count && i < 16; i++)
            printf("    profile: %-24s %6llu calls %10.2f ms per run\n", e[i].op, (unsigned long long)e[i].calls,
                   e[i].total_ms / o->runs);
    }
    return RF_OK;
}

/* ---- cases -------------------------------------------------------------- */

typedef struct {
    rf_tensor *out, *qk, *v;
    rf_lsh_state st;
    rf_lsh_config cfg;
    rf_attention_config acfg;
} attn_case;

static rf_status run_lsh(void *p) {
    attn_case *c = p;
    return rf_lsh_attention_forward(c->out, &c->st, c->qk, c->v, NULL, NULL, &c->cfg);
}

static rf_status run_full(void *p) {
    attn_case *c = p;
    return rf_full_attention_forward(c->out, NULL, c->qk, NULL, c->v, NULL, &c->acfg);
}

typedef struct {
    char device[32];
    int hashes;          /* 0: full attention */
    int64_t length;
    double ms_per_token;
} summary_row;

static void print_row(const bench_opts *o, const rf_device_info *info, const char *op, int64_t B, int64_t L,
                      int R, int nb, double flops, const bench_result *r) {
    double tok_s = (double)(B * L) / (r->ms / 1e3), gflops = flops / (r->ms / 1e3) / 1e9;
    printf("%-8s %-10s %6lld %7lld %3d %4d %4d %3d %6d %11.2f %12.0f %9.2f %10.1f\n", info->id, op, (long long)B,
           (long long)L, o->heads, o->head_dim, o->chunk, R, nb, r->ms, tok_s, gflops,
           r->peak_bytes / 1048576.0);
    if (o->csv)
        fprintf(o->csv, "%s,\"%s\",%s,%lld,%lld,%d,%d,%d,%d,%d,%.4f,%.1f,%.4f,%zu\n", info->id, info->name, op,
                (long long)B, (long long)L, o->heads, o->head_dim, o->chunk, R, nb, r->ms, tok_s, gflops,
                r->peak_bytes);
}

/* Every case on one device; appends to rows. Returns an exit status. */
static int bench_device(rf_device *dev, const bench_opts *o, summary_row *rows, int *nrows, int cap) {
    rf_device_info info;
    rf_status s = rf_device_get_info(dev, &info);
    if (s) return cli_fail("bench", s);
    const int64_t D = (int64_t)o->heads * o->head_dim;
    for (int li = 0; li < o->nlengths; li++) {
        const int64_t L = o->lengths[li], B = o->tokens / L > 0 ? o->tokens / L : 1;
        const size_t n = (size_t)(B * L * D);
        float *host = malloc(n * sizeof *host);
        if (!host) {
            fprintf(stderr, "reformer bench: no host memory for %zu inputs\n", n);
            return RF_EXIT_FAIL;
        }
        rf_tensor qk = {0}, v = {0}, out = {0};
        const int64_t shape[3] = {B, L, D};
        uint64_t x = 0x9e3779b97f4a7c15ull ^ (uint64_t)L;
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            host[i] = (float)(x >> 40) / 16777216.0f * 2 - 1;
        }
        if (!(s = rf_tensor_alloc(dev, &qk, RF_F32, 3, shape)) && !(s = rf_tensor_alloc(dev, &v, RF_F32, 3, shape)) &&
            !(s = rf_tensor_alloc(dev, &out, RF_F32, 3, shape)) && !(s = rf_tensor_upload(&qk, host, n * 4)))
            s = rf_tensor_upload(&v, host, n * 4);
        free(host);
        for (int hi = 0; s == RF_OK && hi <= o->nhashes; hi++) {
            attn_case c = {.out = &out, .qk = &qk, .v = &v};
            bench_result r;
            if (hi == o->nhashes) { /* full attention last: the O(L²) baseline (§6) */
                if (L > o->full_max) break;
                c.acfg = (rf_attention_config){.n_heads = o->heads, .head_dim = o->head_dim, .causal = o->causal,
                                               .shared_qk = true};
                if ((s = measure(dev, o, run_full, &c, &r))) break;
                print_row(o, &info, "full", B, L, 0, 0, 4.0 * B * o->heads * (double)L * L * o->head_dim, &r);
            } else {
                const int R = o->hashes[hi];
                c.cfg = (rf_lsh_config){.n_heads = o->heads, .head_dim = o->head_dim, .n_hashes = R,
                                        .chunk_len = o->chunk, .causal = o->causal, .seed = 1, .layer = 0};
                if ((s = rf_lsh_state_init(&c.st, dev, &c.cfg, B, L))) break;
                s = measure(dev, o, run_lsh, &c, &r);
                const int nb = c.st.n_buckets, rc = c.st.rot_cols, m = c.st.chunk_len;
                const double keys = c.st.full ? (double)L : 2.0 * m;
                const double flops = 2.0 * B * L * D * c.st.n_rounds * rc + 4.0 * B * D * c.st.n_rounds * L * keys;
                rf_lsh_state_free(&c.st);
                if (s) break;
                char op[16];
                snprintf(op, sizeof op, "lsh R=%d", R);
                print_row(o, &info, op, B, L, R, nb, flops, &r);
            }
            fflush(stdout);
            if (*nrows < cap) {
                summary_row *row = &rows[(*nrows)++];
                snprintf(row->device, sizeof row->device, "%s", info.id);
                row->hashes = hi == o->nhashes ? 0 : o->hashes[hi];
                row->length = L;
                row->ms_per_token = r.ms / (double)(B * L);
            }
        }
        rf_tensor_free(&qk), rf_tensor_free(&v), rf_tensor_free(&out);
        if (s) return cli_fail("bench", s);
    }
    return RF_EXIT_OK;
}

static const summary_row *find(const summary_row *rows, int n, const char *dev, int hashes, int64_t L) {
    for (int i = 0; i < n; i++)
        if (!strcmp(rows[i].device, dev) && rows[i].hashes == hashes && rows[i].length == L) return &rows[i];
    return NULL;
}

static void summarise(const bench_opts *o, const summary_row *rows, int n, const char *dev) {
    const int64_t lo = o->lengths[0], hi = o->lengths[o->nlengths - 1];
    printf("\n%s: LSH time per token at L = %lld over L = %lld:", dev, (long long)hi, (long long)lo);
    for (int i = 0; i < o->nhashes; i++) {
        const summary_row *a = find(rows, n, dev, o->hashes[i], lo), *b = find(rows, n, dev, o->hashes[i], hi);
        if (a && b) printf("  R=%d %.2fx", o->hashes[i], b->ms_per_token / a->ms_per_token);
    }
    printf("\n%s: full attention time over LSH (R=4):", dev);
    for (int li = 0; li < o->nlengths; li++) {
        const summary_row *f = find(rows, n, dev, 0, o->lengths[li]), *l = find(rows, n, dev, 4, o->lengths[li]);
        if (f && l) printf("  L=%lld %.2fx", (long long)o->lengths[li], f->ms_per_token / l->ms_per_token);
    }
    printf("\n");
}

static int bench_attention(int argc, char **argv) {
    bench_opts o = {.tokens = 65536, .heads = 1, .head_dim = 64, .chunk = 64, .runs = MIN_RUNS, .full_max = 16384,
                    .causal = true};
    const char *devices[MAX_DEVICES], *csv = NULL;
    int ndevices = 0, all = 0, have_lengths = 0;
    o.nhashes = 4;
    for (int i = 0; i < 4; i++) o.hashes[i] = 1 << i;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t tmp[MAX_LIST], v = 0;
        int bad = 0;
        if (!strcmp(a, "--all")) {
            all = 1;
            continue;
        }
        if (!strcmp(a, "--no-causal")) {
            o.causal = false;
            continue;
        }
        if (!strcmp(a, "--profile")) {
            o.profile = true;
            continue;
        }
        if (!val) {
            fprintf(stderr, "reformer bench: unknown option or missing value '%s' (see --help)\n", a);
            return RF_EXIT_USAGE;
        }
        i++;
        if (!strcmp(a, "--device")) {
            if (ndevices == MAX_DEVICES) bad = 1;
            else devices[ndevices++] = val;
        } else if (!strcmp(a, "--csv")) {
            csv = val;
        } else if (!strcmp(a, "--lengths")) {
            bad = (o.nlengths = parse_list(val, o.lengths, MAX_LIST)) <= 0;
            have_lengths = 1;
        } else if (!strcmp(a, "--hashes")) {
            int n = parse_list(val, tmp, MAX_LIST);
            bad = n <= 0;
            for (int k = 0; k < n; k++) bad |= tmp[k] > 64, o.hashes[k] = (int)tmp[k];
            o.nhashes = bad ? 0 : n;
        } else if (!parse_int(val, &v) && v <= (1ll << 40)) {
            if (!strcmp(a, "--tokens")) o.tokens = v;
            else if (!strcmp(a, "--heads") && v <= 1024) o.heads = (int)v;
            else if (!strcmp(a, "--head-dim") && v <= 4096) o.head_dim = (int)v;
            else if (!strcmp(a, "--chunk") && v <= 65536) o.chunk = (int)v;
            else if (!strcmp(a, "--runs") && v >= MIN_RUNS && v <= 64) o.runs = (int)v;
            else if (!strcmp(a, "--full-max")) o.full_max = v;
            else bad = 1;
        } else {
            bad = 1;
        }
        if (bad) {
            fprintf(stderr, "reformer bench: bad value '%s' for %s (see --help; --runs is %d to 64)\n", val, a, MIN_RUNS);
            return RF_EXIT_USAGE;
        }
    }
    if (!have_lengths) {
        o.nlengths = 0;
        for (int64_t L = 1024; L <= 65536 && L <= o.tokens && o.nlengths < MAX_LIST; L *= 2) o.lengths[o.nlengths++] = L;
        if (!o.nlengths) o.lengths[o.nlengths++] = o.tokens;
    }
    rf_status s;
    int n = 0;
    if ((s = rf_device_count(&n))) return cli_fail("bench", s);
    char ids[MAX_DEVICES][32];
    if (all) {
        ndevices = 0;
        for (int i = 1; i < n && ndevices < MAX_DEVICES; i++) {
            rf_device_info info;
            if ((s = rf_device_info_at(i, &info))) return cli_fail("bench", s);
            snprintf(ids[ndevices], sizeof ids[0], "%s", info.id);
            devices[ndevices] = ids[ndevices];
            ndevices++;
        }
        if (!ndevices) {
            fprintf(stderr, "reformer bench: no OpenCL device (--all)\n");
            return RF_EXIT_FAIL;
        }
    } else if (!ndevices) {
        devices[ndevices++] = NULL; /* $RF_DEVICE or auto */
    }
    if (csv && !(o.csv = fopen(csv, "w"))) {
        fprintf(stderr, "reformer bench: cannot write '%s': %s\n", csv, strerror(errno));
        return RF_EXIT_FAIL;
    }
    if (o.csv) fprintf(o.csv, "device,device_name,op,batch,length,heads,head_dim,chunk,hashes,buckets,time_ms,"
                              "tokens_per_s,gflops,peak_bytes\n");
    printf("%-8s %-10s %6s %7s %3s %4s %4s %3s %6s %11s %12s %9s %10s\n", "device", "op", "B", "L", "H", "d", "m", "R",
           "nb", "median ms", "tokens/s", "GFLOP/s", "peak MiB");
    enum { CAP = 1024 };
    summary_row *rows = calloc(CAP, sizeof *rows);
    int nrows = 0, rc = RF_EXIT_OK;
    for (int i = 0; i < ndevices && rc == RF_EXIT_OK && rows; i++) {
        rf_device *dev;
        if ((s = rf_device_open(&dev, devices[i]))) {
            rc = cli_fail("bench", s);
            break;
        }
        rf_device_info info;
        rf_device_get_info(dev, &info);
        if ((rc = bench_device(dev, &o, rows, &nrows, CAP)) == RF_EXIT_OK) summarise(&o, rows, nrows, info.id);
        rf_device_close(dev);
    }
    if (!rows) rc = RF_EXIT_FAIL;
    free(rows);
    if (o.csv && fclose(o.csv)) rc = RF_EXIT_FAIL;
    return rc;
}

int cmd_bench(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        help();
        return argc < 2 ? RF_EXIT_USAGE : RF_EXIT_OK;
    }
    if (!strcmp(argv[1], "attention")) {
        if (cli_wants_help(argc - 1, argv + 1)) {
            help();
            return RF_EXIT_OK;
        }
        return bench_attention(argc - 1, argv + 1);
    }
    if (!strcmp(argv[1], "model")) return bench_model(argc - 1, argv + 1);
    fprintf(stderr, "reformer bench: unknown benchmark '%s' (known: attention, model)\n", argv[1]);
    return RF_EXIT_USAGE;
}
