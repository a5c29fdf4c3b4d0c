/* LSH self-attention, forward and backward (§3–§5, §10).
 *
 * - Every stage, OpenCL against cpu, over a sample of the grid
 *   L ∈ {64, 256, 1024, 4096}, d ∈ {32, 64, 128}, m ∈ {32, 64, 128},
 *   R ∈ {1, 2, 4, 8}, H ∈ {1, 4}, B ∈ {1, 2}, causal or not: hashing by
 *   agreement rate (≥ 99.9%), then both backends are fed the cpu's buckets
 *   and perm/undo must be identical, o/lse and the output within 1e-4 (§10).
 *   The sample includes R = 8, odd head sizes (17, 33), H = 2, factorised
 *   and explicit buckets, padding on every row of B = 2, and dropout.
 *   RF_TEST_FULL_GRID=1 adds the whole grid (1152 points, long) to the
 *   sample, and a backward grid (384 points) to the backward sample.
 * - Properties: perm is a permutation sorted by (round, bucket, position)
 *   and equals a qsort on that key; undo inverts it; L ≤ m equals full
 *   shared-QK attention computed naively here; R identical rotation sets give
 *   one set's output; causality; a token that sees only itself gets its own
 *   v; padding; the factorised-bucket layout; automatic nb.
 * - Backward (§5.6, §3, §4, §10): the cpu's gradients against central
 *   finite differences of the cpu forward with the buckets held fixed
 *   (≤ 1e-2 of the largest gradient, th_assert_fd) for R ∈ {1, 2, 4, 8}
 *   (R = 8 with an odd head size), causal or not, padded or not, and the
 *   L ≤ m path, which must also equal shared-QK full attention's backward
 *   (LSH's oracle); OpenCL against cpu (≤ 1e-3, inputs at offsets, outputs
 *   sentinel-guarded) fed the same buckets; rejected inputs (NULL and
 *   misshapen tensors, an hf_rounding state).
 * - Attention dropout (§2): the cpu forward against a naive computation here
 *   with the same Philox mask (several rounds and chunks, and L ≤ m), the cpu
 *   backward against finite differences with buckets and mask fixed, OpenCL
 *   against cpu (forward stages and backward), and its rejected settings.
 * - Every rejected input. */
#include "harness.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/philox.h"
#include "device/attention_common.h" /* RF_ATTN_MAX_HEAD_DIM */

typedef struct {
    int64_t B, L;
    int H, d, m, R;
    int nb, f1, f2; /* nb = 0 and f1 = 0: automatic */
    bool causal;
    bool masked;    /* a padding mask: row b loses its last (b + 1)·L/8 tokens (every row padded) */
    float dropout;  /* attention dropout (stream DROP_STREAM); 0 = none */
    float gscale;   /* finite differences: dout in [−gscale, gscale) (0: 1) */
    bool hf;        /* hf_rounding (forward only) */
} point;

#define DROP_STREAM 17u /* rf_philox_stream(1, RF_PHILOX_DROPOUT_ATTN) */

/* The OpenCL chunk kernels' two shapes (rf_cl_attn_shape, RF_CL_ATTN): every
 * OpenCL-against-cpu comparison runs under each; cl_shape names the one
 * running, for messages. */
static const char *const cl_shapes[] = {"gpu", "cpu"};
static const char *cl_shape = "default";

static void use_cl_shape(const char *shape) {
    cl_shape = shape;
    if (shape) setenv("RF_CL_ATTN", shape, 1);
    else unsetenv("RF_CL_ATTN");
}

static rf_lsh_config config_of(const point *p) {
    rf_lsh_config c = {.n_heads = p->H, .head_dim = p->d, .n_hashes = p->R, .n_buckets = p->nb,
                       .bucket_factors = {p->f1, p->f2}, .chunk_len = p->m, .causal = p->causal,
                       .seed = 0x5eed + (uint64_t)p->L, .layer = 1, .step = 3, .dropout = p->dropout,
                       .dropout_stream = DROP_STREAM, .hf_rounding = p->hf};
    return c;
}

static size_t row_elems(const point *p) { return (size_t)p->B * p->L * p->H * p->d; }

static int32_t *make_mask(const point *p) {
    int32_t *mask = malloc((size_t)p->B * p->L * sizeof *mask);
    assert_non_null(mask);
    for (int64_t b = 0; b < p->B; b++)
        for (int64_t t = 0; t < p->L; t++) mask[b * p->L + t] = t < p->L - (b + 1) * p->L / 8;
    return mask;
}

/* §4 properties of one state's perm and undo against its buckets: a
 * permutation, sorted by (round, bucket, position), equal to a qsort on that
 * composite key, undo = perm⁻¹. */
