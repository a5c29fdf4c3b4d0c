/* Strict JSON parsing (json-c), shortest round-trip doubles, shape strings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "io/io_util.h"

size_t rf_io_utf8_check(const char *text, size_t n) {
    const unsigned char *s = (const unsigned char *)text;
    static const unsigned min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
        if (len == 0 || len > n - i) return i;
        unsigned cp = len == 1 ? c : len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
        i += len;
    }
    return n;
}

static int is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

rf_status rf_json_parse(const char *text, size_t len, const char *where, json_object **out) {
    *out = NULL;
    if (!text && len) return rf_error(RF_ERR_INVALID_ARG, "%s: JSON text is NULL", where);
    /* json-c takes an int length; a NUL byte is never valid JSON outside a
     * string and never valid raw inside one, so refuse it up front. */
    if (len > (size_t)0x7fffffff) return rf_error(RF_ERR_FORMAT, "%s: JSON text of %zu bytes is too large", where, len);
    const char *nul = len ? memchr(text, '\0', len) : NULL;
    if (nul) return rf_error(RF_ERR_FORMAT, "%s: not valid JSON: NUL byte at offset %zu", where, (size_t)(nul - text));
    size_t good = len ? rf_io_utf8_check(text, len) : 0;
    if (good != len) return rf_error(RF_ERR_FORMAT, "%s: not valid JSON: invalid UTF-8 at byte %zu", where, good);
    json_tokener *tok = json_tokener_new();
    if (!tok) return rf_error(RF_ERR_OUT_OF_MEMORY, "%s: cannot allocate a JSON parser", where);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS | JSON_TOKENER_VALIDATE_UTF8);
    json_object *obj = json_tokener_parse_ex(tok, text ? text : "", (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (jerr == json_tokener_continue || (!obj && jerr == json_tokener_success)) {
        json_object_put(obj);
        return rf_error(RF_ERR_FORMAT, "%s: not valid JSON: the text ends early (%zu bytes)", where, len);
    }
    if (jerr != json_tokener_success) {
        json_object_put(obj);
        return rf_error(RF_ERR_FORMAT, "%s: not valid JSON at byte %zu: %s", where, end, json_tokener_error_desc(jerr));
    }
    for (size_t i = end; i < len; i++) {
        if (!is_json_space(text[i])) {
            json_object_put(obj);
            return rf_error(RF_ERR_FORMAT, "%s: not valid JSON: unexpected text at byte %zu after the value", where, i);
        }
    }
    *out = obj;
    return RF_OK;
}

void rf_json_format_double(double x, char *buf, size_t n) {
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) break;
    }
    if (!strpbrk(buf, ".eEn")) {
        size_t len = strlen(buf);
        if (len + 3 <= n) memcpy(buf + len, ".0", 3);
    }
}

const char *rf_json_type_name(const json_object *v) {
    switch (json_object_get_type(v)) {
    case json_type_null: return "null";
    case json_type_boolean: return "a boolean";
    case json_type_double: return "a float";
    case json_type_int: return "an integer";
    case json_type_object: return "an object";
    case json_type_array: return "a list";
    case json_type_string: return "a string";
    }
    return "an unknown value";
}

const char *rf_io_shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t at = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (at < n) snprintf(buf + at, n - at, "]");
    return buf;
}
