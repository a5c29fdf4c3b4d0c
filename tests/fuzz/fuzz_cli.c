/* libFuzzer target for the `reformer` command line (tools/fuzz.sh builds and
 * runs it): argument vectors for every subcommand, run in-process through
 * cli_main. Any vector must end with exit 0, 1 or 2 — no crash, no
 * sanitizer report or leak, no hang (libFuzzer's -timeout).
 *
 * Input: the first byte picks the subcommand; the rest, split at '\n', are
 * its arguments (at most 24). Placeholders give the arguments real files:
 *   @MODEL  a copy of tests/data/hf_causal (a model folder; the fuzzer's
 *           arguments may write into it, never into tests/data)
 *   @RUN    a training run folder (latest + ckpt-00000000, made at start)
 *   @LATEST that run's `latest` pointer     @TEXT  a 4 KiB text file
 *   @EMPTY  an empty file   @FIFO  a FIFO   @DIR   an empty folder
 *   @CONFIG a config.json   @BOM   the same with a UTF-8 byte-order mark
 * Any other argument holding '/' or ".." is skipped (the target runs as a
 * user who may write anywhere: paths stay inside its scratch folder). The
 * device is always the cpu reference (OpenCL is hidden: OCL_ICD_VENDORS
 * names an empty folder) and cli_dry_run stops each subcommand before its
 * long work (training, generation, benchmarks; see cli.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli.h"
#include "reformer/model.h"

static char scratch[256], places[10][400];
static const char *const names[10] = {"@MODEL", "@RUN", "@LATEST", "@TEXT", "@EMPTY",
                                      "@FIFO", "@DIR", "@CONFIG", "@BOM", NULL};

static void write_file(const char *path, const char *head, const char *text, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    fputs(head, f);
    fwrite(text, 1, n, f);
    fclose(f);
}

static void setup(void) {
    const char *data = getenv("RF_TEST_DATA");
    if (!data) data = "tests/data";
    struct stat st;
    snprintf(places[0], sizeof places[0], "%s/hf_causal", data);
    if (data[0] != '/' || stat(places[0], &st) || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "fuzz_cli: set RF_TEST_DATA to the absolute path of tests/data (no %s)\n", places[0]);
        abort();
    }
    snprintf(scratch, sizeof scratch, "/tmp/rf-fuzz-cli-XXXXXX");
    if (!mkdtemp(scratch) || chdir(scratch)) abort();
    char vendors[300];
    snprintf(vendors, sizeof vendors, "%s/no-vendors", scratch);
    mkdir(vendors, 0700);
    setenv("OCL_ICD_VENDORS", vendors, 1);
    setenv("RF_DEVICE", "cpu", 1);
    /* A training run: hf_causal saved as checkpoint 0. */
    rf_device *dev;
    rf_model *m;
    snprintf(places[1], sizeof places[1], "%s/run", scratch);
    if (rf_device_open(&dev, "cpu") || rf_model_load(&m, dev, places[0]) || rf_checkpoint_save(m, places[1], 0)) abort();
    snprintf(places[0], sizeof places[0], "%s/model", scratch);
    if (rf_model_save(m, places[0])) abort();
    rf_model_free(m);
    rf_device_close(dev);
    snprintf(places[2], sizeof places[2], "%s/latest", places[1]);
    snprintf(places[3], sizeof places[3], "%s/text.txt", scratch);
    char text[4096];
    for (size_t i = 0; i < sizeof text; i++) text[i] = (char)("the quick brown fox jumps over the lazy dog\n"[i % 44]);
    write_file(places[3], "", text, sizeof text);
    snprintf(places[4], sizeof places[4], "%s/empty.txt", scratch);
    write_file(places[4], "", "", 0);
    snprintf(places[5], sizeof places[5], "%s/fifo", scratch);
    if (mkfifo(places[5], 0600)) abort();
    snprintf(places[6], sizeof places[6], "%s/dir", scratch);
    mkdir(places[6], 0700);
    char cfg_path[400], *cfg;
    size_t n;
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", places[0]);
    FILE *f = fopen(cfg_path, "rb");
    if (!f) abort();
    cfg = malloc(1 << 16);
    n = fread(cfg, 1, 1 << 16, f);
    fclose(f);
    snprintf(places[7], sizeof places[7], "%s/config.json", scratch);
    write_file(places[7], "", cfg, n);
    snprintf(places[8], sizeof places[8], "%s/bom.json", scratch);
    write_file(places[8], "\xef\xbb\xbf", cfg, n);
    free(cfg);
    cli_dry_run = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready;
    if (!ready) setup(), ready = 1;
    if (size == 0 || size > 4096) return 0;
    static const char *const cmds[][2] = {{"devices", NULL}, {"eval", NULL},         {"sample", NULL},
                                          {"train", NULL},   {"bench", "attention"}, {"bench", "gemm"},
                                          {"bench", "model"}, {"no-such", NULL}};
    const char *const *cmd = cmds[data[0] % 8];
    char *copy = malloc(size);
    memcpy(copy, data + 1, size - 1);
    copy[size - 1] = '\0';
    char *argv[32];
    int argc = 0;
    argv[argc++] = "reformer";
    argv[argc++] = (char *)cmd[0];
    if (cmd[1]) argv[argc++] = (char *)cmd[1];
    int skip = 0;
    for (char *p = copy, *next; p && argc < 30; p = next) {
        next = strchr(p, '\n');
        if (next) *next++ = '\0';
        if (skip) { /* the value of a --device */
            skip = 0;
            continue;
        }
        if (!strcmp(p, "--device")) { /* keep the cpu ($RF_DEVICE) */
            skip = 1;
            continue;
        }
        int placeholder = 0;
        for (int k = 0; names[k]; k++)
            if (!strcmp(p, names[k])) argv[argc++] = places[k], placeholder = 1;
        if (placeholder) continue;
        if (strchr(p, '/') || strstr(p, "..")) continue;
        argv[argc++] = p;
    }
    argv[argc] = NULL;
    int rc = cli_main(argc, argv);
    if (rc < 0 || rc > 2) {
        fprintf(stderr, "fuzz_cli: exit status %d\n", rc);
        abort();
    }
    free(copy);
    return 0;
}
