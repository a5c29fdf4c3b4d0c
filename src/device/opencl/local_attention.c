/* Windowed attention on OpenCL (cl/local_attention.cl; §6): a fused
 * forward with online softmax (with probability dropout regenerated from
 * Philox words, §2), and a flash-attention style backward in three
 * launches — delta = rowsum(dout·out), dq (groups own query rows), dk and dv
 * (groups own key rows) — so every output row has one writer and no float
 * atomics are needed. Two shapes of the same kernels (rf_cl_attn_shape):
 * the GPU shape's tiles and work-items per row are -D options planned here
 * from the device's limits and the tuned values (cl_tune.h); the CPU shape
 * (-DCPU_SHAPE) runs one work-item per group over whole rows, and with a
 * whole chunk per group fuses the dq and dk/dv launches into one that
 * writes per-window-slot dk/dv parts, then sums them. Nothing of size L×L
 * (or window×L) is allocated: the scratch is delta, [B, H, L], and the
 * fused backward's parts, 2·slots tensors of q's size. */
#include <string.h>
#include "device/opencl/cl_backend.h"
#include "device/opencl/cl_attention.h"
#include "device/opencl/cl_tune.h"

/* The most accumulator floats one work-item keeps per row (SLICE in the .cl,
 * ceil(d / SPLIT)): a bounded register tile whatever the head width. The
 * default SPLIT aims at DEFAULT_SLICE. */
#define MAX_SLICE 32
#define DEFAULT_SLICE 8
/* Default tiles: rows a group owns, rows it streams per step. */
#define DEFAULT_ROWS 32
#define DEFAULT_COLS 64

/* A window kernel's tile parameters (ROWS, COLS, SPLIT in the .cl). */
typedef struct window_plan {
    int rows, cols, split;
} window_plan;

/* A window kernel: its tunable keys and the local memory of its tiles, as
 * counts of what the .cl declares: [ROWS, d + 1] blocks of its own rows (two
 * [COLS, d + 1] blocks of streamed rows in every kernel), [ROWS, COLS] tiles,
 * floats (or ints) per streamed row and per work-item. */
typedef struct window_shape {
    const char *name, *rows_key, *cols_key, *split_key;
    int row_blocks, tiles, col_words, item_words;
} window_shape;

static const window_shape FORWARD = {"attn_forward", "attn_forward.qtile", "attn_forward.ktile",
                                     "attn_forward.split", 1, 1, 1, 2};
static const window_shape BACKWARD_DQ = {"attn_backward_dq", "attn_backward_dq.qtile", "attn_backward_dq.ktile",
                                         "attn_backward_dq.split", 2, 1, 1, 0};
/* dk/dv own key rows and stream query rows. */
static const window_shape BACKWARD_DKDV = {"attn_backward_dkdv", "attn_backward_dkdv.ktile",
                                           "attn_backward_dkdv.qtile", "attn_backward_dkdv.split", 2, 2, 2, 0};

static uint64_t plan_bytes(const window_shape *ws, window_plan p, int64_t d) {
    uint64_t row = (uint64_t)d + 1, rows = (uint64_t)p.rows, cols = (uint64_t)p.cols;
    return 4u * (((uint64_t)ws->row_blocks * rows + 2u * cols) * row + (uint64_t)ws->tiles * rows * cols +
                 (uint64_t)ws->col_words * cols + (uint64_t)ws->item_words * rows * (uint64_t)p.split);
}

static bool plan_fits(rf_device *dev, const window_shape *ws, window_plan p, int64_t d) {
    return p.rows >= 1 && p.cols >= 1 && p.split >= 1 && (d + p.split - 1) / p.split <= MAX_SLICE &&
           (size_t)p.rows * (size_t)p.split <= dev->info.max_work_group_size &&
           plan_bytes(ws, p, d) <= dev->info.local_mem_bytes;
}

/* The tiles of kernel ws for head width d on this device: the tuned values
 * (cl_tune.h) when they fit its limits, else the defaults, halved (the key
 * tile first, down to 8 rows, then the owned rows) until they fit. */
