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
#include <cblas.h>
#include "device/attention_common.h"

/* c = op(a)·op(b): c [m × n], op(a) [m × k], op(b) [k × n], every block
 * row-major and contiguous; op(x) = xᵀ when trans_x (a stored [k × m], b
 * stored [n × k]). */
static inline void rf_cpu_block_mm(float *c, const float *a, bool trans_a, const float *b, bool trans_b, int64_t m,
                                   int64_t n, int64_t k) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (blasint)m,
                (blasint)n, (blasint)k, 1.0f, a, (blasint)(trans_a ? m : k), b, (blasint)(trans_b ? k : n), 0.0f, c,
                (blasint)n);
}

/* expf of a max-shifted logit. A masked logit (−1e9, §5.4) shifts far below
 * −104, where expf's result rounds to 0 but glibc takes its slow underflow
 * path (it sets errno) — once per masked pair of every block, a measurable
 * share of the attention's time. Returns that same 0 directly. */
static inline float rf_cpu_block_exp(float x) { return x < -104.0f ? 0.0f : expf(x); }

/* Row qpos of a score block over keys kpos[0 … n−1]: the masks of §5.4 with
 * rf_attn_masked_logit's rules — a key that is padding (!key_ok) or, when
 * causal, later than the query gets −1e9; with self_mask the query's own
 * position gets −1e5 — as selects over the row, which the compiler
 * vectorises (one call per pair was a tenth of the attention's time).
 * masked[j]: whether s[j] was replaced (no gradient flows to it). */
static inline void rf_cpu_block_mask_row(float *s, unsigned char *masked, int64_t qpos, const int64_t *kpos,
                                         const unsigned char *key_ok, int64_t n, bool causal, bool self_mask) {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) {
        const bool hidden = !key_ok[j] || (causal && kpos[j] > qpos), self = self_mask && kpos[j] == qpos;
        const float v = hidden ? RF_ATTN_MASK_VALUE : s[j];
        s[j] = self ? RF_ATTN_SELF_MASK_VALUE : v;
        masked[j] = hidden || self;
    }
}

#endif
