/* verify cases for the model's ops (§6–§9): LayerNorm, activations (and with the bias fused in),
 * dropout, the reversible halves' concat/split, linear layers (and their accumulating form), embeddings, cross-entropy, Adam and Σx², local and full
 * attention, each forward then backward. A case is a list of tensors and a
 * function that runs the op(s) on one device's copies; the runner gives both
 * devices the same host inputs, runs, and compares every named output.
 * (LSH attention's cases belong to its own family.) */
#include <stdio.h>
#include <stdlib.h>
#include "core/philox.h"
#include "verify.h"

/* §10 tolerances, per element (vf_check: tol + tol·|ref|; gradients,
 * vf_check_grad: tol·rms(ref) + tol·|ref|). */
#define TOL_ELEM 1e-5 /* elementwise, LayerNorm, softmax, gathers */
#define TOL_MAT 1e-4  /* matrix products and attention outputs */
#define TOL_GRAD 1e-3 /* gradients, device vs cpu */

#define MAX_T 12

/* One tensor of a case. Every tensor, input or output, lives inside a
 * sentinel-guarded vf_out, so at a non-zero offset: an op that ignores an
 * offset reads sentinels or writes over them. Outputs that accumulate (+=)
 * or update in place start from `init`; written outputs start as sentinels
 * (NaN bits), so an element the device never writes is a FAIL. */
typedef struct vf_spec {
    char check[48]; /* the row's name ("<case op> <output>") for a compared output; "" for an input */
    double tol;
    rf_dtype dtype;
    int ndim;
    int64_t shape[RF_MAX_DIMS];
    void *init; /* host data owned by the case, or NULL */
} vf_spec;

/* Runs a case's op(s) on one device: t[i] is the tensor of spec i. */
typedef rf_status (*vf_run)(rf_tensor *t, const void *opt);

typedef struct vf_case {
    const char *op; /* names the case in an error row */
    char shape[96];
    int n;
    vf_spec s[MAX_T];
    int no_memory; /* some host data could not be allocated */
} vf_case;

static size_t numel(int ndim, const int64_t *shape) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    return n;
}

/* Append a tensor, compared as output `check` unless that is NULL;
 * `needs_data`: init must be there (inputs, accumulators). */
static void add(vf_case *k, const char *check, double tol, rf_dtype dtype, int ndim, const int64_t *shape, void *init,
                int needs_data) {
    vf_spec *sp = &k->s[k->n++];
    *sp = (vf_spec){.tol = tol, .dtype = dtype, .ndim = ndim, .init = init};
    if (check) snprintf(sp->check, sizeof sp->check, "%s %s", k->op, check);
    for (int i = 0; i < ndim; i++) sp->shape[i] = shape[i];
    if (needs_data && !init) k->no_memory = 1;
}

/* Uniform f32 in [lo, hi) from a seed (as vf_fill). */
static float *uniform(int ndim, const int64_t *shape, unsigned seed, float lo, float hi) {
    size_t n = numel(ndim, shape);
    float *x = malloc(n * sizeof *x + 1);
    if (!x) return NULL;
    vf_fill(x, n, seed, (hi - lo) / 2);
    for (size_t i = 0; i < n; i++) x[i] += (hi + lo) / 2;
    return x;
}

/* A random f32 input in [lo, hi). */
static void in_f32(vf_case *k, int ndim, const int64_t *shape, unsigned seed, float lo, float hi) {
    add(k, NULL, 0, RF_F32, ndim, shape, uniform(ndim, shape, seed, lo, hi), 1);
}

/* A random i32 input in [lo, hi); negative draws become −1 (the ignore
 * index of §9), so lo < 0 sets the share of ignored targets. Returns the
 * host data (NULL when out of memory) for adjustments. */
