/* Logging to stderr, filtered by the RF_LOG environment variable. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"

/* The level from RF_LOG, or -1 before the first read. Atomic because any
 * thread may log first: every reader either sees -1 and computes the same
 * value from the environment, or sees a stored level; never a torn int. */
static atomic_int cached_level = -1;

static int parse_level(const char *env) {
    if (!env) return RF_LOG_WARN;
    if (!strcmp(env, "error")) return RF_LOG_ERROR;
    if (!strcmp(env, "warn")) return RF_LOG_WARN;
    if (!strcmp(env, "info")) return RF_LOG_INFO;
    if (!strcmp(env, "debug")) return RF_LOG_DEBUG;
    return RF_LOG_WARN;
}

static int log_level(void) {
    /* Read once: the level does not change while a program runs. Two
     * threads racing here both store the same value, so no lock is needed. */
    int level = atomic_load_explicit(&cached_level, memory_order_relaxed);
    if (level < 0) {
        level = parse_level(getenv("RF_LOG"));
        atomic_store_explicit(&cached_level, level, memory_order_relaxed);
    }
    return level;
}

int rf_log_enabled(rf_log_level level) { return (int)level <= log_level(); }

void rf_log(rf_log_level level, const char *fmt, ...) {
    static const char *names[] = {"error", "warn", "info", "debug"};
    if (!rf_log_enabled(level)) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[reformer %s] ", names[level]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
