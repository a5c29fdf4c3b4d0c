/* Windowed attention on OpenCL (cl/local_attention.cl; §6): a fused
 * forward with online softmax (with probability dropout regenerated from
 * Philox words, §2), and a flash-attention style backward in three
 * launches — delta = rowsum(dout·out), dq (one work-item per query row), dk and
 * dv (one work-item per key row) — so every output row has one writer and no
 * float atomics are needed. Nothing of size L×L (or window×L) is allocated:
 * the only scratch is delta, [B, H, L]. */
#include <stdio.h>
#include "device/opencl/cl_backend.h"
#include "device/opencl/cl_attention.h"

/* Rows per work-group when the kernel and device allow it. */
#define WANT_GROUP 64

/* The local memory a TILE needs: two [TILE, d] blocks plus two floats (or an
 * int) per staged row — the most any of the three window kernels stages. */
static uint64_t tile_bytes(int tile, int64_t d) {
    return (2u * (uint64_t)tile * (uint64_t)d + 2u * (uint64_t)tile) * 4u;
}

/* The TILE of kernel `name`: its tuned value ("<name>.tile", cl_tune.c;
 * default 32 rows), halved (down to 8 rows) until the staging fits the
 * device's local memory (queried: 48 KiB on NVIDIA, 32–64 KiB elsewhere). */
static rf_status pick_tile(rf_device *dev, const rf_attn_window *w, const char *name, int *tile) {
    char key[RF_CL_TUNE_KEY_MAX];
    snprintf(key, sizeof key, "%s.tile", name);
    const int want = rf_cl_tuned(dev, key, 32), least = want < 8 ? want : 8;
    if (tile_bytes(want, w->head_dim) > dev->info.local_mem_bytes)
        RF_TRY(rf_cl_tuned_unfit(dev, key, want, "its staging exceeds the local memory"));
    for (int t = want; t >= least; t /= 2) {
        if (tile_bytes(t, w->head_dim) <= dev->info.local_mem_bytes) {
            *tile = t;
            return RF_OK;
        }
    }
    return rf_error(RF_ERR_UNSUPPORTED,
                    "attention: head_dim %lld needs %llu bytes of local memory even with %d-row tiles; %s has %llu",
                    (long long)w->head_dim, (unsigned long long)tile_bytes(least, w->head_dim), least, dev->info.name,
                    (unsigned long long)dev->info.local_mem_bytes);
}

typedef struct window_launch {
    cl_kernel kernel;
    size_t global[2], local[2];
    int tile;
} window_launch;

/* Build (cached) `name` for this head width and tile, and size a launch
 * whose work-groups each own up to G rows of one chunk (see the .cl). */
static rf_status window_kernel(rf_device *dev, const rf_attn_window *w, const char *name, window_launch *wl) {
    RF_TRY(pick_tile(dev, w, name, &wl->tile));
    char options[96];
    rf_cl_attn_options(options, sizeof options, w->head_dim, wl->tile);
    RF_TRY(rf_cl_kernel(dev, "local_attention.cl", options, name, &wl->kernel));
    size_t g;
    RF_TRY(rf_cl_group_size(dev, wl->kernel, WANT_GROUP, &g));
    size_t tiles = ((size_t)w->chunk_len + g - 1) / g;
    wl->global[0] = (size_t)(w->len / w->chunk_len) * tiles * g;
    wl->global[1] = (size_t)(w->batch * w->heads);
    wl->local[0] = g;
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
    RF_TRY(window_kernel(dev, w, "attn_forward", &wl));
    rf_cl_attn_optional lse_arg = rf_cl_attn_optional_of(lse), mask_arg = rf_cl_attn_optional_of(mask);
    cl_ulong oo = out->offset, qo = q->offset, ko = k->offset, vo = v->offset;
    cl_int L = (cl_int)w->len, H = (cl_int)w->heads;
    cl_int chunk = (cl_int)w->chunk_len, before = w->before, after = w->after, causal = w->causal;
    cl_int self_mask = w->self_mask;
    float scale = w->scale;
    rf_cl_attn_dropout drop = dropout_args(w);
    size_t block = (size_t)wl.tile * (size_t)w->head_dim * sizeof(float);
    return RF_CL_LAUNCH(dev, wl.kernel, "attention_forward", 2, wl.global, wl.local, RF_MEM(out),
                        RF_ARG(oo), RF_CL_ATTN_OPTIONAL_ARGS(lse_arg), RF_MEM(q), RF_ARG(qo),
                        RF_MEM(k), RF_ARG(ko), RF_MEM(v), RF_ARG(vo),
                        RF_CL_ATTN_OPTIONAL_ARGS(mask_arg), RF_ARG(L), RF_ARG(H), RF_ARG(chunk), RF_ARG(before),
                        RF_ARG(after), RF_ARG(causal), RF_ARG(self_mask), RF_ARG(scale), RF_CL_ATTN_DROPOUT_ARGS(drop),
                        RF_LOCAL(block), RF_LOCAL(block), RF_LOCAL((size_t)wl.tile * sizeof(cl_int)));
}

