/* LSH self-attention on OpenCL (cl/lsh_attention.cl): the argmax of the
 * hashing GEMM's output (the GEMM itself is rf_gemm, CLBlast, run by the
 * front door), the per-round counting sort, the fused chunk attention and
 * the combination. Work-group sizes and local memory come from device
 * queries (rf_cl_lsh_plan checks them once, at rf_lsh_state_init). The
 * state's tensors own their buffers (offset 0), so only the caller's
 * tensors pass offsets. */
#include "device/opencl/cl_backend.h"
#include "device/opencl/cl_attention.h"
#include "device/opencl/cl_tune.h"

/* The largest chunk the attend kernel is written for (the head width's limit
 * is every attention op's, RF_ATTN_MAX_HEAD_DIM). */
#define LSH_MAX_CHUNK 256

static rf_status kernel(rf_device *dev, int head_dim, const char *name, cl_kernel *k) {
    char opts[96];
    rf_cl_attn_options(opts, sizeof opts, head_dim, 0);
    return rf_cl_kernel(dev, "lsh_attention.cl", opts, name, k);
}

/* Local memory a built kernel declares itself (its __local arrays). */
static rf_status kernel_local_bytes(rf_device *dev, cl_kernel k, cl_ulong *bytes) {
    cl_int err =
        clGetKernelWorkGroupInfo(k, rf_cl_ctx(dev)->device, CL_KERNEL_LOCAL_MEM_SIZE, sizeof *bytes, bytes, NULL);
    return err == CL_SUCCESS ? RF_OK : rf_cl_fail(err, "clGetKernelWorkGroupInfo(CL_KERNEL_LOCAL_MEM_SIZE)");
}

/* Local memory the device leaves for a kernel's __local arguments. */
static rf_status local_budget(rf_device *dev, cl_kernel k, size_t *bytes) {
    cl_ulong fixed = 0;
    RF_TRY(kernel_local_bytes(dev, k, &fixed));
    *bytes = dev->info.local_mem_bytes > fixed ? (size_t)(dev->info.local_mem_bytes - fixed) : 0;
    return RF_OK;
}

static size_t sort_local_bytes(int stride, size_t group) { return ((size_t)stride + 2 * group) * sizeof(cl_int); }

/* ---- the tiled chunk kernels' shapes ----------------------------------------
 * lsh_attend, lsh_backward_query and lsh_backward_key (cl/lsh_attention.cl)
 * are built with -DQTILE (queries per tile), -DKTILE (keys per tile) and
 * -DSPLIT (work-items per row, the head dimension split across them). A
 * group owns one tile of rows (queries; keys for lsh_backward_key) and
 * streams the other, so it has owned·SPLIT work-items. Each parameter is
 * read with rf_cl_tuned("<kernel>.qtile" | ".ktile" | ".split"); a tuned
 * shape that does not fit the device's limits falls back to the default,
 * which is shrunk until it fits (the streamed tile, then the owned one). */
typedef enum { LSH_ATTEND, LSH_BACKWARD_QUERY, LSH_BACKWARD_KEY } lsh_tiled;
static const char *const tiled_names[] = {"lsh_attend", "lsh_backward_query", "lsh_backward_key"};

typedef struct lsh_tiles {
    int qtile, ktile, split;
} lsh_tiles;

static int *owned_rows(lsh_tiled which, lsh_tiles *t) { return which == LSH_BACKWARD_KEY ? &t->ktile : &t->qtile; }
static int *streamed_rows(lsh_tiled which, lsh_tiles *t) { return which == LSH_BACKWARD_KEY ? &t->qtile : &t->ktile; }

/* Bytes of a kernel's __local arrays as declared in cl/lsh_attention.cl
 * (staged rows are d + 1 floats apart). */
static size_t tiled_local_bytes(lsh_tiled which, int head_dim, lsh_tiles t) {
    const size_t row = (size_t)head_dim + 1, q = (size_t)t.qtile, k = (size_t)t.ktile, S = (size_t)t.split;
    const size_t ints = 2 * k + q;
    size_t floats;
    if (which == LSH_ATTEND) floats = (q + 2 * k) * row + q * k + k + q * S;
    else if (which == LSH_BACKWARD_QUERY) floats = 2 * (q + k) * row + q * k + k + 3 * q;
    else floats = 2 * (q + k) * row + 2 * k * q + k + 3 * q + k * S;
    return floats * sizeof(cl_float) + ints * sizeof(cl_int);
}

