/* Hardening (docs/robustness.md): bad arguments at the public front doors
 * (null pointers, zero, negative and overflowing sizes, token ids outside the
 * vocabulary, inconsistent configs, broken checkpoints) fail with a status
 * and a message and leak nothing; a device that runs out of memory part-way
 * through a training step or a forward pass fails cleanly — every buffer the
 * call made is freed, the weights are untouched, no partial gradient is
 * kept — and a smaller call then succeeds; the CLI exits 2 on usage errors
 * with a one-line message and 1 on failures. */
#include "harness.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include "reformer/io.h"
#include "reformer/model.h"

/* A small causal model (local and LSH layers) with 16 × 16 axial positions:
 * short sequences train quickly and L = 256 makes a large forward pass. */
static rf_config small_config(void) {
    rf_config c;
    TH_OK(rf_config_default(&c));
    c.num_layers = 2;
    c.attn_layers[0] = RF_ATTN_LOCAL, c.attn_layers[1] = RF_ATTN_LSH;
    c.hidden_size = 16;
    c.num_attention_heads = 2;
    c.attention_head_size = 8;
    c.feed_forward_size = 24;
    c.vocab_size = 11;
    c.max_position_embeddings = 256;
    c.axial_pos_shape[0] = 16, c.axial_pos_shape[1] = 16;
    c.axial_pos_embds_dim[0] = 8, c.axial_pos_embds_dim[1] = 8;
    c.num_hashes = 2;
    c.num_bucket_factors = 1, c.num_buckets[0] = 4;
    c.lsh_attn_chunk_length = 8;
    c.local_attn_chunk_length = 8;
    c.is_decoder = true;
    c.hidden_dropout_prob = 0.1; /* training takes the dropout paths too */
    c.lsh_attention_probs_dropout_prob = c.local_attention_probs_dropout_prob = 0;
    return c;
}

static int32_t *token_ids(int64_t n, uint64_t seed) {
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    assert_non_null(ids);
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)((seed + (uint64_t)i * 7 + (uint64_t)(i * i) % 5) % 11);
    return ids;
}

static size_t in_use(const rf_device *dev) {
    rf_memory_stats st;
    TH_OK(rf_device_memory(dev, &st));
    return st.in_use_bytes;
}

/* Every parameter, or every gradient, downloaded and concatenated. */
static float *snapshot(rf_model *m, int grads, size_t *count) {
    size_t total = 0;
    for (int i = 0; i < rf_model_param_count(m); i++) total += rf_tensor_numel(rf_model_param(m, rf_model_param_name(m, i)));
    float *all = malloc(total * sizeof *all), *p = all;
    assert_non_null(all);
    for (int i = 0; i < rf_model_param_count(m); i++) {
        const char *name = rf_model_param_name(m, i);
        const rf_tensor *t = grads ? rf_model_grad(m, name) : rf_model_param(m, name);
        assert_non_null(t);
        size_t n = rf_tensor_numel(t);
        TH_OK(rf_tensor_download(t, p, n * sizeof *p));
        p += n;
    }
    *count = total;
    return all;
}

/* ---- out of memory part-way ---------------------------------------------------
 * A job is one training micro-batch (rf_model_backward) or one forward pass
 * with its loss. Under a cap of `extra` bytes above what is in use, the job
 * fails at some allocation; the count of buffers it managed to allocate says
 * which one. That count only grows with the cap, so bisecting the caps until
 * neighbouring counts differ by at most one makes every allocation of the
 * call the failing one in turn: every error path runs. */
typedef struct job {
    rf_model *m;
    int training;
    int64_t batch, len;
    const int32_t *ids;
    rf_tensor *logits; /* forward only */
} job;

static rf_status run_job(const job *j) {
    float loss;
    return j->training ? rf_model_backward(j->m, j->ids, NULL, j->batch, j->len, &loss)
                       : rf_model_forward(j->m, j->logits, j->ids, NULL, j->batch, j->len, &loss);
}

/* Run under the cap; return the buffers allocated. Asserts a failure leaves
 * the device's memory exactly as it found it. */
