/* verify cases for LSH attention (§3–§5, §10): hashing by agreement
 * rate (matmul rounding may move a near-tie), then every later stage fed
 * the cpu's buckets — the sort must give the cpu's permutation exactly, the
 * output agree within 1e-4 and the backward's gradients within 1e-3. Device
 * inputs sit at offsets inside guarded buffers and outputs are guarded. */
#include <stdlib.h>
#include <string.h>
#include "verify.h"

#define TOL_MAT 1e-4  /* attention outputs */
#define TOL_GRAD 1e-3 /* gradients, device vs cpu */
#define MIN_HASH_AGREEMENT 0.999

typedef struct lsh_shape {
    int64_t B, L;
    int H, d, m, R;
    int causal, masked; /* masked: row B−1 loses its last L/8 tokens to padding */
    float dropout;      /* attention-probability dropout (the same Philox bits on both devices) */
} lsh_shape;

/* The share of equal words of two i32 tensors (buckets, perm). */
static rf_status agreement(const rf_tensor *a, const rf_tensor *b, double *rate) {
    size_t n = rf_tensor_numel(a);
    int32_t *x = malloc(n * 4 + 1), *y = malloc(n * 4 + 1);
    rf_status s = !x || !y ? RF_ERR_OUT_OF_MEMORY : RF_OK;
    if (!s) s = rf_tensor_download(a, x, n * 4);
    if (!s) s = rf_tensor_download(b, y, n * 4);
    size_t same = 0;
    for (size_t i = 0; !s && i < n; i++) same += x[i] == y[i];
    *rate = n ? (double)same / (double)n : 1;
    free(x), free(y);
    return s;
}

/* dst (any device) = src (the cpu's), as i32 words. */
static rf_status copy_words(rf_tensor *dst, const rf_tensor *src) {
    size_t n = rf_tensor_numel(src);
    int32_t *x = malloc(n * 4 + 1);
    rf_status s = x ? rf_tensor_download(src, x, n * 4) : RF_ERR_OUT_OF_MEMORY;
    if (!s) s = rf_tensor_upload(dst, x, n * 4);
    free(x);
    return s;
}

/* A guarded device input holding `data` (f32 or, with the same word size,
 * i32). */
static rf_status guarded_input(rf_device *dev, vf_out *o, rf_dtype dtype, int ndim, const int64_t *shape,
                               const void *data) {
    rf_status s = vf_out_alloc(dev, o, ndim, shape);
    o->t.dtype = dtype;
    return s ? s : rf_tensor_upload(&o->t, data, rf_tensor_numel(&o->t) * 4);
}

