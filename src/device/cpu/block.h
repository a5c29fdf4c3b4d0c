/* Internal: the small dense products the cpu attention ops are built from
 * (§5, §6 as blocks). An attention op cuts its work into blocks of a few
 * dozen query rows against the window of keys they share, so each block's
 * operands — and its [rows × window] score block — stay in cache and no
 * score tensor over the whole sequence exists. The products are written as
 * rows of axpys (c_i += a_il·b_l): the innermost loop runs along contiguous
 * rows of b and c, so the compiler vectorises it without reassociating a
 * sum (no -ffast-math needed). Accumulation is in float: a block sums at
 * most a window of terms, well within SPEC §10's tolerances. */
#ifndef RF_CPU_BLOCK_H
#define RF_CPU_BLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* c = a·b, or c += a·b with accumulate: a [n × k], b [k × p], c [n × p],
 * row-major and contiguous. */
static inline void rf_cpu_mm(float *restrict c, const float *restrict a, const float *restrict b, int64_t n,
                             int64_t k, int64_t p, bool accumulate) {
    for (int64_t i = 0; i < n; i++) {
        float *ci = c + i * p;
        if (!accumulate) memset(ci, 0, (size_t)p * sizeof *ci);
        for (int64_t l = 0; l < k; l++) {
            const float ail = a[i * k + l], *bl = b + l * p;
#pragma omp simd
            for (int64_t j = 0; j < p; j++) ci[j] += ail * bl[j];
        }
    }
}

/* c = aᵀ·b (c += aᵀ·b with accumulate): a [k × n], b [k × p], c [n × p] —
 * what a backward pass sends to the keys and values of a block. */
static inline void rf_cpu_mm_tn(float *restrict c, const float *restrict a, const float *restrict b, int64_t k,
                                int64_t n, int64_t p, bool accumulate) {
    if (!accumulate) memset(c, 0, (size_t)(n * p) * sizeof *c);
    for (int64_t l = 0; l < k; l++) {
        const float *bl = b + l * p;
        for (int64_t i = 0; i < n; i++) {
            const float ali = a[l * n + i];
            float *ci = c + i * p;
#pragma omp simd
            for (int64_t j = 0; j < p; j++) ci[j] += ali * bl[j];
        }
    }
}

/* dst [p × n] = srcᵀ for src [n × p]: a block's keys or values laid out so
 * that a product with them runs along the window. */
static inline void rf_cpu_transpose(float *restrict dst, const float *restrict src, int64_t n, int64_t p) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < p; j++) dst[j * n + i] = src[i * p + j];
}

#endif
