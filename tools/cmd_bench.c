/* `reformer bench`: the dispatcher, and `bench attention`, LSH
 * self-attention against full attention following the paper's Fig. 5
 * protocol (§13): the number of tokens B·L is fixed, L grows, LSH with
 * R = 1, 2, 4, 8 hash rounds, forward only. Timing, rows, profile and
 * ratios are bench.c's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"

#define MAX_LIST 32

typedef struct {
    bench_common c;
    int64_t tokens;
    int64_t lengths[MAX_LIST];
    int nlengths;
    int hashes[MAX_LIST];
    int nhashes;
    int heads, head_dim, chunk;
    int64_t full_max; /* full attention only up to this L (O(L²) time) */
    bool causal;
} attn_opts;

static void help(void) {
    printf("usage: reformer bench attention|gemm|model|decode|dp [options]   ('reformer bench NAME --help')\n\n"
           "  attention  LSH vs full self-attention, forward, as the Reformer paper's Fig. 5\n"
           "  gemm       rf_gemm on each device (OpenCL: CLBlast, or host BLAS on CPU-type\n"
           "             devices; cpu: OpenBLAS), GFLOP/s\n"
           "  model      the model's phases: tokens/s and peak memory vs layers, or of an HF\n"
           "             config.json (--config) against HF transformers (--against-hf)\n"
           "  decode     cached incremental generation vs recomputing, per-token time\n"
           "  dp         data-parallel training over MPI, 1 and 2 ranks: tokens/s, all-reduce share\n\n"
           "Every benchmark warms up once, then reports the median of --runs (at least 5)\n"
           "timed runs, one row per case: device, op, shape, time, tokens/s, achieved\n"
           "GFLOP/s (where the work is known), peak device memory. Ratios (LSH vs full,\n"
           "device vs cpu) are computed from rows of the same run and printed at the end.\n\n"
           "Options every benchmark takes:\n%s",
           bench_common_help);
}

static void help_attention(void) {
    printf("usage: reformer bench attention [--device NAME]... [--all] [--runs N] [--csv FILE]\n"
           "                                [--json FILE] [--profile] [--profile-csv FILE]\n"
           "                                [--tokens N] [--lengths L1,L2,...] [--hashes R1,R2,...]\n"
           "                                [--heads H] [--head-dim D] [--chunk M] [--full-max L]\n"
           "                                [--no-causal]\n\n"
           "LSH self-attention (forward) against full attention, as the Reformer paper's\n"
           "Fig. 5: B·L = --tokens is fixed (default 65536) while L grows (default 1024 ...\n"
           "65536, powers of two up to --tokens); LSH with --hashes rounds (default\n"
           "1,2,4,8), chunk M (default 64), automatic bucket count; full shared-QK\n"
           "attention up to --full-max (default 16384; its time grows as L²). H heads of\n"
           "width D (defaults 1 and 64), causal unless --no-causal.\n\n%s\n"
           "GFLOP/s counts the dense work: LSH 2·B·L·H·d·R·nb/2 (rotations) + 4·B·H·R·L·2m·d\n"
           "(each query against its chunk and the previous one), full 4·B·H·L²·d (the causal\n"
           "mask's skipped half included). The summary gives per device the LSH time per\n"
           "token at the longest L over the shortest, full attention's time over LSH's (R=4)\n"
           "at each L with both, and every device's speed over the cpu reference.\n",
           bench_common_help);
}

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

/* One LSH case: the row and the work of each stage per run (bench.h). */
static rf_status lsh_case(bench_out *out, rf_device *dev, const rf_device_info *info, const attn_opts *o, attn_case *c,
                          int R, int64_t B, int64_t L) {
    c->cfg = (rf_lsh_config){.n_heads = o->heads, .head_dim = o->head_dim, .n_hashes = R, .chunk_len = o->chunk,
                             .causal = o->causal, .seed = 1, .layer = 0};
    rf_status s = rf_lsh_state_init(&c->st, dev, &c->cfg, B, L);
    if (s) return s;
    bench_result r;
    s = bench_measure(dev, o->c.runs, run_lsh, c, &r);
    const rf_lsh_state *st = &c->st;
    const double H = o->heads, d = o->head_dim, BL = (double)(B * L), rounds = st->n_rounds;
    const double rc = st->full ? 0 : st->rot_cols, keys = st->full ? (double)L : 2.0 * st->chunk_len;
    const double items = B * H * rounds * (double)L; /* hashed copies: [B, H, R·L] */
    const double rot_flops = 2.0 * BL * H * d * rounds * rc, attend_flops = 4.0 * items * keys * d;
    const bench_work work[] = {
        {"gemm", rot_flops, 4 * (BL * H * d + H * d * rounds * rc + H * BL * rounds * rc), false},
        {"upload", 0, 4 * H * d * rounds * rc, false}, /* the rotations, drawn on the host (§2) */
        {"lsh_buckets", 0, 4 * (H * BL * rounds * rc + items), false},
        {"lsh_sort", 0, 4 * 3 * items, false},
        {"lsh_attend", attend_flops, 4 * items * (3 * d + 2), false}, /* qk, v gathered per round, perm; o, lse */
        {"lsh_combine", 2 * items * d, 4 * (items * (d + 2) + BL * H * d), false},
    };
    bench_row row = {.batch = B, .length = L, .flops = rot_flops + attend_flops};
    snprintf(row.op, sizeof row.op, "lsh R=%d", R);
    snprintf(row.shape, sizeof row.shape, "B=%lld L=%lld H=%d d=%d m=%d nb=%d", (long long)B, (long long)L, o->heads,
             o->head_dim, st->chunk_len, st->n_buckets);
    if (s == RF_OK) s = bench_report(out, dev, info, &row, &r, work, (int)(sizeof work / sizeof work[0]));
    rf_lsh_state_free(&c->st);
    return s;
}