static int pow2_at_least(int n) {
    int p = 1;
    while (p < n) p *= 2;
    return p;
}

/* Accumulator floats per work-item: ACC = ⌈d / SPLIT⌉ per accumulator row
 * (lsh_backward_key keeps two: dk and dv), at most 32. */
static int acc_floats(lsh_tiled which, int head_dim, int split) {
    return (which == LSH_BACKWARD_KEY ? 2 : 1) * ((head_dim + split - 1) / split);
}

/* The documented defaults: SPLIT the smallest power of two that leaves at
 * most 32 accumulator floats per work-item (fewer work-items per row cost
 * PoCL less bookkeeping: at d = 64, 2 for the query kernels and 4 for the
 * key kernel);
 * 64 owned rows and 128 streamed ones, no more than a chunk's m rows or its
 * window's nkeys (2m, or m with one chunk: 2m bounds both). Large tiles
 * mean few barriers per chunk, which PoCL needs (at the benchmark's m = 64
 * a chunk is one tile of each); GPU limits shrink them (tiles_of). */
static lsh_tiles default_tiles(lsh_tiled which, int head_dim, int chunk_len) {
    lsh_tiles t = {.split = 1};
    while (acc_floats(which, head_dim, t.split) > 32) t.split *= 2;
    int m = pow2_at_least(chunk_len);
    *owned_rows(which, &t) = m < 64 ? m : 64;
    *streamed_rows(which, &t) = 2 * m < 128 ? 2 * m : 128;
    return t;
}

static bool is_pow2(int n) { return n > 0 && (n & (n - 1)) == 0; }

static bool tiles_fit(const rf_device *dev, lsh_tiled which, int head_dim, lsh_tiles t) {
    if (!is_pow2(t.qtile) || !is_pow2(t.ktile) || !is_pow2(t.split)) return false;
    if (acc_floats(which, head_dim, t.split) > 32) return false;
    size_t group = (size_t)*owned_rows(which, &t) * (size_t)t.split;
    return group <= dev->info.max_work_group_size && tiled_local_bytes(which, head_dim, t) <= dev->info.local_mem_bytes;
}

static rf_status tiles_of(rf_device *dev, lsh_tiled which, int head_dim, int chunk_len, lsh_tiles *out) {
    const char *name = tiled_names[which];
    char key[3][64];
    const lsh_tiles def = default_tiles(which, head_dim, chunk_len);
    lsh_tiles t;
    snprintf(key[0], sizeof key[0], "%s.qtile", name);
    t.qtile = rf_cl_tuned(dev, key[0], def.qtile);
    snprintf(key[1], sizeof key[1], "%s.ktile", name);
    t.ktile = rf_cl_tuned(dev, key[1], def.ktile);
    snprintf(key[2], sizeof key[2], "%s.split", name);
    t.split = rf_cl_tuned(dev, key[2], def.split);
    if (!tiles_fit(dev, which, head_dim, t)) {
        /* A forced value (the tuner trying it) is refused; a stored one falls back. */
        const char *why = "its tiles exceed the device's work-group or local memory";
        RF_TRY(rf_cl_tuned_unfit(dev, key[0], t.qtile, why));
        RF_TRY(rf_cl_tuned_unfit(dev, key[1], t.ktile, why));
        RF_TRY(rf_cl_tuned_unfit(dev, key[2], t.split, why));
        t = def;
        while (!tiles_fit(dev, which, head_dim, t)) {
            int *own = owned_rows(which, &t), *streamed = streamed_rows(which, &t);
            int *shrink = *streamed >= *own ? streamed : own; /* both 1 when it is 1 */
            if (*shrink == 1)
                return rf_error(RF_ERR_UNSUPPORTED,
                                "rf_lsh_attention (OpenCL): %s at head_dim = %d fits no tile in %s's limits "
                                "(%zu work-items, %zu bytes of local memory)",
                                name, head_dim, dev->info.name, (size_t)dev->info.max_work_group_size,
                                (size_t)dev->info.local_mem_bytes);
            *shrink /= 2;
        }
    }
    *out = t;
    return RF_OK;
}

