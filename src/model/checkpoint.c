/* Checkpoints (§11): ROOT/ckpt-<step>/ with the model (config.json,
 * model.safetensors) and the training state (training_state.safetensors:
 * AdamW moments, with step, seed, forward-call counter and data position as
 * metadata), and ROOT/latest naming the newest complete one. A checkpoint is
 * written into a temporary folder, each file flushed, then the folder is
 * renamed and `latest` replaced atomically: a crash at any moment leaves the
 * previous checkpoint loadable. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/core.h"
#include "model/model_impl.h"
#include "reformer/io.h"

#define STATE_FILE "training_state.safetensors"
#define STATE_FORMAT "1"
#define KEEP_CHECKPOINTS 2

/* TEST-ONLY fault injection (tests/test_crash_save.c): with RF_TEST_CRASH_AT=n
 * in the environment the process raises SIGKILL on itself at the n-th crash
 * point, counted from 1 over all the saves of the process. A save passes
 * RF_CRASH_POINTS_PER_SAVE points, in order: (1) model written to the
 * temporary folder, (2) training state written, (3) the folder synced,
 * (4) renamed to ckpt-N, (5) the root synced, (6) `latest` names ckpt-N,
 * (7) old checkpoints pruned. Unset (always, outside the tests) it costs one
 * getenv per process. */
#define RF_CRASH_POINTS_PER_SAVE 7
static void crash_point(void) {
    static long long at = -1, count = 0;
    if (at < 0) {
        const char *v = getenv("RF_TEST_CRASH_AT");
        at = v && *v ? strtoll(v, NULL, 10) : 0;
    }
    if (at > 0 && ++count == at) raise(SIGKILL);
}

/* Remove a checkpoint folder: the files we write, then the folder. */
static void remove_checkpoint_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* Flush a folder's entries (the rename) to disk. */
static void sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static rf_status write_state(const rf_model *m, const char *dir, uint64_t data_position) {
    rf_safetensors_writer *w;
    RF_TRY(rf_safetensors_writer_new(&w));
    rf_status s = RF_OK;
    char name[192], value[64];
    for (int i = 0; s == RF_OK && m->train && i < m->nparams; i++) {
        snprintf(name, sizeof name, "%s.exp_avg", m->params[i].name);
        s = rf_safetensors_writer_add_tensor(w, name, &m->train->adam_m[i]);
        snprintf(name, sizeof name, "%s.exp_avg_sq", m->params[i].name);
        if (s == RF_OK) s = rf_safetensors_writer_add_tensor(w, name, &m->train->adam_v[i]);
    }
    struct { const char *key; uint64_t v; } meta[] = {
        {"step", (uint64_t)(m->train ? m->train->steps : 0)}, {"seed", m->seed},
        {"forward_calls", m->step}, {"data_position", data_position}};
    for (size_t i = 0; s == RF_OK && i < sizeof meta / sizeof meta[0]; i++) {
        snprintf(value, sizeof value, "%" PRIu64, meta[i].v);
        s = rf_safetensors_writer_set_metadata(w, meta[i].key, value);
    }
    if (s == RF_OK) s = rf_safetensors_writer_set_metadata(w, "format", STATE_FORMAT);
    if (s == RF_OK) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, STATE_FILE);
        s = rf_safetensors_write(w, path);
    }
    rf_safetensors_writer_free(w);
    return s;
}

/* Keep the newest KEEP_CHECKPOINTS checkpoints (and `keep`); remove the rest
 * and any temporary folder or `latest` a killed save left behind. */
static void prune(const char *root, const char *keep) {
    DIR *d = opendir(root);
    if (!d) return;
    long long steps[256];
    int n = 0;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d))) {
        long long st;
        char tail[8];
        if (!strncmp(e->d_name, "latest.tmp.", 11)) { /* rf_write_file_atomic's temporary */
            snprintf(path, sizeof path, "%s/%s", root, e->d_name);
            unlink(path);
        }
        if (strncmp(e->d_name, "ckpt-", 5)) continue;
        if (strstr(e->d_name, ".tmp")) {
            snprintf(path, sizeof path, "%s/%s", root, e->d_name);
            remove_checkpoint_dir(path);
        } else if (sscanf(e->d_name, "ckpt-%lld%7s", &st, tail) == 1 && n < 256) {
            steps[n++] = st;
        }
    }
    closedir(d);
    for (int i = 0; i < n; i++) {
        int newer = 0;
        for (int j = 0; j < n; j++) newer += steps[j] > steps[i];
        char name[64];
        snprintf(name, sizeof name, "ckpt-%08lld", steps[i]);
        if (newer >= KEEP_CHECKPOINTS && strcmp(name, keep)) {
            snprintf(path, sizeof path, "%s/%s", root, name);
            remove_checkpoint_dir(path);
        }
    }
}