static uint64_t probe(const job *j, size_t extra, rf_status *status) {
    rf_device *dev = rf_model_device(j->m);
    rf_memory_stats before, after;
    TH_OK(rf_device_memory(dev, &before));
    TH_OK(rf_device_set_memory_limit(dev, before.in_use_bytes + extra));
    *status = run_job(j);
    TH_OK(rf_device_set_memory_limit(dev, 0));
    TH_OK(rf_device_memory(dev, &after));
    if (*status != RF_OK && after.in_use_bytes != before.in_use_bytes)
        fail_msg("%s failed (%s) with %zu bytes in use, %zu before: a buffer leaked", j->training ? "backward" : "forward",
                 rf_last_error(), after.in_use_bytes, before.in_use_bytes);
    return after.allocations - before.allocations;
}

/* What the job needs above the memory in use (its peak), and its buffer count. */
static size_t need_of(const job *j, uint64_t *allocations) {
    rf_device *dev = rf_model_device(j->m);
    size_t base = in_use(dev);
    TH_OK(rf_device_reset_peak(dev));
    rf_status s;
    *allocations = probe(j, SIZE_MAX / 2, &s);
    TH_OK(s);
    rf_memory_stats st;
    TH_OK(rf_device_memory(dev, &st));
    return st.peak_bytes - base;
}

/* Caps in (lo, hi), all below the job's need: each must fail with
 * RF_ERR_OUT_OF_MEMORY. Returns the distinct failure points seen. */
static int bisect(const job *j, size_t lo, uint64_t a_lo, size_t hi, uint64_t a_hi) {
    if (a_hi - a_lo <= 1 || hi - lo <= 1) return 0;
    size_t mid = lo + (hi - lo) / 2;
    rf_status s;
    uint64_t a = probe(j, mid, &s);
    if (s != RF_ERR_OUT_OF_MEMORY)
        fail_msg("under a cap of %zu bytes: %s, expected out of memory (%s)", mid, rf_status_str(s), rf_last_error());
    assert_true(a >= a_lo && a <= a_hi);
    return (a != a_lo && a != a_hi) + bisect(j, lo, a_lo, mid, a) + bisect(j, mid, a, hi, a_hi);
}

/* Sweep every failure point of a job whose need is known; return the count. */
static int sweep(const job *j, size_t need, uint64_t allocations) {
    rf_status s;
    uint64_t a0 = probe(j, 0, &s);
    TH_FAILS(s, RF_ERR_OUT_OF_MEMORY, "would exceed the memory limit");
    return 1 + bisect(j, 0, a0, need, allocations);
}

