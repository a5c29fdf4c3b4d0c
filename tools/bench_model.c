/* `reformer bench model`: tokens/s and peak device memory of the model's
 * forward pass against the number of layers at a fixed length (§8: the
 * reversible stack keeps memory flat as layers grow). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include "cli.h"
#include "reformer/model.h"

static void help(void) {
    printf("usage: reformer bench model [--device NAME] [--length L] [--layers N,N,...]\n\n"
           "For each layer count: a random model (D 64, 2 heads of 32, F 128, lsh/local\n"
           "alternating, chunks of 64, 2 hash rounds), one warm-up forward and one timed\n"
           "forward of batch 1 at length L (default 4096); prints the forward time, tokens/s,\n"
           "the peak device bytes during the forward pass, and the weights' bytes.\n");
}

int bench_model(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        help();
        return RF_EXIT_OK;
    }
    const char *device = NULL;
    int64_t L = 4096;
    int layers[8] = {2, 6, 12}, nl = 3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v && !strcmp(a, "--device")) device = v, i++;
        else if (v && !strcmp(a, "--length")) L = strtoll(v, NULL, 10), i++;
        else if (v && !strcmp(a, "--layers")) {
            nl = 0;
            for (char *p = argv[++i]; *p && nl < 8;) {
                layers[nl++] = (int)strtol(p, &p, 10);
                if (*p == ',') p++;
                else if (*p) break;
            }
        } else {
            fprintf(stderr, "reformer bench model: unknown option or missing value '%s' (see --help)\n", a);
            return RF_EXIT_USAGE;
        }
    }
    if (L < 128 || L % 64) {
        fprintf(stderr, "reformer bench model: --length must be a multiple of 64, at least 128\n");
        return RF_EXIT_USAGE;
    }
    rf_device *dev;
    rf_status s = rf_device_open(&dev, device);
    if (s) return cli_fail("bench model", s);
    rf_device_info info;
    rf_device_get_info(dev, &info);
    printf("device,layers,length,forward_ms,tokens_per_s,peak_forward_bytes,weight_bytes\n");
    for (int k = 0; k < nl && s == RF_OK; k++) {
        rf_config c;
        rf_config_default(&c);
        c.num_layers = layers[k];
        for (int i = 0; i < c.num_layers; i++) c.attn_layers[i] = i % 2 ? RF_ATTN_LSH : RF_ATTN_LOCAL;
        c.hidden_size = 64, c.num_attention_heads = 2, c.attention_head_size = 32, c.feed_forward_size = 128;
        c.vocab_size = 258, c.num_hashes = 2, c.lsh_attn_chunk_length = 64, c.local_attn_chunk_length = 64;
        c.num_bucket_factors = 0;
        int s0 = 1;
        while ((int64_t)s0 * s0 < L) s0 *= 2;
        c.axial_pos_shape[0] = s0, c.axial_pos_shape[1] = (int)((L + s0 - 1) / s0);
        c.axial_pos_embds_dim[0] = 32, c.axial_pos_embds_dim[1] = 32;
        c.max_position_embeddings = c.axial_pos_shape[0] * c.axial_pos_shape[1];
        c.is_decoder = true;
        rf_model *m;
        if ((s = rf_model_create(&m, dev, &c, 1))) break;
        int32_t *ids = malloc((size_t)L * sizeof *ids);
        for (int64_t i = 0; i < L; i++) ids[i] = (int32_t)(2 + (i * 31) % 256);
        rf_tensor logits;
        if ((s = rf_tensor_alloc(dev, &logits, RF_F32, 3, (int64_t[]){1, L, c.vocab_size}))) {
            free(ids);
            rf_model_free(m);
            break;
        }
        rf_memory_stats before, after;
        s = rf_model_forward(m, &logits, ids, NULL, 1, L, NULL); /* warm-up: kernel builds */
        if (s == RF_OK) s = rf_device_reset_peak(dev);
        rf_device_memory(dev, &before);
        double ms = 0;
        if (s == RF_OK) {
            struct timespec a, b;
            rf_device_sync(dev);
            clock_gettime(CLOCK_MONOTONIC, &a);
            s = rf_model_forward(m, &logits, ids, NULL, 1, L, NULL);
            rf_device_sync(dev);
            clock_gettime(CLOCK_MONOTONIC, &b);
            ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
        }
        rf_device_memory(dev, &after);
        if (s == RF_OK) {
            /* Weights and the logits tensor are alive before the call: the
             * forward's own peak is what it adds on top. */
            printf("%s,%d,%lld,%.1f,%.0f,%zu,%zu\n", info.id, layers[k], (long long)L, ms, (double)L / (ms / 1e3),
                   after.peak_bytes - before.in_use_bytes, before.in_use_bytes - (size_t)(L * c.vocab_size * 4));
        }
        rf_tensor_free(&logits);
        free(ids);
        rf_model_free(m);
    }
    rf_device_close(dev);
    return s ? cli_fail("bench model", s) : RF_EXIT_OK;
}
