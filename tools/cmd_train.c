/* `reformer train`: the paper's duplication task (--task copy) or a
 * byte-level language model on a text file (--text FILE), with periodic
 * evaluation, checkpoints and resume. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "core/core.h"
#include "reformer/model.h"
#include "text.h"
#include "train_dist.h"

typedef struct opts {
    const char *device, *text, *out, *resume, *attn, *init, *config;
    int copy, overwrite;
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
           "  --out DIR            checkpoint folder (default: none, no checkpoints); locked while training\n"
           "  --resume DIR         continue from DIR's latest checkpoint (and keep saving there)\n"
           "  --overwrite          start over in a non-empty --out: its ckpt-* and latest are deleted\n"
           "                       (otherwise a folder that holds anything is refused)\n"
           "  --init DIR           start from a model (config.json + model.safetensors, e.g. an HF\n"
           "                       checkpoint) instead of a new one; its config decides the layers\n"
           "  --config FILE        a new model from an HF config.json instead of the task's defaults\n"
           "  --seed S             the seed of data, initialisation and hashing (default 1)\n"
           "  --device NAME        cpu, cl:P:D, a name substring, or auto (default $RF_DEVICE / auto);\n"
           "                       under mpirun a list (one per rank of a machine: cl:0:0,cl:0:1) or\n"
           "                       a rule with local_rank (cl:0:local_rank)\n\n"
           "Data-parallel: mpirun -np N reformer train ... runs N ranks (--hostfile for several\n"
           "machines), each with its own device and --accumulate micro-batches of --batch; their\n"
           "gradients are summed (MPI_Allreduce) into one step: the same as one process with\n"
           "--accumulate N x A. Rank 0 alone prints, evaluates and saves; --resume works with any N.\n\n"
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

/* An integer option into an int64_t or int field (the strict parser, cli.h). */
#define INT_OPT(opt, lo, hi, field)                                                                                  \
    else if (!strcmp(a, opt)) {                                                                                      \
        long long x_;                                                                                                \
        if (!cli_int("train", a, v, lo, hi, &x_)) return 0;                                                          \
        o->field = x_;                                                                                               \
        i++;                                                                                                         \
    }

/* A path option: present and not empty. */
static int path_opt(const char *a, const char *v, const char **field) {
    if (!v) {
        fprintf(stderr, "reformer train: %s needs a value\n", a);
        return 0;
    }
    if (!*v) {
        fprintf(stderr, "reformer train: %s: an empty path names no file or folder\n", a);
        return 0;
    }
    *field = v;
    return 1;
}

