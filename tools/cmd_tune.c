/* `reformer tune`: search the OpenCL kernels' tunable parameters (the keys
 * of rf_cl_tunables, src/device/opencl/cl_tune.c) on one device and store
 * the fastest value of each, per device and driver, in the kernel cache's
 * folder (docs/tuning.md).
 *
 * Generic over the table: a key "<kernel>.<param>" is timed through the op
 * that runs that kernel, found by the kernel name's prefix (workloads[]),
 * at the benchmark model's shapes (docs/bench/reformer-bench-4096.json).
 * For each key: the op's output with no value (the documented default) is
 * the reference; every candidate is forced in memory (rf_cl_tune_set),
 * timed, and its output checked against the reference with §10's
 * tolerance; a candidate that does not fit the device's limits is skipped
 * with a note, one that gives other results is rejected loudly. The fastest
 * candidate is then timed against the default once more, interleaved (the
 * machine may be shared), and kept only if it wins there by more than 3%. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"
#ifdef RF_HAVE_OPENCL
#include "device/opencl/cl_backend.h"
#include "device/opencl/cl_tune.h"
#endif

static void help(void) {
    printf("usage: reformer tune --device NAME [--shapes benchmark|small] [--runs N]\n"
           "                     [--budget S] [--dry-run]\n\n"
           "Times every candidate value of the OpenCL kernels' tile and group parameters\n"
           "on one device, through the op that runs each kernel (local, full and LSH\n"
           "attention, LayerNorm; forward or backward as the kernel is), checks each\n"
           "candidate's output against the default's (docs/maths.md §10 tolerances),\n"
           "prints a before/after table and stores the fastest values for this device\n"
           "and driver in $XDG_CACHE_HOME/reformer-cl (or ~/.cache/reformer-cl) as\n"
           "tune-<key>.json, which the library reads whenever the device opens.\n\n"
           "  --device NAME    an OpenCL device (as 'reformer devices' lists; required)\n"
           "  --shapes WHICH   benchmark: the benchmark model's attention, L = 4096, 2 heads\n"
           "                   of d = 64, chunk 64, 2 hash rounds (default); small: L = 256,\n"
           "                   d = 32, chunk 32 (seconds on PoCL; for tests)\n"
           "  --runs N         timed runs per candidate after a warm-up, median (default 5)\n"
           "  --budget S       stop trying candidates after S seconds (default 600); the\n"
           "                   keys not reached keep their stored values\n"
           "  --dry-run        measure and print, but store nothing\n\n"
           "Clear a device's values by deleting its tune-*.json (docs/tuning.md).\n");
}

#ifdef RF_HAVE_OPENCL

typedef struct tune_shapes {
    const char *name;
    int64_t batch, len;
    int heads, head_dim, chunk, hashes;
} tune_shapes;

static const tune_shapes shapes[] = {
    {"benchmark", 1, 4096, 2, 64, 64, 2}, /* docs/bench/reformer-bench-4096.json */
    {"small", 1, 256, 2, 32, 32, 2},
};

/* Every tensor an op of the workloads reads or writes: attention's are
 * [B, L, H·d], LayerNorm's [B·L, H·d] rows with [H·d] parameters. */
typedef struct tune_case {
    rf_device *dev;
    const tune_shapes *sh;
    rf_attention_config local, full;
    rf_lsh_config lsh;
    rf_lsh_state st;
    rf_tensor q, k, v, dout, out, lse, dq, dk, dv;
    rf_tensor x, gamma, beta, y, dy, mean, rstd, dx, dgamma, dbeta;
} tune_case;

static rf_status local_forward(void *p) {
    tune_case *c = p;
    return rf_local_attention_forward(&c->out, &c->lse, &c->q, &c->k, &c->v, NULL, &c->local);
}
static rf_status local_backward(void *p) {
    tune_case *c = p;
    return rf_local_attention_backward(&c->dq, &c->dk, &c->dv, &c->dout, &c->out, &c->lse, &c->q, &c->k, &c->v, NULL,
                                       &c->local);
}
static rf_status full_both(void *p) { /* shared-QK full attention, LSH's oracle */
    tune_case *c = p;
    rf_status s = rf_full_attention_forward(&c->out, &c->lse, &c->q, NULL, &c->v, NULL, &c->full);
    return s ? s : rf_full_attention_backward(&c->dq, NULL, &c->dv, &c->dout, &c->out, &c->lse, &c->q, NULL, &c->v,
                                              NULL, &c->full);
}
static rf_status lsh_forward(void *p) {
    tune_case *c = p;
    return rf_lsh_attention_forward(&c->out, &c->st, &c->q, &c->v, NULL, NULL, &c->lsh);
}
static rf_status lsh_backward(void *p) {
    tune_case *c = p;
    return rf_lsh_attention_backward(&c->dq, &c->dv, &c->dout, &c->st, &c->q, &c->v, NULL);
}
static rf_status norm_forward(void *p) {
    tune_case *c = p;
    return rf_layer_norm_forward(&c->y, &c->mean, &c->rstd, &c->x, &c->gamma, &c->beta, 1e-12f);
}
static rf_status norm_backward(void *p) {
    tune_case *c = p;
    rf_status s;
    /* dgamma and dbeta accumulate: start each run from zero so runs agree. */
    if ((s = rf_tensor_fill_f32(&c->dgamma, 0)) || (s = rf_tensor_fill_f32(&c->dbeta, 0))) return s;
    return rf_layer_norm_backward(&c->dx, &c->dgamma, &c->dbeta, &c->dy, &c->x, &c->gamma, &c->mean, &c->rstd);
}