static rf_status plan_window(rf_device *dev, const window_shape *ws, int64_t d, window_plan *out) {
    window_plan def = {DEFAULT_ROWS, DEFAULT_COLS, 1};
    while ((d + def.split - 1) / def.split > DEFAULT_SLICE) def.split *= 2;
    window_plan p = {rf_cl_tuned(dev, ws->rows_key, def.rows), rf_cl_tuned(dev, ws->cols_key, def.cols),
                     rf_cl_tuned(dev, ws->split_key, def.split)};
    if (!plan_fits(dev, ws, p, d)) {
        /* A forced value (the tuner trying it) is refused; a stored one falls back. */
        const char *why = "its tiles exceed the device's work-group or local memory";
        RF_TRY(rf_cl_tuned_unfit(dev, ws->rows_key, p.rows, why));
        RF_TRY(rf_cl_tuned_unfit(dev, ws->cols_key, p.cols, why));
        RF_TRY(rf_cl_tuned_unfit(dev, ws->split_key, p.split, why));
        p = def;
    }
    while (!plan_fits(dev, ws, p, d)) {
        if (p.rows > 1 && (size_t)p.rows * (size_t)p.split > dev->info.max_work_group_size) p.rows /= 2;
        else if (p.cols > 8) p.cols /= 2;
        else if (p.rows > 1) p.rows /= 2;
        else
            return rf_error(RF_ERR_UNSUPPORTED,
                            "%s: head_dim %lld needs %llu bytes of local memory and %d work-items even with the "
                            "smallest tiles; %s has %llu and %zu",
                            ws->name, (long long)d, (unsigned long long)plan_bytes(ws, p, d), p.split,
                            dev->info.name, (unsigned long long)dev->info.local_mem_bytes,
                            dev->info.max_work_group_size);
    }
    *out = p;
    return RF_OK;
}

typedef struct window_launch {
    cl_kernel kernel;
    size_t global[2], local[2];
    window_plan plan;
    rf_cl_shape shape;
    char options[160];
} window_launch;

/* Build (cached) kernel `name` of local_attention.cl for wl->plan in shape
 * `shape`, keeping its options in wl->options (attn_delta is built with the
 * dq kernel's). The shape is part of the options, so both can be cached. */
static rf_status window_build(rf_device *dev, const rf_attn_window *w, const char *name, rf_cl_shape shape,
                              window_launch *wl) {
    rf_cl_attn_options(wl->options, sizeof wl->options, w->head_dim, 0);
    size_t at = strlen(wl->options);
    if (shape == RF_CL_SHAPE_CPU)
        snprintf(wl->options + at, sizeof wl->options - at, " -DCPU_SHAPE -DROWS=%d -DCOLS=%d -DVW=%d",
                 wl->plan.rows, wl->plan.cols, rf_cl_ctx(dev)->vector_width);
    else
        snprintf(wl->options + at, sizeof wl->options - at, " -DROWS=%d -DCOLS=%d -DSPLIT=%d -DMAX_SLICE=%d",
                 wl->plan.rows, wl->plan.cols, wl->plan.split, MAX_SLICE);
    return rf_cl_kernel(dev, "local_attention.cl", wl->options, name, &wl->kernel);
}

/* The CPU shape's tiles (the .cl's CPU shape section): a group's one
 * work-item owns up to CPU_ROWS rows of a chunk and streams blocks of up to
 * CPU_COLS rows, a multiple of the vector width vw (its VEC lanes: 8 or
 * 16, cl_backend.h). 64 and 64: the cpu backend's tile (a default chunk),
 * and transposed blocks of 16 KiB at d = 64 that stay in L1 with the
 * block's rows. Halved (rows first, down to 8, then the block, to a
 * multiple of vw) while its local memory — at most
 * two [d, COLS] blocks, two [ROWS, d] accumulators, two [ROWS, COLS] tiles
 * and a few rows — exceeds the device's. */
#define CPU_ROWS 64
#define CPU_COLS 64