static void training_step_out_of_memory(rf_device *dev) {
    rf_config c = small_config();
    int64_t B = 2, L = 32;
    int32_t *ids = token_ids(B * L, 3);
    /* The need of a first micro-batch (which also makes the gradients and
     * moments), measured on a twin: probing the model itself must not
     * succeed before the sweep. */
    rf_model *twin, *m;
    TH_OK(rf_model_create(&twin, dev, &c, 7));
    uint64_t first_allocs;
    size_t first_need = need_of(&(job){twin, 1, B, L, ids, NULL}, &first_allocs);
    rf_model_free(twin);
    TH_OK(rf_model_create(&m, dev, &c, 7));
    job big = {m, 1, B, L, ids, NULL};
    size_t base = in_use(dev), nw;
    float *weights = snapshot(m, 0, &nw);
    int points = sweep(&big, first_need, first_allocs);
    assert_null(rf_model_grad(m, rf_model_param_name(m, 0))); /* state made by a failed call is gone */
    assert_int_equal(in_use(dev), base);

    /* With gradients and moments in place: every failure zeroes the
     * gradients rather than keeping a partial sum. */
    float loss;
    TH_OK(rf_model_backward(m, ids, NULL, B, L, &loss));
    uint64_t allocs;
    size_t need = need_of(&big, &allocs); /* the gradients now hold something to lose */
    base = in_use(dev);
    points += sweep(&big, need, allocs);
    assert_int_equal(in_use(dev), base);
    size_t ng;
    float *grads = snapshot(m, 1, &ng);
    for (size_t i = 0; i < ng; i++)
        if (grads[i] != 0) fail_msg("gradient element %zu = %g after failed steps: a partial sum was kept", i, grads[i]);
    float *after = snapshot(m, 0, &nw);
    assert_memory_equal(weights, after, nw * sizeof *after);
    print_message("%d failure points of a training step, each freed everything (the first step needs %zu bytes, "
                  "later ones %zu)\n", points, first_need, need);
    assert_true(points > 40);

    /* Under a cap the big step exceeds, a smaller one succeeds and steps. */
    TH_OK(rf_device_set_memory_limit(dev, base + need - 1));
    TH_FAILS(rf_model_backward(m, ids, NULL, B, L, &loss), RF_ERR_OUT_OF_MEMORY, "memory limit");
    TH_OK(rf_model_backward(m, ids, NULL, 1, L, &loss));
    rf_train_config tc;
    TH_OK(rf_train_config_default(&tc));
    TH_OK(rf_model_step(m, &tc, 1, NULL));
    assert_int_equal(rf_model_steps(m), 1);
    TH_OK(rf_device_set_memory_limit(dev, 0));
    free(after);
    after = snapshot(m, 0, &nw);
    assert_memory_not_equal(weights, after, nw * sizeof *after);
    /* The optimiser step itself under a full device: it fails before it
     * changes anything and keeps the gradients for a retry. */
    TH_OK(rf_model_backward(m, ids, NULL, 1, L, &loss));
    float *g1 = snapshot(m, 1, &ng);
    free(weights);
    weights = after;
    TH_OK(rf_device_set_memory_limit(dev, in_use(dev)));
    TH_FAILS(rf_model_step(m, &tc, 1, NULL), RF_ERR_OUT_OF_MEMORY, "memory limit");
    TH_OK(rf_device_set_memory_limit(dev, 0));
    after = snapshot(m, 0, &nw);
    assert_memory_equal(weights, after, nw * sizeof *after);
    free(grads);
    grads = snapshot(m, 1, &ng);
    assert_memory_equal(g1, grads, ng * sizeof *grads);
    assert_int_equal(rf_model_steps(m), 1);
    TH_OK(rf_model_step(m, &tc, 1, NULL));
    free(weights), free(after), free(grads), free(g1), free(ids);
    rf_model_free(m);
    assert_int_equal(in_use(dev), 0);
}

static void forward_out_of_memory(rf_device *dev) {
    rf_config c = small_config();
    int64_t L = 256, small = 32;
    int32_t *ids = token_ids(L, 5);
    rf_model *m;
    TH_OK(rf_model_create(&m, dev, &c, 9));
    rf_tensor logits = TH_TENSOR(dev, RF_F32, NULL, 1, L, c.vocab_size);
    rf_tensor logits_small = TH_TENSOR(dev, RF_F32, NULL, 1, small, c.vocab_size);
    job big = {m, 0, 1, L, ids, &logits};
    uint64_t allocs;
    size_t need = need_of(&big, &allocs), base = in_use(dev), nw;
    float *weights = snapshot(m, 0, &nw);
    int points = sweep(&big, need, allocs);
    print_message("%d failure points of a forward pass at L = %lld (needs %zu bytes)\n", points, (long long)L, need);
    assert_true(points > 10);
    assert_int_equal(in_use(dev), base);
    TH_OK(rf_device_set_memory_limit(dev, base + need - 1));
    float loss;
    TH_FAILS(rf_model_forward(m, &logits, ids, NULL, 1, L, &loss), RF_ERR_OUT_OF_MEMORY, "memory limit");
    TH_OK(rf_model_forward(m, &logits_small, ids, NULL, 1, small, &loss));
    assert_true(loss > 0);
    TH_OK(rf_device_set_memory_limit(dev, 0));
    float *after = snapshot(m, 0, &nw);
    assert_memory_equal(weights, after, nw * sizeof *after);
    free(weights), free(after), free(ids);
    rf_tensor_free(&logits), rf_tensor_free(&logits_small);
    rf_model_free(m);
    assert_int_equal(in_use(dev), 0);
}

static void out_of_memory_mid_step_cpu(void **state) {
    rf_device *dev = th_cpu();
    training_step_out_of_memory(dev);
    forward_out_of_memory(dev);
    rf_device_close(dev);
}

static void out_of_memory_mid_step_opencl(void **state) {
    rf_device *dev;
    TH_CL_OR_SKIP(dev);
    training_step_out_of_memory(dev);
    forward_out_of_memory(dev);
    rf_device_close(dev);
}

/* ---- bad arguments --------------------------------------------------------- */