static rf_status norm_both(void *p) { /* the row-group keys serve both passes */
    rf_status s = norm_forward(p);
    return s ? s : norm_backward(p);
}

#define OUT(field) offsetof(tune_case, field)
enum { MAX_OUTPUTS = 3 };

/* The op that times the keys of kernels whose names start with `prefix`
 * (first match wins): `prepare` once (the forward a backward needs), then
 * `run` timed; its outputs are compared with tolerance `tol` (§10). */
typedef struct workload {
    const char *prefix, *what;
    bench_fn prepare, run;
    double tol;
    size_t outputs[MAX_OUTPUTS];
    int noutputs;
} workload;

static const workload workloads[] = {
    {"attn_forward", "local attention forward", NULL, local_forward, 1e-4, {OUT(out), OUT(lse)}, 2},
    {"attn_backward", "local attention backward", local_forward, local_backward, 1e-3, {OUT(dq), OUT(dk), OUT(dv)}, 3},
    {"attn_delta", "local attention backward", local_forward, local_backward, 1e-3, {OUT(dq), OUT(dk), OUT(dv)}, 3},
    {"normalise_keys", "full attention forward+backward", NULL, full_both, 1e-3, {OUT(out), OUT(dq), OUT(dv)}, 3},
    {"lsh_backward", "LSH attention backward", lsh_forward, lsh_backward, 1e-3, {OUT(dq), OUT(dv)}, 2},
    {"lsh_", "LSH attention forward", NULL, lsh_forward, 1e-4, {OUT(out)}, 1},
    {"layer_norm.", "LayerNorm forward+backward", NULL, norm_both, 1e-3, {OUT(y), OUT(dx), OUT(dgamma)}, 3},
    {"layer_norm_forward", "LayerNorm forward", NULL, norm_forward, 1e-5, {OUT(y)}, 1},
    {"layer_norm_", "LayerNorm backward", norm_forward, norm_backward, 1e-3, {OUT(dx), OUT(dgamma), OUT(dbeta)}, 3},
};
enum { NWORKLOADS = sizeof workloads / sizeof workloads[0] };

static const workload *workload_of(const char *key) {
    for (int i = 0; i < NWORKLOADS; i++)
        if (!strncmp(key, workloads[i].prefix, strlen(workloads[i].prefix))) return &workloads[i];
    return NULL;
}


static void case_free(tune_case *c) {
    rf_tensor *all[] = {&c->q, &c->k, &c->v, &c->dout, &c->out, &c->lse, &c->dq, &c->dk, &c->dv, &c->x,
                        &c->gamma, &c->beta, &c->y, &c->dy, &c->mean, &c->rstd, &c->dx, &c->dgamma, &c->dbeta};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) rf_tensor_free(all[i]);
    rf_lsh_state_free(&c->st);
}