static int32_t *in_i32(vf_case *k, int ndim, const int64_t *shape, unsigned seed, int lo, int hi) {
    size_t n = numel(ndim, shape);
    float *u = uniform(ndim, shape, seed, 0, 1);
    int32_t *x = u ? malloc(n * sizeof *x + 1) : NULL;
    for (size_t i = 0; x && i < n; i++) {
        int v = lo + (int)(u[i] * (float)(hi - lo));
        x[i] = v < 0 ? -1 : v < hi ? v : hi - 1;
    }
    free(u);
    add(k, NULL, 0, RF_I32, ndim, shape, x, 1);
    return x;
}

/* A written output, compared with `tol`. */
static void out(vf_case *k, const char *check, double tol, int ndim, const int64_t *shape) {
    add(k, check, tol, RF_F32, ndim, shape, NULL, 0);
}

/* An accumulated or in-place output: both devices start from the same
 * values in [lo, hi). */
static void acc(vf_case *k, const char *check, double tol, int ndim, const int64_t *shape, unsigned seed, float lo,
                float hi) {
    add(k, check, tol, RF_F32, ndim, shape, uniform(ndim, shape, seed, lo, hi), 1);
}

static rf_status place(rf_device *dev, vf_out *o, const vf_spec *sp) {
    rf_status s = vf_out_alloc(dev, o, sp->ndim, sp->shape);
    o->t.dtype = sp->dtype; /* i32 is f32's size: the same guarded buffer serves */
    if (s == RF_OK && sp->init) s = rf_tensor_upload(&o->t, sp->init, numel(sp->ndim, sp->shape) * 4);
    return s;
}

/* Run the case on the cpu reference and on the device, compare every named
 * output (the cpu's is the reference) and free everything. */
static void run_case(vf_ctx *c, vf_case *k, vf_run run, const void *opt) {
    vf_out t[2][MAX_T] = {0};
    rf_tensor view[MAX_T];
    rf_device *dev[2] = {c->cpu, c->dev};
    rf_status s = k->no_memory ? RF_ERR_OUT_OF_MEMORY : RF_OK;
    for (int d = 0; d < 2 && !s; d++) {
        for (int i = 0; i < k->n && !s; i++) s = place(dev[d], &t[d][i], &k->s[i]);
        for (int i = 0; i < k->n && !s; i++) view[i] = t[d][i].t;
        if (!s) s = run(view, opt);
    }
    if (s) vf_error(c, k->op, k->shape, s);
    for (int i = 0; i < k->n; i++) {
        if (!s && k->s[i].check[0])
            (k->s[i].tol == TOL_GRAD ? vf_check_grad : vf_check)(c, k->s[i].check, k->shape, &t[1][i], &t[0][i].t,
                                                                 k->s[i].tol);
        vf_out_free(&t[0][i]), vf_out_free(&t[1][i]);
        free(k->s[i].init);
    }
}

/* ---- LayerNorm (§7, §9) ---- */
enum { LN_X, LN_GAMMA, LN_BETA, LN_Y, LN_MEAN, LN_RSTD, LN_DY, LN_DX, LN_DGAMMA, LN_DBETA };

static rf_status ln_run(rf_tensor *t, const void *opt) {
    (void)opt;
    rf_status s = rf_layer_norm_forward(&t[LN_Y], &t[LN_MEAN], &t[LN_RSTD], &t[LN_X], &t[LN_GAMMA], &t[LN_BETA], 1e-12f);
    return s ? s
             : rf_layer_norm_backward(&t[LN_DX], &t[LN_DGAMMA], &t[LN_DBETA], &t[LN_DY], &t[LN_X], &t[LN_GAMMA],
                                      &t[LN_MEAN], &t[LN_RSTD]);
}