typedef struct { int32_t round, bucket, pos, item; } sort_key;
static int cmp_key(const void *a, const void *b) {
    const sort_key *x = a, *y = b;
    if (x->round != y->round) return x->round < y->round ? -1 : 1;
    if (x->bucket != y->bucket) return x->bucket < y->bucket ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static void check_sorted(const rf_lsh_state *st, const int32_t *bk, const int32_t *perm, const int32_t *undo) {
    const int64_t N = (int64_t)st->n_rounds * st->seq_len, L = st->seq_len;
    sort_key *keys = malloc((size_t)N * sizeof *keys);
    char *seen = malloc((size_t)N);
    for (int64_t bh = 0; bh < st->batch * st->n_heads; bh++) {
        const int32_t *b = bk + bh * N, *p = perm + bh * N, *u = undo + bh * N;
        memset(seen, 0, (size_t)N);
        for (int64_t i = 0; i < N; i++) {
            int32_t r = (int32_t)(i / L);
            keys[i] = (sort_key){r, b[i] - r * st->bucket_stride, (int32_t)(i % L), (int32_t)i};
            assert_true(keys[i].bucket >= 0 && keys[i].bucket < st->bucket_stride);
        }
        qsort(keys, (size_t)N, sizeof *keys, cmp_key);
        for (int64_t s = 0; s < N; s++) {
            assert_true(p[s] >= 0 && p[s] < N);
            assert_false(seen[p[s]]);
            seen[p[s]] = 1;
            assert_int_equal(u[p[s]], s);
            if (p[s] != keys[s].item) fail_msg("(b·H + h) %lld, slot %lld: perm %d, qsort %d", (long long)bh, (long long)s, p[s], keys[s].item);
        }
    }
    free(keys), free(seen);
}

static double agreement(const int32_t *a, const int32_t *b, size_t n) {
    size_t same = 0;
    for (size_t i = 0; i < n; i++) same += a[i] == b[i];
    return (double)same / (double)n;
}

static void compare_f32(const rf_tensor *got, const rf_tensor *ref, double tol, const char *what) {
    float *g = th_download_f32(got), *r = th_download_f32(ref);
    th_assert_close(g, r, rf_tensor_numel(ref), tol, what);
    free(g), free(r);
}

static void compare_grad(const rf_tensor *got, const rf_tensor *ref, double tol, const char *what) {
    float *g = th_download_f32(got), *r = th_download_f32(ref);
    th_assert_close_grad(g, r, rf_tensor_numel(ref), tol, what);
    free(g), free(r);
}

static void compare_i32(const rf_tensor *got, const rf_tensor *ref, const char *what) {
    int32_t *g = th_download_i32(got), *r = th_download_i32(ref);
    size_t n = rf_tensor_numel(ref);
    for (size_t i = 0; i < n; i++)
        if (g[i] != r[i]) fail_msg("%s: element %zu is %d, the cpu has %d", what, i, g[i], r[i]);
    free(g), free(r);
}

/* One grid point: every stage on both devices (§10). */
static void compare_point(rf_device *cpu, rf_device *cl, const point *p) {
    char what[160];
    snprintf(what, sizeof what, "%s shape: B %lld L %lld H %d d %d m %d R %d nb %d/%dx%d%s%s%s dropout %g", cl_shape,
             (long long)p->B, (long long)p->L, p->H, p->d, p->m, p->R, p->nb, p->f1, p->f2,
             p->causal ? " causal" : "", p->masked ? " masked" : "", p->hf ? " hf" : "", (double)p->dropout);
    const int64_t D = (int64_t)p->H * p->d;
    const size_t n = row_elems(p);
    float *qk = th_random(n, (uint64_t)p->L * 31 + p->d, 1.5f), *v = th_random(n, (uint64_t)p->L * 37 + p->m, 1.0f);
    int32_t *maskh = p->masked ? make_mask(p) : NULL;
    rf_lsh_config cfg = config_of(p);
    /* cpu inputs plain; OpenCL inputs and output at offsets inside guarded buffers */
    rf_tensor cqk = TH_TENSOR(cpu, RF_F32, qk, p->B, p->L, D), cv = TH_TENSOR(cpu, RF_F32, v, p->B, p->L, D);
    rf_tensor cout = TH_TENSOR(cpu, RF_F32, NULL, p->B, p->L, D);
    th_guarded gqk = th_guarded_alloc(cl, RF_F32, 3, (int64_t[]){p->B, p->L, D});
    th_guarded gv = th_guarded_alloc(cl, RF_F32, 3, (int64_t[]){p->B, p->L, D});
    th_guarded gout = th_guarded_alloc(cl, RF_F32, 3, (int64_t[]){p->B, p->L, D});
    TH_OK(rf_tensor_upload(&gqk.t, qk, n * 4));
    TH_OK(rf_tensor_upload(&gv.t, v, n * 4));
    rf_tensor cmask = {0}, gmask = {0};
    if (maskh) {
        cmask = TH_TENSOR(cpu, RF_I32, maskh, p->B, p->L);
        gmask = TH_TENSOR(cl, RF_I32, maskh, p->B, p->L);
    }
    const rf_tensor *cm = maskh ? &cmask : NULL, *gm = maskh ? &gmask : NULL;
    rf_lsh_state cs, gs;
    TH_OK(rf_lsh_state_init(&cs, cpu, &cfg, p->B, p->L));
    TH_OK(rf_lsh_state_init(&gs, cl, &cfg, p->B, p->L));
    assert_int_equal(cs.n_buckets, gs.n_buckets);
    TH_OK(rf_lsh_rotations_draw(&cs, cfg.seed, cfg.layer, cfg.step));
    TH_OK(rf_lsh_rotations_draw(&gs, cfg.seed, cfg.layer, cfg.step));
    if (!cs.full) compare_f32(&gs.rotations, &cs.rotations, 0.0, "rotations (host normals, bit-identical)");

    /* hash: agreement rate (matmul rounding may move a near-tie) */
    TH_OK(rf_lsh_hash(&cs, &cqk, cm));
    TH_OK(rf_lsh_hash(&gs, &gqk.t, gm));
    assert_int_equal(cs.bucket_stride, gs.bucket_stride);
    int32_t *cb = th_download_i32(&cs.buckets), *gb = th_download_i32(&gs.buckets);
    double agree = agreement(cb, gb, rf_tensor_numel(&cs.buckets));
    if (agree < 0.999) fail_msg("%s: buckets agree on %.4f%% of items (< 99.9%%)", what, 100 * agree);
    /* then every later stage from the cpu's buckets */
    TH_OK(rf_tensor_upload(&gs.buckets, cb, rf_tensor_numel(&cs.buckets) * 4));

    TH_OK(rf_lsh_sort(&cs));
    TH_OK(rf_lsh_sort(&gs));
    int32_t *cp = th_download_i32(&cs.perm), *cu = th_download_i32(&cs.undo);
    check_sorted(&cs, cb, cp, cu);
    compare_i32(&gs.perm, &cs.perm, "perm opencl vs cpu");
    compare_i32(&gs.undo, &cs.undo, "undo opencl vs cpu");

    TH_OK(rf_lsh_attend(&cs, &cqk, &cv, cm));
    TH_OK(rf_lsh_attend(&gs, &gqk.t, &gv.t, gm));
    compare_f32(&gs.o_sorted, &cs.o_sorted, 1e-4, "o per sorted item, opencl vs cpu");
    compare_f32(&gs.lse_sorted, &cs.lse_sorted, 1e-4, "lse per sorted item, opencl vs cpu");

    TH_OK(rf_lsh_combine(&cout, &cs));
    TH_OK(rf_lsh_combine(&gout.t, &gs));
    compare_f32(&gout.t, &cout, 1e-4, what);
    th_guard_check(&gout, "rf_lsh_combine opencl");
    th_guard_check(&gqk, "qk (read only)");

    free(qk), free(v), free(maskh), free(cb), free(gb), free(cp), free(cu);
    rf_lsh_state_free(&cs);
    rf_lsh_state_free(&gs);
    rf_tensor_free(&cqk), rf_tensor_free(&cv), rf_tensor_free(&cout);
    if (cm) rf_tensor_free(&cmask), rf_tensor_free(&gmask);
    th_guarded_free(&gqk), th_guarded_free(&gv), th_guarded_free(&gout);
}

/* A diverse CI sample of the grid, plus factorised, automatic, padded
 * (every row of B = 2), odd-head-size, H = 2 and dropout points. */
static const point forward_sample[] = {
    {.B = 1, .L = 64, .H = 1, .d = 32, .m = 32, .R = 1, .nb = 4, .causal = true},
    {.B = 2, .L = 256, .H = 4, .d = 64, .m = 32, .R = 2, .causal = false},
    {.B = 1, .L = 256, .H = 1, .d = 128, .m = 64, .R = 4, .nb = 8, .causal = true},
    {.B = 1, .L = 1024, .H = 1, .d = 32, .m = 128, .R = 8, .causal = false},
    {.B = 2, .L = 1024, .H = 4, .d = 64, .m = 64, .R = 2, .causal = true, .masked = true},
    {.B = 2, .L = 4096, .H = 1, .d = 32, .m = 64, .R = 1, .causal = false},
    {.B = 1, .L = 4096, .H = 1, .d = 128, .m = 128, .R = 4, .causal = true},
    {.B = 1, .L = 64, .H = 4, .d = 128, .m = 128, .R = 2, .causal = true},  /* L ≤ m: full path */
    {.B = 2, .L = 256, .H = 1, .d = 64, .m = 32, .R = 2, .f1 = 4, .f2 = 8, .causal = false, .masked = true},
    {.B = 1, .L = 512, .H = 4, .d = 32, .m = 32, .R = 4, .f1 = 2, .f2 = 16, .causal = true},
    {.B = 2, .L = 256, .H = 2, .d = 33, .m = 32, .R = 8, .causal = true, .masked = true}, /* odd head size, R = 8 */
    {.B = 2, .L = 128, .H = 2, .d = 17, .m = 64, .R = 3, .nb = 6, .causal = false, .masked = true},
    /* attention dropout (§2) */
    {.B = 2, .L = 256, .H = 2, .d = 64, .m = 32, .R = 2, .causal = true, .masked = true, .dropout = 0.3f},
    {.B = 1, .L = 64, .H = 2, .d = 32, .m = 128, .R = 2, .causal = false, .dropout = 0.1f}, /* L ≤ m */
    /* Tiling edges of the OpenCL chunk kernels (32-row tiles, d split over
     * SPLIT work-items): d = 100 is no multiple of the split; m = 48 leaves
     * a part tile of queries and of the 96-key window; one chunk of 96. */
    {.B = 1, .L = 192, .H = 2, .d = 100, .m = 48, .R = 3, .causal = true, .masked = true, .dropout = 0.2f},
    {.B = 2, .L = 96, .H = 1, .d = 100, .m = 96, .R = 3, .causal = false, .masked = true}, /* one chunk */
    {.B = 1, .L = 256, .H = 1, .d = 128, .m = 64, .R = 2, .causal = true, .masked = true, .dropout = 0.1f},
    /* The CPU shape's edges (8-lane steps over a window of 2m keys padded
     * to 64, rows of d padded to 8): m = 20 (a 40-key window), d = 13; one
     * m = L = 36; the widest head (RF_ATTN_MAX_HEAD_DIM) with m = 100. */
    {.B = 2, .L = 120, .H = 2, .d = 13, .m = 20, .R = 2, .causal = true, .masked = true, .dropout = 0.2f},
    {.B = 1, .L = 36, .H = 2, .d = 24, .m = 36, .R = 3, .causal = false, .masked = true}, /* m = L */
    {.B = 1, .L = 200, .H = 1, .d = RF_ATTN_MAX_HEAD_DIM, .m = 100, .R = 2, .causal = true},
    /* hf_rounding: lse a float, p = exp(s − lse) not renormalised (docs/hf-compat.md §8) */
    {.B = 2, .L = 256, .H = 2, .d = 64, .m = 32, .R = 2, .causal = true, .masked = true, .hf = true},
    {.B = 1, .L = 48, .H = 1, .d = 32, .m = 64, .R = 2, .causal = true, .hf = true}, /* L ≤ m: self-only rows */
};

/* The default sample; with RF_TEST_FULL_GRID=1 the sample and then every
 * point of the grid (a superset: nothing the sample covers is lost). */
static bool full_grid(void) {
    const char *full = getenv("RF_TEST_FULL_GRID");
    return full && !strcmp(full, "1");
}

static void opencl_matches_cpu_stage_by_stage(void **state) {
    rf_device *cl;
    TH_CL_OR_SKIP(cl);
    rf_device *cpu = th_cpu();
    for (size_t s = 0; s < sizeof cl_shapes / sizeof cl_shapes[0]; s++) {
        use_cl_shape(cl_shapes[s]);
        for (size_t i = 0; i < sizeof forward_sample / sizeof forward_sample[0]; i++)
            compare_point(cpu, cl, &forward_sample[i]);
    }
    use_cl_shape(NULL); /* the device's own: the full grid runs it */
    if (full_grid()) {
        static const int64_t Ls[] = {64, 256, 1024, 4096};
        static const int ds[] = {32, 64, 128}, ms[] = {32, 64, 128}, Rs[] = {1, 2, 4, 8}, Hs[] = {1, 4}, Bs[] = {1, 2};
        for (int a = 0; a < 4; a++) for (int b = 0; b < 3; b++) for (int c = 0; c < 3; c++) for (int e = 0; e < 4; e++)
            for (int f = 0; f < 2; f++) for (int g = 0; g < 2; g++) for (int causal = 0; causal < 2; causal++) {
                /* half the B = 2 points padded */
                point p = {.B = Bs[g], .L = Ls[a], .H = Hs[f], .d = ds[b], .m = ms[c], .R = Rs[e], .causal = causal,
                           .masked = Bs[g] == 2 && (a + b + c + e) % 2};
                compare_point(cpu, cl, &p);
            }
    }
    rf_device_close(cpu);
    rf_device_close(cl);
}

/* ---- naive references and helpers for the property tests ---------------- */

/* Full shared-QK attention (§5.2, §5.4, §6) in double, directly. */
static void naive_full(float *out, const float *qk, const float *v, const int32_t *mask, const point *p) {
    const int64_t L = p->L;
    const int H = p->H, d = p->d;
    const size_t row = (size_t)H * d;
    double *s = malloc((size_t)L * sizeof *s);
    for (int64_t b = 0; b < p->B; b++)
        for (int h = 0; h < H; h++)
            for (int64_t i = 0; i < L; i++) {
                const float *q = qk + (b * L + i) * row + h * d;
                double mx = -INFINITY;
                for (int64_t j = 0; j < L; j++) {
                    const float *k = qk + (b * L + j) * row + h * d;
                    double ss = 0, dot = 0;
                    for (int e = 0; e < d; e++) ss += (double)k[e] * k[e], dot += (double)q[e] * k[e];
                    dot /= sqrt(ss / d + 1e-6) * sqrt((double)d);
                    if ((p->causal && j > i) || (mask && !mask[b * L + j])) dot = -1e9;
                    if (j == i) dot = -1e5;
                    s[j] = dot;
                    mx = fmax(mx, dot);
                }
                double sum = 0;
                for (int64_t j = 0; j < L; j++) sum += exp(s[j] - mx);
                for (int e = 0; e < d; e++) {
                    double acc = 0;
                    for (int64_t j = 0; j < L; j++) acc += exp(s[j] - mx) / sum * v[(b * L + j) * row + h * d + e];
                    out[(b * L + i) * row + h * d + e] = (float)acc;
                }
            }
    free(s);
}

/* The forward pass on `dev` from host data; returns the output (malloc'd).
 * rot: explicit rotations or NULL (Philox). */
static float *forward(rf_device *dev, const point *p, const float *qk, const float *v, const int32_t *mask,
                      const float *rot) {
    const int64_t D = (int64_t)p->H * p->d;
    rf_lsh_config cfg = config_of(p);
    rf_lsh_state st;
    TH_OK(rf_lsh_state_init(&st, dev, &cfg, p->B, p->L));
    rf_tensor tq = TH_TENSOR(dev, RF_F32, qk, p->B, p->L, D), tv = TH_TENSOR(dev, RF_F32, v, p->B, p->L, D);
    rf_tensor to = TH_TENSOR(dev, RF_F32, NULL, p->B, p->L, D), tm = {0}, tr = {0};
    if (mask) tm = TH_TENSOR(dev, RF_I32, mask, p->B, p->L);
    if (rot) tr = TH_TENSOR(dev, RF_F32, rot, p->H, p->d, p->R, st.rot_cols);
    TH_OK(rf_lsh_attention_forward(&to, &st, &tq, &tv, mask ? &tm : NULL, rot ? &tr : NULL, &cfg));
    float *out = th_download_f32(&to);
    rf_lsh_state_free(&st);
    rf_tensor_free(&tq), rf_tensor_free(&tv), rf_tensor_free(&to);
    if (mask) rf_tensor_free(&tm);
    if (rot) rf_tensor_free(&tr);
    return out;
}

/* The devices a property is checked on: cpu, and OpenCL when there is one. */
static int open_devices(rf_device *devs[2]) {
    devs[0] = th_cpu();
    devs[1] = th_cl();
    return devs[1] ? 2 : 1;
}
static void close_devices(rf_device *devs[2], int n) {
    for (int i = 0; i < n; i++) rf_device_close(devs[i]);
}

/* §5.7: L ≤ m is full shared-QK attention (one round, same masks). */
static void short_sequence_equals_full_attention(void **state) {
    rf_device *devs[2];
    int nd = open_devices(devs);
    for (int causal = 0; causal < 2; causal++)
        for (int masked = 0; masked < 2; masked++) {
            point p = {.B = 2, .L = 48, .H = 2, .d = 32, .m = 64, .R = 4, .causal = causal, .masked = masked};
            size_t n = row_elems(&p);
            float *qk = th_random(n, 11, 2.0f), *v = th_random(n, 12, 1.0f), *want = malloc(n * 4);
            int32_t *mask = masked ? make_mask(&p) : NULL;
            naive_full(want, qk, v, mask, &p);
            for (int i = 0; i < nd; i++) {
                float *got = forward(devs[i], &p, qk, v, mask, NULL);
                th_assert_close(got, want, n, 1e-4, i ? "L ≤ m, opencl vs naive" : "L ≤ m, cpu vs naive");
                free(got);
            }
            free(qk), free(v), free(want), free(mask);
        }
    close_devices(devs, nd);
}

/* R copies of one rotation set hash every round alike, so every round gives
 * the same result and their combination equals the one-round output. */
static void identical_rotation_sets_equal_one(void **state) {
    rf_device *devs[2];
    int nd = open_devices(devs);
    point p1 = {.B = 1, .L = 256, .H = 2, .d = 32, .m = 32, .R = 1, .nb = 8, .causal = true};
    point p4 = p1;
    p4.R = 4;
    const int rc = 4;
    size_t n = row_elems(&p1);
    float *qk = th_random(n, 21, 1.5f), *v = th_random(n, 22, 1.0f);
    float *rot1 = th_random((size_t)p1.H * p1.d * rc, 23, 1.0f);
    float *rot4 = malloc((size_t)p1.H * p1.d * 4 * rc * sizeof *rot4);
    for (int hd = 0; hd < p1.H * p1.d; hd++)
        for (int r = 0; r < 4; r++) memcpy(rot4 + ((size_t)hd * 4 + r) * rc, rot1 + (size_t)hd * rc, rc * sizeof *rot4);
    for (int i = 0; i < nd; i++) {
        float *o1 = forward(devs[i], &p1, qk, v, NULL, rot1), *o4 = forward(devs[i], &p4, qk, v, NULL, rot4);
        th_assert_close(o4, o1, n, 1e-5, "R identical rotation sets vs one");
        free(o1), free(o4);
    }
    free(qk), free(v), free(rot1), free(rot4);
    close_devices(devs, nd);
}

/* Causality. With L ≤ m (no hashing) changing any token after t leaves every
 * output at or before t unchanged. With hashing, chunk membership depends on
 * every token's bucket — a later token's hash can move a chunk boundary — so
 * the guarantee the masks give is: with the buckets fixed (the stages run
 * from the same hash, as the backward pass does), no later token's key or
 * value reaches an earlier query. */
static void causal_outputs_ignore_the_future(void **state) {
    rf_device *devs[2];
    int nd = open_devices(devs);
    const int64_t t_cut = 40;
    /* full path */
    {
        point p = {.B = 1, .L = 64, .H = 2, .d = 32, .m = 64, .R = 1, .causal = true};
        size_t n = row_elems(&p), keep = (size_t)(t_cut + 1) * p.H * p.d;
        float *qk = th_random(n, 31, 1.5f), *v = th_random(n, 32, 1.0f);
        for (int i = 0; i < nd; i++) {
            float *a = forward(devs[i], &p, qk, v, NULL, NULL);
            float *qk2 = th_random(n, 33, 1.5f), *v2 = th_random(n, 34, 1.0f);
            memcpy(qk2, qk, keep * 4), memcpy(v2, v, keep * 4);
            float *b = forward(devs[i], &p, qk2, v2, NULL, NULL);
            th_assert_close(b, a, keep, 1e-6, "full path: outputs up to t after changing the future");
            free(a), free(b), free(qk2), free(v2);
        }
        free(qk), free(v);
    }
    /* LSH path, buckets fixed */
    point p = {.B = 2, .L = 256, .H = 2, .d = 64, .m = 32, .R = 2, .causal = true};
    const int64_t D = (int64_t)p.H * p.d;
    size_t n = row_elems(&p);
    float *qk = th_random(n, 35, 1.5f), *v = th_random(n, 36, 1.0f);
    float *qk2 = th_random(n, 37, 1.5f), *v2 = th_random(n, 38, 1.0f);
    for (int64_t b = 0; b < p.B; b++) { /* same tokens up to t_cut in every row */
        memcpy(qk2 + b * p.L * D, qk + b * p.L * D, (size_t)(t_cut + 1) * D * 4);
        memcpy(v2 + b * p.L * D, v + b * p.L * D, (size_t)(t_cut + 1) * D * 4);
    }
    rf_lsh_config cfg = config_of(&p);
    for (int i = 0; i < nd; i++) {
        rf_device *dev = devs[i];
        rf_lsh_state st;
        TH_OK(rf_lsh_state_init(&st, dev, &cfg, p.B, p.L));
        rf_tensor tq = TH_TENSOR(dev, RF_F32, qk, p.B, p.L, D), tv = TH_TENSOR(dev, RF_F32, v, p.B, p.L, D);
        rf_tensor tq2 = TH_TENSOR(dev, RF_F32, qk2, p.B, p.L, D), tv2 = TH_TENSOR(dev, RF_F32, v2, p.B, p.L, D);
        rf_tensor o1 = TH_TENSOR(dev, RF_F32, NULL, p.B, p.L, D), o2 = TH_TENSOR(dev, RF_F32, NULL, p.B, p.L, D);
        TH_OK(rf_lsh_attention_forward(&o1, &st, &tq, &tv, NULL, NULL, &cfg));
        TH_OK(rf_lsh_attend(&st, &tq2, &tv2, NULL)); /* same buckets and perm */
        TH_OK(rf_lsh_combine(&o2, &st));
        float *a = th_download_f32(&o1), *b = th_download_f32(&o2);
        for (int64_t bb = 0; bb < p.B; bb++)
            th_assert_close(b + bb * p.L * D, a + bb * p.L * D, (size_t)(t_cut + 1) * D, 1e-6,
                            "LSH, fixed buckets: outputs up to t after changing the future");
        /* §5.4: position 0 sees only itself (the self mask −1e5 beats the
         * causal −1e9), so it gets its own v. */
        for (int64_t bb = 0; bb < p.B; bb++) th_assert_close(a + bb * p.L * D, v + bb * p.L * D, (size_t)D, 1e-6, "position 0 = its own v");
        free(a), free(b);
        rf_lsh_state_free(&st);
        rf_tensor_free(&tq), rf_tensor_free(&tv), rf_tensor_free(&tq2), rf_tensor_free(&tv2);
        rf_tensor_free(&o1), rf_tensor_free(&o2);
    }
    free(qk), free(v), free(qk2), free(v2);
    close_devices(devs, nd);
}

/* §3 padding: padded items take bucket nb with round offsets nb + 1, and
 * what padded tokens hold never reaches an unpadded output; a token whose
 * every other key is padding gets its own v. */
static void padding_mask(void **state) {
    rf_device *devs[2];
    int nd = open_devices(devs);
    point p = {.B = 2, .L = 256, .H = 2, .d = 32, .m = 32, .R = 3, .nb = 8, .causal = false, .masked = true};
    const int64_t D = (int64_t)p.H * p.d;
    size_t n = row_elems(&p);
    int32_t *mask = make_mask(&p);
    float *qk = th_random(n, 41, 1.5f), *v = th_random(n, 42, 1.0f);
    float *qk2 = malloc(n * 4), *v2 = malloc(n * 4);
    memcpy(qk2, qk, n * 4), memcpy(v2, v, n * 4);
    for (int64_t t = 0; t < p.L; t++)
        if (!mask[(p.B - 1) * p.L + t])
            for (int64_t e = 0; e < D; e++) qk2[((p.B - 1) * p.L + t) * D + e] = 7.0f, v2[((p.B - 1) * p.L + t) * D + e] = -9.0f;
    rf_lsh_config cfg = config_of(&p);
    for (int i = 0; i < nd; i++) {
        rf_device *dev = devs[i];
        float *a = forward(dev, &p, qk, v, mask, NULL), *b = forward(dev, &p, qk2, v2, mask, NULL);
        for (int64_t bb = 0; bb < p.B; bb++)
            for (int64_t t = 0; t < p.L; t++)
                if (mask[bb * p.L + t])
                    th_assert_close(b + (bb * p.L + t) * D, a + (bb * p.L + t) * D, (size_t)D, 1e-6,
                                    "unpadded outputs ignore padded tokens");
        free(a), free(b);
        /* the buckets of padded items */
        rf_lsh_state st;
        TH_OK(rf_lsh_state_init(&st, dev, &cfg, p.B, p.L));
        rf_tensor tq = TH_TENSOR(dev, RF_F32, qk, p.B, p.L, D), tm = TH_TENSOR(dev, RF_I32, mask, p.B, p.L);
        TH_OK(rf_lsh_rotations_draw(&st, cfg.seed, cfg.layer, cfg.step));
        TH_OK(rf_lsh_hash(&st, &tq, &tm));
        assert_int_equal(st.bucket_stride, 9);
        int32_t *bk = th_download_i32(&st.buckets);
        for (int64_t bb = 0; bb < p.B; bb++)
            for (int h = 0; h < p.H; h++)
                for (int r = 0; r < p.R; r++)
                    for (int64_t t = 0; t < p.L; t++) {
                        int32_t id = bk[((bb * p.H + h) * p.R + r) * p.L + t];
                        if (!mask[bb * p.L + t]) assert_int_equal(id, 8 + r * 9);
                        else assert_true(id >= r * 9 && id < r * 9 + 8);
                    }
        free(bk);
        rf_lsh_state_free(&st);
        rf_tensor_free(&tq), rf_tensor_free(&tm);
    }
    /* Non-causal, one token among padding: it sees only itself. */
    point q = {.B = 1, .L = 32, .H = 1, .d = 32, .m = 32, .R = 1};
    int32_t one[32] = {0};
    one[5] = 1;
    float *qk3 = th_random(32 * 32, 43, 1.0f), *v3 = th_random(32 * 32, 44, 1.0f);
    for (int i = 0; i < nd; i++) {
        float *o = forward(devs[i], &q, qk3, v3, one, NULL);
        th_assert_close(o + 5 * 32, v3 + 5 * 32, 32, 1e-6, "the only token attends to itself");
        free(o);
    }
    free(qk3), free(v3);
    free(mask), free(qk), free(v), free(qk2), free(v2);
    close_devices(devs, nd);
}

/* §3 hashing, computed here from the rotations in HF's layout (factorised:
 * factor 1 uses columns [0, f1/2), factor 2 [f1/2, f1/2 + f2/2) of each
 * round; bucket = a1 + f1·a2), matches the cpu's on ≥ 99.9% of items. */
static int naive_argmax_pm(const double *r, int half) {
    int best = 0;
    double bv = r[0];
    for (int j = 1; j < 2 * half; j++) {
        double x = j < half ? r[j] : -r[j - half];
        if (x > bv) bv = x, best = j;
    }
    return best;
}

static void hashing_follows_the_hf_layout(void **state) {
    rf_device *cpu = th_cpu();
    for (int fact = 0; fact < 2; fact++) {
        point p = {.B = 2, .L = 512, .H = 2, .d = 32, .m = 32, .R = 2, .nb = fact ? 0 : 16, .f1 = fact ? 4 : 0,
                   .f2 = fact ? 8 : 0};
        const int64_t D = (int64_t)p.H * p.d;
        rf_lsh_config cfg = config_of(&p);
        rf_lsh_state st;
        TH_OK(rf_lsh_state_init(&st, cpu, &cfg, p.B, p.L));
        assert_int_equal(st.rot_cols, fact ? 6 : 8);
        assert_int_equal(st.n_buckets, fact ? 32 : 16);
        size_t n = row_elems(&p);
        float *qk = th_random(n, 51, 1.0f);
        rf_tensor tq = TH_TENSOR(cpu, RF_F32, qk, p.B, p.L, D);
        TH_OK(rf_lsh_rotations_draw(&st, cfg.seed, cfg.layer, cfg.step));
        TH_OK(rf_lsh_hash(&st, &tq, NULL));
        float *rot = th_download_f32(&st.rotations);
        int32_t *bk = th_download_i32(&st.buckets);
        const int rc = st.rot_cols;
        size_t same = 0, total = 0;
        double *x = malloc((size_t)rc * sizeof *x);
        for (int64_t b = 0; b < p.B; b++)
            for (int h = 0; h < p.H; h++)
                for (int r = 0; r < p.R; r++)
                    for (int64_t t = 0; t < p.L; t++) {
                        for (int j = 0; j < rc; j++) {
                            x[j] = 0;
                            for (int e = 0; e < p.d; e++)
                                x[j] += (double)qk[(b * p.L + t) * D + h * p.d + e] * rot[((size_t)(h * p.d + e) * p.R + r) * rc + j];
                        }
                        int want = fact ? naive_argmax_pm(x, 2) + 4 * naive_argmax_pm(x + 2, 4) : naive_argmax_pm(x, 8);
                        same += bk[((b * p.H + h) * p.R + r) * p.L + t] == want + r * st.n_buckets;
                        total++;
                    }
        if ((double)same / total < 0.999) fail_msg("hashing (%s) agrees on %zu of %zu items", fact ? "factorised" : "plain", same, total);
        free(x), free(rot), free(bk), free(qk);
        rf_tensor_free(&tq);
        rf_lsh_state_free(&st);
    }
    rf_device_close(cpu);
}

/* §3's automatic nb, as HF's _set_num_buckets. */
static void automatic_bucket_count(void **state) {
    int f[2];
    TH_OK(rf_lsh_auto_buckets(f, 1024, 64, 1024)); /* p = 5 → 32 ≤ 2·max(4, 64) */
    assert_int_equal(f[0], 32), assert_int_equal(f[1], 0);
    TH_OK(rf_lsh_auto_buckets(f, 65536, 64, 65536)); /* p = 11 → 2048 > 128: [32, 64] */
    assert_int_equal(f[0], 32), assert_int_equal(f[1], 64);
    TH_OK(rf_lsh_auto_buckets(f, 56, 4, 64)); /* the HF golden hf_padded model resolved [4, 4] */
    assert_int_equal(f[0], 4), assert_int_equal(f[1], 4);
    TH_OK(rf_lsh_auto_buckets(f, 100, 32, 0)); /* ⌊100/32⌋ = 3 → p = 2 */
    assert_int_equal(f[0], 4), assert_int_equal(f[1], 0);
    rf_device *cpu = th_cpu();
    rf_lsh_config cfg = {.n_heads = 1, .head_dim = 32, .n_hashes = 1, .chunk_len = 64, .max_position = 65536};
    rf_lsh_state st;
    TH_OK(rf_lsh_state_init(&st, cpu, &cfg, 1, 65536));
    assert_int_equal(st.n_buckets, 2048), assert_int_equal(st.rot_cols, 48);
    rf_lsh_state_free(&st);
    rf_device_close(cpu);
}

static void rejects_bad_arguments(void **state) {
    rf_device *cpu = th_cpu();
    rf_lsh_config cfg = {.n_heads = 2, .head_dim = 32, .n_hashes = 2, .n_buckets = 8, .chunk_len = 32};
    rf_lsh_state st;
    rf_lsh_config bad = cfg;
    bad.n_buckets = 7;
    TH_FAILS(rf_lsh_state_init(&st, cpu, &bad, 1, 128), RF_ERR_INVALID_ARG, "n_buckets = 7 must be even");
    bad = cfg, bad.n_buckets = 0, bad.bucket_factors[0] = 3, bad.bucket_factors[1] = 4;
    TH_FAILS(rf_lsh_state_init(&st, cpu, &bad, 1, 128), RF_ERR_INVALID_ARG, "bucket_factors = {3, 4}");
    bad = cfg, bad.bucket_factors[0] = 4, bad.bucket_factors[1] = 4;
    TH_FAILS(rf_lsh_state_init(&st, cpu, &bad, 1, 128), RF_ERR_INVALID_ARG, "disagrees with bucket_factors");
    TH_FAILS(rf_lsh_state_init(&st, cpu, &cfg, 1, 100), RF_ERR_INVALID_ARG, "L = 100 is not a multiple of the chunk length chunk_len = 32");
    bad = cfg, bad.n_hashes = 0;
    TH_FAILS(rf_lsh_state_init(&st, cpu, &bad, 1, 128), RF_ERR_INVALID_ARG, "n_hashes = 0");
    TH_FAILS(rf_lsh_state_init(&st, cpu, NULL, 1, 128), RF_ERR_INVALID_ARG, "cfg is NULL");
    TH_FAILS(rf_lsh_state_init(&st, NULL, &cfg, 1, 128), RF_ERR_INVALID_ARG, "device is NULL");
    TH_FAILS(rf_lsh_state_init(&st, cpu, &cfg, 0, 128), RF_ERR_INVALID_ARG, "batch = 0");

    TH_OK(rf_lsh_state_init(&st, cpu, &cfg, 2, 128));
    rf_tensor qk = TH_TENSOR(cpu, RF_F32, NULL, 2, 128, 64), v = TH_TENSOR(cpu, RF_F32, NULL, 2, 128, 64);
    rf_tensor out = TH_TENSOR(cpu, RF_F32, NULL, 2, 128, 64), wrong = TH_TENSOR(cpu, RF_F32, NULL, 2, 128, 32);
    rf_tensor mask_f = TH_TENSOR(cpu, RF_F32, NULL, 2, 128), rot = TH_TENSOR(cpu, RF_F32, NULL, 2, 32, 2, 3);
    TH_OK(rf_tensor_fill_f32(&qk, 0.5f));
    TH_OK(rf_tensor_fill_f32(&v, 0.5f));
    TH_FAILS(rf_lsh_attention_forward(&out, &st, NULL, &v, NULL, NULL, &cfg), RF_ERR_INVALID_ARG, "qk is NULL");
    TH_FAILS(rf_lsh_attention_forward(&out, &st, &qk, NULL, NULL, NULL, &cfg), RF_ERR_INVALID_ARG, "v is NULL");
    TH_FAILS(rf_lsh_attention_forward(NULL, &st, &qk, &v, NULL, NULL, &cfg), RF_ERR_INVALID_ARG, "out is NULL");
    TH_FAILS(rf_lsh_attention_forward(&out, NULL, &qk, &v, NULL, NULL, &cfg), RF_ERR_INVALID_ARG, "not initialised");
    TH_FAILS(rf_lsh_attention_forward(&out, &st, &qk, &wrong, NULL, NULL, &cfg), RF_ERR_INVALID_ARG,
             "v has shape [2, 128, 32], expected [2, 128, 64]");
    TH_FAILS(rf_lsh_attention_forward(&out, &st, &qk, &v, &mask_f, NULL, &cfg), RF_ERR_INVALID_ARG,
             "mask has dtype f32, expected i32");
    TH_FAILS(rf_lsh_attention_forward(&out, &st, &qk, &v, NULL, &rot, &cfg), RF_ERR_INVALID_ARG,
             "rotations has shape [2, 32, 2, 3], expected [2, 32, 2, 4]");
    bad = cfg, bad.n_heads = 4;
    TH_FAILS(rf_lsh_attention_forward(&out, &st, &qk, &v, NULL, NULL, &bad), RF_ERR_INVALID_ARG, "differs from the state's");
    TH_FAILS(rf_lsh_sort(NULL), RF_ERR_INVALID_ARG, "not initialised");
    TH_OK(rf_lsh_attention_forward(&out, &st, &qk, &v, NULL, NULL, &cfg));
    rf_lsh_state_free(&st);
    rf_tensor_free(&qk), rf_tensor_free(&v), rf_tensor_free(&out), rf_tensor_free(&wrong), rf_tensor_free(&mask_f);
    rf_tensor_free(&rot);

    rf_device *cl = th_cl();
    if (cl) { /* device limits, checked when the state is made */
        bad = cfg, bad.head_dim = 256;
        TH_FAILS(rf_lsh_state_init(&st, cl, &bad, 1, 128), RF_ERR_UNSUPPORTED, "head_dim = 256 exceeds the 128");
        bad = cfg, bad.chunk_len = 512;
        TH_FAILS(rf_lsh_state_init(&st, cl, &bad, 1, 1024), RF_ERR_UNSUPPORTED, "chunk length 512 exceeds the 256");
        rf_device_close(cl);
    }
    rf_device_close(cpu);
}

/* ---- backward ------------------------------------------------------------ */

/* Σ dout·out in double: the scalar whose gradient the backward computes. */
static double loss_of(const float *out, const float *dout, size_t n) {
    double J = 0;
    for (size_t i = 0; i < n; i++) J += (double)dout[i] * out[i];
    return J;
}

/* attend + combine on the cpu with the state's buckets, then the loss. */
static double fixed_bucket_loss(rf_lsh_state *st, rf_tensor *tq, rf_tensor *tv, const rf_tensor *tm, rf_tensor *to,
                                const float *qk, const float *v, const float *dout, size_t n) {
    TH_OK(rf_tensor_upload(tq, qk, n * 4));
    TH_OK(rf_tensor_upload(tv, v, n * 4));
    TH_OK(rf_lsh_attend(st, tq, tv, tm));
    TH_OK(rf_lsh_combine(to, st));
    float *out = th_download_f32(to);
    double J = loss_of(out, dout, n);
    free(out);
    return J;
}

/* The cpu backward against central differences of the cpu forward, buckets
 * fixed (hashes carry no gradient, §3), on every element of qk and v. */
static void fd_point(rf_device *cpu, const point *p) {
    char what[128];
    snprintf(what, sizeof what, "R %d d %d%s%s%s dropout %g dout scale %g", p->R, p->d, p->causal ? " causal" : "",
             p->masked ? " masked" : "", p->L <= p->m ? " (L ≤ m)" : "", (double)p->dropout,
             p->gscale > 0 ? (double)p->gscale : 1.0);
    const int64_t D = (int64_t)p->H * p->d;
    const size_t n = row_elems(p);
    float *qk = th_random(n, 100 + (uint64_t)p->R * 4 + p->causal * 2 + p->masked, 1.0f);
    float *v = th_random(n, 200 + (uint64_t)p->R, 1.0f), *dout = th_random(n, 300, p->gscale > 0 ? p->gscale : 1.0f);
    int32_t *maskh = p->masked ? make_mask(p) : NULL;
    rf_lsh_config cfg = config_of(p);
    rf_lsh_state st;
    TH_OK(rf_lsh_state_init(&st, cpu, &cfg, p->B, p->L));
    rf_tensor tq = TH_TENSOR(cpu, RF_F32, qk, p->B, p->L, D), tv = TH_TENSOR(cpu, RF_F32, v, p->B, p->L, D);
    rf_tensor to = TH_TENSOR(cpu, RF_F32, NULL, p->B, p->L, D), tg = TH_TENSOR(cpu, RF_F32, dout, p->B, p->L, D);
    rf_tensor dq = TH_TENSOR(cpu, RF_F32, NULL, p->B, p->L, D), dv = TH_TENSOR(cpu, RF_F32, NULL, p->B, p->L, D);
    rf_tensor tm = {0};
    if (maskh) tm = TH_TENSOR(cpu, RF_I32, maskh, p->B, p->L);
    const rf_tensor *m = maskh ? &tm : NULL;
    TH_OK(rf_lsh_attention_forward(&to, &st, &tq, &tv, m, NULL, &cfg));
    TH_OK(rf_lsh_attention_backward(&dq, &dv, &tg, &st, &tq, &tv, m));
    float *gq = th_download_f32(&dq), *gv = th_download_f32(&dv);
    float *fq = malloc(n * 4), *fv = malloc(n * 4);
    const float h = 1e-2f;
    for (int which = 0; which < 2; which++) {
        float *x = which ? v : qk, *fd = which ? fv : fq;
        for (size_t i = 0; i < n; i++) {
            const float x0 = x[i];
            x[i] = x0 + h;
            const double hi = (double)x[i] - x0, Jp = fixed_bucket_loss(&st, &tq, &tv, m, &to, qk, v, dout, n);
            x[i] = x0 - h;
            const double lo = (double)x[i] - x0, Jm = fixed_bucket_loss(&st, &tq, &tv, m, &to, qk, v, dout, n);
            x[i] = x0;
            fd[i] = (float)((Jp - Jm) / (hi - lo));
        }
    }
    char w2[160];
    snprintf(w2, sizeof w2, "dqk vs finite differences, %s", what);
    th_assert_fd(gq, fq, n, 1e-2, w2);
    snprintf(w2, sizeof w2, "dv vs finite differences, %s", what);
    th_assert_fd(gv, fv, n, 1e-2, w2);
    free(qk), free(v), free(dout), free(maskh), free(gq), free(gv), free(fq), free(fv);
    rf_lsh_state_free(&st);
    rf_tensor_free(&tq), rf_tensor_free(&tv), rf_tensor_free(&to), rf_tensor_free(&tg);
    rf_tensor_free(&dq), rf_tensor_free(&dv);
    if (maskh) rf_tensor_free(&tm);
}

static void backward_matches_finite_differences(void **state) {
    rf_device *cpu = th_cpu();
    /* Gradients of order 0.1: the bound is relative to the largest gradient
     * (a 1e-2 absolute bound would let a 10% error through here). */
    for (int r = 2; r <= 8; r *= 4) {
        point p = {.B = 2, .L = 32, .H = 2, .d = 8, .m = 8, .R = r, .nb = 4, .causal = true, .masked = true,
                   .gscale = 0.1f};
        fd_point(cpu, &p);
    }
    static const int Rs[] = {1, 2, 4};
    for (int r = 0; r < 3; r++)
        for (int causal = 0; causal < 2; causal++)
            for (int masked = 0; masked < 2; masked++) {
                point p = {.B = 2, .L = 32, .H = 2, .d = 8, .m = 8, .R = Rs[r], .nb = 4, .causal = causal,
                           .masked = masked};
                fd_point(cpu, &p);
            }
    for (int causal = 0; causal < 2; causal++) { /* R = 8, odd head size, every row padded */
        point p = {.B = 2, .L = 32, .H = 2, .d = 7, .m = 8, .R = 8, .nb = 4, .causal = causal, .masked = true};
        fd_point(cpu, &p);
    }
    for (int causal = 0; causal < 2; causal++) { /* §5.7: L ≤ m */
        point p = {.B = 2, .L = 16, .H = 2, .d = 8, .m = 16, .R = 2, .causal = causal, .masked = true};
        fd_point(cpu, &p);
    }
    rf_device_close(cpu);
}

/* §5.7, §6: with L ≤ m the LSH backward is shared-QK full attention's. */
static void short_sequence_backward_equals_full_attention(void **state) {
    rf_device *cpu = th_cpu();
    point p = {.B = 2, .L = 40, .H = 2, .d = 16, .m = 64, .R = 1, .causal = true, .masked = true};
    const int64_t D = (int64_t)p.H * p.d;
    const size_t n = row_elems(&p);
    float *qk = th_random(n, 61, 1.5f), *v = th_random(n, 62, 1.0f), *dout = th_random(n, 63, 1.0f);
    int32_t *maskh = make_mask(&p);
    rf_lsh_config cfg = config_of(&p);
    rf_attention_config acfg = {.n_heads = p.H, .head_dim = p.d, .causal = true, .shared_qk = true};
    rf_lsh_state st;
    TH_OK(rf_lsh_state_init(&st, cpu, &cfg, p.B, p.L));
    rf_tensor tq = TH_TENSOR(cpu, RF_F32, qk, p.B, p.L, D), tv = TH_TENSOR(cpu, RF_F32, v, p.B, p.L, D);
    rf_tensor tg = TH_TENSOR(cpu, RF_F32, dout, p.B, p.L, D), tm = TH_TENSOR(cpu, RF_I32, maskh, p.B, p.L);
    rf_tensor o1 = TH_TENSOR(cpu, RF_F32, NULL, p.B, p.L, D), o2 = TH_TENSOR(cpu, RF_F32, NULL, p.B, p.L, D);
    rf_tensor lse = TH_TENSOR(cpu, RF_F32, NULL, p.B, p.H, p.L);
    rf_tensor dq1 = TH_TENSOR(cpu, RF_F32, NULL, p.B, p.L, D), dv1 = TH_TENSOR(cpu, RF_F32, NULL, p.B, p.L, D);
    rf_tensor dq2 = TH_TENSOR(cpu, RF_F32, NULL, p.B, p.L, D), dv2 = TH_TENSOR(cpu, RF_F32, NULL, p.B, p.L, D);
    TH_OK(rf_lsh_attention_forward(&o1, &st, &tq, &tv, &tm, NULL, &cfg));
    TH_OK(rf_lsh_attention_backward(&dq1, &dv1, &tg, &st, &tq, &tv, &tm));
    TH_OK(rf_full_attention_forward(&o2, &lse, &tq, NULL, &tv, &tm, &acfg));
    TH_OK(rf_full_attention_backward(&dq2, NULL, &dv2, &tg, &o2, &lse, &tq, NULL, &tv, &tm, &acfg));
    compare_f32(&dq1, &dq2, 1e-4, "L ≤ m: dqk = full attention's dq (shared QK)");
    compare_f32(&dv1, &dv2, 1e-4, "L ≤ m: dv = full attention's dv");
    free(qk), free(v), free(dout), free(maskh);
    rf_lsh_state_free(&st);
    rf_tensor *ts[] = {&tq, &tv, &tg, &tm, &o1, &o2, &lse, &dq1, &dv1, &dq2, &dv2};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) rf_tensor_free(ts[i]);
    rf_device_close(cpu);
}

