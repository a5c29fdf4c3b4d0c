/* Issue 14, hardening round two (docs/robustness.md §1, classes 2-9): special
 * files where a file belongs, checkpoint folders that already hold a run or
 * are in use, non-finite weights, configs that load but cannot work, nothing
 * to do, a missing OpenCL platform and a forged kernel cache, training run
 * folders as models, empty paths and byte-order marks. Every CLI run has a
 * 10 s limit (a FIFO must never block) and must end with exit 1 or 2 and one
 * line naming the input. */
#include "harness.h"
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "reformer/model.h"

static char out[1 << 16];

/* reformer ARGS after an environment prefix, 10 s at most (124: timed out). */
static int run(const char *env, const char *args) {
    char prefix[1024];
    snprintf(prefix, sizeof prefix, "%s timeout -k 2 10", env ? env : "");
    return th_run_cli(prefix, args, out, sizeof out);
}

/* Exit `code` with exactly one line of output that contains `needle`. */
static void one_line(const char *env, const char *args, int code, const char *needle) {
    int got = run(env, args);
    if (got != code) fail_msg("reformer %s: exit %d, expected %d; output:\n%s", args, got, code, out);
    if (!strstr(out, needle)) fail_msg("reformer %s: output does not mention \"%s\":\n%s", args, needle, out);
    const char *nl = strchr(out, '\n');
    if (!nl || nl[1]) fail_msg("reformer %s: expected one line of output, got:\n%s", args, out);
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static char *read_text(const char *path) {
    static char buf[4096];
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* A copy of tests/data/hf_causal in dir/name (config.json as given, or the
 * original when NULL). */
static void copy_model(const char *dir, const char *name, const char *config) {
    char src[512], dst[512], cmd[1400];
    snprintf(src, sizeof src, "%s/hf_causal", getenv("RF_TEST_DATA"));
    snprintf(dst, sizeof dst, "%s/%s", dir, name);
    mkdir(dst, 0755);
    snprintf(cmd, sizeof cmd, "cp '%s/model.safetensors' '%s/config.json' '%s/'", src, src, dst);
    assert_int_equal(system(cmd), 0);
    if (config) {
        snprintf(cmd, sizeof cmd, "%s/config.json", dst);
        write_file(cmd, config, strlen(config));
    }
}

static const char *SMALL = "--device cpu --batch 2 --length 32 --chunk 8 --hidden 16 --heads 2 --eval-batches 1";

/* ---- class 2: special files --------------------------------------------- */

static void special_files_are_named_not_read(void **state) {
    char dir[256], args[2048], model[400];
    th_tmpdir(dir, sizeof dir);
    char fifo[300], sub[300];
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    snprintf(sub, sizeof sub, "%s/sub", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(mkdir(sub, 0755), 0);
    snprintf(model, sizeof model, "%s/hf_causal", getenv("RF_TEST_DATA"));
    /* --text: a FIFO would block the open; a folder would read as 0 bytes. */
    snprintf(args, sizeof args, "train --text '%s' --device cpu", fifo);
    one_line(NULL, args, 1, "reformer train: --text: '");
    assert_non_null(strstr(out, "/fifo' is a FIFO, not a regular file"));
    snprintf(args, sizeof args, "train --text '%s' --device cpu", sub);
    one_line(NULL, args, 1, "/sub' is a directory, not a file");
    snprintf(args, sizeof args, "eval --model '%s' --text '%s' --device cpu", model, fifo);
    one_line(NULL, args, 1, "reformer eval: --text: '");
    assert_non_null(strstr(out, "is a FIFO, not a regular file"));
    snprintf(args, sizeof args, "eval --model '%s' --text '%s' --device cpu", model, sub);
    one_line(NULL, args, 1, "is a directory, not a file");
    /* --config FIFO; a model folder whose config.json or weights are special. */
    snprintf(args, sizeof args, "train --task copy --config '%s' --device cpu", fifo);
    one_line(NULL, args, 1, "is a FIFO, not a regular file");
    copy_model(dir, "m", NULL);
    snprintf(args, sizeof args, "%s/m/config.json", dir);
    unlink(args);
    assert_int_equal(mkfifo(args, 0600), 0);
    snprintf(args, sizeof args, "sample --model '%s/m' --device cpu --length 2", dir);
    one_line(NULL, args, 1, "/m/config.json' is a FIFO, not a regular file");
    copy_model(dir, "w", NULL);
    snprintf(args, sizeof args, "%s/w/model.safetensors", dir);
    unlink(args);
    assert_int_equal(mkdir(args, 0755), 0);
    snprintf(args, sizeof args, "eval --model '%s/w' --text '%s/m/model.safetensors' --device cpu", dir, dir);
    one_line(NULL, args, 1, "/w/model.safetensors' is a directory, not a file");
    /* Output files: a FIFO would block the open for writing. */
    snprintf(args, sizeof args, "bench gemm --device cpu --sizes 8 --csv '%s'", fifo);
    one_line(NULL, args, 1, "/fifo': it is not a regular file");
    snprintf(args, sizeof args, "bench gemm --device cpu --sizes 8 --json '%s'", sub);
    assert_int_equal(run(NULL, args), 1);
    assert_non_null(strstr(out, "/sub': it is a directory"));
    /* The library readers, directly. */
    rf_config c;
    TH_FAILS(rf_config_load_json(&c, fifo), RF_ERR_IO, "is a FIFO, not a regular file");
    TH_FAILS(rf_config_load_json(&c, sub), RF_ERR_IO, "is a directory, not a file");
    rf_safetensors *st;
    TH_FAILS(rf_safetensors_open(&st, fifo), RF_ERR_IO, "is a FIFO, not a regular file");
    /* A `latest` that is a FIFO. */
    char run_dir[300];
    snprintf(run_dir, sizeof run_dir, "%s/run", dir);
    mkdir(run_dir, 0755);
    snprintf(args, sizeof args, "%s/latest", run_dir);
    assert_int_equal(mkfifo(args, 0600), 0);
    rf_model *m;
    uint64_t pos;
    rf_device *cpu = th_cpu();
    TH_FAILS(rf_checkpoint_load(&m, cpu, run_dir, &pos), RF_ERR_IO, "/run/latest' is a FIFO");
    rf_device_close(cpu);
}

/* ---- class 3 and 8: output folders, locks, run folders as models ---------- */

static long long latest_step(const char *run_dir) {
    char path[400];
    snprintf(path, sizeof path, "%s/latest", run_dir);
    const char *t = read_text(path);
    long long step = -1;
    if (t) sscanf(t, "ckpt-%lld", &step);
    return step;
}

static void output_folders_are_checked_locked_and_usable(void **state) {
    char dir[256], run_dir[300], args[2048];
    th_tmpdir(dir, sizeof dir);
    snprintf(run_dir, sizeof run_dir, "%s/run", dir);
    /* An empty --out fails at once (not after training). */
    snprintf(args, sizeof args, "train --task copy %s --steps 2 --out ''", SMALL);
    one_line(NULL, args, 2, "reformer train: --out: an empty path names no file or folder");
    /* A run: the end says which checkpoint and how to use it. */
    snprintf(args, sizeof args, "train --task copy %s --steps 2 --eval-every 2 --out '%s'", SMALL, run_dir);
    assert_int_equal(run(NULL, args), 0);
    char want[700];
    snprintf(want, sizeof want, "checkpoint: %s/ckpt-00000002 (use --model %s", run_dir, run_dir);
    if (!strstr(out, want)) fail_msg("no '%s' in:\n%s", want, out);
    assert_int_equal(latest_step(run_dir), 2);
    /* The run folder, its latest pointer and the checkpoint all work as --model. */
    const char *forms[] = {"", "/latest", "/ckpt-00000002"};
    for (int i = 0; i < 3; i++) {
        snprintf(args, sizeof args, "sample --model '%s%s' --device cpu --length 3", run_dir, forms[i]);
        if (run(NULL, args) != 0) fail_msg("reformer %s:\n%s", args, out);
        snprintf(args, sizeof args, "eval --model '%s%s' --text '%s/latest' --device cpu", run_dir, forms[i], run_dir);
        if (run(NULL, args) != 0) fail_msg("reformer %s:\n%s", args, out);
        assert_non_null(strstr(out, "bits per byte"));
    }
    /* A folder with neither: what was tried. */
    snprintf(args, sizeof args, "sample --model '%s' --device cpu --length 3", dir);
    one_line(NULL, args, 1, "tried '");
    assert_non_null(strstr(out, "/config.json' (a model folder) and '"));
    assert_non_null(strstr(out, "/latest' (a training run's newest checkpoint)"));
    /* Training into it again is refused (exit 2): nothing is lost. */
    snprintf(args, sizeof args, "train --task copy %s --steps 3 --out '%s'", SMALL, run_dir);
    one_line(NULL, args, 2, "is not empty ('");
    assert_non_null(strstr(out, "continue its training with --resume"));
    assert_int_equal(latest_step(run_dir), 2);
    /* A folder of other files too. */
    char other[300];
    snprintf(other, sizeof other, "%s/other", dir);
    mkdir(other, 0755);
    snprintf(args, sizeof args, "%s/notes.txt", other);
    write_file(args, "x", 1);
    snprintf(args, sizeof args, "train --task copy %s --steps 1 --out '%s'", SMALL, other);
    one_line(NULL, args, 2, "('notes.txt')");
    /* A refusal leaves nothing of ours in a folder of the user's. */
    snprintf(args, sizeof args, "%s/.lock", other);
    assert_int_equal(access(args, F_OK), -1);
    /* --overwrite with --resume of the same folder would delete its source. */
    snprintf(args, sizeof args, "train --task copy %s --steps 3 --resume '%s' --overwrite", SMALL, run_dir);
    one_line(NULL, args, 2, "--overwrite needs --out DIR");
    /* Another training holds the folder: its pid is named, exit 1. */
    char lock[400];
    snprintf(lock, sizeof lock, "%s/.lock", run_dir);
    int fd = open(lock, O_RDWR | O_CREAT, 0644);
    assert_true(fd >= 0);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    assert_int_equal(fcntl(fd, F_SETLK, &fl), 0);
    char pid[64];
    snprintf(pid, sizeof pid, "(pid %ld holds '", (long)getpid());
    snprintf(args, sizeof args, "train --task copy %s --steps 3 --resume '%s'", SMALL, run_dir);
    one_line(NULL, args, 1, pid);
    assert_non_null(strstr(out, "is in use by another training"));
    close(fd); /* released */
    /* Resuming continues (from the folder or its latest file); --overwrite
     * starts over (old checkpoints go). */
    snprintf(args, sizeof args, "train --task copy %s --steps 3 --eval-every 3 --resume '%s'", SMALL, run_dir);
    if (run(NULL, args) != 0) fail_msg("reformer %s:\n%s", args, out);
    assert_int_equal(latest_step(run_dir), 3);
    snprintf(args, sizeof args, "train --task copy %s --steps 4 --eval-every 4 --resume '%s/latest'", SMALL, run_dir);
    if (run(NULL, args) != 0) fail_msg("reformer %s:\n%s", args, out);
    assert_int_equal(latest_step(run_dir), 4);
    snprintf(args, sizeof args, "train --task copy %s --steps 1 --eval-every 1 --out '%s' --overwrite", SMALL, run_dir);
    if (run(NULL, args) != 0) fail_msg("reformer %s:\n%s", args, out);
    assert_int_equal(latest_step(run_dir), 1);
    snprintf(args, sizeof args, "%s/ckpt-00000004", run_dir);
    struct stat st;
    assert_int_not_equal(stat(args, &st), 0);
}

/* ---- class 6: nothing to do ------------------------------------------------- */

static void nothing_to_do_is_not_success(void **state) {
    char dir[256], run_dir[300], args[2048], empty[300], one[300];
    th_tmpdir(dir, sizeof dir);
    snprintf(run_dir, sizeof run_dir, "%s/run", dir);
    snprintf(args, sizeof args, "train --task copy %s --steps 2 --eval-every 2 --out '%s'", SMALL, run_dir);
    assert_int_equal(run(NULL, args), 0);
    snprintf(args, sizeof args, "train --task copy %s --steps 2 --resume '%s'", SMALL, run_dir);
    one_line(NULL, args, 1, "nothing to do: the model of --resume '");
    assert_non_null(strstr(out, "is at step 2 and --steps is 2"));
    assert_null(strstr(out, "held-out")); /* no figures never computed */
    snprintf(args, sizeof args, "train --task copy %s --steps 1 --resume '%s'", SMALL, run_dir);
    one_line(NULL, args, 1, "is at step 2 and --steps is 1");
    assert_int_equal(latest_step(run_dir), 2);
    snprintf(empty, sizeof empty, "%s/empty.txt", dir);
    write_file(empty, "", 0);
    snprintf(one, sizeof one, "%s/one.txt", dir);
    write_file(one, "x", 1);
    snprintf(args, sizeof args, "eval --model '%s/hf_causal' --text '%s' --device cpu", getenv("RF_TEST_DATA"), empty);
    one_line(NULL, args, 1, "has 0 bytes: nothing to evaluate");
    snprintf(args, sizeof args, "eval --model '%s/hf_causal' --text '%s' --device cpu", getenv("RF_TEST_DATA"), one);
    one_line(NULL, args, 1, "has 1 byte: nothing to evaluate");
    snprintf(args, sizeof args, "train --text '%s' --device cpu", empty);
    one_line(NULL, args, 1, "is empty: nothing to train on");
}

/* ---- class 4: non-finite weights ------------------------------------------ */

static rf_config tiny_config(int vocab) {
    rf_config c;
    TH_OK(rf_config_default(&c));
    c.num_layers = 2;
    c.attn_layers[0] = RF_ATTN_LOCAL, c.attn_layers[1] = RF_ATTN_LSH;
    c.hidden_size = 16, c.num_attention_heads = 2, c.attention_head_size = 8, c.feed_forward_size = 24;
    c.vocab_size = vocab;
    c.pad_token_id = 0, c.eos_token_id = vocab > 2 ? 2 : -1;
    c.max_position_embeddings = 64;
    c.axial_pos_shape[0] = 8, c.axial_pos_shape[1] = 8;
    c.axial_pos_embds_dim[0] = 8, c.axial_pos_embds_dim[1] = 8;
    c.num_hashes = 1, c.num_bucket_factors = 1, c.num_buckets[0] = 4;
    c.lsh_attn_chunk_length = 8, c.local_attn_chunk_length = 8;
    c.is_decoder = true;
    c.hidden_dropout_prob = c.lsh_attention_probs_dropout_prob = c.local_attention_probs_dropout_prob = 0;
    return c;
}

/* Set element `index` of parameter `name` to x. */
static void poke(rf_model *m, const char *name, size_t index, float x) {
    rf_tensor *t = rf_model_param(m, name);
    assert_non_null(t);
    TH_OK(rf_buffer_upload(t->buf, (t->offset + index) * sizeof x, &x, sizeof x));
}

static void non_finite_weights_are_never_saved_or_used(void **state) {
    rf_device *dev = th_cpu();
    rf_config c = tiny_config(258);
    rf_model *m;
    TH_OK(rf_model_create(&m, dev, &c, 1));
    TH_OK(rf_model_check_finite(m));
    char dir[256], run_dir[300], nan_model[300], args[2048];
    th_tmpdir(dir, sizeof dir);
    snprintf(run_dir, sizeof run_dir, "%s/run", dir);
    /* One real step, saved: the good checkpoint. */
    int32_t ids[2 * 16], tg[2 * 16];
    for (int i = 0; i < 32; i++) ids[i] = 2 + (i * 7) % 200, tg[i] = i % 16 == 15 ? -1 : 2 + ((i + 1) * 7) % 200;
    float loss;
    rf_train_config tc;
    TH_OK(rf_train_config_default(&tc));
    TH_OK(rf_model_backward(m, ids, tg, 2, 16, &loss));
    TH_OK(rf_model_step(m, &tc, 1, NULL));
    TH_OK(rf_checkpoint_save(m, run_dir, 2));
    /* A weight goes NaN: the check names it and the index; the save is
     * refused before it writes anything, and latest stays the good one. */
    const char *name = rf_model_param_name(m, 3);
    poke(m, name, 5, NAN);
    char want[300];
    snprintf(want, sizeof want, "weight '%s' has a non-finite value (nan) at index 5", name);
    TH_FAILS(rf_model_check_finite(m), RF_ERR_NUMERIC, want);
    TH_FAILS(rf_checkpoint_save(m, run_dir, 4), RF_ERR_NUMERIC, "refusing to save step 1: ");
    TH_FAILS(rf_checkpoint_save(m, run_dir, 4), RF_ERR_NUMERIC, want);
    assert_int_equal(latest_step(run_dir), 1);
    rf_model *back;
    uint64_t pos;
    TH_OK(rf_checkpoint_load(&back, dev, run_dir, &pos));
    assert_int_equal(pos, 2);
    rf_model_free(back);
    /* -inf is named as such. */
    poke(m, name, 5, -INFINITY);
    snprintf(want, sizeof want, "'%s' has a non-finite value (-inf) at index 5", name);
    TH_FAILS(rf_model_check_finite(m), RF_ERR_NUMERIC, want);
    /* A model folder holding NaN weights (rf_model_save writes what it is
     * given) is refused at load: eval never prints "nan bits per byte". */
    snprintf(nan_model, sizeof nan_model, "%s/nan-model", dir);
    TH_OK(rf_model_save(m, nan_model));
    TH_FAILS(rf_model_load(&back, dev, nan_model), RF_ERR_NUMERIC, want);
    snprintf(args, sizeof args, "eval --model '%s' --text '%s/config.json' --device cpu", nan_model, nan_model);
    one_line(NULL, args, 1, "reformer eval: non-finite value: model '");
    assert_non_null(strstr(out, want));
    /* A checkpoint whose weights were replaced by NaN ones: refused at resume. */
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp '%s/model.safetensors' '%s/ckpt-00000001/'", nan_model, run_dir);
    assert_int_equal(system(cmd), 0);
    TH_FAILS(rf_checkpoint_load(&back, dev, run_dir, &pos), RF_ERR_NUMERIC, want);
    rf_model_free(m);
    rf_device_close(dev);
}

/* ---- class 5: configs that load but cannot work --------------------------- */

static void configs_must_fit_the_task(void **state) {
    rf_config c;
    TH_OK(rf_config_default(&c));
    c.vocab_size = 16, c.eos_token_id = 16;
    TH_FAILS(rf_config_validate(&c), RF_ERR_FORMAT, "eos_token_id = 16 is outside the vocabulary [0, 16) (vocab_size)");
    c.eos_token_id = 2, c.pad_token_id = 99;
    TH_FAILS(rf_config_validate(&c), RF_ERR_FORMAT, "pad_token_id = 99 is outside the vocabulary [0, 16) (vocab_size)");
    char dir[256], args[2048], cfg[8192];
    th_tmpdir(dir, sizeof dir);
    /* The model folder's config.json says eos 64 of a 64-token vocabulary. */
    char src[400];
    snprintf(src, sizeof src, "%s/hf_causal/config.json", getenv("RF_TEST_DATA"));
    const char *orig = read_text(src);
    assert_non_null(orig);
    snprintf(cfg, sizeof cfg, "%s", orig);
    char *eos = strstr(cfg, "\"eos_token_id\": 2");
    assert_non_null(eos);
    memcpy(eos, "\"eos_token_id\":64", 17);
    copy_model(dir, "m", cfg);
    snprintf(args, sizeof args, "sample --model '%s/m' --device cpu --length 2", dir);
    one_line(NULL, args, 1, "config.json': eos_token_id = 64 is outside the vocabulary [0, 64) (vocab_size)");
    /* A model too small for text: vocab_size 2 leaves no byte ids. */
    rf_device *dev = th_cpu();
    rf_model *m;
    rf_config two = tiny_config(2);
    TH_OK(rf_model_create(&m, dev, &two, 1));
    char tiny[300];
    snprintf(tiny, sizeof tiny, "%s/v2", dir);
    TH_OK(rf_model_save(m, tiny));
    rf_model_free(m);
    rf_device_close(dev);
    snprintf(args, sizeof args, "sample --model '%s' --device cpu --length 2", tiny);
    one_line(NULL, args, 1, "vocab_size 2 is too small for text");
    snprintf(args, sizeof args, "eval --model '%s' --text '%s/config.json' --device cpu", tiny, tiny);
    one_line(NULL, args, 1, "vocab_size 2 is too small for text");
    /* --resume of a copy-task run with --text: refused at the start. */
    char run_dir[300], text[300], big[8192];
    snprintf(run_dir, sizeof run_dir, "%s/copy", dir);
    snprintf(args, sizeof args, "train --task copy %s --steps 1 --eval-every 1 --out '%s'", SMALL, run_dir);
    assert_int_equal(run(NULL, args), 0);
    snprintf(text, sizeof text, "%s/text.txt", dir);
    for (size_t i = 0; i < sizeof big; i++) big[i] = (char)('a' + i % 26);
    write_file(text, big, sizeof big);
    snprintf(args, sizeof args, "train --text '%s' %s --steps 3 --resume '%s'", text, SMALL, run_dir);
    one_line(NULL, args, 1, "--text needs a model of byte tokens (vocab_size >= 258); the model of --resume '");
    assert_non_null(strstr(out, "has vocab_size 16"));
    /* A --length beyond the model's positions names both. */
    snprintf(args, sizeof args, "train --task copy --device cpu --length 128 --steps 3 --resume '%s'", run_dir);
    one_line(NULL, args, 2, "--length 128 exceeds the 32 positions of the model of --resume '");
    assert_int_equal(latest_step(run_dir), 1);
}

/* ---- class 7: the OpenCL platform and the kernel cache -------------------- */

static void a_missing_platform_is_explained(void **state) {
    rf_device *cl = th_cl();
    if (!cl) skip();
    rf_device_close(cl);
    char dir[256], env[700];
    th_tmpdir(dir, sizeof dir);
    /* PoCL cannot make its cache under a file: the platform is missing. */
    snprintf(env, sizeof env, "XDG_CACHE_HOME='%s/file'; touch \"$XDG_CACHE_HOME\"; export XDG_CACHE_HOME;", dir);
    int rc = run(env, "sample --random --length 2 --device cl:0:0");
    if (rc == 0) skip(); /* this OpenCL driver does not mind */
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "unknown device 'cl:0:0': OpenCL found no device ("));
    assert_non_null(strstr(out, "CL_")); /* the platform's own error */
    assert_non_null(strstr(out, "$XDG_CACHE_HOME"));
    /* auto falls back to cpu, and says why at RF_LOG=info. */
    snprintf(env, sizeof env,
             "XDG_CACHE_HOME='%s/file'; touch \"$XDG_CACHE_HOME\"; export XDG_CACHE_HOME; RF_LOG=info", dir);
    assert_int_equal(run(env, "sample --random --length 2 --device auto"), 0);
    assert_non_null(strstr(out, "device 'auto' is the cpu reference: OpenCL found no device ("));
}

static void forged_cache_files_are_not_given_to_the_driver(void **state) {
    char home[256], dir[400];
    th_tmpdir(home, sizeof home);
    setenv("XDG_CACHE_HOME", home, 1);
    rf_device *dev = th_cl();
    if (!dev) skip();
    float a[4] = {1, 2, 3, 4};
    rf_tensor ta = TH_TENSOR(dev, RF_F32, a, 4), o = TH_TENSOR(dev, RF_F32, NULL, 4);
    TH_OK(rf_add(&o, &ta, &ta, 1.0f));
    rf_tensor_free(&ta), rf_tensor_free(&o);
    rf_device_close(dev);
    /* The folder is this user's alone. */
    snprintf(dir, sizeof dir, "%s/reformer-cl", home);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    /* A file whose header (magic, key, size) is right but whose payload is
     * another: rejected by the SHA-256, rebuilt from source. */
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    char path[800] = "";
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".bin")) snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    closedir(d);
    assert_true(path[0]);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 56, SEEK_SET);
    for (long i = 56; i < size; i++) fputc(0xA5, f); /* garbage a driver could choke on */
    fclose(f);
    dev = th_cl();
    ta = TH_TENSOR(dev, RF_F32, a, 4), o = TH_TENSOR(dev, RF_F32, NULL, 4);
    TH_OK(rf_add(&o, &ta, &ta, 1.0f));
    float got[4];
    TH_OK(rf_tensor_download(&o, got, sizeof got));
    assert_float_equal(got[3], 8, 0);
    rf_program_stats ps;
    TH_OK(rf_device_program_stats(dev, &ps));
    assert_int_equal(ps.cache_rejects, 1);
    assert_int_equal(ps.cache_hits, 0);
    rf_tensor_free(&ta), rf_tensor_free(&o);
    rf_device_close(dev);
    /* A cache folder others may write is not trusted at all. */
    assert_int_equal(chmod(dir, 0777), 0);
    dev = th_cl();
    ta = TH_TENSOR(dev, RF_F32, a, 4), o = TH_TENSOR(dev, RF_F32, NULL, 4);
    TH_OK(rf_add(&o, &ta, &ta, 1.0f));
    TH_OK(rf_device_program_stats(dev, &ps));
    assert_int_equal(ps.cache_hits, 0);
    assert_int_equal(ps.cache_rejects, 1);
    rf_tensor_free(&ta), rf_tensor_free(&o);
    rf_device_close(dev);
    unsetenv("XDG_CACHE_HOME");
}

