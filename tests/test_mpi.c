/* Data-parallel training over MPI (issue 16), through the `reformer` tool
 * under mpirun on one machine (cpu device, a small model, a few steps):
 *   - N ranks with micro-batch b give the same losses and weights as one
 *     process with --accumulate N over the same micro-batches (N = 2, 3);
 *   - a checkpoint of 2 ranks resumed by 3 continues as one process would;
 *   - a rank killed mid-run stops the whole job within a bounded time, and
 *     the last complete checkpoint stays `latest` (it loads);
 *   - a rank that cannot start (its device) stops every rank at the start.
 * Skipped only when the tool was built without MPI ($RF_MPIEXEC empty). */
#include "harness.h"
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Every mpirun is bounded (timeout), and set up for a small container: more
 * ranks than cores, root allowed, shared-memory transport without CMA. */
static const char *mpirun(void) {
    static char cmd[1024];
    const char *exe = getenv("RF_MPIEXEC");
    if (!exe || !*exe) return NULL;
    snprintf(cmd, sizeof cmd,
             /* Open MPI's libraries keep no frame pointers: the slow unwinder lets
              * LeakSanitizer see their frames (suppressed, tests/lsan.supp). */
             "LSAN_OPTIONS=\"$LSAN_OPTIONS:fast_unwind_on_malloc=0\" "
             "OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout -k 5 %d '%s' "
             "--oversubscribe --mca btl self,vader --mca btl_vader_single_copy_mechanism none "
             /* plugins stay loaded, so LeakSanitizer can name them (tests/lsan.supp) */
             "--mca mca_base_component_disable_dlclose 1",
             120, exe);
    return cmd;
}

#define MODEL "--task copy --device cpu --batch 2 --length 32 --hidden 32 --vocab 8 --chunk 8 --seed 5"

/* The train losses a run printed ("step K: train loss X"), in order. */
static int losses(const char *out, double *loss, int cap) {
    int n = 0;
    for (const char *p = out; (p = strstr(p, "step ")) && n < cap; p++) {
        long long k;
        double x;
        if (sscanf(p, "step %lld: train loss %lf", &k, &x) == 2) loss[n++] = x;
    }
    return n;
}

/* Run one process (--accumulate N) and N ranks over the same micro-batches,
 * then compare the printed losses and every weight of the final models. */
static void equal_to_accumulation(int ranks) {
    const char *mpi = mpirun();
    if (!mpi) skip();
    char one[512], many[512], args[2048];
    th_tmpdir(one, sizeof one);
    th_tmpdir(many, sizeof many);
    static char out1[1 << 16], outn[1 << 16];
    snprintf(args, sizeof args, "train " MODEL " --steps 4 --eval-every 1 --eval-batches 1 --accumulate %d "
             "--out '%s'", ranks, one);
    int rc = th_run_cli("OPENBLAS_NUM_THREADS=1", args, out1, sizeof out1);
    if (rc != 0) fprintf(stderr, "%s", out1);
    assert_int_equal(rc, 0);
    char env[1400];
    snprintf(env, sizeof env, "%s -np %d", mpi, ranks);
    snprintf(args, sizeof args, "train " MODEL " --steps 4 --eval-every 1 --eval-batches 1 --out '%s'",
             many);
    rc = th_run_cli(env, args, outn, sizeof outn);
    if (rc != 0) fprintf(stderr, "%s", outn);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(outn, "data-parallel: "));
    double l1[16], ln[16];
    int n1 = losses(out1, l1, 16), nn = losses(outn, ln, 16);
    assert_int_equal(n1, 4);
    assert_int_equal(nn, 4); /* rank 0 alone prints */
    for (int i = 0; i < 4; i++) {
        float a = (float)ln[i], b = (float)l1[i];
        th_assert_close(&a, &b, 1, 1e-4, "train loss");
    }
    rf_device *dev = th_cpu();
    rf_model *a = NULL, *b = NULL;
    TH_OK(rf_model_load(&a, dev, one));
    TH_OK(rf_model_load(&b, dev, many));
    double worst = 0;
    for (int i = 0; i < rf_model_param_count(a); i++) {
        const char *name = rf_model_param_name(a, i);
        float *wa = th_download_f32(rf_model_param(a, name)), *wb = th_download_f32(rf_model_param(b, name));
        size_t n = rf_tensor_numel(rf_model_param(a, name));
        /* §10: products-level agreement; only the order of the float sums
         * over micro-batches differs. */
        th_assert_close(wb, wa, n, 1e-4, name);
        double d = th_max_abs_diff(wb, wa, n);
        if (d > worst) worst = d;
        free(wa), free(wb);
    }
    printf("%d ranks vs --accumulate %d: max |weight difference| %.3g over %d tensors\n", ranks, ranks, worst,
           rf_model_param_count(a));
    rf_model_free(a), rf_model_free(b);
    rf_device_close(dev);
}

