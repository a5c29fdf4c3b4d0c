/* Freed device blocks kept for reuse (block_cache.h). */
#include "device/block_cache.h"

void *rf_block_cache_take(rf_block_cache *c, size_t bytes) {
    for (int i = 0; i < c->count; i++)
        if (c->bytes[i] == bytes) {
            void *block = c->block[i];
            c->held -= bytes;
            c->count--;
            c->block[i] = c->block[c->count], c->bytes[i] = c->bytes[c->count];
            return block;
        }
    return NULL;
}

bool rf_block_cache_put(rf_block_cache *c, void *block, size_t bytes) {
    if (c->count == RF_BLOCK_CACHE_BLOCKS || bytes > RF_BLOCK_CACHE_BYTES - c->held) return false;
    c->block[c->count] = block, c->bytes[c->count] = bytes;
    c->count++;
    c->held += bytes;
    return true;
}