static rf_status cpu_plan(rf_device *dev, const rf_attn_window *w, window_plan *out) {
    int64_t d = w->head_dim, chunk = w->chunk_len, vw = rf_cl_ctx(dev)->vector_width;
    window_plan p = {(int)(chunk < CPU_ROWS ? chunk : CPU_ROWS), (int)rf_round_up((size_t)chunk, (size_t)vw), 1};
    if (p.cols > CPU_COLS) p.cols = CPU_COLS;
    for (;;) {
        uint64_t bytes = 4u * (uint64_t)(2 * d * p.cols + 2 * p.rows * d + 2 * p.rows * p.cols + 2 * d + 2 * p.rows);
        if (bytes <= dev->info.local_mem_bytes) break;
        if (p.rows > 8) p.rows /= 2;
        else if (p.cols > vw) p.cols = (int)rf_round_up((size_t)p.cols / 2, (size_t)vw);
        else
            return rf_error(RF_ERR_UNSUPPORTED,
                            "local attention: head_dim %lld needs %llu bytes of local memory; %s has %llu",
                            (long long)d, (unsigned long long)bytes, dev->info.name,
                            (unsigned long long)dev->info.local_mem_bytes);
    }
    *out = p;
    return RF_OK;
}

/* Plan, build and size kernel ws in the device's shape: work-groups of
 * rows·split items (one in the CPU shape) each own up to `rows` rows of one
 * chunk (see the .cl). A kernel the compiler cannot
 * run that wide (CL_KERNEL_WORK_GROUP_SIZE) gets half the rows; the local
 * memory it declares is checked against the device's (plan_bytes counts it). */
static rf_status window_kernel(rf_device *dev, const rf_attn_window *w, const window_shape *ws, window_launch *wl) {
    rf_cl_shape shape;
    RF_TRY(rf_cl_attn_shape(dev, &shape));
    wl->shape = shape;
    if (shape == RF_CL_SHAPE_CPU) RF_TRY(cpu_plan(dev, w, &wl->plan));
    else RF_TRY(plan_window(dev, ws, w->head_dim, &wl->plan));
    size_t group, kmax;
    cl_ulong local;
    for (;;) {
        RF_TRY(window_build(dev, w, ws->name, shape, wl));
        group = shape == RF_CL_SHAPE_CPU ? 1 : (size_t)wl->plan.rows * (size_t)wl->plan.split;
        cl_device_id id = rf_cl_ctx(dev)->device;
        cl_int err = clGetKernelWorkGroupInfo(wl->kernel, id, CL_KERNEL_WORK_GROUP_SIZE, sizeof kmax, &kmax, NULL);
        if (err == CL_SUCCESS)
            err = clGetKernelWorkGroupInfo(wl->kernel, id, CL_KERNEL_LOCAL_MEM_SIZE, sizeof local, &local, NULL);
        if (err != CL_SUCCESS) return rf_cl_fail(err, "clGetKernelWorkGroupInfo");
        if (local > dev->info.local_mem_bytes)
            return rf_error(RF_ERR_UNSUPPORTED, "%s (%s): %llu bytes of local memory; %s has %llu", ws->name,
                            wl->options, (unsigned long long)local, dev->info.name,
                            (unsigned long long)dev->info.local_mem_bytes);
        if (group <= kmax) break;
        if (wl->plan.rows == 1)
            return rf_error(RF_ERR_UNSUPPORTED, "%s: %s runs at most %zu work-items per group; it needs %zu",
                            ws->name, dev->info.name, kmax, group);
        wl->plan.rows /= 2;
    }
    size_t tiles = ((size_t)w->chunk_len + (size_t)wl->plan.rows - 1) / (size_t)wl->plan.rows;
    wl->global[0] = (size_t)(w->len / w->chunk_len) * tiles * group;
    wl->global[1] = (size_t)(w->batch * w->heads);
    wl->local[0] = group;
    wl->local[1] = 1;
    return RF_OK;
}

/* The window's dropout arguments (cl/attention_common.cl). */
static rf_cl_attn_dropout dropout_args(const rf_attn_window *w) {
    rf_attn_dropout d = rf_attn_window_dropout(w);
    return rf_cl_attn_dropout_args(&d);
}

