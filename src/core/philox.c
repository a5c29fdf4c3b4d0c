/* Philox4x32-10 on the host (§2); cl/philox.cl is the same function in
 * OpenCL C and must stay bit-identical (tests/test_philox.c checks both
 * against the Random123 known answers and against each other). */
#include "core/philox.h"
#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void rf_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

static void block(uint64_t seed, uint32_t stream, uint32_t step, uint64_t blk, uint32_t out[4]) {
    const uint32_t ctr[4] = {(uint32_t)blk, (uint32_t)(blk >> 32), stream, step};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    rf_philox4x32_10(ctr, key, out);
}

uint32_t rf_philox_word(uint64_t seed, uint32_t stream, uint32_t step, uint64_t index) {
    uint32_t w[4];
    block(seed, stream, step, index / 4, w);
    return w[index % 4];
}

void rf_philox_words(uint32_t *out, size_t n, uint64_t seed, uint32_t stream, uint32_t step, uint64_t first_block) {
    uint32_t w[4];
    for (size_t i = 0; i < n; i++) {
        if (i % 4 == 0) block(seed, stream, step, first_block + i / 4, w);
        out[i] = w[i % 4];
    }
}

rf_dropout_threshold rf_philox_dropout_threshold(float p) {
    rf_dropout_threshold t = {0, 0};
    if (p <= 0.0f) return t;
    double x = nearbyint((double)p * 4294967296.0);
    if (x >= 4294967296.0) t.drop_all = 1;
    else t.threshold = (uint32_t)x;
    return t;
}

void rf_philox_normals(float *out, size_t n, uint64_t seed, uint32_t stream, uint32_t step) {
    const double two_pi = 6.283185307179586476925286766559;
    uint32_t w[4];
    for (size_t k = 0; 2 * k < n; k++) {
        /* Two pairs per Philox block: pair k uses lanes 2(k%2), 2(k%2)+1. */
        if (k % 2 == 0) block(seed, stream, step, k / 2, w);
        double u1 = 1.0 - (double)rf_philox_uniform(w[2 * (k % 2)]);
        double u2 = (double)rf_philox_uniform(w[2 * (k % 2) + 1]);
        double r = sqrt(-2.0 * log(u1));
        out[2 * k] = (float)(r * cos(two_pi * u2));
        if (2 * k + 1 < n) out[2 * k + 1] = (float)(r * sin(two_pi * u2));
    }
}