/* Null pointers, zero, negative and overflowing sizes in the device layer. */
static void device_layer_refuses_bad_sizes(void **state) {
    rf_device *dev = th_cpu();
    rf_tensor t;
    rf_buffer *b;
    TH_FAILS(rf_tensor_alloc(NULL, &t, RF_F32, 1, (int64_t[]){4}), RF_ERR_INVALID_ARG, "rf_tensor_alloc: null argument");
    TH_FAILS(rf_tensor_alloc(dev, &t, RF_F32, 2, (int64_t[]){4, -3}), RF_ERR_INVALID_ARG, "shape[1] = -3 must be positive");
    TH_FAILS(rf_tensor_alloc(dev, &t, RF_F32, 0, (int64_t[]){4}), RF_ERR_INVALID_ARG, "ndim 0 not in [1, 4]");
    TH_FAILS(rf_tensor_alloc(dev, &t, RF_F32, 1, NULL), RF_ERR_INVALID_ARG, "shape is NULL");
    TH_FAILS(rf_tensor_alloc(dev, &t, (rf_dtype)9, 1, (int64_t[]){4}), RF_ERR_INVALID_ARG, "unknown dtype 9");
    TH_FAILS(rf_tensor_alloc(dev, &t, RF_F32, 2, (int64_t[]){INT64_MAX / 2, 4}), RF_ERR_INVALID_ARG,
             "byte count overflows size_t");
    TH_FAILS(rf_buffer_alloc(dev, SIZE_MAX, &b), RF_ERR_OUT_OF_MEMORY, "exceeds the largest allocation");
    TH_FAILS(rf_buffer_alloc(dev, 16, NULL), RF_ERR_INVALID_ARG, "rf_buffer_alloc: null argument");
    t = TH_TENSOR(dev, RF_F32, NULL, 2, 3);
    float host[6] = {0};
    TH_FAILS(rf_tensor_upload(&t, host, 20), RF_ERR_INVALID_ARG, "20 bytes given, the tensor holds 24");
    TH_FAILS(rf_tensor_download(&t, NULL, 24), RF_ERR_INVALID_ARG, "rf_tensor_download: null argument");
    TH_FAILS(rf_buffer_copy(t.buf, 8, t.buf, SIZE_MAX - 4, 8), RF_ERR_INVALID_ARG, "outside a buffer of 24 bytes");
    TH_FAILS(rf_buffer_upload(t.buf, 0, NULL, 4), RF_ERR_INVALID_ARG, "src is NULL");
    rf_tensor view;
    TH_FAILS(rf_tensor_view(&view, t.buf, SIZE_MAX / 2, RF_F32, 1, (int64_t[]){2}), RF_ERR_INVALID_ARG,
             "exceed a buffer of 24 bytes");
    rf_memory_stats ms;
    TH_FAILS(rf_device_memory(NULL, &ms), RF_ERR_INVALID_ARG, "rf_device_memory: null argument");
    TH_FAILS(rf_device_set_memory_limit(NULL, 1), RF_ERR_INVALID_ARG, "device is NULL");
    rf_tensor_free(&t);
    assert_int_equal(in_use(dev), 0);
    rf_device_close(dev);
}

/* Token ids outside the vocabulary, bad batch shapes and null pointers at the
 * model's front doors; nothing is allocated by a refused call. */
