/* Internal helpers shared by every layer: error recording, logging, checked
 * size arithmetic, hashing and atomic file writes. Not part of the public API. */
#ifndef RF_CORE_H
#define RF_CORE_H

#include <stddef.h>
#include <stdint.h>
#include "reformer/status.h"

#if defined(__GNUC__)
#define RF_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define RF_PRINTF(a, b)
#endif

/* Record a message for the calling thread and return `status`, so a failing
 * check reads: return rf_error(RF_ERR_INVALID_ARG, "rf_gemm: m=%d", m); */
rf_status rf_error(rf_status status, const char *fmt, ...) RF_PRINTF(2, 3);

/* Propagate a failure without losing the first message.
 *
 * Error paths, one style across the library:
 * - holding nothing that needs releasing: return at once (RF_TRY, or
 *   `return rf_error(...)`); scratch allocated together is checked together
 *   (release the lot and return);
 * - holding something: one `rf_status s`, each later step chained as
 *   `if (s == RF_OK) s = step(...);`, and everything released at a single
 *   exit before `return s`. No goto: the chain reads top to bottom and the
 *   release is written once. A tensor struct or pointer that starts zeroed
 *   can be released unconditionally (rf_tensor_free, free accept it). */
#define RF_TRY(expr) do { rf_status rf_try_s_ = (expr); if (rf_try_s_ != RF_OK) return rf_try_s_; } while (0)

/* Logging to stderr, filtered by RF_LOG=error|warn|info|debug (default warn). */
typedef enum { RF_LOG_ERROR = 0, RF_LOG_WARN, RF_LOG_INFO, RF_LOG_DEBUG } rf_log_level;
void rf_log(rf_log_level level, const char *fmt, ...) RF_PRINTF(2, 3);
int rf_log_enabled(rf_log_level level);

/* a*b (and a*b*c) with overflow detection: return 0 on overflow. */
int rf_mul_size(size_t a, size_t b, size_t *out);
int rf_mul3_size(size_t a, size_t b, size_t c, size_t *out);

/* FNV-1a, 64-bit, chainable: h = rf_hash64(h, data, n), start from RF_HASH_INIT. */
#define RF_HASH_INIT 0xcbf29ce484222325ull
uint64_t rf_hash64(uint64_t h, const void *data, size_t n);

/* SHA-256, incremental (sha256.c). */
typedef struct rf_sha256 {
    uint32_t h[8];
    uint64_t len;
    unsigned char buf[64];
    size_t fill;
} rf_sha256;
void rf_sha256_init(rf_sha256 *s);
void rf_sha256_update(rf_sha256 *s, const void *data, size_t n);
void rf_sha256_final(rf_sha256 *s, unsigned char out[32]);

/* Write `n` bytes to `path` atomically: a temporary file in the same folder,
 * fsync, rename. A crash leaves either the old file or the new one. */
rf_status rf_write_file_atomic(const char *path, const void *data, size_t n);

/* RF_OK if `path` is a regular file; otherwise a one-line error naming the
 * path and what it is ("is a directory", "is a FIFO, not a regular file").
 * Every reader checks this before opening (a FIFO would block the open). */
rf_status rf_check_regular_file(const char *path);
/* "a directory", "a FIFO", ... for a st_mode. */
const char *rf_file_kind(unsigned mode);

/* Read a whole file into a malloc'd buffer (caller frees); regular files only. */
rf_status rf_read_file(const char *path, void **data, size_t *n);

/* Make a folder and its parents (like mkdir -p). */
rf_status rf_mkdir_p(const char *path);

#endif
