/* Internal: the small dense products the cpu attention ops are built from
 * (§5, §6 as blocks). An attention op cuts its work into blocks of a few
 * dozen query rows against the window of keys they share, so each block's
 * operands — and its [rows × window] score block — stay in cache and no
 * score tensor over the whole sequence exists. Each product is one
 * cblas_sgemm: OpenBLAS runs single-threaded inside the calling OpenMP
 * thread (gemm.c), with its vectorised kernels. Accumulation is in float: a
 * block sums at most a window of terms, well within SPEC §10's tolerances. */
#ifndef RF_CPU_BLOCK_H
#define RF_CPU_BLOCK_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <cblas.h>
#include "device/attention_common.h"

/* c = op(a)·op(b): c [m × n], op(a) [m × k], op(b) [k × n], every block
 * row-major with its rows ld_ floats apart; op(x) = xᵀ when trans_x (a
 * stored [k × m], b stored [n × k]). A block can be rows of a [B, L, H·d]
 * tensor in place (ld = H·d). */
static inline void rf_cpu_block_mm_ld(float *c, int64_t ldc, const float *a, int64_t lda, bool trans_a, const float *b,
                                      int64_t ldb, bool trans_b, int64_t m, int64_t n, int64_t k) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (blasint)m,
                (blasint)n, (blasint)k, 1.0f, a, (blasint)lda, b, (blasint)ldb, 0.0f, c, (blasint)ldc);
}

/* rf_cpu_block_mm_ld on contiguous blocks. */
static inline void rf_cpu_block_mm(float *c, const float *a, bool trans_a, const float *b, bool trans_b, int64_t m,
                                   int64_t n, int64_t k) {
    rf_cpu_block_mm_ld(c, n, a, trans_a ? m : k, trans_a, b, trans_b ? k : n, trans_b, m, n, k);
}

/* exp(x) for the softmax of a block, x = logit − max (or − lse): ≤ 0 but
 * for rounding. glibc's expf is a call per element (no vector form without
 * -ffast-math), and a masked logit (−1e9, §5.4) sends it down its slow
 * underflow path; together a third of an attention block's time. This is
 * Cephes' expf — x = n·ln2 + r, |r| ≤ ln2/2, exp(r) by a degree-7
 * polynomial, 2ⁿ built in the exponent bits — with selects only, so an
 * `omp simd` loop of it vectorises. Measured against glibc's expf over
 * every float in [−87, 2]: relative error ≤ 1.2e-7 (an ulp of 1). Below −87,
 * where expf < 1.7e-38 (the edge of the subnormals), it returns 0. */
static inline float rf_cpu_block_exp(float x) {
    const float keep = x < -87.0f ? 0.0f : 1.0f;
    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x; /* n stays a normal exponent */
    /* n = round(x/ln2) by the 1.5·2²³ trick: valid for |x/ln2| < 2²² */
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f; /* ln2 in two parts, exact products */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const uint32_t bits = (uint32_t)((int32_t)n + 127) << 23; /* 2ⁿ */
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    return keep * p * two_n;
}

/* The element-wise passes over a score block below are the blocks' own
 * work besides the products, and cost as much as them when compiled for the
 * baseline x86-64 (SSE2): each is compiled again for AVX2+FMA and for
 * AVX-512 (x86-64-v3, -v4) and the loader picks the widest the CPU has
 * (gcc's target_clones; a CPU without them, or a debugger such as valgrind
 * that hides AVX-512, gets the one it can run). The code is the same C for
 * every version, and -ffp-contract is off (ISO C11), so every version gives
 * the same bits. They are out of line (block.c), since an `omp simd`
 * reduction inlined into an attention op's loops is not vectorised by gcc. */
#if defined(__x86_64__) && defined(__GNUC__) && defined(__GLIBC__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define RF_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
#endif
#ifndef RF_CPU_CLONES
#define RF_CPU_CLONES
#endif

/* Rows i < m of an [m × n] score block s against keys kpos[0 … n−1]: each
 * score times `scale`, then the masks of §5.4 with rf_attn_masked_logit's
 * rules — a key that is padding (!key_ok) or, when causal, later than the
 * query qpos[i] gets −1e9; with self_mask the query's own position gets
 * −1e5 — as selects over the row, which vectorise (a call per pair, with
 * its branches, was most of the blocks' own scalar time in perf);
 * positions are int32 for 32-bit vector compares (the LSH permutation
 * holds int32 positions already, §4, and the local front door keeps
 * len ≤ INT32_MAX / 2). masked[i·n + j]: whether s was replaced (no
 * gradient flows to it). */
void rf_cpu_block_mask(float *s, unsigned char *masked, int64_t m, int64_t n, float scale, const int32_t *qpos,
                       const int32_t *kpos, const unsigned char *key_ok, bool causal, bool self_mask);

/* The softmax's shift and exponentials of rows i < m of an [m × n] block:
 * mx[i] = max_j s[i·n + j], then s ← exp(s − mx[i]); sum[i] = Σ_j of them,
 * summed in double. */
void rf_cpu_block_exp_rows(float *s, int64_t m, int64_t n, float *mx, double *sum);

/* The LSH backward's softmax gradient (§5.6) of rows i < m of an [m × n]
 * block of masked logits s, from the forward's lse[i] (its own
 * normaliser) and c[i] = w_i·dout·out: p = exp(s − lse[i]); pd holds the
 * dropout factors D and becomes D·p (for dv); dp holds g_i·v_j and becomes
 * ds = p·(D·dp − c[i]), 0 where a mask replaced the logit (a constant).
 * lse is a float: for a query that sees only copies of itself (two at a
 * round boundary) lse ≈ −1e5, where float steps are 2⁻⁷, so p there is off
 * by up to 0.4% (as on every device). */
void rf_cpu_block_lsh_grad(float *dp, float *pd, const float *s, const unsigned char *masked, int64_t m, int64_t n,
                           const float *lse, const double *c);

/* Row i < m of an [m × n] block times f[i]. */
void rf_cpu_block_scale_rows(float *s, int64_t m, int64_t n, const float *f);

#endif