static void ln_case(vf_ctx *c, int64_t rows, int64_t d) {
    vf_case k = {.op = "layer_norm"};
    snprintf(k.shape, sizeof k.shape, "rows%lld D%lld", (long long)rows, (long long)d);
    const int64_t x[] = {rows, d}, r[] = {rows};
    in_f32(&k, 2, x, 10, -2, 3);
    in_f32(&k, 1, &d, 11, 0.5f, 1.5f);
    in_f32(&k, 1, &d, 12, -1, 1);
    out(&k, "y", TOL_ELEM, 2, x);
    out(&k, "mean", TOL_ELEM, 1, r);
    out(&k, "rstd", TOL_ELEM, 1, r);
    in_f32(&k, 2, x, 13, -1, 1);
    out(&k, "dx", TOL_GRAD, 2, x);
    acc(&k, "dgamma", TOL_GRAD, 1, &d, 14, -1, 1);
    acc(&k, "dbeta", TOL_GRAD, 1, &d, 15, -1, 1);
    run_case(c, &k, ln_run, NULL);
}

/* ---- activations (§7) ---- */
enum { ACT_X, ACT_Y, ACT_DY, ACT_DX };

static rf_status act_run(rf_tensor *t, const void *opt) {
    rf_activation a = *(const rf_activation *)opt;
    rf_status s = rf_activation_forward(&t[ACT_Y], &t[ACT_X], a);
    return s ? s : rf_activation_backward(&t[ACT_DX], &t[ACT_DY], &t[ACT_X], a);
}

static void act_case(vf_ctx *c, rf_activation a, int64_t n) {
    int gelu = a == RF_ACT_GELU;
    vf_case k = {.op = gelu ? "gelu" : "relu"};
    snprintf(k.shape, sizeof k.shape, "n%lld", (long long)n);
    in_f32(&k, 1, &n, 20, -4, 4);
    out(&k, "y", TOL_ELEM, 1, &n);
    in_f32(&k, 1, &n, 21, -1, 1);
    out(&k, "dx", TOL_GRAD, 1, &n);
    run_case(c, &k, act_run, &a);
}

/* ---- the bias fused into the activation (§7): y and pre = x + b ---- */
enum { BA_X, BA_B, BA_Y, BA_PRE };

static rf_status bias_act_run(rf_tensor *t, const void *opt) {
    return rf_bias_activation_forward(&t[BA_Y], &t[BA_PRE], &t[BA_X], &t[BA_B], *(const rf_activation *)opt);
}

static void bias_act_case(vf_ctx *c, rf_activation a, int64_t rows, int64_t n) {
    vf_case k = {.op = a == RF_ACT_GELU ? "bias+gelu" : "bias+relu"};
    snprintf(k.shape, sizeof k.shape, "rows%lld n%lld", (long long)rows, (long long)n);
    const int64_t x[] = {rows, n};
    in_f32(&k, 2, x, 27, -4, 4);
    in_f32(&k, 1, &n, 28, -1, 1);
    out(&k, "y", TOL_ELEM, 2, x);
    out(&k, "pre", TOL_ELEM, 2, x);
    run_case(c, &k, bias_act_run, &a);
}

/* ---- dropout (§2): forward, then backward on another gradient; the masks
 * are bit-identical across devices, so TOL_ELEM is slack ---- */
enum { DROP_X, DROP_Y, DROP_DY, DROP_DX };

static rf_status drop_run(rf_tensor *t, const void *opt) {
    float p = *(const float *)opt;
    const uint64_t seed = 0x5eed;
    const uint32_t stream = rf_philox_stream(7, RF_PHILOX_DROPOUT_HIDDEN), step = 11;
    rf_status s = rf_dropout_forward(&t[DROP_Y], &t[DROP_X], p, seed, stream, step, 0);
    return s ? s : rf_dropout_backward(&t[DROP_DX], &t[DROP_DY], p, seed, stream, step, 0);
}

static void drop_case(vf_ctx *c, int64_t n, float p) {
    vf_case k = {.op = "dropout"};
    snprintf(k.shape, sizeof k.shape, "n%lld p%g", (long long)n, (double)p);
    in_f32(&k, 1, &n, 22, -4, 4);
    out(&k, "y", TOL_ELEM, 1, &n);
    in_f32(&k, 1, &n, 23, -1, 1);
    out(&k, "dx", TOL_ELEM, 1, &n);
    run_case(c, &k, drop_run, &p);
}