/* Inputs with fixed random contents, and room for every output. */
static rf_status case_init(tune_case *c, rf_device *dev, const tune_shapes *sh) {
    memset(c, 0, sizeof *c);
    c->dev = dev;
    c->sh = sh;
    const int64_t D = (int64_t)sh->heads * sh->head_dim, rows = sh->batch * sh->len;
    const int64_t act[3] = {sh->batch, sh->len, D}, lse[3] = {sh->batch, sh->heads, sh->len};
    const int64_t mat[2] = {rows, D}, vec[1] = {D}, stat[1] = {rows};
    c->local = (rf_attention_config){.n_heads = sh->heads, .head_dim = sh->head_dim, .chunk_len = sh->chunk,
                                     .chunks_before = 1, .causal = true};
    c->full = (rf_attention_config){.n_heads = sh->heads, .head_dim = sh->head_dim, .causal = true, .shared_qk = true};
    c->lsh = (rf_lsh_config){.n_heads = sh->heads, .head_dim = sh->head_dim, .n_hashes = sh->hashes,
                             .chunk_len = sh->chunk, .causal = true, .seed = 1};
    rf_tensor *acts[] = {&c->q, &c->k, &c->v, &c->dout, &c->out, &c->dq, &c->dk, &c->dv};
    rf_status s = RF_OK;
    for (size_t i = 0; i < sizeof acts / sizeof acts[0] && !s; i++) s = rf_tensor_alloc(dev, acts[i], RF_F32, 3, act);
    if (!s) s = rf_tensor_alloc(dev, &c->lse, RF_F32, 3, lse);
    rf_tensor *mats[] = {&c->x, &c->y, &c->dy, &c->dx}, *vecs[] = {&c->gamma, &c->beta, &c->dgamma, &c->dbeta};
    for (size_t i = 0; i < 4 && !s; i++) s = rf_tensor_alloc(dev, mats[i], RF_F32, 2, mat);
    for (size_t i = 0; i < 4 && !s; i++) s = rf_tensor_alloc(dev, vecs[i], RF_F32, 1, vec);
    if (!s) s = rf_tensor_alloc(dev, &c->mean, RF_F32, 1, stat);
    if (!s) s = rf_tensor_alloc(dev, &c->rstd, RF_F32, 1, stat);
    rf_tensor *inputs[] = {&c->q, &c->k, &c->v, &c->dout, &c->x, &c->dy, &c->gamma, &c->beta};
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0] && !s; i++) s = bench_upload_random(inputs[i], i + 1);
    if (!s) s = rf_lsh_state_init(&c->st, dev, &c->lsh, sh->batch, sh->len);
    if (s) case_free(c);
    return s;
}

/* The workload's outputs, downloaded one after another into a fresh array. */
static rf_status outputs_of(tune_case *c, const workload *w, float **out, size_t *n) {
    *n = 0;
    for (int i = 0; i < w->noutputs; i++) *n += rf_tensor_numel((const rf_tensor *)((char *)c + w->outputs[i]));
    float *h = malloc(*n * sizeof *h);
    if (!h) return RF_ERR_OUT_OF_MEMORY;
    rf_status s = RF_OK;
    size_t at = 0;
    for (int i = 0; i < w->noutputs && !s; i++) {
        const rf_tensor *t = (const rf_tensor *)((char *)c + w->outputs[i]);
        size_t m = rf_tensor_numel(t);
        s = rf_tensor_download(t, h + at, m * sizeof *h);
        at += m;
    }
    if (s) free(h);
    else *out = h;
    return s;
}

/* §10: max|got − ref| ≤ tol·max(1, max|ref|), and no NaN/Inf. The worst
 * difference over that bound's scale goes to *err. */
static bool matches(const float *got, const float *ref, size_t n, double tol, double *err) {
    double worst = 0, scale = 1;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs((double)ref[i]));
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        if (!isfinite(got[i]) != !isfinite(ref[i]) || d > worst) worst = isfinite(d) ? d : INFINITY;
    }
    *err = worst / scale;
    return *err <= tol;
}

typedef struct tune_opts {
    const char *device;
    const tune_shapes *sh;
    int runs;
    double budget_s;
    bool dry_run;
} tune_opts;

/* One row of the before/after table. */
typedef struct tune_row {
    const char *key;
    double default_ms, best_ms; /* NAN: not measured */
    int best;                   /* 0: the default stays */
    int rejected;
} tune_row;

/* The default (no value for key) and `best`, one run each in turn, `runs`
 * times: their medians from the same stretch of time. */
static rf_status interleaved(tune_case *c, const workload *w, const char *key, int best, int runs, double *ms_default,
                             double *ms_best) {
    double t[2][BENCH_MAX_RUNS];
    rf_status s = RF_OK;
    for (int i = 0; i < runs && !s; i++)
        for (int j = 0; j < 2 && !s; j++) {
            if ((s = rf_cl_tune_set(c->dev, key, j ? best : 0))) break;
            double t0 = bench_now_ms();
            if (!(s = w->run(c)) && !(s = rf_device_sync(c->dev))) t[j][i] = bench_now_ms() - t0;
        }
    if (!s) {
        *ms_default = bench_median(t[0], runs);
        *ms_best = bench_median(t[1], runs);
    }
    return s;
}

/* A win smaller than this is within the noise of a shared machine: the
 * default stays. */
#define MIN_GAIN 0.03