/* ---- class 9: small ones ------------------------------------------------------ */

static void byte_order_marks_and_empty_paths(void **state) {
    char dir[256], args[2048], src[400], cfg[8200];
    th_tmpdir(dir, sizeof dir);
    snprintf(src, sizeof src, "%s/hf_causal/config.json", getenv("RF_TEST_DATA"));
    snprintf(cfg, sizeof cfg, "\xef\xbb\xbf%s", read_text(src));
    copy_model(dir, "bom", cfg);
    rf_config c;
    snprintf(args, sizeof args, "%s/bom/config.json", dir);
    TH_OK(rf_config_load_json(&c, args));
    assert_int_equal(c.vocab_size, 64);
    snprintf(args, sizeof args, "sample --model '%s/bom' --device cpu --length 2", dir);
    if (run(NULL, args) != 0) fail_msg("reformer %s:\n%s", args, out);
    /* A BOM in the middle is still invalid UTF-8 where it is not a character. */
    TH_FAILS(rf_config_parse_json(&c, "\xef\xbb", 2), RF_ERR_FORMAT, "invalid UTF-8 at byte 0");
    /* Empty paths are refused before any work. */
    one_line(NULL, "train --task copy --resume ''", 2, "reformer train: --resume: an empty path names no file or folder");
    one_line(NULL, "train --text ''", 2, "reformer train: --text: an empty path names no file or folder");
    one_line(NULL, "sample --model '' --device cpu", 2, "an empty path names no model folder");
    rf_model *m;
    rf_device *cpu = th_cpu();
    TH_FAILS(rf_model_load(&m, cpu, ""), RF_ERR_INVALID_ARG, "an empty path names no model folder");
    rf_device_close(cpu);
    /* --out naming a file: refused before training. */
    snprintf(args, sizeof args, "train --task copy %s --steps 1 --out '%s/bom/config.json'", SMALL, dir);
    one_line(NULL, args, 1, "reformer train: --out: ");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(special_files_are_named_not_read),
        cmocka_unit_test(output_folders_are_checked_locked_and_usable),
        cmocka_unit_test(nothing_to_do_is_not_success),
        cmocka_unit_test(non_finite_weights_are_never_saved_or_used),
        cmocka_unit_test(configs_must_fit_the_task),
        cmocka_unit_test(a_missing_platform_is_explained),
        cmocka_unit_test(forged_cache_files_are_not_given_to_the_driver),
        cmocka_unit_test(byte_order_marks_and_empty_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