/* ---- the reversible halves (§8): concat, and split as its backward ---- */
enum { CAT_A, CAT_B, CAT_Y, CAT_DY, CAT_DA, CAT_DB };

static rf_status cat_run(rf_tensor *t, const void *opt) {
    (void)opt;
    rf_status s = rf_concat(&t[CAT_Y], &t[CAT_A], &t[CAT_B]);
    return s ? s : rf_split(&t[CAT_DA], &t[CAT_DB], &t[CAT_DY]);
}

static void cat_case(vf_ctx *c, int64_t rows, int64_t w) {
    vf_case k = {.op = "concat"};
    snprintf(k.shape, sizeof k.shape, "rows%lld w%lld", (long long)rows, (long long)w);
    const int64_t half[] = {rows, w}, joined[] = {rows, 2 * w};
    in_f32(&k, 2, half, 24, -1, 1);
    in_f32(&k, 2, half, 25, -1, 1);
    out(&k, "y", TOL_ELEM, 2, joined);
    in_f32(&k, 2, joined, 26, -1, 1);
    out(&k, "split a", TOL_ELEM, 2, half);
    out(&k, "split b", TOL_ELEM, 2, half);
    run_case(c, &k, cat_run, NULL);
}

/* ---- linear layers (§1) ---- */
enum { LIN_X, LIN_W, LIN_B, LIN_Y, LIN_DY, LIN_DX, LIN_DW, LIN_DB };

static rf_status lin_run(rf_tensor *t, const void *opt) {
    int bias = *(const int *)opt;
    rf_status s = rf_linear_forward(&t[LIN_Y], &t[LIN_X], &t[LIN_W], bias ? &t[LIN_B] : NULL);
    return s ? s
             : rf_linear_backward(&t[LIN_DX], &t[LIN_DW], bias ? &t[LIN_DB] : NULL, &t[LIN_DY], &t[LIN_X],
                                  &t[LIN_W]);
}

static void lin_case(vf_ctx *c, int64_t rows, int64_t in, int64_t n_out, int bias) {
    vf_case k = {.op = "linear"};
    snprintf(k.shape, sizeof k.shape, "rows%lld in%lld out%lld%s", (long long)rows, (long long)in, (long long)n_out,
             bias ? " bias" : "");
    const int64_t x[] = {rows, in}, w[] = {n_out, in}, y[] = {rows, n_out};
    in_f32(&k, 2, x, 30, -1, 1);
    in_f32(&k, 2, w, 31, -0.2f, 0.2f);
    in_f32(&k, 1, &n_out, 32, -1, 1);
    out(&k, "y", TOL_MAT, 2, y);
    in_f32(&k, 2, y, 33, -1, 1);
    out(&k, "dx", TOL_GRAD, 2, x);
    acc(&k, "dW", TOL_GRAD, 2, w, 34, -1, 1);
    acc(&k, bias ? "db" : NULL, TOL_GRAD, 1, &n_out, 35, -1, 1); /* unused without a bias */
    run_case(c, &k, lin_run, &bias);
}

/* The accumulating form (a residual taken in the GEMM): y −= x·Wᵀ + b. */
static rf_status lin_acc_run(rf_tensor *t, const void *opt) {
    (void)opt;
    return rf_linear_accumulate(&t[LIN_Y], &t[LIN_X], &t[LIN_W], &t[LIN_B], -1.0f);
}

static void lin_acc_case(vf_ctx *c, int64_t rows, int64_t in, int64_t n_out) {
    vf_case k = {.op = "linear accumulate"};
    snprintf(k.shape, sizeof k.shape, "rows%lld in%lld out%lld alpha-1", (long long)rows, (long long)in,
             (long long)n_out);
    const int64_t x[] = {rows, in}, w[] = {n_out, in}, y[] = {rows, n_out};
    in_f32(&k, 2, x, 36, -1, 1);
    in_f32(&k, 2, w, 37, -0.2f, 0.2f);
    in_f32(&k, 1, &n_out, 38, -1, 1);
    acc(&k, "y", TOL_MAT, 2, y, 39, -1, 1);
    run_case(c, &k, lin_acc_run, NULL);
}