static void lsh_case(vf_ctx *c, const lsh_shape *p) {
    char shape[96];
    snprintf(shape, sizeof shape, "B%lld L%lld H%d d%d m%d R%d%s%s%s", (long long)p->B, (long long)p->L, p->H, p->d,
             p->m, p->R, p->causal ? " causal" : "", p->masked ? " mask" : "", p->dropout > 0 ? " drop" : "");
    const int64_t D = (int64_t)p->H * p->d, x[] = {p->B, p->L, D}, ml[] = {p->B, p->L};
    const size_t n = (size_t)(p->B * p->L * D);
    rf_lsh_config cfg = {.n_heads = p->H, .head_dim = p->d, .n_hashes = p->R, .chunk_len = p->m,
                         .causal = p->causal, .seed = 0x1a5c, .layer = 2, .step = 7, .dropout = p->dropout,
                         .dropout_stream = 33};
    float *qk = malloc(n * 4), *v = malloc(n * 4), *g = malloc(n * 4);
    int32_t *mask = malloc((size_t)(p->B * p->L) * 4);
    rf_tensor cq = {0}, cv = {0}, cg = {0}, cm = {0}, co = {0}, cdq = {0}, cdv = {0};
    vf_out dq = {0}, dv = {0}, dg = {0}, dm = {0}, dout = {0}, ddq = {0}, ddv = {0};
    rf_lsh_state cs = {0}, ds = {0};
    const char *op = "lsh_attention";
    rf_status s = !qk || !v || !g || !mask ? RF_ERR_OUT_OF_MEMORY : RF_OK;
    if (!s) {
        vf_fill(qk, n, 100, 1.5f), vf_fill(v, n, 101, 1), vf_fill(g, n, 102, 1);
        for (int64_t i = 0; i < p->B * p->L; i++) mask[i] = !(i / p->L == p->B - 1 && i % p->L >= p->L - p->L / 8);
    }
    const int has_mask = p->masked;
    if (s || (s = vf_tensor(c->cpu, &cq, 3, x, qk)) || (s = vf_tensor(c->cpu, &cv, 3, x, v)) ||
        (s = vf_tensor(c->cpu, &cg, 3, x, g)) || (s = vf_tensor(c->cpu, &co, 3, x, NULL)) ||
        (s = vf_tensor(c->cpu, &cdq, 3, x, NULL)) || (s = vf_tensor(c->cpu, &cdv, 3, x, NULL)) ||
        (s = rf_tensor_alloc(c->cpu, &cm, RF_I32, 2, ml)) ||
        (s = rf_tensor_upload(&cm, mask, (size_t)(p->B * p->L) * 4)) ||
        (s = guarded_input(c->dev, &dq, RF_F32, 3, x, qk)) || (s = guarded_input(c->dev, &dv, RF_F32, 3, x, v)) ||
        (s = guarded_input(c->dev, &dg, RF_F32, 3, x, g)) || (s = guarded_input(c->dev, &dm, RF_I32, 2, ml, mask)) ||
        (s = vf_out_alloc(c->dev, &dout, 3, x)) || (s = vf_out_alloc(c->dev, &ddq, 3, x)) ||
        (s = vf_out_alloc(c->dev, &ddv, 3, x)) || (s = rf_lsh_state_init(&cs, c->cpu, &cfg, p->B, p->L)) ||
        (s = rf_lsh_state_init(&ds, c->dev, &cfg, p->B, p->L)))
        goto done;
    const rf_tensor *cmask = has_mask ? &cm : NULL, *dmask = has_mask ? &dm.t : NULL;
    /* §3: the hash on each device from the same rotations */
    double rate;
    op = "lsh_hash";
    if ((s = rf_lsh_rotations_draw(&cs, cfg.seed, cfg.layer, cfg.step)) ||
        (s = rf_lsh_rotations_draw(&ds, cfg.seed, cfg.layer, cfg.step)) || (s = rf_lsh_hash(&cs, &cq, cmask)) ||
        (s = rf_lsh_hash(&ds, &dq.t, dmask)) || (s = agreement(&ds.buckets, &cs.buckets, &rate)))
        goto done;
    vf_check_rate(c, "lsh_hash buckets", shape, rate, MIN_HASH_AGREEMENT);
    /* §10: every later stage from the cpu's buckets */
    op = "lsh_sort";
    if ((s = copy_words(&ds.buckets, &cs.buckets)) || (s = rf_lsh_sort(&cs)) || (s = rf_lsh_sort(&ds)) ||
        (s = agreement(&ds.perm, &cs.perm, &rate)))
        goto done;
    vf_check_rate(c, "lsh_sort perm", shape, rate, 1.0);
    op = "lsh_attention";
    if ((s = rf_lsh_attend(&cs, &cq, &cv, cmask)) || (s = rf_lsh_attend(&ds, &dq.t, &dv.t, dmask)) ||
        (s = rf_lsh_combine(&co, &cs)) || (s = rf_lsh_combine(&dout.t, &ds)))
        goto done;
    vf_check(c, "lsh_attention out", shape, &dout, &co, TOL_MAT);
    op = "lsh_attention_backward";
    if ((s = rf_lsh_attention_backward(&cdq, &cdv, &cg, &cs, &cq, &cv, cmask)) ||
        (s = rf_lsh_attention_backward(&ddq.t, &ddv.t, &dg.t, &ds, &dq.t, &dv.t, dmask)))
        goto done;
    vf_check_grad(c, "lsh_attention dqk", shape, &ddq, &cdq, TOL_GRAD);
    vf_check_grad(c, "lsh_attention dv", shape, &ddv, &cdv, TOL_GRAD);
done:
    if (s) vf_error(c, op, shape, s);
    rf_lsh_state_free(&cs), rf_lsh_state_free(&ds);
    rf_tensor *ts[] = {&cq, &cv, &cg, &cm, &co, &cdq, &cdv};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        if (ts[i]->buf) rf_tensor_free(ts[i]);
    vf_out *os[] = {&dq, &dv, &dg, &dm, &dout, &ddq, &ddv};
    for (size_t i = 0; i < sizeof os / sizeof os[0]; i++) vf_out_free(os[i]);
    free(qk), free(v), free(g), free(mask);
}

void vf_cases_lsh(vf_ctx *c) {
    static const lsh_shape quick[] = {
        {1, 64, 1, 32, 32, 1, 1, 0, 0},
        {2, 256, 2, 64, 32, 2, 0, 1, 0},
        {1, 64, 2, 64, 64, 2, 1, 1, 0}, /* L ≤ m: full attention (§5.7) */
        {1, 512, 1, 128, 64, 4, 1, 0, 0},
        {2, 256, 2, 64, 32, 2, 1, 1, 0.2f},
    };
    static const lsh_shape full[] = {
        {2, 1024, 4, 64, 64, 2, 1, 1, 0},
        {1, 4096, 2, 128, 128, 4, 1, 0, 0},
        {2, 2048, 2, 32, 256, 8, 0, 0, 0},
        {1, 4096, 1, 64, 32, 1, 0, 1, 0},
    };
    static const lsh_shape tiny = {1, 32, 1, 16, 8, 2, 1, 1, 0.2f};
    if (c->tiny) {
        lsh_case(c, &tiny);
        return;
    }
    for (size_t i = 0; i < sizeof quick / sizeof quick[0]; i++) lsh_case(c, &quick[i]);
    if (c->full)
        for (size_t i = 0; i < sizeof full / sizeof full[0]; i++) lsh_case(c, &full[i]);
}