static rf_status full_case(bench_out *out, rf_device *dev, const rf_device_info *info, const attn_opts *o,
                           attn_case *c, int64_t B, int64_t L) {
    c->acfg = (rf_attention_config){.n_heads = o->heads, .head_dim = o->head_dim, .causal = o->causal,
                                    .shared_qk = true};
    bench_result r;
    rf_status s = bench_measure(dev, o->c.runs, run_full, c, &r);
    if (s) return s;
    const double H = o->heads, d = o->head_dim, BLHd = (double)(B * L) * H * d;
    const double flops = 4.0 * B * H * (double)L * (double)L * d;
    const bench_work work[] = {
        {"full_attention_forward", flops, 4 * 3 * BLHd, false}, /* cpu: the whole op */
        {"attention_forward", flops, 4 * 4 * BLHd, false},      /* OpenCL: q, normalised k, v; out */
        {"attention_normalise_keys", 3 * BLHd, 4 * 2 * BLHd, false},
    };
    bench_row row = {.batch = B, .length = L, .flops = flops};
    snprintf(row.op, sizeof row.op, "full");
    snprintf(row.shape, sizeof row.shape, "B=%lld L=%lld H=%d d=%d", (long long)B, (long long)L, o->heads,
             o->head_dim);
    return bench_report(out, dev, info, &row, &r, work, (int)(sizeof work / sizeof work[0]));
}

/* Every case on one device. */
static rf_status attention_device(bench_out *out, rf_device *dev, const rf_device_info *info, void *ctx) {
    const attn_opts *o = ctx;
    const int64_t D = (int64_t)o->heads * o->head_dim;
    rf_status s = RF_OK;
    for (int li = 0; li < o->nlengths && s == RF_OK; li++) {
        const int64_t L = o->lengths[li], B = o->tokens / L > 0 ? o->tokens / L : 1;
        const size_t n = (size_t)(B * L * D);
        float *host = malloc(n * sizeof *host);
        if (!host) return RF_ERR_OUT_OF_MEMORY;
        rf_tensor qk = {0}, v = {0}, res = {0};
        const int64_t shape[3] = {B, L, D};
        uint64_t x = 0x9e3779b97f4a7c15ull ^ (uint64_t)L;
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            host[i] = (float)(x >> 40) / 16777216.0f * 2 - 1;
        }
        if (!(s = rf_tensor_alloc(dev, &qk, RF_F32, 3, shape)) && !(s = rf_tensor_alloc(dev, &v, RF_F32, 3, shape)) &&
            !(s = rf_tensor_alloc(dev, &res, RF_F32, 3, shape)) && !(s = rf_tensor_upload(&qk, host, n * 4)))
            s = rf_tensor_upload(&v, host, n * 4);
        free(host);
        attn_case c = {.out = &res, .qk = &qk, .v = &v};
        for (int hi = 0; s == RF_OK && hi < o->nhashes; hi++) s = lsh_case(out, dev, info, o, &c, o->hashes[hi], B, L);
        if (s == RF_OK && L <= o->full_max) s = full_case(out, dev, info, o, &c, B, L); /* the O(L²) baseline (§6) */
        rf_tensor_free(&qk), rf_tensor_free(&v), rf_tensor_free(&res);
    }
    return s;
}

