/* Internal: freed device blocks kept for reuse, for backends whose memory is
 * host memory (the cpu backend; OpenCL devices of CPU type). A training
 * step allocates and frees the same few dozen sizes every step — the pass's
 * activations, the gradients, the LSH state — and fresh memory from the
 * kernel costs a page fault per 4 KiB at its first touch (15,000 a step at
 * L = 4,096 on the cpu, ~5% of the step's CPU time, measured with perf
 * stat). A block of exactly the asked size is handed back; the cache is
 * bounded in blocks and bytes, and over either a release frees instead. Like
 * the device's memory counters it is not locked: a device is used from one
 * thread at a time. */
#ifndef RF_BLOCK_CACHE_H
#define RF_BLOCK_CACHE_H

#include <stdbool.h>
#include <stddef.h>

enum { RF_BLOCK_CACHE_BLOCKS = 64 };
#define RF_BLOCK_CACHE_BYTES ((size_t)1 << 30)

typedef struct rf_block_cache {
    void *block[RF_BLOCK_CACHE_BLOCKS]; /* a pointer, or a backend's handle */
    size_t bytes[RF_BLOCK_CACHE_BLOCKS];
    int count;
    size_t held;
} rf_block_cache;

/* A cached block of exactly `bytes`, taken out of the cache; NULL if none. */
void *rf_block_cache_take(rf_block_cache *c, size_t bytes);

/* Keep `block` of `bytes`; false (the caller frees it) when the cache is full. */
bool rf_block_cache_put(rf_block_cache *c, void *block, size_t bytes);

#endif