static int parse(int argc, char **argv, opts *o) {
    *o = (opts){.steps = 600, .batch = 16, .accumulate = 1, .eval_every = 100, .save_every = 200, .eval_batches = 4,
                .hashes = 2,
                .attn = "local,lsh", .hidden = 64, .heads = 2, .vocab = 16, .chunk = 16, .lr = 2e-3, .seed = 1};
    /* Sizes stay small enough that their products (B·L·4 bytes, s0·s1) never overflow. */
    const long long SIZE_MAX_OPT = 1 << 24, COUNT_MAX_OPT = 1000000000000ll;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--overwrite")) {
            o->overwrite = 1;
            continue;
        }
        if (!strcmp(a, "--task")) {
            if (!v || strcmp(v, "copy")) {
                fprintf(stderr, "reformer train: --task takes 'copy', not '%s'\n", v ? v : "");
                return 0;
            }
            o->copy = 1, i++;
        } else if (!strcmp(a, "--text") || !strcmp(a, "--out") || !strcmp(a, "--resume") || !strcmp(a, "--init") ||
                   !strcmp(a, "--config")) {
            const char **f = a[2] == 't' ? &o->text : a[2] == 'o' ? &o->out : a[2] == 'r' ? &o->resume
                           : a[2] == 'i' ? &o->init : &o->config;
            if (!path_opt(a, v, f)) return 0;
            i++;
        } else if (!strcmp(a, "--device") && v) o->device = v, i++;
        else if (!strcmp(a, "--attn") && v) o->attn = v, i++;
        else if (!strcmp(a, "--eval-hashes")) {
            long long r[8];
            if (!cli_int_list("train", a, v, 1, 64, r, 8, &o->n_eval_hashes)) return 0;
            for (int k = 0; k < o->n_eval_hashes; k++) o->eval_hashes[k] = (int)r[k];
            i++;
        } else if (!strcmp(a, "--lr")) {
            if (!cli_double("train", a, v, 0, 100, 1, &o->lr)) return 0;
            i++;
        } else if (!strcmp(a, "--seed")) {
            if (!cli_u64("train", a, v, &o->seed)) return 0;
            i++;
        }
        INT_OPT("--steps", 1, COUNT_MAX_OPT, steps)
        INT_OPT("--batch", 1, SIZE_MAX_OPT, batch)
        INT_OPT("--accumulate", 1, SIZE_MAX_OPT, accumulate)
        INT_OPT("--length", 1, SIZE_MAX_OPT, length)
        INT_OPT("--hashes", 1, 64, hashes)
        INT_OPT("--hidden", 1, SIZE_MAX_OPT, hidden)
        INT_OPT("--heads", 1, SIZE_MAX_OPT, heads)
        INT_OPT("--vocab", 3, SIZE_MAX_OPT, vocab)
        INT_OPT("--chunk", 1, SIZE_MAX_OPT, chunk)
        INT_OPT("--eval-every", 1, COUNT_MAX_OPT, eval_every)
        INT_OPT("--save-every", 1, COUNT_MAX_OPT, save_every)
        INT_OPT("--eval-batches", 1, SIZE_MAX_OPT, eval_batches)
        else {
            fprintf(stderr, "reformer train: unknown option, missing or bad value at '%s' (see --help)\n", a);
            return 0;
        }
    }
    if (o->overwrite && (!o->out || (o->resume && !strcmp(o->out, o->resume)))) {
        fprintf(stderr, "reformer train: --overwrite needs --out DIR (and never deletes the folder --resume reads)\n");
        return 0;
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
    for (const char *p = o->attn; *p;) {
        size_t n = strcspn(p, ",");
        if (o->layers == RF_CONFIG_MAX_LAYERS) { /* never drop the rest silently */
            fprintf(stderr, "reformer train: --attn: '%.80s' has more than %d layers\n", o->attn, RF_CONFIG_MAX_LAYERS);
            return 0;
        }
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

/* ---- the output folder: checked, locked and (with --overwrite) cleared
 * before any work, so a mistake costs nothing and loses nothing. */

static int is_checkpoint_entry(const char *name) {
    return !strncmp(name, "ckpt-", 5) || !strcmp(name, "latest") || !strncmp(name, "latest.tmp.", 11);
}

/* Remove ckpt-* folders (our files inside, then the folder) and `latest`. */
static int clear_checkpoints(const char *out) {
    DIR *d = opendir(out);
    if (!d) return 0;
    struct dirent *e;
    char path[4096], inner[4400];
    int ok = 1;
    while ((e = readdir(d))) {
        if (!is_checkpoint_entry(e->d_name)) continue;
        snprintf(path, sizeof path, "%s/%s", out, e->d_name);
        DIR *c = opendir(path);
        if (c) {
            struct dirent *f;
            while ((f = readdir(c)))
                if (strcmp(f->d_name, ".") && strcmp(f->d_name, "..")) {
                    snprintf(inner, sizeof inner, "%s/%s", path, f->d_name);
                    unlink(inner);
                }
            closedir(c);
            if (rmdir(path) != 0) ok = 0;
        } else if (unlink(path) != 0) {
            ok = 0;
        }
        if (!ok) {
            fprintf(stderr, "reformer train: --overwrite: cannot remove '%s': %s\n", path, strerror(errno));
            break;
        }
    }
    closedir(d);
    return ok;
}

/* Refuse a folder that holds anything but our lock: the names of up to three
 * entries go into the message. */
static int check_empty(const char *out, const char *resume) {
    DIR *d = opendir(out);
    if (!d) return 1;
    struct dirent *e;
    char names[256] = "";
    int n = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, ".lock")) continue;
        if (n++ < 3) {
            size_t used = strlen(names);
            snprintf(names + used, sizeof names - used, "%s'%.60s'", used ? ", " : "", e->d_name);
        }
    }
    closedir(d);
    if (!n) return 1;
    fprintf(stderr,
            "reformer train: --out '%s' is not empty (%s%s); continue its training with --resume %s, or start over "
            "with --overwrite%s\n",
            out, names, n > 3 ? ", ..." : "", out, resume ? " (and another --out)" : "");
    return 0;
}

