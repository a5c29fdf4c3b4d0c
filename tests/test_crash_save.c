/* Kill during save (§11, docs/robustness.md).
 *
 * 1. Kills that land inside a save for certain: src/model/checkpoint.c's
 *    test-only hook RF_TEST_CRASH_AT=n makes `reformer train` SIGKILL itself
 *    at the n-th of the 7 crash points of each save (model written, state
 *    written, folder synced, renamed, root synced, `latest` replaced,
 *    pruned). Every point is hit twice, in different saves; each kill must
 *    come from the hook (we send none), leave the folder in the state that
 *    point implies (a temporary folder, or a complete ckpt-N that `latest`
 *    does not name yet, ...), load, resume to the end of the run, and give
 *    weights, Adam moments, step, seed, forward-call counter and data
 *    position bit for bit equal to an uninterrupted run's, and byte-equal
 *    checkpoint files.
 * 2. Kills at random moments (uniform in 20..300 ms after the first
 *    checkpoint appears, from a fixed seed), which also reach the middle of
 *    a file write: the folder must load (its `latest` naming a complete
 *    checkpoint of that step) and `reformer train --resume` must run two
 *    more steps and exit 0. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "harness.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "reformer/model.h"
#include "model/model_impl.h"

#define TRIALS 30           /* random-moment kills */
#define RUN_STEPS 6         /* the hooked runs and the uninterrupted one */
#define POINTS 7            /* crash points per save (src/model/checkpoint.c) */

extern char **environ;

/* The training command, small enough that a step and a save take
 * milliseconds: most kills land inside rf_checkpoint_save. */
#define TRAIN_ARGS "train", "--task", "copy", "--device", "cpu", "--batch", "2", "--length", "32", "--eval-every", "100000"

/* Start `reformer ARGS...` with its output in `log`; `crash_at` > 0 sets
 * RF_TEST_CRASH_AT for the child alone. */
static pid_t spawn_cli_env(const char *log, const char *const *args, long crash_at) {
    const char *cli = getenv("RF_CLI");
    assert_non_null(cli);
    const char *argv[40] = {"reformer"};
    int n = 1;
    for (; args[n - 1]; n++) argv[n] = args[n - 1];
    argv[n] = NULL;
    size_t ne = 0;
    while (environ[ne]) ne++;
    char **envp = calloc(ne + 2, sizeof *envp), var[64];
    assert_non_null(envp);
    size_t k = 0;
    for (size_t i = 0; i < ne; i++)
        if (strncmp(environ[i], "RF_TEST_CRASH_AT=", 17)) envp[k++] = environ[i];
    if (crash_at > 0) {
        snprintf(var, sizeof var, "RF_TEST_CRASH_AT=%ld", crash_at);
        envp[k++] = var;
    }
    envp[k] = NULL;
    posix_spawn_file_actions_t fa;
    assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
    assert_int_equal(posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0644), 0);
    assert_int_equal(posix_spawn_file_actions_adddup2(&fa, 1, 2), 0);
    pid_t pid;
    int err = posix_spawn(&pid, cli, &fa, NULL, (char *const *)argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    free(envp);
    if (err) fail_msg("cannot start %s: %s", cli, strerror(err));
    return pid;
}

static pid_t spawn_cli(const char *log, const char *const *args) { return spawn_cli_env(log, args, 0); }