/* ---- embeddings (§9) ---- */
enum { EMB_IDS, EMB_TABLE, EMB_OUT, EMB_DOUT, EMB_DTABLE };

static rf_status emb_run(rf_tensor *t, const void *opt) {
    (void)opt;
    rf_status s = rf_embedding_forward(&t[EMB_OUT], &t[EMB_IDS], &t[EMB_TABLE]);
    return s ? s : rf_embedding_backward(&t[EMB_DTABLE], &t[EMB_DOUT], &t[EMB_IDS]);
}

/* A small V repeats ids, exercising the per-id sums of the backward pass. */
static void emb_case(vf_ctx *c, int64_t b, int64_t l, int64_t v, int64_t d) {
    vf_case k = {.op = "embedding"};
    snprintf(k.shape, sizeof k.shape, "B%lld L%lld V%lld D%lld", (long long)b, (long long)l, (long long)v,
             (long long)d);
    const int64_t ids[] = {b, l}, table[] = {v, d}, o[] = {b, l, d};
    in_i32(&k, 2, ids, 40, 0, (int)v);
    in_f32(&k, 2, table, 41, -1, 1);
    out(&k, "out", TOL_ELEM, 3, o);
    in_f32(&k, 3, o, 42, -1, 1);
    acc(&k, "dtable", TOL_GRAD, 2, table, 43, -1, 1);
    run_case(c, &k, emb_run, NULL);
}

enum { AX_E0, AX_E1, AX_OUT, AX_DOUT, AX_DE0, AX_DE1 };

static rf_status axial_run(rf_tensor *t, const void *opt) {
    (void)opt;
    rf_status s = rf_axial_position_forward(&t[AX_OUT], &t[AX_E0], &t[AX_E1]);
    return s ? s : rf_axial_position_backward(&t[AX_DE0], &t[AX_DE1], &t[AX_DOUT]);
}

static void axial_case(vf_ctx *c, int64_t b, int64_t l, int64_t s0, int64_t s1, int64_t d0, int64_t d1) {
    vf_case k = {.op = "axial_position"};
    snprintf(k.shape, sizeof k.shape, "B%lld L%lld %lldx%lld D%lld+%lld", (long long)b, (long long)l, (long long)s0,
             (long long)s1, (long long)d0, (long long)d1);
    const int64_t e0[] = {s0, d0}, e1[] = {s1, d1}, o[] = {b, l, d0 + d1};
    in_f32(&k, 2, e0, 50, -1, 1);
    in_f32(&k, 2, e1, 51, -1, 1);
    acc(&k, "out", TOL_ELEM, 3, o, 52, -1, 1); /* added to the word embedding */
    in_f32(&k, 3, o, 53, -1, 1);
    acc(&k, "dE0", TOL_GRAD, 2, e0, 54, -1, 1);
    acc(&k, "dE1", TOL_GRAD, 2, e1, 55, -1, 1);
    run_case(c, &k, axial_run, NULL);
}

enum { POS_TABLE, POS_OUT, POS_DOUT, POS_DTABLE };

static rf_status pos_run(rf_tensor *t, const void *opt) {
    (void)opt;
    rf_status s = rf_position_embedding_forward(&t[POS_OUT], &t[POS_TABLE]);
    return s ? s : rf_position_embedding_backward(&t[POS_DTABLE], &t[POS_DOUT]);
}

static void pos_case(vf_ctx *c, int64_t b, int64_t l, int64_t max_pos, int64_t d) {
    vf_case k = {.op = "position"};
    snprintf(k.shape, sizeof k.shape, "B%lld L%lld max%lld D%lld", (long long)b, (long long)l, (long long)max_pos,
             (long long)d);
    const int64_t table[] = {max_pos, d}, o[] = {b, l, d};
    in_f32(&k, 2, table, 60, -1, 1);
    acc(&k, "out", TOL_ELEM, 3, o, 61, -1, 1);
    in_f32(&k, 3, o, 62, -1, 1);
    acc(&k, "dtable", TOL_GRAD, 2, table, 63, -1, 1);
    run_case(c, &k, pos_run, NULL);
}

