/* Shared by tests/test_local_attention.c and tests/test_full_attention.c:
 * a naive reference of §6 (explicit L×L score matrix, double), a
 * central-finite-difference gradient check, and the OpenCL-vs-cpu runner.
 * Header-only (static inline) because each test file is its own program. */
#ifndef RF_TEST_ATTENTION_REF_H
#define RF_TEST_ATTENTION_REF_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "harness.h"
#include "core/philox.h"

typedef rf_status (*attn_forward_fn)(rf_tensor *, rf_tensor *, const rf_tensor *, const rf_tensor *,
                                     const rf_tensor *, const rf_tensor *, const rf_attention_config *);
typedef rf_status (*attn_backward_fn)(rf_tensor *, rf_tensor *, rf_tensor *, const rf_tensor *, const rf_tensor *,
                                      const rf_tensor *, const rf_tensor *, const rf_tensor *, const rf_tensor *,
                                      const rf_tensor *, const rf_attention_config *);

typedef struct attn_case {
    int B, L;
    rf_attention_config cfg;
    bool local;   /* local attention (else full) */
    bool padded;  /* with a padding mask */
} attn_case;

/* c with probability dropout p on (§2), from Philox stream (seed, 1, step). */
static inline attn_case attn_dropout(attn_case c, float p, uint64_t seed, uint32_t step) {
    c.cfg.dropout = p, c.cfg.seed = seed, c.cfg.stream = 1, c.cfg.step = step;
    return c;
}

static inline size_t attn_numel(const attn_case *c) {
    return (size_t)c->B * (size_t)c->L * (size_t)c->cfg.n_heads * (size_t)c->cfg.head_dim;
}

/* A padding mask: batch item b has its last 2·b + 1 positions padded (and
 * for B = 1, positions 0 and L−1, so a causal query sees only padding). */
static inline int32_t *attn_mask(const attn_case *c) {
    int32_t *m = malloc((size_t)c->B * (size_t)c->L * sizeof *m);
    assert_non_null(m);
    for (int b = 0; b < c->B; b++)
        for (int j = 0; j < c->L; j++) m[b * c->L + j] = j < c->L - (2 * b + 1);
    if (c->B == 1) m[0] = 0;
    return m;
}

/* §6 from the definition: for each (b, h) the full L×L logit matrix,
 * each key counted as many times as it appears in the query's window (the
 * HF model concatenates chunks c−before … c+after, cyclically, so with few
 * chunks a chunk can appear twice), masks replacing logits (§5.4). With
 * dropout, each appearance's probability is kept or not by its own Philox
 * word — window key jw = (slot + before)·chunk + offset of query i uses word
 * ((b·H + h)·L + i)·W + jw (include/reformer/ops.h) — and kept ones scaled by
 * 1/(1−p): wgt[j] sums those factors over key j's appearances (= its
 * multiplicity without dropout). */