static void model_refuses_bad_batches(void **state) {
    rf_device *dev = th_cpu();
    rf_config c = small_config();
    rf_model *m;
    TH_FAILS(rf_model_create(NULL, dev, &c, 1), RF_ERR_INVALID_ARG, "rf_model: null argument");
    TH_FAILS(rf_model_create(&m, NULL, &c, 1), RF_ERR_INVALID_ARG, "rf_model: null argument");
    TH_FAILS(rf_model_create(&m, dev, NULL, 1), RF_ERR_INVALID_ARG, "rf_model: null argument");
    TH_OK(rf_model_create(&m, dev, &c, 1));
    int64_t L = 16;
    int32_t *ids = token_ids(2 * L, 1);
    rf_tensor logits = TH_TENSOR(dev, RF_F32, NULL, 2, L, c.vocab_size);
    size_t base = in_use(dev);
    float loss;
    ids[5] = 11;
    TH_FAILS(rf_model_forward(m, &logits, ids, NULL, 2, L, &loss), RF_ERR_INVALID_ARG,
             "rf_model_forward: token id 11 at position 5 is outside the vocabulary [0, 11)");
    TH_FAILS(rf_model_backward(m, ids, NULL, 2, L, &loss), RF_ERR_INVALID_ARG,
             "token id 11 at position 5 is outside the vocabulary [0, 11)");
    ids[5] = -1;
    TH_FAILS(rf_model_forward(m, &logits, ids, NULL, 2, L, &loss), RF_ERR_INVALID_ARG, "token id -1 at position 5");
    TH_FAILS(rf_model_backward(m, ids, NULL, 2, L, &loss), RF_ERR_INVALID_ARG, "token id -1 at position 5");
    ids[5] = 3;
    int32_t *targets = token_ids(2 * L, 2);
    targets[7] = -2;
    TH_FAILS(rf_model_backward(m, ids, targets, 2, L, &loss), RF_ERR_INVALID_ARG,
             "target -2 at position 7 is outside [-1, 11)");
    targets[7] = 11;
    TH_FAILS(rf_model_backward(m, ids, targets, 2, L, &loss), RF_ERR_INVALID_ARG, "target 11 at position 7");
    /* Zero, negative and overflowing sizes. */
    TH_FAILS(rf_model_backward(m, ids, NULL, 0, L, &loss), RF_ERR_INVALID_ARG, "batch 0 and length 16 must be positive");
    TH_FAILS(rf_model_backward(m, ids, NULL, 2, -8, &loss), RF_ERR_INVALID_ARG, "batch 2 and length -8 must be positive");
    TH_FAILS(rf_model_backward(m, ids, NULL, INT64_MAX / 4, L, &loss), RF_ERR_INVALID_ARG,
             "batch 2305843009213693951 × length 16 overflows");
    TH_FAILS(rf_model_backward(m, ids, targets, INT64_MAX / 4, L, &loss), RF_ERR_INVALID_ARG, "overflows");
    TH_FAILS(rf_model_forward(m, &logits, ids, NULL, INT64_MAX / 4, L, &loss), RF_ERR_INVALID_ARG,
             "logits has shape [2, 16, 11]");
    TH_FAILS(rf_model_forward(m, &logits, ids, NULL, 2, INT64_MAX, &loss), RF_ERR_INVALID_ARG, "logits has shape");
    TH_FAILS(rf_model_forward(m, &logits, NULL, NULL, 2, L, &loss), RF_ERR_INVALID_ARG, "rf_model_forward: null argument");
    TH_FAILS(rf_model_forward(m, NULL, ids, NULL, 2, L, &loss), RF_ERR_INVALID_ARG, "rf_model_forward: null argument");
    TH_FAILS(rf_model_backward(m, ids, NULL, 2, L, NULL), RF_ERR_INVALID_ARG, "rf_model_backward: null argument");
    TH_FAILS(rf_model_backward(NULL, ids, NULL, 2, L, &loss), RF_ERR_INVALID_ARG, "rf_model_backward: null argument");
    TH_FAILS(rf_model_backward(m, ids, NULL, 1, 12, &loss), RF_ERR_INVALID_ARG,
             "training length 12 is not a multiple of the chunk lengths (16 would be)");
    rf_train_config tc;
    TH_OK(rf_train_config_default(&tc));
    TH_FAILS(rf_model_step(m, &tc, 1, NULL), RF_ERR_INVALID_ARG, "no gradients: call rf_model_backward first");
    TH_FAILS(rf_model_step(m, NULL, 1, NULL), RF_ERR_INVALID_ARG, "rf_model_step: null argument");
    assert_int_equal(in_use(dev), base); /* refused calls allocate nothing */
    assert_null(rf_model_grad(m, rf_model_param_name(m, 0)));
    tc.lr = -1;
    TH_OK(rf_model_backward(m, ids, NULL, 2, L, &loss));
    TH_FAILS(rf_model_step(m, &tc, 1, NULL), RF_ERR_INVALID_ARG, "lr -1 and clip_norm 1 must be >= 0");
    TH_FAILS(rf_model_set_num_hashes(m, 0), RF_ERR_INVALID_ARG, "num_hashes = 0 must be >= 1");
    TH_FAILS(rf_model_set_rotations(m, 7, NULL, 0), RF_ERR_INVALID_ARG, "layer 7 is not an LSH layer");
    TH_FAILS(rf_model_save(NULL, "/tmp"), RF_ERR_INVALID_ARG, "rf_model_save: null argument");
    TH_FAILS(rf_checkpoint_save(m, NULL, 0), RF_ERR_INVALID_ARG, "rf_checkpoint_save: null argument");
    assert_null(rf_model_param(m, "no.such.weight"));
    assert_null(rf_model_param_name(m, -1));
    rf_model_free(m);
    rf_tensor_free(&logits);
    assert_int_equal(in_use(dev), 0);
    free(ids), free(targets);
    rf_device_close(dev);
}