/* ---- cross-entropy (§9) ---- */
enum { CE_LOGITS, CE_TARGETS, CE_LOSS, CE_LSE, CE_DLOGITS };

static rf_status ce_run(rf_tensor *t, const void *opt) {
    (void)opt;
    rf_status s = rf_cross_entropy_forward(&t[CE_LOSS], &t[CE_LSE], &t[CE_LOGITS], &t[CE_TARGETS]);
    return s ? s : rf_cross_entropy_backward(&t[CE_DLOGITS], &t[CE_LOGITS], &t[CE_LSE], &t[CE_TARGETS], 0.75f);
}

static void ce_case(vf_ctx *c, int64_t rows, int64_t v) {
    vf_case k = {.op = "cross_entropy"};
    snprintf(k.shape, sizeof k.shape, "rows%lld V%lld", (long long)rows, (long long)v);
    const int64_t logits[] = {rows, v}, one[] = {1};
    in_f32(&k, 2, logits, 70, -4, 4);
    in_i32(&k, 1, &rows, 71, -(int)(v / 4) - 1, (int)v); /* about a fifth ignored (−1) */
    out(&k, "loss", TOL_ELEM, 1, one);
    out(&k, "lse", TOL_ELEM, 1, &rows);
    out(&k, "dlogits", TOL_GRAD, 2, logits);
    run_case(c, &k, ce_run, NULL);
}

/* ---- Adam and Σx² (§9) ---- */
enum { ADAM_PARAM, ADAM_M, ADAM_V, ADAM_GRAD, ADAM_SQ };

typedef struct adam_opt {
    rf_adam_config cfg;
    int64_t step;
} adam_opt;

static rf_status adam_run(rf_tensor *t, const void *opt) {
    const adam_opt *o = opt;
    rf_status s = rf_sum_squares(&t[ADAM_SQ], &t[ADAM_GRAD]);
    return s ? s : rf_adam_update(&t[ADAM_PARAM], &t[ADAM_M], &t[ADAM_V], &t[ADAM_GRAD], &o->cfg, o->step);
}

static void adam_case(vf_ctx *c, int64_t n, int64_t step, float weight_decay) {
    vf_case k = {.op = "optim"};
    snprintf(k.shape, sizeof k.shape, "n%lld step%lld wd%g", (long long)n, (long long)step, (double)weight_decay);
    const int64_t one[] = {1};
    acc(&k, "adam param", TOL_ELEM, 1, &n, 80, -1, 1);
    acc(&k, "adam m", TOL_ELEM, 1, &n, 81, -0.1f, 0.1f);
    acc(&k, "adam v", TOL_ELEM, 1, &n, 82, 0, 0.01f); /* a second moment is never negative */
    in_f32(&k, 1, &n, 83, -1, 1);
    out(&k, "sum_squares", TOL_MAT, 1, one); /* Σx² is a dot product (§10's matrix products) */
    adam_opt o = {{.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = weight_decay,
                   .grad_scale = 0.5f},
                  step};
    run_case(c, &k, adam_run, &o);
}

/* ---- local and full attention (§5.4, §6) ---- */
enum { AT_Q, AT_K, AT_V, AT_MASK, AT_OUT, AT_LSE, AT_DOUT, AT_DQ, AT_DK, AT_DV };

typedef struct attn_opt {
    rf_attention_config cfg;
    int full, masked;
} attn_opt;