/* Resume with another number of ranks: 2 steps of 2 ranks, then 2 more of 3
 * ranks from the checkpoint, equal one process doing --accumulate 2 then
 * --accumulate 3 (the data position and the counter carry over). */
static void resume_with_other_rank_count(void **state) {
    (void)state;
    const char *mpi = mpirun();
    if (!mpi) skip();
    char one[512], many[512], args[2048], env[1400];
    static char out[1 << 16];
    th_tmpdir(one, sizeof one);
    th_tmpdir(many, sizeof many);
    for (int leg = 0; leg < 2; leg++) {
        const char *how = leg ? "--steps 4 --resume" : "--steps 2 --out";
        snprintf(args, sizeof args, "train " MODEL " --eval-every 100 --eval-batches 1 --accumulate %d %s '%s'",
                 2 + leg, how, one);
        int rc = th_run_cli("OPENBLAS_NUM_THREADS=1", args, out, sizeof out);
        if (rc != 0) fail_msg("%s", out);
        snprintf(env, sizeof env, "%s -np %d", mpi, 2 + leg);
        snprintf(args, sizeof args, "train " MODEL " --eval-every 100 --eval-batches 1 %s '%s'", how, many);
        rc = th_run_cli(env, args, out, sizeof out);
        if (rc != 0) fail_msg("%s", out);
    }
    rf_device *dev = th_cpu();
    rf_model *a = NULL, *b = NULL;
    uint64_t pa, pb;
    TH_OK(rf_checkpoint_load(&a, dev, one, &pa));
    TH_OK(rf_checkpoint_load(&b, dev, many, &pb));
    assert_int_equal(pa, 2 * 2 * 2 + 2 * 3 * 2);
    assert_int_equal(pb, pa);
    assert_int_equal(rf_model_steps(b), 4);
    assert_int_equal(rf_model_forward_calls(b), rf_model_forward_calls(a));
    for (int i = 0; i < rf_model_param_count(a); i++) {
        const char *name = rf_model_param_name(a, i);
        float *wa = th_download_f32(rf_model_param(a, name)), *wb = th_download_f32(rf_model_param(b, name));
        th_assert_close(wb, wa, rf_tensor_numel(rf_model_param(a, name)), 1e-4, name);
        free(wa), free(wb);
    }
    rf_model_free(a), rf_model_free(b);
    rf_device_close(dev);
}

