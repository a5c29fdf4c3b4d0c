/* `reformer sample`: generate text from a model, greedy or sampled, with the
 * cached incremental decoder (rf_model_decode_*, docs/decode.md) or, with
 * --no-cache, by recomputing the whole sequence for every new token. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli.h"
#include "core/core.h"
#include "reformer/model.h"
#include "text.h"

static void help(void) {
    printf("usage: reformer sample (--model DIR | --random) [--prompt TEXT] [--length N] [--batch B]\n"
           "                       [--temperature T] [--top-k K] [--top-p P] [--seed S] [--no-cache]\n"
           "                       [--device NAME]\n\n"
           "Continues PROMPT by up to N tokens (stopping at the model's eos_token_id). Tokens\n"
           "are bytes (id = byte + 2, as the HF enwik8 Reformer) when the vocabulary has >= 258\n"
           "entries; smaller models print ids. One sequence is printed as its tokens come;\n"
           "with --batch B, B continuations of the prompt are sampled at once and printed at\n"
           "the end. Tokens per second go to stderr.\n"
           "  --model DIR        config.json + model.safetensors (HF or reformer-cl)\n"
           "  --random           a randomly initialised model with the HF default config\n"
           "  --batch B          sequences generated together (default 1)\n"
           "  --temperature T    0 (default) = greedy; else sample softmax(logits / T)\n"
           "  --top-k K          sample among the K most likely tokens (0 = all)\n"
           "  --top-p P          sample among the most likely tokens whose probabilities\n"
           "                     sum to P or more (1 = all, the default)\n"
           "  --seed S           the sampling and initialisation seed (default 1)\n"
           "  --no-cache         recompute the whole sequence for every token (the cached\n"
           "                     decoder is the default for causal models; a bidirectional\n"
           "                     model always recomputes)\n");
}

typedef struct sampling {
    double temperature, top_p;
    int top_k;
} sampling;

typedef struct cand {
    float logit;
    int32_t id;
} cand;

static int by_logit_desc(const void *a, const void *b) {
    const cand *x = a, *y = b;
    return x->logit != y->logit ? (x->logit < y->logit) - (x->logit > y->logit) : (x->id > y->id) - (x->id < y->id);
}

/* Pick the next token from one row of logits (u uniform in [0, 1)); work
 * holds V candidates. */
