/* libFuzzer target for the safetensors reader (tools/fuzz.sh builds and runs
 * it). Any input must either be refused with a status or open; an opened
 * file's tensors are read in full (ASan checks every byte lies inside the
 * data), and writing them back then reopening must give the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "reformer/io.h"

static void *serialize(const rf_safetensors *st, size_t *n) {
    rf_safetensors_writer *w;
    void *bytes = NULL;
    if (rf_safetensors_writer_new(&w) != RF_OK) abort();
    for (size_t i = 0; i < rf_safetensors_metadata_count(st); i++) {
        const char *k, *v;
        if (rf_safetensors_metadata_at(st, i, &k, &v) != RF_OK || rf_safetensors_writer_set_metadata(w, k, v) != RF_OK)
            abort();
    }
    for (size_t i = 0; i < rf_safetensors_count(st); i++) {
        rf_st_tensor t;
        if (rf_safetensors_at(st, i, &t) != RF_OK) abort();
        if (rf_safetensors_writer_add(w, t.name, t.dtype, t.ndim, t.shape, t.data) != RF_OK) abort();
    }
    if (rf_safetensors_writer_serialize(w, &bytes, n) != RF_OK) abort();
    rf_safetensors_writer_free(w);
    return bytes;
}

static volatile unsigned sink; /* keeps the data reads */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rf_safetensors *st;
    if (rf_safetensors_open_memory(&st, data, size, "fuzz") != RF_OK) return 0;
    unsigned sum = 0;
    for (size_t i = 0; i < rf_safetensors_count(st); i++) {
        rf_st_tensor t;
        if (rf_safetensors_at(st, i, &t) != RF_OK) abort();
        const unsigned char *p = t.data;
        for (size_t k = 0; k < t.bytes; k++) sum += p[k];
        rf_st_tensor again;
        if (rf_safetensors_find(st, t.name, &again) != RF_OK || again.data != t.data) abort();
    }
    size_t n1, n2;
    void *first = serialize(st, &n1);
    rf_safetensors_close(st);
    if (rf_safetensors_open_memory(&st, first, n1, "fuzz-rewritten") != RF_OK) abort();
    void *second = serialize(st, &n2);
    if (n1 != n2 || memcmp(first, second, n1) != 0) abort();
    rf_safetensors_close(st);
    free(first);
    free(second);
    sink = sum;
    return 0;
}
