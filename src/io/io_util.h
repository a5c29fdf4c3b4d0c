/* Helpers shared by the io readers and writers (safetensors headers,
 * config.json): strict JSON parsing, number and shape formatting. Not part of
 * the public API. */
#ifndef RF_IO_UTIL_H
#define RF_IO_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <json.h>
#include "reformer/status.h"

/* Parse exactly `len` bytes of UTF-8 JSON (trailing whitespace allowed; NUL
 * bytes, invalid UTF-8 and anything after the value refused) into *out
 * (caller puts it). Failures are RF_ERR_FORMAT naming `where` and the byte. */
rf_status rf_json_parse(const char *text, size_t len, const char *where, json_object **out);

/* The length of the longest valid UTF-8 prefix of s[0..n) (n when all of it
 * is valid): strict, refusing overlong forms, surrogates and code points
 * above U+10FFFF, so what the readers accept the writers can write. */
size_t rf_io_utf8_check(const char *s, size_t n);

/* The shortest "%.*g" text that reads back as exactly `x` (finite), with
 * ".0" appended when it would otherwise read as an integer. */
void rf_json_format_double(double x, char *buf, size_t n);

/* A JSON value's type for messages, with its article ("a string", "an integer"). */
const char *rf_json_type_name(const json_object *v);

/* "[2, 3]" (ndim entries; "[]" for a scalar) into buf; returns buf. */
const char *rf_io_shape_str(int ndim, const int64_t *shape, char *buf, size_t n);

#endif