static rf_status attn_run(rf_tensor *t, const void *opt) {
    const attn_opt *o = opt;
    const rf_tensor *k = o->cfg.shared_qk ? NULL : &t[AT_K], *mask = o->masked ? &t[AT_MASK] : NULL;
    rf_status s = (o->full ? rf_full_attention_forward : rf_local_attention_forward)(&t[AT_OUT], &t[AT_LSE], &t[AT_Q],
                                                                                    k, &t[AT_V], mask, &o->cfg);
    return s ? s
             : (o->full ? rf_full_attention_backward : rf_local_attention_backward)(
                   &t[AT_DQ], o->cfg.shared_qk ? NULL : &t[AT_DK], &t[AT_DV], &t[AT_DOUT], &t[AT_OUT], &t[AT_LSE],
                   &t[AT_Q], k, &t[AT_V], mask, &o->cfg);
}

/* chunk_len < 0: full attention; otherwise local with (chunk, before, after). */
static void attn_case(vf_ctx *c, int64_t b, int64_t l, int h, int d, int chunk, int before, int after, int causal,
                      int shared, int masked, float dropout) {
    int full = chunk < 0;
    /* Attention-probability dropout: the same Philox bits on both devices. */
    attn_opt o = {{.n_heads = h, .head_dim = d, .chunk_len = full ? 0 : chunk, .chunks_before = before,
                   .chunks_after = after, .causal = causal, .shared_qk = shared, .dropout = dropout,
                   .seed = 0x5eed, .stream = rf_philox_stream(3, RF_PHILOX_DROPOUT_ATTN), .step = 7},
                  full,
                  masked};
    vf_case k = {.op = full ? "full_attention" : "local_attention"};
    char window[32] = "";
    if (!full) snprintf(window, sizeof window, " m%d %d/%d", chunk, before, after);
    char drop[24] = "";
    if (dropout > 0) snprintf(drop, sizeof drop, " drop%g", (double)dropout);
    snprintf(k.shape, sizeof k.shape, "B%lld L%lld H%d d%d%s%s%s%s%s", (long long)b, (long long)l, h, d, window,
             shared ? " shared" : "", causal ? " causal" : "", masked ? " mask" : "", drop);
    const int64_t x[] = {b, l, (int64_t)h * d}, m[] = {b, l}, lse[] = {b, h, l};
    in_f32(&k, 3, x, 90, -1, 1);
    in_f32(&k, 3, x, 91, -1, 1);
    in_f32(&k, 3, x, 92, -1, 1);
    /* Half the keys are padding (unused without a mask), a row's first too
     * (a query with every key masked has lse ≈ −1e9: the per-element rule
     * bounds that element alone, not its neighbours). */
    int32_t *mask = in_i32(&k, 2, m, 93, 0, 2);
    for (int64_t i = 0; mask && i < b; i++) mask[i * l] = i % 2;
    out(&k, "out", TOL_MAT, 3, x);
    /* With shared_qk and causal, query 0 sees only itself (self mask, §5.4):
     * its lse ≈ −1e5, compared like every other element. */
    out(&k, "lse", TOL_MAT, 3, lse);
    in_f32(&k, 3, x, 94, -1, 1);
    out(&k, "dq", TOL_GRAD, 3, x);
    out(&k, shared ? NULL : "dk", TOL_GRAD, 3, x);
    out(&k, "dv", TOL_GRAD, 3, x);
    run_case(c, &k, attn_run, &o);
}

/* One small case of every op, shapes sized for a simulator (oclgrind runs
 * each work-item's instructions one by one, with its checks on each). */
static void tiny_cases(vf_ctx *c) {
    ln_case(c, 3, 37);
    act_case(c, RF_ACT_RELU, 37);
    act_case(c, RF_ACT_GELU, 37);
    bias_act_case(c, RF_ACT_RELU, 3, 13);
    drop_case(c, 37, 0.5f);
    cat_case(c, 3, 5);
    lin_case(c, 3, 8, 5, 1);
    lin_acc_case(c, 3, 8, 5);
    emb_case(c, 1, 8, 5, 6);
    axial_case(c, 1, 6, 2, 4, 3, 2);
    pos_case(c, 2, 6, 8, 5);
    ce_case(c, 3, 37);
    adam_case(c, 37, 3, 0.01f);
    attn_case(c, 1, 32, 1, 16, 8, 1, 1, 1, 0, 1, 0.2f); /* local, several chunks */
    attn_case(c, 1, 12, 1, 16, -1, 0, 0, 1, 1, 1, 0.2f); /* full, shared-QK */
}

