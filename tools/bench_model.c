/* `reformer bench model`: tokens/s and peak device memory of each phase of
 * a training step (inference forward, forward + backward, optimiser) against the number of layers at
 * a fixed length. §8: the reversible stack keeps the activation memory flat
 * as layers grow; the memory report shows by how much it grows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"
#include "reformer/model.h"

#define MAX_LAYERS 8
#define MAX_MEM (BENCH_MAX_DEVICES * MAX_LAYERS * 4)

typedef struct {
    rf_model *m;
    rf_tensor logits;
    int32_t *ids;
    int64_t L;
} model_case;

static rf_status run_forward(void *p) {
    model_case *c = p;
    return rf_model_forward(c->m, &c->logits, c->ids, NULL, 1, c->L, NULL);
}

/* A training step's forward and backward pass (gradients accumulate). */
static rf_status run_backward(void *p) {
    model_case *c = p;
    float loss;
    return rf_model_backward(c->m, c->ids, NULL, 1, c->L, &loss);
}

static rf_status run_optimiser(void *p) {
    model_case *c = p;
    rf_train_config tc;
    rf_train_config_default(&tc);
    return rf_model_step(c->m, &tc, 1, NULL);
}

/* The phases measured, in step order (the optimiser needs gradients); the
 * memory report shows each. "backward" is a whole forward + backward pass of
 * training (§8: it keeps only the final halves and the LSH buckets). */
static const struct {
    const char *name;
    bench_fn run;
} phases[] = {{"forward", run_forward}, {"backward", run_backward}, {"optimiser", run_optimiser}};
enum { NPHASES = sizeof phases / sizeof phases[0] };

typedef struct {
    char device[32];
    int phase, layers;
    size_t weights, base, peak;
} mem_row;

typedef struct {
    bench_common c;
    int64_t L;
    int layers[MAX_LAYERS], nlayers;
    mem_row mem[MAX_MEM];
    int nmem;
} model_opts;

static void help(void) {
    printf("usage: reformer bench model [--device NAME]... [--all] [--runs N] [--csv FILE] [--json FILE]\n"
           "                            [--profile] [--profile-csv FILE] [--length L] [--layers N,N,...]\n\n"
           "For each layer count (default 2,6,12): a random model (D 64, 2 heads of 32, F 128,\n"
           "local/LSH layers alternating, chunks of 64, 2 hash rounds), batch 1 at length L\n"
           "(default 4096, a multiple of 64). Each phase (inference forward; a training\n"
           "forward + backward; the AdamW step) is\n"
           "warmed up, then timed as the median of --runs; rows give tokens/s and the peak\n"
           "device bytes (GFLOP/s is not modelled: '-'). The memory report gives per phase\n"
           "the bytes kept between calls (weights; in training also gradients and AdamW\n"
           "moments), the peak, the peak over what was alive before the phase, and its growth\n"
           "from the fewest layers to the most.\n\n"
           "With --config FILE: the model of an HF config.json instead, training and forward\n"
           "phases, tokens/s and peak RSS, optionally against HF transformers ('reformer bench\n"
           "model --config FILE --help').\n\n%s",
           bench_common_help);
}

static void model_config(rf_config *c, int layers, int64_t L) {
    rf_config_default(c);
    c->num_layers = layers;
    for (int i = 0; i < c->num_layers; i++) c->attn_layers[i] = i % 2 ? RF_ATTN_LSH : RF_ATTN_LOCAL;
    c->hidden_size = 64, c->num_attention_heads = 2, c->attention_head_size = 32, c->feed_forward_size = 128;
    c->vocab_size = 258, c->num_hashes = 2, c->lsh_attn_chunk_length = 64, c->local_attn_chunk_length = 64;
    c->num_bucket_factors = 0;
    int s0 = 1;
    while ((int64_t)s0 * s0 < L) s0 *= 2;
    c->axial_pos_shape[0] = s0, c->axial_pos_shape[1] = (int)((L + s0 - 1) / s0);
    c->axial_pos_embds_dim[0] = 32, c->axial_pos_embds_dim[1] = 32;
    c->max_position_embeddings = c->axial_pos_shape[0] * c->axial_pos_shape[1];
    c->is_decoder = true;
    /* The deterministic path: no dropout (and attention-probability dropout
     * is not implemented in training). */
    c->hidden_dropout_prob = c->lsh_attention_probs_dropout_prob = c->local_attention_probs_dropout_prob = 0;
}