static void sleep_ms(double ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)((ms - 1000 * (double)(time_t)(ms / 1000)) * 1e6)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static void print_log(const char *log) {
    FILE *f = fopen(log, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) print_message("  | %s", line);
    if (f) fclose(f);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* The step `latest` names (ckpt-<step>), or -1. */
static long long latest_step(const char *dir) {
    char path[512], name[64] = "";
    snprintf(path, sizeof path, "%s/latest", dir);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long long step = -1;
    if (fgets(name, sizeof name, f) && sscanf(name, "ckpt-%lld", &step) != 1) step = -1;
    fclose(f);
    return step;
}

/* Temporaries of an unfinished save in the folder (ckpt-N.tmp-PID/, latest.tmp.PID). */
static int leftovers(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += strstr(e->d_name, ".tmp") != NULL;
    closedir(d);
    return n;
}

/* One kill and resume; returns 1 if the kill interrupted a save. */
static int one_trial(rf_device *dev, const char *root, int trial, double delay_ms) {
    char dir[400], log[450], steps[32];
    snprintf(dir, sizeof dir, "%s/run-%03d", root, trial);
    snprintf(log, sizeof log, "%s.log", dir);
    pid_t pid = spawn_cli(log, (const char *const[]){TRAIN_ARGS, "--steps", "100000", "--save-every", "1", "--hidden",
                                                      "16", "--heads", "2", "--chunk", "8", "--out", dir, NULL});
    /* Wait for the first checkpoint (the child must not end on its own). */
    char latest[450];
    snprintf(latest, sizeof latest, "%s/latest", dir);
    struct stat st;
    int status;
    for (int waited = 0; stat(latest, &st) != 0; waited++) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            print_log(log);
            fail_msg("trial %d: training ended (status %d) before its first checkpoint", trial, status);
        }
        if (waited > 60000) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("trial %d: no checkpoint after 60 s", trial);
        }
        sleep_ms(1);
    }
    sleep_ms(delay_ms);
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status)) {
        print_log(log);
        fail_msg("trial %d: training ended on its own (status %d) before the kill", trial, status);
    }

    int interrupted = leftovers(dir) > 0;
    /* The folder loads, and holds the checkpoint `latest` names. */
    rf_model *m;
    uint64_t position;
    rf_status s = rf_checkpoint_load(&m, dev, dir, &position);
    if (s != RF_OK) fail_msg("trial %d (killed %.0f ms after the first save): %s", trial, delay_ms, rf_last_error());
    long long step = rf_model_steps(m);
    assert_int_equal(step, latest_step(dir));
    assert_int_equal(position, (uint64_t)step * 2); /* batch 2: two sequences per step */
    rf_model_free(m);

    /* Resume for two more steps. */
    snprintf(steps, sizeof steps, "%lld", step + 2);
    pid = spawn_cli(log, (const char *const[]){TRAIN_ARGS, "--steps", steps, "--resume", dir, NULL});
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        print_log(log);
        fail_msg("trial %d: resuming from step %lld failed (status %d)", trial, step, status);
    }
    assert_int_equal(latest_step(dir), step + 2);
    /* The resumed run's saves cleared what the killed one left half-written. */
    if (leftovers(dir)) fail_msg("trial %d: temporaries of the killed save were left in %s", trial, dir);
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    remove(log);
    return interrupted;
}

static void killed_saves_leave_a_loadable_checkpoint(void **state) {
    rf_device *dev = th_cpu();
    char root[256];
    th_tmpdir(root, sizeof root);
    uint64_t rng = 20240607;
    double total_ms = 0;
    int interrupted = 0;
    for (int trial = 0; trial < TRIALS; trial++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        double delay = 20 + (double)((rng >> 33) % 281); /* uniform in 20..300 ms */
        total_ms += delay;
        interrupted += one_trial(dev, root, trial, delay);
    }
    print_message("%d/%d killed runs left a loadable checkpoint and resumed (mean kill delay %.0f ms; %d kills "
                  "interrupted a save)\n", TRIALS, TRIALS, total_ms / TRIALS, interrupted);
    rmdir(root);
    rf_device_close(dev);
}

/* ---- kills at the hook's crash points ------------------------------------- */

#define SMALL "--hidden", "16", "--heads", "2", "--chunk", "8"

static bool exists(const char *dir, const char *name) {
    char path[600];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

/* The checkpoint `latest` names in `dir` against the uninterrupted run's:
 * step, seed, forward calls, data position, every weight and both Adam
 * moments bit for bit, and the checkpoint files byte for byte. */
static void same_checkpoint(rf_device *dev, const char *dir, const char *ref, const char *what) {
    rf_model *a, *b;
    uint64_t pa, pb;
    TH_OK(rf_checkpoint_load(&a, dev, dir, &pa));
    TH_OK(rf_checkpoint_load(&b, dev, ref, &pb));
    assert_int_equal(rf_model_steps(a), rf_model_steps(b));
    assert_int_equal(pa, pb);
    assert_int_equal(a->seed, b->seed);
    assert_int_equal(a->step, b->step);
    assert_non_null(a->train);
    assert_non_null(b->train);
    assert_int_equal(a->nparams, b->nparams);
    for (int i = 0; i < a->nparams; i++) {
        const rf_tensor *ta[3] = {&a->params[i].t, &a->train->adam_m[i], &a->train->adam_v[i]};
        const rf_tensor *tb[3] = {&b->params[i].t, &b->train->adam_m[i], &b->train->adam_v[i]};
        for (int k = 0; k < 3; k++) {
            size_t n = rf_tensor_numel(tb[k]);
            assert_int_equal(rf_tensor_numel(ta[k]), n);
            float *x = th_download_f32(ta[k]), *y = th_download_f32(tb[k]);
            if (memcmp(x, y, n * 4))
                fail_msg("%s: %s%s differs from the uninterrupted run's", what, a->params[i].name,
                         k == 0 ? "" : k == 1 ? " (Adam m)" : " (Adam v)");
            free(x), free(y);
        }
    }
    rf_model_free(a), rf_model_free(b);
    char ckpt[64];
    snprintf(ckpt, sizeof ckpt, "ckpt-%08d", RUN_STEPS);
    const char *files[] = {"model.safetensors", "training_state.safetensors", "config.json"};
    for (int f = 0; f < 3; f++) {
        char p1[600], p2[600];
        snprintf(p1, sizeof p1, "%s/%s/%s", dir, ckpt, files[f]);
        snprintf(p2, sizeof p2, "%s/%s/%s", ref, ckpt, files[f]);
        size_t n1, n2;
        char *x = th_read_file(p1, &n1), *y = th_read_file(p2, &n2);
        if (n1 != n2 || memcmp(x, y, n1)) fail_msg("%s: %s is not byte-equal to the uninterrupted run's", what, p1);
        free(x), free(y);
    }
}

/* Run `reformer ARGS` to the end; fail unless it exits 0. */
static void run_ok(const char *log, const char *const *args, const char *what) {
    int status;
    pid_t pid = spawn_cli(log, args);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        print_log(log);
        fail_msg("%s failed (status %d)", what, status);
    }
}