static int32_t pick(const float *logits, int64_t V, const sampling *sp, double u, cand *work) {
    int32_t best = 0;
    for (int64_t v = 1; v < V; v++)
        if (logits[v] > logits[best]) best = (int32_t)v;
    if (sp->temperature <= 0) return best;
    for (int64_t v = 0; v < V; v++) work[v] = (cand){logits[v], (int32_t)v};
    qsort(work, (size_t)V, sizeof *work, by_logit_desc);
    int64_t n = sp->top_k > 0 && sp->top_k < V ? sp->top_k : V;
    double total = 0;
    for (int64_t i = 0; i < n; i++) total += exp((work[i].logit - work[0].logit) / sp->temperature);
    if (sp->top_p < 1) { /* the smallest head of the order holding top_p of the mass */
        double acc = 0;
        for (int64_t i = 0; i < n; i++) {
            acc += exp((work[i].logit - work[0].logit) / sp->temperature);
            if (acc >= sp->top_p * total) {
                n = i + 1, total = acc;
                break;
            }
        }
    }
    double acc = 0, target = u * total;
    for (int64_t i = 0; i < n; i++) {
        acc += exp((work[i].logit - work[0].logit) / sp->temperature);
        if (acc >= target) return work[i].id;
    }
    return work[n - 1].id;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The generation loop: rows [B, total] of ids with the prompt's n0 first;
 * fills the rest (up to `length` tokens per row, fewer at eos), streaming row
 * 0 when B = 1. *made = tokens generated over all rows. */
static rf_status generate(rf_model *m, rf_device *dev, int32_t *ids, int64_t B, int64_t n0, int64_t length,
                          int64_t total, const sampling *sp, unsigned long long seed, int cache, int64_t *made) {
    const rf_config *c = rf_model_config(m);
    const int64_t V = c->vocab_size;
    float *rows = malloc((size_t)(B * V) * sizeof *rows);
    cand *work = malloc((size_t)V * sizeof *work);
    int32_t *next = malloc((size_t)B * sizeof *next), *prompt = malloc((size_t)(B * n0) * sizeof *prompt);
    char *done = calloc((size_t)B, 1);
    uint64_t *rng = malloc((size_t)B * sizeof *rng);
    rf_status s = rows && work && next && prompt && done && rng ? RF_OK : rf_error(RF_ERR_OUT_OF_MEMORY, "no host memory");
    for (int64_t b = 0; s == RF_OK && b < B; b++) {
        rng[b] = (seed + (uint64_t)b * 0x9e3779b97f4a7c15ull) * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
        memcpy(prompt + b * n0, ids + b * total, (size_t)n0 * sizeof *prompt);
    }
    rf_tensor logits = {0};
    rf_decoder *dec = NULL;
    if (s == RF_OK) s = rf_tensor_alloc(dev, &logits, RF_F32, 2, (int64_t[]){B, V});
    if (s == RF_OK && cache) s = rf_model_decode_begin(&dec, m, prompt, B, n0, n0 + length - 1, &logits);
    *made = 0;
    for (int64_t t = 0; s == RF_OK && t < length; t++) {
        int64_t n = n0 + t; /* positions so far */
        if (!cache) { /* the recomputing path: the whole sequence, its last position */
            rf_tensor full;
            s = rf_tensor_alloc(dev, &full, RF_F32, 3, (int64_t[]){B, n, V});
            int32_t *cur = s == RF_OK ? malloc((size_t)(B * n) * sizeof *cur) : NULL;
            if (s == RF_OK && !cur) s = rf_error(RF_ERR_OUT_OF_MEMORY, "no host memory");
            for (int64_t b = 0; s == RF_OK && b < B; b++) memcpy(cur + b * n, ids + b * total, (size_t)n * sizeof *cur);
            if (s == RF_OK) s = rf_model_forward(m, &full, cur, NULL, B, n, NULL);
            for (int64_t b = 0; s == RF_OK && b < B; b++)
                s = rf_buffer_download(full.buf, (size_t)((b * n + n - 1) * V) * 4, rows + b * V, (size_t)V * 4);
            free(cur);
            if (full.buf) rf_tensor_free(&full);
        } else {
            if (t > 0) s = rf_model_decode_step(dec, next, &logits);
            if (s == RF_OK) s = rf_tensor_download(&logits, rows, (size_t)(B * V) * sizeof *rows);
        }
        if (s) break;
        int all_done = 1;
        for (int64_t b = 0; b < B; b++) {
            uint64_t *r = &rng[b];
            *r ^= *r << 13, *r ^= *r >> 7, *r ^= *r << 17;
            double u = (double)(*r >> 11) / 9007199254740992.0;
            int32_t id = pick(rows + b * V, V, sp, u, work);
            /* A finished row repeats its eos (kept out of the text). */
            next[b] = done[b] ? ids[b * total + n - 1] : id;
            ids[b * total + n] = next[b];
            if (done[b]) continue;
            (*made)++;
            if (B == 1) {
                text_print_token(stdout, id, V);
                fflush(stdout);
            }
            done[b] = c->eos_token_id >= 0 && id == c->eos_token_id;
            all_done &= done[b];
        }
        if (all_done) break;
    }
    if (dec) rf_model_decode_end(dec);
    if (logits.buf) rf_tensor_free(&logits);
    free(rows), free(work), free(next), free(prompt), free(done), free(rng);
    return s;
}

int cmd_sample(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        help();
        return RF_EXIT_OK;
    }
    const char *dir = NULL, *prompt = "", *device = NULL;
    int random = 0, no_cache = 0;
    long long length = 64, batch = 1;
    sampling sp = {.temperature = 0, .top_p = 1, .top_k = 0};
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (!strcmp(a, "--random") || !strcmp(a, "--no-cache")) {
            *(a[2] == 'r' ? &random : &no_cache) = 1;
            continue;
        }
        if (!strcmp(a, "--model") && v) dir = v;
        else if (!strcmp(a, "--prompt") && v) prompt = v;
        else if (!strcmp(a, "--device") && v) device = v;
        else if (!strcmp(a, "--length")) ok = cli_int("sample", a, v, 1, 1 << 30, &length);
        else if (!strcmp(a, "--batch")) ok = cli_int("sample", a, v, 1, 4096, &batch);
        else if (!strcmp(a, "--temperature")) ok = cli_double("sample", a, v, 0, 1e6, 0, &sp.temperature);
        else if (!strcmp(a, "--top-k")) ok = cli_int32("sample", a, v, 0, 2147483647, &sp.top_k);
        else if (!strcmp(a, "--top-p")) ok = cli_double("sample", a, v, 0, 1, 1, &sp.top_p);
        else if (!strcmp(a, "--seed")) ok = cli_u64("sample", a, v, &seed);
        else {
            fprintf(stderr, "reformer sample: unknown option or missing value '%s' (see --help)\n", a);
            return RF_EXIT_USAGE;
        }
        if (!ok) return RF_EXIT_USAGE;
        i++;
    }
    if (!dir == !random) {
        fprintf(stderr, "reformer sample: give exactly one of --model DIR or --random\n");
        return RF_EXIT_USAGE;
    }
    rf_device *dev;
    rf_status s = rf_device_open(&dev, device);
    if (s) return cli_fail("sample", s);
    rf_model *m = NULL;
    if (random) {
        rf_config cfg;
        rf_config_default(&cfg);
        s = rf_model_create(&m, dev, &cfg, seed);
    } else {
        s = rf_model_load(&m, dev, dir);
    }
    if (s) {
        rf_device_close(dev);
        return cli_fail("sample", s);
    }
    const rf_config *c = rf_model_config(m);
    int64_t V = c->vocab_size;
    int64_t max_len = c->axial_pos_embds ? (int64_t)c->axial_pos_shape[0] * c->axial_pos_shape[1] : c->max_position_embeddings;
    if (V < 3) { /* ids 0 and 1 are padding and end of sequence: no room for text */
        fprintf(stderr, "reformer sample: the model's vocab_size %lld is too small for text (byte tokens need >= 3)\n",
                (long long)V);
        rf_model_free(m);
        rf_device_close(dev);
        return RF_EXIT_FAIL;
    }
    size_t np = strlen(prompt);
    /* Both terms are bounded (the prompt by the argument size, --length by
     * its range), so the sum cannot overflow. */
    int64_t n0 = (int64_t)np + (np == 0), total = n0 + (int64_t)length; /* an empty prompt starts from one padding token */
    if (total > max_len) {
        fprintf(stderr, "reformer sample: --length %lld after a prompt of %zu bytes needs %lld positions; the model "
                        "has %lld\n", length, np, (long long)total, (long long)max_len);
        rf_model_free(m);
        rf_device_close(dev);
        return RF_EXIT_USAGE;
    }
    int32_t *ids = calloc((size_t)(total * batch), sizeof *ids);
    if (!ids || cli_dry_run) {
        if (!cli_dry_run) fprintf(stderr, "reformer sample: no host memory for %lld tokens\n", (long long)total);
        free(ids);
        rf_model_free(m);
        rf_device_close(dev);
        return cli_dry_run ? RF_EXIT_OK : RF_EXIT_FAIL;
    }
    for (int64_t b = 0; b < batch; b++)
        for (size_t i = 0; i < np; i++) ids[b * total + (int64_t)i] = text_encode_byte((unsigned char)prompt[i], V);
    int cache = !no_cache && c->is_decoder;
    if (batch == 1) fputs(prompt, stdout);
    int64_t made = 0;
    double t0 = now_s();
    s = generate(m, dev, ids, batch, n0, length, total, &sp, seed, cache, &made);
    double secs = now_s() - t0;
    if (batch == 1) putchar('\n');
    for (int64_t b = 0; s == RF_OK && batch > 1 && b < batch; b++) {
        printf("[%lld] %s", (long long)b, prompt);
        for (int64_t t = n0; t < total; t++) {
            int32_t id = ids[b * total + t];
            text_print_token(stdout, id, V);
            if (c->eos_token_id >= 0 && id == c->eos_token_id) break;
        }
        putchar('\n');
    }
    if (s == RF_OK)
        fprintf(stderr, "%lld tokens in %.3f s: %.1f tokens/s (%s)\n", (long long)made, secs,
                secs > 0 ? (double)made / secs : 0.0, cache ? "cached decoding" : "recomputing");
    free(ids);
    rf_model_free(m);
    rf_device_close(dev);
    return s ? cli_fail("sample", s) : RF_EXIT_OK;
}