/* Lock OUT/.lock (fcntl, released when the process ends) and write our pid
 * in it; if another process holds it, say which. Returns the fd or -1. */
static int lock_out(const char *out) {
    char path[4096];
    snprintf(path, sizeof path, "%s/.lock", out);
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    if (fd < 0) {
        fprintf(stderr, "reformer train: --out: cannot create the lock file '%s': %s\n", path, strerror(errno));
        return -1;
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(fd, F_SETLK, &fl) != 0) {
        struct flock who = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        long pid = fcntl(fd, F_GETLK, &who) == 0 && who.l_type != F_UNLCK ? (long)who.l_pid : 0;
        if (!pid) {
            char text[32] = "";
            ssize_t got = pread(fd, text, sizeof text - 1, 0);
            pid = got > 0 ? strtol(text, NULL, 10) : 0;
        }
        if (pid > 0)
            fprintf(stderr, "reformer train: --out '%s' is in use by another training (pid %ld holds '%s'); wait for "
                            "it to end or choose another folder\n", out, pid, path);
        else
            fprintf(stderr, "reformer train: --out '%s' is in use by another training (it holds '%s'); wait for it "
                            "to end or choose another folder\n", out, path);
        close(fd);
        return -1;
    }
    char text[32];
    int n = snprintf(text, sizeof text, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)n, 0) != n)
        fprintf(stderr, "reformer train: note: cannot write the pid into '%s'\n", path);
    return fd;
}

/* Everything about --out before any work: made, locked, empty unless
 * --resume or --overwrite. The lock fd (or -1 when there is no --out). */
static int prepare_out(const opts *o, int *fd) {
    *fd = -1;
    if (!o->out) return RF_EXIT_OK;
    struct stat st;
    if (o->resume && !strcmp(o->out, o->resume)) {
        /* Resuming in place: the folder must exist (else the load says why). */
        if (stat(o->out, &st) != 0 || !S_ISDIR(st.st_mode)) return RF_EXIT_OK;
    } else if (rf_mkdir_p(o->out) != RF_OK) {
        fprintf(stderr, "reformer train: --out: %s\n", rf_last_error());
        return RF_EXIT_FAIL;
    }
    /* Checked before the lock too, so that a refusal leaves no lock file in
     * a folder of the user's; and again under the lock, against a training
     * that filled it in between. */
    int resuming_here = o->resume && !strcmp(o->out, o->resume);
    int must_be_empty = !resuming_here && !o->overwrite;
    if (must_be_empty && !check_empty(o->out, o->resume)) return RF_EXIT_USAGE;
    if ((*fd = lock_out(o->out)) < 0) return RF_EXIT_FAIL;
    if (must_be_empty && !check_empty(o->out, o->resume)) return RF_EXIT_USAGE;
    return RF_EXIT_OK;
}

/* The model's positions (axial: the product of the shape). */
static int64_t model_positions(const rf_config *c) {
    return c->axial_pos_embds ? (int64_t)c->axial_pos_shape[0] * c->axial_pos_shape[1] : c->max_position_embeddings;
}

/* Does the model fit the task? Refuse at the start, naming the option. */
static int check_fit(const opts *o, const rf_config *c) {
    const char *from = o->resume ? "--resume" : o->init ? "--init" : o->config ? "--config" : NULL;
    const char *path = o->resume ? o->resume : o->init ? o->init : o->config;
    if (!from) return RF_EXIT_OK; /* task_config made it to fit */
    if (o->text && c->vocab_size < 258) {
        fprintf(stderr, "reformer train: --text needs a model of byte tokens (vocab_size >= 258); the model of %s '%s' "
                        "has vocab_size %d (a --task copy model?)\n", from, path, c->vocab_size);
        return RF_EXIT_FAIL;
    }
    if (o->copy && c->vocab_size < 3) {
        fprintf(stderr, "reformer train: --task copy needs vocab_size >= 3; the model of %s '%s' has %d\n", from, path,
                c->vocab_size);
        return RF_EXIT_FAIL;
    }
    if (o->length > model_positions(c)) {
        fprintf(stderr, "reformer train: --length %lld exceeds the %lld positions of the model of %s '%s'\n",
                (long long)o->length, (long long)model_positions(c), from, path);
        return RF_EXIT_USAGE;
    }
    return RF_EXIT_OK;
}