static void two_ranks_equal_accumulate(void **state) { (void)state, equal_to_accumulation(2); }
static void three_ranks_equal_accumulate(void **state) { (void)state, equal_to_accumulation(3); }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s) {
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* The pid of the `reformer` process whose environment holds both strings
 * (the test's tag and the rank), or 0. */
static pid_t find_rank(const char *tag, const char *rank) {
    DIR *d = opendir("/proc");
    struct dirent *e;
    pid_t found = 0;
    while (d && !found && (e = readdir(d))) {
        char path[300], env[1 << 15], comm[64] = "";
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        snprintf(path, sizeof path, "/proc/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (!fgets(comm, sizeof comm, f)) comm[0] = 0;
        fclose(f);
        if (strncmp(comm, "reformer", 8)) continue;
        snprintf(path, sizeof path, "/proc/%s/environ", e->d_name);
        if (!(f = fopen(path, "r"))) continue;
        size_t n = fread(env, 1, sizeof env - 1, f);
        fclose(f);
        int has_tag = 0, has_rank = 0;
        for (size_t at = 0; at < n; at += strlen(env + at) + 1) {
            env[n] = 0;
            has_tag |= !strcmp(env + at, tag);
            has_rank |= !strcmp(env + at, rank);
        }
        if (has_tag && has_rank) found = (pid_t)atoi(e->d_name);
    }
    if (d) closedir(d);
    return found;
}

/* The step of the run folder's `latest` checkpoint (it must load). */
static int64_t latest_steps(const char *dir, uint64_t *position) {
    rf_model *m = NULL;
    rf_device *dev = th_cpu();
    TH_OK(rf_checkpoint_load(&m, dev, dir, position));
    int64_t steps = rf_model_steps(m);
    rf_model_free(m);
    rf_device_close(dev);
    return steps;
}

/* Kill rank 1 (SIGKILL) once a checkpoint exists: mpirun must end the job,
 * non-zero, within 30 s; `latest` must still name a checkpoint that loads. */
static void killed_rank_stops_all(void **state) {
    (void)state;
    const char *mpi = mpirun();
    if (!mpi) skip();
    char dir[512], cmd[4096], log[600], tag[64], latest[600];
    th_tmpdir(dir, sizeof dir);
    snprintf(log, sizeof log, "%s.log", dir);
    snprintf(latest, sizeof latest, "%s/latest", dir);
    snprintf(tag, sizeof tag, "RF_MPI_TEST_TAG=%ld", (long)getpid());
    snprintf(cmd, sizeof cmd, "%s %s -np 2 '%s' train " MODEL " --steps 1000000 --save-every 2 --eval-every 1000000 "
             "--out '%s' >'%s' 2>&1", tag, mpi, getenv("RF_CLI"), dir, log);
    pid_t job = fork();
    assert_true(job >= 0);
    if (job == 0) {
        setpgid(0, 0);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    struct stat st;
    pid_t victim = 0;
    for (double t0 = now_s(); now_s() - t0 < 60 && (stat(latest, &st) != 0 || !victim);) {
        sleep_s(0.1);
        if (!victim) victim = find_rank(tag, "OMPI_COMM_WORLD_RANK=1");
    }
    if (!victim || stat(latest, &st) != 0) {
        kill(-job, SIGKILL);
        waitpid(job, NULL, 0);
        fail_msg("no checkpoint or no rank 1 within 60 s (see %s)", log);
    }
    sleep_s(0.3); /* mid-run: some steps after the first checkpoint */
    assert_int_equal(kill(victim, SIGKILL), 0);
    double t0 = now_s(), waited = 0;
    int status = 0;
    pid_t done = 0;
    while (!done && (waited = now_s() - t0) < 60) {
        done = waitpid(job, &status, WNOHANG);
        if (!done) sleep_s(0.05);
    }
    if (!done) {
        kill(-job, SIGKILL);
        waitpid(job, NULL, 0);
        fail_msg("the job still ran 60 s after rank 1 was killed (see %s)", log);
    }
    printf("rank 1 killed: the job ended in %.2f s with status %d\n", waited, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 0);
    assert_true(waited < 30);
    assert_null(find_rank(tag, "OMPI_COMM_WORLD_RANK=0") ? "rank 0 outlived the job" : NULL);
    uint64_t position;
    int64_t steps = latest_steps(dir, &position);
    assert_true(steps >= 2 && steps % 2 == 0);
    assert_int_equal(position, (uint64_t)steps * 2 * 2); /* 2 ranks × batch 2 per step */
    unlink(log);
}

/* A job that must fail: `env_fmt` is the command's prefix with %1$s the
 * mpirun command, %2$s the tool and %3$s the run folder (for an app context
 * of its own); the run trains with a checkpoint every 2 steps. It must end
 * non-zero and well before the 120 s timeout (its ranks ended by Open MPI or
 * MPI_Abort, not by the timeout). Returns the step of `latest`. */
static int64_t failing_job(const char *env_fmt, const char *what, char *out, size_t n) {
    char dir[512], env[2048], args[1024];
    th_tmpdir(dir, sizeof dir);
    snprintf(env, sizeof env, env_fmt, mpirun(), getenv("RF_CLI"), dir);
    snprintf(args, sizeof args, "train " MODEL " --steps 50 --save-every 2 --eval-every 100 --out '%s'", dir);
    double t0 = now_s();
    int rc = th_run_cli(env, args, out, n);
    double took = now_s() - t0;
    printf("%s: the job ended in %.2f s with status %d\n", what, took, rc);
    assert_int_not_equal(rc, 0);
    assert_true(took < 60);
    uint64_t position;
    return latest_steps(dir, &position);
}

/* Rank 0 killed in the middle of its second save (the crash points of
 * tests/test_crash_save.c: 9 = the training state of the step-4 checkpoint
 * written, not yet renamed): rank 1, waiting in the all-reduce, is ended too,
 * and `latest` is the step-2 checkpoint. */
static void rank0_killed_mid_save(void **state) {
    (void)state;
    if (!mpirun()) skip();
    static char out[1 << 16];
    assert_int_equal(failing_job("RF_TEST_CRASH_AT=9 %1$s -np 2", "rank 0 killed mid-save", out, sizeof out), 2);
}

/* Rank 1's backward pass fails at step 5 (a device error, injected): it
 * prints a line naming its rank and the cause and ends every rank, within a
 * bounded time, while rank 0 waits in the all-reduce or saves step 4. The
 * step-2 checkpoint was complete before step 3 could be reduced: `latest`
 * is it or, if that save finished before the abort, step 4's. */
static void failing_rank_stops_all(void **state) {
    (void)state;
    if (!mpirun()) skip();
    static char out[1 << 16];
    int64_t steps = failing_job("%1$s -np 1 '%2$s' train " MODEL " --steps 50 --save-every 2 --eval-every 100 --out "
                                "'%3$s' : -np 1 env RF_TEST_FAIL_STEP=5", "rank 1 failed at step 5", out, sizeof out);
    if (!strstr(out, "rank 1 of 2: a device error injected at step 5"))
        fail_msg("no line names the rank and the cause:\n%s", out);
    assert_true(steps == 2 || steps == 4);
}

/* A rank that cannot open its device: every rank stops at the start, non-zero,
 * and the message names the device. */
static void rank_without_device_stops_all(void **state) {
    (void)state;
    const char *mpi = mpirun();
    if (!mpi) skip();
    char env[1400], out[1 << 14];
    snprintf(env, sizeof env, "%s -np 2", mpi);
    int rc = th_run_cli(env, "train " MODEL " --steps 2 --device cpu,no-such-device-xyz", out, sizeof out);
    assert_int_not_equal(rc, 0);
    if (!strstr(out, "no-such-device-xyz") || !strstr(out, "rank 1 of 2 could not start"))
        fail_msg("no message names the device and the rank:\n%s", out);
    assert_null(strstr(out, "step 2"));
}

/* Built without MPI, a launch by mpirun (its environment) is refused with a
 * message, instead of N processes each training alone. */
static void without_mpi_refuses_mpirun(void **state) {
    (void)state;
    const char *exe = getenv("RF_MPIEXEC");
    if (exe && *exe) skip(); /* this build has MPI: the tests above run */
    char out[4096];
    int rc = th_run_cli("OMPI_COMM_WORLD_SIZE=2", "train " MODEL " --steps 2", out, sizeof out);
    assert_int_equal(rc, 1);
    if (!strstr(out, "built without MPI")) fail_msg("no clear refusal:\n%s", out);
}

/* The library half, without MPI: what a collective layer does with the API.
 * Two "ranks" (models from one seed) each run one micro-batch at the counter
 * one process would use; their downloaded gradients summed and uploaded give
 * the step of one model accumulating both micro-batches. */
static void fused_gradients_sum_to_accumulation(void **state) {
    (void)state;
    rf_config c;
    TH_OK(rf_config_default(&c));
    c.num_layers = 2, c.attn_layers[0] = RF_ATTN_LOCAL, c.attn_layers[1] = RF_ATTN_LSH;
    c.hidden_size = 16, c.num_attention_heads = 2, c.attention_head_size = 8, c.feed_forward_size = 24;
    c.vocab_size = 11, c.max_position_embeddings = 16;
    c.axial_pos_shape[0] = 4, c.axial_pos_shape[1] = 4, c.axial_pos_embds_dim[0] = 8, c.axial_pos_embds_dim[1] = 8;
    c.num_hashes = 2, c.num_bucket_factors = 1, c.num_buckets[0] = 4;
    c.lsh_attn_chunk_length = 4, c.local_attn_chunk_length = 4;
    c.hidden_dropout_prob = 0.1, c.local_attention_probs_dropout_prob = 0.1; /* the counter draws these too */
    rf_device *dev = th_cpu();
    rf_model *one, *r0, *r1;
    TH_OK(rf_model_create(&one, dev, &c, 7));
    TH_OK(rf_model_create(&r0, dev, &c, 7));
    TH_OK(rf_model_create(&r1, dev, &c, 7));
    int32_t ids[2][2 * 16];
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 32; i++) ids[k][i] = (i * 7 + k * 5 + i / 3) % 11;
    float loss;
    uint64_t calls = rf_model_forward_calls(one);
    TH_OK(rf_model_backward(one, ids[0], NULL, 2, 16, &loss));
    TH_OK(rf_model_backward(one, ids[1], NULL, 2, 16, &loss));
    assert_int_equal(rf_model_forward_calls(one), calls + 2);
    TH_OK(rf_model_set_forward_calls(r1, calls + 1)); /* rank 1 takes micro-batch 1 */
    TH_OK(rf_model_backward(r0, ids[0], NULL, 2, 16, &loss));
    TH_OK(rf_model_backward(r1, ids[1], NULL, 2, 16, &loss));
    size_t n;
    TH_OK(rf_model_grad_count(one, &n));
    float *g0 = malloc(n * sizeof *g0), *g1 = malloc(n * sizeof *g1), *want = malloc(n * sizeof *want);
    assert_true(g0 && g1 && want);
    TH_FAILS(rf_model_grads_download(r0, g0, n - 1), RF_ERR_INVALID_ARG, "gradient floats");
    TH_OK(rf_model_grads_download(r0, g0, n));
    TH_OK(rf_model_grads_download(r1, g1, n));
    TH_OK(rf_model_grads_download(one, want, n));
    for (size_t i = 0; i < n; i++) g0[i] += g1[i]; /* the all-reduce */
    th_assert_close_grad(g0, want, n, 1e-5, "summed gradients");
    TH_OK(rf_model_grads_upload(r0, g0, n));
    TH_OK(rf_model_grads_upload(r1, g0, n));
    rf_train_config tc;
    TH_OK(rf_train_config_default(&tc));
    tc.warmup_steps = 0;
    TH_OK(rf_model_step(one, &tc, 2, NULL));
    TH_OK(rf_model_step(r0, &tc, 2, NULL));
    TH_OK(rf_model_step(r1, &tc, 2, NULL));
    for (int i = 0; i < rf_model_param_count(one); i++) {
        const char *name = rf_model_param_name(one, i);
        float *w = th_download_f32(rf_model_param(one, name)), *w0 = th_download_f32(rf_model_param(r0, name)),
              *w1 = th_download_f32(rf_model_param(r1, name));
        size_t m = rf_tensor_numel(rf_model_param(one, name));
        th_assert_close(w0, w, m, 1e-5, name);
        assert_memory_equal(w0, w1, m * sizeof *w0); /* the same step on every rank */
        free(w), free(w0), free(w1);
    }
    TH_FAILS(rf_model_set_forward_calls(one, 1ull << 32), RF_ERR_INVALID_ARG, "32 bits");
    free(g0), free(g1), free(want);
    rf_model_free(one), rf_model_free(r0), rf_model_free(r1);
    rf_device_close(dev);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fused_gradients_sum_to_accumulation),
        cmocka_unit_test(two_ranks_equal_accumulate),
        cmocka_unit_test(three_ranks_equal_accumulate),
        cmocka_unit_test(resume_with_other_rank_count),
        cmocka_unit_test(killed_rank_stops_all),
        cmocka_unit_test(rank0_killed_mid_save),
        cmocka_unit_test(failing_rank_stops_all),
        cmocka_unit_test(rank_without_device_stops_all),
        cmocka_unit_test(without_mpi_refuses_mpirun),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
