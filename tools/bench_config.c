/* `reformer bench model --config FILE`: the model of any HF config.json,
 * training (forward + backward, no optimiser) and forward, tokens/s and
 * peak RSS, with `--against-hf` the HF transformers model of the same file
 * beside it (tools/hf_bench.py) and the ratios from rows of this run.
 *
 * One case — (device, length, phase) — per process, ours and HF's alike:
 * this binary re-runs itself with --case-device for each, so a case's peak
 * RSS (wait4's ru_maxrss of the child) is its own and not the maximum of
 * every case before it, and both sides are measured the same way. */
#define _DEFAULT_SOURCE /* wait4, readlink, fdopen */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include "bench.h"
#include "reformer/model.h"

#define MAX_LENGTHS 8

static const char *const phase_names[] = {"training", "forward"};

typedef struct {
    bench_common c;
    const char *config, *hf_script, *case_device;
    int64_t batch, lengths[MAX_LENGTHS];
    int nlengths, case_phase; /* case_phase: -1 unless a --case-device child */
    bool against_hf;
} config_opts;

static void help(void) {
    printf("usage: reformer bench model --config FILE [--batch B] [--lengths L1,L2,...] [--against-hf]\n"
           "                            [--hf-script PATH] [--device NAME]... [--all] [--runs N]\n"
           "                            [--csv FILE] [--json FILE] [--profile]\n\n"
           "The model of an HF config.json (e.g. docs/bench/reformer-bench-4096.json), random\n"
           "weights, batch B (default 1) at each length (default: max_position_embeddings):\n"
           "  training  forward + backward of the LM loss (gradients; no optimiser step)\n"
           "  forward   inference forward (logits)\n"
           "Each (device, length, phase) runs in a process of its own; rows give tokens/s\n"
           "and the process's peak RSS (getrusage ru_maxrss). --against-hf adds device 'hf':\n"
           "the transformers model of the same file, run by PATH (default the source tree's\n"
           "tools/hf_bench.py) with $RF_PYTHON (default python3) at 2 threads, skipped with a\n"
           "note when python, torch or transformers are missing; the summary gives every\n"
           "device's tokens/s over hf's. (--case-device ID --case-phase 0|1, used by the\n"
           "parent, run one case in this process: 0 training, 1 forward.)\n\n%s",
           bench_common_help);
}

/* ---- the child: one case, printed as "RF_CASE device phase ms total runs base peak" ---- */

typedef struct {
    rf_model *m;
    rf_tensor logits;
    int32_t *ids;
    int64_t B, L;
} case_ctx;

static rf_status run_training(void *p) {
    case_ctx *c = p;
    float loss;
    return rf_model_backward(c->m, c->ids, NULL, c->B, c->L, &loss);
}

static rf_status run_forward(void *p) {
    case_ctx *c = p;
    return rf_model_forward(c->m, &c->logits, c->ids, NULL, c->B, c->L, NULL);
}

