/* Kill during save (§11, docs/robustness.md): `reformer train` saving a
 * checkpoint after every step is SIGKILLed at 100 random moments; each time
 * the folder must still load (rf_checkpoint_load, its `latest` naming a
 * complete checkpoint of that step) and `reformer train --resume` must run
 * two more steps and exit 0. The moments are uniform in 20..300 ms after the
 * first checkpoint appears, drawn from a fixed seed. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "harness.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "reformer/model.h"

#define TRIALS 100

extern char **environ;

/* The training command, small enough that a step and a save take
 * milliseconds: most kills land inside rf_checkpoint_save. */
#define TRAIN_ARGS "train", "--task", "copy", "--device", "cpu", "--batch", "2", "--length", "32", "--eval-every", "100000"

/* Start `reformer ARGS...` with its output in `log`. */
static pid_t spawn_cli(const char *log, const char *const *args) {
    const char *cli = getenv("RF_CLI");
    assert_non_null(cli);
    const char *argv[40] = {"reformer"};
    int n = 1;
    for (; args[n - 1]; n++) argv[n] = args[n - 1];
    argv[n] = NULL;
    posix_spawn_file_actions_t fa;
    assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
    assert_int_equal(posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0644), 0);
    assert_int_equal(posix_spawn_file_actions_adddup2(&fa, 1, 2), 0);
    pid_t pid;
    int err = posix_spawn(&pid, cli, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (err) fail_msg("cannot start %s: %s", cli, strerror(err));
    return pid;
}

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(killed_saves_leave_a_loadable_checkpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
