/* `reformer train`: the paper's duplication task (--task copy) or a
 * byte-level language model on a text file (--text FILE), with periodic
 * evaluation, checkpoints and resume. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "reformer/model.h"
#include "text.h"

typedef struct opts {
    const char *device, *text, *out, *resume, *attn, *init, *config;
    int copy;
    int64_t steps, batch, length, eval_every, save_every, eval_batches, accumulate;
    int hashes, layers, hidden, heads, vocab, chunk;
    int eval_hashes[8], n_eval_hashes;
    rf_attn_type types[RF_CONFIG_MAX_LAYERS];
    double lr;
    unsigned long long seed;
} opts;

static void help(void) {
    printf("usage: reformer train (--task copy | --text FILE) [options]\n\n"
           "  --task copy          the paper's duplication task: sequences 0 w 0 w, w uniform over\n"
           "                       symbols 1..V-1; loss and accuracy on the second copy only\n"
           "  --text FILE          a byte-level language model on FILE (the last 5%% held out)\n"
           "  --steps N            optimiser steps (default 600)\n"
           "  --batch B            sequences per micro-batch (default 16)\n"
           "  --accumulate N       micro-batches whose gradients are averaged into one step (default 1)\n"
           "  --length L           sequence length (copy default 64; text default 256)\n"
           "  --hashes R           LSH hash rounds in training (default 2)\n"
           "  --eval-hashes R,...  also evaluate with these numbers of hash rounds at the end\n"
           "                       (the paper's Table 2: train with one R, evaluate with others)\n"
           "  --attn LIST          the layers' attention, e.g. local,lsh (default): a local layer can\n"
           "                       carry each token's predecessor, the LSH layer finds the match\n"
           "  --hidden D           model width (default 64); --heads H (default 2)\n"
           "  --vocab V            copy-task vocabulary (default 16)\n"
           "  --chunk M            LSH chunk length (default 16)\n"
           "  --lr X               peak learning rate (default 2e-3; warm-up 50 steps, inverse sqrt)\n"
           "  --eval-every N       evaluate every N steps (default 100) on held-out sequences\n"
           "  --save-every N       checkpoint every N steps (default 200) and at the end\n"
           "  --out DIR            checkpoint folder (default: none, no checkpoints)\n"
           "  --resume DIR         continue from DIR's latest checkpoint (and keep saving there)\n"
           "  --init DIR           start from a model (config.json + model.safetensors, e.g. an HF\n"
           "                       checkpoint) instead of a new one; its config decides the layers\n"
           "  --config FILE        a new model from an HF config.json instead of the task's defaults\n"
           "  --seed S             the seed of data, initialisation and hashing (default 1)\n"
           "  --device NAME        cpu, cl:P:D, a name substring, or auto (default $RF_DEVICE / auto)\n\n"
           "On a terminal a progress bar shows step, loss, accuracy or bits, tokens/s and ETA;\n"
           "otherwise one log line per evaluation. Ends with the held-out accuracy (copy) or\n"
           "bits per byte (text).\n");
}

/* splitmix64: the data stream, a pure function of (seed, sequence index),
 * so a resumed run sees exactly the sequences it would have seen. */
static uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Copy-task sequence `index`: 0 w 0 w; targets only on the second copy. */
static void copy_sequence(int32_t *ids, int32_t *targets, int64_t L, int V, uint64_t seed, uint64_t index) {
    int64_t half = L / 2;
    for (int64_t t = 1; t < half; t++) ids[t] = ids[half + t] = 1 + (int32_t)(mix(seed ^ mix(index * 4099 + (uint64_t)t)) % (uint64_t)(V - 1));
    ids[0] = ids[half] = 0;
    for (int64_t t = 0; t < L; t++) targets[t] = (t >= half && t + 1 < L) ? ids[t + 1] : -1;
}