static inline void attn_naive(const attn_case *c, const float *q, const float *k, const float *v,
                              const int32_t *mask, double *out, double *lse) {
    int L = c->L, H = c->cfg.n_heads, d = c->cfg.head_dim;
    int chunk = c->local && L > c->cfg.chunk_len ? c->cfg.chunk_len : L;
    int nc = L / chunk, before = chunk < L ? c->cfg.chunks_before : 0, after = chunk < L ? c->cfg.chunks_after : 0;
    double *s = malloc((size_t)L * sizeof *s), *kr = malloc((size_t)d * sizeof *kr);
    int *mult = malloc((size_t)L * sizeof *mult);
    double *wgt = malloc((size_t)L * sizeof *wgt);
    assert_true(s && kr && mult && wgt);
    float p = c->cfg.dropout, keep_scale = 1.0f / (1.0f - p);
    uint64_t W = (uint64_t)(before + 1 + after) * (uint64_t)chunk;
    rf_dropout_threshold thr = rf_philox_dropout_threshold(p);
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < L; i++) {
                const float *qi = q + (((size_t)b * L + i) * H + h) * d;
                double mx = -HUGE_VAL;
                for (int j = 0; j < L; j++) {
                    mult[j] = 0;
                    for (int sl = -before; sl <= after; sl++) mult[j] += ((i / chunk + sl) % nc + nc) % nc == j / chunk;
                    const float *x = (c->cfg.shared_qk ? q : k) + (((size_t)b * L + j) * H + h) * d;
                    double ms = 0;
                    for (int e = 0; e < d; e++) ms += (double)x[e] * x[e];
                    /* §5.2 normalised keys, or §6's k/√d. */
                    double f = c->cfg.shared_qk ? 1.0 / sqrt(ms / d + 1e-6) / sqrt((double)d) : 1.0 / sqrt((double)d);
                    for (int e = 0; e < d; e++) kr[e] = x[e] * f;
                    double dot = 0;
                    for (int e = 0; e < d; e++) dot += qi[e] * kr[e];
                    if ((mask && !mask[b * L + j]) || (c->cfg.causal && j > i)) dot = -1e9;
                    if (c->cfg.shared_qk && j == i) dot = -1e5;
                    s[j] = dot;
                    if (mult[j] && dot > mx) mx = dot;
                }
                double sum = 0;
                for (int j = 0; j < L; j++) sum += mult[j] * exp(s[j] - mx);
                double l = mx + log(sum);
                lse[((size_t)b * H + h) * L + i] = l;
                for (int j = 0; j < L; j++) wgt[j] = p > 0 ? 0.0 : mult[j];
                for (int sl = -before; p > 0 && sl <= after; sl++)
                    for (int jj = 0; jj < chunk; jj++) {
                        int j = ((i / chunk + sl) % nc + nc) % nc * chunk + jj;
                        uint64_t word = (((uint64_t)b * H + h) * L + i) * W + (uint64_t)((sl + before) * chunk + jj);
                        uint32_t x = rf_philox_word(c->cfg.seed, c->cfg.stream, c->cfg.step, word);
                        wgt[j] += rf_philox_keep(x, thr) ? keep_scale : 0.0;
                    }
                for (int e = 0; e < d; e++) {
                    double acc = 0;
                    for (int j = 0; j < L; j++)
                        if (mult[j]) acc += wgt[j] * exp(s[j] - l) * v[(((size_t)b * L + j) * H + h) * d + e];
                    out[(((size_t)b * L + i) * H + h) * d + e] = acc;
                }
            }
    free(s), free(kr), free(mult), free(wgt);
}

/* Run the op's forward on `dev` from host data; out and lse to host. */
static inline void attn_run_forward(rf_device *dev, attn_forward_fn fwd, const attn_case *c, const float *q,
                                    const float *k, const float *v, const int32_t *mask, float *out, float *lse) {
    int64_t B = c->B, L = c->L, HD = (int64_t)c->cfg.n_heads * c->cfg.head_dim;
    rf_tensor tq = TH_TENSOR(dev, RF_F32, q, B, L, HD), tk = TH_TENSOR(dev, RF_F32, k, B, L, HD);
    rf_tensor tv = TH_TENSOR(dev, RF_F32, v, B, L, HD), tm = TH_TENSOR(dev, RF_I32, mask, B, L);
    rf_tensor to = TH_TENSOR(dev, RF_F32, NULL, B, L, HD), tl = TH_TENSOR(dev, RF_F32, NULL, B, c->cfg.n_heads, L);
    TH_OK(fwd(&to, lse ? &tl : NULL, &tq, c->cfg.shared_qk ? NULL : &tk, &tv, mask ? &tm : NULL, &c->cfg));
    TH_OK(rf_tensor_download(&to, out, attn_numel(c) * sizeof(float)));
    if (lse) TH_OK(rf_tensor_download(&tl, lse, (size_t)(B * L * c->cfg.n_heads) * sizeof(float)));
    rf_tensor_free(&tq), rf_tensor_free(&tk), rf_tensor_free(&tv), rf_tensor_free(&tm), rf_tensor_free(&to),
        rf_tensor_free(&tl);
}