static rf_status rf_cl_local_attention_forward(rf_tensor *out, rf_tensor *lse, const rf_tensor *q, const rf_tensor *k,
                                               const rf_tensor *v, const rf_tensor *mask, const rf_attn_window *w) {
    rf_device *dev = out->buf->dev;
    window_launch wl;
    RF_TRY(window_kernel(dev, w, &FORWARD, &wl));
    rf_cl_attn_optional lse_arg = rf_cl_attn_optional_of(lse), mask_arg = rf_cl_attn_optional_of(mask);
    cl_ulong oo = out->offset, qo = q->offset, ko = k->offset, vo = v->offset;
    cl_int L = (cl_int)w->len, H = (cl_int)w->heads;
    cl_int chunk = (cl_int)w->chunk_len, before = w->before, after = w->after, causal = w->causal;
    cl_int self_mask = w->self_mask;
    float scale = w->scale;
    rf_cl_attn_dropout drop = dropout_args(w);
    return RF_CL_LAUNCH(dev, wl.kernel, "attention_forward", 2, wl.global, wl.local, RF_MEM(out),
                        RF_ARG(oo), RF_CL_ATTN_OPTIONAL_ARGS(lse_arg), RF_MEM(q), RF_ARG(qo),
                        RF_MEM(k), RF_ARG(ko), RF_MEM(v), RF_ARG(vo),
                        RF_CL_ATTN_OPTIONAL_ARGS(mask_arg), RF_ARG(L), RF_ARG(H), RF_ARG(chunk), RF_ARG(before),
                        RF_ARG(after), RF_ARG(causal), RF_ARG(self_mask), RF_ARG(scale), RF_CL_ATTN_DROPOUT_ARGS(drop));
}

/* delta = rowsum(dout·out) into a fresh [B, H, L] tensor, with the dq
 * kernel's plan (the same program: rows per group, split per row). */
static rf_status compute_delta(rf_device *dev, const rf_attn_window *w, rf_tensor *delta, const rf_tensor *dout,
                               const rf_tensor *out, const window_launch *wq) {
    cl_kernel kernel;
    RF_TRY(rf_cl_kernel(dev, "local_attention.cl", wq->options, "attn_delta", &kernel));
    RF_TRY(rf_tensor_alloc(dev, delta, RF_F32, 3, (const int64_t[]){w->batch, w->heads, w->len}));
    size_t rows = (size_t)wq->plan.rows, group = wq->local[0];
    size_t global[2] = {((size_t)w->len + rows - 1) / rows * group, (size_t)(w->batch * w->heads)};
    size_t local[2] = {group, 1};
    cl_ulong go = dout->offset, oo = out->offset;
    cl_int L = (cl_int)w->len, H = (cl_int)w->heads;
    rf_status s = RF_CL_LAUNCH(dev, kernel, "attention_backward_delta", 2, global, local, RF_MEM(delta),
                               RF_MEM(dout), RF_ARG(go), RF_MEM(out), RF_ARG(oo), RF_ARG(L),
                               RF_ARG(H));
    if (s != RF_OK) rf_tensor_free(delta);
    return s;
}