/* OpenCL backward vs cpu from the same buckets (§10: gradients ≤ 1e-3). */
static void backward_point(rf_device *cpu, rf_device *cl, const point *p) {
    char what[160];
    snprintf(what, sizeof what, "%s shape: backward B %lld L %lld H %d d %d m %d R %d%s%s dropout %g", cl_shape,
             (long long)p->B, (long long)p->L, p->H, p->d, p->m, p->R, p->causal ? " causal" : "",
             p->masked ? " masked" : "", (double)p->dropout);
    const int64_t D = (int64_t)p->H * p->d;
    const int64_t shape[] = {p->B, p->L, D};
    const size_t n = row_elems(p);
    float *qk = th_random(n, (uint64_t)p->L * 41 + p->d, 1.5f), *v = th_random(n, (uint64_t)p->L * 43 + p->m, 1.0f);
    float *dout = th_random(n, (uint64_t)p->L * 47 + p->R, 1.0f);
    int32_t *maskh = p->masked ? make_mask(p) : NULL;
    rf_lsh_config cfg = config_of(p);
    rf_tensor cqk = TH_TENSOR(cpu, RF_F32, qk, p->B, p->L, D), cv = TH_TENSOR(cpu, RF_F32, v, p->B, p->L, D);
    rf_tensor cg = TH_TENSOR(cpu, RF_F32, dout, p->B, p->L, D);
    rf_tensor cdq = TH_TENSOR(cpu, RF_F32, NULL, p->B, p->L, D), cdv = TH_TENSOR(cpu, RF_F32, NULL, p->B, p->L, D);
    th_guarded gqk = th_guarded_alloc(cl, RF_F32, 3, shape), gv = th_guarded_alloc(cl, RF_F32, 3, shape);
    th_guarded gg = th_guarded_alloc(cl, RF_F32, 3, shape);
    th_guarded gdq = th_guarded_alloc(cl, RF_F32, 3, shape), gdv = th_guarded_alloc(cl, RF_F32, 3, shape);
    TH_OK(rf_tensor_upload(&gqk.t, qk, n * 4));
    TH_OK(rf_tensor_upload(&gv.t, v, n * 4));
    TH_OK(rf_tensor_upload(&gg.t, dout, n * 4));
    rf_tensor cmask = {0}, gmask = {0};
    if (maskh) {
        cmask = TH_TENSOR(cpu, RF_I32, maskh, p->B, p->L);
        gmask = TH_TENSOR(cl, RF_I32, maskh, p->B, p->L);
    }
    const rf_tensor *cm = maskh ? &cmask : NULL, *gm = maskh ? &gmask : NULL;
    rf_lsh_state cs, gs;
    TH_OK(rf_lsh_state_init(&cs, cpu, &cfg, p->B, p->L));
    TH_OK(rf_lsh_state_init(&gs, cl, &cfg, p->B, p->L));
    TH_OK(rf_lsh_rotations_draw(&cs, cfg.seed, cfg.layer, cfg.step));
    TH_OK(rf_lsh_hash(&cs, &cqk, cm));
    int32_t *cb = th_download_i32(&cs.buckets);
    TH_OK(rf_tensor_upload(&gs.buckets, cb, rf_tensor_numel(&cs.buckets) * 4)); /* §10: the same buckets */
    gs.bucket_stride = cs.bucket_stride;
    TH_OK(rf_lsh_sort(&cs));
    TH_OK(rf_lsh_sort(&gs));
    TH_OK(rf_lsh_attend(&cs, &cqk, &cv, cm));
    TH_OK(rf_lsh_attend(&gs, &gqk.t, &gv.t, gm));
    TH_OK(rf_lsh_attention_backward(&cdq, &cdv, &cg, &cs, &cqk, &cv, cm));
    TH_OK(rf_lsh_attention_backward(&gdq.t, &gdv.t, &gg.t, &gs, &gqk.t, &gv.t, gm));
    char w2[200];
    snprintf(w2, sizeof w2, "%s: dqk", what);
    compare_grad(&gdq.t, &cdq, 1e-3, w2);
    snprintf(w2, sizeof w2, "%s: dv", what);
    compare_grad(&gdv.t, &cdv, 1e-3, w2);
    th_guard_check(&gdq, "dqk (opencl)");
    th_guard_check(&gdv, "dv (opencl)");
    free(qk), free(v), free(dout), free(maskh), free(cb);
    rf_lsh_state_free(&cs);
    rf_lsh_state_free(&gs);
    rf_tensor_free(&cqk), rf_tensor_free(&cv), rf_tensor_free(&cg), rf_tensor_free(&cdq), rf_tensor_free(&cdv);
    if (maskh) rf_tensor_free(&cmask), rf_tensor_free(&gmask);
    th_guarded_free(&gqk), th_guarded_free(&gv), th_guarded_free(&gg), th_guarded_free(&gdq), th_guarded_free(&gdv);
}