/* Causality on `dev`: outputs at positions ≤ t must not change (bit for bit)
 * when q, k and v after t do; `what` names the case in a failure. */
static inline void attn_check_causal(rf_device *dev, attn_forward_fn fwd, const attn_case *c, size_t t,
                                     const char *what) {
    size_t n = attn_numel(c), row = (size_t)c->cfg.n_heads * c->cfg.head_dim;
    float *q = th_random(n, 61, 1.5f), *k = th_random(n, 62, 1.5f), *v = th_random(n, 63, 1.0f);
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    attn_run_forward(dev, fwd, c, q, k, v, NULL, a, NULL);
    for (int bb = 0; bb < c->B; bb++)
        for (size_t i = ((size_t)bb * c->L + t + 1) * row; i < (size_t)(bb + 1) * c->L * row; i++)
            q[i] += 3.0f, k[i] -= 2.0f, v[i] *= -4.0f;
    attn_run_forward(dev, fwd, c, q, k, v, NULL, b, NULL);
    for (int bb = 0; bb < c->B; bb++)
        for (size_t i = (size_t)bb * c->L * row; i < ((size_t)bb * c->L + t + 1) * row; i++)
            if (a[i] != b[i])
                fail_msg("%s: output %zu (position ≤ %zu) changed: %g → %g", what, i, t, a[i], b[i]);
    free(q), free(k), free(v), free(a), free(b);
}

/* The cpu forward of each case against attn_naive (double), out and lse
 * within 1e-5 (§10); `what` names the op in failure messages. */
static inline void attn_check_naive(rf_device *cpu, attn_forward_fn fwd, const attn_case *cases, size_t ncases,
                                    const char *what) {
    for (size_t ci = 0; ci < ncases; ci++) {
        const attn_case *c = &cases[ci];
        size_t n = attn_numel(c), nl = (size_t)c->B * c->L * c->cfg.n_heads;
        float *q = th_random(n, 10 + ci, 2.0f), *k = th_random(n, 20 + ci, 2.0f), *v = th_random(n, 30 + ci, 1.0f);
        int32_t *mask = c->padded ? attn_mask(c) : NULL;
        float *out = malloc(n * sizeof *out), *lse = malloc(nl * sizeof *lse);
        float *want = malloc(n * sizeof *want), *want_lse = malloc(nl * sizeof *want_lse);
        double *wd = malloc(n * sizeof *wd), *wl = malloc(nl * sizeof *wl);
        attn_run_forward(cpu, fwd, c, q, k, v, mask, out, lse);
        attn_naive(c, q, k, v, mask, wd, wl);
        for (size_t i = 0; i < n; i++) want[i] = (float)wd[i];
        for (size_t i = 0; i < nl; i++) want_lse[i] = (float)wl[i];
        char label[96];
        snprintf(label, sizeof label, "%s out (cpu) vs naive", what);
        th_assert_close(out, want, n, 1e-5, label);
        snprintf(label, sizeof label, "%s lse (cpu) vs naive", what);
        th_assert_close(lse, want_lse, nl, 1e-5, label);
        free(q), free(k), free(v), free(mask), free(out), free(lse), free(want), free(want_lse), free(wd), free(wl);
    }
}

/* Σ out·w in double: the scalar the finite differences differentiate. */
static inline double attn_loss(rf_device *cpu, attn_forward_fn fwd, const attn_case *c, const float *q,
                               const float *k, const float *v, const int32_t *mask, const float *w, float *scratch) {
    attn_run_forward(cpu, fwd, c, q, k, v, mask, scratch, NULL);
    double s = 0;
    for (size_t i = 0; i < attn_numel(c); i++) s += (double)scratch[i] * w[i];
    return s;
}