/* Axial position embeddings: widths that do not sum to D are refused by the
 * config; a shape whose product is below L refuses that length. */
static void axial_configs_are_checked(void **state) {
    rf_device *dev = th_cpu();
    rf_config c = small_config();
    rf_model *m = NULL;
    c.axial_pos_embds_dim[1] = 4;
    TH_FAILS(rf_model_create(&m, dev, &c, 1), RF_ERR_FORMAT, "config: axial_pos_embds_dim [8, 4] sums to 12, not hidden_size 16");
    assert_null(m);
    c.axial_pos_embds_dim[1] = 8;
    c.axial_pos_shape[1] = 0;
    TH_FAILS(rf_model_create(&m, dev, &c, 1), RF_ERR_FORMAT, "config: axial_pos_shape [16, 0] must be positive");
    c.axial_pos_shape[0] = 4, c.axial_pos_shape[1] = 4; /* 16 positions */
    TH_OK(rf_model_create(&m, dev, &c, 1));
    int32_t *ids = token_ids(32, 4);
    rf_tensor logits = TH_TENSOR(dev, RF_F32, NULL, 1, 32, c.vocab_size);
    float loss;
    TH_FAILS(rf_model_forward(m, &logits, ids, NULL, 1, 32, &loss), RF_ERR_INVALID_ARG,
             "rf_model_forward: length 32 (padded to 32) exceeds the 16 positions of the model");
    TH_FAILS(rf_model_backward(m, ids, NULL, 1, 32, &loss), RF_ERR_INVALID_ARG,
             "rf_model_backward: length 32 (padded to 32) exceeds the 16 positions of the model");
    assert_null(rf_model_grad(m, rf_model_param_name(m, 0)));
    rf_tensor_free(&logits);
    rf_model_free(m);
    assert_int_equal(in_use(dev), 0);
    free(ids);
    rf_device_close(dev);
}

/* Broken checkpoints: each is refused with a message naming the file, and
 * leaves no model and no device memory behind. */
static void write_text(const char *dir, const char *file, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void truncate_file(const char *dir, const char *file, long keep) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *data = malloc((size_t)keep);
    assert_int_equal(fread(data, 1, (size_t)keep, f), keep);
    fclose(f);
    f = fopen(path, "wb");
    fwrite(data, 1, (size_t)keep, f);
    fclose(f);
    free(data);
}

static void broken_checkpoint(rf_device *dev, const char *root, rf_status want, const char *needle) {
    rf_model *m = (rf_model *)1;
    uint64_t pos;
    TH_FAILS(rf_checkpoint_load(&m, dev, root, &pos), want, needle);
    assert_null(m);
    assert_int_equal(in_use(dev), 0);
}

