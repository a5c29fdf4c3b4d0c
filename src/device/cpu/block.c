/* The element-wise passes over the cpu attention ops' score blocks (§5.4,
 * §5.5, §6; declared and explained in device/cpu/block.h), each compiled
 * for several instruction sets (RF_CPU_CLONES). Every loop is an `omp simd`
 * loop over one row. */
#include "device/cpu/block.h"

RF_CPU_CLONES void rf_cpu_block_mask(float *s, unsigned char *masked, int64_t m, int64_t n, float scale,
                                     const int32_t *qpos, const int32_t *kpos, const unsigned char *key_ok,
                                     bool causal, bool self_mask) {
    for (int64_t i = 0; i < m; i++) {
        float *si = s + i * n;
        unsigned char *mi = masked + i * n;
        const int32_t q = qpos[i];
#pragma omp simd
        for (int64_t j = 0; j < n; j++) {
            const bool hidden = !key_ok[j] || (causal && kpos[j] > q), self = self_mask && kpos[j] == q;
            const float v = hidden ? RF_ATTN_MASK_VALUE : si[j] * scale;
            si[j] = self ? RF_ATTN_SELF_MASK_VALUE : v;
            mi[j] = hidden || self;
        }
    }
}

/* The row's maximum and sum are reduced in LANES independent lanes, then
 * across them: gcc (12) leaves an `omp simd` reduction here scalar, a
 * chain of dependent adds; the lanes are one vector register's worth at
 * AVX-512. */
enum { LANES = 16 };

RF_CPU_CLONES void rf_cpu_block_exp_rows(float *s, int64_t m, int64_t n, float *mx, double *sum) {
    for (int64_t i = 0; i < m; i++) {
        float *si = s + i * n, tops[LANES];
        double totals[LANES];
        for (int l = 0; l < LANES; l++) tops[l] = -HUGE_VALF, totals[l] = 0;
        const int64_t body = n - n % LANES;
        for (int64_t j = 0; j < body; j += LANES)
#pragma omp simd
            for (int l = 0; l < LANES; l++) tops[l] = si[j + l] > tops[l] ? si[j + l] : tops[l];
        float top = -HUGE_VALF;
        for (int64_t j = body; j < n; j++) top = si[j] > top ? si[j] : top;
        for (int l = 0; l < LANES; l++) top = tops[l] > top ? tops[l] : top;
#pragma omp simd
        for (int64_t j = 0; j < n; j++) si[j] = rf_cpu_block_exp(si[j] - top);
        for (int64_t j = 0; j < body; j += LANES)
#pragma omp simd
            for (int l = 0; l < LANES; l++) totals[l] += si[j + l];
        double total = 0;
        for (int64_t j = body; j < n; j++) total += si[j];
        for (int l = 0; l < LANES; l++) total += totals[l];
        mx[i] = top, sum[i] = total;
    }
}

RF_CPU_CLONES void rf_cpu_block_scale_rows(float *s, int64_t m, int64_t n, const float *f) {
    for (int64_t i = 0; i < m; i++) {
        float *si = s + i * n;
        const float fi = f[i];
#pragma omp simd
        for (int64_t j = 0; j < n; j++) si[j] *= fi;
    }
}

RF_CPU_CLONES void rf_cpu_block_lsh_grad(float *dp, float *pd, const float *s, const unsigned char *masked, int64_t m,
                                         int64_t n, const float *lse, const double *c) {
    for (int64_t i = 0; i < m; i++) {
        float *dpi = dp + i * n, *pdi = pd + i * n;
        const float *si = s + i * n, li = lse[i], ci = (float)c[i];
        const unsigned char *mi = masked + i * n;
#pragma omp simd
        for (int64_t j = 0; j < n; j++) {
            const float p = rf_cpu_block_exp(si[j] - li), D = pdi[j];
            pdi[j] = D * p;
            dpi[j] = mi[j] ? 0.0f : p * (D * dpi[j] - ci);
        }
    }
}