/* ---- their CPU shape ----------------------------------------------------------
 * On a device rf_cl_attn_shape gives RF_CL_SHAPE_CPU the same three kernels
 * run as lsh_attend_rows, lsh_backward_query_rows and lsh_backward_key_rows
 * (cl/lsh_attention.cl, "the CPU shape"): built with -DCHUNK=m, one
 * work-item per group, the chunk's whole window staged in __local memory —
 * unless that does not fit the device's local memory (d = 128 with m = 256
 * needs 790 KiB in the backward's query kernel: PoCL has 1 MiB), when the
 * GPU shape runs. No tunables: the shape has no tile to choose. */
static const char *const rows_names[] = {"lsh_attend_rows", "lsh_backward_query_rows", "lsh_backward_key_rows"};

/* Bytes of a rows kernel's __local arrays as declared in cl/lsh_attention.cl:
 * KP window rows (2m rounded up to 64), transposed (d floats each) or padded
 * (d rounded up to the vector width vw), and per-row ints, floats or
 * offsets. */
static size_t rows_local_bytes(lsh_tiled which, int head_dim, int chunk_len, int vw) {
    const size_t kp = rf_round_up(2 * (size_t)chunk_len, 64), d = (size_t)head_dim;
    const size_t padded = rf_round_up((size_t)head_dim, (size_t)vw);
    if (which == LSH_ATTEND) return (kp * d + 2 * kp * padded + 3 * kp) * sizeof(cl_float);
    if (which == LSH_BACKWARD_QUERY) return (2 * kp * d + kp * padded + 3 * kp) * sizeof(cl_float);
    return 2 * kp * padded * sizeof(cl_float) + kp * sizeof(cl_ulong);
}

/* Whether `which` runs in its CPU shape on dev (see above). The backward's
 * two kernels run in the same shape (the key kernel reads what the query
 * kernel leaves in its CPU shape), so both must fit. */
static rf_status runs_rows(rf_device *dev, lsh_tiled which, int head_dim, int chunk_len, bool *rows) {
    rf_cl_shape shape;
    RF_TRY(rf_cl_attn_shape(dev, &shape));
    const int vw = rf_cl_ctx(dev)->vector_width;
    size_t bytes = rows_local_bytes(which, head_dim, chunk_len, vw);
    if (which != LSH_ATTEND) {
        const size_t q = rows_local_bytes(LSH_BACKWARD_QUERY, head_dim, chunk_len, vw);
        const size_t k = rows_local_bytes(LSH_BACKWARD_KEY, head_dim, chunk_len, vw);
        bytes = q > k ? q : k;
    }
    *rows = shape == RF_CL_SHAPE_CPU && bytes <= dev->info.local_mem_bytes;
    return RF_OK;
}

/* A kernel of the CPU shape's program (-DCHUNK=m -DVW=vector width). */
static rf_status rows_kernel(rf_device *dev, int head_dim, int chunk_len, const char *name, cl_kernel *k) {
    char opts[160], base[96];
    rf_cl_attn_options(base, sizeof base, head_dim, 0);
    snprintf(opts, sizeof opts, "%s -DCHUNK=%d -DVW=%d", base, chunk_len, rf_cl_ctx(dev)->vector_width);
    return rf_cl_kernel(dev, "lsh_attention.cl", opts, name, k);
}

/* A chunk kernel built for its shape; *group: its work-group size. */
static rf_status tiled_kernel(rf_device *dev, lsh_tiled which, int head_dim, int chunk_len, cl_kernel *k,
                              size_t *group) {
    bool rows;
    RF_TRY(runs_rows(dev, which, head_dim, chunk_len, &rows));
    if (rows) {
        *group = 1;
        return rows_kernel(dev, head_dim, chunk_len, rows_names[which], k);
    }
    lsh_tiles t = {0}; /* set by tiles_of on success (gcc cannot see it) */
    RF_TRY(tiles_of(dev, which, head_dim, chunk_len, &t));
    char opts[160], base[96];
    rf_cl_attn_options(base, sizeof base, head_dim, 0);
    snprintf(opts, sizeof opts, "%s -DQTILE=%d -DKTILE=%d -DSPLIT=%d", base, t.qtile, t.ktile, t.split);
    *group = (size_t)*owned_rows(which, &t) * (size_t)t.split;
    return rf_cl_kernel(dev, "lsh_attention.cl", opts, tiled_names[which], k);
}