rf_status rf_checkpoint_save(const rf_model *model, const char *root, uint64_t data_position) {
    if (!model || !root) return rf_error(RF_ERR_INVALID_ARG, "rf_checkpoint_save: null argument");
    /* `latest` only ever names a finite checkpoint: refuse before writing. */
    char where[160];
    snprintf(where, sizeof where, "rf_checkpoint_save: refusing to save step %lld",
             (long long)(model->train ? model->train->steps : 0));
    RF_TRY(rf_model_check_finite_at(model, where));
    RF_TRY(rf_mkdir_p(root));
    char name[64], tmp[4096], final[4096], latest[4096];
    snprintf(name, sizeof name, "ckpt-%08lld", (long long)(model->train ? model->train->steps : 0));
    snprintf(tmp, sizeof tmp, "%s/%s.tmp-%ld", root, name, (long)getpid());
    snprintf(final, sizeof final, "%s/%s", root, name);
    remove_checkpoint_dir(tmp);
    rf_status s = rf_model_save(model, tmp);
    if (s == RF_OK) crash_point(); /* 1 */
    if (s == RF_OK) s = write_state(model, tmp, data_position);
    if (s == RF_OK) {
        crash_point(); /* 2 */
        sync_dir(tmp);
        crash_point(); /* 3 */
        struct stat st;
        /* The same step saved twice holds the same state: keep the first. */
        if (stat(final, &st) == 0) remove_checkpoint_dir(tmp);
        else if (rename(tmp, final) != 0)
            s = rf_error(RF_ERR_IO, "rf_checkpoint_save: cannot rename '%s' to '%s': %s", tmp, final, strerror(errno));
    }
    if (s != RF_OK) {
        remove_checkpoint_dir(tmp);
        return s;
    }
    crash_point(); /* 4 */
    sync_dir(root);
    crash_point(); /* 5 */
    char text[80];
    int n = snprintf(text, sizeof text, "%s\n", name);
    snprintf(latest, sizeof latest, "%s/latest", root);
    RF_TRY(rf_write_file_atomic(latest, text, (size_t)n));
    sync_dir(root);
    crash_point(); /* 6 */
    prune(root, name);
    crash_point(); /* 7 */
    return RF_OK;
}

/* A metadata value as an unsigned integer, validated. */
static rf_status meta_u64(const rf_safetensors *st, const char *path, const char *key, uint64_t *out) {
    const char *v;
    if (rf_safetensors_metadata_get(st, key, &v) != RF_OK)
        return rf_error(RF_ERR_FORMAT, "checkpoint '%s': metadata '%s' is missing", path, key);
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (!*v || *end || errno || v[0] == '-')
        return rf_error(RF_ERR_FORMAT, "checkpoint '%s': metadata '%s' = '%.40s' is not an unsigned integer", path, key, v);
    *out = x;
    return RF_OK;
}

static rf_status read_state(rf_model *m, const char *dir, uint64_t *data_position) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, STATE_FILE);
    rf_safetensors *st;
    RF_TRY(rf_safetensors_open(&st, path));
    uint64_t steps = 0, seed = 0, calls = 0;
    rf_status s = meta_u64(st, path, "step", &steps);
    if (s == RF_OK) s = meta_u64(st, path, "seed", &seed);
    if (s == RF_OK) s = meta_u64(st, path, "forward_calls", &calls);
    if (s == RF_OK) s = meta_u64(st, path, "data_position", data_position);
    if (s == RF_OK && calls > UINT32_MAX)
        s = rf_error(RF_ERR_FORMAT, "checkpoint '%s': forward_calls %llu is out of range", path, (unsigned long long)calls);
    if (s == RF_OK && steps > 0) s = rf_train_state_ensure(m);
    char name[192];
    for (int i = 0; s == RF_OK && steps > 0 && i < m->nparams; i++) {
        snprintf(name, sizeof name, "%s.exp_avg", m->params[i].name);
        s = rf_safetensors_load_tensor(st, name, &m->train->adam_m[i]);
        snprintf(name, sizeof name, "%s.exp_avg_sq", m->params[i].name);
        if (s == RF_OK) s = rf_safetensors_load_tensor(st, name, &m->train->adam_v[i]);
    }
    rf_safetensors_close(st);
    RF_TRY(s);
    m->seed = seed;
    m->step = (uint32_t)calls;
    if (m->train) m->train->steps = (int64_t)steps;
    return RF_OK;
}