static int run_case(const config_opts *o, const rf_config *cfg) {
    rf_device *dev = NULL;
    rf_device_info info;
    case_ctx c = {.B = o->batch, .L = o->lengths[0]};
    rf_status s = rf_device_open(&dev, *o->case_device ? o->case_device : NULL);
    if (s == RF_OK) s = rf_device_get_info(dev, &info);
    if (s == RF_OK) s = rf_model_create(&c.m, dev, cfg, 1);
    if (s == RF_OK && !(c.ids = malloc((size_t)(c.B * c.L) * sizeof *c.ids))) s = RF_ERR_OUT_OF_MEMORY;
    for (int64_t i = 0; s == RF_OK && i < c.B * c.L; i++) c.ids[i] = (int32_t)(2 + (i * 31) % (cfg->vocab_size - 2));
    if (s == RF_OK && o->case_phase == 1)
        s = rf_tensor_alloc(dev, &c.logits, RF_F32, 3, (int64_t[]){c.B, c.L, cfg->vocab_size});
    bench_result r;
    if (s == RF_OK) s = bench_measure(dev, o->c.runs, o->case_phase ? run_forward : run_training, &c, &r);
    /* The fused chunk attention kernels' work per call (one call per layer),
     * counting the masked half of the causal chunk window: a query against
     * (before + after + 1)·m keys; forward 4·q·k·d (scores, weighted sum),
     * backward dq 6·q·k·d (scores again, dP, dQ), dk/dv 8·q·k·d (scores,
     * dP, dK, dV). LSH attends B·H·R·L hashed queries, local B·H·L. The
     * kernels' CPU shape (profiled under their own names where the work
     * differs): the local backward's one fused kernel 14·q·k·d as the two
     * it replaces; the LSH query kernel 6·q·k·d, leaving p and ds for the key
     * kernel's dk and dv, 4·q·k·d. The cpu backend's ops are one call each
     * way (backward 6 + 8 = 14·q·k·d). */
    const double BHLd = (double)(c.B * c.L) * cfg->num_attention_heads * cfg->attention_head_size;
    const double loc = BHLd * (cfg->local_num_chunks_before + cfg->local_num_chunks_after + 1) *
                       cfg->local_attn_chunk_length,
                 lsh = BHLd * cfg->num_hashes * (cfg->lsh_num_chunks_before + cfg->lsh_num_chunks_after + 1) *
                       cfg->lsh_attn_chunk_length;
    const bench_work work[] = {
        {"attention_forward", 4 * loc, 0, true},  {"attention_backward_dq", 6 * loc, 0, true},
        {"attention_backward_dkdv", 8 * loc, 0, true}, {"lsh_attend", 4 * lsh, 0, true},
        {"lsh_backward_query", 6 * lsh, 0, true}, {"lsh_backward_key", 8 * lsh, 0, true},
        {"local_attention_forward", 4 * loc, 0, true}, {"local_attention_backward", 14 * loc, 0, true},
        {"lsh_attention_backward", 14 * lsh, 0, true},    {"attention_backward_fused", 14 * loc, 0, true},
        {"lsh_backward_query_rows", 6 * lsh, 0, true}, {"lsh_backward_key_rows", 4 * lsh, 0, true},
    };
    if (s == RF_OK && o->c.profile) { /* the child's own row (device bytes) and profile */
        bench_out *out;
        bench_common pc = {.profile = true};
        bench_row row = {.batch = c.B, .length = c.L};
        snprintf(row.op, sizeof row.op, "%s", phase_names[o->case_phase]);
        snprintf(row.shape, sizeof row.shape, "B=%lld L=%lld", (long long)c.B, (long long)c.L);
        if (bench_out_open(&out, &pc, "model") == RF_EXIT_OK) {
            s = bench_report(out, dev, &info, &row, &r, work, (int)(sizeof work / sizeof work[0]));
            bench_out_close(out, RF_EXIT_OK);
        }
    }
    if (s == RF_OK)
        printf("RF_CASE %s %s %.4f %.4f %d %zu %zu\n", info.id, phase_names[o->case_phase], r.ms, r.total_ms, r.runs,
               r.base_bytes, r.peak_bytes);
    rf_tensor_free(&c.logits);
    free(c.ids);
    rf_model_free(c.m);
    rf_device_close(dev);
    return s == RF_OK ? RF_EXIT_OK : cli_fail("bench", s);
}

/* ---- the parent: spawn each case, read its line, take its peak RSS ---- */

/* Run argv with stdout into a pipe: lines starting "RF_CASE " are parsed
 * into *id, r; every other line is passed through. The exit status (or
 * 127: could not run), and the child's peak RSS in bytes. */
static int spawn_case(char *const argv[], char *id, bench_result *r, size_t *rss, bool *got) {
    int fd[2];
    *got = false;
    if (pipe(fd)) return 127;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]), close(fd[1]);
        return 127;
    }
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]), close(fd[1]);
        execvp(argv[0], argv);
        fprintf(stderr, "reformer bench: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fd[1]);
    FILE *in = fdopen(fd[0], "r");
    char line[1024], phase[32];
    while (in && fgets(line, sizeof line, in)) {
        if (strncmp(line, "RF_CASE ", 8)) {
            fputs(line, stdout);
            continue;
        }
        *got = sscanf(line + 8, "%31s %31s %lf %lf %d %zu %zu", id, phase, &r->ms, &r->total_ms, &r->runs,
                      &r->base_bytes, &r->peak_bytes) == 7;
    }
    if (in) fclose(in);
    else close(fd[0]);
    int status = 0;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {}
    *rss = (size_t)ru.ru_maxrss * 1024; /* KiB on Linux */
    return WIFEXITED(status) ? WEXITSTATUS(status) : 127;
}

