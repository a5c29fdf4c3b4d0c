/* Logging to stderr, filtered by the RF_LOG environment variable. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"

static int log_level(void) {
    /* Read once: the level does not change while a program runs. */
    static int level = -1;
    if (level < 0) {
        const char *env = getenv("RF_LOG");
        level = RF_LOG_WARN;
        if (env) {
            if (!strcmp(env, "error")) level = RF_LOG_ERROR;
            else if (!strcmp(env, "warn")) level = RF_LOG_WARN;
            else if (!strcmp(env, "info")) level = RF_LOG_INFO;
            else if (!strcmp(env, "debug")) level = RF_LOG_DEBUG;
        }
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