/* Tune one key: on return the device holds its best value (or none). */
static rf_status tune_key(tune_case *c, const rf_cl_tunable *t, const workload *w, const tune_opts *o,
                          double deadline_ms, tune_row *row) {
    rf_device_info info;
    rf_status s = rf_device_get_info(c->dev, &info);
    float *ref = NULL, *got = NULL;
    size_t n = 0, m = 0;
    bench_result r;
    *row = (tune_row){.key = t->key, .default_ms = NAN, .best_ms = NAN};
    const int prior = rf_cl_tuned(c->dev, t->key, 0); /* stored before; 0: none */
    int tried = 0;
    if (!s) s = rf_cl_tune_set(c->dev, t->key, 0);
    if (!s && w->prepare) s = w->prepare(c);
    if (!s) s = bench_measure(c->dev, o->runs, w->run, c, &r);
    if (!s) s = outputs_of(c, w, &ref, &n);
    if (s) return s;
    row->default_ms = r.ms;
    printf("%-28s default        %10.3f ms   (%s)\n", t->key, r.ms, w->what);
    double best_ms = r.ms;
    for (int i = 0; i < t->ncandidates && !s; i++) {
        const int v = t->candidates[i];
        const size_t len = strlen(t->key);
        if (bench_now_ms() > deadline_ms) {
            printf("%-28s = %-4d  not tried: the --budget is spent\n", t->key, v);
            continue;
        }
        if (len > 6 && !strcmp(t->key + len - 6, ".group") && (size_t)v > info.max_work_group_size) {
            printf("%-28s = %-4d  skipped: over the device's work-group size %zu\n", t->key, v,
                   info.max_work_group_size);
            continue;
        }
        if ((s = rf_cl_tune_set(c->dev, t->key, v))) break;
        s = bench_measure(c->dev, o->runs, w->run, c, &r);
        if (s == RF_ERR_UNSUPPORTED || s == RF_ERR_BUILD) {
            /* Beyond this device's limits (rf_cl_tuned_unfit), or its
             * compiler refuses the program: the first line of why. */
            const char *why = rf_last_error();
            printf("%-28s = %-4d  skipped: %.*s\n", t->key, v, (int)strcspn(why, "\n"), why);
            rf_clear_error();
            s = RF_OK;
            continue;
        }
        if (!s) s = outputs_of(c, w, &got, &m);
        if (s) break;
        tried++;
        double err = INFINITY; /* a size mismatch */
        if (m != n || !matches(got, ref, n, w->tol, &err)) {
            fprintf(stderr, "reformer tune: REJECTED %s = %d: its %s output differs from the default's by %.3g "
                            "(of the largest, tolerance %g)\n", t->key, v, w->what, err, w->tol);
            printf("%-28s = %-4d  REJECTED: wrong results (%.3g > %g)\n", t->key, v, err, w->tol);
            row->rejected++;
        } else {
            printf("%-28s = %-4d  %10.3f ms   %.2fx\n", t->key, v, r.ms, row->default_ms / r.ms);
            if (r.ms < best_ms) best_ms = r.ms, row->best = v;
        }
        free(got);
        got = NULL;
    }
    free(ref);
    if (!s && row->best) {
        double d, b;
        s = interleaved(c, w, t->key, row->best, o->runs, &d, &b);
        if (!s) {
            printf("%-28s default vs %d interleaved: %.3f vs %.3f ms\n", t->key, row->best, d, b);
            row->default_ms = d, row->best_ms = b;
            if (b > (1 - MIN_GAIN) * d) row->best = 0;
        }
    }
    if (!row->best) row->best_ms = row->default_ms;
    /* The device keeps the winner (forced) for the keys tuned after this one;
     * with no candidate measured, what was stored before. */
    if (!s) s = rf_cl_tune_set(c->dev, t->key, tried ? row->best : prior);
    return s;
}

