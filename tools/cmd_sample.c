/* `reformer sample`: generate text from a model, greedy or sampled. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "reformer/model.h"
#include "text.h"

static void help(void) {
    printf("usage: reformer sample (--model DIR | --random) [--prompt TEXT] [--length N]\n"
           "                       [--temperature T] [--top-k K] [--seed S] [--device NAME]\n\n"
           "Continues PROMPT by N tokens. Tokens are bytes (id = byte + 2, as the HF enwik8\n"
           "Reformer) when the vocabulary has >= 258 entries; smaller models print ids.\n"
           "  --model DIR        config.json + model.safetensors (HF or reformer-cl)\n"
           "  --random           a randomly initialised model with the HF default config\n"
           "  --temperature T    0 (default) = greedy; else sample softmax(logits / T)\n"
           "  --top-k K          sample among the K most likely tokens (0 = all)\n"
           "  --seed S           the sampling and initialisation seed (default 1)\n");
}

/* Pick the next token from one row of logits. */
static int32_t pick(const float *logits, int64_t V, double temperature, int top_k, double u) {
    int32_t best = 0;
    for (int64_t v = 1; v < V; v++)
        if (logits[v] > logits[best]) best = (int32_t)v;
    if (temperature <= 0) return best;
    /* Threshold for top-k: the k-th largest logit. */
    float kth = -INFINITY;
    if (top_k > 0 && top_k < V) {
        float *sorted = malloc((size_t)V * sizeof *sorted);
        if (!sorted) return best;
        memcpy(sorted, logits, (size_t)V * sizeof *sorted);
        for (int i = 0; i < top_k; i++) { /* partial selection: top_k is small */
            int64_t arg = i;
            for (int64_t v = i + 1; v < V; v++)
                if (sorted[v] > sorted[arg]) arg = v;
            float t = sorted[i];
            sorted[i] = sorted[arg];
            sorted[arg] = t;
        }
        kth = sorted[top_k - 1];
        free(sorted);
    }
    double total = 0;
    for (int64_t v = 0; v < V; v++)
        if (logits[v] >= kth) total += exp((logits[v] - logits[best]) / temperature);
    double acc = 0, target = u * total;
    for (int64_t v = 0; v < V; v++) {
        if (logits[v] < kth) continue;
        acc += exp((logits[v] - logits[best]) / temperature);
        if (acc >= target) return (int32_t)v;
    }
    return best;
}

int cmd_sample(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        help();
        return RF_EXIT_OK;
    }
    const char *dir = NULL, *prompt = "", *device = NULL;
    int random = 0, top_k = 0;
    long long length = 64;
    double temperature = 0;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (!strcmp(a, "--random")) {
            random = 1;
            continue;
        }
        if (!strcmp(a, "--model") && v) dir = v;
        else if (!strcmp(a, "--prompt") && v) prompt = v;
        else if (!strcmp(a, "--device") && v) device = v;
        else if (!strcmp(a, "--length")) ok = cli_int("sample", a, v, 1, 1 << 30, &length);
        else if (!strcmp(a, "--temperature")) ok = cli_double("sample", a, v, 0, 1e6, 0, &temperature);
        else if (!strcmp(a, "--top-k")) ok = cli_int32("sample", a, v, 0, 2147483647, &top_k);
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
    int64_t total = (int64_t)np + (int64_t)length + (np == 0); /* an empty prompt starts from one padding token */
    if (total > max_len) {
        fprintf(stderr, "reformer sample: --length %lld after a prompt of %zu bytes needs %lld positions; the model "
                        "has %lld\n", length, np, (long long)total, (long long)max_len);
        rf_model_free(m);
        rf_device_close(dev);
        return RF_EXIT_USAGE;
    }
    int32_t *ids = calloc((size_t)total, sizeof *ids);
    float *row = malloc((size_t)V * sizeof *row);
    if (!ids || !row || cli_dry_run) {
        if (!cli_dry_run) fprintf(stderr, "reformer sample: no host memory for %lld tokens\n", (long long)total);
        free(ids), free(row);
        rf_model_free(m);
        rf_device_close(dev);
        return cli_dry_run ? RF_EXIT_OK : RF_EXIT_FAIL;
    }
    int64_t n = 0;
    if (np == 0) ids[n++] = 0;
    for (size_t i = 0; i < np; i++) ids[n++] = text_encode_byte((unsigned char)prompt[i], V);
    fputs(prompt, stdout);
    uint64_t rng = seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
    while (s == RF_OK && n < total) {
        rf_tensor logits;
        s = rf_tensor_alloc(dev, &logits, RF_F32, 3, (int64_t[]){1, n, V});
        if (s) break;
        s = rf_model_forward(m, &logits, ids, NULL, 1, n, NULL);
        if (s == RF_OK) s = rf_buffer_download(logits.buf, (size_t)((n - 1) * V) * 4, row, (size_t)V * 4);
        rf_tensor_free(&logits);
        if (s) break;
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        int32_t next = pick(row, V, temperature, top_k, (double)(rng >> 11) / 9007199254740992.0);
        ids[n++] = next;
        text_print_token(stdout, next, V);
        fflush(stdout);
    }
    putchar('\n');
    free(row);
    free(ids);
    rf_model_free(m);
    rf_device_close(dev);
    return s ? cli_fail("sample", s) : RF_EXIT_OK;
}