static rf_status rf_cl_lsh_plan(rf_device *dev, int head_dim, int chunk_len, int stride) {
    const char *op = "rf_lsh_attention (OpenCL)";
    if (head_dim > RF_ATTN_MAX_HEAD_DIM)
        return rf_error(RF_ERR_UNSUPPORTED, "%s: head_dim = %d exceeds the %d the attend kernel supports on %s", op,
                        head_dim, RF_ATTN_MAX_HEAD_DIM, dev->info.name);
    if (chunk_len > LSH_MAX_CHUNK)
        return rf_error(RF_ERR_UNSUPPORTED, "%s: chunk length %d exceeds the %d the attend kernel supports", op,
                        chunk_len, LSH_MAX_CHUNK);
    cl_kernel k;
    size_t budget, group;
    RF_TRY(kernel(dev, head_dim, "lsh_sort", &k));
    RF_TRY(rf_cl_group_size(dev, k, RF_CL_GROUP, &group));
    RF_TRY(local_budget(dev, k, &budget));
    if (sort_local_bytes(stride, group) > budget)
        return rf_error(RF_ERR_UNSUPPORTED,
                        "%s: %d buckets per round need %zu bytes of local memory in the sort; %s has %zu", op,
                        stride - 1, sort_local_bytes(stride, group), dev->info.name, budget);
    /* Build each tiled kernel now and check what the compiler made of it:
     * its group must be allowed and its __local arrays must fit. */
    for (lsh_tiled which = LSH_ATTEND; which <= LSH_BACKWARD_KEY; which++) {
        size_t kmax = 0;
        cl_ulong declared = 0;
        RF_TRY(tiled_kernel(dev, which, head_dim, chunk_len, &k, &group));
        RF_TRY(kernel_local_bytes(dev, k, &declared));
        cl_int err = clGetKernelWorkGroupInfo(k, rf_cl_ctx(dev)->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof kmax,
                                              &kmax, NULL);
        if (err != CL_SUCCESS) return rf_cl_fail(err, "clGetKernelWorkGroupInfo(CL_KERNEL_WORK_GROUP_SIZE)");
        if (group > kmax || declared > dev->info.local_mem_bytes)
            return rf_error(RF_ERR_UNSUPPORTED,
                            "%s: %s needs work-groups of %zu and %llu bytes of local memory; %s allows %zu and %llu",
                            op, tiled_names[which], group, (unsigned long long)declared, dev->info.name, kmax,
                            (unsigned long long)dev->info.local_mem_bytes);
    }
    return RF_OK;
}

/* The attention-dropout arguments of lsh_attend and the backward's query and
 * key kernels (cl/attention_common.cl). */
static rf_cl_attn_dropout dropout_args(const rf_lsh_state *st) {
    rf_attn_dropout d = rf_attn_lsh_dropout(st);
    return rf_cl_attn_dropout_args(&d);
}

static rf_status rf_cl_lsh_buckets(rf_lsh_state *st, const rf_tensor *mask) {
    rf_device *dev = st->device;
    cl_kernel k;
    RF_TRY(kernel(dev, st->head_dim, "lsh_buckets", &k));
    size_t local;
    RF_TRY(rf_cl_group_size(dev, k, RF_CL_GROUP, &local));
    cl_int B = (cl_int)st->batch, L = (cl_int)st->seq_len, H = st->n_heads, R = st->n_rounds, rc = st->rot_cols;
    cl_int f1 = st->factors[0], f2 = st->factors[1], nb = st->n_buckets, stride = st->bucket_stride;
    rf_cl_attn_optional mask_arg = rf_cl_attn_optional_of(mask);
    size_t global = rf_tensor_numel(&st->buckets);
    return RF_CL_LAUNCH(dev, k, "lsh_buckets", 1, &global, &local, RF_MEM(&st->rotated),
                        RF_MEM(&st->buckets), RF_CL_ATTN_OPTIONAL_ARGS(mask_arg), RF_ARG(B),
                        RF_ARG(L), RF_ARG(H), RF_ARG(R), RF_ARG(rc), RF_ARG(f1), RF_ARG(f2), RF_ARG(nb),
                        RF_ARG(stride));
}