/* Text window `index` of the training part (or the held-out part). */
static void text_window(int32_t *ids, const unsigned char *bytes, int64_t n, int64_t L, int64_t V, uint64_t seed,
                        uint64_t index) {
    int64_t start = n > L ? (int64_t)(mix(seed ^ mix(index)) % (uint64_t)(n - L)) : 0;
    for (int64_t t = 0; t < L; t++) ids[t] = text_encode_byte(bytes[(start + t) % n], V);
}

typedef struct eval_result { double loss, accuracy; } eval_result;

/* Mean loss (nats per counted token) and accuracy on held-out data. */
static rf_status evaluate(rf_model *m, const opts *o, const unsigned char *held, int64_t nheld, eval_result *res) {
    const rf_config *c = rf_model_config(m);
    int64_t B = o->batch, L = o->length, V = c->vocab_size;
    int32_t *ids = malloc((size_t)(B * L) * 4), *tg = malloc((size_t)(B * L) * 4);
    float *logits = malloc((size_t)(L * V) * 4);
    rf_tensor t = {0};
    rf_status s = RF_ERR_OUT_OF_MEMORY;
    if (!ids || !tg || !logits) fprintf(stderr, "reformer train: no host memory for the evaluation batches\n");
    else s = rf_tensor_alloc(rf_model_device(m), &t, RF_F32, 3, (int64_t[]){B, L, V});
    double nll = 0;
    int64_t counted = 0, correct = 0;
    for (int64_t e = 0; s == RF_OK && e < o->eval_batches; e++) {
        for (int64_t b = 0; b < B; b++) {
            uint64_t index = (1ull << 40) + (uint64_t)(e * B + b); /* never a training sequence */
            if (o->copy) copy_sequence(ids + b * L, tg + b * L, L, (int)V, o->seed, index);
            else {
                text_window(ids + b * L, held, nheld, L, V, o->seed, index);
                for (int64_t i = 0; i < L; i++) tg[b * L + i] = i + 1 < L ? ids[b * L + i + 1] : -1;
            }
        }
        s = rf_model_forward(m, &t, ids, NULL, B, L, NULL);
        for (int64_t b = 0; s == RF_OK && b < B; b++) {
            s = rf_buffer_download(t.buf, (size_t)(b * L * V) * 4, logits, (size_t)(L * V) * 4);
            for (int64_t i = 0; s == RF_OK && i < L; i++) {
                int32_t want = tg[b * L + i];
                if (want < 0) continue;
                const float *row = logits + i * V;
                int32_t best = 0;
                double mx = row[0], sum = 0;
                for (int64_t v = 1; v < V; v++)
                    if (row[v] > row[best]) best = (int32_t)v, mx = row[v];
                for (int64_t v = 0; v < V; v++) sum += exp(row[v] - mx);
                nll += mx + log(sum) - row[want];
                correct += best == want;
                counted++;
            }
        }
    }
    if (t.buf) rf_tensor_free(&t);
    free(ids), free(tg), free(logits);
    res->loss = counted ? nll / (double)counted : 0;
    res->accuracy = counted ? (double)correct / (double)counted : 0;
    return s;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse(int argc, char **argv, opts *o) {
    *o = (opts){.steps = 600, .batch = 16, .accumulate = 1, .eval_every = 100, .save_every = 200, .eval_batches = 4,
                .hashes = 2,
                .attn = "local,lsh", .hidden = 64, .heads = 2, .vocab = 16, .chunk = 16, .lr = 2e-3, .seed = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        long long x = v ? strtoll(v, &end, 10) : 0;
        int num = v && *v && end && !*end;
        if (!strcmp(a, "--task") && v && !strcmp(v, "copy")) o->copy = 1, i++;
        else if (!strcmp(a, "--text") && v) o->text = v, i++;
        else if (!strcmp(a, "--device") && v) o->device = v, i++;
        else if (!strcmp(a, "--out") && v) o->out = v, i++;
        else if (!strcmp(a, "--resume") && v) o->resume = v, i++;
        else if (!strcmp(a, "--init") && v) o->init = v, i++;
        else if (!strcmp(a, "--config") && v) o->config = v, i++;
        else if (!strcmp(a, "--attn") && v) o->attn = v, i++;
        else if (!strcmp(a, "--eval-hashes") && v) {
            o->n_eval_hashes = 0;
            for (const char *p = v; *p && o->n_eval_hashes < 8;) {
                char *e;
                long r = strtol(p, &e, 10);
                if (e == p || r < 1 || r > 64 || (*e && *e != ',')) goto bad;
                o->eval_hashes[o->n_eval_hashes++] = (int)r;
                p = *e ? e + 1 : e;
            }
            i++;
        }
        else if (!strcmp(a, "--lr") && v) o->lr = strtod(v, NULL), i++;
        else if (!strcmp(a, "--seed") && num) o->seed = (unsigned long long)x, i++;
        else if (num && x > 0) {
            i++;
            /* Sizes stay small enough that their products (B·L·4 bytes, s0·s1) never overflow. */
            if (x > (1 << 24) && strcmp(a, "--steps") && strcmp(a, "--eval-every") && strcmp(a, "--save-every")) goto bad;
            if (!strcmp(a, "--steps")) o->steps = x;
            else if (!strcmp(a, "--batch")) o->batch = x;
            else if (!strcmp(a, "--accumulate")) o->accumulate = x;
            else if (!strcmp(a, "--length")) o->length = x;
            else if (!strcmp(a, "--hashes")) o->hashes = (int)x;
            else if (!strcmp(a, "--hidden")) o->hidden = (int)x;
            else if (!strcmp(a, "--heads")) o->heads = (int)x;
            else if (!strcmp(a, "--vocab")) o->vocab = (int)x;
            else if (!strcmp(a, "--chunk")) o->chunk = (int)x;
            else if (!strcmp(a, "--eval-every")) o->eval_every = x;
            else if (!strcmp(a, "--save-every")) o->save_every = x;
            else if (!strcmp(a, "--eval-batches")) o->eval_batches = x;
            else goto bad;
        } else {
        bad:
            fprintf(stderr, "reformer train: unknown option, missing or bad value at '%s' (see --help)\n", a);
            return 0;
        }
    }
    if (!!o->resume + !!o->init + !!o->config > 1) {
        fprintf(stderr, "reformer train: give at most one of --resume, --init and --config\n");
        return 0;
    }
    if (o->copy == !!o->text) {
        fprintf(stderr, "reformer train: give exactly one of --task copy or --text FILE\n");
        return 0;
    }
    if (!o->length) o->length = o->copy ? 64 : 256;
    if (o->copy && (o->vocab < 3 || o->length < 4 || o->length % 2)) {
        fprintf(stderr, "reformer train: the copy task needs --vocab >= 3 and an even --length >= 4\n");
        return 0;
    }
    o->layers = 0;
    for (const char *p = o->attn; *p && o->layers < RF_CONFIG_MAX_LAYERS;) {
        size_t n = strcspn(p, ",");
        if (n == 3 && !strncmp(p, "lsh", 3)) o->types[o->layers++] = RF_ATTN_LSH;
        else if (n == 5 && !strncmp(p, "local", 5)) o->types[o->layers++] = RF_ATTN_LOCAL;
        else {
            fprintf(stderr, "reformer train: --attn takes a comma list of 'local' and 'lsh', not '%s'\n", o->attn);
            return 0;
        }
        p += n + (p[n] == ',');
    }
    if (o->lr <= 0 || o->hidden % (2 * o->heads) || o->layers == 0) {
        fprintf(stderr, "reformer train: --lr must be > 0, --hidden a multiple of 2*heads, --attn non-empty\n");
        return 0;
    }
    return 1;
}

/* A fresh model for the task: causal layers as --attn lists, axial positions. */
static rf_config task_config(const opts *o) {
    rf_config c;
    rf_config_default(&c);
    c.num_layers = o->layers;
    for (int i = 0; i < c.num_layers; i++) c.attn_layers[i] = o->types[i];
    c.hidden_size = o->hidden;
    c.num_attention_heads = o->heads;
    c.attention_head_size = o->hidden / o->heads;
    c.feed_forward_size = 2 * o->hidden;
    c.vocab_size = o->copy ? o->vocab : 258;
    c.num_hashes = o->hashes;
    c.num_bucket_factors = 0;
    c.lsh_attn_chunk_length = o->chunk;
    c.local_attn_chunk_length = o->chunk;
    c.is_decoder = true;
    c.hidden_dropout_prob = c.lsh_attention_probs_dropout_prob = c.local_attention_probs_dropout_prob = 0;
    int s0 = 1;
    while ((int64_t)s0 * s0 < o->length) s0 *= 2;
    c.axial_pos_embds = true;
    c.axial_pos_shape[0] = s0;
    c.axial_pos_shape[1] = (int)((o->length + s0 - 1) / s0);
    c.axial_pos_embds_dim[0] = o->hidden / 2;
    c.axial_pos_embds_dim[1] = o->hidden - o->hidden / 2;
    c.max_position_embeddings = c.axial_pos_shape[0] * c.axial_pos_shape[1];
    c.pad_token_id = 0;
    /* Tokens must not drown under positions: HF's defaults (word 0.02, axial
     * 1.0) are made for long pre-training, not a few hundred steps. */
    c.initializer_range = 0.1;
    c.axial_norm_std = 0.1;
    return c;
}

int cmd_train(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        help();
        return RF_EXIT_OK;
    }
    opts o;
    if (!parse(argc, argv, &o)) return RF_EXIT_USAGE;
    unsigned char *bytes = NULL;
    int64_t nbytes = 0, ntrain = 0;
    if (o.text) {
        FILE *f = fopen(o.text, "rb");
        if (!f) {
            fprintf(stderr, "reformer train: cannot open '%s'\n", o.text);
            return RF_EXIT_FAIL;
        }
        fseek(f, 0, SEEK_END);
        nbytes = ftell(f);
        fseek(f, 0, SEEK_SET);
        bytes = malloc(nbytes > 0 ? (size_t)nbytes : 1);
        nbytes = (int64_t)fread(bytes, 1, (size_t)(nbytes > 0 ? nbytes : 0), f);
        fclose(f);
        ntrain = nbytes * 95 / 100;
        if (ntrain < o.length || nbytes - ntrain < o.length) {
            fprintf(stderr, "reformer train: '%s' has %lld bytes; need 20 windows of --length %lld\n", o.text,
                    (long long)nbytes, (long long)o.length);
            free(bytes);
            return RF_EXIT_USAGE;
        }
    }
    rf_device *dev;
    rf_status s = rf_device_open(&dev, o.device);
    if (s) {
        free(bytes);
        return cli_fail("train", s);
    }
    rf_model *m = NULL;
    uint64_t position = 0; /* sequences consumed */
    if (o.resume) {
        s = rf_checkpoint_load(&m, dev, o.resume, &position);
        if (!o.out) o.out = o.resume;
    } else if (o.init) {
        s = rf_model_load(&m, dev, o.init);
    } else if (o.config) {
        rf_config c;
        s = rf_config_load_json(&c, o.config);
        if (s == RF_OK) s = rf_model_create(&m, dev, &c, o.seed);
    } else {
        rf_config c = task_config(&o);
        s = rf_model_create(&m, dev, &c, o.seed);
    }
    if (s) {
        free(bytes);
        rf_device_close(dev);
        return cli_fail("train", s);
    }
    rf_device_info info;
    rf_device_get_info(dev, &info);
    rf_train_config tc;
    rf_train_config_default(&tc);
    tc.lr = (float)o.lr;
    tc.warmup_steps = 50;
    int tty = isatty(STDOUT_FILENO);
    const rf_config *c = rf_model_config(m);
    printf("reformer train: %s on %s (%s), %d layers, D %d, %d hash rounds, L %lld, batch %lld, %lld steps\n",
           o.copy ? "copy task" : o.text, info.id, info.name, c->num_layers, c->hidden_size, c->num_hashes,
           (long long)o.length, (long long)o.batch, (long long)o.steps);
    int64_t B = o.batch, L = o.length;
    int32_t *ids = malloc((size_t)(B * L) * 4), *tg = malloc((size_t)(B * L) * 4);
    if (!ids || !tg) {
        fprintf(stderr, "reformer train: no host memory for a batch of %lld × %lld tokens\n", (long long)B, (long long)L);
        free(ids), free(tg), free(bytes);
        rf_model_free(m);
        rf_device_close(dev);
        return RF_EXIT_FAIL;
    }
    double t0 = now_s(), avg = 0;
    int64_t start = rf_model_steps(m);
    eval_result ev = {0, 0};
    for (int64_t step = start + 1; s == RF_OK && step <= o.steps; step++) {
        /* --accumulate micro-batches of --batch sequences make one step. */
        float loss = 0, norm = 0;
        for (int64_t micro = 0; s == RF_OK && micro < o.accumulate; micro++) {
            for (int64_t b = 0; b < B; b++, position++) {
                if (o.copy) copy_sequence(ids + b * L, tg + b * L, L, c->vocab_size, o.seed, position);
                else {
                    text_window(ids + b * L, bytes, ntrain, L, c->vocab_size, o.seed, position);
                    for (int64_t i = 0; i < L; i++) tg[b * L + i] = i + 1 < L ? ids[b * L + i + 1] : -1;
                }
            }
            float part = 0;
            s = rf_model_backward(m, ids, tg, B, L, &part);
            loss += part / (float)o.accumulate;
        }
        if (s == RF_OK) s = rf_model_step(m, &tc, (int)o.accumulate, &norm);
        if (s) break;
        avg = step == start + 1 ? loss : 0.95 * avg + 0.05 * loss;
        double el = now_s() - t0, tps = (double)((step - start) * o.accumulate * B * L) / el;
        double eta = el / (double)(step - start) * (double)(o.steps - step);
        if (tty)
            printf("\r  step %5lld/%lld  loss %.4f  %s %.3f  %.0f tok/s  ETA %4.0fs ", (long long)step,
                   (long long)o.steps, avg, o.copy ? "acc" : "bpb", o.copy ? ev.accuracy : ev.loss / log(2.0), tps, eta);
        if (step % o.eval_every == 0 || step == o.steps) {
            s = evaluate(m, &o, bytes + ntrain, nbytes - ntrain, &ev);
            if (s) break;
            printf("%sstep %lld: train loss %.4f, held-out loss %.4f, %s %.4f, %.0f tokens/s\n", tty ? "\n" : "",
                   (long long)step, avg, ev.loss, o.copy ? "accuracy" : "bits per byte",
                   o.copy ? ev.accuracy : ev.loss / log(2.0), tps);
        }
        if (o.out && (step % o.save_every == 0 || step == o.steps)) s = rf_checkpoint_save(m, o.out, position);
        fflush(stdout);
    }
    int trained = c->num_hashes;
    for (int k = 0; s == RF_OK && k < o.n_eval_hashes; k++) {
        /* The paper's Table 2: evaluate with other numbers of hash rounds. */
        eval_result other;
        s = rf_model_set_num_hashes(m, o.eval_hashes[k]);
        if (s == RF_OK) s = evaluate(m, &o, bytes + ntrain, nbytes - ntrain, &other);
        if (s == RF_OK)
            printf("evaluated with %d hash rounds (trained with %d): %s %.4f\n", o.eval_hashes[k], trained,
                   o.copy ? "accuracy" : "bits per byte", o.copy ? other.accuracy : other.loss / log(2.0));
    }
    if (s == RF_OK) {
        if (o.copy) printf("held-out accuracy: %.4f (loss %.4f)\n", ev.accuracy, ev.loss);
        else printf("held-out bits per byte: %.4f\n", ev.loss / log(2.0));
    }
    free(ids), free(tg), free(bytes);
    rf_model_free(m);
    rf_device_close(dev);
    return s ? cli_fail("train", s) : RF_EXIT_OK;
}