/* The cpu backward (dout = w) against central differences of Σ out·w for
 * every element of q, k, v: §10, ≤ 1e-2 relative to the largest
 * gradient of each group. */
static inline void attn_check_fd(attn_forward_fn fwd, attn_backward_fn bwd, const attn_case *c, uint64_t seed) {
    rf_device *cpu = th_cpu();
    size_t n = attn_numel(c);
    int64_t B = c->B, L = c->L, HD = (int64_t)c->cfg.n_heads * c->cfg.head_dim;
    float *x[3] = {th_random(n, seed, 1.5f), th_random(n, seed + 1, 1.5f), th_random(n, seed + 2, 1.0f)};
    float *w = th_random(n, seed + 3, 1.0f), *scratch = malloc(n * sizeof *scratch);
    int32_t *mask = c->padded ? attn_mask(c) : NULL;
    rf_tensor tq = TH_TENSOR(cpu, RF_F32, x[0], B, L, HD), tk = TH_TENSOR(cpu, RF_F32, x[1], B, L, HD);
    rf_tensor tv = TH_TENSOR(cpu, RF_F32, x[2], B, L, HD), tm = TH_TENSOR(cpu, RF_I32, mask, B, L);
    rf_tensor tw = TH_TENSOR(cpu, RF_F32, w, B, L, HD), to = TH_TENSOR(cpu, RF_F32, NULL, B, L, HD);
    rf_tensor tl = TH_TENSOR(cpu, RF_F32, NULL, B, c->cfg.n_heads, L);
    rf_tensor g[3] = {TH_TENSOR(cpu, RF_F32, NULL, B, L, HD), TH_TENSOR(cpu, RF_F32, NULL, B, L, HD),
                      TH_TENSOR(cpu, RF_F32, NULL, B, L, HD)};
    bool shared = c->cfg.shared_qk;
    const rf_tensor *kk = shared ? NULL : &tk, *mm = mask ? &tm : NULL;
    TH_OK(fwd(&to, &tl, &tq, kk, &tv, mm, &c->cfg));
    TH_OK(bwd(&g[0], shared ? NULL : &g[1], &g[2], &tw, &to, &tl, &tq, kk, &tv, mm, &c->cfg));
    const char *names[3] = {"dq", "dk", "dv"};
    const float eps = 1e-2f;
    for (int t = 0; t < 3; t++) {
        if (shared && t == 1) continue;
        float *an = th_download_f32(&g[t]), *fd = malloc(n * sizeof *fd);
        for (size_t i = 0; i < n; i++) {
            float keep = x[t][i];
            x[t][i] = keep + eps;
            double up = attn_loss(cpu, fwd, c, x[0], x[1], x[2], mask, w, scratch);
            x[t][i] = keep - eps;
            double down = attn_loss(cpu, fwd, c, x[0], x[1], x[2], mask, w, scratch);
            x[t][i] = keep;
            fd[i] = (float)((up - down) / (2.0 * eps));
        }
        char label[64];
        snprintf(label, sizeof label, "%s vs central differences", names[t]);
        th_assert_fd(an, fd, n, 1e-2, label);
        free(an), free(fd);
    }
    for (int t = 0; t < 3; t++) free(x[t]), rf_tensor_free(&g[t]);
    free(w), free(scratch), free(mask);
    rf_tensor_free(&tq), rf_tensor_free(&tk), rf_tensor_free(&tv), rf_tensor_free(&tm), rf_tensor_free(&tw),
        rf_tensor_free(&to), rf_tensor_free(&tl);
    rf_device_close(cpu);
}

/* The op on OpenCL against the cpu op, forward (out, lse: ≤ 1e-4) and
 * backward (dq, dk, dv: ≤ 1e-3), every output sentinel-guarded; in the
 * kernel shape RF_CL_ATTN names (the device's own when unset). */