static void broken_checkpoints_are_refused(void **state) {
    rf_device *dev = th_cpu();
    rf_config c = small_config();
    char root[256], ckpt[320];
    th_tmpdir(root, sizeof root);
    snprintf(ckpt, sizeof ckpt, "%s/ckpt-00000001", root);
    rf_model *m;
    TH_OK(rf_model_create(&m, dev, &c, 1));
    int32_t *ids = token_ids(16, 1);
    float loss;
    rf_train_config tc;
    TH_OK(rf_train_config_default(&tc));
    TH_OK(rf_model_backward(m, ids, NULL, 1, 16, &loss));
    TH_OK(rf_model_step(m, &tc, 1, NULL));
    TH_OK(rf_checkpoint_save(m, root, 16));
    rf_model_free(m);
    free(ids);
    uint64_t pos;
    TH_FAILS(rf_checkpoint_load(NULL, dev, root, &pos), RF_ERR_INVALID_ARG, "rf_checkpoint_load: null argument");
    TH_FAILS(rf_checkpoint_load(&m, dev, root, NULL), RF_ERR_INVALID_ARG, "rf_checkpoint_load: null argument");

    write_text(root, "latest", "not a checkpoint\n");
    broken_checkpoint(dev, root, RF_ERR_FORMAT, "/latest' does not name a checkpoint folder");
    write_text(root, "latest", "ckpt-00000009\n");
    broken_checkpoint(dev, root, RF_ERR_NOT_FOUND, "ckpt-00000009/config.json");
    write_text(root, "latest", "ckpt-00000001\n");
    TH_OK(rf_checkpoint_load(&m, dev, root, &pos));
    assert_int_equal(pos, 16);
    rf_model_free(m);

    /* Each file of the checkpoint damaged in turn (from an intact copy). */
    char path[400], saved[400];
    snprintf(path, sizeof path, "%s/training_state.safetensors", ckpt);
    snprintf(saved, sizeof saved, "%s/state.bak", root);
    assert_int_equal(rename(path, saved), 0);
    broken_checkpoint(dev, root, RF_ERR_NOT_FOUND, "training_state.safetensors");
    rf_safetensors_writer *w;
    TH_OK(rf_safetensors_writer_new(&w));
    TH_OK(rf_safetensors_writer_set_metadata(w, "step", "-3"));
    TH_OK(rf_safetensors_write(w, path));
    rf_safetensors_writer_free(w);
    broken_checkpoint(dev, root, RF_ERR_FORMAT, "metadata 'step' = '-3' is not an unsigned integer");
    TH_OK(rf_safetensors_writer_new(&w));
    const char *keys[] = {"step", "seed", "forward_calls", "data_position"};
    for (int i = 0; i < 4; i++) TH_OK(rf_safetensors_writer_set_metadata(w, keys[i], "1"));
    TH_OK(rf_safetensors_write(w, path));
    rf_safetensors_writer_free(w);
    broken_checkpoint(dev, root, RF_ERR_NOT_FOUND, "no tensor 'reformer.embeddings.word_embeddings.weight.exp_avg'");
    assert_int_equal(rename(saved, path), 0);
    truncate_file(ckpt, "training_state.safetensors", 100);
    broken_checkpoint(dev, root, RF_ERR_FORMAT, "training_state.safetensors': header length");

    rf_config wide = c;
    wide.hidden_size = 32, wide.axial_pos_embds_dim[1] = 24;
    snprintf(path, sizeof path, "%s/config.json", ckpt);
    TH_OK(rf_config_save_json(&wide, path));
    broken_checkpoint(dev, root, RF_ERR_FORMAT,
                      "tensor 'reformer.embeddings.word_embeddings.weight' is F32 [11, 16] but the model expects F32 [11, 32]");
    TH_OK(rf_config_save_json(&c, path));
    truncate_file(ckpt, "model.safetensors", 5);
    broken_checkpoint(dev, root, RF_ERR_FORMAT, "model.safetensors': the file is 5 bytes, too short for the 8-byte header length");
    write_text(ckpt, "config.json", "{\"attn_layers\": [\"lsh\"");
    broken_checkpoint(dev, root, RF_ERR_FORMAT, "config.json': not valid JSON");
    rf_device_close(dev);
}

/* ---- the command line ------------------------------------------------------- */

static char out[1 << 16];

/* Exit status `code`, and exactly one line of output containing `needle`. */
static void cli_one_line(const char *args, int code, const char *needle) {
    int got = th_run_cli(NULL, args, out, sizeof out);
    if (got != code) fail_msg("reformer %s: exit %d, expected %d; output:\n%s", args, got, code, out);
    if (!strstr(out, needle)) fail_msg("reformer %s: output does not mention \"%s\":\n%s", args, needle, out);
    const char *nl = strchr(out, '\n');
    if (!nl || nl[1]) fail_msg("reformer %s: expected one line of output, got:\n%s", args, out);
}