void vf_cases_ops(vf_ctx *c) {
    if (c->tiny) {
        tiny_cases(c);
        return;
    }
    ln_case(c, 1, 37);
    ln_case(c, 33, 256);
    act_case(c, RF_ACT_RELU, 1);
    act_case(c, RF_ACT_RELU, 4097);
    act_case(c, RF_ACT_GELU, 1);
    act_case(c, RF_ACT_GELU, 4097);
    bias_act_case(c, RF_ACT_RELU, 1, 1);
    bias_act_case(c, RF_ACT_GELU, 130, 37);
    drop_case(c, 1, 0.1f);
    drop_case(c, 4097, 0.5f);
    cat_case(c, 1, 1);
    cat_case(c, 130, 37);
    lin_case(c, 1, 37, 300, 1);
    lin_case(c, 65, 128, 37, 0);
    lin_acc_case(c, 65, 128, 37);
    emb_case(c, 1, 1, 300, 37);
    emb_case(c, 2, 64, 5, 64);
    axial_case(c, 1, 1, 1, 1, 16, 21);
    axial_case(c, 2, 60, 8, 8, 16, 21);
    pos_case(c, 1, 1, 1, 37);
    pos_case(c, 2, 60, 64, 37);
    ce_case(c, 1, 300);
    ce_case(c, 130, 37);
    adam_case(c, 1, 1, 0);
    adam_case(c, 4097, 1000, 0.01f);
    attn_case(c, 1, 16, 1, 37, 64, 1, 0, 1, 0, 0, 0);  /* L ≤ chunk_len: one chunk */
    attn_case(c, 2, 64, 2, 37, 16, 1, 0, 1, 0, 1, 0.2f);
    attn_case(c, 1, 64, 2, 16, -1, 0, 0, 1, 1, 1, 0.2f);
    attn_case(c, 2, 64, 2, 37, 16, 1, 0, 0, 0, 1, 0);
    attn_case(c, 1, 96, 3, 64, 32, 1, 1, 1, 0, 1, 0);
    attn_case(c, 1, 1, 1, 37, -1, 0, 0, 0, 0, 0, 0);
    attn_case(c, 2, 37, 2, 37, -1, 0, 0, 1, 0, 1, 0);
    attn_case(c, 1, 64, 3, 64, -1, 0, 0, 1, 1, 1, 0);
    attn_case(c, 2, 50, 2, 16, -1, 0, 0, 0, 1, 0, 0);
    if (c->full) {
        ln_case(c, 1000, 512);
        ln_case(c, 4096, 37);
        act_case(c, RF_ACT_RELU, 1 << 20);
        act_case(c, RF_ACT_GELU, 1 << 20);
        drop_case(c, (1 << 20) + 3, 0.05f);
        lin_case(c, 2048, 256, 512, 1);
        lin_case(c, 3, 1000, 1, 1);
        emb_case(c, 8, 512, 320, 256);
        axial_case(c, 4, 4096, 64, 64, 128, 128);
        pos_case(c, 4, 2048, 4096, 256);
        ce_case(c, 2048, 320);
        ce_case(c, 16, 30000);
        adam_case(c, (1 << 20) + 3, 10, 0.1f);
        attn_case(c, 2, 512, 4, 64, 64, 1, 0, 1, 0, 1, 0);
        attn_case(c, 1, 256, 2, 128, 32, 2, 1, 0, 0, 0, 0);
        attn_case(c, 2, 512, 4, 64, -1, 0, 0, 1, 0, 1, 0);
        attn_case(c, 1, 1024, 2, 128, -1, 0, 0, 1, 1, 0, 0);
    }
}