static void backward_opencl_matches_cpu(void **state) {
    rf_device *cl;
    TH_CL_OR_SKIP(cl);
    rf_device *cpu = th_cpu();
    static const point sample[] = {
        {.B = 1, .L = 256, .H = 2, .d = 64, .m = 32, .R = 2, .causal = true, .masked = true},
        {.B = 2, .L = 128, .H = 1, .d = 128, .m = 32, .R = 2, .causal = false},
        {.B = 1, .L = 512, .H = 1, .d = 32, .m = 64, .R = 4, .nb = 8, .causal = true},
        {.B = 1, .L = 256, .H = 1, .d = 32, .m = 128, .R = 1, .causal = false}, /* two chunks: next = previous */
        {.B = 2, .L = 48, .H = 2, .d = 32, .m = 64, .R = 2, .causal = true, .masked = true}, /* L ≤ m */
        {.B = 2, .L = 256, .H = 2, .d = 33, .m = 32, .R = 8, .causal = true, .masked = true}, /* R = 8, odd d */
        {.B = 2, .L = 128, .H = 1, .d = 17, .m = 32, .R = 8, .f1 = 2, .f2 = 4, .causal = false, .masked = true},
        /* attention dropout (§2): both kernels regenerate the forward's mask */
        {.B = 1, .L = 256, .H = 2, .d = 64, .m = 32, .R = 2, .causal = true, .masked = true, .dropout = 0.3f},
        {.B = 1, .L = 256, .H = 1, .d = 32, .m = 128, .R = 1, .causal = false, .dropout = 0.2f}, /* two chunks */
        {.B = 2, .L = 48, .H = 2, .d = 32, .m = 64, .R = 2, .causal = true, .masked = true, .dropout = 0.25f},
        /* tiling edges of the chunk kernels (as forward_sample's) */
        {.B = 1, .L = 192, .H = 2, .d = 100, .m = 48, .R = 3, .causal = true, .masked = true, .dropout = 0.2f},
        {.B = 2, .L = 96, .H = 1, .d = 100, .m = 96, .R = 3, .causal = false, .masked = true}, /* one chunk */
        {.B = 1, .L = 256, .H = 1, .d = 128, .m = 64, .R = 2, .causal = true, .masked = true, .dropout = 0.1f},
        /* the CPU shape's edges (as forward_sample's) */
        {.B = 2, .L = 120, .H = 2, .d = 13, .m = 20, .R = 2, .causal = true, .masked = true, .dropout = 0.2f},
        {.B = 1, .L = 36, .H = 2, .d = 24, .m = 36, .R = 3, .causal = false, .masked = true}, /* m = L */
        {.B = 1, .L = 200, .H = 1, .d = RF_ATTN_MAX_HEAD_DIM, .m = 100, .R = 2, .causal = true},
    };
    for (size_t s = 0; s < sizeof cl_shapes / sizeof cl_shapes[0]; s++) {
        use_cl_shape(cl_shapes[s]);
        for (size_t i = 0; i < sizeof sample / sizeof sample[0]; i++) backward_point(cpu, cl, &sample[i]);
    }
    use_cl_shape(NULL); /* the device's own: the full grid runs it */
    if (full_grid()) { /* the sample, then a grid of its own */
        static const int64_t Ls[] = {64, 256, 1024};
        static const int ds[] = {17, 32, 64, 128}, ms[] = {32, 64}, Rs[] = {1, 2, 4, 8};
        for (int a = 0; a < 3; a++) for (int b = 0; b < 4; b++) for (int c = 0; c < 2; c++) for (int e = 0; e < 4; e++)
            for (int causal = 0; causal < 2; causal++) for (int masked = 0; masked < 2; masked++) {
                point p = {.B = 2, .L = Ls[a], .H = 2, .d = ds[b], .m = ms[c], .R = Rs[e], .causal = causal,
                           .masked = masked, .dropout = (a + e) % 3 ? 0.0f : 0.2f};
                backward_point(cpu, cl, &p);
            }
    }
    rf_device_close(cpu);
    rf_device_close(cl);
}

