/* `reformer bench decode`: generation with the cached incremental decoder
 * (rf_model_decode_*, docs/decode.md) against recomputing the whole
 * sequence for every token, on the benchmark model: 6 layers (local, lsh)
 * ×3, hidden 256, 2 heads of 64, R = 2, chunks of 64, vocab 320, axial
 * positions (64, 64) × (64, 192) (4,096 positions), F 512, causal. Rows:
 * the prompt's pass, the per-token time of the first and last 32 steps
 * (medians), the whole cached generation, and the recomputing path timed at
 * --samples evenly spaced lengths (one forward pass each, after a warm-up),
 * its total over every step estimated by the trapezoidal rule over those
 * lengths — an extrapolation, printed as such. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"
#include "reformer/model.h"

#define MAX_SAMPLES 32
#define EDGE 32 /* steps in the first/last median */

typedef struct {
    bench_common c;
    int64_t prompt, generate, samples;
} decode_opts;

static void help(void) {
    printf("usage: reformer bench decode [--device NAME]... [--all] [--csv FILE] [--json FILE]\n"
           "                             [--prompt N] [--generate N] [--samples K]\n\n"
           "Generates --generate tokens (default 2048, greedy) after a --prompt-token prompt\n"
           "(default 1024) with the cached decoder, timing every step, and times the\n"
           "recomputing path (one forward pass over the whole sequence per token) at --samples\n"
           "lengths (default 8) spread over the same range, estimating its total by the\n"
           "trapezoidal rule. Model: 6 layers local/lsh, hidden 256, 2 heads of 64, 2 hash\n"
           "rounds, chunks of 64, vocab 320, axial positions (64,64)/(64,192).\n"
           "Summary: last/first per-token time, and recomputing total / cached total.\n\n"
           "  --device NAME      a device (repeatable; default $RF_DEVICE or auto)\n"
           "  --all              the cpu reference and every OpenCL device, side by side\n"
           "  --csv FILE         also write the rows as CSV\n"
           "  --json FILE        also write rows and ratios as JSON\n"
           "  --prompt N         prompt tokens (default 1024)\n"
           "  --generate N       tokens generated (default 2048)\n"
           "  --samples K        lengths the recomputing path is timed at (default 8)\n");
}