static rf_status rf_cl_local_attention_backward(rf_tensor *dq, rf_tensor *dk, rf_tensor *dv, const rf_tensor *dout,
                                                const rf_tensor *out, const rf_tensor *lse, const rf_tensor *q,
                                                const rf_tensor *k, const rf_tensor *v, const rf_tensor *mask,
                                                const rf_attn_window *w) {
    rf_device *dev = dq->buf->dev;
    window_launch wq, wk = {0};
    RF_TRY(window_kernel(dev, w, &BACKWARD_DQ, &wq));
    /* The CPU shape with a whole chunk per group computes s and dp once for
     * all three gradients (attn_backward_fused): dq, and per window slot the
     * dk and dv parts of its keys, which attn_backward_sum adds up. */
    const bool fused = wq.shape == RF_CL_SHAPE_CPU && wq.plan.rows >= w->chunk_len;
    const int slots = w->before + 1 + w->after;
    cl_ulong numel = (cl_ulong)(w->batch * w->len * w->heads * w->head_dim);
    cl_kernel sum = NULL;
    if (fused) {
        RF_TRY(rf_cl_kernel(dev, "local_attention.cl", wq.options, "attn_backward_fused", &wq.kernel));
        RF_TRY(rf_cl_kernel(dev, "local_attention.cl", wq.options, "attn_backward_sum", &sum));
    } else RF_TRY(window_kernel(dev, w, &BACKWARD_DKDV, &wk));
    rf_tensor delta, part = {0}; /* part is freed on every path */
    RF_TRY(compute_delta(dev, w, &delta, dout, out, &wq));
    rf_status s = fused ? rf_tensor_alloc(dev, &part, RF_F32, 2, (const int64_t[]){2 * slots, (int64_t)numel}) : RF_OK;
    rf_cl_attn_optional mask_arg = rf_cl_attn_optional_of(mask);
    cl_ulong dqo = dq->offset, dko = dk->offset, dvo = dv->offset, go = dout->offset, lo = lse->offset;
    cl_ulong qo = q->offset, ko = k->offset, vo = v->offset;
    cl_int L = (cl_int)w->len, H = (cl_int)w->heads, chunk = (cl_int)w->chunk_len;
    cl_int before = w->before, after = w->after, causal = w->causal, self_mask = w->self_mask, nslots = slots;
    float scale = w->scale;
    rf_cl_attn_dropout drop = dropout_args(w);
    if (s == RF_OK && fused)
        s = RF_CL_LAUNCH(dev, wq.kernel, "attention_backward_fused", 2, wq.global, wq.local, RF_MEM(dq), RF_ARG(dqo),
                         RF_MEM(&part), RF_MEM(dout), RF_ARG(go), RF_MEM(lse), RF_ARG(lo), RF_MEM(&delta),
                         RF_MEM(q), RF_ARG(qo), RF_MEM(k), RF_ARG(ko), RF_MEM(v), RF_ARG(vo),
                         RF_CL_ATTN_OPTIONAL_ARGS(mask_arg), RF_ARG(L), RF_ARG(H), RF_ARG(chunk), RF_ARG(before),
                         RF_ARG(after), RF_ARG(causal), RF_ARG(self_mask), RF_ARG(scale), RF_CL_ATTN_DROPOUT_ARGS(drop));
    if (s == RF_OK && fused) {
        size_t span = (size_t)wq.plan.rows * (size_t)w->head_dim;
        size_t global[1] = {((size_t)numel + span - 1) / span}, local[1] = {1};
        s = RF_CL_LAUNCH(dev, sum, "attention_backward_sum", 1, global, local, RF_MEM(dk), RF_ARG(dko), RF_MEM(dv),
                         RF_ARG(dvo), RF_MEM(&part), RF_ARG(nslots), RF_ARG(numel), RF_ARG(scale));
    }
    if (s == RF_OK && !fused)
        s = RF_CL_LAUNCH(dev, wq.kernel, "attention_backward_dq", 2, wq.global, wq.local,
                         RF_MEM(dq), RF_ARG(dqo), RF_MEM(dout), RF_ARG(go),
                         RF_MEM(lse), RF_ARG(lo), RF_MEM(&delta), RF_MEM(q),
                         RF_ARG(qo), RF_MEM(k), RF_ARG(ko), RF_MEM(v), RF_ARG(vo),
                         RF_CL_ATTN_OPTIONAL_ARGS(mask_arg), RF_ARG(L), RF_ARG(H), RF_ARG(chunk),
                         RF_ARG(before), RF_ARG(after), RF_ARG(causal), RF_ARG(self_mask), RF_ARG(scale),
                         RF_CL_ATTN_DROPOUT_ARGS(drop));
    if (s == RF_OK && !fused)
        s = RF_CL_LAUNCH(dev, wk.kernel, "attention_backward_dkdv", 2, wk.global, wk.local, RF_MEM(dk),
                         RF_ARG(dko), RF_MEM(dv), RF_ARG(dvo), RF_MEM(dout), RF_ARG(go),
                         RF_MEM(lse), RF_ARG(lo), RF_MEM(&delta), RF_MEM(q), RF_ARG(qo),
                         RF_MEM(k), RF_ARG(ko), RF_MEM(v), RF_ARG(vo),
                         RF_CL_ATTN_OPTIONAL_ARGS(mask_arg), RF_ARG(L), RF_ARG(H), RF_ARG(chunk), RF_ARG(before),
                         RF_ARG(after), RF_ARG(causal), RF_ARG(self_mask), RF_ARG(scale), RF_CL_ATTN_DROPOUT_ARGS(drop));
    /* Released now, freed by the runtime once the queued kernels are done. */
    rf_tensor_free(&delta);
    rf_tensor_free(&part);
    return s;
}

void rf_cl_local_attention_register(rf_op_table *ops) {
    ops->local_attention_forward = rf_cl_local_attention_forward;
    ops->local_attention_backward = rf_cl_local_attention_backward;
}