static void backward_rejects_bad_arguments(void **state) {
    rf_device *cpu = th_cpu();
    rf_lsh_config cfg = {.n_heads = 2, .head_dim = 16, .n_hashes = 2, .n_buckets = 4, .chunk_len = 16};
    rf_lsh_state st;
    TH_OK(rf_lsh_state_init(&st, cpu, &cfg, 1, 64));
    rf_tensor qk = TH_TENSOR(cpu, RF_F32, NULL, 1, 64, 32), v = TH_TENSOR(cpu, RF_F32, NULL, 1, 64, 32);
    rf_tensor out = TH_TENSOR(cpu, RF_F32, NULL, 1, 64, 32), g = TH_TENSOR(cpu, RF_F32, NULL, 1, 64, 32);
    rf_tensor dq = TH_TENSOR(cpu, RF_F32, NULL, 1, 64, 32), dv = TH_TENSOR(cpu, RF_F32, NULL, 1, 64, 32);
    rf_tensor wrong = TH_TENSOR(cpu, RF_F32, NULL, 1, 64, 16), mask_f = TH_TENSOR(cpu, RF_F32, NULL, 1, 64);
    TH_OK(rf_tensor_fill_f32(&qk, 0.5f));
    TH_OK(rf_tensor_fill_f32(&v, 0.5f));
    TH_OK(rf_tensor_fill_f32(&g, 1.0f));
    TH_OK(rf_lsh_attention_forward(&out, &st, &qk, &v, NULL, NULL, &cfg));
    TH_FAILS(rf_lsh_attention_backward(NULL, &dv, &g, &st, &qk, &v, NULL), RF_ERR_INVALID_ARG, "dqk is NULL");
    TH_FAILS(rf_lsh_attention_backward(&dq, NULL, &g, &st, &qk, &v, NULL), RF_ERR_INVALID_ARG, "dv is NULL");
    TH_FAILS(rf_lsh_attention_backward(&dq, &dv, NULL, &st, &qk, &v, NULL), RF_ERR_INVALID_ARG, "dout is NULL");
    TH_FAILS(rf_lsh_attention_backward(&dq, &dv, &g, &st, NULL, &v, NULL), RF_ERR_INVALID_ARG, "qk is NULL");
    TH_FAILS(rf_lsh_attention_backward(&dq, &dv, &g, &st, &qk, NULL, NULL), RF_ERR_INVALID_ARG, "v is NULL");
    TH_FAILS(rf_lsh_attention_backward(&dq, &dv, &g, NULL, &qk, &v, NULL), RF_ERR_INVALID_ARG, "not initialised");
    TH_FAILS(rf_lsh_attention_backward(&dq, &dv, &wrong, &st, &qk, &v, NULL), RF_ERR_INVALID_ARG,
             "dout has shape [1, 64, 16], expected [1, 64, 32]");
    TH_FAILS(rf_lsh_attention_backward(&dq, &wrong, &g, &st, &qk, &v, NULL), RF_ERR_INVALID_ARG,
             "dv has shape [1, 64, 16], expected [1, 64, 32]");
    TH_FAILS(rf_lsh_attention_backward(&dq, &dv, &g, &st, &qk, &v, &mask_f), RF_ERR_INVALID_ARG,
             "mask has dtype f32, expected i32");
    TH_OK(rf_lsh_attention_backward(&dq, &dv, &g, &st, &qk, &v, NULL));
    rf_lsh_state_free(&st);
    /* HF's float32 semantics are for inference only */
    rf_lsh_config hf = cfg;
    hf.hf_rounding = true;
    TH_OK(rf_lsh_state_init(&st, cpu, &hf, 1, 64));
    TH_OK(rf_lsh_attention_forward(&out, &st, &qk, &v, NULL, NULL, &hf));
    TH_FAILS(rf_lsh_attention_backward(&dq, &dv, &g, &st, &qk, &v, NULL), RF_ERR_UNSUPPORTED, "hf_rounding");
    rf_lsh_state_free(&st);
    rf_tensor *ts[] = {&qk, &v, &out, &g, &dq, &dv, &wrong, &mask_f};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) rf_tensor_free(ts[i]);
    rf_device_close(cpu);
}