static void cli_usage_errors_exit_2_failures_exit_1(void **state) {
    char dir[256], args[800];
    th_tmpdir(dir, sizeof dir);
    write_text(dir, "text.txt", "a short text file\n");
    cli_one_line("train --task copy --steps -1", 2, "reformer train: --steps: -1 is out of range [1, 1000000000000]");
    cli_one_line("train --task copy --steps", 2, "reformer train: --steps: needs a value");
    cli_one_line("train --steps 5", 2, "reformer train: give exactly one of --task copy or --text FILE");
    cli_one_line("train --task copy --length 7", 2, "the copy task needs --vocab >= 3 and an even --length >= 4");
    cli_one_line("train --task copy --attn full", 2, "--attn takes a comma list of 'local' and 'lsh', not 'full'");
    /* A list longer than the model can hold is refused, not cut short. */
    char many[600] = "train --task copy --attn local";
    for (int i = 0; i < 64; i++) strcat(many, ",lsh");
    cli_one_line(many, 2, "reformer train: --attn: 'local,lsh,lsh");
    assert_non_null(strstr(out, "has more than"));
    cli_one_line("train --task copy --hidden 30 --heads 4", 2, "--hidden a multiple of 2*heads");
    cli_one_line("train --task copy --length 4000000000", 2, "--length: 4000000000 is out of range [1, 16777216]");
    cli_one_line("sample --random --length 0", 2, "reformer sample: --length: 0 is out of range [1, 1073741824]");
    cli_one_line("sample --length 4", 2, "reformer sample: give exactly one of --model DIR or --random");
    cli_one_line("sample --random --length 5 --bogus", 2, "reformer sample: unknown option or missing value '--bogus'");
    cli_one_line("eval", 2, "reformer eval: --model DIR and --text FILE are required");
    cli_one_line("eval --model m --text t --length -5", 2, "reformer eval: --length: -5 is out of range [0, 1073741824]");
    snprintf(args, sizeof args, "eval --text '%s/text.txt'", dir);
    cli_one_line(args, 2, "--model DIR and --text FILE are required");
    /* Failures while running: exit 1. */
    cli_one_line("train --task copy --steps 1 --device nowhere", 1, "reformer train: not found: unknown device 'nowhere'");
    cli_one_line("sample --random --length 4 --device nowhere", 1, "unknown device 'nowhere'");
    snprintf(args, sizeof args, "train --task copy --resume '%s/none'", dir);
    cli_one_line(args, 1, "none/latest");
    snprintf(args, sizeof args, "train --text '%s/missing.txt'", dir);
    cli_one_line(args, 1, "reformer train: --text: cannot open");
    snprintf(args, sizeof args, "eval --model '%s/none' --text '%s/text.txt' --device cpu", dir, dir);
    cli_one_line(args, 1, "none/config.json");
    snprintf(args, sizeof args, "eval --model '%s' --text '%s/missing.txt'", dir, dir);
    cli_one_line(args, 1, "reformer eval: --text: cannot open");
    snprintf(args, sizeof args, "sample --model '%s/none' --length 4 --device cpu", dir);
    cli_one_line(args, 1, "none/config.json");
    /* A batch no host can hold: malloc's NULL is a failure, not a crash
     * (ASan is told to return NULL as libc does, not to abort). */
    const char *asan = getenv("ASAN_OPTIONS");
    char *saved = asan ? strdup(asan) : NULL, opts[512];
    snprintf(opts, sizeof opts, "%s%sallocator_may_return_null=1", asan ? asan : "", asan ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    assert_int_equal(th_run_cli(NULL, "train --task copy --device cpu --batch 16777216 --length 16777216 --steps 1", out,
                             sizeof out), 1);
    assert_non_null(strstr(out, "reformer train: no host memory for a batch of 16777216 × 16777216 tokens"));
    if (saved) setenv("ASAN_OPTIONS", saved, 1);
    else unsetenv("ASAN_OPTIONS");
    free(saved);
    /* A broken checkpoint to resume from. */
    write_text(dir, "latest", "garbage\n");
    snprintf(args, sizeof args, "train --task copy --device cpu --resume '%s'", dir);
    cli_one_line(args, 1, "does not name a checkpoint folder");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(out_of_memory_mid_step_cpu),
        cmocka_unit_test(out_of_memory_mid_step_opencl),
        cmocka_unit_test(device_layer_refuses_bad_sizes),
        cmocka_unit_test(model_refuses_bad_batches),
        cmocka_unit_test(axial_configs_are_checked),
        cmocka_unit_test(broken_checkpoints_are_refused),
        cmocka_unit_test(cli_usage_errors_exit_2_failures_exit_1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