static rf_status rf_cl_lsh_sort(rf_lsh_state *st) {
    rf_device *dev = st->device;
    cl_kernel k;
    RF_TRY(kernel(dev, st->head_dim, "lsh_sort", &k));
    size_t local;
    RF_TRY(rf_cl_group_size(dev, k, RF_CL_GROUP, &local));
    cl_int L = (cl_int)st->seq_len, R = st->n_rounds, stride = st->bucket_stride;
    size_t global = (size_t)st->batch * st->n_heads * st->n_rounds * local; /* a group per (b, h, round) */
    return RF_CL_LAUNCH(dev, k, "lsh_sort", 1, &global, &local, RF_MEM(&st->buckets),
                        RF_MEM(&st->perm), RF_MEM(&st->undo), RF_ARG(L), RF_ARG(R), RF_ARG(stride),
                        RF_LOCAL((size_t)stride * sizeof(cl_int)), RF_LOCAL(local * sizeof(cl_int)),
                        RF_LOCAL(local * sizeof(cl_int)));
}

static rf_status rf_cl_lsh_attend(rf_lsh_state *st, const rf_tensor *qk, const rf_tensor *v, const rf_tensor *mask) {
    rf_device *dev = st->device;
    cl_kernel k;
    size_t local;
    RF_TRY(tiled_kernel(dev, LSH_ATTEND, st->head_dim, st->chunk_len, &k, &local));
    cl_int L = (cl_int)st->seq_len, H = st->n_heads, N = st->n_rounds * (cl_int)st->seq_len, m = st->chunk_len;
    cl_int causal = st->causal, hf = st->hf_rounding;
    const rf_cl_attn_dropout drop = dropout_args(st);
    const rf_cl_attn_optional mask_arg = rf_cl_attn_optional_of(mask);
    cl_ulong qoff = qk->offset, voff = v->offset;
    size_t groups = (size_t)st->batch * st->n_heads * (size_t)(N / m), global = groups * local;
    return RF_CL_LAUNCH(dev, k, "lsh_attend", 1, &global, &local, RF_MEM(qk), RF_ARG(qoff),
                        RF_MEM(v), RF_ARG(voff), RF_CL_ATTN_OPTIONAL_ARGS(mask_arg),
                        RF_MEM(&st->perm), RF_MEM(&st->o_sorted), RF_MEM(&st->lse_sorted),
                        RF_ARG(L), RF_ARG(H), RF_ARG(N), RF_ARG(m), RF_ARG(causal), RF_ARG(hf),
                        RF_CL_ATTN_DROPOUT_ARGS(drop));
}

static rf_status rf_cl_lsh_combine(rf_tensor *out, const rf_lsh_state *st) {
    rf_device *dev = st->device;
    cl_kernel k;
    RF_TRY(kernel(dev, st->head_dim, "lsh_combine", &k));
    size_t local;
    RF_TRY(rf_cl_group_size(dev, k, RF_CL_GROUP, &local));
    cl_int B = (cl_int)st->batch, L = (cl_int)st->seq_len, H = st->n_heads, R = st->n_rounds, hf = st->hf_rounding;
    cl_ulong off = out->offset;
    size_t global = rf_tensor_numel(out) / (size_t)st->head_dim; /* a work-item per (b, t, h) */
    return RF_CL_LAUNCH(dev, k, "lsh_combine", 1, &global, &local, RF_MEM(out), RF_ARG(off),
                        RF_MEM(&st->o_sorted), RF_MEM(&st->lse_sorted), RF_MEM(&st->undo),
                        RF_ARG(B), RF_ARG(L), RF_ARG(H), RF_ARG(R), RF_ARG(hf));
}