/* ---- attention dropout (§2) ---------------------------------------------- */

/* The output of §5 with dropout, computed directly from the state's perm (the
 * sort is checked elsewhere): per sorted query i of (b, h) the window of
 * chunk c−1 then c (or the single chunk), p = softmax of the masked logits,
 * o_i = Σ_j keep_ij·p_ij·v_j/(1 − dropout) with keep_ij from word
 * ((b·H + h)·N + i)·W + j, lse undropped; the rounds combined by softmax of
 * their lse. Also returns the fraction of kept probabilities. */
static double naive_dropout_lsh(float *out, const int32_t *perm, const float *qk, const float *v, const int32_t *mask,
                                const point *p, const rf_lsh_config *cfg, int R) {
    const int64_t L = p->L, N = (int64_t)R * L, m = L <= p->m ? L : p->m, nc = N / m, W = nc > 1 ? 2 * m : m;
    const int H = p->H, d = p->d;
    const size_t row = (size_t)H * d;
    const rf_dropout_threshold thr = rf_philox_dropout_threshold(cfg->dropout);
    const double scale = 1.0f / (1.0f - cfg->dropout);
    double *o = malloc((size_t)N * d * sizeof *o), *lse = malloc((size_t)N * sizeof *lse);
    double *s = malloc((size_t)W * sizeof *s);
    int64_t *kp = malloc((size_t)W * sizeof *kp);
    size_t kept = 0, total = 0;
    for (int64_t b = 0; b < p->B; b++)
        for (int h = 0; h < H; h++) {
            const int32_t *P = perm + (b * H + h) * N;
            for (int64_t i = 0; i < N; i++) {
                const int64_t c = i / m, qpos = P[i] % L;
                const float *q = qk + (b * L + qpos) * row + h * d;
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j < W; j++) {
                    const int64_t slot = nc > 1 ? (j < m ? ((c + nc - 1) % nc) * m + j : c * m + j - m) : c * m + j;
                    kp[j] = P[slot] % L;
                    const float *k = qk + (b * L + kp[j]) * row + h * d;
                    double ss = 0, dot = 0;
                    for (int e = 0; e < d; e++) ss += (double)k[e] * k[e], dot += (double)q[e] * k[e];
                    dot /= sqrt(ss / d + 1e-6) * sqrt((double)d);
                    if ((p->causal && kp[j] > qpos) || (mask && !mask[b * L + kp[j]])) dot = -1e9;
                    if (kp[j] == qpos) dot = -1e5;
                    s[j] = dot, mx = fmax(mx, dot);
                }
                for (int64_t j = 0; j < W; j++) sum += exp(s[j] - mx);
                lse[i] = mx + log(sum);
                for (int e = 0; e < d; e++) o[i * d + e] = 0;
                for (int64_t j = 0; j < W; j++) {
                    uint64_t word = (uint64_t)((b * H + h) * N + i) * (uint64_t)W + (uint64_t)j;
                    uint32_t lanes[4]; /* word w is lane w % 4 of block w / 4 */
                    rf_philox_words(lanes, 4, cfg->seed, cfg->dropout_stream, cfg->step, word / 4);
                    const int keep = rf_philox_keep(lanes[word % 4], thr);
                    kept += keep, total++;
                    if (!keep) continue;
                    const double pj = exp(s[j] - lse[i]) * scale;
                    for (int e = 0; e < d; e++) o[i * d + e] += pj * v[(b * L + kp[j]) * row + h * d + e];
                }
            }
            for (int64_t t = 0; t < L; t++) { /* §5.6: rounds by softmax of lse */
                int64_t slots[16];
                double mx = -INFINITY, sum = 0;
                for (int r = 0; r < R; r++) {
                    for (int64_t i = 0; i < N; i++)
                        if (P[i] == r * L + t) slots[r] = i;
                    mx = fmax(mx, lse[slots[r]]);
                }
                for (int r = 0; r < R; r++) sum += exp(lse[slots[r]] - mx);
                for (int e = 0; e < d; e++) {
                    double acc = 0;
                    for (int r = 0; r < R; r++) acc += exp(lse[slots[r]] - mx) / sum * o[slots[r] * d + e];
                    out[(b * L + t) * row + h * d + e] = (float)acc;
                }
            }
        }
    free(o), free(lse), free(s), free(kp);
    return (double)kept / (double)total;
}