static rf_status model_device(bench_out *out, rf_device *dev, const rf_device_info *info, void *ctx) {
    model_opts *o = ctx;
    rf_status s = RF_OK;
    for (int k = 0; k < o->nlayers && s == RF_OK; k++) {
        rf_config cfg;
        model_config(&cfg, o->layers[k], o->L);
        model_case c = {.L = o->L};
        if ((s = rf_model_create(&c.m, dev, &cfg, 1))) break;
        c.ids = malloc((size_t)o->L * sizeof *c.ids);
        if (!c.ids) s = RF_ERR_OUT_OF_MEMORY;
        for (int64_t i = 0; c.ids && i < o->L; i++) c.ids[i] = (int32_t)(2 + (i * 31) % 256);
        const size_t logit_bytes = (size_t)o->L * (size_t)cfg.vocab_size * sizeof(float);
        if (s == RF_OK) s = rf_tensor_alloc(dev, &c.logits, RF_F32, 3, (int64_t[]){1, o->L, cfg.vocab_size});
        for (int p = 0; p < NPHASES && s == RF_OK; p++) {
            bench_result r;
            if ((s = bench_measure(dev, o->c.runs, phases[p].run, &c, &r))) break;
            bench_row row = {.batch = 1, .length = o->L};
            snprintf(row.op, sizeof row.op, "%s", phases[p].name);
            snprintf(row.shape, sizeof row.shape, "layers=%d B=1 L=%lld D=%d", o->layers[k], (long long)o->L,
                     cfg.hidden_size);
            if ((s = bench_report(out, dev, info, &row, &r, NULL, 0))) break;
            mem_row m = {.phase = p, .layers = o->layers[k], .base = r.base_bytes, .peak = r.peak_bytes,
                         .weights = r.base_bytes - logit_bytes};
            snprintf(m.device, sizeof m.device, "%s", info->id);
            if (o->nmem < MAX_MEM) o->mem[o->nmem++] = m;
        }
        rf_tensor_free(&c.logits);
        free(c.ids);
        rf_model_free(c.m);
    }
    return s;
}

/* Per device and phase: the peak over what was alive before the phase (the
 * activations it keeps and its scratch) against layers, and its growth. */
static void memory_report(bench_out *out, const model_opts *o, const char *dev) {
    printf("\n%s: memory per phase, batch 1, L = %lld (MiB)\n", dev, (long long)o->L);
    printf("  %-10s %6s %10s %12s %14s %9s\n", "phase", "layers", "kept", "peak", "phase's own", "growth");
    for (int p = 0; p < NPHASES; p++) {
        const mem_row *first = NULL;
        for (int i = 0; i < o->nmem; i++) {
            const mem_row *m = &o->mem[i];
            if (m->phase != p || strcmp(m->device, dev)) continue;
            if (!first) first = m;
            const double own = (double)(m->peak - m->base), own0 = (double)(first->peak - first->base);
            printf("  %-10s %6d %10.2f %12.2f %14.2f %+8.1f%%\n", phases[p].name, m->layers, m->weights / 1048576.0,
                   m->peak / 1048576.0, own / 1048576.0, own0 > 0 ? 100 * (own / own0 - 1) : 0.0);
        }
        const mem_row *last = NULL;
        for (int i = 0; i < o->nmem; i++)
            if (o->mem[i].phase == p && !strcmp(o->mem[i].device, dev)) last = &o->mem[i];
        if (first && last != first && first->peak > first->base) {
            char what[160];
            snprintf(what, sizeof what, "%s %s peak over live bytes, growth %d -> %d layers (%%)", dev, phases[p].name,
                     first->layers, last->layers);
            bench_ratio(out, what,
                        100.0 * ((double)(last->peak - last->base) / (double)(first->peak - first->base) - 1),
                        "%+.1f");
        }
    }
}

int bench_model(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--config")) return bench_model_config(argc, argv);
    if (cli_wants_help(argc, argv)) {
        help();
        return RF_EXIT_OK;
    }
    model_opts *o = calloc(1, sizeof *o);
    if (!o) return RF_EXIT_FAIL;
    bench_common_init(&o->c);
    o->L = 4096;
    o->nlayers = 3;
    o->layers[0] = 2, o->layers[1] = 6, o->layers[2] = 12;
    int rc = RF_EXIT_OK;
    for (int i = 1; i < argc && rc == RF_EXIT_OK; i++) {
        int taken = bench_common_arg(&o->c, argc, argv, &i);
        if (taken) {
            if (taken < 0) rc = RF_EXIT_USAGE;
            continue;
        }
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t list[MAX_LAYERS];
        if (!strcmp(a, "--length")) {
            i++;
            if (bench_parse_int("bench model", a, val, 128, 1 << 24, &o->L)) rc = RF_EXIT_USAGE;
            else if (o->L % 64) {
                fprintf(stderr, "reformer bench model: --length: %lld is not a multiple of 64\n", (long long)o->L);
                rc = RF_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--layers")) {
            i++;
            o->nlayers = bench_parse_list("bench model", a, val, 1, RF_CONFIG_MAX_LAYERS, list, MAX_LAYERS);
            if (o->nlayers <= 0) rc = RF_EXIT_USAGE;
            for (int k = 0; k < o->nlayers; k++) o->layers[k] = (int)list[k];
        } else {
            rc = bench_usage_error("model", a);
        }
    }
    bench_out *out = NULL;
    char done[BENCH_MAX_DEVICES][32];
    int ndone = 0;
    if (rc == RF_EXIT_OK && !cli_dry_run && (rc = bench_out_open(&out, &o->c, "model")) == RF_EXIT_OK) {
        rc = bench_each_device(out, &o->c, model_device, o, done, &ndone);
        for (int i = 0; i < ndone; i++) memory_report(out, o, done[i]);
        if (rc == RF_EXIT_OK) bench_device_ratios(out);
        rc = bench_out_close(out, rc);
    }
    free(o);
    return rc;
}
