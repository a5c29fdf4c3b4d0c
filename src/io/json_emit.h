/* A small JSON emitter for the safetensors writer: the header must match the
 * Python library's bytes, which json-c's printer does not (it escapes '/',
 * spaces its output), so the writer builds the text itself. Not part of the
 * public API. */
#ifndef RF_JSON_EMIT_H
#define RF_JSON_EMIT_H

#include <stddef.h>

/* A growing text buffer; `failed` latches an allocation failure, so a caller
 * appends freely and checks once at the end. Start from {0}; free(p). */
typedef struct rf_sbuf {
    char *p;
    size_t len, cap;
    int failed;
} rf_sbuf;

/* Append n bytes of s / the string s. */
void rf_sbuf_put(rf_sbuf *b, const char *s, size_t n);
void rf_sbuf_puts(rf_sbuf *b, const char *s);
/* Append s as a quoted JSON string, escaped as serde_json escapes it. */
void rf_sbuf_json_string(rf_sbuf *b, const char *s);

#endif