static void dropout_forward_matches_naive(void **state) {
    rf_device *cpu = th_cpu();
    static const point pts[] = {
        {.B = 2, .L = 128, .H = 2, .d = 16, .m = 16, .R = 3, .nb = 4, .causal = true, .masked = true, .dropout = 0.3f},
        {.B = 1, .L = 64, .H = 2, .d = 16, .m = 32, .R = 2, .nb = 4, .causal = false, .dropout = 0.5f}, /* two chunks */
        {.B = 2, .L = 40, .H = 1, .d = 16, .m = 64, .R = 2, .causal = true, .masked = true, .dropout = 0.2f}, /* L ≤ m */
    };
    for (size_t k = 0; k < sizeof pts / sizeof pts[0]; k++) {
        const point *p = &pts[k];
        const int64_t D = (int64_t)p->H * p->d;
        const size_t n = row_elems(p);
        float *qk = th_random(n, 71 + k, 1.5f), *v = th_random(n, 72 + k, 1.0f), *want = malloc(n * 4);
        int32_t *maskh = p->masked ? make_mask(p) : NULL;
        rf_lsh_config cfg = config_of(p), plain = cfg;
        plain.dropout = 0.0f;
        rf_lsh_state st;
        TH_OK(rf_lsh_state_init(&st, cpu, &cfg, p->B, p->L));
        rf_tensor tq = TH_TENSOR(cpu, RF_F32, qk, p->B, p->L, D), tv = TH_TENSOR(cpu, RF_F32, v, p->B, p->L, D);
        rf_tensor to = TH_TENSOR(cpu, RF_F32, NULL, p->B, p->L, D), tm = {0};
        if (maskh) tm = TH_TENSOR(cpu, RF_I32, maskh, p->B, p->L);
        const rf_tensor *mk = maskh ? &tm : NULL;
        TH_OK(rf_lsh_attention_forward(&to, &st, &tq, &tv, mk, NULL, &cfg));
        float *got = th_download_f32(&to), *lse_drop = th_download_f32(&st.lse_sorted);
        int32_t *perm = th_download_i32(&st.perm);
        double kept = naive_dropout_lsh(want, perm, qk, v, maskh, p, &cfg, st.n_rounds);
        th_assert_close(got, want, n, 1e-4, "dropout forward, cpu vs naive");
        if (fabs(kept - (1.0 - p->dropout)) > 0.03)
            fail_msg("kept %.3f of the probabilities, expected about %.3f", kept, 1.0 - p->dropout);
        /* lse is the undropped logsumexp: the same as without dropout */
        TH_OK(rf_lsh_attention_forward(&to, &st, &tq, &tv, mk, NULL, &plain));
        float *lse_plain = th_download_f32(&st.lse_sorted);
        th_assert_close(lse_drop, lse_plain, rf_tensor_numel(&st.lse_sorted), 0.0, "lse with dropout = without");
        free(qk), free(v), free(want), free(maskh), free(got), free(lse_drop), free(lse_plain), free(perm);
        rf_lsh_state_free(&st);
        rf_tensor_free(&tq), rf_tensor_free(&tv), rf_tensor_free(&to);
        if (maskh) rf_tensor_free(&tm);
    }
    rf_device_close(cpu);
}