static int report_case(bench_out *out, const config_opts *o, const char *id, int64_t L, int phase,
                       const bench_result *r, size_t rss) {
    rf_device_info info;
    snprintf(info.id, sizeof info.id, "%s", id);
    bench_row row = {.batch = o->batch, .length = L, .rss_bytes = rss};
    snprintf(row.op, sizeof row.op, "%s", phase_names[phase]);
    snprintf(row.shape, sizeof row.shape, "B=%lld L=%lld", (long long)o->batch, (long long)L);
    rf_status s = bench_report(out, NULL, &info, &row, r, NULL, 0);
    return s == RF_OK ? RF_EXIT_OK : cli_fail("bench", s);
}

static int run_ours(bench_out *out, const config_opts *o, const char *self, const char *device, char done_id[32]) {
    char runs[16], len[24], batch[24], ph[4];
    snprintf(runs, sizeof runs, "%d", o->c.runs);
    snprintf(batch, sizeof batch, "%lld", (long long)o->batch);
    for (int li = 0; li < o->nlengths; li++)
        for (int p = 0; p < 2; p++) {
            snprintf(len, sizeof len, "%lld", (long long)o->lengths[li]);
            snprintf(ph, sizeof ph, "%d", p);
            char *argv[] = {(char *)self, "bench", "model", "--config", (char *)o->config, "--batch", batch,
                            "--lengths", len, "--runs", runs, "--case-device", (char *)device, "--case-phase", ph,
                            o->c.profile ? "--profile" : NULL, NULL};
            char id[64] = "";
            bench_result r = {0};
            size_t rss;
            bool got;
            int rc = spawn_case(argv, id, &r, &rss, &got);
            if (rc || !got) {
                fprintf(stderr, "reformer bench model: the %s case at L = %s on '%s' failed (exit %d)\n",
                        phase_names[p], len, *device ? device : "auto", rc);
                return RF_EXIT_FAIL;
            }
            if ((rc = report_case(out, o, id, o->lengths[li], p, &r, rss))) return rc;
            snprintf(done_id, 32, "%s", id);
        }
    return RF_EXIT_OK;
}

/* HF's cases; a missing python, torch or transformers is a note, not a failure. */
static int run_hf(bench_out *out, const config_opts *o) {
    const char *py = getenv("RF_PYTHON");
    if (!py || !*py) py = "python3";
    char runs[16], len[24], batch[24];
    snprintf(runs, sizeof runs, "%d", o->c.runs);
    snprintf(batch, sizeof batch, "%lld", (long long)o->batch);
    for (int li = 0; li < o->nlengths; li++)
        for (int p = 0; p < 2; p++) {
            snprintf(len, sizeof len, "%lld", (long long)o->lengths[li]);
            char *argv[] = {(char *)py, (char *)o->hf_script, "--config", (char *)o->config, "--length", len,
                            "--batch", batch, "--runs", runs, "--phase", (char *)phase_names[p], "--threads", "2",
                            NULL};
            char id[64];
            bench_result r = {0};
            size_t rss;
            bool got;
            int rc = spawn_case(argv, id, &r, &rss, &got);
            if (rc == 3 || rc == 127 || (rc == 2 && !got)) {
                printf("note: --against-hf skipped: %s %s could not run (exit %d: python, torch or transformers "
                       "missing?)\n", py, o->hf_script, rc);
                return RF_EXIT_OK;
            }
            if (rc || !got) {
                fprintf(stderr, "reformer bench model: hf's %s case at L = %s failed (exit %d)\n", phase_names[p],
                        len, rc);
                return RF_EXIT_FAIL;
            }
            if ((rc = report_case(out, o, "hf", o->lengths[li], p, &r, rss))) return rc;
        }
    return RF_EXIT_OK;
}