/* Kill at crash point `point` (1..POINTS) of the save of step `save`; returns
 * 1 when the kill came from the hook inside that save (else fails). */
static int hooked_trial(rf_device *dev, const char *root, const char *ref, int save, int point) {
    char dir[400], log[450], steps[16], what[96], name[64];
    snprintf(dir, sizeof dir, "%s/hook-%d-%d", root, save, point);
    snprintf(log, sizeof log, "%s.log", dir);
    snprintf(steps, sizeof steps, "%d", RUN_STEPS);
    snprintf(what, sizeof what, "kill at point %d of the save of step %d", point, save);
    long n = (long)(save - 1) * POINTS + point; /* saves come at steps 1, 2, ... */
    int status;
    pid_t pid = spawn_cli_env(log, (const char *const[]){TRAIN_ARGS, "--steps", steps, "--save-every", "1", SMALL,
                                                         "--out", dir, NULL}, n);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
        print_log(log);
        fail_msg("%s: the run was not killed by the hook (status %d)", what, status);
    }
    /* The folder is as that point leaves it (so the kill was inside the save). */
    snprintf(name, sizeof name, "ckpt-%08d", save);
    bool tmp = leftovers(dir) > 0, renamed = exists(dir, name);
    long long latest = latest_step(dir);
    char older[64];
    snprintf(older, sizeof older, "ckpt-%08d", save - 2);
    bool pruned = save < 3 || !exists(dir, older);
    bool expect_tmp = point <= 3, expect_renamed = point >= 4, expect_latest = point >= 6, expect_pruned = point >= 7;
    if (tmp != expect_tmp || renamed != expect_renamed || (latest == save) != expect_latest ||
        latest != (expect_latest ? save : save - 1) || (save >= 3 && pruned != expect_pruned))
        fail_msg("%s: the folder does not show it (temporary %d, %s %d, latest %lld, ckpt-%d pruned %d)", what, tmp,
                 name, renamed, latest, save - 2, pruned);
    /* It loads: the checkpoint `latest` names, complete. */
    rf_model *m;
    uint64_t position;
    if (rf_checkpoint_load(&m, dev, dir, &position) != RF_OK) fail_msg("%s: %s", what, rf_last_error());
    assert_int_equal(rf_model_steps(m), latest);
    assert_int_equal(position, (uint64_t)latest * 2);
    rf_model_free(m);
    /* Resume to the end: the uninterrupted run's state, bit for bit. */
    run_ok(log, (const char *const[]){TRAIN_ARGS, "--steps", steps, "--resume", dir, NULL}, what);
    if (leftovers(dir)) fail_msg("%s: temporaries of the killed save were left in %s", what, dir);
    same_checkpoint(dev, dir, ref, what);
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    remove(log);
    return 1;
}

static void kills_inside_saves_resume_bit_for_bit(void **state) {
    rf_device *dev = th_cpu();
    char root[256], ref[300], log[320], steps[16];
    th_tmpdir(root, sizeof root);
    snprintf(ref, sizeof ref, "%s/uninterrupted", root);
    snprintf(log, sizeof log, "%s.log", ref);
    snprintf(steps, sizeof steps, "%d", RUN_STEPS);
    run_ok(log, (const char *const[]){TRAIN_ARGS, "--steps", steps, "--save-every", "1", SMALL, "--out", ref, NULL},
           "the uninterrupted run");
    assert_int_equal(latest_step(ref), RUN_STEPS);
    int inside = 0;
    for (int point = 1; point <= POINTS; point++) /* each point twice, in saves 2..RUN_STEPS−1 */
        for (int rep = 0; rep < 2; rep++)
            inside += hooked_trial(dev, root, ref, 2 + (point + 2 * rep) % (RUN_STEPS - 2), point);
    print_message("%d kills inside saves (every crash point twice) resumed to the uninterrupted run's state\n", inside);
    if (inside < 2 * POINTS) fail_msg("only %d of %d kills landed inside a save", inside, 2 * POINTS);
    nftw(ref, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    remove(log);
    rmdir(root);
    rf_device_close(dev);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kills_inside_saves_resume_bit_for_bit),
        cmocka_unit_test(killed_saves_leave_a_loadable_checkpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