static void dropout_backward_matches_finite_differences(void **state) {
    rf_device *cpu = th_cpu();
    for (int r = 1; r <= 2; r++)
        for (int causal = 0; causal < 2; causal++) {
            point p = {.B = 2, .L = 32, .H = 2, .d = 8, .m = 8, .R = r, .nb = 4, .causal = causal, .masked = causal,
                       .dropout = 0.3f};
            fd_point(cpu, &p);
        }
    point p = {.B = 2, .L = 16, .H = 2, .d = 8, .m = 16, .R = 2, .causal = true, .masked = true, .dropout = 0.4f};
    fd_point(cpu, &p); /* §5.7: L ≤ m */
    rf_device_close(cpu);
}

static void dropout_rejects_bad_settings(void **state) {
    rf_device *cpu = th_cpu();
    rf_lsh_config cfg = {.n_heads = 2, .head_dim = 16, .n_hashes = 2, .n_buckets = 4, .chunk_len = 16}, bad;
    rf_lsh_state st;
    bad = cfg, bad.dropout = 1.0f;
    TH_FAILS(rf_lsh_state_init(&st, cpu, &bad, 1, 64), RF_ERR_INVALID_ARG, "dropout = 1 must lie in [0, 1)");
    bad = cfg, bad.dropout = -0.1f;
    TH_FAILS(rf_lsh_state_init(&st, cpu, &bad, 1, 64), RF_ERR_INVALID_ARG, "must lie in [0, 1)");
    bad = cfg, bad.dropout = NAN;
    TH_FAILS(rf_lsh_state_init(&st, cpu, &bad, 1, 64), RF_ERR_INVALID_ARG, "must lie in [0, 1)");
    bad = cfg, bad.dropout = 0.1f, bad.hf_rounding = true;
    TH_FAILS(rf_lsh_state_init(&st, cpu, &bad, 1, 64), RF_ERR_UNSUPPORTED, "hf_rounding");
    /* a forward call's config is checked too, against an hf_rounding state */
    rf_tensor qk = TH_TENSOR(cpu, RF_F32, NULL, 1, 64, 32), v = TH_TENSOR(cpu, RF_F32, NULL, 1, 64, 32);
    rf_tensor out = TH_TENSOR(cpu, RF_F32, NULL, 1, 64, 32);
    TH_OK(rf_tensor_fill_f32(&qk, 0.5f));
    TH_OK(rf_tensor_fill_f32(&v, 0.5f));
    rf_lsh_config hf = cfg;
    hf.hf_rounding = true;
    TH_OK(rf_lsh_state_init(&st, cpu, &hf, 1, 64));
    bad = cfg, bad.dropout = 0.1f;
    TH_FAILS(rf_lsh_attention_forward(&out, &st, &qk, &v, NULL, NULL, &bad), RF_ERR_UNSUPPORTED, "hf_rounding");
    bad = cfg, bad.dropout = 1.5f;
    TH_FAILS(rf_lsh_attention_forward(&out, &st, &qk, &v, NULL, NULL, &bad), RF_ERR_INVALID_ARG, "must lie in [0, 1)");
    rf_lsh_state_free(&st);
    rf_tensor_free(&qk), rf_tensor_free(&v), rf_tensor_free(&out);
    rf_device_close(cpu);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rejects_bad_arguments),
        cmocka_unit_test(automatic_bucket_count),
        cmocka_unit_test(hashing_follows_the_hf_layout),
        cmocka_unit_test(short_sequence_equals_full_attention),
        cmocka_unit_test(identical_rotation_sets_equal_one),
        cmocka_unit_test(causal_outputs_ignore_the_future),
        cmocka_unit_test(padding_mask),
        cmocka_unit_test(opencl_matches_cpu_stage_by_stage),
        cmocka_unit_test(backward_rejects_bad_arguments),
        cmocka_unit_test(backward_matches_finite_differences),
        cmocka_unit_test(short_sequence_backward_equals_full_attention),
        cmocka_unit_test(backward_opencl_matches_cpu),
        cmocka_unit_test(dropout_forward_matches_naive),
        cmocka_unit_test(dropout_backward_matches_finite_differences),
        cmocka_unit_test(dropout_rejects_bad_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