/* delta = rowsum(dout·out) into a fresh [B, H, L] tensor. */
static rf_status compute_delta(rf_device *dev, const rf_attn_window *w, rf_tensor *delta, const rf_tensor *dout,
                               const rf_tensor *out, int tile) {
    char options[96];
    rf_cl_attn_options(options, sizeof options, w->head_dim, tile);
    cl_kernel kernel;
    RF_TRY(rf_cl_kernel(dev, "local_attention.cl", options, "attn_delta", &kernel));
    size_t g;
    RF_TRY(rf_cl_group_size(dev, kernel, WANT_GROUP, &g));
    RF_TRY(rf_tensor_alloc(dev, delta, RF_F32, 3, (const int64_t[]){w->batch, w->heads, w->len}));
    size_t global[2] = {(size_t)w->len, (size_t)(w->batch * w->heads)}, local[2] = {g, 1};
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
    window_launch wq, wk;
    RF_TRY(window_kernel(dev, w, "attn_backward_dq", &wq));
    RF_TRY(window_kernel(dev, w, "attn_backward_dkdv", &wk));
    rf_tensor delta;
    RF_TRY(compute_delta(dev, w, &delta, dout, out, wq.tile));
    rf_cl_attn_optional mask_arg = rf_cl_attn_optional_of(mask);
    cl_ulong dqo = dq->offset, dko = dk->offset, dvo = dv->offset, go = dout->offset, lo = lse->offset;
    cl_ulong qo = q->offset, ko = k->offset, vo = v->offset;
    cl_int L = (cl_int)w->len, H = (cl_int)w->heads, chunk = (cl_int)w->chunk_len;
    cl_int before = w->before, after = w->after, causal = w->causal, self_mask = w->self_mask;
    float scale = w->scale;
    rf_cl_attn_dropout drop = dropout_args(w);
    /* Each kernel stages blocks of its own tile (both are tunable). */
    size_t block = (size_t)wq.tile * (size_t)w->head_dim * sizeof(float);
    size_t kblock = (size_t)wk.tile * (size_t)w->head_dim * sizeof(float), krows = (size_t)wk.tile * sizeof(float);
    rf_status s = RF_CL_LAUNCH(dev, wq.kernel, "attention_backward_dq", 2, wq.global, wq.local,
                               RF_MEM(dq), RF_ARG(dqo), RF_MEM(dout), RF_ARG(go),
                               RF_MEM(lse), RF_ARG(lo), RF_MEM(&delta), RF_MEM(q),
                               RF_ARG(qo), RF_MEM(k), RF_ARG(ko), RF_MEM(v), RF_ARG(vo),
                               RF_CL_ATTN_OPTIONAL_ARGS(mask_arg), RF_ARG(L), RF_ARG(H), RF_ARG(chunk),
                               RF_ARG(before), RF_ARG(after), RF_ARG(causal), RF_ARG(self_mask), RF_ARG(scale),
                               RF_CL_ATTN_DROPOUT_ARGS(drop), RF_LOCAL(block), RF_LOCAL(block),
                               RF_LOCAL((size_t)wq.tile * sizeof(cl_int)));
    if (s == RF_OK)
        s = RF_CL_LAUNCH(dev, wk.kernel, "attention_backward_dkdv", 2, wk.global, wk.local, RF_MEM(dk),
                         RF_ARG(dko), RF_MEM(dv), RF_ARG(dvo), RF_MEM(dout), RF_ARG(go),
                         RF_MEM(lse), RF_ARG(lo), RF_MEM(&delta), RF_MEM(q), RF_ARG(qo),
                         RF_MEM(k), RF_ARG(ko), RF_MEM(v), RF_ARG(vo),
                         RF_CL_ATTN_OPTIONAL_ARGS(mask_arg), RF_ARG(L), RF_ARG(H), RF_ARG(chunk), RF_ARG(before),
                         RF_ARG(after), RF_ARG(causal), RF_ARG(self_mask), RF_ARG(scale), RF_CL_ATTN_DROPOUT_ARGS(drop),
                         RF_LOCAL(kblock), RF_LOCAL(kblock), RF_LOCAL(krows), RF_LOCAL(krows));
    /* Released now, freed by the runtime once the queued kernels are done. */
    rf_tensor_free(&delta);
    return s;
}

void rf_cl_local_attention_register(rf_op_table *ops) {
    ops->local_attention_forward = rf_cl_local_attention_forward;
    ops->local_attention_backward = rf_cl_local_attention_backward;
}