static void attention_summary(bench_out *out, const attn_opts *o, const char *dev) {
    const int64_t lo = o->lengths[0], hi = o->lengths[o->nlengths - 1];
    char what[160], op[32];
    printf("\n%s: LSH time per token at L = %lld over L = %lld (Fig. 5: flat for LSH):\n", dev, (long long)hi,
           (long long)lo);
    for (int i = 0; i < o->nhashes; i++) {
        snprintf(op, sizeof op, "lsh R=%d", o->hashes[i]);
        const bench_row *a = bench_find(out, dev, op, lo), *b = bench_find(out, dev, op, hi);
        if (!a || !b || a == b) continue;
        snprintf(what, sizeof what, "%s %s per-token time L=%lld / L=%lld", dev, op, (long long)hi, (long long)lo);
        bench_ratio(out, what, (b->ms / (double)(b->batch * b->length)) / (a->ms / (double)(a->batch * a->length)),
                    "%.2fx");
    }
    int ref = o->hashes[0];
    for (int i = 0; i < o->nhashes; i++)
        if (o->hashes[i] == 4) ref = 4;
    snprintf(op, sizeof op, "lsh R=%d", ref);
    printf("%s: full attention time over LSH (R=%d):\n", dev, ref);
    for (int li = 0; li < o->nlengths; li++) {
        const bench_row *f = bench_find(out, dev, "full", o->lengths[li]), *l = bench_find(out, dev, op, o->lengths[li]);
        if (!f || !l) continue;
        snprintf(what, sizeof what, "%s full / %s at L=%lld", dev, op, (long long)o->lengths[li]);
        bench_ratio(out, what, f->ms / l->ms, "%.2fx");
    }
}

int bench_attention(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        help_attention();
        return RF_EXIT_OK;
    }
    attn_opts o = {.tokens = 65536, .heads = 1, .head_dim = 64, .chunk = 64, .full_max = 16384, .causal = true};
    bench_common_init(&o.c);
    int have_lengths = 0;
    o.nhashes = 4;
    for (int i = 0; i < 4; i++) o.hashes[i] = 1 << i;
    for (int i = 1; i < argc; i++) {
        int taken = bench_common_arg(&o.c, argc, argv, &i);
        if (taken < 0) return RF_EXIT_USAGE;
        if (taken) continue;
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-causal")) {
            o.causal = false;
            continue;
        }
        /* Integer options and their ranges; two lists. */
        static const struct {
            const char *name;
            int64_t lo, hi;
        } ints[] = {{"--tokens", 1, 1ll << 40}, {"--heads", 1, 1024}, {"--head-dim", 1, 4096}, {"--chunk", 1, 65536},
                    {"--full-max", 1, 1ll << 40}, {"--lengths", 1, 1ll << 40}, {"--hashes", 1, 64}};
        int k = 0;
        while (k < 7 && strcmp(a, ints[k].name)) k++;
        if (k == 7) return bench_usage_error("attention", a);
        i++;
        const char *C = "bench attention";
        int64_t tmp[MAX_LIST], v = 0;
        if (k == 5) {
            if ((o.nlengths = bench_parse_list(C, a, val, ints[k].lo, ints[k].hi, o.lengths, MAX_LIST)) < 0)
                return RF_EXIT_USAGE;
            have_lengths = 1;
            continue;
        }
        if (k == 6) {
            int n = bench_parse_list(C, a, val, ints[k].lo, ints[k].hi, tmp, MAX_LIST);
            if (n < 0) return RF_EXIT_USAGE;
            for (int j = 0; j < n; j++) o.hashes[j] = (int)tmp[j];
            o.nhashes = n;
            continue;
        }
        if (bench_parse_int(C, a, val, ints[k].lo, ints[k].hi, &v)) return RF_EXIT_USAGE;
        switch (k) {
        case 0: o.tokens = v; break;
        case 1: o.heads = (int)v; break;
        case 2: o.head_dim = (int)v; break;
        case 3: o.chunk = (int)v; break;
        default: o.full_max = v; break;
        }
    }
    if (!have_lengths) {
        o.nlengths = 0;
        for (int64_t L = 1024; L <= 65536 && L <= o.tokens && o.nlengths < MAX_LIST; L *= 2) o.lengths[o.nlengths++] = L;
        if (!o.nlengths) o.lengths[o.nlengths++] = o.tokens;
    }
    if (cli_dry_run) return RF_EXIT_OK;
    bench_out *out;
    char done[BENCH_MAX_DEVICES][32];
    int ndone = 0, rc = bench_out_open(&out, &o.c, "attention");
    if (rc) return rc;
    rc = bench_each_device(out, &o.c, attention_device, &o, done, &ndone);
    if (rc == RF_EXIT_OK) {
        for (int i = 0; i < ndone; i++) attention_summary(out, &o, done[i]);
        bench_device_ratios(out);
    }
    return bench_out_close(out, rc);
}

int cmd_bench(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        help();
        return argc < 2 ? RF_EXIT_USAGE : RF_EXIT_OK;
    }
    if (!strcmp(argv[1], "attention")) return bench_attention(argc - 1, argv + 1);
    if (!strcmp(argv[1], "gemm")) return bench_gemm(argc - 1, argv + 1);
    if (!strcmp(argv[1], "model")) return bench_model(argc - 1, argv + 1);
    if (!strcmp(argv[1], "decode")) return bench_decode(argc - 1, argv + 1);
    if (!strcmp(argv[1], "dp")) return bench_dp(argc - 1, argv + 1);
    fprintf(stderr, "reformer bench: unknown benchmark '%s' (known: attention, gemm, model, decode, dp)\n", argv[1]);
    return RF_EXIT_USAGE;
}