static int run_tune(const tune_opts *o) {
    rf_device *dev;
    rf_status s = rf_device_open(&dev, o->device);
    if (s) return cli_fail("tune", s);
    rf_device_info info;
    rf_device_get_info(dev, &info);
    if (info.kind != RF_DEVICE_OPENCL) {
        fprintf(stderr, "reformer tune: %s is the cpu reference: only OpenCL devices have tunable kernels\n", info.id);
        rf_device_close(dev);
        return RF_EXIT_USAGE;
    }
    printf("tuning %s (%s; driver %s) at the %s shapes: B=%lld L=%lld H=%d d=%d chunk=%d hashes=%d\n", info.id,
           info.name, info.driver_version, o->sh->name, (long long)o->sh->batch, (long long)o->sh->len,
           o->sh->heads, o->sh->head_dim, o->sh->chunk, o->sh->hashes);
    tune_case c;
    s = case_init(&c, dev, o->sh);
    if (s) {
        rf_device_close(dev);
        return cli_fail("tune", s);
    }
    tune_row rows[64];
    int nrows = 0, rejected = 0;
    const double deadline = bench_now_ms() + o->budget_s * 1e3;
    for (int i = 0; i < rf_cl_ntunables && !s && nrows < 64; i++) {
        const rf_cl_tunable *t = &rf_cl_tunables[i];
        const workload *w = workload_of(t->key);
        if (!w) {
            printf("%-28s skipped: no op benchmark runs its kernel (tools/cmd_tune.c workloads)\n", t->key);
            continue;
        }
        const char *idle = rf_cl_tune_idle(dev, t->key);
        if (idle) { /* timing it would time a kernel that does not run */
            printf("%-28s skipped: %s\n", t->key, idle);
            continue;
        }
        if (bench_now_ms() > deadline) { /* its stored value, if any, stays */
            printf("%-28s not reached: the --budget is spent\n", t->key);
            continue;
        }
        s = tune_key(&c, t, w, o, deadline, &rows[nrows]);
        if (!s) rejected += rows[nrows++].rejected;
    }
    int rc = RF_EXIT_OK;
    if (s) rc = cli_fail("tune", s);
    else {
        printf("\n%-28s %10s %6s %10s %8s\n", "key", "default ms", "best", "best ms", "speedup");
        for (int i = 0; i < nrows; i++) {
            char best[16] = "default";
            if (rows[i].best) snprintf(best, sizeof best, "%d", rows[i].best);
            printf("%-28s %10.3f %6s %10.3f %7.2fx\n", rows[i].key, rows[i].default_ms, best, rows[i].best_ms,
                   rows[i].default_ms / rows[i].best_ms);
        }
        char path[4096];
        if (o->dry_run) printf("\n--dry-run: nothing stored\n");
        else if ((s = rf_cl_tune_store(dev, path, sizeof path))) rc = cli_fail("tune", s);
        else printf("\nstored: %s\n", path);
        if (rejected) {
            fprintf(stderr, "reformer tune: %d candidate(s) REJECTED for wrong results (see above)\n", rejected);
            rc = RF_EXIT_FAIL;
        }
    }
    case_free(&c);
    rf_device_close(dev);
    return rc;
}

#endif

int cmd_tune(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        help();
        return RF_EXIT_OK;
    }
    const char *device = NULL, *which = "benchmark";
    int runs = BENCH_MIN_RUNS;
    double budget = 600;
    bool dry = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--dry-run")) dry = true;
        else if (i + 1 >= argc && (!strcmp(a, "--device") || !strcmp(a, "--shapes") || !strcmp(a, "--runs") ||
                                    !strcmp(a, "--budget"))) {
            fprintf(stderr, "reformer tune: %s needs a value\n", a);
            return RF_EXIT_USAGE;
        } else if (!strcmp(a, "--device")) device = argv[++i];
        else if (!strcmp(a, "--shapes")) which = argv[++i];
        else if (!strcmp(a, "--runs")) {
            if (!cli_int32("tune", a, argv[++i], 1, BENCH_MAX_RUNS, &runs)) return RF_EXIT_USAGE;
        } else if (!strcmp(a, "--budget")) {
            if (!cli_double("tune", a, argv[++i], 0, 1e6, 1, &budget)) return RF_EXIT_USAGE;
        } else {
            fprintf(stderr, "reformer tune: unknown option '%s' (see reformer tune --help)\n", a);
            return RF_EXIT_USAGE;
        }
    }
    if (strcmp(which, "benchmark") && strcmp(which, "small")) {
        fprintf(stderr, "reformer tune: --shapes: '%s' is not benchmark or small\n", which);
        return RF_EXIT_USAGE;
    }
    if (!device) {
        fprintf(stderr, "reformer tune: give the device to tune with --device NAME (see reformer devices)\n");
        return RF_EXIT_USAGE;
    }
    if (cli_dry_run) return RF_EXIT_OK;
#ifdef RF_HAVE_OPENCL
    tune_opts o = {.device = device, .sh = &shapes[!strcmp(which, "small")], .runs = runs, .budget_s = budget,
                   .dry_run = dry};
    return run_tune(&o);
#else
    (void)dry;
    fprintf(stderr, "reformer tune: this build has no OpenCL backend (RF_OPENCL=OFF): nothing to tune\n");
    return RF_EXIT_FAIL;
#endif
}