static inline void attn_check_opencl(rf_device *cl, rf_device *cpu, attn_forward_fn fwd, attn_backward_fn bwd,
                                     const attn_case *c, uint64_t seed) {
    size_t n = attn_numel(c);
    int64_t B = c->B, L = c->L, H = c->cfg.n_heads, HD = H * c->cfg.head_dim;
    float *q = th_random(n, seed, 1.5f), *k = th_random(n, seed + 1, 1.5f), *v = th_random(n, seed + 2, 1.0f);
    float *go = th_random(n, seed + 3, 1.0f);
    int32_t *mask = c->padded ? attn_mask(c) : NULL;
    bool shared = c->cfg.shared_qk;
    char what[160];
    const char *shape = getenv("RF_CL_ATTN");
    snprintf(what, sizeof what, "%s B%lld L%lld H%lld d%d chunk%d(%d,%d)%s%s%s dropout %g, %s shape",
             c->local ? "local" : "full", (long long)B, (long long)L, (long long)H, c->cfg.head_dim, c->cfg.chunk_len,
             c->cfg.chunks_before, c->cfg.chunks_after, c->cfg.causal ? " causal" : "", c->padded ? " padded" : "",
             shared ? " shared-qk" : "", (double)c->cfg.dropout, shape ? shape : "device's");
    rf_device *devs[2] = {cpu, cl};
    float *res[2][5] = {{0}};
    for (int di = 0; di < 2; di++) {
        rf_device *dev = devs[di];
        /* Inputs too are views at a non-zero offset, so the kernels' offsets are exercised. */
        th_guarded in[5];
        const void *src[5] = {q, k, v, go, mask};
        for (int t = 0; t < 5; t++) {
            in[t] = t == 4 ? th_guarded_alloc(dev, RF_I32, 2, (int64_t[]){B, L})
                           : th_guarded_alloc(dev, RF_F32, 3, (int64_t[]){B, L, HD});
            if (src[t]) TH_OK(rf_tensor_upload(&in[t].t, src[t], rf_tensor_numel(&in[t].t) * 4));
        }
        rf_tensor tq = in[0].t, tk = in[1].t, tv = in[2].t, tg = in[3].t, tm = in[4].t;
        th_guarded out[5];
        for (int t = 0; t < 5; t++)
            out[t] = t == 1 ? th_guarded_alloc(dev, RF_F32, 3, (int64_t[]){B, H, L})
                            : th_guarded_alloc(dev, RF_F32, 3, (int64_t[]){B, L, HD});
        const rf_tensor *kk = shared ? NULL : &tk, *mm = mask ? &tm : NULL;
        TH_OK(fwd(&out[0].t, &out[1].t, &tq, kk, &tv, mm, &c->cfg));
        TH_OK(bwd(&out[2].t, shared ? NULL : &out[3].t, &out[4].t, &tg, &out[0].t, &out[1].t, &tq, kk, &tv, mm,
                  &c->cfg));
        for (int t = 0; t < 5; t++) {
            if (shared && t == 3) continue;
            res[di][t] = th_download_f32(&out[t].t);
            if (di == 1) th_guard_check(&out[t], what);
        }
        for (int t = 0; t < 5; t++) th_guarded_free(&out[t]), th_guarded_free(&in[t]);
    }
    const char *names[5] = {"out", "lse", "dq", "dk", "dv"};
    for (int t = 0; t < 5; t++) {
        if (!res[0][t]) continue;
        char msg[200];
        snprintf(msg, sizeof msg, "%s: %s opencl vs cpu", what, names[t]);
        size_t nt = t == 1 ? (size_t)(B * H * L) : n;
        if (t < 2) th_assert_close(res[1][t], res[0][t], nt, 1e-4, msg);
        else th_assert_close_grad(res[1][t], res[0][t], nt, 1e-3, msg);
        free(res[0][t]), free(res[1][t]);
    }
    free(q), free(k), free(v), free(go), free(mask);
}

#endif