/* The median of n ≤ EDGE values (an insertion sort of a copy). */
static double median(const double *x, int n) {
    double t[EDGE];
    for (int i = 0; i < n; i++) {
        int j = i;
        for (; j > 0 && t[j - 1] > x[i]; j--) t[j] = t[j - 1];
        t[j] = x[i];
    }
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static rf_config bench_config(void) {
    rf_config c;
    rf_config_default(&c);
    c.num_layers = 6;
    for (int i = 0; i < 6; i++) c.attn_layers[i] = i % 2 ? RF_ATTN_LSH : RF_ATTN_LOCAL;
    c.num_attention_heads = 2, c.attention_head_size = 64, c.num_hashes = 2, c.is_decoder = true;
    c.hidden_dropout_prob = c.local_attention_probs_dropout_prob = c.lsh_attention_probs_dropout_prob = 0;
    return c;
}

static int argmax(const float *x, int64_t n) {
    int best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = (int)i;
    return best;
}

static rf_status report(bench_out *out, rf_device *dev, const rf_device_info *info, const char *op, int64_t length,
                        double ms) {
    rf_memory_stats mem;
    rf_status s = rf_device_memory(dev, &mem);
    if (s) return s;
    bench_row row = {.batch = 1, .length = length};
    snprintf(row.op, sizeof row.op, "%s", op);
    snprintf(row.shape, sizeof row.shape, "L=%lld", (long long)length);
    bench_result r = {.ms = ms, .total_ms = ms, .runs = 1, .base_bytes = mem.in_use_bytes, .peak_bytes = mem.peak_bytes};
    return bench_report(out, dev, info, &row, &r, NULL, 0);
}

static rf_status run_device(bench_out *out, rf_device *dev, const rf_device_info *info, void *ctx) {
    const decode_opts *o = ctx;
    rf_config c = bench_config();
    const int64_t V = c.vocab_size, L0 = o->prompt, N = o->generate, total = L0 + N;
    rf_model *m;
    rf_status s = rf_model_create(&m, dev, &c, 1);
    if (s) return s;
    int32_t *ids = malloc((size_t)total * sizeof *ids);
    float *row = malloc((size_t)V * sizeof *row);
    double *step_ms = malloc((size_t)N * sizeof *step_ms);
    rf_tensor logits = {0};
    rf_decoder *d = NULL;
    if (!ids || !row || !step_ms) s = RF_ERR_OUT_OF_MEMORY;
    for (int64_t i = 0; s == RF_OK && i < L0; i++) ids[i] = (int32_t)(2 + (i * 37) % (V - 2));
    if (s == RF_OK) s = rf_tensor_alloc(dev, &logits, RF_F32, 2, (int64_t[]){1, V});
    /* Cached: the prompt's pass, then one step per token (greedy; each step
     * reads its logits back, as sampling does, so it is synchronised). */
    double t0 = bench_now_ms(), prefill_ms = 0, cached_ms = 0;
    if (s == RF_OK) s = rf_model_decode_begin(&d, m, ids, 1, L0, total - 1, &logits);
    if (s == RF_OK) s = rf_tensor_download(&logits, row, (size_t)V * sizeof *row);
    prefill_ms = bench_now_ms() - t0;
    for (int64_t t = 0; s == RF_OK && t < N; t++) {
        ids[L0 + t] = argmax(row, V);
        if (t == N - 1) break;
        double a = bench_now_ms();
        s = rf_model_decode_step(d, &ids[L0 + t], &logits);
        if (s == RF_OK) s = rf_tensor_download(&logits, row, (size_t)V * sizeof *row);
        step_ms[t] = bench_now_ms() - a;
    }
    cached_ms = bench_now_ms() - t0;
    size_t state_bytes = 0;
    if (s == RF_OK) s = rf_model_decode_bytes(d, &state_bytes);
    rf_model_decode_end(d);
    const int steps = (int)(N - 1), edge = steps < EDGE ? steps : EDGE;
    double first = 0, last = 0;
    if (s == RF_OK && steps > 0) {
        first = median(step_ms, edge), last = median(step_ms + steps - edge, edge);
        s = report(out, dev, info, "prefill", L0, prefill_ms);
        if (s == RF_OK) s = report(out, dev, info, "step first", L0 + edge / 2, first);
        if (s == RF_OK) s = report(out, dev, info, "step last", total - edge / 2, last);
        if (s == RF_OK) s = report(out, dev, info, "cached all", total, cached_ms);
    }
    /* Recomputing: one forward pass at each sampled length (the first one
     * also warms up), the step at length L costing t(L). */
    double lens[MAX_SAMPLES], ms[MAX_SAMPLES];
    const int K = (int)o->samples;
    for (int k = -1; s == RF_OK && k < K; k++) {
        int64_t L = L0 + (K > 1 ? (k < 0 ? 0 : k) * (N - 1) / (K - 1) : 0);
        rf_tensor full;
        s = rf_tensor_alloc(dev, &full, RF_F32, 3, (int64_t[]){1, L, V});
        double a = bench_now_ms();
        if (s == RF_OK) s = rf_model_forward(m, &full, ids, NULL, 1, L, NULL);
        if (s == RF_OK) s = rf_buffer_download(full.buf, (size_t)((L - 1) * V) * 4, row, (size_t)V * 4);
        double e = bench_now_ms() - a;
        if (full.buf) rf_tensor_free(&full);
        if (k < 0 || s) continue;
        lens[k] = (double)L, ms[k] = e;
        s = report(out, dev, info, "recompute", L, e);
    }
    if (s == RF_OK && steps > 0) {
        /* Σ over the N steps (lengths L0 .. L0 + N − 1) of t(L), t linear
         * between the sampled lengths. */
        double est = 0;
        for (int k = 0; k + 1 < K; k++) est += 0.5 * (ms[k] + ms[k + 1]) * (lens[k + 1] - lens[k]);
        est += K > 1 ? 0.5 * (ms[0] + ms[K - 1]) : ms[0] * (double)N; /* the endpoints' half-steps */
        s = report(out, dev, info, "recompute est", total, est);
        char what[128];
        snprintf(what, sizeof what, "%s per-token time, last %d steps over first %d", info->id, edge, edge);
        bench_ratio(out, what, last / first, "%.2fx");
        snprintf(what, sizeof what, "%s recomputing total (estimated from %d lengths) over cached total", info->id, K);
        bench_ratio(out, what, est / cached_ms, "%.1fx");
        snprintf(what, sizeof what, "%s decoding state at %lld positions (MiB)", info->id, (long long)(total - 1));
        bench_ratio(out, what, (double)state_bytes / 1048576.0, "%.2f");
    }
    if (logits.buf) rf_tensor_free(&logits);
    free(ids), free(row), free(step_ms);
    rf_model_free(m);
    return s;
}

int bench_decode(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        help();
        return RF_EXIT_OK;
    }
    decode_opts o = {.prompt = 1024, .generate = 2048, .samples = 8};
    bench_common_init(&o.c);
    for (int i = 1; i < argc; i++) {
        int k = bench_common_arg(&o.c, argc, argv, &i);
        if (k < 0) return RF_EXIT_USAGE;
        if (k) continue;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad;
        if (!strcmp(a, "--prompt")) bad = bench_parse_int("bench decode", a, v, 1, 4095, &o.prompt);
        else if (!strcmp(a, "--generate")) bad = bench_parse_int("bench decode", a, v, 2, 4095, &o.generate);
        else if (!strcmp(a, "--samples")) bad = bench_parse_int("bench decode", a, v, 1, MAX_SAMPLES, &o.samples);
        else return bench_usage_error("decode", a);
        if (bad) return RF_EXIT_USAGE;
        i++;
    }
    if (o.c.profile || o.c.runs != BENCH_MIN_RUNS) { /* its rows are single timings and medians of steps */
        fprintf(stderr, "reformer bench decode: --runs and --profile are not supported\n");
        return RF_EXIT_USAGE;
    }
    if (o.prompt + o.generate > 4096) {
        fprintf(stderr, "reformer bench decode: --prompt + --generate = %lld exceeds the model's 4096 positions\n",
                (long long)(o.prompt + o.generate));
        return RF_EXIT_USAGE;
    }
    if (cli_dry_run) return RF_EXIT_OK;
    bench_out *out;
    int rc = bench_out_open(&out, &o.c, "decode");
    if (rc) return rc;
    char done[BENCH_MAX_DEVICES][32];
    int ndone;
    rc = bench_each_device(out, &o.c, run_device, &o, done, &ndone);
    return bench_out_close(out, rc);
}