/* The checkpoint folder name a `latest` file holds ("ckpt-<step>"). */
static rf_status read_pointer(const char *path, char name[64]) {
    char *text;
    size_t n;
    RF_TRY(rf_read_file(path, (void **)&text, &n));
    long long step;
    char tail[4];
    int ok = n < 64 && sscanf(text, "%63s", name) == 1 && sscanf(name, "ckpt-%lld%3s", &step, tail) == 1 && step >= 0;
    free(text);
    if (!ok) return rf_error(RF_ERR_FORMAT, "checkpoint '%s' does not name a checkpoint folder", path);
    return RF_OK;
}

/* The folder holding `path` ("." for a bare name). */
static void parent_dir(const char *path, char *out, size_t n) {
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(out, n, ".");
    else if (slash == path) snprintf(out, n, "/");
    else snprintf(out, n, "%.*s", (int)(slash - path), path);
}

rf_status rf_model_dir_resolve(const char *path, char *out, size_t n) {
    struct stat st;
    char name[64], root[4096], file[4200];
    if (!*path) return rf_error(RF_ERR_INVALID_ARG, "an empty path names no model folder");
    if (stat(path, &st) != 0)
        return rf_error(errno == ENOENT || errno == ENOTDIR ? RF_ERR_NOT_FOUND : RF_ERR_IO,
                        "no model at '%s': cannot open '%s/config.json': %s", path, path, strerror(errno));
    if (S_ISREG(st.st_mode)) { /* a training run's `latest` pointer */
        RF_TRY(read_pointer(path, name));
        parent_dir(path, root, sizeof root);
        snprintf(out, n, "%s/%s", root, name);
        rf_log(RF_LOG_INFO, "model '%s': checkpoint %s", path, out);
        return RF_OK;
    }
    if (!S_ISDIR(st.st_mode))
        return rf_error(RF_ERR_IO, "no model at '%s': it is %s, not a folder", path, rf_file_kind((unsigned)st.st_mode));
    snprintf(file, sizeof file, "%s/config.json", path);
    if (lstat(file, &st) == 0) { /* a model folder (its loader checks the file) */
        snprintf(out, n, "%s", path);
        return RF_OK;
    }
    snprintf(file, sizeof file, "%s/latest", path);
    if (lstat(file, &st) != 0)
        return rf_error(RF_ERR_NOT_FOUND,
                        "no model in '%s': tried '%s/config.json' (a model folder) and '%s/latest' (a training run's "
                        "newest checkpoint); neither exists",
                        path, path, path);
    RF_TRY(read_pointer(file, name));
    snprintf(out, n, "%s/%s", path, name);
    rf_log(RF_LOG_INFO, "model '%s': the training run's latest checkpoint %s", path, out);
    return RF_OK;
}

rf_status rf_checkpoint_load(rf_model **model, rf_device *dev, const char *root, uint64_t *data_position) {
    if (!model || !dev || !root || !data_position) return rf_error(RF_ERR_INVALID_ARG, "rf_checkpoint_load: null argument");
    *model = NULL;
    char path[4096], parent[4096];
    struct stat st;
    if (stat(root, &st) == 0 && S_ISREG(st.st_mode)) { /* given ROOT/latest itself */
        parent_dir(root, parent, sizeof parent);
        root = parent;
    }
    snprintf(path, sizeof path, "%s/latest", root);
    char name[64];
    RF_TRY(read_pointer(path, name));
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    rf_model *m;
    RF_TRY(rf_model_load(&m, dev, dir));
    rf_status s = read_state(m, dir, data_position);
    if (s == RF_OK) {
        char where[4200];
        snprintf(where, sizeof where, "checkpoint '%s'", dir);
        s = rf_model_check_finite_at(m, where);
    }
    if (s != RF_OK) {
        rf_model_free(m);
        return s;
    }
    *model = m;
    return RF_OK;
}