/* Every device's tokens/s over hf's, same phase and shape. */
static void hf_ratios(bench_out *out, const config_opts *o, char devices[][32], int ndevices) {
    bool header = false;
    for (int li = 0; li < o->nlengths; li++)
        for (int p = 0; p < 2; p++) {
            const bench_row *hf = bench_find(out, "hf", phase_names[p], o->lengths[li]);
            for (int d = 0; hf && d < ndevices; d++) {
                const bench_row *row = bench_find(out, devices[d], phase_names[p], o->lengths[li]);
                if (!row) continue;
                if (!header) printf("\nspeed over HF transformers (hf time / device time; >1: faster than HF):\n");
                header = true;
                char what[160];
                snprintf(what, sizeof what, "%s %s L=%lld vs hf", devices[d], phase_names[p],
                         (long long)o->lengths[li]);
                bench_ratio(out, what, hf->ms / row->ms, "%.2fx");
                snprintf(what, sizeof what, "%s %s L=%lld peak RSS / hf's", devices[d], phase_names[p],
                         (long long)o->lengths[li]);
                bench_ratio(out, what, (double)row->rss_bytes / (double)hf->rss_bytes, "%.2fx");
            }
        }
}

int bench_model_config(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        help();
        return RF_EXIT_OK;
    }
    config_opts o = {.batch = 1, .case_phase = -1, .hf_script = RF_SOURCE_DIR "/tools/hf_bench.py"};
    bench_common_init(&o.c);
    for (int i = 1; i < argc; i++) {
        int taken = bench_common_arg(&o.c, argc, argv, &i);
        if (taken < 0) return RF_EXIT_USAGE;
        if (taken) continue;
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--against-hf")) {
            o.against_hf = true;
            continue;
        }
        if (!val) return bench_usage_error("model", a);
        i++;
        int bad = 0;
        if (!strcmp(a, "--config")) o.config = val;
        else if (!strcmp(a, "--hf-script")) o.hf_script = val;
        else if (!strcmp(a, "--case-device")) o.case_device = val;
        else if (!strcmp(a, "--case-phase")) bad = strcmp(val, "0") && strcmp(val, "1"), o.case_phase = val[0] - '0';
        else if (!strcmp(a, "--batch")) {
            if (bench_parse_int("bench model", a, val, 1, 4096, &o.batch)) return RF_EXIT_USAGE;
        } else if (!strcmp(a, "--lengths")) {
            if ((o.nlengths = bench_parse_list("bench model", a, val, 1, 1 << 24, o.lengths, MAX_LENGTHS)) <= 0)
                return RF_EXIT_USAGE;
        } else return bench_usage_error("model", a);
        if (bad) {
            fprintf(stderr, "reformer bench model: bad value '%s' for %s (see --help)\n", val, a);
            return RF_EXIT_USAGE;
        }
    }
    if (o.c.profile_csv) {
        fprintf(stderr, "reformer bench model: --profile-csv is not available with --config (use --profile)\n");
        return RF_EXIT_USAGE;
    }
    rf_config cfg;
    rf_status s = rf_config_load_json(&cfg, o.config);
    if (s) return cli_fail("bench", s);
    if (!o.nlengths) o.lengths[o.nlengths++] = cfg.max_position_embeddings;
    if (o.case_device) return o.case_phase < 0 ? bench_usage_error("model", "--case-device") : run_case(&o, &cfg);

    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        fprintf(stderr, "reformer bench model: cannot find this program (/proc/self/exe)\n");
        return RF_EXIT_FAIL;
    }
    self[n] = 0;
    char ids[BENCH_MAX_DEVICES][32];
    const char *names[BENCH_MAX_DEVICES];
    int ndev = 0, rc = bench_device_names(&o.c, ids, names, &ndev);
    bench_out *out = NULL;
    if (rc == RF_EXIT_OK) rc = bench_out_open(&out, &(bench_common){.csv = o.c.csv, .json = o.c.json}, "model");
    if (rc) return rc;
    printf("config %s, batch %lld; one process per case, peak RSS = its ru_maxrss\n", o.config, (long long)o.batch);
    char done[BENCH_MAX_DEVICES][32];
    int ndone = 0;
    for (int d = 0; d < ndev && rc == RF_EXIT_OK; d++) {
        if ((rc = run_ours(out, &o, self, names[d] ? names[d] : "", done[ndone]))) break;
        ndone++;
    }
    if (rc == RF_EXIT_OK && o.against_hf) rc = run_hf(out, &o);
    if (rc == RF_EXIT_OK) {
        bench_device_ratios(out);
        hf_ratios(out, &o, done, ndone);
    }
    return bench_out_close(out, rc);
}
