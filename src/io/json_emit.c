/* The JSON emitter of the safetensors writer: a growing text buffer and
 * strings escaped byte for byte as the Python library's serde_json. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "io/json_emit.h"

void rf_sbuf_put(rf_sbuf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->failed = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

void rf_sbuf_puts(rf_sbuf *b, const char *s) { rf_sbuf_put(b, s, strlen(s)); }

/* A JSON string escaped as serde_json does (so the bytes match the Python
 * library): \" \\ \b \f \n \r \t, other control bytes as \u00xx, the rest
 * (including '/' and non-ASCII UTF-8) verbatim. */
void rf_sbuf_json_string(rf_sbuf *b, const char *s) {
    rf_sbuf_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        switch (*p) {
        case '"': rf_sbuf_put(b, "\\\"", 2); break;
        case '\\': rf_sbuf_put(b, "\\\\", 2); break;
        case '\b': rf_sbuf_put(b, "\\b", 2); break;
        case '\f': rf_sbuf_put(b, "\\f", 2); break;
        case '\n': rf_sbuf_put(b, "\\n", 2); break;
        case '\r': rf_sbuf_put(b, "\\r", 2); break;
        case '\t': rf_sbuf_put(b, "\\t", 2); break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                rf_sbuf_put(b, esc, 6);
            } else {
                rf_sbuf_put(b, (const char *)p, 1);
            }
        }
    }
    rf_sbuf_put(b, "\"", 1);
}