static int train(opts o, const dist *d);

int cmd_train(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        help();
        return RF_EXIT_OK;
    }
    opts o;
    if (!parse(argc, argv, &o)) return RF_EXIT_USAGE;
    /* --resume RUN/latest means the run folder RUN (where saving goes on). */
    char root[4096];
    struct stat st;
    if (o.resume && stat(o.resume, &st) == 0 && S_ISREG(st.st_mode)) {
        const char *slash = strrchr(o.resume, '/');
        if (!slash) snprintf(root, sizeof root, ".");
        else snprintf(root, sizeof root, "%.*s", slash == o.resume ? 1 : (int)(slash - o.resume), o.resume);
        if (o.out == o.resume) o.out = root;
        o.resume = root;
    }
    if (o.resume && !o.out) o.out = o.resume;
    dist d;
    if (!dist_init(&d)) return RF_EXIT_FAIL;
    int rc = train(o, &d);
    dist_finalize(&d);
    return rc;
}

static int train(opts o, const dist *d) {
    unsigned char *bytes = NULL;
    int64_t nbytes = 0, ntrain = 0;
    if (o.text) {
        size_t got;
        if (!cli_read_input("train", "--text", o.text, &bytes, &got)) return RF_EXIT_FAIL;
        nbytes = (int64_t)got;
        ntrain = nbytes * 95 / 100;
        if (nbytes == 0) {
            fprintf(stderr, "reformer train: --text: '%s' is empty: nothing to train on\n", o.text);
            free(bytes);
            return RF_EXIT_FAIL;
        }
        if (ntrain < o.length || nbytes - ntrain < o.length) {
            fprintf(stderr, "reformer train: '%s' has %lld bytes; need 20 windows of --length %lld\n", o.text,
                    (long long)nbytes, (long long)o.length);
            free(bytes);
            return RF_EXIT_USAGE;
        }
    }
    /* Rank 0 alone owns --out; the others only read (--resume). */
    int lock = -1, rc = d->rank == 0 ? prepare_out(&o, &lock) : RF_EXIT_OK;
    if (cli_dry_run) {
        if (lock >= 0) close(lock);
        free(bytes);
        return rc;
    }
    rf_device *dev = NULL;
    rf_model *m = NULL;
    rf_status s = RF_OK;
    char devname[256];
    if (rc != RF_EXIT_OK) {
    } else if (!dist_device(d, o.device, devname, sizeof devname)) {
        rc = RF_EXIT_USAGE;
    } else if ((s = rf_device_open(&dev, devname))) {
        rc = cli_fail("train", s);
    }
    uint64_t position = 0; /* sequences consumed (by all ranks) */
    if (rc != RF_EXIT_OK) {
    } else if (o.resume) {
        s = rf_checkpoint_load(&m, dev, o.resume, &position);
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
    int32_t *ids = NULL, *tg = NULL;
    float *fused = NULL; /* every gradient and the loss: the one buffer a step sums over the ranks */
    size_t ngrad = 0;
    const rf_config *c = s == RF_OK && m ? rf_model_config(m) : NULL;
    int64_t start = c ? rf_model_steps(m) : 0;
    if (rc != RF_EXIT_OK) {
    } else if (s) rc = cli_fail("train", s);
    else if ((rc = check_fit(&o, c))) {
    } else if (start >= o.steps) {
        /* Nothing to do is not a success: say so, and what is there. */
        fprintf(stderr, "reformer train: nothing to do: the model of %s '%s' is at step %lld and --steps is %lld "
                        "(raise --steps to train further)\n", o.resume ? "--resume" : "--init",
                o.resume ? o.resume : o.init, (long long)start, (long long)o.steps);
        rc = RF_EXIT_FAIL;
    } else if (d->rank == 0 && o.overwrite && !clear_checkpoints(o.out)) {
        rc = RF_EXIT_FAIL;
    } else {
        ids = malloc((size_t)(o.batch * o.length) * 4), tg = malloc((size_t)(o.batch * o.length) * 4);
        if (d->size > 1 && rf_model_grad_count(m, &ngrad) == RF_OK) fused = malloc((ngrad + 1) * sizeof *fused);
        if (!ids || !tg || (d->size > 1 && !fused)) {
            fprintf(stderr, "reformer train: no host memory for a batch of %lld × %lld tokens and the gradients\n",
                    (long long)o.batch, (long long)o.length);
            rc = RF_EXIT_FAIL;
        }
    }
    /* Every rank starts, or none: a rank that cannot has said why. */
    if (rc != RF_EXIT_OK && d->size > 1)
        fprintf(stderr, "reformer train: rank %d of %d could not start (above); no rank trains\n", d->rank, d->size);
    if (!dist_all_ok(d, rc == RF_EXIT_OK) && rc == RF_EXIT_OK) rc = RF_EXIT_FAIL;
    if (rc != RF_EXIT_OK) {
        free(ids), free(tg), free(fused), free(bytes);
        rf_model_free(m);
        rf_device_close(dev);
        if (lock >= 0) close(lock);
        return rc;
    }
    rf_device_info info;
    rf_device_get_info(dev, &info);
    rf_train_config tc;
    rf_train_config_default(&tc);
    tc.lr = (float)o.lr;
    tc.warmup_steps = 50;
    /* Under mpirun a rank's stdout is a pty even when the job's output goes to
     * a file: log lines only, no progress bar. */
    int lead = d->rank == 0, tty = lead && !d->mpi && isatty(STDOUT_FILENO);
    /* A step is M micro-batches of B sequences: A on each of the N ranks.
     * Rank r takes micro-batches r·A .. r·A+A-1 of the step, in the data and
     * in the forward-call counter that draws the LSH rotations (§2): exactly
     * what one process with --accumulate M computes. */
    int64_t B = o.batch, L = o.length, A = o.accumulate, M = A * d->size, saved = -1;
    if (lead)
        printf("reformer train: %s on %s (%s), %d layers, D %d, %d hash rounds, L %lld, batch %lld, %lld steps\n",
               o.copy ? "copy task" : o.text, info.id, info.name, c->num_layers, c->hidden_size, c->num_hashes,
               (long long)o.length, (long long)o.batch, (long long)o.steps);
    if (lead && d->size > 1)
        printf("data-parallel: %d ranks on %d machine(s) of up to %d, %lld micro-batches of %lld per step, %zu "
               "gradient floats summed per step\n", d->size, d->size / d->local_size, d->local_size, (long long)M,
               (long long)B, ngrad);
    /* TEST-ONLY fault injection (tests/test_mpi.c): RF_TEST_FAIL_STEP=n makes
     * this process's backward pass fail at step n as a device error would. */
    const char *inject = getenv("RF_TEST_FAIL_STEP");
    int64_t fail_at = inject ? strtoll(inject, NULL, 10) : 0;
    double t0 = now_s(), avg = 0, reduce_s = 0;
    eval_result ev = {0, 0};
    const char *failed = NULL;
    for (int64_t step = start + 1; s == RF_OK && step <= o.steps; step++) {
        float loss = 0, norm = 0;
        uint64_t calls = rf_model_forward_calls(m), first = position + (uint64_t)(d->rank * A * B);
        s = rf_model_set_forward_calls(m, calls + (uint64_t)(d->rank * A));
        for (int64_t micro = 0; s == RF_OK && micro < A; micro++) {
            for (int64_t b = 0; b < B; b++) {
                uint64_t index = first + (uint64_t)(micro * B + b);
                if (o.copy) copy_sequence(ids + b * L, tg + b * L, L, c->vocab_size, o.seed, index);
                else {
                    text_window(ids + b * L, bytes, ntrain, L, c->vocab_size, o.seed, index);
                    for (int64_t i = 0; i < L; i++) tg[b * L + i] = i + 1 < L ? ids[b * L + i + 1] : -1;
                }
            }
            float part = 0;
            s = step == fail_at ? rf_error(RF_ERR_DEVICE, "a device error injected at step %lld (RF_TEST_FAIL_STEP)",
                                           (long long)step)
                                : rf_model_backward(m, ids, tg, B, L, &part);
            loss += part;
        }
        position += (uint64_t)(M * B);
        if (s == RF_OK && d->size > 1) {
            /* The all-reduce: one fused buffer, summed in place on the host. */
            double t = now_s();
            s = rf_model_grads_download(m, fused, ngrad);
            fused[ngrad] = loss;
            if (s == RF_OK && !dist_sum(d, fused, ngrad + 1)) failed = "MPI_Allreduce of the gradients failed";
            if (s == RF_OK && !failed) s = rf_model_grads_upload(m, fused, ngrad);
            loss = fused[ngrad];
            reduce_s += now_s() - t;
        }
        loss /= (float)M;
        if (s == RF_OK && !failed) s = rf_model_set_forward_calls(m, calls + (uint64_t)M);
        if (s == RF_OK && !failed) s = rf_model_step(m, &tc, (int)M, &norm);
        /* Weights or moments gone NaN/Inf are never saved nor trained on. */
        if (s == RF_OK && !failed) s = rf_model_check_finite(m);
        if (s || failed) break;
        avg = step == start + 1 ? loss : 0.95 * avg + 0.05 * loss;
        double el = now_s() - t0, tps = (double)((step - start) * M * B * L) / el;
        double eta = el / (double)(step - start) * (double)(o.steps - step);
        if (tty)
            printf("\r  step %5lld/%lld  loss %.4f  %s %.3f  %.0f tok/s  ETA %4.0fs ", (long long)step,
                   (long long)o.steps, avg, o.copy ? "acc" : "bpb", o.copy ? ev.accuracy : ev.loss / log(2.0), tps, eta);
        if (step % o.eval_every == 0 || step == o.steps) {
            /* Rank 0 evaluates; the others count its forward calls. */
            if (lead) s = evaluate(m, &o, bytes + ntrain, nbytes - ntrain, &ev);
            else s = rf_model_set_forward_calls(m, rf_model_forward_calls(m) + (uint64_t)o.eval_batches);
            if (s) break;
            if (lead)
                printf("%sstep %lld: train loss %.4f, held-out loss %.4f, %s %.4f, %.0f tokens/s\n", tty ? "\n" : "",
                       (long long)step, avg, ev.loss, o.copy ? "accuracy" : "bits per byte",
                       o.copy ? ev.accuracy : ev.loss / log(2.0), tps);
        }
        if (lead && o.out && (step % o.save_every == 0 || step == o.steps)) {
            s = rf_checkpoint_save(m, o.out, position);
            if (s == RF_OK) saved = step;
        }
        fflush(stdout);
    }
    /* A rank that failed ends them all (the others may wait in a collective). */
    if ((s || failed) && d->size > 1) dist_abort(d, failed ? failed : rf_last_error());
    if (lead && s == RF_OK && d->size > 1) {
        double el = now_s() - t0;
        printf("data-parallel: all-reduce %.3f s of %.3f s (%.1f%%)\n", reduce_s, el, el > 0 ? 100 * reduce_s / el : 0);
    }
    int trained = c->num_hashes;
    for (int k = 0; lead && s == RF_OK && k < o.n_eval_hashes; k++) {
        /* The paper's Table 2: evaluate with other numbers of hash rounds. */
        eval_result other;
        s = rf_model_set_num_hashes(m, o.eval_hashes[k]);
        if (s == RF_OK) s = evaluate(m, &o, bytes + ntrain, nbytes - ntrain, &other);
        if (s == RF_OK)
            printf("evaluated with %d hash rounds (trained with %d): %s %.4f\n", o.eval_hashes[k], trained,
                   o.copy ? "accuracy" : "bits per byte", o.copy ? other.accuracy : other.loss / log(2.0));
    }
    if (lead && s == RF_OK) {
        if (o.copy) printf("held-out accuracy: %.4f (loss %.4f)\n", ev.accuracy, ev.loss);
        else printf("held-out bits per byte: %.4f\n", ev.loss / log(2.0));
    }
    if (saved >= 0)
        printf("checkpoint: %s/ckpt-%08lld (use --model %s with eval and sample, --resume %s to train on)\n", o.out,
               (long long)saved, o.out, o.out);
    free(ids), free(tg), free(fused), free(bytes);
    rf_model_free(m);
    rf_device_close(dev);
    if (lock >= 0) close(lock);
    return s ? cli_fail("train", s) : failed ? RF_EXIT_FAIL : RF_EXIT_OK;
}