/* The backward pass in four launches (see cl/lsh_attention.cl): round
 * weights, the query path per sorted query, the key and value paths per
 * sorted key, then the gather back to positions through undo. Every scratch
 * row has one writer, so no float atomics. The query and key kernels have
 * tile shapes of their own (tiles_of). Scratch: w, c [B, H, R·L] and gqk, gv
 * [B, H, R·L, d], and in the CPU shape pw, dsw [B, H, R·L, nkeys rounded up
 * to 8] (each sorted query's D·p and ds against its window, which the key
 * kernel reads instead of computing the logits again), released once
 * enqueued (the runtime frees them after the kernels). */
static rf_status rf_cl_lsh_attention_backward(rf_tensor *dqk, rf_tensor *dv, const rf_tensor *dout,
                                              const rf_lsh_state *st,
                                              const rf_tensor *qk, const rf_tensor *v, const rf_tensor *mask) {
    rf_device *dev = st->device;
    const int d = st->head_dim;
    const int64_t B = st->batch, H = st->n_heads, N = (int64_t)st->n_rounds * st->seq_len;
    cl_kernel kw, kq, kk, kg;
    size_t lw, lq, lk, lg;
    bool rows;
    RF_TRY(runs_rows(dev, LSH_BACKWARD_QUERY, d, st->chunk_len, &rows));
    RF_TRY(kernel(dev, d, "lsh_backward_weights", &kw));
    RF_TRY(tiled_kernel(dev, LSH_BACKWARD_QUERY, d, st->chunk_len, &kq, &lq));
    RF_TRY(tiled_kernel(dev, LSH_BACKWARD_KEY, d, st->chunk_len, &kk, &lk));
    if (rows) RF_TRY(rows_kernel(dev, d, st->chunk_len, "lsh_backward_gather_rows", &kg)); /* a row per item */
    else RF_TRY(kernel(dev, d, "lsh_backward_gather", &kg));
    RF_TRY(rf_cl_group_size(dev, kw, RF_CL_GROUP, &lw));
    RF_TRY(rf_cl_group_size(dev, kg, RF_CL_GROUP, &lg));
    /* The CPU shape's rows of D·p and ds per sorted item: its window's keys,
     * rounded up to 8 (KW in cl/lsh_attention.cl). */
    const int64_t nkeys = N / st->chunk_len > 1 ? 2 * (int64_t)st->chunk_len : st->chunk_len;
    const int64_t kw8 = (nkeys + 7) / 8 * 8;
    rf_tensor w = {0}, cw = {0}, gqk = {0}, gv = {0}, pw = {0}, dsw = {0};
    rf_status s = rf_tensor_alloc(dev, &w, RF_F32, 3, (int64_t[]){B, H, N});
    if (!s) s = rf_tensor_alloc(dev, &cw, RF_F32, 3, (int64_t[]){B, H, N});
    if (!s) s = rf_tensor_alloc(dev, &gqk, RF_F32, 4, (int64_t[]){B, H, N, d});
    if (!s) s = rf_tensor_alloc(dev, &gv, RF_F32, 4, (int64_t[]){B, H, N, d});
    if (!s && rows) s = rf_tensor_alloc(dev, &pw, RF_F32, 4, (int64_t[]){B, H, N, kw8});
    if (!s && rows) s = rf_tensor_alloc(dev, &dsw, RF_F32, 4, (int64_t[]){B, H, N, kw8});
    cl_int cB = (cl_int)B, L = (cl_int)st->seq_len, cH = (cl_int)H, R = st->n_rounds, cN = (cl_int)N;
    cl_int m = st->chunk_len, causal = st->causal;
    const rf_cl_attn_dropout drop = dropout_args(st);
    const rf_cl_attn_optional mask_arg = rf_cl_attn_optional_of(mask);
    cl_ulong qoff = qk->offset, voff = v->offset, goff = dout->offset;
    cl_ulong dqoff = dqk->offset, dvoff = dv->offset;
    size_t global = (size_t)(B * H * st->seq_len);
    if (!s)
        s = RF_CL_LAUNCH(dev, kw, "lsh_backward_weights", 1, &global, &lw, RF_MEM(dout), RF_ARG(goff),
                         RF_MEM(&st->o_sorted), RF_MEM(&st->lse_sorted), RF_MEM(&st->undo),
                         RF_MEM(&w), RF_MEM(&cw), RF_ARG(cB), RF_ARG(L), RF_ARG(cH), RF_ARG(R));
    const size_t groups = (size_t)(B * H * (N / m));
    global = groups * lq;
    if (!s && rows)
        s = RF_CL_LAUNCH(dev, kq, "lsh_backward_query_rows", 1, &global, &lq, RF_MEM(qk), RF_ARG(qoff),
                         RF_MEM(v), RF_ARG(voff), RF_MEM(dout), RF_ARG(goff),
                         RF_CL_ATTN_OPTIONAL_ARGS(mask_arg), RF_MEM(&st->perm), RF_MEM(&st->lse_sorted),
                         RF_MEM(&w), RF_MEM(&cw), RF_MEM(&gqk), RF_MEM(&pw), RF_MEM(&dsw), RF_ARG(L), RF_ARG(cH),
                         RF_ARG(cN), RF_ARG(m), RF_ARG(causal), RF_CL_ATTN_DROPOUT_ARGS(drop));
    else if (!s)
        s = RF_CL_LAUNCH(dev, kq, "lsh_backward_query", 1, &global, &lq, RF_MEM(qk), RF_ARG(qoff),
                         RF_MEM(v), RF_ARG(voff), RF_MEM(dout), RF_ARG(goff),
                         RF_CL_ATTN_OPTIONAL_ARGS(mask_arg), RF_MEM(&st->perm), RF_MEM(&st->lse_sorted),
                         RF_MEM(&w), RF_MEM(&cw), RF_MEM(&gqk), RF_ARG(L), RF_ARG(cH),
                         RF_ARG(cN), RF_ARG(m), RF_ARG(causal), RF_CL_ATTN_DROPOUT_ARGS(drop));
    global = groups * lk;
    if (!s && rows)
        s = RF_CL_LAUNCH(dev, kk, "lsh_backward_key_rows", 1, &global, &lk, RF_MEM(qk), RF_ARG(qoff),
                         RF_MEM(dout), RF_ARG(goff), RF_MEM(&st->perm), RF_MEM(&w), RF_MEM(&pw), RF_MEM(&dsw),
                         RF_MEM(&gqk), RF_MEM(&gv), RF_ARG(L), RF_ARG(cH), RF_ARG(cN), RF_ARG(m));
    else if (!s)
        s = RF_CL_LAUNCH(dev, kk, "lsh_backward_key", 1, &global, &lk, RF_MEM(qk), RF_ARG(qoff),
                         RF_MEM(v), RF_ARG(voff), RF_MEM(dout), RF_ARG(goff),
                         RF_CL_ATTN_OPTIONAL_ARGS(mask_arg), RF_MEM(&st->perm), RF_MEM(&st->lse_sorted),
                         RF_MEM(&w), RF_MEM(&cw), RF_MEM(&gqk), RF_MEM(&gv),
                         RF_ARG(L), RF_ARG(cH), RF_ARG(cN), RF_ARG(m), RF_ARG(causal), RF_CL_ATTN_DROPOUT_ARGS(drop));
    global = rf_tensor_numel(dqk) / (rows ? (size_t)d : 1);
    if (!s)
        s = RF_CL_LAUNCH(dev, kg, "lsh_backward_gather", 1, &global, &lg, RF_MEM(dqk), RF_ARG(dqoff),
                         RF_MEM(dv), RF_ARG(dvoff), RF_MEM(&gqk), RF_MEM(&gv),
                         RF_MEM(&st->undo), RF_ARG(cB), RF_ARG(L), RF_ARG(cH), RF_ARG(R));
    rf_tensor *scratch[] = {&w, &cw, &gqk, &gv, &pw, &dsw};
    for (size_t i = 0; i < sizeof scratch / sizeof scratch[0]; i++)
        if (scratch[i]->buf) rf_tensor_free(scratch[i]);
    return s;
}

void rf_cl_lsh_attention_register(rf_op_table *ops) {
    ops->lsh_plan = rf_cl_lsh_plan;
    ops->lsh_buckets = rf_cl_lsh_buckets;
    ops->lsh_sort = rf_cl_lsh_sort;
    ops->lsh_attend = rf_cl_lsh_attend;
    ops->lsh_combine = rf_cl_lsh_combine;
    ops->lsh_attention_backward = rf_cl_lsh_attention_backward;
}
